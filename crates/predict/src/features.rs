//! Features of slots and bundles (DESIGN.md principle 6: measure, then
//! model).
//!
//! Everything here comes from static analysis, never from running anything:
//!
//! - **work**, from [`weft_kir::analysis::cost`]: FLOPs and global bytes
//!   (reads + writes) of the whole launch, and per logical block (what one
//!   block does; a constrained slot's physical block does `rounds` of them);
//!   arithmetic intensity is FLOPs per byte;
//! - **resources**, from the kernel and ptxas: threads per block, registers
//!   per thread, shared memory and spills, as the caller's
//!   [`ResourceTable`] gives them (ptxas's figures for compiled bodies, else
//!   [`weft_pack::estimate_registers`] and the kernel's shared arrays);
//! - **residency**, from [`weft_pack::Occupancy`]: the kernel's solo blocks
//!   per SM, and the bundle's (every physical block of a bundle asks for
//!   the most of any slot's resources); the bundle's resident capacity
//!   `R = blocks_per_sm × sm_count`;
//! - **shape of the launch**, from the slot table: logical blocks, physical
//!   blocks (the budget), rounds per physical block, the wave in which the
//!   slot's last block is dispatched (`ceil((first_block + blocks) / R)`),
//!   the bundle's waves and how full its last wave is;
//! - **co-runner demand**, from the above and a [`DeviceModel`]: the blocks
//!   resident together (the bundle's blocks in proportion, at most `R`), the
//!   warps they put on each SM (`sm_demand`, over the full-speed warps), the
//!   bandwidth they would draw if each ran at its compute speed
//!   (`bandwidth_demand`, and over the device's: `bandwidth_pressure`), and
//!   the share of those warps that are memory-bound.
//!
//! [`FeatureExtractor`] caches the per-kernel analysis by `Arc` (a serving
//! loop sees the same few bodies over and over); [`bundle_features`] is the
//! one-shot form.

use std::collections::HashMap;
use std::sync::Arc;

use weft_kir::analysis::cost;
use weft_kir::{KernelDef, Target};
use weft_pack::{body_fingerprint, Bundle, KernelResources, Occupancy, ResourceModel};

use crate::device::DeviceModel;

/// Features of one slot of a bundle (or of a kernel alone).
#[derive(Clone, PartialEq, Debug)]
pub struct SlotFeatures {
    /// [`body_fingerprint`] of the slot's kernel: the key of per-body tables.
    pub body: u64,
    pub kernel: String,
    /// FLOPs of the whole launch.
    pub flops: f64,
    /// Global bytes read and written by the whole launch.
    pub bytes: f64,
    pub flops_per_block: f64,
    pub bytes_per_block: f64,
    /// FLOPs per global byte (infinite for a kernel that moves nothing).
    pub intensity: f64,
    pub threads: u32,
    /// Warps of one of its blocks (the warps that do work in a wider
    /// bundle block).
    pub warps: u32,
    pub registers: u32,
    pub shared_bytes: u64,
    /// Bytes of spill stores and loads per thread (ptxas's; 0 when
    /// estimated).
    pub spill_bytes: u64,
    pub logical_blocks: u64,
    /// Physical blocks the slot runs on (its block budget).
    pub physical_blocks: u64,
    /// Logical blocks its busiest physical block runs.
    pub rounds: u64,
    /// First physical block of its range in the slot table.
    pub first_block: u64,
    /// Blocks per SM of the kernel alone.
    pub solo_blocks_per_sm: u32,
    /// Occupancy fraction of the kernel alone.
    pub solo_occupancy: f64,
    /// Its physical blocks over the bundle's resident capacity.
    pub waves: f64,
    /// The wave (1-based) in which its last physical block is dispatched.
    pub end_wave: u64,
    /// Blocks of it resident at once (in proportion to its share of the
    /// bundle's physical blocks).
    pub resident_blocks: f64,
    /// FLOP/µs one of its blocks issues at the bundle's warps per SM.
    pub compute_rate: f64,
    /// Bytes/µs one of its blocks would draw at its compute rate (capped by
    /// its SM's share of the bandwidth).
    pub bandwidth_want: f64,
    /// `t_mem / (t_mem + t_compute)` of one block at those rates, in
    /// `[0, 1]`: 1 is purely memory-bound.
    pub memory_boundness: f64,
}

