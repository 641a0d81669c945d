//! [`CpuExecutor`]: bundles run as their emitted CUDA C, compiled for the host.
//!
//! A launch goes exactly the GPU's way up to the driver call: the bundle's
//! module is [`emit_bundle_with`]'s text for its launch class (in the
//! executor's [`BundleForm`]: any form `weft_pack::compile_bundle` may pick
//! for a GPU), the slot table
//! and argument words are [`encode_launch`]'s bytes, and a buffer's word is
//! its address (here: in host memory). The compiled dispatcher
//! (`weft_bundle`) then runs once per physical block, blocks spread over OS
//! threads, each block's threads as fibers scheduled by `weft_cpu.h`.
//!
//! In [`CpuMode::Checking`] every launch runs under several schedules and
//! shared-memory fill bytes (forward with 0x00, reverse with 0xff, seeded
//! random with 0x00), each from the same inputs, and the buffers the
//! launch writes must come out bit-identical: a difference is a race
//! between threads of a block that the schedules made visible, or a read of
//! shared memory nothing wrote ([`CpuError::ScheduleDependent`]).

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use weft_codegen::{bundle_shared_bytes, emit_bundle_with, BundleForm, EmitError, ResourceReport};
use weft_kir::{HostBuffer, KernelDef, ParamKind, Type};
use weft_pack::{
    encode_launch, BufferShape, Bundle, ExecError, Executor, Handle, HandleMap, LaunchArg, LaunchClass, Timing,
    Transfers,
};

use crate::compile::{Artifact, HostCompileError, HostCompiler};

const NAME: &str = "cpu";

/// The order a block's runnable threads are resumed in, every round.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Schedule {
    Forward,
    Reverse,
    /// A permutation drawn from the seed (and the block), redrawn every round.
    Random(u64),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Forward => write!(f, "forward"),
            Schedule::Reverse => write!(f, "reverse"),
            Schedule::Random(seed) => write!(f, "random (seed {seed})"),
        }
    }
}

/// One run of a launch: a schedule and the byte shared memory starts as.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Run {
    pub schedule: Schedule,
    pub shared_fill: u8,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} schedule, shared memory filled with {:#04x}", self.schedule, self.shared_fill)
    }
}

/// How the executor runs launches.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum CpuMode {
    /// One forward run per launch, shared memory zero-filled.
    Fast,
    /// Three runs per launch compared bit for bit (see the module docs).
    Checking { seed: u64 },
}

impl CpuMode {
    /// The runs one launch makes.
    pub fn runs(self) -> Vec<Run> {
        match self {
            CpuMode::Fast => vec![Run { schedule: Schedule::Forward, shared_fill: 0x00 }],
            CpuMode::Checking { seed } => vec![
                Run { schedule: Schedule::Forward, shared_fill: 0x00 },
                Run { schedule: Schedule::Reverse, shared_fill: 0xff },
                Run { schedule: Schedule::Random(seed), shared_fill: 0x00 },
            ],
        }
    }
}

/// What went wrong inside a block, as `weft_cpu.h` reports it.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// Threads wait and no barrier or shuffle can complete.
    Deadlock,
    /// A barrier reached by the wrong number of threads or warps.
    BarrierCount,
    /// A shuffle whose source lane has exited.
    ShuffleExitedLane,
    /// A shared view outside the pool or overlapping another; a shared array
    /// declared with different sizes.
    SharedView,
    /// Lanes of one warp at different shuffles.
    ShuffleDiverged,
    /// The host could not allocate a block's fibers or shared memory.
    Resource,
    /// The launch ran past the watchdog's deadline (checked at every loop
    /// back-edge and before every block).
    Hung,
}

impl FaultKind {
    fn from_status(status: i32) -> FaultKind {
        match status {
            1 => FaultKind::Deadlock,
            2 => FaultKind::BarrierCount,
            3 => FaultKind::ShuffleExitedLane,
            4 => FaultKind::SharedView,
            5 => FaultKind::ShuffleDiverged,
            7 => FaultKind::Hung,
            _ => FaultKind::Resource,
        }
    }

    /// What to look at.
    fn hint(self) -> &'static str {
        match self {
            FaultKind::Deadlock => "a barrier or shuffle is under control flow some threads skip",
            FaultKind::BarrierCount => {
                "a barrier's thread count must be whole warps that all reach it (bundle bodies narrower than the \
                 launch use named barriers over their own warps)"
            }
            FaultKind::ShuffleExitedLane => "every lane a shuffle reads must still be running",
            FaultKind::SharedView => "shared views must lie inside the pool (bundle_shared_bytes) and not overlap",
            FaultKind::ShuffleDiverged => "all lanes of a warp must reach the same shuffle",
            FaultKind::Resource => "the host ran out of memory for fibers or shared memory",
            FaultKind::Hung => {
                "a loop whose trip count is far larger than intended, or a bound too tight for this kernel"
            }
        }
    }
}

