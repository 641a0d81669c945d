//! Static statistics of a graph: parameters and FLOPs per node, for
//! `weft inspect` and for reasoning about a model before lowering it.
//!
//! FLOPs count a multiply-add as two operations (the usual convention) and
//! elementwise ops as one per output element; data movement counts zero.

use crate::graph::{Graph, Node};
use crate::op::Op;

/// Floating-point operations of one node, from its inputs' and outputs' shapes.
pub fn node_flops(graph: &Graph, node: &Node) -> u64 {
    let out_elems: u64 = node.outputs.iter().map(|&t| graph.info(t).shape.numel() as u64).sum();
    let input_dims = |i: usize| node.inputs.get(i).copied().flatten().map(|t| graph.info(t).shape.dims().to_vec());
    match &node.op {
        Op::Conv { .. } => {
            // Each output element is a dot product over C/groups · k… inputs.
            let w = input_dims(1).unwrap_or_default();
            let per_out: u64 = w.iter().skip(1).map(|&d| d as u64).product();
            2 * out_elems * per_out
        }
        Op::ConvTranspose { .. } => {
            // Every input element scatters into M/groups · k… outputs.
            let x = input_dims(0).unwrap_or_default();
            let w = input_dims(1).unwrap_or_default();
            let in_elems: u64 = x.iter().map(|&d| d as u64).product();
            let per_in: u64 = w.iter().skip(1).map(|&d| d as u64).product();
            2 * in_elems * per_in
        }
        Op::Gemm { trans_a, .. } => {
            let a = input_dims(0).unwrap_or_default();
            let k = if *trans_a { a.first() } else { a.get(1) }.copied().unwrap_or(0) as u64;
            2 * out_elems * k
        }
        Op::MatMul => {
            let a = input_dims(0).unwrap_or_default();
            let k = a.last().copied().unwrap_or(0) as u64;
            2 * out_elems * k
        }
        Op::MaxPool { window, .. } | Op::MaxPoolWithIndices { window, .. } | Op::AveragePool { window, .. } => {
            out_elems * window.kernel.iter().map(|&k| k as u64).product::<u64>()
        }
        Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::ReduceMean { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::ReduceMin { .. }
        | Op::ReduceProd { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::TopK { .. }
        | Op::NonZero { .. } => input_dims(0).map_or(0, |d| d.iter().map(|&x| x as u64).product()),
        // max, subtract, exp, sum, divide
        Op::Softmax { .. } | Op::LogSoftmax { .. } => 5 * out_elems,
        // mean, variance, normalise, scale, shift
        Op::LayerNormalization { .. } => 8 * out_elems,
        Op::BatchNormalization { .. } => 2 * out_elems,
        Op::Lrn { size, .. } => out_elems * (*size as u64 + 3),
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::CumSum { .. } | Op::CumProd { .. } => out_elems,
        Op::Sum => out_elems * node.inputs.len().saturating_sub(1) as u64,
        Op::Resize { .. } => out_elems * 4,
        Op::Cast { .. }
        | Op::BitCast { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Transpose { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherND { .. }
        | Op::ScatterElements { .. }
        | Op::ScatterND { .. }
        | Op::Pad { .. }
        | Op::Slice { .. }
        | Op::Identity => 0,
    }
}

/// Total FLOPs of the graph.
pub fn graph_flops(graph: &Graph) -> u64 {
    graph.nodes.node_weights().map(|n| node_flops(graph, n)).sum()
}

/// Number of parameters: elements of every constant tensor.
pub fn parameter_count(graph: &Graph) -> u64 {
    graph.constants.values().map(|t| t.shape.numel() as u64).sum()
}
