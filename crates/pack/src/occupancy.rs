//! The occupancy model: how many blocks of a launch an SM holds at once.
//!
//! The packer fills a bundle like a VLIW word under resource limits, and the
//! limits that matter are the SM's: resident threads (warps), registers,
//! shared memory and blocks. [`Occupancy::of`] computes resident blocks per
//! SM the way NVIDIA's occupancy calculator (`cuda_occupancy.h`) does, so
//! predictions line up with what the hardware block scheduler will do:
//!
//! - threads are allocated in whole warps;
//! - registers are allocated per warp, `registers × warp_size` rounded up to
//!   the allocation unit (256), out of each of the SM's register-file
//!   partitions (4 on every architecture since Maxwell): a warp lives in one
//!   partition, so a warp's registers cannot straddle two, which is why the
//!   limit is computed per partition and then multiplied back;
//! - shared memory per block is the kernel's static and dynamic shared
//!   memory plus the 1 KiB the CUDA runtime reserves per block (compute
//!   capability 8.0 and later), rounded up to the allocation unit (128
//!   bytes), out of the largest carveout (the driver picks a carveout that
//!   reaches the occupancy the other limits allow); one block may use up to
//!   the opt-in limit, since weft's shared arrays are dynamic.
//!
//! A kernel that cannot run at all (too many threads, registers or shared
//! bytes for one block) gets `blocks_per_sm == 0` and names the limit; the
//! scheduler reports it instead of launching it.
//!
//! The limits are a [`Target`] (the kernel IR's room owns it, so this room
//! needs no driver): the CUDA room builds one from the device it probes, and
//! [`Target::sm_90`] / [`Target::sm_80`] describe an H100/H200 and an A100
//! for planning without a GPU. A block must also fit the per-block register
//! limit, checked the way the hardware does: warps rounded up to the
//! partitions, each with its rounded register allocation.
//!
//! [`KernelResources`] is what one block asks for. Where a kernel was
//! compiled, the figures are ptxas's: registers, shared memory, spills. A
//! kernel emitted alone declares its shared arrays statically, so ptxas
//! counts them ([`KernelResources::of`]); a bundle module takes them from a
//! dynamic pool that ptxas does not see, so the pool a launch asks for is
//! added ([`KernelResources::of_module`]).
//! [`ResourceTable`] keeps those measured figures by kernel body for the
//! planner, the scheduler's shaping and the predictor's features, and
//! [`estimate_registers`] stands in for ptxas for a body not compiled yet
//! (no toolkit, or planning before compiling).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use weft_codegen::{bundle_shared_bytes, CompiledPtx, ResourceReport};
use weft_kir::{InstData, KernelDef, Region, Target, Type, Value, ValueDef};

use crate::bundle::{body_fingerprint, LaunchClass};
use crate::module::BundleFigures;

/// What one block of a launch asks of an SM.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct KernelResources {
    /// Threads per block.
    pub threads: u32,
    /// Registers per thread.
    pub registers: u32,
    /// Shared memory per block, in bytes: static (ptxas's figure) plus the
    /// dynamic pool the launch asks for.
    pub shared_bytes: u64,
    /// Bytes of spill stores and loads per thread ptxas reported (0 when
    /// estimated).
    pub spill_bytes: u64,
    /// Whether the figures are ptxas's (`false`: estimated from KIR).
    pub measured: bool,
}

impl KernelResources {
    /// The resources of `kernel` emitted alone ([`weft_codegen::emit_cuda`]):
    /// its block size, with ptxas's `report` where it was compiled
    /// (registers, shared memory, spills: its shared arrays are static
    /// there, so ptxas counts them) and [`estimate_registers`] and its
    /// shared arrays otherwise.
    pub fn of(kernel: &KernelDef, report: Option<&ResourceReport>) -> KernelResources {
        let threads = u32::try_from(kernel.launch.threads_per_block()).unwrap_or(u32::MAX);
        match report {
            Some(r) => KernelResources {
                threads,
                registers: r.registers,
                shared_bytes: r.shared_bytes,
                spill_bytes: r.spill_stores_bytes.saturating_add(r.spill_loads_bytes),
                measured: true,
            },
            None => KernelResources {
                threads,
                registers: estimate_registers(kernel),
                shared_bytes: bundle_shared_bytes(&[kernel]),
                spill_bytes: 0,
                measured: false,
            },
        }
    }

