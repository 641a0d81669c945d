//! KIR analyses (placeholder signature; the real analyses are being written).

use crate::kernel::KernelDef;

/// A human-readable report of every analysis of `kernel`, one fact per line
/// (used by `.kir` file tests with `; test: analyze`).
pub fn report(kernel: &KernelDef) -> String {
    let _ = kernel;
    String::new()
}
