//! A naive reference evaluator: the oracle lowering and the GPU are tested
//! against, and the ONNX importer's constant folder.
//!
//! Everything is a straightforward loop nest. Arithmetic accumulates in `f64`
//! (convolutions, matrix products, reductions, softmax, normalisations, pool
//! averages) and each result is rounded once to the output dtype (`f32`
//! values stored as `f32`, `f16`/`bf16` rounded to their precision and kept
//! widened in `f32` storage). Data movement (transpose, slice, gather, concat,
//! pad, nearest resize, where, …) copies elements without going through `f64`,
//! so `i64` values survive exactly.
//!
//! [`eval_node`] re-runs shape inference on the actual input tensors first, so
//! it refuses exactly what [`Graph::add_node`](crate::Graph::add_node) refuses;
//! value-dependent failures (a Gather index out of range) are
//! [`GraphError::Shape`] errors naming the node.

use std::collections::HashMap;

use crate::dtype::DType;
use crate::error::GraphError;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::infer::{
    broadcast_shapes, conv_geometry, conv_transpose_geometry, infer_node, normalize_axis, pool_geometry, slice_ranges,
    WindowGeometry,
};
use crate::op::{BinaryOp, CoordinateTransform, NearestMode, Op, ResizeMode, UnaryOp};
use crate::tensor::{Shape, Tensor, TensorData};

/// Evaluates `graph` on `inputs` (one per graph input, in order) and returns
/// the graph outputs in order.
pub fn evaluate(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, GraphError> {
    let values = run(graph, inputs)?;
    graph
        .outputs
        .iter()
        .map(|t| {
            values
                .get(t)
                .or_else(|| graph.constants.get(t))
                .cloned()
                .ok_or_else(|| GraphError::UnknownTensor { node: "<graph output>".into(), tensor: t.to_string() })
        })
        .collect()
}

/// Evaluates `graph` on `inputs` and returns every tensor: inputs, constants
/// and each node's outputs.
pub fn evaluate_all(graph: &Graph, inputs: &[Tensor]) -> Result<HashMap<TensorId, Tensor>, GraphError> {
    let mut values = run(graph, inputs)?;
    for (t, v) in &graph.constants {
        values.insert(*t, v.clone());
    }
    Ok(values)
}

/// Checks `inputs` against the graph's declared inputs and runs every node in
/// topological order. Constants are borrowed from the graph, not copied.
fn run(graph: &Graph, inputs: &[Tensor]) -> Result<HashMap<TensorId, Tensor>, GraphError> {
    if inputs.len() != graph.inputs.len() {
        let names: Vec<&str> = graph.inputs.iter().map(|t| graph.tensors[*t].name.as_str()).collect();
        return Err(GraphError::Input {
            input: names.join(", "),
            message: format!("got {} input tensors; the graph has {} inputs", inputs.len(), graph.inputs.len()),
        });
    }
    let mut values: HashMap<TensorId, Tensor> = HashMap::new();
    for (&t, v) in graph.inputs.iter().zip(inputs) {
        let info = &graph.tensors[t];
        let bad = |message: String| GraphError::Input { input: info.name.clone(), message };
        if v.dtype != info.dtype || v.shape != info.shape {
            return Err(bad(format!(
                "got a {} tensor of shape {}; expected {} of shape {}",
                v.dtype, v.shape, info.dtype, info.shape
            )));
        }
        v.validate().map_err(&bad)?;
        values.insert(t, v.clone());
    }
    for n in graph.topo_order() {
        let node = &graph.nodes[n];
        let mut args = Vec::with_capacity(node.inputs.len());
        for t in &node.inputs {
            args.push(match t {
                None => None,
                Some(t) => Some(
                    values
                        .get(t)
                        .or_else(|| graph.constants.get(t))
                        .ok_or_else(|| GraphError::UnknownTensor { node: node.name.clone(), tensor: t.to_string() })?,
                ),
            });
        }
        let outs = eval_node(&node.name, &node.op, &args)?;
        for (t, v) in node.outputs.iter().zip(outs) {
            values.insert(*t, v);
        }
    }
    Ok(values)
}

/// Evaluates one operator on concrete inputs (`None` for an omitted optional
/// input), returning its outputs in order.
pub fn eval_node(node: &str, op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, GraphError> {
    let err = |message: String| GraphError::Shape { node: node.to_string(), op: op.name(), message };
    for (i, t) in inputs.iter().enumerate() {
        if let Some(t) = t {
            t.validate().map_err(|m| err(format!("input {i} {m}")))?;
        }
    }
    let infos: Vec<Option<TensorInfo>> = inputs
        .iter()
        .map(|t| t.map(|t| TensorInfo { name: String::new(), dtype: t.dtype, shape: t.shape.clone() }))
        .collect();
    let info_refs: Vec<Option<&TensorInfo>> = infos.iter().map(|i| i.as_ref()).collect();
    let outs = infer_node(node, op, &info_refs, inputs)?;
    let ev = Eval { inputs, outs: &outs, err: &err };
    ev.eval(op)
}

struct Eval<'a, E: Fn(String) -> GraphError> {
    inputs: &'a [Option<&'a Tensor>],
    outs: &'a [(DType, Shape)],
    err: &'a E,
}

