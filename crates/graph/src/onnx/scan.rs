//! Scan (opset 9 and later), unrolled at import over its static sequence.
//!
//! Each step binds the body's inputs — the loop state, then each scan
//! input's slice at the step (from the end for a reverse direction) along
//! its axis — imports the body's nodes with the body's own tensor names
//! prefixed by the node and step (its constants, decoded once, by the node;
//! names from the enclosing graph keep theirs), and takes the body's outputs as the next state and the step's
//! scan outputs. The final state and the scan outputs, stacked along their
//! axes (reversed for a reverse direction), are the node's outputs.

use std::collections::HashSet;

use super::error::ImportError;
use super::{check_supported, display_name, Importer, NodeView, Value};
use crate::graph::TensorId;
use crate::op::Op;

/// `axis` of a rank-`rank` tensor, negative counted from the end.
fn axis_of(view: &NodeView<'_>, what: &str, axis: i64, rank: usize) -> Result<usize, ImportError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| view.err(format!("{what} {axis} is out of range for rank {rank}")))
}

impl Importer {
    pub(super) fn import_scan(&mut self, view: &NodeView<'_>) -> Result<(), ImportError> {
        if view.opset < 9 {
            return Err(view.err(
                "Scan before opset 9 (a batch axis and sequence_lens) is not supported; export at opset 9 or later",
            ));
        }
        let a = view.attrs;
        let name = view.name.clone();
        let m = a.int("num_scan_inputs", &name)?.ok_or_else(|| view.err("attribute `num_scan_inputs` is missing"))?;
        let body = a.graph("body", &name)?.ok_or_else(|| view.err("attribute `body` is missing"))?;
        let inputs: Vec<&str> = view
            .inputs
            .iter()
            .map(|i| i.ok_or_else(|| view.err("an input is omitted; Scan's inputs are all required")))
            .collect::<Result<_, _>>()?;
        let m = usize::try_from(m)
            .ok()
            .filter(|&m| m >= 1 && m <= inputs.len())
            .ok_or_else(|| view.err(format!("num_scan_inputs {m} is not between 1 and the {} inputs", inputs.len())))?;
        let n_state = inputs.len() - m;
        if body.input.len() != inputs.len() || body.output.len() < n_state {
            return Err(view.err(format!(
                "the body takes {} inputs and gives {} outputs; the node has {} inputs ({n_state} state)",
                body.input.len(),
                body.output.len(),
                inputs.len()
            )));
        }
        let k = body.output.len() - n_state;
        let ints = |attr: &str, n: usize| -> Result<Vec<i64>, ImportError> {
            let v = a.ints(attr, &name)?.unwrap_or_else(|| vec![0; n]);
            if v.len() != n {
                return Err(view.err(format!("`{attr}` has {} entries; expected {n}", v.len())));
            }
            Ok(v)
        };
        let (in_axes, in_dirs) = (ints("scan_input_axes", m)?, ints("scan_input_directions", m)?);
        let (out_axes, out_dirs) = (ints("scan_output_axes", k)?, ints("scan_output_directions", k)?);
        let mut axes = Vec::with_capacity(m);
        let mut len = None;
        for (j, x) in inputs[n_state..].iter().enumerate() {
            let dims = self.shape_of(x);
            let ax = axis_of(view, "scan_input_axes entry", in_axes[j], dims.len())?;
            if len.is_some_and(|l| l != dims[ax]) {
                return Err(view.err(format!("scan input `{x}` has {} steps; an earlier one has {len:?}", dims[ax])));
            }
            len = Some(dims[ax]);
            axes.push(ax);
        }
        let steps = len.unwrap_or(0);
        if steps == 0 {
            return Err(view.err("the scan inputs have no steps"));
        }
        check_supported(&body.node)?;
        // The body's constants are the same every step: decoded once.
        let constants: HashSet<&str> = body.initializer.iter().map(|t| t.name.as_str()).collect();
        for init in &body.initializer {
            self.add_initializer(format!("{name}/{}", init.name), init)?;
        }
        let local: HashSet<&str> = body
            .input
            .iter()
            .map(|i| i.name.as_str())
            .chain(body.node.iter().flat_map(|n| n.output.iter().map(String::as_str)))
            .collect();
        let mut state: Vec<TensorId> = inputs[..n_state].iter().map(|s| self.tensor(s)).collect::<Result<_, _>>()?;
        let scanned: Vec<TensorId> = inputs[n_state..].iter().map(|s| self.tensor(s)).collect::<Result<_, _>>()?;
        let mut outs: Vec<Vec<TensorId>> = vec![Vec::with_capacity(steps); k];
        for t in 0..steps {
            let prefix = format!("{name}/t{t}/");
            let rename = |s: &str| match (local.contains(s), constants.contains(s)) {
                (true, _) => format!("{prefix}{s}"),
                (false, true) => format!("{name}/{s}"),
                (false, false) => s.to_string(),
            };
            for (i, input) in body.input.iter().enumerate() {
                let id = match i.checked_sub(n_state) {
                    None => state[i],
                    Some(j) => {
                        let at = if in_dirs[j] != 0 { steps - 1 - t } else { t } as i64;
                        let op = Op::Slice {
                            starts: vec![at],
                            ends: vec![at + 1],
                            axes: vec![axes[j] as i64],
                            steps: vec![1],
                        };
                        let row =
                            self.emit(&format!("{prefix}{}/step", input.name), op, vec![Some(scanned[j])], &[])?[0];
                        let squeeze = Op::Squeeze { axes: vec![axes[j] as i64] };
                        self.emit(&format!("{prefix}{}/slice", input.name), squeeze, vec![Some(row)], &[])?[0]
                    }
                };
                self.values.insert(rename(&input.name), Value::Tensor(id));
            }
            for (index, node) in body.node.iter().enumerate() {
                let mut node = node.clone();
                node.name = format!("{prefix}{}", display_name(&node, index));
                node.input = node.input.iter().map(|s| if s.is_empty() { s.clone() } else { rename(s) }).collect();
                node.output = node.output.iter().map(|s| if s.is_empty() { s.clone() } else { rename(s) }).collect();
                self.import_node(index, &node)?;
            }
            for (i, output) in body.output.iter().enumerate() {
                let id = self.tensor(&rename(&output.name))?;
                match i.checked_sub(n_state) {
                    None => state[i] = id,
                    Some(j) => outs[j].push(id),
                }
            }
        }
        for (i, id) in state.into_iter().enumerate() {
            if let Some(out) = view.outputs.get(i).filter(|o| !o.is_empty()) {
                self.emit(&format!("{name}/{out}"), Op::Identity, vec![Some(id)], std::slice::from_ref(out))?;
            }
        }
        for (j, mut per_step) in outs.into_iter().enumerate() {
            let Some(out) = view.outputs.get(n_state + j).filter(|o| !o.is_empty()) else { continue };
            if out_dirs[j] != 0 {
                per_step.reverse();
            }
            let rank = self.graph.info(per_step[0]).shape.rank() + 1;
            let ax = axis_of(view, "scan_output_axes entry", out_axes[j], rank)? as i64;
            let mut lead = Vec::with_capacity(per_step.len());
            for (t, id) in per_step.into_iter().enumerate() {
                lead.push(Some(
                    self.emit(&format!("{name}/{out}/t{t}"), Op::Unsqueeze { axes: vec![ax] }, vec![Some(id)], &[])?[0],
                ));
            }
            self.emit(&format!("{name}/{out}"), Op::Concat { axis: ax }, lead, std::slice::from_ref(out))?;
        }
        Ok(())
    }
}
