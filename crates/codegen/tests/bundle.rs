//! Bundles: several kernel bodies in one CUDA module, compiled by NVRTC.
//!
//! Runs without a GPU: emission is checked as text (barrier forms, shared
//! pool, determinism, typed refusals) and every bundle is compiled with
//! NVRTC, which these tests need (skipped with a printed reason where NVRTC
//! is missing, failed under `CI=true`). NVRTC invocations are counted to show
//! that code is keyed by kernel bodies and launch class, never by tenants
//! (DESIGN.md principle 1). Running bundles is `tests/gpu_bundle.rs` at the
//! workspace root.

mod common;

use common::compiler_or_skip;
use weft_codegen::bundle::{pack_scalar, SlotRow};
use weft_codegen::{bundle_shared_bytes, emit_bundle, emit_cuda, EmitError, BUNDLE_ENTRY, SLOT_FIELDS};
use weft_kernels::{row_softmax, row_sum, sgemm, vector_add, SgemmTiles};
use weft_kir::{Access, Axis, BinaryOp, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};
use weft_lower::collective::block_reduce;

/// A lowered-layer-like fused elementwise kernel: `out = relu(x * scale + bias[c])`
/// over an `[rows, cols]` tensor, 2-D blocks of 16×8 = 128 threads on a 2-D grid.
fn bias_relu(rows: u32, cols: u32) -> KernelDef {
    let grid = [cols.div_ceil(16), rows.div_ceil(8), 1];
    let mut b = KernelBuilder::new("bias_relu", LaunchShape::new(grid, [16, 8, 1]));
    let n = rows as u64 * cols as u64;
    let x = b.buffer("x", Type::F32, n, Access::Read);
    let bias = b.buffer("bias", Type::F32, cols as u64, Access::Read);
    let out = b.buffer("out", Type::F32, n, Access::Write);
    let scale = b.scalar_param("scale", Type::F32);
    let c = b.global_thread_id(Axis::X);
    let r = b.global_thread_id(Axis::Y);
    let c_cols = b.const_i32(cols as i32);
    let c_rows = b.const_i32(rows as i32);
    let in_c = b.lt(c, c_cols);
    b.if_(in_c, |b| {
        let in_r = b.lt(r, c_rows);
        b.if_(in_r, |b| {
            let row_base = b.mul(r, c_cols);
            let i = b.add(row_base, c);
            let xi = b.load(x, i);
            let s = b.param(scale);
            let bi = b.load(bias, c);
            let t = b.fma(xi, s, bi);
            let zero = b.const_f32(0.0);
            let y = b.max(t, zero);
            b.store(out, i, y);
        });
    });
    b.finish()
}

/// A lowered-layer-like per-channel mean over a `[channels, depth, hw]`
/// tensor: a 3-D grid (one block per (channel, depth slice)), 64 threads,
/// shared memory, a barrier and shuffles.
fn channel_mean(channels: u32, depth: u32, hw: u32) -> KernelDef {
    const THREADS: u32 = 64;
    let mut b = KernelBuilder::new("channel_mean", LaunchShape::new([1, channels, depth], [THREADS, 1, 1]));
    let x = b.buffer("x", Type::F32, channels as u64 * depth as u64 * hw as u64, Access::Read);
    let out = b.buffer("out", Type::F32, channels as u64 * depth as u64, Access::Write);
    let scratch = b.shared_array(Type::F32, THREADS / 32);
    let ch = b.block_id(Axis::Y);
    let d = b.block_id(Axis::Z);
    let c_depth = b.const_i32(depth as i32);
    let c_hw = b.const_i32(hw as i32);
    let row = b.mul(ch, c_depth);
    let row = b.add(row, d);
    let base = b.mul(row, c_hw);
    let zero = b.const_f32(0.0);
    let acc = b.var_init(zero);
    let tid = b.thread_id(Axis::X);
    b.for_range(tid, c_hw, THREADS as i64, |b, i| {
        let idx = b.add(base, i);
        let v = b.load(x, idx);
        let cur = b.get(acc);
        let next = b.add(cur, v);
        b.set(acc, next);
    });
    let partial = b.get(acc);
    let total = block_reduce(&mut b, partial, BinaryOp::Add, Scalar::F32(0.0), scratch, THREADS);
    let inv = b.const_f32(1.0 / hw as f32);
    let mean = b.mul(total, inv);
    let zero_i = b.const_i32(0);
    let first = b.eq(tid, zero_i);
    b.if_(first, |b| b.store(out, row, mean));
    b.finish()
}

