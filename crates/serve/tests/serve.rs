//! `weft serve` over real sockets: every REST endpoint, the binary tensor
//! extension, gRPC, the repository API, metrics, malformed requests and
//! draining. Requests are written by hand over TCP, so the tests also
//! control what a well-behaved client never sends (lying lengths, broken
//! JSON).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_graph::builder::GraphBuilder;
use weft_graph::DType;
use weft_serve::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use weft_serve::proto::{model_infer_request, ModelInferRequest, ModelMetadataRequest, ServerLiveRequest};
use weft_serve::{ServeOptions, Server};

const A: [f32; 8] = [1.0, -2.0, 3.0, -4.0, 0.5, 0.25, -0.75, 8.0];
const B: [f32; 8] = [0.5, 1.0, -5.0, 2.0, 0.5, -1.0, 0.25, -9.0];

/// `sum = relu(a + b)`, `prod = a * b` over two [2, 4] inputs.
fn two_output_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("add");
    let a = g.input("a", DType::F32, &[2, 4]);
    let b = g.input("b", DType::F32, &[2, 4]);
    let s = g.add(a, b).unwrap();
    let s = g.relu(s).unwrap();
    let p = g.mul(a, b).unwrap();
    g.output(s);
    g.output(p);
    weft_graph::onnx::export_onnx_default(&g.finish()).unwrap()
}

fn relu_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("relu");
    let x = g.input("x", DType::F32, &[1, 8]);
    let y = g.relu(x).unwrap();
    g.output(y);
    weft_graph::onnx::export_onnx_default(&g.finish()).unwrap()
}

fn expected_sum() -> Vec<f32> {
    A.iter().zip(&B).map(|(a, b)| (a + b).max(0.0)).collect()
}

fn expected_prod() -> Vec<f32> {
    A.iter().zip(&B).map(|(a, b)| a * b).collect()
}

/// A repository: `add` (versioned, with a config) and `relu` (flat, defaults).
fn repository(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-serve-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("add/3")).unwrap();
    std::fs::write(dir.join("add/3/model.onnx"), two_output_model()).unwrap();
    std::fs::write(dir.join("add/config.toml"), "slo_ms = 60000.0\nweight = 2.0\ninstances = 2\nmax_queue = 16\n")
        .unwrap();
    std::fs::create_dir_all(dir.join("relu")).unwrap();
    std::fs::write(dir.join("relu/model.onnx"), relu_model()).unwrap();
    dir
}

fn serve(runtime: &tokio::runtime::Runtime, repo: &Path) -> Server {
    let mut options = ServeOptions::new(repo.to_path_buf());
    options.http_port = 0;
    options.grpc_port = 0;
    options.metrics_port = 0;
    options.backend = weft::Backend::Interp;
    options.max_body_bytes = 1 << 20;
    options.drain_timeout = Duration::from_secs(20);
    runtime.block_on(weft_serve::start(options)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error message: {}", self.json())).to_string()
    }
}

/// Sends `head` (request line and headers, without the blank line), then
/// `body`, and reads the whole reply (the request says Connection: close).
fn raw(addr: SocketAddr, head: &str, body: &[u8], close_write: bool) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("{head}\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    // The server may answer (and close) before it has read everything: a
    // refused body is not an error of the test.
    let _ = s.write_all(body);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut all = Vec::new();
    if let Err(e) = s.read_to_end(&mut all) {
        assert!(!all.is_empty(), "no reply: {e}");
    }
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Reply { status, headers, body: all[split + 4..].to_vec() }
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    raw(addr, &format!("GET {path} HTTP/1.1"), b"", false)
}

fn post(addr: SocketAddr, path: &str, extra_headers: &str, body: &[u8]) -> Reply {
    let head = format!("POST {path} HTTP/1.1\r\nContent-Length: {}{extra_headers}", body.len());
    raw(addr, &head, body, false)
}

fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    post(addr, path, "\r\nContent-Type: application/json", body.to_string().as_bytes())
}