/// Features of one bundle.
#[derive(Clone, PartialEq, Debug)]
pub struct BundleFeatures {
    pub slots: Vec<SlotFeatures>,
    /// Threads of a physical block (the widest slot's).
    pub block_threads: u32,
    /// What one physical block asks of an SM (the most of every slot's).
    pub resources: KernelResources,
    pub blocks_per_sm: u32,
    /// Occupancy fraction of the bundle's blocks.
    pub occupancy: f64,
    /// Blocks the device holds at once: `R = blocks_per_sm × sm_count`.
    pub resident_capacity: u64,
    pub physical_blocks: u64,
    /// Physical blocks over `R`.
    pub waves: f64,
    /// How full the last wave is, in (0, 1].
    pub tail_fraction: f64,
    /// Combined demand on the SMs: active warps per SM of the co-resident
    /// blocks over [`Target::full_speed_warps_per_sm`] (above 1, blocks
    /// share issue slots).
    pub sm_demand: f64,
    /// Bytes/µs the co-resident blocks would draw at compute speed.
    pub bandwidth_demand: f64,
    /// `bandwidth_demand` over the device's bandwidth (above 1, the bundle is
    /// bandwidth-bound as a whole).
    pub bandwidth_pressure: f64,
    /// Share of the co-resident warps that belong to memory-bound slots
    /// (`memory_boundness > 0.5`).
    pub memory_warp_fraction: f64,
    /// Distinct kernel bodies.
    pub bodies: usize,
    /// Launch overhead and rates the features were computed for.
    pub device: DeviceModel,
}

/// Per-kernel analysis, computed once per body.
#[derive(Clone, Debug)]
struct KernelInfo {
    body: u64,
    name: String,
    flops: f64,
    bytes: f64,
    logical_blocks: u64,
    resources: KernelResources,
    solo: Occupancy,
}

/// Computes features, caching the per-kernel analysis by `Arc`.
#[derive(Debug)]
pub struct FeatureExtractor {
    device: DeviceModel,
    /// Keyed by the `Arc`'s address; the `Arc` beside it keeps the address
    /// from being reused while it is a key.
    cache: HashMap<usize, (Arc<KernelDef>, KernelInfo)>,
}

/// Most kernels the cache holds before it starts over.
const CACHE_LIMIT: usize = 4096;

impl FeatureExtractor {
    pub fn new(device: DeviceModel) -> FeatureExtractor {
        FeatureExtractor { device, cache: HashMap::new() }
    }

    pub fn device(&self) -> &DeviceModel {
        &self.device
    }

    fn info(&mut self, kernel: &Arc<KernelDef>, resources: &dyn ResourceModel) -> KernelInfo {
        let key = Arc::as_ptr(kernel) as usize;
        // The cached facts hold while the model gives the same resources
        // (a table may since have recorded ptxas's figures for the body).
        let res = resources.resources(kernel);
        if let Some((_, info)) = self.cache.get(&key) {
            if info.resources == res {
                return info.clone();
            }
        }
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        let info = kernel_info(kernel, res, &self.device.limits);
        self.cache.insert(key, (kernel.clone(), info.clone()));
        info
    }

    /// Features of `bundle`, with each kernel's block resources from
    /// `resources` (the model the bundle was shaped with, so features and
    /// shaping agree: ptxas's figures where recorded, else estimated).
    pub fn bundle(&mut self, bundle: &Bundle, resources: &dyn ResourceModel) -> BundleFeatures {
        let parts: Vec<(KernelInfo, u64, u64)> = bundle
            .slots()
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let info = self.info(&slot.kernel, resources);
                let (first, blocks) = match bundle.table().entries.get(i) {
                    Some(e) => (e.first_block as u64, e.num_blocks as u64),
                    None => (0, slot.budget.physical_blocks(info.logical_blocks) as u64),
                };
                (info, first, blocks)
            })
            .collect();
        assemble(&parts, bundle.class().bodies.len(), &self.device)
    }

    /// Features of `kernel` launched alone on its full grid.
    pub fn solo(&mut self, kernel: &Arc<KernelDef>, resources: &dyn ResourceModel) -> BundleFeatures {
        let info = self.info(kernel, resources);
        let blocks = info.logical_blocks;
        assemble(&[(info, 0, blocks)], 1, &self.device)
    }
}

fn kernel_info(kernel: &KernelDef, resources: KernelResources, limits: &Target) -> KernelInfo {
    let c = cost(kernel);
    KernelInfo {
        body: body_fingerprint(kernel),
        name: kernel.name.clone(),
        flops: c.flops as f64,
        bytes: c.global_read_bytes as f64 + c.global_write_bytes as f64,
        logical_blocks: kernel.launch.num_blocks().max(1),
        resources,
        solo: Occupancy::of(resources, limits),
    }
}

