//! Arithmetic, comparison, select and cast over lane arrays, with GPU semantics.
//!
//! Each entry point dispatches on the operation and the type *once* and then
//! runs one monomorphised closure over the active lanes (see [`crate::lanes`]),
//! which is what keeps the interpreter fast. The semantics are CUDA's:
//!
//! - `f32` arithmetic is done in `f32` (never widened to `f64`); `fma` is one
//!   rounding (`f32::mul_add`). `f16`/`bf16` are computed in `f32` and rounded
//!   back to the type after every operation. `f64` is computed in `f64`.
//! - Math functions come from the pure-Rust `libm` crate, so results are the
//!   same bits on every host; `rsqrt` is `1 / sqrt`.
//! - Float `min`/`max` return the non-NaN operand (`fminf`/`fmaxf`).
//! - Integer arithmetic wraps at the type's width (8, 16, 32 or 64 bits; C's
//!   promotion of narrow operands to `int` followed by the conversion back
//!   gives the same bits); `div`/`rem` truncate toward zero (C), and a zero
//!   divisor is a fault; shift amounts are taken modulo the bit width.
//!   Unsigned types divide, compare and shift right as unsigned.
//! - Float comparisons are ordered (NaN compares false) except `ne`.
//! - Casts follow C: float→int truncates toward zero and saturates, NaN → 0;
//!   int→float rounds to nearest; int→int wraps; `bool` converts as 0/1 and
//!   anything converts to `bool` as `!= 0`.
//!
//! Lane bits are kept canonical (`Scalar::to_bits`: integers zero-extended from
//! their width, `bool` as 0/1) so that type-agnostic operations (select,
//! shuffles, stores) can move bits without knowing the type.

use half::{bf16, f16};
use weft_kir::{BinaryOp, CmpOp, Type, UnaryOp};

use crate::lanes::{map1, map2, map3, try_map2, Lanes};

/// Why an operation could not be applied.
#[derive(Clone, PartialEq, Debug)]
pub(crate) enum OpFault {
    /// Integer division or remainder by zero in this lane.
    DivisionByZero { lane: usize },
    /// The operation is not defined for the type (the verifier rejects this).
    Unsupported(String),
}

fn unsupported<T>(what: impl std::fmt::Display, ty: Type) -> Result<T, OpFault> {
    Err(OpFault::Unsupported(format!("`{what}` is not defined on `{ty}`")))
}

/// A float type's lane encoding: every float type is computed in `f32`.
trait FloatLane {
    fn get(bits: u64) -> f32;
    fn put(v: f32) -> u64;
}

struct F32;
struct F16;
struct BF16;

impl FloatLane for F32 {
    #[inline(always)]
    fn get(bits: u64) -> f32 {
        f32::from_bits(bits as u32)
    }
    #[inline(always)]
    fn put(v: f32) -> u64 {
        v.to_bits() as u64
    }
}

impl FloatLane for F16 {
    #[inline(always)]
    fn get(bits: u64) -> f32 {
        f16::from_bits(bits as u16).to_f32()
    }
    #[inline(always)]
    fn put(v: f32) -> u64 {
        f16::from_f32(v).to_bits() as u64
    }
}

impl FloatLane for BF16 {
    #[inline(always)]
    fn get(bits: u64) -> f32 {
        bf16::from_bits(bits as u16).to_f32()
    }
    #[inline(always)]
    fn put(v: f32) -> u64 {
        bf16::from_f32(v).to_bits() as u64
    }
}

/// Sign-correct value of integer (and `bool`) lane bits of type `ty`.
#[inline(always)]
pub(crate) fn int_value(ty: Type, bits: u64) -> i64 {
    match ty {
        Type::I32 => bits as u32 as i32 as i64,
        Type::U32 => bits as u32 as i64,
        Type::I16 => bits as u16 as i16 as i64,
        Type::U16 => bits as u16 as i64,
        Type::I8 => bits as u8 as i8 as i64,
        Type::U8 => bits as u8 as i64,
        Type::Bool => (bits & 1) as i64,
        _ => bits as i64,
    }
}

