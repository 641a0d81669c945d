//! The packer's error type.
//!
//! One `thiserror` enum for the room (STYLE.md). Each variant names the kernel
//! and the fact that stopped the packing, so the message says what to change:
//! guard an access, widen a block, split a bundle. Other parts of the packer
//! add their variants here.

use weft_kir::analysis::ranges::{AccessKind, IndexRange};
use weft_kir::verifier::VerifyErrors;
use weft_kir::Inst;

/// Why a bundle could not be formed.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum PackError {
    /// A bundle needs at least one slot.
    #[error("a bundle needs at least one slot")]
    Empty,

    /// A global access the access-range analysis cannot prove in bounds, in
    /// strict isolation (or, in guarded mode, one a guard failed to prove).
    /// Tenants must not reach each other's memory (DESIGN.md, principle 5).
    #[error(
        "kernel `{kernel}`: {inst} `{}` of buffer `{buffer}` (length {len}) is not proven in bounds: index {}; \
         guard it (`if idx < len`) or pack with guarded isolation",
        access.name(),
        describe(index)
    )]
    Unproven { kernel: String, inst: Inst, access: AccessKind, buffer: String, len: u64, index: IndexRange },

    /// A slot's block shape does not fit the bundle's.
    #[error("kernel `{kernel}`: {threads} threads per block cannot share a {bundle_threads}-thread bundle: {reason}")]
    BlockShape { kernel: String, threads: u32, bundle_threads: u32, reason: String },

    /// A slot binds a different number of buffers than its kernel has parameters.
    #[error("kernel `{kernel}` takes {params} parameters but its slot binds {args} buffers")]
    SlotArgs { kernel: String, params: usize, args: usize },

    /// Slots and budgets given to assemble a bundle do not pair up.
    #[error("{slots} slots were given {budgets} budgets")]
    Budgets { slots: usize, budgets: usize },

    /// A kernel (as given, or after guards were inserted) fails verification.
    #[error(transparent)]
    Verify(#[from] VerifyErrors),

    /// A resource of one launch is exceeded.
    #[error("{what}: {needed} exceeds the limit of {limit}")]
    LimitExceeded { what: String, limit: u64, needed: u64 },
}

fn describe(index: &IndexRange) -> String {
    match index {
        IndexRange::Within(iv) => format!("in {iv}"),
        IndexRange::Unknown => "unbounded (the analysis cannot bound it)".to_string(),
        IndexRange::Unreachable => "unreachable".to_string(),
    }
}
