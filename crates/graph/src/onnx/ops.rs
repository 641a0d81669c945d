//! ONNX nodes to [`Op`]s, one arm per operator, with each opset's way of
//! passing attributes (as attributes before, as constant inputs after, the
//! opset that changed it) resolved into [`Op`]'s single form.

use super::error::ImportError;
use super::fold::{broadcast, reshape_dims, resolve_slice, squeeze_dims, unsqueeze_dims};
use super::{Importer, NodeView};
use crate::dtype::DType;
use crate::op::{BinaryOp, CoordinateTransform, NearestMode, Op, Padding, ResizeMode, UnaryOp, Window};
use crate::tensor::{Shape, Tensor, TensorData};

pub(crate) fn convert(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let name = n.name.as_str();
    let a = n.attrs;
    let unary = |u: UnaryOp| -> Result<Option<Op>, ImportError> { Ok(Some(Op::Unary(u))) };
    let op: Option<Op> = match n.op_type {
        "Conv" | "ConvTranspose" => {
            let w = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("weight input is missing"))?;
            let w_dims = imp.shape_of(w);
            let window = window(n, w_dims.get(2..).map(<[usize]>::to_vec))?;
            let groups = to_usize(n, "group", a.int("group", name)?.unwrap_or(1))?;
            if n.op_type == "Conv" {
                Some(Op::Conv { window, groups })
            } else {
                if a.has("output_shape") {
                    return Err(n.err("`output_shape` is not supported: give `pads` and `output_padding` instead"));
                }
                let output_padding = match a.ints("output_padding", name)? {
                    Some(v) => to_usizes(n, "output_padding", &v)?,
                    None => vec![0; window.kernel.len()],
                };
                Some(Op::ConvTranspose { window, groups, output_padding })
            }
        }
        "MaxPool" | "AveragePool" => {
            if n.outputs.get(1).is_some_and(|o| !o.is_empty()) {
                return Err(n.err("the Indices output is not supported"));
            }
            let window = window(n, None)?;
            let ceil_mode = a.int("ceil_mode", name)?.unwrap_or(0) != 0;
            if n.op_type == "MaxPool" {
                Some(Op::MaxPool { window, ceil_mode })
            } else {
                let count_include_pad = a.int("count_include_pad", name)?.unwrap_or(0) != 0;
                Some(Op::AveragePool { window, ceil_mode, count_include_pad })
            }
        }
        "GlobalAveragePool" => Some(Op::GlobalAveragePool),
        "GlobalMaxPool" => Some(Op::GlobalMaxPool),
        "BatchNormalization" => {
            if a.int("training_mode", name)?.unwrap_or(0) != 0 || n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(n.err("training mode (running mean/var outputs) is not supported; export for inference"));
            }
            Some(Op::BatchNormalization { epsilon: a.float("epsilon", name)?.unwrap_or(1e-5) })
        }
        "Gemm" => Some(Op::Gemm {
            alpha: a.float("alpha", name)?.unwrap_or(1.0),
            beta: a.float("beta", name)?.unwrap_or(1.0),
            trans_a: a.int("transA", name)?.unwrap_or(0) != 0,
            trans_b: a.int("transB", name)?.unwrap_or(0) != 0,
        }),
        "MatMul" => Some(Op::MatMul),
        "Relu" => unary(UnaryOp::Relu)?,
        "Sigmoid" => unary(UnaryOp::Sigmoid)?,
        "Tanh" => unary(UnaryOp::Tanh)?,
        "Exp" => unary(UnaryOp::Exp)?,
        "Log" => unary(UnaryOp::Log)?,
        "Sqrt" => unary(UnaryOp::Sqrt)?,
        "Erf" => unary(UnaryOp::Erf)?,
        "Neg" => unary(UnaryOp::Neg)?,
        "Abs" => unary(UnaryOp::Abs)?,
        "Reciprocal" => unary(UnaryOp::Reciprocal)?,
        "Floor" => unary(UnaryOp::Floor)?,
        "Ceil" => unary(UnaryOp::Ceil)?,
        "HardSwish" => unary(UnaryOp::HardSwish)?,
        "LeakyRelu" => unary(UnaryOp::LeakyRelu { alpha: a.float("alpha", name)?.unwrap_or(0.01) })?,
        "HardSigmoid" => unary(UnaryOp::HardSigmoid {
            alpha: a.float("alpha", name)?.unwrap_or(0.2),
            beta: a.float("beta", name)?.unwrap_or(0.5),
        })?,
        "Clip" => {
            // Opset 11 moved the bounds from attributes to optional inputs.
            let (min, max) = if n.opset < 11 {
                (a.float("min", name)?.unwrap_or(f32::NEG_INFINITY), a.float("max", name)?.unwrap_or(f32::INFINITY))
            } else {
                let bound = |imp: &mut Importer, i: usize, default: f32| -> Result<f32, ImportError> {
                    match const_input(imp, n, i, "bound")? {
                        Some(t) => t.to_f64().first().map(|&v| v as f32).ok_or_else(|| n.err("empty bound")),
                        None => Ok(default),
                    }
                };
                (bound(imp, 1, f32::NEG_INFINITY)?, bound(imp, 2, f32::INFINITY)?)
            };
            unary(UnaryOp::Clip { min, max })?
        }
        "Add" => Some(Op::Binary(BinaryOp::Add)),
        "Sub" => Some(Op::Binary(BinaryOp::Sub)),
        "Mul" => Some(Op::Binary(BinaryOp::Mul)),
        "Div" => Some(Op::Binary(BinaryOp::Div)),
        "Pow" => Some(Op::Binary(BinaryOp::Pow)),
        "Equal" => Some(Op::Binary(BinaryOp::Equal)),
        "Less" => Some(Op::Binary(BinaryOp::Less)),
        "Greater" => Some(Op::Binary(BinaryOp::Greater)),
        "LessOrEqual" => Some(Op::Binary(BinaryOp::LessOrEqual)),
        "GreaterOrEqual" => Some(Op::Binary(BinaryOp::GreaterOrEqual)),
        "And" => Some(Op::Binary(BinaryOp::And)),
        "Or" => Some(Op::Binary(BinaryOp::Or)),
        "Xor" => Some(Op::Binary(BinaryOp::Xor)),
        "Not" => unary(UnaryOp::Not)?,
        "Sign" => unary(UnaryOp::Sign)?,
        "Mod" => Some(Op::Binary(BinaryOp::Mod { fmod: a.int("fmod", name)?.unwrap_or(0) != 0 })),
        "Max" | "Min" => {
            let b = if n.op_type == "Max" { BinaryOp::Max } else { BinaryOp::Min };
            return variadic(imp, n, b);
        }
        "Sum" if n.inputs.len() == 1 => Some(Op::Identity),
        "Sum" => Some(Op::Sum),
        "Where" => Some(Op::Where),
        "Cast" => {
            let to = a.int("to", name)?.ok_or_else(|| n.err("attribute `to` is missing"))?;
            Some(Op::Cast { to: super::tensor::dtype_of(to as i32).map_err(|m| n.err(m))? })
        }
        "CastLike" => {
            // Cast to the element type of the second input.
            let like = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the target_type input is missing"))?;
            let to = imp.dtype_of(like).ok_or_else(|| n.err(format!("input `{like}` is not defined")))?;
            Some(Op::Cast { to })
        }
        "Softmax" => return softmax(imp, n),
        "LayerNormalization" => {
            if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(n.err("the Mean and InvStdDev outputs are not supported"));
            }
            Some(Op::LayerNormalization {
                axis: a.int("axis", name)?.unwrap_or(-1),
                epsilon: a.float("epsilon", name)?.unwrap_or(1e-5),
            })
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" => {
            let rank = imp.shape_of(data_input(n)?).len();
            let keepdims = a.int("keepdims", name)?.unwrap_or(1) != 0;
            // ReduceSum takes its axes as an input from opset 13, the other
            // reductions from opset 18.
            let axes = if (n.op_type == "ReduceSum" && n.opset >= 13) || n.opset >= 18 {
                const_input(imp, n, 1, "axes")?.map(|t| ints_of(n, &t)).transpose()?
            } else {
                a.ints("axes", name)?
            };
            let axes = match axes {
                Some(v) if !v.is_empty() => v,
                _ if a.int("noop_with_empty_axes", name)?.unwrap_or(0) != 0 => {
                    return emit_one(imp, n, Op::Identity, 1);
                }
                // No axes: all of them, spelled out so the op never depends
                // on a convention for the empty list.
                _ => (0..rank as i64).collect(),
            };
            Some(match n.op_type {
                "ReduceMean" => Op::ReduceMean { axes, keepdims },
                "ReduceSum" => Op::ReduceSum { axes, keepdims },
                _ => Op::ReduceMax { axes, keepdims },
            })
        }
        "LRN" => Some(Op::Lrn {
            size: to_usize(n, "size", a.int("size", name)?.ok_or_else(|| n.err("attribute `size` is missing"))?)?,
            alpha: a.float("alpha", name)?.unwrap_or(1e-4),
            beta: a.float("beta", name)?.unwrap_or(0.75),
            bias: a.float("bias", name)?.unwrap_or(1.0),
        }),
        "Concat" => {
            Some(Op::Concat { axis: a.int("axis", name)?.ok_or_else(|| n.err("attribute `axis` is missing"))? })
        }
        "Split" => {
            let dims = imp.shape_of(data_input(n)?);
            let axis = a.int("axis", name)?.unwrap_or(0);
            let ax = norm_axis(n, axis, dims.len())?;
            // Opset 13 moved `split` from an attribute to an optional input.
            let sizes = if n.opset >= 13 {
                const_input(imp, n, 1, "split")?.map(|t| ints_of(n, &t)).transpose()?
            } else {
                a.ints("split", name)?
            };
            // Opset 18 added `num_outputs`: equal chunks of ceil(d / n), the
            // last one smaller when the dimension does not divide.
            let num_outputs = if n.opset >= 18 { a.int("num_outputs", name)? } else { None };
            let sizes = match (sizes, num_outputs) {
                (Some(v), _) if !v.is_empty() => to_usizes(n, "split", &v)?,
                (_, Some(parts)) => {
                    let parts = to_usize(n, "num_outputs", parts)?;
                    if parts == 0 || parts != n.outputs.len() {
                        return Err(
                            n.err(format!("num_outputs is {parts} but the node has {} outputs", n.outputs.len()))
                        );
                    }
                    let chunk = dims[ax].div_ceil(parts);
                    let mut sizes = vec![chunk; parts];
                    let before_last = chunk * (parts - 1);
                    if before_last > dims[ax] {
                        return Err(n.err(format!("cannot split {} into {parts} chunks of {chunk}", dims[ax])));
                    }
                    sizes[parts - 1] = dims[ax] - before_last;
                    sizes
                }
                _ => {
                    let parts = n.outputs.len().max(1);
                    if !dims[ax].is_multiple_of(parts) {
                        return Err(n.err(format!("cannot split {} evenly into {parts} outputs", dims[ax])));
                    }
                    vec![dims[ax] / parts; parts]
                }
            };
            Some(Op::Split { axis, sizes })
        }
        "Reshape" => {
            let shape = const_input(imp, n, 1, "shape")?.ok_or_else(|| n.err("the shape input is missing"))?;
            let shape = ints_of(n, &shape)?;
            let allow_zero = a.int("allowzero", name)?.unwrap_or(0) != 0;
            // Validate here so a bad shape is reported with ONNX's terms.
            reshape_dims(&n.fold_node(), &imp.shape_of(data_input(n)?), &shape, allow_zero)?;
            Some(Op::Reshape { shape, allow_zero })
        }
        "Flatten" => Some(Op::Flatten { axis: a.int("axis", name)?.unwrap_or(1) }),
        "Transpose" => {
            let rank = imp.shape_of(data_input(n)?).len();
            let perm = match a.ints("perm", name)? {
                Some(p) => to_usizes(n, "perm", &p)?,
                None => (0..rank).rev().collect(),
            };
            Some(Op::Transpose { perm })
        }
        "Squeeze" | "Unsqueeze" => {
            let dims = imp.shape_of(data_input(n)?);
            // Opset 13 moved `axes` from an attribute to an input.
            let axes = if n.opset >= 13 {
                const_input(imp, n, 1, "axes")?.map(|t| ints_of(n, &t)).transpose()?
            } else {
                a.ints("axes", name)?
            };
            if n.op_type == "Unsqueeze" {
                let axes = axes.ok_or_else(|| n.err("axes are missing"))?;
                unsqueeze_dims(&n.fold_node(), &dims, &axes)?;
                Some(Op::Unsqueeze { axes })
            } else {
                squeeze_dims(&n.fold_node(), &dims, axes.as_deref())?;
                let axes = match axes {
                    Some(v) => v,
                    // All size-1 axes, explicit.
                    None => (0..dims.len()).filter(|&i| dims[i] == 1).map(|i| i as i64).collect(),
                };
                Some(Op::Squeeze { axes })
            }
        }
        "Gather" => Some(Op::Gather { axis: a.int("axis", name)?.unwrap_or(0) }),
        "Resize" | "Upsample" => Some(resize(imp, n)?),
        "Pad" => {
            let mode = a.string("mode", name)?.unwrap_or_else(|| "constant".into());
            if mode != "constant" {
                return Err(n.err(format!("pad mode `{mode}` is not supported (only `constant`)")));
            }
            // Opset 11 moved pads and the value from attributes to inputs.
            let (pads, value) = if n.opset < 11 {
                (
                    a.ints("pads", name)?.ok_or_else(|| n.err("attribute `pads` is missing"))?,
                    a.float("value", name)?.unwrap_or(0.0),
                )
            } else {
                let pads = const_input(imp, n, 1, "pads")?.ok_or_else(|| n.err("the pads input is missing"))?;
                let value = match const_input(imp, n, 2, "constant_value")? {
                    Some(t) => t.to_f64().first().copied().unwrap_or(0.0) as f32,
                    None => 0.0,
                };
                (ints_of(n, &pads)?, value)
            };
            // Opset 18 added `axes`: the pads then cover only those axes.
            let pads = match const_input(imp, n, 3, "axes")? {
                Some(axes) => {
                    let axes = ints_of(n, &axes)?;
                    let rank = imp.shape_of(data_input(n)?).len();
                    if pads.len() != 2 * axes.len() {
                        return Err(n.err(format!(
                            "{} pads for {} axes (expected twice as many)",
                            pads.len(),
                            axes.len()
                        )));
                    }
                    let mut full = vec![0; 2 * rank];
                    for (k, &axis) in axes.iter().enumerate() {
                        let ax = norm_axis(n, axis, rank)?;
                        full[ax] = pads[k];
                        full[rank + ax] = pads[axes.len() + k];
                    }
                    full
                }
                None => pads,
            };
            if pads.iter().any(|&p| p < 0) {
                return Err(n.err(format!("negative pads {pads:?} (cropping) are not supported; use Slice")));
            }
            Some(Op::Pad { pads: to_usizes(n, "pads", &pads)?, value })
        }
        "Slice" => {
            let dims = imp.shape_of(data_input(n)?);
            // Opset 10 moved starts/ends/axes to inputs and added steps.
            let (starts, ends, axes, steps) = if n.opset >= 10 {
                let req = |imp: &mut Importer, i: usize, what: &str| -> Result<Vec<i64>, ImportError> {
                    let t =
                        const_input(imp, n, i, what)?.ok_or_else(|| n.err(format!("the {what} input is missing")))?;
                    ints_of(n, &t)
                };
                let opt = |imp: &mut Importer, i: usize, what: &str| -> Result<Option<Vec<i64>>, ImportError> {
                    const_input(imp, n, i, what)?.map(|t| ints_of(n, &t)).transpose()
                };
                (req(imp, 1, "starts")?, req(imp, 2, "ends")?, opt(imp, 3, "axes")?, opt(imp, 4, "steps")?)
            } else {
                let starts = a.ints("starts", name)?.ok_or_else(|| n.err("attribute `starts` is missing"))?;
                let ends = a.ints("ends", name)?.ok_or_else(|| n.err("attribute `ends` is missing"))?;
                (starts, ends, a.ints("axes", name)?, None)
            };
            let s = resolve_slice(&n.fold_node(), &dims, &starts, &ends, axes.as_deref(), steps.as_deref())?;
            Some(Op::Slice { starts: s.starts, ends: s.ends, axes: s.axes, steps: s.steps })
        }
        "Identity" => Some(Op::Identity),
        "Dropout" => {
            // Opset 12 made training mode an input; a constant false is inference.
            if let Some(t) = const_input(imp, n, 2, "training_mode")? {
                if t.to_f64().first().is_some_and(|&v| v != 0.0) {
                    return Err(n.err("training mode is not supported"));
                }
            }
            // The mask output is not produced; a node consuming it fails
            // naming the tensor.
            return emit_one(imp, n, Op::Identity, 1);
        }
        "Expand" => return expand(imp, n),
        "ConstantOfShape" | "Range" => {
            return Err(n.err(
                "its inputs are computed from run-time data; weft needs them constant (static shapes): \
                 bind the model's dynamic dims with --shape",
            ))
        }
        other => return Err(ImportError::Unsupported { ops: vec![(other.to_string(), n.name.clone())] }),
    };
    match op {
        Some(op) => {
            let count = n.inputs.len();
            emit_one(imp, n, op, count)
        }
        None => Ok(()),
    }
}

