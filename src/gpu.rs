//! The GPU executor: runs KIR kernels and the packer's bundles through
//! codegen and the CUDA runtime.
//!
//! [`GpuExecutor`] is the second implementation of [`weft_kir::Executor`]
//! beside the CPU interpreter, so one conformance suite runs on both. It
//! probes the device, compiles for the device's own compute capability
//! (never a hard-coded `-arch`), keeps the PTX cache and loaded modules
//! between calls, and per call: checks the arguments, emits, compiles
//! (cached), uploads every buffer, launches with the kernel's logical launch
//! shape (shared arrays are static, so no dynamic shared memory), waits, and
//! downloads the buffers the kernel may write.
//!
//! It is also a [`weft_pack::BundleExecutor`]: a bundle's module is emitted
//! by [`weft_codegen::emit_bundle`] once per [`LaunchClass`] and kept loaded,
//! so a class seen before neither emits nor reaches NVRTC. Per launch only
//! data moves: the slot table (one `WeftSlot` row per slot, from
//! `bundle.table` plus each slot's first argument word), the argument words
//! (buffer addresses and packed scalars, see `weft_codegen::bundle`) and the
//! slots' buffers. The launch is `table.total_blocks()` blocks of the class's
//! `block_threads`, with the largest body's shared pool as dynamic shared
//! memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weft_codegen::bundle::{pack_scalar, SlotRow};
use weft_codegen::{
    bundle_shared_bytes, emit_bundle, emit_cuda, Arch, CompileError, Compiler, EmitError, BUNDLE_ENTRY,
};
use weft_cuda::{CudaError, DeviceBuffer, Function, Gpu, KernelArg, LaunchDims};
use weft_kir::{check_args, ArgError, ArgValue, Executor, KernelDef, ParamKind, Scalar};
use weft_pack::{Bundle, BundleExecutor, LaunchClass};

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
    /// A bundle whose parts disagree (slots, table, bodies, arguments).
    #[error("bundle cannot run: {reason}")]
    Bundle { reason: String },
    /// One slot of a bundle cannot run as given.
    #[error("bundle slot {slot} (kernel `{kernel}`) cannot run: {reason}")]
    Slot { slot: usize, kernel: String, reason: String },
}

/// A bundle module loaded for one launch class.
struct BundleModule {
    /// The bodies it was emitted from: a hit is checked against them, so a
    /// fingerprint collision can never run another body's code.
    bodies: Vec<Arc<KernelDef>>,
    function: Function,
    /// Dynamic shared memory of every launch (the largest body's pool).
    shared_bytes: u32,
}

/// Runs KIR kernels on CUDA device 0.
pub struct GpuExecutor {
    gpu: Gpu,
    compiler: Compiler,
    /// Loaded functions by PTX cache key, so a kernel is loaded once.
    functions: Mutex<HashMap<String, Function>>,
    /// Bundle modules by launch class, so a class is emitted and compiled once.
    bundles: Mutex<HashMap<LaunchClass, Arc<BundleModule>>>,
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
        Ok(GpuExecutor { gpu, compiler, functions: Mutex::new(HashMap::new()), bundles: Mutex::new(HashMap::new()) })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    fn function(&self, kernel: &KernelDef) -> Result<Function, GpuError> {
        self.load(&emit_cuda(kernel)?)
    }

    /// Compiles (cached) and loads (once per PTX) `source`'s entry point.
    fn load(&self, source: &weft_codegen::CudaSource) -> Result<Function, GpuError> {
        let ptx = self.compiler.compile(source)?;
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = functions.get(&ptx.key) {
            return Ok(f.clone());
        }
        let f = self.gpu.load_module(&ptx.ptx)?.function(&ptx.name)?;
        functions.insert(ptx.key.clone(), f.clone());
        Ok(f)
    }

