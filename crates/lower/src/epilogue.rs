//! Elementwise epilogues fused into a producing kernel.
//!
//! When a node's only consumer is an elementwise op (Relu after Conv, the
//! residual Add, a bias Add, a Clip…) whose output has the producer's shape,
//! the chain is folded into the producer's store: the template computes its
//! value for output element `i`, hands it to [`Epilogue::apply`], and stores
//! the result into the *last* tensor of the chain. Binary ops read their other
//! operand with numpy broadcasting from the output's linear index. Intermediate
//! tensors of the chain are never materialised.
//!
//! The scalar emitters [`emit_unary`], [`emit_binary`], [`emit_pow_const`] and
//! [`convert`] live here too: they are the single definition of what every
//! graph elementwise op computes in KIR, shared by the epilogue, the
//! standalone elementwise templates and any other template that needs them,
//! so a fused op and an unfused one compute bit-identical results.

use weft_graph::{BinaryOp, TensorData, TensorId, UnaryOp};
use weft_kir::{Access, KernelBuilder, Param, Type, Value};

use crate::context::{kir_type, LowerCtx};
use crate::error::LowerError;
use crate::index::{broadcast_index, check_numel};
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

    fn node_names(&self) -> String {
        self.nodes.join(", ")
    }

    /// Declares a read-only buffer parameter for every binary operand; the
    /// template appends `params.buffers` to its step's arguments in the same
    /// order as the parameters were declared.
    pub fn declare(&self, ctx: &mut LowerCtx, b: &mut KernelBuilder) -> Result<EpilogueParams, LowerError> {
        let mut out = EpilogueParams::default();
        for op in &self.ops {
            let EpilogueOp::Binary { other, .. } = op else { continue };
            let info = ctx.graph.info(*other);
            let (dtype, numel) = (info.dtype, info.shape.numel());
            check_numel(&self.node_names(), "epilogue", numel)?;
            // Parameter names must be unique C identifiers; numbering by
            // position keeps them stable whatever the template declared.
            let name = format!("epi{}", out.params.len());
            let p = b.buffer(&name, kir_type(dtype), numel.max(1) as u64, Access::Read);
            out.params.push(p);
            out.buffers.push(ctx.buffer_of(*other));
        }
        Ok(out)
    }

    /// Applies the chain to `value`, the producer's result for the output
    /// element at linear (row-major) index `out_index` of the output shape.
    /// `out_index` must be provably in `[0, numel - 1]` (computed under the
    /// template's guard or loop), so the broadcast reads are proven too.
    pub fn apply(
        &self,
        ctx: &LowerCtx,
        b: &mut KernelBuilder,
        params: &EpilogueParams,
        value: Value,
        out_index: Value,
    ) -> Result<Value, LowerError> {
        let out_dims = ctx.graph.info(self.output).shape.dims().to_vec();
        let mut acc = value;
        let mut next_param = 0;
        for (k, op) in self.ops.iter().enumerate() {
            let node = self.nodes.get(k).cloned().unwrap_or_else(|| self.node_names());
            match *op {
                EpilogueOp::Unary(u) => acc = emit_unary(b, u, acc),
                EpilogueOp::Binary { op, other, acc_is_lhs } => {
                    let Some(&param) = params.params.get(next_param) else {
                        return Err(LowerError::Internal {
                            node,
                            message: "epilogue applied with fewer parameters than it declared".into(),
                        });
                    };
                    next_param += 1;
                    // A splat constant exponent is known at compile time:
                    // x^2 becomes x*x, exact for negative x too.
                    if let (BinaryOp::Pow, true) = (op, acc_is_lhs) {
                        if let Some(e) = splat_constant(ctx, other) {
                            acc = emit_pow_const(b, acc, e);
                            continue;
                        }
                    }
                    let other_dims = ctx.graph.info(other).shape.dims().to_vec();
                    let Some(idx) = broadcast_index(b, out_index, &out_dims, &other_dims) else {
                        return Err(LowerError::Internal {
                            node,
                            message: format!(
                                "epilogue operand of shape {other_dims:?} does not broadcast to {out_dims:?}"
                            ),
                        });
                    };
                    // emit_binary converts its right operand to the left's
                    // type, which is the node's output type (Pow's exponent
                    // may be an integer tensor on either side).
                    let y = b.load(param, idx);
                    acc = if acc_is_lhs { emit_binary(b, op, acc, y) } else { emit_binary(b, op, y, acc) };
                }
            }
        }
        Ok(acc)
    }
}

