//! The online-adaptive predictor: the prior times a correction learned from
//! measured bundle times.
//!
//! Each slot's predicted time is `prior_s × exp(c_s)`, and the bundle's is
//! the slowest slot's. The log-correction `c_s` has two parts:
//!
//! - a **linear model over interference features** `w · x_s`, shared by all
//!   kernels ([`correction_features`] lists them: bandwidth pressure and
//!   hinges above it, the slot's memory-boundness, memory-bound co-runners
//!   beside a compute-bound slot, extra waves per µs of slot time, launch
//!   overhead per µs, occupancy, slot count, SM demand, the last wave's
//!   emptiness), fitted by **recursive least squares with exponential
//!   forgetting** on `ln(measured / prior)`: `O(d²)` per update with `d =`
//!   [`NUM_FEATURES`], and old observations weigh `λ^age`, so the model
//!   follows a changing workload or device;
//! - a **per-body residual** keyed by the body fingerprint: a bias (under
//!   bandwidth pressure) and a sensitivity to memory-bound co-runners (interference is
//!   kernel-specific), learned by normalised LMS on what the linear model
//!   leaves, decaying toward zero at the same forgetting rate.
//!
//! Per-slot measurements train every slot; a total-only measurement (one
//! pair of CUDA events) trains the slot predicted to finish last.

use std::collections::HashMap;

use crate::features::{BundleFeatures, SlotFeatures};
use crate::predictor::{Measured, Prediction, Predictor};
use crate::prior::RooflinePrior;

/// Length of the correction's feature vector.
pub const NUM_FEATURES: usize = 15;

/// Index of the co-runner memory-boundness feature (the per-body
/// sensitivity multiplies it).
const CO_MEMORY: usize = 1;
/// Index of the pressure gate (the per-body bias multiplies it).
const GATE: usize = 2;

/// The correction's interference features of slot `s` of bundle `f`, whose
/// prior busy time is `prior_us` (overhead included).
///
/// Two always-on terms (a bias; memory-bound co-runners beside a
/// compute-bound slot), then terms gated by bandwidth pressure `g =
/// clamp((p - 0.3) / 0.4, 0, 1)`: below 30% of the device's bandwidth the
/// roofline prior has nothing to correct for contention, and keeping those
/// bundles out of the contention terms stops the fit from bending them.
/// Gated: a bias, pressure and its excess over 1 (linear and squared), the
/// slot's memory-boundness alone and times pressure, later waves per µs of
/// slot time, launch overhead per µs, occupancy, log slot count, SM demand,
/// the last wave's emptiness, and the time all the bundle's bytes take at
/// full bandwidth per µs of slot time.
pub fn correction_features(f: &BundleFeatures, s: &SlotFeatures, prior_us: f64) -> [f64; NUM_FEATURES] {
    let p = f.bandwidth_pressure.min(8.0);
    let m = s.memory_boundness;
    let inv_t = 1.0 / prior_us.max(1e-3);
    let co_memory = f.memory_warp_fraction * (1.0 - m);
    let g = ((p - 0.3) / 0.4).clamp(0.0, 1.0);
    let bundle_bytes: f64 = f.slots.iter().map(|s| s.bytes).sum();
    [
        1.0,
        co_memory,
        g,
        g * p,
        g * (p - 1.0).clamp(0.0, 8.0),
        g * (p - 1.0).clamp(0.0, 4.0).powi(2),
        g * m,
        g * m * p,
        g * (s.end_wave.saturating_sub(1) as f64 * inv_t).min(4.0),
        g * inv_t.min(4.0),
        g * f.occupancy,
        g * (f.slots.len() as f64).ln(),
        g * f.sm_demand.min(8.0),
        g * (1.0 - f.tail_fraction),
        g * (bundle_bytes / f.device.mem_bandwidth.max(1e-9) * inv_t).min(4.0),
    ]
}

/// Settings of [`Adaptive`].
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct AdaptiveConfig {
    /// RLS forgetting factor λ in (0, 1]: an observation `n` updates ago
    /// weighs `λ^n` (0.995: a memory of about 200 observations).
    pub forgetting: f64,
    /// Initial RLS covariance scale (large: trust the first observations).
    pub initial_covariance: f64,
    /// Step of the per-body residuals' normalised LMS.
    pub body_rate: f64,
    /// The correction's log is clamped to `±max_log_correction`.
    pub max_log_correction: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> AdaptiveConfig {
        AdaptiveConfig { forgetting: 0.995, initial_covariance: 10.0, body_rate: 0.3, max_log_correction: 3.0 }
    }
}

/// Per-body residual: `bias + sensitivity × co_memory`.
#[derive(Copy, Clone, Debug, Default)]
struct BodyResidual {
    bias: f64,
    sensitivity: f64,
}

/// The prior corrected online from measurements; see the module docs.
#[derive(Clone, Debug)]
pub struct Adaptive {
    prior: RooflinePrior,
    config: AdaptiveConfig,
    weights: [f64; NUM_FEATURES],
    covariance: [[f64; NUM_FEATURES]; NUM_FEATURES],
    bodies: HashMap<u64, BodyResidual>,
    observations: u64,
    name: String,
}

