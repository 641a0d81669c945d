//! Mapped runs: several kernels in one launch, physical blocks mapped to
//! (slot, logical block).
//!
//! This is how the interpreter runs a packer bundle (DESIGN.md, principles 2
//! and 3). A mapped run has *slots*, each a kernel with its own arguments, and
//! a number of *physical blocks*; a mapping says which `(slot, linear logical
//! block)` pairs each physical block runs, in order. Coalescing gives slots
//! disjoint physical ranges; constraining gives a slot fewer physical blocks
//! than logical ones, each looping over several logical blocks.
//!
//! Shaped for one property: **a bundle's outputs are bit-identical to running
//! each slot alone**. So a logical block runs through the very same
//! [`run_block`] as [`Interpreter::run`], on the slot's own [`Launch`] (its
//! own global memory, scalars and thread ids), with the same logical block
//! coordinates; only the order and grouping of blocks differs, which
//! race-free kernels cannot observe. Slots never share memory: each slot's
//! buffers are copied in separately and written back to that slot's arguments
//! only.
//!
//! The mapping is evaluated once, up front, and checked to run every logical
//! block of every slot exactly once: a table that skips or repeats a block
//! would silently give wrong (or accumulated) outputs, so it is an error
//! instead ([`InterpError::InvalidMapping`]). Physical blocks then run in
//! parallel on rayon; when several fail, the lowest physical block's first
//! failing logical block is reported, wrapped in [`InterpError::Slot`] naming
//! the slot, so the error does not depend on the schedule.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use weft_kir::{check_args, verifier, ArgValue, KernelDef, ParamKind};

use crate::block::{run_block, BlockState, Launch};
use crate::{check_launch, ExecStats, InterpError, Interpreter};

/// One slot of a mapped run: a kernel and its arguments (one per parameter).
/// Buffers the kernel may write are updated in place when the run succeeds.
pub struct MappedSlot<'a> {
    pub kernel: &'a KernelDef,
    pub args: &'a mut [ArgValue],
}

impl<'a> MappedSlot<'a> {
    pub fn new(kernel: &'a KernelDef, args: &'a mut [ArgValue]) -> MappedSlot<'a> {
        MappedSlot { kernel, args }
    }
}

/// What one physical block failed with: the slot and its error.
type Failure = (usize, InterpError);

/// The outcome of a set of physical blocks (cf. `Outcome` in `lib.rs`).
struct MappedOutcome {
    thread_insts: u64,
    /// `(physical block, slot, error)` of the lowest failing physical block.
    failure: Option<(u32, Failure)>,
}

impl MappedOutcome {
    fn ok(thread_insts: u64) -> MappedOutcome {
        MappedOutcome { thread_insts, failure: None }
    }

    fn merge(self, other: MappedOutcome) -> MappedOutcome {
        let failure = match (self.failure, other.failure) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        MappedOutcome { thread_insts: self.thread_insts + other.thread_insts, failure }
    }
}

