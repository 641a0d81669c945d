//! Lowering of pooling and LRN (NCHW, 1-D, 2-D and 3-D spatial windows).
//!
//! - `MaxPool` / `AveragePool`: one thread per output (grid-stride), the
//!   window unrolled; like the direct convolutions, a tap is guarded only
//!   where the geometry can put it in the padding, so interior taps cost a
//!   load and an add. `AveragePool` divides by the number of taps inside the
//!   input, or with `count_include_pad` inside the padded input (as
//!   onnxruntime and PyTorch: a `ceil_mode` window past the end padding does
//!   not count its overhang). The window is separable, so the count is the
//!   product of the per-axis counts. A 3-D window adds a depth loop
//!   around the 2-D one.
//! - `GlobalAveragePool` / `GlobalMaxPool`: one thread per `(n, c)` looping
//!   over the spatial extent when it is small (ResNet's 7×7), else one block
//!   per `(n, c)` with a strided per-thread pass, a warp-shuffle reduction and
//!   a shared-memory combine of the warps.
//! - `LRN`: one thread per element, summing squares over the channel window
//!   `[c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉]` clipped to the channels.
//!
//! Every template applies the fused epilogue before its store.

use weft_graph::infer::pool_geometry;
use weft_graph::{DType, Node, Op, TensorId, Window};
use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type, Value};

use crate::context::{kir_type, LowerCtx};
use crate::epilogue::{convert, emit_pow_const, Epilogue, EpilogueParams};
use crate::error::LowerError;
use crate::index::{block_stride_loop, check_numel, grid_stride_loop, linear_launch, unravel, MAX_BLOCKS};
use crate::ops::conv::{and_opt, axis_taps, window_start, MAX_TAPS};
use crate::program::BufferId;
use crate::tile::{step_nodes, unsupported};

/// Spatial extents at or above which a global pool uses a block per `(n, c)`.
const BLOCK_REDUCE_MIN: usize = 1024;
/// Threads of the block-per-row global pool.
const REDUCE_THREADS: u32 = 256;

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    match &node.op {
        Op::MaxPool { window, ceil_mode } => window_pool(ctx, node, epi, window, *ceil_mode, None, None),
        Op::MaxPoolWithIndices { window, ceil_mode, column_major } => {
            window_pool(ctx, node, epi, window, *ceil_mode, None, Some(*column_major))
        }
        Op::AveragePool { window, ceil_mode, count_include_pad } => {
            window_pool(ctx, node, epi, window, *ceil_mode, Some(*count_include_pad), None)
        }
        Op::GlobalAveragePool => global_pool(ctx, node, epi, true),
        Op::GlobalMaxPool => global_pool(ctx, node, epi, false),
        Op::Lrn { size, alpha, beta, bias } => lrn(ctx, node, epi, *size, *alpha, *beta, *bias),
        _ => Err(LowerError::Internal { node: node.name.clone(), message: "not a pooling op".into() }),
    }
}

/// The kernel's buffers: input `x`, output `y` (the epilogue's tensor), then
/// the epilogue's operands.
struct PoolBuffers {
    px: weft_kir::Param,
    py: weft_kir::Param,
    out_ty: Type,
    args: Vec<BufferId>,
    epi: EpilogueParams,
}

fn declare(ctx: &mut LowerCtx, b: &mut KernelBuilder, tx: TensorId, epi: &Epilogue) -> Result<PoolBuffers, LowerError> {
    let x_len = ctx.graph.info(tx).shape.numel() as u64;
    let px = b.buffer("x", kir_type(ctx.graph.info(tx).dtype), x_len, Access::Read);
    let out_info = ctx.graph.info(epi.output).clone();
    let out_ty = kir_type(out_info.dtype);
    let py = b.buffer("y", out_ty, out_info.shape.numel() as u64, Access::Write);
    let mut args = vec![ctx.buffer_of(tx), ctx.buffer_of(epi.output)];
    let eparams = epi.declare(ctx, b)?;
    args.extend(eparams.buffers.iter().copied());
    Ok(PoolBuffers { px, py, out_ty, args, epi: eparams })
}

