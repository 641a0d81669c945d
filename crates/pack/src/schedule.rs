//! The bundle scheduler: a list scheduler over tenants' kernel streams.
//!
//! Each tenant's [`Program`] is an instruction stream whose steps must run in
//! order; different tenants are independent. Like a VLIW compiler filling
//! instruction words, [`plan`] forms one [`Bundle`] per round from the heads
//! of the streams, under the device's resource limits, until every stream is
//! empty. The rules, in the order they apply:
//!
//! 1. **Who is considered first.** The ready kernels (one per unfinished
//!    tenant: the head of its stream) are tried oldest first: a kernel's age
//!    is the round its tenant's previous kernel finished in, so a kernel
//!    refused from one bundle leads the next and nothing starves. Ties go to
//!    the order tenants were given in. The first kernel always joins (alone,
//!    a kernel runs at its solo occupancy), unless one of its blocks cannot
//!    fit an SM at all: then planning fails with
//!    [`ScheduleError::Unlaunchable`].
//! 2. **Occupancy.** A bundle's physical block may run any of its slots'
//!    bodies, so it asks for the most threads, registers and shared memory of
//!    any slot ([`KernelResources::max`]); its resident capacity is
//!    `blocks_per_sm(bundle) × sm_count`. A slot needs `min(its solo
//!    blocks_per_sm, ceil(logical blocks / sm_count))` blocks per SM (a
//!    small grid does not need its full solo occupancy). A kernel joins only
//!    if the bundle would still give every member (itself included) what it
//!    needs; otherwise it waits for a later bundle and a
//!    [`RefusalReason::Occupancy`] is recorded. This is what keeps a
//!    1024-thread kernel with big shared memory out of a bundle of
//!    small-block kernels.
//! 3. **Budgets.** Each slot's time is modelled in *block rounds*: a slot of
//!    `L` logical blocks on `b` physical blocks runs `ceil(L / b)` rounds of
//!    [`block_time`] units, stretched by contention: an SM issues at full
//!    speed for up to [`Target::full_speed_warps_per_sm`] active warps
//!    and shares its issue slots beyond that, so `rounds × block_time ×
//!    max(1, active warps per SM / full-speed warps)` (the same formula
//!    gives a kernel's solo time). Coalescing ([`Budget::Full`]) gives every slot
//!    one physical block per logical block, and the hardware runs the launch
//!    in waves. Constraining gives budgets that make slots finish together:
//!    the smallest bundle time `T` for which the budgets `b_i = ceil(L_i /
//!    floor(T / w_i))` fit the resident capacity (so budgets are
//!    proportional to each slot's work `L_i · w_i`, rounded to whole
//!    rounds). [`PackMode::Auto`] coalesces a bundle when every slot's grid
//!    fits in one wave, and constrains it otherwise.
//! 4. **The knob.** A bundle lasts as long as its slowest slot, so joining
//!    can slow the others down. Each member's slowdown is the bundle's
//!    predicted time over the member's solo time (its kernel alone, at its
//!    own occupancy). The policy tolerates a slowdown of `1 / (1 - knob)`:
//!    at knob 0 (latency) no member may finish later than it would alone, so
//!    bundles hold only kernels that fit beside each other without stretching
//!    anyone's time; at knob 1 (throughput) any slowdown is accepted and
//!    bundles are as wide as resources allow. Refusals record
//!    [`RefusalReason::Slowdown`].
//!
//! Everything is deterministic: the same tenants, limits and policy give the
//! same plan (no hashing decides any order).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use weft_kir::analysis::cost;
use weft_kir::{KernelDef, Target};
use weft_lower::Program;

use crate::builder::BundleBuilder;
use crate::bundle::{Budget, Bundle, Slot, TenantId};
use crate::error::PackError;
use crate::occupancy::{KernelResources, Limiter, Occupancy, ResourceTable};
use crate::timeline::{BundleSpan, SlotSpan};

