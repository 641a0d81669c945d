//! The watchdog: a launch that never finishes is declared hung, its request
//! fails with a typed error naming the launch, the executor is rebuilt, and
//! every other tenant's requests complete with their exact results.
//!
//! Runs on the interpreter and the cpu executor (wall clock: the hung kernel
//! really runs until it is stopped) and on the simulator (simulated time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_kir::{Access, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Target, Type};
use weft_lower::{Binding, BufferInfo, BufferKind, Program, Step};
use weft_pack::{run_program, Executor, InterpExecutor, TenantId};
use weft_predict::RooflinePrior;
use weft_sched::{Event, Request, Scheduler, SchedulerConfig, ServeError, Server, TenantSpec, WallClock, Watchdog};

/// A program of one kernel: `params[i]` bound to buffer `i`, of `kinds[i]`;
/// inputs are the `Input` buffers, the output is the last buffer.
fn one_kernel_program(kernel: KernelDef, kinds: &[BufferKind]) -> Arc<Program> {
    let mut p = Program { name: kernel.name.clone(), ..Program::default() };
    let mut args = Vec::new();
    for ((_, param), kind) in kernel.params.iter().zip(kinds) {
        let (elem, len) = match param.kind {
            weft_kir::ParamKind::Buffer { elem, len, .. } => (elem, len as usize),
            weft_kir::ParamKind::Scalar { ty } => (ty, 1),
        };
        let b = p.buffers.push(BufferInfo { name: param.name.clone(), elem, shape: vec![len], kind: *kind });
        if *kind == BufferKind::Input {
            p.inputs.push(Binding { name: param.name.clone(), buffer: b, shape: vec![len] });
        }
        args.push(b);
    }
    let last = *args.last().expect("a parameter");
    let len = p.buffers[last].shape.clone();
    p.outputs.push(Binding { name: "out".into(), buffer: last, shape: len });
    p.steps.push(Step { kernel: Arc::new(kernel.clone()), args, nodes: vec![kernel.name.clone()] });
    Arc::new(p)
}

/// `x[t] = n[0]` counted one by one: a loop whose trip count is the
/// request's input, so `n[0] = i64::MAX` never finishes.
fn spin() -> Arc<Program> {
    one_kernel_program(weft_kernels::spin(), &[BufferKind::Input, BufferKind::Activation])
}

