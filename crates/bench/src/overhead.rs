//! `weft-bench overhead`: the host cost of launching one bundle once its
//! code is compiled, from "plan decided" to "launch returned".
//!
//! The bundles are a real plan's: `T` ResNet-18 tenants (builder, own seeds)
//! planned with `pack::plan` (Auto, throughput knob), every launch class
//! compiled and loaded before timing, tenants resident on the GPU. Per
//! bundle, timed with `Instant` on the host:
//!
//! 1. **host**: the launch class's module lookup (a compiled-cache hit,
//!    checked against the bodies), the slot table rows (`SlotRow` from the
//!    bundle's table plus argument offsets, encoded little-endian) and the
//!    argument words (each slot's buffer addresses);
//! 2. **upload**: the table and the words to the device (`Gpu::upload`: an
//!    allocation and a copy each);
//! 3. **launch**: `cuLaunchKernel` of the dispatcher, until it returns.
//!
//! The plan's bundles are launched in order, over and over, for `--iters`
//! launches (the first `--warmup` not counted); the stream is synchronised
//! every 64 launches outside the timed parts so the launch queue never
//! fills. Medians and 90th percentiles per part and in total.

use std::path::PathBuf;
use std::time::Instant;

use weft::kir::KernelDef;
use weft::lower::Program;
use weft::pack::{plan, PackMode, Policy, TenantId};

use super::resident::{bundle_dims, encode_table, launch_bundle, BundleCache, KernelCache, ResidentTenant};
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

/// The goal for the whole decision-to-launch path.
pub const GOAL_US: f64 = 5.0;

pub fn run(ctx: &Ctx, args: &OverheadArgs) -> Result<Outcome, BenchError> {
    let gpu = ctx.exec.gpu();
    let compiler = ctx.exec.compiler();
    let limits = ctx.info.target();
    let seeds: Vec<u64> = (0..args.tenants).map(|i| 0x0e4d + i as u64).collect();
    let programs = super::e2e::resnet18s(&seeds, args.image)?;
    let ids: Vec<(TenantId, &Program)> = programs.iter().enumerate().map(|(i, p)| (TenantId(i as u32), p)).collect();
    let the_plan = plan(&ids, &limits, &Policy::new(PackMode::Auto, 1.0))?;
    let mut kernels = KernelCache::default();
    let all: Vec<&KernelDef> = programs.iter().flat_map(|p| p.steps.iter().map(|s| &*s.kernel)).collect();
    kernels.load(gpu, compiler, &all)?;
    let mut cache = BundleCache::default();
    cache.load(gpu, compiler, the_plan.bundles.iter().map(|b| &b.bundle))?;
    let residents = programs
        .iter()
        .map(|p| {
            let inputs: Vec<_> = p
                .inputs
                .iter()
                .map(|b| weft::kir::HostBuffer::zeros(p.buffers[b.buffer].elem, p.buffers[b.buffer].len()))
                .collect();
            ResidentTenant::new(gpu, p, &inputs, &kernels)
        })
        .collect::<Result<Vec<_>, _>>()?;
    gpu.synchronize()?;
    println!(
        "overhead: {} ResNet-18 tenants ({}x{} images), {} bundles, {} launch classes loaded; {} launches ({} warm-up)",
        args.tenants,
        args.image,
        args.image,
        the_plan.bundles.len(),
        cache.modules.len(),
        args.iters,
        args.warmup
    );

    let mut parts: [Vec<f64>; 4] = Default::default();
    let mut slots = Vec::new();
    let mut keep = Vec::new();
    let stream = gpu.stream();
    for i in 0..args.warmup + args.iters {
        let planned = &the_plan.bundles[i % the_plan.bundles.len()];
        let bundle = &planned.bundle;
        let t0 = Instant::now();
        let module = cache.get(bundle)?;
        let table = encode_table(bundle, bundle.slots.iter().map(|s| s.args.len()))?;
        let mut words: Vec<u8> = Vec::with_capacity(8 * bundle.slots.iter().map(|s| s.args.len()).sum::<usize>());
        for slot in &bundle.slots {
            let tenant = &residents[slot.tenant.0 as usize];
            for b in &slot.args {
                words.extend_from_slice(&tenant.addresses[b.as_u32() as usize].to_le_bytes());
            }
        }
        let dims = bundle_dims(bundle, module);
        let t1 = Instant::now();
        let table_dev = gpu.upload(&table)?;
        let words_dev = gpu.upload(&words)?;
        let (ta, wa) = (table_dev.device_address(stream), words_dev.device_address(stream));
        let t2 = Instant::now();
        // SAFETY: the table and words were just encoded for this bundle from
        // resident tenants that live to the end; the uploads are kept until
        // the next synchronisation.
        unsafe { launch_bundle(stream, module, dims, ta, bundle.slots.len(), wa) }?;
        let t3 = Instant::now();
        keep.push((table_dev, words_dev));
        if i >= args.warmup {
            let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
            parts[0].push(us(t0, t1));
            parts[1].push(us(t1, t2));
            parts[2].push(us(t2, t3));
            parts[3].push(us(t0, t3));
            slots.push(bundle.slots.len());
        }
        if i % 64 == 63 {
            gpu.synchronize()?;
            keep.clear();
        }
    }
    gpu.synchronize()?;
    drop(keep);

    let names = ["host (lookup + table + words)", "upload (table + words)", "launch (cuLaunchKernel)", "total"];
    let mut table = ctx.meta.header();
    table += &format!(
        "\noverhead: decision-to-launch per bundle on a compiled-cache hit, {} launches over a {}-bundle plan of {} \
         ResNet-18 tenants (mean {:.1} slots per bundle), host microseconds\n\n",
        args.iters,
        the_plan.bundles.len(),
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
    table += &format!("\ngoal: total <= {GOAL_US} us per bundle (median)\n");
    let mut csv = Csv::new(&["launch", "slots", "host_us", "upload_us", "launch_us", "total_us"]);
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
        "bundles_in_plan": the_plan.bundles.len(),
        "launch_classes": cache.modules.len(),
        "iters": args.iters,
        "warmup": args.warmup,
        "goal_total_us": GOAL_US,
        "summary": summary,
        "per_launch_us": {"host": parts[0], "upload": parts[1], "launch": parts[2], "total": parts[3], "slots": slots},
    });
    Output { dir: args.out.clone(), name: "overhead" }.write(&json, &csv, &table)?;
    Ok(Outcome::Ran { checks_failed: 0 })
}
