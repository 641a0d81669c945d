//! The serving loop: a discrete-event simulation of serving a workload.
//!
//! Time is simulated. The loop takes arrivals in time order; whenever the GPU
//! is free it offers every arrival up to the current time to the scheduler
//! (admission happens then, with the time already waited counted), asks for
//! the next bundle, and runs it on an [`Executor`] — in tests and the
//! benchmark, `weft_sim::SimGpu`, a **simulator** — advancing the clock by
//! the bundle's measured time and reporting the measurement back (the
//! predictor learns from it). When nothing is waiting it jumps to the next
//! arrival. Requests that finish are recorded with their latency and whether
//! they met their SLO; rejections are recorded as such. After the last
//! arrival the loop drains every admitted request.
//!
//! Bundles run one after another (one launch at a time), so the GPU's busy
//! time is the sum of bundle times. The loop is deterministic: the same
//! scheduler, trace and executor seed give the same report.

use weft_pack::{Bundle, TenantId};
use weft_sim::SimGpu;

use crate::error::SchedError;
use crate::metrics::{Outcome, RequestRecord, ServeReport};
use crate::scheduler::{Request, Scheduler, Timing};

/// Something that runs bundles and says how long they took.
pub trait Executor {
    /// A short name for messages (say "simulator" for a simulator).
    fn name(&self) -> &str;
    fn run(&mut self, bundle: &Bundle) -> Result<Timing, SchedError>;
}

impl Executor for SimGpu {
    fn name(&self) -> &str {
        "simulator"
    }

    fn run(&mut self, bundle: &Bundle) -> Result<Timing, SchedError> {
        let t = self.run_bundle(bundle).map_err(|e| SchedError::Executor {
            executor: "simulator".to_string(),
            slots: bundle.slots.len(),
            message: e.to_string(),
        })?;
        Ok(Timing { total_us: t.total_us, per_slot_us: Some(t.per_slot_us) })
    }
}

/// Serves `arrivals` (`(tenant, time µs)`, sorted by time; request ids are
/// their indices) with `scheduler` on `exec`. `progress` is called after
/// each bundle with the fraction of arrivals offered so far.
pub fn serve(
    scheduler: &mut Scheduler,
    arrivals: &[(TenantId, f64)],
    exec: &mut dyn Executor,
    progress: &mut dyn FnMut(f64),
) -> Result<ServeReport, SchedError> {
    let mut now = 0.0f64;
    let mut next = 0usize;
    let mut records: Vec<RequestRecord> = Vec::with_capacity(arrivals.len());
    let mut busy = 0.0;
    let mut bundles = 0u64;
    let mut slots = 0u64;
    let mut peak_live = 0usize;
    let mut peak_queue = 0usize;
    loop {
        while let Some(&(tenant, time)) = arrivals.get(next) {
            if time > now {
                break;
            }
            let request = Request { tenant, id: next as u64, arrival_us: time };
            match scheduler.submit(request, now) {
                Ok(()) => {}
                Err(SchedError::Rejected { .. }) => records.push(RequestRecord {
                    tenant,
                    request: request.id,
                    arrival_us: time,
                    outcome: Outcome::Rejected,
                }),
                Err(e) => return Err(e),
            }
            next += 1;
        }
        peak_live = peak_live.max(scheduler.live_requests());
        peak_queue = peak_queue.max(scheduler.longest_queue());
        match scheduler.next_bundle(now)? {
            Some(dispatch) => {
                let timing = exec.run(&dispatch.bundle)?;
                if !(timing.total_us.is_finite() && timing.total_us >= 0.0) {
                    return Err(SchedError::Executor {
                        executor: exec.name().to_string(),
                        slots: dispatch.bundle.slots.len(),
                        message: format!("reported a time of {} µs", timing.total_us),
                    });
                }
                now += timing.total_us;
                busy += timing.total_us;
                bundles += 1;
                slots += dispatch.members.len() as u64;
                for f in scheduler.complete(dispatch, &timing, now)? {
                    records.push(RequestRecord {
                        tenant: f.request.tenant,
                        request: f.request.id,
                        arrival_us: f.request.arrival_us,
                        outcome: Outcome::Completed { latency_us: f.latency_us, met_slo: f.met_slo },
                    });
                }
                progress(next as f64 / arrivals.len().max(1) as f64);
            }
            None => match arrivals.get(next) {
                Some(&(_, time)) => now = now.max(time),
                None => break,
            },
        }
    }
    records.sort_by_key(|r| r.request);
    let tenants: Vec<(TenantId, String, f64)> = scheduler.tenants().map(|t| (t.id, t.name.clone(), t.slo_us)).collect();
    Ok(ServeReport::new(scheduler.name(), &tenants, records, now, busy, bundles, slots, peak_live, peak_queue))
}
