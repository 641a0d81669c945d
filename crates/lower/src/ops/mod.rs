//! One KIR template per op family. Each `lower_*` function takes the node
//! and the epilogue fused after it, emits one or more kernels into the
//! context, and marks the tensors it computed available.

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod movement;
pub mod pool;
pub mod reduce;

use weft_graph::{Node, Op};

use crate::context::LowerCtx;
use crate::epilogue::Epilogue;
use crate::error::LowerError;

/// True when the op's template applies an epilogue before its store.
pub fn accepts_epilogue(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. }
            | Op::ConvTranspose { .. }
            | Op::Gemm { .. }
            | Op::MatMul
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::BatchNormalization { .. }
            | Op::MaxPool { .. }
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool
    )
}

/// Lowers one node (with its fused epilogue).
pub fn lower_node(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    match &node.op {
        Op::Conv { .. } | Op::ConvTranspose { .. } => conv::lower(ctx, node, epi),
        Op::Gemm { .. } | Op::MatMul => gemm::lower(ctx, node, epi),
        Op::MaxPool { .. }
        | Op::MaxPoolWithIndices { .. }
        | Op::AveragePool { .. }
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::Lrn { .. } => pool::lower(ctx, node, epi),
        Op::Softmax { .. }
        | Op::LayerNormalization { .. }
        | Op::ReduceMean { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::ReduceMin { .. }
        | Op::ReduceProd { .. }
        | Op::LogSoftmax { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::CumSum { .. }
        | Op::CumProd { .. }
        | Op::TopK { .. }
        | Op::NonZero { .. } => reduce::lower(ctx, node, epi),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Sum
        | Op::Where
        | Op::Cast { .. }
        | Op::BitCast { .. }
        | Op::BatchNormalization { .. } => elementwise::lower(ctx, node, epi),
        Op::Concat { .. }
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
        | Op::Resize { .. }
        | Op::Pad { .. }
        | Op::Slice { .. }
        | Op::Identity => movement::lower(ctx, node, epi),
    }
}

/// The error for a template that does not exist yet.
pub(crate) fn not_yet(node: &Node) -> LowerError {
    LowerError::Unsupported {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        reason: "no KIR template yet".into(),
    }
}
