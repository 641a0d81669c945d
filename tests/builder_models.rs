//! Models written with the builder API against onnxruntime.
//!
//! ResNet-18 from `weft_graph::models::resnet18` with seeded weights is
//! exported to ONNX (`weft_graph::export_onnx`) into a temporary directory,
//! run by onnxruntime through `scripts/ort_reference.py` on seeded random
//! inputs, and compared at a
//! relative L2 error of at most 1e-4 with
//!
//! * weft's reference evaluator, which checks the builder's graph means what
//!   onnxruntime computes from the export (and so the exporter too), and
//! * the program lowered by `weft_lower::lower` run on the CPU interpreter,
//!   which checks lowering on a model no ONNX file went into.
//!
//! Two seeds must give clearly different logits on the same input: tenants
//! with the same architecture and different weights are different models.
//!
//! onnxruntime missing (from `.cache/py` and the system): the test prints why and passes,
//! except under `CI=true`, where it fails (run `scripts/fetch-models`).
//! The image is 224×224, the size ResNet-18 is defined for.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{compare, relative_l2, run_lowered};
use weft_graph::{export_onnx_default, DType, Graph, Shape, SplitMix64, Tensor};

/// Exports `graph` into `dir` and returns onnxruntime's outputs on `inputs`,
/// or `None` (after printing why, or failing under CI) without onnxruntime.
fn onnxruntime(graph: &Graph, inputs: &[Tensor], dir: &Path) -> Option<Vec<(Vec<usize>, Vec<f64>)>> {
    let bytes = export_onnx_default(graph).unwrap_or_else(|e| panic!("{}: export: {e}", graph.name));
    let model = dir.join(format!("{}.onnx", graph.name));
    std::fs::write(&model, bytes).expect("write the exported model");
    common::onnxruntime(&model, graph, inputs, dir)
}

/// Lowers `graph` and runs the program on the CPU interpreter.
fn run_on_interpreter(graph: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let program = weft_lower::lower(graph, &weft_lower::LowerOptions::default())
        .unwrap_or_else(|e| panic!("{}: lowering: {e}", graph.name));
    run_lowered(graph, &program, &mut weft::pack::InterpExecutor::default(), inputs)
}

/// The relative L2 error allowed per output.
const TOLERANCE: f64 = 1e-4;

/// ResNet-18's input size.
const IMAGE: usize = 224;
const CLASSES: usize = 1000;

/// A temporary directory removed when dropped, even when an assertion fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-builder-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Standard-normal inputs (Box–Muller over SplitMix64), one per graph input.
fn normal_inputs(graph: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = SplitMix64::new(seed);
    graph
        .inputs
        .iter()
        .map(|&t| {
            let info = graph.info(t);
            let values: Vec<f64> = (0..info.shape.numel())
                .map(|_| {
                    let (u, v) = (rng.uniform(0.0, 1.0).max(1e-12), rng.uniform(0.0, 1.0));
                    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
                })
                .collect();
            Tensor::from_f64(info.dtype, info.shape.clone(), &values)
        })
        .collect()
}

#[test]
fn resnet18_matches_onnxruntime() {
    let dir = TempDir::new("resnet18");
    let t0 = Instant::now();
    let graph = weft_graph::models::resnet18(0x7e4a_0001, 1, IMAGE, CLASSES).expect("resnet18 builds");
    assert_eq!(graph.info(graph.outputs[0]).shape, Shape::new(vec![1, CLASSES]));
    assert_eq!(graph.info(graph.inputs[0]).dtype, DType::F32);
    let inputs = normal_inputs(&graph, 0x5eed_0018);
    eprintln!("resnet18: built in {:.2?}", t0.elapsed());

    let t1 = Instant::now();
    let Some(reference) = onnxruntime(&graph, &inputs, &dir.0) else { return };
    eprintln!("resnet18: exported and run by onnxruntime in {:.2?}", t1.elapsed());

    let t2 = Instant::now();
    let ours = weft_graph::eval::evaluate(&graph, &inputs).expect("the evaluator runs resnet18");
    eprintln!("resnet18: reference evaluator in {:.2?}", t2.elapsed());
    let bad = compare(&graph, &ours, &reference, TOLERANCE);
    assert!(bad.is_empty(), "the evaluator disagrees with onnxruntime:\n  {}", bad.join("\n  "));

    let t3 = Instant::now();
    let lowered = run_on_interpreter(&graph, &inputs);
    eprintln!("resnet18: lowered and interpreted in {:.2?}", t3.elapsed());
    let bad = compare(&graph, &lowered, &reference, TOLERANCE);
    assert!(bad.is_empty(), "the interpreter disagrees with onnxruntime:\n  {}", bad.join("\n  "));
}

#[test]
fn resnet18_tenants_with_different_seeds_differ() {
    let dir_a = TempDir::new("tenant-a");
    let dir_b = TempDir::new("tenant-b");
    let a = weft_graph::models::resnet18(1, 1, IMAGE, CLASSES).expect("resnet18 builds");
    let b = weft_graph::models::resnet18(2, 1, IMAGE, CLASSES).expect("resnet18 builds");
    // One input for both tenants, so only the weights differ.
    let inputs = normal_inputs(&a, 0x5eed_0019);
    let Some(ort_a) = onnxruntime(&a, &inputs, &dir_a.0) else { return };
    let Some(ort_b) = onnxruntime(&b, &inputs, &dir_b.0) else { return };
    let ours_a = weft_graph::eval::evaluate(&a, &inputs).expect("tenant a evaluates");
    let ours_b = weft_graph::eval::evaluate(&b, &inputs).expect("tenant b evaluates");
    for (graph, ours, reference) in [(&a, &ours_a, &ort_a), (&b, &ours_b, &ort_b)] {
        let bad = compare(graph, ours, reference, TOLERANCE);
        assert!(bad.is_empty(), "the evaluator disagrees with onnxruntime:\n  {}", bad.join("\n  "));
    }
    // Logits of two random networks are unrelated: their difference is as
    // large as the logits themselves, far beyond any rounding.
    let between_weft = relative_l2(&ours_a[0].to_f64(), &ours_b[0].to_f64());
    let between_ort = relative_l2(&ort_a[0].1, &ort_b[0].1);
    eprintln!("tenants: relative L2 between seeds {between_weft:.3} (weft), {between_ort:.3} (onnxruntime)");
    assert!(between_weft > 0.1, "seeds 1 and 2 give nearly the same logits ({between_weft:.2e})");
    assert!(between_ort > 0.1, "onnxruntime: seeds 1 and 2 give nearly the same logits ({between_ort:.2e})");
}
