//! Einsum, composed at import from ops that already lower everywhere.
//!
//! The equation is parsed into one label list per operand and one for the
//! output ([`Equation::parse`]), with `...` expanded into labels of its own
//! (numbered from the right, so ellipses of different ranks broadcast as
//! numpy aligns them). Then, per operand, a label repeated within it takes
//! the diagonal (the two axes moved last, flattened, and sliced with step
//! `n + 1`: exact, no multiplication by a mask) and a label no other operand
//! or the output has is summed away. Operands are combined left to right:
//! two operands whose shared labels agree in size become one batched
//! `MatMul` (`[batch, left, contracted] · [batch, contracted, right]`),
//! others (a size-1 label broadcast against a larger one) a broadcast `Mul`
//! and a `ReduceSum`. A final `Transpose` puts the labels in output order.

use super::error::ImportError;
use super::ops::Chain;
use super::{Importer, NodeView};
use crate::graph::TensorId;
use crate::op::{BinaryOp, Op};

/// One axis label: a letter's code, or `ELLIPSIS + k` for the `k`-th
/// ellipsis dimension counted from the right.
type Label = u32;

const ELLIPSIS: Label = 1 << 16;

/// A parsed equation: every operand's labels (ellipsis expanded) and the
/// output's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Equation {
    pub inputs: Vec<Vec<Label>>,
    pub output: Vec<Label>,
}

/// A term's letters (as labels) and where its ellipsis stands, if it has one.
fn term(text: &str) -> Result<(Vec<Label>, Option<usize>), String> {
    let mut labels = Vec::new();
    let mut ellipsis = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("...") {
            if ellipsis.is_some() {
                return Err(format!("term `{text}` has two ellipses"));
            }
            ellipsis = Some(labels.len());
            rest = r;
        } else if c.is_ascii_alphabetic() {
            labels.push(c as Label);
            rest = &rest[1..];
        } else {
            return Err(format!("term `{text}` has `{c}`; expected letters and at most one `...`"));
        }
    }
    Ok((labels, ellipsis))
}

/// The labels of `count` ellipsis dimensions, leftmost first.
fn ellipsis_labels(count: usize) -> impl Iterator<Item = Label> {
    (0..count as Label).rev().map(|k| ELLIPSIS + k)
}

impl Equation {
    /// Parses `equation` for operands of the given ranks. Without `->`,
    /// the output is the ellipsis dimensions, then the letters that occur
    /// once, alphabetically (numpy's implicit mode).
    pub(crate) fn parse(equation: &str, ranks: &[usize]) -> Result<Equation, String> {
        let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq.as_str(), None),
        };
        let terms: Vec<&str> = lhs.split(',').collect();
        if terms.len() != ranks.len() {
            return Err(format!("the equation has {} input terms but the node {} inputs", terms.len(), ranks.len()));
        }
        let mut inputs = Vec::with_capacity(terms.len());
        let mut ellipsis_rank = 0;
        for (t, &rank) in terms.iter().zip(ranks) {
            let (letters, at) = term(t)?;
            let labels = match at {
                Some(at) => {
                    let extra = rank.checked_sub(letters.len()).ok_or_else(|| {
                        format!("term `{t}` has {} letters for an operand of rank {rank}", letters.len())
                    })?;
                    ellipsis_rank = ellipsis_rank.max(extra);
                    let mut l = letters[..at].to_vec();
                    l.extend(ellipsis_labels(extra));
                    l.extend_from_slice(&letters[at..]);
                    l
                }
                None if letters.len() == rank => letters,
                None => return Err(format!("term `{t}` has {} letters for an operand of rank {rank}", letters.len())),
            };
            inputs.push(labels);
        }
        let count = |l: Label| inputs.iter().flatten().filter(|&&x| x == l).count();
        let output = match rhs {
            Some(r) => {
                let (letters, at) = term(r)?;
                for (i, &l) in letters.iter().enumerate() {
                    if count(l) == 0 {
                        return Err(format!("output label `{}` is in no input term", char::from_u32(l).unwrap_or('?')));
                    }
                    if letters[..i].contains(&l) {
                        return Err(format!("output label `{}` repeats", char::from_u32(l).unwrap_or('?')));
                    }
                }
                match at {
                    Some(at) => {
                        let mut l = letters[..at].to_vec();
                        l.extend(ellipsis_labels(ellipsis_rank));
                        l.extend_from_slice(&letters[at..]);
                        l
                    }
                    None if ellipsis_rank == 0 => letters,
                    None => return Err("the inputs have `...` dimensions but the output term drops them".into()),
                }
            }
            None => {
                let mut once: Vec<Label> =
                    inputs.iter().flatten().copied().filter(|&l| l < ELLIPSIS && count(l) == 1).collect();
                once.sort_unstable();
                ellipsis_labels(ellipsis_rank).chain(once).collect()
            }
        };
        Ok(Equation { inputs, output })
    }
}

