//! GridSample (and AffineGrid, which makes its grids), composed at import
//! from ops that already lower everywhere, for any number of spatial
//! dimensions (4-D and 5-D inputs and beyond).
//!
//! The input is moved channels-last (`[N, D…, C]`) so that one `GatherND`
//! with a batch dimension fetches every channel of a pixel. Per spatial axis
//! the grid's coordinate (the grid lists them innermost axis first) is
//! mapped to a pixel coordinate as ONNX's reference maps it: denormalised
//! (`align_corners` or not), rounded half to even in `nearest` mode, and,
//! when it falls outside the borders, clamped (`border`) or reflected
//! (`reflection`). The axis then contributes taps: one (`nearest`), two with
//! linear weights, or four with cubic weights (Keys, a = −0.75). A tap's
//! index outside the input reads zero (`zeros`), the edge (`border`) or its
//! reflection (`reflection`). Every combination of one tap per axis is one
//! gather, weighted by the product of its axes' weights and summed; the sum
//! is moved back to `[N, C, O…]`.

use super::error::ImportError;
use super::ops::{round_even_steps, scalar, Chain};
use super::{Importer, NodeView};
use crate::dtype::DType;
use crate::graph::TensorId;
use crate::op::{BinaryOp, Op, UnaryOp};

/// Keys' cubic convolution parameter ONNX's GridSample uses.
const CUBIC_ALPHA: f64 = -0.75;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// One tap along one axis: the `i64` index to read (in range) and, where
/// the mode has them, its weight and whether it lies inside the input.
struct Tap {
    index: TensorId,
    weight: Option<TensorId>,
    valid: Option<TensorId>,
}

/// Builds the composition's steps, each named `{node}/{axis prefix}_{what}`.
struct Steps<'c, 'n, 'a> {
    c: &'c Chain<'n, 'a>,
    /// The type coordinates and weights are computed in (the grid's).
    dtype: DType,
}

