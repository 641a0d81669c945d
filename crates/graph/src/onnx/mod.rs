//! ONNX import: a `ModelProto` to a weft [`Graph`] with static shapes.
//!
//! The protobuf types come from the `onnx-protobuf` crate, which ships code
//! generated ahead of time, so building weft needs no `protoc`.
//!
//! What import does, in order:
//!
//! 1. Checks the opset (default domain, versions 7 to 28) and collects *every*
//!    node whose operator weft does not support, across the whole model, into
//!    one [`ImportError::Unsupported`], so a user sees the full gap at once.
//! 2. Gives each graph input a static shape: ONNX dims that are fixed in the
//!    file are used as they are; dynamic ones (`dim_param` such as `batch`, or
//!    unnamed) must be bound through [`ImportOptions`], either per input
//!    (`shapes`, the CLI's `--shape NAME=1x3x224x224`), per symbolic name
//!    (`dims`, `--dim batch=1`), or by the value the caller will run on
//!    (`values`, the CLI's `--input NAME=FILE.npy`), whose shape binds the
//!    dimensions it covers; explicit bindings win and a dimension bound two
//!    ways is an error naming it. Nothing is defaulted: a silently chosen
//!    batch size would compile a different program than the user meant.
//! 3. Walks the nodes in file order (ONNX requires a topological order).
//!    Initializers and `Constant` nodes are import-time values; `Shape` of any
//!    tensor is known since shapes are static; every node whose inputs are all
//!    known is evaluated by the `fold` module (shape arithmetic, `ConstantOfShape`,
//!    `Range`, `Expand`, …) and never reaches the graph. Other nodes become
//!    [`Op`]s, with the inputs that newer opsets use for attributes (Clip's
//!    bounds, Reshape's shape, Split's sizes, Squeeze/Unsqueeze axes, Pad's
//!    pads, Slice's bounds, Resize's scales or sizes, reduction axes) read
//!    from constants — or from a graph input's given value, which then
//!    specialises the graph ([`Graph::specialized`]) — into attributes, so an
//!    [`Op`] means the same thing whatever opset the model used. A constant reaches the graph (as a weight)
//!    only when a node consumes it as data.
//! 4. Marks the model's outputs.
//!
//! Opset differences handled here rather than downstream: opsets 7 and 8
//! differ from 9 for the supported operators only in BatchNormalization's
//! `spatial` (1, the only form since opset 9, is accepted; 0 is refused) and
//! Upsample's scales (an attribute until opset 9); Softmax before
//! opset 13 normalises over all dimensions from `axis` on (the input coerced to
//! 2-D), which becomes Reshape → Softmax → Reshape when `axis` is not the last
//! dimension; `Upsample` and opset-10 `Resize` become `Resize` with asymmetric
//! coordinates and floor rounding; `Dropout` and `Identity` become
//! [`Op::Identity`]; `Expand` of a computed tensor becomes a broadcasting
//! multiply by ones, since weft has no expand operator.
//!
//! Operators ONNX itself defines as functions of others are imported as
//! those others, each node named `{node}/{step}`: ReduceL1, ReduceL2,
//! ReduceSumSquare, ReduceLogSum and ReduceLogSumExp (an elementwise map
//! around ReduceSum; LogSumExp subtracts the maximum first), PRelu (Where),
//! Mean (Sum and a division), Trilu (Where over a constant mask), Hardmax
//! (ArgMax compared with positions), RMSNormalization, LayerNormalization's
//! Mean and InvStdDev outputs (ReduceMean), and Attention (head split, the
//! KV cache Concat, grouped heads by Gather, MatMul, softcap, the additive
//! mask with constant causal and sliding-window parts, Softmax, and the
//! fully-masked-row guard), NegativeLogLikelihoodLoss (GatherElements of
//! the target class, weights by Gather) and SoftmaxCrossEntropyLoss
//! (LogSoftmax, then the former), Gelu's tanh form, Swish, DepthToSpace and
//! SpaceToDepth (Reshape, Transpose, Reshape), Tile (a broadcast multiply by
//! ones), LpNormalization and InstanceNormalization, GroupNormalization
//! (InstanceNormalization's statistics over channel groups) and
//! MeanVarianceNormalization, LpPool (AveragePool of `|x|^p` counting the
//! padding, times the window size, to the power `1/p`), IsNaN (`x ≠ x`),
//! IsInf (Equal with ±∞), Round (halves to even from Floor and comparisons),
//! Shrink (Where), OneHot (indices compared with a constant `0..depth`),
//! SwiGLU (Sigmoid and Mul), RotaryEmbedding (Gather of the caches, Slice,
//! Mul, Concat), CenterCropPad (Slice and Pad) and Pad's
//! reflect, edge and wrap modes (Concat of slices). HannWindow, HammingWindow, BlackmanWindow
//! and EyeLike depend only on a size or a shape, so they are always
//! constants.

mod attrs;
mod einsum;
pub mod error;
pub mod export;
mod fold;
mod grid_sample;
mod ops;
mod rnn;
mod scan;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use onnx_protobuf::{Message, ModelProto, NodeProto};

pub use error::ImportError;
pub use export::{export_model, export_onnx, export_onnx_default, ExportError};

use crate::dtype::DType;
use crate::graph::{Graph, TensorId};
use crate::memory::Budget;
use crate::op::Op;
use crate::tensor::{Shape, Tensor};
use attrs::Attrs;
use fold::FoldNode;

/// The lowest and highest default-domain opsets the importer understands.
pub const OPSET_RANGE: std::ops::RangeInclusive<i64> = 7..=28;

