//! The engine on the interpreter: concurrent tenants get exactly their solo
//! results; unknown tenants, bad inputs and removed tenants are typed
//! errors; overload is rejected explicitly with bounded queues; a failed
//! launch fails only its requests and the engine keeps serving; weights
//! cross once and requests move only their inputs, outputs and launch words;
//! a bundle whose fused module is still compiling runs as its prepared
//! one-slot launches, so no compiler runs on the request path.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use weft::engine::{Backend, Engine, EngineConfig, EngineError, RequestError};
use weft::interp::Interpreter;
use weft::kir::{HostBuffer, Type};
use weft::lower::{lower, LowerOptions, Program};
use weft::pack::{
    Bundle, ExecError, Executor, Intercepted, Interceptor, InterpExecutor, LaunchArg, LaunchClass, Timing,
};

/// The program run alone on the interpreter: the oracle.
fn solo(program: &Arc<Program>, x: &[HostBuffer]) -> Vec<HostBuffer> {
    weft::pack::run_program(&mut InterpExecutor::default(), program.clone(), x, |_| {}).unwrap()
}

/// Bytes of `program`'s buffers of `kind`.
fn bytes_of(program: &Program, kind: weft::lower::BufferKind) -> u64 {
    program.buffers.values().filter(|b| b.kind == kind).map(|b| b.len() as u64 * b.elem.size_bytes()).sum()
}

/// Bytes of `program`'s graph inputs and outputs.
fn io_bytes(program: &Program) -> (u64, u64) {
    let size = |bs: &[weft::lower::Binding]| -> u64 {
        bs.iter()
            .map(|b| {
                let i = &program.buffers[b.buffer];
                i.len() as u64 * i.elem.size_bytes()
            })
            .sum()
    };
    (size(&program.inputs), size(&program.outputs))
}

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
    let ta = engine.register(a.clone(), SLO, 1.0).unwrap();
    let tb = engine.register(b.clone(), SLO, 1.0).unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        for (t, p) in [(ta, &a), (tb, &b)] {
            let x = input(p, i);
            pending.push((p.clone(), x.clone(), engine.submit(t, x).unwrap()));
        }
    }
    for (program, x, p) in pending {
        let response = p.wait().expect("request completes");
        let solo = solo(&program, &x);
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
    let t = engine.register(p.clone(), SLO, 1.0).unwrap();
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
    assert_eq!(done.outputs, solo(&p, &input(&p, 1)));
}

#[test]
fn overload_is_rejected_explicitly_with_bounded_queues() {
    let config = EngineConfig { max_queue: 4, ..EngineConfig::default() };
    let engine = Engine::new(Backend::Interp, config).unwrap();
    let p = resnet(4);
    let t = engine.register(p.clone(), SLO, 1.0).unwrap();
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

/// A request that admission control refuses on arrival, at an idle engine,
/// is answered: the loop delivers the refusal before it waits for more work.
#[test]
fn a_request_refused_on_arrival_is_answered_at_an_idle_engine() {
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    let p = resnet(5);
    // No request can meet a one-nanosecond objective: admission refuses each.
    let t = engine.register(p.clone(), Duration::from_nanos(1), 1.0).unwrap();
    for i in 0..3 {
        let pending = engine.submit(t, input(&p, i)).unwrap();
        let started = Instant::now();
        let answer = loop {
            if let Some(answer) = pending.try_wait() {
                break answer;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "request {i} was never answered");
            std::thread::sleep(Duration::from_millis(2));
        };
        assert!(matches!(answer, Err(RequestError::Rejected(_))), "request {i}: {:?}", answer.map(|r| r.latency));
    }
    let m = engine.metrics(t).unwrap();
    assert_eq!((m.submitted, m.rejected, m.completed, m.in_flight), (3, 3, 0, 0));
}

/// Fails every bundle that holds a kernel named `victim` (before it reaches
/// the device), and passes everything else through.
struct FailingLaunches {
    victim: String,
}

#[derive(Debug, thiserror::Error)]
#[error("injected launch failure")]
struct Injected;

impl Interceptor for FailingLaunches {
    fn name(&self) -> &str {
        "faulty"
    }
    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        if bundle.slots().iter().any(|s| s.kernel.name == self.victim) {
            return Err(ExecError::backend("faulty", Injected));
        }
        inner.launch(bundle, args)
    }
}

