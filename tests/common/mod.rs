//! Helpers shared by the model tests: onnxruntime as the reference (through
//! `scripts/ort_reference.py`), `.npy` files, error metrics, and running a
//! lowered program on an executor.

#![allow(dead_code)] // Each test file uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_graph::{DType, Graph, Shape, Tensor, TensorData};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (printing why), or fails under CI.
pub fn unavailable(what: &str) {
    let msg = format!("{what}: run scripts/fetch-models");
    if in_ci() {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
}

pub fn tensor_of(dtype: DType, shape: Shape, v: &[f64]) -> Tensor {
    let data = match dtype {
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
        _ => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
    };
    Tensor { dtype, shape, data }
}

pub fn write_npy(path: &Path, t: &Tensor) {
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
        TensorData::U64(v) => write!(u64, v),
        TensorData::F64(v) => write!(f64, v),
    }
}

/// A .npy file's shape and elements as `f64`.
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
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
pub fn onnxruntime(model: &Path, graph: &Graph, inputs: &[Tensor], dir: &Path) -> Option<Vec<(Vec<usize>, Vec<f64>)>> {
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
pub fn relative_l2(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Compares weft's outputs with onnxruntime's; returns the mismatches.
pub fn compare(graph: &Graph, ours: &[Tensor], reference: &[(Vec<usize>, Vec<f64>)], tolerance: f64) -> Vec<String> {
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
pub fn run_lowered(
    graph: &Graph,
    program: &weft_lower::Program,
    exec: &mut dyn weft::pack::Executor,
    inputs: &[Tensor],
) -> Vec<Tensor> {
    use weft_kir::exec::HostBuffer;
    use weft_kir::Type;
    let buffers: Vec<HostBuffer> = inputs.iter().map(weft_lower::context::tensor_to_host).collect();
    let program = std::sync::Arc::new(program.clone());
    let outs = weft::pack::run_program(exec, program, &buffers, |_| {})
        .unwrap_or_else(|e| panic!("the program failed on {}: {e}", exec.name()));
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
