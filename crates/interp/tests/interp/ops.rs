//! Every unary, binary, comparison and cast on every type, against Rust
//! references. Each test runs one kernel per (op, type) over all pairs of a
//! set of interesting values (zeros, signs, extremes, NaN, infinities).

use half::{bf16, f16};
use weft_interp::InterpError;
use weft_kir::{
    Access, ArgValue, Axis, BinaryOp, CmpOp, KernelBuilder, KernelDef, LaunchShape, Scalar, Type, UnaryOp, Value,
};

use crate::common::{buffer, find_inst, i32s, out, run, zeros};

fn float_samples() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        2.5,
        3.0,
        -7.25,
        0.1,
        1e-30,
        65504.0,
        1e30,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.5,
        -2.5,
    ]
}

fn samples(ty: Type) -> Vec<Scalar> {
    match ty {
        Type::Bool => vec![Scalar::Bool(false), Scalar::Bool(true)],
        Type::I32 => [0, 1, -1, 2, 7, -7, 31, 32, 33, -33, 123_456, i32::MAX, i32::MIN, i32::MIN + 1]
            .into_iter()
            .map(Scalar::I32)
            .collect(),
        Type::U32 => [0, 1, 2, 7, 31, 32, 33, 123_456, u32::MAX, 0x8000_0000, u32::MAX - 1]
            .into_iter()
            .map(Scalar::U32)
            .collect(),
        Type::I64 => [0, 1, -1, 7, -7, 63, 64, 65, 1 << 40, -(1 << 40), i64::MAX, i64::MIN]
            .into_iter()
            .map(Scalar::I64)
            .collect(),
        Type::F32 => float_samples().into_iter().map(Scalar::F32).collect(),
        Type::F16 => float_samples().into_iter().map(|v| Scalar::F16(f16::from_f32(v))).collect(),
        Type::BF16 => float_samples().into_iter().map(|v| Scalar::BF16(bf16::from_f32(v))).collect(),
        Type::I8 => [0, 1, -1, 2, 7, -7, 8, 9, 100, -100, i8::MAX, i8::MIN, i8::MIN + 1].map(Scalar::I8).to_vec(),
        Type::U8 => [0, 1, 2, 7, 8, 9, 100, 200, 0x80, u8::MAX, u8::MAX - 1].map(Scalar::U8).to_vec(),
        Type::I16 => [0, 1, -1, 7, -7, 15, 16, 17, 300, -300, i16::MAX, i16::MIN].map(Scalar::I16).to_vec(),
        Type::U16 => [0, 1, 2, 15, 16, 17, 300, 40_000, 0x8000, u16::MAX].map(Scalar::U16).to_vec(),
        Type::U64 => {
            [0, 1, 2, 63, 64, 65, 1 << 40, (1 << 53) + 1, 1 << 63, u64::MAX, u64::MAX - 1].map(Scalar::U64).to_vec()
        }
        Type::F64 => {
            let mut v: Vec<Scalar> = float_samples().into_iter().map(|v| Scalar::F64(v as f64)).collect();
            // Values only f64 holds: more precision and range than f32.
            v.extend([0.1, 1.0 + f64::EPSILON, 1e300, -1e-300, std::f64::consts::PI].map(Scalar::F64));
            v
        }
    }
}

fn as_f64(s: Scalar) -> f64 {
    s.to_f64()
}

/// `v` rounded to float type `ty` (a single rounding from f64).
fn round_to(ty: Type, v: f64) -> Scalar {
    match ty {
        Type::F32 => Scalar::F32(v as f32),
        Type::F16 => Scalar::F16(f16::from_f64(v)),
        Type::F64 => Scalar::F64(v),
        _ => Scalar::BF16(bf16::from_f64(v)),
    }
}

/// Bit equality, treating any two NaNs as equal.
fn same(a: Scalar, b: Scalar) -> bool {
    let nan = |s: Scalar| s.ty().is_float() && s.to_f64().is_nan();
    a.to_bits() == b.to_bits() || (nan(a) && nan(b))
}

