//! The reference evaluator on small hand-computed cases, one or more per op.

use weft_graph::{
    eval_node, evaluate, BinaryOp, CoordinateTransform, DType, GraphBuilder, GraphError, NearestMode, Op, Padding,
    ResizeMode, Tensor, TensorData, UnaryOp, Window,
};

fn ev(op: Op, inputs: &[&Tensor]) -> Vec<Tensor> {
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
    eval_node("node", &op, &ins).unwrap_or_else(|e| panic!("{e}"))
}

fn ev1(op: Op, inputs: &[&Tensor]) -> Tensor {
    ev(op, inputs).remove(0)
}

fn f(dims: &[usize], v: &[f32]) -> Tensor {
    Tensor::f32(dims, v.to_vec())
}

fn close(got: &Tensor, dims: &[usize], want: &[f64]) {
    assert_eq!(got.shape.dims(), dims, "shape");
    let g = got.to_f64();
    assert_eq!(g.len(), want.len());
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "element {i}: got {a}, want {b} (all: {g:?})");
    }
}

fn iota(dims: &[usize], from: f32) -> Tensor {
    let n: usize = dims.iter().product();
    Tensor::f32(dims, (0..n).map(|i| from + i as f32).collect())
}

fn window(k: &[usize], s: &[usize], d: &[usize], pads: &[usize]) -> Window {
    Window { kernel: k.to_vec(), strides: s.to_vec(), dilations: d.to_vec(), padding: Padding::Explicit(pads.to_vec()) }
}

#[test]
fn conv_plain_padded_strided_dilated() {
    let x = iota(&[1, 1, 3, 3], 1.0);
    let w = f(&[1, 1, 2, 2], &[1.0; 4]);
    let y = ev1(Op::Conv { window: window(&[2, 2], &[], &[], &[]), groups: 1 }, &[&x, &w]);
    close(&y, &[1, 1, 2, 2], &[12.0, 16.0, 24.0, 28.0]);
    // 3x3 ones, pad 1, stride 2: window sums around the corners.
    let w3 = f(&[1, 1, 3, 3], &[1.0; 9]);
    let b = f(&[1], &[0.5]);
    let y = ev1(Op::Conv { window: window(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), groups: 1 }, &[&x, &w3, &b]);
    close(&y, &[1, 1, 2, 2], &[12.5, 16.5, 24.5, 28.5]);
    // Dilation 2 picks the four corners.
    let y = ev1(Op::Conv { window: window(&[2, 2], &[], &[2, 2], &[]), groups: 1 }, &[&x, &w]);
    close(&y, &[1, 1, 1, 1], &[20.0]);
    // SAME_UPPER on even input with stride 2: total pad 1, at the end.
    let x4 = iota(&[1, 1, 1, 4], 1.0);
    let w2 = f(&[1, 1, 1, 2], &[1.0, 10.0]);
    let same = Window { kernel: vec![1, 2], strides: vec![1, 2], dilations: vec![], padding: Padding::SameUpper };
    let y = ev1(Op::Conv { window: same.clone(), groups: 1 }, &[&x4, &w2]);
    close(&y, &[1, 1, 1, 2], &[21.0, 43.0]);
    // Input 5, stride 2: out 3, total pad 1; SAME_LOWER puts it first.
    let x5 = iota(&[1, 1, 1, 5], 1.0);
    let lower = Window { padding: Padding::SameLower, ..same };
    let y = ev1(Op::Conv { window: lower, groups: 1 }, &[&x5, &w2]);
    close(&y, &[1, 1, 1, 3], &[10.0, 32.0, 54.0]);
}

