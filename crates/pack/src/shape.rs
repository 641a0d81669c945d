//! Bundle shaping: the one definition of which kernels may share a launch,
//! with what budgets, and how the [`Bundle`] is laid out.
//!
//! Every planner forms bundles here: the offline list scheduler
//! ([`crate::plan`]) and the serving scheduler (`weft_sched::Scheduler`)
//! differ only in which kernels they offer and which trials they keep, never
//! in the rules below, so a bundle one of them forms is one the other could.
//!
//! - **Prepared kernels.** A kernel is verified and isolated once, through
//!   the [`BundleBuilder`](crate::BundleBuilder)'s cached path
//!   ([`PreparedKernel::new`]), and its facts are computed then: block
//!   resources, solo occupancy, logical blocks, the blocks per SM it needs,
//!   and its budget weight ([`block_time`]). Forming trial bundle after trial
//!   bundle then re-analyses nothing.
//! - **Resources come from one place**: a [`ResourceModel`]. Without a ptxas
//!   report that is [`EstimatedResources`] (registers estimated from KIR); a
//!   table of measured resources is another implementation, and every
//!   shaping decision follows it.
//! - **Admission** ([`shape`]), in this order: a member narrower than the
//!   bundle's block must be whole warps (it syncs on a named barrier over its
//!   own warps); the bundle's physical block asks for the most threads,
//!   registers and shared memory of any member ([`KernelResources::max`]),
//!   and every member must still get `min(its solo blocks per SM, ceil(its
//!   logical blocks / SMs))` resident blocks per SM (a small grid does not
//!   need its full solo occupancy); a constrained bundle needs one resident
//!   block per slot; no launch exceeds [`MAX_PHYSICAL_BLOCKS`]. A refusal is
//!   a typed [`ShapeRefusal`] naming the member and the limit.
//! - **Budgets.** [`PackMode::Auto`] coalesces ([`Budget::Full`]) when every
//!   member's grid fits one wave together and constrains otherwise;
//!   constrained budgets make members finish together
//!   ([`finish_together_budgets`]): proportional to each member's work
//!   (logical blocks × [`block_time`]), rounded to whole rounds, within the
//!   resident capacity.
//! - **Assembly** ([`assemble`]) lays the prepared members out back to back
//!   with [`SlotTable::layout`], deduplicating bodies, exactly as the builder
//!   would for the same slots (a test checks the two agree).
//!
//! How long a shaped bundle takes is not decided here: that is a
//! [`CostModel`](crate::CostModel)'s question.

use std::sync::Arc;

use weft_kir::analysis::cost;
use weft_kir::{KernelDef, Target};
use weft_lower::BufferId;

use crate::builder::{prepare_cached, Isolation, MAX_PHYSICAL_BLOCKS};
use crate::bundle::{canonical_order, reorder, Budget, Bundle, LaunchClass, Slot, TenantId};
use crate::error::PackError;
use crate::module::BundleFigures;
use crate::occupancy::{KernelResources, Limiter, Occupancy};
use crate::table::SlotTable;

/// Where kernels' block resources (threads, registers, shared memory) come
/// from: the one lookup every shaping decision goes through.
pub trait ResourceModel {
    fn resources(&self, kernel: &KernelDef) -> KernelResources;

    /// The figures of `bundle`'s compiled module (its launch class's)
    /// beside its heaviest body's, where known: [`crate::grow`] splits a
    /// join whose module would lose its bodies' occupancy. `None` (the
    /// default: not compiled yet) plans on the members' own resources.
    fn module(&self, bundle: &Bundle) -> Option<BundleFigures> {
        let _ = bundle;
        None
    }
}

/// ptxas's figures for the bodies and bundle modules compiled so far, the
/// estimate for the rest.
impl ResourceModel for crate::occupancy::ResourceTable {
    fn resources(&self, kernel: &KernelDef) -> KernelResources {
        crate::occupancy::ResourceTable::resources(self, kernel)
    }

