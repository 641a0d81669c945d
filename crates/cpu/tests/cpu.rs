//! The cpu executor in checking mode: the conformance suite and bundles
//! bit for bit against the interpreter, and injected faults caught.
//!
//! These tests need a host C++ compiler (`$CXX`, else `g++`). Where there is
//! none they print why and pass, except under `CI=true`, where a missing
//! compiler fails them: CI must run the emitted code.

use std::sync::Arc;

use weft_cpu::{BundleForm, CpuError, CpuExecutor, CpuMode, FaultKind, Fibers, HostCompiler};
use weft_interp::Interpreter;
use weft_kernels::{conformance_cases, SgemmTiles};
use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, ShuffleKind, Type};
use weft_pack::{launch_host, Budget, BundleBuilder, ExecError, Executor, InterpExecutor, Slot, TenantId};

const SEED: u64 = 0x5eed;

/// Runs `tenants` as one bundle on `exec`; returns every slot's arguments after.
fn run_bundle(
    exec: &mut dyn Executor,
    tenants: &[(Arc<KernelDef>, Vec<ArgValue>, Budget)],
) -> Result<Vec<Vec<ArgValue>>, ExecError> {
    let mut builder = BundleBuilder::new();
    for (t, (kernel, _, budget)) in tenants.iter().enumerate() {
        let args = (0..kernel.params.len() as u32).map(weft_lower::BufferId::from_u32).collect();
        builder.push(Slot { kernel: kernel.clone(), tenant: TenantId(t as u32), budget: *budget, args });
    }
    let bundle = builder.build().map_err(|e| ExecError::Bundle { reason: e.to_string() })?;
    let mut args: Vec<Vec<ArgValue>> = tenants.iter().map(|(_, a, _)| a.clone()).collect();
    launch_host(exec, &bundle, &mut args)?;
    Ok(args)
}

fn solo(kernel: &KernelDef, args: &[ArgValue]) -> (Arc<KernelDef>, Vec<ArgValue>, Budget) {
    (Arc::new(kernel.clone()), args.to_vec(), Budget::Full)
}

/// The CPU executor's own error inside an executor error.
fn cpu_error(e: &ExecError) -> &CpuError {
    match e {
        ExecError::Backend { source, .. } => {
            source.downcast_ref::<CpuError>().unwrap_or_else(|| panic!("not a cpu error: {e}"))
        }
        other => panic!("not a backend error: {other}"),
    }
}

#[test]
fn conformance_cases_match_the_interpreter_bit_for_bit() {
    if !weft_cpu::require_host_compiler_or_skip("conformance_cases_match_the_interpreter_bit_for_bit") {
        return;
    }
    let mut cpu = CpuExecutor::checking(SEED);
    let mut interp = InterpExecutor::new(Interpreter::new());
    let mut failures = Vec::new();
    for case in conformance_cases() {
        let tenants = [solo(&case.kernel, &case.args)];
        let want = run_bundle(&mut interp, &tenants).expect("the interpreter runs the conformance suite");
        match run_bundle(&mut cpu, &tenants) {
            Ok(got) if got == want => {}
            Ok(_) => failures.push(format!("{}: outputs differ from the interpreter's", case.name)),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "cpu conformance failures:\n{}", failures.join("\n"));
}

/// Wide and narrow bodies, persistent and coalesced slots, shuffles, barriers
/// and named barriers in one launch.
fn mixed_tenants() -> Vec<(Arc<KernelDef>, Vec<ArgValue>, Budget)> {
    let narrow = SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 };
    let wide = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
    let cases = [
        weft_kernels::cases::row_sum_case(7, 1000, 1),
        weft_kernels::cases::row_softmax_case(5, 777, 2),
        weft_kernels::cases::sgemm_case(70, 45, 33, wide, 3),
        weft_kernels::cases::sgemm_case(33, 20, 9, narrow, 4),
        weft_kernels::cases::vector_add_case(1500, 5),
    ];
    let mut tenants = Vec::new();
    for c in &cases {
        let k = Arc::new(c.kernel.clone());
        tenants.push((k.clone(), c.args.clone(), Budget::Blocks(1)));
        tenants.push((k, c.args.clone(), Budget::Full));
    }
    tenants
}