/// A body of 48 threads: narrower than a 64-thread launch and not whole warps.
fn ragged(threads: u32) -> KernelDef {
    let mut b = KernelBuilder::new("ragged", LaunchShape::linear(2, threads));
    let out = b.buffer("out", Type::F32, 2 * threads as u64, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let one = b.const_f32(1.0);
    b.store(out, i, one);
    b.finish()
}

/// SGEMM tiles of 64 and 128 threads, beside the default 256.
fn small_tiles() -> SgemmTiles {
    SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 }
}
fn mid_tiles() -> SgemmTiles {
    SgemmTiles { bm: 32, bn: 16, bk: 8, tm: 2, tn: 2 }
}

/// The reference kernels and lowered-layer-like kernels, with their threads.
fn bodies() -> Vec<KernelDef> {
    vec![
        vector_add(1000),                         // 256
        sgemm(65, 33, 17, SgemmTiles::default()), // 256
        row_sum(5, 1000),                         // 256, shuffles + barrier
        row_softmax(3, 1024),                     // 256, two reductions
        sgemm(40, 24, 20, small_tiles()),         // 64
        sgemm(40, 24, 20, mid_tiles()),           // 128
        bias_relu(20, 50),                        // 128, 2-D block and grid
        channel_mean(3, 2, 100),                  // 64, 3-D grid
    ]
}

/// NVRTC with ptxas beside it (register figures), or `None` after saying
/// why the test skips (a failure under `CI=true`).
fn measuring_compiler_or_skip(test: &str) -> Option<weft_codegen::Compiler> {
    let c = compiler_or_skip(test)?;
    if weft_codegen::CudaSearch::from_env().find_ptxas().is_none() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{test}: ptxas is required when CI=true");
        eprintln!("skipping {test}'s register figures: no ptxas found");
        return None;
    }
    Some(c)
}

fn threads(k: &KernelDef) -> u32 {
    k.launch.threads_per_block() as u32
}

#[test]
fn the_test_bodies_have_the_widths_they_claim() {
    let widths: Vec<u32> = bodies().iter().map(threads).collect();
    assert_eq!(widths, [256, 256, 256, 256, 64, 128, 128, 64]);
}

#[test]
fn every_body_is_a_device_function_and_the_dispatcher_is_the_entry() {
    let ks = bodies();
    let refs: Vec<&KernelDef> = ks.iter().collect();
    let src = emit_bundle(&refs, 256).unwrap();
    assert_eq!(src.name, BUNDLE_ENTRY);
    for (i, k) in ks.iter().enumerate() {
        let f = format!("static __device__ __forceinline__ void weft_body{i}_");
        assert!(src.code.contains(&f), "body {i} ({}) missing:\n{}", k.name, src.code);
        assert!(src.code.contains(&format!("case {i}: {{")), "no case for body {i}");
    }
    assert_eq!(src.code.matches("extern \"C\" __global__").count(), 1, "one entry point");
    assert!(src.code.contains(
        "extern \"C\" __global__ void __launch_bounds__(256) weft_bundle(const WeftSlot* __restrict__ slots, int \
         nslots, void* const* __restrict__ args)"
    ));
    assert!(src.code.contains(
        "struct WeftSlot { int body, first_block, num_blocks, grid_x, grid_y, grid_z, threads, arg_offset; };"
    ));
    // Shared arrays are views of the pool, never static `__shared__` arrays.
    assert!(!src.code.contains("WEFT_SHARED_ARRAY("), "{}", src.code);
    assert!(src.code.contains("WEFT_SHARED_POOL(weft_smem);"));
    assert!(src.code.contains("WEFT_SHARED_VIEW(float, s0, weft_smem, 0, "), "{}", src.code);
    // Helpers (the integer-division helpers several bodies use) appear once.
    for line in src.code.lines().filter(|l| l.starts_with("__device__ __forceinline__")) {
        assert_eq!(src.code.matches(line).count(), 1, "helper written twice: {line}");
    }
}

