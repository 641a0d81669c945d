//! Typed ids for every KIR entity.
//!
//! Each id is a `u32` index into an arena (`PrimaryMap`) owned by a [`crate::Module`]
//! or a [`crate::KernelDef`]. The display prefix of an id is the prefix the text
//! format uses, so `Display` and the parser agree on names: `v3` is value 3,
//! `p0` parameter 0, `s1` shared array 1, `x2` local variable 2, `r4` region 4.

use cranelift_entity::entity_impl;

/// A kernel in a [`crate::Module`].
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kernel(u32);
entity_impl!(Kernel, "k");

/// A kernel parameter: a global buffer or a scalar.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Param(u32);
entity_impl!(Param, "p");

/// An SSA value: the result of an instruction or a loop's index.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(u32);
entity_impl!(Value, "v");

/// An instruction.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inst(u32);
entity_impl!(Inst, "i");

/// A statically sized shared-memory array of one block.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shared(u32);
entity_impl!(Shared, "s");

/// A mutable per-thread local variable (a register in CUDA C).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(u32);
entity_impl!(Var, "x");

/// A region: an ordered list of instructions (a kernel body, a loop body or an
/// arm of an `if`).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(u32);
entity_impl!(Region, "r");
