//! `weft pack`: plan how several tenants' models share one GPU, print the
//! bundles, verify them on the interpreter, and draw the plan.
//!
//! The plan is `weft_pack::plan_with` priced by the predictor's analytical
//! prior (`PredictorCost` over `RooflinePrior`), the model the serving
//! scheduler starts from, so printed and drawn times are predicted µs.
//! Where NVRTC and ptxas are present, every distinct kernel is compiled
//! first (through the PTX cache) and the plan uses ptxas's registers, shared
//! memory and spills; elsewhere the packer's KIR estimate stands in, and the
//! output says which.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use weft::codegen::{emit_cuda, fits_parameter_space, Arch, Compiler};
use weft::interp::Interpreter;
use weft::kir::{HostBuffer, KernelDef, Target};
use weft::lower::{lower, Program};
use weft::pack::timeline::{chrome_trace, svg_timeline};
use weft::pack::{
    body_fingerprint, plan_observed, plan_with, run_plan, run_program, CostModel, InterpExecutor, PackMode, Plan,
    Policy, RefusalReason, Resident, ResourceTable, TenantId, TenantRun, Weights,
};
use weft::predict::{DeviceModel, PredictorCost, RooflinePrior};

use crate::commands::{load, Bindings, CliError};

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
    /// The forms a bundle module may take.
    pub forms: weft::pack::FormChoice,
    /// Bundle modules compiled at most while planning.
    pub max_module_compiles: usize,
}

/// Progress of long work on stderr: a line at most every few seconds,
/// none for work that finishes sooner.
struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(5);

    fn new(what: &'static str) -> Progress {
        let now = Instant::now();
        Progress { what, started: now, last: now }
    }

    /// Prints `line()` if the last line is old enough.
    fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= Self::EVERY {
            self.last = Instant::now();
            eprintln!("{}: {} ({:.0} s)", self.what, line(), self.started.elapsed().as_secs_f64());
        }
    }
}

fn limits() -> (Target, String) {
    match weft::cuda::probe() {
        Ok(info) => (info.target(), format!("{} ({}, {} SMs)", info.name, info.arch_name(), info.sm_count)),
        Err(_) => (Target::sm_90(), "no GPU: planning for sm_90 defaults (132 SMs)".to_string()),
    }
}

