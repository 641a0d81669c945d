//! The engine: weft's public serving API.
//!
//! Register tenants (a lowered model, a latency objective and a weight),
//! submit requests and receive results asynchronously, remove tenants while
//! their requests are in flight, and read per-tenant metrics. A worker
//! thread owns the executor (CUDA where a GPU is present, the CPU
//! interpreter otherwise) and the SLO-aware scheduler (`weft-sched`), which
//! forms each bundle from the in-flight requests' next kernels (earliest
//! deadline first, as wide as its predictor says every member still keeps
//! pace with its deadline) and learns from every bundle's measured time
//! (the adaptive predictor of `weft-predict`).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weft::graph::{builder::GraphBuilder, DType};
//! use weft::kir::HostBuffer;
//! use weft::{Backend, Engine, EngineConfig};
//!
//! // A model: y = relu(x), lowered once and shared by its tenants.
//! let mut g = GraphBuilder::new("tiny");
//! let x = g.input("x", DType::F32, &[1, 8]);
//! let y = g.relu(x).unwrap();
//! g.output(y);
//! let program = Arc::new(weft::lower::lower(&g.finish(), &Default::default()).unwrap());
//!
//! let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
//! let tenant = engine.register(program, Duration::from_millis(500), 1.0);
//! let input = HostBuffer::from_f32(&[-1.0, 2.0, -3.0, 4.0, 0.5, -0.5, 0.0, 1.0]);
//! let response = engine.submit(tenant, vec![input]).unwrap().wait().unwrap();
//! assert_eq!(response.outputs[0].to_f32_vec(), vec![0.0, 2.0, 0.0, 4.0, 0.5, 0.0, 0.0, 1.0]);
//! assert_eq!(engine.metrics(tenant).unwrap().completed, 1);
//! ```
//!
//! What the engine guarantees, and how:
//!
//! - **Nobody's results are mixed up.** Every request runs in its own
//!   [`TenantState`] (its own activations; weights shared through the
//!   program's `Arc`), and a bundle's slots are bit-identical to solo runs on
//!   the interpreter (the packer's oracle). Results go back on the request's
//!   own channel.
//! - **Removal is safe.** Removing a tenant refuses its new requests
//!   ([`EngineError::TenantRemoved`]); requests already admitted complete.
//! - **Overload is explicit and bounded.** Each tenant's requests in the
//!   engine are bounded: one more is rejected at once with
//!   [`EngineError::Rejected`]. The scheduler's admission control rejects a
//!   request whose SLO cannot be met at the current load; its [`Pending`]
//!   then yields [`RequestError::Rejected`] right away. Metrics keep a
//!   bounded window of latencies. Memory therefore stays bounded however far
//!   load exceeds capacity.
//! - **A failed launch fails only its requests.** The requests whose kernels
//!   were in the failed bundle get [`RequestError::Execution`]; the others
//!   continue, and the engine keeps serving.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft_interp::Interpreter;
use weft_kir::HostBuffer;
use weft_lower::Program;
use weft_pack::{run_bundle, BundleExecutor, TenantId, TenantState};

use crate::gpu::GpuExecutor;

/// Which executor the engine runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// CUDA where a GPU is present, else the interpreter.
    Auto,
    Interp,
    Cuda,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Requests a tenant may have queued or in flight; more are rejected.
    pub max_queue: usize,
    /// Latencies kept per tenant for percentiles (a sliding window).
    pub latency_window: usize,
    /// The scheduling policy (SLO-aware with the adaptive predictor by
    /// default; time-only FIFO, space-only and greedy packing are there to
    /// compare against).
    pub policy: weft_sched::SchedulerConfig,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig { max_queue: 64, latency_window: 4096, policy: weft_sched::SchedulerConfig::slo_aware(1.0) }
    }
}

/// A registered tenant.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tenant(pub u32);

