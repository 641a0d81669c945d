//! `weft-bench micro`: the published microbenchmark, the ResNet-18 conv2_2
//! GEMM (`M×K · K×N`, fp32) of many tenants, each with its own input `A`
//! and its own weights `B`.
//!
//! Every launch goes through [`GpuExecutor`](weft::gpu::GpuExecutor) as a
//! [`weft::pack::Executor`], the path the engine serves on: the operands
//! are buffers the executor holds (allocated and uploaded once, named by
//! handles), every bundle is `prepare`d before timing (no compile is
//! timed), and a launch is `exec.launch(&bundle, &args)`, whose
//! [`Timing`](weft::pack::Timing) (CUDA events around the launch) is the
//! device time. Per tenant count `T`, one *round* is every tenant's GEMM
//! once, four ways:
//!
//! - **time-only**: `T` launches of the one-slot bundle of the GEMM (a solo
//!   kernel is a one-slot bundle on every executor); the round is the sum
//!   of their device times;
//! - **coalesced**: one bundle of `T` slots, every slot `Budget::Full`
//!   (what the engine's space-only policy launches for one step);
//! - **constrained**: one bundle whose budgets come from `pack::plan` in
//!   Constrain mode (throughput knob) when it puts all `T` tenants in one
//!   bundle, else equal shares of the kernel's resident capacity;
//! - **batched**: one GEMM with `N·T` columns (`A` shared, the tenants'
//!   weights side by side) as a one-slot bundle: the same FLOPs in one
//!   kernel, the upper bound.
//!
//! What changed with the executor: a stream per tenant (the old
//! space-only variant) is not something the executor offers, so it is no
//! longer measured here (`e2e` compares against the engine's space-only
//! policy); time-only launches are one-slot bundles through the dispatcher
//! rather than the standalone kernel, and its round is the sum of the
//! launches' device times rather than one span around back-to-back
//! launches (the executor waits for each launch to time it).
//!
//! Inputs rotate: round `r` uses buffer triples `r·T ..` of a pool of at
//! least three L2s' worth (and at least `2·T_max` triples), so no round
//! finds its operands in L2 from the round before. Warm-up rounds are
//! excluded; throughput is `T / median round time`. After timing, every
//! packed variant's output is checked against the time-only launch's and
//! that against an f64 CPU reference.

use std::path::PathBuf;
use std::sync::Arc;

use weft::kernels::sgemm::{sgemm, SgemmTiles};
use weft::kir::{HostBuffer, KernelDef, Target, Type};
use weft::lower::{BufferInfo, BufferKind, Program, Step};
use weft::pack::{
    plan, Budget, Bundle, BundleBuilder, Executor, Handle, KernelResources, LaunchArg, Occupancy, PackMode, Policy,
    Slot, TenantId,
};

use super::{median, rel_l2, BenchError, Csv, Ctx, Outcome, Output, Rng};

/// The published prototype's ratios on a V100 (coalesced over time-only,
/// coalesced over space-only).
pub const ANCHOR_V100: (f64, f64) = (7.71, 3.23);
/// The goals at 32 tenants and more: over time-only, over space-only (not
/// measured here, see the module docs), and the fraction of batched
/// throughput.
pub const GOALS: (f64, f64, f64) = (8.0, 3.5, 0.9);
/// Packed and time-only outputs may differ by this relative L2 at most.
const TOLERANCE: f64 = 1e-5;

/// What `micro` runs.
#[derive(Clone, Debug)]
pub struct MicroArgs {
    pub tenants: Vec<usize>,
    pub reps: usize,
    pub warmup: usize,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub out: PathBuf,
}

/// The four ways of running a round.
const MODES: [&str; 4] = ["time_only", "coalesced", "constrained", "batched"];
const TIME_ONLY: usize = 0;
const COALESCED: usize = 1;
const BATCHED: usize = 3;

