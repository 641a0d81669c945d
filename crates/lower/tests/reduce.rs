//! Softmax, LayerNormalization and Reduce* templates against the reference evaluator.

mod common;

use common::{check, node, Rng};
use weft_graph::{BinaryOp, DType, Graph, Op, Tensor, UnaryOp};

#[test]
fn softmax_over_every_axis() {
    let mut rng = Rng::new(21);
    let shapes: &[&[usize]] = &[&[7], &[3, 10], &[2, 3, 300], &[4, 5, 6], &[2, 1000], &[3, 33, 2]];
    for dims in shapes {
        for axis in -(dims.len() as i64)..dims.len() as i64 {
            let mut g = Graph::new("softmax");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let y = node(&mut g, "sm", Op::Softmax { axis }, &[x]);
            g.add_output(y);
            let p = check(&g, &[rng.f32(dims, -4.0, 4.0)]);
            assert_eq!(p.steps.len(), 1);
        }
    }
}

#[test]
fn softmax_with_more_rows_than_blocks_loops() {
    let mut rng = Rng::new(22);
    let dims = [70000, 3];
    let mut g = Graph::new("softmax");
    let x = g.add_input("x", DType::F32, dims.to_vec());
    let y = node(&mut g, "sm", Op::Softmax { axis: 1 }, &[x]);
    g.add_output(y);
    check(&g, &[rng.f32(&dims, -4.0, 4.0)]);
}

#[test]
fn layer_norm_with_and_without_bias() {
    let mut rng = Rng::new(23);
    let cases: &[(&[usize], i64)] =
        &[(&[4, 16], -1), (&[2, 3, 300], -1), (&[2, 3, 5], 1), (&[3, 7], 0), (&[1, 2, 1000], 2)];
    for &(dims, axis) in cases {
        let a = if axis < 0 { axis + dims.len() as i64 } else { axis } as usize;
        let norm = &dims[a..];
        for with_bias in [true, false] {
            let mut g = Graph::new("ln");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let s = g.add_constant("scale", rng.f32(norm, 0.5, 1.5));
            let mut ins = vec![Some(x), Some(s)];
            if with_bias {
                ins.push(Some(g.add_constant("bias", rng.f32(norm, -1.0, 1.0))));
            }
            let y = g.add_node("ln", Op::LayerNormalization { axis, epsilon: 1e-5 }, ins).unwrap()[0];
            g.add_output(y);
            check(&g, &[rng.f32(dims, -3.0, 3.0)]);
        }
    }
    // A scale that broadcasts over the normalised dims.
    let mut g = Graph::new("ln_bcast");
    let x = g.add_input("x", DType::F32, vec![2, 4, 6]);
    let s = g.add_input("scale", DType::F32, vec![6]);
    let y = g.add_node("ln", Op::LayerNormalization { axis: 1, epsilon: 1e-5 }, vec![Some(x), Some(s)]).unwrap()[0];
    g.add_output(y);
    check(&g, &[rng.f32(&[2, 4, 6], -3.0, 3.0), rng.f32(&[6], 0.5, 1.5)]);
}

#[test]
fn reductions_over_any_axes_with_keepdims() {
    let mut rng = Rng::new(24);
    let cases: &[(&[usize], &[i64])] = &[
        (&[5, 7], &[1]),
        (&[5, 7], &[0]),
        (&[5, 7], &[]),
        (&[2, 3, 4, 5], &[1, 3]),
        (&[2, 3, 4, 5], &[-1, -2]),
        (&[2, 300, 3], &[1]),
        (&[4, 1000], &[1]),
        (&[3, 20, 20], &[0, 2]),
        (&[600], &[0]),
    ];
    for &(dims, axes) in cases {
        for keepdims in [true, false] {
            for kind in 0..3 {
                let op = match kind {
                    0 => Op::ReduceSum { axes: axes.to_vec(), keepdims },
                    1 => Op::ReduceMean { axes: axes.to_vec(), keepdims },
                    _ => Op::ReduceMax { axes: axes.to_vec(), keepdims },
                };
                let mut g = Graph::new("reduce");
                let x = g.add_input("x", DType::F32, dims.to_vec());
                let y = node(&mut g, "r", op, &[x]);
                g.add_output(y);
                // Positive data: a sum of mixed signs cancels, and the
                // f32-vs-f64 difference of a near-zero sum is not a lowering bug.
                check(&g, &[rng.f32(dims, 0.5, 2.0)]);
            }
        }
    }
}

