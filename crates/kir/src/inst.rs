//! The KIR instruction set.
//!
//! KIR is structured: control flow is a tree of [`Region`]s (loop bodies and
//! `if` arms) rather than a CFG, because every kernel weft emits is a loop nest
//! and structured control flow keeps three things easy: barrier legality (a
//! barrier's enclosing conditions are syntactic), CUDA C emission (no gotos),
//! and access-range analysis (a loop index has the interval of its bounds).
//!
//! Values are SSA: each is defined once, by an instruction or as a loop index,
//! and is visible in its defining region and the regions nested inside it after
//! its definition. Per-thread mutable state lives in local variables ([`Var`]),
//! read with `var_get` and written with `var_set`; this is how loops carry
//! accumulators without block arguments.
//!
//! Global memory is addressed only as (buffer parameter, element index) and
//! shared memory as (shared array, element index): there are no pointers, so
//! every access can be analysed and bounds-checked.

use std::fmt;

use crate::entities::{Param, Region, Shared, Value, Var};
use crate::types::{Scalar, Type};

/// One axis of a 3-D launch dimension.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub const ALL: [Axis; 3] = [Axis::X, Axis::Y, Axis::Z];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Axis::X => "x",
            Axis::Y => "y",
            Axis::Z => "z",
        }
    }
}

/// A special (hardware-provided) value. All are `i32`.
///
/// `BlockId` is the *logical* block id: the packer may map several physical
/// blocks onto one logical grid (constraining) or several kernels onto one
/// launch (coalescing), so kernels never see physical ids.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Special {
    /// Logical block index along an axis, in `0..grid[axis]`.
    BlockId(Axis),
    /// Thread index within the block along an axis, in `0..block[axis]`.
    ThreadId(Axis),
    /// Block dimension (threads) along an axis.
    BlockDim(Axis),
    /// Logical grid dimension (blocks) along an axis.
    GridDim(Axis),
    /// Lane of the thread in its warp, in `0..32` (linear thread id mod 32).
    LaneId,
}

impl Special {
    pub fn name(self) -> String {
        match self {
            Special::BlockId(a) => format!("block_id.{}", a.name()),
            Special::ThreadId(a) => format!("thread_id.{}", a.name()),
            Special::BlockDim(a) => format!("block_dim.{}", a.name()),
            Special::GridDim(a) => format!("grid_dim.{}", a.name()),
            Special::LaneId => "lane_id".to_string(),
        }
    }

    pub fn from_name(name: &str) -> Option<Special> {
        if name == "lane_id" {
            return Some(Special::LaneId);
        }
        let (base, axis) = name.split_once('.')?;
        let axis = Axis::ALL.into_iter().find(|a| a.name() == axis)?;
        Some(match base {
            "block_id" => Special::BlockId(axis),
            "thread_id" => Special::ThreadId(axis),
            "block_dim" => Special::BlockDim(axis),
            "grid_dim" => Special::GridDim(axis),
            _ => return None,
        })
    }
}

/// Single-operand operations. Result type = operand type, except `not` on
/// `bool` (bool) and the float math functions (float only).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum UnaryOp {
    /// Arithmetic negation (ints and floats).
    Neg,
    /// Logical not on `bool`, bitwise not on integers.
    Not,
    /// Absolute value (ints and floats).
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Erf,
    Floor,
    Ceil,
    Sin,
    Cos,
    Atan,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 14] = [
        UnaryOp::Neg,
        UnaryOp::Not,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Atan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Not => "not",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Atan => "atan",
        }
    }

    /// True for the transcendental/rounding functions, which take floats only.
    pub fn is_float_math(self) -> bool {
        !matches!(self, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs)
    }
}

/// Two-operand operations. Both operands and the result share one type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Division; on integers it truncates toward zero (C semantics) and a zero
    /// divisor is an execution error.
    Div,
    /// Remainder with the sign of the dividend (C `%`); integers only.
    Rem,
    Min,
    Max,
    /// Bitwise on integers, logical on `bool`.
    And,
    Or,
    Xor,
    /// Shifts; integers only, shift amount taken modulo the bit width.
    Shl,
    Shr,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 12] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::Shl,
        BinaryOp::Shr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Rem => "rem",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
            BinaryOp::Shl => "shl",
            BinaryOp::Shr => "shr",
        }
    }

    /// Arithmetic ops valid on ints and floats.
    pub fn is_arith(self) -> bool {
        matches!(self, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Min | BinaryOp::Max)
    }

    /// Bitwise/logical ops valid on ints and bool.
    pub fn is_bitwise(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }
}

/// Comparison predicates. Operands share a type; the result is `bool`.
/// Float comparisons are ordered (false when either side is NaN) except `ne`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];

    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// Warp shuffle variants (CUDA `__shfl_*_sync` over the full warp mask).
///
/// Lanes are grouped into segments of `width` lanes (a power of two ≤ 32).
/// `idx`: read from lane `operand mod width` of the segment. `up`: from lane
/// `lane - operand`, keeping the own value when that leaves the segment.
/// `down`: from `lane + operand`, likewise. `xor`: from `lane ^ operand`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ShuffleKind {
    Idx,
    Up,
    Down,
    Xor,
}

impl ShuffleKind {
    pub const ALL: [ShuffleKind; 4] = [ShuffleKind::Idx, ShuffleKind::Up, ShuffleKind::Down, ShuffleKind::Xor];

    pub fn name(self) -> &'static str {
        match self {
            ShuffleKind::Idx => "idx",
            ShuffleKind::Up => "up",
            ShuffleKind::Down => "down",
            ShuffleKind::Xor => "xor",
        }
    }
}

