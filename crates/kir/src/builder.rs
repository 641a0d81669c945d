//! A builder that makes op templates pleasant to write.
//!
//! The builder appends instructions to the current region and infers each
//! result's type from its operands; structured control flow takes closures so
//! regions nest the way the text reads:
//!
//! ```
//! use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};
//!
//! let n = 1000;
//! let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(4, 256));
//! let x = b.buffer("x", Type::F32, n, Access::Read);
//! let y = b.buffer("y", Type::F32, n, Access::Read);
//! let out = b.buffer("out", Type::F32, n, Access::Write);
//! let i = b.global_thread_id(Axis::X);
//! let limit = b.const_i32(n as i32);
//! let in_range = b.lt(i, limit);
//! b.if_(in_range, |b| {
//!     let xi = b.load(x, i);
//!     let yi = b.load(y, i);
//!     let sum = b.add(xi, yi);
//!     b.store(out, i, sum);
//! });
//! let kernel = b.finish();
//! assert_eq!(kernel.params.len(), 3);
//! ```
//!
//! The builder does not check types: the verifier does, and reports every
//! problem at once with the entity it concerns.

use half::{bf16, f16};

use crate::entities::{Inst, Param, Region, Shared, Value, Var};
use crate::inst::{Access, Axis, BinaryOp, CmpOp, InstData, ShuffleKind, Special, UnaryOp};
use crate::kernel::{KernelDef, LaunchShape, ParamData, ParamKind, SharedData, ValueData, ValueDef, VarData};
use crate::types::{Scalar, Type};

/// Builds one [`KernelDef`].
pub struct KernelBuilder {
    kernel: KernelDef,
    /// Regions being filled, innermost last.
    cursor: Vec<Region>,
}

impl KernelBuilder {
    pub fn new(name: impl Into<String>, launch: LaunchShape) -> KernelBuilder {
        let kernel = KernelDef::new(name, launch);
        let cursor = vec![kernel.body];
        KernelBuilder { kernel, cursor }
    }

    /// The kernel built so far.
    pub fn kernel(&self) -> &KernelDef {
        &self.kernel
    }

    /// Ends building and returns the kernel (unverified).
    pub fn finish(self) -> KernelDef {
        self.kernel
    }

    // ---- declarations -------------------------------------------------

    /// Declares a global buffer parameter of `len` elements.
    pub fn buffer(&mut self, name: &str, elem: Type, len: u64, access: Access) -> Param {
        self.kernel.params.push(ParamData { name: name.to_string(), kind: ParamKind::Buffer { elem, len, access } })
    }

    /// Declares a scalar parameter.
    pub fn scalar_param(&mut self, name: &str, ty: Type) -> Param {
        self.kernel.params.push(ParamData { name: name.to_string(), kind: ParamKind::Scalar { ty } })
    }

    /// Declares a shared-memory array of `len` elements.
    pub fn shared_array(&mut self, elem: Type, len: u32) -> Shared {
        self.kernel.shared.push(SharedData { elem, len })
    }

    /// Declares a local variable.
    pub fn var(&mut self, ty: Type) -> Var {
        self.kernel.vars.push(VarData { ty })
    }

    /// Declares a local variable and sets it to `init`.
    pub fn var_init(&mut self, init: Value) -> Var {
        let ty = self.kernel.value_type(init);
        let var = self.var(ty);
        self.set(var, init);
        var
    }

    // ---- raw emission -------------------------------------------------

    fn push_inst(&mut self, data: InstData) -> Inst {
        let inst = self.kernel.insts.push(data);
        let region = *self.cursor.last().expect("builder always has a current region");
        self.kernel.regions[region].push(inst);
        inst
    }

    /// Appends an instruction that defines a value of type `ty`.
    pub fn emit(&mut self, data: InstData, ty: Type) -> Value {
        let inst = self.push_inst(data);
        let v = self.kernel.values.push(ValueData { ty, def: ValueDef::Result(inst) });
        self.kernel.inst_result[inst] = Some(v);
        v
    }

    /// Appends an instruction that defines no value.
    pub fn emit_effect(&mut self, data: InstData) -> Inst {
        self.push_inst(data)
    }

    fn ty(&self, v: Value) -> Type {
        self.kernel.value_type(v)
    }

    // ---- constants and specials -----------------------------------------

    pub fn constant(&mut self, s: Scalar) -> Value {
        self.emit(InstData::Const(s), s.ty())
    }

