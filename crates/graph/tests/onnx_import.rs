//! ONNX import on small models built here with the protobuf types: operator
//! mapping, opset-specific attribute forms, constant folding, and the errors
//! (unsupported operators, malformed files, unbound dynamic dims).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, Message, ModelProto};
use weft_graph::eval::evaluate;
use weft_graph::onnx::testing::{
    attr_float, attr_floats, attr_int, attr_ints, attr_string, attr_tensor, f32_input, model_bytes, node, tensor_f32,
    tensor_i64, value_info, vector_i64, Dim,
};
use weft_graph::{import_onnx, ImportError, ImportOptions, Op, Tensor, UnaryOp};

fn run(bytes: &[u8], inputs: &[Tensor]) -> Vec<Tensor> {
    let g = import_onnx(bytes, &ImportOptions::default()).expect("imports");
    evaluate(&g, inputs).expect("evaluates")
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_f64().iter().map(|&x| x as f32).collect()
}

#[test]
fn conv_relu() {
    // 1x1x3x3 input, a 2x2 kernel of ones and bias -10: each output is the
    // sum of a 2x2 window minus 10, then ReLU.
    let bytes = model_bytes(
        11,
        vec![f32_input("x", &[1, 1, 3, 3])],
        vec![tensor_f32("w", &[1, 1, 2, 2], vec![1.0; 4]), tensor_f32("b", &[1], vec![-10.0])],
        vec![
            node("Conv", "conv", &["x", "w", "b"], &["c"], vec![attr_ints("kernel_shape", &[2, 2])]),
            node("Relu", "relu", &["c"], &["y"], vec![]),
        ],
        &["y"],
    );
    let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.node_count(), 2);
    let y = g.tensor_by_name("y").unwrap();
    assert_eq!(g.info(y).shape.dims(), &[1, 1, 2, 2]);
    let x = Tensor::f32(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let out = run(&bytes, &[x]);
    // Windows: 1+2+4+5=12, 2+3+5+6=16, 4+5+7+8=24, 5+6+8+9=28.
    close(&f32s(&out[0]), &[2.0, 6.0, 14.0, 18.0]);
}

#[test]
fn reshape_with_constant_shape_input_and_folded_shape_subgraph() {
    // shape = Concat(Gather(Shape(x), 0), [-1]): the exporter's way of
    // writing "flatten after the batch dim", folded at import.
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[2, 3, 4])],
        vec![vector_i64("zero", vec![0]), vector_i64("minus_one", vec![-1])],
        vec![
            node("Shape", "shape", &["x"], &["s"], vec![]),
            node("Gather", "gather", &["s", "zero"], &["n"], vec![attr_int("axis", 0)]),
            node("Concat", "concat", &["n", "minus_one"], &["target"], vec![attr_int("axis", 0)]),
            node("Reshape", "reshape", &["x", "target"], &["y"], vec![]),
        ],
        &["y"],
    );
    let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.node_count(), 1, "only the Reshape reaches the graph");
    let node = g.nodes.node_weights().next().unwrap();
    assert_eq!(node.op, Op::Reshape { shape: vec![2, -1], allow_zero: false });
    assert_eq!(node.inputs.len(), 1, "the shape input became an attribute");
    assert_eq!(g.info(g.outputs[0]).shape.dims(), &[2, 12]);
}

#[test]
fn clip_bounds_as_attributes_before_opset_11_and_inputs_after() {
    let old = model_bytes(
        9,
        vec![f32_input("x", &[4])],
        vec![],
        vec![node("Clip", "clip", &["x"], &["y"], vec![attr_float("min", -1.0), attr_float("max", 2.0)])],
        &["y"],
    );
    let new = model_bytes(
        13,
        vec![f32_input("x", &[4])],
        vec![tensor_f32("lo", &[], vec![-1.0]), tensor_f32("hi", &[], vec![2.0])],
        vec![node("Clip", "clip", &["x", "lo", "hi"], &["y"], vec![])],
        &["y"],
    );
    // Opset 11+ with only a lower bound: the upper one is +inf.
    let min_only = model_bytes(
        12,
        vec![f32_input("x", &[4])],
        vec![tensor_f32("lo", &[], vec![0.0])],
        vec![node("Clip", "clip", &["x", "lo", ""], &["y"], vec![])],
        &["y"],
    );
    for bytes in [&old, &new] {
        let g = import_onnx(bytes, &ImportOptions::default()).unwrap();
        let n = g.nodes.node_weights().next().unwrap();
        assert_eq!(n.op, Op::Unary(UnaryOp::Clip { min: -1.0, max: 2.0 }));
        assert_eq!(n.inputs.len(), 1);
    }
    let g = import_onnx(&min_only, &ImportOptions::default()).unwrap();
    let n = g.nodes.node_weights().next().unwrap();
    assert_eq!(n.op, Op::Unary(UnaryOp::Clip { min: 0.0, max: f32::INFINITY }));
    let out = run(&new, &[Tensor::f32(vec![4], vec![-3.0, 0.5, 1.5, 9.0])]);
    close(&f32s(&out[0]), &[-1.0, 0.5, 1.5, 2.0]);
}

#[test]
fn squeeze_unsqueeze_axes_as_attribute_before_13_and_input_after() {
    let old = model_bytes(
        11,
        vec![f32_input("x", &[1, 3, 1])],
        vec![],
        vec![
            node("Squeeze", "sq", &["x"], &["s"], vec![attr_ints("axes", &[0, 2])]),
            node("Unsqueeze", "unsq", &["s"], &["y"], vec![attr_ints("axes", &[1])]),
        ],
        &["y"],
    );
    let new = model_bytes(
        13,
        vec![f32_input("x", &[1, 3, 1])],
        vec![vector_i64("sq_axes", vec![0, 2]), vector_i64("unsq_axes", vec![1])],
        vec![
            node("Squeeze", "sq", &["x", "sq_axes"], &["s"], vec![]),
            node("Unsqueeze", "unsq", &["s", "unsq_axes"], &["y"], vec![]),
        ],
        &["y"],
    );
    for bytes in [&old, &new] {
        let g = import_onnx(bytes, &ImportOptions::default()).unwrap();
        assert_eq!(g.info(g.outputs[0]).shape.dims(), &[3, 1]);
        let ops: Vec<Op> = g.nodes.node_weights().map(|n| n.op.clone()).collect();
        assert!(ops.contains(&Op::Squeeze { axes: vec![0, 2] }), "{ops:?}");
        assert!(ops.contains(&Op::Unsqueeze { axes: vec![1] }), "{ops:?}");
    }
}

#[test]
fn split_sizes_as_attribute_before_13_input_after_and_even_by_default() {
    let old = model_bytes(
        11,
        vec![f32_input("x", &[6])],
        vec![],
        vec![node("Split", "split", &["x"], &["a", "b"], vec![attr_ints("split", &[2, 4])])],
        &["a", "b"],
    );
    let new = model_bytes(
        13,
        vec![f32_input("x", &[6])],
        vec![vector_i64("sizes", vec![2, 4])],
        vec![node("Split", "split", &["x", "sizes"], &["a", "b"], vec![])],
        &["a", "b"],
    );
    let even = model_bytes(
        13,
        vec![f32_input("x", &[6])],
        vec![],
        vec![node("Split", "split", &["x"], &["a", "b", "c"], vec![])],
        &["a", "b", "c"],
    );
    for bytes in [&old, &new] {
        let x = Tensor::f32(vec![6], (0..6).map(|v| v as f32).collect());
        let out = run(bytes, &[x]);
        close(&f32s(&out[0]), &[0.0, 1.0]);
        close(&f32s(&out[1]), &[2.0, 3.0, 4.0, 5.0]);
    }
    let g = import_onnx(&even, &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.node_weights().next().unwrap().op, Op::Split { axis: 0, sizes: vec![2, 2, 2] });
}

