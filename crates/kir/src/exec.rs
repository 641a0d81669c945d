//! Host-side kernel arguments.
//!
//! A kernel run on the host takes one [`ArgValue`] per parameter, in
//! parameter order; [`check_args`] is the one check that they fit. Executors
//! themselves (interpreter, simulator, CUDA) share one interface over device
//! buffer handles, `weft_pack::Executor`.

use crate::kernel::{KernelDef, ParamKind};
use crate::types::{Scalar, Type};

/// A host buffer of `len` elements of one KIR type, stored as little-endian
/// bytes exactly as the GPU would hold it.
#[derive(Clone, PartialEq, Debug)]
pub struct HostBuffer {
    elem: Type,
    bytes: Vec<u8>,
}

impl HostBuffer {
    /// A zero-filled buffer.
    pub fn zeros(elem: Type, len: usize) -> HostBuffer {
        HostBuffer { elem, bytes: vec![0; len * elem.size_bytes() as usize] }
    }

    pub fn from_f32(values: &[f32]) -> HostBuffer {
        HostBuffer { elem: Type::F32, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    pub fn from_i32(values: &[i32]) -> HostBuffer {
        HostBuffer { elem: Type::I32, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// A buffer of `elem` holding each of `values` converted with C cast semantics.
    pub fn from_f64(elem: Type, values: &[f64]) -> HostBuffer {
        let mut b = HostBuffer::zeros(elem, values.len());
        for (i, &v) in values.iter().enumerate() {
            b.set(i, Scalar::from_f64(elem, v));
        }
        b
    }

    /// Wraps raw little-endian bytes; `None` if the length is not a whole
    /// number of elements.
    pub fn from_bytes(elem: Type, bytes: Vec<u8>) -> Option<HostBuffer> {
        (bytes.len() as u64).is_multiple_of(elem.size_bytes()).then_some(HostBuffer { elem, bytes })
    }

    pub fn elem(&self) -> Type {
        self.elem
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / self.elem.size_bytes() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Element `i` (panics if out of range, like slice indexing).
    pub fn get(&self, i: usize) -> Scalar {
        let size = self.elem.size_bytes() as usize;
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(&self.bytes[i * size..(i + 1) * size]);
        Scalar::from_bits(self.elem, u64::from_le_bytes(raw))
    }

    /// Sets element `i` to `v` converted to the buffer's type.
    pub fn set(&mut self, i: usize, v: Scalar) {
        let v = if v.ty() == self.elem { v } else { Scalar::from_f64(self.elem, v.to_f64()) };
        let size = self.elem.size_bytes() as usize;
        let raw = v.to_bits().to_le_bytes();
        self.bytes[i * size..(i + 1) * size].copy_from_slice(&raw[..size]);
    }

    /// Every element as `f64`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.get(i).to_f64()).collect()
    }

    /// Every element as `f32` (converted where the type differs).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        (0..self.len()).map(|i| self.get(i).to_f64() as f32).collect()
    }

    /// How many elements are not zero (NaN is not zero; `true` is one):
    /// the size of ONNX `NonZero`'s output over this buffer.
    pub fn count_nonzero(&self) -> usize {
        (0..self.len()).filter(|&i| self.get(i).to_f64() != 0.0).count()
    }
}

/// One kernel argument.
#[derive(Clone, PartialEq, Debug)]
pub enum ArgValue {
    Buffer(HostBuffer),
    Scalar(Scalar),
}

impl ArgValue {
    pub fn as_buffer(&self) -> Option<&HostBuffer> {
        match self {
            ArgValue::Buffer(b) => Some(b),
            ArgValue::Scalar(_) => None,
        }
    }
}

/// Why a set of arguments does not fit a kernel's parameters.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum ArgError {
    #[error("kernel `{kernel}` takes {expected} arguments but {given} were given")]
    Count { kernel: String, expected: usize, given: usize },
    #[error("kernel `{kernel}` parameter `{param}` expects {expected} but was given {given}")]
    Mismatch { kernel: String, param: String, expected: String, given: String },
}

/// What an argument is, as far as matching it to a parameter goes: host
/// values and device handles are both described this way, so there is one
/// check ([`check_arg_shapes`]).
#[derive(Clone, PartialEq, Debug)]
pub enum ArgShape {
    Buffer {
        elem: Type,
        len: u64,
    },
    Scalar(Type),
    /// A buffer the executor does not hold; the text says which.
    Unknown(String),
}

impl std::fmt::Display for ArgShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgShape::Buffer { elem, len } => write!(f, "buf<{elem}, {len}>"),
            ArgShape::Scalar(ty) => write!(f, "scalar {ty}"),
            ArgShape::Unknown(what) => f.write_str(what),
        }
    }
}

/// Checks that arguments of `shapes` match `kernel`'s parameters in number,
/// kind, type and (for buffers) exact length. `shapes` yields one per
/// argument, in order; `count` is how many there are.
pub fn check_arg_shapes(
    kernel: &KernelDef,
    count: usize,
    shapes: impl IntoIterator<Item = ArgShape>,
) -> Result<(), ArgError> {
    if count != kernel.params.len() {
        return Err(ArgError::Count { kernel: kernel.name.clone(), expected: kernel.params.len(), given: count });
    }
    for ((_, p), shape) in kernel.params.iter().zip(shapes) {
        let fits = match (&p.kind, &shape) {
            (ParamKind::Buffer { elem, len, .. }, ArgShape::Buffer { elem: e, len: l }) => elem == e && len == l,
            (ParamKind::Scalar { ty }, ArgShape::Scalar(t)) => ty == t,
            _ => false,
        };
        if !fits {
            let expected = match &p.kind {
                ParamKind::Buffer { elem, len, .. } => format!("buf<{elem}, {len}>"),
                ParamKind::Scalar { ty } => ty.to_string(),
            };
            let given = match shape {
                ArgShape::Scalar(t) if matches!(p.kind, ParamKind::Scalar { .. }) => t.to_string(),
                other => other.to_string(),
            };
            return Err(ArgError::Mismatch { kernel: kernel.name.clone(), param: p.name.clone(), expected, given });
        }
    }
    Ok(())
}

/// Checks that host `args` match `kernel`'s parameters ([`check_arg_shapes`]).
pub fn check_args(kernel: &KernelDef, args: &[ArgValue]) -> Result<(), ArgError> {
    check_arg_shapes(
        kernel,
        args.len(),
        args.iter().map(|a| match a {
            ArgValue::Buffer(b) => ArgShape::Buffer { elem: b.elem(), len: b.len() as u64 },
            ArgValue::Scalar(s) => ArgShape::Scalar(s.ty()),
        }),
    )
}
