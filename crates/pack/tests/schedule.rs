//! The bundle planner on synthetic tenants: stream order, resource limits,
//! budgets, the latency/throughput knob, refusals, cost models, and packed runs of the
//! plans on the interpreter against solo runs.

use std::sync::Arc;

use weft_interp::Interpreter;
use weft_kir::{Access, Axis, HostBuffer, KernelBuilder, KernelDef, LaunchShape, Target, Type};
use weft_lower::{Binding, BufferInfo, BufferKind, Program, Step};
use weft_pack::{
    grow, plan, plan_with, run_multi, run_program, BlockRounds, Budget, CostModel, EstimatedResources, KernelResources,
    Member, Occupancy, Offer, PackError, PackMode, Plan, Policy, PreparedKernel, RefusalReason, ScheduleError,
    ShapeRefusal, ShapedBundle, TenantId, Timing,
};

/// A kernel updating `x[i]` in place (`blocks × threads` elements): `trips`
/// loop iterations of work per thread and, when `shared_elems > 0`, a
/// round trip through a shared array of that many f32s.
fn kernel(name: &str, blocks: u32, threads: u32, trips: i32, shared_elems: u32) -> Arc<KernelDef> {
    let n = blocks as u64 * threads as u64;
    let mut b = KernelBuilder::new(name, LaunchShape::linear(blocks, threads));
    let x = b.buffer("x", Type::F32, n, Access::ReadWrite);
    let i = b.global_thread_id(Axis::X);
    let v = b.load(x, i);
    let acc = b.var(Type::F32);
    b.set(acc, v);
    b.for_const(0, trips, 1, |b, _| {
        let a = b.get(acc);
        let half = b.const_f32(0.5);
        let m = b.mul(a, half);
        let s = b.add(m, v);
        b.set(acc, s);
    });
    let mut out = b.get(acc);
    if shared_elems > 0 {
        let s = b.shared_array(Type::F32, shared_elems);
        let tid = b.thread_id(Axis::X);
        b.shared_store(s, tid, out);
        b.barrier();
        out = b.shared_load(s, tid);
    }
    b.store(x, i, out);
    Arc::new(b.finish())
}

/// A program running `kernels` in order on one buffer (its input and output).
fn program(name: &str, kernels: &[Arc<KernelDef>]) -> Program {
    let len = kernels.iter().map(|k| k.launch.total_threads() as usize).max().unwrap_or(1);
    let mut p = Program { name: name.to_string(), ..Program::default() };
    let x = p.buffers.push(BufferInfo {
        name: "x".to_string(),
        elem: Type::F32,
        shape: vec![len],
        kind: BufferKind::Input,
    });
    for k in kernels {
        assert_eq!(k.launch.total_threads() as usize, len, "kernels of one test program share one buffer");
        p.steps.push(Step { kernel: k.clone(), args: vec![x], nodes: vec![k.name.clone()] });
    }
    p.inputs.push(Binding { name: "x".to_string(), buffer: x, shape: vec![len] });
    p.outputs.push(Binding { name: "y".to_string(), buffer: x, shape: vec![len] });
    p
}

/// Four tenants with streams of different lengths and kernel shapes.
fn mixed_tenants() -> Vec<Program> {
    vec![
        program("light", &[kernel("l0", 8, 128, 2, 0), kernel("l1", 16, 64, 1, 0), kernel("l2", 4, 256, 3, 0)]),
        program(
            "heavy",
            &[
                kernel("h0", 64, 256, 40, 0),
                kernel("h1", 512, 32, 30, 0),
                kernel("h2", 128, 128, 60, 256),
                kernel("h3", 32, 512, 10, 0),
            ],
        ),
        program("shared", &[kernel("s0", 32, 256, 5, 2048), kernel("s1", 64, 128, 5, 128)]),
        program("wide", &[kernel("w0", 1024, 256, 4, 0), kernel("w1", 512, 512, 4, 0), kernel("w2", 2048, 128, 4, 0)]),
    ]
}

fn with_ids(programs: &[Program]) -> Vec<(TenantId, &Program)> {
    programs.iter().enumerate().map(|(i, p)| (TenantId(i as u32), p)).collect()
}

fn policies() -> Vec<Policy> {
    let mut out = Vec::new();
    for mode in [PackMode::Coalesce, PackMode::Constrain, PackMode::Auto] {
        for knob in [0.0, 0.5, 1.0] {
            out.push(Policy::new(mode, knob));
        }
    }
    out
}