    /// The resources of a block of a bundle module ([`weft_codegen::emit_bundle`])
    /// launched with `threads` threads: ptxas's `report` on the module, plus
    /// the dynamic shared pool a launch asks for (the bodies' shared arrays
    /// live there, out of ptxas's sight).
    pub fn of_module(report: &ResourceReport, threads: u32, dynamic_shared_bytes: u64) -> KernelResources {
        KernelResources {
            threads,
            registers: report.registers,
            shared_bytes: report.shared_bytes.saturating_add(dynamic_shared_bytes),
            spill_bytes: report.spill_stores_bytes.saturating_add(report.spill_loads_bytes),
            measured: true,
        }
    }

    /// Resources given as numbers (a bundle with nothing in it, tests).
    pub fn new(threads: u32, registers: u32, shared_bytes: u64) -> KernelResources {
        KernelResources { threads, registers, shared_bytes, spill_bytes: 0, measured: false }
    }

    /// The resources of a block that may run any of several kernels (a
    /// bundle's physical block): the most of each; measured only when every
    /// part is.
    pub fn max(self, other: KernelResources) -> KernelResources {
        KernelResources {
            threads: self.threads.max(other.threads),
            registers: self.registers.max(other.registers),
            shared_bytes: self.shared_bytes.max(other.shared_bytes),
            spill_bytes: self.spill_bytes.max(other.spill_bytes),
            measured: self.measured && other.measured,
        }
    }
}

/// Measured resources of compiled kernel bodies, by [`body_fingerprint`]:
/// the one place planning ([`crate::plan_with`]), the scheduler's shaping
/// and the predictor's features read block resources from.
///
/// Whoever compiles a body records ptxas's report for it
/// ([`ResourceTable::record`] or [`ResourceTable::record_compiled`], with
/// the kernel that was compiled);
/// [`ResourceTable::resources`] answers with the measured figures, or with
/// the KIR estimate for a body not compiled yet. It is shared by reference
/// (`&self` everywhere), so a compiling thread can fill it while a planner
/// reads it.
#[derive(Debug, Default)]
pub struct ResourceTable {
    measured: RwLock<HashMap<u64, KernelResources>>,
    /// Compiled bundle modules' figures, by launch class.
    modules: RwLock<HashMap<LaunchClass, BundleFigures>>,
}

impl ResourceTable {
    /// An empty table: every kernel is estimated.
    pub fn new() -> ResourceTable {
        ResourceTable::default()
    }

    /// Records ptxas's `report` for `kernel` compiled alone and returns the
    /// resources it gives.
    pub fn record(&self, kernel: &KernelDef, report: &ResourceReport) -> KernelResources {
        let resources = KernelResources::of(kernel, Some(report));
        self.write().insert(body_fingerprint(kernel), resources);
        resources
    }

    /// Records ptxas's `report` on the one-slot bundle module of `kernel`
    /// (what a serving loop prepares and launches for it) and returns the
    /// resources it gives.
    pub fn record_module(&self, kernel: &KernelDef, report: &ResourceReport) -> KernelResources {
        let threads = u32::try_from(kernel.launch.threads_per_block()).unwrap_or(u32::MAX);
        let resources = KernelResources::of_module(report, threads, bundle_shared_bytes(&[kernel]));
        self.write().insert(body_fingerprint(kernel), resources);
        resources
    }

