//! Workloads: who asks for what, and when.
//!
//! A [`Trace`] is the unit of replay: the tenants (a name, a model name, an
//! SLO and a weight) and every arrival as `[tenant index, time in µs]`,
//! sorted by time. Generators draw arrivals per tenant — [`Arrivals::Poisson`]
//! (exponential gaps at a rate) and [`Arrivals::OnOff`] (bursts: Poisson at a
//! peak rate during "on" periods, silence during "off" periods, with the mean
//! rate given) — from a seeded SplitMix64, so a seed is a workload. Traces
//! are stored as JSON in a small versioned format ([`TRACE_FORMAT`],
//! [`TRACE_VERSION`]) so a run can be repeated from the file alone:
//!
//! ```json
//! {"format":"weft-serve-trace","version":1,
//!  "tenants":[{"name":"r18-0","model":"resnet18","slo_us":900.0,"weight":1.0}],
//!  "arrivals":[[0,12.5],[0,20.25]]}
//! ```
//!
//! Model names are only names here: the caller maps them to programs (this
//! room does not parse ONNX).

use std::path::Path;

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::SchedError;

/// The `format` field of every trace file.
pub const TRACE_FORMAT: &str = "weft-serve-trace";
/// The trace version this crate writes and reads.
pub const TRACE_VERSION: u32 = 1;

/// One tenant of a trace.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct TraceTenant {
    pub name: String,
    /// The model's name (e.g. `resnet18`), resolved by the caller.
    pub model: String,
    pub slo_us: f64,
    pub weight: f64,
}

/// A replayable workload: tenants and arrivals `[tenant index, time µs]`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Trace {
    pub format: String,
    pub version: u32,
    pub tenants: Vec<TraceTenant>,
    /// Sorted by time; ties keep generation order.
    pub arrivals: Vec<(u32, f64)>,
}

/// How one tenant's requests arrive.
#[derive(Copy, Clone, PartialEq, Debug)]
pub enum Arrivals {
    /// Exponential inter-arrival gaps at `rate_per_s` requests per second.
    Poisson { rate_per_s: f64 },
    /// Bursty: on periods (mean `on_us`, exponential) with Poisson arrivals
    /// at `rate_per_s × (on_us + off_us) / on_us`, then off periods (mean
    /// `off_us`) with none; the long-run mean rate is `rate_per_s`.
    OnOff { rate_per_s: f64, on_us: f64, off_us: f64 },
}

impl Arrivals {
    /// The long-run mean rate.
    pub fn rate_per_s(&self) -> f64 {
        match *self {
            Arrivals::Poisson { rate_per_s } | Arrivals::OnOff { rate_per_s, .. } => rate_per_s,
        }
    }

    /// The same process at `factor` times the rate.
    pub fn scaled(&self, factor: f64) -> Arrivals {
        match *self {
            Arrivals::Poisson { rate_per_s } => Arrivals::Poisson { rate_per_s: rate_per_s * factor },
            Arrivals::OnOff { rate_per_s, on_us, off_us } => {
                Arrivals::OnOff { rate_per_s: rate_per_s * factor, on_us, off_us }
            }
        }
    }
}

/// A seeded uniform source (SplitMix64: its stream is fixed by definition).
struct Uniform(rand_xoshiro::SplitMix64);

impl Uniform {
    fn new(seed: u64) -> Uniform {
        Uniform(rand_xoshiro::SplitMix64::seed_from_u64(seed))
    }

    /// Uniform in `(0, 1]` (never 0, so `ln` is finite).
    fn open_unit(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponential with mean `mean`.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_unit().ln()
    }
}

/// Arrival times in `[0, duration_us)` of one tenant.
fn draw(arrivals: &Arrivals, duration_us: f64, rng: &mut Uniform) -> Vec<f64> {
    let mut out = Vec::new();
    let rate = arrivals.rate_per_s();
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(rate) || !positive(duration_us) {
        return out;
    }
    match *arrivals {
        Arrivals::Poisson { rate_per_s } => {
            let mean_gap = 1e6 / rate_per_s;
            let mut t = rng.exponential(mean_gap);
            while t < duration_us {
                out.push(t);
                t += rng.exponential(mean_gap);
            }
        }
        Arrivals::OnOff { rate_per_s, on_us, off_us } => {
            let on_us = on_us.max(1.0);
            let off_us = off_us.max(0.0);
            let peak_gap = 1e6 / (rate_per_s * (on_us + off_us) / on_us);
            // Start at a random phase: on with probability on/(on+off).
            let mut t = 0.0;
            let mut on = rng.open_unit() <= on_us / (on_us + off_us);
            while t < duration_us {
                if on {
                    let end = t + rng.exponential(on_us);
                    let mut a = t + rng.exponential(peak_gap);
                    while a < end.min(duration_us) {
                        out.push(a);
                        a += rng.exponential(peak_gap);
                    }
                    t = end;
                } else {
                    t += if off_us > 0.0 { rng.exponential(off_us) } else { 0.0 };
                }
                on = !on;
            }
        }
    }
    out
}