impl<E: Fn(String) -> GraphError> Eval<'_, E> {
    /// A present input (inference already checked presence).
    fn x(&self, i: usize) -> Result<&Tensor, GraphError> {
        self.inputs.get(i).copied().flatten().ok_or_else(|| (self.err)(format!("input {i} is missing")))
    }

    fn out(&self, values: &[f64]) -> Vec<Tensor> {
        let (dtype, shape) = &self.outs[0];
        vec![Tensor::from_f64(*dtype, shape.clone(), values)]
    }

    /// Index `i` (negative counts from the end) into an axis `a` of `len`.
    fn in_range(&self, i: i64, len: usize, a: usize) -> Result<usize, GraphError> {
        let l = len as i64;
        let j = if i < 0 { i + l } else { i };
        if !(0..l).contains(&j) {
            return Err((self.err)(format!(
                "index {i} is out of range for axis {a} of size {len}; expected {} ..= {}",
                -l,
                l - 1
            )));
        }
        Ok(j as usize)
    }

    fn out_dims(&self) -> &[usize] {
        self.outs[0].1.dims()
    }

    fn eval(&self, op: &Op) -> Result<Vec<Tensor>, GraphError> {
        Ok(match op {
            Op::Conv { window, groups } => {
                let (x, w) = (self.x(0)?, self.x(1)?);
                let g = conv_geometry(window, &x.shape.0[2..], &w.shape.0[2..]).map_err(self.err)?;
                self.out(&conv(x, w, self.inputs.get(2).copied().flatten(), *groups, &g, self.out_dims()))
            }
            Op::ConvTranspose { window, groups, output_padding } => {
                let (x, w) = (self.x(0)?, self.x(1)?);
                let g = conv_transpose_geometry(window, &x.shape.0[2..], &w.shape.0[2..], output_padding)
                    .map_err(self.err)?;
                self.out(&conv_transpose(x, w, self.inputs.get(2).copied().flatten(), *groups, &g, self.out_dims()))
            }
            Op::BatchNormalization { epsilon } => {
                let x = self.x(0)?;
                let p: Vec<Vec<f64>> = (1..5).map(|i| self.x(i).map(|t| t.to_f64())).collect::<Result<_, _>>()?;
                let (c, inner) = (x.shape.0[1], x.shape.0[2..].iter().product::<usize>());
                let eps = *epsilon as f64;
                let v: Vec<f64> = x
                    .to_f64()
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let ch = (i / inner) % c;
                        p[0][ch] * (v - p[2][ch]) / (p[3][ch] + eps).sqrt() + p[1][ch]
                    })
                    .collect();
                self.out(&v)
            }
            Op::Gemm { alpha, beta, trans_a, trans_b } => {
                let (a, b) = (self.x(0)?, self.x(1)?);
                let (av, bv) = (a.to_f64(), b.to_f64());
                let (m, n) = (self.out_dims()[0], self.out_dims()[1]);
                let k = if *trans_a { a.shape.0[0] } else { a.shape.0[1] };
                let c = match self.inputs.get(2).copied().flatten() {
                    Some(c) => {
                        let map = broadcast_map(&[m, n], c.shape.dims());
                        let cv = c.to_f64();
                        map.iter().map(|&i| cv[i]).collect()
                    }
                    None => vec![0.0; m * n],
                };
                let mut out = vec![0.0; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0.0;
                        for p in 0..k {
                            let x = if *trans_a { av[p * m + i] } else { av[i * k + p] };
                            let y = if *trans_b { bv[j * k + p] } else { bv[p * n + j] };
                            acc += x * y;
                        }
                        out[i * n + j] = *alpha as f64 * acc + *beta as f64 * c[i * n + j];
                    }
                }
                self.out(&out)
            }
            Op::MatMul => self.out(&matmul(self.x(0)?, self.x(1)?)),
            Op::Unary(UnaryOp::BitwiseNot) => {
                let x = self.x(0)?;
                let v = x.as_i128s().ok_or_else(|| (self.err)("input is not an integer tensor".into()))?;
                let v: Vec<i128> = v.into_iter().map(|x| !x).collect();
                vec![Tensor::from_ints(x.dtype, x.shape.clone(), &v)]
            }
            Op::Unary(u) => {
                let v: Vec<f64> = self.x(0)?.to_f64().into_iter().map(|x| unary(u, x)).collect();
                self.out(&v)
            }
            Op::Binary(b) if b.is_bitwise() => {
                let (x, y) = (self.x(0)?, self.x(1)?);
                let dims = self.out_dims();
                let (mx, my) = (broadcast_map(dims, x.shape.dims()), broadcast_map(dims, y.shape.dims()));
                let not_int = || (self.err)("inputs are not integer tensors".into());
                let (xv, yv) = (x.as_i128s().ok_or_else(not_int)?, y.as_i128s().ok_or_else(not_int)?);
                let bits = 8 * x.dtype.size_bytes() as i128;
                let v: Vec<i128> = mx.iter().zip(&my).map(|(&i, &j)| bitwise(*b, xv[i], yv[j], bits)).collect();
                vec![Tensor::from_ints(x.dtype, Shape(dims.to_vec()), &v)]
            }
            Op::Binary(b) => {
                let (x, y) = (self.x(0)?, self.x(1)?);
                let dims = self.out_dims();
                let (mx, my) = (broadcast_map(dims, x.shape.dims()), broadcast_map(dims, y.shape.dims()));
                let (xv, yv) = (x.to_f64(), y.to_f64());
                let v: Vec<f64> = mx.iter().zip(&my).map(|(&i, &j)| binary(*b, xv[i], yv[j], x.dtype)).collect();
                self.out(&v)
            }
            Op::Sum => {
                let dims = self.out_dims().to_vec();
                let mut acc = vec![0.0; Shape(dims.clone()).numel()];
                for t in self.inputs.iter().flatten() {
                    let (map, tv) = (broadcast_map(&dims, t.shape.dims()), t.to_f64());
                    for (a, &i) in acc.iter_mut().zip(&map) {
                        *a += tv[i];
                    }
                }
                self.out(&acc)
            }
            Op::Where => {
                let (c, x, y) = (self.x(0)?, self.x(1)?, self.x(2)?);
                let dims = self.out_dims();
                let cond = match &c.data {
                    TensorData::Bool(v) => v,
                    _ => return Err((self.err)("condition is not bool".into())),
                };
                let (mc, mx, my) = (
                    broadcast_map(dims, c.shape.dims()),
                    broadcast_map(dims, x.shape.dims()),
                    broadcast_map(dims, y.shape.dims()),
                );
                let picks = (0..mc.len()).map(|i| if cond[mc[i]] { (0, mx[i]) } else { (1, my[i]) });
                vec![self.moved(&[&x.data, &y.data], picks)]
            }
            Op::Cast { to } => {
                let x = self.x(0)?;
                let shape = x.shape.clone();
                // Integer-to-integer casts skip f64 so large i64 values survive.
                match x.as_i128s() {
                    Some(v) if to.is_int() => vec![Tensor::from_ints(*to, shape, &v)],
                    _ => vec![Tensor::from_f64(*to, shape, &x.to_f64())],
                }
            }
            Op::BitCast { to } => {
                let x = self.x(0)?;
                vec![from_bits(*to, x.shape.clone(), &element_bits(x))]
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                let log = matches!(op, Op::LogSoftmax { .. });
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let mut v = x.to_f64();
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| (o * len + j) * inner + i;
                        let max = (0..len).map(|j| v[at(j)]).fold(f64::NEG_INFINITY, f64::max);
                        let sum: f64 = (0..len).map(|j| (v[at(j)] - max).exp()).sum();
                        for j in 0..len {
                            v[at(j)] = if log { v[at(j)] - max - sum.ln() } else { (v[at(j)] - max).exp() / sum };
                        }
                    }
                }
                self.out(&v)
            }
            Op::LayerNormalization { axis, epsilon } => {
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let norm = &x.shape.0[a..];
                let len: usize = norm.iter().product();
                let scale = self.x(1)?;
                let (ms, sv) = (broadcast_map(norm, scale.shape.dims()), scale.to_f64());
                let bias =
                    self.inputs.get(2).copied().flatten().map(|b| (broadcast_map(norm, b.shape.dims()), b.to_f64()));
                let mut v = x.to_f64();
                for row in v.chunks_mut(len.max(1)) {
                    let mean = row.iter().sum::<f64>() / len as f64;
                    let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / len as f64;
                    let inv = 1.0 / (var + *epsilon as f64).sqrt();
                    for (j, x) in row.iter_mut().enumerate() {
                        *x = (*x - mean) * inv * sv[ms[j]] + bias.as_ref().map_or(0.0, |(mb, bv)| bv[mb[j]]);
                    }
                }
                self.out(&v)
            }
            Op::ReduceMean { axes, .. }
            | Op::ReduceSum { axes, .. }
            | Op::ReduceMax { axes, .. }
            | Op::ReduceMin { axes, .. }
            | Op::ReduceProd { axes, .. } => {
                let x = self.x(0)?;
                let r = x.shape.rank();
                let axes: Vec<usize> = if axes.is_empty() {
                    (0..r).collect()
                } else {
                    axes.iter().filter_map(|&a| normalize_axis(a, r)).collect()
                };
                let keep: Vec<usize> =
                    x.shape.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
                let n_out = Shape(keep.clone()).numel();
                let count = x.shape.numel() / n_out.max(1);
                let init = match op {
                    Op::ReduceMax { .. } => f64::NEG_INFINITY,
                    Op::ReduceMin { .. } => f64::INFINITY,
                    Op::ReduceProd { .. } => 1.0,
                    _ => 0.0,
                };
                let mut acc = vec![init; n_out];
                let map = broadcast_map(x.shape.dims(), &keep);
                for (v, &o) in x.to_f64().iter().zip(&map) {
                    acc[o] = match op {
                        Op::ReduceMax { .. } => nan_max(acc[o], *v),
                        Op::ReduceMin { .. } => nan_min(acc[o], *v),
                        Op::ReduceProd { .. } => acc[o] * v,
                        _ => acc[o] + v,
                    };
                }
                if matches!(op, Op::ReduceMean { .. }) {
                    acc.iter_mut().for_each(|a| *a /= count as f64);
                }
                self.out(&acc)
            }
            Op::TopK { axis, k, largest } => {
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let v = x.to_f64();
                let (mut vals, mut idx) = (vec![0.0; outer * k * inner], vec![0i64; outer * k * inner]);
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| v[(o * len + j) * inner + i];
                        let mut order: Vec<usize> = (0..len).collect();
                        // NaN is the largest value; a stable sort keeps equal
                        // elements in index order.
                        order.sort_by(|&p, &q| {
                            let (x, y) = (at(p), at(q));
                            let c = match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                            };
                            if *largest {
                                c.reverse()
                            } else {
                                c
                            }
                        });
                        for (r, &j) in order.iter().take(*k).enumerate() {
                            let out = (o * k + r) * inner + i;
                            vals[out] = at(j);
                            idx[out] = j as i64;
                        }
                    }
                }
                let (dtype, shape) = &self.outs[0];
                vec![Tensor::from_f64(*dtype, shape.clone(), &vals), Tensor::i64(self.outs[1].1.clone(), idx)]
            }
            Op::NonZero { count } => {
                let x = self.x(0)?;
                let dims = x.shape.dims();
                let nonzero: Vec<usize> =
                    x.to_f64().iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
                let found = nonzero.len();
                if found != *count {
                    return Err((self.err)(format!(
                        "the input has {found} nonzero elements but the graph was built for {count}"
                    )));
                }
                let mut coords: Vec<Vec<i64>> = vec![Vec::with_capacity(found); dims.len()];
                for flat in nonzero {
                    let mut rest = flat;
                    for (d, c) in dims.iter().zip(coords.iter_mut()).rev() {
                        c.push((rest % d) as i64);
                        rest /= d;
                    }
                }
                vec![Tensor::i64(self.outs[0].1.clone(), coords.concat())]
            }
            Op::CumSum { axis, exclusive, reverse } | Op::CumProd { axis, exclusive, reverse } => {
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let product = matches!(op, Op::CumProd { .. });
                let v = x.to_f64();
                let mut out = vec![0.0; v.len()];
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| (o * len + j) * inner + i;
                        let mut acc = if product { 1.0 } else { 0.0 };
                        for step in 0..len {
                            let j = if *reverse { len - 1 - step } else { step };
                            if *exclusive {
                                out[at(j)] = acc;
                            }
                            acc = if product { acc * v[at(j)] } else { acc + v[at(j)] };
                            if !*exclusive {
                                out[at(j)] = acc;
                            }
                        }
                    }
                }
                self.out(&out)
            }
            Op::ArgMax { axis, select_last_index, .. } | Op::ArgMin { axis, select_last_index, .. } => {
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let v = x.to_f64();
                let max = matches!(op, Op::ArgMax { .. });
                let mut out = Vec::with_capacity(outer * inner);
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| v[(o * len + j) * inner + i];
                        let mut best = 0;
                        for j in 1..len {
                            let ord = arg_order(at(j), at(best), max);
                            if ord == std::cmp::Ordering::Greater
                                || (*select_last_index && ord == std::cmp::Ordering::Equal)
                            {
                                best = j;
                            }
                        }
                        out.push(best as i64);
                    }
                }
                vec![Tensor::i64(self.outs[0].1.clone(), out)]
            }
            Op::MaxPool { window, ceil_mode } => {
                let x = self.x(0)?;
                let g = pool_geometry(window, &x.shape.0[2..], *ceil_mode).map_err(self.err)?;
                self.out(&pool(x, &g, PoolKind::Max))
            }
            Op::MaxPoolWithIndices { window, ceil_mode, column_major } => {
                let x = self.x(0)?;
                let g = pool_geometry(window, &x.shape.0[2..], *ceil_mode).map_err(self.err)?;
                let (values, indices) = pool_with_indices(x, &g, PoolKind::Max, *column_major);
                let (dtype, shape) = &self.outs[0];
                vec![Tensor::from_f64(*dtype, shape.clone(), &values), Tensor::i64(self.outs[1].1.clone(), indices)]
            }
            Op::AveragePool { window, ceil_mode, count_include_pad } => {
                let x = self.x(0)?;
                let g = pool_geometry(window, &x.shape.0[2..], *ceil_mode).map_err(self.err)?;
                self.out(&pool(x, &g, PoolKind::Average { count_include_pad: *count_include_pad }))
            }
            Op::GlobalAveragePool | Op::GlobalMaxPool => {
                let x = self.x(0)?;
                let inner: usize = x.shape.0[2..].iter().product();
                let v: Vec<f64> = x
                    .to_f64()
                    .chunks(inner.max(1))
                    .map(|c| {
                        if matches!(op, Op::GlobalMaxPool) {
                            c.iter().copied().fold(f64::NEG_INFINITY, nan_max)
                        } else {
                            c.iter().sum::<f64>() / inner as f64
                        }
                    })
                    .collect();
                self.out(&v)
            }
            Op::Lrn { size, alpha, beta, bias } => {
                let x = self.x(0)?;
                let (n, c, inner) = (x.shape.0[0], x.shape.0[1], x.shape.0[2..].iter().product::<usize>());
                let xv = x.to_f64();
                let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
                let mut v = vec![0.0; xv.len()];
                for b in 0..n {
                    for ch in 0..c {
                        for i in 0..inner {
                            let from = ch.saturating_sub(lo);
                            let to = (ch + hi).min(c - 1);
                            let sq: f64 = (from..=to).map(|k| xv[(b * c + k) * inner + i].powi(2)).sum();
                            let at = (b * c + ch) * inner + i;
                            v[at] = xv[at] / (*bias as f64 + *alpha as f64 / *size as f64 * sq).powf(*beta as f64);
                        }
                    }
                }
                self.out(&v)
            }
            Op::Concat { axis } => {
                let ts: Vec<&Tensor> = self.inputs.iter().flatten().copied().collect();
                let a = normalize_axis(*axis, ts[0].shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, _, inner) = split_at_axis(ts[0].shape.dims(), a);
                let mut picks = Vec::with_capacity(self.outs[0].1.numel());
                for o in 0..outer {
                    for (s, t) in ts.iter().enumerate() {
                        let chunk = t.shape.0[a] * inner;
                        picks.extend((0..chunk).map(|j| (s, o * chunk + j)));
                    }
                }
                let datas: Vec<&TensorData> = ts.iter().map(|t| &t.data).collect();
                vec![self.moved(&datas, picks.into_iter())]
            }
            Op::Split { axis, sizes } => {
                let x = self.x(0)?;
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let mut first = 0;
                let mut res = Vec::new();
                for (k, &s) in sizes.iter().enumerate() {
                    let picks =
                        (0..outer).flat_map(|o| (0..s * inner).map(move |j| (0, (o * len + first) * inner + j)));
                    let (dtype, shape) = &self.outs[k];
                    res.push(Tensor { dtype: *dtype, shape: shape.clone(), data: select(&[&x.data], picks) });
                    first += s;
                }
                res
            }
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } | Op::Identity => {
                let x = self.x(0)?;
                vec![Tensor { dtype: x.dtype, shape: self.outs[0].1.clone(), data: x.data.clone() }]
            }
            Op::Transpose { perm } => {
                let x = self.x(0)?;
                let r = x.shape.rank();
                let perm: Vec<usize> = if perm.is_empty() { (0..r).rev().collect() } else { perm.clone() };
                let strides = x.shape.strides();
                let src_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
                let picks = strided_indices(self.out_dims(), &src_strides, 0).into_iter().map(|i| (0, i));
                vec![self.moved(&[&x.data], picks)]
            }
            Op::ScatterElements { axis, reduction } => {
                let (x, idx, upd) = (self.x(0)?, self.x(1)?, self.x(2)?);
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let indices = idx.as_i64s().ok_or_else(|| (self.err)("indices are not integers".into()))?;
                let (xd, id) = (x.shape.dims(), idx.shape.dims());
                let xs = row_major_strides(xd);
                let mut v = x.to_f64();
                let u = upd.to_f64();
                for (p, &i) in indices.iter().enumerate() {
                    let j = self.in_range(i, xd[a], a)?;
                    let mut rest = p;
                    let mut dst = 0;
                    for k in (0..id.len()).rev() {
                        let c = rest % id[k];
                        rest /= id[k];
                        dst += if k == a { j } else { c } * xs[k];
                    }
                    v[dst] = reduction.apply(v[dst], u[p]);
                }
                self.out(&v)
            }
            Op::ScatterND { reduction } => {
                let (x, idx, upd) = (self.x(0)?, self.x(1)?, self.x(2)?);
                let indices = idx.as_i64s().ok_or_else(|| (self.err)("indices are not integers".into()))?;
                let xd = x.shape.dims();
                let k = idx.shape.dims().last().copied().unwrap_or(0);
                let xs = row_major_strides(xd);
                let slice: usize = xd[k..].iter().product();
                let mut v = x.to_f64();
                let u = upd.to_f64();
                for (q, tuple) in indices.chunks(k.max(1)).enumerate() {
                    let mut base = 0;
                    for (t, &i) in tuple.iter().enumerate() {
                        base += self.in_range(i, xd[t], t)? * xs[t];
                    }
                    for e in 0..slice {
                        v[base + e] = reduction.apply(v[base + e], u[q * slice + e]);
                    }
                }
                self.out(&v)
            }
            Op::GatherND { batch_dims } => {
                let (x, idx) = (self.x(0)?, self.x(1)?);
                let indices = idx.as_i64s().ok_or_else(|| (self.err)("indices are not integers".into()))?;
                let (xd, id) = (x.shape.dims(), idx.shape.dims());
                let b = *batch_dims;
                let k = id.last().copied().unwrap_or(0);
                let xs = row_major_strides(xd);
                let batches: usize = xd[..b].iter().product();
                let per_batch = indices.len() / (batches * k).max(1);
                let slice: usize = xd[b + k..].iter().product();
                let mut picks = Vec::with_capacity(self.outs[0].1.numel());
                for (q, tuple) in indices.chunks(k.max(1)).enumerate() {
                    let batch = q / per_batch.max(1);
                    // The batch's offset: its coordinates over data's first b dims.
                    let mut base = 0;
                    let mut rest = batch;
                    for d in (0..b).rev() {
                        base += (rest % xd[d]) * xs[d];
                        rest /= xd[d];
                    }
                    for (t, &i) in tuple.iter().enumerate() {
                        base += self.in_range(i, xd[b + t], b + t)? * xs[b + t];
                    }
                    picks.extend((0..slice).map(|e| (0, base + e)));
                }
                vec![self.moved(&[&x.data], picks.into_iter())]
            }
            Op::GatherElements { axis } => {
                let (x, idx) = (self.x(0)?, self.x(1)?);
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let indices = idx.as_i64s().ok_or_else(|| (self.err)("indices are not integers".into()))?;
                let (xd, id) = (x.shape.dims(), idx.shape.dims());
                let len = xd[a] as i64;
                let xs = row_major_strides(xd);
                let mut picks = Vec::with_capacity(indices.len());
                for (p, &i) in indices.iter().enumerate() {
                    let j = if i < 0 { i + len } else { i };
                    if !(0..len).contains(&j) {
                        return Err((self.err)(format!(
                            "index {i} is out of range for axis {a} of size {len}; expected {} ..= {}",
                            -len,
                            len - 1
                        )));
                    }
                    let mut rest = p;
                    let mut src = 0;
                    for k in (0..id.len()).rev() {
                        let c = rest % id[k];
                        rest /= id[k];
                        src += if k == a { j as usize } else { c } * xs[k];
                    }
                    picks.push((0, src));
                }
                vec![self.moved(&[&x.data], picks.into_iter())]
            }
            Op::Gather { axis } => {
                let (x, idx) = (self.x(0)?, self.x(1)?);
                let a = normalize_axis(*axis, x.shape.rank()).ok_or_else(|| (self.err)("bad axis".into()))?;
                let (outer, len, inner) = split_at_axis(x.shape.dims(), a);
                let indices = idx.as_i64s().ok_or_else(|| (self.err)("indices are not integers".into()))?;
                let mut picks = Vec::with_capacity(self.outs[0].1.numel());
                for o in 0..outer {
                    for &i in &indices {
                        let j = if i < 0 { i + len as i64 } else { i };
                        if !(0..len as i64).contains(&j) {
                            return Err((self.err)(format!(
                                "index {i} is out of range for axis {a} of size {len}; expected {} ..= {}",
                                -(len as i64),
                                len as i64 - 1
                            )));
                        }
                        let base = (o * len + j as usize) * inner;
                        picks.extend((0..inner).map(|k| (0, base + k)));
                    }
                }
                vec![self.moved(&[&x.data], picks.into_iter())]
            }
            Op::Resize { scales, mode, transform, nearest } => {
                let x = self.x(0)?;
                resize(self, x, scales, *mode, *transform, *nearest)?
            }
            Op::Pad { pads, value } => {
                let x = self.x(0)?;
                let r = x.shape.rank();
                let fill = Tensor::from_f64(x.dtype, Shape::scalar(), &[*value as f64]);
                let strides = x.shape.strides();
                let mut picks = Vec::with_capacity(self.outs[0].1.numel());
                for_each_index(self.out_dims(), |idx| {
                    let mut src = 0;
                    for d in 0..r {
                        match idx[d].checked_sub(pads[d]).filter(|&i| i < x.shape.0[d]) {
                            Some(i) => src += i * strides[d],
                            None => {
                                picks.push((1, 0));
                                return;
                            }
                        }
                    }
                    picks.push((0, src));
                });
                vec![self.moved(&[&x.data, &fill.data], picks.into_iter())]
            }
            Op::Slice { starts, ends, axes, steps } => {
                let x = self.x(0)?;
                let ranges = slice_ranges(x.shape.dims(), starts, ends, axes, steps).map_err(self.err)?;
                let strides = x.shape.strides();
                let base: i64 = ranges.iter().zip(&strides).map(|(r, &s)| r.start * s as i64).sum();
                let src_strides: Vec<i64> = ranges.iter().zip(&strides).map(|(r, &s)| r.step * s as i64).collect();
                let picks = strided_indices_signed(self.out_dims(), &src_strides, base).into_iter().map(|i| (0, i));
                vec![self.moved(&[&x.data], picks)]
            }
        })
    }

    /// The single output, built by copying elements `(source, index)`.
    fn moved(&self, sources: &[&TensorData], picks: impl Iterator<Item = (usize, usize)>) -> Tensor {
        let (dtype, shape) = &self.outs[0];
        Tensor { dtype: *dtype, shape: shape.clone(), data: select(sources, picks) }
    }
}

