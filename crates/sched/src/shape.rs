//! Shaping a bundle from chosen kernels: occupancy rules, budgets, and the
//! assembled [`Bundle`].
//!
//! The rules are the packer's ([`weft_pack::schedule`], rules 2 and 3),
//! restated here because the packer keeps them private to its offline
//! planner:
//!
//! - a bundle's physical block asks for the most threads, registers and
//!   shared memory of any slot, so its resident capacity is
//!   `blocks_per_sm(bundle) × sm_count`; a kernel joins only if every member
//!   still gets `min(its solo blocks per SM, ceil(logical blocks / SMs))`
//!   blocks per SM, and a member narrower than the bundle's block must be
//!   whole warps (named barriers);
//! - [`PackMode::Auto`] coalesces ([`Budget::Full`]) when every slot's grid
//!   fits one wave together and constrains otherwise: budgets proportional to
//!   each slot's work (logical blocks × [`weft_pack::block_time`]) within the
//!   resident capacity, the smallest finish time `T` for which `b_i =
//!   ceil(L_i / floor(T / w_i))` fit, found by bisection.
//!
//! Kernels are isolated once when a tenant is registered ([`PreparedKernel`],
//! through [`BundleBuilder`], which verifies and guards them), so forming a
//! bundle afterwards is cheap: [`assemble`] lays the prepared slots out with
//! [`SlotTable::layout`] exactly as the builder would (a test checks the two
//! agree), without re-analysing the kernels for every trial bundle.

use std::sync::Arc;

use weft_kir::{KernelDef, Target};
use weft_lower::BufferId;
use weft_pack::{
    block_time, body_fingerprint, Budget, Bundle, BundleBuilder, KernelResources, LaunchClass, Occupancy, PackMode,
    ResourceTable, Slot, SlotTable, TenantId,
};

use crate::error::SchedError;

/// One distinct kernel of a registered program, ready to pack.
#[derive(Clone, Debug)]
pub struct PreparedKernel {
    /// The kernel that runs: verified, every global access proven in bounds
    /// or guarded.
    pub kernel: Arc<KernelDef>,
    pub fingerprint: u64,
    pub resources: KernelResources,
    pub solo: Occupancy,
    pub logical_blocks: u64,
    /// Model time units per logical block (the packer's proportional-budget weight).
    pub block_time: f64,
    /// Blocks per SM it needs to run at its solo speed.
    pub need_per_sm: u32,
    pub threads: u32,
}

