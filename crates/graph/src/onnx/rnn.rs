//! RNN, GRU and LSTM, unrolled at import over their (static) sequence
//! into ops that lower everywhere.
//!
//! Per direction, the input projection of every step is one `MatMul`
//! (`X · Wᵀ + Wb`, `[seq, batch, gates·hidden]`); each step then slices its
//! row, adds the recurrent projection (`H · Rᵀ + Rb`, one `MatMul`), and
//! applies the gates with elementwise ops, exactly as ONNX writes them
//! (GRU's `linear_before_reset` both ways, LSTM's peepholes, `clip` on
//! every gate's input — not on the cell state LSTM's output activates). A reverse direction walks the steps backwards and
//! writes each step's output at its own time. `sequence_lens` (forward
//! direction) masks each batch row past its length: its state holds and
//! its output is zero, as ONNX defines. `layout = 1` transposes the input
//! and the outputs. The program has `seq × directions` steps of a few
//! small kernels each.

use super::attrs::Attrs;
use super::error::ImportError;
use super::ops::{scalar, Chain};
use super::{Importer, NodeView};
use crate::dtype::DType;
use crate::graph::TensorId;
use crate::op::{BinaryOp, Op, UnaryOp};
use crate::tensor::{Shape, Tensor};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rnn,
    Gru,
    Lstm,
}

impl Kind {
    /// Gates stacked in W, R and each half of B.
    fn gates(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Gru => 3,
            Kind::Lstm => 4,
        }
    }

    /// Activations per direction, and their defaults.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Kind::Rnn => &["Tanh"],
            Kind::Gru => &["Sigmoid", "Tanh"],
            Kind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// One activation function of the `activations` attribute.
#[derive(Clone, Copy, Debug)]
enum Activation {
    Unary(UnaryOp),
    /// `alpha · x + beta`.
    Affine(f32, f32),
    /// `alpha · tanh(beta · x)`.
    ScaledTanh(f32, f32),
}

/// The activations of every direction, in order, with their `alpha` and
/// `beta` taken from the attribute lists where the function has them.
fn activations(n: &NodeView<'_>, kind: Kind, dirs: usize) -> Result<Vec<Activation>, ImportError> {
    let a: Attrs<'_> = n.attrs;
    let names: Vec<String> = match a.strings("activations", &n.name)? {
        Some(v) => v,
        None => (0..dirs).flat_map(|_| kind.default_activations().iter().map(|s| s.to_string())).collect(),
    };
    let want = kind.default_activations().len() * dirs;
    if names.len() != want {
        return Err(n.err(format!(
            "{} activations given; {} takes {want} for {dirs} direction(s)",
            names.len(),
            n.op_type
        )));
    }
    let mut alphas = a.floats("activation_alpha", &n.name)?.unwrap_or_default().into_iter();
    let mut betas = a.floats("activation_beta", &n.name)?.unwrap_or_default().into_iter();
    let mut out = Vec::new();
    for name in names {
        let mut alpha = |default: f32| alphas.next().unwrap_or(default);
        let f = match name.as_str() {
            "Relu" => Activation::Unary(UnaryOp::Relu),
            "Tanh" => Activation::Unary(UnaryOp::Tanh),
            "Sigmoid" => Activation::Unary(UnaryOp::Sigmoid),
            "Softsign" => Activation::Unary(UnaryOp::Softsign),
            "Softplus" => Activation::Unary(UnaryOp::Softplus),
            "LeakyRelu" => Activation::Unary(UnaryOp::LeakyRelu { alpha: alpha(0.01) }),
            "ThresholdedRelu" => Activation::Unary(UnaryOp::ThresholdedRelu { alpha: alpha(1.0) }),
            "Elu" => Activation::Unary(UnaryOp::Elu { alpha: alpha(1.0) }),
            "HardSigmoid" => {
                let al = alpha(0.2);
                Activation::Unary(UnaryOp::HardSigmoid { alpha: al, beta: betas.next().unwrap_or(0.5) })
            }
            "Affine" => {
                let al = alpha(1.0);
                Activation::Affine(al, betas.next().unwrap_or(0.0))
            }
            "ScaledTanh" => {
                let al = alpha(1.0);
                Activation::ScaledTanh(al, betas.next().unwrap_or(1.0))
            }
            other => return Err(n.err(format!("activation `{other}` is not one ONNX defines for {}", n.op_type))),
        };
        out.push(f);
    }
    Ok(out)
}

