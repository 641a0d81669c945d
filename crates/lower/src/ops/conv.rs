//! Lowering of `Conv` and `ConvTranspose` (1-D and 2-D spatial, NCHW).
//!
//! - **Conv** is an implicit GEMM on the shared tiling ([`crate::tile`]):
//!   per group `g` (`block_id.z`), `M = M/groups` output channels,
//!   `N = batch·OH·OW` output pixels, `K = C/groups·kh·kw`. `A` is the weight
//!   tensor as is (`[M, C/g·kh·kw]` row-major); `B(k, p)` gathers
//!   `X[n, g·C/g + c, oh·s − pad + kh·d, ow·s − pad + kw·d]`. The pixel's
//!   `(n, oh·s − pad, ow·s − pad)` is hoisted out of the `K` loop; per element
//!   only `k → (c, kh, kw)` and the padding guard run. Guards are emitted only
//!   where the geometry can leave the input (no lower guard without begin
//!   padding, no upper guard when the last window ends inside), and a 1×1
//!   convolution hoists the whole spatial part. The bias is added in the
//!   store, before the fused epilogue.
//! - **Depthwise** (`C/groups == 1`) would waste the GEMM tiling (`K` = kh·kw),
//!   so it is a direct kernel: one thread per output, the window unrolled,
//!   each tap guarded only if it can fall into the padding.
//! - **ConvTranspose** is a direct gather: output `(n, oc, oh, ow)` sums
//!   `X[n, ic, ih, iw] · W[ic, oc mod M/g, kh, kw]` over the taps with
//!   `oh + pad − kh·d = ih·s` (divisible, in range), the tap guards hoisted
//!   out of the loop over input channels.
//! - **BatchNormalization folding**: when `LowerOptions::fold_batchnorm` is
//!   set and [`foldable_batchnorm`] finds the conv's only consumer to be a BN
//!   with constant parameters (and the conv's weights and bias are constant),
//!   the BN is folded into new weights and bias at compile time
//!   (`W' = W·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`, computed in `f64`).
//!   The driver (`lower.rs`) uses the same predicate, marks the BN fused and
//!   starts the epilogue chain after it, so Conv→BN→Relu→Add is one kernel.
//!
//! 1-D convolutions run as 2-D ones with a unit height; 3-D is refused.
//! Conv lowers `f32` and `i32` (the integer convolution ConvInteger and
//! QLinearConv compose to, accumulated in wrapping `i32`); ConvTranspose
//! `f32`.

use petgraph::stable_graph::NodeIndex;
use weft_graph::infer::{conv_geometry, conv_transpose_geometry};
use weft_graph::{DType, Graph, Node, Op, TensorId, Window};
use weft_kir::{Access, HostBuffer, KernelBuilder, Type, Value};

use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, Epilogue};
use crate::error::LowerError;
use crate::index::{check_numel, grid_stride_loop, linear_launch, unravel, MAX_BLOCKS};
use crate::program::BufferId;
use crate::tile::{emit_tiled_gemm, step_nodes, unsupported, Gather, GemmShape, Operand, TileConfig};

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    match &node.op {
        Op::Conv { window, groups } => lower_conv(ctx, node, epi, window, *groups),
        Op::ConvTranspose { window, groups, output_padding } => {
            lower_conv_transpose(ctx, node, epi, window, *groups, output_padding)
        }
        _ => Err(LowerError::Internal { node: node.name.clone(), message: "not a convolution".into() }),
    }
}

/// The BatchNormalization node to fold into `conv`, if the fold is legal:
/// `conv` is a `Conv` with constant weights (and bias) whose output is not a
/// graph output and has exactly one consumer, an `f32` BatchNormalization
/// with one output and constant scale, bias, mean and variance.
pub fn foldable_batchnorm(graph: &Graph, conv: &Node) -> Option<NodeIndex> {
    if !matches!(conv.op, Op::Conv { .. }) || conv.outputs.len() != 1 {
        return None;
    }
    let out = conv.outputs[0];
    if graph.outputs.contains(&out) || graph.info(out).dtype != DType::F32 {
        return None;
    }
    let w = conv.inputs.get(1).copied().flatten()?;
    graph.constants.get(&w)?;
    if let Some(bias) = conv.inputs.get(2).copied().flatten() {
        graph.constants.get(&bias)?;
    }
    let mut consumers =
        graph.nodes.node_indices().filter(|&n| graph.nodes[n].inputs.iter().flatten().any(|&t| t == out));
    let bn = consumers.next()?;
    if consumers.next().is_some() {
        return None;
    }
    let bn_node = &graph.nodes[bn];
    if !matches!(bn_node.op, Op::BatchNormalization { .. }) || bn_node.outputs.len() != 1 || bn_node.inputs.len() != 5 {
        return None;
    }
    if bn_node.inputs[0] != Some(out) {
        return None;
    }
    for t in &bn_node.inputs[1..] {
        let t = (*t)?;
        if t == out || !graph.constants.contains_key(&t) {
            return None;
        }
    }
    Some(bn)
}

