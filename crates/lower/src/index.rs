//! Index math shared by the op templates: linear index → coordinates,
//! numpy broadcasting, strided/affine index composition, and the grid-stride
//! loop every one-thread-per-element kernel uses.
//!
//! Everything here emits `i32` KIR arithmetic over *static* dims, shaped so
//! that the access-range analysis (`weft_kir::analysis::access_ranges`) can
//! prove the resulting indices in bounds without a relational fact:
//!
//! - a coordinate is `(i / stride) % dim` (the outermost one just
//!   `i / stride`), so once `i` is known to lie in `[0, numel - 1]` every
//!   coordinate lies in `[0, dim - 1]` by interval arithmetic alone;
//! - a composed index is a plain sum of `coord * stride` terms, each in
//!   `[0, (dim - 1) * stride]`, whose sum is at most `len - 1` of the buffer
//!   being indexed — exactly when the strides describe that buffer.
//!
//! Folding two terms into one constant offset (`base + Σ …`) would lose that
//! property for negative steps, so [`affine_index`] keeps one term per axis.
//!
//! Indices are `i32`: [`check_numel`] refuses tensors past [`MAX_ELEMS`], which
//! leaves headroom for the grid-stride increment so no index ever wraps.

use weft_kir::{Axis, KernelBuilder, LaunchShape, Value};

use crate::error::LowerError;

/// Threads per block of the one-thread-per-element kernels.
pub const THREADS: u32 = 256;

/// Most blocks an elementwise launch uses; larger tensors loop (grid-stride).
/// 4096 × 256 threads fills any current GPU several times over.
pub const MAX_BLOCKS: u32 = 4096;

/// Largest tensor (in elements) the `i32` index math handles: `2^30`, so that
/// `i + grid_stride` can never overflow `i32` in a grid-stride loop.
pub const MAX_ELEMS: usize = 1 << 30;

/// Refuses tensors too large for `i32` index math, naming the node.
pub fn check_numel(node: &str, op: &str, numel: usize) -> Result<(), LowerError> {
    if numel > MAX_ELEMS {
        return Err(LowerError::Unsupported {
            node: node.to_string(),
            op: op.to_string(),
            reason: format!("tensor of {numel} elements exceeds the {MAX_ELEMS}-element limit of i32 indexing"),
        });
    }
    Ok(())
}

/// Row-major strides of `dims`, in elements.
pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The strides with which a tensor of shape `from` is read when broadcast
/// (numpy rules) to shape `to`: one per axis of `to`, `0` where `from` has
/// size 1 or is missing. `None` when `from` does not broadcast to `to`.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Option<Vec<usize>> {
    if from.len() > to.len() {
        return None;
    }
    let lead = to.len() - from.len();
    let fs = strides(from);
    let mut out = vec![0; to.len()];
    for (k, &d) in from.iter().enumerate() {
        let t = to[lead + k];
        if d == t {
            out[lead + k] = if d == 1 { 0 } else { fs[k] };
        } else if d != 1 {
            return None;
        }
    }
    Some(out)
}

/// The `i32` constant `v` (callers have checked sizes with [`check_numel`]).
pub fn const_index(b: &mut KernelBuilder, v: usize) -> Value {
    b.const_i32(v as i32)
}

/// The coordinates of linear row-major `index` in a tensor of shape `dims`.
/// Axes of size 1 get the constant 0; the outermost coordinate is a plain
/// division, the others `(index / stride) % dim`.
pub fn unravel(b: &mut KernelBuilder, index: Value, dims: &[usize]) -> Vec<Value> {
    let st = strides(dims);
    let first_real = dims.iter().position(|&d| d != 1);
    dims.iter()
        .enumerate()
        .map(|(k, &d)| {
            if d == 1 {
                return const_index(b, 0);
            }
            let q = if st[k] == 1 {
                index
            } else {
                let s = const_index(b, st[k]);
                b.div(index, s)
            };
            if Some(k) == first_real {
                q
            } else {
                let dv = const_index(b, d);
                b.rem(q, dv)
            }
        })
        .collect()
}

/// `Σ coords[k] * strides[k]`, skipping zero strides; `0` when all are zero.
pub fn ravel(b: &mut KernelBuilder, coords: &[Value], strides: &[usize]) -> Value {
    let mut acc: Option<Value> = None;
    for (&c, &s) in coords.iter().zip(strides) {
        if s == 0 {
            continue;
        }
        let term = if s == 1 {
            c
        } else {
            let sv = const_index(b, s);
            b.mul(c, sv)
        };
        acc = Some(match acc {
            Some(a) => b.add(a, term),
            None => term,
        });
    }
    acc.unwrap_or_else(|| const_index(b, 0))
}

