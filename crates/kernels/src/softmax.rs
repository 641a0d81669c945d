//! Row softmax: `out[r, c] = exp(x[r, c] − max_r) / Σ_c exp(x[r, c] − max_r)`.
//!
//! One block per row. Two block reductions (max, then sum of exponentials)
//! use separate shared scratch arrays so no extra barrier is needed between
//! them; each thread then normalises its strided slice of the row.

use weft_kir::{Access, Axis, BinaryOp, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};

use weft_lower::collective::block_reduce;

use crate::reduce::THREADS;

/// A numerically stable softmax over each row of a row-major `f32` matrix:
/// params `x` (read), `out` (write).
pub fn row_softmax(rows: u32, cols: u32) -> KernelDef {
    let mut b = KernelBuilder::new("row_softmax", LaunchShape::linear(rows.max(1), THREADS));
    let len = rows as u64 * cols as u64;
    let x = b.buffer("x", Type::F32, len, Access::Read);
    let out = b.buffer("out", Type::F32, len, Access::Write);
    let max_scratch = b.shared_array(Type::F32, THREADS / 32);
    let sum_scratch = b.shared_array(Type::F32, THREADS / 32);
    let row = b.block_id(Axis::X);
    let c_cols = b.const_i32(cols as i32);
    let base = b.mul(row, c_cols);
    let tid = b.thread_id(Axis::X);
    let stride = THREADS as i64;

    let neg_inf = b.const_f32(f32::NEG_INFINITY);
    let local_max = b.var_init(neg_inf);
    b.for_range(tid, c_cols, stride, |b, c| {
        let idx = b.add(base, c);
        let v = b.load(x, idx);
        let cur = b.get(local_max);
        let next = b.max(cur, v);
        b.set(local_max, next);
    });
    let lm = b.get(local_max);
    let row_max = block_reduce(&mut b, lm, BinaryOp::Max, Scalar::F32(f32::NEG_INFINITY), max_scratch, THREADS);

    let zero = b.const_f32(0.0);
    let local_sum = b.var_init(zero);
    b.for_range(tid, c_cols, stride, |b, c| {
        let idx = b.add(base, c);
        let v = b.load(x, idx);
        let shifted = b.sub(v, row_max);
        let e = b.exp(shifted);
        let cur = b.get(local_sum);
        let next = b.add(cur, e);
        b.set(local_sum, next);
    });
    let ls = b.get(local_sum);
    let row_sum = block_reduce(&mut b, ls, BinaryOp::Add, Scalar::F32(0.0), sum_scratch, THREADS);
    let one = b.const_f32(1.0);
    let inv = b.div(one, row_sum);

    b.for_range(tid, c_cols, stride, |b, c| {
        let idx = b.add(base, c);
        let v = b.load(x, idx);
        let shifted = b.sub(v, row_max);
        let e = b.exp(shifted);
        let y = b.mul(e, inv);
        b.store(out, idx, y);
    });
    b.finish()
}
