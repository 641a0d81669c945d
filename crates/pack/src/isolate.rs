//! Isolation: every global access of a packed kernel stays in its own buffer,
//! and every shared-memory access in its own array.
//!
//! DESIGN.md principle 5: a bundle fuses kernels of different tenants into one
//! launch, so an out-of-bounds index in one slot could reach another tenant's
//! memory on the GPU. The packer therefore accepts a kernel only when
//! [`access_ranges`] proves every global `load` and `store` in bounds, or after
//! [`isolate`] has guarded the accesses it cannot prove:
//!
//! - an unproven `v = load buf[idx]` becomes
//!   `x = 0; if 0 <= idx && idx <= len-1 { x = load buf[idx] }; v = x`,
//!   so an out-of-range read yields zero (all-zero bits of the element type);
//! - an unproven `store buf[idx] = v` becomes
//!   `if 0 <= idx && idx <= len-1 { store buf[idx] = v }`, so an out-of-range
//!   write is dropped.
//!
//! Guards are structured `if`s rather than clamped indices or selects because
//! the analysis is path-sensitive on `if` conditions: inside the arm the index
//! is refined to `[0, len-1]`, so the guarded kernel is *proven*, not merely
//! believed, safe; a select over the index would leave it unbounded. The
//! checks are built in the index's own type (the lower check is omitted for
//! `u32`, the upper one when `len-1` exceeds the type), and `len == 0` makes
//! the condition the constant `false`, an arm the analysis sees as
//! unreachable.
//!
//! The rewrite is in place: the loaded value keeps its id (its instruction
//! becomes the `var_get`) so no use needs renaming; new instructions, values,
//! regions and a variable per guarded load are appended to the arenas. No
//! barrier or shuffle moves under the new (possibly divergent) conditions,
//! so barrier legality is unchanged. A guarded kernel is re-verified and
//! re-analysed before it is returned; an access that is still not proven (a
//! `u32` index into a buffer of more than 2^32 elements is the one case) is an
//! error rather than a silently unguarded kernel.
//!
//! Shared-memory accesses get the same treatment (`shared_load` and
//! `shared_store`, checked against the array's length): a bundle's bodies
//! share one block's shared pool, so an index past one array would reach
//! another's, and on the cpu executor past the pool.
//!
//! Proven accesses are left alone, and a kernel with no unproven access is
//! returned as the same `Arc`, so bodies keep deduplicating by pointer.

use std::collections::HashMap;
use std::sync::Arc;

use weft_kir::analysis::{access_ranges, shared_ranges, AccessKind, AccessRange, IndexRange, SharedAccessRange};
use weft_kir::verifier::verify;
use weft_kir::{BinaryOp, CmpOp, Inst, InstData, KernelDef, Region, Scalar, Type, Value, ValueData, ValueDef, VarData};

use crate::error::PackError;

/// One access [`isolate`] guarded.
#[derive(Clone, PartialEq, Debug)]
pub struct GuardedAccess {
    /// The access's instruction in the original kernel (for a load, the
    /// guarded kernel's instruction with this id is now the `var_get` that
    /// yields the loaded value; for a store it is the store, now in the guard's arm).
    pub inst: Inst,
    pub kind: AccessKind,
    /// The buffer parameter's name, or the shared array's id (`s0`).
    pub buffer: String,
    /// Whether the access is to shared memory.
    pub shared: bool,
    /// The buffer's (or array's) length in elements.
    pub len: u64,
    /// What the analysis knew about the index before the guard.
    pub index: IndexRange,
}

/// A kernel made safe to pack, and the accesses that needed a guard.
#[derive(Clone, Debug)]
pub struct Isolated {
    /// The kernel to pack: the input itself when every access was proven.
    pub kernel: Arc<KernelDef>,
    pub guarded: Vec<GuardedAccess>,
}

/// The global accesses of `kernel` that the access-range analysis cannot
/// prove in bounds, in text order.
pub fn unproven(kernel: &KernelDef) -> Vec<AccessRange> {
    access_ranges(kernel).into_iter().filter(|a| !a.is_proven()).collect()
}

