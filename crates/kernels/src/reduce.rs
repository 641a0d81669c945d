//! The row-sum kernel: a strided per-thread sum, then the op templates'
//! shuffle-based block reduction ([`block_reduce`]).

use weft_kir::{Access, Axis, BinaryOp, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};
use weft_lower::collective::block_reduce;

/// Threads per block of the reduction kernels.
pub const THREADS: u32 = 256;

/// `out[r] = Σ_c x[r, c]` for a row-major `f32` matrix: one block per row,
/// each thread summing a strided slice, then a shuffle-based block reduction.
pub fn row_sum(rows: u32, cols: u32) -> KernelDef {
    let mut b = KernelBuilder::new("row_sum", LaunchShape::linear(rows.max(1), THREADS));
    let x = b.buffer("x", Type::F32, rows as u64 * cols as u64, Access::Read);
    let out = b.buffer("out", Type::F32, rows as u64, Access::Write);
    let scratch = b.shared_array(Type::F32, THREADS / 32);
    let row = b.block_id(Axis::X);
    let c_cols = b.const_i32(cols as i32);
    let base = b.mul(row, c_cols);
    let zero = b.const_f32(0.0);
    let acc = b.var_init(zero);
    let tid = b.thread_id(Axis::X);
    b.for_range(tid, c_cols, THREADS as i64, |b, c| {
        let idx = b.add(base, c);
        let v = b.load(x, idx);
        let cur = b.get(acc);
        let next = b.add(cur, v);
        b.set(acc, next);
    });
    let partial = b.get(acc);
    let total = block_reduce(&mut b, partial, BinaryOp::Add, Scalar::F32(0.0), scratch, THREADS);
    let zero_i = b.const_i32(0);
    let first = b.eq(tid, zero_i);
    b.if_(first, |b| b.store(out, row, total));
    b.finish()
}
