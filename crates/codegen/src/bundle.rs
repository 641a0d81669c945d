//! Bundles: several kernel bodies in one launch, one CUDA module per launch class.
//!
//! The packer puts slots of many tenants into one launch (DESIGN.md, "The
//! packer as a VLIW machine"). Code is keyed by kernel bodies and tenants are
//! data (principle 1), so [`emit_bundle`] sees only the distinct bodies and the
//! launch's block size: its output never depends on how many slots there are,
//! which tenants they belong to, their buffers or their block budgets. Equal
//! launch classes give equal text, and the compiler's cache turns that into one
//! NVRTC run per class.
//!
//! The module has three parts:
//!
//! - every body as a `static __device__` function ([`emit_device_function`]):
//!   its parameters, then the logical block id (`weft_bid_x/y/z`) and the
//!   shared-memory pool. Thread ids are `threadIdx.x` split by the body's own
//!   static block shape (the launch is 1-D, `block_threads` wide). Shared
//!   arrays are typed views into one dynamic pool at 16-byte aligned offsets,
//!   so a launch needs the most any body needs ([`bundle_shared_bytes`]), not
//!   the sum. A body as wide as the launch keeps `__syncthreads()`; a narrower
//!   one has its barriers turned into `bar.sync 1, N` over its N threads
//!   (principle 4), since the launch's other warps have already returned. That
//!   requires N to be whole warps; otherwise emission fails.
//! - the slot table's row type, `struct WeftSlot` (see [`SlotRow`], its host
//!   twin): `{ body, first_block, num_blocks, grid_x, grid_y, grid_z, threads,
//!   arg_offset }`, all `int`.
//! - the dispatcher `weft_bundle(slots, nslots, args)`: each physical block
//!   binary-searches its slot (as `SlotTable::slot_of` in weft-pack), returns
//!   idle threads, and loops over the slot's logical blocks `blockIdx.x -
//!   first_block, + num_blocks, ...` splitting each into `(x, y, z)` exactly as
//!   `SlotEntry::logical_coords` does. Between two logical blocks of one
//!   persistent block it waits on a barrier (named when narrower) so no warp
//!   overwrites shared memory another warp of the previous logical block still
//!   reads. A module for single-pass launches only ([`BundleForm::single_pass`]:
//!   every slot has a physical block per logical block, as in a coalesced
//!   launch) runs the one logical block `blockIdx.x - first_block` with no
//!   loop, so nothing of the loop stays live around the body (it costs
//!   registers, and with them blocks per SM).
//!
//! The logical grid and thread count the dispatcher loops over are the body's
//! static shape, compiled in, not the table's `grid_*`/`threads` columns: a
//! damaged table can then neither run a body outside its grid (reading or
//! writing past a tenant's buffers, principle 5) nor leave a barrier waiting
//! for threads that returned. The executor checks that the table's columns
//! agree with the bodies before launching; they stay in the row for tools and
//! for a later dispatcher that pulls slots from a device-side queue.
//!
//! **Arguments** travel as one array of 8-byte words, `void* args[]`; slot `s`
//! reads its kernel's parameters at `args[slots[s].arg_offset ..]`, one word
//! per parameter in order.
//!
//! **Where the table and words live.** On the GPU both sit in the module's
//! constant memory ([`SLOT_TABLE_SYMBOL`], [`ARG_WORDS_SYMBOL`]), written
//! before each launch: a block reads its row and words at a block-uniform
//! index, which the compiler serves from the uniform datapath, so a body's
//! buffer addresses stay out of its threads' registers as a kernel's own
//! parameters do. Read from global memory instead, every address a body
//! uses is held in two registers per thread for the whole body (an SGEMM
//! body: 64 registers alone, 79 in such a bundle, 64 with the constant
//! table). A launch holds at most [`CONSTANT_TABLE_ROWS`] rows and
//! [`CONSTANT_ARG_WORDS`] words; an executor cuts a larger one into
//! consecutive launches of whole slots (slots of one launch are
//! independent). A module with a body of more parameters than the words
//! hold ([`constant_launch_table`] is false) reads the table and words
//! through the entry's pointers instead, as a host build always does (the
//! entry keeps both pointers either way, so its signature never changes). A buffer's word is its device address. A scalar is
//! packed into its word ([`pack_scalar`]): its bits, zero-extended, read back
//! with an integer cast of the pointer value. Packing rather than a pointer to
//! a device copy saves an allocation, an upload and a dependent load per
//! scalar, and the integer cast avoids type-punning through memory.

