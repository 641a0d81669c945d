//! Models with dynamic dimensions on the engine: a request's input shapes
//! bind them, each binding compiles once, and conflicts name the dimension.
//! And the engine's memory budget.

use std::sync::Arc;
use std::time::Duration;

use weft::graph::onnx::testing::{f32_dynamic_input, model_bytes, node, Dim};
use weft::graph::onnx::{ImportOptions, OnnxModel};
use weft::kir::HostBuffer;
use weft::{Backend, DynamicModel, Engine, EngineConfig, EngineError, NamedInput};

const SLO: Duration = Duration::from_secs(5);

/// y = relu(x + z) over x, z: [batch, 4].
fn add_relu() -> OnnxModel {
    let dims = [Dim::Param("batch"), Dim::Value(4)];
    let bytes = model_bytes(
        18,
        vec![f32_dynamic_input("x", &dims), f32_dynamic_input("z", &dims)],
        vec![],
        vec![node("Add", "add", &["x", "z"], &["s"], vec![]), node("Relu", "relu", &["s"], &["y"], vec![])],
        &["y"],
    );
    OnnxModel::parse(&bytes).unwrap()
}

fn input(name: &str, shape: &[usize], values: &[f32]) -> NamedInput {
    NamedInput { name: name.into(), shape: shape.to_vec(), data: HostBuffer::from_f32(values) }
}

fn engine() -> Engine {
    Engine::new(Backend::Interp, EngineConfig::default()).unwrap()
}

#[test]
fn each_binding_compiles_once_and_answers_for_its_shape() {
    let engine = engine();
    let model = DynamicModel::new(add_relu(), ImportOptions::default(), SLO, 1.0);
    let mut tenants = Vec::new();
    for (round, batch) in [2usize, 2, 5, 2, 5].into_iter().enumerate() {
        let n = batch * 4;
        let x: Vec<f32> = (0..n).map(|i| i as f32 - 6.0 + round as f32).collect();
        let z: Vec<f32> = (0..n).map(|i| (i % 3) as f32 * 0.5).collect();
        let inputs = vec![input("z", &[batch, 4], &z), input("x", &[batch, 4], &x)];
        let out = model.submit(&engine, inputs).unwrap().wait().unwrap();
        let expected: Vec<f32> = x.iter().zip(&z).map(|(a, b)| (a + b).max(0.0)).collect();
        assert_eq!(out.outputs[0].to_f32_vec(), expected, "batch {batch}, round {round}");
        let (t, program) =
            model.tenant_for(&engine, &[("x".into(), vec![batch, 4]), ("z".into(), vec![batch, 4])]).unwrap();
        assert_eq!(program.inputs[0].shape, vec![batch, 4]);
        tenants.push((batch, t));
    }
    assert_eq!(model.compiles(), 2, "batch 2 and batch 5, once each");
    assert_eq!(model.tenants().len(), 2);
    for (b, t) in &tenants {
        for (c, u) in &tenants {
            assert_eq!(b == c, t == u, "one tenant per binding");
        }
    }
}

