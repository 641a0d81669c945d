//! Block uniformity: which values are the same for every thread of a block.
//!
//! The verifier needs this to keep barriers and shuffles legal (DESIGN.md,
//! principle 4: a `__syncthreads()` is never under divergent control), and the
//! codegen and predictor can use it to keep uniform values in scalar
//! registers.
//!
//! The rules:
//! - constants, block ids, block and grid dims and scalar parameters are
//!   uniform; thread ids and the lane id are divergent;
//! - pure operations (unary, binary, fma, cmp, select, cast) are uniform when
//!   all their operands are;
//! - a global load is uniform when its index is uniform and its buffer is
//!   `read`-only (a writable buffer may change under other threads between
//!   their loads); shared loads and shuffles are divergent, because shared
//!   memory and warp lanes are exactly where threads differ;
//! - a `for` index is uniform when the bounds are uniform and the loop is not
//!   under divergent control;
//! - `var_get` is uniform when every `var_set` of that variable stores a
//!   uniform value and is not under divergent control. Variables are solved
//!   by an optimistic fixpoint: all start uniform and are demoted until
//!   nothing changes, which handles loop-carried variables.
//!
//! A value defined under divergent control is still uniform when its operands
//! are: it is computed by fewer threads, but those that compute it agree.
//! "Under divergent control" means some enclosing `if` has a non-uniform
//! condition or some enclosing `for` has non-uniform bounds.
//!
//! The analysis never panics: ids that do not exist are treated as divergent.

use cranelift_entity::SecondaryMap;

use crate::analysis::walk::{events, Event};
use crate::entities::{Inst, Value, Var};
use crate::inst::{Access, InstData, Special};
use crate::kernel::{KernelDef, ParamKind, ValueDef};

/// The result of [`uniformity`].
#[derive(Clone, Debug, Default)]
pub struct Uniformity {
    values: SecondaryMap<Value, bool>,
    vars: SecondaryMap<Var, bool>,
    /// For each instruction, the innermost enclosing `if`/`for` whose own
    /// condition or bounds are not uniform.
    divergent_control: SecondaryMap<Inst, Option<Inst>>,
    /// `if`/`for` instructions whose own condition or bounds are not uniform.
    divergent_branch: SecondaryMap<Inst, bool>,
}

impl Uniformity {
    /// True when `v` has the same value in every thread of a block that computes it.
    pub fn is_uniform(&self, v: Value) -> bool {
        self.values[v]
    }

    /// True when every `var_get` of `x` is uniform.
    pub fn is_var_uniform(&self, x: Var) -> bool {
        self.vars[x]
    }

    /// The innermost enclosing `if` or `for` of `inst` whose condition or
    /// bounds are not block-uniform, or `None` when every thread of the block
    /// that reaches the kernel body reaches `inst` too.
    pub fn divergent_control(&self, inst: Inst) -> Option<Inst> {
        self.divergent_control[inst]
    }

    /// True for an `if` whose condition, or a `for` whose bounds, are not uniform.
    pub fn is_divergent_branch(&self, inst: Inst) -> bool {
        self.divergent_branch[inst]
    }

    /// Uniform values in id order.
    pub fn uniform_values(&self, kernel: &KernelDef) -> Vec<Value> {
        kernel.values.keys().filter(|&v| self.values[v]).collect()
    }
}

/// Computes which values of `kernel` are block-uniform.
pub fn uniformity(kernel: &KernelDef) -> Uniformity {
    let events = events(kernel);
    let mut u = Uniformity::default();
    for x in kernel.vars.keys() {
        u.vars[x] = true;
    }
    // Each pass can only demote variables, so this runs at most vars + 1 times.
    loop {
        pass(kernel, &events, &mut u);
        let mut vars: SecondaryMap<Var, bool> = SecondaryMap::new();
        for x in kernel.vars.keys() {
            vars[x] = true;
        }
        for e in &events {
            let Event::Inst(i) = *e else { continue };
            if let Some(InstData::VarSet { var, value }) = kernel.insts.get(i) {
                if kernel.vars.is_valid(*var) && (!u.values[*value] || u.divergent_control[i].is_some()) {
                    vars[*var] = false;
                }
            }
        }
        let changed = kernel.vars.keys().any(|x| vars[x] != u.vars[x]);
        u.vars = vars;
        if !changed {
            return u;
        }
    }
}