fn infer_json() -> serde_json::Value {
    serde_json::json!({
        "id": "r1",
        "inputs": [
            {"name": "a", "shape": [2, 4], "datatype": "FP32", "data": [[1.0, -2.0, 3.0, -4.0], [0.5, 0.25, -0.75, 8.0]]},
            {"name": "b", "shape": [2, 4], "datatype": "FP32", "data": B},
        ]
    })
}

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn rest_endpoints_json_and_binary_inference() {
    let rt = runtime();
    let repo = repository("rest");
    let server = serve(&rt, &repo);
    let http = server.http_addr();

    assert_eq!(get(http, "/v2/health/live").status, 200);
    assert_eq!(get(http, "/v2/health/ready").status, 200);
    let meta = get(http, "/v2").json();
    assert_eq!(meta["name"], "weft");
    assert!(meta["extensions"].as_array().unwrap().iter().any(|e| e == "binary_tensor_data"));

    let m = get(http, "/v2/models/add").json();
    assert_eq!(m["versions"], serde_json::json!(["3"]));
    assert_eq!(m["inputs"][0], serde_json::json!({"name": "a", "datatype": "FP32", "shape": [2, 4]}));
    assert_eq!(m["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(get(http, "/v2/models/add/versions/3").status, 200);
    assert_eq!(get(http, "/v2/models/add/ready").status, 200);
    assert_eq!(get(http, "/v2/models/add/versions/3/ready").status, 200);
    let r = get(http, "/v2/models/add/versions/2/ready");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("version `2`"), "{}", r.error());
    assert_eq!(get(http, "/v2/models/relu/ready").status, 200);
    let r = get(http, "/v2/models/nope");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("unknown model `nope`"));

    // JSON in, JSON out, nested and flat data.
    let r = post_json(http, "/v2/models/add/infer", &infer_json());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["id"], "r1");
    assert_eq!(j["model_version"], "3");
    assert_eq!(j["outputs"][0]["shape"], serde_json::json!([2, 4]));
    assert_eq!(f32s(&j["outputs"][0]["data"]), expected_sum());
    assert_eq!(f32s(&j["outputs"][1]["data"]), expected_prod());

    // Binary in (one input binary, one JSON), only the product out, in binary.
    let prod = m["outputs"][1]["name"].as_str().unwrap().to_string();
    let header = serde_json::json!({
        "inputs": [
            {"name": "a", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
            {"name": "b", "shape": [2, 4], "datatype": "FP32", "data": B},
        ],
        "outputs": [{"name": prod, "parameters": {"binary_data": true}}]
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(le_bytes(&A));
    let extra =
        format!("\r\nInference-Header-Content-Length: {}\r\nContent-Type: application/octet-stream", header.len());
    let r = post(http, "/v2/models/add/versions/3/infer", &extra, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let n: usize = r.header("inference-header-content-length").expect("binary reply header").parse().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&r.body[..n]).unwrap();
    assert_eq!(j["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(j["outputs"][0]["name"], prod.as_str());
    assert_eq!(j["outputs"][0]["parameters"]["binary_data_size"], 32);
    assert_eq!(&r.body[n..], le_bytes(&expected_prod()).as_slice());

    // All outputs binary through the request-level parameter.
    let mut req = infer_json();
    req["parameters"] = serde_json::json!({"binary_data_output": true});
    let r = post_json(http, "/v2/models/add/infer", &req);
    let n: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    assert_eq!(r.body.len() - n, 64);

    // The model without a config has a derived objective and answers too.
    let r = post_json(
        http,
        "/v2/models/relu/infer",
        &serde_json::json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": A}]}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(f32s(&r.json()["outputs"][0]["data"]), A.iter().map(|x| x.max(0.0)).collect::<Vec<_>>());
    let relu = server.models().get("relu", None).unwrap();
    assert!(relu.slo >= weft_serve::models::MIN_DEFAULT_SLO && relu.slo < Duration::from_secs(600), "{:?}", relu.slo);
    let add = server.models().get("add", None).unwrap();
    assert_eq!((add.slo, add.tenants.len(), add.max_queue), (Duration::from_secs(60), 2, 16));

    // Metrics, with Triton's names and labels.
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    assert!(text.contains("nv_inference_request_success{model=\"add\",version=\"3\"} 3"), "{text}");
    assert!(text.contains("nv_inference_request_success{model=\"relu\",version=\"1\"} 1"), "{text}");
    assert!(text.contains("nv_inference_compute_infer_duration_us{model=\"add\",version=\"3\"}"), "{text}");
    assert!(text.contains("weft_slo_attainment{model=\"add\",version=\"3\"} 1"), "{text}");
    assert!(text.contains("weft_bytes_per_request"), "{text}");

    assert!(rt.block_on(server.drain()));
    assert!(TcpStream::connect(http).is_err(), "the listener is closed after draining");
    let _ = std::fs::remove_dir_all(&repo);
}

#[test]
fn malformed_requests_get_4xx_with_a_message_and_the_server_stays_up() {
    let rt = runtime();
    let repo = repository("malformed");
    let server = serve(&rt, &repo);
    let http = server.http_addr();
    let path = "/v2/models/add/infer";
    let bad = |r: Reply, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let e = r.error();
        assert!(e.contains(needle), "`{e}` should mention `{needle}`");
    };

    bad(post(http, path, "", b"{\"inputs\": [ {\"name\": "), 400, "JSON");
    bad(post(http, path, "", b"not json at all"), 400, "JSON");
    // A lying Content-Length: more declared than sent, then the client stops.
    let r = raw(http, &format!("POST {path} HTTP/1.1\r\nContent-Length: 5000"), b"{\"inputs\": []}", true);
    bad(r, 400, "body");
    // Over the body limit (1 MiB in these tests), refused before buffering.
    let r = raw(http, &format!("POST {path} HTTP/1.1\r\nContent-Length: {}", 4 << 20), b"{", true);
    bad(r, 413, "limit");
    // A huge declared shape, with no data to match.
    let huge = serde_json::json!({"inputs": [
        {"name": "a", "shape": [1u64 << 40, 1u64 << 40], "datatype": "FP32", "data": [1.0]},
        {"name": "b", "shape": [2, 4], "datatype": "FP32", "data": B}]});
    bad(post_json(http, path, &huge), 400, "shape");
    let negative = serde_json::json!({"inputs": [{"name": "a", "shape": [-2, 4], "datatype": "FP32", "data": A}]});
    bad(post_json(http, path, &negative), 400, "shape");
    // Wrong datatype, missing and unknown inputs, wrong element counts.
    let mut r = infer_json();
    r["inputs"][0]["datatype"] = "INT64".into();
    bad(post_json(http, path, &r), 400, "datatype");
    let mut r = infer_json();
    r["inputs"].as_array_mut().unwrap().pop();
    bad(post_json(http, path, &r), 400, "`b` is missing");
    let mut r = infer_json();
    r["inputs"][1]["name"] = "c".into();
    bad(post_json(http, path, &r), 400, "not an input");
    let mut r = infer_json();
    r["inputs"][1]["data"] = serde_json::json!([1.0, 2.0]);
    bad(post_json(http, path, &r), 400, "2 elements given");
    let mut r = infer_json();
    r["inputs"][1]["data"] = serde_json::json!(vec!["x"; 8]);
    bad(post_json(http, path, &r), 400, "FP32");
    let mut r = infer_json();
    r["outputs"] = serde_json::json!([{"name": "nope"}]);
    bad(post_json(http, path, &r), 400, "output `nope`");
    // Wrong binary sizes: too few bytes for the shape, more than was sent,
    // a header length beyond the body, and bytes left over.
    let binary = |size: usize, sent: usize, header_len_delta: isize| {
        let header = serde_json::json!({"inputs": [
            {"name": "a", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": size}},
            {"name": "b", "shape": [2, 4], "datatype": "FP32", "data": B}]})
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(vec![0u8; sent]);
        let n = header.len() as isize + header_len_delta;
        post(http, path, &format!("\r\nInference-Header-Content-Length: {n}"), &body)
    };
    bad(binary(31, 31, 0), 400, "32 bytes of data expected, 31 given");
    bad(binary(32, 8, 0), 400, "32 bytes of data expected, 8 given");
    bad(binary(32, 32, 1000), 400, "inference-header-content-length");
    bad(binary(32, 40, 0), 400, "8 bytes of binary data");
    bad(post(http, path, "\r\nInference-Header-Content-Length: -3", b"{}"), 400, "inference-header-content-length");
    bad(post_json(http, "/v2/models/nope/infer", &infer_json()), 404, "unknown model");
    bad(get(http, "/v2/nothing/here"), 404, "no such endpoint");

    // Still serving, and the failures were counted.
    assert_eq!(get(http, "/v2/health/live").status, 200);
    let r = post_json(http, path, &infer_json());
    assert_eq!(r.status, 200);
    assert_eq!(f32s(&r.json()["outputs"][0]["data"]), expected_sum());
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    let failures: u64 = text
        .lines()
        .find(|l| l.starts_with("nv_inference_request_failure{model=\"add\",reason=\"bad_request\",version=\"3\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no bad_request failures counted: {text}"));
    assert!(failures >= 15, "{failures} bad requests counted");
    assert!(rt.block_on(server.drain()));
    let _ = std::fs::remove_dir_all(&repo);
}

#[test]
fn repository_api_loads_and_unloads_without_restart() {
    let rt = runtime();
    let repo = repository("repo");
    let server = serve(&rt, &repo);
    let http = server.http_addr();
    let index = post(http, "/v2/repository/index", "", b"").json();
    assert_eq!(
        index,
        serde_json::json!([
            {"name": "add", "version": "3", "state": "READY"},
            {"name": "relu", "version": "1", "state": "READY"},
        ])
    );
    let tenants = server.models().get("relu", None).unwrap().tenants.clone();

    assert_eq!(post(http, "/v2/repository/models/relu/unload", "", b"{}").status, 200);
    assert_eq!(get(http, "/v2/models/relu/ready").status, 404);
    let relu_req = serde_json::json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": A}]});
    assert_eq!(post_json(http, "/v2/models/relu/infer", &relu_req).status, 404);
    let index = post(http, "/v2/repository/index", "", b"").json();
    assert_eq!(index[1]["state"], "UNAVAILABLE");
    // The engine took the tenants away.
    for t in &tenants {
        let e = server.models().engine().submit(*t, vec![]).err().expect("a removed tenant refuses requests");
        assert!(matches!(e, weft::EngineError::TenantRemoved(_)), "{e}");
    }
    assert_eq!(post(http, "/v2/repository/models/relu/unload", "", b"").status, 404);

    // A model added to the directory while serving, then loaded.
    std::fs::create_dir_all(repo.join("late/1")).unwrap();
    std::fs::write(repo.join("late/1/model.onnx"), relu_model()).unwrap();
    std::fs::write(repo.join("late/config.toml"), "slo_ms = 30000.0\n").unwrap();
    assert_eq!(post(http, "/v2/repository/models/late/load", "", b"").status, 200);
    let ok = |r: Reply| assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    ok(post_json(http, "/v2/models/late/infer", &relu_req));
    ok(post(http, "/v2/repository/models/relu/load", "", b""));
    ok(post_json(http, "/v2/models/relu/infer", &relu_req));

    // An objective nothing can meet: admission control refuses, 503 with
    // Retry-After, counted by reason.
    std::fs::create_dir_all(repo.join("tight")).unwrap();
    std::fs::write(repo.join("tight/model.onnx"), relu_model()).unwrap();
    std::fs::write(repo.join("tight/config.toml"), "slo_ms = 0.000001\n").unwrap();
    ok(post(http, "/v2/repository/models/tight/load", "", b""));
    let r = post_json(http, "/v2/models/tight/infer", &relu_req);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.error().contains("admission"), "{}", r.error());
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    assert!(text.contains("weft_rejections_total{model=\"tight\",reason=\"admission\"} 1"), "{text}");

    // Errors name what to fix.
    let r = post(http, "/v2/repository/models/absent/load", "", b"");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("absent/model.onnx"), "{}", r.error());
    std::fs::create_dir_all(repo.join("broken")).unwrap();
    std::fs::write(repo.join("broken/model.onnx"), b"not an onnx file").unwrap();
    let r = post(http, "/v2/repository/models/broken/load", "", b"");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("broken"), "{}", r.error());
    let index = post(http, "/v2/repository/index", "", b"").json();
    let broken = index.as_array().unwrap().iter().find(|m| m["name"] == "broken").unwrap();
    assert_eq!(broken["state"], "UNAVAILABLE");
    assert!(broken["reason"].as_str().unwrap().contains("broken"));
    std::fs::write(repo.join("late/config.toml"), "slo_ms = \"fast\"\n").unwrap();
    let r = post(http, "/v2/repository/models/late/load", "", b"");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("config.toml"), "{}", r.error());
    // The failed reload left the served model alone.
    assert_eq!(post_json(http, "/v2/models/late/infer", &relu_req).status, 200);
    assert!(rt.block_on(server.drain()));
    let _ = std::fs::remove_dir_all(&repo);
}

#[test]
fn grpc_metadata_and_raw_inference() {
    let rt = runtime();
    let repo = repository("grpc");
    let server = serve(&rt, &repo);
    let url = format!("http://{}", server.grpc_addr());
    rt.block_on(async {
        let mut c = GrpcInferenceServiceClient::connect(url).await.unwrap();
        assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
        let m = c
            .model_metadata(ModelMetadataRequest { name: "add".into(), version: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (m.versions, m.inputs[1].name.as_str(), m.inputs[1].shape.clone()),
            (vec!["3".into()], "b", vec![2, 4])
        );
        let input = |name: &str| model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![2, 4],
            parameters: Default::default(),
            contents: None,
        };
        let request = ModelInferRequest {
            model_name: "add".into(),
            id: "g1".into(),
            inputs: vec![input("a"), input("b")],
            raw_input_contents: vec![le_bytes(&A), le_bytes(&B)],
            ..Default::default()
        };
        let r = c.model_infer(request.clone()).await.unwrap().into_inner();
        assert_eq!(r.id, "g1");
        assert_eq!(r.outputs.len(), 2);
        assert_eq!(r.raw_output_contents, vec![le_bytes(&expected_sum()), le_bytes(&expected_prod())]);

        // Typed contents instead of raw bytes.
        let mut typed = request.clone();
        typed.raw_input_contents.clear();
        for (t, v) in typed.inputs.iter_mut().zip([A, B]) {
            t.contents =
                Some(weft_serve::proto::InferTensorContents { fp32_contents: v.to_vec(), ..Default::default() });
        }
        let r = c.model_infer(typed).await.unwrap().into_inner();
        assert_eq!(r.raw_output_contents[1], le_bytes(&expected_prod()));

        let mut wrong = request.clone();
        wrong.raw_input_contents[0].pop();
        let e = c.model_infer(wrong).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("31 given"), "{}", e.message());
        let mut unknown = request.clone();
        unknown.model_name = "nope".into();
        assert_eq!(c.model_infer(unknown).await.unwrap_err().code(), tonic::Code::NotFound);
        let mut huge = request;
        huge.inputs[0].shape = vec![1 << 40, 1 << 40];
        let e = c.model_infer(huge).await.unwrap_err();
        assert!(e.message().contains("shape"), "{}", e.message());
        assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    });
    assert!(rt.block_on(server.drain()));
    let _ = std::fs::remove_dir_all(&repo);
}