fn order(plan: &Plan) -> Vec<(u32, usize, String, Budget)> {
    plan.bundles
        .iter()
        .flat_map(|b| {
            b.slots.iter().zip(b.bundle.slots()).map(|(p, s)| (p.tenant.0, p.step, s.kernel.name.clone(), s.budget))
        })
        .collect()
}

#[test]
fn every_kernel_runs_once_in_stream_order() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    for limits in [Target::sm_90(), Target::sm_80()] {
        for policy in policies() {
            let plan = plan(&tenants, &limits, &policy).expect("plans");
            for (t, p) in &tenants {
                let steps: Vec<usize> =
                    order(&plan).into_iter().filter(|(u, ..)| *u == t.0).map(|(_, s, ..)| s).collect();
                assert_eq!(steps, (0..p.steps.len()).collect::<Vec<_>>(), "{policy:?}: tenant {}", t.0);
            }
            for b in &plan.bundles {
                let mut tenants_in: Vec<u32> = b.slots.iter().map(|s| s.tenant.0).collect();
                tenants_in.sort();
                tenants_in.dedup();
                assert_eq!(tenants_in.len(), b.slots.len(), "one kernel per tenant per bundle");
                for (p, s) in b.slots.iter().zip(b.bundle.slots()) {
                    assert_eq!(s.tenant, p.tenant);
                    assert_eq!(s.args, programs[p.tenant.0 as usize].steps[p.step].args);
                }
            }
        }
    }
}

#[test]
fn bundles_respect_resource_limits_and_capacity() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    let limits = Target::sm_90();
    for policy in policies() {
        let plan = plan(&tenants, &limits, &policy).expect("plans");
        for b in &plan.bundles {
            // The block asks for the most of every slot's resources.
            let res = b
                .bundle
                .slots()
                .iter()
                .map(|s| KernelResources::of(&s.kernel, None))
                .reduce(KernelResources::max)
                .expect("bundles are non-empty");
            assert_eq!(b.resources, res);
            assert_eq!(b.occupancy, Occupancy::of(res, &limits));
            assert!(b.occupancy.fits());
            assert!(b.bundle.block_threads() <= limits.max_threads_per_block);
            assert!(b.bundle.shared_bytes() <= limits.shared_bytes_per_block);
            // Every member keeps the blocks per SM it needs.
            for s in b.bundle.slots() {
                let solo = Occupancy::of(KernelResources::of(&s.kernel, None), &limits);
                let grid_per_sm = s.kernel.launch.num_blocks().div_ceil(limits.sm_count as u64);
                let need = (solo.blocks_per_sm as u64).min(grid_per_sm);
                assert!(b.occupancy.blocks_per_sm as u64 >= need, "{policy:?}: `{}` starved", s.kernel.name);
            }
            let resident = b.occupancy.resident_blocks(&limits);
            let total = b.bundle.table().total_blocks() as u64;
            if b.coalesced {
                assert!(b.bundle.slots().iter().all(|s| s.budget == Budget::Full));
                if policy.mode == PackMode::Auto {
                    assert!(total <= resident, "auto coalesces only what fits in one wave");
                }
            } else {
                assert!(b.bundle.slots().iter().all(|s| matches!(s.budget, Budget::Blocks(_))));
                assert!(total <= resident, "{policy:?}: budgets {total} exceed {resident} resident blocks");
                assert!(b.waves <= 1.0);
            }
            match policy.mode {
                PackMode::Coalesce => assert!(b.coalesced),
                PackMode::Constrain => assert!(!b.coalesced),
                PackMode::Auto => {}
            }
            // The predicted bundle time is its slowest slot's.
            let slowest = b.slots.iter().map(|s| s.time).fold(0.0, f64::max);
            assert_eq!(b.time, slowest);
        }
    }
}

