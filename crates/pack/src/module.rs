//! A bundle's module as a GPU loads it: the emitted CUDA C, its PTX, and
//! what ptxas says the module asks of an SM.
//!
//! [`compile_bundle`] is the one way a bundle becomes PTX: the CUDA executor
//! loads what it returns, and `weft pack --out` writes it out with its
//! figures ([`BundleFigures`]), so what a user inspects is what runs.
//!
//! A bundle compiles every body into one function, so the module's
//! registers are at least its hungriest body's and may be more (the
//! dispatcher keeps more state live than any body alone). [`BundleFigures`]
//! sets the module's own figures beside the heaviest body's compiled alone,
//! which is the occupancy the packer plans with when it takes the most of
//! its members' resources.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use weft_codegen::{
    bundle_shared_bytes, emit_bundle_with, emit_cuda, BundleForm, CompileError, CompiledPtx, Compiler, CudaSource,
    EmitError,
};
use weft_kir::{KernelDef, Target};

use crate::bundle::{Bundle, LaunchClass};
use crate::occupancy::{allocated_registers, KernelResources, Occupancy, ResourceTable};
use crate::shape::ResourceModel;

/// Why a bundle's module could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("emitting the bundle of {bodies}: {source}")]
    Emit {
        bodies: String,
        #[source]
        source: EmitError,
    },
    #[error("compiling the bundle of {bodies}: {source}")]
    Compile {
        bodies: String,
        #[source]
        source: CompileError,
    },
    /// The shared-memory pool of the module exceeds what one block may use.
    #[error(
        "the bundle of {bodies} needs {needed} bytes of shared memory per block, above the device's limit of \
         {limit}: bundle these kernels separately"
    )]
    SharedMemory { bodies: String, needed: u64, limit: u64 },
}

/// A bundle's compiled module.
#[derive(Clone, Debug)]
pub struct CompiledBundle {
    pub source: CudaSource,
    /// The PTX, with ptxas's report where ptxas is installed.
    pub ptx: Arc<CompiledPtx>,
    /// Threads per physical block the module was emitted for.
    pub block_threads: u32,
    /// Dynamic shared memory a launch asks for: the largest body's pool.
    pub dynamic_shared_bytes: u64,
    /// The form chosen ([`compile_bundle`]).
    pub form: BundleForm,
    /// The module's figures beside its heaviest body's, where ptxas ran.
    pub figures: Option<BundleFigures>,
}

impl CompiledBundle {
    /// What one block of the module asks of an SM, on ptxas's figures
    /// (`None` where ptxas did not run): the module's registers, spills and
    /// static shared memory, plus the dynamic pool.
    pub fn resources(&self) -> Option<KernelResources> {
        self.ptx.report().map(|r| KernelResources::of_module(r, self.block_threads, self.dynamic_shared_bytes))
    }
}

fn names(bodies: &[Arc<KernelDef>]) -> String {
    let names: Vec<&str> = bodies.iter().map(|k| k.name.as_str()).collect();
    format!("[{}]", names.join(", "))
}

/// Emits and compiles (through the compiler's PTX cache, with ptxas's
/// report where ptxas is installed) the module of `bodies` for launches of
/// `class` (its block size; a single-pass class gets a module without the
/// loop over logical blocks, [`BundleForm::single_pass`]), refusing a shared-memory pool above
/// `target`'s per-block limit before anything is compiled.
///
/// Where ptxas reports, the module keeps its bodies' occupancy if any form
/// can: each body is compiled alone (through the same cache) for the
/// heaviest body's figures, and when the default form (bodies inlined)
/// costs blocks per SM, registers beyond 1.1x the heaviest body's
/// (as allocated) or spills, the other forms are tried — ptxas held to the
/// heaviest body's allocated registers (`__maxnreg__`), bodies called
/// instead of inlined, ptxas held to the bodies' blocks per SM, and for a
/// single-pass class the looping dispatcher too — until one keeps the
/// occupancy, and the best is kept: no spills first, then the most blocks
/// per SM, then the fewest registers.
pub fn compile_bundle(
    compiler: &Compiler,
    target: &Target,
    bodies: &[Arc<KernelDef>],
    class: &LaunchClass,
) -> Result<CompiledBundle, ModuleError> {
    compile_bundle_with(compiler, target, bodies, class, FormChoice::Best)
}

/// Which forms [`compile_bundle_with`] may choose from.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum FormChoice {
    /// The default form only (bodies inlined, no minimum blocks): one
    /// compile per module, whatever its occupancy.
    Default,
    /// The best form ([`compile_bundle`]).
    Best,
}

