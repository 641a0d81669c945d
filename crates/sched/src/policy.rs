//! The policies the scheduler can run, behind one interface, and their knobs.
//!
//! | policy | bundle | order | predictor | admission |
//! |---|---|---|---|---|
//! | [`PolicyKind::TimeOnlyFifo`] | one kernel | oldest request | — | queue bound only |
//! | [`PolicyKind::SpaceOnly`] | every tenant's ready kernel, [`Budget::Full`](weft_pack::Budget) | — | — | queue bound only |
//! | [`PolicyKind::PackedGreedy`] | as wide as occupancy allows | EDF | — | queue bound only |
//! | [`PolicyKind::SloAware`] | as wide as every member's predicted deadline allows | EDF, slack, fairness | yes | predicted |
//!
//! "Packed with the static prior" and "packed with the adaptive predictor"
//! are both [`PolicyKind::SloAware`], with a `RooflinePrior` or an
//! `Adaptive` predictor handed to the scheduler. The rules are in
//! `docs/scheduler.md` and [`crate::scheduler`].

use weft_pack::PackMode;

/// How bundles are formed.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum PolicyKind {
    /// One kernel at a time, requests in arrival order (Clockwork-style time
    /// sharing).
    TimeOnlyFifo,
    /// A stream per tenant: every tenant's ready kernel co-runs with its full
    /// grid; no prediction, no admission.
    SpaceOnly,
    /// Packed greedily (EDF order, as wide as occupancy allows, budgets
    /// proportional to work); no prediction, no admission.
    PackedGreedy,
    /// Packed so every member is predicted to stay on track for its
    /// deadline; predicted admission; fairness.
    SloAware,
}

/// A policy and its knobs.
#[derive(Clone, PartialEq, Debug)]
pub struct SchedulerConfig {
    pub kind: PolicyKind,
    /// Throughput (1) versus latency (0): the share of a request's slack a
    /// bundle may spend stretching its step. At 1 a member may be slowed
    /// until its request would just meet its deadline if every later step
    /// were slowed alike; at 0 no member may run slower than alone.
    pub knob: f64,
    /// How coalescing and constraining are chosen.
    pub mode: PackMode,
    /// Most queued (not yet started) requests per tenant; arrivals beyond it
    /// are rejected with `RejectReason::QueueFull`.
    pub queue_capacity: usize,
    /// Requests of one tenant served at once (packed policies; each has its
    /// own activation buffers, its steps in order). Time-only FIFO and
    /// space-only serve one at a time per tenant.
    pub max_in_flight: usize,
    /// Whether arrivals predicted to miss their SLO are rejected (SloAware only).
    pub admission: bool,
    /// A request is admitted when its predicted latency is at most
    /// `admission_margin × SLO` (below 1 leaves headroom for mispredictions).
    pub admission_margin: f64,
    /// How strongly a tenant whose attainment lags the mean is favoured:
    /// its requests are ordered as if their deadlines were `1 + gain × lag`
    /// times nearer.
    pub fairness_gain: f64,
    /// How often (in bundles) predicted solo step times are refreshed from
    /// the predictor, which may have learned since.
    pub refresh_every: u64,
    /// The policy's name in tables (default: from the kind, and for
    /// SloAware from the predictor's name).
    pub label: Option<String>,
}

impl SchedulerConfig {
    fn with(kind: PolicyKind) -> SchedulerConfig {
        SchedulerConfig {
            kind,
            knob: 0.5,
            mode: PackMode::Auto,
            queue_capacity: 32,
            max_in_flight: 4,
            admission: kind == PolicyKind::SloAware,
            admission_margin: 1.0,
            fairness_gain: 4.0,
            refresh_every: 64,
            label: None,
        }
    }

    pub fn time_only_fifo() -> SchedulerConfig {
        SchedulerConfig::with(PolicyKind::TimeOnlyFifo)
    }

    pub fn space_only() -> SchedulerConfig {
        SchedulerConfig::with(PolicyKind::SpaceOnly)
    }

    pub fn packed_greedy() -> SchedulerConfig {
        SchedulerConfig::with(PolicyKind::PackedGreedy)
    }

    /// The SLO-aware policy at `knob` (clamped to `[0, 1]`).
    pub fn slo_aware(knob: f64) -> SchedulerConfig {
        let mut c = SchedulerConfig::with(PolicyKind::SloAware);
        c.knob = if knob.is_nan() { 0.0 } else { knob.clamp(0.0, 1.0) };
        c
    }

    /// The same policy with a queue bound of `capacity` (at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> SchedulerConfig {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The same policy with up to `n` requests per tenant in flight (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> SchedulerConfig {
        self.max_in_flight = n.max(1);
        self
    }

    /// The same policy named `label` in tables.
    pub fn with_label(mut self, label: impl Into<String>) -> SchedulerConfig {
        self.label = Some(label.into());
        self
    }

    /// The same policy with admission control on or off.
    pub fn with_admission(mut self, admission: bool) -> SchedulerConfig {
        self.admission = admission;
        self
    }
}
