//! Elementwise templates and epilogue fusion against the reference evaluator.

mod common;

use common::{check, node, Rng};
use weft_graph::{BinaryOp, DType, Graph, Op, Tensor, UnaryOp};

const SHAPES: &[&[usize]] = &[&[1], &[7], &[3, 5], &[2, 3, 17], &[2, 3, 4, 33], &[1000]];

fn unary_ops() -> Vec<UnaryOp> {
    vec![
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Exp,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Erf,
        UnaryOp::LeakyRelu { alpha: 0.1 },
        UnaryOp::Clip { min: -0.5, max: 0.7 },
        UnaryOp::HardSigmoid { alpha: 0.2, beta: 0.5 },
        UnaryOp::HardSwish,
        UnaryOp::Gelu,
        UnaryOp::Softplus,
        UnaryOp::Softsign,
        UnaryOp::Elu { alpha: 0.7 },
        UnaryOp::Selu { alpha: 1.6732632, gamma: 1.050701 },
        UnaryOp::Celu { alpha: 1.5 },
        UnaryOp::ThresholdedRelu { alpha: 0.4 },
        UnaryOp::Mish,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Asinh,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Atan,
    ]
}

#[test]
fn every_unary_op_matches_the_reference() {
    let mut rng = Rng::new(1);
    for u in unary_ops() {
        for dims in SHAPES {
            let mut g = Graph::new("unary");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let y = node(&mut g, "u", Op::Unary(u), &[x]);
            g.add_output(y);
            let p = check(&g, &[rng.f32(dims, -3.0, 3.0)]);
            assert_eq!(p.steps.len(), 1, "{u:?}");
        }
    }
}

#[test]
fn positive_domain_unaries_match_the_reference() {
    let mut rng = Rng::new(2);
    for u in [UnaryOp::Log, UnaryOp::Sqrt] {
        let mut g = Graph::new("unary");
        let x = g.add_input("x", DType::F32, vec![5, 13]);
        let y = node(&mut g, "u", Op::Unary(u), &[x]);
        g.add_output(y);
        check(&g, &[rng.f32(&[5, 13], 0.1, 4.0)]);
    }
    // Acosh is defined from 1 on, Atanh, Asin and Acos inside (−1, 1) (the
    // last two near ±1 too); Tan away from its poles.
    for (u, lo, hi) in [
        (UnaryOp::Acosh, 1.05, 6.0),
        (UnaryOp::Atanh, -0.95, 0.95),
        (UnaryOp::Asin, -0.9999, 0.9999),
        (UnaryOp::Acos, -0.9999, 0.9999),
        (UnaryOp::Tan, -1.4, 1.4),
    ] {
        let mut g = Graph::new("unary");
        let x = g.add_input("x", DType::F32, vec![5, 13]);
        let y = node(&mut g, "u", Op::Unary(u), &[x]);
        g.add_output(y);
        check(&g, &[rng.f32(&[5, 13], lo, hi)]);
    }
}

#[test]
fn binary_ops_broadcast_both_ways() {
    let mut rng = Rng::new(3);
    let pairs: &[(&[usize], &[usize])] = &[
        (&[4, 5], &[4, 5]),
        (&[4, 5], &[5]),
        (&[4, 1], &[1, 5]),
        (&[2, 3, 4], &[3, 1]),
        (&[1], &[2, 7, 3]),
        (&[], &[6]),
    ];
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
        for (a, b) in pairs {
            let mut g = Graph::new("binary");
            let x = g.add_input("a", DType::F32, a.to_vec());
            let y = g.add_input("b", DType::F32, b.to_vec());
            let z = node(&mut g, "op", Op::Binary(op), &[x, y]);
            g.add_output(z);
            check(&g, &[rng.f32(a, -2.0, 2.0), rng.f32(b, 0.5, 2.0)]);
        }
    }
}

