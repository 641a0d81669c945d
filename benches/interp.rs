//! Interpreter throughput in thread-instructions per second (the sum over
//! executed instructions of their active lanes; [`ExecStats::thread_insts`]),
//! on one worker and on every core.
//!
//! - `interp/sgemm_256x256x256/{1_core,all_cores}`: the default tiled SGEMM.
//! - `interp/row_softmax_256x1024/...` and `interp/vector_add_1M/...`: smaller
//!   kernels with a different instruction mix.
//!
//! Criterion's throughput is `Elements(thread_insts)` of one run, so its
//! `thrpt` line reads elements/s = thread-instructions/s. Copying the input
//! buffers happens in setup, outside the timing.
//!
//! `cargo bench --bench interp`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weft::interp::{ExecStats, Interpreter};
use weft::kernels::cases::{row_softmax_case, sgemm_case, vector_add_case, Case};
use weft::kernels::SgemmTiles;

fn bench_case(c: &mut Criterion, id: &str, case: &Case, samples: usize, measure: Duration) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Check the result once and take the instruction count from that run.
    let mut exec = weft::pack::InterpExecutor::new(Interpreter::new().threads(1));
    let kernel = std::sync::Arc::new(case.kernel.clone());
    let worst = case
        .check("interp", &mut |_, args| {
            weft::pack::run_kernel(&mut exec, &kernel, args).map(|_| ()).map_err(|e| e.into())
        })
        .expect("case passes on the interpreter");
    let mut args = case.args.clone();
    let stats: ExecStats = Interpreter::new().threads(1).run(&case.kernel, &mut args).expect("case runs");
    println!(
        "{id}: {} blocks, {} thread-insts per run, rel. L2 error {worst:e}, {cores} cores",
        stats.blocks, stats.thread_insts
    );

    let mut g = c.benchmark_group(format!("interp/{id}"));
    g.sample_size(samples).warm_up_time(Duration::from_secs(1)).measurement_time(measure);
    g.throughput(Throughput::Elements(stats.thread_insts));
    for (label, interp) in [("1_core", Interpreter::new().threads(1)), ("all_cores", Interpreter::new().threads(0))] {
        g.bench_function(label, |b| {
            b.iter_batched(
                || case.args.clone(),
                |mut args| {
                    let s = interp.run(black_box(&case.kernel), &mut args).expect("case runs");
                    assert_eq!(s.thread_insts, stats.thread_insts);
                    args
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let sgemm = sgemm_case(256, 256, 256, SgemmTiles::default(), 1);
    bench_case(c, "sgemm_256x256x256", &sgemm, 10, Duration::from_secs(20));
    let softmax = row_softmax_case(256, 1024, 2);
    bench_case(c, "row_softmax_256x1024", &softmax, 10, Duration::from_secs(5));
    let vadd = vector_add_case(1 << 20, 3);
    bench_case(c, "vector_add_1M", &vadd, 10, Duration::from_secs(5));
}

criterion_group!(interp_benches, benches);
criterion_main!(interp_benches);
