//! The predictor interface every model implements, and what goes in and out.

use crate::features::BundleFeatures;

/// A predicted launch time is a [`Timing`](weft_pack::Timing) too: from
/// launch to the last slot's completion, launch overhead included, and
/// (always `Some`) from launch to each slot's completion, in slot order.
pub use weft_pack::Timing as Prediction;

/// A measured launch time is the executor's [`Timing`] (CUDA events on a
/// GPU; the simulator in tests): the one timing type of the project.
pub use weft_pack::Timing as Measured;

/// A model of bundle latency under co-location.
pub trait Predictor {
    /// Predicted time of the bundle described by `f`.
    fn predict(&self, f: &BundleFeatures) -> Prediction;
    /// Learns from one measured launch of the bundle described by `f`
    /// (a no-op for static models). Non-finite or non-positive
    /// measurements are ignored.
    fn observe(&mut self, f: &BundleFeatures, measured: &Measured);
    /// A short name for tables.
    fn name(&self) -> &str;
}

impl<P: Predictor + ?Sized> Predictor for Box<P> {
    fn predict(&self, f: &BundleFeatures) -> Prediction {
        (**self).predict(f)
    }
    fn observe(&mut self, f: &BundleFeatures, measured: &Measured) {
        (**self).observe(f, measured)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}
