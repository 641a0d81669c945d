//! A program's memory: what an executor holds for it, and the budget
//! lowering refuses it above.

use weft_graph::{DType, GraphBuilder, Tensor};
use weft_lower::{lower, BufferKind, LowerError, LowerOptions};

/// y = relu(x @ w) + b over x: [rows, 64], w: [64, 32], b: [32].
fn mlp(rows: usize) -> weft_graph::Graph {
    let mut g = GraphBuilder::new("mlp");
    let x = g.input("x", DType::F32, &[rows, 64]);
    let w = g.constant("w", Tensor::f32(vec![64, 32], vec![0.5; 64 * 32]));
    let b = g.constant("b", Tensor::f32(vec![32], vec![0.25; 32]));
    let h = g.matmul(x, w).unwrap();
    let r = g.relu(h).unwrap();
    let y = g.add(r, b).unwrap();
    g.output(y);
    g.finish()
}

#[test]
fn memory_counts_every_buffer_by_kind() {
    let program = lower(&mlp(100), &LowerOptions::default()).unwrap();
    let m = program.memory();
    // Counted independently of `memory`, from the buffers' shapes.
    let bytes = |kind: BufferKind| -> u64 {
        program
            .buffers
            .values()
            .filter(|b| b.kind == kind)
            .map(|b| b.shape.iter().product::<usize>() as u64 * b.elem.size_bytes())
            .sum()
    };
    assert!(m.weights >= (64 * 32 + 32) * 4, "w and b at least");
    assert_eq!(m.weights, bytes(BufferKind::Weight));
    assert_eq!(m.inputs, 100 * 64 * 4);
    assert_eq!(m.activations, bytes(BufferKind::Activation));
    assert!(m.activations >= 100 * 32 * 4, "the output at least");
    assert_eq!(m.outputs, 100 * 32 * 4);
    assert_eq!(m.device(), m.weights + m.inputs + m.activations);
    assert_eq!(m.host(), m.device() + m.weights + m.outputs);
    // The largest buffer is the input (25.6 kB), then the output.
    assert_eq!(m.largest[0], ("x".to_string(), 100 * 64 * 4), "{:?}", m.largest);
    assert!(m.largest.windows(2).all(|w| w[0].1 >= w[1].1), "largest first: {:?}", m.largest);
}

#[test]
fn memory_grows_with_the_bound_shape() {
    let small = lower(&mlp(10), &LowerOptions::default()).unwrap().memory();
    let large = lower(&mlp(1000), &LowerOptions::default()).unwrap().memory();
    assert_eq!(small.weights, large.weights, "weights do not depend on the batch");
    assert_eq!(large.arena(), small.arena() * 100, "one arena scales with the rows");
}

#[test]
fn lowering_refuses_a_program_over_the_budget_naming_its_largest_tensors() {
    let graph = mlp(100);
    let fits = lower(&graph, &LowerOptions::default()).unwrap().memory();
    for on_host in [true, false] {
        let needed = if on_host { fits.host() } else { fits.device() };
        let at = |limit: u64| LowerOptions { max_memory: Some(limit), on_host, ..LowerOptions::default() };
        assert!(lower(&graph, &at(needed)).is_ok(), "exactly the budget fits");
        let e = lower(&graph, &at(needed - 1)).expect_err("one byte short");
        let LowerError::Memory(mem) = &e else { panic!("not the budget's refusal: {e}") };
        assert_eq!((mem.needed, mem.limit), (needed, needed - 1));
        assert_eq!(mem.largest[0].0, "x");
        let text = e.to_string();
        assert!(text.contains("`x`") && text.contains("--max-memory") && text.contains("mlp"), "{text}");
    }
}
