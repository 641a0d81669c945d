//! The engine on the interpreter: concurrent tenants get exactly their solo
//! results; unknown tenants, bad inputs and removed tenants are typed
//! errors; overload is rejected explicitly with bounded queues; a failed
//! launch fails only its requests and the engine keeps serving.

use std::sync::Arc;
use std::time::Duration;

use weft::engine::{Backend, Engine, EngineConfig, EngineError, RequestError};
use weft::interp::Interpreter;
use weft::kir::{ArgValue, HostBuffer, Type};
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{Bundle, BundleExecutor};

fn resnet(seed: u64) -> Arc<Program> {
    let graph = weft::graph::models::resnet18(seed, 1, 32, 10).expect("resnet18 builds");
    Arc::new(lower(&graph, &LowerOptions::default()).expect("resnet18 lowers"))
}

fn input(program: &Program, seed: u64) -> Vec<HostBuffer> {
    program
        .inputs
        .iter()
        .map(|b| {
            let info = &program.buffers[b.buffer];
            let v: Vec<f64> =
                (0..info.len()).map(|i| (((i as u64 * 7919 + seed * 104729) % 2000) as f64) / 1000.0 - 1.0).collect();
            HostBuffer::from_f64(info.elem, &v)
        })
        .collect()
}

const SLO: Duration = Duration::from_secs(600);

#[test]
fn concurrent_tenants_get_exactly_their_solo_results() {
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    assert_eq!(engine.backend(), "interp");
    let (a, b) = (resnet(1), resnet(2));
    let ta = engine.register(a.clone(), SLO, 1.0);
    let tb = engine.register(b.clone(), SLO, 1.0);
    let mut pending = Vec::new();
    for i in 0..3 {
        for (t, p) in [(ta, &a), (tb, &b)] {
            let x = input(p, i);
            pending.push((p.clone(), x.clone(), engine.submit(t, x).unwrap()));
        }
    }
    for (program, x, p) in pending {
        let response = p.wait().expect("request completes");
        let solo = program.run(&Interpreter::new(), &x).unwrap();
        assert_eq!(response.outputs, solo, "packed result must equal the solo run bit for bit");
        assert!(response.met_slo);
    }
    let m = engine.metrics(ta).unwrap();
    assert_eq!((m.submitted, m.completed, m.failed, m.in_flight), (3, 3, 0, 0));
    assert!(m.p50.is_some() && m.p99 >= m.p50);
    assert!((engine.fairness() - 1.0).abs() < 1e-9);
}

#[test]
fn bad_requests_are_typed_errors_and_removal_keeps_admitted_requests() {
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    let p = resnet(3);
    let t = engine.register(p.clone(), SLO, 1.0);
    assert!(matches!(engine.submit(weft::engine::Tenant(99), input(&p, 0)), Err(EngineError::UnknownTenant(_))));
    assert!(matches!(engine.submit(t, vec![]), Err(EngineError::InputCount { .. })));
    let wrong = vec![HostBuffer::zeros(Type::F32, 7)];
    match engine.submit(t, wrong) {
        Err(e @ EngineError::Input { .. }) => assert!(e.to_string().contains("expects"), "{e}"),
        other => panic!("expected an input error, got {:?}", other.map(|_| ())),
    }
    let in_flight = engine.submit(t, input(&p, 1)).unwrap();
    engine.remove(t).unwrap();
    assert!(matches!(engine.submit(t, input(&p, 2)), Err(EngineError::TenantRemoved(_))));
    let done = in_flight.wait().expect("a request admitted before removal completes");
    assert_eq!(done.outputs, p.run(&Interpreter::new(), &input(&p, 1)).unwrap());
}