/// The single value of a constant tensor whose elements are all equal.
pub fn splat_constant(ctx: &LowerCtx, t: TensorId) -> Option<f64> {
    let c = ctx.graph.constants.get(&t)?;
    let first = match &c.data {
        TensorData::F32(v) => *v.first()? as f64,
        TensorData::I32(v) => *v.first()? as f64,
        // 64-bit integers only where f64 holds them (and every neighbour) exactly.
        TensorData::I64(v) => Some(*v.first()?).filter(|x| x.unsigned_abs() < 1 << 53)? as f64,
        TensorData::U64(v) => Some(*v.first()?).filter(|&x| x < 1 << 53)? as f64,
        TensorData::F64(v) => *v.first()?,
        TensorData::Bool(_) => return None,
    };
    c.to_f64().iter().all(|&x| x == first).then_some(first)
}

fn ty_of(b: &KernelBuilder, v: Value) -> Type {
    b.kernel().value_type(v)
}

/// `v` converted to `to` with ONNX `Cast` semantics: identity when the types
/// agree (KIR rejects identity casts), `x != 0` to `bool`, C casts otherwise
/// (floats truncate toward zero going to integers).
pub fn convert(b: &mut KernelBuilder, v: Value, to: Type) -> Value {
    let from = ty_of(b, v);
    if from == to {
        v
    } else if to == Type::Bool {
        let zero = constant(b, from, 0.0);
        b.ne(v, zero)
    } else {
        b.cast(to, v)
    }
}

/// A constant `x` of type `ty` (floats rounded, integers truncated).
fn constant(b: &mut KernelBuilder, ty: Type, x: f64) -> Value {
    if ty.is_float() {
        b.const_float(ty, x)
    } else {
        b.constant(weft_kir::Scalar::from_f64(ty, x))
    }
}

/// Computes `f` in `f32` for a non-float `v` and converts back: the
/// transcendental graph ops are float ops, and ONNX only defines them on
/// floats, so this path exists to never fail rather than for speed.
fn via_f32(b: &mut KernelBuilder, v: Value, f: impl FnOnce(&mut KernelBuilder, Value) -> Value) -> Value {
    let ty = ty_of(b, v);
    let x = convert(b, v, Type::F32);
    let r = f(b, x);
    convert(b, r, ty)
}

