//! ONNX nodes to [`Op`]s, one arm per operator, with each opset's way of
//! passing attributes (as attributes before, as constant inputs after, the
//! opset that changed it) resolved into [`Op`]'s single form.

use super::error::ImportError;
use super::fold::{broadcast, reshape_dims, resolve_slice, squeeze_dims, unsqueeze_dims};
use super::{Importer, NodeView};
use crate::dtype::DType;
use crate::graph::TensorId;
use crate::op::{
    BinaryOp, CoordinateTransform, NearestMode, Op, Padding, ResizeMode, ScatterReduction, UnaryOp, Window,
};
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
                let mut window = window;
                let mut output_padding = match a.ints("output_padding", name)? {
                    Some(v) => to_usizes(n, "output_padding", &v)?,
                    None => vec![0; window.kernel.len()],
                };
                if let Some(shape) = a.ints("output_shape", name)? {
                    let x = imp.shape_of(data_input(n)?);
                    let pads = transpose_pads_for(n, &x, &window, &mut output_padding, &shape)?;
                    window.padding = Padding::Explicit(pads);
                }
                Some(Op::ConvTranspose { window, groups, output_padding })
            }
        }
        "MaxPool" | "AveragePool" => {
            let window = window(n, None)?;
            let ceil_mode = a.int("ceil_mode", name)?.unwrap_or(0) != 0;
            if n.op_type == "MaxPool" && wanted(n, 1) {
                let column_major = match a.int("storage_order", name)?.unwrap_or(0) {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(n.err(format!("storage_order {other} is not 0 (row-major) or 1 (column-major)")))
                    }
                };
                let op = Op::MaxPoolWithIndices { window, ceil_mode, column_major };
                let x = imp.tensor(data_input(n)?)?;
                imp.emit(&n.name, op, vec![Some(x)], &n.outputs[..2])?;
                return Ok(());
            }
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
                if n.opset < 14 {
                    return Err(n.err(
                        "training mode before opset 14 (saved mean/var outputs) is not supported; export for inference",
                    ));
                }
                return batch_norm_training(imp, n);
            }
            // Opsets 7 and 8 have `spatial`; 0 means per-element statistics
            // (scale and mean shaped as the input without its batch).
            if n.opset < 9 && a.int("spatial", name)?.unwrap_or(1) == 0 {
                return Err(n.err(
                    "spatial=0 (statistics per element, not per channel) is not supported; \
                     export with spatial=1 or opset 9 or later",
                ));
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
        "Softplus" => unary(UnaryOp::Softplus)?,
        "Softsign" => unary(UnaryOp::Softsign)?,
        "Mish" => unary(UnaryOp::Mish)?,
        "Sinh" => unary(UnaryOp::Sinh)?,
        "Cosh" => unary(UnaryOp::Cosh)?,
        "Asinh" => unary(UnaryOp::Asinh)?,
        "Acosh" => unary(UnaryOp::Acosh)?,
        "Atanh" => unary(UnaryOp::Atanh)?,
        "Sin" => unary(UnaryOp::Sin)?,
        "Cos" => unary(UnaryOp::Cos)?,
        "Tan" => unary(UnaryOp::Tan)?,
        "Asin" => unary(UnaryOp::Asin)?,
        "Acos" => unary(UnaryOp::Acos)?,
        "Atan" => unary(UnaryOp::Atan)?,
        "Elu" => unary(UnaryOp::Elu { alpha: a.float("alpha", name)?.unwrap_or(1.0) })?,
        "Celu" => unary(UnaryOp::Celu { alpha: a.float("alpha", name)?.unwrap_or(1.0) })?,
        "ThresholdedRelu" => unary(UnaryOp::ThresholdedRelu { alpha: a.float("alpha", name)?.unwrap_or(1.0) })?,
        "Selu" => unary(UnaryOp::Selu {
            alpha: a.float("alpha", name)?.unwrap_or(1.673_263_2),
            gamma: a.float("gamma", name)?.unwrap_or(1.050_701),
        })?,
        "PRelu" => return prelu(imp, n),
        "DequantizeLinear" => return dequantize_linear(imp, n),
        "QuantizeLinear" => return quantize_linear(imp, n),
        "DynamicQuantizeLinear" => return dynamic_quantize_linear(imp, n),
        "MatMulInteger" => return matmul_integer(imp, n),
        "QLinearMatMul" => return qlinear_matmul(imp, n),
        "ConvInteger" => return conv_integer(imp, n),
        "QLinearConv" => return qlinear_conv(imp, n),
        "Einsum" => return super::einsum::einsum(imp, n),
        "GridSample" => return super::grid_sample::grid_sample(imp, n),
        "AffineGrid" => return super::grid_sample::affine_grid(imp, n),
        "ReverseSequence" => return reverse_sequence(imp, n),
        "Col2Im" => return col2im(imp, n),
        "MaxUnpool" => return max_unpool(imp, n),
        "Gelu" => return gelu(imp, n),
        "Swish" => return swish(imp, n),
        "DepthToSpace" | "SpaceToDepth" => return depth_space(imp, n),
        "Tile" => return tile(imp, n),
        "LpNormalization" => return lp_norm(imp, n),
        "InstanceNormalization" => return instance_norm(imp, n),
        "NegativeLogLikelihoodLoss" | "SoftmaxCrossEntropyLoss" => return nll_loss(imp, n),
        "Attention" => return attention(imp, n),
        "RMSNormalization" => return rms_norm(imp, n),
        "Hardmax" => return hardmax(imp, n),
        "Mean" => return mean(imp, n),
        "Trilu" => return trilu(imp, n),
        "IsNaN" => return is_nan(imp, n),
        "CenterCropPad" => return center_crop_pad(imp, n),
        "RotaryEmbedding" => return rotary_embedding(imp, n),
        "ScatterElements" | "Scatter" | "ScatterND" => {
            let reduction = match a.string("reduction", name)?.as_deref().unwrap_or("none") {
                "none" => ScatterReduction::None,
                "add" => ScatterReduction::Add,
                "mul" => ScatterReduction::Mul,
                "max" => ScatterReduction::Max,
                "min" => ScatterReduction::Min,
                other => return Err(n.err(format!("reduction `{other}` is not one of none, add, mul, max, min"))),
            };
            if n.op_type == "ScatterND" {
                Some(Op::ScatterND { reduction })
            } else {
                Some(Op::ScatterElements { axis: a.int("axis", name)?.unwrap_or(0), reduction })
            }
        }
        "TopK" => {
            // Opset 10 moved k from an attribute to an input.
            let k = if n.opset < 10 {
                a.int("k", name)?.ok_or_else(|| n.err("attribute `k` is missing"))?
            } else {
                let t = const_input(imp, n, 1, "k")?.ok_or_else(|| n.err("the K input is missing"))?;
                match ints_of(n, &t)?.as_slice() {
                    [k] => *k,
                    other => return Err(n.err(format!("K must be one integer, found {other:?}"))),
                }
            };
            let op = Op::TopK {
                axis: a.int("axis", name)?.unwrap_or(-1),
                k: to_usize(n, "k", k)?,
                largest: a.int("largest", name)?.unwrap_or(1) != 0,
            };
            // Both outputs exist in the graph; an omitted one gets a
            // node-local name.
            let outputs: Vec<String> =
                (0..2).map(|i| wanted_output(n, i).unwrap_or_else(|| format!("{}:{i}", n.name))).collect();
            let x = imp.tensor(data_input(n)?)?;
            imp.emit(&n.name, op, vec![Some(x)], &outputs)?;
            return Ok(());
        }
        "GatherND" => {
            let b = a.int("batch_dims", name)?.unwrap_or(0);
            Some(Op::GatherND { batch_dims: to_usize(n, "batch_dims", b)? })
        }
        "CumSum" | "CumProd" => {
            let axis = const_input(imp, n, 1, "axis")?.ok_or_else(|| n.err("the axis input is missing"))?;
            let axis = match ints_of(n, &axis)?.as_slice() {
                [a] => *a,
                other => return Err(n.err(format!("axis must be one integer, found {other:?}"))),
            };
            let exclusive = a.int("exclusive", name)?.unwrap_or(0) != 0;
            let reverse = a.int("reverse", name)?.unwrap_or(0) != 0;
            let op = if n.op_type == "CumSum" {
                Op::CumSum { axis, exclusive, reverse }
            } else {
                Op::CumProd { axis, exclusive, reverse }
            };
            return emit_one(imp, n, op, 1);
        }
        "NonZero" => return non_zero(imp, n),
        "Compress" => return compress(imp, n),
        "RNN" | "GRU" | "LSTM" => return super::rnn::recurrent(imp, n),
        "IsInf" => return is_inf(imp, n),
        "Shrink" => return shrink(imp, n),
        "MeanVarianceNormalization" => return mean_variance_norm(imp, n),
        "GroupNormalization" => return group_norm(imp, n),
        "LpPool" => return lp_pool(imp, n),
        "OneHot" => return one_hot(imp, n),
        "SwiGLU" => return swiglu(imp, n),
        "Round" => return round_half_even(imp, n),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => {
            // The size is a run-time input given a value at import (a
            // constant one was folded already): the window is a constant.
            let size = const_input(imp, n, 0, "size")?.ok_or_else(|| n.err("the size input is missing"))?;
            let w = super::fold::window_function(&n.fold_node(), &size)?;
            imp.set_const(n, 0, w);
            return Ok(());
        }
        "EyeLike" => {
            let x = data_input(n)?;
            let dtype = imp.dtype_of(x).unwrap_or(DType::F32);
            let eye = super::fold::eye_like(&n.fold_node(), &imp.shape_of(x), dtype)?;
            imp.set_const(n, 0, eye);
            return Ok(());
        }
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
        "BitwiseAnd" => Some(Op::Binary(BinaryOp::BitwiseAnd)),
        "BitwiseOr" => Some(Op::Binary(BinaryOp::BitwiseOr)),
        "BitwiseXor" => Some(Op::Binary(BinaryOp::BitwiseXor)),
        "BitwiseNot" => unary(UnaryOp::BitwiseNot)?,
        "BitShift" => {
            let left = match a.string("direction", name)?.as_deref() {
                Some("LEFT") => true,
                Some("RIGHT") => false,
                Some(other) => return Err(n.err(format!("direction `{other}` is not one of LEFT, RIGHT"))),
                None => return Err(n.err("attribute `direction` is missing")),
            };
            Some(Op::Binary(BinaryOp::BitShift { left }))
        }
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
        "BitCast" => {
            let to = a.int("to", name)?.ok_or_else(|| n.err("attribute `to` is missing"))?;
            Some(Op::BitCast { to: super::tensor::dtype_of(to as i32).map_err(|m| n.err(m))? })
        }
        "CastLike" => {
            // Cast to the element type of the second input.
            let like = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the target_type input is missing"))?;
            let to = imp.dtype_of(like).ok_or_else(|| n.err(format!("input `{like}` is not defined")))?;
            Some(Op::Cast { to })
        }
        "Softmax" | "LogSoftmax" => return softmax(imp, n),
        "LayerNormalization" => {
            if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return layer_norm_stats(imp, n);
            }
            Some(Op::LayerNormalization {
                axis: a.int("axis", name)?.unwrap_or(-1),
                epsilon: a.float("epsilon", name)?.unwrap_or(1e-5),
            })
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" => {
            let Some((axes, keepdims)) = reduce_axes(imp, n)? else {
                return emit_one(imp, n, Op::Identity, 1);
            };
            let xname = data_input(n)?;
            if imp.dtype_of(xname) == Some(DType::Bool) && matches!(n.op_type, "ReduceMax" | "ReduceMin") {
                // Over bool, Max is "any" (a sum of ones is non-zero) and Min
                // is "all" (a product of ones is one); empty sets give false
                // and true, the identities.
                let c = Chain { n };
                let x = imp.tensor(xname)?;
                let ones = c.step(imp, "as_i32", Op::Cast { to: DType::I32 }, &[x])?;
                let red = if n.op_type == "ReduceMax" {
                    Op::ReduceSum { axes, keepdims }
                } else {
                    Op::ReduceProd { axes, keepdims }
                };
                let r = c.step(imp, "count", red, &[ones])?;
                return c.last(imp, Op::Cast { to: DType::Bool }, &[r]);
            }
            Some(match n.op_type {
                "ReduceMean" => Op::ReduceMean { axes, keepdims },
                "ReduceSum" => Op::ReduceSum { axes, keepdims },
                "ReduceMin" => Op::ReduceMin { axes, keepdims },
                "ReduceProd" => Op::ReduceProd { axes, keepdims },
                _ => Op::ReduceMax { axes, keepdims },
            })
        }
        "ReduceL1" | "ReduceL2" | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => {
            return composite_reduce(imp, n)
        }
        "ArgMax" | "ArgMin" => {
            let axis = a.int("axis", name)?.unwrap_or(0);
            let keepdims = a.int("keepdims", name)?.unwrap_or(1) != 0;
            let select_last_index = a.int("select_last_index", name)?.unwrap_or(0) != 0;
            Some(if n.op_type == "ArgMax" {
                Op::ArgMax { axis, keepdims, select_last_index }
            } else {
                Op::ArgMin { axis, keepdims, select_last_index }
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
        "GatherElements" => Some(Op::GatherElements { axis: a.int("axis", name)?.unwrap_or(0) }),
        "Resize" | "Upsample" => Some(resize(imp, n)?),
        "Pad" => {
            let mode = a.string("mode", name)?.unwrap_or_else(|| "constant".into());
            if !matches!(mode.as_str(), "constant" | "reflect" | "edge" | "wrap") {
                return Err(n.err(format!("pad mode `{mode}` is not one of constant, reflect, edge, wrap")));
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
            let pads = to_usizes(n, "pads", &pads)?;
            if mode != "constant" {
                return border_pad(imp, n, &pads, &mode);
            }
            Some(Op::Pad { pads, value })
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
            // Opset 12 made the ratio and training mode inputs; a constant
            // false is inference. Training with ratio 0 drops nothing, so it
            // is inference too; any other ratio draws random numbers.
            let ratio = if n.opset >= 12 {
                match const_input(imp, n, 1, "ratio")? {
                    Some(t) => t.to_f64().first().copied().unwrap_or(0.5),
                    None => 0.5,
                }
            } else {
                a.float("ratio", name)?.unwrap_or(0.5) as f64
            };
            if let Some(t) = const_input(imp, n, 2, "training_mode")? {
                if t.to_f64().first().is_some_and(|&v| v != 0.0) && ratio != 0.0 {
                    return Err(n.err(format!(
                        "training mode with ratio {ratio} is not supported (it drops at random); only ratio 0 is"
                    )));
                }
            }
            // The mask keeps everything: all true (all ones before opset 10,
            // where it has the data's type).
            if wanted_output(n, 1).is_some() {
                let x = data_input(n)?;
                let dims = imp.shape_of(x);
                let numel = dims.iter().product();
                let mask = if n.opset < 10 {
                    Tensor::from_f64(imp.dtype_of(x).unwrap_or(DType::F32), dims, &vec![1.0; numel])
                } else {
                    Tensor::bool(dims, vec![true; numel])
                };
                imp.set_const(n, 1, mask);
            }
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
        Op::ReduceMean { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::ReduceMin { .. }
        | Op::ReduceProd { .. } => 1,
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
pub(super) fn const_input(
    imp: &mut Importer,
    n: &NodeView<'_>,
    i: usize,
    what: &str,
) -> Result<Option<Tensor>, ImportError> {
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

/// Softmax and LogSoftmax. Before opset 13 they normalise over all
/// dimensions from `axis` on (default 1), as if the input were reshaped to
/// 2-D; from 13 over `axis` alone (default -1). The two agree when `axis` is
/// the last dimension; else the old form becomes Reshape → Softmax(last) →
/// Reshape.
fn softmax(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let x = data_input(n)?;
    let dims = imp.shape_of(x);
    let rank = dims.len();
    let make = |axis: i64| if n.op_type == "LogSoftmax" { Op::LogSoftmax { axis } } else { Op::Softmax { axis } };
    if n.opset >= 13 {
        let axis = n.attrs.int("axis", &n.name)?.unwrap_or(-1);
        return emit_one(imp, n, make(axis), 1);
    }
    let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(1), rank.max(1))?;
    let inner: usize = dims[axis..].iter().product();
    if axis + 1 >= rank || inner == dims[rank - 1] {
        // Everything from `axis` on is one dimension's worth: plain softmax
        // over the last axis is the same computation.
        return emit_one(imp, n, make(rank as i64 - 1), 1);
    }
    let outer: usize = dims[..axis].iter().product();
    let xid = imp.tensor(x)?;
    let flat = imp.emit(
        &format!("{}/flatten", n.name),
        Op::Reshape { shape: vec![outer as i64, inner as i64], allow_zero: false },
        vec![Some(xid)],
        &[],
    )?[0];
    let soft = imp.emit(&format!("{}/softmax", n.name), make(1), vec![Some(flat)], &[])?[0];
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
    imp.charge_new(&n.name, "Expand", &format!("{}/ones", n.name), &target, dtype)?;
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
        "cubic" | "bicubic" => ResizeMode::Cubic {
            coeff_a: a.float("cubic_coeff_a", name)?.unwrap_or(-0.75),
            exclude_outside: a.int("exclude_outside", name)?.unwrap_or(0) != 0,
        },
        other => return Err(n.err(format!("resize mode `{other}` is not supported (nearest, linear, cubic)"))),
    };
    // Opset 18 additions weft does not implement are refused by name rather
    // than ignored (each changes the output).
    if a.int("antialias", name)?.unwrap_or(0) != 0 {
        return Err(n.err("antialias=1 is not supported"));
    }
    if let Some(policy) = a.string("keep_aspect_ratio_policy", name)?.filter(|p| p != "stretch") {
        return Err(n.err(format!("keep_aspect_ratio_policy `{policy}` is not supported (only `stretch`)")));
    }
    // Opset 18's `axes`: scales or sizes for those dimensions only, the
    // rest unchanged.
    let axes = match a.ints("axes", name)? {
        Some(axes) => {
            let axes: Vec<usize> = axes.iter().map(|&x| norm_axis(n, x, dims.len())).collect::<Result<_, _>>()?;
            if (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
                return Err(n.err(format!("axes {axes:?} repeat a dimension")));
            }
            Some(axes)
        }
        None => None,
    };
    // Values given per listed axis, spread over every dimension.
    let spread = |given: Vec<f64>, unchanged: &dyn Fn(usize) -> f64| -> Result<Vec<f64>, ImportError> {
        let Some(axes) = &axes else { return Ok(given) };
        if given.len() != axes.len() {
            return Err(n.err(format!("{} values for axes {axes:?}", given.len())));
        }
        let mut full: Vec<f64> = (0..dims.len()).map(unchanged).collect();
        for (&ax, v) in axes.iter().zip(given) {
            full[ax] = v;
        }
        Ok(full)
    };
    // Upsample and Resize-10 have no coordinate attributes: their semantics
    // are asymmetric coordinates with floor rounding for nearest.
    let old = n.op_type == "Upsample" || n.opset < 11;
    let scales_input = if old { 1 } else { 2 };
    let mut scales: Option<Vec<f32>> = match const_input(imp, n, scales_input, "scales")? {
        Some(t) => Some(spread(t.to_f64(), &|_| 1.0)?.iter().map(|&v| v as f32).collect()),
        None => None,
    };
    if n.op_type == "Upsample" && scales.is_none() {
        scales = a.floats("scales", name)?;
    }
    if scales.is_none() && !old {
        if let Some(sizes) = const_input(imp, n, 3, "sizes")? {
            let sizes = spread(ints_of(n, &sizes)?.iter().map(|&v| v as f64).collect(), &|k| dims[k] as f64)?;
            let sizes = to_usizes(n, "sizes", &sizes.iter().map(|&v| v as i64).collect::<Vec<_>>())?;
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
            "half_pixel_symmetric" => CoordinateTransform::HalfPixelSymmetric,
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

/// The axes and keepdims of a Reduce* node, with each opset's way of giving
/// them (an attribute, an input from opset 13 for ReduceSum and 18 for the
/// rest); `None` when `noop_with_empty_axes` makes the reduction an identity.
/// No axes means all of them, spelled out so the op never depends on a
/// convention for the empty list.
fn reduce_axes(imp: &mut Importer, n: &NodeView<'_>) -> Result<Option<(Vec<i64>, bool)>, ImportError> {
    let a = n.attrs;
    let name = n.name.as_str();
    let rank = imp.shape_of(data_input(n)?).len();
    let keepdims = a.int("keepdims", name)?.unwrap_or(1) != 0;
    let axes = if (n.op_type == "ReduceSum" && n.opset >= 13) || n.opset >= 18 {
        const_input(imp, n, 1, "axes")?.map(|t| ints_of(n, &t)).transpose()?
    } else {
        a.ints("axes", name)?
    };
    Ok(match axes {
        Some(v) if !v.is_empty() => Some((v, keepdims)),
        _ if a.int("noop_with_empty_axes", name)?.unwrap_or(0) != 0 => None,
        _ => Some(((0..rank as i64).collect(), keepdims)),
    })
}

/// Emits a chain of single-output nodes named `{node}/{step}`; the last one
/// gets the node's output name. Each step's inputs are tensor ids.
pub(super) struct Chain<'n, 'a> {
    pub(super) n: &'n NodeView<'a>,
}

impl Chain<'_, '_> {
    pub(super) fn step(
        &self,
        imp: &mut Importer,
        step: &str,
        op: Op,
        inputs: &[TensorId],
    ) -> Result<TensorId, ImportError> {
        let name = format!("{}/{step}", self.n.name);
        Ok(imp.emit(&name, op, inputs.iter().map(|&t| Some(t)).collect(), &[])?[0])
    }

    /// `x − mean` and `√(mean((x − mean)²) + ε)` over `axes` (kept as 1s):
    /// the centred input and the standard deviation normalisations divide by.
    fn centred_stddev(
        &self,
        imp: &mut Importer,
        x: TensorId,
        mean: TensorId,
        axes: Vec<i64>,
        dtype: DType,
        epsilon: f32,
    ) -> Result<(TensorId, TensorId), ImportError> {
        let d = self.step(imp, "centred", Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let d2 = self.step(imp, "squared", Op::Binary(BinaryOp::Mul), &[d, d])?;
        let var = self.step(imp, "variance", Op::ReduceMean { axes, keepdims: true }, &[d2])?;
        let eps = scalar(imp, self.n, "epsilon", dtype, epsilon as f64);
        let ve = self.step(imp, "variance_eps", Op::Binary(BinaryOp::Add), &[var, eps])?;
        let sd = self.step(imp, "stddev", Op::Unary(UnaryOp::Sqrt), &[ve])?;
        Ok((d, sd))
    }

    pub(super) fn last(&self, imp: &mut Importer, op: Op, inputs: &[TensorId]) -> Result<(), ImportError> {
        let outs: Vec<String> = self.n.outputs.iter().take(1).cloned().collect();
        imp.emit(&self.n.name, op, inputs.iter().map(|&t| Some(t)).collect(), &outs)?;
        Ok(())
    }
}

/// A scalar constant of `dtype` holding `v`.
pub(super) fn scalar(imp: &mut Importer, n: &NodeView<'_>, what: &str, dtype: DType, v: f64) -> TensorId {
    imp.add_constant(format!("{}/{what}", n.name), Tensor::from_f64(dtype, Shape::scalar(), &[v]))
}

/// ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum and ReduceLogSumExp,
/// as ONNX defines them: an elementwise map, ReduceSum, and a final map.
/// LogSumExp subtracts each output's maximum first (`m + ln Σ exp(x − m)`)
/// so large inputs do not overflow.
fn composite_reduce(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let reduction = reduce_axes(imp, n)?;
    let sum = |axes: &Vec<i64>, keepdims: bool| Op::ReduceSum { axes: axes.clone(), keepdims };
    match n.op_type {
        "ReduceLogSumExp" => {
            let Some((axes, keepdims)) = reduction else {
                // No reduction: ln(exp(x)) is x.
                return c.last(imp, Op::Identity, &[x]);
            };
            let m = c.step(imp, "max", Op::ReduceMax { axes: axes.clone(), keepdims: true }, &[x])?;
            let d = c.step(imp, "shifted", Op::Binary(BinaryOp::Sub), &[x, m])?;
            let e = c.step(imp, "exp", Op::Unary(UnaryOp::Exp), &[d])?;
            let s = c.step(imp, "sum", sum(&axes, keepdims), &[e])?;
            let l = c.step(imp, "log", Op::Unary(UnaryOp::Log), &[s])?;
            let m = if keepdims { m } else { c.step(imp, "max_squeezed", Op::Squeeze { axes: axes.clone() }, &[m])? };
            c.last(imp, Op::Binary(BinaryOp::Add), &[l, m])
        }
        _ => {
            let pre = match n.op_type {
                "ReduceL1" => c.step(imp, "abs", Op::Unary(UnaryOp::Abs), &[x])?,
                "ReduceL2" | "ReduceSumSquare" => c.step(imp, "square", Op::Binary(BinaryOp::Mul), &[x, x])?,
                _ => x,
            };
            let post = match n.op_type {
                "ReduceL2" => Some(Op::Unary(UnaryOp::Sqrt)),
                "ReduceLogSum" => Some(Op::Unary(UnaryOp::Log)),
                _ => None,
            };
            let reduce_op = match &reduction {
                Some((axes, keepdims)) => sum(axes, *keepdims),
                None => Op::Identity,
            };
            match post {
                Some(post) => {
                    let s = c.step(imp, "sum", reduce_op, &[pre])?;
                    c.last(imp, post, &[s])
                }
                None => c.last(imp, reduce_op, &[pre]),
            }
        }
    }
}

/// The quantization axis and block size of a QuantizeLinear or
/// DequantizeLinear node over an input of rank `rank` (`axis` normalised;
/// block size 0 when not blocked).
fn quant_axis(n: &NodeView<'_>, rank: usize) -> Result<(usize, usize), ImportError> {
    let axis = n.attrs.int("axis", &n.name)?.unwrap_or(1);
    let block = n.attrs.int("block_size", &n.name)?.unwrap_or(0);
    let block = to_usize(n, "block_size", block)?;
    // An axis outside the rank is refused where a per-axis or blocked
    // parameter needs it ([`quant_param`]); per-tensor ones never read it.
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    Ok((usize::try_from(a).unwrap_or(usize::MAX), block))
}

/// A quantization parameter (scale or zero point) `t` of shape `pdims`,
/// shaped to broadcast against the data of shape `xdims`: per tensor (one
/// element) as it is; per axis (1-D, the data's `axis` length) as
/// `[C, 1, …, 1]`; blocked (`block > 0`: the data's rank, the `axis`
/// dimension `⌈d / block⌉`, the others equal) with each element repeated
/// `block` times along `axis`, by a Gather of constant indices.
#[allow(clippy::too_many_arguments)]
fn quant_param(
    imp: &mut Importer,
    n: &NodeView<'_>,
    c: &Chain,
    what: &str,
    t: TensorId,
    pdims: &[usize],
    xdims: &[usize],
    (axis, block): (usize, usize),
) -> Result<TensorId, ImportError> {
    let rank = xdims.len();
    if pdims.iter().product::<usize>() == 1 && pdims.len() <= rank.max(1) {
        return Ok(t);
    }
    if axis >= rank {
        return Err(n.err(format!("axis is outside the input's rank {rank}")));
    }
    if block == 0 {
        if pdims != [xdims[axis]] {
            return Err(n.err(format!(
                "{what} has shape {pdims:?}; per-axis parameters are 1-D of the input's axis {axis} length {}",
                xdims[axis]
            )));
        }
        let trailing: Vec<i64> = (1..(rank - axis) as i64).collect();
        if trailing.is_empty() {
            return Ok(t);
        }
        return c.step(imp, &format!("{what}_axis"), Op::Unsqueeze { axes: trailing }, &[t]);
    }
    let blocks = xdims[axis].div_ceil(block);
    let fits = pdims.len() == rank && (0..rank).all(|d| pdims[d] == if d == axis { blocks } else { xdims[d] });
    if !fits {
        return Err(n.err(format!(
            "{what} has shape {pdims:?}; blocked parameters have the input's shape {xdims:?} with axis {axis} \
             divided into blocks of {block} ({blocks})"
        )));
    }
    let idx: Vec<i64> = (0..xdims[axis]).map(|i| (i / block) as i64).collect();
    let idx = imp.add_constant(format!("{}/{what}_block_index", n.name), Tensor::i64(vec![xdims[axis]], idx));
    c.step(imp, &format!("{what}_blocks"), Op::Gather { axis: axis as i64 }, &[t, idx])
}

/// DequantizeLinear: `(float(x) − float(zero_point)) · scale`, as ONNX
/// computes it (both conversions are exact for 8- and 16-bit integers, so
/// one rounding, the product's). The scale is per tensor, per axis or
/// blocked ([`quant_param`]); f32 scales only.
fn dequantize_linear(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let sname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the x_scale input is missing"))?;
    let zname = n.inputs.get(2).copied().flatten();
    let sdtype = imp.dtype_of(sname).unwrap_or(DType::F32);
    if sdtype != DType::F32 {
        return Err(n.err(format!("x_scale is {sdtype}; only f32 scales are supported")));
    }
    if let Some(to) = n.attrs.int("output_dtype", &n.name)?.filter(|&t| t != 0) {
        if super::tensor::dtype_of(to as i32).ok() != Some(DType::F32) {
            return Err(n.err("output_dtype other than FLOAT is not supported"));
        }
    }
    let xdims = imp.shape_of(xname);
    let ax = quant_axis(n, xdims.len())?;
    let c = Chain { n };
    let (x, scale) = (imp.tensor(xname)?, imp.tensor(sname)?);
    let scale = quant_param(imp, n, &c, "scale", scale, &imp.shape_of(sname), &xdims, ax)?;
    let xf = c.step(imp, "x_float", Op::Cast { to: DType::F32 }, &[x])?;
    let centred = match zname {
        Some(z) => {
            let zp = imp.tensor(z)?;
            let zp = quant_param(imp, n, &c, "zero_point", zp, &imp.shape_of(z), &xdims, ax)?;
            let zf = c.step(imp, "zero_point_float", Op::Cast { to: DType::F32 }, &[zp])?;
            c.step(imp, "centred", Op::Binary(BinaryOp::Sub), &[xf, zf])?
        }
        None => xf,
    };
    c.last(imp, Op::Binary(BinaryOp::Mul), &[centred, scale])
}

/// The integer types QuantizeLinear writes, with their ranges.
fn quantized_range(n: &NodeView<'_>, to: DType) -> Result<(f32, f32), ImportError> {
    match to {
        DType::I8 | DType::U8 | DType::I16 | DType::U16 => {
            let (lo, hi) = to.int_range().unwrap_or((0, 0));
            Ok((lo as f32, hi as f32))
        }
        other => Err(n.err(format!("quantizing to {other} is not supported (i8, u8, i16, u16)"))),
    }
}

/// `saturate(round(x / scale) + zero_point)` into `to`, as ONNX computes it:
/// the quotient in x's type, rounded half to even, made an `i32`, the
/// integer zero point added, clamped to `to`'s range. The last step gets
/// the node's output 0.
fn quantize_steps(
    imp: &mut Importer,
    n: &NodeView<'_>,
    x: TensorId,
    scale: TensorId,
    zero_point: Option<TensorId>,
    to: DType,
) -> Result<(), ImportError> {
    let (lo, hi) = quantized_range(n, to)?;
    let c = Chain { n };
    let q = c.step(imp, "quotient", Op::Binary(BinaryOp::Div), &[x, scale])?;
    let dtype = imp.graph.info(q).dtype;
    let (finite, rounded) = round_even_steps(imp, n, &c, "quotient", q, dtype)?;
    let r = c.step(imp, "rounded", Op::Where, &[finite, rounded, q])?;
    // Clamped while still a float, so the conversion is defined for any
    // finite quotient (2^31 − 128 is the largest f32 below 2^31).
    let bounded =
        c.step(imp, "bounded", Op::Unary(UnaryOp::Clip { min: -2_147_483_648.0, max: 2_147_483_520.0 }), &[r])?;
    let mut acc = c.step(imp, "as_i32", Op::Cast { to: DType::I32 }, &[bounded])?;
    if let Some(z) = zero_point {
        let zi = c.step(imp, "zero_point_i32", Op::Cast { to: DType::I32 }, &[z])?;
        acc = c.step(imp, "shifted", Op::Binary(BinaryOp::Add), &[acc, zi])?;
    }
    let sat = c.step(imp, "saturated", Op::Unary(UnaryOp::Clip { min: lo, max: hi }), &[acc])?;
    c.last(imp, Op::Cast { to }, &[sat])
}

/// QuantizeLinear to an 8- or 16-bit integer type (the zero point's type,
/// else `output_dtype`, else u8); scale and zero point per tensor, per
/// axis or blocked ([`quant_param`]).
fn quantize_linear(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let sname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the y_scale input is missing"))?;
    let zname = n.inputs.get(2).copied().flatten();
    let xdtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if !xdtype.is_float() {
        return Err(n.err(format!("x is {xdtype}; QuantizeLinear takes a float tensor")));
    }
    if n.attrs.int("precision", &n.name)?.is_some_and(|p| p != 0) {
        return Err(n.err("attribute `precision` is not supported"));
    }
    let declared = match n.attrs.int("output_dtype", &n.name)?.filter(|&t| t != 0) {
        Some(t) => Some(super::tensor::dtype_of(t as i32).map_err(|m| n.err(m))?),
        None => None,
    };
    let to = match zname {
        Some(z) => imp.dtype_of(z).ok_or_else(|| n.err(format!("input `{z}` is not defined")))?,
        None => declared.unwrap_or(DType::U8),
    };
    if declared.is_some_and(|d| d != to) {
        return Err(n.err(format!("output_dtype differs from the zero point's type {to}")));
    }
    quantized_range(n, to)?;
    let xdims = imp.shape_of(xname);
    let ax = quant_axis(n, xdims.len())?;
    let c = Chain { n };
    let x = imp.tensor(xname)?;
    let mut scale = imp.tensor(sname)?;
    if imp.dtype_of(sname) != Some(xdtype) {
        scale = c.step(imp, "scale_as_x", Op::Cast { to: xdtype }, &[scale])?;
    }
    let scale = quant_param(imp, n, &c, "scale", scale, &imp.shape_of(sname), &xdims, ax)?;
    let zp = match zname {
        Some(z) => {
            let t = imp.tensor(z)?;
            Some(quant_param(imp, n, &c, "zero_point", t, &imp.shape_of(z), &xdims, ax)?)
        }
        None => None,
    };
    quantize_steps(imp, n, x, scale, zp, to)
}

/// DynamicQuantizeLinear: u8 quantization with the scale and zero point
/// computed from the data's range (widened to hold 0), as ONNX defines it:
/// `scale = (max(0, max x) − min(0, min x)) / 255` (1/255 for an all-zero
/// range), `zero_point = round(clamp(−min / scale, 0, 255))`.
fn dynamic_quantize_linear(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if !dtype.is_float() {
        return Err(n.err(format!("x is {dtype}; DynamicQuantizeLinear takes a float tensor")));
    }
    let rank = imp.shape_of(xname).len();
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let all: Vec<i64> = (0..rank as i64).collect();
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    let one = scalar(imp, n, "one", dtype, 1.0);
    let levels = scalar(imp, n, "levels", dtype, 255.0);
    let hi = c.step(imp, "max", Op::ReduceMax { axes: all.clone(), keepdims: false }, &[x])?;
    let lo = c.step(imp, "min", Op::ReduceMin { axes: all, keepdims: false }, &[x])?;
    let hi = c.step(imp, "max_with_zero", Op::Binary(BinaryOp::Max), &[hi, zero])?;
    let lo = c.step(imp, "min_with_zero", Op::Binary(BinaryOp::Min), &[lo, zero])?;
    let range = c.step(imp, "range", Op::Binary(BinaryOp::Sub), &[hi, lo])?;
    let empty = c.step(imp, "range_is_zero", Op::Binary(BinaryOp::Equal), &[range, zero])?;
    let range = c.step(imp, "range_or_one", Op::Where, &[empty, one, range])?;
    let scale = emit_output(imp, n, 1, "scale", Op::Binary(BinaryOp::Div), &[range, levels])?;
    let ratio = c.step(imp, "min_over_scale", Op::Binary(BinaryOp::Div), &[lo, scale])?;
    let initial = c.step(imp, "initial_zero_point", Op::Unary(UnaryOp::Neg), &[ratio])?;
    let clamped = c.step(imp, "zero_point_clamped", Op::Unary(UnaryOp::Clip { min: 0.0, max: 255.0 }), &[initial])?;
    let (finite, rounded) = round_even_steps(imp, n, &c, "zero_point", clamped, dtype)?;
    let zpf = c.step(imp, "zero_point_rounded", Op::Where, &[finite, rounded, clamped])?;
    let zp = emit_output(imp, n, 2, "zero_point", Op::Cast { to: DType::U8 }, &[zpf])?;
    quantize_steps(imp, n, x, scale, Some(zp), DType::U8)
}

/// Quantized integer input `i` of a node as `i32` with its zero point
/// (input `zi`, when given) subtracted, the zero point shaped by
/// [`per_channel`] with `trailing` ones.
fn centred_i32(
    imp: &mut Importer,
    n: &NodeView<'_>,
    c: &Chain,
    what: &str,
    (i, zi): (usize, usize),
    trailing: usize,
) -> Result<TensorId, ImportError> {
    let name = n.inputs.get(i).copied().flatten().ok_or_else(|| n.err(format!("the {what} input is missing")))?;
    let dtype = imp.dtype_of(name).unwrap_or(DType::F32);
    if !dtype.is_int() {
        return Err(n.err(format!("{what} is {dtype}; expected an 8- or 16-bit integer tensor")));
    }
    let t = imp.tensor(name)?;
    let t = c.step(imp, &format!("{what}_i32"), Op::Cast { to: DType::I32 }, &[t])?;
    let Some(z) = opt_tensor(imp, n, zi)? else { return Ok(t) };
    let z = c.step(imp, &format!("{what}_zero_point_i32"), Op::Cast { to: DType::I32 }, &[z])?;
    let z = per_channel(imp, c, &format!("{what}_zero_point"), z, trailing)?;
    c.step(imp, &format!("{what}_centred"), Op::Binary(BinaryOp::Sub), &[t, z])
}

/// Parameter `t` (a scale or zero point) made to broadcast along one axis
/// followed by `trailing` others when it is 1-D with more than one element:
/// `[M]` becomes `[M, 1, …, 1]` (a row of a matrix with one, an output
/// channel of a convolution with its spatial rank). Anything else
/// broadcasts as it is.
fn per_channel(
    imp: &mut Importer,
    c: &Chain,
    what: &str,
    t: TensorId,
    trailing: usize,
) -> Result<TensorId, ImportError> {
    let dims = imp.graph.info(t).shape.dims().to_vec();
    if trailing > 0 && dims.len() == 1 && dims[0] != 1 {
        let axes = (1..=trailing as i64).collect();
        return c.step(imp, &format!("{what}_per_channel"), Op::Unsqueeze { axes }, &[t]);
    }
    Ok(t)
}

/// A node's required input `i`.
fn required<'a>(n: &NodeView<'a>, i: usize, what: &str) -> Result<&'a str, ImportError> {
    n.inputs.get(i).copied().flatten().ok_or_else(|| n.err(format!("the {what} input is missing")))
}

/// MatMulInteger: `(A − a_zero_point) · (B − b_zero_point)` in `i32`
/// (a zero point per tensor, per row of A, or per column of B).
fn matmul_integer(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let c = Chain { n };
    let a = centred_i32(imp, n, &c, "a", (0, 2), 1)?;
    let b = centred_i32(imp, n, &c, "b", (1, 3), 0)?;
    c.last(imp, Op::MatMul, &[a, b])
}

/// The window and groups of a convolution node whose weight is input 1 (or
/// 3 for QLinearConv).
fn conv_window(imp: &Importer, n: &NodeView<'_>, weight: usize) -> Result<(Window, usize), ImportError> {
    let w = required(n, weight, "weight")?;
    let window = window(n, imp.shape_of(w).get(2..).map(<[usize]>::to_vec))?;
    let groups = to_usize(n, "group", n.attrs.int("group", &n.name)?.unwrap_or(1))?;
    Ok((window, groups))
}

/// ConvInteger: the convolution of `x − x_zero_point` and `w − w_zero_point`
/// (per tensor, or per output channel) in `i32`; padding reads zero after
/// the zero point is subtracted, as ONNX's reference pads.
fn conv_integer(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let (window, groups) = conv_window(imp, n, 1)?;
    let rank = imp.shape_of(required(n, 1, "w")?).len();
    let c = Chain { n };
    let x = centred_i32(imp, n, &c, "x", (0, 2), 0)?;
    let w = centred_i32(imp, n, &c, "w", (1, 3), rank.saturating_sub(1))?;
    c.last(imp, Op::Conv { window, groups }, &[x, w])
}

/// `saturate(round(acc · multiplier) + zero_point)` into `to`, in `f64` as
/// ONNX's reference computes it (an `i32` times an `f32` is an `f64` in
/// numpy): the tail of QLinearMatMul and QLinearConv. The last step gets
/// the node's output 0.
fn requantize(
    imp: &mut Importer,
    n: &NodeView<'_>,
    acc: TensorId,
    multiplier: TensorId,
    zero_point: Option<TensorId>,
    to: DType,
) -> Result<(), ImportError> {
    let (lo, hi) = quantized_range(n, to)?;
    let c = Chain { n };
    let multiplier = c.step(imp, "multiplier_f64", Op::Cast { to: DType::F64 }, &[multiplier])?;
    let wide = c.step(imp, "accumulator_f64", Op::Cast { to: DType::F64 }, &[acc])?;
    let mut y = c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[wide, multiplier])?;
    if let Some(z) = zero_point {
        let z = c.step(imp, "y_zero_point_f64", Op::Cast { to: DType::F64 }, &[z])?;
        y = c.step(imp, "shifted", Op::Binary(BinaryOp::Add), &[y, z])?;
    }
    let (finite, rounded) = round_even_steps(imp, n, &c, "y", y, DType::F64)?;
    let r = c.step(imp, "rounded", Op::Where, &[finite, rounded, y])?;
    let sat = c.step(imp, "saturated", Op::Unary(UnaryOp::Clip { min: lo, max: hi }), &[r])?;
    c.last(imp, Op::Cast { to }, &[sat])
}

/// `x_scale · w_scale / y_scale` of a QLinear node (inputs `scales`), the
/// second scale shaped by [`per_channel`] with `trailing` ones, and the
/// output type: y_zero_point's (input `zp`), else input 0's.
fn qlinear_scales(
    imp: &mut Importer,
    n: &NodeView<'_>,
    c: &Chain,
    [xs, ws, ys]: [usize; 3],
    trailing: (usize, usize),
    zp: usize,
) -> Result<(TensorId, DType), ImportError> {
    let to = match n.inputs.get(zp).copied().flatten() {
        Some(z) => imp.dtype_of(z),
        None => imp.dtype_of(required(n, 0, "input")?),
    }
    .unwrap_or(DType::U8);
    let x_scale = imp.tensor(required(n, xs, "first scale")?)?;
    let x_scale = per_channel(imp, c, "first_scale", x_scale, trailing.0)?;
    let w_scale = imp.tensor(required(n, ws, "second scale")?)?;
    let w_scale = per_channel(imp, c, "second_scale", w_scale, trailing.1)?;
    let y_scale = imp.tensor(required(n, ys, "y_scale")?)?;
    let product = c.step(imp, "scale_product", Op::Binary(BinaryOp::Mul), &[x_scale, w_scale])?;
    Ok((c.step(imp, "multiplier", Op::Binary(BinaryOp::Div), &[product, y_scale])?, to))
}

/// QLinearMatMul: the `i32` product of the centred inputs, requantized by
/// `a_scale · b_scale / y_scale` ([`requantize`]).
fn qlinear_matmul(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let c = Chain { n };
    let a = centred_i32(imp, n, &c, "a", (0, 2), 1)?;
    let b = centred_i32(imp, n, &c, "b", (3, 5), 0)?;
    let (multiplier, to) = qlinear_scales(imp, n, &c, [1, 4, 6], (1, 0), 7)?;
    let product = c.step(imp, "product", Op::MatMul, &[a, b])?;
    let zp = opt_tensor(imp, n, 7)?;
    requantize(imp, n, product, multiplier, zp, to)
}

/// QLinearConv: the `i32` convolution of the centred inputs plus the `i32`
/// bias, requantized by `x_scale · w_scale / y_scale` (w_scale per tensor or
/// per output channel).
fn qlinear_conv(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let (window, groups) = conv_window(imp, n, 3)?;
    let rank = imp.shape_of(required(n, 3, "w")?).len();
    let c = Chain { n };
    let x = centred_i32(imp, n, &c, "x", (0, 2), 0)?;
    let w = centred_i32(imp, n, &c, "w", (3, 5), rank.saturating_sub(1))?;
    let mut inputs = vec![x, w];
    if let Some(bias) = opt_tensor(imp, n, 8)? {
        if imp.graph.info(bias).dtype != DType::I32 {
            return Err(n.err(format!("B is {}; expected i32", imp.graph.info(bias).dtype)));
        }
        inputs.push(bias);
    }
    let (multiplier, to) = qlinear_scales(imp, n, &c, [1, 4, 6], (0, rank.saturating_sub(2)), 7)?;
    let acc = c.step(imp, "convolution", Op::Conv { window, groups }, &inputs)?;
    let zp = opt_tensor(imp, n, 7)?;
    requantize(imp, n, acc, multiplier, zp, to)
}

/// ReverseSequence: along `time_axis`, the first `sequence_lens[b]`
/// elements of each batch `b` (along `batch_axis`) reversed, the rest kept:
/// a GatherElements whose index is `t < len ? len − 1 − t : t`, computed on
/// broadcast `[T]` and `[B]` shapes and widened to the input's.
fn reverse_sequence(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let lname = required(n, 1, "sequence_lens")?;
    let dims = imp.shape_of(xname);
    let rank = dims.len();
    let time = norm_axis(n, n.attrs.int("time_axis", &n.name)?.unwrap_or(0), rank)?;
    let batch = norm_axis(n, n.attrs.int("batch_axis", &n.name)?.unwrap_or(1), rank)?;
    if rank < 2 || time == batch {
        return Err(n.err(format!("time_axis {time} and batch_axis {batch} must be two axes of the rank-{rank} input")));
    }
    if imp.shape_of(lname) != [dims[batch]] {
        return Err(n.err(format!("sequence_lens has shape {:?}; expected [{}]", imp.shape_of(lname), dims[batch])));
    }
    let along =
        |axis: usize, len: usize| -> Vec<usize> { (0..rank).map(|d| if d == axis { len } else { 1 }).collect() };
    let c = Chain { n };
    let steps: Vec<i64> = (0..dims[time] as i64).collect();
    let t = imp.add_constant(format!("{}/time_index", n.name), Tensor::i64(along(time, dims[time]), steps));
    let lens = imp.tensor(lname)?;
    let lens = c.step(imp, "lens_i64", Op::Cast { to: DType::I64 }, &[lens])?;
    let lens = c.step(imp, "lens_clamped", Op::Unary(UnaryOp::Clip { min: 0.0, max: dims[time] as f32 }), &[lens])?;
    let shape = along(batch, dims[batch]).iter().map(|&d| d as i64).collect();
    let lens = c.step(imp, "lens_along_batch", Op::Reshape { shape, allow_zero: true }, &[lens])?;
    let one = scalar(imp, n, "one", DType::I64, 1.0);
    let last = c.step(imp, "last", Op::Binary(BinaryOp::Sub), &[lens, one])?;
    let reversed = c.step(imp, "reversed", Op::Binary(BinaryOp::Sub), &[last, t])?;
    let inside = c.step(imp, "inside", Op::Binary(BinaryOp::Less), &[t, lens])?;
    let idx = c.step(imp, "index", Op::Where, &[inside, reversed, t])?;
    let zeros = Tensor::i64(dims.clone(), vec![0; dims.iter().product()]);
    let zeros = imp.add_constant(format!("{}/zeros", n.name), zeros);
    let idx = c.step(imp, "index_full", Op::Binary(BinaryOp::Add), &[idx, zeros])?;
    let x = imp.tensor(xname)?;
    c.last(imp, Op::GatherElements { axis: time as i64 }, &[x, idx])
}

/// Col2Im: the columns of `[N, C·∏block, L]` summed back into an image
/// `[N, C, image…]`, as a ScatterElements with `add` into the flattened image
/// plus one spare element that collects the block positions falling into
/// the padding (sliced off after). The target of every (block position,
/// column) pair is computed here, from the constant image and block shapes.
fn col2im(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let shape_of = |imp: &mut Importer, i: usize, what: &str| -> Result<Vec<usize>, ImportError> {
        let t = const_input(imp, n, i, what)?.ok_or_else(|| n.err(format!("the {what} input is missing")))?;
        to_usizes(n, what, &ints_of(n, &t)?)
    };
    let image = shape_of(imp, 1, "image_shape")?;
    let block = shape_of(imp, 2, "block_shape")?;
    let r = image.len();
    let attr = |name: &str, default: usize, len: usize| -> Result<Vec<usize>, ImportError> {
        match n.attrs.ints(name, &n.name)? {
            Some(v) => to_usizes(n, name, &v),
            None => Ok(vec![default; len]),
        }
    };
    let (dil, pads, strides) = (attr("dilations", 1, r)?, attr("pads", 0, 2 * r)?, attr("strides", 1, r)?);
    let xd = imp.shape_of(xname);
    let kprod: usize = block.iter().product();
    if r == 0 || block.len() != r || dil.len() != r || pads.len() != 2 * r || strides.len() != r || xd.len() != 3 {
        return Err(n.err(format!(
            "input {xd:?}, image_shape {image:?}, block_shape {block:?}: expected [N, C·∏block, L] and one block, \
             dilation, stride and two pads per image dimension"
        )));
    }
    // Block positions per image dimension.
    let mut grid = Vec::with_capacity(r);
    for d in 0..r {
        let span = dil[d] * block[d].saturating_sub(1) + 1;
        let padded = image[d] + pads[d] + pads[r + d];
        if strides[d] == 0 || block[d] == 0 || padded < span {
            return Err(n.err(format!("dimension {d}: the blocks do not fit the padded image")));
        }
        grid.push((padded - span) / strides[d] + 1);
    }
    let l: usize = grid.iter().product();
    if kprod == 0 || !xd[1].is_multiple_of(kprod) || xd[2] != l {
        return Err(n.err(format!("input {xd:?} is not [N, C·{kprod}, {l}]")));
    }
    let (batch, channels) = (xd[0], xd[1] / kprod);
    let pixels: usize = image.iter().product();
    // Target of (block offset k, column p), row-major over both.
    let mut target = Vec::with_capacity(kprod * l);
    for k in 0..kprod {
        for p in 0..l {
            let (mut kr, mut pr, mut at, mut inside) = (k, p, 0usize, true);
            let mut coord = vec![0i64; r];
            for d in (0..r).rev() {
                let (kd, pd) = (kr % block[d], pr % grid[d]);
                kr /= block[d];
                pr /= grid[d];
                coord[d] = (pd * strides[d] + kd * dil[d]) as i64 - pads[d] as i64;
            }
            for d in 0..r {
                inside &= (0..image[d] as i64).contains(&coord[d]);
                at = at * image[d] + coord[d].max(0) as usize;
            }
            target.push(if inside { at as i64 } else { pixels as i64 });
        }
    }
    let c = Chain { n };
    let x = imp.tensor(xname)?;
    let cols = vec![batch as i64, channels as i64, (kprod * l) as i64];
    let x = c.step(imp, "columns", Op::Reshape { shape: cols, allow_zero: true }, &[x])?;
    let total = batch * channels * kprod * l;
    let idx: Vec<i64> = (0..total).map(|i| target[i % (kprod * l)]).collect();
    let idx = imp.add_constant(format!("{}/targets", n.name), Tensor::i64(vec![batch, channels, kprod * l], idx));
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let zeros = Tensor::from_f64(dtype, vec![batch, channels, pixels + 1], &vec![0.0; batch * channels * (pixels + 1)]);
    let zeros = imp.add_constant(format!("{}/image", n.name), zeros);
    let scatter = Op::ScatterElements { axis: 2, reduction: ScatterReduction::Add };
    let summed = c.step(imp, "summed", scatter, &[zeros, idx, x])?;
    let slice = Op::Slice { starts: vec![0], ends: vec![pixels as i64], axes: vec![2], steps: vec![1] };
    let kept = c.step(imp, "without_padding", slice, &[summed])?;
    let mut shape = vec![batch as i64, channels as i64];
    shape.extend(image.iter().map(|&d| d as i64));
    c.last(imp, Op::Reshape { shape, allow_zero: true }, &[kept])
}

/// BatchNormalization in training mode (opset 14 on): normalised by the
/// batch's own per-channel mean and (population) variance, with the running
/// statistics updated as `running · momentum + batch · (1 − momentum)`.
fn batch_norm_training(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let rank = imp.shape_of(xname).len();
    if rank < 2 {
        return Err(n.err(format!("input has rank {rank}; expected [N, C, …]")));
    }
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let epsilon = n.attrs.float("epsilon", &n.name)?.unwrap_or(1e-5);
    let momentum = n.attrs.float("momentum", &n.name)?.unwrap_or(0.9) as f64;
    let input = |imp: &mut Importer, i: usize, what: &str| imp.tensor(required(n, i, what)?);
    let (x, scale, bias) = (input(imp, 0, "X")?, input(imp, 1, "scale")?, input(imp, 2, "B")?);
    let (mean, var) = (input(imp, 3, "input_mean")?, input(imp, 4, "input_var")?);
    let axes: Vec<i64> = (0..rank as i64).filter(|&a| a != 1).collect();
    let c = Chain { n };
    let kept = c.step(imp, "batch_mean_kept", Op::ReduceMean { axes: axes.clone(), keepdims: true }, &[x])?;
    let batch_mean = c.step(imp, "batch_mean", Op::ReduceMean { axes: axes.clone(), keepdims: false }, &[x])?;
    let d = c.step(imp, "centred", Op::Binary(BinaryOp::Sub), &[x, kept])?;
    let d2 = c.step(imp, "squared", Op::Binary(BinaryOp::Mul), &[d, d])?;
    let batch_var = c.step(imp, "batch_var", Op::ReduceMean { axes, keepdims: false }, &[d2])?;
    let keep = scalar(imp, n, "momentum", dtype, momentum);
    let take = scalar(imp, n, "one_minus_momentum", dtype, 1.0 - momentum);
    for (i, what, running, batch) in [(1, "mean", mean, batch_mean), (2, "var", var, batch_var)] {
        if wanted_output(n, i).is_none() {
            continue;
        }
        let old = c.step(imp, &format!("running_{what}_kept"), Op::Binary(BinaryOp::Mul), &[running, keep])?;
        let new = c.step(imp, &format!("batch_{what}_taken"), Op::Binary(BinaryOp::Mul), &[batch, take])?;
        emit_output(imp, n, i, &format!("running_{what}"), Op::Binary(BinaryOp::Add), &[old, new])?;
    }
    c.last(imp, Op::BatchNormalization { epsilon }, &[x, scale, bias, batch_mean, batch_var])
}

/// The pads that make a ConvTranspose produce `output_shape` (its spatial
/// dimensions, or all of them), as ONNX derives them: the total
/// `s·(in − 1) + output_padding + (k − 1)·d + 1 − out` split half and half
/// (the odd one at the end for SAME_UPPER, at the start otherwise). A
/// negative end pad, an output longer than the transposed convolution
/// gives, becomes output padding.
fn transpose_pads_for(
    n: &NodeView<'_>,
    x: &[usize],
    window: &Window,
    output_padding: &mut [usize],
    output_shape: &[i64],
) -> Result<Vec<usize>, ImportError> {
    let r = window.kernel.len();
    let shape = if output_shape.len() == r + 2 { &output_shape[2..] } else { output_shape };
    if shape.len() != r || x.len() != r + 2 || output_padding.len() != r {
        return Err(n.err(format!("output_shape {output_shape:?} does not match the input's {r} spatial dimensions")));
    }
    let upper = n.attrs.string("auto_pad", &n.name)?.as_deref() == Some("SAME_UPPER");
    let (mut begin, mut end) = (vec![0; r], vec![0; r]);
    for i in 0..r {
        let full = (window.strides[i] * (x[i + 2].max(1) - 1)
            + output_padding[i]
            + (window.kernel[i].max(1) - 1) * window.dilations[i]
            + 1) as i64;
        let total = full - shape[i];
        let half = total.div_euclid(2);
        let (b, e) = if upper { (half, total - half) } else { (total - half, half) };
        if b < 0 {
            return Err(n.err(format!(
                "output_shape {output_shape:?} needs {} more leading elements than the transposed convolution gives",
                -b
            )));
        }
        if e < 0 {
            output_padding[i] += (-e) as usize;
        }
        begin[i] = b as usize;
        end[i] = e.max(0) as usize;
    }
    begin.extend(end);
    Ok(begin)
}

/// MaxUnpool: zeros of the unpooled shape (`(in − 1)·stride − pads + kernel`
/// per spatial dimension) with each input element written at its index
/// (flat over that shape, as MaxPool's Indices give it): a ScatterElements
/// on the flattened tensors. A larger `output_shape` pads the result with
/// zeros at the end of each dimension.
fn max_unpool(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let iname = required(n, 1, "I")?;
    let xd = imp.shape_of(xname);
    if xd.len() < 3 || imp.shape_of(iname) != xd {
        return Err(n.err(format!("X has shape {xd:?}; expected [N, C, spatial…] and indices of the same shape")));
    }
    let w = window(n, None)?;
    let r = w.kernel.len();
    let pads = match &w.padding {
        Padding::Explicit(p) if p.len() == 2 * r => p.clone(),
        _ => return Err(n.err("MaxUnpool takes explicit `pads` (one begin and end per spatial dimension)")),
    };
    if xd.len() != r + 2 {
        return Err(n.err(format!("kernel_shape has {r} dimensions but X has {} spatial ones", xd.len() - 2)));
    }
    let mut inferred = xd[..2].to_vec();
    for i in 0..r {
        let full = (xd[i + 2].max(1) - 1) * w.strides[i] + w.kernel[i];
        let cut = pads[i] + pads[r + i];
        inferred.push(full.checked_sub(cut).ok_or_else(|| n.err("the pads exceed the unpooled size"))?);
    }
    let out: Vec<usize> = match const_input(imp, n, 2, "output_shape")? {
        Some(t) => to_usizes(n, "output_shape", &ints_of(n, &t)?)?,
        None => inferred.clone(),
    };
    if out.len() != xd.len() || out.iter().zip(&inferred).any(|(o, i)| o < i) || out[..2] != xd[..2] {
        return Err(n.err(format!(
            "output_shape {out:?} is not the unpooled shape {inferred:?} grown along spatial dimensions"
        )));
    }
    let numel: usize = xd.iter().product();
    let total: usize = inferred.iter().product();
    let c = Chain { n };
    let (x, idx) = (imp.tensor(xname)?, imp.tensor(iname)?);
    let flat = vec![numel as i64];
    let x = c.step(imp, "values", Op::Reshape { shape: flat.clone(), allow_zero: true }, &[x])?;
    let idx = c.step(imp, "indices", Op::Reshape { shape: flat, allow_zero: true }, &[idx])?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let zeros = imp.add_constant(format!("{}/zeros", n.name), Tensor::from_f64(dtype, vec![total], &vec![0.0; total]));
    let scatter = Op::ScatterElements { axis: 0, reduction: ScatterReduction::None };
    let placed = c.step(imp, "placed", scatter, &[zeros, idx, x])?;
    let shape = inferred.iter().map(|&d| d as i64).collect();
    if out == inferred {
        return c.last(imp, Op::Reshape { shape, allow_zero: true }, &[placed]);
    }
    let unpooled = c.step(imp, "unpooled", Op::Reshape { shape, allow_zero: true }, &[placed])?;
    let mut pads = vec![0; out.len()];
    pads.extend(out.iter().zip(&inferred).map(|(o, i)| o - i));
    c.last(imp, Op::Pad { pads, value: 0.0 }, &[unpooled])
}

/// PRelu: `x < 0 ? slope · x : x`, the slope broadcast to `x`.
fn prelu(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let sname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the slope input is missing"))?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let (x, slope) = (imp.tensor(xname)?, imp.tensor(sname)?);
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    let c = Chain { n };
    let neg = c.step(imp, "negative", Op::Binary(BinaryOp::Less), &[x, zero])?;
    let scaled = c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[x, slope])?;
    c.last(imp, Op::Where, &[neg, scaled, x])
}

/// Mean of any number of inputs: their broadcast Sum divided by the count.
fn mean(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let names: Vec<&str> = n.inputs.iter().flatten().copied().collect();
    let first = *names.first().ok_or_else(|| n.err("has no inputs"))?;
    let ids = names.iter().map(|t| imp.tensor(t)).collect::<Result<Vec<_>, _>>()?;
    if ids.len() == 1 {
        return Chain { n }.last(imp, Op::Identity, &ids);
    }
    let dtype = imp.dtype_of(first).unwrap_or(DType::F32);
    let c = Chain { n };
    let total = c.step(imp, "sum", Op::Sum, &ids)?;
    let count = scalar(imp, n, "count", dtype, ids.len() as f64);
    c.last(imp, Op::Binary(BinaryOp::Div), &[total, count])
}

/// Trilu: keeps the elements on and above (`upper=1`) or on and below the
/// `k`-th diagonal of the last two dimensions and zeroes the rest, as a
/// Where over a constant mask (broadcast over the leading dimensions).
fn trilu(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    if dims.len() < 2 {
        return Err(n.err(format!("input has rank {}; expected at least 2", dims.len())));
    }
    let upper = n.attrs.int("upper", &n.name)?.unwrap_or(1) != 0;
    let k = match const_input(imp, n, 1, "k")? {
        Some(t) => *ints_of(n, &t)?.first().ok_or_else(|| n.err("the k input is empty"))?,
        None => 0,
    };
    let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mask: Vec<bool> = (0..rows * cols)
        .map(|p| {
            let d = (p % cols) as i64 - (p / cols) as i64;
            if upper {
                d >= k
            } else {
                d <= k
            }
        })
        .collect();
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let x = imp.tensor(xname)?;
    let mask = imp.add_constant(format!("{}/mask", n.name), Tensor::bool(vec![rows, cols], mask));
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    Chain { n }.last(imp, Op::Where, &[mask, x, zero])
}

/// The optional input `i` as a graph tensor, `None` when omitted.
fn opt_tensor(imp: &mut Importer, n: &NodeView<'_>, i: usize) -> Result<Option<TensorId>, ImportError> {
    match n.inputs.get(i).copied().flatten() {
        Some(name) => Ok(Some(imp.tensor(name)?)),
        None => Ok(None),
    }
}

/// Output `i`'s name when the node asks for it.
/// NonZero: its output's size is the number of nonzero input elements.
fn non_zero(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let x = data_input(n)?;
    let output = wanted_output(n, 0).unwrap_or_else(|| format!("{}:0", n.name));
    let count = nonzero_count(imp, n, x, &output)?;
    emit_one(imp, n, Op::NonZero { count }, 1)
}

/// How many elements of tensor `x` are nonzero, for the output `output`
/// of node `n` that this count sizes: counted now when `x` is a constant,
/// else bound by the caller ([`super::ImportOptions::counts`], which
/// [`super::import_data_dependent`] fills from a run on the inputs) or
/// refused as [`ImportError::DataDependent`].
pub(super) fn nonzero_count(imp: &Importer, n: &NodeView<'_>, x: &str, output: &str) -> Result<usize, ImportError> {
    if let Some(t) = imp.const_of(x) {
        return Ok(t.to_f64().iter().filter(|v| **v != 0.0).count());
    }
    imp.counts.get(output).copied().ok_or_else(|| ImportError::DataDependent {
        node: n.name.clone(),
        op_type: n.op_type.to_string(),
        input: x.to_string(),
        output: output.to_string(),
    })
}

/// Compress: the slices of the input along `axis` (of the flattened input
/// without one) where the 1-D condition is true, as a Gather of the
/// condition's `NonZero` — whose count binds as a data-dependent size.
fn compress(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let cname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the condition input is missing"))?;
    let rank = imp.shape_of(cname).len();
    if rank != 1 {
        return Err(n.err(format!("the condition has rank {rank}; Compress takes a 1-D condition")));
    }
    let c = Chain { n };
    let count = nonzero_count(imp, n, cname, &format!("{}/selected", n.name))?;
    let cond = imp.tensor(cname)?;
    let selected = c.step(imp, "selected", Op::NonZero { count }, &[cond])?;
    let indices = c.step(imp, "indices", Op::Squeeze { axes: vec![0] }, &[selected])?;
    let x = imp.tensor(xname)?;
    let (data, axis) = match n.attrs.int("axis", &n.name)? {
        Some(axis) => (x, axis),
        None => (c.step(imp, "flat", Op::Reshape { shape: vec![-1], allow_zero: false }, &[x])?, 0),
    };
    c.last(imp, Op::Gather { axis }, &[data, indices])
}

/// Whether output `i` of the node is asked for.
pub(super) fn wanted(n: &NodeView<'_>, i: usize) -> bool {
    wanted_output(n, i).is_some()
}

fn wanted_output(n: &NodeView<'_>, i: usize) -> Option<String> {
    n.outputs.get(i).filter(|o| !o.is_empty()).cloned()
}

/// Emits `op` as the producer of output `i` of the node (or an internal
/// step named `{node}/{step}` when that output is not asked for).
pub(super) fn emit_output(
    imp: &mut Importer,
    n: &NodeView<'_>,
    i: usize,
    step: &str,
    op: Op,
    inputs: &[TensorId],
) -> Result<TensorId, ImportError> {
    let ins = inputs.iter().map(|&t| Some(t)).collect();
    match wanted_output(n, i) {
        Some(out) => Ok(imp.emit(&format!("{}/{step}", n.name), op, ins, &[out])?[0]),
        None => Ok(imp.emit(&format!("{}/{step}", n.name), op, ins, &[])?[0]),
    }
}

/// LayerNormalization with its Mean and InvStdDev outputs asked for: Y from
/// the LayerNormalization op, and the statistics (over the dimensions from
/// `axis` on, kept as 1s) as ReduceMean of x and `1/√(mean((x − mean)²) + ε)`.
fn layer_norm_stats(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let rank = imp.shape_of(xname).len();
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let axis_attr = n.attrs.int("axis", &n.name)?.unwrap_or(-1);
    let axis = norm_axis(n, axis_attr, rank)?;
    let epsilon = n.attrs.float("epsilon", &n.name)?.unwrap_or(1e-5);
    if n.attrs.int("stash_type", &n.name)?.is_some_and(|t| t != 1) {
        return Err(n.err("stash_type other than 1 (float) is not supported"));
    }
    let x = imp.tensor(xname)?;
    let scale = opt_tensor(imp, n, 1)?.ok_or_else(|| n.err("the Scale input is missing"))?;
    let bias = opt_tensor(imp, n, 2)?;
    let mut ln_inputs = vec![Some(x), Some(scale)];
    if bias.is_some() {
        ln_inputs.push(bias);
    }
    let y_out: Vec<String> = wanted_output(n, 0).into_iter().collect();
    imp.emit(&n.name, Op::LayerNormalization { axis: axis as i64, epsilon }, ln_inputs, &y_out)?;
    let axes: Vec<i64> = (axis as i64..rank as i64).collect();
    let c = Chain { n };
    let mean = emit_output(imp, n, 1, "mean", Op::ReduceMean { axes: axes.clone(), keepdims: true }, &[x])?;
    if wanted_output(n, 2).is_none() {
        return Ok(());
    }
    let (_, sd) = c.centred_stddev(imp, x, mean, axes, dtype, epsilon)?;
    emit_output(imp, n, 2, "inv_stddev", Op::Unary(UnaryOp::Reciprocal), &[sd])?;
    Ok(())
}

/// RMSNormalization: `x / √(mean(x²) + ε) · scale`, the mean over the
/// dimensions from `axis` on.
fn rms_norm(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let rank = imp.shape_of(xname).len();
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(-1), rank)?;
    let epsilon = n.attrs.float("epsilon", &n.name)?.unwrap_or(1e-5);
    if n.attrs.int("stash_type", &n.name)?.is_some_and(|t| t != 1) {
        return Err(n.err("stash_type other than 1 (float) is not supported"));
    }
    let x = imp.tensor(xname)?;
    let scale = opt_tensor(imp, n, 1)?.ok_or_else(|| n.err("the scale input is missing"))?;
    let c = Chain { n };
    let x2 = c.step(imp, "squared", Op::Binary(BinaryOp::Mul), &[x, x])?;
    let axes: Vec<i64> = (axis as i64..rank as i64).collect();
    let ms = c.step(imp, "mean_square", Op::ReduceMean { axes, keepdims: true }, &[x2])?;
    let eps = scalar(imp, n, "epsilon", dtype, epsilon as f64);
    let me = c.step(imp, "mean_square_eps", Op::Binary(BinaryOp::Add), &[ms, eps])?;
    let rms = c.step(imp, "rms", Op::Unary(UnaryOp::Sqrt), &[me])?;
    let normed = c.step(imp, "normalised", Op::Binary(BinaryOp::Div), &[x, rms])?;
    c.last(imp, Op::Binary(BinaryOp::Mul), &[normed, scale])
}

/// Hardmax: 1 at the first largest element along `axis`, 0 elsewhere, as
/// `ArgMax == position` cast to the input's type. Before opset 13 the axis
/// covers every dimension from `axis` on (the input seen as 2-D), so the
/// input is flattened around it first.
fn hardmax(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let rank = dims.len();
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let c = Chain { n };
    let mut x = imp.tensor(xname)?;
    let (axis, work_dims) = if n.opset >= 13 {
        let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(-1), rank)?;
        (axis, dims.clone())
    } else {
        let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(1), rank)?;
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis..].iter().product();
        let shape = vec![outer as i64, inner as i64];
        x = c.step(imp, "flatten", Op::Reshape { shape, allow_zero: false }, &[x])?;
        (1, vec![outer, inner])
    };
    let len = work_dims[axis];
    let arg =
        c.step(imp, "argmax", Op::ArgMax { axis: axis as i64, keepdims: true, select_last_index: false }, &[x])?;
    let mut pos_shape = vec![1; work_dims.len()];
    pos_shape[axis] = len;
    let positions =
        imp.add_constant(format!("{}/positions", n.name), Tensor::i64(pos_shape, (0..len as i64).collect()));
    let hit = c.step(imp, "is_max", Op::Binary(BinaryOp::Equal), &[arg, positions])?;
    if work_dims == dims {
        return c.last(imp, Op::Cast { to: dtype }, &[hit]);
    }
    let y = c.step(imp, "onehot", Op::Cast { to: dtype }, &[hit])?;
    let back: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    c.last(imp, Op::Reshape { shape: back, allow_zero: true }, &[y])
}

/// Attention (opset 23/24) as the computation ONNX defines: 3-D inputs
/// split into heads, the key/value cache appended (present_key and
/// present_value), grouped-query heads repeated, `Q·√s` times `(K·√s)ᵀ`,
/// softcap, the additive bias (attn_mask, boolean or float, padded with
/// −∞ to the key length; causal and sliding-window masks aligned to the
/// cache length), softmax over keys, fully masked rows zeroed, times V.
/// The qk_matmul_output output gives modes 0 to 3. `nonpad_kv_seqlen` (an
/// external cache) is refused by name.
fn attention(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let a = n.attrs;
    let name = n.name.as_str();
    if n.inputs.get(6).copied().flatten().is_some() {
        return Err(n.err("the nonpad_kv_seqlen input (external KV cache) is not supported"));
    }
    let qname = data_input(n)?;
    let q_dims = imp.shape_of(qname);
    let dtype = imp.dtype_of(qname).unwrap_or(DType::F32);
    if !dtype.is_float() {
        return Err(n.err(format!("Q has element type {dtype}; expected a float type")));
    }
    let input = |i: usize, what: &str| -> Result<&str, ImportError> {
        n.inputs.get(i).copied().flatten().ok_or_else(|| n.err(format!("the {what} input is missing")))
    };
    let (kname, vname) = (input(1, "K")?, input(2, "V")?);
    let (k_dims, v_dims) = (imp.shape_of(kname), imp.shape_of(vname));
    let rank = q_dims.len();
    if !(rank == 3 || rank == 4) || k_dims.len() != rank || v_dims.len() != rank {
        return Err(n.err(format!(
            "Q, K and V have shapes {}, {} and {}; expected all 3-D or all 4-D",
            Shape(q_dims.clone()),
            Shape(k_dims.clone()),
            Shape(v_dims.clone())
        )));
    }
    let softcap = a.float("softcap", name)?.unwrap_or(0.0);
    let is_causal = a.int("is_causal", name)?.unwrap_or(0) != 0;
    let mode = a.int("qk_matmul_output_mode", name)?.unwrap_or(0);
    if !(0..=3).contains(&mode) {
        return Err(n.err(format!("qk_matmul_output_mode {mode} is not one of 0, 1, 2, 3")));
    }
    let left_window = a.int("left_window_size", name)?.unwrap_or(-1);
    let right_window = a.int("right_window_size", name)?.unwrap_or(-1);
    let c = Chain { n };
    let batch = q_dims[0];
    let (mut q, mut k, mut v) = (imp.tensor(qname)?, imp.tensor(kname)?, imp.tensor(vname)?);
    if rank == 3 {
        let heads = |attr: &str| -> Result<usize, ImportError> {
            let h = a.int(attr, name)?.ok_or_else(|| n.err(format!("3-D inputs need the `{attr}` attribute")))?;
            usize::try_from(h).ok().filter(|&h| h > 0).ok_or_else(|| n.err(format!("`{attr}` is {h}")))
        };
        let (hq, hkv) = (heads("q_num_heads")?, heads("kv_num_heads")?);
        let split = |imp: &mut Importer, t: TensorId, dims: &[usize], h: usize, what: &str| {
            if !dims[2].is_multiple_of(h) {
                return Err(n.err(format!("{what} hidden size {} is not a multiple of {h} heads", dims[2])));
            }
            let shape = vec![dims[0] as i64, dims[1] as i64, h as i64, (dims[2] / h) as i64];
            let r = c.step(imp, &format!("{what}_heads"), Op::Reshape { shape, allow_zero: false }, &[t])?;
            c.step(imp, &format!("{what}_bhsd"), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[r])
        };
        q = split(imp, q, &q_dims, hq, "q")?;
        k = split(imp, k, &k_dims, hkv, "k")?;
        v = split(imp, v, &v_dims, hkv, "v")?;
    }
    let shape = |imp: &Importer, t: TensorId| imp.graph.info(t).shape.dims().to_vec();
    let (qd, kd) = (shape(imp, q), shape(imp, k));
    let head_size = qd[3];
    // The key/value cache.
    let past_len = match (opt_tensor(imp, n, 4)?, opt_tensor(imp, n, 5)?) {
        (Some(pk), Some(pv)) => {
            let len = shape(imp, pk).get(2).copied().unwrap_or(0);
            k = emit_output(imp, n, 1, "present_key", Op::Concat { axis: 2 }, &[pk, k])?;
            v = emit_output(imp, n, 2, "present_value", Op::Concat { axis: 2 }, &[pv, v])?;
            len
        }
        (None, None) => {
            for (i, t, what) in [(1, k, "present_key"), (2, v, "present_value")] {
                if wanted_output(n, i).is_some() {
                    emit_output(imp, n, i, what, Op::Identity, &[t])?;
                }
            }
            0
        }
        _ => return Err(n.err("past_key and past_value must be given together")),
    };
    let kv_len = shape(imp, k)[2];
    let q_len = qd[2];
    // Grouped-query attention: each KV head serves q_heads / kv_heads
    // consecutive query heads.
    let (hq, hkv) = (qd[1], kd[1]);
    if hq != hkv {
        if hkv == 0 || !hq.is_multiple_of(hkv) {
            return Err(n.err(format!("{hq} query heads are not a multiple of {hkv} key/value heads")));
        }
        let reps = hq / hkv;
        let idx: Vec<i64> = (0..hq).map(|h| (h / reps) as i64).collect();
        let idx = imp.add_constant(format!("{}/head_map", n.name), Tensor::i64(vec![hq], idx));
        k = c.step(imp, "k_repeated", Op::Gather { axis: 1 }, &[k, idx])?;
        v = c.step(imp, "v_repeated", Op::Gather { axis: 1 }, &[v, idx])?;
    }
    // Scores: the scale's square root on each side, as ONNX computes it.
    let scale = match a.float("scale", name)? {
        Some(s) => s as f64,
        None => 1.0 / (head_size as f64).sqrt(),
    };
    let root = scalar(imp, n, "scale_root", dtype, scale.sqrt());
    let qs = c.step(imp, "q_scaled", Op::Binary(BinaryOp::Mul), &[q, root])?;
    let ks = c.step(imp, "k_scaled", Op::Binary(BinaryOp::Mul), &[k, root])?;
    let kt = c.step(imp, "k_transposed", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[ks])?;
    let mut scores = c.step(imp, "scores", Op::MatMul, &[qs, kt])?;
    if softcap > 0.0 {
        let cap = scalar(imp, n, "softcap", dtype, softcap as f64);
        let d = c.step(imp, "softcap_div", Op::Binary(BinaryOp::Div), &[scores, cap])?;
        let t = c.step(imp, "softcap_tanh", Op::Unary(UnaryOp::Tanh), &[d])?;
        scores = c.step(imp, "softcapped", Op::Binary(BinaryOp::Mul), &[t, cap])?;
    }
    if mode <= 1 && wanted_output(n, 3).is_some() {
        emit_output(imp, n, 3, "qk_output", Op::Identity, &[scores])?;
    }
    // The constant part of the bias: causal and sliding-window masks.
    let ninf = f64::NEG_INFINITY;
    let windowed = left_window >= 0 || right_window >= 0;
    let const_bias: Option<Vec<f64>> = (is_causal || windowed).then(|| {
        let mut bias = vec![0.0; q_len * kv_len];
        for i in 0..q_len {
            for j in 0..kv_len {
                let diff = (i + past_len) as i64 - j as i64;
                let causal_ok = !is_causal || diff >= 0;
                let left_ok = left_window < 0 || diff <= left_window;
                let right_ok = right_window < 0 || -diff <= right_window;
                if !(causal_ok && left_ok && right_ok) {
                    bias[i * kv_len + j] = ninf;
                }
            }
        }
        bias
    });
    // The run-time part: attn_mask as an additive bias padded to kv_len.
    let mask = match n.inputs.get(3).copied().flatten() {
        Some(mname) => {
            let mdims = imp.shape_of(mname);
            let mtype = imp.dtype_of(mname).unwrap_or(DType::F32);
            let mut m = imp.tensor(mname)?;
            if mtype == DType::Bool {
                let zero = scalar(imp, n, "mask_zero", dtype, 0.0);
                let minf = scalar(imp, n, "mask_ninf", dtype, ninf);
                m = c.step(imp, "mask_bias", Op::Where, &[m, zero, minf])?;
            } else if mtype != dtype {
                return Err(n.err(format!("attn_mask has element type {mtype}; expected bool or Q's type {dtype}")));
            }
            let last = *mdims.last().ok_or_else(|| n.err("attn_mask is a scalar"))?;
            if last > kv_len {
                return Err(n.err(format!("attn_mask covers {last} keys but there are {kv_len}")));
            }
            if last < kv_len {
                let mut pads = vec![0; 2 * mdims.len()];
                pads[2 * mdims.len() - 1] = kv_len - last;
                m = c.step(imp, "mask_padded", Op::Pad { pads, value: f32::NEG_INFINITY }, &[m])?;
            }
            Some(m)
        }
        None => None,
    };
    let bias = match (mask, &const_bias) {
        (Some(m), Some(cb)) => {
            let cbt = Tensor::from_f64(dtype, vec![q_len, kv_len], cb);
            let cbt = imp.add_constant(format!("{}/causal_bias", n.name), cbt);
            Some(c.step(imp, "bias", Op::Binary(BinaryOp::Add), &[m, cbt])?)
        }
        (Some(m), None) => Some(m),
        (None, Some(cb)) => {
            let cbt = Tensor::from_f64(dtype, vec![q_len, kv_len], cb);
            Some(imp.add_constant(format!("{}/causal_bias", n.name), cbt))
        }
        (None, None) => None,
    };
    let biased = match bias {
        Some(b) => c.step(imp, "biased", Op::Binary(BinaryOp::Add), &[scores, b])?,
        None => scores,
    };
    if mode == 2 && wanted_output(n, 3).is_some() {
        emit_output(imp, n, 3, "qk_output", Op::Identity, &[biased])?;
    }
    let mut probs = c.step(imp, "probs", Op::Softmax { axis: -1 }, &[biased])?;
    // Rows whose bias is −∞ everywhere attend to nothing: zero probabilities.
    if let Some(b) = bias {
        let row_max = c.step(imp, "bias_row_max", Op::ReduceMax { axes: vec![-1], keepdims: true }, &[b])?;
        let minf = scalar(imp, n, "ninf", dtype, ninf);
        let masked = c.step(imp, "row_masked", Op::Binary(BinaryOp::Equal), &[row_max, minf])?;
        let zero = scalar(imp, n, "zero", dtype, 0.0);
        probs = c.step(imp, "probs_guarded", Op::Where, &[masked, zero, probs])?;
    }
    if mode == 3 && wanted_output(n, 3).is_some() {
        emit_output(imp, n, 3, "qk_output", Op::Identity, &[probs])?;
    }
    let _ = batch;
    if rank == 4 {
        let outs: Vec<String> = wanted_output(n, 0).into_iter().collect();
        imp.emit(&format!("{}/output", n.name), Op::MatMul, vec![Some(probs), Some(v)], &outs)?;
        return Ok(());
    }
    let y = c.step(imp, "output_bhsd", Op::MatMul, &[probs, v])?;
    let y = c.step(imp, "output_bshd", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[y])?;
    let yd = shape(imp, y);
    let flat = vec![yd[0] as i64, yd[1] as i64, (yd[2] * yd[3]) as i64];
    let outs: Vec<String> = wanted_output(n, 0).into_iter().collect();
    imp.emit(&n.name, Op::Reshape { shape: flat, allow_zero: false }, vec![Some(y)], &outs)?;
    Ok(())
}

/// NegativeLogLikelihoodLoss, and SoftmaxCrossEntropyLoss as LogSoftmax
/// over the classes (its optional second output) followed by it. The loss
/// of element `(n, d…)` is `−input[n, target, d…] · weight[target]`
/// (GatherElements on the classes axis, Gather of the weights), 0 where the
/// target is `ignore_index` (whose index is replaced by 0 before gathering,
/// so no index is out of range); `mean` divides the sum by the summed
/// weights of the elements not ignored, except that, as ONNX's reference
/// computes NegativeLogLikelihoodLoss, with no weights and
/// `ignore_index = −1` it divides by the element count.
fn nll_loss(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let a = n.attrs;
    let name = n.name.as_str();
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if dims.len() < 2 {
        return Err(n.err(format!("input has shape {}; expected [N, C, d…]", Shape(dims.clone()))));
    }
    let tname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the target input is missing"))?;
    let tdims = imp.shape_of(tname);
    let mut want_t = vec![dims[0]];
    want_t.extend_from_slice(&dims[2..]);
    if tdims != want_t {
        return Err(n.err(format!(
            "target has shape {}; expected {} (input {} without the classes)",
            Shape(tdims),
            Shape(want_t),
            Shape(dims.clone())
        )));
    }
    let ttype = imp.dtype_of(tname).unwrap_or(DType::I64);
    if !matches!(ttype, DType::I32 | DType::I64) {
        return Err(n.err(format!("target has element type {ttype}; expected i32 or i64")));
    }
    let reduction = a.string("reduction", name)?.unwrap_or_else(|| "mean".into());
    if !matches!(reduction.as_str(), "none" | "sum" | "mean") {
        return Err(n.err(format!("reduction `{reduction}` is not one of none, sum, mean")));
    }
    let ignore = a.int("ignore_index", name)?;
    let c = Chain { n };
    let mut x = imp.tensor(xname)?;
    let sce = n.op_type == "SoftmaxCrossEntropyLoss";
    if sce {
        x = emit_output(imp, n, 1, "log_prob", Op::LogSoftmax { axis: 1 }, &[x])?;
    }
    let t = imp.tensor(tname)?;
    let weight = opt_tensor(imp, n, 2)?;
    let ignored = match ignore {
        Some(ii) => {
            let iic = scalar(imp, n, "ignore_index", ttype, ii as f64);
            Some(c.step(imp, "ignored", Op::Binary(BinaryOp::Equal), &[t, iic])?)
        }
        None => None,
    };
    let safe_t = match ignored {
        Some(ig) => {
            let zero = scalar(imp, n, "index_zero", ttype, 0.0);
            c.step(imp, "safe_target", Op::Where, &[ig, zero, t])?
        }
        None => t,
    };
    let idx = c.step(imp, "target_column", Op::Unsqueeze { axes: vec![1] }, &[safe_t])?;
    let picked = c.step(imp, "picked", Op::GatherElements { axis: 1 }, &[x, idx])?;
    let picked = c.step(imp, "picked_squeezed", Op::Squeeze { axes: vec![1] }, &[picked])?;
    let mut loss = c.step(imp, "negated", Op::Unary(UnaryOp::Neg), &[picked])?;
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    if let Some(ig) = ignored {
        loss = c.step(imp, "loss_unignored", Op::Where, &[ig, zero, loss])?;
    }
    // The per-element weights, when any differ from 1.
    let w = match (weight, ignored) {
        (Some(wt), ig) => {
            let g = c.step(imp, "weights", Op::Gather { axis: 0 }, &[wt, safe_t])?;
            Some(match ig {
                Some(ig) => c.step(imp, "weights_unignored", Op::Where, &[ig, zero, g])?,
                None => g,
            })
        }
        (None, Some(ig)) if sce || ignore != Some(-1) => {
            let one = scalar(imp, n, "one", dtype, 1.0);
            Some(c.step(imp, "weights_unignored", Op::Where, &[ig, zero, one])?)
        }
        _ => None,
    };
    if let (Some(w), Some(_)) = (w, weight) {
        loss = c.step(imp, "weighted", Op::Binary(BinaryOp::Mul), &[loss, w])?;
    }
    let all: Vec<i64> = (0..want_t_rank(&dims) as i64).collect();
    let out = |imp: &mut Importer, op: Op, inputs: &[TensorId]| -> Result<(), ImportError> {
        let outs: Vec<String> = wanted_output(n, 0).into_iter().collect();
        imp.emit(name, op, inputs.iter().map(|&t| Some(t)).collect(), &outs)?;
        Ok(())
    };
    match (reduction.as_str(), w) {
        ("none", _) => out(imp, Op::Identity, &[loss]),
        ("sum", _) => out(imp, Op::ReduceSum { axes: all, keepdims: false }, &[loss]),
        (_, Some(w)) => {
            let total = c.step(imp, "total", Op::ReduceSum { axes: all.clone(), keepdims: false }, &[loss])?;
            let wsum = c.step(imp, "weight_total", Op::ReduceSum { axes: all, keepdims: false }, &[w])?;
            out(imp, Op::Binary(BinaryOp::Div), &[total, wsum])
        }
        (_, None) => out(imp, Op::ReduceMean { axes: all, keepdims: false }, &[loss]),
    }
}

/// The rank of the loss before reduction: the input's without the classes.
fn want_t_rank(dims: &[usize]) -> usize {
    dims.len() - 1
}

/// Gelu (opset 20): the exact erf form, or with `approximate="tanh"`
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
fn gelu(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let approximate = n.attrs.string("approximate", &n.name)?.unwrap_or_else(|| "none".into());
    let xname = data_input(n)?;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    match approximate.as_str() {
        "none" => c.last(imp, Op::Unary(UnaryOp::Gelu), &[x]),
        "tanh" => {
            let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
            let k = scalar(imp, n, "cubic", dtype, 0.044715);
            let r = scalar(imp, n, "sqrt_2_over_pi", dtype, (2.0 / std::f64::consts::PI).sqrt());
            let half = scalar(imp, n, "half", dtype, 0.5);
            let one = scalar(imp, n, "one", dtype, 1.0);
            let x2 = c.step(imp, "x2", Op::Binary(BinaryOp::Mul), &[x, x])?;
            let x3 = c.step(imp, "x3", Op::Binary(BinaryOp::Mul), &[x2, x])?;
            let kx3 = c.step(imp, "kx3", Op::Binary(BinaryOp::Mul), &[x3, k])?;
            let inner = c.step(imp, "inner", Op::Binary(BinaryOp::Add), &[x, kx3])?;
            let scaled = c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[inner, r])?;
            let t = c.step(imp, "tanh", Op::Unary(UnaryOp::Tanh), &[scaled])?;
            let t1 = c.step(imp, "one_plus", Op::Binary(BinaryOp::Add), &[t, one])?;
            let hx = c.step(imp, "half_x", Op::Binary(BinaryOp::Mul), &[x, half])?;
            c.last(imp, Op::Binary(BinaryOp::Mul), &[hx, t1])
        }
        other => Err(n.err(format!("approximate `{other}` is not one of none, tanh"))),
    }
}

