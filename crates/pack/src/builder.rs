//! Making a [`Bundle`] from slots.
//!
//! [`BundleBuilder`] is the one place a bundle is assembled, so the facts every
//! executor relies on are established here, once:
//!
//! - **isolation** (DESIGN.md principle 5): every slot's kernel has every
//!   global access proven in bounds, or guarded by [`isolate`]; in
//!   [`Isolation::Strict`] an unproven access is an error instead. A slot's
//!   kernel in the built bundle is the kernel that runs (the guarded one);
//! - **code keyed by bodies** (principle 1): distinct kernel bodies are
//!   deduplicated (same `Arc`, or equal kernels) into [`Bundle::bodies`], in
//!   the canonical order (by fingerprint, whichever slot came first), and
//!   the [`LaunchClass`] holds their fingerprints and the block size, so N
//!   tenants of one model share one compiled body, and a set of bodies one
//!   module;
//! - **legal barriers** (principle 4): the launch uses the widest slot's
//!   block; a narrower slot idles whole warps and syncs with a named barrier
//!   over its own warps, so its thread count must be a multiple of 32;
//! - **the slot table**: slots are laid out back to back in the order given,
//!   each with the physical blocks its [`Budget`](crate::Budget) asks for.
//!
//! Kernels are analysed once per distinct `Arc` per build; callers forming
//! many bundles from the same kernels may cache [`isolate`]'s result and pass
//! proven kernels, which come back untouched.

use std::collections::HashMap;
use std::sync::Arc;

use weft_kir::verifier::verify;
use weft_kir::{KernelDef, Target};

use crate::bundle::{body_fingerprint, canonical_order, reorder, Bundle, LaunchClass, Slot};
use crate::error::PackError;
use crate::isolate::{first_unproven, isolate, GuardedAccess};
use crate::table::SlotTable;

/// Threads per warp: the granularity of named barriers. Bundles are built
/// before a device is chosen, against [`Target::sm_90`]'s warp and grid,
/// which every target weft compiles for shares.
const WARP: u32 = Target::SM_90.warp_size;

/// Most physical blocks one launch may have (CUDA's `gridDim.x` limit).
pub const MAX_PHYSICAL_BLOCKS: u64 = Target::SM_90.max_grid_dims[0] as u64;

/// What the builder does with a global access it cannot prove in bounds.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub enum Isolation {
    /// Insert a guard ([`isolate`]): out-of-range reads give zero and
    /// out-of-range writes are dropped.
    #[default]
    Guard,
    /// Refuse the slot with [`PackError::Unproven`].
    Strict,
}

/// Assembles a [`Bundle`] from slots; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct BundleBuilder {
    slots: Vec<Slot>,
    isolation: Isolation,
    /// Skip isolation (verification still runs): only settable through
    /// [`BundleBuilder::unisolated_for_tests`], which exists only with the
    /// `testing` feature, so a production build always isolates.
    unisolated: bool,
}

/// What [`BundleBuilder::build_with_guards`] reports: the guards inserted into
/// each body (indexed like [`Bundle::bodies`]; empty for proven bodies).
pub type BodyGuards = Vec<Vec<GuardedAccess>>;

impl BundleBuilder {
    pub fn new() -> BundleBuilder {
        BundleBuilder::default()
    }

    /// Chooses what happens to unproven accesses (default: [`Isolation::Guard`]).
    pub fn isolation(mut self, isolation: Isolation) -> BundleBuilder {
        self.isolation = isolation;
        self
    }

    /// Builds bundles whose bodies are verified but **not** isolated: an
    /// unproven access stays unguarded. Only for tests that must show an
    /// out-of-bounds access would be visible (that the guards are what
    /// stops it); the `testing` feature that provides it is enabled only by
    /// tests.
    #[cfg(feature = "testing")]
    pub fn unisolated_for_tests(mut self) -> BundleBuilder {
        self.unisolated = true;
        self
    }

    /// Adds a slot after the ones already added.
    pub fn slot(mut self, slot: Slot) -> BundleBuilder {
        self.slots.push(slot);
        self
    }

    /// Adds a slot after the ones already added (for loops).
    pub fn push(&mut self, slot: Slot) {
        self.slots.push(slot);
    }

    /// Builds the bundle.
    pub fn build(self) -> Result<Bundle, PackError> {
        self.build_with_guards().map(|(bundle, _)| bundle)
    }

