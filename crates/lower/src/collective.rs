//! Collectives: reductions across a warp and across a block, the building
//! blocks of the block-per-row op templates (Softmax, LayerNormalization,
//! large reductions) and of the reference kernels that reduce.
//!
//! [`block_reduce`]: a butterfly of `xor` shuffles reduces each warp (every
//! lane ends with its warp's total), lane 0 of each warp publishes to shared
//! memory, and after one barrier every warp reduces the per-warp partials the
//! same way, so *every* thread holds the block's result without a second
//! barrier. All shuffles and the barrier sit under block-uniform control, as
//! KIR requires.

use weft_kir::{Axis, BinaryOp, KernelBuilder, Scalar, Shared, Value};

/// Reduces `value` over the whole block with `op` (`Add`, `Max` or `Min`),
/// whose identity is `identity`. `scratch` must be a shared array of at least
/// `threads / 32` elements of the value's type; the caller must place a
/// barrier before `scratch` is written again. `threads` must be a multiple of 32, at most 1024.
pub fn block_reduce(
    b: &mut KernelBuilder,
    value: Value,
    op: BinaryOp,
    identity: Scalar,
    scratch: Shared,
    threads: u32,
) -> Value {
    let warps = threads / 32;
    let warp_total = warp_reduce(b, value, op);
    if warps == 1 {
        // One warp: the butterfly already gave every lane the total.
        return warp_total;
    }
    let lane = b.lane_id();
    let tid = b.thread_id(Axis::X);
    let c32 = b.const_i32(32);
    let warp = b.div(tid, c32);
    let zero = b.const_i32(0);
    let is_lane0 = b.eq(lane, zero);
    b.if_(is_lane0, |b| b.shared_store(scratch, warp, warp_total));
    b.barrier();
    // Every warp reads the partials (lanes past the last warp read a valid
    // slot and then substitute the identity).
    let last = b.const_i32(warps as i32 - 1);
    let slot = b.min(lane, last);
    let partial = b.shared_load(scratch, slot);
    let nwarps = b.const_i32(warps as i32);
    let live = b.lt(lane, nwarps);
    let ident = b.constant(identity);
    let v = b.select(live, partial, ident);
    warp_reduce(b, v, op)
}

/// Butterfly reduction across the 32 lanes of each warp; every lane gets the total.
pub fn warp_reduce(b: &mut KernelBuilder, value: Value, op: BinaryOp) -> Value {
    let mut v = value;
    for mask in [16, 8, 4, 2, 1] {
        let other = b.shuffle_xor(v, mask);
        v = b.binary(op, v, other);
    }
    v
}
