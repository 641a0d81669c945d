//! Shape and dtype inference for every operator (placeholder signature).

use crate::dtype::DType;
use crate::error::GraphError;
use crate::graph::TensorInfo;
use crate::op::Op;
use crate::tensor::{Shape, Tensor};

/// Infers the dtype and shape of each output of node `node` applying `op` to
/// `inputs` (`None` for an omitted optional input). `constants` holds the
/// value of each input that is a constant, for ops whose output shape depends
/// on values.
pub fn infer_node(
    node: &str,
    op: &Op,
    inputs: &[Option<&TensorInfo>],
    constants: &[Option<&Tensor>],
) -> Result<Vec<(DType, Shape)>, GraphError> {
    let _ = (inputs, constants);
    Err(GraphError::Shape { node: node.to_string(), op: op.name(), message: "shape inference not written yet".into() })
}
