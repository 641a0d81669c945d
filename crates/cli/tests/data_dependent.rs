//! Outputs whose size depends on the data (`NonZero` of a tensor the model
//! computes) through the `weft` binary: `weft run` counts them on a run of
//! the model's prefix over the same inputs, binds the counts and runs the
//! whole model, on the interpreter and on the cpu executor. Expected values
//! are computed here from the inputs, not by weft.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weft_graph::onnx::testing::{f32_input, graph, model_of, node, tensor_f32, to_bytes};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).output().expect("the weft binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-data-dependent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

const ROWS: usize = 3;
const COLS: usize = 50;

/// `idx = NonZero(x > 0.5)ᵀ` (`[N, 2]`), `picked = GatherND(x, idx)`
/// (`[N]`), `big = NonZero(picked > 0.8)` (`[1, M]`: a count that depends
/// on the first), and `twice = y + y` over a second input the prefixes do
/// not use.
fn write_model(dir: &Path) -> PathBuf {
    let inputs = vec![f32_input("y", &[2]), f32_input("x", &[ROWS as i64, COLS as i64])];
    let inits = vec![tensor_f32("half", &[], vec![0.5]), tensor_f32("high", &[], vec![0.8])];
    let nodes = vec![
        node("Greater", "above", &["x", "half"], &["mask"], vec![]),
        node("NonZero", "where_above", &["mask"], &["coords"], vec![]),
        node("Transpose", "as_rows", &["coords"], &["idx"], vec![]),
        node("GatherND", "pick", &["x", "idx"], &["picked"], vec![]),
        node("Greater", "above_high", &["picked", "high"], &["mask_high"], vec![]),
        node("NonZero", "where_high", &["mask_high"], &["big"], vec![]),
        node("Add", "double", &["y", "y"], &["twice"], vec![]),
    ];
    let outputs = ["idx", "picked", "big", "twice"].iter().map(|o| f32_input(o, &[])).collect();
    let m = model_of(18, graph("data_dependent", inputs, inits, nodes, outputs));
    let path = dir.join("data_dependent.onnx");
    std::fs::write(&path, to_bytes(&m)).expect("model written");
    path
}

fn write_f32(path: &Path, shape: &[u64], values: &[f32]) {
    use npyz::WriterBuilder;
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("npy created"));
    let mut w = npyz::WriteOptions::<f32>::new().default_dtype().shape(shape).writer(f).begin_nd().expect("npy header");
    w.extend(values.iter().copied()).expect("npy data");
    w.finish().expect("npy written");
}

fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<T>().expect("data of the expected type"))
}