/// Emits `op` over the node's first `count` inputs (the data inputs; those
/// folded into attributes are dropped) with the node's output names.
fn emit_one(imp: &mut Importer, n: &NodeView<'_>, op: Op, count: usize) -> Result<(), ImportError> {
    let keep = data_inputs(&op, count);
    let mut inputs = Vec::new();
    for i in 0..keep {
        inputs.push(match n.inputs.get(i).copied().flatten() {
            Some(name) => Some(imp.tensor(name)?),
            None => None,
        });
    }
    // Trailing omitted optional inputs mean nothing to the op.
    while inputs.last().is_some_and(Option::is_none) {
        inputs.pop();
    }
    let outputs = output_names(n, &op);
    imp.emit(&n.name, op, inputs, &outputs)?;
    Ok(())
}

/// How many leading ONNX inputs remain inputs of `op`; the rest were folded
/// into its attributes.
fn data_inputs(op: &Op, count: usize) -> usize {
    let cap = match op {
        Op::Unary(_)
        | Op::Cast { .. }
        | Op::Reshape { .. }
        | Op::Split { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. } => 1,
        Op::Resize { .. } | Op::Pad { .. } | Op::Slice { .. } | Op::Identity => 1,
        Op::ReduceMean { .. } | Op::ReduceSum { .. } | Op::ReduceMax { .. } => 1,
        _ => usize::MAX,
    };
    count.min(cap)
}