/// Compiles each distinct kernel of `programs` for `target` and records
/// ptxas's report in `table`; says what was measured, or why nothing was.
fn measure(programs: &[(String, Program)], compiler: &Compiler, table: &ResourceTable) -> Result<String, CliError> {
    if let Err(e) = compiler.nvrtc() {
        return Ok(format!("registers estimated from KIR ({e})"));
    }
    let mut seen = HashSet::new();
    let kernels: Vec<&Arc<KernelDef>> = programs
        .iter()
        .flat_map(|(_, p)| &p.steps)
        .map(|s| &s.kernel)
        .filter(|k| seen.insert(body_fingerprint(k)))
        .collect();
    // A kernel past the parameter space is never launched alone: it keeps
    // its estimate here, and its bundles are measured as modules.
    kernels.par_iter().filter(|k| fits_parameter_space(k)).try_for_each(|k| -> Result<(), CliError> {
        let compiled = compiler.compile_measured(&emit_cuda(k)?)?;
        table.record_compiled(k, &compiled);
        Ok(())
    })?;
    Ok(if table.len() == kernels.len() {
        format!("registers, shared memory and spills from ptxas for all {} distinct kernels", kernels.len())
    } else {
        format!(
            "{} of {} distinct kernels measured by ptxas, the rest estimated from KIR (no ptxas found, or \
             parameters past a kernel launch's)",
            table.len(),
            kernels.len()
        )
    })
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
        // Verification runs it on the interpreter: it must fit the host.
        let program = lower(&graph, &args.bind.lower_options(None))?;
        let idx = programs.len();
        for i in 0..m.count {
            tenants.push((TenantId(tenants.len() as u32), idx, format!("{}#{i}", m.name)));
        }
        programs.push((m.name, program));
    }
    let (limits, device) = limits();
    let table = ResourceTable::new();
    let (major, minor) = limits.compute_capability;
    let compiler = Compiler::new(Arch::new(major, minor));
    let resources = measure(&programs, &compiler, &table)?;
    let policy = Policy::new(args.mode, args.knob);
    let ids: Vec<(TenantId, &Program)> = tenants.iter().map(|(t, p, _)| (*t, &programs[*p].1)).collect();
    let mut cost = PredictorCost::new(RooflinePrior::new(), DeviceModel::sm_90_with(limits));
    // With NVRTC, every join is judged on the module it would compile to
    // (cached with the PTX), up to the compile limit: joins whose module
    // loses the bodies' occupancy are split.
    let mut progress = Progress::new("planning");
    let (plan, modules) = if compiler.nvrtc().is_ok() {
        let modules = weft::pack::CompiledModules::new(&table, &compiler, limits, args.forms)
            .with_limit(args.max_module_compiles);
        let plan = plan_observed(&ids, &limits, &policy, &modules, &mut cost, &mut |p| {
            progress.tick(|| {
                format!(
                    "{} bundles, {} of {} slots placed, {} bundle modules compiled",
                    p.bundles,
                    p.slots,
                    p.total_slots,
                    modules.compiled()
                )
            })
        })?;
        (plan, Some((modules.compiled(), modules.unjudged())))
    } else {
        let plan = plan_observed(&ids, &limits, &policy, &table, &mut cost, &mut |p| {
            progress.tick(|| format!("{} bundles, {} of {} slots placed", p.bundles, p.slots, p.total_slots))
        })?;
        (plan, None)
    };
    print_plan(&plan, &tenants, &format!("{device}; {resources}"), cost.name(), args);
    if let Some((compiled, unjudged)) = modules {
        println!("{}", module_note(compiled, unjudged, args.max_module_compiles));
    }

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
        "weft pack: {} tenants, {} bundles{}, {:?} mode, knob {} (predicted µs, the predictor's prior)",
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
    write_bundles(&plan, &compiler, &limits, args.out, args.forms)?;

    if args.verify {
        let budget = args.bind.host_budget();
        let mut replan = |group: &[(TenantId, &Program)]| -> Result<Plan, CliError> {
            Ok(plan_with(group, &limits, &policy, &table, &mut cost)?)
        };
        verify_bounded(&plan, &programs, &tenants, args.seed, budget, &mut replan)?;
    }
    Ok(())
}

/// What planning learnt from compiled modules: `compiled` launch classes
/// compiled, `unjudged` joins past the `limit` judged on their kernels' own
/// figures.
fn module_note(compiled: usize, unjudged: usize, limit: usize) -> String {
    if unjudged == 0 {
        return format!("bundle modules: every join was judged on its compiled module ({compiled} compiled)");
    }
    format!(
        "bundle modules: {compiled} compiled (at most {limit}); {unjudged} later joins of bodies not compiled together \
         were judged on their kernels' own figures, not their module's (--max-module-compiles raises the limit; \
         bundles.tsv has every planned module's figures)"
    )
}

/// Bytes verifying `count` tenants at once holds on the host: every
/// distinct program's weights twice (the program's copy and the
/// interpreter's), each tenant's inputs, arena and outputs (packed and
/// solo), the weights of its heaviest step once more (a bundle launch on the
/// interpreter hands each slot after the first its own copy of a shared
/// weight), and one solo run's weights and arena on top.
fn verify_bytes(programs: &[(String, Program)], tenants: &[(TenantId, usize, String)]) -> u64 {
    let memory: Vec<_> = programs.iter().map(|(_, p)| p.memory()).collect();
    let step_weights: Vec<u64> = programs.iter().map(|(_, p)| heaviest_step_weights(p)).collect();
    let mut used = vec![false; programs.len()];
    let mut bytes = 0u64;
    for (_, p, _) in tenants {
        let m = &memory[*p];
        if !used[*p] {
            used[*p] = true;
            bytes = bytes.saturating_add(m.weights.saturating_mul(2));
        }
        bytes = bytes.saturating_add(m.arena()).saturating_add(m.inputs).saturating_add(m.outputs.saturating_mul(2));
        bytes = bytes.saturating_add(step_weights[*p]);
    }
    let solo = tenants.iter().map(|(_, p, _)| memory[*p].device()).max().unwrap_or(0);
    bytes.saturating_add(solo)
}

