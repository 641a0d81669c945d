//! Shape and dtype inference for every operator, following ONNX semantics.
//!
//! [`infer_node`] runs when a node is added to a [`Graph`](crate::Graph), so
//! every rule below is checked eagerly and a model that does not fit is refused
//! with a [`GraphError::Shape`] naming the node, the operator, what is wrong and
//! what was expected. Nothing here panics on bad input.
//!
//! Rules implemented (ONNX operator spec, opset 13–21 semantics):
//!
//! - **Arity**: each op's required inputs must be present; optional inputs
//!   (Conv/ConvTranspose `B`, Gemm `C`, LayerNormalization `B`) may be omitted
//!   (`None`, or absent at the end).
//! - **Dtypes**: float-only ops (Conv, ConvTranspose, BatchNormalization,
//!   Softmax, LayerNormalization, pooling, LRN, Sum, and the transcendental
//!   unaries) refuse integer and boolean inputs; arithmetic refuses booleans;
//!   all inputs of an elementwise op share one dtype (except Pow's exponent);
//!   `Equal`/`Less`/`Greater` produce `bool`; `Where`'s condition must be
//!   `bool`; Gather's indices must be `i32`/`i64`.
//! - **Broadcasting**: numpy multidirectional broadcasting for Binary, Sum and
//!   Where (right-aligned, a dimension of 1 stretches); unidirectional for
//!   Gemm's `C` (to `[M, N]`) and LayerNormalization's scale/bias (to
//!   `X.shape[axis..]`).
//! - **Conv**: `X [N, C, d…]`, `W [M, C/groups, k…]`, `B [M]`; `M % groups ==
//!   0`; `kernel` (when given) equals `W.shape[2..]`; output
//!   `floor((d + pb + pe − dil·(k−1) − 1) / s) + 1`; `SAME_UPPER`/`SAME_LOWER`
//!   give `ceil(d / s)` with the total padding split as ONNX does (odd extra at
//!   the end for UPPER, at the beginning for LOWER). Empty `strides`,
//!   `dilations` or explicit pads mean 1s and 0s.
//! - **ConvTranspose**: `W [C, M/groups, k…]`, output channels
//!   `W.shape[1]·groups`, output `s·(d−1) + output_padding + dil·(k−1) + 1 −
//!   pb − pe`; `SAME_*` target `d·s` with the total padding split as in the
//!   ONNX spec (UPPER: `total/2` at the beginning). `output_padding` must be
//!   smaller than the stride or the dilation.
//! - **Pooling**: as Conv without weights; `ceil_mode` rounds the window count
//!   up, and (as onnxruntime and PyTorch) drops a last window that would start
//!   in the end padding. Global pools give `[N, C, 1, …]`.
//! - **Gemm**: 2-D `A`, `B` with transposes, inner dims equal, `C`
//!   broadcastable to `[M, N]`. **MatMul**: numpy matmul (1-D operands
//!   promoted and the promoted dim removed, batch dims broadcast).
//! - **Axes**: every axis attribute may be negative (counted from the end) and
//!   must lie in range; duplicated axes are refused. Reduce* with empty `axes`
//!   reduce every axis; `keepdims` keeps them as 1. Squeeze with empty axes
//!   removes every 1-dim and refuses squeezing a dim that is not 1. Unsqueeze
//!   axes refer to the output rank.
//! - **Movement**: Concat (same rank and dtype, equal dims off the axis), Split
//!   (sizes sum to the dim), Reshape (`0` copies the input dim unless
//!   `allow_zero`, one `-1` inferred, element count preserved), Flatten (`axis`
//!   in `[−r, r]`), Transpose (`perm` a permutation; empty means reverse),
//!   Gather (`data.shape[..axis] + indices.shape + data.shape[axis+1..]`,
//!   constant indices range-checked), Pad (`d + begin + end`), Resize
//!   (`floor(d · scale)` computed in `f32` as onnxruntime does), Slice (ONNX
//!   `starts`/`ends`: negative values count from the end and are then clamped;
//!   `[0, d]` for positive steps, `[−1, d−1]` for negative ones; empty `axes`
//!   means `0..n`, empty `steps` means 1s; a zero step is refused). To slice
//!   down through index 0 with a negative step, give an end of `i64::MIN` as
//!   ONNX exporters do (`-1` means "the last element", as in ONNX).
//!
//! The geometry helpers ([`conv_geometry`], [`pool_geometry`],
//! [`conv_transpose_geometry`], [`slice_ranges`], [`broadcast_shapes`],
//! [`normalize_axis`]) are public so the reference evaluator and lowering
//! resolve padding and slicing exactly as inference did.

use crate::dtype::DType;
use crate::error::GraphError;
use crate::graph::TensorInfo;
use crate::op::{BinaryOp, Op, Padding, ResizeMode, UnaryOp, Window};
use crate::tensor::{Shape, Tensor};

/// Infers the dtype and shape of each output of node `node` applying `op` to
/// `inputs` (`None` for an omitted optional input). `constants` holds the
/// value of each input that is a constant, for ops whose output shape depends
/// on values (and to range-check constant Gather indices).
pub fn infer_node(
    node: &str,
    op: &Op,
    inputs: &[Option<&TensorInfo>],
    constants: &[Option<&Tensor>],
) -> Result<Vec<(DType, Shape)>, GraphError> {
    let cx = Cx { node, op, inputs, constants };
    cx.infer()
}

/// Numpy multidirectional broadcast of two shapes, or `None` if incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// True if `from` broadcasts to exactly `to` (ONNX unidirectional broadcasting).
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len() && broadcast_shapes(from, to).as_deref() == Some(to)
}

/// An axis in `[-rank, rank-1]` as an index in `0..rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// The resolved geometry of a windowed op (convolution or pooling) along its
/// spatial dimensions: everything a loop nest or a kernel needs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WindowGeometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    /// Spatial output extent.
    pub output: Vec<usize>,
}

/// Fills empty `strides`/`dilations` with 1s and checks lengths and kernel.
fn window_params(window: &Window, kernel: &[usize]) -> Result<(Vec<usize>, Vec<usize>), String> {
    let n = kernel.len();
    let fill = |v: &[usize], what: &str| -> Result<Vec<usize>, String> {
        if v.is_empty() {
            return Ok(vec![1; n]);
        }
        if v.len() != n {
            return Err(format!("{what} has {} entries but there are {n} spatial dims", v.len()));
        }
        if v.contains(&0) {
            return Err(format!("{what} {v:?} contains 0; every entry must be at least 1"));
        }
        Ok(v.to_vec())
    };
    if kernel.contains(&0) {
        return Err(format!("kernel {kernel:?} contains 0; every kernel dim must be at least 1"));
    }
    Ok((fill(&window.strides, "strides")?, fill(&window.dilations, "dilations")?))
}

/// `a + b`, or an error saying the window arithmetic overflowed (attributes
/// of a damaged model can be anywhere up to `i64::MAX`).
fn add(a: usize, b: usize) -> Result<usize, String> {
    a.checked_add(b).ok_or_else(|| format!("window arithmetic overflows ({a} + {b})"))
}

/// The extent of a dilated kernel, `d·(k − 1) + 1` (`k ≥ 1` is checked).
fn dilated_span(d: usize, k: usize) -> Result<usize, String> {
    d.checked_mul(k - 1)
        .and_then(|x| x.checked_add(1))
        .ok_or_else(|| format!("the dilated kernel extent {d}·({k} − 1) + 1 overflows"))
}

