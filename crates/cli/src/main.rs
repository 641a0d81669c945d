//! `weft`: inspect, compile and run models.
//!
//! ```text
//! weft inspect MODEL.onnx [--shape NAME=1x3x224x224]… [--dim NAME=N]…
//! weft compile MODEL.onnx [--shape …] [--arch sm_90] --out DIR
//! weft run MODEL.onnx [--backend auto|interp|cuda] [--shape …] [--input NAME=FILE.npy]… [--seed N] --output-dir DIR
//! ```
//!
//! Every error exits non-zero with a one-line cause.

mod commands;
mod npy;

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
        /// Target architecture (`sm_90`, `sm_80`, …); default: the GPU's, else sm_90.
        #[arg(long)]
        arch: Option<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
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
        /// An input's value from a `.npy` file (repeatable); inputs not given are seeded random values.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Seed for inputs not given.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output_dir: PathBuf,
    },
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Auto,
    Interp,
    Cuda,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model, shapes, dims, nodes } => {
            commands::inspect(&model, &Bindings { shapes: &shapes, dims: &dims }, nodes)
        }
        Command::Compile { model, shapes, dims, arch, out } => {
            commands::compile(&model, &Bindings { shapes: &shapes, dims: &dims }, arch.as_deref(), &out)
        }
        Command::Run { model, backend, shapes, dims, inputs, seed, output_dir } => {
            commands::run(&model, backend, &Bindings { shapes: &shapes, dims: &dims }, &inputs, seed, &output_dir)
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