/// The index into a tensor of shape `in_dims` that numpy broadcasting reads
/// for element `out_index` of a tensor of shape `out_dims`. When the shapes
/// are equal this is `out_index` itself (no arithmetic). `None` when `in_dims`
/// does not broadcast to `out_dims`.
pub fn broadcast_index(
    b: &mut KernelBuilder,
    out_index: Value,
    out_dims: &[usize],
    in_dims: &[usize],
) -> Option<Value> {
    let bs = broadcast_strides(in_dims, out_dims)?;
    let in_numel: usize = in_dims.iter().product();
    if in_numel == out_dims.iter().product::<usize>() {
        // Same number of elements and broadcastable: the layouts coincide.
        return Some(out_index);
    }
    if in_numel == 1 {
        return Some(const_index(b, 0));
    }
    let coords = unravel(b, out_index, out_dims);
    Some(ravel(b, &coords, &bs))
}

/// One axis of an affine read: input coordinate `start + coord * step`,
/// scaled by the input's `stride`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct AffineAxis {
    pub start: i64,
    pub step: i64,
    pub stride: usize,
}

/// `Σ (start_k + coords[k] * step_k) * stride_k`, one term per axis so that
/// each term's interval stays inside `[0, (dim_k - 1) * stride_k]` even for
/// negative steps (Slice, Transpose, Split and Concat reads are all affine).
pub fn affine_index(b: &mut KernelBuilder, coords: &[Value], axes: &[AffineAxis]) -> Value {
    let mut acc: Option<Value> = None;
    for (&c, ax) in coords.iter().zip(axes) {
        if ax.stride == 0 {
            continue;
        }
        let scaled = match ax.step {
            0 => None,
            1 => Some(c),
            s => {
                let sv = b.const_i32(s as i32);
                Some(b.mul(c, sv))
            }
        };
        let coord = match (ax.start, scaled) {
            (0, Some(v)) => v,
            (st, Some(v)) => {
                let sv = b.const_i32(st as i32);
                b.add(sv, v)
            }
            (st, None) => b.const_i32(st as i32),
        };
        let term = if ax.stride == 1 {
            coord
        } else {
            let sv = const_index(b, ax.stride);
            b.mul(coord, sv)
        };
        acc = Some(match acc {
            Some(a) => b.add(a, term),
            None => term,
        });
    }
    acc.unwrap_or_else(|| const_index(b, 0))
}

/// The 1-D launch for `n` elements with [`THREADS`] threads per block:
/// `ceil(n / THREADS)` blocks, capped at `max_blocks`.
pub fn linear_launch(n: usize, max_blocks: u32) -> LaunchShape {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, max_blocks.max(1) as usize) as u32;
    LaunchShape::linear(blocks, THREADS)
}

/// A grid-stride loop over `0..n`: `body(b, i)` runs once for every `i`,
/// with `i` provably in `[0, n - 1]`. The step is the kernel's whole launch
/// (a constant), so a launch with enough threads runs each body once.
pub fn grid_stride_loop(b: &mut KernelBuilder, n: usize, body: impl FnOnce(&mut KernelBuilder, Value)) {
    let launch = b.kernel().launch;
    let step = launch.total_threads() as i64;
    let start = b.global_thread_id(Axis::X);
    let end = const_index(b, n);
    b.for_range(start, end, step, body);
}

/// A loop over `0..n` in which block `block_id.x` takes items `block_id.x,
/// block_id.x + grid, …`: the per-row loop of block-per-row kernels. Its
/// bounds are block-uniform, so barriers and shuffles may sit inside.
pub fn block_stride_loop(b: &mut KernelBuilder, n: usize, body: impl FnOnce(&mut KernelBuilder, Value)) {
    let grid = b.kernel().launch.grid[0] as i64;
    let start = b.block_id(Axis::X);
    let end = const_index(b, n);
    b.for_range(start, end, grid, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_strides_follow_numpy() {
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), Some(vec![0, 1, 0]));
        assert_eq!(broadcast_strides(&[4], &[2, 3, 4]), Some(vec![0, 0, 1]));
        assert_eq!(broadcast_strides(&[2, 3, 4], &[2, 3, 4]), Some(vec![12, 4, 1]));
        assert_eq!(broadcast_strides(&[], &[5]), Some(vec![0]));
        assert_eq!(broadcast_strides(&[3], &[4]), None);
        assert_eq!(broadcast_strides(&[2, 2], &[2]), None);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn linear_launch_caps_blocks() {
        assert_eq!(linear_launch(1, MAX_BLOCKS).grid[0], 1);
        assert_eq!(linear_launch(257, MAX_BLOCKS).grid[0], 2);
        assert_eq!(linear_launch(1 << 28, MAX_BLOCKS).grid[0], MAX_BLOCKS);
    }
}