    pub fn const_i32(&mut self, v: i32) -> Value {
        self.constant(Scalar::I32(v))
    }

    pub fn const_u32(&mut self, v: u32) -> Value {
        self.constant(Scalar::U32(v))
    }

    pub fn const_i64(&mut self, v: i64) -> Value {
        self.constant(Scalar::I64(v))
    }

    pub fn const_f32(&mut self, v: f32) -> Value {
        self.constant(Scalar::F32(v))
    }

    pub fn const_bool(&mut self, v: bool) -> Value {
        self.constant(Scalar::Bool(v))
    }

    /// A float constant of type `ty` (f32, f16 or bf16), rounded from `v`.
    pub fn const_float(&mut self, ty: Type, v: f64) -> Value {
        let s = match ty {
            Type::F16 => Scalar::F16(f16::from_f64(v)),
            Type::BF16 => Scalar::BF16(bf16::from_f64(v)),
            _ => Scalar::from_f64(ty, v),
        };
        self.constant(s)
    }

    pub fn special(&mut self, s: Special) -> Value {
        self.emit(InstData::Special(s), Type::I32)
    }

    pub fn block_id(&mut self, a: Axis) -> Value {
        self.special(Special::BlockId(a))
    }

    pub fn thread_id(&mut self, a: Axis) -> Value {
        self.special(Special::ThreadId(a))
    }

    pub fn block_dim(&mut self, a: Axis) -> Value {
        self.special(Special::BlockDim(a))
    }

    pub fn grid_dim(&mut self, a: Axis) -> Value {
        self.special(Special::GridDim(a))
    }

    pub fn lane_id(&mut self) -> Value {
        self.special(Special::LaneId)
    }

    /// `block_id.a * block_dim.a + thread_id.a`.
    pub fn global_thread_id(&mut self, a: Axis) -> Value {
        let bid = self.block_id(a);
        let bdim = self.block_dim(a);
        let tid = self.thread_id(a);
        let base = self.mul(bid, bdim);
        self.add(base, tid)
    }

    /// Reads a scalar parameter.
    pub fn param(&mut self, p: Param) -> Value {
        let ty = self.kernel.params[p].ty();
        self.emit(InstData::ScalarParam(p), ty)
    }

    // ---- arithmetic ---------------------------------------------------

    pub fn unary(&mut self, op: UnaryOp, arg: Value) -> Value {
        let ty = self.ty(arg);
        self.emit(InstData::Unary { op, arg }, ty)
    }

    pub fn binary(&mut self, op: BinaryOp, lhs: Value, rhs: Value) -> Value {
        let ty = self.ty(lhs);
        self.emit(InstData::Binary { op, lhs, rhs }, ty)
    }

