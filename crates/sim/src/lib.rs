//! weft's **simulated GPU**: a deterministic discrete-event model of a GPU
//! running bundles, for tests and for the serving simulations. It is a
//! *simulator*: every figure it produces is a simulator figure, never a GPU
//! result, and every message and table that shows one says so.
//!
//! Why it exists: the predictor's online correction and the SLO-aware
//! scheduler must be testable in CI, where there is no GPU. The simulator
//! gives them something to learn that they do not know in advance: its
//! [`HiddenEffects`] (superlinear L2/bandwidth contention, a per-kernel-kind
//! slowdown beside memory-bound co-runners, a block-dispatch latency that
//! punishes extra waves, seeded noise, and a [`Drift`] that changes all of
//! them mid-run) are not part of the analytical prior in `weft-predict`.
//!
//! The model ([`gpu`] has the details):
//!
//! - a bundle's physical blocks all ask for the bundle's block resources
//!   (the most of any slot's threads, registers and shared memory), so the
//!   device holds `Occupancy::of(resources).blocks_per_sm × sm_count` of
//!   them at once; the block scheduler dispatches physical blocks in slot
//!   table order as residency frees up (waves, for coalesced slots);
//! - a physical block of a constrained slot runs its logical blocks one after
//!   another (rounds), so it is one unit of `rounds × per-block` work;
//! - each block's work is its kernel's [`weft_kir::analysis::cost`] divided
//!   by its logical blocks (FLOPs and global bytes per logical block); it
//!   progresses at the slower of its compute rate (its warps' share of its
//!   SM's issue rate) and its bandwidth rate (a max-min fair share of the
//!   device bandwidth, capped per SM), a roofline that is re-evaluated at
//!   every event, so a block speeds up when its co-runners finish;
//! - blocks that start together with equal work form a cohort, so the event
//!   count is waves × slots, not blocks: thousands of bundles per second.
//!
//! Determinism: the same limits, spec, seed and sequence of bundles give
//! bit-identical timings (noise comes from a seeded SplitMix64; nothing
//! iterates a hash map in an order that matters).

pub mod exec;
pub mod gpu;
pub mod spec;

pub use exec::SimMemory;
pub use gpu::{SimError, SimGpu};
pub use spec::{Drift, HiddenEffects, SimSpec};