#[test]
fn narrower_bodies_get_named_barriers_and_full_width_ones_syncthreads() {
    // row_sum (256) and channel_mean (64) in a 256-thread launch.
    let wide = row_sum(5, 1000);
    let narrow = channel_mean(3, 2, 100);
    let src = emit_bundle(&[&wide, &narrow], 256).unwrap().code;
    let body = |i: usize| {
        let start = src.find(&format!("void weft_body{i}_")).unwrap();
        let end = src[start..].find("\n}\n").unwrap() + start;
        src[start..end].to_string()
    };
    let (b0, b1) = (body(0), body(1));
    assert!(b0.contains("WEFT_SYNC_BLOCK();") && !b0.contains("WEFT_SYNC_NAMED"), "{b0}");
    assert!(b1.contains("WEFT_SYNC_NAMED(1, 64);") && !b1.contains("WEFT_SYNC_BLOCK"), "{b1}");
    // The macro's CUDA spelling is the named barrier instruction.
    assert!(src.contains("asm volatile(\"bar.sync \" #id \", \" #threads \";\" ::: \"memory\")"), "{src}");
    // The dispatcher idles the narrow body's extra warps and separates its
    // persistent logical blocks with the same kind of barrier.
    let case1 = &src[src.find("case 1: {").unwrap()..];
    assert!(case1.contains("if (threadIdx.x >= 64u) {"), "{case1}");
    assert!(case1.contains("WEFT_SYNC_NAMED(1, 64);"), "{case1}");
    let case0 = &src[src.find("case 0: {").unwrap()..src.find("case 1: {").unwrap()];
    assert!(case0.contains("WEFT_SYNC_BLOCK();") && !case0.contains("threadIdx.x >="), "{case0}");

    // The same narrow body alone in a 64-thread launch is full width.
    let alone = emit_bundle(&[&narrow], 64).unwrap().code;
    assert!(alone.contains("WEFT_SYNC_BLOCK();") && !alone.contains("bar.sync"), "{alone}");
}

#[test]
fn bodies_without_shared_memory_need_no_barrier_between_logical_blocks() {
    let k = vector_add(1000);
    let src = emit_bundle(&[&k], 512).unwrap().code;
    assert!(!src.contains("bar.sync") && !src.contains("__syncthreads"), "{src}");
}

#[test]
fn logical_coordinates_split_like_the_slot_table() {
    // channel_mean has grid [1, 3, 2]: y = (l / 1) % 3, z = l / 3.
    let k = channel_mean(3, 2, 100);
    let src = emit_bundle(&[&k], 64).unwrap().code;
    assert!(src.contains("(int)(l % 1u), (int)((l / 1u) % 3u), (int)(l / 3u), weft_smem);"), "{src}");
    assert!(src.contains("for (unsigned long long lb = start; lb < 6ull; lb += step) {"), "{src}");
    // bias_relu's 16×8 block: thread ids split from threadIdx.x, x fastest.
    let k = bias_relu(20, 50);
    let src = emit_bundle(&[&k], 128).unwrap().code;
    assert!(src.contains("const int tid_x = (int)threadIdx.x % 16;"), "{src}");
    assert!(src.contains("const int tid_y = (int)threadIdx.x / 16;"), "{src}");
    assert!(src.contains("const int tid_z = 0;"), "{src}");
    // The scalar `scale` travels packed in its argument word.
    assert!(src.contains("__uint_as_float((unsigned int)(unsigned long long)a[3])"), "{src}");
}

#[test]
fn emission_is_deterministic_and_depends_only_on_bodies_and_block_size() {
    let ks = bodies();
    let refs: Vec<&KernelDef> = ks.iter().collect();
    let a = emit_bundle(&refs, 256).unwrap();
    let rebuilt = bodies();
    let refs2: Vec<&KernelDef> = rebuilt.iter().collect();
    assert_eq!(a, emit_bundle(&refs2, 256).unwrap());
    assert_ne!(a.code, emit_bundle(&refs, 512).unwrap().code, "the block size is part of the class");
    let mut reversed = refs.clone();
    reversed.reverse();
    assert_ne!(a.code, emit_bundle(&reversed, 256).unwrap().code, "body order is part of the class");
}

