//! CPU interpreter for KIR with GPU semantics.
//!
//! The interpreter is weft's second executor (DESIGN.md: "one semantics, two
//! executors"): it runs any verified KIR kernel on the CPU and is the oracle
//! for the packer's bundle == solo property and for the conformance suite.
//!
//! How it is shaped, and why:
//!
//! - **Lock-step blocks** (`block.rs`): a block executes each
//!   instruction for all its threads at once over an active lane set, which
//!   gives barriers and shuffles their exact meaning and keeps dispatch cost
//!   per instruction rather than per thread.
//! - **Lane arrays** (`lanes.rs`, `ops.rs`): a value is
//!   one `u64` of bits per thread; each instruction dispatches on its type once
//!   and loops over lanes, which is what makes the interpreter fast.
//! - **Atomic global memory** (`memory.rs`): blocks run in
//!   parallel (rayon), and buffers are slices of relaxed atomics, so
//!   concurrent blocks never race in the Rust sense; race-free kernels give
//!   deterministic results on any number of threads.
//! - **Mapped runs** (`mapped.rs`): [`Interpreter::run_mapped`] runs
//!   several kernels in one launch, each physical block running a list of
//!   (slot, logical block) pairs: how packer bundles run here, bit-identical
//!   to running each slot alone.
//! - **Errors, never panics** (`error.rs`): out-of-bounds
//!   accesses, divergent barriers and shuffles, division by zero and reads of
//!   unset variables are [`InterpError`]s naming kernel, instruction, block and
//!   thread. When several blocks fail, the lowest block id's error is reported.
//!
//! ```
//! use weft_interp::Interpreter;
//! use weft_kir::{Access, ArgValue, Axis, HostBuffer, KernelBuilder, LaunchShape, Type};
//!
//! let mut b = KernelBuilder::new("twice", LaunchShape::linear(2, 64));
//! let x = b.buffer("x", Type::F32, 128, Access::ReadWrite);
//! let i = b.global_thread_id(Axis::X);
//! let v = b.load(x, i);
//! let two = b.add(v, v);
//! b.store(x, i, two);
//! let kernel = b.finish();
//!
//! let mut args = [ArgValue::Buffer(HostBuffer::from_f32(&[1.5; 128]))];
//! let stats = Interpreter::new().threads(2).run(&kernel, &mut args).unwrap();
//! assert_eq!(args[0].as_buffer().unwrap().to_f32_vec(), vec![3.0; 128]);
//! assert_eq!(stats.blocks, 2);
//! ```

mod block;
mod error;
mod lanes;
mod mapped;
mod memory;
mod ops;
mod warp;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use weft_kir::{check_args, verifier, ArgValue, KernelDef, ParamKind, Target};

use crate::block::{run_block, BlockState, Launch};
pub use crate::error::{InterpError, MemorySpace};

/// The transcendental functions KIR's `exp`, `log`, `tanh`, `erf`, `sin`,
/// `cos` and `atan` are
/// computed with (the `libm` crate: the same bits on every host). The cpu
/// executor links these same functions into the emitted code, so the two
/// compare bit for bit; CUDA's own maths library differs from both.
pub mod maths {
    pub use libm::{atan, atanf, cos, cosf, erf, erff, exp, expf, log, logf, sin, sinf, tanh, tanhf};
}
pub use crate::mapped::MappedSlot;

/// What one run executed.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct ExecStats {
    /// Blocks executed (the logical grid's size).
    pub blocks: u64,
    /// Thread-instructions: the sum over executed instructions of their
    /// active lanes (a `for` or `if` counts once per entry).
    pub thread_insts: u64,
}

/// The CPU interpreter. Configure with the builder methods, then [`run`](Interpreter::run)
/// kernels (as an executor of bundles it is `weft_pack::InterpExecutor`).
pub struct Interpreter {
    /// Worker threads for blocks; `None` is every core (rayon's global pool).
    threads: Option<usize>,
    /// The pool for `threads > 1`, built on first use and kept.
    pool: Mutex<Option<Arc<rayon::ThreadPool>>>,
    /// The device whose limits kernels are checked against (launch shape,
    /// verification).
    target: Target,
    /// When runs must stop ([`Interpreter::set_deadline`]).
    deadline: Option<Instant>,
}

impl Default for Interpreter {
    fn default() -> Interpreter {
        Interpreter::new()
    }
}

impl Clone for Interpreter {
    fn clone(&self) -> Interpreter {
        Interpreter { threads: self.threads, pool: Mutex::new(None), target: self.target, deadline: self.deadline }
    }
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter").field("threads", &self.threads).finish()
    }
}

/// The outcome of a set of blocks: thread-instructions, and the failure of
/// the lowest failing block id among them, if any.
struct Outcome {
    thread_insts: u64,
    failure: Option<(u64, InterpError)>,
}

impl Outcome {
    fn merge(self, other: Outcome) -> Outcome {
        let failure = match (self.failure, other.failure) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        Outcome { thread_insts: self.thread_insts + other.thread_insts, failure }
    }
}

impl Interpreter {
    /// An interpreter using every core.
    pub fn new() -> Interpreter {
        Interpreter { threads: None, pool: Mutex::new(None), target: Target::sm_90(), deadline: None }
    }

