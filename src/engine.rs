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
//! let tenant = engine.register(program, Duration::from_millis(500), 1.0).unwrap();
//! let input = HostBuffer::from_f32(&[-1.0, 2.0, -3.0, 4.0, 0.5, -0.5, 0.0, 1.0]);
//! let response = engine.submit(tenant, vec![input]).unwrap().wait().unwrap();
//! assert_eq!(response.outputs[0].to_f32_vec(), vec![0.0, 2.0, 0.0, 4.0, 0.5, 0.0, 0.0, 1.0]);
//! assert_eq!(engine.metrics(tenant).unwrap().completed, 1);
//! ```
//!
//! What the engine guarantees, and how:
//!
//! - **One loop.** The worker runs `weft_sched::Server` — the same serving
//!   loop the simulator study runs — on a wall clock, generic over the
//!   executor: CUDA where a GPU is present, the interpreter otherwise, or
//!   any [`Executor`] given to [`Engine::with_executor`].
//! - **Weights once, activations reused.** Registering a tenant uploads its
//!   program's weights (once per `Arc<Program>`: tenants registered with the
//!   same program share them), allocates its arenas and prepares every
//!   kernel; per request only inputs, outputs, slot tables and argument
//!   words move ([`EngineStats::bytes_per_request`]).
//! - **No compiler on the request path.** A bundle whose fused module is
//!   not ready runs as prepared one-slot launches while the module is built
//!   in the background ([`EngineStats::request_path_compiles`] stays 0).
//! - **Nobody's results are mixed up.** Every request runs in its own arena;
//!   a bundle's slots are bit-identical to solo runs on the interpreter (the
//!   packer's oracle). Results go back on the request's own channel.
//! - **Removal is safe and leaves nothing behind.** Removing a tenant
//!   refuses its new requests ([`EngineError::TenantRemoved`]); requests
//!   already admitted complete, then its arenas, and the weights, kernels
//!   and compiled modules no other tenant uses, are freed
//!   ([`EngineStats::tenants`], [`EngineStats::prepared_kernels`],
//!   [`EngineStats::prepared_modules`]). Tenant ids are never reused.
//! - **Misuse is an error.** An objective or weight that is not a positive
//!   finite number is refused by [`Engine::register`]; every entry point
//!   answers with a typed error, never a panic.
//! - **Overload is explicit and bounded.** Each tenant's requests in the
//!   engine are bounded: one more is rejected at once with
//!   [`EngineError::Rejected`]. The scheduler's admission control rejects a
//!   request whose SLO cannot be met at the current load; its [`Pending`]
//!   then yields [`RequestError::Rejected`]. Metrics keep a bounded window
//!   of latencies.
//! - **Per-request objectives and priority classes.**
//!   [`Engine::submit_with`] takes [`SubmitOptions`]: a request's own
//!   deadline (its latency objective, overriding its tenant's) and its
//!   priority class (higher classes are dispatched first and refused last;
//!   `weft_sched::Request` has the rules).
//! - **One serving loop per device.** An engine runs one worker thread per
//!   executor ([`EngineConfig::devices`], [`Engine::with_executors`]); each
//!   tenant lives on one device, chosen when it registers: the device with
//!   the least predicted load, where a tenant's demand is its predicted solo
//!   latency over its objective (`weft_sched::placement`).
//!   [`EngineStats::devices`] and [`Engine::device_of`] show the placement.
//! - **A failed launch fails only its requests.** The requests whose kernels
//!   were in the failed bundle get [`RequestError::Execution`] with the
//!   typed cause; the others continue, and the engine keeps serving.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft_interp::Interpreter;
use weft_kir::HostBuffer;
use weft_lower::Program;
use weft_pack::{Executor, InterpExecutor, TenantId};
use weft_sched::{Event, Scheduler, ServeError, ServeStats, Server, WallClock};

use crate::gpu::GpuExecutor;

