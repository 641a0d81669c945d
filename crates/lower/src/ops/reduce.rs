//! Lowering of reductions: Softmax, LogSoftmax, LayerNormalization,
//! ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ArgMax and
//! ArgMin; the running reductions CumSum and CumProd; and TopK.
//!
//! Two shapes of kernel cover them:
//!
//! - **block per row** when the reduced elements of one output are contiguous
//!   and there are many of them (Softmax over the innermost axis, every
//!   LayerNormalization, large reductions): each block loops over its rows
//!   ([`block_stride_loop`]), its threads stride over the row, and a shuffle
//!   block reduction ([`block_reduce`]) combines the partials so every thread
//!   holds the row's result. The row loop's bounds are block-uniform, so the
//!   barriers inside it are legal; a barrier ends every row so the next row's
//!   partials never overwrite shared scratch another warp is still reading.
//! - **thread per output** otherwise (Softmax over an outer axis, small
//!   reductions): one thread walks the reduced elements of its output
//!   serially, in a grid-stride loop over outputs.
//!
//! Half-precision inputs are widened to `f32` for accumulation and rounded
//! once at the store. Reduced elements are addressed as
//! `ravel(kept coords) + ravel(reduced coords)` with one term per axis, which
//! the range analysis proves in bounds without guards.

use weft_graph::{Node, Op, TensorId};
use weft_kir::{Access, Axis, BinaryOp, KernelBuilder, LaunchShape, Scalar, Type, Value};

use crate::collective::block_reduce;
use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, Epilogue};
use crate::error::LowerError;
use crate::index::{
    block_stride_loop, broadcast_index, check_numel, const_index, grid_stride_loop, linear_launch, ravel, strides,
    unravel, MAX_BLOCKS,
};
use crate::program::{BufferId, CountCheck};

/// Most blocks a block-per-row kernel launches; more rows loop.
const MAX_ROW_BLOCKS: usize = 65535;

/// Reduced sizes from which one block (rather than one thread) reduces each output.
const BLOCK_REDUCE_MIN: usize = 256;

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    let x = match node.inputs.first() {
        Some(Some(x)) => *x,
        _ => return Err(internal(node, "missing input 0")),
    };
    let dims = ctx.graph.info(x).shape.dims().to_vec();
    check_numel(&node.name, node.op.name(), dims.iter().product())?;
    match &node.op {
        Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            let a = norm_axis(node, *axis, dims.len())?;
            softmax(ctx, node, epi, x, &dims, a, matches!(node.op, Op::LogSoftmax { .. }))
        }
        Op::ArgMax { axis, select_last_index, .. } | Op::ArgMin { axis, select_last_index, .. } => {
            let a = norm_axis(node, *axis, dims.len())?;
            arg_extreme(ctx, node, epi, x, &dims, a, matches!(node.op, Op::ArgMax { .. }), *select_last_index)
        }
        Op::LayerNormalization { axis, epsilon } => {
            let a = norm_axis(node, *axis, dims.len())?;
            layer_norm(ctx, node, epi, x, &dims, a, *epsilon)
        }
        Op::ReduceMean { axes, .. } => reduce(ctx, node, epi, x, &dims, axes, Reduction::Mean),
        Op::ReduceSum { axes, .. } => reduce(ctx, node, epi, x, &dims, axes, Reduction::Sum),
        Op::ReduceMax { axes, .. } => reduce(ctx, node, epi, x, &dims, axes, Reduction::Max),
        Op::ReduceMin { axes, .. } => reduce(ctx, node, epi, x, &dims, axes, Reduction::Min),
        Op::ReduceProd { axes, .. } => reduce(ctx, node, epi, x, &dims, axes, Reduction::Prod),
        Op::TopK { axis, k, largest } => {
            let a = norm_axis(node, *axis, dims.len())?;
            top_k(ctx, node, epi, x, &dims, a, *k, *largest)
        }
        Op::CumSum { axis, exclusive, reverse } | Op::CumProd { axis, exclusive, reverse } => {
            let a = norm_axis(node, *axis, dims.len())?;
            let op = if matches!(node.op, Op::CumSum { .. }) { BinaryOp::Add } else { BinaryOp::Mul };
            cumulative(ctx, node, epi, x, &dims, a, op, *exclusive, *reverse)
        }
        Op::NonZero { count } => non_zero(ctx, node, epi, x, &dims, *count),
        _ => Err(super::not_yet(node)),
    }
}

/// Refuses `f64` for kernels that compute in `f32` (rounding `f64` data to
/// `f32` would silently lose precision).
fn no_f64(node: &Node, elem: Type) -> Result<(), LowerError> {
    if elem == Type::F64 {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            reason: "f64 input: this kernel computes in f32; cast the input to f32 first".into(),
        });
    }
    Ok(())
}

fn internal(node: &Node, message: &str) -> LowerError {
    LowerError::Internal { node: node.name.clone(), message: message.to_string() }
}

