//! weft's main job at this stage, end to end on one kernel:
//! build a tiled SGEMM in KIR, print it and its analyses, verify it, run it on
//! the CPU interpreter against an `f64` reference, emit CUDA C, compile it to
//! PTX with NVRTC (with ptxas's resource report where ptxas is present), and
//! where a GPU is present launch it and compare the GPU's output with the
//! interpreter's.
//!
//! Usage: `cargo run --release --example demo -- [M N K]` (default 200 150 70:
//! ragged on purpose, no dimension is a multiple of the tile).
//! Exits non-zero if any check fails; a missing GPU is reported, not a failure
//! (unless `WEFT_REQUIRE_GPU=1`).

use std::process::ExitCode;
use std::time::Instant;

use weft::codegen::{emit_cuda, Arch, Compiler};
use weft::gpu::GpuExecutor;
use weft::interp::Interpreter;
use weft::kernels::cases::sgemm_case;
use weft::kernels::reference::rel_l2;
use weft::kernels::SgemmTiles;
use weft::kir::{analysis, verifier};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_shape() -> Result<(u32, u32, u32), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok((200, 150, 70)),
        [m, n, k] => {
            let p = |s: &str| s.parse::<u32>().ok().filter(|v| (1..=4096).contains(v));
            match (p(m), p(n), p(k)) {
                (Some(m), Some(n), Some(k)) => Ok((m, n, k)),
                _ => Err(format!("M N K must be integers in 1..=4096, got {m} {n} {k}")),
            }
        }
        _ => Err("usage: demo [M N K]".to_string()),
    }
}

fn step(n: usize, what: &str) {
    println!("\n[{n}/6] {what}");
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (m, n, k) = parse_shape()?;
    let case = sgemm_case(m, n, k, SgemmTiles::default(), 7);
    let kernel = &case.kernel;

    step(1, &format!("build: tiled SGEMM C[{m}x{n}] = A[{m}x{k}] . B[{k}x{n}] in KIR"));
    let text = kernel.to_string();
    for line in text.lines().take(24) {
        println!("    {line}");
    }
    println!("    ... ({} lines of KIR in all)", text.lines().count());

    step(2, "verify and analyse");
    verifier::verify(kernel)?;
    let cost = analysis::cost(kernel);
    let ranges = analysis::access_ranges(kernel);
    let proven = ranges.iter().filter(|r| r.is_proven()).count();
    println!("    verified: ok");
    println!(
        "    launch: grid {:?} x block {:?}, {} B shared per block",
        kernel.launch.grid,
        kernel.launch.block,
        kernel.shared_bytes()
    );
    println!(
        "    static cost: {} FLOPs, {} B read, {} B written (global)",
        cost.flops, cost.global_read_bytes, cost.global_write_bytes
    );
    println!("    global accesses proven in bounds: {proven} of {}", ranges.len());
    if proven != ranges.len() {
        return Err("some global access is not proven in bounds".into());
    }

    step(3, "run on the CPU interpreter and compare with an f64 reference");
    let interp = Interpreter::new();
    let started = Instant::now();
    let mut args = case.args.clone();
    let stats = interp.run(kernel, &mut args)?;
    let elapsed = started.elapsed();
    let on_cpu = args[2].as_buffer().expect("c is a buffer").to_f64_vec();
    let err = rel_l2(&on_cpu, &case.expected[0].1);
    println!(
        "    {} blocks, {} thread-instructions in {:.1} ms; relative L2 error vs f64: {err:.2e}",
        stats.blocks,
        stats.thread_insts,
        elapsed.as_secs_f64() * 1e3
    );
    if err > case.tolerance {
        return Err(format!("interpreter result differs from the reference ({err:e})").into());
    }

    step(4, "emit CUDA C");
    let source = emit_cuda(kernel)?;
    println!("    {} lines of CUDA C; the kernel signature:", source.code.lines().count());
    if let Some(sig) = source.code.lines().find(|l| l.contains("__global__")) {
        println!("    {sig}");
    }

    step(5, "compile to PTX with NVRTC");
    let gpu = GpuExecutor::new();
    let compiler = match &gpu {
        Ok(g) => Compiler::new(g.compiler().arch()),
        Err(_) => Compiler::new(Arch::SM_90),
    };
    let nvrtc = compiler.nvrtc()?;
    println!("    NVRTC {}.{} for {}", nvrtc.version.0, nvrtc.version.1, compiler.arch().sm_name());
    let started = Instant::now();
    let ptx = compiler.compile(&source)?;
    println!(
        "    {} bytes of PTX in {:.0} ms ({})",
        ptx.ptx.len(),
        started.elapsed().as_secs_f64() * 1e3,
        if compiler.stats().nvrtc_invocations == 0 { "from the cache" } else { "compiled" }
    );
    match compiler.resource_report(&ptx)? {
        Some(r) => println!(
            "    ptxas: {} registers, {} B spill stores, {} B spill loads, {} B shared",
            r.registers, r.spill_stores_bytes, r.spill_loads_bytes, r.shared_bytes
        ),
        None => println!("    ptxas not found: no register report"),
    }

    step(6, "launch on the GPU and compare with the interpreter");
    match gpu {
        Ok(mut gpu) => {
            let info = gpu.gpu().info().clone();
            println!(
                "    device: {} (sm_{}{}, {} SMs)",
                info.name, info.compute_capability.0, info.compute_capability.1, info.sm_count
            );
            let mut args = case.args.clone();
            weft::pack::run_kernel(&mut gpu, &std::sync::Arc::new(kernel.clone()), &mut args)?;
            let on_gpu = args[2].as_buffer().expect("c is a buffer").to_f64_vec();
            let vs_cpu = rel_l2(&on_gpu, &on_cpu);
            let vs_ref = rel_l2(&on_gpu, &case.expected[0].1);
            println!("    relative L2 error: GPU vs interpreter {vs_cpu:.2e}, GPU vs f64 {vs_ref:.2e}");
            if vs_ref > case.tolerance || vs_cpu > 1e-6 {
                return Err("GPU result differs".into());
            }
        }
        Err(e) => {
            if std::env::var("WEFT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                return Err(format!("WEFT_REQUIRE_GPU=1 but {e}").into());
            }
            println!("    skipped: {e}");
        }
    }
    println!("\ndemo: all checks passed");
    Ok(())
}