#[test]
fn softmax_before_opset_13_normalises_over_all_trailing_dims() {
    // [1, 2, 2] with axis=1: before 13 the four values form one
    // distribution; from 13 each column of two does.
    let x = Tensor::f32(vec![1, 2, 2], vec![0.0, 1.0, 2.0, 3.0]);
    let attrs = || vec![attr_int("axis", 1)];
    let old = model_bytes(
        11,
        vec![f32_input("x", &[1, 2, 2])],
        vec![],
        vec![node("Softmax", "sm", &["x"], &["y"], attrs())],
        &["y"],
    );
    let new = model_bytes(
        13,
        vec![f32_input("x", &[1, 2, 2])],
        vec![],
        vec![node("Softmax", "sm", &["x"], &["y"], attrs())],
        &["y"],
    );
    let e: Vec<f32> = [0.0f32, 1.0, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let total: f32 = e.iter().sum();
    let out_old = run(&old, std::slice::from_ref(&x));
    assert_eq!(out_old[0].shape.dims(), &[1, 2, 2]);
    close(&f32s(&out_old[0]), &e.iter().map(|v| v / total).collect::<Vec<_>>());
    let out_new = run(&new, &[x]);
    close(
        &f32s(&out_new[0]),
        &[e[0] / (e[0] + e[2]), e[1] / (e[1] + e[3]), e[2] / (e[0] + e[2]), e[3] / (e[1] + e[3])],
    );
    // The default axis differs too: 1 before 13, -1 after; on a rank-2 input
    // both are the last axis, so no reshapes are needed.
    let g = import_onnx(
        &model_bytes(
            9,
            vec![f32_input("x", &[2, 5])],
            vec![],
            vec![node("Softmax", "sm", &["x"], &["y"], vec![])],
            &["y"],
        ),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(g.nodes.node_count(), 1);
}

#[test]
fn constant_nodes_in_every_form_and_folding_of_constant_only_nodes() {
    let mut value_ints = AttributeProto::new();
    value_ints.name = "value_ints".into();
    value_ints.type_ = AttributeType::INTS.into();
    value_ints.ints = vec![1, 4];
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[4])],
        vec![],
        vec![
            node(
                "Constant",
                "",
                &[],
                &["bias"],
                vec![attr_tensor("value", tensor_f32("", &[4], vec![1.0, 2.0, 3.0, 4.0]))],
            ),
            node("Constant", "", &[], &["two"], vec![attr_float("value_float", 2.0)]),
            node("Constant", "", &[], &["shape"], vec![value_ints]),
            // Folded: bias * 2 never reaches the graph as a node.
            node("Mul", "scale", &["bias", "two"], &["bias2"], vec![]),
            node("Add", "add", &["x", "bias2"], &["sum"], vec![]),
            node("Reshape", "reshape", &["sum", "shape"], &["y"], vec![]),
        ],
        &["y"],
    );
    let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.node_count(), 2, "Add and Reshape only");
    let out = evaluate(&g, &[Tensor::f32(vec![4], vec![0.0; 4])]).unwrap();
    assert_eq!(out[0].shape.dims(), &[1, 4]);
    close(&f32s(&out[0]), &[2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn every_unsupported_operator_is_reported_at_once() {
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[4])],
        vec![],
        vec![
            node("Relu", "ok", &["x"], &["a"], vec![]),
            node("NonMaxSuppression", "nms", &["a"], &["b"], vec![]),
            node("Unique", "unique_1", &["b"], &["c"], vec![]),
            node("Unique", "unique_2", &["c"], &["y"], vec![]),
        ],
        &["y"],
    );
    let err = import_onnx(&bytes, &ImportOptions::default()).unwrap_err();
    match &err {
        ImportError::Unsupported { ops } => {
            let names: Vec<&str> = ops.iter().map(|(_, n)| n.as_str()).collect();
            assert_eq!(names, ["nms", "unique_1", "unique_2"]);
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("NonMaxSuppression (node `nms`)"), "{msg}");
    assert!(msg.contains("Unique (nodes `unique_1`, `unique_2`)"), "{msg}");
}

#[test]
fn operators_of_other_domains_are_unsupported() {
    let mut n = node("FusedGemm", "fg", &["x"], &["y"], vec![]);
    n.domain = "com.microsoft".into();
    let bytes = model_bytes(13, vec![f32_input("x", &[4])], vec![], vec![n], &["y"]);
    let msg = import_onnx(&bytes, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("com.microsoft.FusedGemm (node `fg`)"), "{msg}");
}

#[test]
fn malformed_bytes_are_an_error_not_a_panic() {
    for bytes in [&b"definitely not protobuf \xff\xff\xff"[..], &[0x0a, 0xff, 0xff, 0xff, 0x0f][..]] {
        let err = import_onnx(bytes, &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, ImportError::Protobuf { path: None, .. }), "{err:?}");
        // The parser's own error travels as the source, not as text.
        let source = std::error::Error::source(&err).expect("the protobuf error is kept");
        assert!(source.downcast_ref::<protobuf::Error>().is_some(), "{source:?}");
    }
    // Well-formed protobuf, but no graph.
    let empty = ModelProto::new().write_to_bytes().unwrap();
    assert!(import_onnx(&empty, &ImportOptions::default()).is_err());
    // Truncated real model.
    let bytes =
        model_bytes(13, vec![f32_input("x", &[4])], vec![], vec![node("Relu", "r", &["x"], &["y"], vec![])], &["y"]);
    assert!(import_onnx(&bytes[..bytes.len() / 2], &ImportOptions::default()).is_err());
}

#[test]
fn unsupported_opset_is_an_error_with_the_fix() {
    let bytes =
        model_bytes(6, vec![f32_input("x", &[4])], vec![], vec![node("Relu", "r", &["x"], &["y"], vec![])], &["y"]);
    let msg = import_onnx(&bytes, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("opset 6") && msg.contains("convert_version"), "{msg}");
}

