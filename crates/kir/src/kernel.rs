//! A KIR kernel and the module that holds kernels.
//!
//! A [`KernelDef`] owns its entities in arenas (`PrimaryMap`s) keyed by the
//! typed ids of [`crate::entities`]; side tables (`SecondaryMap`s) hang off the
//! same ids. The body is a tree of regions rooted at [`KernelDef::body`].

use cranelift_entity::{PrimaryMap, SecondaryMap};

use crate::entities::{Inst, Kernel, Param, Region, Shared, Value, Var};
use crate::inst::{Access, InstData};
use crate::types::Type;

/// What a parameter is.
#[derive(Clone, PartialEq, Debug)]
pub enum ParamKind {
    /// A global-memory buffer of `len` elements of `elem`, with the kernel's
    /// allowed access. Lengths are static: weft compiles for static shapes.
    Buffer { elem: Type, len: u64, access: Access },
    /// A scalar passed by value.
    Scalar { ty: Type },
}

#[derive(Clone, PartialEq, Debug)]
pub struct ParamData {
    /// A name for people and for emitted code; unique within the kernel.
    pub name: String,
    pub kind: ParamKind,
}

impl ParamData {
    /// Element type of a buffer or type of a scalar.
    pub fn ty(&self) -> Type {
        match self.kind {
            ParamKind::Buffer { elem, .. } => elem,
            ParamKind::Scalar { ty } => ty,
        }
    }
}

/// A shared-memory array of one block: `len` elements of `elem`.
#[derive(Clone, PartialEq, Debug)]
pub struct SharedData {
    pub elem: Type,
    pub len: u32,
}

impl SharedData {
    pub fn bytes(&self) -> u64 {
        self.elem.size_bytes() * self.len as u64
    }
}

/// A per-thread local variable.
#[derive(Clone, PartialEq, Debug)]
pub struct VarData {
    pub ty: Type,
}

/// Where a value comes from.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ValueDef {
    /// The result of an instruction.
    Result(Inst),
    /// The index of the `for` instruction.
    LoopIndex(Inst),
    /// Not yet defined: a placeholder the parser creates for ids that appear
    /// out of order, or a gap in the numbering. The verifier rejects uses of it.
    Undefined,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ValueData {
    pub ty: Type,
    pub def: ValueDef,
}

/// The launch shape of a kernel: a logical grid of blocks, the threads of a
/// block, and the shared memory each block needs (the sum of its shared
/// arrays, so it is derived, not stored).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct LaunchShape {
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

impl LaunchShape {
    pub fn new(grid: [u32; 3], block: [u32; 3]) -> LaunchShape {
        LaunchShape { grid, block }
    }

    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> LaunchShape {
        LaunchShape { grid: [blocks, 1, 1], block: [threads, 1, 1] }
    }

    pub fn num_blocks(&self) -> u64 {
        self.grid.iter().map(|&d| d as u64).product()
    }

    pub fn threads_per_block(&self) -> u64 {
        self.block.iter().map(|&d| d as u64).product()
    }

    pub fn total_threads(&self) -> u64 {
        self.num_blocks() * self.threads_per_block()
    }
}

/// One kernel: its parameters, launch shape, shared arrays, local variables,
/// values, instructions and region tree.
#[derive(Clone, PartialEq, Debug)]
pub struct KernelDef {
    /// A C identifier, unique within a module.
    pub name: String,
    pub launch: LaunchShape,
    pub params: PrimaryMap<Param, ParamData>,
    pub shared: PrimaryMap<Shared, SharedData>,
    pub vars: PrimaryMap<Var, VarData>,
    pub values: PrimaryMap<Value, ValueData>,
    pub insts: PrimaryMap<Inst, InstData>,
    /// The value each instruction defines, if any.
    pub inst_result: SecondaryMap<Inst, Option<Value>>,
    pub regions: PrimaryMap<Region, Vec<Inst>>,
    /// The top-level region.
    pub body: Region,
}

impl KernelDef {
    /// An empty kernel with an empty body.
    pub fn new(name: impl Into<String>, launch: LaunchShape) -> KernelDef {
        let mut regions = PrimaryMap::new();
        let body = regions.push(Vec::new());
        KernelDef {
            name: name.into(),
            launch,
            params: PrimaryMap::new(),
            shared: PrimaryMap::new(),
            vars: PrimaryMap::new(),
            values: PrimaryMap::new(),
            insts: PrimaryMap::new(),
            inst_result: SecondaryMap::new(),
            regions,
            body,
        }
    }

    /// Type of a value.
    pub fn value_type(&self, v: Value) -> Type {
        self.values[v].ty
    }

    /// Bytes of shared memory one block uses.
    pub fn shared_bytes(&self) -> u64 {
        self.shared.values().map(SharedData::bytes).sum()
    }

    /// Bytes the parameters take passed to a CUDA kernel: 8 per buffer
    /// pointer, scalars by value, each aligned to its size as the C ABI
    /// lays them out. A launch's parameter space bounds this for a kernel
    /// launched alone ([`crate::Target::param_bytes`]); a bundle body
    /// reads its arguments from memory and has no such bound.
    pub fn param_bytes(&self) -> u64 {
        self.params.values().fold(0u64, |end, pd| {
            let size = match pd.kind {
                ParamKind::Buffer { .. } => 8,
                ParamKind::Scalar { ty } => ty.size_bytes().max(1),
            };
            end.next_multiple_of(size) + size
        })
    }

    /// Finds a parameter by name.
    pub fn param_by_name(&self, name: &str) -> Option<Param> {
        self.params.iter().find(|(_, p)| p.name == name).map(|(id, _)| id)
    }

    /// Visits every instruction in text order (pre-order over the region
    /// tree), with the chain of enclosing `for`/`if` instructions.
    pub fn walk(&self, mut f: impl FnMut(Inst, &[Inst])) {
        fn go(k: &KernelDef, region: Region, stack: &mut Vec<Inst>, f: &mut impl FnMut(Inst, &[Inst])) {
            for &inst in &k.regions[region] {
                f(inst, stack);
                let nested = k.insts[inst].regions();
                if !nested.is_empty() {
                    stack.push(inst);
                    for r in nested {
                        go(k, r, stack, f);
                    }
                    stack.pop();
                }
            }
        }
        go(self, self.body, &mut Vec::new(), &mut f);
    }
}

/// A set of kernels, e.g. a reference-kernel library or a lowered model.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Module {
    pub kernels: PrimaryMap<Kernel, KernelDef>,
}

impl Module {
    pub fn new() -> Module {
        Module::default()
    }

    pub fn push(&mut self, k: KernelDef) -> Kernel {
        self.kernels.push(k)
    }

    pub fn by_name(&self, name: &str) -> Option<Kernel> {
        self.kernels.iter().find(|(_, k)| k.name == name).map(|(id, _)| id)
    }
}
