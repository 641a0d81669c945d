//! The narrow, unsigned and `f64` element types through lowering and the
//! interpreter, against values computed by hand (wrapping at the type's
//! width, unsigned comparison, the zero-divisor rule, f64 precision).

mod common;

use common::node;
use weft_graph::{BinaryOp, DType, Graph, Op, Tensor};
use weft_kir::{HostBuffer, Scalar};
use weft_lower::context::tensor_to_host;
use weft_lower::{lower, LowerOptions};

/// Lowers `g` and runs it on the interpreter.
fn run(g: &Graph, inputs: &[Tensor]) -> Vec<HostBuffer> {
    let program = lower(g, &LowerOptions::default()).unwrap_or_else(|e| panic!("lowering failed: {e}"));
    common::assert_kernels_proven(&program);
    let hosts: Vec<HostBuffer> = inputs.iter().map(tensor_to_host).collect();
    weft_pack::run_program(&mut weft_pack::InterpExecutor::default(), std::sync::Arc::new(program), &hosts, |_| {})
        .unwrap_or_else(|e| panic!("run failed: {e}"))
}

fn values(b: &HostBuffer) -> Vec<Scalar> {
    (0..b.len()).map(|i| b.get(i)).collect()
}

/// `x op y` for two inputs of `dtype` given as exact integers.
fn binary(dtype: DType, op: BinaryOp, x: &[i128], y: &[i128]) -> Vec<Scalar> {
    let mut g = Graph::new("binary");
    let a = g.add_input("a", dtype, vec![x.len()]);
    let b = g.add_input("b", dtype, vec![y.len()]);
    let z = node(&mut g, "z", Op::Binary(op), &[a, b]);
    g.add_output(z);
    let inputs = [Tensor::from_ints(dtype, vec![x.len()], x), Tensor::from_ints(dtype, vec![y.len()], y)];
    values(&run(&g, &inputs)[0])
}

#[test]
fn signed_narrow_integers_wrap_and_divide_by_the_one_rule() {
    let got = binary(DType::I8, BinaryOp::Add, &[127, -128, 5], &[1, -1, 3]);
    assert_eq!(got, [Scalar::I8(-128), Scalar::I8(127), Scalar::I8(8)]);
    // A zero divisor counts as one; -128 / -1 wraps to -128.
    let got = binary(DType::I8, BinaryOp::Div, &[7, -7, 5, -128], &[2, 2, 0, -1]);
    assert_eq!(got, [Scalar::I8(3), Scalar::I8(-3), Scalar::I8(5), Scalar::I8(-128)]);
    let got = binary(DType::I16, BinaryOp::Mul, &[300, -2], &[300, 16_384]);
    assert_eq!(got, [Scalar::I16(24_464), Scalar::I16(-32_768)]);
}

#[test]
fn unsigned_integers_compare_and_divide_as_unsigned() {
    let got = binary(DType::U8, BinaryOp::Greater, &[200, 1], &[100, 255]);
    assert_eq!(got, [Scalar::Bool(true), Scalar::Bool(false)]);
    let got = binary(DType::U8, BinaryOp::Sub, &[0, 200], &[1, 100]);
    assert_eq!(got, [Scalar::U8(255), Scalar::U8(100)]);
    let got = binary(DType::U16, BinaryOp::Div, &[65_535], &[256]);
    assert_eq!(got, [Scalar::U16(255)]);
    let got = binary(DType::U32, BinaryOp::Less, &[1], &[4_000_000_000]);
    assert_eq!(got, [Scalar::Bool(true)]);
    let big = u64::MAX as i128;
    let got = binary(DType::U64, BinaryOp::Div, &[big, 1 << 63], &[2, 1]);
    assert_eq!(got, [Scalar::U64(u64::MAX / 2), Scalar::U64(1 << 63)]);
    let got = binary(DType::U64, BinaryOp::Max, &[1 << 63], &[1]);
    assert_eq!(got, [Scalar::U64(1 << 63)]);
}

#[test]
fn a_mean_of_small_integers_divides_the_exact_sum() {
    // 200 + 100 + 250 = 550 (more than u8 holds); 550 / 3 = 183.
    let mut g = Graph::new("mean");
    let x = g.add_input("x", DType::U8, vec![1, 3]);
    let y = node(&mut g, "m", Op::ReduceMean { axes: vec![1], keepdims: true }, &[x]);
    let s = node(&mut g, "s", Op::ReduceSum { axes: vec![1], keepdims: true }, &[x]);
    g.add_output(y);
    g.add_output(s);
    let out = run(&g, &[Tensor::from_ints(DType::U8, vec![1, 3], &[200, 100, 250])]);
    assert_eq!(values(&out[0]), [Scalar::U8(183)]);
    // ONNX's sum keeps the element type: 550 mod 256 = 38.
    assert_eq!(values(&out[1]), [Scalar::U8(38)]);
}

#[test]
fn f64_computes_in_f64_and_casts_round_once() {
    let mut g = Graph::new("f64");
    let a = g.add_input("a", DType::F64, vec![2]);
    let b = g.add_input("b", DType::F64, vec![2]);
    let s = node(&mut g, "s", Op::Binary(BinaryOp::Add), &[a, b]);
    let c = node(&mut g, "c", Op::Cast { to: DType::F32 }, &[s]);
    let i = node(&mut g, "i", Op::Cast { to: DType::I8 }, &[a]);
    g.add_output(s);
    g.add_output(c);
    g.add_output(i);
    let ta = Tensor::from_f64(DType::F64, vec![2], &[0.1, -300.7]);
    let tb = Tensor::from_f64(DType::F64, vec![2], &[0.2, 1e-12]);
    let out = run(&g, &[ta, tb]);
    // 0.1 + 0.2 in f64 is 0.30000000000000004; in f32 it would be 0.3 (f32).
    assert_eq!(values(&out[0])[0], Scalar::F64(0.300_000_000_000_000_04));
    assert_eq!(values(&out[1])[0], Scalar::F32(0.3));
    // Float to int truncates toward zero and saturates: 0.1 -> 0, -300.7 -> -128.
    assert_eq!(values(&out[2]), [Scalar::I8(0), Scalar::I8(-128)]);
}
