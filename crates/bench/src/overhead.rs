//! `weft-bench overhead`: the host cost of launching one bundle once its
//! code is compiled, from "plan decided" to "launch returned".
//!
//! The bundles are a real plan's: `T` ResNet-18 tenants (builder, own seeds)
//! planned with `pack::plan` (Auto, throughput knob), launched through
//! [`GpuExecutor`](weft::gpu::GpuExecutor) as a [`weft::pack::Executor`], the
//! path the engine serves on. Before timing, every tenant is made resident
//! the way the engine does it ([`Resident::upload`]: weights once;
//! [`Arena::alloc`]: inputs and activations; [`Resident::begin`]: zero
//! inputs) and every bundle of the plan is `prepare`d, so every launch is a
//! compiled-cache hit. Per bundle:
//!
//! 1. **bind** (host `Instant`): each slot's buffers bound to the tenant's
//!    handles ([`Resident::launch_args`]), the decision turned into launch
//!    arguments;
//! 2. **launch** (host `Instant`): `Executor::launch` until it returns: the
//!    module lookup, the slot table and argument words encoded and
//!    uploaded, `cuLaunchKernel`, and the wait for the launch's end event;
//! 3. **device**: the launch's own time, from the [`Timing`](weft::pack::Timing)
//!    it returns (CUDA events around the kernel);
//! 4. **overhead**: bind + launch − device, the host's share of deciding
//!    to launch; the goal applies to it.
//!
//! What changed with the executor: the launch call now returns after the
//! kernel has run (the executor waits for its events to time it), so the
//! host figure of the old "upload + launch" parts is `launch − device`
//! here, and the old separate "upload" part is inside `launch`. It also
//! counts the event wait, which a pipelined launcher would overlap.
//!
//! The plan's bundles are launched in order, over and over, for `--iters`
//! launches (the first `--warmup` not counted). Medians and 90th
//! percentiles per part. The executor's request-path compile counter is
//! checked: a timed launch that compiled would be a failed check.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use weft::kir::{HostBuffer, Target};
use weft::lower::Program;
use weft::pack::{plan, Arena, Executor, PackMode, Policy, Resident, TenantId};

use super::{median, quantile, BenchError, Csv, Ctx, Outcome, Output};

/// What `overhead` runs.
#[derive(Clone, Debug)]
pub struct OverheadArgs {
    pub tenants: usize,
    pub iters: usize,
    pub warmup: usize,
    pub image: usize,
    pub out: PathBuf,
}

/// The goal for the host's share of the decision-to-launch path.
pub const GOAL_US: f64 = 5.0;

/// What [`measure`] found: per timed launch, the parts (bind, launch,
/// device, overhead) in µs and the bundle's slots.
struct Measured {
    parts: [Vec<f64>; 4],
    slots: Vec<usize>,
    bundles: usize,
    classes: usize,
    request_path_compiles: u64,
}

pub fn run(ctx: &mut Ctx, args: &OverheadArgs) -> Result<Outcome, BenchError> {
    let limits = ctx.info.target();
    let Measured { parts, slots, bundles, classes, request_path_compiles } = measure(&mut ctx.exec, &limits, args)?;
    let names =
        ["bind (launch arguments)", "launch (Executor::launch)", "device (Timing)", "overhead (bind+launch-device)"];
    let mut table = ctx.meta.header();
    table += &format!(
        "\noverhead: decision-to-launch per bundle on a compiled-cache hit through GpuExecutor, {} launches over a \
         {}-bundle plan of {} ResNet-18 tenants (mean {:.1} slots per bundle), microseconds\n\n",
        args.iters,
        bundles,
        args.tenants,
        slots.iter().sum::<usize>() as f64 / slots.len().max(1) as f64
    );
    table += &format!("{:<32} {:>10} {:>10} {:>10}\n", "part", "median", "p90", "min");
    let mut summary = serde_json::Map::new();
    for (name, v) in names.iter().zip(&parts) {
        let (med, p90, min) = (median(v), quantile(v, 0.9), quantile(v, 0.0));
        table += &format!("{name:<32} {med:>10.2} {p90:>10.2} {min:>10.2}\n");
        summary.insert(name.to_string(), serde_json::json!({"median_us": med, "p90_us": p90, "min_us": min}));
    }
    table += &format!(
        "\ngoal: overhead <= {GOAL_US} us per bundle (median); request-path compiles while timing: {request_path_compiles}\n"
    );
    let mut csv = Csv::new(&["launch", "slots", "bind_us", "launch_us", "device_us", "overhead_us"]);
    for i in 0..parts[0].len() {
        csv.row(&[
            i.to_string(),
            slots[i].to_string(),
            format!("{:.3}", parts[0][i]),
            format!("{:.3}", parts[1][i]),
            format!("{:.3}", parts[2][i]),
            format!("{:.3}", parts[3][i]),
        ]);
    }
    let json = serde_json::json!({
        "benchmark": "overhead",
        "meta": ctx.meta.to_json(),
        "tenants": args.tenants,
        "image": args.image,
        "bundles_in_plan": bundles,
        "launch_classes": classes,
        "api": "weft::gpu::GpuExecutor as weft::pack::Executor: Resident/Arena from weft_pack::run, prepare, launch",
        "request_path_compiles": request_path_compiles,
        "iters": args.iters,
        "warmup": args.warmup,
        "goal_overhead_us": GOAL_US,
        "summary": summary,
        "per_launch_us": {"bind": parts[0], "launch": parts[1], "device": parts[2], "overhead": parts[3], "slots": slots},
    });
    Output { dir: args.out.clone(), name: "overhead" }.write(&json, &csv, &table)?;
    Ok(Outcome::Ran { checks_failed: usize::from(request_path_compiles > 0) })
}