use std::collections::HashSet;

use weft_kir::{Axis, KernelDef, ParamKind, Scalar, Type};

use crate::emit::{
    barrier_stmt, c_ident, c_type, emit_device_function, shared_pool_layout, BarrierForm, BlockMapping, CodeWriter,
    CudaSource, DeviceForm, EmitError, EmitOptions, Prelude, CODEGEN_TARGET, PLATFORM_GUARD,
};

/// The dispatcher's `extern "C"` name.
pub const BUNDLE_ENTRY: &str = "weft_bundle";

/// The barrier id narrower bodies synchronise on (`__syncthreads()` is 0).
/// One id is enough: a physical block runs one slot, hence one body.
pub const NAMED_BARRIER_ID: u32 = 1;

/// `int`s in one row of the device slot table (`struct WeftSlot`).
pub const SLOT_FIELDS: usize = 8;

/// Rows of the slot table one launch of a constant-table module carries.
pub const CONSTANT_TABLE_ROWS: usize = 1024;

/// Argument words one launch of a constant-table module carries (with the
/// rows, 64 KiB: the constant memory a module may declare).
pub const CONSTANT_ARG_WORDS: usize = 4096;

/// The constant-memory symbol holding a launch's slot table.
pub const SLOT_TABLE_SYMBOL: &str = "weft_slot_table";

/// The constant-memory symbol holding a launch's argument words.
pub const ARG_WORDS_SYMBOL: &str = "weft_arg_words";

/// Whether a module of `bodies` reads its launch's table and words from
/// constant memory on the GPU (see the module docs): unless one slot of a
/// body would need more words than [`CONSTANT_ARG_WORDS`].
pub fn constant_launch_table(bodies: &[&KernelDef]) -> bool {
    bodies.iter().all(|k| k.params.len() <= CONSTANT_ARG_WORDS)
}

/// Name given to errors about the bundle as a whole.
const BUNDLE_NAME: &str = "<bundle>";

/// One row of the device slot table, the host twin of `struct WeftSlot`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct SlotRow {
    /// Index of the slot's body in the `bodies` given to [`emit_bundle`].
    pub body: u32,
    pub first_block: u32,
    pub num_blocks: u32,
    /// The body's logical grid (checked by the executor, not read by the dispatcher).
    pub grid: [u32; 3],
    /// The body's threads per block (likewise).
    pub threads: u32,
    /// Index of the slot's first argument word.
    pub arg_offset: u32,
}

impl SlotRow {
    /// The row as the device reads it: [`SLOT_FIELDS`] little-endian `int`s.
    /// `None` when a field does not fit an `int`.
    pub fn to_le_bytes(&self) -> Option<[u8; SLOT_FIELDS * 4]> {
        let fields = [
            self.body,
            self.first_block,
            self.num_blocks,
            self.grid[0],
            self.grid[1],
            self.grid[2],
            self.threads,
            self.arg_offset,
        ];
        let mut out = [0u8; SLOT_FIELDS * 4];
        for (chunk, f) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&i32::try_from(f).ok()?.to_le_bytes());
        }
        Some(out)
    }
}

/// A scalar argument packed into its argument word (see the module docs).
pub fn pack_scalar(s: Scalar) -> u64 {
    match s {
        Scalar::Bool(b) => b as u64,
        // Integers and floats as their own bits, zero-extended.
        _ => s.to_bits() & scalar_mask(s.ty()),
    }
}

fn scalar_mask(t: Type) -> u64 {
    match t.size_bytes() {
        8 => u64::MAX,
        n => (1u64 << (8 * n)) - 1,
    }
}

/// Bytes of dynamic shared memory a launch of these bodies needs: the
/// largest pool any body uses.
pub fn bundle_shared_bytes(bodies: &[&KernelDef]) -> u64 {
    bodies.iter().map(|k| shared_pool_layout(k).1).max().unwrap_or(0)
}

