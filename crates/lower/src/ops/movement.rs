//! Lowering of data movement: views (Reshape, Flatten, Squeeze, Unsqueeze,
//! Identity), Transpose, Concat, Split, Slice, Gather, GatherElements,
//! GatherND, ScatterElements, ScatterND, Pad and Resize.
//!
//! Views alias the input's buffer and emit nothing, except where a graph
//! output would otherwise share a buffer that is not an activation of its
//! own (a graph input, a weight, or another graph output): executors may
//! hand outputs back by buffer, so those get a copy kernel instead.
//!
//! Every other op is one kernel over its output elements (Split: over its
//! input) in a grid-stride loop, reading the source at an affine index built
//! from the element's coordinates ([`crate::index`]), which the range
//! analysis proves in bounds. Where the source index is data-dependent or
//! conditional (Concat's input choice, Pad's border, Gather's indices,
//! Resize's tables), the read sits under an `if` whose comparisons bound the
//! coordinate, which the analysis uses to prove it.
//!
//! Gather, GatherElements and GatherND clamp each index into `[0, dim − 1]` after wrapping negatives,
//! so every tenant's reads stay inside its own buffer whatever the index.
//! ScatterElements and ScatterND run as gathers too: a thread per output
//! element walks every update in order and folds in those whose (wrapped)
//! index names its element, so duplicates combine deterministically in index
//! order, nothing races, and an update whose index is out of range names no
//! element. ONNX calls an out-of-range index an error (a constant one is
//! refused at import): each of these kernels also stores a nonzero word into
//! the program's status buffer when a raw index lies outside `[-d, d)`
//! ([`flag_out_of_range`]), and the run that reads it back reports the node,
//! its indices input and the range instead of returning outputs
//! ([`crate::program`]'s module doc). The walk
//! costs `output × updates`, fine for the small index sets models scatter. Resize
//! resolves its coordinate transform and rounding on the host, in `f64`,
//! into per-axis tables (source indices, interpolation weights) stored as
//! weights, so the kernel matches ONNX's reference arithmetic exactly and
//! does no float coordinate math.

use weft_graph::infer::slice_ranges;
use weft_graph::{CoordinateTransform, NearestMode, Node, Op, ResizeMode, ScatterReduction, TensorId};
use weft_kir::{Access, HostBuffer, KernelBuilder, Param, Scalar, Type, Value, Var};

use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, Epilogue, EpilogueParams};
use crate::error::LowerError;
use crate::index::{
    affine_index, check_numel, const_index, grid_stride_loop, linear_launch, ravel, strides, unravel, AffineAxis,
    MAX_BLOCKS,
};
use crate::ops::elementwise::{map_kernel, Operand};
use crate::program::{BufferId, BufferKind, IndexCheck};

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    let inputs: Vec<TensorId> = node.inputs.iter().flatten().copied().collect();
    let Some(&x) = inputs.first() else { return Err(internal(node, "missing input 0")) };
    for &t in inputs.iter().chain(&node.outputs) {
        check_numel(&node.name, node.op.name(), ctx.graph.info(t).shape.numel())?;
    }
    if node.outputs.len() > 1 && !epi.is_empty() {
        return Err(internal(node, "an epilogue cannot follow a multi-output op"));
    }
    match &node.op {
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } | Op::Identity => {
            view(ctx, node, epi, x)
        }
        Op::Transpose { perm } => transpose(ctx, node, epi, x, perm),
        Op::Concat { axis } => concat(ctx, node, epi, &inputs, *axis),
        Op::Split { axis, sizes } => split(ctx, node, x, *axis, sizes),
        Op::Slice { starts, ends, axes, steps } => slice(ctx, node, epi, x, starts, ends, axes, steps),
        Op::Gather { axis } => match inputs.get(1) {
            Some(&idx) => gather(ctx, node, epi, x, idx, *axis),
            None => Err(internal(node, "missing input 1 (indices)")),
        },
        Op::GatherElements { axis } => match inputs.get(1) {
            Some(&idx) => gather_elements(ctx, node, epi, x, idx, *axis),
            None => Err(internal(node, "missing input 1 (indices)")),
        },
        Op::ScatterElements { axis, reduction } => match (inputs.get(1), inputs.get(2)) {
            (Some(&idx), Some(&upd)) => scatter_elements(ctx, node, epi, [x, idx, upd], *axis, *reduction),
            _ => Err(internal(node, "missing input 1 or 2 (indices, updates)")),
        },
        Op::ScatterND { reduction } => match (inputs.get(1), inputs.get(2)) {
            (Some(&idx), Some(&upd)) => scatter_nd(ctx, node, epi, [x, idx, upd], *reduction),
            _ => Err(internal(node, "missing input 1 or 2 (indices, updates)")),
        },
        Op::GatherND { batch_dims } => match inputs.get(1) {
            Some(&idx) => gather_nd(ctx, node, epi, x, idx, *batch_dims),
            None => Err(internal(node, "missing input 1 (indices)")),
        },
        Op::Pad { pads, value } => pad(ctx, node, epi, x, pads, *value),
        Op::Resize { scales, mode, transform, nearest } => {
            resize(ctx, node, epi, x, scales, *mode, *transform, *nearest)
        }
        _ => Err(super::not_yet(node)),
    }
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

