//! weft's benchmarks and evaluation harnesses, kept out of the library
//! crates they measure.
//!
//! - the packer on a GPU, behind the `weft-bench` binary: [`micro`], [`e2e`],
//!   [`overhead`], [`latency`]. They measure the production paths and nothing
//!   beside them: `e2e` and `latency` the serving [`weft::Engine`] through its
//!   public API, `micro` and `overhead` bundles launched through
//!   [`GpuExecutor`] as a [`weft::pack::Executor`] over buffers it holds
//!   (allocated and uploaded once, then launched again and again);
//! - the predictor's evaluation on the simulator, [`predictor_eval`] (run by
//!   `examples/predictor_eval.rs`);
//! - the serving study on the simulator, `examples/serve_bench.rs`.
//!
//! This root holds the parts of `weft-bench` its subcommands share: the GPU
//! context and the reasons to skip, the run's metadata (device, driver,
//! commit, command), statistics, and writing raw numbers (JSON, CSV) beside a
//! human table.
//!
//! Device times come from the executor's [`Timing`](weft::pack::Timing)
//! (CUDA events around each launch), request latencies from the engine's
//! [`Response`](weft::Response); warm-up repetitions are excluded and medians
//! of several reported. Nothing here runs without a GPU: [`Ctx::open`] says
//! why instead.

pub mod e2e;
pub mod latency;
pub mod micro;
pub mod overhead;
pub mod predictor_eval;
pub mod soak;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use weft::codegen::EmitError;
use weft::cuda::DeviceInfo;
use weft::gpu::GpuExecutor;
use weft::graph::onnx::ImportError;
use weft::graph::GraphError;
use weft::kir::{HostBuffer, Type};
use weft::lower::LowerError;
use weft::pack::{ExecError, PackError, RunError, ScheduleError};
/// Medians and percentiles: the scheduler's one definition (nearest rank).
pub use weft::sched::metrics::{median, quantile};
use weft::{EngineError, RequestError};

/// Why a benchmark failed (not: why it was skipped, see [`Outcome`]).
///
/// Every source stays typed; the large ones are boxed so a `Result` of
/// this stays small.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Emit(Box<EmitError>),
    #[error(transparent)]
    Pack(Box<PackError>),
    #[error(transparent)]
    Schedule(Box<ScheduleError>),
    #[error(transparent)]
    Exec(Box<ExecError>),
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error(transparent)]
    Request(Box<RequestError>),
    #[error("model `{model}`: {source}")]
    Graph {
        model: String,
        #[source]
        source: Box<GraphError>,
    },
    #[error("{path}: {source}")]
    Import {
        path: String,
        #[source]
        source: Box<ImportError>,
    },
    #[error("lowering `{model}`: {source}")]
    Lower {
        model: String,
        #[source]
        source: Box<LowerError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// `From` for the sources a benchmark meets with `?`, boxing each.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for BenchError {
            fn from(e: $ty) -> BenchError {
                BenchError::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Emit(EmitError),
    Pack(PackError),
    Schedule(ScheduleError),
    Exec(ExecError),
    Run(RunError),
    Engine(EngineError),
    Request(RequestError),
);

impl BenchError {
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> BenchError {
        BenchError::Invalid { what: what.into(), reason: reason.into() }
    }

    /// A graph error while building `model`.
    pub fn graph(model: impl Into<String>, source: GraphError) -> BenchError {
        BenchError::Graph { model: model.into(), source: Box::new(source) }
    }

    /// A lowering error for `model`.
    pub fn lower(model: impl Into<String>, source: LowerError) -> BenchError {
        BenchError::Lower { model: model.into(), source: Box::new(source) }
    }
}

/// How a subcommand that measured ended (one that cannot measure here never
/// starts: [`Ctx::open`] says why).
#[derive(Debug)]
pub enum Outcome {
    /// `checks_failed` counts results that disagreed with a reference
    /// (their numbers are still written, flagged).
    Ran { checks_failed: usize },
}

/// Facts about the run, written into every result file.
#[derive(Clone, Debug)]
pub struct Meta {
    pub device: String,
    pub arch: String,
    pub sm_count: u32,
    pub l2_bytes: u64,
    /// The driver's version string (nvidia-smi), where it answers.
    pub driver: Option<String>,
    /// The CUDA version the driver supports.
    pub cuda_driver_api: String,
    pub commit: String,
    pub command: String,
    /// Seconds since the Unix epoch when the subcommand started.
    pub unix_time: u64,
    pub date_utc: Option<String>,
}

impl Meta {
    pub fn collect(info: &DeviceInfo) -> Meta {
        let unix_time =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Meta {
            device: info.name.clone(),
            arch: info.arch_name(),
            sm_count: info.sm_count,
            l2_bytes: info.l2_bytes,
            driver: command_line("nvidia-smi", &["--query-gpu=driver_version", "--format=csv,noheader"])
                .map(|s| s.lines().next().unwrap_or("").trim().to_string())
                .filter(|s| !s.is_empty()),
            cuda_driver_api: format!("{}.{}", info.driver_version.0, info.driver_version.1),
            commit: commit(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            unix_time,
            date_utc: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).map(|s| s.trim().to_string()),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "device": self.device,
            "arch": self.arch,
            "sm_count": self.sm_count,
            "l2_bytes": self.l2_bytes,
            "driver": self.driver,
            "cuda_driver_api": self.cuda_driver_api,
            "commit": self.commit,
            "command": self.command,
            "unix_time": self.unix_time,
            "date_utc": self.date_utc,
        })
    }

    /// The metadata as the first lines of a human table.
    pub fn header(&self) -> String {
        format!(
            "device: {} ({}, {} SMs, {} MiB L2), driver {} (CUDA {})\ncommit: {}\ncommand: {}\ndate: {}\n",
            self.device,
            self.arch,
            self.sm_count,
            self.l2_bytes >> 20,
            self.driver.as_deref().unwrap_or("unknown"),
            self.cuda_driver_api,
            self.commit,
            self.command,
            self.date_utc.clone().unwrap_or_else(|| format!("unix {}", self.unix_time)),
        )
    }
}