#[test]
fn overload_is_rejected_explicitly_with_bounded_queues() {
    let config = EngineConfig { max_queue: 4, ..EngineConfig::default() };
    let engine = Engine::new(Backend::Interp, config).unwrap();
    let p = resnet(4);
    let t = engine.register(p.clone(), SLO, 1.0);
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for i in 0..200 {
        match engine.submit(t, input(&p, i)) {
            Ok(pending) => accepted.push(pending),
            Err(EngineError::Rejected { reason, .. }) => {
                assert!(reason.contains("queue") || reason.contains("SLO"), "{reason}");
                rejected += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(engine.metrics(t).unwrap().in_flight <= 4, "the queue must stay bounded");
    }
    assert!(rejected > 150, "far past capacity most requests are rejected, got {rejected}");
    // Admission control may still turn an accepted request away (its SLO is
    // unreachable at this load); every other accepted request completes.
    let mut completed = 0;
    for p in accepted {
        match p.wait() {
            Ok(_) => completed += 1,
            Err(RequestError::Rejected(_)) => rejected += 1,
            Err(e) => panic!("unexpected failure {e}"),
        }
    }
    let m = engine.metrics(t).unwrap();
    assert_eq!((m.submitted, m.rejected, m.completed), (200, rejected, completed));
}

/// Fails every bundle that holds a kernel named `victim` (before it reaches
/// the device), and passes the others to `inner`.
struct FailingLaunches<E> {
    inner: E,
    victim: String,
}

#[derive(Debug, thiserror::Error)]
#[error("injected launch failure")]
struct Injected;

impl<E: BundleExecutor> BundleExecutor for FailingLaunches<E> {
    type Error = Injected;

    fn name(&self) -> &str {
        "faulty"
    }

    fn execute_bundle(&self, bundle: &Bundle, args: &mut [Vec<ArgValue>]) -> Result<(), Injected> {
        if bundle.slots.iter().any(|s| s.kernel.name == self.victim) {
            return Err(Injected);
        }
        self.inner.execute_bundle(bundle, args).map_err(|_| Injected)
    }
}

#[test]
fn a_failed_launch_fails_only_its_requests() {
    check_failed_launch(Interpreter::new(), "faulty-interp");
}

/// The same on the GPU, where one is present: the other tenant's requests
/// complete on CUDA and match the interpreter's solo run closely.
#[test]
fn a_failed_launch_fails_only_its_requests_on_the_gpu() {
    let Some(_) = weft::cuda::require_gpu_or_skip("a_failed_launch_fails_only_its_requests_on_the_gpu") else {
        return;
    };
    let gpu = weft::gpu::GpuExecutor::new().expect("a GPU was found, so the executor starts");
    check_failed_launch(gpu, "faulty-cuda");
}

fn check_failed_launch<E: BundleExecutor + Send + 'static>(inner: E, name: &'static str) {
    let good = resnet(5);
    // A tenant of a different model whose kernels the injector fails.
    let graph = weft::graph::models::resnet18(6, 1, 64, 10).unwrap();
    let bad = Arc::new(lower(&graph, &LowerOptions::default()).unwrap());
    let victim = bad
        .steps
        .iter()
        .map(|s| s.kernel.name.clone())
        .find(|name| good.steps.iter().all(|g| &g.kernel.name != name))
        .expect("a 64x64 ResNet has kernels a 32x32 one lacks");
    let exec = FailingLaunches { inner, victim };
    // One kernel at a time, so the two tenants' kernels never share a launch.
    let config = EngineConfig { policy: weft::sched::SchedulerConfig::time_only_fifo(), ..EngineConfig::default() };
    let engine = Engine::with_executor(exec, name, config);
    let tg = engine.register(good.clone(), SLO, 1.0);
    let tb = engine.register(bad.clone(), SLO, 1.0);
    let g = engine.submit(tg, input(&good, 0)).unwrap();
    let b = engine.submit(tb, input(&bad, 0)).unwrap();
    assert!(matches!(b.wait(), Err(RequestError::Execution(m)) if m.contains("injected")));
    let served = g.wait().expect("the other tenant's request completes");
    let solo = good.run(&Interpreter::new(), &input(&good, 0)).unwrap();
    if name == "faulty-interp" {
        assert_eq!(served.outputs, solo, "on the interpreter the packed result is the solo result bit for bit");
    }
    for (a, b) in served.outputs.iter().zip(&solo) {
        let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
        let diff: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
        let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-30);
        // Bit-exact on the interpreter; the GPU's math functions differ in the last bits.
        assert!(diff / norm <= 1e-5, "rel L2 {}", diff / norm);
    }
    // The engine recovers: later requests are served.
    let again = engine.submit(tg, input(&good, 1)).unwrap();
    assert!(again.wait().is_ok());
    assert_eq!(engine.metrics(tb).unwrap().failed, 1);
}
