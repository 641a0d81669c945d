//! weft's packer: many tenants' kernels in one launch.
//!
//! At batch 1 a tenant's kernel fills a few SMs. The packer treats the
//! tenants' kernel streams like a VLIW compiler treats instruction streams: it
//! fills each launch (a [`Bundle`]) with ready kernels of different tenants
//! ([`Slot`]s), giving each slot a disjoint range of physical blocks
//! (coalescing) and, where useful, a budget of persistent blocks that loop over
//! its logical grid (constraining). The mapping lives in a [`SlotTable`] that
//! travels at launch, so compiled code depends only on kernel bodies.

pub mod builder;
pub mod bundle;
pub mod error;
pub mod exec;
pub mod interp;
pub mod isolate;
pub mod occupancy;
pub mod run;
pub mod schedule;
pub mod table;
pub mod timeline;

pub use builder::{BundleBuilder, Isolation};
pub use bundle::{body_fingerprint, Budget, Bundle, LaunchClass, Slot, TenantId};
pub use error::PackError;
pub use exec::BundleExecutor;
pub use isolate::{isolate, GuardedAccess, Isolated};
pub use occupancy::{estimate_registers, KernelResources, Limiter, Occupancy, ResourceTable};
pub use run::{run_bundle, run_multi, run_plan, MultiRun, ProgramRef, RunError, TenantState};
pub use schedule::{
    block_time, finish_together_budgets, plan, plan_with, PackMode, Plan, PlannedBundle, Policy, Refusal,
    RefusalReason, ScheduleError, SlotPlan,
};
pub use table::{SlotEntry, SlotTable};
