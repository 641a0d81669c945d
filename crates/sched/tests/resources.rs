//! The scheduler shapes bundles on the block resources the compiler
//! recorded, not on the KIR estimate, once a table holds them.

mod common;

use std::sync::Arc;

use weft_codegen::ResourceReport;
use weft_pack::PreparedKernel;
use weft_pack::{KernelResources, Occupancy, ResourceTable};
use weft_sched::{Scheduler, SchedulerConfig};

#[test]
fn prepared_kernels_use_recorded_ptxas_figures() {
    let program = common::resnet18_small();
    let limits = common::limits();
    let kernel = &program.steps[0].kernel;
    let table = ResourceTable::new();

    let estimated = PreparedKernel::new(kernel, &limits, &table).expect("prepares");
    assert!(!estimated.resources.measured);
    assert_eq!(estimated.resources, KernelResources::of(estimated.kernel(), None));

    // A register count far from the estimate, so the occupancy must move.
    let registers = if estimated.resources.registers > 128 { 32 } else { 200 };
    let report = ResourceReport { kernel: kernel.name.clone(), registers, ..Default::default() };
    table.record(kernel, &report);
    let measured = PreparedKernel::new(kernel, &limits, &table).expect("prepares");
    assert!(measured.resources.measured);
    assert_eq!(measured.resources.registers, registers);
    assert_eq!(measured.solo, Occupancy::of(measured.resources, &limits));
    assert_ne!(measured.solo.blocks_per_sm, estimated.solo.blocks_per_sm, "{estimated:?} vs {measured:?}");

    let table = Arc::new(table);
    let scheduler =
        Scheduler::new(SchedulerConfig::slo_aware(1.0), limits, common::prior()).with_resources(table.clone());
    assert!(Arc::ptr_eq(scheduler.resources(), &table));
}

/// A compiler that reports every module at 255 registers (what ptxas says
/// of a register-hungry build), around the interpreter.
struct HungryCompiler {
    prepared: usize,
}

impl weft_pack::Interceptor for HungryCompiler {
    fn name(&self) -> &str {
        "hungry-compiler"
    }
    fn prepare(
        &mut self,
        _inner: &mut dyn weft_pack::Executor,
        bundle: &weft_pack::Bundle,
    ) -> Result<Option<ResourceReport>, weft_pack::ExecError> {
        self.prepared += 1;
        let kernel = bundle.bodies().first().map(|k| k.name.clone()).unwrap_or_default();
        Ok(Some(ResourceReport { kernel, registers: 255, ..Default::default() }))
    }
}

/// Registration through the serving loop hands the compiler's report on each
/// solo module to the scheduler: it plans on those figures from then on.
#[test]
fn registration_records_what_the_compiler_reports() {
    let program = common::resnet18_small();
    let mut scheduler = Scheduler::new(SchedulerConfig::slo_aware(1.0), common::limits(), common::prior());
    let mut exec =
        weft_pack::Intercepted { inner: weft_pack::InterpExecutor::default(), hooks: HungryCompiler { prepared: 0 } };
    let estimated_us = {
        let mut alone = Scheduler::new(SchedulerConfig::slo_aware(1.0), common::limits(), common::prior());
        alone.add_tenant(common::tenant(0, 1e6)).expect("registers");
        alone.solo_latency_us(weft_pack::TenantId(0)).expect("known")
    };
    {
        let mut server = weft_sched::Server::new(&mut scheduler, &mut exec).expect("an empty loop starts");
        server.register(common::tenant(0, 1e6)).expect("registers");
    }
    let distinct = scheduler.solo_bundles(weft_pack::TenantId(0)).expect("known").len();
    assert_eq!(exec.hooks.prepared, distinct, "every distinct kernel is prepared once at registration");
    assert_eq!(scheduler.resources().len(), distinct, "every report is recorded");
    for bundle in scheduler.solo_bundles(weft_pack::TenantId(0)).expect("known") {
        let measured = scheduler.resources().measured(&bundle.bodies()[0]).expect("recorded");
        assert_eq!(measured.registers, 255);
    }
    // Every step is planned on the reported figures, and its occupancy with
    // them: at 255 registers (8,192 per warp once allocated) an SM's 65,536
    // registers hold at most 8 warps.
    for step in 0..program.steps.len() {
        let r = scheduler.step_resources(weft_pack::TenantId(0), step).expect("known");
        assert!(r.measured && r.registers == 255, "step {step}: {r:?}");
        let occupancy = Occupancy::of(r, &common::limits());
        assert!(occupancy.warps_per_sm <= 8, "step {step}: {occupancy:?}");
    }
    // The predicted solo latency never shrinks when occupancy falls.
    let measured_us = scheduler.solo_latency_us(weft_pack::TenantId(0)).expect("known");
    assert!(measured_us >= estimated_us, "{measured_us} µs on ptxas's figures vs {estimated_us} µs estimated");
}

