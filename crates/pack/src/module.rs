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

use std::sync::Arc;

use weft_codegen::{bundle_shared_bytes, emit_bundle, CompileError, CompiledPtx, Compiler, CudaSource, EmitError};
use weft_kir::{KernelDef, Target};

use crate::occupancy::{KernelResources, Occupancy, ResourceTable};

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
/// report where ptxas is installed) the module of `bodies` launched with
/// `block_threads` threads per block, refusing a shared-memory pool above
/// `target`'s per-block limit before anything is compiled.
pub fn compile_bundle(
    compiler: &Compiler,
    target: &Target,
    bodies: &[Arc<KernelDef>],
    block_threads: u32,
) -> Result<CompiledBundle, ModuleError> {
    let refs: Vec<&KernelDef> = bodies.iter().map(|k| &**k).collect();
    let dynamic_shared_bytes = bundle_shared_bytes(&refs);
    if dynamic_shared_bytes > target.shared_bytes_per_block_optin {
        return Err(ModuleError::SharedMemory {
            bodies: names(bodies),
            needed: dynamic_shared_bytes,
            limit: target.shared_bytes_per_block_optin,
        });
    }
    let source =
        emit_bundle(&refs, block_threads).map_err(|source| ModuleError::Emit { bodies: names(bodies), source })?;
    // Measured where ptxas is present; the PTX alone otherwise.
    let ptx = compiler
        .compile_measured(&source)
        .or_else(|_| compiler.compile(&source))
        .map_err(|source| ModuleError::Compile { bodies: names(bodies), source })?;
    Ok(CompiledBundle { source, ptx, block_threads, dynamic_shared_bytes })
}

/// A compiled bundle's figures beside its heaviest body's.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct BundleFigures {
    /// The module's (ptxas's).
    pub module: KernelResources,
    pub module_occupancy: Occupancy,
    /// The most of every body's resources compiled alone (ptxas's where
    /// recorded in the table, else estimated), at the bundle's block size:
    /// what the packer plans the bundle with.
    pub max_body: KernelResources,
    pub max_body_occupancy: Occupancy,
}

impl BundleFigures {
    /// The figures of `compiled` (`None` where ptxas did not run on it),
    /// its bodies' from `table`.
    pub fn of(
        compiled: &CompiledBundle,
        bodies: &[Arc<KernelDef>],
        table: &ResourceTable,
        target: &Target,
    ) -> Option<BundleFigures> {
        let module = compiled.resources()?;
        let max_body = bodies
            .iter()
            .map(|k| KernelResources { threads: compiled.block_threads, ..table.resources(k) })
            .reduce(KernelResources::max)?;
        Some(BundleFigures {
            module,
            module_occupancy: Occupancy::of(module, target),
            max_body,
            max_body_occupancy: Occupancy::of(max_body, target),
        })
    }

    /// Module registers over the heaviest body's.
    pub fn register_ratio(&self) -> f64 {
        f64::from(self.module.registers) / f64::from(self.max_body.registers.max(1))
    }

    /// Module blocks per SM over the heaviest body's.
    pub fn occupancy_ratio(&self) -> f64 {
        f64::from(self.module_occupancy.blocks_per_sm) / f64::from(self.max_body_occupancy.blocks_per_sm.max(1))
    }
}