#[test]
fn knob_trades_bundle_width_for_latency() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    let limits = Target::sm_90();
    for mode in [PackMode::Coalesce, PackMode::Constrain, PackMode::Auto] {
        let latency = plan(&tenants, &limits, &Policy::new(mode, 0.0)).unwrap();
        let throughput = plan(&tenants, &limits, &Policy::new(mode, 1.0)).unwrap();
        // Knob 0: nobody finishes later than alone.
        for b in &latency.bundles {
            for s in &b.slots {
                assert!(b.time <= s.solo_time * (1.0 + 1e-9), "{mode:?}: knob 0 slowed tenant {}", s.tenant.0);
            }
        }
        // Knob 1: wider bundles, hence fewer launches.
        assert!(
            throughput.mean_width() > latency.mean_width(),
            "{mode:?}: width {} at knob 1 vs {} at knob 0",
            throughput.mean_width(),
            latency.mean_width()
        );
        assert!(throughput.bundles.len() < latency.bundles.len());
        assert!(latency.refusals.iter().any(|r| matches!(r.reason, RefusalReason::Slowdown { .. })));
        assert!(!throughput.refusals.iter().any(|r| matches!(r.reason, RefusalReason::Slowdown { .. })));
    }

    // Identical small kernels slow nobody: at knob 0 they still share one bundle.
    let same: Vec<Program> = (0..4).map(|i| program(&format!("t{i}"), &[kernel("k", 8, 128, 4, 0)])).collect();
    let p = plan(&with_ids(&same), &limits, &Policy::new(PackMode::Auto, 0.0)).unwrap();
    assert_eq!(p.bundles.len(), 1);
    assert!(p.bundles[0].coalesced);
    assert_eq!(p.bundles[0].bundle.bodies().len(), 1, "one body for four tenants");
}

#[test]
fn a_combination_that_drops_occupancy_is_refused() {
    // 1024 threads and 100 KiB shared: 2 blocks per SM (233472 / 103424).
    let big = program("big", &[kernel("big", 264, 1024, 2, 25 * 1024)]);
    // 128 threads, 16 blocks per SM needed for 2112 blocks on 132 SMs.
    let small = program("small", &[kernel("small", 2112, 128, 2, 0)]);
    let limits = Target::sm_90();
    let tenants = [(TenantId(0), &big), (TenantId(1), &small)];
    for policy in policies() {
        let plan = plan(&tenants, &limits, &policy).unwrap();
        assert_eq!(plan.bundles.len(), 2, "{policy:?}");
        assert!(plan.bundles.iter().all(|b| b.slots.len() == 1));
        let refusal = &plan.refusals[0];
        assert_eq!((refusal.bundle, refusal.tenant, refusal.step), (0, TenantId(1), 0));
        match &refusal.reason {
            RefusalReason::Shape(ShapeRefusal::Occupancy { member, needs, would_get, .. }) => {
                assert_eq!((*member, *needs, *would_get), (TenantId(1), 16, 2));
            }
            other => panic!("expected an occupancy refusal, got {other}"),
        }
        let text = refusal.to_string();
        assert!(text.contains("occupancy") && text.contains("`small`") && text.contains("needs 16"), "{text}");
    }
}

#[test]
fn constrained_budgets_follow_work_and_finish_together() {
    // Same grid (a wave and a sliver each, so sharing the device pays), three
    // times the work: about three times the blocks.
    let a = program("a", &[kernel("a", 1300, 256, 10, 0)]);
    let b = program("b", &[kernel("b", 1300, 256, 30, 0)]);
    let limits = Target::sm_90();
    let plan = plan(&[(TenantId(0), &a), (TenantId(1), &b)], &limits, &Policy::new(PackMode::Constrain, 1.0)).unwrap();
    assert_eq!(plan.bundles.len(), 1);
    let pb = &plan.bundles[0];
    let [sa, sb] = [&pb.slots[0], &pb.slots[1]];
    let ratio = sb.blocks as f64 / sa.blocks as f64;
    assert!((2.4..=3.6).contains(&ratio), "budgets {} and {}", sa.blocks, sb.blocks);
    assert!(sa.blocks as u64 + sb.blocks as u64 <= pb.occupancy.resident_blocks(&limits));
    // They finish within one block round of each other.
    assert!((sa.time - sb.time).abs() <= sb.block_time, "times {} and {}", sa.time, sb.time);

    // Auto coalesces what fits in one wave and constrains what does not.
    let small = program("s", &[kernel("s", 64, 256, 10, 0)]);
    let auto = Policy::new(PackMode::Auto, 1.0);
    let fits = super_plan(&[&small, &small.clone()], &limits, &auto);
    assert!(fits.bundles[0].coalesced);
    let spills = super_plan(&[&a, &b], &limits, &auto);
    assert!(!spills.bundles[0].coalesced);
}

