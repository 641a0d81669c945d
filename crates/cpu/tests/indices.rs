//! Data-dependent indices on the cpu executor: an out-of-range Gather or
//! ScatterND index sets the program's status word in the emitted C as on the
//! interpreter, so the run fails with the typed error naming the node, never
//! touching memory outside its buffers (checking mode runs the sanitizers);
//! in-range indices, negative ones included, give the interpreter's values;
//! and a tenant's arena reused after a bad request serves a good one.
//!
//! These tests need a host C++ compiler (`$CXX`, else `g++`); where there is
//! none they print why and pass, except under `CI=true`.

use std::sync::Arc;

use weft_cpu::CpuExecutor;
use weft_graph::{DType, Graph, Op, ScatterReduction, Tensor, TensorId};
use weft_kir::HostBuffer;
use weft_lower::context::tensor_to_host;
use weft_lower::Program;
use weft_pack::{run_program, solo_bundle, Arena, Executor, InterpExecutor, Resident, RunError, TenantId};

const SEED: u64 = 0x1d5;

fn node(g: &mut Graph, name: &str, op: Op, inputs: &[TensorId]) -> TensorId {
    g.add_node(name, op, inputs.iter().map(|&t| Some(t)).collect()).expect("node")[0]
}

/// `y = Gather(x[4], idx[3])` on axis 0.
fn gather() -> Arc<Program> {
    let mut g = Graph::new("gather");
    let x = g.add_input("x", DType::F32, vec![4]);
    let idx = g.add_input("idx", DType::I64, vec![3]);
    let y = node(&mut g, "the_gather", Op::Gather { axis: 0 }, &[x, idx]);
    g.add_output(y);
    Arc::new(weft_lower::lower(&g, &Default::default()).expect("lowered"))
}

/// `y = ScatterND(x[4], rows[2, 1], u[2])`.
fn scatter_nd() -> Arc<Program> {
    let mut g = Graph::new("scatter_nd");
    let x = g.add_input("x", DType::F32, vec![4]);
    let rows = g.add_input("rows", DType::I64, vec![2, 1]);
    let u = g.add_input("u", DType::F32, vec![2]);
    let y = node(&mut g, "the_scatter", Op::ScatterND { reduction: ScatterReduction::None }, &[x, rows, u]);
    g.add_output(y);
    Arc::new(weft_lower::lower(&g, &Default::default()).expect("lowered"))
}

fn hosts(inputs: &[Tensor]) -> Vec<HostBuffer> {
    inputs.iter().map(tensor_to_host).collect()
}

fn x() -> Tensor {
    Tensor::f32(vec![4], vec![1.0, 2.0, 3.0, 4.0])
}

fn assert_index_error(r: Result<Vec<HostBuffer>, RunError>, node: &str, value: i64) {
    match r {
        Err(RunError::IndexOutOfRange { source: e, .. }) => {
            assert_eq!((e.node.as_str(), e.value, e.dim), (node, value, 4))
        }
        other => panic!("expected an index error from `{node}`, got {other:?}"),
    }
}

#[test]
fn out_of_range_indices_are_errors_on_the_cpu_executor() {
    if !weft_cpu::require_host_compiler_or_skip("out_of_range_indices_are_errors_on_the_cpu_executor") {
        return;
    }
    let mut cpu = CpuExecutor::checking(SEED);
    let p = gather();
    for bad in [4, -5, i64::MAX] {
        let r = run_program(&mut cpu, p.clone(), &hosts(&[x(), Tensor::i64(vec![3], vec![0, bad, 1])]), |_| {});
        assert_index_error(r, "the_gather", bad);
    }
    let good = hosts(&[x(), Tensor::i64(vec![3], vec![3, -4, -1])]);
    let out = run_program(&mut cpu, p.clone(), &good, |_| {}).expect("in range");
    assert_eq!(out[0].to_f32_vec(), vec![4.0, 1.0, 4.0]);
    let interp = run_program(&mut InterpExecutor::default(), p, &good, |_| {}).expect("in range");
    assert_eq!(out, interp);

    let p = scatter_nd();
    let u = Tensor::f32(vec![2], vec![10.0, 20.0]);
    let r = run_program(&mut cpu, p.clone(), &hosts(&[x(), Tensor::i64(vec![2, 1], vec![-5, 0]), u.clone()]), |_| {});
    assert_index_error(r, "the_scatter", -5);
    let out = run_program(&mut cpu, p, &hosts(&[x(), Tensor::i64(vec![2, 1], vec![-1, 0]), u]), |_| {}).expect("ok");
    assert_eq!(out[0].to_f32_vec(), vec![20.0, 2.0, 3.0, 10.0]);
}

/// One tenant's arena serves a bad request, then a good one: the status
/// word is zeroed at the start of every request.
#[test]
fn a_reused_arena_serves_a_good_request_after_a_bad_one() {
    if !weft_cpu::require_host_compiler_or_skip("a_reused_arena_serves_a_good_request_after_a_bad_one") {
        return;
    }
    let mut cpu = CpuExecutor::fast();
    let p = gather();
    let resident = Resident::upload(&mut cpu, p.clone()).expect("weights");
    let arena = Arena::alloc(&mut cpu, &p).expect("arena");
    let mut request = |idx: Vec<i64>| -> Result<Vec<HostBuffer>, RunError> {
        resident.begin(&mut cpu, &arena, &hosts(&[x(), Tensor::i64(vec![3], idx)]))?;
        for (k, step) in p.steps.iter().enumerate() {
            let bundle = solo_bundle(&p, k, TenantId(0))?;
            let args = vec![resident.launch_args(&arena, &step.args)?];
            cpu.launch(&bundle, &args).expect("launch");
        }
        resident.outputs(&mut cpu, &arena)
    };
    assert_index_error(request(vec![0, 1, 9]), "the_gather", 9);
    assert_eq!(request(vec![0, 1, -1]).expect("in range")[0].to_f32_vec(), vec![1.0, 2.0, 4.0]);
    assert_index_error(request(vec![-9, 1, 2]), "the_gather", -9);
    assert_eq!(request(vec![2, 2, -4]).expect("in range")[0].to_f32_vec(), vec![3.0, 3.0, 1.0]);
}
