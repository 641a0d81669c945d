//! KIR → CUDA C: the one emitter.
//!
//! Everything weft launches on a GPU goes through [`emit_cuda_with`], so the
//! CUDA semantics of KIR are decided in this file alone:
//!
//! - **Bit-exact constants.** Floats are written as their bit patterns
//!   (`__uint_as_float(0x3f800000u)`), never as decimal text a compiler could
//!   round differently; the decimal form follows in a comment for people.
//! - **No contraction.** `f32` add/sub/mul/div/sqrt/fma use the `_rn`
//!   intrinsics, which NVRTC never fuses, so results do not depend on
//!   `--fmad` and match the interpreter's one rounding per op.
//! - **f16/bf16 compute in float.** Each op converts its operands to `float`,
//!   computes, and rounds back to nearest-even: exactly what the interpreter
//!   does after every op. Values are carried as their bits (`weft_f16`,
//!   `weft_bf16` = `unsigned short`) with a small prelude of conversions
//!   instead of `cuda_fp16.h`/`cuda_bf16.h`: NVRTC 13.0 does not bundle those
//!   headers, and the prelude reproduces Rust's `half` crate bit for bit,
//!   NaN payloads included.
//! - **No C undefined behaviour.** Signed `i32`/`i64` arithmetic wraps (done in
//!   the unsigned type and cast back); shifts mask their amount to the bit
//!   width; division by zero and `MIN / -1` go through small helpers. The
//!   interpreter reports integer division by zero as an error; a GPU kernel
//!   cannot, so the emitted code yields 0 instead of undefined behaviour.
//! - **Saturating float→int casts** via `__float2int_rz` and friends (NaN → 0),
//!   matching `as` in Rust and therefore the interpreter.
//! - **Logical ids.** Block ids, thread ids and the lane are read into locals
//!   (`bid_x`, `tid_x`, `lane_id`) by one prologue written by a
//!   [`BlockMapping`]; the packer swaps that hook to map physical blocks onto
//!   logical ones without touching kernel bodies. Block and grid *dimensions*
//!   are the kernel's static logical launch shape, emitted as constants.
//! - **Two function forms.** [`emit_cuda_with`] writes a standalone
//!   `__global__` entry point; [`emit_device_function`] writes the same body
//!   as a `__device__` function for a bundle (`crate::bundle`): the logical
//!   block id arrives as arguments, shared arrays become typed views into one
//!   dynamic pool ([`shared_pool_layout`]), and barriers take the
//!   [`BarrierForm`] the bundle asks for. The committed `kernels-ptx/` files
//!   pin the single-kernel output byte for byte.
//! - **One source, two compilers.** What only a GPU has — barriers, named
//!   barriers (`bar.sync`), `__shared__` arrays, the dynamic shared pool and
//!   its views, the two `cvt` half conversions, and a hook at every loop
//!   back-edge (`WEFT_LOOP_TICK`, empty on CUDA, the host watchdog's check
//!   on the cpu executor) — is spelled through a small
//!   platform layer of macros and inline functions (`WEFT_SYNC_BLOCK`,
//!   `WEFT_SYNC_NAMED`, `WEFT_SHARED_ARRAY`, `WEFT_SHARED_POOL`,
//!   `WEFT_SHARED_VIEW`, `WEFT_LOOP_TICK`, `weft_cvt_*`), defined in the prelude with their CUDA
//!   meaning unless [`PLATFORM_GUARD`] is defined. NVRTC compiles the text as
//!   it is; the host executor (`weft-cpu`) compiles the same text after a
//!   header that defines the guard and host spellings, with no rewriting.
//!
//! Emission is fallible and rejects what it cannot emit with an [`EmitError`]
//! naming the kernel and instruction, so unsupported IR is found here and not
//! as an NVRTC error later. Output is deterministic: the same kernel always
//! gives the same text (golden files depend on it). The limits it checks
//! (threads per block, warp size) are [`CODEGEN_TARGET`]'s: emitted code does
//! not depend on the device, and those limits are CUDA's on every
//! architecture weft compiles for.

use std::collections::{BTreeSet, HashSet};

use weft_kir::{
    Access, Axis, BinaryOp, CmpOp, Inst, InstData, KernelDef, ParamKind, Region, Scalar, ShuffleKind, Special, Target,
    Type, UnaryOp, Value,
};

/// The device limits emission checks against: no device is known when CUDA C
/// is written, and the limits checked are the same on every target.
pub const CODEGEN_TARGET: Target = Target::SM_90;

/// Emitted CUDA C for one kernel.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct CudaSource {
    /// The `extern "C"` function name (the KIR name, sanitized to a C identifier).
    pub name: String,
    /// The whole translation unit.
    pub code: String,
}

/// Why a kernel could not be emitted.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum EmitError {
    /// An instruction the emitter cannot express (usually ill-typed IR that the
    /// verifier would also reject).
    #[error("cannot emit kernel `{kernel}`: instruction {inst} (`{mnemonic}`): {reason}")]
    Inst { kernel: String, inst: String, mnemonic: &'static str, reason: String },
    /// A problem with the kernel as a whole (launch shape, declarations).
    #[error("cannot emit kernel `{kernel}`: {reason}")]
    Kernel { kernel: String, reason: String },
}

/// Writes the prologue that defines the logical ids a kernel body reads.
///
/// The prologue must define `const int bid_x, bid_y, bid_z` (logical block
/// id, in `0..grid`) and `const int tid_x, tid_y, tid_z` (thread id in the
/// logical block). It may `return` early for physical threads that have no
/// logical work, provided no barrier can then be reached by their block-mates.
pub trait BlockMapping {
    fn prologue(&self, kernel: &KernelDef, w: &mut CodeWriter);
}

/// One physical block per logical block: ids are CUDA's own.
#[derive(Copy, Clone, Debug, Default)]
pub struct DirectBlocks;

impl BlockMapping for DirectBlocks {
    fn prologue(&self, _kernel: &KernelDef, w: &mut CodeWriter) {
        w.line("// Logical block and thread ids (one physical block per logical block).");
        for a in Axis::ALL {
            w.line(format!("const int bid_{0} = (int)blockIdx.{0};", a.name()));
        }
        for a in Axis::ALL {
            w.line(format!("const int tid_{0} = (int)threadIdx.{0};", a.name()));
        }
    }
}

/// Knobs of one emission.
#[derive(Clone, Copy)]
pub struct EmitOptions<'a> {
    /// Writes the logical-id prologue.
    pub block_mapping: &'a dyn BlockMapping,
}

impl Default for EmitOptions<'_> {
    fn default() -> Self {
        EmitOptions { block_mapping: &DirectBlocks }
    }
}

/// How a KIR `barrier` is spelled.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub enum BarrierForm {
    /// `__syncthreads()`: every thread of the physical block takes part.
    #[default]
    Block,
    /// `bar.sync id, threads`: only the first `threads` threads (whole warps)
    /// of the physical block take part. A bundle body narrower than the
    /// launch uses this, since the launch's other warps have returned and a
    /// `__syncthreads()` would wait for them (principle 4).
    Named { id: u32, threads: u32 },
}

/// A kernel body emitted as a `__device__` function for a bundle, instead of
/// a standalone `__global__` entry point.
///
/// The function takes the kernel's parameters (as the entry point would),
/// then `const int weft_bid_x, weft_bid_y, weft_bid_z` (the logical block id,
/// chosen by the bundle's dispatcher) and `unsigned char* weft_smem` (the
/// launch's dynamic shared-memory pool). The [`BlockMapping`] of the
/// [`EmitOptions`] still writes the prologue and must define the usual
/// `bid_*`/`tid_*` locals from those arguments and `threadIdx`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceForm {
    /// The function's C name (must not collide with other bodies of the module).
    pub name: String,
    pub barrier: BarrierForm,
    /// Inlined into the dispatcher (`__forceinline__`), or a real call
    /// (`__noinline__`), which keeps the body's registers from adding to
    /// the dispatcher's.
    pub inline: bool,
}

/// One body emitted by [`emit_device_function`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceFunction {
    /// The function's C name.
    pub name: String,
    /// The helpers the function calls; a module holding several bodies writes
    /// the union once ([`Prelude::write`]) before the functions.
    pub prelude: Prelude,
    /// The function definition.
    pub code: String,
    /// Byte offset of each shared array (in declaration order) in the pool.
    pub shared_offsets: Vec<u64>,
    /// Bytes of the pool the body uses: its last array's end, rounded up to
    /// [`SHARED_POOL_ALIGN`].
    pub shared_pool_bytes: u64,
}