/// Spatial geometry normalised to 2-D (a 1-D op has height 1).
#[derive(Clone, Debug)]
struct Geom2 {
    /// Input height and width.
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
}

impl Geom2 {
    fn from(
        node: &Node,
        input: &[usize],
        g: &weft_graph::infer::WindowGeometry,
        output: &[usize],
    ) -> Result<Geom2, LowerError> {
        match input.len() {
            1 => Ok(Geom2 {
                h: 1,
                w: input[0],
                oh: 1,
                ow: output[0],
                kh: 1,
                kw: g.kernel[0],
                sh: 1,
                sw: g.strides[0],
                dh: 1,
                dw: g.dilations[0],
                ph: 0,
                pw: g.pads_begin[0],
            }),
            2 => Ok(Geom2 {
                h: input[0],
                w: input[1],
                oh: output[0],
                ow: output[1],
                kh: g.kernel[0],
                kw: g.kernel[1],
                sh: g.strides[0],
                sw: g.strides[1],
                dh: g.dilations[0],
                dw: g.dilations[1],
                ph: g.pads_begin[0],
                pw: g.pads_begin[1],
            }),
            r => Err(unsupported(node, format!("{r}-D spatial convolution/pooling is not lowered (1-D and 2-D are)"))),
        }
    }

    /// Whether tap `t` of a window along one axis can fall before the input
    /// (`lower`) or past it (`upper`) for some output position.
    fn tap_guards(out: usize, s: usize, d: usize, pad: usize, input: usize, t: usize) -> (bool, bool) {
        let lower = t * d < pad;
        let upper = (out - 1) * s + t * d > input - 1 + pad;
        (lower, upper)
    }

    /// Whether any tap along an axis needs the guard.
    fn axis_guards(out: usize, s: usize, d: usize, pad: usize, input: usize, k: usize) -> (bool, bool) {
        (0..k).fold((false, false), |(l, u), t| {
            let (tl, tu) = Geom2::tap_guards(out, s, d, pad, input, t);
            (l || tl, u || tu)
        })
    }
}

fn input(node: &Node, i: usize) -> Result<TensorId, LowerError> {
    node.inputs.get(i).copied().flatten().ok_or_else(|| unsupported(node, format!("input {i} is missing")))
}

fn f32_data(ctx: &LowerCtx, t: TensorId) -> Option<Vec<f64>> {
    ctx.graph.constants.get(&t).map(|c| c.to_f64())
}

/// Weight and bias buffers of a conv, BN-folded when the driver folded it,
/// and the element type of input, weight, bias and accumulator (`f32`, or
/// `i32` for the integer convolutions quantized models compose to, which
/// wrap as integer arithmetic does).
struct ConvParams {
    elem: Type,
    weight: BufferId,
    bias: Option<BufferId>,
    /// The folded BN node's name.
    folded: Vec<String>,
}

