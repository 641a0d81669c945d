//! The simulated GPU's engine: cohorts of blocks, events at cohort
//! completions, rates re-evaluated at every event.
//!
//! **Work.** A logical block of kernel `k` does `F = flops(k) / L` FLOPs and
//! moves `M = bytes(k) / L` global bytes ([`weft_kir::analysis::cost`], `L`
//! logical blocks). A physical block that runs `r` logical blocks (a
//! constrained slot's rounds) does `r·F` and `r·M`.
//!
//! **Residency.** Every physical block of a bundle asks for the bundle's
//! block resources, so at most `R = blocks_per_sm × sm_count` are resident.
//! Blocks are dispatched in slot-table order as blocks finish. Blocks that
//! start at the same moment, of the same slot, with the same rounds, form a
//! cohort and progress identically, so they are simulated as one.
//!
//! **Rates** (re-evaluated after every event). With `W` active warps on the
//! device spread evenly over the SMs, a block of `w` active warps (its own
//! kernel's warps; a narrower slot idles the rest) issues at `peak_sm × w /
//! max(warps on its SM, full_speed_warps_per_sm)` FLOP/µs. It wants the
//! bandwidth that keeps it compute-bound, capped by its SM's share
//! (`sm_bandwidth_factor × bw / sm_count`, split by warps); demands are
//! served max-min fairly out of the effective bandwidth. Its progress rate
//! is the roofline `min(compute / F, bandwidth / M)`.
//!
//! **Hidden effects** ([`HiddenEffects`]) change the rates: contention
//! lowers the effective bandwidth superlinearly once the combined demand
//! passes a threshold; compute-bound blocks slow down by a per-kind factor
//! beside memory-bound co-runners; blocks dispatched after the first wave
//! wait a dispatch latency; each slot's time gets seeded noise.

use std::collections::HashMap;
use std::sync::Arc;

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use weft_kir::analysis::cost;
use weft_kir::KernelDef;
use weft_kir::Target;
use weft_pack::{Bundle, KernelResources, Limiter, Occupancy, Timing};

use crate::exec::SimMemory;
use crate::spec::{HiddenEffects, SimSpec};

/// Why the simulator could not run a launch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("simulator: the bundle has no slots")]
    EmptyBundle,
    #[error(
        "simulator: kernel `{kernel}` cannot run: a block of {} threads, {} registers and {} B shared memory \
         exceeds the {limiter} limit of the simulated device",
        resources.threads, resources.registers, resources.shared_bytes
    )]
    Unlaunchable { kernel: String, resources: KernelResources, limiter: Limiter },
    #[error("simulator: bundle slot table has {entries} entries for {slots} slots")]
    MalformedTable { slots: usize, entries: usize },
}

/// What the simulator knows about one kernel body (computed once per `Arc`).
#[derive(Copy, Clone, Debug)]
struct BodyInfo {
    flops_per_block: f64,
    bytes_per_block: f64,
    logical_blocks: u64,
    resources: KernelResources,
    /// Hash of the kernel's kind (name up to its first digit).
    kind_hash: u64,
}

/// A simulated GPU. See the crate docs: a simulator, not a GPU.
#[derive(Debug)]
pub struct SimGpu {
    limits: Target,
    spec: SimSpec,
    rng: rand_xoshiro::SplitMix64,
    runs: u64,
    /// Keyed by the `Arc`'s address; holding the `Arc` keeps the address
    /// from being reused by another kernel while it is a key.
    bodies: HashMap<usize, (Arc<KernelDef>, BodyInfo)>,
    /// The buffers it pretends to hold as an executor (`exec.rs`).
    memory: SimMemory,
}

/// One slot as the engine sees it.
#[derive(Copy, Clone, Debug)]
struct SlotRun {
    info: BodyInfo,
    /// Physical blocks.
    blocks: u64,
}

/// Blocks waiting to be dispatched: `n` blocks of `slot` running `rounds`
/// logical blocks each.
#[derive(Copy, Clone, Debug)]
struct Pending {
    slot: usize,
    n: u64,
    rounds: u64,
}