    /// Checks kernels against `target`'s limits instead of sm_90's.
    pub fn with_target(self, target: Target) -> Interpreter {
        Interpreter { target, ..self }
    }

    /// The device whose limits kernels are checked against.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs blocks on `n` worker threads (`n = 1` runs on the calling thread;
    /// `0` means every core).
    pub fn threads(self, n: usize) -> Interpreter {
        Interpreter {
            threads: (n > 0).then_some(n),
            pool: Mutex::new(None),
            target: self.target,
            deadline: self.deadline,
        }
    }

    /// Stops runs that pass `deadline` (`None`: never) with
    /// [`InterpError::Hung`]: every block checks the clock before it starts
    /// and every few iterations of every loop, so even a loop that would run
    /// for ever ends soon after the deadline. A stopped run writes nothing back.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Runs `kernel` once with `args` (one per parameter, in order). Buffers the
    /// kernel may write are updated in place, only when the run succeeds.
    pub fn run(&self, kernel: &KernelDef, args: &mut [ArgValue]) -> Result<ExecStats, InterpError> {
        check_args(kernel, args)?;
        verifier::verify_for(kernel, &self.target)?;
        self.run_verified(kernel, args)
    }

    /// [`run`](Interpreter::run) after the checks. The executor's own runtime
    /// guards (launch shape, divergence, types) stay on, because they are
    /// what unit tests reach by skipping the verifier with builder-made
    /// (structurally sound) kernels.
    fn run_verified(&self, kernel: &KernelDef, args: &mut [ArgValue]) -> Result<ExecStats, InterpError> {
        check_launch(kernel, &self.target)?;

        let mut launch = Launch::new(kernel, args);
        launch.deadline = self.deadline;
        let blocks = kernel.launch.num_blocks();
        let outcome = match self.threads {
            Some(1) => run_sequential(&launch, blocks),
            Some(n) => self.pool(n)?.install(|| run_parallel(&launch, blocks)),
            None => run_parallel(&launch, blocks),
        };
        if let Some((_, err)) = outcome.failure {
            return Err(err);
        }
        for ((_, param), (arg, global)) in kernel.params.iter().zip(args.iter_mut().zip(&launch.globals)) {
            let writable = matches!(param.kind, ParamKind::Buffer { access, .. } if access.can_write());
            if let (true, ArgValue::Buffer(host), Some(global)) = (writable, arg, global) {
                global.write_back(host);
            }
        }
        Ok(ExecStats { blocks, thread_insts: outcome.thread_insts })
    }

    fn pool(&self, n: usize) -> Result<Arc<rayon::ThreadPool>, InterpError> {
        let mut slot = self.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pool) = &*slot {
            return Ok(pool.clone());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("weft-interp-{i}"))
            .build()
            .map_err(|e| InterpError::ThreadPool(Arc::new(e)))?;
        let pool = Arc::new(pool);
        *slot = Some(pool.clone());
        Ok(pool)
    }
}

/// Rejects launch shapes no GPU could run, before allocating anything.
fn check_launch(kernel: &KernelDef, target: &Target) -> Result<(), InterpError> {
    let shape = kernel.launch;
    let invalid = |reason: String| Err(InterpError::InvalidLaunch { kernel: kernel.name.clone(), reason });
    if shape.grid.contains(&0) || shape.block.contains(&0) {
        return invalid(format!("grid {:?} and block {:?} must have no zero dimension", shape.grid, shape.block));
    }
    if shape.threads_per_block() > target.max_threads_per_block as u64 {
        return invalid(format!(
            "{} threads per block exceed the limit of {}",
            shape.threads_per_block(),
            target.max_threads_per_block
        ));
    }
    Ok(())
}

/// Runs every block in order on the calling thread, stopping at the first error.
fn run_sequential(launch: &Launch, blocks: u64) -> Outcome {
    let mut state = BlockState::new(launch);
    for b in 0..blocks {
        if let Err(e) = run_block(launch, &mut state, b) {
            return Outcome { thread_insts: state.thread_insts, failure: Some((b, e)) };
        }
    }
    Outcome { thread_insts: state.thread_insts, failure: None }
}

/// Runs the blocks on the current rayon pool. Blocks above the lowest failed
/// id so far are skipped; the lowest failing block always runs (no lower one
/// can skip it), so the reported error is deterministic.
fn run_parallel(launch: &Launch, blocks: u64) -> Outcome {
    let lowest_failed = AtomicU64::new(u64::MAX);
    (0..blocks)
        .into_par_iter()
        .map_init(
            || BlockState::new(launch),
            |state, b| {
                if b > lowest_failed.load(Ordering::Relaxed) {
                    return Outcome { thread_insts: 0, failure: None };
                }
                let before = state.thread_insts;
                let result = run_block(launch, state, b);
                let thread_insts = state.thread_insts - before;
                match result {
                    Ok(()) => Outcome { thread_insts, failure: None },
                    Err(e) => {
                        lowest_failed.fetch_min(b, Ordering::Relaxed);
                        Outcome { thread_insts, failure: Some((b, e)) }
                    }
                }
            },
        )
        .reduce(|| Outcome { thread_insts: 0, failure: None }, Outcome::merge)
}