/// Canonical lane bits of integer value `v` converted (wrapping) to `ty`.
#[inline(always)]
pub(crate) fn int_bits(ty: Type, v: i64) -> u64 {
    match ty {
        Type::I32 | Type::U32 => v as u32 as u64,
        Type::I16 | Type::U16 => v as u16 as u64,
        Type::I8 | Type::U8 => v as u8 as u64,
        Type::Bool => (v != 0) as u64,
        _ => v as u64,
    }
}

// Integer kernels are macros rather than generics: each needs the native
// wrapping operations of its Rust type.
macro_rules! int_unary {
    ($t:ty, $put:expr, $op:expr, $ty:expr, $lanes:expr, $dst:expr, $a:expr) => {{
        let put = $put;
        match $op {
            UnaryOp::Neg => map1($lanes, $dst, $a, |x| put((x as $t).wrapping_neg())),
            UnaryOp::Not => map1($lanes, $dst, $a, |x| put(!(x as $t))),
            #[allow(unused_comparisons)]
            UnaryOp::Abs => map1($lanes, $dst, $a, |x| {
                let v = x as $t;
                put(if v < 0 { v.wrapping_neg() } else { v })
            }),
            op => return unsupported(op.name(), $ty),
        }
        Ok(())
    }};
}

macro_rules! int_binary {
    ($t:ty, $put:expr, $op:expr, $ty:expr, $lanes:expr, $dst:expr, $a:expr, $b:expr) => {{
        let put = $put;
        let (lanes, dst, a, b) = ($lanes, $dst, $a, $b);
        match $op {
            BinaryOp::Add => map2(lanes, dst, a, b, |x, y| put((x as $t).wrapping_add(y as $t))),
            BinaryOp::Sub => map2(lanes, dst, a, b, |x, y| put((x as $t).wrapping_sub(y as $t))),
            BinaryOp::Mul => map2(lanes, dst, a, b, |x, y| put((x as $t).wrapping_mul(y as $t))),
            // Wrapping division: MIN / -1 gives MIN, as on the GPU.
            BinaryOp::Div => {
                try_map2(lanes, dst, a, b, |x, y| ((y as $t) != 0).then(|| put((x as $t).wrapping_div(y as $t))))
                    .map_err(|lane| OpFault::DivisionByZero { lane })?
            }
            BinaryOp::Rem => {
                try_map2(lanes, dst, a, b, |x, y| ((y as $t) != 0).then(|| put((x as $t).wrapping_rem(y as $t))))
                    .map_err(|lane| OpFault::DivisionByZero { lane })?
            }
            BinaryOp::Min => map2(lanes, dst, a, b, |x, y| put(std::cmp::min(x as $t, y as $t))),
            BinaryOp::Max => map2(lanes, dst, a, b, |x, y| put(std::cmp::max(x as $t, y as $t))),
            BinaryOp::And => map2(lanes, dst, a, b, |x, y| put((x as $t) & (y as $t))),
            BinaryOp::Or => map2(lanes, dst, a, b, |x, y| put((x as $t) | (y as $t))),
            BinaryOp::Xor => map2(lanes, dst, a, b, |x, y| put((x as $t) ^ (y as $t))),
            // `wrapping_sh*` take the amount modulo the bit width; `shr` is
            // arithmetic on signed types and logical on unsigned ones.
            BinaryOp::Shl => map2(lanes, dst, a, b, |x, y| put((x as $t).wrapping_shl(y as u32))),
            BinaryOp::Shr => map2(lanes, dst, a, b, |x, y| put((x as $t).wrapping_shr(y as u32))),
        }
        let _ = $ty;
        Ok(())
    }};
}

// ---- unary --------------------------------------------------------------