/// How to give a model's dynamic input dimensions static values.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Full shapes of graph inputs by input name (`--shape NAME=1x3x224x224`).
    /// Dimensions fixed in the file must agree.
    pub shapes: HashMap<String, Vec<usize>>,
    /// Values of symbolic dimensions by `dim_param` name (`--dim batch=1`),
    /// for every input that uses the name.
    pub dims: HashMap<String, usize>,
    /// The most elements any one tensor may have: inputs, weights, folded
    /// constants and node outputs ([`DEFAULT_MAX_ELEMENTS`] when `None`). A
    /// model asking for more is refused before anything that size is
    /// allocated, so a damaged or hostile file cannot exhaust memory.
    pub max_elements: Option<usize>,
    /// Values of graph inputs known at import: the files a caller runs the
    /// model on. An input with a value takes its shape from it (binding the
    /// input's dynamic dimensions, so a caller need not repeat the shape);
    /// a value whose shape differs from the input's `shapes` entry, or a
    /// symbolic dimension bound to two sizes, is an error naming it. Where a node uses such an
    /// input as an attribute-like operand (reduction axes, pads, a target
    /// shape, Split sizes, Clip bounds, …) the value is compiled in, and the
    /// input is listed in [`Graph::specialized`]: the program computes the
    /// right answer only for that value.
    pub values: HashMap<String, Tensor>,
    /// Shapes of the tensors a caller runs the model on, by input name (a
    /// request's inputs): they bind the inputs' dynamic dimensions exactly
    /// as the shapes of [`ImportOptions::values`] do, without compiling any
    /// value in. [`bind_inputs`] resolves every input's shape from these,
    /// `values`, `shapes` and `dims` — the one binding every caller uses.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// The memory budget in bytes ([`crate::memory`]): import refuses a
    /// model whose weights and folded constants, or any one node's output
    /// next to them, would exceed it, before allocating them. `None` is
    /// [`crate::memory::host_memory_budget`] (import holds everything on
    /// the host).
    pub max_memory: Option<u64>,
    /// How many elements each data-dependent output has, by the ONNX name of
    /// the output (a `NonZero` of a tensor computed at run time: its output
    /// is `[rank, count]`). Bound by [`import_data_dependent`], which counts
    /// them on a run of the model's prefix on the very inputs the program
    /// will run on; a program imported with a count runs correctly only on
    /// inputs that give that count.
    pub counts: HashMap<String, usize>,
}

/// The default [`ImportOptions::max_elements`]: 2^31 elements (8 GiB of `f32`).
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 31;

impl ImportOptions {
    /// Binds the full shape of input `name`.
    pub fn with_shape(mut self, name: impl Into<String>, dims: impl Into<Vec<usize>>) -> ImportOptions {
        self.shapes.insert(name.into(), dims.into());
        self
    }

    /// Binds the symbolic dimension `name` (an ONNX `dim_param`).
    pub fn with_dim(mut self, name: impl Into<String>, value: usize) -> ImportOptions {
        self.dims.insert(name.into(), value);
        self
    }

    /// Gives input `name` the value `value` (see [`ImportOptions::values`]).
    pub fn with_value(mut self, name: impl Into<String>, value: Tensor) -> ImportOptions {
        self.values.insert(name.into(), value);
        self
    }

    /// The element limit in force.
    pub fn element_limit(&self) -> usize {
        self.max_elements.unwrap_or(DEFAULT_MAX_ELEMENTS)
    }

    /// Gives the shape of the tensor input `name` will be run on (see
    /// [`ImportOptions::input_shapes`]).
    pub fn with_input_shape(mut self, name: impl Into<String>, dims: impl Into<Vec<usize>>) -> ImportOptions {
        self.input_shapes.insert(name.into(), dims.into());
        self
    }

    /// Sets the memory budget ([`ImportOptions::max_memory`]).
    pub fn with_max_memory(mut self, bytes: u64) -> ImportOptions {
        self.max_memory = Some(bytes);
        self
    }

    /// The memory budget in force, in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.max_memory.unwrap_or_else(crate::memory::host_memory_budget)
    }
}

/// Parses an ONNX model and imports it.
pub fn import_onnx(bytes: &[u8], options: &ImportOptions) -> Result<Graph, ImportError> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|source| ImportError::Protobuf { path: None, source })?;
    import_model(&model, options)
}

/// Reads and imports the ONNX file at `path`.
pub fn import_onnx_file(path: impl AsRef<Path>, options: &ImportOptions) -> Result<Graph, ImportError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io { path: path.display().to_string(), source })?;
    if bytes.is_empty() {
        // An empty file decodes as an empty model, which would only be
        // refused later for lacking an opset.
        return Err(ImportError::Decode(format!("{}: the file is empty", path.display())));
    }
    import_onnx(&bytes, options).map_err(|e| in_file(path, e))
}