/// Logical block ids from the dispatcher; thread ids split from the 1-D
/// physical block by the body's static block shape (x fastest, as CUDA
/// linearises `threadIdx`).
struct SlotIds;

impl BlockMapping for SlotIds {
    fn prologue(&self, kernel: &KernelDef, w: &mut CodeWriter) {
        let [bx, by, bz] = kernel.launch.block;
        w.line("// Logical block id from the bundle's slot table; thread ids split the 1-D physical block.");
        for a in Axis::ALL {
            w.line(format!("const int bid_{0} = weft_bid_{0};", a.name()));
        }
        let t = "(int)threadIdx.x";
        let tid_x = if by == 1 && bz == 1 {
            t.to_string()
        } else if bx == 1 {
            "0".to_string()
        } else {
            format!("{t} % {bx}")
        };
        let tid_y = match (by, bz) {
            (1, _) => "0".to_string(),
            (_, 1) => format!("{t} / {bx}"),
            _ => format!("({t} / {bx}) % {by}"),
        };
        let tid_z = if bz == 1 { "0".to_string() } else { format!("{t} / {}", bx * by) };
        w.line(format!("const int tid_x = {tid_x};"));
        w.line(format!("const int tid_y = {tid_y};"));
        w.line(format!("const int tid_z = {tid_z};"));
    }
}

/// The barrier that synchronises a body's `threads` threads in a launch of
/// `block_threads`.
fn barrier_form(threads: u32, block_threads: u32) -> BarrierForm {
    if threads == block_threads {
        BarrierForm::Block
    } else {
        BarrierForm::Named { id: NAMED_BARRIER_ID, threads }
    }
}

fn kernel_err(kernel: &KernelDef, reason: String) -> EmitError {
    EmitError::Kernel { kernel: kernel.name.clone(), reason }
}

/// Checks that `kernel` can run in a launch of `block_threads` threads.
fn check_body(index: usize, kernel: &KernelDef, block_threads: u32) -> Result<(u32, u64), EmitError> {
    let threads = kernel.launch.threads_per_block();
    if threads == 0 || threads > block_threads as u64 {
        return Err(kernel_err(
            kernel,
            format!(
                "bundle body {index} has {threads} threads per block, but the bundle's blocks have {block_threads}; \
                 the launch must be at least as wide as its widest body"
            ),
        ));
    }
    let threads = threads as u32;
    let warp = CODEGEN_TARGET.warp_size;
    if threads != block_threads && !threads.is_multiple_of(warp) {
        return Err(kernel_err(
            kernel,
            format!(
                "bundle body {index} has {threads} threads per block, narrower than the bundle's {block_threads} \
                 and not a multiple of {warp}: its barriers become `bar.sync` over its active warps, which counts \
                 whole warps. Give the kernel a multiple of {warp} threads or bundle it with kernels of its own width"
            ),
        ));
    }
    if kernel.launch.grid.iter().any(|&d| d > i32::MAX as u32) {
        return Err(kernel_err(
            kernel,
            format!("logical grid {:?} has a dimension above 2^31 - 1 (KIR block ids are i32)", kernel.launch.grid),
        ));
    }
    let logical = kernel.launch.num_blocks();
    if logical > u32::MAX as u64 {
        return Err(kernel_err(
            kernel,
            format!("logical grid {:?} has {logical} blocks; a bundle slot runs at most 2^32 - 1", kernel.launch.grid),
        ));
    }
    Ok((threads, logical))
}

/// The C expression reading parameter `i` of a slot from its argument words `a`.
fn arg_expr(kind: &ParamKind, i: usize) -> String {
    let word = format!("(unsigned long long)a[{i}]");
    match *kind {
        ParamKind::Buffer { elem, access, .. } => {
            let c = if access.can_write() { "" } else { "const " };
            format!("({c}{}*)a[{i}]", c_type(elem))
        }
        ParamKind::Scalar { ty } => match ty {
            Type::Bool => format!("{word} != 0ull"),
            Type::I32 => format!("(int)(unsigned int){word}"),
            Type::U32 => format!("(unsigned int){word}"),
            Type::I64 => format!("(long long){word}"),
            Type::F32 => format!("__uint_as_float((unsigned int){word})"),
            Type::F16 | Type::BF16 | Type::I16 | Type::U16 => format!("({})(unsigned short){word}", c_type(ty)),
            Type::I8 | Type::U8 => format!("({})(unsigned char){word}", c_type(ty)),
            Type::U64 => word,
            Type::F64 => format!("__longlong_as_double((long long){word})"),
        },
    }
}

