//! The scheduler: tenants, bounded request queues, deadlines, admission, and
//! the choice of the next bundle.
//!
//! **Requests.** A request is `(tenant, id, arrival, slo, priority)`; its
//! deadline is `arrival + SLO`, the request's own SLO when it gives one, its
//! tenant's otherwise; it runs its tenant's program steps in order. Its
//! priority class is strict: every policy orders ready requests by class
//! first (highest first), tenants start their highest queued class first,
//! and admission counts only the work of its own and higher classes ahead
//! of it ([`Request`]). A tenant
//! serves its queue **one request at a time**: a tenant instance owns one set
//! of activation buffers (a [`TenantId`] in the packer), so its next request
//! starts when the previous one's last step has run. More concurrency for one
//! model is more tenants. Queued (not yet started) requests are bounded by
//! [`SchedulerConfig::queue_capacity`]; with at most one request running per
//! tenant, the live state is bounded by `tenants × (capacity + 1)` however
//! far the offered load exceeds capacity.
//!
//! **Ready kernels.** Each tenant with a running request offers one ready
//! kernel: the request's current step. [`Scheduler::next_bundle`] forms a
//! bundle from them according to the policy ([`PolicyKind`]); the caller runs
//! it and reports the measured time with [`Scheduler::complete`], which
//! advances every member's request by one step, completes requests whose last
//! step ran, and feeds the measurement to the predictor.
//!
//! **SLO-aware bundles** ([`PolicyKind::SloAware`]). For each ready kernel,
//! `remaining` is the predicted solo time of its request's steps from the
//! current one on (sum of the predictor's solo step times) and `slack =
//! deadline - now - remaining`; a request with `slack >= 0` is *on track*.
//! Candidates are ordered on-track first, then by an *effective deadline*
//! `now + (deadline - now) / (weight × (1 + fairness_gain × lag))`, where
//! `lag` is how far the tenant's recent SLO attainment trails the mean of all
//! tenants (plain EDF when weights are equal and nobody lags). The bundle
//! is grown by the packer's one growth rule ([`weft_pack::grow`], which
//! `weft_pack::plan` uses too) over the candidates in that order: the first
//! always runs; each next one joins if
//!
//! 1. the packer's shaping rules allow the wider bundle
//!    ([`weft_pack::shape`](mod@weft_pack::shape)),
//! 2. the wider bundle is predicted no slower than the current one
//!    followed by the candidate alone (packing must not cost), and
//! 3. every on-track member stays on track at the pace the knob allows: the
//!    bundle's predicted time `T` satisfies `T <= solo × (1 + knob × pace)`
//!    for each member, where `pace = slack / remaining` (its slack spread
//!    over its remaining steps; knob 0: nobody slower than alone). Because a
//!    tenant serves one request at a time, its queued requests wait behind
//!    the running one: `pace` is the least of the running request's and of
//!    each on-track queued request's `slack / remaining`, with the queued
//!    request's remaining work counting everything ahead of it.
//!
//! Requests already behind (negative slack) are served after on-track ones
//! and do not constrain bundles: they miss anyway, and protecting them would
//! make on-track requests miss too.
//!
//! **Admission** (SloAware, when enabled). An arrival is rejected with
//! [`SchedError::Rejected`] when its queue is full, or when its predicted
//! latency exceeds `admission_margin × SLO`: the predicted latency is the
//! time it has already waited plus `max(own, (own + ahead) / speedup)`,
//! where `own` is the predicted solo work of its tenant's running and queued
//! requests plus its own, times the tenant's measured stretch (recent
//! service time over solo latency: its steps share bundles), `ahead` the
//! work of other tenants' requests with earlier deadlines, and `speedup` the
//! measured packing gain (solo work per bundle time, a moving average).
//! Other policies only bound queues.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use weft_kir::{KernelDef, Target};
use weft_lower::{BufferId, Program};
use weft_pack::{
    assemble, grow, shape, Budget, Bundle, CostModel, FormError, Member, Offer, PackMode, PreparedKernel,
    RefusalReason, ResourceTable, Shape, ShapeRefusal, TenantId, Timing,
};
use weft_predict::{BundleFeatures, DeviceModel, Measured, Predictor, PredictorCost};

use crate::error::{RejectReason, SchedError};
use crate::policy::{PolicyKind, SchedulerConfig};

/// A tenant: a model instance with an SLO and a weight.
#[derive(Clone, Debug)]
pub struct TenantSpec {
    pub id: TenantId,
    pub name: String,
    pub program: Arc<Program>,
    /// Latency objective from arrival to completion, µs.
    pub slo_us: f64,
    /// Relative importance in ordering (1 = equal).
    pub weight: f64,
}

/// A request for one run of a tenant's program.
///
/// Its deadline is `arrival_us + slo_us`, where `slo_us` is the request's
/// own objective when given (it must be a positive finite number of µs) and
/// its tenant's otherwise. `priority` is its class: among ready requests a
/// higher class is always dispatched first, and admission weighs a request
/// only against the work of its own class and higher ones, so under
/// overload the lowest class is refused first (0 is the default class).
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Request {
    pub tenant: TenantId,
    pub id: u64,
    pub arrival_us: f64,
    /// The request's own latency objective, µs, overriding its tenant's.
    pub slo_us: Option<f64>,
    /// Its priority class: higher classes are served first and refused last.
    pub priority: u8,
}