/// `e`, naming the file `path` where it is about the file as a whole.
fn in_file(path: &Path, e: ImportError) -> ImportError {
    match e {
        ImportError::Decode(m) => ImportError::Decode(format!("{}: {m}", path.display())),
        ImportError::Protobuf { path: None, source } => {
            ImportError::Protobuf { path: Some(path.display().to_string()), source }
        }
        ImportError::Opset(m) => ImportError::Opset(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// The static shape of every graph input of `model` (in order, with its
/// name), bound from `options`: fixed dimensions of the file, `shapes`
/// (`--shape`), `dims` (`--dim`), and the shapes of the tensors given
/// (`values`, `input_shapes`). A symbolic dimension two of these bind to
/// different sizes, or a given tensor that does not fit an explicit shape,
/// is an [`ImportError::Input`] naming the dimension. Import binds its
/// inputs with this; a server keys its compiled programs by the result.
pub fn bind_inputs(model: &ModelProto, options: &ImportOptions) -> Result<Vec<(String, DType, Shape)>, ImportError> {
    let Some(proto) = model.graph.as_ref() else {
        return Err(ImportError::Decode("the model has no graph".into()));
    };
    let initializers: HashSet<&str> = proto.initializer.iter().map(|t| t.name.as_str()).collect();
    for name in options.input_shapes.keys().chain(options.values.keys()) {
        let known = proto.input.iter().any(|i| &i.name == name && !initializers.contains(i.name.as_str()));
        if !known && !options.values.contains_key(name) {
            let names: Vec<&str> =
                proto.input.iter().map(|i| i.name.as_str()).filter(|n| !initializers.contains(n)).collect();
            return Err(ImportError::Input {
                input: name.clone(),
                message: format!("is given a shape, but the model has no such input (inputs: {})", names.join(", ")),
            });
        }
    }
    let mut from_values: HashMap<String, (usize, String)> = HashMap::new();
    let mut bound = Vec::new();
    for input in &proto.input {
        if initializers.contains(input.name.as_str()) {
            continue;
        }
        let (dtype, shape) = input_type(input, options, &mut from_values)?;
        bound.push((input.name.clone(), dtype, shape));
    }
    Ok(bound)
}

/// A parsed ONNX model, kept to import it again for each binding of its
/// dynamic dimensions (a server compiling one program per binding).
#[derive(Clone, Debug)]
pub struct OnnxModel(ModelProto);

impl OnnxModel {
    /// Parses a model's bytes.
    pub fn parse(bytes: &[u8]) -> Result<OnnxModel, ImportError> {
        if bytes.is_empty() {
            return Err(ImportError::Decode("the model is empty".into()));
        }
        let model =
            ModelProto::parse_from_bytes(bytes).map_err(|source| ImportError::Protobuf { path: None, source })?;
        default_opset(&model)?;
        Ok(OnnxModel(model))
    }

    /// Reads and parses the ONNX file at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<OnnxModel, ImportError> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| ImportError::Io { path: path.display().to_string(), source })?;
        OnnxModel::parse(&bytes).map_err(|e| in_file(path, e))
    }

    /// The model's name: its graph's, else `model`.
    pub fn name(&self) -> &str {
        self.0.graph.as_ref().map(|g| g.name.as_str()).filter(|n| !n.is_empty()).unwrap_or("model")
    }

    /// Every input's shape under `options` ([`bind_inputs`]).
    pub fn bind(&self, options: &ImportOptions) -> Result<Vec<(String, DType, Shape)>, ImportError> {
        bind_inputs(&self.0, options)
    }

    /// Imports the model under `options` ([`import_model`]).
    pub fn import(&self, options: &ImportOptions) -> Result<Graph, ImportError> {
        import_model(&self.0, options)
    }

    /// The part of the model that computes tensor `output`: the same inputs
    /// and opsets, only the nodes `output` depends on and the initializers
    /// they read, and `output` as the one graph output (a graph input
    /// passes through).
    pub fn prefix(&self, output: &str) -> Result<OnnxModel, ImportError> {
        let mut model = self.0.clone();
        let Some(graph) = model.graph.as_mut() else {
            return Err(ImportError::Decode("the model has no graph".into()));
        };
        let mut needed: HashSet<String> = HashSet::from([output.to_string()]);
        let mut keep = vec![false; graph.node.len()];
        for (i, node) in graph.node.iter().enumerate().rev() {
            if node.output.iter().any(|o| needed.contains(o)) {
                keep[i] = true;
                needed.extend(node.input.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
        let produced = keep.iter().any(|&k| k)
            || graph.input.iter().any(|i| i.name == output)
            || graph.initializer.iter().any(|t| t.name == output);
        if !produced {
            return Err(ImportError::Node {
                node: "(graph outputs)".into(),
                op_type: "output".into(),
                message: format!("tensor `{output}` is not produced by any node"),
            });
        }
        let mut kept = keep.iter();
        graph.node.retain(|_| kept.next().copied().unwrap_or(false));
        // Initializers the kept nodes do not read (and, before IR 4, their
        // entries among the inputs) would only be decoded again.
        let unused: HashSet<String> =
            graph.initializer.iter().map(|t| t.name.clone()).filter(|n| !needed.contains(n)).collect();
        graph.initializer.retain(|t| !unused.contains(&t.name));
        graph.input.retain(|i| !unused.contains(&i.name));
        let mut out = onnx_protobuf::ValueInfoProto::new();
        out.name = output.to_string();
        graph.output = vec![out];
        Ok(OnnxModel(model))
    }
}

/// A data-dependent output size import met unbound
/// ([`import_data_dependent`]): what to count to bind it.
#[derive(Clone, Debug)]
pub struct Counted {
    /// The node (`NonZero`, `Compress`, `If`), its operator, and the
    /// name its count binds (the output it sizes, or the `If`'s condition).
    pub node: String,
    pub op_type: String,
    pub output: String,
    /// The tensor whose nonzero elements are counted, and the model's part
    /// that computes it ([`OnnxModel::prefix`]).
    pub tensor: String,
    pub prefix: OnnxModel,
}

/// Imports `model` for inputs whose data decides the size of some outputs
/// (`NonZero` of a computed tensor). Each time import meets such an output
/// with no count in `options.counts` ([`ImportError::DataDependent`]),
/// `count` is handed the model's prefix that computes the node's input
/// ([`Counted`]), runs it on the caller's inputs (under the same `options`,
/// so earlier counts hold) and returns how many of its one output's
/// elements are nonzero; the count is bound and import resumes. A model
/// without such outputs imports at the first try.
///
/// The graph is then static, and the counts in `options` are part of its
/// binding: a caller caching programs by binding keys them by the counts
/// too.
pub fn import_data_dependent<E: From<ImportError>>(
    model: &OnnxModel,
    options: &mut ImportOptions,
    count: &mut dyn FnMut(&Counted, &ImportOptions) -> Result<usize, E>,
) -> Result<Graph, E> {
    loop {
        match model.import(options) {
            Err(ImportError::DataDependent { node, op_type, input, output }) => {
                if options.counts.contains_key(&output) {
                    // Bound already yet refused: the error is not ours to resolve.
                    return Err(ImportError::DataDependent { node, op_type, input, output }.into());
                }
                let prefix = model.prefix(&input)?;
                let counted = Counted { node, op_type, output, tensor: input, prefix };
                let n = count(&counted, options)?;
                options.counts.insert(counted.output, n);
            }
            other => return other.map_err(E::from),
        }
    }
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto, options: &ImportOptions) -> Result<Graph, ImportError> {
    let opset = default_opset(model)?;
    let Some(proto) = model.graph.as_ref() else {
        return Err(ImportError::Decode("the model has no graph".into()));
    };
    check_supported(&proto.node)?;

    let name = if proto.name.is_empty() { "model".to_string() } else { proto.name.clone() };
    let max_elements = options.element_limit();
    let mut imp = Importer {
        graph: Graph::new(name),
        values: HashMap::new(),
        opset,
        node_names: HashSet::new(),
        max_elements,
        input_values: HashMap::new(),
        budget: Budget::new(options.memory_limit()),
        counts: options.counts.clone(),
    };

    for t in &proto.initializer {
        imp.add_initializer(t.name.clone(), t)?;
    }
    // Before IR 4 every initializer is also listed as an input; it is a
    // weight, not something a caller feeds (bind_inputs skips those).
    for (name, dtype, shape) in bind_inputs(model, options)? {
        if let Some(value) = options.values.get(&name) {
            if value.shape == shape {
                imp.input_values.insert(name.clone(), value.clone());
            }
        }
        tensor::check_elements(|| format!("input `{name}`"), shape.dims(), max_elements)?;
        let bytes = crate::memory::tensor_bytes(shape.dims(), dtype.size_bytes() as u64);
        imp.budget.check(|| format!("input `{name}` of shape {shape}"), &name, bytes)?;
        let id = imp.graph.add_input(name.clone(), dtype, shape);
        imp.values.insert(name, Value::Tensor(id));
    }
    for (index, node) in proto.node.iter().enumerate() {
        imp.import_node(index, node)?;
    }
    for output in &proto.output {
        let id = imp.tensor(&output.name).map_err(|_| ImportError::Node {
            node: "(graph outputs)".into(),
            op_type: "output".into(),
            message: format!("output `{}` is not produced by any node", output.name),
        })?;
        imp.graph.add_output(id);
    }
    imp.prune_constants();
    Ok(imp.graph)
}

fn default_opset(model: &ModelProto) -> Result<i64, ImportError> {
    let found = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx");
    let Some(set) = found else {
        return Err(ImportError::Opset("the model imports no default-domain (ai.onnx) opset".into()));
    };
    if !OPSET_RANGE.contains(&set.version) {
        return Err(ImportError::Opset(format!(
            "the model uses opset {}; weft imports opsets {} to {}: convert it with \
             `onnx.version_converter.convert_version(model, {})`",
            set.version,
            OPSET_RANGE.start(),
            OPSET_RANGE.end(),
            OPSET_RANGE.end()
        )));
    }
    Ok(set.version)
}

/// The operators import understands: those with an [`Op`], and those that
/// only ever fold to constants.
const SUPPORTED: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "AffineGrid",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Attention",
    "AveragePool",
    "BatchNormalization",
    "BitCast",
    "BitShift",
    "BitwiseAnd",
    "BitwiseNot",
    "BitwiseOr",
    "BitwiseXor",
    "BlackmanWindow",
    "Cast",
    "CastLike",
    "Ceil",
    "Celu",
    "CenterCropPad",
    "Clip",
    "Col2Im",
    "Compress",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvInteger",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumProd",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Dropout",
    "DynamicQuantizeLinear",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "GRU",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GridSample",
    "GroupNormalization",
    "HammingWindow",
    "HannWindow",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "If",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LSTM",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "MatMulInteger",
    "Max",
    "MaxPool",
    "MaxUnpool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "NonZero",
    "NegativeLogLikelihoodLoss",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "DequantizeLinear",
    "Pad",
    "Pow",
    "RMSNormalization",
    "RNN",
    "Range",
    "Reciprocal",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "ReverseSequence",
    "RotaryEmbedding",
    "Round",
    "Scan",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "SoftmaxCrossEntropyLoss",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "SwiGLU",
    "Swish",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
];

fn check_supported(nodes: &[NodeProto]) -> Result<(), ImportError> {
    let mut ops = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if !default_domain {
            ops.push((format!("{}.{}", n.domain, n.op_type), display_name(n, i)));
        } else if !SUPPORTED.contains(&n.op_type.as_str()) {
            ops.push((n.op_type.clone(), display_name(n, i)));
        }
    }
    if ops.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Unsupported { ops })
    }
}

/// A node's name for messages: its ONNX name, or (many exporters leave it
/// empty) its operator, position and first output.
fn display_name(n: &NodeProto, index: usize) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        format!("{}#{index} -> {}", n.op_type, n.output.first().map(String::as_str).unwrap_or("?"))
    }
}

