//! The operators of a model graph, with their attributes normalised.
//!
//! Importers (ONNX, the builder) produce these; everything downstream (shape
//! inference, the reference evaluator, lowering) matches on them. Attributes
//! that ONNX passes as constant *inputs* in newer opsets (Clip's bounds,
//! Reshape's shape, Split's sizes, Squeeze/Unsqueeze axes, Resize's scales)
//! are folded into attributes at import, so an op's semantics never depend on
//! which opset a model used. Ops that compute shapes at run time in ONNX
//! (`Shape`, `ConstantOfShape`, `Range`, `Expand` of constants) are folded at
//! import where static and never reach the graph.

use crate::dtype::DType;

/// Elementwise single-input operators.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Erf,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Ceil,
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu {
        alpha: f32,
    },
    /// `min(max(x, min), max)`.
    Clip {
        min: f32,
        max: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x * max(0, min(1, x / 6 + 1 / 2))`.
    HardSwish,
    /// GELU with the exact erf form: `0.5 x (1 + erf(x / √2))`.
    Gelu,
    /// Logical not; `bool` only.
    Not,
    /// `-1`, `0` or `1` by the sign of `x` (NaN stays NaN).
    Sign,
    /// `ln(1 + exp(x))`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x < 0 ? alpha * (exp(x) - 1) : x`.
    Elu {
        alpha: f32,
    },
    /// `gamma * (x <= 0 ? alpha * (exp(x) - 1) : x)`.
    Selu {
        alpha: f32,
        gamma: f32,
    },
    /// `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`.
    Celu {
        alpha: f32,
    },
    /// `x > alpha ? x : 0`.
    ThresholdedRelu {
        alpha: f32,
    },
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `(exp(x) - exp(-x)) / 2`.
    Sinh,
    /// `(exp(x) + exp(-x)) / 2`.
    Cosh,
    /// `ln(x + sqrt(x² + 1))`.
    Asinh,
    /// `ln(x + sqrt(x² - 1))`.
    Acosh,
    /// `ln((1 + x) / (1 - x)) / 2`.
    Atanh,
    Sin,
    Cos,
    /// Bitwise complement; integers only.
    BitwiseNot,
    /// `sin(x) / cos(x)`.
    Tan,
    /// `atan(x / √((1 − x)(1 + x)))`.
    Asin,
    /// `2 atan(√((1 − x) / (1 + x)))`.
    Acos,
    Atan,
}

/// Elementwise two-input operators with numpy-style broadcasting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    /// Logical, on `bool`.
    And,
    Or,
    Xor,
    /// Remainder. `fmod`: C `fmod` (the dividend's sign); otherwise the
    /// divisor's sign, as numpy's `mod` (a float zero takes the divisor's
    /// sign too).
    /// An integer divisor of zero counts as one, as in [`BinaryOp::Div`].
    Mod {
        fmod: bool,
    },
    /// Bitwise, on integers of one type.
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    /// `x << y` (`left`) or `x >> y` on integers of one type, as numpy
    /// shifts: a left shift wraps, a right shift of a signed type is
    /// arithmetic, and an amount outside `0..bits` gives 0 (−1 for a right
    /// shift of a negative signed value).
    BitShift {
        left: bool,
    },
}

impl BinaryOp {
    /// Whether the result is `bool` whatever the inputs' type.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal | BinaryOp::Less | BinaryOp::Greater | BinaryOp::LessOrEqual | BinaryOp::GreaterOrEqual
        )
    }

    /// Whether the op takes and gives `bool`.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }

    /// Whether the op takes and gives integers only, bit by bit.
    pub fn is_bitwise(self) -> bool {
        matches!(self, BinaryOp::BitwiseAnd | BinaryOp::BitwiseOr | BinaryOp::BitwiseXor | BinaryOp::BitShift { .. })
    }
}