/// Why a launch failed on the CPU executor.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error(transparent)]
    Compile(#[from] HostCompileError),
    #[error("cannot load the compiled library {}: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: libloading::Error,
    },
    #[error("kernel `{kernel}` (bundle slot {slot}, physical block {block}, {run}): {kind:?}: {message}; {}", kind.hint())]
    Fault { kernel: String, slot: usize, block: u32, run: Run, kind: FaultKind, message: String },
    #[error(
        "kernel `{kernel}` writes parameter `{param}` differently under two schedules: element {index} is \
         {first_bits:#x} after the {first} run and {second_bits:#x} after the {second} run. A race between threads \
         of a block (a missing barrier) or a read of shared memory nothing wrote"
    )]
    ScheduleDependent {
        kernel: String,
        param: String,
        index: usize,
        first: Run,
        second: Run,
        first_bits: u64,
        second_bits: u64,
    },
    #[error(
        "kernel `{kernel}` ({run}) failed under the sanitizers (AddressSanitizer, UndefinedBehaviorSanitizer); \
         the report names the line of the emitted CUDA C (kept in the cache folder):\n{report}"
    )]
    Sanitizer { kernel: String, run: Run, report: String },
    #[error("cannot run the sanitized runner {}: {source}", path.display())]
    Runner {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread to run blocks: {0}")]
    Thread(#[source] std::io::Error),
}

/// `weft_cpu_run_block` in the compiled library (see `weft_cpu.h`).
type RunBlock = unsafe extern "C" fn(
    slots: *const c_void,
    nslots: i32,
    args: *const *mut c_void,
    block_threads: u32,
    pool_bytes: u64,
    physical_block: u32,
    schedule: i32,
    seed: u64,
    fill: u8,
    message: *mut c_char,
    message_len: usize,
) -> i32;

/// `weft_cpu_set_deadline`: the calling thread's deadline, ns from now (0: none).
type SetDeadline = unsafe extern "C" fn(budget_ns: u64);

/// A loaded bundle module.
struct Module {
    bodies: Vec<Arc<KernelDef>>,
    run_block: RunBlock,
    set_deadline: SetDeadline,
    pool_bytes: u64,
    /// The sanitized runner (checking mode).
    runner: Option<PathBuf>,
    // Keeps `run_block` valid; dropped last.
    _library: libloading::Library,
}

/// An edit of the emitted source before compilation (fault injection in tests).
type SourceEdit = Arc<dyn Fn(String) -> String + Send + Sync>;

/// Emits and compiles `bodies`' module for blocks of `block_threads`.
fn build_library(
    compiler: &HostCompiler,
    bodies: &[Arc<KernelDef>],
    block_threads: u32,
    form: BundleForm,
    edit: Option<&SourceEdit>,
    artifact: Artifact,
) -> Result<PathBuf, CpuError> {
    let refs: Vec<&KernelDef> = bodies.iter().map(|k| &**k).collect();
    let mut source = emit_bundle_with(&refs, block_threads, form)?;
    if let Some(edit) = edit {
        source.code = edit(source.code);
    }
    let names: Vec<&str> = refs.iter().map(|k| k.name.as_str()).collect();
    Ok(compiler.compile(&source, &names.join("`, `"), artifact)?)
}

/// `struct WeftMaths` in weft_cpu.h.
#[repr(C)]
struct Maths {
    expf: extern "C" fn(f32) -> f32,
    logf: extern "C" fn(f32) -> f32,
    tanhf: extern "C" fn(f32) -> f32,
    erff: extern "C" fn(f32) -> f32,
    sinf: extern "C" fn(f32) -> f32,
    cosf: extern "C" fn(f32) -> f32,
    atanf: extern "C" fn(f32) -> f32,
    exp: extern "C" fn(f64) -> f64,
    log: extern "C" fn(f64) -> f64,
    tanh: extern "C" fn(f64) -> f64,
    erf: extern "C" fn(f64) -> f64,
    sin: extern "C" fn(f64) -> f64,
    cos: extern "C" fn(f64) -> f64,
    atan: extern "C" fn(f64) -> f64,
}

extern "C" fn expf(x: f32) -> f32 {
    weft_interp::maths::expf(x)
}
extern "C" fn logf(x: f32) -> f32 {
    weft_interp::maths::logf(x)
}
extern "C" fn tanhf(x: f32) -> f32 {
    weft_interp::maths::tanhf(x)
}
extern "C" fn erff(x: f32) -> f32 {
    weft_interp::maths::erff(x)
}
extern "C" fn sinf(x: f32) -> f32 {
    weft_interp::maths::sinf(x)
}
extern "C" fn cosf(x: f32) -> f32 {
    weft_interp::maths::cosf(x)
}
extern "C" fn atanf(x: f32) -> f32 {
    weft_interp::maths::atanf(x)
}
extern "C" fn exp(x: f64) -> f64 {
    weft_interp::maths::exp(x)
}
extern "C" fn log(x: f64) -> f64 {
    weft_interp::maths::log(x)
}
extern "C" fn tanh(x: f64) -> f64 {
    weft_interp::maths::tanh(x)
}
extern "C" fn erf(x: f64) -> f64 {
    weft_interp::maths::erf(x)
}
extern "C" fn sin(x: f64) -> f64 {
    weft_interp::maths::sin(x)
}
extern "C" fn cos(x: f64) -> f64 {
    weft_interp::maths::cos(x)
}
extern "C" fn atan(x: f64) -> f64 {
    weft_interp::maths::atan(x)
}

fn load(path: PathBuf, bodies: &[Arc<KernelDef>]) -> Result<Module, CpuError> {
    // SAFETY: the library was compiled by `build_library` from weft_cpu.h and
    // emitted code: its initialisers only set up the C++ runtime.
    let library =
        unsafe { libloading::Library::new(&path) }.map_err(|source| CpuError::Load { path: path.clone(), source })?;
    // SAFETY: weft_cpu.h defines the symbol with exactly `RunBlock`'s signature.
    let run_block = unsafe { library.get::<RunBlock>(b"weft_cpu_run_block\0") }
        .map(|s| *s)
        .map_err(|source| CpuError::Load { path: path.clone(), source })?;
    // SAFETY: weft_cpu.h defines `void weft_cpu_set_deadline(unsigned long long)`.
    let set_deadline = unsafe { library.get::<SetDeadline>(b"weft_cpu_set_deadline\0") }
        .map(|s| *s)
        .map_err(|source| CpuError::Load { path: path.clone(), source })?;
    // SAFETY: as above, `void weft_cpu_set_maths(const WeftMaths*)`; the
    // table is copied before the call returns.
    unsafe {
        let set = library
            .get::<unsafe extern "C" fn(*const Maths)>(b"weft_cpu_set_maths\0")
            .map_err(|source| CpuError::Load { path, source })?;
        set(&Maths { expf, logf, tanhf, erff, sinf, cosf, atanf, exp, log, tanh, erf, sin, cos, atan });
    }
    let refs: Vec<&KernelDef> = bodies.iter().map(|k| &**k).collect();
    Ok(Module {
        bodies: bodies.to_vec(),
        run_block,
        set_deadline,
        pool_bytes: bundle_shared_bytes(&refs),
        runner: None,
        _library: library,
    })
}

fn same_bodies(a: &[Arc<KernelDef>], b: &[Arc<KernelDef>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || **x == **y)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A library compiled in the background for these bodies, not loaded yet.
/// The library, and the sanitized runner in checking mode.
type Built = (Vec<Arc<KernelDef>>, PathBuf, Option<PathBuf>);

/// A buffer: its bytes in 8-byte words, so every element type is aligned.
struct Buffer {
    shape: BufferShape,
    place: Place,
}

/// Where a buffer's words are.
enum Place {
    /// Its own allocation.
    Own(Vec<u64>),
    /// Words `at..at + words` of the executor's flat arena.
    Flat { at: usize, words: usize },
}

impl Buffer {
    fn byte_len(&self) -> usize {
        self.shape.len * self.shape.elem.size_bytes() as usize
    }

    /// Its words, in its own allocation or in `arena`.
    fn words<'a>(&'a self, arena: &'a [u64]) -> &'a [u64] {
        match &self.place {
            Place::Own(w) => w,
            Place::Flat { at, words } => arena.get(*at..at + words).unwrap_or_default(),
        }
    }

    fn words_mut<'a>(&'a mut self, arena: &'a mut [u64]) -> &'a mut [u64] {
        match &mut self.place {
            Place::Own(w) => w,
            Place::Flat { at, words } => arena.get_mut(*at..*at + *words).unwrap_or_default(),
        }
    }

    fn bytes<'a>(&'a self, arena: &'a [u64]) -> &'a [u8] {
        let words = self.words(arena);
        let n = self.byte_len().min(words.len() * 8);
        // SAFETY: `words` holds at least `n` initialised bytes.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), n) }
    }

    fn bytes_mut<'a>(&'a mut self, arena: &'a mut [u64]) -> &'a mut [u8] {
        let n = self.byte_len();
        let words = self.words_mut(arena);
        let n = n.min(words.len() * 8);
        // SAFETY: as in `bytes`, with unique access.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), n) }
    }
}

/// The emitted CUDA C on the host; see the module docs.
pub struct CpuExecutor {
    compiler: Arc<HostCompiler>,
    mode: CpuMode,
    /// Loaded modules by launch class.
    modules: HashMap<LaunchClass, Arc<Module>>,
    /// Libraries compiled in the background, not loaded yet.
    built: Arc<Mutex<HashMap<LaunchClass, Built>>>,
    buffers: HandleMap<Buffer>,
    transfers: Transfers,
    threads: usize,
    edit: Option<SourceEdit>,
    /// The watchdog's bound for each launch.
    limit: Option<Duration>,
    /// A launch was stopped by the watchdog; cleared by `recover`.
    hung: bool,
    /// Every buffer side by side, in allocation order ([`CpuExecutor::with_flat_arena`]).
    arena: Option<Vec<u64>>,
    /// The form modules are emitted in (its `single_pass` always comes from
    /// the launch class).
    form: BundleForm,
}

impl std::fmt::Debug for CpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuExecutor").field("mode", &self.mode).field("modules", &self.modules.len()).finish()
    }
}

