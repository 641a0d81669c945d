//! The lowering context: graph tensors → program buffers, and kernel emission.
//!
//! Op templates (in [`crate::ops`]) receive a [`LowerCtx`] and ask it for the
//! buffer of each tensor they read or write; the context creates buffers on
//! first use (inputs, weights with their contents, activations) and lets view
//! ops alias an output to an input's buffer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use weft_graph::{DType, Graph, Tensor, TensorData, TensorId};
use weft_kir::{HostBuffer, KernelDef, Type};

use crate::error::LowerError;
use crate::program::{BufferId, BufferInfo, BufferKind, Program, Step};

/// Choices made once per model.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// Fuse elementwise chains into the producing kernel's epilogue.
    pub fuse_epilogues: bool,
    /// Fold BatchNormalization into the preceding convolution's weights.
    pub fold_batchnorm: bool,
    /// The memory budget in bytes: a program whose run would hold more
    /// ([`Program::check_memory`](crate::Program::check_memory), on the
    /// host when `on_host`) is refused with [`LowerError::Memory`](crate::LowerError::Memory)
    /// before any executor allocates it. `None`: no check here (the caller
    /// checks against its executor).
    pub max_memory: Option<u64>,
    /// Whether the program will run on a host executor (see `max_memory`).
    pub on_host: bool,
}

impl Default for LowerOptions {
    fn default() -> LowerOptions {
        LowerOptions { fuse_epilogues: true, fold_batchnorm: true, max_memory: None, on_host: true }
    }
}

/// The KIR element type that holds a graph dtype.
pub fn kir_type(dtype: DType) -> Type {
    match dtype {
        DType::F32 => Type::F32,
        DType::F16 => Type::F16,
        DType::BF16 => Type::BF16,
        DType::I32 => Type::I32,
        DType::I64 => Type::I64,
        DType::Bool => Type::Bool,
        DType::I8 => Type::I8,
        DType::U8 => Type::U8,
        DType::I16 => Type::I16,
        DType::U16 => Type::U16,
        DType::U32 => Type::U32,
        DType::U64 => Type::U64,
        DType::F64 => Type::F64,
    }
}

/// A constant tensor as a host buffer of its KIR type.
pub fn tensor_to_host(t: &Tensor) -> HostBuffer {
    let ty = kir_type(t.dtype);
    match &t.data {
        TensorData::F32(v) if ty == Type::F32 => HostBuffer::from_f32(v),
        TensorData::I32(v) if ty == Type::I32 => HostBuffer::from_i32(v),
        // Integers element by element, exactly (f64 would round 64-bit values).
        _ if t.dtype.is_int() => {
            let values = t.as_i128s().unwrap_or_default();
            let mut buf = HostBuffer::zeros(ty, values.len());
            for (i, &v) in values.iter().enumerate() {
                if let Some(s) = weft_kir::Scalar::from_int(ty, v) {
                    buf.set(i, s);
                }
            }
            buf
        }
        _ => HostBuffer::from_f64(ty, &t.to_f64()),
    }
}

/// Every kernel lowered in this process, by its KIR text without the name.
/// Bounded by the number of distinct layer shapes ever lowered.
fn interned_kernels() -> &'static std::sync::Mutex<HashMap<String, Arc<KernelDef>>> {
    static TABLE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, Arc<KernelDef>>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// State of one lowering.
pub struct LowerCtx<'g> {
    pub graph: &'g Graph,
    pub options: LowerOptions,
    pub program: Program,
    weights: HashMap<BufferId, HostBuffer>,
    tensor_buf: HashMap<TensorId, BufferId>,
    /// Tensors whose values exist at this point of the kernel stream.
    available: HashSet<TensorId>,
    kernel_names: HashMap<String, usize>,
}

