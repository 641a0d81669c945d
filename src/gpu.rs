//! The CUDA executor: buffers on the device, bundles through codegen and the
//! CUDA runtime.
//!
//! [`GpuExecutor`] implements [`weft_pack::Executor`]: buffers are device
//! allocations named by handles and move only on `upload`/`download`;
//! `zero` is a device memset. It probes the device, compiles for the
//! device's own compute capability (never a hard-coded `-arch`) and keeps
//! the PTX cache.
//!
//! A bundle's module is compiled by [`weft_pack::compile_bundle`] once per
//! [`LaunchClass`] and kept loaded. [`Executor::prepare`] builds it on the
//! calling thread (a tenant's registration); [`Executor::prepare_in_background`]
//! builds it on a thread of its own (emit, NVRTC, module load, shared-memory
//! opt-in) and publishes it when done, so the serving loop never waits for a
//! compiler. A launch whose class is not ready builds it on the spot and
//! counts a request-path compile.
//!
//! Per launch only the slot table and the argument words cross
//! ([`weft_pack::encode_launch`], the same encoding every executor checks),
//! into the module's constant memory (cut into consecutive launches where
//! a launch exceeds it, `EncodedLaunch::chunks`; a module whose body has
//! more parameters than it holds takes them in global memory instead); the
//! launch is the table's blocks of the class's `block_threads`, with the
//! largest body's shared pool as dynamic shared memory, timed with CUDA
//! events.
//!
//! **Faults and the watchdog.** A launch is issued asynchronously and its
//! end event polled, with a growing sleep, until it completes or the
//! watchdog's bound ([`Executor::set_launch_limit`]) passes; then the launch
//! is declared hung ([`ExecError::Hung`]). A sticky CUDA error (an illegal
//! address, a trap, a launch failure: [`CudaError::is_sticky`]) or a hung
//! launch leaves the executor [`Executor::is_faulted`]; [`Executor::recover`]
//! drops every buffer and module and resets the device's primary context
//! (which also ends a kernel still running), so the serving loop can
//! restore its tenants on a fresh context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_codegen::bundle::{
    constant_launch_table, ARG_WORDS_SYMBOL, CONSTANT_ARG_WORDS, CONSTANT_TABLE_ROWS, SLOT_TABLE_SYMBOL,
};
use weft_codegen::{Arch, CompileError, Compiler, ResourceReport, BUNDLE_ENTRY};
use weft_cuda::{CudaError, DeviceBuffer, Function, Gpu, KernelArg, LaunchDims, Module};
use weft_kir::{HostBuffer, KernelDef, Type};
use weft_pack::{
    compile_bundle, encode_launch, BufferShape, Bundle, BundleFigures, ExecError, Executor, Handle, HandleMap,
    LaunchArg, LaunchClass, ModuleError, Timing, Transfers,
};

const NAME: &str = "cuda";

/// Why a bundle's module could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

/// A bundle module loaded for one launch class.
struct BundleModule {
    /// The bodies it was emitted from: a hit is checked against them, so a
    /// fingerprint collision can never run another body's code.
    bodies: Vec<Arc<KernelDef>>,
    module: Module,
    function: Function,
    /// The module reads each launch's slot table and argument words from
    /// its constant memory (`weft_codegen::bundle::constant_launch_table`),
    /// else through the entry's pointers.
    constant_table: bool,
    /// Dynamic shared memory of every launch (the largest body's pool).
    shared_bytes: u32,
    /// ptxas's report on the module, where ptxas ran.
    report: Option<ResourceReport>,
    /// Its figures beside its heaviest body's, where ptxas ran.
    figures: Option<BundleFigures>,
}

/// Modules by class, shared with background builders.
type Modules = Arc<Mutex<HashMap<LaunchClass, Arc<BundleModule>>>>;

/// Runs bundles on CUDA device 0; see the module docs.
pub struct GpuExecutor {
    gpu: Gpu,
    compiler: Arc<Compiler>,
    modules: Modules,
    buffers: HandleMap<(DeviceBuffer, BufferShape)>,
    transfers: Transfers,
    /// The watchdog's bound for each launch.
    limit: Option<Duration>,
    /// A sticky error or a hung launch; cleared by `recover`.
    faulted: bool,
}