/// Copies elements `(source, index)` out of same-typed sources.
fn select(sources: &[&TensorData], picks: impl Iterator<Item = (usize, usize)>) -> TensorData {
    macro_rules! pick {
        ($variant:ident) => {{
            let vs: Vec<&[_]> = sources
                .iter()
                .map(|s| match s {
                    TensorData::$variant(v) => v.as_slice(),
                    _ => &[],
                })
                .collect();
            TensorData::$variant(picks.map(|(s, i)| vs[s].get(i).copied().unwrap_or_default()).collect())
        }};
    }
    match sources.first() {
        Some(TensorData::F32(_)) | None => pick!(F32),
        Some(TensorData::I32(_)) => pick!(I32),
        Some(TensorData::I64(_)) => pick!(I64),
        Some(TensorData::Bool(_)) => pick!(Bool),
        Some(TensorData::U64(_)) => pick!(U64),
        Some(TensorData::F64(_)) => pick!(F64),
    }
}

/// Calls `f` with every multi-index of `dims` in row-major order.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0; dims.len()];
    loop {
        f(&idx);
        let mut d = dims.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// For every element of `out` (row-major), the flat index `base + Σ idx·stride`.
fn strided_indices(out: &[usize], strides: &[usize], base: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(out.iter().product());
    for_each_index(out, |idx| v.push(base + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()));
    v
}

fn strided_indices_signed(out: &[usize], strides: &[i64], base: i64) -> Vec<usize> {
    let mut v = Vec::with_capacity(out.iter().product());
    for_each_index(out, |idx| {
        v.push((base + idx.iter().zip(strides).map(|(&i, s)| i as i64 * s).sum::<i64>()).max(0) as usize)
    });
    v
}

/// For every element of `out`, the flat index of the element of a tensor of
/// shape `from` that numpy broadcasting maps to it.
fn broadcast_map(out: &[usize], from: &[usize]) -> Vec<usize> {
    let strides = Shape(from.to_vec()).strides();
    let lead = out.len() - from.len().min(out.len());
    let s: Vec<usize> =
        (0..out.len()).map(|i| if i < lead || from[i - lead] == 1 { 0 } else { strides[i - lead] }).collect();
    strided_indices(out, &s, 0)
}

/// `(outer, dims[axis], inner)` element counts around an axis.
fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// The larger of `a` and `b`, NaN when either is (IEEE `maximum`, as ONNX's
/// Max, Relu, Clip, MaxPool and ReduceMax behave); `f64::max` would drop it.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The smaller of `a` and `b`, NaN when either is.
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Row-major strides of `dims`.
fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// How `a` compares with the best so far `b` for ArgMax (`max`) or ArgMin:
/// `Greater` when `a` should replace `b`, `Equal` on a tie. NaN wins over
/// every number and ties with NaN, as numpy's `argmax`/`argmin`.
fn arg_order(a: f64, b: f64, max: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if max => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// `ln(1 + exp(x))` without overflow for large `x`.
fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn unary(u: &UnaryOp, x: f64) -> f64 {
    match *u {
        // f64::max drops NaN; ONNX propagates it.
        UnaryOp::Relu => nan_max(x, 0.0),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Erf => erf(x),
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x
            } else {
                x
            }
        }
        UnaryOp::Clip { min, max } => nan_min(nan_max(x, min as f64), max as f64),
        UnaryOp::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        UnaryOp::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        UnaryOp::Not => (x == 0.0) as u8 as f64,
        UnaryOp::Sign if x.is_nan() => x,
        UnaryOp::Sign if x == 0.0 => 0.0,
        UnaryOp::Sign => x.signum(),
        UnaryOp::Softplus => softplus(x),
        UnaryOp::Softsign => x / (1.0 + x.abs()),
        UnaryOp::Elu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x.exp_m1()
            } else {
                x
            }
        }
        UnaryOp::Selu { alpha, gamma } => gamma as f64 * if x <= 0.0 { alpha as f64 * x.exp_m1() } else { x },
        UnaryOp::Celu { alpha } => {
            let a = alpha as f64;
            nan_max(0.0, x) + nan_min(0.0, a * (x / a).exp_m1())
        }
        UnaryOp::ThresholdedRelu { alpha } => {
            if x > alpha as f64 || x.is_nan() {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Mish => x * softplus(x).tanh(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Asinh => x.asinh(),
        UnaryOp::Acosh => x.acosh(),
        UnaryOp::Atanh => x.atanh(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        // Exact below 2^53; [`Op::Unary`] evaluates it on exact integers.
        UnaryOp::BitwiseNot => !(x as i64) as f64,
    }
}

fn binary(b: BinaryOp, x: f64, y: f64, dtype: DType) -> f64 {
    let truth = |c: bool| c as u8 as f64;
    match b {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        // Integer division truncates toward zero, as onnxruntime's C++ does;
        // a zero divisor counts as one (the lowering's rule, so the kernels
        // never divide by zero).
        BinaryOp::Div if !dtype.is_float() => (x / if y == 0.0 { 1.0 } else { y }).trunc(),
        BinaryOp::Div => x / y,
        BinaryOp::Pow => x.powf(y),
        BinaryOp::Max => nan_max(x, y),
        BinaryOp::Min => nan_min(x, y),
        BinaryOp::Equal => truth(x == y),
        BinaryOp::Less => truth(x < y),
        BinaryOp::Greater => truth(x > y),
        BinaryOp::LessOrEqual => truth(x <= y),
        BinaryOp::GreaterOrEqual => truth(x >= y),
        BinaryOp::And => truth(x != 0.0 && y != 0.0),
        BinaryOp::Or => truth(x != 0.0 || y != 0.0),
        BinaryOp::Xor => truth((x != 0.0) != (y != 0.0)),
        BinaryOp::Mod { .. } if !dtype.is_float() && y == 0.0 => 0.0,
        BinaryOp::Mod { fmod: true } => x % y,
        BinaryOp::Mod { fmod: false } => {
            let r = x % y;
            if r != 0.0 && (r < 0.0) != (y < 0.0) {
                r + y
            } else if r == 0.0 {
                // numpy's zero takes the divisor's sign.
                0f64.copysign(y)
            } else {
                r
            }
        }
        // Exact below 2^53; [`Op::Binary`] evaluates these on exact integers.
        BinaryOp::BitwiseAnd | BinaryOp::BitwiseOr | BinaryOp::BitwiseXor | BinaryOp::BitShift { .. } => {
            bitwise(b, x as i128, y as i128, 8 * dtype.size_bytes() as i128) as f64
        }
    }
}

/// Every element's bits in its dtype's width, zero-extended (a `bool` is 0
/// or 1).
fn element_bits(t: &Tensor) -> Vec<u64> {
    let mask = |v: i128| (v as u64) & (u64::MAX >> (64 - 8 * t.dtype.size_bytes()));
    match (&t.data, t.dtype) {
        (TensorData::F32(v), DType::F16) => v.iter().map(|&x| half::f16::from_f32(x).to_bits() as u64).collect(),
        (TensorData::F32(v), DType::BF16) => v.iter().map(|&x| half::bf16::from_f32(x).to_bits() as u64).collect(),
        (TensorData::F32(v), _) => v.iter().map(|&x| x.to_bits() as u64).collect(),
        (TensorData::F64(v), _) => v.iter().map(|&x| x.to_bits()).collect(),
        (TensorData::Bool(v), _) => v.iter().map(|&x| x as u64).collect(),
        _ => t.as_i128s().unwrap_or_default().into_iter().map(mask).collect(),
    }
}

/// A tensor of `dtype` whose elements have the given bits (a `bool` is
/// whether any bit is set).
fn from_bits(dtype: DType, shape: Shape, bits: &[u64]) -> Tensor {
    let data = match dtype {
        DType::F32 => TensorData::F32(bits.iter().map(|&b| f32::from_bits(b as u32)).collect()),
        DType::F16 => TensorData::F32(bits.iter().map(|&b| half::f16::from_bits(b as u16).to_f32()).collect()),
        DType::BF16 => TensorData::F32(bits.iter().map(|&b| half::bf16::from_bits(b as u16).to_f32()).collect()),
        DType::F64 => TensorData::F64(bits.iter().map(|&b| f64::from_bits(b)).collect()),
        _ => {
            let ints: Vec<i128> = bits
                .iter()
                .map(|&b| match dtype {
                    DType::I8 => b as i8 as i128,
                    DType::I16 => b as i16 as i128,
                    DType::I32 => b as i32 as i128,
                    DType::I64 => b as i64 as i128,
                    _ => b as i128,
                })
                .collect();
            return Tensor::from_ints(dtype, shape, &ints);
        }
    };
    Tensor { dtype, shape, data }
}

/// A bitwise op on exact integer values of a `bits`-wide type (the result's
/// low bits are what the type keeps).
fn bitwise(b: BinaryOp, x: i128, y: i128, bits: i128) -> i128 {
    match b {
        BinaryOp::BitwiseAnd => x & y,
        BinaryOp::BitwiseOr => x | y,
        BinaryOp::BitwiseXor => x ^ y,
        BinaryOp::BitShift { left } if !(0..bits).contains(&y) => {
            if !left && x < 0 {
                -1
            } else {
                0
            }
        }
        BinaryOp::BitShift { left: true } => x.wrapping_shl(y as u32),
        BinaryOp::BitShift { left: false } => x >> y,
        _ => unreachable!("called for bitwise ops only"),
    }
}

/// `erf` to about 1e-15: its Maclaurin series below 3, the continued
/// fraction of `erfc` above (where the series would cancel catastrophically).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut term, mut sum, x2) = (a, a, a * a);
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))).
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    r.copysign(x)
}