impl PreparedKernel {
    /// Verifies and isolates `kernel` through the packer's builder; the
    /// isolated body's resources come from `resources`.
    pub fn new(
        kernel: &Arc<KernelDef>,
        limits: &Target,
        resources: &ResourceTable,
    ) -> Result<PreparedKernel, SchedError> {
        let args: Vec<BufferId> = (0..kernel.params.len() as u32).map(BufferId::from_u32).collect();
        let alone = BundleBuilder::new()
            .slot(Slot { kernel: kernel.clone(), tenant: TenantId(0), budget: Budget::Full, args })
            .build()?;
        let original = &**kernel;
        let kernel = alone.bodies.first().cloned().ok_or(SchedError::Pack(weft_pack::PackError::Empty))?;
        // The isolated body is what compiles; a table filled from the
        // program's own kernels knows it by the original where isolation
        // added guards.
        let resources = resources
            .measured(&kernel)
            .or_else(|| resources.measured(original))
            .unwrap_or_else(|| KernelResources::of(&kernel, None));
        let solo = Occupancy::of(resources, limits);
        let logical_blocks = kernel.launch.num_blocks().max(1);
        let per_sm_of_grid = logical_blocks.div_ceil(limits.sm_count.max(1) as u64);
        Ok(PreparedKernel {
            fingerprint: body_fingerprint(&kernel),
            block_time: block_time(&kernel, limits.warp_size),
            need_per_sm: (solo.blocks_per_sm as u64).min(per_sm_of_grid) as u32,
            threads: resources.threads,
            resources,
            solo,
            logical_blocks,
            kernel,
        })
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

/// Why a member list cannot form a bundle.
#[derive(Clone, PartialEq, Debug)]
pub enum ShapeRefusal {
    /// A member would get fewer resident blocks per SM than it needs.
    Occupancy { tenant: TenantId, needs: u32, would_get: u32 },
    /// A member narrower than the bundle's block is not whole warps.
    BlockShape { tenant: TenantId, threads: u32, bundle_threads: u32 },
    /// Constrained slots need at least one resident block each.
    Capacity { slots: usize, resident_blocks: u64 },
}

/// The budgets of a member list, or why it cannot be one bundle.
pub fn budgets(members: &[Member], limits: &Target, mode: PackMode) -> Result<Vec<Budget>, ShapeRefusal> {
    let resources = members
        .iter()
        .map(|m| m.kernel.resources)
        .reduce(KernelResources::max)
        .unwrap_or(KernelResources::new(1, 16, 0));
    let warp = limits.warp_size.max(1);
    for m in members {
        if m.kernel.threads < resources.threads && m.kernel.threads % warp != 0 {
            return Err(ShapeRefusal::BlockShape {
                tenant: m.tenant,
                threads: m.kernel.threads,
                bundle_threads: resources.threads,
            });
        }
    }
    let occupancy = Occupancy::of(resources, limits);
    for m in members {
        let needs = m.kernel.need_per_sm.max(1);
        if occupancy.blocks_per_sm < needs {
            return Err(ShapeRefusal::Occupancy { tenant: m.tenant, needs, would_get: occupancy.blocks_per_sm });
        }
    }
    let resident = occupancy.resident_blocks(limits).max(1);
    let total: u64 = members.iter().map(|m| m.kernel.logical_blocks).sum();
    let coalesce = match mode {
        PackMode::Coalesce => true,
        PackMode::Constrain => false,
        PackMode::Auto => total <= resident,
    };
    if coalesce {
        return Ok(vec![Budget::Full; members.len()]);
    }
    if members.len() as u64 > resident {
        return Err(ShapeRefusal::Capacity { slots: members.len(), resident_blocks: resident });
    }
    Ok(proportional_budgets(members, resident).into_iter().map(Budget::Blocks).collect())
}

/// Budgets proportional to work that make members finish together within
/// `resident` blocks (the packer's rule, [`weft_pack::finish_together_budgets`]).
fn proportional_budgets(members: &[Member], resident: u64) -> Vec<u32> {
    let work: Vec<(u64, f64)> = members.iter().map(|m| (m.kernel.logical_blocks, m.kernel.block_time)).collect();
    weft_pack::finish_together_budgets(&work, resident)
}

/// Lays out prepared members with `budgets` as one bundle, as
/// [`BundleBuilder`] would for these (already isolated) kernels.
pub fn assemble(members: &[Member], budgets: &[Budget]) -> Result<Bundle, SchedError> {
    if members.is_empty() {
        return Err(SchedError::Pack(weft_pack::PackError::Empty));
    }
    let mut bodies: Vec<Arc<KernelDef>> = Vec::new();
    let mut fingerprints: Vec<u64> = Vec::new();
    let mut slots = Vec::with_capacity(members.len());
    let mut layout = Vec::with_capacity(members.len());
    for (m, &budget) in members.iter().zip(budgets) {
        let k = &m.kernel;
        let body = match bodies.iter().position(|b| Arc::ptr_eq(b, &k.kernel)) {
            Some(i) => i,
            None => {
                bodies.push(k.kernel.clone());
                fingerprints.push(k.fingerprint);
                bodies.len() - 1
            }
        };
        let blocks = budget.physical_blocks(k.logical_blocks);
        layout.push((body as u32, k.kernel.launch, blocks));
        slots.push(Slot { kernel: k.kernel.clone(), tenant: m.tenant, budget, args: m.args.clone() });
    }
    let block_threads = members.iter().map(|m| m.kernel.threads).max().unwrap_or(0);
    Ok(Bundle {
        slots,
        bodies,
        table: SlotTable::layout(&layout),
        class: LaunchClass { bodies: fingerprints, block_threads },
    })
}
