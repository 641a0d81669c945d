//! weft: many tenants' neural-network inference on one GPU, in space and time.
//!
//! This facade re-exports the rooms of the project: the kernel IR
//! ([`kir`]), its CPU interpreter ([`interp`]), CUDA C emission and NVRTC
//! compilation ([`codegen`]), the CUDA runtime ([`cuda`]), model graphs
//! ([`graph`]), lowering ([`lower`]), the packer ([`pack`]), the latency
//! predictor ([`predict`]) and the SLO-aware scheduler ([`sched`]); [`gpu`] runs
//! KIR kernels and bundles on a GPU through codegen and the runtime; [`Engine`]
//! is the serving API: tenants, asynchronous requests, metrics.

pub use weft_codegen as codegen;
pub use weft_cpu as cpu;
pub use weft_cuda as cuda;
pub use weft_graph as graph;
pub use weft_interp as interp;
pub use weft_kernels as kernels;
pub use weft_kir as kir;
pub use weft_lower as lower;
pub use weft_pack as pack;
pub use weft_predict as predict;
pub use weft_sched as sched;
pub use weft_sim as sim;

pub mod dynamic;
pub mod engine;
pub mod gpu;

pub use dynamic::{DynamicModel, NamedInput, DEFAULT_MAX_BINDINGS};
pub use engine::{
    Backend, DeviceStats, Engine, EngineConfig, EngineError, EngineStats, Pending, RequestError, Response,
    SubmitOptions, Tenant, TenantMetrics,
};