/// The shared-memory accesses of `kernel` that the access-range analysis
/// cannot prove inside their arrays, in text order.
pub fn unproven_shared(kernel: &KernelDef) -> Vec<SharedAccessRange> {
    shared_ranges(kernel).into_iter().filter(|a| !a.is_proven()).collect()
}

/// The [`PackError::Unproven`] for the shared access `access` of `kernel`.
pub fn unproven_shared_error(kernel: &KernelDef, access: &SharedAccessRange) -> PackError {
    PackError::Unproven {
        kernel: kernel.name.clone(),
        inst: access.inst,
        access: access.kind,
        buffer: format!("{} (shared)", access.array),
        len: access.len as u64,
        index: access.index,
    }
}

/// The first access of `kernel`, global or shared, not proven in bounds.
pub(crate) fn first_unproven(kernel: &KernelDef) -> Option<PackError> {
    if let Some(a) = unproven(kernel).first() {
        return Some(unproven_error(kernel, a));
    }
    unproven_shared(kernel).first().map(|a| unproven_shared_error(kernel, a))
}

/// The [`PackError::Unproven`] for `access` of `kernel`.
pub fn unproven_error(kernel: &KernelDef, access: &AccessRange) -> PackError {
    PackError::Unproven {
        kernel: kernel.name.clone(),
        inst: access.inst,
        access: access.kind,
        buffer: kernel.params.get(access.buf).map_or_else(|| access.buf.to_string(), |p| p.name.clone()),
        len: access.len,
        index: access.index,
    }
}

/// Guards every global access of `kernel` that is not proven in bounds (see
/// the module docs). `kernel` must verify; the result does and is proven.
pub fn isolate(kernel: &Arc<KernelDef>) -> Result<Isolated, PackError> {
    verify(kernel)?;
    let global = unproven(kernel);
    let shared = unproven_shared(kernel);
    if global.is_empty() && shared.is_empty() {
        return Ok(Isolated { kernel: kernel.clone(), guarded: Vec::new() });
    }
    let mut guarded_kernel = (**kernel).clone();
    let mut guarded: Vec<GuardedAccess> = global
        .iter()
        .map(|a| GuardedAccess {
            inst: a.inst,
            kind: a.kind,
            buffer: kernel.params.get(a.buf).map_or_else(|| a.buf.to_string(), |p| p.name.clone()),
            shared: false,
            len: a.len,
            index: a.index,
        })
        .chain(shared.iter().map(|a| GuardedAccess {
            inst: a.inst,
            kind: a.kind,
            buffer: a.array.to_string(),
            shared: true,
            len: a.len as u64,
            index: a.index,
        }))
        .collect();
    guarded.sort_by_key(|g| g.inst);
    let by_inst: HashMap<Inst, u64> = guarded.iter().map(|g| (g.inst, g.len)).collect();
    // Only regions of the input kernel can hold an unproven access; the
    // guards' new arms hold proven ones.
    let regions: Vec<Region> = kernel.regions.keys().collect();
    for region in regions {
        let old = std::mem::take(&mut guarded_kernel.regions[region]);
        let mut new = Vec::with_capacity(old.len());
        for inst in old {
            match by_inst.get(&inst) {
                Some(&len) => Guard { k: &mut guarded_kernel }.guard(inst, len, &mut new),
                None => new.push(inst),
            }
        }
        guarded_kernel.regions[region] = new;
    }
    verify(&guarded_kernel)?;
    if let Some(still) = first_unproven(&guarded_kernel) {
        return Err(still);
    }
    Ok(Isolated { kernel: Arc::new(guarded_kernel), guarded })
}

/// Appends guard instructions to a kernel's arenas.
struct Guard<'k> {
    k: &'k mut KernelDef,
}