/// Builds `out[i] = f(loads of inputs[..][i])` over `n` lanes (ragged last block).
fn elementwise(
    name: &str,
    inputs: &[Type],
    out_ty: Type,
    n: usize,
    f: impl FnOnce(&mut KernelBuilder, &[Value]) -> Value,
) -> KernelDef {
    let threads = 64;
    let mut b = KernelBuilder::new(name, LaunchShape::linear(n.div_ceil(threads) as u32, threads as u32));
    let params: Vec<_> =
        inputs.iter().enumerate().map(|(j, &ty)| b.buffer(&format!("in{j}"), ty, n as u64, Access::Read)).collect();
    let dst = b.buffer("out", out_ty, n as u64, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let limit = b.const_i32(n as i32);
    let ok = b.lt(i, limit);
    b.if_(ok, |b| {
        let vals: Vec<Value> = params.iter().map(|&p| b.load(p, i)).collect();
        let r = f(b, &vals);
        b.store(dst, i, r);
    });
    b.finish()
}

/// Runs an elementwise kernel over columns of inputs; returns the output.
fn run_columns(kernel: &KernelDef, inputs: &[(Type, Vec<Scalar>)], out_ty: Type) -> Vec<Scalar> {
    let n = inputs[0].1.len();
    let mut args: Vec<ArgValue> = inputs.iter().map(|(ty, v)| buffer(*ty, v)).collect();
    args.push(zeros(out_ty, n));
    run(kernel, &mut args).unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
    let o = out(&args, inputs.len());
    (0..n).map(|i| o.get(i)).collect()
}

fn valid_binary(op: BinaryOp, ty: Type) -> bool {
    match ty {
        Type::Bool => op.is_bitwise(),
        t if t.is_float() => op.is_arith(),
        _ => true,
    }
}

/// The reference: `None` where the result is an error (zero divisor).
fn ref_binary(op: BinaryOp, a: Scalar, b: Scalar) -> Option<Scalar> {
    use BinaryOp::*;
    macro_rules! int {
        ($x:expr, $y:expr, $ctor:path) => {{
            let (x, y) = ($x, $y);
            Some($ctor(match op {
                Add => x.wrapping_add(y),
                Sub => x.wrapping_sub(y),
                Mul => x.wrapping_mul(y),
                Div if y == 0 => return None,
                Rem if y == 0 => return None,
                Div => x.wrapping_div(y),
                Rem => x.wrapping_rem(y),
                Min => x.min(y),
                Max => x.max(y),
                And => x & y,
                Or => x | y,
                Xor => x ^ y,
                Shl => x.wrapping_shl(y as u32),
                Shr => x.wrapping_shr(y as u32),
            }))
        }};
    }
    match (a, b) {
        (Scalar::I32(x), Scalar::I32(y)) => int!(x, y, Scalar::I32),
        (Scalar::U32(x), Scalar::U32(y)) => int!(x, y, Scalar::U32),
        (Scalar::I64(x), Scalar::I64(y)) => int!(x, y, Scalar::I64),
        (Scalar::I8(x), Scalar::I8(y)) => int!(x, y, Scalar::I8),
        (Scalar::U8(x), Scalar::U8(y)) => int!(x, y, Scalar::U8),
        (Scalar::I16(x), Scalar::I16(y)) => int!(x, y, Scalar::I16),
        (Scalar::U16(x), Scalar::U16(y)) => int!(x, y, Scalar::U16),
        (Scalar::U64(x), Scalar::U64(y)) => int!(x, y, Scalar::U64),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(Scalar::Bool(match op {
            And => x & y,
            Or => x | y,
            _ => x ^ y,
        })),
        _ => {
            // Floats: exact in f64, then one rounding to the type, which equals
            // the correctly rounded result for +-*/ (f64 has > 2p+2 bits).
            let (x, y) = (as_f64(a), as_f64(b));
            let r = match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Div => x / y,
                Min => x.min(y),
                Max => x.max(y),
                _ => unreachable!(),
            };
            Some(round_to(a.ty(), r))
        }
    }
}

