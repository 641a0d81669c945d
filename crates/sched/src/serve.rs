//! The serving loop: the scheduler, an executor and resident tenants.
//!
//! [`Server`] is the one loop that serves requests. The live engine
//! (`weft::Engine`, on a worker thread, wall clock, requests from a channel)
//! and the simulator study ([`serve`], simulated clock, arrivals from a
//! trace, `weft_sim::SimGpu` as the executor — a **simulator**) both drive
//! it; they differ only in the [`Clock`] and where requests come from.
//!
//! **Buffers.** Registering a tenant ([`Server::register`]) uploads its
//! program's weights once per program (tenants given the same
//! `Arc<Program>` share them) and allocates one arena per request the
//! tenant may have in flight ([`Scheduler::in_flight_limit`]); every request
//! reuses them. A request's inputs are uploaded when its first step is
//! dispatched, its outputs downloaded when its last step completes; in
//! between only slot tables and argument words cross ([`ServeStats`] counts
//! what does).
//!
//! **No compiler on the request path.** Registration prepares (compiles or
//! loads from cache) every kernel of the program as the one-slot bundle the
//! scheduler forms for it alone, and hands ptxas's report on each compiled
//! module to the scheduler ([`Scheduler::record_resources`]), which plans on
//! those figures from then on. When the scheduler then forms a wider
//! bundle whose launch class the executor has not prepared, the loop asks
//! the executor to prepare it in the background and runs the same slots now
//! as their prepared one-slot launches, one after another; once the fused
//! module is ready, later bundles of that class use it (tiered compilation).
//! The predictor learns only from launches that ran as it predicted them.
//!
//! **Failures.** A failed launch fails only the requests in it: the
//! scheduler drops them ([`Scheduler::abort`]), their arenas return to their
//! tenants, and serving goes on. A sticky fault (the executor reports
//! [`Executor::is_faulted`]) also rebuilds the executor and restores every
//! tenant (see `recover`).
//!
//! **The watchdog.** Every launch runs under a bound ([`Watchdog`]): a
//! multiple of the predicted time, at least a floor, at most a ceiling. The
//! executor stops a launch that runs past it and fails it with
//! `ExecError::Hung` ([`ServeStats::hung_launches`] counts them); it is then
//! faulted, so the same recovery runs and service continues for every other
//! request.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use weft_kir::HostBuffer;
use weft_lower::Program;
use weft_pack::{Arena, Bundle, Executor, LaunchClass, Resident, RunError, TenantId, Timing, Transfers, Weights};

use crate::error::SchedError;
use crate::metrics::{Outcome, RequestRecord, ServeReport};
use crate::scheduler::{Dispatch, Request, Scheduler, TenantSpec};

/// Where the loop's time comes from.
pub trait Clock {
    /// The current time, µs since the loop's epoch.
    fn now_us(&mut self) -> f64;
    /// A launch ran for `timing` (a simulated clock advances by it).
    fn ran(&mut self, timing: &Timing);
    /// Nothing runs until `t_us` (a simulated clock jumps there).
    fn idle_until(&mut self, t_us: f64);
}

/// Simulated time: advances only by measured launch times and idle jumps.
#[derive(Copy, Clone, Debug, Default)]
pub struct SimClock {
    pub now_us: f64,
}

impl Clock for SimClock {
    fn now_us(&mut self) -> f64 {
        self.now_us
    }

    fn ran(&mut self, timing: &Timing) {
        self.now_us += timing.total_us;
    }

    fn idle_until(&mut self, t_us: f64) {
        self.now_us = self.now_us.max(t_us);
    }
}

/// Wall-clock time since the clock was made.
#[derive(Copy, Clone, Debug)]
pub struct WallClock {
    start: std::time::Instant,
}

impl WallClock {
    pub fn new() -> WallClock {
        WallClock { start: std::time::Instant::now() }
    }

    /// `t` on this clock, µs.
    pub fn at(&self, t: std::time::Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1e6
    }
}

impl Default for WallClock {
    fn default() -> WallClock {
        WallClock::new()
    }
}

impl Clock for WallClock {
    fn now_us(&mut self) -> f64 {
        self.at(std::time::Instant::now())
    }

    fn ran(&mut self, _timing: &Timing) {}

    fn idle_until(&mut self, _t_us: f64) {}
}