fn conv_params(ctx: &mut LowerCtx, node: &Node, m: usize, elem: Type) -> Result<ConvParams, LowerError> {
    let tw = input(node, 1)?;
    let tbias = node.inputs.get(2).copied().flatten();
    if ctx.options.fold_batchnorm {
        if let Some(bn) = foldable_batchnorm(ctx.graph, node) {
            let bn_node = &ctx.graph.nodes[bn];
            let Op::BatchNormalization { epsilon } = bn_node.op else {
                return Err(LowerError::Internal {
                    node: node.name.clone(),
                    message: "fold target is not a BN".into(),
                });
            };
            let get = |i: usize| -> Option<Vec<f64>> { f32_data(ctx, bn_node.inputs[i]?) };
            let (Some(gamma), Some(beta), Some(mean), Some(var), Some(w)) =
                (get(1), get(2), get(3), get(4), f32_data(ctx, tw))
            else {
                return Err(LowerError::Internal {
                    node: node.name.clone(),
                    message: "BN fold lost its constants".into(),
                });
            };
            if [&gamma, &beta, &mean, &var].iter().any(|v| v.len() != m) || w.len() % m != 0 {
                return Err(unsupported(node, "BatchNormalization parameters do not match the output channels"));
            }
            let bias = match tbias {
                Some(t) => {
                    f32_data(ctx, t).filter(|v| v.len() == m).ok_or_else(|| unsupported(node, "bias is not [M]"))?
                }
                None => vec![0.0; m],
            };
            let per = w.len() / m;
            let scale: Vec<f64> = (0..m).map(|c| gamma[c] / (var[c] + epsilon as f64).sqrt()).collect();
            let w2: Vec<f32> = w.iter().enumerate().map(|(i, &x)| (x * scale[i / per]) as f32).collect();
            let b2: Vec<f32> = (0..m).map(|c| ((bias[c] - mean[c]) * scale[c] + beta[c]) as f32).collect();
            let w_shape = ctx.graph.info(tw).shape.dims().to_vec();
            let wname = format!("{}.folded_weight", node.name);
            let bname = format!("{}.folded_bias", node.name);
            let weight = ctx.add_weight(&wname, w_shape, HostBuffer::from_f32(&w2));
            let bias = ctx.add_weight(&bname, vec![m], HostBuffer::from_f32(&b2));
            return Ok(ConvParams { elem, weight, bias: Some(bias), folded: vec![bn_node.name.clone()] });
        }
    }
    Ok(ConvParams { elem, weight: ctx.buffer_of(tw), bias: tbias.map(|t| ctx.buffer_of(t)), folded: Vec::new() })
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

/// The one element type of `ts` if it is `f32` or `i32` (the types Conv
/// lowers).
fn conv_elem(ctx: &LowerCtx, node: &Node, ts: &[TensorId]) -> Result<Type, LowerError> {
    let first = ts.first().map_or(DType::F32, |&t| ctx.graph.info(t).dtype);
    for &t in ts {
        let info = ctx.graph.info(t);
        if info.dtype != first || !matches!(info.dtype, DType::F32 | DType::I32) {
            return Err(unsupported(
                node,
                format!("tensor `{}` is {}; Conv lowers f32 or i32 tensors of one type", info.name, info.dtype),
            ));
        }
    }
    Ok(kir_type(first))
}

fn lower_conv(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    window: &Window,
    groups: usize,
) -> Result<(), LowerError> {
    let tx = input(node, 0)?;
    let tw = input(node, 1)?;
    let out = *node.outputs.first().ok_or_else(|| unsupported(node, "no output"))?;
    let mut tensors = vec![tx, tw, out];
    tensors.extend(node.inputs.get(2).copied().flatten());
    let elem = conv_elem(ctx, node, &tensors)?;
    let xd = ctx.graph.info(tx).shape.dims().to_vec();
    let wd = ctx.graph.info(tw).shape.dims().to_vec();
    let yd = ctx.graph.info(out).shape.dims().to_vec();
    if xd.len() < 3 || wd.len() != xd.len() || yd.len() != xd.len() || groups == 0 {
        return Err(unsupported(node, format!("unexpected shapes X {xd:?}, W {wd:?}")));
    }
    let geom = conv_geometry(window, &xd[2..], &wd[2..]).map_err(|e| unsupported(node, e))?;
    let g = Geom2::from(node, &xd[2..], &geom, &yd[2..])?;
    let (n, c, m, cg) = (xd[0], xd[1], wd[0], wd[1]);
    if c != cg * groups || m % groups != 0 {
        return Err(unsupported(node, format!("channels {c} / {m} do not split into {groups} groups")));
    }
    for len in [xd.iter().product::<usize>(), wd.iter().product(), yd.iter().product()] {
        check_numel(&node.name, "Conv", len)?;
    }
    let params = conv_params(ctx, node, m, elem)?;
    if cg == 1 && groups > 1 {
        depthwise(ctx, node, epi, &g, [n, c, m, groups], params)
    } else {
        implicit_gemm(ctx, node, epi, &g, [n, c, m, groups], params)
    }
}

/// Declares the conv kernel's buffers in the order x, w, bias?, y, epilogue
/// operands; returns them and the step's arguments.
struct ConvBuffers {
    px: weft_kir::Param,
    pw: weft_kir::Param,
    pbias: Option<weft_kir::Param>,
    py: weft_kir::Param,
    out_ty: Type,
    args: Vec<BufferId>,
    epi: crate::EpilogueParams,
}

/// Where a convolution's output element goes: bias of its channel, the
/// fused epilogue, conversion to the output type, store.
struct Output<'a> {
    pbias: Option<weft_kir::Param>,
    py: weft_kir::Param,
    out_ty: Type,
    epi: &'a Epilogue,
    eparams: &'a crate::EpilogueParams,
}

