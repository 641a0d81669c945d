//! A soak of the serving engine on the simulator: changing load (light,
//! heavy, ten times what the queues hold), tenants registering and leaving,
//! and sticky faults injected into launches, for as long as asked. Every
//! request must get an answer: a result, a rejection, or a failure of the
//! launch it was in. The report counts them, and a request still unanswered
//! a minute after the soak ends is **lost** (there must be none).
//!
//! The simulator keeps buffers' shapes, not data, so results are not
//! checked here (the engine's tests check them bit for bit on the
//! interpreter); what the soak checks is that the engine answers, recovers
//! and stays bounded in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::SplitMix64;
use weft::engine::{Engine, EngineConfig, EngineError, Pending, RequestError, Tenant};
use weft::kir::Target;
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{Bundle, ExecError, Executor, Intercepted, Interceptor, LaunchArg, Timing};
use weft_sim::{SimGpu, SimSpec};

use crate::BenchError;

/// What to soak.
#[derive(Clone, Debug)]
pub struct SoakArgs {
    pub duration: Duration,
    /// Tenants registered at most at once.
    pub max_tenants: usize,
    /// A sticky fault on about one launch in this many (0: none).
    pub fault_every: u64,
    pub seed: u64,
}

/// What happened to every request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SoakReport {
    pub elapsed_s: f64,
    pub submitted: u64,
    pub completed: u64,
    pub met_slo: u64,
    /// Refused by `submit` (a full queue).
    pub rejected_at_submit: u64,
    /// Refused by admission control after submission.
    pub rejected: u64,
    /// Failed with the launch they were in (an injected fault).
    pub failed: u64,
    /// Refused because their tenant had been removed.
    pub to_removed_tenant: u64,
    /// Never answered.
    pub lost: u64,
    pub registrations: u64,
    pub removals: u64,
    pub faults_injected: u64,
    pub recoveries: u64,
    pub launches: u64,
    pub resident_start_bytes: u64,
    pub resident_end_bytes: u64,
}

impl SoakReport {
    /// Every submitted request accounted for exactly once.
    pub fn accounted(&self) -> bool {
        self.submitted
            == self.completed
                + self.rejected_at_submit
                + self.rejected
                + self.failed
                + self.to_removed_tenant
                + self.lost
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "elapsed_s": self.elapsed_s, "submitted": self.submitted, "completed": self.completed,
            "met_slo": self.met_slo, "rejected_at_submit": self.rejected_at_submit, "rejected": self.rejected,
            "failed": self.failed, "to_removed_tenant": self.to_removed_tenant, "lost": self.lost,
            "registrations": self.registrations, "removals": self.removals,
            "faults_injected": self.faults_injected, "recoveries": self.recoveries, "launches": self.launches,
            "resident_start_bytes": self.resident_start_bytes, "resident_end_bytes": self.resident_end_bytes,
        })
    }
}

/// Counters the injector shares with the soak (the engine owns the executor).
#[derive(Default)]
struct FaultCounts {
    launches: AtomicU64,
    injected: AtomicU64,
    recovered: AtomicU64,
}

/// Sticky faults on random launches: the launch fails and so does every
/// launch after it until the executor is rebuilt.
struct Faults {
    every: u64,
    rng: SplitMix64,
    faulted: bool,
    counts: Arc<FaultCounts>,
}

#[derive(Debug, thiserror::Error)]
#[error("injected sticky fault")]
struct Injected;

impl Interceptor for Faults {
    fn name(&self) -> &str {
        "simulator+faults"
    }

    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        self.counts.launches.fetch_add(1, Ordering::Relaxed);
        if self.faulted {
            return Err(ExecError::backend("simulator+faults", Injected));
        }
        if self.every > 0 && self.rng.next_u64().is_multiple_of(self.every) {
            self.faulted = true;
            self.counts.injected.fetch_add(1, Ordering::Relaxed);
            return Err(ExecError::backend("simulator+faults", Injected));
        }
        inner.launch(bundle, args)
    }

    fn is_faulted(&self, _inner: &dyn Executor) -> bool {
        self.faulted
    }

    fn recover(&mut self, inner: &mut dyn Executor) -> Result<(), ExecError> {
        self.faulted = false;
        self.counts.recovered.fetch_add(1, Ordering::Relaxed);
        inner.recover()
    }
}

/// Resident set size of this process, bytes (0 where `/proc` is absent).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The models tenants run: a small ResNet-18 and two small builder graphs.
fn models() -> Result<Vec<Arc<Program>>, BenchError> {
    let mut out = Vec::new();
    let graph = weft::graph::models::resnet18(11, 1, 32, 10).map_err(|e| BenchError::graph("resnet18", e))?;
    out.push(Arc::new(lower(&graph, &LowerOptions::default()).map_err(|e| BenchError::lower("resnet18", e))?));
    for width in [64, 512] {
        let mut g = weft::graph::builder::GraphBuilder::new(format!("mlp{width}"));
        let x = g.input("x", weft::graph::DType::F32, &[1, width]);
        let w = g.random_constant("w", &[width, width], 0.1);
        let y = g.matmul(x, w).map_err(|e| BenchError::graph("mlp", e))?;
        let z = g.relu(y).map_err(|e| BenchError::graph("mlp", e))?;
        g.output(z);
        out.push(Arc::new(lower(&g.finish(), &LowerOptions::default()).map_err(|e| BenchError::lower("mlp", e))?));
    }
    Ok(out)
}

