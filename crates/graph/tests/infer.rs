//! Shape and dtype inference for every op: the shapes ONNX gives, and errors
//! that name the node and say what was expected.

// `&[x.clone()]` reads as "these inputs" in the tables below; `from_ref` would not.
#![allow(clippy::cloned_ref_to_slice_refs)]

use weft_graph::infer::infer_node;
use weft_graph::{
    BinaryOp, CoordinateTransform, DType, GraphError, NearestMode, Op, Padding, ResizeMode, Shape, Tensor, TensorInfo,
    UnaryOp, Window,
};

fn t(dtype: DType, dims: &[usize]) -> TensorInfo {
    TensorInfo { name: String::new(), dtype, shape: Shape::new(dims.to_vec()) }
}

fn f32s(dims: &[usize]) -> TensorInfo {
    t(DType::F32, dims)
}

fn infer(op: &Op, ins: &[Option<TensorInfo>]) -> Result<Vec<(DType, Shape)>, GraphError> {
    let refs: Vec<Option<&TensorInfo>> = ins.iter().map(|i| i.as_ref()).collect();
    infer_node("the_node", op, &refs, &vec![None; ins.len()])
}

/// The single output's dims (and checks its dtype).
fn ok(op: Op, ins: &[TensorInfo], dtype: DType) -> Vec<usize> {
    let ins: Vec<Option<TensorInfo>> = ins.iter().cloned().map(Some).collect();
    let outs = infer(&op, &ins).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].0, dtype);
    outs[0].1.dims().to_vec()
}

/// The error message, checking it names the node and the op and mentions
/// every fragment in `says`.
fn fails(op: Op, ins: &[TensorInfo], says: &[&str]) {
    let ins: Vec<Option<TensorInfo>> = ins.iter().cloned().map(Some).collect();
    let e = infer(&op, &ins).expect_err("inference should fail");
    let GraphError::Shape { ref node, op: name, .. } = e else { panic!("not a shape error: {e}") };
    assert_eq!(node, "the_node");
    assert_eq!(name, op.name());
    let msg = e.to_string();
    for s in says {
        assert!(msg.contains(s), "`{msg}` does not mention `{s}`");
    }
}

fn win(k: &[usize], s: &[usize], d: &[usize], pads: &[usize]) -> Window {
    Window { kernel: k.to_vec(), strides: s.to_vec(), dilations: d.to_vec(), padding: Padding::Explicit(pads.to_vec()) }
}

fn conv(window: Window, groups: usize) -> Op {
    Op::Conv { window, groups }
}

#[test]
fn conv_shapes() {
    let x = f32s(&[2, 3, 224, 224]);
    let w = f32s(&[64, 3, 7, 7]);
    let b = f32s(&[64]);
    assert_eq!(
        ok(conv(win(&[7, 7], &[2, 2], &[], &[3, 3, 3, 3]), 1), &[x.clone(), w.clone(), b], DType::F32),
        [2, 64, 112, 112]
    );
    // Dilation 2 makes a 3x3 kernel span 5.
    let w3 = f32s(&[8, 3, 3, 3]);
    assert_eq!(ok(conv(win(&[], &[], &[2, 2], &[]), 1), &[x.clone(), w3.clone()], DType::F32), [2, 8, 220, 220]);
    // SAME_UPPER / SAME_LOWER give ceil(d / s).
    let same = Window { kernel: vec![], strides: vec![2, 2], dilations: vec![], padding: Padding::SameLower };
    assert_eq!(ok(conv(same, 1), &[f32s(&[1, 3, 7, 5]), w3.clone()], DType::F32), [1, 8, 4, 3]);
    // Depthwise and grouped.
    assert_eq!(
        ok(conv(win(&[3, 3], &[], &[], &[1, 1, 1, 1]), 32), &[f32s(&[1, 32, 8, 8]), f32s(&[32, 1, 3, 3])], DType::F32),
        [1, 32, 8, 8]
    );
    assert_eq!(ok(conv(win(&[1], &[], &[], &[]), 2), &[f32s(&[1, 4, 9]), f32s(&[6, 2, 1])], DType::F32), [1, 6, 9]);
    // 3-D convolution.
    assert_eq!(
        ok(conv(win(&[], &[], &[], &[]), 1), &[f32s(&[1, 2, 4, 5, 6]), f32s(&[3, 2, 2, 2, 2])], DType::F32),
        [1, 3, 3, 4, 5]
    );
}