fn input_type(
    input: &onnx_protobuf::ValueInfoProto,
    options: &ImportOptions,
    from_values: &mut HashMap<String, (usize, String)>,
) -> Result<(DType, Shape), ImportError> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value as Type;
    let err = |message: String| ImportError::Input { input: input.name.clone(), message };
    let Some(Type::TensorType(tt)) = input.type_.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(err("is not a tensor (sequences, maps and optionals are not supported)".into()));
    };
    let dtype = tensor::dtype_of(tt.elem_type).map_err(err)?;
    let value_dims = options.values.get(&input.name).map(|v| v.shape.dims());
    let shape_dims = options.input_shapes.get(&input.name).map(Vec::as_slice);
    if let (Some(a), Some(b)) = (value_dims, shape_dims) {
        if a != b {
            return Err(err(format!(
                "is given a value of shape {} and a tensor of shape {}: give one shape",
                Shape(a.to_vec()),
                Shape(b.to_vec())
            )));
        }
    }
    let given = value_dims.or(shape_dims);
    // An explicit shape (`--shape`) and the tensor given must agree.
    if let (Some(explicit), Some(given)) = (options.shapes.get(&input.name), given) {
        if explicit.as_slice() != given {
            let at = explicit.iter().zip(given).position(|(a, b)| a != b);
            let detail = match at {
                Some(i) => format!("dimension {i} is {} there but {} in the tensor given", explicit[i], given[i]),
                None => format!("rank {} there but rank {} in the tensor given", explicit.len(), given.len()),
            };
            return Err(err(format!(
                "is bound to {} by `--shape`, but is given a tensor of shape {}: {detail}",
                Shape(explicit.clone()),
                Shape(given.to_vec())
            )));
        }
    }
    let Some(shape) = tt.shape.as_ref() else {
        return match options.shapes.get(&input.name).map(Vec::as_slice).or(given) {
            Some(dims) => Ok((dtype, Shape(dims.to_vec()))),
            None => {
                Err(err(format!("has no shape in the model: pass `--shape {}=DIMS` (e.g. 1x3x224x224)", input.name)))
            }
        };
    };
    let file_dims: Vec<Option<usize>> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Dim::DimValue(v)) if *v >= 0 => Some(*v as usize),
            Some(Dim::DimParam(p)) => options.dims.get(p).copied(),
            _ => None,
        })
        .collect();
    let shown = || -> String {
        let parts: Vec<String> = shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Dim::DimValue(v)) if *v >= 0 => v.to_string(),
                Some(Dim::DimParam(p)) => p.clone(),
                _ => "?".into(),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    };
    // A value's shape binds the dynamic dimensions it covers; explicit
    // `shapes` and `dims` take precedence, and disagreement is an error
    // naming the dimension.
    // (A model with every dimension fixed keeps its shape; a value that does
    // not fit it is the caller's input check to report, naming the file.)
    let dynamic =
        file_dims.iter().any(Option::is_none) || shape.dim.iter().any(|d| matches!(d.value, Some(Dim::DimParam(_))));
    if let (None, Some(value_dims), true) = (options.shapes.get(&input.name), given, dynamic) {
        if value_dims.len() != shape.dim.len() {
            return Err(err(format!(
                "is given a rank-{} value of shape {}, but the model declares rank {} {}",
                value_dims.len(),
                Shape(value_dims.to_vec()),
                shape.dim.len(),
                shown()
            )));
        }
        for (i, (d, &v)) in shape.dim.iter().zip(value_dims).enumerate() {
            match &d.value {
                Some(Dim::DimValue(f)) if *f >= 0 && *f as usize != v => {
                    return Err(err(format!(
                        "is given a value of shape {}, but dimension {i} is {f} in the model {}",
                        Shape(value_dims.to_vec()),
                        shown()
                    )));
                }
                Some(Dim::DimParam(p)) => {
                    if let Some(&bound) = options.dims.get(p) {
                        if bound != v {
                            return Err(err(format!(
                                "dimension `{p}` is bound to {bound}, but the value given has {v} there (shape {})",
                                Shape(value_dims.to_vec())
                            )));
                        }
                    }
                    if let Some((other, from)) = from_values.get(p) {
                        if *other != v {
                            return Err(err(format!(
                                "dimension `{p}` is {v} in the value given, but {other} in the value of input `{from}`"
                            )));
                        }
                    }
                    from_values.insert(p.clone(), (v, input.name.clone()));
                }
                _ => {}
            }
        }
        return Ok((dtype, Shape(value_dims.to_vec())));
    }
    if let Some(bound) = options.shapes.get(&input.name) {
        if bound.len() != file_dims.len() {
            return Err(err(format!(
                "bound to a rank-{} shape {}, but the model declares rank {} {}",
                bound.len(),
                Shape(bound.clone()),
                file_dims.len(),
                shown()
            )));
        }
        for (i, (b, f)) in bound.iter().zip(&file_dims).enumerate() {
            if let Some(f) = f {
                if f != b {
                    return Err(err(format!(
                        "bound to {} but dimension {i} is {f} in the model {}",
                        Shape(bound.clone()),
                        shown()
                    )));
                }
            }
        }
        return Ok((dtype, Shape(bound.clone())));
    }
    match file_dims.iter().copied().collect::<Option<Vec<usize>>>() {
        Some(dims) => Ok((dtype, Shape(dims))),
        None => Err(err(format!(
            "has dynamic dimensions {}: bind them with `--shape {}=DIMS` (e.g. `--shape {}=1x3x224x224`), \
             or name each symbolic dimension with `--dim NAME=VALUE`",
            shown(),
            input.name,
            input.name
        ))),
    }
}

