//! Device-resident tenants and raw launches, so a benchmark times kernels,
//! not copies.
//!
//! [`GpuExecutor`](weft::gpu::GpuExecutor) uploads every buffer per call,
//! which is right for conformance and wrong for throughput. Here a tenant's
//! buffers (weights, inputs, activations) are uploaded once
//! ([`ResidentTenant`]); each launch then passes device addresses only. Every
//! pointer parameter is passed as its 64-bit address word
//! ([`KernelArg::I64`]), exactly the bits the driver would copy for a
//! `T*` parameter, which keeps cudarc's per-buffer stream bookkeeping (an
//! event wait and record per buffer once several streams exist) out of every
//! variant's launch path alike. In return, ordering across streams is this
//! module's job: callers synchronise the context between uploads and
//! launches on other streams, and keep buffers alive until their work ends.
//!
//! Kernels compile once per distinct CUDA source ([`KernelCache`]) and
//! bundles once per launch class ([`BundleCache`]), in parallel threads, both
//! through the executor's compiler and its PTX cache.

use std::collections::HashMap;
use std::sync::Arc;

use weft::codegen::bundle::SlotRow;
use weft::codegen::{bundle_shared_bytes, emit_bundle, emit_cuda, CompiledPtx, Compiler, CudaSource};
use weft::cuda::{CudaError, DeviceBuffer, Function, Gpu, KernelArg, LaunchDims, Stream};
use weft::kir::{HostBuffer, KernelDef, ParamKind};
use weft::lower::{BufferKind, Program};
use weft::pack::{Bundle, LaunchClass, PlannedBundle};

use super::BenchError;