/// How a bundle module is built, beyond its bodies and block size: the
/// forms a compiler tries to keep the module's occupancy at its bodies'.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct BundleForm {
    /// Bodies inlined into the dispatcher (`true`) or called (`false`).
    pub inline_bodies: bool,
    /// The minimum resident blocks per SM promised to ptxas
    /// (`__launch_bounds__`'s second figure), which caps the registers.
    pub min_blocks_per_sm: Option<u32>,
    /// The most registers per thread ptxas may give the module
    /// (`__maxnreg__`, which CUDA takes only in place of
    /// `__launch_bounds__`, so never with `min_blocks_per_sm`), a cap
    /// derived from the bodies' own allocation. ptxas spills what does not
    /// fit, so a compiler checks the spills.
    pub max_registers: Option<u32>,
    /// Launches of the module give every slot a physical block per logical
    /// block (the launch class says so; it is not a choice): each physical
    /// block runs one logical block, without the loop a constrained slot
    /// needs. Such a module runs a constrained table's first round only, so
    /// only launches of a single-pass class may use it.
    pub single_pass: bool,
}

impl Default for BundleForm {
    fn default() -> BundleForm {
        BundleForm { inline_bodies: true, min_blocks_per_sm: None, max_registers: None, single_pass: false }
    }
}

impl BundleForm {
    /// A short name for tables: `inline`, `call`, `inline/min4`,
    /// `call/min4`, `inline/reg40`, with `/1pass` for a single-pass module.
    pub fn name(&self) -> String {
        let base = if self.inline_bodies { "inline" } else { "call" };
        let min = self.min_blocks_per_sm.map_or_else(String::new, |n| format!("/min{n}"));
        let reg = self.max_registers.map_or_else(String::new, |n| format!("/reg{n}"));
        let pass = if self.single_pass { "/1pass" } else { "" };
        format!("{base}{min}{reg}{pass}")
    }
}

/// Emits one CUDA module running any slots of `bodies` in blocks of
/// `block_threads` threads; see the module docs for its structure.
///
/// The text depends only on `bodies` (in order: a slot's `body` indexes
/// them) and `block_threads`. Fails with an [`EmitError`] naming the kernel
/// when a body cannot be emitted, is wider than `block_threads`, or is
/// narrower with a thread count that is not whole warps.
pub fn emit_bundle(bodies: &[&KernelDef], block_threads: u32) -> Result<CudaSource, EmitError> {
    emit_bundle_with(bodies, block_threads, BundleForm::default())
}

