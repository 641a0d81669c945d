//! Bundles on the GPU: many slots in one launch give, bit for bit, what each
//! slot gives alone (DESIGN.md principle 2, on hardware).
//!
//! Random bundles of the reference kernels (and of lowered ResNet-18 layers)
//! with random budgets, coalesced (one physical block per logical block) and
//! constrained (persistent blocks looping over the logical grid), at several
//! block sizes so narrow bodies run under named barriers. Each is checked
//! against every slot run alone as a one-slot bundle (bit-identical)
//! and on the CPU interpreter (relative L2 within 1e-6).
//!
//! The GPU tests skip, printing why, without a GPU, and fail instead under
//! `WEFT_REQUIRE_GPU=1`. The NVRTC test below (lowered layers of N tenants
//! share one module per layer) needs only NVRTC.

use std::sync::Arc;

use weft::codegen::{emit_bundle, require_nvrtc_or_skip, Arch};
use weft::gpu::GpuExecutor;
use weft::kernels::cases::{row_softmax_case, row_sum_case, sgemm_case, vector_add_case};
use weft::kernels::reference::rel_l2;
use weft::kernels::rng::SplitMix64;
use weft::kernels::SgemmTiles;
use weft::kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, ParamKind, Type};
use weft_interp::Interpreter;
use weft_lower::{lower, BufferId, LowerOptions};
use weft_pack::{body_fingerprint, launch_host, Budget, Bundle, BundleBuilder, ExecError, Executor, Slot, TenantId};

/// One slot to be: a kernel, its arguments and its budget.
#[derive(Clone)]
struct Job {
    kernel: Arc<KernelDef>,
    args: Vec<ArgValue>,
    budget: Budget,
}

/// Builds a bundle with the packer's builder: distinct bodies in first-use
/// order, slots back to back, the widest slot's block size.
fn bundle_of(jobs: &[Job]) -> Bundle {
    let mut b = BundleBuilder::new();
    for (i, j) in jobs.iter().enumerate() {
        b.push(Slot {
            kernel: j.kernel.clone(),
            tenant: TenantId(i as u32),
            budget: j.budget,
            args: (0..j.args.len() as u32).map(BufferId::from_u32).collect(),
        });
    }
    b.build().expect("the bundle builds")
}

/// The reference kernels at small shapes, with seeded inputs: 256-thread
/// bodies, and SGEMMs of 64 and 128 threads to run narrower than the launch.
fn reference_jobs(seed: u64) -> Vec<Job> {
    let small = SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 };
    let mid = SgemmTiles { bm: 32, bn: 16, bk: 8, tm: 2, tn: 2 };
    let cases = [
        vector_add_case(1000, seed),
        sgemm_case(65, 33, 17, SgemmTiles::default(), seed + 1),
        sgemm_case(45, 37, 29, small, seed + 2),
        sgemm_case(40, 24, 20, mid, seed + 3),
        row_sum_case(5, 1000, seed + 4),
        row_softmax_case(7, 300, seed + 5),
    ];
    cases.into_iter().map(|c| Job { kernel: Arc::new(c.kernel), args: c.args, budget: Budget::Full }).collect()
}

/// A kernel with 64 KiB of shared memory (above the 48 KiB default, so the
/// bundle's function must opt in), 128 threads: each block fills the array,
/// waits, and reads it back reversed.
fn big_shared(blocks: u32) -> KernelDef {
    const LEN: u32 = 16384;
    let mut b = KernelBuilder::new("big_shared", LaunchShape::linear(blocks, 128));
    let x = b.buffer("x", Type::F32, blocks as u64 * LEN as u64, Access::Read);
    let out = b.buffer("out", Type::F32, blocks as u64 * LEN as u64, Access::Write);
    let s = b.shared_array(Type::F32, LEN);
    let bid = b.block_id(Axis::X);
    let tid = b.thread_id(Axis::X);
    let c_len = b.const_i32(LEN as i32);
    let base = b.mul(bid, c_len);
    b.for_range(tid, c_len, 128, |b, i| {
        let g = b.add(base, i);
        let v = b.load(x, g);
        b.shared_store(s, i, v);
    });
    b.barrier();
    let last = b.const_i32(LEN as i32 - 1);
    b.for_range(tid, c_len, 128, |b, i| {
        let r = b.sub(last, i);
        let v = b.shared_load(s, r);
        let g = b.add(base, i);
        b.store(out, g, v);
    });
    b.finish()
}