/// Swish (opset 24): `x · sigmoid(alpha · x)`.
fn swish(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let alpha = n.attrs.float("alpha", &n.name)?.unwrap_or(1.0);
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let ax = if alpha == 1.0 {
        x
    } else {
        let a = scalar(imp, n, "alpha", dtype, alpha as f64);
        c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[x, a])?
    };
    let s = c.step(imp, "sigmoid", Op::Unary(UnaryOp::Sigmoid), &[ax])?;
    c.last(imp, Op::Binary(BinaryOp::Mul), &[x, s])
}

/// DepthToSpace (modes DCR and CRD) and SpaceToDepth on `[N, C, H, W]`:
/// Reshape to six dimensions, Transpose, Reshape back, as ONNX defines them.
fn depth_space(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    if dims.len() != 4 {
        return Err(n.err(format!("input has shape {}; expected [N, C, H, W]", Shape(dims.clone()))));
    }
    let b = n.attrs.int("blocksize", &n.name)?.ok_or_else(|| n.err("attribute `blocksize` is missing"))?;
    let b =
        usize::try_from(b).ok().filter(|&b| b > 0).ok_or_else(|| n.err(format!("blocksize {b} is not positive")))?;
    let (bn, ch, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    let i = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<i64>>();
    let (split, perm, merged) = if n.op_type == "DepthToSpace" {
        if !ch.is_multiple_of(b * b) {
            return Err(n.err(format!("{ch} channels are not a multiple of blocksize² = {}", b * b)));
        }
        let c2 = ch / (b * b);
        let mode = n.attrs.string("mode", &n.name)?.unwrap_or_else(|| "DCR".into());
        let (split, perm) = match mode.as_str() {
            "DCR" => (vec![bn, b, b, c2, h, w], vec![0, 3, 4, 1, 5, 2]),
            "CRD" => (vec![bn, c2, b, b, h, w], vec![0, 1, 4, 2, 5, 3]),
            other => return Err(n.err(format!("mode `{other}` is not one of DCR, CRD"))),
        };
        (split, perm, vec![bn, c2, h * b, w * b])
    } else {
        if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
            return Err(n.err(format!("height {h} and width {w} are not multiples of blocksize {b}")));
        }
        let mode = n.attrs.string("mode", &n.name)?.unwrap_or_else(|| "DCR".into());
        let perm = match mode.as_str() {
            "DCR" => vec![0, 3, 5, 1, 2, 4],
            "CRD" => vec![0, 1, 3, 5, 2, 4],
            other => return Err(n.err(format!("mode `{other}` is not one of DCR, CRD"))),
        };
        (vec![bn, ch, h / b, b, w / b, b], perm, vec![bn, ch * b * b, h / b, w / b])
    };
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let r = c.step(imp, "split", Op::Reshape { shape: i(&split), allow_zero: true }, &[x])?;
    let t = c.step(imp, "transposed", Op::Transpose { perm }, &[r])?;
    c.last(imp, Op::Reshape { shape: i(&merged), allow_zero: true }, &[t])
}

