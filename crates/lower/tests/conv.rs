//! Conv (implicit GEMM and depthwise), ConvTranspose and BatchNormalization
//! folding against the reference evaluator, at ragged sizes, strides,
//! padding, dilation, groups and 1-D; plus the thread-instructions per FMA of
//! a ResNet-50-sized 3×3 convolution.

mod common;

use common::{check, check_with, node, Rng};
use weft_graph::{BinaryOp, DType, Graph, Op, Padding, Tensor, UnaryOp, Window};
use weft_interp::Interpreter;
use weft_kir::{ArgValue, HostBuffer};
use weft_lower::{lower, LowerError, LowerOptions};

fn window(kernel: &[usize], strides: &[usize], dilations: &[usize], pads: &[usize]) -> Window {
    Window {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        padding: Padding::Explicit(pads.to_vec()),
    }
}

struct ConvCase {
    x: Vec<usize>,
    m: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    groups: usize,
    bias: bool,
    /// i32 tensors (the integer convolution) rather than f32.
    int: bool,
}

impl ConvCase {
    fn new(x: &[usize], m: usize, kernel: &[usize]) -> ConvCase {
        let n = kernel.len();
        ConvCase {
            x: x.to_vec(),
            m,
            kernel: kernel.to_vec(),
            strides: vec![1; n],
            dilations: vec![1; n],
            pads: vec![0; 2 * n],
            groups: 1,
            bias: true,
            int: false,
        }
    }
    fn int(mut self) -> Self {
        self.int = true;
        self
    }
    /// Random values in [-1, 1], or integers in [-9, 9] for an int case.
    fn values(&self, rng: &mut Rng, dims: &[usize]) -> Tensor {
        let t = rng.f32(dims, -1.0, 1.0);
        if !self.int {
            return t;
        }
        Tensor::i32(dims.to_vec(), t.to_f64().iter().map(|v| (v * 9.0).round() as i32).collect())
    }
    fn stride(mut self, s: usize) -> Self {
        self.strides = vec![s; self.kernel.len()];
        self
    }
    fn dilation(mut self, d: usize) -> Self {
        self.dilations = vec![d; self.kernel.len()];
        self
    }
    fn pad(mut self, p: usize) -> Self {
        self.pads = vec![p; 2 * self.kernel.len()];
        self
    }
    fn pads(mut self, p: &[usize]) -> Self {
        self.pads = p.to_vec();
        self
    }
    fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }

    fn graph(&self, rng: &mut Rng) -> Graph {
        let mut g = Graph::new("conv");
        let x = g.add_input("x", if self.int { DType::I32 } else { DType::F32 }, self.x.clone());
        let mut wd = vec![self.m, self.x[1] / self.groups];
        wd.extend(&self.kernel);
        let w = g.add_constant("w", self.values(rng, &wd));
        let mut inputs = vec![Some(x), Some(w)];
        if self.bias {
            inputs.push(Some(g.add_constant("bias", self.values(rng, &[self.m]))));
        }
        let op =
            Op::Conv { window: window(&self.kernel, &self.strides, &self.dilations, &self.pads), groups: self.groups };
        let y = g.add_node("conv", op, inputs).unwrap()[0];
        g.add_output(y);
        g
    }

    fn check(&self) {
        let mut rng = Rng::new(self.x.iter().product::<usize>() as u64 + self.m as u64);
        let g = self.graph(&mut rng);
        let x = self.values(&mut rng, &self.x);
        let p = check(&g, &[x]);
        assert_eq!(p.num_kernels(), 1);
    }
}

#[test]
fn conv_3x3_padding_strides_dilation() {
    ConvCase::new(&[1, 3, 9, 9], 8, &[3, 3]).pad(1).check();
    ConvCase::new(&[2, 5, 11, 13], 7, &[3, 3]).pad(1).stride(2).check();
    ConvCase::new(&[1, 4, 12, 10], 6, &[3, 3]).pad(2).dilation(2).check();
    ConvCase::new(&[1, 3, 10, 9], 5, &[5, 3]).pads(&[2, 0, 1, 1]).no_bias().check();
    // Unpadded: no spatial guards at all.
    ConvCase::new(&[1, 6, 8, 8], 9, &[3, 3]).check();
    // ResNet stem geometry, small: 7x7 stride 2 pad 3.
    ConvCase::new(&[1, 3, 23, 23], 16, &[7, 7]).pad(3).stride(2).check();
}

#[test]
fn conv_1x1_and_groups() {
    ConvCase::new(&[1, 20, 7, 7], 33, &[1, 1]).check();
    ConvCase::new(&[2, 16, 9, 9], 8, &[1, 1]).stride(2).no_bias().check();
    ConvCase::new(&[1, 4, 6, 6], 6, &[1, 1]).pad(1).check();
    ConvCase::new(&[1, 8, 9, 7], 6, &[3, 3]).pad(1).groups(2).check();
    ConvCase::new(&[2, 12, 8, 8], 12, &[3, 3]).pad(1).stride(2).groups(3).check();
}