    /// Records the report kept on `compiled` (the PTX of `kernel` alone,
    /// from [`weft_codegen::Compiler::compile_measured`]); `None`, recording
    /// nothing, when ptxas did not run on it.
    pub fn record_compiled(&self, kernel: &KernelDef, compiled: &CompiledPtx) -> Option<KernelResources> {
        compiled.report().map(|r| self.record(kernel, r))
    }

    /// The measured resources of `kernel`, if its body was recorded.
    pub fn measured(&self, kernel: &KernelDef) -> Option<KernelResources> {
        self.read().get(&body_fingerprint(kernel)).copied()
    }

    /// The resources planning uses for `kernel`: measured where recorded,
    /// else estimated from its KIR.
    pub fn resources(&self, kernel: &KernelDef) -> KernelResources {
        self.measured(kernel).unwrap_or_else(|| KernelResources::of(kernel, None))
    }

    /// Records the figures of the compiled module of launch class `class`
    /// (what [`crate::compile_bundle`] returns): planners that see a
    /// bundle of this class from here on know whether its module keeps its
    /// bodies' occupancy ([`crate::grow`]).
    pub fn record_bundle(&self, class: &LaunchClass, figures: BundleFigures) {
        self.modules.write().unwrap_or_else(|e| e.into_inner()).insert(class.clone(), figures);
    }

    /// The recorded figures of the module of launch class `class`, if any.
    pub fn bundle(&self, class: &LaunchClass) -> Option<BundleFigures> {
        self.modules.read().unwrap_or_else(|e| e.into_inner()).get(class).copied()
    }

    /// Bodies recorded.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock still holds whole entries (inserts do not panic halfway).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, KernelResources>> {
        self.measured.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, KernelResources>> {
        self.measured.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which limit caps the resident blocks per SM.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Limiter {
    /// Resident threads (warps) per SM, or threads per block.
    Threads,
    /// The register file, or registers per thread.
    Registers,
    /// Shared memory per SM, or per block.
    SharedMemory,
    /// Resident blocks per SM.
    Blocks,
}

impl Limiter {
    pub fn name(self) -> &'static str {
        match self {
            Limiter::Threads => "threads",
            Limiter::Registers => "registers",
            Limiter::SharedMemory => "shared memory",
            Limiter::Blocks => "blocks per SM",
        }
    }
}

impl std::fmt::Display for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Resident blocks of one launch per SM, and what limits them.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Occupancy {
    /// Blocks one SM holds at once; 0 when one block does not fit at all.
    pub blocks_per_sm: u32,
    /// The limit that gives `blocks_per_sm` (on ties, the first of
    /// threads, blocks, registers, shared memory).
    pub limiter: Limiter,
    pub warps_per_sm: u32,
    /// `warps_per_sm` over the SM's maximum resident warps.
    pub fraction: f64,
}

/// Registers per thread as the SM allocates them: per warp, rounded up to
/// the allocation unit (so 25 and 32 registers take the same room).
pub fn allocated_registers(registers: u32, limits: &Target) -> u32 {
    let warp = limits.warp_size.max(1) as u64;
    let per_warp = round_up(registers.max(1) as u64 * warp, limits.register_alloc_unit as u64);
    u32::try_from(per_warp / warp).unwrap_or(u32::MAX)
}

fn round_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit.max(1)) * unit.max(1)
}

