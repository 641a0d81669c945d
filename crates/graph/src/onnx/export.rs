//! ONNX export: a weft [`Graph`] to a `ModelProto`, so models written with
//! the builder API can be run by onnxruntime and compared with weft.
//!
//! The inverse of import, shaped by the same rule in reverse: an [`Op`]
//! carries its attributes in one normalised form, and export writes them in
//! the form of the target opset (13 to 17). From opset 13 on, Clip's bounds,
//! Reshape's shape, Split's sizes, Squeeze/Unsqueeze axes, ReduceSum's axes,
//! Pad's pads and value, Slice's bounds and Resize's scales are constant
//! *inputs*, so they become initializers named after their node
//! (`<node>/shape`, …). Everything else maps one node to one node, except
//! [`UnaryOp::Gelu`]: ONNX has `Gelu` only from opset 20, so it is written as
//! its erf form `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`. That form rounds
//! to `f32` after each step where weft's evaluator rounds once, so a round
//! trip through ONNX changes Gelu's results in the last bits; every other op
//! round-trips bit for bit. `SAME` padding is written as `auto_pad`, except
//! on dilated Conv and MaxPool windows, where onnxruntime refuses `auto_pad`:
//! there the pads are resolved against the static input shape.
//!
//! The model is self-contained: every constant is an initializer with
//! little-endian `raw_data`, graph inputs and outputs carry their dtypes and
//! static shapes, and names are the graph's tensor names, made unique (ONNX
//! is keyed by name; weft by [`TensorId`], so a graph may repeat a name).
//! Graph inputs keep their names whenever they are unique, since a runtime
//! feeds inputs by name.
//!
//! Nothing that cannot be expressed is dropped silently: every node that the
//! opset cannot express is collected into one [`ExportError::Unexpressible`]
//! naming each node, as import reports every unsupported operator at once.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use super::tensor::elem_type_of;
use crate::dtype::DType;
use crate::graph::{Graph, Node, TensorId, TensorInfo};
use crate::infer::{conv_geometry, pool_geometry};
use crate::op::{
    BinaryOp, CoordinateTransform, NearestMode, Op, Padding, ResizeMode, ScatterReduction, UnaryOp, Window,
};
use crate::tensor::{Shape, Tensor, TensorData};

/// The default-domain opsets export writes. From 13 the attribute-like
/// inputs have their current form; 17 is the newest form export writes
/// (the importer reads up to 28).
pub const EXPORT_OPSETS: std::ops::RangeInclusive<i64> = 13..=17;

/// The opset [`export_onnx_default`] writes: the newest the importer reads,
/// and the first with `LayerNormalization`.
pub const DEFAULT_EXPORT_OPSET: i64 = 17;

/// The ONNX IR version written: 8 is what opsets 13–17 ship with, and what
/// onnxruntime releases of that era all read.
const IR_VERSION: i64 = 8;