/// A name's value during import.
#[derive(Clone, Debug)]
enum Value {
    /// Known at import; not in the graph until a node consumes it as data.
    Const(Tensor),
    /// A graph tensor (an input, a node output, or a materialised constant).
    Tensor(TensorId),
}

/// One node as the converters see it.
pub(crate) struct NodeView<'a> {
    /// Unique node name for the graph and for messages.
    pub name: String,
    pub op_type: &'a str,
    pub attrs: Attrs<'a>,
    /// Inputs by position; `None` where ONNX passes `""` for an omitted one.
    pub inputs: Vec<Option<&'a str>>,
    pub outputs: &'a [String],
    pub opset: i64,
    /// [`ImportOptions::max_elements`].
    pub max_elements: usize,
    /// The import's memory budget as the node starts.
    pub budget: Budget,
}

impl NodeView<'_> {
    pub fn err(&self, message: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.clone(), op_type: self.op_type.to_string(), message: message.into() }
    }

    pub fn fold_node(&self) -> FoldNode<'_> {
        FoldNode {
            name: &self.name,
            op_type: self.op_type,
            opset: self.opset,
            attrs: self.attrs,
            max_elements: self.max_elements,
            budget: &self.budget,
        }
    }
}

pub(crate) struct Importer {
    graph: Graph,
    values: HashMap<String, Value>,
    opset: i64,
    node_names: HashSet<String>,
    max_elements: usize,
    /// [`ImportOptions::values`] of graph inputs whose shape they match.
    input_values: HashMap<String, Tensor>,
    /// Bytes of the constants import holds, against the memory budget.
    budget: Budget,
    /// [`ImportOptions::counts`].
    counts: HashMap<String, usize>,
}