/// [`compile_bundle`], choosing among `choice`'s forms (the figures are
/// computed either way where ptxas reports).
pub fn compile_bundle_with(
    compiler: &Compiler,
    target: &Target,
    bodies: &[Arc<KernelDef>],
    class: &LaunchClass,
    choice: FormChoice,
) -> Result<CompiledBundle, ModuleError> {
    let block_threads = class.block_threads;
    let single_pass = class.single_pass;
    let refs: Vec<&KernelDef> = bodies.iter().map(|k| &**k).collect();
    let dynamic_shared_bytes = bundle_shared_bytes(&refs);
    if dynamic_shared_bytes > target.shared_bytes_per_block_optin {
        return Err(ModuleError::SharedMemory {
            bodies: names(bodies),
            needed: dynamic_shared_bytes,
            limit: target.shared_bytes_per_block_optin,
        });
    }
    let build = |form: BundleForm| -> Result<CompiledBundle, ModuleError> {
        let source = emit_bundle_with(&refs, block_threads, form)
            .map_err(|source| ModuleError::Emit { bodies: names(bodies), source })?;
        // Measured where ptxas is present; the PTX alone otherwise.
        let ptx = compiler
            .compile_measured(&source)
            .or_else(|_| compiler.compile(&source))
            .map_err(|source| ModuleError::Compile { bodies: names(bodies), source })?;
        Ok(CompiledBundle { source, ptx, block_threads, dynamic_shared_bytes, form, figures: None })
    };
    let mut best = build(BundleForm { single_pass, ..BundleForm::default() })?;
    let Some(max_body) = bodies_alone(compiler, bodies, block_threads) else {
        return Ok(best);
    };
    let figures = |c: &CompiledBundle| c.resources().map(|module| BundleFigures::new(module, max_body, target));
    let Some(first) = figures(&best) else {
        return Ok(best);
    };
    best.figures = Some(first);
    if choice == FormChoice::Default || first.keeps_occupancy(target) {
        return Ok(best);
    }
    let min_blocks = Some(first.max_body_occupancy.blocks_per_sm.max(1));
    // ptxas held to the registers the heaviest body is allocated alone:
    // the module then takes no more room per thread than that body, so it
    // keeps the body's occupancy unless it spills (a spilling form never
    // beats one that does not).
    let cap = Some(allocated_registers(first.max_body.registers, target).min(target.max_registers_per_thread));
    // A single-pass class may also run the looping dispatcher (it serves any
    // table): ptxas sometimes allocates that one better.
    let passes: &[bool] = if single_pass { &[true, false] } else { &[false] };
    let forms = passes.iter().flat_map(|&single_pass| {
        [
            BundleForm { inline_bodies: true, min_blocks_per_sm: None, max_registers: cap, single_pass },
            BundleForm { inline_bodies: false, min_blocks_per_sm: None, max_registers: cap, single_pass },
            BundleForm { inline_bodies: true, min_blocks_per_sm: None, max_registers: None, single_pass },
            BundleForm { inline_bodies: false, min_blocks_per_sm: None, max_registers: None, single_pass },
            BundleForm { inline_bodies: true, min_blocks_per_sm: min_blocks, max_registers: None, single_pass },
            BundleForm { inline_bodies: false, min_blocks_per_sm: min_blocks, max_registers: None, single_pass },
        ]
    });
    let tried = best.form;
    for form in forms.filter(|f| *f != tried) {
        // A form that does not compile is not a candidate.
        let Ok(mut candidate) = build(form) else { continue };
        let Some(f) = figures(&candidate) else { continue };
        candidate.figures = Some(f);
        if f.better_than(best.figures.as_ref().unwrap_or(&first)) {
            best = candidate;
            if f.keeps_occupancy(target) {
                break;
            }
        }
    }
    Ok(best)
}

