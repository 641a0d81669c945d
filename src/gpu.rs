//! The GPU executor: runs a KIR kernel through codegen and the CUDA runtime.
//!
//! [`GpuExecutor`] is the second implementation of [`weft_kir::Executor`]
//! beside the CPU interpreter, so one conformance suite runs on both. It
//! probes the device, compiles for the device's own compute capability
//! (never a hard-coded `-arch`), keeps the PTX cache and loaded modules
//! between calls, and per call: checks the arguments, emits, compiles
//! (cached), uploads every buffer, launches with the kernel's logical launch
//! shape (shared arrays are static, so no dynamic shared memory), waits, and
//! downloads the buffers the kernel may write.

use std::collections::HashMap;
use std::sync::Mutex;

use weft_codegen::{emit_cuda, Arch, CompileError, Compiler, EmitError};
use weft_cuda::{CudaError, Function, Gpu, KernelArg, LaunchDims};
use weft_kir::{check_args, ArgError, ArgValue, Executor, KernelDef, ParamKind, Scalar};

/// Why a kernel could not run on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    Args(#[from] ArgError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

/// Runs KIR kernels on CUDA device 0.
pub struct GpuExecutor {
    gpu: Gpu,
    compiler: Compiler,
    /// Loaded functions by PTX cache key, so a kernel is loaded once.
    functions: Mutex<HashMap<String, Function>>,
}

impl std::fmt::Debug for GpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuExecutor").field("gpu", &self.gpu).field("compiler", &self.compiler).finish()
    }
}

impl GpuExecutor {
    /// Probes device 0 and sets up a compiler for its compute capability.
    /// Without a GPU this is `GpuError::Cuda(CudaError::NoDevice { .. })`.
    pub fn new() -> Result<Self, GpuError> {
        let gpu = Gpu::new(0)?;
        let (major, minor) = gpu.info().compute_capability;
        let compiler = Compiler::new(Arch::new(major, minor));
        Ok(GpuExecutor { gpu, compiler, functions: Mutex::new(HashMap::new()) })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    fn function(&self, kernel: &KernelDef) -> Result<Function, GpuError> {
        let source = emit_cuda(kernel)?;
        let ptx = self.compiler.compile(&source)?;
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = functions.get(&ptx.key) {
            return Ok(f.clone());
        }
        let f = self.gpu.load_module(&ptx.ptx)?.function(&ptx.name)?;
        functions.insert(ptx.key.clone(), f.clone());
        Ok(f)
    }
}

impl Executor for GpuExecutor {
    type Error = GpuError;

    fn name(&self) -> &str {
        "cuda"
    }

    fn execute(&self, kernel: &KernelDef, args: &mut [ArgValue]) -> Result<(), GpuError> {
        check_args(kernel, args)?;
        let dims = LaunchDims { grid: kernel.launch.grid, block: kernel.launch.block, dynamic_shared_bytes: 0 };
        self.gpu.check_launch(&dims, kernel.shared_bytes())?;
        let f = self.function(kernel)?;

        let buffers = args
            .iter()
            .map(|a| a.as_buffer().map(|b| self.gpu.upload(b.bytes())).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let mut launch_args: Vec<KernelArg<'_>> = Vec::with_capacity(args.len());
        for (a, dev) in args.iter().zip(&buffers) {
            launch_args.push(match (a, dev) {
                (_, Some(buf)) => KernelArg::Buffer(buf),
                (ArgValue::Scalar(s), None) => match *s {
                    Scalar::Bool(v) => KernelArg::Bool(v),
                    Scalar::I32(v) => KernelArg::I32(v),
                    Scalar::U32(v) => KernelArg::U32(v),
                    Scalar::I64(v) => KernelArg::I64(v),
                    Scalar::F32(v) => KernelArg::F32(v),
                    Scalar::F16(v) => KernelArg::F16Bits(v.to_bits()),
                    Scalar::BF16(v) => KernelArg::BF16Bits(v.to_bits()),
                },
                (ArgValue::Buffer(_), None) => {
                    return Err(
                        CudaError::InvalidArgument { op: "execute", reason: "buffer was not uploaded".into() }.into()
                    )
                }
            });
        }
        // SAFETY: check_args proved the arguments match the parameters the
        // emitted kernel declares, in order and type; the buffers have the
        // exact lengths the kernel was compiled for.
        unsafe { self.gpu.stream().launch(&f, dims, &launch_args) }?;
        self.gpu.stream().synchronize()?;

        for ((param, arg), dev) in kernel.params.values().zip(args.iter_mut()).zip(&buffers) {
            if let (ParamKind::Buffer { access, .. }, ArgValue::Buffer(host), Some(dev)) = (&param.kind, arg, dev) {
                if access.can_write() {
                    self.gpu.download_into(dev, host.bytes_mut())?;
                }
            }
        }
        Ok(())
    }
}
