//! ONNX export: round trips through the importer that must evaluate bit for
//! bit like the original (ResNet-18 and a graph using every op kind), the
//! opset-17 forms written (attribute-like inputs as initializers, auto_pad,
//! Gelu decomposed, static value infos), unique names, and the errors for
//! what an opset cannot express.

use onnx_protobuf::{Message, ModelProto, NodeProto};
use weft_graph::eval::evaluate;
use weft_graph::onnx::export::export_model;
use weft_graph::{
    export_onnx, export_onnx_default, import_onnx, BinaryOp, CoordinateTransform, DType, ExportError, Graph,
    GraphBuilder, ImportOptions, NearestMode, Op, Padding, ResizeMode, SplitMix64, Tensor, TensorData, TensorId,
    UnaryOp, Window,
};

/// Seeded inputs in [-2, 2) for every graph input (integers truncated).
fn inputs(graph: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = SplitMix64::new(seed);
    graph
        .inputs
        .iter()
        .map(|&t| {
            let info = graph.info(t);
            let values: Vec<f64> = (0..info.shape.numel()).map(|_| rng.uniform(-2.0, 2.0)).collect();
            Tensor::from_f64(info.dtype, info.shape.clone(), &values)
        })
        .collect()
}

fn round_trip(graph: &Graph) -> Graph {
    let bytes = export_onnx_default(graph).unwrap_or_else(|e| panic!("export: {e}"));
    import_onnx(&bytes, &ImportOptions::default()).unwrap_or_else(|e| panic!("re-import: {e}"))
}

/// The elements' bit patterns, so NaNs and signed zeros compare too.
fn bits(t: &Tensor) -> Vec<u64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        TensorData::U64(v) => v.clone(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
    }
}

/// Evaluates both graphs on the same seeded inputs and checks every output
/// is identical (dtype, shape, bits), except the outputs named in `close`,
/// which must agree to a relative error of `1e-6`.
fn assert_same_outputs(original: &Graph, imported: &Graph, close: &[TensorId]) {
    assert_eq!(original.inputs.len(), imported.inputs.len());
    for (&a, &b) in original.inputs.iter().zip(&imported.inputs) {
        assert_eq!(original.info(a).name, imported.info(b).name, "input names are kept");
    }
    assert_eq!(original.outputs.len(), imported.outputs.len());
    let x = inputs(original, 0x0e4b_0127);
    let want = evaluate(original, &x).expect("original evaluates");
    let got = evaluate(imported, &x).expect("re-imported graph evaluates");
    for ((&t, w), g) in original.outputs.iter().zip(&want).zip(&got) {
        let name = &original.info(t).name;
        assert_eq!((w.dtype, &w.shape), (g.dtype, &g.shape), "output `{name}`");
        if close.contains(&t) {
            let (w, g) = (w.to_f64(), g.to_f64());
            let diff = w.iter().zip(&g).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            assert!(diff <= 1e-6 * norm, "output `{name}`: relative error {:e}", diff / norm);
        } else {
            assert!(bits(w) == bits(g), "output `{name}` differs after the round trip");
        }
    }
}

#[test]
fn resnet18_round_trips_bit_for_bit() {
    let graph = weft_graph::models::resnet18(7, 1, 32, 10).expect("resnet18 builds");
    let imported = round_trip(&graph);
    assert_eq!(imported.nodes.node_count(), graph.nodes.node_count());
    assert_eq!(imported.constants.len(), graph.constants.len());
    assert_same_outputs(&graph, &imported, &[]);
}