impl CpuExecutor {
    /// An executor compiling with `compiler`, running launches in `mode`.
    pub fn new(compiler: HostCompiler, mode: CpuMode) -> CpuExecutor {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuExecutor {
            compiler: Arc::new(compiler),
            mode,
            modules: HashMap::new(),
            built: Arc::default(),
            buffers: HandleMap::default(),
            transfers: Transfers::default(),
            threads,
            edit: None,
            limit: None,
            hung: false,
            arena: None,
            form: BundleForm::default(),
        }
    }

    /// Allocates every buffer from one flat arena, side by side in
    /// allocation order with no padding between them (each starts on an
    /// 8-byte word, so buffers whose bytes are a multiple of 8 are exactly
    /// adjacent), as tenants' buffers share one device allocation. An
    /// out-of-bounds access of a kernel then lands in a neighbour's bytes,
    /// which is what isolation tests need to see. Freed space is not
    /// reused until [`Executor::recover`]; the arena grows as buffers are
    /// allocated (buffer addresses are taken per launch).
    pub fn with_flat_arena(mut self) -> CpuExecutor {
        self.arena = Some(Vec::new());
        self
    }

    /// Bytes of the flat arena (0 without one).
    pub fn arena_bytes(&self) -> usize {
        self.arena.as_ref().map_or(0, |a| a.len() * 8)
    }

