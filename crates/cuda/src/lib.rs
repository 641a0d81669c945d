//! weft-cuda: weft's CUDA runtime, on top of cudarc's safe driver API.
//!
//! This room owns the device side: probing for a GPU without panicking
//! ([`device`]), and a context wrapper with buffers, modules, launches,
//! streams and timing events ([`runtime`]). It knows nothing about KIR or
//! tenants: kernels arrive as PTX text and arguments as raw buffers and
//! scalars, so the packer and the executor above decide what to run.
//!
//! cudarc panics when libcuda cannot be loaded, so every entry point here
//! checks `cudarc::driver::sys::is_culib_present()` before its first driver
//! call and returns [`CudaError::NoDevice`] instead; callers fall back to the
//! CPU interpreter.

pub mod device;
pub mod runtime;

#[cfg(any(test, feature = "testing"))]
pub use device::require_gpu_or_skip;
pub use device::{probe, probe_device, DeviceInfo};
pub use runtime::{driver_available, DeviceBuffer, Event, Function, Gpu, KernelArg, LaunchDims, Module, Stream};

/// Everything that can go wrong on the CUDA side.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable GPU: no driver library, no device, or the driver failed to start.
    #[error("no CUDA device: {reason}")]
    NoDevice {
        reason: String,
        /// The driver's error, where a driver call said why.
        #[source]
        source: Option<cudarc::driver::DriverError>,
    },
    /// A driver call failed.
    #[error("CUDA driver call `{op}` failed: {}", describe(source))]
    Driver {
        op: &'static str,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// An argument the driver would reject or cudarc would panic on.
    #[error("invalid argument to `{op}`: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
    /// A launch asks for more than the device offers.
    #[error("{what} exceeds the device limit: needs {needed}, limit {limit}")]
    LimitExceeded { what: String, limit: u64, needed: u64 },
}

impl CudaError {
    /// Whether the error leaves the context unusable until it is reset (a
    /// sticky error: an illegal or misaligned address, an illegal
    /// instruction, a trap or failed assertion, a launch failure or time-out).
    pub fn is_sticky(&self) -> bool {
        use cudarc::driver::sys::CUresult as R;
        let CudaError::Driver { source, .. } = self else { return false };
        matches!(
            source.0,
            R::CUDA_ERROR_ILLEGAL_ADDRESS
                | R::CUDA_ERROR_LAUNCH_FAILED
                | R::CUDA_ERROR_ILLEGAL_INSTRUCTION
                | R::CUDA_ERROR_MISALIGNED_ADDRESS
                | R::CUDA_ERROR_INVALID_ADDRESS_SPACE
                | R::CUDA_ERROR_INVALID_PC
                | R::CUDA_ERROR_HARDWARE_STACK_ERROR
                | R::CUDA_ERROR_ASSERT
                | R::CUDA_ERROR_LAUNCH_TIMEOUT
        )
    }

    /// Wraps a driver error from operation `op`.
    pub fn driver(op: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
        move |source| CudaError::Driver { op, source }
    }
}

fn describe(e: &cudarc::driver::DriverError) -> String {
    match (e.error_name(), e.error_string()) {
        (Ok(name), Ok(text)) => format!("{} ({})", name.to_string_lossy(), text.to_string_lossy()),
        _ => format!("{:?}", e.0),
    }
}
