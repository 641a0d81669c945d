//! The GPU executor end to end: a vector add through GpuExecutor.
//!
//! Skips (printing why) without a GPU; fails instead under WEFT_REQUIRE_GPU=1.

use std::sync::Arc;

use weft::gpu::GpuExecutor;
use weft::pack::{run_kernel, Executor};
use weft_cuda::CudaError;
use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};

fn vector_add_scaled(n: u64) -> KernelDef {
    let mut b = KernelBuilder::new("vector_add_scaled", LaunchShape::linear(n.div_ceil(128) as u32, 128));
    let x = b.buffer("x", Type::F32, n, Access::Read);
    let y = b.buffer("y", Type::F32, n, Access::Read);
    let out = b.buffer("out", Type::F32, n, Access::Write);
    let scale = b.scalar_param("scale", Type::F32);
    let i = b.global_thread_id(Axis::X);
    let limit = b.const_i32(n as i32);
    let in_range = b.lt(i, limit);
    b.if_(in_range, |b| {
        let xi = b.load(x, i);
        let yi = b.load(y, i);
        let s = b.param(scale);
        let sy = b.mul(yi, s);
        let sum = b.add(xi, sy);
        b.store(out, i, sum);
    });
    b.finish()
}

#[test]
fn vector_add_on_the_gpu_matches_expected_values() {
    if weft_cuda::require_gpu_or_skip("vector_add_on_the_gpu_matches_expected_values").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("a GPU was probed, so the executor must start");
    let n = 1000;
    let xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let ys: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let kernel = Arc::new(vector_add_scaled(n as u64));
    let mut args = vec![
        ArgValue::Buffer(HostBuffer::from_f32(&xs)),
        ArgValue::Buffer(HostBuffer::from_f32(&ys)),
        ArgValue::Buffer(HostBuffer::zeros(Type::F32, n)),
        ArgValue::Scalar(Scalar::F32(3.0)),
    ];
    run_kernel(&mut exec, &kernel, &mut args).unwrap();
    let out = args[2].as_buffer().unwrap().to_f32_vec();
    for i in 0..n {
        let expected = xs[i] + ys[i] * 3.0;
        assert_eq!(out[i].to_bits(), expected.to_bits(), "element {i}: {} vs {expected}", out[i]);
    }
    // Read-only inputs come back unchanged; a second run hits the caches.
    assert_eq!(args[0].as_buffer().unwrap().to_f32_vec(), xs);
    run_kernel(&mut exec, &kernel, &mut args).unwrap();
    assert_eq!(exec.compiler().stats().nvrtc_invocations + exec.compiler().stats().disk_hits, 1);
}

#[test]
fn gpu_executor_without_a_gpu_is_a_typed_error() {
    match GpuExecutor::new() {
        Ok(exec) => assert_eq!(exec.name(), "cuda"),
        Err(CudaError::NoDevice { reason, .. }) => assert!(reason.contains("CPU interpreter"), "{reason}"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