fn matmul(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let (ad, bd) = (a.shape.dims(), b.shape.dims());
    // numpy promotion: a 1-D A is a row [1, K], a 1-D B a column [K, 1].
    let a2: Vec<usize> = if ad.len() == 1 { vec![1, ad[0]] } else { ad.to_vec() };
    let b2: Vec<usize> = if bd.len() == 1 { vec![bd[0], 1] } else { bd.to_vec() };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast_shapes(ab, bb).unwrap_or_default();
    let (ma, mb) = (broadcast_map(&batch, ab), broadcast_map(&batch, bb));
    let (av, bv) = (a.to_f64(), b.to_f64());
    let mut out = vec![0.0; ma.len() * m * n];
    for (bi, (&ia, &ib)) in ma.iter().zip(&mb).enumerate() {
        let (ao, bo, oo) = (ia * m * k, ib * k * n, bi * m * n);
        for i in 0..m {
            for j in 0..n {
                out[oo + i * n + j] = (0..k).map(|p| av[ao + i * k + p] * bv[bo + p * n + j]).sum();
            }
        }
    }
    out
}

/// Kernel positions as (per-dim offsets, flat offset within the kernel).
fn kernel_positions(g: &WindowGeometry) -> Vec<(Vec<usize>, usize)> {
    let mut v = Vec::new();
    let mut flat = 0;
    for_each_index(&g.kernel, |k| {
        v.push((k.iter().zip(&g.dilations).map(|(k, d)| k * d).collect(), flat));
        flat += 1;
    });
    v
}

