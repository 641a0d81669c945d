//! weft-codegen: KIR → CUDA C → PTX, and what ptxas says about it.
//!
//! This room owns everything between a verified KIR kernel and a PTX string
//! the CUDA driver can load, and nothing about devices or tenants:
//!
//! - [`emit`]: the one CUDA C emitter, fallible and deterministic, with the
//!   block-mapping hook the packer replaces;
//! - [`compiler`]: NVRTC compilation with an in-memory and on-disk PTX cache;
//! - [`nvrtc`]: finding and loading libnvrtc without ever panicking;
//! - [`ptxas`]: register/spill/shared-memory reports from `ptxas -v`;
//! - [`toolkit`]: where NVRTC and ptxas are searched for.

pub mod compiler;
pub mod emit;
pub mod nvrtc;
pub mod ptxas;
pub mod toolkit;

pub use compiler::{default_cache_dir, require_nvrtc_or_skip, Arch, CompileError, CompileStats, CompiledPtx, Compiler};
pub use emit::{emit_cuda, emit_cuda_with, BlockMapping, CodeWriter, CudaSource, DirectBlocks, EmitError, EmitOptions};
pub use nvrtc::{nvrtc_version, NvrtcInfo};
pub use ptxas::{parse_ptxas_output, report_for, Ptxas, PtxasError, ResourceReport};
pub use toolkit::CudaSearch;