fn dims_of(ctx: &LowerCtx, t: TensorId) -> Vec<usize> {
    ctx.graph.info(t).shape.dims().to_vec()
}

/// A constant of type `ty` holding `v` (`v != 0` for `bool`).
fn typed_const(b: &mut KernelBuilder, ty: Type, v: f64) -> Value {
    match ty {
        Type::Bool => b.const_bool(v != 0.0),
        t if t.is_float() => b.const_float(t, v),
        t => b.constant(Scalar::from_f64(t, v)),
    }
}

/// Reshape and friends: alias the input's buffer, or copy where aliasing
/// would make a graph output share a buffer it does not own.
fn view(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue, x: TensorId) -> Result<(), LowerError> {
    let out = node.outputs[0];
    let is_output = ctx.graph.outputs.contains(&out);
    let xb = ctx.buffer_of(x);
    let not_owned = ctx.program.buffers[xb].kind != BufferKind::Activation || ctx.graph.outputs.contains(&x);
    if epi.is_empty() && !(is_output && not_owned) {
        ctx.alias(out, x);
        return Ok(());
    }
    // Same elements in the same order: read the input at the output's index.
    let mut op = Operand::of_tensor(ctx, x);
    op.dims = dims_of(ctx, out);
    map_kernel(ctx, node, epi, "copy", &[op], |_, v| v[0])
}

/// Emits one kernel over the elements of `epi.output`: `f(b, i, params)`
/// computes element `i` from the declared input parameters; the epilogue is
/// applied and the result stored. `inputs` are (buffer, element type, length).
fn gather_kernel(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    base_name: &str,
    inputs: &[(BufferId, Type, usize)],
    f: impl FnOnce(&mut KernelBuilder, Value, &[Param]) -> Value,
) -> Result<(), LowerError> {
    checked_gather_kernel(ctx, node, epi, base_name, inputs, None, |b, i, p, _| f(b, i, p))
}