#[test]
fn comparisons_return_bool() {
    let mut rng = Rng::new(4);
    for op in [BinaryOp::Equal, BinaryOp::Less, BinaryOp::Greater] {
        let mut g = Graph::new("cmp");
        let x = g.add_input("a", DType::F32, vec![3, 8]);
        let y = g.add_input("b", DType::F32, vec![8]);
        let z = node(&mut g, "op", Op::Binary(op), &[x, y]);
        g.add_output(z);
        let mut a = rng.f32(&[3, 8], -1.0, 1.0);
        let b = rng.f32(&[8], -1.0, 1.0);
        // Some exact ties so Equal is exercised.
        if let (weft_graph::TensorData::F32(av), weft_graph::TensorData::F32(bv)) = (&mut a.data, &b.data) {
            av[..8].copy_from_slice(bv);
        }
        check(&g, &[a, b]);
    }
}

#[test]
fn pow_handles_negative_bases_and_runtime_exponents() {
    let mut rng = Rng::new(5);
    // Constant integer exponent: x^2 and x^3 of negative x.
    for e in [2.0f32, 3.0, -1.0, 0.5] {
        let mut g = Graph::new("pow");
        let x = g.add_input("x", DType::F32, vec![4, 9]);
        let c = g.add_constant("e", Tensor::f32(vec![], vec![e]));
        let y = node(&mut g, "pow", Op::Binary(BinaryOp::Pow), &[x, c]);
        g.add_output(y);
        let (lo, hi) = if e == 0.5 { (0.1, 3.0) } else { (-3.0, 3.0) };
        check(&g, &[rng.f32(&[4, 9], lo, hi)]);
    }
    // Run-time exponents mixing integers (odd and even) and fractions on positive bases.
    let mut g = Graph::new("pow_rt");
    let x = g.add_input("x", DType::F32, vec![6]);
    let e = g.add_input("e", DType::F32, vec![6]);
    let y = node(&mut g, "pow", Op::Binary(BinaryOp::Pow), &[x, e]);
    g.add_output(y);
    let xs = Tensor::f32(vec![6], vec![-2.0, -1.5, 2.5, 0.7, -3.0, 1.3]);
    let es = Tensor::f32(vec![6], vec![2.0, 3.0, 0.5, -1.5, 0.0, 2.2]);
    check(&g, &[xs, es]);
}

#[test]
fn sum_where_and_cast() {
    let mut rng = Rng::new(6);
    let mut g = Graph::new("sum");
    let a = g.add_input("a", DType::F32, vec![3, 4]);
    let b = g.add_input("b", DType::F32, vec![4]);
    let c = g.add_input("c", DType::F32, vec![3, 1]);
    let s = node(&mut g, "sum", Op::Sum, &[a, b, c]);
    g.add_output(s);
    check(&g, &[rng.f32(&[3, 4], -1.0, 1.0), rng.f32(&[4], -1.0, 1.0), rng.f32(&[3, 1], -1.0, 1.0)]);

    let mut g = Graph::new("where");
    let cond = g.add_input("cond", DType::Bool, vec![2, 5]);
    let x = g.add_input("x", DType::F32, vec![5]);
    let y = g.add_input("y", DType::F32, vec![2, 1]);
    let w = node(&mut g, "where", Op::Where, &[cond, x, y]);
    g.add_output(w);
    check(&g, &[rng.bool(&[2, 5]), rng.f32(&[5], -1.0, 1.0), rng.f32(&[2, 1], -1.0, 1.0)]);

    // Where over i64 values with a bool mask.
    let mut g = Graph::new("where_i64");
    let cond = g.add_input("cond", DType::Bool, vec![9]);
    let x = g.add_input("x", DType::I64, vec![9]);
    let y = g.add_input("y", DType::I64, vec![1]);
    let w = node(&mut g, "where", Op::Where, &[cond, x, y]);
    g.add_output(w);
    check(&g, &[rng.bool(&[9]), rng.i64(&[9], -50, 50), rng.i64(&[1], -5, 5)]);

    for (from, to) in [
        (DType::F32, DType::I64),
        (DType::F32, DType::I32),
        (DType::F32, DType::Bool),
        (DType::I64, DType::F32),
        (DType::Bool, DType::F32),
        (DType::F32, DType::F32),
    ] {
        let mut g = Graph::new("cast");
        let x = g.add_input("x", from, vec![11]);
        let y = node(&mut g, "cast", Op::Cast { to }, &[x]);
        g.add_output(y);
        let input = match from {
            DType::F32 => {
                let mut t = rng.f32(&[11], -5.0, 5.0);
                if let weft_graph::TensorData::F32(v) = &mut t.data {
                    v[0] = 0.0;
                }
                t
            }
            DType::I64 => rng.i64(&[11], -100, 100),
            _ => rng.bool(&[11]),
        };
        check(&g, &[input]);
    }
}