#[test]
fn every_binary_op_on_every_type() {
    for ty in Type::ALL {
        let s = samples(ty);
        for op in BinaryOp::ALL.into_iter().filter(|&op| valid_binary(op, ty)) {
            // Pairs whose reference is defined (division by zero is its own test).
            let pairs: Vec<(Scalar, Scalar, Scalar)> = s
                .iter()
                .flat_map(|&a| s.iter().map(move |&b| (a, b)))
                .filter_map(|(a, b)| ref_binary(op, a, b).map(|r| (a, b, r)))
                .collect();
            let k = elementwise(&format!("{}_{ty}", op.name()), &[ty, ty], ty, pairs.len(), |b, v| {
                b.binary(op, v[0], v[1])
            });
            let got = run_columns(
                &k,
                &[(ty, pairs.iter().map(|p| p.0).collect()), (ty, pairs.iter().map(|p| p.1).collect())],
                ty,
            );
            for ((a, b, want), got) in pairs.iter().zip(got) {
                // min/max of +0 and -0 may return either zero, as fminf may.
                let zeros = matches!(op, BinaryOp::Min | BinaryOp::Max) && got.to_f64() == 0.0 && want.to_f64() == 0.0;
                assert!(same(got, *want) || zeros, "{} {ty}: {a} {b} gave {got}, want {want}", op.name());
            }
        }
    }
}

#[test]
fn c_division_and_wrapping_spot_checks() {
    let cases = [
        (BinaryOp::Div, -7, 2, -3),
        (BinaryOp::Rem, -7, 2, -1),
        (BinaryOp::Rem, 7, -2, 1),
        (BinaryOp::Div, i32::MIN, -1, i32::MIN),
        (BinaryOp::Add, i32::MAX, 1, i32::MIN),
        (BinaryOp::Shl, 1, 33, 2),
        (BinaryOp::Shr, -16, 2, -4),
        (BinaryOp::Shl, 1, -1, i32::MIN),
    ];
    for (op, a, b, want) in cases {
        let got = ref_binary(op, Scalar::I32(a), Scalar::I32(b)).unwrap();
        assert_eq!(got, Scalar::I32(want), "reference {} {a} {b}", op.name());
        let k = elementwise("spot", &[Type::I32, Type::I32], Type::I32, 1, |bl, v| bl.binary(op, v[0], v[1]));
        let got = run_columns(&k, &[(Type::I32, vec![Scalar::I32(a)]), (Type::I32, vec![Scalar::I32(b)])], Type::I32);
        assert_eq!(got[0], Scalar::I32(want), "{} {a} {b}", op.name());
    }
    // u32 shifts are logical, i64 ones take the amount mod 64.
    let k = elementwise("shr_u32", &[Type::U32, Type::U32], Type::U32, 1, |bl, v| bl.shr(v[0], v[1]));
    let got =
        run_columns(&k, &[(Type::U32, vec![Scalar::U32(0x8000_0000)]), (Type::U32, vec![Scalar::U32(31)])], Type::U32);
    assert_eq!(got[0], Scalar::U32(1));
    let k = elementwise("shl_i64", &[Type::I64, Type::I64], Type::I64, 1, |bl, v| bl.shl(v[0], v[1]));
    let got = run_columns(&k, &[(Type::I64, vec![Scalar::I64(3)]), (Type::I64, vec![Scalar::I64(65)])], Type::I64);
    assert_eq!(got[0], Scalar::I64(6));
}

/// Runs `a op b` for one lane of `a`'s type.
fn one_binary(op: BinaryOp, a: Scalar, b: Scalar) -> Scalar {
    let ty = a.ty();
    let k = elementwise("one", &[ty, ty], ty, 1, |bl, v| bl.binary(op, v[0], v[1]));
    run_columns(&k, &[(ty, vec![a]), (ty, vec![b])], ty)[0]
}

