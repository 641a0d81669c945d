//! weft's kernel IR (KIR).
//!
//! KIR describes one GPU kernel at the level weft reasons about: typed
//! parameters (global buffers with static lengths and access kinds, scalars),
//! a static logical launch shape, shared-memory arrays, per-thread local
//! variables, and a structured body of SSA instructions. It is small enough to
//! interpret on the CPU with GPU semantics (`weft-interp`), to emit as CUDA C
//! (`weft-codegen`), and to analyse exactly: every global access is
//! `(buffer, index)`, so the index intervals it can touch are computable, which
//! is what lets the packer prove tenants cannot reach each other's memory.
//!
//! Modules: [`entities`] (typed ids), [`types`] (scalar types and values),
//! [`inst`] (the instruction set), [`kernel`] (kernels and modules),
//! [`builder`] (writing kernels in Rust), [`Target`] (the device limits
//! everything checks against, as data).

pub mod builder;
pub mod entities;
pub mod exec;
pub mod inst;
pub mod kernel;
mod target;
pub mod types;

pub use builder::KernelBuilder;
pub use entities::{Inst, Kernel, Param, Region, Shared, Value, Var};
pub use exec::{check_arg_shapes, check_args, ArgError, ArgShape, ArgValue, HostBuffer};
pub use inst::{Access, Axis, BinaryOp, CmpOp, InstData, ShuffleKind, Special, UnaryOp};
pub use kernel::{KernelDef, LaunchShape, Module, ParamData, ParamKind, SharedData, ValueData, ValueDef, VarData};
pub use target::Target;
pub use types::{Scalar, Type};

pub mod analysis;
pub mod text;
pub mod verifier;
