//! Tiled GEMM machinery shared by the GEMM and convolution templates.
//!
//! [`emit_tiled_gemm`] writes the body of a kernel computing, for every batch
//! index `z` (`block_id.z`), `C[m, n] = Σ_k A(z, m, k) · B(z, k, n)` over
//! `m < M`, `n < N`, `k < K`, where the element loads of `A` and `B` are
//! produced by [`Operand`] closures. A plain GEMM, a transposed one, a batched
//! MatMul with broadcast batch strides and an implicit-GEMM convolution (whose
//! `B` gathers input pixels with padding guards) therefore share one tiling:
//!
//! - each block computes a `bm × bn` tile of `C`; per step of `bk` along `K`
//!   it stages an `A` tile (stored k-major, rows padded by one to avoid bank
//!   conflicts on the transposing store) and a `B` tile in shared memory;
//! - each thread accumulates a `tm × tn` register tile; its rows are
//!   `ty + i·(bm/tm)` and its columns `tx + j·(bn/tn)` (strided, so a warp's
//!   shared loads of `B` are consecutive and its output stores coalesce);
//! - the inner `bk` loop is fully unrolled and every shared-memory index it
//!   uses is computed once before the `K` loop, so the inner loop is only
//!   shared loads and FMAs; accumulators live in SSA values within a `K`
//!   step and in variables across steps;
//! - every staged element's coordinates are fixed per thread across `K`
//!   steps, so whatever an operand derives from the row of `A` / column of
//!   `B` (clamped into range: rows past `M` load real data that is never
//!   stored) is hoisted out of the `K` loop ([`Operand::outer`]); only the
//!   `k`-dependent part runs per step ([`Operand::element`]);
//! - `k ≥ K` and any operand guard (padding) zero-fill the tile; the load is
//!   guarded by the conjunction, which is the form the range analysis proves.
//!
//! The tile shape is chosen per problem by [`TileConfig::choose`]: see its
//! doc for the rule.
//!
//! Measured (ResNet-50's 3×3 conv, C = M = 64 at 56×56, batch 1, 64×64
//! tiles): 2.18 interpreter thread-instructions per FMA (1.5 in the inner
//! loop: 8 shared loads per 16 FMAs; the rest staging and the per-step
//! accumulator reads/writes); ptxas for sm_90 keeps the hoisted shared
//! indices without spilling (64 registers, 8.25 KiB shared). An 8×4 register
//! tile would bring it to 2.04 at half the threads per block.

use weft_kir::{Axis, KernelBuilder, LaunchShape, Param, Type, Value};

use crate::error::LowerError;

/// Tile sizes of one tiled GEMM kernel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TileConfig {
    /// Rows of `C` per block.
    pub bm: u32,
    /// Columns of `C` per block.
    pub bn: u32,
    /// Depth of one `K` step.
    pub bk: u32,
    /// Rows per thread (divides `bm`).
    pub tm: u32,
    /// Columns per thread (divides `bn`).
    pub tn: u32,
}

/// The block tiles [`TileConfig::choose`] picks from: `(bm, bn, tm, tn)`.
/// Square-ish tiles for large problems, thin ones for small `M` or `N`
/// (a 1×256 tile for a row-vector GEMV, 256×1 for a column-vector one).
pub const TILE_CANDIDATES: [(u32, u32, u32, u32); 12] = [
    (64, 64, 4, 4),
    (64, 32, 4, 4),
    (32, 64, 4, 4),
    (32, 32, 4, 4),
    (16, 64, 4, 4),
    (64, 16, 4, 4),
    (16, 16, 2, 2),
    (8, 128, 2, 4),
    (128, 8, 4, 2),
    (4, 256, 1, 4),
    (1, 256, 1, 4),
    (256, 1, 4, 1),
];

/// How many instructions staging one element costs relative to one FMA (a
/// guard, index arithmetic, a global load and a shared store against one
/// shared load share and an FMA): the weight of staging in the tile cost.
const STAGE_WEIGHT: f64 = 4.0;