impl Occupancy {
    /// The occupancy of blocks with `res` on the device `limits` describes.
    pub fn of(res: KernelResources, limits: &Target) -> Occupancy {
        let warp = limits.warp_size.max(1) as u64;
        let warps_per_block = (res.threads as u64).div_ceil(warp).max(1);
        let max_warps = limits.max_warps_per_sm() as u64;

        // Each candidate is (limit, blocks); the order breaks ties.
        let by_threads = if res.threads == 0 || res.threads > limits.max_threads_per_block {
            0
        } else {
            max_warps / warps_per_block
        };
        let by_blocks = limits.max_blocks_per_sm as u64;
        let by_registers = if res.registers > limits.max_registers_per_thread {
            0
        } else {
            let per_warp = allocated_registers(res.registers, limits) as u64 * warp;
            let partitions = limits.register_partitions.max(1) as u64;
            // The hardware checks a block against the per-block limit as if
            // its warps were spread over every partition.
            if per_warp * round_up(warps_per_block, partitions) > limits.registers_per_block as u64 {
                0
            } else {
                let warps = (limits.registers_per_sm as u64 / partitions / per_warp) * partitions;
                warps / warps_per_block
            }
        };
        let by_shared = {
            let per_block = round_up(res.shared_bytes + limits.shared_reserved_per_block, limits.shared_alloc_unit);
            if res.shared_bytes > limits.shared_bytes_per_block_optin || per_block == 0 {
                if res.shared_bytes > limits.shared_bytes_per_block_optin {
                    0
                } else {
                    u64::MAX
                }
            } else {
                limits.shared_bytes_per_sm / per_block
            }
        };
        let candidates = [
            (Limiter::Threads, by_threads),
            (Limiter::Blocks, by_blocks),
            (Limiter::Registers, by_registers),
            (Limiter::SharedMemory, by_shared),
        ];
        let (limiter, blocks) =
            candidates
                .iter()
                .copied()
                .fold((Limiter::Threads, u64::MAX), |best, c| if c.1 < best.1 { c } else { best });
        let blocks_per_sm = u32::try_from(blocks).unwrap_or(u32::MAX);
        let warps_per_sm = u32::try_from(blocks.saturating_mul(warps_per_block)).unwrap_or(u32::MAX);
        let fraction = if max_warps == 0 { 0.0 } else { warps_per_sm as f64 / max_warps as f64 };
        Occupancy { blocks_per_sm, limiter, warps_per_sm, fraction }
    }

    /// Whether one block fits on an SM at all.
    pub fn fits(&self) -> bool {
        self.blocks_per_sm > 0
    }

    /// Blocks the whole device holds at once.
    pub fn resident_blocks(&self, limits: &Target) -> u64 {
        self.blocks_per_sm as u64 * limits.sm_count as u64
    }

    /// Waves of a launch of `blocks` blocks: `blocks / resident_blocks`
    /// (fractional; infinite when nothing fits).
    pub fn waves(&self, blocks: u64, limits: &Target) -> f64 {
        let resident = self.resident_blocks(limits);
        if resident == 0 {
            return f64::INFINITY;
        }
        blocks as f64 / resident as f64
    }

    /// How full the last wave of a launch of `blocks` blocks is, in (0, 1]
    /// (1 when the blocks fill whole waves; 0 for an empty launch or when
    /// nothing fits). A small tail means SMs idle at the end of the launch.
    pub fn tail_fraction(&self, blocks: u64, limits: &Target) -> f64 {
        let resident = self.resident_blocks(limits);
        if resident == 0 || blocks == 0 {
            return 0.0;
        }
        match blocks % resident {
            0 => 1.0,
            r => r as f64 / resident as f64,
        }
    }
}