#[test]
fn inputs_that_disagree_on_a_dimension_are_refused_naming_it() {
    let engine = engine();
    let model = DynamicModel::new(add_relu(), ImportOptions::default(), SLO, 1.0);
    let inputs = vec![input("x", &[2, 4], &[0.0; 8]), input("z", &[3, 4], &[0.0; 12])];
    let e = model.submit(&engine, inputs).map(|_| ()).unwrap_err();
    assert!(matches!(e, EngineError::Bind { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("`batch`") && text.contains('2') && text.contains('3'), "{text}");
    assert_eq!(model.compiles(), 0, "nothing compiled for a conflict");
}

#[test]
fn an_explicit_dim_or_shape_and_a_request_that_disagree_are_refused_naming_the_dimension() {
    let engine = engine();
    let dim = DynamicModel::new(add_relu(), ImportOptions::default().with_dim("batch", 2), SLO, 1.0);
    let e = dim.submit(&engine, vec![input("x", &[3, 4], &[0.0; 12]), input("z", &[3, 4], &[0.0; 12])]);
    let text = e.map(|_| ()).unwrap_err().to_string();
    assert!(text.contains("`batch`") && text.contains("bound to 2"), "{text}");
    // The binding the explicit dim allows works.
    let ok = dim.submit(&engine, vec![input("x", &[2, 4], &[1.0; 8]), input("z", &[2, 4], &[1.0; 8])]);
    assert_eq!(ok.unwrap().wait().unwrap().outputs[0].to_f32_vec(), vec![2.0; 8]);

    let shape = DynamicModel::new(add_relu(), ImportOptions::default().with_shape("x", vec![2, 4]), SLO, 1.0);
    let e = shape.submit(&engine, vec![input("x", &[3, 4], &[0.0; 12]), input("z", &[3, 4], &[0.0; 12])]);
    let text = e.map(|_| ()).unwrap_err().to_string();
    assert!(text.contains("`x`") && text.contains("dimension 0"), "{text}");
}

#[test]
fn a_request_naming_an_input_the_model_lacks_is_refused() {
    let engine = engine();
    let model = DynamicModel::new(add_relu(), ImportOptions::default(), SLO, 1.0);
    let e = model.submit(&engine, vec![input("x", &[1, 4], &[0.0; 4]), input("w", &[1, 4], &[0.0; 4])]);
    let text = e.map(|_| ()).unwrap_err().to_string();
    assert!(text.contains("`w`") && text.contains("x, z"), "{text}");
}

#[test]
fn registrations_beyond_the_memory_budget_are_refused_before_allocating() {
    // One tenant of batch 1000: 3 buffers of 16 kB (x, z, y; the sum is fused).
    let engine =
        Engine::new(Backend::Interp, EngineConfig { max_memory: Some(80_000), ..EngineConfig::default() }).unwrap();
    assert_eq!(engine.memory_budget(), 80_000);
    let model = DynamicModel::new(add_relu(), ImportOptions::default(), SLO, 1.0);
    let (_, program) = model.tenant_for(&engine, &[("x".into(), vec![1000, 4]), ("z".into(), vec![1000, 4])]).unwrap();
    let one = program.memory().device();
    assert!(one <= 80_000 && 2 * one > 80_000, "the test's sizes: one tenant fits, two do not ({one} bytes)");
    // A second tenant of the same program needs another arena, which does not fit.
    let e = engine.register(Arc::clone(&program), SLO, 1.0).unwrap_err();
    let EngineError::Memory { source, .. } = &e else { panic!("not the budget's refusal: {e}") };
    assert_eq!(source.limit, 80_000);
    assert!(source.needed > 80_000 && e.to_string().contains("--max-memory"), "{e}");
    // A binding too large for the budget is refused when it is compiled.
    let e = model.tenant_for(&engine, &[("x".into(), vec![100_000, 4]), ("z".into(), vec![100_000, 4])]).unwrap_err();
    assert!(e.to_string().contains("memory budget"), "{e}");
    assert_eq!(model.compiles(), 1);
}

/// `idx = NonZero(x > 0)` (`[2, N]`) and `vals = GatherND(x, idxᵀ)` over
/// `x: [batch, 6]`: output sizes that depend on the data.
fn positives() -> OnnxModel {
    use weft::graph::onnx::testing::tensor_f32;
    let dims = [Dim::Param("batch"), Dim::Value(6)];
    let bytes = model_bytes(
        18,
        vec![f32_dynamic_input("x", &dims)],
        vec![tensor_f32("zero", &[], vec![0.0])],
        vec![
            node("Greater", "positive", &["x", "zero"], &["mask"], vec![]),
            node("NonZero", "where", &["mask"], &["idx"], vec![]),
            node("Transpose", "rows", &["idx"], &["idx_t"], vec![]),
            node("GatherND", "pick", &["x", "idx_t"], &["vals"], vec![]),
        ],
        &["idx", "vals"],
    );
    OnnxModel::parse(&bytes).unwrap()
}

#[test]
fn data_dependent_sizes_bind_per_request_and_each_count_compiles_once() {
    let engine = engine();
    let model = DynamicModel::new(positives(), ImportOptions::default(), SLO, 1.0);
    // (batch, positions of the positive elements)
    let requests: &[(usize, &[usize])] = &[(2, &[1, 4, 7]), (2, &[0, 11, 5]), (2, &[2]), (3, &[17, 3, 9]), (2, &[])];
    for &(batch, positive) in requests {
        let mut x = vec![-1.0f32; batch * 6];
        for (k, &p) in positive.iter().enumerate() {
            x[p] = 1.0 + k as f32;
        }
        let out = model.submit(&engine, vec![input("x", &[batch, 6], &x)]).unwrap().wait().unwrap();
        let mut sorted = positive.to_vec();
        sorted.sort();
        let idx: Vec<f64> = [sorted.iter().map(|p| p / 6).collect::<Vec<_>>(), sorted.iter().map(|p| p % 6).collect()]
            .concat()
            .into_iter()
            .map(|v| v as f64)
            .collect();
        assert_eq!(out.outputs[0].to_f64_vec(), idx, "batch {batch}, positives {positive:?}");
        let vals: Vec<f32> = sorted.iter().map(|&p| x[p]).collect();
        assert_eq!(out.outputs[1].to_f32_vec(), vals, "batch {batch}, positives {positive:?}");
    }
    // (batch 2, 3 positives) answered twice from one program; then batch 2
    // with 1, batch 3 with 3, batch 2 with 0.
    assert_eq!(model.compiles(), 4);
    // Without the values, the tenant of a binding cannot be chosen.
    let e = model.tenant_for(&engine, &[("x".into(), vec![4, 6])]).map(|_| ()).unwrap_err();
    assert!(matches!(e, EngineError::Bind { .. }) && e.to_string().contains("`where`"), "{e}");
}

/// `y = If(sum(x) > 0, then: x · 2, else: −x)` over `x: [2]`.
fn sign_branch() -> OnnxModel {
    use weft::graph::onnx::testing::{attr_graph, attr_int, graph, output, tensor_f32};
    let then_branch = graph(
        "double",
        vec![],
        vec![tensor_f32("two", &[], vec![2.0])],
        vec![node("Mul", "times_two", &["x", "two"], &["doubled"], vec![])],
        vec![output("doubled")],
    );
    let else_branch = graph(
        "negate",
        vec![],
        vec![],
        vec![node("Neg", "neg", &["x"], &["negated"], vec![])],
        vec![output("negated")],
    );
    let bytes = model_bytes(
        18,
        vec![f32_dynamic_input("x", &[Dim::Value(2)])],
        vec![tensor_f32("zero", &[], vec![0.0])],
        vec![
            node("ReduceSum", "total", &["x"], &["sum"], vec![attr_int("keepdims", 0)]),
            node("Greater", "positive", &["sum", "zero"], &["cond"], vec![]),
            node(
                "If",
                "branch",
                &["cond"],
                &["y"],
                vec![attr_graph("then_branch", then_branch), attr_graph("else_branch", else_branch)],
            ),
        ],
        &["y"],
    );
    OnnxModel::parse(&bytes).unwrap()
}

#[test]
fn an_if_condition_binds_per_request_and_each_branch_compiles_once() {
    let engine = engine();
    let model = DynamicModel::new(sign_branch(), ImportOptions::default(), SLO, 1.0);
    for x in [[1.0f32, 2.0], [-3.0, 1.0], [0.5, 0.25], [-1.0, -1.0]] {
        let out = model.submit(&engine, vec![input("x", &[2], &x)]).unwrap().wait().unwrap();
        let want: Vec<f32> = if x[0] + x[1] > 0.0 { x.map(|v| v * 2.0).to_vec() } else { x.map(|v| -v).to_vec() };
        assert_eq!(out.outputs[0].to_f32_vec(), want, "x = {x:?}");
    }
    assert_eq!(model.compiles(), 2, "one program per branch");
}

#[test]
fn bindings_past_the_limit_are_refused_and_known_ones_still_answer() {
    let engine = engine();
    let model = DynamicModel::new(positives(), ImportOptions::default(), SLO, 1.0).with_max_bindings(2);
    let request = |positive: &[usize]| {
        let mut x = vec![-1.0f32; 12];
        positive.iter().for_each(|&p| x[p] = 1.0);
        model.submit(&engine, vec![input("x", &[2, 6], &x)]).map(|p| p.wait().unwrap().outputs[1].len())
    };
    assert_eq!(request(&[1]).unwrap(), 1);
    assert_eq!(request(&[1, 2]).unwrap(), 2);
    let e = request(&[1, 2, 3]).unwrap_err();
    assert!(matches!(e, EngineError::Bind { .. }) && e.to_string().contains("limit of 2"), "{e}");
    assert_eq!(request(&[4, 5]).unwrap(), 2, "a binding compiled before still answers");
    assert_eq!(model.compiles(), 2);
}