#[test]
fn integer_conv_is_exact() {
    // Implicit GEMM (grouped, strided, padded) and depthwise, on i32.
    ConvCase::new(&[1, 4, 9, 9], 6, &[3, 3]).pad(1).int().check();
    ConvCase::new(&[2, 6, 8, 7], 4, &[3, 3]).pad(1).stride(2).groups(2).int().check();
    ConvCase::new(&[1, 5, 8, 8], 5, &[3, 3]).pad(1).groups(5).no_bias().int().check();
}

#[test]
fn depthwise_conv() {
    ConvCase::new(&[1, 6, 9, 9], 6, &[3, 3]).pad(1).groups(6).check();
    ConvCase::new(&[2, 5, 12, 11], 5, &[3, 3]).pad(1).stride(2).groups(5).check();
    ConvCase::new(&[1, 4, 10, 10], 4, &[5, 5]).pad(4).dilation(2).groups(4).no_bias().check();
    // Depth multiplier 2.
    ConvCase::new(&[1, 3, 8, 8], 6, &[3, 3]).pad(1).groups(3).check();
}

#[test]
fn conv_1d_and_same_padding() {
    ConvCase::new(&[2, 4, 31], 6, &[5]).pad(2).stride(2).check();
    ConvCase::new(&[1, 3, 20], 4, &[3]).dilation(3).check();
    let mut rng = Rng::new(5);
    let mut g = Graph::new("same");
    let x = g.add_input("x", DType::F32, vec![1, 3, 10, 11]);
    let w = g.add_constant("w", rng.f32(&[4, 3, 3, 3], -1.0, 1.0));
    let win = Window { kernel: vec![3, 3], strides: vec![2, 2], dilations: vec![], padding: Padding::SameUpper };
    let y = g.add_node("conv", Op::Conv { window: win, groups: 1 }, vec![Some(x), Some(w)]).unwrap()[0];
    g.add_output(y);
    check(&g, &[rng.f32(&[1, 3, 10, 11], -1.0, 1.0)]);
}