#[test]
fn shared_memory_is_the_largest_body_not_the_sum() {
    let big = sgemm(65, 33, 17, SgemmTiles::default());
    let small = row_sum(5, 1000);
    let both = bundle_shared_bytes(&[&big, &small]);
    assert_eq!(both, bundle_shared_bytes(&[&big]));
    assert!(both >= big.shared_bytes() && both < big.shared_bytes() + small.shared_bytes() + 16, "{both}");
    assert_eq!(both % 16, 0);
    assert_eq!(bundle_shared_bytes(&[&vector_add(10)]), 0);
}

#[test]
fn unsuitable_bodies_are_typed_errors_naming_the_kernel() {
    // Narrower and not whole warps.
    let err = emit_bundle(&[&ragged(48)], 64).unwrap_err();
    match &err {
        EmitError::Kernel { kernel, reason } => {
            assert_eq!(kernel, "ragged");
            assert!(reason.contains("48") && reason.contains("multiple of 32") && reason.contains("bar.sync"), "{err}");
        }
        other => panic!("expected a kernel error, got {other:?}"),
    }
    // The same body as wide as the launch is fine: it keeps __syncthreads.
    assert!(emit_bundle(&[&ragged(48)], 48).is_ok());
    // Wider than the launch.
    let err = emit_bundle(&[&row_sum(2, 10)], 128).unwrap_err();
    assert!(matches!(&err, EmitError::Kernel { kernel, reason } if kernel == "row_sum" && reason.contains("widest")));
    // No bodies; a block size CUDA cannot launch.
    assert!(matches!(emit_bundle(&[], 128), Err(EmitError::Kernel { .. })));
    assert!(matches!(emit_bundle(&[&vector_add(8)], 2048), Err(EmitError::Kernel { .. })));
}

#[test]
fn slot_rows_and_scalars_encode_as_the_device_reads_them() {
    let row = SlotRow { body: 1, first_block: 7, num_blocks: 3, grid: [4, 5, 6], threads: 64, arg_offset: 9 };
    let bytes = row.to_le_bytes().unwrap();
    assert_eq!(bytes.len(), SLOT_FIELDS * 4);
    let ints: Vec<i32> = bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(ints, [1, 7, 3, 4, 5, 6, 64, 9]);
    assert_eq!(SlotRow { first_block: u32::MAX, ..row }.to_le_bytes(), None);
    assert_eq!(pack_scalar(Scalar::F32(1.0)), 0x3f80_0000);
    assert_eq!(pack_scalar(Scalar::I32(-1)), 0xffff_ffff, "zero-extended, read back through (int)(unsigned int)");
    assert_eq!(pack_scalar(Scalar::I64(-1)), u64::MAX);
    assert_eq!(pack_scalar(Scalar::Bool(true)), 1);
}

#[test]
fn single_kernel_emission_is_untouched_by_bundles() {
    // The committed golden files (tests/kernels_ptx.rs at the root) check the
    // bytes; here: no bundle spelling leaks into a plain kernel.
    for k in bodies() {
        let src = emit_cuda(&k).unwrap().code;
        assert!(!src.contains("weft_smem") && !src.contains("bar.sync") && !src.contains("WeftSlot"), "{src}");
        assert!(src.contains(&format!("extern \"C\" __global__ void __launch_bounds__({})", threads(&k))));
    }
}

#[test]
fn bundles_of_every_width_compile_with_nvrtc() {
    let Some(c) = compiler_or_skip("bundles_of_every_width_compile_with_nvrtc") else { return };
    let ks = bodies();
    let by_width =
        |w: u32| ks.iter().filter(move |k| threads(k) <= w && (threads(k) == w || threads(k).is_multiple_of(32)));
    for block_threads in [256u32, 128, 64] {
        let refs: Vec<&KernelDef> = by_width(block_threads).collect();
        let src = emit_bundle(&refs, block_threads).unwrap();
        let ptx = c.compile(&src).unwrap_or_else(|e| panic!("{block_threads} threads: {e}"));
        assert!(ptx.ptx.contains(".visible .entry weft_bundle("), "{block_threads}: no entry");
        if refs.iter().any(|k| threads(k) < block_threads && !k.shared.is_empty()) {
            assert!(ptx.ptx.contains("bar.sync \t1, ") || ptx.ptx.contains("bar.sync 1, "), "{block_threads}");
        }
    }
    // Each reference kernel alone as a one-body bundle, as a 1-slot launch.
    for k in &ks {
        let src = emit_bundle(&[k], threads(k)).unwrap();
        c.compile(&src).unwrap_or_else(|e| panic!("{}: {e}", k.name));
    }
}