    pub fn cmp(&mut self, op: CmpOp, lhs: Value, rhs: Value) -> Value {
        self.emit(InstData::Cmp { op, lhs, rhs }, Type::Bool)
    }

    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        let ty = self.ty(a);
        self.emit(InstData::Fma { a, b, c }, ty)
    }

    pub fn select(&mut self, cond: Value, if_true: Value, if_false: Value) -> Value {
        let ty = self.ty(if_true);
        self.emit(InstData::Select { cond, if_true, if_false }, ty)
    }

    pub fn cast(&mut self, to: Type, arg: Value) -> Value {
        self.emit(InstData::Cast { to, arg }, to)
    }

    /// The bits of `arg` read as `to`, a type of the same size.
    pub fn bitcast(&mut self, to: Type, arg: Value) -> Value {
        self.emit(InstData::Bitcast { to, arg }, to)
    }

    // ---- memory -------------------------------------------------------

    pub fn load(&mut self, buf: Param, index: Value) -> Value {
        let ty = self.kernel.params[buf].ty();
        self.emit(InstData::Load { buf, index }, ty)
    }

    pub fn store(&mut self, buf: Param, index: Value, value: Value) {
        self.emit_effect(InstData::Store { buf, index, value });
    }

    pub fn shared_load(&mut self, array: Shared, index: Value) -> Value {
        let ty = self.kernel.shared[array].elem;
        self.emit(InstData::SharedLoad { array, index }, ty)
    }

    pub fn shared_store(&mut self, array: Shared, index: Value, value: Value) {
        self.emit_effect(InstData::SharedStore { array, index, value });
    }

    pub fn get(&mut self, var: Var) -> Value {
        let ty = self.kernel.vars[var].ty;
        self.emit(InstData::VarGet(var), ty)
    }

    pub fn set(&mut self, var: Var, value: Value) {
        self.emit_effect(InstData::VarSet { var, value });
    }

    // ---- synchronisation ------------------------------------------------

    pub fn barrier(&mut self) {
        self.emit_effect(InstData::Barrier);
    }

    pub fn shuffle(&mut self, kind: ShuffleKind, value: Value, operand: Value, width: u32) -> Value {
        let ty = self.ty(value);
        self.emit(InstData::Shuffle { kind, value, operand, width }, ty)
    }

    /// `__shfl_xor_sync` over the full warp.
    pub fn shuffle_xor(&mut self, value: Value, mask: i32) -> Value {
        let m = self.const_i32(mask);
        self.shuffle(ShuffleKind::Xor, value, m, 32)
    }

    /// `__shfl_down_sync` over the full warp.
    pub fn shuffle_down(&mut self, value: Value, delta: i32) -> Value {
        let d = self.const_i32(delta);
        self.shuffle(ShuffleKind::Down, value, d, 32)
    }

    // ---- control flow -------------------------------------------------

    fn in_region(&mut self, region: Region, f: impl FnOnce(&mut KernelBuilder)) {
        self.cursor.push(region);
        f(self);
        self.cursor.pop();
    }

    /// `for i in (start..end).step_by(step) { body(i) }`.
    pub fn for_range(&mut self, start: Value, end: Value, step: i64, body: impl FnOnce(&mut KernelBuilder, Value)) {
        let ty = self.ty(start);
        let region = self.kernel.regions.push(Vec::new());
        // The index value is created before the instruction exists; patch its def after.
        let index = self.kernel.values.push(ValueData { ty, def: ValueDef::Undefined });
        let inst = self.push_inst(InstData::For { index, start, end, step, body: region });
        self.kernel.values[index].def = ValueDef::LoopIndex(inst);
        self.in_region(region, |b| body(b, index));
    }

    /// A loop over constant `i32` bounds.
    pub fn for_const(&mut self, start: i32, end: i32, step: i64, body: impl FnOnce(&mut KernelBuilder, Value)) {
        let s = self.const_i32(start);
        let e = self.const_i32(end);
        self.for_range(s, e, step, body);
    }

    /// `if cond { then }`.
    pub fn if_(&mut self, cond: Value, then: impl FnOnce(&mut KernelBuilder)) {
        let then_r = self.kernel.regions.push(Vec::new());
        self.push_inst(InstData::If { cond, then: then_r, else_: None });
        self.in_region(then_r, then);
    }

    /// `if cond { then } else { else_ }`.
    pub fn if_else(
        &mut self,
        cond: Value,
        then: impl FnOnce(&mut KernelBuilder),
        else_: impl FnOnce(&mut KernelBuilder),
    ) {
        let then_r = self.kernel.regions.push(Vec::new());
        let else_r = self.kernel.regions.push(Vec::new());
        self.push_inst(InstData::If { cond, then: then_r, else_: Some(else_r) });
        self.in_region(then_r, then);
        self.in_region(else_r, else_);
    }
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl KernelBuilder {
            $(
                #[doc = concat!("`", stringify!($name), "(arg)`.")]
                pub fn $name(&mut self, arg: Value) -> Value {
                    self.unary(UnaryOp::$op, arg)
                }
            )*
        }
    };
}

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl KernelBuilder {
            $(
                #[doc = concat!("`", stringify!($name), "(lhs, rhs)`.")]
                pub fn $name(&mut self, lhs: Value, rhs: Value) -> Value {
                    self.binary(BinaryOp::$op, lhs, rhs)
                }
            )*
        }
    };
}

macro_rules! cmp_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl KernelBuilder {
            $(
                #[doc = concat!("`lhs ", stringify!($name), " rhs` as `bool`.")]
                pub fn $name(&mut self, lhs: Value, rhs: Value) -> Value {
                    self.cmp(CmpOp::$op, lhs, rhs)
                }
            )*
        }
    };
}

unary_methods! {
    neg => Neg, not => Not, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt,
    rsqrt => Rsqrt, tanh => Tanh, erf => Erf, floor => Floor, ceil => Ceil,
    sin => Sin, cos => Cos, atan => Atan,
}

binary_methods! {
    add => Add, sub => Sub, mul => Mul, div => Div, rem => Rem, min => Min, max => Max,
    and => And, or => Or, xor => Xor, shl => Shl, shr => Shr,
}

cmp_methods! {
    eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge,
}