impl Interpreter {
    /// Runs `slots` in one launch of `physical_blocks` blocks, where
    /// `map(p)` lists the `(slot index, linear logical block)` pairs physical
    /// block `p` runs, in order. Each logical block executes exactly as in a
    /// solo [`run`](Interpreter::run) of its slot's kernel, on that slot's
    /// own buffers.
    ///
    /// Every slot's arguments are checked and its kernel verified first. The
    /// mapping must name existing slots and logical blocks and run each
    /// logical block of each slot exactly once. Buffers are written back only
    /// when every block succeeds. The returned [`ExecStats::blocks`] counts
    /// logical blocks over all slots.
    ///
    /// ```
    /// use weft_interp::{Interpreter, MappedSlot};
    /// use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, LaunchShape, Type};
    ///
    /// let mut b = KernelBuilder::new("inc", LaunchShape::linear(4, 32));
    /// let x = b.buffer("x", Type::F32, 128, Access::ReadWrite);
    /// let i = b.global_thread_id(Axis::X);
    /// let v = b.load(x, i);
    /// let one = b.const_f32(1.0);
    /// let y = b.add(v, one);
    /// b.store(x, i, y);
    /// let k = b.finish();
    ///
    /// // Two tenants: slot 0 coalesced (4 physical blocks), slot 1
    /// // constrained to one persistent block looping over its 4 logical ones.
    /// let mut a0 = [ArgValue::Buffer(HostBuffer::from_f32(&[0.0; 128]))];
    /// let mut a1 = [ArgValue::Buffer(HostBuffer::from_f32(&[5.0; 128]))];
    /// let mut slots = [MappedSlot::new(&k, &mut a0), MappedSlot::new(&k, &mut a1)];
    /// let map = |p: u32| if p < 4 { vec![(0, p as u64)] } else { (0..4).map(|l| (1, l)).collect() };
    /// let stats = Interpreter::new().run_mapped(&mut slots, 5, map).unwrap();
    /// assert_eq!(stats.blocks, 8);
    /// assert_eq!(a0[0].as_buffer().unwrap().to_f32_vec(), vec![1.0; 128]);
    /// assert_eq!(a1[0].as_buffer().unwrap().to_f32_vec(), vec![6.0; 128]);
    /// ```
    pub fn run_mapped<F, I>(
        &self,
        slots: &mut [MappedSlot<'_>],
        physical_blocks: u32,
        map: F,
    ) -> Result<ExecStats, InterpError>
    where
        F: Fn(u32) -> I,
        I: IntoIterator<Item = (usize, u64)>,
    {
        let in_slot = |slot: usize, kernel: &KernelDef, error: InterpError| InterpError::Slot {
            slot,
            kernel: kernel.name.clone(),
            error: Box::new(error),
        };
        for (s, slot) in slots.iter().enumerate() {
            let checked = check_args(slot.kernel, slot.args)
                .map_err(InterpError::from)
                .and_then(|()| verifier::verify_for(slot.kernel, &self.target).map_err(InterpError::from))
                .and_then(|()| check_launch(slot.kernel, &self.target));
            checked.map_err(|e| in_slot(s, slot.kernel, e))?;
        }
        let plan = plan(slots, physical_blocks, map)?;

        let launches: Vec<Launch> = slots
            .iter()
            .map(|s| {
                let mut launch = Launch::new(s.kernel, s.args);
                launch.deadline = self.deadline;
                launch
            })
            .collect();
        let outcome = match self.threads {
            Some(1) => run_plan_sequential(&launches, &plan),
            Some(n) => self.pool(n)?.install(|| run_plan_parallel(&launches, &plan)),
            None => run_plan_parallel(&launches, &plan),
        };
        if let Some((_, (s, error))) = outcome.failure {
            return Err(in_slot(s, slots[s].kernel, error));
        }
        let mut blocks = 0;
        for (slot, launch) in slots.iter_mut().zip(&launches) {
            blocks += slot.kernel.launch.num_blocks();
            for ((_, param), (arg, global)) in slot.kernel.params.iter().zip(slot.args.iter_mut().zip(&launch.globals))
            {
                let writable = matches!(param.kind, ParamKind::Buffer { access, .. } if access.can_write());
                if let (true, ArgValue::Buffer(host), Some(global)) = (writable, arg, global) {
                    global.write_back(host);
                }
            }
        }
        Ok(ExecStats { blocks, thread_insts: outcome.thread_insts })
    }
}

/// Evaluates the mapping for every physical block and checks that it runs
/// each logical block of each slot exactly once.
fn plan<F, I>(slots: &[MappedSlot<'_>], physical_blocks: u32, map: F) -> Result<Vec<Vec<(usize, u64)>>, InterpError>
where
    F: Fn(u32) -> I,
    I: IntoIterator<Item = (usize, u64)>,
{
    let invalid = |reason: String| Err(InterpError::InvalidMapping { reason });
    let mut runs: Vec<Vec<u32>> = slots.iter().map(|s| vec![0; s.kernel.launch.num_blocks() as usize]).collect();
    let mut plan = Vec::with_capacity(physical_blocks as usize);
    for p in 0..physical_blocks {
        let list: Vec<(usize, u64)> = map(p).into_iter().collect();
        for &(s, lb) in &list {
            let Some(count) = runs.get_mut(s).and_then(|r| r.get_mut(lb as usize)) else {
                let what = match slots.get(s) {
                    None => format!("slot {s}, but there are {} slots", slots.len()),
                    Some(slot) => format!(
                        "logical block {lb} of slot {s} (kernel `{}`), which has {} blocks",
                        slot.kernel.name,
                        slot.kernel.launch.num_blocks()
                    ),
                };
                return invalid(format!("physical block {p} names {what}"));
            };
            *count += 1;
        }
        plan.push(list);
    }
    for (s, counts) in runs.iter().enumerate() {
        if let Some((lb, &n)) = counts.iter().enumerate().find(|(_, &n)| n != 1) {
            return invalid(format!(
                "logical block {lb} of slot {s} (kernel `{}`) runs {n} times, not once",
                slots[s].kernel.name
            ));
        }
    }
    Ok(plan)
}

/// Per-worker block states, one per slot, made on first use (a worker may
/// never meet some slots, and a state is sized by its kernel).
struct States<'l, 'k> {
    launches: &'l [Launch<'k>],
    states: Vec<Option<BlockState>>,
}

impl States<'_, '_> {
    fn new<'l, 'k>(launches: &'l [Launch<'k>]) -> States<'l, 'k> {
        States { launches, states: launches.iter().map(|_| None).collect() }
    }

    /// Runs physical block `p`'s list in order; stops at the first failure.
    fn run_physical(&mut self, list: &[(usize, u64)]) -> (u64, Option<Failure>) {
        let mut thread_insts = 0;
        for &(s, lb) in list {
            // `plan` checked every slot index against `launches`.
            let launch = &self.launches[s];
            let state = self.states[s].get_or_insert_with(|| BlockState::new(launch));
            let before = state.thread_insts;
            let result = run_block(launch, state, lb);
            thread_insts += state.thread_insts - before;
            if let Err(e) = result {
                return (thread_insts, Some((s, e)));
            }
        }
        (thread_insts, None)
    }
}

fn run_plan_sequential(launches: &[Launch], plan: &[Vec<(usize, u64)>]) -> MappedOutcome {
    let mut states = States::new(launches);
    let mut thread_insts = 0;
    for (p, list) in plan.iter().enumerate() {
        let (n, failure) = states.run_physical(list);
        thread_insts += n;
        if let Some(f) = failure {
            return MappedOutcome { thread_insts, failure: Some((p as u32, f)) };
        }
    }
    MappedOutcome::ok(thread_insts)
}

/// Physical blocks above the lowest failed one so far are skipped, as in
/// `run_parallel`, so the reported failure is the lowest physical block's.
fn run_plan_parallel(launches: &[Launch], plan: &[Vec<(usize, u64)>]) -> MappedOutcome {
    let lowest_failed = AtomicU64::new(u64::MAX);
    plan.par_iter()
        .enumerate()
        .map_init(
            || States::new(launches),
            |states, (p, list)| {
                if p as u64 > lowest_failed.load(Ordering::Relaxed) {
                    return MappedOutcome::ok(0);
                }
                let (thread_insts, failure) = states.run_physical(list);
                if failure.is_some() {
                    lowest_failed.fetch_min(p as u64, Ordering::Relaxed);
                }
                MappedOutcome { thread_insts, failure: failure.map(|f| (p as u32, f)) }
            },
        )
        .reduce(|| MappedOutcome::ok(0), MappedOutcome::merge)
}

#[cfg(test)]
mod tests {
    use weft_kernels::cases::{row_softmax_case, sgemm_case};
    use weft_kernels::SgemmTiles;
    use weft_kir::{Access, Axis, HostBuffer, KernelBuilder, LaunchShape, Type};

