//! Shared fixtures: small models, tenants and simulator runs.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use weft_kir::Target;
use weft_lower::{lower, LowerOptions, Program};
use weft_pack::TenantId;
use weft_predict::{Adaptive, AdaptiveConfig, Predictor, RooflinePrior};
use weft_sched::{serve, Scheduler, SchedulerConfig, ServeReport, TenantSpec};
use weft_sim::{SimGpu, SimSpec};

/// ResNet-18 at 32×32, batch 1 (lowered once per test binary).
pub fn resnet18_small() -> Arc<Program> {
    static PROGRAM: OnceLock<Arc<Program>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let graph = weft_graph::models::resnet18(7, 1, 32, 10).expect("resnet18 builds");
            Arc::new(lower(&graph, &LowerOptions::default()).expect("resnet18 lowers"))
        })
        .clone()
}

pub fn limits() -> Target {
    Target::sm_90()
}

pub fn prior() -> Box<dyn Predictor> {
    Box::new(RooflinePrior::new())
}

pub fn adaptive() -> Box<dyn Predictor> {
    Box::new(Adaptive::new(RooflinePrior::new(), AdaptiveConfig::default()))
}

pub fn tenant(id: u32, slo_us: f64) -> TenantSpec {
    TenantSpec { id: TenantId(id), name: format!("r18-{id}"), program: resnet18_small(), slo_us, weight: 1.0 }
}

/// Simulated solo latency of the small ResNet-18 (its kernels one by one).
pub fn sim_solo_us() -> f64 {
    let mut sim = SimGpu::new(limits(), SimSpec::h100_like(), 1);
    resnet18_small().steps.iter().map(|s| sim.run_kernel_solo(&s.kernel).expect("runs").total_us).sum()
}

/// A scheduler with `n` small ResNet-18 tenants of SLO `slo_us`.
pub fn scheduler(config: SchedulerConfig, predictor: Box<dyn Predictor>, n: u32, slo_us: f64) -> Scheduler {
    let mut s = Scheduler::new(config, limits(), predictor);
    for i in 0..n {
        s.add_tenant(tenant(i, slo_us)).expect("tenant registers");
    }
    s
}

/// Serves `arrivals` on a seeded simulator.
pub fn run(scheduler: &mut Scheduler, arrivals: &[(TenantId, f64)], seed: u64) -> ServeReport {
    let mut sim = SimGpu::new(limits(), SimSpec::h100_like(), seed);
    serve(scheduler, arrivals, &mut sim, &mut |_| {}).expect("serving succeeds")
}
