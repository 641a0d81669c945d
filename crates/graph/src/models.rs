//! Reference models written with the [`GraphBuilder`], with seeded weights.
//!
//! These give tests, benchmarks and the scheduler realistic graphs without
//! model files. Weights are random but scaled so activations stay O(1) all
//! the way to the logits: He-scaled convolutions, batch norms with positive
//! variances near 1 and small means and shifts, and a small scale on the
//! last batch norm of each residual branch so the residual sums do not double
//! the variance block after block. Different seeds give different weights of
//! the same architecture: the "tenants with different weights" case.

use crate::builder::GraphBuilder;
use crate::dtype::DType;
use crate::error::GraphError;
use crate::graph::{Graph, TensorId};

/// ResNet-18 (He et al. 2015) for `[batch, 3, image, image]` `f32` input named
/// `input`, producing `[batch, classes]` logits named by the final Gemm.
///
/// conv 7×7/2 (64) + BN + ReLU, max pool 3×3/2, four stages of two
/// BasicBlocks (64, 128, 256, 512 channels; the first block of stages 2–4
/// strides by 2 and takes a 1×1/2 conv + BN shortcut), global average pool,
/// flatten, fully connected.
pub fn resnet18(seed: u64, batch: usize, image: usize, classes: usize) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::with_seed("resnet18", seed);
    let x = b.input("input", DType::F32, &[batch, 3, image, image]);
    let mut h = conv_bn(&mut b, x, 3, 64, 7, 2, 3, 1.0)?;
    h = b.relu(h)?;
    h = b.max_pool(h, 3, 2, 1)?;
    let mut channels = 64;
    for (stage, &width) in [64, 128, 256, 512].iter().enumerate() {
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            h = basic_block(&mut b, h, channels, width, stride)?;
            channels = width;
        }
    }
    h = b.global_avg_pool(h)?;
    h = b.flatten(h, 1)?;
    let w = b.random_constant("fc_w", &[classes, channels], (1.0 / channels as f64).sqrt());
    let bias = b.random_constant("fc_b", &[classes], 0.01);
    let logits = b.gemm(h, w, Some(bias), true)?;
    b.output(logits);
    Ok(b.finish())
}

/// Two 3×3 conv + BN layers with a ReLU between, added to the (possibly
/// projected) input, then ReLU.
fn basic_block(
    b: &mut GraphBuilder,
    x: TensorId,
    cin: usize,
    cout: usize,
    stride: usize,
) -> Result<TensorId, GraphError> {
    let mut h = conv_bn(b, x, cin, cout, 3, stride, 1, 1.0)?;
    h = b.relu(h)?;
    // A small scale on the branch's last BN keeps the residual sum's variance
    // near the input's, as zero-init-residual training schemes do.
    h = conv_bn(b, h, cout, cout, 3, 1, 1, 0.3)?;
    let shortcut = if stride != 1 || cin != cout { conv_bn(b, x, cin, cout, 1, stride, 0, 1.0)? } else { x };
    let sum = b.add(h, shortcut)?;
    b.relu(sum)
}

/// A bias-free convolution followed by inference-form batch norm with random
/// statistics; `gamma` scales the BN's multiplier.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    b: &mut GraphBuilder,
    x: TensorId,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    gamma: f64,
) -> Result<TensorId, GraphError> {
    let w = b.he_weight("conv_w", &[cout, cin, k, k], cin * k * k);
    let h = b.conv2d(x, w, None, stride, pad, 1)?;
    let scale = b.uniform_constant("bn_scale", &[cout], 0.8 * gamma, 1.2 * gamma);
    let shift = b.uniform_constant("bn_bias", &[cout], -0.1, 0.1);
    let mean = b.uniform_constant("bn_mean", &[cout], -0.1, 0.1);
    let var = b.uniform_constant("bn_var", &[cout], 0.5, 1.5);
    b.batch_norm(h, scale, shift, mean, var, 1e-5)
}