/// [`gather_kernel`] whose kernel, given `check`, also binds the program's
/// status word (passed to `f`, for [`flag_out_of_range`]) and records the
/// check, so a run can report the indices `f` finds out of range.
fn checked_gather_kernel(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    base_name: &str,
    inputs: &[(BufferId, Type, usize)],
    check: Option<IndexCheck>,
    f: impl FnOnce(&mut KernelBuilder, Value, &[Param], Option<Param>) -> Value,
) -> Result<(), LowerError> {
    let info = ctx.graph.info(epi.output);
    let n = info.shape.numel();
    let out_ty = kir_type(info.dtype);
    if n == 0 {
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let name = ctx.kernel_name(base_name);
    let mut b = KernelBuilder::new(name, linear_launch(n, MAX_BLOCKS));
    let params: Vec<Param> = inputs
        .iter()
        .enumerate()
        .map(|(k, &(_, ty, len))| b.buffer(&format!("in{k}"), ty, len.max(1) as u64, Access::Read))
        .collect();
    let out = b.buffer("out", out_ty, n as u64, Access::Write);
    let status = check.as_ref().map(|_| b.buffer("status", Type::U32, 1, Access::Write));
    let epi_params: EpilogueParams = epi.declare(ctx, &mut b)?;
    let mut err = None;
    grid_stride_loop(&mut b, n, |b, i| {
        let v = f(b, i, &params, status);
        match epi.apply(ctx, b, &epi_params, v, i) {
            Ok(v) => {
                let v = convert(b, v, out_ty);
                b.store(out, i, v);
            }
            Err(e) => err = Some(e),
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let mut args: Vec<BufferId> = inputs.iter().map(|i| i.0).collect();
    args.push(ctx.buffer_of(epi.output));
    if check.is_some() {
        args.push(ctx.status_buffer());
    }
    args.extend(epi_params.buffers);
    let mut nodes = vec![node.name.clone()];
    nodes.extend(epi.nodes.iter().cloned());
    ctx.push_step(b.finish(), args, nodes)?;
    ctx.program.index_checks.extend(check);
    ctx.mark_available(epi.output);
    Ok(())
}

/// The check of `indices` (held in `buffer`), whose tuple components index
/// the data axes `axes` (axis, size).
fn index_check(
    ctx: &LowerCtx,
    node: &Node,
    indices: TensorId,
    buffer: BufferId,
    axes: Vec<(usize, usize)>,
) -> IndexCheck {
    IndexCheck {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        input: ctx.graph.info(indices).name.clone(),
        indices: buffer,
        axes,
    }
}

/// Stores 1 into `status[0]` when `raw` (of integer type `ity`) lies outside
/// `[-d, d)`. ONNX calls such an index an error; the kernel still clamps it
/// (or drops the update) so it never leaves its buffers, and the run reports
/// the error after reading the status back. Every kernel stores the same
/// word: the node is found from the program's [`IndexCheck`]s, so kernel
/// bodies stay shared between nodes.
fn flag_out_of_range(b: &mut KernelBuilder, status: Option<Param>, raw: Value, ity: Type, d: usize) {
    let Some(status) = status else { return };
    let lo = b.constant(Scalar::from_f64(ity, -(d as f64)));
    let hi = b.constant(Scalar::from_f64(ity, d as f64));
    let below = b.lt(raw, lo);
    let above = b.ge(raw, hi);
    let bad = b.or(below, above);
    raise_status(b, status, bad);
}

/// Stores 1 into the program's status word `status` where `cond` holds: the
/// one way a kernel reports a run's data-dependent error (an index out of
/// range, a count other than the program's).
pub(crate) fn raise_status(b: &mut KernelBuilder, status: Param, cond: Value) {
    b.if_(cond, |b| {
        let zero = const_index(b, 0);
        let one = b.const_u32(1);
        b.store(status, zero, one);
    });
}

fn input_of(ctx: &mut LowerCtx, t: TensorId) -> (BufferId, Type, usize) {
    let info = ctx.graph.info(t);
    let (ty, n) = (kir_type(info.dtype), info.shape.numel());
    (ctx.buffer_of(t), ty, n)
}

fn transpose(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue, x: TensorId, perm: &[usize]) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let r = in_dims.len();
    let perm: Vec<usize> = if perm.is_empty() { (0..r).rev().collect() } else { perm.to_vec() };
    if perm.len() != r || perm.iter().any(|&p| p >= r) {
        return Err(internal(node, &format!("perm {perm:?} is not a permutation of 0..{r}")));
    }
    let in_st = strides(&in_dims);
    let out_dims: Vec<usize> = perm.iter().map(|&p| in_dims[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| in_st[p]).collect();
    let input = input_of(ctx, x);
    gather_kernel(ctx, node, epi, "transpose", &[input], |b, i, p| {
        let c = unravel(b, i, &out_dims);
        let idx = ravel(b, &c, &st);
        b.load(p[0], idx)
    })
}

/// Decomposes an index over `[outer, mid, inner]` into its three coordinates.
fn split3(b: &mut KernelBuilder, i: Value, outer: usize, mid: usize, inner: usize) -> (Value, Value, Value) {
    let c = unravel(b, i, &[outer, mid, inner]);
    (c[0], c[1], c[2])
}

/// The index of (o, m − off, r) in an `[outer, size, inner]` tensor, with one
/// term per coordinate so each stays provably in range under `off ≤ m < off + size`.
fn index3(b: &mut KernelBuilder, o: Value, m: Value, off: usize, size: usize, r: Value, inner: usize) -> Value {
    affine_index(
        b,
        &[o, m, r],
        &[
            AffineAxis { start: 0, step: 1, stride: size * inner },
            AffineAxis { start: -(off as i64), step: 1, stride: inner },
            AffineAxis { start: 0, step: 1, stride: 1 },
        ],
    )
}

/// `lo ≤ v < hi` on `i32` values.
fn in_range(b: &mut KernelBuilder, v: Value, lo: usize, hi: usize) -> Value {
    let l = const_index(b, lo);
    let h = const_index(b, hi);
    let ge = b.ge(v, l);
    let lt = b.lt(v, h);
    b.and(ge, lt)
}

fn concat(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue, inputs: &[TensorId], axis: i64) -> Result<(), LowerError> {
    let out_dims = dims_of(ctx, node.outputs[0]);
    let a = norm_axis(node, axis, out_dims.len())?;
    let outer: usize = out_dims[..a].iter().product();
    let inner: usize = out_dims[a + 1..].iter().product();
    let total = out_dims[a];
    let mut parts = Vec::new();
    let mut off = 0;
    for &t in inputs {
        let size = dims_of(ctx, t)[a];
        if size > 0 {
            parts.push((off, size));
        }
        off += size;
    }
    let nonempty: Vec<TensorId> = inputs.iter().copied().filter(|&t| dims_of(ctx, t)[a] > 0).collect();
    let ins: Vec<_> = nonempty.iter().map(|&t| input_of(ctx, t)).collect();
    let out_ty = kir_type(ctx.graph.info(epi.output).dtype);
    let elem = ins.first().map_or(out_ty, |i| i.1);
    gather_kernel(ctx, node, epi, "concat", &ins, |b, i, p| {
        let (o, m, r) = split3(b, i, outer, total, inner);
        let zero = typed_const(b, elem, 0.0);
        let res = b.var_init(zero);
        for (k, &(off, size)) in parts.iter().enumerate() {
            let cond = in_range(b, m, off, off + size);
            b.if_(cond, |b| {
                let idx = index3(b, o, m, off, size, r, inner);
                let v = b.load(p[k], idx);
                b.set(res, v);
            });
        }
        b.get(res)
    })
}

fn split(ctx: &mut LowerCtx, node: &Node, x: TensorId, axis: i64, sizes: &[usize]) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let a = norm_axis(node, axis, in_dims.len())?;
    let outer: usize = in_dims[..a].iter().product();
    let inner: usize = in_dims[a + 1..].iter().product();
    let total = in_dims[a];
    if sizes.len() != node.outputs.len() || sizes.iter().sum::<usize>() != total {
        return Err(internal(node, &format!("split sizes {sizes:?} do not match {} outputs", node.outputs.len())));
    }
    let n = outer * total * inner;
    if n == 0 {
        for &t in &node.outputs {
            ctx.mark_available(t);
        }
        return Ok(());
    }
    let (xb, elem, _) = input_of(ctx, x);
    let name = ctx.kernel_name("split");
    let mut b = KernelBuilder::new(name, linear_launch(n, MAX_BLOCKS));
    let xp = b.buffer("x", elem, n as u64, Access::Read);
    let mut outs = Vec::new();
    let mut args = vec![xb];
    let mut off = 0;
    for (k, (&size, &t)) in sizes.iter().zip(&node.outputs).enumerate() {
        if size > 0 {
            let p = b.buffer(
                &format!("out{k}"),
                kir_type(ctx.graph.info(t).dtype),
                (outer * size * inner) as u64,
                Access::Write,
            );
            outs.push((p, off, size));
            args.push(ctx.buffer_of(t));
        }
        off += size;
    }
    grid_stride_loop(&mut b, n, |b, i| {
        let v = b.load(xp, i);
        let (o, m, r) = split3(b, i, outer, total, inner);
        for &(p, off, size) in &outs {
            let cond = in_range(b, m, off, off + size);
            b.if_(cond, |b| {
                let idx = index3(b, o, m, off, size, r, inner);
                b.store(p, idx, v);
            });
        }
    });
    ctx.push_step(b.finish(), args, vec![node.name.clone()])?;
    for &t in &node.outputs {
        ctx.mark_available(t);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn slice(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let ranges = slice_ranges(&in_dims, starts, ends, axes, steps).map_err(|m| internal(node, &m))?;
    let out_dims: Vec<usize> = ranges.iter().map(|r| r.count).collect();
    if out_dims != dims_of(ctx, epi.output) {
        return Err(internal(node, "resolved slice disagrees with the inferred output shape"));
    }
    let in_st = strides(&in_dims);
    let affine: Vec<AffineAxis> =
        ranges.iter().zip(&in_st).map(|(r, &s)| AffineAxis { start: r.start, step: r.step, stride: s }).collect();
    let input = input_of(ctx, x);
    gather_kernel(ctx, node, epi, "slice", &[input], |b, i, p| {
        let c = unravel(b, i, &out_dims);
        let idx = affine_index(b, &c, &affine);
        b.load(p[0], idx)
    })
}

fn gather(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    indices: TensorId,
    axis: i64,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let a = norm_axis(node, axis, in_dims.len())?;
    let outer: usize = in_dims[..a].iter().product();
    let inner: usize = in_dims[a + 1..].iter().product();
    let d = in_dims[a];
    let nq = ctx.graph.info(indices).shape.numel();
    let data = input_of(ctx, x);
    let idx_in = input_of(ctx, indices);
    let (elem, ity) = (data.1, idx_in.1);
    if !matches!(ity, Type::I32 | Type::I64) {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "Gather".into(),
            reason: format!("indices of type {ity}; expected i32 or i64"),
        });
    }
    if d == 0 {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "Gather".into(),
            reason: "gathering from an empty axis".into(),
        });
    }
    let check = index_check(ctx, node, indices, idx_in.0, vec![(a, d)]);
    checked_gather_kernel(ctx, node, epi, "gather", &[data, idx_in], Some(check), |b, i, p, status| {
        let (o, q, r) = split3(b, i, outer, nq, inner);
        let raw = b.load(p[1], q);
        flag_out_of_range(b, status, raw, ity, d);
        let g = wrap_clamp(b, raw, ity, d);
        let init = typed_const(b, elem, 0.0);
        let res = b.var_init(init);
        // Always true after the clamp; it is what lets the range analysis
        // bound a loaded (data-dependent) index.
        let ok = in_range(b, g, 0, d);
        b.if_(ok, |b| {
            let idx = index3(b, o, g, 0, d, r, inner);
            let v = b.load(p[0], idx);
            b.set(res, v);
        });
        b.get(res)
    })
}

/// Wraps a negative index by `d`, then clamps into `[0, d − 1]` (see the
/// module doc), as `i32`.
fn wrap_clamp(b: &mut KernelBuilder, raw: Value, ity: Type, d: usize) -> Value {
    let zero = b.constant(Scalar::from_f64(ity, 0.0));
    let dim = b.constant(Scalar::from_f64(ity, d as f64));
    let last = b.constant(Scalar::from_f64(ity, (d - 1) as f64));
    let neg = b.lt(raw, zero);
    let wrapped_v = b.add(raw, dim);
    let wrapped = b.select(neg, wrapped_v, raw);
    let lo = b.max(wrapped, zero);
    let g = b.min(lo, last);
    convert(b, g, Type::I32)
}

fn gather_elements(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    indices: TensorId,
    axis: i64,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let idx_dims = dims_of(ctx, indices);
    let a = norm_axis(node, axis, in_dims.len())?;
    let d = in_dims[a];
    let data = input_of(ctx, x);
    let idx_in = input_of(ctx, indices);
    let (elem, ity) = (data.1, idx_in.1);
    if !matches!(ity, Type::I32 | Type::I64) {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "GatherElements".into(),
            reason: format!("indices of type {ity}; expected i32 or i64"),
        });
    }
    if idx_dims.len() != in_dims.len() || (0..in_dims.len()).any(|k| k != a && idx_dims[k] > in_dims[k]) {
        return Err(internal(node, "indices do not fit the data's shape"));
    }
    if d == 0 {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "GatherElements".into(),
            reason: "gathering from an empty axis".into(),
        });
    }
    let st = strides(&in_dims);
    let check = index_check(ctx, node, indices, idx_in.0, vec![(a, d)]);
    checked_gather_kernel(ctx, node, epi, "gather_elements", &[data, idx_in], Some(check), |b, i, p, status| {
        let mut c = unravel(b, i, &idx_dims);
        let raw = b.load(p[1], i);
        flag_out_of_range(b, status, raw, ity, d);
        let g = wrap_clamp(b, raw, ity, d);
        let init = typed_const(b, elem, 0.0);
        let res = b.var_init(init);
        // Always true after the clamp; it bounds the loaded index for the
        // range analysis.
        let ok = in_range(b, g, 0, d);
        b.if_(ok, |b| {
            c[a] = g;
            let idx = ravel(b, &c, &st);
            let v = b.load(p[0], idx);
            b.set(res, v);
        });
        b.get(res)
    })
}

