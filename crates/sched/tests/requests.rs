//! Per-request objectives and priority classes: the order requests are
//! dispatched in, which of them admission refuses, and whether they met
//! their own objective.

mod common;

use common::*;
use weft_pack::{TenantId, Timing};
use weft_sched::{RejectReason, Request, SchedError, SchedulerConfig};

/// Runs bundles at a fixed `bundle_us` each until nothing waits; returns
/// each finished request's `(id, latency, met)` in completion order.
fn drain(s: &mut weft_sched::Scheduler, mut now: f64, bundle_us: f64) -> Vec<(u64, f64, bool)> {
    let mut done = Vec::new();
    while let Some(d) = s.next_bundle(now).unwrap() {
        now += bundle_us;
        let timing = Timing { total_us: bundle_us, per_slot_us: None };
        for f in s.complete(d, &timing, now).unwrap() {
            done.push((f.request.id, f.latency_us, f.met_slo));
        }
    }
    done
}

#[test]
fn a_tight_request_deadline_overtakes_a_loose_one() {
    let solo = sim_solo_us();
    for config in [SchedulerConfig::packed_greedy(), SchedulerConfig::slo_aware(1.0)] {
        // Two tenants with the same loose objective; the later arrival
        // carries its own tight one and must lead the first bundle.
        let mut s = scheduler(config.clone(), prior(), 2, 1e3 * solo);
        s.submit(Request::new(TenantId(0), 0, 0.0), 1.0).unwrap();
        s.submit(Request::new(TenantId(1), 1, 1.0).with_slo_us(20.0 * solo), 1.0).unwrap();
        let d = s.next_bundle(1.0).unwrap().expect("work is waiting");
        assert_eq!(d.members[0].request, 1, "{:?}: the request's own deadline is the earliest", config.kind);
    }
    // Within one tenant serving one request at a time, the tight request
    // queued behind a loose one starts first.
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0).with_max_in_flight(1), prior(), 1, 1e3 * solo);
    s.submit(Request::new(TenantId(0), 0, 0.0), 0.0).unwrap();
    s.submit(Request::new(TenantId(0), 1, 0.0).with_slo_us(5.0 * solo), 0.0).unwrap();
    let order: Vec<u64> = drain(&mut s, 0.0, solo / 10.0).iter().map(|f| f.0).collect();
    assert_eq!(order, vec![1, 0]);
    // Time-only FIFO keeps arrival order within a class.
    let mut s = scheduler(SchedulerConfig::time_only_fifo(), prior(), 1, 1e3 * solo);
    s.submit(Request::new(TenantId(0), 0, 0.0), 0.0).unwrap();
    s.submit(Request::new(TenantId(0), 1, 0.0).with_slo_us(5.0 * solo), 0.0).unwrap();
    let order: Vec<u64> = drain(&mut s, 0.0, solo / 10.0).iter().map(|f| f.0).collect();
    assert_eq!(order, vec![0, 1]);
}

#[test]
fn met_slo_is_judged_against_the_request_s_own_objective() {
    let solo = sim_solo_us();
    let steps = resnet18_small().steps.len() as f64;
    let config = SchedulerConfig::slo_aware(1.0).with_admission(false);
    let mut s = scheduler(config, prior(), 1, 1e3 * solo);
    // Every bundle takes 1 µs: a request takes `steps` µs alone.
    s.submit(Request::new(TenantId(0), 0, 0.0).with_slo_us(steps / 2.0), 0.0).unwrap();
    s.submit(Request::new(TenantId(0), 1, 0.0).with_slo_us(10.0 * steps), 0.0).unwrap();
    s.submit(Request::new(TenantId(0), 2, 0.0), 0.0).unwrap();
    let mut done = drain(&mut s, 0.0, 1.0);
    done.sort_by_key(|f| f.0);
    assert!(done[0].1 > steps / 2.0 && !done[0].2, "{done:?}: missed its own tight objective");
    assert!(done[1].1 <= 10.0 * steps && done[1].2, "{done:?}");
    assert!(done[2].2, "{done:?}: the tenant's objective applies without one of its own");
}

#[test]
fn a_higher_priority_class_is_dispatched_first_whatever_its_deadline() {
    let solo = sim_solo_us();
    for config in [
        SchedulerConfig::time_only_fifo(),
        SchedulerConfig::packed_greedy(),
        SchedulerConfig::slo_aware(1.0),
        SchedulerConfig::space_only(),
    ] {
        let mut s = scheduler(config.clone(), prior(), 2, 1e3 * solo);
        // The default class arrives first with the tighter deadline.
        s.submit(Request::new(TenantId(0), 0, 0.0).with_slo_us(20.0 * solo), 1.0).unwrap();
        s.submit(Request::new(TenantId(1), 1, 1.0).with_priority(1), 1.0).unwrap();
        let d = s.next_bundle(1.0).unwrap().expect("work is waiting");
        assert_eq!(d.members[0].request, 1, "{:?}: the higher class leads", config.kind);
    }
    // One tenant, one request at a time: the higher class starts first
    // even when queued last.
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0).with_max_in_flight(1), prior(), 1, 1e3 * solo);
    for id in 0..3 {
        s.submit(Request::new(TenantId(0), id, 0.0).with_priority(if id == 2 { 3 } else { 0 }), 0.0).unwrap();
    }
    let order: Vec<u64> = drain(&mut s, 0.0, solo / 10.0).iter().map(|f| f.0).collect();
    assert_eq!(order, vec![2, 0, 1]);
}

#[test]
fn admission_refuses_the_lowest_class_first() {
    let solo = sim_solo_us();
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0), prior(), 4, 4.0 * solo);
    // Load the device with default-class work until admission refuses.
    let mut id = 0;
    let mut refused = false;
    'load: for _ in 0..32 {
        for t in 0..3 {
            match s.submit(Request::new(TenantId(t), id, 0.0), 0.0) {
                Ok(()) => {}
                Err(SchedError::Rejected { reason: RejectReason::SloUnreachable { .. }, .. }) => {
                    refused = true;
                    break 'load;
                }
                Err(e) => panic!("{e}"),
            }
            id += 1;
        }
    }
    assert!(refused, "the load must be beyond what admission accepts");
    // An idle tenant's default-class request is refused behind that work;
    // the same request in a higher class is admitted: the work ahead of it
    // is only its own.
    let low = s.submit(Request::new(TenantId(3), 1000, 0.0), 0.0);
    assert!(matches!(low, Err(SchedError::Rejected { reason: RejectReason::SloUnreachable { .. }, .. })), "{low:?}");
    s.submit(Request::new(TenantId(3), 1001, 0.0).with_priority(1), 0.0).expect("the higher class is admitted");
}

#[test]
fn a_request_objective_that_is_not_a_positive_finite_number_is_refused() {
    let mut s = scheduler(SchedulerConfig::slo_aware(1.0), prior(), 1, 1e6);
    for bad in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let err = s.submit(Request::new(TenantId(0), 7, 0.0).with_slo_us(bad), 0.0).unwrap_err();
        assert!(matches!(err, SchedError::InvalidRequest { request: 7, .. }), "{bad}: {err}");
        assert!(err.to_string().contains("slo_us"), "{err}");
    }
    assert_eq!(s.queue_len(TenantId(0)).unwrap(), 0);
}