/// How a scatter combines an update with the element it lands on (ONNX
/// `reduction`); several updates of one element apply in index order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScatterReduction {
    /// The update replaces the element (the last one wins).
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl ScatterReduction {
    /// The ONNX attribute value.
    pub fn name(self) -> &'static str {
        match self {
            ScatterReduction::None => "none",
            ScatterReduction::Add => "add",
            ScatterReduction::Mul => "mul",
            ScatterReduction::Max => "max",
            ScatterReduction::Min => "min",
        }
    }

    /// `current` combined with `update`.
    pub fn apply(self, current: f64, update: f64) -> f64 {
        match self {
            ScatterReduction::None => update,
            ScatterReduction::Add => current + update,
            ScatterReduction::Mul => current * update,
            ScatterReduction::Max => current.max(update),
            ScatterReduction::Min => current.min(update),
        }
    }
}

/// Padding of a spatial op, resolved against the input shape by shape inference.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Padding {
    /// `[begin_0, begin_1, …, end_0, end_1, …]` as in ONNX `pads`.
    Explicit(Vec<usize>),
    /// ONNX `auto_pad=SAME_UPPER` (extra padding at the end).
    SameUpper,
    /// ONNX `auto_pad=SAME_LOWER` (extra padding at the beginning).
    SameLower,
}

/// Attributes shared by convolutions and pooling over `N×C×spatial…` tensors.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Window {
    /// Spatial extent of the kernel (e.g. `[3, 3]`).
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub padding: Padding,
}

/// Interpolation mode of `Resize`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ResizeMode {
    Nearest,
    Linear,
    /// Keys' cubic convolution with parameter `coeff_a` over four taps per
    /// axis (edge pixels repeat past the borders); `exclude_outside` gives
    /// taps outside the input weight zero and renormalises the rest.
    Cubic {
        coeff_a: f32,
        exclude_outside: bool,
    },
}

/// How `Resize` maps output coordinates to input coordinates (ONNX
/// `coordinate_transformation_mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CoordinateTransform {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    /// Half-pixel centred on the input when the output length is rounded
    /// down from `scale · len`.
    HalfPixelSymmetric,
}

