//! The cpu executor (the emitted CUDA C compiled for the host) behind the
//! public API: a lowered model runs in checking mode bit for bit like the
//! interpreter, and the Engine serves on `Backend::Cpu`.
//!
//! Needs a host C++ compiler (`$CXX`, else `g++`): without one these tests
//! print why and pass, except under `CI=true`, where they fail.

use std::sync::Arc;
use std::time::Duration;

use weft::cpu::CpuExecutor;
use weft::engine::{Backend, Engine, EngineConfig};
use weft::graph::builder::GraphBuilder;
use weft::graph::dtype::DType;
use weft::kir::HostBuffer;
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{run_program, InterpExecutor};

/// Conv → ReLU → max pool → strided conv → ReLU → global average pool →
/// Gemm → softmax on a 1×3×12×12 input.
fn small_net(seed: u64) -> Arc<Program> {
    let mut b = GraphBuilder::with_seed("small_net", seed);
    let x = b.input("input", DType::F32, &[1, 3, 12, 12]);
    let w1 = b.he_weight("w1", &[8, 3, 3, 3], 27);
    let bias1 = b.random_constant("b1", &[8], 0.1);
    let mut h = b.conv2d(x, w1, Some(bias1), 1, 1, 1).unwrap();
    h = b.relu(h).unwrap();
    h = b.max_pool(h, 2, 2, 0).unwrap();
    let w2 = b.he_weight("w2", &[16, 8, 3, 3], 72);
    h = b.conv2d(h, w2, None, 2, 1, 1).unwrap();
    h = b.relu(h).unwrap();
    h = b.global_avg_pool(h).unwrap();
    h = b.flatten(h, 1).unwrap();
    let fc = b.random_constant("fc", &[10, 16], 0.25);
    h = b.gemm(h, fc, None, true).unwrap();
    h = b.softmax(h, 1).unwrap();
    b.output(h);
    Arc::new(lower(&b.finish(), &LowerOptions::default()).unwrap())
}

fn input(program: &Program, seed: u64) -> Vec<HostBuffer> {
    program.seeded_inputs(seed)
}

#[test]
fn a_lowered_model_runs_in_checking_mode_like_the_interpreter() {
    if !weft::cpu::require_host_compiler_or_skip("a_lowered_model_runs_in_checking_mode_like_the_interpreter") {
        return;
    }
    let p = small_net(1);
    let x = input(&p, 3);
    let want = run_program(&mut InterpExecutor::default(), p.clone(), &x, |_| {}).unwrap();
    let got = run_program(&mut CpuExecutor::checking(9), p.clone(), &x, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, want, "every layer's emitted CUDA C must agree with the interpreter bit for bit");
}

#[test]
fn the_engine_serves_on_the_cpu_backend() {
    if !weft::cpu::require_host_compiler_or_skip("the_engine_serves_on_the_cpu_backend") {
        return;
    }
    let engine = Engine::new(Backend::Cpu, EngineConfig::default()).unwrap();
    assert_eq!(engine.backend(), "cpu");
    let (a, b) = (small_net(1), small_net(2));
    let ta = engine.register(a.clone(), Duration::from_secs(600), 1.0).unwrap();
    let tb = engine.register(b.clone(), Duration::from_secs(600), 1.0).unwrap();
    let mut pending = Vec::new();
    for i in 0..2 {
        for (t, p) in [(ta, &a), (tb, &b)] {
            let x = input(p, i);
            pending.push((p.clone(), x.clone(), engine.submit(t, x).unwrap()));
        }
    }
    for (p, x, r) in pending {
        let response = r.wait().expect("request completes");
        let solo = run_program(&mut InterpExecutor::default(), p, &x, |_| {}).unwrap();
        assert_eq!(response.outputs, solo, "served on cpu, bit for bit the interpreter's solo run");
    }
}
