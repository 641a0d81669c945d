//! Structured control flow under divergence: loops whose bounds differ per
//! lane, if/else masks, and local variables carrying values across them.

use weft_interp::InterpError;
use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};

use crate::common::{find_inst, i32s, out, out_i32, run, zeros};

#[test]
fn vector_add_with_a_ragged_tail() {
    let n = 1000; // 4 blocks of 256: the last has 24 idle threads
    let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(4, 256));
    let x = b.buffer("x", Type::F32, n, Access::Read);
    let y = b.buffer("y", Type::F32, n, Access::Read);
    let o = b.buffer("out", Type::F32, n, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let limit = b.const_i32(n as i32);
    let ok = b.lt(i, limit);
    b.if_(ok, |b| {
        let xi = b.load(x, i);
        let yi = b.load(y, i);
        let s = b.add(xi, yi);
        b.store(o, i, s);
    });
    let k = b.finish();
    let xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let ys: Vec<f32> = (0..n).map(|i| 1.0 / (i as f32 + 1.0)).collect();
    let mut args = vec![crate::common::f32s(&xs), crate::common::f32s(&ys), zeros(Type::F32, n as usize)];
    let stats = run(&k, &mut args).unwrap();
    let want: Vec<f32> = xs.iter().zip(&ys).map(|(a, b)| a + b).collect();
    assert_eq!(out(&args, 2).to_f32_vec(), want);
    assert_eq!(stats.blocks, 4);
    assert!(stats.thread_insts > 1024 * 6, "{stats:?}");
}

#[test]
fn nested_loops_with_bounds_that_differ_per_lane() {
    // out[t] = sum over i in 0..t%9, j in i..(t*5)%11 (step 2) of i*j + 1
    let threads = 96;
    let mut b = KernelBuilder::new("nested", LaunchShape::linear(2, threads));
    let o = b.buffer("out", Type::I32, 2 * threads as u64, Access::Write);
    let t = b.global_thread_id(Axis::X);
    let zero = b.const_i32(0);
    let acc = b.var_init(zero);
    let nine = b.const_i32(9);
    let five = b.const_i32(5);
    let eleven = b.const_i32(11);
    let outer_end = b.rem(t, nine);
    let t5 = b.mul(t, five);
    let inner_end = b.rem(t5, eleven);
    b.for_range(zero, outer_end, 1, |b, i| {
        b.for_range(i, inner_end, 2, |b, j| {
            let ij = b.mul(i, j);
            let one = b.const_i32(1);
            let term = b.add(ij, one);
            let cur = b.get(acc);
            let next = b.add(cur, term);
            b.set(acc, next);
        });
    });
    let v = b.get(acc);
    b.store(o, t, v);
    let k = b.finish();
    let mut args = vec![zeros(Type::I32, 2 * threads as usize)];
    run(&k, &mut args).unwrap();
    let want: Vec<i32> = (0..2 * threads as i32)
        .map(|t| {
            let mut acc = 0;
            for i in 0..t % 9 {
                for j in (i..(t * 5) % 11).step_by(2) {
                    acc += i * j + 1;
                }
            }
            acc
        })
        .collect();
    assert_eq!(out_i32(&args, 0), want);
}

#[test]
fn loops_over_u32_and_i64_indices() {
    let mut b = KernelBuilder::new("wide_loops", LaunchShape::linear(1, 4));
    let o = b.buffer("out", Type::I64, 4, Access::Write);
    let t = b.thread_id(Axis::X);
    let t64 = b.cast(Type::I64, t);
    let big = b.const_i64(1 << 40);
    let start = b.add(big, t64);
    let end = b.const_i64((1 << 40) + 10);
    let zero = b.const_i64(0);
    let acc = b.var_init(zero);
    b.for_range(start, end, 3, |b, i| {
        let cur = b.get(acc);
        let next = b.add(cur, i);
        b.set(acc, next);
    });
    let tu = b.cast(Type::U32, t);
    let nine = b.const_u32(u32::MAX);
    let ustart = b.sub(nine, tu); // u32::MAX - t .. u32::MAX: t iterations, no wrap
    b.for_range(ustart, nine, 1, |b, _| {
        let cur = b.get(acc);
        let one = b.const_i64(1);
        let next = b.add(cur, one);
        b.set(acc, next);
    });
    let v = b.get(acc);
    b.store(o, t, v);
    let k = b.finish();
    let mut args = vec![zeros(Type::I64, 4)];
    run(&k, &mut args).unwrap();
    let got: Vec<i64> = (0..4).map(|i| out(&args, 0).get(i).as_i64().unwrap()).collect();
    let want: Vec<i64> = (0..4i64).map(|t| ((1 << 40) + t..(1 << 40) + 10).step_by(3).sum::<i64>() + t).collect();
    assert_eq!(got, want);
}