/// The most of `bodies`' resources, each compiled alone (through the
/// compiler's cache), at `block_threads`; `None` where one has no report.
fn bodies_alone(compiler: &Compiler, bodies: &[Arc<KernelDef>], block_threads: u32) -> Option<KernelResources> {
    bodies
        .iter()
        .map(|k| {
            let compiled = compiler.compile_measured(&emit_cuda(k).ok()?).ok()?;
            let alone = KernelResources::of(k, Some(compiled.report()?));
            Some(KernelResources { threads: block_threads, ..alone })
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .reduce(KernelResources::max)
}

/// A compiled bundle's figures beside its heaviest body's.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct BundleFigures {
    /// The module's (ptxas's).
    pub module: KernelResources,
    pub module_occupancy: Occupancy,
    /// The most of every body's resources compiled alone, at the bundle's
    /// block size: what the packer plans the bundle with.
    pub max_body: KernelResources,
    pub max_body_occupancy: Occupancy,
}

impl BundleFigures {
    pub fn new(module: KernelResources, max_body: KernelResources, target: &Target) -> BundleFigures {
        BundleFigures {
            module,
            module_occupancy: Occupancy::of(module, target),
            max_body,
            max_body_occupancy: Occupancy::of(max_body, target),
        }
    }

    /// Module registers over the heaviest body's, as ptxas reports them.
    pub fn register_ratio(&self) -> f64 {
        f64::from(self.module.registers) / f64::from(self.max_body.registers.max(1))
    }

    /// Module registers over the heaviest body's, as the SM allocates them
    /// (per warp, in allocation units: 25 and 32 registers take the same).
    pub fn allocated_register_ratio(&self, target: &Target) -> f64 {
        f64::from(allocated_registers(self.module.registers, target))
            / f64::from(allocated_registers(self.max_body.registers, target).max(1))
    }

    /// Module blocks per SM over the heaviest body's.
    pub fn occupancy_ratio(&self) -> f64 {
        f64::from(self.module_occupancy.blocks_per_sm) / f64::from(self.max_body_occupancy.blocks_per_sm.max(1))
    }

    /// Whether the module keeps its bodies' occupancy: no spills, at least
    /// the heaviest body's blocks per SM, and within 1.1x its registers as
    /// allocated.
    pub fn keeps_occupancy(&self, target: &Target) -> bool {
        self.module.spill_bytes == 0
            && self.module_occupancy.blocks_per_sm >= self.max_body_occupancy.blocks_per_sm
            && self.allocated_register_ratio(target) <= 1.1
    }

    /// Whether a module with these figures beats one with `other`'s: no
    /// spills first, then more blocks per SM, then fewer registers.
    pub fn better_than(&self, other: &BundleFigures) -> bool {
        let key = |f: &BundleFigures| {
            (f.module.spill_bytes == 0, f.module_occupancy.blocks_per_sm, std::cmp::Reverse(f.module.registers))
        };
        key(self) > key(other)
    }
}

/// Block resources from a [`ResourceTable`], and each bundle module's
/// figures compiled (through the compiler's caches, by
/// [`compile_bundle_with`] in `choice`'s forms) the first time a planner
/// asks and recorded in the table ([`ResourceTable::record_bundle`]).
///
/// For planners that may compile while they plan (`weft pack`): every
/// join [`crate::grow`] considers is judged on the module it would load.
/// The serving scheduler plans on its [`ResourceTable`] alone, which knows
/// the modules its executor has compiled and recorded so far.
///
/// A class is the set of its bodies ([`LaunchClass`]), so tenants of one
/// program at any phases share its module. Many tenants at many phases
/// still meet many sets, and each costs NVRTC and ptxas (seconds in the
/// best form), so at most `limit` classes are compiled
/// ([`CompiledModules::with_limit`]); past it a join of a class not
/// recorded is judged as the serving scheduler judges one, on its
/// members' figures ([`CompiledModules::unjudged`] counts them).
pub struct CompiledModules<'a> {
    table: &'a ResourceTable,
    compiler: &'a Compiler,
    target: Target,
    choice: FormChoice,
    limit: usize,
    /// Launch classes compiled so far (not found in the table).
    compiled: AtomicUsize,
    /// Joins past `limit` judged on their members' figures.
    unjudged: AtomicUsize,
}

impl<'a> CompiledModules<'a> {
    /// Compiles every class a planner asks about (no limit).
    pub fn new(table: &'a ResourceTable, compiler: &'a Compiler, target: Target, choice: FormChoice) -> Self {
        CompiledModules {
            table,
            compiler,
            target,
            choice,
            limit: usize::MAX,
            compiled: AtomicUsize::new(0),
            unjudged: AtomicUsize::new(0),
        }
    }

    /// Compiles at most `limit` launch classes.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Launch classes whose module was compiled here so far.
    pub fn compiled(&self) -> usize {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Joins of a class not recorded, asked about once the limit was
    /// reached: judged on their members' figures, not on their module.
    pub fn unjudged(&self) -> usize {
        self.unjudged.load(Ordering::Relaxed)
    }
}

impl ResourceModel for CompiledModules<'_> {
    fn resources(&self, kernel: &KernelDef) -> KernelResources {
        self.table.resources(kernel)
    }

    /// The recorded figures, else the module compiled now (within the
    /// limit); `None` where it cannot be built, ptxas does not report, or
    /// the limit is reached (the planner then plans on the members'
    /// resources, and whoever builds the module meets any error).
    fn module(&self, bundle: &Bundle) -> Option<BundleFigures> {
        if let Some(known) = self.table.bundle(bundle.class()) {
            return Some(known);
        }
        if self.compiled() >= self.limit {
            self.unjudged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let compiled =
            compile_bundle_with(self.compiler, &self.target, bundle.bodies(), bundle.class(), self.choice).ok()?;
        let figures = compiled.figures?;
        self.table.record_bundle(bundle.class(), figures);
        Some(figures)
    }
}
