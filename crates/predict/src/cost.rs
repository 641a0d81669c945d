//! The predictor as the packer's cost model: [`PredictorCost`].
//!
//! Planners price bundles through [`weft_pack::CostModel`]; this adapter
//! answers with any [`Predictor`] (the analytical prior, the online-adaptive
//! model, a baseline), in microseconds. It owns the [`FeatureExtractor`], so
//! each kernel is analysed once however many trial bundles it is priced in,
//! and it takes each kernel's block resources from the shaping core's
//! [`PreparedKernel`] (whatever [`weft_pack::ResourceModel`] prepared it),
//! so features and shaping agree on resources. A serving
//! loop that learns keeps the features of what it dispatched
//! ([`PredictorCost::predict`]) and feeds measurements back with
//! [`PredictorCost::observe`].

use std::sync::Arc;

use weft_kir::KernelDef;
use weft_pack::{CostModel, EstimatedResources, PreparedKernel, ResourceModel, ShapedBundle};

use crate::device::DeviceModel;
use crate::features::{BundleFeatures, FeatureExtractor};
use crate::predictor::{Measured, Prediction, Predictor};

/// A [`Predictor`] and its feature extractor, priced as a [`CostModel`].
#[derive(Debug)]
pub struct PredictorCost<P> {
    predictor: P,
    extractor: FeatureExtractor,
}

impl<P: Predictor> PredictorCost<P> {
    /// Prices bundles with `predictor` on `device`.
    pub fn new(predictor: P, device: DeviceModel) -> PredictorCost<P> {
        PredictorCost { predictor, extractor: FeatureExtractor::new(device) }
    }

    pub fn predictor(&self) -> &P {
        &self.predictor
    }

    /// The features of `bundle` and the predictor's estimate for them.
    pub fn predict(&mut self, bundle: &ShapedBundle) -> (Prediction, BundleFeatures) {
        // The bundle's slots hold the prepared kernels themselves.
        let resources = |k: &KernelDef| {
            let member = bundle.members.iter().find(|m| std::ptr::eq(Arc::as_ptr(m.kernel.kernel()), k));
            member.map_or_else(|| EstimatedResources.resources(k), |m| m.kernel.resources)
        };
        let features = self.extractor.bundle(&bundle.bundle, &resources);
        (self.predictor.predict(&features), features)
    }

    /// Lets the predictor learn from one measured launch of the bundle
    /// described by `features`.
    pub fn observe(&mut self, features: &BundleFeatures, measured: &Measured) {
        self.predictor.observe(features, measured);
    }
}

impl<P: Predictor> CostModel for PredictorCost<P> {
    fn name(&self) -> &str {
        self.predictor.name()
    }

    fn solo_time(&mut self, kernel: &PreparedKernel) -> f64 {
        let resources = kernel.resources;
        let features = self.extractor.solo(kernel.kernel(), &|_: &KernelDef| resources);
        self.predictor.predict(&features).total_us
    }

    fn bundle_cost(&mut self, bundle: &ShapedBundle) -> Prediction {
        self.predict(bundle).0
    }
}

#[cfg(test)]
mod tests {
    use weft_kir::Target;
    use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};
    use weft_lower::BufferId;
    use weft_pack::{KernelResources, Member, PackMode, TenantId};

    use super::*;
    use crate::prior::RooflinePrior;

    fn scale(name: &str, blocks: u32, trips: i32) -> Arc<KernelDef> {
        let n = blocks as u64 * 256;
        let mut b = KernelBuilder::new(name, LaunchShape::linear(blocks, 256));
        let x = b.buffer("x", Type::F32, n, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let v = b.load(x, i);
        let acc = b.var(Type::F32);
        b.set(acc, v);
        b.for_const(0, trips, 1, |b, _| {
            let a = b.get(acc);
            let m = b.mul(a, v);
            b.set(acc, m);
        });
        let out = b.get(acc);
        b.store(x, i, out);
        Arc::new(b.finish())
    }

    #[test]
    fn prices_match_the_predictor_on_the_same_features() {
        let limits = Target::sm_90();
        let device = DeviceModel::sm_90_with(limits);
        let mut cost = PredictorCost::new(RooflinePrior::new(), device);
        let kernels = [scale("light", 64, 4), scale("heavy", 512, 400)];
        let members: Vec<Member> = kernels
            .iter()
            .enumerate()
            .map(|(t, k)| Member {
                kernel: Arc::new(PreparedKernel::new(k, &limits, &EstimatedResources).unwrap()),
                tenant: TenantId(t as u32),
                args: vec![BufferId::from_u32(0)],
            })
            .collect();
        let solo: Vec<f64> = members.iter().map(|m| cost.solo_time(&m.kernel)).collect();
        assert!(solo[1] > solo[0] && solo[0] > 0.0, "more work takes longer alone: {solo:?}");
        let shaped = ShapedBundle::form(members, &limits, PackMode::Auto).unwrap();
        let priced = cost.bundle_cost(&shaped);
        let direct = RooflinePrior::new().predict(&crate::bundle_features(
            &shaped.bundle,
            &limits,
            &weft_pack::EstimatedResources,
        ));
        assert_eq!(priced.total_us, direct.total_us);
        assert_eq!(priced.per_slot_us, direct.per_slot_us);
        assert_eq!(priced.slots().len(), 2);
        assert!(priced.total_us >= solo[1], "the bundle lasts at least as long as its heaviest member alone");
        assert_eq!(cost.name(), RooflinePrior::new().name());
    }

    #[test]
    fn features_follow_the_resources_the_bundle_was_shaped_with() {
        let limits = Target::sm_90();
        let k = scale("k", 1024, 8);
        // A measured report: more registers than the KIR estimate.
        let measured = |k: &KernelDef| KernelResources { registers: 128, ..KernelResources::of(k, None) };
        let prepared = Arc::new(PreparedKernel::new(&k, &limits, &measured).unwrap());
        assert_eq!(prepared.resources.registers, 128);
        let member = Member { kernel: prepared.clone(), tenant: TenantId(0), args: vec![BufferId::from_u32(0)] };
        let shaped = ShapedBundle::form(vec![member], &limits, PackMode::Auto).unwrap();
        let mut cost = PredictorCost::new(RooflinePrior::new(), DeviceModel::sm_90_with(limits));
        let (_, features) = cost.predict(&shaped);
        assert_eq!(features.resources, prepared.resources);
        assert_eq!(features.slots[0].registers, 128);
        assert_eq!(features.blocks_per_sm, prepared.solo.blocks_per_sm);
        // Fewer resident blocks than the estimate would allow: slower alone.
        let estimated = Arc::new(PreparedKernel::new(&scale("k2", 1024, 8), &limits, &EstimatedResources).unwrap());
        assert!(estimated.solo.blocks_per_sm > prepared.solo.blocks_per_sm);
        assert!(cost.solo_time(&prepared) > cost.solo_time(&estimated));
    }
}
