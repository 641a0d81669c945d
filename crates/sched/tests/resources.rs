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
    assert_eq!(estimated.resources, KernelResources::of(&estimated.kernel, None));

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
