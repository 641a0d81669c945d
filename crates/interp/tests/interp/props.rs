//! Property test: random elementwise expressions over `i32` and `f32`, run by
//! the interpreter over a ragged launch, equal bit for bit a direct Rust
//! evaluation of the same expression.

use proptest::prelude::*;
use weft_kir::{Access, Axis, BinaryOp, CmpOp, KernelBuilder, KernelDef, LaunchShape, Type, UnaryOp, Value};

use crate::common::{f32s, i32s, out, run, zeros};

#[derive(Clone, Debug)]
enum Expr {
    X,
    Y,
    Const(i32),
    Bin(BinaryOp, Box<Expr>, Box<Expr>),
    Un(UnaryOp, Box<Expr>),
    /// `if lhs <op> rhs { a } else { b }`.
    Sel(CmpOp, Box<Expr>, Box<Expr>, Box<Expr>, Box<Expr>),
}

fn expr(ty: Type) -> impl Strategy<Value = Expr> {
    let bin: Vec<BinaryOp> = if ty == Type::I32 {
        BinaryOp::ALL.to_vec()
    } else {
        vec![BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Min, BinaryOp::Max]
    };
    let un: Vec<UnaryOp> = if ty == Type::I32 {
        vec![UnaryOp::Neg, UnaryOp::Not, UnaryOp::Abs]
    } else {
        vec![UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Sqrt]
    };
    let leaf = prop_oneof![Just(Expr::X), Just(Expr::Y), (-8i32..8).prop_map(Expr::Const)];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        let bin = bin.clone();
        let un = un.clone();
        prop_oneof![
            (proptest::sample::select(bin), inner.clone(), inner.clone()).prop_map(|(op, a, b)| Expr::Bin(
                op,
                Box::new(a),
                Box::new(b)
            )),
            (proptest::sample::select(un), inner.clone()).prop_map(|(op, a)| Expr::Un(op, Box::new(a))),
            (proptest::sample::select(CmpOp::ALL.to_vec()), inner.clone(), inner.clone(), inner.clone(), inner)
                .prop_map(|(op, l, r, a, b)| Expr::Sel(op, Box::new(l), Box::new(r), Box::new(a), Box::new(b))),
        ]
    })
}

fn emit(b: &mut KernelBuilder, e: &Expr, ty: Type, x: Value, y: Value) -> Value {
    match e {
        Expr::X => x,
        Expr::Y => y,
        Expr::Const(c) => {
            if ty == Type::I32 {
                b.const_i32(*c)
            } else {
                b.const_f32(*c as f32 * 0.25)
            }
        }
        Expr::Bin(op, l, r) => {
            let l = emit(b, l, ty, x, y);
            let mut r = emit(b, r, ty, x, y);
            if ty == Type::I32 && matches!(op, BinaryOp::Div | BinaryOp::Rem) {
                let one = b.const_i32(1);
                r = b.or(r, one); // never zero
            }
            b.binary(*op, l, r)
        }
        Expr::Un(op, a) => {
            let a = emit(b, a, ty, x, y);
            b.unary(*op, a)
        }
        Expr::Sel(op, l, r, t, f) => {
            let l = emit(b, l, ty, x, y);
            let r = emit(b, r, ty, x, y);
            let t = emit(b, t, ty, x, y);
            let f = emit(b, f, ty, x, y);
            let c = b.cmp(*op, l, r);
            b.select(c, t, f)
        }
    }
}

fn compare<T: PartialOrd>(op: CmpOp, l: T, r: T) -> bool {
    match op {
        CmpOp::Eq => l == r,
        CmpOp::Ne => l != r,
        CmpOp::Lt => l < r,
        CmpOp::Le => l <= r,
        CmpOp::Gt => l > r,
        CmpOp::Ge => l >= r,
    }
}