fn io(ctx: &LowerCtx, node: &Node) -> Result<(TensorId, Vec<usize>, Vec<usize>), LowerError> {
    let tx = node.inputs.first().copied().flatten().ok_or_else(|| unsupported(node, "input 0 is missing"))?;
    let out = *node.outputs.first().ok_or_else(|| unsupported(node, "no output"))?;
    // MaxPool also runs on 8-bit integers (compared as they are).
    let int_ok = matches!(node.op, Op::MaxPool { .. } | Op::MaxPoolWithIndices { .. });
    for t in [tx, out] {
        let info = ctx.graph.info(t);
        let ok = info.dtype == DType::F32 || (int_ok && matches!(info.dtype, DType::I8 | DType::U8));
        if !ok {
            return Err(unsupported(node, format!("tensor `{}` is {}; only f32 is lowered", info.name, info.dtype)));
        }
    }
    let xd = ctx.graph.info(tx).shape.dims().to_vec();
    let yd = ctx.graph.info(out).shape.dims().to_vec();
    if xd.len() < 3 || yd.len() != xd.len() {
        return Err(unsupported(node, format!("expected an [N, C, spatial…] input, got {xd:?}")));
    }
    check_numel(&node.name, node.op.name(), xd.iter().product())?;
    check_numel(&node.name, node.op.name(), yd.iter().product())?;
    Ok((tx, xd, yd))
}

/// Stores `v` (f32) for output element `i` through the epilogue.
#[allow(clippy::too_many_arguments)]
fn finish_store(
    ctx: &LowerCtx,
    b: &mut KernelBuilder,
    epi: &Epilogue,
    bufs: &PoolBuffers,
    v: Value,
    i: Value,
    result: &mut Result<(), LowerError>,
) {
    match epi.apply(ctx, b, &bufs.epi, v, i) {
        Ok(v) => {
            let v = convert(b, v, bufs.out_ty);
            b.store(bufs.py, i, v);
        }
        Err(e) => *result = Err(e),
    }
}

