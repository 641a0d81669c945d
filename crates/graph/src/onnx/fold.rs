//! Import-time constant folding with ONNX semantics.
//!
//! Exported models compute shapes at run time: `Shape → Gather → Unsqueeze →
//! Concat → Reshape`, `ConstantOfShape`, `Range`, `Expand` of constants, casts
//! of shape vectors. weft's shapes are static, so the importer evaluates every
//! node whose inputs are all known here, on ONNX's own semantics (operators
//! such as `Shape` or `Range` have no [`Op`](crate::Op) at all), and only the
//! values that real computation consumes reach the graph.
//!
//! This folder covers the data-movement and small arithmetic operators that
//! shape subgraphs use; it is not a general evaluator. An all-constant node of
//! another kind (say a `Transpose` of a weight) is converted to its [`Op`]
//! and evaluated by the reference evaluator's `eval_node` as it is emitted
//! (see `Importer::emit`), so the graph carries the result as a weight.
//! [`fold`] returns `None` for those.
//!
//! [`Op`]: crate::Op

use super::attrs::Attrs;
use super::error::ImportError;
use super::tensor::dtype_of;
use crate::dtype::DType;
use crate::tensor::{Shape, Tensor, TensorData};

/// What folding needs to know about the node.
pub struct FoldNode<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    pub opset: i64,
    pub attrs: Attrs<'a>,
    /// The most elements a folded tensor may have.
    pub max_elements: usize,
    /// The import's memory budget: what it holds so far and its limit.
    pub budget: &'a crate::memory::Budget,
}

impl FoldNode<'_> {
    fn err(&self, message: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.to_string(), op_type: self.op_type.to_string(), message: message.into() }
    }

    /// Refuses an output of `dims` beyond the element limit, before it is built.
    /// Folding holds up to [`EVAL_BYTES_PER_ELEMENT`](crate::memory::EVAL_BYTES_PER_ELEMENT)
    /// per element while it works, which must fit the memory budget too.
    fn check_size(&self, dims: &[usize]) -> Result<(), ImportError> {
        super::tensor::check_elements(|| format!("node `{}` ({})", self.name, self.op_type), dims, self.max_elements)?;
        let bytes = crate::memory::tensor_bytes(dims, crate::memory::EVAL_BYTES_PER_ELEMENT);
        self.budget.check(
            || format!("folding node `{}` ({}) to shape {}", self.name, self.op_type, Shape(dims.to_vec())),
            self.name,
            bytes,
        )?;
        Ok(())
    }
}