impl TileConfig {
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Picks the tile for an `m × n × k` problem.
    ///
    /// Rule: minimise the work per `k` over the whole padded grid,
    /// `ceil(m/bm)·bm · ceil(n/bn)·bn · (1 + 4·(1/bm + 1/bn))`: the first
    /// factor is the FMAs including those wasted on tile padding, the second
    /// the staging overhead (each FMA of a `bm × bn` tile stages
    /// `1/bm + 1/bn` elements, weighted 4× since staging an element costs a
    /// guard, index math, a global load and a shared store). Ties go to the
    /// earlier (larger) candidate. So `M = 64, N = 3136` keeps 64×64, an FC
    /// layer with `N = 1` gets 256×1 instead of wasting 63/64 of a 64×64 tile,
    /// and `M = 1` gets 1×256. `bk` is 16, or 8/4 for `k ≤ 8`/`k ≤ 4`.
    pub fn choose(m: u32, n: u32, k: u32) -> TileConfig {
        let mut best: Option<(f64, TileConfig)> = None;
        for &(bm, bn, tm, tn) in &TILE_CANDIDATES {
            let pm = m.div_ceil(bm) as f64 * bm as f64;
            let pn = n.div_ceil(bn) as f64 * bn as f64;
            let cost = pm * pn * (1.0 + STAGE_WEIGHT * (1.0 / bm as f64 + 1.0 / bn as f64));
            let cfg = TileConfig { bm, bn, bk: 16, tm, tn };
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, cfg));
            }
        }
        let mut cfg = best.map_or(TileConfig { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }, |(_, c)| c);
        cfg.bk = if k <= 4 {
            4
        } else if k <= 8 {
            8
        } else {
            16
        };
        cfg
    }

    /// The launch: `x` over column tiles, `y` over row tiles, `z` over the batch.
    pub fn launch(&self, shape: &GemmShape) -> LaunchShape {
        LaunchShape::new(
            [shape.n.div_ceil(self.bn).max(1), shape.m.div_ceil(self.bm).max(1), shape.batch.max(1)],
            [self.threads(), 1, 1],
        )
    }
}

/// Problem size of one tiled GEMM: `batch` independent `m × n × k` products.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
}

impl GemmShape {
    /// Refuses shapes the launch limits or `i32` index math cannot hold.
    pub fn check(&self, cfg: &TileConfig, node: &str, op: &str) -> Result<(), LowerError> {
        let unsupported = |reason: String| LowerError::Unsupported { node: node.into(), op: op.into(), reason };
        if self.m == 0 || self.n == 0 || self.batch == 0 {
            return Err(unsupported("empty GEMM (a zero dimension)".into()));
        }
        if self.m.div_ceil(cfg.bm) > 65535 {
            return Err(unsupported(format!("{} rows need more than 65535 row tiles", self.m)));
        }
        if self.batch > 65535 {
            return Err(unsupported(format!("batch {} exceeds the 65535 blocks of grid.z", self.batch)));
        }
        let total = self.m as u64 * self.n as u64 * self.batch as u64;
        if total > crate::index::MAX_ELEMS as u64 || self.k as u64 > crate::index::MAX_ELEMS as u64 {
            return Err(unsupported(format!("GEMM of {total} outputs exceeds i32 index math")));
        }
        Ok(())
    }
}

/// One staged element's source: the global index to load, and a guard
/// (besides `k < K`, which the generator adds) under which it is valid;
/// where the guard fails the tile holds zero.
#[derive(Copy, Clone, Debug)]
pub struct Gather {
    pub guard: Option<Value>,
    pub index: Value,
}

/// How one GEMM operand's elements are loaded. For `A` the outer coordinate
/// is the row `m`, for `B` the column `n`.
pub struct Operand<'a> {
    /// The buffer every element comes from.
    pub buf: Param,
    /// Runs once per staged slot before the `K` loop with
    /// `(outer, z)`: `outer` clamped into `[0, extent - 1]`, `z` the batch
    /// index. Returns values the element closure needs (hoisted index parts).
    /// Must not emit anything that depends on `k`.
    #[allow(clippy::type_complexity)]
    pub outer: Box<dyn Fn(&mut KernelBuilder, Value, Value) -> Vec<Value> + 'a>,
    /// Runs inside the `K` loop: given the hoisted values and `k` (which may
    /// be ≥ `K`; the generator guards that), returns the element's index and
    /// guard. Create constants *before* the generator runs, not here, or they
    /// are re-emitted in the loop.
    #[allow(clippy::type_complexity)]
    pub element: Box<dyn Fn(&mut KernelBuilder, &[Value], Value) -> Gather + 'a>,
}

/// One element of the result, handed to the store callback under the guard
/// `m < M && n < N`.
#[derive(Copy, Clone, Debug)]
pub struct OutputElement {
    pub m: Value,
    pub n: Value,
    pub z: Value,
    /// The accumulator, of the type the GEMM accumulates in.
    pub acc: Value,
}

