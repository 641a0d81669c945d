//! The offline bundle planner: a list scheduler over tenants' kernel
//! streams and a cost callback.
//!
//! Each tenant's [`Program`] is an instruction stream whose steps must run in
//! order; different tenants are independent. Like a VLIW compiler filling
//! instruction words, [`plan`] forms one [`Bundle`] per round
//! from the heads of the streams until every stream is empty. Which bundles
//! are legal, and their budgets, is the shaping core's business
//! ([`crate::shape`](mod@crate::shape)); how long they take is a
//! [`CostModel`]'s. What this module adds is policy:
//!
//! 1. **Who is considered first.** The ready kernels (one per unfinished
//!    tenant: the head of its stream) are tried oldest first: a kernel's age
//!    is the round its tenant's previous kernel finished in, so a kernel
//!    refused from one bundle leads the next and nothing starves. Ties go to
//!    the order tenants were given in. The first kernel always joins (alone,
//!    a kernel runs at its solo occupancy), unless one of its blocks cannot
//!    fit an SM at all: then planning fails with
//!    [`ScheduleError::Unlaunchable`].
//! 2. **Shaping.** Each next kernel joins only if the wider member list
//!    still shapes ([`shape`](crate::shape::shape): block shape, every
//!    member's resident blocks per SM, capacity; budgets by the
//!    [`PackMode`]); otherwise it waits for a later bundle and the
//!    [`ShapeRefusal`] is recorded ([`RefusalReason::Shape`]). This is what
//!    keeps a 1024-thread kernel with big shared memory out of a bundle of
//!    small-block kernels.
//! 3. **The knob.** A bundle lasts as long as its slowest slot, so joining
//!    can slow the others down. Each member's slowdown is the bundle's
//!    predicted time over the member's solo time (its kernel alone, at its
//!    own occupancy), both from the cost model. The policy tolerates a
//!    slowdown of `1 / (1 - knob)`: at knob 0 (latency) no member may finish
//!    later than it would alone, so bundles hold only kernels that fit
//!    beside each other without stretching anyone's time; at knob 1
//!    (throughput) any slowdown is accepted and bundles are as wide as
//!    resources allow. Refusals record [`RefusalReason::Slowdown`].
//! 4. **Packing must not cost.** A kernel joins only if the wider bundle
//!    is predicted no slower than the bundle without it followed by the
//!    kernel alone ([`RefusalReason::NoGain`]), so no planned bundle is
//!    predicted slower than its slots run one after another.
//! 5. **The module keeps its bodies' occupancy.** Every price above
//!    assumes the bundle's blocks get the heaviest member's blocks per SM.
//!    Where the [`ResourceModel`] knows the compiled module of the wider
//!    bundle's launch class ([`ResourceModel::module`]: `weft pack`
//!    compiles it through the PTX cache, a serving loop knows what its
//!    executor compiled), a module that loses that occupancy (fewer blocks
//!    per SM, registers beyond 1.1x the heaviest body's as allocated, or
//!    spills) would run slower than priced, so the kernel waits for a
//!    later bundle or runs alone ([`RefusalReason::ModuleOccupancy`]).
//!    This rule is asked last, of a kernel every other rule takes, since
//!    knowing may mean compiling the module.
//!
//! [`plan`] prices bundles with the block-round model ([`BlockRounds`]);
//! [`plan_with`] takes any [`ResourceModel`] and [`CostModel`] (the
//! predictor's, for instance). Everything is deterministic: the same
//! tenants, limits, models and policy give the same plan (no hashing decides
//! any order).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use weft_kir::{KernelDef, Target};
use weft_lower::Program;

use crate::bundle::{Bundle, TenantId};
use crate::cost::{BlockRounds, CostModel};
use crate::error::PackError;
use crate::exec::Timing;
use crate::module::BundleFigures;
use crate::occupancy::{KernelResources, Limiter, Occupancy};
use crate::shape::{
    EstimatedResources, FormError, Member, PackMode, PreparedKernel, ResourceModel, ShapeRefusal, ShapedBundle,
};
use crate::timeline::{BundleSpan, SlotSpan};