/// The most weight bytes one step of `program` reads.
fn heaviest_step_weights(program: &Program) -> u64 {
    let weight_bytes = |b: &weft_lower::BufferId| {
        let info = &program.buffers[*b];
        if info.kind == weft_lower::BufferKind::Weight {
            (info.len() as u64).saturating_mul(info.elem.size_bytes())
        } else {
            0
        }
    };
    program.steps.iter().map(|s| s.args.iter().map(weight_bytes).sum::<u64>()).max().unwrap_or(0)
}

/// Plans a group of tenants with the planner the whole plan came from.
type Replan<'a> = dyn FnMut(&[(TenantId, &Program)]) -> Result<Plan, CliError> + 'a;

/// Verifies the plan within `budget` bytes of host memory: all at once
/// where every tenant's buffers fit, else in groups of tenants that do,
/// each group planned by the same planner (`replan`) and freed before the
/// next, so memory stays bounded however many tenants there are.
fn verify_bounded(
    plan: &Plan,
    programs: &[(String, Program)],
    tenants: &[(TenantId, usize, String)],
    seed: u64,
    budget: u64,
    replan: &mut Replan<'_>,
) -> Result<(), CliError> {
    let all = verify_bytes(programs, tenants);
    let mut progress = Progress::new("verifying");
    let total = tenants.len();
    if all <= budget {
        verify(plan, programs, tenants, seed, &mut |k| {
            progress.tick(|| format!("{k} of {total} tenants compared with their solo runs"))
        })?;
        println!(
            "verified on the interpreter: all {} tenants' outputs are bit-identical to their solo runs",
            tenants.len()
        );
        return Ok(());
    }
    // The largest group that fits, filled greedily in tenant order.
    let mut groups: Vec<Vec<(TenantId, usize, String)>> = Vec::new();
    let mut current: Vec<(TenantId, usize, String)> = Vec::new();
    for t in tenants {
        current.push(t.clone());
        if current.len() > 1 && verify_bytes(programs, &current) > budget {
            let last = current.pop().expect("just pushed");
            groups.push(std::mem::replace(&mut current, vec![last]));
        }
    }
    if verify_bytes(programs, &current) > budget {
        let (_, p, name) = &current[0];
        let m = programs[*p].1.memory();
        return Err(CliError::Memory(weft::graph::MemoryError {
            what: format!("verifying tenant {name} on the interpreter"),
            needed: verify_bytes(programs, &current[..1]),
            limit: budget,
            largest: m.largest,
        }));
    }
    groups.push(current);
    let mut done = 0;
    for (i, group) in groups.iter().enumerate() {
        let ids: Vec<(TenantId, &Program)> = group.iter().map(|(t, p, _)| (*t, &programs[*p].1)).collect();
        let sub = replan(&ids)?;
        verify(&sub, programs, group, seed, &mut |k| {
            progress.tick(|| {
                format!(
                    "group {} of {}: {} of {total} tenants compared with their solo runs",
                    i + 1,
                    groups.len(),
                    done + k
                )
            })
        })?;
        done += group.len();
    }
    println!(
        "verified on the interpreter in {} groups of at most {} tenants (all {} at once would hold {}, over the \
         {} budget; --max-memory raises it): every tenant's outputs are bit-identical to its solo run",
        groups.len(),
        groups.iter().map(Vec::len).max().unwrap_or(0),
        tenants.len(),
        weft::graph::memory::format_bytes(all),
        weft::graph::memory::format_bytes(budget)
    );
    Ok(())
}