    /// Builds the bundle and reports the guards inserted into each body.
    pub fn build_with_guards(self) -> Result<(Bundle, BodyGuards), PackError> {
        if self.slots.is_empty() {
            return Err(PackError::Empty);
        }
        let mut prepared: HashMap<*const KernelDef, Prepared> = HashMap::new();
        let mut bodies: Vec<Arc<KernelDef>> = Vec::new();
        let mut fingerprints: Vec<u64> = Vec::new();
        let mut guards: BodyGuards = Vec::new();
        let mut slots = self.slots;
        let mut body_of = Vec::with_capacity(slots.len());
        for slot in &mut slots {
            let params = slot.kernel.params.len();
            if slot.args.len() != params {
                return Err(PackError::SlotArgs { kernel: slot.kernel.name.clone(), params, args: slot.args.len() });
            }
            // The key is valid while `slots` holds the Arc, which outlives the map.
            let key = Arc::as_ptr(&slot.kernel);
            let (kernel, guarded, fingerprint) = match prepared.get(&key) {
                Some(done) => done.clone(),
                None if self.unisolated => {
                    verify(&slot.kernel)?;
                    let done = (slot.kernel.clone(), Vec::new(), body_fingerprint(&slot.kernel));
                    prepared.insert(key, done.clone());
                    done
                }
                None => {
                    let done = prepare_cached(&slot.kernel, self.isolation)?;
                    prepared.insert(key, done.clone());
                    done
                }
            };
            let found = bodies
                .iter()
                .zip(&fingerprints)
                .position(|(b, &f)| Arc::ptr_eq(b, &kernel) || (f == fingerprint && **b == *kernel));
            let body = match found {
                Some(i) => i,
                None => {
                    bodies.push(kernel);
                    fingerprints.push(fingerprint);
                    guards.push(guarded);
                    bodies.len() - 1
                }
            };
            body_of.push(body as u32);
        }
        let order = canonical_order(&mut fingerprints, &mut body_of);
        reorder(&mut bodies, &order);
        reorder(&mut guards, &order);
        for (slot, &body) in slots.iter_mut().zip(&body_of) {
            slot.kernel = bodies[body as usize].clone();
        }

        let block_threads = slots.iter().map(|s| threads(&s.kernel)).max().unwrap_or(0);
        for slot in &slots {
            let t = threads(&slot.kernel);
            if t < block_threads && !t.is_multiple_of(WARP) {
                return Err(PackError::BlockShape {
                    kernel: slot.kernel.name.clone(),
                    threads: t,
                    bundle_threads: block_threads,
                    reason: format!(
                        "a slot narrower than the bundle syncs with a named barrier over whole warps, \
                         so its threads must be a multiple of {WARP}"
                    ),
                });
            }
        }

        let mut layout = Vec::with_capacity(slots.len());
        let mut total: u64 = 0;
        for (slot, &body) in slots.iter().zip(&body_of) {
            let blocks = slot.budget.physical_blocks(slot.kernel.launch.num_blocks());
            total += blocks as u64;
            layout.push((body, slot.kernel.launch, blocks));
        }
        if total > MAX_PHYSICAL_BLOCKS {
            return Err(PackError::LimitExceeded {
                what: "physical blocks in one bundle".to_string(),
                limit: MAX_PHYSICAL_BLOCKS,
                needed: total,
            });
        }
        let table = SlotTable::layout(&layout);
        let class = LaunchClass::of(fingerprints, block_threads, &table);
        Ok((Bundle { slots, bodies, table, class }, guards))
    }
}

/// Threads per block of `kernel` (the verifier caps them at 1024).
fn threads(kernel: &KernelDef) -> u32 {
    kernel.launch.threads_per_block().min(u32::MAX as u64) as u32
}

/// A kernel made safe to pack: the kernel to run, the guards added, and its
/// body fingerprint.
pub(crate) type Prepared = (Arc<KernelDef>, Vec<GuardedAccess>, u64);

/// [`prepare`] once per kernel `Arc` and isolation mode in this process:
/// lowering shares one `Arc` per distinct body across every tenant, so a
/// server forming bundle after bundle analyses each body once. Entries keep
/// their `Arc` alive, so a key's address cannot be reused by another kernel.
pub(crate) fn prepare_cached(kernel: &Arc<KernelDef>, isolation: Isolation) -> Result<Prepared, PackError> {
    type Table = HashMap<(usize, bool), (Arc<KernelDef>, Prepared)>;
    static CACHE: std::sync::OnceLock<std::sync::Mutex<Table>> = std::sync::OnceLock::new();
    let key = (Arc::as_ptr(kernel) as usize, isolation == Isolation::Strict);
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, done)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(done.clone());
    }
    let (k, guards) = prepare(kernel, isolation)?;
    let fingerprint = body_fingerprint(&k);
    let done = (k, guards, fingerprint);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (kernel.clone(), done.clone()));
    Ok(done)
}