fn eval_i32(e: &Expr, x: i32, y: i32) -> i32 {
    match e {
        Expr::X => x,
        Expr::Y => y,
        Expr::Const(c) => *c,
        Expr::Bin(op, l, r) => {
            let (l, r) = (eval_i32(l, x, y), eval_i32(r, x, y));
            match op {
                BinaryOp::Add => l.wrapping_add(r),
                BinaryOp::Sub => l.wrapping_sub(r),
                BinaryOp::Mul => l.wrapping_mul(r),
                BinaryOp::Div => l.wrapping_div(r | 1),
                BinaryOp::Rem => l.wrapping_rem(r | 1),
                BinaryOp::Min => l.min(r),
                BinaryOp::Max => l.max(r),
                BinaryOp::And => l & r,
                BinaryOp::Or => l | r,
                BinaryOp::Xor => l ^ r,
                BinaryOp::Shl => l.wrapping_shl(r as u32),
                BinaryOp::Shr => l.wrapping_shr(r as u32),
            }
        }
        Expr::Un(op, a) => {
            let a = eval_i32(a, x, y);
            match op {
                UnaryOp::Neg => a.wrapping_neg(),
                UnaryOp::Not => !a,
                _ => a.wrapping_abs(),
            }
        }
        Expr::Sel(op, l, r, t, f) => {
            if compare(*op, eval_i32(l, x, y), eval_i32(r, x, y)) {
                eval_i32(t, x, y)
            } else {
                eval_i32(f, x, y)
            }
        }
    }
}

fn eval_f32(e: &Expr, x: f32, y: f32) -> f32 {
    match e {
        Expr::X => x,
        Expr::Y => y,
        Expr::Const(c) => *c as f32 * 0.25,
        Expr::Bin(op, l, r) => {
            let (l, r) = (eval_f32(l, x, y), eval_f32(r, x, y));
            match op {
                BinaryOp::Add => l + r,
                BinaryOp::Sub => l - r,
                BinaryOp::Mul => l * r,
                BinaryOp::Div => l / r,
                BinaryOp::Min => l.min(r),
                _ => l.max(r),
            }
        }
        Expr::Un(op, a) => {
            let a = eval_f32(a, x, y);
            match op {
                UnaryOp::Neg => -a,
                UnaryOp::Abs => a.abs(),
                UnaryOp::Floor => a.floor(),
                UnaryOp::Ceil => a.ceil(),
                _ => a.sqrt(),
            }
        }
        Expr::Sel(op, l, r, t, f) => {
            if compare(*op, eval_f32(l, x, y), eval_f32(r, x, y)) {
                eval_f32(t, x, y)
            } else {
                eval_f32(f, x, y)
            }
        }
    }
}

const N: usize = 100;

fn kernel(e: &Expr, ty: Type) -> KernelDef {
    let mut b = KernelBuilder::new("expr", LaunchShape::linear(4, 32));
    let px = b.buffer("x", ty, N as u64, Access::Read);
    let py = b.buffer("y", ty, N as u64, Access::Read);
    let o = b.buffer("out", ty, N as u64, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let n = b.const_i32(N as i32);
    let ok = b.lt(i, n);
    b.if_(ok, |b| {
        let x = b.load(px, i);
        let y = b.load(py, i);
        let r = emit(b, e, ty, x, y);
        b.store(o, i, r);
    });
    b.finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn i32_expressions_match_rust(
        e in expr(Type::I32),
        xs in proptest::collection::vec(any::<i32>(), N),
        ys in proptest::collection::vec(-40i32..40, N),
    ) {
        let mut args = vec![i32s(&xs), i32s(&ys), zeros(Type::I32, N)];
        run(&kernel(&e, Type::I32), &mut args).unwrap();
        let got = out(&args, 2);
        for i in 0..N {
            prop_assert_eq!(got.get(i).as_i64().unwrap() as i32, eval_i32(&e, xs[i], ys[i]), "lane {}", i);
        }
    }

    #[test]
    fn f32_expressions_match_rust(
        e in expr(Type::F32),
        xs in proptest::collection::vec(-100.0f32..100.0, N),
        ys in proptest::collection::vec(prop_oneof![-3.0f32..3.0, Just(0.0), Just(f32::NAN)], N),
    ) {
        let mut args = vec![f32s(&xs), f32s(&ys), zeros(Type::F32, N)];
        run(&kernel(&e, Type::F32), &mut args).unwrap();
        let got = out(&args, 2).to_f32_vec();
        for i in 0..N {
            let want = eval_f32(&e, xs[i], ys[i]);
            prop_assert!(
                got[i].to_bits() == want.to_bits() || (got[i].is_nan() && want.is_nan()),
                "lane {}: got {} want {}", i, got[i], want
            );
        }
    }
}