/// Rounding of `Resize` in nearest mode (ONNX `nearest_mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// One operator. Inputs and outputs are the node's tensors, in ONNX order.
#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    /// Inputs: X `[N, C, spatial…]`, W `[M, C/groups, k…]`, optional B `[M]`.
    Conv {
        window: Window,
        groups: usize,
    },
    /// Inputs: X, W `[C, M/groups, k…]`, optional B. `output_padding` per spatial dim.
    ConvTranspose {
        window: Window,
        groups: usize,
        output_padding: Vec<usize>,
    },
    /// Inputs: X, scale, bias, mean, var (inference form).
    BatchNormalization {
        epsilon: f32,
    },
    /// `alpha · op(A) · op(B) + beta · C`; inputs A, B, optional C.
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// numpy `matmul` with batch broadcasting.
    MatMul,
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// Elementwise sum of any number of inputs, broadcast.
    Sum,
    /// `cond ? x : y`, broadcast.
    Where,
    Cast {
        to: DType,
    },
    /// The input's bits read as `to`, a type of the same size.
    BitCast {
        to: DType,
    },
    Softmax {
        axis: i64,
    },
    /// Normalises over the dimensions from `axis` on; inputs X, scale, optional bias.
    LayerNormalization {
        axis: i64,
        epsilon: f32,
    },
    ReduceMean {
        axes: Vec<i64>,
        keepdims: bool,
    },
    ReduceSum {
        axes: Vec<i64>,
        keepdims: bool,
    },
    ReduceMax {
        axes: Vec<i64>,
        keepdims: bool,
    },
    ReduceMin {
        axes: Vec<i64>,
        keepdims: bool,
    },
    ReduceProd {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// `x - max - ln(sum(exp(x - max)))` along `axis`.
    LogSoftmax {
        axis: i64,
    },
    /// The `i64` index of the largest element along `axis`; ties go to the
    /// first (or, with `select_last_index`, the last) and NaN counts as
    /// larger than every number, as numpy's `argmax`.
    ArgMax {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// As [`Op::ArgMax`] for the smallest element (NaN counts as smaller
    /// than every number).
    ArgMin {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    MaxPool {
        window: Window,
        ceil_mode: bool,
    },
    /// MaxPool with its `Indices` output: each maximum's position in the
    /// whole input as an `i64` flat index (row-major, or with the spatial
    /// axes in column-major order when `column_major`: ONNX's
    /// `storage_order = 1`). The first maximum in window order wins; NaN is
    /// the largest value.
    MaxPoolWithIndices {
        window: Window,
        ceil_mode: bool,
        column_major: bool,
    },
    AveragePool {
        window: Window,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    GlobalAveragePool,
    GlobalMaxPool,
    /// Local response normalisation across channels.
    Lrn {
        size: usize,
        alpha: f32,
        beta: f32,
        bias: f32,
    },
    Concat {
        axis: i64,
    },
    /// Sizes along `axis`, one per output.
    Split {
        axis: i64,
        sizes: Vec<usize>,
    },
    /// The target shape with ONNX `0` (copy) and `-1` (infer) entries.
    Reshape {
        shape: Vec<i64>,
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Squeeze {
        axes: Vec<i64>,
    },
    Unsqueeze {
        axes: Vec<i64>,
    },
    /// Inputs: data, integer indices.
    Gather {
        axis: i64,
    },
    /// Inputs: data, integer indices of data's rank; output element `i`
    /// is `data` at `i` with its `axis` coordinate replaced by `indices[i]`.
    GatherElements {
        axis: i64,
    },
    /// Inputs: X; output scale per dimension (sizes are resolved to scales at import).
    Resize {
        scales: Vec<f32>,
        mode: ResizeMode,
        transform: CoordinateTransform,
        nearest: NearestMode,
    },
    /// Pads with a constant; `[begin…, end…]`.
    Pad {
        pads: Vec<usize>,
        value: f32,
    },
    /// Static slice with ONNX semantics: per listed axis `starts`/`ends` may be
    /// negative (counted from the end) and are clamped by shape inference; to
    /// slice down through index 0 with a negative step, `end` is `i64::MIN`.
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        axes: Vec<i64>,
        steps: Vec<i64>,
    },
    /// Passes its input through (Identity, Dropout in inference).
    Identity,
    /// Running sum along `axis`: output `i` sums the elements up to and
    /// including `i` (`exclusive`: excluding it; `reverse`: from the end).
    CumSum {
        axis: i64,
        exclusive: bool,
        reverse: bool,
    },
    /// Inputs: data, integer indices, updates (the indices' shape, of data's
    /// rank): data with update `i` combined into the element at `i`'s
    /// coordinates, its `axis` coordinate replaced by `indices[i]`.
    ScatterElements {
        axis: i64,
        reduction: ScatterReduction,
    },
    /// Inputs: data, integer indices `[…, K]`, updates `[…] ++ data[K..]`:
    /// each index tuple selects a slice of data that its update combines into.
    ScatterND {
        reduction: ScatterReduction,
    },
    /// Inputs: data, integer indices `[B…, …, K]`: the slices of data at the
    /// index tuples, the first `batch_dims` dimensions shared by both.
    GatherND {
        batch_dims: usize,
    },
    /// The `k` largest (or smallest) elements along `axis`, in that order,
    /// and their `i64` indices (two outputs). Equal elements go lower index
    /// first; NaN counts as larger than every number.
    TopK {
        axis: i64,
        k: usize,
        largest: bool,
    },
    /// As [`Op::CumSum`] with products (an empty product is 1).
    CumProd {
        axis: i64,
        exclusive: bool,
        reverse: bool,
    },
    /// The coordinates of the input's nonzero elements in row-major order,
    /// as `i64 [rank, count]`. How many there are depends on the data:
    /// `count` is bound before the graph is built, from a run of the graph
    /// up to this node's input on the same inputs
    /// ([`crate::onnx::import_data_dependent`]), so the program stays
    /// statically shaped.
    NonZero {
        count: usize,
    },
}

impl Op {
    /// The operator's ONNX-style name, for messages and `weft inspect`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Unary(u) => match u {
                UnaryOp::Relu => "Relu",
                UnaryOp::Sigmoid => "Sigmoid",
                UnaryOp::Tanh => "Tanh",
                UnaryOp::Exp => "Exp",
                UnaryOp::Log => "Log",
                UnaryOp::Sqrt => "Sqrt",
                UnaryOp::Erf => "Erf",
                UnaryOp::Neg => "Neg",
                UnaryOp::Abs => "Abs",
                UnaryOp::Reciprocal => "Reciprocal",
                UnaryOp::Floor => "Floor",
                UnaryOp::Ceil => "Ceil",
                UnaryOp::LeakyRelu { .. } => "LeakyRelu",
                UnaryOp::Clip { .. } => "Clip",
                UnaryOp::HardSigmoid { .. } => "HardSigmoid",
                UnaryOp::HardSwish => "HardSwish",
                UnaryOp::Gelu => "Gelu",
                UnaryOp::Not => "Not",
                UnaryOp::Sign => "Sign",
                UnaryOp::Softplus => "Softplus",
                UnaryOp::Softsign => "Softsign",
                UnaryOp::Elu { .. } => "Elu",
                UnaryOp::Selu { .. } => "Selu",
                UnaryOp::Celu { .. } => "Celu",
                UnaryOp::ThresholdedRelu { .. } => "ThresholdedRelu",
                UnaryOp::Mish => "Mish",
                UnaryOp::Sinh => "Sinh",
                UnaryOp::Cosh => "Cosh",
                UnaryOp::Asinh => "Asinh",
                UnaryOp::Acosh => "Acosh",
                UnaryOp::Atanh => "Atanh",
                UnaryOp::Sin => "Sin",
                UnaryOp::Cos => "Cos",
                UnaryOp::BitwiseNot => "BitwiseNot",
                UnaryOp::Tan => "Tan",
                UnaryOp::Asin => "Asin",
                UnaryOp::Acos => "Acos",
                UnaryOp::Atan => "Atan",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "Add",
                BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul",
                BinaryOp::Div => "Div",
                BinaryOp::Pow => "Pow",
                BinaryOp::Max => "Max",
                BinaryOp::Min => "Min",
                BinaryOp::Equal => "Equal",
                BinaryOp::Less => "Less",
                BinaryOp::Greater => "Greater",
                BinaryOp::LessOrEqual => "LessOrEqual",
                BinaryOp::GreaterOrEqual => "GreaterOrEqual",
                BinaryOp::And => "And",
                BinaryOp::Or => "Or",
                BinaryOp::Xor => "Xor",
                BinaryOp::Mod { .. } => "Mod",
                BinaryOp::BitwiseAnd => "BitwiseAnd",
                BinaryOp::BitwiseOr => "BitwiseOr",
                BinaryOp::BitwiseXor => "BitwiseXor",
                BinaryOp::BitShift { .. } => "BitShift",
            },
            Op::Sum => "Sum",
            Op::Where => "Where",
            Op::Cast { .. } => "Cast",
            Op::BitCast { .. } => "BitCast",
            Op::Softmax { .. } => "Softmax",
            Op::LayerNormalization { .. } => "LayerNormalization",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::ReduceSum { .. } => "ReduceSum",
            Op::ReduceMax { .. } => "ReduceMax",
            Op::ReduceMin { .. } => "ReduceMin",
            Op::ReduceProd { .. } => "ReduceProd",
            Op::LogSoftmax { .. } => "LogSoftmax",
            Op::ArgMax { .. } => "ArgMax",
            Op::ArgMin { .. } => "ArgMin",
            Op::MaxPool { .. } => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Lrn { .. } => "LRN",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Transpose { .. } => "Transpose",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::Resize { .. } => "Resize",
            Op::Pad { .. } => "Pad",
            Op::Slice { .. } => "Slice",
            Op::Identity => "Identity",
            Op::CumSum { .. } => "CumSum",
            Op::ScatterElements { .. } => "ScatterElements",
            Op::ScatterND { .. } => "ScatterND",
            Op::TopK { .. } => "TopK",
            Op::GatherND { .. } => "GatherND",
            Op::CumProd { .. } => "CumProd",
            Op::NonZero { .. } => "NonZero",
            Op::MaxPoolWithIndices { .. } => "MaxPool",
        }
    }
}