impl Request {
    /// A request of the default class with its tenant's objective.
    pub fn new(tenant: TenantId, id: u64, arrival_us: f64) -> Request {
        Request { tenant, id, arrival_us, slo_us: None, priority: 0 }
    }

    /// The same request with its own objective of `slo_us` µs.
    pub fn with_slo_us(mut self, slo_us: f64) -> Request {
        self.slo_us = Some(slo_us);
        self
    }

    /// The same request in priority class `priority`.
    pub fn with_priority(mut self, priority: u8) -> Request {
        self.priority = priority;
        self
    }
}

/// One member of a dispatched bundle: which request's which step.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct DispatchedStep {
    pub tenant: TenantId,
    pub request: u64,
    pub step: usize,
}

/// A bundle to run, as [`Scheduler::next_bundle`] chose it.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub bundle: Bundle,
    /// One per slot of `bundle`, in slot order.
    pub members: Vec<DispatchedStep>,
    /// The predictor's estimate (SloAware only).
    pub predicted_us: Option<f64>,
    features: Option<BundleFeatures>,
}

/// A request that ran its last step.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Finished {
    pub request: Request,
    pub latency_us: f64,
    pub met_slo: bool,
}

/// A request being served: its current step.
#[derive(Copy, Clone, Debug)]
struct Running {
    request: Request,
    step: usize,
    /// When its first step was dispatched.
    started_us: f64,
}

#[derive(Debug)]
struct TenantEntry {
    spec: TenantSpec,
    /// Per step: index into the scheduler's kernel table, and the buffers.
    steps: Vec<(usize, Vec<BufferId>)>,
    /// `suffix_us[i]`: predicted solo time of steps `i..` (len steps + 1).
    suffix_us: Vec<f64>,
    queue: VecDeque<Request>,
    /// Requests being served, oldest first (at most `in_flight_limit`).
    running: Vec<Running>,
    /// Recent SLO attainment (a moving average over finished requests).
    attainment: f64,
    /// Recent service time (first dispatch to completion) over the
    /// predicted solo latency (a moving average over finished requests).
    stretch: f64,
}

impl TenantEntry {
    fn program_us(&self) -> f64 {
        self.suffix_us.first().copied().unwrap_or(0.0)
    }

    /// The request's objective: its own, else its tenant's.
    fn objective(&self, r: &Request) -> f64 {
        r.slo_us.unwrap_or(self.spec.slo_us)
    }

    fn deadline(&self, r: &Request) -> f64 {
        r.arrival_us + self.objective(r)
    }

    /// The index in `queue` of the request to start next: the highest
    /// class, then (when `edf`) the earliest deadline, then the oldest.
    fn next_queued(&self, edf: bool) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                let by_deadline =
                    if edf { self.deadline(a).total_cmp(&self.deadline(b)) } else { std::cmp::Ordering::Equal };
                b.priority
                    .cmp(&a.priority)
                    .then(by_deadline)
                    .then(a.arrival_us.total_cmp(&b.arrival_us))
                    .then(a.id.cmp(&b.id))
            })
            .map(|(i, _)| i)
    }
}

/// A ready kernel being considered for the next bundle.
#[derive(Clone, Debug)]
struct Candidate {
    tenant_index: usize,
    request: Request,
    step: usize,
    priority: u8,
    deadline: f64,
    slack: f64,
    /// The least `slack / remaining` of the request and of its tenant's
    /// queued requests that are still on track (they start after it).
    pace: f64,
    solo: f64,
    key: f64,
}

/// Weight of the newest finished request in a tenant's attainment average.
const ATTAINMENT_ALPHA: f64 = 0.05;
/// Weight of the newest bundle in the measured packing gain and stretch.
const GAIN_ALPHA: f64 = 0.05;

/// The SLO-aware multi-tenant scheduler; see the module docs.
pub struct Scheduler {
    config: SchedulerConfig,
    limits: Target,
    /// Block resources of kernel bodies: ptxas's where the compiler recorded
    /// them, else estimated.
    resources: Arc<ResourceTable>,
    /// The predictor, pricing bundles through the packer's cost interface.
    cost: PredictorCost<Box<dyn Predictor>>,
    tenants: Vec<TenantEntry>,
    /// Distinct prepared kernels of the registered tenants, their predicted
    /// solo times and how many tenants' steps use each: a kernel no step
    /// uses leaves when its last tenant does ([`Scheduler::remove_tenant`]).
    kernels: Vec<Arc<PreparedKernel>>,
    solo_us: Vec<f64>,
    users: Vec<usize>,
    /// Requests whose step could not be formed into any bundle.
    unformable: Vec<(Request, SchedError)>,
    bundles: u64,
    /// Measured solo work per bundle time (> 1 when packing pays).
    speedup: f64,
    dispatched: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("policy", &self.name())
            .field("tenants", &self.tenants.len())
            .field("bundles", &self.bundles)
            .finish()
    }
}