pub(crate) fn unary(op: UnaryOp, ty: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) -> Result<(), OpFault> {
    match ty {
        Type::F32 => float_unary::<F32>(op, ty, lanes, dst, a),
        Type::F16 => float_unary::<F16>(op, ty, lanes, dst, a),
        Type::BF16 => float_unary::<BF16>(op, ty, lanes, dst, a),
        Type::I32 => int_unary!(i32, |v: i32| v as u32 as u64, op, ty, lanes, dst, a),
        Type::U32 => int_unary!(u32, |v: u32| v as u64, op, ty, lanes, dst, a),
        Type::I64 => int_unary!(i64, |v: i64| v as u64, op, ty, lanes, dst, a),
        Type::U64 => int_unary!(u64, |v: u64| v, op, ty, lanes, dst, a),
        Type::I16 => int_unary!(i16, |v: i16| v as u16 as u64, op, ty, lanes, dst, a),
        Type::U16 => int_unary!(u16, |v: u16| v as u64, op, ty, lanes, dst, a),
        Type::I8 => int_unary!(i8, |v: i8| v as u8 as u64, op, ty, lanes, dst, a),
        Type::U8 => int_unary!(u8, |v: u8| v as u64, op, ty, lanes, dst, a),
        Type::F64 => f64_unary(op, ty, lanes, dst, a),
        Type::Bool => match op {
            UnaryOp::Not => {
                map1(lanes, dst, a, |x| (x & 1) ^ 1);
                Ok(())
            }
            _ => unsupported(op.name(), ty),
        },
    }
}

fn float_unary<F: FloatLane>(op: UnaryOp, ty: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) -> Result<(), OpFault> {
    let f: fn(f32) -> f32 = match op {
        UnaryOp::Neg => |x| -x,
        UnaryOp::Abs => f32::abs,
        UnaryOp::Exp => crate::maths::expf,
        UnaryOp::Log => crate::maths::logf,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Rsqrt => |x| 1.0 / x.sqrt(),
        UnaryOp::Tanh => crate::maths::tanhf,
        UnaryOp::Erf => crate::maths::erff,
        UnaryOp::Floor => f32::floor,
        UnaryOp::Ceil => f32::ceil,
        UnaryOp::Sin => crate::maths::sinf,
        UnaryOp::Cos => crate::maths::cosf,
        UnaryOp::Atan => crate::maths::atanf,
        UnaryOp::Not => return unsupported(op.name(), ty),
    };
    // Each arm gets its own monomorphised loop; the cheap ones vectorise.
    match op {
        UnaryOp::Neg => map1(lanes, dst, a, |x| F::put(-F::get(x))),
        UnaryOp::Abs => map1(lanes, dst, a, |x| F::put(F::get(x).abs())),
        UnaryOp::Sqrt => map1(lanes, dst, a, |x| F::put(F::get(x).sqrt())),
        _ => map1(lanes, dst, a, |x| F::put(f(F::get(x)))),
    }
    Ok(())
}

fn f64_unary(op: UnaryOp, ty: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) -> Result<(), OpFault> {
    let get = f64::from_bits;
    match op {
        UnaryOp::Neg => map1(lanes, dst, a, |x| (-get(x)).to_bits()),
        UnaryOp::Abs => map1(lanes, dst, a, |x| get(x).abs().to_bits()),
        UnaryOp::Sqrt => map1(lanes, dst, a, |x| get(x).sqrt().to_bits()),
        UnaryOp::Rsqrt => map1(lanes, dst, a, |x| (1.0 / get(x).sqrt()).to_bits()),
        UnaryOp::Exp => map1(lanes, dst, a, |x| crate::maths::exp(get(x)).to_bits()),
        UnaryOp::Log => map1(lanes, dst, a, |x| crate::maths::log(get(x)).to_bits()),
        UnaryOp::Tanh => map1(lanes, dst, a, |x| crate::maths::tanh(get(x)).to_bits()),
        UnaryOp::Erf => map1(lanes, dst, a, |x| crate::maths::erf(get(x)).to_bits()),
        UnaryOp::Floor => map1(lanes, dst, a, |x| get(x).floor().to_bits()),
        UnaryOp::Ceil => map1(lanes, dst, a, |x| get(x).ceil().to_bits()),
        UnaryOp::Sin => map1(lanes, dst, a, |x| crate::maths::sin(get(x)).to_bits()),
        UnaryOp::Cos => map1(lanes, dst, a, |x| crate::maths::cos(get(x)).to_bits()),
        UnaryOp::Atan => map1(lanes, dst, a, |x| crate::maths::atan(get(x)).to_bits()),
        UnaryOp::Not => return unsupported(op.name(), ty),
    }
    Ok(())
}