/// Alignment of every shared array inside a bundle's shared-memory pool:
/// enough for any KIR element type and for vectorised accesses later.
pub const SHARED_POOL_ALIGN: u64 = 16;

/// Where each shared array of `kernel` lives in a shared-memory pool, and
/// the pool bytes it needs (see [`DeviceFunction::shared_pool_bytes`]).
pub fn shared_pool_layout(kernel: &KernelDef) -> (Vec<u64>, u64) {
    let mut end = 0u64;
    let offsets = kernel
        .shared
        .values()
        .map(|data| {
            let at = end.next_multiple_of(SHARED_POOL_ALIGN);
            end = at + data.bytes();
            at
        })
        .collect();
    (offsets, end.next_multiple_of(SHARED_POOL_ALIGN))
}

/// A set of helper functions (f16/bf16 conversions, integer division without
/// undefined behaviour, ...) that emitted code calls. Opaque so that the
/// order and spelling of helpers stay decided here.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Prelude {
    helpers: BTreeSet<Helper>,
}

impl Prelude {
    /// Adds every helper of `other`.
    pub fn merge(&mut self, other: &Prelude) {
        self.helpers.extend(other.helpers.iter().copied());
    }

    pub fn is_empty(&self) -> bool {
        self.helpers.is_empty()
    }

    /// Writes the helpers' definitions in a fixed order (so the output is
    /// deterministic): the platform layer first, in one block guarded by
    /// [`PLATFORM_GUARD`], then the portable helpers, each preceded by a
    /// blank line.
    pub fn write(&self, w: &mut CodeWriter) {
        if self.helpers.iter().any(|h| h.is_platform()) {
            w.line("");
            w.line(format!(
                "// CUDA spellings of the platform layer; a host build defines {PLATFORM_GUARD} and its own."
            ));
            w.line(format!("#ifndef {PLATFORM_GUARD}"));
            for h in self.helpers.iter().filter(|h| h.is_platform()) {
                for l in h.code().lines() {
                    w.line(l);
                }
            }
            w.line("#endif");
        }
        let mut division_comment = false;
        for h in self.helpers.iter().filter(|h| !h.is_platform()) {
            let is_div = !matches!(h, Helper::F16 | Helper::BF16 | Helper::RoundToOdd | Helper::ShuffleSource);
            if !is_div || !division_comment {
                w.line("");
            }
            if is_div && !division_comment {
                w.line("// Integer division without C undefined behaviour (x / 0 == 0, MIN / -1 wraps).");
                division_comment = true;
            }
            for l in h.code().lines() {
                w.line(l);
            }
        }
    }

    /// Adds the shared-memory pool declaration (a bundle's dispatcher).
    pub(crate) fn add_shared_pool(&mut self) {
        self.helpers.insert(Helper::SharedPool);
    }

    /// Adds the macro spelling `barrier` (a dispatcher's barrier).
    pub(crate) fn add_barrier(&mut self, barrier: BarrierForm) {
        self.helpers.insert(barrier_helper(barrier));
    }
}

/// The macro a host build defines before including emitted code, replacing
/// the CUDA spellings of the platform layer: barriers (`WEFT_SYNC_BLOCK`,
/// `WEFT_SYNC_NAMED`), shared memory (`WEFT_SHARED_ARRAY`,
/// `WEFT_SHARED_POOL`, `WEFT_SHARED_VIEW`), the loop back-edge hook
/// (`WEFT_LOOP_TICK`) and the two half-precision
/// conversions the hardware does in one instruction
/// (`weft_cvt_f16_to_f32`, `weft_cvt_f32_to_f16_rn`). Everything else the
/// emitted code calls is a CUDA intrinsic or built-in (`__fadd_rn`,
/// `__shfl_sync`, `threadIdx`, ...) that a host header can define as it is,
/// so the same text compiles with NVRTC and with a host C++ compiler without
/// rewriting.
pub const PLATFORM_GUARD: &str = "WEFT_HOST";

/// The platform macro that spells `form`.
fn barrier_helper(form: BarrierForm) -> Helper {
    match form {
        BarrierForm::Block => Helper::SyncBlock,
        BarrierForm::Named { .. } => Helper::SyncNamed,
    }
}

/// The statement a KIR `barrier` (or a dispatcher's barrier) becomes.
pub(crate) fn barrier_stmt(form: BarrierForm) -> String {
    match form {
        BarrierForm::Block => "WEFT_SYNC_BLOCK();".to_string(),
        BarrierForm::Named { id, threads } => format!("WEFT_SYNC_NAMED({id}, {threads});"),
    }
}

/// Emits `kernel` as a `__device__` function for a bundle (see
/// [`DeviceForm`]). `options.block_mapping` writes the prologue.
pub fn emit_device_function(
    kernel: &KernelDef,
    options: &EmitOptions<'_>,
    form: &DeviceForm,
) -> Result<DeviceFunction, EmitError> {
    let mut e = Emitter::new(kernel)?;
    e.barrier = form.barrier;
    e.device_function(options, form)
}

/// Indented line writer used by the emitter and by [`BlockMapping`]s.
#[derive(Default, Debug)]
pub struct CodeWriter {
    out: String,
    indent: usize,
}

impl CodeWriter {
    /// Writes one line at the current indentation.
    pub fn line(&mut self, s: impl AsRef<str>) {
        let s = s.as_ref();
        if !s.is_empty() {
            for _ in 0..self.indent {
                self.out.push_str("    ");
            }
            self.out.push_str(s);
        }
        self.out.push('\n');
    }

    /// Writes `s` and indents what follows (`s` usually ends with `{`).
    pub fn open(&mut self, s: impl AsRef<str>) {
        self.line(s);
        self.indent += 1;
    }

    /// Dedents and writes `s` (usually `}`).
    pub fn close(&mut self, s: impl AsRef<str>) {
        self.indent = self.indent.saturating_sub(1);
        self.line(s);
    }

    /// Indents what follows by one more level.
    pub fn indent_more(&mut self) {
        self.indent += 1;
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// Whether `kernel` can be launched alone, as [`emit_cuda`] emits it: its
/// parameters fit CUDA's parameter space. Any kernel runs as a bundle body.
pub fn fits_parameter_space(kernel: &KernelDef) -> bool {
    kernel.param_bytes() <= u64::from(CODEGEN_TARGET.param_bytes)
}

/// Emits `kernel` with the default options (direct block mapping).
pub fn emit_cuda(kernel: &KernelDef) -> Result<CudaSource, EmitError> {
    emit_cuda_with(kernel, &EmitOptions::default())
}

/// Emits `kernel` as one CUDA C translation unit.
pub fn emit_cuda_with(kernel: &KernelDef, options: &EmitOptions<'_>) -> Result<CudaSource, EmitError> {
    Emitter::new(kernel)?.run(options)
}

/// The CUDA C spelling of a KIR type.
pub fn c_type(t: Type) -> &'static str {
    match t {
        Type::Bool => "bool",
        Type::I32 => "int",
        Type::U32 => "unsigned int",
        Type::I64 => "long long",
        Type::F32 => "float",
        Type::F16 => "weft_f16",
        Type::BF16 => "weft_bf16",
        Type::I8 => "signed char",
        Type::U8 => "unsigned char",
        Type::I16 => "short",
        Type::U16 => "unsigned short",
        Type::U64 => "unsigned long long",
        Type::F64 => "double",
    }
}

/// `v`'s bits (of type `from`) read as `to`, of the same size: the float
/// types through the bit intrinsics, the others (whose C types are
/// integers, f16 and bf16 included) by an integer conversion, which keeps
/// the bits of a same-width type.
fn bitcast(from: Type, to: Type, v: &str) -> String {
    let bits = match from {
        Type::F32 => format!("__float_as_uint({v})"),
        Type::F64 => format!("__double_as_longlong({v})"),
        _ => v.to_string(),
    };
    match to {
        Type::Bool => format!("({bits}) != 0"),
        Type::F32 => format!("__uint_as_float((unsigned int)({bits}))"),
        Type::F64 => format!("__longlong_as_double((long long)({bits}))"),
        _ => format!("({})({bits})", c_type(to)),
    }
}

/// The unsigned C type of an integer type's width.
fn unsigned_c_type(t: Type) -> &'static str {
    match t {
        Type::I64 | Type::U64 => "unsigned long long",
        Type::I16 | Type::U16 => "unsigned short",
        Type::I8 | Type::U8 => "unsigned char",
        _ => "unsigned int",
    }
}

