//! weft-cpu: the third executor, the emitted CUDA C compiled for the host.
//!
//! The interpreter (`weft-interp`) is weft's oracle for KIR semantics, but it
//! never runs the CUDA C that codegen emits: bundles' dispatchers, slot
//! tables, named barriers and shared-memory pools. This room runs exactly
//! that text, unchanged, on the CPU:
//!
//! - [`compile`]: the host C++ compiler with `weft_cpu.h`, the CUDA-on-CPU
//!   header (fibers, barriers and named barriers counted in warps, shuffles
//!   with `shfl.sync`'s lane rules, shared memory as exact allocations),
//!   cached by source hash like the PTX cache;
//! - [`exec`]: [`CpuExecutor`], an implementation of the one executor trait
//!   that encodes launches with `weft_pack::encode_launch` (the bytes the
//!   GPU receives), runs blocks across OS threads, and in checking mode
//!   compares several schedules and shared-memory fills bit for bit.
//!
//! What it cannot show: races between blocks, the GPU's memory model, or
//! CUDA's own maths library (`expf`, `logf`, ... come from the host's libm;
//! see docs/executors.md).

pub mod compile;
pub mod exec;

pub use compile::{require_host_compiler_or_skip, Fibers, HostCompileError, HostCompiler, HEADER};
pub use exec::{CpuError, CpuExecutor, CpuMode, FaultKind, Run, Schedule};
pub use weft_codegen::BundleForm;