/// A tensor in the composition with the label of each of its axes.
struct Labelled {
    t: TensorId,
    labels: Vec<Label>,
    dims: Vec<usize>,
}

struct Composer<'c, 'n, 'a> {
    c: &'c Chain<'n, 'a>,
    steps: usize,
}

impl Composer<'_, '_, '_> {
    fn step(&mut self, imp: &mut Importer, what: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId, ImportError> {
        self.steps += 1;
        self.c.step(imp, &format!("{what}{}", self.steps), op, inputs)
    }

    /// `x` with its axes in the order `perm` (no node when already so).
    fn transpose(&mut self, imp: &mut Importer, x: Labelled, perm: &[usize]) -> Result<Labelled, ImportError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        let t = self.step(imp, "transpose", Op::Transpose { perm: perm.to_vec() }, &[x.t])?;
        Ok(Labelled {
            t,
            labels: perm.iter().map(|&p| x.labels[p]).collect(),
            dims: perm.iter().map(|&p| x.dims[p]).collect(),
        })
    }

    fn reshape(&mut self, imp: &mut Importer, t: TensorId, dims: &[usize]) -> Result<TensorId, ImportError> {
        let shape = dims.iter().map(|&d| d as i64).collect();
        self.step(imp, "reshape", Op::Reshape { shape, allow_zero: true }, &[t])
    }

    /// Sums `x` over the axes whose labels `drop` says to drop.
    fn sum_out(
        &mut self,
        imp: &mut Importer,
        x: Labelled,
        drop: impl Fn(Label) -> bool,
    ) -> Result<Labelled, ImportError> {
        let axes: Vec<i64> = (0..x.labels.len()).filter(|&i| drop(x.labels[i])).map(|i| i as i64).collect();
        if axes.is_empty() {
            return Ok(x);
        }
        let t = self.step(imp, "sum", Op::ReduceSum { axes: axes.clone(), keepdims: false }, &[x.t])?;
        let keep = |i: &usize| !axes.contains(&(*i as i64));
        Ok(Labelled {
            t,
            labels: (0..x.labels.len()).filter(keep).map(|i| x.labels[i]).collect(),
            dims: (0..x.dims.len()).filter(keep).map(|i| x.dims[i]).collect(),
        })
    }

    /// `x` with every repeated label reduced to its diagonal.
    fn diagonals(&mut self, imp: &mut Importer, n: &NodeView<'_>, mut x: Labelled) -> Result<Labelled, ImportError> {
        while let Some((p, q)) = repeated(&x.labels) {
            if x.dims[p] != x.dims[q] {
                return Err(n.err(format!(
                    "a label repeated within one operand spans axes of sizes {} and {}",
                    x.dims[p], x.dims[q]
                )));
            }
            let d = x.dims[p];
            let mut perm: Vec<usize> = (0..x.labels.len()).filter(|&i| i != p && i != q).collect();
            perm.extend([p, q]);
            let moved = self.transpose(imp, x, &perm)?;
            let mut dims = moved.dims[..perm.len() - 2].to_vec();
            let mut labels = moved.labels[..perm.len() - 2].to_vec();
            dims.push(d * d);
            let flat = self.reshape(imp, moved.t, &dims)?;
            let last = dims.len() as i64 - 1;
            let slice =
                Op::Slice { starts: vec![0], ends: vec![(d * d) as i64], axes: vec![last], steps: vec![d as i64 + 1] };
            let t = self.step(imp, "diagonal", slice, &[flat])?;
            let last = dims.len() - 1;
            dims[last] = d;
            labels.push(moved.labels[perm.len() - 1]);
            x = Labelled { t, labels, dims };
        }
        Ok(x)
    }

    /// `a` and `b` multiplied and summed over their shared labels that
    /// `keep` does not hold.
    fn contract(
        &mut self,
        imp: &mut Importer,
        a: Labelled,
        b: Labelled,
        keep: &[Label],
    ) -> Result<Labelled, ImportError> {
        let a = self.sum_out(imp, a, |l| !keep.contains(&l) && !b.labels.contains(&l))?;
        let b = self.sum_out(imp, b, |l| !keep.contains(&l) && !a.labels.contains(&l))?;
        let size = |x: &Labelled, l: Label| x.labels.iter().position(|&y| y == l).map(|i| x.dims[i]);
        let shared: Vec<Label> = a.labels.iter().copied().filter(|l| b.labels.contains(l)).collect();
        let uniform = shared.iter().all(|&l| size(&a, l) == size(&b, l));
        let batch: Vec<Label> = shared.iter().copied().filter(|l| keep.contains(l)).collect();
        let summed: Vec<Label> = shared.iter().copied().filter(|l| !keep.contains(l)).collect();
        if uniform {
            let left: Vec<Label> = a.labels.iter().copied().filter(|l| !shared.contains(l)).collect();
            let right: Vec<Label> = b.labels.iter().copied().filter(|l| !shared.contains(l)).collect();
            let order = |x: &Labelled, groups: [&[Label]; 3]| -> Vec<usize> {
                groups.iter().flat_map(|g| g.iter().filter_map(|l| x.labels.iter().position(|y| y == l))).collect()
            };
            let prod = |x: &Labelled, g: &[Label]| g.iter().filter_map(|&l| size(x, l)).product::<usize>();
            let (bn, ln, kn, rn) = (prod(&a, &batch), prod(&a, &left), prod(&a, &summed), prod(&b, &right));
            let pa = order(&a, [&batch, &left, &summed]);
            let pb = order(&b, [&batch, &summed, &right]);
            let mut dims: Vec<usize> = batch.iter().chain(&left).filter_map(|&l| size(&a, l)).collect();
            dims.extend(right.iter().filter_map(|&l| size(&b, l)));
            let a = self.transpose(imp, a, &pa)?;
            let b = self.transpose(imp, b, &pb)?;
            let a3 = self.reshape(imp, a.t, &[bn, ln, kn])?;
            let b3 = self.reshape(imp, b.t, &[bn, kn, rn])?;
            let m = self.step(imp, "matmul", Op::MatMul, &[a3, b3])?;
            let t = self.reshape(imp, m, &dims)?;
            let labels = batch.iter().chain(&left).chain(&right).copied().collect();
            return Ok(Labelled { t, labels, dims });
        }
        // Broadcast: both operands laid out over every label (a's, then
        // b's own), multiplied, then summed over the contracted labels.
        let mut all = a.labels.clone();
        all.extend(b.labels.iter().copied().filter(|l| !a.labels.contains(l)));
        let spread = |this: &mut Self, imp: &mut Importer, x: Labelled| -> Result<TensorId, ImportError> {
            let perm: Vec<usize> = all.iter().filter_map(|l| x.labels.iter().position(|y| y == l)).collect();
            let x = this.transpose(imp, x, &perm)?;
            let missing: Vec<i64> = (0..all.len()).filter(|&i| !x.labels.contains(&all[i])).map(|i| i as i64).collect();
            if missing.is_empty() {
                return Ok(x.t);
            }
            this.step(imp, "spread", Op::Unsqueeze { axes: missing }, &[x.t])
        };
        let dims: Vec<usize> = all.iter().map(|&l| size(&a, l).unwrap_or(1).max(size(&b, l).unwrap_or(1))).collect();
        let (ta, tb) = (spread(self, imp, a)?, spread(self, imp, b)?);
        let t = self.step(imp, "product", Op::Binary(BinaryOp::Mul), &[ta, tb])?;
        self.sum_out(imp, Labelled { t, labels: all, dims }, |l| summed.contains(&l))
    }
}