/// A graph with every [`Op`] kind (and every unary and binary operator),
/// each result a graph output. Returns the graph and the Gelu output, which
/// the ONNX decomposition changes in the last bits.
fn every_op() -> (Graph, TensorId) {
    let mut b = GraphBuilder::with_seed("every_op", 3);
    let x = b.input("x", DType::F32, &[1, 4, 8, 8]);
    let mut outs: Vec<TensorId> = Vec::new();
    let win = |k: usize, s: usize, d: usize, padding: Padding| Window {
        kernel: vec![k; 2],
        strides: vec![s; 2],
        dilations: vec![d; 2],
        padding,
    };

    // Convolutions: explicit pads with bias, SAME_UPPER grouped and strided,
    // SAME_LOWER dilated, and a transposed conv with output padding.
    let w = b.he_weight("w", &[4, 4, 3, 3], 36);
    let bias = b.random_constant("b", &[4], 0.1);
    let c1 = b.conv(x, w, Some(bias), win(3, 1, 1, Padding::Explicit(vec![1; 4])), 1).unwrap();
    let wg = b.he_weight("wg", &[4, 2, 3, 3], 18);
    let c2 = b.conv(x, wg, None, win(3, 2, 1, Padding::SameUpper), 2).unwrap();
    let wd = b.he_weight("wd", &[2, 4, 2, 2], 16);
    let c3 = b.conv(x, wd, None, win(2, 1, 2, Padding::SameLower), 1).unwrap();
    let wt = b.he_weight("wt", &[4, 2, 3, 3], 18);
    let ct = Op::ConvTranspose {
        window: win(3, 2, 1, Padding::Explicit(vec![1; 4])),
        groups: 1,
        output_padding: vec![1, 1],
    };
    let c4 = b.op("convt", ct, &[c2, wt]).unwrap();
    outs.extend([c1, c2, c3, c4]);

    let scale = b.uniform_constant("s", &[4], 0.5, 1.5);
    let shift = b.uniform_constant("sh", &[4], -0.1, 0.1);
    let mean = b.uniform_constant("m", &[4], -0.1, 0.1);
    let var = b.uniform_constant("v", &[4], 0.5, 1.5);
    outs.push(b.batch_norm(c1, scale, shift, mean, var, 1e-3).unwrap());

    // Unary operators; Log, Sqrt and Reciprocal of exp(x) stay finite.
    let e = b.unary(x, UnaryOp::Exp).unwrap();
    outs.push(e);
    for u in [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Reciprocal] {
        outs.push(b.unary(e, u).unwrap());
    }
    for u in [
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::LeakyRelu { alpha: 0.1 },
        UnaryOp::Clip { min: -0.5, max: 0.75 },
        UnaryOp::Clip { min: f32::NEG_INFINITY, max: 0.25 },
        UnaryOp::Clip { min: -0.25, max: f32::INFINITY },
        UnaryOp::HardSigmoid { alpha: 0.3, beta: 0.4 },
        UnaryOp::HardSwish,
    ] {
        outs.push(b.unary(x, u).unwrap());
    }
    let gelu = b.unary(x, UnaryOp::Gelu).unwrap();
    outs.push(gelu);

    // Binary operators against a broadcast constant; Pow on a positive base.
    let k = b.uniform_constant("k", &[4, 1, 1], 0.5, 1.5);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Equal,
        BinaryOp::Less,
        BinaryOp::Greater,
    ] {
        outs.push(b.binary(x, k, op).unwrap());
    }
    outs.push(b.binary(e, k, BinaryOp::Pow).unwrap());
    outs.push(b.op("sum", Op::Sum, &[x, c1, k]).unwrap());
    let less = b.binary(x, k, BinaryOp::Less).unwrap();
    outs.push(b.op("where", Op::Where, &[less, x, c1]).unwrap());
    let fl = b.unary(x, UnaryOp::Floor).unwrap();
    for to in [DType::F16, DType::BF16, DType::I64, DType::I32] {
        outs.push(b.op("cast", Op::Cast { to }, &[fl]).unwrap());
    }
    let xh = b.op("cast", Op::Cast { to: DType::F16 }, &[x]).unwrap();
    outs.push(b.unary(xh, UnaryOp::Clip { min: -1.0, max: 1.5 }).unwrap());

    outs.push(b.softmax(x, 1).unwrap());
    let g = b.uniform_constant("g", &[8], 0.5, 1.5);
    let beta = b.random_constant("beta", &[8], 0.1);
    outs.push(b.layer_norm(x, g, Some(beta), -1, 1e-5).unwrap());
    outs.push(b.layer_norm(x, g, None, 2, 1e-5).unwrap());
    outs.push(b.op("rmean", Op::ReduceMean { axes: vec![2, 3], keepdims: true }, &[x]).unwrap());
    outs.push(b.op("rsum", Op::ReduceSum { axes: vec![-3], keepdims: false }, &[x]).unwrap());
    outs.push(b.op("rmax", Op::ReduceMax { axes: vec![], keepdims: false }, &[x]).unwrap());

    // Pooling.
    let mp = Op::MaxPool { window: win(3, 2, 1, Padding::Explicit(vec![1, 0, 0, 1])), ceil_mode: true };
    outs.push(b.op("maxpool", mp, &[x]).unwrap());
    let mp = Op::MaxPool { window: win(2, 1, 2, Padding::SameUpper), ceil_mode: false };
    outs.push(b.op("maxpool", mp, &[x]).unwrap());
    let ap = Op::AveragePool {
        window: win(3, 2, 1, Padding::Explicit(vec![1; 4])),
        ceil_mode: false,
        count_include_pad: true,
    };
    outs.push(b.op("avgpool", ap, &[x]).unwrap());
    let ap = Op::AveragePool { window: win(3, 2, 1, Padding::SameLower), ceil_mode: true, count_include_pad: false };
    outs.push(b.op("avgpool", ap, &[x]).unwrap());
    let gap = b.global_avg_pool(x).unwrap();
    outs.push(gap);
    outs.push(b.op("gmp", Op::GlobalMaxPool, &[x]).unwrap());
    outs.push(b.op("lrn", Op::Lrn { size: 3, alpha: 1e-3, beta: 0.75, bias: 2.0 }, &[x]).unwrap());

    // Data movement.
    outs.push(b.concat(&[x, c1, c3], 1).unwrap());
    let parts = b.node("split", Op::Split { axis: 1, sizes: vec![1, 3] }, &[Some(x)]).unwrap();
    outs.extend(parts);
    outs.push(b.reshape(x, &[0, -1]).unwrap());
    outs.push(b.op("reshape", Op::Reshape { shape: vec![4, 2, 32], allow_zero: true }, &[x]).unwrap());
    outs.push(b.flatten(x, 2).unwrap());
    outs.push(b.transpose(x, &[0, 2, 3, 1]).unwrap());
    let sq = b.op("squeeze", Op::Squeeze { axes: vec![0] }, &[x]).unwrap();
    outs.push(sq);
    outs.push(b.op("squeeze", Op::Squeeze { axes: vec![] }, &[gap]).unwrap());
    outs.push(b.op("unsqueeze", Op::Unsqueeze { axes: vec![0, -1] }, &[sq]).unwrap());
    let idx = b.constant("idx", Tensor::i64(vec![3], vec![3, 0, -1]));
    outs.push(b.op("gather", Op::Gather { axis: 1 }, &[x, idx]).unwrap());
    let resize = |scales: Vec<f32>, mode, transform, nearest| Op::Resize { scales, mode, transform, nearest };
    for op in [
        resize(
            vec![1.0, 1.0, 2.0, 2.0],
            ResizeMode::Nearest,
            CoordinateTransform::HalfPixel,
            NearestMode::RoundPreferFloor,
        ),
        resize(vec![1.0, 1.0, 1.5, 0.5], ResizeMode::Nearest, CoordinateTransform::Asymmetric, NearestMode::Floor),
        resize(vec![1.0, 1.0, 2.5, 3.0], ResizeMode::Nearest, CoordinateTransform::AlignCorners, NearestMode::Ceil),
        resize(
            vec![1.0, 1.0, 1.5, 2.0],
            ResizeMode::Linear,
            CoordinateTransform::HalfPixel,
            NearestMode::RoundPreferCeil,
        ),
        resize(vec![1.0, 1.0, 0.5, 2.0], ResizeMode::Linear, CoordinateTransform::PytorchHalfPixel, NearestMode::Floor),
        resize(vec![1.0, 1.0, 3.0, 1.0], ResizeMode::Linear, CoordinateTransform::AlignCorners, NearestMode::Floor),
    ] {
        outs.push(b.op("resize", op, &[x]).unwrap());
    }
    outs.push(b.op("pad", Op::Pad { pads: vec![0, 0, 1, 2, 0, 1, 2, 0], value: 0.5 }, &[x]).unwrap());
    let slice = Op::Slice { starts: vec![1, -1], ends: vec![3, i64::MIN], axes: vec![1, 3], steps: vec![1, -2] };
    outs.push(b.op("slice", slice, &[x]).unwrap());
    let slice = Op::Slice { starts: vec![0, 2], ends: vec![i64::MAX, -1], axes: vec![-1, 2], steps: vec![3, 1] };
    outs.push(b.op("slice", slice, &[x]).unwrap());
    outs.push(b.op("identity", Op::Identity, &[x]).unwrap());

    // Matrix products.
    let flat = b.flatten(gap, 1).unwrap();
    let wf = b.random_constant("wf", &[4, 6], 0.5);
    let cf = b.random_constant("cf", &[6], 0.5);
    let gemm = Op::Gemm { alpha: 0.5, beta: 2.0, trans_a: false, trans_b: false };
    outs.push(b.op("gemm", gemm, &[flat, wf, cf]).unwrap());
    let rows = b.reshape(x, &[4, 64]).unwrap();
    let wt2 = b.random_constant("wt2", &[3, 4], 0.5);
    let gemm = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: true, trans_b: true };
    outs.push(b.op("gemm", gemm, &[rows, wt2]).unwrap());
    let batched = b.reshape(x, &[4, 8, 8]).unwrap();
    let wm = b.random_constant("wm", &[8, 5], 0.5);
    outs.push(b.matmul(batched, wm).unwrap());

    for t in outs {
        b.output(t);
    }
    // Outputs that are not node outputs, and one listed twice, exercise
    // the Identity that export adds for them.
    b.output(x);
    b.output(k);
    b.output(c1);
    (b.finish(), gelu)
}

