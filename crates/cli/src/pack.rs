//! `weft pack`: plan how several tenants' models share one GPU, print the
//! bundles, verify them on the interpreter, and draw the plan.

use std::path::{Path, PathBuf};

use weft::interp::Interpreter;
use weft::kir::HostBuffer;
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::timeline::{chrome_trace, svg_timeline};
use weft::pack::{plan, run_plan, DeviceLimits, PackMode, Plan, Policy, TenantId, TenantState};

use crate::commands::{load, random_input, Bindings, CliError};

/// One `MODEL.onnx[xN]` argument: a model and how many tenants run it.
struct ModelSpec {
    path: PathBuf,
    count: usize,
    name: String,
}

fn parse_spec(spec: &str) -> Result<ModelSpec, CliError> {
    // `model.onnxx4` → four tenants; a plain path → one.
    let (path, count) = match spec.rsplit_once('x') {
        Some((p, n)) if p.ends_with(".onnx") && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            let n: usize = n.parse().map_err(|_| CliError::Usage(format!("`{spec}`: bad tenant count")))?;
            (p, n)
        }
        _ => (spec, 1),
    };
    if count == 0 || count > 1024 {
        return Err(CliError::Usage(format!("`{spec}`: the tenant count must be 1 to 1024")));
    }
    let name = Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().to_string());
    Ok(ModelSpec { path: PathBuf::from(path), count, name })
}

/// Options of `weft pack`.
pub struct PackArgs<'a> {
    pub models: &'a [String],
    pub mode: PackMode,
    pub knob: f64,
    pub bind: Bindings<'a>,
    pub out: &'a Path,
    pub verify: bool,
    pub seed: u64,
    /// Draw only the first this many bundles in the SVG (the trace has all).
    pub draw_first: Option<usize>,
}

fn limits() -> (DeviceLimits, String) {
    match weft::cuda::probe() {
        Ok(info) => {
            (weft::device_limits(&info), format!("{} ({}, {} SMs)", info.name, info.arch_name(), info.sm_count))
        }
        Err(_) => (DeviceLimits::sm_90(), "no GPU: planning for sm_90 defaults (132 SMs)".to_string()),
    }
}

pub fn pack(args: &PackArgs) -> Result<(), CliError> {
    if args.models.is_empty() {
        return Err(CliError::Usage("give at least one MODEL.onnx[xN]".into()));
    }
    if !(0.0..=1.0).contains(&args.knob) {
        return Err(CliError::Usage(format!("--knob {}: must be between 0 (latency) and 1 (throughput)", args.knob)));
    }
    // Each model is imported and lowered once; its tenants share the program
    // (kernels and weights) and differ in their inputs.
    let mut programs: Vec<(String, Program)> = Vec::new();
    let mut tenants: Vec<(TenantId, usize, String)> = Vec::new();
    for spec in args.models {
        let m = parse_spec(spec)?;
        let graph = load(&m.path, &args.bind)?;
        let program = lower(&graph, &LowerOptions::default())?;
        let idx = programs.len();
        for i in 0..m.count {
            tenants.push((TenantId(tenants.len() as u32), idx, format!("{}#{i}", m.name)));
        }
        programs.push((m.name, program));
    }
    let (limits, device) = limits();
    let policy = Policy::new(args.mode, args.knob);
    let ids: Vec<(TenantId, &Program)> = tenants.iter().map(|(t, p, _)| (*t, &programs[*p].1)).collect();
    let plan = plan(&ids, &limits, &policy)?;
    print_plan(&plan, &tenants, &device, args);

    std::fs::create_dir_all(args.out)
        .map_err(|source| CliError::Io { path: args.out.display().to_string(), source })?;
    let mut spans = plan.spans();
    for b in &mut spans {
        for s in &mut b.slots {
            s.tenant_name = tenants[s.tenant as usize].2.clone();
        }
    }
    let trace = args.out.join("plan.trace.json");
    let svg = args.out.join("plan.svg");
    let title = format!(
        "weft pack: {} tenants, {} bundles{}, {:?} mode, knob {} (predicted times)",
        tenants.len(),
        plan.bundles.len(),
        args.draw_first.filter(|&n| n < plan.bundles.len()).map_or(String::new(), |n| format!(" (first {n} drawn)")),
        args.mode,
        args.knob
    );
    let drawn = &spans[..args.draw_first.unwrap_or(spans.len()).min(spans.len())];
    for (path, text) in [(&trace, chrome_trace(&spans)), (&svg, svg_timeline(drawn, &title))] {
        std::fs::write(path, text).map_err(|source| CliError::Io { path: path.display().to_string(), source })?;
    }
    println!("wrote {} (chrome://tracing, Perfetto) and {}", trace.display(), svg.display());

    if args.verify {
        verify(&plan, &programs, &tenants, args.seed)?;
    }
    Ok(())
}