/// Why a graph could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The requested opset is outside [`EXPORT_OPSETS`].
    #[error("cannot export opset {opset}: weft exports opsets {} to {}", EXPORT_OPSETS.start(), EXPORT_OPSETS.end())]
    Opset { opset: i64 },
    /// Every node the opset cannot express, as `(node, op, why)`, all at once.
    #[error("nodes not expressible in ONNX: {}", list_nodes(.nodes))]
    Unexpressible { nodes: Vec<(String, &'static str, String)> },
    /// A tensor of the graph is malformed (unknown id, data not fitting its shape).
    #[error("tensor `{tensor}`: {message}")]
    Tensor { tensor: String, message: String },
    /// The protobuf encoder failed.
    #[error("cannot encode the ONNX model: {0}")]
    Encode(#[source] protobuf::Error),
}

/// Why one node was not written: the opset cannot express it (collected, so
/// one export names every such node), or the graph is malformed (the export
/// fails with that error).
enum Refusal {
    Unexpressible(String),
    Malformed(ExportError),
}

impl From<String> for Refusal {
    fn from(why: String) -> Refusal {
        Refusal::Unexpressible(why)
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Refusal {
        Refusal::Unexpressible(why.to_string())
    }
}

impl From<ExportError> for Refusal {
    fn from(e: ExportError) -> Refusal {
        Refusal::Malformed(e)
    }
}

fn list_nodes(nodes: &[(String, &'static str, String)]) -> String {
    nodes.iter().map(|(node, op, why)| format!("`{node}` ({op}): {why}")).collect::<Vec<_>>().join("; ")
}

/// Exports `graph` as an ONNX model of default-domain opset `opset` and
/// returns the serialised `ModelProto`.
pub fn export_onnx(graph: &Graph, opset: i64) -> Result<Vec<u8>, ExportError> {
    export_model(graph, opset)?.write_to_bytes().map_err(ExportError::Encode)
}

/// [`export_onnx`] at [`DEFAULT_EXPORT_OPSET`].
pub fn export_onnx_default(graph: &Graph) -> Result<Vec<u8>, ExportError> {
    export_onnx(graph, DEFAULT_EXPORT_OPSET)
}

/// Exports `graph` as a `ModelProto`, for callers that inspect or extend it.
pub fn export_model(graph: &Graph, opset: i64) -> Result<ModelProto, ExportError> {
    if !EXPORT_OPSETS.contains(&opset) {
        return Err(ExportError::Opset { opset });
    }
    let mut ex = Exporter::new(graph, opset)?;
    for &t in &graph.inputs {
        let info = ex.info(t)?;
        let vi = value_info(&ex.names[&t], info);
        ex.proto.input.push(vi);
    }
    let mut constants: Vec<(&TensorId, &Tensor)> = graph.constants.iter().collect();
    constants.sort_by_key(|(id, _)| **id);
    for (&id, value) in constants {
        let name = ex.names[&id].clone();
        let t = tensor_proto(&name, value)?;
        ex.proto.initializer.push(t);
    }
    let mut problems = Vec::new();
    for index in graph.topo_order() {
        let Some(node) = graph.nodes.node_weight(index) else { continue };
        let name = ex.node_name(&node.name);
        match ex.node(&name, node) {
            Ok(()) => {}
            Err(Refusal::Unexpressible(why)) => problems.push((node.name.clone(), node.op.name(), why)),
            Err(Refusal::Malformed(e)) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(ExportError::Unexpressible { nodes: problems });
    }
    ex.outputs()?;

    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    model.producer_name = "weft".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    let mut set = OperatorSetIdProto::new();
    set.domain = String::new();
    set.version = opset;
    model.opset_import.push(set);
    model.graph = Some(ex.proto).into();
    Ok(model)
}

/// Export state: the proto being filled and the unique names handed out.
struct Exporter<'g> {
    graph: &'g Graph,
    opset: i64,
    proto: GraphProto,
    /// The unique ONNX name of every graph tensor.
    names: HashMap<TensorId, String>,
    /// Every tensor name in use, the made-up constants' included.
    used: HashSet<String>,
    /// Every node name in use (ONNX keeps nodes and values apart).
    node_names: HashSet<String>,
}

impl<'g> Exporter<'g> {
    fn new(graph: &'g Graph, opset: i64) -> Result<Exporter<'g>, ExportError> {
        let mut proto = GraphProto::new();
        proto.name = if graph.name.is_empty() { "weft".into() } else { graph.name.clone() };
        let mut ex =
            Exporter { graph, opset, proto, names: HashMap::new(), used: HashSet::new(), node_names: HashSet::new() };
        // Inputs first so they keep their names: runtimes feed inputs by name.
        for &t in &graph.inputs {
            let base = ex.info(t)?.name.clone();
            let name = ex.claim(&base);
            ex.names.insert(t, name);
        }
        for (t, info) in graph.tensors.iter() {
            if !ex.names.contains_key(&t) {
                let name = ex.claim(&info.name);
                ex.names.insert(t, name);
            }
        }
        Ok(ex)
    }

    fn info(&self, t: TensorId) -> Result<&'g TensorInfo, ExportError> {
        self.graph.tensors.get(t).ok_or_else(|| ExportError::Tensor {
            tensor: t.to_string(),
            message: "is not a tensor of the graph".into(),
        })
    }

    /// `base` if unused, else `base_1`, `base_2`, …
    fn claim(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "t" } else { base };
        let mut name = base.to_string();
        let mut k = 0;
        while self.used.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.used.insert(name.clone());
        name
    }

    fn node_name(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "node" } else { base };
        let mut name = base.to_string();
        let mut k = 0;
        while self.node_names.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.node_names.insert(name.clone());
        name
    }

    /// The ONNX name of an input slot (`""` for an omitted optional one).
    fn input_name(&self, t: Option<TensorId>) -> Result<String, String> {
        match t {
            None => Ok(String::new()),
            Some(t) => self.names.get(&t).cloned().ok_or_else(|| format!("input {t} is not a tensor of the graph")),
        }
    }

    /// Adds an initializer made up for `node` (an attribute that opset 13+
    /// passes as an input) and returns its name.
    fn constant(&mut self, node: &str, what: &str, value: &Tensor) -> Result<String, ExportError> {
        let name = self.claim(&format!("{node}/{what}"));
        let t = tensor_proto(&name, value)?;
        self.proto.initializer.push(t);
        Ok(name)
    }

    fn i64s(&mut self, node: &str, what: &str, v: &[i64]) -> Result<String, ExportError> {
        self.constant(node, what, &Tensor::i64(vec![v.len()], v.to_vec()))
    }

    fn push(
        &mut self,
        name: &str,
        op_type: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) {
        let mut n = NodeProto::new();
        n.name = name.to_string();
        n.op_type = op_type.to_string();
        n.input = inputs;
        // Trailing omitted optional inputs carry no meaning.
        while n.input.last().is_some_and(String::is_empty) {
            n.input.pop();
        }
        n.output = outputs;
        n.attribute = attrs;
        self.proto.node.push(n);
    }

    /// Writes one node; `Err` says why the opset cannot express it.
    fn node(&mut self, name: &str, node: &Node) -> Result<(), Refusal> {
        let mut inputs: Vec<String> = node.inputs.iter().map(|&t| self.input_name(t)).collect::<Result<_, String>>()?;
        let outputs: Vec<String> = node
            .outputs
            .iter()
            .map(|t| self.names.get(t).cloned().ok_or_else(|| format!("output {t} is not a tensor of the graph")))
            .collect::<Result<_, String>>()?;
        let first_dtype = || -> Result<DType, Refusal> {
            let t = node.inputs.first().copied().flatten().ok_or("the data input is missing")?;
            Ok(self.info(t)?.dtype)
        };
        let first_rank = || -> Result<usize, Refusal> {
            let t = node.inputs.first().copied().flatten().ok_or("the data input is missing")?;
            Ok(self.info(t)?.shape.rank())
        };
        let mut attrs = Vec::new();
        let op_type: &str = match &node.op {
            Op::Conv { window, groups } => {
                let window = &self.portable_window(node, window)?;
                window_attrs(&mut attrs, window, true);
                attrs.push(int("group", *groups as i64));
                "Conv"
            }
            Op::ConvTranspose { window, groups, output_padding } => {
                window_attrs(&mut attrs, window, true);
                attrs.push(int("group", *groups as i64));
                attrs.push(ints("output_padding", &to_i64s(output_padding)));
                "ConvTranspose"
            }
            Op::MaxPool { window, ceil_mode } => {
                let window = &self.portable_window(node, window)?;
                window_attrs(&mut attrs, window, true);
                attrs.push(int("ceil_mode", *ceil_mode as i64));
                "MaxPool"
            }
            Op::MaxPoolWithIndices { window, ceil_mode, column_major } => {
                let window = &self.portable_window(node, window)?;
                window_attrs(&mut attrs, window, true);
                attrs.push(int("ceil_mode", *ceil_mode as i64));
                attrs.push(int("storage_order", *column_major as i64));
                "MaxPool"
            }
            Op::AveragePool { window, ceil_mode, count_include_pad } => {
                // AveragePool gained `dilations` in opset 19.
                if window.dilations.iter().any(|&d| d != 1) {
                    return Err(format!(
                        "dilations {:?}: ONNX AveragePool has dilations only from opset 19",
                        window.dilations
                    )
                    .into());
                }
                window_attrs(&mut attrs, window, false);
                attrs.push(int("ceil_mode", *ceil_mode as i64));
                attrs.push(int("count_include_pad", *count_include_pad as i64));
                "AveragePool"
            }
            Op::BatchNormalization { epsilon } => {
                attrs.push(float("epsilon", *epsilon));
                "BatchNormalization"
            }
            Op::Gemm { alpha, beta, trans_a, trans_b } => {
                attrs.push(float("alpha", *alpha));
                attrs.push(float("beta", *beta));
                attrs.push(int("transA", *trans_a as i64));
                attrs.push(int("transB", *trans_b as i64));
                "Gemm"
            }
            Op::Unary(UnaryOp::Gelu) => return self.gelu(name, node, &inputs, &outputs, first_dtype()?),
            Op::Unary(u) => {
                match *u {
                    UnaryOp::LeakyRelu { alpha } => attrs.push(float("alpha", alpha)),
                    UnaryOp::HardSigmoid { alpha, beta } => {
                        attrs.push(float("alpha", alpha));
                        attrs.push(float("beta", beta));
                    }
                    UnaryOp::Celu { .. } if self.opset < 12 => {
                        return Err(format!("Celu needs opset 12, exporting opset {}", self.opset).into());
                    }
                    UnaryOp::Elu { alpha } | UnaryOp::Celu { alpha } | UnaryOp::ThresholdedRelu { alpha } => {
                        attrs.push(float("alpha", alpha))
                    }
                    UnaryOp::Selu { alpha, gamma } => {
                        attrs.push(float("alpha", alpha));
                        attrs.push(float("gamma", gamma));
                    }
                    UnaryOp::Mish if self.opset < 18 => {
                        return Err(format!("Mish needs opset 18, exporting opset {}", self.opset).into());
                    }
                    UnaryOp::BitwiseNot if self.opset < 18 => {
                        return Err(format!("BitwiseNot needs opset 18, exporting opset {}", self.opset).into());
                    }
                    UnaryOp::HardSwish if self.opset < 14 => {
                        return Err(format!("HardSwish needs opset 14, exporting opset {}", self.opset).into());
                    }
                    UnaryOp::Clip { min, max } => {
                        // An infinite bound is an omitted input; the bounds
                        // have the data's type (T), as onnxruntime insists.
                        let dtype = first_dtype()?;
                        inputs.truncate(1);
                        for (bound, what) in [(min, "min"), (max, "max")] {
                            if bound.is_finite() {
                                let value = Tensor::from_f64(dtype, Shape::scalar(), &[bound as f64]);
                                inputs.push(self.constant(name, what, &value)?);
                            } else {
                                inputs.push(String::new());
                            }
                        }
                    }
                    _ => {}
                }
                node.op.name()
            }
            Op::Binary(b) => {
                match *b {
                    BinaryOp::Mod { fmod } => attrs.push(int("fmod", fmod as i64)),
                    BinaryOp::BitShift { .. } if self.opset < 11 => {
                        return Err(format!("BitShift needs opset 11, exporting opset {}", self.opset).into());
                    }
                    BinaryOp::BitShift { left } => {
                        attrs.push(string("direction", if left { "LEFT" } else { "RIGHT" }));
                    }
                    BinaryOp::BitwiseAnd | BinaryOp::BitwiseOr | BinaryOp::BitwiseXor if self.opset < 18 => {
                        let name = Op::Binary(*b).name();
                        return Err(format!("{name} needs opset 18, exporting opset {}", self.opset).into());
                    }
                    _ => {}
                }
                Op::Binary(*b).name()
            }
            Op::MatMul | Op::Sum | Op::Where | Op::GlobalAveragePool | Op::GlobalMaxPool | Op::Identity => {
                node.op.name()
            }
            Op::Cast { to } => {
                attrs.push(int("to", elem_type_of(*to) as i64));
                "Cast"
            }
            Op::BitCast { .. } if self.opset < 26 => {
                return Err(format!("BitCast needs opset 26, exporting opset {}", self.opset).into());
            }
            Op::BitCast { to } => {
                attrs.push(int("to", elem_type_of(*to) as i64));
                "BitCast"
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                attrs.push(int("axis", *axis));
                node.op.name()
            }
            Op::ArgMax { axis, keepdims, select_last_index } | Op::ArgMin { axis, keepdims, select_last_index } => {
                attrs.push(int("axis", *axis));
                attrs.push(int("keepdims", *keepdims as i64));
                if *select_last_index {
                    attrs.push(int("select_last_index", 1));
                }
                node.op.name()
            }
            Op::LayerNormalization { axis, epsilon } => {
                if self.opset < 17 {
                    return Err(format!("LayerNormalization needs opset 17, exporting opset {}", self.opset).into());
                }
                attrs.push(int("axis", *axis));
                attrs.push(float("epsilon", *epsilon));
                "LayerNormalization"
            }
            Op::ReduceMean { axes, keepdims }
            | Op::ReduceSum { axes, keepdims }
            | Op::ReduceMax { axes, keepdims }
            | Op::ReduceMin { axes, keepdims }
            | Op::ReduceProd { axes, keepdims } => {
                // weft's empty list means every axis; ONNX's omitted axes
                // mean the same, but spelled out nothing depends on that.
                let axes: Vec<i64> = if axes.is_empty() { (0..first_rank()? as i64).collect() } else { axes.clone() };
                attrs.push(int("keepdims", *keepdims as i64));
                if matches!(node.op, Op::ReduceSum { .. }) {
                    // ReduceSum takes axes as an input from opset 13; the
                    // others keep the attribute until 18.
                    inputs.truncate(1);
                    inputs.push(self.i64s(name, "axes", &axes)?);
                } else {
                    attrs.push(ints("axes", &axes));
                }
                node.op.name()
            }
            Op::Lrn { size, alpha, beta, bias } => {
                attrs.push(int("size", *size as i64));
                attrs.push(float("alpha", *alpha));
                attrs.push(float("beta", *beta));
                attrs.push(float("bias", *bias));
                "LRN"
            }
            Op::Concat { axis } => {
                attrs.push(int("axis", *axis));
                "Concat"
            }
            Op::Split { axis, sizes } => {
                attrs.push(int("axis", *axis));
                inputs.truncate(1);
                inputs.push(self.i64s(name, "split", &to_i64s(sizes))?);
                "Split"
            }
            Op::Reshape { shape, allow_zero } => {
                // `allowzero` (opset 14) only matters when the shape has a 0.
                if *allow_zero && shape.contains(&0) {
                    if self.opset < 14 {
                        return Err(format!(
                            "shape {shape:?} with allow_zero needs opset 14 (`allowzero`), exporting opset {}",
                            self.opset
                        )
                        .into());
                    }
                    attrs.push(int("allowzero", 1));
                }
                inputs.truncate(1);
                inputs.push(self.i64s(name, "shape", shape)?);
                "Reshape"
            }
            Op::Flatten { axis } => {
                attrs.push(int("axis", *axis));
                "Flatten"
            }
            Op::Transpose { perm } => {
                attrs.push(ints("perm", &to_i64s(perm)));
                "Transpose"
            }
            Op::Squeeze { axes } | Op::Unsqueeze { axes } => {
                inputs.truncate(1);
                // Squeeze's empty list means every size-1 axis, which is
                // ONNX's omitted axes input too.
                if !axes.is_empty() || matches!(node.op, Op::Unsqueeze { .. }) {
                    inputs.push(self.i64s(name, "axes", axes)?);
                }
                node.op.name()
            }
            Op::Gather { axis } | Op::GatherElements { axis } => {
                attrs.push(int("axis", *axis));
                node.op.name()
            }
            Op::ScatterElements { reduction, .. } | Op::ScatterND { reduction } => {
                if let Op::ScatterElements { axis, .. } = node.op {
                    attrs.push(int("axis", axis));
                }
                if *reduction != ScatterReduction::None {
                    let needs =
                        if matches!(reduction, ScatterReduction::Max | ScatterReduction::Min) { 18 } else { 16 };
                    if self.opset < needs {
                        return Err(format!(
                            "{} with reduction `{}` needs opset {needs}, exporting opset {}",
                            node.op.name(),
                            reduction.name(),
                            self.opset
                        )
                        .into());
                    }
                    attrs.push(string("reduction", reduction.name()));
                }
                node.op.name()
            }
            Op::TopK { axis, k, largest } => {
                if self.opset < 11 {
                    return Err(format!("TopK needs opset 11, exporting opset {}", self.opset).into());
                }
                inputs.push(self.i64s(name, "k", &[*k as i64])?);
                attrs.push(int("axis", *axis));
                attrs.push(int("largest", *largest as i64));
                node.op.name()
            }
            // The count is bound again when the model is imported.
            Op::NonZero { .. } => node.op.name(),
            Op::GatherND { batch_dims } => {
                if *batch_dims != 0 {
                    attrs.push(int("batch_dims", *batch_dims as i64));
                }
                node.op.name()
            }
            Op::CumSum { axis, exclusive, reverse } | Op::CumProd { axis, exclusive, reverse } => {
                let needs = if matches!(node.op, Op::CumSum { .. }) { 11 } else { 26 };
                if self.opset < needs {
                    return Err(
                        format!("{} needs opset {needs}, exporting opset {}", node.op.name(), self.opset).into()
                    );
                }
                inputs.push(self.constant(name, "axis", &Tensor::i64(Shape::scalar(), vec![*axis]))?);
                attrs.push(int("exclusive", *exclusive as i64));
                attrs.push(int("reverse", *reverse as i64));
                node.op.name()
            }
            Op::Resize { scales, mode, transform, nearest } => {
                attrs.push(string(
                    "mode",
                    match mode {
                        ResizeMode::Nearest => "nearest",
                        ResizeMode::Linear => "linear",
                        ResizeMode::Cubic { .. } => "cubic",
                    },
                ));
                if let ResizeMode::Cubic { coeff_a, exclude_outside } = *mode {
                    attrs.push(float("cubic_coeff_a", coeff_a));
                    attrs.push(int("exclude_outside", exclude_outside as i64));
                }
                attrs.push(string(
                    "coordinate_transformation_mode",
                    match transform {
                        CoordinateTransform::HalfPixel => "half_pixel",
                        CoordinateTransform::PytorchHalfPixel => "pytorch_half_pixel",
                        CoordinateTransform::AlignCorners => "align_corners",
                        CoordinateTransform::Asymmetric => "asymmetric",
                        CoordinateTransform::HalfPixelSymmetric => "half_pixel_symmetric",
                    },
                ));
                attrs.push(string(
                    "nearest_mode",
                    match nearest {
                        NearestMode::RoundPreferFloor => "round_prefer_floor",
                        NearestMode::RoundPreferCeil => "round_prefer_ceil",
                        NearestMode::Floor => "floor",
                        NearestMode::Ceil => "ceil",
                    },
                ));
                inputs.truncate(1);
                // Inputs X, roi (omitted: only tf_crop_and_resize reads it), scales.
                inputs.push(String::new());
                inputs.push(self.constant(name, "scales", &Tensor::f32(vec![scales.len()], scales.clone()))?);
                "Resize"
            }
            Op::Pad { pads, value } => {
                attrs.push(string("mode", "constant"));
                let dtype = first_dtype()?;
                inputs.truncate(1);
                inputs.push(self.i64s(name, "pads", &to_i64s(pads))?);
                // constant_value has the data's type.
                let value = Tensor::from_f64(dtype, Shape::scalar(), &[*value as f64]);
                inputs.push(self.constant(name, "value", &value)?);
                "Pad"
            }
            Op::Slice { starts, ends, axes, steps } => {
                inputs.truncate(1);
                inputs.push(self.i64s(name, "starts", starts)?);
                inputs.push(self.i64s(name, "ends", ends)?);
                inputs.push(self.i64s(name, "axes", axes)?);
                inputs.push(self.i64s(name, "steps", steps)?);
                "Slice"
            }
        };
        self.push(name, op_type, inputs, outputs, attrs);
        Ok(())
    }

    /// `window` with SAME padding resolved to explicit pads where it is also
    /// dilated: onnxruntime refuses `auto_pad` with dilations, and the static
    /// input shape gives the exact pads weft's shape inference uses.
    fn portable_window(&self, node: &Node, window: &Window) -> Result<Window, Refusal> {
        if matches!(window.padding, Padding::Explicit(_)) || window.dilations.iter().all(|&d| d == 1) {
            return Ok(window.clone());
        }
        let info = |i: usize| -> Result<&TensorInfo, Refusal> {
            let t = node.inputs.get(i).copied().flatten().ok_or_else(|| format!("input {i} is missing"))?;
            Ok(self.info(t)?)
        };
        let x = info(0)?.shape.dims();
        let spatial = x.get(2..).ok_or("the input has no spatial dims")?;
        let geometry = match &node.op {
            Op::Conv { .. } => {
                let w = info(1)?.shape.dims();
                conv_geometry(window, spatial, w.get(2..).ok_or("the weight has no spatial dims")?)
            }
            Op::MaxPool { ceil_mode, .. } | Op::MaxPoolWithIndices { ceil_mode, .. } => {
                pool_geometry(window, spatial, *ceil_mode)
            }
            _ => return Ok(window.clone()),
        }?;
        let pads = geometry.pads_begin.iter().chain(&geometry.pads_end).copied().collect();
        Ok(Window { padding: Padding::Explicit(pads), ..window.clone() })
    }

    /// GELU as `x · (erf(x / √2) + 1) · 0.5`: `Gelu` itself is opset 20.
    fn gelu(
        &mut self,
        name: &str,
        node: &Node,
        inputs: &[String],
        outputs: &[String],
        dtype: DType,
    ) -> Result<(), Refusal> {
        if !dtype.is_float() {
            return Err(format!("Gelu of a {dtype} tensor").into());
        }
        let (Some(x), Some(out)) = (inputs.first(), outputs.first()) else {
            return Err(format!(
                "expected one input and one output, found {} and {}",
                inputs.len(),
                node.outputs.len()
            )
            .into());
        };
        let scalar = |v: f64| Tensor::from_f64(dtype, Shape::scalar(), &[v]);
        let sqrt2 = self.constant(name, "sqrt2", &scalar(std::f64::consts::SQRT_2))?;
        let one = self.constant(name, "one", &scalar(1.0))?;
        let half = self.constant(name, "half", &scalar(0.5))?;
        let step = |this: &mut Self, what: &str, op: &str, a: &str, b: Option<&str>| -> String {
            let t = this.claim(&format!("{name}/{what}"));
            let inputs = std::iter::once(a.to_string()).chain(b.map(str::to_string)).collect();
            let node = this.node_name(&format!("{name}/{what}"));
            this.push(&node, op, inputs, vec![t.clone()], Vec::new());
            t
        };
        let scaled = step(self, "div", "Div", x, Some(&sqrt2));
        let erf = step(self, "erf", "Erf", &scaled, None);
        let plus = step(self, "add", "Add", &erf, Some(&one));
        let times = step(self, "mul", "Mul", x, Some(&plus));
        self.push(name, "Mul", vec![times, half], vec![out.clone()], Vec::new());
        Ok(())
    }

    /// Declares the graph outputs. An output that no node produces (an input
    /// or a constant), or that is listed twice, gets an Identity of its own:
    /// ONNX outputs are node outputs with distinct names.
    fn outputs(&mut self) -> Result<(), ExportError> {
        let mut seen = HashSet::new();
        for &t in &self.graph.outputs {
            let info = self.info(t)?;
            let produced = self.graph.producer.get(t).copied().flatten().is_some();
            let name = self.names[&t].clone();
            let out = if produced && seen.insert(t) {
                name
            } else {
                let out = self.claim(&format!("{name}/output"));
                let node = self.node_name(&format!("{name}/output"));
                self.push(&node, "Identity", vec![name], vec![out.clone()], Vec::new());
                out
            };
            self.proto.output.push(value_info(&out, info));
        }
        Ok(())
    }
}

/// Window attributes of Conv/ConvTranspose/pooling. `dilations` is left out
/// for AveragePool, which has none before opset 19.
fn window_attrs(attrs: &mut Vec<AttributeProto>, w: &Window, dilations: bool) {
    attrs.push(ints("kernel_shape", &to_i64s(&w.kernel)));
    attrs.push(ints("strides", &to_i64s(&w.strides)));
    if dilations {
        attrs.push(ints("dilations", &to_i64s(&w.dilations)));
    }
    match &w.padding {
        Padding::Explicit(pads) => attrs.push(ints("pads", &to_i64s(pads))),
        Padding::SameUpper => attrs.push(string("auto_pad", "SAME_UPPER")),
        Padding::SameLower => attrs.push(string("auto_pad", "SAME_LOWER")),
    }
}

fn to_i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = kind.into();
    a
}

fn int(name: &str, v: i64) -> AttributeProto {
    let mut a = attr(name, AttributeType::INT);
    a.i = v;
    a
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = attr(name, AttributeType::INTS);
    a.ints = v.to_vec();
    a
}

fn float(name: &str, v: f32) -> AttributeProto {
    let mut a = attr(name, AttributeType::FLOAT);
    a.f = v;
    a
}

fn string(name: &str, v: &str) -> AttributeProto {
    let mut a = attr(name, AttributeType::STRING);
    a.s = v.as_bytes().to_vec();
    a
}

/// A graph input or output's declaration: elem type and static dims.
fn value_info(name: &str, info: &TensorInfo) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for &d in info.shape.dims() {
        let mut dim = Dimension::new();
        dim.value = Some(dimension::Value::DimValue(d as i64));
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem_type_of(info.dtype);
    tt.shape = Some(shape).into();
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = Some(tp).into();
    vi
}

/// A constant as a `TensorProto` with little-endian `raw_data`. f16/bf16
/// values are stored widened in `f32`, so narrowing them back is exact.
fn tensor_proto(name: &str, t: &Tensor) -> Result<TensorProto, ExportError> {
    t.validate().map_err(|message| ExportError::Tensor { tensor: name.into(), message })?;
    let mut p = TensorProto::new();
    p.name = name.into();
    p.dims = to_i64s(t.shape.dims());
    p.data_type = elem_type_of(t.dtype);
    p.raw_data = match (&t.data, t.dtype) {
        (TensorData::F32(v), DType::F16) => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        (TensorData::F32(v), DType::BF16) => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        (TensorData::F32(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (TensorData::I32(v), DType::I8 | DType::U8) => v.iter().map(|&x| x as u8).collect(),
        (TensorData::I32(v), DType::I16 | DType::U16) => v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
        (TensorData::I32(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (TensorData::I64(v), DType::U32) => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
        (TensorData::I64(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (TensorData::U64(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (TensorData::F64(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (TensorData::Bool(v), _) => v.iter().map(|&b| b as u8).collect(),
    };
    Ok(p)
}