impl Adaptive {
    pub fn new(prior: RooflinePrior, config: AdaptiveConfig) -> Adaptive {
        let mut covariance = [[0.0; NUM_FEATURES]; NUM_FEATURES];
        for (i, row) in covariance.iter_mut().enumerate() {
            row[i] = config.initial_covariance;
        }
        let forgetting = if config.forgetting.is_finite() { config.forgetting.clamp(0.5, 1.0) } else { 1.0 };
        let config = AdaptiveConfig { forgetting, ..config };
        Adaptive {
            prior,
            config,
            weights: [0.0; NUM_FEATURES],
            covariance,
            bodies: HashMap::new(),
            observations: 0,
            name: "adaptive (prior x online correction)".to_string(),
        }
    }

    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The linear correction's weights, in [`correction_features`] order.
    pub fn weights(&self) -> &[f64; NUM_FEATURES] {
        &self.weights
    }

    /// Measurements learned from so far.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Prior slot times (overhead included) and their log-corrections.
    fn corrected(&self, f: &BundleFeatures) -> Vec<(f64, [f64; NUM_FEATURES], f64)> {
        let overhead = f.device.launch_overhead_us;
        self.prior
            .slot_times(f)
            .into_iter()
            .zip(&f.slots)
            .map(|(t, s)| {
                let prior = t + overhead;
                let x = correction_features(f, s, prior);
                let body = self.bodies.get(&s.body).copied().unwrap_or_default();
                let c = dot(&self.weights, &x) + body.bias * x[GATE] + body.sensitivity * x[CO_MEMORY];
                let c = c.clamp(-self.config.max_log_correction, self.config.max_log_correction);
                (prior, x, c)
            })
            .collect()
    }

    fn learn(&mut self, body: u64, x: &[f64; NUM_FEATURES], target: f64) {
        let lambda = self.config.forgetting;
        let residual = self.bodies.get(&body).copied().unwrap_or_default();
        let body_part = residual.bias * x[GATE] + residual.sensitivity * x[CO_MEMORY];
        // RLS on what the body residual does not explain.
        let y = target - body_part;
        let px = mat_vec(&self.covariance, x);
        let denom = lambda + dot(x, &px);
        if denom.is_finite() && denom > 1e-12 {
            let err = y - dot(&self.weights, x);
            for ((w, row), &pxi) in self.weights.iter_mut().zip(self.covariance.iter_mut()).zip(&px) {
                let k = pxi / denom;
                *w += k * err;
                for (c, &pxj) in row.iter_mut().zip(&px) {
                    *c = (*c - k * pxj) / lambda;
                }
            }
            // Forgetting inflates the covariance in directions the data no
            // longer excites (wind-up); cap it.
            let trace: f64 = (0..NUM_FEATURES).map(|i| self.covariance[i][i]).sum();
            let cap = self.config.initial_covariance * NUM_FEATURES as f64;
            if trace > cap {
                let scale = cap / trace;
                self.covariance.iter_mut().flatten().for_each(|v| *v *= scale);
            }
        }
        // Normalised LMS on the body residual, decaying at the same rate.
        let err = target - dot(&self.weights, x) - body_part;
        let co = x[CO_MEMORY];
        let gate = x[GATE];
        let norm = gate * gate + co * co + 1e-3;
        let rate = self.config.body_rate;
        let entry = self.bodies.entry(body).or_default();
        entry.bias = lambda * entry.bias + rate * err * gate / norm;
        entry.sensitivity = lambda * entry.sensitivity + rate * err * co / norm;
    }
}

fn dot(a: &[f64; NUM_FEATURES], b: &[f64; NUM_FEATURES]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mat_vec(m: &[[f64; NUM_FEATURES]; NUM_FEATURES], v: &[f64; NUM_FEATURES]) -> [f64; NUM_FEATURES] {
    let mut out = [0.0; NUM_FEATURES];
    for (o, row) in out.iter_mut().zip(m) {
        *o = dot(row, v);
    }
    out
}

impl Predictor for Adaptive {
    fn predict(&self, f: &BundleFeatures) -> Prediction {
        let overhead = f.device.launch_overhead_us;
        let per_slot_us: Vec<f64> = self.corrected(f).into_iter().map(|(prior, _, c)| prior * c.exp()).collect();
        let total_us = per_slot_us.iter().copied().fold(overhead, f64::max);
        Prediction { total_us, per_slot_us: Some(per_slot_us) }
    }

    fn observe(&mut self, f: &BundleFeatures, measured: &Measured) {
        let slots = self.corrected(f);
        if slots.is_empty() {
            return;
        }
        let usable = |t: f64| t.is_finite() && t > 0.0;
        match &measured.per_slot_us {
            Some(per_slot) if per_slot.len() == slots.len() => {
                for ((s, (prior, x, _)), &t) in f.slots.iter().zip(&slots).zip(per_slot) {
                    if usable(t) && usable(*prior) {
                        self.learn(s.body, x, (t / prior).ln());
                    }
                }
            }
            _ => {
                let t = measured.total_us;
                let last = slots
                    .iter()
                    .enumerate()
                    .max_by(|a, b| (a.1 .0 * a.1 .2.exp()).total_cmp(&(b.1 .0 * b.1 .2.exp())))
                    .map(|(i, _)| i);
                if let (Some(i), true) = (last, usable(t)) {
                    let (prior, x, _) = slots[i];
                    if usable(prior) {
                        self.learn(f.slots[i].body, &x, (t / prior).ln());
                    }
                }
            }
        }
        self.observations += 1;
    }

    fn name(&self) -> &str {
        &self.name
    }
}
