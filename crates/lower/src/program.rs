//! A lowered model: its buffers and the ordered stream of kernels over them.
//!
//! A [`Program`] is what the rest of weft runs and packs. Buffers are typed
//! and statically sized; weights are loaded once and held behind an `Arc`, so
//! every request (and, later, every tenant of the same model) shares them.
//! View ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) cost nothing: the
//! output tensor aliases the input's buffer.

use std::collections::HashMap;
use std::sync::Arc;

use cranelift_entity::{entity_impl, PrimaryMap};
use weft_kir::{check_args, ArgValue, Executor, HostBuffer, KernelDef, ParamKind, Type};

/// A buffer of a program.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(u32);
entity_impl!(BufferId, "b");

/// What a buffer holds.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum BufferKind {
    /// A graph input, supplied per request.
    Input,
    /// A weight or folded constant, loaded once.
    Weight,
    /// An intermediate or output tensor, written by a kernel.
    Activation,
}

#[derive(Clone, PartialEq, Debug)]
pub struct BufferInfo {
    /// The graph tensor it was created for.
    pub name: String,
    pub elem: Type,
    pub shape: Vec<usize>,
    pub kind: BufferKind,
}

impl BufferInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One kernel launch of the program: a kernel and the buffer bound to each
/// of its parameters (all KIR parameters of lowered kernels are buffers).
#[derive(Clone, Debug)]
pub struct Step {
    pub kernel: Arc<KernelDef>,
    pub args: Vec<BufferId>,
    /// The graph nodes this kernel computes (several when fused), for messages.
    pub nodes: Vec<String>,
}

/// A named graph input or output and the buffer that holds it.
#[derive(Clone, PartialEq, Debug)]
pub struct Binding {
    pub name: String,
    pub buffer: BufferId,
    pub shape: Vec<usize>,
}

/// A lowered model.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub name: String,
    pub buffers: PrimaryMap<BufferId, BufferInfo>,
    pub steps: Vec<Step>,
    /// Contents of every `Weight` buffer, shared by all runs.
    pub weights: Arc<HashMap<BufferId, HostBuffer>>,
    pub inputs: Vec<Binding>,
    pub outputs: Vec<Binding>,
}

/// Why a program could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("program `{program}` takes {expected} inputs but {given} were given")]
    InputCount { program: String, expected: usize, given: usize },
    #[error(
        "input `{input}` expects {expected_len} elements of {expected_ty} but was given {given_len} of {given_ty}"
    )]
    InputMismatch { input: String, expected_ty: Type, expected_len: usize, given_ty: Type, given_len: usize },
    /// The arguments did not fit the kernel, or the executor failed; its
    /// error is the source.
    #[error("kernel `{kernel}` (nodes {nodes}) failed on {executor}: {source}")]
    Kernel {
        kernel: String,
        nodes: String,
        executor: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("program `{program}` is malformed: {message}")]
    Malformed { program: String, message: String },
}

impl Program {
    /// Total FLOPs and bytes are the sum of the kernels'; this is the count of launches.
    pub fn num_kernels(&self) -> usize {
        self.steps.len()
    }

    /// Runs every kernel in order on `exec` with `inputs` (one per graph input,
    /// in order) and returns the graph outputs, in order.
    pub fn run<E: Executor>(&self, exec: &E, inputs: &[HostBuffer]) -> Result<Vec<HostBuffer>, RunError> {
        self.run_with(exec, inputs, |_, _| {})
    }

    /// Like [`Program::run`], calling `progress(step_index, step)` before each kernel.
    pub fn run_with<E: Executor>(
        &self,
        exec: &E,
        inputs: &[HostBuffer],
        mut progress: impl FnMut(usize, &Step),
    ) -> Result<Vec<HostBuffer>, RunError> {
        if inputs.len() != self.inputs.len() {
            return Err(RunError::InputCount {
                program: self.name.clone(),
                expected: self.inputs.len(),
                given: inputs.len(),
            });
        }
        let mut live: HashMap<BufferId, HostBuffer> = HashMap::new();
        for (binding, given) in self.inputs.iter().zip(inputs) {
            let info = &self.buffers[binding.buffer];
            if given.elem() != info.elem || given.len() != info.len() {
                return Err(RunError::InputMismatch {
                    input: binding.name.clone(),
                    expected_ty: info.elem,
                    expected_len: info.len(),
                    given_ty: given.elem(),
                    given_len: given.len(),
                });
            }
            live.insert(binding.buffer, given.clone());
        }
        for (i, step) in self.steps.iter().enumerate() {
            progress(i, step);
            let mut args = Vec::with_capacity(step.args.len());
            for &b in &step.args {
                args.push(ArgValue::Buffer(self.buffer_value(b, &live)?));
            }
            let fail = |source: Box<dyn std::error::Error + Send + Sync>| RunError::Kernel {
                kernel: step.kernel.name.clone(),
                nodes: step.nodes.join(", "),
                executor: exec.name().to_string(),
                source,
            };
            check_args(&step.kernel, &args).map_err(|e| fail(Box::new(e)))?;
            exec.execute(&step.kernel, &mut args).map_err(|e| fail(Box::new(e)))?;
            for ((_, param), (arg, &b)) in step.kernel.params.iter().zip(args.into_iter().zip(&step.args)) {
                if let (ParamKind::Buffer { access, .. }, ArgValue::Buffer(buf)) = (&param.kind, arg) {
                    if access.can_write() {
                        live.insert(b, buf);
                    }
                }
            }
        }
        self.outputs.iter().map(|o| self.buffer_value(o.buffer, &live)).collect()
    }

    /// The current contents of buffer `b`: a weight, a live activation, or
    /// zeros for an activation not yet written (kernels write every element
    /// they own, so zeros are never observed by a correct program).
    fn buffer_value(&self, b: BufferId, live: &HashMap<BufferId, HostBuffer>) -> Result<HostBuffer, RunError> {
        if let Some(v) = live.get(&b) {
            return Ok(v.clone());
        }
        let info = self.buffers.get(b).ok_or_else(|| RunError::Malformed {
            program: self.name.clone(),
            message: format!("step refers to missing buffer {b}"),
        })?;
        match info.kind {
            BufferKind::Weight => self.weights.get(&b).cloned().ok_or_else(|| RunError::Malformed {
                program: self.name.clone(),
                message: format!("weight buffer {b} (`{}`) has no contents", info.name),
            }),
            _ => Ok(HostBuffer::zeros(info.elem, info.len())),
        }
    }
}