/// One tenant count's results.
struct Row {
    tenants: usize,
    /// Round times in ms, per mode (in `MODES` order), warm-up excluded.
    times: Vec<Vec<f64>>,
    budget_source: String,
    budgets: (u32, u32),
    constrained_blocks: u32,
    coalesced_blocks: u32,
    checks: Vec<(String, f64, bool)>,
}

impl Row {
    fn throughput(&self, mode: usize) -> f64 {
        self.tenants as f64 / (median(&self.times[mode]) / 1e3)
    }
}

/// Executor buffers of one GEMM: `A` (M×K), `B` (K×N), `C` (M×N).
#[derive(Copy, Clone)]
struct Triple {
    a: Handle,
    b: Handle,
    c: Handle,
}

impl Triple {
    fn args(&self) -> Vec<LaunchArg> {
        vec![LaunchArg::Buffer(self.a), LaunchArg::Buffer(self.b), LaunchArg::Buffer(self.c)]
    }

    /// The same operands writing into `c`.
    fn writing_into(self, c: Handle) -> Triple {
        Triple { c, ..self }
    }

    fn free(&self, exec: &mut dyn Executor) -> Result<(), BenchError> {
        for h in [self.a, self.b, self.c] {
            exec.free(h)?;
        }
        Ok(())
    }
}

fn seed(triple: usize, which: u64) -> u64 {
    0x6d69_6372_6f00_0000 ^ ((triple as u64) << 2) ^ which
}

/// Allocates and uploads `values` once.
fn upload(exec: &mut dyn Executor, values: &[f32]) -> Result<Handle, BenchError> {
    let h = exec.alloc(Type::F32, values.len())?;
    exec.upload(h, &HostBuffer::from_f32(values))?;
    Ok(h)
}

fn upload_triple(exec: &mut dyn Executor, a: &[f32], b: &[f32], c_len: usize) -> Result<Triple, BenchError> {
    Ok(Triple { a: upload(exec, a)?, b: upload(exec, b)?, c: exec.alloc(Type::F32, c_len)? })
}

/// A one-step program running `kernel` (so `pack::plan` can schedule it).
fn gemm_program(kernel: &Arc<KernelDef>, m: u32, n: u32, k: u32) -> Program {
    let mut p = Program { name: "conv2_2_gemm".into(), ..Program::default() };
    let info = |name: &str, shape: Vec<usize>, kind| BufferInfo { name: name.into(), elem: Type::F32, shape, kind };
    let a = p.buffers.push(info("a", vec![m as usize, k as usize], BufferKind::Input));
    let b = p.buffers.push(info("b", vec![k as usize, n as usize], BufferKind::Weight));
    let c = p.buffers.push(info("c", vec![m as usize, n as usize], BufferKind::Activation));
    p.steps.push(Step { kernel: kernel.clone(), args: vec![a, b, c], nodes: vec!["conv2_2".into()] });
    p
}