/// Helper functions the body may call; only those used are written, in this order.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Helper {
    // The platform layer (see [`PLATFORM_GUARD`]): written first, in one
    // guarded block, so a host build can define these itself.
    SyncBlock,
    SyncNamed,
    SharedArray,
    SharedPool,
    SharedView,
    LoopTick,
    HalfCvt,
    F16,
    BF16,
    RoundToOdd,
    ShuffleSource,
    DivI32,
    RemI32,
    DivU32,
    RemU32,
    DivI64,
    RemI64,
    DivU64,
    RemU64,
    DivI8,
    RemI8,
    DivU8,
    RemU8,
    DivI16,
    RemI16,
    DivU16,
    RemU16,
}

impl Helper {
    fn is_platform(self) -> bool {
        self < Helper::F16
    }

    fn code(self) -> &'static str {
        match self {
            Helper::SyncBlock => "#define WEFT_SYNC_BLOCK() __syncthreads()",
            Helper::SyncNamed => {
                "#define WEFT_SYNC_NAMED(id, threads) asm volatile(\"bar.sync \" #id \", \" #threads \";\" ::: \"memory\")"
            }
            Helper::SharedArray => "#define WEFT_SHARED_ARRAY(T, name, len) __shared__ T name[len]",
            Helper::SharedPool => "#define WEFT_SHARED_POOL(name) extern __shared__ __align__(16) unsigned char name[]",
            Helper::SharedView => {
                "#define WEFT_SHARED_VIEW(T, name, pool, offset, len) T* const name = (T*)((pool) + (offset))"
            }
            Helper::LoopTick => "#define WEFT_LOOP_TICK()",
            Helper::HalfCvt => HALF_CVT_PLATFORM,
            Helper::F16 => F16_PRELUDE,
            Helper::BF16 => BF16_PRELUDE,
            Helper::RoundToOdd => ROUND_TO_ODD_PRELUDE,
            Helper::ShuffleSource => SHUFFLE_SOURCE_PRELUDE,
            Helper::DivI32 => {
                "__device__ __forceinline__ int weft_div_i32(int a, int b) { return b == 0 ? 0 : b == -1 ? (int)(0u - (unsigned int)a) : a / b; }"
            }
            Helper::RemI32 => {
                "__device__ __forceinline__ int weft_rem_i32(int a, int b) { return (b == 0 || b == -1) ? 0 : a % b; }"
            }
            Helper::DivU32 => {
                "__device__ __forceinline__ unsigned int weft_div_u32(unsigned int a, unsigned int b) { return b == 0u ? 0u : a / b; }"
            }
            Helper::RemU32 => {
                "__device__ __forceinline__ unsigned int weft_rem_u32(unsigned int a, unsigned int b) { return b == 0u ? 0u : a % b; }"
            }
            Helper::DivI64 => {
                "__device__ __forceinline__ long long weft_div_i64(long long a, long long b) { return b == 0 ? 0 : b == -1 ? (long long)(0ull - (unsigned long long)a) : a / b; }"
            }
            Helper::RemI64 => {
                "__device__ __forceinline__ long long weft_rem_i64(long long a, long long b) { return (b == 0 || b == -1) ? 0 : a % b; }"
            }
            Helper::DivU64 => {
                "__device__ __forceinline__ unsigned long long weft_div_u64(unsigned long long a, unsigned long long b) { return b == 0ull ? 0ull : a / b; }"
            }
            Helper::RemU64 => {
                "__device__ __forceinline__ unsigned long long weft_rem_u64(unsigned long long a, unsigned long long b) { return b == 0ull ? 0ull : a % b; }"
            }
            // 8- and 16-bit operands divide as `int` (C's promotion, where
            // MIN / -1 cannot overflow) and wrap back to their width.
            Helper::DivI8 => {
                "__device__ __forceinline__ signed char weft_div_i8(signed char a, signed char b) { return b == 0 ? 0 : (signed char)(unsigned char)((int)a / (int)b); }"
            }
            Helper::RemI8 => {
                "__device__ __forceinline__ signed char weft_rem_i8(signed char a, signed char b) { return b == 0 ? 0 : (signed char)((int)a % (int)b); }"
            }
            Helper::DivU8 => {
                "__device__ __forceinline__ unsigned char weft_div_u8(unsigned char a, unsigned char b) { return b == 0 ? 0 : (unsigned char)(a / b); }"
            }
            Helper::RemU8 => {
                "__device__ __forceinline__ unsigned char weft_rem_u8(unsigned char a, unsigned char b) { return b == 0 ? 0 : (unsigned char)(a % b); }"
            }
            Helper::DivI16 => {
                "__device__ __forceinline__ short weft_div_i16(short a, short b) { return b == 0 ? 0 : (short)(unsigned short)((int)a / (int)b); }"
            }
            Helper::RemI16 => {
                "__device__ __forceinline__ short weft_rem_i16(short a, short b) { return b == 0 ? 0 : (short)((int)a % (int)b); }"
            }
            Helper::DivU16 => {
                "__device__ __forceinline__ unsigned short weft_div_u16(unsigned short a, unsigned short b) { return b == 0 ? 0 : (unsigned short)(a / b); }"
            }
            Helper::RemU16 => {
                "__device__ __forceinline__ unsigned short weft_rem_u16(unsigned short a, unsigned short b) { return b == 0 ? 0 : (unsigned short)(a % b); }"
            }
        }
    }
}

/// f16 without `cuda_fp16.h`: NVRTC 13.0 does not bundle that header, and
/// these few lines also make NaN handling match Rust's `half` crate (which
/// the interpreter uses) bit for bit; hardware `cvt` does the rest.
const F16_PRELUDE: &str = "\
// f16 values are IEEE binary16 bits; ops convert to float and round back to nearest-even.
typedef unsigned short weft_f16;
__device__ __forceinline__ float weft_f16_to_f32(weft_f16 h)
{
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0u) {
        return __uint_as_float(((unsigned int)(h & 0x8000u) << 16) | 0x7fc00000u | ((unsigned int)(h & 0x3ffu) << 13));
    }
    return weft_cvt_f16_to_f32(h);
}
__device__ __forceinline__ weft_f16 weft_f32_to_f16(float f)
{
    const unsigned int x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (weft_f16)(((x >> 16) & 0x8000u) | 0x7e00u | ((x & 0x7fffffu) >> 13));
    }
    return weft_cvt_f32_to_f16_rn(f);
}";

/// The hardware's half conversions (`cvt`), the platform layer's only inline
/// assembly besides the named barrier; bits in and out, as `unsigned short`.
const HALF_CVT_PLATFORM: &str = "\
__device__ __forceinline__ float weft_cvt_f16_to_f32(unsigned short h)
{
    float f;
    asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h));
    return f;
}
__device__ __forceinline__ unsigned short weft_cvt_f32_to_f16_rn(float f)
{
    unsigned short h;
    asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f));
    return h;
}";

/// bf16 likewise, in plain C (no sm_80 `cvt.bf16` needed).
const BF16_PRELUDE: &str = "\
// bf16 values are bfloat16 bits; ops convert to float and round back to nearest-even.
typedef unsigned short weft_bf16;
__device__ __forceinline__ float weft_bf16_to_f32(weft_bf16 b)
{
    const unsigned int x = b;
    return __uint_as_float(((x & 0x7fffu) > 0x7f80u ? (x | 0x40u) : x) << 16);
}
__device__ __forceinline__ weft_bf16 weft_f32_to_bf16(float f)
{
    const unsigned int x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (weft_bf16)((x >> 16) | 0x40u);
    }
    return (weft_bf16)((x >> 16) + (((x & 0x8000u) != 0u && (x & 0x17fffu) != 0u) ? 1u : 0u));
}";

