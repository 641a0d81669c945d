//! MaxPool, AveragePool, the global pools and LRN against the reference
//! evaluator: padding, strides, dilation, ceil_mode, count_include_pad, 1-D,
//! the thread-per-output and block-reduction global pools, and a fused Relu.

mod common;

use common::{check, node, Rng};
use weft_graph::{DType, Graph, Op, Padding, UnaryOp, Window};

fn window(kernel: &[usize], strides: &[usize], dilations: &[usize], pads: &[usize]) -> Window {
    Window {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        padding: Padding::Explicit(pads.to_vec()),
    }
}

fn run(x: &[usize], op: Op, kernels: usize) {
    let mut rng = Rng::new(x.iter().product::<usize>() as u64);
    let mut g = Graph::new("pool");
    let xt = g.add_input("x", DType::F32, x.to_vec());
    let y = node(&mut g, "pool", op, &[xt]);
    g.add_output(y);
    let p = check(&g, &[rng.f32(x, -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), kernels);
}

fn max_pool(w: Window, ceil_mode: bool) -> Op {
    Op::MaxPool { window: w, ceil_mode }
}

fn avg_pool(w: Window, ceil_mode: bool, count_include_pad: bool) -> Op {
    Op::AveragePool { window: w, ceil_mode, count_include_pad }
}

#[test]
fn max_pool_geometries() {
    // ResNet stem: 3x3 stride 2 pad 1 on an odd size.
    run(&[1, 3, 15, 15], max_pool(window(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), false), 1);
    run(&[2, 2, 10, 9], max_pool(window(&[2, 2], &[2, 2], &[], &[]), true), 1);
    run(&[1, 2, 11, 12], max_pool(window(&[3, 3], &[1, 2], &[2, 2], &[2, 1, 0, 2]), false), 1);
    run(&[1, 3, 17], max_pool(window(&[4], &[3], &[], &[1, 2]), true), 1);
}

#[test]
fn average_pool_padding_counts() {
    for include in [false, true] {
        run(&[1, 3, 9, 9], avg_pool(window(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), false, include), 1);
        run(&[2, 2, 10, 11], avg_pool(window(&[3, 2], &[2, 2], &[], &[1, 0, 1, 1]), true, include), 1);
        run(&[1, 2, 13], avg_pool(window(&[5], &[2], &[], &[2, 2]), false, include), 1);
    }
    run(&[1, 4, 8, 8], avg_pool(window(&[2, 2], &[2, 2], &[], &[]), false, false), 1);
}

#[test]
fn global_pools_small_and_block_reduced() {
    // 7x7: one thread per (n, c).
    run(&[2, 5, 7, 7], Op::GlobalAveragePool, 1);
    run(&[2, 5, 7, 7], Op::GlobalMaxPool, 1);
    // 40x40 = 1600: a block per (n, c) with a shuffle reduction.
    run(&[1, 3, 40, 40], Op::GlobalAveragePool, 1);
    run(&[2, 2, 33, 37], Op::GlobalMaxPool, 1);
    run(&[1, 3, 11], Op::GlobalAveragePool, 1);
}

#[test]
fn lrn_across_channels() {
    run(&[1, 7, 5, 4], Op::Lrn { size: 5, alpha: 1e-2, beta: 0.75, bias: 1.0 }, 1);
    run(&[2, 4, 3, 3], Op::Lrn { size: 2, alpha: 2e-3, beta: 0.5, bias: 2.0 }, 1);
}

#[test]
fn pool_relu_is_one_kernel() {
    let mut rng = Rng::new(4);
    let mut g = Graph::new("pool_relu");
    let x = g.add_input("x", DType::F32, vec![1, 3, 9, 9]);
    let y = node(&mut g, "pool", avg_pool(window(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), false, false), &[x]);
    let r = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[y]);
    g.add_output(r);
    let p = check(&g, &[rng.f32(&[1, 3, 9, 9], -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), 1);
}

#[test]
fn three_d_windows() {
    let w = window(&[2, 3, 2], &[2, 1, 2], &[1, 2, 1], &[1, 0, 1, 0, 1, 1]);
    run(&[1, 2, 6, 7, 5], max_pool(w.clone(), true), 1);
    run(&[2, 1, 5, 6, 6], avg_pool(w.clone(), false, true), 1);
    run(&[1, 3, 4, 5, 6], avg_pool(w, true, false), 1);
}

#[test]
fn max_pool_on_8_bit_integers() {
    for (dtype, lo) in [(DType::I8, -128.0), (DType::U8, 0.0)] {
        let mut rng = Rng::new(7);
        let dims = [1, 2, 7, 6];
        let mut g = Graph::new("pool");
        let xt = g.add_input("x", dtype, dims.to_vec());
        let op = max_pool(window(&[3, 2], &[2, 2], &[], &[1, 0, 1, 1]), false);
        let y = node(&mut g, "pool", op, &[xt]);
        g.add_output(y);
        let vals: Vec<f64> = rng.f32(&dims, 0.0, 1.0).to_f64().iter().map(|v| lo + (v * 255.0).round()).collect();
        check(&g, &[weft_graph::Tensor::from_f64(dtype, dims.to_vec(), &vals)]);
    }
}

/// MaxPool's Indices output against the evaluator: padding, strides,
/// dilation, ceil_mode, 1-D and 3-D, column-major indices, ties (the first
/// maximum in window order) and NaN (the largest value).
#[test]
fn max_pool_indices_every_geometry_ties_and_nan() {
    let cases: &[(&[usize], Window, bool, bool)] = &[
        (&[2, 3, 9, 9], window(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1]), false, false),
        (&[1, 2, 8, 7], window(&[2, 3], &[2, 1], &[], &[0, 1, 1, 0]), true, true),
        (&[1, 2, 10, 10], window(&[3, 3], &[1, 1], &[2, 2], &[2, 2, 2, 2]), false, true),
        (&[2, 2, 11], window(&[3], &[2], &[], &[1, 1]), true, false),
        (&[1, 2, 4, 5, 6], window(&[2, 2, 3], &[2, 2, 2], &[], &[0, 1, 1, 0, 0, 1]), false, false),
    ];
    let mut rng = Rng::new(77);
    for (dims, w, ceil_mode, column_major) in cases {
        let n: usize = dims.iter().product();
        // Few distinct values (ties) and a NaN now and then.
        let values: Vec<f32> =
            (0..n).map(|i| if i % 23 == 5 { f32::NAN } else { (rng.uniform(0.0, 4.0) as i32) as f32 }).collect();
        let mut g = Graph::new("max_pool_indices");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let op = Op::MaxPoolWithIndices { window: w.clone(), ceil_mode: *ceil_mode, column_major: *column_major };
        let outs = g.add_node("pool", op, vec![Some(x)]).unwrap_or_else(|e| panic!("{e}"));
        g.add_output(outs[0]);
        g.add_output(outs[1]);
        let p = check(&g, &[weft_graph::Tensor::f32(dims.to_vec(), values)]);
        assert_eq!(p.num_kernels(), 1, "{dims:?}");
    }
}