/// The first two positions holding one label, if any label repeats.
fn repeated(labels: &[Label]) -> Option<(usize, usize)> {
    (0..labels.len()).find_map(|q| labels[..q].iter().position(|&l| l == labels[q]).map(|p| (p, q)))
}

/// Einsum: see the module doc.
pub(crate) fn einsum(imp: &mut Importer, n: &NodeView<'_>) -> Result<(), ImportError> {
    let equation = n.attrs.string("equation", &n.name)?.ok_or_else(|| n.err("attribute `equation` is missing"))?;
    let names: Vec<&str> = n.inputs.iter().flatten().copied().collect();
    if names.is_empty() || names.len() != n.inputs.len() {
        return Err(n.err("Einsum needs one or more inputs, none omitted"));
    }
    let shapes: Vec<Vec<usize>> = names.iter().map(|t| imp.shape_of(t)).collect();
    let ranks: Vec<usize> = shapes.iter().map(Vec::len).collect();
    let eq = Equation::parse(&equation, &ranks).map_err(|m| n.err(format!("equation `{equation}`: {m}")))?;
    let c = Chain { n };
    let mut k = Composer { c: &c, steps: 0 };
    let mut operands = Vec::with_capacity(names.len());
    for (i, (name, dims)) in names.iter().zip(shapes).enumerate() {
        let x = Labelled { t: imp.tensor(name)?, labels: eq.inputs[i].clone(), dims };
        let x = k.diagonals(imp, n, x)?;
        // Labels nowhere else are summed before any product.
        let elsewhere =
            |l: Label| eq.output.contains(&l) || eq.inputs.iter().enumerate().any(|(j, ls)| j != i && ls.contains(&l));
        operands.push(k.sum_out(imp, x, |l| !elsewhere(l))?);
    }
    let mut rest = operands.into_iter();
    let mut acc = rest.next().ok_or_else(|| n.err("has no inputs"))?;
    for (j, b) in rest.enumerate() {
        // Labels still needed: the output's and those of later operands.
        let keep: Vec<Label> = eq.output.iter().chain(eq.inputs[j + 2..].iter().flatten()).copied().collect();
        acc = k.contract(imp, acc, b, &keep)?;
    }
    let perm: Vec<usize> = eq.output.iter().filter_map(|l| acc.labels.iter().position(|y| y == l)).collect();
    if perm.len() != acc.labels.len() {
        return Err(n.err("the output labels do not match the operands' (internal)"));
    }
    let op = if perm.iter().enumerate().all(|(i, &p)| i == p) { Op::Identity } else { Op::Transpose { perm } };
    c.last(imp, op, &[acc.t])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<Label> {
        s.chars().map(|c| c as Label).collect()
    }

    #[test]
    fn explicit_and_implicit_outputs() {
        let e = Equation::parse("bij, bjk -> bik", &[3, 3]).unwrap();
        assert_eq!(e.inputs, vec![l("bij"), l("bjk")]);
        assert_eq!(e.output, l("bik"));
        // Implicit: the letters that occur once, alphabetically.
        let e = Equation::parse("kj,ji", &[2, 2]).unwrap();
        assert_eq!(e.output, l("ik"));
        let e = Equation::parse("i,i", &[1, 1]).unwrap();
        assert_eq!(e.output, Vec::<Label>::new());
        let e = Equation::parse("->", &[0]).unwrap();
        assert_eq!(e, Equation { inputs: vec![vec![]], output: vec![] });
    }

    #[test]
    fn ellipses_align_from_the_right() {
        let e = Equation::parse("...ii->...i", &[3]).unwrap();
        assert_eq!(e.inputs, vec![vec![ELLIPSIS, 'i' as Label, 'i' as Label]]);
        assert_eq!(e.output, vec![ELLIPSIS, 'i' as Label]);
        // Ranks 4 and 3: two and one ellipsis dimensions; the shorter one
        // lines up with the rightmost of the longer.
        let e = Equation::parse("...ij,...jk", &[4, 3]).unwrap();
        assert_eq!(e.inputs[0], vec![ELLIPSIS + 1, ELLIPSIS, 'i' as Label, 'j' as Label]);
        assert_eq!(e.inputs[1], vec![ELLIPSIS, 'j' as Label, 'k' as Label]);
        assert_eq!(e.output, vec![ELLIPSIS + 1, ELLIPSIS, 'i' as Label, 'k' as Label]);
    }

    #[test]
    fn malformed_equations_are_refused() {
        assert!(Equation::parse("ij", &[3]).is_err());
        assert!(Equation::parse("ij,jk", &[2]).is_err());
        assert!(Equation::parse("ij->k", &[2]).is_err());
        assert!(Equation::parse("ij->ii", &[2]).is_err());
        assert!(Equation::parse("i1->i", &[2]).is_err());
        assert!(Equation::parse("......i", &[3]).is_err());
        assert!(Equation::parse("...i->i", &[2]).is_err());
    }

    #[test]
    fn repeated_finds_the_first_pair() {
        assert_eq!(repeated(&l("abc")), None);
        assert_eq!(repeated(&l("abab")), Some((0, 2)));
        assert_eq!(repeated(&l("aii")), Some((1, 2)));
    }
}
