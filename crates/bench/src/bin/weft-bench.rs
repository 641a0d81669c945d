//! `weft-bench`: the packer's GPU benchmarks.
//!
//! - `micro`: the ResNet-18 conv2_2 GEMM of 2..120 tenants through the
//!   CUDA executor, time-only, coalesced, constrained and batched
//!   ([`bench::micro`]);
//! - `e2e`: batch-1 tenants of whole models served by `weft::Engine` under
//!   the time-only, space-only and packed policies: requests/s, the
//!   fraction within SLO, p50/p99 latency and the engine's stats
//!   ([`bench::e2e`]);
//! - `overhead`: host time per bundle from "plan decided" to "launch
//!   returned" on a compiled-cache hit, through the CUDA executor
//!   ([`bench::overhead`]);
//! - `latency`: batch-1 single-request latency per model through
//!   `weft::Engine` (median, p99),
//!   the weft side of the comparison with PyTorch eager and CUDA graphs
//!   (`scripts/torch_latency.py`, `scripts/latency_report.py`)
//!   ([`bench::latency`]);
//! - `all`: the four with modest defaults, into `--out`.
//!
//! Each writes `<out>/<name>.json` (raw numbers and the run's device,
//! driver, commit and command), `<name>.csv` and `<name>.txt` (the table it
//! prints). Without a GPU or NVRTC each prints `skipping <name>: <reason>`
//! and exits 0, or 1 when `WEFT_REQUIRE_GPU=1`. A failed correctness check
//! of a measured variant exits 1 after writing the results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_bench as bench;

use bench::e2e::{E2eArgs, WORKLOADS};
use bench::latency::LatencyArgs;
use bench::micro::MicroArgs;
use bench::overhead::OverheadArgs;
use bench::{parse_counts, BenchError, Ctx, Outcome};

#[derive(Parser, Debug)]
#[command(name = "weft-bench", about = "weft's packer benchmarks on a GPU")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// ResNet-18 conv2_2 GEMM throughput through the CUDA executor: time-only, coalesced, constrained, batched.
    Micro {
        /// Tenant counts.
        #[arg(long, default_value = "2,4,8,16,32,64,120", value_parser = counts)]
        tenants: Counts,
        /// Timed rounds per configuration (the median is reported).
        #[arg(long, default_value_t = 30)]
        reps: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        #[arg(long, default_value_t = 256)]
        m: u32,
        #[arg(long, default_value_t = 128)]
        n: u32,
        #[arg(long, default_value_t = 1152)]
        k: u32,
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Whole models, batch-1 tenants served by the engine: requests/s, within-SLO fraction, p50/p99 latency.
    E2e {
        #[arg(long, default_value = "1,4,16,32", value_parser = counts)]
        tenants: Counts,
        /// Comma-separated workloads: resnet18, resnet50, mix_minilm.
        #[arg(long, default_value = "resnet18,resnet50,mix_minilm", value_delimiter = ',')]
        workloads: Vec<String>,
        #[arg(long, default_value_t = 10)]
        reps: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// The packed (SLO-aware) policy's knob: 0 latency .. 1 throughput.
        #[arg(long, default_value_t = 1.0)]
        knob: f64,
        /// Where the ONNX models are (scripts/fetch-models).
        #[arg(long, default_value = ".cache/models")]
        models: PathBuf,
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Host time per bundle from plan to launch, on a compiled-cache hit.
    Overhead {
        #[arg(long, default_value_t = 32)]
        tenants: usize,
        #[arg(long, default_value_t = 2000)]
        iters: usize,
        #[arg(long, default_value_t = 200)]
        warmup: usize,
        /// Image side of the ResNet-18 tenants.
        #[arg(long, default_value_t = 224)]
        image: usize,
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Batch-1 latency per model through the engine, one request at a time: median and p99.
    Latency {
        /// Timed requests per model (after the warm-up).
        #[arg(long, default_value_t = 200)]
        reps: usize,
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// Comma-separated models (default all): resnet18, resnet50, squeezenet, ppocr_cls, minilm_l3.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where the ONNX models are (scripts/fetch-models).
        #[arg(long, default_value = ".cache/models")]
        models: PathBuf,
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// micro, e2e, overhead and latency with modest defaults.
    All {
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
        #[arg(long, default_value = ".cache/models")]
        models: PathBuf,
    },
}

/// A comma-separated list of tenant counts (one argument, so not a `Vec`
/// to clap).
#[derive(Clone, Debug)]
struct Counts(Vec<usize>);

fn counts(s: &str) -> Result<Counts, String> {
    parse_counts(s).map(Counts)
}

fn require_gpu() -> bool {
    std::env::var("WEFT_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// Runs one subcommand, `run(ctx, args)`; `true` when it measured and every
/// check passed or it skipped where skipping is allowed.
fn run_one<A>(name: &str, run: fn(&mut Ctx, &A) -> Result<Outcome, BenchError>, args: &A) -> bool {
    let mut ctx = match Ctx::open() {
        Ok(ctx) => ctx,
        Err(reason) => {
            println!("skipping {name}: {reason}");
            if require_gpu() {
                eprintln!("weft-bench {name}: WEFT_REQUIRE_GPU=1 but it could not run");
                return false;
            }
            return true;
        }
    };
    match run(&mut ctx, args) {
        Ok(Outcome::Ran { checks_failed: 0 }) => true,
        Ok(Outcome::Ran { checks_failed }) => {
            eprintln!("weft-bench {name}: {checks_failed} correctness checks FAILED (results written, flagged)");
            false
        }
        Err(e) => {
            eprintln!("weft-bench {name}: error: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Cmd::Micro { tenants, reps, warmup, m, n, k, out } => {
            let a = MicroArgs { tenants: tenants.0, reps: reps.max(1), warmup, m, n, k, out };
            run_one("micro", bench::micro::run, &a)
        }
        Cmd::E2e { tenants, workloads, reps, warmup, knob, models, out } => {
            let a = E2eArgs { tenants: tenants.0, workloads, reps: reps.max(1), warmup, knob, models, out };
            run_one("e2e", bench::e2e::run, &a)
        }
        Cmd::Overhead { tenants, iters, warmup, image, out } => {
            let a = OverheadArgs { tenants: tenants.max(1), iters: iters.max(1), warmup, image, out };
            run_one("overhead", bench::overhead::run, &a)
        }
        Cmd::Latency { reps, warmup, only, models, out } => {
            let a = LatencyArgs { reps: reps.max(1), warmup, only, models, out };
            run_one("latency", bench::latency::run, &a)
        }
        Cmd::All { out, models } => {
            let micro = MicroArgs {
                tenants: vec![2, 4, 8, 16, 32, 64, 120],
                reps: 20,
                warmup: 3,
                m: 256,
                n: 128,
                k: 1152,
                out: out.clone(),
            };
            let e2e = E2eArgs {
                tenants: vec![1, 4, 16, 32],
                workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
                reps: 5,
                warmup: 1,
                knob: 1.0,
                models: models.clone(),
                out: out.clone(),
            };
            let overhead = OverheadArgs { tenants: 32, iters: 1000, warmup: 100, image: 224, out: out.clone() };
            let latency = LatencyArgs { reps: 200, warmup: 20, only: Vec::new(), models, out };
            // Every part runs even when an earlier one failed.
            let results = [
                run_one("micro", bench::micro::run, &micro),
                run_one("e2e", bench::e2e::run, &e2e),
                run_one("overhead", bench::overhead::run, &overhead),
                run_one("latency", bench::latency::run, &latency),
            ];
            results.iter().all(|&ok| ok)
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
