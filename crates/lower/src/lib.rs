//! Lowering of model graphs to KIR.
//!
//! [`lower`] turns a [`weft_graph::Graph`] into a [`Program`]: the ordered
//! stream of KIR kernels of one model and the buffers they use, with weights
//! loaded once. One KIR template per op family lives in [`ops`]; elementwise
//! chains are fused into the producing kernel's [`epilogue`]; view ops alias
//! buffers; layout is NCHW throughout, chosen once per model.

pub mod collective;
pub mod context;
pub mod epilogue;
pub mod error;
pub mod index;
pub mod lower;
pub mod ops;
pub mod program;
pub mod tile;

pub use context::{kir_type, LowerCtx, LowerOptions};
pub use epilogue::{Epilogue, EpilogueOp, EpilogueParams};
pub use error::LowerError;
pub use lower::lower;
pub use program::{
    random_buffer, Binding, BufferId, BufferInfo, BufferKind, CountCheck, IndexCheck, MemoryUse, OutOfRange, Program,
    Step,
};
