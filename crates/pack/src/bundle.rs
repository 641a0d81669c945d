//! Slots and bundles.
//!
//! A **slot** is one kernel launch of one tenant with a block budget; a
//! **bundle** is one launch of several slots. What a bundle compiles to
//! depends only on its [`LaunchClass`]: the distinct kernel bodies it holds
//! and its block size. Tenants, buffers, block ranges and budgets are data
//! (the [`SlotTable`] and the slots' arguments), so admitting another tenant
//! of a model already compiled compiles nothing.

use std::sync::Arc;

use weft_kir::KernelDef;
use weft_lower::BufferId;

use crate::table::SlotTable;

/// A tenant instance (one model instance with its own buffers and weights).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TenantId(pub u32);

/// How many physical blocks a slot runs on.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Budget {
    /// One physical block per logical block (plain coalescing).
    Full,
    /// `n` persistent physical blocks that loop over the logical grid
    /// (constraining); `n` is clamped to the logical block count.
    Blocks(u32),
}

impl Budget {
    /// Physical blocks for a kernel of `logical` blocks.
    pub fn physical_blocks(self, logical: u64) -> u32 {
        let logical = logical.min(u32::MAX as u64) as u32;
        match self {
            Budget::Full => logical,
            Budget::Blocks(n) => n.clamp(1, logical.max(1)),
        }
    }
}

/// One kernel launch of one tenant inside a bundle.
#[derive(Clone, Debug)]
pub struct Slot {
    pub kernel: Arc<KernelDef>,
    pub tenant: TenantId,
    pub budget: Budget,
    /// The tenant's buffer bound to each kernel parameter, in order.
    pub args: Vec<BufferId>,
}

/// What a bundle's compiled module depends on: its distinct kernel bodies
/// (in the canonical order, [`canonical_order`]), the block size of the
/// launch, and whether any physical block runs more than one logical block.
///
/// Bodies are dispatched by their index in the slot table, so the module
/// of a set of bodies is one module whichever slot came first: a class is
/// the *set* of its bodies, and bundles of the same bodies met in another
/// order (tenants at other phases, offers in another priority) share it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LaunchClass {
    /// Fingerprints of the distinct kernel bodies ([`body_fingerprint`]),
    /// ascending.
    pub bodies: Vec<u64>,
    /// Threads per physical block: the widest slot's.
    pub block_threads: u32,
    /// Every slot runs one logical block per physical block
    /// ([`SlotTable::single_pass`]: a coalesced launch), so the module is
    /// emitted without the loop over logical blocks a constrained slot
    /// needs, and keeps none of its state live across bodies. A launch of
    /// the same bodies with a budget below some slot's grid is another
    /// class, with its own module.
    pub single_pass: bool,
}

impl LaunchClass {
    /// The class of a launch of `bodies` (fingerprints, in the canonical
    /// order) in blocks of `block_threads`, laid out as `table`.
    pub fn of(bodies: Vec<u64>, block_threads: u32, table: &SlotTable) -> LaunchClass {
        LaunchClass { bodies, block_threads, single_pass: table.single_pass() }
    }
}

/// A fingerprint of a kernel's body: its KIR text (name included, since the
/// emitted code names the body). Equal kernels have equal fingerprints within
/// one process; it is a key for in-memory tables, never stored.
pub fn body_fingerprint(kernel: &KernelDef) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kernel.to_string().hash(&mut h);
    h.finish()
}

/// Puts a bundle's distinct bodies in the canonical order, ascending by
/// fingerprint (`fingerprints[i]` is body `i`'s), and renumbers the slots'
/// body indices (`body_of`) to follow. Returns the old index of each body
/// in its new place, for whatever else is indexed like the bodies.
pub(crate) fn canonical_order(fingerprints: &mut [u64], body_of: &mut [u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..fingerprints.len()).collect();
    // Stable on ties: equal fingerprints of unequal bodies keep first use.
    order.sort_by_key(|&i| fingerprints[i]);
    let mut rank = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        rank[old] = new as u32;
    }
    let sorted: Vec<u64> = order.iter().map(|&i| fingerprints[i]).collect();
    fingerprints.copy_from_slice(&sorted);
    for b in body_of {
        *b = rank[*b as usize];
    }
    order
}

/// Reorders `items` (indexed like the bodies) as [`canonical_order`] did.
pub(crate) fn reorder<T: Clone>(items: &mut Vec<T>, order: &[usize]) {
    *items = order.iter().map(|&i| items[i].clone()).collect();
}

/// One launch of several slots.
///
/// Only this crate's bundle builder makes one (its fields are private, read
/// through the accessors), so every bundle an executor launches has every
/// body verified and isolated: each global and shared access proven in
/// bounds or guarded (see [`crate::builder`]).
#[derive(Clone, Debug)]
pub struct Bundle {
    pub(crate) slots: Vec<Slot>,
    /// Distinct kernel bodies, indexed by `SlotEntry::body`.
    pub(crate) bodies: Vec<Arc<KernelDef>>,
    pub(crate) table: SlotTable,
    pub(crate) class: LaunchClass,
}

impl Bundle {
    /// The slots, in table order; each slot's kernel is the body that runs.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The distinct kernel bodies (verified and isolated), indexed by
    /// `SlotEntry::body`.
    pub fn bodies(&self) -> &[Arc<KernelDef>] {
        &self.bodies
    }

    /// Which physical blocks run which slot.
    pub fn table(&self) -> &SlotTable {
        &self.table
    }

    /// What the bundle's compiled module depends on.
    pub fn class(&self) -> &LaunchClass {
        &self.class
    }

    /// Bytes of shared memory a physical block needs: the most any body
    /// needs, since a block runs one slot's body at a time.
    pub fn shared_bytes(&self) -> u64 {
        self.bodies.iter().map(|k| k.shared_bytes()).max().unwrap_or(0)
    }

    /// Slot `slot` alone, on its whole logical grid: the one-slot bundle of
    /// the same (already verified and isolated) body and arguments, with
    /// the launch class that body has alone.
    pub fn single(&self, slot: usize) -> Result<Bundle, crate::PackError> {
        let missing = || crate::PackError::Empty;
        let s = self.slots.get(slot).ok_or_else(missing)?;
        let entry = self.table.entries.get(slot).ok_or_else(missing)?;
        let fingerprint = self.class.bodies.get(entry.body as usize).copied().ok_or_else(missing)?;
        crate::shape::lay_out(&[crate::shape::Part {
            kernel: &s.kernel,
            fingerprint,
            tenant: s.tenant,
            budget: Budget::Full,
            args: &s.args,
        }])
    }

    pub fn block_threads(&self) -> u32 {
        self.class.block_threads
    }
}