#[test]
fn conv_errors() {
    let x = f32s(&[1, 3, 8, 8]);
    fails(
        conv(win(&[3, 3], &[], &[], &[]), 1),
        &[x.clone(), f32s(&[16, 64, 3, 3])],
        &["input 1 (W) has 64 input channels per group but X has 3 channels / 1 group", "expected W.shape[1] = 3"],
    );
    fails(conv(win(&[3, 3], &[], &[], &[]), 1), &[x.clone(), f32s(&[16, 3, 3])], &["rank"]);
    fails(conv(win(&[5, 5], &[], &[], &[]), 1), &[x.clone(), f32s(&[16, 3, 3, 3])], &["kernel_shape"]);
    fails(
        conv(win(&[], &[], &[], &[]), 2),
        &[f32s(&[1, 4, 8, 8]), f32s(&[3, 2, 3, 3])],
        &["not divisible by 2 groups"],
    );
    fails(conv(win(&[], &[], &[], &[]), 1), &[x.clone(), f32s(&[16, 3, 9, 9])], &["smaller than the dilated kernel"]);
    fails(
        conv(win(&[], &[], &[], &[1, 1]), 1),
        &[x.clone(), f32s(&[16, 3, 3, 3])],
        &["pads has 2 entries", "expected 4"],
    );
    fails(conv(win(&[], &[0, 1], &[], &[]), 1), &[x.clone(), f32s(&[16, 3, 3, 3])], &["strides"]);
    fails(conv(win(&[], &[], &[], &[]), 1), &[x.clone()], &["has 1 inputs; expected 2 to 3 (X, W, B)"]);
    fails(conv(win(&[], &[], &[], &[]), 1), &[t(DType::I64, &[1, 3, 8, 8]), f32s(&[16, 3, 3, 3])], &["float"]);
    // i32 is the integer convolution the quantized ones compose to.
    let ints = [t(DType::I32, &[1, 3, 8, 8]), t(DType::I32, &[16, 3, 3, 3])];
    assert_eq!(ok(conv(win(&[], &[], &[], &[]), 1), &ints, DType::I32), [1, 16, 6, 6]);
    fails(conv(win(&[], &[], &[], &[]), 1), &[t(DType::I32, &[1, 3, 8, 8]), f32s(&[16, 3, 3, 3])], &["f32", "i32"]);
    fails(conv(win(&[], &[], &[], &[]), 1), &[x.clone(), f32s(&[16, 3, 3, 3]), f32s(&[15])], &["(B)", "expected [16]"]);
    fails(conv(win(&[], &[], &[], &[]), 0), &[x, f32s(&[16, 3, 3, 3])], &["group is 0"]);
    // A missing required input in the middle.
    let e = infer(&conv(win(&[], &[], &[], &[]), 1), &[Some(f32s(&[1, 3, 8, 8])), None]).unwrap_err();
    assert!(e.to_string().contains("input 1 (W) is required"), "{e}");
}

#[test]
fn conv_transpose_shapes_and_errors() {
    let op = |w: Window, op: &[usize], g| Op::ConvTranspose { window: w, groups: g, output_padding: op.to_vec() };
    let x = f32s(&[1, 4, 5, 5]);
    let w = f32s(&[4, 2, 3, 3]);
    assert_eq!(
        ok(op(win(&[], &[2, 2], &[], &[1, 1, 1, 1]), &[1, 1], 1), &[x.clone(), w.clone()], DType::F32),
        [1, 2, 10, 10]
    );
    assert_eq!(ok(op(win(&[], &[], &[], &[]), &[], 2), &[x.clone(), w.clone()], DType::F32), [1, 4, 7, 7]);
    let same = Window { kernel: vec![], strides: vec![2, 2], dilations: vec![], padding: Padding::SameUpper };
    assert_eq!(ok(op(same, &[1, 1], 1), &[x.clone(), w.clone()], DType::F32), [1, 2, 10, 10]);
    fails(op(win(&[], &[2, 2], &[], &[]), &[2, 2], 1), &[x.clone(), w.clone()], &["output_padding[0] = 2"]);
    fails(op(win(&[], &[], &[], &[]), &[], 1), &[x, f32s(&[3, 2, 3, 3])], &["expected W.shape[0] = 4"]);
}