/// A graph unary op applied to `v`; the result has `v`'s type. Float types
/// compute in KIR float math; integers keep exact integer arithmetic where the
/// op has one (Relu, Neg, Abs, Clip) and go through `f32` otherwise.
pub fn emit_unary(b: &mut KernelBuilder, op: UnaryOp, v: Value) -> Value {
    let ty = ty_of(b, v);
    if op == UnaryOp::Not {
        let t = convert(b, v, Type::Bool);
        return b.unary(weft_kir::UnaryOp::Not, t);
    }
    if op == UnaryOp::BitwiseNot {
        // KIR's `not` is bitwise on integers; other types (which shape
        // inference refuses) go through i64.
        if ty.is_int() {
            return b.unary(weft_kir::UnaryOp::Not, v);
        }
        let i = convert(b, v, Type::I64);
        let r = b.unary(weft_kir::UnaryOp::Not, i);
        return convert(b, r, ty);
    }
    if op == UnaryOp::Sign {
        // (x > 0) - (x < 0), in x's type; NaN compares false both ways, so
        // it is kept by selecting x itself.
        let z = constant(b, ty, 0.0);
        let one = constant(b, ty, 1.0);
        let minus = constant(b, ty, -1.0);
        let pos = b.gt(v, z);
        let neg = b.lt(v, z);
        let s = b.select(neg, minus, z);
        let s = b.select(pos, one, s);
        let nan = b.ne(v, v);
        return b.select(nan, v, s);
    }
    if ty == Type::Bool {
        return via_f32(b, v, |b, x| emit_unary(b, op, x));
    }
    if !ty.is_float() {
        return match op {
            UnaryOp::Relu => {
                let z = constant(b, ty, 0.0);
                b.max(v, z)
            }
            UnaryOp::Neg => b.neg(v),
            UnaryOp::Abs => b.abs(v),
            UnaryOp::Clip { min, max } => {
                let lo = constant(b, ty, min as f64);
                let hi = constant(b, ty, max as f64);
                let m = b.max(v, lo);
                b.min(m, hi)
            }
            _ => via_f32(b, v, |b, x| emit_unary(b, op, x)),
        };
    }
    match op {
        UnaryOp::Relu => {
            let z = b.const_float(ty, 0.0);
            nan_max(b, v, z)
        }
        UnaryOp::Sigmoid => {
            let one = b.const_float(ty, 1.0);
            let n = b.neg(v);
            let e = b.exp(n);
            let d = b.add(one, e);
            b.div(one, d)
        }
        UnaryOp::Tanh => b.tanh(v),
        UnaryOp::Exp => b.exp(v),
        UnaryOp::Log => b.log(v),
        UnaryOp::Sqrt => b.sqrt(v),
        UnaryOp::Erf => b.erf(v),
        UnaryOp::Neg => b.neg(v),
        UnaryOp::Abs => b.abs(v),
        UnaryOp::Reciprocal => {
            let one = b.const_float(ty, 1.0);
            b.div(one, v)
        }
        UnaryOp::Floor => b.floor(v),
        UnaryOp::Ceil => b.ceil(v),
        UnaryOp::LeakyRelu { alpha } => {
            let z = b.const_float(ty, 0.0);
            let a = b.const_float(ty, alpha as f64);
            let neg = b.lt(v, z);
            let scaled = b.mul(a, v);
            b.select(neg, scaled, v)
        }
        UnaryOp::Clip { min, max } => {
            let lo = b.const_float(ty, min as f64);
            let hi = b.const_float(ty, max as f64);
            let m = nan_max(b, v, lo);
            nan_min(b, m, hi)
        }
        UnaryOp::HardSigmoid { alpha, beta } => {
            let a = b.const_float(ty, alpha as f64);
            let c = b.const_float(ty, beta as f64);
            let lin = b.fma(a, v, c);
            clamp01(b, lin)
        }
        UnaryOp::HardSwish => {
            let six = b.const_float(ty, 6.0);
            let half = b.const_float(ty, 0.5);
            let q = b.div(v, six);
            let lin = b.add(q, half);
            let gate = clamp01(b, lin);
            b.mul(v, gate)
        }
        UnaryOp::Gelu => {
            let half = b.const_float(ty, 0.5);
            let one = b.const_float(ty, 1.0);
            let r2 = b.const_float(ty, std::f64::consts::FRAC_1_SQRT_2);
            let s = b.mul(v, r2);
            let e = b.erf(s);
            let p = b.add(one, e);
            let hx = b.mul(half, v);
            b.mul(hx, p)
        }
        UnaryOp::Softplus => softplus(b, v),
        UnaryOp::Softsign => {
            let one = b.const_float(ty, 1.0);
            let a = b.abs(v);
            let d = b.add(one, a);
            b.div(v, d)
        }
        UnaryOp::Elu { alpha } | UnaryOp::Selu { alpha, .. } => {
            let z = b.const_float(ty, 0.0);
            let one = b.const_float(ty, 1.0);
            let a = b.const_float(ty, alpha as f64);
            let e = b.exp(v);
            let em1 = b.sub(e, one);
            let neg_part = b.mul(a, em1);
            // Elu takes the exponential branch below zero, Selu at zero too
            // (both are 0 there).
            let neg = b.lt(v, z);
            let y = b.select(neg, neg_part, v);
            match op {
                UnaryOp::Selu { gamma, .. } => {
                    let g = b.const_float(ty, gamma as f64);
                    b.mul(g, y)
                }
                _ => y,
            }
        }
        UnaryOp::Celu { alpha } => {
            let z = b.const_float(ty, 0.0);
            let one = b.const_float(ty, 1.0);
            let a = b.const_float(ty, alpha as f64);
            let q = b.div(v, a);
            let e = b.exp(q);
            let em1 = b.sub(e, one);
            let neg_part = b.mul(a, em1);
            let lo = nan_min(b, z, neg_part);
            let hi = nan_max(b, z, v);
            b.add(hi, lo)
        }
        UnaryOp::ThresholdedRelu { alpha } => {
            // NaN compares false, so it is kept.
            let z = b.const_float(ty, 0.0);
            let a = b.const_float(ty, alpha as f64);
            let below = b.le(v, a);
            b.select(below, z, v)
        }
        UnaryOp::Mish => {
            let sp = softplus(b, v);
            let t = b.tanh(sp);
            b.mul(v, t)
        }
        UnaryOp::Sinh | UnaryOp::Cosh => {
            let half = b.const_float(ty, 0.5);
            let e = b.exp(v);
            let n = b.neg(v);
            let en = b.exp(n);
            let s = if op == UnaryOp::Sinh { b.sub(e, en) } else { b.add(e, en) };
            b.mul(half, s)
        }
        UnaryOp::Asinh => {
            // ln(|x| + √(x² + 1)) with x's sign: no cancellation below zero.
            let one = b.const_float(ty, 1.0);
            let z = b.const_float(ty, 0.0);
            let a = b.abs(v);
            let sq = b.fma(v, v, one);
            let r = b.sqrt(sq);
            let s = b.add(a, r);
            let l = b.log(s);
            let nl = b.neg(l);
            let neg = b.lt(v, z);
            b.select(neg, nl, l)
        }
        UnaryOp::Acosh => {
            let one = b.const_float(ty, 1.0);
            let x2 = b.mul(v, v);
            let d = b.sub(x2, one);
            let r = b.sqrt(d);
            let s = b.add(v, r);
            b.log(s)
        }
        UnaryOp::Atanh => {
            let one = b.const_float(ty, 1.0);
            let half = b.const_float(ty, 0.5);
            let p = b.add(one, v);
            let m = b.sub(one, v);
            let q = b.div(p, m);
            let l = b.log(q);
            b.mul(half, l)
        }
        UnaryOp::Sin => b.sin(v),
        UnaryOp::Cos => b.cos(v),
        UnaryOp::Atan => b.atan(v),
        UnaryOp::Tan => {
            let s = b.sin(v);
            let c = b.cos(v);
            b.div(s, c)
        }
        UnaryOp::Asin => {
            // (1 − x)(1 + x) rather than 1 − x², which cancels near |x| = 1;
            // x = ±1 gives atan(±∞) = ±π/2, |x| > 1 the square root's NaN.
            let one = b.const_float(ty, 1.0);
            let m = b.sub(one, v);
            let p = b.add(one, v);
            let d = b.mul(m, p);
            let r = b.sqrt(d);
            let q = b.div(v, r);
            b.atan(q)
        }
        UnaryOp::Acos => {
            // x = −1 gives 2 atan(∞) = π; |x| > 1 a negative ratio's NaN.
            let one = b.const_float(ty, 1.0);
            let two = b.const_float(ty, 2.0);
            let m = b.sub(one, v);
            let p = b.add(one, v);
            let q = b.div(m, p);
            let r = b.sqrt(q);
            let a = b.atan(r);
            b.mul(two, a)
        }
        UnaryOp::Not | UnaryOp::Sign | UnaryOp::BitwiseNot => unreachable!("handled above for every type"),
    }
}