/// One pass over the tree with the current variable assumptions.
fn pass(k: &KernelDef, events: &[Event], u: &mut Uniformity) {
    u.values = SecondaryMap::new();
    u.divergent_control = SecondaryMap::new();
    u.divergent_branch = SecondaryMap::new();
    // Innermost divergent construct for each open region.
    let mut control: Vec<Option<Inst>> = vec![None];
    for e in events {
        let current = control.last().copied().flatten();
        match *e {
            Event::Enter { owner, .. } => {
                let divergent = if u.divergent_branch[owner] { Some(owner) } else { current };
                control.push(divergent);
                if let Some(InstData::For { index, .. }) = k.insts.get(owner) {
                    if is_def(k, *index, ValueDef::LoopIndex(owner)) {
                        u.values[*index] = !u.divergent_branch[owner] && current.is_none();
                    }
                }
            }
            Event::Leave { .. } => {
                control.pop();
            }
            Event::Inst(i) => {
                u.divergent_control[i] = current;
                let Some(data) = k.insts.get(i) else { continue };
                let operands_uniform = data.operands().iter().all(|&v| u.values[v]);
                match data {
                    InstData::If { .. } | InstData::For { .. } => u.divergent_branch[i] = !operands_uniform,
                    _ => {}
                }
                let Some(result) = k.inst_result[i] else { continue };
                if !is_def(k, result, ValueDef::Result(i)) {
                    continue;
                }
                u.values[result] = match data {
                    InstData::Const(_) => true,
                    InstData::Special(s) => !matches!(s, Special::ThreadId(_) | Special::LaneId),
                    InstData::ScalarParam(p) => {
                        matches!(k.params.get(*p), Some(pd) if matches!(pd.kind, ParamKind::Scalar { .. }))
                    }
                    InstData::Unary { .. }
                    | InstData::Binary { .. }
                    | InstData::Fma { .. }
                    | InstData::Cmp { .. }
                    | InstData::Select { .. }
                    | InstData::Cast { .. }
                    | InstData::Bitcast { .. } => operands_uniform,
                    InstData::Load { buf, .. } => {
                        let read_only = matches!(
                            k.params.get(*buf).map(|p| &p.kind),
                            Some(ParamKind::Buffer { access: Access::Read, .. })
                        );
                        operands_uniform && read_only
                    }
                    InstData::VarGet(x) => k.vars.is_valid(*x) && u.vars[*x],
                    InstData::SharedLoad { .. } | InstData::Shuffle { .. } => false,
                    // These define no value; a result recorded for them is a
                    // verifier error, and claiming nothing about it is safe.
                    InstData::Store { .. }
                    | InstData::SharedStore { .. }
                    | InstData::VarSet { .. }
                    | InstData::Barrier
                    | InstData::For { .. }
                    | InstData::If { .. } => false,
                };
            }
        }
    }
}