fn explicit_pads(pads: &[usize], n: usize) -> Result<(Vec<usize>, Vec<usize>), String> {
    if pads.is_empty() {
        return Ok((vec![0; n], vec![0; n]));
    }
    if pads.len() != 2 * n {
        return Err(format!(
            "pads has {} entries but there are {n} spatial dims; expected {} ([begin…, end…])",
            pads.len(),
            2 * n
        ));
    }
    Ok((pads[..n].to_vec(), pads[n..].to_vec()))
}

/// Splits a total padding for `SAME_UPPER` (odd extra at the end) or
/// `SAME_LOWER` (odd extra at the beginning), as ONNX Conv and pooling do.
fn same_pads(
    window: &Window,
    input: &[usize],
    kernel: &[usize],
    s: &[usize],
    d: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let n = input.len();
    let (mut b, mut e) = (vec![0; n], vec![0; n]);
    for i in 0..n {
        let out = input[i].div_ceil(s[i]);
        let span = dilated_span(d[i], kernel[i])?;
        // (out − 1)·s ≤ input − 1, so only the span can overflow here.
        let total = add((out.saturating_sub(1)) * s[i], span)?.saturating_sub(input[i]);
        let small = total / 2;
        if window.padding == Padding::SameLower {
            b[i] = total - small;
            e[i] = small;
        } else {
            b[i] = small;
            e[i] = total - small;
        }
    }
    Ok((b, e))
}

/// Geometry of a convolution over spatial `input` dims with a kernel of
/// spatial extent `kernel` (from `W.shape[2..]`). The window's own `kernel`,
/// when non-empty, must agree.
pub fn conv_geometry(window: &Window, input: &[usize], kernel: &[usize]) -> Result<WindowGeometry, String> {
    if !window.kernel.is_empty() && window.kernel != kernel {
        return Err(format!("kernel_shape {:?} disagrees with W's spatial dims {kernel:?}", window.kernel));
    }
    windowed(window, input, kernel, false)
}

/// Geometry of a pooling window over spatial `input` dims.
pub fn pool_geometry(window: &Window, input: &[usize], ceil_mode: bool) -> Result<WindowGeometry, String> {
    if window.kernel.len() != input.len() {
        return Err(format!(
            "kernel_shape has {} dims but the input has {} spatial dims",
            window.kernel.len(),
            input.len()
        ));
    }
    windowed(window, input, &window.kernel, ceil_mode)
}

fn windowed(window: &Window, input: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<WindowGeometry, String> {
    let n = input.len();
    if kernel.len() != n {
        return Err(format!("kernel has {} dims but the input has {n} spatial dims", kernel.len()));
    }
    let (strides, dilations) = window_params(window, kernel)?;
    let (pads_begin, pads_end) = match &window.padding {
        Padding::Explicit(p) => explicit_pads(p, n)?,
        _ => same_pads(window, input, kernel, &strides, &dilations)?,
    };
    let mut output = vec![0; n];
    for i in 0..n {
        let padded = add(add(input[i], pads_begin[i])?, pads_end[i])?;
        let span = dilated_span(dilations[i], kernel[i])?;
        if padded < span {
            return Err(format!(
                "spatial dim {i}: the padded input ({} + {} + {} = {padded}) is smaller than the dilated kernel \
                 ({span}); expected a padded extent of at least {span}",
                input[i], pads_begin[i], pads_end[i]
            ));
        }
        let room = padded - span;
        let mut out = if ceil_mode { room.div_ceil(strides[i]) + 1 } else { room / strides[i] + 1 };
        // A last window starting inside the end padding covers no input;
        // onnxruntime and PyTorch drop it.
        if ceil_mode && out > 1 && (out - 1) * strides[i] >= input[i] + pads_begin[i] {
            out -= 1;
        }
        output[i] = out;
    }
    Ok(WindowGeometry { kernel: kernel.to_vec(), strides, dilations, pads_begin, pads_end, output })
}

/// Geometry of a transposed convolution (`output` is the transposed conv's
/// output extent; `pads_*` are the pads removed from the full result).
pub fn conv_transpose_geometry(
    window: &Window,
    input: &[usize],
    kernel: &[usize],
    output_padding: &[usize],
) -> Result<WindowGeometry, String> {
    let n = input.len();
    if !window.kernel.is_empty() && window.kernel != kernel {
        return Err(format!("kernel_shape {:?} disagrees with W's spatial dims {kernel:?}", window.kernel));
    }
    if kernel.len() != n {
        return Err(format!("W has {} spatial dims but X has {n}", kernel.len()));
    }
    let (strides, dilations) = window_params(window, kernel)?;
    let op = if output_padding.is_empty() { vec![0; n] } else { output_padding.to_vec() };
    if op.len() != n {
        return Err(format!("output_padding has {} entries but there are {n} spatial dims", op.len()));
    }
    for i in 0..n {
        if op[i] >= strides[i] && op[i] >= dilations[i] {
            return Err(format!(
                "output_padding[{i}] = {} must be smaller than the stride ({}) or the dilation ({})",
                op[i], strides[i], dilations[i]
            ));
        }
    }
    let full: Vec<usize> = (0..n)
        .map(|i| {
            let stretched = strides[i]
                .checked_mul(input[i].max(1) - 1)
                .ok_or_else(|| format!("window arithmetic overflows ({} · {})", strides[i], input[i] - 1))?;
            add(add(stretched, op[i])?, dilated_span(dilations[i], kernel[i])?)
        })
        .collect::<Result<_, String>>()?;
    let (pads_begin, pads_end) = match &window.padding {
        Padding::Explicit(p) => explicit_pads(p, n)?,
        pad => {
            // Target output d·s; the spec splits the total padding with the
            // smaller half at the beginning for SAME_UPPER.
            let (mut b, mut e) = (vec![0; n], vec![0; n]);
            for i in 0..n {
                let total = full[i].saturating_sub(input[i].saturating_mul(strides[i]));
                let small = total / 2;
                if *pad == Padding::SameUpper {
                    b[i] = small;
                    e[i] = total - small;
                } else {
                    b[i] = total - small;
                    e[i] = small;
                }
            }
            (b, e)
        }
    };
    let mut output = vec![0; n];
    for i in 0..n {
        let cut = add(pads_begin[i], pads_end[i])?;
        if full[i] <= cut {
            return Err(format!(
                "spatial dim {i}: pads {} + {} remove the whole output of extent {}",
                pads_begin[i], pads_end[i], full[i]
            ));
        }
        output[i] = full[i] - cut;
    }
    Ok(WindowGeometry { kernel: kernel.to_vec(), strides, dilations, pads_begin, pads_end, output })
}

/// One axis of a resolved slice: the first index, the element count and the step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SliceRange {
    pub start: i64,
    pub count: usize,
    pub step: i64,
}