#[test]
fn opset_7_imports_and_batch_normalization_spatial_0_is_refused() {
    // Opset 7: Upsample's scales are an attribute; BatchNormalization has
    // `spatial`, whose default (1) is the only form of opset 9.
    let bn = |spatial: Option<i64>| {
        let attrs = spatial.map(|s| vec![attr_int("spatial", s)]).unwrap_or_default();
        model_bytes(
            7,
            vec![f32_input("x", &[1, 2, 1, 2])],
            vec![
                tensor_f32("s", &[2], vec![2.0, 3.0]),
                tensor_f32("b", &[2], vec![1.0, 0.0]),
                tensor_f32("m", &[2], vec![0.0, 1.0]),
                tensor_f32("v", &[2], vec![1.0, 4.0]),
            ],
            vec![node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y"], attrs)],
            &["y"],
        )
    };
    let x = Tensor::f32(vec![1, 2, 1, 2], vec![1.0, 2.0, 3.0, 5.0]);
    for spatial in [None, Some(1)] {
        let out = run(&bn(spatial), std::slice::from_ref(&x));
        // Channel 0: 2x + 1 (eps aside); channel 1: 3 (x - 1) / 2.
        let eps = 1e-5f32;
        let c0 = |v: f32| 2.0 * v / (1.0 + eps).sqrt() + 1.0;
        let c1 = |v: f32| 3.0 * (v - 1.0) / (4.0 + eps).sqrt();
        close(&f32s(&out[0]), &[c0(1.0), c0(2.0), c1(3.0), c1(5.0)]);
    }
    let err = import_onnx(&bn(Some(0)), &ImportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bn") && msg.contains("spatial=0"), "{msg}");

    let up = model_bytes(
        7,
        vec![f32_input("x", &[1, 1, 1, 2])],
        vec![],
        vec![node("Upsample", "up", &["x"], &["y"], vec![attr_floats("scales", &[1.0, 1.0, 2.0, 2.0])])],
        &["y"],
    );
    let out = run(&up, &[Tensor::f32(vec![1, 1, 1, 2], vec![1.0, 2.0])]);
    assert_eq!(out[0].shape.dims(), &[1, 1, 2, 4]);
    close(&f32s(&out[0]), &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn dynamic_dims_must_be_bound_and_the_error_names_the_input() {
    let bytes = model_bytes(
        13,
        vec![value_info(
            "pixels",
            DataType::FLOAT,
            &[Dim::Param("batch"), Dim::Value(3), Dim::Param("h"), Dim::Param("w")],
        )],
        vec![],
        vec![node("Relu", "r", &["pixels"], &["y"], vec![])],
        &["y"],
    );
    let err = import_onnx(&bytes, &ImportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::Input { ref input, .. } if input == "pixels"), "{err:?}");
    assert!(msg.contains("--shape pixels=") && msg.contains("[batch, 3, h, w]"), "{msg}");

    let g = import_onnx(&bytes, &ImportOptions::default().with_shape("pixels", vec![2, 3, 8, 8])).unwrap();
    assert_eq!(g.info(g.inputs[0]).shape.dims(), &[2, 3, 8, 8]);
    let g =
        import_onnx(&bytes, &ImportOptions::default().with_dim("batch", 1).with_dim("h", 4).with_dim("w", 5)).unwrap();
    assert_eq!(g.info(g.inputs[0]).shape.dims(), &[1, 3, 4, 5]);
    // A binding that contradicts a fixed dim is refused.
    let err = import_onnx(&bytes, &ImportOptions::default().with_shape("pixels", vec![1, 4, 8, 8])).unwrap_err();
    assert!(err.to_string().contains("dimension 1 is 3"), "{err}");
}

#[test]
fn expand_of_a_runtime_tensor_broadcasts() {
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[2, 1])],
        vec![vector_i64("shape", vec![2, 3])],
        vec![node("Expand", "expand", &["x", "shape"], &["y"], vec![])],
        &["y"],
    );
    let out = run(&bytes, &[Tensor::f32(vec![2, 1], vec![1.0, 2.0])]);
    assert_eq!(out[0].shape.dims(), &[2, 3]);
    close(&f32s(&out[0]), &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
}

#[test]
fn slice_attributes_before_opset_10_and_inputs_after_are_clamped() {
    let old = model_bytes(
        9,
        vec![f32_input("x", &[5])],
        vec![],
        vec![node("Slice", "s", &["x"], &["y"], vec![attr_ints("starts", &[1]), attr_ints("ends", &[i64::MAX])])],
        &["y"],
    );
    let new = model_bytes(
        13,
        vec![f32_input("x", &[5])],
        vec![
            vector_i64("starts", vec![-1]),
            vector_i64("ends", vec![i64::MIN]),
            vector_i64("axes", vec![0]),
            vector_i64("steps", vec![-2]),
        ],
        vec![node("Slice", "s", &["x", "starts", "ends", "axes", "steps"], &["y"], vec![])],
        &["y"],
    );
    let x = || Tensor::f32(vec![5], vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    close(&f32s(&run(&old, &[x()])[0]), &[1.0, 2.0, 3.0, 4.0]);
    close(&f32s(&run(&new, &[x()])[0]), &[4.0, 2.0, 0.0]);
}

#[test]
fn external_data_is_refused_with_the_fix() {
    let mut w = tensor_f32("w", &[4], vec![0.0; 4]);
    w.raw_data.clear();
    w.data_location = onnx_protobuf::tensor_proto::DataLocation::EXTERNAL.into();
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[4])],
        vec![w],
        vec![node("Add", "a", &["x", "w"], &["y"], vec![])],
        &["y"],
    );
    let msg = import_onnx(&bytes, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("tensor `w`") && msg.contains("save_as_external_data=False"), "{msg}");
}

/// ReduceMean at opset 18 over `x` [batch, 3] with its axes as a graph input.
fn reduce_mean_18() -> Vec<u8> {
    model_bytes(
        18,
        vec![
            value_info("x", DataType::FLOAT, &[Dim::Param("batch"), Dim::Value(3)]),
            value_info("axes", DataType::INT64, &[Dim::Value(1)]),
        ],
        vec![],
        vec![node("ReduceMean", "mean", &["x", "axes"], &["y"], vec![attr_int("keepdims", 0)])],
        &["y"],
    )
}

#[test]
fn given_values_bind_shapes_and_attribute_like_inputs() {
    let bytes = reduce_mean_18();
    // Without the axes' value the node cannot be compiled, and the error
    // says how to give it.
    let err = import_onnx(&bytes, &ImportOptions::default().with_dim("batch", 2)).unwrap_err().to_string();
    assert!(err.contains("`axes`") && err.contains("--input axes="), "{err}");

    let x = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 9.0]);
    let axes = Tensor::i64(vec![1], vec![-1]);
    let options = ImportOptions::default().with_value("x", x.clone()).with_value("axes", axes.clone());
    let g = import_onnx(&bytes, &options).expect("imports");
    // `batch` came from x's value; the axes were compiled in and recorded.
    assert_eq!(g.info(g.inputs[0]).shape.dims(), &[2, 3]);
    assert_eq!(g.specialized.get(&g.inputs[1]), Some(&axes));
    assert!(!g.specialized.contains_key(&g.inputs[0]));
    let y = evaluate(&g, &[x, axes]).expect("evaluates");
    close(&f32s(&y[0]), &[2.0, 6.0]);
}

#[test]
fn a_dimension_bound_two_ways_is_an_error_naming_it() {
    let bytes = reduce_mean_18();
    let options = ImportOptions::default()
        .with_dim("batch", 4)
        .with_value("x", Tensor::f32(vec![2, 3], vec![0.0; 6]))
        .with_value("axes", Tensor::i64(vec![1], vec![1]));
    let err = import_onnx(&bytes, &options).unwrap_err().to_string();
    assert!(err.contains("`batch`") && err.contains('4') && err.contains('2'), "{err}");
}

#[test]
fn opset_18_split_with_num_outputs_makes_the_last_chunk_smaller() {
    let bytes = model_bytes(
        18,
        vec![f32_input("x", &[5])],
        vec![],
        vec![node("Split", "split", &["x"], &["a", "b"], vec![attr_int("num_outputs", 2)])],
        &["a", "b"],
    );
    let x = Tensor::f32(vec![5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let out = run(&bytes, &[x]);
    assert_eq!(f32s(&out[0]), vec![1.0, 2.0, 3.0]);
    assert_eq!(f32s(&out[1]), vec![4.0, 5.0]);
}

/// One-node model `op(x, consts…) -> y` at `opset`, evaluated on `x`.
fn one_node(
    opset: i64,
    op: &str,
    x: Tensor,
    consts: Vec<onnx_protobuf::TensorProto>,
    attrs: Vec<AttributeProto>,
) -> Vec<f32> {
    let dims: Vec<i64> = x.shape.dims().iter().map(|&d| d as i64).collect();
    let mut ins = vec!["x".to_string()];
    ins.extend(consts.iter().map(|c| c.name.clone()));
    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
    let bytes =
        model_bytes(opset, vec![f32_input("x", &dims)], consts, vec![node(op, "n", &ins, &["y"], attrs)], &["y"]);
    f32s(&run(&bytes, &[x])[0])
}

#[test]
fn composite_reductions_follow_their_onnx_definitions() {
    let x = || Tensor::f32(vec![2, 2], vec![3.0, -4.0, 1.0, 0.0]);
    let axes = || vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)];
    close(&one_node(13, "ReduceL1", x(), vec![], axes()), &[7.0, 1.0]);
    close(&one_node(13, "ReduceL2", x(), vec![], axes()), &[5.0, 1.0]);
    close(&one_node(13, "ReduceSumSquare", x(), vec![], axes()), &[25.0, 1.0]);
    let p = Tensor::f32(vec![2, 2], vec![1.0, 2.0, 0.5, 0.5]);
    close(&one_node(13, "ReduceLogSum", p, vec![], axes()), &[3f32.ln(), 0.0]);
    // ln(e^1000 + e^1000) = 1000 + ln 2: no overflow.
    let big = Tensor::f32(vec![1, 2], vec![1000.0, 1000.0]);
    close(&one_node(13, "ReduceLogSumExp", big, vec![], axes()), &[1000.0 + 2f32.ln()]);
    // Opset 18 axes as an input, keepdims by default.
    close(&one_node(18, "ReduceMin", x(), vec![vector_i64("axes", vec![0])], vec![]), &[1.0, -4.0]);
    close(&one_node(18, "ReduceProd", x(), vec![vector_i64("axes", vec![-1])], vec![]), &[-12.0, 0.0]);
}

