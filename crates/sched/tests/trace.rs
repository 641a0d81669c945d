//! Workload traces: JSON round trips and replays.

use weft_sched::{Arrivals, Trace, TraceTenant, TRACE_FORMAT, TRACE_VERSION};

fn tenants() -> Vec<(TraceTenant, Arrivals)> {
    vec![
        (
            TraceTenant { name: "r18".into(), model: "resnet18".into(), slo_us: 1500.0, weight: 1.0 },
            Arrivals::Poisson { rate_per_s: 800.0 },
        ),
        (
            TraceTenant { name: "lm".into(), model: "minilm".into(), slo_us: 900.5, weight: 2.0 },
            Arrivals::OnOff { rate_per_s: 500.0, on_us: 3000.0, off_us: 9000.0 },
        ),
    ]
}

#[test]
fn traces_round_trip_through_json_and_files() {
    let trace = Trace::generate(&tenants(), 200_000.0, 42);
    assert_eq!((trace.format.as_str(), trace.version), (TRACE_FORMAT, TRACE_VERSION));
    assert!(trace.arrivals.len() > 100);
    let json = trace.to_json().unwrap();
    assert!(
        json.contains("\"arrivals\":[[0,") || json.contains("\"arrivals\":[[1,"),
        "{}",
        &json[..200.min(json.len())]
    );
    assert_eq!(Trace::from_json(&json).unwrap(), trace);
    let path = std::env::temp_dir().join(format!("weft-sched-trace-{}.json", std::process::id()));
    trace.save(&path).unwrap();
    let loaded = Trace::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded, trace);
}

#[test]
fn generation_is_deterministic_per_seed_and_tenant() {
    let a = Trace::generate(&tenants(), 100_000.0, 1);
    assert_eq!(a, Trace::generate(&tenants(), 100_000.0, 1));
    assert_ne!(a, Trace::generate(&tenants(), 100_000.0, 2));
    // Tenant 0's stream does not depend on tenant 1 being there.
    let alone = Trace::generate(&tenants()[..1], 100_000.0, 1);
    let mine: Vec<f64> = a.arrivals.iter().filter(|x| x.0 == 0).map(|x| x.1).collect();
    let alone: Vec<f64> = alone.arrivals.iter().map(|x| x.1).collect();
    assert_eq!(mine, alone);
}