/// [`emit_bundle`] in the given [`BundleForm`].
pub fn emit_bundle_with(bodies: &[&KernelDef], block_threads: u32, form: BundleForm) -> Result<CudaSource, EmitError> {
    let bundle_err = |reason: String| EmitError::Kernel { kernel: BUNDLE_NAME.to_string(), reason };
    if bodies.is_empty() {
        return Err(bundle_err("a bundle needs at least one kernel body".into()));
    }
    let limit = CODEGEN_TARGET.max_threads_per_block;
    if block_threads == 0 || block_threads > limit {
        return Err(bundle_err(format!("{block_threads} threads per block is outside CUDA's 1..={limit}")));
    }
    if let Some(n) = form.max_registers {
        if form.min_blocks_per_sm.is_some() {
            return Err(bundle_err(format!(
                "form {}: a register cap and a minimum of blocks per SM cannot both bound one kernel; give one",
                form.name()
            )));
        }
        let most = CODEGEN_TARGET.max_registers_per_thread;
        if !(1..=most).contains(&n) {
            return Err(bundle_err(format!("form {}: a register cap must be within 1..={most}", form.name())));
        }
    }

    let mut prelude = Prelude::default();
    prelude.add_shared_pool();
    let mut functions = Vec::with_capacity(bodies.len());
    // The switch's cases, written at the depth they take inside the dispatcher.
    let mut cases = CodeWriter::default();
    cases.indent_more();
    cases.indent_more();
    let mut used = HashSet::new();
    for (i, k) in bodies.iter().enumerate() {
        let (threads, logical) = check_body(i, k, block_threads)?;
        let barrier = barrier_form(threads, block_threads);
        let name = format!("weft_body{i}_{}", c_ident(&k.name, &mut used));
        let f = emit_device_function(
            k,
            &EmitOptions { block_mapping: &SlotIds },
            &DeviceForm { name, barrier, inline: form.inline_bodies },
        )?;
        prelude.merge(&f.prelude);
        if !k.shared.is_empty() {
            // The dispatcher's barrier between persistent logical blocks.
            prelude.add_barrier(barrier);
        }
        dispatch_case(&mut cases, i, k, &f.name, threads, block_threads, logical, barrier, form.single_pass);
        functions.push(f);
    }

    let mut w = CodeWriter::default();
    w.line(format!(
        "// Generated by weft-codegen: a bundle of {} kernel bodies in blocks of {block_threads} threads. Do not edit.",
        bodies.len()
    ));
    w.line("// Tenants, buffers, block ranges and budgets arrive at launch in the slot table and `args`;");
    w.line("// this text depends only on the bodies and the block size.");
    if form.single_pass {
        w.line("// Single-pass launches only: every slot has a physical block per logical block.");
    }
    prelude.write(&mut w);
    w.line("");
    w.line("// One row of the slot table (weft_codegen::bundle::SlotRow).");
    w.line("struct WeftSlot { int body, first_block, num_blocks, grid_x, grid_y, grid_z, threads, arg_offset; };");
    w.line("");
    w.line(format!("#ifndef {PLATFORM_GUARD}"));
    if constant_launch_table(bodies) {
        w.line("// The launch's slot table and argument words, written to constant memory before each launch:");
        w.line("// read at a block-uniform index, they stay out of the threads' registers.");
        w.line(format!("__constant__ WeftSlot {SLOT_TABLE_SYMBOL}[{CONSTANT_TABLE_ROWS}];"));
        w.line(format!("__constant__ void* {ARG_WORDS_SYMBOL}[{CONSTANT_ARG_WORDS}];"));
        w.line(format!("#define WEFT_LAUNCH_SLOTS {SLOT_TABLE_SYMBOL}"));
        w.line(format!("#define WEFT_LAUNCH_ARGS {ARG_WORDS_SYMBOL}"));
    } else {
        w.line(format!(
            "// A body has more parameters than constant memory's {CONSTANT_ARG_WORDS} argument words: the table and"
        ));
        w.line("// words arrive in global memory, through the entry's pointers.");
        w.line("#define WEFT_LAUNCH_SLOTS slots");
        w.line("#define WEFT_LAUNCH_ARGS args");
    }
    w.line("#endif");
    for f in &functions {
        w.line("");
        for l in f.code.lines() {
            w.line(l);
        }
    }
    w.line("");
    let bounds = match form.min_blocks_per_sm {
        Some(n) => format!("{block_threads}, {}", n.max(1)),
        None => block_threads.to_string(),
    };
    // CUDA accepts `__maxnreg__` only without `__launch_bounds__`; the
    // register cap then bounds the block as the threads would.
    let bounds = match form.max_registers {
        Some(n) => format!("__maxnreg__({n})"),
        None => format!("__launch_bounds__({bounds})"),
    };
    w.line(format!(
        "extern \"C\" __global__ void {bounds} {BUNDLE_ENTRY}(const WeftSlot* __restrict__ slots, int nslots, \
         void* const* __restrict__ args)"
    ));
    w.open("{");
    w.line("// The pool every body's shared arrays live in: the largest body's bytes.");
    w.line("WEFT_SHARED_POOL(weft_smem);");
    w.line("// This block's slot: the last row starting at or before it (SlotTable::slot_of).");
    w.line("const int p = (int)blockIdx.x;");
    w.line("int lo = 0;");
    w.line("int hi = nslots;");
    w.open("while (lo < hi) {");
    w.line("const int mid = (lo + hi) >> 1;");
    w.open("if (WEFT_LAUNCH_SLOTS[mid].first_block <= p) {");
    w.line("lo = mid + 1;");
    w.close("} else {");
    w.indent_more();
    w.line("hi = mid;");
    w.close("}");
    w.close("}");
    w.open("if (lo == 0) {");
    w.line("return;");
    w.close("}");
    w.line("const WeftSlot slot = WEFT_LAUNCH_SLOTS[lo - 1];");
    w.open("if (p >= slot.first_block + slot.num_blocks) {");
    w.line("return;");
    w.close("}");
    w.line("void* const* a = WEFT_LAUNCH_ARGS + slot.arg_offset;");
    if form.single_pass {
        w.line("// Logical block p - first_block: one per physical block (a single-pass launch class).");
        w.line("const unsigned long long start = (unsigned long long)(p - slot.first_block);");
    } else {
        w.line("// Logical blocks p - first_block, then + num_blocks, ... (SlotTable::logical_blocks).");
        w.line("const unsigned long long start = (unsigned long long)(p - slot.first_block);");
        w.line("const unsigned long long step = (unsigned long long)slot.num_blocks;");
    }
    w.open("switch (slot.body) {");
    let mut code = w.into_string();
    code.push_str(&cases.into_string());
    let mut w = CodeWriter::default();
    w.indent_more();
    w.indent_more();
    w.line("default:");
    w.line("    return;");
    w.close("}");
    w.close("}");
    code.push_str(&w.into_string());
    Ok(CudaSource { name: BUNDLE_ENTRY.to_string(), code })
}

