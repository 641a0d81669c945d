//! How long a shaped bundle takes: the cost callback planners consult.
//!
//! Shaping ([`crate::shape`](mod@crate::shape)) decides which bundles are
//! legal; a [`CostModel`] says how long each slot of one would take, and how
//! long a kernel takes alone, so a planner can weigh a wider bundle against
//! its members' solo times. The packer ships the block-round model
//! ([`BlockRounds`]), which needs nothing but KIR; the predictor crate
//! implements the trait over its analytical prior and its online-corrected
//! models, in microseconds. Both [`crate::plan`] and the serving scheduler
//! price bundles through this trait, so changing the model changes no rule.
//!
//! The block-round model counts a slot's time in *block rounds*: a slot of
//! `L` logical blocks on `b` physical blocks runs `ceil(L / b)` rounds of
//! [`block_time`](crate::block_time) units, stretched by contention: an SM
//! issues at full speed for up to
//! [`Target::full_speed_warps_per_sm`] active warps and shares its
//! issue slots beyond that, so `rounds × block_time × max(1, active warps
//! per SM / full-speed warps)`. A coalesced launch runs in waves, in block
//! order, so a coalesced slot ends with the wave that holds its last block.

use weft_kir::Target;

use crate::exec::Timing;
use crate::occupancy::Occupancy;
use crate::shape::{PreparedKernel, ShapedBundle};

/// A model of how long kernels and bundles take. Only ratios matter to the
/// planners, so the unit is the model's own (µs for the predictor, block
/// rounds for [`BlockRounds`]); a bundle's price is a [`Timing`], the same
/// type a launch's measurement is, with every slot's time filled in.
pub trait CostModel {
    /// A short name for reports.
    fn name(&self) -> &str;
    /// Predicted time of `kernel` launched alone on its whole grid, at its
    /// own occupancy.
    fn solo_time(&mut self, kernel: &PreparedKernel) -> f64;
    /// Predicted time of `bundle` and of each of its slots (`per_slot_us`
    /// is always `Some`, one per slot).
    fn bundle_cost(&mut self, bundle: &ShapedBundle) -> Timing;
}

/// The block-round model (module docs): KIR work per block, rounds, waves
/// and issue contention, in work units.
#[derive(Clone, Debug)]
pub struct BlockRounds {
    limits: Target,
}

impl BlockRounds {
    pub fn new(limits: Target) -> BlockRounds {
        BlockRounds { limits }
    }

    /// How much slower blocks run because they share their SMs' issue
    /// slots: 1 up to [`Target::full_speed_warps_per_sm`] active warps
    /// per SM, then proportional to the active warps. `physical_blocks`
    /// spread evenly over the SMs, at most `occupancy.blocks_per_sm` at a
    /// time.
    fn contention(&self, physical_blocks: u64, threads: u32, occupancy: &Occupancy) -> f64 {
        let limits = &self.limits;
        let per_sm = physical_blocks.div_ceil(limits.sm_count.max(1) as u64).min(occupancy.blocks_per_sm as u64);
        let warps = per_sm * (threads as u64).div_ceil(limits.warp_size.max(1) as u64);
        (warps as f64 / limits.full_speed_warps_per_sm.max(1) as f64).max(1.0)
    }
}

impl CostModel for BlockRounds {
    fn name(&self) -> &str {
        "block rounds (KIR work per block, model units)"
    }

    fn solo_time(&mut self, kernel: &PreparedKernel) -> f64 {
        let resident = kernel.solo.resident_blocks(&self.limits).max(1);
        let l = kernel.logical_blocks;
        l.div_ceil(resident) as f64 * kernel.block_time * self.contention(l, kernel.threads(), &kernel.solo)
    }

    fn bundle_cost(&mut self, b: &ShapedBundle) -> Timing {
        let shape = &b.shape;
        let resident = shape.occupancy.resident_blocks(&self.limits).max(1);
        let physical = b.bundle.table.total_blocks() as u64;
        let c = self.contention(physical, shape.resources.threads, &shape.occupancy);
        let slots: Vec<f64> = b
            .members
            .iter()
            .zip(&b.bundle.table.entries)
            .map(|(m, e)| {
                let rounds = if shape.coalesced {
                    (e.first_block as u64 + e.num_blocks as u64).div_ceil(resident)
                } else {
                    e.rounds()
                };
                rounds as f64 * m.kernel.block_time * c
            })
            .collect();
        Timing { total_us: slots.iter().copied().fold(0.0, f64::max), per_slot_us: Some(slots) }
    }
}
