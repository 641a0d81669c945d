//! Engine overhead per request on the simulator executor: how much host time
//! the engine adds between `submit` and the result, excluding the simulated
//! GPU (which takes no wall time) and the simulator's own computation
//! (the wall time spent inside the executor's launch calls, which the
//! serving loop measures).
//!
//! - `overhead/tiny_16_tenants`: 16 tenants of a one-kernel model; every
//!   iteration submits one request per tenant and waits for all of them;
//!   criterion's throughput is in requests.
//! - `overhead/resnet18_16_tenants`: the same with ResNet-18 at 32×32
//!   (about 20 kernels a request), so scheduling cost per step shows.
//!
//! The time reported is `(wall − launch wall)` per iteration: the engine's
//! channels, the scheduler's bundle choices, the predictor, buffer binding,
//! slot-table encoding and result delivery.
//!
//! `cargo bench --bench engine`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weft::graph::{builder::GraphBuilder, DType};
use weft::kir::HostBuffer;
use weft::kir::Target;
use weft::lower::{lower, LowerOptions, Program};
use weft::sim::{SimGpu, SimSpec};
use weft::{Engine, EngineConfig};

const TENANTS: usize = 16;

fn tiny() -> Arc<Program> {
    let mut g = GraphBuilder::new("tiny");
    let x = g.input("x", DType::F32, &[1, 256]);
    let y = g.relu(x).expect("relu builds");
    g.output(y);
    Arc::new(lower(&g.finish(), &LowerOptions::default()).expect("lowers"))
}

fn resnet18() -> Arc<Program> {
    let g = weft::graph::models::resnet18(3, 1, 32, 10).expect("resnet18 builds");
    Arc::new(lower(&g, &LowerOptions::default()).expect("resnet18 lowers"))
}

fn zeros(p: &Program) -> Vec<HostBuffer> {
    p.inputs
        .iter()
        .map(|b| {
            let info = &p.buffers[b.buffer];
            HostBuffer::zeros(info.elem, info.len())
        })
        .collect()
}

fn bench_model(c: &mut Criterion, name: &str, program: Arc<Program>) {
    let sim = SimGpu::new(Target::sm_90(), SimSpec::h100_like(), 7);
    let engine = Engine::with_executor(sim, EngineConfig::default());
    let tenants: Vec<_> = (0..TENANTS)
        .map(|_| engine.register(program.clone(), Duration::from_secs(60), 1.0).expect("registers"))
        .collect();
    let inputs = zeros(&program);
    let mut g = c.benchmark_group("overhead");
    g.sample_size(20);
    g.throughput(Throughput::Elements(TENANTS as u64));
    g.bench_function(format!("{name}_16_tenants"), |b| {
        b.iter_custom(|iters| {
            let mut overhead = Duration::ZERO;
            for _ in 0..iters {
                let launch_before = engine.stats().serve.launch_wall_us;
                let began = Instant::now();
                let pending: Vec<_> =
                    tenants.iter().map(|&t| engine.submit(t, inputs.clone()).expect("admitted")).collect();
                for p in pending {
                    p.wait().expect("served");
                }
                let wall = began.elapsed();
                let launch = engine.stats().serve.launch_wall_us - launch_before;
                overhead += wall.saturating_sub(Duration::from_secs_f64(launch.max(0.0) / 1e6));
            }
            overhead
        })
    });
    g.finish();
    let stats = engine.stats();
    println!(
        "{name}: {} requests, {} bundles ({:.1} slots each), {} launches, {:.0} bytes moved per request",
        stats.serve.completed,
        stats.serve.bundles,
        stats.serve.slots as f64 / stats.serve.bundles.max(1) as f64,
        stats.serve.launches,
        stats.bytes_per_request
    );
}

fn bench(c: &mut Criterion) {
    bench_model(c, "tiny", tiny());
    bench_model(c, "resnet18", resnet18());
}

criterion_group!(benches, bench);
criterion_main!(benches);
