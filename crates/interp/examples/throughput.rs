//! Interpreter throughput on the reference tiled SGEMM, in thread-instructions
//! per second (the sum over executed instructions of their active lanes,
//! divided by wall time), on one worker and on every core.
//!
//! `cargo run --release -p weft-interp --example throughput [m n k]`

use std::time::Instant;

use weft_interp::Interpreter;
use weft_kernels::{sgemm, SgemmTiles};
use weft_kir::{ArgValue, HostBuffer, Type};

fn main() {
    let dims: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [m, n, k] = match dims[..] {
        [m, n, k] => [m, n, k],
        _ => [256, 256, 256],
    };
    let kernel = sgemm(m, n, k, SgemmTiles::default());
    let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
    let b: Vec<f64> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f64 / 1000.0 - 0.5).collect();
    let args = vec![
        ArgValue::Buffer(HostBuffer::from_f64(Type::F32, &a)),
        ArgValue::Buffer(HostBuffer::from_f64(Type::F32, &b)),
        ArgValue::Buffer(HostBuffer::zeros(Type::F32, (m * n) as usize)),
    ];
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for threads in [1, cores] {
        let interp = Interpreter::new().threads(threads);
        let mut best = f64::INFINITY;
        let mut stats = None;
        for _ in 0..3 {
            let mut run_args = args.clone();
            let start = Instant::now();
            stats = Some(interp.run(&kernel, &mut run_args).expect("sgemm runs"));
            best = best.min(start.elapsed().as_secs_f64());
        }
        let stats = stats.unwrap();
        println!(
            "sgemm {m}x{n}x{k}, {threads} worker(s): {} blocks, {} thread-insts in {:.3} s (best of 3) = {:.0} M thread-insts/s",
            stats.blocks,
            stats.thread_insts,
            best,
            stats.thread_insts as f64 / best / 1e6
        );
    }
}