impl Steps<'_, '_, '_> {
    fn k(&self, imp: &mut Importer, name: &str, v: f64) -> TensorId {
        scalar(imp, self.c.n, name, self.dtype, v)
    }

    fn bin(
        &self,
        imp: &mut Importer,
        name: &str,
        op: BinaryOp,
        a: TensorId,
        b: TensorId,
    ) -> Result<TensorId, ImportError> {
        self.c.step(imp, name, Op::Binary(op), &[a, b])
    }

    /// The present `items` combined by `op` left to right (step `{name}{i}`
    /// for item `i`); `None` when none is present.
    fn fold(
        &self,
        imp: &mut Importer,
        name: &str,
        op: BinaryOp,
        items: impl Iterator<Item = Option<TensorId>>,
    ) -> Result<Option<TensorId>, ImportError> {
        let mut acc: Option<TensorId> = None;
        for (i, item) in items.enumerate() {
            if let Some(t) = item {
                acc = Some(match acc {
                    Some(a) => self.bin(imp, &format!("{name}{i}"), op, a, t)?,
                    None => t,
                });
            }
        }
        Ok(acc)
    }

    fn op(&self, imp: &mut Importer, name: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, ImportError> {
        self.c.step(imp, name, op, inputs)
    }

    /// `(x < lo) | (x > hi)`.
    fn outside(&self, imp: &mut Importer, p: &str, x: TensorId, lo: f64, hi: f64) -> Result<TensorId, ImportError> {
        let (klo, khi) = (self.k(imp, &format!("{p}_lo"), lo), self.k(imp, &format!("{p}_hi"), hi));
        let below = self.bin(imp, &format!("{p}_below"), BinaryOp::Less, x, klo)?;
        let above = self.bin(imp, &format!("{p}_above"), BinaryOp::Greater, x, khi)?;
        self.bin(imp, &format!("{p}_outside"), BinaryOp::Or, below, above)
    }

    /// ONNX's reflection of `x` into `[lo, hi]` by the nearer border, as
    /// often as it takes (meaningful where `x` is outside).
    fn reflect(&self, imp: &mut Importer, p: &str, x: TensorId, lo: f64, hi: f64) -> Result<TensorId, ImportError> {
        let (klo, khi) = (self.k(imp, &format!("{p}_rlo"), lo), self.k(imp, &format!("{p}_rhi"), hi));
        let range = self.k(imp, &format!("{p}_range"), hi - lo);
        let half = self.k(imp, &format!("{p}_rhalf"), 0.5);
        let below = self.bin(imp, &format!("{p}_rbelow"), BinaryOp::Less, x, klo)?;
        let under = self.bin(imp, &format!("{p}_under"), BinaryOp::Sub, klo, x)?;
        let over = self.bin(imp, &format!("{p}_over"), BinaryOp::Sub, x, khi)?;
        let dx = self.op(imp, &format!("{p}_dx"), Op::Where, &[below, under, over])?;
        let q = self.bin(imp, &format!("{p}_folds_exact"), BinaryOp::Div, dx, range)?;
        let folds = self.op(imp, &format!("{p}_folds"), Op::Unary(UnaryOp::Floor), &[q])?;
        let whole = self.bin(imp, &format!("{p}_folded"), BinaryOp::Mul, folds, range)?;
        let r = self.bin(imp, &format!("{p}_rest"), BinaryOp::Sub, dx, whole)?;
        // An odd number of whole folds lands at the far border.
        let hf = self.bin(imp, &format!("{p}_half_folds"), BinaryOp::Mul, folds, half)?;
        let hff = self.op(imp, &format!("{p}_half_folds_floor"), Op::Unary(UnaryOp::Floor), &[hf])?;
        let odd = self.bin(imp, &format!("{p}_odd"), BinaryOp::Less, hff, hf)?;
        let from_lo = self.bin(imp, &format!("{p}_from_lo"), BinaryOp::Add, klo, r)?;
        let from_hi = self.bin(imp, &format!("{p}_from_hi"), BinaryOp::Sub, khi, r)?;
        let near = self.op(imp, &format!("{p}_near"), Op::Where, &[below, from_lo, from_hi])?;
        let far = self.op(imp, &format!("{p}_far"), Op::Where, &[below, from_hi, from_lo])?;
        self.op(imp, &format!("{p}_reflected"), Op::Where, &[odd, far, near])
    }

    /// Keys' cubic weight of a tap at distance `d` (`|d| ≤ 2`):
    /// `((a·d − 5a)·d + 8a)·d − 4a` beyond 1, `((a + 2)·d − (a + 3))·d² + 1`
    /// within.
    fn cubic(&self, imp: &mut Importer, p: &str, d: TensorId, near: bool) -> Result<TensorId, ImportError> {
        let a = CUBIC_ALPHA;
        let d2 = self.bin(imp, &format!("{p}_d2"), BinaryOp::Mul, d, d)?;
        if near {
            let c1 = self.k(imp, &format!("{p}_c1"), a + 2.0);
            let c2 = self.k(imp, &format!("{p}_c2"), a + 3.0);
            let one = self.k(imp, &format!("{p}_one"), 1.0);
            let t = self.bin(imp, &format!("{p}_t1"), BinaryOp::Mul, c1, d)?;
            let t = self.bin(imp, &format!("{p}_t2"), BinaryOp::Sub, t, c2)?;
            let t = self.bin(imp, &format!("{p}_t3"), BinaryOp::Mul, t, d2)?;
            return self.bin(imp, &format!("{p}_w"), BinaryOp::Add, t, one);
        }
        let (ka, k5, k8, k4) = (
            self.k(imp, &format!("{p}_a"), a),
            self.k(imp, &format!("{p}_5a"), 5.0 * a),
            self.k(imp, &format!("{p}_8a"), 8.0 * a),
            self.k(imp, &format!("{p}_4a"), 4.0 * a),
        );
        let t = self.bin(imp, &format!("{p}_t1"), BinaryOp::Mul, ka, d)?;
        let t = self.bin(imp, &format!("{p}_t2"), BinaryOp::Sub, t, k5)?;
        let t = self.bin(imp, &format!("{p}_t3"), BinaryOp::Mul, t, d)?;
        let t = self.bin(imp, &format!("{p}_t4"), BinaryOp::Add, t, k8)?;
        let t = self.bin(imp, &format!("{p}_t5"), BinaryOp::Mul, t, d)?;
        self.bin(imp, &format!("{p}_w"), BinaryOp::Sub, t, k4)
    }

    /// Tap index `f` (an integer-valued float) made a valid `i64` index into
    /// an axis of `len` under `padding`, with its validity for `zeros`.
    #[allow(clippy::too_many_arguments)]
    fn tap(
        &self,
        imp: &mut Importer,
        p: &str,
        f: TensorId,
        weight: Option<TensorId>,
        len: usize,
        padding: Padding,
        borders: (f64, f64),
    ) -> Result<Tap, ImportError> {
        let last = (len - 1) as f32;
        let mut valid = None;
        let f = match padding {
            Padding::Zeros => {
                valid = Some(self.outside(imp, &format!("{p}_bounds"), f, 0.0, last as f64)?);
                f
            }
            Padding::Border => f,
            Padding::Reflection => {
                let out = self.outside(imp, &format!("{p}_edges"), f, borders.0, borders.1)?;
                let r = self.reflect(imp, p, f, borders.0, borders.1)?;
                let r = self.op(imp, &format!("{p}_reflected_or_kept"), Op::Where, &[out, r, f])?;
                // ONNX truncates the reflected coordinate toward zero.
                let t = self.op(imp, &format!("{p}_truncated"), Op::Cast { to: DType::I64 }, &[r])?;
                self.op(imp, &format!("{p}_truncated_float"), Op::Cast { to: self.dtype }, &[t])?
            }
        };
        let clamped = self.op(imp, &format!("{p}_clamped"), Op::Unary(UnaryOp::Clip { min: 0.0, max: last }), &[f])?;
        let index = self.op(imp, &format!("{p}_index"), Op::Cast { to: DType::I64 }, &[clamped])?;
        let valid = match valid {
            Some(out) => Some(self.op(imp, &format!("{p}_inside"), Op::Unary(UnaryOp::Not), &[out])?),
            None => None,
        };
        Ok(Tap { index, weight, valid })
    }
}

