//! Finding a GPU and reading what it offers, without ever panicking.
//!
//! [`probe`] is the one question the rest of weft asks before touching CUDA:
//! it checks that libcuda can be loaded at all (cudarc would panic otherwise),
//! initialises the driver, and reads the limits the packer's occupancy model
//! and the compiler's `-arch` need. It does not create a context.

use cudarc::driver::result;
use cudarc::driver::sys::{self, CUdevice_attribute as A};
use weft_kir::Target;

use crate::CudaError;

/// What one device offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// `(major, minor)`, e.g. `(9, 0)` for H100/H200.
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    pub max_threads_per_sm: u32,
    pub max_threads_per_block: u32,
    pub max_blocks_per_sm: u32,
    pub registers_per_sm: u32,
    pub registers_per_block: u32,
    pub shared_bytes_per_sm: u64,
    /// Default per-block limit (static shared memory).
    pub shared_bytes_per_block: u64,
    /// Per-block limit with the opt-in attribute (dynamic shared memory).
    pub shared_bytes_per_block_optin: u64,
    pub warp_size: u32,
    pub l2_bytes: u64,
    pub total_memory_bytes: u64,
    /// Memory clock in kHz, where the driver still reports it.
    pub memory_clock_khz: Option<u32>,
    pub memory_bus_width_bits: Option<u32>,
    /// `(major, minor)` of the CUDA version the driver supports, e.g. `(13, 0)`.
    pub driver_version: (u32, u32),
}

impl DeviceInfo {
    /// `sm_90`-style architecture name.
    pub fn arch_name(&self) -> String {
        format!("sm_{}{}", self.compute_capability.0, self.compute_capability.1)
    }

    /// The device as weft plans and checks against: the limits the driver
    /// reports, over [`Target::sm_90`]'s for what drivers do not report
    /// (allocation granularities, register partitions, registers per thread,
    /// grid bounds, parameter space, the full-speed warp count), which every
    /// architecture from 7.0 to 9.0 shares.
    pub fn target(&self) -> Target {
        Target {
            compute_capability: self.compute_capability,
            sm_count: self.sm_count,
            warp_size: self.warp_size,
            max_threads_per_block: self.max_threads_per_block,
            max_threads_per_sm: self.max_threads_per_sm,
            max_blocks_per_sm: self.max_blocks_per_sm,
            registers_per_sm: self.registers_per_sm,
            registers_per_block: self.registers_per_block,
            shared_bytes_per_sm: self.shared_bytes_per_sm,
            shared_bytes_per_block: self.shared_bytes_per_block,
            shared_bytes_per_block_optin: self.shared_bytes_per_block_optin,
            ..Target::sm_90()
        }
    }
}

const FALLBACK: &str = "weft falls back to the CPU interpreter";

/// Probes device 0.
pub fn probe() -> Result<DeviceInfo, CudaError> {
    probe_device(0)
}

/// Checks that the CUDA driver library can be loaded, without panicking.
pub(crate) fn driver_present() -> Result<(), CudaError> {
    // SAFETY: only attempts dlopen of libcuda candidate names.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError::NoDevice {
            reason: format!(
                "no CUDA driver (libcuda.so) found: the dynamic loader could not open libcuda.so or libcuda.so.1 \
                 (install the NVIDIA driver, or add its folder to LD_LIBRARY_PATH); {FALLBACK}"
            ),
            source: None,
        })
    }
}

