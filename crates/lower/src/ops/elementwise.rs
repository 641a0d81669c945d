//! Lowering of the elementwise op family: Unary, Binary, Sum, Where, Cast,
//! BitCast and standalone BatchNormalization.
//!
//! Every op here is one *map* kernel: one thread per output element in a
//! grid-stride loop ([`crate::index::grid_stride_loop`]), each operand read at
//! its numpy-broadcast index of the output element, the op's scalar emitter
//! (shared with epilogues, so fused and unfused ops compute identical bits),
//! then the node's epilogue chain, then one store. The loop index is bounded
//! by the loop itself, so every load and the store are proven in bounds with
//! no extra guard.
//!
//! BatchNormalization with constant parameters is folded at compile time to
//! one per-channel scale and shift (`y = x · s + t`), stored as new weights;
//! with run-time parameters it reads all four per channel.

use weft_graph::{Node, Op, TensorId};
use weft_kir::{Access, HostBuffer, KernelBuilder, Type, Value};

use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, emit_binary, emit_unary, Epilogue};
use crate::error::LowerError;
use crate::index::{broadcast_index, check_numel, grid_stride_loop, linear_launch, MAX_BLOCKS};
use crate::program::BufferId;

/// One input of a map kernel: a buffer, its element type, and the shape it
/// broadcasts from (numpy rules) to the output shape.
#[derive(Clone, Debug)]
pub struct Operand {
    pub buffer: BufferId,
    pub elem: Type,
    pub dims: Vec<usize>,
}

impl Operand {
    /// The operand holding graph tensor `t`.
    pub fn of_tensor(ctx: &mut LowerCtx, t: TensorId) -> Operand {
        let info = ctx.graph.info(t);
        let (elem, dims) = (kir_type(info.dtype), info.shape.dims().to_vec());
        Operand { buffer: ctx.buffer_of(t), elem, dims }
    }
}

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    let inputs = present_inputs(node)?;
    match &node.op {
        Op::Unary(u) => {
            let u = *u;
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "unary", &ops, move |b, v| emit_unary(b, u, v[0]))
        }
        Op::Binary(op) => {
            let op = *op;
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "binary", &ops, move |b, v| emit_binary(b, op, v[0], v[1]))
        }
        Op::Sum => {
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "sum", &ops, |b, v| {
                let mut acc = v[0];
                for &x in &v[1..] {
                    acc = b.add(acc, x);
                }
                acc
            })
        }
        Op::Where => {
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "where", &ops, |b, v| {
                let y = b.kernel().value_type(v[1]);
                let other = convert(b, v[2], y);
                b.select(v[0], v[1], other)
            })
        }
        Op::Cast { to } => {
            let to = kir_type(*to);
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "cast", &ops, move |b, v| convert(b, v[0], to))
        }
        Op::BitCast { to } => {
            let to = kir_type(*to);
            let ops = operands(ctx, &inputs);
            map_kernel(ctx, node, epi, "bitcast", &ops, move |b, v| b.bitcast(to, v[0]))
        }
        Op::BatchNormalization { epsilon } => batch_norm(ctx, node, epi, &inputs, *epsilon),
        _ => Err(super::not_yet(node)),
    }
}

/// The node's inputs, refusing omitted ones (no op of this family has any).
fn present_inputs(node: &Node) -> Result<Vec<TensorId>, LowerError> {
    node.inputs
        .iter()
        .map(|t| {
            t.ok_or_else(|| LowerError::Unsupported {
                node: node.name.clone(),
                op: node.op.name().to_string(),
                reason: "an input is omitted; this op has no optional inputs".into(),
            })
        })
        .collect()
}

fn operands(ctx: &mut LowerCtx, inputs: &[TensorId]) -> Vec<Operand> {
    inputs.iter().map(|&t| Operand::of_tensor(ctx, t)).collect()
}