/// Compiles `sources` in parallel (threads over the shared compiler).
pub fn compile_all(compiler: &Compiler, sources: &[CudaSource]) -> Result<Vec<Arc<CompiledPtx>>, BenchError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(sources.len().max(1));
    let chunk = sources.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<Vec<Arc<CompiledPtx>>, BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|src| Ok(compiler.compile(src)?)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(BenchError::invalid("compile", "a compile thread panicked"))))
            .collect()
    });
    let mut out = Vec::with_capacity(sources.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Standalone kernels, loaded once per distinct CUDA source.
#[derive(Default)]
pub struct KernelCache {
    by_code: HashMap<String, Function>,
}

impl KernelCache {
    /// Emits, compiles (in parallel) and loads every kernel not loaded yet.
    pub fn load(&mut self, gpu: &Gpu, compiler: &Compiler, kernels: &[&KernelDef]) -> Result<(), BenchError> {
        let mut todo: Vec<CudaSource> = Vec::new();
        for k in kernels {
            let src = emit_cuda(k)?;
            if !self.by_code.contains_key(&src.code) && !todo.iter().any(|t| t.code == src.code) {
                todo.push(src);
            }
        }
        let compiled = compile_all(compiler, &todo)?;
        for (src, ptx) in todo.into_iter().zip(compiled) {
            let f = gpu.load_module(&ptx.ptx)?.function(&ptx.name)?;
            self.by_code.insert(src.code, f);
        }
        Ok(())
    }

    /// The loaded function of `kernel` (after [`KernelCache::load`]).
    pub fn get(&self, kernel: &KernelDef) -> Result<Function, BenchError> {
        let src = emit_cuda(kernel)?;
        self.by_code
            .get(&src.code)
            .cloned()
            .ok_or_else(|| BenchError::invalid(format!("kernel `{}`", kernel.name), "was not loaded"))
    }
}

/// One launch class's loaded dispatcher.
pub struct BundleModule {
    /// The bodies it was emitted from (a hit is checked against them).
    pub bodies: Vec<Arc<KernelDef>>,
    pub function: Function,
    /// Dynamic shared memory of every launch of the class.
    pub shared_bytes: u32,
}

/// Bundle dispatchers by launch class, as `GpuExecutor` keeps them.
#[derive(Default)]
pub struct BundleCache {
    pub modules: HashMap<LaunchClass, Arc<BundleModule>>,
}

impl BundleCache {
    /// Emits, compiles (in parallel) and loads every class of `bundles` not
    /// loaded yet.
    pub fn load<'b>(
        &mut self,
        gpu: &Gpu,
        compiler: &Compiler,
        bundles: impl IntoIterator<Item = &'b Bundle>,
    ) -> Result<(), BenchError> {
        let mut todo: Vec<(&Bundle, CudaSource)> = Vec::new();
        for b in bundles {
            if self.modules.contains_key(&b.class) || todo.iter().any(|(t, _)| t.class == b.class) {
                continue;
            }
            let bodies: Vec<&KernelDef> = b.bodies.iter().map(|k| &**k).collect();
            todo.push((b, emit_bundle(&bodies, b.class.block_threads)?));
        }
        let sources: Vec<CudaSource> = todo.iter().map(|(_, s)| s.clone()).collect();
        let compiled = compile_all(compiler, &sources)?;
        let limit = gpu.info().shared_bytes_per_block_optin;
        for ((b, _), ptx) in todo.into_iter().zip(compiled) {
            let bodies: Vec<&KernelDef> = b.bodies.iter().map(|k| &**k).collect();
            let shared = bundle_shared_bytes(&bodies);
            if shared > limit {
                return Err(CudaError::LimitExceeded {
                    what: "shared memory per block of a bundle (bytes)".into(),
                    limit,
                    needed: shared,
                }
                .into());
            }
            let function = gpu.load_module(&ptx.ptx)?.function(&ptx.name)?;
            let shared_bytes = shared as u32;
            if shared_bytes > 48 * 1024 {
                function.set_max_dynamic_shared_bytes(shared_bytes)?;
            }
            let module = BundleModule { bodies: b.bodies.clone(), function, shared_bytes };
            self.modules.insert(b.class.clone(), Arc::new(module));
        }
        Ok(())
    }

    /// The module of `bundle`'s class, checked against its bodies (the
    /// compiled-cache hit of a launch).
    pub fn get(&self, bundle: &Bundle) -> Result<&Arc<BundleModule>, BenchError> {
        let m = self.modules.get(&bundle.class).ok_or_else(|| BenchError::invalid("bundle", "class not loaded"))?;
        let same = m.bodies.len() == bundle.bodies.len()
            && m.bodies.iter().zip(&bundle.bodies).all(|(x, y)| Arc::ptr_eq(x, y) || **x == **y);
        if !same {
            return Err(BenchError::invalid("bundle", "a launch class fingerprint collided with other bodies"));
        }
        Ok(m)
    }
}

/// The device slot table's rows for `bundle`, given each slot's number of
/// argument words, in the order `GpuExecutor` builds them, as bytes.
pub fn encode_table(bundle: &Bundle, arg_counts: impl IntoIterator<Item = usize>) -> Result<Vec<u8>, BenchError> {
    let mut out = Vec::with_capacity(bundle.table.entries.len() * weft::codegen::SLOT_FIELDS * 4);
    let mut offset = 0usize;
    let mut counts = arg_counts.into_iter();
    for entry in &bundle.table.entries {
        let n = counts.next().ok_or_else(|| BenchError::invalid("slot table", "fewer argument lists than slots"))?;
        let row = SlotRow {
            body: entry.body,
            first_block: entry.first_block,
            num_blocks: entry.num_blocks,
            grid: entry.grid,
            threads: entry.threads,
            arg_offset: u32::try_from(offset).unwrap_or(u32::MAX),
        };
        let bytes = row.to_le_bytes().ok_or_else(|| BenchError::invalid("slot table", format!("{row:?} overflows")))?;
        out.extend_from_slice(&bytes);
        offset += n;
    }
    Ok(out)
}

