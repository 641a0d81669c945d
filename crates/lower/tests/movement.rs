//! Movement templates (views, Transpose, Concat, Split, Slice, Gather, Pad,
//! Resize) against the reference evaluator.

mod common;

use common::{check, node, Rng};
use weft_graph::{CoordinateTransform, DType, Graph, NearestMode, Op, ResizeMode, ScatterReduction, Tensor, UnaryOp};
use weft_lower::BufferKind;

#[test]
fn views_alias_without_kernels() {
    let mut rng = Rng::new(31);
    let mut g = Graph::new("views");
    let x = g.add_input("x", DType::F32, vec![2, 3, 4]);
    let a = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[x]);
    let r = node(&mut g, "reshape", Op::Reshape { shape: vec![6, -1], allow_zero: false }, &[a]);
    let u = node(&mut g, "unsq", Op::Unsqueeze { axes: vec![0] }, &[r]);
    let s = node(&mut g, "sq", Op::Squeeze { axes: vec![0] }, &[u]);
    let f = node(&mut g, "flat", Op::Flatten { axis: 1 }, &[s]);
    let i = node(&mut g, "id", Op::Identity, &[f]);
    g.add_output(i);
    let p = check(&g, &[rng.f32(&[2, 3, 4], -1.0, 1.0)]);
    assert_eq!(p.steps.len(), 1, "only the relu runs");
}

#[test]
fn a_view_of_a_graph_input_that_is_an_output_is_copied() {
    let mut rng = Rng::new(32);
    let mut g = Graph::new("copy");
    let x = g.add_input("x", DType::F32, vec![3, 5]);
    let r = node(&mut g, "reshape", Op::Reshape { shape: vec![15], allow_zero: false }, &[x]);
    g.add_output(r);
    let p = check(&g, &[rng.f32(&[3, 5], -1.0, 1.0)]);
    assert_eq!(p.steps.len(), 1);
    let out = p.outputs[0].buffer;
    assert_eq!(p.buffers[out].kind, BufferKind::Activation);
}

#[test]
fn transpose_with_general_perms() {
    let mut rng = Rng::new(33);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 5], &[1, 0]),
        (&[2, 3, 4], &[2, 0, 1]),
        (&[2, 3, 4, 5], &[0, 2, 3, 1]),
        (&[4, 1, 7], &[]),
        (&[6], &[0]),
    ];
    for (dims, perm) in cases {
        let mut g = Graph::new("transpose");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let y = node(&mut g, "t", Op::Transpose { perm: perm.to_vec() }, &[x]);
        g.add_output(y);
        check(&g, &[rng.f32(dims, -1.0, 1.0)]);
    }
}

#[test]
fn concat_on_every_axis() {
    let mut rng = Rng::new(34);
    for axis in [0i64, 1, 2, -1] {
        let a = axis.rem_euclid(3) as usize;
        let mut g = Graph::new("concat");
        let sizes = [2usize, 3, 1];
        let mut ins = Vec::new();
        let mut vals = Vec::new();
        for (k, &s) in sizes.iter().enumerate() {
            let mut d = vec![2, 3, 4];
            d[a] = s;
            ins.push(g.add_input(format!("x{k}"), DType::F32, d.clone()));
            vals.push(rng.f32(&d, -1.0, 1.0));
        }
        let y = node(&mut g, "cat", Op::Concat { axis }, &ins);
        g.add_output(y);
        check(&g, &vals);
    }
    // i64 concat (shape-like tensors).
    let mut g = Graph::new("concat_i64");
    let a = g.add_input("a", DType::I64, vec![3]);
    let b = g.add_constant("b", Tensor::i64(vec![2], vec![-7, 9]));
    let y = node(&mut g, "cat", Op::Concat { axis: 0 }, &[a, b]);
    g.add_output(y);
    check(&g, &[rng.i64(&[3], -100, 100)]);
}

#[test]
fn split_writes_every_output() {
    let mut rng = Rng::new(35);
    for (axis, sizes) in [(1i64, vec![1usize, 4, 2]), (0, vec![2, 1]), (-1, vec![3, 2])] {
        let dims = [3usize, 7, 5];
        let a = axis.rem_euclid(3) as usize;
        let mut d = dims.to_vec();
        d[a] = sizes.iter().sum();
        let mut g = Graph::new("split");
        let x = g.add_input("x", DType::F32, d.clone());
        let outs = g.add_node("split", Op::Split { axis, sizes: sizes.clone() }, vec![Some(x)]).unwrap();
        for o in outs {
            g.add_output(o);
        }
        let p = check(&g, &[rng.f32(&d, -1.0, 1.0)]);
        assert_eq!(p.steps.len(), 1);
    }
}