#[test]
fn a_failed_launch_fails_only_its_requests() {
    check_failed_launch(InterpExecutor::new(Interpreter::new()), "faulty-interp");
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

fn check_failed_launch<E: Executor + Send + 'static>(inner: E, name: &'static str) {
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
    let exec = Intercepted { inner, hooks: FailingLaunches { victim } };
    // One kernel at a time, so the two tenants' kernels never share a launch.
    let config = EngineConfig { policy: weft::sched::SchedulerConfig::time_only_fifo(), ..EngineConfig::default() };
    let engine = Engine::with_executor(exec, config);
    assert_eq!(engine.backend(), "faulty");
    let tg = engine.register(good.clone(), SLO, 1.0).unwrap();
    let tb = engine.register(bad.clone(), SLO, 1.0).unwrap();
    let g = engine.submit(tg, input(&good, 0)).unwrap();
    let b = engine.submit(tb, input(&bad, 0)).unwrap();
    assert!(matches!(b.wait(), Err(RequestError::Execution(m)) if m.to_string().contains("injected")));
    let served = g.wait().expect("the other tenant's request completes");
    let solo = solo(&good, &input(&good, 0));
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

/// Weights cross once per program, however many tenants use it; each request
/// moves exactly its inputs and outputs, plus the launches' slot tables and
/// argument words. Counted by the interpreter's executor, which sees every
/// byte it is given.
/// An index out of range fails only its request, as a bad-input error
/// naming the node, its indices input and the range; the tenant's next
/// request, in the same reused arena, gets the right values.
#[test]
fn an_index_out_of_range_fails_only_its_request() {
    use weft::graph::{DType, Graph, Op};
    let mut g = Graph::new("lookup");
    let table = g.add_input("table", DType::F32, vec![4, 2]);
    let ids = g.add_input("ids", DType::I64, vec![3]);
    let y = g.add_node("embed", Op::Gather { axis: 0 }, vec![Some(table), Some(ids)]).unwrap()[0];
    g.add_output(y);
    let p = Arc::new(lower(&g, &LowerOptions::default()).unwrap());
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    let t = engine.register(p, SLO, 1.0).unwrap();
    let table = HostBuffer::from_f32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let ids = |v: &[f64]| HostBuffer::from_f64(Type::I64, v);
    for bad in [4.0, -5.0] {
        match engine.submit(t, vec![table.clone(), ids(&[0.0, bad, 1.0])]).unwrap().wait() {
            Err(RequestError::Execution(e)) => {
                assert!(e.is_bad_input(), "{e}");
                let m = e.to_string();
                assert!(m.contains("`embed`") && m.contains("`ids`") && m.contains("[-4, 4)"), "{m}");
            }
            other => panic!("expected an index error, got {other:?}"),
        }
        let good = engine.submit(t, vec![table.clone(), ids(&[3.0, -4.0, -1.0])]).unwrap().wait().expect("in range");
        assert_eq!(good.outputs[0].to_f32_vec(), vec![6.0, 7.0, 0.0, 1.0, 6.0, 7.0]);
    }
    assert_eq!(engine.metrics(t).unwrap().failed, 2);
}

#[test]
fn weights_cross_once_and_requests_move_only_inputs_outputs_and_launch_words() {
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    let p = resnet(3);
    let weights = bytes_of(&p, weft::lower::BufferKind::Weight);
    assert!(weights > 100_000, "the model has real weights ({weights} B)");
    let t1 = engine.register(p.clone(), SLO, 1.0).unwrap();
    let after_one = engine.stats().executor;
    let t2 = engine.register(p.clone(), SLO, 1.0).unwrap();
    let registered = engine.stats().executor;
    assert_eq!(after_one.upload_bytes, weights, "registration uploads the weights, nothing else");
    assert_eq!(registered.upload_bytes, weights, "a second tenant of the same program uploads no weights");
    assert_eq!(engine.stats().weight_bytes, weights);

    let requests = 6u64;
    let pending: Vec<_> =
        (0..requests).map(|i| engine.submit(if i % 2 == 0 { t1 } else { t2 }, input(&p, i)).unwrap()).collect();
    for (i, r) in pending.into_iter().enumerate() {
        let out = r.wait().expect("request completes");
        assert_eq!(out.outputs, solo(&p, &input(&p, i as u64)), "arena reuse must not leak between requests");
    }
    let stats = engine.stats();
    let moved = stats.executor.since(&registered);
    let (inputs, outputs) = io_bytes(&p);
    assert_eq!(moved.upload_bytes, requests * inputs, "per request only the inputs are uploaded");
    assert_eq!(moved.download_bytes, requests * outputs, "per request only the outputs are downloaded");
    // Launch words: a 32-byte table row and one 8-byte word per parameter
    // for every slot of every launch.
    let per_request_words: u64 = p.steps.iter().map(|s| 32 + 8 * s.args.len() as u64).sum();
    assert_eq!(moved.launch_bytes, requests * per_request_words);
    assert_eq!(stats.serve.moved, moved, "the engine's own count agrees with the executor's");
    let per_request = (inputs + outputs + per_request_words) as f64;
    assert!((stats.bytes_per_request - per_request).abs() < 1e-6, "{} vs {per_request}", stats.bytes_per_request);
    assert!(stats.bytes_per_request < weights as f64 / 100.0, "requests move far less than the weights");
}

/// A slow compiler: one-slot classes are prepared at once (registration);
/// wider classes compile in the background and finish only when the test
/// opens `gate`. A launch of a class that is not prepared is refused, so the
/// test sees any compile the engine would do on the request path.
struct SlowCompiler {
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    prepared: Arc<Mutex<HashSet<LaunchClass>>>,
    /// When the first fused module became ready.
    ready_at: Arc<Mutex<Option<Instant>>>,
    /// Background compiles not finished yet.
    pending: Arc<AtomicUsize>,
    /// Classes compiled in the background, and launches of them.
    fused_classes: Arc<Mutex<HashSet<LaunchClass>>>,
    fused_launches: Arc<AtomicUsize>,
}

impl Interceptor for SlowCompiler {
    fn name(&self) -> &str {
        "slow-compiler"
    }
    fn prepare(
        &mut self,
        _inner: &mut dyn Executor,
        bundle: &Bundle,
    ) -> Result<Option<weft::codegen::ResourceReport>, ExecError> {
        assert_eq!(bundle.slots().len(), 1, "registration prepares one-slot bundles");
        self.prepared.lock().unwrap().insert(bundle.class().clone());
        Ok(None)
    }
    fn prepare_in_background(&mut self, _inner: &mut dyn Executor, bundle: &Bundle) -> Result<(), ExecError> {
        let (prepared, ready_at, pending, gate, class) = (
            self.prepared.clone(),
            self.ready_at.clone(),
            self.pending.clone(),
            self.gate.clone(),
            bundle.class().clone(),
        );
        self.fused_classes.lock().unwrap().insert(class.clone());
        pending.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let (open, opened) = &*gate;
            let mut is_open = open.lock().unwrap();
            while !*is_open {
                is_open = opened.wait(is_open).unwrap();
            }
            drop(is_open);
            prepared.lock().unwrap().insert(class);
            ready_at.lock().unwrap().get_or_insert_with(Instant::now);
            pending.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }
    fn is_prepared(&self, _inner: &dyn Executor, class: &LaunchClass) -> bool {
        self.prepared.lock().unwrap().contains(class)
    }
    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        if !self.prepared.lock().unwrap().contains(bundle.class()) {
            return Err(ExecError::Bundle { reason: "launched before its module was compiled".into() });
        }
        if self.fused_classes.lock().unwrap().contains(bundle.class()) {
            self.fused_launches.fetch_add(1, Ordering::SeqCst);
        }
        inner.launch(bundle, args)
    }
}

