//! The serving benchmark over the protocol: `weft serve` in this process, a
//! load generator sending Open Inference Protocol requests over loopback
//! HTTP at fixed offered rates (Poisson arrivals, open loop), several
//! models, once with time-only FIFO and once with weft's SLO-aware policy
//! on the same backend.
//!
//! Each model's objective is the one `weft serve` derives without a config
//! (ten times its measured solo latency, at least 100 ms), fixed for both
//! policies. Offered rates are multiples of time-only FIFO's capacity (the
//! rate at which one-request-at-a-time service would be busy all the time,
//! from each model's measured solo latency over HTTP). Reports per model:
//! requests sent, answered, refused (429/503), p50 and p99 latency at the
//! client, SLO attainment (answered within the objective over sent) and
//! goodput (answered within the objective per second). Writes a table to
//! stdout and `docs/results/serve-load-<backend>.md` with the raw numbers
//! (`serve-load-<backend>.json`).
//!
//! ```text
//! cargo run --release -p weft-bench --example serve_load -- [--backend auto|interp|cuda] [--seconds 10] [--loads 0.5,1,1.5] [--out DIR]
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_graph::builder::GraphBuilder;
use weft_graph::DType;

type BoxError = Box<dyn std::error::Error>;

/// The models: (name, ONNX bytes, the request body).
fn models() -> Result<Vec<(String, Vec<u8>, String)>, BoxError> {
    let mut out = Vec::new();
    // An MLP: three 512-wide layers.
    let mut g = GraphBuilder::with_seed("mlp", 1);
    let x = g.input("x", DType::F32, &[1, 512]);
    let mut h = x;
    for i in 0..3 {
        let w = g.he_weight(&format!("w{i}"), &[512, 512], 512);
        h = g.matmul(h, w)?;
        h = g.relu(h)?;
    }
    g.output(h);
    out.push(("mlp".to_string(), weft_graph::onnx::export_onnx_default(&g.finish())?, body("x", &[1, 512])));
    // A small convolutional net.
    let mut g = GraphBuilder::with_seed("convnet", 2);
    let x = g.input("x", DType::F32, &[1, 8, 32, 32]);
    let w1 = g.he_weight("w1", &[16, 8, 3, 3], 72);
    let c = g.conv2d(x, w1, None, 1, 1, 1)?;
    let c = g.relu(c)?;
    let p = g.global_avg_pool(c)?;
    let f = g.flatten(p, 1)?;
    let w2 = g.he_weight("w2", &[16, 10], 16);
    let y = g.matmul(f, w2)?;
    g.output(y);
    out.push(("convnet".to_string(), weft_graph::onnx::export_onnx_default(&g.finish())?, body("x", &[1, 8, 32, 32])));
    Ok(out)
}

fn body(input: &str, shape: &[usize]) -> String {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
    serde_json::json!({"inputs": [{"name": input, "shape": shape, "datatype": "FP32", "data": data}]}).to_string()
}