#[test]
fn slice_with_steps_and_negative_indices() {
    let mut rng = Rng::new(36);
    let dims = [6usize, 7, 8];
    // (starts, ends, axes, steps)
    type Case = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (vec![1], vec![5], vec![0], vec![1]),
        (vec![0, 1], vec![-1, 100], vec![1, 2], vec![2, 3]),
        (vec![-1], vec![i64::MIN], vec![2], vec![-1]),
        (vec![5, -2], vec![0, 1], vec![0, 1], vec![-2, -3]),
        (vec![2], vec![3], vec![-1], vec![1]),
    ];
    for (starts, ends, axes, steps) in cases {
        let mut g = Graph::new("slice");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let y = node(&mut g, "slice", Op::Slice { starts, ends, axes, steps }, &[x]);
        g.add_output(y);
        check(&g, &[rng.f32(&dims, -1.0, 1.0)]);
    }
}

#[test]
fn gather_on_any_axis_with_negative_indices() {
    let mut rng = Rng::new(37);
    let dims = [4usize, 5, 6];
    for axis in [0i64, 1, 2, -1] {
        let a = axis.rem_euclid(3) as usize;
        let d = dims[a] as i64;
        for idx_dims in [vec![3usize], vec![2, 2], vec![]] {
            let mut g = Graph::new("gather");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let idx = g.add_input("idx", DType::I64, idx_dims.clone());
            let y = node(&mut g, "gather", Op::Gather { axis }, &[x, idx]);
            g.add_output(y);
            check(&g, &[rng.f32(&dims, -1.0, 1.0), rng.i64(&idx_dims, -d, d)]);
        }
    }
    // Embedding-style lookup with constant i32 indices.
    let mut g = Graph::new("embed");
    let table = g.add_input("table", DType::F32, vec![10, 4]);
    let idx = g.add_constant(
        "ids",
        Tensor {
            dtype: DType::I32,
            shape: vec![2, 3].into(),
            data: weft_graph::TensorData::I32(vec![0, 9, -1, 3, 3, 5]),
        },
    );
    let y = node(&mut g, "gather", Op::Gather { axis: 0 }, &[table, idx]);
    g.add_output(y);
    check(&g, &[rng.f32(&[10, 4], -1.0, 1.0)]);
}

/// Runs `p` on the interpreter with `inputs`.
fn run(p: &weft_lower::Program, inputs: &[Tensor]) -> Result<Vec<weft_kir::HostBuffer>, weft_pack::RunError> {
    let hosts: Vec<_> = inputs.iter().map(weft_lower::context::tensor_to_host).collect();
    weft_pack::run_program(&mut weft_pack::InterpExecutor::default(), std::sync::Arc::new(p.clone()), &hosts, |_| {})
}

/// Asserts that running `g` with `inputs` fails with the typed index error
/// naming `node`, `op`, indices input `input`, the bad `value` and `dim`.
fn assert_index_error(g: &Graph, inputs: &[Tensor], node: &str, op: &str, input: &str, value: i64, dim: usize) {
    let p = weft_lower::lower(g, &Default::default()).unwrap();
    common::assert_kernels_proven(&p);
    assert!(p.status.is_some(), "{op}: no status word");
    match run(&p, inputs) {
        Err(weft_pack::RunError::IndexOutOfRange { source: e, .. }) => {
            assert_eq!(
                (e.node.as_str(), e.op.as_str(), e.input.as_str(), e.value, e.dim),
                (node, op, input, value, dim)
            );
        }
        other => panic!("{op}: expected an index error, got {other:?}"),
    }
    let e = run(&p, inputs).unwrap_err().to_string();
    let range = format!("[-{dim}, {dim})");
    for needle in [node, op, input, range.as_str()] {
        assert!(e.contains(needle), "`{e}` does not mention `{needle}`");
    }
}

#[test]
fn gather_out_of_range_indices_are_an_error_naming_the_node() {
    let mut g = Graph::new("gather_oob");
    let x = g.add_input("x", DType::F32, vec![4]);
    let idx = g.add_input("idx", DType::I64, vec![3]);
    let y = node(&mut g, "gather", Op::Gather { axis: 0 }, &[x, idx]);
    g.add_output(y);
    let xs = Tensor::f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]);
    for bad in [4, -5, 1 << 32] {
        assert_index_error(&g, &[xs.clone(), Tensor::i64(vec![3], vec![0, bad, 1])], "gather", "Gather", "idx", bad, 4);
    }
    // The ends of the valid range are fine.
    let p = weft_lower::lower(&g, &Default::default()).unwrap();
    let out = run(&p, &[xs, Tensor::i64(vec![3], vec![3, -4, -1])]).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![4.0, 1.0, 4.0]);
}