#[test]
fn run_binds_nonzero_counts_from_the_inputs_on_every_host_executor() {
    let dir = temp_dir("run");
    let model = write_model(&dir);
    // Every few elements above 0.5, a third of those above 0.8.
    let x: Vec<f32> = (0..ROWS * COLS).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    let y = [1.5f32, -2.0];
    let (xf, yf) = (dir.join("x.npy"), dir.join("y.npy"));
    write_f32(&xf, &[ROWS as u64, COLS as u64], &x);
    write_f32(&yf, &[2], &y);

    let above: Vec<(usize, usize)> = (0..ROWS * COLS).filter(|&i| x[i] > 0.5).map(|i| (i / COLS, i % COLS)).collect();
    let picked: Vec<f32> = above.iter().map(|&(r, c)| x[r * COLS + c]).collect();
    let big: Vec<i64> = (0..picked.len()).filter(|&j| picked[j] > 0.8).map(|j| j as i64).collect();
    assert!(above.len() > 10 && !big.is_empty() && big.len() < above.len(), "a test input that exercises both");

    for backend in ["interp", "cpu"] {
        let out = dir.join(backend);
        let o = weft(&[
            "run",
            s(&model),
            "--backend",
            backend,
            "--input",
            &format!("x={}", s(&xf)),
            "--input",
            &format!("y={}", s(&yf)),
            "--output-dir",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{backend}: {err}");
        assert!(err.contains("data-dependent sizes bound from the inputs"), "{backend}: {err}");

        let (shape, idx) = read_npy::<i64>(&out.join("idx.npy"));
        assert_eq!(shape, [above.len() as u64, 2], "{backend}");
        let want: Vec<i64> = above.iter().flat_map(|&(r, c)| [r as i64, c as i64]).collect();
        assert_eq!(idx, want, "{backend}: coordinates of x > 0.5, row-major");
        let (_, got) = read_npy::<f32>(&out.join("picked.npy"));
        assert_eq!(got, picked, "{backend}");
        let (shape, got) = read_npy::<i64>(&out.join("big.npy"));
        assert_eq!(shape, [1, big.len() as u64], "{backend}");
        assert_eq!(got, big, "{backend}");
        let (_, got) = read_npy::<f32>(&out.join("twice.npy"));
        assert_eq!(got, [3.0, -4.0], "{backend}");
    }

    // Seeded random inputs: the prefix runs see the same inputs as the
    // whole model (a count that disagreed would fail the run).
    let o = weft(&["run", s(&model), "--backend", "interp", "--seed", "9", "--output-dir", s(&dir.join("random"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, idx) = read_npy::<i64>(&dir.join("random").join("idx.npy"));
    assert_eq!(shape.len(), 2);
    assert_eq!(idx.len() as u64, shape[0] * 2);
    assert!(idx.chunks(2).all(|rc| (0..ROWS as i64).contains(&rc[0]) && (0..COLS as i64).contains(&rc[1])));
}

#[test]
fn inspect_names_the_data_dependent_node() {
    let dir = temp_dir("inspect");
    let model = write_model(&dir);
    let o = weft(&["inspect", s(&model)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("where_above") && err.contains("NonZero") && err.contains("`mask`"), "{err}");
}

/// `y = If(sum(x) > 0, then: x · 2, else: x − 10)`, and a second If on a
/// constant condition (folded at import) choosing `+ 1`.
fn write_if_model(dir: &Path) -> PathBuf {
    use weft_graph::onnx::testing::{attr_graph, attr_int, output, tensor_i64};
    let then_branch = graph(
        "double",
        vec![],
        vec![tensor_f32("two", &[], vec![2.0])],
        vec![node("Mul", "times_two", &["x", "two"], &["doubled"], vec![])],
        vec![output("doubled")],
    );
    let else_branch = graph(
        "shift",
        vec![],
        vec![tensor_f32("ten", &[], vec![10.0])],
        vec![node("Sub", "minus_ten", &["x", "ten"], &["shifted"], vec![])],
        vec![output("shifted")],
    );
    let plus_one = graph(
        "plus_one",
        vec![],
        vec![],
        vec![node("Add", "add_one", &["picked", "one"], &["bumped"], vec![])],
        vec![output("bumped")],
    );
    let never = graph(
        "never",
        vec![],
        vec![],
        vec![node("Neg", "negate", &["picked"], &["negated"], vec![])],
        vec![output("negated")],
    );
    let nodes = vec![
        node("ReduceSum", "total", &["x"], &["sum"], vec![attr_int("keepdims", 0)]),
        node("Greater", "positive", &["sum", "zero"], &["cond"], vec![]),
        node(
            "If",
            "branch",
            &["cond"],
            &["picked"],
            vec![attr_graph("then_branch", then_branch), attr_graph("else_branch", else_branch)],
        ),
        node("Greater", "fixed", &["three", "zero_i"], &["always"], vec![]),
        node(
            "If",
            "folded",
            &["always"],
            &["y"],
            vec![attr_graph("then_branch", plus_one), attr_graph("else_branch", never)],
        ),
    ];
    let inits = vec![
        tensor_f32("zero", &[], vec![0.0]),
        tensor_f32("one", &[], vec![1.0]),
        tensor_i64("three", &[], vec![3]),
        tensor_i64("zero_i", &[], vec![0]),
    ];
    let m = model_of(18, graph("if_model", vec![f32_input("x", &[2, 3])], inits, nodes, vec![f32_input("y", &[])]));
    let path = dir.join("if.onnx");
    std::fs::write(&path, to_bytes(&m)).expect("model written");
    path
}

#[test]
fn run_binds_an_if_condition_from_the_inputs() {
    let dir = temp_dir("if");
    let model = write_if_model(&dir);
    for (name, x) in
        [("positive", [1.0f32, 2.0, -0.5, 0.25, 3.0, 0.0]), ("negative", [-1.0, 2.0, -5.5, 0.25, 0.0, 1.0])]
    {
        let xf = dir.join(format!("{name}.npy"));
        write_f32(&xf, &[2, 3], &x);
        let out = dir.join(name);
        let o = weft(&[
            "run",
            s(&model),
            "--backend",
            "interp",
            "--input",
            &format!("x={}", s(&xf)),
            "--output-dir",
            s(&out),
        ]);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let positive = x.iter().sum::<f32>() > 0.0;
        let want: Vec<f32> = x.iter().map(|v| if positive { v * 2.0 } else { v - 10.0 } + 1.0).collect();
        let (shape, got) = read_npy::<f32>(&out.join("y.npy"));
        assert_eq!(shape, [2, 3], "{name}");
        assert_eq!(got, want, "{name}: the branch the condition picks, then the folded one");
    }
}
