//! weft's packer: many tenants' kernels in one launch.
//!
//! At batch 1 a tenant's kernel fills a few SMs. The packer treats the
//! tenants' kernel streams like a VLIW compiler treats instruction streams: it
//! fills each launch (a [`Bundle`]) with ready kernels of different tenants
//! ([`Slot`]s), giving each slot a disjoint range of physical blocks
//! (coalescing) and, where useful, a budget of persistent blocks that loop over
//! its logical grid (constraining). The mapping lives in a [`SlotTable`] that
//! travels at launch, so compiled code depends only on kernel bodies.
//!
//! Which kernels may share a launch, and with what budgets, is decided in
//! one place, [`shape`](mod@shape), for every planner; how long a bundle
//! takes is a [`CostModel`]'s answer ([`cost`]); [`plan`] is the offline
//! list scheduler over both.

pub mod builder;
pub mod bundle;
pub mod cost;
pub mod error;
pub mod exec;
pub mod interp;
pub mod isolate;
pub mod launch;
pub mod module;
pub mod occupancy;
pub mod run;
pub mod schedule;
pub mod shape;
pub mod table;
pub mod timeline;

pub use builder::{BundleBuilder, Isolation};
pub use bundle::{body_fingerprint, Budget, Bundle, LaunchClass, Slot, TenantId};
pub use cost::{BlockRounds, CostModel};
pub use error::PackError;
pub use exec::{
    BufferShape, ExecError, Executor, Handle, HandleMap, Intercepted, Interceptor, LaunchArg, Timing, Transfers,
};
pub use interp::InterpExecutor;
pub use isolate::{isolate, GuardedAccess, Isolated};
pub use launch::{encode_launch, EncodedLaunch};
pub use module::{
    compile_bundle, compile_bundle_with, BundleFigures, CompiledBundle, CompiledModules, FormChoice, ModuleError,
};
pub use occupancy::{allocated_registers, estimate_registers, KernelResources, Limiter, Occupancy, ResourceTable};
pub use run::{
    check_inputs, launch_host, run_kernel, run_multi, run_plan, run_program, solo_bundle, Arena, IndexError, MultiRun,
    Resident, RunError, TenantRun, Weights,
};
pub use schedule::{
    grow, plan, plan_observed, plan_with, Grown, Offer, Plan, PlanProgress, PlannedBundle, Policy, Refusal,
    RefusalReason, ScheduleError, SlotPlan,
};
pub use shape::{
    assemble, block_time, finish_together_budgets, shape, EstimatedResources, FormError, Member, PackMode,
    PreparedKernel, ResourceModel, Shape, ShapeRefusal, ShapedBundle,
};
pub use table::{SlotEntry, SlotTable};
/// ptxas's report on a compiled module, as executors hand it back.
pub use weft_codegen::ResourceReport;