#[test]
fn every_op_round_trips() {
    let (graph, gelu) = every_op();
    let imported = round_trip(&graph);
    assert_same_outputs(&graph, &imported, &[gelu]);
}

fn model(graph: &Graph, opset: i64) -> ModelProto {
    export_model(graph, opset).unwrap_or_else(|e| panic!("export: {e}"))
}

fn nodes<'m>(m: &'m ModelProto, op_type: &str) -> Vec<&'m NodeProto> {
    m.graph.node.iter().filter(|n| n.op_type == op_type).collect()
}

fn initializer<'m>(m: &'m ModelProto, name: &str) -> &'m onnx_protobuf::TensorProto {
    m.graph.initializer.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no initializer `{name}`"))
}

#[test]
fn writes_opset_17_forms() {
    let (graph, _) = every_op();
    let bytes = export_onnx(&graph, 17).expect("export");
    let m = ModelProto::parse_from_bytes(&bytes).expect("the bytes are a ModelProto");
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!((m.opset_import[0].domain.as_str(), m.opset_import[0].version), ("", 17));

    // Inputs and outputs carry dtypes and static shapes.
    let input = &m.graph.input[0];
    assert_eq!(input.name, "x");
    let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) = input.type_.value.as_ref() else {
        panic!("input is not a tensor type")
    };
    assert_eq!(tt.elem_type, 1, "FLOAT");
    let dims: Vec<i64> = tt
        .shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
            _ => -1,
        })
        .collect();
    assert_eq!(dims, [1, 4, 8, 8]);
    assert_eq!(m.graph.output.len(), graph.outputs.len());

    // Attribute-like inputs are initializers of the opset-13+ types.
    let clips = nodes(&m, "Clip");
    assert!(clips.iter().any(|n| n.input.len() == 3 && n.input[1].is_empty()), "an omitted min stays a hole");
    assert!(clips.iter().any(|n| n.input.len() == 2), "an omitted trailing max is dropped");
    for reshape in nodes(&m, "Reshape") {
        let shape = initializer(&m, &reshape.input[1]);
        assert_eq!(shape.data_type, 7, "INT64");
        assert_eq!(shape.raw_data.len(), 8 * shape.dims[0] as usize);
    }
    let zero_minus_one: Vec<u8> = [0i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(m.graph.initializer.iter().any(|t| t.raw_data == zero_minus_one), "reshape to [0, -1]");
    let resize = nodes(&m, "Resize")[0];
    assert_eq!(resize.input.len(), 3);
    assert!(resize.input[1].is_empty(), "no roi");
    assert_eq!(initializer(&m, &resize.input[2]).data_type, 1, "FLOAT scales");
    assert_eq!(nodes(&m, "Slice")[0].input.len(), 5);
    assert_eq!(nodes(&m, "Split")[0].output.len(), 2);
    assert_eq!(nodes(&m, "Pad")[0].input.len(), 3);
    assert!(nodes(&m, "ReduceMean")[0].attribute.iter().any(|a| a.name == "axes"), "ReduceMean axes stay attributes");
    assert_eq!(nodes(&m, "ReduceSum")[0].input.len(), 2, "ReduceSum axes are an input");
    let f16_clip = clips.iter().find(|n| initializer(&m, &n.input[1]).data_type == 10);
    assert!(f16_clip.is_some(), "an f16 Clip's bounds are FLOAT16");

    // auto_pad for SAME padding, but explicit pads where the window is
    // dilated (onnxruntime refuses auto_pad there); Gelu decomposed.
    let has = |n: &NodeProto, attr: &str| n.attribute.iter().any(|a| a.name == attr);
    let convs = nodes(&m, "Conv");
    assert_eq!(convs.iter().filter(|n| has(n, "auto_pad")).count(), 1);
    let dilated = convs
        .iter()
        .find(|n| n.attribute.iter().any(|a| a.name == "dilations" && a.ints == [2, 2]))
        .expect("the dilated conv");
    let pads = dilated.attribute.iter().find(|a| a.name == "pads").expect("explicit pads");
    assert_eq!(pads.ints, [1, 1, 1, 1], "SAME_LOWER of a 2x2 kernel dilated by 2: total 2 per dim");
    assert!(nodes(&m, "Gelu").is_empty());
    assert_eq!(nodes(&m, "Erf").len(), 2, "the Erf op and Gelu's");

    // Every tensor name is defined once; every node name is unique.
    let mut defined: Vec<&str> = m.graph.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(m.graph.initializer.iter().map(|t| t.name.as_str()));
    defined.extend(m.graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    let count = defined.len();
    defined.sort_unstable();
    defined.dedup();
    assert_eq!(defined.len(), count, "a tensor name is defined twice");
    let mut names: Vec<&str> = m.graph.node.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), m.graph.node.len(), "a node name repeats");
    let outputs: Vec<&str> = m.graph.output.iter().map(|o| o.name.as_str()).collect();
    for o in &outputs {
        assert!(m.graph.node.iter().any(|n| n.output.iter().any(|x| x == o)), "output `{o}` has no producer");
    }
}