/// Features of the slots `(kernel, first physical block, physical blocks)`.
fn assemble(parts: &[(KernelInfo, u64, u64)], bodies: usize, device: &DeviceModel) -> BundleFeatures {
    let limits = &device.limits;
    let resources =
        parts.iter().map(|p| p.0.resources).reduce(KernelResources::max).unwrap_or(KernelResources::new(1, 16, 0));
    let occupancy = Occupancy::of(resources, limits);
    let capacity = occupancy.resident_blocks(limits);
    let physical: u64 = parts.iter().map(|p| p.2.max(1)).sum();
    let sm_count = limits.sm_count.max(1) as f64;
    let warp = limits.warp_size.max(1);
    let full_speed = limits.full_speed_warps_per_sm.max(1) as f64;
    // Blocks resident together: the bundle's mix, scaled to the capacity.
    let resident_scale = if physical == 0 { 0.0 } else { (capacity.min(physical) as f64) / physical as f64 };
    let warps_of = |p: &(KernelInfo, u64, u64)| p.0.resources.threads.div_ceil(warp).max(1);
    let total_warps: f64 = parts.iter().map(|p| p.2.max(1) as f64 * resident_scale * warps_of(p) as f64).sum();
    let sm_warps = total_warps / sm_count;
    let sm_cap = device.sm_bandwidth_factor * device.mem_bandwidth / sm_count;

    let mut slots = Vec::with_capacity(parts.len());
    let mut demand = 0.0;
    let mut memory_warps = 0.0;
    for p @ (info, first, blocks) in parts {
        let blocks = (*blocks).max(1);
        let l = info.logical_blocks as f64;
        let warps = warps_of(p);
        let w = warps as f64;
        let flops_per_block = info.flops / l;
        let bytes_per_block = info.bytes / l;
        let own_sm_warps = sm_warps.max(w);
        let compute_rate = device.peak_flops_per_sm * w / own_sm_warps.max(full_speed);
        let cap = sm_cap * w / own_sm_warps;
        let want = if bytes_per_block <= 0.0 {
            0.0
        } else if flops_per_block > 0.0 {
            (bytes_per_block * compute_rate / flops_per_block).min(cap)
        } else {
            cap
        };
        let t_compute = flops_per_block / compute_rate.max(1e-300);
        let t_memory = if want > 0.0 { bytes_per_block / want } else { 0.0 };
        let memory_boundness = if t_compute + t_memory > 0.0 { t_memory / (t_compute + t_memory) } else { 0.0 };
        let resident_blocks = blocks as f64 * resident_scale;
        demand += resident_blocks * want;
        let intensity = if info.bytes > 0.0 { info.flops / info.bytes } else { f64::INFINITY };
        if memory_boundness > 0.5 {
            memory_warps += resident_blocks * w;
        }
        let end_wave = if capacity == 0 { 0 } else { (first + blocks).div_ceil(capacity) };
        slots.push(SlotFeatures {
            body: info.body,
            kernel: info.name.clone(),
            flops: info.flops,
            bytes: info.bytes,
            flops_per_block,
            bytes_per_block,
            intensity,
            threads: info.resources.threads,
            warps,
            registers: info.resources.registers,
            shared_bytes: info.resources.shared_bytes,
            spill_bytes: info.resources.spill_bytes,
            logical_blocks: info.logical_blocks,
            physical_blocks: blocks,
            rounds: info.logical_blocks.div_ceil(blocks),
            first_block: *first,
            solo_blocks_per_sm: info.solo.blocks_per_sm,
            solo_occupancy: info.solo.fraction,
            waves: occupancy.waves(blocks, limits),
            end_wave,
            resident_blocks,
            compute_rate,
            bandwidth_want: want,
            memory_boundness,
        });
    }
    BundleFeatures {
        slots,
        block_threads: resources.threads,
        resources,
        blocks_per_sm: occupancy.blocks_per_sm,
        occupancy: occupancy.fraction,
        resident_capacity: capacity,
        physical_blocks: physical,
        waves: occupancy.waves(physical, limits),
        tail_fraction: occupancy.tail_fraction(physical, limits),
        sm_demand: sm_warps / full_speed,
        bandwidth_demand: demand,
        bandwidth_pressure: demand / device.mem_bandwidth.max(1e-9),
        memory_warp_fraction: if total_warps > 0.0 { memory_warps / total_warps } else { 0.0 },
        bodies,
        device: *device,
    }
}

/// Features of `bundle` on a device with `limits` and the sm_90 throughput
/// numbers ([`DeviceModel::sm_90_with`]); `resources` gives each kernel's
/// block resources (ptxas's where recorded, else pack's estimate).
pub fn bundle_features(bundle: &Bundle, limits: &Target, resources: &dyn ResourceModel) -> BundleFeatures {
    FeatureExtractor::new(DeviceModel::sm_90_with(*limits)).bundle(bundle, resources)
}

/// Like [`bundle_features`], on an explicit device model.
pub fn bundle_features_on(bundle: &Bundle, device: &DeviceModel, resources: &dyn ResourceModel) -> BundleFeatures {
    FeatureExtractor::new(*device).bundle(bundle, resources)
}