/// Resolves ONNX Slice attributes against `dims`: one [`SliceRange`] per
/// dimension (untouched dims are `0..d` by 1).
pub fn slice_ranges(
    dims: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Result<Vec<SliceRange>, String> {
    let n = starts.len();
    if ends.len() != n {
        return Err(format!("starts has {n} entries but ends has {}; expected equal lengths", ends.len()));
    }
    if !axes.is_empty() && axes.len() != n {
        return Err(format!("axes has {} entries but starts has {n}; expected equal lengths", axes.len()));
    }
    if !steps.is_empty() && steps.len() != n {
        return Err(format!("steps has {} entries but starts has {n}; expected equal lengths", steps.len()));
    }
    let mut out: Vec<SliceRange> = dims.iter().map(|&d| SliceRange { start: 0, count: d, step: 1 }).collect();
    let mut seen = vec![false; dims.len()];
    for i in 0..n {
        let raw_axis = if axes.is_empty() { i as i64 } else { axes[i] };
        let axis = normalize_axis(raw_axis, dims.len())
            .ok_or_else(|| format!("axis {raw_axis} is out of range for rank {}", dims.len()))?;
        if std::mem::replace(&mut seen[axis], true) {
            return Err(format!("axis {raw_axis} is sliced twice"));
        }
        let step = if steps.is_empty() { 1 } else { steps[i] };
        if step == 0 {
            return Err(format!("step for axis {raw_axis} is 0; expected a non-zero step"));
        }
        let d = dims[axis] as i64;
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = (norm(starts[i]), norm(ends[i]));
        let (start, count) = if step > 0 {
            let (s, e) = (start.clamp(0, d), end.clamp(0, d));
            (s, if e > s { (e - s - 1) / step + 1 } else { 0 })
        } else {
            let (s, e) = (start.clamp(-1, d - 1), end.clamp(-1, d - 1));
            (s, if s > e { (s - e - 1) / (-step) + 1 } else { 0 })
        };
        out[axis] = SliceRange { start: start.max(0), count: count as usize, step };
    }
    Ok(out)
}

/// Inference context: the node, its op and its inputs, plus error helpers.
struct Cx<'a> {
    node: &'a str,
    op: &'a Op,
    inputs: &'a [Option<&'a TensorInfo>],
    constants: &'a [Option<&'a Tensor>],
}

type Outs = Result<Vec<(DType, Shape)>, GraphError>;

fn one(dtype: DType, dims: Vec<usize>) -> Outs {
    Ok(vec![(dtype, Shape(dims))])
}

impl<'a> Cx<'a> {
    fn err(&self, message: impl Into<String>) -> GraphError {
        GraphError::Shape { node: self.node.to_string(), op: self.op.name(), message: message.into() }
    }

    /// Checks the input count: `names.len()` inputs at most, the first
    /// `required` present.
    fn arity(&self, required: usize, names: &[&str]) -> Result<(), GraphError> {
        let n = self.inputs.len();
        if n < required || n > names.len() {
            let want =
                if required == names.len() { format!("{required}") } else { format!("{required} to {}", names.len()) };
            return Err(self.err(format!("has {n} inputs; expected {want} ({})", names.join(", "))));
        }
        for (i, name) in names.iter().enumerate().take(required) {
            if self.inputs[i].is_none() {
                return Err(self.err(format!("input {i} ({name}) is required but missing")));
            }
        }
        Ok(())
    }