impl Guard<'_> {
    /// A new instruction that defines no value (not yet in any region).
    fn effect(&mut self, data: InstData) -> Inst {
        self.k.insts.push(data)
    }

    /// Appends a value-producing instruction to `out` and returns its value.
    fn value(&mut self, out: &mut Vec<Inst>, data: InstData, ty: Type) -> Value {
        let inst = self.k.insts.push(data);
        let v = self.k.values.push(ValueData { ty, def: ValueDef::Result(inst) });
        self.k.inst_result[inst] = Some(v);
        out.push(inst);
        v
    }

    /// Replaces the unproven access `inst` (of an array of `len` elements)
    /// by its guarded form, appended to `out`.
    fn guard(&mut self, inst: Inst, len: u64, out: &mut Vec<Inst>) {
        let data = self.k.insts[inst].clone();
        match data {
            InstData::Load { index, .. } | InstData::SharedLoad { index, .. } => {
                self.guard_load(inst, data.clone(), index, len, out)
            }
            InstData::Store { index, .. } | InstData::SharedStore { index, .. } => {
                let cond = self.in_bounds(index, len, out);
                let arm = self.k.regions.push(vec![inst]);
                let guard = self.effect(InstData::If { cond, then: arm, else_: None });
                out.push(guard);
            }
            // The analysis reports only loads and stores.
            _ => out.push(inst),
        }
    }

    /// `load` is the access itself (a global or shared load), moved into the arm.
    fn guard_load(&mut self, inst: Inst, load: InstData, index: Value, len: u64, out: &mut Vec<Inst>) {
        let Some(result) = self.k.inst_result[inst] else {
            out.push(inst);
            return;
        };
        let elem = self.k.value_type(result);
        let var = self.k.vars.push(VarData { ty: elem });
        let zero = self.value(out, InstData::Const(Scalar::from_bits(elem, 0)), elem);
        let init = self.effect(InstData::VarSet { var, value: zero });
        out.push(init);
        let cond = self.in_bounds(index, len, out);
        let mut arm = Vec::new();
        let loaded = self.value(&mut arm, load, elem);
        let set = self.effect(InstData::VarSet { var, value: loaded });
        arm.push(set);
        let arm = self.k.regions.push(arm);
        let guard = self.effect(InstData::If { cond, then: arm, else_: None });
        out.push(guard);
        // The original instruction now reads the variable, so its result
        // (and every use of it) is unchanged.
        self.k.insts[inst] = InstData::VarGet(var);
        out.push(inst);
    }

    /// `0 <= index && index <= len - 1` in `index`'s type, appended to `out`.
    fn in_bounds(&mut self, index: Value, len: u64, out: &mut Vec<Inst>) -> Value {
        let ty = self.k.value_type(index);
        let int = |v: i128| match ty {
            Type::U32 => Scalar::U32(v as u32),
            Type::I64 => Scalar::I64(v as i64),
            _ => Scalar::I32(v as i32),
        };
        let max = match ty {
            Type::U32 => u32::MAX as i128,
            Type::I64 => i64::MAX as i128,
            _ => i32::MAX as i128,
        };
        let Some(last) = (len as i128).checked_sub(1).filter(|&l| l >= 0) else {
            // An empty buffer has no valid index.
            return self.value(out, InstData::Const(Scalar::Bool(false)), Type::Bool);
        };
        let mut checks = Vec::new();
        if ty.is_signed_int() {
            let zero = self.value(out, InstData::Const(int(0)), ty);
            checks.push(self.value(out, InstData::Cmp { op: CmpOp::Ge, lhs: index, rhs: zero }, Type::Bool));
        }
        if last < max {
            let last = self.value(out, InstData::Const(int(last)), ty);
            checks.push(self.value(out, InstData::Cmp { op: CmpOp::Le, lhs: index, rhs: last }, Type::Bool));
        }
        match checks[..] {
            [] => self.value(out, InstData::Const(Scalar::Bool(true)), Type::Bool),
            [one] => one,
            [lo, hi, ..] => self.value(out, InstData::Binary { op: BinaryOp::And, lhs: lo, rhs: hi }, Type::Bool),
        }
    }
}