#[test]
fn gather_elements_and_gather_nd_out_of_range_indices_are_errors() {
    let mut g = Graph::new("gather_elements_oob");
    let x = g.add_input("x", DType::F32, vec![2, 3]);
    let idx = g.add_input("idx", DType::I64, vec![2, 2]);
    let y = node(&mut g, "ge", Op::GatherElements { axis: 1 }, &[x, idx]);
    g.add_output(y);
    let xs = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_index_error(
        &g,
        &[xs.clone(), Tensor::i64(vec![2, 2], vec![0, 1, -4, 2])],
        "ge",
        "GatherElements",
        "idx",
        -4,
        3,
    );
    let p = weft_lower::lower(&g, &Default::default()).unwrap();
    let out = run(&p, &[xs.clone(), Tensor::i64(vec![2, 2], vec![2, -3, -1, 0])]).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![3.0, 1.0, 6.0, 4.0]);

    // GatherND: each tuple component has its own range (2 rows, 3 columns).
    let mut g = Graph::new("gather_nd_oob");
    let x = g.add_input("x", DType::F32, vec![2, 3]);
    let idx = g.add_input("tuples", DType::I64, vec![2, 2]);
    let y = node(&mut g, "gnd", Op::GatherND { batch_dims: 0 }, &[x, idx]);
    g.add_output(y);
    assert_index_error(&g, &[xs.clone(), Tensor::i64(vec![2, 2], vec![1, 2, 2, 0])], "gnd", "GatherND", "tuples", 2, 2);
    assert_index_error(&g, &[xs.clone(), Tensor::i64(vec![2, 2], vec![1, 3, 0, 0])], "gnd", "GatherND", "tuples", 3, 3);
    let p = weft_lower::lower(&g, &Default::default()).unwrap();
    let out = run(&p, &[xs, Tensor::i64(vec![2, 2], vec![-1, 2, -2, -3])]).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![6.0, 1.0]);
}

#[test]
fn constant_pad() {
    let mut rng = Rng::new(38);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[1, 2, 0, 3]),
        (&[1, 2, 5, 5], &[0, 0, 1, 1, 0, 0, 2, 2]),
        (&[7], &[0, 0]),
        (&[2, 3], &[2, 0, 0, 1]),
    ];
    for (dims, pads) in cases {
        let mut g = Graph::new("pad");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let y = node(&mut g, "pad", Op::Pad { pads: pads.to_vec(), value: 0.25 }, &[x]);
        g.add_output(y);
        check(&g, &[rng.f32(dims, -1.0, 1.0)]);
    }
}

#[test]
fn resize_every_mode_and_transform() {
    let mut rng = Rng::new(39);
    let transforms = [
        CoordinateTransform::HalfPixel,
        CoordinateTransform::PytorchHalfPixel,
        CoordinateTransform::AlignCorners,
        CoordinateTransform::Asymmetric,
        CoordinateTransform::HalfPixelSymmetric,
    ];
    let nearests = [NearestMode::RoundPreferFloor, NearestMode::RoundPreferCeil, NearestMode::Floor, NearestMode::Ceil];
    let cases: &[(&[usize], &[f32])] = &[
        (&[1, 2, 4, 5], &[1.0, 1.0, 2.0, 2.0]),
        (&[1, 1, 6, 9], &[1.0, 1.0, 0.5, 1.0 / 3.0]),
        (&[2, 3, 5, 4], &[1.0, 1.0, 1.7, 2.5]),
        (&[1, 1, 3, 1], &[1.0, 1.0, 3.0, 1.0]),
    ];
    for (dims, scales) in cases {
        for &transform in &transforms {
            let cubic = |exclude_outside| ResizeMode::Cubic { coeff_a: -0.5, exclude_outside };
            for mode in [ResizeMode::Nearest, ResizeMode::Linear, cubic(false), cubic(true)] {
                let ns: &[NearestMode] = if mode == ResizeMode::Nearest { &nearests } else { &nearests[..1] };
                for &nearest in ns {
                    let mut g = Graph::new("resize");
                    let x = g.add_input("x", DType::F32, dims.to_vec());
                    let op = Op::Resize { scales: scales.to_vec(), mode, transform, nearest };
                    let y = node(&mut g, "resize", op, &[x]);
                    g.add_output(y);
                    check(&g, &[rng.f32(dims, -1.0, 1.0)]);
                }
            }
        }
    }
}