#[test]
fn narrow_unsigned_and_f64_spot_checks() {
    use BinaryOp::*;
    // Hand-computed: wrapping at 8 and 16 bits, unsigned division and
    // shifts, 64-bit unsigned values above i64::MAX, f64 precision.
    let cases = [
        (Add, Scalar::I8(127), Scalar::I8(1), Scalar::I8(-128)),
        (Div, Scalar::I8(-128), Scalar::I8(-1), Scalar::I8(-128)),
        (Mul, Scalar::I8(16), Scalar::I8(16), Scalar::I8(0)),
        (Add, Scalar::U8(200), Scalar::U8(100), Scalar::U8(44)),
        (Sub, Scalar::U8(0), Scalar::U8(1), Scalar::U8(255)),
        (Div, Scalar::U8(200), Scalar::U8(3), Scalar::U8(66)),
        (Rem, Scalar::U8(200), Scalar::U8(7), Scalar::U8(4)),
        (Shr, Scalar::U8(0x80), Scalar::U8(7), Scalar::U8(1)),
        (Shr, Scalar::I8(-128), Scalar::I8(7), Scalar::I8(-1)),
        (Shl, Scalar::U8(1), Scalar::U8(9), Scalar::U8(2)),
        (Mul, Scalar::I16(300), Scalar::I16(300), Scalar::I16(24_464)),
        (Shr, Scalar::I16(-16), Scalar::I16(2), Scalar::I16(-4)),
        (Div, Scalar::U16(65_535), Scalar::U16(256), Scalar::U16(255)),
        (Max, Scalar::U16(40_000), Scalar::U16(100), Scalar::U16(40_000)),
        (Div, Scalar::U64(u64::MAX), Scalar::U64(2), Scalar::U64(9_223_372_036_854_775_807)),
        (Max, Scalar::U64(1 << 63), Scalar::U64(1), Scalar::U64(9_223_372_036_854_775_808)),
        (Add, Scalar::U64(u64::MAX), Scalar::U64(2), Scalar::U64(1)),
        (Add, Scalar::F64(0.1), Scalar::F64(0.2), Scalar::F64(0.300_000_000_000_000_04)),
        (Sub, Scalar::F64(1.0 + f64::EPSILON), Scalar::F64(1.0), Scalar::F64(2.220_446_049_250_313e-16)),
        (Mul, Scalar::F64(1e200), Scalar::F64(1e100), Scalar::F64(1e300)),
    ];
    for (op, a, b, want) in cases {
        assert_eq!(one_binary(op, a, b), want, "{} {a} {b}", op.name());
    }
    // Unsigned comparison: 200 > 100 as u8 (as i8, -56 < 100).
    let k = elementwise("gt_u8", &[Type::U8, Type::U8], Type::Bool, 1, |bl, v| bl.cmp(CmpOp::Gt, v[0], v[1]));
    let got = run_columns(&k, &[(Type::U8, vec![Scalar::U8(200)]), (Type::U8, vec![Scalar::U8(100)])], Type::Bool);
    assert_eq!(got[0], Scalar::Bool(true));
    let k = elementwise("lt_u64", &[Type::U64, Type::U64], Type::Bool, 1, |bl, v| bl.cmp(CmpOp::Lt, v[0], v[1]));
    let got =
        run_columns(&k, &[(Type::U64, vec![Scalar::U64(1)]), (Type::U64, vec![Scalar::U64(1 << 63)])], Type::Bool);
    assert_eq!(got[0], Scalar::Bool(true));
    // A zero divisor faults for every integer width, as for i32.
    for ty in [Type::I8, Type::U8, Type::I16, Type::U16, Type::U64] {
        let k = elementwise("div0", &[ty, ty], ty, 1, |bl, v| bl.binary(Div, v[0], v[1]));
        let mut args =
            vec![buffer(ty, &[Scalar::from_f64(ty, 5.0)]), buffer(ty, &[Scalar::from_f64(ty, 0.0)]), zeros(ty, 1)];
        assert!(run(&k, &mut args).is_err(), "{ty} division by zero ran");
    }
    // f64 -> f16 rounds once: 1 + 2^-11 + 2^-40 is above the halfway point
    // between 1 and the next f16 (1 + 2^-10), so it rounds up; through f32
    // it would first round to the halfway point and then to even (1).
    let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
    let k = elementwise("f64_f16", &[Type::F64], Type::F16, 1, |bl, v| bl.cast(Type::F16, v[0]));
    let got = run_columns(&k, &[(Type::F64, vec![Scalar::F64(x)])], Type::F16);
    assert_eq!(got[0], Scalar::F16(f16::from_bits(0x3c01)));
}

#[test]
fn float_min_max_return_the_non_nan_operand() {
    for ty in [Type::F32, Type::F16, Type::BF16] {
        let nan = Scalar::from_f64(ty, f64::NAN);
        let two = Scalar::from_f64(ty, 2.0);
        for op in [BinaryOp::Min, BinaryOp::Max] {
            let k = elementwise("minmax", &[ty, ty], ty, 2, |b, v| b.binary(op, v[0], v[1]));
            let got = run_columns(&k, &[(ty, vec![nan, two]), (ty, vec![two, nan])], ty);
            assert_eq!(got, vec![two, two], "{} {ty}", op.name());
        }
    }
}