/// Flat spatial offset of `base + off` per dim if inside `dims`.
fn spatial_offset(base: &[isize], off: &[usize], dims: &[usize], strides: &[usize]) -> Option<usize> {
    let mut at = 0;
    for d in 0..dims.len() {
        let i = base[d] + off[d] as isize;
        if i < 0 || i as usize >= dims[d] {
            return None;
        }
        at += i as usize * strides[d];
    }
    Some(at)
}

fn conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, groups: usize, g: &WindowGeometry, out: &[usize]) -> Vec<f64> {
    let (xv, wv) = (x.to_f64(), w.to_f64());
    let bv = b.map(|b| b.to_f64());
    let (n, c, m) = (x.shape.0[0], x.shape.0[1], w.shape.0[0]);
    let (cg, mg) = (c / groups, m / groups);
    let in_dims = &x.shape.0[2..];
    let in_strides = Shape(in_dims.to_vec()).strides();
    let (in_size, k_size): (usize, usize) = (in_dims.iter().product(), g.kernel.iter().product());
    let out_spatial = &out[2..];
    let out_size: usize = out_spatial.iter().product();
    let kpos = kernel_positions(g);
    let mut res = vec![0.0; n * m * out_size];
    let mut o = 0;
    for bi in 0..n {
        for oc in 0..m {
            let grp = oc / mg;
            let bias = bv.as_ref().map_or(0.0, |b| b[oc]);
            for_each_index(out_spatial, |pos| {
                let base: Vec<isize> =
                    (0..pos.len()).map(|d| (pos[d] * g.strides[d]) as isize - g.pads_begin[d] as isize).collect();
                let mut acc = bias;
                for (off, kf) in &kpos {
                    let Some(at) = spatial_offset(&base, off, in_dims, &in_strides) else { continue };
                    for ic in 0..cg {
                        acc += xv[(bi * c + grp * cg + ic) * in_size + at] * wv[(oc * cg + ic) * k_size + kf];
                    }
                }
                res[o] = acc;
                o += 1;
            });
        }
    }
    res
}

fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    groups: usize,
    g: &WindowGeometry,
    out: &[usize],
) -> Vec<f64> {
    let (xv, wv) = (x.to_f64(), w.to_f64());
    let (n, c, m) = (x.shape.0[0], x.shape.0[1], out[1]);
    let (cg, mg) = (c / groups, m / groups);
    let in_dims = &x.shape.0[2..];
    let out_dims = &out[2..];
    let out_strides = Shape(out_dims.to_vec()).strides();
    let (in_size, k_size, out_size): (usize, usize, usize) =
        (in_dims.iter().product(), g.kernel.iter().product(), out_dims.iter().product());
    let kpos = kernel_positions(g);
    let mut res = vec![0.0; n * m * out_size];
    if let Some(b) = b {
        let bv = b.to_f64();
        for (i, r) in res.iter_mut().enumerate() {
            *r = bv[(i / out_size) % m];
        }
    }
    // Scatter: each input element adds its kernel-weighted copy at stride s.
    for bi in 0..n {
        for ic in 0..c {
            let grp = ic / cg;
            let mut i_flat = 0;
            for_each_index(in_dims, |pos| {
                let v = xv[(bi * c + ic) * in_size + i_flat];
                i_flat += 1;
                let base: Vec<isize> =
                    (0..pos.len()).map(|d| (pos[d] * g.strides[d]) as isize - g.pads_begin[d] as isize).collect();
                for (off, kf) in &kpos {
                    let Some(at) = spatial_offset(&base, off, out_dims, &out_strides) else { continue };
                    for j in 0..mg {
                        let oc = grp * mg + j;
                        res[(bi * m + oc) * out_size + at] += v * wv[(ic * mg + j) * k_size + kf];
                    }
                }
            });
        }
    }
    res
}

