//! weft-codegen: KIR → CUDA C → PTX, and what ptxas says about it.
//!
//! This room owns everything between a verified KIR kernel and a PTX string
//! the CUDA driver can load, and nothing about devices or tenants:
//!
//! - [`emit`]: the one CUDA C emitter, fallible and deterministic, with the
//!   block-mapping hook the packer replaces;
//! - [`bundle`]: several kernel bodies in one launch module, dispatched by a
//!   slot table at run time (the packer's bundles);
//! - [`compiler`]: NVRTC compilation with an in-memory and on-disk PTX cache;
//! - [`nvrtc`]: finding and loading libnvrtc without ever panicking;
//! - [`ptxas`]: register/spill/shared-memory reports from `ptxas -v`;
//! - [`toolkit`]: where NVRTC and ptxas are searched for.

pub mod bundle;
pub mod compiler;
pub mod emit;
pub mod nvrtc;
pub mod ptxas;
pub mod toolkit;

pub use bundle::{
    bundle_shared_bytes, emit_bundle, emit_bundle_with, BundleForm, BUNDLE_ENTRY, NAMED_BARRIER_ID, SLOT_FIELDS,
};
#[cfg(any(test, feature = "testing"))]
pub use compiler::require_nvrtc_or_skip;
pub use compiler::{default_cache_dir, Arch, CompileError, CompileStats, CompiledPtx, Compiler};
pub use emit::{
    emit_cuda, emit_cuda_with, emit_device_function, fits_parameter_space, BarrierForm, BlockMapping, CodeWriter,
    CudaSource, DeviceForm, DeviceFunction, DirectBlocks, EmitError, EmitOptions, Prelude, PLATFORM_GUARD,
};
pub use nvrtc::{nvrtc_version, NvrtcInfo};
pub use ptxas::{parse_ptxas_output, report_for, Ptxas, PtxasError, ResourceReport};
pub use toolkit::CudaSearch;