/// Registers per thread a kernel probably needs, estimated from its KIR when
/// no ptxas report exists. A heuristic, documented so it can be checked
/// against ptxas (`weft compile` prints both):
///
/// - 16 for the fixed costs of any kernel: thread and block ids, the
///   parameter pointers being used, address arithmetic;
/// - one per 32-bit local variable (two for 64-bit types): variables are
///   accumulators and carried state, live for the whole kernel;
/// - one per value defined outside a loop and used inside it (two for
///   64-bit), and one per loop index: those stay live across every
///   iteration, which is what drives register pressure in tiled kernels;
/// - two per shared array (its base address and a running index).
///
/// Clamped to 16..=255, the range ptxas assigns.
pub fn estimate_registers(kernel: &KernelDef) -> u32 {
    let width = |ty: Type| if ty.size_bytes() > 4 { 2u64 } else { 1 };
    let vars: u64 = kernel.vars.values().map(|v| width(v.ty)).sum();
    let mut live_across: HashSet<Value> = HashSet::new();
    let mut loops = 0u64;
    let mut visited = HashSet::new();
    // Every loop's body, with the values used in it that it does not define.
    collect_loops(kernel, kernel.body, &mut visited, &mut |body| {
        loops += 1;
        let mut defined = HashSet::new();
        let mut used = HashSet::new();
        let mut seen = HashSet::new();
        uses_and_defs(kernel, body, &mut seen, &mut defined, &mut used);
        live_across.extend(used.difference(&defined).copied());
    });
    let across: u64 = live_across
        .iter()
        .filter(|&&v| {
            // Constants rematerialise for free; ptxas does not keep them live.
            match kernel.values.get(v).map(|d| d.def) {
                Some(ValueDef::Result(i)) => !matches!(kernel.insts.get(i), Some(InstData::Const(_))),
                _ => true,
            }
        })
        .map(|&v| kernel.values.get(v).map_or(1, |d| width(d.ty)))
        .sum();
    let shared = 2 * kernel.shared.len() as u64;
    let estimate = 16 + vars + across + loops + shared;
    estimate.clamp(16, 255) as u32
}

/// Calls `f` with the body of every `for` in `region`, outermost first.
/// Guards against malformed region trees (ids out of range, shared regions).
fn collect_loops(kernel: &KernelDef, region: Region, visited: &mut HashSet<Region>, f: &mut impl FnMut(Region)) {
    if !visited.insert(region) {
        return;
    }
    let Some(insts) = kernel.regions.get(region) else { return };
    for &inst in insts {
        let Some(data) = kernel.insts.get(inst) else { continue };
        if let InstData::For { body, .. } = *data {
            f(body);
        }
        for r in data.regions() {
            collect_loops(kernel, r, visited, f);
        }
    }
}