/// Evaluates `node` on constant `inputs` (`None` for an omitted optional
/// input). `Ok(None)` when this folder does not know the operator.
pub fn fold(node: &FoldNode<'_>, inputs: &[Option<&Tensor>]) -> Result<Option<Vec<Tensor>>, ImportError> {
    let input = |i: usize| -> Result<&Tensor, ImportError> {
        inputs.get(i).copied().flatten().ok_or_else(|| node.err(format!("input {i} is missing")))
    };
    let ints = |i: usize| -> Result<Vec<i64>, ImportError> {
        input(i)?.as_i64s().ok_or_else(|| node.err(format!("input {i} must be an integer tensor")))
    };
    let out = match node.op_type {
        "Identity" | "Dropout" => input(0)?.clone(),
        "Cast" => {
            let to = node.attrs.int("to", node.name)?.ok_or_else(|| node.err("attribute `to` is missing"))?;
            let dtype = dtype_of(to as i32).map_err(|m| node.err(m))?;
            cast(input(0)?, dtype)
        }
        "ConstantOfShape" => {
            let dims = to_dims(node, &ints(0)?)?;
            let value = match node.attrs.tensor("value", node.name)? {
                Some(t) => super::tensor::tensor_from_proto(t)?,
                None => Tensor::f32(Shape::scalar(), vec![0.0]),
            };
            node.check_size(&dims)?;
            if value.data.is_empty() {
                return Err(node.err("attribute `value` is empty"));
            }
            let n: usize = dims.iter().product();
            let idx = vec![0usize; n];
            Tensor { dtype: value.dtype, shape: Shape(dims), data: take(&value.data, &idx) }
        }
        "Range" => {
            let (start, limit, delta) = (input(0)?, input(1)?, input(2)?);
            let scalar = |t: &Tensor, what: &str| {
                t.to_f64().first().copied().ok_or_else(|| node.err(format!("{what} is empty")))
            };
            let (s, l, d) = (scalar(start, "start")?, scalar(limit, "limit")?, scalar(delta, "delta")?);
            if d == 0.0 || !d.is_finite() {
                return Err(node.err(format!("delta is {d}")));
            }
            // Saturates to usize::MAX for an infinite or huge count.
            let n = ((l - s) / d).ceil().max(0.0) as usize;
            node.check_size(&[n])?;
            let vals: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
            from_f64(start.dtype, Shape(vec![n]), &vals)
        }
        "Expand" => {
            let x = input(0)?;
            let target = to_dims(node, &ints(1)?)?;
            let shape = broadcast(x.shape.dims(), &target)
                .ok_or_else(|| node.err(format!("cannot broadcast {} to {}", x.shape, Shape(target.clone()))))?;
            node.check_size(&shape)?;
            let idx = broadcast_index(x.shape.dims(), &shape);
            Tensor { dtype: x.dtype, shape: Shape(shape), data: take(&x.data, &idx) }
        }
        "Gather" => {
            let (data, indices) = (input(0)?, input(1)?);
            let idxs = ints(1)?;
            let rank = data.shape.rank();
            let axis = norm_axis(node, node.attrs.int("axis", node.name)?.unwrap_or(0), rank)?;
            let dims = data.shape.dims();
            if rank == 0 {
                return Err(node.err("cannot gather from a scalar"));
            }
            let mut shape = dims[..axis].to_vec();
            shape.extend_from_slice(indices.shape.dims());
            shape.extend_from_slice(&dims[axis + 1..]);
            node.check_size(&shape)?;
            let outer: usize = dims[..axis].iter().product();
            let inner: usize = dims[axis + 1..].iter().product();
            let mut idx = Vec::with_capacity(outer * idxs.len() * inner);
            for o in 0..outer {
                for &g in &idxs {
                    let g = if g < 0 { g + dims[axis] as i64 } else { g };
                    if g < 0 || g >= dims[axis] as i64 {
                        return Err(node.err(format!("index {g} out of range for axis of size {}", dims[axis])));
                    }
                    for i in 0..inner {
                        idx.push((o * dims[axis] + g as usize) * inner + i);
                    }
                }
            }
            Tensor { dtype: data.dtype, shape: Shape(shape), data: take(&data.data, &idx) }
        }
        "Concat" => {
            let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
            let first = parts.first().ok_or_else(|| node.err("no inputs"))?;
            let rank = first.shape.rank();
            if rank == 0 {
                return Err(node.err("cannot concatenate scalars"));
            }
            let axis_attr =
                node.attrs.int("axis", node.name)?.ok_or_else(|| node.err("attribute `axis` is missing"))?;
            let axis = norm_axis(node, axis_attr, rank)?;
            let dims = first.shape.dims();
            let outer: usize = dims[..axis].iter().product();
            let mut out_dims = dims.to_vec();
            out_dims[axis] = 0;
            for p in &parts {
                if p.shape.rank() != rank || p.dtype != first.dtype {
                    return Err(node.err("inputs differ in rank or dtype"));
                }
                let (p_dims, f_dims) = (p.shape.dims(), first.shape.dims());
                if (0..rank).any(|k| k != axis && p_dims[k] != f_dims[k]) {
                    return Err(node.err(format!("inputs {} and {} differ off axis {axis}", first.shape, p.shape)));
                }
                out_dims[axis] = out_dims[axis].saturating_add(p_dims[axis]);
            }
            node.check_size(&out_dims)?;
            // Interleave each input's rows of the outer loop, by dtype.
            let mut pieces: Vec<TensorData> = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let row: usize = p.shape.dims()[axis..].iter().product();
                    let idx: Vec<usize> = (o * row..(o + 1) * row).collect();
                    pieces.push(take(&p.data, &idx));
                }
            }
            Tensor { dtype: first.dtype, shape: Shape(out_dims), data: concat_data(first.dtype, pieces) }
        }
        "Unsqueeze" | "Squeeze" => {
            let x = input(0)?;
            let axes = if node.opset >= 13 {
                match inputs.get(1).copied().flatten() {
                    Some(t) => Some(t.as_i64s().ok_or_else(|| node.err("axes must be integers"))?),
                    None => None,
                }
            } else {
                node.attrs.ints("axes", node.name)?
            };
            let dims = if node.op_type == "Unsqueeze" {
                unsqueeze_dims(node, x.shape.dims(), &axes.ok_or_else(|| node.err("axes are missing"))?)?
            } else {
                squeeze_dims(node, x.shape.dims(), axes.as_deref())?
            };
            Tensor { dtype: x.dtype, shape: Shape(dims), data: x.data.clone() }
        }
        "Reshape" => {
            let x = input(0)?;
            let allow_zero = node.attrs.int("allowzero", node.name)?.unwrap_or(0) != 0;
            let dims = reshape_dims(node, x.shape.dims(), &ints(1)?, allow_zero)?;
            Tensor { dtype: x.dtype, shape: Shape(dims), data: x.data.clone() }
        }
        "Slice" => {
            let x = input(0)?;
            let (starts, ends, axes, steps) = if node.opset >= 10 {
                let opt = |i: usize| -> Result<Option<Vec<i64>>, ImportError> {
                    match inputs.get(i).copied().flatten() {
                        Some(t) => t.as_i64s().map(Some).ok_or_else(|| node.err(format!("input {i} must be integers"))),
                        None => Ok(None),
                    }
                };
                (ints(1)?, ints(2)?, opt(3)?, opt(4)?)
            } else {
                let a = |n: &str| node.attrs.ints(n, node.name);
                (a("starts")?.unwrap_or_default(), a("ends")?.unwrap_or_default(), a("axes")?, None)
            };
            let s = resolve_slice(node, x.shape.dims(), &starts, &ends, axes.as_deref(), steps.as_deref())?;
            let (shape, idx) = slice_index(x.shape.dims(), &s);
            Tensor { dtype: x.dtype, shape: Shape(shape), data: take(&x.data, &idx) }
        }
        "Add" | "Sub" | "Mul" | "Div" | "Equal" | "Less" | "Greater" | "Max" | "Min" | "Pow" if inputs.len() == 2 => {
            binary(node, input(0)?, input(1)?)?
        }
        "Where" => {
            let (c, a, b) = (input(0)?, input(1)?, input(2)?);
            let s1 = broadcast(c.shape.dims(), a.shape.dims());
            let shape =
                s1.and_then(|s| broadcast(&s, b.shape.dims())).ok_or_else(|| node.err("inputs do not broadcast"))?;
            node.check_size(&shape)?;
            let (ci, ai, bi) = (
                broadcast_index(c.shape.dims(), &shape),
                broadcast_index(a.shape.dims(), &shape),
                broadcast_index(b.shape.dims(), &shape),
            );
            let cv = c.to_f64();
            let (av, bv) = (a.to_f64(), b.to_f64());
            let vals: Vec<f64> = (0..ci.len()).map(|i| if cv[ci[i]] != 0.0 { av[ai[i]] } else { bv[bi[i]] }).collect();
            // Integers round-trip through f64 exactly at shape magnitudes;
            // the large sentinels (INT64_MAX) saturate back to themselves.
            from_f64(a.dtype, Shape(shape), &vals)
        }
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => window_function(node, input(0)?)?,
        "EyeLike" => {
            let x = input(0)?;
            eye_like(node, x.shape.dims(), x.dtype)?
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

/// HannWindow, HammingWindow and BlackmanWindow of the scalar `size`: the
/// cosine sums ONNX defines, `a0 − a1 cos(2πn/N) + a2 cos(4πn/N)` with
/// `N = size` (periodic, the default) or `size − 1` (symmetric), computed in
/// f64 and rounded to `output_datatype`. Only the size is an input, so the
/// window is always a constant.
pub fn window_function(node: &FoldNode<'_>, size: &Tensor) -> Result<Tensor, ImportError> {
    let size = match size.as_i64s().as_deref() {
        Some([s]) => *s,
        _ => return Err(node.err(format!("size must be an integer scalar, found {} {}", size.dtype, size.shape))),
    };
    let size = usize::try_from(size).map_err(|_| node.err(format!("size is negative ({size})")))?;
    node.check_size(&[size])?;
    let periodic = node.attrs.int("periodic", node.name)?.unwrap_or(1) != 0;
    let dtype = match node.attrs.int("output_datatype", node.name)? {
        Some(t) => dtype_of(t as i32).map_err(|m| node.err(m))?,
        None => DType::F32,
    };
    let span = if periodic { size as f64 } else { size as f64 - 1.0 };
    if span <= 0.0 && size > 0 {
        return Err(node.err(format!("a symmetric window of size {size} divides by zero (give size ≥ 2)")));
    }
    let (a0, a1, a2) = match node.op_type {
        "HannWindow" => (0.5, 0.5, 0.0),
        "HammingWindow" => (25.0 / 46.0, 21.0 / 46.0, 0.0),
        _ => (0.42, 0.5, 0.08),
    };
    let tau = 2.0 * std::f64::consts::PI;
    let vals: Vec<f64> =
        (0..size).map(|i| a0 - a1 * (tau * i as f64 / span).cos() + a2 * (2.0 * tau * i as f64 / span).cos()).collect();
    Ok(from_f64(dtype, Shape(vec![size]), &vals))
}

/// EyeLike: ones where `column − row = k`, zeros elsewhere, shaped as the
/// 2-D input and of its type unless `dtype` says otherwise. Only the input's
/// shape matters, so the result is always a constant.
pub fn eye_like(node: &FoldNode<'_>, dims: &[usize], input_dtype: DType) -> Result<Tensor, ImportError> {
    let &[rows, cols] = dims else {
        return Err(node.err(format!("input has shape {}; EyeLike takes a 2-D tensor", Shape(dims.to_vec()))));
    };
    node.check_size(dims)?;
    let dtype = match node.attrs.int("dtype", node.name)? {
        Some(t) => dtype_of(t as i32).map_err(|m| node.err(m))?,
        None => input_dtype,
    };
    let k = node.attrs.int("k", node.name)?.unwrap_or(0);
    let vals: Vec<f64> = (0..rows * cols).map(|p| ((p % cols) as i64 - (p / cols) as i64 == k) as u8 as f64).collect();
    Ok(from_f64(dtype, Shape(dims.to_vec()), &vals))
}

/// Converts a tensor's elements to `dtype` with ONNX `Cast` rounding
/// (truncation toward zero for float → int).
pub fn cast(x: &Tensor, dtype: DType) -> Tensor {
    if let (Some(v), true) = (x.as_i128s(), dtype.is_int() || dtype == DType::Bool) {
        return Tensor::from_ints(dtype, x.shape.clone(), &v);
    }
    from_f64(dtype, x.shape.clone(), &x.to_f64())
}

fn from_f64(dtype: DType, shape: Shape, v: &[f64]) -> Tensor {
    let data = match dtype {
        DType::F32 | DType::F16 | DType::BF16 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
        _ => return Tensor::from_f64(dtype, shape, v),
    };
    Tensor { dtype, shape, data }
}

fn binary(node: &FoldNode<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor, ImportError> {
    let shape = broadcast(a.shape.dims(), b.shape.dims())
        .ok_or_else(|| node.err(format!("shapes {} and {} do not broadcast", a.shape, b.shape)))?;
    node.check_size(&shape)?;
    let (ai, bi) = (broadcast_index(a.shape.dims(), &shape), broadcast_index(b.shape.dims(), &shape));
    let int = !a.dtype.is_float() && a.dtype != DType::Bool;
    if let (true, Some(av), Some(bv)) = (int, a.as_i128s(), b.as_i128s()) {
        // Integer arithmetic stays exact (wrapping at the type's width) so
        // shape products never round.
        let mut out = Vec::with_capacity(ai.len());
        for i in 0..ai.len() {
            let (x, y) = (av[ai[i]], bv[bi[i]]);
            out.push(match node.op_type {
                "Add" => x.wrapping_add(y),
                "Sub" => x.wrapping_sub(y),
                "Mul" => x.wrapping_mul(y),
                "Div" if y == 0 => return Err(node.err("integer division by zero")),
                "Div" => x.wrapping_div(y),
                "Max" => x.max(y),
                "Min" => x.min(y),
                "Pow" => x.wrapping_pow(y.clamp(0, u32::MAX as i128) as u32),
                "Equal" => (x == y) as i128,
                "Less" => (x < y) as i128,
                _ => (x > y) as i128,
            });
        }
        let boolean = matches!(node.op_type, "Equal" | "Less" | "Greater");
        let dtype = if boolean { DType::Bool } else { a.dtype };
        return Ok(Tensor::from_ints(dtype, Shape(shape), &out));
    }
    let (av, bv) = (a.to_f64(), b.to_f64());
    let mut out = Vec::with_capacity(ai.len());
    for i in 0..ai.len() {
        let (x, y) = (av[ai[i]], bv[bi[i]]);
        // Float ops round to f32 like the graph would compute them.
        let r = match node.op_type {
            "Add" => (x as f32 + y as f32) as f64,
            "Sub" => (x as f32 - y as f32) as f64,
            "Mul" => (x as f32 * y as f32) as f64,
            "Div" => (x as f32 / y as f32) as f64,
            "Max" => x.max(y),
            "Min" => x.min(y),
            "Pow" => (x as f32).powf(y as f32) as f64,
            "Equal" => (x == y) as u8 as f64,
            "Less" => (x < y) as u8 as f64,
            _ => (x > y) as u8 as f64,
        };
        out.push(r);
    }
    let dtype = if matches!(node.op_type, "Equal" | "Less" | "Greater") { DType::Bool } else { a.dtype };
    Ok(from_f64(dtype, Shape(shape), &out))
}

/// Elements of `data` at `idx`, in order.
pub fn take(data: &TensorData, idx: &[usize]) -> TensorData {
    match data {
        TensorData::F32(v) => TensorData::F32(idx.iter().map(|&i| v[i]).collect()),
        TensorData::I32(v) => TensorData::I32(idx.iter().map(|&i| v[i]).collect()),
        TensorData::I64(v) => TensorData::I64(idx.iter().map(|&i| v[i]).collect()),
        TensorData::Bool(v) => TensorData::Bool(idx.iter().map(|&i| v[i]).collect()),
        TensorData::U64(v) => TensorData::U64(idx.iter().map(|&i| v[i]).collect()),
        TensorData::F64(v) => TensorData::F64(idx.iter().map(|&i| v[i]).collect()),
    }
}

fn concat_data(dtype: DType, pieces: Vec<TensorData>) -> TensorData {
    let mut out = match dtype {
        DType::I32 | DType::I8 | DType::U8 | DType::I16 | DType::U16 => TensorData::I32(Vec::new()),
        DType::I64 | DType::U32 => TensorData::I64(Vec::new()),
        DType::Bool => TensorData::Bool(Vec::new()),
        DType::U64 => TensorData::U64(Vec::new()),
        DType::F64 => TensorData::F64(Vec::new()),
        _ => TensorData::F32(Vec::new()),
    };
    for p in pieces {
        match (&mut out, p) {
            (TensorData::F32(o), TensorData::F32(p)) => o.extend(p),
            (TensorData::I32(o), TensorData::I32(p)) => o.extend(p),
            (TensorData::I64(o), TensorData::I64(p)) => o.extend(p),
            (TensorData::Bool(o), TensorData::Bool(p)) => o.extend(p),
            (TensorData::U64(o), TensorData::U64(p)) => o.extend(p),
            (TensorData::F64(o), TensorData::F64(p)) => o.extend(p),
            // Inputs were checked to share one dtype.
            _ => {}
        }
    }
    out
}

/// numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// For each element of a tensor of shape `to`, the index of the element of a
/// tensor of shape `from` that broadcasts to it.
pub fn broadcast_index(from: &[usize], to: &[usize]) -> Vec<usize> {
    let n: usize = to.iter().product();
    let off = to.len() - from.len();
    let from_strides = Shape(from.to_vec()).strides();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; to.len()];
    for _ in 0..n {
        let mut i = 0;
        for (k, &d) in from.iter().enumerate() {
            if d != 1 {
                i += coord[k + off] * from_strides[k];
            }
        }
        out.push(i);
        for k in (0..to.len()).rev() {
            coord[k] += 1;
            if coord[k] < to[k] {
                break;
            }
            coord[k] = 0;
        }
    }
    out
}

fn to_dims(node: &FoldNode<'_>, v: &[i64]) -> Result<Vec<usize>, ImportError> {
    v.iter().map(|&d| usize::try_from(d).map_err(|_| node.err(format!("negative dimension {d} in {v:?}")))).collect()
}

fn norm_axis(node: &FoldNode<'_>, axis: i64, rank: usize) -> Result<usize, ImportError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank.max(1) as i64 {
        return Err(node.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Output dims of `Unsqueeze` (axes refer to the output's rank).
pub fn unsqueeze_dims(node: &FoldNode<'_>, dims: &[usize], axes: &[i64]) -> Result<Vec<usize>, ImportError> {
    let rank = dims.len() + axes.len();
    let mut norm: Vec<usize> = Vec::new();
    for &a in axes {
        let n = norm_axis(node, a, rank)?;
        if norm.contains(&n) {
            return Err(node.err(format!("axis {a} repeated")));
        }
        norm.push(n);
    }
    let mut src = dims.iter();
    Ok((0..rank).map(|i| if norm.contains(&i) { 1 } else { src.next().copied().unwrap_or(1) }).collect())
}

/// Output dims of `Squeeze` (no axes: every dimension of size 1).
pub fn squeeze_dims(node: &FoldNode<'_>, dims: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, ImportError> {
    let squeezed: Vec<usize> = match axes {
        Some(axes) => {
            let mut v = Vec::new();
            for &a in axes {
                let n = norm_axis(node, a, dims.len())?;
                if dims[n] != 1 {
                    return Err(node.err(format!("cannot squeeze axis {a} of size {}", dims[n])));
                }
                v.push(n);
            }
            v
        }
        None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
    };
    Ok(dims.iter().enumerate().filter(|(i, _)| !squeezed.contains(i)).map(|(_, &d)| d).collect())
}

/// Output dims of `Reshape` with ONNX's `0` (copy, unless `allow_zero`) and
/// `-1` (infer) entries.
pub fn reshape_dims(
    node: &FoldNode<'_>,
    dims: &[usize],
    shape: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, ImportError> {
    let numel: usize = dims.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => {
                out.push(*dims.get(i).ok_or_else(|| {
                    node.err(format!("shape {shape:?} copies dim {i} of a rank-{} input", dims.len()))
                })?)
            }
            s if s >= 0 => out.push(s as usize),
            _ => return Err(node.err(format!("invalid target shape {shape:?}"))),
        }
    }
    let product = |v: &[usize]| v.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(known) = product(&out) else {
        return Err(node.err(format!("target shape {shape:?} has more elements than memory can hold")));
    };
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(node.err(format!("cannot reshape {} elements to {shape:?}", numel)));
        }
        out[i] = numel / known;
    }
    if product(&out) != Some(numel) {
        return Err(node.err(format!("cannot reshape {} to {shape:?}", Shape(dims.to_vec()))));
    }
    Ok(out)
}

/// A slice with every axis explicit and bounds clamped as ONNX specifies.
#[derive(Clone, PartialEq, Debug)]
pub struct ResolvedSlice {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Vec<i64>,
    pub steps: Vec<i64>,
}

/// Normalises a slice's negative indices and clamps its bounds to the input
/// (an end before index 0 for a negative step is `i64::MIN`), so the result
/// means the same under ONNX's rules and read literally.
pub fn resolve_slice(
    node: &FoldNode<'_>,
    dims: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<ResolvedSlice, ImportError> {
    if starts.len() != ends.len() {
        return Err(node.err("starts and ends differ in length"));
    }
    let n = starts.len();
    let axes: Vec<i64> = axes.map(|a| a.to_vec()).unwrap_or_else(|| (0..n as i64).collect());
    let steps: Vec<i64> = steps.map(|s| s.to_vec()).unwrap_or_else(|| vec![1; n]);
    if axes.len() != n || steps.len() != n {
        return Err(node.err("starts, ends, axes and steps differ in length"));
    }
    let mut r = ResolvedSlice { starts: vec![], ends: vec![], axes: vec![], steps: vec![] };
    for i in 0..n {
        let axis = norm_axis(node, axes[i], dims.len())?;
        let d = dims[axis] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(node.err("slice step is zero"));
        }
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = if step > 0 {
            (norm(starts[i]).clamp(0, d), norm(ends[i]).clamp(0, d))
        } else {
            let end = norm(ends[i]).clamp(-1, d - 1);
            // "Through index 0" is written as i64::MIN, not -1, which a
            // reader applying ONNX's negative-index rule would take as d - 1.
            (norm(starts[i]).clamp(0, (d - 1).max(0)), if end < 0 { i64::MIN } else { end })
        };
        r.starts.push(start);
        r.ends.push(end);
        r.axes.push(axis as i64);
        r.steps.push(step);
    }
    Ok(r)
}

/// Output dims of a resolved slice and the input index of each output element.
pub fn slice_index(dims: &[usize], s: &ResolvedSlice) -> (Vec<usize>, Vec<usize>) {
    // Per axis: the input coordinates it keeps.
    let mut keep: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    for i in 0..s.axes.len() {
        let (start, end, step) = (s.starts[i], s.ends[i], s.steps[i]);
        let mut v = Vec::new();
        let mut x = start;
        while (step > 0 && x < end) || (step < 0 && x > end && x >= 0) {
            v.push(x as usize);
            // A step past i64's range ends the walk rather than wrapping.
            let Some(next) = x.checked_add(step) else { break };
            x = next;
        }
        keep[s.axes[i] as usize] = v;
    }
    let out_dims: Vec<usize> = keep.iter().map(|k| k.len()).collect();
    let strides = Shape(dims.to_vec()).strides();
    let mut idx = vec![0usize];
    for (axis, k) in keep.iter().enumerate() {
        let mut next = Vec::with_capacity(idx.len() * k.len());
        for &base in &idx {
            for &c in k {
                next.push(base + c * strides[axis]);
            }
        }
        idx = next;
    }
    (out_dims, idx)
}