/// Every slot of `tenants` run on `cpu` equals its solo interpreter run.
fn assert_equals_solo_runs(cpu: &mut CpuExecutor, tenants: &[(Arc<KernelDef>, Vec<ArgValue>, Budget)], what: &str) {
    let got = run_bundle(cpu, tenants).unwrap_or_else(|e| panic!("{what}: {e}"));
    let interp = Interpreter::new();
    for (s, ((kernel, args, budget), got)) in tenants.iter().zip(&got).enumerate() {
        let mut want = args.clone();
        interp.run(kernel, &mut want).expect("solo interpreter run");
        assert!(want == *got, "{what}: slot {s} (`{}`, {budget:?}) differs from its solo run", kernel.name);
    }
}

#[test]
fn bundles_equal_solo_interpreter_runs() {
    if !weft_cpu::require_host_compiler_or_skip("bundles_equal_solo_interpreter_runs") {
        return;
    }
    assert_equals_solo_runs(&mut CpuExecutor::checking(SEED), &mixed_tenants(), "the default form");
}

/// Every form `weft_pack::compile_bundle` may choose for a GPU (bodies
/// inlined or called through `__noinline__` functions, `__launch_bounds__`
/// with or without a minimum of blocks per SM, a `__maxnreg__` register cap)
/// runs on the host from the same
/// text, bit for bit like the interpreter.
#[test]
fn every_bundle_form_equals_solo_interpreter_runs() {
    if !weft_cpu::require_host_compiler_or_skip("every_bundle_form_equals_solo_interpreter_runs") {
        return;
    }
    // The mixed tenants include constrained slots (a looping module); with
    // every slot at its full grid the launch is single-pass (no loop).
    let constrained = mixed_tenants();
    let coalesced: Vec<_> = constrained.iter().map(|(k, a, _)| (k.clone(), a.clone(), Budget::Full)).collect();
    for (tenants, single_pass) in [(constrained, false), (coalesced, true)] {
        for inline_bodies in [true, false] {
            for (min_blocks_per_sm, max_registers) in [(None, None), (Some(2), None), (None, Some(64))] {
                let form = BundleForm { inline_bodies, min_blocks_per_sm, max_registers, single_pass: false };
                let mut cpu = CpuExecutor::checking(SEED).with_form(form).with_source_edit(move |code| {
                    // The text is the form's: a called body is
                    // `__noinline__`, a minimum is `__launch_bounds__`'s
                    // second figure; the loop is the launch class's.
                    assert_eq!(code.contains("__noinline__"), !inline_bodies, "{}:\n{code}", form.name());
                    assert_eq!(
                        code.contains(", 2) weft_bundle("),
                        min_blocks_per_sm.is_some(),
                        "{}:\n{code}",
                        form.name()
                    );
                    assert_eq!(code.contains("__maxnreg__(64)"), max_registers.is_some(), "{}:\n{code}", form.name());
                    assert_eq!(code.contains("for (unsigned long long lb"), !single_pass, "{}:\n{code}", form.name());
                    code
                });
                let what = format!("{}, single pass: {single_pass}", form.name());
                assert_equals_solo_runs(&mut cpu, &tenants, &what);
            }
        }
    }
}

/// The checking mode with a block's threads on OS threads (the portable
/// fallback of `ucontext` fibers).
fn checking_on_threads() -> CpuExecutor {
    CpuExecutor::new(HostCompiler::new(None).with_fibers(Fibers::Threads), CpuMode::Checking { seed: SEED })
}