/// How a bundle's slots share its launch.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum PackMode {
    /// Every slot gets its whole logical grid ([`Budget::Full`]).
    Coalesce,
    /// Every slot gets a budget of persistent blocks within the bundle's
    /// resident capacity ([`Budget::Blocks`]).
    Constrain,
    /// Coalesce when every slot fits in one wave, constrain otherwise.
    Auto,
}

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
    /// Model time units one logical block takes ([`block_time`]).
    pub block_time: f64,
    /// Predicted time of the kernel alone, at its own occupancy.
    pub solo_time: f64,
    /// Predicted time of the slot in the bundle.
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
    /// Predicted time: the slowest slot's.
    pub time: f64,
}

/// Why a ready kernel was left out of a bundle.
#[derive(Clone, PartialEq, Debug)]
pub enum RefusalReason {
    /// Joining would give `member` (the kernel itself or one already in the
    /// bundle) fewer resident blocks per SM than it needs.
    Occupancy {
        member: TenantId,
        member_kernel: String,
        needs: u32,
        would_get: u32,
        limiter: Limiter,
        resources: KernelResources,
    },
    /// Joining would stretch `member`'s time beyond what the knob tolerates.
    Slowdown { member: TenantId, member_kernel: String, slowdown: f64, tolerated: f64 },
    /// A constrained bundle has no physical block left for another slot.
    Capacity { slots: usize, resident_blocks: u64 },
    /// A member narrower than the bundle's block would not be whole warps,
    /// so it could not sync on a named barrier ([`PackError::BlockShape`]).
    BlockShape { member: TenantId, member_kernel: String, threads: u32, bundle_threads: u32 },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Occupancy { member, member_kernel, needs, would_get, limiter, resources } => write!(
                f,
                "occupancy: with it the bundle's blocks need {} threads, {} registers and {} B shared memory, \
                 so an SM holds {would_get} of them ({limiter}-limited), but tenant {} kernel `{member_kernel}` \
                 needs {needs} per SM",
                resources.threads, resources.registers, resources.shared_bytes, member.0
            ),
            RefusalReason::Slowdown { member, member_kernel, slowdown, tolerated } => write!(
                f,
                "slowdown: tenant {} kernel `{member_kernel}` would take {slowdown:.2}x its solo time, \
                 the policy tolerates {tolerated:.2}x",
                member.0
            ),
            RefusalReason::BlockShape { member, member_kernel, threads, bundle_threads } => write!(
                f,
                "block shape: tenant {} kernel `{member_kernel}` has {threads} threads, not whole warps, \
                 and cannot share a {bundle_threads}-thread block",
                member.0
            ),
            RefusalReason::Capacity { slots, resident_blocks } => {
                write!(f, "capacity: {slots} slots would need more than the {resident_blocks} resident blocks")
            }
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