    fn module(&self, bundle: &Bundle) -> Option<BundleFigures> {
        self.bundle(bundle.class())
    }
}

/// Resources read off the kernel, registers estimated from KIR
/// ([`KernelResources::of`] without a ptxas report).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct EstimatedResources;

impl ResourceModel for EstimatedResources {
    fn resources(&self, kernel: &KernelDef) -> KernelResources {
        KernelResources::of(kernel, None)
    }
}

impl<F: Fn(&KernelDef) -> KernelResources> ResourceModel for F {
    fn resources(&self, kernel: &KernelDef) -> KernelResources {
        self(kernel)
    }
}

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

/// One distinct kernel, verified, isolated and analysed once, ready to pack.
#[derive(Clone, Debug)]
pub struct PreparedKernel {
    /// The kernel that runs: verified, every global and shared access
    /// proven in bounds or guarded. Private (read with
    /// [`PreparedKernel::kernel`]) so no unchecked kernel can be assembled
    /// into a bundle.
    pub(crate) kernel: Arc<KernelDef>,
    /// [`body_fingerprint`](crate::body_fingerprint) of `kernel`.
    pub(crate) fingerprint: u64,
    /// What one of its blocks asks of an SM (from the [`ResourceModel`]).
    pub resources: KernelResources,
    /// Its occupancy alone.
    pub solo: Occupancy,
    pub logical_blocks: u64,
    /// Work units per logical block: the weight of its constrained budget.
    pub block_time: f64,
    /// Resident blocks per SM it needs to run at its solo speed.
    pub need_per_sm: u32,
}

impl PreparedKernel {
    /// The kernel that runs: verified and isolated.
    pub fn kernel(&self) -> &Arc<KernelDef> {
        &self.kernel
    }

    /// [`body_fingerprint`](crate::body_fingerprint) of [`PreparedKernel::kernel`].
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Verifies and isolates `kernel` (guarding accesses it cannot prove in
    /// bounds, as the builder does by default) and computes its facts on a
    /// device with `limits`, asking `resources` for its block resources.
    pub fn new(
        kernel: &Arc<KernelDef>,
        limits: &Target,
        resources: &dyn ResourceModel,
    ) -> Result<PreparedKernel, PackError> {
        let original = &**kernel;
        let (kernel, _guards, fingerprint) = prepare_cached(kernel, Isolation::Guard)?;
        // The isolated body is what compiles; a model filled from the
        // program's own kernels knows it by the original where isolation
        // added guards.
        let res = match resources.resources(&kernel) {
            r if r.measured || *kernel == *original => r,
            r => Some(resources.resources(original)).filter(|o| o.measured).unwrap_or(r),
        };
        Ok(PreparedKernel::with_facts(kernel, fingerprint, res, limits))
    }

    /// The same kernel with block resources `res` (ptxas's figures, once
    /// compiled), its occupancy and needs recomputed.
    pub fn with_resources(&self, res: KernelResources, limits: &Target) -> PreparedKernel {
        PreparedKernel::with_facts(self.kernel.clone(), self.fingerprint, res, limits)
    }

    fn with_facts(kernel: Arc<KernelDef>, fingerprint: u64, res: KernelResources, limits: &Target) -> PreparedKernel {
        let solo = Occupancy::of(res, limits);
        let logical_blocks = kernel.launch.num_blocks().max(1);
        let per_sm_of_grid = logical_blocks.div_ceil(limits.sm_count.max(1) as u64);
        PreparedKernel {
            fingerprint,
            block_time: block_time(&kernel, limits.warp_size),
            need_per_sm: (solo.blocks_per_sm as u64).min(per_sm_of_grid).max(1) as u32,
            resources: res,
            solo,
            logical_blocks,
            kernel,
        }
    }

    /// Threads per block.
    pub fn threads(&self) -> u32 {
        self.resources.threads
    }
}

/// A kernel chosen for a bundle: the prepared kernel, whose it is, and the
/// buffers it binds.
#[derive(Clone, Debug)]
pub struct Member {
    pub kernel: Arc<PreparedKernel>,
    pub tenant: TenantId,
    pub args: Vec<BufferId>,
}

/// How a member list shares one launch.
#[derive(Clone, PartialEq, Debug)]
pub struct Shape {
    /// What one physical block asks of an SM (the most of every member's).
    pub resources: KernelResources,
    pub occupancy: Occupancy,
    /// True when every member runs its full grid, false when budgets
    /// constrain them.
    pub coalesced: bool,
    /// One per member, in member order.
    pub budgets: Vec<Budget>,
}

/// Why a member list cannot form one bundle.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum ShapeRefusal {
    #[error("a bundle needs at least one slot")]
    Empty,
    /// A member narrower than the bundle's block would not be whole warps,
    /// so it could not sync on a named barrier ([`PackError::BlockShape`]).
    #[error(
        "block shape: tenant {} kernel `{member_kernel}` has {threads} threads, not whole warps, \
         and cannot share a {bundle_threads}-thread block",
        member.0
    )]
    BlockShape { member: TenantId, member_kernel: String, threads: u32, bundle_threads: u32 },
    /// The bundle would give `member` fewer resident blocks per SM than it
    /// needs.
    #[error(
        "occupancy: with it the bundle's blocks need {} threads, {} registers and {} B shared memory, \
         so an SM holds {would_get} of them ({limiter}-limited), but tenant {} kernel `{member_kernel}` \
         needs {needs} per SM",
        resources.threads, resources.registers, resources.shared_bytes, member.0
    )]
    Occupancy {
        member: TenantId,
        member_kernel: String,
        needs: u32,
        would_get: u32,
        limiter: Limiter,
        resources: KernelResources,
    },
    /// A constrained bundle has no physical block left for another slot.
    #[error("capacity: {slots} slots would need more than the {resident_blocks} resident blocks")]
    Capacity { slots: usize, resident_blocks: u64 },
    /// The launch would have more physical blocks than one launch may.
    #[error("grid: {physical_blocks} physical blocks exceed the {limit} one launch may have")]
    Grid { physical_blocks: u64, limit: u64 },
}