#[test]
fn conv_groups_and_depthwise() {
    // Depthwise: 2 channels, one 1x1 filter each.
    let x = f(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let w = f(&[2, 1, 1, 1], &[1.0, 10.0]);
    let y = ev1(Op::Conv { window: window(&[1, 1], &[], &[], &[]), groups: 2 }, &[&x, &w]);
    close(&y, &[1, 2, 1, 2], &[1.0, 2.0, 30.0, 40.0]);
    // 4 channels in 2 groups, one output per group summing its 2 channels.
    let x = f(&[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
    let w = f(&[2, 2, 1, 1], &[1.0, 1.0, 1.0, -1.0]);
    let y = ev1(Op::Conv { window: window(&[1, 1], &[], &[], &[]), groups: 2 }, &[&x, &w]);
    close(&y, &[1, 2, 1, 1], &[3.0, -1.0]);
}

#[test]
fn conv_transpose_stride_pads_output_padding_groups() {
    let x = f(&[1, 1, 2], &[1.0, 2.0]);
    let w = f(&[1, 1, 3], &[1.0, 1.0, 1.0]);
    let op = |pads: &[usize], op: &[usize]| Op::ConvTranspose {
        window: window(&[3], &[2], &[], pads),
        groups: 1,
        output_padding: op.to_vec(),
    };
    close(&ev1(op(&[], &[]), &[&x, &w]), &[1, 1, 5], &[1.0, 1.0, 3.0, 2.0, 2.0]);
    close(&ev1(op(&[1, 1], &[]), &[&x, &w]), &[1, 1, 3], &[1.0, 3.0, 2.0]);
    let b = f(&[1], &[1.0]);
    close(&ev1(op(&[], &[1]), &[&x, &w, &b]), &[1, 1, 6], &[2.0, 2.0, 4.0, 3.0, 3.0, 1.0]);
    // Two groups: channel 0 feeds output 0, channel 1 feeds output 1.
    let x = f(&[1, 2, 1], &[1.0, 2.0]);
    let w = f(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y =
        ev1(Op::ConvTranspose { window: window(&[2], &[], &[], &[]), groups: 2, output_padding: vec![] }, &[&x, &w]);
    close(&y, &[1, 2, 2], &[1.0, 2.0, 6.0, 8.0]);
}

#[test]
fn pooling_ceil_mode_and_count_include_pad() {
    let x = iota(&[1, 1, 5], 1.0);
    let max = |ceil| Op::MaxPool { window: window(&[2], &[2], &[], &[]), ceil_mode: ceil };
    close(&ev1(max(false), &[&x]), &[1, 1, 2], &[2.0, 4.0]);
    close(&ev1(max(true), &[&x]), &[1, 1, 3], &[2.0, 4.0, 5.0]);
    let avg = |w: Window, ceil, inc| Op::AveragePool { window: w, ceil_mode: ceil, count_include_pad: inc };
    // The ceil_mode window hanging past the end counts only the real element.
    close(&ev1(avg(window(&[2], &[2], &[], &[]), true, true), &[&x]), &[1, 1, 3], &[1.5, 3.5, 5.0]);
    let x3 = iota(&[1, 1, 3], 1.0);
    let padded = window(&[3], &[1], &[], &[1, 1]);
    close(&ev1(avg(padded.clone(), false, false), &[&x3]), &[1, 1, 3], &[1.5, 2.0, 2.5]);
    close(&ev1(avg(padded, false, true), &[&x3]), &[1, 1, 3], &[1.0, 2.0, 5.0 / 3.0]);
    // Max pool ignores padding even when values are negative.
    let neg = f(&[1, 1, 2], &[-3.0, -1.0]);
    close(
        &ev1(Op::MaxPool { window: window(&[2], &[1], &[], &[1, 1]), ceil_mode: false }, &[&neg]),
        &[1, 1, 3],
        &[-3.0, -1.0, -1.0],
    );
    // 2-D, dilated.
    let x = iota(&[1, 1, 3, 3], 1.0);
    close(
        &ev1(Op::MaxPool { window: window(&[2, 2], &[1, 1], &[2, 2], &[]), ceil_mode: false }, &[&x]),
        &[1, 1, 1, 1],
        &[9.0],
    );
    close(&ev1(Op::GlobalAveragePool, &[&x]), &[1, 1, 1, 1], &[5.0]);
    close(&ev1(Op::GlobalMaxPool, &[&x]), &[1, 1, 1, 1], &[9.0]);
}

#[test]
fn gemm_with_transposes_and_broadcast_c() {
    let a = f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = f(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
    let c = f(&[2], &[1.0, 2.0]);
    let op = Op::Gemm { alpha: 2.0, beta: 0.5, trans_a: true, trans_b: true };
    close(&ev1(op, &[&a, &b, &c]), &[2, 2], &[46.5, 63.0, 68.5, 93.0]);
    let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false };
    let c = f(&[2, 1], &[10.0, 20.0]);
    close(&ev1(op, &[&a, &b, &c]), &[2, 2], &[29.0, 32.0, 63.0, 70.0]);
    // Optional C omitted.
    let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false };
    let y = eval_node("g", &op, &[Some(&a), Some(&b), None]).unwrap();
    close(&y[0], &[2, 2], &[19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn matmul_batch_broadcast_and_vectors() {
    // [2, 1, 2] x [2, 1] -> [2, 1, 1].
    let a = f(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = f(&[2, 1], &[1.0, 1.0]);
    close(&ev1(Op::MatMul, &[&a, &b]), &[2, 1, 1], &[3.0, 7.0]);
    // [2, 1, 1, 2] x [3, 2, 1] -> [2, 3, 1, 1].
    let a = f(&[2, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = f(&[3, 2, 1], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    close(&ev1(Op::MatMul, &[&a, &b]), &[2, 3, 1, 1], &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
    // 1-D operands.
    let v = f(&[2], &[1.0, 2.0]);
    let m = iota(&[2, 3], 1.0);
    close(&ev1(Op::MatMul, &[&v, &m]), &[3], &[9.0, 12.0, 15.0]);
    let m = iota(&[2, 2, 2], 1.0);
    close(&ev1(Op::MatMul, &[&m, &v]), &[2, 2], &[5.0, 11.0, 17.0, 23.0]);
    close(&ev1(Op::MatMul, &[&v, &v]), &[], &[5.0]);
}

#[test]
fn softmax_and_layer_norm() {
    let x = f(&[2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
    let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let s: f64 = e.iter().sum();
    let third = 1.0 / 3.0;
    close(&ev1(Op::Softmax { axis: -1 }, &[&x]), &[2, 3], &[e[0] / s, e[1] / s, e[2] / s, third, third, third]);
    let x = f(&[2, 1], &[0.0, 0.0]);
    close(&ev1(Op::Softmax { axis: 0 }, &[&x]), &[2, 1], &[0.5, 0.5]);

    let x = f(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let scale = f(&[4], &[2.0; 4]);
    let bias = f(&[1], &[1.0]);
    let inv = 1.0 / (1.25f64 + 1e-5).sqrt();
    let want: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().map(|v| (v - 2.5) * inv * 2.0 + 1.0).collect();
    close(&ev1(Op::LayerNormalization { axis: -1, epsilon: 1e-5 }, &[&x, &scale, &bias]), &[1, 4], &want);
    // Over two axes, no bias.
    let x = f(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let scale = f(&[2, 2], &[1.0; 4]);
    let y = eval_node("ln", &Op::LayerNormalization { axis: 1, epsilon: 1e-5 }, &[Some(&x), Some(&scale), None]);
    close(&y.unwrap()[0], &[1, 2, 2], &want.iter().map(|v| (v - 1.0) / 2.0).collect::<Vec<_>>());
}

#[test]
fn batch_norm_and_lrn() {
    let x = f(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let (s, b, m, v) = (f(&[2], &[1.0, 2.0]), f(&[2], &[0.0, 1.0]), f(&[2], &[1.0, 3.0]), f(&[2], &[4.0, 1.0]));
    let y = ev1(Op::BatchNormalization { epsilon: 0.0 }, &[&x, &s, &b, &m, &v]);
    close(&y, &[1, 2, 1, 2], &[0.0, 0.5, 1.0, 3.0]);
    let x = f(&[1, 3, 1, 1], &[1.0, 2.0, 3.0]);
    let y = ev1(Op::Lrn { size: 3, alpha: 3.0, beta: 1.0, bias: 1.0 }, &[&x]);
    close(&y, &[1, 3, 1, 1], &[1.0 / 6.0, 2.0 / 15.0, 3.0 / 14.0]);
    // Even size: the window reaches one further up than down.
    let y = ev1(Op::Lrn { size: 2, alpha: 2.0, beta: 1.0, bias: 1.0 }, &[&x]);
    close(&y, &[1, 3, 1, 1], &[1.0 / 6.0, 2.0 / 14.0, 3.0 / 10.0]);
}

#[test]
fn gather_on_axes_with_negative_indices() {
    let x = iota(&[3, 2], 1.0);
    let idx = Tensor::i64(vec![1, 2], vec![0, 2]);
    close(&ev1(Op::Gather { axis: 0 }, &[&x, &idx]), &[1, 2, 2], &[1.0, 2.0, 5.0, 6.0]);
    let idx = Tensor::i32(vec![1], vec![-1]);
    close(&ev1(Op::Gather { axis: 1 }, &[&x, &idx]), &[3, 1], &[2.0, 4.0, 6.0]);
    let scalar = Tensor::i64(vec![], vec![1]);
    close(&ev1(Op::Gather { axis: 0 }, &[&x, &scalar]), &[2], &[3.0, 4.0]);
    let bad = Tensor::i64(vec![1], vec![3]);
    let e = eval_node("gat", &Op::Gather { axis: 0 }, &[Some(&x), Some(&bad)]).unwrap_err().to_string();
    assert!(e.contains("gat") && e.contains("out of range"), "{e}");
    // i64 data moves exactly.
    let big = Tensor::i64(vec![2], vec![i64::MAX, 1]);
    let y = ev1(Op::Gather { axis: 0 }, &[&big, &Tensor::i64(vec![1], vec![0])]);
    assert_eq!(y.data, TensorData::I64(vec![i64::MAX]));
}

fn resize(mode: ResizeMode, transform: CoordinateTransform, nearest: NearestMode, scales: &[f32]) -> Op {
    Op::Resize { scales: scales.to_vec(), mode, transform, nearest }
}

#[test]
fn resize_nearest_each_rounding_and_transform() {
    use CoordinateTransform::*;
    use NearestMode::*;
    let x = f(&[2], &[1.0, 2.0]);
    let n = ResizeMode::Nearest;
    close(&ev1(resize(n, Asymmetric, Floor, &[2.0]), &[&x]), &[4], &[1.0, 1.0, 2.0, 2.0]);
    close(&ev1(resize(n, HalfPixel, RoundPreferFloor, &[3.0]), &[&x]), &[6], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    close(&ev1(resize(n, Asymmetric, Ceil, &[2.0]), &[&x]), &[4], &[1.0, 2.0, 2.0, 2.0]);
    // Downsampling by 2 with half_pixel hits the .5 ties: 0.5 and 2.5.
    let x4 = f(&[4], &[1.0, 2.0, 3.0, 4.0]);
    close(&ev1(resize(n, HalfPixel, RoundPreferFloor, &[0.5]), &[&x4]), &[2], &[1.0, 3.0]);
    close(&ev1(resize(n, HalfPixel, RoundPreferCeil, &[0.5]), &[&x4]), &[2], &[2.0, 4.0]);
    // align_corners maps the ends onto the ends: 0, 1.5 -> 2 (prefer ceil), 3.
    close(&ev1(resize(n, AlignCorners, RoundPreferCeil, &[0.75]), &[&x4]), &[3], &[1.0, 3.0, 4.0]);
    close(&ev1(resize(n, PytorchHalfPixel, RoundPreferFloor, &[0.25]), &[&x4]), &[1], &[1.0]);
}

#[test]
fn resize_linear_each_transform() {
    use CoordinateTransform::*;
    let l = ResizeMode::Linear;
    let x = f(&[2], &[1.0, 2.0]);
    let nm = NearestMode::RoundPreferFloor;
    close(&ev1(resize(l, HalfPixel, nm, &[2.0]), &[&x]), &[4], &[1.0, 1.25, 1.75, 2.0]);
    close(&ev1(resize(l, PytorchHalfPixel, nm, &[2.0]), &[&x]), &[4], &[1.0, 1.25, 1.75, 2.0]);
    close(&ev1(resize(l, AlignCorners, nm, &[2.0]), &[&x]), &[4], &[1.0, 4.0 / 3.0, 5.0 / 3.0, 2.0]);
    close(&ev1(resize(l, Asymmetric, nm, &[2.0]), &[&x]), &[4], &[1.0, 1.5, 2.0, 2.0]);
    // One output: pytorch_half_pixel takes the first element, half_pixel the centre.
    let x3 = f(&[3], &[1.0, 2.0, 3.0]);
    close(&ev1(resize(l, PytorchHalfPixel, nm, &[0.4]), &[&x3]), &[1], &[1.0]);
    close(&ev1(resize(l, HalfPixel, nm, &[0.4]), &[&x3]), &[1], &[1.75]);
    // Bilinear over the last two axes.
    let x = f(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = ev1(resize(l, Asymmetric, nm, &[1.0, 1.0, 2.0, 2.0]), &[&x]);
    close(&y, &[1, 1, 4, 4], &[1.0, 1.5, 2.0, 2.0, 2.0, 2.5, 3.0, 3.0, 3.0, 3.5, 4.0, 4.0, 3.0, 3.5, 4.0, 4.0]);
}

#[test]
fn slice_split_concat_pad_transpose() {
    let x = iota(&[5], 0.0);
    let sl = |s: i64, e: i64, st: i64| Op::Slice { starts: vec![s], ends: vec![e], axes: vec![], steps: vec![st] };
    close(&ev1(sl(-1, i64::MIN, -2), &[&x]), &[3], &[4.0, 2.0, 0.0]);
    close(&ev1(sl(3, 0, -1), &[&x]), &[3], &[3.0, 2.0, 1.0]);
    close(&ev1(sl(1, i64::MAX, 2), &[&x]), &[2], &[1.0, 3.0]);
    close(&ev1(sl(4, 1, 1), &[&x]), &[0], &[]);
    let m = iota(&[2, 3], 0.0);
    let op = Op::Slice { starts: vec![-1], ends: vec![0], axes: vec![-1], steps: vec![-1] };
    close(&ev1(op, &[&m]), &[2, 2], &[2.0, 1.0, 5.0, 4.0]);

    let outs = ev(Op::Split { axis: 1, sizes: vec![1, 2] }, &[&m]);
    close(&outs[0], &[2, 1], &[0.0, 3.0]);
    close(&outs[1], &[2, 2], &[1.0, 2.0, 4.0, 5.0]);
    let n = iota(&[2, 1], 10.0);
    close(&ev1(Op::Concat { axis: -1 }, &[&m, &n]), &[2, 4], &[0.0, 1.0, 2.0, 10.0, 3.0, 4.0, 5.0, 11.0]);
    close(&ev1(Op::Concat { axis: 0 }, &[&m, &m]), &[4, 3], &(0..12).map(|i| (i % 6) as f64).collect::<Vec<_>>());

    let y = ev1(Op::Pad { pads: vec![1, 0, 0, 1], value: -1.0 }, &[&iota(&[1, 2], 1.0)]);
    close(&y, &[2, 3], &[-1.0, -1.0, -1.0, 1.0, 2.0, -1.0]);
    close(&ev1(Op::Transpose { perm: vec![1, 0] }, &[&m]), &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    close(&ev1(Op::Transpose { perm: vec![] }, &[&m]), &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let t = iota(&[2, 3, 4], 0.0);
    let y = ev1(Op::Transpose { perm: vec![2, 0, 1] }, &[&t]);
    assert_eq!(y.shape.dims(), &[4, 2, 3]);
    // y[i][j][k] = t[j][k][i] = 12j + 4k + i.
    assert_eq!(y.to_f64()[6 + 3 + 2], 12.0 + 8.0 + 1.0);
}

#[test]
fn reshapes_keep_data() {
    let m = iota(&[2, 3], 0.0);
    let y = ev1(Op::Reshape { shape: vec![0, -1, 1], allow_zero: false }, &[&m]);
    close(&y, &[2, 3, 1], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    close(&ev1(Op::Flatten { axis: 0 }, &[&m]), &[1, 6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    close(&ev1(Op::Squeeze { axes: vec![] }, &[&y]), &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    close(&ev1(Op::Unsqueeze { axes: vec![0, -1] }, &[&m]), &[1, 2, 3, 1], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    close(&ev1(Op::Identity, &[&m]), &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn reductions() {
    let m = iota(&[2, 3], 1.0);
    close(&ev1(Op::ReduceMean { axes: vec![], keepdims: false }, &[&m]), &[], &[3.5]);
    close(&ev1(Op::ReduceSum { axes: vec![-1], keepdims: true }, &[&m]), &[2, 1], &[6.0, 15.0]);
    close(&ev1(Op::ReduceMax { axes: vec![0], keepdims: false }, &[&m]), &[3], &[4.0, 5.0, 6.0]);
    close(&ev1(Op::ReduceMean { axes: vec![0, 1], keepdims: true }, &[&m]), &[1, 1], &[3.5]);
}

#[test]
fn elementwise_where_cast_sum() {
    let x = f(&[4], &[-2.0, -0.5, 0.5, 2.0]);
    let un = |u| ev1(Op::Unary(u), &[&x]).to_f64();
    assert_eq!(un(UnaryOp::Relu), vec![0.0, 0.0, 0.5, 2.0]);
    assert_eq!(un(UnaryOp::LeakyRelu { alpha: 0.1 })[0], -0.2f32 as f64);
    assert_eq!(un(UnaryOp::Clip { min: -1.0, max: 1.0 }), vec![-1.0, -0.5, 0.5, 1.0]);
    assert_eq!(un(UnaryOp::Floor), vec![-2.0, -1.0, 0.0, 2.0]);
    assert_eq!(un(UnaryOp::Ceil), vec![-2.0, -0.0, 1.0, 2.0]);
    assert_eq!(un(UnaryOp::Abs), vec![2.0, 0.5, 0.5, 2.0]);
    close(&ev1(Op::Unary(UnaryOp::HardSigmoid { alpha: 0.2, beta: 0.5 }), &[&x]), &[4], &[0.1, 0.4, 0.6, 0.9]);
    assert_eq!(un(UnaryOp::HardSwish)[3], (2.0 * (2.0 / 6.0 + 0.5)) as f32 as f64);
    assert_eq!(un(UnaryOp::Erf)[2], 0.520_499_877_813_046_5f64 as f32 as f64);
    assert_eq!(un(UnaryOp::Erf)[0], -0.995_322_265_018_952_7f64 as f32 as f64);
    assert_eq!(un(UnaryOp::Gelu)[3], 1.954_499_736_103_641_6f64 as f32 as f64);
    assert_eq!(un(UnaryOp::Sigmoid)[3], (1.0 / (1.0 + (-2.0f64).exp())) as f32 as f64);
    let big = f(&[2], &[4.0, -5.0]);
    let e = ev1(Op::Unary(UnaryOp::Erf), &[&big]).to_f64();
    assert_eq!(e, vec![0.999_999_984_582_742_1f64 as f32 as f64, -1.0]);

    let a = f(&[2, 1], &[1.0, 2.0]);
    let b = f(&[3], &[1.0, 2.0, 4.0]);
    close(&ev1(Op::Binary(BinaryOp::Sub), &[&a, &b]), &[2, 3], &[0.0, -1.0, -3.0, 1.0, 0.0, -2.0]);
    close(&ev1(Op::Binary(BinaryOp::Pow), &[&a, &b]), &[2, 3], &[1.0, 1.0, 1.0, 2.0, 4.0, 16.0]);
    let lt = ev1(Op::Binary(BinaryOp::Less), &[&a, &b]);
    assert_eq!(lt.dtype, DType::Bool);
    assert_eq!(lt.data, TensorData::Bool(vec![false, true, true, false, false, true]));
    let ia = Tensor::i64(vec![2], vec![7, -7]);
    let ib = Tensor::i64(vec![1], vec![2]);
    assert_eq!(ev1(Op::Binary(BinaryOp::Div), &[&ia, &ib]).data, TensorData::I64(vec![3, -3]));

    let cond = Tensor::bool(vec![2, 1], vec![true, false]);
    let y = ev1(Op::Where, &[&cond, &b, &f(&[1], &[0.0])]);
    close(&y, &[2, 3], &[1.0, 2.0, 4.0, 0.0, 0.0, 0.0]);
    close(&ev1(Op::Sum, &[&a, &b, &f(&[], &[10.0])]), &[2, 3], &[12.0, 13.0, 15.0, 13.0, 14.0, 16.0]);

    let c = f(&[3], &[1.7, -1.7, 0.0]);
    assert_eq!(ev1(Op::Cast { to: DType::I32 }, &[&c]).data, TensorData::I32(vec![1, -1, 0]));
    assert_eq!(ev1(Op::Cast { to: DType::Bool }, &[&c]).data, TensorData::Bool(vec![true, true, false]));
    let h = ev1(Op::Cast { to: DType::F16 }, &[&f(&[1], &[1.0 / 3.0])]);
    assert_eq!((h.dtype, h.to_f64()), (DType::F16, vec![0.333_251_953_125]));
    let i = ev1(Op::Cast { to: DType::F32 }, &[&Tensor::i64(vec![1], vec![3])]);
    assert_eq!(i.data, TensorData::F32(vec![3.0]));
}

#[test]
fn evaluate_checks_inputs_and_runs_the_graph() {
    let mut b = GraphBuilder::new("tiny");
    let x = b.input("x", DType::F32, &[1, 2]);
    let w = b.constant("w", f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    let y = b.matmul(x, w).unwrap();
    let y = b.relu(y).unwrap();
    b.output(y);
    b.output(w);
    let g = b.finish();
    let outs = evaluate(&g, &[f(&[1, 2], &[1.0, -1.0])]).unwrap();
    close(&outs[0], &[1, 2], &[0.0, 0.0]);
    close(&outs[1], &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let outs = evaluate(&g, &[f(&[1, 2], &[1.0, 1.0])]).unwrap();
    close(&outs[0], &[1, 2], &[4.0, 6.0]);
    assert!(
        matches!(evaluate(&g, &[f(&[2, 1], &[1.0, 1.0])]), Err(GraphError::Input { ref input, .. }) if input == "x")
    );
    assert!(matches!(evaluate(&g, &[]), Err(GraphError::Input { .. })));
    let broken = Tensor { dtype: DType::F32, shape: vec![1, 2].into(), data: TensorData::F32(vec![1.0]) };
    assert!(matches!(evaluate(&g, &[broken]), Err(GraphError::Input { .. })));
    let all = weft_graph::evaluate_all(&g, &[f(&[1, 2], &[1.0, 1.0])]).unwrap();
    assert_eq!(all.len(), 4);
}

#[test]
fn eval_node_refuses_what_inference_refuses() {
    let x = f(&[2], &[1.0, 2.0]);
    let e = eval_node("n1", &Op::Softmax { axis: 1 }, &[Some(&x)]).unwrap_err();
    assert!(matches!(e, GraphError::Shape { ref node, .. } if node == "n1"), "{e}");
    let e = eval_node("n2", &Op::MatMul, &[Some(&x)]).unwrap_err().to_string();
    assert!(e.contains("n2") && e.contains("expected 2"), "{e}");
}

#[test]
fn log_softmax_rows() {
    // ln(e^x / Σe^x) over [0, ln 3]: −ln 4 and ln 3 − ln 4.
    let l3 = 3f32.ln();
    let y = ev1(Op::LogSoftmax { axis: -1 }, &[&f(&[1, 2], &[0.0, l3])]);
    close(&y, &[1, 2], &[-(4f64.ln()), 3f64.ln() - 4f64.ln()]);
    // Over axis 0 of a 2×1: both equal, each −ln 2.
    let y = ev1(Op::LogSoftmax { axis: 0 }, &[&f(&[2, 1], &[5.0, 5.0])]);
    close(&y, &[2, 1], &[-(2f64.ln()), -(2f64.ln())]);
}

#[test]
fn reduce_min_and_prod() {
    let x = f(&[2, 3], &[3.0, -1.0, 2.0, 4.0, 5.0, 0.5]);
    let y = ev1(Op::ReduceMin { axes: vec![1], keepdims: false }, &[&x]);
    close(&y, &[2], &[-1.0, 0.5]);
    let y = ev1(Op::ReduceProd { axes: vec![0], keepdims: true }, &[&x]);
    close(&y, &[1, 3], &[12.0, -5.0, 1.0]);
    let y = ev1(Op::ReduceMin { axes: vec![-1], keepdims: true }, &[&f(&[1, 2], &[f32::NAN, 1.0])]);
    assert!(y.to_f64()[0].is_nan(), "ReduceMin propagates NaN");
}

#[test]
fn argmax_argmin_ties_nan_and_keepdims() {
    let x = f(&[2, 3], &[1.0, 5.0, 5.0, -2.0, -7.0, -7.0]);
    let am = |axis, keepdims, last| Op::ArgMax { axis, keepdims, select_last_index: last };
    let an = |axis, keepdims, last| Op::ArgMin { axis, keepdims, select_last_index: last };
    let y = ev1(am(1, false, false), &[&x]);
    assert_eq!((y.dtype, y.shape.dims().to_vec(), y.as_i64s().unwrap()), (DType::I64, vec![2], vec![1, 0]));
    let y = ev1(am(-1, true, true), &[&x]);
    assert_eq!((y.shape.dims().to_vec(), y.as_i64s().unwrap()), (vec![2, 1], vec![2, 0]));
    let y = ev1(an(1, false, false), &[&x]);
    assert_eq!(y.as_i64s().unwrap(), vec![0, 1]);
    let y = ev1(an(1, false, true), &[&x]);
    assert_eq!(y.as_i64s().unwrap(), vec![0, 2]);
    let y = ev1(am(0, false, false), &[&x]);
    assert_eq!(y.as_i64s().unwrap(), vec![0, 0, 0]);
    // NaN wins both ways, as numpy's argmax/argmin.
    let n = f(&[3], &[1.0, f32::NAN, 9.0]);
    assert_eq!(ev1(am(0, false, false), &[&n]).as_i64s().unwrap(), vec![1]);
    assert_eq!(ev1(an(0, false, false), &[&n]).as_i64s().unwrap(), vec![1]);
}

#[test]
fn gather_elements_on_each_axis() {
    let x = iota(&[2, 3], 0.0); // [[0 1 2] [3 4 5]]
    let idx = Tensor::i64(vec![2, 2], vec![2, -3, 1, 0]);
    let y = ev1(Op::GatherElements { axis: 1 }, &[&x, &idx]);
    close(&y, &[2, 2], &[2.0, 0.0, 4.0, 3.0]);
    let idx = Tensor::i64(vec![1, 3], vec![1, 0, 1]);
    let y = ev1(Op::GatherElements { axis: 0 }, &[&x, &idx]);
    close(&y, &[1, 3], &[3.0, 1.0, 5.0]);
    let bad = Tensor::i64(vec![1, 1], vec![3]);
    let e = eval_node("node", &Op::GatherElements { axis: 1 }, &[Some(&x), Some(&bad)]).unwrap_err();
    assert!(e.to_string().contains("index 3 is out of range"), "{e}");
}

#[test]
fn new_unary_maths() {
    let u = |op: UnaryOp, v: f32| ev1(Op::Unary(op), &[&f(&[1], &[v])]).to_f64()[0];
    let e1 = std::f64::consts::E;
    assert!((u(UnaryOp::Softplus, 0.0) - 2f64.ln()).abs() < 1e-6);
    assert!((u(UnaryOp::Softplus, 100.0) - 100.0).abs() < 1e-4);
    assert!((u(UnaryOp::Softsign, 3.0) - 0.75).abs() < 1e-7);
    assert!((u(UnaryOp::Elu { alpha: 2.0 }, -1.0) - 2.0 * (1.0 / e1 - 1.0)).abs() < 1e-6);
    assert_eq!(u(UnaryOp::Elu { alpha: 2.0 }, 1.5), 1.5);
    assert!((u(UnaryOp::Selu { alpha: 2.0, gamma: 3.0 }, -1.0) - 6.0 * (1.0 / e1 - 1.0)).abs() < 1e-6);
    assert!((u(UnaryOp::Selu { alpha: 2.0, gamma: 3.0 }, 2.0) - 6.0).abs() < 1e-6);
    assert!((u(UnaryOp::Celu { alpha: 2.0 }, -2.0) - 2.0 * (1.0 / e1 - 1.0)).abs() < 1e-6);
    assert_eq!(u(UnaryOp::ThresholdedRelu { alpha: 1.0 }, 1.0), 0.0);
    assert_eq!(u(UnaryOp::ThresholdedRelu { alpha: 1.0 }, 1.5), 1.5);
    assert!((u(UnaryOp::Mish, 1.0) - (1.0 + e1).ln().tanh()).abs() < 1e-6);
    assert!((u(UnaryOp::Sinh, 1.0) - (e1 - 1.0 / e1) / 2.0).abs() < 1e-6);
    assert!((u(UnaryOp::Cosh, 1.0) - (e1 + 1.0 / e1) / 2.0).abs() < 1e-6);
    assert!((u(UnaryOp::Asinh, -0.75) - -(0.75 + 1.5625f64.sqrt()).ln()).abs() < 1e-6);
    assert!((u(UnaryOp::Acosh, 1.25) - 2f64.ln()).abs() < 1e-6);
    assert!((u(UnaryOp::Atanh, 0.6) - 0.5 * 4f64.ln()).abs() < 1e-6);
}

#[test]
fn trigonometric_unaries_at_known_angles() {
    let u = |op: UnaryOp, x: f32| ev1(Op::Unary(op), &[&f(&[1], &[x])]).to_f64()[0];
    let pi = std::f64::consts::PI;
    assert!((u(UnaryOp::Sin, (pi / 6.0) as f32) - 0.5).abs() < 1e-6);
    assert!((u(UnaryOp::Cos, (pi / 3.0) as f32) - 0.5).abs() < 1e-6);
    assert!((u(UnaryOp::Tan, (pi / 4.0) as f32) - 1.0).abs() < 1e-6);
    assert!((u(UnaryOp::Asin, 0.5) - pi / 6.0).abs() < 1e-6);
    assert!((u(UnaryOp::Acos, 0.5) - pi / 3.0).abs() < 1e-6);
    assert!((u(UnaryOp::Acos, -1.0) - pi).abs() < 1e-6);
    assert!((u(UnaryOp::Atan, 1.0) - pi / 4.0).abs() < 1e-6);
    assert!(u(UnaryOp::Asin, 1.5).is_nan(), "outside [-1, 1]");
}

#[test]
fn cumsum_and_cumprod_each_direction() {
    let x = iota(&[2, 3], 1.0); // [[1 2 3] [4 5 6]]
    let cs = |axis, exclusive, reverse| Op::CumSum { axis, exclusive, reverse };
    let cp = |axis, exclusive, reverse| Op::CumProd { axis, exclusive, reverse };
    close(&ev1(cs(1, false, false), &[&x]), &[2, 3], &[1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    close(&ev1(cs(-1, true, false), &[&x]), &[2, 3], &[0.0, 1.0, 3.0, 0.0, 4.0, 9.0]);
    close(&ev1(cs(1, false, true), &[&x]), &[2, 3], &[6.0, 5.0, 3.0, 15.0, 11.0, 6.0]);
    close(&ev1(cs(1, true, true), &[&x]), &[2, 3], &[5.0, 3.0, 0.0, 11.0, 6.0, 0.0]);
    close(&ev1(cs(0, false, false), &[&x]), &[2, 3], &[1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    close(&ev1(cp(1, false, false), &[&x]), &[2, 3], &[1.0, 2.0, 6.0, 4.0, 20.0, 120.0]);
    close(&ev1(cp(1, true, true), &[&x]), &[2, 3], &[6.0, 3.0, 1.0, 30.0, 6.0, 1.0]);
    let i = Tensor::i32(vec![4], vec![1, -2, 3, 4]);
    assert_eq!(ev1(cs(0, true, false), &[&i]).as_i64s().unwrap(), vec![0, 1, -1, 2]);
}

#[test]
fn scatter_elements_and_scatter_nd_with_reductions() {
    use weft_graph::ScatterReduction as R;
    let x = iota(&[2, 3], 0.0); // [[0 1 2] [3 4 5]]
    let idx = Tensor::i64(vec![1, 3], vec![2, -3, 2]);
    let upd = f(&[1, 3], &[10.0, 20.0, 30.0]);
    // Row 0: column 2 gets 10 then 30, column 0 gets 20.
    let se = |reduction| Op::ScatterElements { axis: 1, reduction };
    close(&ev1(se(R::None), &[&x, &idx, &upd]), &[2, 3], &[20.0, 1.0, 30.0, 3.0, 4.0, 5.0]);
    close(&ev1(se(R::Add), &[&x, &idx, &upd]), &[2, 3], &[20.0, 1.0, 42.0, 3.0, 4.0, 5.0]);
    close(&ev1(se(R::Mul), &[&x, &idx, &upd]), &[2, 3], &[0.0, 1.0, 600.0, 3.0, 4.0, 5.0]);
    let small = f(&[1, 3], &[-1.0, -2.0, 7.0]);
    close(&ev1(se(R::Max), &[&x, &idx, &small]), &[2, 3], &[0.0, 1.0, 7.0, 3.0, 4.0, 5.0]);
    close(&ev1(se(R::Min), &[&x, &idx, &small]), &[2, 3], &[-2.0, 1.0, -1.0, 3.0, 4.0, 5.0]);
    let bad = Tensor::i64(vec![1, 1], vec![3]);
    let e = eval_node("n", &se(R::None), &[Some(&x), Some(&bad), Some(&f(&[1, 1], &[1.0]))]).unwrap_err();
    assert!(e.to_string().contains("index 3 is out of range"), "{e}");

    // ScatterND: tuple [1] replaces row 1; tuples of 2 address elements.
    let rows = Tensor::i64(vec![1, 1], vec![1]);
    let nd = |reduction| Op::ScatterND { reduction };
    close(&ev1(nd(R::None), &[&x, &rows, &f(&[1, 3], &[7.0, 8.0, 9.0])]), &[2, 3], &[0.0, 1.0, 2.0, 7.0, 8.0, 9.0]);
    let elems = Tensor::i64(vec![2, 2], vec![0, -1, 0, 2]);
    close(&ev1(nd(R::Add), &[&x, &elems, &f(&[2], &[1.0, 2.0])]), &[2, 3], &[0.0, 1.0, 5.0, 3.0, 4.0, 5.0]);
}

#[test]
fn gather_nd_with_batch_dims() {
    let x = iota(&[2, 2, 2], 0.0); // [[[0 1] [2 3]] [[4 5] [6 7]]]
    let idx = Tensor::i64(vec![2, 2], vec![0, 1, 1, 0]);
    close(&ev1(Op::GatherND { batch_dims: 0 }, &[&x, &idx]), &[2, 2], &[2.0, 3.0, 4.0, 5.0]);
    // batch_dims 1: batch 0 takes row 1 ([2 3]), batch 1 row 0 ([4 5]).
    let idx = Tensor::i64(vec![2, 1], vec![1, 0]);
    close(&ev1(Op::GatherND { batch_dims: 1 }, &[&x, &idx]), &[2, 2], &[2.0, 3.0, 4.0, 5.0]);
    let idx = Tensor::i64(vec![2, 3], vec![0, 1, -1, 1, 0, 0]);
    close(&ev1(Op::GatherND { batch_dims: 0 }, &[&x, &idx]), &[2], &[3.0, 4.0]);
}

#[test]
fn top_k_orders_ties_by_index_and_nan_as_largest() {
    let x = f(&[2, 4], &[3.0, 1.0, 3.0, 2.0, f32::NAN, 0.0, -1.0, 0.0]);
    let top = ev(Op::TopK { axis: 1, k: 3, largest: true }, &[&x]);
    assert_eq!(top[1].as_i64s().unwrap(), vec![0, 2, 3, 0, 1, 3]);
    let v = top[0].to_f64();
    assert_eq!(&v[..3], &[3.0, 3.0, 2.0]);
    assert!(v[3].is_nan() && v[4] == 0.0 && v[5] == 0.0, "{v:?}");
    let low = ev(Op::TopK { axis: -1, k: 2, largest: false }, &[&x]);
    assert_eq!(low[1].as_i64s().unwrap(), vec![1, 3, 2, 1]);
    close(&low[0], &[2, 2], &[1.0, 2.0, -1.0, 0.0]);
    let down = ev(Op::TopK { axis: 0, k: 1, largest: true }, &[&f(&[2, 2], &[1.0, 5.0, 4.0, 5.0])]);
    assert_eq!(down[1].as_i64s().unwrap(), vec![1, 0]);
}

#[test]
fn bitwise_ops_on_exact_integers_of_every_width() {
    let and = ev1(
        Op::Binary(BinaryOp::BitwiseAnd),
        &[&Tensor::from_ints(DType::U8, vec![2], &[0b1100, 255]), &Tensor::from_ints(DType::U8, vec![1], &[0b1010])],
    );
    assert_eq!(and.as_i128s().unwrap(), vec![0b1000, 0b1010]);
    // u64 values above 2^53 survive (an f64 path would round them).
    let big = (1u64 << 63) | 1;
    let x = Tensor { dtype: DType::U64, shape: vec![1].into(), data: TensorData::U64(vec![big]) };
    let y = Tensor { dtype: DType::U64, shape: vec![1].into(), data: TensorData::U64(vec![3]) };
    assert_eq!(ev1(Op::Binary(BinaryOp::BitwiseXor), &[&x, &y]).as_i128s().unwrap(), vec![(big ^ 3) as i128]);
    assert_eq!(ev1(Op::Binary(BinaryOp::BitwiseOr), &[&x, &y]).as_i128s().unwrap(), vec![(big | 3) as i128]);
    // Not: -6 is !5 in two's complement; 250 is !5 in eight unsigned bits.
    let not = |dtype| ev1(Op::Unary(UnaryOp::BitwiseNot), &[&Tensor::from_ints(dtype, vec![1], &[5])]);
    assert_eq!(not(DType::I16).as_i128s().unwrap(), vec![-6]);
    assert_eq!(not(DType::U8).as_i128s().unwrap(), vec![250]);
}

#[test]
fn bit_shifts_wrap_and_saturate_outside_the_width() {
    let shift = |left, dtype, x: &[i128], y: &[i128]| {
        let (xt, yt) = (Tensor::from_ints(dtype, vec![x.len()], x), Tensor::from_ints(dtype, vec![y.len()], y));
        ev1(Op::Binary(BinaryOp::BitShift { left }), &[&xt, &yt]).as_i128s().unwrap()
    };
    // 0b0110_0000 << 2 keeps the low eight bits: 0b1000_0000 = 128 (u8), -128 (i8).
    assert_eq!(shift(true, DType::U8, &[96, 1, 1], &[2, 7, 8]), vec![128, 128, 0]);
    assert_eq!(shift(true, DType::I8, &[96, 1, 1], &[2, 7, -1]), vec![-128, -128, 0]);
    // Right shifts of signed values are arithmetic; an amount of the width
    // or more (or below zero) leaves only the sign.
    assert_eq!(shift(false, DType::I32, &[-16, -16, 16, -1], &[2, 32, 40, -3]), vec![-4, -1, 0, -1]);
    assert_eq!(shift(false, DType::U16, &[0x8000, 0x8000], &[15, 16]), vec![1, 0]);
}

#[test]
fn bit_cast_reads_the_same_bits() {
    let one = ev1(Op::BitCast { to: DType::I32 }, &[&f(&[2], &[1.0, -2.0])]);
    assert_eq!(one.as_i128s().unwrap(), vec![0x3f80_0000, 0xc000_0000u32 as i32 as i128]);
    let back = ev1(Op::BitCast { to: DType::F32 }, &[&Tensor::i32(vec![1], vec![0x4049_0fdb])]);
    assert_eq!(back.to_f64()[0] as f32, std::f32::consts::PI);
    let u = ev1(Op::BitCast { to: DType::U8 }, &[&Tensor::from_ints(DType::I8, vec![2], &[-1, 5])]);
    assert_eq!(u.as_i128s().unwrap(), vec![255, 5]);
    let ins = [Some(&Tensor::i32(vec![1], vec![1]))];
    assert!(eval_node("n", &Op::BitCast { to: DType::I64 }, &ins).is_err(), "sizes differ");
}

#[test]
fn float_mod_takes_the_divisors_sign() {
    let x = Tensor {
        dtype: DType::F64,
        shape: vec![6].into(),
        data: TensorData::F64(vec![-4.5, 7.0, -3.0, 1.0, 4.0, -4.0]),
    };
    let y = Tensor {
        dtype: DType::F64,
        shape: vec![6].into(),
        data: TensorData::F64(vec![2.0, -3.0, f64::INFINITY, f64::NEG_INFINITY, -2.0, 2.0]),
    };
    let m = ev1(Op::Binary(BinaryOp::Mod { fmod: false }), &[&x, &y]).to_f64();
    // -4.5 = -3·2 + 1.5; 7 = -3·-3 - 2; -3 mod ∞ is ∞ - 3 = ∞; 1 mod -∞ is -∞.
    assert_eq!(&m[..4], &[1.5, -2.0, f64::INFINITY, f64::NEG_INFINITY]);
    // Zero remainders take the divisor's sign.
    assert!(m[4] == 0.0 && m[4].is_sign_negative() && m[5] == 0.0 && m[5].is_sign_positive(), "{m:?}");
    let r = ev1(Op::Binary(BinaryOp::Mod { fmod: true }), &[&x, &y]).to_f64();
    assert_eq!(&r[..4], &[-0.5, 1.0, -3.0, 1.0]);
}

#[test]
fn resize_cubic_keys_weights_and_exclude_outside() {
    // Asymmetric ×2 over [1 2 3 4]: even outputs sit on pixels; x = 0.5 takes
    // taps -1 (the edge, 1), 0, 1, 2 with Keys' weights for a = -0.75 at
    // distances 1.5, 0.5, 0.5, 1.5: -0.09375, 0.59375, 0.59375, -0.09375.
    let x = f(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let cubic = |exclude_outside| Op::Resize {
        scales: vec![2.0],
        mode: ResizeMode::Cubic { coeff_a: -0.75, exclude_outside },
        transform: CoordinateTransform::Asymmetric,
        nearest: NearestMode::Floor,
    };
    let y = ev1(cubic(false), &[&x]).to_f64();
    assert_eq!(y.len(), 8);
    assert!((y[0] - 1.0).abs() < 1e-6 && (y[2] - 2.0).abs() < 1e-6 && (y[4] - 3.0).abs() < 1e-6, "{y:?}");
    assert!((y[1] - 1.40625).abs() < 1e-6, "{y:?}");
    // Excluding the tap before the input renormalises the other three:
    // (0.59375·1 + 0.59375·2 − 0.09375·3) / 1.09375 = 1.5 / 1.09375.
    let y = ev1(cubic(true), &[&x]).to_f64();
    assert!((y[1] - 1.5 / 1.09375).abs() < 1e-6, "{y:?}");
}

#[test]
fn resize_half_pixel_symmetric_centres_a_rounded_down_output() {
    // 4 → floor(4 · 0.6) = 2 outputs over a resized length of 2.4: the
    // offset 4/2 · (1 − 2/2.4) = 1/3 centres them; half-pixel coordinates
    // (o + 0.5)/0.6 − 0.5 = 1/3 and 2 + 1/3 become 2/3 and 2 + 1/3.
    let x = f(&[4], &[0.0, 10.0, 20.0, 30.0]);
    let op = resize(ResizeMode::Linear, CoordinateTransform::HalfPixelSymmetric, NearestMode::Floor, &[0.6]);
    close(&ev1(op, &[&x]), &[2], &[20.0 / 3.0, 70.0 / 3.0]);
}