/// One request over a fresh connection: the status and the latency.
fn request(addr: SocketAddr, model: &str, body: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = (|| -> std::io::Result<u16> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        write!(
            s,
            "POST /v2/models/{model}/infer HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        let head = String::from_utf8_lossy(&reply[..reply.len().min(16)]).into_owned();
        Ok(head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
    })()
    .unwrap_or(0);
    (status, started.elapsed())
}

fn start(
    rt: &tokio::runtime::Runtime,
    repo: &Path,
    backend: weft::Backend,
    policy: weft::sched::SchedulerConfig,
) -> Result<weft_serve::Server, BoxError> {
    let mut o = weft_serve::ServeOptions::new(repo.to_path_buf());
    (o.http_port, o.grpc_port, o.metrics_port) = (0, 0, 0);
    o.backend = backend;
    o.engine = weft::EngineConfig { policy, max_queue: 256, ..weft::EngineConfig::default() };
    Ok(rt.block_on(weft_serve::start(o))?)
}

/// A SplitMix64 stream for the arrival times (seeded: runs are repeatable).
struct Rng(u64);

impl Rng {
    fn exp(&mut self, rate: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -u.ln() / rate
    }
}

#[derive(Clone, Debug)]
struct Row {
    policy: String,
    load: f64,
    model: String,
    rate: f64,
    slo_ms: f64,
    sent: usize,
    answered: usize,
    refused: usize,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    attainment: f64,
    goodput: f64,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1])
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let backend = match arg("--backend").as_deref().unwrap_or("auto") {
        "interp" => weft::Backend::Interp,
        "cuda" => weft::Backend::Cuda,
        _ => weft::Backend::Auto,
    };
    let seconds: f64 = arg("--seconds").map(|s| s.parse()).transpose()?.unwrap_or(10.0);
    let loads: Vec<f64> = arg("--loads")
        .unwrap_or_else(|| "0.5,1,1.5".into())
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()?;
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "docs/results".into()));

    let repo = std::env::temp_dir().join(format!("weft-serve-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    let models = models()?;
    for (name, onnx, _) in &models {
        std::fs::create_dir_all(repo.join(name).join("1"))?;
        std::fs::write(repo.join(name).join("1/model.onnx"), onnx)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    // The objectives weft serve derives, and each model's solo latency over
    // HTTP (median of 5 after a warm-up), on the SLO-aware server.
    let server = start(&rt, &repo, backend, weft::sched::SchedulerConfig::slo_aware(1.0))?;
    let used = server.models().engine().backend().to_string();
    let mut solo = Vec::new();
    for (name, _, body) in &models {
        let slo = server.models().get(name, None)?.slo;
        std::fs::write(repo.join(name).join("config.toml"), format!("slo_ms = {}\n", slo.as_secs_f64() * 1e3))?;
        request(server.http_addr(), name, body);
        let mut t: Vec<f64> = (0..5).map(|_| request(server.http_addr(), name, body).1.as_secs_f64()).collect();
        t.sort_by(f64::total_cmp);
        solo.push(t[2]);
        eprintln!("{name}: objective {:.1} ms, solo {:.2} ms over HTTP", slo.as_secs_f64() * 1e3, t[2] * 1e3);
    }
    rt.block_on(server.drain());
    // Time-only FIFO is busy all the time when every model gets this rate.
    let capacity = 1.0 / solo.iter().sum::<f64>();

    let policies = [
        ("time-only FIFO", weft::sched::SchedulerConfig::time_only_fifo()),
        ("weft SLO-aware", weft::sched::SchedulerConfig::slo_aware(1.0)),
    ];
    let mut rows = Vec::new();
    for &load in &loads {
        for (label, policy) in &policies {
            let server = start(&rt, &repo, backend, policy.clone())?;
            let addr = server.http_addr();
            let rate = load * capacity;
            let results: Arc<Mutex<Vec<(usize, u16, f64)>>> = Arc::new(Mutex::new(Vec::new()));
            let started = Instant::now();
            let mut generators = Vec::new();
            for (m, (name, _, body)) in models.iter().enumerate() {
                let (name, body, results) = (name.clone(), body.clone(), results.clone());
                generators.push(std::thread::spawn(move || {
                    let mut rng = Rng(0x5eed + m as u64 * 7 + (load * 1000.0) as u64);
                    let mut at = rng.exp(rate);
                    let mut clients = Vec::new();
                    while at < seconds {
                        let due = started + Duration::from_secs_f64(at);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        let (name, body, results) = (name.clone(), body.clone(), results.clone());
                        clients.push(std::thread::spawn(move || {
                            let (status, latency) = request(addr, &name, &body);
                            results.lock().unwrap_or_else(|e| e.into_inner()).push((m, status, latency.as_secs_f64()));
                        }));
                        at += rng.exp(rate);
                    }
                    for c in clients {
                        let _ = c.join();
                    }
                }));
            }
            for g in generators {
                let _ = g.join();
            }
            let results = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (m, (name, _, _)) in models.iter().enumerate() {
                let slo = server.models().get(name, None)?.slo.as_secs_f64();
                let mine: Vec<&(usize, u16, f64)> = results.iter().filter(|r| r.0 == m).collect();
                let mut ok: Vec<f64> = mine.iter().filter(|r| r.1 == 200).map(|r| r.2).collect();
                ok.sort_by(f64::total_cmp);
                let within = ok.iter().filter(|&&l| l <= slo).count();
                rows.push(Row {
                    policy: label.to_string(),
                    load,
                    model: name.clone(),
                    rate,
                    slo_ms: slo * 1e3,
                    sent: mine.len(),
                    answered: ok.len(),
                    refused: mine.iter().filter(|r| r.1 == 429 || r.1 == 503).count(),
                    p50_ms: quantile(&ok, 0.5).map(|s| s * 1e3),
                    p99_ms: quantile(&ok, 0.99).map(|s| s * 1e3),
                    attainment: if mine.is_empty() { 1.0 } else { within as f64 / mine.len() as f64 },
                    goodput: within as f64 / seconds,
                });
                eprintln!("{label} at {load}x: {name} {:?}", rows.last());
            }
            rt.block_on(server.drain());
        }
    }
    let _ = std::fs::remove_dir_all(&repo);

    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut md = String::new();
    writeln!(md, "# Serving over the Open Inference Protocol, `{used}` backend")?;
    writeln!(md)?;
    writeln!(
        md,
        "`cargo run --release -p weft-bench --example serve_load -- --seconds {seconds}`: `weft serve` in process, \
         Poisson HTTP/JSON requests over loopback for {seconds} s per point, each model at the same rate. \
         Load is a multiple of time-only FIFO's capacity ({capacity:.1} requests/s per model). \
         Latency at the client; attainment = answered within the objective / sent. \
         Commit {commit}, {cores} CPU threads visible."
    )?;
    writeln!(md)?;
    writeln!(md, "| load | policy | model | rate/s | SLO ms | sent | answered | refused | p50 ms | p99 ms | attainment | goodput/s |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {:.3} | {:.1} |",
            r.load,
            r.policy,
            r.model,
            r.rate,
            r.slo_ms,
            r.sent,
            r.answered,
            r.refused,
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.attainment,
            r.goodput
        )?;
    }
    print!("{md}");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join(format!("serve-load-{used}.md")), &md)?;
    let raw: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "policy": r.policy, "load": r.load, "model": r.model, "rate": r.rate, "slo_ms": r.slo_ms,
                "sent": r.sent, "answered": r.answered, "refused": r.refused, "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms, "attainment": r.attainment, "goodput": r.goodput,
            })
        })
        .collect();
    std::fs::write(out.join(format!("serve-load-{used}.json")), serde_json::to_string_pretty(&raw)?)?;
    eprintln!("wrote {}", out.join(format!("serve-load-{used}.md")).display());
    Ok(())
}