#[test]
fn if_else_masks_nest() {
    // out[t] = t%3==0 ? 2t : (t%2==0 ? -t : t+100), with the inner choice in the else arm.
    let threads = 70;
    let mut b = KernelBuilder::new("branches", LaunchShape::linear(1, threads));
    let o = b.buffer("out", Type::I32, threads as u64, Access::Write);
    let t = b.thread_id(Axis::X);
    let three = b.const_i32(3);
    let two = b.const_i32(2);
    let zero = b.const_i32(0);
    let m3 = b.rem(t, three);
    let is3 = b.eq(m3, zero);
    b.if_else(
        is3,
        |b| {
            let v = b.mul(t, two);
            b.store(o, t, v);
        },
        |b| {
            let m2 = b.rem(t, two);
            let even = b.eq(m2, zero);
            b.if_else(
                even,
                |b| {
                    let v = b.neg(t);
                    b.store(o, t, v);
                },
                |b| {
                    let hundred = b.const_i32(100);
                    let v = b.add(t, hundred);
                    b.store(o, t, v);
                },
            );
        },
    );
    let k = b.finish();
    let mut args = vec![zeros(Type::I32, threads as usize)];
    run(&k, &mut args).unwrap();
    let want: Vec<i32> = (0..threads as i32)
        .map(|t| {
            if t % 3 == 0 {
                2 * t
            } else if t % 2 == 0 {
                -t
            } else {
                t + 100
            }
        })
        .collect();
    assert_eq!(out_i32(&args, 0), want);
}

#[test]
fn a_var_set_in_one_arm_keeps_its_value_in_the_other_lanes() {
    let threads = 40;
    let mut b = KernelBuilder::new("var_merge", LaunchShape::linear(1, threads));
    let o = b.buffer("out", Type::F32, threads as u64, Access::Write);
    let t = b.thread_id(Axis::X);
    let init = b.const_f32(-1.0);
    let acc = b.var_init(init);
    let ten = b.const_i32(10);
    let small = b.lt(t, ten);
    b.if_(small, |b| {
        let tf = b.cast(Type::F32, t);
        let half = b.const_f32(0.5);
        let v = b.mul(tf, half);
        b.set(acc, v);
    });
    let v = b.get(acc);
    b.store(o, t, v);
    let k = b.finish();
    let mut args = vec![zeros(Type::F32, threads as usize)];
    run(&k, &mut args).unwrap();
    let want: Vec<f32> = (0..threads).map(|t| if t < 10 { t as f32 * 0.5 } else { -1.0 }).collect();
    assert_eq!(out(&args, 0).to_f32_vec(), want);
}

#[test]
fn reading_a_var_no_lane_wrote_is_an_error() {
    let mut b = KernelBuilder::new("uninit", LaunchShape::linear(1, 32));
    let o = b.buffer("out", Type::I32, 32, Access::Write);
    let t = b.thread_id(Axis::X);
    let x = b.var(Type::I32);
    let four = b.const_i32(4);
    let low = b.lt(t, four);
    b.if_(low, |b| b.set(x, t));
    let v = b.get(x);
    b.store(o, t, v);
    let k = b.finish();
    let err = run(&k, &mut [zeros(Type::I32, 32)]).unwrap_err();
    let get = find_inst(&k, "var_get");
    assert!(matches!(err, InterpError::UninitializedVar { thread: [4, 0, 0], .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{get} `var_get`")), "{err}");
    assert!(err.to_string().contains(&x.to_string()), "{err}");
    // The same read is fine when only the lanes that wrote it read it.
    let mut b = KernelBuilder::new("guarded", LaunchShape::linear(1, 32));
    let o = b.buffer("out", Type::I32, 32, Access::Write);
    let t = b.thread_id(Axis::X);
    let x = b.var(Type::I32);
    let four = b.const_i32(4);
    let low = b.lt(t, four);
    b.if_(low, |b| {
        b.set(x, t);
        let v = b.get(x);
        b.store(o, t, v);
    });
    let mut args = vec![i32s(&[9; 32])];
    run(&b.finish(), &mut args).unwrap();
    assert_eq!(&out_i32(&args, 0)[..6], &[0, 1, 2, 3, 9, 9]);
}