/// What the scheduler optimises for.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Policy {
    pub mode: PackMode,
    /// 0 = latency (no slot may finish later than alone), 1 = throughput
    /// (widest bundles); between, a slowdown of `1 / (1 - knob)` is tolerated.
    pub knob: f64,
}

impl Policy {
    /// A policy; `knob` is clamped to `[0, 1]` (NaN counts as 0).
    pub fn new(mode: PackMode, knob: f64) -> Policy {
        let knob = if knob.is_nan() { 0.0 } else { knob.clamp(0.0, 1.0) };
        Policy { mode, knob }
    }

    /// The slowdown of any member the policy accepts for a wider bundle.
    pub fn tolerated_slowdown(&self) -> f64 {
        let knob = if self.knob.is_nan() { 0.0 } else { self.knob.clamp(0.0, 1.0) };
        if knob >= 1.0 {
            f64::INFINITY
        } else {
            1.0 / (1.0 - knob)
        }
    }
}

impl Default for Policy {
    /// Auto mode, throughput end.
    fn default() -> Policy {
        Policy::new(PackMode::Auto, 1.0)
    }
}

/// The scheduler's estimate for one slot of a planned bundle.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct SlotPlan {
    pub tenant: TenantId,
    /// Index of the slot's step in its tenant's program.
    pub step: usize,
    pub logical_blocks: u64,
    /// Physical blocks the slot runs on.
    pub blocks: u32,
    /// Logical blocks the busiest of its physical blocks runs.
    pub rounds: u64,
    /// Work units one logical block takes ([`block_time`](crate::block_time)):
    /// the weight of its constrained budget.
    pub block_time: f64,
    /// Predicted time of the kernel alone, at its own occupancy (the cost
    /// model's units).
    pub solo_time: f64,
    /// Predicted time of the slot in the bundle, from launch to its
    /// completion.
    pub time: f64,
}

/// One bundle of a plan, with what the scheduler predicted for it.
#[derive(Clone, Debug)]
pub struct PlannedBundle {
    pub bundle: Bundle,
    /// One per slot of `bundle`, in the same order.
    pub slots: Vec<SlotPlan>,
    /// What one physical block asks of an SM (the most of every slot's).
    pub resources: KernelResources,
    pub occupancy: Occupancy,
    /// Physical blocks over resident capacity.
    pub waves: f64,
    /// True when every slot runs its full grid (coalesced), false when
    /// budgets constrain them.
    pub coalesced: bool,
    /// Predicted time of the bundle (the cost model's; at least its
    /// slowest slot's).
    pub time: f64,
}

/// Why a ready kernel was left out of a bundle.
#[derive(Clone, PartialEq, Debug)]
pub enum RefusalReason {
    /// The wider member list breaks a shaping rule
    /// ([`crate::shape`](mod@crate::shape)).
    Shape(ShapeRefusal),
    /// Joining would stretch `member`'s time beyond what the knob tolerates.
    Slowdown { member: TenantId, member_kernel: String, slowdown: f64, tolerated: f64 },
    /// Joining would cost: the wider bundle is predicted to take `with_us`,
    /// more than the bundle without the kernel followed by the kernel alone
    /// (`apart_us`).
    NoGain { with_us: f64, apart_us: f64 },
    /// The compiled module of the wider bundle's launch class (`bodies`)
    /// loses its bodies' occupancy: more registers than 1.1x the heaviest
    /// body's as allocated, fewer blocks per SM, or spills. The prices
    /// assume the heaviest body's occupancy, so the join is split.
    ModuleOccupancy {
        bodies: String,
        registers: u32,
        body_registers: u32,
        blocks_per_sm: u32,
        body_blocks_per_sm: u32,
        spill_bytes: u64,
    },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Shape(refusal) => refusal.fmt(f),
            RefusalReason::Slowdown { member, member_kernel, slowdown, tolerated } => write!(
                f,
                "slowdown: tenant {} kernel `{member_kernel}` would take {slowdown:.2}x its solo time, \
                 the policy tolerates {tolerated:.2}x",
                member.0
            ),
            RefusalReason::NoGain { with_us, apart_us } => write!(
                f,
                "no gain: the bundle with it is predicted at {with_us:.1} µs, more than without it and then \
                 alone ({apart_us:.1} µs)"
            ),
            RefusalReason::ModuleOccupancy {
                bodies,
                registers,
                body_registers,
                blocks_per_sm,
                body_blocks_per_sm,
                spill_bytes,
            } => write!(
                f,
                "module occupancy: the compiled module of {bodies} takes {registers} registers and {spill_bytes} B \
                 of spills for {blocks_per_sm} blocks per SM, where its heaviest body alone takes {body_registers} \
                 for {body_blocks_per_sm}"
            ),
        }
    }
}

