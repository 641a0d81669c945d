//! The lowering driver: walks the graph in topological order, forms
//! epilogue chains, and hands each node to its op family's template.

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;
use weft_graph::{Graph, Op, TensorId};

use crate::context::{LowerCtx, LowerOptions};
use crate::epilogue::{Epilogue, EpilogueOp};
use crate::error::LowerError;
use crate::ops;
use crate::program::Program;

/// Lowers `graph` to a program. Every unsupported node is reported at once.
pub fn lower(graph: &Graph, options: &LowerOptions) -> Result<Program, LowerError> {
    let mut ctx = LowerCtx::new(graph, options.clone());
    let consumers = consumers(graph);
    let outputs: HashSet<TensorId> = graph.outputs.iter().copied().collect();
    let mut fused: HashSet<NodeIndex> = HashSet::new();
    let mut unsupported = Vec::new();
    for n in graph.topo_order() {
        if fused.contains(&n) {
            continue;
        }
        let node = &graph.nodes[n];
        let Some(&first) = node.outputs.first() else {
            return Err(LowerError::Internal { node: node.name.clone(), message: "node has no outputs".into() });
        };
        // A BatchNormalization folded into the conv's weights is part of the
        // conv's kernel: the epilogue chain starts after it (see ops::conv).
        let mut start = first;
        if options.fold_batchnorm {
            if let Some(bn) = ops::conv::foldable_batchnorm(graph, node) {
                fused.insert(bn);
                start = graph.nodes[bn].outputs[0];
            }
        }
        let epi = if options.fuse_epilogues && ops::accepts_epilogue(&node.op) && node.outputs.len() == 1 {
            chain(&ctx, graph, start, &consumers, &outputs, &mut fused)
        } else {
            Epilogue::none(start)
        };
        match ops::lower_node(&mut ctx, node, &epi) {
            Ok(()) => {}
            Err(e @ LowerError::Unsupported { .. }) => unsupported.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        return Err(LowerError::Unsupported {
            node: format!("{} nodes", unsupported.len()),
            op: "several ops".into(),
            reason: format!("\n  {}", unsupported.join("\n  ")),
        });
    }
    let program = ctx.finish()?;
    if let Some(limit) = options.max_memory {
        program.check_memory(limit, options.on_host)?;
    }
    Ok(program)
}

/// Consumers of each tensor.
fn consumers(graph: &Graph) -> HashMap<TensorId, Vec<NodeIndex>> {
    let mut map: HashMap<TensorId, Vec<NodeIndex>> = HashMap::new();
    for n in graph.nodes.node_indices() {
        for t in graph.nodes[n].inputs.iter().flatten() {
            map.entry(*t).or_default().push(n);
        }
    }
    map
}

/// Greedily extends an epilogue from `start`: while the current tensor has
/// exactly one consumer, is not a graph output, and that consumer is a
/// same-shape elementwise op whose other operand is already computed, fuse it.
fn chain(
    ctx: &LowerCtx,
    graph: &Graph,
    start: TensorId,
    consumers: &HashMap<TensorId, Vec<NodeIndex>>,
    outputs: &HashSet<TensorId>,
    fused: &mut HashSet<NodeIndex>,
) -> Epilogue {
    let mut epi = Epilogue::none(start);
    let mut cur = start;
    loop {
        if outputs.contains(&cur) {
            break;
        }
        let Some([next]) = consumers.get(&cur).map(Vec::as_slice) else { break };
        let node = &graph.nodes[*next];
        if node.outputs.len() != 1 || graph.info(node.outputs[0]).shape != graph.info(cur).shape {
            break;
        }
        let op = match (&node.op, node.inputs.as_slice()) {
            (Op::Unary(u), [Some(x)]) if *x == cur => EpilogueOp::Unary(*u),
            (Op::Binary(b), [Some(x), Some(y)]) if graph.info(node.outputs[0]).dtype.is_float() => {
                let (other, acc_is_lhs) = if *x == cur && *y != cur {
                    (*y, true)
                } else if *y == cur && *x != cur {
                    (*x, false)
                } else {
                    break;
                };
                if !ctx.is_available(other) {
                    break;
                }
                EpilogueOp::Binary { op: *b, other, acc_is_lhs }
            }
            _ => break,
        };
        epi.ops.push(op);
        epi.nodes.push(node.name.clone());
        fused.insert(*next);
        cur = node.outputs[0];
        epi.output = cur;
    }
    epi
}
