//! Isolation: a tenant's out-of-bounds access never reaches another tenant
//! (DESIGN.md, principle 5).
//!
//! A "leaky" kernel stores past the end of its output and loads before the
//! start of its input. Alone on the interpreter it faults with an error that
//! names the kernel, instruction and index. In a bundle beside another
//! tenant's kernel, strict isolation refuses it, naming the access; guarded
//! isolation runs it, its out-of-range stores are dropped and loads read zero,
//! and the other tenant's buffers are bit-identical to its solo run.

use std::sync::Arc;

use weft_interp::{InterpError, Interpreter, MemorySpace};
use weft_kernels::cases::{sgemm_case, vector_add_case};
use weft_kernels::SgemmTiles;
use weft_kir::analysis::{access_ranges, AccessKind, IndexRange, Interval};
use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Type};
use weft_lower::BufferId;
use weft_pack::{launch_host, Budget, BundleBuilder, InterpExecutor, Isolation, PackError, Slot, TenantId};

const N: u64 = 96;
const SHIFT: i32 = 8;

/// `out[i + 8] = x[i - 8] + 1` for `i` in `0..96`, buffers of 96: the first
/// eight loads and the last eight stores are out of bounds.
fn leaky() -> KernelDef {
    let mut b = KernelBuilder::new("leaky", LaunchShape::linear(3, 32));
    let x = b.buffer("x", Type::F32, N, Access::Read);
    let out = b.buffer("out", Type::F32, N, Access::ReadWrite);
    let i = b.global_thread_id(Axis::X);
    let s = b.const_i32(SHIFT);
    let src = b.sub(i, s);
    let dst = b.add(i, s);
    let v = b.load(x, src);
    let one = b.const_f32(1.0);
    let w = b.add(v, one);
    b.store(out, dst, w);
    b.finish()
}

fn leaky_args() -> Vec<ArgValue> {
    let x: Vec<f32> = (0..N).map(|i| i as f32).collect();
    vec![ArgValue::Buffer(HostBuffer::from_f32(&x)), ArgValue::Buffer(HostBuffer::from_f32(&[-1.0; N as usize]))]
}

fn slot(kernel: &Arc<KernelDef>, tenant: u32, budget: Budget) -> Slot {
    let args = (0..kernel.params.len() as u32).map(BufferId::from_u32).collect();
    Slot { kernel: kernel.clone(), tenant: TenantId(tenant), budget, args }
}

#[test]
fn alone_the_leak_is_an_out_of_bounds_error_naming_kernel_instruction_and_index() {
    let kernel = leaky();
    let mut args = leaky_args();
    let err = Interpreter::new().threads(1).run(&kernel, &mut args).unwrap_err();
    let InterpError::OutOfBounds { kernel: name, inst, mnemonic, space, array, index, len, block, thread } = &err
    else {
        panic!("expected an out-of-bounds error, got {err}");
    };
    // Block 0, thread 0 loads x[-8] first.
    assert_eq!((name.as_str(), *mnemonic, *space, array.as_str()), ("leaky", "load", MemorySpace::Global, "x"));
    assert_eq!((*index, *len, *block, *thread), (-8, N, [0, 0, 0], [0, 0, 0]));
    let text = err.to_string();
    for part in ["kernel `leaky`", &format!("{inst} `load`"), "index -8", "`x` (length 96)"] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
    // Nothing was written back.
    assert_eq!(args, leaky_args());
}

#[test]
fn strict_isolation_refuses_the_leaky_slot_naming_the_access() {
    let victim = Arc::new(vector_add_case(100, 1).kernel);
    let leak = Arc::new(leaky());
    let err = BundleBuilder::new()
        .isolation(Isolation::Strict)
        .slot(slot(&victim, 0, Budget::Full))
        .slot(slot(&leak, 1, Budget::Full))
        .build()
        .unwrap_err();
    let first = &access_ranges(&leak)[0];
    let PackError::Unproven { kernel, inst, access, buffer, len, index } = &err else {
        panic!("expected Unproven, got {err}");
    };
    assert_eq!(
        (kernel.as_str(), *inst, *access, buffer.as_str(), *len),
        ("leaky", first.inst, AccessKind::Load, "x", N)
    );
    assert_eq!(*index, IndexRange::Within(Interval { lo: -8, hi: 87 }));
    let text = err.to_string();
    for part in ["kernel `leaky`", &format!("{} `load` of buffer `x`", first.inst), "[-8, 87]"] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
}

