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

/// Checks that `args` match `kernel`'s parameters in number, kind, type and
/// (for buffers) exact length. Both executors call this first.
pub fn check_args(kernel: &KernelDef, args: &[ArgValue]) -> Result<(), ArgError> {
    if args.len() != kernel.params.len() {
        return Err(ArgError::Count { kernel: kernel.name.clone(), expected: kernel.params.len(), given: args.len() });
    }
    for ((_, p), arg) in kernel.params.iter().zip(args) {
        let (expected, given) = match (&p.kind, arg) {
            (ParamKind::Buffer { elem, len, .. }, ArgValue::Buffer(b)) => {
                if *elem == b.elem() && *len == b.len() as u64 {
                    continue;
                }
                (format!("buf<{elem}, {len}>"), format!("buf<{}, {}>", b.elem(), b.len()))
            }
            (ParamKind::Scalar { ty }, ArgValue::Scalar(s)) => {
                if *ty == s.ty() {
                    continue;
                }
                (ty.to_string(), s.ty().to_string())
            }
            (ParamKind::Buffer { elem, len, .. }, ArgValue::Scalar(s)) => {
                (format!("buf<{elem}, {len}>"), format!("scalar {}", s.ty()))
            }
            (ParamKind::Scalar { ty }, ArgValue::Buffer(b)) => {
                (ty.to_string(), format!("buf<{}, {}>", b.elem(), b.len()))
            }
        };
        return Err(ArgError::Mismatch { kernel: kernel.name.clone(), param: p.name.clone(), expected, given });
    }
    Ok(())
}