/// How long a launch may run before the executor declares it hung:
/// `min(max(factor × predicted, floor), ceiling)`, or the ceiling when the
/// scheduler predicted nothing.
///
/// The defaults are lenient, since predictions are a GPU's and executors
/// without one run far slower: 20 × the prediction, at least 10 s, at most
/// 60 s. A real GPU kernel that runs for seconds is already pathological.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Watchdog {
    pub factor: f64,
    pub floor_us: f64,
    pub ceiling_us: f64,
}

impl Default for Watchdog {
    fn default() -> Watchdog {
        Watchdog { factor: 20.0, floor_us: 10e6, ceiling_us: 60e6 }
    }
}

impl Watchdog {
    /// The bound for a launch predicted to take `predicted_us`.
    pub fn bound_us(&self, predicted_us: Option<f64>) -> f64 {
        let ceiling = self.ceiling_us.max(0.0);
        match predicted_us {
            Some(p) if p.is_finite() && p > 0.0 => (self.factor * p).max(self.floor_us).min(ceiling),
            _ => ceiling,
        }
    }

    /// [`Watchdog::bound_us`] as the executor takes it.
    pub fn bound(&self, predicted_us: Option<f64>) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64(self.bound_us(predicted_us) / 1e6).unwrap_or(std::time::Duration::MAX)
    }
}

/// How a request ended, as the loop reports it.
#[derive(Debug)]
pub enum Event {
    /// Its last step ran; `outputs` are the graph outputs in order.
    Completed { request: Request, outputs: Vec<HostBuffer>, latency_us: f64, met_slo: bool },
    /// Admission refused it; nothing of it ran.
    Rejected { request: Request, error: SchedError },
    /// A launch it was part of failed, or its buffers could not be moved.
    Failed { request: Request, error: Arc<ServeError> },
}

/// Why serving a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Sched(Box<SchedError>),
    /// A fault left the executor unusable and rebuilding it failed.
    #[error("executor `{executor}` could not be rebuilt after a fault: {source}")]
    Recover {
        executor: String,
        #[source]
        source: Box<weft_pack::ExecError>,
    },
}

impl ServeError {
    /// Whether a launch was declared hung by the watchdog (`ExecError::Hung`).
    pub fn is_hung(&self) -> bool {
        matches!(self, ServeError::Run(e) if matches!(&**e, RunError::Launch { source, .. } if source.is_hung()))
    }

    /// Whether the request's own inputs failed it (an index out of range,
    /// `RunError::IndexOutOfRange`): the client's error, not the server's.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ServeError::Run(e) if matches!(&**e, RunError::IndexOutOfRange { .. }))
    }
}

impl From<RunError> for ServeError {
    fn from(e: RunError) -> ServeError {
        ServeError::Run(Box::new(e))
    }
}

impl From<SchedError> for ServeError {
    fn from(e: SchedError) -> ServeError {
        ServeError::Sched(Box::new(e))
    }
}

/// What the loop has done and moved.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct ServeStats {
    /// Launches, split runs of an unprepared class counted once per slot.
    pub launches: u64,
    /// Bundles the scheduler formed.
    pub bundles: u64,
    /// Slots over all bundles.
    pub slots: u64,
    /// Bundles whose fused module was not ready, run as one-slot launches.
    pub split_bundles: u64,
    /// Bundles of several slots run as one launch of their fused module.
    pub fused_bundles: u64,
    /// Background preparations started (fused modules).
    pub background_prepares: u64,
    /// Time launches took, µs (as the executor measured).
    pub busy_us: f64,
    /// Host wall time spent inside the executor's launch calls, µs (for a
    /// simulator: the simulation's own cost, which is not serving overhead).
    pub launch_wall_us: f64,
    /// What crossed between host and executor while serving requests
    /// (registration excluded).
    pub moved: Transfers,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Times the executor was rebuilt after a sticky fault.
    pub recoveries: u64,
    /// Launches the watchdog declared hung (each also a recovery).
    pub hung_launches: u64,
    /// Bundles that ran as the scheduler predicted them (one launch) with
    /// a prediction: the count and the sums of predicted and measured
    /// time, µs (their ratio is the predictor's bias while serving).
    pub predicted_bundles: u64,
    pub predicted_us: f64,
    pub predicted_measured_us: f64,
    /// One-slot bundles prepared (compiled, or loaded from cache) when
    /// tenants were registered.
    pub registration_prepares: u64,
    /// Fused modules whose compiled figures were recorded for planning
    /// (`Executor::module_figures`).
    pub recorded_modules: u64,
}