/// Emits one map kernel: `out[i] = epi(f(op_0[bcast(i)], …))` for every
/// element `i` of the node's first output, and marks `epi.output` computed.
pub fn map_kernel(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    base_name: &str,
    operands: &[Operand],
    f: impl FnOnce(&mut KernelBuilder, &[Value]) -> Value,
) -> Result<(), LowerError> {
    let out_info = ctx.graph.info(epi.output);
    let out_dims = out_info.shape.dims().to_vec();
    let out_ty = kir_type(out_info.dtype);
    let n = out_info.shape.numel();
    let op_name = node.op.name();
    check_numel(&node.name, op_name, n)?;
    for o in operands {
        check_numel(&node.name, op_name, o.dims.iter().product())?;
        if crate::index::broadcast_strides(&o.dims, &out_dims).is_none() {
            return Err(LowerError::Internal {
                node: node.name.clone(),
                message: format!("operand of shape {:?} does not broadcast to the output {:?}", o.dims, out_dims),
            });
        }
    }
    if n == 0 {
        // Nothing to compute: an empty tensor exists as soon as it is named.
        ctx.mark_available(epi.output);
        return Ok(());
    }
    let name = ctx.kernel_name(&base_name.to_ascii_lowercase());
    let mut b = KernelBuilder::new(name, linear_launch(n, MAX_BLOCKS));
    let params: Vec<_> = operands
        .iter()
        .enumerate()
        .map(|(k, o)| b.buffer(&format!("in{k}"), o.elem, o.dims.iter().product::<usize>() as u64, Access::Read))
        .collect();
    let out = b.buffer("out", out_ty, n as u64, Access::Write);
    let epi_params = epi.declare(ctx, &mut b)?;
    let mut result = Ok(());
    grid_stride_loop(&mut b, n, |b, i| {
        let mut vals = Vec::with_capacity(operands.len());
        for (o, &p) in operands.iter().zip(&params) {
            // Checked above: every operand broadcasts to the output.
            let idx = broadcast_index(b, i, &out_dims, &o.dims).unwrap_or(i);
            vals.push(b.load(p, idx));
        }
        let v = f(b, &vals);
        match epi.apply(ctx, b, &epi_params, v, i) {
            Ok(v) => {
                let v = convert(b, v, out_ty);
                b.store(out, i, v);
            }
            Err(e) => result = Err(e),
        }
    });
    result?;
    let mut args: Vec<BufferId> = operands.iter().map(|o| o.buffer).collect();
    args.push(ctx.buffer_of(epi.output));
    args.extend(epi_params.buffers);
    let mut nodes = vec![node.name.clone()];
    nodes.extend(epi.nodes.iter().cloned());
    ctx.push_step(b.finish(), args, nodes)?;
    ctx.mark_available(epi.output);
    Ok(())
}

/// BatchNormalization (inference form) over `[N, C, …]`: per channel
/// `(x − mean) / sqrt(var + ε) · scale + bias`.
fn batch_norm(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    inputs: &[TensorId],
    epsilon: f32,
) -> Result<(), LowerError> {
    let [x, scale, bias, mean, var] = inputs else {
        return Err(LowerError::Internal { node: node.name.clone(), message: "expected 5 inputs".into() });
    };
    let x_info = ctx.graph.info(*x);
    let rank = x_info.shape.rank();
    if rank < 2 {
        return Err(LowerError::Internal { node: node.name.clone(), message: "input rank < 2".into() });
    }
    let c = x_info.shape.dims()[1];
    let x_ty = kir_type(x_info.dtype);
    // Per-channel params broadcast as [C, 1, …] against [N, C, spatial…].
    let mut pdims = vec![c];
    pdims.resize(rank - 1, 1);
    let consts: Option<Vec<Vec<f64>>> =
        [scale, bias, mean, var].iter().map(|t| ctx.graph.constants.get(t).map(|c| c.to_f64())).collect();
    let xo = Operand::of_tensor(ctx, *x);
    match consts {
        Some(p) if p.iter().all(|v| v.len() == c) => {
            // Folded in f64 once, then rounded: s = scale / sqrt(var + ε), t = bias − mean · s.
            let s: Vec<f64> = (0..c).map(|k| p[0][k] / (p[3][k] + epsilon as f64).sqrt()).collect();
            let t: Vec<f64> = (0..c).map(|k| p[1][k] - p[2][k] * s[k]).collect();
            let sb = ctx.add_weight(&format!("{}_bn_scale", node.name), vec![c], HostBuffer::from_f64(x_ty, &s));
            let tb = ctx.add_weight(&format!("{}_bn_shift", node.name), vec![c], HostBuffer::from_f64(x_ty, &t));
            let ops = [
                xo,
                Operand { buffer: sb, elem: x_ty, dims: pdims.clone() },
                Operand { buffer: tb, elem: x_ty, dims: pdims },
            ];
            map_kernel(ctx, node, epi, "batchnorm", &ops, |b, v| b.fma(v[0], v[1], v[2]))
        }
        _ => {
            let mut ops = vec![xo];
            for t in [scale, bias, mean, var] {
                let mut o = Operand::of_tensor(ctx, *t);
                o.dims = pdims.clone();
                ops.push(o);
            }
            map_kernel(ctx, node, epi, "batchnorm", &ops, move |b, v| {
                let ty = b.kernel().value_type(v[0]);
                let conv = |b: &mut KernelBuilder, x: Value| convert(b, x, ty);
                let (sc, bi, me, va) = (conv(b, v[1]), conv(b, v[2]), conv(b, v[3]), conv(b, v[4]));
                let eps = b.const_float(ty, epsilon as f64);
                let ve = b.add(va, eps);
                let sd = b.sqrt(ve);
                let centred = b.sub(v[0], me);
                let normed = b.div(centred, sd);
                b.fma(normed, sc, bi)
            })
        }
    }
}