#[test]
fn tenants_are_data_one_nvrtc_call_per_launch_class() {
    let Some(c) = compiler_or_skip("tenants_are_data_one_nvrtc_call_per_launch_class") else { return };
    // A bundle for 4 tenants of one kernel, then for 8: the module depends on
    // the one body and the block size, never on the number of slots.
    let k = row_softmax(3, 1024);
    for _tenants in [4, 8] {
        c.compile(&emit_bundle(&[&k], 256).unwrap()).unwrap();
    }
    assert_eq!(c.stats().nvrtc_invocations, 1, "{:?}", c.stats());

    // N tenants of one architecture: each layer's bundle is built from that
    // tenant's own copy of the program, yet every tenant shares one module
    // per layer (N * layers compiles requested, `layers` NVRTC runs).
    let program = || vec![sgemm(40, 24, 20, mid_tiles()), bias_relu(40, 24), channel_mean(3, 2, 100)];
    let before = c.stats().nvrtc_invocations;
    let tenants: Vec<Vec<KernelDef>> = (0..5).map(|_| program()).collect();
    let layers = tenants[0].len();
    for layer in 0..layers {
        for t in &tenants {
            let k = &t[layer];
            let src = emit_bundle(&[k], 128).unwrap();
            c.compile(&src).unwrap();
        }
    }
    assert_eq!(c.stats().nvrtc_invocations - before, layers as u64, "{:?}", c.stats());

    // A coalesced bundle of two layers' bodies is one more class, compiled once
    // however many tenants' slots it carries.
    let before = c.stats().nvrtc_invocations;
    for t in &tenants {
        c.compile(&emit_bundle(&[&t[0], &t[1]], 128).unwrap()).unwrap();
    }
    assert_eq!(c.stats().nvrtc_invocations - before, 1);
}

#[test]
fn a_single_pass_module_runs_one_logical_block_without_the_loop() {
    use weft_codegen::{emit_bundle_with, BundleForm};
    let k = channel_mean(3, 2, 100);
    let looping = emit_bundle(&[&k], 64).unwrap().code;
    let single = emit_bundle_with(&[&k], 64, BundleForm { single_pass: true, ..BundleForm::default() }).unwrap().code;
    assert!(looping.contains("for (unsigned long long lb = start; lb < 6ull; lb += step) {"), "{looping}");
    assert!(!single.contains("for (unsigned long long lb"), "{single}");
    assert!(!single.contains("step"), "no stride is read: {single}");
    assert!(single.contains("if (start < 6ull) {"), "the grid still bounds the block: {single}");
    // The body is called the same way, with the same coordinates.
    assert!(single.contains("(int)(l % 1u), (int)((l / 1u) % 3u), (int)(l / 3u), weft_smem);"), "{single}");
    // Without a second logical block there is no barrier between them.
    let row = row_sum(5, 1000);
    let single =
        emit_bundle_with(&[&row], 256, BundleForm { single_pass: true, ..BundleForm::default() }).unwrap().code;
    let dispatcher = &single[single.find(BUNDLE_ENTRY).unwrap()..];
    assert!(!dispatcher.contains("if (lb != start)"), "{dispatcher}");
    let looping = emit_bundle(&[&row], 256).unwrap().code;
    assert!(looping[looping.find(BUNDLE_ENTRY).unwrap()..].contains("if (lb != start)"));
}