/// Verifies `kernel` and makes it safe to pack under `isolation`.
fn prepare(kernel: &Arc<KernelDef>, isolation: Isolation) -> Result<(Arc<KernelDef>, Vec<GuardedAccess>), PackError> {
    match isolation {
        Isolation::Strict => {
            verify(kernel)?;
            match first_unproven(kernel) {
                Some(e) => Err(e),
                None => Ok((kernel.clone(), Vec::new())),
            }
        }
        Isolation::Guard => isolate(kernel).map(|iso| (iso.kernel, iso.guarded)),
    }
}

#[cfg(test)]
mod tests {
    use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};
    use weft_lower::BufferId;

    use super::*;
    use crate::bundle::{Budget, TenantId};

    fn copy(name: &str, blocks: u32, threads: u32) -> Arc<KernelDef> {
        let n = (blocks * threads) as u64;
        let mut b = KernelBuilder::new(name, LaunchShape::linear(blocks, threads));
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let y = b.buffer("y", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X);
        let v = b.load(x, i);
        b.store(y, i, v);
        Arc::new(b.finish())
    }

    fn slot(kernel: &Arc<KernelDef>, tenant: u32, budget: Budget) -> Slot {
        let args = (0..kernel.params.len() as u32).map(BufferId::from_u32).collect();
        Slot { kernel: kernel.clone(), tenant: TenantId(tenant), budget, args }
    }

    #[test]
    fn bodies_dedup_by_pointer_and_equality() {
        let a = copy("copy", 4, 64);
        let a_again = copy("copy", 4, 64);
        let b = copy("copy", 3, 128);
        let bundle = BundleBuilder::new()
            .slot(slot(&a, 0, Budget::Full))
            .slot(slot(&a_again, 1, Budget::Blocks(2)))
            .slot(slot(&b, 2, Budget::Blocks(9)))
            .slot(slot(&a, 3, Budget::Blocks(1)))
            .build()
            .unwrap();
        assert_eq!(bundle.bodies.len(), 2);
        // Bodies in the canonical order: ascending fingerprints.
        let (fa, fb) = (body_fingerprint(&a), body_fingerprint(&b));
        let (ia, ib) = if fa < fb { (0, 1) } else { (1, 0) };
        assert_eq!(bundle.class.bodies, vec![fa.min(fb), fa.max(fb)]);
        assert_eq!(bundle.class.block_threads, 128);
        let rows: Vec<(u32, u32, u32)> =
            bundle.table.entries.iter().map(|e| (e.body, e.first_block, e.num_blocks)).collect();
        assert_eq!(rows, [(ia, 0, 4), (ia, 4, 2), (ib, 6, 3), (ia, 9, 1)]);
        assert!(Arc::ptr_eq(&bundle.slots[1].kernel, &bundle.bodies[ia as usize]));
        assert_eq!(bundle.bodies[ib as usize].launch, b.launch);

        // The same bodies met in the other order: the same class, each slot
        // still running its own body.
        let swapped = BundleBuilder::new()
            .slot(slot(&b, 2, Budget::Blocks(9)))
            .slot(slot(&a, 3, Budget::Blocks(1)))
            .build()
            .unwrap();
        assert_eq!(swapped.class, bundle.class);
        let rows: Vec<u32> = swapped.table.entries.iter().map(|e| e.body).collect();
        assert_eq!(rows, [ib, ia]);
    }

    #[test]
    fn narrow_slots_must_be_whole_warps_and_bundles_non_empty() {
        assert_eq!(BundleBuilder::new().build().unwrap_err(), PackError::Empty);
        let wide = copy("wide", 1, 256);
        let odd = copy("odd", 2, 48);
        let err = BundleBuilder::new().slot(slot(&wide, 0, Budget::Full)).slot(slot(&odd, 1, Budget::Full)).build();
        let err = err.unwrap_err();
        assert!(matches!(err, PackError::BlockShape { threads: 48, bundle_threads: 256, .. }), "{err}");
        assert!(err.to_string().contains("multiple of 32"), "{err}");
        // Alone, or as the widest, 48 threads are fine.
        assert!(BundleBuilder::new().slot(slot(&odd, 1, Budget::Full)).build().is_ok());
    }

    #[test]
    fn slots_must_bind_every_parameter() {
        let k = copy("copy", 1, 32);
        let mut s = slot(&k, 0, Budget::Full);
        s.args.pop();
        let err = BundleBuilder::new().slot(s).build().unwrap_err();
        assert_eq!(err, PackError::SlotArgs { kernel: "copy".into(), params: 2, args: 1 });
    }
}