/// Integer → f16/bf16 with one correct rounding: round to float toward zero,
/// mark inexact results odd, then round to nearest-even (round-to-odd makes
/// the double rounding exact since float has more than 2 extra bits).
const ROUND_TO_ODD_PRELUDE: &str = "\
__device__ __forceinline__ float weft_ll_to_f32_odd(long long x)
{
    const float f = __ll2float_rz(x);
    return __float2ll_rz(f) != x ? __uint_as_float(__float_as_uint(f) | 1u) : f;
}
__device__ __forceinline__ float weft_ull_to_f32_odd(unsigned long long x)
{
    const float f = __ull2float_rz(x);
    return __float2ull_rz(f) != x ? __uint_as_float(__float_as_uint(f) | 1u) : f;
}
// A double's NaN as float: quiet, sign and top payload bits kept.
__device__ __forceinline__ float weft_f64_nan_to_f32(double d)
{
    const unsigned long long x = (unsigned long long)__double_as_longlong(d);
    return __uint_as_float((unsigned int)(x >> 32) & 0x80000000u | 0x7fc00000u | (unsigned int)((x >> 29) & 0x7fffffu));
}
__device__ __forceinline__ float weft_f64_to_f32(double d)
{
    return d != d ? weft_f64_nan_to_f32(d) : __double2float_rn(d);
}
// Rounded toward zero with a sticky last bit: rounding this once more to a
// type of at most 11 significant bits equals rounding `d` directly.
__device__ __forceinline__ float weft_f64_to_f32_odd(double d)
{
    if (d != d) return weft_f64_nan_to_f32(d);
    const float f = __double2float_rz(d);
    return (double)f != d && f - f == 0.0f ? __uint_as_float(__float_as_uint(f) | 1u) : f;
}";

/// KIR's shuffle semantics, computed: the lane a shuffle reads, or the
/// lane's own when the source leaves its segment of `width` lanes (the
/// verifier admits shuffles only in blocks of whole warps, so every lane of
/// the warp exists). `shfl.sync` itself uses only the
/// operand's low 5 bits and lets `xor` read an earlier segment, so operands
/// the hardware and KIR could disagree on go through this and an `idx`
/// shuffle (see `Emitter::shuffle`).
const SHUFFLE_SOURCE_PRELUDE: &str = "\
// The lane a KIR shuffle reads (kind 0 idx, 1 up, 2 down, 3 xor), or the lane's own.
__device__ __forceinline__ int weft_shfl_source(int kind, int lane, long long op, int width)
{
    if (kind != 0 && (op <= -32 || op >= 32)) {
        return lane;
    }
    const long long seg = (long long)(lane & ~(width - 1));
    long long src;
    if (kind == 0) {
        src = seg + (long long)((unsigned long long)op & (unsigned long long)(width - 1));
    } else if (kind == 1) {
        src = lane - op;
    } else if (kind == 2) {
        src = lane + op;
    } else {
        src = lane ^ op;
    }
    return (src >= seg && src < seg + width) ? (int)src : lane;
}";

struct Emitter<'k> {
    k: &'k KernelDef,
    fn_name: String,
    param_names: Vec<String>,
    helpers: BTreeSet<Helper>,
    uses_lane: bool,
    barrier: BarrierForm,
}

type R<T> = Result<T, String>;

impl<'k> Emitter<'k> {
    fn new(k: &'k KernelDef) -> Result<Self, EmitError> {
        let mut used = HashSet::new();
        let fn_name = c_ident(&k.name, &mut used);
        let param_names = k.params.values().map(|p| c_ident(&p.name, &mut used)).collect();
        Ok(Emitter { k, fn_name, param_names, helpers: BTreeSet::new(), uses_lane: false, barrier: BarrierForm::Block })
    }

    fn kernel_err(&self, reason: impl Into<String>) -> EmitError {
        EmitError::Kernel { kernel: self.k.name.clone(), reason: reason.into() }
    }

    /// Rejects launch shapes and declarations no CUDA function can have.
    fn check_kernel(&self) -> Result<(), EmitError> {
        let k = self.k;
        let launch = k.launch;
        if launch.grid.contains(&0) || launch.block.contains(&0) {
            return Err(self.kernel_err(format!(
                "launch shape has a zero dimension (grid {:?}, block {:?})",
                launch.grid, launch.block
            )));
        }
        let threads = launch.threads_per_block();
        let limit = CODEGEN_TARGET.max_threads_per_block;
        if threads > limit as u64 {
            return Err(self.kernel_err(format!("{threads} threads per block exceeds CUDA's limit of {limit}")));
        }
        for (s, data) in k.shared.iter() {
            if data.len == 0 {
                return Err(self.kernel_err(format!("shared array {s} has length 0")));
            }
        }
        Ok(())
    }

    /// Emits the body (which decides the helpers and locals needed) and
    /// completes the helper set with the f16/bf16 conversions.
    fn body(&mut self) -> Result<String, EmitError> {
        let mut body = CodeWriter { out: String::new(), indent: 1 };
        self.region(self.k.body, &mut body)?;
        if self.uses_type(Type::F16) {
            self.helpers.insert(Helper::F16);
            self.helpers.insert(Helper::HalfCvt);
        }
        if self.uses_type(Type::BF16) {
            self.helpers.insert(Helper::BF16);
        }
        Ok(body.into_string())
    }

    /// The parameter declarations of the emitted function.
    fn param_decls(&self) -> Vec<String> {
        self.k
            .params
            .values()
            .zip(&self.param_names)
            .map(|(p, name)| match p.kind {
                ParamKind::Buffer { elem, access: Access::Read, .. } => {
                    format!("const {}* __restrict__ {name}", c_type(elem))
                }
                ParamKind::Buffer { elem, .. } => format!("{}* __restrict__ {name}", c_type(elem)),
                ParamKind::Scalar { ty } => format!("{} {name}", c_type(ty)),
            })
            .collect()
    }

    /// The prologue's ids, then `lane_id` when used.
    fn ids(&self, options: &EmitOptions<'_>, w: &mut CodeWriter) {
        let launch = self.k.launch;
        options.block_mapping.prologue(self.k, w);
        if self.uses_lane {
            let [bx, by, _] = launch.block;
            let linear = match (bx, by, launch.block[2]) {
                (_, 1, 1) => "tid_x".to_string(),
                (_, _, 1) => format!("tid_x + tid_y * {bx}"),
                _ => format!("tid_x + (tid_y + tid_z * {by}) * {bx}"),
            };
            w.line(format!("const int lane_id = ({linear}) & 31;"));
        }
    }

    fn vars(&self, w: &mut CodeWriter) {
        for (x, data) in self.k.vars.iter() {
            w.line(format!("{} {x};", c_type(data.ty)));
        }
    }

    fn run(mut self, options: &EmitOptions<'_>) -> Result<CudaSource, EmitError> {
        self.check_kernel()?;
        let k = self.k;
        if !fits_parameter_space(k) {
            let (bytes, limit) = (k.param_bytes(), CODEGEN_TARGET.param_bytes);
            return Err(self.kernel_err(format!(
                "its {} parameters need {bytes} bytes, past CUDA's {limit}-byte parameter space: a kernel this \
                 wide runs as a bundle body (`emit_bundle`), whose arguments travel in memory",
                k.params.len()
            )));
        }
        let launch = k.launch;
        let threads = launch.threads_per_block();
        let body = self.body()?;
        if !k.shared.is_empty() {
            self.helpers.insert(Helper::SharedArray);
        }

        let mut w = CodeWriter::default();
        w.line(format!("// Generated by weft-codegen from KIR kernel `{}`. Do not edit.", k.name.replace('\n', " ")));
        w.line(format!(
            "// Logical launch: grid [{}, {}, {}], block [{}, {}, {}], {} bytes of static shared memory.",
            launch.grid[0],
            launch.grid[1],
            launch.grid[2],
            launch.block[0],
            launch.block[1],
            launch.block[2],
            k.shared_bytes()
        ));
        Prelude { helpers: self.helpers.clone() }.write(&mut w);
        w.line("");
        w.line(format!(
            "extern \"C\" __global__ void __launch_bounds__({threads}) {}({})",
            self.fn_name,
            self.param_decls().join(", ")
        ));
        w.open("{");
        self.ids(options, &mut w);
        for (s, data) in k.shared.iter() {
            w.line(format!("WEFT_SHARED_ARRAY({}, {s}, {});", c_type(data.elem), data.len));
        }
        self.vars(&mut w);
        let mut code = w.into_string();
        code.push_str(&body);
        code.push_str("}\n");
        Ok(CudaSource { name: self.fn_name, code })
    }

