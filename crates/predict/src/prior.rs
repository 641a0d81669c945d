//! The analytical prior: a roofline per slot on its share of the device,
//! usable before any measurement.
//!
//! For each slot `s` of a bundle (features from [`crate::features`]):
//!
//! 1. **Its share of the SMs.** The co-resident blocks (the bundle's mix,
//!    at most the resident capacity `R`) spread evenly over the SMs; a block
//!    of `w` warps issues `peak_sm × w / max(warps per SM, full-speed
//!    warps)` FLOP/µs (`compute_rate`).
//! 2. **Its share of the bandwidth.** Each block wants the bandwidth that
//!    keeps it at its compute rate, capped by its SM's share; when the
//!    bundle's combined demand exceeds the device's bandwidth, the demands
//!    are served max-min fairly (contention).
//! 3. **Roofline.** One logical block takes `max(F / compute, M /
//!    bandwidth)`.
//! 4. **Wave quantisation.** A physical block runs `rounds` logical blocks,
//!    and the slot's last block is dispatched in wave `end_wave`, so the slot
//!    takes `end_wave × rounds × block time`.
//!
//! 5. **Bandwidth floor.** No slot finishes before the bytes moved while it
//!    runs (its own and the co-runners' share) have gone through the
//!    device's bandwidth.
//!
//! The bundle takes its slowest slot's time, plus the launch overhead. What
//! it leaves out (a block speeding up when co-runners finish, L2 effects,
//! dispatch latency, kernel-specific interference) is what the online
//! correction ([`crate::adaptive`]) learns.

use crate::device::DeviceModel;
use crate::features::BundleFeatures;
use crate::predictor::{Measured, Prediction, Predictor};

/// The analytical roofline prior (no learning).
#[derive(Clone, Debug, Default)]
pub struct RooflinePrior {
    name: String,
}

impl RooflinePrior {
    pub fn new() -> RooflinePrior {
        RooflinePrior { name: "prior (roofline, no online correction)".to_string() }
    }

    /// Predicted busy time of each slot, launch overhead excluded.
    pub fn slot_times(&self, f: &BundleFeatures) -> Vec<f64> {
        let want: Vec<f64> = f.slots.iter().map(|s| s.bandwidth_want).collect();
        let blocks: Vec<f64> = f.slots.iter().map(|s| s.resident_blocks).collect();
        let share = max_min_fair(&blocks, &want, f.device.mem_bandwidth);
        f.slots
            .iter()
            .zip(&share)
            .map(|(s, &bw)| {
                let t_compute =
                    if s.flops_per_block > 0.0 { s.flops_per_block / s.compute_rate.max(1e-300) } else { 0.0 };
                let t_memory = if s.bytes_per_block > 0.0 { s.bytes_per_block / bw.max(1e-300) } else { 0.0 };
                let block = t_compute.max(t_memory);
                s.end_wave.max(1) as f64 * s.rounds.max(1) as f64 * block
            })
            .collect()
    }

    /// The device model the features were computed on.
    pub fn device(f: &BundleFeatures) -> &DeviceModel {
        &f.device
    }
}

impl Predictor for RooflinePrior {
    fn predict(&self, f: &BundleFeatures) -> Prediction {
        let overhead = f.device.launch_overhead_us;
        let per_slot_us: Vec<f64> = self.slot_times(f).into_iter().map(|t| t + overhead).collect();
        let total_us = per_slot_us.iter().copied().fold(overhead, f64::max);
        Prediction { total_us, per_slot_us: Some(per_slot_us) }
    }

    fn observe(&mut self, _f: &BundleFeatures, _measured: &Measured) {}

    fn name(&self) -> &str {
        &self.name
    }
}

/// Per-block bandwidth of each group: max-min fair shares of `total` among
/// `blocks[i]` blocks per group, each block asking for at most `want[i]`.
pub(crate) fn max_min_fair(blocks: &[f64], want: &[f64], total: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..want.len()).filter(|&i| want[i] > 0.0).collect();
    order.sort_by(|&a, &b| want[a].total_cmp(&want[b]).then(a.cmp(&b)));
    let mut left = total;
    let mut remaining: f64 = order.iter().map(|&i| blocks[i]).sum();
    let mut share = vec![0.0; want.len()];
    for &i in &order {
        let fair = if remaining > 0.0 { left / remaining } else { 0.0 };
        let give = want[i].min(fair);
        share[i] = give;
        left -= give * blocks[i];
        remaining -= blocks[i];
    }
    share
}