#[test]
fn requests_complete_while_a_fused_module_compiles_in_the_background() {
    let prepared = Arc::new(Mutex::new(HashSet::new()));
    let ready_at = Arc::new(Mutex::new(None));
    let pending = Arc::new(AtomicUsize::new(0));
    let fused_launches = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let hooks = SlowCompiler {
        gate: gate.clone(),
        prepared: prepared.clone(),
        ready_at: ready_at.clone(),
        pending: pending.clone(),
        fused_classes: Arc::new(Mutex::new(HashSet::new())),
        fused_launches: fused_launches.clone(),
    };
    let exec = Intercepted { inner: InterpExecutor::default(), hooks };
    // Greedy packing: every ready kernel that fits joins the bundle.
    let config = EngineConfig { policy: weft::sched::SchedulerConfig::packed_greedy(), ..EngineConfig::default() };
    let engine = Engine::with_executor(exec, config);
    // Tenants of one architecture share their classes (one body per layer),
    // so a bundle of them needs no new module; two architectures do.
    let small = resnet(4);
    let large =
        Arc::new(lower(&weft::graph::models::resnet18(8, 1, 48, 10).unwrap(), &LowerOptions::default()).unwrap());
    let models = [small.clone(), large.clone(), small, large];
    let tenants: Vec<_> = models.iter().map(|p| engine.register(p.clone(), SLO, 1.0).unwrap()).collect();
    let submit_all = |seed: u64| -> Vec<_> {
        tenants
            .iter()
            .zip(&models)
            .enumerate()
            .map(|(i, (&t, p))| engine.submit(t, input(p, seed + i as u64)).unwrap())
            .collect()
    };
    for (i, r) in submit_all(0).into_iter().enumerate() {
        let out = r.wait().expect("served while the fused module compiles");
        assert_eq!(out.outputs, solo(&models[i], &input(&models[i], i as u64)));
    }
    let first = engine.stats();
    println!("before the fused modules exist: {:?}", first.serve);
    assert!(first.serve.split_bundles > 0, "some bundle was wider than one slot: {:?}", first.serve);
    assert!(first.serve.background_prepares > 0);
    assert_eq!(ready_at.lock().unwrap().map(|_| ()), None, "the requests finished before any fused module existed");
    assert_eq!(first.request_path_compiles, 0);
    assert_eq!(fused_launches.load(Ordering::SeqCst), 0, "no background-compiled module ran before it existed");
    // The compiler finishes.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    // Once modules exist, bundles of their classes run fused. Arrival order
    // decides which classes form, so serve rounds until one repeats.
    let mut round = 1;
    loop {
        let deadline = Instant::now() + Duration::from_secs(60);
        while pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (i, r) in submit_all(100 * round).into_iter().enumerate() {
            let out = r.wait().expect("served");
            assert_eq!(out.outputs, solo(&models[i], &input(&models[i], 100 * round + i as u64)));
        }
        if fused_launches.load(Ordering::SeqCst) > 0 || round == 6 {
            break;
        }
        round += 1;
    }
    let later = engine.stats();
    assert!(fused_launches.load(Ordering::SeqCst) > 0, "a module compiled in the background was swapped in: {later:?}");
    assert!(later.serve.fused_bundles > first.serve.fused_bundles);
    assert_eq!(later.request_path_compiles, 0, "no compiler ran on the request path");
}