impl Trace {
    /// Draws a trace of `duration_us` from each tenant's arrival process;
    /// tenant `i`'s stream is seeded by `(seed, i)`, so adding a tenant does
    /// not change the others' arrivals.
    pub fn generate(tenants: &[(TraceTenant, Arrivals)], duration_us: f64, seed: u64) -> Trace {
        let mut arrivals: Vec<(u32, f64)> = Vec::new();
        for (i, (_, process)) in tenants.iter().enumerate() {
            let mut rng = Uniform::new(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1)));
            arrivals.extend(draw(process, duration_us, &mut rng).into_iter().map(|t| (i as u32, t)));
        }
        // A stable sort: equal times keep tenant order, deterministically.
        arrivals.sort_by(|a, b| a.1.total_cmp(&b.1));
        Trace {
            format: TRACE_FORMAT.to_string(),
            version: TRACE_VERSION,
            tenants: tenants.iter().map(|(t, _)| t.clone()).collect(),
            arrivals,
        }
    }

    /// Checks the header, tenant indices and order of arrivals.
    pub fn validate(&self) -> Result<(), SchedError> {
        let bad = |message: String| Err(SchedError::Trace { message });
        if self.format != TRACE_FORMAT {
            return bad(format!("format is `{}`, expected `{TRACE_FORMAT}`", self.format));
        }
        if self.version != TRACE_VERSION {
            return bad(format!("version {} is not supported (this build reads {TRACE_VERSION})", self.version));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            let positive = |x: f64| x > 0.0 && x.is_finite();
            if !positive(t.slo_us) || !positive(t.weight) {
                return bad(format!("tenant {i} (`{}`) needs a positive SLO and weight", t.name));
            }
        }
        let mut last = f64::NEG_INFINITY;
        for (n, &(tenant, time)) in self.arrivals.iter().enumerate() {
            if tenant as usize >= self.tenants.len() {
                return bad(format!("arrival {n} names tenant {tenant}, but the trace has {}", self.tenants.len()));
            }
            if !time.is_finite() || time < last {
                return bad(format!("arrival {n} at {time} µs is not finite and in time order"));
            }
            last = time;
        }
        Ok(())
    }

    /// The trace as JSON.
    pub fn to_json(&self) -> Result<String, SchedError> {
        serde_json::to_string(self).map_err(|e| SchedError::Trace { message: e.to_string() })
    }

    /// A trace from JSON, validated.
    pub fn from_json(text: &str) -> Result<Trace, SchedError> {
        let trace: Trace = serde_json::from_str(text).map_err(|e| SchedError::Trace { message: e.to_string() })?;
        trace.validate()?;
        Ok(trace)
    }

    /// Writes the trace to `path` as JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SchedError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?)
            .map_err(|e| SchedError::Trace { message: format!("{}: {e}", path.display()) })
    }

    /// Reads and validates a trace file.
    pub fn load(path: impl AsRef<Path>) -> Result<Trace, SchedError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SchedError::Trace { message: format!("{}: {e}", path.display()) })?;
        Trace::from_json(&text)
    }

    /// Time of the last arrival (0 when there is none).
    pub fn span_us(&self) -> f64 {
        self.arrivals.last().map_or(0.0, |a| a.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TraceTenant {
        TraceTenant { name: name.into(), model: "resnet18".into(), slo_us: 1000.0, weight: 1.0 }
    }

    #[test]
    fn poisson_rate_is_close_to_asked() {
        let t = Trace::generate(&[(tenant("a"), Arrivals::Poisson { rate_per_s: 2000.0 })], 1e6, 7);
        let n = t.arrivals.len() as f64;
        assert!((n - 2000.0).abs() < 200.0, "{n}");
        t.validate().unwrap();
    }

    #[test]
    fn on_off_has_the_mean_rate_and_is_burstier() {
        let p = Trace::generate(&[(tenant("a"), Arrivals::Poisson { rate_per_s: 1000.0 })], 2e6, 3);
        let b =
            Trace::generate(&[(tenant("a"), Arrivals::OnOff { rate_per_s: 1000.0, on_us: 5e3, off_us: 15e3 })], 2e6, 3);
        let n = b.arrivals.len() as f64;
        assert!((n - 2000.0).abs() < 500.0, "{n}");
        // Burstiness: the squared coefficient of variation of gaps exceeds Poisson's 1.
        let cv2 = |t: &Trace| {
            let gaps: Vec<f64> = t.arrivals.windows(2).map(|w| w[1].1 - w[0].1).collect();
            let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
            gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64 / (m * m)
        };
        assert!(cv2(&b) > 1.5 * cv2(&p), "{} vs {}", cv2(&b), cv2(&p));
    }

    #[test]
    fn bad_traces_are_refused() {
        let mut t = Trace::generate(&[(tenant("a"), Arrivals::Poisson { rate_per_s: 100.0 })], 1e5, 1);
        t.arrivals.push((3, 1e9));
        assert!(matches!(t.validate(), Err(SchedError::Trace { .. })));
        t.arrivals.pop();
        t.version = 99;
        assert!(Trace::from_json(&serde_json::to_string(&t).unwrap()).is_err());
        assert!(Trace::from_json("{not json").is_err());
    }
}
