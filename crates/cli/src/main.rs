//! `weft`: inspect, compile and run models.
//!
//! ```text
//! weft inspect MODEL.onnx [--shape NAME=1x3x224x224]… [--dim NAME=N]… [--max-memory BYTES]
//! weft compile MODEL.onnx [--shape …] [--arch sm_90] --out DIR
//! weft pack MODEL.onnx[xN] MODEL2.onnx … [--mode coalesce|constrain|auto] [--knob 0..1] [--out DIR]
//! weft run MODEL.onnx [--backend auto|interp|cuda|cpu] [--shape …] [--input NAME=FILE.npy]… [--seed N] --output-dir DIR
//! weft serve --model-repository DIR [--http-port 8000] [--grpc-port 8001] [--metrics-port 8002] [--backend …] [--host 127.0.0.1]
//! ```
//!
//! Every error exits non-zero with a one-line cause.

mod commands;
mod npy;
mod pack;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use commands::Bindings;

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: many tenants' inference on one GPU — inspect, compile and run models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's inputs, outputs, ops, shapes, parameters and FLOPs.
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// Binds a dynamic input's shape, e.g. `--shape input=1x3x224x224` (repeatable).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Binds a symbolic dimension wherever it appears, e.g. `--dim batch=1` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// The memory budget, bytes (K/M/G suffixes): a model needing more is
        /// refused before anything is allocated. Default: the GPU's memory,
        /// or three quarters of the host's available memory.
        #[arg(long, value_name = "BYTES", value_parser = parse_max_memory)]
        max_memory: Option<u64>,
        /// Also list every node.
        #[arg(long)]
        nodes: bool,
    },
    /// Lower a model and compile every kernel to PTX: writes each kernel's `.cu`
    /// and `.ptx` and a table of resources to DIR.
    Compile {
        model: PathBuf,
        /// Binds a dynamic input's shape, e.g. `--shape input=1x3x224x224` (repeatable).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Binds a symbolic dimension wherever it appears, e.g. `--dim batch=1` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// The memory budget, bytes (K/M/G suffixes): a model needing more is
        /// refused before anything is allocated. Default: the GPU's memory,
        /// or three quarters of the host's available memory.
        #[arg(long, value_name = "BYTES", value_parser = parse_max_memory)]
        max_memory: Option<u64>,
        /// Target architecture (`sm_90`, `sm_80`, …); default: the GPU's, else sm_90.
        #[arg(long)]
        arch: Option<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Plan how several tenants share the GPU: print the bundles (slots,
    /// budgets, predicted occupancy), verify them on the interpreter, and write
    /// the plan as a Chrome/Perfetto trace and an SVG timeline, and each
    /// distinct bundle module's CUDA C and PTX with their figures (bundles.tsv).
    Pack {
        /// Models, each optionally with a tenant count: `resnet.onnxx4 bert.onnx`.
        #[arg(required = true, value_name = "MODEL.onnx[xN]")]
        models: Vec<String>,
        /// Coalesce (full grids side by side), constrain (block budgets) or auto.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        /// 0 = latency (nobody slower than alone) … 1 = throughput (widest bundles).
        #[arg(long, default_value_t = 1.0)]
        knob: f64,
        /// Binds a dynamic input's shape in every model, e.g. `--shape input=1x3x224x224` (repeatable).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Binds a symbolic dimension wherever it appears, e.g. `--dim batch=1` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// The memory budget, bytes (K/M/G suffixes): a model needing more is
        /// refused before anything is allocated. Default: the GPU's memory,
        /// or three quarters of the host's available memory.
        #[arg(long, value_name = "BYTES", value_parser = parse_max_memory)]
        max_memory: Option<u64>,
        /// Folder for plan.trace.json, plan.svg, bundles.tsv and bundles/.
        #[arg(long, default_value = "weft-pack")]
        out: PathBuf,
        /// Skip running the plan on the interpreter.
        #[arg(long)]
        no_verify: bool,
        /// Seed of the tenants' random inputs for verification.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Draw only the first N bundles in plan.svg (the trace has them all).
        #[arg(long, value_name = "N")]
        draw_first: Option<usize>,
        /// Bundle modules in the best form that keeps their bodies' occupancy
        /// (`best`), or in the default form only (`default`: bodies inlined).
        #[arg(long, value_enum, default_value_t = Forms::Best)]
        bundle_forms: Forms,
        /// Compile at most N bundle modules while planning (each new set of
        /// bodies a join would launch is compiled to judge its occupancy);
        /// later joins of sets not compiled are judged on their kernels'
        /// own figures.
        #[arg(long, value_name = "N", default_value_t = 256)]
        max_module_compiles: usize,
    },
    /// Run a model and write every graph output to DIR/<name>.npy.
    Run {
        model: PathBuf,
        /// `auto` uses CUDA where a GPU is present, else the CPU interpreter.
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// Binds a dynamic input's shape, e.g. `--shape input=1x3x224x224` (repeatable).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Binds a symbolic dimension wherever it appears, e.g. `--dim batch=1` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// The memory budget, bytes (K/M/G suffixes): a model needing more is
        /// refused before anything is allocated. Default: the GPU's memory,
        /// or three quarters of the host's available memory.
        #[arg(long, value_name = "BYTES", value_parser = parse_max_memory)]
        max_memory: Option<u64>,
        /// An input's value from a `.npy` file (repeatable); inputs not given are seeded random values.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Seed for inputs not given.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output_dir: PathBuf,
    },
    /// Serve a model repository over the Open Inference Protocol (REST and
    /// gRPC) with Prometheus metrics, until ctrl-c or SIGTERM.
    Serve {
        /// DIR/<model>/[<version>/]model.onnx, with an optional DIR/<model>/config.toml.
        #[arg(long)]
        model_repository: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[arg(long, default_value_t = 8000)]
        http_port: u16,
        #[arg(long, default_value_t = 8001)]
        grpc_port: u16,
        #[arg(long, default_value_t = 8002)]
        metrics_port: u16,
        /// `auto` uses CUDA where a GPU is present, else the CPU interpreter.
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// The largest request body or gRPC message, bytes.
        #[arg(long, default_value_t = weft_serve::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// Seconds shutdown waits for requests in flight.
        #[arg(long, default_value_t = 30)]
        drain_timeout: u64,
        /// The scheduling policy: weft's SLO-aware bundles, or one kernel at a
        /// time in arrival order (to compare against).
        #[arg(long, value_enum, default_value_t = Policy::SloAware)]
        policy: Policy,
        /// Devices to serve on, one executor and serving loop each; models
        /// are placed on the least loaded. Default: every visible GPU on
        /// CUDA, one executor otherwise.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        devices: Option<u32>,
        /// The memory budget, bytes (K/M/G suffixes): a model needing more is
        /// refused before anything is allocated. Default: the GPU's memory,
        /// or three quarters of the host's available memory.
        #[arg(long, value_name = "BYTES", value_parser = parse_max_memory)]
        max_memory: Option<u64>,
    },
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Forms {
    Best,
    Default,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Coalesce,
    Constrain,
    Auto,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    SloAware,
    TimeOnly,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Auto,
    Interp,
    Cuda,
    /// The emitted CUDA C compiled for the host with the system C++ compiler.
    Cpu,
}

fn parse_max_memory(text: &str) -> Result<u64, String> {
    weft::graph::memory::parse_bytes(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model, shapes, dims, max_memory, nodes } => {
            commands::inspect(&model, &Bindings { shapes: &shapes, dims: &dims, max_memory }, nodes)
        }
        Command::Compile { model, shapes, dims, max_memory, arch, out } => {
            commands::compile(&model, &Bindings { shapes: &shapes, dims: &dims, max_memory }, arch.as_deref(), &out)
        }
        Command::Pack {
            models,
            mode,
            knob,
            shapes,
            dims,
            max_memory,
            out,
            no_verify,
            seed,
            draw_first,
            bundle_forms,
            max_module_compiles,
        } => pack::pack(&pack::PackArgs {
            models: &models,
            mode: match mode {
                Mode::Coalesce => weft::pack::PackMode::Coalesce,
                Mode::Constrain => weft::pack::PackMode::Constrain,
                Mode::Auto => weft::pack::PackMode::Auto,
            },
            knob,
            bind: Bindings { shapes: &shapes, dims: &dims, max_memory },
            out: &out,
            verify: !no_verify,
            seed,
            draw_first,
            forms: match bundle_forms {
                Forms::Best => weft::pack::FormChoice::Best,
                Forms::Default => weft::pack::FormChoice::Default,
            },
            max_module_compiles,
        }),
        Command::Run { model, backend, shapes, dims, max_memory, inputs, seed, output_dir } => {
            let bind = Bindings { shapes: &shapes, dims: &dims, max_memory };
            commands::run(&model, backend, &bind, &inputs, seed, &output_dir)
        }
        Command::Serve {
            model_repository,
            host,
            http_port,
            grpc_port,
            metrics_port,
            backend,
            max_body_bytes,
            drain_timeout,
            policy,
            devices,
            max_memory,
        } => {
            let options = weft_serve::ServeOptions {
                repository: model_repository,
                host,
                http_port,
                grpc_port,
                metrics_port,
                backend: match backend {
                    Backend::Auto => weft::Backend::Auto,
                    Backend::Interp => weft::Backend::Interp,
                    Backend::Cuda => weft::Backend::Cuda,
                    Backend::Cpu => weft::Backend::Cpu,
                },
                max_body_bytes,
                drain_timeout: std::time::Duration::from_secs(drain_timeout),
                engine: weft::EngineConfig {
                    policy: match policy {
                        Policy::SloAware => weft::EngineConfig::default().policy,
                        Policy::TimeOnly => weft::sched::SchedulerConfig::time_only_fifo(),
                    },
                    devices: devices.map(|n| n as usize),
                    max_memory,
                    ..weft::EngineConfig::default()
                },
            };
            weft_serve::run(options, |s| {
                let names: Vec<String> =
                    s.models().loaded().iter().map(|m| format!("{} (v{})", m.name, m.version)).collect();
                let devices = s.models().engine().devices();
                println!(
                    "weft serve on {} ({devices} device{}): http {}, grpc {}, metrics http://{}/metrics; models: {}",
                    s.models().engine().backend(),
                    if devices == 1 { "" } else { "s" },
                    s.http_addr(),
                    s.grpc_addr(),
                    s.metrics_addr(),
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                );
            })
            .map_err(commands::CliError::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the cause chain joined, newlines folded.
            let msg = e.to_string().split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
            eprintln!("weft: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