/// A ready kernel left out of bundle `bundle` (it runs in a later one).
#[derive(Clone, PartialEq, Debug)]
pub struct Refusal {
    /// Index of the bundle it was refused from.
    pub bundle: usize,
    pub tenant: TenantId,
    pub step: usize,
    pub kernel: String,
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bundle {}: tenant {} step {} (`{}`) waits: {}",
            self.bundle, self.tenant.0, self.step, self.kernel, self.reason
        )
    }
}

/// The bundles, in launch order, that run every tenant's program.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub bundles: Vec<PlannedBundle>,
    pub refusals: Vec<Refusal>,
}

impl Plan {
    /// Predicted total time (bundles run one after another).
    pub fn time(&self) -> f64 {
        self.bundles.iter().map(|b| b.time).sum()
    }

    /// Mean slots per bundle.
    pub fn mean_width(&self) -> f64 {
        if self.bundles.is_empty() {
            return 0.0;
        }
        self.bundles.iter().map(|b| b.slots.len()).sum::<usize>() as f64 / self.bundles.len() as f64
    }

    /// The plan as timeline spans ([`crate::timeline`]), in the cost model's units.
    pub fn spans(&self) -> Vec<BundleSpan> {
        let mut start = 0.0;
        let mut out = Vec::with_capacity(self.bundles.len());
        for (index, b) in self.bundles.iter().enumerate() {
            let slots = b
                .slots
                .iter()
                .zip(&b.bundle.slots)
                .zip(&b.bundle.table.entries)
                .map(|((p, s), e)| SlotSpan {
                    tenant: p.tenant.0,
                    tenant_name: format!("tenant {}", p.tenant.0),
                    kernel: s.kernel.name.clone(),
                    first_block: e.first_block,
                    blocks: e.num_blocks,
                    start,
                    duration: p.time,
                })
                .collect();
            out.push(BundleSpan { index, start, duration: b.time, total_blocks: b.bundle.table.total_blocks(), slots });
            start += b.time;
        }
        out
    }
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "tenant {} step {step}: kernel `{kernel}` cannot run on this device: one block of {} threads, \
         {} registers and {} B shared memory exceeds the {limiter} limit",
        tenant.0, resources.threads, resources.registers, resources.shared_bytes
    )]
    Unlaunchable { tenant: TenantId, step: usize, kernel: String, resources: KernelResources, limiter: Limiter },
    #[error("tenant {} appears twice in the tenant list", .0 .0)]
    DuplicateTenant(TenantId),
    /// A kernel cannot form a bundle even alone.
    #[error("tenant {} step {step}: kernel `{kernel}` cannot form a bundle alone: {reason}", tenant.0)]
    Alone { tenant: TenantId, step: usize, kernel: String, reason: Box<ShapeRefusal> },
    /// A kernel fails verification or isolation, or a planned bundle cannot
    /// be laid out.
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// A ready kernel being considered.
#[derive(Clone, Debug)]
struct Candidate {
    tenant_index: usize,
    tenant: TenantId,
    step: usize,
    member: Member,
    solo_time: f64,
}

/// Plans bundles for `tenants` with resources estimated from KIR
/// ([`EstimatedResources`]), priced by the block-round model
/// ([`BlockRounds`]).
pub fn plan(tenants: &[(TenantId, &Program)], limits: &Target, policy: &Policy) -> Result<Plan, ScheduleError> {
    plan_with(tenants, limits, policy, &EstimatedResources, &mut BlockRounds::new(*limits))
}