fn print_plan(plan: &Plan, tenants: &[(TenantId, usize, String)], device: &str, cost: &str, args: &PackArgs) {
    println!("device: {device}");
    println!("cost model: the predictor's {cost}");
    println!(
        "{} tenants, {} bundles ({:.2} slots per bundle), {:?} mode, knob {}; predicted time {:.1} µs",
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
            b.bundle.table().total_blocks(),
            b.bundle.block_threads(),
            b.occupancy.blocks_per_sm,
            b.occupancy.limiter.name(),
            b.waves,
            if b.coalesced { "coalesced" } else { "constrained" }
        );
        for (slot, sp) in b.bundle.slots().iter().zip(&b.slots) {
            println!(
                "    {:<16} {:<32} {:>6} logical -> {:>6} blocks  ({} rounds, {:.1} µs, solo {:.1} µs)",
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
        let split = plan.refusals.iter().filter(|r| matches!(r.reason, RefusalReason::ModuleOccupancy { .. })).count();
        if split > 0 {
            println!("{split} joins were split: their compiled module would lose its bodies' occupancy");
        }
        println!("{} kernels waited for a later bundle; the first:", plan.refusals.len());
        for r in plan.refusals.iter().take(5) {
            println!("    {r}");
        }
    }
}

/// One distinct bundle module of a plan: its class's bodies and block size,
/// and how the plan used it.
struct DistinctBundle<'p> {
    bundle: &'p weft::pack::Bundle,
    modes: Vec<&'static str>,
    launches: usize,
}

/// The distinct modules of `plan` (by launch class), in first-use order.
fn distinct_bundles(plan: &Plan) -> Vec<DistinctBundle<'_>> {
    let mut out: Vec<DistinctBundle> = Vec::new();
    for b in &plan.bundles {
        let mode = if b.coalesced { "coalesced" } else { "constrained" };
        match out.iter_mut().find(|d| d.bundle.class() == b.bundle.class()) {
            Some(d) => {
                d.launches += 1;
                if !d.modes.contains(&mode) {
                    d.modes.push(mode);
                }
            }
            None => out.push(DistinctBundle { bundle: &b.bundle, modes: vec![mode], launches: 1 }),
        }
    }
    out
}

/// Writes each distinct bundle module's CUDA C and PTX to `out/bundles/`
/// and their figures to `out/bundles.tsv`: the module's registers, spills,
/// shared memory and blocks per SM (ptxas's, on the occupancy rules) beside
/// the heaviest body's compiled alone. Without NVRTC only the sources are
/// written, and the table says why its figures are missing.
fn write_bundles(
    plan: &Plan,
    compiler: &Compiler,
    target: &Target,
    out: &Path,
    forms: weft::pack::FormChoice,
) -> Result<(), CliError> {
    let dir = out.join("bundles");
    std::fs::create_dir_all(&dir).map_err(|source| CliError::Io { path: dir.display().to_string(), source })?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|source| CliError::Io { path: path.display().to_string(), source })
    };
    let distinct = distinct_bundles(plan);
    let nvrtc = compiler.nvrtc().err().map(|e| e.to_string());
    // Most were compiled while planning (a cache hit); the rest compile now.
    let progress = std::sync::Mutex::new((Progress::new("writing bundle modules"), 0usize));
    let compiled: Vec<Option<weft::pack::CompiledBundle>> = distinct
        .par_iter()
        .map(|d| -> Result<_, CliError> {
            if nvrtc.is_some() {
                return Ok(None);
            }
            let c = weft::pack::compile_bundle_with(compiler, target, d.bundle.bodies(), d.bundle.class(), forms)?;
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
            p.1 += 1;
            let n = p.1;
            p.0.tick(|| format!("{n} of {} compiled", distinct.len()));
            Ok(Some(c))
        })
        .collect::<Result<_, _>>()?;
    let mut tsv = String::from(
        "bundle\tmode\tlaunches\tbodies\tblock_threads\tform\tregisters\tmax_body_registers\tspill_bytes\t\
         shared_bytes\tmax_body_shared_bytes\tblocks_per_sm\tmax_body_blocks_per_sm\tkeeps_occupancy\n",
    );
    let (mut measured, mut within) = (0, 0);
    for (i, (d, c)) in distinct.iter().zip(&compiled).enumerate() {
        let name = format!("bundle_{i:03}");
        let bodies: Vec<&str> = d.bundle.bodies().iter().map(|k| k.name.as_str()).collect();
        let figures = c.as_ref().and_then(|c| c.figures);
        let cells = match &figures {
            Some(f) => {
                measured += 1;
                let keeps = f.keeps_occupancy(target);
                within += usize::from(keeps);
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    f.module.registers,
                    f.max_body.registers,
                    f.module.spill_bytes,
                    f.module.shared_bytes,
                    f.max_body.shared_bytes,
                    f.module_occupancy.blocks_per_sm,
                    f.max_body_occupancy.blocks_per_sm,
                    if keeps { "yes" } else { "no" }
                )
            }
            None => ["-"; 8].join("\t"),
        };
        tsv += &format!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{cells}\n",
            d.modes.join(","),
            d.launches,
            bodies.join("+"),
            d.bundle.block_threads(),
            c.as_ref().map_or_else(|| "-".to_string(), |c| c.form.name())
        );
        match c {
            Some(c) => {
                write(dir.join(format!("{name}.cu")), &c.source.code)?;
                write(dir.join(format!("{name}.ptx")), &c.ptx.ptx)?;
            }
            None => {
                let refs: Vec<&KernelDef> = d.bundle.bodies().iter().map(|k| &**k).collect();
                let form = weft::codegen::BundleForm {
                    single_pass: d.bundle.class().single_pass,
                    ..weft::codegen::BundleForm::default()
                };
                let source = weft::codegen::emit_bundle_with(&refs, d.bundle.block_threads(), form)?;
                write(dir.join(format!("{name}.cu")), &source.code)?;
            }
        }
    }
    let path = out.join("bundles.tsv");
    write(path.clone(), &tsv)?;
    match (&nvrtc, measured) {
        (Some(e), _) => println!(
            "wrote {} distinct bundle sources to {} and {} without figures (no NVRTC: {e})",
            distinct.len(),
            dir.display(),
            path.display()
        ),
        (None, 0) => println!(
            "wrote {} distinct bundle modules (.cu, .ptx) to {} and {} without figures (no ptxas found)",
            distinct.len(),
            dir.display(),
            path.display()
        ),
        (None, n) => println!(
            "wrote {} distinct bundle modules (.cu, .ptx) to {} and {}: {within} of {n} keep their heaviest body's \
             occupancy (blocks per SM, registers within 1.1x as allocated, no spills)",
            distinct.len(),
            dir.display(),
            path.display()
        ),
    }
    Ok(())
}