/// Which executor the engine runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// CUDA where a GPU is present, else the interpreter.
    Auto,
    Interp,
    Cuda,
    /// The emitted CUDA C compiled for the host (`weft_cpu::CpuExecutor`).
    Cpu,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Devices (executors, one serving loop each) to serve on: `None` is
    /// every visible GPU on CUDA and one executor otherwise. On the
    /// interpreter and the cpu executor, `Some(n)` runs `n` executors.
    pub devices: Option<usize>,
    /// Requests a tenant may have queued or in flight; more are rejected.
    pub max_queue: usize,
    /// Latencies kept per tenant for percentiles (a sliding window).
    pub latency_window: usize,
    /// The scheduling policy (SLO-aware with the adaptive predictor by
    /// default; time-only FIFO, space-only and greedy packing are there to
    /// compare against).
    pub policy: weft_sched::SchedulerConfig,
    /// Bytes each device may hold for its tenants (weights once per
    /// program, one arena per tenant): `None` is the device's memory on
    /// CUDA and [`weft_graph::memory::host_memory_budget`] on host
    /// executors. A registration beyond it is refused
    /// ([`EngineError::Memory`]) before anything is allocated.
    pub max_memory: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            devices: None,
            max_queue: 64,
            latency_window: 4096,
            policy: weft_sched::SchedulerConfig::slo_aware(1.0),
            max_memory: None,
        }
    }
}

/// A registered tenant.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tenant(pub u32);

/// How one request is to be served, beyond its tenant's settings.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// The request's own latency objective, receipt to answer (overrides
    /// its tenant's; must be more than zero). Admission judges the request
    /// against it, the scheduler orders by it, and `met_slo` is measured
    /// against it.
    pub deadline: Option<Duration>,
    /// Its priority class (0 is the default): among ready requests a higher
    /// class is always dispatched first, and admission counts only the work
    /// of its own and higher classes ahead of it, so under overload lower
    /// classes are refused first.
    pub priority: u8,
}

/// Why a call to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("tenant {tenant:?}: {message}")]
    InvalidRequest { tenant: Tenant, message: String },
    #[error("{devices} devices requested: give at least 1 (and at most the {visible} visible)")]
    Devices { devices: usize, visible: usize },
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
    /// The tenant's program cannot take requests (a malformed program).
    #[error("tenant {tenant:?}: {source}")]
    Program {
        tenant: Tenant,
        #[source]
        source: Box<weft_pack::RunError>,
    },
    /// Registration failed: the scheduler refused the program, or its
    /// weights, arenas or kernels could not be made ready on the executor.
    #[error("registering `{program}`: {source}")]
    Register {
        program: String,
        #[source]
        source: ServeError,
    },
    /// Registering the program would hold more than the device's memory
    /// budget ([`EngineConfig::max_memory`]).
    #[error("registering `{program}` on device {device}: {source}")]
    Memory {
        program: String,
        device: usize,
        #[source]
        source: Box<weft_graph::MemoryError>,
    },
    /// A model with dynamic dimensions could not be bound to a request's
    /// input shapes or imported for them ([`crate::DynamicModel`]).
    #[error("model `{model}`: {source}")]
    Bind {
        model: String,
        #[source]
        source: Box<weft_graph::ImportError>,
    },
    /// A request to the part of a model that computes a tensor whose
    /// nonzero elements size an output ([`crate::DynamicModel`]) failed.
    #[error("model `{model}`: counting the nonzero elements of `{tensor}`: {source}")]
    Count {
        model: String,
        tensor: String,
        #[source]
        source: RequestError,
    },
    /// A model's program for a binding could not be lowered.
    #[error("model `{model}`: {source}")]
    Lower {
        model: String,
        #[source]
        source: Box<weft_lower::LowerError>,
    },
    #[error("the engine has stopped")]
    Stopped,
    #[error("no CUDA executor: {0}")]
    Backend(#[from] weft_cuda::CudaError),
}

/// Why an admitted request produced no result.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RequestError {
    #[error("rejected by admission control: {0}")]
    Rejected(String),
    /// The launch running this request failed, its buffers could not be
    /// moved, or its inputs held an index out of range
    /// ([`ServeError::is_bad_input`]); the cause is kept, typed.
    #[error("running the request failed: {0}")]
    Execution(Arc<ServeError>),
    #[error("the engine stopped before the request finished")]
    Stopped,
}