    /// Emits every module in `form` (bodies called instead of inlined,
    /// `__launch_bounds__` with a minimum of blocks per SM): the host runs
    /// the same text a GPU would get in that form. Whether a module loops
    /// over logical blocks is not the form's choice here: a single-pass
    /// launch class gets the single-pass text, any other the loop.
    pub fn with_form(mut self, form: BundleForm) -> CpuExecutor {
        self.form = form;
        self
    }

    /// Edits every emitted module before it is compiled: tests inject
    /// faults the emitter never produces, to prove the checks catch them.
    #[cfg(feature = "testing")]
    pub fn with_source_edit(mut self, edit: impl Fn(String) -> String + Send + Sync + 'static) -> CpuExecutor {
        self.edit = Some(Arc::new(edit));
        self
    }

    /// The fast mode with the default compiler and cache.
    pub fn fast() -> CpuExecutor {
        CpuExecutor::new(HostCompiler::new(None), CpuMode::Fast)
    }

    /// The checking mode with the default compiler and cache.
    pub fn checking(seed: u64) -> CpuExecutor {
        CpuExecutor::new(HostCompiler::new(None), CpuMode::Checking { seed })
    }

    pub fn mode(&self) -> CpuMode {
        self.mode
    }

    /// The form `class`'s module is emitted in: the executor's, single-pass
    /// exactly when the class is.
    fn form_of(&self, class: &LaunchClass) -> BundleForm {
        BundleForm { single_pass: class.single_pass, ..self.form }
    }

    fn module(&mut self, bundle: &Bundle) -> Result<Option<Arc<Module>>, CpuError> {
        if let Some(m) = self.modules.get(bundle.class()).filter(|m| same_bodies(&m.bodies, bundle.bodies())) {
            return Ok(Some(m.clone()));
        }
        let built = lock(&self.built).remove(bundle.class());
        match built {
            Some((bodies, path, runner)) if same_bodies(&bodies, bundle.bodies()) => {
                let mut m = load(path, &bodies)?;
                m.runner = runner;
                let m = Arc::new(m);
                self.modules.insert(bundle.class().clone(), m.clone());
                Ok(Some(m))
            }
            _ => Ok(None),
        }
    }