#[test]
fn integer_reductions_are_exact() {
    let mut rng = Rng::new(25);
    for dims in [&[4usize, 9][..], &[3, 400]] {
        for max in [false, true] {
            let op = if max {
                Op::ReduceMax { axes: vec![1], keepdims: false }
            } else {
                Op::ReduceSum { axes: vec![1], keepdims: false }
            };
            let mut g = Graph::new("ireduce");
            let x = g.add_input("x", DType::I64, dims.to_vec());
            let y = node(&mut g, "r", op, &[x]);
            g.add_output(y);
            check(&g, &[rng.i64(dims, -1000, 1000)]);
        }
    }
}

#[test]
fn hand_built_layer_norm_lowers_through_reduce_and_elementwise() {
    let mut rng = Rng::new(26);
    let (rows, cols) = (6, 48);
    let mut g = Graph::new("ln_by_hand");
    let x = g.add_input("x", DType::F32, vec![rows, cols]);
    let two = g.add_constant("two", Tensor::f32(vec![], vec![2.0]));
    let eps = g.add_constant("eps", Tensor::f32(vec![], vec![1e-5]));
    let gamma = g.add_constant("gamma", rng.f32(&[cols], 0.5, 1.5));
    let beta = g.add_constant("beta", rng.f32(&[cols], -1.0, 1.0));
    let mean = node(&mut g, "mean", Op::ReduceMean { axes: vec![-1], keepdims: true }, &[x]);
    let d = node(&mut g, "sub", Op::Binary(BinaryOp::Sub), &[x, mean]);
    let sq = node(&mut g, "pow", Op::Binary(BinaryOp::Pow), &[d, two]);
    let var = node(&mut g, "var", Op::ReduceMean { axes: vec![-1], keepdims: true }, &[sq]);
    let ve = node(&mut g, "add_eps", Op::Binary(BinaryOp::Add), &[var, eps]);
    let sd = node(&mut g, "sqrt", Op::Unary(UnaryOp::Sqrt), &[ve]);
    let n = node(&mut g, "div", Op::Binary(BinaryOp::Div), &[d, sd]);
    let s = node(&mut g, "mul", Op::Binary(BinaryOp::Mul), &[n, gamma]);
    let y = node(&mut g, "add", Op::Binary(BinaryOp::Add), &[s, beta]);
    g.add_output(y);
    let p = check(&g, &[rng.f32(&[rows, cols], -3.0, 3.0)]);
    // mean, sub (+pow is not fusable: `d` has two consumers), pow, var (+eps, sqrt fused), div (+mul, add fused).
    assert!(p.steps.len() <= 6, "{} kernels", p.steps.len());
}

#[test]
fn log_softmax_over_every_axis() {
    let mut rng = Rng::new(27);
    let shapes: &[&[usize]] = &[&[7], &[3, 10], &[2, 3, 300], &[4, 5, 6]];
    for dims in shapes {
        for axis in -(dims.len() as i64)..dims.len() as i64 {
            let mut g = Graph::new("log_softmax");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let y = node(&mut g, "lsm", Op::LogSoftmax { axis }, &[x]);
            g.add_output(y);
            let p = check(&g, &[rng.f32(dims, -4.0, 4.0)]);
            assert_eq!(p.steps.len(), 1);
        }
    }
}

#[test]
fn min_and_prod_reductions_match_the_reference() {
    let mut rng = Rng::new(28);
    let cases: &[(&[usize], &[i64])] =
        &[(&[5, 7], &[1]), (&[2, 3, 4, 5], &[1, 3]), (&[2, 300, 3], &[1]), (&[4, 1000], &[-1]), (&[6], &[])];
    for &(dims, axes) in cases {
        for keepdims in [true, false] {
            let mut g = Graph::new("reduce_min");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let y = node(&mut g, "r", Op::ReduceMin { axes: axes.to_vec(), keepdims }, &[x]);
            g.add_output(y);
            check(&g, &[rng.f32(dims, -3.0, 3.0)]);
            // Factors near 1 keep long products finite.
            let mut g = Graph::new("reduce_prod");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let y = node(&mut g, "r", Op::ReduceProd { axes: axes.to_vec(), keepdims }, &[x]);
            g.add_output(y);
            check(&g, &[rng.f32(dims, 0.99, 1.01)]);
        }
    }
    // Integers, exact; block mode (≥ 256 reduced) and NaN in block mode.
    let mut g = Graph::new("imin");
    let x = g.add_input("x", DType::I64, vec![3, 400]);
    let y = node(&mut g, "r", Op::ReduceMin { axes: vec![1], keepdims: false }, &[x]);
    g.add_output(y);
    check(&g, &[rng.i64(&[3, 400], -1000, 1000)]);
    let mut g = Graph::new("nan_min");
    let x = g.add_input("x", DType::F32, vec![2, 512]);
    let y = node(&mut g, "r", Op::ReduceMin { axes: vec![1], keepdims: false }, &[x]);
    g.add_output(y);
    let mut data = rng.f32(&[2, 512], -1.0, 1.0);
    if let weft_graph::TensorData::F32(v) = &mut data.data {
        v[300] = f32::NAN;
    }
    let p = lower_and_run(&g, &[data]);
    assert!(p[0].is_nan() && !p[1].is_nan(), "NaN propagates only in its row: {p:?}");
}