/// One instruction. Instructions that produce a value record it in
/// [`crate::KernelDef::inst_result`]; the others (`store`, `shared_store`,
/// `var_set`, `barrier`, `for`, `if`) produce none, except `for`, whose loop
/// index is a value defined *inside* its body.
#[derive(Clone, PartialEq, Debug)]
pub enum InstData {
    /// A constant of the scalar's type.
    Const(Scalar),
    /// A special register (block/thread ids and dims, lane id); `i32`.
    Special(Special),
    /// Reads a scalar parameter.
    ScalarParam(Param),
    Unary {
        op: UnaryOp,
        arg: Value,
    },
    Binary {
        op: BinaryOp,
        lhs: Value,
        rhs: Value,
    },
    /// `a * b + c`, fused on floats (one rounding).
    Fma {
        a: Value,
        b: Value,
        c: Value,
    },
    Cmp {
        op: CmpOp,
        lhs: Value,
        rhs: Value,
    },
    /// `cond ? if_true : if_false`.
    Select {
        cond: Value,
        if_true: Value,
        if_false: Value,
    },
    /// Conversion with C semantics (float→int truncates toward zero).
    Cast {
        to: Type,
        arg: Value,
    },
    /// The bits of `arg` read as `to`, a type of the same size (no value
    /// conversion); a `bool` result is whether any bit is set.
    Bitcast {
        to: Type,
        arg: Value,
    },
    /// Reads element `index` of global buffer `buf`.
    Load {
        buf: Param,
        index: Value,
    },
    /// Writes `value` to element `index` of global buffer `buf`.
    Store {
        buf: Param,
        index: Value,
        value: Value,
    },
    /// Reads element `index` of shared array `array`.
    SharedLoad {
        array: Shared,
        index: Value,
    },
    /// Writes element `index` of shared array `array`.
    SharedStore {
        array: Shared,
        index: Value,
        value: Value,
    },
    /// Reads a local variable (its value is undefined until first set; the
    /// interpreter reports a read before any write).
    VarGet(Var),
    /// Writes a local variable.
    VarSet {
        var: Var,
        value: Value,
    },
    /// Block-wide barrier (`__syncthreads`): every thread of the block must reach it.
    Barrier,
    /// Warp shuffle of `value` by `operand` (source lane, delta or xor mask).
    Shuffle {
        kind: ShuffleKind,
        value: Value,
        operand: Value,
        width: u32,
    },
    /// `for index in (start..end).step_by(step)`; `start` and `end` are
    /// integer values of one type, `step` a positive constant. The index value
    /// is defined at the top of `body`.
    For {
        index: Value,
        start: Value,
        end: Value,
        step: i64,
        body: Region,
    },
    /// Conditional: runs `then` for threads where `cond` holds, `else_` for the others.
    If {
        cond: Value,
        then: Region,
        else_: Option<Region>,
    },
}

impl InstData {
    /// The instruction's mnemonic in the text format.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            InstData::Const(_) => "const",
            InstData::Special(_) => "special",
            InstData::ScalarParam(_) => "param",
            InstData::Unary { op, .. } => op.name(),
            InstData::Binary { op, .. } => op.name(),
            InstData::Fma { .. } => "fma",
            InstData::Cmp { op, .. } => op.name(),
            InstData::Select { .. } => "select",
            InstData::Cast { .. } => "cast",
            InstData::Bitcast { .. } => "bitcast",
            InstData::Load { .. } => "load",
            InstData::Store { .. } => "store",
            InstData::SharedLoad { .. } => "shared_load",
            InstData::SharedStore { .. } => "shared_store",
            InstData::VarGet(_) => "var_get",
            InstData::VarSet { .. } => "var_set",
            InstData::Barrier => "barrier",
            InstData::Shuffle { .. } => "shuffle",
            InstData::For { .. } => "for",
            InstData::If { .. } => "if",
        }
    }

    /// The values this instruction reads (not counting values defined by it).
    pub fn operands(&self) -> Vec<Value> {
        match *self {
            InstData::Const(_) | InstData::Special(_) | InstData::ScalarParam(_) | InstData::VarGet(_) => vec![],
            InstData::Barrier => vec![],
            InstData::Unary { arg, .. } | InstData::Cast { arg, .. } | InstData::Bitcast { arg, .. } => vec![arg],
            InstData::Binary { lhs, rhs, .. } | InstData::Cmp { lhs, rhs, .. } => vec![lhs, rhs],
            InstData::Fma { a, b, c } => vec![a, b, c],
            InstData::Select { cond, if_true, if_false } => vec![cond, if_true, if_false],
            InstData::Load { index, .. } | InstData::SharedLoad { index, .. } => vec![index],
            InstData::Store { index, value, .. } | InstData::SharedStore { index, value, .. } => {
                vec![index, value]
            }
            InstData::VarSet { value, .. } => vec![value],
            InstData::Shuffle { value, operand, .. } => vec![value, operand],
            InstData::For { start, end, .. } => vec![start, end],
            InstData::If { cond, .. } => vec![cond],
        }
    }

    /// The regions nested in this instruction, in text order.
    pub fn regions(&self) -> Vec<Region> {
        match *self {
            InstData::For { body, .. } => vec![body],
            InstData::If { then, else_, .. } => std::iter::once(then).chain(else_).collect(),
            _ => vec![],
        }
    }
}

/// How a kernel may access a global buffer parameter.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "readwrite",
        }
    }

    pub fn from_name(s: &str) -> Option<Access> {
        [Access::Read, Access::Write, Access::ReadWrite].into_iter().find(|a| a.name() == s)
    }

    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