impl ServeStats {
    /// Adds `o`, field by field (several loops' accounts together).
    pub fn add(&mut self, o: &ServeStats) {
        self.launches += o.launches;
        self.bundles += o.bundles;
        self.slots += o.slots;
        self.split_bundles += o.split_bundles;
        self.fused_bundles += o.fused_bundles;
        self.background_prepares += o.background_prepares;
        self.busy_us += o.busy_us;
        self.launch_wall_us += o.launch_wall_us;
        self.moved.add(&o.moved);
        self.completed += o.completed;
        self.failed += o.failed;
        self.rejected += o.rejected;
        self.recoveries += o.recoveries;
        self.hung_launches += o.hung_launches;
        self.predicted_bundles += o.predicted_bundles;
        self.predicted_us += o.predicted_us;
        self.predicted_measured_us += o.predicted_measured_us;
        self.registration_prepares += o.registration_prepares;
        self.recorded_modules += o.recorded_modules;
    }

    /// Bytes that crossed per completed request.
    pub fn bytes_per_request(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.moved.total_bytes() as f64 / self.completed as f64
        }
    }
}

/// A registered tenant's resident program and arenas.
struct Served {
    resident: Resident,
    free: Vec<Arena>,
}

/// A request admitted and not finished.
struct Live {
    request: Request,
    inputs: Arc<Vec<HostBuffer>>,
    arena: Option<Arena>,
}

/// The serving loop's state; see the module docs.
pub struct Server<'a> {
    scheduler: &'a mut Scheduler,
    exec: &'a mut dyn Executor,
    tenants: HashMap<TenantId, Served>,
    /// Weights by program, shared by that program's tenants.
    weights: Vec<(Arc<Program>, Arc<Weights>)>,
    live: HashMap<u64, Live>,
    /// Classes prepared at registration or started in the background; a
    /// class whose bodies no tenant uses any more is released.
    preparing: HashSet<LaunchClass>,
    stats: ServeStats,
    /// The bound every launch runs under; `None` turns the watchdog off.
    watchdog: Option<Watchdog>,
}