/// The unrolled steps' graph builder: names every node after the ONNX node,
/// direction, step and what it computes.
struct Unroll<'n, 'a> {
    c: Chain<'n, 'a>,
    dtype: DType,
    hidden: usize,
    clip: Option<f32>,
}

impl Unroll<'_, '_> {
    fn op(&self, imp: &mut Importer, step: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, ImportError> {
        self.c.step(imp, step, op, inputs)
    }

    fn bin(
        &self,
        imp: &mut Importer,
        step: &str,
        b: BinaryOp,
        x: TensorId,
        y: TensorId,
    ) -> Result<TensorId, ImportError> {
        self.op(imp, step, Op::Binary(b), &[x, y])
    }

    /// Elements `[from, to)` of axis `axis`.
    fn slice(
        &self,
        imp: &mut Importer,
        step: &str,
        x: TensorId,
        axis: i64,
        from: usize,
        to: usize,
    ) -> Result<TensorId, ImportError> {
        let op = Op::Slice { starts: vec![from as i64], ends: vec![to as i64], axes: vec![axis], steps: vec![1] };
        self.op(imp, step, op, &[x])
    }

    /// Gate `k` (`[batch, hidden]`) of `[batch, gates·hidden]`.
    fn gate(&self, imp: &mut Importer, step: &str, x: TensorId, k: usize) -> Result<TensorId, ImportError> {
        self.slice(imp, step, x, 1, k * self.hidden, (k + 1) * self.hidden)
    }

    /// Row `d` of a per-direction tensor, without its leading axis.
    fn direction(&self, imp: &mut Importer, step: &str, x: TensorId, d: usize) -> Result<TensorId, ImportError> {
        let row = self.slice(imp, &format!("{step}_row"), x, 0, d, d + 1)?;
        self.op(imp, step, Op::Squeeze { axes: vec![0] }, &[row])
    }

    /// `f(clip(x))`: a gate's activation.
    fn activate(&self, imp: &mut Importer, step: &str, f: Activation, x: TensorId) -> Result<TensorId, ImportError> {
        let x = match self.clip {
            Some(c) => self.op(imp, &format!("{step}_clip"), Op::Unary(UnaryOp::Clip { min: -c, max: c }), &[x])?,
            None => x,
        };
        self.apply(imp, step, f, x)
    }

    /// `f(x)`.
    fn apply(&self, imp: &mut Importer, step: &str, f: Activation, x: TensorId) -> Result<TensorId, ImportError> {
        match f {
            Activation::Unary(u) => self.op(imp, step, Op::Unary(u), &[x]),
            Activation::Affine(alpha, beta) => {
                let a = scalar(imp, self.c.n, &format!("{step}_alpha"), self.dtype, alpha as f64);
                let b = scalar(imp, self.c.n, &format!("{step}_beta"), self.dtype, beta as f64);
                let ax = self.bin(imp, &format!("{step}_scaled"), BinaryOp::Mul, x, a)?;
                self.bin(imp, step, BinaryOp::Add, ax, b)
            }
            Activation::ScaledTanh(alpha, beta) => {
                let a = scalar(imp, self.c.n, &format!("{step}_alpha"), self.dtype, alpha as f64);
                let b = scalar(imp, self.c.n, &format!("{step}_beta"), self.dtype, beta as f64);
                let bx = self.bin(imp, &format!("{step}_scaled"), BinaryOp::Mul, x, b)?;
                let t = self.op(imp, &format!("{step}_tanh"), Op::Unary(UnaryOp::Tanh), &[bx])?;
                self.bin(imp, step, BinaryOp::Mul, t, a)
            }
        }
    }

    /// `[batch, hidden]` zeros.
    fn zeros(&self, imp: &mut Importer, what: &str, batch: usize) -> TensorId {
        let shape = Shape(vec![batch, self.hidden]);
        let zeros = Tensor::from_f64(self.dtype, shape, &vec![0.0; batch * self.hidden]);
        imp.add_constant(format!("{}/{what}", self.c.n.name), zeros)
    }
}

/// A per-direction input's tensor, if given.
fn optional(imp: &mut Importer, n: &NodeView<'_>, i: usize) -> Result<Option<TensorId>, ImportError> {
    match n.inputs.get(i).copied().flatten() {
        Some(name) => Ok(Some(imp.tensor(name)?)),
        None => Ok(None),
    }
}

pub(super) fn recurrent(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let kind = match n.op_type {
        "RNN" => Kind::Rnn,
        "GRU" => Kind::Gru,
        _ => Kind::Lstm,
    };
    let a = n.attrs;
    let name = n.name.as_str();
    let gates = kind.gates();
    let direction = a.string("direction", name)?.unwrap_or_else(|| "forward".into());
    let dirs = match direction.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        other => return Err(n.err(format!("direction `{other}` is not one of forward, reverse, bidirectional"))),
    };
    let layout = a.int("layout", name)?.unwrap_or(0);
    if kind == Kind::Lstm && a.int("input_forget", name)?.unwrap_or(0) != 0 {
        return Err(n.err("input_forget = 1 (coupled input and forget gates) is not supported"));
    }
    let before_reset = kind == Kind::Gru && a.int("linear_before_reset", name)?.unwrap_or(0) != 0;
    let acts = activations(n, kind, dirs)?;
    let per_dir = kind.default_activations().len();

