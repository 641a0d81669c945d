//! `weft serve` as a process: it announces its addresses, answers, and
//! exits 0 on SIGTERM after draining; a missing repository is a one-line
//! error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use weft_graph::builder::GraphBuilder;
use weft_graph::DType;

fn relu_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("relu");
    let x = g.input("x", DType::F32, &[1, 4]);
    let y = g.relu(x).unwrap();
    g.output(y);
    weft_graph::onnx::export_onnx_default(&g.finish()).unwrap()
}

#[cfg(unix)]
#[test]
fn serve_answers_then_drains_and_exits_zero_on_sigterm() {
    let repo = std::env::temp_dir().join(format!("weft-cli-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("relu")).unwrap();
    std::fs::write(repo.join("relu/model.onnx"), relu_model()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--backend", "interp", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"])
        .arg("--model-repository")
        .arg(&repo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("models: relu (v1)"), "{line}");
    let http = line.split("http ").nth(1).and_then(|s| s.split(',').next()).expect("the HTTP address").to_string();

    let mut s = TcpStream::connect(&http).unwrap();
    let body = r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-1,2,-3,4]}]}"#;
    write!(
        s,
        "POST /v2/models/relu/infer HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"data\":[0.0,2.0,0.0,4.0]"), "{reply}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "weft serve exited with {status} on SIGTERM");
    assert!(TcpStream::connect(&http).is_err());
    let _ = std::fs::remove_dir_all(&repo);
}

#[test]
fn a_missing_repository_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"])
        .args(["--model-repository", "no/such/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("weft: error: weft serve: model repository no/such/dir"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