/// Device time of one launch of `bundle`, in ms.
fn launch_ms(exec: &mut dyn Executor, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<f64, BenchError> {
    Ok(exec.launch(bundle, args)?.total_us / 1e3)
}

/// `bundle`'s argument lists with slot `s` bound to `triple(tenant of s)`.
fn bundle_args(bundle: &Bundle, triple: impl Fn(usize) -> Triple) -> Vec<Vec<LaunchArg>> {
    bundle.slots().iter().map(|s| triple(s.tenant.0 as usize).args()).collect()
}

/// The C output of `h` as `f32`s.
fn download(exec: &mut dyn Executor, h: Handle) -> Result<Vec<f32>, BenchError> {
    Ok(exec.download(h)?.to_f32_vec())
}

pub fn run(ctx: &mut Ctx, args: &MicroArgs) -> Result<Outcome, BenchError> {
    let (limits, l2_bytes) = (ctx.info.target(), ctx.info.l2_bytes);
    let (rows, failed) = measure(&mut ctx.exec, &limits, l2_bytes, args)?;
    write(ctx, args, &rows)?;
    Ok(Outcome::Ran { checks_failed: failed })
}

/// Every tenant count's rounds on `exec` (planning for `limits`, rotating
/// over at least three times `l2_bytes`), and how many checks failed.
fn measure(
    exec: &mut dyn Executor,
    limits: &Target,
    l2_bytes: u64,
    args: &MicroArgs,
) -> Result<(Vec<Row>, usize), BenchError> {
    let (m, n, k) = (args.m, args.n, args.k);
    let (mk, kn, mn) = ((m * k) as usize, (k * n) as usize, (m * n) as usize);
    let t_max = args.tenants.iter().copied().max().unwrap_or(1);
    let rounds = args.warmup + args.reps;
    let kernel = Arc::new(sgemm(m, n, k, SgemmTiles::default()));
    let program = gemm_program(&kernel, m, n, k);
    let slot = |i: usize, kernel: &Arc<KernelDef>, budget| Slot {
        kernel: kernel.clone(),
        tenant: TenantId(i as u32),
        budget,
        args: program.steps[0].args.clone(),
    };
    let solo = BundleBuilder::new().slot(slot(0, &kernel, Budget::Full)).build()?;
    exec.prepare(&solo)?;

    // The rotation pool.
    let per_tenant = 4 * (mk + kn + mn) as u64;
    let pool = (2 * t_max).max((3 * l2_bytes).div_ceil(per_tenant) as usize);
    println!(
        "micro: GEMM {m}x{n}x{k} fp32, tenants {:?}, {} rounds ({} warm-up); rotation pool {pool} triples ({} MiB)",
        args.tenants,
        rounds,
        args.warmup,
        (pool as u64 * per_tenant) >> 20
    );
    let host_a = |i: usize| Rng::new(seed(i, 0)).f32s(mk);
    let host_b = |i: usize| Rng::new(seed(i, 1)).f32s(kn);
    let triples = (0..pool).map(|i| upload_triple(exec, &host_a(i), &host_b(i), mn)).collect::<Result<Vec<_>, _>>()?;
    let reference = weft::kernels::reference::matmul(
        &host_a(0).iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &host_b(0).iter().map(|&x| x as f64).collect::<Vec<_>>(),
        m as usize,
        n as usize,
        k as usize,
    );
    let reference: Vec<f32> = reference.iter().map(|&x| x as f32).collect();

    let mut rows = Vec::new();
    let mut failed = 0;
    for &t in &args.tenants {
        let triple_of = |round: usize, tenant: usize| triples[(round * t + tenant) % pool];

        // Bundles: coalesced, and constrained from the plan (or equal shares).
        let mut b = BundleBuilder::new();
        (0..t).for_each(|i| b.push(slot(i, &kernel, Budget::Full)));
        let coalesced = b.build()?;
        let ids: Vec<(TenantId, &Program)> = (0..t).map(|i| (TenantId(i as u32), &program)).collect();
        let planned = plan(&ids, limits, &Policy::new(PackMode::Constrain, 1.0))?;
        let (constrained, budget_source) = match planned.bundles.as_slice() {
            [one] if one.bundle.slots().len() == t => {
                (one.bundle.clone(), "pack::plan (Constrain, knob 1)".to_string())
            }
            _ => {
                let occ = Occupancy::of(KernelResources::of(&kernel, None), limits);
                let share = (occ.resident_blocks(limits) / t as u64).max(1) as u32;
                let mut b = BundleBuilder::new();
                (0..t).for_each(|i| b.push(slot(i, &kernel, Budget::Blocks(share))));
                let why = format!("equal shares of {} resident blocks", occ.resident_blocks(limits));
                (b.build()?, format!("{why} (the plan made {} bundles)", planned.bundles.len()))
            }
        };
        let budgets: Vec<u32> = constrained.table().entries.iter().map(|e| e.num_blocks).collect();

        // Batched: A shared, the first T tenants' weights side by side.
        let batched_kernel = Arc::new(sgemm(m, n * t as u32, k, SgemmTiles::default()));
        let batched_bundle = BundleBuilder::new().slot(slot(0, &batched_kernel, Budget::Full)).build()?;
        for b in [&coalesced, &constrained, &batched_bundle] {
            exec.prepare(b)?;
        }
        let per_batched = 4 * (mk + kn * t + mn * t) as u64;
        let batched_sets = (3 * l2_bytes).div_ceil(per_batched).clamp(2, 8) as usize;
        let mut batched = Vec::with_capacity(batched_sets);
        for s in 0..batched_sets {
            let mut wide = vec![0f32; kn * t];
            for i in 0..t {
                let bi = host_b((s * t + i) % pool);
                for row in 0..k as usize {
                    let (n, w) = (n as usize, n as usize * t);
                    wide[row * w + i * n..row * w + (i + 1) * n].copy_from_slice(&bi[row * n..(row + 1) * n]);
                }
            }
            batched.push(upload_triple(exec, &host_a((s * t) % pool), &wide, mn * t)?);
        }

        // Timing: every round's device time from the executor's Timing.
        let keep = |v: Vec<f64>| v[args.warmup..].to_vec();
        let mut times = vec![Vec::with_capacity(rounds); MODES.len()];
        for r in 0..rounds {
            let mut ms = 0.0;
            for i in 0..t {
                ms += launch_ms(exec, &solo, &[triple_of(r, i).args()])?;
            }
            times[TIME_ONLY].push(ms);
            for (mode, b) in [(COALESCED, &coalesced), (COALESCED + 1, &constrained)] {
                let launch_args = bundle_args(b, |i| triple_of(r, i));
                times[mode].push(launch_ms(exec, b, &launch_args)?);
            }
            times[BATCHED].push(launch_ms(exec, &batched_bundle, &[batched[r % batched_sets].args()])?);
        }
        let times: Vec<Vec<f64>> = times.into_iter().map(keep).collect();

        // Checks: fresh outputs for the first and last tenant of round 0.
        let mut checks = Vec::new();
        let watched = if t > 1 { vec![0, t - 1] } else { vec![0] };
        let fresh = |exec: &mut dyn Executor| -> Result<Vec<(usize, Handle)>, BenchError> {
            watched.iter().map(|&i| Ok((i, exec.alloc(Type::F32, mn)?))).collect()
        };
        let with = |outs: &[(usize, Handle)], i: usize| -> Triple {
            let base = triple_of(0, i);
            outs.iter().find(|(j, _)| *j == i).map_or(base, |&(_, c)| base.writing_into(c))
        };
        let time_outs = fresh(exec)?;
        let mut want = Vec::with_capacity(time_outs.len());
        for &(i, c) in &time_outs {
            exec.launch(&solo, &[with(&time_outs, i).args()])?;
            want.push(download(exec, c)?);
        }
        let e = rel_l2(&want[0], &reference);
        checks.push(("time_only vs f64 reference (tenant 0)".to_string(), e, e <= 1e-4));
        for (mode, b) in [(COALESCED, &coalesced), (COALESCED + 1, &constrained)] {
            let outs = fresh(exec)?;
            exec.launch(b, &bundle_args(b, |i| with(&outs, i)))?;
            for ((i, c), w) in outs.iter().zip(&want) {
                let e = rel_l2(&download(exec, *c)?, w);
                checks.push((format!("{} vs time_only (tenant {i})", MODES[mode]), e, e <= TOLERANCE));
            }
            outs.iter().try_for_each(|&(_, c)| exec.free(c))?;
        }
        {
            let c = exec.alloc(Type::F32, mn * t)?;
            exec.launch(&batched_bundle, &[batched[0].writing_into(c).args()])?;
            let wide = download(exec, c)?;
            exec.free(c)?;
            let w = n as usize * t;
            let block0: Vec<f32> =
                (0..m as usize).flat_map(|row| wide[row * w..row * w + n as usize].to_vec()).collect();
            let e = rel_l2(&block0, &want[0]);
            checks.push(("batched columns of tenant 0 vs time_only".to_string(), e, e <= TOLERANCE));
        }
        time_outs.iter().try_for_each(|&(_, c)| exec.free(c))?;
        batched.iter().try_for_each(|b| b.free(exec))?;
        failed += checks.iter().filter(|c| !c.2).count();

        let row = Row {
            tenants: t,
            times,
            budget_source,
            budgets: (budgets.iter().copied().min().unwrap_or(0), budgets.iter().copied().max().unwrap_or(0)),
            constrained_blocks: constrained.table().total_blocks(),
            coalesced_blocks: coalesced.table().total_blocks(),
            checks,
        };
        println!(
            "micro: {t} tenants: coalesced {:.0} GEMM/s, {:.2}x time-only, {:.2} of batched",
            row.throughput(COALESCED),
            row.throughput(COALESCED) / row.throughput(TIME_ONLY),
            row.throughput(COALESCED) / row.throughput(BATCHED)
        );
        rows.push(row);
    }
    triples.iter().try_for_each(|tr| tr.free(exec))?;
    Ok((rows, failed))
}

fn write(ctx: &Ctx, args: &MicroArgs, rows: &[Row]) -> Result<(), BenchError> {
    let mut csv = Csv::new(&["tenants", "mode", "round", "ms"]);
    let mut table = ctx.meta.header();
    table += &format!(
        "\nmicro: ResNet-18 conv2_2 GEMM M={} N={} K={} fp32 through GpuExecutor (resident buffers, device time \
         from each launch's Timing), {} rounds after {} warm-up, medians; throughput in GEMMs/s\n\n",
        args.m, args.n, args.k, args.reps, args.warmup
    );
    table += &format!(
        "{:>7} {:>11} {:>11} {:>11} {:>11} {:>10} {:>10}  {}\n",
        "tenants", "time-only", "coalesced", "constrained", "batched", "coal/time", "coal/batch", "checks"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        for (mode, times) in MODES.iter().zip(&row.times) {
            for (i, ms) in times.iter().enumerate() {
                csv.row(&[row.tenants.to_string(), mode.to_string(), i.to_string(), format!("{ms:.6}")]);
            }
        }
        let tp: Vec<f64> = (0..MODES.len()).map(|i| row.throughput(i)).collect();
        let ratios = (tp[COALESCED] / tp[TIME_ONLY], tp[COALESCED] / tp[BATCHED]);
        let ok = row.checks.iter().all(|c| c.2);
        let goal = |r: f64, g: f64| if row.tenants >= 32 && r < g { "!" } else { "" };
        table += &format!(
            "{:>7} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>9.2}x{} {:>9.2}x{}  {}\n",
            row.tenants,
            tp[0],
            tp[1],
            tp[2],
            tp[3],
            ratios.0,
            goal(ratios.0, GOALS.0),
            ratios.1,
            goal(ratios.1, GOALS.2),
            if ok { "ok" } else { "FAILED" }
        );
        json_rows.push(serde_json::json!({
            "tenants": row.tenants,
            "median_ms": MODES.iter().zip(&row.times).map(|(m, t)| (m.to_string(), serde_json::json!(median(t)))).collect::<serde_json::Map<_, _>>(),
            "gemms_per_s": MODES.iter().zip(&tp).map(|(m, t)| (m.to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
            "ms": MODES.iter().zip(&row.times).map(|(m, t)| (m.to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
            "coalesced_over_time_only": ratios.0,
            "coalesced_over_batched": ratios.1,
            "coalesced_blocks": row.coalesced_blocks,
            "constrained_blocks": row.constrained_blocks,
            "constrained_budget_min_max": [row.budgets.0, row.budgets.1],
            "constrained_budget_source": row.budget_source,
            "checks": row.checks.iter().map(|(what, err, ok)| serde_json::json!({"what": what, "rel_l2": err, "ok": ok})).collect::<Vec<_>>(),
        }));
    }
    table += &format!(
        "\nanchor (published prototype, V100): coalesced/time-only {:.2}x, coalesced/space-only {:.2}x\n\
         goals at >= 32 tenants: coalesced/time-only >= {}x, coalesced/batched >= {} (a ! marks a miss); \
         coalesced/space-only (goal {}x) is not measured: the executor has no stream per tenant\n",
        ANCHOR_V100.0, ANCHOR_V100.1, GOALS.0, GOALS.2, GOALS.1
    );
    for row in rows {
        table += &format!(
            "{} tenants: coalesced {} blocks; constrained {} blocks, budgets {}..{} per slot from {}\n",
            row.tenants, row.coalesced_blocks, row.constrained_blocks, row.budgets.0, row.budgets.1, row.budget_source
        );
        for (what, err, ok) in row.checks.iter().filter(|c| !c.2) {
            table += &format!("  CHECK FAILED: {what}: relative L2 {err:.3e} (ok: {ok})\n");
        }
    }
    let json = serde_json::json!({
        "benchmark": "micro",
        "meta": ctx.meta.to_json(),
        "gemm": {"m": args.m, "n": args.n, "k": args.k, "dtype": "f32", "tiles": format!("{:?}", SgemmTiles::default())},
        "reps": args.reps,
        "warmup": args.warmup,
        "api": "weft::gpu::GpuExecutor as weft::pack::Executor: alloc/upload once, prepare, launch; device time from Timing",
        "space_only": "not measured: the executor has no stream per tenant (e2e compares the engine's space-only policy)",
        "anchor_v100": {"coalesced_over_time_only": ANCHOR_V100.0, "coalesced_over_space_only": ANCHOR_V100.1},
        "goals_at_32_plus": {"coalesced_over_time_only": GOALS.0, "coalesced_over_space_only": GOALS.1, "coalesced_over_batched": GOALS.2},
        "rows": json_rows,
    });
    Output { dir: args.out.clone(), name: "micro" }.write(&json, &csv, &table)
}

#[cfg(test)]
mod tests {
    use weft::interp::Interpreter;
    use weft::pack::InterpExecutor;

    use super::*;

    /// Every variant runs through an executor and agrees with the others
    /// and with the f64 reference: the interpreter stands in for the GPU.
    #[test]
    fn every_variant_runs_and_agrees_on_the_interpreter() {
        let args = MicroArgs { tenants: vec![1, 3], reps: 2, warmup: 1, m: 64, n: 64, k: 32, out: PathBuf::new() };
        let mut exec = InterpExecutor::new(Interpreter::new());
        let (rows, failed) = measure(&mut exec, &Target::sm_90(), 0, &args).unwrap();
        assert_eq!(failed, 0, "{:?}", rows.iter().flat_map(|r| &r.checks).collect::<Vec<_>>());
        assert_eq!(rows.iter().map(|r| r.tenants).collect::<Vec<_>>(), vec![1, 3]);
        for row in &rows {
            assert!(row.times.iter().all(|t| t.len() == args.reps), "warm-up rounds are dropped");
            // time-only vs the reference, and each packed variant per watched tenant.
            let watched = if row.tenants > 1 { 2 } else { 1 };
            assert_eq!(row.checks.len(), 1 + 2 * watched + 1);
            let solo_blocks = sgemm(64, 64, 32, SgemmTiles::default()).launch.num_blocks();
            assert_eq!(u64::from(row.coalesced_blocks), row.tenants as u64 * solo_blocks);
        }
    }
}
