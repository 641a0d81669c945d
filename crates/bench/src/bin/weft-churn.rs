//! `weft-churn`: register, serve and remove a large model's tenant over and
//! over on the interpreter, and report whether the process keeps anything
//! of the tenants that left: the engine's tenants, prepared kernels,
//! modules and weight bytes after each removal (all must be 0), and the
//! resident set size after a warm-up and at the end. Exits 1 when anything
//! stays behind or the resident set grows past `--max-growth-mib`.
//!
//! The model is a multilayer perceptron of `--layers` `width × width`
//! matrices (4096 × 4096 f32 each: 64 MiB of weights per layer), so every
//! cycle uploads and frees that much, allocates and frees its arena, and
//! runs one request; it is large in bytes, cheap to run.
//!
//! ```sh
//! cargo run --release -p weft-bench --bin weft-churn -- --cycles 1000
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use weft::engine::{Backend, Engine, EngineConfig};
use weft::graph::builder::GraphBuilder;
use weft::graph::DType;
use weft::lower::{lower, BufferKind, LowerOptions, Program};
use weft_bench::soak::resident_bytes;
use weft_bench::BenchError;

#[derive(Parser, Debug)]
#[command(name = "weft-churn", about = "Register/serve/remove a large model's tenant many times; report what stays")]
struct Cli {
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// Width of each square weight matrix.
    #[arg(long, default_value_t = 4096)]
    width: usize,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Resident-set growth from the end of the warm-up to the end that
    /// counts as a leak, MiB.
    #[arg(long, default_value_t = 64)]
    max_growth_mib: u64,
}

fn model(width: usize, layers: usize) -> Result<Program, BenchError> {
    let mut g = GraphBuilder::new("churn_mlp");
    let mut x = g.input("x", DType::F32, &[1, width]);
    for l in 0..layers {
        let w = g.random_constant(&format!("w{l}"), &[width, width], 1.0 / (width as f64).sqrt());
        let y = g.matmul(x, w).map_err(|e| BenchError::graph("churn_mlp", e))?;
        x = g.relu(y).map_err(|e| BenchError::graph("churn_mlp", e))?;
    }
    g.output(x);
    lower(&g.finish(), &LowerOptions::default()).map_err(|e| BenchError::lower("churn_mlp", e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("weft-churn: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<bool, BenchError> {
    if cli.cycles < 20 || cli.width == 0 || cli.layers == 0 {
        return Err(BenchError::invalid(
            "arguments",
            "--cycles must be at least 20 (10 are warm-up), --width and --layers positive",
        ));
    }
    let program = Arc::new(model(cli.width, cli.layers)?);
    let weight_mib =
        program.buffers.values().filter(|b| b.kind == BufferKind::Weight).map(|b| b.len() * 4).sum::<usize>() >> 20;
    println!(
        "weft-churn: {} cycles of register / one request / remove, {} layers of {w}x{w} ({weight_mib} MiB of weights), interpreter",
        cli.cycles,
        cli.layers,
        w = cli.width
    );
    let engine = Engine::new(Backend::Interp, EngineConfig::default())?;
    let inputs = program.seeded_inputs(1);
    let (mut warm, mut left_behind) = (0u64, 0usize);
    let started = Instant::now();
    for cycle in 0..cli.cycles {
        let t = engine.register(program.clone(), Duration::from_secs(3600), 1.0)?;
        let response = engine.submit(t, inputs.clone())?.wait()?;
        if response.outputs.len() != 1 {
            return Err(BenchError::invalid(
                format!("cycle {cycle}"),
                format!("{} outputs, expected 1", response.outputs.len()),
            ));
        }
        engine.remove(t)?;
        let since = Instant::now();
        let stats = loop {
            let s = engine.stats();
            if s.tenants == 0 || since.elapsed() > Duration::from_secs(60) {
                break s;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if (stats.tenants, stats.prepared_kernels, stats.prepared_modules, stats.weight_bytes) != (0, 0, 0, 0) {
            left_behind += 1;
            eprintln!(
                "cycle {cycle}: left behind {} tenants, {} kernels, {} modules, {} weight bytes",
                stats.tenants, stats.prepared_kernels, stats.prepared_modules, stats.weight_bytes
            );
        }
        if cycle == 9 {
            warm = resident_bytes();
        }
        if (cycle + 1) % 100 == 0 || cycle + 1 == cli.cycles {
            println!(
                "{:>5} cycles, {:>6.1} s: resident {} MiB",
                cycle + 1,
                started.elapsed().as_secs_f64(),
                resident_bytes() >> 20
            );
        }
    }
    let end = resident_bytes();
    let growth = end.saturating_sub(warm) >> 20;
    println!(
        "resident after 10 cycles {} MiB, at the end {} MiB (growth {growth} MiB, limit {}); cycles leaving state behind: {left_behind}",
        warm >> 20,
        end >> 20,
        cli.max_growth_mib
    );
    Ok(left_behind == 0 && growth <= cli.max_growth_mib)
}