    /// The body as a bundle's `__device__` function (see [`DeviceForm`]).
    fn device_function(mut self, options: &EmitOptions<'_>, form: &DeviceForm) -> Result<DeviceFunction, EmitError> {
        self.check_kernel()?;
        let k = self.k;
        let launch = k.launch;
        let body = self.body()?;
        let (shared_offsets, shared_pool_bytes) = shared_pool_layout(k);
        if !k.shared.is_empty() {
            self.helpers.insert(Helper::SharedView);
        }

        let mut w = CodeWriter::default();
        w.line(format!(
            "// Body of KIR kernel `{}`: logical grid [{}, {}, {}], block [{}, {}, {}], {} bytes of shared memory.",
            k.name.replace('\n', " "),
            launch.grid[0],
            launch.grid[1],
            launch.grid[2],
            launch.block[0],
            launch.block[1],
            launch.block[2],
            k.shared_bytes()
        ));
        let mut params = self.param_decls();
        params.extend(
            ["const int weft_bid_x", "const int weft_bid_y", "const int weft_bid_z", "unsigned char* weft_smem"]
                .map(String::from),
        );
        // Inlined into the dispatcher's switch, or a real call through the
        // ABI on every logical block (which bounds the module's registers
        // by the body's own where inlining inflates them).
        let qualifier = if form.inline { "__forceinline__" } else { "__noinline__" };
        w.line(format!("static __device__ {qualifier} void {}({})", form.name, params.join(", ")));
        w.open("{");
        self.ids(options, &mut w);
        // Shared arrays are typed views of the launch's one dynamic pool, so
        // a bundle needs the most any body needs, not the sum.
        for ((s, data), offset) in k.shared.iter().zip(&shared_offsets) {
            w.line(format!("WEFT_SHARED_VIEW({}, {s}, weft_smem, {offset}, {});", c_type(data.elem), data.len));
        }
        self.vars(&mut w);
        let mut code = w.into_string();
        code.push_str(&body);
        code.push_str("}\n");
        Ok(DeviceFunction {
            name: form.name.clone(),
            prelude: Prelude { helpers: self.helpers },
            code,
            shared_offsets,
            shared_pool_bytes,
        })
    }

    fn uses_type(&self, t: Type) -> bool {
        let k = self.k;
        k.params.values().any(|p| p.ty() == t)
            || k.shared.values().any(|s| s.elem == t)
            || k.vars.values().any(|v| v.ty == t)
            || k.values.values().any(|v| v.ty == t)
            || k.insts
                .values()
                .any(|i| matches!(i, InstData::Cast { to, .. } | InstData::Bitcast { to, .. } if *to == t))
    }

    fn region(&mut self, r: Region, w: &mut CodeWriter) -> Result<(), EmitError> {
        let insts = self.k.regions.get(r).ok_or_else(|| self.kernel_err(format!("region {r} does not exist")))?;
        for &inst in insts {
            self.inst(inst, w).map_err(|reason| EmitError::Inst {
                kernel: self.k.name.clone(),
                inst: inst.to_string(),
                mnemonic: self.k.insts.get(inst).map_or("?", InstData::mnemonic),
                reason,
            })?;
        }
        Ok(())
    }

    fn ty(&self, v: Value) -> R<Type> {
        match self.k.values.get(v) {
            Some(d) if d.def != weft_kir::ValueDef::Undefined => Ok(d.ty),
            Some(_) => Err(format!("value {v} is used but never defined")),
            None => Err(format!("value {v} does not exist")),
        }
    }

    fn inst(&mut self, inst: Inst, w: &mut CodeWriter) -> Result<(), String> {
        let k = self.k;
        let data = k.insts.get(inst).ok_or_else(|| format!("instruction {inst} does not exist"))?;
        let result = k.inst_result.get(inst).copied().flatten();
        // Instructions without a value: statements and control flow.
        match *data {
            InstData::Store { buf, index, value } => {
                let (elem, access) = match k.params.get(buf).map(|p| &p.kind) {
                    Some(ParamKind::Buffer { elem, access, .. }) => (*elem, *access),
                    _ => return Err(format!("{buf} is not a buffer parameter")),
                };
                if !access.can_write() {
                    return Err(format!("store to read-only buffer {buf}"));
                }
                self.int_index(index)?;
                self.same(value, elem, "stored value")?;
                w.line(format!("{}[{index}] = {value};", self.param_names[buf.as_u32() as usize]));
                return Ok(());
            }
            InstData::SharedStore { array, index, value } => {
                let elem = k.shared.get(array).ok_or_else(|| format!("shared array {array} does not exist"))?.elem;
                self.int_index(index)?;
                self.same(value, elem, "stored value")?;
                w.line(format!("{array}[{index}] = {value};"));
                return Ok(());
            }
            InstData::VarSet { var, value } => {
                let ty = k.vars.get(var).ok_or_else(|| format!("variable {var} does not exist"))?.ty;
                self.same(value, ty, "assigned value")?;
                w.line(format!("{var} = {value};"));
                return Ok(());
            }
            InstData::Barrier => {
                self.helpers.insert(barrier_helper(self.barrier));
                w.line(barrier_stmt(self.barrier));
                return Ok(());
            }
            InstData::For { index, start, end, step, body } => {
                let ty = self.ty(start)?;
                if !ty.is_int() {
                    return Err(format!("loop bounds must be integers, not {ty}"));
                }
                self.same(end, ty, "loop end")?;
                if self.k.values.get(index).map(|d| d.ty) != Some(ty) {
                    return Err(format!("loop index {index} must have the bounds' type {ty}"));
                }
                if step <= 0 {
                    return Err(format!("loop step must be positive, not {step}"));
                }
                let step_lit = int_literal(ty, step).ok_or_else(|| format!("loop step {step} does not fit {ty}"))?;
                let t = c_type(ty);
                if self.loop_cannot_wrap(end, ty, step) {
                    w.open(format!("for ({t} {index} = {start}; {index} < {end}; {index} += {step_lit}) {{"));
                } else {
                    // `index += step` could pass the type's maximum and wrap
                    // below `end` (the analysis assumes the index stays in
                    // [start, end - 1]): step only while the distance to
                    // `end`, exact in the unsigned type since index < end,
                    // exceeds the step, else land on `end` and stop.
                    let u = unsigned_c_type(ty);
                    w.open(format!(
                        "for ({t} {index} = {start}; {index} < {end}; \
                         {index} = ({u})(({u}){end} - ({u}){index}) > ({u}){step_lit} ? ({t})({index} + {step_lit}) : {end}) {{"
                    ));
                }
                // The watchdog's hook at every back-edge (nothing on CUDA).
                self.helpers.insert(Helper::LoopTick);
                w.line("WEFT_LOOP_TICK();");
                self.region_str(body, w)?;
                w.close("}");
                return Ok(());
            }
            InstData::If { cond, then, else_ } => {
                self.same(cond, Type::Bool, "if condition")?;
                w.open(format!("if ({cond}) {{"));
                self.region_str(then, w)?;
                if let Some(e) = else_ {
                    w.close("} else {");
                    w.indent += 1;
                    self.region_str(e, w)?;
                }
                w.close("}");
                return Ok(());
            }
            _ => {}
        }
        let v = result.ok_or("instruction defines no value")?;
        let rt = self.ty(v)?;
        let (expr, comment) = self.expr(data, rt)?;
        let comment = comment.map(|c| format!(" // {c}")).unwrap_or_default();
        w.line(format!("const {} {v} = {expr};{comment}", c_type(rt)));
        Ok(())
    }

    /// Emits a nested region. The error is reported against the enclosing
    /// `for`/`if`, with the innermost failing instruction named in the reason.
    fn region_str(&mut self, r: Region, w: &mut CodeWriter) -> Result<(), String> {
        self.region(r, w).map_err(|e| match e {
            EmitError::Inst { inst, mnemonic, reason, .. } => format!("in nested {inst} (`{mnemonic}`): {reason}"),
            EmitError::Kernel { reason, .. } => reason,
        })
    }

    fn same(&self, v: Value, expected: Type, what: &str) -> R<()> {
        let t = self.ty(v)?;
        if t == expected {
            Ok(())
        } else {
            Err(format!("{what} {v} has type {t}, expected {expected}"))
        }
    }

    fn int_index(&self, v: Value) -> R<()> {
        let t = self.ty(v)?;
        if t.is_int() {
            Ok(())
        } else {
            Err(format!("index {v} has type {t}, expected an integer"))
        }
    }