impl Scheduler {
    /// A scheduler running `config` on a device with `limits`, predicting
    /// with `predictor` (only SloAware consults it for decisions).
    pub fn new(config: SchedulerConfig, limits: Target, predictor: Box<dyn Predictor>) -> Scheduler {
        Scheduler {
            config,
            limits,
            resources: Arc::new(ResourceTable::new()),
            cost: PredictorCost::new(predictor, DeviceModel::sm_90_with(limits)),
            tenants: Vec::new(),
            kernels: Vec::new(),
            solo_us: Vec::new(),
            users: Vec::new(),
            unformable: Vec::new(),
            bundles: 0,
            speedup: 1.0,
            dispatched: false,
        }
    }

    /// Shapes bundles and predicts with the block resources in `table`
    /// (the one the compiler records ptxas's reports in), instead of an
    /// empty one. Kernels are shaped when their tenant is added, so the
    /// table should hold them by then.
    pub fn with_resources(mut self, table: Arc<ResourceTable>) -> Scheduler {
        self.resources = table;
        self
    }

    /// The table bundles are shaped with.
    pub fn resources(&self) -> &Arc<ResourceTable> {
        &self.resources
    }

    /// The block resources the scheduler plans step `step` of `tenant` with:
    /// ptxas's figures once recorded, else the estimate.
    pub fn step_resources(&self, tenant: TenantId, step: usize) -> Result<weft_pack::KernelResources, SchedError> {
        let t = &self.tenants[self.tenant_index(tenant)?];
        let (kernel, _) = t.steps.get(step).ok_or_else(|| SchedError::InvalidTenant {
            tenant,
            name: t.spec.name.clone(),
            message: format!("it has {} steps, not {}", t.steps.len(), step + 1),
        })?;
        Ok(self.kernels[*kernel].resources)
    }

    /// Records ptxas's `report` for the compiled `body` (a prepared kernel's
    /// isolated body, as [`Scheduler::solo_bundles`] hands it out) and
    /// reshapes every prepared kernel of that body on the measured figures:
    /// occupancy, needs and predicted solo times change from here on.
    /// Returns whether a prepared kernel changed.
    pub fn record_resources(&mut self, body: &KernelDef, report: &weft_pack::ResourceReport) -> bool {
        let measured = self.resources.record_module(body, report);
        let mut changed = false;
        for (k, solo) in self.kernels.iter_mut().zip(self.solo_us.iter_mut()) {
            if **k.kernel() == *body && k.resources != measured {
                let updated = k.with_resources(measured, &self.limits);
                *solo = self.cost.solo_time(&updated).max(0.0);
                *k = Arc::new(updated);
                changed = true;
            }
        }
        if changed {
            for t in &mut self.tenants {
                t.suffix_us = suffix(&t.steps, &self.solo_us);
            }
        }
        changed
    }

