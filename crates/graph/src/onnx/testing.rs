//! Builds small ONNX models for tests and examples of the importer.
//!
//! Each helper fills in one protobuf message (`ValueInfoProto`,
//! `TensorProto`, `AttributeProto`, `NodeProto`, `GraphProto`, `ModelProto`)
//! with only the fields the importer reads, so a test can write a model in a
//! few lines instead of shipping a file:
//!
//! ```
//! use weft_graph::onnx::testing::{f32_input, model_bytes, node};
//! use weft_graph::{import_onnx, ImportOptions};
//!
//! let bytes = model_bytes(13, vec![f32_input("x", &[4])], vec![], vec![node("Relu", "r", &["x"], &["y"], vec![])], &["y"]);
//! let g = import_onnx(&bytes, &ImportOptions::default()).unwrap();
//! assert_eq!(g.nodes.node_count(), 1);
//! ```

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use protobuf::Enum;

/// One dimension of a declared tensor shape.
#[derive(Clone, Copy, Debug)]
pub enum Dim {
    /// A fixed size (`dim_value`).
    Value(i64),
    /// A symbolic size (`dim_param`), such as `batch`.
    Param(&'static str),
}

/// A tensor value named `name` with element type `elem` and shape `dims`.
pub fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(match d {
            Dim::Value(v) => dimension::Value::DimValue(*v),
            Dim::Param(p) => dimension::Value::DimParam(p.to_string()),
        });
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem.value();
    tt.shape = Some(shape).into();
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = Some(tp).into();
    vi
}

/// A float tensor value with fixed dims.
/// A float input with fixed and symbolic dimensions.
pub fn f32_dynamic_input(name: &str, dims: &[Dim]) -> ValueInfoProto {
    value_info(name, DataType::FLOAT, dims)
}

pub fn f32_input(name: &str, dims: &[i64]) -> ValueInfoProto {
    value_info(name, DataType::FLOAT, &dims.iter().map(|&d| Dim::Value(d)).collect::<Vec<_>>())
}

/// A graph output declared by name alone, with no type or shape.
pub fn output(name: &str) -> ValueInfoProto {
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi
}

/// A float tensor with `data` in `raw_data`, as most exporters write it.
pub fn tensor_f32(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::FLOAT.value();
    t.raw_data = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

/// An int64 tensor with `data` in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::INT64.value();
    t.int64_data = data;
    t
}

/// A 1-D int64 tensor holding `data`.
pub fn vector_i64(name: &str, data: Vec<i64>) -> TensorProto {
    tensor_i64(name, &[data.len() as i64], data)
}

/// An `INT` attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

/// An `INTS` attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

/// A `FLOAT` attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

/// A `FLOATS` attribute.
pub fn attr_floats(name: &str, v: &[f32]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOATS.into();
    a.floats = v.to_vec();
    a
}

/// A `STRING` attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

/// A `STRINGS` attribute.
pub fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRINGS.into();
    a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
    a
}

/// A `GRAPH` attribute (`If`'s branches).
pub fn attr_graph(name: &str, g: GraphProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::GRAPH.into();
    a.g = Some(g).into();
    a
}

/// A `TENSOR` attribute (`Constant`'s `value`).
pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::TENSOR.into();
    a.t = Some(t).into();
    a
}

/// A default-domain node.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

/// A graph named `name`.
pub fn graph(
    name: &str,
    inputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outputs: Vec<ValueInfoProto>,
) -> GraphProto {
    let mut g = GraphProto::new();
    g.name = name.into();
    g.input = inputs;
    g.initializer = inits;
    g.node = nodes;
    g.output = outputs;
    g
}

/// A model of IR version 8 importing the default domain at `opset`.
pub fn model_of(opset: i64, graph: GraphProto) -> ModelProto {
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut set = OperatorSetIdProto::new();
    set.version = opset;
    m.opset_import.push(set);
    m.graph = Some(graph).into();
    m
}

/// A model whose graph is named `test`, with each output declared as a float
/// tensor of rank 0 (the importer takes output shapes from inference).
pub fn model(
    opset: i64,
    inputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outputs: &[&str],
) -> ModelProto {
    model_of(opset, graph("test", inputs, inits, nodes, outputs.iter().map(|o| f32_input(o, &[])).collect()))
}

/// [`model`], serialised.
pub fn model_bytes(
    opset: i64,
    inputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outputs: &[&str],
) -> Vec<u8> {
    to_bytes(&model(opset, inputs, inits, nodes, outputs))
}

/// A model's protobuf encoding.
pub fn to_bytes(m: &ModelProto) -> Vec<u8> {
    m.write_to_bytes().expect("a model built here serialises")
}