/// Part of the conformance suite (every other case) and the mixed bundle
/// with each GPU thread on an OS thread of its own: the same results as the
/// interpreter (and so as the `ucontext` fibers).
#[test]
fn os_thread_fibers_match_the_interpreter() {
    if !weft_cpu::require_host_compiler_or_skip("os_thread_fibers_match_the_interpreter") {
        return;
    }
    let mut cpu = checking_on_threads();
    let mut interp = InterpExecutor::new(Interpreter::new());
    let mut failures = Vec::new();
    let cases = conformance_cases();
    assert!(cases.len() >= 4, "the conformance suite has cases");
    for case in cases.iter().step_by(2) {
        let tenants = [solo(&case.kernel, &case.args)];
        let want = run_bundle(&mut interp, &tenants).expect("the interpreter runs the conformance suite");
        match run_bundle(&mut cpu, &tenants) {
            Ok(got) if got == want => {}
            Ok(_) => failures.push(format!("{}: outputs differ from the interpreter's", case.name)),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "failures on OS-thread fibers:\n{}", failures.join("\n"));
    assert_equals_solo_runs(&mut cpu, &mixed_tenants(), "OS-thread fibers");
}

/// The fault kinds the scheduler reports come out the same with OS-thread
/// fibers, and threads stopped mid-kernel by a fault are unwound and joined
/// (the next launch on the same executor still runs).
#[test]
fn os_thread_fibers_report_the_same_faults() {
    if !weft_cpu::require_host_compiler_or_skip("os_thread_fibers_report_the_same_faults") {
        return;
    }
    let race = neighbour_read(false, false);
    let e = run_bundle(&mut checking_on_threads(), &[solo(&race, &out_args())]).expect_err("a race");
    assert!(matches!(cpu_error(&e), CpuError::ScheduleDependent { .. }), "{e}");

    let threads = || HostCompiler::new(None).with_fibers(Fibers::Threads);
    let barrier = neighbour_read(true, false);
    let mut cpu = CpuExecutor::new(threads(), CpuMode::Fast).with_source_edit(exit_threads_from(32));
    let e = run_bundle(&mut cpu, &[solo(&barrier, &out_args())]).expect_err("half the block exited");
    assert!(matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::BarrierCount, .. }), "{e}");

    let k = shuffle_xor_16();
    let args = vec![ArgValue::Buffer(HostBuffer::zeros(Type::I32, 32))];
    let mut cpu = CpuExecutor::new(threads(), CpuMode::Fast).with_source_edit(exit_threads_from(16));
    let e = run_bundle(&mut cpu, &[solo(&k, &args)]).expect_err("lanes 16.. have exited");
    assert!(matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::ShuffleExitedLane, .. }), "{e}");

    // Threads of the failed launch waited at the shuffle; they were unwound,
    // so a later launch on the same executor runs to completion.
    let mut cpu = CpuExecutor::new(threads(), CpuMode::Fast);
    run_bundle(&mut cpu, &[solo(&barrier, &out_args())]).unwrap_or_else(|e| panic!("{e}"));
    let e = run_bundle(&mut cpu, &[solo(&race, &out_args())]);
    assert!(e.is_ok(), "one forward run of the race completes: {e:?}");
}

// ---- Injected faults ----------------------------------------------------

const THREADS: u32 = 64;

/// `out[t] = s[(t + 1) % 64]` after every thread wrote `s[t] = t` (or only
/// even threads did, with `even_only`), with or without the barrier between.
fn neighbour_read(barrier: bool, even_only: bool) -> KernelDef {
    let mut b = KernelBuilder::new("neighbour_read", LaunchShape::linear(2, THREADS));
    let out = b.buffer("out", Type::F32, THREADS as u64, Access::Write);
    let s = b.shared_array(Type::F32, THREADS);
    let t = b.thread_id(Axis::X);
    let v = b.cast(Type::F32, t);
    if even_only {
        let two = b.const_i32(2);
        let r = b.rem(t, two);
        let zero = b.const_i32(0);
        let even = b.eq(r, zero);
        b.if_(even, |b| b.shared_store(s, t, v));
    } else {
        b.shared_store(s, t, v);
    }
    if barrier {
        b.barrier();
    }
    let one = b.const_i32(1);
    let next = b.add(t, one);
    let n = b.const_i32(THREADS as i32);
    let wrap = b.eq(next, n);
    let zero = b.const_i32(0);
    let idx = b.select(wrap, zero, next);
    let idx = if even_only { t } else { idx };
    let got = b.shared_load(s, idx);
    let bid = b.block_id(Axis::X);
    let z = b.const_i32(0);
    let first = b.eq(bid, z);
    b.if_(first, |b| b.store(out, t, got));
    b.finish()
}

