//! Shared memory, barriers and warp shuffles.

use weft_interp::Interpreter;
use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, ShuffleKind, Type};

use crate::common::{i32s, out_i32, run, zeros};

#[test]
fn block_reverse_through_shared_memory() {
    let (blocks, threads) = (3u32, 128u32);
    let n = (blocks * threads) as usize;
    let mut b = KernelBuilder::new("reverse", LaunchShape::linear(blocks, threads));
    let x = b.buffer("x", Type::I32, n as u64, Access::Read);
    let o = b.buffer("out", Type::I32, n as u64, Access::Write);
    let tile = b.shared_array(Type::I32, threads);
    let t = b.thread_id(Axis::X);
    let g = b.global_thread_id(Axis::X);
    let v = b.load(x, g);
    b.shared_store(tile, t, v);
    b.barrier();
    let last = b.const_i32(threads as i32 - 1);
    let mirror = b.sub(last, t);
    let r = b.shared_load(tile, mirror);
    b.store(o, g, r);
    let k = b.finish();
    let xs: Vec<i32> = (0..n as i32).map(|i| i * 7 - 3).collect();
    let mut args = vec![i32s(&xs), zeros(Type::I32, n)];
    run(&k, &mut args).unwrap();
    let want: Vec<i32> = xs.chunks(threads as usize).flat_map(|c| c.iter().rev().copied()).collect();
    assert_eq!(out_i32(&args, 1), want);
}