    fn input(&self, i: usize, name: &str) -> Result<&'a TensorInfo, GraphError> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| self.err(format!("input {i} ({name}) is required but missing")))
    }

    fn optional(&self, i: usize) -> Option<&'a TensorInfo> {
        self.inputs.get(i).copied().flatten()
    }

    fn float(&self, i: usize, name: &str, t: &TensorInfo) -> Result<(), GraphError> {
        if !t.dtype.is_float() {
            return Err(
                self.err(format!("input {i} ({name}) has dtype {}; expected a float type (f32, f16, bf16)", t.dtype))
            );
        }
        Ok(())
    }

    fn numeric(&self, i: usize, name: &str, t: &TensorInfo) -> Result<(), GraphError> {
        if t.dtype == DType::Bool {
            return Err(self.err(format!("input {i} ({name}) has dtype bool; expected a numeric type")));
        }
        Ok(())
    }

    fn integer(&self, i: usize, name: &str, t: &TensorInfo) -> Result<(), GraphError> {
        if !t.dtype.is_int() {
            return Err(self.err(format!("input {i} ({name}) has dtype {}; expected an integer type", t.dtype)));
        }
        Ok(())
    }

    fn same_dtype(&self, i: usize, name: &str, t: &TensorInfo, want: DType, other: &str) -> Result<(), GraphError> {
        if t.dtype != want {
            return Err(
                self.err(format!("input {i} ({name}) has dtype {} but {other} has {want}; expected {want}", t.dtype))
            );
        }
        Ok(())
    }

    fn axis(&self, axis: i64, rank: usize, what: &str) -> Result<usize, GraphError> {
        normalize_axis(axis, rank).ok_or_else(|| {
            self.err(format!(
                "{what} {axis} is out of range for an input of rank {rank}; expected {} ..= {}",
                -(rank as i64),
                rank as i64 - 1
            ))
        })
    }

    /// Normalises a list of axes, refusing out-of-range and duplicated ones.
    fn axes(&self, axes: &[i64], rank: usize) -> Result<Vec<usize>, GraphError> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let n = self.axis(a, rank, "axis")?;
            if out.contains(&n) {
                return Err(self.err(format!("axis {a} appears twice in axes {axes:?}")));
            }
            out.push(n);
        }
        Ok(out)
    }

    fn infer(&self) -> Outs {
        match self.op {
            Op::Conv { window, groups } => self.conv(window, *groups),
            Op::ConvTranspose { window, groups, output_padding } => {
                self.conv_transpose(window, *groups, output_padding)
            }
            Op::BatchNormalization { .. } => self.batch_norm(),
            Op::Gemm { trans_a, trans_b, .. } => self.gemm(*trans_a, *trans_b),
            Op::MatMul => self.matmul(),
            Op::Unary(u) => self.unary(u),
            Op::Binary(b) => self.binary(*b),
            Op::Sum => self.sum(),
            Op::Where => self.where_(),
            Op::Cast { to } => {
                self.arity(1, &["input"])?;
                let x = self.input(0, "input")?;
                one(*to, x.shape.0.clone())
            }
            Op::BitCast { to } => {
                self.arity(1, &["input"])?;
                let x = self.input(0, "input")?;
                if x.dtype.size_bytes() != to.size_bytes() {
                    return Err(self.err(format!(
                        "input 0 (input) is {} ({} bytes) but `to` is {to} ({} bytes); expected types of one size",
                        x.dtype,
                        x.dtype.size_bytes(),
                        to.size_bytes()
                    )));
                }
                one(*to, x.shape.0.clone())
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                self.arity(1, &["input"])?;
                let x = self.input(0, "input")?;
                self.float(0, "input", x)?;
                if x.shape.rank() == 0 {
                    return Err(self.err("input 0 (input) is a scalar; expected rank at least 1"));
                }
                self.axis(*axis, x.shape.rank(), "axis")?;
                one(x.dtype, x.shape.0.clone())
            }
            Op::LayerNormalization { axis, .. } => self.layer_norm(*axis),
            Op::ReduceMean { axes, keepdims }
            | Op::ReduceSum { axes, keepdims }
            | Op::ReduceMax { axes, keepdims }
            | Op::ReduceMin { axes, keepdims }
            | Op::ReduceProd { axes, keepdims } => self.reduce(axes, *keepdims),
            Op::ArgMax { axis, keepdims, .. } | Op::ArgMin { axis, keepdims, .. } => {
                self.arity(1, &["data"])?;
                let x = self.input(0, "data")?;
                self.numeric(0, "data", x)?;
                if x.shape.rank() == 0 {
                    return Err(self.err("input 0 (data) is a scalar; expected rank at least 1"));
                }
                let a = self.axis(*axis, x.shape.rank(), "axis")?;
                if x.shape.dims()[a] == 0 {
                    return Err(self.err(format!(
                        "input 0 (data) has shape {}: axis {axis} is empty, so there is no index to return",
                        x.shape
                    )));
                }
                let mut out = x.shape.0.clone();
                if *keepdims {
                    out[a] = 1;
                } else {
                    out.remove(a);
                }
                one(DType::I64, out)
            }
            Op::MaxPool { window, ceil_mode } | Op::AveragePool { window, ceil_mode, .. } => {
                self.pool(window, *ceil_mode, matches!(self.op, Op::MaxPool { .. }))
            }
            Op::MaxPoolWithIndices { window, ceil_mode, column_major } => {
                let mut outs = self.pool(window, *ceil_mode, true)?;
                let shape = outs[0].1.clone();
                if *column_major && shape.rank() != 4 {
                    return Err(self.err("storage_order = 1 (column-major indices) is defined for 2-D pooling"));
                }
                outs.push((DType::I64, shape));
                Ok(outs)
            }
            Op::GlobalAveragePool | Op::GlobalMaxPool => {
                self.arity(1, &["X"])?;
                let x = self.input(0, "X")?;
                self.float(0, "X", x)?;
                let d = x.shape.dims();
                if d.len() < 3 {
                    return Err(
                        self.err(format!("input 0 (X) has shape {}; expected rank ≥ 3 [N, C, spatial…]", x.shape))
                    );
                }
                let mut out = d[..2].to_vec();
                out.resize(d.len(), 1);
                one(x.dtype, out)
            }
            Op::Lrn { size, .. } => {
                self.arity(1, &["X"])?;
                let x = self.input(0, "X")?;
                self.float(0, "X", x)?;
                if x.shape.rank() < 3 {
                    return Err(
                        self.err(format!("input 0 (X) has shape {}; expected rank ≥ 3 [N, C, spatial…]", x.shape))
                    );
                }
                if *size == 0 {
                    return Err(self.err("size is 0; expected at least 1"));
                }
                one(x.dtype, x.shape.0.clone())
            }
            Op::Concat { axis } => self.concat(*axis),
            Op::Split { axis, sizes } => self.split(*axis, sizes),
            Op::Reshape { shape, allow_zero } => self.reshape(shape, *allow_zero),
            Op::Flatten { axis } => {
                self.arity(1, &["input"])?;
                let x = self.input(0, "input")?;
                let r = x.shape.rank() as i64;
                let a = if *axis < 0 { axis + r } else { *axis };
                if !(0..=r).contains(&a) {
                    return Err(self.err(format!("axis {axis} is out of range for rank {r}; expected {} ..= {r}", -r)));
                }
                let d = x.shape.dims();
                let a = a as usize;
                one(x.dtype, vec![d[..a].iter().product(), d[a..].iter().product()])
            }
            Op::Transpose { perm } => self.transpose(perm),
            Op::Squeeze { axes } => self.squeeze(axes),
            Op::Unsqueeze { axes } => self.unsqueeze(axes),
            Op::Gather { axis } => self.gather(*axis),
            Op::GatherElements { axis } => self.gather_elements(*axis),
            Op::ScatterElements { axis, .. } => self.scatter_elements(*axis),
            Op::ScatterND { .. } => self.scatter_nd(),
            Op::GatherND { batch_dims } => self.gather_nd(*batch_dims),
            Op::TopK { axis, k, .. } => {
                self.arity(1, &["X"])?;
                let x = self.input(0, "X")?;
                self.numeric(0, "X", x)?;
                if x.shape.rank() == 0 {
                    return Err(self.err("input 0 (X) is a scalar; expected rank at least 1"));
                }
                let a = self.axis(*axis, x.shape.rank(), "axis")?;
                if *k > x.shape.dims()[a] {
                    return Err(self.err(format!(
                        "k = {k} but input 0 (X) {} has {} elements on axis {a}; expected k ≤ {}",
                        x.shape,
                        x.shape.dims()[a],
                        x.shape.dims()[a]
                    )));
                }
                let mut d = x.shape.0.clone();
                d[a] = *k;
                Ok(vec![(x.dtype, Shape(d.clone())), (DType::I64, Shape(d))])
            }
            Op::NonZero { count } => {
                self.arity(1, &["X"])?;
                let x = self.input(0, "X")?;
                let numel = x.shape.numel();
                if *count > numel {
                    return Err(self.err(format!(
                        "{count} nonzero elements were counted, but input 0 (X) {} has only {numel}",
                        x.shape
                    )));
                }
                one(DType::I64, vec![x.shape.rank(), *count])
            }
            Op::CumSum { axis, .. } | Op::CumProd { axis, .. } => {
                self.arity(1, &["x"])?;
                let x = self.input(0, "x")?;
                self.numeric(0, "x", x)?;
                if x.shape.rank() == 0 {
                    return Err(self.err("input 0 (x) is a scalar; expected rank at least 1"));
                }
                self.axis(*axis, x.shape.rank(), "axis")?;
                one(x.dtype, x.shape.0.clone())
            }
            Op::Resize { scales, mode, .. } => self.resize(scales, *mode),
            Op::Pad { pads, .. } => {
                self.arity(1, &["data"])?;
                let x = self.input(0, "data")?;
                let r = x.shape.rank();
                if pads.len() != 2 * r {
                    return Err(self.err(format!(
                        "pads has {} entries but the input has rank {r}; expected {} ([begin…, end…])",
                        pads.len(),
                        2 * r
                    )));
                }
                // Checked: pads near 2^63 would otherwise wrap to a small
                // shape and compute a wrong answer.
                let mut out = Vec::with_capacity(r);
                for (i, &d) in x.shape.dims().iter().enumerate() {
                    let padded = d.checked_add(pads[i]).and_then(|v| v.checked_add(pads[r + i]));
                    out.push(padded.ok_or_else(|| {
                        self.err(format!(
                            "padding axis {i} of size {d} by {} and {} overflows the size of a dimension",
                            pads[i],
                            pads[r + i]
                        ))
                    })?);
                }
                one(x.dtype, out)
            }
            Op::Slice { starts, ends, axes, steps } => {
                self.arity(1, &["data"])?;
                let x = self.input(0, "data")?;
                let ranges = slice_ranges(x.shape.dims(), starts, ends, axes, steps).map_err(|m| self.err(m))?;
                one(x.dtype, ranges.iter().map(|r| r.count).collect())
            }
            Op::Identity => {
                self.arity(1, &["input"])?;
                let x = self.input(0, "input")?;
                one(x.dtype, x.shape.0.clone())
            }
        }
    }

    fn conv(&self, window: &Window, groups: usize) -> Outs {
        self.arity(2, &["X", "W", "B"])?;
        let (x, w) = (self.input(0, "X")?, self.input(1, "W")?);
        // i32: the integer convolution the quantized ones compose to.
        if x.dtype != DType::I32 {
            self.float(0, "X", x)?;
        }
        self.same_dtype(1, "W", w, x.dtype, "X")?;
        let (xd, wd) = (x.shape.dims(), w.shape.dims());
        if xd.len() < 3 {
            return Err(self.err(format!("input 0 (X) has shape {}; expected rank ≥ 3 [N, C, spatial…]", x.shape)));
        }
        if wd.len() != xd.len() {
            return Err(self.err(format!(
                "input 1 (W) has shape {} (rank {}) but X has rank {}; expected W = [M, C/groups, k…] of rank {}",
                w.shape,
                wd.len(),
                xd.len(),
                xd.len()
            )));
        }
        if groups == 0 {
            return Err(self.err("group is 0; expected at least 1"));
        }
        let (c, m) = (xd[1], wd[0]);
        if c % groups != 0 {
            return Err(self.err(format!("X has {c} channels, not divisible by {groups} groups")));
        }
        if wd[1] * groups != c {
            return Err(self.err(format!(
                "input 1 (W) has {} input channels per group but X has {c} channels / {groups} group{}; expected \
                 W.shape[1] = {}",
                wd[1],
                if groups == 1 { "" } else { "s" },
                c / groups
            )));
        }
        if m % groups != 0 {
            return Err(self.err(format!(
                "input 1 (W) has {m} output channels, not divisible by {groups} groups; expected W.shape[0] a \
                 multiple of {groups}"
            )));
        }
        self.bias(2, w.dtype, m)?;
        let g = conv_geometry(window, &xd[2..], &wd[2..]).map_err(|e| self.err(e))?;
        let mut out = vec![xd[0], m];
        out.extend(g.output);
        one(x.dtype, out)
    }

    fn bias(&self, i: usize, dtype: DType, m: usize) -> Result<(), GraphError> {
        if let Some(b) = self.optional(i) {
            self.same_dtype(i, "B", b, dtype, "W")?;
            if b.shape.dims() != [m] {
                return Err(
                    self.err(format!("input {i} (B) has shape {}; expected [{m}] (one per output channel)", b.shape))
                );
            }
        }
        Ok(())
    }

    fn conv_transpose(&self, window: &Window, groups: usize, output_padding: &[usize]) -> Outs {
        self.arity(2, &["X", "W", "B"])?;
        let (x, w) = (self.input(0, "X")?, self.input(1, "W")?);
        self.float(0, "X", x)?;
        self.same_dtype(1, "W", w, x.dtype, "X")?;
        let (xd, wd) = (x.shape.dims(), w.shape.dims());
        if xd.len() < 3 {
            return Err(self.err(format!("input 0 (X) has shape {}; expected rank ≥ 3 [N, C, spatial…]", x.shape)));
        }
        if wd.len() != xd.len() {
            return Err(self.err(format!(
                "input 1 (W) has shape {} but X has rank {}; expected W = [C, M/groups, k…] of rank {}",
                w.shape,
                xd.len(),
                xd.len()
            )));
        }
        if groups == 0 {
            return Err(self.err("group is 0; expected at least 1"));
        }
        if wd[0] != xd[1] {
            return Err(self.err(format!(
                "input 1 (W) has shape {} but X has {} channels; expected W.shape[0] = {}",
                w.shape, xd[1], xd[1]
            )));
        }
        if xd[1] % groups != 0 {
            return Err(self.err(format!("X has {} channels, not divisible by {groups} groups", xd[1])));
        }
        let m = wd[1] * groups;
        self.bias(2, w.dtype, m)?;
        let g = conv_transpose_geometry(window, &xd[2..], &wd[2..], output_padding).map_err(|e| self.err(e))?;
        let mut out = vec![xd[0], m];
        out.extend(g.output);
        one(x.dtype, out)
    }

    fn batch_norm(&self) -> Outs {
        let names = ["X", "scale", "B", "input_mean", "input_var"];
        self.arity(5, &names)?;
        let x = self.input(0, "X")?;
        self.float(0, "X", x)?;
        if x.shape.rank() < 2 {
            return Err(self.err(format!("input 0 (X) has shape {}; expected rank ≥ 2 [N, C, …]", x.shape)));
        }
        let c = x.shape.dims()[1];
        for (i, name) in names.iter().enumerate().skip(1) {
            let p = self.input(i, name)?;
            self.float(i, name, p)?;
            if p.shape.dims() != [c] {
                return Err(self
                    .err(format!("input {i} ({name}) has shape {}; expected [{c}] (one per channel of X)", p.shape)));
            }
        }
        one(x.dtype, x.shape.0.clone())
    }

    fn gemm(&self, trans_a: bool, trans_b: bool) -> Outs {
        self.arity(2, &["A", "B", "C"])?;
        let (a, b) = (self.input(0, "A")?, self.input(1, "B")?);
        self.numeric(0, "A", a)?;
        self.same_dtype(1, "B", b, a.dtype, "A")?;
        for (i, name, t) in [(0, "A", a), (1, "B", b)] {
            if t.shape.rank() != 2 {
                return Err(self.err(format!("input {i} ({name}) has shape {}; expected rank 2", t.shape)));
            }
        }
        let (ad, bd) = (a.shape.dims(), b.shape.dims());
        let (m, ka) = if trans_a { (ad[1], ad[0]) } else { (ad[0], ad[1]) };
        let (kb, n) = if trans_b { (bd[1], bd[0]) } else { (bd[0], bd[1]) };
        if ka != kb {
            return Err(self.err(format!(
                "op(A) is {m}x{ka} (A {}, transA={}) but op(B) is {kb}x{n} (B {}, transB={}); expected the inner \
                 dims to agree",
                a.shape, trans_a as u8, b.shape, trans_b as u8
            )));
        }
        if let Some(c) = self.optional(2) {
            self.same_dtype(2, "C", c, a.dtype, "A")?;
            if !broadcasts_to(c.shape.dims(), &[m, n]) {
                return Err(
                    self.err(format!("input 2 (C) has shape {}; expected a shape broadcastable to [{m}x{n}]", c.shape))
                );
            }
        }
        one(a.dtype, vec![m, n])
    }

    fn matmul(&self) -> Outs {
        self.arity(2, &["A", "B"])?;
        let (a, b) = (self.input(0, "A")?, self.input(1, "B")?);
        self.numeric(0, "A", a)?;
        self.same_dtype(1, "B", b, a.dtype, "A")?;
        let (ad, bd) = (a.shape.dims(), b.shape.dims());
        if ad.is_empty() || bd.is_empty() {
            return Err(self.err(format!("A is {} and B is {}; expected both of rank ≥ 1", a.shape, b.shape)));
        }
        let ka = ad[ad.len() - 1];
        let kb = if bd.len() == 1 { bd[0] } else { bd[bd.len() - 2] };
        if ka != kb {
            return Err(self.err(format!(
                "A {} has inner dim {ka} but B {} has {kb}; expected A.shape[-1] = B.shape[-2]",
                a.shape, b.shape
            )));
        }
        let a_batch = if ad.len() > 2 { &ad[..ad.len() - 2] } else { &[][..] };
        let b_batch = if bd.len() > 2 { &bd[..bd.len() - 2] } else { &[][..] };
        let mut out = broadcast_shapes(a_batch, b_batch).ok_or_else(|| {
            self.err(format!(
                "batch dims {a_batch:?} of A {} and {b_batch:?} of B {} do not broadcast",
                a.shape, b.shape
            ))
        })?;
        if ad.len() >= 2 {
            out.push(ad[ad.len() - 2]);
        }
        if bd.len() >= 2 {
            out.push(bd[bd.len() - 1]);
        }
        one(a.dtype, out)
    }

    fn unary(&self, u: &UnaryOp) -> Outs {
        self.arity(1, &["X"])?;
        let x = self.input(0, "X")?;
        // ONNX allows signed integers for these; the rest are float-only.
        if *u == UnaryOp::Not {
            if x.dtype != DType::Bool {
                return Err(self.err(format!("input 0 (X) has dtype {}; expected bool", x.dtype)));
            }
        } else if *u == UnaryOp::BitwiseNot {
            self.integer(0, "X", x)?;
        } else if matches!(u, UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Clip { .. } | UnaryOp::Sign) {
            self.numeric(0, "X", x)?;
        } else {
            self.float(0, "X", x)?;
        }
        one(x.dtype, x.shape.0.clone())
    }

    fn binary(&self, b: BinaryOp) -> Outs {
        self.arity(2, &["A", "B"])?;
        let (x, y) = (self.input(0, "A")?, self.input(1, "B")?);
        if b.is_logical() {
            for (i, name, t) in [(0, "A", x), (1, "B", y)] {
                if t.dtype != DType::Bool {
                    return Err(self.err(format!("input {i} ({name}) has dtype {}; expected bool", t.dtype)));
                }
            }
        } else if b.is_bitwise() {
            self.integer(0, "A", x)?;
            self.integer(1, "B", y)?;
        } else if b != BinaryOp::Equal {
            self.numeric(0, "A", x)?;
            self.numeric(1, "B", y)?;
        }
        // Pow's exponent may have its own numeric type (ONNX T1).
        if b != BinaryOp::Pow {
            self.same_dtype(1, "B", y, x.dtype, "A")?;
        }
        let out = broadcast_shapes(x.shape.dims(), y.shape.dims()).ok_or_else(|| {
            self.err(format!(
                "shapes {} and {} do not broadcast (numpy rules: trailing dims equal or 1)",
                x.shape, y.shape
            ))
        })?;
        let dtype = if b.is_comparison() { DType::Bool } else { x.dtype };
        one(dtype, out)
    }

    fn sum(&self) -> Outs {
        if self.inputs.is_empty() {
            return Err(self.err("has no inputs; expected at least 1"));
        }
        let first = self.input(0, "data_0")?;
        self.float(0, "data_0", first)?;
        let mut out = first.shape.0.clone();
        for i in 1..self.inputs.len() {
            let name = format!("data_{i}");
            let t = self.input(i, &name)?;
            self.same_dtype(i, &name, t, first.dtype, "data_0")?;
            out = broadcast_shapes(&out, t.shape.dims()).ok_or_else(|| {
                self.err(format!(
                    "input {i} ({name}) has shape {} which does not broadcast with {}",
                    t.shape,
                    Shape(out.clone())
                ))
            })?;
        }
        one(first.dtype, out)
    }

    fn where_(&self) -> Outs {
        self.arity(3, &["condition", "X", "Y"])?;
        let (c, x, y) = (self.input(0, "condition")?, self.input(1, "X")?, self.input(2, "Y")?);
        if c.dtype != DType::Bool {
            return Err(self.err(format!("input 0 (condition) has dtype {}; expected bool", c.dtype)));
        }
        self.same_dtype(2, "Y", y, x.dtype, "X")?;
        let out = broadcast_shapes(c.shape.dims(), x.shape.dims())
            .and_then(|s| broadcast_shapes(&s, y.shape.dims()))
            .ok_or_else(|| {
            self.err(format!("shapes {} (condition), {} (X) and {} (Y) do not broadcast", c.shape, x.shape, y.shape))
        })?;
        one(x.dtype, out)
    }

    fn layer_norm(&self, axis: i64) -> Outs {
        self.arity(2, &["X", "Scale", "B"])?;
        let (x, s) = (self.input(0, "X")?, self.input(1, "Scale")?);
        self.float(0, "X", x)?;
        self.same_dtype(1, "Scale", s, x.dtype, "X")?;
        if x.shape.rank() == 0 {
            return Err(self.err("input 0 (X) is a scalar; expected rank at least 1"));
        }
        let a = self.axis(axis, x.shape.rank(), "axis")?;
        let norm = &x.shape.dims()[a..];
        let check = |i: usize, name: &str, t: &TensorInfo| -> Result<(), GraphError> {
            if !broadcasts_to(t.shape.dims(), norm) {
                return Err(self.err(format!(
                    "input {i} ({name}) has shape {}; expected a shape broadcastable to X.shape[{a}..] = {}",
                    t.shape,
                    Shape(norm.to_vec())
                )));
            }
            Ok(())
        };
        check(1, "Scale", s)?;
        if let Some(b) = self.optional(2) {
            self.same_dtype(2, "B", b, x.dtype, "X")?;
            check(2, "B", b)?;
        }
        one(x.dtype, x.shape.0.clone())
    }

    fn reduce(&self, axes: &[i64], keepdims: bool) -> Outs {
        self.arity(1, &["data"])?;
        let x = self.input(0, "data")?;
        self.numeric(0, "data", x)?;
        let r = x.shape.rank();
        let axes = if axes.is_empty() { (0..r).collect() } else { self.axes(axes, r)? };
        let mut out = Vec::new();
        for (i, &d) in x.shape.dims().iter().enumerate() {
            if !axes.contains(&i) {
                out.push(d);
            } else if keepdims {
                out.push(1);
            }
        }
        one(x.dtype, out)
    }

    fn pool(&self, window: &Window, ceil_mode: bool, max: bool) -> Outs {
        self.arity(1, &["X"])?;
        let x = self.input(0, "X")?;
        // MaxPool takes 8-bit integers too.
        if !(max && matches!(x.dtype, DType::I8 | DType::U8)) {
            self.float(0, "X", x)?;
        }
        let xd = x.shape.dims();
        if xd.len() < 3 {
            return Err(self.err(format!("input 0 (X) has shape {}; expected rank ≥ 3 [N, C, spatial…]", x.shape)));
        }
        let g = pool_geometry(window, &xd[2..], ceil_mode).map_err(|e| self.err(e))?;
        let mut out = xd[..2].to_vec();
        out.extend(g.output);
        one(x.dtype, out)
    }

    fn concat(&self, axis: i64) -> Outs {
        if self.inputs.is_empty() {
            return Err(self.err("has no inputs; expected at least 1"));
        }
        let first = self.input(0, "inputs_0")?;
        let r = first.shape.rank();
        if r == 0 {
            return Err(self.err("input 0 is a scalar; expected rank at least 1"));
        }
        let a = self.axis(axis, r, "axis")?;
        let mut out = first.shape.0.clone();
        for i in 1..self.inputs.len() {
            let name = format!("inputs_{i}");
            let t = self.input(i, &name)?;
            self.same_dtype(i, &name, t, first.dtype, "input 0")?;
            let d = t.shape.dims();
            if d.len() != r || d.iter().enumerate().any(|(j, &v)| j != a && v != first.shape.0[j]) {
                return Err(self.err(format!(
                    "input {i} has shape {} but input 0 has {}; expected equal dims except on axis {a}",
                    t.shape, first.shape
                )));
            }
            out[a] += d[a];
        }
        one(first.dtype, out)
    }

    fn split(&self, axis: i64, sizes: &[usize]) -> Outs {
        self.arity(1, &["input"])?;
        let x = self.input(0, "input")?;
        if x.shape.rank() == 0 {
            return Err(self.err("input 0 is a scalar; expected rank at least 1"));
        }
        let a = self.axis(axis, x.shape.rank(), "axis")?;
        if sizes.is_empty() {
            return Err(self.err("split has no sizes; expected one size per output"));
        }
        let total: usize = sizes.iter().sum();
        if total != x.shape.0[a] {
            return Err(self.err(format!(
                "split sizes {sizes:?} sum to {total} but the input {} has {} on axis {a}; expected them to sum to {}",
                x.shape, x.shape.0[a], x.shape.0[a]
            )));
        }
        Ok(sizes
            .iter()
            .map(|&s| {
                let mut d = x.shape.0.clone();
                d[a] = s;
                (x.dtype, Shape(d))
            })
            .collect())
    }

    fn reshape(&self, shape: &[i64], allow_zero: bool) -> Outs {
        self.arity(1, &["data"])?;
        let x = self.input(0, "data")?;
        let xd = x.shape.dims();
        let mut out = Vec::with_capacity(shape.len());
        let mut infer_at = None;
        for (i, &s) in shape.iter().enumerate() {
            match s {
                -1 => {
                    if infer_at.replace(i).is_some() {
                        return Err(self.err(format!("shape {shape:?} has more than one -1; expected at most one")));
                    }
                    out.push(1);
                }
                0 if !allow_zero => {
                    let d = xd.get(i).ok_or_else(|| {
                        self.err(format!(
                            "shape {shape:?} copies dim {i} (0) but the input {} has rank {}",
                            x.shape,
                            xd.len()
                        ))
                    })?;
                    out.push(*d);
                }
                s if s < 0 => {
                    return Err(self.err(format!("shape {shape:?} has {s}; expected dims ≥ 0 or a single -1")));
                }
                s => out.push(s as usize),
            }
        }
        let numel = x.shape.numel();
        if let Some(i) = infer_at {
            let known: usize = out.iter().product();
            if allow_zero && shape.contains(&0) {
                return Err(self.err(format!("shape {shape:?} has both -1 and 0 with allowzero=1; ONNX forbids it")));
            }
            if known == 0 || numel % known != 0 {
                return Err(self.err(format!(
                    "cannot infer the -1 of shape {shape:?}: the input {} has {numel} elements, not a multiple of {known}",
                    x.shape
                )));
            }
            out[i] = numel / known;
        }
        if out.iter().product::<usize>() != numel {
            return Err(self.err(format!(
                "shape {shape:?} resolves to {} with {} elements but the input {} has {numel}; expected equal counts",
                Shape(out.clone()),
                out.iter().product::<usize>(),
                x.shape
            )));
        }
        one(x.dtype, out)
    }

    fn transpose(&self, perm: &[usize]) -> Outs {
        self.arity(1, &["data"])?;
        let x = self.input(0, "data")?;
        let r = x.shape.rank();
        let perm: Vec<usize> = if perm.is_empty() { (0..r).rev().collect() } else { perm.to_vec() };
        let mut seen = vec![false; r];
        let valid = perm.len() == r && perm.iter().all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(self.err(format!("perm {perm:?} is not a permutation of 0..{r} (input {})", x.shape)));
        }
        one(x.dtype, perm.iter().map(|&p| x.shape.0[p]).collect())
    }

    fn squeeze(&self, axes: &[i64]) -> Outs {
        self.arity(1, &["data"])?;
        let x = self.input(0, "data")?;
        let d = x.shape.dims();
        let axes =
            if axes.is_empty() { (0..d.len()).filter(|&i| d[i] == 1).collect() } else { self.axes(axes, d.len())? };
        for &a in &axes {
            if d[a] != 1 {
                return Err(
                    self.err(format!("cannot squeeze axis {a} of {}: its size is {}, expected 1", x.shape, d[a]))
                );
            }
        }
        one(x.dtype, d.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &v)| v).collect())
    }

    fn unsqueeze(&self, axes: &[i64]) -> Outs {
        self.arity(1, &["data"])?;
        let x = self.input(0, "data")?;
        let r = x.shape.rank() + axes.len();
        let axes = self.axes(axes, r)?;
        let mut rest = x.shape.dims().iter();
        let out = (0..r).map(|i| if axes.contains(&i) { 1 } else { *rest.next().unwrap_or(&1) }).collect();
        one(x.dtype, out)
    }

    fn gather(&self, axis: i64) -> Outs {
        self.arity(2, &["data", "indices"])?;
        let (x, idx) = (self.input(0, "data")?, self.input(1, "indices")?);
        if !matches!(idx.dtype, DType::I32 | DType::I64) {
            return Err(self.err(format!("input 1 (indices) has dtype {}; expected i32 or i64", idx.dtype)));
        }
        if x.shape.rank() == 0 {
            return Err(self.err("input 0 (data) is a scalar; expected rank at least 1"));
        }
        let a = self.axis(axis, x.shape.rank(), "axis")?;
        let d = x.shape.0[a] as i64;
        self.constant_indices_in_range(a, d, &x.shape)?;
        let mut out = x.shape.0[..a].to_vec();
        out.extend_from_slice(idx.shape.dims());
        out.extend_from_slice(&x.shape.0[a + 1..]);
        one(x.dtype, out)
    }

    /// A constant `indices` input (input 1) must index axis `a` of size `d`
    /// of data shaped `data` (negative indices count from the end).
    fn constant_indices_in_range(&self, a: usize, d: i64, data: &Shape) -> Result<(), GraphError> {
        if let Some(values) = self.constants.get(1).copied().flatten().and_then(|t| t.as_i64s()) {
            if let Some(bad) = values.iter().find(|&&v| v < -d || v >= d) {
                return Err(self.err(format!(
                    "index {bad} is out of range for axis {a} of size {d} (data {data}); expected {} ..= {}",
                    -d,
                    d - 1
                )));
            }
        }
        Ok(())
    }

    fn int_indices(&self, idx: &TensorInfo) -> Result<(), GraphError> {
        if !matches!(idx.dtype, DType::I32 | DType::I64) {
            return Err(self.err(format!("input 1 (indices) has dtype {}; expected i32 or i64", idx.dtype)));
        }
        Ok(())
    }

    fn scatter_elements(&self, axis: i64) -> Outs {
        self.arity(3, &["data", "indices", "updates"])?;
        let (x, idx, upd) = (self.input(0, "data")?, self.input(1, "indices")?, self.input(2, "updates")?);
        self.int_indices(idx)?;
        let r = x.shape.rank();
        if r == 0 {
            return Err(self.err("input 0 (data) is a scalar; expected rank at least 1"));
        }
        if idx.shape.rank() != r {
            return Err(
                self.err(format!("input 1 (indices) has shape {}; expected rank {r} like data {}", idx.shape, x.shape))
            );
        }
        if upd.shape != idx.shape || upd.dtype != x.dtype {
            return Err(self.err(format!(
                "input 2 (updates) is {} {}; expected the indices' shape {} and data's type {}",
                upd.dtype, upd.shape, idx.shape, x.dtype
            )));
        }
        let a = self.axis(axis, r, "axis")?;
        if let Some(k) = (0..r).find(|&k| k != a && idx.shape.dims()[k] > x.shape.dims()[k]) {
            return Err(self.err(format!(
                "input 1 (indices) has shape {}: dimension {k} is larger than data's {}",
                idx.shape, x.shape
            )));
        }
        self.constant_indices_in_range(a, x.shape.dims()[a] as i64, &x.shape)?;
        one(x.dtype, x.shape.0.clone())
    }

    /// The `K` of ND indices `[…, K]` into data of rank `r` from dimension
    /// `from`, checking constant tuples index in range.
    fn nd_depth(&self, idx: &TensorInfo, data: &Shape, from: usize) -> Result<usize, GraphError> {
        self.int_indices(idx)?;
        let Some(&k) = idx.shape.dims().last() else {
            return Err(self.err("input 1 (indices) is a scalar; expected rank at least 1"));
        };
        if from + k > data.rank() || k == 0 {
            return Err(self.err(format!(
                "input 1 (indices) has shape {}: tuples of {k} do not index data {} after {from} batch dims",
                idx.shape, data
            )));
        }
        if let Some(values) = self.constants.get(1).copied().flatten().and_then(|t| t.as_i64s()) {
            for (p, &v) in values.iter().enumerate() {
                let t = p % k;
                let d = data.dims()[from + t] as i64;
                if v < -d || v >= d {
                    return Err(self.err(format!(
                        "index {v} is out of range for axis {} of size {d} (data {data}); expected {} ..= {}",
                        from + t,
                        -d,
                        d - 1
                    )));
                }
            }
        }
        Ok(k)
    }

    fn scatter_nd(&self) -> Outs {
        self.arity(3, &["data", "indices", "updates"])?;
        let (x, idx, upd) = (self.input(0, "data")?, self.input(1, "indices")?, self.input(2, "updates")?);
        let k = self.nd_depth(idx, &x.shape, 0)?;
        let q = idx.shape.rank();
        let mut want = idx.shape.dims()[..q - 1].to_vec();
        want.extend_from_slice(&x.shape.dims()[k..]);
        if upd.shape.dims() != want.as_slice() || upd.dtype != x.dtype {
            return Err(self.err(format!(
                "input 2 (updates) is {} {}; expected {} {}",
                upd.dtype,
                upd.shape,
                x.dtype,
                Shape(want)
            )));
        }
        one(x.dtype, x.shape.0.clone())
    }

    fn gather_nd(&self, batch_dims: usize) -> Outs {
        self.arity(2, &["data", "indices"])?;
        let (x, idx) = (self.input(0, "data")?, self.input(1, "indices")?);
        let q = idx.shape.rank();
        if batch_dims >= q || batch_dims >= x.shape.rank() {
            return Err(self.err(format!(
                "batch_dims {batch_dims} needs indices ({}) and data ({}) of higher rank",
                idx.shape, x.shape
            )));
        }
        if idx.shape.dims()[..batch_dims] != x.shape.dims()[..batch_dims] {
            return Err(
                self.err(format!("the first {batch_dims} dims of indices {} and data {} differ", idx.shape, x.shape))
            );
        }
        let k = self.nd_depth(idx, &x.shape, batch_dims)?;
        let mut out = idx.shape.dims()[..q - 1].to_vec();
        out.extend_from_slice(&x.shape.dims()[batch_dims + k..]);
        one(x.dtype, out)
    }

    fn gather_elements(&self, axis: i64) -> Outs {
        self.arity(2, &["data", "indices"])?;
        let (x, idx) = (self.input(0, "data")?, self.input(1, "indices")?);
        if !matches!(idx.dtype, DType::I32 | DType::I64) {
            return Err(self.err(format!("input 1 (indices) has dtype {}; expected i32 or i64", idx.dtype)));
        }
        let r = x.shape.rank();
        if r == 0 {
            return Err(self.err("input 0 (data) is a scalar; expected rank at least 1"));
        }
        if idx.shape.rank() != r {
            return Err(self.err(format!(
                "input 1 (indices) has shape {} but data has shape {}; expected the same rank",
                idx.shape, x.shape
            )));
        }
        let a = self.axis(axis, r, "axis")?;
        if let Some(k) = (0..r).find(|&k| k != a && idx.shape.0[k] > x.shape.0[k]) {
            return Err(self.err(format!(
                "indices {} exceed data {} in dimension {k}; expected at most data's size off the axis",
                idx.shape, x.shape
            )));
        }
        let d = x.shape.0[a] as i64;
        if idx.shape.numel() > 0 && d == 0 {
            return Err(self.err(format!("axis {a} of data {} is empty: there is nothing to gather", x.shape)));
        }
        self.constant_indices_in_range(a, d, &x.shape)?;
        one(x.dtype, idx.shape.0.clone())
    }

    fn resize(&self, scales: &[f32], mode: ResizeMode) -> Outs {
        self.arity(1, &["X"])?;
        let x = self.input(0, "X")?;
        if mode != ResizeMode::Nearest {
            self.numeric(0, "X", x)?;
        }
        let d = x.shape.dims();
        if scales.len() != d.len() {
            return Err(self.err(format!(
                "scales has {} entries but X {} has rank {}; expected one scale per dim",
                scales.len(),
                x.shape,
                d.len()
            )));
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(self.err(format!("scale {s} is not a positive finite number")));
        }
        one(x.dtype, resize_output(d, scales))
    }
}

