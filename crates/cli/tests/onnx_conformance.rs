//! ONNX's own backend node test cases, run through `weft run --backend interp`.
//!
//! `scripts/onnx-cases.py` writes the cases of the installed `onnx` package
//! (model, input and expected-output `.npy` files) into `.cache/onnx-cases`
//! the first time this test runs, and again when the onnx version changes.
//! Each case then runs through the `weft` binary — import, shape inference,
//! lowering, the KIR interpreter: the path a user's `weft run` takes — with
//! its inputs given as `.npy` files, and every output is compared with
//! ONNX's expected output: relative L2 error at most 1e-4 for floats (NaN
//! and infinities at the same positions), exact equality for integers and
//! booleans, the same shape and element type.
//!
//! `onnx_conformance.tsv` beside this file lists every case with what it
//! does: `pass`, or `refused` and the first line of weft's error. The test
//! fails when any case gives a wrong answer, panics, crashes or times out,
//! and when a case's outcome differs from the list (a listed pass that no
//! longer passes, a refusal whose reason changed, a new pass). After an
//! intended change, `WEFT_BLESS=1 cargo test -p weft-cli --test
//! onnx_conformance` rewrites the list (it still fails on wrong answers and
//! panics). The cases run in parallel, one `weft` process each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Relative L2 error allowed for floating-point outputs.
const TOLERANCE: f64 = 1e-4;
/// Cases whose expected outputs ONNX's generator writes rounded to four
/// decimals (hand-written literals), so no exact computation is within 1e-4
/// of them. These are compared with ONNX's own backend tolerance instead:
/// `|got − want| ≤ 1e-7 + 1e-3·|want|` element by element. Also listed:
/// `f16` graphs whose expected outputs round every intermediate to `f16`
/// (weft computes a fused chain in `f32` and rounds once, so the two differ
/// by about one `f16` ulp, 1e-3 relative).
const ROUNDED_REFERENCES: &[&str] =
    &["test_averagepool_2d_ceil_last_window_starts_on_pad", "test_swiglu_float16", "test_swiglu_float16_expanded"];

/// One case's time limit; the cases are small, so a case running longer is
/// a hang and counts as a failure.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn expectation_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_conformance.tsv")
}

/// Skips (printing why), or fails under `CI=true`.
fn unavailable(what: &str) {
    let msg = format!("{what}: run scripts/fetch-models");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
}

/// The case directory, generated when missing or written by another onnx
/// version; `None` (after saying why) where onnx is not installed.
fn cases_dir() -> Option<PathBuf> {
    let root = root();
    let py = root.join(".cache/py");
    let pythonpath = if py.join("onnx").exists() { py.display().to_string() } else { String::new() };
    let version = Command::new("python3")
        .args(["-c", "import onnx, numpy; print(onnx.__version__)"])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(version) = version else {
        unavailable("the onnx Python package is not installed in .cache/py nor for the system python3");
        return None;
    };
    let dir = root.join(".cache/onnx-cases");
    if std::fs::read_to_string(dir.join(".weft-ok")).ok().as_deref() != Some(version.as_str()) {
        let status = Command::new("python3")
            .arg(root.join("scripts/onnx-cases.py"))
            .arg(&dir)
            .env("PYTHONPATH", &pythonpath)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "scripts/onnx-cases.py failed");
    }
    Some(dir)
}

/// One `.npy` file's shape, element type (NumPy's code without byte order,
/// such as `f4`, `i8`, `b1`) and elements.
struct Array {
    shape: Vec<usize>,
    dtype: String,
    values: Values,
}

enum Values {
    Float(Vec<f64>),
    Int(Vec<i128>),
}

fn read_npy(path: &Path) -> Result<Array, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| format!("{}: {e}", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype().descr().trim_matches('\'').trim_start_matches(['<', '|', '=']).to_string();
    let e = |err: std::io::Error| format!("{}: {err}", path.display());
    macro_rules! ints {
        ($t:ty) => {
            Values::Int(npy.into_vec::<$t>().map_err(e)?.into_iter().map(|v| v as i128).collect())
        };
    }
    let values = match dtype.as_str() {
        "f2" => Values::Float(npy.into_vec::<half::f16>().map_err(e)?.into_iter().map(|v| v.to_f64()).collect()),
        "f4" => Values::Float(npy.into_vec::<f32>().map_err(e)?.into_iter().map(f64::from).collect()),
        "f8" => Values::Float(npy.into_vec::<f64>().map_err(e)?),
        "i1" => ints!(i8),
        "i2" => ints!(i16),
        "i4" => ints!(i32),
        "i8" => ints!(i64),
        "u1" => ints!(u8),
        "u2" => ints!(u16),
        "u4" => ints!(u32),
        "u8" => ints!(u64),
        "b1" => Values::Int(npy.into_vec::<bool>().map_err(e)?.into_iter().map(i128::from).collect()),
        other => return Err(format!("{}: element type {other}", path.display())),
    };
    Ok(Array { shape, dtype, values })
}