    let xname = n.inputs.first().copied().flatten().ok_or_else(|| n.err("the X input is missing"))?;
    let dtype = imp.dtype_of(xname).unwrap_or(DType::F32);
    let rname = n.inputs.get(2).copied().flatten().ok_or_else(|| n.err("the R input is missing"))?;
    let r_dims = imp.shape_of(rname);
    let hidden = match (a.int("hidden_size", name)?, r_dims.last()) {
        (Some(h), _) => usize::try_from(h).map_err(|_| n.err(format!("hidden_size {h} is negative")))?,
        (None, Some(&h)) => h,
        (None, None) => return Err(n.err("hidden_size is missing and R has no shape")),
    };
    if r_dims != [dirs, gates * hidden, hidden] {
        return Err(n.err(format!(
            "R has shape {r_dims:?}; expected [{dirs}, {}, {hidden}] ({dirs} direction(s), {gates} gate(s) of \
             hidden size {hidden})",
            gates * hidden
        )));
    }
    let u = Unroll { c: Chain { n }, dtype, hidden, clip: a.float("clip", name)? };

    let mut x = imp.tensor(xname)?;
    if layout != 0 {
        x = u.op(imp, "x_seq_major", Op::Transpose { perm: vec![1, 0, 2] }, &[x])?;
    }
    let (seq, batch) = match imp.graph.info(x).shape.dims() {
        [s, b, _] => (*s, *b),
        other => return Err(n.err(format!("X has shape {other:?}; expected rank 3"))),
    };
    let w = imp.tensor(n.inputs.get(1).copied().flatten().ok_or_else(|| n.err("the W input is missing"))?)?;
    let r = imp.tensor(rname)?;
    let b = optional(imp, n, 3)?;
    let per_batch = |imp: &mut Importer, i: usize, what: &str| -> Result<Option<TensorId>, ImportError> {
        let Some(t) = optional(imp, n, i)? else { return Ok(None) };
        if layout != 0 {
            return Ok(Some(u.op(imp, &format!("{what}_dir_major"), Op::Transpose { perm: vec![1, 0, 2] }, &[t])?));
        }
        Ok(Some(t))
    };
    let h0 = per_batch(imp, 5, "initial_h")?;
    let c0 = if kind == Kind::Lstm { per_batch(imp, 6, "initial_c")? } else { None };
    let peep = if kind == Kind::Lstm { optional(imp, n, 7)? } else { None };

