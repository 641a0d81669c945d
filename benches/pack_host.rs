//! The host side of "decision to launch", which needs no GPU:
//!
//! - `plan/resnet18_32`: `pack::plan` (Auto, throughput knob, H100 limits)
//!   for 32 tenants of ResNet-18 at 32×32 images (builder, each tenant its
//!   own seed, so 32 programs with equal but distinct kernels); criterion's
//!   throughput is in bundles, so it reports bundles planned per second;
//! - `build/sgemm_32_slots`: `BundleBuilder::build` of a 32-slot bundle of
//!   one body, the ResNet-18 conv2_2 GEMM (256×128×1152), every slot
//!   `Budget::Full` (verification and the isolation proof run once per
//!   distinct kernel per build);
//! - `encode/sgemm_32_slots`: `pack::encode_launch` of that bundle — what
//!   every executor runs per launch: the checks of every slot's arguments
//!   against its kernel, the slot table rows and the argument words (an
//!   address per buffer handle), the bytes a launch uploads.
//!
//! The upload and `cuLaunchKernel` are not here; `weft-bench overhead` times
//! the whole path on a GPU.
//!
//! `cargo bench --bench pack_host`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weft::kernels::sgemm::{sgemm, SgemmTiles};

use weft::kir::{ParamKind, Target};
use weft::lower::{lower, BufferId, LowerOptions, Program};
use weft::pack::{
    encode_launch, plan, Budget, BufferShape, BundleBuilder, HandleMap, LaunchArg, PackMode, Policy, Slot, TenantId,
};

const TENANTS: usize = 32;

fn resnet18_programs() -> Vec<Program> {
    (0..TENANTS as u64)
        .map(|seed| {
            let g = weft::graph::models::resnet18(0x5eed + seed, 1, 32, 10).expect("resnet18 builds");
            lower(&g, &LowerOptions::default()).expect("resnet18 lowers")
        })
        .collect()
}

fn gemm_slots() -> Vec<Slot> {
    let kernel = Arc::new(sgemm(256, 128, 1152, SgemmTiles::default()));
    (0..TENANTS)
        .map(|t| Slot {
            kernel: kernel.clone(),
            tenant: TenantId(t as u32),
            budget: Budget::Full,
            args: (0..3).map(|i| BufferId::from_u32((3 * t + i) as u32)).collect(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let limits = Target::sm_90();
    let programs = resnet18_programs();
    let ids: Vec<(TenantId, &Program)> = programs.iter().enumerate().map(|(i, p)| (TenantId(i as u32), p)).collect();
    let policy = Policy::new(PackMode::Auto, 1.0);
    let bundles = plan(&ids, &limits, &policy).expect("plans").bundles.len();
    println!("plan/resnet18_32: {bundles} bundles for {TENANTS} tenants of {} kernels", programs[0].steps.len());

    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    g.throughput(Throughput::Elements(bundles as u64));
    g.bench_function("resnet18_32", |b| b.iter(|| black_box(plan(black_box(&ids), &limits, &policy).unwrap())));
    g.finish();

    let slots = gemm_slots();
    let mut g = c.benchmark_group("build");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sgemm_32_slots", |b| {
        b.iter(|| {
            let mut builder = BundleBuilder::new();
            for s in black_box(&slots) {
                builder.push(s.clone());
            }
            black_box(builder.build().unwrap())
        })
    });
    g.finish();

    let mut builder = BundleBuilder::new();
    slots.iter().for_each(|s| builder.push(s.clone()));
    let bundle = builder.build().expect("builds");
    // A handle per buffer argument, with the shape its parameter declares.
    let mut shapes: HandleMap<BufferShape> = HandleMap::default();
    let args: Vec<Vec<LaunchArg>> = bundle
        .slots()
        .iter()
        .map(|s| {
            s.kernel
                .params
                .values()
                .map(|p| match p.kind {
                    ParamKind::Buffer { elem, len, .. } => {
                        LaunchArg::Buffer(shapes.insert(BufferShape { elem, len: len as usize }))
                    }
                    ParamKind::Scalar { ty } => LaunchArg::Scalar(weft::kir::Scalar::from_f64(ty, 1.0)),
                })
                .collect()
        })
        .collect();
    let encode = |args: &[Vec<LaunchArg>]| {
        encode_launch("bench", &bundle, args, |h| shapes.get(h).copied(), |h| 0x7f00_0000_0000 + (h.0 << 20))
    };
    let encoded = encode(&args).expect("the bundle encodes");
    println!("encode/sgemm_32_slots: {} table bytes, {} argument bytes", encoded.table.len(), encoded.words.len());
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sgemm_32_slots", |b| b.iter(|| black_box(encode(black_box(&args)).unwrap())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