/// The launch shape of a bundle: every physical block at the class's width.
pub fn bundle_dims(bundle: &Bundle, module: &BundleModule) -> LaunchDims {
    LaunchDims {
        grid: [bundle.table.total_blocks(), 1, 1],
        block: [bundle.class.block_threads, 1, 1],
        dynamic_shared_bytes: module.shared_bytes,
    }
}

/// The launch shape of a standalone kernel.
pub fn kernel_dims(kernel: &KernelDef) -> LaunchDims {
    LaunchDims { grid: kernel.launch.grid, block: kernel.launch.block, dynamic_shared_bytes: 0 }
}

/// Launches a kernel whose parameters are all pointers, with their addresses.
///
/// # Safety
///
/// `f` must take exactly `addresses.len()` pointer parameters, each address
/// must be a live device buffer of the length the kernel was compiled for,
/// and the buffers must outlive the launch's work.
pub unsafe fn launch_pointers(
    stream: &Stream,
    f: &Function,
    dims: LaunchDims,
    addresses: &[u64],
) -> Result<(), CudaError> {
    let args: Vec<KernelArg<'_>> = addresses.iter().map(|&a| KernelArg::I64(a as i64)).collect();
    // SAFETY: forwarded to the caller.
    unsafe { stream.launch(f, dims, &args) }
}

/// Launches a bundle dispatcher `weft_bundle(slots, nslots, args)`.
///
/// # Safety
///
/// `table` must be the address of `nslots` rows made by [`encode_table`] for
/// a bundle of the module's class, `words` the address of that bundle's
/// argument words, and everything they point to must outlive the launch's
/// work. (Addresses, not buffers: taking one from a buffer records a cudarc
/// event while several streams exist, which a launch path must not pay.)
pub unsafe fn launch_bundle(
    stream: &Stream,
    module: &BundleModule,
    dims: LaunchDims,
    table: u64,
    nslots: usize,
    words: u64,
) -> Result<(), CudaError> {
    let args = [
        KernelArg::I64(table as i64),
        KernelArg::I32(i32::try_from(nslots).unwrap_or(i32::MAX)),
        KernelArg::I64(words as i64),
    ];
    // SAFETY: forwarded to the caller.
    unsafe { stream.launch(&module.function, dims, &args) }
}

/// A tenant whose every buffer lives on the device.
pub struct ResidentTenant<'p> {
    pub program: &'p Program,
    /// One per program buffer, indexed like `program.buffers`.
    pub buffers: Vec<DeviceBuffer>,
    pub addresses: Vec<u64>,
    /// The loaded function of each step.
    pub functions: Vec<Function>,
}

