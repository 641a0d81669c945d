//! `weft-bench micro`: the published microbenchmark, the ResNet-18 conv2_2
//! GEMM (`M×K · K×N`, fp32) of many tenants, each with its own input `A`
//! and its own weights `B`.
//!
//! Per tenant count `T`, one *round* is every tenant's GEMM once, timed with
//! CUDA events around it (after a context synchronisation, so each round
//! starts on an idle GPU), five ways:
//!
//! - **time-only**: `T` launches of the standalone kernel on one stream;
//! - **space-only**: one stream per tenant, one launch each, all issued and
//!   then synchronised; the round is from the first stream's start event to
//!   the last end event (less any start recorded earlier);
//! - **coalesced**: one bundle of `T` slots, every slot `Budget::Full`;
//! - **constrained**: one bundle whose budgets come from `pack::plan` in
//!   Constrain mode (throughput knob) when it puts all `T` tenants in one
//!   bundle, else equal shares of the kernel's resident capacity;
//! - **batched**: one GEMM with `N·T` columns (`A` shared, the tenants'
//!   weights side by side): the same FLOPs in one kernel, the upper bound.
//!
//! Inputs rotate: round `r` uses buffer triples `r·T ..` of a pool of at
//! least three L2s' worth (and at least `2·T_max` triples), so no round
//! finds its operands in L2 from the round before. Warm-up rounds are
//! excluded; throughput is `T / median round time`. After timing, every
//! packed variant's output is checked against the time-only kernel's and
//! that against an f64 CPU reference.

use std::path::PathBuf;
use std::sync::Arc;

use weft::cuda::{DeviceBuffer, Event, Gpu, Stream};
use weft::kernels::sgemm::{sgemm, SgemmTiles};
use weft::kir::{KernelDef, Type};
use weft::lower::{BufferInfo, BufferKind, Program, Step};
use weft::pack::{plan, Budget, Bundle, BundleBuilder, KernelResources, Occupancy, PackMode, Policy, Slot, TenantId};

use super::resident::{encode_table, kernel_dims, launch_bundle, launch_pointers, BundleCache, KernelCache};
use super::{f32_bytes, f32s_of, median, rel_l2, BenchError, Csv, Ctx, Outcome, Output, Rng};

/// The published prototype's ratios on a V100 (coalesced over time-only,
/// coalesced over space-only).
pub const ANCHOR_V100: (f64, f64) = (7.71, 3.23);
/// The goals at 32 tenants and more: over time-only, over space-only, and
/// the fraction of batched throughput.
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

/// The five ways of running a round.
const MODES: [&str; 5] = ["time_only", "space_only", "coalesced", "constrained", "batched"];

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

/// Device buffers of one GEMM: `A` (M×K), `B` (K×N), `C` (M×N).
struct Triple {
    /// Kept alive for `addrs`.
    _bufs: [DeviceBuffer; 3],
    addrs: [u64; 3],
}

fn seed(triple: usize, which: u64) -> u64 {
    0x6d69_6372_6f00_0000 ^ ((triple as u64) << 2) ^ which
}