fn out_args() -> Vec<ArgValue> {
    vec![ArgValue::Buffer(HostBuffer::zeros(Type::F32, THREADS as usize))]
}

#[test]
fn with_its_barrier_the_neighbour_read_is_schedule_independent() {
    if !weft_cpu::require_host_compiler_or_skip("with_its_barrier_the_neighbour_read_is_schedule_independent") {
        return;
    }
    let k = neighbour_read(true, false);
    let got = run_bundle(&mut CpuExecutor::checking(SEED), &[solo(&k, &out_args())]).unwrap_or_else(|e| panic!("{e}"));
    let mut want = out_args();
    Interpreter::new().run(&k, &mut want).expect("interpreter");
    assert!(got[0] == want);
}

#[test]
fn a_removed_barrier_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_removed_barrier_is_caught") {
        return;
    }
    let k = neighbour_read(false, false);
    let e = run_bundle(&mut CpuExecutor::checking(SEED), &[solo(&k, &out_args())]).expect_err("a race");
    assert!(
        matches!(cpu_error(&e), CpuError::ScheduleDependent { kernel, param, .. } if kernel == "neighbour_read" && param == "out"),
        "{e}"
    );
}

#[test]
fn an_uninitialised_shared_read_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("an_uninitialised_shared_read_is_caught") {
        return;
    }
    let k = neighbour_read(true, true);
    let e = run_bundle(&mut CpuExecutor::checking(SEED), &[solo(&k, &out_args())]).expect_err("fill-dependent");
    let err = cpu_error(&e);
    assert!(matches!(err, CpuError::ScheduleDependent { .. }), "{e}");
    assert!(e.to_string().contains("0xff"), "the 0xff fill run is named: {e}");
}

/// Returns threads at or past `from` right after the ids are read: the
/// verifier rejects such kernels, so the fault is injected into the text.
fn exit_threads_from(from: u32) -> impl Fn(String) -> String + Send + Sync + 'static {
    move |code| {
        let ids = "const int tid_x = (int)threadIdx.x;";
        assert!(code.contains(ids), "{code}");
        code.replace(ids, &format!("{ids} if (tid_x >= {from}) return;"))
    }
}

/// `out[t] = shfl_xor(t, 16)` over one warp.
fn shuffle_xor_16() -> KernelDef {
    let mut b = KernelBuilder::new("shuffle_xor_16", LaunchShape::linear(1, 32));
    let out = b.buffer("out", Type::I32, 32, Access::Write);
    let t = b.thread_id(Axis::X);
    let v = b.shuffle_xor(t, 16);
    b.store(out, t, v);
    b.finish()
}

#[test]
fn a_shuffle_naming_an_exited_lane_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_shuffle_naming_an_exited_lane_is_caught") {
        return;
    }
    let k = shuffle_xor_16();
    let args = vec![ArgValue::Buffer(HostBuffer::zeros(Type::I32, 32))];
    let got = run_bundle(&mut CpuExecutor::checking(SEED), &[solo(&k, &args)]).unwrap_or_else(|e| panic!("{e}"));
    let mut want = args.clone();
    Interpreter::new().run(&k, &mut want).expect("interpreter");
    assert!(got[0] == want, "unedited, the shuffle matches the interpreter");
    let mut cpu = CpuExecutor::fast().with_source_edit(exit_threads_from(16));
    let e = run_bundle(&mut cpu, &[solo(&k, &args)]).expect_err("lanes 16.. have exited");
    assert!(
        matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::ShuffleExitedLane, kernel, .. } if kernel == "shuffle_xor_16"),
        "{e}"
    );
}

/// A block barrier that half the block never reaches (its threads returned).
#[test]
fn a_barrier_reached_by_part_of_the_block_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_barrier_reached_by_part_of_the_block_is_caught") {
        return;
    }
    let k = neighbour_read(true, false);
    let mut cpu = CpuExecutor::fast().with_source_edit(exit_threads_from(32));
    let e = run_bundle(&mut cpu, &[solo(&k, &out_args())]).expect_err("half the block exited");
    assert!(
        matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::BarrierCount, kernel, .. } if kernel == "neighbour_read"),
        "{e}"
    );
}