// ---- binary -------------------------------------------------------------

pub(crate) fn binary(
    op: BinaryOp,
    ty: Type,
    lanes: Lanes,
    dst: &mut [u64],
    a: &[u64],
    b: &[u64],
) -> Result<(), OpFault> {
    match ty {
        Type::F32 => float_binary::<F32>(op, ty, lanes, dst, a, b),
        Type::F16 => float_binary::<F16>(op, ty, lanes, dst, a, b),
        Type::BF16 => float_binary::<BF16>(op, ty, lanes, dst, a, b),
        Type::I32 => int_binary!(i32, |v: i32| v as u32 as u64, op, ty, lanes, dst, a, b),
        Type::U32 => int_binary!(u32, |v: u32| v as u64, op, ty, lanes, dst, a, b),
        Type::I64 => int_binary!(i64, |v: i64| v as u64, op, ty, lanes, dst, a, b),
        Type::U64 => int_binary!(u64, |v: u64| v, op, ty, lanes, dst, a, b),
        Type::I16 => int_binary!(i16, |v: i16| v as u16 as u64, op, ty, lanes, dst, a, b),
        Type::U16 => int_binary!(u16, |v: u16| v as u64, op, ty, lanes, dst, a, b),
        Type::I8 => int_binary!(i8, |v: i8| v as u8 as u64, op, ty, lanes, dst, a, b),
        Type::U8 => int_binary!(u8, |v: u8| v as u64, op, ty, lanes, dst, a, b),
        Type::F64 => {
            let get = f64::from_bits;
            match op {
                BinaryOp::Add => map2(lanes, dst, a, b, |x, y| (get(x) + get(y)).to_bits()),
                BinaryOp::Sub => map2(lanes, dst, a, b, |x, y| (get(x) - get(y)).to_bits()),
                BinaryOp::Mul => map2(lanes, dst, a, b, |x, y| (get(x) * get(y)).to_bits()),
                BinaryOp::Div => map2(lanes, dst, a, b, |x, y| (get(x) / get(y)).to_bits()),
                BinaryOp::Min => map2(lanes, dst, a, b, |x, y| get(x).min(get(y)).to_bits()),
                BinaryOp::Max => map2(lanes, dst, a, b, |x, y| get(x).max(get(y)).to_bits()),
                _ => return unsupported(op.name(), ty),
            }
            Ok(())
        }
        Type::Bool => {
            match op {
                BinaryOp::And => map2(lanes, dst, a, b, |x, y| x & y & 1),
                BinaryOp::Or => map2(lanes, dst, a, b, |x, y| (x | y) & 1),
                BinaryOp::Xor => map2(lanes, dst, a, b, |x, y| (x ^ y) & 1),
                _ => return unsupported(op.name(), ty),
            }
            Ok(())
        }
    }
}

