//! weft's SLO-aware scheduler: many tenants' requests onto one GPU.
//!
//! Tenants (a lowered [`Program`](weft_lower::Program), an SLO and a weight)
//! receive requests into bounded queues; each request's deadline is its
//! arrival plus its tenant's SLO. The [`Scheduler`] repeatedly forms the next
//! bundle from the tenants' ready kernels — earliest deadline first, slack
//! aware, as wide as the predictor says every member can afford — rejects
//! arrivals whose SLO cannot be met at the current load with a typed
//! [`SchedError::Rejected`], favours tenants whose attainment lags, and lets
//! a knob trade bundle width (throughput) against slack (latency). The
//! baselines it is compared against (time-only FIFO, space-only, packed
//! greedily) run behind the same interface ([`PolicyKind`]).
//!
//! [`serve`] closes the loop over simulated time on an [`Executor`] (the
//! simulator `weft_sim::SimGpu` in tests and the benchmark: every figure it
//! yields is a simulator figure, not a GPU result); [`workload`] draws and
//! replays arrival traces; [`metrics`] summarises a run. `docs/scheduler.md`
//! explains the policy.

pub mod error;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod scheduler;
pub mod serve;
pub mod workload;

pub use error::{RejectReason, SchedError};
pub use metrics::{jain, median, quantile, Outcome, RequestRecord, ServeReport, TenantSummary};
pub use placement::{demand, serve_devices, DevicesReport, Placement};
pub use policy::{PolicyKind, SchedulerConfig};
pub use scheduler::{Dispatch, DispatchedStep, Finished, Request, Scheduler, TenantSpec};
pub use serve::{serve, Clock, Event, ServeError, ServeStats, Server, SimClock, WallClock, Watchdog};
pub use weft_pack::Timing;
pub use workload::{Arrivals, Trace, TraceTenant, TRACE_FORMAT, TRACE_VERSION};