impl std::fmt::Debug for GpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuExecutor").field("gpu", &self.gpu).field("compiler", &self.compiler).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cuda_err(e: impl Into<GpuError>) -> ExecError {
    ExecError::backend(NAME, e.into())
}

impl GpuExecutor {
    /// Probes device 0 and sets up a compiler for its compute capability.
    /// Without a GPU this is `CudaError::NoDevice`.
    pub fn new() -> Result<Self, CudaError> {
        GpuExecutor::on(0)
    }

    /// The executor of device `ordinal` (`CudaError::NoDevice` when the
    /// driver reports fewer devices).
    pub fn on(ordinal: usize) -> Result<Self, CudaError> {
        let gpu = Gpu::new(ordinal)?;
        let (major, minor) = gpu.info().compute_capability;
        let compiler = Arc::new(Compiler::new(Arch::new(major, minor)));
        Ok(GpuExecutor {
            gpu,
            compiler,
            modules: Arc::new(Mutex::new(HashMap::new())),
            buffers: HandleMap::default(),
            transfers: Transfers::default(),
            limit: None,
            faulted: false,
        })
    }

    /// `e` as the executor reports it, marking the executor faulted when
    /// the error is sticky (the context is lost).
    fn fail(&mut self, e: impl Into<GpuError>) -> ExecError {
        let e = e.into();
        if matches!(&e, GpuError::Cuda(c) if c.is_sticky()) {
            self.faulted = true;
        }
        cuda_err(e)
    }

    /// Waits for `end` (recorded after the launch) until the watchdog's
    /// bound passes, polling with a sleep that grows from 20 µs to 1 ms.
    fn wait_for(&mut self, end: &weft_cuda::Event, began: Instant) -> Result<(), ExecError> {
        let mut sleep = Duration::from_micros(20);
        loop {
            match end.is_complete() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(self.fail(e)),
            }
            let ran = began.elapsed();
            if let Some(limit) = self.limit.filter(|&l| ran >= l) {
                // The kernel may still be running: only a context reset ends it.
                self.faulted = true;
                return Err(ExecError::hung(NAME, limit, ran));
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(1));
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    fn module(&self, bundle: &Bundle) -> Option<Arc<BundleModule>> {
        lock(&self.modules).get(bundle.class()).filter(|m| same_bodies(&m.bodies, bundle.bodies())).cloned()
    }

    fn buffer(&self, h: Handle) -> Result<&(DeviceBuffer, BufferShape), ExecError> {
        self.buffers.get(h).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: h })
    }
}

/// Compiles (through the PTX cache, [`weft_pack::compile_bundle`]) and
/// loads `bodies`' module.
fn build_module(
    gpu: &Gpu,
    compiler: &Compiler,
    bodies: &[Arc<KernelDef>],
    class: &LaunchClass,
) -> Result<BundleModule, GpuError> {
    let compiled = compile_bundle(compiler, &gpu.info().target(), bodies, class)?;
    // Below the opt-in limit (checked by `compile_bundle`), so it fits a u32.
    let shared_bytes = u32::try_from(compiled.dynamic_shared_bytes).unwrap_or(u32::MAX);
    let module = gpu.load_module(&compiled.ptx.ptx)?;
    let function = module.function(&compiled.ptx.name)?;
    debug_assert_eq!(function.name(), BUNDLE_ENTRY);
    // The driver refuses more than the static limit of dynamic shared memory
    // unless the function opts in.
    if u64::from(shared_bytes) > gpu.info().shared_bytes_per_block {
        function.set_max_dynamic_shared_bytes(shared_bytes)?;
    }
    let kernels: Vec<&KernelDef> = bodies.iter().map(|k| &**k).collect();
    Ok(BundleModule {
        bodies: bodies.to_vec(),
        module,
        function,
        constant_table: constant_launch_table(&kernels),
        shared_bytes,
        report: compiled.ptx.report().cloned(),
        figures: compiled.figures,
    })
}

fn same_bodies(a: &[Arc<KernelDef>], b: &[Arc<KernelDef>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || **x == **y)
}

