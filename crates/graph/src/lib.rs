//! weft's model graphs.
//!
//! A [`Graph`] holds a model as a petgraph of operator [`Node`]s over typed,
//! statically shaped tensors, with its weights as constants. Graphs come from
//! ONNX files or are written in Rust; shape inference runs as nodes are added,
//! so every tensor's shape is always known; a naive reference evaluator
//! (accumulating in `f64`) is the oracle lowering is tested against.

pub mod builder;
pub mod dtype;
pub mod error;
pub mod eval;
pub mod graph;
pub mod infer;
pub mod memory;
pub mod models;
pub mod onnx;
pub mod op;
pub mod stats;
pub mod tensor;

pub use builder::{GraphBuilder, SplitMix64};
pub use dtype::DType;
pub use error::GraphError;
pub use eval::{eval_node, evaluate, evaluate_all};
pub use graph::{Graph, Node, TensorId, TensorInfo};
pub use memory::MemoryError;
pub use onnx::{
    bind_inputs, export_onnx, export_onnx_default, import_onnx, import_onnx_file, ExportError, ImportError,
    ImportOptions, OnnxModel,
};
pub use op::{BinaryOp, CoordinateTransform, NearestMode, Op, Padding, ResizeMode, ScatterReduction, UnaryOp, Window};
pub use tensor::{Shape, Tensor, TensorData};
