//! The `weft` subcommands.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use weft::codegen::{emit_bundle, emit_cuda, fits_parameter_space, Arch, Compiler, CudaSource};
use weft::gpu::GpuExecutor;
use weft::interp::Interpreter;
use weft::kir::{analysis, HostBuffer, Target};
use weft::pack::{Occupancy, ResourceTable};
use weft_graph::onnx::{import_data_dependent, import_onnx_file, ImportOptions, OnnxModel};
use weft_graph::{stats, Graph};
use weft_lower::{lower, LowerOptions, Program};

use crate::npy;
use crate::Backend;

/// Any failure of a subcommand, with the cause in one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Import(#[from] weft_graph::onnx::ImportError),
    #[error(transparent)]
    Lower(#[from] weft_lower::LowerError),
    #[error(transparent)]
    Run(#[from] weft::pack::RunError),
    #[error(transparent)]
    Emit(#[from] weft::codegen::EmitError),
    #[error(transparent)]
    Compile(#[from] weft::codegen::CompileError),
    #[error(transparent)]
    Cuda(#[from] weft::cuda::CudaError),
    #[error(transparent)]
    Npy(#[from] npy::NpyError),
    #[error("weft serve: {0}")]
    Serve(#[from] weft_serve::StartError),
    /// An `--input` file that could not be read, named by its binding.
    #[error("--input {input}: {source}")]
    Input {
        input: String,
        #[source]
        source: npy::NpyError,
    },
    #[error(transparent)]
    Schedule(#[from] weft::pack::ScheduleError),
    #[error(transparent)]
    Module(#[from] weft::pack::ModuleError),
    #[error("packed run failed: {0}")]
    PackedRun(#[source] weft::pack::RunError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Memory(#[from] weft::graph::MemoryError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io { path: path.display().to_string(), source }
}

/// Parses `NAME=1x3x224x224` bindings.
pub fn parse_shapes(specs: &[String]) -> Result<HashMap<String, Vec<usize>>, CliError> {
    let mut shapes = HashMap::new();
    for spec in specs {
        let (name, dims) = spec
            .rsplit_once('=')
            .ok_or_else(|| CliError::Usage(format!("--shape `{spec}`: expected NAME=DIMS, e.g. input=1x3x224x224")))?;
        let dims: Result<Vec<usize>, _> = dims.split(['x', ',']).map(str::parse).collect();
        let dims = dims.map_err(|_| {
            CliError::Usage(format!("--shape `{spec}`: dimensions must be positive integers separated by `x`"))
        })?;
        if dims.contains(&0) {
            return Err(CliError::Usage(format!("--shape `{spec}`: dimensions must be positive")));
        }
        shapes.insert(name.to_string(), dims);
    }
    Ok(shapes)
}

/// Parses `NAME=VALUE` bindings of symbolic dimensions.
pub fn parse_dims(specs: &[String]) -> Result<HashMap<String, usize>, CliError> {
    let mut dims = HashMap::new();
    for spec in specs {
        let parsed = spec.rsplit_once('=').and_then(|(name, v)| Some((name, v.parse::<usize>().ok()?)));
        match parsed {
            Some((name, v)) if v > 0 => {
                dims.insert(name.to_string(), v);
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "--dim `{spec}`: expected NAME=VALUE with a positive VALUE, e.g. batch=1"
                )))
            }
        }
    }
    Ok(dims)
}

/// How a model's dynamic dimensions are bound (`--shape` and `--dim`
/// flags), and the memory budget it must fit (`--max-memory`).
pub struct Bindings<'a> {
    pub shapes: &'a [String],
    pub dims: &'a [String],
    pub max_memory: Option<u64>,
}

impl Bindings<'_> {
    /// The budget a program must fit to run on the host (the interpreter,
    /// the cpu executor): `--max-memory`, else a safe share of the host's.
    pub fn host_budget(&self) -> u64 {
        self.max_memory.unwrap_or_else(weft::graph::memory::host_memory_budget)
    }

    /// Lowering options that refuse a program over the budget of the
    /// executor it will run on (`gpu`: the device's memory).
    pub fn lower_options(&self, gpu: Option<&GpuExecutor>) -> LowerOptions {
        let (budget, on_host) = match gpu {
            Some(g) => (self.max_memory.unwrap_or(g.gpu().info().total_memory_bytes), false),
            None => (self.host_budget(), true),
        };
        LowerOptions { max_memory: Some(budget), on_host, ..LowerOptions::default() }
    }
}

pub fn load(model: &Path, bind: &Bindings) -> Result<Graph, CliError> {
    load_with_values(model, bind, HashMap::new())
}

/// Imports `model` with the given inputs' values known: their shapes bind
/// dynamic dimensions (the library's one binding,
/// [`weft_graph::onnx::bind_inputs`]), and attribute-like inputs (axes,
/// pads, shapes) are compiled in ([`ImportOptions::values`]).
fn load_with_values(
    model: &Path,
    bind: &Bindings,
    values: HashMap<String, weft_graph::Tensor>,
) -> Result<Graph, CliError> {
    Ok(import_onnx_file(model, &import_options(bind, values)?)?)
}

/// The import options of `--shape`, `--dim`, `--max-memory` and the given
/// inputs' values.
fn import_options(bind: &Bindings, values: HashMap<String, weft_graph::Tensor>) -> Result<ImportOptions, CliError> {
    Ok(ImportOptions {
        shapes: parse_shapes(bind.shapes)?,
        dims: parse_dims(bind.dims)?,
        values,
        max_memory: bind.max_memory,
        ..ImportOptions::default()
    })
}

/// `--input NAME=FILE` flags by input name, in order; an input named twice
/// is an error (one of the files would be ignored).
fn parse_inputs(specs: &[String]) -> Result<Vec<(String, &Path)>, CliError> {
    let mut given: Vec<(String, &Path)> = Vec::new();
    for spec in specs {
        let (name, file) =
            spec.split_once('=').ok_or_else(|| CliError::Usage(format!("--input `{spec}`: expected NAME=FILE.npy")))?;
        if let Some((_, first)) = given.iter().find(|(n, _)| n == name) {
            return Err(CliError::Usage(format!(
                "--input `{name}` is given twice ({} and {file}); give each input once",
                first.display()
            )));
        }
        given.push((name.to_string(), Path::new(file)));
    }
    Ok(given)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub fn inspect(model: &Path, bind: &Bindings, list_nodes: bool) -> Result<(), CliError> {
    let graph = load(model, bind)?;
    println!("model: {} ({})", graph.name, model.display());
    for &t in &graph.inputs {
        let i = graph.info(t);
        println!("  input  {:<24} {} {}", i.name, i.dtype, i.shape);
    }
    for &t in &graph.outputs {
        let i = graph.info(t);
        println!("  output {:<24} {} {}", i.name, i.dtype, i.shape);
    }
    let mut per_op: HashMap<&'static str, (usize, u64)> = HashMap::new();
    let order = graph.topo_order();
    for &n in &order {
        let node = &graph.nodes[n];
        let e = per_op.entry(node.op.name()).or_default();
        e.0 += 1;
        e.1 += stats::node_flops(&graph, node);
    }
    let mut ops: Vec<_> = per_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
    println!("ops ({} nodes):", order.len());
    for (op, (count, flops)) in ops {
        println!("  {op:<22} {count:>5} nodes  {:>10}FLOPs", human(flops));
    }
    println!("parameters: {}", human(stats::parameter_count(&graph)));
    println!("FLOPs: {}", human(stats::graph_flops(&graph)));
    if list_nodes {
        println!("nodes:");
        for &n in &order {
            let node = &graph.nodes[n];
            let outs: Vec<String> = node.outputs.iter().map(|&t| graph.info(t).shape.to_string()).collect();
            println!(
                "  {:<40} {:<20} -> {}  {}FLOPs",
                node.name,
                node.op.name(),
                outs.join(", "),
                human(stats::node_flops(&graph, node))
            );
        }
    }
    Ok(())
}

fn parse_arch(arch: &str) -> Result<Arch, CliError> {
    let digits = arch.trim_start_matches("sm_").trim_start_matches("compute_");
    let bad = || CliError::Usage(format!("--arch `{arch}`: expected sm_XY, e.g. sm_90"));
    if digits.len() < 2 {
        return Err(bad());
    }
    let (major, minor) = digits.split_at(digits.len() - 1);
    Ok(Arch::new(major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?))
}

pub fn compile(model: &Path, bind: &Bindings, arch: Option<&str>, out: &Path) -> Result<(), CliError> {
    let graph = load(model, bind)?;
    // Compiling holds no arena: only an explicit budget is checked, against
    // what a device would hold.
    let program =
        lower(&graph, &LowerOptions { max_memory: bind.max_memory, on_host: false, ..LowerOptions::default() })?;
    // Occupancy is computed for the device present, else for sm_90.
    let target = weft::cuda::probe().map_or_else(|_| Target::sm_90(), |info| info.target());
    let arch = match arch {
        Some(a) => parse_arch(a)?,
        None => Arch::new(target.compute_capability.0, target.compute_capability.1),
    };
    let compiler = Compiler::new(arch);
    compiler.nvrtc()?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;

    // Kernels of identical source compile once.
    let mut sources: Vec<CudaSource> = Vec::new();
    let mut unique: HashMap<String, usize> = HashMap::new();
    let mut step_source = Vec::with_capacity(program.steps.len());
    for step in &program.steps {
        // A kernel past the parameter space runs only as a bundle body: its
        // file is the one-body bundle module the executors would load.
        let k = &step.kernel;
        let src = if fits_parameter_space(k) {
            emit_cuda(k)?
        } else {
            let threads = u32::try_from(k.launch.threads_per_block()).unwrap_or(u32::MAX);
            emit_bundle(&[&**k], threads)?
        };
        let path = out.join(format!("{}.cu", step.kernel.name));
        std::fs::write(&path, &src.code).map_err(io_err(&path))?;
        let idx = *unique.entry(src.code.clone()).or_insert_with(|| {
            sources.push(src.clone());
            sources.len() - 1
        });
        step_source.push(idx);
    }

    let started = Instant::now();
    let bar = ProgressBar::new(sources.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("compiling {pos}/{len} distinct kernels [{bar:30}] {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Distinct kernels compile in parallel; the compiler's caches are shared.
    let compiled: Vec<_> = sources
        .par_iter()
        .map(|src| {
            let r = compiler.compile(src).and_then(|ptx| {
                let report = compiler.resource_report(&ptx)?;
                Ok((ptx, report))
            });
            bar.inc(1);
            r
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();

    // ptxas's figures, as the packer's planner would read them.
    let resources = ResourceTable::new();
    for (step, &idx) in program.steps.iter().zip(&step_source) {
        resources.record_compiled(&step.kernel, &compiled[idx].0);
    }
    let mut table = String::from(
        "kernel\tgrid\tblock\tregisters\tshared_bytes\tspill_bytes\tblocks_per_sm\tflops\tbytes_moved\tnodes\n",
    );
    println!(
        "{:<28} {:>16} {:>12} {:>5} {:>8} {:>6} {:>9} {:>10} {:>10}",
        "kernel", "grid", "block", "regs", "smem", "spills", "blocks/SM", "FLOPs", "bytes"
    );
    for (step, &idx) in program.steps.iter().zip(&step_source) {
        let (ptx, report) = &compiled[idx];
        let res = resources.resources(&step.kernel);
        let occupancy = Occupancy::of(res, &target);
        let path = out.join(format!("{}.ptx", step.kernel.name));
        std::fs::write(&path, &ptx.ptx).map_err(io_err(&path))?;
        let cost = analysis::cost(&step.kernel);
        let launch = step.kernel.launch;
        let grid = format!("{}x{}x{}", launch.grid[0], launch.grid[1], launch.grid[2]);
        let block = format!("{}x{}x{}", launch.block[0], launch.block[1], launch.block[2]);
        let bytes = cost.global_read_bytes + cost.global_write_bytes;
        // Registers without a ptxas report are the packer's estimate, marked `~`.
        let regs = report.as_ref().map_or(format!("~{}", res.registers), |r| r.registers.to_string());
        println!(
            "{:<28} {:>16} {:>12} {:>5} {:>8} {:>6} {:>9} {:>10} {:>10}",
            step.kernel.name,
            grid,
            block,
            regs,
            res.shared_bytes,
            res.spill_bytes,
            occupancy.blocks_per_sm,
            human(cost.flops),
            human(bytes)
        );
        table.push_str(&format!(
            "{}\t{grid}\t{block}\t{regs}\t{}\t{}\t{}\t{}\t{bytes}\t{}\n",
            step.kernel.name,
            res.shared_bytes,
            res.spill_bytes,
            occupancy.blocks_per_sm,
            cost.flops,
            step.nodes.join(",")
        ));
    }
    let path = out.join("kernels.tsv");
    std::fs::write(&path, table).map_err(io_err(&path))?;
    let stats = compiler.stats();
    println!(
        "{} kernels ({} distinct) for {} in {:.2} s: {} compiled by NVRTC, {} from the cache; blocks/SM on {} \
         ({} SMs); written to {}",
        program.steps.len(),
        sources.len(),
        compiler.arch().sm_name(),
        started.elapsed().as_secs_f64(),
        stats.nvrtc_invocations,
        stats.memory_hits + stats.disk_hits,
        target.arch_name(),
        target.sm_count,
        out.display()
    );
    Ok(())
}

fn inputs_for(program: &Program, specs: &[String], seed: u64) -> Result<Vec<HostBuffer>, CliError> {
    let mut given: HashMap<String, &Path> = HashMap::new();
    for (name, file) in parse_inputs(specs)? {
        if !program.inputs.iter().any(|b| b.name == name) {
            let names: Vec<&str> = program.inputs.iter().map(|b| b.name.as_str()).collect();
            return Err(CliError::Usage(format!(
                "--input `{name}`: the model has no such input (inputs: {})",
                names.join(", ")
            )));
        }
        given.insert(name, file);
    }
    let mut inputs = Vec::new();
    for (i, binding) in program.inputs.iter().enumerate() {
        let info = &program.buffers[binding.buffer];
        match given.get(&binding.name) {
            Some(path) => {
                // Name the input as well as the file: the npy error alone
                // does not say which binding it came from.
                let arr = npy::read(path, info.elem)
                    .map_err(|source| CliError::Input { input: binding.name.clone(), source })?;
                if arr.shape != binding.shape {
                    return Err(CliError::Usage(format!(
                        "--input {}: {} has shape {:?} but the model expects {:?}",
                        binding.name,
                        path.display(),
                        arr.shape,
                        binding.shape
                    )));
                }
                inputs.push(arr.data);
            }
            None => inputs.push(weft_lower::random_buffer(info.elem, info.len(), seed.wrapping_add(i as u64))),
        }
    }
    Ok(inputs)
}

pub fn run(
    model: &Path,
    backend: Backend,
    bind: &Bindings,
    input_specs: &[String],
    seed: u64,
    output_dir: &Path,
) -> Result<(), CliError> {
    let mut values = HashMap::new();
    for (name, file) in parse_inputs(input_specs)? {
        if let Some(t) = npy::read_tensor(file).map_err(|source| CliError::Input { input: name.clone(), source })? {
            values.insert(name, t);
        }
    }
    let gpu = match backend {
        Backend::Interp | Backend::Cpu => None,
        Backend::Cuda => Some(GpuExecutor::new()?),
        Backend::Auto => match GpuExecutor::new() {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("weft: no GPU ({e}); using the CPU interpreter");
                None
            }
        },
    };
    let lower_options = bind.lower_options(gpu.as_ref());
    let mut exec: Box<dyn weft::pack::Executor> = match gpu {
        Some(g) => Box::new(g),
        None if backend == Backend::Cpu => Box::new(weft::cpu::CpuExecutor::fast()),
        None => Box::new(weft::pack::InterpExecutor::new(Interpreter::new())),
    };
    let onnx = OnnxModel::read(model)?;
    let mut options = import_options(bind, values)?;
    // Where the size of an output depends on the data (NonZero), the part
    // of the model that computes it runs first, on the same inputs.
    let graph = import_data_dependent(&onnx, &mut options, &mut |counted, options| -> Result<usize, CliError> {
        let program = lower(&counted.prefix.import(options)?, &lower_options)?;
        let inputs = inputs_for(&program, input_specs, seed)?;
        let out = weft::pack::run_program(exec.as_mut(), std::sync::Arc::new(program), &inputs, |_| {})?;
        Ok(out.first().map_or(0, HostBuffer::count_nonzero))
    })?;
    if !options.counts.is_empty() {
        let mut counts: Vec<String> = options.counts.iter().map(|(t, n)| format!("`{t}` {n}")).collect();
        counts.sort();
        eprintln!("weft: data-dependent sizes bound from the inputs: {}", counts.join(", "));
    }
    // Refused here, before any executor allocates the program.
    let program = lower(&graph, &lower_options)?;
    let inputs = inputs_for(&program, input_specs, seed)?;
    let started = Instant::now();
    let bar = ProgressBar::new(program.steps.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("running {pos}/{len} kernels [{bar:30}] {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let program = std::sync::Arc::new(program);
    let names: Vec<String> = program.steps.iter().map(|s| s.kernel.name.clone()).collect();
    let progress = |i: usize| {
        bar.set_position(i as u64);
        bar.set_message(names[i].clone());
    };
    let used = exec.name().to_string();
    let outputs = weft::pack::run_program(exec.as_mut(), program.clone(), &inputs, progress)?;
    bar.finish_and_clear();
    std::fs::create_dir_all(output_dir).map_err(io_err(output_dir))?;
    for (binding, data) in program.outputs.iter().zip(&outputs) {
        let path = output_dir.join(format!("{}.npy", npy::sanitize(&binding.name)));
        npy::write(&path, &binding.shape, data)?;
        println!("wrote {} {:?} to {}", binding.name, binding.shape, path.display());
    }
    println!("ran {} kernels on {used} in {:.2} s", program.steps.len(), started.elapsed().as_secs_f64());
    Ok(())
}