enum PoolKind {
    Max,
    Average { count_include_pad: bool },
}

fn pool(x: &Tensor, g: &WindowGeometry, kind: PoolKind) -> Vec<f64> {
    pool_with_indices(x, g, kind, false).0
}

/// Each window's pooled value and, for a max, the flat index into `x` of
/// its first maximum in window order (NaN the largest value): row-major, or
/// with the spatial axes column-major (`column_major`, 2-D).
fn pool_with_indices(x: &Tensor, g: &WindowGeometry, kind: PoolKind, column_major: bool) -> (Vec<f64>, Vec<i64>) {
    let xv = x.to_f64();
    let nc = x.shape.0[0] * x.shape.0[1];
    let in_dims = &x.shape.0[2..];
    let in_strides = Shape(in_dims.to_vec()).strides();
    let in_size: usize = in_dims.iter().product();
    let kpos = kernel_positions(g);
    let mut res = Vec::with_capacity(nc * g.output.iter().product::<usize>());
    let mut args = Vec::new();
    for plane in 0..nc {
        let xs = &xv[plane * in_size..(plane + 1) * in_size];
        for_each_index(&g.output, |pos| {
            let base: Vec<isize> =
                (0..pos.len()).map(|d| (pos[d] * g.strides[d]) as isize - g.pads_begin[d] as isize).collect();
            let (mut max, mut sum, mut valid, mut padded) = (f64::NEG_INFINITY, 0.0, 0usize, 0usize);
            let mut arg: Option<usize> = None;
            for (off, _) in &kpos {
                // A position counts toward count_include_pad's divisor if it lies
                // inside the padded extent (onnxruntime clips windows that
                // ceil_mode pushed past the end padding).
                let in_padded =
                    (0..base.len()).all(|d| base[d] + (off[d] as isize) < (in_dims[d] + g.pads_end[d]) as isize);
                if in_padded {
                    padded += 1;
                }
                if let Some(at) = spatial_offset(&base, off, in_dims, &in_strides) {
                    let v = xs[at];
                    if arg.is_none() || v > max || (v.is_nan() && !max.is_nan()) {
                        arg = Some(at);
                    }
                    max = nan_max(max, v);
                    sum += xs[at];
                    valid += 1;
                }
            }
            let at = arg.unwrap_or(0);
            let at = match (column_major, in_dims) {
                (true, [_, w]) => (at % w) * (in_size / w) + at / w,
                _ => at,
            };
            args.push((plane * in_size + at) as i64);
            res.push(match kind {
                PoolKind::Max => max,
                PoolKind::Average { count_include_pad } => {
                    let count = if count_include_pad { padded } else { valid };
                    if count == 0 {
                        0.0
                    } else {
                        sum / count as f64
                    }
                }
            });
        });
    }
    (res, args)
}

