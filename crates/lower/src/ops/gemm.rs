//! Lowering of `Gemm` and `MatMul` onto the shared tiled GEMM ([`crate::tile`]).
//!
//! - `Gemm`: `Y = alpha · op(A) · op(B) + beta · C` with 2-D `A`, `B`. The
//!   transposes only change the operands' index closures (`A[m·K + k]` or
//!   `A[k·M + m]`), so no transposed copy is ever made. `C` broadcasts to
//!   `[M, N]` and is added in the store, together with the fused epilogue
//!   (a bias add plus Relu is one kernel).
//! - `MatMul`: numpy semantics. A 1-D `A` is a `[1, K]` row and a 1-D `B` a
//!   `[K, 1]` column (the promoted dimension is absent from the output, which
//!   leaves the row-major linear index unchanged). Batch dimensions
//!   broadcast: batch index `z` (`block_id.z`) is unravelled over the
//!   broadcast batch shape once per thread and mapped to `A`/`B` offsets with
//!   stride 0 along broadcast axes.
//!
//! `Gemm` lowers `f32` operands only (other types are refused by name);
//! `MatMul` `f32`, `f64` and integers, accumulating as
//! [`matmul_accumulator`] says.

use weft_graph::{DType, Node, Op, TensorId};
use weft_kir::{Access, KernelBuilder, Type};

use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, Epilogue};
use crate::error::LowerError;
use crate::index::{broadcast_strides, check_numel, ravel, unravel};
use crate::tile::{emit_tiled_gemm, step_nodes, unsupported, Gather, GemmShape, Operand, TileConfig};

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    match node.op {
        Op::Gemm { alpha, beta, trans_a, trans_b } => lower_gemm(ctx, node, epi, alpha, beta, trans_a, trans_b),
        Op::MatMul => lower_matmul(ctx, node, epi),
        _ => Err(LowerError::Internal { node: node.name.clone(), message: "not a Gemm or MatMul".into() }),
    }
}

fn input(node: &Node, i: usize) -> Result<TensorId, LowerError> {
    node.inputs.get(i).copied().flatten().ok_or_else(|| unsupported(node, format!("input {i} is missing")))
}

fn require_f32(ctx: &LowerCtx, node: &Node, ts: &[TensorId]) -> Result<(), LowerError> {
    for &t in ts {
        let info = ctx.graph.info(t);
        if info.dtype != DType::F32 {
            return Err(unsupported(node, format!("tensor `{}` is {}; only f32 is lowered", info.name, info.dtype)));
        }
    }
    Ok(())
}

