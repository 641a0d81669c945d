//! A builder for writing models in Rust, and seeded weights for them.
//!
//! [`GraphBuilder`] wraps a [`Graph`] with one method per common layer. Every
//! method adds a node through [`Graph::add_node`], so shape inference checks
//! it on the spot and a mistake comes back as a [`GraphError`] naming the
//! generated node (`conv_3`, `relu_7`, …) instead of surfacing at lowering.
//! Node and tensor names are generated from the layer kind and a counter so
//! they are unique and readable in `weft inspect`.
//!
//! Weights come from [`SplitMix64`], a tiny generator whose stream is fixed
//! forever, so a model built from a seed is the same model on every machine
//! and in every version; different seeds give different tenants' weights.

use crate::dtype::DType;
use crate::error::GraphError;
use crate::graph::{Graph, TensorId};
use crate::op::{BinaryOp, Op, Padding, UnaryOp, Window};
use crate::tensor::{Shape, Tensor};

/// Seeded weights and test inputs: SplitMix64 (from `rand_xoshiro`), whose
/// stream is fixed by its definition, so a seed means the same values on
/// every machine and every version.
#[derive(Clone, Debug)]
pub struct SplitMix64(rand_xoshiro::SplitMix64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        use rand_xoshiro::rand_core::SeedableRng;
        SplitMix64(rand_xoshiro::SplitMix64::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        use rand_xoshiro::rand_core::Rng;
        self.0.next_u64()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// An `f32` tensor of shape `dims` with values uniform in `[lo, hi)`.
    pub fn tensor(&mut self, dims: &[usize], lo: f64, hi: f64) -> Tensor {
        let n = dims.iter().product();
        Tensor::f32(dims, (0..n).map(|_| self.uniform(lo, hi) as f32).collect())
    }
}

/// Builds a [`Graph`] layer by layer; see the module docs.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    rng: SplitMix64,
    counter: usize,
}

type Built = Result<TensorId, GraphError>;

impl GraphBuilder {
    /// A builder whose weight generator starts from seed 0.
    pub fn new(name: impl Into<String>) -> GraphBuilder {
        GraphBuilder::with_seed(name, 0)
    }

    /// A builder whose random weights come from `seed`.
    pub fn with_seed(name: impl Into<String>, seed: u64) -> GraphBuilder {
        GraphBuilder { graph: Graph::new(name), rng: SplitMix64::new(seed), counter: 0 }
    }

    /// The graph so far.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The static shape of a tensor built so far.
    pub fn shape(&self, t: TensorId) -> &Shape {
        &self.graph.info(t).shape
    }