/// Why a call to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown tenant {0:?}: register it first")]
    UnknownTenant(Tenant),
    #[error("tenant {0:?} was removed: it takes no new requests")]
    TenantRemoved(Tenant),
    #[error("tenant {tenant:?}: input {index} (`{name}`) expects {expected} but was given {given}")]
    Input { tenant: Tenant, index: usize, name: String, expected: String, given: String },
    #[error("tenant {tenant:?}: {given} inputs given, the model takes {expected}")]
    InputCount { tenant: Tenant, expected: usize, given: usize },
    #[error("tenant {tenant:?}: request rejected: {reason}")]
    Rejected { tenant: Tenant, reason: String },
    #[error("the engine has stopped")]
    Stopped,
    #[error("no executor: {0}")]
    Backend(String),
}

/// Why an admitted request produced no result.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("rejected by admission control: {0}")]
    Rejected(String),
    #[error("the launch running this request failed: {0}")]
    Execution(String),
    #[error("the engine stopped before the request finished")]
    Stopped,
}

/// The result of one request: the model's outputs, and how long it took.
#[derive(Clone, Debug)]
pub struct Response {
    pub outputs: Vec<HostBuffer>,
    pub latency: Duration,
    pub met_slo: bool,
}

/// A submitted request; [`Pending::wait`] blocks until its result.
pub struct Pending {
    rx: Receiver<Result<Response, RequestError>>,
}

impl Pending {
    pub fn wait(self) -> Result<Response, RequestError> {
        self.rx.recv().unwrap_or(Err(RequestError::Stopped))
    }

    /// The result if it is ready.
    pub fn try_wait(&self) -> Option<Result<Response, RequestError>> {
        self.rx.try_recv().ok()
    }
}

/// Per-tenant counters and latency percentiles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantMetrics {
    pub submitted: u64,
    pub rejected: u64,
    pub completed: u64,
    pub failed: u64,
    pub met_slo: u64,
    /// Completed requests within SLO over requests submitted (rejections count as misses).
    pub slo_attainment: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Requests queued or in flight now.
    pub in_flight: usize,
}

struct TenantInfo {
    program: Arc<Program>,
    slo: Duration,
    removed: bool,
    in_flight: usize,
    submitted: u64,
    rejected: u64,
    completed: u64,
    failed: u64,
    met_slo: u64,
    latencies: VecDeque<Duration>,
}

struct Shared {
    tenants: HashMap<Tenant, TenantInfo>,
    next_tenant: u32,
    config: EngineConfig,
}

struct Request {
    id: u64,
    tenant: Tenant,
    arrival: Instant,
    deadline: Instant,
    /// Taken out while the request's slot runs in a bundle.
    state: Option<TenantState<'static>>,
    reply: Sender<Result<Response, RequestError>>,
}

enum Command {
    AddTenant(Box<weft_sched::TenantSpec>),
    Submit(Box<Request>),
    Stop,
}

/// The serving engine. Dropping it stops the worker after the requests in
/// flight (which then get [`RequestError::Stopped`] if unfinished).
pub struct Engine {
    shared: Arc<Mutex<Shared>>,
    tx: Sender<Command>,
    worker: Option<JoinHandle<()>>,
    next_request: Mutex<u64>,
    backend: &'static str,
}

impl Engine {
    /// An engine on `backend`.
    pub fn new(backend: Backend, config: EngineConfig) -> Result<Engine, EngineError> {
        let gpu = match backend {
            Backend::Interp => None,
            Backend::Cuda => Some(GpuExecutor::new().map_err(|e| EngineError::Backend(e.to_string()))?),
            Backend::Auto => GpuExecutor::new().ok(),
        };
        Ok(match gpu {
            Some(g) => Engine::with_executor(g, "cuda", config),
            None => Engine::with_executor(Interpreter::new(), "interp", config),
        })
    }

