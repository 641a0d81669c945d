//! Errors of graph construction and shape inference. Each names the node.

/// Why a node could not be added to a graph, or a graph not evaluated.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum GraphError {
    /// The node's inputs do not fit its operator (shape, rank, dtype or arity).
    #[error("node `{node}` ({op}): {message}")]
    Shape { node: String, op: &'static str, message: String },
    /// The node refers to a tensor the graph does not have.
    #[error("node `{node}`: unknown tensor {tensor}")]
    UnknownTensor { node: String, tensor: String },
    /// A graph input was not given a value, or was given one of the wrong shape.
    #[error("input `{input}`: {message}")]
    Input { input: String, message: String },
}
