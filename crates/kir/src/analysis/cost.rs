//! Static cost of one launch: FLOPs, bytes moved, instructions.
//!
//! These are the kernel features the predictor starts from (DESIGN.md,
//! principle 6). They are upper estimates computed without running anything:
//! - every instruction is counted once per execution by one thread, times the
//!   trip counts of its enclosing loops, times the threads of the launch;
//! - both arms of every `if` are counted as taken by every thread, an upper
//!   bound (arms the range analysis proves unreachable, and bodies of loops
//!   that never run, count zero);
//! - a loop with constant bounds runs `ceil((end - start) / step)` times; a
//!   loop with other bounds uses the upper estimate
//!   `ceil((end.hi - start.lo) / step)` from the range analysis (so a loop to
//!   a thread-dependent bound counts as if every thread ran the longest
//!   trip), and [`KernelCost::exact_trips`] is false; a loop whose bounds the
//!   range analysis cannot bound at all counts one trip and sets
//!   [`KernelCost::unbounded_loops`].
//!
//! FLOPs count float operations only: `add`/`sub`/`mul`/`div`/`min`/`max` are
//! one each, `fma` two, and the float math functions (`exp`, `log`, `sqrt`,
//! `rsqrt`, `tanh`, `erf`, `floor`, `ceil`) one each. `neg`, `abs`,
//! comparisons and casts are free, as on the GPU they are folded into
//! neighbouring instructions or are not arithmetic throughput.
//!
//! Counts saturate at `u64::MAX` rather than wrap.

use cranelift_entity::SecondaryMap;

use crate::analysis::ranges::analyze;
use crate::analysis::walk::{events, Arm, Event};
use crate::entities::Inst;
use crate::inst::InstData;
use crate::kernel::KernelDef;

/// The static cost of one launch of a kernel.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct KernelCost {
    /// Threads in the launch.
    pub threads: u64,
    /// Floating-point operations over the launch.
    pub flops: u64,
    /// Bytes loaded from global memory over the launch.
    pub global_read_bytes: u64,
    /// Bytes stored to global memory over the launch.
    pub global_write_bytes: u64,
    /// Shared memory one block allocates.
    pub shared_bytes: u64,
    /// Bytes loaded from shared memory over the launch.
    pub shared_read_bytes: u64,
    /// Bytes stored to shared memory over the launch.
    pub shared_write_bytes: u64,
    /// Barriers one thread passes (so one block executes this many).
    pub barriers_per_thread: u64,
    /// KIR instructions executed over the launch (a `for` counts once per
    /// iteration plus once for the exit test), a proxy for issue slots.
    pub thread_insts: u64,
    /// True when every loop has constant bounds, so loop trip counts are exact.
    pub exact_trips: bool,
    /// Loops whose bounds could not be bounded; each was counted as one trip.
    pub unbounded_loops: u64,
}

