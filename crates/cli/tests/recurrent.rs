//! RNN, GRU and LSTM through `weft run`, against onnxruntime on the same
//! `.npy` inputs (`scripts/ort_reference.py`), in the configurations ONNX's
//! own conformance cases leave out: GRU with `linear_before_reset`, both
//! directions and an initial state; LSTM with peepholes, `clip`, rows
//! shorter than the sequence (`sequence_lens`) and every output;
//! parameterised activations (HardSigmoid, ScaledTanh, Affine, LeakyRelu).
//! Relative L2 ≤ 1e-4 per output. (`layout = 1` is checked by ONNX's
//! conformance cases: onnxruntime's CPU kernels take layout 0 only.)
//!
//! `scripts/fetch-models` installs onnxruntime into `.cache/py`; without
//! it these tests print why and pass, except under `CI=true`, where they
//! fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::AttributeProto;
use weft_graph::onnx::testing::{
    attr_float, attr_floats, attr_int, attr_string, attr_strings, graph, model_of, node, tensor_f32, to_bytes,
    value_info, Dim,
};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-recurrent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let mut out = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut out).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, out).expect("npy written");
}

fn read_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<f32>().expect("f32 data"))
}

/// Whether onnxruntime is installed; says why a test skips (a failure under
/// `CI=true`).
fn onnxruntime_or_skip(test: &str) -> bool {
    let py = workspace_root().join(".cache/py");
    if py.join("onnxruntime").exists() {
        return true;
    }
    let msg = format!("onnxruntime is not in {}: run scripts/fetch-models", py.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping {test}: {msg}");
    false
}

/// Runs `model` on onnxruntime and through `weft run` on the same `.npy`
/// inputs (`feeds`: input name and file) and compares the `f32` outputs
/// `outs`; removes the model's directory after.
fn matches_onnxruntime(name: &str, model: &Path, feeds: &[(String, PathBuf)], outs: &[&str]) {
    let dir = model.parent().expect("the model is in its test's directory");
    let specs: Vec<String> = feeds.iter().map(|(n, p)| format!("{n}={}", p.display())).collect();
    let ort = dir.join("ort");
    let o = Command::new("python3")
        .arg(workspace_root().join("scripts/ort_reference.py"))
        .arg(model)
        .arg(&ort)
        .args(&specs)
        .env("PYTHONPATH", workspace_root().join(".cache/py"))
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "{name}: ort_reference.py: {}", String::from_utf8_lossy(&o.stderr));
    let got = dir.join("weft");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(["run", model.to_str().unwrap(), "--backend", "interp", "--output-dir", got.to_str().unwrap()]);
    for s in &specs {
        cmd.args(["--input", s]);
    }
    let o = cmd.output().expect("the weft binary runs");
    assert!(o.status.success(), "{name}: weft run: {}", String::from_utf8_lossy(&o.stderr));
    for out in outs {
        let (want_shape, want) = read_f32(&ort.join(format!("{out}.npy")));
        let (got_shape, got) = read_f32(&got.join(format!("{out}.npy")));
        assert_eq!(got_shape, want_shape, "{name}: {out}");
        let diff: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
        let err = if norm > 0.0 { diff / norm } else { diff };
        assert!(err <= 1e-4, "{name}: {out} differs from onnxruntime: relative L2 {err:.3e}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// One recurrent layer's configuration.
struct Case {
    name: &'static str,
    op: &'static str,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
    layout: i64,
    attrs: Vec<AttributeProto>,
    /// Row lengths (`sequence_lens`), if given.
    lens: Option<Vec<i32>>,
    initial_h: bool,
    peepholes: bool,
}

impl Case {
    fn gates(&self) -> usize {
        match self.op {
            "RNN" => 1,
            "GRU" => 3,
            _ => 4,
        }
    }

    /// Runs the case on onnxruntime and through `weft run`; compares.
    fn check(&self) {
        if !onnxruntime_or_skip(self.name) {
            return;
        }
        let dir = temp_dir(self.name);
        let (g, h, d) = (self.gates(), self.hidden, self.dirs);
        let x_shape =
            if self.layout == 0 { [self.seq, self.batch, self.input] } else { [self.batch, self.seq, self.input] };
        let mut inputs = vec![value_info("X", DataType::FLOAT, &x_shape.map(|v| Dim::Value(v as i64)))];
        let mut feeds: Vec<(String, PathBuf)> = Vec::new();
        let x = values(x_shape.iter().product(), 1, 1.5);
        write_npy(&dir.join("X.npy"), &x_shape.map(|v| v as u64), &x);
        feeds.push(("X".into(), dir.join("X.npy")));
        let mut inits = vec![
            tensor_f32("W", &[d as i64, (g * h) as i64, self.input as i64], values(d * g * h * self.input, 2, 0.6)),
            tensor_f32("R", &[d as i64, (g * h) as i64, h as i64], values(d * g * h * h, 3, 0.6)),
            tensor_f32("B", &[d as i64, (2 * g * h) as i64], values(d * 2 * g * h, 4, 0.4)),
        ];
        let mut node_inputs = vec!["X", "W", "R", "B", "", "", "", ""];
        if let Some(lens) = &self.lens {
            inputs.push(value_info("sequence_lens", DataType::INT32, &[Dim::Value(self.batch as i64)]));
            write_npy(&dir.join("lens.npy"), &[self.batch as u64], lens);
            feeds.push(("sequence_lens".into(), dir.join("lens.npy")));
            node_inputs[4] = "sequence_lens";
        }
        if self.initial_h {
            let shape = if self.layout == 0 { [d, self.batch, h] } else { [self.batch, d, h] };
            inputs.push(value_info("initial_h", DataType::FLOAT, &shape.map(|v| Dim::Value(v as i64))));
            write_npy(&dir.join("h0.npy"), &shape.map(|v| v as u64), &values(d * self.batch * h, 5, 1.0));
            feeds.push(("initial_h".into(), dir.join("h0.npy")));
            node_inputs[5] = "initial_h";
        }
        if self.peepholes {
            inits.push(tensor_f32("P", &[d as i64, (3 * h) as i64], values(d * 3 * h, 6, 0.5)));
            node_inputs[7] = "P";
        }
        while node_inputs.last() == Some(&"") {
            node_inputs.pop();
        }
        let outs: &[&str] = if self.op == "LSTM" { &["Y", "Y_h", "Y_c"] } else { &["Y", "Y_h"] };
        let mut attrs = vec![attr_int("hidden_size", h as i64), attr_int("layout", self.layout)];
        if d == 2 {
            attrs.push(attr_string("direction", "bidirectional"));
        }
        attrs.extend(self.attrs.iter().cloned());
        let n = node(self.op, "layer", &node_inputs, outs, attrs);
        let outputs = outs
            .iter()
            .map(|o| {
                let rank = if *o == "Y" { 4 } else { 3 };
                let dims: Vec<Dim> = ["d0", "d1", "d2", "d3"][..rank].iter().map(|p| Dim::Param(p)).collect();
                value_info(o, DataType::FLOAT, &dims)
            })
            .collect();
        let model = dir.join("model.onnx");
        std::fs::write(&model, to_bytes(&model_of(22, graph(self.name, inputs, inits, vec![n], outputs))))
            .expect("model written");

        matches_onnxruntime(self.name, &model, &feeds, outs);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn gru_linear_before_reset_bidirectional_with_initial_state() {
    Case {
        name: "gru_lbr_bidirectional",
        op: "GRU",
        seq: 5,
        batch: 3,
        input: 4,
        hidden: 6,
        dirs: 2,
        layout: 0,
        attrs: vec![attr_int("linear_before_reset", 1)],
        lens: None,
        initial_h: true,
        peepholes: false,
    }
    .check();
}

#[test]
fn lstm_with_short_rows_peepholes_and_clip() {
    Case {
        name: "lstm_lens_peepholes_clip",
        op: "LSTM",
        seq: 6,
        batch: 3,
        input: 3,
        hidden: 5,
        dirs: 1,
        layout: 0,
        attrs: vec![attr_float("clip", 0.7)],
        lens: Some(vec![6, 2, 4]),
        initial_h: true,
        peepholes: true,
    }
    .check();
}

#[test]
fn gru_batch_major_with_short_rows() {
    Case {
        name: "gru_layout1_lens",
        op: "GRU",
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 4,
        dirs: 1,
        layout: 0,
        attrs: vec![],
        lens: Some(vec![1, 4]),
        initial_h: false,
        peepholes: false,
    }
    .check();
}

#[test]
fn lstm_and_rnn_with_parameterised_activations() {
    Case {
        name: "lstm_activations",
        op: "LSTM",
        seq: 4,
        batch: 2,
        input: 3,
        hidden: 4,
        dirs: 2,
        layout: 0,
        attrs: vec![
            attr_strings("activations", &["HardSigmoid", "ScaledTanh", "Affine", "Sigmoid", "Tanh", "Softsign"]),
            attr_floats("activation_alpha", &[0.3, 0.9, 0.5]),
            attr_floats("activation_beta", &[0.4, 1.1, 0.2]),
        ],
        lens: None,
        initial_h: false,
        peepholes: false,
    }
    .check();
    Case {
        name: "rnn_leaky",
        op: "RNN",
        seq: 5,
        batch: 2,
        input: 3,
        hidden: 4,
        dirs: 1,
        layout: 0,
        attrs: vec![attr_strings("activations", &["LeakyRelu"]), attr_floats("activation_alpha", &[0.2])],
        lens: None,
        initial_h: true,
        peepholes: false,
    }
    .check();
}

/// Scan with a reverse scan input along axis 1, a forward one along axis 0,
/// and scan outputs stacked along axis 2 (in reverse) and axis −1: the
/// directions and axes ONNX's conformance cases leave at their defaults.
#[test]
fn scan_with_directions_and_axes() {
    use weft_graph::onnx::testing::{attr_graph, attr_ints, tensor_i64};
    const NAME: &str = "scan_directions_axes";
    if !onnxruntime_or_skip(NAME) {
        return;
    }
    let dir = temp_dir(NAME);
    let f32s = |name: &str, dims: &[i64]| {
        value_info(name, DataType::FLOAT, &dims.iter().map(|&d| Dim::Value(d)).collect::<Vec<_>>())
    };
    // body(s: [2], a: [3, 2], b: [3]) -> (s + Σ_rows a, a + s, b · 2)
    let body = graph(
        "body",
        vec![f32s("s", &[2]), f32s("a", &[3, 2]), f32s("b", &[3])],
        vec![tensor_i64("rows", &[1], vec![0]), tensor_f32("two", &[], vec![2.0])],
        vec![
            node("ReduceSum", "sum_rows", &["a", "rows"], &["col_sums"], vec![attr_int("keepdims", 0)]),
            node("Add", "next_state", &["s", "col_sums"], &["s_out"], vec![]),
            node("Add", "shifted", &["a", "s"], &["a_out"], vec![]),
            node("Mul", "doubled", &["b", "two"], &["b_out"], vec![]),
        ],
        vec![f32s("s_out", &[2]), f32s("a_out", &[3, 2]), f32s("b_out", &[3])],
    );
    let scan = node(
        "Scan",
        "scan",
        &["init", "x", "y"],
        &["final", "ys", "zs"],
        vec![
            attr_graph("body", body),
            attr_int("num_scan_inputs", 2),
            attr_ints("scan_input_axes", &[1, 0]),
            attr_ints("scan_input_directions", &[1, 0]),
            attr_ints("scan_output_axes", &[2, -1]),
            attr_ints("scan_output_directions", &[1, 0]),
        ],
    );
    let inputs = vec![f32s("init", &[2]), f32s("x", &[3, 4, 2]), f32s("y", &[4, 3])];
    let outputs = vec![f32s("final", &[2]), f32s("ys", &[3, 2, 4]), f32s("zs", &[3, 4])];
    let model = dir.join("model.onnx");
    std::fs::write(&model, to_bytes(&model_of(17, graph(NAME, inputs, vec![], vec![scan], outputs))))
        .expect("model written");
    let mut feeds = Vec::new();
    for (name, shape, seed) in [("init", &[2u64][..], 7), ("x", &[3, 4, 2], 8), ("y", &[4, 3], 9)] {
        let path = dir.join(format!("{name}.npy"));
        write_npy(&path, shape, &values(shape.iter().product::<u64>() as usize, seed, 1.0));
        feeds.push((name.to_string(), path));
    }
    matches_onnxruntime(NAME, &model, &feeds, &["final", "ys", "zs"]);
}