/// A staged slot of one operand for one thread: its element number `e`
/// (`None` when it always exists), its offset along `K` within a step, its
/// shared index and the operand's hoisted values.
struct Slot {
    active: Option<Value>,
    k_off: Value,
    shared_index: Value,
    outer: Vec<Value>,
}

/// Emits a tiled GEMM into `b`, whose launch must be `cfg.launch(&shape)`.
/// Operands are converted to `acc` as they are staged, and products are
/// accumulated in `acc` (fused multiply-adds for floats; wrapping integer
/// arithmetic for integers). `store` is called once per output element a
/// thread owns, inside the guard `m < M && n < N`; it computes the output
/// index, applies any epilogue and stores.
pub fn emit_tiled_gemm(
    b: &mut KernelBuilder,
    shape: GemmShape,
    cfg: TileConfig,
    acc_ty: Type,
    a: &Operand,
    bop: &Operand,
    mut store: impl FnMut(&mut KernelBuilder, OutputElement) -> Result<(), LowerError>,
) -> Result<(), LowerError> {
    let TileConfig { bm, bn, bk, tm, tn } = cfg;
    let threads = cfg.threads();
    let lda = bm + 1;
    let a_tile = b.shared_array(acc_ty, bk * lda);
    let b_tile = b.shared_array(acc_ty, bk * bn);

    let tid = b.thread_id(Axis::X);
    let tx_count = bn / tn;
    let tx_count_v = b.const_i32(tx_count as i32);
    let tx = b.rem(tid, tx_count_v);
    let ty = b.div(tid, tx_count_v);
    let block_col = b.block_id(Axis::X);
    let block_row = b.block_id(Axis::Y);
    let z = b.block_id(Axis::Z);
    let c_bm = b.const_i32(bm as i32);
    let c_bn = b.const_i32(bn as i32);
    let row0 = b.mul(block_row, c_bm);
    let col0 = b.mul(block_col, c_bn);
    let c_m = b.const_i32(shape.m as i32);
    let c_n = b.const_i32(shape.n as i32);
    let c_k = b.const_i32(shape.k as i32);
    let m_last = b.const_i32(shape.m as i32 - 1);
    let n_last = b.const_i32(shape.n as i32 - 1);
    let c_bk = b.const_i32(bk as i32);
    let c_lda = b.const_i32(lda as i32);
    let zero_f = b.constant(weft_kir::Scalar::from_f64(acc_ty, 0.0));

    // Staging slots of A: element e of the bm×bk tile is (row e / bk, k e % bk),
    // so consecutive threads read consecutive k (contiguous for row-major A).
    let a_slots = staging_slots(b, tid, threads, bm * bk, |b, e, active| {
        let r = b.div(e, c_bk);
        let kc = b.rem(e, c_bk);
        let row = b.add(row0, r);
        let row = b.min(row, m_last);
        let outer = (a.outer)(b, row, z);
        let sk = b.mul(kc, c_lda);
        let shared_index = b.add(sk, r);
        Slot { active, k_off: kc, shared_index, outer }
    });
    // Staging slots of B: element e of the bk×bn tile is (k e / bn, column
    // e % bn), so consecutive threads read consecutive columns.
    let b_slots = staging_slots(b, tid, threads, bk * bn, |b, e, active| {
        let r = b.div(e, c_bn);
        let c = b.rem(e, c_bn);
        let col = b.add(col0, c);
        let col = b.min(col, n_last);
        let outer = (bop.outer)(b, col, z);
        Slot { active, k_off: r, shared_index: e, outer }
    });

    // Every shared index the unrolled inner loop reads, computed once.
    let a_idx: Vec<Vec<Value>> = (0..bk)
        .map(|kk| {
            (0..tm)
                .map(|i| {
                    let off = b.const_i32((kk * lda + i * (bm / tm)) as i32);
                    b.add(ty, off)
                })
                .collect()
        })
        .collect();
    let b_idx: Vec<Vec<Value>> = (0..bk)
        .map(|kk| {
            (0..tn)
                .map(|j| {
                    let off = b.const_i32((kk * bn + j * tx_count) as i32);
                    b.add(tx, off)
                })
                .collect()
        })
        .collect();

    let acc: Vec<_> = (0..tm * tn).map(|_| b.var_init(zero_f)).collect();
    let a_ty = elem_type(b, a.buf);
    let b_ty = elem_type(b, bop.buf);

    let k_steps = shape.k.div_ceil(bk) as i32;
    b.for_const(0, k_steps, 1, |b, step| {
        let k0 = b.mul(step, c_bk);
        for slot in &a_slots {
            stage(b, a, slot, k0, c_k, a_tile, a_ty, zero_f);
        }
        for slot in &b_slots {
            stage(b, bop, slot, k0, c_k, b_tile, b_ty, zero_f);
        }
        b.barrier();
        let mut cur: Vec<Value> = acc.iter().map(|&v| b.get(v)).collect();
        for kk in 0..bk as usize {
            let av: Vec<Value> = a_idx[kk].iter().map(|&ix| b.shared_load(a_tile, ix)).collect();
            let bv: Vec<Value> = b_idx[kk].iter().map(|&ix| b.shared_load(b_tile, ix)).collect();
            for i in 0..tm as usize {
                for j in 0..tn as usize {
                    let c = &mut cur[i * tn as usize + j];
                    *c = if acc_ty.is_float() {
                        b.fma(av[i], bv[j], *c)
                    } else {
                        let p = b.mul(av[i], bv[j]);
                        b.add(p, *c)
                    };
                }
            }
        }
        for (&var, &v) in acc.iter().zip(&cur) {
            b.set(var, v);
        }
        b.barrier();
    });

    let mut result = Ok(());
    for i in 0..tm {
        let off = b.const_i32((i * (bm / tm)) as i32);
        let r = b.add(ty, off);
        let row = b.add(row0, r);
        let row_ok = b.lt(row, c_m);
        for j in 0..tn {
            let off = b.const_i32((j * tx_count) as i32);
            let c = b.add(tx, off);
            let col = b.add(col0, c);
            let col_ok = b.lt(col, c_n);
            let ok = b.and(row_ok, col_ok);
            let var = acc[(i * tn + j) as usize];
            b.if_(ok, |b| {
                let v = b.get(var);
                if result.is_ok() {
                    result = store(b, OutputElement { m: row, n: col, z, acc: v });
                }
            });
        }
    }
    result
}

