//! One engine over several devices (the simulator, weft_sim: simulator
//! figures): tenants are spread by predicted load, every request of a
//! tenant runs on its tenant's device, removal frees the device's share,
//! and per-request deadlines and priority classes reach the scheduler.

use std::sync::Arc;
use std::time::Duration;

use weft::engine::{Engine, EngineConfig, EngineError, SubmitOptions, Tenant};
use weft::graph::{builder::GraphBuilder, DType};
use weft::kir::{HostBuffer, Target};
use weft::lower::{lower, LowerOptions, Program};
use weft::sim::{SimGpu, SimSpec};

fn model(width: usize) -> Arc<Program> {
    let mut g = GraphBuilder::new("mlp");
    let x = g.input("x", DType::F32, &[4, width]);
    let w = g.random_constant("w", &[width, width], 0.1);
    let y = g.matmul(x, w).unwrap();
    let y = g.relu(y).unwrap();
    g.output(y);
    Arc::new(lower(&g.finish(), &LowerOptions::default()).unwrap())
}

fn input(width: usize) -> Vec<HostBuffer> {
    vec![HostBuffer::from_f32(&(0..4 * width).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>())]
}

fn sims(n: usize) -> Vec<SimGpu> {
    (0..n).map(|d| SimGpu::new(Target::sm_90(), SimSpec::h100_like(), d as u64)).collect()
}