/// A step that no bundle can hold, not even alone (here: the compiler
/// reports more registers than an SM has once the tenant is registered),
/// fails only its own request; the other tenant's request completes.
#[test]
fn a_step_no_bundle_can_hold_fails_only_its_request() {
    let other = {
        let mut g = weft_graph::builder::GraphBuilder::new("small");
        let x = g.input("x", weft_graph::DType::F32, &[4, 64]);
        let y = g.relu(x).expect("relu builds");
        g.output(y);
        Arc::new(weft_lower::lower(&g.finish(), &weft_lower::LowerOptions::default()).expect("lowers"))
    };
    // Admission off: it would refuse the doomed request at the door.
    let config = SchedulerConfig::slo_aware(1.0).with_admission(false);
    let mut scheduler = Scheduler::new(config, common::limits(), common::prior());
    scheduler.add_tenant(common::tenant(0, 1e9)).expect("registers");
    let b = weft_sched::TenantSpec {
        id: weft_pack::TenantId(1),
        name: "small".into(),
        program: other.clone(),
        slo_us: 1e9,
        weight: 1.0,
    };
    scheduler.add_tenant(b).expect("registers");
    // From now on tenant 0's first kernel cannot run anywhere.
    let doomed = scheduler.solo_bundles(weft_pack::TenantId(0)).expect("known")[0].bodies()[0].clone();
    let report = ResourceReport { kernel: doomed.name.clone(), registers: 100_000, ..Default::default() };
    assert!(scheduler.record_resources(&doomed, &report));
    let mut exec = weft_pack::InterpExecutor::default();
    let mut server = weft_sched::Server::new(&mut scheduler, &mut exec).expect("the loop takes both tenants");

    let mut clock = weft_sched::WallClock::new();
    let mut events = Vec::new();
    let inputs = |p: &weft_lower::Program| Arc::new(p.seeded_inputs(3));
    for (id, tenant, program) in [(1, 0, common::resnet18_small()), (2, 1, other.clone())] {
        let request = weft_sched::Request::new(weft_pack::TenantId(tenant), id, 0.0);
        server.submit(request, inputs(&program), 0.0, &mut events);
    }
    let mut steps = 0;
    while server.live_requests() > 0 {
        assert!(server.step(&mut clock, &mut events), "a step ran or failed a request");
        steps += 1;
        assert!(steps < 10_000, "the loop did not finish");
    }
    let mut failed = Vec::new();
    let mut completed = Vec::new();
    for e in events {
        match e {
            weft_sched::Event::Failed { request, error } => failed.push((request.id, error.to_string())),
            weft_sched::Event::Completed { request, .. } => completed.push(request.id),
            weft_sched::Event::Rejected { request, .. } => panic!("request {} rejected", request.id),
        }
    }
    assert_eq!(completed, vec![2], "the other tenant's request completes");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 1);
    assert!(failed[0].1.contains("cannot form a bundle alone"), "{}", failed[0].1);
}

/// An executor whose fused modules lose their bodies' occupancy (255
/// registers where each body alone takes 32), around the interpreter: it
/// says so of every class asked about, and counts the launches of several
/// slots of each class after it said so.
#[derive(Default)]
struct LosingModules {
    reported: std::cell::RefCell<std::collections::HashSet<weft_pack::LaunchClass>>,
    fused_after_report: std::collections::HashMap<weft_pack::LaunchClass, usize>,
    fused: usize,
}