fn super_plan(programs: &[&Program], limits: &Target, policy: &Policy) -> Plan {
    let tenants: Vec<(TenantId, &Program)> =
        programs.iter().enumerate().map(|(i, &p)| (TenantId(i as u32), p)).collect();
    plan(&tenants, limits, policy).unwrap()
}

#[test]
fn plans_are_deterministic() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    for policy in policies() {
        let a = plan(&tenants, &Target::sm_80(), &policy).unwrap();
        let b = plan(&tenants, &Target::sm_80(), &policy).unwrap();
        assert_eq!(order(&a), order(&b));
        assert_eq!(a.refusals, b.refusals);
    }
}

#[test]
fn a_kernel_no_sm_can_hold_is_an_error() {
    let limits = Target::sm_90();
    // 240 KiB of shared memory exceeds 227 KiB per block: the verifier
    // refuses the kernel when it is prepared.
    let huge = program("huge", &[kernel("huge", 4, 256, 1, 60 * 1024)]);
    let err = plan(&[(TenantId(3), &huge)], &limits, &Policy::default()).unwrap_err();
    assert!(matches!(err, ScheduleError::Pack(PackError::Verify(_))), "{err}");
    assert!(err.to_string().contains("`huge`") && err.to_string().contains("shared"), "{err}");
    // A kernel that verifies, but whose resources (as the resource model
    // reports them) no SM can hold.
    let fine = program("fine", &[kernel("fine", 4, 256, 1, 0)]);
    let measured = |k: &KernelDef| KernelResources { shared_bytes: 240 * 1024, ..KernelResources::of(k, None) };
    let err = plan_with(&[(TenantId(3), &fine)], &limits, &Policy::default(), &measured, &mut BlockRounds::new(limits))
        .unwrap_err();
    assert!(matches!(err, ScheduleError::Unlaunchable { tenant: TenantId(3), step: 0, .. }), "{err}");
    assert!(err.to_string().contains("shared memory"), "{err}");
    let twice = plan(&[(TenantId(1), &fine), (TenantId(1), &fine)], &limits, &Policy::default());
    assert!(matches!(twice, Err(ScheduleError::DuplicateTenant(TenantId(1)))));
}

/// A cost model under which packing never pays: a bundle takes as long as
/// its members one after another. Counts the solo times it is asked for.
struct Serial {
    solo_calls: usize,
}

impl CostModel for Serial {
    fn name(&self) -> &str {
        "serial"
    }

    fn solo_time(&mut self, kernel: &PreparedKernel) -> f64 {
        self.solo_calls += 1;
        kernel.logical_blocks as f64
    }

    fn bundle_cost(&mut self, bundle: &ShapedBundle) -> Timing {
        let mut end = 0.0;
        let slots: Vec<f64> = bundle
            .members
            .iter()
            .map(|m| {
                end += m.kernel.logical_blocks as f64;
                end
            })
            .collect();
        Timing { total_us: end, per_slot_us: Some(slots) }
    }
}

#[test]
fn the_cost_model_decides_what_packing_pays() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    let limits = Target::sm_90();
    let distinct = programs.iter().map(|p| p.steps.len()).sum::<usize>();
    for mode in [PackMode::Coalesce, PackMode::Constrain, PackMode::Auto] {
        // Knob 0: no member may be slower than alone, and under this model
        // every partner makes it slower, so every bundle holds one slot.
        let mut cost = Serial { solo_calls: 0 };
        let alone = plan_with(&tenants, &limits, &Policy::new(mode, 0.0), &EstimatedResources, &mut cost).unwrap();
        assert_eq!(cost.solo_calls, distinct, "{mode:?}: each kernel is priced alone once");
        assert_eq!(alone.bundles.len(), distinct, "{mode:?}");
        assert!(alone.bundles.iter().all(|b| b.slots.len() == 1));
        assert!(alone.refusals.iter().any(|r| matches!(r.reason, RefusalReason::Slowdown { .. })));
        // The plan's times are the model's.
        for b in &alone.bundles {
            assert_eq!(b.time, b.slots[0].logical_blocks as f64);
            assert_eq!(b.slots[0].solo_time, b.time);
        }
        // Knob 1 accepts any slowdown, and under this model packing costs
        // nothing either: shaping alone decides, and the times are still
        // the model's.
        let mut cost = Serial { solo_calls: 0 };
        let wide = plan_with(&tenants, &limits, &Policy::new(mode, 1.0), &EstimatedResources, &mut cost).unwrap();
        assert!(wide.refusals.iter().all(|r| matches!(r.reason, RefusalReason::Shape(_))), "{mode:?}");
        assert!(wide.bundles.len() < alone.bundles.len());
        for b in &wide.bundles {
            let serial: u64 = b.slots.iter().map(|s| s.logical_blocks).sum();
            assert_eq!(b.time, serial as f64);
        }
    }
}