/// Runs `g` on the interpreter and returns its first output.
fn lower_and_run(g: &Graph, inputs: &[Tensor]) -> Vec<f64> {
    common::lower_and_run(g, inputs, &weft_lower::LowerOptions::default()).1[0].to_f64_vec()
}

#[test]
fn argmax_argmin_on_every_axis() {
    let mut rng = Rng::new(29);
    let dims = [3usize, 4, 5];
    for axis in -3i64..3 {
        for keepdims in [true, false] {
            for last in [false, true] {
                for max in [true, false] {
                    let op = if max {
                        Op::ArgMax { axis, keepdims, select_last_index: last }
                    } else {
                        Op::ArgMin { axis, keepdims, select_last_index: last }
                    };
                    let mut g = Graph::new("arg");
                    let x = g.add_input("x", DType::F32, dims.to_vec());
                    let y = node(&mut g, "arg", op, &[x]);
                    g.add_output(y);
                    // Few distinct values: ties decide the index often.
                    let mut t = rng.f32(&dims, 0.0, 3.0);
                    if let weft_graph::TensorData::F32(v) = &mut t.data {
                        v.iter_mut().for_each(|x| *x = x.floor());
                        v[7] = f32::NAN;
                    }
                    check(&g, &[t]);
                }
            }
        }
    }
    let mut g = Graph::new("iarg");
    let x = g.add_input("x", DType::I64, vec![4, 9]);
    let y = node(&mut g, "arg", Op::ArgMax { axis: 1, keepdims: false, select_last_index: true }, &[x]);
    g.add_output(y);
    check(&g, &[rng.i64(&[4, 9], -3, 3)]);
}

#[test]
fn reducing_an_empty_axis_gives_the_identity() {
    // Sum 0, product 1, max −∞, min +∞, per output, with no input read.
    for (op, want) in [
        (Op::ReduceSum { axes: vec![1], keepdims: false }, 0.0),
        (Op::ReduceProd { axes: vec![1], keepdims: false }, 1.0),
        (Op::ReduceMax { axes: vec![1], keepdims: false }, f64::NEG_INFINITY),
        (Op::ReduceMin { axes: vec![1], keepdims: false }, f64::INFINITY),
    ] {
        let mut g = Graph::new("empty");
        let x = g.add_input("x", DType::F32, vec![2, 0, 3]);
        let y = node(&mut g, "r", op, &[x]);
        g.add_output(y);
        let x = Tensor::f32(vec![2, 0, 3], vec![]);
        let got = lower_and_run(&g, std::slice::from_ref(&x));
        assert_eq!(got, vec![want; 6]);
        assert_eq!(weft_graph::evaluate(&g, &[x]).unwrap()[0].to_f64(), got, "the reference agrees");
    }
}

#[test]
fn cumsum_and_cumprod_every_axis_and_direction() {
    let mut rng = Rng::new(31);
    let shapes: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4]];
    for dims in shapes {
        for axis in -(dims.len() as i64)..dims.len() as i64 {
            for exclusive in [false, true] {
                for reverse in [false, true] {
                    for product in [false, true] {
                        let op = if product {
                            Op::CumProd { axis, exclusive, reverse }
                        } else {
                            Op::CumSum { axis, exclusive, reverse }
                        };
                        let mut g = Graph::new("cumulative");
                        let x = g.add_input("x", DType::F32, dims.to_vec());
                        let y = node(&mut g, "c", op, &[x]);
                        g.add_output(y);
                        let p = check(&g, &[rng.f32(dims, 0.5, 1.5)]);
                        assert_eq!(p.steps.len(), 1);
                    }
                }
            }
        }
    }
    // Integers are exact.
    for dtype in [DType::I32, DType::I64] {
        let mut g = Graph::new("cumsum_int");
        let x = g.add_input("x", dtype, vec![2, 5]);
        let y = node(&mut g, "c", Op::CumSum { axis: 1, exclusive: true, reverse: false }, &[x]);
        g.add_output(y);
        let v = rng.i64(&[2, 5], -50, 50);
        let v = if dtype == DType::I32 {
            Tensor::i32(vec![2, 5], v.as_i64s().unwrap().iter().map(|&x| x as i32).collect())
        } else {
            v
        };
        check(&g, &[v]);
    }
}