/// `ln(1 + exp(x))` as `max(x, 0) + ln(1 + exp(−|x|))`, which neither
/// overflows for large `x` nor loses small results to `1 + exp(x)`.
fn softplus(b: &mut KernelBuilder, v: Value) -> Value {
    let ty = ty_of(b, v);
    let z = b.const_float(ty, 0.0);
    let one = b.const_float(ty, 1.0);
    let a = b.abs(v);
    let na = b.neg(a);
    let e = b.exp(na);
    let s = b.add(one, e);
    let l = b.log(s);
    let m = nan_max(b, v, z);
    b.add(m, l)
}

/// `max(x, y)` that is NaN when either operand is, as ONNX's Max, Relu,
/// Clip, MaxPool and ReduceMax are (KIR's `max` is C's `fmaxf`, which drops
/// NaN). Integers use `max` as it is.
pub fn nan_max(b: &mut KernelBuilder, x: Value, y: Value) -> Value {
    let m = b.max(x, y);
    propagate_nan(b, x, y, m)
}

/// Whether `v` goes beyond `cur` for a running maximum (`max`) or minimum:
/// strictly above (below), or NaN where `cur` is not — NaN the most extreme
/// value, as [`nan_max`] keeps it. The rule of every argmax-like search.
pub fn nan_beyond(b: &mut KernelBuilder, v: Value, cur: Value, max: bool) -> Value {
    let strictly = if max { b.gt(v, cur) } else { b.lt(v, cur) };
    if !ty_of(b, v).is_float() {
        return strictly;
    }
    let v_nan = b.ne(v, v);
    let cur_nan = b.ne(cur, cur);
    let cur_num = b.not(cur_nan);
    let nan_wins = b.and(v_nan, cur_num);
    b.or(strictly, nan_wins)
}

