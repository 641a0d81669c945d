//! What the simulated GPU is: its throughput numbers ([`SimSpec`]) and the
//! interference effects it hides from the predictor ([`HiddenEffects`]).
//!
//! The throughput numbers are public knowledge (a predictor's device model
//! may use the same ones); the hidden effects are the part a predictor must
//! learn from measurements. Every number here is a simulator parameter, not
//! a measurement of any GPU.

/// The simulated device's rates. Units: microseconds, bytes, FLOPs.
#[derive(Clone, PartialEq, Debug)]
pub struct SimSpec {
    /// FP32 FLOPs one SM retires per microsecond at full issue rate.
    pub peak_flops_per_sm: f64,
    /// Device memory bandwidth, bytes per microsecond.
    pub mem_bandwidth: f64,
    /// How far one SM can draw beyond an even split of the bandwidth: an SM
    /// gets at most `sm_bandwidth_factor × mem_bandwidth / sm_count` (a
    /// single SM cannot saturate DRAM).
    pub sm_bandwidth_factor: f64,
    /// Fixed cost of one launch, added to every timing.
    pub launch_overhead_us: f64,
    /// Effects the predictor does not know in advance.
    pub hidden: HiddenEffects,
    /// A change of the hidden effects after some bundles (tests forgetting).
    pub drift: Option<Drift>,
}

impl SimSpec {
    /// Rates of the order of an H100 SXM (the `weft-predict` device model's
    /// sm_90 defaults): 132 SMs × 128 FP32 lanes × 2 (FMA) × 1.98 GHz ≈ 67
    /// TFLOP/s, i.e. 506 880 FLOP/µs per SM; 3.35 TB/s of HBM3 = 3.35e6
    /// B/µs; 4 µs per launch. With the default [`HiddenEffects`].
    pub fn h100_like() -> SimSpec {
        SimSpec {
            peak_flops_per_sm: 506_880.0,
            mem_bandwidth: 3.35e6,
            sm_bandwidth_factor: 3.0,
            launch_overhead_us: 4.0,
            hidden: HiddenEffects::default(),
            drift: None,
        }
    }

    /// The same device with every hidden effect off (an ideal roofline
    /// machine with a bandwidth split; tests compare against it).
    pub fn ideal(mut self) -> SimSpec {
        self.hidden = HiddenEffects::none();
        self.drift = None;
        self
    }

    /// The same device with `drift`.
    pub fn with_drift(mut self, drift: Drift) -> SimSpec {
        self.drift = Some(drift);
        self
    }
}

/// Interference effects the predictor does not know in advance.
#[derive(Clone, PartialEq, Debug)]
pub struct HiddenEffects {
    /// Combined bandwidth demand (over the device's bandwidth) above which
    /// L2 thrashing sets in.
    pub contention_threshold: f64,
    /// How much bandwidth is lost past the threshold: the effective
    /// bandwidth is `bw / (1 + strength × excess^exponent)` where `excess =
    /// demand / (threshold × bw) - 1`.
    pub contention_strength: f64,
    /// Superlinearity of the loss (> 1).
    pub contention_exponent: f64,
    /// Compute-bound blocks run slower by `1 + s × kind × f`, where `f` is
    /// the fraction of the device's active warps that belong to
    /// memory-bound co-runners and `kind` is a per-kernel-kind sensitivity.
    pub memory_neighbour_slowdown: f64,
    /// Spread of the per-kernel-kind sensitivity: `kind` is drawn in
    /// `[1 - spread, 1 + spread]` from a hash of the kernel's name (its kind:
    /// the name up to the first digit) and `kind_seed`.
    pub kind_spread: f64,
    /// Seeds the per-kind sensitivities.
    pub kind_seed: u64,
    /// Block-scheduler latency before a block dispatched after the launch's
    /// first wave starts (refilling SMs is not free): more waves, more tail.
    pub wave_dispatch_us: f64,
    /// Multiplicative noise on each slot's time, uniform in `±noise`.
    pub noise: f64,
}

impl HiddenEffects {
    /// No hidden effect at all.
    pub fn none() -> HiddenEffects {
        HiddenEffects {
            contention_threshold: f64::INFINITY,
            contention_strength: 0.0,
            contention_exponent: 1.0,
            memory_neighbour_slowdown: 0.0,
            kind_spread: 0.0,
            kind_seed: 0,
            wave_dispatch_us: 0.0,
            noise: 0.0,
        }
    }

    /// A different set of effects, for [`Drift`]: stronger contention that
    /// starts earlier, a milder neighbour slowdown with other per-kind
    /// sensitivities, slower dispatch.
    pub fn drifted() -> HiddenEffects {
        HiddenEffects {
            contention_threshold: 0.5,
            contention_strength: 0.6,
            contention_exponent: 1.5,
            memory_neighbour_slowdown: 0.15,
            kind_spread: 0.5,
            kind_seed: 0xD81F7,
            wave_dispatch_us: 2.5,
            noise: 0.02,
        }
    }
}

impl Default for HiddenEffects {
    /// Contention past 70% of the bandwidth, a 25% neighbour slowdown spread
    /// ±50% by kind, 1.5 µs dispatch latency per later wave, ±2% noise.
    fn default() -> HiddenEffects {
        HiddenEffects {
            contention_threshold: 0.7,
            contention_strength: 0.35,
            contention_exponent: 1.6,
            memory_neighbour_slowdown: 0.25,
            kind_spread: 0.5,
            kind_seed: 0x5EED,
            wave_dispatch_us: 1.5,
            noise: 0.02,
        }
    }
}

/// A step change of the hidden effects: after `after_bundles` runs (bundles
/// and solo kernels), the simulator uses `to`.
#[derive(Clone, PartialEq, Debug)]
pub struct Drift {
    pub after_bundles: u64,
    pub to: HiddenEffects,
}