#[test]
fn integer_arithmetic_stays_exact() {
    let mut rng = Rng::new(7);
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min] {
        let mut g = Graph::new("int");
        let x = g.add_input("a", DType::I64, vec![3, 4]);
        let y = g.add_input("b", DType::I64, vec![4]);
        let z = node(&mut g, "op", Op::Binary(op), &[x, y]);
        g.add_output(z);
        check(&g, &[rng.i64(&[3, 4], -1000, 1000), rng.i64(&[4], -1000, 1000)]);
    }
}

#[test]
fn batch_norm_with_constant_and_runtime_parameters() {
    let mut rng = Rng::new(8);
    for dims in [&[2usize, 3, 5, 7][..], &[4, 6], &[1, 5, 9]] {
        let c = dims[1];
        // Constant parameters: folded to scale/shift weights.
        let mut g = Graph::new("bn");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let params: Vec<_> = ["scale", "bias", "mean", "var"]
            .iter()
            .map(|n| {
                let (lo, hi) = if *n == "var" { (0.5, 2.0) } else { (-1.0, 1.0) };
                g.add_constant(*n, rng.f32(&[c], lo, hi))
            })
            .collect();
        let mut ins = vec![x];
        ins.extend(&params);
        let y = node(&mut g, "bn", Op::BatchNormalization { epsilon: 1e-5 }, &ins);
        g.add_output(y);
        check(&g, &[rng.f32(dims, -2.0, 2.0)]);

        // Run-time parameters.
        let mut g = Graph::new("bn_rt");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let ps: Vec<_> =
            ["scale", "bias", "mean", "var"].iter().map(|n| g.add_input(*n, DType::F32, vec![c])).collect();
        let mut ins = vec![x];
        ins.extend(&ps);
        let y = node(&mut g, "bn", Op::BatchNormalization { epsilon: 1e-3 }, &ins);
        g.add_output(y);
        check(
            &g,
            &[
                rng.f32(dims, -2.0, 2.0),
                rng.f32(&[c], -1.0, 1.0),
                rng.f32(&[c], -1.0, 1.0),
                rng.f32(&[c], -1.0, 1.0),
                rng.f32(&[c], 0.5, 2.0),
            ],
        );
    }
}

#[test]
fn large_tensors_use_a_grid_stride_loop() {
    let mut rng = Rng::new(9);
    let n = 4096 * 256 + 77;
    let mut g = Graph::new("big");
    let x = g.add_input("x", DType::F32, vec![n]);
    let y = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[x]);
    g.add_output(y);
    let p = check(&g, &[rng.f32(&[n], -1.0, 1.0)]);
    assert_eq!(p.steps[0].kernel.launch.grid[0], 4096);
}