/// Plans bundles for `tenants`, asking `resources` for each distinct
/// kernel's block resources and `cost` for solo and bundle times (module
/// docs).
pub fn plan_with(
    tenants: &[(TenantId, &Program)],
    limits: &Target,
    policy: &Policy,
    resources: &dyn ResourceModel,
    cost: &mut dyn CostModel,
) -> Result<Plan, ScheduleError> {
    plan_observed(tenants, limits, policy, resources, cost, &mut |_| {})
}

/// How far a plan has come: what [`plan_observed`] tells its observer
/// after each bundle.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct PlanProgress {
    /// Bundles planned so far.
    pub bundles: usize,
    /// Slots (kernel launches of a tenant) placed in them.
    pub slots: usize,
    /// Slots the whole plan places: every step of every tenant.
    pub total_slots: usize,
}

/// [`plan_with`], calling `progress` after each bundle is planned (a long
/// plan's caller reports from it; it decides nothing).
pub fn plan_observed(
    tenants: &[(TenantId, &Program)],
    limits: &Target,
    policy: &Policy,
    resources: &dyn ResourceModel,
    cost: &mut dyn CostModel,
    progress: &mut dyn FnMut(&PlanProgress),
) -> Result<Plan, ScheduleError> {
    let total_slots = tenants.iter().map(|(_, p)| p.steps.len()).sum();
    let mut placed = 0usize;
    for (i, (t, _)) in tenants.iter().enumerate() {
        if tenants[..i].iter().any(|(u, _)| u == t) {
            return Err(ScheduleError::DuplicateTenant(*t));
        }
    }
    // Kernels are shared across layers and across tenants of one
    // architecture, so they are prepared (and priced alone) once per
    // allocation; the programs keep the allocations alive.
    let mut prepared: HashMap<*const KernelDef, (Arc<PreparedKernel>, f64)> = HashMap::new();
    let mut next = vec![0usize; tenants.len()];
    // The round each tenant's head became ready (rule 1).
    let mut ready_since = vec![0usize; tenants.len()];
    let mut plan = Plan::default();
    loop {
        let mut ready: Vec<Candidate> = Vec::new();
        for (i, (tenant, program)) in tenants.iter().enumerate() {
            let Some(step) = program.steps.get(next[i]) else { continue };
            let key = Arc::as_ptr(&step.kernel);
            let (kernel, solo_time) = match prepared.get(&key) {
                Some(done) => done.clone(),
                None => {
                    let k = Arc::new(PreparedKernel::new(&step.kernel, limits, resources)?);
                    let solo = cost.solo_time(&k);
                    prepared.insert(key, (k.clone(), solo));
                    (k, solo)
                }
            };
            let member = Member { kernel, tenant: *tenant, args: step.args.clone() };
            ready.push(Candidate { tenant_index: i, tenant: *tenant, step: next[i], member, solo_time });
        }
        if ready.is_empty() {
            break;
        }
        ready.sort_by_key(|c| (ready_since[c.tenant_index], c.tenant_index));
        let round = plan.bundles.len();

        let first = &ready[0];
        let alone = |reason| ScheduleError::Alone {
            tenant: first.tenant,
            step: first.step,
            kernel: first.member.kernel.kernel.name.clone(),
            reason: Box::new(reason),
        };
        if !first.member.kernel.solo.fits() {
            return Err(ScheduleError::Unlaunchable {
                tenant: first.tenant,
                step: first.step,
                kernel: first.member.kernel.kernel.name.clone(),
                resources: first.member.kernel.resources,
                limiter: first.member.kernel.solo.limiter,
            });
        }
        let offers: Vec<Offer> =
            ready.iter().map(|c| Offer { member: c.member.clone(), solo_time: c.solo_time }).collect();
        let mut accept = |trial: &[usize], time: f64| slowdown(trial.iter().map(|&i| &ready[i]), time, policy);
        let mut refused = |i: usize, reason| {
            let cand = &ready[i];
            plan.refusals.push(Refusal {
                bundle: round,
                tenant: cand.tenant,
                step: cand.step,
                kernel: cand.member.kernel.kernel.name.clone(),
                reason,
            })
        };
        let grown = match grow(&offers, limits, policy.mode, resources, cost, &mut accept, &mut refused) {
            Ok(grown) => grown,
            Err(FormError::Refused(reason)) => return Err(alone(reason)),
            Err(FormError::Pack(e)) => return Err(e.into()),
        };
        let chosen: Vec<Candidate> = grown.chosen.iter().map(|&i| ready[i].clone()).collect();
        let (shaped, time) = (grown.shaped, grown.cost);
        for c in &chosen {
            next[c.tenant_index] += 1;
            ready_since[c.tenant_index] = round + 1;
        }
        placed += chosen.len();
        plan.bundles.push(planned(&chosen, shaped, time.total_us, time.slots(), limits));
        progress(&PlanProgress { bundles: plan.bundles.len(), slots: placed, total_slots });
    }
    Ok(plan)
}

