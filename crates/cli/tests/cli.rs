//! The `weft` binary end to end: help, inspect, compile (twice, the second
//! from the cache), run (random and given inputs), and one-line errors.
//!
//! The model is the small PP-OCR classifier that `scripts/fetch-models` puts
//! in `.cache/models/`; without it these tests print why and pass, except
//! under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).output().expect("the weft binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn workspace_root() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    Path::new(&manifest).join("../..")
}

fn classifier() -> Option<PathBuf> {
    let path =
        workspace_root().join(".cache/models/rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    if path.exists() {
        return Some(path);
    }
    let msg = format!("{} is missing: run scripts/fetch-models", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
    None
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn read_f32_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("npy written");
    let file = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<f32>().expect("f32 data"))
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["inspect", "compile", "run"] {
        let o = weft(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help failed: {}", stderr(&o));
        assert!(stdout(&o).contains("--shape"), "{sub} --help does not document --shape");
    }
    assert!(weft(&["--help"]).status.success());
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let o = weft(&["inspect", "no-such-model.onnx"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.starts_with("weft: error: ") && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("no-such-model.onnx"), "{err}");

    let o = weft(&["inspect", "m.onnx", "--shape", "x=1xtwo"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--shape `x=1xtwo`"), "{}", stderr(&o));
}

#[test]
fn inspect_lists_inputs_ops_and_flops() {
    let Some(model) = classifier() else { return };
    let m = model.to_str().expect("utf-8 path");
    // The model's input has dynamic dims: without a binding the error says how to bind them.
    let o = weft(&["inspect", m]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--shape x="), "{}", stderr(&o));

    let o = weft(&["inspect", m, "--shape", "x=1x3x48x192", "--nodes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("input  x") && out.contains("[1x3x48x192]"), "{out}");
    assert!(out.contains("Conv") && out.contains("FLOPs:") && out.contains("parameters:"), "{out}");
}

#[test]
fn compile_writes_kernels_and_hits_the_cache_the_second_time() {
    let Some(model) = classifier() else { return };
    let nvrtc = weft::codegen::Compiler::new(weft::codegen::Arch::SM_90);
    if let Err(e) = nvrtc.nvrtc() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("NVRTC is required when CI=true: {e}");
        }
        eprintln!("skipping compile test: {e}");
        return;
    }
    let out = temp_dir("compile");
    let cache = temp_dir("compile-cache");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["compile", model.to_str().unwrap(), "--shape", "x=1x3x48x192", "--out", out.to_str().unwrap()])
            .env("WEFT_CACHE_DIR", &cache)
            .output()
            .expect("weft runs")
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    let table = std::fs::read_to_string(out.join("kernels.tsv")).expect("kernels.tsv written");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(rows.len() > 10, "expected many kernels, got {}", rows.len());
    let column = table.lines().next().unwrap().split('\t').position(|c| c == "blocks_per_sm").expect("blocks_per_sm");
    for row in &rows {
        let name = row.split('\t').next().unwrap();
        assert!(out.join(format!("{name}.cu")).exists() && out.join(format!("{name}.ptx")).exists(), "{name}");
        let blocks: u32 = row.split('\t').nth(column).and_then(|b| b.parse().ok()).expect("blocks per SM");
        assert!(blocks > 0, "{name}: no block fits an SM: {row}");
    }
    assert!(!stdout(&first).contains(" 0 compiled by NVRTC"), "{}", stdout(&first));
    let second = run();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains(" 0 compiled by NVRTC"),
        "second compile was not served from the cache: {}",
        stdout(&second)
    );
}

#[test]
fn run_writes_outputs_and_given_inputs_reproduce_them() {
    let Some(model) = classifier() else { return };
    let m = model.to_str().unwrap();
    let dir = temp_dir("run");
    let o = weft(&[
        "run",
        m,
        "--backend",
        "interp",
        "--shape",
        "x=1x3x48x192",
        "--seed",
        "3",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("save_infer_model_scale_0.tmp_1.npy");
    let (shape, probs) = read_f32_npy(&out);
    assert_eq!(shape, vec![1, 2]);
    let sum: f32 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax output should sum to 1, got {probs:?}");

    // The same input given explicitly gives the same output bit for bit.
    let input = dir.join("x.npy");
    let values: Vec<f32> = (0..3 * 48 * 192).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    {
        use npyz::WriterBuilder;
        let f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut w =
            npyz::WriteOptions::<f32>::new().default_dtype().shape(&[1, 3, 48, 192]).writer(f).begin_nd().unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let spec = format!("x={}", input.display());
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        let o = weft(&[
            "run",
            m,
            "--backend",
            "interp",
            "--shape",
            "x=1x3x48x192",
            "--input",
            &spec,
            "--output-dir",
            d.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let ra = read_f32_npy(&a.join("save_infer_model_scale_0.tmp_1.npy")).1;
    let rb = read_f32_npy(&b.join("save_infer_model_scale_0.tmp_1.npy")).1;
    assert_eq!(ra, rb);
    assert_ne!(ra, probs, "a different input should change the output");

    // An input whose shape disagrees with `--shape` is a one-line error
    // naming the input and the dimension.
    let o = weft(&[
        "run",
        m,
        "--backend",
        "interp",
        "--shape",
        "x=1x3x48x96",
        "--input",
        &spec,
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("input `x`") && err.contains("--shape") && err.contains("dimension 3"), "{err}");
}

#[test]
fn pack_prints_bundles_verifies_them_and_draws_the_plan() {
    let Some(model) = classifier() else { return };
    let two = format!("{}x2", model.display());
    let out = temp_dir("pack");
    for mode in ["coalesce", "constrain", "auto"] {
        let o = weft(&["pack", &two, "--shape", "x=1x3x48x192", "--mode", mode, "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("2 tenants") && text.contains("bundle 0:"), "{mode}: {text}");
        assert!(text.contains("cost model: the predictor's prior") && text.contains(" µs"), "{mode}: {text}");
        assert!(text.contains("bit-identical to their solo runs"), "{mode}: {text}");
        let trace = std::fs::read_to_string(out.join("plan.trace.json")).expect("trace written");
        assert!(trace.starts_with('{') && trace.contains("\"traceEvents\""), "{mode}");
        assert!(trace.matches("\"cat\":\"slot\"").count() >= 2 * 60, "{mode}: every kernel of both tenants is a slot");
        let svg = std::fs::read_to_string(out.join("plan.svg")).expect("svg written");
        assert!(svg.starts_with("<svg") && svg.contains("_cls_infer#1"), "{mode}");
    }
    let o = weft(&["pack", &two, "--shape", "x=1x3x48x192", "--knob", "2", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--knob"), "{}", stderr(&o));
}

#[test]
fn pack_writes_each_distinct_bundle_module_with_its_figures() {
    let Some(model) = classifier() else { return };
    let nvrtc = weft::codegen::Compiler::new(weft::codegen::Arch::SM_90);
    if let Err(e) = nvrtc.nvrtc() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("NVRTC is required when CI=true: {e}");
        }
        eprintln!("skipping bundle-module test: {e}");
        return;
    }
    let two = format!("{}x2", model.display());
    let out = temp_dir("pack-bundles");
    let o = weft(&["pack", &two, "--shape", "x=1x3x48x192", "--out", out.to_str().unwrap(), "--no-verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let bundles: usize = text
        .split(" bundles (")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bundle count in {text}"));
    let table = std::fs::read_to_string(out.join("bundles.tsv")).expect("bundles.tsv written");
    let header: Vec<&str> = table.lines().next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap_or_else(|| panic!("no column {name}"));
    for name in [
        "bundle",
        "mode",
        "bodies",
        "registers",
        "max_body_registers",
        "spill_bytes",
        "shared_bytes",
        "blocks_per_sm",
        "max_body_blocks_per_sm",
    ] {
        col(name);
    }
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|r| r.split('\t').collect()).collect();
    assert!(rows.len() > 10, "expected many distinct bundles, got {}", rows.len());
    let launches: usize = rows.iter().map(|r| r[col("launches")].parse::<usize>().unwrap()).sum();
    assert_eq!(launches, bundles, "every launch of the plan belongs to one distinct module");
    let mut classes = std::collections::HashSet::new();
    for r in &rows {
        let name = r[col("bundle")];
        assert!(classes.insert((r[col("bodies")], r[col("block_threads")])), "{name} is listed twice");
        let cu = std::fs::read_to_string(out.join("bundles").join(format!("{name}.cu"))).expect("source written");
        let ptx = std::fs::read_to_string(out.join("bundles").join(format!("{name}.ptx"))).expect("PTX written");
        assert!(ptx.contains(weft::codegen::BUNDLE_ENTRY), "{name}: the PTX holds the bundle entry");
        for body in r[col("bodies")].split('+') {
            assert!(cu.contains(body), "{name}: the source holds body {body}");
        }
        let number = |c: &str| -> u64 { r[col(c)].parse().unwrap_or_else(|_| panic!("{name}: {c} = {}", r[col(c)])) };
        assert!((1..=255).contains(&number("registers")), "{name}");
        assert!((1..=255).contains(&number("max_body_registers")), "{name}");
        assert!(number("blocks_per_sm") > 0 && number("max_body_blocks_per_sm") > 0, "{name}");
        assert!(
            ["coalesced", "constrained", "coalesced,constrained", "constrained,coalesced"].contains(&r[col("mode")])
        );
    }
}