fn float_binary<F: FloatLane>(
    op: BinaryOp,
    ty: Type,
    lanes: Lanes,
    dst: &mut [u64],
    a: &[u64],
    b: &[u64],
) -> Result<(), OpFault> {
    match op {
        BinaryOp::Add => map2(lanes, dst, a, b, |x, y| F::put(F::get(x) + F::get(y))),
        BinaryOp::Sub => map2(lanes, dst, a, b, |x, y| F::put(F::get(x) - F::get(y))),
        BinaryOp::Mul => map2(lanes, dst, a, b, |x, y| F::put(F::get(x) * F::get(y))),
        BinaryOp::Div => map2(lanes, dst, a, b, |x, y| F::put(F::get(x) / F::get(y))),
        // `f32::min`/`max` return the non-NaN operand, like `fminf`/`fmaxf`.
        BinaryOp::Min => map2(lanes, dst, a, b, |x, y| F::put(F::get(x).min(F::get(y)))),
        BinaryOp::Max => map2(lanes, dst, a, b, |x, y| F::put(F::get(x).max(F::get(y)))),
        _ => return unsupported(op.name(), ty),
    }
    Ok(())
}

// ---- fma ------------------------------------------------------------------

pub(crate) fn fma(ty: Type, lanes: Lanes, dst: &mut [u64], a: &[u64], b: &[u64], c: &[u64]) -> Result<(), OpFault> {
    match ty {
        Type::F32 => map3(lanes, dst, a, b, c, |x, y, z| F32::put(F32::get(x).mul_add(F32::get(y), F32::get(z)))),
        Type::F16 => map3(lanes, dst, a, b, c, |x, y, z| F16::put(F16::get(x).mul_add(F16::get(y), F16::get(z)))),
        Type::BF16 => map3(lanes, dst, a, b, c, |x, y, z| BF16::put(BF16::get(x).mul_add(BF16::get(y), BF16::get(z)))),
        Type::I32 | Type::U32 => {
            map3(lanes, dst, a, b, c, |x, y, z| (x as u32).wrapping_mul(y as u32).wrapping_add(z as u32) as u64)
        }
        Type::I64 | Type::U64 => map3(lanes, dst, a, b, c, |x, y, z| x.wrapping_mul(y).wrapping_add(z)),
        Type::I16 | Type::U16 => {
            map3(lanes, dst, a, b, c, |x, y, z| (x as u16).wrapping_mul(y as u16).wrapping_add(z as u16) as u64)
        }
        Type::I8 | Type::U8 => {
            map3(lanes, dst, a, b, c, |x, y, z| (x as u8).wrapping_mul(y as u8).wrapping_add(z as u8) as u64)
        }
        Type::F64 => map3(lanes, dst, a, b, c, |x, y, z| {
            f64::from_bits(x).mul_add(f64::from_bits(y), f64::from_bits(z)).to_bits()
        }),
        Type::Bool => return unsupported("fma", ty),
    }
    Ok(())
}

// ---- compare and select ---------------------------------------------------

pub(crate) fn cmp(op: CmpOp, ty: Type, lanes: Lanes, dst: &mut [u64], a: &[u64], b: &[u64]) {
    macro_rules! compare {
        ($conv:expr) => {{
            let conv = $conv;
            match op {
                CmpOp::Eq => map2(lanes, dst, a, b, |x, y| (conv(x) == conv(y)) as u64),
                CmpOp::Ne => map2(lanes, dst, a, b, |x, y| (conv(x) != conv(y)) as u64),
                CmpOp::Lt => map2(lanes, dst, a, b, |x, y| (conv(x) < conv(y)) as u64),
                CmpOp::Le => map2(lanes, dst, a, b, |x, y| (conv(x) <= conv(y)) as u64),
                CmpOp::Gt => map2(lanes, dst, a, b, |x, y| (conv(x) > conv(y)) as u64),
                CmpOp::Ge => map2(lanes, dst, a, b, |x, y| (conv(x) >= conv(y)) as u64),
            }
        }};
    }
    // Rust's float comparisons are IEEE ordered ones, `!=` unordered: exactly
    // the KIR rule. Integers compare by their sign-correct value.
    match ty {
        Type::F32 => compare!(F32::get),
        Type::F16 => compare!(F16::get),
        Type::BF16 => compare!(BF16::get),
        Type::I32 => compare!(|x: u64| x as u32 as i32),
        Type::U32 => compare!(|x: u64| x as u32),
        Type::I64 => compare!(|x: u64| x as i64),
        Type::U64 => compare!(|x: u64| x),
        Type::I16 => compare!(|x: u64| x as u16 as i16),
        Type::U16 => compare!(|x: u64| x as u16),
        Type::I8 => compare!(|x: u64| x as u8 as i8),
        Type::U8 => compare!(|x: u64| x as u8),
        Type::F64 => compare!(f64::from_bits),
        Type::Bool => compare!(|x: u64| x & 1),
    }
}