/// The input coordinate that output coordinate `o` maps to along one axis
/// (the reference evaluator's and lowering's one definition).
pub fn source_coordinate(t: CoordinateTransform, o: usize, scale: f64, len_in: usize, len_out: usize) -> f64 {
    let o = o as f64;
    match t {
        CoordinateTransform::HalfPixel => (o + 0.5) / scale - 0.5,
        CoordinateTransform::PytorchHalfPixel if len_out > 1 => (o + 0.5) / scale - 0.5,
        CoordinateTransform::PytorchHalfPixel => 0.0,
        // ONNX measures the resized length as `scale · len_in`, not the
        // integer output length: they differ when the scale does not divide.
        CoordinateTransform::AlignCorners if scale * len_in as f64 != 1.0 => {
            o * (len_in as f64 - 1.0) / (scale * len_in as f64 - 1.0)
        }
        CoordinateTransform::AlignCorners => 0.0,
        CoordinateTransform::Asymmetric => o / scale,
        CoordinateTransform::HalfPixelSymmetric => {
            let len = scale * len_in as f64;
            let offset = len_in as f64 / 2.0 * (1.0 - len_out as f64 / len);
            offset + (o + 0.5) / scale - 0.5
        }
    }
}

fn nearest_index(x: f64, mode: NearestMode, len: usize) -> usize {
    let r = match mode {
        NearestMode::RoundPreferFloor if x == x.floor() + 0.5 => x.floor(),
        NearestMode::RoundPreferCeil if x == x.floor() + 0.5 => x.ceil(),
        NearestMode::RoundPreferFloor | NearestMode::RoundPreferCeil => x.round(),
        NearestMode::Floor => x.floor(),
        NearestMode::Ceil => x.ceil(),
    };
    r.clamp(0.0, len as f64 - 1.0) as usize
}

/// The four taps of Keys' cubic convolution (parameter `a`) at input
/// coordinate `x` along an axis of `len` elements, as ONNX's Resize takes
/// them: indices `⌊x⌋ − 1 ..= ⌊x⌋ + 2` (an integral `x` counts as the end of
/// the interval below it) clamped into the axis, with their weights; with
/// `exclude_outside`, taps past the borders weigh zero and the rest are
/// renormalised.
pub fn resize_cubic_taps(x: f64, len: usize, a: f64, exclude_outside: bool) -> [(usize, f64); 4] {
    let mut base = x.floor();
    let mut t = x - base;
    if t == 0.0 {
        base -= 1.0;
        t = 1.0;
    }
    let near = |d: f64| ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
    let far = |d: f64| ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a;
    let mut w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
    let raw = [base - 1.0, base, base + 1.0, base + 2.0];
    if exclude_outside {
        for (wk, &i) in w.iter_mut().zip(&raw) {
            if i < 0.0 || i >= len as f64 {
                *wk = 0.0;
            }
        }
        let sum: f64 = w.iter().sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|wk| *wk /= sum);
        }
    }
    let last = len.saturating_sub(1) as f64;
    std::array::from_fn(|k| (raw[k].clamp(0.0, last) as usize, w[k]))
}

fn resize<E: Fn(String) -> GraphError>(
    ev: &Eval<'_, E>,
    x: &Tensor,
    scales: &[f32],
    mode: ResizeMode,
    transform: CoordinateTransform,
    nearest: NearestMode,
) -> Result<Vec<Tensor>, GraphError> {
    let in_dims = x.shape.dims();
    let out_dims = ev.out_dims().to_vec();
    let strides = x.shape.strides();
    let r = in_dims.len();
    let coords: Vec<Vec<f64>> = (0..r)
        .map(|d| {
            (0..out_dims[d])
                .map(|o| source_coordinate(transform, o, scales[d] as f64, in_dims[d], out_dims[d]))
                .collect()
        })
        .collect();
    match mode {
        ResizeMode::Nearest => {
            let idx: Vec<Vec<usize>> = (0..r)
                .map(|d| coords[d].iter().map(|&c| nearest_index(c, nearest, in_dims[d]) * strides[d]).collect())
                .collect();
            let mut picks = Vec::with_capacity(out_dims.iter().product());
            for_each_index(&out_dims, |pos| picks.push((0, (0..r).map(|d| idx[d][pos[d]]).sum::<usize>())));
            Ok(vec![ev.moved(&[&x.data], picks.into_iter())])
        }
        ResizeMode::Linear => {
            // Per axis and output coordinate: (lower index, upper index, upper weight).
            let taps: Vec<Vec<(usize, usize, f64)>> = (0..r)
                .map(|d| {
                    coords[d]
                        .iter()
                        .map(|&c| {
                            let c = c.clamp(0.0, in_dims[d] as f64 - 1.0);
                            let lo = c.floor() as usize;
                            (lo, (lo + 1).min(in_dims[d] - 1), c - lo as f64)
                        })
                        .collect()
                })
                .collect();
            let xv = x.to_f64();
            let mut v = Vec::with_capacity(out_dims.iter().product());
            for_each_index(&out_dims, |pos| {
                let mut acc = 0.0;
                for corner in 0..(1usize << r) {
                    let mut weight = 1.0;
                    let mut at = 0;
                    for d in 0..r {
                        let (lo, hi, w) = taps[d][pos[d]];
                        let upper = corner >> d & 1 == 1;
                        weight *= if upper { w } else { 1.0 - w };
                        at += if upper { hi } else { lo } * strides[d];
                    }
                    if weight != 0.0 {
                        acc += weight * xv[at];
                    }
                }
                v.push(acc);
            });
            Ok(ev.out(&v))
        }
        ResizeMode::Cubic { coeff_a, exclude_outside } => {
            let taps: Vec<Vec<[(usize, f64); 4]>> = (0..r)
                .map(|d| {
                    coords[d]
                        .iter()
                        .map(|&c| resize_cubic_taps(c, in_dims[d], coeff_a as f64, exclude_outside))
                        .collect()
                })
                .collect();
            let xv = x.to_f64();
            let mut v = Vec::with_capacity(out_dims.iter().product());
            for_each_index(&out_dims, |pos| {
                // Every combination of one tap per axis, skipping zero weights.
                let mut terms: Vec<(f64, usize)> = vec![(1.0, 0)];
                for d in 0..r {
                    let mut next = Vec::with_capacity(terms.len() * 4);
                    for &(w0, at) in &terms {
                        for &(i, w) in &taps[d][pos[d]] {
                            if w != 0.0 {
                                next.push((w0 * w, at + i * strides[d]));
                            }
                        }
                    }
                    terms = next;
                }
                v.push(terms.iter().map(|&(w, at)| w * xv[at]).sum());
            });
            Ok(ev.out(&v))
        }
    }
}
