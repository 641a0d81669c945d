//! A CUDA context with the few operations weft's executors need.
//!
//! [`Gpu`] wraps cudarc's `CudaContext` and its default stream; buffers are
//! untyped bytes ([`DeviceBuffer`]) because KIR element types (f16, bf16,
//! bool, ...) are already laid out as little-endian bytes on the host.
//! Modules come from PTX text, launches take a list of [`KernelArg`]s, and
//! [`Event`]s time work on a [`Stream`]. Every driver failure is a typed
//! [`CudaError`]; inputs cudarc would panic on (NUL bytes in PTX or names)
//! are rejected first.

use std::sync::Arc;

use cudarc::driver::{
    sys::{CUevent_flags, CUfunction_attribute_enum},
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};

use crate::device::{driver_present, probe_device, DeviceInfo};
use crate::CudaError;

/// A CUDA context on one device, with its default stream. Clones share the
/// context and stream (a background thread loads modules through one).
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Stream,
    info: DeviceInfo,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("info", &self.info).finish()
    }
}

/// Device memory: `len` bytes (at least one byte is allocated, since the
/// driver rejects empty allocations).
pub struct DeviceBuffer {
    slice: CudaSlice<u8>,
    len: usize,
}

impl DeviceBuffer {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's device address, for tables of pointers the device reads
    /// (a bundle's argument words). The address stays valid while `self`
    /// lives; work that reads it must be ordered on `stream` (or synchronised)
    /// before the buffer is dropped.
    pub fn device_address(&self, stream: &Stream) -> u64 {
        let (ptr, _read_recorded) = self.slice.device_ptr(&stream.inner);
        ptr
    }
}

/// A loaded PTX module.
#[derive(Clone)]
pub struct Module {
    inner: Arc<CudaModule>,
}

/// A kernel entry point of a [`Module`].
#[derive(Clone)]
pub struct Function {
    inner: CudaFunction,
    name: String,
}

impl Function {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Allows launches with up to `bytes` of dynamic shared memory. Needed
    /// above 48 KiB, which the driver refuses by default.
    pub fn set_max_dynamic_shared_bytes(&self, bytes: u32) -> Result<(), CudaError> {
        let value = i32::try_from(bytes).map_err(|_| CudaError::InvalidArgument {
            op: "cuFuncSetAttribute",
            reason: format!("{bytes} bytes of dynamic shared memory do not fit an int"),
        })?;
        self.inner
            .set_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, value)
            .map_err(CudaError::driver("cuFuncSetAttribute"))
    }
}

/// A stream of work on the device.
#[derive(Clone)]
pub struct Stream {
    inner: Arc<CudaStream>,
}

/// A point in a stream's work, for timing.
pub struct Event {
    inner: CudaEvent,
}

/// One kernel argument: a device buffer (passed as its pointer) or a scalar
/// of one of KIR's types (f16/bf16 as their bits).
#[derive(Clone, Copy)]
pub enum KernelArg<'a> {
    Buffer(&'a DeviceBuffer),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F16Bits(u16),
    BF16Bits(u16),
    Bool(bool),
}

/// Grid and block dimensions and dynamic shared memory of a launch.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared_bytes: u32,
}

impl Gpu {
    /// Destroys every allocation, module and running kernel of the device's
    /// primary context (`cuDevicePrimaryCtxReset`) and opens it afresh: how
    /// an executor recovers from a sticky error or a kernel that does not
    /// finish. Every buffer, module and event of the old context is invalid
    /// afterwards; drop them before calling.
    pub fn reset(self) -> Result<Gpu, CudaError> {
        let ordinal = self.ctx.ordinal();
        let device = self.ctx.cu_device();
        drop(self);
        // SAFETY: resetting a primary context is defined while handles to
        // it are still retained; the caller dropped every object made in it.
        let status = unsafe { cudarc::driver::sys::cuDevicePrimaryCtxReset_v2(device) };
        status.result().map_err(CudaError::driver("cuDevicePrimaryCtxReset"))?;
        Gpu::new(ordinal)
    }