#[test]
fn pooling_shapes() {
    let x = f32s(&[1, 64, 112, 112]);
    let mp = |w, c| Op::MaxPool { window: w, ceil_mode: c };
    assert_eq!(ok(mp(win(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), false), &[x.clone()], DType::F32), [1, 64, 56, 56]);
    // ceil_mode: 6 wide, k3 s2 -> ceil(3/2)+1 = 3 (floor gives 2).
    let x6 = f32s(&[1, 1, 6, 6]);
    assert_eq!(ok(mp(win(&[3, 3], &[2, 2], &[], &[]), true), &[x6.clone()], DType::F32), [1, 1, 3, 3]);
    assert_eq!(ok(mp(win(&[3, 3], &[2, 2], &[], &[]), false), &[x6.clone()], DType::F32), [1, 1, 2, 2]);
    // The window that would start in the end padding is dropped: 5 wide, k2 s2
    // pad 1+1: ceil(5/2)+1 = 4, but window 4 starts at 6-1 = 5 >= 5.
    let x5 = f32s(&[1, 1, 5]);
    assert_eq!(ok(mp(win(&[2], &[2], &[], &[1, 1]), true), &[x5], DType::F32), [1, 1, 3]);
    let ap = Op::AveragePool { window: win(&[2, 2], &[2, 2], &[], &[]), ceil_mode: false, count_include_pad: true };
    assert_eq!(ok(ap, &[x6.clone()], DType::F32), [1, 1, 3, 3]);
    assert_eq!(ok(Op::GlobalAveragePool, &[x.clone()], DType::F32), [1, 64, 1, 1]);
    assert_eq!(ok(Op::GlobalMaxPool, &[f32s(&[2, 3, 4, 5, 6])], DType::F32), [2, 3, 1, 1, 1]);
    fails(mp(win(&[3], &[], &[], &[]), false), &[x6.clone()], &["kernel_shape has 1 dims", "2 spatial dims"]);
    fails(mp(win(&[3, 3], &[], &[], &[]), false), &[f32s(&[1, 6])], &["expected rank ≥ 3"]);
    fails(Op::GlobalAveragePool, &[t(DType::I64, &[1, 2, 3, 3])], &["float"]);
}

#[test]
fn gemm_and_matmul() {
    let g = |ta, tb| Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: ta, trans_b: tb };
    assert_eq!(ok(g(false, true), &[f32s(&[4, 512]), f32s(&[10, 512]), f32s(&[10])], DType::F32), [4, 10]);
    assert_eq!(ok(g(true, false), &[f32s(&[3, 4]), f32s(&[3, 5]), f32s(&[4, 1])], DType::F32), [4, 5]);
    fails(g(false, false), &[f32s(&[4, 512]), f32s(&[10, 512])], &["op(A) is 4x512", "op(B) is 10x512", "inner dims"]);
    fails(g(false, true), &[f32s(&[4, 512]), f32s(&[10, 512]), f32s(&[4])], &["(C)", "broadcastable to [4x10]"]);
    fails(g(false, false), &[f32s(&[2, 3, 4]), f32s(&[4, 5])], &["expected rank 2"]);

    assert_eq!(ok(Op::MatMul, &[f32s(&[2, 1, 3, 4]), f32s(&[5, 4, 6])], DType::F32), [2, 5, 3, 6]);
    assert_eq!(ok(Op::MatMul, &[f32s(&[4]), f32s(&[3, 4, 6])], DType::F32), [3, 6]);
    assert_eq!(ok(Op::MatMul, &[f32s(&[3, 2, 4]), f32s(&[4])], DType::F32), [3, 2]);
    assert_eq!(ok(Op::MatMul, &[f32s(&[4]), f32s(&[4])], DType::F32), Vec::<usize>::new());
    assert_eq!(ok(Op::MatMul, &[t(DType::I32, &[2, 3]), t(DType::I32, &[3, 2])], DType::I32), [2, 2]);
    fails(Op::MatMul, &[f32s(&[2, 3]), f32s(&[4, 2])], &["inner dim 3", "has 4"]);
    fails(Op::MatMul, &[f32s(&[2, 2, 3]), f32s(&[3, 3, 2])], &["do not broadcast"]);
    fails(Op::MatMul, &[f32s(&[2, 3]), t(DType::F16, &[3, 2])], &["dtype f16", "expected f32"]);
}