fn pad(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    pads: &[usize],
    value: f32,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let r = in_dims.len();
    if pads.len() != 2 * r {
        return Err(internal(node, &format!("pads {pads:?} do not fit rank {r}")));
    }
    let out_dims = dims_of(ctx, epi.output);
    let in_st = strides(&in_dims);
    let input = input_of(ctx, x);
    let elem = input.1;
    let affine: Vec<AffineAxis> =
        (0..r).map(|k| AffineAxis { start: -(pads[k] as i64), step: 1, stride: in_st[k] }).collect();
    let empty_input = in_dims.contains(&0);
    gather_kernel(ctx, node, epi, "pad", &[input], |b, i, p| {
        let fill = typed_const(b, elem, value as f64);
        let res = b.var_init(fill);
        if empty_input {
            return b.get(res);
        }
        let c = unravel(b, i, &out_dims);
        let mut cond: Option<Value> = None;
        for k in 0..r {
            if pads[k] == 0 && pads[r + k] == 0 {
                continue;
            }
            let ck = in_range(b, c[k], pads[k], pads[k] + in_dims[k]);
            cond = Some(match cond {
                Some(prev) => b.and(prev, ck),
                None => ck,
            });
        }
        let load = |b: &mut KernelBuilder| {
            let idx = affine_index(b, &c, &affine);
            let v = b.load(p[0], idx);
            b.set(res, v);
        };
        match cond {
            Some(cond) => b.if_(cond, load),
            None => load(b),
        }
        b.get(res)
    })
}