impl Executor for GpuExecutor {
    fn name(&self) -> &str {
        NAME
    }

    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError> {
        let bytes = (len as u64)
            .checked_mul(elem.size_bytes())
            .and_then(|b| usize::try_from(b).ok())
            .ok_or(ExecError::TooLarge { executor: NAME.into(), elem, len })?;
        let buf = self.gpu.alloc_zeroed(bytes).map_err(cuda_err)?;
        Ok(self.buffers.insert((buf, BufferShape { elem, len })))
    }

    fn free(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.buffers.remove(buf).map(|_| ()).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })
    }

    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        let (dev, shape) =
            self.buffers.get_mut(buf).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })?;
        shape.check(NAME, buf, data)?;
        self.gpu.upload_into(dev, data.bytes()).map_err(cuda_err)?;
        self.transfers.uploads += 1;
        self.transfers.upload_bytes += data.bytes().len() as u64;
        Ok(())
    }

    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError> {
        let (dev, shape) = self.buffer(buf)?;
        let mut host = HostBuffer::zeros(shape.elem, shape.len);
        self.gpu.download_into(dev, host.bytes_mut()).map_err(cuda_err)?;
        self.transfers.downloads += 1;
        self.transfers.download_bytes += host.bytes().len() as u64;
        Ok(host)
    }

    fn zero(&mut self, buf: Handle) -> Result<(), ExecError> {
        let (dev, _) =
            self.buffers.get_mut(buf).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })?;
        self.gpu.zero(dev).map_err(cuda_err)
    }

    fn prepare(&mut self, bundle: &Bundle) -> Result<Option<ResourceReport>, ExecError> {
        if let Some(m) = self.module(bundle) {
            return Ok(m.report.clone());
        }
        let module = build_module(&self.gpu, &self.compiler, bundle.bodies(), bundle.class()).map_err(cuda_err)?;
        let report = module.report.clone();
        lock(&self.modules).insert(bundle.class().clone(), Arc::new(module));
        Ok(report)
    }

    fn prepare_in_background(&mut self, bundle: &Bundle) -> Result<(), ExecError> {
        if self.module(bundle).is_some() {
            return Ok(());
        }
        let (gpu, compiler, modules) = (self.gpu.clone(), self.compiler.clone(), self.modules.clone());
        let (class, bodies) = (bundle.class().clone(), bundle.bodies().to_vec());
        // A failed build publishes nothing: the class stays unprepared, its
        // bundles keep running as prepared one-slot launches, and a launch
        // that does need the class builds it and reports the error itself.
        std::thread::Builder::new()
            .name("weft-prepare".into())
            .spawn(move || {
                if let Ok(m) = build_module(&gpu, &compiler, &bodies, &class) {
                    lock(&modules).insert(class, Arc::new(m));
                }
            })
            .map(|_| ())
            .map_err(|e| ExecError::backend(NAME, e))
    }

    fn is_prepared(&self, class: &LaunchClass) -> bool {
        lock(&self.modules).contains_key(class)
    }

    fn release(&mut self, class: &LaunchClass) {
        // Launches hold their module by `Arc`; it unloads when the last ends.
        lock(&self.modules).remove(class);
    }

    fn module_figures(&self, class: &LaunchClass) -> Option<BundleFigures> {
        lock(&self.modules).get(class).and_then(|m| m.figures)
    }

    fn prepared_modules(&self) -> usize {
        lock(&self.modules).len()
    }

    fn set_launch_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
    }

    fn is_faulted(&self) -> bool {
        self.faulted
    }

    /// Drops every buffer and module of the lost context and resets the
    /// device's primary context. A module a background build publishes
    /// later belongs to the old context, so publishing goes to a new table.
    fn recover(&mut self) -> Result<(), ExecError> {
        self.buffers.clear();
        self.modules = Arc::new(Mutex::new(HashMap::new()));
        let gpu = self.gpu.clone();
        // Every other handle to the context (buffers, modules) is dropped;
        // background builders still holding a clone finish into the old table.
        self.gpu = gpu.reset().map_err(cuda_err)?;
        self.faulted = false;
        Ok(())
    }

    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError> {
        let stream = self.gpu.stream().clone();
        let buffers = &self.buffers;
        let encoded = encode_launch(
            NAME,
            bundle,
            args,
            |h| buffers.get(h).map(|(_, s)| *s),
            |h| buffers.get(h).map(|(d, _)| d.device_address(&stream)).unwrap_or(0),
        )?;
        if encoded.rows.is_empty() {
            return Ok(Timing { total_us: 0.0, per_slot_us: None });
        }
        let module = match self.module(bundle) {
            Some(m) => m,
            None => {
                self.transfers.request_path_compiles += 1;
                let _report = self.prepare(bundle)?;
                self.module(bundle)
                    .ok_or_else(|| ExecError::Bundle { reason: "its module was built but is not loaded".into() })?
            }
        };
        let dims = LaunchDims {
            grid: [bundle.table().total_blocks(), 1, 1],
            block: [bundle.class().block_threads, 1, 1],
            dynamic_shared_bytes: module.shared_bytes,
        };
        self.gpu.check_launch(&dims, 0).map_err(cuda_err)?;
        // A constant-table module holds a bounded launch: a larger one runs
        // as consecutive launches of whole slots. Otherwise the table and
        // words are uploaded to buffers the entry's pointers name.
        let chunks = if module.constant_table {
            encoded.chunks(CONSTANT_TABLE_ROWS, CONSTANT_ARG_WORDS)?
        } else {
            vec![std::borrow::Cow::Borrowed(&encoded)]
        };
        // Uploaded tables and words live until the launches are done.
        let mut uploaded: Vec<DeviceBuffer> = Vec::new();
        let start = self.gpu.new_timing_event().map_err(|e| self.fail(e))?;
        let end = self.gpu.new_timing_event().map_err(|e| self.fail(e))?;
        stream.record(&start).map_err(|e| self.fail(e))?;
        let began = Instant::now();
        for chunk in &chunks {
            let (table, words) = if module.constant_table {
                stream.write_symbol(&module.module, SLOT_TABLE_SYMBOL, &chunk.table).map_err(|e| self.fail(e))?;
                stream.write_symbol(&module.module, ARG_WORDS_SYMBOL, &chunk.words).map_err(|e| self.fail(e))?;
                (0, 0)
            } else {
                let table = self.gpu.upload(&chunk.table).map_err(|e| self.fail(e))?;
                let words = self.gpu.upload(&chunk.words).map_err(|e| self.fail(e))?;
                let addresses = (table.device_address(&stream), words.device_address(&stream));
                uploaded.extend([table, words]);
                addresses
            };
            let grid = u32::try_from(chunk.blocks()).map_err(|_| ExecError::Bundle {
                reason: format!("{} physical blocks exceed a launch's grid", chunk.blocks()),
            })?;
            let dims = LaunchDims { grid: [grid, 1, 1], ..dims };
            let launch_args =
                [KernelArg::I64(table as i64), KernelArg::I32(chunk.rows.len() as i32), KernelArg::I64(words as i64)];
            // SAFETY: `weft_bundle` takes (const WeftSlot*, int, void*
            // const*). A constant-table module reads the table and words
            // from the symbols written above on this stream, never through
            // the (null) pointers; otherwise they point at the buffers
            // uploaded above, alive until the launch is done. encode_launch
            // checked the rows against the bodies the module was emitted
            // from and every word (a live device buffer of the exact type
            // and length its parameter declares, or a packed scalar), and
            // `chunks` keeps each row with its own words.
            unsafe { stream.launch(&module.function, dims, &launch_args) }.map_err(|e| self.fail(e))?;
        }
        stream.record(&end).map_err(|e| self.fail(e))?;
        if let Err(e) = self.wait_for(&end, began) {
            if self.faulted {
                // The device may still read the table and words: leak them
                // rather than free memory a running kernel uses; the
                // context reset in `recover` releases them.
                std::mem::forget(uploaded);
            }
            return Err(e);
        }
        stream.synchronize().map_err(|e| self.fail(e))?;
        let ms = start.elapsed_ms(&end).map_err(|e| self.fail(e))?;
        self.transfers.launches += chunks.len() as u64;
        self.transfers.launch_bytes += encoded.bytes();
        Ok(Timing { total_us: f64::from(ms) * 1e3, per_slot_us: None })
    }

    fn transfers(&self) -> Transfers {
        self.transfers
    }
}