/// AffineGrid: the sampling grid GridSample takes, `theta · (x, y, [z,] 1)`
/// for every output position, with the positions' normalised coordinates
/// (pixel centres, or corners with `align_corners`) a constant `[r + 1, P]`
/// matrix multiplied by each batch's `theta` `[r, r + 1]` in one MatMul.
pub(crate) fn affine_grid(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let tname = n.inputs.first().copied().flatten().ok_or_else(|| n.err("the theta input is missing"))?;
    let size = super::ops::const_input(imp, n, 1, "size")?.ok_or_else(|| n.err("the size input is missing"))?;
    let size = size.as_i64s().ok_or_else(|| n.err("size is not an integer tensor"))?;
    let align = n.attrs.int("align_corners", &n.name)?.unwrap_or(0) != 0;
    let td = imp.shape_of(tname);
    let dtype = imp.dtype_of(tname).unwrap_or(DType::F32);
    let r = size.len().saturating_sub(2);
    let dims: Vec<usize> = size.iter().skip(2).map(|&d| usize::try_from(d).unwrap_or(0)).collect();
    if !(2..=3).contains(&r) || td != [usize::try_from(size[0]).unwrap_or(usize::MAX), r, r + 1] || dims.contains(&0) {
        return Err(n.err(format!(
            "theta has shape {td:?} and size is {size:?}; expected [N, C, H, W] or [N, C, D, H, W] sizes and \
             theta [N, 2, 3] or [N, 3, 4]"
        )));
    }
    if !dtype.is_float() {
        return Err(n.err(format!("theta is {dtype}; AffineGrid takes a float tensor")));
    }
    // Normalised coordinate `i` of an axis of `len`.
    let coord = |i: usize, len: usize| {
        if align {
            if len == 1 {
                -1.0
            } else {
                -1.0 + i as f64 * 2.0 / (len - 1) as f64
            }
        } else {
            let step = 2.0 / len as f64;
            -1.0 + step / 2.0 + i as f64 * step
        }
    };
    let points: usize = dims.iter().product();
    // Row k of the base holds coordinate k (innermost axis first), the last
    // row ones; column p is position p in row-major order.
    let mut base = vec![1.0; (r + 1) * points];
    for p in 0..points {
        let mut rest = p;
        for (k, &len) in dims.iter().enumerate().rev() {
            let row = dims.len() - 1 - k;
            base[row * points + p] = coord(rest % len, len);
            rest /= len;
        }
    }
    let base = imp.add_constant(
        format!("{}/base_grid", n.name),
        crate::tensor::Tensor::from_f64(dtype, vec![r + 1, points], &base),
    );
    let c = Chain { n };
    let theta = imp.tensor(tname)?;
    let grid = c.step(imp, "transformed", Op::MatMul, &[theta, base])?;
    let grid = c.step(imp, "points_last", Op::Transpose { perm: vec![0, 2, 1] }, &[grid])?;
    let mut shape: Vec<i64> = vec![td[0] as i64];
    shape.extend(dims.iter().map(|&d| d as i64));
    shape.push(r as i64);
    c.last(imp, Op::Reshape { shape, allow_zero: true }, &[grid])
}

