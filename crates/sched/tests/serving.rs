//! The scheduler and the serving loop on the simulator (weft_sim: simulator
//! figures, not GPU results).

mod common;

use common::*;
use weft_pack::{Budget, TenantId};
use weft_sched::{
    Arrivals, Outcome, PolicyKind, RejectReason, Request, SchedError, SchedulerConfig, Trace, TraceTenant,
};

/// `n` tenants with Poisson arrivals at `rate` each for `duration_us`.
fn poisson(n: u32, rate: f64, duration_us: f64, seed: u64) -> Vec<(TenantId, f64)> {
    let tenants: Vec<(TraceTenant, Arrivals)> = (0..n)
        .map(|i| {
            let t = TraceTenant { name: format!("r18-{i}"), model: "resnet18".into(), slo_us: 1.0, weight: 1.0 };
            (t, Arrivals::Poisson { rate_per_s: rate })
        })
        .collect();
    Trace::generate(&tenants, duration_us, seed).arrivals.into_iter().map(|(t, time)| (TenantId(t), time)).collect()
}

#[test]
fn unknown_tenant_is_a_typed_error() {
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0), prior(), 1, 1e4);
    let err = s.submit(Request::new(TenantId(99), 0, 0.0), 0.0).unwrap_err();
    assert!(matches!(err, SchedError::UnknownTenant { tenant: TenantId(99) }), "{err}");
    assert!(matches!(s.queue_len(TenantId(99)), Err(SchedError::UnknownTenant { .. })));
    let dup = s.add_tenant(tenant(0, 1e4)).unwrap_err();
    assert!(matches!(dup, SchedError::DuplicateTenant { tenant: TenantId(0) }), "{dup}");
    let bad = s.add_tenant(tenant(5, -1.0)).unwrap_err();
    assert!(matches!(bad, SchedError::InvalidTenant { .. }), "{bad}");
}

#[test]
fn earliest_deadline_leads_the_bundle_and_deadlines_are_arrival_plus_slo() {
    let solo = sim_solo_us();
    for config in [SchedulerConfig::packed_greedy(), SchedulerConfig::slo_aware(1.0)] {
        let mut s = scheduler(config.clone(), prior(), 0, 1.0);
        s.add_tenant(tenant(0, 50.0 * solo)).unwrap();
        s.add_tenant(tenant(1, 3.0 * solo)).unwrap();
        s.add_tenant(tenant(2, 10.0 * solo)).unwrap();
        for (id, t) in [(0u32, 0.0), (1, 0.0), (2, 0.0)] {
            s.submit(Request::new(TenantId(t as u32 + id), id as u64, t), 0.0).unwrap();
        }
        let d = s.next_bundle(0.0).unwrap().expect("work is waiting");
        assert_eq!(d.members[0].tenant, TenantId(1), "{:?}: tightest deadline first", config.kind);
        // The loop refuses a second bundle before the first completes.
        assert!(matches!(s.next_bundle(0.0), Err(SchedError::Completion { .. })));
    }
    // Served to the end: met_slo is exactly latency <= SLO.
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0), prior(), 0, 1.0);
    s.add_tenant(tenant(0, 1.5 * solo)).unwrap();
    s.add_tenant(tenant(1, 0.5 * solo)).unwrap(); // cannot be met
    let mut s2 = s;
    let report = run(&mut s2, &[(TenantId(0), 0.0), (TenantId(1), 0.0)], 1);
    for r in &report.records {
        let slo = if r.tenant == TenantId(0) { 1.5 * solo } else { 0.5 * solo };
        match r.outcome {
            Outcome::Completed { latency_us, met_slo } => assert_eq!(met_slo, latency_us <= slo),
            Outcome::Rejected => assert_eq!(r.tenant, TenantId(1), "only the impossible request is refused"),
        }
    }
    assert_eq!(report.tenants[0].met, 1);
    assert_eq!(report.tenants[1].met, 0);
}

#[test]
fn time_only_fifo_runs_one_kernel_in_arrival_order() {
    let mut s = scheduler(SchedulerConfig::time_only_fifo(), prior(), 2, 1e6);
    s.submit(Request::new(TenantId(1), 0, 0.0), 1.0).unwrap();
    s.submit(Request::new(TenantId(0), 1, 0.5), 1.0).unwrap();
    let d = s.next_bundle(1.0).unwrap().unwrap();
    assert_eq!(d.bundle.slots().len(), 1);
    assert_eq!(d.members[0].tenant, TenantId(1));
}