/// Tile with constant repeats: x `[d…]` seen as `[1, d₀, 1, d₁, …]` times
/// ones `[r₀, 1, r₁, 1, …]` (broadcast), reshaped to `[r₀·d₀, r₁·d₁, …]`.
fn tile(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let reps = const_input(imp, n, 1, "repeats")?.ok_or_else(|| n.err("the repeats input is missing"))?;
    let reps = to_usizes(n, "repeats", &ints_of(n, &reps)?)?;
    if reps.len() != dims.len() {
        return Err(n.err(format!("{} repeats for an input of rank {}", reps.len(), dims.len())));
    }
    if dtype == DType::Bool {
        return Err(n.err("tiling a boolean tensor is not supported"));
    }
    let out: Vec<usize> = dims.iter().zip(&reps).map(|(d, r)| d * r).collect();
    super::tensor::check_elements(|| format!("node `{}` (Tile)", n.name), &out, n.max_elements)?;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    if reps.iter().all(|&r| r == 1) {
        return c.last(imp, Op::Identity, &[x]);
    }
    let spread: Vec<i64> = dims.iter().flat_map(|&d| [1, d as i64]).collect();
    let ones_shape: Vec<usize> = reps.iter().flat_map(|&r| [r, 1]).collect();
    let count: usize = reps.iter().product();
    imp.charge_new(&n.name, "Tile", &format!("{}/ones", n.name), &ones_shape, dtype)?;
    let ones =
        imp.add_constant(format!("{}/ones", n.name), Tensor::from_f64(dtype, Shape(ones_shape), &vec![1.0; count]));
    let xs = c.step(imp, "spread", Op::Reshape { shape: spread, allow_zero: true }, &[x])?;
    let rep = c.step(imp, "repeated", Op::Binary(BinaryOp::Mul), &[xs, ones])?;
    let shape = out.iter().map(|&d| d as i64).collect();
    c.last(imp, Op::Reshape { shape, allow_zero: true }, &[rep])
}