impl Importer {
    fn import_node(&mut self, index: usize, node: &NodeProto) -> Result<(), ImportError> {
        let mut name = display_name(node, index);
        if self.node_names.contains(&name) {
            name = format!("{name}#{index}");
        }
        self.node_names.insert(name.clone());
        let view = NodeView {
            name,
            op_type: node.op_type.as_str(),
            attrs: Attrs { op_type: node.op_type.as_str(), list: &node.attribute },
            inputs: node.input.iter().map(|s| (!s.is_empty()).then_some(s.as_str())).collect(),
            outputs: &node.output,
            opset: self.opset,
            max_elements: self.max_elements,
            budget: self.budget.clone(),
        };
        for input in view.inputs.iter().flatten() {
            if !self.values.contains_key(*input) {
                return Err(view.err(format!(
                    "input `{input}` is not a graph input, an initializer or an earlier node's output \
                     (is the model topologically sorted?)"
                )));
            }
        }
        // ONNX graphs are in SSA form; a second definition would silently
        // rewire every later consumer.
        for (i, out) in view.outputs.iter().enumerate() {
            if !out.is_empty() && (self.values.contains_key(out) || view.outputs[..i].contains(out)) {
                return Err(view.err(format!("output `{out}` is already defined (each name must be assigned once)")));
            }
        }
        match view.op_type {
            "Constant" => {
                let value = constant_value(&view)?;
                tensor::check_elements(
                    || format!("node `{}` (Constant)", view.name),
                    value.shape.dims(),
                    self.max_elements,
                )?;
                self.charge_const(&view.name, view.op_type, &view.outputs[..1.min(view.outputs.len())], &[&value])?;
                self.set_const(&view, 0, value);
                return Ok(());
            }
            "Shape" | "Size" => {
                let dims = self.shape_of(view.inputs.first().copied().flatten().ok_or_else(|| view.err("no input"))?);
                let value = if view.op_type == "Size" {
                    Tensor::i64(Shape::scalar(), vec![dims.iter().product::<usize>() as i64])
                } else {
                    let rank = dims.len() as i64;
                    let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                    let start = clampi(view.attrs.int("start", &view.name)?.unwrap_or(0));
                    let end = clampi(view.attrs.int("end", &view.name)?.unwrap_or(rank));
                    let dims: Vec<i64> =
                        dims.get(start..end.max(start)).unwrap_or(&[]).iter().map(|&d| d as i64).collect();
                    Tensor::i64(vec![dims.len()], dims)
                };
                self.set_const(&view, 0, value);
                return Ok(());
            }
            "If" => return self.import_if(&view),
            "Scan" => return self.import_scan(&view),
            _ => {}
        }
        let consts: Vec<Option<Tensor>> =
            view.inputs.iter().map(|i| i.and_then(|i| self.const_of(i).cloned())).collect();
        let all_const = view.inputs.iter().zip(&consts).all(|(i, c)| i.is_none() || c.is_some());
        if all_const && view.inputs.iter().any(Option::is_some) {
            let refs: Vec<Option<&Tensor>> = consts.iter().map(Option::as_ref).collect();
            if let Some(outs) = fold::fold(&view.fold_node(), &refs)? {
                self.charge_const(&view.name, view.op_type, view.outputs, &outs.iter().collect::<Vec<_>>())?;
                for (i, t) in outs.into_iter().enumerate() {
                    self.set_const(&view, i, t);
                }
                return Ok(());
            }
        }
        ops::convert(self, &view)
    }