/// A windowed pool: `average` (with `count_include_pad`) or max; with
/// `indices` (`Some(column_major)`), a max that also stores each maximum's
/// flat input index into the node's second output.
#[allow(clippy::too_many_arguments)]
fn window_pool(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    window: &Window,
    ceil_mode: bool,
    average: Option<bool>,
    indices: Option<bool>,
) -> Result<(), LowerError> {
    if indices.is_some() && !epi.is_empty() {
        return Err(LowerError::Internal {
            node: node.name.clone(),
            message: "MaxPool with Indices takes no epilogue".into(),
        });
    }
    let (tx, xd, yd) = io(ctx, node)?;
    let geom = pool_geometry(window, &xd[2..], ceil_mode).map_err(|e| unsupported(node, e))?;
    if geom.output != yd[2..] {
        return Err(LowerError::Internal {
            node: node.name.clone(),
            message: "pool geometry disagrees with shape".into(),
        });
    }
    // Normalise to 3-D: missing leading spatial axes have unit extent (and
    // no taps of their own: a 1-D or 2-D pool has no depth loop).
    let r = xd.len() - 2;
    if !(1..=3).contains(&r) {
        return Err(unsupported(node, format!("{r}-D pooling is not lowered (1-D, 2-D and 3-D are)")));
    }
    let lead = 3 - r;
    let axis = |v: &[usize], i: usize, unit: usize| if i < lead { unit } else { v[i - lead] };
    let spatial = |i: usize| {
        [
            axis(&xd[2..], i, 1),
            axis(&yd[2..], i, 1),
            axis(&geom.kernel, i, 1),
            axis(&geom.strides, i, 1),
            axis(&geom.dilations, i, 1),
            axis(&geom.pads_begin, i, 0),
            axis(&geom.pads_end, i, 0),
        ]
    };
    let [dd, od, kd, sd, ddil, pd, ped] = spatial(0);
    let [h, oh, kh, sh, dh, ph, peh] = spatial(1);
    let [w, ow, kw, sw, dw, pw, pew] = spatial(2);
    if kd * kh * kw > MAX_TAPS {
        return Err(unsupported(node, format!("window of {} taps exceeds {MAX_TAPS}", kd * kh * kw)));
    }
    let nc = xd[0] * xd[1];
    let total = nc * od * oh * ow;
    let base = if average.is_some() { "avgpool" } else { "maxpool" };
    let name = if r == 3 {
        ctx.kernel_name(&format!("{base}_{kd}x{kh}x{kw}"))
    } else {
        ctx.kernel_name(&format!("{base}_{kh}x{kw}"))
    };
    let mut b = KernelBuilder::new(name, linear_launch(total, MAX_BLOCKS));
    let mut bufs = declare(ctx, &mut b, tx, epi)?;
    let pidx = match (indices, node.outputs.get(1)) {
        (Some(_), Some(&out)) => {
            bufs.args.push(ctx.buffer_of(out));
            Some(b.buffer("indices", Type::I64, total as u64, Access::Write))
        }
        (Some(_), None) => {
            return Err(LowerError::Internal {
                node: node.name.clone(),
                message: "the Indices output is missing".into(),
            })
        }
        _ => None,
    };
    let zero = b.const_i32(0);
    let c_h = b.const_i32(h as i32);
    let c_w = b.const_i32(w as i32);
    let c_hw = b.const_i32((h * w) as i32);
    let depth_consts = (r == 3).then(|| (b.const_i32(dd as i32), b.const_i32((dd * h * w) as i32)));
    let x_ty = b.kernel().params[bufs.px].ty();
    let init = match (average, x_ty.int_range()) {
        // An integer max starts at the type's least value.
        (None, Some((lo, _))) => b.constant(weft_kir::Scalar::from_int(x_ty, lo).unwrap_or(weft_kir::Scalar::I32(0))),
        _ => b.const_f32(if average.is_some() { 0.0 } else { f32::NEG_INFINITY }),
    };
    let one_i = b.const_i32(1);
    let graph_ctx: &LowerCtx = ctx;
    let mut result = Ok(());
    grid_stride_loop(&mut b, total, |b, i| {
        // Output coordinates (nc, [d,] h, w) and the depth taps of a 3-D pool.
        let (base, depths, co_h, co_w) = if let Some((c_d, c_dhw)) = depth_consts {
            let co = unravel(b, i, &[nc, od, oh, ow]);
            let base = b.mul(co[0], c_dhw);
            let ds = window_start(b, co[1], sd, pd);
            let depths = axis_taps(b, ds, [od, sd, ddil, pd, dd, kd], zero, c_d);
            (base, Some(depths), co[2], co[3])
        } else {
            let co = unravel(b, i, &[nc, oh, ow]);
            (b.mul(co[0], c_hw), None, co[1], co[2])
        };
        let hs = window_start(b, co_h, sh, ph);
        let ws = window_start(b, co_w, sw, pw);
        let rows = axis_taps(b, hs, [oh, sh, dh, ph, h, kh], zero, c_h);
        let cols = axis_taps(b, ws, [ow, sw, dw, pw, w, kw], zero, c_w);
        let acc = b.var_init(init);
        let none = b.const_i32(-1);
        let best = b.var_init(none);
        let planes: Vec<(Value, Option<Value>)> = match &depths {
            Some(ds) => ds
                .iter()
                .map(|t| {
                    let off = b.mul(t.coord, c_hw);
                    (b.add(base, off), t.guard)
                })
                .collect(),
            None => vec![(base, None)],
        };
        for &(plane, dguard) in &planes {
            for row in &rows {
                let rowoff = b.mul(row.coord, c_w);
                let rowbase = b.add(plane, rowoff);
                for col in &cols {
                    let body = |b: &mut KernelBuilder| {
                        let xi = b.add(rowbase, col.coord);
                        let xv = b.load(bufs.px, xi);
                        let cur = b.get(acc);
                        if pidx.is_some() {
                            // The first maximum in window order; NaN the largest.
                            let at = b.get(best);
                            let minus = b.const_i32(-1);
                            let first = b.eq(at, minus);
                            let above = crate::epilogue::nan_beyond(b, xv, cur, true);
                            let take = b.or(first, above);
                            let nb = b.select(take, xi, at);
                            b.set(best, nb);
                        }
                        let nv = if average.is_some() { b.add(cur, xv) } else { crate::epilogue::nan_max(b, cur, xv) };
                        b.set(acc, nv);
                    };
                    let rc = and_opt(b, row.guard, col.guard);
                    match and_opt(b, dguard, rc) {
                        Some(gd) => b.if_(gd, body),
                        None => body(b),
                    }
                }
            }
        }
        let mut v = b.get(acc);
        if let Some(include_pad) = average {
            // Taps counted along one axis: inside the input, or inside the
            // padded input when padding counts.
            let count =
                |b: &mut KernelBuilder, taps: &[crate::ops::conv::Tap], pad_b: usize, pad_e: usize, n: usize| {
                    let lo = b.const_i32(-(pad_b as i32));
                    let hi = b.const_i32((n + pad_e) as i32);
                    let mut cnt: Option<Value> = None;
                    let mut fixed = 0i32;
                    for t in taps {
                        let cond = if include_pad {
                            let a = b.ge(t.coord, lo);
                            let c = b.lt(t.coord, hi);
                            Some(b.and(a, c))
                        } else {
                            t.guard
                        };
                        match cond {
                            None => fixed += 1,
                            Some(cond) => {
                                let zero = b.const_i32(0);
                                let one = b.select(cond, one_i, zero);
                                cnt = Some(match cnt {
                                    Some(c) => b.add(c, one),
                                    None => one,
                                });
                            }
                        }
                    }
                    let f = b.const_i32(fixed);
                    match cnt {
                        Some(c) => b.add(c, f),
                        None => f,
                    }
                };
            let ch = count(b, &rows, ph, peh, h);
            let cw = count(b, &cols, pw, pew, w);
            let mut cnt = b.mul(ch, cw);
            if let Some(ds) = &depths {
                let cd = count(b, ds, pd, ped, dd);
                cnt = b.mul(cd, cnt);
            }
            let cnt = b.max(cnt, one_i);
            let cf = b.cast(Type::F32, cnt);
            v = b.div(v, cf);
        }
        finish_store(graph_ctx, b, epi, &bufs, v, i, &mut result);
        if let (Some(pi), Some(column_major)) = (pidx, indices) {
            // A window wholly in the padding has no maximum: index 0.
            let at = b.get(best);
            let zero = b.const_i32(0);
            let at = b.max(at, zero);
            let at = if column_major {
                // (h, w) of the plane, stored as w·H + h.
                let local = b.rem(at, c_hw);
                let plane = b.sub(at, local);
                let hh = b.div(local, c_w);
                let ww = b.rem(local, c_w);
                let wh = b.mul(ww, c_h);
                let moved = b.add(wh, hh);
                b.add(plane, moved)
            } else {
                at
            };
            let at = b.cast(Type::I64, at);
            b.store(pi, i, at);
        }
    });
    result?;
    let args = bufs.args.clone();
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    if let Some(&out) = node.outputs.get(1).filter(|_| indices.is_some()) {
        ctx.mark_available(out);
    }
    Ok(())
}