/// True when `v` exists and is defined by `def` (so a malformed kernel that
/// claims one value for two instructions cannot make either look uniform).
fn is_def(k: &KernelDef, v: Value, def: ValueDef) -> bool {
    k.values.get(v).is_some_and(|d| d.def == def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use crate::inst::Axis;
    use crate::kernel::LaunchShape;
    use crate::types::Type;

    #[test]
    fn specials_params_and_pure_ops() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(4, 64));
        let n = b.scalar_param("n", Type::I32);
        let bid = b.block_id(Axis::X);
        let bdim = b.block_dim(Axis::X);
        let gdim = b.grid_dim(Axis::Y);
        let tid = b.thread_id(Axis::X);
        let lane = b.lane_id();
        let nv = b.param(n);
        let base = b.mul(bid, bdim);
        let gid = b.add(base, tid);
        let c = b.const_i32(3);
        let k = b.finish();
        let u = uniformity(&k);
        for v in [bid, bdim, gdim, nv, base, c] {
            assert!(u.is_uniform(v), "{v} should be uniform");
        }
        for v in [tid, lane, gid] {
            assert!(!u.is_uniform(v), "{v} should be divergent");
        }
    }

    #[test]
    fn loads_depend_on_index_and_access() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 64));
        let ro = b.buffer("ro", Type::F32, 64, Access::Read);
        let rw = b.buffer("rw", Type::F32, 64, Access::ReadWrite);
        let s = b.shared_array(Type::F32, 64);
        let zero = b.const_i32(0);
        let tid = b.thread_id(Axis::X);
        let a = b.load(ro, zero);
        let c = b.load(rw, zero);
        let d = b.load(ro, tid);
        let e = b.shared_load(s, zero);
        let f = b.shuffle_xor(a, 1);
        let k = b.finish();
        let u = uniformity(&k);
        assert!(u.is_uniform(a));
        assert!(!u.is_uniform(c), "writable buffers may change between loads");
        assert!(!u.is_uniform(d));
        assert!(!u.is_uniform(e));
        assert!(!u.is_uniform(f));
    }

    #[test]
    fn loop_index_and_divergent_control() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 64));
        let n = b.scalar_param("n", Type::I32);
        let nv = b.param(n);
        let zero = b.const_i32(0);
        let tid = b.thread_id(Axis::X);
        let mut uniform_index = None;
        let mut divergent_index = None;
        let mut nested_index = None;
        let mut inner_sum = None;
        b.for_range(zero, nv, 1, |b, i| {
            uniform_index = Some(i);
            b.barrier();
        });
        b.for_range(zero, tid, 1, |_, i| divergent_index = Some(i));
        let cond = b.lt(tid, nv);
        b.if_(cond, |b| {
            b.for_range(zero, nv, 1, |_, i| nested_index = Some(i));
            inner_sum = Some(b.add(nv, nv));
        });
        let k = b.finish();
        let u = uniformity(&k);
        assert!(u.is_uniform(uniform_index.unwrap()));
        assert!(!u.is_uniform(divergent_index.unwrap()));
        assert!(!u.is_uniform(nested_index.unwrap()), "loop under divergent if");
        assert!(u.is_uniform(inner_sum.unwrap()), "uniform operands stay uniform under divergence");
        let if_inst = k.insts.keys().find(|&i| matches!(k.insts[i], InstData::If { .. })).unwrap();
        assert!(u.is_divergent_branch(if_inst));
        let barrier = k.insts.keys().find(|&i| k.insts[i] == InstData::Barrier).unwrap();
        assert_eq!(u.divergent_control(barrier), None);
    }

    #[test]
    fn variables_solved_by_fixpoint() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 64));
        let zero = b.const_i32(0);
        let one = b.const_i32(1);
        let ten = b.const_i32(10);
        let tid = b.thread_id(Axis::X);
        // `a` is loop-carried but only ever uniform; `c` is set under a divergent if.
        let a = b.var_init(zero);
        let c = b.var_init(zero);
        // `d` becomes divergent only through `c`, one fixpoint round later.
        let d = b.var_init(zero);
        let mut a_in_loop = None;
        b.for_range(zero, ten, 1, |b, _| {
            let av = b.get(a);
            a_in_loop = Some(av);
            let next = b.add(av, one);
            b.set(a, next);
            let cv = b.get(c);
            b.set(d, cv);
        });
        let cond = b.lt(tid, ten);
        b.if_(cond, |b| b.set(c, one));
        let av = b.get(a);
        let cv = b.get(c);
        let dv = b.get(d);
        let k = b.finish();
        let u = uniformity(&k);
        assert!(u.is_uniform(a_in_loop.unwrap()));
        assert!(u.is_uniform(av));
        assert!(!u.is_uniform(cv));
        assert!(!u.is_uniform(dv));
        assert!(u.is_var_uniform(a));
        assert!(!u.is_var_uniform(d));
    }
}