/// Output dims of Resize: `floor(d · scale)`, multiplied in `f32` as
/// onnxruntime does so that scales resolved from sizes round back to them.
pub fn resize_output(dims: &[usize], scales: &[f32]) -> Vec<usize> {
    dims.iter().zip(scales).map(|(&d, &s)| ((d as f32) * s).floor().max(0.0) as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dtype: DType, dims: &[usize]) -> TensorInfo {
        TensorInfo { name: String::new(), dtype, shape: Shape(dims.to_vec()) }
    }

    fn run(op: Op, ins: &[TensorInfo]) -> Result<Vec<(DType, Shape)>, GraphError> {
        let refs: Vec<Option<&TensorInfo>> = ins.iter().map(Some).collect();
        infer_node("n", &op, &refs, &vec![None; ins.len()])
    }

    fn win(k: &[usize], s: &[usize], p: Padding) -> Window {
        Window { kernel: k.to_vec(), strides: s.to_vec(), dilations: vec![], padding: p }
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shapes(&[2, 3], &[4]), None);
        assert!(broadcasts_to(&[3], &[2, 3]));
        assert!(!broadcasts_to(&[2, 3], &[3]));
    }

    #[test]
    fn conv_same_and_strided() {
        let x = info(DType::F32, &[1, 3, 7, 7]);
        let w = info(DType::F32, &[8, 3, 3, 3]);
        let op = Op::Conv { window: win(&[3, 3], &[2, 2], Padding::SameUpper), groups: 1 };
        assert_eq!(run(op, &[x.clone(), w.clone()]).unwrap()[0].1, Shape(vec![1, 8, 4, 4]));
        let op = Op::Conv { window: win(&[], &[2, 2], Padding::Explicit(vec![1, 1, 1, 1])), groups: 1 };
        assert_eq!(run(op, &[x, w]).unwrap()[0].1, Shape(vec![1, 8, 4, 4]));
    }

    #[test]
    fn conv_channel_mismatch_names_node() {
        let x = info(DType::F32, &[1, 3, 8, 8]);
        let w = info(DType::F32, &[16, 64, 3, 3]);
        let op = Op::Conv { window: win(&[3, 3], &[], Padding::Explicit(vec![])), groups: 1 };
        let e = run(op, &[x, w]).unwrap_err().to_string();
        assert!(e.contains("node `n` (Conv)") && e.contains("expected W.shape[1] = 3"), "{e}");
    }

    #[test]
    fn pool_ceil_mode_drops_window_in_padding() {
        let g = pool_geometry(&win(&[3], &[2], Padding::Explicit(vec![0, 0])), &[6], true).unwrap();
        assert_eq!(g.output, vec![3]);
        let g = pool_geometry(&win(&[2], &[2], Padding::Explicit(vec![1, 1])), &[4], true).unwrap();
        // ceil((4+2-2)/2)+1 = 3; the third window starts at 4 - 1 = 3 < 4 + 1, kept.
        assert_eq!(g.output, vec![3]);
    }

    #[test]
    fn slice_negative_step() {
        let r = slice_ranges(&[5], &[-1], &[i64::MIN], &[], &[-2]).unwrap();
        assert_eq!(r[0], SliceRange { start: 4, count: 3, step: -2 });
        let r = slice_ranges(&[5], &[1], &[i64::MAX], &[0], &[1]).unwrap();
        assert_eq!(r[0].count, 4);
    }
}
