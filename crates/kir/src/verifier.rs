//! The KIR verifier.
//!
//! [`verify`] checks one kernel and reports every problem it finds, never
//! just the first, each naming the entity it concerns: `v3`, `p0`, `s1`, `x2`,
//! `r4`, an instruction as `i7 (load)`, or `kernel` for kernel-level facts.
//! It never panics, whatever the kernel: ids are checked before any arena is
//! indexed, so a half-parsed or hand-mangled kernel gets errors, not a crash.
//!
//! Invariants checked:
//!
//! Kernel level
//! - the kernel name and every parameter name are C identifiers and not C,
//!   C++ or CUDA reserved words (codegen emits them verbatim); parameter
//!   names are unique;
//! - launch limits of the [`Target`] ([`verify`] checks against
//!   [`Target::sm_90`], [`verify_for`] against a given device): every block
//!   dim ≥ 1 and within the target's block dims, threads per block within
//!   its limit (1024 on sm_90, block.z ≤ 64); every grid dim ≥ 1 and within
//!   its grid dims (grid.x ≤ 2^31 - 1, grid.y and grid.z ≤ 65535);
//! - every shared array has at least one element, and all of them together
//!   fit the target's opt-in per-block shared memory (227 KiB on sm_90: the
//!   arrays live in the launch's dynamic pool);
//! - a kernel that uses shuffles has a whole number of warps per block, so
//!   every warp is full and the full-mask `__shfl_*_sync` is legal.
//!
//! Structure
//! - every region an instruction names exists, and every instruction a
//!   region lists exists;
//! - every instruction appears in exactly one region;
//! - every region except the body belongs to exactly one instruction, the
//!   body to none, and every region is reachable from the body.
//!
//! Values
//! - `inst_result` agrees with the value table: an instruction's recorded
//!   result exists and is defined by that instruction, and a value defined by
//!   an instruction is its recorded result; exactly the value-producing
//!   instructions have a result; a `for` index exists and is defined as that
//!   loop's index;
//! - every operand exists, is defined (not `Undefined`) and dominates its
//!   use: it is defined earlier in the same region or in an enclosing region;
//!   a loop index is visible only inside its loop's body.
//!
//! Types (the declared type of each result must be what the instruction produces)
//! - `const`: the constant's type; `special`: `i32`; `param`: reads a scalar
//!   parameter, of its type;
//! - unary: `neg`/`abs` on ints or floats, `not` on ints or bool, the float
//!   math functions on floats only; the result has the operand's type;
//! - binary: operands of one type; `add`/`sub`/`mul`/`div`/`min`/`max` on
//!   ints or floats, `and`/`or`/`xor` on ints or bool, `rem`/`shl`/`shr` on
//!   ints only; the result has the operands' type;
//! - comparisons: operands of one type, result `bool`; `select`: a `bool`
//!   condition and arms of one type, which is the result's; `fma`: three
//!   floats of one type; `cast`: the result has the target type, which
//!   differs from the operand's (an identity cast is a mistake upstream);
//!   `bitcast`: the result has the target type, of the operand's size;
//! - `load`/`store`: a buffer parameter the kernel may read (`read` or
//!   `readwrite`) / write (`write` or `readwrite`), an integer index
//!   (`i32`, `u32` or `i64`), the buffer's element type as result / value;
//!   `shared_load`/`shared_store` likewise for an existing shared array;
//! - `var_get`/`var_set`: an existing variable, of the variable's type;
//! - `shuffle`: width a power of two up to the warp size, an integer operand, the
//!   result of the shuffled value's type;
//! - `for`: `start` and `end` of one integer type, which is the index's type,
//!   and a step > 0; `if`: a `bool` condition.
//!
//! Synchronisation
//! - barriers and shuffles are never under thread-divergent control: no
//!   enclosing `if` has a condition, and no enclosing `for` has bounds, that
//!   are not block-uniform ([`crate::analysis::uniformity`]). On the GPU a
//!   `__syncthreads()` some threads skip deadlocks or corrupts the barrier
//!   (DESIGN.md, principle 4).

use std::collections::HashMap;

use cranelift_entity::SecondaryMap;

use crate::analysis::uniformity::uniformity;
use crate::analysis::walk::{events, Arm, Event};
use crate::entities::{Inst, Region, Value};
use crate::inst::{BinaryOp, InstData, UnaryOp};
use crate::kernel::{KernelDef, ParamKind, ValueDef};
use crate::target::Target;
use crate::types::Type;

/// One verifier finding, naming the entity it concerns (`v3`, `p0`, `i7 (load)`, `s1`, `x2`, `r4`, or `kernel`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifyError {
    pub entity: String,
    pub message: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entity, self.message)
    }
}

/// Every finding for one kernel.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("kernel `{kernel}` failed verification with {} error(s):\n{}", errors.len(), errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct VerifyErrors {
    pub kernel: String,
    pub errors: Vec<VerifyError>,
}

/// Verifies `kernel` against [`Target::sm_90`] (where no device is known),
/// returning every error found.
pub fn verify(kernel: &KernelDef) -> Result<(), VerifyErrors> {
    verify_for(kernel, &Target::sm_90())
}

/// Verifies `kernel` against `target`'s limits, returning every error found.
pub fn verify_for(kernel: &KernelDef, target: &Target) -> Result<(), VerifyErrors> {
    let errors = verify_all_for(kernel, target);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyErrors { kernel: kernel.name.clone(), errors })
    }
}

/// Every finding for `kernel`, in a deterministic order (kernel-level facts,
/// then structure, then per-instruction checks in id order, then dominance
/// and synchronisation in text order).
pub fn verify_all(kernel: &KernelDef) -> Vec<VerifyError> {
    verify_all_for(kernel, &Target::sm_90())
}

/// [`verify_all`] against `target`'s limits.
pub fn verify_all_for(kernel: &KernelDef, target: &Target) -> Vec<VerifyError> {
    let mut v = Verifier { k: kernel, target, errors: Vec::new() };
    v.kernel_level();
    let events = events(kernel);
    v.structure(&events);
    v.value_table();
    for (i, data) in kernel.insts.iter() {
        v.operands_exist(i, data);
        v.types(i, data);
    }
    v.dominance(&events);
    v.synchronisation(&events);
    v.errors
}

struct Verifier<'k> {
    k: &'k KernelDef,
    target: &'k Target,
    errors: Vec<VerifyError>,
}

/// Whether `name` can be emitted as a C identifier without clashing with the
/// language or CUDA's built-in variables.
fn is_c_identifier(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "auto",
        "bool",
        "break",
        "case",
        "char",
        "class",
        "const",
        "continue",
        "default",
        "delete",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "false",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "namespace",
        "new",
        "operator",
        "private",
        "protected",
        "public",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "template",
        "this",
        "true",
        "typedef",
        "typename",
        "union",
        "unsigned",
        "using",
        "virtual",
        "void",
        "volatile",
        "while",
        "threadIdx",
        "blockIdx",
        "blockDim",
        "gridDim",
        "warpSize",
    ];
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !RESERVED.contains(&name)
}