#[test]
fn repeated_tensor_names_are_made_unique() {
    let mut g = Graph::new("dups");
    let x = g.add_input("t", DType::F32, vec![2, 3]);
    let w = g.add_constant("t", Tensor::f32(vec![2, 3], vec![1.0; 6]));
    let a = g.add_node_named("n", Op::Binary(BinaryOp::Add), vec![Some(x), Some(w)], &["t".into()]).unwrap()[0];
    let r = g.add_node_named("n", Op::Unary(UnaryOp::Relu), vec![Some(a)], &["t".into()]).unwrap()[0];
    g.add_output(r);
    let m = model(&g, 17);
    assert_eq!(m.graph.input[0].name, "t", "the input keeps its name");
    assert_ne!(m.graph.initializer[0].name, "t");
    assert_ne!(m.graph.node[0].name, m.graph.node[1].name);
    let imported = round_trip(&g);
    assert_same_outputs(&g, &imported, &[]);
}

#[test]
fn lower_opsets_refuse_what_they_cannot_express() {
    let mut b = GraphBuilder::new("old");
    let x = b.input("x", DType::F32, &[1, 2, 4, 4]);
    let s = b.uniform_constant("s", &[4], 0.5, 1.5);
    let ln = b.layer_norm(x, s, None, -1, 1e-5).unwrap();
    let hs = b.unary(ln, UnaryOp::HardSwish).unwrap();
    let window = Window { kernel: vec![2, 2], strides: vec![1, 1], dilations: vec![2, 2], padding: Padding::SameUpper };
    let ap = b.op("avgpool", Op::AveragePool { window, ceil_mode: false, count_include_pad: false }, &[hs]).unwrap();
    b.output(ap);
    let g = b.finish();

    let err = export_onnx(&g, 13).unwrap_err();
    let ExportError::Unexpressible { nodes } = &err else { panic!("unexpected error {err}") };
    let named: Vec<&str> = nodes.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(named.len(), 3, "every node is reported: {err}");
    assert!(named.iter().any(|n| n.starts_with("layernorm")), "{err}");
    assert!(named.iter().any(|n| n.starts_with("hardswish")), "{err}");
    assert!(err.to_string().contains("opset 19"), "{err}");

    // Opset 17 expresses all but the dilated average pool.
    let err = export_onnx(&g, 17).unwrap_err().to_string();
    assert!(err.contains("avgpool") && !err.contains("layernorm"), "{err}");

    for opset in [12, 18] {
        let err = export_onnx(&g, opset).unwrap_err();
        assert!(matches!(err, ExportError::Opset { opset: o } if o == opset), "{err}");
    }
}

#[test]
fn malformed_constants_are_errors_not_panics() {
    let mut g = Graph::new("bad");
    let x = g.add_input("x", DType::F32, vec![2]);
    let w = g.add_constant("w", Tensor::f32(vec![2], vec![1.0, 2.0]));
    let y = g.add_node("add", Op::Binary(BinaryOp::Add), vec![Some(x), Some(w)]).unwrap()[0];
    g.add_output(y);
    // Storage that no longer fits the declared shape.
    g.constants.insert(w, Tensor::f32(vec![2], vec![1.0]));
    let err = export_onnx_default(&g).unwrap_err();
    assert!(matches!(&err, ExportError::Tensor { tensor, .. } if tensor == "w"), "{err}");
}
