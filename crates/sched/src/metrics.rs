//! What a serving run measured: per-request outcomes, per-tenant summaries,
//! and the run's figures (goodput, attainment, percentiles, Jain's index).
//!
//! **SLO attainment** of a tenant is the fraction of its *arrived* requests
//! that completed within their SLO: a rejected request counts as missed, so
//! rejecting cannot inflate attainment. The fraction among admitted requests
//! is reported beside it ([`TenantSummary::admitted_attainment`]).
//! **Goodput** is requests completed within their SLO per second of the run.
//! **Jain's index** over tenants' attainments `x_i` is `(Σx)² / (n·Σx²)`: 1
//! when every tenant is served alike, `1/n` when one tenant gets everything.
//! **Percentiles** are by nearest rank ([`quantile`]): always a value that
//! was observed, never an interpolation between two, so a p99 latency is
//! one some request saw.
//!
//! These helpers ([`quantile`], [`median`], [`jain`]) are the workspace's
//! one definition: the engine's metrics and the benchmarks use them too.

use weft_pack::TenantId;

/// How one request ended.
#[derive(Copy, Clone, PartialEq, Debug)]
pub enum Outcome {
    /// Ran to completion `latency_us` after arriving.
    Completed { latency_us: f64, met_slo: bool },
    /// Refused at admission (never ran).
    Rejected,
}

/// One request's record.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct RequestRecord {
    pub tenant: TenantId,
    pub request: u64,
    pub arrival_us: f64,
    pub outcome: Outcome,
}

/// Per-tenant figures of a run.
#[derive(Clone, PartialEq, Debug)]
pub struct TenantSummary {
    pub tenant: TenantId,
    pub name: String,
    pub slo_us: f64,
    pub arrived: u64,
    pub rejected: u64,
    pub completed: u64,
    pub met: u64,
    /// `met / arrived` (1 when nothing arrived).
    pub attainment: f64,
    /// `met / (arrived - rejected)` (1 when nothing was admitted).
    pub admitted_attainment: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// The `q`-quantile (`0..=1`) of `values` by **nearest rank**: the
/// `ceil(q·n)`-th smallest of the `n` values (the smallest for `q = 0`), so
/// at least a fraction `q` of the values are at most it. `values` need not
/// be sorted (they are ordered by [`f64::total_cmp`]); NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    let index = rank.clamp(1, values.len()) - 1;
    if values.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
        return values[index];
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[index]
}

/// The median by nearest rank ([`quantile`] at 0.5): for an even count, the
/// lower of the two middle values.
pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// Jain's fairness index of `xs` (1 for an empty or all-zero list).
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || squares == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

/// Everything a serving run measured.
#[derive(Clone, PartialEq, Debug)]
pub struct ServeReport {
    /// The policy's name.
    pub policy: String,
    pub records: Vec<RequestRecord>,
    pub tenants: Vec<TenantSummary>,
    /// Simulated time from 0 to the last completion (or last arrival).
    pub duration_us: f64,
    /// Simulated time the GPU ran bundles.
    pub busy_us: f64,
    pub bundles: u64,
    /// Mean slots per bundle.
    pub mean_width: f64,
    /// The most requests queued or in flight at once (all tenants).
    pub peak_live: usize,
    /// The longest any tenant's queue got.
    pub peak_queue: usize,
}