/// A narrow sgemm (64 threads) beside a 256-thread row sum: its barriers are
/// `WEFT_SYNC_NAMED(1, 64)`. Counting 96 threads asks for a warp that has
/// already returned.
#[test]
fn a_named_barrier_counting_too_many_warps_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_named_barrier_counting_too_many_warps_is_caught") {
        return;
    }
    let narrow = SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 };
    let wide = weft_kernels::cases::row_sum_case(2, 100, 1);
    let gemm = weft_kernels::cases::sgemm_case(20, 20, 20, narrow, 2);
    let tenants = [solo(&wide.kernel, &wide.args), solo(&gemm.kernel, &gemm.args)];
    // Unedited, the bundle runs.
    run_bundle(&mut CpuExecutor::checking(SEED), &tenants).unwrap_or_else(|e| panic!("{e}"));
    let mut cpu = CpuExecutor::fast().with_source_edit(|code| {
        assert!(code.contains("WEFT_SYNC_NAMED(1, 64);"), "the bundle has a named barrier");
        code.replace("WEFT_SYNC_NAMED(1, 64);", "WEFT_SYNC_NAMED(1, 96);")
    });
    let e = run_bundle(&mut cpu, &tenants).expect_err("too few warps");
    assert!(
        matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::BarrierCount, kernel, .. } if kernel == "sgemm"),
        "{e}"
    );
}

/// A pool view moved past the end of the bundle's dynamic shared pool.
#[test]
fn a_shared_view_outside_the_pool_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_shared_view_outside_the_pool_is_caught") {
        return;
    }
    let case = weft_kernels::cases::row_sum_case(2, 100, 1);
    let mut cpu = CpuExecutor::fast().with_source_edit(|code| {
        assert!(code.contains("WEFT_SHARED_VIEW(float, s0, weft_smem, 0, 8);"), "{code}");
        code.replace("WEFT_SHARED_VIEW(float, s0, weft_smem, 0, 8);", "WEFT_SHARED_VIEW(float, s0, weft_smem, 16, 8);")
    });
    let e = run_bundle(&mut cpu, &[solo(&case.kernel, &case.args)]).expect_err("outside the pool");
    assert!(matches!(cpu_error(&e), CpuError::Fault { kind: FaultKind::SharedView, .. }), "{e}");
}

/// The bounds guard of vector_add removed: the last block's threads past
/// `n` read and write outside the buffers, which the sanitized run reports.
#[test]
fn an_out_of_bounds_read_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("an_out_of_bounds_read_is_caught") {
        return;
    }
    let case = weft_kernels::cases::vector_add_case(1000, 1);
    let mut cpu = CpuExecutor::checking(SEED).with_source_edit(|code| {
        assert!(code.contains("if (v6) {"), "{code}");
        code.replace("if (v6) {", "if (true) {")
    });
    let e = run_bundle(&mut cpu, &[solo(&case.kernel, &case.args)]).expect_err("out of bounds");
    let err = cpu_error(&e);
    assert!(matches!(err, CpuError::Sanitizer { kernel, .. } if kernel == "vector_add"), "{e}");
    assert!(e.to_string().contains("out of bounds") || e.to_string().contains("heap-buffer-overflow"), "{e}");
}

/// A pool view shorter than the array the body indexes: the view is its
/// own allocation of exactly its size, so the sanitizer sees the overflow.
#[test]
fn a_shared_view_too_small_is_caught() {
    if !weft_cpu::require_host_compiler_or_skip("a_shared_view_too_small_is_caught") {
        return;
    }
    let case = weft_kernels::cases::row_sum_case(2, 100, 1);
    let mut cpu = CpuExecutor::checking(SEED).with_source_edit(|code| {
        code.replace("WEFT_SHARED_VIEW(float, s0, weft_smem, 0, 8);", "WEFT_SHARED_VIEW(float, s0, weft_smem, 0, 4);")
    });
    let e = run_bundle(&mut cpu, &[solo(&case.kernel, &case.args)]).expect_err("view too small");
    assert!(matches!(cpu_error(&e), CpuError::Sanitizer { kernel, .. } if kernel == "row_sum"), "{e}");
}