/// ONNX nearest rounding of a source coordinate.
fn nearest_index(mode: NearestMode, c: f64) -> f64 {
    let f = c.floor();
    if c == f {
        return c;
    }
    match mode {
        NearestMode::RoundPreferFloor => {
            if c - f <= 0.5 {
                f
            } else {
                f + 1.0
            }
        }
        NearestMode::RoundPreferCeil => {
            if c - f < 0.5 {
                f
            } else {
                f + 1.0
            }
        }
        NearestMode::Floor => f,
        NearestMode::Ceil => c.ceil(),
    }
}

/// How one axis of a Resize samples its input.
enum AxisSample {
    /// Output coordinate = input coordinate.
    Identity,
    /// One source index per output coordinate.
    Nearest(Vec<i32>),
    /// Two source indices and the weight of the second.
    Linear(Vec<i32>, Vec<i32>, Vec<f32>),
    /// Per tap (four for cubic): its source indices and weights.
    Taps(Vec<Vec<i32>>, Vec<Vec<f32>>),
}

/// The weights of one interpolated axis's taps in a resize kernel.
enum Weights {
    /// Two taps: the second's weight (the first's is one minus it).
    Upper(Value),
    /// Every tap's weight.
    Each(Vec<Value>),
}

#[allow(clippy::too_many_arguments)]
fn resize(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    scales: &[f32],
    mode: ResizeMode,
    transform: CoordinateTransform,
    nearest: NearestMode,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let out_dims = dims_of(ctx, epi.output);
    let r = in_dims.len();
    if scales.len() != r || out_dims.len() != r {
        return Err(internal(node, "scales do not match the input rank"));
    }
    if in_dims.contains(&0) && !out_dims.contains(&0) {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "Resize".into(),
            reason: "resizing an empty tensor to a non-empty one".into(),
        });
    }
    let clamp = |v: f64, d: usize| v.clamp(0.0, d.saturating_sub(1) as f64) as i32;
    let samples: Vec<AxisSample> = (0..r)
        .map(|k| {
            let (d, o, s) = (in_dims[k], out_dims[k], scales[k] as f64);
            let coords: Vec<f64> =
                (0..o).map(|xo| weft_graph::eval::source_coordinate(transform, xo, s, d, o)).collect();
            match mode {
                ResizeMode::Nearest => {
                    let idx: Vec<i32> = coords.iter().map(|&c| clamp(nearest_index(nearest, c), d)).collect();
                    if o == d && idx.iter().enumerate().all(|(i, &v)| v == i as i32) {
                        AxisSample::Identity
                    } else {
                        AxisSample::Nearest(idx)
                    }
                }
                ResizeMode::Linear => {
                    let i0: Vec<i32> = coords.iter().map(|&c| clamp(c.floor(), d)).collect();
                    let i1: Vec<i32> = coords.iter().map(|&c| clamp(c.floor() + 1.0, d)).collect();
                    let w: Vec<f32> = coords.iter().map(|&c| (c - c.floor()) as f32).collect();
                    let trivial =
                        o == d && w.iter().all(|&w| w == 0.0) && i0.iter().enumerate().all(|(i, &v)| v == i as i32);
                    if trivial {
                        AxisSample::Identity
                    } else if w.iter().all(|&w| w == 0.0) {
                        AxisSample::Nearest(i0)
                    } else {
                        AxisSample::Linear(i0, i1, w)
                    }
                }
                ResizeMode::Cubic { coeff_a, exclude_outside } => {
                    let taps: Vec<[(usize, f64); 4]> = coords
                        .iter()
                        .map(|&c| weft_graph::eval::resize_cubic_taps(c, d, coeff_a as f64, exclude_outside))
                        .collect();
                    // A coordinate on a pixel weighs that pixel alone.
                    let single: Option<Vec<i32>> = taps
                        .iter()
                        .map(|t| {
                            let mut hit = t.iter().filter(|&&(_, w)| w != 0.0);
                            match (hit.next(), hit.next()) {
                                (Some(&(i, 1.0)), None) => Some(i as i32),
                                _ => None,
                            }
                        })
                        .collect();
                    match single {
                        Some(idx) if o == d && idx.iter().enumerate().all(|(i, &v)| v == i as i32) => {
                            AxisSample::Identity
                        }
                        Some(idx) => AxisSample::Nearest(idx),
                        None => AxisSample::Taps(
                            (0..4).map(|k| taps.iter().map(|t| t[k].0 as i32).collect()).collect(),
                            (0..4).map(|k| taps.iter().map(|t| t[k].1 as f32).collect()).collect(),
                        ),
                    }
                }
            }
        })
        .collect();
    // Tables become weights; remember which parameter holds which table.
    let mut inputs = vec![input_of(ctx, x)];
    let elem = inputs[0].1;
    let mut table_param = vec![Vec::new(); r];
    for (k, s) in samples.iter().enumerate() {
        let mut add = |ctx: &mut LowerCtx, suffix: &str, data: HostBuffer| {
            let len = data.len();
            let buf = ctx.add_weight(&format!("{}_resize_{suffix}{k}", node.name), vec![len], data);
            inputs.push((buf, if suffix.starts_with('w') { Type::F32 } else { Type::I32 }, len));
            inputs.len() - 1
        };
        match s {
            AxisSample::Identity => {}
            AxisSample::Nearest(idx) => table_param[k] = vec![add(ctx, "idx", HostBuffer::from_i32(idx))],
            AxisSample::Linear(i0, i1, w) => {
                let a = add(ctx, "lo", HostBuffer::from_i32(i0));
                let bb = add(ctx, "hi", HostBuffer::from_i32(i1));
                let c = add(ctx, "w", HostBuffer::from_f32(w));
                table_param[k] = vec![a, bb, c];
            }
            AxisSample::Taps(idx, w) => {
                let mut params: Vec<usize> = idx
                    .iter()
                    .enumerate()
                    .map(|(t, i)| add(ctx, &format!("tap{t}_"), HostBuffer::from_i32(i)))
                    .collect();
                params.extend(w.iter().enumerate().map(|(t, w)| add(ctx, &format!("w{t}_"), HostBuffer::from_f32(w))));
                table_param[k] = params;
            }
        }
    }
    let in_st = strides(&in_dims);
    gather_kernel(ctx, node, epi, "resize", &inputs, |b, i, p| {
        let c = unravel(b, i, &out_dims);
        // Per axis: the candidate source coordinates (1, 2 or 4) and their
        // weights: a linear axis has the second's (the first's is one
        // minus it), a cubic axis every tap's.
        let mut srcs: Vec<Vec<Value>> = Vec::with_capacity(r);
        let mut weights: Vec<Option<Weights>> = Vec::with_capacity(r);
        let mut cond: Option<Value> = None;
        for k in 0..r {
            let tp = &table_param[k];
            let (list, w) = match &samples[k] {
                AxisSample::Identity => (vec![c[k]], None),
                AxisSample::Nearest(_) => (vec![b.load(p[tp[0]], c[k])], None),
                AxisSample::Linear(..) => {
                    let lo = b.load(p[tp[0]], c[k]);
                    let hi = b.load(p[tp[1]], c[k]);
                    (vec![lo, hi], Some(Weights::Upper(b.load(p[tp[2]], c[k]))))
                }
                AxisSample::Taps(idx, _) => {
                    let n = idx.len();
                    let list: Vec<Value> = (0..n).map(|t| b.load(p[tp[t]], c[k])).collect();
                    let ws: Vec<Value> = (0..n).map(|t| b.load(p[tp[n + t]], c[k])).collect();
                    (list, Some(Weights::Each(ws)))
                }
            };
            if !matches!(samples[k], AxisSample::Identity) {
                // Tables hold clamped indices: always true, and it bounds them.
                for &v in &list {
                    let ok = in_range(b, v, 0, in_dims[k]);
                    cond = Some(match cond {
                        Some(prev) => b.and(prev, ok),
                        None => ok,
                    });
                }
            }
            srcs.push(list);
            weights.push(w);
        }
        let zero = typed_const(b, elem, 0.0);
        let res = b.var_init(zero);
        let body = |b: &mut KernelBuilder| {
            let lin: Vec<usize> = (0..r).filter(|&k| weights[k].is_some()).collect();
            if lin.is_empty() {
                let coords: Vec<Value> = srcs.iter().map(|l| l[0]).collect();
                let idx = ravel(b, &coords, &in_st);
                let v = b.load(p[0], idx);
                b.set(res, v);
                return;
            }
            let zero_f = b.const_f32(0.0);
            let one = b.const_f32(1.0);
            let mut acc = zero_f;
            // Every combination of one tap per weighted axis, the first
            // such axis varying fastest.
            let combos: usize = lin.iter().map(|&k| srcs[k].len()).product();
            for corner in 0..combos {
                let mut coords: Vec<Value> = srcs.iter().map(|l| l[0]).collect();
                let mut wt: Option<Value> = None;
                let mut rest = corner;
                for &k in &lin {
                    let Some(w) = &weights[k] else { continue };
                    let tap = rest % srcs[k].len();
                    rest /= srcs[k].len();
                    coords[k] = srcs[k][tap];
                    let f = match w {
                        Weights::Upper(w) if tap == 1 => *w,
                        Weights::Upper(w) => b.sub(one, *w),
                        Weights::Each(ws) => ws[tap],
                    };
                    wt = Some(match wt {
                        Some(prev) => b.mul(prev, f),
                        None => f,
                    });
                }
                let idx = ravel(b, &coords, &in_st);
                let v = b.load(p[0], idx);
                let v = convert(b, v, Type::F32);
                acc = match wt {
                    Some(w) => b.fma(w, v, acc),
                    None => b.add(acc, v),
                };
            }
            let v = convert(b, acc, elem);
            b.set(res, v);
        };
        match cond {
            Some(cond) => b.if_(cond, body),
            None => body(b),
        }
        b.get(res)
    })
}