fn upload_triple(gpu: &Gpu, a: &[f32], b: &[f32], c_len: usize) -> Result<Triple, BenchError> {
    let bufs = [gpu.upload(&f32_bytes(a))?, gpu.upload(&f32_bytes(b))?, gpu.alloc_zeroed(c_len * 4)?];
    let addrs = [0, 1, 2].map(|i| bufs[i].device_address(gpu.stream()));
    Ok(Triple { _bufs: bufs, addrs })
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

/// Times `rounds` rounds on the default stream; returns ms per round.
fn time_rounds(
    gpu: &Gpu,
    rounds: usize,
    mut round: impl FnMut(usize, &Stream) -> Result<(), BenchError>,
) -> Result<Vec<f64>, BenchError> {
    let (start, end) = (gpu.new_timing_event()?, gpu.new_timing_event()?);
    let mut out = Vec::with_capacity(rounds);
    for r in 0..rounds {
        gpu.synchronize()?;
        let s = gpu.stream();
        s.record(&start)?;
        round(r, s)?;
        s.record(&end)?;
        out.push(start.elapsed_ms(&end)? as f64);
    }
    Ok(out)
}

/// The span of a round over several streams: from stream 0's start to the
/// last end, less any start recorded before stream 0's.
fn span_ms(starts: &[Event], ends: &[Event]) -> Result<f64, BenchError> {
    let mut first = 0.0f64;
    let mut last = 0.0f64;
    for (s, e) in starts.iter().zip(ends) {
        first = first.min(starts[0].elapsed_ms(s)? as f64);
        last = last.max(starts[0].elapsed_ms(e)? as f64);
    }
    Ok(last - first)
}

pub fn run(ctx: &Ctx, args: &MicroArgs) -> Result<Outcome, BenchError> {
    let gpu = ctx.exec.gpu();
    let compiler = ctx.exec.compiler();
    let (m, n, k) = (args.m, args.n, args.k);
    let (mk, kn, mn) = ((m * k) as usize, (k * n) as usize, (m * n) as usize);
    let t_max = args.tenants.iter().copied().max().unwrap_or(1);
    let rounds = args.warmup + args.reps;
    let kernel = Arc::new(sgemm(m, n, k, SgemmTiles::default()));
    let mut kernels = KernelCache::default();
    kernels.load(gpu, compiler, &[&kernel])?;
    let solo = kernels.get(&kernel)?;
    let solo_dims = kernel_dims(&kernel);
    let limits = ctx.info.target();

    // The rotation pool.
    let per_tenant = 4 * (mk + kn + mn) as u64;
    let pool = (2 * t_max).max((3 * ctx.info.l2_bytes).div_ceil(per_tenant) as usize);
    println!(
        "micro: GEMM {m}x{n}x{k} fp32, tenants {:?}, {} rounds ({} warm-up); rotation pool {pool} triples ({} MiB)",
        args.tenants,
        rounds,
        args.warmup,
        (pool as u64 * per_tenant) >> 20
    );
    let host_a = |i: usize| Rng::new(seed(i, 0)).f32s(mk);
    let host_b = |i: usize| Rng::new(seed(i, 1)).f32s(kn);
    let triples = (0..pool).map(|i| upload_triple(gpu, &host_a(i), &host_b(i), mn)).collect::<Result<Vec<_>, _>>()?;
    let reference = weft::kernels::reference::matmul(
        &host_a(0).iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &host_b(0).iter().map(|&x| x as f64).collect::<Vec<_>>(),
        m as usize,
        n as usize,
        k as usize,
    );
    let reference: Vec<f32> = reference.iter().map(|&x| x as f32).collect();

    let mut bundles = BundleCache::default();
    let mut rows = Vec::new();
    let mut failed = 0;
    for &t in &args.tenants {
        let triple_of = |round: usize, tenant: usize| (round * t + tenant) % pool;

        // Bundles: coalesced, and constrained from the plan (or equal shares).
        let slot = |i: usize, budget| Slot {
            kernel: kernel.clone(),
            tenant: TenantId(i as u32),
            budget,
            args: gemm_program(&kernel, m, n, k).steps[0].args.clone(),
        };
        let mut b = BundleBuilder::new();
        (0..t).for_each(|i| b.push(slot(i, Budget::Full)));
        let coalesced = b.build()?;
        let program = gemm_program(&kernel, m, n, k);
        let ids: Vec<(TenantId, &Program)> = (0..t).map(|i| (TenantId(i as u32), &program)).collect();
        let planned = plan(&ids, &limits, &Policy::new(PackMode::Constrain, 1.0))?;
        let (constrained, budget_source) = match planned.bundles.as_slice() {
            [one] if one.bundle.slots.len() == t => (one.bundle.clone(), "pack::plan (Constrain, knob 1)".to_string()),
            _ => {
                let occ = Occupancy::of(KernelResources::of(&kernel, None), &limits);
                let share = (occ.resident_blocks(&limits) / t as u64).max(1) as u32;
                let mut b = BundleBuilder::new();
                (0..t).for_each(|i| b.push(slot(i, Budget::Blocks(share))));
                let why = format!("equal shares of {} resident blocks", occ.resident_blocks(&limits));
                (b.build()?, format!("{why} (the plan made {} bundles)", planned.bundles.len()))
            }
        };
        bundles.load(gpu, compiler, [&coalesced, &constrained])?;
        let budgets: Vec<u32> = constrained.table.entries.iter().map(|e| e.num_blocks).collect();

        // Slot tables, and each round's argument words (uploaded before timing).
        let upload_table = |b: &Bundle| -> Result<(DeviceBuffer, u64), BenchError> {
            let d = gpu.upload(&encode_table(b, std::iter::repeat_n(3, b.slots.len()))?)?;
            let a = d.device_address(gpu.stream());
            Ok((d, a))
        };
        let words_for = |b: &Bundle, addrs: &dyn Fn(usize) -> [u64; 3]| -> Result<(DeviceBuffer, u64), BenchError> {
            let words: Vec<u8> =
                b.slots.iter().flat_map(|s| addrs(s.tenant.0 as usize)).flat_map(|w| w.to_le_bytes()).collect();
            let d = gpu.upload(&words)?;
            let a = d.device_address(gpu.stream());
            Ok((d, a))
        };
        let tables = [upload_table(&coalesced)?, upload_table(&constrained)?];
        let mut round_words = Vec::with_capacity(2);
        for b in [&coalesced, &constrained] {
            let per_round = (0..rounds)
                .map(|r| words_for(b, &|i| triples[triple_of(r, i)].addrs))
                .collect::<Result<Vec<_>, _>>()?;
            round_words.push(per_round);
        }

        // Batched: A shared, the first T tenants' weights side by side.
        let batched_kernel = Arc::new(sgemm(m, n * t as u32, k, SgemmTiles::default()));
        kernels.load(gpu, compiler, &[&batched_kernel])?;
        let batched_fn = kernels.get(&batched_kernel)?;
        let per_batched = 4 * (mk + kn * t + mn * t) as u64;
        let batched_sets = (3 * ctx.info.l2_bytes).div_ceil(per_batched).clamp(2, 8) as usize;
        let mut batched = Vec::with_capacity(batched_sets);
        for s in 0..batched_sets {
            let mut wide = vec![0f32; kn * t];
            for i in 0..t {
                let bi = host_b(triple_of(s, i));
                for row in 0..k as usize {
                    let (n, w) = (n as usize, n as usize * t);
                    wide[row * w + i * n..row * w + (i + 1) * n].copy_from_slice(&bi[row * n..(row + 1) * n]);
                }
            }
            batched.push(upload_triple(gpu, &host_a(triple_of(s, 0)), &wide, mn * t)?);
        }
        let batched_dims = kernel_dims(&batched_kernel);

        // Timing: single-stream variants first, streams last (and dropped).
        let keep = |v: Vec<f64>| v[args.warmup..].to_vec();
        let time_only = keep(time_rounds(gpu, rounds, |r, s| {
            for i in 0..t {
                // SAFETY: sgemm takes (a, b, c) pointers of exactly these sizes; the pool lives to the end.
                unsafe { launch_pointers(s, &solo, solo_dims, &triples[triple_of(r, i)].addrs) }?;
            }
            Ok(())
        })?);
        let mut packed = Vec::with_capacity(2);
        for (which, b) in [&coalesced, &constrained].into_iter().enumerate() {
            let module = bundles.get(b)?.clone();
            let dims = super::resident::bundle_dims(b, &module);
            packed.push(keep(time_rounds(gpu, rounds, |r, s| {
                // SAFETY: the table was encoded for this bundle and the words
                // point at live triples of the sizes its body was compiled for.
                unsafe { launch_bundle(s, &module, dims, tables[which].1, t, round_words[which][r].1) }?;
                Ok(())
            })?));
        }
        let batched_times = keep(time_rounds(gpu, rounds, |r, s| {
            // SAFETY: the batched sgemm takes (a, b, c) of exactly these sizes.
            unsafe { launch_pointers(s, &batched_fn, batched_dims, &batched[r % batched_sets].addrs) }?;
            Ok(())
        })?);
        let space_only = {
            let streams = (0..t).map(|_| gpu.new_stream()).collect::<Result<Vec<_>, _>>()?;
            let starts = (0..t).map(|_| gpu.new_timing_event()).collect::<Result<Vec<_>, _>>()?;
            let ends = (0..t).map(|_| gpu.new_timing_event()).collect::<Result<Vec<_>, _>>()?;
            let mut times = Vec::with_capacity(rounds);
            for r in 0..rounds {
                gpu.synchronize()?;
                for i in 0..t {
                    streams[i].record(&starts[i])?;
                    // SAFETY: as for time-only; the context was synchronised
                    // after the uploads, so other streams see the data.
                    unsafe { launch_pointers(&streams[i], &solo, solo_dims, &triples[triple_of(r, i)].addrs) }?;
                    streams[i].record(&ends[i])?;
                }
                gpu.synchronize()?;
                times.push(span_ms(&starts, &ends)?);
            }
            gpu.synchronize()?;
            keep(times)
        };

        // Checks: fresh outputs for the first and last tenant of round 0.
        let mut checks = Vec::new();
        let watched = if t > 1 { vec![0, t - 1] } else { vec![0] };
        let fresh = |gpu: &Gpu| -> Result<Vec<(usize, DeviceBuffer)>, BenchError> {
            watched.iter().map(|&i| Ok((i, gpu.alloc_zeroed(mn * 4)?))).collect()
        };
        let addrs_with = |outs: &[(usize, DeviceBuffer)], i: usize| -> [u64; 3] {
            let mut a = triples[triple_of(0, i)].addrs;
            if let Some((_, c)) = outs.iter().find(|(j, _)| *j == i) {
                a[2] = c.device_address(gpu.stream());
            }
            a
        };
        let time_outs = fresh(gpu)?;
        for i in 0..t {
            // SAFETY: as above, with fresh output buffers of the same size.
            unsafe { launch_pointers(gpu.stream(), &solo, solo_dims, &addrs_with(&time_outs, i)) }?;
        }
        gpu.synchronize()?;
        let want: Vec<Vec<f32>> =
            time_outs.iter().map(|(_, c)| Ok(f32s_of(&gpu.download(c)?))).collect::<Result<_, BenchError>>()?;
        let e = rel_l2(&want[0], &reference);
        checks.push(("time_only vs f64 reference (tenant 0)".to_string(), e, e <= 1e-4));
        for (which, b) in [&coalesced, &constrained].into_iter().enumerate() {
            let outs = fresh(gpu)?;
            let (_w, words) = words_for(b, &|i| addrs_with(&outs, i))?;
            let module = bundles.get(b)?.clone();
            let dims = super::resident::bundle_dims(b, &module);
            // SAFETY: as in the timed rounds, with fresh output buffers.
            unsafe { launch_bundle(gpu.stream(), &module, dims, tables[which].1, t, words) }?;
            gpu.synchronize()?;
            for ((i, c), w) in outs.iter().zip(&want) {
                let e = rel_l2(&f32s_of(&gpu.download(c)?), w);
                checks.push((format!("{} vs time_only (tenant {i})", MODES[2 + which]), e, e <= TOLERANCE));
            }
        }
        {
            let c = gpu.alloc_zeroed(mn * t * 4)?;
            let mut a = batched[0].addrs;
            a[2] = c.device_address(gpu.stream());
            // SAFETY: as in the timed rounds, with a fresh output buffer.
            unsafe { launch_pointers(gpu.stream(), &batched_fn, batched_dims, &a) }?;
            let wide = f32s_of(&gpu.download(&c)?);
            let w = n as usize * t;
            let block0: Vec<f32> =
                (0..m as usize).flat_map(|row| wide[row * w..row * w + n as usize].to_vec()).collect();
            let e = rel_l2(&block0, &want[0]);
            checks.push(("batched columns of tenant 0 vs time_only".to_string(), e, e <= TOLERANCE));
        }
        failed += checks.iter().filter(|c| !c.2).count();
        gpu.synchronize()?;

        let row = Row {
            tenants: t,
            times: vec![time_only, space_only, packed[0].clone(), packed[1].clone(), batched_times],
            budget_source,
            budgets: (budgets.iter().copied().min().unwrap_or(0), budgets.iter().copied().max().unwrap_or(0)),
            constrained_blocks: constrained.table.total_blocks(),
            coalesced_blocks: coalesced.table.total_blocks(),
            checks,
        };
        println!(
            "micro: {t} tenants: coalesced {:.0} GEMM/s, {:.2}x time-only, {:.2}x space-only, {:.2} of batched",
            row.throughput(2),
            row.throughput(2) / row.throughput(0),
            row.throughput(2) / row.throughput(1),
            row.throughput(2) / row.throughput(4)
        );
        rows.push(row);
    }
    write(ctx, args, &rows)?;
    Ok(Outcome::Ran { checks_failed: failed })
}

fn write(ctx: &Ctx, args: &MicroArgs, rows: &[Row]) -> Result<(), BenchError> {
    let mut csv = Csv::new(&["tenants", "mode", "round", "ms"]);
    let mut table = ctx.meta.header();
    table += &format!(
        "\nmicro: ResNet-18 conv2_2 GEMM M={} N={} K={} fp32, {} rounds after {} warm-up, medians; \
         throughput in GEMMs/s\n\n",
        args.m, args.n, args.k, args.reps, args.warmup
    );
    table += &format!(
        "{:>7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>10} {:>10} {:>10}  {}\n",
        "tenants",
        "time-only",
        "space-only",
        "coalesced",
        "constrained",
        "batched",
        "coal/time",
        "coal/space",
        "coal/batch",
        "checks"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        for (mode, times) in MODES.iter().zip(&row.times) {
            for (i, ms) in times.iter().enumerate() {
                csv.row(&[row.tenants.to_string(), mode.to_string(), i.to_string(), format!("{ms:.6}")]);
            }
        }
        let tp: Vec<f64> = (0..MODES.len()).map(|i| row.throughput(i)).collect();
        let ratios = (tp[2] / tp[0], tp[2] / tp[1], tp[2] / tp[4]);
        let ok = row.checks.iter().all(|c| c.2);
        let goal = |r: f64, g: f64| if row.tenants >= 32 && r < g { "!" } else { "" };
        table += &format!(
            "{:>7} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>9.2}x{} {:>9.2}x{} {:>9.2}x{}  {}\n",
            row.tenants,
            tp[0],
            tp[1],
            tp[2],
            tp[3],
            tp[4],
            ratios.0,
            goal(ratios.0, GOALS.0),
            ratios.1,
            goal(ratios.1, GOALS.1),
            ratios.2,
            goal(ratios.2, GOALS.2),
            if ok { "ok" } else { "FAILED" }
        );
        json_rows.push(serde_json::json!({
            "tenants": row.tenants,
            "median_ms": MODES.iter().zip(&row.times).map(|(m, t)| (m.to_string(), serde_json::json!(median(t)))).collect::<serde_json::Map<_, _>>(),
            "gemms_per_s": MODES.iter().zip(&tp).map(|(m, t)| (m.to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
            "ms": MODES.iter().zip(&row.times).map(|(m, t)| (m.to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
            "coalesced_over_time_only": ratios.0,
            "coalesced_over_space_only": ratios.1,
            "coalesced_over_batched": ratios.2,
            "coalesced_blocks": row.coalesced_blocks,
            "constrained_blocks": row.constrained_blocks,
            "constrained_budget_min_max": [row.budgets.0, row.budgets.1],
            "constrained_budget_source": row.budget_source,
            "checks": row.checks.iter().map(|(what, err, ok)| serde_json::json!({"what": what, "rel_l2": err, "ok": ok})).collect::<Vec<_>>(),
        }));
    }
    table += &format!(
        "\nanchor (published prototype, V100): coalesced/time-only {:.2}x, coalesced/space-only {:.2}x\n\
         goals at >= 32 tenants: coalesced/time-only >= {}x, coalesced/space-only >= {}x, coalesced/batched >= {} \
         (a ! marks a miss)\n",
        ANCHOR_V100.0, ANCHOR_V100.1, GOALS.0, GOALS.1, GOALS.2
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
        "anchor_v100": {"coalesced_over_time_only": ANCHOR_V100.0, "coalesced_over_space_only": ANCHOR_V100.1},
        "goals_at_32_plus": {"coalesced_over_time_only": GOALS.0, "coalesced_over_space_only": GOALS.1, "coalesced_over_batched": GOALS.2},
        "rows": json_rows,
    });
    Output { dir: args.out.clone(), name: "micro" }.write(&json, &csv, &table)
}
