//! Integration tests of the interpreter: kernels built with `KernelBuilder`,
//! run on the CPU, checked against direct Rust references. One test binary
//! (modules below) so the workspace links it once.

mod common;
mod conformance;
mod control;
mod errors;
mod launch;
mod ops;
mod props;
mod sync;