/// LpNormalization: `x / ‖x‖ₚ` along `axis`, p 1 or 2; 0 where the norm is 0.
fn lp_norm(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let rank = imp.shape_of(xname).len();
    let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(-1), rank)?;
    let p = n.attrs.int("p", &n.name)?.unwrap_or(2);
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let sum = Op::ReduceSum { axes: vec![axis as i64], keepdims: true };
    let norm = match p {
        1 => {
            let a = c.step(imp, "abs", Op::Unary(UnaryOp::Abs), &[x])?;
            c.step(imp, "norm", sum, &[a])?
        }
        2 => {
            let sq = c.step(imp, "square", Op::Binary(BinaryOp::Mul), &[x, x])?;
            let s = c.step(imp, "sum_squares", sum, &[sq])?;
            c.step(imp, "norm", Op::Unary(UnaryOp::Sqrt), &[s])?
        }
        other => return Err(n.err(format!("p = {other} is not supported (1 or 2)"))),
    };
    // A zero norm (an all-zero slice) gives zeros, as ONNX specifies.
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    let one = scalar(imp, n, "one", dtype, 1.0);
    let is_zero = c.step(imp, "norm_is_zero", Op::Binary(BinaryOp::Equal), &[norm, zero])?;
    let safe = c.step(imp, "norm_nonzero", Op::Where, &[is_zero, one, norm])?;
    c.last(imp, Op::Binary(BinaryOp::Div), &[x, safe])
}