impl<'p> ResidentTenant<'p> {
    /// Uploads `program`'s weights and `inputs`, zeroes its activations, and
    /// looks up each step's function in `kernels` (already loaded).
    pub fn new(
        gpu: &Gpu,
        program: &'p Program,
        inputs: &[HostBuffer],
        kernels: &KernelCache,
    ) -> Result<ResidentTenant<'p>, BenchError> {
        let fail = |message: String| BenchError::Model { model: program.name.clone(), message };
        if inputs.len() != program.inputs.len() {
            return Err(fail(format!("{} inputs given, {} expected", inputs.len(), program.inputs.len())));
        }
        let mut buffers = Vec::with_capacity(program.buffers.len());
        for (id, info) in program.buffers.iter() {
            let bytes = info.len() * info.elem.size_bytes() as usize;
            let buf = match info.kind {
                BufferKind::Weight => {
                    let w = program.weights.get(&id).ok_or_else(|| fail(format!("weight {id} has no contents")))?;
                    gpu.upload(w.bytes())?
                }
                BufferKind::Input => {
                    let k = program.inputs.iter().position(|b| b.buffer == id);
                    match k {
                        Some(k) if inputs[k].bytes().len() == bytes => gpu.upload(inputs[k].bytes())?,
                        Some(k) => return Err(fail(format!("input `{}` has the wrong size", program.inputs[k].name))),
                        None => gpu.alloc_zeroed(bytes)?,
                    }
                }
                BufferKind::Activation => gpu.alloc_zeroed(bytes)?,
            };
            buffers.push(buf);
        }
        let addresses = buffers.iter().map(|b| b.device_address(gpu.stream())).collect();
        let mut functions = Vec::with_capacity(program.steps.len());
        for step in &program.steps {
            if step.kernel.params.values().any(|p| !matches!(p.kind, ParamKind::Buffer { .. }))
                || step.args.len() != step.kernel.params.len()
            {
                return Err(fail(format!("kernel `{}` has parameters that are not buffers", step.kernel.name)));
            }
            functions.push(kernels.get(&step.kernel)?);
        }
        Ok(ResidentTenant { program, buffers, addresses, functions })
    }

    /// Launches step `i` on `stream`.
    pub fn launch_step(&self, stream: &Stream, i: usize) -> Result<(), BenchError> {
        let step = &self.program.steps[i];
        let addresses: Vec<u64> = step.args.iter().map(|b| self.addresses[b.as_u32() as usize]).collect();
        // SAFETY: every parameter of a lowered kernel is a buffer (checked in
        // new), bound to the program buffer of exactly the size the kernel
        // was compiled for; the buffers live as long as `self`, and callers
        // synchronise before dropping it.
        unsafe { launch_pointers(stream, &self.functions[i], kernel_dims(&step.kernel), &addresses) }?;
        Ok(())
    }

    /// The graph outputs' current contents, in order.
    pub fn outputs(&self, gpu: &Gpu) -> Result<Vec<Vec<u8>>, BenchError> {
        gpu.synchronize()?;
        self.program.outputs.iter().map(|o| Ok(gpu.download(&self.buffers[o.buffer.as_u32() as usize])?)).collect()
    }
}

/// A planned bundle ready to launch: module, shape, and its slot table and
/// argument words uploaded once.
pub struct PreparedBundle {
    pub module: Arc<BundleModule>,
    pub dims: LaunchDims,
    pub nslots: usize,
    /// Kept alive for the addresses below.
    _table: DeviceBuffer,
    _words: DeviceBuffer,
    table_address: u64,
    words_address: u64,
}

impl PreparedBundle {
    /// Prepares `planned`, whose slot of tenant `t` binds `tenants[t.0]`'s
    /// buffers.
    pub fn new(
        gpu: &Gpu,
        cache: &BundleCache,
        planned: &PlannedBundle,
        tenants: &[ResidentTenant<'_>],
    ) -> Result<PreparedBundle, BenchError> {
        let bundle = &planned.bundle;
        let module = cache.get(bundle)?.clone();
        let table = encode_table(bundle, bundle.slots.iter().map(|s| s.args.len()))?;
        let mut words: Vec<u8> = Vec::new();
        for slot in &bundle.slots {
            let tenant = tenants
                .get(slot.tenant.0 as usize)
                .ok_or_else(|| BenchError::invalid("plan", format!("tenant {} is not resident", slot.tenant.0)))?;
            for b in &slot.args {
                words.extend_from_slice(&tenant.addresses[b.as_u32() as usize].to_le_bytes());
            }
        }
        let (table, words) = (gpu.upload(&table)?, gpu.upload(&words)?);
        Ok(PreparedBundle {
            dims: bundle_dims(bundle, &module),
            module,
            nslots: bundle.slots.len(),
            table_address: table.device_address(gpu.stream()),
            words_address: words.device_address(gpu.stream()),
            _table: table,
            _words: words,
        })
    }

    pub fn launch(&self, stream: &Stream) -> Result<(), BenchError> {
        // SAFETY: the table and words were made for this bundle by `new`,
        // from resident tenants the caller keeps alive until it synchronises.
        unsafe { launch_bundle(stream, &self.module, self.dims, self.table_address, self.nslots, self.words_address) }?;
        Ok(())
    }
}