    /// An engine on any bundle executor (tests inject faults this way).
    pub fn with_executor<E: BundleExecutor + Send + 'static>(
        exec: E,
        name: &'static str,
        config: EngineConfig,
    ) -> Engine {
        let limits = match weft_cuda::probe() {
            Ok(info) if name == "cuda" => info.target(),
            _ => weft_kir::Target::sm_90(),
        };
        let mut policy = config.policy.clone();
        policy.queue_capacity = policy.queue_capacity.max(config.max_queue);
        let shared = Arc::new(Mutex::new(Shared { tenants: HashMap::new(), next_tenant: 0, config }));
        let (tx, rx) = mpsc::channel();
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("weft-engine".into())
            .spawn(move || {
                // The scheduler (its predictor is not Send) lives on the worker.
                let predictor = weft_predict::Adaptive::new(weft_predict::RooflinePrior::new(), Default::default());
                let scheduler = weft_sched::Scheduler::new(policy, limits, Box::new(predictor));
                worker_loop(exec, scheduler, rx, worker_shared)
            })
            .ok();
        Engine { shared, tx, worker, next_request: Mutex::new(0), backend: name }
    }

    /// `cuda` or `interp` (or the injected executor's name).
    pub fn backend(&self) -> &str {
        self.backend
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a tenant running `program` with latency objective `slo` and
    /// fairness `weight` (> 0). Tenants of one model share the program's
    /// kernels and weights.
    pub fn register(&self, program: Arc<Program>, slo: Duration, weight: f64) -> Tenant {
        let mut s = self.lock();
        let t = Tenant(s.next_tenant);
        s.next_tenant += 1;
        let weight = if weight > 0.0 { weight } else { 1.0 };
        let spec = weft_sched::TenantSpec {
            id: TenantId(t.0),
            name: format!("tenant {}", t.0),
            program: program.clone(),
            slo_us: slo.as_secs_f64() * 1e6,
            weight,
        };
        // The worker learns of the tenant before any of its requests (one channel, in order).
        let _ = self.tx.send(Command::AddTenant(Box::new(spec)));
        s.tenants.insert(
            t,
            TenantInfo {
                program,
                slo,
                removed: false,
                in_flight: 0,
                submitted: 0,
                rejected: 0,
                completed: 0,
                failed: 0,
                met_slo: 0,
                latencies: VecDeque::new(),
            },
        );
        t
    }

    /// Removes a tenant: new requests are refused, admitted ones complete.
    pub fn remove(&self, tenant: Tenant) -> Result<(), EngineError> {
        let mut s = self.lock();
        let info = s.tenants.get_mut(&tenant).ok_or(EngineError::UnknownTenant(tenant))?;
        info.removed = true;
        Ok(())
    }

    /// Submits one request (one input per model input, in order).
    pub fn submit(&self, tenant: Tenant, inputs: Vec<HostBuffer>) -> Result<Pending, EngineError> {
        let id = {
            let mut n = self.next_request.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let (program, slo) = {
            let mut s = self.lock();
            let max_queue = s.config.max_queue;
            let info = s.tenants.get_mut(&tenant).ok_or(EngineError::UnknownTenant(tenant))?;
            if info.removed {
                return Err(EngineError::TenantRemoved(tenant));
            }
            check_inputs(tenant, &info.program, &inputs)?;
            info.submitted += 1;
            if info.in_flight >= max_queue {
                info.rejected += 1;
                return Err(EngineError::Rejected {
                    tenant,
                    reason: format!("its queue is full ({max_queue} requests in flight)"),
                });
            }
            info.in_flight += 1;
            (info.program.clone(), info.slo)
        };
        let state = TenantState::shared(TenantId(0), program, &inputs).map_err(|e| EngineError::Input {
            tenant,
            index: 0,
            name: String::new(),
            expected: String::new(),
            given: e.to_string(),
        })?;
        let (reply, rx) = mpsc::channel();
        let arrival = Instant::now();
        let request = Request { id, tenant, arrival, deadline: arrival + slo, state: Some(state), reply };
        if self.tx.send(Command::Submit(Box::new(request))).is_err() {
            return Err(EngineError::Stopped);
        }
        Ok(Pending { rx })
    }

    /// The tenant's metrics so far.
    pub fn metrics(&self, tenant: Tenant) -> Result<TenantMetrics, EngineError> {
        let s = self.lock();
        let info = s.tenants.get(&tenant).ok_or(EngineError::UnknownTenant(tenant))?;
        let mut sorted: Vec<Duration> = info.latencies.iter().copied().collect();
        sorted.sort();
        let pct = |q: f64| (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
        Ok(TenantMetrics {
            submitted: info.submitted,
            rejected: info.rejected,
            completed: info.completed,
            failed: info.failed,
            met_slo: info.met_slo,
            slo_attainment: if info.submitted == 0 { 1.0 } else { info.met_slo as f64 / info.submitted as f64 },
            p50: pct(0.5),
            p99: pct(0.99),
            in_flight: info.in_flight,
        })
    }

    /// Jain's fairness index over the tenants' SLO attainment (1 = every
    /// tenant attains its SLO equally often).
    pub fn fairness(&self) -> f64 {
        let s = self.lock();
        let xs: Vec<f64> =
            s.tenants.values().filter(|t| t.submitted > 0).map(|t| t.met_slo as f64 / t.submitted as f64).collect();
        jain(&xs)
    }
}

/// Jain's fairness index of `xs`: `(Σx)² / (n Σx²)`, 1 when all are equal.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || sq == 0.0 {
        1.0
    } else {
        sum * sum / (xs.len() as f64 * sq)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn check_inputs(tenant: Tenant, program: &Program, inputs: &[HostBuffer]) -> Result<(), EngineError> {
    if inputs.len() != program.inputs.len() {
        return Err(EngineError::InputCount { tenant, expected: program.inputs.len(), given: inputs.len() });
    }
    for (index, (binding, given)) in program.inputs.iter().zip(inputs).enumerate() {
        let Some(info) = program.buffers.get(binding.buffer) else { continue };
        if given.elem() != info.elem || given.len() != info.len() {
            return Err(EngineError::Input {
                tenant,
                index,
                name: binding.name.clone(),
                expected: format!("{} elements of {} (shape {:?})", info.len(), info.elem, binding.shape),
                given: format!("{} elements of {}", given.len(), given.elem()),
            });
        }
    }
    Ok(())
}

fn worker_loop<E: BundleExecutor>(
    exec: E,
    mut scheduler: weft_sched::Scheduler,
    rx: Receiver<Command>,
    shared: Arc<Mutex<Shared>>,
) {
    // Requests the scheduler holds, by id; the scheduler's clock is µs since start.
    let mut requests: HashMap<u64, Request> = HashMap::new();
    let start = Instant::now();
    let now_us = |t: Instant| t.duration_since(start).as_secs_f64() * 1e6;
    let mut bundles = 0usize;
    loop {
        // Take every waiting command; block only when nothing can run.
        let mut stop = false;
        loop {
            let cmd = if requests.is_empty() {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Command::Stop,
                }
            } else {
                match rx.try_recv() {
                    Ok(c) => c,
                    Err(_) => break,
                }
            };
            match cmd {
                Command::AddTenant(spec) => {
                    // Registration cannot fail for a fresh id; a kernel the
                    // device cannot run fails that tenant's requests later.
                    let _ = scheduler.add_tenant(*spec);
                }
                Command::Submit(r) => {
                    let sched_request =
                        weft_sched::Request { tenant: TenantId(r.tenant.0), id: r.id, arrival_us: now_us(r.arrival) };
                    match scheduler.submit(sched_request, now_us(Instant::now())) {
                        Ok(()) => {
                            requests.insert(r.id, *r);
                        }
                        Err(e) => complete(&shared, *r, Err(Failure::Rejected(e.to_string()))),
                    }
                }
                Command::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        if stop {
            for (_, r) in requests.drain() {
                let _ = r.reply.send(Err(RequestError::Stopped));
            }
            return;
        }
        let dispatch = match scheduler.next_bundle(now_us(Instant::now())) {
            Ok(Some(d)) => d,
            Ok(None) => {
                if !requests.is_empty() && scheduler.live_requests() == 0 {
                    // The scheduler let go of requests it will never run.
                    for (_, r) in requests.drain() {
                        complete(&shared, r, Err(Failure::Execution("the scheduler dropped the request".into())));
                    }
                }
                continue;
            }
            Err(e) => {
                // A bundle the scheduler cannot form: fail everything waiting
                // rather than spin; the engine keeps serving new requests.
                for (_, r) in requests.drain() {
                    complete(&shared, r, Err(Failure::Execution(e.to_string())));
                }
                continue;
            }
        };
        // Slot k runs request member k's state as tenant k (two requests of
        // one tenant may share a bundle).
        let mut states: Vec<TenantState<'static>> = Vec::with_capacity(dispatch.members.len());
        let mut ok = true;
        for (k, m) in dispatch.members.iter().enumerate() {
            match requests.get_mut(&m.request).and_then(|r| r.state.take()) {
                Some(mut st) if st.steps_run() == m.step => {
                    st.tenant = TenantId(k as u32);
                    states.push(st);
                }
                other => {
                    if let (Some(st), Some(r)) = (other, requests.get_mut(&m.request)) {
                        r.state = Some(st);
                    }
                    ok = false;
                }
            }
        }
        let mut bundle = dispatch.bundle.clone();
        for (k, slot) in bundle.slots.iter_mut().enumerate() {
            slot.tenant = TenantId(k as u32);
        }
        let began = Instant::now();
        let result = if ok {
            run_bundle(bundles, &bundle, &mut states, &exec).map_err(|e| e.to_string())
        } else {
            Err("the scheduler and the engine disagree on a request's step".to_string())
        };
        let ended = Instant::now();
        bundles += 1;
        for (m, st) in dispatch.members.iter().zip(states) {
            if let Some(r) = requests.get_mut(&m.request) {
                r.state = Some(st);
            }
        }
        match result {
            Ok(()) => {
                let timing = weft_sched::Timing { total_us: (ended - began).as_secs_f64() * 1e6, per_slot_us: None };
                match scheduler.complete(dispatch, &timing, now_us(ended)) {
                    Ok(finished) => {
                        for f in finished {
                            if let Some(r) = requests.remove(&f.request.id) {
                                complete(&shared, r, Ok(()));
                            }
                        }
                    }
                    Err(e) => {
                        for (_, r) in requests.drain() {
                            complete(&shared, r, Err(Failure::Execution(e.to_string())));
                        }
                    }
                }
            }
            Err(msg) => {
                // Only this bundle's requests fail; the rest continue.
                for dropped in scheduler.abort(dispatch) {
                    if let Some(r) = requests.remove(&dropped.id) {
                        complete(&shared, r, Err(Failure::Execution(msg.clone())));
                    }
                }
            }
        }
    }
}

/// Why a request ended without outputs.
enum Failure {
    Rejected(String),
    Execution(String),
}

fn complete(shared: &Arc<Mutex<Shared>>, r: Request, result: Result<(), Failure>) {
    let latency = r.arrival.elapsed();
    let met = latency <= r.deadline.duration_since(r.arrival);
    let reply = match (result, &r.state) {
        (Ok(()), Some(state)) => state
            .outputs()
            .map(|outputs| Response { outputs, latency, met_slo: met })
            .map_err(|e| RequestError::Execution(e.to_string())),
        (Ok(()), None) => Err(RequestError::Execution("the request's state was lost".into())),
        (Err(Failure::Execution(msg)), _) => Err(RequestError::Execution(msg)),
        (Err(Failure::Rejected(msg)), _) => Err(RequestError::Rejected(msg)),
    };
    if let Ok(mut s) = shared.lock() {
        let window = s.config.latency_window.max(1);
        if let Some(info) = s.tenants.get_mut(&r.tenant) {
            info.in_flight = info.in_flight.saturating_sub(1);
            match &reply {
                Ok(_) => {
                    info.completed += 1;
                    if met {
                        info.met_slo += 1;
                    }
                    if info.latencies.len() == window {
                        info.latencies.pop_front();
                    }
                    info.latencies.push_back(latency);
                }
                Err(RequestError::Rejected(_)) => info.rejected += 1,
                Err(_) => info.failed += 1,
            }
        }
    }
    let _ = r.reply.send(reply);
}