    use super::*;

    /// `x[i] += 1` over `blocks` blocks of 32 threads.
    fn increment(blocks: u32) -> KernelDef {
        let n = blocks as u64 * 32;
        let mut b = KernelBuilder::new("inc", LaunchShape::linear(blocks, 32));
        let x = b.buffer("x", Type::F32, n, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let v = b.load(x, i);
        let one = b.const_f32(1.0);
        let y = b.add(v, one);
        b.store(x, i, y);
        b.finish()
    }

    fn buf(n: usize, v: f32) -> Vec<ArgValue> {
        vec![ArgValue::Buffer(HostBuffer::from_f32(&vec![v; n]))]
    }

    #[test]
    fn shuffled_persistent_blocks_match_solo_bit_for_bit() {
        let tiles = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
        let cases = [sgemm_case(45, 37, 29, tiles, 1), row_softmax_case(5, 300, 2)];
        for threads in [1, 3] {
            let interp = Interpreter::new().threads(threads);
            let solo: Vec<Vec<ArgValue>> = cases
                .iter()
                .map(|c| {
                    let mut args = c.args.clone();
                    interp.run(&c.kernel, &mut args).unwrap();
                    args
                })
                .collect();
            let mut args: Vec<Vec<ArgValue>> = cases.iter().map(|c| c.args.clone()).collect();
            let blocks: Vec<u64> = cases.iter().map(|c| c.kernel.launch.num_blocks()).collect();
            let [a0, a1] = &mut args[..] else { unreachable!() };
            let mut slots = [MappedSlot::new(&cases[0].kernel, a0), MappedSlot::new(&cases[1].kernel, a1)];
            // Physical block 0 runs slot 1 backwards; blocks 1.. run slot 0 two at a time.
            let map = |p: u32| -> Vec<(usize, u64)> {
                if p == 0 {
                    (0..blocks[1]).rev().map(|l| (1, l)).collect()
                } else {
                    let l = 2 * (p as u64 - 1);
                    (l..(l + 2).min(blocks[0])).map(|l| (0, l)).collect()
                }
            };
            let phys = 1 + blocks[0].div_ceil(2) as u32;
            let stats = interp.run_mapped(&mut slots, phys, map).unwrap();
            assert_eq!(stats.blocks, blocks[0] + blocks[1]);
            assert_eq!(args, solo);
        }
    }

    #[test]
    fn mappings_that_skip_repeat_or_overrun_are_rejected() {
        let k = increment(2);
        let mut a = buf(64, 0.0);
        let mut slots = [MappedSlot::new(&k, &mut a)];
        let interp = Interpreter::new();
        let skip = interp.run_mapped(&mut slots, 1, |_| [(0, 0)]).unwrap_err();
        assert!(skip.to_string().contains("logical block 1 of slot 0 (kernel `inc`) runs 0 times"), "{skip}");
        let twice = interp.run_mapped(&mut slots, 3, |p| [(0, p.min(1) as u64)]).unwrap_err();
        assert!(twice.to_string().contains("runs 2 times"), "{twice}");
        let past = interp.run_mapped(&mut slots, 1, |_| [(0, 2)]).unwrap_err();
        assert!(past.to_string().contains("names logical block 2 of slot 0"), "{past}");
        let no_slot = interp.run_mapped(&mut slots, 1, |_| [(1, 0)]).unwrap_err();
        assert!(no_slot.to_string().contains("names slot 1, but there are 1 slots"), "{no_slot}");
        // Nothing ran, so nothing was written.
        assert_eq!(a, buf(64, 0.0));
    }

    #[test]
    fn failures_name_the_slot_and_leave_every_slot_unwritten() {
        let ok = increment(1);
        // Reads one past the end in its last block.
        let mut b = KernelBuilder::new("overrun", LaunchShape::linear(2, 32));
        let x = b.buffer("x", Type::F32, 63, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let v = b.load(x, i);
        b.store(x, i, v);
        let bad = b.finish();
        let (mut a0, mut a1) = (buf(32, 0.0), buf(63, 0.0));
        let mut slots = [MappedSlot::new(&ok, &mut a0), MappedSlot::new(&bad, &mut a1)];
        let err = Interpreter::new().run_mapped(&mut slots, 3, |p| [(p.min(1) as usize, p.saturating_sub(1) as u64)]);
        let err = err.unwrap_err();
        let InterpError::Slot { slot: 1, kernel, error } = &err else { panic!("{err}") };
        assert_eq!(kernel, "overrun");
        assert!(matches!(**error, InterpError::OutOfBounds { index: 63, block: [1, 0, 0], .. }), "{err}");
        assert_eq!(a0, buf(32, 0.0));

        // Argument errors name the slot too.
        let mut short = buf(5, 0.0);
        let mut slots = [MappedSlot::new(&ok, &mut short)];
        let err = Interpreter::new().run_mapped(&mut slots, 1, |_| [(0, 0)]).unwrap_err();
        assert!(err.to_string().starts_with("slot 0 (kernel `inc`): kernel `inc` parameter `x`"), "{err}");
    }
}