/// The result of one request: the model's outputs, and how long it took.
#[derive(Clone, Debug)]
pub struct Response {
    pub outputs: Vec<HostBuffer>,
    pub latency: Duration,
    pub met_slo: bool,
    /// The device (serving loop) that ran it: its tenant's.
    pub device: usize,
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
    /// Latency percentiles by nearest rank ([`weft_sched::quantile`]).
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Requests queued or in flight now.
    pub in_flight: usize,
}

/// What the engine's loop has done and moved, all tenants together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    /// The loop's counters: bundles, launches, split bundles, background
    /// preparations, bytes moved while serving.
    pub serve: ServeStats,
    /// Bytes that crossed between host and executor per completed request
    /// (inputs, outputs, slot tables, argument words; registration excluded).
    pub bytes_per_request: f64,
    /// Launches that had to run a compiler (0 unless a class was never
    /// prepared: the tiered path keeps compilers off the request path).
    pub request_path_compiles: u64,
    /// Bytes of weights held on the executor (once per program).
    pub weight_bytes: u64,
    /// Everything that crossed between host and executor since the engine
    /// started, registration included.
    pub executor: weft_pack::Transfers,
    /// Tenants registered in the loop (removed ones leave once drained).
    pub tenants: usize,
    /// Distinct kernels the scheduler holds for them.
    pub prepared_kernels: usize,
    /// Compiled modules the executor holds (0 on executors that compile
    /// nothing).
    pub prepared_modules: usize,
    /// Executor time in launches over wall time since the engine started,
    /// per device (the mean over devices for the engine; on a simulator,
    /// simulated time over wall time, not a fraction).
    pub busy_fraction: f64,
    /// Per device, in device order (empty within a device's own entry).
    pub devices: Vec<DeviceStats>,
}

/// One device's serving loop: where the placement put what, and its figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceStats {
    pub device: usize,
    /// The executor's name.
    pub executor: String,
    /// Tenants placed on it and not removed.
    pub tenants: Vec<Tenant>,
    /// Predicted load: the sum of its tenants' demands (predicted solo
    /// latency over objective).
    pub load: f64,
    /// Its own loop's figures.
    pub stats: EngineStats,
}

struct TenantInfo {
    program: Arc<Program>,
    /// Bytes of one arena of the program ([`weft_lower::MemoryUse::arena`]).
    arena_bytes: u64,
    device: usize,
    demand: f64,
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
    /// Each device's loop figures, as its worker last published them.
    stats: Vec<EngineStats>,
    placement: weft_sched::Placement,
}

struct Request {
    id: u64,
    tenant: Tenant,
    arrival: Instant,
    params: Params,
    inputs: Vec<HostBuffer>,
    reply: Sender<Result<Response, RequestError>>,
}

/// A request's scheduling parameters, as the loop takes them.
struct Params {
    slo_us: Option<f64>,
    priority: u8,
}

enum Command {
    /// Replies with the predicted solo latency of one request, µs.
    Register(Box<weft_sched::TenantSpec>, Sender<Result<f64, ServeError>>),
    Remove(Tenant),
    Submit(Box<Request>),
    Stop,
}

/// The serving engine. Dropping it stops the worker after the requests in
/// flight (which then get [`RequestError::Stopped`] if unfinished).
pub struct Engine {
    shared: Arc<Mutex<Shared>>,
    devices: Vec<Device>,
    next_request: Mutex<u64>,
    /// Held while a tenant is placed and registered, so that concurrent
    /// registrations see each other's load.
    placing: Mutex<()>,
    backend: String,
    /// Bytes each device may hold ([`EngineConfig::max_memory`]).
    memory_budget: u64,
}

/// One device's serving loop: its command channel and worker thread.
struct Device {
    tx: Sender<Command>,
    worker: Option<JoinHandle<()>>,
}

