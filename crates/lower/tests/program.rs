//! Whole programs: kernels keyed by their bodies, shared across layers and
//! across models of the same architecture, and a lowered ResNet-18 (built with
//! the builder API) against the reference evaluator.

use std::collections::HashSet;
use std::sync::Arc;

use weft_graph::models::resnet18;
use weft_kir::HostBuffer;
use weft_lower::{lower, LowerOptions, Program};

fn distinct_kernels(p: &Program) -> usize {
    p.steps.iter().map(|s| Arc::as_ptr(&s.kernel)).collect::<HashSet<_>>().len()
}

#[test]
fn repeated_layers_share_one_kernel() {
    let graph = resnet18(1, 1, 64, 10).expect("resnet18 builds");
    let program = lower(&graph, &LowerOptions::default()).expect("resnet18 lowers");
    let distinct = distinct_kernels(&program);
    assert!(
        distinct < program.steps.len(),
        "ResNet-18 repeats block shapes, so some kernels should be shared ({distinct} distinct of {})",
        program.steps.len()
    );
    // Shared kernels are the same body, so the same emitted source.
    let names: HashSet<&str> = program.steps.iter().map(|s| s.kernel.name.as_str()).collect();
    assert_eq!(names.len(), distinct);
}

#[test]
fn models_of_one_architecture_have_the_same_kernels() {
    let a = lower(&resnet18(1, 1, 64, 10).unwrap(), &LowerOptions::default()).unwrap();
    let b = lower(&resnet18(2, 1, 64, 10).unwrap(), &LowerOptions::default()).unwrap();
    assert_eq!(a.steps.len(), b.steps.len());
    for (x, y) in a.steps.iter().zip(&b.steps) {
        assert_eq!(*x.kernel, *y.kernel, "weights are data: kernels must not depend on them");
    }
    assert_ne!(a.weights, b.weights, "different seeds give different weights");
}

#[test]
fn lowered_resnet18_matches_the_reference_evaluator() {
    let graph = resnet18(7, 1, 64, 10).unwrap();
    let program = lower(&graph, &LowerOptions::default()).unwrap();
    let info = graph.info(graph.inputs[0]);
    let n = info.shape.numel();
    let x: Vec<f32> = (0..n).map(|i| ((i * 2654435761usize) % 2000) as f32 / 1000.0 - 1.0).collect();
    let ours = weft_pack::run_program(
        &mut weft_pack::InterpExecutor::default(),
        std::sync::Arc::new(program.clone()),
        &[HostBuffer::from_f32(&x)],
        |_| {},
    )
    .expect("runs on the interpreter");
    let reference =
        weft_graph::eval::evaluate(&graph, &[weft_graph::Tensor::f32(info.shape.clone(), x)]).expect("evaluates");
    let got = ours[0].to_f64_vec();
    let want = reference[0].to_f64();
    let diff: f64 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
    assert!(diff / norm <= 1e-5, "relative L2 error {}", diff / norm);
}
