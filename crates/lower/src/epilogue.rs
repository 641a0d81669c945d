//! Elementwise epilogues fused into a producing kernel.
//!
//! When a node's only consumer is an elementwise op (Relu after Conv, the
//! residual Add, a bias Add, a Clip…) whose output has the producer's shape,
//! the chain is folded into the producer's store: the template computes its
//! value for output element `i`, hands it to [`Epilogue::apply`], and stores
//! the result into the *last* tensor of the chain. Binary ops read their other
//! operand with numpy broadcasting from the output's linear index. Intermediate
//! tensors of the chain are never materialised.

use weft_graph::{BinaryOp, TensorId, UnaryOp};
use weft_kir::{KernelBuilder, Param, Value};

use crate::context::LowerCtx;
use crate::error::LowerError;
use crate::program::BufferId;

/// One fused elementwise step.
#[derive(Clone, PartialEq, Debug)]
pub enum EpilogueOp {
    Unary(UnaryOp),
    /// `acc ∘ other` when `acc_is_lhs`, else `other ∘ acc`; `other` broadcasts
    /// to the output shape.
    Binary {
        op: BinaryOp,
        other: TensorId,
        acc_is_lhs: bool,
    },
}

/// The elementwise chain after a producer, and the tensor it finally writes.
#[derive(Clone, PartialEq, Debug)]
pub struct Epilogue {
    pub ops: Vec<EpilogueOp>,
    /// Names of the fused nodes, in order.
    pub nodes: Vec<String>,
    /// The tensor the producing kernel stores (the chain's last output, or the
    /// producer's own output when the chain is empty).
    pub output: TensorId,
}

/// The kernel parameters an epilogue declared, bound to their buffers.
#[derive(Clone, Debug, Default)]
pub struct EpilogueParams {
    /// One per `Binary` op, in order.
    pub params: Vec<Param>,
    pub buffers: Vec<BufferId>,
}

impl Epilogue {
    /// No fusion: the producer stores its own output.
    pub fn none(output: TensorId) -> Epilogue {
        Epilogue { ops: Vec::new(), nodes: Vec::new(), output }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Declares a read-only buffer parameter for every binary operand; the
    /// template appends `params.buffers` to its step's arguments in the same
    /// order as the parameters were declared.
    pub fn declare(&self, ctx: &mut LowerCtx, b: &mut KernelBuilder) -> Result<EpilogueParams, LowerError> {
        let _ = (ctx, b);
        if self.ops.is_empty() {
            return Ok(EpilogueParams::default());
        }
        Err(LowerError::Unsupported {
            node: self.nodes.join(", "),
            op: "epilogue".into(),
            reason: "epilogue fusion not written yet".into(),
        })
    }

    /// Applies the chain to `value`, the producer's result for the output
    /// element at linear (row-major) index `out_index` of the output shape.
    pub fn apply(
        &self,
        ctx: &LowerCtx,
        b: &mut KernelBuilder,
        params: &EpilogueParams,
        value: Value,
        out_index: Value,
    ) -> Result<Value, LowerError> {
        let _ = (ctx, b, params, out_index);
        Ok(value)
    }
}
