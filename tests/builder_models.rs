//! Models written with the builder API against onnxruntime.
//!
//! ResNet-18 from `weft_graph::models::resnet18` with seeded weights is
//! exported to ONNX (`weft_graph::export_onnx`) into a temporary directory,
//! run by onnxruntime through `scripts/ort_reference.py` (with
//! `PYTHONPATH=.cache/py`) on seeded random inputs, and compared at a
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
//! onnxruntime missing from `.cache/py`: the test prints why and passes,
//! except under `CI=true`, where it fails (run `scripts/fetch-models`).
//! The image is 224×224, the size ResNet-18 is defined for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use weft::kir::{HostBuffer, Type};
use weft_graph::{export_onnx_default, DType, Graph, Shape, SplitMix64, Tensor, TensorData};

/// The relative L2 error allowed per output.
const TOLERANCE: f64 = 1e-4;

/// ResNet-18's input size.
const IMAGE: usize = 224;
const CLASSES: usize = 1000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Where onnxruntime lives, or `None` after printing why the test skips
/// (panicking instead under CI, where a skip would hide a broken setup).
fn onnxruntime_path() -> Option<PathBuf> {
    let py = root().join(".cache/py");
    if py.join("onnxruntime").exists() {
        return Some(py);
    }
    let msg = format!("onnxruntime is not installed in {}: run scripts/fetch-models", py.display());
    if in_ci() {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
    None
}

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
    let values: Vec<f64> = match npy.dtype().descr().trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => npy.into_vec::<f32>().expect("f32 data").into_iter().map(f64::from).collect(),
        "f8" => npy.into_vec::<f64>().expect("f64 data"),
        "i8" => npy.into_vec::<i64>().expect("i64 data").into_iter().map(|x| x as f64).collect(),
        "i4" => npy.into_vec::<i32>().expect("i32 data").into_iter().map(f64::from).collect(),
        "b1" => npy.into_vec::<bool>().expect("bool data").into_iter().map(|b| b as u8 as f64).collect(),
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    (shape, values)
}

