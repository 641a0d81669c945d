//! The simulated GPU (a simulator: no figure here is a GPU result).

use std::sync::Arc;

use weft_kir::Target;
use weft_lower::BufferId;
use weft_pack::{Budget, Bundle, BundleBuilder, Slot, TenantId};
use weft_sim::{HiddenEffects, SimError, SimGpu, SimSpec};

fn bundle(kernels: &[(Arc<weft_kir::KernelDef>, Budget)]) -> Bundle {
    let mut b = BundleBuilder::new();
    for (i, (k, budget)) in kernels.iter().enumerate() {
        let args = (0..k.params.len() as u32).map(BufferId::from_u32).collect();
        b.push(Slot { kernel: k.clone(), tenant: TenantId(i as u32), budget: *budget, args });
    }
    b.build().expect("the bundle builds")
}

#[test]
fn same_seed_same_timings_and_noise_is_bounded() {
    let va = Arc::new(weft_kernels::vector_add(1 << 18));
    let mm = Arc::new(weft_kernels::sgemm(256, 256, 256, Default::default()));
    let b = bundle(&[(va, Budget::Full), (mm, Budget::Blocks(8))]);
    let run = |seed: u64| {
        let mut sim = SimGpu::new(Target::sm_90(), SimSpec::h100_like(), seed);
        (0..20).map(|_| sim.run_bundle(&b).expect("runs")).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    let (a, c) = (run(7), run(8));
    assert_ne!(a, c);
    for (x, y) in a.iter().zip(&c) {
        assert!((x.total_us / y.total_us - 1.0).abs() < 0.05, "{x:?} vs {y:?}");
        let per_slot = x.per_slot_us.as_deref().expect("the simulator reports each slot");
        assert_eq!(per_slot.len(), 2);
        assert!(x.total_us >= per_slot.iter().copied().fold(0.0, f64::max) - 1e-9);
    }
}

#[test]
fn ideal_memory_bound_kernel_runs_at_the_bandwidth() {
    let va = Arc::new(weft_kernels::vector_add(1 << 22));
    let mut sim = SimGpu::new(Target::sm_90(), SimSpec::h100_like().ideal(), 1);
    let t = sim.run_kernel_solo(&va).expect("runs").total_us;
    let floor = 12.0 * (1u64 << 22) as f64 / 3.35e6 + 4.0;
    assert!(t >= floor * 0.999 && t < floor * 1.2, "{t} vs {floor}");
}

#[test]
fn hidden_contention_slows_co_located_memory_bound_kernels() {
    let a = Arc::new(weft_kernels::vector_add(1 << 20));
    let b = Arc::new(weft_kernels::row_sum(1024, 1024));
    let bun = bundle(&[(a, Budget::Blocks(600)), (b, Budget::Blocks(400))]);
    let mut ideal = SimGpu::new(Target::sm_90(), SimSpec::h100_like().ideal(), 1);
    let mut hidden = SimGpu::new(Target::sm_90(), SimSpec::h100_like(), 1);
    let t0 = ideal.run_bundle(&bun).expect("runs").total_us;
    let t1 = hidden.run_bundle(&bun).expect("runs").total_us;
    assert!(t1 > 1.3 * t0, "hidden {t1} vs ideal {t0}");
    // Drift by hand changes the timing.
    hidden.set_hidden(HiddenEffects::drifted());
    let t2 = hidden.run_bundle(&bun).expect("runs").total_us;
    assert!((t2 / t1 - 1.0).abs() > 0.05, "drift {t2} vs {t1}");
}

#[test]
fn errors_are_typed() {
    // Only the builder makes bundles, and it makes no empty one.
    assert_eq!(BundleBuilder::new().build().unwrap_err(), weft_pack::PackError::Empty);
    let tiny = Target { max_threads_per_block: 64, ..Target::sm_90() };
    let mut sim = SimGpu::new(tiny, SimSpec::h100_like(), 1);
    let va = Arc::new(weft_kernels::vector_add(1024));
    assert!(matches!(sim.run_kernel_solo(&va), Err(SimError::Unlaunchable { .. })));
}