#[test]
fn guarded_leaks_land_nowhere_and_the_other_tenant_is_bit_identical_to_solo() {
    let tiles = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
    let victims = [vector_add_case(100, 2), sgemm_case(40, 33, 17, tiles, 3)];
    let leak = Arc::new(leaky());
    for victim in &victims {
        let victim_kernel = Arc::new(victim.kernel.clone());
        let mut solo = victim.args.clone();
        Interpreter::new().run(&victim.kernel, &mut solo).unwrap();

        for (leak_budget, victim_budget) in [(Budget::Full, Budget::Full), (Budget::Blocks(1), Budget::Blocks(2))] {
            let (bundle, guards) = BundleBuilder::new()
                .slot(slot(&leak, 0, leak_budget))
                .slot(slot(&victim_kernel, 1, victim_budget))
                .build_with_guards()
                .unwrap();
            // The leaky body got a guard on its load and its store; the victim none.
            let kinds: Vec<AccessKind> = guards[0].iter().map(|g| g.kind).collect();
            assert_eq!(kinds, [AccessKind::Load, AccessKind::Store]);
            assert!(guards[1].is_empty());
            for body in bundle.bodies() {
                assert!(access_ranges(body).iter().all(|a| a.is_proven()), "{body}");
            }

            let mut args = vec![leaky_args(), victim.args.clone()];
            launch_host(&mut InterpExecutor::default(), &bundle, &mut args).unwrap();
            assert_eq!(args[1], solo, "{}: the other tenant's buffers differ from its solo run", victim.name);
            // The leaky tenant's own buffers: x untouched; out[j] = x[j - 16] + 1
            // where j - 16 >= 0, out[8..16] = 0 + 1 (loads past the start read
            // zero), out[0..8] never written; stores past the end were dropped.
            assert_eq!(args[0][0], leaky_args()[0]);
            let out = args[0][1].as_buffer().unwrap().to_f32_vec();
            let want: Vec<f32> = (0..N as i32)
                .map(|j| match j {
                    j if j < SHIFT => -1.0,
                    j if j < 2 * SHIFT => 1.0,
                    j => (j - 2 * SHIFT) as f32 + 1.0,
                })
                .collect();
            assert_eq!(out, want);
        }
    }
}

#[test]
fn coalesced_launches_are_a_single_pass_class_of_their_own() {
    let a = Arc::new(leaky());
    let b = Arc::new(leaky());
    let full = BundleBuilder::new().slot(slot(&a, 0, Budget::Full)).slot(slot(&b, 1, Budget::Full)).build().unwrap();
    assert!(full.table().single_pass() && full.class().single_pass);
    let grid = a.launch.num_blocks() as u32;
    // A budget of the whole grid is a single pass too.
    let whole =
        BundleBuilder::new().slot(slot(&a, 0, Budget::Blocks(grid))).slot(slot(&b, 1, Budget::Full)).build().unwrap();
    assert!(whole.class().single_pass);
    assert_eq!(whole.class(), full.class());
    // One slot looping over its grid makes the launch another class.
    let constrained =
        BundleBuilder::new().slot(slot(&a, 0, Budget::Blocks(1))).slot(slot(&b, 1, Budget::Full)).build().unwrap();
    assert!(!constrained.table().single_pass() && !constrained.class().single_pass);
    assert_ne!(constrained.class(), full.class());
    assert_eq!(constrained.class().bodies, full.class().bodies);
}