#[test]
fn decomposed_operators_give_onnx_values() {
    let x = Tensor::f32(vec![1, 4], vec![-2.0, -1.0, 0.5, 2.0]);
    let slope = tensor_f32("slope", &[1], vec![0.25]);
    close(&one_node(16, "PRelu", x.clone(), vec![slope], vec![]), &[-0.5, -0.25, 0.5, 2.0]);
    // Trilu keeps j − i ≥ k (upper) of the last two dims.
    let m = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    close(&one_node(14, "Trilu", m.clone(), vec![], vec![]), &[1.0, 2.0, 3.0, 0.0, 5.0, 6.0]);
    let k = onnx_protobuf::TensorProto { name: "k".into(), ..weft_graph::onnx::testing::tensor_i64("k", &[], vec![1]) };
    close(&one_node(14, "Trilu", m.clone(), vec![k], vec![attr_int("upper", 0)]), &[1.0, 2.0, 0.0, 4.0, 5.0, 6.0]);
    // Hardmax: the first largest per row.
    let h = Tensor::f32(vec![2, 3], vec![1.0, 3.0, 3.0, -1.0, -2.0, -3.0]);
    close(&one_node(13, "Hardmax", h, vec![], vec![]), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    // DepthToSpace DCR on 4 channels of 1×1: the channels become a 2×2 block.
    let d = Tensor::f32(vec![1, 4, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    close(&one_node(13, "DepthToSpace", d, vec![], vec![attr_int("blocksize", 2)]), &[1.0, 2.0, 3.0, 4.0]);
    let s = Tensor::f32(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    close(&one_node(13, "SpaceToDepth", s, vec![], vec![attr_int("blocksize", 2)]), &[1.0, 2.0, 3.0, 4.0]);
    // Tile [1, 2] by [2, 2].
    let t = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
    let reps = weft_graph::onnx::testing::tensor_i64("repeats", &[2], vec![2, 2]);
    close(&one_node(13, "Tile", t, vec![reps], vec![]), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    // LpNormalization p=2 on [3, 4] and an all-zero row.
    let l = Tensor::f32(vec![2, 2], vec![3.0, 4.0, 0.0, 0.0]);
    close(&one_node(13, "LpNormalization", l, vec![], vec![]), &[0.6, 0.8, 0.0, 0.0]);
    // RMSNormalization: x / √(mean(x²) + ε), here √((9 + 16)/2).
    let r = Tensor::f32(vec![1, 2], vec![3.0, 4.0]);
    let scale = tensor_f32("scale", &[2], vec![1.0, 2.0]);
    let rms = (12.5f32 + 1e-5).sqrt();
    close(&one_node(23, "RMSNormalization", r, vec![scale], vec![]), &[3.0 / rms, 8.0 / rms]);
    // Mean of two inputs.
    let bytes = model_bytes(
        13,
        vec![f32_input("a", &[2]), f32_input("b", &[2])],
        vec![],
        vec![node("Mean", "mean", &["a", "b"], &["y"], vec![])],
        &["y"],
    );
    let out = run(&bytes, &[Tensor::f32(vec![2], vec![1.0, 2.0]), Tensor::f32(vec![2], vec![3.0, 6.0])]);
    close(&f32s(&out[0]), &[2.0, 4.0]);
}

#[test]
fn negative_log_likelihood_loss_weights_and_ignore_index() {
    // log-probabilities of 3 samples over 2 classes; targets 1, 0, 1.
    let x = Tensor::f32(vec![3, 2], vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
    let t = Tensor::i64(vec![3], vec![1, 0, 1]);
    let loss = |attrs: Vec<AttributeProto>, weight: Option<Vec<f32>>| -> Vec<f32> {
        let mut inits = vec![];
        let mut ins = vec!["x", "t"];
        if let Some(w) = weight {
            inits.push(tensor_f32("w", &[2], w));
            ins.push("w");
        }
        let bytes = model_bytes(
            13,
            vec![f32_input("x", &[3, 2]), value_info("t", DataType::INT64, &[Dim::Value(3)])],
            inits,
            vec![node("NegativeLogLikelihoodLoss", "nll", &ins, &["y"], attrs)],
            &["y"],
        );
        f32s(&run(&bytes, &[x.clone(), t.clone()])[0])
    };
    let red = |r: &str| AttributeProto {
        name: "reduction".into(),
        type_: AttributeType::STRING.into(),
        s: r.as_bytes().to_vec(),
        ..Default::default()
    };
    close(&loss(vec![red("none")], None), &[2.0, 3.0, 6.0]);
    close(&loss(vec![red("sum")], None), &[11.0]);
    close(&loss(vec![], None), &[11.0 / 3.0]);
    // Weights 10 (class 0) and 1 (class 1): (2 + 30 + 6) / (1 + 10 + 1).
    close(&loss(vec![], Some(vec![10.0, 1.0])), &[38.0 / 12.0]);
    // Ignoring class 0: (2 + 6) / 2.
    close(&loss(vec![attr_int("ignore_index", 0)], None), &[4.0]);
}

/// One node named `n` over inputs `x` (f32, `dims`) and initialisers, at `opset`.
fn single(
    opset: i64,
    op: &str,
    dims: &[i64],
    inits: Vec<onnx_protobuf::TensorProto>,
    inputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> Vec<u8> {
    model_bytes(opset, vec![f32_input("x", dims)], inits, vec![node(op, "n", inputs, &["y"], attrs)], &["y"])
}

#[test]
fn is_nan_and_is_inf_compare_with_themselves_and_infinities() {
    let x = Tensor::f32(vec![4], vec![1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    let bools = |t: &Tensor| t.to_f64().iter().map(|&v| v != 0.0).collect::<Vec<_>>();
    let y = run(&single(20, "IsNaN", &[4], vec![], &["x"], vec![]), std::slice::from_ref(&x));
    assert_eq!(bools(&y[0]), [false, true, false, false]);
    let y = run(&single(20, "IsInf", &[4], vec![], &["x"], vec![]), std::slice::from_ref(&x));
    assert_eq!(bools(&y[0]), [false, false, true, true]);
    let y =
        run(&single(20, "IsInf", &[4], vec![], &["x"], vec![attr_int("detect_positive", 0)]), std::slice::from_ref(&x));
    assert_eq!(bools(&y[0]), [false, false, false, true]);
    let neither = vec![attr_int("detect_positive", 0), attr_int("detect_negative", 0)];
    let y = run(&single(20, "IsInf", &[4], vec![], &["x"], neither), std::slice::from_ref(&x));
    assert_eq!(bools(&y[0]), [false; 4]);
}

#[test]
fn round_takes_halves_to_even() {
    let x = Tensor::f32(vec![9], vec![0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6, 1e9, f32::INFINITY]);
    let y = run(&single(22, "Round", &[9], vec![], &["x"], vec![]), &[x]);
    assert_eq!(f32s(&y[0]), [0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0, 1e9, f32::INFINITY]);
}

#[test]
fn shrink_mean_variance_norm_and_swiglu() {
    let attrs = vec![attr_float("lambd", 1.5), attr_float("bias", 1.0)];
    let y = run(
        &single(9, "Shrink", &[5], vec![], &["x"], attrs),
        &[Tensor::f32(vec![5], vec![-3.0, -1.0, 0.0, 1.5, 2.0])],
    );
    close(&f32s(&y[0]), &[-2.0, 0.0, 0.0, 0.0, 1.0]);

    // Over axis 1 of [1, 2]: mean 2, stddev 1.
    let y = run(
        &single(13, "MeanVarianceNormalization", &[1, 2], vec![], &["x"], vec![attr_ints("axes", &[1])]),
        &[Tensor::f32(vec![1, 2], vec![1.0, 3.0])],
    );
    close(&f32s(&y[0]), &[-1.0, 1.0]);

    let bytes = model_bytes(
        28,
        vec![f32_input("a", &[2]), f32_input("b", &[2])],
        vec![],
        vec![node("SwiGLU", "n", &["a", "b"], &["y"], vec![attr_float("alpha", 2.0)])],
        &["y"],
    );
    let y = run(&bytes, &[Tensor::f32(vec![2], vec![0.0, 1.0]), Tensor::f32(vec![2], vec![5.0, 3.0])]);
    let s = 1.0 / (1.0 + (-2.0f32).exp());
    close(&f32s(&y[0]), &[0.0, 3.0 * s]);
}

#[test]
fn group_normalization_per_channel_and_per_group_scale() {
    // Two groups of two channels, one element each: group 0 is {1, 3},
    // group 1 is {5, 5} (zero variance).
    let x = Tensor::f32(vec![1, 4, 1], vec![1.0, 3.0, 5.0, 5.0]);
    let eps = 1e-5f32;
    let z = 1.0 / (1.0 + eps).sqrt();
    let inits = vec![tensor_f32("s", &[4], vec![1.0, 2.0, 3.0, 4.0]), tensor_f32("b", &[4], vec![0.0, 0.0, 1.0, 1.0])];
    let bytes = single(21, "GroupNormalization", &[1, 4, 1], inits, &["x", "s", "b"], vec![attr_int("num_groups", 2)]);
    let y = run(&bytes, std::slice::from_ref(&x));
    close(&f32s(&y[0]), &[-z, 2.0 * z, 1.0, 1.0]);
    let inits = vec![tensor_f32("s", &[2], vec![2.0, 3.0]), tensor_f32("b", &[2], vec![1.0, 0.0])];
    let bytes = single(18, "GroupNormalization", &[1, 4, 1], inits, &["x", "s", "b"], vec![attr_int("num_groups", 2)]);
    let y = run(&bytes, std::slice::from_ref(&x));
    close(&f32s(&y[0]), &[1.0 - 2.0 * z, 1.0 + 2.0 * z, 0.0, 0.0]);
    let inits = vec![tensor_f32("s", &[4], vec![1.0; 4]), tensor_f32("b", &[4], vec![0.0; 4])];
    let bad = single(21, "GroupNormalization", &[1, 4, 1], inits, &["x", "s", "b"], vec![attr_int("num_groups", 3)]);
    let msg = import_onnx(&bad, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("`n`") && msg.contains("3 groups"), "{msg}");
}

#[test]
fn lp_pool_sums_powers_with_zero_padding() {
    // p = 3 over windows of 2 with one zero pad at the start.
    let attrs = vec![attr_ints("kernel_shape", &[2]), attr_int("p", 3), attr_ints("pads", &[1, 0])];
    let y = run(
        &single(18, "LpPool", &[1, 1, 3], vec![], &["x"], attrs),
        &[Tensor::f32(vec![1, 1, 3], vec![1.0, -2.0, 3.0])],
    );
    assert_eq!(y[0].shape.dims(), &[1, 1, 3]);
    close(&f32s(&y[0]), &[1.0, 9f32.cbrt(), 35f32.cbrt()]);
    let ceil = vec![attr_ints("kernel_shape", &[2]), attr_int("ceil_mode", 1)];
    let msg = import_onnx(&single(18, "LpPool", &[1, 1, 3], vec![], &["x"], ceil), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ceil_mode"), "{msg}");
}

#[test]
fn one_hot_wraps_negative_indices_and_leaves_out_of_range_rows_off() {
    let bytes = model_bytes(
        11,
        vec![value_info("i", DataType::INT64, &[Dim::Value(4)])],
        vec![tensor_f32("depth", &[], vec![3.0]), tensor_f32("values", &[2], vec![-1.0, 7.0])],
        vec![node("OneHot", "n", &["i", "depth", "values"], &["y"], vec![attr_int("axis", 0)])],
        &["y"],
    );
    let y = run(&bytes, &[Tensor::i64(vec![4], vec![0, -1, 3, -4])]);
    assert_eq!(y[0].shape.dims(), &[3, 4]);
    // Column per index: 0 → row 0, −1 → row 2, 3 and −4 → none.
    close(&f32s(&y[0]), &[7.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 7.0, -1.0, -1.0]);
}

#[test]
fn windows_and_eye_like_are_constants() {
    let size = |v| tensor_i64("size", &[], vec![v]);
    for (op, periodic, want) in [
        ("HannWindow", 1, vec![0.0, 0.5, 1.0, 0.5]),
        ("HannWindow", 0, vec![0.0, 0.75, 0.75, 0.0]),
        ("HammingWindow", 1, vec![4.0 / 46.0, 25.0 / 46.0, 1.0, 25.0 / 46.0]),
        ("BlackmanWindow", 1, vec![0.0, 0.34, 1.0, 0.34]),
    ] {
        let bytes = model_bytes(
            17,
            vec![],
            vec![size(4)],
            vec![node(op, "n", &["size"], &["y"], vec![attr_int("periodic", periodic)])],
            &["y"],
        );
        let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
        assert_eq!(g.nodes.node_count(), 0, "{op} folds to a constant");
        let y = evaluate(&g, &[]).unwrap();
        close(&f32s(&y[0]), &want);
    }
    let attrs = vec![attr_int("k", -1)];
    let y = run(&single(22, "EyeLike", &[3, 2], vec![], &["x"], attrs), &[Tensor::f32(vec![3, 2], vec![9.0; 6])]);
    assert_eq!(y[0].shape.dims(), &[3, 2]);
    close(&f32s(&y[0]), &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    let bad = single(22, "EyeLike", &[3], vec![], &["x"], vec![]);
    let msg = import_onnx(&bad, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("2-D"), "{msg}");
}

#[test]
fn cumsum_reads_its_axis_input() {
    let bytes = single(
        14,
        "CumSum",
        &[2, 2],
        vec![tensor_i64("axis", &[], vec![0])],
        &["x", "axis"],
        vec![attr_int("reverse", 1)],
    );
    let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
    let n = g.nodes.node_weights().next().unwrap();
    assert_eq!(n.op, Op::CumSum { axis: 0, exclusive: false, reverse: true });
    let y = evaluate(&g, &[Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])]).unwrap();
    close(&f32s(&y[0]), &[4.0, 6.0, 3.0, 4.0]);
}

#[test]
fn pad_reflect_edge_and_wrap_pad_each_axis_in_turn() {
    // [[1 2 3] [4 5 6]], one before and two after on the last axis, one
    // after on the first.
    let x = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let pads = vector_i64("pads", vec![0, 1, 1, 2]);
    let run_mode = |mode: &str| {
        let bytes = single(
            13,
            "Pad",
            &[2, 3],
            vec![pads.clone()],
            &["x", "pads"],
            vec![weft_graph::onnx::testing::attr_string("mode", mode)],
        );
        let y = run(&bytes, std::slice::from_ref(&x));
        assert_eq!(y[0].shape.dims(), &[3, 6], "{mode}");
        f32s(&y[0])
    };
    #[rustfmt::skip]
    let reflect = [
        2.0, 1.0, 2.0, 3.0, 2.0, 1.0,
        5.0, 4.0, 5.0, 6.0, 5.0, 4.0,
        2.0, 1.0, 2.0, 3.0, 2.0, 1.0,
    ];
    #[rustfmt::skip]
    let edge = [
        1.0, 1.0, 2.0, 3.0, 3.0, 3.0,
        4.0, 4.0, 5.0, 6.0, 6.0, 6.0,
        4.0, 4.0, 5.0, 6.0, 6.0, 6.0,
    ];
    #[rustfmt::skip]
    let wrap = [
        3.0, 1.0, 2.0, 3.0, 1.0, 2.0,
        6.0, 4.0, 5.0, 6.0, 4.0, 5.0,
        3.0, 1.0, 2.0, 3.0, 1.0, 2.0,
    ];
    close(&run_mode("reflect"), &reflect);
    close(&run_mode("edge"), &edge);
    close(&run_mode("wrap"), &wrap);
    // Reflecting 3 on an axis of 3 would need the edge twice.
    let bytes = single(
        13,
        "Pad",
        &[2, 3],
        vec![vector_i64("pads", vec![0, 3, 0, 0])],
        &["x", "pads"],
        vec![weft_graph::onnx::testing::attr_string("mode", "reflect")],
    );
    let msg = import_onnx(&bytes, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("reflect") && msg.contains("axis 1"), "{msg}");
}

#[test]
fn resize_axes_leave_the_other_dimensions_alone() {
    // Scales for axes [3, 2] only; sizes likewise.
    let x = Tensor::f32(vec![1, 1, 1, 2], vec![1.0, 2.0]);
    let attrs = || vec![weft_graph::onnx::testing::attr_string("mode", "nearest"), attr_ints("axes", &[3, 2])];
    let by_scales = single(
        19,
        "Resize",
        &[1, 1, 1, 2],
        vec![tensor_f32("scales", &[2], vec![2.0, 3.0])],
        &["x", "", "scales"],
        attrs(),
    );
    let y = run(&by_scales, std::slice::from_ref(&x));
    assert_eq!(y[0].shape.dims(), &[1, 1, 3, 4]);
    close(&f32s(&y[0]), &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    let by_sizes = single(
        19,
        "Resize",
        &[1, 1, 1, 2],
        vec![tensor_i64("sizes", &[2], vec![4, 3])],
        &["x", "", "", "sizes"],
        attrs(),
    );
    let y = run(&by_sizes, std::slice::from_ref(&x));
    assert_eq!(y[0].shape.dims(), &[1, 1, 3, 4]);
    let bad =
        single(19, "Resize", &[1, 1, 1, 2], vec![tensor_f32("scales", &[1], vec![2.0])], &["x", "", "scales"], attrs());
    let msg = import_onnx(&bad, &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("1 values for axes [3, 2]"), "{msg}");
}

#[test]
fn center_crop_pad_crops_down_and_pads_up() {
    // [2, 5] to [4, 2]: rows padded one before and one after, columns
    // cropped from 1 ((5 − 2) / 2 rounded down).
    let x = Tensor::f32(vec![2, 5], (0..10).map(|v| v as f32).collect());
    let bytes = single(18, "CenterCropPad", &[2, 5], vec![vector_i64("shape", vec![4, 2])], &["x", "shape"], vec![]);
    let y = run(&bytes, &[x]);
    assert_eq!(y[0].shape.dims(), &[4, 2]);
    close(&f32s(&y[0]), &[0.0, 0.0, 1.0, 2.0, 6.0, 7.0, 0.0, 0.0]);
    // An odd total puts the extra pixel after.
    let bytes = single(
        18,
        "CenterCropPad",
        &[1, 2],
        vec![vector_i64("shape", vec![5])],
        &["x", "shape"],
        vec![attr_ints("axes", &[-1])],
    );
    let y = run(&bytes, &[Tensor::f32(vec![1, 2], vec![1.0, 2.0])]);
    close(&f32s(&y[0]), &[0.0, 1.0, 2.0, 0.0, 0.0]);
}

#[test]
fn rotary_embedding_rotates_halves_or_interleaved_pairs() {
    // One head of 4 at one position; cos = [0, 1], sin = [1, 0]: the first
    // pair turns by 90°, the second not at all.
    let model = |interleaved: i64| {
        model_bytes(
            23,
            vec![f32_input("x", &[1, 1, 1, 4])],
            vec![tensor_f32("cos", &[1, 1, 2], vec![0.0, 1.0]), tensor_f32("sin", &[1, 1, 2], vec![1.0, 0.0])],
            vec![node(
                "RotaryEmbedding",
                "n",
                &["x", "cos", "sin"],
                &["y"],
                vec![attr_int("interleaved", interleaved)],
            )],
            &["y"],
        )
    };
    let x = Tensor::f32(vec![1, 1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]);
    // Halves: pairs (1, 3) and (2, 4).
    close(&f32s(&run(&model(0), std::slice::from_ref(&x))[0]), &[-3.0, 2.0, 1.0, 4.0]);
    // Interleaved: pairs (1, 2) and (3, 4).
    close(&f32s(&run(&model(1), std::slice::from_ref(&x))[0]), &[-2.0, 1.0, 3.0, 4.0]);
}

#[test]
fn bool_reduce_max_is_any_and_min_is_all() {
    let bytes = |op: &str| {
        model_bytes(
            18,
            vec![value_info("x", DataType::BOOL, &[Dim::Value(2), Dim::Value(3)])],
            vec![vector_i64("axes", vec![1])],
            vec![node(op, "n", &["x", "axes"], &["y"], vec![attr_int("keepdims", 0)])],
            &["y"],
        )
    };
    let x = Tensor::bool(vec![2, 3], vec![true, false, true, true, true, true]);
    let bools = |t: &Tensor| t.to_f64().iter().map(|&v| v != 0.0).collect::<Vec<_>>();
    assert_eq!(bools(&run(&bytes("ReduceMax"), std::slice::from_ref(&x))[0]), [true, true]);
    assert_eq!(bools(&run(&bytes("ReduceMin"), std::slice::from_ref(&x))[0]), [false, true]);
    let none = Tensor::bool(vec![2, 3], vec![false; 6]);
    assert_eq!(bools(&run(&bytes("ReduceMax"), &[none])[0]), [false, false]);
}

/// An int8 tensor (stored in `int32_data`, as ONNX stores 8-bit integers).
fn tensor_i8(name: &str, dims: &[i64], data: Vec<i32>) -> onnx_protobuf::TensorProto {
    let mut t = onnx_protobuf::TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::INT8 as i32;
    t.int32_data = data;
    t
}

#[test]
fn quantize_linear_rounds_half_to_even_and_saturates() {
    // x / 0.5 = [0.5, 1.5, 2.5, -0.5, 400, -6, 254.5, 255.5]: ties go to the
    // even neighbour, and u8 (no zero point) clamps to 0..=255.
    let bytes = model_bytes(
        21,
        vec![f32_input("x", &[8])],
        vec![tensor_f32("s", &[], vec![0.5])],
        vec![node("QuantizeLinear", "q", &["x", "s"], &["y"], vec![])],
        &["y"],
    );
    let x = Tensor::f32(vec![8], vec![0.25, 0.75, 1.25, -0.25, 200.0, -3.0, 127.25, 127.75]);
    let y = &run(&bytes, &[x])[0];
    assert_eq!(y.dtype, weft_graph::DType::U8);
    assert_eq!(y.as_i128s().unwrap(), vec![0, 2, 2, 0, 255, 0, 254, 255]);
}

#[test]
fn quantize_linear_per_axis_with_a_signed_zero_point() {
    // Row 0: scale 1, zero point 1; row 1: scale 2, zero point -1, where
    // -300 / 2 - 1 = -151 saturates to i8's -128 and 3 / 2 = 1.5 rounds to 2.
    let bytes = model_bytes(
        13,
        vec![f32_input("x", &[2, 2])],
        vec![tensor_f32("s", &[2], vec![1.0, 2.0]), tensor_i8("z", &[2], vec![1, -1])],
        vec![node("QuantizeLinear", "q", &["x", "s", "z"], &["y"], vec![attr_int("axis", 0)])],
        &["y"],
    );
    let y = &run(&bytes, &[Tensor::f32(vec![2, 2], vec![1.0, -1.0, 3.0, -300.0])])[0];
    assert_eq!(y.dtype, weft_graph::DType::I8);
    assert_eq!(y.as_i128s().unwrap(), vec![2, 0, 1, -128]);
}

#[test]
fn dynamic_quantize_linear_derives_scale_and_zero_point_from_the_range() {
    // Range [-3, 10]: scale 13/255, zero point round(3 / scale) = round(58.85) = 59.
    let bytes = model_bytes(
        11,
        vec![f32_input("x", &[4])],
        vec![],
        vec![node("DynamicQuantizeLinear", "d", &["x"], &["y", "s", "z"], vec![])],
        &["y", "s", "z"],
    );
    let out = run(&bytes, &[Tensor::f32(vec![4], vec![0.0, 2.0, -3.0, 10.0])]);
    // x / scale = [0, 39.2, -58.8, 196.2] rounds to [0, 39, -59, 196], plus 59.
    assert_eq!(out[0].as_i128s().unwrap(), vec![59, 98, 0, 255]);
    close(&f32s(&out[1]), &[13.0 / 255.0]);
    assert_eq!(out[2].as_i128s().unwrap(), vec![59]);
}

fn einsum(equation: &str, inputs: &[(&str, &[i64])], values: &[Tensor]) -> Tensor {
    let names: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
    let bytes = model_bytes(
        12,
        inputs.iter().map(|(n, d)| f32_input(n, d)).collect(),
        vec![],
        vec![node("Einsum", "e", &names, &["out"], vec![attr_string("equation", equation)])],
        &["out"],
    );
    run(&bytes, values).remove(0)
}

#[test]
fn einsum_products_diagonals_sums_and_transposes() {
    let a = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = Tensor::f32(vec![3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    // [[1 2 3] [4 5 6]] · [[1 0] [0 1] [1 1]] = [[4 5] [10 11]].
    let y = einsum("ij,jk->ik", &[("a", &[2, 3]), ("b", &[3, 2])], &[a.clone(), b.clone()]);
    assert_eq!(y.shape.dims(), &[2, 2]);
    close(&f32s(&y), &[4.0, 5.0, 10.0, 11.0]);
    // Implicit output: `ji` gives the letters alphabetically, `ij`: a transpose.
    let y = einsum("ji", &[("a", &[2, 3])], std::slice::from_ref(&a));
    assert_eq!(y.shape.dims(), &[3, 2]);
    close(&f32s(&y), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    close(&f32s(&einsum("ij->", &[("a", &[2, 3])], std::slice::from_ref(&a))), &[21.0]);
    close(&f32s(&einsum("ij->j", &[("a", &[2, 3])], &[a])), &[5.0, 7.0, 9.0]);
    // Batched diagonals: [[0 1] [2 3]] and [[4 5] [6 7]] give [0 3] and [4 7].
    let d = Tensor::f32(vec![2, 2, 2], (0..8).map(|v| v as f32).collect());
    close(&f32s(&einsum("bii->bi", &[("d", &[2, 2, 2])], &[d])), &[0.0, 3.0, 4.0, 7.0]);
    // A label of size 1 broadcast against 3: the Mul-and-sum path.
    let u = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
    let v = Tensor::f32(vec![3, 2], vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
    close(&f32s(&einsum("ij,ij->i", &[("u", &[1, 2]), ("v", &[3, 2])], &[u, v])), &[3.0, 6.0, 9.0]);
    // Three operands: x · y · z summed over everything.
    let x = Tensor::f32(vec![2], vec![1.0, 2.0]);
    let y = Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let z = Tensor::f32(vec![2], vec![1.0, -1.0]);
    // Σ x_i y_ij z_j = 1·(1 − 2) + 2·(3 − 4) = −3.
    close(&f32s(&einsum("i,ij,j", &[("x", &[2]), ("y", &[2, 2]), ("z", &[2])], &[x, y, z])), &[-3.0]);
}

fn grid_sample(mode: &str, padding: &str, grid: Vec<f32>) -> Vec<f32> {
    let points = grid.len() as i64 / 2;
    let bytes = model_bytes(
        22,
        vec![f32_input("x", &[1, 1, 2, 2]), f32_input("grid", &[1, 1, points, 2])],
        vec![],
        vec![node(
            "GridSample",
            "g",
            &["x", "grid"],
            &["y"],
            vec![attr_string("mode", mode), attr_string("padding_mode", padding), attr_int("align_corners", 1)],
        )],
        &["y"],
    );
    let x = Tensor::f32(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let g = Tensor::f32(vec![1, 1, points as usize, 2], grid);
    let y = run(&bytes, &[x, g]).remove(0);
    assert_eq!(y.shape.dims(), &[1, 1, 1, points as usize]);
    f32s(&y)
}

#[test]
fn grid_sample_interpolates_and_pads_as_onnx_does() {
    // x = [[1 2] [3 4]] with corners aligned: grid (-1, -1) is pixel (0, 0),
    // (1, 1) pixel (1, 1), (0, 0) the centre; (0.5, -1) is x = 0.75 on row 0.
    let inside = vec![-1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.5, -1.0];
    close(&grid_sample("linear", "zeros", inside.clone()), &[1.0, 4.0, 2.5, 1.75]);
    // Nearest rounds x = 0.75 to column 1, and the centre (0.5, 0.5) to even (0, 0).
    close(&grid_sample("nearest", "zeros", inside), &[1.0, 4.0, 1.0, 2.0]);
    // (2, 0) is x = 1.5, y = 0.5: the border clamps x to column 1 (mean of 2
    // and 4); zeros keeps half of column 1's weight; reflection folds x back
    // to 0.5 (the centre).
    close(&grid_sample("linear", "border", vec![2.0, 0.0]), &[3.0]);
    close(&grid_sample("linear", "zeros", vec![2.0, 0.0]), &[1.5]);
    close(&grid_sample("linear", "reflection", vec![2.0, 0.0]), &[2.5]);
    // Cubic through the pixel centres reproduces the pixels.
    close(&grid_sample("cubic", "border", vec![-1.0, -1.0, 1.0, -1.0]), &[1.0, 2.0]);
}

#[test]
fn affine_grid_transforms_pixel_centres() {
    // size [1, 1, 2, 3] without align_corners: x at the centres -2/3, 0, 2/3
    // of three columns, y at -1/2, 1/2 of two rows; theta scales y by 2 and
    // shifts x by 1/2.
    let bytes = model_bytes(
        20,
        vec![f32_input("theta", &[1, 2, 3])],
        vec![tensor_i64("size", &[4], vec![1, 1, 2, 3])],
        vec![node("AffineGrid", "a", &["theta", "size"], &["grid"], vec![])],
        &["grid"],
    );
    let theta = Tensor::f32(vec![1, 2, 3], vec![1.0, 0.0, 0.5, 0.0, 2.0, 0.0]);
    let grid = run(&bytes, &[theta]).remove(0);
    assert_eq!(grid.shape.dims(), &[1, 2, 3, 2]);
    let t = 2.0 / 3.0;
    #[rustfmt::skip]
    let want = [
        -t + 0.5, -1.0,   0.5, -1.0,   t + 0.5, -1.0,
        -t + 0.5, 1.0,    0.5, 1.0,    t + 0.5, 1.0,
    ];
    close(&f32s(&grid), &want.map(|v| v as f32));
}

#[test]
fn reverse_sequence_reverses_each_batchs_prefix() {
    // Time along axis 0, batch along axis 1: column 0 reverses its first 3
    // steps, column 1 its first 1 (nothing moves), the rest stays.
    let bytes = model_bytes(
        10,
        vec![f32_input("x", &[4, 2])],
        vec![tensor_i64("lens", &[2], vec![3, 1])],
        vec![node("ReverseSequence", "r", &["x", "lens"], &["y"], vec![])],
        &["y"],
    );
    let x = Tensor::f32(vec![4, 2], vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0]);
    let y = run(&bytes, &[x]).remove(0);
    close(&f32s(&y), &[2.0, 10.0, 1.0, 11.0, 0.0, 12.0, 3.0, 13.0]);
}

fn col2im(columns: usize, pads: &[i64], x: Vec<f32>) -> Vec<f32> {
    let bytes = model_bytes(
        18,
        vec![f32_input("x", &[1, 2, columns as i64])],
        vec![vector_i64("image", vec![3]), vector_i64("block", vec![2])],
        vec![node("Col2Im", "c", &["x", "image", "block"], &["y"], vec![attr_ints("pads", pads)])],
        &["y"],
    );
    let y = run(&bytes, &[Tensor::f32(vec![1, 2, columns], x)]).remove(0);
    assert_eq!(y.shape.dims(), &[1, 1, 3]);
    f32s(&y)
}

#[test]
fn col2im_sums_overlapping_blocks_and_drops_the_padding() {
    // Blocks of 2 over 3 pixels: block offset 0 (row a) lands on pixel p,
    // offset 1 (row b) on p + 1, so the middle pixel sums two columns.
    close(&col2im(2, &[0, 0], vec![1.0, 2.0, 10.0, 20.0]), &[1.0, 12.0, 20.0]);
    // Padded by one each side: four columns; a[0] and b[3] fall into the padding.
    let x = vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    close(&col2im(4, &[1, 1], x), &[12.0, 23.0, 34.0]);
}

#[test]
fn dropout_masks_keep_everything_and_random_training_is_refused() {
    let mut training = onnx_protobuf::TensorProto::new();
    training.name = "training".into();
    training.data_type = DataType::BOOL as i32;
    training.int32_data = vec![1];
    let model = |ratio: f32| {
        model_bytes(
            13,
            vec![f32_input("x", &[2, 2])],
            vec![tensor_f32("ratio", &[], vec![ratio]), training.clone()],
            vec![node("Dropout", "d", &["x", "ratio", "training"], &["y", "mask"], vec![])],
            &["y", "mask"],
        )
    };
    // Training with ratio 0 drops nothing: y is x and the mask all true.
    let x = Tensor::f32(vec![2, 2], vec![1.0, -2.0, 3.0, 4.0]);
    let out = run(&model(0.0), std::slice::from_ref(&x));
    close(&f32s(&out[0]), &[1.0, -2.0, 3.0, 4.0]);
    assert_eq!(out[1], Tensor::bool(vec![2, 2], vec![true; 4]));
    let err = import_onnx(&model(0.5), &ImportOptions::default()).expect_err("random dropout is refused");
    assert!(err.to_string().contains("training mode with ratio 0.5"), "{err}");
}

#[test]
fn batch_normalization_training_uses_batch_statistics() {
    // x = [1, 3, 5, 7] over N = 2 and two positions, one channel: batch mean
    // 4, population variance (9 + 1 + 1 + 9) / 4 = 5.
    let bytes = model_bytes(
        15,
        vec![f32_input("x", &[2, 1, 2])],
        vec![
            tensor_f32("scale", &[1], vec![2.0]),
            tensor_f32("bias", &[1], vec![1.0]),
            tensor_f32("mean", &[1], vec![0.0]),
            tensor_f32("var", &[1], vec![1.0]),
        ],
        vec![node(
            "BatchNormalization",
            "bn",
            &["x", "scale", "bias", "mean", "var"],
            &["y", "running_mean", "running_var"],
            vec![attr_int("training_mode", 1), attr_float("epsilon", 0.0)],
        )],
        &["y", "running_mean", "running_var"],
    );
    let out = run(&bytes, &[Tensor::f32(vec![2, 1, 2], vec![1.0, 3.0, 5.0, 7.0])]);
    let s = 2.0 / 5f32.sqrt();
    close(&f32s(&out[0]), &[1.0 - 3.0 * s, 1.0 - s, 1.0 + s, 1.0 + 3.0 * s]);
    // Momentum 0.9: 0 · 0.9 + 4 · 0.1 and 1 · 0.9 + 5 · 0.1.
    close(&f32s(&out[1]), &[0.4]);
    close(&f32s(&out[2]), &[1.4]);
}

#[test]
fn conv_transpose_output_shape_becomes_pads_and_output_padding() {
    let model = |out: i64| {
        model_bytes(
            11,
            vec![f32_input("x", &[1, 1, 2])],
            vec![tensor_f32("w", &[1, 1, 2], vec![1.0, 1.0])],
            vec![node(
                "ConvTranspose",
                "t",
                &["x", "w"],
                &["y"],
                vec![attr_ints("strides", &[2]), attr_ints("output_shape", &[out])],
            )],
            &["y"],
        )
    };
    let x = Tensor::f32(vec![1, 1, 2], vec![3.0, 5.0]);
    // Stride 2 and a kernel of two ones give [3 3 5 5]; one more element
    // at the end is output padding (a zero), one fewer crops the start.
    close(&f32s(&run(&model(5), std::slice::from_ref(&x))[0]), &[3.0, 3.0, 5.0, 5.0, 0.0]);
    close(&f32s(&run(&model(3), std::slice::from_ref(&x))[0]), &[3.0, 5.0, 5.0]);
}

#[test]
fn max_unpool_places_values_at_their_indices() {
    let model = |with_shape: bool| {
        let inputs: &[&str] = if with_shape { &["x", "i", "shape"] } else { &["x", "i"] };
        model_bytes(
            11,
            vec![
                f32_input("x", &[1, 1, 2]),
                value_info("i", DataType::INT64, &[Dim::Value(1), Dim::Value(1), Dim::Value(2)]),
            ],
            vec![vector_i64("shape", vec![1, 1, 5])],
            vec![node(
                "MaxUnpool",
                "u",
                inputs,
                &["y"],
                vec![attr_ints("kernel_shape", &[2]), attr_ints("strides", &[2])],
            )],
            &["y"],
        )
    };
    let x = Tensor::f32(vec![1, 1, 2], vec![5.0, 6.0]);
    let i = Tensor::i64(vec![1, 1, 2], vec![1, 2]);
    // Unpooled length (2 − 1)·2 + 2 = 4; output_shape 5 pads one zero at the end.
    close(&f32s(&run(&model(false), &[x.clone(), i.clone()])[0]), &[0.0, 5.0, 6.0, 0.0]);
    close(&f32s(&run(&model(true), &[x, i])[0]), &[0.0, 5.0, 6.0, 0.0, 0.0]);
}