/// A ready kernel offered to [`grow`]: its bundle member and its predicted
/// time alone (the cost model's units).
#[derive(Clone, Debug)]
pub struct Offer {
    pub member: Member,
    pub solo_time: f64,
}

/// The bundle [`grow`] formed.
#[derive(Clone, Debug)]
pub struct Grown {
    /// Indices of the offers that joined, in offer order (the first is 0).
    pub chosen: Vec<usize>,
    pub shaped: ShapedBundle,
    /// The cost model's price of `shaped`.
    pub cost: Timing,
}

/// Grows one bundle from `offers`, given in priority order: the growth rule
/// every planner uses — [`plan_with`] offline, and the serving scheduler,
/// which orders its offers by deadline and judges slowdowns against each
/// request's slack.
///
/// The first offer always joins (an error if it cannot form a bundle
/// alone). Each next offer joins when
///
/// 1. the wider member list shapes under `mode` (rule 2 of the module docs;
///    else `refused` hears [`RefusalReason::Shape`]),
/// 2. packing does not cost: the wider bundle is predicted no slower than
///    the bundle without it followed by the offer alone (rule 4;
///    [`RefusalReason::NoGain`]),
/// 3. `accept`, given the indices of the trial members and the trial
///    bundle's predicted time, raises no objection (the caller's slowdown
///    rule, rule 3), and
/// 4. where `resources` knows the compiled module of the wider bundle's
///    launch class ([`ResourceModel::module`]) and that class is new to
///    the bundle, the module keeps its bodies' occupancy
///    ([`BundleFigures::keeps_occupancy`](crate::BundleFigures::keeps_occupancy);
///    else [`RefusalReason::ModuleOccupancy`]): every price assumes the
///    heaviest body's blocks per SM, which such a module would not give,
///    so the offer runs in a later bundle or alone instead. This comes
///    last because asking may compile the module (`weft pack`'s
///    [`CompiledModules`](crate::CompiledModules)): a join another rule
///    refuses compiles nothing.
///
/// A member list that cannot be laid out at all fails the whole growth
/// ([`FormError::Pack`]).
pub fn grow(
    offers: &[Offer],
    limits: &Target,
    mode: PackMode,
    resources: &dyn ResourceModel,
    cost: &mut dyn CostModel,
    accept: &mut dyn FnMut(&[usize], f64) -> Option<RefusalReason>,
    refused: &mut dyn FnMut(usize, RefusalReason),
) -> Result<Grown, FormError> {
    let Some(first) = offers.first() else {
        return Err(FormError::Refused(ShapeRefusal::Empty));
    };
    let mut chosen = vec![0];
    let mut shaped = ShapedBundle::form(vec![first.member.clone()], limits, mode)?;
    let mut time = cost.bundle_cost(&shaped);
    for (i, offer) in offers.iter().enumerate().skip(1) {
        let mut trial = chosen.clone();
        trial.push(i);
        let members = trial.iter().map(|&j| offers[j].member.clone()).collect();
        let trial_shaped = match ShapedBundle::form(members, limits, mode) {
            Ok(shaped) => shaped,
            Err(FormError::Refused(reason)) => {
                refused(i, RefusalReason::Shape(reason));
                continue;
            }
            Err(e) => return Err(e),
        };
        let trial_time = cost.bundle_cost(&trial_shaped);
        // Packing must not cost (NaN never passes; a relative epsilon keeps
        // rounding from refusing an even trade).
        let apart = time.total_us + offer.solo_time;
        let within = trial_time.total_us <= apart * (1.0 + 1e-9);
        if !within {
            refused(i, RefusalReason::NoGain { with_us: trial_time.total_us, apart_us: apart });
            continue;
        }
        if let Some(reason) = accept(&trial, trial_time.total_us) {
            refused(i, reason);
            continue;
        }
        // Last, since asking about a module may compile it: only a join
        // every other rule takes is judged on its module.
        if trial_shaped.bundle.class() != shaped.bundle.class() {
            if let Some(reason) =
                resources.module(&trial_shaped.bundle).and_then(|f| loses_occupancy(&f, &trial_shaped, limits))
            {
                refused(i, reason);
                continue;
            }
        }
        chosen = trial;
        shaped = trial_shaped;
        time = trial_time;
    }
    Ok(Grown { chosen, shaped, cost: time })
}

