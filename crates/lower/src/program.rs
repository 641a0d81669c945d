//! A lowered model: its buffers and the ordered stream of kernels over them.
//!
//! A [`Program`] is what the rest of weft runs and packs (running one,
//! with weights and activations on an executor, is `weft_pack::run`). Buffers are typed
//! and statically sized; weights are loaded once and held behind an `Arc`, so
//! every request (and, later, every tenant of the same model) shares them.
//! View ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) cost nothing: the
//! output tensor aliases the input's buffer.
//!
//! Indices a kernel loads from data (Gather, GatherElements, GatherND,
//! ScatterElements, ScatterND) are checked where they are used: a kernel that
//! meets an index outside `[-d, d)` still accesses only its own buffers (it
//! clamps, or a scatter drops the update) and stores a nonzero word into the
//! program's one status buffer ([`Program::status`], a `u32[1]` activation
//! zeroed at the start of every run). Every such kernel stores the same word,
//! so kernel bodies stay independent of the node they serve and are shared
//! as before; the program's [`IndexCheck`]s say which buffers hold checked
//! indices and their valid ranges, so whoever reads the status back can find
//! the offending node and value in the run's own buffers
//! ([`IndexCheck::first_out_of_range`]).

use std::collections::HashMap;
use std::sync::Arc;

use cranelift_entity::{entity_impl, PrimaryMap};
use weft_kir::{HostBuffer, KernelDef, Type};

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

/// A buffer of data-dependent indices that kernels check at run time (see
/// the module doc): element `j` must lie in `[-d, d)` for
/// `d = dims[j % dims.len()]` (one entry per component of an index tuple;
/// one entry for Gather, GatherElements and ScatterElements).
#[derive(Clone, PartialEq, Debug)]
pub struct IndexCheck {
    /// The graph node whose kernel checks the indices.
    pub node: String,
    /// Its ONNX op (`Gather`, `ScatterND`, …).
    pub op: String,
    /// The graph tensor holding the indices.
    pub input: String,
    /// The buffer holding the indices.
    pub indices: BufferId,
    /// The data axis each tuple component indexes, and its size.
    pub axes: Vec<(usize, usize)>,
}

/// An index outside its valid range ([`IndexCheck::first_out_of_range`]).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct OutOfRange {
    /// Position of the index in the indices tensor (row-major).
    pub position: usize,
    pub value: i64,
    /// The data axis it indexes, and that axis's size `d`: valid indices are
    /// `[-d, d)`.
    pub axis: usize,
    pub dim: usize,
}

impl IndexCheck {
    /// The first index of `indices` (this check's buffer, read back after a
    /// run) outside its valid range, if any.
    pub fn first_out_of_range(&self, indices: &HostBuffer) -> Option<OutOfRange> {
        if self.axes.is_empty() {
            return None;
        }
        (0..indices.len()).find_map(|position| {
            let (axis, dim) = self.axes[position % self.axes.len()];
            let value = indices.get(position).as_i128()?;
            let d = dim as i128;
            if (-d..d).contains(&value) {
                None
            } else {
                Some(OutOfRange { position, value: value.clamp(i64::MIN as i128, i64::MAX as i128) as i64, axis, dim })
            }
        })
    }
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
    /// The run's status word (`u32[1]`, an activation): zero at the start of
    /// every run, nonzero after it when some kernel met an index out of
    /// range or a data-dependent size other than the program's. `None` when
    /// no kernel checks either.
    pub status: Option<BufferId>,
    /// The index buffers checked at run time, in step order.
    pub index_checks: Vec<IndexCheck>,
    /// The data-dependent output sizes checked at run time, in step order.
    pub count_checks: Vec<CountCheck>,
}

/// A data-dependent output size the program was built for (a `NonZero`'s
/// count, bound from a run of the model's prefix on the same inputs): the
/// kernel stores a nonzero status word when the nonzero elements of
/// `values` are not `count` (it never writes past its output), and whoever
/// reads the status back recounts them ([`CountCheck::found`]).
#[derive(Clone, PartialEq, Debug)]
pub struct CountCheck {
    /// The graph node, and the graph tensor whose nonzero elements it counts.
    pub node: String,
    pub input: String,
    /// The buffer holding that tensor.
    pub values: BufferId,
    /// The count the program was built for.
    pub count: usize,
}

impl CountCheck {
    /// How many nonzero elements `values` (this check's buffer, read back
    /// after a run) holds, where that is not the count the program was
    /// built for.
    pub fn found(&self, values: &HostBuffer) -> Option<usize> {
        Some(values.count_nonzero()).filter(|&n| n != self.count)
    }
}

/// Seeded random contents for a buffer of `len` elements of `elem`: floats
/// uniform in [-1, 1), integers in {0, 1} (valid as indices, token ids and
/// masks for any model), booleans random. What `weft run` feeds an input it
/// was not given, and what the benchmarks feed their models.
pub fn random_buffer(elem: Type, len: usize, seed: u64) -> HostBuffer {
    let mut rng = weft_graph::builder::SplitMix64::new(seed ^ 0x5851_f42d_4c95_7f2d);
    let mut buf = HostBuffer::zeros(elem, len);
    for i in 0..len {
        let v = if elem.is_float() {
            weft_kir::Scalar::from_f64(elem, rng.uniform(-1.0, 1.0))
        } else {
            weft_kir::Scalar::from_f64(elem, (rng.next_u64() & 1) as f64)
        };
        buf.set(i, v);
    }
    buf
}

