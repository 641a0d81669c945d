//! weft's bundle latency predictor (DESIGN.md principle 6: measure, then
//! model).
//!
//! The scheduler asks one question many times a second: how long will this
//! bundle take, and when will each of its slots finish? This crate answers
//! it in three layers:
//!
//! - [`features`]: per-slot and per-bundle features from KIR analysis and
//!   ptxas (FLOPs, bytes, intensity, threads, registers, shared memory,
//!   blocks, budget, occupancy, waves, co-runners' demand on SMs and
//!   bandwidth);
//! - [`prior`]: an analytical roofline model on each slot's share of the
//!   device, usable before any measurement;
//! - [`adaptive`]: the prior times an online correction learned from
//!   measured bundle times (RLS with forgetting plus per-body residuals).
//!
//! [`cost`] lends any of them to the packer's planners as a
//! [`weft_pack::CostModel`] ([`PredictorCost`]).
//!
//! [`baselines`] holds the coarser models of the literature; the evaluation
//! harness that compares all of them on held-out co-locations measured on the
//! simulator lives with the other benchmarks (`weft-bench`'s
//! `predictor_eval`). docs/predictor.md explains the features and the model.

pub mod adaptive;
pub mod baselines;
pub mod cost;
pub mod device;
pub mod features;
pub mod predictor;
pub mod prior;

pub use adaptive::{correction_features, Adaptive, AdaptiveConfig, NUM_FEATURES};
pub use baselines::{ModelLevel, OperatorLevel};
pub use cost::PredictorCost;
pub use device::DeviceModel;
pub use features::{bundle_features, bundle_features_on, BundleFeatures, FeatureExtractor, SlotFeatures};
pub use predictor::{Measured, Prediction, Predictor};
pub use prior::RooflinePrior;
