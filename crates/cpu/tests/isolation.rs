//! Isolation where a leak would show: tenants' buffers side by side in one
//! flat arena (`CpuExecutor::with_flat_arena`), so an out-of-bounds access
//! of one tenant's kernel lands in its neighbour's bytes, as on a device.
//!
//! An attacker with indices computed from its inputs (past its buffers,
//! negative, huge) is packed next to a victim: with the packer's guards the
//! victim's buffers come out bit-identical to a solo run and the attacker
//! reads only zeros out of range; the same bundle built without guards
//! (`BundleBuilder::unisolated_for_tests`, a test-only hook) shows the leak,
//! which proves the arena would reveal one. Also: loops whose index would
//! wrap past `i32::MAX`, and shared-memory indices past their array.
//!
//! These tests need a host C++ compiler (`$CXX`, else `g++`); without one
//! they print why and pass, except under `CI=true`.

use std::sync::Arc;

use weft_cpu::CpuExecutor;
use weft_interp::Interpreter;
use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Type};
use weft_pack::{isolate, launch_host, Budget, BundleBuilder, ExecError, Executor, InterpExecutor, Slot, TenantId};

const N: usize = 32;

/// `got[t] = src[idx[t]]; dst[idx[t]] = 666`: every index from the input.
fn attacker() -> Arc<KernelDef> {
    let mut b = KernelBuilder::new("attacker", LaunchShape::linear(1, N as u32));
    let idx = b.buffer("idx", Type::I32, N as u64, Access::Read);
    let src = b.buffer("src", Type::F32, N as u64, Access::Read);
    let got = b.buffer("got", Type::F32, N as u64, Access::Write);
    let dst = b.buffer("dst", Type::F32, N as u64, Access::Write);
    let t = b.thread_id(Axis::X);
    let j = b.load(idx, t);
    let v = b.load(src, j);
    b.store(got, t, v);
    let evil = b.const_f32(666.0);
    b.store(dst, j, evil);
    Arc::new(b.finish())
}

/// `v = v * 2 + 1`, in place.
fn victim() -> Arc<KernelDef> {
    let mut b = KernelBuilder::new("victim", LaunchShape::linear(1, N as u32));
    let v = b.buffer("v", Type::F32, N as u64, Access::ReadWrite);
    let t = b.thread_id(Axis::X);
    let x = b.load(v, t);
    let two = b.const_f32(2.0);
    let one = b.const_f32(1.0);
    let y = b.fma(x, two, one);
    b.store(v, t, y);
    Arc::new(b.finish())
}

fn victim_args() -> Vec<ArgValue> {
    vec![ArgValue::Buffer(HostBuffer::from_f32(&(0..N).map(|i| 10.0 + i as f32 * 0.5).collect::<Vec<_>>()))]
}

fn attacker_args(idx: &[i32]) -> Vec<ArgValue> {
    let src: Vec<f32> = (0..N).map(|i| 100.0 + i as f32).collect();
    vec![
        ArgValue::Buffer(HostBuffer::from_i32(idx)),
        ArgValue::Buffer(HostBuffer::from_f32(&src)),
        ArgValue::Buffer(HostBuffer::zeros(Type::F32, N)),
        ArgValue::Buffer(HostBuffer::zeros(Type::F32, N)),
    ]
}

fn slot(kernel: &Arc<KernelDef>, tenant: u32) -> Slot {
    let args = (0..kernel.params.len() as u32).map(weft_lower::BufferId::from_u32).collect();
    Slot { kernel: kernel.clone(), tenant: TenantId(tenant), budget: Budget::Full, args }
}

fn buffer(args: &[ArgValue], i: usize) -> Vec<f32> {
    args[i].as_buffer().expect("a buffer").to_f32_vec()
}

/// The victim alone on a fresh flat-arena executor.
fn victim_solo() -> Vec<f32> {
    let bundle = BundleBuilder::new().slot(slot(&victim(), 1)).build().expect("builds");
    let mut args = vec![victim_args()];
    launch_host(&mut CpuExecutor::fast().with_flat_arena(), &bundle, &mut args).expect("runs");
    buffer(&args[0], 0)
}

fn host_compiler(test: &str) -> bool {
    weft_cpu::require_host_compiler_or_skip(test)
}