fn global_pool(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue, average: bool) -> Result<(), LowerError> {
    let (tx, xd, _) = io(ctx, node)?;
    let rows = xd[0] * xd[1];
    let s: usize = xd[2..].iter().product();
    if s == 0 {
        return Err(unsupported(node, "empty spatial extent"));
    }
    let base = if average { "global_avgpool" } else { "global_maxpool" };
    let name = ctx.kernel_name(&format!("{base}_{s}"));
    let block = s >= BLOCK_REDUCE_MIN;
    let launch = if block {
        LaunchShape::linear(rows.clamp(1, MAX_BLOCKS as usize) as u32, REDUCE_THREADS)
    } else {
        linear_launch(rows, MAX_BLOCKS)
    };
    let mut b = KernelBuilder::new(name, launch);
    let bufs = declare(ctx, &mut b, tx, epi)?;
    let c_s = b.const_i32(s as i32);
    let init = b.const_f32(if average { 0.0 } else { f32::NEG_INFINITY });
    let graph_ctx: &LowerCtx = ctx;
    let mut result = Ok(());
    let combine = |b: &mut KernelBuilder, x: Value, y: Value| if average { b.add(x, y) } else { b.max(x, y) };
    let finalize = |b: &mut KernelBuilder, v: Value| {
        if average {
            // Multiplying by 1/s differs from dividing by s in the last bit;
            // divide, as the reference does.
            let sf = b.const_f32(s as f32);
            b.div(v, sf)
        } else {
            v
        }
    };
    if block {
        let warps = REDUCE_THREADS / 32;
        let partials = b.shared_array(Type::F32, warps);
        let tid = b.thread_id(Axis::X);
        let lane = b.lane_id();
        let c32 = b.const_i32(32);
        let warp = b.div(tid, c32);
        let zero = b.const_i32(0);
        block_stride_loop(&mut b, rows, |b, row| {
            let acc = b.var_init(init);
            let rowbase = b.mul(row, c_s);
            b.for_range(tid, c_s, REDUCE_THREADS as i64, |b, j| {
                let xi = b.add(rowbase, j);
                let xv = b.load(bufs.px, xi);
                let cur = b.get(acc);
                let nv = combine(b, cur, xv);
                b.set(acc, nv);
            });
            let mut v = b.get(acc);
            for mask in [16, 8, 4, 2, 1] {
                let o = b.shuffle_xor(v, mask);
                v = combine(b, v, o);
            }
            let first_lane = b.eq(lane, zero);
            b.if_(first_lane, |b| b.shared_store(partials, warp, v));
            b.barrier();
            let first = b.eq(tid, zero);
            b.if_(first, |b| {
                let mut t = b.shared_load(partials, zero);
                for w in 1..warps {
                    let wi = b.const_i32(w as i32);
                    let pv = b.shared_load(partials, wi);
                    t = combine(b, t, pv);
                }
                let t = finalize(b, t);
                finish_store(graph_ctx, b, epi, &bufs, t, row, &mut result);
            });
            // The next row overwrites the partials.
            b.barrier();
        });
    } else {
        grid_stride_loop(&mut b, rows, |b, row| {
            let acc = b.var_init(init);
            let rowbase = b.mul(row, c_s);
            b.for_const(0, s as i32, 1, |b, j| {
                let xi = b.add(rowbase, j);
                let xv = b.load(bufs.px, xi);
                let cur = b.get(acc);
                let nv = combine(b, cur, xv);
                b.set(acc, nv);
            });
            let v = b.get(acc);
            let v = finalize(b, v);
            finish_store(graph_ctx, b, epi, &bufs, v, row, &mut result);
        });
    }
    result?;
    let args = bufs.args.clone();
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn lrn(
    ctx: &mut LowerCtx,
    node: &Node,
    epi: &Epilogue,
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
) -> Result<(), LowerError> {
    let (tx, xd, _) = io(ctx, node)?;
    if size == 0 || size > MAX_TAPS {
        return Err(unsupported(node, format!("LRN size {size} must be in 1..={MAX_TAPS}")));
    }
    let (n, c) = (xd[0], xd[1]);
    let s: usize = xd[2..].iter().product();
    let total = n * c * s;
    let name = ctx.kernel_name("lrn");
    let mut b = KernelBuilder::new(name, linear_launch(total, MAX_BLOCKS));
    let bufs = declare(ctx, &mut b, tx, epi)?;
    let before = (size - 1) / 2;
    let zero = b.const_i32(0);
    let c_c = b.const_i32(c as i32);
    let c_s = b.const_i32(s as i32);
    let c_cs = b.const_i32((c * s) as i32);
    let zero_f = b.const_f32(0.0);
    let scale = b.const_f32(alpha / size as f32);
    let bias_v = b.const_f32(bias);
    let graph_ctx: &LowerCtx = ctx;
    let mut result = Ok(());
    grid_stride_loop(&mut b, total, |b, i| {
        let co = unravel(b, i, &[n, c, s]);
        let nbase = b.mul(co[0], c_cs);
        let nbase = b.add(nbase, co[2]);
        let acc = b.var_init(zero_f);
        for j in 0..size {
            let off = b.const_i32(j as i32 - before as i32);
            let cc = b.add(co[1], off);
            let lo = b.ge(cc, zero);
            let hi = b.lt(cc, c_c);
            let ok = b.and(lo, hi);
            b.if_(ok, |b| {
                let coff = b.mul(cc, c_s);
                let xi = b.add(nbase, coff);
                let xv = b.load(bufs.px, xi);
                let cur = b.get(acc);
                let nv = b.fma(xv, xv, cur);
                b.set(acc, nv);
            });
        }
        let sum = b.get(acc);
        let d = b.fma(scale, sum, bias_v);
        let d = emit_pow_const(b, d, beta as f64);
        let xv = b.load(bufs.px, i);
        let v = b.div(xv, d);
        finish_store(graph_ctx, b, epi, &bufs, v, i, &mut result);
    });
    result?;
    let args = bufs.args.clone();
    ctx.push_step(b.finish(), args, step_nodes(node, &[], epi))?;
    ctx.mark_available(epi.output);
    Ok(())
}