/// Probes device `ordinal`.
pub fn probe_device(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    driver_present()?;
    result::init().map_err(|e| CudaError::NoDevice {
        reason: format!("the CUDA driver is installed but failed to initialise ({e:?}); {FALLBACK}"),
        source: Some(e),
    })?;
    let count = result::device::get_count().map_err(CudaError::driver("cuDeviceGetCount"))?;
    if count <= 0 {
        return Err(CudaError::NoDevice {
            reason: format!("the CUDA driver reports no devices; {FALLBACK}"),
            source: None,
        });
    }
    if ordinal >= count as usize {
        return Err(CudaError::NoDevice {
            reason: format!("device {ordinal} requested but only {count} present; {FALLBACK}"),
            source: None,
        });
    }
    let dev = result::device::get(ordinal as i32).map_err(CudaError::driver("cuDeviceGet"))?;
    // SAFETY: `dev` is a valid device handle from cuDeviceGet.
    let attr = |a: A| unsafe { result::device::get_attribute(dev, a) }.ok().filter(|v| *v >= 0).map(|v| v as u32);
    let need =
        |a: A| attr(a).ok_or(CudaError::InvalidArgument { op: "cuDeviceGetAttribute", reason: format!("{a:?}") });
    let mut version = 0;
    // SAFETY: valid out-pointer; the driver is loaded and initialised.
    unsafe { sys::cuDriverGetVersion(&mut version) }.result().map_err(CudaError::driver("cuDriverGetVersion"))?;
    // SAFETY: valid device handle.
    let total = unsafe { result::device::total_mem(dev) }.map_err(CudaError::driver("cuDeviceTotalMem"))?;
    Ok(DeviceInfo {
        ordinal,
        name: result::device::get_name(dev).map_err(CudaError::driver("cuDeviceGetName"))?,
        compute_capability: (
            need(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            need(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ),
        sm_count: need(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        max_threads_per_sm: need(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)?,
        max_threads_per_block: need(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
        max_blocks_per_sm: need(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR)?,
        registers_per_sm: need(A::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR)?,
        registers_per_block: need(A::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK)?,
        shared_bytes_per_sm: need(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)? as u64,
        shared_bytes_per_block: need(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)? as u64,
        shared_bytes_per_block_optin: need(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u64,
        warp_size: need(A::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?,
        l2_bytes: need(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
        total_memory_bytes: total as u64,
        memory_clock_khz: attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE).filter(|v| *v > 0),
        memory_bus_width_bits: attr(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH).filter(|v| *v > 0),
        driver_version: (version as u32 / 1000, (version as u32 % 1000) / 10),
    })
}

/// For GPU tests: the device, or `None` after printing
/// `skipping <test>: <reason>`. With `WEFT_REQUIRE_GPU=1` a missing GPU
/// panics instead, so a GPU CI job cannot pass by skipping.
#[cfg(any(test, feature = "testing"))]
pub fn require_gpu_or_skip(test_name: &str) -> Option<DeviceInfo> {
    match probe() {
        Ok(info) => Some(info),
        Err(e) => {
            if std::env::var("WEFT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test_name}: WEFT_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("skipping {test_name}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics_and_explains_a_missing_gpu() {
        match probe() {
            Ok(info) => {
                assert!(info.sm_count > 0 && info.warp_size == 32, "{info:?}");
                assert!(info.arch_name().starts_with("sm_"));
            }
            Err(CudaError::NoDevice { reason, .. }) => {
                assert!(reason.contains("CPU interpreter"), "{reason}");
                if !unsafe { sys::is_culib_present() } {
                    assert!(reason.contains("libcuda.so"), "{reason}");
                }
            }
            Err(e) => panic!("unexpected probe error: {e}"),
        }
    }

    #[test]
    fn an_h200_reports_the_sm_90_target() {
        // The attributes an H200 reports (cuDeviceGetAttribute).
        let h200 = DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            compute_capability: (9, 0),
            sm_count: 132,
            max_threads_per_sm: 2048,
            max_threads_per_block: 1024,
            max_blocks_per_sm: 32,
            registers_per_sm: 65536,
            registers_per_block: 65536,
            shared_bytes_per_sm: 233_472,
            shared_bytes_per_block: 49_152,
            shared_bytes_per_block_optin: 232_448,
            warp_size: 32,
            l2_bytes: 50 * 1024 * 1024,
            total_memory_bytes: 150_000_000_000,
            memory_clock_khz: Some(3_201_000),
            memory_bus_width_bits: Some(6144),
            driver_version: (13, 0),
        };
        assert_eq!(h200.target(), Target::sm_90());
        let smaller = DeviceInfo { sm_count: 114, shared_bytes_per_block_optin: 100_000, ..h200 };
        let t = smaller.target();
        assert_eq!((t.sm_count, t.shared_bytes_per_block_optin), (114, 100_000));
        assert_eq!(t.register_alloc_unit, Target::sm_90().register_alloc_unit);
    }

    #[test]
    fn require_gpu_or_skip_agrees_with_probe() {
        if std::env::var("WEFT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            assert!(require_gpu_or_skip("require_gpu_or_skip_agrees_with_probe").is_some());
        } else {
            assert_eq!(require_gpu_or_skip("require_gpu_or_skip_agrees_with_probe").is_some(), probe().is_ok());
        }
    }
}