/// Distance in units in the last place between two floats of one type.
fn ulps(a: Scalar, b: Scalar) -> u64 {
    let key = |s: Scalar| {
        let (bits, sign) = match s {
            Scalar::F64(v) => (v.to_bits() as i128, 1i128 << 63),
            Scalar::F32(v) => (v.to_bits() as i128, 1i128 << 31),
            Scalar::F16(v) => (v.to_bits() as i128, 1 << 15),
            Scalar::BF16(v) => (v.to_bits() as i128, 1 << 15),
            _ => unreachable!(),
        };
        if bits & sign != 0 {
            -(bits & (sign - 1))
        } else {
            bits
        }
    };
    key(a).abs_diff(key(b)).min(u64::MAX as u128) as u64
}

fn ref_unary(op: UnaryOp, a: Scalar) -> Option<(Scalar, u64)> {
    use UnaryOp::*;
    let exact = |s: Scalar| Some((s, 0));
    match a {
        Scalar::Bool(x) => (op == Not).then_some((Scalar::Bool(!x), 0)),
        Scalar::I32(x) => match op {
            Neg => exact(Scalar::I32(x.wrapping_neg())),
            Not => exact(Scalar::I32(!x)),
            Abs => exact(Scalar::I32(x.wrapping_abs())),
            _ => None,
        },
        Scalar::U32(x) => match op {
            Neg => exact(Scalar::U32(x.wrapping_neg())),
            Not => exact(Scalar::U32(!x)),
            Abs => exact(Scalar::U32(x)),
            _ => None,
        },
        Scalar::I64(x) => match op {
            Neg => exact(Scalar::I64(x.wrapping_neg())),
            Not => exact(Scalar::I64(!x)),
            Abs => exact(Scalar::I64(x.wrapping_abs())),
            _ => None,
        },
        Scalar::I8(x) => match op {
            Neg => exact(Scalar::I8(x.wrapping_neg())),
            Not => exact(Scalar::I8(!x)),
            Abs => exact(Scalar::I8(x.wrapping_abs())),
            _ => None,
        },
        Scalar::I16(x) => match op {
            Neg => exact(Scalar::I16(x.wrapping_neg())),
            Not => exact(Scalar::I16(!x)),
            Abs => exact(Scalar::I16(x.wrapping_abs())),
            _ => None,
        },
        Scalar::U8(x) => match op {
            Neg => exact(Scalar::U8(x.wrapping_neg())),
            Not => exact(Scalar::U8(!x)),
            Abs => exact(Scalar::U8(x)),
            _ => None,
        },
        Scalar::U16(x) => match op {
            Neg => exact(Scalar::U16(x.wrapping_neg())),
            Not => exact(Scalar::U16(!x)),
            Abs => exact(Scalar::U16(x)),
            _ => None,
        },
        Scalar::U64(x) => match op {
            Neg => exact(Scalar::U64(x.wrapping_neg())),
            Not => exact(Scalar::U64(!x)),
            Abs => exact(Scalar::U64(x)),
            _ => None,
        },
        _ => {
            let x = a.to_f64();
            let ty = a.ty();
            // Transcendentals are checked to 1 ulp of the type (libm's f32
            // functions are faithfully rounded); the rest are exact.
            let (r, tol) = match op {
                Not => return None,
                Neg => (-x, 0),
                Abs => (x.abs(), 0),
                Floor => (x.floor(), 0),
                Ceil => (x.ceil(), 0),
                Sqrt => (x.sqrt(), 0),
                Rsqrt => (1.0 / x.sqrt(), 1),
                Exp => (x.exp(), 1),
                Log => (x.ln(), 1),
                Tanh => (x.tanh(), 1),
                Erf => (libm::erf(x), 1),
                Sin => (x.sin(), 1),
                Cos => (x.cos(), 1),
                Atan => (x.atan(), 1),
            };
            // libm's f64 functions are within 2 ulp of the system's.
            Some((round_to(ty, r), if ty == Type::F64 { 2 * tol } else { tol }))
        }
    }
}