/// Runs the plan on the interpreter and checks every tenant's outputs are
/// bit-identical to running its program alone; `compared` hears how many
/// tenants were checked so far.
fn verify(
    plan: &Plan,
    programs: &[(String, Program)],
    tenants: &[(TenantId, usize, String)],
    seed: u64,
    compared: &mut dyn FnMut(usize),
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
                    weft::lower::random_buffer(info.elem, info.len(), seed ^ ((t.0 as u64) << 32) ^ i as u64)
                })
                .collect()
        })
        .collect();
    let mut exec = InterpExecutor::new(interp);
    // Tenants of one model share its weights, as on a server.
    let mut shared: Vec<Option<Arc<Weights>>> = vec![None; programs.len()];
    let arcs: Vec<Arc<Program>> = programs.iter().map(|(_, p)| Arc::new(p.clone())).collect();
    let mut runs = Vec::with_capacity(tenants.len());
    for ((t, p, _), x) in tenants.iter().zip(&inputs) {
        let weights = match &shared[*p] {
            Some(w) => w.clone(),
            None => {
                let w = Arc::new(Weights::upload(&mut exec, &arcs[*p]).map_err(CliError::PackedRun)?);
                shared[*p] = Some(w.clone());
                w
            }
        };
        let resident = Resident::new(arcs[*p].clone(), weights);
        runs.push(TenantRun::start(&mut exec, *t, resident, x).map_err(CliError::PackedRun)?);
    }
    run_plan(plan, &mut runs, &mut exec).map_err(CliError::PackedRun)?;
    for (k, ((run, (_, p, name)), x)) in runs.iter().zip(tenants).zip(&inputs).enumerate() {
        let packed = run.resident.outputs(&mut exec, &run.arena).map_err(CliError::PackedRun)?;
        let solo = run_program(&mut exec, arcs[*p].clone(), x, |_| {})?;
        if packed != solo {
            return Err(CliError::Usage(format!("tenant {name}: packed outputs differ from its solo run")));
        }
        compared(k + 1);
    }
    // Dropping the interpreter frees the group's buffers before the next.
    Ok(())
}