/// Seeded arguments for any kernel: read buffers random, others zeroed.
fn random_args(kernel: &KernelDef, rng: &mut SplitMix64) -> Vec<ArgValue> {
    kernel
        .params
        .values()
        .map(|p| match p.kind {
            ParamKind::Buffer { elem, len, access } => {
                let values = if access == Access::Write {
                    vec![0.0; len as usize]
                } else {
                    rng.f32_values(len as usize, -1.0, 1.0)
                };
                ArgValue::Buffer(HostBuffer::from_f64(elem, &values))
            }
            ParamKind::Scalar { ty } => ArgValue::Scalar(weft::kir::Scalar::from_f64(ty, rng.uniform(-2.0, 2.0))),
        })
        .collect()
}

/// A random budget: full, or a random number of persistent blocks (1 is the
/// most constrained: one block loops over the whole grid).
fn random_budget(kernel: &KernelDef, rng: &mut SplitMix64) -> Budget {
    let logical = kernel.launch.num_blocks();
    match rng.next_u64() % 3 {
        0 => Budget::Full,
        1 => Budget::Blocks(1),
        _ => Budget::Blocks(1 + (rng.next_u64() % logical.max(1)) as u32),
    }
}

fn writable(kernel: &KernelDef) -> Vec<usize> {
    kernel
        .params
        .values()
        .enumerate()
        .filter(|(_, p)| matches!(p.kind, ParamKind::Buffer { access, .. } if access.can_write()))
        .map(|(i, _)| i)
        .collect()
}

/// Runs `jobs` as one bundle and checks each slot against itself run alone
/// on the GPU (bit for bit) and on the interpreter (rel L2 <= 1e-6).
fn check_bundle(exec: &mut GpuExecutor, interp: &Interpreter, jobs: &[Job], what: &str) {
    let bundle = bundle_of(jobs);
    let mut bundled: Vec<Vec<ArgValue>> = jobs.iter().map(|j| j.args.clone()).collect();
    launch_host(exec, &bundle, &mut bundled).unwrap_or_else(|e| panic!("{what}: bundle failed: {e}"));
    for (s, (job, got)) in jobs.iter().zip(&bundled).enumerate() {
        let name = &job.kernel.name;
        // Alone, a kernel runs as a one-slot bundle on its whole grid.
        let solo = [Job { budget: Budget::Full, ..job.clone() }];
        let mut one = vec![job.args.clone()];
        launch_host(exec, &bundle_of(&solo), &mut one)
            .unwrap_or_else(|e| panic!("{what}: slot {s} ({name}) alone: {e}"));
        let alone = one.pop().unwrap();
        let mut cpu = job.args.clone();
        interp.run(&job.kernel, &mut cpu).unwrap_or_else(|e| panic!("{what}: slot {s} ({name}) on interp: {e}"));
        for p in writable(&job.kernel) {
            let (g, a, c) = (got[p].as_buffer().unwrap(), alone[p].as_buffer().unwrap(), cpu[p].as_buffer().unwrap());
            assert!(
                g.bytes() == a.bytes(),
                "{what}: slot {s} ({name}, {:?}) param {p}: bundle differs from the slot alone on the GPU",
                job.budget
            );
            let err = rel_l2(&g.to_f64_vec(), &c.to_f64_vec());
            assert!(
                err <= 1e-6 || err.is_nan() && g.bytes() == c.bytes(),
                "{what}: slot {s} ({name}) rel L2 {err:e} vs interp"
            );
        }
    }
}

#[test]
fn random_bundles_of_reference_kernels_match_each_slot_alone() {
    if weft::cuda::require_gpu_or_skip("random_bundles_of_reference_kernels_match_each_slot_alone").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("a GPU was probed, so the executor must start");
    let interp = Interpreter::new();
    let mut rng = SplitMix64::new(0xb0d1e5);
    for trial in 0..24 {
        let pool = reference_jobs(100 + trial);
        let n = 1 + (rng.next_u64() % 6) as usize;
        let jobs: Vec<Job> = (0..n)
            .map(|_| {
                let mut j = pool[(rng.next_u64() % pool.len() as u64) as usize].clone();
                j.args = random_args(&j.kernel, &mut rng);
                j.budget = random_budget(&j.kernel, &mut rng);
                j
            })
            .collect();
        check_bundle(&mut exec, &interp, &jobs, &format!("trial {trial}"));
    }
    // Every reference kernel fully constrained, all in one launch.
    let mut all = reference_jobs(7);
    for j in &mut all {
        j.budget = Budget::Blocks(1);
    }
    check_bundle(&mut exec, &interp, &all, "all constrained to one block");
}