impl Engine {
    /// An engine on `backend`: one executor per device, as
    /// [`EngineConfig::devices`] asks (every visible GPU on CUDA by default).
    pub fn new(backend: Backend, config: EngineConfig) -> Result<Engine, EngineError> {
        let requested = config.devices;
        if requested == Some(0) {
            return Err(EngineError::Devices { devices: 0, visible: visible_gpus() });
        }
        let gpus = |n: Option<usize>| -> Result<Vec<GpuExecutor>, EngineError> {
            let visible = visible_gpus();
            let n = n.unwrap_or(visible.max(1));
            if n > visible && visible > 0 {
                return Err(EngineError::Devices { devices: n, visible });
            }
            (0..n).map(|i| GpuExecutor::on(i).map_err(EngineError::from)).collect()
        };
        let gpu = match backend {
            Backend::Interp => None,
            Backend::Cuda => Some(gpus(requested)?),
            Backend::Auto => gpus(requested).ok(),
            Backend::Cpu => {
                let execs = (0..requested.unwrap_or(1)).map(|_| weft_cpu::CpuExecutor::fast()).collect();
                return Ok(Engine::with_executors(execs, config));
            }
        };
        Ok(match gpu {
            Some(gpus) => {
                let limits = gpus.first().map(|g| g.gpu().info().target()).unwrap_or_else(weft_kir::Target::sm_90);
                let device_memory = gpus.iter().map(|g| g.gpu().info().total_memory_bytes).min();
                let mut config = config;
                config.max_memory = config.max_memory.or(device_memory);
                Engine::start(gpus, limits, config)
            }
            None => {
                let execs = (0..requested.unwrap_or(1)).map(|_| InterpExecutor::new(Interpreter::new())).collect();
                Engine::with_executors(execs, config)
            }
        })
    }