    /// Charges the constants node `node` produced (`outputs` names them).
    fn charge_const(
        &mut self,
        node: &str,
        op: &str,
        outputs: &[String],
        values: &[&Tensor],
    ) -> Result<(), ImportError> {
        for (i, v) in values.iter().enumerate() {
            let name = outputs.get(i).filter(|o| !o.is_empty()).cloned().unwrap_or_else(|| format!("{node}:{i}"));
            self.budget.charge(
                || format!("node `{node}` ({op}) output `{name}` of shape {}", v.shape),
                &name,
                crate::memory::held_bytes(v),
            )?;
        }
        Ok(())
    }

    /// Charges a constant of `dims` and `dtype` that node `node` is about to
    /// make up (the ones of an Expand, say), before it is allocated.
    pub(crate) fn charge_new(
        &mut self,
        node: &str,
        op: &str,
        name: &str,
        dims: &[usize],
        dtype: DType,
    ) -> Result<(), ImportError> {
        let bytes = crate::memory::tensor_bytes(dims, dtype.size_bytes() as u64);
        self.budget.charge(
            || format!("node `{node}` ({op}) constant `{name}` of shape {}", Shape(dims.to_vec())),
            name,
            bytes,
        )?;
        Ok(())
    }

    fn set_const(&mut self, view: &NodeView<'_>, output: usize, value: Tensor) {
        if let Some(name) = view.outputs.get(output) {
            if !name.is_empty() {
                self.values.insert(name.clone(), Value::Const(value));
            }
        }
    }

    /// The value given for graph input `name` at import, recording that the
    /// graph is specialised to it ([`Graph::specialized`]).
    pub(crate) fn input_value(&mut self, name: &str) -> Option<Tensor> {
        let value = self.input_values.get(name)?.clone();
        if let Some(Value::Tensor(id)) = self.values.get(name) {
            self.graph.specialized.insert(*id, value.clone());
        }
        Some(value)
    }

    /// `If`: the branch its condition selects, inlined (its initializers
    /// and nodes imported in place, its outputs bound to the node's). A
    /// condition known at import picks the branch now; one computed at run
    /// time is bound like a data-dependent size — its count of nonzero
    /// elements, 0 or 1, from a run of the model's prefix on the inputs
    /// ([`import_data_dependent`]) — and the program checks it holds (a
    /// `NonZero` of the condition, whose count the run verifies).
    fn import_if(&mut self, view: &NodeView<'_>) -> Result<(), ImportError> {
        let cond = view.inputs.first().copied().flatten().ok_or_else(|| view.err("the cond input is missing"))?;
        let numel: usize = self.shape_of(cond).iter().product();
        if numel != 1 {
            return Err(view.err(format!("the condition `{cond}` has {numel} elements; If takes one")));
        }
        // The condition's nonzero elements: 0 or 1.
        let key = format!("{}/condition", view.name);
        let count = ops::nonzero_count(self, view, cond, &key)?;
        if self.const_of(cond).is_none() {
            let c = self.tensor(cond)?;
            self.emit(&key, Op::NonZero { count }, vec![Some(c)], &[])?;
        }
        let taken = count != 0;
        let which = if taken { "then_branch" } else { "else_branch" };
        let branch = view.attrs.graph(which, &view.name)?.ok_or_else(|| view.err(format!("`{which}` is missing")))?;
        if branch.output.len() != view.outputs.len() {
            return Err(view.err(format!(
                "`{which}` has {} outputs; the node has {}",
                branch.output.len(),
                view.outputs.len()
            )));
        }
        check_supported(&branch.node)?;
        for t in &branch.initializer {
            self.add_initializer(t.name.clone(), t)?;
        }
        for (index, node) in branch.node.iter().enumerate() {
            self.import_node(index, node)?;
        }
        for (out, inner) in view.outputs.iter().zip(&branch.output) {
            if out.is_empty() {
                continue;
            }
            let value = self.values.get(&inner.name).cloned().ok_or_else(|| {
                view.err(format!("`{which}` output `{}` is not produced by any of its nodes", inner.name))
            })?;
            match value {
                // A graph tensor takes the node's output name (a model
                // output keeps the name the model gives it).
                Value::Tensor(id) => {
                    self.emit(
                        &format!("{}/{out}", view.name),
                        Op::Identity,
                        vec![Some(id)],
                        std::slice::from_ref(out),
                    )?;
                }
                constant => {
                    self.values.insert(out.clone(), constant);
                }
            }
        }
        Ok(())
    }

    /// Initializer `t` as the constant `name`, sized against the element
    /// limit and the memory budget before it is kept.
    fn add_initializer(&mut self, name: String, t: &onnx_protobuf::TensorProto) -> Result<(), ImportError> {
        let value = tensor::tensor_from_proto(t)?;
        tensor::check_elements(|| format!("initializer `{}`", t.name), value.shape.dims(), self.max_elements)?;
        self.budget.charge(|| format!("initializer `{}`", t.name), &name, crate::memory::held_bytes(&value))?;
        self.values.insert(name, Value::Const(value));
        Ok(())
    }

    /// The import-time value of `name`, if it has one.
    pub(crate) fn const_of(&self, name: &str) -> Option<&Tensor> {
        match self.values.get(name)? {
            Value::Const(t) => Some(t),
            Value::Tensor(id) => self.graph.constants.get(id),
        }
    }

    pub(crate) fn shape_of(&self, name: &str) -> Vec<usize> {
        match self.values.get(name) {
            Some(Value::Const(t)) => t.shape.dims().to_vec(),
            Some(Value::Tensor(id)) => self.graph.info(*id).shape.dims().to_vec(),
            None => Vec::new(),
        }
    }

    pub(crate) fn dtype_of(&self, name: &str) -> Option<DType> {
        match self.values.get(name)? {
            Value::Const(t) => Some(t.dtype),
            Value::Tensor(id) => Some(self.graph.info(*id).dtype),
        }
    }

