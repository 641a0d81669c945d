//! NonZero's kernel (one block; runs counted into shared memory, a barrier,
//! then each run's coordinates from the column the earlier runs give) on
//! the cpu executor in checking mode — sanitized, under several thread
//! schedules — bit for bit against the interpreter, and through NVRTC.
//!
//! The cpu executor needs a host C++ compiler and the module check needs
//! NVRTC; without them those parts print why and pass, except under
//! `CI=true`, where they fail.

use std::sync::Arc;

use weft::codegen::{emit_cuda, require_nvrtc_or_skip, Arch};
use weft::cpu::CpuExecutor;
use weft::graph::{DType, Graph, Op};
use weft::kir::HostBuffer;
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{run_program, Executor, InterpExecutor};

const TEST: &str = "nonzero_kernel";

/// `NonZero` of a `[3, 700]` input with `count` nonzero elements.
fn program(count: usize) -> Arc<Program> {
    let mut g = Graph::new("non_zero");
    let x = g.add_input("x", DType::F32, vec![3, 700]);
    let y = g.add_node("nz", Op::NonZero { count }, vec![Some(x)]).expect("NonZero builds")[0];
    g.add_output(y);
    Arc::new(lower(&g, &LowerOptions::default()).expect("NonZero lowers"))
}

#[test]
fn non_zero_matches_the_interpreter_on_the_cpu_and_compiles_with_nvrtc() {
    // Nonzero every 7th element, and a dense stretch that spans runs.
    let x: Vec<f32> = (0..2100).map(|i| if i % 7 == 3 || (900..1300).contains(&i) { i as f32 } else { 0.0 }).collect();
    let count = x.iter().filter(|v| **v != 0.0).count();
    let p = program(count);
    assert_eq!(p.steps.len(), 1);
    let run = |exec: &mut dyn Executor| {
        run_program(exec, p.clone(), &[HostBuffer::from_f32(&x)], |_| {}).unwrap_or_else(|e| panic!("{e}"))
    };
    let want = run(&mut InterpExecutor::default());
    let coords = want[0].to_f64_vec();
    let (rows, cols) = coords.split_at(count);
    let flat: Vec<usize> = rows.iter().zip(cols).map(|(r, c)| *r as usize * 700 + *c as usize).collect();
    let expected: Vec<usize> = (0..2100).filter(|&i| x[i] != 0.0).collect();
    assert_eq!(flat, expected, "the interpreter's coordinates are the nonzero elements in row-major order");
    if weft::cpu::require_host_compiler_or_skip(TEST) {
        assert_eq!(run(&mut CpuExecutor::checking(3)), want, "the emitted kernel, sanitized, three schedules");
    }
    if let Some(c) = require_nvrtc_or_skip(TEST, Arch::SM_90) {
        let src = emit_cuda(&p.steps[0].kernel).expect("NonZero emits");
        let ptx = c.compile(&src).unwrap_or_else(|e| panic!("NVRTC: {e}"));
        assert!(ptx.ptx.contains(&format!(".entry {}", src.name)), "the module has its entry");
    }
}