#[test]
fn elementwise() {
    let bin = |b| Op::Binary(b);
    assert_eq!(ok(bin(BinaryOp::Add), &[f32s(&[2, 1, 4]), f32s(&[3, 1])], DType::F32), [2, 3, 4]);
    assert_eq!(ok(bin(BinaryOp::Less), &[f32s(&[3]), f32s(&[])], DType::Bool), [3]);
    assert_eq!(ok(bin(BinaryOp::Equal), &[t(DType::Bool, &[3]), t(DType::Bool, &[3])], DType::Bool), [3]);
    assert_eq!(ok(bin(BinaryOp::Pow), &[f32s(&[3]), t(DType::I64, &[1])], DType::F32), [3]);
    fails(bin(BinaryOp::Mul), &[f32s(&[2, 3]), f32s(&[2])], &["[2x3] and [2] do not broadcast"]);
    fails(bin(BinaryOp::Add), &[f32s(&[2]), t(DType::I64, &[2])], &["dtype i64", "expected f32"]);
    fails(bin(BinaryOp::Greater), &[t(DType::Bool, &[2]), t(DType::Bool, &[2])], &["bool", "numeric"]);
    assert_eq!(ok(Op::Sum, &[f32s(&[3, 1]), f32s(&[4]), f32s(&[1, 1])], DType::F32), [3, 4]);
    fails(Op::Sum, &[], &["no inputs"]);
    fails(Op::Sum, &[f32s(&[3]), f32s(&[4])], &["input 1 (data_1)", "does not broadcast"]);
    let c = t(DType::Bool, &[2, 1]);
    assert_eq!(ok(Op::Where, &[c.clone(), f32s(&[3]), f32s(&[1])], DType::F32), [2, 3]);
    fails(Op::Where, &[f32s(&[2, 1]), f32s(&[3]), f32s(&[3])], &["(condition) has dtype f32; expected bool"]);
    fails(Op::Where, &[c, f32s(&[3]), t(DType::I64, &[3])], &["(Y)"]);

    assert_eq!(ok(Op::Unary(UnaryOp::Relu), &[t(DType::I32, &[2])], DType::I32), [2]);
    assert_eq!(ok(Op::Unary(UnaryOp::Gelu), &[t(DType::F16, &[2, 2])], DType::F16), [2, 2]);
    fails(Op::Unary(UnaryOp::Exp), &[t(DType::I64, &[2])], &["expected a float type"]);
    fails(Op::Unary(UnaryOp::Neg), &[t(DType::Bool, &[2])], &["numeric"]);
    fails(Op::Unary(UnaryOp::Relu), &[f32s(&[2]), f32s(&[2])], &["has 2 inputs; expected 1"]);
    assert_eq!(ok(Op::Cast { to: DType::I64 }, &[f32s(&[2, 3])], DType::I64), [2, 3]);
    assert_eq!(ok(Op::Identity, &[t(DType::Bool, &[5])], DType::Bool), [5]);
}