#[test]
fn every_unary_op_on_every_type() {
    for ty in Type::ALL {
        let mut s = samples(ty);
        if ty.is_float() {
            // Values where erf and tanh are not saturated.
            s.extend([0.3, -0.7, 1.2, 4.0, 0.01].map(|v| Scalar::from_f64(ty, v)));
        }
        for op in UnaryOp::ALL {
            let cases: Vec<(Scalar, Scalar, u64)> =
                s.iter().filter_map(|&a| ref_unary(op, a).map(|(r, tol)| (a, r, tol))).collect();
            if cases.is_empty() {
                continue;
            }
            let k = elementwise(&format!("{}_{ty}", op.name()), &[ty], ty, cases.len(), |b, v| b.unary(op, v[0]));
            let got = run_columns(&k, &[(ty, cases.iter().map(|c| c.0).collect())], ty);
            for ((a, want, tol), got) in cases.iter().zip(got) {
                let ok = same(got, *want) || (ty.is_float() && *tol > 0 && ulps(got, *want) <= *tol);
                assert!(ok, "{} {ty}: {a} gave {got}, want {want}", op.name());
            }
        }
    }
}

#[test]
fn every_comparison_on_every_type() {
    for ty in Type::ALL {
        let s = samples(ty);
        let pairs: Vec<(Scalar, Scalar)> = s.iter().flat_map(|&a| s.iter().map(move |&b| (a, b))).collect();
        for op in CmpOp::ALL {
            let k = elementwise(&format!("{}_{ty}", op.name()), &[ty, ty], Type::Bool, pairs.len(), |b, v| {
                b.cmp(op, v[0], v[1])
            });
            let got = run_columns(
                &k,
                &[(ty, pairs.iter().map(|p| p.0).collect()), (ty, pairs.iter().map(|p| p.1).collect())],
                Type::Bool,
            );
            for (&(a, b), got) in pairs.iter().zip(got) {
                // Integers compare exactly through i128; floats through f64,
                // whose comparisons have the same NaN rules.
                let want = match ty {
                    t if t.is_float() => {
                        let (x, y) = (a.to_f64(), b.to_f64());
                        match op {
                            CmpOp::Eq => x == y,
                            CmpOp::Ne => x != y,
                            CmpOp::Lt => x < y,
                            CmpOp::Le => x <= y,
                            CmpOp::Gt => x > y,
                            CmpOp::Ge => x >= y,
                        }
                    }
                    _ => {
                        let (x, y) = (a.as_i128().unwrap(), b.as_i128().unwrap());
                        match op {
                            CmpOp::Eq => x == y,
                            CmpOp::Ne => x != y,
                            CmpOp::Lt => x < y,
                            CmpOp::Le => x <= y,
                            CmpOp::Gt => x > y,
                            CmpOp::Ge => x >= y,
                        }
                    }
                };
                assert_eq!(got, Scalar::Bool(want), "{} {ty}: {a} {b}", op.name());
            }
        }
    }
}

fn ref_cast(a: Scalar, to: Type) -> Scalar {
    if a.ty().is_float() {
        let x = a.to_f64(); // exact: every float type fits in f64
        match to {
            Type::Bool => Scalar::Bool(x != 0.0),
            // Rust's float-to-int `as` truncates, saturates and maps NaN to 0.
            Type::I8 => Scalar::I8(x as i8),
            Type::U8 => Scalar::U8(x as u8),
            Type::I16 => Scalar::I16(x as i16),
            Type::U16 => Scalar::U16(x as u16),
            Type::I32 => Scalar::I32(x as i32),
            Type::U32 => Scalar::U32(x as u32),
            Type::I64 => Scalar::I64(x as i64),
            Type::U64 => Scalar::U64(x as u64),
            Type::F32 => Scalar::F32(x as f32),
            Type::F64 => Scalar::F64(x),
            Type::F16 => Scalar::F16(f16::from_f64(x)),
            Type::BF16 => Scalar::BF16(bf16::from_f64(x)),
        }
    } else {
        let v = a.as_i128().unwrap();
        match to {
            Type::Bool => Scalar::Bool(v != 0),
            Type::I8 => Scalar::I8(v as i8),
            Type::U8 => Scalar::U8(v as u8),
            Type::I16 => Scalar::I16(v as i16),
            Type::U16 => Scalar::U16(v as u16),
            Type::I32 => Scalar::I32(v as i32),
            Type::U32 => Scalar::U32(v as u32),
            Type::I64 => Scalar::I64(v as i64),
            Type::U64 => Scalar::U64(v as u64),
            Type::F32 => Scalar::F32(v as f32),
            Type::F64 => Scalar::F64(v as f64),
            Type::F16 => Scalar::F16(f16::from_f64(v as f64)),
            Type::BF16 => Scalar::BF16(bf16::from_f64(v as f64)),
        }
    }
}