#[test]
fn conv_3d_is_refused_by_name() {
    let mut rng = Rng::new(1);
    let mut g = Graph::new("c3d");
    let x = g.add_input("x", DType::F32, vec![1, 2, 4, 4, 4]);
    let w = g.add_constant("w", rng.f32(&[2, 2, 3, 3, 3], -1.0, 1.0));
    let win = window(&[3, 3, 3], &[], &[], &[]);
    let y = g.add_node("conv3d", Op::Conv { window: win, groups: 1 }, vec![Some(x), Some(w)]).unwrap()[0];
    g.add_output(y);
    match lower(&g, &LowerOptions::default()) {
        Err(LowerError::Unsupported { reason, .. }) => assert!(reason.contains("conv3d"), "{reason}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn conv_transpose_case(
    x: &[usize],
    m_per_group: usize,
    kernel: &[usize],
    s: usize,
    pad: usize,
    op: usize,
    groups: usize,
) {
    let mut rng = Rng::new(x.iter().sum::<usize>() as u64 * 7 + s as u64);
    let mut g = Graph::new("convt");
    let xt = g.add_input("x", DType::F32, x.to_vec());
    let mut wd = vec![x[1], m_per_group];
    wd.extend(kernel);
    let w = g.add_constant("w", rng.f32(&wd, -1.0, 1.0));
    let bias = g.add_constant("bias", rng.f32(&[m_per_group * groups], -1.0, 1.0));
    let n = kernel.len();
    let win = window(kernel, &vec![s; n], &[], &vec![pad; 2 * n]);
    let op = Op::ConvTranspose { window: win, groups, output_padding: vec![op; n] };
    let y = g.add_node("convt", op, vec![Some(xt), Some(w), Some(bias)]).unwrap()[0];
    g.add_output(y);
    let p = check(&g, &[rng.f32(x, -1.0, 1.0)]);
    assert_eq!(p.num_kernels(), 1);
}

#[test]
fn conv_transpose() {
    conv_transpose_case(&[1, 4, 5, 6], 3, &[3, 3], 2, 1, 1, 1);
    conv_transpose_case(&[2, 4, 4, 4], 2, &[4, 4], 2, 1, 0, 2);
    conv_transpose_case(&[1, 3, 7, 5], 5, &[3, 3], 1, 0, 0, 1);
    conv_transpose_case(&[1, 2, 9], 3, &[5], 3, 2, 2, 1);
}

/// Conv → BatchNormalization → Relu (→ Add of a residual).
fn conv_bn_graph(rng: &mut Rng, residual: bool) -> (Graph, Vec<Tensor>) {
    let (c, m, h) = (6, 10, 9);
    let mut g = Graph::new("conv_bn");
    let x = g.add_input("x", DType::F32, vec![1, c, h, h]);
    let mut inputs = vec![rng.f32(&[1, c, h, h], -1.0, 1.0)];
    let w = g.add_constant("w", rng.f32(&[m, c, 3, 3], -1.0, 1.0));
    let op = Op::Conv { window: window(&[3, 3], &[], &[], &[1, 1, 1, 1]), groups: 1 };
    let y = g.add_node("conv", op, vec![Some(x), Some(w)]).unwrap()[0];
    let scale = g.add_constant("gamma", rng.f32(&[m], 0.5, 1.5));
    let beta = g.add_constant("beta", rng.f32(&[m], -0.5, 0.5));
    let mean = g.add_constant("mean", rng.f32(&[m], -0.5, 0.5));
    let var = g.add_constant("var", rng.f32(&[m], 0.5, 2.0));
    let bn = node(&mut g, "bn", Op::BatchNormalization { epsilon: 1e-5 }, &[y, scale, beta, mean, var]);
    let mut out = node(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[bn]);
    if residual {
        let skip = g.add_input("skip", DType::F32, vec![1, m, h, h]);
        inputs.push(rng.f32(&[1, m, h, h], -1.0, 1.0));
        out = node(&mut g, "add", Op::Binary(BinaryOp::Add), &[out, skip]);
    }
    g.add_output(out);
    (g, inputs)
}

#[test]
fn conv_bn_relu_folds_into_one_kernel() {
    let mut rng = Rng::new(11);
    let (g, inputs) = conv_bn_graph(&mut rng, false);
    let p = check(&g, &inputs);
    assert_eq!(p.num_kernels(), 1, "Conv→BN→Relu must be one kernel");
    assert_eq!(p.steps[0].nodes, vec!["conv", "bn", "relu"]);
    let (g, inputs) = conv_bn_graph(&mut rng, true);
    let p = check(&g, &inputs);
    assert_eq!(p.num_kernels(), 1, "Conv→BN→Relu→Add must be one kernel");
    assert_eq!(p.steps[0].nodes, vec!["conv", "bn", "relu", "add"]);
}

#[test]
fn bn_is_not_folded_when_disabled() {
    let mut rng = Rng::new(12);
    let (g, inputs) = conv_bn_graph(&mut rng, false);
    let opts = LowerOptions { fold_batchnorm: false, ..LowerOptions::default() };
    let p = check_with(&g, &inputs, 1e-5, &opts);
    assert!(p.num_kernels() >= 2);
}

/// Thread-instructions the interpreter executes per FMA of a 3×3 conv with
/// `c` input and `m` output channels on an `hw × hw` image (batch 1, pad 1).
fn insts_per_fma(c: usize, m: usize, hw: usize) -> f64 {
    let mut rng = Rng::new(3);
    let case = ConvCase::new(&[1, c, hw, hw], m, &[3, 3]).pad(1);
    let g = case.graph(&mut rng);
    let p = lower(&g, &LowerOptions::default()).unwrap();
    assert_eq!(p.num_kernels(), 1);
    let step = &p.steps[0];
    let mut args: Vec<ArgValue> = step
        .args
        .iter()
        .map(|&b| {
            let info = &p.buffers[b];
            let buf = p.weights.get(&b).cloned().unwrap_or_else(|| {
                let v: Vec<f32> = (0..info.len()).map(|i| (i % 7) as f32 * 0.1).collect();
                HostBuffer::from_f32(&v)
            });
            ArgValue::Buffer(buf)
        })
        .collect();
    let stats = Interpreter::new().run(&step.kernel, &mut args).unwrap();
    let fmas = (m * hw * hw * c * 9) as f64;
    stats.thread_insts as f64 / fmas
}

#[test]
fn conv_inner_loop_is_lean() {
    // Same channel counts as ResNet-50's first stage, smaller image.
    let r = insts_per_fma(64, 64, 16);
    eprintln!("3x3 conv C=64 M=64 16x16: {r:.3} thread-instructions per FMA");
    assert!(r < 2.6, "{r} thread-instructions per FMA");
}

/// ResNet-50's 3×3 conv at 56×56 (C = M = 64); slow on the interpreter, so
/// run with `--ignored` to measure.
#[test]
#[ignore]
fn resnet50_conv_insts_per_fma() {
    let r = insts_per_fma(64, 64, 56);
    eprintln!("3x3 conv C=64 M=64 56x56: {r:.3} thread-instructions per FMA");
    assert!(r < 2.6);
}