    fn build(&mut self, bundle: &Bundle) -> Result<Arc<Module>, CpuError> {
        if let Some(m) = self.module(bundle)? {
            return Ok(m);
        }
        let threads = bundle.class().block_threads;
        let form = self.form_of(bundle.class());
        let path =
            build_library(&self.compiler, bundle.bodies(), threads, form, self.edit.as_ref(), Artifact::Library)?;
        let mut m = load(path, bundle.bodies())?;
        if matches!(self.mode, CpuMode::Checking { .. }) {
            m.runner = Some(build_library(
                &self.compiler,
                bundle.bodies(),
                threads,
                form,
                self.edit.as_ref(),
                Artifact::SanitizedRunner,
            )?);
        }
        let m = Arc::new(m);
        self.modules.insert(bundle.class().clone(), m.clone());
        Ok(m)
    }

    fn buffer(&self, h: Handle) -> Result<&Buffer, ExecError> {
        self.buffers.get(h).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: h })
    }

    /// A copy of `h`'s words (empty for an unknown handle).
    fn words_of(&self, h: Handle) -> Vec<u64> {
        let arena = self.arena.as_deref().unwrap_or_default();
        self.buffers.get(h).map(|b| b.words(arena).to_vec()).unwrap_or_default()
    }

    /// Runs every physical block of one launch once, blocks spread over OS threads.
    fn run_blocks(
        &self,
        module: &Module,
        bundle: &Bundle,
        table: &[i32],
        words: &[u64],
        run: Run,
        deadline: Option<Instant>,
    ) -> Result<(), CpuError> {
        let total = bundle.table().total_blocks();
        let (schedule, seed) = match run.schedule {
            Schedule::Forward => (0, 0),
            Schedule::Reverse => (1, 0),
            Schedule::Random(seed) => (2, seed),
        };
        let next = AtomicU32::new(0);
        let failed: Mutex<Option<(u32, i32, String)>> = Mutex::new(None);
        let launch = RawLaunch {
            slots: table.as_ptr().cast(),
            nslots: bundle.table().entries.len() as i32,
            args: words.as_ptr().cast(),
        };
        let block_threads = bundle.class().block_threads;
        // Borrowed whole: the closure must capture the `Sync` wrapper, not its fields.
        let launch = &launch;
        let worker = || {
            let mut message = vec![0u8; 1024];
            // The blocks this thread runs stop at the deadline (0: none).
            let budget = deadline.map_or(0, |d| {
                (d.saturating_duration_since(Instant::now()).as_nanos().min(u64::MAX as u128) as u64).max(1)
            });
            // SAFETY: weft_cpu_set_deadline only sets a thread-local.
            unsafe { (module.set_deadline)(budget) };
            loop {
                let block = next.fetch_add(1, Ordering::Relaxed);
                if block >= total || lock(&failed).is_some() {
                    return;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let mut f = lock(&failed);
                    if f.as_ref().is_none_or(|(b, _, _)| block < *b) {
                        let text = format!("the launch ran past its deadline before block {block} started");
                        *f = Some((block, HUNG_STATUS, text));
                    }
                    return;
                }
                // SAFETY: the table and words were encoded by encode_launch
                // against the bodies this module was emitted from; every
                // buffer word is the address of a live buffer of the exact
                // length its parameter declares, held by `self` for the
                // whole launch; `message` has the length passed.
                let status = unsafe {
                    (module.run_block)(
                        launch.slots,
                        launch.nslots,
                        launch.args,
                        block_threads,
                        module.pool_bytes,
                        block,
                        schedule,
                        seed,
                        run.shared_fill,
                        message.as_mut_ptr().cast(),
                        message.len(),
                    )
                };
                if status != 0 {
                    let end = message.iter().position(|&b| b == 0).unwrap_or(message.len());
                    let text = String::from_utf8_lossy(&message[..end]).to_string();
                    let mut f = lock(&failed);
                    if f.as_ref().is_none_or(|(b, _, _)| block < *b) {
                        *f = Some((block, status, text));
                    }
                    return;
                }
            }
        };
        let threads = self.threads.min(total as usize).max(1);
        std::thread::scope(|s| {
            let mut handles = Vec::with_capacity(threads);
            for _ in 1..threads {
                handles.push(std::thread::Builder::new().stack_size(1 << 20).spawn_scoped(s, worker));
            }
            worker();
            handles.into_iter().find_map(Result::err).map_or(Ok(()), |e| Err(CpuError::Thread(e)))
        })?;
        let failure = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        match failure {
            None => Ok(()),
            Some((block, status, message)) => {
                let slot = bundle.table().slot_of(block).unwrap_or(0);
                let kernel = bundle.slots().get(slot).map_or_else(String::new, |s| s.kernel.name.clone());
                Err(CpuError::Fault { kernel, slot, block, run, kind: FaultKind::from_status(status), message })
            }
        }
    }
}