/// InstanceNormalization: per `(n, c)`, `(x − mean) / √(var + ε) · scale[c]
/// + B[c]` over the spatial dimensions.
fn instance_norm(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if dims.len() < 3 {
        return Err(n.err(format!("input has shape {}; expected [N, C, spatial…]", Shape(dims.clone()))));
    }
    let epsilon = n.attrs.float("epsilon", &n.name)?.unwrap_or(1e-5);
    let x = imp.tensor(xname)?;
    let scale = opt_tensor(imp, n, 1)?.ok_or_else(|| n.err("the scale input is missing"))?;
    let bias = opt_tensor(imp, n, 2)?.ok_or_else(|| n.err("the B input is missing"))?;
    let c = Chain { n };
    let axes: Vec<i64> = (2..dims.len() as i64).collect();
    let mut per_channel = vec![dims[1] as i64];
    per_channel.resize(dims.len() - 1, 1);
    let mean = c.step(imp, "mean", Op::ReduceMean { axes: axes.clone(), keepdims: true }, &[x])?;
    let (d, sd) = c.centred_stddev(imp, x, mean, axes, dtype, epsilon)?;
    let normed = c.step(imp, "normalised", Op::Binary(BinaryOp::Div), &[d, sd])?;
    let s = c.step(imp, "scale_c", Op::Reshape { shape: per_channel.clone(), allow_zero: false }, &[scale])?;
    let b = c.step(imp, "bias_c", Op::Reshape { shape: per_channel, allow_zero: false }, &[bias])?;
    let scaled = c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[normed, s])?;
    c.last(imp, Op::Binary(BinaryOp::Add), &[scaled, b])
}