#[test]
fn add_relu_mul_chain_fuses_into_one_kernel() {
    let mut rng = Rng::new(10);
    let mut g = Graph::new("chain");
    let a = g.add_input("a", DType::F32, vec![3, 4, 5]);
    let b = g.add_input("b", DType::F32, vec![3, 4, 5]);
    let bias = g.add_constant("bias", rng.f32(&[5], -1.0, 1.0));
    let scale = g.add_input("scale", DType::F32, vec![4, 1]);
    let t = node(&mut g, "tanh", Op::Unary(UnaryOp::Tanh), &[a]);
    let s = node(&mut g, "add", Op::Binary(BinaryOp::Add), &[t, bias]);
    let r = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[s]);
    let m = node(&mut g, "mul", Op::Binary(BinaryOp::Mul), &[scale, r]);
    let res = node(&mut g, "residual", Op::Binary(BinaryOp::Add), &[m, b]);
    g.add_output(res);
    let p = check(&g, &[rng.f32(&[3, 4, 5], -2.0, 2.0), rng.f32(&[3, 4, 5], -1.0, 1.0), rng.f32(&[4, 1], -1.0, 1.0)]);
    assert_eq!(p.steps.len(), 1, "tanh → add → relu → mul → residual add is one kernel");
    assert_eq!(p.steps[0].nodes, ["tanh", "add", "relu", "mul", "residual"]);
}

#[test]
fn residual_operand_computed_earlier_fuses() {
    let mut rng = Rng::new(11);
    let mut g = Graph::new("residual");
    let x = g.add_input("x", DType::F32, vec![2, 8]);
    let early = node(&mut g, "early", Op::Unary(UnaryOp::Sigmoid), &[x]);
    let a = node(&mut g, "a", Op::Unary(UnaryOp::Exp), &[early]);
    let b = node(&mut g, "b", Op::Unary(UnaryOp::Neg), &[a]);
    let add = node(&mut g, "add", Op::Binary(BinaryOp::Add), &[b, early]);
    g.add_output(add);
    let p = check(&g, &[rng.f32(&[2, 8], -2.0, 2.0)]);
    // `early` has two consumers, so it is materialised; a → b → add fuse.
    assert_eq!(p.steps.len(), 2);
}

#[test]
fn a_chain_stops_at_a_graph_output() {
    let mut rng = Rng::new(12);
    let mut g = Graph::new("stop");
    let x = g.add_input("x", DType::F32, vec![17]);
    let a = node(&mut g, "a", Op::Unary(UnaryOp::Abs), &[x]);
    let b = node(&mut g, "b", Op::Unary(UnaryOp::Sqrt), &[a]);
    let c = node(&mut g, "c", Op::Unary(UnaryOp::Neg), &[b]);
    g.add_output(b);
    g.add_output(c);
    let p = check(&g, &[rng.f32(&[17], -2.0, 2.0)]);
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].nodes, ["a", "b"]);
}

#[test]
fn unfused_lowering_matches_too() {
    let mut rng = Rng::new(13);
    let mut g = Graph::new("nofuse");
    let x = g.add_input("x", DType::F32, vec![4, 6]);
    let a = node(&mut g, "a", Op::Unary(UnaryOp::Gelu), &[x]);
    let b = node(&mut g, "b", Op::Unary(UnaryOp::Relu), &[a]);
    g.add_output(b);
    let opts = weft_lower::LowerOptions { fuse_epilogues: false, ..Default::default() };
    let p = common::check_with(&g, &[rng.f32(&[4, 6], -2.0, 2.0)], 1e-5, &opts);
    assert_eq!(p.steps.len(), 2);
}

#[test]
fn half_precision_computes_in_f32_and_rounds() {
    let mut rng = Rng::new(14);
    for dtype in [DType::F16, DType::BF16] {
        let mut g = Graph::new("half");
        let a = g.add_input("a", dtype, vec![3, 8]);
        let b = g.add_input("b", dtype, vec![8]);
        let s = node(&mut g, "add", Op::Binary(BinaryOp::Add), &[a, b]);
        let r = node(&mut g, "gelu", Op::Unary(UnaryOp::Gelu), &[s]);
        g.add_output(r);
        let mut half = |dims: &[usize]| {
            let mut t = rng.f32(dims, -2.0, 2.0);
            t.dtype = dtype;
            if let weft_graph::TensorData::F32(v) = &mut t.data {
                for x in v.iter_mut() {
                    // Representable in both half formats.
                    *x = (*x * 8.0).round() / 8.0;
                }
            }
            t
        };
        let inputs = [half(&[3, 8]), half(&[8])];
        common::check_with(&g, &inputs, 1e-2, &weft_lower::LowerOptions::default());
    }
}