/// Computes the static cost of one launch of `kernel`.
pub fn cost(kernel: &KernelDef) -> KernelCost {
    let facts = analyze(kernel);
    // Per-thread counts, in u128 so deep loop nests saturate only at the end.
    let mut flops = 0u128;
    let mut global_read = 0u128;
    let mut global_write = 0u128;
    let mut shared_read = 0u128;
    let mut shared_write = 0u128;
    let mut barriers = 0u128;
    let mut insts = 0u128;
    let mut exact_trips = true;
    let mut unbounded_loops = 0u64;
    // Executions per thread of the instructions in each open region.
    let mut mult: Vec<u128> = vec![1];
    let trips = |i: Inst| -> u128 { facts.trips[i].and_then(|t| t.max).unwrap_or(1) };
    let mut counted_loops: SecondaryMap<Inst, bool> = SecondaryMap::new();
    for e in events(kernel) {
        let m = mult.last().copied().unwrap_or(0);
        match e {
            Event::Enter { owner, region, arm } => {
                let inner = if facts.unreachable[region] {
                    0
                } else if arm == Arm::LoopBody {
                    m.saturating_mul(trips(owner))
                } else {
                    m
                };
                mult.push(inner);
            }
            Event::Leave { .. } => {
                mult.pop();
            }
            Event::Inst(i) => {
                let Some(data) = kernel.insts.get(i) else { continue };
                let ty = kernel.inst_result[i].and_then(|v| kernel.values.get(v)).map(|d| d.ty);
                let is_float = ty.is_some_and(|t| t.is_float());
                let elem = |bytes: Option<u64>| bytes.unwrap_or(0) as u128;
                insts = insts.saturating_add(m);
                match *data {
                    InstData::Binary { op, .. } if is_float && op.is_arith() => flops = flops.saturating_add(m),
                    InstData::Fma { .. } if is_float => flops = flops.saturating_add(m.saturating_mul(2)),
                    InstData::Unary { op, .. } if is_float && op.is_float_math() => flops = flops.saturating_add(m),
                    InstData::Load { buf, .. } => {
                        let size = elem(kernel.params.get(buf).map(|p| p.ty().size_bytes()));
                        global_read = global_read.saturating_add(m.saturating_mul(size));
                    }
                    InstData::Store { buf, .. } => {
                        let size = elem(kernel.params.get(buf).map(|p| p.ty().size_bytes()));
                        global_write = global_write.saturating_add(m.saturating_mul(size));
                    }
                    InstData::SharedLoad { array, .. } => {
                        let size = elem(kernel.shared.get(array).map(|s| s.elem.size_bytes()));
                        shared_read = shared_read.saturating_add(m.saturating_mul(size));
                    }
                    InstData::SharedStore { array, .. } => {
                        let size = elem(kernel.shared.get(array).map(|s| s.elem.size_bytes()));
                        shared_write = shared_write.saturating_add(m.saturating_mul(size));
                    }
                    InstData::Barrier => barriers = barriers.saturating_add(m),
                    InstData::For { .. } => {
                        // The loop test runs once per iteration and once to exit.
                        insts = insts.saturating_add(m.saturating_mul(trips(i)));
                        if !counted_loops[i] {
                            counted_loops[i] = true;
                            match facts.trips[i] {
                                Some(t) if t.max.is_some() => exact_trips &= t.exact,
                                _ => {
                                    exact_trips = false;
                                    unbounded_loops += 1;
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // Not `LaunchShape::total_threads`: a malformed launch could overflow u64.
    let threads =
        kernel.launch.grid.iter().chain(&kernel.launch.block).fold(1u128, |n, &d| n.saturating_mul(d as u128));
    let saturate = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    let total = |per_thread: u128| saturate(per_thread.saturating_mul(threads));
    KernelCost {
        threads: saturate(threads),
        flops: total(flops),
        global_read_bytes: total(global_read),
        global_write_bytes: total(global_write),
        shared_bytes: kernel.shared.values().fold(0u64, |n, s| n.saturating_add(s.bytes())),
        shared_read_bytes: total(shared_read),
        shared_write_bytes: total(shared_write),
        barriers_per_thread: saturate(barriers),
        thread_insts: total(insts),
        exact_trips,
        unbounded_loops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use crate::inst::{Access, Axis};
    use crate::kernel::LaunchShape;
    use crate::types::Type;

    #[test]
    fn vector_add_counts_by_hand() {
        let n = 1000;
        let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(4, 256));
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let y = b.buffer("y", Type::F32, n, Access::Read);
        let out = b.buffer("out", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X); // 5 insts, integer: no flops
        let limit = b.const_i32(n as i32);
        let in_range = b.lt(i, limit);
        b.if_(in_range, |b| {
            let xi = b.load(x, i);
            let yi = b.load(y, i);
            let sum = b.add(xi, yi);
            b.store(out, i, sum);
        });
        let c = cost(&b.finish());
        // 1024 threads; the `if` counts as taken by all of them.
        assert_eq!(c.threads, 1024);
        assert_eq!(c.flops, 1024);
        assert_eq!(c.global_read_bytes, 2 * 4 * 1024);
        assert_eq!(c.global_write_bytes, 4 * 1024);
        assert_eq!(c.thread_insts, 12 * 1024);
        assert_eq!(c.shared_bytes, 0);
        assert!(c.exact_trips);
    }

    #[test]
    fn loops_multiply_and_flops_by_kind() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(2, 32));
        let x = b.buffer("x", Type::F16, 64, Access::Read);
        let s = b.shared_array(Type::F32, 32);
        let one = b.const_f32(1.0);
        let tid = b.thread_id(Axis::X);
        // 0, 3, 6, 9: four trips.
        b.for_const(0, 10, 3, |b, _| {
            let v = b.fma(one, one, one); // 2 flops
            let e = b.exp(v); // 1 flop
            let n = b.neg(e); // free
            b.shared_store(s, tid, n); // 4 bytes
            b.for_const(0, 2, 1, |b, _| {
                b.load(x, tid); // 2 bytes
                b.barrier();
            });
        });
        let c = cost(&b.finish());
        assert_eq!(c.threads, 64);
        assert_eq!(c.flops, 4 * 3 * 64);
        assert_eq!(c.shared_write_bytes, 4 * 4 * 64);
        assert_eq!(c.global_read_bytes, 4 * 2 * 2 * 64);
        assert_eq!(c.barriers_per_thread, 8);
        assert_eq!(c.shared_bytes, 128);
        // Per thread: const, special, 2 loop consts, for (4 + 1),
        // 4 x (fma, exp, neg, shared_store, 2 consts, inner for (2 + 1),
        //      2 x (load, barrier)).
        let per_thread = 2 + 2 + 5 + 4 * (4 + 2 + 3 + 2 * 2);
        assert_eq!(c.thread_insts, per_thread * 64);
        assert!(c.exact_trips);
    }

    #[test]
    fn thread_dependent_bounds_use_the_upper_estimate() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let n = b.scalar_param("n", Type::I32);
        let one = b.const_f32(1.0);
        let zero = b.const_i32(0);
        let tid = b.thread_id(Axis::X);
        // Thread t runs t trips; counted as 31 for every thread.
        b.for_range(zero, tid, 1, |b, _| {
            b.add(one, one);
        });
        let c = cost(&b.kernel().clone());
        assert_eq!(c.flops, 31 * 32);
        assert!(!c.exact_trips);
        assert_eq!(c.unbounded_loops, 0);
        // A bound the analysis cannot bound counts one trip.
        let nv = b.param(n);
        b.for_range(zero, nv, 1, |b, _| {
            b.mul(one, one);
        });
        let c = cost(&b.finish());
        assert_eq!(c.flops, (31 + 1) * 32);
        assert_eq!(c.unbounded_loops, 1);
    }

    #[test]
    fn unreachable_code_costs_nothing_and_integers_are_not_flops() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let one = b.const_f32(1.0);
        let i = b.const_i32(1);
        b.add(i, i);
        b.for_const(3, 3, 1, |b, _| {
            b.add(one, one);
        });
        let c = cost(&b.finish());
        assert_eq!(c.flops, 0);
    }
}
