//! Several devices, one serving loop each, tenants placed by predicted
//! load: on the simulator (weft_sim: simulator figures, not GPU results),
//! in simulated time.

mod common;

use common::*;
use weft_pack::{Executor, TenantId};
use weft_sched::{serve_devices, Arrivals, DevicesReport, Scheduler, SchedulerConfig, Trace, TraceTenant};
use weft_sim::{SimGpu, SimSpec};

/// Poisson arrivals for `n` tenants at `rate_per_s` each.
fn arrivals(n: u32, rate_per_s: f64, duration_us: f64, seed: u64) -> Vec<(TenantId, f64)> {
    let tenants: Vec<(TraceTenant, Arrivals)> = (0..n)
        .map(|i| {
            let t = TraceTenant { name: format!("r18-{i}"), model: "resnet18".into(), slo_us: 1.0, weight: 1.0 };
            (t, Arrivals::Poisson { rate_per_s })
        })
        .collect();
    Trace::generate(&tenants, duration_us, seed).arrivals.into_iter().map(|(t, time)| (TenantId(t), time)).collect()
}

/// ResNet-18 at 224×224: kernels that fill the device, so one device's
/// capacity is not hidden by packing many small ones.
fn resnet18_224() -> std::sync::Arc<weft_lower::Program> {
    let graph = weft_graph::models::resnet18(7, 1, 224, 10).expect("resnet18 builds");
    std::sync::Arc::new(weft_lower::lower(&graph, &Default::default()).expect("resnet18 lowers"))
}

fn solo_us(program: &weft_lower::Program) -> f64 {
    let mut sim = SimGpu::new(limits(), SimSpec::h100_like(), 1);
    program.steps.iter().map(|s| sim.run_kernel_solo(&s.kernel).expect("runs").total_us).sum()
}

fn run_on(
    program: &std::sync::Arc<weft_lower::Program>,
    devices: usize,
    tenants: u32,
    slo_us: f64,
    arrivals: &[(TenantId, f64)],
) -> DevicesReport {
    let specs: Vec<_> = (0..tenants)
        .map(|i| weft_sched::TenantSpec {
            id: TenantId(i),
            name: format!("r18-{i}"),
            program: program.clone(),
            slo_us,
            weight: 1.0,
        })
        .collect();
    let mut sims: Vec<SimGpu> =
        (0..devices).map(|d| SimGpu::new(limits(), SimSpec::h100_like(), 7 + d as u64)).collect();
    let mut execs: Vec<&mut dyn Executor> = sims.iter_mut().map(|s| s as &mut dyn Executor).collect();
    let mut new = || Scheduler::new(SchedulerConfig::slo_aware(1.0), limits(), adaptive());
    serve_devices(&mut new, &specs, arrivals, &mut execs).expect("serving succeeds")
}

#[test]
fn four_devices_serve_at_least_three_times_what_one_serves_beyond_its_capacity() {
    let program = resnet18_224();
    let solo = solo_us(&program);
    let tenants = 8;
    let slo_us = 8.0 * solo;
    // Offered: 12 requests per solo latency, four times what one device serves.
    let duration_us = 200.0 * solo;
    let rate_per_s = 12.0 / (solo * 1e-6) / tenants as f64;
    let load = arrivals(tenants, rate_per_s, duration_us, 3);
    let one = run_on(&program, 1, tenants, slo_us, &load);
    let four = run_on(&program, 4, tenants, slo_us, &load);
    eprintln!(
        "{} requests offered; met within SLO: 1 device {}, 4 devices {} (simulator)",
        load.len(),
        one.met(),
        four.met()
    );
    assert!(one.met() > 0);
    assert!(four.met() >= 3 * one.met(), "1 device met {}, 4 devices {}", one.met(), four.met());
    // Every device got tenants, two each (equal demands), and each
    // device's report holds only its own tenants' requests.
    for d in 0..4 {
        let mine: Vec<TenantId> = four.placement.iter().filter(|p| p.1 == d).map(|p| p.0).collect();
        assert_eq!(mine.len(), 2, "{:?}", four.placement);
        let report = four.reports[d].as_ref().expect("a device with tenants reports");
        assert!(report.records.iter().all(|r| mine.contains(&r.tenant)));
        let offered = load.iter().filter(|(t, _)| mine.contains(t)).count();
        assert_eq!(report.records.len(), offered, "device {d} saw all and only its tenants' arrivals");
    }
}

#[test]
fn placement_spreads_unequal_tenants_within_one_demand_of_the_mean() {
    let solo = sim_solo_us();
    for devices in 2..=8usize {
        // Objectives from 3 to 30 solo latencies: demands differ tenfold.
        let specs: Vec<_> = (0..3 * devices as u32).map(|i| tenant(i, (3.0 + 9.0 * (i % 4) as f64) * solo)).collect();
        let mut sims: Vec<SimGpu> =
            (0..devices).map(|d| SimGpu::new(limits(), SimSpec::h100_like(), d as u64)).collect();
        let mut execs: Vec<&mut dyn Executor> = sims.iter_mut().map(|s| s as &mut dyn Executor).collect();
        let mut new = || Scheduler::new(SchedulerConfig::slo_aware(1.0), limits(), prior());
        let report = serve_devices(&mut new, &specs, &[], &mut execs).unwrap();
        let total: f64 = report.loads.iter().sum();
        let mean = total / devices as f64;
        let predicted_solo = {
            let mut s = Scheduler::new(SchedulerConfig::slo_aware(1.0), limits(), prior());
            s.add_tenant(tenant(0, 1.0)).unwrap();
            s.solo_latency_us(TenantId(0)).unwrap()
        };
        let max_demand = predicted_solo / (3.0 * solo);
        assert!(total > 0.0);
        for (d, &l) in report.loads.iter().enumerate() {
            assert!(l <= mean + max_demand + 1e-9, "{devices} devices: device {d} at {l}, mean {mean}");
            assert!(l > 0.0, "{devices} devices: device {d} got nothing: {:?}", report.loads);
        }
    }
}
