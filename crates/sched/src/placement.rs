//! Placing tenants on devices: one serving loop per device, each tenant
//! on exactly one of them.
//!
//! A tenant's **demand** is the share of a device it is predicted to need:
//! its predicted solo latency per request divided by its latency objective
//! ([`demand`]) — the device time of one request per objective period, what
//! a client that keeps one request outstanding at the objective asks for. A
//! device's **load** is the sum of its tenants' demands. A new tenant goes
//! to the least loaded device (the lowest index on a tie); removing a tenant
//! takes its demand off its device at once, so the next tenant lands there.
//! Greedy least-load placement keeps every device within one tenant's
//! demand of the mean: no device exceeds `total / devices + max demand`.

use weft_pack::{Executor, TenantId};

use crate::error::SchedError;
use crate::metrics::ServeReport;
use crate::scheduler::{Scheduler, TenantSpec};
use crate::serve::serve;

/// The share of a device a tenant of predicted solo latency `solo_us` and
/// objective `slo_us` needs (0 when either is not a positive finite number).
pub fn demand(solo_us: f64, slo_us: f64) -> f64 {
    if solo_us.is_finite() && slo_us.is_finite() && solo_us > 0.0 && slo_us > 0.0 {
        solo_us / slo_us
    } else {
        0.0
    }
}

/// The predicted load of each device.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    loads: Vec<f64>,
    tenants: Vec<usize>,
}

impl Placement {
    /// `devices` devices (at least one), all idle.
    pub fn new(devices: usize) -> Placement {
        let n = devices.max(1);
        Placement { loads: vec![0.0; n], tenants: vec![0; n] }
    }

    pub fn devices(&self) -> usize {
        self.loads.len()
    }

    /// The device the next tenant goes to: the least loaded, then the one
    /// with fewest tenants, then the lowest index.
    pub fn choose(&self) -> usize {
        (0..self.loads.len())
            .min_by(|&a, &b| {
                self.loads[a].total_cmp(&self.loads[b]).then(self.tenants[a].cmp(&self.tenants[b])).then(a.cmp(&b))
            })
            .unwrap_or(0)
    }

    /// A tenant of `demand` was placed on `device`.
    pub fn add(&mut self, device: usize, demand: f64) {
        if let (Some(l), Some(t)) = (self.loads.get_mut(device), self.tenants.get_mut(device)) {
            *l += demand.max(0.0);
            *t += 1;
        }
    }

    /// A tenant of `demand` left `device`.
    pub fn remove(&mut self, device: usize, demand: f64) {
        if let (Some(l), Some(t)) = (self.loads.get_mut(device), self.tenants.get_mut(device)) {
            *l = (*l - demand.max(0.0)).max(0.0);
            *t = t.saturating_sub(1);
            if *t == 0 {
                // No rounding residue on an empty device.
                *l = 0.0;
            }
        }
    }

    /// Each device's load (sum of its tenants' demands).
    pub fn loads(&self) -> &[f64] {
        &self.loads
    }

    /// Tenants on each device.
    pub fn tenants(&self) -> &[usize] {
        &self.tenants
    }
}

/// A run over several devices: where each tenant went and what each
/// device's loop measured.
#[derive(Clone, Debug)]
pub struct DevicesReport {
    /// Each tenant's device, in the order the tenants were given.
    pub placement: Vec<(TenantId, usize)>,
    /// Each device's load after placement.
    pub loads: Vec<f64>,
    /// Each device's report (`None` for a device no tenant was placed on).
    pub reports: Vec<Option<ServeReport>>,
}

impl DevicesReport {
    /// Requests completed within their objective, all devices.
    pub fn met(&self) -> u64 {
        self.reports.iter().flatten().flat_map(|r| &r.tenants).map(|t| t.met).sum()
    }
}

/// Serves `arrivals` in simulated time over one device per executor of
/// `execs`: each tenant of `tenants` is placed as [`Placement`] places it
/// (its demand from the scheduler of its device), and each device runs its
/// own serving loop ([`serve`]) over its tenants' arrivals with a scheduler
/// from `new_scheduler`. Devices share nothing, so serving them one after
/// another in simulated time is the same as serving them side by side.
pub fn serve_devices(
    new_scheduler: &mut dyn FnMut() -> Scheduler,
    tenants: &[TenantSpec],
    arrivals: &[(TenantId, f64)],
    execs: &mut [&mut dyn Executor],
) -> Result<DevicesReport, SchedError> {
    let mut placement = Placement::new(execs.len());
    let mut schedulers: Vec<Scheduler> = (0..placement.devices()).map(|_| new_scheduler()).collect();
    let mut placed = Vec::with_capacity(tenants.len());
    for spec in tenants {
        let device = placement.choose();
        let scheduler = &mut schedulers[device];
        scheduler.add_tenant(spec.clone())?;
        placement.add(device, demand(scheduler.solo_latency_us(spec.id)?, spec.slo_us));
        placed.push((spec.id, device));
    }
    let mut reports = Vec::with_capacity(schedulers.len());
    for (device, (scheduler, exec)) in schedulers.iter_mut().zip(execs.iter_mut()).enumerate() {
        if !placed.iter().any(|&(_, d)| d == device) {
            reports.push(None);
            continue;
        }
        let mine: Vec<(TenantId, f64)> =
            arrivals.iter().filter(|(t, _)| placed.iter().any(|&(id, d)| id == *t && d == device)).copied().collect();
        reports.push(Some(serve(scheduler, &mine, &mut **exec, &mut |_| {})?));
    }
    Ok(DevicesReport { placement: placed, loads: placement.loads().to_vec(), reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_first_and_removal_frees_the_share() {
        let mut p = Placement::new(3);
        let demands = [0.5, 0.2, 0.2, 0.1, 0.4, 0.3];
        let mut placed = Vec::new();
        for d in demands {
            let at = p.choose();
            // The chosen device is never more loaded than another.
            assert!(p.loads().iter().all(|&l| p.loads()[at] <= l), "{:?} -> {at}", p.loads());
            p.add(at, d);
            placed.push(at);
        }
        let total: f64 = demands.iter().sum();
        let max_demand = demands.iter().cloned().fold(0.0, f64::max);
        for &l in p.loads() {
            assert!(l <= total / 3.0 + max_demand + 1e-12, "{:?}", p.loads());
        }
        // Removing the first tenant makes its device the least loaded one.
        p.remove(placed[0], demands[0]);
        assert_eq!(p.choose(), placed[0], "{:?}", p.loads());
        assert_eq!(p.tenants().iter().sum::<usize>(), demands.len() - 1);
    }

    #[test]
    fn demand_is_solo_time_over_objective_and_zero_when_meaningless() {
        assert_eq!(demand(1000.0, 4000.0), 0.25);
        assert_eq!(demand(f64::NAN, 1.0), 0.0);
        assert_eq!(demand(1.0, 0.0), 0.0);
        assert_eq!(demand(1.0, f64::INFINITY), 0.0);
    }
}