    // sequence_lens: ignored where every length is the sequence's; else a
    // per-step mask (forward only).
    let lens = match n.inputs.get(4).copied().flatten() {
        None => None,
        Some(lname) => match imp.const_of(lname) {
            Some(t) if t.to_f64().iter().all(|&l| l == seq as f64) => None,
            _ if dirs == 2 || direction == "reverse" => {
                return Err(n.err(format!(
                    "sequence_lens with direction {direction} is not supported (only forward masks short rows)"
                )))
            }
            _ => Some(imp.tensor(lname)?),
        },
    };

    let mut y_dirs: Vec<Vec<TensorId>> = Vec::new();
    let mut h_last = Vec::new();
    let mut c_last = Vec::new();
    for d in 0..dirs {
        let reverse = direction == "reverse" || d == 1;
        let tag = |s: &str| format!("d{d}_{s}");
        let f = &acts[d * per_dir..(d + 1) * per_dir];
        let w_d = u.direction(imp, &tag("w"), w, d)?;
        let w_t = u.op(imp, &tag("w_t"), Op::Transpose { perm: vec![1, 0] }, &[w_d])?;
        let r_d = u.direction(imp, &tag("r"), r, d)?;
        let r_t = u.op(imp, &tag("r_t"), Op::Transpose { perm: vec![1, 0] }, &[r_d])?;
        let (wb, rb) = match b {
            Some(b) => {
                let b_d = u.direction(imp, &tag("b"), b, d)?;
                let wb = u.slice(imp, &tag("wb"), b_d, 0, 0, gates * hidden)?;
                let rb = u.slice(imp, &tag("rb"), b_d, 0, gates * hidden, 2 * gates * hidden)?;
                (Some(wb), Some(rb))
            }
            None => (None, None),
        };
        let mut xw = u.op(imp, &tag("xw"), Op::MatMul, &[x, w_t])?;
        if let Some(wb) = wb {
            xw = u.bin(imp, &tag("xw_b"), BinaryOp::Add, xw, wb)?;
        }
        let mut h = match h0 {
            Some(h0) => u.direction(imp, &tag("h0"), h0, d)?,
            None => u.zeros(imp, &tag("h0"), batch),
        };
        let mut cell = match (kind, c0) {
            (Kind::Lstm, Some(c0)) => Some(u.direction(imp, &tag("c0"), c0, d)?),
            (Kind::Lstm, None) => Some(u.zeros(imp, &tag("c0"), batch)),
            _ => None,
        };
        let peeps = match peep {
            Some(p) => {
                let p_d = u.direction(imp, &tag("p"), p, d)?;
                let part =
                    |imp: &mut Importer, k: usize, s: &str| u.slice(imp, &tag(s), p_d, 0, k * hidden, (k + 1) * hidden);
                Some((part(imp, 0, "p_i")?, part(imp, 1, "p_o")?, part(imp, 2, "p_f")?))
            }
            None => None,
        };
        let zero_rows = lens.map(|_| u.zeros(imp, &tag("y_masked"), batch));
        let mut ys = vec![None; seq];
        for step in 0..seq {
            let t = if reverse { seq - 1 - step } else { step };
            let s = |what: &str| format!("d{d}_t{t}_{what}");
            let row = u.slice(imp, &s("xw_row"), xw, 0, t, t + 1)?;
            let xt = u.op(imp, &s("xw"), Op::Squeeze { axes: vec![0] }, &[row])?;
            let mut hr = u.op(imp, &s("hr"), Op::MatMul, &[h, r_t])?;
            if let Some(rb) = rb {
                hr = u.bin(imp, &s("hr_b"), BinaryOp::Add, hr, rb)?;
            }
            let pre = |imp: &mut Importer, k: usize, what: &str| -> Result<TensorId, ImportError> {
                let xg = u.gate(imp, &s(&format!("{what}_x")), xt, k)?;
                let hg = u.gate(imp, &s(&format!("{what}_h")), hr, k)?;
                u.bin(imp, &s(&format!("{what}_pre")), BinaryOp::Add, xg, hg)
            };
            let (h_new, c_new) = match kind {
                Kind::Rnn => {
                    let p = pre(imp, 0, "i")?;
                    (u.activate(imp, &s("h"), f[0], p)?, None)
                }
                Kind::Gru => {
                    let z = pre(imp, 0, "z")?;
                    let z = u.activate(imp, &s("z"), f[0], z)?;
                    let rg = pre(imp, 1, "r")?;
                    let rg = u.activate(imp, &s("r"), f[0], rg)?;
                    let xh = u.gate(imp, &s("h_x"), xt, 2)?;
                    let rec = if before_reset {
                        let hh = u.gate(imp, &s("h_h"), hr, 2)?;
                        u.bin(imp, &s("h_reset"), BinaryOp::Mul, rg, hh)?
                    } else {
                        let rh = u.bin(imp, &s("reset_h"), BinaryOp::Mul, rg, h)?;
                        let rh_t = u.slice(imp, &s("r_h_t"), r_t, 1, 2 * hidden, 3 * hidden)?;
                        let rec = u.op(imp, &s("h_rec"), Op::MatMul, &[rh, rh_t])?;
                        match rb {
                            Some(rb) => {
                                let rbh = u.slice(imp, &s("rb_h"), rb, 0, 2 * hidden, 3 * hidden)?;
                                u.bin(imp, &s("h_rec_b"), BinaryOp::Add, rec, rbh)?
                            }
                            None => rec,
                        }
                    };
                    let hp = u.bin(imp, &s("h_pre"), BinaryOp::Add, xh, rec)?;
                    let hc = u.activate(imp, &s("h_cand"), f[1], hp)?;
                    // (1 − z)·h̃ + z·H = h̃ + z·(H − h̃)
                    let diff = u.bin(imp, &s("h_diff"), BinaryOp::Sub, h, hc)?;
                    let zd = u.bin(imp, &s("h_gated"), BinaryOp::Mul, z, diff)?;
                    (u.bin(imp, &s("h"), BinaryOp::Add, hc, zd)?, None)
                }
                Kind::Lstm => {
                    let c_prev = cell.ok_or_else(|| n.err("the LSTM cell state is missing"))?;
                    let peep_add =
                        |imp: &mut Importer, x: TensorId, p: Option<TensorId>, c: TensorId, what: &str| match p {
                            Some(p) => {
                                let pc = u.bin(imp, &s(&format!("{what}_peep")), BinaryOp::Mul, p, c)?;
                                u.bin(imp, &s(&format!("{what}_peeped")), BinaryOp::Add, x, pc)
                            }
                            None => Ok(x),
                        };
                    let i = pre(imp, 0, "i")?;
                    let i = peep_add(imp, i, peeps.map(|p| p.0), c_prev, "i")?;
                    let i = u.activate(imp, &s("i"), f[0], i)?;
                    let fg = pre(imp, 2, "f")?;
                    let fg = peep_add(imp, fg, peeps.map(|p| p.2), c_prev, "f")?;
                    let fg = u.activate(imp, &s("f"), f[0], fg)?;
                    let cc = pre(imp, 3, "c")?;
                    let cc = u.activate(imp, &s("c_cand"), f[1], cc)?;
                    let kept = u.bin(imp, &s("c_kept"), BinaryOp::Mul, fg, c_prev)?;
                    let added = u.bin(imp, &s("c_added"), BinaryOp::Mul, i, cc)?;
                    let c_new = u.bin(imp, &s("c"), BinaryOp::Add, kept, added)?;
                    let o = pre(imp, 1, "o")?;
                    let o = peep_add(imp, o, peeps.map(|p| p.1), c_new, "o")?;
                    let o = u.activate(imp, &s("o"), f[0], o)?;
                    // `clip` bounds the gates' inputs, not the cell's.
                    let hc = u.apply(imp, &s("c_act"), f[2], c_new)?;
                    (u.bin(imp, &s("h"), BinaryOp::Mul, o, hc)?, Some(c_new))
                }
            };
            let (h_next, c_next, y) = match (lens, zero_rows) {
                (Some(l), Some(zeros)) => {
                    let at = scalar(imp, n, &s("time"), imp.graph.info(l).dtype, t as f64);
                    let live = u.bin(imp, &s("live"), BinaryOp::Less, at, l)?;
                    let live = u.op(imp, &s("live_rows"), Op::Unsqueeze { axes: vec![1] }, &[live])?;
                    let h_next = u.op(imp, &s("h_held"), Op::Where, &[live, h_new, h])?;
                    let c_next = match (c_new, cell) {
                        (Some(cn), Some(cp)) => Some(u.op(imp, &s("c_held"), Op::Where, &[live, cn, cp])?),
                        _ => None,
                    };
                    (h_next, c_next, u.op(imp, &s("y"), Op::Where, &[live, h_new, zeros])?)
                }
                _ => (h_new, c_new, h_new),
            };
            h = h_next;
            cell = c_next.or(cell);
            ys[t] = Some(y);
        }
        y_dirs.push(ys.into_iter().map(|y| y.ok_or_else(|| n.err("a step has no output"))).collect::<Result<_, _>>()?);
        h_last.push(h);
        c_last.extend(cell);
    }