    /// The right-hand side of `const T vN = ...;` and an optional comment.
    fn expr(&mut self, data: &InstData, rt: Type) -> R<(String, Option<String>)> {
        let k = self.k;
        Ok(match *data {
            InstData::Const(s) => {
                if s.ty() != rt {
                    return Err(format!("constant of type {} defines a value of type {rt}", s.ty()));
                }
                const_expr(s)
            }
            InstData::Special(sp) => {
                if rt != Type::I32 {
                    return Err(format!("special registers are i32, not {rt}"));
                }
                let e = match sp {
                    Special::BlockId(a) => format!("bid_{}", a.name()),
                    Special::ThreadId(a) => format!("tid_{}", a.name()),
                    Special::BlockDim(a) => k.launch.block[a.index()].to_string(),
                    Special::GridDim(a) => k.launch.grid[a.index()].to_string(),
                    Special::LaneId => {
                        self.uses_lane = true;
                        "lane_id".to_string()
                    }
                };
                (e, matches!(sp, Special::BlockDim(_) | Special::GridDim(_)).then(|| sp.name()))
            }
            InstData::ScalarParam(p) => match k.params.get(p).map(|d| &d.kind) {
                Some(ParamKind::Scalar { ty }) if *ty == rt => (self.param_names[p.as_u32() as usize].clone(), None),
                Some(ParamKind::Scalar { ty }) => return Err(format!("scalar {p} is {ty}, result is {rt}")),
                _ => return Err(format!("{p} is not a scalar parameter")),
            },
            InstData::Unary { op, arg } => {
                let t = self.ty(arg)?;
                if t != rt {
                    return Err(format!("operand {arg} is {t} but the result is {rt}"));
                }
                (unary(op, t, &arg.to_string())?, None)
            }
            InstData::Binary { op, lhs, rhs } => {
                let t = self.ty(lhs)?;
                self.same(rhs, t, "right operand")?;
                if t != rt {
                    return Err(format!("operands are {t} but the result is {rt}"));
                }
                (self.binary(op, t, &lhs.to_string(), &rhs.to_string())?, None)
            }
            InstData::Fma { a, b, c } => {
                let t = self.ty(a)?;
                self.same(b, t, "operand b")?;
                self.same(c, t, "operand c")?;
                if t != rt {
                    return Err(format!("operands are {t} but the result is {rt}"));
                }
                let e = if t == Type::F64 {
                    format!("__fma_rn({a}, {b}, {c})")
                } else if t.is_float() {
                    round_to(t, format!("__fmaf_rn({}, {}, {})", as_f32(t, a), as_f32(t, b), as_f32(t, c)))
                } else if t.is_int() {
                    let u = ucast(t);
                    wrap_int(t, &format!("{u}{a} * {u}{b} + {u}{c}"))
                } else {
                    return Err("fma on bool".into());
                };
                (e, None)
            }
            InstData::Cmp { op, lhs, rhs } => {
                let t = self.ty(lhs)?;
                self.same(rhs, t, "right operand")?;
                if rt != Type::Bool {
                    return Err(format!("comparisons produce bool, not {rt}"));
                }
                let sym = match op {
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                (format!("{} {sym} {}", as_f32(t, lhs), as_f32(t, rhs)), None)
            }
            InstData::Select { cond, if_true, if_false } => {
                self.same(cond, Type::Bool, "condition")?;
                self.same(if_true, rt, "true operand")?;
                self.same(if_false, rt, "false operand")?;
                (format!("{cond} ? {if_true} : {if_false}"), None)
            }
            InstData::Cast { to, arg } => {
                if to != rt {
                    return Err(format!("cast to {to} defines a value of type {rt}"));
                }
                let from = self.ty(arg)?;
                if (from.is_int() || from == Type::F64) && matches!(to, Type::F16 | Type::BF16 | Type::F32) {
                    self.helpers.insert(Helper::RoundToOdd);
                }
                (cast(from, to, &arg.to_string()), None)
            }
            InstData::Bitcast { to, arg } => {
                if to != rt {
                    return Err(format!("bitcast to {to} defines a value of type {rt}"));
                }
                let from = self.ty(arg)?;
                if from.size_bytes() != to.size_bytes() {
                    return Err(format!("bitcast of {from} to {to}, a type of another size"));
                }
                (bitcast(from, to, &arg.to_string()), None)
            }
            InstData::Load { buf, index } => {
                let elem = match k.params.get(buf).map(|p| &p.kind) {
                    Some(ParamKind::Buffer { elem, .. }) => *elem,
                    _ => return Err(format!("{buf} is not a buffer parameter")),
                };
                if elem != rt {
                    return Err(format!("buffer {buf} holds {elem} but the result is {rt}"));
                }
                self.int_index(index)?;
                (format!("{}[{index}]", self.param_names[buf.as_u32() as usize]), None)
            }
            InstData::SharedLoad { array, index } => {
                let elem = k.shared.get(array).ok_or_else(|| format!("shared array {array} does not exist"))?.elem;
                if elem != rt {
                    return Err(format!("shared array {array} holds {elem} but the result is {rt}"));
                }
                self.int_index(index)?;
                (format!("{array}[{index}]"), None)
            }
            InstData::VarGet(var) => {
                let ty = k.vars.get(var).ok_or_else(|| format!("variable {var} does not exist"))?.ty;
                if ty != rt {
                    return Err(format!("variable {var} is {ty} but the result is {rt}"));
                }
                (var.to_string(), None)
            }
            InstData::Shuffle { kind, value, operand, width } => {
                self.same(value, rt, "shuffled value")?;
                let ot = self.ty(operand)?;
                if !ot.is_int() {
                    return Err(format!("shuffle operand {operand} is {ot}, expected an integer"));
                }
                let warp = CODEGEN_TARGET.warp_size;
                if !(1..=warp).contains(&width) || !width.is_power_of_two() {
                    return Err(format!("shuffle width {width} is not a power of two in 1..={warp}"));
                }
                let (f, op) = if self.shuffle_needs_source(kind, operand, width) {
                    // Computed source lane, read with an `idx` shuffle: KIR's
                    // semantics for every operand (see SHUFFLE_SOURCE_PRELUDE).
                    self.helpers.insert(Helper::ShuffleSource);
                    self.uses_lane = true;
                    let code = match kind {
                        ShuffleKind::Idx => 0,
                        ShuffleKind::Up => 1,
                        ShuffleKind::Down => 2,
                        ShuffleKind::Xor => 3,
                    };
                    let src = format!("weft_shfl_source({code}, lane_id, (long long){operand}, {width})");
                    ("__shfl_sync", src)
                } else {
                    match kind {
                        ShuffleKind::Idx => ("__shfl_sync", format!("(int){operand}")),
                        ShuffleKind::Up => ("__shfl_up_sync", format!("(unsigned int){operand}")),
                        ShuffleKind::Down => ("__shfl_down_sync", format!("(unsigned int){operand}")),
                        ShuffleKind::Xor => ("__shfl_xor_sync", format!("(int){operand}")),
                    }
                };
                let call = |x: String| format!("{f}(0xffffffffu, {x}, {op}, {width})");
                // f16/bf16/bool travel as their bits in an int: exact, and
                // independent of which overloads the headers provide.
                let e = match rt {
                    Type::F16 | Type::BF16 => format!("({}){}", c_type(rt), call(format!("(unsigned int){value}"))),
                    Type::Bool => format!("{} != 0", call(format!("(int){value}"))),
                    Type::I8 | Type::U8 | Type::I16 | Type::U16 => {
                        format!("({}){}", c_type(rt), call(format!("(int){value}")))
                    }
                    _ => call(value.to_string()),
                };
                (e, None)
            }
            InstData::Store { .. }
            | InstData::SharedStore { .. }
            | InstData::VarSet { .. }
            | InstData::Barrier
            | InstData::For { .. }
            | InstData::If { .. } => return Err("instruction defines no value".into()),
        })
    }

    /// Whether `for (i = start; i < end; i += step)` in `ty` can never step
    /// past the type's maximum: a step of 1 stops at `end` at the latest, and
    /// a constant `end` with `end + step - 1` in range leaves room for the
    /// last step.
    fn loop_cannot_wrap(&self, end: Value, ty: Type, step: i64) -> bool {
        if step == 1 {
            return true;
        }
        let max: i128 = ty.int_range().map_or(i64::MAX as i128, |(_, hi)| hi);
        let constant = match self.k.values.get(end).map(|d| d.def) {
            Some(weft_kir::ValueDef::Result(i)) => match self.k.insts.get(i) {
                Some(InstData::Const(s)) => s.as_i64(),
                _ => None,
            },
            _ => None,
        };
        constant.is_some_and(|e| e as i128 + step as i128 - 1 <= max)
    }

    /// Whether a shuffle's operand could make `shfl.sync` and KIR disagree:
    /// the hardware uses the operand's low 5 bits and lets `xor` read an
    /// earlier segment, where KIR keeps the lane's own value. Constant
    /// operands in the range both agree on need no guard, so the usual
    /// reductions compile to a plain shuffle.
    fn shuffle_needs_source(&self, kind: ShuffleKind, operand: Value, width: u32) -> bool {
        let k = self.k;
        let constant = match k.values.get(operand).map(|d| d.def) {
            Some(weft_kir::ValueDef::Result(i)) => match k.insts.get(i) {
                Some(InstData::Const(s)) => s.as_i64(),
                _ => None,
            },
            _ => None,
        };
        let Some(op) = constant else { return true };
        match kind {
            ShuffleKind::Idx => false,
            ShuffleKind::Up | ShuffleKind::Down => !(0..32).contains(&op),
            ShuffleKind::Xor => !(0..width as i64).contains(&op),
        }
    }

    fn binary(&mut self, op: BinaryOp, t: Type, a: &str, b: &str) -> R<String> {
        let bad = || format!("`{}` is not defined on {t}", op.name());
        Ok(match t {
            Type::F32 | Type::F16 | Type::BF16 => {
                let (fa, fb) = (as_f32_str(t, a), as_f32_str(t, b));
                let e = match op {
                    BinaryOp::Add => format!("__fadd_rn({fa}, {fb})"),
                    BinaryOp::Sub => format!("__fsub_rn({fa}, {fb})"),
                    BinaryOp::Mul => format!("__fmul_rn({fa}, {fb})"),
                    BinaryOp::Div => format!("__fdiv_rn({fa}, {fb})"),
                    BinaryOp::Min => format!("fminf({fa}, {fb})"),
                    BinaryOp::Max => format!("fmaxf({fa}, {fb})"),
                    _ => return Err(bad()),
                };
                round_to(t, e)
            }
            Type::F64 => match op {
                BinaryOp::Add => format!("__dadd_rn({a}, {b})"),
                BinaryOp::Sub => format!("__dsub_rn({a}, {b})"),
                BinaryOp::Mul => format!("__dmul_rn({a}, {b})"),
                BinaryOp::Div => format!("__ddiv_rn({a}, {b})"),
                BinaryOp::Min => format!("fmin({a}, {b})"),
                BinaryOp::Max => format!("fmax({a}, {b})"),
                _ => return Err(bad()),
            },
            Type::I32 | Type::U32 | Type::I64 | Type::U64 | Type::I8 | Type::U8 | Type::I16 | Type::U16 => {
                let u = ucast(t);
                let bits = t.int_bits().map_or(31, |b| b - 1);
                match op {
                    BinaryOp::Add => wrap_int(t, &format!("{u}{a} + {u}{b}")),
                    BinaryOp::Sub => wrap_int(t, &format!("{u}{a} - {u}{b}")),
                    BinaryOp::Mul => wrap_int(t, &format!("{u}{a} * {u}{b}")),
                    BinaryOp::Div | BinaryOp::Rem => {
                        let h = match (op, t) {
                            (BinaryOp::Div, Type::I32) => Helper::DivI32,
                            (BinaryOp::Div, Type::U32) => Helper::DivU32,
                            (BinaryOp::Div, Type::U64) => Helper::DivU64,
                            (BinaryOp::Div, Type::I8) => Helper::DivI8,
                            (BinaryOp::Div, Type::U8) => Helper::DivU8,
                            (BinaryOp::Div, Type::I16) => Helper::DivI16,
                            (BinaryOp::Div, Type::U16) => Helper::DivU16,
                            (BinaryOp::Div, _) => Helper::DivI64,
                            (_, Type::I32) => Helper::RemI32,
                            (_, Type::U32) => Helper::RemU32,
                            (_, Type::U64) => Helper::RemU64,
                            (_, Type::I8) => Helper::RemI8,
                            (_, Type::U8) => Helper::RemU8,
                            (_, Type::I16) => Helper::RemI16,
                            (_, Type::U16) => Helper::RemU16,
                            _ => Helper::RemI64,
                        };
                        self.helpers.insert(h);
                        format!("weft_{}_{}({a}, {b})", op.name(), t.name())
                    }
                    BinaryOp::Min => format!("{a} < {b} ? {a} : {b}"),
                    BinaryOp::Max => format!("{a} > {b} ? {a} : {b}"),
                    BinaryOp::And => format!("{a} & {b}"),
                    BinaryOp::Or => format!("{a} | {b}"),
                    BinaryOp::Xor => format!("{a} ^ {b}"),
                    BinaryOp::Shl => wrap_int(t, &format!("{u}{a} << ({b} & {bits})")),
                    BinaryOp::Shr => format!("{a} >> ({b} & {bits})"),
                }
            }
            Type::Bool => match op {
                BinaryOp::And => format!("{a} && {b}"),
                BinaryOp::Or => format!("{a} || {b}"),
                BinaryOp::Xor => format!("{a} != {b}"),
                _ => return Err(bad()),
            },
        })
    }
}

/// `(unsigned int)` / `(unsigned long long)` for signed types (and for the
/// 8- and 16-bit types, which C would promote to signed `int`), nothing for
/// u32 and u64.
fn ucast(t: Type) -> &'static str {
    match t {
        Type::I32 | Type::I8 | Type::U8 | Type::I16 | Type::U16 => "(unsigned int)",
        Type::I64 => "(unsigned long long)",
        _ => "",
    }
}

