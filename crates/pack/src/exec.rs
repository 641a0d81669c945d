//! The executor: one interface for every machine that runs bundles.
//!
//! An [`Executor`] holds buffers and runs bundles. Buffers live in the
//! executor (on the device, for CUDA) and are named by [`Handle`]s; data
//! crosses between host and executor only through the explicit
//! [`Executor::upload`] and [`Executor::download`] calls, never as a side
//! effect of a launch (the shape of a compute server working on handles). A
//! launch takes a [`Bundle`] — slots plus slot table; a solo kernel is a
//! one-slot bundle — and one [`LaunchArg`] list per slot, and returns its
//! [`Timing`].
//!
//! Compilation is explicit too. [`Executor::prepare`] compiles (or loads
//! from cache) a bundle's module before any request needs it;
//! [`Executor::prepare_in_background`] starts that work off the calling
//! thread and [`Executor::is_prepared`] says when it is done, which is how
//! the serving loop keeps compilers off the request path (tiered: a bundle
//! whose module is not ready runs as smaller, already-prepared launches). A
//! launch of an unprepared class still works — it compiles synchronously —
//! but it is counted in [`Transfers::request_path_compiles`], so a caller can
//! prove it never happens.
//!
//! **The watchdog.** Before a launch the caller may set a bound on how long
//! it runs ([`Executor::set_launch_limit`]). A launch that runs past it is
//! stopped where the machine can stop it (the interpreter and the cpu
//! executor check the clock at loop back-edges and between blocks; CUDA
//! polls the launch's completion event and abandons the context) and fails
//! with [`ExecError::Hung`]; the executor then reports
//! [`Executor::is_faulted`] until [`Executor::recover`], so the serving
//! loop's recovery from sticky faults rebuilds it. A simulated launch whose
//! simulated time exceeds the bound is hung the same way.
//!
//! Implementations: the CPU interpreter ([`crate::InterpExecutor`], the
//! oracle, which counts every byte it is given), the simulator
//! (`weft_sim::SimGpu`, timing only: it keeps buffer sizes but no data) and
//! CUDA (`weft::gpu::GpuExecutor`).

use std::time::Duration;

use weft_codegen::ResourceReport;
use weft_kir::{ArgError, HostBuffer, Scalar, Type};

use crate::bundle::{Bundle, LaunchClass};
use crate::module::BundleFigures;

/// A buffer held by an executor. Handles are only meaningful to the
/// executor that issued them.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Handle(pub u64);

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "h{}", self.0)
    }
}

/// One argument of one slot: a buffer held by the executor or a scalar.
#[derive(Copy, Clone, PartialEq, Debug)]
pub enum LaunchArg {
    Buffer(Handle),
    Scalar(Scalar),
}

/// How long one launch took, as the executor measured it: the launch's
/// time, and each slot's where the executor can tell them apart.
#[derive(Clone, PartialEq, Debug)]
pub struct Timing {
    pub total_us: f64,
    /// Per slot, in slot order, where the executor reports it.
    pub per_slot_us: Option<Vec<f64>>,
}

impl Timing {
    /// Each slot's time, in slot order; empty where the executor does not
    /// report them.
    pub fn slots(&self) -> &[f64] {
        self.per_slot_us.as_deref().unwrap_or(&[])
    }
}

/// What has crossed between host and executor so far, and how often a
/// compiler ran where it should not.
#[derive(Copy, Clone, PartialEq, Eq, Default, Debug)]
pub struct Transfers {
    /// Bytes given to [`Executor::upload`].
    pub upload_bytes: u64,
    pub uploads: u64,
    /// Bytes returned by [`Executor::download`].
    pub download_bytes: u64,
    pub downloads: u64,
    /// Bytes of slot tables and argument words sent with launches.
    pub launch_bytes: u64,
    pub launches: u64,
    /// Launches that found their module unprepared and compiled it on the
    /// spot (on a server: on the request path).
    pub request_path_compiles: u64,
}

impl Transfers {
    /// Every byte that crossed, in either direction.
    pub fn total_bytes(&self) -> u64 {
        self.upload_bytes + self.download_bytes + self.launch_bytes
    }