impl CpuExecutor {
    /// Runs the launch once in the sanitized runner, every buffer its own
    /// allocation (see `weft_cpu.h`, "The checking mode's runner").
    #[allow(clippy::too_many_arguments)]
    fn run_sanitized(
        &self,
        runner: &std::path::Path,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
        table: &[i32],
        words: &[u64],
        run: Run,
        deadline: Option<Instant>,
    ) -> Result<(), CpuError> {
        let mut order: Vec<Handle> = Vec::new();
        let mut index: HashMap<Handle, u64> = HashMap::new();
        let mut flags = Vec::with_capacity(words.len());
        let mut file_words = Vec::with_capacity(words.len());
        for (a, &w) in args.iter().flatten().zip(words) {
            match *a {
                LaunchArg::Buffer(h) => {
                    let i = *index.entry(h).or_insert_with(|| {
                        order.push(h);
                        order.len() as u64 - 1
                    });
                    flags.push(1u8);
                    file_words.push(i);
                }
                LaunchArg::Scalar(_) => {
                    flags.push(0u8);
                    file_words.push(w);
                }
            }
        }
        let (schedule, seed) = match run.schedule {
            Schedule::Forward => (0u32, 0u64),
            Schedule::Reverse => (1, 0),
            Schedule::Random(seed) => (2, seed),
        };
        let mut file = Vec::new();
        for v in [table.len() as u32 / 8, bundle.class().block_threads, bundle.table().total_blocks(), schedule] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&self_pool(bundle).to_le_bytes());
        file.extend_from_slice(&seed.to_le_bytes());
        file.extend_from_slice(&u32::from(run.shared_fill).to_le_bytes());
        file.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for v in table {
            file.extend_from_slice(&v.to_le_bytes());
        }
        for w in &file_words {
            file.extend_from_slice(&w.to_le_bytes());
        }
        file.extend_from_slice(&flags);
        file.extend_from_slice(&(order.len() as u32).to_le_bytes());
        for h in &order {
            let arena = self.arena.as_deref().unwrap_or_default();
            let bytes = self.buffers.get(*h).map(|b| b.bytes(arena)).unwrap_or_default();
            file.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            file.extend_from_slice(bytes);
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let stem = std::env::temp_dir().join(format!(
            "weft-cpu-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let (launch, out) = (stem.with_extension("launch"), stem.with_extension("out"));
        let io = |source| CpuError::Runner { path: runner.to_path_buf(), source };
        if let Err(e) = std::fs::write(&launch, &file) {
            // A failed write (a full disk) may leave part of the file behind.
            let _ = std::fs::remove_file(&launch);
            return Err(io(e));
        }
        let budget = deadline.map_or(0, |d| {
            (d.saturating_duration_since(Instant::now()).as_nanos().min(u64::MAX as u128) as u64).max(1)
        });
        let result = std::process::Command::new(runner)
            .arg(&launch)
            .arg(&out)
            .env("WEFT_DEADLINE_NS", budget.to_string())
            .env("ASAN_OPTIONS", "detect_leaks=0")
            .env("UBSAN_OPTIONS", "print_stacktrace=1")
            .output();
        let _ = std::fs::remove_file(&launch);
        let _ = std::fs::remove_file(&out);
        let output = result.map_err(io)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let body_kernel = |text: &str| {
            let at = text.find("weft_body")? + "weft_body".len();
            let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
            bundle.bodies().get(digits.parse::<usize>().ok()?).map(|k| k.name.clone())
        };
        let all = || bundle.bodies().iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join("`, `");
        if let Some(line) = stderr.lines().find(|l| l.starts_with("weft_cpu_fault ")) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.trim_end_matches(':').parse::<u32>().ok())
            };
            let block = field("block=").unwrap_or(0);
            let status = field("status=").unwrap_or(6) as i32;
            let message = line.split_once(": ").map_or(line, |(_, m)| m).to_string();
            let slot = bundle.table().slot_of(block).unwrap_or(0);
            let kernel = bundle.slots().get(slot).map_or_else(all, |s| s.kernel.name.clone());
            return Err(CpuError::Fault { kernel, slot, block, run, kind: FaultKind::from_status(status), message });
        }
        let report: String =
            stderr.lines().filter(|l| !l.contains("swapcontext")).take(40).collect::<Vec<_>>().join("\n");
        Err(CpuError::Sanitizer { kernel: body_kernel(&stderr).unwrap_or_else(all), run, report })
    }
}

/// `WEFT_HUNG` in weft_cpu.h.
const HUNG_STATUS: i32 = 7;

fn self_pool(bundle: &Bundle) -> u64 {
    let refs: Vec<&KernelDef> = bundle.bodies().iter().map(|k| &**k).collect();
    bundle_shared_bytes(&refs)
}

/// The launch's pointers, shared by the threads running its blocks.
struct RawLaunch {
    slots: *const c_void,
    nslots: i32,
    args: *const *mut c_void,
}

