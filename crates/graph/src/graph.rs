//! The model graph: tensors in an arena, operator nodes in a petgraph.
//!
//! Every tensor has a known dtype and static shape at all times: `add_node`
//! runs shape inference for the new node immediately and refuses it (with an
//! error naming the node) if its inputs do not fit. Lowering, the evaluator
//! and the CLI can therefore rely on shapes without a separate pass.
//!
//! Edges of the petgraph run from a tensor's producer to each consumer and
//! carry the tensor, so petgraph's algorithms (topological order, reachability)
//! apply directly. Graph inputs and constants have no producer node.

use std::collections::HashMap;

use cranelift_entity::{entity_impl, PrimaryMap, SecondaryMap};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};

use crate::dtype::DType;
use crate::error::GraphError;
use crate::infer::infer_node;
use crate::op::Op;
use crate::tensor::{Shape, Tensor};

/// A tensor of the graph (an input, a constant, or a node's output).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u32);
entity_impl!(TensorId, "t");

/// What the graph knows about a tensor.
#[derive(Clone, PartialEq, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Shape,
}

/// An operator application.
#[derive(Clone, PartialEq, Debug)]
pub struct Node {
    /// Unique within the graph (ONNX node name, or generated).
    pub name: String,
    pub op: Op,
    /// Inputs in operator order; `None` for an omitted optional input.
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
}

/// A model: tensors, constants (weights), nodes, graph inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub tensors: PrimaryMap<TensorId, TensorInfo>,
    pub nodes: StableDiGraph<Node, TensorId>,
    /// The node producing each tensor (`None` for inputs and constants).
    pub producer: SecondaryMap<TensorId, Option<NodeIndex>>,
    /// Constant tensors: weights and folded constants.
    pub constants: HashMap<TensorId, Tensor>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Graph inputs whose value was compiled in at import, because a node
    /// uses them as attribute-like operands (axes, pads, a target shape):
    /// the graph is right only when run with these values.
    pub specialized: HashMap<TensorId, Tensor>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph { name: name.into(), ..Graph::default() }
    }

    /// Declares a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, dtype: DType, shape: impl Into<Shape>) -> TensorId {
        let t = self.tensors.push(TensorInfo { name: name.into(), dtype, shape: shape.into() });
        self.inputs.push(t);
        t
    }

    /// Adds a constant tensor (a weight).
    pub fn add_constant(&mut self, name: impl Into<String>, value: Tensor) -> TensorId {
        let t = self.tensors.push(TensorInfo { name: name.into(), dtype: value.dtype, shape: value.shape.clone() });
        self.constants.insert(t, value);
        t
    }

    /// Marks a tensor as a graph output.
    pub fn add_output(&mut self, t: TensorId) {
        self.outputs.push(t);
    }

    /// Adds a node, inferring its outputs' dtypes and shapes; the outputs are
    /// named `output_names` (or `<node>:<i>` where a name is missing).
    pub fn add_node_named(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<TensorId>>,
        output_names: &[String],
    ) -> Result<Vec<TensorId>, GraphError> {
        let name = name.into();
        for t in inputs.iter().flatten() {
            if !self.tensors.is_valid(*t) {
                return Err(GraphError::UnknownTensor { node: name, tensor: t.to_string() });
            }
        }
        let infos: Vec<Option<&TensorInfo>> = inputs.iter().map(|t| t.map(|t| &self.tensors[t])).collect();
        let consts: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.and_then(|t| self.constants.get(&t))).collect();
        let out_types = infer_node(&name, &op, &infos, &consts)?;
        let outputs: Vec<TensorId> = out_types
            .into_iter()
            .enumerate()
            .map(|(i, (dtype, shape))| {
                let tname = output_names.get(i).cloned().unwrap_or_else(|| format!("{name}:{i}"));
                self.tensors.push(TensorInfo { name: tname, dtype, shape })
            })
            .collect();
        let node = self.nodes.add_node(Node { name, op, inputs: inputs.clone(), outputs: outputs.clone() });
        for &t in &outputs {
            self.producer[t] = Some(node);
        }
        for t in inputs.iter().flatten() {
            if let Some(p) = self.producer[*t] {
                self.nodes.add_edge(p, node, *t);
            }
        }
        Ok(outputs)
    }

    /// Adds a node with generated output names.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<TensorId>>,
    ) -> Result<Vec<TensorId>, GraphError> {
        self.add_node_named(name, op, inputs, &[])
    }

    /// Nodes in a topological order (producers before consumers).
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        // Nodes can only consume tensors that already exist, so the graph is
        // acyclic by construction and toposort cannot fail.
        petgraph::algo::toposort(&self.nodes, None).unwrap_or_else(|_| self.nodes.node_indices().collect())
    }

    pub fn tensor_by_name(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().find(|(_, t)| t.name == name).map(|(id, _)| id)
    }

    pub fn info(&self, t: TensorId) -> &TensorInfo {
        &self.tensors[t]
    }
}