    /// Adds `d`, field by field (an account of several spans).
    pub fn add(&mut self, d: &Transfers) {
        self.upload_bytes += d.upload_bytes;
        self.uploads += d.uploads;
        self.download_bytes += d.download_bytes;
        self.downloads += d.downloads;
        self.launch_bytes += d.launch_bytes;
        self.launches += d.launches;
        self.request_path_compiles += d.request_path_compiles;
    }

    /// The difference `self - earlier`, field by field.
    pub fn since(&self, earlier: &Transfers) -> Transfers {
        Transfers {
            upload_bytes: self.upload_bytes.saturating_sub(earlier.upload_bytes),
            uploads: self.uploads.saturating_sub(earlier.uploads),
            download_bytes: self.download_bytes.saturating_sub(earlier.download_bytes),
            downloads: self.downloads.saturating_sub(earlier.downloads),
            launch_bytes: self.launch_bytes.saturating_sub(earlier.launch_bytes),
            launches: self.launches.saturating_sub(earlier.launches),
            request_path_compiles: self.request_path_compiles.saturating_sub(earlier.request_path_compiles),
        }
    }
}

/// Why an executor refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{executor}: buffer {handle} does not exist (freed, or issued by another executor)")]
    UnknownBuffer { executor: String, handle: Handle },
    #[error("{executor}: buffer {handle} holds {expected} but was given {given}")]
    BufferMismatch { executor: String, handle: Handle, expected: String, given: String },
    #[error("{executor}: a buffer of {len} elements of {elem} exceeds what the executor can address")]
    TooLarge { executor: String, elem: Type, len: usize },
    /// The bundle's parts disagree (slots, table, bodies, argument lists).
    #[error("bundle cannot run: {reason}")]
    Bundle { reason: String },
    /// One slot's arguments do not fit its kernel.
    #[error("bundle slot {slot} (kernel `{kernel}`): {source}")]
    Args {
        slot: usize,
        kernel: String,
        #[source]
        source: Box<ArgError>,
    },
    /// One slot cannot run as given (table, grid, block shape).
    #[error("bundle slot {slot} (kernel `{kernel}`) cannot run: {reason}")]
    Slot { slot: usize, kernel: String, reason: String },
    /// The launch ran past the watchdog's bound ([`Executor::set_launch_limit`])
    /// and was stopped; the executor is faulted until it is recovered.
    #[error(
        "{executor}: the launch ran past the watchdog's bound of {limit_us:.0} µs (stopped after {ran_us:.0} µs) and \
         was declared hung; a kernel that can run this long needs a larger bound (the serving loop's `Watchdog`)"
    )]
    Hung { executor: String, limit_us: f64, ran_us: f64 },
    /// The machine underneath failed: the interpreter's fault, a CUDA
    /// error, a compiler error, the simulator's refusal.
    #[error("{executor}: {source}")]
    Backend {
        executor: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl ExecError {
    /// The [`ExecError::Hung`] of a launch stopped after `ran` under `limit`.
    pub fn hung(executor: &str, limit: Duration, ran: Duration) -> ExecError {
        ExecError::Hung {
            executor: executor.to_string(),
            limit_us: limit.as_secs_f64() * 1e6,
            ran_us: ran.as_secs_f64() * 1e6,
        }
    }

    /// Whether this is the watchdog's [`ExecError::Hung`].
    pub fn is_hung(&self) -> bool {
        matches!(self, ExecError::Hung { .. })
    }

    /// Wraps an error of the machine underneath.
    pub fn backend(executor: &str, source: impl std::error::Error + Send + Sync + 'static) -> ExecError {
        ExecError::Backend { executor: executor.to_string(), source: Box::new(source) }
    }
}

/// Something that holds buffers and runs bundles: the interpreter, the
/// simulator, CUDA. See the module docs.
pub trait Executor {
    /// A short name for messages (`interp`, `cuda`, `simulator`).
    fn name(&self) -> &str;

    /// A zero-filled buffer of `len` elements of `elem`.
    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError>;

    /// Releases `buf`; its handle becomes invalid.
    fn free(&mut self, buf: Handle) -> Result<(), ExecError>;

    /// Copies `data` into `buf`, which must hold the same type and length.
    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError>;

    /// Copies `buf` back to the host.
    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError>;

    /// Sets every element of `buf` to zero where it lives (nothing crosses).
    fn zero(&mut self, buf: Handle) -> Result<(), ExecError>;

    /// Compiles or loads `bundle`'s module now, so launches of its class
    /// run without a compiler, and returns ptxas's report on the compiled
    /// module where the executor has one (registers, shared memory, spills:
    /// what planning should use). Executors that compile nothing keep the
    /// default: `None` at once.
    fn prepare(&mut self, _bundle: &Bundle) -> Result<Option<ResourceReport>, ExecError> {
        Ok(None)
    }

    /// Starts preparing `bundle`'s module off the calling thread; returns
    /// at once. A failure shows up as the class never becoming prepared
    /// (and as an error of the launch that finally needs it).
    fn prepare_in_background(&mut self, _bundle: &Bundle) -> Result<(), ExecError> {
        Ok(())
    }

    /// Whether launches of `class` run without compiling (always, for
    /// executors that compile nothing).
    fn is_prepared(&self, _class: &LaunchClass) -> bool {
        true
    }

    /// Drops `class`'s prepared module, if any (its last user left); a
    /// later launch of the class prepares it again. Executors that compile
    /// nothing keep the default: nothing to drop.
    fn release(&mut self, _class: &LaunchClass) {}

    /// The figures of `class`'s prepared module (ptxas's, beside its
    /// heaviest body's), where the executor compiled it with ptxas present:
    /// what the serving loop records so planners judge joins of the class
    /// on the module it really loads ([`crate::grow`]). Executors that
    /// compile nothing, or compile without ptxas, keep the default: `None`.
    fn module_figures(&self, _class: &LaunchClass) -> Option<BundleFigures> {
        None
    }

    /// Prepared modules held now.
    fn prepared_modules(&self) -> usize {
        0
    }

    /// Whether a fault has left the executor unusable until
    /// [`Executor::recover`] (a sticky device error: on CUDA the context is
    /// lost, with every buffer and module in it). Executors that cannot
    /// fault that way keep the default.
    fn is_faulted(&self) -> bool {
        false
    }

    /// Rebuilds the executor after a fault. Afterwards it holds no buffers
    /// and no prepared modules: every handle issued before is invalid, and
    /// the caller uploads and prepares again what it still needs.
    fn recover(&mut self) -> Result<(), ExecError> {
        Ok(())
    }

    /// Bounds how long each following launch may run (`None`: unbounded).
    /// A launch that runs past the bound fails with [`ExecError::Hung`] and
    /// leaves the executor [`Executor::is_faulted`] until
    /// [`Executor::recover`] (see the module docs). Every executor must say
    /// how it enforces the bound, so there is no default.
    fn set_launch_limit(&mut self, limit: Option<Duration>);

    /// Runs `bundle` once. `args[i]` holds slot `i`'s arguments, one per
    /// parameter of its kernel; buffers a kernel writes are updated in place.
    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError>;

    /// What has crossed so far.
    fn transfers(&self) -> Transfers;
}

/// The element type and length of a buffer, for executors that keep them.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct BufferShape {
    pub elem: Type,
    pub len: usize,
}