#[test]
fn every_cast_between_every_pair_of_types() {
    for from in Type::ALL {
        let mut s = samples(from);
        if from.is_float() {
            s.extend([3.99, -3.99, 4e9, -4e9, 3e38].map(|v| Scalar::from_f64(from, v)));
        }
        // Identity casts are rejected by the verifier.
        for to in Type::ALL.into_iter().filter(|&to| to != from) {
            let k = elementwise(&format!("cast_{from}_{to}"), &[from], to, s.len(), |b, v| b.cast(to, v[0]));
            let got = run_columns(&k, &[(from, s.clone())], to);
            for (&a, got) in s.iter().zip(got) {
                let want = ref_cast(a, to);
                assert!(same(got, want), "cast {from}->{to}: {a} gave {got}, want {want}");
            }
        }
    }
}

#[test]
fn casts_saturate_truncate_and_map_nan_to_zero() {
    let input = [f32::NAN, 3.7, -3.7, 1e10, -1e10, f32::INFINITY];
    let k = elementwise("f2i", &[Type::F32], Type::I32, input.len(), |b, v| b.cast(Type::I32, v[0]));
    let got = run_columns(&k, &[(Type::F32, input.map(Scalar::F32).to_vec())], Type::I32);
    let want = [0, 3, -3, i32::MAX, i32::MIN, i32::MAX].map(Scalar::I32);
    assert_eq!(got, want.to_vec());
    let k = elementwise("f2u", &[Type::F32], Type::U32, input.len(), |b, v| b.cast(Type::U32, v[0]));
    let got = run_columns(&k, &[(Type::F32, input.map(Scalar::F32).to_vec())], Type::U32);
    assert_eq!(got, [0, 3, 0, u32::MAX, 0, u32::MAX].map(Scalar::U32).to_vec());
}

#[test]
fn f32_fma_rounds_once_and_halves_round_per_op() {
    // (1 + 2^-23)(1 - 2^-23) - 1 = -2^-46 exactly with one rounding, 0 with two.
    let a = 1.0 + f32::EPSILON;
    let b = 1.0 - f32::EPSILON;
    let k = elementwise("fma", &[Type::F32, Type::F32, Type::F32], Type::F32, 1, |bl, v| bl.fma(v[0], v[1], v[2]));
    let got = run_columns(
        &k,
        &[(Type::F32, vec![Scalar::F32(a)]), (Type::F32, vec![Scalar::F32(b)]), (Type::F32, vec![Scalar::F32(-1.0)])],
        Type::F32,
    );
    assert_eq!(got[0], Scalar::F32(a.mul_add(b, -1.0)));
    assert_ne!(got[0], Scalar::F32(0.0));
    // f16: 2048 + 1 rounds back to 2048 after each add (computed in f32 it would be 2050).
    let k = elementwise("half_chain", &[Type::F16], Type::F16, 1, |bl, v| {
        let one = bl.const_float(Type::F16, 1.0);
        let s = bl.add(v[0], one);
        bl.add(s, one)
    });
    let got = run_columns(&k, &[(Type::F16, vec![Scalar::F16(f16::from_f32(2048.0))])], Type::F16);
    assert_eq!(got[0], Scalar::F16(f16::from_f32(2048.0)));
}

#[test]
fn integer_division_by_zero_is_an_error_naming_the_thread() {
    let n = 10;
    let k = elementwise("div_zero", &[Type::I32, Type::I32], Type::I32, n, |b, v| b.div(v[0], v[1]));
    let divisors: Vec<i32> = (0..n as i32).map(|i| if i == 5 { 0 } else { i + 1 }).collect();
    let mut args = vec![i32s(&[7; 10]), i32s(&divisors), zeros(Type::I32, n)];
    let err = run(&k, &mut args).unwrap_err();
    let inst = find_inst(&k, "div");
    assert!(matches!(err, InterpError::DivisionByZero { thread: [5, 0, 0], .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("div_zero") && msg.contains(&format!("{inst} `div`")), "{msg}");
    // Nothing is written back when a run fails.
    assert_eq!(out(&args, 2).to_f64_vec(), vec![0.0; n]);
}