#[test]
fn guards_keep_an_adversarial_neighbour_out_of_the_victims_bytes() {
    if !host_compiler("guards_keep_an_adversarial_neighbour_out_of_the_victims_bytes") {
        return;
    }
    // In the arena: idx, src, got, dst (the attacker's, 128 bytes each), then
    // the victim's v. dst[32..64] is v, src[96..128] is v.
    let idx: Vec<i32> = [
        -1,
        -32,
        -1000,
        i32::MIN,
        i32::MAX,
        1 << 20,
        N as i32,
        N as i32 + 1,
        N as i32 + 5,
        2 * N as i32 - 1,
        3 * N as i32,
        3 * N as i32 + 7,
        4 * N as i32 - 1,
        4 * N as i32,
    ]
    .into_iter()
    .chain((0..N as i32).map(|j| (j * 5) % N as i32))
    .take(N)
    .collect();
    let (attacker, victim) = (attacker(), victim());
    let (bundle, guards) =
        BundleBuilder::new().slot(slot(&attacker, 0)).slot(slot(&victim, 1)).build_with_guards().expect("builds");
    assert_eq!(guards[0].len(), 2, "the attacker's load and store are guarded: {:?}", guards[0]);
    assert!(guards[1].is_empty(), "the victim is proven");

    let mut exec = CpuExecutor::fast().with_flat_arena();
    let mut args = vec![attacker_args(&idx), victim_args()];
    launch_host(&mut exec, &bundle, &mut args).expect("runs");
    assert_eq!(exec.arena_bytes(), 5 * N * 4, "five buffers side by side, no padding");

    let solo = victim_solo();
    let got = buffer(&args[1], 0);
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        solo.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let (read, written) = (buffer(&args[0], 2), buffer(&args[0], 3));
    let mut want_written = vec![0.0f32; N];
    for (t, &j) in idx.iter().enumerate() {
        if (0..N as i32).contains(&j) {
            assert_eq!(read[t], 100.0 + j as f32, "thread {t} reads its own src[{j}]");
            want_written[j as usize] = 666.0;
        } else {
            assert_eq!(read[t], 0.0, "thread {t}: src[{j}] is out of range and reads zero");
        }
    }
    assert_eq!(written, want_written, "only in-range writes land");
}

#[test]
fn without_guards_the_flat_arena_shows_the_leak() {
    if !host_compiler("without_guards_the_flat_arena_shows_the_leak") {
        return;
    }
    // Only indices that stay inside the arena (a wild write past it would
    // be undefined behaviour of the test itself): dst[32..40] is v[0..8],
    // src[96..104] is v[0..8].
    let idx: Vec<i32> = (0..N as i32).map(|t| if t < 8 { N as i32 + t } else { 3 * N as i32 + (t - 8) % 8 }).collect();
    let (attacker, victim) = (attacker(), victim());
    let bundle = BundleBuilder::new()
        .unisolated_for_tests()
        .slot(slot(&attacker, 0))
        .slot(slot(&victim, 1))
        .build()
        .expect("builds");
    let mut exec = CpuExecutor::fast().with_flat_arena();
    exec.set_launch_limit(None);
    let mut args = vec![attacker_args(&idx), victim_args()];
    launch_host(&mut exec, &bundle, &mut args).expect("runs");
    let solo = victim_solo();
    let got = buffer(&args[1], 0);
    assert_ne!(got[..8], solo[..8], "the attacker's writes landed in the victim's buffer");
    assert_eq!(got[8..], solo[8..], "and nowhere else of it");
    let read = buffer(&args[0], 2);
    let victim_bytes: Vec<f32> = buffer(&victim_args(), 0);
    for (t, r) in read.iter().enumerate().skip(8) {
        let k = (t - 8) % 8;
        // Before or after the victim's own update, or the attacker's 666.
        let seen = [victim_bytes[k], solo[k], 666.0, 2.0 * 666.0 + 1.0];
        assert!(seen.contains(r), "thread {t} read {r}, which is none of the victim's values {seen:?}");
    }
    assert!(read[8..].iter().all(|&r| r != 0.0), "the attacker read the victim's bytes: {read:?}");
}

/// `for (i = 0; i < i32::MAX - 5; i += 2^30) x[2t + (i >> 30)] += 1`: the
/// analysis proves the index in bounds (i in [0, 2^30]), which holds only if
/// the counter does not wrap past `i32::MAX` to a negative value.
fn wrapping_loop() -> KernelDef {
    let mut b = KernelBuilder::new("wrapping_loop", LaunchShape::linear(1, N as u32));
    let x = b.buffer("x", Type::F32, 2 * N as u64, Access::ReadWrite);
    let t = b.thread_id(Axis::X);
    let two = b.const_i32(2);
    let base = b.mul(t, two);
    b.for_const(0, i32::MAX - 5, 1 << 30, |b, i| {
        let thirty = b.const_i32(30);
        let hi = b.shr(i, thirty);
        let at = b.add(base, hi);
        let v = b.load(x, at);
        let one = b.const_f32(1.0);
        let v = b.add(v, one);
        b.store(x, at, v);
    });
    b.finish()
}