/// Exports `graph` into `dir` and returns onnxruntime's outputs on `inputs`,
/// in the graph's output order.
fn onnxruntime(py: &Path, graph: &Graph, inputs: &[Tensor], dir: &Path) -> Vec<(Vec<usize>, Vec<f64>)> {
    let bytes = export_onnx_default(graph).unwrap_or_else(|e| panic!("{}: export: {e}", graph.name));
    let model = dir.join(format!("{}.onnx", graph.name));
    std::fs::write(&model, bytes).expect("write the exported model");
    let out_dir = dir.join("out");
    let mut args = vec![model.display().to_string(), out_dir.display().to_string()];
    for (i, (&t, value)) in graph.inputs.iter().zip(inputs).enumerate() {
        let path = dir.join(format!("input{i}.npy"));
        write_npy(&path, value);
        args.push(format!("{}={}", graph.info(t).name, path.display()));
    }
    let out = Command::new("python3")
        .arg(root().join("scripts/ort_reference.py"))
        .args(&args)
        .env("PYTHONPATH", py)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "ort_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read_to_string(out_dir.join("outputs.txt")).expect("outputs.txt");
    manifest.lines().filter_map(|l| l.split_once('\t')).map(|(_, file)| read_npy(&out_dir.join(file))).collect()
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
fn compare(graph: &Graph, ours: &[Tensor], reference: &[(Vec<usize>, Vec<f64>)]) -> Vec<String> {
    if ours.len() != reference.len() {
        return vec![format!("{} outputs, onnxruntime gave {}", ours.len(), reference.len())];
    }
    let mut bad = Vec::new();
    for ((&t, got), (shape, want)) in graph.outputs.iter().zip(ours).zip(reference) {
        let name = &graph.info(t).name;
        if got.shape.dims() != shape.as_slice() {
            bad.push(format!("output `{name}`: shape {} vs onnxruntime {shape:?}", got.shape));
            continue;
        }
        let err = relative_l2(&got.to_f64(), want);
        eprintln!("  output `{name}` {}: relative L2 error {err:.2e}", got.shape);
        if err.is_nan() || err > TOLERANCE {
            bad.push(format!("output `{name}`: relative L2 error {err:.3e} > {TOLERANCE:e}"));
        }
    }
    bad
}

/// Lowers `graph` and runs the program on the CPU interpreter.
fn run_on_interpreter(graph: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let program = weft_lower::lower(graph, &weft_lower::LowerOptions::default())
        .unwrap_or_else(|e| panic!("{}: lowering: {e}", graph.name));
    let buffers: Vec<HostBuffer> = inputs
        .iter()
        .map(|t| {
            let bytes: Vec<u8> = match &t.data {
                TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
            };
            HostBuffer::from_bytes(weft_lower::kir_type(t.dtype), bytes).expect("input bytes fit the type")
        })
        .collect();
    let outs = program
        .run(&weft::interp::Interpreter::new(), &buffers)
        .unwrap_or_else(|e| panic!("{}: the lowered program failed on the interpreter: {e}", graph.name));
    graph
        .outputs
        .iter()
        .zip(outs)
        .map(|(&t, buf)| {
            let info = graph.info(t);
            let b = buf.bytes();
            let values: Vec<f64> = match buf.elem() {
                Type::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
                other => panic!("output `{}` has KIR type {other:?}; ResNet-18's logits are f32", info.name),
            };
            Tensor::from_f64(info.dtype, info.shape.clone(), &values)
        })
        .collect()
}

#[test]
fn resnet18_matches_onnxruntime() {
    let Some(py) = onnxruntime_path() else { return };
    let dir = TempDir::new("resnet18");
    let t0 = Instant::now();
    let graph = weft_graph::models::resnet18(0x7e4a_0001, 1, IMAGE, CLASSES).expect("resnet18 builds");
    assert_eq!(graph.info(graph.outputs[0]).shape, Shape::new(vec![1, CLASSES]));
    assert_eq!(graph.info(graph.inputs[0]).dtype, DType::F32);
    let inputs = normal_inputs(&graph, 0x5eed_0018);
    eprintln!("resnet18: built in {:.2?}", t0.elapsed());

    let t1 = Instant::now();
    let reference = onnxruntime(&py, &graph, &inputs, &dir.0);
    eprintln!("resnet18: exported and run by onnxruntime in {:.2?}", t1.elapsed());

    let t2 = Instant::now();
    let ours = weft_graph::eval::evaluate(&graph, &inputs).expect("the evaluator runs resnet18");
    eprintln!("resnet18: reference evaluator in {:.2?}", t2.elapsed());
    let bad = compare(&graph, &ours, &reference);
    assert!(bad.is_empty(), "the evaluator disagrees with onnxruntime:\n  {}", bad.join("\n  "));

    let t3 = Instant::now();
    let lowered = run_on_interpreter(&graph, &inputs);
    eprintln!("resnet18: lowered and interpreted in {:.2?}", t3.elapsed());
    let bad = compare(&graph, &lowered, &reference);
    assert!(bad.is_empty(), "the interpreter disagrees with onnxruntime:\n  {}", bad.join("\n  "));
}

#[test]
fn resnet18_tenants_with_different_seeds_differ() {
    let Some(py) = onnxruntime_path() else { return };
    let dir_a = TempDir::new("tenant-a");
    let dir_b = TempDir::new("tenant-b");
    let a = weft_graph::models::resnet18(1, 1, IMAGE, CLASSES).expect("resnet18 builds");
    let b = weft_graph::models::resnet18(2, 1, IMAGE, CLASSES).expect("resnet18 builds");
    // One input for both tenants, so only the weights differ.
    let inputs = normal_inputs(&a, 0x5eed_0019);
    let ort_a = onnxruntime(&py, &a, &inputs, &dir_a.0);
    let ort_b = onnxruntime(&py, &b, &inputs, &dir_b.0);
    let ours_a = weft_graph::eval::evaluate(&a, &inputs).expect("tenant a evaluates");
    let ours_b = weft_graph::eval::evaluate(&b, &inputs).expect("tenant b evaluates");
    for (graph, ours, reference) in [(&a, &ours_a, &ort_a), (&b, &ours_b, &ort_b)] {
        let bad = compare(graph, ours, reference);
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