/// `min(x, y)`, NaN when either operand is.
pub fn nan_min(b: &mut KernelBuilder, x: Value, y: Value) -> Value {
    let m = b.min(x, y);
    propagate_nan(b, x, y, m)
}

fn propagate_nan(b: &mut KernelBuilder, x: Value, y: Value, r: Value) -> Value {
    if !ty_of(b, x).is_float() {
        return r;
    }
    let y_nan = b.ne(y, y);
    let r = b.select(y_nan, y, r);
    let x_nan = b.ne(x, x);
    b.select(x_nan, x, r)
}

fn clamp01(b: &mut KernelBuilder, v: Value) -> Value {
    let ty = ty_of(b, v);
    let z = b.const_float(ty, 0.0);
    let one = b.const_float(ty, 1.0);
    let m = b.min(v, one);
    b.max(m, z)
}

/// A graph binary op on `x` and `y` (`y` is converted to `x`'s type first).
/// Arithmetic results have `x`'s type; `Equal`, `Less` and `Greater` return
/// `bool`. Integer division by zero divides by one instead of trapping (ONNX
/// leaves it undefined; a trap would take down every tenant of the launch).
pub fn emit_binary(b: &mut KernelBuilder, op: BinaryOp, x: Value, y: Value) -> Value {
    let ty = ty_of(b, x);
    let y = convert(b, y, ty);
    if op.is_logical() {
        let (xb, yb) = (convert(b, x, Type::Bool), convert(b, y, Type::Bool));
        return match op {
            BinaryOp::And => b.binary(weft_kir::BinaryOp::And, xb, yb),
            BinaryOp::Or => b.binary(weft_kir::BinaryOp::Or, xb, yb),
            _ => b.binary(weft_kir::BinaryOp::Xor, xb, yb),
        };
    }
    if op.is_bitwise() {
        if ty.is_int() {
            return emit_bitwise(b, op, x, y);
        }
        // Shape inference refuses non-integers; computed on i64 so that
        // lowering never fails.
        let (xi, yi) = (convert(b, x, Type::I64), convert(b, y, Type::I64));
        let r = emit_bitwise(b, op, xi, yi);
        return convert(b, r, ty);
    }
    if ty == Type::Bool && !op.is_comparison() {
        // Arithmetic on booleans: compute on integers, back to bool.
        let xi = convert(b, x, Type::I32);
        let yi = convert(b, y, Type::I32);
        let r = emit_binary(b, op, xi, yi);
        return convert(b, r, Type::Bool);
    }
    match op {
        BinaryOp::Add => b.add(x, y),
        BinaryOp::Sub => b.sub(x, y),
        BinaryOp::Mul => b.mul(x, y),
        BinaryOp::Div if ty.is_float() => b.div(x, y),
        BinaryOp::Div => {
            let zero = constant(b, ty, 0.0);
            let one = constant(b, ty, 1.0);
            let is_zero = b.eq(y, zero);
            let safe = b.select(is_zero, one, y);
            b.div(x, safe)
        }
        BinaryOp::Max => nan_max(b, x, y),
        BinaryOp::Min => nan_min(b, x, y),
        BinaryOp::Pow if ty.is_float() => emit_pow(b, x, y),
        BinaryOp::Pow => {
            let xf = convert(b, x, Type::F32);
            let yf = convert(b, y, Type::F32);
            let r = emit_pow(b, xf, yf);
            convert(b, r, ty)
        }
        BinaryOp::Equal => b.eq(x, y),
        BinaryOp::Less => b.lt(x, y),
        BinaryOp::Greater => b.gt(x, y),
        BinaryOp::LessOrEqual => b.le(x, y),
        BinaryOp::GreaterOrEqual => b.ge(x, y),
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::BitwiseAnd
        | BinaryOp::BitwiseOr
        | BinaryOp::BitwiseXor
        | BinaryOp::BitShift { .. } => unreachable!("handled above"),
        BinaryOp::Mod { fmod } if ty.is_float() => {
            // fmod(x, y) = x - trunc(x / y) * y, except that an infinite
            // divisor leaves a finite x as it is (as C's fmod does).
            let q = b.div(x, y);
            let f = b.floor(q);
            let c = b.ceil(q);
            let z = b.const_float(ty, 0.0);
            let neg = b.lt(q, z);
            let t = b.select(neg, c, f);
            let p = b.mul(t, y);
            let r = b.sub(x, p);
            let inf = b.const_float(ty, f64::INFINITY);
            let (ax, ay) = (b.abs(x), b.abs(y));
            let y_inf = b.eq(ay, inf);
            let x_finite = b.lt(ax, inf);
            let keep = b.and(y_inf, x_finite);
            let r = b.select(keep, x, r);
            if fmod {
                return r;
            }
            // numpy's mod: a non-zero remainder whose sign differs from the
            // divisor's moves by one divisor; a zero takes the divisor's sign.
            let r_neg = b.lt(r, z);
            let y_neg = b.lt(y, z);
            let nonzero = b.ne(r, z);
            let differ = b.ne(r_neg, y_neg);
            let fix = b.and(nonzero, differ);
            let adjusted = b.add(r, y);
            let r = b.select(fix, adjusted, r);
            let nz = b.neg(z);
            let signed_zero = b.select(y_neg, nz, z);
            let is_zero = b.eq(r, z);
            b.select(is_zero, signed_zero, r)
        }
        BinaryOp::Mod { fmod } => {
            // The zero-divisor rule of Div: the divisor counts as one.
            let zero = constant(b, ty, 0.0);
            let one = constant(b, ty, 1.0);
            let is_zero = b.eq(y, zero);
            let safe = b.select(is_zero, one, y);
            let r = b.binary(weft_kir::BinaryOp::Rem, x, safe);
            if fmod {
                r
            } else {
                // Python's sign rule: add the divisor when the remainder is
                // non-zero and its sign differs from the divisor's.
                let r_neg = b.lt(r, zero);
                let y_neg = b.lt(safe, zero);
                let nonzero = b.ne(r, zero);
                let differ = b.ne(r_neg, y_neg);
                let fix = b.binary(weft_kir::BinaryOp::And, nonzero, differ);
                let adjusted = b.add(r, safe);
                b.select(fix, adjusted, r)
            }
        }
    }
}

