//! The predictors against the simulator (weft-sim): simulator figures only.

use std::sync::Arc;

use weft_kir::Target;
use weft_pack::ResourceTable;
use weft_predict::{DeviceModel, FeatureExtractor, Predictor, RooflinePrior};
use weft_sim::{SimGpu, SimSpec};

#[test]
fn prior_is_within_a_sane_factor_of_the_ideal_simulator() {
    let limits = Target::sm_90();
    let mut sim = SimGpu::new(limits, SimSpec::h100_like().ideal(), 1);
    let mut features = FeatureExtractor::new(DeviceModel::sm_90());
    let prior = RooflinePrior::new();
    let kernels = [
        weft_kernels::vector_add(1 << 20),
        weft_kernels::vector_add(1 << 12),
        weft_kernels::sgemm(256, 256, 256, Default::default()),
        weft_kernels::row_softmax(256, 512),
    ];
    for k in kernels {
        let k = Arc::new(k);
        let measured = sim.run_kernel_solo(&k).expect("the simulator runs it").total_us;
        let predicted = prior.predict(&features.solo(&k, &ResourceTable::new())).total_us;
        let ratio = predicted / measured;
        assert!((0.5..2.0).contains(&ratio), "{}: prior {predicted:.2} µs, simulator {measured:.2} µs", k.name);
    }
    // A memory-bound kernel: 12 bytes per element at 3.35 TB/s plus 4 µs.
    let k = Arc::new(weft_kernels::vector_add(1 << 20));
    let t = prior.predict(&features.solo(&k, &ResourceTable::new())).total_us;
    let floor = 12.0 * (1 << 20) as f64 / 3.35e6 + 4.0;
    assert!(t >= floor * 0.999, "prior {t} below the bandwidth floor {floor}");
}
