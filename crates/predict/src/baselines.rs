//! Coarser baselines from the literature, for the evaluation harness.
//!
//! - [`ModelLevel`]: co-location is sequential execution; a bundle takes
//!   the sum of its kernels' solo latencies (the "model-level" view that
//!   adds up profiled latencies, as Clockwork-style time sharing assumes).
//! - [`OperatorLevel`]: a table of each kernel's measured solo duration, no
//!   hardware features, co-location ignored: a bundle takes its longest
//!   kernel's solo duration (operator-level duration models).
//!
//! Both learn solo durations from [`ModelLevel::record_solo`] (profiling
//! each kernel alone) and from single-slot observations; a kernel never
//! profiled falls back to the roofline prior's estimate of its slot.

use std::collections::HashMap;

use crate::features::BundleFeatures;
use crate::predictor::{Measured, Prediction, Predictor};
use crate::prior::RooflinePrior;

/// Solo durations by body fingerprint.
#[derive(Clone, Debug, Default)]
struct SoloTable {
    solo: HashMap<u64, f64>,
    prior: RooflinePrior,
}

impl SoloTable {
    fn record(&mut self, body: u64, us: f64) {
        if us.is_finite() && us > 0.0 {
            self.solo.insert(body, us);
        }
    }

    fn observe(&mut self, f: &BundleFeatures, measured: &Measured) {
        if let [slot] = f.slots.as_slice() {
            if slot.physical_blocks >= slot.logical_blocks {
                self.record(slot.body, measured.total_us);
            }
        }
    }

    fn durations(&self, f: &BundleFeatures) -> Vec<f64> {
        let overhead = f.device.launch_overhead_us;
        let fallback = self.prior.slot_times(f);
        f.slots
            .iter()
            .zip(fallback)
            .map(|(s, prior)| self.solo.get(&s.body).copied().unwrap_or(prior + overhead))
            .collect()
    }
}

/// Sum of solo latencies: co-location as sequential execution.
#[derive(Clone, Debug, Default)]
pub struct ModelLevel {
    table: SoloTable,
}

impl ModelLevel {
    pub fn new() -> ModelLevel {
        ModelLevel::default()
    }

    /// Records a kernel's measured solo latency (launch included).
    pub fn record_solo(&mut self, body: u64, us: f64) {
        self.table.record(body, us);
    }
}

impl Predictor for ModelLevel {
    fn predict(&self, f: &BundleFeatures) -> Prediction {
        let mut done = 0.0;
        let per_slot_us: Vec<f64> = self
            .table
            .durations(f)
            .into_iter()
            .map(|d| {
                done += d;
                done
            })
            .collect();
        Prediction { total_us: done, per_slot_us: Some(per_slot_us) }
    }

    fn observe(&mut self, f: &BundleFeatures, measured: &Measured) {
        self.table.observe(f, measured);
    }

    fn name(&self) -> &str {
        "model-level (sum of solo latencies)"
    }
}

/// Longest solo duration: a per-kernel duration table, co-location ignored.
#[derive(Clone, Debug, Default)]
pub struct OperatorLevel {
    table: SoloTable,
}

impl OperatorLevel {
    pub fn new() -> OperatorLevel {
        OperatorLevel::default()
    }

    /// Records a kernel's measured solo duration (launch included).
    pub fn record_solo(&mut self, body: u64, us: f64) {
        self.table.record(body, us);
    }
}

impl Predictor for OperatorLevel {
    fn predict(&self, f: &BundleFeatures) -> Prediction {
        let per_slot_us = self.table.durations(f);
        let total_us = per_slot_us.iter().copied().fold(0.0, f64::max);
        Prediction { total_us, per_slot_us: Some(per_slot_us) }
    }

    fn observe(&mut self, f: &BundleFeatures, measured: &Measured) {
        self.table.observe(f, measured);
    }

    fn name(&self) -> &str {
        "operator-level (solo duration table, no HW features)"
    }
}