impl ServeReport {
    /// Builds the summaries from `records`.
    #[allow(clippy::too_many_arguments)] // One per measured quantity, filled by the serving loop.
    pub fn new(
        policy: String,
        tenants: &[(TenantId, String, f64)],
        records: Vec<RequestRecord>,
        duration_us: f64,
        busy_us: f64,
        bundles: u64,
        slots: u64,
        peak_live: usize,
        peak_queue: usize,
    ) -> ServeReport {
        let summaries = tenants
            .iter()
            .map(|(id, name, slo_us)| {
                let mine: Vec<&RequestRecord> = records.iter().filter(|r| r.tenant == *id).collect();
                let mut latencies: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| match r.outcome {
                        Outcome::Completed { latency_us, .. } => Some(latency_us),
                        Outcome::Rejected => None,
                    })
                    .collect();
                latencies.sort_by(f64::total_cmp);
                let arrived = mine.len() as u64;
                let rejected = mine.iter().filter(|r| r.outcome == Outcome::Rejected).count() as u64;
                let met = mine.iter().filter(|r| matches!(r.outcome, Outcome::Completed { met_slo: true, .. })).count()
                    as u64;
                let ratio = |n: u64, d: u64| if d == 0 { 1.0 } else { n as f64 / d as f64 };
                TenantSummary {
                    tenant: *id,
                    name: name.clone(),
                    slo_us: *slo_us,
                    arrived,
                    rejected,
                    completed: latencies.len() as u64,
                    met,
                    attainment: ratio(met, arrived),
                    admitted_attainment: ratio(met, arrived - rejected),
                    p50_us: quantile(&latencies, 0.5),
                    p99_us: quantile(&latencies, 0.99),
                }
            })
            .collect();
        let mean_width = if bundles == 0 { 0.0 } else { slots as f64 / bundles as f64 };
        ServeReport {
            policy,
            records,
            tenants: summaries,
            duration_us,
            busy_us,
            bundles,
            mean_width,
            peak_live,
            peak_queue,
        }
    }

    /// Latencies of every completed request, sorted.
    pub fn latencies(&self) -> Vec<f64> {
        let mut l: Vec<f64> = self
            .records
            .iter()
            .filter_map(|r| match r.outcome {
                Outcome::Completed { latency_us, .. } => Some(latency_us),
                Outcome::Rejected => None,
            })
            .collect();
        l.sort_by(f64::total_cmp);
        l
    }

    pub fn p50_us(&self) -> f64 {
        quantile(&self.latencies(), 0.5)
    }

    pub fn p99_us(&self) -> f64 {
        quantile(&self.latencies(), 0.99)
    }

    /// `p99 / p50` of all completed requests (the tail's spread).
    pub fn spread(&self) -> f64 {
        let l = self.latencies();
        quantile(&l, 0.99) / quantile(&l, 0.5)
    }

    /// Mean over tenants (with completions) of each tenant's own `p99 / p50`:
    /// the tail spread without the spread between models' sizes.
    pub fn tenant_spread(&self) -> f64 {
        let spreads: Vec<f64> = self
            .tenants
            .iter()
            .filter(|t| t.completed > 0)
            .map(|t| t.p99_us / t.p50_us)
            .filter(|x| x.is_finite())
            .collect();
        spreads.iter().sum::<f64>() / spreads.len().max(1) as f64
    }

    /// Requests completed within SLO per second.
    pub fn goodput_per_s(&self) -> f64 {
        let met: u64 = self.tenants.iter().map(|t| t.met).sum();
        if self.duration_us <= 0.0 {
            return 0.0;
        }
        met as f64 / (self.duration_us * 1e-6)
    }

    /// Met over arrived, all tenants together.
    pub fn attainment(&self) -> f64 {
        let met: u64 = self.tenants.iter().map(|t| t.met).sum();
        let arrived: u64 = self.tenants.iter().map(|t| t.arrived).sum();
        if arrived == 0 {
            1.0
        } else {
            met as f64 / arrived as f64
        }
    }

    /// The worst tenant's attainment.
    pub fn min_attainment(&self) -> f64 {
        self.tenants.iter().map(|t| t.attainment).fold(1.0, f64::min)
    }

    /// Jain's index over tenants' attainment (tenants with arrivals).
    pub fn jain(&self) -> f64 {
        let xs: Vec<f64> = self.tenants.iter().filter(|t| t.arrived > 0).map(|t| t.attainment).collect();
        jain(&xs)
    }

    /// Busy time over the run's duration.
    pub fn busy_fraction(&self) -> f64 {
        if self.duration_us <= 0.0 {
            0.0
        } else {
            (self.busy_us / self.duration_us).min(1.0)
        }
    }

    pub fn rejected(&self) -> u64 {
        self.tenants.iter().map(|t| t.rejected).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_bounds() {
        assert_eq!(jain(&[1.0, 1.0, 1.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert!(jain(&[0.9, 1.0]) > 0.99);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&xs, 1.0), 100.0);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
        // Any order; always an observed value.
        let shuffled = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&shuffled, 0.5), 2.0);
        assert_eq!(median(&shuffled), 2.0);
        assert_eq!(quantile(&shuffled, 0.99), 4.0);
        assert_eq!(quantile(&shuffled, 0.0), 1.0);
        assert_eq!(shuffled, [4.0, 1.0, 3.0, 2.0], "the input is left alone");
    }
}