pub(crate) fn select(lanes: Lanes, dst: &mut [u64], cond: &[u64], t: &[u64], f: &[u64]) {
    map3(lanes, dst, cond, t, f, |c, t, f| if c & 1 != 0 { t } else { f });
}

// ---- cast -------------------------------------------------------------------

/// A source type of a cast: how to read its lane bits as an integer or a float.
trait CastSource {
    const FLOAT: bool;
    fn int(bits: u64) -> i64;
    fn float(bits: u64) -> f32;
}

macro_rules! int_source {
    ($name:ident, $conv:expr) => {
        struct $name;
        impl CastSource for $name {
            const FLOAT: bool = false;
            #[inline(always)]
            fn int(bits: u64) -> i64 {
                $conv(bits)
            }
            #[inline(always)]
            fn float(bits: u64) -> f32 {
                Self::int(bits) as f32
            }
        }
    };
}

int_source!(BoolSrc, |b: u64| (b & 1) as i64);
int_source!(I32Src, |b: u64| b as u32 as i32 as i64);
int_source!(U32Src, |b: u64| b as u32 as i64);
int_source!(I64Src, |b: u64| b as i64);

impl<F: FloatLane> CastSource for F {
    const FLOAT: bool = true;
    #[inline(always)]
    fn int(bits: u64) -> i64 {
        F::get(bits) as i64
    }
    #[inline(always)]
    fn float(bits: u64) -> f32 {
        F::get(bits)
    }
}

/// Whether a cast between `from` and `to` takes the general path (the
/// 8-, 16- and unsigned 64-bit integers and `f64`); the others have
/// monomorphised loops.
fn wide_cast(from: Type, to: Type) -> bool {
    let general = |t: Type| matches!(t, Type::I8 | Type::U8 | Type::I16 | Type::U16 | Type::U64 | Type::F64);
    general(from) || general(to)
}

/// A lane's value, exactly: integers as `i128`, floats widened to `f64`.
#[derive(Copy, Clone)]
enum Value {
    Int(i128),
    Float(f64),
}

fn value_of(ty: Type, bits: u64) -> Value {
    let s = weft_kir::Scalar::from_bits(ty, bits);
    match s.as_i128() {
        Some(v) => Value::Int(v),
        None => Value::Float(s.to_f64()),
    }
}

/// The C conversion of `v` to `to`, as canonical lane bits: integers wrap to
/// the width, floats truncate toward zero and saturate (NaN → 0) into
/// integers, and round to nearest into floats (once, from the exact value).
fn convert_value(v: Value, to: Type) -> u64 {
    use weft_kir::Scalar;
    match (v, to) {
        (Value::Int(i), Type::Bool) => (i != 0) as u64,
        (Value::Float(f), Type::Bool) => (f != 0.0) as u64,
        (Value::Int(i), t) if t.is_int() => Scalar::from_int(t, i).map_or(0, Scalar::to_bits),
        (Value::Float(f), t) if t.is_int() => Scalar::from_f64(t, f).to_bits(),
        (Value::Float(f), Type::F32) => F32::put(f64_to_f32(f)),
        (Value::Float(f), Type::F16) => F16::put(f64_to_f32_odd(f)),
        (Value::Float(f), Type::BF16) => BF16::put(f64_to_f32_odd(f)),
        (Value::Float(f), t) => Scalar::from_f64(t, f).to_bits(),
        (Value::Int(i), Type::F32) => F32::put(i as f32),
        (Value::Int(i), t) => Scalar::from_f64(t, i as f64).to_bits(),
    }
}