impl BufferShape {
    /// `data`'s shape if it matches this one, else the mismatch error for `handle`.
    pub fn check(&self, executor: &str, handle: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        if data.elem() == self.elem && data.len() == self.len {
            return Ok(());
        }
        Err(ExecError::BufferMismatch {
            executor: executor.to_string(),
            handle,
            expected: format!("{} elements of {}", self.len, self.elem),
            given: format!("{} elements of {}", data.len(), data.elem()),
        })
    }
}

/// What an executor holds, by handle. Handles are indices, issued in order
/// and never reused, so finding a launch argument's buffer is an index, not
/// a hash (a launch looks up every argument of every slot).
#[derive(Debug)]
pub struct HandleMap<T> {
    slots: Vec<Option<T>>,
    live: usize,
}

impl<T> Default for HandleMap<T> {
    fn default() -> HandleMap<T> {
        HandleMap { slots: Vec::new(), live: 0 }
    }
}

impl<T> HandleMap<T> {
    /// Stores `value` under a new handle.
    pub fn insert(&mut self, value: T) -> Handle {
        self.slots.push(Some(value));
        self.live += 1;
        Handle(self.slots.len() as u64 - 1)
    }

    pub fn get(&self, h: Handle) -> Option<&T> {
        self.slots.get(usize::try_from(h.0).ok()?)?.as_ref()
    }

    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        self.slots.get_mut(usize::try_from(h.0).ok()?)?.as_mut()
    }

    /// Takes the value out; the handle becomes invalid until [`HandleMap::put_back`].
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        let v = self.slots.get_mut(usize::try_from(h.0).ok()?)?.take();
        if v.is_some() {
            self.live -= 1;
        }
        v
    }

    /// Stores `value` under `h`, a handle this map issued (after a
    /// [`HandleMap::remove`], or replacing the value). Returns whether `h`
    /// was issued here.
    pub fn put_back(&mut self, h: Handle, value: T) -> bool {
        let Some(slot) = usize::try_from(h.0).ok().and_then(|i| self.slots.get_mut(i)) else { return false };
        if slot.is_none() {
            self.live += 1;
        }
        *slot = Some(value);
        true
    }

    /// Drops every value; the handles issued stay invalid (a later insert
    /// gets a new one), so a stale handle is an error, not another buffer.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.live = 0;
    }

    /// Values held now.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