impl<'a> Server<'a> {
    /// A loop over `scheduler` and `exec`. Tenants the scheduler already
    /// has are made resident now (as [`Server::register`] would).
    pub fn new(scheduler: &'a mut Scheduler, exec: &'a mut dyn Executor) -> Result<Server<'a>, ServeError> {
        let specs: Vec<TenantSpec> = scheduler.tenants().cloned().collect();
        let mut server = Server {
            scheduler,
            exec,
            tenants: HashMap::new(),
            weights: Vec::new(),
            live: HashMap::new(),
            preparing: HashSet::new(),
            stats: ServeStats::default(),
            watchdog: Some(Watchdog::default()),
        };
        for spec in specs {
            server.make_resident(spec.id)?;
        }
        Ok(server)
    }

    pub fn scheduler(&self) -> &Scheduler {
        self.scheduler
    }

    pub fn executor(&self) -> &dyn Executor {
        self.exec
    }

    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }

    /// Sets the bound launches run under (`None`: unbounded, which lets a
    /// kernel that never finishes block the loop for ever).
    pub fn set_watchdog(&mut self, watchdog: Option<Watchdog>) {
        self.watchdog = watchdog;
    }

    pub fn watchdog(&self) -> Option<Watchdog> {
        self.watchdog
    }

    /// Bytes of weights held on the executor: each program's once.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.iter().map(|(_, w)| w.bytes()).sum()
    }

    /// Tenants registered.
    pub fn tenants(&self) -> usize {
        self.tenants.len()
    }

    /// Requests admitted and not finished.
    pub fn live_requests(&self) -> usize {
        self.live.len()
    }

    /// Registers a tenant: the scheduler verifies and isolates its kernels,
    /// its weights are uploaded (once per program), its arenas allocated and
    /// every kernel of its program prepared.
    pub fn register(&mut self, spec: TenantSpec) -> Result<(), ServeError> {
        let id = spec.id;
        self.scheduler.add_tenant(spec)?;
        if let Err(e) = self.make_resident(id) {
            let _ = self.scheduler.remove_tenant(id);
            return Err(e);
        }
        Ok(())
    }

    fn make_resident(&mut self, id: TenantId) -> Result<(), ServeError> {
        let program = self.scheduler.tenant(id)?.program.clone();
        let weights = match self.weights.iter().find(|(p, _)| Arc::ptr_eq(p, &program)) {
            Some((_, w)) => w.clone(),
            None => {
                let w = Arc::new(Weights::upload(self.exec, &program)?);
                self.weights.push((program.clone(), w.clone()));
                w
            }
        };
        let resident = Resident::new(program, weights);
        let mut free = Vec::new();
        let arenas = self.scheduler.in_flight_limit();
        let result = (|| {
            for _ in 0..arenas {
                free.push(Arena::alloc(self.exec, &resident.program)?);
            }
            for bundle in self.scheduler.solo_bundles(id)? {
                let report = self.exec.prepare(&bundle).map_err(|source| RunError::Launch {
                    bundle: 0,
                    slots: weft_pack::run::describe(&bundle),
                    executor: self.exec.name().to_string(),
                    source: Box::new(source),
                })?;
                self.preparing.insert(bundle.class().clone());
                self.stats.registration_prepares += 1;
                // Plan on what the compiler measured, not on the estimate.
                if let (Some(report), Some(body)) = (report, bundle.bodies().first()) {
                    self.scheduler.record_resources(body, &report);
                }
            }
            Ok::<(), ServeError>(())
        })();
        if let Err(e) = result {
            for mut a in free {
                a.free(self.exec);
            }
            self.release_weights();
            return Err(e);
        }
        self.tenants.insert(id, Served { resident, free });
        Ok(())
    }

    /// Removes a tenant with nothing in flight: frees its arenas, and its
    /// program's weights when no other tenant uses them.
    pub fn unregister(&mut self, id: TenantId) -> Result<(), ServeError> {
        if self.live.values().any(|l| l.request.tenant == id) {
            return Err(SchedError::InvalidTenant {
                tenant: id,
                name: String::new(),
                message: "it still has requests in flight".into(),
            }
            .into());
        }
        self.scheduler.remove_tenant(id)?;
        if let Some(served) = self.tenants.remove(&id) {
            for mut a in served.free {
                a.free(self.exec);
            }
        }
        self.release_weights();
        // Modules of bodies no remaining tenant runs.
        let live = self.scheduler.kernel_fingerprints();
        let exec = &mut *self.exec;
        self.preparing.retain(|class| {
            let used = class.bodies.iter().all(|b| live.contains(b));
            if !used {
                exec.release(class);
            }
            used
        });
        Ok(())
    }

    /// Frees the weights no registered tenant uses any more.
    fn release_weights(&mut self) {
        let tenants = &self.tenants;
        let exec = &mut *self.exec;
        self.weights.retain_mut(|(program, w)| {
            let used = tenants.values().any(|t| Arc::ptr_eq(&t.resident.program, program));
            if !used {
                if let Some(w) = Arc::get_mut(w) {
                    w.free(exec);
                }
            }
            used
        });
    }

    /// Offers a request at time `now_us`. A refusal comes back as
    /// [`Event::Rejected`] in `events`.
    pub fn submit(&mut self, request: Request, inputs: Arc<Vec<HostBuffer>>, now_us: f64, events: &mut Vec<Event>) {
        let checked = self
            .tenants
            .get(&request.tenant)
            .ok_or(SchedError::UnknownTenant { tenant: request.tenant })
            .map_err(ServeError::from)
            .and_then(|t| Ok(weft_pack::check_inputs(&t.resident.program, &inputs)?));
        if let Err(e) = checked {
            self.stats.failed += 1;
            events.push(Event::Failed { request, error: Arc::new(e) });
            return;
        }
        match self.scheduler.submit(request, now_us) {
            Ok(()) => {
                self.live.insert(request.id, Live { request, inputs, arena: None });
            }
            Err(error) => {
                self.stats.rejected += 1;
                events.push(Event::Rejected { request, error });
            }
        }
    }

    /// Forms and runs the next bundle, if any request is waiting; reports
    /// finished requests in `events`. Returns whether a bundle ran (or
    /// failed).
    pub fn step(&mut self, clock: &mut dyn Clock, events: &mut Vec<Event>) -> bool {
        let now = clock.now_us();
        let next = self.scheduler.next_bundle(now);
        // Steps no bundle could hold, not even alone: only their requests fail.
        let unformable = self.scheduler.take_unformable();
        let failed = !unformable.is_empty();
        for (request, error) in unformable {
            self.fail(request.id, Arc::new(ServeError::from(error)), events);
        }
        let dispatch = match next {
            Ok(Some(d)) => d,
            Ok(None) => return failed,
            Err(e) => {
                // The scheduler itself failed: fail what waits rather than spin.
                self.fail_everything(Arc::new(ServeError::from(e)), events);
                return true;
            }
        };
        self.stats.bundles += 1;
        self.stats.slots += dispatch.members.len() as u64;
        let before = self.exec.transfers();
        let result = self.run(&dispatch);
        let moved = self.exec.transfers().since(&before);
        self.stats.moved.add(&moved);
        match result {
            Ok((timing, fused)) => {
                clock.ran(&timing);
                self.stats.busy_us += timing.total_us;
                if let (true, Some(predicted)) = (fused, dispatch.predicted_us) {
                    self.stats.predicted_bundles += 1;
                    self.stats.predicted_us += predicted;
                    self.stats.predicted_measured_us += timing.total_us;
                }
                let end = clock.now_us();
                let dispatch = if fused { dispatch } else { dispatch.unlearned() };
                match self.scheduler.complete(dispatch, &timing, end) {
                    Ok(finished) => {
                        for f in finished {
                            self.finish(f.request.id, f.latency_us, f.met_slo, events);
                        }
                    }
                    Err(e) => self.fail_everything(Arc::new(ServeError::from(e)), events),
                }
            }
            Err(e) => {
                if e.is_hung() {
                    self.stats.hung_launches += 1;
                }
                let e = Arc::new(e);
                for dropped in self.scheduler.abort(dispatch) {
                    self.fail(dropped.id, e.clone(), events);
                }
                if self.exec.is_faulted() {
                    self.recover(events);
                }
            }
        }
        true
    }

    /// After a sticky fault (the launch's own requests already failed):
    /// rebuilds the executor, restores every tenant's weights, arenas and
    /// prepared modules, and restarts the requests that were in flight from
    /// their first step (their partial results were on the lost device).
    /// Where the executor cannot be rebuilt, every request fails.
    fn recover(&mut self, events: &mut Vec<Event>) {
        self.stats.recoveries += 1;
        let executor = self.exec.name().to_string();
        let recovered =
            self.exec.recover().map_err(|source| ServeError::Recover { executor, source: Box::new(source) });
        let restored = recovered.and_then(|()| {
            // Everything the executor held is gone: forget it, free nothing.
            for live in self.live.values_mut() {
                live.arena = None;
            }
            self.scheduler.restart_running();
            self.weights.clear();
            self.preparing.clear();
            let ids: Vec<TenantId> = self.tenants.keys().copied().collect();
            self.tenants.clear();
            for id in ids {
                self.make_resident(id)?;
            }
            Ok(())
        });
        if let Err(e) = restored {
            self.fail_everything(Arc::new(e), events);
        }
    }

    /// Fails every request the loop holds, queued or running, with `error`.
    fn fail_everything(&mut self, error: Arc<ServeError>, events: &mut Vec<Event>) {
        for dropped in self.scheduler.abort_all() {
            self.fail(dropped.id, error.clone(), events);
        }
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for id in ids {
            self.fail(id, error.clone(), events);
        }
    }

    /// Runs `dispatch`'s bundle: fused when its class is prepared, else as
    /// its prepared one-slot launches while the fused module is prepared in
    /// the background. Returns the timing and whether it ran fused.
    fn run(&mut self, dispatch: &Dispatch) -> Result<(Timing, bool), ServeError> {
        let bundle = &dispatch.bundle;
        // Every member's arena, with its inputs uploaded on its first step.
        let mut args = Vec::with_capacity(bundle.slots().len());
        for (slot, m) in bundle.slots().iter().zip(&dispatch.members) {
            let live = self.live.get_mut(&m.request).ok_or_else(|| SchedError::Completion {
                message: format!("request {} was dispatched but is not live", m.request),
            })?;
            let served = self
                .tenants
                .get_mut(&live.request.tenant)
                .ok_or(SchedError::UnknownTenant { tenant: live.request.tenant })?;
            if live.arena.is_none() {
                let arena = served.free.pop().ok_or_else(|| SchedError::Completion {
                    message: format!(
                        "tenant {} has no free arena for request {}: more requests in flight than arenas",
                        live.request.tenant.0, m.request
                    ),
                })?;
                let begun = served.resident.begin(self.exec, &arena, &live.inputs);
                live.arena = Some(arena);
                begun?;
            }
            let arena = live
                .arena
                .as_ref()
                .ok_or_else(|| SchedError::Completion { message: format!("request {} lost its arena", m.request) })?;
            args.push(served.resident.launch_args(arena, &slot.args)?);
        }
        let limit = self.watchdog.map(|w| w.bound(dispatch.predicted_us));
        self.exec.set_launch_limit(limit);
        let launch_err = |exec: &dyn Executor, b: &Bundle, source| RunError::Launch {
            bundle: 0,
            slots: weft_pack::run::describe(b),
            executor: exec.name().to_string(),
            source: Box::new(source),
        };
        if bundle.slots().len() <= 1 || self.exec.is_prepared(bundle.class()) {
            // Joins of this class are judged on the module the executor
            // loaded from here on (`weft_pack::grow`), once it says.
            if bundle.slots().len() > 1 && self.scheduler.resources().bundle(bundle.class()).is_none() {
                if let Some(figures) = self.exec.module_figures(bundle.class()) {
                    self.scheduler.resources().record_bundle(bundle.class(), figures);
                    self.stats.recorded_modules += 1;
                }
            }
            let began = std::time::Instant::now();
            let timing = self.exec.launch(bundle, &args);
            self.stats.launch_wall_us += began.elapsed().as_secs_f64() * 1e6;
            let timing = timing.map_err(|e| launch_err(self.exec, bundle, e))?;
            self.stats.launches += 1;
            if bundle.slots().len() > 1 {
                self.stats.fused_bundles += 1;
            }
            return Ok((timing, true));
        }
        if self.preparing.insert(bundle.class().clone()) {
            self.stats.background_prepares += 1;
            self.exec.prepare_in_background(bundle).map_err(|e| launch_err(self.exec, bundle, e))?;
        }
        self.stats.split_bundles += 1;
        let mut total = 0.0;
        let mut per_slot = Vec::with_capacity(bundle.slots().len());
        for (i, slot_args) in args.into_iter().enumerate() {
            let solo = bundle.single(i).map_err(SchedError::from)?;
            let began = std::time::Instant::now();
            let timing = self.exec.launch(&solo, &[slot_args]);
            self.stats.launch_wall_us += began.elapsed().as_secs_f64() * 1e6;
            let timing = timing.map_err(|e| launch_err(self.exec, &solo, e))?;
            self.stats.launches += 1;
            total += timing.total_us;
            per_slot.push(timing.total_us);
        }
        Ok((Timing { total_us: total, per_slot_us: Some(per_slot) }, false))
    }

    fn release_arena(&mut self, live: &mut Live) {
        if let (Some(arena), Some(served)) = (live.arena.take(), self.tenants.get_mut(&live.request.tenant)) {
            served.free.push(arena);
        }
    }

    fn finish(&mut self, id: u64, latency_us: f64, met_slo: bool, events: &mut Vec<Event>) {
        let Some(mut live) = self.live.remove(&id) else { return };
        let before = self.exec.transfers();
        let outputs = match (self.tenants.get(&live.request.tenant), live.arena.as_ref()) {
            (Some(served), Some(arena)) => served.resident.outputs(self.exec, arena).map_err(ServeError::from),
            _ => Err(SchedError::Completion { message: format!("request {id} finished without an arena") }.into()),
        };
        self.stats.moved.add(&self.exec.transfers().since(&before));
        self.release_arena(&mut live);
        match outputs {
            Ok(outputs) => {
                self.stats.completed += 1;
                events.push(Event::Completed { request: live.request, outputs, latency_us, met_slo });
            }
            Err(e) => {
                self.stats.failed += 1;
                events.push(Event::Failed { request: live.request, error: Arc::new(e) });
            }
        }
    }

    fn fail(&mut self, id: u64, error: Arc<ServeError>, events: &mut Vec<Event>) {
        let Some(mut live) = self.live.remove(&id) else { return };
        self.release_arena(&mut live);
        self.stats.failed += 1;
        events.push(Event::Failed { request: live.request, error });
    }

    /// Fails every live request with `error` (the loop is stopping; the
    /// scheduler is discarded with it).
    pub fn fail_all(&mut self, error: Arc<ServeError>, events: &mut Vec<Event>) {
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for id in ids {
            self.fail(id, error.clone(), events);
        }
    }

    /// Frees every arena and weight buffer.
    pub fn shutdown(mut self) {
        let ids: Vec<TenantId> = self.tenants.keys().copied().collect();
        for id in ids {
            if let Some(served) = self.tenants.remove(&id) {
                for mut a in served.free {
                    a.free(self.exec);
                }
            }
        }
        for (_, mut w) in std::mem::take(&mut self.weights) {
            if let Some(w) = Arc::get_mut(&mut w) {
                w.free(self.exec);
            }
        }
    }
}

