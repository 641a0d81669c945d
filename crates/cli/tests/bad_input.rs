//! Bad input through the `weft` binary: damaged and unsupported models, shape
//! bindings that do not fit, and `.npy` inputs of the wrong type or shape.
//! Each must exit non-zero with one line on stderr that names what is wrong
//! and where. The models are built here, so these tests need no downloads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{NodeProto, TensorProto, ValueInfoProto};
use protobuf::Enum;
use weft_graph::onnx::testing::{attr_int, attr_ints, f32_input, graph, model_of, node, to_bytes, value_info, Dim};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).output().expect("the weft binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-bad-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Asserts a non-zero exit with exactly one `weft: error:` line on stderr
/// containing every needle; returns the line.
fn fails_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "weft succeeded; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("weft: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{}` does not mention `{n}`", lines[0]);
    }
    lines[0].to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

// ----------------------------------------------------------------- models

fn write_model(
    dir: &Path,
    file: &str,
    inputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outputs: &[&str],
) -> PathBuf {
    let outputs = outputs.iter().map(|o| f32_input(o, &[])).collect();
    let m = model_of(13, graph("bad_input", inputs, inits, nodes, outputs));
    let path = dir.join(file);
    std::fs::write(&path, to_bytes(&m)).expect("model written");
    path
}

/// `y = relu(x)` with `x` of shape 2x3, float or int64.
fn relu_model(dir: &Path, elem: DataType) -> PathBuf {
    let x = value_info("x", elem, &[Dim::Value(2), Dim::Value(3)]);
    write_model(dir, "relu.onnx", vec![x], vec![], vec![node("Relu", "relu", &["x"], &["y"], vec![])], &["y"])
}

/// A 3x3 Conv over 3 channels of a fully dynamic input `x`.
fn conv_model(dir: &Path) -> PathBuf {
    let x = value_info("x", DataType::FLOAT, &[Dim::Param("batch"), Dim::Param("c"), Dim::Param("h"), Dim::Param("w")]);
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.dims = vec![4, 3, 3, 3];
    w.data_type = DataType::FLOAT.value();
    w.float_data = vec![0.1; 108];
    let k = attr_ints("kernel_shape", &[3, 3]);
    write_model(
        dir,
        "conv.onnx",
        vec![x],
        vec![w],
        vec![node("Conv", "the_conv", &["x", "w"], &["y"], vec![k])],
        &["y"],
    )
}

// ------------------------------------------------------------------ .npy

/// A version-1.0 `.npy` file with any `descr`, written by hand so that
/// element types npyz would not write (complex, strings) can be tested.
fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write_npy(dir: &Path, file: &str, descr: &str, shape: &[usize], data: &[u8]) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, npy_bytes(descr, shape, data)).expect("npy written");
    path
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

fn run_with_input(model: &Path, npy: &Path, out: &Path) -> Output {
    let input = format!("x={}", s(npy));
    weft(&["run", s(model), "--backend", "interp", "--input", &input, "--output-dir", s(out)])
}

// ------------------------------------------------------------------ tests

#[test]
fn a_truncated_model_is_refused() {
    let dir = temp_dir("truncated");
    let model = relu_model(&dir, DataType::FLOAT);
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&weft(&["inspect", s(&cut)]), &["not a valid ONNX model", "cut.onnx"]);
    fails_with(&weft(&["run", s(&cut), "--backend", "interp", "--output-dir", s(&dir)]), &["cut.onnx"]);
}

#[test]
fn random_bytes_are_refused() {
    let dir = temp_dir("random");
    let path = dir.join("noise.onnx");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, noise).unwrap();
    fails_with(&weft(&["inspect", s(&path)]), &["noise.onnx"]);
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    fails_with(&weft(&["inspect", s(&empty)]), &["empty.onnx"]);
}

#[test]
fn an_unknown_operator_is_named_with_its_node() {
    let dir = temp_dir("unknown-op");
    let x = value_info("x", DataType::FLOAT, &[Dim::Value(2)]);
    let model = write_model(
        &dir,
        "unknown.onnx",
        vec![x],
        vec![],
        vec![node("Relu", "r", &["x"], &["a"], vec![]), node("FrobnicateV2", "frob", &["a"], &["y"], vec![])],
        &["y"],
    );
    fails_with(&weft(&["inspect", s(&model)]), &["unsupported", "FrobnicateV2", "`frob`"]);
}

#[test]
fn a_shape_that_breaks_a_conv_names_the_node() {
    let dir = temp_dir("conv-shape");
    let model = conv_model(&dir);
    // Sanity: the right channel count imports.
    let ok = weft(&["inspect", s(&model), "--shape", "x=1x3x8x8"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Two channels where the weight has three.
    fails_with(&weft(&["inspect", s(&model), "--shape", "x=1x2x8x8"]), &["the_conv", "Conv"]);
    // Smaller than the kernel.
    fails_with(&weft(&["inspect", s(&model), "--shape", "x=1x3x2x2"]), &["the_conv", "kernel"]);
    // A rank the model does not declare.
    fails_with(&weft(&["inspect", s(&model), "--shape", "x=1x3x8"]), &["`x`", "rank"]);
}

#[test]
fn an_unbound_dynamic_input_says_how_to_bind_it() {
    let dir = temp_dir("unbound");
    let model = conv_model(&dir);
    let line = fails_with(&weft(&["inspect", s(&model)]), &["`x`", "--shape x="]);
    assert!(line.contains("batch"), "{line}");
    // Binding only some of the symbolic dims is still not enough.
    fails_with(&weft(&["inspect", s(&model), "--dim", "batch=1"]), &["`x`"]);
    fails_with(
        &weft(&["run", s(&model), "--backend", "interp", "--output-dir", s(&dir)]),
        &["`x`", "dynamic dimensions"],
    );
}

#[test]
fn a_huge_shape_binding_is_refused_before_allocating() {
    let dir = temp_dir("huge");
    let model = conv_model(&dir);
    fails_with(&weft(&["inspect", s(&model), "--shape", "x=65536x3x65536x65536"]), &["`x`", "limit"]);
}

#[test]
fn a_complex_npy_is_refused() {
    let dir = temp_dir("complex");
    let model = relu_model(&dir, DataType::FLOAT);
    let npy = write_npy(&dir, "complex.npy", "<c8", &[2, 3], &[0u8; 48]);
    fails_with(&run_with_input(&model, &npy, &dir), &["complex.npy", "c8", "--input x"]);
}

#[test]
fn a_string_npy_is_refused() {
    let dir = temp_dir("string");
    let model = relu_model(&dir, DataType::FLOAT);
    let npy = write_npy(&dir, "strings.npy", "<U3", &[2, 3], &[0u8; 72]);
    fails_with(&run_with_input(&model, &npy, &dir), &["strings.npy", "U3", "--input x"]);
}

#[test]
fn a_float64_npy_for_a_float_input_is_accepted() {
    // f8 is documented as accepted (rounded to the input's type).
    let dir = temp_dir("f8");
    let model = relu_model(&dir, DataType::FLOAT);
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f64 - 2.0).to_le_bytes()).collect();
    let npy = write_npy(&dir, "f8.npy", "<f8", &[2, 3], &data);
    let o = run_with_input(&model, &npy, &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_truncated_npy_is_refused() {
    let dir = temp_dir("npy-cut");
    let model = relu_model(&dir, DataType::FLOAT);
    // The header promises six floats; the file holds two.
    let npy = write_npy(&dir, "short.npy", "<f4", &[2, 3], &f32_bytes(2));
    fails_with(&run_with_input(&model, &npy, &dir), &["short.npy", "--input x", "truncated"]);
    let garbage = dir.join("garbage.npy");
    std::fs::write(&garbage, b"not an npy file at all").unwrap();
    fails_with(&run_with_input(&model, &garbage, &dir), &["garbage.npy", "--input x"]);
}

#[test]
fn an_npy_of_the_wrong_shape_is_refused() {
    let dir = temp_dir("npy-shape");
    let model = relu_model(&dir, DataType::FLOAT);
    let npy = write_npy(&dir, "wrong.npy", "<f4", &[3, 2], &f32_bytes(6));
    let line = fails_with(&run_with_input(&model, &npy, &dir), &["wrong.npy", "--input x"]);
    assert!(line.contains("[3, 2]") && line.contains("[2, 3]"), "{line}");
    // Same element count, different rank.
    let npy = write_npy(&dir, "flat.npy", "<f4", &[6], &f32_bytes(6));
    fails_with(&run_with_input(&model, &npy, &dir), &["flat.npy", "[6]"]);
}

#[test]
fn an_input_the_model_lacks_is_refused() {
    let dir = temp_dir("no-such-input");
    let model = relu_model(&dir, DataType::FLOAT);
    let npy = write_npy(&dir, "x.npy", "<f4", &[2, 3], &f32_bytes(6));
    let spec = format!("nope={}", s(&npy));
    let o = weft(&["run", s(&model), "--backend", "interp", "--input", &spec, "--output-dir", s(&dir)]);
    fails_with(&o, &["`nope`", "x"]);
}

#[test]
fn a_fortran_order_npy_is_read_in_its_own_order() {
    let dir = temp_dir("fortran");
    let model = relu_model(&dir, DataType::FLOAT);
    // Row-major [[0, 1, 2], [3, -4, 5]], stored column by column.
    let column_major: Vec<u8> = [0.0f32, 3.0, 1.0, -4.0, 2.0, 5.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = npy_bytes("<f4", &[2, 3], &column_major);
    let flag = b"'fortran_order': False";
    let at = bytes.windows(flag.len()).position(|w| w == flag).expect("header flag");
    bytes[at..at + flag.len()].copy_from_slice(b"'fortran_order': True ");
    let path = dir.join("fortran.npy");
    std::fs::write(&path, bytes).expect("npy written");
    let out = dir.join("out");
    let o = run_with_input(&model, &path, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = std::fs::read(out.join("y.npy")).expect("output written");
    let y: Vec<f32> = npyz::NpyFile::new(&y[..]).expect("npy").into_vec().expect("f32 data");
    assert_eq!(y, vec![0.0, 1.0, 2.0, 3.0, 0.0, 5.0]);
}

#[test]
fn a_float_npy_for_an_integer_input_is_refused() {
    let dir = temp_dir("float-for-int");
    let x = value_info("x", DataType::INT64, &[Dim::Value(2), Dim::Value(3)]);
    let model =
        write_model(&dir, "neg.onnx", vec![x], vec![], vec![node("Neg", "neg", &["x"], &["y"], vec![])], &["y"]);
    // 1.7 would become 1 and NaN 0 if converted.
    let data: Vec<u8> = [1.7f32, f32::NAN, 0.0, 1.0, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let npy = write_npy(&dir, "floats.npy", "<f4", &[2, 3], &data);
    fails_with(&run_with_input(&model, &npy, &dir), &["floats.npy", "--input x", "f4", "i64"]);
}

#[test]
fn an_input_given_twice_is_refused() {
    let dir = temp_dir("twice");
    let model = relu_model(&dir, DataType::FLOAT);
    let a = write_npy(&dir, "a.npy", "<f4", &[2, 3], &f32_bytes(6));
    let b = write_npy(&dir, "b.npy", "<f4", &[2, 3], &f32_bytes(6));
    let (a, b) = (format!("x={}", s(&a)), format!("x={}", s(&b)));
    let o = weft(&["run", s(&model), "--backend", "interp", "--input", &a, "--input", &b, "--output-dir", s(&dir)]);
    fails_with(&o, &["`x`", "twice", "b.npy"]);
}

#[test]
fn dynamic_dimensions_are_bound_from_the_input_file() {
    let dir = temp_dir("dims-from-file");
    let model = conv_model(&dir);
    let npy = write_npy(&dir, "x.npy", "<f4", &[1, 3, 5, 6], &f32_bytes(90));
    let out = dir.join("out");
    let o = run_with_input(&model, &npy, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = std::fs::read(out.join("y.npy")).expect("output written");
    let y = npyz::NpyFile::new(&y[..]).expect("npy");
    assert_eq!(y.shape(), &[1, 4, 3, 4]);
    // An explicit binding that disagrees with the file names the dimension.
    let input = format!("x={}", s(&npy));
    let o =
        weft(&["run", s(&model), "--backend", "interp", "--dim", "h=7", "--input", &input, "--output-dir", s(&out)]);
    fails_with(&o, &["`x`", "`h`", "7", "5"]);
}

// ------------------------------------------------------------ the budget

/// `x: [1]` padded (`Pad`) or broadcast (`Expand`) to a billion elements:
/// 4 GB of f32 that must never be allocated.
fn billion_models(dir: &Path) -> (PathBuf, PathBuf) {
    use weft_graph::onnx::testing::tensor_i64;
    let pads = tensor_i64("pads", &[2], vec![0, 999_999_999]);
    let pad = write_model(
        dir,
        "pad.onnx",
        vec![f32_input("x", &[1])],
        vec![pads],
        vec![node("Pad", "pad_huge", &["x", "pads"], &["y"], vec![])],
        &["y"],
    );
    let shape = tensor_i64("s", &[3], vec![1000, 1000, 1000]);
    let expand = write_model(
        dir,
        "expand.onnx",
        vec![f32_input("x", &[1])],
        vec![shape],
        vec![node("Expand", "grow_huge", &["x", "s"], &["y"], vec![])],
        &["y"],
    );
    (pad, expand)
}

#[test]
fn a_billion_element_pad_or_expand_is_refused_by_the_memory_budget() {
    let dir = temp_dir("billion");
    let (pad, expand) = billion_models(&dir);
    for (model, node) in [(&pad, "pad_huge"), (&expand, "grow_huge")] {
        for cmd in ["run", "inspect", "pack"] {
            let mut args = vec![cmd, s(model), "--max-memory", "1G"];
            if cmd == "run" {
                args.extend(["--backend", "interp", "--output-dir", s(&dir)]);
            }
            let out_dir = dir.join("pack");
            if cmd == "pack" {
                args.extend(["--out", s(&out_dir)]);
            }
            let line = fails_with(&weft(&args), &[node, "--max-memory", "1.0 GiB"]);
            assert!(line.contains("memory budget"), "{line}");
        }
    }
}

#[test]
fn a_program_over_the_budget_is_refused_before_it_runs() {
    let dir = temp_dir("program-budget");
    // x: [100, 100] → relu: each tensor 40 kB fits a 50 kB budget alone, but
    // the run holds the input, the output and its download (120 kB).
    let x = value_info("x", DataType::FLOAT, &[Dim::Value(100), Dim::Value(100)]);
    let model =
        write_model(&dir, "relu.onnx", vec![x], vec![], vec![node("Relu", "relu", &["x"], &["y"], vec![])], &["y"]);
    let args = |budget: &'static str| {
        ["run", s(&model), "--backend", "interp", "--max-memory", budget, "--output-dir", s(&dir)].map(str::to_string)
    };
    let o = Command::new(env!("CARGO_BIN_EXE_weft")).args(args("50K")).output().unwrap();
    fails_with(&o, &["program", "117.2 KiB", "50.0 KiB", "--max-memory"]);
    let o = Command::new(env!("CARGO_BIN_EXE_weft")).args(args("1M")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_bad_budget_is_a_usage_error() {
    let dir = temp_dir("bad-budget");
    let model = relu_model(&dir, DataType::FLOAT);
    for bad in ["12Q", "0", "1.5G", "3X"] {
        let o = weft(&["inspect", s(&model), "--max-memory", bad]);
        assert!(!o.status.success(), "--max-memory {bad} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--max-memory") && err.contains(bad), "{err}");
    }
    assert!(weft(&["inspect", s(&model), "--max-memory", "64M"]).status.success());
}

#[test]
fn an_input_file_that_disagrees_with_an_explicit_shape_names_the_dimension() {
    let dir = temp_dir("shape-conflict");
    let model = conv_model(&dir);
    let npy = write_npy(&dir, "x.npy", "<f4", &[1, 3, 9, 9], &f32_bytes(243));
    let input = format!("x={}", s(&npy));
    let o = weft(&[
        "run",
        s(&model),
        "--backend",
        "interp",
        "--shape",
        "x=1x3x8x8",
        "--input",
        &input,
        "--output-dir",
        s(&dir),
    ]);
    fails_with(&o, &["`x`", "--shape", "dimension 2", "[1x3x9x9]"]);
}

#[test]
fn pack_verifies_many_tenants_in_groups_within_the_budget() {
    let dir = temp_dir("pack-groups");
    let model = relu_model(&dir, DataType::FLOAT);
    let spec = format!("{}x8", s(&model));
    let out = dir.join("out");
    let o = weft(&["pack", &spec, "--out", s(&out), "--max-memory", "300"]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}{}", stdout, String::from_utf8_lossy(&o.stderr));
    let line = stdout.lines().find(|l| l.starts_with("verified")).unwrap_or_else(|| panic!("{stdout}"));
    // Verified in several groups, each bit-identical to its solo runs.
    let groups: usize =
        line.split(" in ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(groups > 1, "{line}");
    assert!(line.contains("all 8 at once") && line.contains("bit-identical"), "{line}");
    // With room for all of them, one run.
    let o = weft(&["pack", &spec, "--out", s(&out)]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stdout.contains("all 8 tenants' outputs are bit-identical"), "{stdout}");
}

// ------------------------------------------------------- run-time indices

/// A model `y = op(data, idx[, updates])` whose `data` (and `updates`) are
/// float initializers and whose int64 indices `idx` are the input.
fn index_model(
    dir: &Path,
    op: &str,
    data: (&[i64], Vec<f32>),
    idx_dims: &[i64],
    updates: Option<(&[i64], Vec<f32>)>,
    attrs: Vec<onnx_protobuf::AttributeProto>,
) -> PathBuf {
    use weft_graph::onnx::testing::tensor_f32;
    let idx_dims: Vec<Dim> = idx_dims.iter().map(|&d| Dim::Value(d)).collect();
    let idx = value_info("idx", DataType::INT64, &idx_dims);
    let mut inits = vec![tensor_f32("data", data.0, data.1)];
    let mut ins = vec!["data", "idx"];
    if let Some((dims, values)) = updates {
        inits.push(tensor_f32("updates", dims, values));
        ins.push("updates");
    }
    let file = format!("{op}.onnx");
    write_model(dir, &file, vec![idx], inits, vec![node(op, "the_op", &ins, &["y"], attrs)], &["y"])
}

/// Runs `model` on the interpreter with `idx` (int64, shape `dims`).
fn run_with_indices(dir: &Path, model: &Path, dims: &[usize], idx: &[i64]) -> Output {
    let data: Vec<u8> = idx.iter().flat_map(|v| v.to_le_bytes()).collect();
    let npy = write_npy(dir, "idx.npy", "<i8", dims, &data);
    run_with_input_named(model, "idx", &npy, dir)
}

fn run_with_input_named(model: &Path, name: &str, npy: &Path, out: &Path) -> Output {
    let input = format!("{name}={}", s(npy));
    weft(&["run", s(model), "--backend", "interp", "--input", &input, "--output-dir", s(out)])
}

/// Succeeds and returns output `y`.
fn output_y(o: &Output, dir: &Path) -> Vec<f32> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = std::fs::read(dir.join("y.npy")).expect("output written");
    npyz::NpyFile::new(&y[..]).expect("npy").into_vec().expect("f32 data")
}

#[test]
fn a_gather_index_out_of_range_at_run_time_names_the_node() {
    let dir = temp_dir("gather-oob");
    let data: Vec<f32> = (0..10).map(|v| v as f32).collect();
    let model = index_model(&dir, "Gather", (&[5, 2], data), &[3], None, vec![]);
    for bad in [[0, 7, -1], [0, -6, 1]] {
        let o = run_with_indices(&dir, &model, &[3], &bad);
        fails_with(&o, &["`the_op`", "Gather", "`idx`", "[-5, 5)"]);
        assert!(!dir.join("y.npy").exists(), "no outputs after an index error");
    }
    let o = run_with_indices(&dir, &model, &[3], &[4, -5, -1]);
    assert_eq!(output_y(&o, &dir), vec![8.0, 9.0, 0.0, 1.0, 8.0, 9.0]);
}

#[test]
fn a_gather_elements_index_out_of_range_at_run_time_names_the_node() {
    let dir = temp_dir("gather-elements-oob");
    let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
    let model = index_model(&dir, "GatherElements", (&[2, 3], data), &[2, 2], None, vec![attr_int("axis", 1)]);
    let o = run_with_indices(&dir, &model, &[2, 2], &[0, 3, 1, 1]);
    fails_with(&o, &["`the_op`", "GatherElements", "`idx`", "[-3, 3)"]);
    let o = run_with_indices(&dir, &model, &[2, 2], &[2, -3, -1, 0]);
    assert_eq!(output_y(&o, &dir), vec![2.0, 0.0, 5.0, 3.0]);
}

#[test]
fn a_gather_nd_index_out_of_range_at_run_time_names_the_node() {
    let dir = temp_dir("gather-nd-oob");
    let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
    let model = index_model(&dir, "GatherND", (&[2, 3], data), &[2, 2], None, vec![]);
    let o = run_with_indices(&dir, &model, &[2, 2], &[1, -4, 0, 0]);
    fails_with(&o, &["`the_op`", "GatherND", "`idx`", "[-3, 3)"]);
    let o = run_with_indices(&dir, &model, &[2, 2], &[2, 0, 0, 0]);
    fails_with(&o, &["`the_op`", "GatherND", "`idx`", "[-2, 2)"]);
    let o = run_with_indices(&dir, &model, &[2, 2], &[-1, 2, 0, -3]);
    assert_eq!(output_y(&o, &dir), vec![5.0, 0.0]);
}

#[test]
fn a_scatter_nd_index_out_of_range_at_run_time_names_the_node() {
    let dir = temp_dir("scatter-nd-oob");
    let model = index_model(
        &dir,
        "ScatterND",
        (&[4], vec![1.0, 2.0, 3.0, 4.0]),
        &[2, 1],
        Some((&[2], vec![10.0, 20.0])),
        vec![],
    );
    let o = run_with_indices(&dir, &model, &[2, 1], &[4, 0]);
    fails_with(&o, &["`the_op`", "ScatterND", "`idx`", "[-4, 4)"]);
    let o = run_with_indices(&dir, &model, &[2, 1], &[-1, 0]);
    assert_eq!(output_y(&o, &dir), vec![20.0, 2.0, 3.0, 10.0]);
}