/// IsNaN: `x ≠ x`, the one comparison NaN fails with itself.
fn is_nan(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let x = imp.tensor(data_input(n)?)?;
    let c = Chain { n };
    let same = c.step(imp, "equals_itself", Op::Binary(BinaryOp::Equal), &[x, x])?;
    c.last(imp, Op::Unary(UnaryOp::Not), &[same])
}

/// IsInf: `x = +∞` and/or `x = −∞` as `detect_positive` and
/// `detect_negative` ask (both by default); with neither, `x = NaN`, which
/// is false everywhere.
fn is_inf(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if !dtype.is_float() {
        return Err(n.err(format!("input is {dtype}; IsInf takes a float tensor")));
    }
    let pos = n.attrs.int("detect_positive", &n.name)?.unwrap_or(1) != 0;
    let neg = n.attrs.int("detect_negative", &n.name)?.unwrap_or(1) != 0;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let eq = Op::Binary(BinaryOp::Equal);
    match (pos, neg) {
        (true, true) => {
            let inf = scalar(imp, n, "inf", dtype, f64::INFINITY);
            let ninf = scalar(imp, n, "neg_inf", dtype, f64::NEG_INFINITY);
            let p = c.step(imp, "is_pos_inf", eq.clone(), &[x, inf])?;
            let m = c.step(imp, "is_neg_inf", eq, &[x, ninf])?;
            c.last(imp, Op::Binary(BinaryOp::Or), &[p, m])
        }
        (p, m) => {
            let v = if p {
                f64::INFINITY
            } else if m {
                f64::NEG_INFINITY
            } else {
                f64::NAN
            };
            let target = scalar(imp, n, "target", dtype, v);
            c.last(imp, eq, &[x, target])
        }
    }
}