// SAFETY: the pointers name the launch's table and words, which outlive the
// scoped threads and are only read.
unsafe impl Sync for RawLaunch {}

fn cpu_err(e: CpuError) -> ExecError {
    ExecError::backend(NAME, e)
}

impl CpuExecutor {
    /// A launch's failure as the executor reports it: a block stopped by the
    /// watchdog makes the launch [`ExecError::Hung`] and the executor faulted.
    fn fault(&mut self, e: CpuError, began: Instant) -> ExecError {
        if matches!(e, CpuError::Fault { kind: FaultKind::Hung, .. }) {
            self.hung = true;
            return ExecError::hung(NAME, self.limit.unwrap_or_default(), began.elapsed());
        }
        cpu_err(e)
    }
}

impl Executor for CpuExecutor {
    fn name(&self) -> &str {
        NAME
    }

    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError> {
        let words = (len as u64)
            .checked_mul(elem.size_bytes())
            .filter(|&b| b <= isize::MAX as u64)
            .map(|b| b.div_ceil(8) as usize)
            .ok_or(ExecError::TooLarge { executor: NAME.into(), elem, len })?;
        let words = words.max(1);
        let place = match &mut self.arena {
            None => Place::Own(vec![0; words]),
            Some(arena) => {
                let at = arena.len();
                arena.try_reserve(words).map_err(|_| ExecError::TooLarge { executor: NAME.into(), elem, len })?;
                arena.resize(at + words, 0);
                Place::Flat { at, words }
            }
        };
        Ok(self.buffers.insert(Buffer { shape: BufferShape { elem, len }, place }))
    }