/// Applies the admission rules to `members` (module docs) and chooses their
/// budgets under `mode`.
pub fn shape(members: &[Member], limits: &Target, mode: PackMode) -> Result<Shape, ShapeRefusal> {
    let resources =
        members.iter().map(|m| m.kernel.resources).reduce(KernelResources::max).ok_or(ShapeRefusal::Empty)?;
    let warp = limits.warp_size.max(1);
    for m in members {
        let threads = m.kernel.threads();
        if threads < resources.threads && threads % warp != 0 {
            return Err(ShapeRefusal::BlockShape {
                member: m.tenant,
                member_kernel: m.kernel.kernel.name.clone(),
                threads,
                bundle_threads: resources.threads,
            });
        }
    }
    let occupancy = Occupancy::of(resources, limits);
    for m in members {
        let needs = m.kernel.need_per_sm.max(1);
        if occupancy.blocks_per_sm < needs {
            return Err(ShapeRefusal::Occupancy {
                member: m.tenant,
                member_kernel: m.kernel.kernel.name.clone(),
                needs,
                would_get: occupancy.blocks_per_sm,
                limiter: occupancy.limiter,
                resources,
            });
        }
    }
    let resident = occupancy.resident_blocks(limits).max(1);
    let total: u64 = members.iter().map(|m| m.kernel.logical_blocks).sum();
    let coalesced = match mode {
        PackMode::Coalesce => true,
        PackMode::Constrain => false,
        PackMode::Auto => total <= resident,
    };
    if coalesced {
        if total > MAX_PHYSICAL_BLOCKS {
            return Err(ShapeRefusal::Grid { physical_blocks: total, limit: MAX_PHYSICAL_BLOCKS });
        }
        return Ok(Shape { resources, occupancy, coalesced, budgets: vec![Budget::Full; members.len()] });
    }
    if members.len() as u64 > resident {
        return Err(ShapeRefusal::Capacity { slots: members.len(), resident_blocks: resident });
    }
    let work: Vec<(u64, f64)> = members.iter().map(|m| (m.kernel.logical_blocks, m.kernel.block_time)).collect();
    let budgets = finish_together_budgets(&work, resident).into_iter().map(Budget::Blocks).collect();
    Ok(Shape { resources, occupancy, coalesced, budgets })
}