#[test]
fn packed_runs_match_solo_runs_bit_for_bit() {
    let programs: Vec<std::sync::Arc<Program>> = mixed_tenants().into_iter().map(std::sync::Arc::new).collect();
    let mut interp = weft_pack::InterpExecutor::new(Interpreter::new());
    let inputs: Vec<Vec<HostBuffer>> = programs
        .iter()
        .enumerate()
        .map(|(t, p)| {
            let n = p.buffers.values().next().map_or(0, |b| b.len());
            vec![HostBuffer::from_f32(&(0..n).map(|i| ((i * 7 + t * 13) % 101) as f32 / 17.0).collect::<Vec<_>>())]
        })
        .collect();
    let solo: Vec<Vec<HostBuffer>> = programs
        .iter()
        .zip(&inputs)
        .map(|(p, x)| run_program(&mut interp, p.clone(), x, |_| {}).expect("solo run"))
        .collect();
    for policy in policies() {
        let run = run_multi(&programs, &inputs, &Target::sm_90(), &policy, &mut interp).expect("packed run");
        for (t, (got, want)) in run.outputs.iter().zip(&solo).enumerate() {
            assert!(got.iter().zip(want).all(|(g, w)| g.bytes() == w.bytes()), "{policy:?}: tenant {t} differs");
        }
    }
}

/// A cost model under which packing costs: a bundle takes its members'
/// serial time and then some.
struct Costly;

impl CostModel for Costly {
    fn name(&self) -> &str {
        "costly"
    }

    fn solo_time(&mut self, kernel: &PreparedKernel) -> f64 {
        kernel.logical_blocks as f64
    }

    fn bundle_cost(&mut self, bundle: &ShapedBundle) -> Timing {
        let serial: f64 = bundle.members.iter().map(|m| m.kernel.logical_blocks as f64).sum();
        let total = serial * (1.0 + 0.1 * (bundle.members.len() - 1) as f64);
        Timing { total_us: total, per_slot_us: Some(vec![total; bundle.members.len()]) }
    }
}

#[test]
fn no_planned_bundle_is_predicted_slower_than_its_slots_one_after_another() {
    let programs = mixed_tenants();
    let tenants = with_ids(&programs);
    let limits = Target::sm_90();
    for mode in [PackMode::Coalesce, PackMode::Constrain, PackMode::Auto] {
        for knob in [0.0, 0.5, 1.0] {
            let plan = plan(&tenants, &limits, &Policy::new(mode, knob)).unwrap();
            for b in &plan.bundles {
                let serial: f64 = b.slots.iter().map(|s| s.solo_time).sum();
                assert!(b.time <= serial * (1.0 + 1e-9), "{mode:?} knob {knob}: {} > {serial}", b.time);
            }
        }
        // Where packing always costs, nothing packs, whatever the knob.
        let packed = plan_with(&tenants, &limits, &Policy::new(mode, 1.0), &EstimatedResources, &mut Costly).unwrap();
        assert!(packed.bundles.iter().all(|b| b.slots.len() == 1), "{mode:?}");
        let refusal = packed.refusals.iter().find(|r| matches!(r.reason, RefusalReason::NoGain { .. }));
        let text = refusal.expect("a kernel was refused for costing").to_string();
        assert!(text.contains("no gain") && text.contains("µs"), "{text}");
    }
}

