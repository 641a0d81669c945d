//! Errors of ONNX import. Each names the node, input or tensor it is about,
//! and says what to do where something can be done.

use crate::error::GraphError;

/// Why an ONNX model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not parse as a protobuf ModelProto (`path`: the file
    /// they came from, where there was one).
    #[error("not a valid ONNX model: {}{source}", .path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default())]
    Protobuf {
        path: Option<String>,
        #[source]
        source: protobuf::Error,
    },
    /// The bytes parse but are not a model weft can read (no graph, an empty file).
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    /// The model imports an opset outside the supported range, or no default one.
    #[error("{0}")]
    Opset(String),
    /// Every operator of the model that weft does not support, as
    /// `(op_type, node name)`, all at once so one run shows the whole gap.
    #[error("unsupported ONNX operators: {}", list_unsupported(.ops))]
    Unsupported { ops: Vec<(String, String)> },
    /// A graph input cannot be given a static shape or a supported dtype.
    #[error("input `{input}`: {message}")]
    Input { input: String, message: String },
    /// An initializer or constant cannot be read.
    #[error("tensor `{tensor}`: {message}")]
    Tensor { tensor: String, message: String },
    /// A node's attributes or inputs are not ones weft can import.
    #[error("node `{node}` ({op_type}): {message}")]
    Node { node: String, op_type: String, message: String },
    /// A tensor the model asks for (an input, a weight, a folded constant, a
    /// node's output) would have more elements than
    /// [`ImportOptions::max_elements`](super::ImportOptions::max_elements)
    /// allows. Checked before anything of that size is allocated.
    #[error("{what}: shape {shape} has {needed} elements, more than the limit of {limit}")]
    LimitExceeded { what: String, shape: String, needed: String, limit: usize },
    /// The model does not fit the memory budget
    /// ([`ImportOptions::max_memory`](super::ImportOptions::max_memory)).
    /// Checked before anything of that size is allocated.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// The size of a node's output depends on run-time data (a `NonZero`
    /// of a tensor computed from the inputs) and no count is bound for it
    /// ([`ImportOptions::counts`](super::ImportOptions::counts)).
    /// [`import_data_dependent`](super::import_data_dependent) binds it by
    /// running the model up to `input` on the inputs.
    #[error(
        "node `{node}` ({op_type}): the size of output `{output}` depends on the values of `{input}`, which are \
         computed at run time; run the model on its inputs (`weft run`, or a `weft::DynamicModel` on an engine), \
         which counts them first"
    )]
    DataDependent { node: String, op_type: String, input: String, output: String },
    /// The imported node did not fit the graph (shape inference refused it).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// `Foo (nodes `a`, `b`), Bar (node `c`)`: grouped by operator, in order of
/// first appearance, so a model with a hundred nodes of one missing op stays
/// readable.
fn list_unsupported(ops: &[(String, String)]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (op, node) in ops {
        match groups.iter_mut().find(|(o, _)| o == op) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((op, vec![node])),
        }
    }
    groups
        .iter()
        .map(|(op, nodes)| {
            let shown: Vec<String> = nodes.iter().take(5).map(|n| format!("`{n}`")).collect();
            let more = if nodes.len() > 5 { format!(" and {} more", nodes.len() - 5) } else { String::new() };
            let word = if nodes.len() == 1 { "node" } else { "nodes" };
            format!("{op} ({word} {}{more})", shown.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
