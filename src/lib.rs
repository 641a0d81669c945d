//! weft: many tenants' neural-network inference on one GPU, in space and time.
//!
//! This facade re-exports the rooms of the project: the kernel IR
//! ([`kir`]), its CPU interpreter ([`interp`]), CUDA C emission and NVRTC
//! compilation ([`codegen`]) and the CUDA runtime ([`cuda`]); [`gpu`] runs
//! KIR kernels on a GPU through the latter two.

pub use weft_codegen as codegen;
pub use weft_cuda as cuda;
pub use weft_interp as interp;
pub use weft_kernels as kernels;
pub use weft_kir as kir;

pub mod gpu;