/// A double's NaN as `f32`: quiet, with the sign and top payload bits.
fn f64_nan_to_f32(d: f64) -> f32 {
    let x = d.to_bits();
    f32::from_bits(((x >> 32) as u32 & 0x8000_0000) | 0x7fc0_0000 | ((x >> 29) as u32 & 0x7f_ffff))
}

/// `f64` to `f32`, rounded to nearest (NaNs by [`f64_nan_to_f32`]).
pub(crate) fn f64_to_f32(d: f64) -> f32 {
    if d.is_nan() {
        f64_nan_to_f32(d)
    } else {
        d as f32
    }
}

/// `f64` to `f32` rounded toward zero with a sticky last bit: rounding the
/// result once more to `f16`/`bf16` equals rounding `d` directly (the
/// emitted C computes it the same way).
fn f64_to_f32_odd(d: f64) -> f32 {
    if d.is_nan() {
        return f64_nan_to_f32(d);
    }
    let mut f = d as f32;
    // Step back toward zero when nearest rounding went away from it.
    if f.is_infinite() && d.is_finite() {
        f = f32::MAX.copysign(d as f32);
    } else if (f as f64).abs() > d.abs() {
        f = f32::from_bits(f.to_bits() - 1);
    }
    if f as f64 != d && f.is_finite() {
        f = f32::from_bits(f.to_bits() | 1);
    }
    f
}

pub(crate) fn cast(from: Type, to: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) {
    match from {
        _ if wide_cast(from, to) => map1(lanes, dst, a, |x| convert_value(value_of(from, x), to)),
        Type::Bool => cast_from::<BoolSrc>(from, to, lanes, dst, a),
        Type::I32 => cast_from::<I32Src>(from, to, lanes, dst, a),
        Type::U32 => cast_from::<U32Src>(from, to, lanes, dst, a),
        Type::I64 => cast_from::<I64Src>(from, to, lanes, dst, a),
        Type::F32 => cast_from::<F32>(from, to, lanes, dst, a),
        Type::F16 => cast_from::<F16>(from, to, lanes, dst, a),
        Type::BF16 => cast_from::<BF16>(from, to, lanes, dst, a),
        _ => map1(lanes, dst, a, |x| convert_value(value_of(from, x), to)),
    }
}

/// Reinterprets same-size bits: lanes hold every type's bits zero-extended
/// (`Scalar::to_bits`), so only a `bool` result needs canonicalising.
pub(crate) fn bitcast(to: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) {
    match to {
        Type::Bool => map1(lanes, dst, a, |x| (x != 0) as u64),
        _ => map1(lanes, dst, a, |x| x),
    }
}