/// A sticky fault, as a device's illegal address leaves a CUDA context: the
/// first launch holding `victim` fails, and so does every launch after it
/// until the executor is rebuilt ([`Executor::recover`]).
struct StickyFault {
    victim: String,
    faulted: bool,
    injected: usize,
    recoveries: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("injected sticky fault: {0}")]
struct Sticky(&'static str);

impl Interceptor for StickyFault {
    fn name(&self) -> &str {
        "sticky"
    }

    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        if self.faulted {
            return Err(ExecError::backend("sticky", Sticky("the context is lost")));
        }
        if self.injected == 0 && bundle.slots().iter().any(|s| s.kernel.name == self.victim) {
            self.injected += 1;
            self.faulted = true;
            return Err(ExecError::backend("sticky", Sticky("illegal address")));
        }
        inner.launch(bundle, args)
    }

    fn is_faulted(&self, _inner: &dyn Executor) -> bool {
        self.faulted
    }

    fn recover(&mut self, inner: &mut dyn Executor) -> Result<(), ExecError> {
        self.faulted = false;
        self.recoveries += 1;
        inner.recover()
    }
}

/// After a sticky fault the loop rebuilds the executor (every buffer lost),
/// restores weights, arenas and modules, and restarts the requests that
/// were in flight: only the faulting launch's request fails, every other
/// request completes with exactly its solo result.
#[test]
fn a_sticky_fault_fails_only_its_launch_and_service_recovers() {
    let good = resnet(8);
    let graph = weft::graph::models::resnet18(9, 1, 64, 10).unwrap();
    let bad = Arc::new(lower(&graph, &LowerOptions::default()).unwrap());
    let victim = bad
        .steps
        .iter()
        .rev()
        .map(|s| s.kernel.name.clone())
        .find(|name| good.steps.iter().all(|g| &g.kernel.name != name))
        .expect("a 64x64 ResNet has kernels a 32x32 one lacks");
    let exec = Intercepted {
        inner: InterpExecutor::new(Interpreter::new()),
        hooks: StickyFault { victim, faulted: false, injected: 0, recoveries: 0 },
    };
    // One kernel per launch, so the faulting launch holds only the victim.
    let config = EngineConfig { policy: weft::sched::SchedulerConfig::time_only_fifo(), ..EngineConfig::default() };
    let engine = Engine::with_executor(exec, config);
    let tg = engine.register(good.clone(), SLO, 1.0).unwrap();
    let tb = engine.register(bad.clone(), SLO, 1.0).unwrap();
    let b = engine.submit(tb, input(&bad, 0)).unwrap();
    let g: Vec<_> = (0..3).map(|i| engine.submit(tg, input(&good, i)).unwrap()).collect();
    match b.wait() {
        Err(RequestError::Execution(e)) => assert!(e.to_string().contains("illegal address"), "{e}"),
        other => panic!("the faulting request must fail, got {:?}", other.map(|r| r.latency)),
    }
    for (i, p) in g.into_iter().enumerate() {
        let served = p.wait().unwrap_or_else(|e| panic!("request {i} of the other tenant failed: {e}"));
        assert_eq!(served.outputs, solo(&good, &input(&good, i as u64)), "request {i}");
    }
    let stats = engine.stats();
    assert_eq!(stats.serve.recoveries, 1, "{stats:?}");
    // Both tenants are served after the recovery, the faulty one included.
    let again = engine.submit(tb, input(&bad, 1)).unwrap().wait().expect("served after recovery");
    assert_eq!(again.outputs, solo(&bad, &input(&bad, 1)));
    assert!(engine.submit(tg, input(&good, 5)).unwrap().wait().is_ok());
}