/// A bitwise op on integers `x` and `y` of one type. KIR's shifts take the
/// amount modulo the bit width, so amounts outside `0..bits` are selected
/// away: a left shift gives 0, a right shift 0 or (signed, negative `x`) −1,
/// which is `x` shifted right by `bits − 1`.
fn emit_bitwise(b: &mut KernelBuilder, op: BinaryOp, x: Value, y: Value) -> Value {
    let ty = ty_of(b, x);
    match op {
        BinaryOp::BitwiseAnd => b.binary(weft_kir::BinaryOp::And, x, y),
        BinaryOp::BitwiseOr => b.binary(weft_kir::BinaryOp::Or, x, y),
        BinaryOp::BitwiseXor => b.binary(weft_kir::BinaryOp::Xor, x, y),
        BinaryOp::BitShift { left } => {
            let bits = ty.int_bits().unwrap_or(32);
            let zero = constant(b, ty, 0.0);
            let width = constant(b, ty, bits as f64);
            let below = b.lt(y, zero);
            let above = b.ge(y, width);
            let outside = b.or(below, above);
            if left {
                let s = b.binary(weft_kir::BinaryOp::Shl, x, y);
                b.select(outside, zero, s)
            } else if ty.is_signed_int() {
                let last = constant(b, ty, (bits - 1) as f64);
                let amount = b.select(outside, last, y);
                b.binary(weft_kir::BinaryOp::Shr, x, amount)
            } else {
                let s = b.binary(weft_kir::BinaryOp::Shr, x, y);
                b.select(outside, zero, s)
            }
        }
        _ => unreachable!("called for bitwise ops only"),
    }
}

