//! What the predictor assumes about the device: [`DeviceModel`].
//!
//! The residency limits come from [`Target`] (read off the GPU by the
//! root crate, or `Target::sm_90()` for planning); the throughput
//! numbers are datasheet figures, documented where they are set, because no
//! driver call reports them.

use weft_kir::Target;

/// The device as the analytical prior sees it. Units: microseconds, bytes,
/// FLOPs.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct DeviceModel {
    pub limits: Target,
    /// FP32 FLOPs one SM retires per microsecond at full issue rate.
    pub peak_flops_per_sm: f64,
    /// Device memory bandwidth, bytes per microsecond.
    pub mem_bandwidth: f64,
    /// The most bandwidth one SM can draw, as a multiple of an even split
    /// (`mem_bandwidth / sm_count`): one SM alone cannot saturate DRAM.
    pub sm_bandwidth_factor: f64,
    /// Fixed cost of one launch.
    pub launch_overhead_us: f64,
}

impl DeviceModel {
    /// An H100 SXM5 (compute capability 9.0): 132 SMs × 128 FP32 lanes × 2
    /// FLOPs per FMA × 1.98 GHz boost = 66.9 TFLOP/s FP32, i.e. 506 880
    /// FLOP/µs per SM; HBM3 at 3.35 TB/s = 3.35e6 B/µs; one SM draws at most
    /// 3× an even share of the bandwidth (about 76 GB/s, in line with
    /// measured per-SM load throughput); 4 µs launch overhead (launch
    /// latency plus the bundle's slot-table upload, of the order CUDA events
    /// show for an empty kernel). Limits: [`Target::sm_90`].
    pub fn sm_90() -> DeviceModel {
        DeviceModel::sm_90_with(Target::sm_90())
    }

    /// The sm_90 throughput numbers with other residency limits (a device
    /// probed at run time, or a smaller simulated one).
    pub fn sm_90_with(limits: Target) -> DeviceModel {
        DeviceModel {
            limits,
            peak_flops_per_sm: 506_880.0,
            mem_bandwidth: 3.35e6,
            sm_bandwidth_factor: 3.0,
            launch_overhead_us: 4.0,
        }
    }

    /// FLOPs per byte at which a kernel spread over the whole device turns
    /// from memory-bound to compute-bound.
    pub fn ridge_intensity(&self) -> f64 {
        self.peak_flops_per_sm * self.limits.sm_count.max(1) as f64 / self.mem_bandwidth.max(1e-9)
    }
}

impl Default for DeviceModel {
    fn default() -> DeviceModel {
        DeviceModel::sm_90()
    }
}