/// Shrink: `x < −λ ? x + bias : x > λ ? x − bias : 0`.
fn shrink(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let lambd = n.attrs.float("lambd", &n.name)?.unwrap_or(0.5) as f64;
    let bias = n.attrs.float("bias", &n.name)?.unwrap_or(0.0) as f64;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let lo = scalar(imp, n, "neg_lambd", dtype, -lambd);
    let hi = scalar(imp, n, "lambd", dtype, lambd);
    let b = scalar(imp, n, "bias", dtype, bias);
    let zero = scalar(imp, n, "zero", dtype, 0.0);
    let below = c.step(imp, "below", Op::Binary(BinaryOp::Less), &[x, lo])?;
    let above = c.step(imp, "above", Op::Binary(BinaryOp::Greater), &[x, hi])?;
    let up = c.step(imp, "plus_bias", Op::Binary(BinaryOp::Add), &[x, b])?;
    let down = c.step(imp, "minus_bias", Op::Binary(BinaryOp::Sub), &[x, b])?;
    let upper = c.step(imp, "upper", Op::Where, &[above, down, zero])?;
    c.last(imp, Op::Where, &[below, up, upper])
}

/// MeanVarianceNormalization: `(x − mean) / (√var + 1e-9)` over `axes`
/// (default `[0, 2, 3]`), the variance taken about the mean.
fn mean_variance_norm(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let rank = imp.shape_of(xname).len();
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let axes = n.attrs.ints("axes", &n.name)?.unwrap_or_else(|| vec![0, 2, 3]);
    let axes: Vec<i64> = axes.iter().map(|&a| norm_axis(n, a, rank).map(|a| a as i64)).collect::<Result<_, _>>()?;
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let mean = c.step(imp, "mean", Op::ReduceMean { axes: axes.clone(), keepdims: true }, &[x])?;
    let d = c.step(imp, "centred", Op::Binary(BinaryOp::Sub), &[x, mean])?;
    let d2 = c.step(imp, "squared", Op::Binary(BinaryOp::Mul), &[d, d])?;
    let var = c.step(imp, "variance", Op::ReduceMean { axes, keepdims: true }, &[d2])?;
    let sd = c.step(imp, "stddev", Op::Unary(UnaryOp::Sqrt), &[var])?;
    let eps = scalar(imp, n, "epsilon", dtype, 1e-9);
    let sde = c.step(imp, "stddev_eps", Op::Binary(BinaryOp::Add), &[sd, eps])?;
    c.last(imp, Op::Binary(BinaryOp::Div), &[d, sde])
}

/// GroupNormalization: the channels split into `num_groups` groups, each
/// `(n, group)` normalised as InstanceNormalization does, then scaled and
/// shifted per channel (opset 21) or per group (opset 18).
fn group_norm(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if dims.len() < 2 {
        return Err(n.err(format!("input has shape {}; expected [N, C, spatial…]", Shape(dims.clone()))));
    }
    let groups = n.attrs.int("num_groups", &n.name)?.ok_or_else(|| n.err("attribute `num_groups` is missing"))?;
    let groups = to_usize(n, "num_groups", groups)?;
    if groups == 0 || !dims[1].is_multiple_of(groups) {
        return Err(n.err(format!("{} channels do not split into {groups} groups", dims[1])));
    }
    let epsilon = n.attrs.float("epsilon", &n.name)?.unwrap_or(1e-5);
    let x = imp.tensor(xname)?;
    let scale = opt_tensor(imp, n, 1)?.ok_or_else(|| n.err("the scale input is missing"))?;
    let bias = opt_tensor(imp, n, 2)?.ok_or_else(|| n.err("the bias input is missing"))?;
    let c = Chain { n };
    let grouped = c.step(
        imp,
        "grouped",
        Op::Reshape { shape: vec![dims[0] as i64, groups as i64, -1], allow_zero: false },
        &[x],
    )?;
    let mean = c.step(imp, "mean", Op::ReduceMean { axes: vec![2], keepdims: true }, &[grouped])?;
    let (d, sd) = c.centred_stddev(imp, grouped, mean, vec![2], dtype, epsilon)?;
    let normed = c.step(imp, "normalised", Op::Binary(BinaryOp::Div), &[d, sd])?;
    let (normed, per) = if n.opset >= 21 {
        let back = dims.iter().map(|&d| d as i64).collect();
        let normed = c.step(imp, "ungrouped", Op::Reshape { shape: back, allow_zero: false }, &[normed])?;
        let mut per = vec![dims[1] as i64];
        per.resize(dims.len() - 1, 1);
        (normed, per)
    } else {
        (normed, vec![groups as i64, 1])
    };
    let s = c.step(imp, "scale_b", Op::Reshape { shape: per.clone(), allow_zero: false }, &[scale])?;
    let b = c.step(imp, "bias_b", Op::Reshape { shape: per, allow_zero: false }, &[bias])?;
    let scaled = c.step(imp, "scaled", Op::Binary(BinaryOp::Mul), &[normed, s])?;
    if n.opset >= 21 {
        c.last(imp, Op::Binary(BinaryOp::Add), &[scaled, b])
    } else {
        let shifted = c.step(imp, "shifted", Op::Binary(BinaryOp::Add), &[scaled, b])?;
        let back = dims.iter().map(|&d| d as i64).collect();
        c.last(imp, Op::Reshape { shape: back, allow_zero: false }, &[shifted])
    }
}

/// LpPool: `(Σ |x|^p)^(1/p)` over each window, padding counting as zero:
/// AveragePool of `|x|^p` with the padding counted, times the window size.
fn lp_pool(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let p = n.attrs.int("p", &n.name)?.unwrap_or(2);
    if p < 1 {
        return Err(n.err(format!("p = {p}; LpPool needs p ≥ 1")));
    }
    if n.attrs.int("ceil_mode", &n.name)?.unwrap_or(0) != 0 {
        return Err(n.err("ceil_mode=1 is not supported (windows past the padded edge)"));
    }
    let window = window(n, None)?;
    let size: usize = window.kernel.iter().product();
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let a = c.step(imp, "abs", Op::Unary(UnaryOp::Abs), &[x])?;
    let pw = scalar(imp, n, "p", dtype, p as f64);
    let ap = c.step(imp, "abs_pow_p", Op::Binary(BinaryOp::Pow), &[a, pw])?;
    let pool = Op::AveragePool { window, ceil_mode: false, count_include_pad: true };
    let avg = c.step(imp, "mean_pow_p", pool, &[ap])?;
    let k = scalar(imp, n, "window_size", dtype, size as f64);
    let sum = c.step(imp, "sum_pow_p", Op::Binary(BinaryOp::Mul), &[avg, k])?;
    let inv = scalar(imp, n, "inv_p", dtype, 1.0 / p as f64);
    c.last(imp, Op::Binary(BinaryOp::Pow), &[sum, inv])
}

/// OneHot: `indices` (negative ones counted from `depth`) compared with
/// `0..depth` laid along `axis`; `values[1]` where equal, `values[0]`
/// elsewhere, so an index outside `[−depth, depth − 1]` gives an all-off row.
/// `depth` must be known at import (it sets the output's shape).
fn one_hot(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let iname = data_input(n)?;
    let rank = imp.shape_of(iname).len();
    let depth = const_input(imp, n, 1, "depth")?.ok_or_else(|| n.err("the depth input is missing"))?;
    let depth = match depth.to_f64().as_slice() {
        [d] if *d >= 1.0 && d.fract() == 0.0 => *d as usize,
        other => return Err(n.err(format!("depth must be one positive integer, found {other:?}"))),
    };
    super::tensor::check_elements(
        || format!("node `{}` (OneHot)", n.name),
        &[imp.shape_of(iname).iter().product::<usize>(), depth],
        n.max_elements,
    )?;
    let axis = norm_axis(n, n.attrs.int("axis", &n.name)?.unwrap_or(-1), rank + 1)?;
    let vname = n.inputs.get(2).copied().flatten().ok_or_else(|| n.err("the values input is missing"))?;
    if imp.shape_of(vname).iter().product::<usize>() != 2 {
        return Err(n.err(format!("values has shape {}; expected [off, on]", Shape(imp.shape_of(vname)))));
    }
    let idx_dtype = imp.dtype_of(iname).unwrap_or(DType::I64);
    let c = Chain { n };
    let mut idx = imp.tensor(iname)?;
    if idx_dtype != DType::I64 {
        idx = c.step(imp, "indices_i64", Op::Cast { to: DType::I64 }, &[idx])?;
    }
    let zero = scalar(imp, n, "zero", DType::I64, 0.0);
    let d = scalar(imp, n, "depth", DType::I64, depth as f64);
    let negative = c.step(imp, "negative", Op::Binary(BinaryOp::Less), &[idx, zero])?;
    let wrapped = c.step(imp, "wrapped", Op::Binary(BinaryOp::Add), &[idx, d])?;
    let idx = c.step(imp, "index", Op::Where, &[negative, wrapped, idx])?;
    let idx = c.step(imp, "index_axis", Op::Unsqueeze { axes: vec![axis as i64] }, &[idx])?;
    let mut shape = vec![1; rank + 1];
    shape[axis] = depth;
    let positions = Tensor::i64(shape, (0..depth as i64).collect());
    let positions = imp.add_constant(format!("{}/positions", n.name), positions);
    let hit = c.step(imp, "hit", Op::Binary(BinaryOp::Equal), &[idx, positions])?;
    let values = imp.tensor(vname)?;
    let flat = c.step(imp, "values_flat", Op::Reshape { shape: vec![2], allow_zero: false }, &[values])?;
    let i0 = imp.add_constant(format!("{}/off_index", n.name), Tensor::i64(Shape::scalar(), vec![0]));
    let i1 = imp.add_constant(format!("{}/on_index", n.name), Tensor::i64(Shape::scalar(), vec![1]));
    let off = c.step(imp, "off", Op::Gather { axis: 0 }, &[flat, i0])?;
    let on = c.step(imp, "on", Op::Gather { axis: 0 }, &[flat, i1])?;
    c.last(imp, Op::Where, &[hit, on, off])
}

