//! The interpreter's error type.
//!
//! One `thiserror` enum for the layer (see STYLE.md). Every runtime error names
//! the kernel and the instruction (`i12` plus its mnemonic), and where a single
//! thread is at fault, its block and thread coordinates, so a failing kernel
//! can be found in its text form without a debugger. Argument and verifier
//! errors convert with `#[from]` because `run` checks both before executing.

use weft_kir::verifier::VerifyErrors;
use weft_kir::{ArgError, Inst};

/// Which memory an out-of-bounds access hit.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum MemorySpace {
    Global,
    Shared,
}

impl std::fmt::Display for MemorySpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemorySpace::Global => "global buffer",
            MemorySpace::Shared => "shared array",
        })
    }
}

/// Why the interpreter could not run a kernel to completion.
#[derive(Clone, Debug, thiserror::Error)]
pub enum InterpError {
    #[error(transparent)]
    Args(#[from] ArgError),

    #[error(transparent)]
    Verify(#[from] VerifyErrors),

    #[error("kernel `{kernel}`: invalid launch shape: {reason}")]
    InvalidLaunch { kernel: String, reason: String },

    #[error(
        "kernel `{kernel}`: {inst} `{mnemonic}`: index {index} is out of bounds of {space} `{array}` \
         (length {len}) in block {block:?}, thread {thread:?}"
    )]
    OutOfBounds {
        kernel: String,
        inst: Inst,
        mnemonic: &'static str,
        space: MemorySpace,
        /// The buffer's parameter name, or the shared array's id (`s0`).
        array: String,
        index: i64,
        len: u64,
        block: [u32; 3],
        thread: [u32; 3],
    },

    #[error(
        "kernel `{kernel}`: {inst} `barrier`: divergent barrier in block {block:?}: \
         {arrived} of {expected} threads arrived"
    )]
    DivergentBarrier { kernel: String, inst: Inst, block: [u32; 3], arrived: u64, expected: u64 },

    #[error(
        "kernel `{kernel}`: {inst} `shuffle`: divergent shuffle in block {block:?}, warp {warp}: \
         {active} of {expected} lanes active (every lane of the warp must take part)"
    )]
    DivergentShuffle { kernel: String, inst: Inst, block: [u32; 3], warp: u32, active: u32, expected: u32 },

    #[error("kernel `{kernel}`: {inst} `{mnemonic}`: integer division by zero in block {block:?}, thread {thread:?}")]
    DivisionByZero { kernel: String, inst: Inst, mnemonic: &'static str, block: [u32; 3], thread: [u32; 3] },

    #[error(
        "kernel `{kernel}`: {inst} `var_get`: {var} is read before any write in block {block:?}, thread {thread:?}"
    )]
    UninitializedVar { kernel: String, inst: Inst, var: String, block: [u32; 3], thread: [u32; 3] },

    #[error("kernel `{kernel}`: {inst} `store`: parameter `{param}` is not a writable buffer")]
    NotWritable { kernel: String, inst: Inst, param: String },

    /// An instruction the verifier should have rejected (wrong types, a
    /// buffer used as a scalar, a non-positive loop step, ...). The
    /// interpreter reports it rather than guessing a meaning.
    #[error("kernel `{kernel}`: {inst} `{mnemonic}`: {what}")]
    Unsupported { kernel: String, inst: Inst, mnemonic: &'static str, what: String },

    /// A failure inside one slot of a mapped run (a bundle): which slot,
    /// which kernel, and what went wrong there.
    #[error("slot {slot} (kernel `{kernel}`): {error}")]
    Slot { slot: usize, kernel: String, error: Box<InterpError> },

    /// A mapped run's block mapping names a slot or logical block that does
    /// not exist, or does not run every logical block exactly once.
    #[error("invalid block mapping: {reason}")]
    InvalidMapping { reason: String },

    /// The run passed its deadline ([`crate::Interpreter::set_deadline`]) and
    /// was stopped: checked before every block and at loop back-edges.
    #[error("kernel `{kernel}`: stopped in block {block:?}: the run passed its deadline (a watchdog's bound)")]
    Hung { kernel: String, block: [u32; 3] },

    #[error("could not start the interpreter's thread pool: {0}")]
    ThreadPool(#[source] std::sync::Arc<rayon::ThreadPoolBuildError>),
}

impl InterpError {
    /// Whether the run was stopped at its deadline ([`InterpError::Hung`],
    /// also inside a mapped run's [`InterpError::Slot`]).
    pub fn is_hung(&self) -> bool {
        match self {
            InterpError::Hung { .. } => true,
            InterpError::Slot { error, .. } => error.is_hung(),
            _ => false,
        }
    }
}