/// `y = x * 1.5 + 0.25`, elementwise over 64.
fn affine() -> Arc<Program> {
    let mut b = KernelBuilder::new("affine", LaunchShape::linear(2, 32));
    let x = b.buffer("x", Type::F32, 64, Access::Read);
    let y = b.buffer("y", Type::F32, 64, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let v = b.load(x, i);
    let a = b.const_f32(1.5);
    let c = b.const_f32(0.25);
    let v = b.fma(v, a, c);
    b.store(y, i, v);
    one_kernel_program(b.finish(), &[BufferKind::Input, BufferKind::Activation])
}

/// The spin kernel's input: its trip count.
fn trips(n: i64) -> HostBuffer {
    HostBuffer::from_bytes(Type::I64, n.to_le_bytes().to_vec()).expect("one i64")
}

fn affine_input(seed: u64) -> HostBuffer {
    HostBuffer::from_f32(&(0..64).map(|i| (i as f32 - 20.0) * 0.37 + seed as f32).collect::<Vec<_>>())
}

fn spec(id: u32, name: &str, program: Arc<Program>) -> TenantSpec {
    TenantSpec { id: TenantId(id), name: name.into(), program, slo_us: 1e9, weight: 1.0 }
}

/// Serves `affine` requests around one `spin` request that never ends on
/// `exec`, then more of both after recovery; checks every outcome against
/// solo runs on `fresh()` executors.
fn a_hung_launch_fails_alone(exec: &mut dyn Executor, fresh: &dyn Fn() -> Box<dyn Executor>) {
    let bound = Duration::from_millis(300);
    let (spin, affine) = (spin(), affine());
    let mut scheduler =
        Scheduler::new(SchedulerConfig::time_only_fifo(), Target::sm_90(), Box::new(RooflinePrior::new()));
    let mut server = Server::new(&mut scheduler, exec).expect("server");
    server.register(spec(0, "spin", spin.clone())).expect("spin registers");
    server.register(spec(1, "affine", affine.clone())).expect("affine registers");
    let us = bound.as_secs_f64() * 1e6;
    server.set_watchdog(Some(Watchdog { factor: 1.0, floor_us: us, ceiling_us: us }));

    let mut clock = WallClock::new();
    let mut events = Vec::new();
    type Sent = Vec<(Request, Arc<Vec<HostBuffer>>, Instant)>;
    let mut submitted: Sent = Vec::new();
    fn submit(
        sent: &mut Sent,
        server: &mut Server,
        clock: &mut WallClock,
        events: &mut Vec<Event>,
        tenant: u32,
        input: HostBuffer,
    ) {
        let id = sent.len() as u64;
        let request = Request::new(TenantId(tenant), id, weft_sched::Clock::now_us(clock));
        let inputs = Arc::new(vec![input]);
        server.submit(request, inputs.clone(), request.arrival_us, events);
        sent.push((request, inputs, Instant::now()));
    }
    let hung_n = trips(i64::MAX);
    for s in 0..3 {
        submit(&mut submitted, &mut server, &mut clock, &mut events, 1, affine_input(s));
    }
    submit(&mut submitted, &mut server, &mut clock, &mut events, 0, hung_n);
    for s in 3..6 {
        submit(&mut submitted, &mut server, &mut clock, &mut events, 1, affine_input(s));
    }
    let began = Instant::now();
    let mut done: Vec<(Event, Instant)> = Vec::new();
    while done.len() + events.len() < submitted.len() {
        assert!(began.elapsed() < Duration::from_secs(120), "serving stalled: {} events", done.len());
        server.step(&mut clock, &mut events);
        done.extend(events.drain(..).map(|e| (e, Instant::now())));
    }
    done.extend(events.drain(..).map(|e| (e, Instant::now())));
    assert_eq!(server.stats().hung_launches, 1, "{:?}", server.stats());
    assert_eq!(server.stats().recoveries, 1, "{:?}", server.stats());

    // After recovery both tenants are served again: a finite spin and more affine.
    let finite = trips(1000);
    submit(&mut submitted, &mut server, &mut clock, &mut events, 0, finite);
    submit(&mut submitted, &mut server, &mut clock, &mut events, 1, affine_input(9));
    let began = Instant::now();
    while done.len() + events.len() < submitted.len() {
        assert!(began.elapsed() < Duration::from_secs(120), "serving stalled after recovery");
        server.step(&mut clock, &mut events);
    }
    done.extend(events.drain(..).map(|e| (e, Instant::now())));
    assert_eq!(server.stats().recoveries, 1, "no second fault: {:?}", server.stats());
    server.shutdown();

    assert_eq!(done.len(), submitted.len());
    for (event, at) in done {
        match event {
            Event::Failed { request, error } => {
                let (_, _, sent) = &submitted[request.id as usize];
                assert_eq!(request.id, 3, "only the hung request fails, not {request:?}: {error}");
                assert!(error.is_hung(), "{error}");
                assert!(matches!(&*error, ServeError::Run(_)), "{error:?}");
                let text = error.to_string();
                assert!(text.contains("spin") && text.contains("tenant 0"), "names the launch: {text}");
                let took = at.duration_since(*sent);
                assert!(took >= bound, "declared hung after {took:?}, before the bound {bound:?}");
                assert!(took < bound + Duration::from_secs(10), "declared hung after {took:?}, bound {bound:?}");
            }
            Event::Completed { request, outputs, .. } => {
                let (_, inputs, _) = &submitted[request.id as usize];
                let program = if request.tenant == TenantId(0) { spin.clone() } else { affine.clone() };
                let mut solo = fresh();
                let want = run_program(&mut *solo, program, inputs, |_| {}).expect("solo run");
                assert_eq!(outputs, want, "request {} differs from its solo run", request.id);
                if request.tenant == TenantId(0) {
                    assert_eq!(outputs[0].to_f32_vec(), vec![1000.0; 32]);
                }
            }
            Event::Rejected { request, error } => panic!("request {request:?} rejected: {error}"),
        }
    }
}

#[test]
fn interpreter_a_hung_launch_fails_alone_and_service_recovers() {
    let mut exec = InterpExecutor::default();
    a_hung_launch_fails_alone(&mut exec, &|| Box::new(InterpExecutor::default()));
}

#[test]
fn cpu_a_hung_launch_fails_alone_and_service_recovers() {
    if !weft_cpu::require_host_compiler_or_skip("cpu_a_hung_launch_fails_alone_and_service_recovers") {
        return;
    }
    let mut exec = weft_cpu::CpuExecutor::fast();
    a_hung_launch_fails_alone(&mut exec, &|| Box::new(weft_cpu::CpuExecutor::fast()));
}

/// Whether `err`'s chain holds the executor's `ExecError::Hung`.
fn hung(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(err);
    while let Some(x) = e {
        let exec =
            x.downcast_ref::<weft_pack::ExecError>().or(x.downcast_ref::<Box<weft_pack::ExecError>>().map(|b| &**b));
        if exec.is_some_and(|x| x.is_hung()) {
            return true;
        }
        e = x.source();
    }
    false
}

#[test]
fn cpu_checking_mode_stops_a_hung_launch_too() {
    // The checking mode also runs each launch in the sanitized runner (a
    // child process), which gets the same deadline.
    if !weft_cpu::require_host_compiler_or_skip("cpu_checking_mode_stops_a_hung_launch_too") {
        return;
    }
    let program = spin();
    let mut exec = weft_cpu::CpuExecutor::checking(3);
    // A short run first compiles the kernel, so the bound below times the
    // hung launch and its stop, not a cold host compiler on a loaded machine.
    let out = run_program(&mut exec, program.clone(), &[trips(3)], |_| {}).expect("a short spin runs");
    assert_eq!(out[0].to_f32_vec(), vec![3.0; 32]);
    exec.set_launch_limit(Some(Duration::from_millis(200)));
    let began = Instant::now();
    let err = run_program(&mut exec, program.clone(), &[trips(i64::MAX)], |_| {}).unwrap_err();
    assert!(hung(&err), "{err}");
    assert!(began.elapsed() < Duration::from_secs(30), "{:?}", began.elapsed());
    assert!(exec.is_faulted());
    exec.recover().expect("recovers");
    assert!(!exec.is_faulted());
    let out = run_program(&mut exec, program, &[trips(7)], |_| {}).expect("runs after recovery");
    assert_eq!(out[0].to_f32_vec(), vec![7.0; 32]);
}

#[test]
fn simulator_a_launch_past_the_bound_is_hung() {
    // Two one-kernel tenants far apart in simulated time; a ceiling between
    // them declares the slow one's launches hung and lets the fast one's run.
    let slow = weft_kernels::sgemm(2048, 2048, 2048, Default::default());
    let fast = weft_kernels::vector_add(1024);
    let mut probe = weft_sim::SimGpu::new(Target::sm_90(), weft_sim::SimSpec::h100_like(), 1);
    let t_slow = probe.run_kernel_solo(&Arc::new(slow.clone())).expect("runs").total_us;
    let t_fast = probe.run_kernel_solo(&Arc::new(fast.clone())).expect("runs").total_us;
    assert!(t_slow > 20.0 * t_fast, "{t_slow} vs {t_fast}");
    let ceiling = (t_slow * t_fast).sqrt();
    let inputs = |k: &KernelDef| {
        let mut kinds = vec![BufferKind::Input; k.params.len()];
        *kinds.last_mut().expect("params") = BufferKind::Activation;
        kinds
    };
    let slow = one_kernel_program(slow.clone(), &inputs(&slow));
    let fast = one_kernel_program(fast.clone(), &inputs(&fast));
    let mut sim = weft_sim::SimGpu::new(Target::sm_90(), weft_sim::SimSpec::h100_like(), 2);
    let mut scheduler =
        Scheduler::new(SchedulerConfig::time_only_fifo(), Target::sm_90(), Box::new(RooflinePrior::new()));
    let mut server = Server::new(&mut scheduler, &mut sim).expect("server");
    server.register(spec(0, "slow", slow.clone())).expect("registers");
    server.register(spec(1, "fast", fast.clone())).expect("registers");
    server.set_watchdog(Some(Watchdog { factor: 1.0, floor_us: ceiling, ceiling_us: ceiling }));
    let mut clock = weft_sched::SimClock::default();
    let mut events = Vec::new();
    let zeros = |p: &Program| {
        Arc::new(
            p.inputs.iter().map(|b| HostBuffer::zeros(p.buffers[b.buffer].elem, p.buffers[b.buffer].len())).collect(),
        )
    };
    let order = [1u32, 0, 1, 1];
    for (id, &t) in order.iter().enumerate() {
        let p = if t == 0 { &slow } else { &fast };
        server.submit(Request::new(TenantId(t), id as u64, 0.0), zeros(p), 0.0, &mut events);
    }
    for _ in 0..100 {
        if !server.step(&mut clock, &mut events) {
            break;
        }
    }
    let stats = *server.stats();
    assert_eq!((stats.hung_launches, stats.recoveries, stats.failed, stats.completed), (1, 1, 1, 3), "{stats:?}");
    for e in &events {
        if let Event::Failed { request, error } = e {
            assert_eq!(request.tenant, TenantId(0));
            assert!(error.is_hung() && error.to_string().contains("sgemm"), "{error}");
        }
    }
}

#[test]
fn the_bound_is_a_multiple_of_the_prediction_between_floor_and_ceiling() {
    let w = Watchdog { factor: 10.0, floor_us: 1_000.0, ceiling_us: 50_000.0 };
    assert_eq!(w.bound_us(Some(20.0)), 1_000.0, "below the floor");
    assert_eq!(w.bound_us(Some(300.0)), 3_000.0, "ten times the prediction");
    assert_eq!(w.bound_us(Some(1e9)), 50_000.0, "capped by the ceiling");
    assert_eq!(w.bound_us(None), 50_000.0, "no prediction: the ceiling");
    assert_eq!(w.bound_us(Some(f64::NAN)), 50_000.0);
    assert_eq!(w.bound(Some(300.0)), Duration::from_millis(3));
    let d = Watchdog::default();
    assert!(d.floor_us <= d.ceiling_us && d.factor > 1.0, "{d:?}");
}