/// Casts an unsigned-domain expression back to `t` (a no-op for u32 and
/// u64; narrow types keep the low bits).
fn wrap_int(t: Type, unsigned_expr: &str) -> String {
    match t {
        Type::I32 => format!("(int)({unsigned_expr})"),
        Type::I64 => format!("(long long)({unsigned_expr})"),
        Type::I8 | Type::I16 => format!("({})({})({unsigned_expr})", c_type(t), unsigned_c_type(t)),
        Type::U8 | Type::U16 => format!("({})({unsigned_expr})", c_type(t)),
        _ => unsigned_expr.to_string(),
    }
}

fn as_f32(t: Type, v: Value) -> String {
    as_f32_str(t, &v.to_string())
}

/// A float-typed operand read as `float` (ints and bools unchanged).
fn as_f32_str(t: Type, v: &str) -> String {
    match t {
        Type::F16 => format!("weft_f16_to_f32({v})"),
        Type::BF16 => format!("weft_bf16_to_f32({v})"),
        _ => v.to_string(),
    }
}

/// Rounds a `float` expression to `t` (nearest-even).
fn round_to(t: Type, e: String) -> String {
    match t {
        Type::F16 => format!("weft_f32_to_f16({e})"),
        Type::BF16 => format!("weft_f32_to_bf16({e})"),
        _ => e,
    }
}

fn unary(op: UnaryOp, t: Type, a: &str) -> R<String> {
    let bad = || format!("`{}` is not defined on {t}", op.name());
    if t == Type::F64 {
        return Ok(match op {
            UnaryOp::Neg => format!("-{a}"),
            UnaryOp::Not => return Err(bad()),
            UnaryOp::Abs => format!("fabs({a})"),
            UnaryOp::Exp => format!("exp({a})"),
            UnaryOp::Log => format!("log({a})"),
            UnaryOp::Sqrt => format!("__dsqrt_rn({a})"),
            UnaryOp::Rsqrt => format!("__ddiv_rn(1.0, __dsqrt_rn({a}))"),
            UnaryOp::Tanh => format!("tanh({a})"),
            UnaryOp::Erf => format!("erf({a})"),
            UnaryOp::Floor => format!("floor({a})"),
            UnaryOp::Ceil => format!("ceil({a})"),
            UnaryOp::Sin => format!("sin({a})"),
            UnaryOp::Cos => format!("cos({a})"),
            UnaryOp::Atan => format!("atan({a})"),
        });
    }
    if t.is_float() {
        let fa = as_f32_str(t, a);
        let e = match op {
            UnaryOp::Neg => format!("-{fa}"),
            UnaryOp::Not => return Err(bad()),
            UnaryOp::Abs => format!("fabsf({fa})"),
            UnaryOp::Exp => format!("expf({fa})"),
            UnaryOp::Log => format!("logf({fa})"),
            UnaryOp::Sqrt => format!("__fsqrt_rn({fa})"),
            // Two correctly rounded ops, as the interpreter computes it;
            // `rsqrtf` is an approximation (2 ulp) and would break bit equality.
            UnaryOp::Rsqrt => format!("__fdiv_rn(1.0f, __fsqrt_rn({fa}))"),
            UnaryOp::Tanh => format!("tanhf({fa})"),
            UnaryOp::Erf => format!("erff({fa})"),
            UnaryOp::Floor => format!("floorf({fa})"),
            UnaryOp::Ceil => format!("ceilf({fa})"),
            UnaryOp::Sin => format!("sinf({fa})"),
            UnaryOp::Cos => format!("cosf({fa})"),
            UnaryOp::Atan => format!("atanf({fa})"),
        };
        return Ok(round_to(t, e));
    }
    let u = ucast(t);
    Ok(match (op, t) {
        (UnaryOp::Not, Type::Bool) => format!("!{a}"),
        (_, Type::Bool) => return Err(bad()),
        (UnaryOp::Neg, _) => wrap_int(t, &format!("0{} - {u}{a}", zero_suffix(t))),
        // Narrow operands promote to int; keep the low bits of the complement.
        (UnaryOp::Not, Type::I8 | Type::U8 | Type::I16 | Type::U16) => wrap_int(t, &format!("~{u}{a}")),
        (UnaryOp::Not, _) => format!("~{a}"),
        (UnaryOp::Abs, Type::U32 | Type::U64 | Type::U8 | Type::U16) => a.to_string(),
        (UnaryOp::Abs, _) => format!("{a} < 0 ? {} : {a}", wrap_int(t, &format!("0{} - {u}{a}", zero_suffix(t)))),
        _ => return Err(bad()),
    })
}