impl Output<'_> {
    /// Stores `acc` (output channel `oc`) as element `i` of the output.
    fn store(&self, ctx: &LowerCtx, b: &mut KernelBuilder, acc: Value, oc: Value, i: Value) -> Result<(), LowerError> {
        let mut v = acc;
        if let Some(pb) = self.pbias {
            let bv = b.load(pb, oc);
            v = b.add(v, bv);
        }
        let v = self.epi.apply(ctx, b, self.eparams, v, i)?;
        let v = convert(b, v, self.out_ty);
        b.store(self.py, i, v);
        Ok(())
    }
}

fn declare(
    ctx: &mut LowerCtx,
    b: &mut KernelBuilder,
    tx: TensorId,
    p: &ConvParams,
    epi: &Epilogue,
) -> Result<ConvBuffers, LowerError> {
    let x_len = ctx.graph.info(tx).shape.numel() as u64;
    let w_len = ctx.program.buffers[p.weight].len() as u64;
    let px = b.buffer("x", p.elem, x_len, Access::Read);
    let pw = b.buffer("w", p.elem, w_len, Access::Read);
    let mut args = vec![ctx.buffer_of(tx), p.weight];
    let pbias = p.bias.map(|bb| {
        args.push(bb);
        let len = ctx.program.buffers[bb].len() as u64;
        b.buffer("bias", p.elem, len, Access::Read)
    });
    let out_info = ctx.graph.info(epi.output).clone();
    let out_ty = kir_type(out_info.dtype);
    let py = b.buffer("y", out_ty, out_info.shape.numel() as u64, Access::Write);
    args.push(ctx.buffer_of(epi.output));
    let eparams = epi.declare(ctx, b)?;
    args.extend(eparams.buffers.iter().copied());
    Ok(ConvBuffers { px, pw, pbias, py, out_ty, args, epi: eparams })
}