fn cast_from<S: CastSource>(from: Type, to: Type, lanes: Lanes, dst: &mut [u64], a: &[u64]) {
    // Rust's float-to-int `as` truncates toward zero, saturates and maps NaN
    // to 0; int-to-float `as` rounds to nearest: C semantics as the GPU
    // implements them (`cvt.rzi.sat`, `cvt.rn`).
    match to {
        Type::Bool if S::FLOAT => map1(lanes, dst, a, |x| (S::float(x) != 0.0) as u64),
        Type::Bool => map1(lanes, dst, a, |x| (S::int(x) != 0) as u64),
        Type::I32 if S::FLOAT => map1(lanes, dst, a, |x| S::float(x) as i32 as u32 as u64),
        Type::U32 if S::FLOAT => map1(lanes, dst, a, |x| S::float(x) as u32 as u64),
        Type::I64 if S::FLOAT => map1(lanes, dst, a, |x| S::float(x) as i64 as u64),
        Type::I32 | Type::U32 | Type::I64 => map1(lanes, dst, a, |x| int_bits(to, S::int(x))),
        Type::F32 if S::FLOAT => map1(lanes, dst, a, |x| F32::put(S::float(x))),
        Type::F32 => map1(lanes, dst, a, |x| F32::put(S::int(x) as f32)),
        // Every f16/bf16 value is exact in f32, so float→half rounds once;
        // integers go through f64 (exact up to 2^53, far beyond half's range).
        Type::F16 if S::FLOAT => map1(lanes, dst, a, |x| F16::put(S::float(x))),
        Type::F16 => map1(lanes, dst, a, |x| f16::from_f64(S::int(x) as f64).to_bits() as u64),
        Type::BF16 if S::FLOAT => map1(lanes, dst, a, |x| BF16::put(S::float(x))),
        Type::BF16 => map1(lanes, dst, a, |x| bf16::from_f64(S::int(x) as f64).to_bits() as u64),
        _ => map1(lanes, dst, a, |x| convert_value(value_of(from, x), to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_binary(op: BinaryOp, ty: Type, a: u64, b: u64) -> Result<u64, OpFault> {
        let mut dst = [0u64];
        binary(op, ty, Lanes::All(1), &mut dst, &[a], &[b])?;
        Ok(dst[0])
    }

    #[test]
    fn bitcast_keeps_bits_and_canonical_bools() {
        let mut dst = [0u64; 3];
        bitcast(Type::I32, Lanes::All(2), &mut dst, &[1.0f32.to_bits() as u64, (-2.0f32).to_bits() as u64]);
        assert_eq!(&dst[..2], &[0x3f80_0000, 0xc000_0000]);
        // Any set bit is `true`, stored as 1.
        bitcast(Type::Bool, Lanes::All(3), &mut dst, &[0, 0x80, 1]);
        assert_eq!(dst, [0, 1, 1]);
    }

    #[test]
    fn int_division_truncates_and_faults_on_zero() {
        let m7 = (-7i32) as u32 as u64;
        assert_eq!(run_binary(BinaryOp::Div, Type::I32, m7, 2).unwrap(), (-3i32) as u32 as u64);
        assert_eq!(run_binary(BinaryOp::Rem, Type::I32, m7, 2).unwrap(), (-1i32) as u32 as u64);
        assert_eq!(run_binary(BinaryOp::Div, Type::I32, 5, 0), Err(OpFault::DivisionByZero { lane: 0 }));
        let min = i32::MIN as u32 as u64;
        let m1 = (-1i32) as u32 as u64;
        assert_eq!(run_binary(BinaryOp::Div, Type::I32, min, m1).unwrap(), min);
    }

    #[test]
    fn half_casts_round_once() {
        let mut dst = [0u64];
        cast(Type::I32, Type::F16, Lanes::All(1), &mut dst, &[2049]);
        assert_eq!(f16::from_bits(dst[0] as u16).to_f32(), 2048.0);
        cast(Type::F32, Type::U32, Lanes::All(1), &mut dst, &[(-3.5f32).to_bits() as u64]);
        assert_eq!(dst[0], 0);
    }

    #[test]
    fn bool_ops_keep_canonical_bits() {
        assert_eq!(run_binary(BinaryOp::Xor, Type::Bool, 1, 1).unwrap(), 0);
        assert!(matches!(run_binary(BinaryOp::Add, Type::Bool, 1, 1), Err(OpFault::Unsupported(_))));
        let mut dst = [7u64];
        unary(UnaryOp::Not, Type::Bool, Lanes::All(1), &mut dst, &[0]).unwrap();
        assert_eq!(dst[0], 1);
    }
}