/// SwiGLU (opset 28): `a · sigmoid(alpha · a) · b`, `a` and `b` of one shape.
fn swiglu(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let aname = data_input(n)?;
    let bname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("input B is missing"))?;
    let (ad, bd) = (imp.shape_of(aname), imp.shape_of(bname));
    if ad != bd {
        return Err(n.err(format!("A is {} and B is {}; SwiGLU needs one shape", Shape(ad), Shape(bd))));
    }
    let dtype = imp.dtype_of(aname).unwrap_or(DType::F32);
    let alpha = n.attrs.float("alpha", &n.name)?.unwrap_or(1.0);
    let (a, b) = (imp.tensor(aname)?, imp.tensor(bname)?);
    let c = Chain { n };
    let gate_in = if alpha == 1.0 {
        a
    } else {
        let al = scalar(imp, n, "alpha", dtype, alpha as f64);
        c.step(imp, "alpha_a", Op::Binary(BinaryOp::Mul), &[a, al])?
    };
    let sig = c.step(imp, "sigmoid", Op::Unary(UnaryOp::Sigmoid), &[gate_in])?;
    let gate = c.step(imp, "swish", Op::Binary(BinaryOp::Mul), &[a, sig])?;
    c.last(imp, Op::Binary(BinaryOp::Mul), &[gate, b])
}

/// Round, halves to even: `f = floor(x)`, then `f + 1` above the half,
/// `f` below it, and at exactly a half whichever of the two is even.
/// Integral inputs (every float of magnitude ≥ 2^23) have no fraction and
/// stay as they are; NaN and ±∞ pass through.
fn round_half_even(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    if !dtype.is_float() {
        return Err(n.err(format!("input is {dtype}; Round takes a float tensor")));
    }
    let x = imp.tensor(xname)?;
    let c = Chain { n };
    let (finite, rounded) = round_even_steps(imp, n, &c, "round", x, dtype)?;
    // ±∞ − ±∞ is NaN, which compares false both ways; keep x where its
    // fraction is not a number (x itself is ±∞ or NaN).
    c.last(imp, Op::Where, &[finite, rounded, x])
}

/// Rounds float tensor `x` half to even, in steps named `{prefix}_…`:
/// `(finite, rounded)`, where
/// `rounded` is right wherever `finite` (x's fraction is a number) holds,
/// and x itself (±∞, NaN) is the answer elsewhere.
pub(super) fn round_even_steps(
    imp: &mut Importer,
    n: &NodeView<'_>,
    c: &Chain,
    prefix: &str,
    x: TensorId,
    dtype: DType,
) -> Result<(TensorId, TensorId), ImportError> {
    let name = |step: &str| format!("{prefix}_{step}");
    let half = scalar(imp, n, &name("half"), dtype, 0.5);
    let one = scalar(imp, n, &name("one"), dtype, 1.0);
    let f = c.step(imp, &name("floor"), Op::Unary(UnaryOp::Floor), &[x])?;
    let frac = c.step(imp, &name("fraction"), Op::Binary(BinaryOp::Sub), &[x, f])?;
    let up = c.step(imp, &name("floor_plus_one"), Op::Binary(BinaryOp::Add), &[f, one])?;
    // f is even when floor(f / 2) · 2 = f.
    let hf = c.step(imp, &name("half_floor"), Op::Binary(BinaryOp::Mul), &[f, half])?;
    let hff = c.step(imp, &name("half_floor_floor"), Op::Unary(UnaryOp::Floor), &[hf])?;
    let two = scalar(imp, n, &name("two"), dtype, 2.0);
    let back = c.step(imp, &name("even_part"), Op::Binary(BinaryOp::Mul), &[hff, two])?;
    let even = c.step(imp, &name("floor_is_even"), Op::Binary(BinaryOp::Equal), &[back, f])?;
    let tie = c.step(imp, &name("tie"), Op::Where, &[even, f, up])?;
    let below = c.step(imp, &name("below_half"), Op::Binary(BinaryOp::Less), &[frac, half])?;
    let above = c.step(imp, &name("above_half"), Op::Binary(BinaryOp::Greater), &[frac, half])?;
    let not_below = c.step(imp, &name("not_below"), Op::Where, &[above, up, tie])?;
    let rounded = c.step(imp, &name("round_even"), Op::Where, &[below, f, not_below])?;
    let finite = c.step(imp, &name("fraction_is_number"), Op::Binary(BinaryOp::Equal), &[frac, frac])?;
    Ok((finite, rounded))
}

/// Pad in `reflect`, `edge` or `wrap` mode, axis by axis as numpy's `pad`
/// does (later axes pad the already padded tensor, which fills the
/// corners): `Concat(before, x, after)` with the borders sliced from `x`.
/// `reflect` mirrors without repeating the edge (`Slice` with step −1),
/// `wrap` takes the opposite end, `edge` repeats the edge (a one-wide slice
/// broadcast by a multiply with ones).
fn border_pad(imp: &mut Importer, n: &NodeView<'_>, pads: &[usize], mode: &str) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let mut dims = imp.shape_of(xname);
    let rank = dims.len();
    if pads.len() != 2 * rank {
        return Err(n.err(format!("{} pads for a rank-{rank} input (expected {})", pads.len(), 2 * rank)));
    }
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let c = Chain { n };
    let mut x = imp.tensor(xname)?;
    let padded: Vec<usize> = (0..rank).filter(|&k| pads[k] + pads[rank + k] > 0).collect();
    if padded.is_empty() {
        return c.last(imp, Op::Identity, &[x]);
    }
    for (step, &k) in padded.iter().enumerate() {
        let (lo, hi, d) = (pads[k], pads[rank + k], dims[k]);
        let limit = match mode {
            "reflect" => d.saturating_sub(1),
            _ => d,
        };
        if d == 0 || lo > limit || hi > limit {
            return Err(n.err(format!(
                "{mode} padding of {lo} and {hi} on axis {k} of size {d}: at most {limit} per side is supported"
            )));
        }
        let slice = |start: i64, end: i64, step: i64| Op::Slice {
            starts: vec![start],
            ends: vec![end],
            axes: vec![k as i64],
            steps: vec![step],
        };
        let d = d as i64;
        let (before, after) = match mode {
            // Indices lo, lo − 1, …, 1 and d − 2, d − 3, …, d − 1 − hi.
            "reflect" => (
                slice(lo as i64, 0, -1),
                slice(d - 2, if d - 2 - hi as i64 >= 0 { d - 2 - hi as i64 } else { i64::MIN }, -1),
            ),
            "wrap" => (slice(d - lo as i64, d, 1), slice(0, hi as i64, 1)),
            _ => (slice(0, 1, 1), slice(d - 1, d, 1)),
        };
        let mut parts = Vec::new();
        for (side, op, width) in [("before", before, lo), ("after", after, hi)] {
            if width == 0 {
                continue;
            }
            let mut part = c.step(imp, &format!("{side}{k}"), op, &[x])?;
            if mode == "edge" {
                let mut ones_dims = vec![1; rank];
                ones_dims[k] = width;
                let ones = imp.add_constant(
                    format!("{}/ones_{side}{k}", n.name),
                    Tensor::from_f64(dtype, Shape(ones_dims.clone()), &vec![1.0; width]),
                );
                part = c.step(imp, &format!("{side}{k}_repeated"), Op::Binary(BinaryOp::Mul), &[part, ones])?;
            }
            parts.push((side, part));
        }
        let mut order = Vec::new();
        if let Some(&(_, p)) = parts.iter().find(|(s, _)| *s == "before") {
            order.push(p);
        }
        order.push(x);
        if let Some(&(_, p)) = parts.iter().find(|(s, _)| *s == "after") {
            order.push(p);
        }
        let concat = Op::Concat { axis: k as i64 };
        if step + 1 == padded.len() {
            return c.last(imp, concat, &order);
        }
        x = c.step(imp, &format!("padded{k}"), concat, &order)?;
        dims[k] += lo + hi;
    }
    Ok(())
}

/// CenterCropPad: a centred Slice where the target is smaller (the window
/// starts rounded down) and a centred zero Pad where it is larger (the odd
/// pixel after), over `axes` (all by default). The target shape must be
/// known at import.
fn center_crop_pad(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let rank = dims.len();
    let target = const_input(imp, n, 1, "shape")?.ok_or_else(|| n.err("the shape input is missing"))?;
    let target = to_usizes(n, "shape", &ints_of(n, &target)?)?;
    let axes: Vec<usize> = match n.attrs.ints("axes", &n.name)? {
        Some(axes) => axes.iter().map(|&a| norm_axis(n, a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if axes.len() != target.len() || (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
        return Err(n.err(format!("shape {target:?} does not give one size per axis of {axes:?}")));
    }
    let (mut starts, mut ends, mut slice_axes) = (Vec::new(), Vec::new(), Vec::new());
    let mut pads = vec![0usize; 2 * rank];
    for (&a, &t) in axes.iter().zip(&target) {
        let d = dims[a];
        if t < d {
            let start = (d - t) / 2;
            starts.push(start as i64);
            ends.push((start + t) as i64);
            slice_axes.push(a as i64);
        } else if t > d {
            pads[a] = (t - d) / 2;
            pads[rank + a] = t - d - pads[a];
        }
    }
    let c = Chain { n };
    let mut x = imp.tensor(xname)?;
    let padding = pads.iter().any(|&p| p > 0);
    if !slice_axes.is_empty() {
        let steps = vec![1; slice_axes.len()];
        let crop = Op::Slice { starts, ends, axes: slice_axes, steps };
        if !padding {
            return c.last(imp, crop, &[x]);
        }
        x = c.step(imp, "crop", crop, &[x])?;
    }
    if padding {
        return c.last(imp, Op::Pad { pads, value: 0.0 }, &[x]);
    }
    c.last(imp, Op::Identity, &[x])
}

/// RotaryEmbedding (opset 23) as ONNX's reference computes it: the input as
/// `[batch, seq, heads, head]` (a 4-D input transposed from `[batch,
/// heads, seq, head]`, a 3-D one split into `num_heads`), the first
/// `rotary_embedding_dim` of each head rotated pairwise — halves, or even
/// and odd elements when `interleaved` — by the cos/sin caches (gathered at
/// `position_ids` when given), the rest passed through.
fn rotary_embedding(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let xname = data_input(n)?;
    let dims = imp.shape_of(xname);
    let input = |i: usize, what: &str| {
        n.inputs.get(i).copied().flatten().ok_or_else(|| n.err(format!("the {what} input is missing")))
    };
    let (cos_name, sin_name) = (input(1, "cos_cache")?, input(2, "sin_cache")?);
    let interleaved = n.attrs.int("interleaved", &n.name)?.unwrap_or(0) != 0;
    let c = Chain { n };
    let x = imp.tensor(xname)?;
    let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<i64>>();
    // [batch, seq, heads, head]
    let (bshd, x) = match *dims.as_slice() {
        [b, h, s, d] => ([b, s, h, d], c.step(imp, "bshd", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[x])?),
        [b, s, hidden] => {
            let heads = n.attrs.int("num_heads", &n.name)?.unwrap_or(0);
            let heads = to_usize(n, "num_heads", heads)?;
            if heads == 0 || !hidden.is_multiple_of(heads) {
                return Err(n.err(format!(
                    "a 3-D input of hidden size {hidden} needs num_heads dividing it (num_heads = {heads})"
                )));
            }
            let shape = [b, s, heads, hidden / heads];
            (shape, c.step(imp, "bshd", Op::Reshape { shape: i64s(&shape), allow_zero: false }, &[x])?)
        }
        _ => return Err(n.err(format!("input has shape {}; expected 3-D or 4-D", Shape(dims.clone())))),
    };
    let head = bshd[3];
    let rd = match n.attrs.int("rotary_embedding_dim", &n.name)?.unwrap_or(0) {
        0 => head,
        r => to_usize(n, "rotary_embedding_dim", r)?,
    };
    if rd > head || !rd.is_multiple_of(2) {
        return Err(n.err(format!("rotary_embedding_dim {rd} must be even and at most the head size {head}")));
    }
    let half = rd / 2;
    let cache = |imp: &mut Importer, name: &str, what: &str| -> Result<TensorId, ImportError> {
        let t = imp.tensor(name)?;
        let t = match n.inputs.get(3).copied().flatten() {
            Some(pos) => {
                let pos = imp.tensor(pos)?;
                c.step(imp, &format!("{what}_at_positions"), Op::Gather { axis: 0 }, &[t, pos])?
            }
            None => t,
        };
        c.step(imp, &format!("{what}_per_head"), Op::Unsqueeze { axes: vec![2] }, &[t])
    };
    let cos = cache(imp, cos_name, "cos")?;
    let sin = cache(imp, sin_name, "sin")?;
    for (t, what) in [(cos, "cos_cache"), (sin, "sin_cache")] {
        let d = imp.graph.info(t).shape.dims().to_vec();
        if d.len() != 4 || d[3] != half || d[0] != bshd[0] || d[1] != bshd[1] {
            return Err(n.err(format!(
                "{what} gives {} per head; expected [{}, {}, 1, {half}] (rotary_embedding_dim / 2 = {half})",
                Shape(d),
                bshd[0],
                bshd[1]
            )));
        }
    }
    let last = |start: usize, end: usize, step: i64| Op::Slice {
        starts: vec![start as i64],
        ends: vec![end as i64],
        axes: vec![3],
        steps: vec![step],
    };
    let rot = if rd < head { c.step(imp, "rotated_part", last(0, rd, 1), &[x])? } else { x };
    let (x1, x2) = if interleaved {
        (c.step(imp, "even", last(0, rd, 2), &[rot])?, c.step(imp, "odd", last(1, rd, 2), &[rot])?)
    } else {
        (c.step(imp, "first_half", last(0, half, 1), &[rot])?, c.step(imp, "second_half", last(half, rd, 1), &[rot])?)
    };
    let mul = Op::Binary(BinaryOp::Mul);
    let c1 = c.step(imp, "cos_x1", mul.clone(), &[cos, x1])?;
    let s2 = c.step(imp, "sin_x2", mul.clone(), &[sin, x2])?;
    let real = c.step(imp, "real", Op::Binary(BinaryOp::Sub), &[c1, s2])?;
    let s1 = c.step(imp, "sin_x1", mul.clone(), &[sin, x1])?;
    let c2 = c.step(imp, "cos_x2", mul, &[cos, x2])?;
    let imag = c.step(imp, "imag", Op::Binary(BinaryOp::Add), &[s1, c2])?;
    let rotated = if interleaved {
        let r = c.step(imp, "real_pairs", Op::Unsqueeze { axes: vec![4] }, &[real])?;
        let i = c.step(imp, "imag_pairs", Op::Unsqueeze { axes: vec![4] }, &[imag])?;
        let pairs = c.step(imp, "pairs", Op::Concat { axis: 4 }, &[r, i])?;
        let shape = i64s(&[bshd[0], bshd[1], bshd[2], rd]);
        c.step(imp, "interleaved", Op::Reshape { shape, allow_zero: false }, &[pairs])?
    } else {
        c.step(imp, "halves", Op::Concat { axis: 3 }, &[real, imag])?
    };
    let out = if rd < head {
        let pass = c.step(imp, "passed_part", last(rd, head, 1), &[x])?;
        c.step(imp, "joined", Op::Concat { axis: 3 }, &[rotated, pass])?
    } else {
        rotated
    };
    if dims.len() == 4 {
        c.last(imp, Op::Transpose { perm: vec![0, 2, 1, 3] }, &[out])
    } else {
        c.last(imp, Op::Reshape { shape: i64s(&dims), allow_zero: false }, &[out])
    }
}