/// Serves `arrivals` (`(tenant, time µs)`, sorted by time; request ids are
/// their indices) with `scheduler` on `exec` in simulated time: the clock
/// advances by each launch's measured time and jumps to the next arrival
/// when nothing waits. Every tenant's inputs are zeros (the study measures
/// time, not answers). `progress` is called after each bundle with the
/// fraction of arrivals offered so far. After the last arrival the loop
/// drains every admitted request. Deterministic for a deterministic
/// executor.
pub fn serve(
    scheduler: &mut Scheduler,
    arrivals: &[(TenantId, f64)],
    exec: &mut dyn Executor,
    progress: &mut dyn FnMut(f64),
) -> Result<ServeReport, SchedError> {
    let inputs: HashMap<TenantId, Arc<Vec<HostBuffer>>> = scheduler
        .tenants()
        .map(|t| {
            let p = &t.program;
            let zeros = p
                .inputs
                .iter()
                .filter_map(|b| p.buffers.get(b.buffer))
                .map(|info| HostBuffer::zeros(info.elem, info.len()))
                .collect();
            (t.id, Arc::new(zeros))
        })
        .collect();
    let name = scheduler.name();
    let tenants: Vec<(TenantId, String, f64)> = scheduler.tenants().map(|t| (t.id, t.name.clone(), t.slo_us)).collect();
    let executor_name = exec.name().to_string();
    let mut server = Server::new(scheduler, exec).map_err(|e| SchedError::Executor {
        executor: executor_name.clone(),
        slots: 0,
        message: e.to_string(),
    })?;
    let mut clock = SimClock::default();
    let mut next = 0usize;
    let mut records: Vec<RequestRecord> = Vec::with_capacity(arrivals.len());
    let mut events = Vec::new();
    let mut peak_live = 0usize;
    let mut peak_queue = 0usize;
    loop {
        while let Some(&(tenant, time)) = arrivals.get(next) {
            if time > clock.now_us {
                break;
            }
            let request = Request::new(tenant, next as u64, time);
            let x = inputs.get(&tenant).cloned().unwrap_or_default();
            server.submit(request, x, clock.now_us, &mut events);
            next += 1;
        }
        peak_live = peak_live.max(server.scheduler().live_requests());
        peak_queue = peak_queue.max(server.scheduler().longest_queue());
        let ran = server.step(&mut clock, &mut events);
        for e in events.drain(..) {
            match e {
                Event::Completed { request, latency_us, met_slo, .. } => records.push(RequestRecord {
                    tenant: request.tenant,
                    request: request.id,
                    arrival_us: request.arrival_us,
                    outcome: Outcome::Completed { latency_us, met_slo },
                }),
                Event::Rejected { request, error: SchedError::Rejected { .. } } => records.push(RequestRecord {
                    tenant: request.tenant,
                    request: request.id,
                    arrival_us: request.arrival_us,
                    outcome: Outcome::Rejected,
                }),
                Event::Rejected { error, .. } => return Err(error),
                Event::Failed { error, .. } => {
                    return Err(SchedError::Executor {
                        executor: executor_name.clone(),
                        slots: 0,
                        message: error.to_string(),
                    })
                }
            }
        }
        if ran {
            progress(next as f64 / arrivals.len().max(1) as f64);
        } else {
            match arrivals.get(next) {
                Some(&(_, time)) => clock.idle_until(time),
                None => break,
            }
        }
    }
    let stats = *server.stats();
    server.shutdown();
    records.sort_by_key(|r| r.request);
    Ok(ServeReport::new(
        name,
        &tenants,
        records,
        clock.now_us,
        stats.busy_us,
        stats.bundles,
        stats.slots,
        peak_live,
        peak_queue,
    ))
}
