//! Executing bundles.
//!
//! A [`BundleExecutor`] runs one bundle: every slot's kernel over its share of
//! the launch's physical blocks, as the slot table says. The CPU interpreter
//! implements it in this crate (`interp.rs`); CUDA implements it in the root
//! crate, since this room makes no driver calls.

use weft_kir::ArgValue;

use crate::bundle::Bundle;

/// Something that runs bundles.
pub trait BundleExecutor {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A short name for messages (`interp`, `cuda`).
    fn name(&self) -> &str;

    /// Runs `bundle` once. `args[i]` holds slot `i`'s arguments, one per
    /// parameter of its kernel; buffers the kernel may write are updated in
    /// place.
    fn execute_bundle(&self, bundle: &Bundle, args: &mut [Vec<ArgValue>]) -> Result<(), Self::Error>;
}