fn zero_suffix(t: Type) -> &'static str {
    match t {
        Type::I64 | Type::U64 => "ull",
        _ => "u",
    }
}

/// An integer literal of type `t`, if `v` fits.
fn int_literal(t: Type, v: i64) -> Option<String> {
    match t {
        Type::I32 => i32::try_from(v).ok().map(|v| v.to_string()),
        Type::U32 => u32::try_from(v).ok().map(|v| format!("{v}u")),
        Type::I64 => Some(format!("{v}ll")),
        Type::U64 => u64::try_from(v).ok().map(|v| format!("{v}ull")),
        Type::I8 | Type::U8 | Type::I16 | Type::U16 => {
            let (lo, hi) = t.int_range()?;
            (lo..=hi).contains(&(v as i128)).then(|| format!("({}){v}", c_type(t)))
        }
        _ => None,
    }
}

fn const_expr(s: Scalar) -> (String, Option<String>) {
    match s {
        Scalar::Bool(b) => (b.to_string(), None),
        Scalar::I32(i32::MIN) => ("(int)(-2147483647 - 1)".into(), None),
        Scalar::I32(v) => (v.to_string(), None),
        Scalar::U32(v) => (format!("{v}u"), None),
        Scalar::I64(i64::MIN) => ("(long long)(-9223372036854775807ll - 1ll)".into(), None),
        Scalar::I64(v) => (format!("{v}ll"), None),
        Scalar::F32(v) => (format!("__uint_as_float({:#010x}u)", v.to_bits()), Some(s.to_string())),
        Scalar::F16(v) => (format!("(weft_f16){:#06x}u", v.to_bits()), Some(s.to_string())),
        Scalar::BF16(v) => (format!("(weft_bf16){:#06x}u", v.to_bits()), Some(s.to_string())),
        Scalar::I8(v) => (format!("(signed char)({v})"), None),
        Scalar::U8(v) => (format!("(unsigned char){v}u"), None),
        Scalar::I16(v) => (format!("(short)({v})"), None),
        Scalar::U16(v) => (format!("(unsigned short){v}u"), None),
        Scalar::U64(v) => (format!("{v}ull"), None),
        Scalar::F64(v) => (format!("__longlong_as_double((long long){:#018x}ull)", v.to_bits()), Some(s.to_string())),
    }
}

/// A conversion with C semantics; float→int saturates and maps NaN to 0.
fn cast(from: Type, to: Type, a: &str) -> String {
    if from == to {
        return a.to_string();
    }
    let fa = as_f32_str(from, a);
    match (from, to) {
        (_, Type::Bool) => {
            if from.is_float() {
                format!("{fa} != 0.0f")
            } else {
                format!("{a} != 0")
            }
        }
        (Type::Bool, _) => match to {
            Type::F16 => format!("(weft_f16)({a} ? 0x3c00u : 0u)"),
            Type::BF16 => format!("(weft_bf16)({a} ? 0x3f80u : 0u)"),
            _ => format!("({}){a}", c_type(to)),
        },
        // Float to integer: truncate, saturate, NaN -> 0 (PTX cvt.rzi semantics).
        (Type::F64, Type::I32) => format!("__double2int_rz({a})"),
        (Type::F64, Type::U32) => format!("__double2uint_rz({a})"),
        (Type::F64, Type::I64) => format!("__double2ll_rz({a})"),
        (Type::F64, Type::U64) => format!("__double2ull_rz({a})"),
        (_, Type::I32) if from.is_float() => format!("__float2int_rz({fa})"),
        (_, Type::U32) if from.is_float() => format!("__float2uint_rz({fa})"),
        (_, Type::I64) if from.is_float() => format!("__float2ll_rz({fa})"),
        (_, Type::U64) if from.is_float() => format!("__float2ull_rz({fa})"),
        // 8- and 16-bit targets: saturate through int (whose range holds theirs).
        (_, Type::I8 | Type::U8 | Type::I16 | Type::U16) if from.is_float() => {
            let i = if from == Type::F64 { format!("__double2int_rz({a})") } else { format!("__float2int_rz({fa})") };
            let (lo, hi) = to.int_range().unwrap_or((0, 0));
            format!("({})({i} < {lo} ? {lo} : {i} > {hi} ? {hi} : {i})", c_type(to))
        }
        // Float to float: through float (exact for f16/bf16), then round;
        // from f64 once (f16/bf16 through a round-to-odd float).
        (Type::F64, Type::F32) => format!("weft_f64_to_f32({a})"),
        (Type::F64, _) => round_to(to, format!("weft_f64_to_f32_odd({a})")),
        (_, Type::F64) if from.is_float() => format!("(double){fa}"),
        (_, Type::F32) if from.is_float() => fa,
        (_, Type::F16 | Type::BF16) if from.is_float() => round_to(to, fa),
        // Integer to float: one correctly rounded conversion.
        (Type::I32, Type::F32) => format!("__int2float_rn({a})"),
        (Type::U32, Type::F32) => format!("__uint2float_rn({a})"),
        (Type::I64, Type::F32) => format!("__ll2float_rn({a})"),
        (Type::U64, Type::F32) => format!("__ull2float_rn({a})"),
        (_, Type::F32) => format!("__int2float_rn((int){a})"),
        (Type::I64, Type::F64) => format!("__ll2double_rn({a})"),
        (Type::U64, Type::F64) => format!("__ull2double_rn({a})"),
        (_, Type::F64) => format!("(double){a}"),
        (Type::U64, Type::F16 | Type::BF16) => round_to(to, format!("weft_ull_to_f32_odd({a})")),
        (_, Type::F16 | Type::BF16) => round_to(to, format!("weft_ll_to_f32_odd((long long){a})")),
        // Integer to integer: two's-complement truncation or extension.
        (Type::I64, Type::I32) => format!("(int)(unsigned int){a}"),
        (_, to) => format!("({}){a}", c_type(to)),
    }
}

const RESERVED: &[&str] = &[
    // C++ keywords and alternative tokens.
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char16_t",
    "char32_t",
    "char8_t",
    "class",
    "compl",
    "concept",
    "const",
    "const_cast",
    "consteval",
    "constexpr",
    "constinit",
    "continue",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    "main",
    // CUDA built-ins.
    "threadIdx",
    "blockIdx",
    "blockDim",
    "gridDim",
    "warpSize",
    // Names the emitter itself defines.
    "bid_x",
    "bid_y",
    "bid_z",
    "tid_x",
    "tid_y",
    "tid_z",
    "lane_id",
];

/// Turns a KIR name into a C identifier that cannot clash with C++ keywords,
/// CUDA built-ins, the emitter's own names (`v12`, `x0`, `s1`, `bid_x`,
/// `weft_*`, `__*`) or a name already in `used`.
pub fn c_ident(name: &str, used: &mut HashSet<String>) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let generated = |s: &str| {
        let mut chars = s.chars();
        matches!(chars.next(), Some('v' | 'x' | 's' | 'i' | 'p' | 'r' | 'k'))
            && s.len() > 1
            && chars.all(|c| c.is_ascii_digit())
    };
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) || s.starts_with('_') {
        s = format!("p_{}", s.trim_start_matches('_'));
    }
    if RESERVED.contains(&s.as_str()) || generated(&s) || s.starts_with("weft_") || s.starts_with("__") {
        s.push('_');
    }
    let mut candidate = s.clone();
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = format!("{s}_{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}