    /// The plan as timeline spans ([`crate::timeline`]), in model time units.
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
    /// The bundle builder refused a planned bundle (a kernel fails
    /// verification or isolation).
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// Model time units one logical block of `kernel` takes: its warp
/// instructions (KIR thread-instructions over the warp size) plus one unit
/// per 32-byte sector of global memory it moves, per logical block. A
/// placeholder for the predictor's estimates: only ratios between kernels
/// matter to the scheduler, and both terms scale with the work of a block.
pub fn block_time(kernel: &KernelDef, warp_size: u32) -> f64 {
    let c = cost(kernel);
    let blocks = kernel.launch.num_blocks().max(1) as f64;
    let warp_insts = c.thread_insts as f64 / warp_size.max(1) as f64;
    let sectors = (c.global_read_bytes as f64 + c.global_write_bytes as f64) / 32.0;
    ((warp_insts + sectors) / blocks).max(1.0)
}

/// How much slower blocks run because they share their SMs' issue slots: 1
/// up to [`Target::full_speed_warps_per_sm`] active warps per SM, then
/// proportional to the active warps. `physical_blocks` spread evenly over
/// the SMs, at most `occupancy.blocks_per_sm` at a time.
fn contention(physical_blocks: u64, threads: u32, occupancy: &Occupancy, limits: &Target) -> f64 {
    let per_sm = physical_blocks.div_ceil(limits.sm_count.max(1) as u64).min(occupancy.blocks_per_sm as u64);
    let warps = per_sm * (threads as u64).div_ceil(limits.warp_size.max(1) as u64);
    (warps as f64 / limits.full_speed_warps_per_sm.max(1) as f64).max(1.0)
}

/// What the scheduler knows about one kernel (computed once per body).
#[derive(Copy, Clone, Debug)]
struct KernelFacts {
    resources: KernelResources,
    solo: Occupancy,
    logical_blocks: u64,
    block_time: f64,
    solo_time: f64,
    /// Blocks per SM it needs to run at its solo speed.
    need_per_sm: u32,
}

/// A ready kernel being considered.
#[derive(Clone, Debug)]
struct Candidate {
    tenant_index: usize,
    tenant: TenantId,
    step: usize,
    kernel: Arc<KernelDef>,
    facts: KernelFacts,
}

/// Plans bundles for `tenants` with block resources estimated from KIR
/// (an empty [`ResourceTable`]: nothing compiled yet).
pub fn plan(tenants: &[(TenantId, &Program)], limits: &Target, policy: &Policy) -> Result<Plan, ScheduleError> {
    plan_with(tenants, limits, policy, &ResourceTable::new())
}

/// Plans bundles for `tenants`, with each distinct kernel's block resources
/// from `resources`: ptxas's figures for the bodies compiled so far, the KIR
/// estimate for the rest.
pub fn plan_with(
    tenants: &[(TenantId, &Program)],
    limits: &Target,
    policy: &Policy,
    resources: &ResourceTable,
) -> Result<Plan, ScheduleError> {
    for (i, (t, _)) in tenants.iter().enumerate() {
        if tenants[..i].iter().any(|(u, _)| u == t) {
            return Err(ScheduleError::DuplicateTenant(*t));
        }
    }
    // Kernels are shared across layers and across tenants of one
    // architecture, so facts are cached by the kernel's allocation.
    let mut facts_cache: HashMap<*const KernelDef, KernelFacts> = HashMap::new();
    let mut facts_of = |k: &Arc<KernelDef>| -> KernelFacts {
        *facts_cache.entry(Arc::as_ptr(k)).or_insert_with(|| kernel_facts(k, resources.resources(k), limits))
    };

    let mut next = vec![0usize; tenants.len()];
    // The round each tenant's head became ready (rule 1).
    let mut ready_since = vec![0usize; tenants.len()];
    let mut plan = Plan::default();
    loop {
        let mut ready: Vec<Candidate> = tenants
            .iter()
            .enumerate()
            .filter_map(|(i, (tenant, program))| {
                let step = program.steps.get(next[i])?;
                Some(Candidate {
                    tenant_index: i,
                    tenant: *tenant,
                    step: next[i],
                    kernel: step.kernel.clone(),
                    facts: facts_of(&step.kernel),
                })
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        ready.sort_by_key(|c| (ready_since[c.tenant_index], c.tenant_index));
        let round = plan.bundles.len();

        let first = &ready[0];
        if !first.facts.solo.fits() {
            return Err(ScheduleError::Unlaunchable {
                tenant: first.tenant,
                step: first.step,
                kernel: first.kernel.name.clone(),
                resources: first.facts.resources,
                limiter: first.facts.solo.limiter,
            });
        }
        let mut members: Vec<Candidate> = vec![ready[0].clone()];
        let mut shape = shape_bundle(&members, limits, policy.mode);
        for cand in ready.iter().skip(1) {
            let mut trial = members.clone();
            trial.push(cand.clone());
            match try_join(&trial, limits, policy) {
                Ok(s) => {
                    members = trial;
                    shape = s;
                }
                Err(reason) => plan.refusals.push(Refusal {
                    bundle: round,
                    tenant: cand.tenant,
                    step: cand.step,
                    kernel: cand.kernel.name.clone(),
                    reason,
                }),
            }
        }
        for m in &members {
            next[m.tenant_index] += 1;
            ready_since[m.tenant_index] = round + 1;
        }
        plan.bundles.push(assemble(&members, shape, tenants, limits)?);
    }
    Ok(plan)
}

fn kernel_facts(kernel: &KernelDef, resources: KernelResources, limits: &Target) -> KernelFacts {
    let solo = Occupancy::of(resources, limits);
    let logical_blocks = kernel.launch.num_blocks().max(1);
    let block_time = block_time(kernel, limits.warp_size);
    let resident = solo.resident_blocks(limits).max(1);
    let solo_time = logical_blocks.div_ceil(resident) as f64
        * block_time
        * contention(logical_blocks, resources.threads, &solo, limits);
    let per_sm_of_grid = logical_blocks.div_ceil(limits.sm_count.max(1) as u64);
    let need_per_sm = (solo.blocks_per_sm as u64).min(per_sm_of_grid) as u32;
    KernelFacts { resources, solo, logical_blocks, block_time, solo_time, need_per_sm }
}

/// A bundle's occupancy, budgets and predicted times.
#[derive(Clone, Debug)]
struct BundleShape {
    resources: KernelResources,
    occupancy: Occupancy,
    coalesced: bool,
    /// Physical blocks per member.
    blocks: Vec<u32>,
    /// Rounds and predicted time per member.
    rounds: Vec<u64>,
    times: Vec<f64>,
}

impl BundleShape {
    fn time(&self) -> f64 {
        self.times.iter().copied().fold(0.0, f64::max)
    }
}

/// Applies rules 2 to 4 to a trial member list (the last member is the one
/// asking to join).
fn try_join(trial: &[Candidate], limits: &Target, policy: &Policy) -> Result<BundleShape, RefusalReason> {
    let shape = shape_bundle(trial, limits, policy.mode);
    let warp = limits.warp_size.max(1);
    for m in trial {
        let threads = m.facts.resources.threads;
        if threads < shape.resources.threads && threads % warp != 0 {
            return Err(RefusalReason::BlockShape {
                member: m.tenant,
                member_kernel: m.kernel.name.clone(),
                threads,
                bundle_threads: shape.resources.threads,
            });
        }
    }
    for m in trial {
        if shape.occupancy.blocks_per_sm < m.facts.need_per_sm.max(1) {
            return Err(RefusalReason::Occupancy {
                member: m.tenant,
                member_kernel: m.kernel.name.clone(),
                needs: m.facts.need_per_sm.max(1),
                would_get: shape.occupancy.blocks_per_sm,
                limiter: shape.occupancy.limiter,
                resources: shape.resources,
            });
        }
    }
    let resident = shape.occupancy.resident_blocks(limits);
    if !shape.coalesced && trial.len() as u64 > resident {
        return Err(RefusalReason::Capacity { slots: trial.len(), resident_blocks: resident });
    }
    let time = shape.time();
    let tolerated = policy.tolerated_slowdown();
    for m in trial {
        let slowdown = time / m.facts.solo_time.max(f64::MIN_POSITIVE);
        // A relative epsilon: equal kernels must not refuse each other over rounding.
        if slowdown > tolerated * (1.0 + 1e-9) {
            return Err(RefusalReason::Slowdown {
                member: m.tenant,
                member_kernel: m.kernel.name.clone(),
                slowdown,
                tolerated,
            });
        }
    }
    Ok(shape)
}

/// Rule 3: occupancy, budgets and times of a member list.
fn shape_bundle(members: &[Candidate], limits: &Target, mode: PackMode) -> BundleShape {
    let resources = members
        .iter()
        .map(|m| m.facts.resources)
        .reduce(KernelResources::max)
        .unwrap_or(KernelResources::new(1, 16, 0));
    let occupancy = Occupancy::of(resources, limits);
    let resident = occupancy.resident_blocks(limits).max(1);
    let total: u64 = members.iter().map(|m| m.facts.logical_blocks).sum();
    let coalesced = match mode {
        PackMode::Coalesce => true,
        PackMode::Constrain => false,
        PackMode::Auto => total <= resident,
    };
    if coalesced {
        let c = contention(total, resources.threads, &occupancy, limits);
        // The hardware runs the launch in waves, in block order: a slot ends
        // with the wave that holds its last block.
        let mut first = 0u64;
        let mut blocks = Vec::new();
        let mut rounds = Vec::new();
        let mut times = Vec::new();
        for m in members {
            let l = m.facts.logical_blocks;
            let end_wave = (first + l).div_ceil(resident);
            blocks.push(u32::try_from(l).unwrap_or(u32::MAX));
            rounds.push(end_wave);
            times.push(end_wave as f64 * m.facts.block_time * c);
            first += l;
        }
        return BundleShape { resources, occupancy, coalesced, blocks, rounds, times };
    }
    let budgets = constrained_budgets(members, resident);
    let rounds: Vec<u64> =
        members.iter().zip(&budgets).map(|(m, &b)| m.facts.logical_blocks.div_ceil(b.max(1) as u64)).collect();
    let physical: u64 = budgets.iter().map(|&b| b as u64).sum();
    let c = contention(physical, resources.threads, &occupancy, limits);
    let times = members.iter().zip(&rounds).map(|(m, &r)| r as f64 * m.facts.block_time * c).collect();
    BundleShape { resources, occupancy, coalesced, blocks: budgets, rounds, times }
}

/// The budgets that make members finish together: the smallest time `T`
/// whose budgets `ceil(L_i / floor(T / w_i))` fit `resident` blocks, found by
/// bisection (feasibility only grows with `T`). When even one block each does
/// not fit, every member gets one block (the caller refuses that bundle).
fn constrained_budgets(members: &[Candidate], resident: u64) -> Vec<u32> {
    let work: Vec<(u64, f64)> = members.iter().map(|m| (m.facts.logical_blocks, m.facts.block_time)).collect();
    finish_together_budgets(&work, resident)
}

/// Block budgets for kernels of `(logical blocks L_i, time per logical block
/// w_i)` sharing `resident` physical blocks so they finish together: the
/// smallest time `T` whose budgets `ceil(L_i / floor(T / w_i))` fit, found by
/// bisection (feasibility only grows with `T`). Budgets are proportional to
/// each kernel's work `L_i · w_i`, rounded to whole rounds. When even one
/// block each does not fit, every kernel gets one block.
pub fn finish_together_budgets(work: &[(u64, f64)], resident: u64) -> Vec<u32> {
    let budgets_at = |t: f64| -> Vec<u64> {
        work.iter()
            .map(|&(logical, block_time)| {
                let r = (t / block_time).floor().max(1.0) as u64;
                logical.div_ceil(r).max(1)
            })
            .collect()
    };
    let fits = |b: &[u64]| b.iter().sum::<u64>() <= resident;
    let mut lo = work.iter().map(|w| w.1).fold(0.0, f64::max);
    let mut hi = work.iter().map(|&(l, w)| w * l as f64).fold(lo, f64::max);
    let best = if fits(&budgets_at(lo)) {
        budgets_at(lo)
    } else {
        // Invariant: budgets at `hi` fit (one block each, if anything does).
        for _ in 0..100 {
            let mid = lo + (hi - lo) / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if fits(&budgets_at(mid)) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        budgets_at(hi)
    };
    best.into_iter().map(|b| u32::try_from(b).unwrap_or(u32::MAX)).collect()
}

/// Builds the planned bundle of `members` laid out in join order.
fn assemble(
    members: &[Candidate],
    shape: BundleShape,
    tenants: &[(TenantId, &Program)],
    limits: &Target,
) -> Result<PlannedBundle, ScheduleError> {
    let slots: Vec<Slot> = members
        .iter()
        .zip(&shape.blocks)
        .map(|(m, &b)| {
            let args = tenants[m.tenant_index].1.steps.get(m.step).map(|s| s.args.clone()).unwrap_or_default();
            let budget = if shape.coalesced { Budget::Full } else { Budget::Blocks(b) };
            Slot { kernel: m.kernel.clone(), tenant: m.tenant, budget, args }
        })
        .collect();
    let mut builder = BundleBuilder::new();
    for slot in slots {
        builder.push(slot);
    }
    let bundle = builder.build()?;
    let total = bundle.table.total_blocks() as u64;
    let slot_plans = members
        .iter()
        .enumerate()
        .map(|(i, m)| SlotPlan {
            tenant: m.tenant,
            step: m.step,
            logical_blocks: m.facts.logical_blocks,
            blocks: shape.blocks[i],
            rounds: shape.rounds[i],
            block_time: m.facts.block_time,
            solo_time: m.facts.solo_time,
            time: shape.times[i],
        })
        .collect();
    Ok(PlannedBundle {
        time: shape.time(),
        waves: shape.occupancy.waves(total, limits),
        bundle,
        slots: slot_plans,
        resources: shape.resources,
        occupancy: shape.occupancy,
        coalesced: shape.coalesced,
    })
}
