//! Compile-path timings for the default tiled SGEMM (256×256×256):
//!
//! - `emit/sgemm_256`: KIR → CUDA C emission.
//! - `nvrtc/miss_disk_write`: a cache miss: a fresh [`Compiler`] on a fresh,
//!   empty cache folder, so the time is NVRTC plus writing the disk entry.
//! - `nvrtc/miss_no_disk`: a miss with the disk cache disabled (NVRTC alone).
//! - `nvrtc/hit_memory`: a hit in the compiler's memory cache (the key's
//!   SHA-256 and a map lookup).
//! - `nvrtc/hit_disk`: a fresh [`Compiler`] on a warm folder (key, read,
//!   checksum).
//!
//! Loading NVRTC (once per compiler) is done in setup, outside the timing.
//! Without NVRTC the `nvrtc` group is skipped with the reason; emission
//! still runs. Run after `eval "$(scripts/setup-cuda)"`:
//!
//! `cargo bench --bench compile`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use weft::codegen::{emit_cuda, Arch, CudaSource};
use weft::codegen::{CompileStats, Compiler};
use weft::kernels::{sgemm, SgemmTiles};

/// A fresh, not yet existing folder under the system temp folder.
fn fresh_dir(root: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    root.join(format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A compiler with NVRTC loaded, caching on disk in `dir` (or not at all).
fn loaded_compiler(dir: Option<PathBuf>) -> Compiler {
    let c = Compiler::new(Arch::SM_90).with_cache_dir(dir);
    c.nvrtc().expect("NVRTC was found before");
    c
}

fn bench_emit(c: &mut Criterion) {
    let kernel = sgemm(256, 256, 256, SgemmTiles::default());
    let source = emit_cuda(&kernel).expect("sgemm emits");
    println!("sgemm 256x256x256: CUDA C is {} bytes", source.code.len());
    c.bench_function("emit/sgemm_256", |b| b.iter(|| emit_cuda(black_box(&kernel)).expect("sgemm emits")));
}

fn bench_nvrtc(c: &mut Criterion) {
    let probe = Compiler::new(Arch::SM_90).with_cache_dir(None);
    let info = match probe.nvrtc() {
        Ok(info) => info.clone(),
        Err(e) => {
            println!("skipping the nvrtc benchmarks: {e}");
            println!("(run `eval \"$(scripts/setup-cuda)\"` first)");
            return;
        }
    };
    println!("NVRTC {}.{}", info.version.0, info.version.1);
    let source: CudaSource = emit_cuda(&sgemm(256, 256, 256, SgemmTiles::default())).expect("sgemm emits");

    let root = std::env::temp_dir().join(format!("weft-bench-compile-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("temp folder");

    let mut g = c.benchmark_group("nvrtc");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));

    g.bench_function("miss_disk_write", |b| {
        b.iter_batched(
            || loaded_compiler(Some(fresh_dir(&root))),
            |compiler| {
                let ptx = compiler.compile(black_box(&source)).expect("sgemm compiles");
                (compiler, ptx)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("miss_no_disk", |b| {
        b.iter_batched(
            || loaded_compiler(None),
            |compiler| {
                let ptx = compiler.compile(black_box(&source)).expect("sgemm compiles");
                (compiler, ptx)
            },
            BatchSize::PerIteration,
        )
    });

    // One warm folder and a compiler whose memory cache holds the entry.
    let warm = fresh_dir(&root);
    let warm_compiler = loaded_compiler(Some(warm.clone()));
    warm_compiler.compile(&source).expect("sgemm compiles");
    g.sample_size(50).measurement_time(Duration::from_secs(3));
    g.bench_function("hit_memory", |b| b.iter(|| warm_compiler.compile(black_box(&source)).expect("memory hit")));
    g.bench_function("hit_disk", |b| {
        b.iter_batched(
            || loaded_compiler(Some(warm.clone())),
            |compiler| {
                let ptx = compiler.compile(black_box(&source)).expect("disk hit");
                (compiler, ptx)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // The hits really were hits: one NVRTC call for the warm folder, the rest
    // from memory.
    let s: CompileStats = warm_compiler.stats();
    assert_eq!(s.nvrtc_invocations, 1, "{s:?}");
    assert!(s.memory_hits > 0, "{s:?}");
    let disk = loaded_compiler(Some(warm));
    disk.compile(&source).expect("disk hit");
    assert_eq!(disk.stats().disk_hits, 1, "{:?}", disk.stats());
    assert_eq!(disk.stats().nvrtc_invocations, 0, "{:?}", disk.stats());

    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, bench_emit, bench_nvrtc);
criterion_main!(benches);