    /// The policy's name for tables: the baselines by kind, SloAware by
    /// its predictor.
    pub fn name(&self) -> String {
        if let Some(label) = &self.config.label {
            return label.clone();
        }
        match self.config.kind {
            PolicyKind::TimeOnlyFifo => "time-only FIFO".to_string(),
            PolicyKind::SpaceOnly => "space-only".to_string(),
            PolicyKind::PackedGreedy => "packed greedy".to_string(),
            PolicyKind::SloAware => format!("packed + {}", self.cost.name()),
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Registers a tenant; its kernels are verified and isolated now.
    pub fn add_tenant(&mut self, spec: TenantSpec) -> Result<(), SchedError> {
        if self.tenants.iter().any(|t| t.spec.id == spec.id) {
            return Err(SchedError::DuplicateTenant { tenant: spec.id });
        }
        let invalid = |message: &str| SchedError::InvalidTenant {
            tenant: spec.id,
            name: spec.name.clone(),
            message: message.to_string(),
        };
        if !(spec.slo_us > 0.0 && spec.slo_us.is_finite()) {
            return Err(invalid("the SLO must be a positive number of µs"));
        }
        if !(spec.weight > 0.0 && spec.weight.is_finite()) {
            return Err(invalid("the weight must be positive"));
        }
        if spec.program.steps.is_empty() {
            return Err(invalid("the program has no steps"));
        }
        let mut steps = Vec::with_capacity(spec.program.steps.len());
        // Steps sharing one kernel `Arc` are prepared once (the program holds
        // them alive for this call, so their addresses are stable here).
        let mut seen: HashMap<*const KernelDef, usize> = HashMap::new();
        for (i, step) in spec.program.steps.iter().enumerate() {
            let index = match seen.get(&Arc::as_ptr(&step.kernel)) {
                Some(&index) => index,
                None => match self.prepare(&step.kernel) {
                    Ok(index) => {
                        seen.insert(Arc::as_ptr(&step.kernel), index);
                        index
                    }
                    Err(e) => {
                        self.collect_unused();
                        return Err(e);
                    }
                },
            };
            let k = &self.kernels[index];
            if !k.solo.fits() {
                let error = SchedError::Unlaunchable {
                    tenant: spec.id,
                    step: i,
                    kernel: k.kernel().name.clone(),
                    limiter: k.solo.limiter,
                };
                self.collect_unused();
                return Err(error);
            }
            steps.push((index, step.args.clone()));
        }
        for (index, _) in &steps {
            self.users[*index] += 1;
        }
        let mut entry = TenantEntry {
            spec,
            steps,
            suffix_us: Vec::new(),
            queue: VecDeque::new(),
            running: Vec::new(),
            attainment: 1.0,
            stretch: 1.0,
        };
        entry.suffix_us = suffix(&entry.steps, &self.solo_us);
        self.tenants.push(entry);
        Ok(())
    }

    /// The kernel-table index of `kernel`, preparing it (and predicting its
    /// solo time) on first sight; equal kernels of different tenants share
    /// one entry (found by body fingerprint, confirmed by equality).
    fn prepare(&mut self, kernel: &Arc<KernelDef>) -> Result<usize, SchedError> {
        let fingerprint = weft_pack::body_fingerprint(kernel);
        if let Some(i) = self.kernels.iter().position(|k| k.fingerprint() == fingerprint && **k.kernel() == **kernel) {
            return Ok(i);
        }
        let prepared = PreparedKernel::new(kernel, &self.limits, &*self.resources)?;
        // Isolation may rewrite the body; an equal rewritten body is shared too.
        if let Some(i) = self
            .kernels
            .iter()
            .position(|k| k.fingerprint() == prepared.fingerprint() && *k.kernel() == *prepared.kernel())
        {
            return Ok(i);
        }
        self.solo_us.push(self.cost.solo_time(&prepared).max(0.0));
        self.kernels.push(Arc::new(prepared));
        self.users.push(0);
        Ok(self.kernels.len() - 1)
    }

    /// Drops the prepared kernels no tenant's step uses and renumbers the
    /// rest in the tenants' steps (dispatched bundles hold their kernels by
    /// `Arc`, not by index, so nothing in flight is affected).
    fn collect_unused(&mut self) {
        if self.users.iter().all(|&u| u > 0) {
            return;
        }
        let mut renumber = vec![usize::MAX; self.kernels.len()];
        let (mut kernels, mut solo_us, mut users) = (Vec::new(), Vec::new(), Vec::new());
        for (i, ((k, solo), u)) in self.kernels.iter().zip(&self.solo_us).zip(&self.users).enumerate() {
            if *u > 0 {
                renumber[i] = kernels.len();
                kernels.push(k.clone());
                solo_us.push(*solo);
                users.push(*u);
            }
        }
        (self.kernels, self.solo_us, self.users) = (kernels, solo_us, users);
        for t in &mut self.tenants {
            for (index, _) in &mut t.steps {
                *index = renumber[*index];
            }
        }
    }

    /// Distinct prepared kernels the scheduler holds (those of its
    /// registered tenants).
    pub fn prepared_kernels(&self) -> usize {
        self.kernels.len()
    }

    /// The body fingerprints of the prepared kernels: what a launch class
    /// of a registered tenant's bundle is made of.
    pub fn kernel_fingerprints(&self) -> HashSet<u64> {
        self.kernels.iter().map(|k| k.fingerprint()).collect()
    }

    /// Re-predicts every kernel's solo time (the predictor may have learned).
    fn refresh(&mut self) {
        for (k, solo) in self.kernels.iter().zip(self.solo_us.iter_mut()) {
            *solo = self.cost.solo_time(k).max(0.0);
        }
        for t in &mut self.tenants {
            t.suffix_us = suffix(&t.steps, &self.solo_us);
        }
    }

    /// Requests one tenant may have in flight under this policy: one for a
    /// stream per tenant (a stream runs its requests in order), the
    /// configured number otherwise. The serving loop gives a tenant this
    /// many arenas.
    pub fn in_flight_limit(&self) -> usize {
        match self.config.kind {
            PolicyKind::SpaceOnly | PolicyKind::TimeOnlyFifo => 1,
            PolicyKind::PackedGreedy | PolicyKind::SloAware => self.config.max_in_flight.max(1),
        }
    }

    fn tenant_index(&self, tenant: TenantId) -> Result<usize, SchedError> {
        self.tenants.iter().position(|t| t.spec.id == tenant).ok_or(SchedError::UnknownTenant { tenant })
    }

    /// Predicted solo latency of one request of `tenant` (sum of its steps'
    /// predicted solo times).
    pub fn solo_latency_us(&self, tenant: TenantId) -> Result<f64, SchedError> {
        Ok(self.tenants[self.tenant_index(tenant)?].program_us())
    }

    /// Requests queued (not started) for `tenant`.
    pub fn queue_len(&self, tenant: TenantId) -> Result<usize, SchedError> {
        Ok(self.tenants[self.tenant_index(tenant)?].queue.len())
    }

    /// Requests queued or running, all tenants.
    pub fn live_requests(&self) -> usize {
        self.tenants.iter().map(|t| t.queue.len() + t.running.len()).sum()
    }

    /// The longest queue of any tenant.
    pub fn longest_queue(&self) -> usize {
        self.tenants.iter().map(|t| t.queue.len()).max().unwrap_or(0)
    }

    /// The registered tenants, in registration order.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantSpec> {
        self.tenants.iter().map(|t| &t.spec)
    }

    /// Offers a request at time `now_us` (at or after its arrival). Refused
    /// with [`SchedError::UnknownTenant`] or [`SchedError::Rejected`].
    pub fn submit(&mut self, request: Request, now_us: f64) -> Result<(), SchedError> {
        let i = self.tenant_index(request.tenant)?;
        if let Some(slo_us) = request.slo_us {
            if !(slo_us > 0.0 && slo_us.is_finite()) {
                return Err(SchedError::InvalidRequest {
                    tenant: request.tenant,
                    request: request.id,
                    message: format!("its objective (slo_us) is {slo_us}: give a positive finite number of µs"),
                });
            }
        }
        let reject = |reason| SchedError::Rejected { tenant: request.tenant, request: request.id, reason };
        let capacity = self.config.queue_capacity.max(1);
        if self.tenants[i].queue.len() >= capacity {
            return Err(reject(RejectReason::QueueFull { capacity }));
        }
        if self.config.kind == PolicyKind::SloAware && self.config.admission {
            let predicted_us = self.predicted_latency(i, &request, now_us);
            let slo_us = self.tenants[i].objective(&request);
            if predicted_us > self.config.admission_margin * slo_us {
                return Err(reject(RejectReason::SloUnreachable { predicted_us, slo_us }));
            }
        }
        self.tenants[i].queue.push_back(request);
        Ok(())
    }

    /// The admission estimate of `request`'s latency (module docs).
    fn predicted_latency(&self, i: usize, request: &Request, now_us: f64) -> f64 {
        let me = &self.tenants[i];
        let deadline = me.deadline(request);
        let limit = self.in_flight_limit();
        // Its own chain: it starts once the requests ahead of it in its
        // tenant leave room, then runs its steps in order, stretched as its
        // tenant's recent requests were.
        let program = me.program_us() * me.stretch.max(1.0);
        let before = (me.running.len() + me.queue.len() + 1).saturating_sub(limit);
        let own = program * (1.0 + before as f64 / limit as f64);
        // The shared device: all work served before it (a higher class, or
        // its own class with an earlier deadline), at the measured packing
        // gain. Lower classes yield to it, so they do not count.
        let before_it = |t: &TenantEntry, r: &Request| {
            r.priority > request.priority || (r.priority == request.priority && t.deadline(r) <= deadline)
        };
        let mut ahead = me.program_us();
        for t in &self.tenants {
            for r in &t.running {
                if before_it(t, &r.request) {
                    ahead += t.suffix_us.get(r.step).copied().unwrap_or(0.0);
                }
            }
            ahead += t.queue.iter().filter(|r| before_it(t, r)).count() as f64 * t.program_us();
        }
        let waited = (now_us - request.arrival_us).max(0.0);
        waited + own.max(ahead / self.speedup.max(1e-3))
    }

    /// Chooses the next bundle at time `now_us`, or `None` when no request
    /// is waiting. Call [`Scheduler::complete`] with its timing before the
    /// next call.
    pub fn next_bundle(&mut self, now_us: f64) -> Result<Option<Dispatch>, SchedError> {
        if self.dispatched {
            return Err(SchedError::Completion { message: "the previous bundle has not been completed".to_string() });
        }
        // Tenants with room start their queued requests: highest class
        // first, then earliest deadline (arrival order for time-only FIFO),
        // then oldest.
        let limit = self.in_flight_limit();
        let edf = self.config.kind != PolicyKind::TimeOnlyFifo;
        for t in &mut self.tenants {
            while t.running.len() < limit {
                let Some(next) = t.next_queued(edf) else { break };
                let Some(request) = t.queue.remove(next) else { break };
                t.running.push(Running { request, step: 0, started_us: now_us });
            }
        }
        let cands = self.candidates(now_us);
        if cands.is_empty() {
            return Ok(None);
        }
        let dispatch = match self.choose(cands.clone()) {
            Ok(d) => d,
            // A bundle that cannot be formed fails only the steps that
            // cannot run at all: each candidate is tried alone, the first
            // that forms runs, and those that do not leave the scheduler
            // ([`Scheduler::take_unformable`]).
            Err(_) => {
                let mut alone = None;
                for c in cands {
                    match self.alone(&c) {
                        Ok(d) => {
                            alone = Some(d);
                            break;
                        }
                        Err(e) => {
                            let t = &mut self.tenants[c.tenant_index];
                            t.running.retain(|r| r.request.id != c.request.id);
                            self.unformable.push((c.request, e));
                        }
                    }
                }
                match alone {
                    Some(d) => d,
                    None => return Ok(None),
                }
            }
        };
        self.dispatched = true;
        Ok(Some(dispatch))
    }

    /// `c` alone, with its full grid.
    fn alone(&mut self, c: &Candidate) -> Result<Dispatch, SchedError> {
        let shape = self.shape_alone(std::slice::from_ref(c), c.tenant_index)?;
        self.dispatch(std::slice::from_ref(c), shape.budgets, None)
    }

    /// Requests dropped because no bundle, not even their step alone, could
    /// be formed for them, with why; the caller fails them.
    pub fn take_unformable(&mut self) -> Vec<(Request, SchedError)> {
        std::mem::take(&mut self.unformable)
    }

    /// The policy's bundle over `cands` (module docs).
    fn choose(&mut self, mut cands: Vec<Candidate>) -> Result<Dispatch, SchedError> {
        let dispatch = match self.config.kind {
            PolicyKind::TimeOnlyFifo => {
                cands.sort_by(|a, b| {
                    b.priority
                        .cmp(&a.priority)
                        .then(a.request.arrival_us.total_cmp(&b.request.arrival_us))
                        .then(a.tenant_index.cmp(&b.tenant_index))
                        .then(a.request.id.cmp(&b.request.id))
                });
                cands.truncate(1);
                self.dispatch(&cands, vec![Budget::Full], None)?
            }
            PolicyKind::SpaceOnly => {
                // Streams share the hardware whatever their shapes, except
                // that a bundle cannot mix block shapes illegally: such a
                // kernel waits for the next round.
                let mut chosen: Vec<Candidate> = Vec::new();
                cands.sort_by_key(|c| std::cmp::Reverse(c.priority));
                for c in cands {
                    let mut trial = chosen.clone();
                    trial.push(c);
                    let fits = match shape(&self.members(&trial), &self.limits, PackMode::Coalesce) {
                        Ok(_) | Err(ShapeRefusal::Occupancy { .. }) | Err(ShapeRefusal::Capacity { .. }) => true,
                        Err(ShapeRefusal::BlockShape { .. }) => chosen.is_empty(),
                        Err(ShapeRefusal::Empty) | Err(ShapeRefusal::Grid { .. }) => false,
                    };
                    if fits {
                        chosen = trial;
                    }
                }
                let full = vec![Budget::Full; chosen.len()];
                self.dispatch(&chosen, full, None)?
            }
            PolicyKind::PackedGreedy => {
                cands.sort_by(|a, b| {
                    b.priority
                        .cmp(&a.priority)
                        .then(a.deadline.total_cmp(&b.deadline))
                        .then(a.tenant_index.cmp(&b.tenant_index))
                        .then(a.request.id.cmp(&b.request.id))
                });
                let mut chosen = vec![cands[0].clone()];
                let mut budgets = self.shape_alone(&chosen, cands[0].tenant_index)?.budgets;
                for c in cands.iter().skip(1) {
                    let mut trial = chosen.clone();
                    trial.push(c.clone());
                    if let Ok(s) = shape(&self.members(&trial), &self.limits, self.config.mode) {
                        chosen = trial;
                        budgets = s.budgets;
                    }
                }
                self.dispatch(&chosen, budgets, None)?
            }
            PolicyKind::SloAware => self.slo_aware(cands)?,
        };
        Ok(dispatch)
    }

    /// Every running request's current step, with its deadline arithmetic.
    fn candidates(&self, now_us: f64) -> Vec<Candidate> {
        let finished: Vec<f64> = self.tenants.iter().map(|t| t.attainment).collect();
        let mean = finished.iter().sum::<f64>() / finished.len().max(1) as f64;
        let limit = self.in_flight_limit();
        self.tenants
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.running.iter().map(move |r| (i, t, *r)))
            .filter_map(|(i, t, r)| {
                let (kernel, _) = t.steps.get(r.step)?;
                let deadline = t.deadline(&r.request);
                let remaining = t.suffix_us.get(r.step).copied().unwrap_or(0.0);
                let lag = (mean - t.attainment).max(0.0);
                let urgency = t.spec.weight * (1.0 + self.config.fairness_gain * lag);
                let slack = deadline - now_us - remaining;
                let mut pace = slack / remaining.max(1e-9);
                // Queued requests start as running ones finish: the j-th
                // waits for about `j / limit` more requests after this one.
                for (j, q) in t.queue.iter().enumerate() {
                    let ahead = remaining + (1 + j / limit) as f64 * t.program_us();
                    let queued_slack = t.deadline(q) - now_us - ahead;
                    if queued_slack >= 0.0 {
                        pace = pace.min(queued_slack / ahead.max(1e-9));
                    }
                }
                Some(Candidate {
                    tenant_index: i,
                    request: r.request,
                    step: r.step,
                    priority: r.request.priority,
                    deadline,
                    slack,
                    pace,
                    solo: self.solo_us.get(*kernel).copied().unwrap_or(0.0),
                    key: now_us + (deadline - now_us) / urgency.max(1e-9),
                })
            })
            .collect()
    }