/// stdout of `program args`, when it runs and succeeds.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The commit: `git rev-parse HEAD` (with `-dirty` when tracked files
/// changed), else `.gpu/commit` as `scripts/gpu-suite package` wrote it.
fn commit() -> String {
    if let Some(head) = command_line("git", &["rev-parse", "HEAD"]) {
        let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.trim().is_empty());
        return format!("{}{}", head.trim(), if dirty { "-dirty" } else { "" });
    }
    std::fs::read_to_string(".gpu/commit").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// The GPU, its compiler and the run's metadata.
pub struct Ctx {
    pub exec: GpuExecutor,
    pub info: DeviceInfo,
    pub meta: Meta,
}

impl Ctx {
    /// Opens device 0 and checks NVRTC; `Err(reason)` when either is missing.
    pub fn open() -> Result<Ctx, String> {
        let exec = GpuExecutor::new().map_err(|e| e.to_string())?;
        exec.compiler().nvrtc().map_err(|e| format!("no NVRTC, so nothing can be compiled: {e}"))?;
        let info = exec.gpu().info().clone();
        let meta = Meta::collect(&info);
        Ok(Ctx { exec, info, meta })
    }
}

/// Where a subcommand writes: `<out>/<name>.json`, `.csv` and `.txt`.
pub struct Output {
    pub dir: PathBuf,
    pub name: &'static str,
}

impl Output {
    /// Writes the raw numbers and the table (which is also printed).
    pub fn write(&self, json: &serde_json::Value, csv: &Csv, table: &str) -> Result<(), BenchError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| io_err(&self.dir, source))?;
        let text = serde_json::to_string_pretty(json).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        for (ext, body) in [("json", text), ("csv", csv.text.clone()), ("txt", table.to_string())] {
            let path = self.dir.join(format!("{}.{ext}", self.name));
            std::fs::write(&path, body).map_err(|source| io_err(&path, source))?;
        }
        println!("{table}");
        println!("wrote {}/{}.{{json,csv,txt}}", self.dir.display(), self.name);
        Ok(())
    }
}

fn io_err(path: &Path, source: std::io::Error) -> BenchError {
    BenchError::Io { path: path.display().to_string(), source }
}

/// A CSV under construction (fields never contain commas or quotes here,
/// but are quoted when they do).
pub struct Csv {
    text: String,
}

impl Csv {
    pub fn new(columns: &[&str]) -> Csv {
        Csv { text: columns.join(",") + "\n" }
    }

    pub fn row(&mut self, fields: &[String]) {
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| if f.contains([',', '"', '\n']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.clone() })
            .collect();
        let _ = writeln!(self.text, "{}", quoted.join(","));
    }
}

/// A deterministic generator of benchmark inputs (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit_f32()).collect()
    }
}

/// Relative L2 distance of `got` from `want` (0 when both are zero).
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = g as f64 - w as f64;
        num += d * d;
        den += (w as f64) * (w as f64);
    }
    if num == 0.0 {
        0.0
    } else if den == 0.0 {
        f64::INFINITY
    } else {
        (num / den).sqrt()
    }
}

/// Worst relative L2 distance of `got` from `want` over the outputs: float
/// outputs by [`rel_l2`], others exactly (0 or infinity).
pub fn compare_outputs(got: &[HostBuffer], want: &[HostBuffer]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.elem() != w.elem() || g.len() != w.len() {
                f64::INFINITY
            } else if w.elem() == Type::F32 {
                rel_l2(&g.to_f32_vec(), &w.to_f32_vec())
            } else if g.bytes() == w.bytes() {
                0.0
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// Parses a comma-separated list of counts (`2,4,8`).
pub fn parse_counts(s: &str) -> Result<Vec<usize>, String> {
    let counts = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("`{p}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if counts.is_empty() || counts.contains(&0) {
        return Err(format!("`{s}`: give positive counts, comma-separated"));
    }
    Ok(counts)
}