#[test]
fn shared_memory_starts_zeroed_in_every_block() {
    // Each block reads a slot no thread wrote before adding its own id.
    let mut b = KernelBuilder::new("zeroed", LaunchShape::linear(8, 32));
    let o = b.buffer("out", Type::I32, 8, Access::Write);
    let s = b.shared_array(Type::I32, 1);
    let t = b.thread_id(Axis::X);
    let zero = b.const_i32(0);
    let first = b.eq(t, zero);
    b.if_(first, |b| {
        let old = b.shared_load(s, zero);
        let bid = b.block_id(Axis::X);
        let v = b.add(old, bid);
        b.shared_store(s, zero, v);
        let r = b.shared_load(s, zero);
        b.store(o, bid, r);
    });
    let mut args = vec![zeros(Type::I32, 8)];
    // One worker, so one block's scratch is reused by the next.
    Interpreter::new().threads(1).run(&b.finish(), &mut args).unwrap();
    assert_eq!(out_i32(&args, 0), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_barrier_under_uniform_control_is_fine() {
    let mut b = KernelBuilder::new("uniform_barrier", LaunchShape::linear(2, 64));
    let bid = b.block_id(Axis::X);
    let zero = b.const_i32(0);
    let first = b.eq(bid, zero);
    b.if_(first, |b| b.barrier());
    b.for_const(0, 3, 1, |b, _| b.barrier());
    run(&b.finish(), &mut []).unwrap();
}

/// The reference for one shuffle, straight from the KIR spec.
fn reference(kind: ShuffleKind, width: i64, n: i64, values: &[i32], operand: i64, l: i64) -> i32 {
    let (base, lane) = (l - l % 32, l % 32);
    let seg = lane / width * width;
    let src = match kind {
        ShuffleKind::Idx => seg + operand.rem_euclid(width),
        ShuffleKind::Up => lane - operand,
        ShuffleKind::Down => lane + operand,
        ShuffleKind::Xor => lane ^ operand,
    };
    if src < seg || src >= seg + width || base + src >= n {
        values[l as usize]
    } else {
        values[(base + src) as usize]
    }
}

#[test]
fn every_shuffle_kind_and_width() {
    for threads in [64u32, 96] {
        for kind in ShuffleKind::ALL {
            for width in [32u32, 16, 8, 4, 1] {
                for operand in [0, 1, 3, 5, 17, -2] {
                    let mut b = KernelBuilder::new("shfl", LaunchShape::linear(1, threads));
                    let x = b.buffer("x", Type::I32, threads as u64, Access::Read);
                    let o = b.buffer("out", Type::I32, threads as u64, Access::Write);
                    let t = b.thread_id(Axis::X);
                    let v = b.load(x, t);
                    let op = b.const_i32(operand);
                    let r = b.shuffle(kind, v, op, width);
                    b.store(o, t, r);
                    let k = b.finish();
                    let xs: Vec<i32> = (0..threads as i32).map(|i| 1000 + i * 3).collect();
                    let mut args = vec![i32s(&xs), zeros(Type::I32, threads as usize)];
                    run(&k, &mut args).unwrap();
                    let want: Vec<i32> = (0..threads as i64)
                        .map(|l| reference(kind, width as i64, threads as i64, &xs, operand as i64, l))
                        .collect();
                    assert_eq!(out_i32(&args, 1), want, "{} width {width} operand {operand}", kind.name());
                }
            }
        }
    }
}

#[test]
fn shuffle_operands_may_differ_per_lane() {
    // idx with operand = 31 - lane: a warp reversal.
    let mut b = KernelBuilder::new("shfl_rev", LaunchShape::linear(1, 64));
    let o = b.buffer("out", Type::I32, 64, Access::Write);
    let t = b.thread_id(Axis::X);
    let lane = b.lane_id();
    let c31 = b.const_i32(31);
    let src = b.sub(c31, lane);
    let r = b.shuffle(ShuffleKind::Idx, t, src, 32);
    b.store(o, t, r);
    let mut args = vec![zeros(Type::I32, 64)];
    run(&b.finish(), &mut args).unwrap();
    let want: Vec<i32> = (0..64).map(|t| t - t % 32 + (31 - t % 32)).collect();
    assert_eq!(out_i32(&args, 0), want);
}

#[test]
fn block_sum_via_shuffles_and_shared_memory() {
    let (blocks, threads) = (5u32, 256u32);
    let n = (blocks * threads) as usize;
    let mut b = KernelBuilder::new("block_sum", LaunchShape::linear(blocks, threads));
    let x = b.buffer("x", Type::I32, n as u64, Access::Read);
    let o = b.buffer("out", Type::I32, blocks as u64, Access::Write);
    let partial = b.shared_array(Type::I32, threads / 32);
    let t = b.thread_id(Axis::X);
    let g = b.global_thread_id(Axis::X);
    let lane = b.lane_id();
    let c32 = b.const_i32(32);
    let warp = b.div(t, c32);
    let zero = b.const_i32(0);
    let mut v = b.load(x, g);
    for off in [16, 8, 4, 2, 1] {
        let other = b.shuffle_down(v, off);
        v = b.add(v, other);
    }
    let lane0 = b.eq(lane, zero);
    b.if_(lane0, |b| b.shared_store(partial, warp, v));
    b.barrier();
    // Every warp reduces the partials (the verifier allows shuffles only under
    // block-uniform control); thread 0 stores.
    let nwarps = b.const_i32((threads / 32) as i32);
    let has = b.lt(lane, nwarps);
    let safe = b.select(has, lane, zero);
    let loaded = b.shared_load(partial, safe);
    let mut s = b.select(has, loaded, zero);
    for mask in [16, 8, 4, 2, 1] {
        let other = b.shuffle_xor(s, mask);
        s = b.add(s, other);
    }
    let t0 = b.eq(t, zero);
    b.if_(t0, |b| {
        let bid = b.block_id(Axis::X);
        b.store(o, bid, s);
    });
    let k = b.finish();
    let xs: Vec<i32> = (0..n as i32).map(|i| (i * 37) % 101 - 50).collect();
    let mut args = vec![i32s(&xs), zeros(Type::I32, blocks as usize)];
    run(&k, &mut args).unwrap();
    let want: Vec<i32> = xs.chunks(threads as usize).map(|c| c.iter().sum()).collect();
    assert_eq!(out_i32(&args, 1), want);
}