/// Lays out prepared `members` with `budgets` (one each) as one bundle,
/// exactly as [`BundleBuilder`](crate::BundleBuilder) would for these
/// (already isolated) kernels.
pub fn assemble(members: &[Member], budgets: &[Budget]) -> Result<Bundle, PackError> {
    if members.is_empty() {
        return Err(PackError::Empty);
    }
    if members.len() != budgets.len() {
        return Err(PackError::Budgets { slots: members.len(), budgets: budgets.len() });
    }
    let mut parts = Vec::with_capacity(members.len());
    for (m, &budget) in members.iter().zip(budgets) {
        let k = &m.kernel;
        let params = k.kernel.params.len();
        if m.args.len() != params {
            return Err(PackError::SlotArgs { kernel: k.kernel.name.clone(), params, args: m.args.len() });
        }
        parts.push(Part { kernel: &k.kernel, fingerprint: k.fingerprint, tenant: m.tenant, budget, args: &m.args });
    }
    lay_out(&parts)
}

/// One slot to lay out: an already verified and isolated body, whose it is
/// and how many blocks it gets.
pub(crate) struct Part<'a> {
    pub kernel: &'a Arc<KernelDef>,
    pub fingerprint: u64,
    pub tenant: TenantId,
    pub budget: Budget,
    pub args: &'a [BufferId],
}