    /// Opens device `ordinal` (probing first, so a missing driver is
    /// `NoDevice`, never a panic).
    pub fn new(ordinal: usize) -> Result<Gpu, CudaError> {
        let info = probe_device(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(CudaError::driver("cuDevicePrimaryCtxRetain"))?;
        let stream = Stream { inner: ctx.default_stream() };
        Ok(Gpu { ctx, stream, info })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The context's default stream, used by the convenience methods below.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// A new, independent stream.
    pub fn new_stream(&self) -> Result<Stream, CudaError> {
        Ok(Stream { inner: self.ctx.new_stream().map_err(CudaError::driver("cuStreamCreate"))? })
    }

    /// An event that can time work (`elapsed_ms`).
    pub fn new_timing_event(&self) -> Result<Event, CudaError> {
        let inner =
            self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(CudaError::driver("cuEventCreate"))?;
        Ok(Event { inner })
    }

    /// `bytes` zeroed bytes of device memory.
    pub fn alloc_zeroed(&self, bytes: usize) -> Result<DeviceBuffer, CudaError> {
        let slice = self.stream.inner.alloc_zeros::<u8>(bytes.max(1)).map_err(CudaError::driver("cuMemAlloc"))?;
        Ok(DeviceBuffer { slice, len: bytes })
    }

    /// A device copy of `bytes`.
    pub fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer, CudaError> {
        if bytes.is_empty() {
            return self.alloc_zeroed(0);
        }
        let slice = self.stream.inner.clone_htod(bytes).map_err(CudaError::driver("cuMemcpyHtoD"))?;
        Ok(DeviceBuffer { slice, len: bytes.len() })
    }

    /// Copies `bytes` into `buf`, which must have the same length.
    pub fn upload_into(&self, buf: &mut DeviceBuffer, bytes: &[u8]) -> Result<(), CudaError> {
        if bytes.len() != buf.len {
            return Err(CudaError::InvalidArgument {
                op: "upload_into",
                reason: format!("host slice has {} bytes, device buffer {}", bytes.len(), buf.len),
            });
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let mut view = buf.slice.slice_mut(..buf.len);
        self.stream.inner.memcpy_htod(bytes, &mut view).map_err(CudaError::driver("cuMemcpyHtoD"))
    }

    /// Sets every byte of `buf` to zero on the device (nothing crosses the bus).
    pub fn zero(&self, buf: &mut DeviceBuffer) -> Result<(), CudaError> {
        self.stream.inner.memset_zeros(&mut buf.slice).map_err(CudaError::driver("cuMemsetD8"))
    }

    /// Copies `buf` back into `out` (which must have the buffer's length),
    /// waiting for queued work on the default stream.
    pub fn download_into(&self, buf: &DeviceBuffer, out: &mut [u8]) -> Result<(), CudaError> {
        if out.len() != buf.len {
            return Err(CudaError::InvalidArgument {
                op: "download",
                reason: format!("host slice has {} bytes, device buffer {}", out.len(), buf.len),
            });
        }
        if buf.len == 0 {
            return Ok(());
        }
        let view = buf.slice.slice(..buf.len);
        self.stream.inner.memcpy_dtoh(&view, out).map_err(CudaError::driver("cuMemcpyDtoH"))?;
        self.stream.synchronize()
    }

    /// The bytes of `buf`.
    pub fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>, CudaError> {
        let mut out = vec![0; buf.len];
        self.download_into(buf, &mut out)?;
        Ok(out)
    }

    /// Loads PTX text (JIT-compiled by the driver for this device).
    pub fn load_module(&self, ptx: &str) -> Result<Module, CudaError> {
        let ptx = ptx.trim_end_matches('\0');
        if ptx.contains('\0') {
            return Err(CudaError::InvalidArgument { op: "load_module", reason: "PTX contains a NUL byte".into() });
        }
        let inner =
            self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(CudaError::driver("cuModuleLoadData"))?;
        Ok(Module { inner })
    }

    /// Waits for all work in the context.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.ctx.synchronize().map_err(CudaError::driver("cuCtxSynchronize"))
    }

    /// Checks `dims` against the device limits.
    pub fn check_launch(&self, dims: &LaunchDims, static_shared_bytes: u64) -> Result<(), CudaError> {
        let threads: u64 = dims.block.iter().map(|&d| d as u64).product();
        if threads == 0 || dims.grid.contains(&0) {
            return Err(CudaError::InvalidArgument { op: "launch", reason: format!("empty launch {dims:?}") });
        }
        if threads > self.info.max_threads_per_block as u64 {
            return Err(CudaError::LimitExceeded {
                what: "threads per block".into(),
                limit: self.info.max_threads_per_block as u64,
                needed: threads,
            });
        }
        let shared = static_shared_bytes + dims.dynamic_shared_bytes as u64;
        if shared > self.info.shared_bytes_per_block_optin {
            return Err(CudaError::LimitExceeded {
                what: "shared memory per block (bytes)".into(),
                limit: self.info.shared_bytes_per_block_optin,
                needed: shared,
            });
        }
        Ok(())
    }
}

impl Module {
    /// The entry point `name`.
    pub fn function(&self, name: &str) -> Result<Function, CudaError> {
        if name.contains('\0') {
            return Err(CudaError::InvalidArgument { op: "load_function", reason: "name contains a NUL byte".into() });
        }
        let inner = self.inner.load_function(name).map_err(CudaError::driver("cuModuleGetFunction"))?;
        Ok(Function { inner, name: name.to_string() })
    }
}

impl Stream {
    /// Copies `bytes` to the start of `module`'s global or `__constant__`
    /// symbol `name`, ordered on this stream: launches queued after it read
    /// them, launches queued before it still read the old contents. The
    /// host bytes may be dropped on return (the driver stages them).
    pub fn write_symbol(&self, module: &Module, name: &str, bytes: &[u8]) -> Result<(), CudaError> {
        if name.contains('\0') {
            return Err(CudaError::InvalidArgument { op: "write_symbol", reason: "name contains a NUL byte".into() });
        }
        let mut symbol = module.inner.get_global(name, &self.inner).map_err(CudaError::driver("cuModuleGetGlobal"))?;
        if bytes.len() > symbol.len() {
            return Err(CudaError::InvalidArgument {
                op: "write_symbol",
                reason: format!("{} bytes do not fit symbol `{name}` of {} bytes", bytes.len(), symbol.len()),
            });
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let mut head = symbol.slice_mut(..bytes.len());
        self.inner.memcpy_htod(bytes, &mut head).map_err(CudaError::driver("cuMemcpyHtoD"))
    }

    /// Launches `f` with `args`.
    ///
    /// # Safety
    ///
    /// `args` must match the kernel's parameter list in number, order and
    /// type, and the kernel must only access memory inside the buffers it is
    /// given; the driver cannot check either.
    pub unsafe fn launch(&self, f: &Function, dims: LaunchDims, args: &[KernelArg<'_>]) -> Result<(), CudaError> {
        let mut b = self.inner.launch_builder(&f.inner);
        for a in args {
            match a {
                KernelArg::Buffer(buf) => b.arg(&buf.slice),
                KernelArg::I32(v) => b.arg(v),
                KernelArg::U32(v) => b.arg(v),
                KernelArg::I64(v) => b.arg(v),
                KernelArg::F32(v) => b.arg(v),
                KernelArg::F16Bits(v) | KernelArg::BF16Bits(v) => b.arg(v),
                KernelArg::Bool(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (dims.grid[0], dims.grid[1], dims.grid[2]),
            block_dim: (dims.block[0], dims.block[1], dims.block[2]),
            shared_mem_bytes: dims.dynamic_shared_bytes,
        };
        // SAFETY: forwarded to the caller (see above).
        unsafe { b.launch(cfg) }.map_err(CudaError::driver("cuLaunchKernel"))?;
        Ok(())
    }

    /// Waits for the stream's work.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.inner.synchronize().map_err(CudaError::driver("cuStreamSynchronize"))
    }

    /// Records `event` at the current end of the stream.
    pub fn record(&self, event: &Event) -> Result<(), CudaError> {
        event.inner.record(&self.inner).map_err(CudaError::driver("cuEventRecord"))
    }
}

impl Event {
    /// Whether the work recorded before the event has completed, without
    /// waiting. Errors of earlier asynchronous work (a faulting kernel) are
    /// returned.
    pub fn is_complete(&self) -> Result<bool, CudaError> {
        self.inner.try_is_complete().map_err(CudaError::driver("cuEventQuery"))
    }

    /// Milliseconds from `self` to `end` (waits for both).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32, CudaError> {
        self.inner.elapsed_ms(&end.inner).map_err(CudaError::driver("cuEventElapsedTime"))
    }
}

/// True when a CUDA driver library can be loaded (no driver calls made).
pub fn driver_available() -> bool {
    driver_present().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_new_without_a_device_is_no_device_not_a_panic() {
        match Gpu::new(0) {
            Ok(gpu) => assert!(gpu.info().sm_count > 0),
            Err(e) => assert!(matches!(e, CudaError::NoDevice { .. }), "{e}"),
        }
    }

    #[test]
    fn round_trip_and_launch_on_a_gpu() {
        if crate::require_gpu_or_skip("round_trip_and_launch_on_a_gpu").is_none() {
            return;
        }
        let gpu = Gpu::new(0).unwrap();
        let data: Vec<u8> = (0..=255).collect();
        let buf = gpu.upload(&data).unwrap();
        assert_eq!(gpu.download(&buf).unwrap(), data);
        let z = gpu.alloc_zeroed(0).unwrap();
        assert!(gpu.download(&z).unwrap().is_empty());
        // A hand-written PTX kernel that stores 42 to out[0].
        let ptx = r#"
.version 7.0
.target sm_50
.address_size 64
.visible .entry put42(.param .u64 out, .param .u32 v)
{
    .reg .u64 %rd<2>;
    .reg .u32 %r<2>;
    ld.param.u64 %rd0, [out];
    ld.param.u32 %r0, [v];
    cvta.to.global.u64 %rd1, %rd0;
    st.global.u32 [%rd1], %r0;
    ret;
}
"#;
        let f = gpu.load_module(ptx).unwrap().function("put42").unwrap();
        let out = gpu.alloc_zeroed(4).unwrap();
        let (start, end) = (gpu.new_timing_event().unwrap(), gpu.new_timing_event().unwrap());
        let dims = LaunchDims { grid: [1, 1, 1], block: [1, 1, 1], dynamic_shared_bytes: 0 };
        gpu.stream().record(&start).unwrap();
        // SAFETY: put42 takes (u32*, u32) and writes out[0] only.
        unsafe { gpu.stream().launch(&f, dims, &[KernelArg::Buffer(&out), KernelArg::U32(42)]) }.unwrap();
        gpu.stream().record(&end).unwrap();
        assert!(start.elapsed_ms(&end).unwrap() >= 0.0);
        assert_eq!(gpu.download(&out).unwrap(), 42u32.to_le_bytes());
        assert!(gpu.function_missing_is_typed());
    }

    impl Gpu {
        fn function_missing_is_typed(&self) -> bool {
            let ptx = ".version 7.0\n.target sm_50\n.address_size 64\n";
            matches!(self.load_module(ptx).and_then(|m| m.function("nope")), Err(CudaError::Driver { .. }))
        }
    }
}