/// The refusal of a bundle whose compiled module (`figures`) loses its
/// bodies' occupancy, if it does.
fn loses_occupancy(figures: &BundleFigures, bundle: &ShapedBundle, limits: &Target) -> Option<RefusalReason> {
    if figures.keeps_occupancy(limits) {
        return None;
    }
    let names: Vec<&str> = bundle.bundle.bodies().iter().map(|k| k.name.as_str()).collect();
    Some(RefusalReason::ModuleOccupancy {
        bodies: format!("[{}]", names.join(", ")),
        registers: figures.module.registers,
        body_registers: figures.max_body.registers,
        blocks_per_sm: figures.module_occupancy.blocks_per_sm,
        body_blocks_per_sm: figures.max_body_occupancy.blocks_per_sm,
        spill_bytes: figures.module.spill_bytes,
    })
}

/// Rule 3: the first member whose slowdown in a bundle of predicted `time`
/// exceeds what `policy` tolerates, if any.
fn slowdown<'a>(mut trial: impl Iterator<Item = &'a Candidate>, time: f64, policy: &Policy) -> Option<RefusalReason> {
    let tolerated = policy.tolerated_slowdown();
    trial.find_map(|m| {
        let slowdown = time / m.solo_time.max(f64::MIN_POSITIVE);
        // A relative epsilon: equal kernels must not refuse each other over
        // rounding. NaN never passes.
        let within = slowdown <= tolerated * (1.0 + 1e-9);
        (!within).then(|| RefusalReason::Slowdown {
            member: m.tenant,
            member_kernel: m.member.kernel.kernel.name.clone(),
            slowdown,
            tolerated,
        })
    })
}

/// The planned bundle of `chosen`, shaped as `shaped` and priced at `time`
/// (`slot_times` per slot).
fn planned(
    chosen: &[Candidate],
    shaped: ShapedBundle,
    time: f64,
    slot_times: &[f64],
    limits: &Target,
) -> PlannedBundle {
    let slots = chosen
        .iter()
        .zip(&shaped.bundle.table.entries)
        .enumerate()
        .map(|(i, (c, e))| SlotPlan {
            tenant: c.tenant,
            step: c.step,
            logical_blocks: c.member.kernel.logical_blocks,
            blocks: e.num_blocks,
            rounds: e.rounds(),
            block_time: c.member.kernel.block_time,
            solo_time: c.solo_time,
            time: slot_times.get(i).copied().unwrap_or(time),
        })
        .collect();
    let total = shaped.bundle.table.total_blocks() as u64;
    PlannedBundle {
        time,
        waves: shaped.shape.occupancy.waves(total, limits),
        slots,
        resources: shaped.shape.resources,
        occupancy: shaped.shape.occupancy,
        coalesced: shaped.shape.coalesced,
        bundle: shaped.bundle,
    }
}
