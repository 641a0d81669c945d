//! Triton's own Python clients (`tritonclient`, HTTP and gRPC) against
//! `weft serve`, serving the README's MobileNetV3 classifier on the
//! interpreter, with onnxruntime as the reference
//! (`scripts/tritonclient_check.py`).
//!
//! Needs what `scripts/fetch-models` installs under `.cache/`: without it
//! the test skips with the reason, except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unavailable(what: &str) {
    let msg = format!("{what}: run scripts/fetch-models");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true makes this a failure)");
    }
    eprintln!("skipping: {msg}");
}

const MODEL: &str = "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";

#[test]
fn tritonclient_http_and_grpc_agree_with_onnxruntime() {
    let root = root();
    let model = root.join(".cache/models").join(MODEL);
    if !model.is_file() {
        return unavailable(&format!("{} is not fetched", model.display()));
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let py_path = root.join(".cache/py");
    let probe = Command::new(&python)
        .env("PYTHONPATH", &py_path)
        .args(["-c", "import tritonclient.http, tritonclient.grpc, onnxruntime, numpy"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return unavailable(&format!(
                "tritonclient or onnxruntime is not importable from .cache/py ({})",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            ))
        }
        Err(e) => return unavailable(&format!("{python}: {e}")),
    }

    let repo = std::env::temp_dir().join(format!("weft-serve-tritonclient-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("classifier/1")).unwrap();
    std::fs::copy(&model, repo.join("classifier/1/model.onnx")).unwrap();
    std::fs::write(repo.join("classifier/config.toml"), "slo_ms = 600000.0\n[shapes]\nx = [1, 3, 48, 192]\n").unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut options = weft_serve::ServeOptions::new(repo.clone());
    (options.http_port, options.grpc_port, options.metrics_port) = (0, 0, 0);
    options.backend = weft::Backend::Interp;
    options.drain_timeout = Duration::from_secs(60);
    let server = rt.block_on(weft_serve::start(options)).unwrap();

    let out = Command::new(&python)
        .env("PYTHONPATH", &py_path)
        .arg(root.join("scripts/tritonclient_check.py"))
        .args(["--http", &server.http_addr().to_string(), "--grpc", &server.grpc_addr().to_string()])
        .args(["--model", "classifier", "--onnx"])
        .arg(repo.join("classifier/1/model.onnx"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tritonclient_check.py failed");
    assert!(stdout.contains("all checks passed"));

    let metrics = server.models().metrics().render(server.models().engine());
    let success = metrics
        .lines()
        .find(|l| l.starts_with("nv_inference_request_success{model=\"classifier\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    // After the reload the counters continue: 5 inferences before (two with
    // a deadline and priority class of their own), 1 after.
    assert_eq!(success, Some(6), "{metrics}");
    assert!(rt.block_on(server.drain()));
    let _ = std::fs::remove_dir_all(&repo);
}