/// `raw` (of integer type `ity`) wrapped by `d` when negative, still in `ity`
/// so a large index cannot alias a small one by truncation.
fn wrap_negative(b: &mut KernelBuilder, raw: Value, ity: Type, d: usize) -> Value {
    let zero = b.constant(Scalar::from_f64(ity, 0.0));
    let dim = b.constant(Scalar::from_f64(ity, d as f64));
    let neg = b.lt(raw, zero);
    let wrapped = b.add(raw, dim);
    b.select(neg, wrapped, raw)
}

/// Float elements combine in `f32`; integers in their own type.
fn combine_type(elem: Type) -> Type {
    if elem.is_float() {
        Type::F32
    } else {
        elem
    }
}

/// Folds update `u` (converted to `acc_ty`) into `acc` by `reduction`
/// where `hit` holds; `acc` keeps its value elsewhere.
fn fold_update(b: &mut KernelBuilder, acc: Var, hit: Value, u: Value, reduction: ScatterReduction, acc_ty: Type) {
    let u = convert(b, u, acc_ty);
    let cur = b.get(acc);
    let next = match reduction {
        ScatterReduction::None => u,
        ScatterReduction::Add => b.add(cur, u),
        ScatterReduction::Mul => b.mul(cur, u),
        ScatterReduction::Max => b.max(cur, u),
        ScatterReduction::Min => b.min(cur, u),
    };
    let v = b.select(hit, next, cur);
    b.set(acc, v);
}