    /// The SLO-aware choice (module docs, rules 1–3): the packer's growth
    /// rule ([`weft_pack::grow`]) over candidates in deadline order, with
    /// each on-track member's pace as the slowdown it tolerates.
    fn slo_aware(&mut self, mut cands: Vec<Candidate>) -> Result<Dispatch, SchedError> {
        cands.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then((a.slack < 0.0).cmp(&(b.slack < 0.0)))
                .then(a.key.total_cmp(&b.key))
                .then(a.tenant_index.cmp(&b.tenant_index))
                .then(a.request.id.cmp(&b.request.id))
        });
        // The caller offers at least one candidate; each names an existing
        // step (the two lists stay aligned).
        let lead = cands[0].tenant_index;
        let (cands, offers): (Vec<Candidate>, Vec<Offer>) = cands
            .into_iter()
            .filter_map(|c| {
                let member = self.member(&c)?;
                let solo_time = c.solo;
                Some((c, Offer { member, solo_time }))
            })
            .unzip();
        let knob = self.config.knob.clamp(0.0, 1.0);
        let mut accept = |trial: &[usize], t: f64| {
            trial.iter().find_map(|&i| {
                let m = &cands[i];
                let tolerated = 1.0 + knob * m.pace.max(0.0);
                let on_pace = m.slack < 0.0 || t <= m.solo * tolerated * (1.0 + 1e-9);
                (!on_pace).then(|| RefusalReason::Slowdown {
                    member: m.request.tenant,
                    member_kernel: offers[i].member.kernel.kernel().name.clone(),
                    slowdown: t / m.solo.max(f64::MIN_POSITIVE),
                    tolerated,
                })
            })
        };
        let resources = &*self.resources;
        let grown =
            grow(&offers, &self.limits, self.config.mode, resources, &mut self.cost, &mut accept, &mut |_, _| {})
                .map_err(|e| match e {
                    FormError::Refused(refusal) => self.cannot_form_alone(lead, &refusal),
                    FormError::Pack(e) => SchedError::Pack(e),
                })?;
        let (prediction, features) = self.cost.predict(&grown.shaped);
        let members = grown
            .chosen
            .iter()
            .map(|&i| &cands[i])
            .map(|c| DispatchedStep { tenant: c.request.tenant, request: c.request.id, step: c.step })
            .collect();
        Ok(Dispatch {
            bundle: grown.shaped.bundle,
            members,
            predicted_us: Some(prediction.total_us),
            features: Some(features),
        })
    }

    /// The shape of `chosen`, which must form a bundle (the first member
    /// alone always does: it fits its own SM, checked at registration).
    fn shape_alone(&self, chosen: &[Candidate], tenant_index: usize) -> Result<Shape, SchedError> {
        shape(&self.members(chosen), &self.limits, self.config.mode)
            .map_err(|refusal| self.cannot_form_alone(tenant_index, &refusal))
    }

    /// The error for a tenant's kernel that cannot form a bundle alone.
    fn cannot_form_alone(&self, tenant_index: usize, refusal: &ShapeRefusal) -> SchedError {
        let t = &self.tenants[tenant_index];
        SchedError::InvalidTenant {
            tenant: t.spec.id,
            name: t.spec.name.clone(),
            message: format!("a kernel cannot form a bundle alone: {refusal}"),
        }
    }

    /// `c`'s step as a bundle member.
    fn member(&self, c: &Candidate) -> Option<Member> {
        let t = &self.tenants[c.tenant_index];
        let (kernel, args) = t.steps.get(c.step)?;
        Some(Member { kernel: self.kernels[*kernel].clone(), tenant: t.spec.id, args: args.clone() })
    }

    fn members(&self, chosen: &[Candidate]) -> Vec<Member> {
        chosen.iter().filter_map(|c| self.member(c)).collect()
    }

    fn dispatch(
        &mut self,
        chosen: &[Candidate],
        budgets: Vec<Budget>,
        predicted_us: Option<f64>,
    ) -> Result<Dispatch, SchedError> {
        let bundle = assemble(&self.members(chosen), &budgets)?;
        let members = chosen
            .iter()
            .map(|c| DispatchedStep { tenant: c.request.tenant, request: c.request.id, step: c.step })
            .collect();
        Ok(Dispatch { bundle, members, predicted_us, features: None })
    }

    /// Reports that `dispatch` ran in `timing` and ended at `end_us`:
    /// advances its members, returns the requests that finished, and lets
    /// the predictor learn from the measurement.
    pub fn complete(&mut self, dispatch: Dispatch, timing: &Timing, end_us: f64) -> Result<Vec<Finished>, SchedError> {
        if !self.dispatched {
            return Err(SchedError::Completion { message: "no bundle was dispatched".to_string() });
        }
        self.dispatched = false;
        if let Some(f) = &dispatch.features {
            let measured = Measured { total_us: timing.total_us, per_slot_us: timing.per_slot_us.clone() };
            self.cost.observe(f, &measured);
        }
        let mut finished = Vec::new();
        let mut solo_sum = 0.0;
        for m in &dispatch.members {
            let i = self.tenant_index(m.tenant)?;
            let t = &mut self.tenants[i];
            let program_us = t.program_us();
            let Some(slot) = t.running.iter().position(|r| r.request.id == m.request && r.step == m.step) else {
                return Err(SchedError::Completion {
                    message: format!("tenant {} request {} step {} is not running", m.tenant.0, m.request, m.step),
                });
            };
            let solo = t.steps.get(m.step).and_then(|(k, _)| self.solo_us.get(*k)).copied().unwrap_or(0.0);
            solo_sum += solo;
            let running = &mut t.running[slot];
            running.step += 1;
            if running.step >= t.steps.len() {
                let running = t.running.remove(slot);
                let request = running.request;
                let latency_us = end_us - request.arrival_us;
                let met_slo = latency_us <= t.objective(&request);
                t.attainment += ATTAINMENT_ALPHA * (f64::from(u8::from(met_slo)) - t.attainment);
                if program_us > 0.0 {
                    let stretch = (end_us - running.started_us) / program_us;
                    t.stretch += GAIN_ALPHA * (stretch - t.stretch);
                }
                finished.push(Finished { request, latency_us, met_slo });
            }
        }
        if timing.total_us > 0.0 && timing.total_us.is_finite() && !dispatch.members.is_empty() {
            self.speedup += GAIN_ALPHA * (solo_sum / timing.total_us - self.speedup);
        }
        self.bundles += 1;
        if self.config.kind == PolicyKind::SloAware && self.bundles.is_multiple_of(self.config.refresh_every.max(1)) {
            self.refresh();
        }
        Ok(finished)
    }

    /// Reports that `dispatch` failed (a launch error): its members'
    /// requests leave the scheduler unfinished and are returned, so the
    /// caller can fail them; nothing is learned from the failed bundle.
    pub fn abort(&mut self, dispatch: Dispatch) -> Vec<Request> {
        self.dispatched = false;
        let mut dropped = Vec::new();
        for m in &dispatch.members {
            let Ok(i) = self.tenant_index(m.tenant) else { continue };
            let t = &mut self.tenants[i];
            if let Some(slot) = t.running.iter().position(|r| r.request.id == m.request) {
                dropped.push(t.running.remove(slot).request);
            }
        }
        dropped
    }

    /// Moves every running request back to the front of its tenant's queue
    /// (oldest first), to run again from its first step: what ran of it
    /// was lost with the executor's state.
    pub fn restart_running(&mut self) {
        for t in &mut self.tenants {
            let mut running: Vec<Request> = t.running.drain(..).map(|r| r.request).collect();
            running.sort_by(|a, b| a.arrival_us.total_cmp(&b.arrival_us).then(a.id.cmp(&b.id)));
            for r in running.into_iter().rev() {
                t.queue.push_front(r);
            }
        }
        self.dispatched = false;
    }

    /// Drops every queued and running request and returns them.
    pub fn abort_all(&mut self) -> Vec<Request> {
        self.dispatched = false;
        let mut dropped = Vec::new();
        for t in &mut self.tenants {
            dropped.extend(t.running.drain(..).map(|r| r.request));
            dropped.extend(t.queue.drain(..));
        }
        dropped
    }

    /// Bundles completed so far.
    pub fn bundles(&self) -> u64 {
        self.bundles
    }

    /// The registered tenant `id`.
    pub fn tenant(&self, id: TenantId) -> Result<&TenantSpec, SchedError> {
        Ok(&self.tenants[self.tenant_index(id)?].spec)
    }

    /// Removes tenant `id`, which must have no request queued or running.
    pub fn remove_tenant(&mut self, id: TenantId) -> Result<TenantSpec, SchedError> {
        let i = self.tenant_index(id)?;
        let t = &self.tenants[i];
        if !t.queue.is_empty() || !t.running.is_empty() {
            return Err(SchedError::InvalidTenant {
                tenant: id,
                name: t.spec.name.clone(),
                message: format!("it has {} queued and {} running requests", t.queue.len(), t.running.len()),
            });
        }
        let entry = self.tenants.remove(i);
        for (index, _) in &entry.steps {
            self.users[*index] = self.users[*index].saturating_sub(1);
        }
        self.collect_unused();
        Ok(entry.spec)
    }

    /// The one-slot bundle of each distinct kernel of tenant `id`'s program,
    /// exactly as this scheduler forms it for that kernel alone: what a
    /// serving loop prepares at registration, so that no launch needs a
    /// compiler.
    pub fn solo_bundles(&self, id: TenantId) -> Result<Vec<Bundle>, SchedError> {
        let t = &self.tenants[self.tenant_index(id)?];
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (kernel, args) in &t.steps {
            if seen.contains(kernel) {
                continue;
            }
            seen.push(*kernel);
            let member = Member { kernel: self.kernels[*kernel].clone(), tenant: id, args: args.clone() };
            out.push(assemble(&[member], &[Budget::Full])?);
        }
        Ok(out)
    }
}

impl Dispatch {
    /// The same dispatch, from which the predictor will not learn: its slots
    /// ran differently from the bundle it predicted (one by one, while the
    /// fused module was being prepared).
    pub fn unlearned(mut self) -> Dispatch {
        self.features = None;
        self
    }
}

/// Suffix sums of predicted solo step times.
fn suffix(steps: &[(usize, Vec<BufferId>)], solo_us: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; steps.len() + 1];
    for (i, (k, _)) in steps.iter().enumerate().rev() {
        out[i] = out[i + 1] + solo_us.get(*k).copied().unwrap_or(0.0);
    }
    out
}