#[derive(Copy, Clone, Debug)]
struct Cohort {
    slot: usize,
    n: u64,
    flops: f64,
    bytes: f64,
    warps: f64,
    /// Dispatch latency left before it starts.
    delay: f64,
    /// Fraction of its work done.
    done: f64,
    memory_bound: bool,
    sensitivity: f64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(FNV_OFFSET ^ seed, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// A kernel's kind: its name up to the first digit (`conv2d_3x3_s1` →
/// `conv`, `sgemm` → `sgemm`).
fn kind_hash(name: &str) -> u64 {
    let end = name.find(|c: char| c.is_ascii_digit()).unwrap_or(name.len());
    fnv(name[..end].trim_end_matches('_').as_bytes(), 0)
}

impl SimGpu {
    /// A simulated device with `limits` (SM count and residency limits),
    /// rates and hidden effects from `spec`, noise seeded by `seed`.
    pub fn new(limits: Target, spec: SimSpec, seed: u64) -> SimGpu {
        SimGpu {
            limits,
            spec,
            rng: rand_xoshiro::SplitMix64::seed_from_u64(seed),
            runs: 0,
            bodies: HashMap::new(),
            memory: SimMemory::default(),
        }
    }

    pub fn limits(&self) -> &Target {
        &self.limits
    }

    pub(crate) fn memory(&self) -> &SimMemory {
        &self.memory
    }

    pub(crate) fn memory_mut(&mut self) -> &mut SimMemory {
        &mut self.memory
    }

    pub fn spec(&self) -> &SimSpec {
        &self.spec
    }

    /// Launches simulated so far (bundles and solo kernels).
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The hidden effects in force now (after any drift).
    pub fn hidden(&self) -> &HiddenEffects {
        match &self.spec.drift {
            Some(d) if self.runs >= d.after_bundles => &d.to,
            _ => &self.spec.hidden,
        }
    }

    /// Replaces the hidden effects from now on (drift by hand).
    pub fn set_hidden(&mut self, hidden: HiddenEffects) {
        self.spec.hidden = hidden;
        self.spec.drift = None;
    }

    fn info(&mut self, kernel: &Arc<KernelDef>) -> BodyInfo {
        if let Some((_, info)) = self.bodies.get(&(Arc::as_ptr(kernel) as usize)) {
            return *info;
        }
        // Bound the cache: a long simulation sees few distinct bodies, but
        // callers that build fresh kernels per bundle must not grow it forever.
        if self.bodies.len() >= 4096 {
            self.bodies.clear();
        }
        let c = cost(kernel);
        let logical_blocks = kernel.launch.num_blocks().max(1);
        let l = logical_blocks as f64;
        let info = BodyInfo {
            flops_per_block: c.flops as f64 / l,
            bytes_per_block: (c.global_read_bytes as f64 + c.global_write_bytes as f64) / l,
            logical_blocks,
            resources: KernelResources::of(kernel, None),
            kind_hash: kind_hash(&kernel.name),
        };
        self.bodies.insert(Arc::as_ptr(kernel) as usize, (kernel.clone(), info));
        info
    }

    /// Simulates one launch of `bundle`.
    pub fn run_bundle(&mut self, bundle: &Bundle) -> Result<Timing, SimError> {
        if bundle.slots().is_empty() {
            return Err(SimError::EmptyBundle);
        }
        if bundle.table().entries.len() != bundle.slots().len() {
            return Err(SimError::MalformedTable {
                slots: bundle.slots().len(),
                entries: bundle.table().entries.len(),
            });
        }
        let mut runs = Vec::with_capacity(bundle.slots().len());
        for (slot, entry) in bundle.slots().iter().zip(&bundle.table().entries) {
            let info = self.info(&slot.kernel);
            runs.push(SlotRun { info, blocks: entry.num_blocks as u64 });
        }
        let name = bundle.slots().first().map(|s| s.kernel.name.clone()).unwrap_or_default();
        self.simulate(&runs, &name)
    }

    /// Simulates `kernel` launched alone on its full grid (a baseline).
    pub fn run_kernel_solo(&mut self, kernel: &Arc<KernelDef>) -> Result<Timing, SimError> {
        let info = self.info(kernel);
        let runs = [SlotRun { info, blocks: info.logical_blocks }];
        self.simulate(&runs, &kernel.name)
    }

    fn simulate(&mut self, slots: &[SlotRun], name: &str) -> Result<Timing, SimError> {
        let hidden = self.hidden().clone();
        self.runs += 1;
        let limits = self.limits;
        let resources =
            slots.iter().map(|s| s.info.resources).reduce(KernelResources::max).ok_or(SimError::EmptyBundle)?;
        let occupancy = Occupancy::of(resources, &limits);
        if !occupancy.fits() {
            return Err(SimError::Unlaunchable { kernel: name.to_string(), resources, limiter: occupancy.limiter });
        }
        let capacity = occupancy.resident_blocks(&limits);
        let sm_count = limits.sm_count.max(1) as f64;
        let warp = limits.warp_size.max(1) as f64;
        let full_speed = limits.full_speed_warps_per_sm.max(1) as f64;
        // A block is memory-bound when one SM's bandwidth cannot feed its
        // FLOPs: intensity below the per-SM ridge point.
        let sm_bandwidth = self.spec.sm_bandwidth_factor * self.spec.mem_bandwidth / sm_count;
        let ridge = self.spec.peak_flops_per_sm / sm_bandwidth.max(1e-9);

        // Physical block p < blocks of a slot of L logical blocks runs
        // ceil((L - p) / blocks) of them: r = L mod blocks blocks run one
        // more round than the rest.
        let mut queue: Vec<Pending> = Vec::new();
        for (i, s) in slots.iter().enumerate() {
            let nb = s.blocks.clamp(1, s.info.logical_blocks.max(1));
            let q = s.info.logical_blocks / nb;
            let r = s.info.logical_blocks % nb;
            if r > 0 {
                queue.push(Pending { slot: i, n: r, rounds: q + 1 });
            }
            if q > 0 {
                queue.push(Pending { slot: i, n: nb - r, rounds: q });
            }
        }
        let sensitivity: Vec<f64> = slots
            .iter()
            .map(|s| {
                let u = (fnv(&s.info.kind_hash.to_le_bytes(), hidden.kind_seed) >> 11) as f64 / (1u64 << 53) as f64;
                1.0 + hidden.kind_spread * (2.0 * u - 1.0)
            })
            .collect();

        let mut finish = vec![0.0f64; slots.len()];
        let mut active: Vec<Cohort> = Vec::new();
        let mut head = 0usize;
        let mut now = 0.0f64;
        let mut resident = 0u64;
        // Guard against a malformed model looping forever.
        for _ in 0..1_000_000 {
            // Dispatch into free residency, in slot-table order.
            while resident < capacity && head < queue.len() {
                let p = &mut queue[head];
                let take = p.n.min(capacity - resident);
                let s = &slots[p.slot];
                let rounds = p.rounds as f64;
                let flops = s.info.flops_per_block * rounds;
                let bytes = s.info.bytes_per_block * rounds;
                let intensity =
                    if bytes > 0.0 { s.info.flops_per_block / s.info.bytes_per_block } else { f64::INFINITY };
                active.push(Cohort {
                    slot: p.slot,
                    n: take,
                    flops,
                    bytes,
                    warps: (s.info.resources.threads as f64 / warp).ceil().max(1.0),
                    delay: if now > 0.0 { hidden.wave_dispatch_us } else { 0.0 },
                    done: 0.0,
                    memory_bound: intensity < ridge,
                    sensitivity: sensitivity[p.slot],
                });
                resident += take;
                p.n -= take;
                if p.n == 0 {
                    head += 1;
                }
            }
            if active.is_empty() {
                break;
            }
            let rates = self.rates(&active, &hidden, sm_count, full_speed);
            // The next event: a cohort finishes its delay or its work.
            let mut dt = f64::INFINITY;
            for (c, &rate) in active.iter().zip(&rates) {
                let t = if c.delay > 0.0 {
                    c.delay
                } else if rate.is_infinite() {
                    0.0
                } else {
                    (1.0 - c.done) / rate.max(1e-300)
                };
                dt = dt.min(t);
            }
            let dt = if dt.is_finite() { dt.max(0.0) } else { 0.0 };
            now += dt;
            let mut next = Vec::with_capacity(active.len());
            for (mut c, rate) in active.into_iter().zip(rates) {
                if c.delay > 0.0 {
                    c.delay = (c.delay - dt).max(0.0);
                    if c.delay <= 1e-12 {
                        c.delay = 0.0;
                    }
                    next.push(c);
                    continue;
                }
                c.done = if rate.is_infinite() { 1.0 } else { c.done + rate * dt };
                if c.done >= 1.0 - 1e-9 {
                    finish[c.slot] = finish[c.slot].max(now);
                    resident -= c.n;
                } else {
                    next.push(c);
                }
            }
            active = next;
        }
        let overhead = self.spec.launch_overhead_us;
        let per_slot_us: Vec<f64> = finish
            .iter()
            .map(|&t| {
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                t * (1.0 + hidden.noise * (2.0 * u - 1.0)) + overhead
            })
            .collect();
        let total_us = per_slot_us.iter().copied().fold(overhead, f64::max);
        Ok(Timing { total_us, per_slot_us: Some(per_slot_us) })
    }

    /// Progress rate (fraction of its work per µs) of each active cohort.
    fn rates(&self, active: &[Cohort], hidden: &HiddenEffects, sm_count: f64, full_speed: f64) -> Vec<f64> {
        let running = |c: &Cohort| c.delay <= 0.0;
        let total_warps: f64 = active.iter().filter(|c| running(c)).map(|c| c.n as f64 * c.warps).sum();
        let memory_warps: f64 =
            active.iter().filter(|c| running(c) && c.memory_bound).map(|c| c.n as f64 * c.warps).sum();
        let sm_cap = self.spec.sm_bandwidth_factor * self.spec.mem_bandwidth / sm_count;
        // Compute rate (FLOP/µs per block) and bandwidth cap (B/µs per block).
        let mut compute = Vec::with_capacity(active.len());
        let mut want = Vec::with_capacity(active.len());
        for c in active {
            if !running(c) {
                compute.push(0.0);
                want.push(0.0);
                continue;
            }
            let sm_warps = (total_warps / sm_count).max(c.warps);
            let mut rate = self.spec.peak_flops_per_sm * c.warps / sm_warps.max(full_speed);
            if !c.memory_bound && total_warps > 0.0 {
                let others = memory_warps / total_warps;
                rate /= 1.0 + hidden.memory_neighbour_slowdown * c.sensitivity * others;
            }
            let cap = sm_cap * c.warps / sm_warps;
            let demand = if c.flops > 0.0 { c.bytes * rate / c.flops } else { cap };
            compute.push(rate);
            want.push(if c.bytes > 0.0 { demand.min(cap) } else { 0.0 });
        }
        let demand: f64 = active.iter().zip(&want).map(|(c, w)| c.n as f64 * w).sum();
        let bw = self.spec.mem_bandwidth;
        let threshold = hidden.contention_threshold * bw;
        let effective = if demand > threshold && threshold > 0.0 {
            let excess = demand / threshold - 1.0;
            bw / (1.0 + hidden.contention_strength * excess.powf(hidden.contention_exponent))
        } else {
            bw
        };
        let share = max_min_fair(active, &want, effective);
        active
            .iter()
            .zip(compute.iter().zip(&share))
            .map(|(c, (&rate, &bw))| {
                if !running(c) {
                    return 0.0;
                }
                let by_compute = if c.flops > 0.0 { rate / c.flops } else { f64::INFINITY };
                let by_memory = if c.bytes > 0.0 { bw / c.bytes } else { f64::INFINITY };
                by_compute.min(by_memory)
            })
            .collect()
    }
}

/// Per-block bandwidth of each cohort: max-min fair shares of `total` among
/// `n` blocks per cohort, each block asking for at most `want`.
fn max_min_fair(active: &[Cohort], want: &[f64], total: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..active.len()).filter(|&i| want[i] > 0.0).collect();
    order.sort_by(|&a, &b| want[a].total_cmp(&want[b]).then(a.cmp(&b)));
    let mut left = total;
    let mut blocks: f64 = order.iter().map(|&i| active[i].n as f64).sum();
    let mut share = vec![0.0; active.len()];
    for &i in &order {
        let fair = if blocks > 0.0 { left / blocks } else { 0.0 };
        let give = want[i].min(fair);
        share[i] = give;
        left -= give * active[i].n as f64;
        blocks -= active[i].n as f64;
    }
    share
}
