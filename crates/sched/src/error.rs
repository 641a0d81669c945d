//! The scheduler's errors: one enum for the room, each variant naming the
//! tenant, request, kernel or file it is about and what to do.

use weft_pack::{PackError, TenantId};

/// Why a request was refused at admission.
#[derive(Clone, PartialEq, Debug)]
pub enum RejectReason {
    /// The tenant's queue already holds `capacity` requests.
    QueueFull { capacity: usize },
    /// At the current load the request is predicted to finish `predicted_us`
    /// after arriving, past its SLO.
    SloUnreachable { predicted_us: f64, slo_us: f64 },
    /// The tenant is being removed or was never given work to do.
    Closed,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::QueueFull { capacity } => write!(f, "its queue is full ({capacity} requests)"),
            RejectReason::SloUnreachable { predicted_us, slo_us } => write!(
                f,
                "at the current load it is predicted to take {predicted_us:.1} µs, past its SLO of {slo_us:.1} µs"
            ),
            RejectReason::Closed => write!(f, "the tenant takes no more requests"),
        }
    }
}

/// Everything that can go wrong in this room.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("unknown tenant {}: register it with Scheduler::add_tenant first", tenant.0)]
    UnknownTenant { tenant: TenantId },
    #[error("tenant {} is already registered", tenant.0)]
    DuplicateTenant { tenant: TenantId },
    #[error("tenant {} ({name}): {message}", tenant.0)]
    InvalidTenant { tenant: TenantId, name: String, message: String },
    /// A request's own parameters are not usable (its objective).
    #[error("request {request} of tenant {}: {message}", tenant.0)]
    InvalidRequest { tenant: TenantId, request: u64, message: String },
    /// Admission refused the request; nothing of it ran.
    #[error("request {request} of tenant {} rejected: {reason}", tenant.0)]
    Rejected { tenant: TenantId, request: u64, reason: RejectReason },
    #[error(
        "tenant {} step {step}: kernel `{kernel}` cannot run on this device: one block exceeds the {limiter} limit",
        tenant.0
    )]
    Unlaunchable { tenant: TenantId, step: usize, kernel: String, limiter: weft_pack::Limiter },
    /// The packer refused a bundle (a kernel failed verification or isolation).
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The predictor could not describe a bundle.
    #[error("predictor: {message}")]
    Predict { message: String },
    /// The executor failed to run a bundle.
    #[error("executor {executor} failed on a bundle of {slots} slots: {message}")]
    Executor { executor: String, slots: usize, message: String },
    #[error("workload trace: {message}")]
    Trace { message: String },
    /// A completion that does not match the dispatched bundle.
    #[error("completion does not match the dispatch: {message}")]
    Completion { message: String },
}