fn norm_axis(node: &Node, axis: i64, rank: usize) -> Result<usize, LowerError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(internal(node, &format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// The type partials are accumulated in: `f64` for `f64`, `f32` for the
/// other float types (half types would lose the sum), the element type for
/// 32- and 64-bit integers (a wrapping sum has the same bits at any width)
/// and 64 bits for the narrow integers and `u32`, so a mean divides the
/// exact sum.
fn acc_type(elem: Type) -> Type {
    match elem {
        Type::F64 => Type::F64,
        t if t.is_float() => Type::F32,
        Type::I8 | Type::I16 => Type::I64,
        Type::U8 | Type::U16 | Type::U32 => Type::U64,
        t => t,
    }
}

/// Threads of a block-per-row kernel for rows of `len` elements: a multiple
/// of 32 (full warps for the shuffles), at most 256.
fn row_threads(len: usize) -> u32 {
    (len.div_ceil(32) * 32).clamp(32, 256) as u32
}

/// The identity of `op` in type `ty`.
fn identity(op: BinaryOp, ty: Type) -> Scalar {
    match (op, ty) {
        (BinaryOp::Max, Type::F32) => Scalar::F32(f32::NEG_INFINITY),
        (BinaryOp::Max, Type::I32) => Scalar::I32(i32::MIN),
        (BinaryOp::Max, Type::I64) => Scalar::I64(i64::MIN),
        (BinaryOp::Max, Type::U32) => Scalar::U32(0),
        (BinaryOp::Min, Type::F32) => Scalar::F32(f32::INFINITY),
        (BinaryOp::Min, Type::I32) => Scalar::I32(i32::MAX),
        (BinaryOp::Min, Type::I64) => Scalar::I64(i64::MAX),
        (BinaryOp::Min, Type::U32) => Scalar::U32(u32::MAX),
        (BinaryOp::Max, Type::F64) => Scalar::F64(f64::NEG_INFINITY),
        (BinaryOp::Min, Type::F64) => Scalar::F64(f64::INFINITY),
        (BinaryOp::Max | BinaryOp::Min, t) if t.is_int() => {
            let (lo, hi) = t.int_range().unwrap_or((0, 0));
            Scalar::from_int(t, if op == BinaryOp::Max { lo } else { hi }).unwrap_or(Scalar::from_f64(t, 0.0))
        }
        (BinaryOp::Mul, _) => Scalar::from_f64(ty, 1.0),
        _ => Scalar::from_f64(ty, 0.0),
    }
}

/// Pushes the step and marks `epi.output` (and the node's outputs) computed.
fn finish(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    b: KernelBuilder,
    mut args: Vec<BufferId>,
    epi_buffers: Vec<BufferId>,
) -> Result<(), LowerError> {
    args.extend(epi_buffers);
    let mut nodes = vec![node.name.clone()];
    nodes.extend(epi.nodes.iter().cloned());
    ctx.push_step(b.finish(), args, nodes)?;
    ctx.mark_available(epi.output);
    Ok(())
}

/// Applies the epilogue to `v` for output element `idx`, converts to the
/// output type and stores; an epilogue error is kept for the caller.
#[allow(clippy::too_many_arguments)]
fn store_out(
    ctx: &LowerCtx,
    b: &mut KernelBuilder,
    epi: &Epilogue,
    epi_params: &crate::epilogue::EpilogueParams,
    out: weft_kir::Param,
    out_ty: Type,
    idx: Value,
    v: Value,
    err: &mut Option<LowerError>,
) {
    match epi.apply(ctx, b, epi_params, v, idx) {
        Ok(v) => {
            let v = convert(b, v, out_ty);
            b.store(out, idx, v);
        }
        Err(e) => *err = Some(e),
    }
}

/// The output of (Log)Softmax for input `v`, given the row's maximum and
/// the sum of `exp(x − max)`: `exp(v − max) / sum`, or `v − max − ln(sum)`.
fn softmax_value(b: &mut KernelBuilder, v: Value, rmax: Value, rsum: Value, log: bool) -> Value {
    let d = b.sub(v, rmax);
    if log {
        let l = b.log(rsum);
        b.sub(d, l)
    } else {
        let e = b.exp(d);
        b.div(e, rsum)
    }
}

/// `dims` as `(outer, len, inner)` around axis `a`: the elements before
/// it, its length, and the elements after it.
fn around_axis(dims: &[usize], a: usize) -> (usize, usize, usize) {
    (dims[..a].iter().product(), dims[a], dims[a + 1..].iter().product())
}

#[allow(clippy::too_many_arguments)]
fn softmax(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    a: usize,
    log: bool,
) -> Result<(), LowerError> {
    let (outer, len, inner) = around_axis(dims, a);
    let n = outer * len * inner;
    let elem = kir_type(ctx.graph.info(x).dtype);
    no_f64(node, elem)?;
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    if n == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let name = ctx.kernel_name(if log { "log_softmax" } else { "softmax" });
    let mut err = None;
    if inner == 1 {
        // Block per row over contiguous rows.
        let threads = row_threads(len);
        let launch = LaunchShape::linear(outer.min(MAX_ROW_BLOCKS) as u32, threads);
        let mut b = KernelBuilder::new(name, launch);
        let xp = b.buffer("x", elem, n as u64, Access::Read);
        let out = b.buffer("out", out_ty, n as u64, Access::Write);
        let epi_params = epi.declare(ctx, &mut b)?;
        let max_s = b.shared_array(Type::F32, threads / 32);
        let sum_s = b.shared_array(Type::F32, threads / 32);
        block_stride_loop(&mut b, outer, |b, row| {
            let c_len = const_index(b, len);
            let base = b.mul(row, c_len);
            let tid = b.thread_id(Axis::X);
            let ninf = b.const_f32(f32::NEG_INFINITY);
            let lmax = b.var_init(ninf);
            b.for_range(tid, c_len, threads as i64, |b, c| {
                let idx = b.add(base, c);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let cur = b.get(lmax);
                let m = b.max(cur, v);
                b.set(lmax, m);
            });
            let lm = b.get(lmax);
            let rmax = block_reduce(b, lm, BinaryOp::Max, Scalar::F32(f32::NEG_INFINITY), max_s, threads);
            let zero = b.const_f32(0.0);
            let lsum = b.var_init(zero);
            b.for_range(tid, c_len, threads as i64, |b, c| {
                let idx = b.add(base, c);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let d = b.sub(v, rmax);
                let e = b.exp(d);
                let cur = b.get(lsum);
                let s = b.add(cur, e);
                b.set(lsum, s);
            });
            let ls = b.get(lsum);
            let rsum = block_reduce(b, ls, BinaryOp::Add, Scalar::F32(0.0), sum_s, threads);
            b.for_range(tid, c_len, threads as i64, |b, c| {
                let idx = b.add(base, c);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let y = softmax_value(b, v, rmax, rsum, log);
                store_out(ctx, b, epi, &epi_params, out, out_ty, idx, y, &mut err);
            });
            // The next row's block reductions rewrite the scratch arrays.
            b.barrier();
        });
        let args = vec![ctx.buffer_of(x), ctx.buffer_of(epi.output)];
        if let Some(e) = err {
            return Err(e);
        }
        finish(ctx, node, epi, b, args, epi_params.buffers)
    } else {
        // Thread per (outer, inner) pair, walking the axis with stride `inner`.
        let pairs = outer * inner;
        let mut b = KernelBuilder::new(name, linear_launch(pairs, MAX_BLOCKS));
        let xp = b.buffer("x", elem, n as u64, Access::Read);
        let out = b.buffer("out", out_ty, n as u64, Access::Write);
        let epi_params = epi.declare(ctx, &mut b)?;
        grid_stride_loop(&mut b, pairs, |b, p| {
            let c_inner = const_index(b, inner);
            let o = b.div(p, c_inner);
            let r = b.rem(p, c_inner);
            let c_row = const_index(b, len * inner);
            let ob = b.mul(o, c_row);
            let base = b.add(ob, r);
            let zero_i = const_index(b, 0);
            let c_len = const_index(b, len);
            let at = |b: &mut KernelBuilder, k: Value| {
                let ci = const_index(b, inner);
                let off = b.mul(k, ci);
                b.add(base, off)
            };
            let ninf = b.const_f32(f32::NEG_INFINITY);
            let lmax = b.var_init(ninf);
            b.for_range(zero_i, c_len, 1, |b, k| {
                let idx = at(b, k);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let cur = b.get(lmax);
                let m = b.max(cur, v);
                b.set(lmax, m);
            });
            let rmax = b.get(lmax);
            let zero = b.const_f32(0.0);
            let lsum = b.var_init(zero);
            b.for_range(zero_i, c_len, 1, |b, k| {
                let idx = at(b, k);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let d = b.sub(v, rmax);
                let e = b.exp(d);
                let cur = b.get(lsum);
                let s = b.add(cur, e);
                b.set(lsum, s);
            });
            let rsum = b.get(lsum);
            b.for_range(zero_i, c_len, 1, |b, k| {
                let idx = at(b, k);
                let v = b.load(xp, idx);
                let v = convert(b, v, Type::F32);
                let y = softmax_value(b, v, rmax, rsum, log);
                store_out(ctx, b, epi, &epi_params, out, out_ty, idx, y, &mut err);
            });
        });
        let args = vec![ctx.buffer_of(x), ctx.buffer_of(epi.output)];
        if let Some(e) = err {
            return Err(e);
        }
        finish(ctx, node, epi, b, args, epi_params.buffers)
    }
}

fn layer_norm(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    a: usize,
    epsilon: f32,
) -> Result<(), LowerError> {
    let rows: usize = dims[..a].iter().product();
    let norm_dims = dims[a..].to_vec();
    let cols: usize = norm_dims.iter().product();
    let n = rows * cols;
    let elem = kir_type(ctx.graph.info(x).dtype);
    no_f64(node, elem)?;
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    if n == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let scale = match node.inputs.get(1) {
        Some(Some(s)) => *s,
        _ => return Err(internal(node, "missing input 1 (Scale)")),
    };
    let bias = node.inputs.get(2).copied().flatten();
    let sdims = ctx.graph.info(scale).shape.dims().to_vec();
    let bdims = bias.map(|t| ctx.graph.info(t).shape.dims().to_vec());
    for d in std::iter::once(&sdims).chain(bdims.as_ref()) {
        if crate::index::broadcast_strides(d, &norm_dims).is_none() {
            return Err(internal(node, &format!("scale/bias of shape {d:?} does not broadcast to {norm_dims:?}")));
        }
    }
    let threads = row_threads(cols);
    let name = ctx.kernel_name("layer_norm");
    let mut b = KernelBuilder::new(name, LaunchShape::linear(rows.min(MAX_ROW_BLOCKS) as u32, threads));
    let xp = b.buffer("x", elem, n as u64, Access::Read);
    let sp =
        b.buffer("scale", kir_type(ctx.graph.info(scale).dtype), sdims.iter().product::<usize>() as u64, Access::Read);
    let bp = match (bias, &bdims) {
        (Some(t), Some(d)) => {
            Some(b.buffer("bias", kir_type(ctx.graph.info(t).dtype), d.iter().product::<usize>() as u64, Access::Read))
        }
        _ => None,
    };
    let out = b.buffer("out", out_ty, n as u64, Access::Write);
    let epi_params = epi.declare(ctx, &mut b)?;
    let mean_s = b.shared_array(Type::F32, threads / 32);
    let var_s = b.shared_array(Type::F32, threads / 32);
    let mut err = None;
    block_stride_loop(&mut b, rows, |b, row| {
        let c_cols = const_index(b, cols);
        let base = b.mul(row, c_cols);
        let tid = b.thread_id(Axis::X);
        let inv_n = b.const_f32(1.0 / cols as f32);
        let load_x = |b: &mut KernelBuilder, c: Value| {
            let idx = b.add(base, c);
            let v = b.load(xp, idx);
            (idx, convert(b, v, Type::F32))
        };
        // Pass 1: mean.
        let zero = b.const_f32(0.0);
        let acc = b.var_init(zero);
        b.for_range(tid, c_cols, threads as i64, |b, c| {
            let (_, v) = load_x(b, c);
            let cur = b.get(acc);
            let s = b.add(cur, v);
            b.set(acc, s);
        });
        let part = b.get(acc);
        let total = block_reduce(b, part, BinaryOp::Add, Scalar::F32(0.0), mean_s, threads);
        let mean = b.mul(total, inv_n);
        // Pass 2: variance around the mean (two-pass: no cancellation).
        let zero = b.const_f32(0.0);
        let acc2 = b.var_init(zero);
        b.for_range(tid, c_cols, threads as i64, |b, c| {
            let (_, v) = load_x(b, c);
            let d = b.sub(v, mean);
            let cur = b.get(acc2);
            let s = b.fma(d, d, cur);
            b.set(acc2, s);
        });
        let part2 = b.get(acc2);
        let total2 = block_reduce(b, part2, BinaryOp::Add, Scalar::F32(0.0), var_s, threads);
        let var = b.mul(total2, inv_n);
        let eps = b.const_f32(epsilon);
        let ve = b.add(var, eps);
        let sd = b.sqrt(ve);
        let one = b.const_f32(1.0);
        let inv_sd = b.div(one, sd);
        // Pass 3: normalise, scale, shift.
        b.for_range(tid, c_cols, threads as i64, |b, c| {
            let (idx, v) = load_x(b, c);
            let d = b.sub(v, mean);
            let y = b.mul(d, inv_sd);
            let si = broadcast_index(b, c, &norm_dims, &sdims).unwrap_or(c);
            let s = b.load(sp, si);
            let s = convert(b, s, Type::F32);
            let y = match (bp, &bdims) {
                (Some(bp), Some(bd)) => {
                    let bi = broadcast_index(b, c, &norm_dims, bd).unwrap_or(c);
                    let bv = b.load(bp, bi);
                    let bv = convert(b, bv, Type::F32);
                    b.fma(y, s, bv)
                }
                _ => b.mul(y, s),
            };
            store_out(ctx, b, epi, &epi_params, out, out_ty, idx, y, &mut err);
        });
        b.barrier();
    });
    if let Some(e) = err {
        return Err(e);
    }
    let mut args = vec![ctx.buffer_of(x), ctx.buffer_of(scale)];
    if let Some(t) = bias {
        args.push(ctx.buffer_of(t));
    }
    args.push(ctx.buffer_of(epi.output));
    finish(ctx, node, epi, b, args, epi_params.buffers)
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

#[allow(clippy::too_many_arguments)]
fn reduce(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    axes: &[i64],
    kind: Reduction,
) -> Result<(), LowerError> {
    let rank = dims.len();
    let mut reduced = vec![false; rank];
    if axes.is_empty() {
        reduced.iter_mut().for_each(|r| *r = true);
    }
    for &ax in axes {
        reduced[norm_axis(node, ax, rank)?] = true;
    }
    let st = strides(dims);
    let (mut kept_dims, mut kept_strides, mut red_dims, mut red_strides) = (vec![], vec![], vec![], vec![]);
    for k in 0..rank {
        if reduced[k] {
            red_dims.push(dims[k]);
            red_strides.push(st[k]);
        } else {
            kept_dims.push(dims[k]);
            kept_strides.push(st[k]);
        }
    }
    let n_in: usize = dims.iter().product();
    let n_out: usize = kept_dims.iter().product();
    let n_red: usize = red_dims.iter().product();
    let elem = kir_type(ctx.graph.info(x).dtype);
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    if n_out == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let acc_ty = acc_type(elem);
    let op = match kind {
        Reduction::Max => BinaryOp::Max,
        Reduction::Min => BinaryOp::Min,
        Reduction::Prod => BinaryOp::Mul,
        Reduction::Sum | Reduction::Mean => BinaryOp::Add,
    };
    let ident = identity(op, acc_ty);
    // When the reduced axes form one contiguous row-major block (e.g. the
    // innermost axes), the reduced offset is the reduced index itself.
    let red_contiguous = red_strides == strides(&red_dims);
    let offset_of = move |b: &mut KernelBuilder, r: Value| {
        if red_contiguous {
            r
        } else {
            let coords = unravel(b, r, &red_dims);
            ravel(b, &coords, &red_strides)
        }
    };
    let finalize = move |b: &mut KernelBuilder, total: Value| {
        if kind == Reduction::Mean {
            let cnt = if acc_ty.is_float() {
                b.const_float(acc_ty, n_red as f64)
            } else {
                b.constant(Scalar::from_f64(acc_ty, n_red.max(1) as f64))
            };
            b.div(total, cnt)
        } else {
            total
        }
    };
    let base_name = match kind {
        Reduction::Sum => "reduce_sum",
        Reduction::Mean => "reduce_mean",
        Reduction::Max => "reduce_max",
        Reduction::Min => "reduce_min",
        Reduction::Prod => "reduce_prod",
    };
    let name = ctx.kernel_name(base_name);
    let mut err = None;
    if n_red == 0 {
        // Nothing to reduce: every output is the reduction's identity (the
        // empty sum 0, product 1, max −∞, min +∞; the empty mean 0/0).
        let mut b = KernelBuilder::new(name, linear_launch(n_out, MAX_BLOCKS));
        let out = b.buffer("out", out_ty, n_out as u64, Access::Write);
        let epi_params = epi.declare(ctx, &mut b)?;
        grid_stride_loop(&mut b, n_out, |b, o| {
            let init = b.constant(ident);
            let y = finalize(b, init);
            store_out(ctx, b, epi, &epi_params, out, out_ty, o, y, &mut err);
        });
        if let Some(e) = err {
            return Err(e);
        }
        let args = vec![ctx.buffer_of(epi.output)];
        return finish(ctx, node, epi, b, args, epi_params.buffers);
    }
    let block_mode = n_red >= BLOCK_REDUCE_MIN;
    let launch = if block_mode {
        LaunchShape::linear(n_out.min(MAX_ROW_BLOCKS) as u32, row_threads(n_red))
    } else {
        linear_launch(n_out, MAX_BLOCKS)
    };
    let threads = launch.block[0];
    let mut b = KernelBuilder::new(name, launch);
    let xp = b.buffer("x", elem, n_in.max(1) as u64, Access::Read);
    let out = b.buffer("out", out_ty, n_out as u64, Access::Write);
    let epi_params = epi.declare(ctx, &mut b)?;
    let body = |b: &mut KernelBuilder, o: Value, start: Value, step: i64| {
        let kc = unravel(b, o, &kept_dims);
        let base = ravel(b, &kc, &kept_strides);
        let init = b.constant(ident);
        let acc = b.var_init(init);
        let end = const_index(b, n_red);
        b.for_range(start, end, step, |b, r| {
            let off = offset_of(b, r);
            let idx = b.add(base, off);
            let v = b.load(xp, idx);
            let v = convert(b, v, acc_ty);
            let cur = b.get(acc);
            let nv = match op {
                BinaryOp::Max => crate::epilogue::nan_max(b, cur, v),
                BinaryOp::Min => crate::epilogue::nan_min(b, cur, v),
                _ => b.binary(op, cur, v),
            };
            b.set(acc, nv);
        });
        b.get(acc)
    };
    if block_mode {
        let scratch = b.shared_array(acc_ty, threads / 32);
        // The cross-thread combine is KIR's `max`/`min` (C's fmaxf/fminf),
        // which drops a NaN partial; a second reduction of "this partial is
        // NaN" flags puts it back, so ReduceMax and ReduceMin propagate NaN
        // as ONNX's do.
        let nan_scratch = (matches!(op, BinaryOp::Max | BinaryOp::Min) && acc_ty.is_float())
            .then(|| b.shared_array(Type::F32, threads / 32));
        block_stride_loop(&mut b, n_out, |b, o| {
            let tid = b.thread_id(Axis::X);
            let part = body(b, o, tid, threads as i64);
            let mut total = block_reduce(b, part, op, ident, scratch, threads);
            if let Some(flags) = nan_scratch {
                let is_nan = b.ne(part, part);
                let (one, none) = (b.const_f32(1.0), b.const_f32(0.0));
                let flag = b.select(is_nan, one, none);
                let any = block_reduce(b, flag, BinaryOp::Max, Scalar::F32(0.0), flags, threads);
                let seen = b.gt(any, none);
                let nan = b.const_float(acc_ty, f64::NAN);
                total = b.select(seen, nan, total);
            }
            let y = finalize(b, total);
            let zero = const_index(b, 0);
            let first = b.eq(tid, zero);
            b.if_(first, |b| store_out(ctx, b, epi, &epi_params, out, out_ty, o, y, &mut err));
            b.barrier();
        });
    } else {
        grid_stride_loop(&mut b, n_out, |b, o| {
            let zero = const_index(b, 0);
            let total = body(b, o, zero, 1);
            let y = finalize(b, total);
            store_out(ctx, b, epi, &epi_params, out, out_ty, o, y, &mut err);
        });
    }
    if let Some(e) = err {
        return Err(e);
    }
    let args = vec![ctx.buffer_of(x), ctx.buffer_of(epi.output)];
    finish(ctx, node, epi, b, args, epi_params.buffers)
}

/// ArgMax (`max`) and ArgMin: one thread per output walks the axis keeping
/// the best value and its index. NaN beats every number and ties with NaN
/// (numpy's rule); a tie moves the index only with `select_last_index`.
#[allow(clippy::too_many_arguments)]
fn arg_extreme(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    a: usize,
    max: bool,
    last: bool,
) -> Result<(), LowerError> {
    let (outer, len, inner) = around_axis(dims, a);
    let n = outer * len * inner;
    let pairs = outer * inner;
    let elem = kir_type(ctx.graph.info(x).dtype);
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    if pairs == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    if len == 0 {
        return Err(internal(node, "the reduced axis is empty"));
    }
    let cmp_ty = acc_type(elem);
    let name = ctx.kernel_name(if max { "argmax" } else { "argmin" });
    let mut b = KernelBuilder::new(name, linear_launch(pairs, MAX_BLOCKS));
    let xp = b.buffer("x", elem, n as u64, Access::Read);
    let out = b.buffer("out", out_ty, pairs as u64, Access::Write);
    let epi_params = epi.declare(ctx, &mut b)?;
    let mut err = None;
    grid_stride_loop(&mut b, pairs, |b, p| {
        let c_inner = const_index(b, inner);
        let o = b.div(p, c_inner);
        let r = b.rem(p, c_inner);
        let c_row = const_index(b, len * inner);
        let ob = b.mul(o, c_row);
        let base = b.add(ob, r);
        let first = b.load(xp, base);
        let first = convert(b, first, cmp_ty);
        let best = b.var_init(first);
        let zero = const_index(b, 0);
        let best_i = b.var_init(zero);
        let one = const_index(b, 1);
        let c_len = const_index(b, len);
        b.for_range(one, c_len, 1, |b, k| {
            let ci = const_index(b, inner);
            let off = b.mul(k, ci);
            let idx = b.add(base, off);
            let v = b.load(xp, idx);
            let v = convert(b, v, cmp_ty);
            let cur = b.get(best);
            // NaN is the only value unequal to itself (never for integers).
            let better = crate::epilogue::nan_beyond(b, v, cur, max);
            let take = if last {
                let v_nan = b.ne(v, v);
                let cur_nan = b.ne(cur, cur);
                let same = b.eq(v, cur);
                let both_nan = b.and(v_nan, cur_nan);
                let tie = b.or(same, both_nan);
                b.or(better, tie)
            } else {
                better
            };
            let nv = b.select(take, v, cur);
            b.set(best, nv);
            let ci = b.get(best_i);
            let ni = b.select(take, k, ci);
            b.set(best_i, ni);
        });
        let bi = b.get(best_i);
        let bi = convert(b, bi, Type::I64);
        store_out(ctx, b, epi, &epi_params, out, out_ty, p, bi, &mut err);
    });
    if let Some(e) = err {
        return Err(e);
    }
    let args = vec![ctx.buffer_of(x), ctx.buffer_of(epi.output)];
    finish(ctx, node, epi, b, args, epi_params.buffers)
}

/// CumSum and CumProd: a thread per output element walks the whole axis,
/// folding in (`op`) the elements its position selects — those before it
/// (after it when `reverse`), and itself unless `exclusive` — and skipping
/// the rest with a select, so the loop's bounds are static and every load is
/// in bounds. Halves accumulate in `f32`, as the reductions do.
#[allow(clippy::too_many_arguments)]
fn cumulative(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    a: usize,
    op: BinaryOp,
    exclusive: bool,
    reverse: bool,
) -> Result<(), LowerError> {
    let (outer, len, inner) = around_axis(dims, a);
    let n = outer * len * inner;
    let elem = kir_type(ctx.graph.info(x).dtype);
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    if n == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let acc_ty = acc_type(elem);
    let name = ctx.kernel_name(if op == BinaryOp::Add { "cumsum" } else { "cumprod" });
    let mut b = KernelBuilder::new(name, linear_launch(n, MAX_BLOCKS));
    let xp = b.buffer("x", elem, n as u64, Access::Read);
    let out = b.buffer("out", out_ty, n as u64, Access::Write);
    let epi_params = epi.declare(ctx, &mut b)?;
    let mut err = None;
    grid_stride_loop(&mut b, n, |b, p| {
        let c_inner = const_index(b, inner);
        let r = b.rem(p, c_inner);
        let q = b.div(p, c_inner);
        let c_len = const_index(b, len);
        let k = b.rem(q, c_len);
        let o = b.div(q, c_len);
        let c_row = const_index(b, len * inner);
        let ob = b.mul(o, c_row);
        let base = b.add(ob, r);
        let init = b.constant(identity(op, acc_ty));
        let acc = b.var_init(init);
        let zero = const_index(b, 0);
        b.for_range(zero, c_len, 1, |b, j| {
            let ci = const_index(b, inner);
            let off = b.mul(j, ci);
            let idx = b.add(base, off);
            let v = b.load(xp, idx);
            let v = convert(b, v, acc_ty);
            let take = match (reverse, exclusive) {
                (false, false) => b.le(j, k),
                (false, true) => b.lt(j, k),
                (true, false) => b.ge(j, k),
                (true, true) => b.gt(j, k),
            };
            let cur = b.get(acc);
            let next = b.binary(op, cur, v);
            let nv = b.select(take, next, cur);
            b.set(acc, nv);
        });
        let v = b.get(acc);
        store_out(ctx, b, epi, &epi_params, out, out_ty, p, v, &mut err);
    });
    if let Some(e) = err {
        return Err(e);
    }
    let args = vec![ctx.buffer_of(x), ctx.buffer_of(epi.output)];
    finish(ctx, node, epi, b, args, epi_params.buffers)
}

/// `(a, ia)` comes before `(b, ib)` in TopK's order: larger first (smaller
/// with `!largest`), NaN the largest value, equal values by lower index.
fn top_k_before(b: &mut KernelBuilder, largest: bool, (a, ia): (Value, Value), (c, ic): (Value, Value)) -> Value {
    let a_nan = b.ne(a, a);
    let c_nan = b.ne(c, c);
    let (strict, nan_first) = if largest {
        let c_num = b.not(c_nan);
        (b.gt(a, c), b.and(a_nan, c_num))
    } else {
        let a_num = b.not(a_nan);
        (b.lt(a, c), b.and(a_num, c_nan))
    };
    let ahead = b.or(strict, nan_first);
    let same = b.eq(a, c);
    let both_nan = b.and(a_nan, c_nan);
    let tie = b.or(same, both_nan);
    let lower = b.lt(ia, ic);
    let tie_first = b.and(tie, lower);
    b.or(ahead, tie_first)
}

/// TopK: a thread per row (`outer × inner`) picks its `k` outputs in
/// order, each a walk over the row for the first element after the
/// previous pick in the order of [`top_k_before`] (a strict total order, so
/// every element is picked once): `k` passes over the row.
#[allow(clippy::too_many_arguments)]
fn top_k(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    a: usize,
    k: usize,
    largest: bool,
) -> Result<(), LowerError> {
    if !epi.is_empty() || node.outputs.len() != 2 {
        return Err(internal(node, "TopK has two outputs and no epilogue"));
    }
    let (outer, len, inner) = around_axis(dims, a);
    let rows = outer * inner;
    let elem = kir_type(ctx.graph.info(x).dtype);
    let (values, indices) = (node.outputs[0], node.outputs[1]);
    if rows == 0 || k == 0 {
        ctx.mark_available(values);
        ctx.mark_available(indices);
        return Ok(());
    }
    let cmp_ty = acc_type(elem);
    let mut b = KernelBuilder::new(ctx.kernel_name("top_k"), linear_launch(rows, MAX_BLOCKS));
    let xp = b.buffer("x", elem, (rows * len) as u64, Access::Read);
    let vp = b.buffer("values", elem, (rows * k) as u64, Access::Write);
    let ip = b.buffer("indices", Type::I64, (rows * k) as u64, Access::Write);
    grid_stride_loop(&mut b, rows, |b, p| {
        let c_inner = const_index(b, inner);
        let o = b.div(p, c_inner);
        let i = b.rem(p, c_inner);
        let c_row = const_index(b, len * inner);
        let ob = b.mul(o, c_row);
        let base = b.add(ob, i);
        let zero = const_index(b, 0);
        let none = b.const_i32(-1);
        let prev_v = {
            let z = b.constant(Scalar::from_f64(cmp_ty, 0.0));
            b.var_init(z)
        };
        let prev_j = b.var_init(none);
        let c_k = const_index(b, k);
        b.for_range(zero, c_k, 1, |b, r| {
            let z = b.constant(Scalar::from_f64(cmp_ty, 0.0));
            let best_v = b.var_init(z);
            let none = b.const_i32(-1);
            let best_j = b.var_init(none);
            let zero = const_index(b, 0);
            let c_len = const_index(b, len);
            b.for_range(zero, c_len, 1, |b, j| {
                let ci = const_index(b, inner);
                let off = b.mul(j, ci);
                let idx = b.add(base, off);
                let v = b.load(xp, idx);
                let v = convert(b, v, cmp_ty);
                let (pv, pj) = (b.get(prev_v), b.get(prev_j));
                let minus = b.const_i32(-1);
                let first_pick = b.eq(pj, minus);
                let after = top_k_before(b, largest, (pv, pj), (v, j));
                let after_prev = b.or(first_pick, after);
                let (bv, bj) = (b.get(best_v), b.get(best_j));
                let minus = b.const_i32(-1);
                let empty = b.eq(bj, minus);
                let ahead = top_k_before(b, largest, (v, j), (bv, bj));
                let better = b.or(empty, ahead);
                let take = b.and(after_prev, better);
                let nv = b.select(take, v, bv);
                b.set(best_v, nv);
                let nj = b.select(take, j, bj);
                b.set(best_j, nj);
            });
            let (bv, bj) = (b.get(best_v), b.get(best_j));
            b.set(prev_v, bv);
            b.set(prev_j, bj);
            // Output (o, r, i) of [outer, k, inner].
            let c_ok = const_index(b, k * inner);
            let oo = b.mul(o, c_ok);
            let ci = const_index(b, inner);
            let rr = b.mul(r, ci);
            let at = b.add(oo, rr);
            let at = b.add(at, i);
            let out_v = convert(b, bv, elem);
            b.store(vp, at, out_v);
            let out_j = convert(b, bj, Type::I64);
            b.store(ip, at, out_j);
        });
    });
    let args = vec![ctx.buffer_of(x), ctx.buffer_of(values), ctx.buffer_of(indices)];
    ctx.push_step(b.finish(), args, vec![node.name.clone()])?;
    ctx.mark_available(values);
    ctx.mark_available(indices);
    Ok(())
}

/// Threads of the NonZero kernel's one block.
const NON_ZERO_THREADS: u32 = 256;

/// NonZero: one block whose thread `t` owns a contiguous run of the input
/// (`⌈n / threads⌉` elements). Each thread counts its run's nonzero
/// elements into shared memory; after a barrier it sums the counts of the
/// runs before its own (its first output column) and walks its run again,
/// storing the coordinates of each nonzero element it meets into column
/// `k` of the `[rank, count]` output, row-major order throughout. `count`
/// was counted on the same inputs ([`weft_graph::onnx::import_data_dependent`]);
/// a column past it is never stored (the store is guarded and its index
/// clamped), so no input can make the kernel write outside its output.
fn non_zero(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    dims: &[usize],
    count: usize,
) -> Result<(), LowerError> {
    if !epi.is_empty() {
        return Err(internal(node, "NonZero takes no epilogue"));
    }
    let out = node.outputs[0];
    let n: usize = dims.iter().product();
    let rank = dims.len();
    if n == 0 || count == 0 || rank == 0 {
        ctx.mark_available(out);
        return Ok(());
    }
    let elem = kir_type(ctx.graph.info(x).dtype);
    let cmp_ty = if elem == Type::Bool { Type::I32 } else { acc_type(elem) };
    let threads = NON_ZERO_THREADS;
    let run = n.div_ceil(threads as usize);
    let mut b = KernelBuilder::new(ctx.kernel_name("non_zero"), LaunchShape::linear(1, threads));
    let xp = b.buffer("x", elem, n as u64, Access::Read);
    let op = b.buffer("out", Type::I64, (rank * count) as u64, Access::Write);
    let counts = b.shared_array(Type::I32, threads);
    let t = b.thread_id(Axis::X);
    let c_run = const_index(&mut b, run);
    let first = b.mul(t, c_run);
    // `body(b, i)` for each element index `i` of this thread's run.
    let walk = |b: &mut KernelBuilder, body: &mut dyn FnMut(&mut KernelBuilder, Value)| {
        let zero = const_index(b, 0);
        let c_run = const_index(b, run);
        b.for_range(zero, c_run, 1, |b, j| {
            let i = b.add(first, j);
            let c_n = const_index(b, n);
            let inside = b.lt(i, c_n);
            b.if_(inside, |b| body(b, i));
        });
    };
    let is_nonzero = |b: &mut KernelBuilder, i: Value| {
        let v = b.load(xp, i);
        let v = convert(b, v, cmp_ty);
        let z = b.constant(Scalar::from_f64(cmp_ty, 0.0));
        b.ne(v, z)
    };
    let zero = b.const_i32(0);
    let mine = b.var_init(zero);
    walk(&mut b, &mut |b, i| {
        let nz = is_nonzero(b, i);
        let one = b.const_i32(1);
        let zero = b.const_i32(0);
        let add = b.select(nz, one, zero);
        let c = b.get(mine);
        let c = b.add(c, add);
        b.set(mine, c);
    });
    let c = b.get(mine);
    b.shared_store(counts, t, c);
    b.barrier();
    let zero = b.const_i32(0);
    let column = b.var_init(zero);
    b.for_const(0, threads as i32, 1, |b, s| {
        let before = b.lt(s, t);
        b.if_(before, |b| {
            let c = b.shared_load(counts, s);
            let k = b.get(column);
            let k = b.add(k, c);
            b.set(column, k);
        });
    });
    let st = strides(dims);
    walk(&mut b, &mut |b, i| {
        let nz = is_nonzero(b, i);
        b.if_(nz, |b| {
            let k = b.get(column);
            let c_count = const_index(b, count);
            let fits = b.lt(k, c_count);
            b.if_(fits, |b| {
                let last = const_index(b, count - 1);
                let k = b.min(k, last);
                let zero = const_index(b, 0);
                let k = b.max(k, zero);
                for (d, (&dim, &stride)) in dims.iter().zip(&st).enumerate() {
                    let c_stride = const_index(b, stride);
                    let q = b.div(i, c_stride);
                    let c_dim = const_index(b, dim);
                    let coord = b.rem(q, c_dim);
                    let row = const_index(b, d * count);
                    let at = b.add(row, k);
                    let coord = convert(b, coord, Type::I64);
                    b.store(op, at, coord);
                }
            });
            let k = b.get(column);
            let one = b.const_i32(1);
            let k = b.add(k, one);
            b.set(column, k);
        });
    });
    // The last run ends at the total: another count than the program's
    // is reported through the status word.
    let status = b.buffer("status", Type::U32, 1, Access::Write);
    let last = b.const_i32(threads as i32 - 1);
    let is_last = b.eq(t, last);
    let total = b.get(column);
    let c_count = const_index(&mut b, count);
    let differs = b.ne(total, c_count);
    let flag = b.and(is_last, differs);
    super::movement::raise_status(&mut b, status, flag);
    let args = vec![ctx.buffer_of(x), ctx.buffer_of(out), ctx.status_buffer()];
    ctx.push_step(b.finish(), args, vec![node.name.clone()])?;
    let check =
        CountCheck { node: node.name.clone(), input: ctx.graph.info(x).name.clone(), values: ctx.buffer_of(x), count };
    ctx.program.count_checks.push(check);
    ctx.mark_available(out);
    Ok(())
}