/// GridSample: see the module doc.
pub(crate) fn grid_sample(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let a = n.attrs;
    let mode = match a.string("mode", &n.name)?.as_deref().unwrap_or("linear") {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        other => return Err(n.err(format!("mode `{other}` is not one of nearest, linear, cubic"))),
    };
    let padding = match a.string("padding_mode", &n.name)?.as_deref().unwrap_or("zeros") {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        other => return Err(n.err(format!("padding_mode `{other}` is not one of zeros, border, reflection"))),
    };
    let align = a.int("align_corners", &n.name)?.unwrap_or(0) != 0;
    let xname = n.inputs.first().copied().flatten().ok_or_else(|| n.err("the X input is missing"))?;
    let gname = n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the grid input is missing"))?;
    let (xd, gd) = (imp.shape_of(xname), imp.shape_of(gname));
    let r = xd.len().saturating_sub(2);
    if r == 0 || gd.len() != r + 2 || gd[0] != xd[0] || gd[r + 1] != r {
        return Err(n.err(format!(
            "X has shape {xd:?} and grid {gd:?}; expected [N, C, D…] and [N, O…, {r}] with as many O as D"
        )));
    }
    if xd[2..].contains(&0) {
        return Err(n.err(format!("X has shape {xd:?}; every spatial dimension must be non-empty")));
    }
    let xdtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let dtype = imp.dtype_of(gname).unwrap_or(DType::F32);
    if !xdtype.is_float() || !dtype.is_float() {
        return Err(n.err(format!("X is {xdtype} and grid {dtype}; GridSample takes float tensors")));
    }
    let c = Chain { n };
    let s = Steps { c: &c, dtype };
    let (x, grid) = (imp.tensor(xname)?, imp.tensor(gname)?);
    let mut perm: Vec<usize> = vec![0];
    perm.extend(2..r + 2);
    perm.push(1);
    let xt = s.op(imp, "channels_last", Op::Transpose { perm }, &[x])?;

    let mut axes_taps: Vec<Vec<Tap>> = Vec::with_capacity(r);
    for (i, &len) in xd[2..].iter().enumerate() {
        let p = format!("axis{i}");
        // The grid lists coordinates innermost axis first.
        let coord = r - 1 - i;
        let slice = Op::Slice {
            starts: vec![coord as i64],
            ends: vec![coord as i64 + 1],
            axes: vec![r as i64 + 1],
            steps: vec![1],
        };
        let g = s.op(imp, &format!("{p}_grid"), slice, &[grid])?;
        let one = s.k(imp, &format!("{p}_one"), 1.0);
        let g1 = s.bin(imp, &format!("{p}_shifted"), BinaryOp::Add, g, one)?;
        let mut xc = if align {
            let two = s.k(imp, &format!("{p}_two"), 2.0);
            let span = s.k(imp, &format!("{p}_span"), (len - 1) as f64);
            let h = s.bin(imp, &format!("{p}_halved"), BinaryOp::Div, g1, two)?;
            s.bin(imp, &format!("{p}_pixel"), BinaryOp::Mul, h, span)?
        } else {
            let two = s.k(imp, &format!("{p}_two"), 2.0);
            let l = s.k(imp, &format!("{p}_len"), len as f64);
            let m = s.bin(imp, &format!("{p}_scaled"), BinaryOp::Mul, g1, l)?;
            let m = s.bin(imp, &format!("{p}_less_one"), BinaryOp::Sub, m, one)?;
            s.bin(imp, &format!("{p}_pixel"), BinaryOp::Div, m, two)?
        };
        if mode == Mode::Nearest {
            let (finite, rounded) = round_even_steps(imp, n, &c, &format!("{p}_nearest"), xc, dtype)?;
            xc = s.op(imp, &format!("{p}_rounded"), Op::Where, &[finite, rounded, xc])?;
        }
        let borders = if align { (0.0, (len - 1) as f64) } else { (-0.5, len as f64 - 0.5) };
        match padding {
            Padding::Zeros => {}
            Padding::Border => {
                let out = s.outside(imp, &format!("{p}_coord"), xc, borders.0, borders.1)?;
                let clip = Op::Unary(UnaryOp::Clip { min: 0.0, max: (len - 1) as f32 });
                let clamped = s.op(imp, &format!("{p}_coord_clamped"), clip, &[xc])?;
                xc = s.op(imp, &format!("{p}_coord_bordered"), Op::Where, &[out, clamped, xc])?;
            }
            Padding::Reflection => {
                let out = s.outside(imp, &format!("{p}_coord"), xc, borders.0, borders.1)?;
                let r = s.reflect(imp, &format!("{p}_coord"), xc, borders.0, borders.1)?;
                xc = s.op(imp, &format!("{p}_coord_reflected"), Op::Where, &[out, r, xc])?;
            }
        }
        let taps = match mode {
            Mode::Nearest => vec![s.tap(imp, &format!("{p}_tap"), xc, None, len, padding, borders)?],
            Mode::Linear | Mode::Cubic => {
                let x0 = s.op(imp, &format!("{p}_floor"), Op::Unary(UnaryOp::Floor), &[xc])?;
                let t = s.bin(imp, &format!("{p}_fraction"), BinaryOp::Sub, xc, x0)?;
                let offsets: &[i64] = if mode == Mode::Linear { &[0, 1] } else { &[-1, 0, 1, 2] };
                let mut taps = Vec::with_capacity(offsets.len());
                for &o in offsets {
                    let q = format!("{p}_tap{}", o + 1);
                    let ko = s.k(imp, &format!("{q}_offset"), o as f64);
                    let f = s.bin(imp, &format!("{q}_coord"), BinaryOp::Add, x0, ko)?;
                    // Distance from the sample: |t − o|.
                    let d = s.bin(imp, &format!("{q}_signed_distance"), BinaryOp::Sub, t, ko)?;
                    let d = s.op(imp, &format!("{q}_distance"), Op::Unary(UnaryOp::Abs), &[d])?;
                    let w = if mode == Mode::Linear {
                        s.bin(imp, &format!("{q}_w"), BinaryOp::Sub, one, d)?
                    } else {
                        s.cubic(imp, &q, d, o == 0 || o == 1)?
                    };
                    taps.push(s.tap(imp, &q, f, Some(w), len, padding, borders)?);
                }
                taps
            }
        };
        axes_taps.push(taps);
    }

    // Every combination of one tap per axis.
    let counts: Vec<usize> = axes_taps.iter().map(Vec::len).collect();
    let total: usize = counts.iter().product();
    let zero_x = scalar(imp, n, "zero", xdtype, 0.0);
    let mut acc: Option<TensorId> = None;
    for combo in 0..total {
        let mut pick = Vec::with_capacity(r);
        let mut rest = combo;
        for &k in counts.iter().rev() {
            pick.push(rest % k);
            rest /= k;
        }
        pick.reverse();
        let q = format!("tap{}", pick.iter().map(|j| j.to_string()).collect::<String>());
        let taps: Vec<&Tap> = pick.iter().enumerate().map(|(i, &j)| &axes_taps[i][j]).collect();
        let indices: Vec<TensorId> = taps.iter().map(|t| t.index).collect();
        let index =
            if r == 1 { indices[0] } else { s.op(imp, &format!("{q}_index"), Op::Concat { axis: -1 }, &indices)? };
        let mut v = s.op(imp, &format!("{q}_gather"), Op::GatherND { batch_dims: 1 }, &[xt, index])?;
        let valid = s.fold(imp, &format!("{q}_valid"), BinaryOp::And, taps.iter().map(|t| t.valid))?;
        if let Some(ok) = valid {
            v = s.op(imp, &format!("{q}_masked"), Op::Where, &[ok, v, zero_x])?;
        }
        let weight = s.fold(imp, &format!("{q}_weight"), BinaryOp::Mul, taps.iter().map(|t| t.weight))?;
        if let Some(w) = weight {
            let w =
                if dtype == xdtype { w } else { s.op(imp, &format!("{q}_weight_x"), Op::Cast { to: xdtype }, &[w])? };
            v = s.bin(imp, &format!("{q}_weighted"), BinaryOp::Mul, v, w)?;
        }
        acc = Some(match acc {
            Some(a) => s.bin(imp, &format!("{q}_sum"), BinaryOp::Add, a, v)?,
            None => v,
        });
    }
    let acc = acc.ok_or_else(|| n.err("no taps (internal)"))?;
    let mut back: Vec<usize> = vec![0, r + 1];
    back.extend(1..r + 1);
    c.last(imp, Op::Transpose { perm: back }, &[acc])
}