#[test]
fn gather_elements_on_any_axis_with_negative_indices() {
    let mut rng = Rng::new(38);
    let dims = [4usize, 5, 6];
    for axis in [0i64, 1, 2, -1] {
        let a = axis.rem_euclid(3) as usize;
        let d = dims[a] as i64;
        let mut idx_dims = vec![3usize, 2, 4];
        idx_dims[a] = 7;
        let mut g = Graph::new("gather_elements");
        let x = g.add_input("x", DType::F32, dims.to_vec());
        let idx = g.add_input("idx", DType::I64, idx_dims.clone());
        let y = node(&mut g, "ge", Op::GatherElements { axis }, &[x, idx]);
        g.add_output(y);
        check(&g, &[rng.f32(&dims, -1.0, 1.0), rng.i64(&idx_dims, -d, d)]);
    }
}

fn reductions() -> [ScatterReduction; 5] {
    [ScatterReduction::None, ScatterReduction::Add, ScatterReduction::Mul, ScatterReduction::Max, ScatterReduction::Min]
}

#[test]
fn scatter_elements_every_axis_and_reduction() {
    let mut rng = Rng::new(51);
    for axis in [0i64, 1, -1] {
        for reduction in reductions() {
            let dims = [3usize, 4];
            let idx_dims = [2usize, 3];
            let a = if axis < 0 { 1 } else { axis as usize };
            let d = dims[a] as i64;
            let mut g = Graph::new("scatter_elements");
            let x = g.add_input("x", DType::F32, dims.to_vec());
            let i = g.add_input("i", DType::I64, idx_dims.to_vec());
            let u = g.add_input("u", DType::F32, idx_dims.to_vec());
            let y = node(&mut g, "s", Op::ScatterElements { axis, reduction }, &[x, i, u]);
            g.add_output(y);
            // Duplicate indices are likely with 6 updates into 3 or 4 slots,
            // so the combination order is exercised.
            let idx = rng.i64(&idx_dims, -d, d);
            check(&g, &[rng.f32(&dims, 0.5, 1.5), idx, rng.f32(&idx_dims, 0.5, 1.5)]);
        }
    }
}

#[test]
fn scatter_nd_tuples_and_slices() {
    let mut rng = Rng::new(52);
    // data [4, 3, 2]: tuples of 1 (whole [3, 2] slices), 2 (rows of 2) and 3 (elements).
    let cases: &[(&[usize], &[usize])] = &[(&[2, 1], &[2, 3, 2]), (&[3, 2], &[3, 2]), (&[2, 2, 3], &[2, 2])];
    for (idx_dims, upd_dims) in cases {
        for reduction in reductions() {
            let k = *idx_dims.last().unwrap();
            let data_dims = [4usize, 3, 2];
            let tuples: usize = idx_dims[..idx_dims.len() - 1].iter().product();
            let mut vals = Vec::new();
            for _ in 0..tuples {
                for &d in &data_dims[..k] {
                    let d = d as i64;
                    vals.push(rng.i64(&[1], -d, d).as_i64s().unwrap()[0]);
                }
            }
            let mut g = Graph::new("scatter_nd");
            let x = g.add_input("x", DType::F32, data_dims.to_vec());
            let i = g.add_input("i", DType::I64, idx_dims.to_vec());
            let u = g.add_input("u", DType::F32, upd_dims.to_vec());
            let y = node(&mut g, "s", Op::ScatterND { reduction }, &[x, i, u]);
            g.add_output(y);
            let idx = Tensor::i64(idx_dims.to_vec(), vals);
            check(&g, &[rng.f32(&data_dims, 0.5, 1.5), idx, rng.f32(upd_dims, 0.5, 1.5)]);
        }
    }
}

