//! `out[i] = x[i] + y[i]`: the smallest useful kernel, with a ragged tail
//! guard so any `n` works with 256-thread blocks.

use weft_kir::{Access, Axis, KernelBuilder, KernelDef, LaunchShape, Type};

/// Threads per block of [`vector_add`].
pub const THREADS: u32 = 256;

/// A vector add of `n` `f32` elements: params `x`, `y` (read), `out` (write).
pub fn vector_add(n: u32) -> KernelDef {
    let blocks = n.div_ceil(THREADS).max(1);
    let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(blocks, THREADS));
    let x = b.buffer("x", Type::F32, n as u64, Access::Read);
    let y = b.buffer("y", Type::F32, n as u64, Access::Read);
    let out = b.buffer("out", Type::F32, n as u64, Access::Write);
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