#[test]
fn grow_applies_shaping_the_gain_rule_and_the_callers_objection() {
    let limits = Target::sm_90();
    let kernels = [kernel("a", 8, 128, 4, 0), kernel("b", 8, 128, 4, 0), kernel("c", 8, 128, 4, 0)];
    let offers: Vec<Offer> = kernels
        .iter()
        .enumerate()
        .map(|(t, k)| Offer {
            member: Member {
                kernel: Arc::new(PreparedKernel::new(k, &limits, &EstimatedResources).unwrap()),
                tenant: TenantId(t as u32),
                args: vec![weft_lower::BufferId::from_u32(0)],
            },
            solo_time: k.launch.num_blocks() as f64,
        })
        .collect();

    // An even trade joins; the caller's objection to offer 1 leaves it out.
    let mut heard = Vec::new();
    let mut object = |trial: &[usize], time: f64| {
        trial.contains(&1).then(|| RefusalReason::Slowdown {
            member: TenantId(1),
            member_kernel: "b".into(),
            slowdown: time,
            tolerated: 0.0,
        })
    };
    let grown = grow(
        &offers,
        &limits,
        PackMode::Auto,
        &EstimatedResources,
        &mut Serial { solo_calls: 0 },
        &mut object,
        &mut |i, r| heard.push((i, r)),
    )
    .unwrap();
    assert_eq!(grown.chosen, vec![0, 2]);
    assert_eq!(grown.shaped.members.len(), 2);
    assert_eq!(grown.cost.total_us, 16.0, "the grown bundle carries the cost model's price");
    assert_eq!(heard.len(), 1);
    assert!(matches!(heard[0], (1, RefusalReason::Slowdown { .. })), "{heard:?}");

    // Where packing costs, nothing joins, and each refusal says so.
    let mut heard = Vec::new();
    let grown =
        grow(&offers, &limits, PackMode::Auto, &EstimatedResources, &mut Costly, &mut |_, _| None, &mut |i, r| {
            heard.push((i, r))
        })
        .unwrap();
    assert_eq!(grown.chosen, vec![0]);
    assert_eq!(heard.len(), 2);
    for (i, reason) in &heard {
        match reason {
            RefusalReason::NoGain { with_us, apart_us } => {
                assert!(with_us > apart_us, "offer {i}: {with_us} vs {apart_us}")
            }
            other => panic!("offer {i}: expected no gain, got {other}"),
        }
    }

    // Nothing offered is a shaping refusal, not a panic.
    let empty = grow(&[], &limits, PackMode::Auto, &EstimatedResources, &mut Costly, &mut |_, _| None, &mut |_, _| {});
    assert!(matches!(empty, Err(weft_pack::FormError::Refused(ShapeRefusal::Empty))));
}

#[test]
fn grow_splits_a_join_whose_compiled_module_loses_occupancy() {
    let limits = Target::sm_90();
    let kernels = [kernel("a", 8, 128, 4, 0), kernel("b", 8, 128, 5, 0), kernel("a", 8, 128, 4, 0)];
    let table = weft_pack::ResourceTable::new();
    let offers: Vec<Offer> = kernels
        .iter()
        .enumerate()
        .map(|(t, k)| Offer {
            member: Member {
                kernel: Arc::new(PreparedKernel::new(k, &limits, &table).unwrap()),
                tenant: TenantId(t as u32),
                args: vec![weft_lower::BufferId::from_u32(0)],
            },
            solo_time: k.launch.num_blocks() as f64,
        })
        .collect();
    let both =
        ShapedBundle::form(vec![offers[0].member.clone(), offers[1].member.clone()], &limits, PackMode::Auto).unwrap();
    let class = both.bundle.class().clone();
    assert_eq!(class.bodies.len(), 2);
    let body = offers[0].member.kernel.resources;
    let grown_with = |table: &weft_pack::ResourceTable| {
        let mut heard = Vec::new();
        let grown = grow(
            &offers,
            &limits,
            PackMode::Auto,
            table,
            &mut Serial { solo_calls: 0 },
            &mut |_, _| None,
            &mut |i, r| heard.push((i, r)),
        )
        .unwrap();
        (grown.chosen, heard)
    };

    // Nothing compiled yet: the members' own resources, and all three join.
    assert_eq!(grown_with(&table).0, vec![0, 1, 2]);

    // The module of a and b takes 4x the body's registers: fewer blocks per
    // SM than its bodies get alone, so b waits; the third offer is body a
    // again, whose one-body module the bundle already is, and joins.
    let losing =
        weft_pack::BundleFigures::new(KernelResources { registers: body.registers * 4, ..body }, body, &limits);
    assert!(losing.module_occupancy.blocks_per_sm < losing.max_body_occupancy.blocks_per_sm, "{losing:?}");
    table.record_bundle(&class, losing);
    let (chosen, heard) = grown_with(&table);
    assert_eq!(chosen, vec![0, 2]);
    match &heard[..] {
        [(1, reason @ RefusalReason::ModuleOccupancy { registers, body_registers, .. })] => {
            assert_eq!((*registers, *body_registers), (body.registers * 4, body.registers));
            let text = reason.to_string();
            assert!(text.contains("module occupancy") && text.contains("[a, b]"), "{text}");
        }
        other => panic!("expected b's module-occupancy refusal, heard {other:?}"),
    }

    // A module that keeps the body's occupancy (its spills would not) lets b join.
    let spilling = weft_pack::BundleFigures::new(KernelResources { spill_bytes: 8, ..body }, body, &limits);
    table.record_bundle(&class, spilling);
    assert_eq!(grown_with(&table).0, vec![0, 2]);
    table.record_bundle(&class, weft_pack::BundleFigures::new(body, body, &limits));
    assert_eq!(grown_with(&table), (vec![0, 1, 2], vec![]));
}