fn int_indices(node: &Node, ity: Type) -> Result<(), LowerError> {
    if matches!(ity, Type::I32 | Type::I64) {
        Ok(())
    } else {
        Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: node.op.name().into(),
            reason: format!("indices of type {ity}; expected i32 or i64"),
        })
    }
}

fn scatter_elements(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    [x, indices, updates]: [TensorId; 3],
    axis: i64,
    reduction: ScatterReduction,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let idx_dims = dims_of(ctx, indices);
    let a = norm_axis(node, axis, in_dims.len())?;
    if idx_dims.len() != in_dims.len() || (0..in_dims.len()).any(|k| k != a && idx_dims[k] > in_dims[k]) {
        return Err(internal(node, "indices do not fit the data's shape"));
    }
    let (data, idx_in, upd) = (input_of(ctx, x), input_of(ctx, indices), input_of(ctx, updates));
    let (elem, ity) = (data.1, idx_in.1);
    int_indices(node, ity)?;
    let m: usize = idx_dims.iter().product();
    let acc_ty = combine_type(elem);
    let d = in_dims[a];
    let check = index_check(ctx, node, indices, idx_in.0, vec![(a, d)]);
    checked_gather_kernel(ctx, node, epi, "scatter_elements", &[data, idx_in, upd], Some(check), |b, i, p, status| {
        let c = unravel(b, i, &in_dims);
        let first = b.load(p[0], i);
        let first = convert(b, first, acc_ty);
        let acc = b.var_init(first);
        let zero = const_index(b, 0);
        let end = const_index(b, m);
        let here = convert(b, c[a], ity);
        b.for_range(zero, end, 1, |b, j| {
            let uc = unravel(b, j, &idx_dims);
            let raw = b.load(p[1], j);
            flag_out_of_range(b, status, raw, ity, d);
            let target = wrap_negative(b, raw, ity, d);
            let mut hit = b.eq(target, here);
            for k in (0..in_dims.len()).filter(|&k| k != a) {
                let same = b.eq(uc[k], c[k]);
                hit = b.and(hit, same);
            }
            let u = b.load(p[2], j);
            fold_update(b, acc, hit, u, reduction, acc_ty);
        });
        b.get(acc)
    })
}