#[test]
fn a_loop_counter_near_i32_max_does_not_wrap() {
    let kernel = Arc::new(wrapping_loop());
    let iso = isolate(&kernel).expect("isolates");
    assert!(iso.guarded.is_empty(), "the analysis proves it (trusting the counter not to wrap)");
    let want = vec![1.0f32; 2 * N];
    let mut interp = vec![ArgValue::Buffer(HostBuffer::zeros(Type::F32, 2 * N))];
    Interpreter::new().run(&kernel, &mut interp).expect("the interpreter runs it");
    assert_eq!(buffer(&interp, 0), want);
    if !host_compiler("a_loop_counter_near_i32_max_does_not_wrap") {
        return;
    }
    // The emitted loop steps only while the distance to its end exceeds the
    // step (a plain `i += 2^30` would wrap to -2^31, index x[2t - 2] and spin).
    let bundle = BundleBuilder::new().slot(slot(&kernel, 0)).build().expect("builds");
    for mut exec in [CpuExecutor::fast().with_flat_arena(), CpuExecutor::checking(5)] {
        exec.set_launch_limit(Some(std::time::Duration::from_secs(20)));
        let mut args = vec![vec![ArgValue::Buffer(HostBuffer::zeros(Type::F32, 2 * N))]];
        launch_host(&mut exec, &bundle, &mut args).expect("runs and ends");
        assert_eq!(buffer(&args[0], 0), want, "{:?}", exec.mode());
    }
}

/// `s[t] = 0; sync; s[idx[t]] = 1; sync; out[t] = s[t]`: a shared index from
/// the input.
fn shared_scatter() -> Arc<KernelDef> {
    let mut b = KernelBuilder::new("shared_scatter", LaunchShape::linear(1, N as u32));
    let idx = b.buffer("idx", Type::I32, N as u64, Access::Read);
    let out = b.buffer("out", Type::F32, N as u64, Access::Write);
    let s = b.shared_array(Type::F32, N as u32);
    let t = b.thread_id(Axis::X);
    let zero = b.const_f32(0.0);
    b.shared_store(s, t, zero);
    b.barrier();
    let j = b.load(idx, t);
    let one = b.const_f32(1.0);
    b.shared_store(s, j, one);
    b.barrier();
    let v = b.shared_load(s, t);
    b.store(out, t, v);
    Arc::new(b.finish())
}

#[test]
fn shared_indices_past_their_array_are_guarded() {
    let kernel = shared_scatter();
    let iso = isolate(&kernel).expect("isolates");
    assert_eq!(iso.guarded.len(), 1, "{:?}", iso.guarded);
    assert!(iso.guarded[0].shared, "{:?}", iso.guarded[0]);
    let strict = BundleBuilder::new().isolation(weft_pack::Isolation::Strict).slot(slot(&kernel, 0)).build();
    let err = strict.expect_err("strict isolation refuses an unproven shared store");
    assert!(err.to_string().contains("(shared)"), "{err}");

    let idx: Vec<i32> = (0..N as i32).map(|t| if t % 3 == 0 { t * 1000 - 5000 } else { (t * 7) % N as i32 }).collect();
    let mut want = vec![0.0f32; N];
    for &j in &idx {
        if (0..N as i32).contains(&j) {
            want[j as usize] = 1.0;
        }
    }
    let args = || vec![ArgValue::Buffer(HostBuffer::from_i32(&idx)), ArgValue::Buffer(HostBuffer::zeros(Type::F32, N))];
    // Unguarded, the interpreter refuses the out-of-range shared store.
    let unguarded = Interpreter::new().run(&kernel, &mut args());
    assert!(unguarded.is_err(), "the interpreter sees the stray index");
    let guarded = BundleBuilder::new().slot(slot(&kernel, 0)).build().expect("builds");
    let mut on_interp = vec![args()];
    launch_host(&mut InterpExecutor::default(), &guarded, &mut on_interp).expect("the guarded kernel runs");
    assert_eq!(buffer(&on_interp[0], 1), want);
    if !host_compiler("shared_indices_past_their_array_are_guarded") {
        return;
    }
    // The checking mode runs under the sanitizers, each shared array its own
    // allocation: the guarded kernel is clean and agrees with the interpreter ...
    let mut cpu = CpuExecutor::checking(11);
    let mut on_cpu = vec![args()];
    launch_host(&mut cpu, &guarded, &mut on_cpu).expect("runs clean");
    assert_eq!(on_cpu, on_interp);
    // ... and the same kernel without guards is caught writing outside its array.
    let unguarded = BundleBuilder::new().unisolated_for_tests().slot(slot(&kernel, 0)).build().expect("builds");
    let err: ExecError = launch_host(&mut cpu, &unguarded, &mut [args()]).expect_err("the stray store is seen");
    assert!(err.to_string().contains("shared_scatter"), "{err}");
}