#[test]
fn top_k_every_axis_both_directions_with_ties() {
    let mut rng = Rng::new(32);
    let shapes: &[&[usize]] = &[&[7], &[3, 5], &[2, 6, 3]];
    for dims in shapes {
        for axis in 0..dims.len() {
            for largest in [true, false] {
                for k in [1, dims[axis]] {
                    let mut g = Graph::new("top_k");
                    let x = g.add_input("x", DType::F32, dims.to_vec());
                    let outs = g
                        .add_node("t", Op::TopK { axis: axis as i64, k, largest }, vec![Some(x)])
                        .unwrap_or_else(|e| panic!("{e}"));
                    g.add_output(outs[0]);
                    g.add_output(outs[1]);
                    // Values on a coarse grid, so ties are common.
                    let v = rng.i64(dims, -3, 3);
                    let v = Tensor::f32(dims.to_vec(), v.as_i64s().unwrap().iter().map(|&x| x as f32).collect());
                    check(&g, &[v]);
                }
            }
        }
    }
}

/// NonZero's kernel against the evaluator: every rank, element types whose
/// zero tests differ (NaN is nonzero, bool), inputs spanning many of the
/// block's runs, and the empty and full cases.
#[test]
fn non_zero_coordinates_in_row_major_order() {
    let mut rng = Rng::new(41);
    let shapes: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4], &[3, 1000], &[2, 1, 600, 3]];
    for dims in shapes {
        let n: usize = dims.iter().product();
        for density in [0.0, 0.1, 0.5, 1.0] {
            let keep = |rng: &mut Rng| rng.uniform(0.0, 1.0) < density;
            let floats: Vec<f32> = (0..n)
                .map(|i| match (keep(&mut rng), i % 11) {
                    (false, _) => 0.0,
                    (true, 3) => f32::NAN,
                    (true, _) => rng.uniform(-2.0, 2.0) as f32 + 3.0,
                })
                .collect();
            let bools: Vec<bool> = (0..n).map(|_| keep(&mut rng)).collect();
            let ints: Vec<i64> = (0..n).map(|_| if keep(&mut rng) { -(1 << 40) } else { 0 }).collect();
            let cases = [
                (Tensor::f32(dims.to_vec(), floats.clone()), floats.iter().filter(|v| **v != 0.0).count()),
                (Tensor::bool(dims.to_vec(), bools.clone()), bools.iter().filter(|v| **v).count()),
                (Tensor::i64(dims.to_vec(), ints.clone()), ints.iter().filter(|v| **v != 0).count()),
            ];
            for (x, count) in cases {
                let mut g = Graph::new("non_zero");
                let xi = g.add_input("x", x.dtype, dims.to_vec());
                let y = node(&mut g, "nz", Op::NonZero { count }, &[xi]);
                g.add_output(y);
                assert_eq!(g.info(y).shape.dims(), &[dims.len(), count]);
                let p = check(&g, &[x]);
                assert_eq!(p.steps.len(), usize::from(count > 0));
            }
        }
    }
}

/// A NonZero program run on inputs with another count than it was built
/// for answers a typed error naming the node and both counts, never
/// outputs (the kernel's stores stay inside its output either way).
#[test]
fn non_zero_on_inputs_of_another_count_is_an_error() {
    let mut g = Graph::new("non_zero");
    let x = g.add_input("x", DType::F32, vec![4, 100]);
    let y = node(&mut g, "nz", Op::NonZero { count: 7 }, &[x]);
    g.add_output(y);
    let program = std::sync::Arc::new(weft_lower::lower(&g, &weft_lower::LowerOptions::default()).unwrap());
    common::assert_kernels_proven(&program);
    let run = |nonzero: &[usize]| {
        let mut v = vec![0.0f32; 400];
        nonzero.iter().for_each(|&i| v[i] = 1.0);
        let x = weft_kir::HostBuffer::from_f32(&v);
        weft_pack::run_program(&mut weft_pack::InterpExecutor::default(), program.clone(), &[x], |_| {})
    };
    for wrong in [&[3usize, 9][..], &[0, 1, 2, 3, 4, 5, 6, 7, 399, 398]] {
        match run(wrong) {
            Err(weft_pack::RunError::CountMismatch { node, expected, found, .. }) => {
                assert_eq!((node.as_str(), expected, found), ("nz", 7, wrong.len()));
            }
            other => panic!("{} nonzero elements: expected a count mismatch, got {other:?}", wrong.len()),
        }
    }
    let right = run(&[0, 5, 99, 100, 250, 398, 399]).unwrap();
    assert_eq!(right[0].to_f64_vec(), [0., 0., 0., 1., 2., 3., 3., 0., 5., 99., 0., 50., 98., 99.]);
}
