//! Launch shapes, special registers, scalar parameters, statistics and
//! determinism across worker counts.

use weft_interp::Interpreter;
use weft_kir::{Access, ArgValue, Axis, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};

use crate::common::{f32s, out, out_i32, run, zeros};

/// Every thread writes a code of its block and thread ids at its global linear index.
fn id_kernel(grid: [u32; 3], block: [u32; 3]) -> KernelDef {
    let shape = LaunchShape::new(grid, block);
    let total = shape.total_threads();
    let mut b = KernelBuilder::new("ids", shape);
    let o = b.buffer("out", Type::I32, total, Access::Write);
    let lanes = b.buffer("lanes", Type::I32, total, Access::Write);
    let mut code = b.const_i32(0);
    let mut scale = 1;
    for s in [Axis::X, Axis::Y, Axis::Z].map(|a| (a, true)).into_iter().chain(Axis::ALL.map(|a| (a, false))) {
        let v = if s.1 { b.block_id(s.0) } else { b.thread_id(s.0) };
        let c = b.const_i32(scale);
        let term = b.mul(v, c);
        code = b.add(code, term);
        scale *= 10;
    }
    // linear = ((bz*gy + by)*gx + bx) * tpb + (tz*by_dim + ty)*bx_dim + tx
    let mut block_lin = b.block_id(Axis::Z);
    for a in [Axis::Y, Axis::X] {
        let dim = b.grid_dim(a);
        let id = b.block_id(a);
        let m = b.mul(block_lin, dim);
        block_lin = b.add(m, id);
    }
    let mut thread_lin = b.thread_id(Axis::Z);
    for a in [Axis::Y, Axis::X] {
        let dim = b.block_dim(a);
        let id = b.thread_id(a);
        let m = b.mul(thread_lin, dim);
        thread_lin = b.add(m, id);
    }
    let tpb = b.const_i32(shape.threads_per_block() as i32);
    let base = b.mul(block_lin, tpb);
    let g = b.add(base, thread_lin);
    b.store(o, g, code);
    let lane = b.lane_id();
    b.store(lanes, g, lane);
    b.finish()
}