/// Waits until the engine holds `n` tenants (removed ones leave once drained).
fn settle(engine: &Engine, n: usize) {
    for _ in 0..500 {
        if engine.stats().tenants == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the engine still holds {} tenants, not {n}", engine.stats().tenants);
}

#[test]
fn load_spreads_and_each_tenant_s_requests_run_on_its_device() {
    for devices in [2usize, 3, 8] {
        let engine = Engine::with_executors(sims(devices), EngineConfig::default());
        assert_eq!(engine.devices(), devices);
        let programs = [model(32), model(64)];
        let mut tenants: Vec<(Tenant, usize)> = Vec::new();
        for i in 0..2 * devices {
            // Unequal demands: two sizes, objectives 100 to 400 ms.
            let slo = Duration::from_millis(100 * (1 + (i % 4) as u64));
            let which = i % 2;
            tenants.push((engine.register(programs[which].clone(), slo, 1.0).unwrap(), which));
        }
        let stats = engine.stats();
        assert_eq!(stats.devices.len(), devices);
        let loads: Vec<f64> = stats.devices.iter().map(|d| d.load).collect();
        let total: f64 = loads.iter().sum();
        // Each tenant's demand, as a one-device engine places it.
        let max_demand = (0..2 * devices)
            .map(|i| {
                let alone = Engine::with_executors(sims(1), EngineConfig::default());
                let slo = Duration::from_millis(100 * (1 + (i % 4) as u64));
                alone.register(programs[i % 2].clone(), slo, 1.0).unwrap();
                alone.stats().devices[0].load
            })
            .fold(0.0, f64::max);
        assert!(total > 0.0 && max_demand > 0.0, "{loads:?}");
        // Greedy least-load placement: within one tenant's demand of the mean.
        for d in &stats.devices {
            assert!(!d.tenants.is_empty(), "{devices} devices: device {} got no tenant: {loads:?}", d.device);
            assert!(d.load <= total / devices as f64 + max_demand + 1e-12, "{loads:?}, largest demand {max_demand}");
        }
        // Every request runs on its tenant's device.
        let mut pending = Vec::new();
        for &(t, which) in &tenants {
            for _ in 0..3 {
                let width = if which == 0 { 32 } else { 64 };
                pending.push((t, engine.submit(t, input(width)).unwrap()));
            }
        }
        for (t, p) in pending {
            let r = p.wait().unwrap();
            assert_eq!(r.device, engine.device_of(t).unwrap());
        }
        let stats = engine.stats();
        for d in &stats.devices {
            assert_eq!(d.stats.serve.completed, 3 * d.tenants.len() as u64, "device {}", d.device);
            assert!(d.stats.serve.bundles > 0);
        }
        assert_eq!(stats.serve.completed, 3 * tenants.len() as u64);
    }
}

#[test]
fn removing_a_tenant_frees_its_device_s_share() {
    let engine = Engine::with_executors(sims(4), EngineConfig::default());
    let program = model(32);
    let tenants: Vec<Tenant> =
        (0..8).map(|_| engine.register(program.clone(), Duration::from_millis(2), 1.0).unwrap()).collect();
    let before = engine.stats();
    assert!(before.devices.iter().all(|d| d.tenants.len() == 2), "{:?}", before.devices);
    let victim = tenants[5];
    let device = engine.device_of(victim).unwrap();
    engine.remove(victim).unwrap();
    settle(&engine, 7);
    let after = engine.stats();
    assert!(after.devices[device].load < before.devices[device].load);
    assert_eq!(after.devices[device].tenants.len(), 1);
    let newcomer = engine.register(program.clone(), Duration::from_millis(2), 1.0).unwrap();
    assert_eq!(engine.device_of(newcomer).unwrap(), device, "the freed share takes the next tenant");
    assert!(matches!(engine.device_of(victim), Err(EngineError::TenantRemoved(_))));
}

#[test]
fn a_request_s_own_deadline_decides_its_met_slo_and_a_zero_deadline_is_refused() {
    let engine = Engine::with_executors(sims(1), EngineConfig::default());
    let t = engine.register(model(32), Duration::from_secs(10), 1.0).unwrap();
    let loose = engine.submit(t, input(32)).unwrap().wait().unwrap();
    assert!(loose.met_slo);
    // A deadline of 1 µs cannot be met on a wall clock: admission refuses
    // it or it completes late; either way it is judged by its own deadline.
    let tight = SubmitOptions { deadline: Some(Duration::from_micros(1)), priority: 3 };
    match engine.submit_with(t, input(32), tight).unwrap().wait() {
        Ok(r) => assert!(!r.met_slo, "{:?}", r.latency),
        Err(weft::RequestError::Rejected(why)) => assert!(why.contains("1.0 µs"), "{why}"),
        Err(e) => panic!("{e}"),
    }
    let zero = SubmitOptions { deadline: Some(Duration::ZERO), priority: 0 };
    let err = engine.submit_with(t, input(32), zero).err().expect("a zero deadline is refused");
    assert!(matches!(err, EngineError::InvalidRequest { .. }), "{err}");
}

#[test]
fn the_engine_publishes_predicted_and_measured_bundle_time_and_busy_fraction() {
    let engine = Engine::with_executors(sims(2), EngineConfig::default());
    let t = engine.register(model(64), Duration::from_secs(1), 1.0).unwrap();
    for _ in 0..5 {
        engine.submit(t, input(64)).unwrap().wait().unwrap();
    }
    let s = engine.stats();
    // One tenant, one request at a time here: every bundle is one slot and
    // runs as predicted, so every bundle carries a prediction.
    assert_eq!(s.serve.predicted_bundles, s.serve.bundles);
    assert!(s.serve.predicted_us > 0.0 && s.serve.predicted_measured_us > 0.0, "{:?}", s.serve);
    assert_eq!(s.serve.predicted_measured_us, s.serve.busy_us);
    assert!(s.serve.registration_prepares > 0);
    let d = engine.device_of(t).unwrap();
    assert!(s.devices[d].stats.busy_fraction > 0.0);
    assert_eq!(s.devices[1 - d].stats.serve.bundles, 0, "the idle device ran nothing");
}

#[test]
fn zero_devices_is_an_error() {
    let config = EngineConfig { devices: Some(0), ..EngineConfig::default() };
    let err = Engine::new(weft::Backend::Interp, config).err().expect("zero devices is refused");
    assert!(matches!(err, EngineError::Devices { devices: 0, .. }), "{err}");
}