#[test]
fn normalisations_and_reductions() {
    assert_eq!(ok(Op::Softmax { axis: -1 }, &[f32s(&[2, 3])], DType::F32), [2, 3]);
    fails(Op::Softmax { axis: 2 }, &[f32s(&[2, 3])], &["axis 2 is out of range", "-2 ..= 1"]);
    fails(Op::Softmax { axis: 0 }, &[t(DType::I32, &[2])], &["float"]);
    let ln = Op::LayerNormalization { axis: -1, epsilon: 1e-5 };
    assert_eq!(ok(ln.clone(), &[f32s(&[2, 5, 8]), f32s(&[8]), f32s(&[8])], DType::F32), [2, 5, 8]);
    let ln2 = Op::LayerNormalization { axis: 1, epsilon: 1e-5 };
    assert_eq!(ok(ln2, &[f32s(&[2, 5, 8]), f32s(&[1, 8])], DType::F32), [2, 5, 8]);
    fails(ln, &[f32s(&[2, 5, 8]), f32s(&[5])], &["(Scale) has shape [5]", "X.shape[2..] = [8]"]);
    let bn = Op::BatchNormalization { epsilon: 1e-5 };
    let p = f32s(&[3]);
    assert_eq!(
        ok(bn.clone(), &[f32s(&[1, 3, 4, 4]), p.clone(), p.clone(), p.clone(), p.clone()], DType::F32),
        [1, 3, 4, 4]
    );
    fails(
        bn.clone(),
        &[f32s(&[1, 3, 4, 4]), p.clone(), p.clone(), f32s(&[4]), p.clone()],
        &["(input_mean)", "expected [3]"],
    );
    fails(bn, &[f32s(&[1, 3, 4, 4]), p.clone()], &["expected 5"]);
    let lrn = Op::Lrn { size: 5, alpha: 1e-4, beta: 0.75, bias: 1.0 };
    assert_eq!(ok(lrn, &[f32s(&[1, 8, 4, 4])], DType::F32), [1, 8, 4, 4]);

    let x = f32s(&[2, 3, 4]);
    assert_eq!(ok(Op::ReduceMean { axes: vec![], keepdims: false }, &[x.clone()], DType::F32), Vec::<usize>::new());
    assert_eq!(ok(Op::ReduceMean { axes: vec![], keepdims: true }, &[x.clone()], DType::F32), [1, 1, 1]);
    assert_eq!(ok(Op::ReduceSum { axes: vec![-1, 0], keepdims: true }, &[x.clone()], DType::F32), [1, 3, 1]);
    assert_eq!(ok(Op::ReduceMax { axes: vec![1], keepdims: false }, &[x.clone()], DType::F32), [2, 4]);
    fails(Op::ReduceSum { axes: vec![1, -2], keepdims: true }, &[x.clone()], &["appears twice"]);
    fails(Op::ReduceMax { axes: vec![3], keepdims: true }, &[x], &["axis 3 is out of range"]);
}