// ---- Shuffles at every kind, width and edge operand ----------------------

const KINDS: [ShuffleKind; 4] = [ShuffleKind::Idx, ShuffleKind::Up, ShuffleKind::Down, ShuffleKind::Xor];
const WIDTHS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Every kind at every width over a block of `threads`; the operand is the
/// scalar parameter `op`, or each of `constants` in turn (then the result
/// row is per constant too).
fn shuffles(threads: u32, constants: &[i32]) -> KernelDef {
    let rows = KINDS.len() * WIDTHS.len() * constants.len().max(1);
    let mut b = KernelBuilder::new("shuffles", LaunchShape::linear(1, threads));
    let out = b.buffer("out", Type::I32, (rows as u32 * threads) as u64, Access::Write);
    let op = b.scalar_param("op", Type::I32);
    let t = b.thread_id(Axis::X);
    let hundred = b.const_i32(100);
    let value = b.add(t, hundred);
    let mut row = 0;
    for kind in KINDS {
        for width in WIDTHS {
            let operands: Vec<_> = if constants.is_empty() {
                vec![b.param(op)]
            } else {
                constants.iter().map(|&c| b.const_i32(c)).collect()
            };
            for operand in operands {
                let got = b.shuffle(kind, value, operand, width);
                let base = b.const_i32(row * threads as i32);
                let at = b.add(base, t);
                b.store(out, at, got);
                row += 1;
            }
        }
    }
    b.finish()
}

fn shuffle_args(k: &KernelDef, op: i32) -> Vec<ArgValue> {
    let len = match k.params.values().next().map(|p| &p.kind) {
        Some(weft_kir::ParamKind::Buffer { len, .. }) => *len as usize,
        _ => 0,
    };
    vec![ArgValue::Buffer(HostBuffer::zeros(Type::I32, len)), ArgValue::Scalar(weft_kir::Scalar::I32(op))]
}

const EDGES: [i32; 15] = [i32::MIN, -33, -32, -31, -1, 0, 1, 3, 7, 15, 16, 31, 32, 33, i32::MAX];

/// The emitted code's shuffles (guarded where the hardware and KIR could
/// disagree) equal the interpreter's for every kind, width and edge operand,
/// given at run time or as constants.
#[test]
fn shuffles_at_every_kind_width_and_edge_operand_match_the_interpreter() {
    if !weft_cpu::require_host_compiler_or_skip("shuffles_at_every_kind_width_and_edge_operand_match_the_interpreter") {
        return;
    }
    let mut cpu = CpuExecutor::checking(SEED);
    let interp = Interpreter::new();
    for threads in [64] {
        let runtime = shuffles(threads, &[]);
        for op in EDGES {
            let got = run_bundle(&mut cpu, &[solo(&runtime, &shuffle_args(&runtime, op))])
                .unwrap_or_else(|e| panic!("{threads} threads, operand {op}: {e}"));
            let mut want = shuffle_args(&runtime, op);
            interp.run(&runtime, &mut want).expect("interpreter");
            assert!(got[0] == want, "{threads} threads, operand {op}: differs from the interpreter");
        }
        let constant = shuffles(threads, &EDGES);
        let got = run_bundle(&mut cpu, &[solo(&constant, &shuffle_args(&constant, 0))])
            .unwrap_or_else(|e| panic!("{threads} threads, constant operands: {e}"));
        let mut want = shuffle_args(&constant, 0);
        interp.run(&constant, &mut want).expect("interpreter");
        assert!(got[0] == want, "{threads} threads, constant operands: differs from the interpreter");
    }
}

