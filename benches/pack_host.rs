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
//! - `encode/sgemm_32_slots`: the slot table rows (`SlotRow::to_le_bytes`,
//!   with argument offsets) and the argument words (an address per buffer,
//!   `pack_scalar` per scalar) of that bundle: the bytes a launch uploads.
//!
//! The upload and `cuLaunchKernel` are not here; `weft-bench overhead` times
//! the whole path on a GPU.
//!
//! `cargo bench --bench pack_host`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weft::codegen::bundle::{pack_scalar, SlotRow};
use weft::kernels::sgemm::{sgemm, SgemmTiles};
use weft::kir::Target;
use weft::kir::{ArgValue, HostBuffer, Scalar};
use weft::lower::{lower, BufferId, LowerOptions, Program};
use weft::pack::{plan, Budget, Bundle, BundleBuilder, PackMode, Policy, Slot, TenantId};

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

/// The table rows and argument words of `bundle` (what a launch uploads);
/// a buffer's word is a made-up device address.
fn encode(bundle: &Bundle, args: &[Vec<ArgValue>]) -> (Vec<u8>, Vec<u8>) {
    let mut table = Vec::with_capacity(bundle.slots.len() * 32);
    let mut words = Vec::with_capacity(args.iter().map(Vec::len).sum::<usize>() * 8);
    let mut offset = 0u32;
    for (entry, slot_args) in bundle.table.entries.iter().zip(args) {
        let row = SlotRow {
            body: entry.body,
            first_block: entry.first_block,
            num_blocks: entry.num_blocks,
            grid: entry.grid,
            threads: entry.threads,
            arg_offset: offset,
        };
        table.extend_from_slice(&row.to_le_bytes().expect("fields fit an int"));
        for (i, a) in slot_args.iter().enumerate() {
            let word = match a {
                ArgValue::Buffer(_) => 0x7f00_0000_0000u64 + ((offset as u64 + i as u64) << 20),
                ArgValue::Scalar(s) => pack_scalar(*s),
            };
            words.extend_from_slice(&word.to_le_bytes());
        }
        offset += slot_args.len() as u32;
    }
    (table, words)
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
    // Tiny stand-in buffers: encoding reads only whether an argument is a buffer.
    let args: Vec<Vec<ArgValue>> = bundle
        .slots
        .iter()
        .map(|s| s.args.iter().map(|_| ArgValue::Buffer(HostBuffer::from_f32(&[0.0]))).collect())
        .collect();
    let mut with_scalar = args.clone();
    with_scalar[0].push(ArgValue::Scalar(Scalar::F32(1.5)));
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sgemm_32_slots", |b| b.iter(|| black_box(encode(black_box(&bundle), black_box(&args)))));
    g.finish();
    black_box(encode(&bundle, &with_scalar));
}

criterion_group!(benches, bench);
criterion_main!(benches);