impl weft_pack::Interceptor for LosingModules {
    fn name(&self) -> &str {
        "losing-modules"
    }
    fn module_figures(
        &self,
        _inner: &dyn weft_pack::Executor,
        class: &weft_pack::LaunchClass,
    ) -> Option<weft_pack::BundleFigures> {
        self.reported.borrow_mut().insert(class.clone());
        let resources = |registers| KernelResources {
            threads: class.block_threads,
            registers,
            shared_bytes: 0,
            spill_bytes: 0,
            measured: true,
        };
        Some(weft_pack::BundleFigures::new(resources(255), resources(32), &common::limits()))
    }
    fn launch(
        &mut self,
        inner: &mut dyn weft_pack::Executor,
        bundle: &weft_pack::Bundle,
        args: &[Vec<weft_pack::LaunchArg>],
    ) -> Result<weft_pack::Timing, weft_pack::ExecError> {
        if bundle.slots().len() > 1 {
            self.fused += 1;
            if self.reported.borrow().contains(bundle.class()) {
                *self.fused_after_report.entry(bundle.class().clone()).or_default() += 1;
            }
        }
        inner.launch(bundle, args)
    }
}

/// The serving loop records the figures of each fused module the executor
/// loaded; from then on the scheduler judges joins of that class on them:
/// a module that loses occupancy is launched once (the bundle formed before
/// its figures were known) and its joins are split after.
#[test]
fn fused_modules_figures_are_recorded_and_steer_later_joins() {
    let config = SchedulerConfig::slo_aware(1.0).with_admission(false);
    let mut scheduler = Scheduler::new(config, common::limits(), common::prior());
    let mut exec =
        weft_pack::Intercepted { inner: weft_pack::InterpExecutor::default(), hooks: LosingModules::default() };
    // Two models of one architecture at different resolutions: their
    // kernels differ, so joins make modules of several bodies.
    let wider = {
        let graph = weft_graph::models::resnet18(7, 1, 24, 10).expect("resnet18 builds");
        Arc::new(weft_lower::lower(&graph, &weft_lower::LowerOptions::default()).expect("resnet18 lowers"))
    };
    let programs = [common::resnet18_small(), wider];
    let recorded = {
        let mut server = weft_sched::Server::new(&mut scheduler, &mut exec).expect("an empty loop starts");
        for (t, program) in programs.iter().enumerate() {
            let id = weft_pack::TenantId(t as u32);
            let name = format!("r18-{t}");
            let spec = weft_sched::TenantSpec { id, name, program: program.clone(), slo_us: 1e9, weight: 1.0 };
            server.register(spec).expect("registers");
        }
        let mut clock = weft_sched::WallClock::new();
        let mut events = Vec::new();
        for id in 0..4u64 {
            let t = (id % 2) as usize;
            let request = weft_sched::Request::new(weft_pack::TenantId(t as u32), id, 0.0);
            server.submit(request, Arc::new(programs[t].seeded_inputs(id)), 0.0, &mut events);
        }
        let mut steps = 0;
        while server.live_requests() > 0 {
            assert!(server.step(&mut clock, &mut events), "a step ran");
            steps += 1;
            assert!(steps < 100_000, "the loop did not finish");
        }
        let completed = events.iter().filter(|e| matches!(e, weft_sched::Event::Completed { .. })).count();
        assert_eq!(completed, 4, "every request completes");
        server.stats().recorded_modules
    };
    let hooks = &exec.hooks;
    let reported = hooks.reported.borrow();
    assert!(hooks.fused > 0 && recorded > 0, "tenants in step fuse: {} fused launches", hooks.fused);
    assert_eq!(recorded as usize, reported.len(), "each class is recorded once");
    for class in reported.iter() {
        let figures = scheduler.resources().bundle(class).expect("the figures are in the scheduler's table");
        assert_eq!(figures.module.registers, 255);
        let after = hooks.fused_after_report.get(class).copied().unwrap_or(0);
        assert!(after <= 1, "{after} fused launches of a class whose module loses occupancy");
    }
}