#[test]
fn movement() {
    let x = f32s(&[2, 3, 4]);
    assert_eq!(ok(Op::Concat { axis: 1 }, &[x.clone(), f32s(&[2, 5, 4])], DType::F32), [2, 8, 4]);
    fails(Op::Concat { axis: 1 }, &[x.clone(), f32s(&[2, 5, 5])], &["expected equal dims except on axis 1"]);
    fails(Op::Concat { axis: 0 }, &[x.clone(), t(DType::I64, &[2, 3, 4])], &["dtype i64"]);

    let outs = infer(&Op::Split { axis: -1, sizes: vec![1, 3] }, &[Some(x.clone())]).unwrap();
    assert_eq!(outs.iter().map(|o| o.1.dims().to_vec()).collect::<Vec<_>>(), [vec![2, 3, 1], vec![2, 3, 3]]);
    fails(Op::Split { axis: 1, sizes: vec![1, 1] }, &[x.clone()], &["sum to 2", "expected them to sum to 3"]);

    let rs = |s: &[i64], z| Op::Reshape { shape: s.to_vec(), allow_zero: z };
    assert_eq!(ok(rs(&[0, -1], false), &[x.clone()], DType::F32), [2, 12]);
    assert_eq!(ok(rs(&[0, 4], true), &[f32s(&[0, 3])], DType::F32), [0, 4]);
    fails(rs(&[-1, -1], false), &[x.clone()], &["more than one -1"]);
    fails(rs(&[5, -1], false), &[x.clone()], &["not a multiple of 5"]);
    fails(rs(&[2, 3], false), &[x.clone()], &["6 elements", "has 24"]);
    fails(rs(&[0, -1], true), &[x.clone()], &["allowzero"]);
    fails(rs(&[-2, 12], false), &[x.clone()], &["-2"]);

    assert_eq!(ok(Op::Flatten { axis: 1 }, &[x.clone()], DType::F32), [2, 12]);
    assert_eq!(ok(Op::Flatten { axis: 3 }, &[x.clone()], DType::F32), [24, 1]);
    assert_eq!(ok(Op::Flatten { axis: -3 }, &[x.clone()], DType::F32), [1, 24]);
    fails(Op::Flatten { axis: 4 }, &[x.clone()], &["axis 4"]);

    assert_eq!(ok(Op::Transpose { perm: vec![2, 0, 1] }, &[x.clone()], DType::F32), [4, 2, 3]);
    assert_eq!(ok(Op::Transpose { perm: vec![] }, &[x.clone()], DType::F32), [4, 3, 2]);
    fails(Op::Transpose { perm: vec![0, 0, 1] }, &[x.clone()], &["not a permutation"]);

    let y = f32s(&[1, 3, 1]);
    assert_eq!(ok(Op::Squeeze { axes: vec![] }, &[y.clone()], DType::F32), [3]);
    assert_eq!(ok(Op::Squeeze { axes: vec![-1] }, &[y.clone()], DType::F32), [1, 3]);
    fails(Op::Squeeze { axes: vec![1] }, &[y], &["its size is 3, expected 1"]);
    assert_eq!(ok(Op::Unsqueeze { axes: vec![0, -1] }, &[f32s(&[3])], DType::F32), [1, 3, 1]);
    assert_eq!(ok(Op::Unsqueeze { axes: vec![1] }, &[f32s(&[2, 3])], DType::F32), [2, 1, 3]);
    fails(Op::Unsqueeze { axes: vec![3] }, &[f32s(&[3])], &["out of range"]);

    let idx = t(DType::I64, &[5, 6]);
    assert_eq!(ok(Op::Gather { axis: 1 }, &[x.clone(), idx.clone()], DType::F32), [2, 5, 6, 4]);
    assert_eq!(ok(Op::Gather { axis: 0 }, &[x.clone(), t(DType::I32, &[])], DType::F32), [3, 4]);
    fails(Op::Gather { axis: 0 }, &[x.clone(), f32s(&[2])], &["(indices) has dtype f32; expected i32 or i64"]);
    // Constant indices are range-checked at inference.
    let consts = Tensor::i64(vec![2], vec![0, 3]);
    let e = infer_node("g", &Op::Gather { axis: 0 }, &[Some(&x), Some(&t(DType::I64, &[2]))], &[None, Some(&consts)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 3 is out of range"), "{e}");

    let rz = |s: &[f32]| Op::Resize {
        scales: s.to_vec(),
        mode: ResizeMode::Nearest,
        transform: CoordinateTransform::Asymmetric,
        nearest: NearestMode::Floor,
    };
    assert_eq!(ok(rz(&[1.0, 1.0, 2.0, 2.0]), &[f32s(&[1, 3, 5, 7])], DType::F32), [1, 3, 10, 14]);
    assert_eq!(ok(rz(&[1.0, 1.0, 0.5, 1.5]), &[f32s(&[1, 3, 5, 7])], DType::F32), [1, 3, 2, 10]);
    // Scales resolved from sizes round back to the sizes.
    assert_eq!(ok(rz(&[7.0 / 3.0]), &[f32s(&[3])], DType::F32), [7]);
    fails(rz(&[2.0]), &[f32s(&[1, 3])], &["scales has 1 entries", "rank 2"]);
    fails(rz(&[0.0, 1.0]), &[f32s(&[1, 3])], &["not a positive"]);

    assert_eq!(ok(Op::Pad { pads: vec![0, 1, 2, 3], value: 0.0 }, &[f32s(&[2, 2])], DType::F32), [4, 6]);
    fails(Op::Pad { pads: vec![1, 1], value: 0.0 }, &[f32s(&[2, 2])], &["expected 4"]);

    let sl = |s: &[i64], e: &[i64], a: &[i64], st: &[i64]| Op::Slice {
        starts: s.to_vec(),
        ends: e.to_vec(),
        axes: a.to_vec(),
        steps: st.to_vec(),
    };
    assert_eq!(ok(sl(&[1], &[i64::MAX], &[1], &[]), &[x.clone()], DType::F32), [2, 2, 4]);
    assert_eq!(ok(sl(&[-1, 0], &[i64::MIN, 10], &[-1, 0], &[-1, 1]), &[x.clone()], DType::F32), [2, 3, 4]);
    assert_eq!(ok(sl(&[3], &[0], &[2], &[-2]), &[x.clone()], DType::F32), [2, 3, 2]);
    assert_eq!(ok(sl(&[2], &[1], &[2], &[1]), &[x.clone()], DType::F32), [2, 3, 0]);
    fails(sl(&[0], &[1], &[0], &[0]), &[x.clone()], &["step", "non-zero"]);
    fails(sl(&[0], &[1, 2], &[], &[]), &[x.clone()], &["equal lengths"]);
    fails(sl(&[0, 0], &[1, 1], &[1, -2], &[]), &[x], &["sliced twice"]);
}

#[test]
fn pads_that_overflow_a_dimension_are_refused_not_wrapped() {
    // 2 + (2^63 - 1) + (2^63 - 1) wraps to 0 in 64-bit arithmetic.
    let huge = (1usize << 63) - 1;
    let pad = Op::Pad { pads: vec![0, huge, 0, huge], value: 0.0 };
    fails(pad, &[f32s(&[1, 2])], &["axis 1", "overflows"]);
    assert_eq!(ok(Op::Pad { pads: vec![0, 1, 0, 2], value: 0.0 }, &[f32s(&[1, 2])], DType::F32), [1, 5]);
}

#[test]
fn new_reductions_and_arg_ops() {
    let x = f32s(&[2, 3, 4]);
    assert_eq!(ok(Op::ReduceMin { axes: vec![-1], keepdims: false }, &[x.clone()], DType::F32), vec![2, 3]);
    assert_eq!(ok(Op::ReduceProd { axes: vec![0, 2], keepdims: true }, &[x.clone()], DType::F32), vec![1, 3, 1]);
    assert_eq!(ok(Op::LogSoftmax { axis: 1 }, &[x.clone()], DType::F32), vec![2, 3, 4]);
    let am = Op::ArgMax { axis: -2, keepdims: true, select_last_index: false };
    assert_eq!(ok(am, &[x.clone()], DType::I64), vec![2, 1, 4]);
    let an = Op::ArgMin { axis: 2, keepdims: false, select_last_index: true };
    assert_eq!(ok(an, &[t(DType::I32, &[2, 3, 4])], DType::I64), vec![2, 3]);
    fails(Op::ArgMax { axis: 3, keepdims: true, select_last_index: false }, &[x.clone()], &["axis 3", "rank 3"]);
    fails(Op::ArgMax { axis: 0, keepdims: true, select_last_index: false }, &[f32s(&[0, 2])], &["empty"]);
    fails(Op::LogSoftmax { axis: 0 }, &[t(DType::I64, &[2])], &["i64"]);
}

#[test]
fn gather_elements_shapes() {
    let x = f32s(&[3, 4]);
    let i = t(DType::I64, &[2, 4]);
    assert_eq!(ok(Op::GatherElements { axis: 0 }, &[x.clone(), i.clone()], DType::F32), vec![2, 4]);
    fails(Op::GatherElements { axis: 0 }, &[x.clone(), t(DType::I64, &[4])], &["same rank"]);
    fails(Op::GatherElements { axis: 0 }, &[x.clone(), t(DType::I64, &[2, 5])], &["dimension 1"]);
    fails(Op::GatherElements { axis: 1 }, &[x.clone(), t(DType::F32, &[2, 2])], &["indices", "i32 or i64"]);
}

#[test]
fn cumulative_ops_keep_the_shape_and_check_the_axis() {
    let op = |axis| Op::CumSum { axis, exclusive: false, reverse: true };
    assert_eq!(ok(op(-1), &[f32s(&[2, 3])], DType::F32), [2, 3]);
    assert_eq!(ok(Op::CumProd { axis: 0, exclusive: true, reverse: false }, &[t(DType::I64, &[4])], DType::I64), [4]);
    fails(op(2), &[f32s(&[2, 3])], &["axis 2", "rank 2"]);
    fails(op(0), &[t(DType::Bool, &[2])], &["bool"]);
    fails(op(0), &[f32s(&[])], &["scalar"]);
}

#[test]
fn trigonometric_unaries_take_floats() {
    for u in [UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Tan, UnaryOp::Asin, UnaryOp::Acos, UnaryOp::Atan] {
        assert_eq!(ok(Op::Unary(u), &[t(DType::F16, &[3])], DType::F16), [3]);
        fails(Op::Unary(u), &[t(DType::I32, &[3])], &["i32"]);
    }
}

#[test]
fn scatter_and_gather_nd_shapes() {
    use weft_graph::ScatterReduction as R;
    let i64s = |d: &[usize]| t(DType::I64, d);
    let se = Op::ScatterElements { axis: -1, reduction: R::Add };
    assert_eq!(ok(se.clone(), &[f32s(&[3, 4]), i64s(&[2, 2]), f32s(&[2, 2])], DType::F32), [3, 4]);
    fails(se.clone(), &[f32s(&[3, 4]), i64s(&[2, 2]), f32s(&[2, 3])], &["updates"]);
    fails(se, &[f32s(&[3, 4]), i64s(&[4, 2]), f32s(&[4, 2])], &["dimension 0"]);
    let nd = Op::ScatterND { reduction: R::None };
    assert_eq!(ok(nd.clone(), &[f32s(&[4, 3, 2]), i64s(&[5, 2]), f32s(&[5, 2])], DType::F32), [4, 3, 2]);
    fails(nd.clone(), &[f32s(&[4, 3, 2]), i64s(&[5, 2]), f32s(&[5, 3])], &["updates", "[5x2]"]);
    fails(nd, &[f32s(&[4, 3]), i64s(&[5, 3]), f32s(&[5])], &["tuples of 3"]);
    assert_eq!(ok(Op::GatherND { batch_dims: 0 }, &[f32s(&[4, 3, 2]), i64s(&[5, 2])], DType::F32), [5, 2]);
    assert_eq!(ok(Op::GatherND { batch_dims: 1 }, &[f32s(&[2, 3, 4]), i64s(&[2, 6, 1])], DType::F32), [2, 6, 4]);
    fails(Op::GatherND { batch_dims: 1 }, &[f32s(&[2, 3, 4]), i64s(&[3, 1])], &["first 1 dims"]);
    fails(Op::GatherND { batch_dims: 0 }, &[f32s(&[2, 3]), t(DType::F32, &[1, 1])], &["i32 or i64"]);
}

#[test]
fn bitwise_ops_take_integers_of_one_type() {
    let u8s = t(DType::U8, &[2, 3]);
    for b in [BinaryOp::BitwiseAnd, BinaryOp::BitwiseOr, BinaryOp::BitwiseXor, BinaryOp::BitShift { left: true }] {
        assert_eq!(ok(Op::Binary(b), &[u8s.clone(), t(DType::U8, &[3])], DType::U8), [2, 3]);
        fails(Op::Binary(b), &[f32s(&[3]), f32s(&[3])], &["f32", "integer"]);
        fails(Op::Binary(b), &[t(DType::Bool, &[3]), t(DType::Bool, &[3])], &["bool", "integer"]);
        fails(Op::Binary(b), &[u8s.clone(), t(DType::I8, &[3])], &["i8", "u8"]);
    }
    assert_eq!(ok(Op::Unary(UnaryOp::BitwiseNot), &[t(DType::I64, &[4])], DType::I64), [4]);
    fails(Op::Unary(UnaryOp::BitwiseNot), &[f32s(&[4])], &["integer"]);
}

#[test]
fn bit_cast_keeps_the_shape_between_types_of_one_size() {
    assert_eq!(ok(Op::BitCast { to: DType::I32 }, &[f32s(&[2, 2])], DType::I32), [2, 2]);
    assert_eq!(ok(Op::BitCast { to: DType::U8 }, &[t(DType::Bool, &[])], DType::U8), Vec::<usize>::new());
    fails(Op::BitCast { to: DType::F64 }, &[f32s(&[2])], &["4 bytes", "8 bytes"]);
}

#[test]
fn float_mod_is_numpy_mod_without_fmod() {
    let m = Op::Binary(BinaryOp::Mod { fmod: false });
    assert_eq!(ok(m, &[f32s(&[3]), f32s(&[1])], DType::F32), [3]);
}