/// The bytes an executor holds for a [`Program`] ([`Program::memory`]).
///
/// Executors allocate every buffer of a program and keep it for the
/// program's life (`weft_pack::Weights` once per program, one
/// `weft_pack::Arena` of inputs and activations per tenant instance); no
/// buffer is reused for another, so their sum is the peak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// Weight buffers (held once, shared by all tenants of the program).
    pub weights: u64,
    /// Input buffers of one arena.
    pub inputs: u64,
    /// Activation buffers (intermediates and outputs) of one arena.
    pub activations: u64,
    /// Output buffers (part of `activations`): what a run downloads.
    pub outputs: u64,
    /// The largest buffers as `(tensor name, bytes)`, largest first.
    pub largest: Vec<(String, u64)>,
}

impl MemoryUse {
    /// One arena: inputs and activations.
    pub fn arena(&self) -> u64 {
        self.inputs.saturating_add(self.activations)
    }

    /// What an executor holds for the program and one arena.
    pub fn device(&self) -> u64 {
        self.weights.saturating_add(self.arena())
    }

    /// What a run on a host executor (the interpreter, the cpu executor)
    /// holds at its peak: the executor's buffers, plus the program's own
    /// copy of the weights and the downloaded outputs.
    pub fn host(&self) -> u64 {
        self.device().saturating_add(self.weights).saturating_add(self.outputs)
    }
}

impl Program {
    /// The bytes of the program's buffers by kind, and its largest ones.
    pub fn memory(&self) -> MemoryUse {
        let mut m = MemoryUse { weights: 0, inputs: 0, activations: 0, outputs: 0, largest: Vec::new() };
        for (_, info) in self.buffers.iter() {
            let bytes = weft_graph::memory::tensor_bytes(&info.shape, info.elem.size_bytes());
            let into = match info.kind {
                BufferKind::Weight => &mut m.weights,
                BufferKind::Input => &mut m.inputs,
                BufferKind::Activation => &mut m.activations,
            };
            *into = into.saturating_add(bytes);
            weft_graph::memory::insert_largest(&mut m.largest, info.name.clone(), bytes);
        }
        for o in &self.outputs {
            let info = &self.buffers[o.buffer];
            m.outputs = m.outputs.saturating_add(weft_graph::memory::tensor_bytes(&info.shape, info.elem.size_bytes()));
        }
        m
    }

    /// Refuses the program when running it holds more than `limit` bytes:
    /// [`MemoryUse::host`] when `on_host`, else [`MemoryUse::device`].
    /// Call before allocating anything for it.
    pub fn check_memory(&self, limit: u64, on_host: bool) -> Result<MemoryUse, weft_graph::MemoryError> {
        let m = self.memory();
        let needed = if on_host { m.host() } else { m.device() };
        if needed > limit {
            let place = if on_host { "on the host" } else { "on the device" };
            return Err(weft_graph::MemoryError {
                what: format!("program `{}` ({} kernels, run {place})", self.name, self.steps.len()),
                needed,
                limit,
                largest: m.largest,
            });
        }
        Ok(m)
    }

    /// Seeded inputs for every graph input: input `i` is
    /// [`random_buffer`] with seed `seed + i`.
    pub fn seeded_inputs(&self, seed: u64) -> Vec<HostBuffer> {
        self.inputs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let info = &self.buffers[b.buffer];
                random_buffer(info.elem, info.len(), seed.wrapping_add(i as u64))
            })
            .collect()
    }

    /// Total FLOPs and bytes are the sum of the kernels'; this is the count of launches.
    pub fn num_kernels(&self) -> usize {
        self.steps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GatherND-style tuples of two components over axes of sizes 2 and 3.
    fn check() -> IndexCheck {
        IndexCheck {
            node: "g".into(),
            op: "GatherND".into(),
            input: "idx".into(),
            indices: BufferId::from_u32(0),
            axes: vec![(0, 2), (1, 3)],
        }
    }

    fn i64s(v: &[i64]) -> HostBuffer {
        let mut b = HostBuffer::zeros(Type::I64, v.len());
        for (i, &x) in v.iter().enumerate() {
            b.set(i, weft_kir::Scalar::I64(x));
        }
        b
    }

    #[test]
    fn each_tuple_component_is_checked_against_its_own_axis() {
        let c = check();
        assert_eq!(c.first_out_of_range(&i64s(&[1, 2, -2, -3, 0, 0])), None);
        // 2 is fine for the second axis (size 3) but not for the first (size 2).
        let bad = c.first_out_of_range(&i64s(&[1, 2, 2, 0])).unwrap();
        assert_eq!(bad, OutOfRange { position: 2, value: 2, axis: 0, dim: 2 });
        let bad = c.first_out_of_range(&i64s(&[0, -4, 0, 9])).unwrap();
        assert_eq!(bad, OutOfRange { position: 1, value: -4, axis: 1, dim: 3 });
        let bad = c.first_out_of_range(&i64s(&[i64::MIN, 0])).unwrap();
        assert_eq!((bad.position, bad.value), (0, i64::MIN));
    }
}