/// The dispatcher's `case` for body `index`, written at the switch's indentation.
#[allow(clippy::too_many_arguments)]
fn dispatch_case(
    w: &mut CodeWriter,
    index: usize,
    k: &KernelDef,
    function: &str,
    threads: u32,
    block_threads: u32,
    logical: u64,
    barrier: BarrierForm,
    single_pass: bool,
) {
    let [gx, gy, gz] = k.launch.grid;
    w.open(format!("case {index}: {{"));
    w.line(format!(
        "// `{}`: logical grid [{gx}, {gy}, {gz}] (compiled in, never read from the table), {threads} threads.",
        k.name.replace('\n', " ")
    ));
    if threads != block_threads {
        w.line("// Warps past the body's threads idle for the whole launch; its barriers count only its own.");
        w.open(format!("if (threadIdx.x >= {threads}u) {{"));
        w.line("return;");
        w.close("}");
    }
    if single_pass {
        // One logical block per physical block: the table gives this slot
        // its whole grid.
        w.open(format!("if (start < {logical}ull) {{"));
        w.line("const unsigned long long lb = start;");
    } else {
        w.open(format!("for (unsigned long long lb = start; lb < {logical}ull; lb += step) {{"));
    }
    if !single_pass && !k.shared.is_empty() {
        w.line("// Reusing the pool: every thread must be done with the previous logical block.");
        w.open("if (lb != start) {");
        w.line(barrier_stmt(barrier));
        w.close("}");
    }
    w.line("const unsigned int l = (unsigned int)lb;");
    // Exactly SlotEntry::logical_coords: x fastest.
    let x = if gy == 1 && gz == 1 { "l".to_string() } else { format!("l % {gx}u") };
    let y = match (gy, gz) {
        (1, _) => "0u".to_string(),
        (_, 1) => format!("l / {gx}u"),
        _ => format!("(l / {gx}u) % {gy}u"),
    };
    let z = if gz == 1 { "0u".to_string() } else { format!("l / {}u", gx as u64 * gy as u64) };
    let mut call_args: Vec<String> = k.params.values().enumerate().map(|(i, p)| arg_expr(&p.kind, i)).collect();
    call_args.extend([format!("(int)({x})"), format!("(int)({y})"), format!("(int)({z})"), "weft_smem".to_string()]);
    w.line(format!("{function}({});", call_args.join(", ")));
    w.close("}");
    w.line("return;");
    w.close("}");
}