#[cfg(test)]
mod tests {
    use weft_interp::Interpreter;
    use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, LaunchShape};

    use super::*;

    /// `out[i + shift] = x[i - shift] * 2` over 2 blocks of 32, buffers of `n`.
    fn shifted(n: u64, shift: i32, index_ty: Type) -> KernelDef {
        let mut b = KernelBuilder::new("shifted", LaunchShape::linear(2, 32));
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let out = b.buffer("out", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X);
        let i = if index_ty == Type::I32 { i } else { b.cast(index_ty, i) };
        let s = b.constant(Scalar::from_f64(index_ty, shift as f64));
        let src = b.sub(i, s);
        let dst = b.add(i, s);
        let v = b.load(x, src);
        let v2 = b.add(v, v);
        b.store(out, dst, v2);
        b.finish()
    }

    fn run(k: &KernelDef, n: usize) -> Result<Vec<f32>, weft_interp::InterpError> {
        let x: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
        let mut args = [ArgValue::Buffer(HostBuffer::from_f32(&x)), ArgValue::Buffer(HostBuffer::zeros(Type::F32, n))];
        Interpreter::new().threads(1).run(k, &mut args)?;
        Ok(args[1].as_buffer().map(HostBuffer::to_f32_vec).unwrap_or_default())
    }

    #[test]
    fn guards_make_out_of_range_reads_zero_and_drop_writes() {
        for ty in [Type::I32, Type::I64] {
            let k = Arc::new(shifted(64, 3, ty));
            assert!(run(&k, 64).is_err(), "the unguarded kernel faults");
            let iso = isolate(&k).unwrap();
            assert_eq!(iso.guarded.len(), 2, "{ty}");
            assert_eq!(iso.guarded[0].kind, AccessKind::Load);
            assert_eq!(iso.guarded[1].buffer, "out");
            assert!(unproven(&iso.kernel).is_empty());
            let got = run(&iso.kernel, 64).unwrap();
            // out[j] = 2 * x[j - 6] where j - 6 is in range, x[k] = k + 1.
            let want: Vec<f32> = (0..64).map(|j| if j >= 6 { 2.0 * (j as f32 - 5.0) } else { 0.0 }).collect();
            assert_eq!(got, want, "{ty}");
        }
    }

    #[test]
    fn unsigned_indices_need_only_the_upper_check() {
        let k = Arc::new(shifted(60, 0, Type::U32));
        let iso = isolate(&k).unwrap();
        assert_eq!(iso.guarded.len(), 2);
        let text = iso.kernel.to_string();
        assert!(!text.contains(" ge "), "{text}");
        let want: Vec<f32> = (0..60).map(|j| 2.0 * (j as f32 + 1.0)).collect();
        assert_eq!(run(&iso.kernel, 60).unwrap(), want);
    }

    #[test]
    fn proven_kernels_come_back_as_the_same_arc() {
        let k = Arc::new(shifted(64, 0, Type::I32));
        let iso = isolate(&k).unwrap();
        assert!(iso.guarded.is_empty());
        assert!(Arc::ptr_eq(&iso.kernel, &k));
    }

    #[test]
    fn unknown_indices_are_guarded_too() {
        // out[idx[i]] = 1 with data-dependent indices, some negative or too large.
        let mut b = KernelBuilder::new("scatter", LaunchShape::linear(1, 32));
        let idx = b.buffer("idx", Type::I32, 32, Access::Read);
        let out = b.buffer("out", Type::F32, 8, Access::Write);
        let i = b.thread_id(Axis::X);
        let j = b.load(idx, i);
        let one = b.const_f32(1.0);
        b.store(out, j, one);
        let k = Arc::new(b.finish());
        let iso = isolate(&k).unwrap();
        assert_eq!(iso.guarded.len(), 1);
        assert_eq!(iso.guarded[0].index, IndexRange::Unknown);
        let idx: Vec<i32> = (0..32).map(|i| i - 12).collect();
        let mut args =
            [ArgValue::Buffer(HostBuffer::from_i32(&idx)), ArgValue::Buffer(HostBuffer::zeros(Type::F32, 8))];
        Interpreter::new().run(&iso.kernel, &mut args).unwrap();
        assert_eq!(args[1].as_buffer().unwrap().to_f32_vec(), vec![1.0; 8]);
    }
}
