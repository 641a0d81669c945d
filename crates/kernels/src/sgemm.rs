//! Tiled SGEMM: `C[m×n] = A[m×k] · B[k×n]`, row-major `f32`.
//!
//! Each block computes a `bm × bn` tile of C. Per step of `bk` along K, the
//! block stages an `A` tile and a `B` tile in shared memory (zero-filled past
//! the matrix edges, so any shape works), synchronises, and every thread
//! accumulates a `tm × tn` register tile with FMAs. Loads are guarded by
//! `row < m && col < k`-style conjunctions computed inside the guard, which is
//! the form KIR's range analysis proves in bounds.

use weft_kir::{Access, Axis, KernelBuilder, KernelDef, LaunchShape, Type, Value};

/// Tile sizes of [`sgemm`]. Threads per block = `(bm / tm) * (bn / tn)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SgemmTiles {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl Default for SgemmTiles {
    /// 64×64 output tiles, 16-deep K steps, 4×4 outputs per thread: 256 threads.
    fn default() -> SgemmTiles {
        SgemmTiles { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }
    }
}

impl SgemmTiles {
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }
}

/// An SGEMM for static `m`, `n`, `k`: params `a` (read), `b` (read), `c` (write).
///
/// Tile sizes must divide evenly: `tm | bm`, `tn | bn`, and both tiles' element
/// counts must be multiples of the thread count (true for the defaults).
pub fn sgemm(m: u32, n: u32, k: u32, tiles: SgemmTiles) -> KernelDef {
    let SgemmTiles { bm, bn, bk, tm, tn } = tiles;
    let threads = tiles.threads();
    assert!(bm % tm == 0 && bn % tn == 0, "sgemm tiles: tm must divide bm and tn divide bn");
    assert!((bm * bk) % threads == 0 && (bk * bn) % threads == 0, "sgemm tiles: tiles must split evenly over threads");
    let grid = [n.div_ceil(bn).max(1), m.div_ceil(bm).max(1), 1];
    let mut b = KernelBuilder::new("sgemm", LaunchShape::new(grid, [threads, 1, 1]));
    let pa = b.buffer("a", Type::F32, m as u64 * k as u64, Access::Read);
    let pb = b.buffer("b", Type::F32, k as u64 * n as u64, Access::Read);
    let pc = b.buffer("c", Type::F32, m as u64 * n as u64, Access::Write);
    let a_tile = b.shared_array(Type::F32, bm * bk);
    let b_tile = b.shared_array(Type::F32, bk * bn);

    let tid = b.thread_id(Axis::X);
    let cols_of_threads = b.const_i32((bn / tn) as i32);
    let tx = b.rem(tid, cols_of_threads);
    let ty = b.div(tid, cols_of_threads);
    let block_col = b.block_id(Axis::X);
    let block_row = b.block_id(Axis::Y);
    let c_bm = b.const_i32(bm as i32);
    let c_bn = b.const_i32(bn as i32);
    let c_bk = b.const_i32(bk as i32);
    let row0 = b.mul(block_row, c_bm);
    let col0 = b.mul(block_col, c_bn);
    let c_m = b.const_i32(m as i32);
    let c_n = b.const_i32(n as i32);
    let c_k = b.const_i32(k as i32);
    let zero = b.const_f32(0.0);

    let acc: Vec<_> = (0..tm * tn).map(|_| b.var_init(zero)).collect();

    let k_steps = k.div_ceil(bk) as i32;
    b.for_const(0, k_steps, 1, |b, step| {
        let k0 = b.mul(step, c_bk);
        // Stage A[row0.., k0..] into a_tile[r * bk + c].
        stage_tile(
            b,
            tid,
            threads,
            bm * bk,
            c_bk,
            |b, r, c| {
                let row = b.add(row0, r);
                let col = b.add(k0, c);
                guarded_load(b, pa, row, c_m, col, c_k)
            },
            a_tile,
        );
        // Stage B[k0.., col0..] into b_tile[r * bn + c].
        stage_tile(
            b,
            tid,
            threads,
            bk * bn,
            c_bn,
            |b, r, c| {
                let row = b.add(k0, r);
                let col = b.add(col0, c);
                guarded_load(b, pb, row, c_k, col, c_n)
            },
            b_tile,
        );
        b.barrier();
        b.for_const(0, bk as i32, 1, |b, kk| {
            let a_vals: Vec<Value> = (0..tm)
                .map(|i| {
                    let r = tile_index(b, ty, tm, i);
                    let idx = b.mul(r, c_bk);
                    let idx = b.add(idx, kk);
                    b.shared_load(a_tile, idx)
                })
                .collect();
            let b_vals: Vec<Value> = (0..tn)
                .map(|j| {
                    let c = tile_index(b, tx, tn, j);
                    let idx = b.mul(kk, c_bn);
                    let idx = b.add(idx, c);
                    b.shared_load(b_tile, idx)
                })
                .collect();
            for i in 0..tm {
                for j in 0..tn {
                    let var = acc[(i * tn + j) as usize];
                    let cur = b.get(var);
                    let next = b.fma(a_vals[i as usize], b_vals[j as usize], cur);
                    b.set(var, next);
                }
            }
        });
        b.barrier();
    });

    for i in 0..tm {
        for j in 0..tn {
            let r = tile_index(&mut b, ty, tm, i);
            let row = b.add(row0, r);
            let c = tile_index(&mut b, tx, tn, j);
            let col = b.add(col0, c);
            let row_ok = b.lt(row, c_m);
            let col_ok = b.lt(col, c_n);
            let ok = b.and(row_ok, col_ok);
            let var = acc[(i * tn + j) as usize];
            b.if_(ok, |b| {
                let base = b.mul(row, c_n);
                let idx = b.add(base, col);
                let v = b.get(var);
                b.store(pc, idx, v);
            });
        }
    }
    b.finish()
}

/// `group * per + offset`: the row (or column) of a thread's register tile.
fn tile_index(b: &mut KernelBuilder, group: Value, per: u32, offset: u32) -> Value {
    let c_per = b.const_i32(per as i32);
    let base = b.mul(group, c_per);
    let off = b.const_i32(offset as i32);
    b.add(base, off)
}

/// Every thread copies `elems / threads` elements of a tile of `width`
/// columns into `tile`, element `e = l * threads + tid` going to
/// `tile[e]` from `(e / width, e % width)` via `load`.
fn stage_tile(
    b: &mut KernelBuilder,
    tid: Value,
    threads: u32,
    elems: u32,
    width: Value,
    load: impl Fn(&mut KernelBuilder, Value, Value) -> Value,
    tile: weft_kir::Shared,
) {
    for l in 0..elems / threads {
        let base = b.const_i32((l * threads) as i32);
        let e = b.add(base, tid);
        let r = b.div(e, width);
        let c = b.rem(e, width);
        let v = load(b, r, c);
        b.shared_store(tile, e, v);
    }
}

/// `row < rows && col < cols ? buf[row * cols + col] : 0`, with the index
/// computed under the guard so it is provably in bounds.
fn guarded_load(
    b: &mut KernelBuilder,
    buf: weft_kir::Param,
    row: Value,
    rows: Value,
    col: Value,
    cols: Value,
) -> Value {
    let zero = b.const_f32(0.0);
    let out = b.var_init(zero);
    let row_ok = b.lt(row, rows);
    let col_ok = b.lt(col, cols);
    let ok = b.and(row_ok, col_ok);
    b.if_(ok, |b| {
        let base = b.mul(row, cols);
        let idx = b.add(base, col);
        let v = b.load(buf, idx);
        b.set(out, v);
    });
    b.get(out)
}