    fn free(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.buffers.remove(buf).map(|_| ()).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })
    }

    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        let b = self.buffers.get_mut(buf).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })?;
        b.shape.check(NAME, buf, data)?;
        b.bytes_mut(self.arena.as_deref_mut().unwrap_or_default()).copy_from_slice(data.bytes());
        self.transfers.uploads += 1;
        self.transfers.upload_bytes += data.bytes().len() as u64;
        Ok(())
    }

    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError> {
        let b = self.buffer(buf)?;
        let mut host = HostBuffer::zeros(b.shape.elem, b.shape.len);
        host.bytes_mut().copy_from_slice(b.bytes(self.arena.as_deref().unwrap_or_default()));
        self.transfers.downloads += 1;
        self.transfers.download_bytes += host.bytes().len() as u64;
        Ok(host)
    }

    fn zero(&mut self, buf: Handle) -> Result<(), ExecError> {
        let b = self.buffers.get_mut(buf).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })?;
        b.words_mut(self.arena.as_deref_mut().unwrap_or_default()).fill(0);
        Ok(())
    }

    fn prepare(&mut self, bundle: &Bundle) -> Result<Option<ResourceReport>, ExecError> {
        self.build(bundle).map_err(cpu_err)?;
        Ok(None)
    }

    fn prepare_in_background(&mut self, bundle: &Bundle) -> Result<(), ExecError> {
        if self.is_prepared(bundle.class()) {
            return Ok(());
        }
        let form = self.form_of(bundle.class());
        let (compiler, built, edit) = (self.compiler.clone(), self.built.clone(), self.edit.clone());
        let checking = matches!(self.mode, CpuMode::Checking { .. });
        let (class, bodies) = (bundle.class().clone(), bundle.bodies().to_vec());
        // A failed build publishes nothing; the launch that needs the class
        // builds it and reports the error itself.
        std::thread::Builder::new()
            .name("weft-cpu-prepare".into())
            .spawn(move || {
                let threads = class.block_threads;
                let Ok(path) = build_library(&compiler, &bodies, threads, form, edit.as_ref(), Artifact::Library)
                else {
                    return;
                };
                let runner = if checking {
                    match build_library(&compiler, &bodies, threads, form, edit.as_ref(), Artifact::SanitizedRunner) {
                        Ok(r) => Some(r),
                        Err(_) => return,
                    }
                } else {
                    None
                };
                lock(&built).insert(class, (bodies, path, runner));
            })
            .map(|_| ())
            .map_err(|e| ExecError::backend(NAME, e))
    }

    fn is_prepared(&self, class: &LaunchClass) -> bool {
        self.modules.contains_key(class) || lock(&self.built).contains_key(class)
    }

    fn set_launch_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
    }

    fn is_faulted(&self) -> bool {
        self.hung
    }

    /// After a launch the watchdog stopped: drops every buffer and loaded
    /// module, as a rebuilt device would hold none (the stopped blocks'
    /// fibers were abandoned; nothing of theirs is left running).
    fn recover(&mut self) -> Result<(), ExecError> {
        self.buffers.clear();
        if let Some(arena) = &mut self.arena {
            arena.clear();
        }
        self.modules.clear();
        self.hung = false;
        Ok(())
    }

    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError> {
        // Addresses first, from unique borrows: the compiled code writes through them.
        let mut addresses: HashMap<Handle, u64> = HashMap::new();
        for a in args.iter().flatten() {
            if let LaunchArg::Buffer(h) = *a {
                if let Some(b) = self.buffers.get_mut(h) {
                    addresses.insert(h, b.words_mut(self.arena.as_deref_mut().unwrap_or_default()).as_mut_ptr() as u64);
                }
            }
        }
        let buffers = &self.buffers;
        let encoded = encode_launch(
            NAME,
            bundle,
            args,
            |h| buffers.get(h).map(|b| b.shape),
            |h| addresses.get(&h).copied().unwrap_or(0),
        )?;
        if encoded.rows.is_empty() {
            return Ok(Timing { total_us: 0.0, per_slot_us: None });
        }
        let module = match self.module(bundle).map_err(cpu_err)? {
            Some(m) => m,
            None => {
                self.transfers.request_path_compiles += 1;
                self.build(bundle).map_err(cpu_err)?
            }
        };
        let table: Vec<i32> =
            encoded.table.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let words: Vec<u64> =
            encoded.words.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();

        // The buffers the launch writes, named by their first writer.
        let mut written: Vec<(Handle, usize, String)> = Vec::new();
        let mut seen = HashSet::new();
        for (s, (slot, slot_args)) in bundle.slots().iter().zip(args).enumerate() {
            for (param, a) in slot.kernel.params.values().zip(slot_args) {
                if let (ParamKind::Buffer { access, .. }, LaunchArg::Buffer(h)) = (&param.kind, a) {
                    if access.can_write() && seen.insert(*h) {
                        written.push((*h, s, param.name.clone()));
                    }
                }
            }
        }
        let runs = self.mode.runs();
        let began = Instant::now();
        let deadline = self.limit.and_then(|l| began.checked_add(l));
        let inputs: Vec<Vec<u64>> =
            if runs.len() > 1 { written.iter().map(|(h, _, _)| self.words_of(*h)).collect() } else { Vec::new() };
        if let Some(runner) = &module.runner {
            // Before the schedule runs, so it starts from the launch's inputs;
            // its outputs are not kept (the host libm computes them).
            let run = Run { schedule: Schedule::Reverse, shared_fill: 0xff };
            self.run_sanitized(runner, bundle, args, &table, &words, run, deadline)
                .map_err(|e| self.fault(e, began))?;
        }
        let mut first: Option<(Run, Vec<Vec<u64>>)> = None;
        for (i, &run) in runs.iter().enumerate() {
            if i > 0 {
                for ((h, _, _), input) in written.iter().zip(&inputs) {
                    if let Some(b) = self.buffers.get_mut(*h) {
                        b.words_mut(self.arena.as_deref_mut().unwrap_or_default()).copy_from_slice(input);
                    }
                }
            }
            self.run_blocks(&module, bundle, &table, &words, run, deadline).map_err(|e| self.fault(e, began))?;
            if runs.len() == 1 {
                break;
            }
            let outputs: Vec<Vec<u64>> = written.iter().map(|(h, _, _)| self.words_of(*h)).collect();
            match &first {
                None => first = Some((run, outputs)),
                Some((first_run, expected)) => {
                    for (((h, s, param), a), b) in written.iter().zip(expected).zip(&outputs) {
                        if a == b {
                            continue;
                        }
                        let elem = self.buffers.get(*h).map_or(Type::U32, |b| b.shape.elem);
                        let size = elem.size_bytes() as usize;
                        let (ab, bb) = (words_bytes(a), words_bytes(b));
                        let index = ab.iter().zip(&bb).position(|(x, y)| x != y).unwrap_or(0) / size;
                        let read = |v: &[u8]| {
                            let mut w = [0u8; 8];
                            w[..size].copy_from_slice(&v[index * size..index * size + size]);
                            u64::from_le_bytes(w)
                        };
                        return Err(cpu_err(CpuError::ScheduleDependent {
                            kernel: bundle.slots()[*s].kernel.name.clone(),
                            param: param.clone(),
                            index,
                            first: *first_run,
                            second: run,
                            first_bits: read(&ab),
                            second_bits: read(&bb),
                        }));
                    }
                }
            }
        }
        let elapsed_us = began.elapsed().as_secs_f64() * 1e6;
        self.transfers.launches += 1;
        self.transfers.launch_bytes += encoded.bytes();
        Ok(Timing { total_us: elapsed_us, per_slot_us: None })
    }

    fn transfers(&self) -> Transfers {
        self.transfers
    }
}

fn words_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}