/// The ONNX output names the op produces (Split has several, the rest one).
fn output_names(n: &NodeView<'_>, op: &Op) -> Vec<String> {
    match op {
        Op::Split { .. } => n.outputs.to_vec(),
        _ => n.outputs.iter().take(1).cloned().collect(),
    }
}

fn data_input<'a>(n: &NodeView<'a>) -> Result<&'a str, ImportError> {
    n.inputs.first().copied().flatten().ok_or_else(|| n.err("the data input is missing"))
}

/// The constant value of optional input `i`, `None` when omitted; an error
/// saying why when it is computed at run time. An empty tensor counts as
/// omitted, as exporters use that for "not given".
/// A graph input given a value at import ([`super::ImportOptions::values`])
/// counts as a constant here, and the graph is specialised to it.
fn const_input(imp: &mut Importer, n: &NodeView<'_>, i: usize, what: &str) -> Result<Option<Tensor>, ImportError> {
    let Some(name) = n.inputs.get(i).copied().flatten() else { return Ok(None) };
    match imp.const_of(name).cloned().or_else(|| imp.input_value(name)) {
        Some(t) if t.data.is_empty() && t.shape.numel() == 0 => Ok(None),
        Some(t) => Ok(Some(t)),
        None => Err(n.err(format!(
            "input `{name}` ({what}) is computed at run time; weft needs it to be a constant \
             (give the input's value, e.g. `--input {name}=FILE.npy`, or fold it into the model)"
        ))),
    }
}