// ---- Bundle == solo, sampled --------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A reference kernel at a small random shape, with its case's inputs.
    fn case() -> impl Strategy<Value = weft_kernels::Case> {
        let narrow = SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 };
        let wide = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
        prop_oneof![
            (1u32..=700, any::<u64>()).prop_map(|(n, s)| weft_kernels::cases::vector_add_case(n, s)),
            (1u32..=40, 1u32..=40, 1u32..=20, any::<bool>(), any::<u64>()).prop_map(move |(m, n, k, nar, s)| {
                weft_kernels::cases::sgemm_case(m, n, k, if nar { narrow } else { wide }, s)
            }),
            (1u32..=4, 1u32..=600, any::<u64>()).prop_map(|(r, c, s)| weft_kernels::cases::row_sum_case(r, c, s)),
            (1u32..=4, 1u32..=400, any::<u64>()).prop_map(|(r, c, s)| weft_kernels::cases::row_softmax_case(r, c, s)),
        ]
    }

    proptest! {
        // Each case compiles a new module twice (library and sanitized
        // runner), so CI samples a few; the interpreter's oracle test in
        // weft-pack draws many more.
        #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

        /// A random bundle (random budgets: coalesced or persistent) on the
        /// cpu executor in checking mode equals each slot's solo
        /// interpreter run, bit for bit.
        #[test]
        fn bundles_on_the_cpu_executor_equal_solo_runs(
            cases in prop::collection::vec((case(), prop::option::of(any::<u32>())), 1..=3),
        ) {
            if !weft_cpu::require_host_compiler_or_skip("bundles_on_the_cpu_executor_equal_solo_runs") {
                return Ok(());
            }
            let tenants: Vec<_> = cases
                .iter()
                .map(|(c, budget)| {
                    let logical = c.kernel.launch.num_blocks().min(u32::MAX as u64) as u32;
                    let budget = budget.map_or(Budget::Full, |b| Budget::Blocks(1 + b % logical.max(1)));
                    (Arc::new(c.kernel.clone()), c.args.clone(), budget)
                })
                .collect();
            let got = run_bundle(&mut CpuExecutor::checking(SEED), &tenants)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let interp = Interpreter::new();
            for (s, ((kernel, args, budget), got)) in tenants.iter().zip(&got).enumerate() {
                let mut want = args.clone();
                interp.run(kernel, &mut want).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(want == *got, "slot {} (`{}`, {:?}) differs from its solo run", s, kernel.name, budget);
            }
        }
    }
}

/// Edge values of `ty`: zero, one, the extremes, values that wrap when
/// added or multiplied, NaN, infinities and values only `f64` holds.
fn edge_values(ty: Type) -> Vec<weft_kir::Scalar> {
    use weft_kir::Scalar;
    if ty.is_float() {
        // No -0.0: KIR leaves which zero `min`/`max` of +0 and -0 return
        // open (as C's fmin/fmax do).
        let v = [
            0.0,
            1.0,
            -1.0,
            0.1,
            3.7,
            -3.7,
            2.5,
            65504.5,
            1e10,
            -1e10,
            3e38,
            1e300,
            -1e-300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0 + 2f64.powi(-11) + 2f64.powi(-40),
        ];
        return v.into_iter().map(|x| Scalar::from_f64(ty, x)).collect();
    }
    let (lo, hi) = ty.int_range().unwrap_or((0, 1));
    let v = [0, 1, 2, 3, 7, 9, -1, -7, 100, -100, 300, 40_000, 1 << 40, lo, hi, lo + 1, hi - 1, hi / 2 + 1];
    v.into_iter().filter_map(|x| Scalar::from_int(ty, x)).collect()
}

/// How one output of [`every_op_on`] is computed from the lane's operands.
type OpOf = dyn Fn(&mut KernelBuilder, weft_kir::Value, weft_kir::Value) -> weft_kir::Value;

