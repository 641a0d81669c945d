//! Reference kernels written in KIR, with naive `f64` references.
//!
//! These are the foundations' test bed: a vector add, a tiled SGEMM with
//! shared memory and register tiling, a row sum over the op templates' block
//! reduction (`weft_lower::collective`), and a row softmax. Each has a
//! constructor taking its static shape (KIR kernels are compiled per shape),
//! a naive reference evaluated in `f64`,
//! and a [`Case`] that bundles seeded inputs with the expected outputs so the
//! same conformance suite runs on every executor (the CPU interpreter always,
//! CUDA where a GPU is present).

#[cfg(feature = "testing")]
pub mod cases;
pub mod reduce;
pub mod reference;
#[cfg(feature = "testing")]
pub mod rng;
pub mod sgemm;
pub mod softmax;
pub mod spin;
pub mod vector_add;

#[cfg(feature = "testing")]
pub use cases::{conformance_cases, Case, CaseError, Runner};
pub use reduce::row_sum;
pub use sgemm::{sgemm, SgemmTiles};
pub use softmax::row_softmax;
pub use spin::spin;
pub use vector_add::vector_add;