/// Why `got` does not match `want`, or `None` when it does.
fn mismatch(got: &Array, want: &Array, rounded: bool) -> Option<String> {
    if got.shape != want.shape {
        return Some(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    if got.dtype != want.dtype {
        return Some(format!("element type {}, expected {}", got.dtype, want.dtype));
    }
    match (&got.values, &want.values) {
        (Values::Int(g), Values::Int(w)) => {
            let bad = g.iter().zip(w).position(|(a, b)| a != b)?;
            Some(format!("element {bad} is {}, expected {} ({} of {} differ)", g[bad], w[bad], count_ne(g, w), g.len()))
        }
        (Values::Float(g), Values::Float(w)) => {
            // NaN and infinities must sit where ONNX puts them; the finite
            // rest is compared by relative L2.
            if let Some(i) = (0..g.len()).find(|&i| !(same_special(g[i], w[i]) || g[i].is_finite() && w[i].is_finite()))
            {
                return Some(format!("element {i} is {}, expected {}", g[i], w[i]));
            }
            let (mut diff, mut norm) = (0.0, 0.0);
            for (a, b) in g.iter().zip(w).filter(|(a, b)| a.is_finite() && b.is_finite()) {
                diff += (a - b) * (a - b);
                norm += b * b;
            }
            if rounded {
                let bad = g.iter().zip(w).position(|(a, b)| (a - b).abs() > 1e-7 + 1e-3 * b.abs())?;
                return Some(format!("element {bad} is {}, expected {} (at ONNX's tolerance)", g[bad], w[bad]));
            }
            let err = if norm == 0.0 { diff.sqrt() } else { (diff / norm).sqrt() };
            (err > TOLERANCE).then(|| format!("relative L2 error {err:.3e} > {TOLERANCE:e}"))
        }
        _ => Some("integer and float values mixed".into()),
    }
}

fn same_special(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

fn count_ne(a: &[i128], b: &[i128]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// What a case did.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Outcome {
    Pass,
    /// weft refused, with the first line of its error.
    Refused(String),
    /// weft answered, and an output differs from ONNX's.
    Wrong(String),
    /// weft panicked, crashed, hung or wrote nonsense.
    Broken(String),
}

/// A data set's inputs and outputs, as (name, file) pairs.
type DataSet = (Vec<(String, String)>, Vec<(String, String)>);

fn run_case(case: &Path, scratch: &Path) -> Outcome {
    let manifest = match std::fs::read_to_string(case.join("manifest.tsv")) {
        Ok(m) => m,
        Err(e) => return Outcome::Broken(format!("manifest: {e}")),
    };
    // Data sets by index: (inputs, outputs) as (name, file) pairs.
    let mut sets: BTreeMap<usize, DataSet> = BTreeMap::new();
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [kind, k, name, file] = f[..] else { return Outcome::Broken(format!("manifest line `{line}`")) };
        let set = sets.entry(k.parse().unwrap_or(0)).or_default();
        let list = if kind == "input" { &mut set.0 } else { &mut set.1 };
        list.push((name.to_string(), file.to_string()));
    }
    if sets.is_empty() {
        // A case without inputs or outputs still has one (empty) data set.
        sets.insert(0, Default::default());
    }
    for (k, (inputs, outputs)) in sets {
        let out_dir = scratch.join(k.to_string());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.arg("run").arg(case.join("model.onnx")).args(["--backend", "interp", "--output-dir"]).arg(&out_dir);
        for (name, file) in &inputs {
            cmd.arg("--input").arg(format!("{name}={}", case.join(file).display()));
        }
        let (status, stderr) = match run_with_timeout(cmd) {
            Ok(r) => r,
            Err(e) => return Outcome::Broken(e),
        };
        if stderr.contains("panicked at") || status.code() == Some(101) {
            return Outcome::Broken(format!("panic: {}", stderr.lines().take(3).collect::<Vec<_>>().join(" | ")));
        }
        match status.code() {
            None => return Outcome::Broken(format!("killed by a signal ({status})")),
            Some(0) => {}
            Some(_) => {
                let line = stderr.lines().find(|l| l.starts_with("weft: error: ")).unwrap_or("(no error line)");
                let reason = line
                    .trim_start_matches("weft: error: ")
                    .replace(&case.display().to_string(), "<case>")
                    .replace(&scratch.display().to_string(), "<out>");
                return Outcome::Refused(reason);
            }
        }
        for (name, file) in &outputs {
            let want = match read_npy(&case.join(file)) {
                Ok(a) => a,
                Err(e) => return Outcome::Broken(e),
            };
            let sanitized: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
                .collect();
            let got = match read_npy(&out_dir.join(format!("{sanitized}.npy"))) {
                Ok(a) => a,
                Err(e) => return Outcome::Wrong(format!("output `{name}`: {e}")),
            };
            let rounded = case.file_name().is_some_and(|n| ROUNDED_REFERENCES.iter().any(|r| n == *r));
            if let Some(why) = mismatch(&got, &want, rounded) {
                return Outcome::Wrong(format!("output `{name}` (data set {k}): {why}"));
            }
        }
    }
    Outcome::Pass
}

fn run_with_timeout(mut cmd: Command) -> Result<(std::process::ExitStatus, String), String> {
    let mut child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot start weft: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok((status, reader.join().unwrap_or_default())),
            Ok(None) if started.elapsed() > CASE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", CASE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

fn line_of(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pass => format!("{name}\tpass"),
        Outcome::Refused(r) => format!("{name}\trefused\t{r}"),
        Outcome::Wrong(r) => format!("{name}\tWRONG\t{r}"),
        Outcome::Broken(r) => format!("{name}\tBROKEN\t{r}"),
    }
}

#[test]
fn onnx_node_cases_pass_or_are_refused_as_listed() {
    let Some(dir) = cases_dir() else { return };
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect("case directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.tsv").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    cases.sort();
    assert!(cases.len() > 1000, "only {} cases in {}", cases.len(), dir.display());
    let scratch = std::env::temp_dir().join(format!("weft-onnx-cases-{}", std::process::id()));
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<String, Outcome>> = Mutex::new(BTreeMap::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = cases.get(i) else { break };
                let out = scratch.join(name);
                let outcome = run_case(&dir.join(name), &out);
                let _ = std::fs::remove_dir_all(&out);
                results.lock().expect("results").insert(name.clone(), outcome);
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let results = results.into_inner().expect("results");

    let count = |f: fn(&Outcome) -> bool| results.values().filter(|o| f(o)).count();
    let (pass, refused) = (count(|o| *o == Outcome::Pass), count(|o| matches!(o, Outcome::Refused(_))));
    let (wrong, broken) = (count(|o| matches!(o, Outcome::Wrong(_))), count(|o| matches!(o, Outcome::Broken(_))));
    eprintln!(
        "onnx node cases: {} run, {pass} pass ({:.1}%), {refused} refused, {wrong} wrong, {broken} panicked/crashed/hung",
        results.len(),
        100.0 * pass as f64 / results.len() as f64
    );

    let actual: Vec<String> = results.iter().map(|(n, o)| line_of(n, o)).collect();
    let mut failures: Vec<String> = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Wrong(_) | Outcome::Broken(_)))
        .map(|(n, o)| line_of(n, o))
        .collect();
    if std::env::var("WEFT_BLESS").is_ok_and(|v| v == "1") {
        let mut text = String::from(
            "# ONNX backend node cases: what `weft run --backend interp` does with each.\n\
             # Rewritten by `WEFT_BLESS=1 cargo test -p weft-cli --test onnx_conformance`.\n",
        );
        for line in actual.iter().filter(|l| l.contains("\tpass") || l.contains("\trefused\t")) {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(expectation_file(), text).expect("write the expectation file");
    } else {
        let listed = std::fs::read_to_string(expectation_file()).unwrap_or_default();
        let listed: BTreeMap<&str, &str> =
            listed.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('\t')).collect();
        for (name, outcome) in &results {
            if matches!(outcome, Outcome::Wrong(_) | Outcome::Broken(_)) {
                continue;
            }
            let line = line_of(name, outcome);
            let now = line.split_once('\t').map_or("", |(_, rest)| rest);
            match listed.get(name.as_str()) {
                Some(&was) if was == now => {}
                Some(&was) => failures.push(format!("{name}: listed `{was}`, now `{now}`")),
                None => failures.push(format!("{name}: not listed, now `{now}`")),
            }
        }
        for name in listed.keys().filter(|n| !results.contains_key(**n)) {
            failures.push(format!("{name}: listed but not among the generated cases"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} onnx node cases differ from tests/onnx_conformance.tsv or fail outright \
         (rewrite the list with WEFT_BLESS=1 when a change is intended; wrong answers and panics are never allowed):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