fn print_plan(plan: &Plan, tenants: &[(TenantId, usize, String)], device: &str, args: &PackArgs) {
    println!("device: {device}");
    println!(
        "{} tenants, {} bundles ({:.2} slots per bundle), {:?} mode, knob {}; predicted time {:.0} units",
        tenants.len(),
        plan.bundles.len(),
        plan.mean_width(),
        args.mode,
        args.knob,
        plan.time()
    );
    for (i, b) in plan.bundles.iter().enumerate() {
        println!(
            "bundle {i}: {} slots, {} blocks x {} threads, {} blocks/SM ({}-limited), {:.2} waves, {}",
            b.slots.len(),
            b.bundle.table.total_blocks(),
            b.bundle.block_threads(),
            b.occupancy.blocks_per_sm,
            b.occupancy.limiter.name(),
            b.waves,
            if b.coalesced { "coalesced" } else { "constrained" }
        );
        for (slot, sp) in b.bundle.slots.iter().zip(&b.slots) {
            println!(
                "    {:<16} {:<32} {:>6} logical -> {:>6} blocks  ({} rounds, {:.0} units, solo {:.0})",
                tenants[sp.tenant.0 as usize].2,
                slot.kernel.name,
                sp.logical_blocks,
                sp.blocks,
                sp.rounds,
                sp.time,
                sp.solo_time
            );
        }
    }
    if !plan.refusals.is_empty() {
        println!("{} kernels waited for a later bundle; the first:", plan.refusals.len());
        for r in plan.refusals.iter().take(5) {
            println!("    {r}");
        }
    }
}

/// Runs the plan on the interpreter and checks every tenant's outputs are
/// bit-identical to running its program alone.
fn verify(
    plan: &Plan,
    programs: &[(String, Program)],
    tenants: &[(TenantId, usize, String)],
    seed: u64,
) -> Result<(), CliError> {
    let interp = Interpreter::new();
    let inputs: Vec<Vec<HostBuffer>> = tenants
        .iter()
        .map(|(t, p, _)| {
            let program = &programs[*p].1;
            program
                .inputs
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let info = &program.buffers[b.buffer];
                    random_input(info.elem, info.len(), seed ^ ((t.0 as u64) << 32) ^ i as u64)
                })
                .collect()
        })
        .collect();
    let mut states = tenants
        .iter()
        .zip(&inputs)
        .map(|((t, p, _), x)| TenantState::new(*t, &programs[*p].1, x).map_err(CliError::from))
        .collect::<Result<Vec<_>, _>>()?;
    run_plan(plan, &mut states, &interp).map_err(CliError::PackedRun)?;
    for ((state, (_, p, name)), x) in states.iter().zip(tenants).zip(&inputs) {
        let packed = state.outputs()?;
        let solo = programs[*p].1.run(&interp, x)?;
        if packed != solo {
            return Err(CliError::Usage(format!("tenant {name}: packed outputs differ from its solo run")));
        }
    }
    println!(
        "verified on the interpreter: all {} tenants' outputs are bit-identical to their solo runs",
        tenants.len()
    );
    Ok(())
}