/// The value of the first sample of `metric` whose line starts with
/// `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no sample `{prefix}` in:\n{text}"))
}

#[test]
fn request_parameters_deadline_and_priority_over_rest_and_grpc_on_two_devices() {
    let rt = runtime();
    let repo = repository("params");
    let mut options = ServeOptions::new(repo.clone());
    (options.http_port, options.grpc_port, options.metrics_port) = (0, 0, 0);
    options.backend = weft::Backend::Interp;
    options.drain_timeout = Duration::from_secs(20);
    options.engine.devices = Some(2);
    let server = rt.block_on(weft_serve::start(options)).unwrap();
    let http = server.http_addr();
    assert_eq!(server.models().engine().devices(), 2);

    let with_params = |params: serde_json::Value| {
        let mut body = infer_json();
        body["parameters"] = params;
        post_json(http, "/v2/models/add/infer", &body)
    };
    let met = |text: &str| sample(text, "weft_slo_met_total{model=\"add\",version=\"3\"}");
    // A loose deadline of its own and a priority class: served, and met.
    let r = with_params(serde_json::json!({"deadline_us": 600_000_000u64, "priority_class": 2}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(f32s(&r.json()["outputs"][0]["data"]), expected_sum());
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    let met_before = met(&text);
    assert_eq!(met_before, 1.0, "{text}");
    // A deadline of 1 µs overrides the model's 60 s objective: admission
    // refuses it against that deadline, or it is answered late and counted
    // as a miss. Without the parameter it would be met.
    let r = with_params(serde_json::json!({"deadline_us": 1}));
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    match r.status {
        503 => assert!(r.error().contains("SLO of 1.0 µs"), "{}", r.error()),
        200 => assert_eq!(met(&text), met_before, "answered after its 1 µs deadline: a miss"),
        s => panic!("status {s}: {}", String::from_utf8_lossy(&r.body)),
    }

    // Bad values are 400s naming the parameter, before any inference.
    for (params, name) in [
        (serde_json::json!({"deadline_us": 0}), "deadline_us"),
        (serde_json::json!({"deadline_us": -20}), "deadline_us"),
        (serde_json::json!({"deadline_us": 2.5}), "deadline_us"),
        (serde_json::json!({"deadline_us": u64::MAX}), "deadline_us"),
        (serde_json::json!({"deadline_us": "soon"}), "deadline_us"),
        (serde_json::json!({"priority_class": 256}), "priority_class"),
        (serde_json::json!({"priority_class": [1]}), "priority_class"),
        (serde_json::json!({"priority": 1}), "priority"),
    ] {
        let r = with_params(params.clone());
        assert_eq!(r.status, 400, "{params}");
        assert!(r.error().contains(&format!("parameter `{name}`")), "{params}: {}", r.error());
    }

    // gRPC: the same parameters as InferParameter int64.
    let url = format!("http://{}", server.grpc_addr());
    rt.block_on(async {
        use weft_serve::proto::infer_parameter::ParameterChoice;
        use weft_serve::proto::InferParameter;
        let mut c = GrpcInferenceServiceClient::connect(url).await.unwrap();
        let input = |name: &str| model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![2, 4],
            parameters: Default::default(),
            contents: None,
        };
        let request = |params: Vec<(&str, ParameterChoice)>| ModelInferRequest {
            model_name: "add".into(),
            inputs: vec![input("a"), input("b")],
            raw_input_contents: vec![le_bytes(&A), le_bytes(&B)],
            parameters: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), InferParameter { parameter_choice: Some(v) }))
                .collect(),
            ..Default::default()
        };
        let ok = request(vec![
            ("deadline_us", ParameterChoice::Int64Param(600_000_000)),
            ("priority_class", ParameterChoice::Int64Param(1)),
        ]);
        let r = c.model_infer(ok).await.unwrap().into_inner();
        assert_eq!(r.raw_output_contents[0], le_bytes(&expected_sum()));
        for (params, name) in [
            (vec![("deadline_us", ParameterChoice::DoubleParam(20000.0))], "deadline_us"),
            (vec![("deadline_us", ParameterChoice::Int64Param(0))], "deadline_us"),
            (vec![("deadline_us", ParameterChoice::StringParam("1s".into()))], "deadline_us"),
            (vec![("priority_class", ParameterChoice::BoolParam(true))], "priority_class"),
            (vec![("priority_class", ParameterChoice::Uint64Param(1000))], "priority_class"),
        ] {
            let e = c.model_infer(request(params)).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name}: {}", e.message());
            assert!(e.message().contains(&format!("parameter `{name}`")), "{}", e.message());
        }
        // Refused by admission against its own 1 µs deadline, or served late.
        if let Err(e) = c.model_infer(request(vec![("deadline_us", ParameterChoice::Int64Param(1))])).await {
            assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
        }
    });

    // Metrics: predicted and measured bundle time over the same bundles,
    // the busy fraction, and the placement of three tenants on two devices.
    for _ in 0..3 {
        let r = post_json(http, "/v2/models/add/infer", &infer_json());
        assert_eq!(r.status, 200);
    }
    let text = String::from_utf8(get(server.metrics_addr(), "/metrics").body).unwrap();
    let stats = server.models().engine().stats();
    let bundles = sample(&text, "weft_bundles_total");
    let predictions = sample(&text, "weft_bundle_predictions_total");
    assert!(bundles > 0.0, "{text}");
    // Requests one at a time on one-instance-at-a-time tenants: every
    // bundle ran as predicted and is counted.
    assert_eq!(predictions, stats.serve.predicted_bundles as f64);
    assert_eq!(predictions, bundles, "{text}");
    assert!(sample(&text, "weft_bundle_measured_us_total") > 0.0, "{text}");
    assert!(sample(&text, "weft_bundle_predicted_us_total") > 0.0, "{text}");
    let busy = sample(&text, "weft_busy_fraction");
    assert!(busy > 0.0 && busy <= 1.0, "busy fraction {busy}");
    assert!(sample(&text, "weft_registration_compiles_total") >= 1.0, "{text}");
    assert!(sample(&text, "weft_bytes_per_request") > 0.0, "{text}");
    for device in ["0", "1"] {
        let tenants = sample(&text, &format!("weft_device_tenants{{device=\"{device}\"}}"));
        assert!(tenants >= 1.0, "device {device} holds a tenant: {text}");
    }
    let add = server.models().get("add", None).unwrap();
    for t in &add.tenants {
        let device = server.models().engine().device_of(*t).unwrap();
        let line =
            format!("weft_tenant_device{{device=\"{device}\",model=\"add\",tenant=\"{}\",version=\"3\"}} 1", t.0);
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(rt.block_on(server.drain()));
    let _ = std::fs::remove_dir_all(&repo);
}