/// Runs the soak; `progress` is called about once a second with the report so far.
pub fn run(args: &SoakArgs, progress: &mut dyn FnMut(&SoakReport)) -> Result<SoakReport, BenchError> {
    let programs = models()?;
    let counts = Arc::new(FaultCounts::default());
    let exec = Intercepted {
        inner: SimGpu::new(Target::sm_90(), SimSpec::h100_like(), args.seed),
        hooks: Faults {
            every: args.fault_every,
            rng: SplitMix64::seed_from_u64(args.seed),
            faulted: false,
            counts: counts.clone(),
        },
    };
    let engine = Engine::with_executor(exec, EngineConfig { max_queue: 8, ..EngineConfig::default() });
    let slo = Duration::from_secs(2);
    let mut rng = SplitMix64::seed_from_u64(args.seed ^ 0x50a4);
    let mut report = SoakReport { resident_start_bytes: resident_bytes(), ..SoakReport::default() };
    let mut tenants: Vec<(Tenant, usize)> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    // Phases of a tenth of the soak (at least a second): light, heavy, overload.
    let phase = (args.duration / 10).max(Duration::from_secs(1));
    let settle = |p: Result<weft::engine::Response, RequestError>, report: &mut SoakReport| match p {
        Ok(r) => {
            report.completed += 1;
            report.met_slo += u64::from(r.met_slo);
        }
        Err(RequestError::Rejected(_)) => report.rejected += 1,
        Err(_) => report.failed += 1,
    };
    while started.elapsed() < args.duration {
        let level = (started.elapsed().as_nanos() / phase.as_nanos().max(1)) % 3;
        // Churn: now and then a tenant joins or leaves.
        if tenants.is_empty() || rng.next_u64().is_multiple_of(50) {
            if tenants.len() < args.max_tenants && (tenants.len() < 2 || rng.next_u64().is_multiple_of(2)) {
                let model = (rng.next_u64() % programs.len() as u64) as usize;
                let t = engine.register(programs[model].clone(), slo, 1.0)?;
                tenants.push((t, model));
                report.registrations += 1;
            } else if !tenants.is_empty() {
                let (t, _) = tenants.swap_remove((rng.next_u64() % tenants.len() as u64) as usize);
                engine.remove(t)?;
                report.removals += 1;
                // Sometimes a request still goes to the removed tenant.
                if rng.next_u64().is_multiple_of(2) {
                    report.submitted += 1;
                    match engine.submit(t, Vec::new()) {
                        Err(EngineError::TenantRemoved(_)) => report.to_removed_tenant += 1,
                        other => {
                            return Err(BenchError::invalid(
                                "soak",
                                format!("a removed tenant's request was not refused: {:?}", other.map(|_| ())),
                            ))
                        }
                    }
                }
            }
        }
        // Load: 1, 4 or 40 requests per tenant and tick.
        let burst = [1, 4, 40][level as usize];
        for &(t, model) in &tenants {
            for _ in 0..burst {
                report.submitted += 1;
                match engine.submit(t, programs[model].seeded_inputs(rng.next_u64())) {
                    Ok(p) => pending.push(p),
                    Err(EngineError::Rejected { .. }) => report.rejected_at_submit += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Collect what is answered.
        pending.retain(|p| match p.try_wait() {
            Some(answer) => {
                settle(answer, &mut report);
                false
            }
            None => true,
        });
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            report.elapsed_s = started.elapsed().as_secs_f64();
            report.faults_injected = counts.injected.load(Ordering::Relaxed);
            report.recoveries = counts.recovered.load(Ordering::Relaxed);
            progress(&report);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Every request left must be answered within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|p| match p.try_wait() {
            Some(answer) => {
                settle(answer, &mut report);
                false
            }
            None => true,
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    report.lost = pending.len() as u64;
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.faults_injected = counts.injected.load(Ordering::Relaxed);
    report.recoveries = counts.recovered.load(Ordering::Relaxed);
    report.launches = counts.launches.load(Ordering::Relaxed);
    for (t, _) in tenants {
        engine.remove(t)?;
    }
    drop(engine);
    report.resident_end_bytes = resident_bytes();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few seconds of the soak: every request answered and accounted
    /// for, faults injected and recovered from.
    #[test]
    fn a_short_soak_loses_nothing_and_recovers_from_every_fault() {
        let args = SoakArgs { duration: Duration::from_secs(4), max_tenants: 4, fault_every: 40, seed: 7 };
        let report = run(&args, &mut |_| {}).expect("the soak runs");
        assert_eq!(report.lost, 0, "{report:?}");
        assert!(report.accounted(), "{report:?}");
        assert!(report.completed > 0 && report.faults_injected > 0, "{report:?}");
        assert_eq!(report.recoveries, report.faults_injected, "every fault is recovered from: {report:?}");
        assert!(report.failed >= report.faults_injected.min(1), "{report:?}");
        assert!(report.rejected_at_submit > 0, "the overload phase overflows the queues: {report:?}");
    }
}