    /// The graph tensor for `name`, adding an import-time value to the graph
    /// as a constant the first time a node consumes it.
    pub(crate) fn tensor(&mut self, name: &str) -> Result<TensorId, ImportError> {
        match self.values.get(name) {
            Some(Value::Tensor(id)) => Ok(*id),
            Some(Value::Const(t)) => {
                let id = self.graph.add_constant(name, t.clone());
                self.values.insert(name.to_string(), Value::Tensor(id));
                Ok(id)
            }
            None => Err(ImportError::Tensor { tensor: name.into(), message: "is not defined".into() }),
        }
    }

    /// Drops constants that no node consumes and that are not outputs: the
    /// inputs of nodes folded after their constants reached the graph.
    fn prune_constants(&mut self) {
        let mut used: HashSet<TensorId> = self.graph.outputs.iter().copied().collect();
        for node in self.graph.nodes.node_weights() {
            used.extend(node.inputs.iter().flatten().copied());
        }
        self.graph.constants.retain(|id, _| used.contains(id));
    }

    /// Adds a constant the importer made up (ones for Expand, and the like).
    pub(crate) fn add_constant(&mut self, name: String, value: Tensor) -> TensorId {
        self.graph.add_constant(name, value)
    }

    fn check_output(&self, name: &str, op: &Op, dims: &[usize]) -> Result<(), ImportError> {
        tensor::check_elements(|| format!("node `{name}` ({})", op.name()), dims, self.max_elements)
    }

    /// Adds `op` as node `name`; its outputs get the given ONNX names.
    pub(crate) fn emit(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<Option<TensorId>>,
        outputs: &[String],
    ) -> Result<Vec<TensorId>, ImportError> {
        // A node over constants only (a weight transposed or reshaped in the
        // file, say) is evaluated now by the reference evaluator, so the
        // graph carries its result as a weight rather than recomputing it.
        let consts: Option<Vec<Option<&Tensor>>> = inputs
            .iter()
            .map(|t| match t {
                Some(id) => self.graph.constants.get(id).map(Some),
                None => Some(None),
            })
            .collect();
        if let Some(consts) = consts.filter(|c| c.iter().any(Option::is_some)) {
            // Sized before evaluation allocates anything.
            let infos: Vec<Option<&crate::graph::TensorInfo>> =
                inputs.iter().map(|t| t.map(|t| self.graph.info(t))).collect();
            for (i, (_, shape)) in crate::infer::infer_node(name, &op, &infos, &consts)?.into_iter().enumerate() {
                self.check_output(name, &op, shape.dims())?;
                // The evaluator works in `f64`: sized before it allocates.
                let bytes = crate::memory::tensor_bytes(shape.dims(), crate::memory::EVAL_BYTES_PER_ELEMENT);
                self.budget.check(
                    || format!("evaluating node `{name}` ({}) output {i} of shape {shape}", op.name()),
                    &format!("{name}:{i}"),
                    bytes,
                )?;
            }
            let values = crate::eval::eval_node(name, &op, &consts)?;
            let refs: Vec<&Tensor> = values.iter().collect();
            self.charge_const(name, op.name(), outputs, &refs)?;
            let mut ids = Vec::new();
            for (i, value) in values.into_iter().enumerate() {
                let out = outputs.get(i).filter(|o| !o.is_empty()).cloned().unwrap_or_else(|| format!("{name}:{i}"));
                // Added lazily, like any other import-time value.
                self.values.insert(out.clone(), Value::Const(value));
                ids.push(self.tensor(&out)?);
            }
            return Ok(ids);
        }
        let op_name = op.name();
        let ids = self.graph.add_node_named(name, op, inputs, outputs)?;
        for &id in &ids {
            let dims = self.graph.info(id).shape.dims().to_vec();
            tensor::check_elements(|| format!("node `{name}` ({op_name})"), &dims, self.max_elements)?;
            // An executor holds the weights and at least this tensor.
            let info = self.graph.info(id);
            let bytes = crate::memory::tensor_bytes(&dims, info.dtype.size_bytes() as u64);
            self.budget.check(
                || format!("node `{name}` ({op_name}) output `{}` of shape {}", info.name, info.shape),
                &info.name,
                bytes,
            )?;
        }
        for (id, out) in ids.iter().zip(outputs) {
            if !out.is_empty() {
                self.values.insert(out.clone(), Value::Tensor(*id));
            }
        }
        Ok(ids)
    }
}

/// The value of a `Constant` node, from whichever attribute holds it.
fn constant_value(view: &NodeView<'_>) -> Result<Tensor, ImportError> {
    let a = &view.attrs;
    let n = &view.name;
    if let Some(t) = a.tensor("value", n)? {
        return tensor::tensor_from_proto(t).map_err(|e| match e {
            ImportError::Tensor { message, .. } => view.err(message),
            other => other,
        });
    }
    if let Some(f) = a.float("value_float", n)? {
        return Ok(Tensor::f32(Shape::scalar(), vec![f]));
    }
    if let Some(v) = a.floats("value_floats", n)? {
        return Ok(Tensor::f32(vec![v.len()], v));
    }
    if let Some(i) = a.int("value_int", n)? {
        return Ok(Tensor::i64(Shape::scalar(), vec![i]));
    }
    if let Some(v) = a.ints("value_ints", n)? {
        return Ok(Tensor::i64(vec![v.len()], v));
    }
    if a.has("sparse_value") || a.has("value_string") || a.has("value_strings") {
        return Err(view.err("sparse and string constants are not supported"));
    }
    Err(view.err("has no value attribute"))
}
