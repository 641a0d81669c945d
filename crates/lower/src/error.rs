//! Lowering errors; each names the graph node.

/// Why a graph could not be lowered.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum LowerError {
    /// The op (or this use of it) has no KIR template yet.
    #[error("node `{node}`: {op} is not supported by lowering: {reason}")]
    Unsupported { node: String, op: String, reason: String },
    /// A template produced something invalid: a bug in weft, reported rather than panicking.
    #[error("node `{node}`: internal lowering error: {message}")]
    Internal { node: String, message: String },
    /// The program does not fit [`LowerOptions::max_memory`](crate::LowerOptions::max_memory).
    #[error(transparent)]
    Memory(#[from] weft_graph::MemoryError),
    /// A template produced a kernel the KIR verifier refuses: a bug in weft.
    #[error("node `{node}`: internal lowering error: {source}")]
    Verify {
        node: String,
        #[source]
        source: weft_kir::verifier::VerifyErrors,
    },
}