    /// The weight generator, for weights the helpers below do not cover.
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    fn fresh(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}_{}", self.counter)
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: impl Into<String>, dtype: DType, dims: &[usize]) -> TensorId {
        self.graph.add_input(name, dtype, dims)
    }

    /// Adds a constant; `name` is made unique with a counter.
    pub fn constant(&mut self, name: &str, value: Tensor) -> TensorId {
        let name = self.fresh(name);
        self.graph.add_constant(name, value)
    }

    /// An `f32` constant uniform in `[-bound, bound)`.
    pub fn random_constant(&mut self, name: &str, dims: &[usize], bound: f64) -> TensorId {
        let value = self.rng.tensor(dims, -bound, bound);
        self.constant(name, value)
    }

    /// An `f32` constant uniform in `[lo, hi)`.
    pub fn uniform_constant(&mut self, name: &str, dims: &[usize], lo: f64, hi: f64) -> TensorId {
        let value = self.rng.tensor(dims, lo, hi);
        self.constant(name, value)
    }

    /// A weight of shape `dims` (`[out, in, k…]` or `[in, out]`) with He
    /// scaling for a fan-in of `fan_in`: uniform with variance `2 / fan_in`,
    /// so ReLU networks keep activations O(1) layer after layer.
    pub fn he_weight(&mut self, name: &str, dims: &[usize], fan_in: usize) -> TensorId {
        let bound = (6.0 / fan_in.max(1) as f64).sqrt();
        self.random_constant(name, dims, bound)
    }

    /// Adds any node with a generated name `<kind>_<n>`; its outputs are named
    /// after the node.
    pub fn node(&mut self, kind: &str, op: Op, inputs: &[Option<TensorId>]) -> Result<Vec<TensorId>, GraphError> {
        let name = self.fresh(kind);
        self.graph.add_node_named(name.clone(), op, inputs.to_vec(), &[name])
    }

    /// Adds a single-output node over present inputs.
    pub fn op(&mut self, kind: &str, op: Op, inputs: &[TensorId]) -> Built {
        let ins: Vec<Option<TensorId>> = inputs.iter().map(|&t| Some(t)).collect();
        let outs = self.node(kind, op, &ins)?;
        Ok(outs[0])
    }

    /// A convolution with an explicit [`Window`].
    pub fn conv(&mut self, x: TensorId, w: TensorId, bias: Option<TensorId>, window: Window, groups: usize) -> Built {
        let outs = self.node("conv", Op::Conv { window, groups }, &[Some(x), Some(w), bias])?;
        Ok(outs[0])
    }

    /// A 2-D convolution with square stride and symmetric padding; the
    /// kernel size comes from `w`.
    pub fn conv2d(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> Built {
        let kernel = self.shape(w).dims().get(2..).map(<[usize]>::to_vec).unwrap_or_default();
        let window = Window {
            kernel,
            strides: vec![stride; 2],
            dilations: vec![1; 2],
            padding: Padding::Explicit(vec![pad; 4]),
        };
        self.conv(x, w, bias, window, groups)
    }

    /// Inference-form batch normalisation.
    pub fn batch_norm(
        &mut self,
        x: TensorId,
        scale: TensorId,
        bias: TensorId,
        mean: TensorId,
        var: TensorId,
        epsilon: f32,
    ) -> Built {
        self.op("bn", Op::BatchNormalization { epsilon }, &[x, scale, bias, mean, var])
    }

    pub fn unary(&mut self, x: TensorId, u: UnaryOp) -> Built {
        let op = Op::Unary(u);
        let kind = op.name().to_ascii_lowercase();
        self.op(&kind, op, &[x])
    }

    pub fn relu(&mut self, x: TensorId) -> Built {
        self.unary(x, UnaryOp::Relu)
    }

    pub fn binary(&mut self, a: TensorId, b: TensorId, op: BinaryOp) -> Built {
        let op = Op::Binary(op);
        let kind = op.name().to_ascii_lowercase();
        self.op(&kind, op, &[a, b])
    }

    pub fn add(&mut self, a: TensorId, b: TensorId) -> Built {
        self.binary(a, b, BinaryOp::Add)
    }

    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Built {
        self.binary(a, b, BinaryOp::Mul)
    }

    fn window2d(kernel: usize, stride: usize, pad: usize) -> Window {
        Window {
            kernel: vec![kernel; 2],
            strides: vec![stride; 2],
            dilations: vec![1; 2],
            padding: Padding::Explicit(vec![pad; 4]),
        }
    }

    /// 2-D max pooling with a square window.
    pub fn max_pool(&mut self, x: TensorId, kernel: usize, stride: usize, pad: usize) -> Built {
        self.op("maxpool", Op::MaxPool { window: Self::window2d(kernel, stride, pad), ceil_mode: false }, &[x])
    }

    /// 2-D average pooling with a square window (padding excluded from the count).
    pub fn avg_pool(&mut self, x: TensorId, kernel: usize, stride: usize, pad: usize) -> Built {
        let op =
            Op::AveragePool { window: Self::window2d(kernel, stride, pad), ceil_mode: false, count_include_pad: false };
        self.op("avgpool", op, &[x])
    }

    pub fn global_avg_pool(&mut self, x: TensorId) -> Built {
        self.op("gap", Op::GlobalAveragePool, &[x])
    }

    pub fn flatten(&mut self, x: TensorId, axis: i64) -> Built {
        self.op("flatten", Op::Flatten { axis }, &[x])
    }

    /// `a · op(b) + c` (ONNX Gemm with `alpha = beta = 1`).
    pub fn gemm(&mut self, a: TensorId, b: TensorId, c: Option<TensorId>, trans_b: bool) -> Built {
        let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b };
        let outs = self.node("gemm", op, &[Some(a), Some(b), c])?;
        Ok(outs[0])
    }

    pub fn matmul(&mut self, a: TensorId, b: TensorId) -> Built {
        self.op("matmul", Op::MatMul, &[a, b])
    }

    pub fn softmax(&mut self, x: TensorId, axis: i64) -> Built {
        self.op("softmax", Op::Softmax { axis }, &[x])
    }

    pub fn layer_norm(
        &mut self,
        x: TensorId,
        scale: TensorId,
        bias: Option<TensorId>,
        axis: i64,
        epsilon: f32,
    ) -> Built {
        let outs = self.node("layernorm", Op::LayerNormalization { axis, epsilon }, &[Some(x), Some(scale), bias])?;
        Ok(outs[0])
    }

    pub fn reshape(&mut self, x: TensorId, shape: &[i64]) -> Built {
        self.op("reshape", Op::Reshape { shape: shape.to_vec(), allow_zero: false }, &[x])
    }

    pub fn transpose(&mut self, x: TensorId, perm: &[usize]) -> Built {
        self.op("transpose", Op::Transpose { perm: perm.to_vec() }, &[x])
    }

    pub fn concat(&mut self, xs: &[TensorId], axis: i64) -> Built {
        self.op("concat", Op::Concat { axis }, xs)
    }

    /// Marks `t` as a graph output.
    pub fn output(&mut self, t: TensorId) {
        self.graph.add_output(t);
    }

    /// The finished graph.
    pub fn finish(self) -> Graph {
        self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_matches_the_kernels_stream() {
        // First SplitMix64 output for seed 0, a published test vector.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn builder_reports_the_generated_node() {
        let mut b = GraphBuilder::new("m");
        let x = b.input("x", DType::F32, &[1, 3, 8, 8]);
        let w = b.he_weight("w", &[4, 5, 3, 3], 45);
        let e = b.conv2d(x, w, None, 1, 1, 1).unwrap_err().to_string();
        assert!(e.contains("conv_2") && e.contains("expected W.shape[1] = 3"), "{e}");
    }
}