/// Runs `g` lowered on the interpreter and with the reference evaluator;
/// returns both first outputs.
fn both(g: &Graph, inputs: &[Tensor]) -> (Vec<f64>, Vec<f64>) {
    let program = weft_lower::lower(g, &weft_lower::LowerOptions::default()).expect("lowers");
    let hosts: Vec<_> = inputs.iter().map(weft_lower::context::tensor_to_host).collect();
    let got =
        weft_pack::run_program(&mut weft_pack::InterpExecutor::default(), std::sync::Arc::new(program), &hosts, |_| {})
            .expect("runs");
    let want = weft_graph::evaluate(g, inputs).expect("evaluates");
    (got[0].to_f64_vec(), want[0].to_f64())
}

#[test]
fn nan_propagates_through_max_like_ops() {
    use weft_graph::{Padding, Window};
    // Small and large rows: the large ones take the block-reduction paths.
    for n in [12usize, 4096] {
        let mut values: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
        values[n / 3] = f32::NAN;
        let x_t = Tensor::f32(vec![1, 1, 1, n], values);
        let ops = [
            Op::Unary(UnaryOp::Relu),
            Op::Unary(UnaryOp::Clip { min: -1.0, max: 1.0 }),
            Op::ReduceMax { axes: vec![3], keepdims: true },
            Op::MaxPool {
                window: Window {
                    kernel: vec![1, 2],
                    strides: vec![1, 2],
                    dilations: vec![1, 1],
                    padding: Padding::Explicit(vec![0; 4]),
                },
                ceil_mode: false,
            },
            Op::Binary(BinaryOp::Max),
            Op::Binary(BinaryOp::Min),
        ];
        for op in ops {
            let mut g = Graph::new("nan");
            let x = g.add_input("x", DType::F32, vec![1, 1, 1, n]);
            let y = if matches!(op, Op::Binary(_)) {
                let zero = g.add_constant("zero", Tensor::f32(vec![1], vec![0.0]));
                node(&mut g, "op", op.clone(), &[x, zero])
            } else {
                node(&mut g, "op", op.clone(), &[x])
            };
            g.add_output(y);
            let (got, want) = both(&g, std::slice::from_ref(&x_t));
            let nan_at = |v: &[f64]| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>();
            assert!(want.iter().any(|v| v.is_nan()), "{op:?} n={n}: the reference drops NaN: {want:?}");
            assert_eq!(nan_at(&got), nan_at(&want), "{op:?} n={n}: NaN positions differ");
        }
    }
}

#[test]
fn inverse_trigonometry_at_the_domain_edges() {
    // asin(±1) = ±π/2 through atan(±∞), acos(−1) = π, and outside [−1, 1]
    // NaN, as the reference gives.
    for u in [UnaryOp::Asin, UnaryOp::Acos] {
        let mut g = Graph::new("edges");
        let x = g.add_input("x", DType::F32, vec![5]);
        let y = node(&mut g, "u", Op::Unary(u), &[x]);
        g.add_output(y);
        check(&g, &[Tensor::f32(vec![5], vec![-1.0, 1.0, 0.0, 0.5, -0.5])]);
        let inputs = [Tensor::f32(vec![5], vec![1.5, -2.0, 1.0001, -7.0, f32::INFINITY])];
        let (_, got) = common::lower_and_run(&g, &inputs, &weft_lower::LowerOptions::default());
        let got = got[0].to_f64_vec();
        assert!(got.iter().all(|v| v.is_nan()), "{u:?}: {got:?}");
    }
}