fn scatter_nd(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    [x, indices, updates]: [TensorId; 3],
    reduction: ScatterReduction,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let idx_dims = dims_of(ctx, indices);
    let k = match idx_dims.last() {
        Some(&k) if k >= 1 && k <= in_dims.len() => k,
        _ => return Err(internal(node, "index tuples do not fit the data's rank")),
    };
    let (data, idx_in, upd) = (input_of(ctx, x), input_of(ctx, indices), input_of(ctx, updates));
    let (elem, ity) = (data.1, idx_in.1);
    int_indices(node, ity)?;
    let tuples: usize = idx_dims[..idx_dims.len() - 1].iter().product();
    let slice_dims = in_dims[k..].to_vec();
    let slice: usize = slice_dims.iter().product();
    let acc_ty = combine_type(elem);
    let check = index_check(ctx, node, indices, idx_in.0, (0..k).map(|t| (t, in_dims[t])).collect());
    checked_gather_kernel(ctx, node, epi, "scatter_nd", &[data, idx_in, upd], Some(check), |b, i, p, status| {
        let c = unravel(b, i, &in_dims);
        let first = b.load(p[0], i);
        let first = convert(b, first, acc_ty);
        let acc = b.var_init(first);
        let here: Vec<Value> = c[..k].iter().map(|&v| convert(b, v, ity)).collect();
        let within = ravel(b, &c[k..], &strides(&slice_dims));
        let zero = const_index(b, 0);
        let end = const_index(b, tuples);
        b.for_range(zero, end, 1, |b, q| {
            let ck = const_index(b, k);
            let row = b.mul(q, ck);
            let mut hit = b.const_bool(true);
            for (t, &h) in here.iter().enumerate() {
                let ct = const_index(b, t);
                let at = b.add(row, ct);
                let raw = b.load(p[1], at);
                flag_out_of_range(b, status, raw, ity, in_dims[t]);
                let target = wrap_negative(b, raw, ity, in_dims[t]);
                let same = b.eq(target, h);
                hit = b.and(hit, same);
            }
            let cs = const_index(b, slice);
            let ub = b.mul(q, cs);
            let ui = b.add(ub, within);
            let u = b.load(p[2], ui);
            fold_update(b, acc, hit, u, reduction, acc_ty);
        });
        b.get(acc)
    })
}

/// Runs `body` under one `if` per condition, nested, so the range analysis
/// sees every bound.
fn nested_ifs(b: &mut KernelBuilder, conds: &[Value], body: &mut dyn FnMut(&mut KernelBuilder)) {
    match conds.split_first() {
        None => body(b),
        Some((&c, rest)) => b.if_(c, |b| nested_ifs(b, rest, body)),
    }
}

fn gather_nd(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    x: TensorId,
    indices: TensorId,
    batch_dims: usize,
) -> Result<(), LowerError> {
    let in_dims = dims_of(ctx, x);
    let idx_dims = dims_of(ctx, indices);
    let out_dims = dims_of(ctx, node.outputs[0]);
    let q = idx_dims.len();
    let k = match idx_dims.last() {
        Some(&k) if k >= 1 && batch_dims < q && batch_dims + k <= in_dims.len() => k,
        _ => return Err(internal(node, "index tuples do not fit the data's rank")),
    };
    if in_dims[batch_dims..batch_dims + k].contains(&0) {
        return Err(LowerError::Unsupported {
            node: node.name.clone(),
            op: "GatherND".into(),
            reason: "gathering from an empty axis".into(),
        });
    }
    let (data, idx_in) = (input_of(ctx, x), input_of(ctx, indices));
    let (elem, ity) = (data.1, idx_in.1);
    int_indices(node, ity)?;
    let st = strides(&in_dims);
    let tuple_st = strides(&idx_dims[..q - 1]);
    let axes = (batch_dims..batch_dims + k).map(|t| (t, in_dims[t])).collect();
    let check = index_check(ctx, node, indices, idx_in.0, axes);
    checked_gather_kernel(ctx, node, epi, "gather_nd", &[data, idx_in], Some(check), |b, i, p, status| {
        let co = unravel(b, i, &out_dims);
        let tuple = ravel(b, &co[..q - 1], &tuple_st);
        let ck = const_index(b, k);
        let row = b.mul(tuple, ck);
        let mut coords: Vec<Value> = co[..batch_dims].to_vec();
        let mut conds = Vec::with_capacity(k);
        for t in 0..k {
            let ct = const_index(b, t);
            let at = b.add(row, ct);
            let raw = b.load(p[1], at);
            let d = in_dims[batch_dims + t];
            flag_out_of_range(b, status, raw, ity, d);
            let g = wrap_clamp(b, raw, ity, d);
            // Always true after the clamp; it bounds the loaded index for
            // the range analysis.
            conds.push(in_range(b, g, 0, d));
            coords.push(g);
        }
        coords.extend_from_slice(&co[q - 1..]);
        let init = typed_const(b, elem, 0.0);
        let res = b.var_init(init);
        nested_ifs(b, &conds, &mut |b| {
            let idx = ravel(b, &coords, &st);
            let v = b.load(p[0], idx);
            b.set(res, v);
        });
        b.get(res)
    })
}
