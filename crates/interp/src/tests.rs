//! Tests of the interpreter's runtime guards.
//!
//! The verifier rejects these kernels statically (divergent barriers and
//! shuffles, partial warps, ill-typed instructions, impossible launches), so
//! the public `run` never reaches the guards for them. They are defence in
//! depth, and these tests reach them by running builder-made (structurally
//! sound) kernels without the verifier.

use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Type};

use crate::{ExecStats, InterpError, Interpreter};

fn run_unverified(kernel: &KernelDef, args: &mut [ArgValue]) -> Result<ExecStats, InterpError> {
    weft_kir::check_args(kernel, args)?;
    Interpreter::new().threads(2).run_verified(kernel, args)
}

fn inst_named(kernel: &KernelDef, mnemonic: &str) -> weft_kir::Inst {
    kernel.insts.iter().find(|(_, d)| d.mnemonic() == mnemonic).map(|(i, _)| i).unwrap()
}

#[test]
fn a_barrier_under_divergent_control_is_an_error() {
    let mut b = KernelBuilder::new("bad_barrier", LaunchShape::linear(2, 64));
    let t = b.thread_id(Axis::X);
    let ten = b.const_i32(10);
    let low = b.lt(t, ten);
    b.if_(low, |b| b.barrier());
    let k = b.finish();
    assert!(matches!(Interpreter::new().run(&k, &mut []), Err(InterpError::Verify(_))));
    let err = run_unverified(&k, &mut []).unwrap_err();
    assert!(
        matches!(err, InterpError::DivergentBarrier { arrived: 10, expected: 64, block: [0, 0, 0], .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    let bar = inst_named(&k, "barrier").to_string();
    assert!(msg.contains("bad_barrier") && msg.contains(&bar) && msg.contains("10 of 64"), "{msg}");
}

#[test]
fn a_barrier_in_a_loop_with_per_lane_trip_counts_is_an_error() {
    let mut b = KernelBuilder::new("loop_barrier", LaunchShape::linear(1, 32));
    let t = b.thread_id(Axis::X);
    let zero = b.const_i32(0);
    let four = b.const_i32(4);
    let trips = b.rem(t, four);
    b.for_range(zero, trips, 1, |b, _| b.barrier());
    let err = run_unverified(&b.finish(), &mut []).unwrap_err();
    assert!(matches!(err, InterpError::DivergentBarrier { arrived: 24, expected: 32, .. }), "{err:?}");
}

#[test]
fn a_shuffle_with_part_of_a_warp_inactive_is_an_error() {
    let mut b = KernelBuilder::new("bad_shuffle", LaunchShape::linear(1, 64));
    let t = b.thread_id(Axis::X);
    let c40 = b.const_i32(40);
    let low = b.lt(t, c40);
    b.if_(low, |b| {
        b.shuffle_xor(t, 1);
    });
    let k = b.finish();
    let err = run_unverified(&k, &mut []).unwrap_err();
    assert!(matches!(err, InterpError::DivergentShuffle { warp: 1, active: 8, expected: 32, .. }), "{err:?}");
    assert!(err.to_string().contains(&inst_named(&k, "shuffle").to_string()), "{err}");
}

#[test]
fn warp_uniform_shuffles_run_even_though_the_verifier_is_stricter() {
    // Only warp 1 shuffles: every lane of it is active, so the shuffle is legal.
    let mut b = KernelBuilder::new("warp_uniform", LaunchShape::linear(1, 64));
    let o = b.buffer("out", Type::I32, 64, Access::Write);
    let t = b.thread_id(Axis::X);
    let c32 = b.const_i32(32);
    let high = b.ge(t, c32);
    b.if_(high, |b| {
        let r = b.shuffle_xor(t, 1);
        b.store(o, t, r);
    });
    let mut args = [ArgValue::Buffer(HostBuffer::zeros(Type::I32, 64))];
    run_unverified(&b.finish(), &mut args).unwrap();
    let got: Vec<i64> = (0..64).map(|i| args[0].as_buffer().unwrap().get(i).as_i64().unwrap()).collect();
    let want: Vec<i64> = (0..64).map(|t| if t >= 32 { t ^ 1 } else { 0 }).collect();
    assert_eq!(got, want);
}

#[test]
fn shuffles_in_a_partial_last_warp_keep_own_values_past_the_block() {
    let mut b = KernelBuilder::new("partial_warp", LaunchShape::linear(1, 40));
    let o = b.buffer("out", Type::I32, 40, Access::Write);
    let t = b.thread_id(Axis::X);
    let r = b.shuffle_down(t, 4);
    b.store(o, t, r);
    let mut args = [ArgValue::Buffer(HostBuffer::zeros(Type::I32, 40))];
    run_unverified(&b.finish(), &mut args).unwrap();
    let got: Vec<i64> = (0..40).map(|i| args[0].as_buffer().unwrap().get(i).as_i64().unwrap()).collect();
    let want: Vec<i64> = (0..40).map(|t| if t % 32 + 4 < 32 && t + 4 < 40 { t + 4 } else { t }).collect();
    assert_eq!(got, want);
}

#[test]
fn ill_typed_instructions_are_errors_not_panics() {
    let mut b = KernelBuilder::new("ill_typed", LaunchShape::linear(1, 8));
    let x = b.buffer("x", Type::F32, 8, Access::Read);
    let t = b.thread_id(Axis::X);
    let f = b.load(x, t);
    b.rem(f, f);
    let mut args = [ArgValue::Buffer(HostBuffer::from_f32(&[1.0; 8]))];
    let err = run_unverified(&b.finish(), &mut args).unwrap_err();
    assert!(matches!(err, InterpError::Unsupported { mnemonic: "rem", .. }), "{err:?}");

    let mut b = KernelBuilder::new("float_index", LaunchShape::linear(1, 8));
    let x = b.buffer("x", Type::F32, 8, Access::Read);
    let one = b.const_f32(1.0);
    b.load(x, one);
    let err = run_unverified(&b.finish(), &mut args).unwrap_err();
    assert!(matches!(err, InterpError::Unsupported { mnemonic: "load", .. }), "{err:?}");

    let mut b = KernelBuilder::new("bad_step", LaunchShape::linear(1, 8));
    b.for_const(0, 4, 0, |_, _| {});
    let err = run_unverified(&b.finish(), &mut []).unwrap_err();
    assert!(matches!(err, InterpError::Unsupported { mnemonic: "for", .. }), "{err:?}");
}

#[test]
fn writes_to_read_only_buffers_are_refused() {
    let mut b = KernelBuilder::new("ro_store", LaunchShape::linear(1, 8));
    let x = b.buffer("x", Type::F32, 8, Access::Read);
    let t = b.thread_id(Axis::X);
    let v = b.const_f32(2.0);
    b.store(x, t, v);
    let mut args = [ArgValue::Buffer(HostBuffer::from_f32(&[1.0; 8]))];
    let err = run_unverified(&b.finish(), &mut args).unwrap_err();
    assert!(matches!(&err, InterpError::NotWritable { param, .. } if param == "x"), "{err:?}");
    assert_eq!(args[0].as_buffer().unwrap().to_f32_vec(), vec![1.0; 8]);
}

#[test]
fn launch_limits_are_the_targets() {
    let k = KernelBuilder::new("wide", LaunchShape::linear(1, 1024)).finish();
    Interpreter::new().run(&k, &mut []).expect("1024 threads fit sm_90");
    let small = weft_kir::Target { max_threads_per_block: 512, ..weft_kir::Target::sm_90() };
    let err = Interpreter::new().threads(1).with_target(small).run(&k, &mut []).unwrap_err();
    assert!(err.to_string().contains("at most 512"), "{err}");
}

#[test]
fn impossible_launch_shapes_are_errors() {
    for (grid, block) in [([1, 1, 1], [2048, 1, 1]), ([0, 1, 1], [32, 1, 1]), ([1, 1, 1], [32, 0, 1])] {
        let k = KernelBuilder::new("bad_launch", LaunchShape::new(grid, block)).finish();
        let err = run_unverified(&k, &mut []).unwrap_err();
        assert!(matches!(err, InterpError::InvalidLaunch { .. }), "{err:?}");
    }
}