#[test]
fn admission_rejects_with_a_typed_error_when_overloaded() {
    let solo = sim_solo_us();
    // Admission: a burst far beyond what 3 × solo can serve.
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0).with_queue_capacity(1000), prior(), 1, 3.0 * solo);
    let mut rejected = None;
    for id in 0..50u64 {
        match s.submit(Request::new(TenantId(0), id, 0.0), 0.0) {
            Ok(()) => {}
            Err(e) => {
                rejected = Some((id, e));
                break;
            }
        }
    }
    let (id, err) = rejected.expect("a burst of 50 is refused before its end");
    assert!((1..10).contains(&id), "the first requests fit, the burst does not ({id})");
    match err {
        SchedError::Rejected { tenant, request, reason: RejectReason::SloUnreachable { predicted_us, slo_us } } => {
            assert_eq!((tenant, request), (TenantId(0), id));
            assert!(predicted_us > slo_us);
        }
        other => panic!("expected an SLO rejection, got {other}"),
    }
    // A full queue, without admission control.
    let mut s = scheduler(SchedulerConfig::time_only_fifo().with_queue_capacity(2), prior(), 1, 1.0);
    for id in 0..2 {
        s.submit(Request::new(TenantId(0), id, 0.0), 0.0).unwrap();
    }
    let err = s.submit(Request::new(TenantId(0), 2, 0.0), 0.0).unwrap_err();
    assert!(
        matches!(err, SchedError::Rejected { request: 2, reason: RejectReason::QueueFull { capacity: 2 }, .. }),
        "{err}"
    );
}

#[test]
fn queues_stay_bounded_far_past_capacity() {
    let solo = sim_solo_us();
    // Fifty times what time-only FIFO can serve (far past what packing
    // gains too), from 2 tenants.
    let rate = 50.0 * 1e6 / solo / 2.0;
    let arrivals = poisson(2, rate, 30.0 * solo, 5);
    assert!(arrivals.len() > 1000, "{}", arrivals.len());
    for config in [SchedulerConfig::time_only_fifo(), SchedulerConfig::slo_aware(1.0)] {
        let capacity = 8;
        let in_flight = config.max_in_flight;
        let mut s = scheduler(config.with_queue_capacity(capacity), prior(), 2, 4.0 * solo);
        let report = run(&mut s, &arrivals, 2);
        assert_eq!(report.records.len(), arrivals.len(), "every request is accounted for");
        assert!(report.peak_queue <= capacity, "{}", report.peak_queue);
        assert!(report.peak_live <= 2 * (capacity + in_flight), "{}", report.peak_live);
        assert!(report.rejected() as usize > arrivals.len() / 2, "{}: {} rejected", report.policy, report.rejected());
        assert_eq!(s.live_requests(), 0, "drained");
    }
}

#[test]
fn symmetric_tenants_are_served_fairly() {
    let solo = sim_solo_us();
    let n = 3;
    // Past FIFO's capacity, so the policy has choices to make.
    let rate = 1.5 * 1e6 / solo / n as f64;
    let arrivals = poisson(n, rate, 120.0 * solo, 11);
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0), adaptive(), n, 5.0 * solo);
    let report = run(&mut s, &arrivals, 3);
    assert!(report.jain() >= 0.99, "Jain {}: {:?}", report.jain(), report.tenants);
    assert!(report.tenants.iter().all(|t| t.arrived > 20));
}

#[test]
fn adaptive_policy_meets_slos_where_fifo_fails() {
    let solo = sim_solo_us();
    let n = 4;
    // 1.5 × FIFO's capacity (simulator).
    let rate = 1.5 * 1e6 / solo / n as f64;
    let arrivals = poisson(n, rate, 150.0 * solo, 17);
    let slo = 5.0 * solo;
    let mut fifo = scheduler(SchedulerConfig::time_only_fifo(), prior(), n, slo);
    let fifo = run(&mut fifo, &arrivals, 4);
    let mut packed = scheduler(SchedulerConfig::slo_aware(1.0), adaptive(), n, slo);
    let packed = run(&mut packed, &arrivals, 4);
    assert!(fifo.min_attainment() < 0.9, "FIFO should fail here: {}", fifo.min_attainment());
    assert!(packed.min_attainment() >= 0.95, "adaptive: {:?}", packed.tenants);
    assert!(packed.goodput_per_s() > 1.5 * fifo.goodput_per_s());
}

#[test]
fn serving_is_deterministic_for_a_seed() {
    let solo = sim_solo_us();
    let arrivals = poisson(3, 1.2 * 1e6 / solo / 3.0, 40.0 * solo, 23);
    let go = || {
        let mut s = scheduler(SchedulerConfig::slo_aware(1.0), adaptive(), 3, 4.0 * solo);
        run(&mut s, &arrivals, 9)
    };
    let (a, b) = (go(), go());
    assert_eq!(a, b);
    assert!(a.bundles > 0);
}

#[test]
fn space_only_co_runs_every_tenant_with_full_grids() {
    let mut s = scheduler(SchedulerConfig::space_only(), prior(), 3, 1e6);
    for id in 0..3u32 {
        s.submit(Request::new(TenantId(id), id as u64, 0.0), 0.0).unwrap();
    }
    let d = s.next_bundle(0.0).unwrap().unwrap();
    assert_eq!(d.bundle.slots().len(), 3);
    assert!(d.bundle.slots().iter().all(|slot| slot.budget == Budget::Full));
    assert_eq!(s.config().kind, PolicyKind::SpaceOnly);
}
