//! Faults on a real GPU: a kernel that writes far outside every allocation
//! (a sticky illegal-address error) and a kernel that never finishes (the
//! watchdog) leave the CUDA executor faulted, and `recover` gives a working
//! executor back (a fresh context: old handles are invalid).
//!
//! The tests skip, printing why, without a GPU, and fail instead under
//! `WEFT_REQUIRE_GPU=1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::gpu::GpuExecutor;
use weft::kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Type};
use weft_lower::BufferId;
use weft_pack::{launch_host, Budget, Bundle, BundleBuilder, ExecError, Executor, Slot, TenantId};

fn bundle(kernel: KernelDef, guards: bool) -> Bundle {
    let kernel = Arc::new(kernel);
    let args = (0..kernel.params.len() as u32).map(BufferId::from_u32).collect();
    let b = if guards { BundleBuilder::new() } else { BundleBuilder::new().unisolated_for_tests() };
    b.slot(Slot { kernel, tenant: TenantId(0), budget: Budget::Full, args }).build().expect("builds")
}

/// `x[i] = x[i] + 1` over 256: what must still work after a fault.
fn increment() -> Bundle {
    let mut b = KernelBuilder::new("increment", LaunchShape::linear(1, 256));
    let x = b.buffer("x", Type::F32, 256, Access::ReadWrite);
    let i = b.global_thread_id(Axis::X);
    let v = b.load(x, i);
    let one = b.const_f32(1.0);
    let v = b.add(v, one);
    b.store(x, i, v);
    bundle(b.finish(), true)
}

fn works_after_recovery(exec: &mut GpuExecutor) {
    let mut args = vec![vec![ArgValue::Buffer(HostBuffer::from_f32(&[2.5; 256]))]];
    launch_host(exec, &increment(), &mut args).expect("a fresh context runs kernels");
    assert_eq!(args[0][0].as_buffer().expect("buffer").to_f32_vec(), vec![3.5; 256]);
}

#[test]
fn an_illegal_address_faults_the_executor_and_recover_rebuilds_it() {
    let Some(_) = weft_cuda::require_gpu_or_skip("an_illegal_address_faults_the_executor_and_recover_rebuilds_it")
    else {
        return;
    };
    // x[t << 40]: terabytes past the buffer, with the guard forced off.
    let mut b = KernelBuilder::new("wild_store", LaunchShape::linear(1, 32));
    let x = b.buffer("x", Type::F32, 32, Access::Write);
    let t = b.thread_id(Axis::X);
    let t = b.cast(Type::I64, t);
    let one = b.const_i64(1);
    let t = b.add(t, one);
    let shift = b.const_i64(40);
    let at = b.shl(t, shift);
    let v = b.const_f32(1.0);
    b.store(x, at, v);
    let wild = bundle(b.finish(), false);
    let mut exec = GpuExecutor::new().expect("the GPU opens");
    let mut args = vec![vec![ArgValue::Buffer(HostBuffer::zeros(Type::F32, 32))]];
    let err = launch_host(&mut exec, &wild, &mut args).expect_err("an illegal address fails the launch");
    assert!(exec.is_faulted(), "a sticky error faults the executor: {err}");
    exec.recover().expect("the context is rebuilt");
    assert!(!exec.is_faulted());
    works_after_recovery(&mut exec);
}

#[test]
fn a_kernel_that_never_finishes_is_declared_hung_and_the_context_reset() {
    let Some(_) = weft_cuda::require_gpu_or_skip("a_kernel_that_never_finishes_is_declared_hung_and_the_context_reset")
    else {
        return;
    };
    // for i in 0..n[0] { acc += 1 }; x[t] = acc, with n[0] = i64::MAX.
    let spin = bundle(weft_kernels::spin(), true);
    let mut exec = GpuExecutor::new().expect("the GPU opens");
    let bound = Duration::from_millis(300);
    exec.set_launch_limit(Some(bound));
    let trips = HostBuffer::from_bytes(Type::I64, i64::MAX.to_le_bytes().to_vec()).expect("one i64");
    let mut args = vec![vec![ArgValue::Buffer(trips), ArgValue::Buffer(HostBuffer::zeros(Type::F32, 32))]];
    let began = Instant::now();
    let err = launch_host(&mut exec, &spin, &mut args).expect_err("the watchdog stops it");
    assert!(matches!(err, ExecError::Hung { .. }), "{err}");
    assert!(began.elapsed() >= bound && began.elapsed() < bound + Duration::from_secs(10), "{:?}", began.elapsed());
    assert!(exec.is_faulted());
    exec.recover().expect("the context reset ends the kernel");
    exec.set_launch_limit(Some(Duration::from_secs(10)));
    works_after_recovery(&mut exec);
}