#[test]
fn scatter_out_of_range_run_time_indices_are_errors() {
    let mut g = Graph::new("scatter_oob");
    let x = g.add_input("x", DType::F32, vec![4]);
    let i = g.add_input("i", DType::I64, vec![3]);
    let u = g.add_input("u", DType::F32, vec![3]);
    let y = node(&mut g, "s", Op::ScatterElements { axis: 0, reduction: ScatterReduction::None }, &[x, i, u]);
    g.add_output(y);
    let xs = Tensor::f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]);
    let us = Tensor::f32(vec![3], vec![10.0, 20.0, 30.0]);
    // 2^32 + 1 must not alias index 1.
    for bad in [(1 << 32) + 1, -5, 4] {
        let is = Tensor::i64(vec![3], vec![0, bad, -1]);
        assert_index_error(&g, &[xs.clone(), is, us.clone()], "s", "ScatterElements", "i", bad, 4);
    }
    let p = weft_lower::lower(&g, &Default::default()).unwrap();
    let out = run(&p, &[xs.clone(), Tensor::i64(vec![3], vec![-4, 2, -1]), us.clone()]).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![10.0, 2.0, 20.0, 30.0]);

    let mut g = Graph::new("scatter_nd_oob");
    let x = g.add_input("x", DType::F32, vec![4]);
    let i = g.add_input("rows", DType::I64, vec![3, 1]);
    let u = g.add_input("u", DType::F32, vec![3]);
    let y = node(&mut g, "snd", Op::ScatterND { reduction: ScatterReduction::Add }, &[x, i, u]);
    g.add_output(y);
    let is = Tensor::i64(vec![3, 1], vec![1, 9, 0]);
    assert_index_error(&g, &[xs.clone(), is, us.clone()], "snd", "ScatterND", "rows", 9, 4);
    let p = weft_lower::lower(&g, &Default::default()).unwrap();
    let out = run(&p, &[xs, Tensor::i64(vec![3, 1], vec![-1, 3, 0]), us]).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![31.0, 2.0, 3.0, 34.0]);
}

/// A tenant's arena is reused across requests: after a request with a bad
/// index, the status word is zeroed, so a good request succeeds.
#[test]
fn a_good_request_after_a_bad_one_in_the_same_arena_succeeds() {
    use weft_pack::{solo_bundle, Arena, Executor, InterpExecutor, Resident, RunError, TenantId};
    let mut g = Graph::new("gather_twice");
    let x = g.add_input("x", DType::F32, vec![4]);
    let idx = g.add_input("idx", DType::I64, vec![2]);
    let y = node(&mut g, "gather", Op::Gather { axis: 0 }, &[x, idx]);
    g.add_output(y);
    let p = std::sync::Arc::new(weft_lower::lower(&g, &Default::default()).unwrap());
    let mut exec = InterpExecutor::default();
    let resident = Resident::upload(&mut exec, p.clone()).unwrap();
    let arena = Arena::alloc(&mut exec, &p).unwrap();
    let mut request = |idx: Vec<i64>| -> Result<Vec<f32>, RunError> {
        let inputs = [Tensor::f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]), Tensor::i64(vec![2], idx)];
        let hosts: Vec<_> = inputs.iter().map(weft_lower::context::tensor_to_host).collect();
        resident.begin(&mut exec, &arena, &hosts)?;
        for (k, step) in p.steps.iter().enumerate() {
            let bundle = solo_bundle(&p, k, TenantId(0))?;
            let args = vec![resident.launch_args(&arena, &step.args)?];
            exec.launch(&bundle, &args).expect("launch");
        }
        Ok(resident.outputs(&mut exec, &arena)?[0].to_f32_vec())
    };
    assert_eq!(request(vec![1, -1]).unwrap(), vec![2.0, 4.0]);
    assert!(matches!(request(vec![1, 4]), Err(RunError::IndexOutOfRange { source, .. }) if source.value == 4));
    assert_eq!(request(vec![0, -4]).unwrap(), vec![1.0, 1.0]);
    assert!(matches!(request(vec![-5, 0]), Err(RunError::IndexOutOfRange { source, .. }) if source.value == -5));
    assert_eq!(request(vec![3, 2]).unwrap(), vec![4.0, 3.0]);
}

#[test]
fn gather_nd_with_and_without_batch_dims() {
    let mut rng = Rng::new(53);
    // (data, indices, batch_dims)
    let cases: &[(&[usize], &[usize], usize)] =
        &[(&[4, 3, 2], &[5, 1], 0), (&[4, 3, 2], &[2, 2, 2], 0), (&[4, 3, 2], &[3], 0), (&[2, 3, 4], &[2, 2, 1], 1)];
    for &(data_dims, idx_dims, batch_dims) in cases {
        let k = *idx_dims.last().unwrap();
        let tuples: usize = idx_dims[..idx_dims.len() - 1].iter().product();
        let mut vals = Vec::new();
        for _ in 0..tuples {
            for t in 0..k {
                let d = data_dims[batch_dims + t] as i64;
                vals.push(rng.i64(&[1], -d, d).as_i64s().unwrap()[0]);
            }
        }
        let mut g = Graph::new("gather_nd");
        let x = g.add_input("x", DType::F32, data_dims.to_vec());
        let i = g.add_input("i", DType::I64, idx_dims.to_vec());
        let y = node(&mut g, "g", Op::GatherND { batch_dims }, &[x, i]);
        g.add_output(y);
        check(&g, &[rng.f32(data_dims, -1.0, 1.0), Tensor::i64(idx_dims.to_vec(), vals)]);
    }
}