impl<'g> LowerCtx<'g> {
    pub fn new(graph: &'g Graph, options: LowerOptions) -> LowerCtx<'g> {
        let mut available: HashSet<TensorId> = graph.inputs.iter().copied().collect();
        available.extend(graph.constants.keys().copied());
        LowerCtx {
            graph,
            options,
            program: Program { name: graph.name.clone(), ..Program::default() },
            weights: HashMap::new(),
            tensor_buf: HashMap::new(),
            available,
            kernel_names: HashMap::new(),
        }
    }

    /// The buffer holding tensor `t`, created on first use: graph inputs
    /// become `Input` buffers, constants `Weight` buffers with their
    /// contents, everything else an `Activation`.
    pub fn buffer_of(&mut self, t: TensorId) -> BufferId {
        if let Some(&b) = self.tensor_buf.get(&t) {
            return b;
        }
        let info = self.graph.info(t);
        let kind = if let Some(c) = self.graph.constants.get(&t) {
            let b = self.new_buffer(
                &info.name.clone(),
                kir_type(info.dtype),
                info.shape.dims().to_vec(),
                BufferKind::Weight,
            );
            self.weights.insert(b, tensor_to_host(c));
            self.tensor_buf.insert(t, b);
            return b;
        } else if self.graph.inputs.contains(&t) {
            BufferKind::Input
        } else {
            BufferKind::Activation
        };
        let b = self.new_buffer(&info.name.clone(), kir_type(info.dtype), info.shape.dims().to_vec(), kind);
        self.tensor_buf.insert(t, b);
        b
    }

    /// A new weight buffer with `contents` (e.g. weights folded at compile time).
    pub fn add_weight(&mut self, name: &str, shape: Vec<usize>, contents: HostBuffer) -> BufferId {
        let b = self.new_buffer(name, contents.elem(), shape, BufferKind::Weight);
        self.weights.insert(b, contents);
        b
    }

    /// A new activation buffer not tied to a graph tensor (a scratch buffer).
    pub fn add_scratch(&mut self, name: &str, elem: Type, shape: Vec<usize>) -> BufferId {
        self.new_buffer(name, elem, shape, BufferKind::Activation)
    }

    /// The program's status word ([`crate::Program::status`]), created on
    /// first use.
    pub fn status_buffer(&mut self) -> BufferId {
        if let Some(b) = self.program.status {
            return b;
        }
        let b = self.new_buffer("index_status", Type::U32, vec![1], BufferKind::Activation);
        self.program.status = Some(b);
        b
    }

    fn new_buffer(&mut self, name: &str, elem: Type, shape: Vec<usize>, kind: BufferKind) -> BufferId {
        self.program.buffers.push(BufferInfo { name: name.to_string(), elem, shape, kind })
    }

    /// Makes `output` share `input`'s buffer (a view: same elements, new shape).
    pub fn alias(&mut self, output: TensorId, input: TensorId) {
        let b = self.buffer_of(input);
        self.tensor_buf.insert(output, b);
        self.available.insert(output);
    }

    /// True when `t`'s value has been computed by the kernels emitted so far.
    pub fn is_available(&self, t: TensorId) -> bool {
        self.available.contains(&t)
    }

    /// Records that `t` is computed (by the step just pushed).
    pub fn mark_available(&mut self, t: TensorId) {
        self.available.insert(t);
    }

    /// A unique C-identifier kernel name from `base` (`conv2d`, `conv2d_1`, …).
    pub fn kernel_name(&mut self, base: &str) -> String {
        let clean: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        let n = self.kernel_names.entry(clean.clone()).or_insert(0);
        let name = if *n == 0 { clean } else { format!("{clean}_{n}") };
        *n += 1;
        name
    }

    /// Appends a kernel launch. `args` binds one buffer per kernel parameter.
    pub fn push_step(&mut self, kernel: KernelDef, args: Vec<BufferId>, nodes: Vec<String>) -> Result<(), LowerError> {
        if kernel.params.len() != args.len() {
            return Err(LowerError::Internal {
                node: nodes.join(", "),
                message: format!(
                    "kernel `{}` has {} params but {} buffers were bound",
                    kernel.name,
                    kernel.params.len(),
                    args.len()
                ),
            });
        }
        // Code is keyed by kernel bodies: a kernel identical to an earlier one
        // but for its name (the same layer shape twice, or the same layer in
        // another tenant's model of the same architecture) reuses that
        // kernel's `Arc`, so it is verified, analysed, emitted and compiled
        // once per process, and the packer recognises it by pointer.
        let body = KernelDef { name: String::new(), ..kernel.clone() }.to_string();
        let interned = interned_kernels();
        let mut table = interned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = table.get(&body) {
            let kernel = same.clone();
            drop(table);
            self.program.steps.push(Step { kernel, args, nodes });
            return Ok(());
        }
        if let Err(e) = weft_kir::verifier::verify(&kernel) {
            return Err(LowerError::Verify { node: nodes.join(", "), source: e });
        }
        let kernel = Arc::new(kernel);
        table.insert(body, kernel.clone());
        drop(table);
        self.program.steps.push(Step { kernel, args, nodes });
        Ok(())
    }

    /// Ends lowering: binds graph inputs and outputs and returns the program.
    pub fn finish(mut self) -> Result<Program, LowerError> {
        for &t in &self.graph.inputs.clone() {
            let b = self.buffer_of(t);
            let info = self.graph.info(t);
            self.program.inputs.push(crate::program::Binding {
                name: info.name.clone(),
                buffer: b,
                shape: info.shape.dims().to_vec(),
            });
        }
        for &t in &self.graph.outputs.clone() {
            if !self.is_available(t) {
                let name = self.graph.info(t).name.clone();
                return Err(LowerError::Internal { node: name, message: "graph output was never computed".into() });
            }
            let b = self.buffer_of(t);
            let info = self.graph.info(t);
            self.program.outputs.push(crate::program::Binding {
                name: info.name.clone(),
                buffer: b,
                shape: info.shape.dims().to_vec(),
            });
        }
        self.program.weights = Arc::new(self.weights);
        Ok(self.program)
    }
}