/// Makes `args.tenants` ResNet-18 tenants resident on `exec`, prepares
/// their plan's bundles (planned for `limits`) and times the launches.
fn measure(exec: &mut dyn Executor, limits: &Target, args: &OverheadArgs) -> Result<Measured, BenchError> {
    let seeds: Vec<u64> = (0..args.tenants).map(|i| 0x0e4d + i as u64).collect();
    let programs: Vec<Arc<Program>> = super::e2e::resnet18s(&seeds, args.image)?.into_iter().map(Arc::new).collect();
    let ids: Vec<(TenantId, &Program)> = programs.iter().enumerate().map(|(i, p)| (TenantId(i as u32), &**p)).collect();
    let the_plan = plan(&ids, limits, &Policy::new(PackMode::Auto, 1.0))?;
    let mut tenants = Vec::with_capacity(programs.len());
    for p in &programs {
        let resident = Resident::upload(exec, p.clone())?;
        let arena = Arena::alloc(exec, p)?;
        let inputs: Vec<HostBuffer> =
            p.inputs.iter().map(|b| HostBuffer::zeros(p.buffers[b.buffer].elem, p.buffers[b.buffer].len())).collect();
        resident.begin(exec, &arena, &inputs)?;
        tenants.push((resident, arena));
    }
    for b in &the_plan.bundles {
        exec.prepare(&b.bundle)?;
    }
    let classes = the_plan.bundles.iter().map(|b| b.bundle.class()).collect::<std::collections::HashSet<_>>().len();
    println!(
        "overhead: {} ResNet-18 tenants ({}x{} images), {} bundles, {} launch classes prepared; {} launches ({} warm-up)",
        args.tenants,
        args.image,
        args.image,
        the_plan.bundles.len(),
        classes,
        args.iters,
        args.warmup
    );

    let compiles_before = exec.transfers().request_path_compiles;
    let mut parts: [Vec<f64>; 4] = Default::default();
    let mut slots = Vec::new();
    for i in 0..args.warmup + args.iters {
        let bundle = &the_plan.bundles[i % the_plan.bundles.len()].bundle;
        let t0 = Instant::now();
        let launch_args = bundle
            .slots()
            .iter()
            .map(|s| {
                let (resident, arena) = &tenants[s.tenant.0 as usize];
                resident.launch_args(arena, &s.args)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let t1 = Instant::now();
        let timing = exec.launch(bundle, &launch_args)?;
        let t2 = Instant::now();
        if i >= args.warmup {
            let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
            let (bind, launch) = (us(t0, t1), us(t1, t2));
            parts[0].push(bind);
            parts[1].push(launch);
            parts[2].push(timing.total_us);
            parts[3].push(bind + launch - timing.total_us);
            slots.push(bundle.slots().len());
        }
    }
    let request_path_compiles = exec.transfers().request_path_compiles - compiles_before;
    for (resident, mut arena) in tenants {
        arena.free(exec);
        if let Ok(mut w) = Arc::try_unwrap(resident.weights) {
            w.free(exec);
        }
    }
    Ok(Measured { parts, slots, bundles: the_plan.bundles.len(), classes, request_path_compiles })
}

#[cfg(test)]
mod tests {
    use weft::interp::Interpreter;
    use weft::pack::InterpExecutor;

    use super::*;

    /// The timed loop on the interpreter: one sample per timed launch, every
    /// slot bound to a resident tenant, and no compile among them.
    #[test]
    fn launches_a_prepared_plan_through_the_executor() {
        let args = OverheadArgs { tenants: 2, iters: 3, warmup: 1, image: 32, out: PathBuf::new() };
        let mut exec = InterpExecutor::new(Interpreter::new());
        let m = measure(&mut exec, &Target::sm_90(), &args).unwrap();
        assert!(m.bundles > 0 && m.classes > 0 && m.classes <= m.bundles);
        assert!(m.parts.iter().all(|p| p.len() == args.iters), "{:?}", m.parts);
        assert_eq!(m.slots.len(), args.iters);
        assert!(m.slots.iter().all(|&s| (1..=args.tenants).contains(&s)), "{:?}", m.slots);
        assert_eq!(m.request_path_compiles, 0);
        assert_eq!(exec.transfers().launches, (args.warmup + args.iters) as u64);
    }
}