fn ints_of(n: &NodeView<'_>, t: &Tensor) -> Result<Vec<i64>, ImportError> {
    t.as_i64s().ok_or_else(|| n.err(format!("expected an integer tensor, found {}", t.dtype)))
}

fn to_usize(n: &NodeView<'_>, what: &str, v: i64) -> Result<usize, ImportError> {
    usize::try_from(v).map_err(|_| n.err(format!("`{what}` is negative ({v})")))
}

fn to_usizes(n: &NodeView<'_>, what: &str, v: &[i64]) -> Result<Vec<usize>, ImportError> {
    v.iter().map(|&x| to_usize(n, what, x)).collect()
}

fn norm_axis(n: &NodeView<'_>, axis: i64, rank: usize) -> Result<usize, ImportError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(n.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Conv/pool window attributes; `kernel` from the weight's shape for Conv.
fn window(n: &NodeView<'_>, kernel_from_weight: Option<Vec<usize>>) -> Result<Window, ImportError> {
    let a = n.attrs;
    let name = n.name.as_str();
    let kernel = match a.ints("kernel_shape", name)? {
        Some(k) => to_usizes(n, "kernel_shape", &k)?,
        None => kernel_from_weight.ok_or_else(|| n.err("attribute `kernel_shape` is missing"))?,
    };
    let spatial = kernel.len();
    let strides = match a.ints("strides", name)? {
        Some(s) => to_usizes(n, "strides", &s)?,
        None => vec![1; spatial],
    };
    let dilations = match a.ints("dilations", name)? {
        Some(d) => to_usizes(n, "dilations", &d)?,
        None => vec![1; spatial],
    };
    let auto_pad = a.string("auto_pad", name)?.unwrap_or_else(|| "NOTSET".into());
    let padding = match auto_pad.as_str() {
        "NOTSET" | "" => Padding::Explicit(match a.ints("pads", name)? {
            Some(p) => to_usizes(n, "pads", &p)?,
            None => vec![0; 2 * spatial],
        }),
        "VALID" => Padding::Explicit(vec![0; 2 * spatial]),
        "SAME_UPPER" => Padding::SameUpper,
        "SAME_LOWER" => Padding::SameLower,
        other => return Err(n.err(format!("unknown auto_pad `{other}`"))),
    };
    if strides.len() != spatial || dilations.len() != spatial {
        return Err(n.err(format!("kernel {kernel:?}, strides {strides:?} and dilations {dilations:?} differ in rank")));
    }
    Ok(Window { kernel, strides, dilations, padding })
}

/// Max/Min take any number of inputs: one is a copy, more are a chain.
fn variadic(imp: &mut Importer, n: &NodeView<'_>, b: BinaryOp) -> Result<(), ImportError> {
    let names: Vec<&str> = n.inputs.iter().flatten().copied().collect();
    if names.len() < 2 {
        return emit_one(imp, n, Op::Identity, 1);
    }
    let mut acc = imp.tensor(names[0])?;
    for (k, next) in names.iter().enumerate().skip(1) {
        let rhs = imp.tensor(next)?;
        let outs: Vec<String> = if k + 1 == names.len() { n.outputs.iter().take(1).cloned().collect() } else { vec![] };
        acc = imp.emit(&format!("{}/{k}", n.name), Op::Binary(b), vec![Some(acc), Some(rhs)], &outs)?[0];
    }
    Ok(())
}

/// Softmax. Before opset 13 it normalises over all dimensions from `axis`
/// on (default 1), as if the input were reshaped to 2-D; from 13 over `axis`
/// alone (default -1). The two agree when `axis` is the last dimension; else
/// the old form becomes Reshape → Softmax(last) → Reshape.
fn softmax(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let x = data_input(n)?;
    let dims = imp.shape_of(x);
    let rank = dims.len();
    if n.opset >= 13 {
        let axis = n.attrs.int("axis", &n.name)?.unwrap_or(-1);
        return emit_one(imp, n, Op::Softmax { axis }, 1);
    }
    let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(1), rank.max(1))?;
    let inner: usize = dims[axis..].iter().product();
    if axis + 1 >= rank || inner == dims[rank - 1] {
        // Everything from `axis` on is one dimension's worth: plain softmax
        // over the last axis is the same computation.
        return emit_one(imp, n, Op::Softmax { axis: rank as i64 - 1 }, 1);
    }
    let outer: usize = dims[..axis].iter().product();
    let xid = imp.tensor(x)?;
    let flat = imp.emit(
        &format!("{}/flatten", n.name),
        Op::Reshape { shape: vec![outer as i64, inner as i64], allow_zero: false },
        vec![Some(xid)],
        &[],
    )?[0];
    let soft = imp.emit(&format!("{}/softmax", n.name), Op::Softmax { axis: 1 }, vec![Some(flat)], &[])?[0];
    let back: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    imp.emit(
        &n.name,
        Op::Reshape { shape: back, allow_zero: true },
        vec![Some(soft)],
        &n.outputs.iter().take(1).cloned().collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// Expand of a run-time tensor to a constant shape: a broadcasting multiply
/// by ones, which every backend already has (weft has no expand operator).
fn expand(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let x = data_input(n)?;
    let dims = imp.shape_of(x);
    let shape = const_input(imp, n, 1, "shape")?.ok_or_else(|| n.err("the shape input is missing"))?;
    let target = to_usizes(n, "shape", &ints_of(n, &shape)?)?;
    let out = broadcast(&dims, &target)
        .ok_or_else(|| n.err(format!("cannot expand {} to {}", Shape(dims.clone()), Shape(target.clone()))))?;
    if out == dims {
        return emit_one(imp, n, Op::Identity, 1);
    }
    super::tensor::check_elements(|| format!("node `{}` (Expand)", n.name), &out, n.max_elements)?;
    let dtype = imp.dtype_of(x).unwrap_or(DType::F32);
    let count = target.iter().product();
    let data = match dtype {
        DType::I32 => TensorData::I32(vec![1; count]),
        DType::I64 => TensorData::I64(vec![1; count]),
        DType::Bool => return Err(n.err("expanding a run-time boolean tensor is not supported")),
        _ => TensorData::F32(vec![1.0; count]),
    };
    let ones = imp.add_constant(format!("{}/ones", n.name), Tensor { dtype, shape: Shape(target), data });
    let xid = imp.tensor(x)?;
    imp.emit(&n.name, Op::Binary(BinaryOp::Mul), vec![Some(xid), Some(ones)], &n.outputs[..1.min(n.outputs.len())])?;
    Ok(())
}

/// Resize and Upsample, with the scales resolved per dimension.
fn resize(imp: &mut Importer, n: &NodeView<'_>) -> Result<Op, ImportError> {
    let name = n.name.as_str();
    let a = n.attrs;
    let dims = imp.shape_of(data_input(n)?);
    let mode = match a.string("mode", name)?.as_deref().unwrap_or("nearest") {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        other => return Err(n.err(format!("resize mode `{other}` is not supported (nearest, linear)"))),
    };
    // Opset 18 additions weft does not implement are refused by name rather
    // than ignored (each changes the output).
    if a.int("antialias", name)?.unwrap_or(0) != 0 {
        return Err(n.err("antialias=1 is not supported"));
    }
    if let Some(policy) = a.string("keep_aspect_ratio_policy", name)?.filter(|p| p != "stretch") {
        return Err(n.err(format!("keep_aspect_ratio_policy `{policy}` is not supported (only `stretch`)")));
    }
    if a.has("axes") {
        return Err(n.err("the `axes` attribute is not supported: give scales or sizes for every dimension"));
    }
    // Upsample and Resize-10 have no coordinate attributes: their semantics
    // are asymmetric coordinates with floor rounding for nearest.
    let old = n.op_type == "Upsample" || n.opset < 11;
    let scales_input = if old { 1 } else { 2 };
    let mut scales: Option<Vec<f32>> =
        const_input(imp, n, scales_input, "scales")?.map(|t| t.to_f64().iter().map(|&v| v as f32).collect());
    if n.op_type == "Upsample" && scales.is_none() {
        scales = a.floats("scales", name)?;
    }
    if scales.is_none() && !old {
        if let Some(sizes) = const_input(imp, n, 3, "sizes")? {
            let sizes = to_usizes(n, "sizes", &ints_of(n, &sizes)?)?;
            if sizes.len() != dims.len() {
                return Err(n.err(format!("sizes {sizes:?} do not match the input's rank {}", dims.len())));
            }
            // The smallest f32 scale whose floor(in · scale) is the size, so
            // shape inference reproduces the requested size exactly.
            let mut v = Vec::new();
            for (&d, &s) in dims.iter().zip(&sizes) {
                if d == 0 && s != 0 {
                    return Err(n.err(format!("cannot resize an empty dimension to {s}")));
                }
                let mut scale = s as f32 / d.max(1) as f32;
                while ((d as f32) * scale).floor() < s as f32 {
                    scale = f32::from_bits(scale.to_bits() + 1);
                }
                v.push(scale);
            }
            scales = Some(v);
        }
    }
    let scales = scales.ok_or_else(|| n.err("neither scales nor sizes is given"))?;
    if scales.len() != dims.len() {
        return Err(n.err(format!("{} scales for a rank-{} input", scales.len(), dims.len())));
    }
    let (transform, nearest) = if old {
        (CoordinateTransform::Asymmetric, NearestMode::Floor)
    } else {
        let t = match a.string("coordinate_transformation_mode", name)?.as_deref().unwrap_or("half_pixel") {
            "half_pixel" => CoordinateTransform::HalfPixel,
            "pytorch_half_pixel" => CoordinateTransform::PytorchHalfPixel,
            "align_corners" => CoordinateTransform::AlignCorners,
            "asymmetric" => CoordinateTransform::Asymmetric,
            other => return Err(n.err(format!("coordinate_transformation_mode `{other}` is not supported"))),
        };
        let m = match a.string("nearest_mode", name)?.as_deref().unwrap_or("round_prefer_floor") {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            other => return Err(n.err(format!("nearest_mode `{other}` is not supported"))),
        };
        (t, m)
    };
    Ok(Op::Resize { scales, mode, transform, nearest })
}