/// One kernel over every pair of edge values of `ty`: each binary op (with
/// zero divisors replaced by one), each unary op, each comparison, `fma`
/// (floats), a cast to every other type and a bitcast to every other type
/// of its size, one output buffer each.
fn every_op_on(ty: Type) -> (KernelDef, Vec<ArgValue>) {
    use weft_kir::{BinaryOp, CmpOp, Scalar, UnaryOp};
    let vals = edge_values(ty);
    let pairs: Vec<(Scalar, Scalar)> = vals.iter().flat_map(|&a| vals.iter().map(move |&b| (a, b))).collect();
    let n = pairs.len();
    let threads = 64;
    let mut b = KernelBuilder::new(format!("every_op_{ty}"), LaunchShape::linear(n.div_ceil(threads) as u32, 64));
    let pa = b.buffer("a", ty, n as u64, Access::Read);
    let pb = b.buffer("b", ty, n as u64, Access::Read);
    let mut outputs: Vec<(Type, Box<OpOf>)> = Vec::new();
    for op in BinaryOp::ALL {
        let ok = if ty.is_float() { op.is_arith() } else { true };
        if !ok {
            continue;
        }
        outputs.push((
            ty,
            Box::new(move |b, x, y| {
                let y = if matches!(op, BinaryOp::Div | BinaryOp::Rem) && !ty.is_float() {
                    let zero = b.constant(Scalar::from_f64(ty, 0.0));
                    let one = b.constant(Scalar::from_f64(ty, 1.0));
                    let z = b.cmp(CmpOp::Eq, y, zero);
                    b.select(z, one, y)
                } else {
                    y
                };
                b.binary(op, x, y)
            }),
        ));
    }
    for op in UnaryOp::ALL {
        let ok =
            if ty.is_float() { op != UnaryOp::Not } else { matches!(op, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs) };
        if ok {
            outputs.push((ty, Box::new(move |b, x, _| b.unary(op, x))));
        }
    }
    for op in CmpOp::ALL {
        outputs.push((Type::Bool, Box::new(move |b, x, y| b.cmp(op, x, y))));
    }
    if ty.is_float() {
        outputs.push((ty, Box::new(|b, x, y| b.fma(x, y, x))));
    }
    for to in Type::ALL.into_iter().filter(|&to| to != ty) {
        outputs.push((to, Box::new(move |b, x, _| b.cast(to, x))));
    }
    for to in Type::ALL.into_iter().filter(|&to| to != ty && to.size_bytes() == ty.size_bytes()) {
        outputs.push((to, Box::new(move |b, x, _| b.bitcast(to, x))));
    }
    let outs: Vec<_> = outputs
        .iter()
        .enumerate()
        .map(|(k, (t, _))| b.buffer(&format!("out{k}"), *t, n as u64, Access::Write))
        .collect();
    let i = b.global_thread_id(Axis::X);
    let limit = b.const_i32(n as i32);
    let inside = b.lt(i, limit);
    b.if_(inside, |b| {
        let x = b.load(pa, i);
        let y = b.load(pb, i);
        for ((_, f), &o) in outputs.iter().zip(&outs) {
            let r = f(b, x, y);
            b.store(o, i, r);
        }
    });
    let mut args = Vec::new();
    for side in [0, 1] {
        let mut buf = HostBuffer::zeros(ty, n);
        for (k, p) in pairs.iter().enumerate() {
            buf.set(k, if side == 0 { p.0 } else { p.1 });
        }
        args.push(ArgValue::Buffer(buf));
    }
    args.extend(outputs.iter().map(|(t, _)| ArgValue::Buffer(HostBuffer::zeros(*t, n))));
    (b.finish(), args)
}

#[test]
fn narrow_unsigned_and_f64_types_match_the_interpreter_bit_for_bit() {
    if !weft_cpu::require_host_compiler_or_skip("narrow_unsigned_and_f64_types_match_the_interpreter_bit_for_bit") {
        return;
    }
    let mut cpu = CpuExecutor::checking(SEED);
    for ty in [Type::I8, Type::U8, Type::I16, Type::U16, Type::U32, Type::U64, Type::F64] {
        let (k, args) = every_op_on(ty);
        let got = run_bundle(&mut cpu, &[solo(&k, &args)]).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let mut want = args.clone();
        Interpreter::new().run(&k, &mut want).unwrap_or_else(|e| panic!("{ty}: interpreter: {e}"));
        for (j, (g, w)) in got[0].iter().zip(&want).enumerate() {
            assert!(g == w, "{ty}: output buffer {j} differs from the interpreter's");
        }
    }
}
