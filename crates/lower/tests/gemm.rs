//! Gemm and MatMul templates against the reference evaluator: transposes,
//! alpha/beta, broadcast C, ragged sizes, GEMV-like shapes, 1-D promotion,
//! batch broadcasting, and bias + Relu fused into one kernel.

mod common;

use common::{check, node, Rng};
use weft_graph::{DType, Graph, Op, UnaryOp};
use weft_lower::tile::TileConfig;

fn gemm_op(alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Op {
    Op::Gemm { alpha, beta, trans_a, trans_b }
}

/// Y = alpha·op(A)·op(B) + beta·C with A an input, B a weight and C (of
/// `c_dims`) a weight.
#[allow(clippy::too_many_arguments)]
fn gemm_case(m: usize, k: usize, n: usize, ta: bool, tb: bool, c_dims: Option<&[usize]>, alpha: f32, beta: f32) {
    let mut rng = Rng::new((m * 1000 + k * 10 + n) as u64);
    let mut g = Graph::new("gemm");
    let a_dims = if ta { vec![k, m] } else { vec![m, k] };
    let b_dims = if tb { vec![n, k] } else { vec![k, n] };
    let a = g.add_input("a", DType::F32, a_dims.clone());
    let b = g.add_constant("b", rng.f32(&b_dims, -1.0, 1.0));
    let mut inputs = vec![Some(a), Some(b)];
    if let Some(cd) = c_dims {
        inputs.push(Some(g.add_constant("c", rng.f32(cd, -1.0, 1.0))));
    }
    let y = g.add_node("gemm", gemm_op(alpha, beta, ta, tb), inputs).unwrap()[0];
    g.add_output(y);
    let p = check(&g, &[rng.f32(&a_dims, -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), 1);
}

#[test]
fn gemm_plain_and_ragged() {
    gemm_case(64, 64, 64, false, false, None, 1.0, 1.0);
    gemm_case(37, 53, 29, false, false, None, 1.0, 1.0);
    gemm_case(100, 17, 130, false, false, None, 1.0, 1.0);
    gemm_case(5, 3, 1, false, false, None, 1.0, 1.0);
    gemm_case(1, 1, 1, false, false, None, 1.0, 1.0);
}

#[test]
fn gemm_transposes_alpha_beta_and_broadcast_c() {
    gemm_case(33, 41, 27, true, false, Some(&[27]), 0.5, 2.0);
    gemm_case(33, 41, 27, false, true, Some(&[33, 1]), 1.5, 1.0);
    gemm_case(33, 41, 27, true, true, Some(&[33, 27]), 1.0, -0.5);
    gemm_case(20, 9, 70, false, true, Some(&[]), 1.0, 1.0);
    gemm_case(20, 9, 70, false, false, Some(&[1, 70]), 2.0, 0.0);
}

#[test]
fn gemv_like_fully_connected_layers() {
    // Batch-1 FC: [1, K] x W^T [N, K] + bias, as in ResNet's classifier.
    gemm_case(1, 300, 257, false, true, Some(&[257]), 1.0, 1.0);
    // The column-vector orientation (N = 1).
    gemm_case(300, 129, 1, false, false, Some(&[300, 1]), 1.0, 1.0);
}

#[test]
fn gemm_bias_relu_is_one_kernel() {
    let mut rng = Rng::new(7);
    let mut g = Graph::new("fc_relu");
    let a = g.add_input("a", DType::F32, vec![3, 50]);
    let w = g.add_constant("w", rng.f32(&[40, 50], -1.0, 1.0));
    let bias = g.add_constant("bias", rng.f32(&[40], -1.0, 1.0));
    let y = g.add_node("fc", gemm_op(1.0, 1.0, false, true), vec![Some(a), Some(w), Some(bias)]).unwrap()[0];
    let r = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[y]);
    g.add_output(r);
    let p = check(&g, &[rng.f32(&[3, 50], -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), 1, "Gemm + bias + Relu must be one kernel");
    assert_eq!(p.steps[0].nodes, vec!["fc".to_string(), "relu".to_string()]);
}

fn matmul_case(a_dims: &[usize], b_dims: &[usize]) {
    let mut rng = Rng::new((a_dims.len() * 31 + b_dims.iter().sum::<usize>()) as u64);
    let mut g = Graph::new("matmul");
    let a = g.add_input("a", DType::F32, a_dims.to_vec());
    let b = g.add_input("b", DType::F32, b_dims.to_vec());
    let y = node(&mut g, "mm", Op::MatMul, &[a, b]);
    g.add_output(y);
    let p = check(&g, &[rng.f32(a_dims, -1.0, 1.0), rng.f32(b_dims, -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), 1);
}

#[test]
fn matmul_shapes() {
    matmul_case(&[37, 19], &[19, 23]);
    matmul_case(&[2, 3, 37, 19], &[19, 23]);
    matmul_case(&[19], &[19, 23]);
    matmul_case(&[3, 4, 5], &[5]);
    matmul_case(&[7], &[7]);
    matmul_case(&[2, 1, 4, 6], &[3, 6, 5]);
    matmul_case(&[3, 1, 6], &[3, 6, 70]);
}

#[test]
fn tile_choice_follows_the_padding_rule() {
    // ResNet 3x3 conv at 56x56: M = 64 channels, N = 3136 pixels.
    let t = TileConfig::choose(64, 3136, 576);
    assert_eq!((t.bm, t.bn), (64, 64));
    // FC as a column GEMV and as a row GEMV.
    let t = TileConfig::choose(1000, 1, 2048);
    assert_eq!((t.bm, t.bn), (256, 1));
    let t = TileConfig::choose(1, 1000, 2048);
    assert_eq!((t.bm, t.bn), (1, 256));
    // Tiny K shrinks the K step.
    assert_eq!(TileConfig::choose(64, 64, 3).bk, 4);
    // Thin M wastes less with a 16-row tile than a 64-row one.
    let t = TileConfig::choose(16, 4096, 64);
    assert_eq!(t.bm, 16);
}