/// `x^y` for floats of one type with a run-time exponent:
/// `exp(y · log|x|)`, negated for negative `x` and odd integer `y`, NaN for
/// negative `x` and non-integer `y`, and `1` for `y = 0` (C `pow` semantics).
pub fn emit_pow(b: &mut KernelBuilder, x: Value, y: Value) -> Value {
    let ty = ty_of(b, x);
    let zero = b.const_float(ty, 0.0);
    let one = b.const_float(ty, 1.0);
    let half = b.const_float(ty, 0.5);
    let nan = b.const_float(ty, f64::NAN);
    let ax = b.abs(x);
    let l = b.log(ax);
    let yl = b.mul(y, l);
    let mag = b.exp(yl);
    let yf = b.floor(y);
    let is_int = b.eq(yf, y);
    let hy = b.mul(y, half);
    let hf = b.floor(hy);
    let odd = b.ne(hf, hy);
    let neg = b.lt(x, zero);
    let neg_odd = b.and(neg, odd);
    let flip = b.and(neg_odd, is_int);
    let negated = b.neg(mag);
    let signed = b.select(flip, negated, mag);
    let not_int = b.not(is_int);
    let bad = b.and(neg, not_int);
    let r = b.select(bad, nan, signed);
    let y0 = b.eq(y, zero);
    b.select(y0, one, r)
}

/// `x^e` for a compile-time exponent: small integer powers by repeated
/// multiplication (exact like the reference for `x^2`), `0.5` as `sqrt`,
/// anything else through [`emit_pow`] with a constant exponent.
pub fn emit_pow_const(b: &mut KernelBuilder, x: Value, e: f64) -> Value {
    let ty = ty_of(b, x);
    if !ty.is_float() {
        let xf = convert(b, x, Type::F32);
        let r = emit_pow_const(b, xf, e);
        return convert(b, r, ty);
    }
    if e == 0.5 {
        return b.sqrt(x);
    }
    if e.fract() == 0.0 && e.abs() <= 4.0 {
        let n = e.abs() as u32;
        let mut r = if n == 0 { b.const_float(ty, 1.0) } else { x };
        for _ in 1..n {
            r = b.mul(r, x);
        }
        if e < 0.0 {
            let one = b.const_float(ty, 1.0);
            r = b.div(one, r);
        }
        return r;
    }
    let y = b.const_float(ty, e);
    emit_pow(b, x, y)
}