    // Y: [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]).
    if super::ops::wanted(n, 0) {
        let mut steps = Vec::with_capacity(seq);
        for t in 0..seq {
            let per_dir: Vec<TensorId> = y_dirs
                .iter()
                .enumerate()
                .map(|(d, ys)| u.op(imp, &format!("d{d}_t{t}_y_lead"), Op::Unsqueeze { axes: vec![0, 1] }, &[ys[t]]))
                .collect::<Result<_, _>>()?;
            steps.push(if dirs == 1 {
                per_dir[0]
            } else {
                u.op(imp, &format!("t{t}_y_dirs"), Op::Concat { axis: 1 }, &per_dir)?
            });
        }
        let (op, inputs) = if layout != 0 {
            let y = u.op(imp, "y_seq_major", Op::Concat { axis: 0 }, &steps)?;
            (Op::Transpose { perm: vec![2, 0, 1, 3] }, vec![y])
        } else {
            (Op::Concat { axis: 0 }, steps)
        };
        super::ops::emit_output(imp, n, 0, "Y", op, &inputs)?;
    }
    // Y_h and Y_c: [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
    for (i, last, what) in [(1, &h_last, "Y_h"), (2, &c_last, "Y_c")] {
        if !super::ops::wanted(n, i) {
            continue;
        }
        if last.len() != dirs {
            return Err(n.err(format!("output {i} ({what}) is not an output of {}", n.op_type)));
        }
        let lead: Vec<TensorId> = last
            .iter()
            .enumerate()
            .map(|(d, &h)| u.op(imp, &format!("d{d}_{what}_lead"), Op::Unsqueeze { axes: vec![0] }, &[h]))
            .collect::<Result<_, _>>()?;
        let (op, inputs) = if layout != 0 {
            let y = u.op(imp, &format!("{what}_dir_major"), Op::Concat { axis: 0 }, &lead)?;
            (Op::Transpose { perm: vec![1, 0, 2] }, vec![y])
        } else {
            (Op::Concat { axis: 0 }, lead)
        };
        super::ops::emit_output(imp, n, i, what, op, &inputs)?;
    }
    Ok(())
}