fn lower_gemm(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> Result<(), LowerError> {
    let ta = input(node, 0)?;
    let tb = input(node, 1)?;
    let tc = node.inputs.get(2).copied().flatten().filter(|_| beta != 0.0);
    let out = *node.outputs.first().ok_or_else(|| unsupported(node, "no output"))?;
    require_f32(ctx, node, &[ta, tb, out])?;
    let ad = ctx.graph.info(ta).shape.dims().to_vec();
    let bd = ctx.graph.info(tb).shape.dims().to_vec();
    let ([a0, a1], [b0, b1]) = (ad.as_slice(), bd.as_slice()) else {
        return Err(unsupported(node, format!("Gemm needs 2-D A and B, got {ad:?} and {bd:?}")));
    };
    let (m, k) = if trans_a { (*a1, *a0) } else { (*a0, *a1) };
    let (k2, n) = if trans_b { (*b1, *b0) } else { (*b0, *b1) };
    if k != k2 {
        return Err(unsupported(node, format!("inner dimensions differ: {k} and {k2}")));
    }
    check_numel(&node.name, "Gemm", m * k)?;
    check_numel(&node.name, "Gemm", k * n)?;
    check_numel(&node.name, "Gemm", m * n)?;
    let c_strides = match tc {
        Some(tc) => {
            require_f32(ctx, node, &[tc])?;
            let cd = ctx.graph.info(tc).shape.dims().to_vec();
            let s = broadcast_strides(&cd, &[m, n])
                .ok_or_else(|| unsupported(node, format!("C of shape {cd:?} does not broadcast to [{m}, {n}]")))?;
            Some((tc, s, cd.iter().product::<usize>()))
        }
        None => None,
    };

    let shape = GemmShape { m: m as u32, n: n as u32, k: k as u32, batch: 1 };
    let cfg = TileConfig::choose(shape.m, shape.n, shape.k);
    shape.check(&cfg, &node.name, "Gemm")?;
    let name = ctx.kernel_name(&format!("gemm_{m}x{n}x{k}"));
    let mut b = KernelBuilder::new(name, cfg.launch(&shape));
    let pa = b.buffer("a", Type::F32, (m * k) as u64, Access::Read);
    let pb = b.buffer("b", Type::F32, (k * n) as u64, Access::Read);
    let mut args = vec![ctx.buffer_of(ta), ctx.buffer_of(tb)];
    let pc = match &c_strides {
        Some((tc, _, len)) => {
            args.push(ctx.buffer_of(*tc));
            Some(b.buffer("c", Type::F32, (*len).max(1) as u64, Access::Read))
        }
        None => None,
    };
    let out_info = ctx.graph.info(epi.output).clone();
    let out_ty = kir_type(out_info.dtype);
    let py = b.buffer("y", out_ty, out_info.shape.numel() as u64, Access::Write);
    args.push(ctx.buffer_of(epi.output));
    let params = epi.declare(ctx, &mut b)?;
    args.extend(params.buffers.iter().copied());

    let c_k = b.const_i32(k as i32);
    let c_m = b.const_i32(m as i32);
    let c_n = b.const_i32(n as i32);
    let a_op = if trans_a {
        // A is [K, M]: element (m, k) at k·M + m.
        Operand {
            buf: pa,
            outer: Box::new(|_, row, _| vec![row]),
            element: Box::new(move |b, o, kv| {
                let t = b.mul(kv, c_m);
                Gather { guard: None, index: b.add(t, o[0]) }
            }),
        }
    } else {
        Operand {
            buf: pa,
            outer: Box::new(move |b, row, _| vec![b.mul(row, c_k)]),
            element: Box::new(|b, o, kv| Gather { guard: None, index: b.add(o[0], kv) }),
        }
    };
    let b_op = if trans_b {
        // B is [N, K]: element (k, n) at n·K + k.
        Operand {
            buf: pb,
            outer: Box::new(move |b, col, _| vec![b.mul(col, c_k)]),
            element: Box::new(|b, o, kv| Gather { guard: None, index: b.add(o[0], kv) }),
        }
    } else {
        Operand {
            buf: pb,
            outer: Box::new(|_, col, _| vec![col]),
            element: Box::new(move |b, o, kv| {
                let t = b.mul(kv, c_n);
                Gather { guard: None, index: b.add(t, o[0]) }
            }),
        }
    };
    let alpha_v = (alpha != 1.0).then(|| b.const_f32(alpha));
    let beta_v = (beta != 1.0).then(|| b.const_f32(beta));
    let graph_ctx: &LowerCtx = ctx;
    emit_tiled_gemm(&mut b, shape, cfg, Type::F32, &a_op, &b_op, |b, e| {
        let mut v = e.acc;
        if let Some(al) = alpha_v {
            v = b.mul(v, al);
        }
        if let (Some(pc), Some((_, strides, _))) = (pc, &c_strides) {
            let ci = ravel(b, &[e.m, e.n], strides);
            let cv = b.load(pc, ci);
            v = match beta_v {
                Some(be) => b.fma(be, cv, v),
                None => b.add(v, cv),
            };
        }
        let rn = b.mul(e.m, c_n);
        let oi = b.add(rn, e.n);
        let v = epi.apply(graph_ctx, b, &params, v, oi)?;
        let v = convert(b, v, out_ty);
        b.store(py, oi, v);
        Ok(())
    })?;
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}

/// The type MatMul accumulates `elem` products in: `f32` for `f32`, `f64`
/// for `f64`, and for integers a wrapping integer at least 32 bits wide
/// (the output keeps the low bits, which wrapping arithmetic gets right at
/// any width, as numpy's integer `matmul` does). 16-bit floats are refused:
/// ONNX's references for them round every intermediate to 16 bits, which
/// an `f32` accumulation does not reproduce to 1e-4.
fn matmul_accumulator(ctx: &LowerCtx, node: &Node, t: TensorId) -> Result<Type, LowerError> {
    let info = ctx.graph.info(t);
    Ok(match info.dtype {
        DType::F32 => Type::F32,
        DType::F64 => Type::F64,
        DType::I64 | DType::U64 => Type::I64,
        DType::I32 | DType::U32 | DType::I16 | DType::U16 | DType::I8 | DType::U8 => Type::I32,
        other => {
            return Err(unsupported(
                node,
                format!("tensor `{}` is {other}; MatMul lowers f32, f64 and integer tensors", info.name),
            ))
        }
    })
}

fn lower_matmul(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    let ta = input(node, 0)?;
    let tb = input(node, 1)?;
    let acc_ty = matmul_accumulator(ctx, node, ta)?;
    let elem = kir_type(ctx.graph.info(ta).dtype);
    let mut ad = ctx.graph.info(ta).shape.dims().to_vec();
    let mut bd = ctx.graph.info(tb).shape.dims().to_vec();
    if ad.is_empty() || bd.is_empty() {
        return Err(unsupported(node, "MatMul of a scalar"));
    }
    if ad.len() == 1 {
        ad.insert(0, 1);
    }
    if bd.len() == 1 {
        bd.push(1);
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    if k != k2 {
        return Err(unsupported(node, format!("inner dimensions differ: {k} and {k2}")));
    }
    let a_batch = &ad[..ad.len() - 2];
    let b_batch = &bd[..bd.len() - 2];
    let batch = weft_graph::infer::broadcast_shapes(a_batch, b_batch)
        .ok_or_else(|| unsupported(node, format!("batch dims {a_batch:?} and {b_batch:?} do not broadcast")))?;
    let z_count: usize = batch.iter().product();
    let a_len: usize = ad.iter().product();
    let b_len: usize = bd.iter().product();
    check_numel(&node.name, "MatMul", a_len)?;
    check_numel(&node.name, "MatMul", b_len)?;
    check_numel(&node.name, "MatMul", z_count * m * n)?;
    // Per batch axis, the element stride of A's / B's matrix (0 where broadcast).
    let scale = |s: Vec<usize>, per: usize| s.into_iter().map(|x| x * per).collect::<Vec<_>>();
    let a_bs = broadcast_strides(a_batch, &batch).map(|s| scale(s, m * k));
    let b_bs = broadcast_strides(b_batch, &batch).map(|s| scale(s, k * n));
    let (Some(a_bs), Some(b_bs)) = (a_bs, b_bs) else {
        return Err(unsupported(node, "batch dims do not broadcast"));
    };

    let shape = GemmShape { m: m as u32, n: n as u32, k: k as u32, batch: z_count as u32 };
    let cfg = TileConfig::choose(shape.m, shape.n, shape.k);
    shape.check(&cfg, &node.name, "MatMul")?;
    let name = ctx.kernel_name(&format!("matmul_{m}x{n}x{k}"));
    let mut b = KernelBuilder::new(name, cfg.launch(&shape));
    let pa = b.buffer("a", elem, a_len as u64, Access::Read);
    let pb = b.buffer("b", elem, b_len as u64, Access::Read);
    let mut args = vec![ctx.buffer_of(ta), ctx.buffer_of(tb)];
    let out_info = ctx.graph.info(epi.output).clone();
    let out_ty = kir_type(out_info.dtype);
    let py = b.buffer("y", out_ty, out_info.shape.numel() as u64, Access::Write);
    args.push(ctx.buffer_of(epi.output));
    let params = epi.declare(ctx, &mut b)?;
    args.extend(params.buffers.iter().copied());

    let c_k = b.const_i32(k as i32);
    let c_n = b.const_i32(n as i32);
    let c_mn = b.const_i32((m * n) as i32);
    let batch_a = batch.clone();
    let batch_b = batch.clone();
    let a_op = Operand {
        buf: pa,
        outer: Box::new(move |b, row, z| {
            let coords = unravel(b, z, &batch_a);
            let off = ravel(b, &coords, &a_bs);
            let r = b.mul(row, c_k);
            vec![b.add(off, r)]
        }),
        element: Box::new(|b, o, kv| Gather { guard: None, index: b.add(o[0], kv) }),
    };
    let b_op = Operand {
        buf: pb,
        outer: Box::new(move |b, col, z| {
            let coords = unravel(b, z, &batch_b);
            let off = ravel(b, &coords, &b_bs);
            vec![b.add(off, col)]
        }),
        element: Box::new(move |b, o, kv| {
            let t = b.mul(kv, c_n);
            Gather { guard: None, index: b.add(t, o[0]) }
        }),
    };
    let graph_ctx: &LowerCtx = ctx;
    emit_tiled_gemm(&mut b, shape, cfg, acc_ty, &a_op, &b_op, |b, e| {
        let zo = b.mul(e.z, c_mn);
        let rn = b.mul(e.m, c_n);
        let oi = b.add(zo, rn);
        let oi = b.add(oi, e.n);
        // An integer sum wraps to the MatMul's own type before any
        // epilogue sees it; floats go on at the accumulator's precision.
        let acc = if acc_ty.is_float() { e.acc } else { convert(b, e.acc, elem) };
        let v = epi.apply(graph_ctx, b, &params, acc, oi)?;
        let v = convert(b, v, out_ty);
        b.store(py, oi, v);
        Ok(())
    })?;
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}