#[test]
fn two_and_three_dimensional_launches() {
    for (grid, block) in [([3, 2, 2], [4, 3, 2]), ([2, 3, 1], [8, 5, 1]), ([1, 1, 4], [2, 2, 16])] {
        let k = id_kernel(grid, block);
        let total = k.launch.total_threads() as usize;
        let mut args = vec![zeros(Type::I32, total), zeros(Type::I32, total)];
        let stats = run(&k, &mut args).unwrap();
        assert_eq!(stats.blocks, k.launch.num_blocks());
        let mut want = vec![0; total];
        let mut want_lanes = vec![0; total];
        let tpb = k.launch.threads_per_block() as usize;
        for bz in 0..grid[2] {
            for by in 0..grid[1] {
                for bx in 0..grid[0] {
                    for tz in 0..block[2] {
                        for ty in 0..block[1] {
                            for tx in 0..block[0] {
                                let blin = ((bz * grid[1] + by) * grid[0] + bx) as usize;
                                let tlin = ((tz * block[1] + ty) * block[0] + tx) as usize;
                                want[blin * tpb + tlin] =
                                    (bx + 10 * by + 100 * bz + 1000 * tx + 10000 * ty + 100000 * tz) as i32;
                                want_lanes[blin * tpb + tlin] = (tlin % 32) as i32;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(out_i32(&args, 0), want, "grid {grid:?} block {block:?}");
        assert_eq!(out_i32(&args, 1), want_lanes, "grid {grid:?} block {block:?}");
    }
}

/// Per-thread float recurrences and a per-block sequential sum through
/// shared memory: plenty of rounding for any scheduling dependence to show.
fn busy_kernel(blocks: u32) -> KernelDef {
    let threads = 128;
    let n = (blocks * threads) as u64;
    let mut b = KernelBuilder::new("busy", LaunchShape::linear(blocks, threads));
    let x = b.buffer("x", Type::F32, n, Access::Read);
    let scale = b.scalar_param("scale", Type::F32);
    let o = b.buffer("out", Type::F32, n, Access::ReadWrite);
    let sums = b.buffer("sums", Type::F32, blocks as u64, Access::Write);
    let part = b.shared_array(Type::F32, threads);
    let g = b.global_thread_id(Axis::X);
    let t = b.thread_id(Axis::X);
    let s = b.param(scale);
    let x0 = b.load(x, g);
    let acc = b.var_init(x0);
    let seven = b.const_i32(7);
    let trips = b.rem(g, seven);
    let zero = b.const_i32(0);
    b.for_range(zero, trips, 1, |b, _| {
        let v = b.get(acc);
        let e = b.exp(v);
        let th = b.tanh(e);
        let next = b.fma(th, s, v);
        b.set(acc, next);
    });
    let v = b.get(acc);
    let prev = b.load(o, g);
    let w = b.add(prev, v);
    b.store(o, g, w);
    b.shared_store(part, t, v);
    b.barrier();
    let is0 = b.eq(t, zero);
    b.if_(is0, |b| {
        let z = b.const_f32(0.0);
        let sum = b.var_init(z);
        let end = b.const_i32(threads as i32);
        b.for_range(zero, end, 1, |b, j| {
            let p = b.shared_load(part, j);
            let cur = b.get(sum);
            let next = b.add(cur, p);
            b.set(sum, next);
        });
        let bid = b.block_id(Axis::X);
        let total = b.get(sum);
        b.store(sums, bid, total);
    });
    b.finish()
}

#[test]
fn results_are_identical_on_one_and_many_workers() {
    let blocks = 37;
    let k = busy_kernel(blocks);
    let n = (blocks * 128) as usize;
    let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let results: Vec<Vec<ArgValue>> = [Some(1), Some(4), Some(3), None]
        .into_iter()
        .map(|threads| {
            let interp = match threads {
                Some(t) => Interpreter::new().threads(t),
                None => Interpreter::new(),
            };
            let mut args = vec![
                f32s(&xs),
                ArgValue::Scalar(Scalar::F32(0.37)),
                f32s(&vec![0.25; n]),
                zeros(Type::F32, blocks as usize),
            ];
            interp.run(&k, &mut args).unwrap();
            args
        })
        .collect();
    for r in &results[1..] {
        assert_eq!(out(r, 2).bytes(), out(&results[0], 2).bytes());
        assert_eq!(out(r, 3).bytes(), out(&results[0], 3).bytes());
    }
    // And the per-block sums are the sequential sums of the outputs' increments.
    let o = out(&results[0], 2).to_f32_vec();
    let sums = out(&results[0], 3).to_f32_vec();
    for (blk, chunk) in o.chunks(128).enumerate() {
        let want = chunk.iter().fold(0.0f32, |s, v| s + (v - 0.25));
        assert!((sums[blk] - want).abs() <= 1e-3 * want.abs().max(1.0), "block {blk}: {} vs {want}", sums[blk]);
    }
}

#[test]
fn scalar_parameters_reach_every_thread() {
    let mut b = KernelBuilder::new("axpy", LaunchShape::linear(2, 32));
    let a = b.scalar_param("a", Type::F32);
    let x = b.buffer("x", Type::F32, 64, Access::Read);
    let y = b.buffer("y", Type::F32, 64, Access::ReadWrite);
    let k64 = b.scalar_param("k", Type::I64);
    let i = b.global_thread_id(Axis::X);
    let av = b.param(a);
    let xv = b.load(x, i);
    let yv = b.load(y, i);
    let r = b.fma(av, xv, yv);
    let kv = b.param(k64);
    let kf = b.cast(Type::F32, kv);
    let r = b.add(r, kf);
    b.store(y, i, r);
    let k = b.finish();
    let xs: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let mut args =
        vec![ArgValue::Scalar(Scalar::F32(0.5)), f32s(&xs), f32s(&[1.0; 64]), ArgValue::Scalar(Scalar::I64(-3))];
    run(&k, &mut args).unwrap();
    let want: Vec<f32> = xs.iter().map(|x| 0.5f32.mul_add(*x, 1.0) - 3.0).collect();
    assert_eq!(out(&args, 2).to_f32_vec(), want);
}

#[test]
fn thread_instructions_count_active_lanes() {
    // 3 top-level instructions for 64 lanes, then 2 in an arm for 10 lanes.
    let mut b = KernelBuilder::new("count", LaunchShape::linear(3, 64));
    let t = b.thread_id(Axis::X);
    let ten = b.const_i32(10);
    let low = b.lt(t, ten);
    b.if_(low, |b| {
        let one = b.const_i32(1);
        b.add(t, one);
    });
    let stats = Interpreter::new().threads(2).run(&b.finish(), &mut []).unwrap();
    assert_eq!(stats.blocks, 3);
    assert_eq!(stats.thread_insts, 3 * (4 * 64 + 2 * 10));
}
