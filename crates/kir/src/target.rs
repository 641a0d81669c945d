//! The device a kernel is built and planned for, as data: [`Target`].
//!
//! Every limit weft checks or plans against (threads and shared memory per
//! block, resident warps, registers and blocks per SM, the allocation
//! granularities of the occupancy calculator, the grid's and the parameter
//! space's bounds) is a field of one value, so the verifier, the interpreter,
//! codegen, the CUDA runtime and the packer agree on them and none restates a
//! number. The CUDA room builds a `Target` from the device it probes
//! (`weft_cuda::DeviceInfo::target`: the reported limits over the sm_90
//! granularities, which drivers do not report);
//! [`Target::sm_90`] describes an H100/H200 for work done without a GPU
//! (compiling, planning, checking), and [`Target::sm_80`] an A100.
//!
//! It sits in the kernel IR's room because it is the bottom of the
//! dependency graph: it knows no driver, only numbers.

/// The limits and allocation granularities of one device.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Target {
    /// `(major, minor)`, e.g. `(9, 0)` for H100/H200.
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    /// Threads per warp: the unit threads are allocated and shuffled in.
    pub warp_size: u32,
    pub max_threads_per_block: u32,
    /// Largest `block.x`, `block.y`, `block.z`.
    pub max_block_dims: [u32; 3],
    /// Largest `grid.x`, `grid.y`, `grid.z`.
    pub max_grid_dims: [u32; 3],
    pub max_threads_per_sm: u32,
    pub max_blocks_per_sm: u32,
    /// 32-bit registers in one SM's register file.
    pub registers_per_sm: u32,
    /// 32-bit registers one block may hold.
    pub registers_per_block: u32,
    pub max_registers_per_thread: u32,
    /// Registers are allocated per warp in multiples of this (256).
    pub register_alloc_unit: u32,
    /// Register-file partitions per SM (4); a warp's registers live in one.
    pub register_partitions: u32,
    /// Shared memory an SM can give to blocks (the largest carveout).
    pub shared_bytes_per_sm: u64,
    /// Static shared memory one block may declare (48 KiB).
    pub shared_bytes_per_block: u64,
    /// Shared memory one block may use with the opt-in attribute (dynamic
    /// shared memory, which is how weft's kernels get theirs).
    pub shared_bytes_per_block_optin: u64,
    /// Shared memory is allocated per block in multiples of this (128 bytes).
    pub shared_alloc_unit: u64,
    /// Shared memory the CUDA runtime reserves per block (1 KiB on 8.0+).
    pub shared_reserved_per_block: u64,
    /// Bytes of kernel parameters one launch may pass (32764 on 7.0+ with
    /// CUDA 12.1 or later, 4096 before): a bound on a kernel launched
    /// alone, never on a bundle body, whose arguments travel in memory.
    pub param_bytes: u32,
    /// Active warps per SM beyond which blocks share issue slots and slow
    /// down (the schedulers' time model): 4 schedulers × 4 warps each to
    /// hide dependent-instruction latency, 16 on every architecture since
    /// Volta. A model parameter, not a hardware limit.
    pub full_speed_warps_per_sm: u32,
}

impl Target {
    /// An H100/H200 (compute capability 9.0): 132 SMs, 228 KiB shared memory
    /// per SM of which 227 KiB per block with the opt-in.
    pub fn sm_90() -> Target {
        Target::SM_90
    }

    /// An A100 (compute capability 8.0): 108 SMs, 164 KiB shared memory per
    /// SM of which 163 KiB per block with the opt-in.
    pub fn sm_80() -> Target {
        Target {
            compute_capability: (8, 0),
            sm_count: 108,
            shared_bytes_per_sm: 164 * 1024,
            shared_bytes_per_block_optin: 163 * 1024,
            ..Target::SM_90
        }
    }

    /// [`Target::sm_90`] as a constant, for limits other constants derive
    /// from.
    pub const SM_90: Target = Target {
        compute_capability: (9, 0),
        sm_count: 132,
        warp_size: 32,
        max_threads_per_block: 1024,
        max_block_dims: [1024, 1024, 64],
        max_grid_dims: [i32::MAX as u32, 65535, 65535],
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        registers_per_sm: 65536,
        registers_per_block: 65536,
        max_registers_per_thread: 255,
        register_alloc_unit: 256,
        register_partitions: 4,
        shared_bytes_per_sm: 228 * 1024,
        shared_bytes_per_block: 48 * 1024,
        shared_bytes_per_block_optin: 227 * 1024,
        shared_alloc_unit: 128,
        shared_reserved_per_block: 1024,
        param_bytes: 32764,
        full_speed_warps_per_sm: 16,
    };

    /// `sm_90`-style architecture name.
    pub fn arch_name(&self) -> String {
        format!("sm_{}{}", self.compute_capability.0, self.compute_capability.1)
    }

    /// Warps an SM holds at most.
    pub fn max_warps_per_sm(&self) -> u32 {
        self.max_threads_per_sm / self.warp_size.max(1)
    }

    /// Warps of a block of `threads` threads (threads are allocated in whole
    /// warps).
    pub fn warps_of(&self, threads: u32) -> u32 {
        threads.div_ceil(self.warp_size.max(1))
    }
}

impl Default for Target {
    fn default() -> Target {
        Target::SM_90
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_counts_follow_the_fields() {
        let t = Target::sm_90();
        assert_eq!(t.arch_name(), "sm_90");
        assert_eq!(t.max_warps_per_sm() * t.warp_size, t.max_threads_per_sm);
        assert_eq!((t.warps_of(32), t.warps_of(33), t.warps_of(0)), (1, 2, 0));
        let a100 = Target::sm_80();
        assert_eq!(a100.arch_name(), "sm_80");
        assert!(a100.sm_count < t.sm_count && a100.shared_bytes_per_sm < t.shared_bytes_per_sm);
        assert_eq!(
            Target {
                compute_capability: (9, 0),
                sm_count: 132,
                shared_bytes_per_sm: t.shared_bytes_per_sm,
                shared_bytes_per_block_optin: t.shared_bytes_per_block_optin,
                ..a100
            },
            t
        );
    }
}