/// The values defined in `region` (nested regions included: results and loop
/// indices) and the values its instructions read.
fn uses_and_defs(
    kernel: &KernelDef,
    region: Region,
    seen: &mut HashSet<Region>,
    defined: &mut HashSet<Value>,
    used: &mut HashSet<Value>,
) {
    if !seen.insert(region) {
        return;
    }
    let Some(insts) = kernel.regions.get(region) else { return };
    for &inst in insts {
        let Some(data) = kernel.insts.get(inst) else { continue };
        if let Some(Some(v)) = kernel.inst_result.get(inst) {
            defined.insert(*v);
        }
        if let InstData::For { index, .. } = *data {
            defined.insert(index);
        }
        used.extend(data.operands());
        for r in data.regions() {
            uses_and_defs(kernel, r, seen, defined, used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_kir::{Access, Axis, KernelBuilder, LaunchShape};

    fn res(threads: u32, registers: u32, shared_bytes: u64) -> KernelResources {
        KernelResources::new(threads, registers, shared_bytes)
    }

    // Expected values are worked by hand the way the CUDA occupancy
    // calculator does (compute capability 9.0 sheet), in the comments.

    #[test]
    fn small_blocks_are_limited_by_blocks_per_sm() {
        // 64 threads = 2 warps; 32 regs → 1024/warp → 16 warps per partition
        // → 64 → 32 blocks; shared (0 + 1 KiB) → 228 blocks; threads → 32.
        // Ties go to threads: 64 warps / 2 = 32 blocks, full occupancy.
        let occ = Occupancy::of(res(64, 32, 0), &Target::sm_90());
        assert_eq!(occ.blocks_per_sm, 32);
        assert_eq!(occ.warps_per_sm, 64);
        assert_eq!(occ.fraction, 1.0);
        // 32 threads: threads allow 64 blocks, the block limit is 32.
        let occ = Occupancy::of(res(32, 32, 0), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter, occ.warps_per_sm), (32, Limiter::Blocks, 32));
        assert_eq!(occ.fraction, 0.5);
    }

    #[test]
    fn registers_are_allocated_per_warp_per_partition() {
        // 256 threads (8 warps), 40 regs: 40·32 = 1280 per warp (a multiple
        // of 256); 16384 per partition / 1280 = 12 warps → 48 warps per SM →
        // 6 blocks.
        let occ = Occupancy::of(res(256, 40, 0), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter, occ.warps_per_sm), (6, Limiter::Registers, 48));
        assert_eq!(occ.fraction, 0.75);
        // Where partitions matter: 96 threads (3 warps), 40 regs → 48 warps
        // → 16 blocks; dividing the whole file (65536 / 1280 = 51 warps)
        // would wrongly give 17.
        let occ = Occupancy::of(res(96, 40, 0), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter), (16, Limiter::Registers));
        // 37 regs round up to 1280 per warp like 40.
        let occ = Occupancy::of(res(32, 37, 0), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter), (32, Limiter::Blocks));
        let occ = Occupancy::of(res(1024, 37, 0), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter, occ.warps_per_sm), (1, Limiter::Registers, 32));
    }

    #[test]
    fn shared_memory_includes_the_reserved_kilobyte() {
        // 48 KiB + 1 KiB reserved = 50176 B; 233472 / 50176 = 4 blocks.
        let occ = Occupancy::of(res(128, 32, 48 * 1024), &Target::sm_90());
        assert_eq!((occ.blocks_per_sm, occ.limiter), (4, Limiter::SharedMemory));
        // On the A100: 167936 / 50176 = 3.
        let occ = Occupancy::of(res(128, 32, 48 * 1024), &Target::sm_80());
        assert_eq!((occ.blocks_per_sm, occ.limiter), (3, Limiter::SharedMemory));
        // 8.25 KiB (the tiled conv) + 1 KiB = 9472 B → 24 blocks on sm_90.
        let occ = Occupancy::of(res(256, 64, 8448), &Target::sm_90());
        // Registers: 2048/warp → 8/partition → 32 warps → 4 blocks.
        assert_eq!((occ.blocks_per_sm, occ.limiter, occ.fraction), (4, Limiter::Registers, 0.5));
    }

    #[test]
    fn blocks_that_cannot_run_get_zero_and_the_reason() {
        let sm90 = Target::sm_90();
        let occ = Occupancy::of(res(2048, 32, 0), &sm90);
        assert_eq!((occ.blocks_per_sm, occ.limiter), (0, Limiter::Threads));
        assert!(!occ.fits());
        let occ = Occupancy::of(res(128, 32, 228 * 1024), &sm90);
        assert_eq!((occ.blocks_per_sm, occ.limiter), (0, Limiter::SharedMemory));
        // 1024 threads × 255 registers exceed the register file.
        let occ = Occupancy::of(res(1024, 255, 0), &sm90);
        assert_eq!((occ.blocks_per_sm, occ.limiter), (0, Limiter::Registers));
        let occ = Occupancy::of(res(32, 256, 0), &sm90);
        assert_eq!((occ.blocks_per_sm, occ.limiter), (0, Limiter::Registers));
        assert_eq!(occ.waves(10, &sm90), f64::INFINITY);
        assert_eq!(occ.tail_fraction(10, &sm90), 0.0);
    }

    #[test]
    fn waves_and_tail() {
        let sm90 = Target::sm_90();
        // 4 blocks per SM × 132 SMs = 528 resident.
        let occ = Occupancy::of(res(256, 64, 0), &sm90);
        assert_eq!(occ.resident_blocks(&sm90), 528);
        assert_eq!(occ.waves(528, &sm90), 1.0);
        assert_eq!(occ.tail_fraction(528, &sm90), 1.0);
        assert_eq!(occ.waves(792, &sm90), 1.5);
        assert_eq!(occ.tail_fraction(792, &sm90), 0.5);
        assert_eq!(occ.tail_fraction(0, &sm90), 0.0);
    }

    #[test]
    fn register_estimate_grows_with_loop_carried_state() {
        let mut b = KernelBuilder::new("plain", LaunchShape::linear(4, 128));
        let x = b.buffer("x", Type::F32, 512, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let v = b.load(x, i);
        let w = b.add(v, v);
        b.store(x, i, w);
        let plain = b.finish();
        assert_eq!(estimate_registers(&plain), 16);

        let mut b = KernelBuilder::new("looped", LaunchShape::linear(4, 128));
        let x = b.buffer("x", Type::F32, 512, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let acc = b.var(Type::F32);
        let zero = b.const_f32(0.0);
        b.set(acc, zero);
        b.for_const(0, 8, 1, |b, _k| {
            let v = b.load(x, i); // i is live across the loop
            let a = b.get(acc);
            let s = b.add(a, v);
            b.set(acc, s);
        });
        let a = b.get(acc);
        b.store(x, i, a);
        let looped = b.finish();
        // 16 + 1 variable + 1 value live across (i) + 1 loop index.
        assert_eq!(estimate_registers(&looped), 19);
    }

    #[test]
    fn the_per_block_register_limit_counts_warps_per_partition() {
        // 96 threads = 3 warps, counted as 4 for the per-block check: at 64
        // registers (2048 per warp) 4 × 2048 = 8192 fits 65536, but a device
        // allowing 6144 registers per block refuses the block.
        let small = Target { registers_per_block: 6144, ..Target::sm_90() };
        assert!(Occupancy::of(res(96, 64, 0), &Target::sm_90()).fits());
        let occ = Occupancy::of(res(96, 64, 0), &small);
        assert_eq!((occ.blocks_per_sm, occ.limiter), (0, Limiter::Registers));
    }

    #[test]
    fn the_table_answers_with_ptxas_figures_and_else_the_estimate() {
        let mut b = KernelBuilder::new("tiled", LaunchShape::linear(4, 128));
        let x = b.buffer("x", Type::F32, 512, Access::ReadWrite);
        let tile = b.shared_array(Type::F32, 100); // 400 bytes, 416 in the 16-aligned pool
        let i = b.global_thread_id(Axis::X);
        let t = b.thread_id(Axis::X);
        let v = b.load(x, i);
        b.shared_store(tile, t, v);
        b.store(x, i, v);
        let kernel = b.finish();
        let table = ResourceTable::new();
        let estimated = table.resources(&kernel);
        assert_eq!(estimated, KernelResources::of(&kernel, None));
        assert!(!estimated.measured && table.is_empty());
        assert_eq!(estimated.shared_bytes, bundle_shared_bytes(&[&kernel]));

        let report = ResourceReport {
            kernel: "tiled".into(),
            registers: 72,
            shared_bytes: 8,
            spill_stores_bytes: 4,
            spill_loads_bytes: 12,
            ..Default::default()
        };
        let recorded = table.record(&kernel, &report);
        assert_eq!(table.len(), 1);
        assert_eq!(table.measured(&kernel), Some(recorded));
        assert_eq!(table.resources(&kernel), recorded);
        assert_eq!(
            (recorded.threads, recorded.registers, recorded.spill_bytes, recorded.measured),
            (128, 72, 16, true)
        );
        // Emitted alone, the shared arrays are static: ptxas's figure.
        assert_eq!(recorded.shared_bytes, 8);
        // As a one-slot bundle module: ptxas's static bytes plus the dynamic
        // pool it cannot see.
        let module = table.record_module(&kernel, &report);
        assert_eq!(table.resources(&kernel), module);
        assert_eq!(module.shared_bytes, 8 + bundle_shared_bytes(&[&kernel]));
        assert_eq!((module.threads, module.registers, module.spill_bytes), (128, 72, 16));
        // A bundle block is measured only if every part is.
        assert!(!recorded.max(estimated).measured);
        assert_eq!(recorded.max(estimated).registers, 72.max(estimated.registers));
    }
}
