//! Kernels past CUDA's parameter space. A Concat of 5,000 inputs lowers to
//! one kernel of 5,001 buffer parameters (40,008 bytes, where a launch may
//! pass 32,764). As a bundle body a kernel's buffer addresses travel in
//! memory (the argument words), so such kernels run on every executor;
//! only launching one alone as a plain kernel is refused, by name.
//!
//! The cpu executor needs a host C++ compiler and the module check needs
//! NVRTC; without them those parts print why and pass, except under
//! `CI=true`, where they fail.

use std::sync::Arc;

use weft::codegen::bundle::{constant_launch_table, ARG_WORDS_SYMBOL};
use weft::codegen::{emit_bundle, emit_cuda, fits_parameter_space, require_nvrtc_or_skip, Arch, EmitError};
use weft::cpu::CpuExecutor;
use weft::graph::builder::GraphBuilder;
use weft::graph::dtype::DType;
use weft::kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{launch_host, run_program, Budget, BundleBuilder, Executor, InterpExecutor, Slot, TenantId};

const INPUTS: usize = 5000;

/// `y = concat(x0, …, x{n-1}, axis 0)` of `[1, 2]` inputs.
fn wide_concat(n: usize) -> Arc<Program> {
    let mut b = GraphBuilder::new("wide_concat");
    let xs: Vec<_> = (0..n).map(|i| b.input(format!("x{i}"), DType::F32, &[1, 2])).collect();
    let y = b.concat(&xs, 0).expect("concat builds");
    b.output(y);
    Arc::new(lower(&b.finish(), &LowerOptions::default()).expect("a wide concat lowers"))
}

#[test]
fn a_concat_of_5000_inputs_lowers_and_runs() {
    let p = wide_concat(INPUTS);
    let wide: Vec<_> = p.steps.iter().map(|s| &s.kernel).filter(|k| !fits_parameter_space(k)).collect();
    assert_eq!(wide.len(), 1, "one kernel reads every input");
    let k = wide[0];
    assert!(k.params.len() > INPUTS && k.param_bytes() > 32_764, "{} bytes", k.param_bytes());

    let x = p.seeded_inputs(5);
    let want: Vec<f32> = x.iter().flat_map(HostBuffer::to_f32_vec).collect();
    assert_eq!(want.len(), 2 * INPUTS);
    let got = run_program(&mut InterpExecutor::default(), p.clone(), &x, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, vec![HostBuffer::from_f32(&want)], "the interpreter concatenates every input in order");

    // Launched alone it would pass its pointers as parameters: refused, by name.
    match emit_cuda(k) {
        Err(EmitError::Kernel { kernel, reason }) => {
            assert_eq!(kernel, k.name);
            assert!(reason.contains("parameter space") && reason.contains("bundle body"), "{reason}");
        }
        other => panic!("a plain kernel past the parameter space must be refused, got {other:?}"),
    }
}

/// A kernel of `WIDE` one-element buffers, an output and a scalar last:
/// `out = [x0[0], x(WIDE/2)[0], x(WIDE-1)[0] + s]`, run by thread 0.
const WIDE: usize = 4100;

fn wide_kernel() -> KernelDef {
    let mut b = KernelBuilder::new("wide", LaunchShape::linear(1, 32));
    let xs: Vec<_> = (0..WIDE).map(|i| b.buffer(&format!("x{i}"), Type::F32, 1, Access::Read)).collect();
    let out = b.buffer("out", Type::F32, 3, Access::Write);
    let s = b.scalar_param("s", Type::F32);
    let t = b.thread_id(Axis::X);
    let zero = b.const_i32(0);
    let first = b.eq(t, zero);
    b.if_(first, |b| {
        let zero = b.const_i32(0);
        for (k, x) in [xs[0], xs[WIDE / 2], xs[WIDE - 1]].into_iter().enumerate() {
            let mut v = b.load(x, zero);
            if k == 2 {
                let s = b.param(s);
                v = b.add(v, s);
            }
            let at = b.const_i32(k as i32);
            b.store(out, at, v);
        }
    });
    b.finish()
}

#[test]
fn a_kernel_past_the_parameter_space_takes_its_arguments_from_memory() {
    const TEST: &str = "a_kernel_past_the_parameter_space_takes_its_arguments_from_memory";
    let k = Arc::new(wide_kernel());
    assert!(!fits_parameter_space(&k) && k.param_bytes() > 32_764, "{} bytes", k.param_bytes());
    let mut args: Vec<ArgValue> = (0..WIDE).map(|i| ArgValue::Buffer(HostBuffer::from_f32(&[i as f32]))).collect();
    args.push(ArgValue::Buffer(HostBuffer::from_f32(&[0.0; 3])));
    args.push(ArgValue::Scalar(Scalar::F32(0.5)));
    let want = HostBuffer::from_f32(&[0.0, (WIDE / 2) as f32, (WIDE - 1) as f32 + 0.5]);
    let bundle = {
        let ids = (0..k.params.len() as u32).map(weft::lower::BufferId::from_u32).collect();
        let slot = Slot { kernel: k.clone(), tenant: TenantId(0), budget: Budget::Full, args: ids };
        BundleBuilder::new().slot(slot).build().expect("a wide kernel bundles")
    };
    let run = |exec: &mut dyn Executor| {
        let mut launch = vec![args.clone()];
        launch_host(exec, &bundle, &mut launch).unwrap_or_else(|e| panic!("{}: {e}", exec.name()));
        launch[0][WIDE].clone()
    };
    assert_eq!(run(&mut InterpExecutor::default()), ArgValue::Buffer(want.clone()), "interpreter");

    // Its module reads the table and words through the entry's pointers
    // (global memory): one slot's words exceed the constant table.
    let threads = u32::try_from(k.launch.threads_per_block()).expect("threads fit");
    assert!(!constant_launch_table(&[&*k]));
    let src = emit_bundle(&[&*k], threads).expect("a wide body emits as a bundle");
    assert!(!src.code.contains(ARG_WORDS_SYMBOL), "no constant table for a body this wide");
    if let Some(c) = require_nvrtc_or_skip(TEST, Arch::SM_90) {
        let ptx = c.compile(&src).unwrap_or_else(|e| panic!("NVRTC: {e}"));
        assert!(ptx.ptx.contains(".visible .entry weft_bundle("), "the module has its entry");
    }
    if weft::cpu::require_host_compiler_or_skip(TEST) {
        assert_eq!(run(&mut CpuExecutor::checking(3)), ArgValue::Buffer(want), "the emitted CUDA C, on the cpu");
    }
}
