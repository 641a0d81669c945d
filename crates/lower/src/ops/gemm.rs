//! Lowering of the gemm op family (being written).

use weft_graph::Node;

use crate::context::LowerCtx;
use crate::epilogue::Epilogue;
use crate::error::LowerError;

pub fn lower(ctx: &mut LowerCtx, node: &Node, epi: &Epilogue) -> Result<(), LowerError> {
    let _ = (ctx, epi);
    Err(super::not_yet(node))
}