/// Hooks around another executor's compile and launch calls: fault
/// injection, recording, a deliberately slow compiler. Each hook defaults to
/// passing the call through; [`Intercepted`] runs an executor with them.
pub trait Interceptor {
    /// The name the intercepted executor reports.
    fn name(&self) -> &str;

    fn prepare(&mut self, inner: &mut dyn Executor, bundle: &Bundle) -> Result<Option<ResourceReport>, ExecError> {
        inner.prepare(bundle)
    }

    fn prepare_in_background(&mut self, inner: &mut dyn Executor, bundle: &Bundle) -> Result<(), ExecError> {
        inner.prepare_in_background(bundle)
    }

    fn is_prepared(&self, inner: &dyn Executor, class: &LaunchClass) -> bool {
        inner.is_prepared(class)
    }

    fn release(&mut self, inner: &mut dyn Executor, class: &LaunchClass) {
        inner.release(class)
    }

    fn module_figures(&self, inner: &dyn Executor, class: &LaunchClass) -> Option<BundleFigures> {
        inner.module_figures(class)
    }

    fn is_faulted(&self, inner: &dyn Executor) -> bool {
        inner.is_faulted()
    }

    fn recover(&mut self, inner: &mut dyn Executor) -> Result<(), ExecError> {
        inner.recover()
    }

    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        inner.launch(bundle, args)
    }
}

/// `inner` with `hooks` around its compile and launch calls; buffers and
/// transfers go straight to `inner`.
#[derive(Debug)]
pub struct Intercepted<E, I> {
    pub inner: E,
    pub hooks: I,
}

impl<E: Executor, I: Interceptor> Executor for Intercepted<E, I> {
    fn name(&self) -> &str {
        self.hooks.name()
    }

    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError> {
        self.inner.alloc(elem, len)
    }

    fn free(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.inner.free(buf)
    }

    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        self.inner.upload(buf, data)
    }

    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError> {
        self.inner.download(buf)
    }

    fn zero(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.inner.zero(buf)
    }

    fn prepare(&mut self, bundle: &Bundle) -> Result<Option<ResourceReport>, ExecError> {
        self.hooks.prepare(&mut self.inner, bundle)
    }

    fn set_launch_limit(&mut self, limit: Option<Duration>) {
        self.inner.set_launch_limit(limit)
    }

    fn prepare_in_background(&mut self, bundle: &Bundle) -> Result<(), ExecError> {
        self.hooks.prepare_in_background(&mut self.inner, bundle)
    }

    fn is_prepared(&self, class: &LaunchClass) -> bool {
        self.hooks.is_prepared(&self.inner, class)
    }

    fn release(&mut self, class: &LaunchClass) {
        self.hooks.release(&mut self.inner, class)
    }

    fn module_figures(&self, class: &LaunchClass) -> Option<BundleFigures> {
        self.hooks.module_figures(&self.inner, class)
    }

    fn prepared_modules(&self) -> usize {
        self.inner.prepared_modules()
    }

    fn is_faulted(&self) -> bool {
        self.hooks.is_faulted(&self.inner)
    }

    fn recover(&mut self) -> Result<(), ExecError> {
        self.hooks.recover(&mut self.inner)
    }

    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError> {
        self.hooks.launch(&mut self.inner, bundle, args)
    }

    fn transfers(&self) -> Transfers {
        self.inner.transfers()
    }
}