/// True for instructions that define a value.
fn produces_value(data: &InstData) -> bool {
    matches!(
        data,
        InstData::Const(_)
            | InstData::Special(_)
            | InstData::ScalarParam(_)
            | InstData::Unary { .. }
            | InstData::Binary { .. }
            | InstData::Fma { .. }
            | InstData::Cmp { .. }
            | InstData::Select { .. }
            | InstData::Cast { .. }
            | InstData::Bitcast { .. }
            | InstData::Load { .. }
            | InstData::SharedLoad { .. }
            | InstData::VarGet(_)
            | InstData::Shuffle { .. }
    )
}

impl Verifier<'_> {
    fn error(&mut self, entity: impl Into<String>, message: impl Into<String>) {
        self.errors.push(VerifyError { entity: entity.into(), message: message.into() });
    }

    /// `i7 (load)`, or just `i7` for an id that does not exist.
    fn inst_name(&self, i: Inst) -> String {
        match self.k.insts.get(i) {
            Some(data) => format!("{i} ({})", data.mnemonic()),
            None => i.to_string(),
        }
    }

    fn ty(&self, v: Value) -> Option<Type> {
        self.k.values.get(v).map(|d| d.ty)
    }

    /// `v3 (f32)` for messages.
    fn typed(&self, v: Value) -> String {
        match self.ty(v) {
            Some(t) => format!("{v} ({t})"),
            None => v.to_string(),
        }
    }

    fn kernel_level(&mut self) {
        let k = self.k;
        if !is_c_identifier(&k.name) {
            self.error("kernel", format!("kernel name `{}` is not a C identifier (or is reserved)", k.name));
        }
        let mut seen: HashMap<&str, _> = HashMap::new();
        for (p, pd) in k.params.iter() {
            if !is_c_identifier(&pd.name) {
                self.error(
                    p.to_string(),
                    format!("parameter name `{}` is not a C identifier (or is reserved)", pd.name),
                );
            }
            if let Some(first) = seen.get(pd.name.as_str()) {
                self.error(p.to_string(), format!("parameter name `{}` is already the name of {first}", pd.name));
            } else {
                seen.insert(&pd.name, p);
            }
        }
        let [bx, by, bz] = k.launch.block;
        let [gx, gy, gz] = k.launch.grid;
        for (axis, d) in ["x", "y", "z"].iter().zip(k.launch.block) {
            if d == 0 {
                self.error("kernel", format!("block.{axis} is 0; every block dimension must be at least 1"));
            }
        }
        // u128: three u32 dims can overflow u64 on a malformed launch.
        let threads = bx as u128 * by as u128 * bz as u128;
        let t = self.target;
        if threads > t.max_threads_per_block as u128 {
            self.error(
                "kernel",
                format!(
                    "block {bx}x{by}x{bz} has {threads} threads; a block may have at most {}",
                    t.max_threads_per_block
                ),
            );
        }
        for ((axis, d), max) in ["x", "y", "z"].iter().zip(k.launch.block).zip(t.max_block_dims) {
            // Any dim over the thread limit was reported just above.
            if d > max && d as u128 <= t.max_threads_per_block as u128 {
                self.error("kernel", format!("block.{axis} is {d}; the limit is {max}"));
            }
        }
        for (axis, d) in ["x", "y", "z"].iter().zip(k.launch.grid) {
            if d == 0 {
                self.error("kernel", format!("grid.{axis} is 0; every grid dimension must be at least 1"));
            }
        }
        for ((axis, d), max) in ["x", "y", "z"].iter().zip([gx, gy, gz]).zip(t.max_grid_dims) {
            if d > max {
                self.error("kernel", format!("grid.{axis} is {d}; the limit is {max}"));
            }
        }

        let mut shared_bytes = 0u64;
        for (s, sd) in k.shared.iter() {
            if sd.len == 0 {
                self.error(s.to_string(), "shared array has no elements");
            }
            shared_bytes = shared_bytes.saturating_add(sd.bytes());
        }
        if shared_bytes > t.shared_bytes_per_block_optin {
            self.error(
                "kernel",
                format!(
                    "shared arrays need {shared_bytes} bytes per block; the {} limit is {}",
                    t.arch_name(),
                    t.shared_bytes_per_block_optin
                ),
            );
        }

        if let Some(first) = k.insts.iter().find(|(_, d)| matches!(d, InstData::Shuffle { .. })).map(|(i, _)| i) {
            let warp = t.warp_size.max(1) as u128;
            if !threads.is_multiple_of(warp) {
                self.error(
                    "kernel",
                    format!(
                        "uses shuffles (first {first}) but has {threads} threads per block, not a multiple of {warp} \
                         (full-mask shuffles need full warps)"
                    ),
                );
            }
        }
    }

    fn structure(&mut self, events: &[Event]) {
        let k = self.k;
        // Where each instruction is listed, over the whole arena (not only the
        // reachable tree), so stray copies are found too.
        let mut places: SecondaryMap<Inst, u32> = SecondaryMap::new();
        for (r, insts) in k.regions.iter() {
            for &i in insts {
                if k.insts.is_valid(i) {
                    places[i] += 1;
                } else {
                    self.error(r.to_string(), format!("lists {i}, which does not exist"));
                }
            }
        }
        let mut owners: SecondaryMap<Region, Vec<Inst>> = SecondaryMap::new();
        for (i, data) in k.insts.iter() {
            match places[i] {
                0 => self.error(self.inst_name(i), "is in no region"),
                1 => {}
                n => {
                    self.error(self.inst_name(i), format!("appears {n} times in regions; it must appear exactly once"))
                }
            }
            for r in data.regions() {
                if k.regions.is_valid(r) {
                    owners[r].push(i);
                } else {
                    self.error(self.inst_name(i), format!("names {r}, which does not exist"));
                }
            }
        }
        let mut entered: SecondaryMap<Region, bool> = SecondaryMap::new();
        if k.regions.is_valid(k.body) {
            entered[k.body] = true;
        } else {
            self.error("kernel", format!("the body {} does not exist", k.body));
        }
        for e in events {
            if let Event::Enter { region, .. } = *e {
                entered[region] = true;
            }
        }
        for r in k.regions.keys() {
            let names = || owners[r].iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
            if r == k.body {
                if !owners[r].is_empty() {
                    self.error(r.to_string(), format!("is the kernel body but is nested in {}", names()));
                }
                continue;
            }
            match owners[r].len() {
                0 => self.error(r.to_string(), "belongs to no instruction"),
                1 => {
                    if !entered[r] {
                        self.error(r.to_string(), "is not reachable from the kernel body");
                    }
                }
                _ => self.error(r.to_string(), format!("belongs to more than one instruction: {}", names())),
            }
        }
    }

    fn value_table(&mut self) {
        let k = self.k;
        for (v, vd) in k.values.iter() {
            match vd.def {
                ValueDef::Result(i) => {
                    if !k.insts.is_valid(i) {
                        self.error(v.to_string(), format!("is defined by {i}, which does not exist"));
                    } else if k.inst_result[i] != Some(v) {
                        let recorded = k.inst_result[i].map_or("none".to_string(), |r| r.to_string());
                        self.error(
                            v.to_string(),
                            format!("is defined by {i}, but {i} records {recorded} as its result"),
                        );
                    }
                }
                ValueDef::LoopIndex(i) => match k.insts.get(i) {
                    Some(InstData::For { index, .. }) if *index == v => {}
                    Some(InstData::For { index, .. }) => {
                        self.error(v.to_string(), format!("claims to be the index of {i}, whose index is {index}"))
                    }
                    Some(_) => self.error(v.to_string(), format!("claims to be a loop index of {}", self.inst_name(i))),
                    None => self.error(v.to_string(), format!("is the index of {i}, which does not exist")),
                },
                ValueDef::Undefined => {}
            }
        }
        for (i, data) in k.insts.iter() {
            match (produces_value(data), k.inst_result[i]) {
                (true, None) => self.error(self.inst_name(i), "has no result value"),
                (false, Some(r)) => self.error(
                    self.inst_name(i),
                    format!("records result {r}, but `{}` produces no value", data.mnemonic()),
                ),
                (true, Some(r)) => match k.values.get(r) {
                    None => self.error(self.inst_name(i), format!("records result {r}, which does not exist")),
                    Some(vd) if vd.def != ValueDef::Result(i) => {
                        self.error(self.inst_name(i), format!("records result {r}, which is not defined by it"))
                    }
                    Some(_) => {}
                },
                (false, None) => {}
            }
            if let InstData::For { index, .. } = *data {
                match k.values.get(index) {
                    None => self.error(self.inst_name(i), format!("has index {index}, which does not exist")),
                    Some(vd) if vd.def != ValueDef::LoopIndex(i) => {
                        self.error(self.inst_name(i), format!("has index {index}, which is not defined as its index"))
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn operands_exist(&mut self, i: Inst, data: &InstData) {
        for v in data.operands() {
            match self.k.values.get(v) {
                None => self.error(self.inst_name(i), format!("uses {v}, which does not exist")),
                Some(vd) if vd.def == ValueDef::Undefined => {
                    self.error(self.inst_name(i), format!("uses {v}, which is never defined"))
                }
                Some(_) => {}
            }
        }
    }

    /// Checks that the result `inst_result[i]` has type `want`.
    fn expect_result(&mut self, i: Inst, want: Type) {
        let Some(r) = self.k.inst_result[i] else { return };
        if let Some(t) = self.ty(r) {
            if t != want {
                self.error(
                    self.inst_name(i),
                    format!("result {r} is declared {t} but the instruction produces {want}"),
                );
            }
        }
    }

    fn expect_int_index(&mut self, i: Inst, index: Value) {
        if let Some(t) = self.ty(index) {
            if !t.is_index() {
                self.error(self.inst_name(i), format!("index {index} is {t}; indices must be i32, u32 or i64"));
            }
        }
    }

    fn types(&mut self, i: Inst, data: &InstData) {
        let k = self.k;
        match *data {
            InstData::Const(s) => self.expect_result(i, s.ty()),
            InstData::Special(_) => self.expect_result(i, Type::I32),
            InstData::ScalarParam(p) => match k.params.get(p).map(|pd| &pd.kind) {
                None => self.error(self.inst_name(i), format!("reads {p}, which does not exist")),
                Some(ParamKind::Buffer { .. }) => {
                    self.error(self.inst_name(i), format!("reads {p} as a scalar, but {p} is a buffer"))
                }
                Some(&ParamKind::Scalar { ty }) => self.expect_result(i, ty),
            },
            InstData::Unary { op, arg } => {
                let Some(t) = self.ty(arg) else { return };
                let ok = match op {
                    UnaryOp::Neg | UnaryOp::Abs => t.is_int() || t.is_float(),
                    UnaryOp::Not => t.is_int() || t == Type::Bool,
                    _ => t.is_float(),
                };
                if !ok {
                    let takes = match op {
                        UnaryOp::Neg | UnaryOp::Abs => "an integer or float",
                        UnaryOp::Not => "an integer or bool",
                        _ => "a float",
                    };
                    self.error(
                        self.inst_name(i),
                        format!("`{}` takes {takes} operand, not {}", op.name(), self.typed(arg)),
                    );
                }
                self.expect_result(i, t);
            }
            InstData::Binary { op, lhs, rhs } => {
                let (Some(l), Some(r)) = (self.ty(lhs), self.ty(rhs)) else { return };
                if l != r {
                    self.error(
                        self.inst_name(i),
                        format!("operands {} and {} differ in type", self.typed(lhs), self.typed(rhs)),
                    );
                    return;
                }
                let (ok, takes) = match op {
                    BinaryOp::Rem | BinaryOp::Shl | BinaryOp::Shr => (l.is_int(), "integers"),
                    _ if op.is_bitwise() => (l.is_int() || l == Type::Bool, "integers or bools"),
                    _ => (l.is_int() || l.is_float(), "integers or floats"),
                };
                if !ok {
                    self.error(self.inst_name(i), format!("`{}` takes {takes}, not {l}", op.name()));
                }
                self.expect_result(i, l);
            }
            InstData::Cmp { lhs, rhs, .. } => {
                if let (Some(l), Some(r)) = (self.ty(lhs), self.ty(rhs)) {
                    if l != r {
                        self.error(
                            self.inst_name(i),
                            format!("operands {} and {} differ in type", self.typed(lhs), self.typed(rhs)),
                        );
                    }
                }
                self.expect_result(i, Type::Bool);
            }
            InstData::Select { cond, if_true, if_false } => {
                if let Some(c) = self.ty(cond) {
                    if c != Type::Bool {
                        self.error(self.inst_name(i), format!("condition {} is not bool", self.typed(cond)));
                    }
                }
                let (Some(t), Some(f)) = (self.ty(if_true), self.ty(if_false)) else { return };
                if t != f {
                    self.error(
                        self.inst_name(i),
                        format!("arms {} and {} differ in type", self.typed(if_true), self.typed(if_false)),
                    );
                }
                self.expect_result(i, t);
            }
            InstData::Fma { a, b, c } => {
                let (Some(ta), Some(tb), Some(tc)) = (self.ty(a), self.ty(b), self.ty(c)) else { return };
                if ta != tb || ta != tc {
                    self.error(
                        self.inst_name(i),
                        format!("operands {}, {} and {} differ in type", self.typed(a), self.typed(b), self.typed(c)),
                    );
                } else if !ta.is_float() {
                    self.error(self.inst_name(i), format!("`fma` takes floats, not {ta}"));
                }
                self.expect_result(i, ta);
            }
            InstData::Bitcast { to, arg } => {
                if let Some(from) = self.ty(arg) {
                    if from.size_bytes() != to.size_bytes() {
                        self.error(
                            self.inst_name(i),
                            format!("bitcasts {} to {to}, a type of another size", self.typed(arg)),
                        );
                    }
                }
                self.expect_result(i, to);
            }
            InstData::Cast { to, arg } => {
                if self.ty(arg) == Some(to) {
                    self.error(self.inst_name(i), format!("casts {arg} to its own type {to}"));
                }
                self.expect_result(i, to);
            }
            InstData::Load { buf, index } => {
                self.expect_int_index(i, index);
                match k.params.get(buf).map(|pd| &pd.kind) {
                    None => self.error(self.inst_name(i), format!("loads from {buf}, which does not exist")),
                    Some(ParamKind::Scalar { .. }) => {
                        self.error(self.inst_name(i), format!("loads from {buf}, which is a scalar, not a buffer"))
                    }
                    Some(&ParamKind::Buffer { elem, access, .. }) => {
                        if !access.can_read() {
                            self.error(self.inst_name(i), format!("loads from {buf}, which is {access}-only"));
                        }
                        self.expect_result(i, elem);
                    }
                }
            }
            InstData::Store { buf, index, value } => {
                self.expect_int_index(i, index);
                match k.params.get(buf).map(|pd| &pd.kind) {
                    None => self.error(self.inst_name(i), format!("stores to {buf}, which does not exist")),
                    Some(ParamKind::Scalar { .. }) => {
                        self.error(self.inst_name(i), format!("stores to {buf}, which is a scalar, not a buffer"))
                    }
                    Some(&ParamKind::Buffer { elem, access, .. }) => {
                        if !access.can_write() {
                            self.error(self.inst_name(i), format!("stores to {buf}, which is {access}-only"));
                        }
                        if self.ty(value).is_some_and(|t| t != elem) {
                            self.error(
                                self.inst_name(i),
                                format!("stores {} to {buf}, whose elements are {elem}", self.typed(value)),
                            );
                        }
                    }
                }
            }
            InstData::SharedLoad { array, index } => {
                self.expect_int_index(i, index);
                match k.shared.get(array) {
                    None => self.error(self.inst_name(i), format!("loads from {array}, which does not exist")),
                    Some(sd) => self.expect_result(i, sd.elem),
                }
            }
            InstData::SharedStore { array, index, value } => {
                self.expect_int_index(i, index);
                match k.shared.get(array) {
                    None => self.error(self.inst_name(i), format!("stores to {array}, which does not exist")),
                    Some(sd) => {
                        if self.ty(value).is_some_and(|t| t != sd.elem) {
                            self.error(
                                self.inst_name(i),
                                format!("stores {} to {array}, whose elements are {}", self.typed(value), sd.elem),
                            );
                        }
                    }
                }
            }
            InstData::VarGet(x) => match k.vars.get(x) {
                None => self.error(self.inst_name(i), format!("reads {x}, which does not exist")),
                Some(xd) => self.expect_result(i, xd.ty),
            },
            InstData::VarSet { var, value } => match k.vars.get(var) {
                None => self.error(self.inst_name(i), format!("writes {var}, which does not exist")),
                Some(xd) => {
                    if self.ty(value).is_some_and(|t| t != xd.ty) {
                        self.error(self.inst_name(i), format!("sets {var} ({}) to {}", xd.ty, self.typed(value)));
                    }
                }
            },
            InstData::Barrier => {}
            InstData::Shuffle { value, operand, width, .. } => {
                let warp = self.target.warp_size;
                if !(1..=warp).contains(&width) || !width.is_power_of_two() {
                    self.error(self.inst_name(i), format!("width {width} is not a power of two in 1..={warp}"));
                }
                if self.ty(operand).is_some_and(|t| !t.is_index()) {
                    self.error(self.inst_name(i), format!("operand {} is not an i32, u32 or i64", self.typed(operand)));
                }
                if let Some(t) = self.ty(value) {
                    self.expect_result(i, t);
                }
            }
            InstData::For { index, start, end, step, .. } => {
                if step <= 0 {
                    self.error(self.inst_name(i), format!("step {step} is not positive"));
                }
                let (Some(s), Some(e)) = (self.ty(start), self.ty(end)) else { return };
                if s != e {
                    self.error(
                        self.inst_name(i),
                        format!("bounds {} and {} differ in type", self.typed(start), self.typed(end)),
                    );
                } else if !s.is_index() {
                    self.error(self.inst_name(i), format!("bounds are {s}; loops run over i32, u32 or i64"));
                }
                if let Some(t) = self.ty(index) {
                    if t != s {
                        self.error(self.inst_name(i), format!("index {index} is {t} but the bounds are {s}"));
                    }
                }
            }
            InstData::If { cond, .. } => {
                if self.ty(cond).is_some_and(|t| t != Type::Bool) {
                    self.error(self.inst_name(i), format!("condition {} is not bool", self.typed(cond)));
                }
            }
        }
    }

    fn dominance(&mut self, events: &[Event]) {
        let k = self.k;
        let mut visible: SecondaryMap<Value, bool> = SecondaryMap::new();
        // Values defined in each open region, to hide again when it closes.
        let mut scopes: Vec<Vec<Value>> = vec![Vec::new()];
        for e in events {
            match *e {
                Event::Enter { owner, arm, .. } => {
                    let mut scope = Vec::new();
                    if let (Arm::LoopBody, Some(&InstData::For { index, .. })) = (arm, k.insts.get(owner)) {
                        if k.values.is_valid(index) && !visible[index] {
                            visible[index] = true;
                            scope.push(index);
                        }
                    }
                    scopes.push(scope);
                }
                Event::Leave { .. } => {
                    for v in scopes.pop().unwrap_or_default() {
                        visible[v] = false;
                    }
                }
                Event::Inst(i) => {
                    let Some(data) = k.insts.get(i) else { continue };
                    for v in data.operands() {
                        let Some(vd) = k.values.get(v) else { continue };
                        if visible[v] {
                            continue;
                        }
                        let message = match vd.def {
                            // Reported by `operands_exist`.
                            ValueDef::Undefined => continue,
                            ValueDef::LoopIndex(l) => {
                                format!("uses {v}, the index of loop {l}, outside that loop's body")
                            }
                            ValueDef::Result(d) => format!(
                                "uses {v}, defined by {d}, which does not dominate it \
                                 (a value is visible after its definition in its region and in regions nested there)"
                            ),
                        };
                        self.error(self.inst_name(i), message);
                    }
                    if let Some(r) = k.inst_result[i] {
                        if k.values.is_valid(r) && !visible[r] {
                            visible[r] = true;
                            if let Some(scope) = scopes.last_mut() {
                                scope.push(r);
                            }
                        }
                    }
                }
            }
        }
    }

    fn synchronisation(&mut self, events: &[Event]) {
        let k = self.k;
        let uniform = uniformity(k);
        for e in events {
            let Event::Inst(i) = *e else { continue };
            let what = match k.insts.get(i) {
                Some(InstData::Barrier) => "barrier",
                Some(InstData::Shuffle { .. }) => "shuffle",
                _ => continue,
            };
            let Some(ctl) = uniform.divergent_control(i) else { continue };
            let why = match k.insts.get(ctl) {
                Some(InstData::If { cond, .. }) => format!("{cond}, the condition of {ctl} (if), is not block-uniform"),
                Some(InstData::For { .. }) => format!("the bounds of {ctl} (for) are not block-uniform"),
                _ => format!("{ctl} is thread-divergent"),
            };
            self.error(
                self.inst_name(i),
                format!("{what} under thread-divergent control: {why}; every thread of the block must reach it"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use crate::entities::{Param, Var};
    use crate::inst::{Access, Axis, CmpOp, ShuffleKind, Special};
    use crate::kernel::{LaunchShape, ValueData};
    use crate::types::Scalar;

    fn errors(k: &KernelDef) -> Vec<VerifyError> {
        match verify(k) {
            Ok(()) => vec![],
            Err(e) => {
                assert_eq!(e.kernel, k.name);
                e.errors
            }
        }
    }

    /// Asserts that verifying `k` reports an error about `entity` whose
    /// message contains `needle`.
    #[track_caller]
    fn assert_error(k: &KernelDef, entity: &str, needle: &str) {
        let errs = errors(k);
        assert!(
            errs.iter().any(|e| e.entity == entity && e.message.contains(needle)),
            "expected `{entity}: ...{needle}...`, got:\n{}",
            errs.iter().map(|e| format!("  {e}\n")).collect::<String>()
        );
    }

    /// The instruction whose mnemonic is `m` (the first one).
    fn find(k: &KernelDef, m: &str) -> Inst {
        k.insts.iter().find(|(_, d)| d.mnemonic() == m).map(|(i, _)| i).unwrap()
    }

    fn vector_add(n: u64, launch: LaunchShape) -> KernelDef {
        let mut b = KernelBuilder::new("vector_add", launch);
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let y = b.buffer("y", Type::F32, n, Access::Read);
        let out = b.buffer("out", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X);
        let limit = b.const_i32(n as i32);
        let in_range = b.lt(i, limit);
        b.if_(in_range, |b| {
            let xi = b.load(x, i);
            let yi = b.load(y, i);
            let sum = b.add(xi, yi);
            b.store(out, i, sum);
        });
        b.finish()
    }

    /// A builder over a 1-block, 64-thread launch with one f32 buffer of each access.
    fn small() -> (KernelBuilder, Param, Param, Param) {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 64));
        let r = b.buffer("r", Type::F32, 64, Access::Read);
        let w = b.buffer("w", Type::F32, 64, Access::Write);
        let rw = b.buffer("rw", Type::F32, 64, Access::ReadWrite);
        (b, r, w, rw)
    }

    #[test]
    fn well_formed_kernels_verify() {
        assert_eq!(errors(&vector_add(1000, LaunchShape::linear(4, 256))), vec![]);
        // Loops, vars, shared memory, barriers under uniform control, shuffles.
        let (mut b, r, w, _) = small();
        let s = b.shared_array(Type::F32, 64);
        let tid = b.thread_id(Axis::X);
        let x = b.load(r, tid);
        b.shared_store(s, tid, x);
        b.barrier();
        let zero = b.const_f32(0.0);
        let acc = b.var_init(zero);
        b.for_const(0, 64, 1, |b, j| {
            let v = b.shared_load(s, j);
            let a = b.get(acc);
            let next = b.add(a, v);
            b.set(acc, next);
        });
        let total = b.get(acc);
        let red = b.shuffle_xor(total, 16);
        b.store(w, tid, red);
        assert_eq!(errors(&b.finish()), vec![]);
    }

    #[test]
    fn undefined_and_missing_operands() {
        let (mut b, ..) = small();
        let one = b.const_i32(1);
        let mut k = b.finish();
        let ghost = k.values.push(ValueData { ty: Type::I32, def: ValueDef::Undefined });
        let missing = Value::from_u32(999);
        let add = k.insts.push(InstData::Binary { op: BinaryOp::Add, lhs: one, rhs: ghost });
        let add_v = k.values.push(ValueData { ty: Type::I32, def: ValueDef::Result(add) });
        k.inst_result[add] = Some(add_v);
        let sub = k.insts.push(InstData::Binary { op: BinaryOp::Sub, lhs: missing, rhs: one });
        let sub_v = k.values.push(ValueData { ty: Type::I32, def: ValueDef::Result(sub) });
        k.inst_result[sub] = Some(sub_v);
        let body = k.body;
        k.regions[body].extend([add, sub]);
        assert_error(&k, &format!("{add} (add)"), &format!("uses {ghost}, which is never defined"));
        assert_error(&k, &format!("{sub} (sub)"), "uses v999, which does not exist");
    }

    #[test]
    fn use_before_definition_in_the_same_region() {
        let (mut b, ..) = small();
        let one = b.const_i32(1);
        let two = b.const_i32(2);
        let sum = b.add(one, two);
        let mut k = b.finish();
        // Move the add to the front of the body: its operands now come later.
        let body = k.body;
        let add = k.regions[body].pop().unwrap();
        k.regions[body].insert(0, add);
        assert_error(&k, &format!("{add} (add)"), &format!("uses {one}, defined by"));
        assert_error(&k, &format!("{add} (add)"), "does not dominate it");
        let _ = sum;
    }

    #[test]
    fn values_of_an_arm_are_not_visible_after_it() {
        let (mut b, ..) = small();
        let t = b.const_bool(true);
        let one = b.const_i32(1);
        let mut inner = None;
        b.if_(t, |b| inner = Some(b.add(one, one)));
        let after = b.mul(inner.unwrap(), one);
        let k = b.finish();
        let mul = k.values[after].def;
        let ValueDef::Result(mul) = mul else { unreachable!() };
        assert_error(&k, &format!("{mul} (mul)"), "does not dominate it");
    }

    #[test]
    fn loop_index_is_visible_only_in_its_body() {
        let (mut b, ..) = small();
        let mut index = None;
        b.for_const(0, 4, 1, |_, i| index = Some(i));
        let one = b.const_i32(1);
        b.add(index.unwrap(), one);
        let k = b.finish();
        let for_inst = find(&k, "for");
        assert_error(&k, &format!("{} (add)", find(&k, "add")), &format!("the index of loop {for_inst}, outside"));
    }

    #[test]
    fn binary_operand_types() {
        let (mut b, ..) = small();
        let i = b.const_i32(1);
        let f = b.const_f32(1.0);
        let t = b.const_bool(true);
        b.add(i, f);
        b.mul(t, t);
        b.rem(f, f);
        b.shl(f, f);
        b.xor(f, f);
        let k = b.finish();
        assert_error(
            &k,
            &format!("{} (add)", find(&k, "add")),
            &format!("operands {i} (i32) and {f} (f32) differ in type"),
        );
        assert_error(&k, &format!("{} (mul)", find(&k, "mul")), "`mul` takes integers or floats, not bool");
        assert_error(&k, &format!("{} (rem)", find(&k, "rem")), "`rem` takes integers, not f32");
        assert_error(&k, &format!("{} (shl)", find(&k, "shl")), "`shl` takes integers, not f32");
        assert_error(&k, &format!("{} (xor)", find(&k, "xor")), "`xor` takes integers or bools, not f32");
    }

    #[test]
    fn result_type_must_match_the_instruction() {
        let (mut b, r, ..) = small();
        let i = b.const_i32(1);
        let f = b.const_f32(1.0);
        b.emit(InstData::Binary { op: BinaryOp::Add, lhs: i, rhs: i }, Type::I64);
        b.emit(InstData::Special(Special::LaneId), Type::F32);
        b.emit(InstData::Const(Scalar::I32(3)), Type::U32);
        b.emit(InstData::Load { buf: r, index: i }, Type::I32);
        b.emit(InstData::Cmp { op: CmpOp::Lt, lhs: f, rhs: f }, Type::F32);
        let k = b.finish();
        assert_error(&k, &format!("{} (add)", find(&k, "add")), "is declared i64 but the instruction produces i32");
        assert_error(
            &k,
            &format!("{} (special)", find(&k, "special")),
            "is declared f32 but the instruction produces i32",
        );
        let third_const = k.insts.keys().filter(|&x| k.insts[x].mnemonic() == "const").nth(2).unwrap();
        assert_error(&k, &format!("{third_const} (const)"), "is declared u32 but the instruction produces i32");
        assert_error(&k, &format!("{} (load)", find(&k, "load")), "is declared i32 but the instruction produces f32");
        assert_error(&k, &format!("{} (lt)", find(&k, "lt")), "is declared f32 but the instruction produces bool");
    }

    #[test]
    fn unary_operand_types() {
        let (mut b, ..) = small();
        let i = b.const_i32(1);
        let f = b.const_f32(1.0);
        let t = b.const_bool(true);
        b.exp(i);
        b.not(f);
        b.neg(t);
        let k = b.finish();
        assert_error(&k, &format!("{} (exp)", find(&k, "exp")), &format!("`exp` takes a float operand, not {i} (i32)"));
        assert_error(&k, &format!("{} (not)", find(&k, "not")), "`not` takes an integer or bool operand");
        assert_error(&k, &format!("{} (neg)", find(&k, "neg")), "`neg` takes an integer or float operand");
    }

    #[test]
    fn bitcast_keeps_the_size() {
        let (mut b, ..) = small();
        let f = b.const_f32(1.0);
        b.bitcast(Type::I32, f);
        b.bitcast(Type::I64, f);
        let k = b.finish();
        let casts: Vec<Inst> = k.insts.iter().filter(|(_, d)| d.mnemonic() == "bitcast").map(|(i, _)| i).collect();
        assert_eq!(casts.len(), 2);
        assert_error(&k, &format!("{} (bitcast)", casts[1]), "a type of another size");
        let first = format!("{} (bitcast)", casts[0]);
        assert!(!errors(&k).iter().any(|e| e.entity == first), "f32 to i32 keeps the size");
    }

    #[test]
    fn cmp_select_fma_cast() {
        let (mut b, ..) = small();
        let i = b.const_i32(1);
        let f = b.const_f32(1.0);
        b.lt(i, f);
        b.select(i, f, f);
        b.emit(InstData::Select { cond: i, if_true: f, if_false: i }, Type::F32);
        b.fma(i, i, i);
        b.emit(InstData::Fma { a: f, b: f, c: i }, Type::F32);
        b.cast(Type::I32, i);
        let k = b.finish();
        assert_error(&k, &format!("{} (lt)", find(&k, "lt")), "differ in type");
        let select = find(&k, "select");
        assert_error(&k, &format!("{select} (select)"), &format!("condition {i} (i32) is not bool"));
        let select2 = k.insts.keys().filter(|&x| k.insts[x].mnemonic() == "select").nth(1).unwrap();
        assert_error(&k, &format!("{select2} (select)"), "arms");
        let fma = find(&k, "fma");
        assert_error(&k, &format!("{fma} (fma)"), "`fma` takes floats, not i32");
        let fma2 = k.insts.keys().filter(|&x| k.insts[x].mnemonic() == "fma").nth(1).unwrap();
        assert_error(&k, &format!("{fma2} (fma)"), "differ in type");
        assert_error(&k, &format!("{} (cast)", find(&k, "cast")), "to its own type i32");
    }

    #[test]
    fn memory_access_kinds_and_types() {
        let (mut b, r, w, rw) = small();
        let n = b.scalar_param("n", Type::I32);
        let s = b.shared_array(Type::I32, 8);
        let i = b.const_i32(0);
        let f = b.const_f32(1.0);
        b.load(w, i); // write-only
        b.store(r, i, f); // read-only
        b.store(rw, i, i); // wrong element type
        b.load(rw, f); // float index
        b.emit(InstData::Load { buf: n, index: i }, Type::I32); // a scalar
        b.emit(InstData::ScalarParam(r), Type::F32); // a buffer
        b.shared_store(s, i, f);
        let k = b.finish();
        let loads: Vec<Inst> = k.insts.keys().filter(|&x| k.insts[x].mnemonic() == "load").collect();
        let stores: Vec<Inst> = k.insts.keys().filter(|&x| k.insts[x].mnemonic() == "store").collect();
        assert_error(&k, &format!("{} (load)", loads[0]), &format!("loads from {w}, which is write-only"));
        assert_error(&k, &format!("{} (store)", stores[0]), &format!("stores to {r}, which is read-only"));
        assert_error(
            &k,
            &format!("{} (store)", stores[1]),
            &format!("stores {i} (i32) to {rw}, whose elements are f32"),
        );
        assert_error(
            &k,
            &format!("{} (load)", loads[1]),
            &format!("index {f} is f32; indices must be i32, u32 or i64"),
        );
        assert_error(&k, &format!("{} (load)", loads[2]), "which is a scalar, not a buffer");
        assert_error(
            &k,
            &format!("{} (param)", find(&k, "param")),
            &format!("reads {r} as a scalar, but {r} is a buffer"),
        );
        assert_error(&k, &format!("{} (shared_store)", find(&k, "shared_store")), "whose elements are i32");
    }

    #[test]
    fn missing_entities_are_errors_not_panics() {
        let (mut b, ..) = small();
        let i = b.const_i32(0);
        b.emit(InstData::Load { buf: Param::from_u32(40), index: i }, Type::F32);
        b.emit(InstData::SharedLoad { array: Shared::from_u32(3), index: i }, Type::F32);
        b.emit(InstData::VarGet(Var::from_u32(9)), Type::F32);
        b.emit_effect(InstData::If { cond: i, then: Region::from_u32(77), else_: None });
        let k = b.finish();
        assert_error(&k, &format!("{} (load)", find(&k, "load")), "loads from p40, which does not exist");
        assert_error(&k, &format!("{} (shared_load)", find(&k, "shared_load")), "loads from s3, which does not exist");
        assert_error(&k, &format!("{} (var_get)", find(&k, "var_get")), "reads x9, which does not exist");
        assert_error(&k, &format!("{} (if)", find(&k, "if")), "names r77, which does not exist");
        assert_error(&k, &format!("{} (if)", find(&k, "if")), &format!("condition {i} (i32) is not bool"));
    }

    use crate::entities::Shared;

    #[test]
    fn var_set_shuffle_for_if_types() {
        let (mut b, ..) = small();
        let i = b.const_i32(0);
        let f = b.const_f32(1.0);
        let x = b.var(Type::F32);
        b.set(x, i);
        b.shuffle(ShuffleKind::Idx, f, i, 3);
        b.shuffle(ShuffleKind::Idx, f, f, 64);
        let long = b.const_i64(4);
        b.for_range(i, long, 0, |_, _| {});
        b.for_range(f, f, 1, |_, _| {});
        b.if_(i, |_| {});
        let k = b.finish();
        assert_error(&k, &format!("{} (var_set)", find(&k, "var_set")), &format!("sets {x} (f32) to {i} (i32)"));
        let shuffles: Vec<Inst> = k.insts.keys().filter(|&s| k.insts[s].mnemonic() == "shuffle").collect();
        assert_error(&k, &format!("{} (shuffle)", shuffles[0]), "width 3 is not a power of two in 1..=32");
        assert_error(&k, &format!("{} (shuffle)", shuffles[1]), "width 64 is not a power of two");
        assert_error(
            &k,
            &format!("{} (shuffle)", shuffles[1]),
            &format!("operand {f} (f32) is not an i32, u32 or i64"),
        );
        let fors: Vec<Inst> = k.insts.keys().filter(|&s| k.insts[s].mnemonic() == "for").collect();
        assert_error(&k, &format!("{} (for)", fors[0]), "step 0 is not positive");
        assert_error(&k, &format!("{} (for)", fors[0]), "bounds v0 (i32) and");
        assert_error(&k, &format!("{} (for)", fors[1]), "bounds are f32; loops run over i32, u32 or i64");
        assert_error(&k, &format!("{} (if)", find(&k, "if")), "is not bool");
    }

    #[test]
    fn loop_index_type_must_match_bounds() {
        let (mut b, ..) = small();
        let mut index = None;
        b.for_const(0, 4, 1, |_, i| index = Some(i));
        let mut k = b.finish();
        let index = index.unwrap();
        k.values[index].ty = Type::I64;
        assert_error(
            &k,
            &format!("{} (for)", find(&k, "for")),
            &format!("index {index} is i64 but the bounds are i32"),
        );
    }

    #[test]
    fn result_table_consistency() {
        let (mut b, ..) = small();
        let one = b.const_i32(1);
        let sum = b.add(one, one);
        let mut k = b.finish();
        let add = find(&k, "add");
        // The add forgets its result; a barrier claims one.
        k.inst_result[add] = None;
        let barrier = k.insts.push(InstData::Barrier);
        let body = k.body;
        k.regions[body].push(barrier);
        k.inst_result[barrier] = Some(one);
        assert_error(&k, &format!("{add} (add)"), "has no result value");
        assert_error(&k, &sum.to_string(), &format!("is defined by {add}, but {add} records none as its result"));
        assert_error(
            &k,
            &format!("{barrier} (barrier)"),
            &format!("records result {one}, but `barrier` produces no value"),
        );
    }

    #[test]
    fn every_inst_in_one_region_and_every_region_owned_once() {
        let (mut b, ..) = small();
        let t = b.const_bool(true);
        b.if_(t, |b| b.barrier());
        let mut k = b.finish();
        let if_inst = find(&k, "if");
        let InstData::If { then, .. } = k.insts[if_inst] else { unreachable!() };
        // An orphan instruction, a duplicated one, a second owner for `then`,
        // and an orphan region.
        let orphan = k.insts.push(InstData::Barrier);
        let body = k.body;
        let first = k.regions[body][0];
        k.regions[body].push(first);
        let second_if = k.insts.push(InstData::If { cond: t, then, else_: None });
        k.regions[body].push(second_if);
        let stray = k.regions.push(vec![]);
        assert_error(&k, &format!("{orphan} (barrier)"), "is in no region");
        assert_error(&k, &format!("{first} (const)"), "appears 2 times in regions");
        assert_error(&k, &then.to_string(), &format!("belongs to more than one instruction: {if_inst}, {second_if}"));
        assert_error(&k, &stray.to_string(), "belongs to no instruction");
    }

    #[test]
    fn cyclic_regions_are_reported_and_terminate() {
        let mut k = KernelDef::new("k", LaunchShape::linear(1, 32));
        let cond = k.insts.push(InstData::Const(Scalar::Bool(true)));
        let cv = k.values.push(ValueData { ty: Type::Bool, def: ValueDef::Result(cond) });
        k.inst_result[cond] = Some(cv);
        let r = k.regions.push(vec![]);
        let if_inst = k.insts.push(InstData::If { cond: cv, then: r, else_: None });
        // The `if` lives only in its own arm: a cycle unreachable from the body.
        k.regions[r].push(if_inst);
        let body = k.body;
        k.regions[body].push(cond);
        assert_error(&k, &r.to_string(), "is not reachable from the kernel body");
        // The body nested in an instruction.
        k.insts[if_inst] = InstData::If { cond: cv, then: body, else_: None };
        assert_error(&k, &body.to_string(), &format!("is the kernel body but is nested in {if_inst}"));
    }

    #[test]
    fn launch_limits() {
        let check = |grid: [u32; 3], block: [u32; 3], needle: &str| {
            let k = KernelDef::new("k", LaunchShape::new(grid, block));
            assert_error(&k, "kernel", needle);
        };
        check([1, 1, 1], [0, 1, 1], "block.x is 0");
        check([1, 1, 1], [1024, 2, 1], "has 2048 threads; a block may have at most 1024");
        check([1, 1, 1], [1, 1, 65], "block.z is 65; the limit is 64");
        check([1, 0, 1], [32, 1, 1], "grid.y is 0");
        check([1u32 << 31, 1, 1], [32, 1, 1], "grid.x is 2147483648; the limit is 2147483647");
        check([1, 65536, 1], [32, 1, 1], "grid.y is 65536; the limit is 65535");
        check([1, 1, 70000], [32, 1, 1], "grid.z is 70000");
        // Extremes multiply without overflow.
        check([u32::MAX; 3], [u32::MAX; 3], "a block may have at most 1024");
        assert_eq!(errors(&KernelDef::new("k", LaunchShape::new([(1 << 31) - 1, 65535, 65535], [32, 32, 1]))), vec![]);
    }

    #[test]
    fn limits_come_from_the_target() {
        // Within sm_90's limits, outside those of a smaller device.
        let small_device = Target { max_threads_per_block: 512, shared_bytes_per_block_optin: 1024, ..Target::sm_90() };
        let (mut b, ..) = small();
        b.shared_array(Type::F32, 512); // 2 KiB
        let mut k = b.finish();
        k.launch = LaunchShape::new([1, 1, 1], [1024, 1, 1]);
        assert_eq!(verify_all(&k), vec![]);
        let found: Vec<String> = verify_all_for(&k, &small_device).iter().map(|e| e.message.clone()).collect();
        assert!(found.iter().any(|m| m.contains("has 1024 threads; a block may have at most 512")), "{found:?}");
        assert!(found.iter().any(|m| m.contains("need 2048 bytes per block; the sm_90 limit is 1024")), "{found:?}");
        assert!(verify_for(&k, &small_device).is_err());
        // Three buffer pointers: 24 bytes of parameters, which bound only a
        // kernel launched alone (codegen's check), not the KIR.
        assert_eq!(k.param_bytes(), 24);
        let tight = Target { param_bytes: 16, ..Target::sm_90() };
        assert_eq!(verify_all_for(&k, &tight), vec![]);
    }

    #[test]
    fn shared_memory_limits() {
        let (mut b, ..) = small();
        b.shared_array(Type::F32, 58_112); // exactly 232448 bytes
        assert_eq!(errors(&b.finish()), vec![]);
        let (mut b, ..) = small();
        b.shared_array(Type::F32, 58_113);
        let empty = b.shared_array(Type::F32, 0);
        let k = b.finish();
        assert_error(&k, "kernel", "shared arrays need 232452 bytes per block; the sm_90 limit is 232448");
        assert_error(&k, &empty.to_string(), "shared array has no elements");
    }

    #[test]
    fn names() {
        let mut b = KernelBuilder::new("my-kernel", LaunchShape::linear(1, 32));
        b.buffer("x", Type::F32, 4, Access::Read);
        let dup = b.buffer("x", Type::F32, 4, Access::Read);
        let digit = b.scalar_param("2n", Type::I32);
        let keyword = b.scalar_param("int", Type::I32);
        let builtin = b.scalar_param("threadIdx", Type::I32);
        let k = b.finish();
        assert_error(&k, "kernel", "kernel name `my-kernel` is not a C identifier");
        assert_error(&k, &dup.to_string(), "parameter name `x` is already the name of p0");
        assert_error(&k, &digit.to_string(), "`2n` is not a C identifier");
        assert_error(&k, &keyword.to_string(), "`int` is not a C identifier (or is reserved)");
        assert_error(&k, &builtin.to_string(), "`threadIdx` is not a C identifier");
        assert!(is_c_identifier("_tile_A1"));
        assert!(!is_c_identifier(""));
    }

    #[test]
    fn barriers_and_shuffles_under_divergent_control() {
        let (mut b, ..) = small();
        let tid = b.thread_id(Axis::X);
        let bid = b.block_id(Axis::X);
        let zero = b.const_i32(0);
        let f = b.const_f32(1.0);
        let lt = b.lt(tid, zero);
        b.if_(lt, |b| b.barrier());
        b.for_range(zero, tid, 1, |b, _| {
            b.shuffle_xor(f, 1);
        });
        // Uniform control is fine, however deep.
        let uniform = b.lt(bid, zero);
        b.if_else(uniform, |b| b.for_range(zero, bid, 1, |b, _| b.barrier()), |b| b.barrier());
        // A uniform `if` inside a divergent one is still divergent.
        b.if_(lt, |b| b.if_(uniform, |b| b.barrier()));
        let k = b.finish();
        let errs = errors(&k);
        let barriers: Vec<Inst> = k.insts.keys().filter(|&i| k.insts[i] == InstData::Barrier).collect();
        let ifs: Vec<Inst> = k.insts.keys().filter(|&i| k.insts[i].mnemonic() == "if").collect();
        assert_error(
            &k,
            &format!("{} (barrier)", barriers[0]),
            &format!(
                "barrier under thread-divergent control: {lt}, the condition of {} (if), is not block-uniform",
                ifs[0]
            ),
        );
        let shuffle = find(&k, "shuffle");
        let for0 = find(&k, "for");
        assert_error(&k, &format!("{shuffle} (shuffle)"), &format!("the bounds of {for0} (for) are not block-uniform"));
        assert_error(&k, &format!("{} (barrier)", barriers[3]), &format!("the condition of {} (if)", ifs[2]));
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn shuffles_need_full_warps() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 48));
        let f = b.const_f32(1.0);
        b.shuffle_down(f, 1);
        let k = b.finish();
        assert_error(&k, "kernel", "uses shuffles (first i2) but has 48 threads per block, not a multiple of 32");
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut b = KernelBuilder::new("bad kernel", LaunchShape::new([1, 1, 1], [2048, 1, 1]));
        let x = b.buffer("x", Type::F32, 16, Access::Read);
        let i = b.const_i32(0);
        let f = b.const_f32(0.0);
        b.store(x, i, f);
        b.add(i, f);
        b.exp(i);
        let k = b.finish();
        let errs = errors(&k);
        let entities: Vec<&str> = errs.iter().map(|e| e.entity.as_str()).collect();
        assert_eq!(entities, ["kernel", "kernel", "i2 (store)", "i3 (add)", "i4 (exp)"], "{errs:?}");
        let text = verify(&k).unwrap_err().to_string();
        assert!(text.starts_with("kernel `bad kernel` failed verification with 5 error(s):\n  kernel: "), "{text}");
    }

    /// Deterministic pseudo-random numbers, so failures reproduce.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u32) -> u32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n.max(1) as u64) as u32
        }
    }

    #[test]
    fn mangled_kernels_never_panic() {
        let base = {
            let (mut b, r, w, _) = small();
            let s = b.shared_array(Type::F32, 64);
            let tid = b.thread_id(Axis::X);
            let n = b.const_i32(64);
            let c = b.lt(tid, n);
            b.if_else(
                c,
                |b| {
                    let v = b.load(r, tid);
                    b.shared_store(s, tid, v);
                },
                |b| b.barrier(),
            );
            let acc = b.var(Type::F32);
            b.for_range(tid, n, 2, |b, j| {
                let v = b.shared_load(s, j);
                b.set(acc, v);
                let e = b.shuffle_xor(v, 1);
                b.store(w, j, e);
            });
            b.finish()
        };
        let mut rng = Lcg(7);
        for _ in 0..3000 {
            let mut k = base.clone();
            for _ in 0..1 + rng.next(4) {
                let pick = |rng: &mut Lcg, n: usize| rng.next(n as u32 + 3);
                match rng.next(7) {
                    0 => {
                        let i = Inst::from_u32(pick(&mut rng, k.insts.len()));
                        if let Some(d) = k.insts.get_mut(i) {
                            match d {
                                InstData::Binary { lhs, .. } | InstData::Cmp { lhs, .. } => {
                                    *lhs = Value::from_u32(rng.next(40))
                                }
                                InstData::For { body, start, .. } => {
                                    *body = Region::from_u32(rng.next(8));
                                    *start = Value::from_u32(rng.next(40));
                                }
                                InstData::If { then, else_, .. } => {
                                    *then = Region::from_u32(rng.next(8));
                                    *else_ = Some(Region::from_u32(rng.next(8)));
                                }
                                InstData::Load { buf, index } | InstData::Store { buf, index, .. } => {
                                    *buf = Param::from_u32(rng.next(6));
                                    *index = Value::from_u32(rng.next(40));
                                }
                                _ => *d = InstData::Barrier,
                            }
                        }
                    }
                    1 => {
                        let r = Region::from_u32(pick(&mut rng, k.regions.len()));
                        let i = Inst::from_u32(rng.next(40));
                        if let Some(list) = k.regions.get_mut(r) {
                            list.push(i);
                        }
                    }
                    2 => {
                        let v = Value::from_u32(pick(&mut rng, k.values.len()));
                        if let Some(vd) = k.values.get_mut(v) {
                            vd.def = match rng.next(3) {
                                0 => ValueDef::Undefined,
                                1 => ValueDef::Result(Inst::from_u32(rng.next(40))),
                                _ => ValueDef::LoopIndex(Inst::from_u32(rng.next(40))),
                            };
                            vd.ty = Type::ALL[rng.next(7) as usize];
                        }
                    }
                    3 => {
                        let i = Inst::from_u32(rng.next(40));
                        k.inst_result[i] = Some(Value::from_u32(rng.next(40)));
                    }
                    4 => k.body = Region::from_u32(rng.next(8)),
                    5 => k.launch = LaunchShape::new([rng.next(5), u32::MAX, rng.next(3)], [u32::MAX, rng.next(3), 7]),
                    _ => {
                        if let Some(list) = k.regions.get_mut(Region::from_u32(pick(&mut rng, k.regions.len()))) {
                            list.reverse();
                        }
                    }
                }
            }
            let _ = verify(&k);
            let _ = crate::analysis::report(&k);
        }
    }
}