#[test]
fn a_launch_class_seen_before_compiles_nothing() {
    if weft::cuda::require_gpu_or_skip("a_launch_class_seen_before_compiles_nothing").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("GPU");
    let interp = Interpreter::new();
    let softmax = reference_jobs(3).swap_remove(5);
    let compiles = |e: &GpuExecutor| e.compiler().stats().nvrtc_invocations + e.compiler().stats().disk_hits;
    let four: Vec<Job> = (0..4).map(|_| softmax.clone()).collect();
    check_bundle(&mut exec, &interp, &four, "4 tenants");
    let after_first = compiles(&exec);
    let mut rng = SplitMix64::new(9);
    let eight: Vec<Job> =
        (0..8).map(|_| Job { budget: random_budget(&softmax.kernel, &mut rng), ..softmax.clone() }).collect();
    // Only the bundle itself counts here: check_bundle's solo runs compile
    // the single kernel, which the first call already did.
    launch_host(&mut exec, &bundle_of(&eight), &mut eight.iter().map(|j| j.args.clone()).collect::<Vec<_>>()).unwrap();
    assert_eq!(compiles(&exec), after_first, "8 tenants of a class already run must not compile");
}

#[test]
fn shared_memory_above_48_kib_opts_in() {
    if weft::cuda::require_gpu_or_skip("shared_memory_above_48_kib_opts_in").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("GPU");
    let interp = Interpreter::new();
    let mut rng = SplitMix64::new(5);
    let k = Arc::new(big_shared(5));
    let mut jobs = reference_jobs(11);
    for budget in [Budget::Full, Budget::Blocks(2)] {
        jobs.push(Job { kernel: k.clone(), args: random_args(&k, &mut rng), budget });
    }
    check_bundle(&mut exec, &interp, &jobs, "64 KiB body beside the reference kernels");
}

#[test]
fn lowered_resnet_layers_of_several_tenants_bundle() {
    if weft::cuda::require_gpu_or_skip("lowered_resnet_layers_of_several_tenants_bundle").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("GPU");
    let interp = Interpreter::new();
    let program = lower(&weft_graph::models::resnet18(1, 1, 32, 10).unwrap(), &LowerOptions::default()).unwrap();
    let mut rng = SplitMix64::new(77);
    // Each step, three tenants at once (coalesced or constrained).
    for (i, step) in program.steps.iter().enumerate().take(12) {
        let jobs: Vec<Job> = (0..3)
            .map(|_| Job {
                kernel: step.kernel.clone(),
                args: random_args(&step.kernel, &mut rng),
                budget: random_budget(&step.kernel, &mut rng),
            })
            .collect();
        check_bundle(&mut exec, &interp, &jobs, &format!("step {i} ({})", step.kernel.name));
    }
}

#[test]
fn mismatched_bundles_are_typed_errors() {
    if weft::cuda::require_gpu_or_skip("mismatched_bundles_are_typed_errors").is_none() {
        return;
    }
    let mut exec = GpuExecutor::new().expect("GPU");
    let jobs = reference_jobs(1);
    let bundle = bundle_of(&jobs);
    let mut too_few: Vec<Vec<ArgValue>> = jobs.iter().skip(1).map(|j| j.args.clone()).collect();
    assert!(matches!(launch_host(&mut exec, &bundle, &mut too_few), Err(ExecError::Bundle { .. })));
    let mut wrong: Vec<Vec<ArgValue>> = jobs.iter().map(|j| j.args.clone()).collect();
    wrong[2].pop();
    match launch_host(&mut exec, &bundle, &mut wrong) {
        Err(ExecError::Args { slot: 2, kernel, .. }) => assert_eq!(kernel, "sgemm"),
        other => panic!("expected a slot error, got {other:?}"),
    }
}

#[test]
fn lowered_layers_of_n_tenants_share_one_module_per_layer() {
    // NVRTC only: the bundle source of a layer is the same for every tenant
    // of an architecture, so N tenants compile each distinct layer once.
    let Some(c) = require_nvrtc_or_skip("lowered_layers_of_n_tenants_share_one_module_per_layer", Arch::SM_90) else {
        return;
    };
    let tenants: Vec<_> = (0..3)
        .map(|seed| lower(&weft_graph::models::resnet18(seed, 1, 32, 10).unwrap(), &LowerOptions::default()).unwrap())
        .collect();
    let mut distinct = std::collections::HashSet::new();
    for step in 0..tenants[0].steps.len() {
        for t in &tenants {
            let k = &t.steps[step].kernel;
            distinct.insert(body_fingerprint(k));
            let src = emit_bundle(&[k], k.launch.threads_per_block() as u32).unwrap();
            c.compile(&src).unwrap_or_else(|e| panic!("step {step} ({}): {e}", k.name));
        }
    }
    assert_eq!(c.stats().nvrtc_invocations, distinct.len() as u64, "{:?}", c.stats());
}

#[test]
fn without_a_gpu_bundles_fail_typed_not_panicking() {
    match GpuExecutor::new() {
        Ok(exec) => assert_eq!(exec.name(), "cuda"),
        Err(weft::cuda::CudaError::NoDevice { reason, .. }) => {
            eprintln!("skipping bundle execution: {reason}");
            assert!(reason.contains("CPU interpreter"), "{reason}");
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}