#[test]
fn a_register_cap_bounds_the_module_and_refuses_a_minimum_beside_it() {
    use weft_codegen::{emit_bundle_with, BundleForm};
    let k = sgemm(256, 256, 256, mid_tiles());
    let form = |max_registers, min_blocks_per_sm| BundleForm {
        max_registers,
        min_blocks_per_sm,
        single_pass: true,
        ..BundleForm::default()
    };
    let capped = emit_bundle_with(&[&k], threads(&k), form(Some(40), None)).unwrap();
    assert!(capped.code.contains("__global__ void __maxnreg__(40) weft_bundle("), "{}", capped.code);
    assert!(!capped.code.contains("__launch_bounds__"), "CUDA refuses both on one kernel: {}", capped.code);
    assert_eq!(form(Some(40), None).name(), "inline/reg40/1pass");
    // CUDA takes one bound or the other; 0 and more than 255 are no caps.
    for bad in [form(Some(40), Some(2)), form(Some(0), None), form(Some(256), None)] {
        match emit_bundle_with(&[&k], threads(&k), bad) {
            Err(EmitError::Kernel { reason, .. }) => assert!(reason.contains(&bad.name()), "{reason}"),
            other => panic!("{}: {other:?}", bad.name()),
        }
    }
    let Some(c) = measuring_compiler_or_skip("a_register_cap_bounds_the_module_and_refuses_a_minimum_beside_it") else {
        return;
    };
    let free = c.compile_measured(&emit_bundle_with(&[&k], threads(&k), form(None, None)).unwrap()).unwrap();
    let free = free.report().expect("ptxas ran").registers;
    // A cap below what ptxas takes unbounded, in whole allocation steps.
    let cap = (free / 2).max(24) / 8 * 8;
    assert!(free > cap, "the tiled product takes {free} registers unbounded; the check needs more than {cap}");
    let capped = c.compile_measured(&emit_bundle_with(&[&k], threads(&k), form(Some(cap), None)).unwrap()).unwrap();
    let r = capped.report().expect("ptxas ran");
    assert!(r.registers <= cap, "capped at {cap}, ptxas took {} ({r:?})", r.registers);
}

#[test]
fn the_launch_table_lives_in_constant_memory_and_the_body_keeps_its_registers() {
    use weft_codegen::bundle::{constant_launch_table, ARG_WORDS_SYMBOL, CONSTANT_ARG_WORDS, SLOT_TABLE_SYMBOL};
    use weft_codegen::{emit_bundle_with, BundleForm};
    let k = sgemm(256, 256, 256, mid_tiles());
    let form = BundleForm { single_pass: true, ..BundleForm::default() };
    let src = emit_bundle_with(&[&k], threads(&k), form).unwrap();
    assert!(src.code.contains(&format!("__constant__ WeftSlot {SLOT_TABLE_SYMBOL}[")), "{}", src.code);
    assert!(src.code.contains(&format!("__constant__ void* {ARG_WORDS_SYMBOL}[")), "{}", src.code);
    assert!(src.code.contains("WEFT_LAUNCH_SLOTS[mid]") && src.code.contains("WEFT_LAUNCH_ARGS + slot.arg_offset"));

    // A body with more parameters than the constant words hold reads the
    // table and words through the entry's pointers.
    let mut b = KernelBuilder::new("wide", LaunchShape::linear(1, 32));
    let bufs: Vec<_> =
        (0..=CONSTANT_ARG_WORDS).map(|i| b.buffer(&format!("x{i}"), Type::F32, 1, Access::Read)).collect();
    let out = b.buffer("out", Type::F32, 1, Access::Write);
    let zero = b.const_i32(0);
    let v = b.load(bufs[CONSTANT_ARG_WORDS], zero);
    b.store(out, zero, v);
    let wide = b.finish();
    assert!(!constant_launch_table(&[&k, &wide]) && constant_launch_table(&[&k]));
    let code = emit_bundle(&[&k, &wide], threads(&k)).unwrap().code;
    assert!(!code.contains("__constant__") && code.contains("#define WEFT_LAUNCH_SLOTS slots"), "no constant table");

    let Some(c) =
        measuring_compiler_or_skip("the_launch_table_lives_in_constant_memory_and_the_body_keeps_its_registers")
    else {
        return;
    };
    let alone = c.compile_measured(&emit_cuda(&k).unwrap()).unwrap();
    let alone = alone.report().expect("ptxas ran").clone();
    let bundled = c.compile_measured(&src).unwrap();
    let bundled = bundled.report().expect("ptxas ran").clone();
    // Read from global memory, the body's buffer addresses sat in registers
    // for the whole body: 64 registers alone, 79 bundled (sm_90, ptxas 13.0).
    assert!(
        bundled.registers * 10 <= alone.registers * 11 && bundled.spill_stores_bytes == 0,
        "alone {alone:?}, bundled {bundled:?}"
    );
}