fn implicit_gemm(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    g: &Geom2,
    [n, c, m, groups]: [usize; 4],
    params: ConvParams,
) -> Result<(), LowerError> {
    let tx = input(node, 0)?;
    let (mg, cg) = (m / groups, c / groups);
    let khw = g.kh * g.kw;
    let kdim = cg * khw;
    let ohw = g.oh * g.ow;
    let hw = g.h * g.w;
    let shape = GemmShape { m: mg as u32, n: (n * ohw) as u32, k: kdim as u32, batch: groups as u32 };
    let cfg = TileConfig::choose(shape.m, shape.n, shape.k);
    shape.check(&cfg, &node.name, "Conv")?;
    let name = ctx.kernel_name(&format!("conv_{}x{}_{}x{}x{}", g.kh, g.kw, mg, n * ohw, kdim));
    let mut b = KernelBuilder::new(name, cfg.launch(&shape));
    let bufs = declare(ctx, &mut b, tx, &params, epi)?;

    let (row_lo, row_hi) = Geom2::axis_guards(g.oh, g.sh, g.dh, g.ph, g.h, g.kh);
    let (col_lo, col_hi) = Geom2::axis_guards(g.ow, g.sw, g.dw, g.pw, g.w, g.kw);
    let ci = |b: &mut KernelBuilder, v: usize| b.const_i32(v as i32);
    let c_kdim = ci(&mut b, kdim);
    let c_mgk = ci(&mut b, mg);
    let c_ohw = ci(&mut b, ohw);
    let c_ow = ci(&mut b, g.ow);
    let c_sh = ci(&mut b, g.sh);
    let c_sw = ci(&mut b, g.sw);
    let c_ph = ci(&mut b, g.ph);
    let c_pw = ci(&mut b, g.pw);
    let c_chw = ci(&mut b, c * hw);
    let c_cghw = ci(&mut b, cg * hw);
    let c_hw = ci(&mut b, hw);
    let c_h = ci(&mut b, g.h);
    let c_w = ci(&mut b, g.w);
    let c_khw = ci(&mut b, khw);
    let c_kw = ci(&mut b, g.kw);
    let c_dh = ci(&mut b, g.dh);
    let c_dw = ci(&mut b, g.dw);
    let c_zero = ci(&mut b, 0);
    let c_mohw = ci(&mut b, m * ohw);

    // Spatial guard of (ih, iw), with only the comparisons the geometry needs.
    let guard = move |b: &mut KernelBuilder, ih: Value, iw: Value| -> Option<Value> {
        let mut conds = Vec::new();
        if row_lo {
            conds.push(b.ge(ih, c_zero));
        }
        if row_hi {
            conds.push(b.lt(ih, c_h));
        }
        if col_lo {
            conds.push(b.ge(iw, c_zero));
        }
        if col_hi {
            conds.push(b.lt(iw, c_w));
        }
        conds.into_iter().reduce(|a, x| b.and(a, x))
    };

    let a_op = Operand {
        buf: bufs.pw,
        outer: Box::new(move |b, row, z| {
            // Weight row of output channel z·M/g + row.
            let zm = b.mul(z, c_mgk);
            let oc = b.add(zm, row);
            vec![b.mul(oc, c_kdim)]
        }),
        element: Box::new(|b, o, kv| Gather { guard: None, index: b.add(o[0], kv) }),
    };
    let one_by_one = khw == 1;
    let b_op = Operand {
        buf: bufs.px,
        outer: Box::new(move |b, p, z| {
            let nb = b.div(p, c_ohw);
            let pix = b.rem(p, c_ohw);
            let oh = b.div(pix, c_ow);
            let ow = b.rem(pix, c_ow);
            let ohs = if g.sh == 1 { oh } else { b.mul(oh, c_sh) };
            let ohs = if g.ph == 0 { ohs } else { b.sub(ohs, c_ph) };
            let ows = if g.sw == 1 { ow } else { b.mul(ow, c_sw) };
            let ows = if g.pw == 0 { ows } else { b.sub(ows, c_pw) };
            let nbase = b.mul(nb, c_chw);
            let gbase = b.mul(z, c_cghw);
            let base = b.add(nbase, gbase);
            if one_by_one {
                // The whole spatial part is k-independent.
                let rowoff = b.mul(ohs, c_w);
                let pixoff = b.add(rowoff, ows);
                let mut v = vec![base, pixoff];
                if let Some(gd) = guard(b, ohs, ows) {
                    v.push(gd);
                }
                v
            } else {
                vec![base, ohs, ows]
            }
        }),
        element: Box::new(move |b, o, kv| {
            if one_by_one {
                let coff = b.mul(kv, c_hw);
                let i = b.add(o[0], coff);
                return Gather { guard: o.get(2).copied(), index: b.add(i, o[1]) };
            }
            let ch = b.div(kv, c_khw);
            let r = b.rem(kv, c_khw);
            let (kh, kw) = if g.kw == 1 {
                (r, c_zero)
            } else if g.kh == 1 {
                (c_zero, r)
            } else {
                (b.div(r, c_kw), b.rem(r, c_kw))
            };
            let khd = if g.dh == 1 { kh } else { b.mul(kh, c_dh) };
            let kwd = if g.dw == 1 { kw } else { b.mul(kw, c_dw) };
            let ih = b.add(o[1], khd);
            let iw = b.add(o[2], kwd);
            let gd = guard(b, ih, iw);
            let coff = b.mul(ch, c_hw);
            let i = b.add(o[0], coff);
            let rowoff = b.mul(ih, c_w);
            let i = b.add(i, rowoff);
            Gather { guard: gd, index: b.add(i, iw) }
        }),
    };
    let graph_ctx: &LowerCtx = ctx;
    let ConvBuffers { pbias, py, out_ty, epi: eparams, args, .. } = bufs;
    emit_tiled_gemm(&mut b, shape, cfg, params.elem, &a_op, &b_op, |b, e| {
        let zm = b.mul(e.z, c_mgk);
        let oc = b.add(zm, e.m);
        let nb = b.div(e.n, c_ohw);
        let pix = b.rem(e.n, c_ohw);
        let no = b.mul(nb, c_mohw);
        let co = b.mul(oc, c_ohw);
        let oi = b.add(no, co);
        let oi = b.add(oi, pix);
        let out = Output { pbias, py, out_ty, epi, eparams: &eparams };
        out.store(graph_ctx, b, e.acc, oc, oi)
    })?;
    ctx.push_step(b.finish(), args, step_nodes(node, &params.folded, epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}

/// Most taps a direct (unrolled) window kernel emits.
pub(crate) const MAX_TAPS: usize = 1024;

/// One tap row or column of a window: the input coordinate and the guards
/// it needs (only where the geometry can leave the input).
pub(crate) struct Tap {
    pub coord: Value,
    pub guard: Option<Value>,
}

/// The taps of one window axis for the output position whose first input
/// coordinate is `start` (= `o·s − pad`).
pub(crate) fn axis_taps(
    b: &mut KernelBuilder,
    start: Value,
    [out, s, d, pad, input, k]: [usize; 6],
    zero: Value,
    limit: Value,
) -> Vec<Tap> {
    (0..k)
        .map(|t| {
            let coord = if t == 0 {
                start
            } else {
                let off = b.const_i32((t * d) as i32);
                b.add(start, off)
            };
            let (lo, hi) = Geom2::tap_guards(out, s, d, pad, input, t);
            let lo = lo.then(|| b.ge(coord, zero));
            let hi = hi.then(|| b.lt(coord, limit));
            let guard = match (lo, hi) {
                (Some(x), Some(y)) => Some(b.and(x, y)),
                (x, y) => x.or(y),
            };
            Tap { coord, guard }
        })
        .collect()
}

/// `o·s − pad` for an output coordinate.
pub(crate) fn window_start(b: &mut KernelBuilder, o: Value, s: usize, pad: usize) -> Value {
    let v = if s == 1 {
        o
    } else {
        let sv = b.const_i32(s as i32);
        b.mul(o, sv)
    };
    if pad == 0 {
        v
    } else {
        let pv = b.const_i32(pad as i32);
        b.sub(v, pv)
    }
}

pub(crate) fn and_opt(b: &mut KernelBuilder, x: Option<Value>, y: Option<Value>) -> Option<Value> {
    match (x, y) {
        (Some(x), Some(y)) => Some(b.and(x, y)),
        (x, y) => x.or(y),
    }
}

fn depthwise(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    g: &Geom2,
    [n, c, m, groups]: [usize; 4],
    params: ConvParams,
) -> Result<(), LowerError> {
    let tx = input(node, 0)?;
    let khw = g.kh * g.kw;
    if khw > MAX_TAPS {
        return Err(unsupported(node, format!("depthwise window of {khw} taps exceeds {MAX_TAPS}")));
    }
    let total = n * m * g.oh * g.ow;
    let name = ctx.kernel_name(&format!("conv_dw_{}x{}_{}", g.kh, g.kw, m));
    let mut b = KernelBuilder::new(name, linear_launch(total, MAX_BLOCKS));
    let bufs = declare(ctx, &mut b, tx, &params, epi)?;
    let mult = m / groups;
    let hw = g.h * g.w;
    let elem = params.elem;
    let zero_f = b.constant(weft_kir::Scalar::from_f64(elem, 0.0));
    let zero = b.const_i32(0);
    let c_h = b.const_i32(g.h as i32);
    let c_w = b.const_i32(g.w as i32);
    let c_hw = b.const_i32(hw as i32);
    let c_chw = b.const_i32((c * hw) as i32);
    let c_mult = b.const_i32(mult as i32);
    let c_khw = b.const_i32(khw as i32);
    let graph_ctx: &LowerCtx = ctx;
    let ConvBuffers { px, pw, pbias, py, out_ty, epi: eparams, args } = bufs;
    let mut result = Ok(());
    grid_stride_loop(&mut b, total, |b, i| {
        let co = unravel(b, i, &[n, m, g.oh, g.ow]);
        let (nb, oc, oh, ow) = (co[0], co[1], co[2], co[3]);
        let ic = if mult == 1 { oc } else { b.div(oc, c_mult) };
        let nbase = b.mul(nb, c_chw);
        let cbase = b.mul(ic, c_hw);
        let base = b.add(nbase, cbase);
        let wbase = b.mul(oc, c_khw);
        let hs = window_start(b, oh, g.sh, g.ph);
        let ws = window_start(b, ow, g.sw, g.pw);
        let rows = axis_taps(b, hs, [g.oh, g.sh, g.dh, g.ph, g.h, g.kh], zero, c_h);
        let cols = axis_taps(b, ws, [g.ow, g.sw, g.dw, g.pw, g.w, g.kw], zero, c_w);
        let acc = b.var_init(zero_f);
        for (r, row) in rows.iter().enumerate() {
            let rowoff = b.mul(row.coord, c_w);
            let rowbase = b.add(base, rowoff);
            for (cc, col) in cols.iter().enumerate() {
                let tap = b.const_i32((r * g.kw + cc) as i32);
                let body = |b: &mut KernelBuilder| {
                    let xi = b.add(rowbase, col.coord);
                    let xv = b.load(px, xi);
                    let wi = b.add(wbase, tap);
                    let wv = b.load(pw, wi);
                    let cur = b.get(acc);
                    let nv = if elem.is_float() {
                        b.fma(xv, wv, cur)
                    } else {
                        let p = b.mul(xv, wv);
                        b.add(p, cur)
                    };
                    b.set(acc, nv);
                };
                match and_opt(b, row.guard, col.guard) {
                    Some(gd) => b.if_(gd, body),
                    None => body(b),
                }
            }
        }
        let v = b.get(acc);
        let out = Output { pbias, py, out_ty, epi, eparams: &eparams };
        if let Err(e) = out.store(graph_ctx, b, v, oc, i) {
            result = Err(e);
        }
    });
    result?;
    ctx.push_step(b.finish(), args, step_nodes(node, &params.folded, epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}

fn lower_conv_transpose(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    window: &Window,
    groups: usize,
    output_padding: &[usize],
) -> Result<(), LowerError> {
    let tx = input(node, 0)?;
    let tw = input(node, 1)?;
    let out = *node.outputs.first().ok_or_else(|| unsupported(node, "no output"))?;
    let mut f32s = vec![tx, tw, out];
    f32s.extend(node.inputs.get(2).copied().flatten());
    require_f32(ctx, node, &f32s)?;
    let xd = ctx.graph.info(tx).shape.dims().to_vec();
    let wd = ctx.graph.info(tw).shape.dims().to_vec();
    let yd = ctx.graph.info(out).shape.dims().to_vec();
    if xd.len() < 3 || wd.len() != xd.len() || yd.len() != xd.len() || groups == 0 {
        return Err(unsupported(node, format!("unexpected shapes X {xd:?}, W {wd:?}")));
    }
    let geom = conv_transpose_geometry(window, &xd[2..], &wd[2..], output_padding).map_err(|e| unsupported(node, e))?;
    // Geom2's (h, w) is the *input* and (oh, ow) the output here too.
    let g = Geom2::from(node, &xd[2..], &geom, &yd[2..])?;
    let (n, c, mg) = (xd[0], xd[1], wd[1]);
    let m = mg * groups;
    if c % groups != 0 || wd[0] != c || yd[1] != m {
        return Err(unsupported(node, format!("channels {c} / {m} do not split into {groups} groups")));
    }
    let cg = c / groups;
    for len in [xd.iter().product::<usize>(), wd.iter().product(), yd.iter().product()] {
        check_numel(&node.name, "ConvTranspose", len)?;
    }
    let khw = g.kh * g.kw;
    if khw > MAX_TAPS {
        return Err(unsupported(node, format!("window of {khw} taps exceeds {MAX_TAPS}")));
    }
    let params = ConvParams {
        elem: Type::F32,
        weight: ctx.buffer_of(tw),
        bias: node.inputs.get(2).copied().flatten().map(|t| ctx.buffer_of(t)),
        folded: Vec::new(),
    };
    let total = n * m * g.oh * g.ow;
    let name = ctx.kernel_name(&format!("conv_transpose_{}x{}_{}", g.kh, g.kw, m));
    let mut b = KernelBuilder::new(name, linear_launch(total, MAX_BLOCKS));
    let bufs = declare(ctx, &mut b, tx, &params, epi)?;
    let hw = g.h * g.w;
    let zero_f = b.const_f32(0.0);
    let zero = b.const_i32(0);
    let c_h = b.const_i32(g.h as i32);
    let c_w = b.const_i32(g.w as i32);
    let c_hw = b.const_i32(hw as i32);
    let c_chw = b.const_i32((c * hw) as i32);
    let c_mg = b.const_i32(mg as i32);
    let c_cg = b.const_i32(cg as i32);
    let c_wic = b.const_i32((mg * khw) as i32);
    let c_khw = b.const_i32(khw as i32);
    let c_sh = b.const_i32(g.sh as i32);
    let c_sw = b.const_i32(g.sw as i32);
    let graph_ctx: &LowerCtx = ctx;
    let ConvBuffers { px, pw, pbias, py, out_ty, epi: eparams, args } = bufs;
    let mut result = Ok(());
    grid_stride_loop(&mut b, total, |b, i| {
        let co = unravel(b, i, &[n, m, g.oh, g.ow]);
        let (nb, oc, oh, ow) = (co[0], co[1], co[2], co[3]);
        let grp = b.div(oc, c_mg);
        let ocg = b.rem(oc, c_mg);
        let ic0 = b.mul(grp, c_cg);
        let ic1 = b.add(ic0, c_cg);
        let nbase = b.mul(nb, c_chw);
        let wocg = b.mul(ocg, c_khw);
        // One axis: for tap t the input coordinate is (o + pad − t·d) / s when
        // that is a non-negative multiple of s below the input extent.
        let taps =
            |b: &mut KernelBuilder, o: Value, pad: usize, k: usize, d: usize, s: usize, cs: Value, lim: Value| {
                (0..k)
                    .map(|t| {
                        let shift = pad as i64 - (t * d) as i64;
                        let sv = b.const_i32(shift as i32);
                        let tv = b.add(o, sv);
                        let nonneg = b.ge(tv, zero);
                        let clamped = b.max(tv, zero);
                        let (coord, exact) = if s == 1 {
                            (clamped, None)
                        } else {
                            let q = b.div(clamped, cs);
                            let r = b.rem(tv, cs);
                            (q, Some(b.eq(r, zero)))
                        };
                        let inside = b.lt(coord, lim);
                        let gd = b.and(nonneg, inside);
                        let gd = and_opt(b, Some(gd), exact).unwrap_or(gd);
                        Tap { coord, guard: Some(gd) }
                    })
                    .collect::<Vec<_>>()
            };
        let rows = taps(b, oh, g.ph, g.kh, g.dh, g.sh, c_sh, c_h);
        let cols = taps(b, ow, g.pw, g.kw, g.dw, g.sw, c_sw, c_w);
        let acc = b.var_init(zero_f);
        for (r, row) in rows.iter().enumerate() {
            let rowoff = b.mul(row.coord, c_w);
            for (cc, col) in cols.iter().enumerate() {
                let tap = b.const_i32((r * g.kw + cc) as i32);
                let gd = and_opt(b, row.guard, col.guard);
                let body = |b: &mut KernelBuilder| {
                    let pixoff = b.add(rowoff, col.coord);
                    let pix = b.add(nbase, pixoff);
                    let wt = b.add(wocg, tap);
                    b.for_range(ic0, ic1, 1, |b, ic| {
                        let cofs = b.mul(ic, c_hw);
                        let xi = b.add(pix, cofs);
                        let xv = b.load(px, xi);
                        let wrow = b.mul(ic, c_wic);
                        let wi = b.add(wrow, wt);
                        let wv = b.load(pw, wi);
                        let cur = b.get(acc);
                        let nv = b.fma(xv, wv, cur);
                        b.set(acc, nv);
                    });
                };
                match gd {
                    Some(gd) => b.if_(gd, body),
                    None => body(b),
                }
            }
        }
        let v = b.get(acc);
        let out = Output { pbias, py, out_ty, epi, eparams: &eparams };
        if let Err(e) = out.store(graph_ctx, b, v, oc, i) {
            result = Err(e);
        }
    });
    result?;
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}