    /// The loaded module of `bundle`'s launch class: from memory when the
    /// class ran before (with the same bodies), else emitted, compiled
    /// (through the PTX cache) and loaded.
    fn bundle_module(&self, bundle: &Bundle) -> Result<Arc<BundleModule>, GpuError> {
        if let Some(m) = lock(&self.bundles).get(&bundle.class) {
            if same_bodies(&m.bodies, &bundle.bodies) {
                return Ok(m.clone());
            }
        }
        let bodies: Vec<&KernelDef> = bundle.bodies.iter().map(|k| &**k).collect();
        let source = emit_bundle(&bodies, bundle.class.block_threads)?;
        let shared = bundle_shared_bytes(&bodies);
        let limit = self.gpu.info().shared_bytes_per_block_optin;
        if shared > limit {
            return Err(CudaError::LimitExceeded {
                what: format!("shared memory per block of a bundle of {:?} (bytes)", kernel_names(&bodies)),
                limit,
                needed: shared,
            }
            .into());
        }
        // Below the opt-in limit, so it fits a u32.
        let shared_bytes = shared as u32;
        let function = self.load(&source)?;
        // The driver refuses more than 48 KiB of dynamic shared memory unless
        // the function opts in.
        if shared > self.gpu.info().shared_bytes_per_block {
            function.set_max_dynamic_shared_bytes(shared_bytes)?;
        }
        let module = Arc::new(BundleModule { bodies: bundle.bodies.clone(), function, shared_bytes });
        lock(&self.bundles).insert(bundle.class.clone(), module.clone());
        Ok(module)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn same_bodies(a: &[Arc<KernelDef>], b: &[Arc<KernelDef>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || **x == **y)
}

fn kernel_names(bodies: &[&KernelDef]) -> Vec<String> {
    bodies.iter().map(|k| k.name.clone()).collect()
}

/// Checks that `bundle`'s slots, table, bodies and `args` agree, and returns
/// the device slot table's rows (with each slot's first argument word).
///
/// The dispatcher trusts only `body`, `first_block`, `num_blocks` and
/// `arg_offset`; grids and thread counts are compiled in from the bodies, and
/// are checked here to agree with the table.
fn slot_rows(bundle: &Bundle, args: &[Vec<ArgValue>]) -> Result<Vec<SlotRow>, GpuError> {
    let n = bundle.slots.len();
    if bundle.table.entries.len() != n || args.len() != n {
        return Err(GpuError::Bundle {
            reason: format!(
                "{n} slots, {} slot table rows and {} argument lists; they must be equal",
                bundle.table.entries.len(),
                args.len()
            ),
        });
    }
    if bundle.class.bodies.len() != bundle.bodies.len() {
        return Err(GpuError::Bundle {
            reason: format!(
                "the launch class names {} bodies but the bundle holds {}",
                bundle.class.bodies.len(),
                bundle.bodies.len()
            ),
        });
    }
    let block_threads = bundle.class.block_threads;
    let mut rows = Vec::with_capacity(n);
    let mut next_free = 0u64;
    let mut arg_offset = 0u64;
    for (s, ((slot, entry), slot_args)) in bundle.slots.iter().zip(&bundle.table.entries).zip(args).enumerate() {
        let err = |reason: String| GpuError::Slot { slot: s, kernel: slot.kernel.name.clone(), reason };
        let body = bundle.bodies.get(entry.body as usize).ok_or_else(|| {
            err(format!("the table names body {} but the bundle has {}", entry.body, bundle.bodies.len()))
        })?;
        if !(Arc::ptr_eq(body, &slot.kernel) || **body == *slot.kernel) {
            return Err(err(format!("the table names body {} (`{}`), not the slot's kernel", entry.body, body.name)));
        }
        let threads = body.launch.threads_per_block();
        if entry.grid != body.launch.grid || entry.threads as u64 != threads {
            return Err(err(format!(
                "the table says grid {:?} of {} threads, the kernel has grid {:?} of {threads}",
                entry.grid, entry.threads, body.launch.grid
            )));
        }
        if threads > block_threads as u64 {
            return Err(err(format!("{threads} threads per block exceed the bundle's {block_threads}")));
        }
        if entry.num_blocks == 0 {
            return Err(err("the slot has no physical blocks, so its kernel would never run".into()));
        }
        if (entry.first_block as u64) < next_free {
            return Err(err(format!(
                "its blocks start at {} but earlier slots use blocks up to {next_free}: table rows must be in \
                 block order and must not overlap",
                entry.first_block
            )));
        }
        next_free = entry.first_block as u64 + entry.num_blocks as u64;
        check_args(&slot.kernel, slot_args).map_err(|e| err(e.to_string()))?;
        let row = SlotRow {
            body: entry.body,
            first_block: entry.first_block,
            num_blocks: entry.num_blocks,
            grid: entry.grid,
            threads: entry.threads,
            arg_offset: u32::try_from(arg_offset).unwrap_or(u32::MAX),
        };
        if row.to_le_bytes().is_none() || next_free > i32::MAX as u64 {
            return Err(err(format!("a slot table field of {row:?} does not fit the device's int")));
        }
        rows.push(row);
        arg_offset += slot_args.len() as u64;
    }
    Ok(rows)
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

impl BundleExecutor for GpuExecutor {
    type Error = GpuError;

    fn name(&self) -> &str {
        "cuda"
    }

    fn execute_bundle(&self, bundle: &Bundle, args: &mut [Vec<ArgValue>]) -> Result<(), GpuError> {
        let rows = slot_rows(bundle, args)?;
        if rows.is_empty() {
            return Ok(());
        }
        let module = self.bundle_module(bundle)?;
        let dims = LaunchDims {
            grid: [bundle.table.total_blocks(), 1, 1],
            block: [bundle.class.block_threads, 1, 1],
            dynamic_shared_bytes: module.shared_bytes,
        };
        self.gpu.check_launch(&dims, 0)?;

        let stream = self.gpu.stream();
        let table: Vec<u8> = rows.iter().filter_map(SlotRow::to_le_bytes).flatten().collect();
        // One argument word per parameter, slot after slot: a buffer's device
        // address or a packed scalar. The buffers live until after the sync.
        let mut buffers: Vec<Vec<Option<DeviceBuffer>>> = Vec::with_capacity(args.len());
        let mut words: Vec<u8> = Vec::new();
        for slot_args in args.iter() {
            let mut slot_buffers = Vec::with_capacity(slot_args.len());
            for a in slot_args {
                let (word, dev) = match a {
                    ArgValue::Buffer(host) => {
                        let dev = self.gpu.upload(host.bytes())?;
                        (dev.device_address(stream), Some(dev))
                    }
                    ArgValue::Scalar(s) => (pack_scalar(*s), None),
                };
                words.extend_from_slice(&word.to_le_bytes());
                slot_buffers.push(dev);
            }
            buffers.push(slot_buffers);
        }
        let table_dev = self.gpu.upload(&table)?;
        let words_dev = self.gpu.upload(&words)?;
        let launch_args =
            [KernelArg::Buffer(&table_dev), KernelArg::I32(rows.len() as i32), KernelArg::Buffer(&words_dev)];
        debug_assert_eq!(module.function.name(), BUNDLE_ENTRY);
        // SAFETY: `weft_bundle` takes (const WeftSlot*, int, void* const*);
        // the table has one row per slot (checked by slot_rows against the
        // bodies the module was emitted from), and every argument word is a
        // live device buffer of the exact length its parameter declares
        // (check_args) or a scalar packed as the dispatcher decodes it.
        unsafe { stream.launch(&module.function, dims, &launch_args) }?;
        stream.synchronize()?;

        for ((slot, slot_args), slot_buffers) in bundle.slots.iter().zip(args.iter_mut()).zip(&buffers) {
            for ((param, arg), dev) in slot.kernel.params.values().zip(slot_args.iter_mut()).zip(slot_buffers) {
                if let (ParamKind::Buffer { access, .. }, ArgValue::Buffer(host), Some(dev)) = (&param.kind, arg, dev) {
                    if access.can_write() {
                        self.gpu.download_into(dev, host.bytes_mut())?;
                    }
                }
            }
        }
        Ok(())
    }
}