fn elem_type(b: &KernelBuilder, p: Param) -> Type {
    b.kernel().params[p].ty()
}

/// Stages one element of an operand tile: `tile[slot] = guard ? buf[index] : 0`.
#[allow(clippy::too_many_arguments)]
fn stage(
    b: &mut KernelBuilder,
    op: &Operand,
    slot: &Slot,
    k0: Value,
    c_k: Value,
    tile: weft_kir::Shared,
    elem: Type,
    zero: Value,
) {
    let body = |b: &mut KernelBuilder| {
        let k = b.add(k0, slot.k_off);
        let k_ok = b.lt(k, c_k);
        let g = (op.element)(b, &slot.outer, k);
        let ok = match g.guard {
            Some(guard) => b.and(k_ok, guard),
            None => k_ok,
        };
        b.if_else(
            ok,
            |b| {
                let v = b.load(op.buf, g.index);
                let acc_ty = b.kernel().value_type(zero);
                let v = if elem == acc_ty { v } else { b.cast(acc_ty, v) };
                b.shared_store(tile, slot.shared_index, v);
            },
            |b| b.shared_store(tile, slot.shared_index, zero),
        );
    };
    match slot.active {
        Some(active) => b.if_(active, body),
        None => body(b),
    }
}

/// The error for a use of an op that lowering does not support.
pub(crate) fn unsupported(node: &weft_graph::Node, reason: impl Into<String>) -> LowerError {
    LowerError::Unsupported { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }
}

/// The step's node list: the node itself, then the fused epilogue's nodes.
pub(crate) fn step_nodes(node: &weft_graph::Node, extra: &[String], epi: &crate::Epilogue) -> Vec<String> {
    let mut v = vec![node.name.clone()];
    v.extend(extra.iter().cloned());
    v.extend(epi.nodes.iter().cloned());
    v
}

/// The staging slots of one tile of `elems` elements copied by `threads`
/// threads: slot `l` of thread `tid` copies element `e = l·threads + tid`,
/// guarded by `active` (`e < elems`) only in the last, partial round.
/// `slot` lays out what the element is.
fn staging_slots<T>(
    b: &mut KernelBuilder,
    tid: Value,
    threads: u32,
    elems: u32,
    mut slot: impl FnMut(&mut KernelBuilder, Value, Option<Value>) -> T,
) -> Vec<T> {
    (0..elems.div_ceil(threads))
        .map(|l| {
            let base = b.const_i32((l * threads) as i32);
            let e = b.add(base, tid);
            let active = ((l + 1) * threads > elems).then(|| {
                let lim = b.const_i32(elems as i32);
                b.lt(e, lim)
            });
            slot(b, e, active)
        })
        .collect()
}