/// Lays `parts` out as one bundle: distinct bodies in the canonical order
/// ([`canonical_order`]), the slot table, the launch class (the one layout
/// [`assemble`] and [`Bundle::single`] share).
pub(crate) fn lay_out(parts: &[Part<'_>]) -> Result<Bundle, PackError> {
    let mut bodies: Vec<Arc<KernelDef>> = Vec::new();
    let mut fingerprints: Vec<u64> = Vec::new();
    let mut body_of = Vec::with_capacity(parts.len());
    let mut total: u64 = 0;
    for p in parts {
        let found = bodies
            .iter()
            .zip(&fingerprints)
            .position(|(b, &f)| Arc::ptr_eq(b, p.kernel) || (f == p.fingerprint && **b == **p.kernel));
        let body = match found {
            Some(i) => i,
            None => {
                bodies.push(p.kernel.clone());
                fingerprints.push(p.fingerprint);
                bodies.len() - 1
            }
        };
        total += p.budget.physical_blocks(p.kernel.launch.num_blocks().max(1)) as u64;
        body_of.push(body as u32);
    }
    if total > MAX_PHYSICAL_BLOCKS {
        return Err(PackError::LimitExceeded {
            what: "physical blocks in one bundle".to_string(),
            limit: MAX_PHYSICAL_BLOCKS,
            needed: total,
        });
    }
    let order = canonical_order(&mut fingerprints, &mut body_of);
    reorder(&mut bodies, &order);
    let mut slots = Vec::with_capacity(parts.len());
    let mut layout = Vec::with_capacity(parts.len());
    for (p, &body) in parts.iter().zip(&body_of) {
        let blocks = p.budget.physical_blocks(p.kernel.launch.num_blocks().max(1));
        layout.push((body, p.kernel.launch, blocks));
        let kernel = bodies[body as usize].clone();
        slots.push(Slot { kernel, tenant: p.tenant, budget: p.budget, args: p.args.to_vec() });
    }
    let block_threads =
        parts.iter().map(|p| p.kernel.launch.threads_per_block().min(u32::MAX as u64) as u32).max().unwrap_or(0);
    let table = SlotTable::layout(&layout);
    let class = LaunchClass::of(fingerprints, block_threads, &table);
    Ok(Bundle { slots, bodies, table, class })
}

/// A member list that passed [`shape`], with its assembled bundle: what a
/// [`CostModel`](crate::CostModel) prices.
#[derive(Clone, Debug)]
pub struct ShapedBundle {
    pub bundle: Bundle,
    /// One per slot of `bundle`, in slot order.
    pub members: Vec<Member>,
    pub shape: Shape,
}

/// Why [`ShapedBundle::form`] formed nothing.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum FormError {
    /// The members break an admission rule: a later bundle may hold them.
    #[error(transparent)]
    Refused(#[from] ShapeRefusal),
    /// The members cannot be laid out at all.
    #[error(transparent)]
    Pack(#[from] PackError),
}

impl ShapedBundle {
    /// Shapes `members` under `mode` and assembles their bundle.
    pub fn form(members: Vec<Member>, limits: &Target, mode: PackMode) -> Result<ShapedBundle, FormError> {
        let shape = shape(&members, limits, mode)?;
        let bundle = assemble(&members, &shape.budgets)?;
        Ok(ShapedBundle { bundle, members, shape })
    }
}

/// Work units one logical block of `kernel` takes: its warp instructions
/// (KIR thread-instructions over the warp size) plus one unit per 32-byte
/// sector of global memory it moves, per logical block. Only ratios between
/// kernels matter to budgets, and both terms scale with a block's work.
pub fn block_time(kernel: &KernelDef, warp_size: u32) -> f64 {
    let c = cost(kernel);
    let blocks = kernel.launch.num_blocks().max(1) as f64;
    let warp_insts = c.thread_insts as f64 / warp_size.max(1) as f64;
    let sectors = (c.global_read_bytes as f64 + c.global_write_bytes as f64) / 32.0;
    ((warp_insts + sectors) / blocks).max(1.0)
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

#[cfg(test)]
mod tests {
    use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};

    use super::*;
    use crate::builder::BundleBuilder;

    /// `y[i] = x[i]` over `blocks × threads` elements, through a shared
    /// array of `shared_elems` f32s when non-zero.
    fn copy(name: &str, blocks: u32, threads: u32, shared_elems: u32) -> Arc<KernelDef> {
        let n = (blocks * threads) as u64;
        let mut b = KernelBuilder::new(name, LaunchShape::linear(blocks, threads));
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let y = b.buffer("y", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X);
        let mut v = b.load(x, i);
        if shared_elems > 0 {
            let s = b.shared_array(Type::F32, shared_elems);
            let tid = b.thread_id(Axis::X);
            b.shared_store(s, tid, v);
            b.barrier();
            v = b.shared_load(s, tid);
        }
        b.store(y, i, v);
        Arc::new(b.finish())
    }

    fn member(kernel: &Arc<KernelDef>, tenant: u32, limits: &Target) -> Member {
        let prepared = PreparedKernel::new(kernel, limits, &EstimatedResources).expect("prepares");
        let args = (0..kernel.params.len() as u32).map(BufferId::from_u32).collect();
        Member { kernel: Arc::new(prepared), tenant: TenantId(tenant), args }
    }

    #[test]
    fn assembled_bundles_match_the_builders() {
        let limits = Target::sm_90();
        let a = copy("a", 40, 128, 0);
        let b = copy("b", 3000, 256, 0);
        let odd = copy("odd", 2, 48, 0);
        let members = vec![member(&a, 0, &limits), member(&b, 1, &limits), member(&a, 2, &limits)];
        for budgets in [
            vec![Budget::Full; 3],
            vec![Budget::Blocks(7), Budget::Blocks(100), Budget::Blocks(1)],
            shape(&members, &limits, PackMode::Constrain).expect("shapes").budgets,
        ] {
            let bundle = assemble(&members, &budgets).expect("assembles");
            let mut builder = BundleBuilder::new();
            for slot in &bundle.slots {
                builder.push(slot.clone());
            }
            let built = builder.build().expect("the builder accepts the same slots");
            assert_eq!(built.table, bundle.table, "{budgets:?}");
            assert_eq!(built.class, bundle.class, "{budgets:?}");
            assert_eq!(bundle.bodies.len(), 2, "one body per distinct kernel");
        }
        // A kernel alone: the prepared kernel is what the builder would run.
        let alone = assemble(&[member(&odd, 5, &limits)], &[Budget::Full]).unwrap();
        let built = BundleBuilder::new().slot(alone.slots[0].clone()).build().unwrap();
        assert_eq!(*built.bodies[0], *alone.bodies[0]);
        assert_eq!(assemble(&[], &[]).unwrap_err(), PackError::Empty);
        assert_eq!(assemble(&members, &[Budget::Full]).unwrap_err(), PackError::Budgets { slots: 3, budgets: 1 });
    }

    #[test]
    fn shaping_refuses_with_the_member_and_the_limit() {
        let limits = Target::sm_90();
        let wide = member(&copy("wide", 4, 256, 0), 0, &limits);
        let odd = member(&copy("odd", 4, 48, 0), 1, &limits);
        let refusal = shape(&[wide.clone(), odd.clone()], &limits, PackMode::Auto).unwrap_err();
        assert!(
            matches!(&refusal, ShapeRefusal::BlockShape { member: TenantId(1), threads: 48, bundle_threads: 256, .. }),
            "{refusal}"
        );
        // As the widest member, 48 threads are fine.
        assert!(shape(&[odd], &limits, PackMode::Auto).is_ok());

        // 1024 threads and 100 KiB shared: 2 blocks per SM; the small kernel
        // needs 16 per SM for 2112 blocks on 132 SMs.
        let big = member(&copy("big", 264, 1024, 25 * 1024), 2, &limits);
        let small = member(&copy("small", 2112, 128, 0), 3, &limits);
        assert_eq!(small.kernel.need_per_sm, 16);
        match shape(&[big, small], &limits, PackMode::Auto).unwrap_err() {
            ShapeRefusal::Occupancy { member, member_kernel, needs, would_get, .. } => {
                assert_eq!((member, member_kernel.as_str(), needs, would_get), (TenantId(3), "small", 16, 2));
            }
            other => panic!("expected an occupancy refusal, got {other}"),
        }
        assert_eq!(shape(&[], &limits, PackMode::Auto).unwrap_err(), ShapeRefusal::Empty);

        // A constrained bundle needs one resident block per slot.
        let tiny = Target { sm_count: 1, ..limits };
        let k = copy("k", 64, 1024, 0);
        let many: Vec<Member> = (0..3).map(|t| member(&k, t, &tiny)).collect();
        let refusal = shape(&many, &tiny, PackMode::Constrain).unwrap_err();
        assert_eq!(refusal, ShapeRefusal::Capacity { slots: 3, resident_blocks: 2 });
        assert!(refusal.to_string().contains("capacity"), "{refusal}");
    }

    #[test]
    fn auto_coalesces_one_wave_and_constrained_budgets_fit_it() {
        let limits = Target::sm_90();
        let small = [member(&copy("s", 64, 256, 0), 0, &limits), member(&copy("s", 64, 256, 0), 1, &limits)];
        let s = shape(&small, &limits, PackMode::Auto).unwrap();
        assert!(s.coalesced && s.budgets == [Budget::Full, Budget::Full]);
        let big = [member(&copy("b0", 8192, 256, 0), 0, &limits), member(&copy("b1", 4096, 256, 0), 1, &limits)];
        let s = shape(&big, &limits, PackMode::Auto).unwrap();
        assert!(!s.coalesced);
        let blocks: Vec<u32> = s.budgets.iter().map(|b| b.physical_blocks(u64::MAX)).collect();
        assert!(blocks.iter().map(|&b| b as u64).sum::<u64>() <= s.occupancy.resident_blocks(&limits));
        // Same work per block, twice the blocks: about twice the budget.
        let ratio = blocks[0] as f64 / blocks[1] as f64;
        assert!((1.7..=2.3).contains(&ratio), "budgets {blocks:?}");
    }
}