/// A resource model that records each launch class a planner asks the
/// module of (and knows none): asking is what compiles in `weft pack`.
struct AskedModules {
    asked: std::cell::RefCell<Vec<weft_pack::LaunchClass>>,
}

impl weft_pack::ResourceModel for AskedModules {
    fn resources(&self, kernel: &KernelDef) -> KernelResources {
        EstimatedResources.resources(kernel)
    }

    fn module(&self, bundle: &weft_pack::Bundle) -> Option<weft_pack::BundleFigures> {
        self.asked.borrow_mut().push(bundle.class().clone());
        None
    }
}

#[test]
fn grow_asks_for_a_module_only_of_joins_every_other_rule_takes() {
    let limits = Target::sm_90();
    let kernels = [kernel("a", 8, 128, 4, 0), kernel("b", 8, 128, 5, 0), kernel("c", 8, 128, 6, 0)];
    let model = AskedModules { asked: Default::default() };
    let offers: Vec<Offer> = kernels
        .iter()
        .enumerate()
        .map(|(t, k)| Offer {
            member: Member {
                kernel: Arc::new(PreparedKernel::new(k, &limits, &model).unwrap()),
                tenant: TenantId(t as u32),
                args: vec![weft_lower::BufferId::from_u32(0)],
            },
            solo_time: k.launch.num_blocks() as f64,
        })
        .collect();

    // Where packing costs, every join is refused before its module is asked.
    let grown = grow(&offers, &limits, PackMode::Auto, &model, &mut Costly, &mut |_, _| None, &mut |_, _| {}).unwrap();
    assert_eq!(grown.chosen, vec![0]);
    assert!(model.asked.borrow().is_empty(), "asked {:?}", model.asked.borrow());

    // The caller objects to b: only the join of c is asked, as the class {a, c}.
    let mut object = |trial: &[usize], _: f64| {
        trial.contains(&1).then(|| RefusalReason::Slowdown {
            member: TenantId(1),
            member_kernel: "b".into(),
            slowdown: 2.0,
            tolerated: 1.0,
        })
    };
    let grown =
        grow(&offers, &limits, PackMode::Auto, &model, &mut Serial { solo_calls: 0 }, &mut object, &mut |_, _| {})
            .unwrap();
    assert_eq!(grown.chosen, vec![0, 2]);
    let asked = model.asked.borrow().clone();
    assert_eq!(asked, vec![grown.shaped.bundle.class().clone()]);
    assert_eq!(asked[0].bodies.len(), 2);

    // The class is the set of bodies: c and a in the other order launch
    // the same module, each slot still running its own body.
    let members = |order: [usize; 2]| order.iter().map(|&i| offers[i].member.clone()).collect::<Vec<_>>();
    let ca = ShapedBundle::form(members([2, 0]), &limits, PackMode::Auto).unwrap();
    assert_eq!(ca.bundle.class(), &asked[0]);
    for (slot, entry) in ca.bundle.slots().iter().zip(&ca.bundle.table().entries) {
        assert!(Arc::ptr_eq(&slot.kernel, &ca.bundle.bodies()[entry.body as usize]));
    }
    assert_eq!(ca.bundle.slots()[0].kernel.name, "c");
}