    /// An engine on any executor (the simulator; tests inject faults this
    /// way), planning for an sm_90 device.
    pub fn with_executor<E: Executor + Send + 'static>(exec: E, config: EngineConfig) -> Engine {
        Engine::start(vec![exec], weft_kir::Target::sm_90(), config)
    }

    /// An engine with one device per executor of `execs` (at least one;
    /// an empty list serves on one interpreter), each with its own serving
    /// loop on its own thread, planning for sm_90 devices.
    pub fn with_executors<E: Executor + Send + 'static>(execs: Vec<E>, config: EngineConfig) -> Engine {
        Engine::start(execs, weft_kir::Target::sm_90(), config)
    }

    fn start<E: Executor + Send + 'static>(execs: Vec<E>, limits: weft_kir::Target, config: EngineConfig) -> Engine {
        if execs.is_empty() {
            return Engine::start(vec![InterpExecutor::new(Interpreter::new())], limits, config);
        }
        let backend = execs.first().map(|e| e.name().to_string()).unwrap_or_default();
        let memory_budget = config.max_memory.unwrap_or_else(weft_graph::memory::host_memory_budget);
        let mut policy = config.policy.clone();
        policy.queue_capacity = policy.queue_capacity.max(config.max_queue);
        let n = execs.len();
        let shared = Arc::new(Mutex::new(Shared {
            tenants: HashMap::new(),
            next_tenant: 0,
            config,
            stats: vec![EngineStats::default(); n],
            placement: weft_sched::Placement::new(n),
        }));
        let started = Instant::now();
        let devices = execs
            .into_iter()
            .enumerate()
            .map(|(device, exec)| {
                let (tx, rx) = mpsc::channel();
                let worker_shared = shared.clone();
                let policy = policy.clone();
                let worker = std::thread::Builder::new()
                    .name(format!("weft-engine-{device}"))
                    .spawn(move || {
                        // The scheduler (its predictor is not Send) lives on the worker.
                        let predictor =
                            weft_predict::Adaptive::new(weft_predict::RooflinePrior::new(), Default::default());
                        let scheduler = Scheduler::new(policy, limits, Box::new(predictor));
                        let loop_ = Loop { device, shared: worker_shared, started };
                        worker_loop(exec, scheduler, rx, loop_)
                    })
                    .ok();
                Device { tx, worker }
            })
            .collect();
        Engine { shared, devices, next_request: Mutex::new(0), placing: Mutex::new(()), backend, memory_budget }
    }

    /// Devices (serving loops) the engine runs.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// The device tenant `tenant` was placed on.
    pub fn device_of(&self, tenant: Tenant) -> Result<usize, EngineError> {
        let s = self.lock();
        s.tenants.get(&tenant).map(|t| t.device).ok_or_else(|| gone(s.next_tenant, tenant))
    }

    /// Bytes each device may hold for its tenants ([`EngineConfig::max_memory`]).
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget
    }

    /// Bytes device `device` holds for its tenants: one arena per tenant
    /// and each distinct program's weights once.
    fn held_bytes(s: &Shared, device: usize) -> (u64, Vec<(String, u64)>) {
        let mut held = 0u64;
        let mut programs: Vec<&Arc<Program>> = Vec::new();
        let mut largest = Vec::new();
        for (t, info) in s.tenants.iter().filter(|(_, i)| i.device == device && !i.removed) {
            held = held.saturating_add(info.arena_bytes);
            weft_graph::memory::insert_largest(&mut largest, format!("tenant {} arena", t.0), info.arena_bytes);
            if !programs.iter().any(|p| Arc::ptr_eq(p, &info.program)) {
                programs.push(&info.program);
                let w = info.program.memory().weights;
                held = held.saturating_add(w);
                weft_graph::memory::insert_largest(&mut largest, format!("`{}` weights", info.program.name), w);
            }
        }
        (held, largest)
    }

    /// The executor's name: `cuda`, `interp`, or the injected executor's.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a tenant running `program` with latency objective `slo` and
    /// fairness `weight` (> 0), and returns once it is ready: its kernels
    /// verified, isolated and compiled (or loaded from cache), its weights
    /// on the executor (shared with tenants registered with the same
    /// `Arc<Program>`), its arenas allocated.
    pub fn register(&self, program: Arc<Program>, slo: Duration, weight: f64) -> Result<Tenant, EngineError> {
        let _placing = self.placing.lock().unwrap_or_else(|e| e.into_inner());
        let memory = program.memory();
        let (t, device) = {
            let mut s = self.lock();
            let device = s.placement.choose();
            // Checked before the executor allocates anything for it.
            let (held, mut largest) = Engine::held_bytes(&s, device);
            let shared =
                s.tenants.values().any(|i| i.device == device && !i.removed && Arc::ptr_eq(&i.program, &program));
            let adds = if shared { memory.arena() } else { memory.device() };
            let needed = held.saturating_add(adds);
            if needed > self.memory_budget {
                for (name, bytes) in &memory.largest {
                    weft_graph::memory::insert_largest(&mut largest, name.clone(), *bytes);
                }
                return Err(EngineError::Memory {
                    program: program.name.clone(),
                    device,
                    source: Box::new(weft_graph::MemoryError {
                        what: format!(
                            "a tenant of `{}` ({} more next to the {} its device holds)",
                            program.name,
                            weft_graph::memory::format_bytes(adds),
                            weft_graph::memory::format_bytes(held)
                        ),
                        needed,
                        limit: self.memory_budget,
                        largest,
                    }),
                });
            }
            let t = Tenant(s.next_tenant);
            s.next_tenant += 1;
            (t, device)
        };
        // The scheduler validates the objective and the weight (finite,
        // positive) and its refusal comes back as `EngineError::Register`.
        let spec = weft_sched::TenantSpec {
            id: TenantId(t.0),
            name: format!("tenant {}", t.0),
            program: program.clone(),
            slo_us: slo.as_secs_f64() * 1e6,
            weight,
        };
        let slo_us = spec.slo_us;
        let (reply, rx) = mpsc::channel();
        self.device(device)?.send(Command::Register(Box::new(spec), reply)).map_err(|_| EngineError::Stopped)?;
        let solo_us = rx
            .recv()
            .map_err(|_| EngineError::Stopped)?
            .map_err(|source| EngineError::Register { program: program.name.clone(), source })?;
        let demand = weft_sched::demand(solo_us, slo_us);
        let mut s = self.lock();
        s.placement.add(device, demand);
        s.tenants.insert(
            t,
            TenantInfo {
                arena_bytes: memory.arena(),
                program,
                device,
                demand,
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
        Ok(t)
    }

    /// Removes a tenant: new requests are refused, admitted ones complete,
    /// then its arenas, its program's weights (when no other tenant shares
    /// them), its kernels and compiled modules (when no other tenant runs
    /// them) are freed and the engine forgets it (later calls name it
    /// unknown).
    pub fn remove(&self, tenant: Tenant) -> Result<(), EngineError> {
        let device = {
            let mut s = self.lock();
            let next = s.next_tenant;
            let info = s.tenants.get_mut(&tenant).ok_or_else(|| gone(next, tenant))?;
            let first = !info.removed;
            info.removed = true;
            let (device, demand) = (info.device, info.demand);
            // Its share of the device is free for the next tenant at once.
            if first {
                s.placement.remove(device, demand);
            }
            device
        };
        self.device(device)?.send(Command::Remove(tenant)).map_err(|_| EngineError::Stopped)
    }

    fn device(&self, device: usize) -> Result<&Sender<Command>, EngineError> {
        self.devices.get(device).map(|d| &d.tx).ok_or(EngineError::Stopped)
    }

    /// Submits one request (one input per model input, in order) with its
    /// tenant's objective in the default priority class.
    pub fn submit(&self, tenant: Tenant, inputs: Vec<HostBuffer>) -> Result<Pending, EngineError> {
        self.submit_with(tenant, inputs, SubmitOptions::default())
    }

    /// Submits one request with its own deadline and priority class.
    pub fn submit_with(
        &self,
        tenant: Tenant,
        inputs: Vec<HostBuffer>,
        options: SubmitOptions,
    ) -> Result<Pending, EngineError> {
        let slo_us = match options.deadline {
            None => None,
            Some(d) if d.is_zero() => {
                return Err(EngineError::InvalidRequest {
                    tenant,
                    message: "its deadline is zero: give a positive duration".to_string(),
                })
            }
            Some(d) => Some(d.as_secs_f64() * 1e6),
        };
        let id = {
            let mut n = self.next_request.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let device = {
            let mut s = self.lock();
            let max_queue = s.config.max_queue;
            let next = s.next_tenant;
            let info = s.tenants.get_mut(&tenant).ok_or_else(|| gone(next, tenant))?;
            if info.removed {
                return Err(EngineError::TenantRemoved(tenant));
            }
            check_inputs(tenant, &info.program, &inputs)?;
            let device = info.device;
            info.submitted += 1;
            if info.in_flight >= max_queue {
                info.rejected += 1;
                return Err(EngineError::Rejected {
                    tenant,
                    reason: format!("its queue is full ({max_queue} requests in flight)"),
                });
            }
            info.in_flight += 1;
            device
        };
        let (reply, rx) = mpsc::channel();
        let params = Params { slo_us, priority: options.priority };
        let request = Request { id, tenant, arrival: Instant::now(), params, inputs, reply };
        if self.device(device)?.send(Command::Submit(Box::new(request))).is_err() {
            return Err(EngineError::Stopped);
        }
        Ok(Pending { rx })
    }

    /// The tenant's metrics so far.
    pub fn metrics(&self, tenant: Tenant) -> Result<TenantMetrics, EngineError> {
        let s = self.lock();
        let info = s.tenants.get(&tenant).ok_or_else(|| gone(s.next_tenant, tenant))?;
        let mut sorted: Vec<f64> = info.latencies.iter().map(Duration::as_secs_f64).collect();
        sorted.sort_by(f64::total_cmp);
        let pct = |q: f64| (!sorted.is_empty()).then(|| Duration::from_secs_f64(weft_sched::quantile(&sorted, q)));
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

    /// What the loops have done and moved so far: all devices together,
    /// and each device's own in [`EngineStats::devices`].
    pub fn stats(&self) -> EngineStats {
        let s = self.lock();
        let mut total = EngineStats::default();
        for (device, d) in s.stats.iter().enumerate() {
            total.serve.add(&d.serve);
            total.request_path_compiles += d.request_path_compiles;
            total.weight_bytes += d.weight_bytes;
            total.executor.add(&d.executor);
            total.tenants += d.tenants;
            total.prepared_kernels += d.prepared_kernels;
            total.prepared_modules += d.prepared_modules;
            total.busy_fraction += d.busy_fraction / s.stats.len().max(1) as f64;
            let mut tenants: Vec<Tenant> =
                s.tenants.iter().filter(|(_, t)| t.device == device && !t.removed).map(|(id, _)| *id).collect();
            tenants.sort_by_key(|t| t.0);
            total.devices.push(DeviceStats {
                device,
                executor: self.backend.clone(),
                tenants,
                load: s.placement.loads().get(device).copied().unwrap_or(0.0),
                stats: d.clone(),
            });
        }
        total.bytes_per_request = total.serve.bytes_per_request();
        total
    }

    /// Jain's fairness index over the tenants' SLO attainment (1 = every
    /// tenant attains its SLO equally often).
    pub fn fairness(&self) -> f64 {
        let s = self.lock();
        let xs: Vec<f64> =
            s.tenants.values().filter(|t| t.submitted > 0).map(|t| t.met_slo as f64 / t.submitted as f64).collect();
        weft_sched::jain(&xs)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for d in &self.devices {
            let _ = d.tx.send(Command::Stop);
        }
        for d in &mut self.devices {
            if let Some(w) = d.worker.take() {
                let _ = w.join();
            }
        }
    }
}

/// The loop's own input check (`weft_pack::check_inputs`), run before the
/// request is queued so a bad request fails at `submit`.
fn check_inputs(tenant: Tenant, program: &Program, inputs: &[HostBuffer]) -> Result<(), EngineError> {
    weft_pack::check_inputs(program, inputs).map_err(|e| match e {
        weft_pack::RunError::InputCount { expected, given, .. } => EngineError::InputCount { tenant, expected, given },
        weft_pack::RunError::InputMismatch { index, input, expected_ty, expected_len, given_ty, given_len, .. } => {
            let shape = program.inputs.get(index).map(|b| b.shape.clone()).unwrap_or_default();
            EngineError::Input {
                tenant,
                index,
                name: input,
                expected: format!("{expected_len} elements of {expected_ty} (shape {shape:?})"),
                given: format!("{given_len} elements of {given_ty}"),
            }
        }
        other => EngineError::Program { tenant, source: Box::new(other) },
    })
}

/// A request the loop holds: where its answer goes.
struct Waiting {
    tenant: Tenant,
    reply: Sender<Result<Response, RequestError>>,
}

/// Which device a worker serves and where it publishes.
struct Loop {
    device: usize,
    shared: Arc<Mutex<Shared>>,
    /// When the engine started (busy fraction's wall time).
    started: Instant,
}

fn worker_loop<E: Executor>(mut exec: E, mut scheduler: Scheduler, rx: Receiver<Command>, at: Loop) {
    let shared = &at.shared;
    let mut clock = WallClock::new();
    let Ok(mut server) = Server::new(&mut scheduler, &mut exec) else { return };
    let mut waiting: HashMap<u64, Waiting> = HashMap::new();
    let mut removing: HashSet<Tenant> = HashSet::new();
    let mut events = Vec::new();
    loop {
        // Take every waiting command; block only when nothing can run and
        // nothing is left to deliver (a request refused at submission is
        // answered by the events of this very pass).
        let mut stop = false;
        loop {
            let cmd = if server.live_requests() == 0 && events.is_empty() && removing.is_empty() {
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
                Command::Register(spec, reply) => {
                    let id = spec.id;
                    let result =
                        server.register(*spec).map(|()| server.scheduler().solo_latency_us(id).unwrap_or(0.0).max(0.0));
                    publish(&at, &server);
                    let _ = reply.send(result);
                }
                Command::Remove(t) => {
                    removing.insert(t);
                }
                Command::Submit(r) => {
                    let mut request = weft_sched::Request::new(TenantId(r.tenant.0), r.id, clock.at(r.arrival))
                        .with_priority(r.params.priority);
                    request.slo_us = r.params.slo_us;
                    waiting.insert(r.id, Waiting { tenant: r.tenant, reply: r.reply });
                    let now = clock.at(Instant::now());
                    server.submit(request, Arc::new(r.inputs), now, &mut events);
                }
                Command::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        if stop {
            for (_, w) in waiting.drain() {
                let _ = w.reply.send(Err(RequestError::Stopped));
            }
            server.shutdown();
            return;
        }
        server.step(&mut clock, &mut events);
        // The figures first, so that a caller who has its answer sees them.
        publish(&at, &server);
        for e in events.drain(..) {
            deliver(shared, at.device, &mut waiting, e);
        }
        // Tenants being removed leave once nothing of theirs is in flight.
        let removed = removing.len();
        removing.retain(|t| {
            let idle = !waiting.values().any(|w| w.tenant == *t);
            if idle {
                let _ = server.unregister(TenantId(t.0));
                lock(shared).tenants.remove(t);
            }
            !idle
        });
        if removing.len() != removed {
            publish(&at, &server);
        }
    }
}

/// Publishes the loop's counters to the engine's callers.
fn publish(at: &Loop, server: &Server<'_>) {
    let stats = *server.stats();
    let transfers = server.executor().transfers();
    let wall_us = at.started.elapsed().as_secs_f64() * 1e6;
    let mut s = lock(&at.shared);
    let Some(slot) = s.stats.get_mut(at.device) else { return };
    *slot = EngineStats {
        serve: stats,
        bytes_per_request: stats.bytes_per_request(),
        request_path_compiles: transfers.request_path_compiles,
        weight_bytes: server.weight_bytes(),
        executor: transfers,
        tenants: server.tenants(),
        prepared_kernels: server.scheduler().prepared_kernels(),
        prepared_modules: server.executor().prepared_modules(),
        busy_fraction: if wall_us > 0.0 { stats.busy_us / wall_us } else { 0.0 },
        devices: Vec::new(),
    };
}

/// The error for a tenant the engine does not hold: one it handed out and
/// has since removed (ids are never reused), or one it never handed out.
fn gone(next_tenant: u32, tenant: Tenant) -> EngineError {
    if tenant.0 < next_tenant {
        EngineError::TenantRemoved(tenant)
    } else {
        EngineError::UnknownTenant(tenant)
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// GPUs the CUDA driver reports (0 without a driver or a device).
pub fn visible_gpus() -> usize {
    (0..64).take_while(|&i| weft_cuda::probe_device(i).is_ok()).count()
}

/// Hands a finished request's result to its waiter and counts it.
fn deliver(shared: &Mutex<Shared>, device: usize, waiting: &mut HashMap<u64, Waiting>, event: Event) {
    // Latency and SLO as the loop measured them (its clock counts from the
    // request's arrival at `submit`).
    let (id, reply) = match event {
        Event::Completed { request, outputs, latency_us, met_slo } => (
            request.id,
            Ok(Response { outputs, latency: Duration::from_secs_f64(latency_us.max(0.0) / 1e6), met_slo, device }),
        ),
        Event::Rejected { request, error } => (request.id, Err(RequestError::Rejected(error.to_string()))),
        Event::Failed { request, error } => (request.id, Err(RequestError::Execution(error))),
    };
    let Some(w) = waiting.remove(&id) else { return };
    {
        let mut s = lock(shared);
        let window = s.config.latency_window.max(1);
        if let Some(info) = s.tenants.get_mut(&w.tenant) {
            info.in_flight = info.in_flight.saturating_sub(1);
            match &reply {
                Ok(response) => {
                    info.completed += 1;
                    if response.met_slo {
                        info.met_slo += 1;
                    }
                    if info.latencies.len() == window {
                        info.latencies.pop_front();
                    }
                    info.latencies.push_back(response.latency);
                }
                Err(RequestError::Rejected(_)) => info.rejected += 1,
                Err(_) => info.failed += 1,
            }
        }
    }
    let _ = w.reply.send(reply);
}
