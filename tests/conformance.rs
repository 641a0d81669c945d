//! The conformance suite, written once (in `weft-kernels`) and instantiated
//! for both executors: every reference kernel at several shapes against its
//! `f64` reference on the CPU interpreter, and on CUDA where a GPU is present,
//! where the GPU's outputs are also compared with the interpreter's.

use std::sync::Arc;

use weft::interp::Interpreter;
use weft::kir::{ArgValue, KernelDef};
use weft::pack::{run_kernel, Executor, InterpExecutor};
use weft_kernels::conformance_cases;
use weft_kernels::reference::rel_l2;

/// The suite's runner for `exec`: each kernel as a one-slot bundle through
/// the executor interface.
fn runner(
    exec: &mut dyn Executor,
) -> impl FnMut(&KernelDef, &mut [ArgValue]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + '_ {
    move |k, args| run_kernel(exec, &Arc::new(k.clone()), args).map(|_| ()).map_err(|e| e.into())
}

#[test]
fn reference_kernels_match_f64_on_the_interpreter() {
    let mut interp = InterpExecutor::new(Interpreter::new());
    let mut failures = Vec::new();
    for case in conformance_cases() {
        match case.check("interp", &mut runner(&mut interp)) {
            Ok(err) => println!("{:<28} interp rel_l2 {err:.2e}", case.name),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}

#[test]
fn reference_kernels_verify_and_are_proven_in_bounds() {
    for case in conformance_cases() {
        weft::kir::verifier::verify(&case.kernel).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for access in weft::kir::analysis::access_ranges(&case.kernel) {
            assert!(access.is_proven(), "{}: access not proven in bounds: {access:?}", case.name);
        }
    }
}

/// GPU vs f64 reference, and GPU vs interpreter (within the tolerance that
/// different `exp` implementations and FMA contraction allow).
#[test]
fn reference_kernels_match_on_the_gpu() {
    let Some(_device) = weft::cuda::require_gpu_or_skip("reference_kernels_match_on_the_gpu") else {
        return;
    };
    let mut gpu = weft::gpu::GpuExecutor::new().expect("a GPU was found, so the executor must start");
    let mut interp = InterpExecutor::new(Interpreter::new());
    let mut failures = Vec::new();
    for case in conformance_cases() {
        if let Err(e) = case.check("cuda", &mut runner(&mut gpu)) {
            failures.push(e.to_string());
            continue;
        }
        let on_gpu = case.run("cuda", &mut runner(&mut gpu)).expect("ran once already");
        let on_cpu = case.run("interp", &mut runner(&mut interp)).expect("interpreter conformance passes");
        for ((idx, g), (_, c)) in on_gpu.iter().zip(&on_cpu) {
            let err = rel_l2(g, c);
            println!("{:<28} param {idx}: gpu vs interp rel_l2 {err:.2e}", case.name);
            if err > 1e-6 {
                failures.push(format!("{}: gpu and interpreter differ, rel_l2 {err:e}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "GPU conformance failures:\n{}", failures.join("\n"));
}
