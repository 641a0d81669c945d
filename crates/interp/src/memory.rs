//! Global and shared memory, bounds-checked.
//!
//! Global memory is shared by every block, and blocks run in parallel on
//! several cores. To make that sound without `unsafe`, each buffer is a boxed
//! slice of atomics of the element's width (`AtomicU8`/`U16`/`U32`/`U64`),
//! accessed with `Relaxed` ordering, which compiles to plain loads and stores.
//! For race-free kernels (no element written by one block and touched by
//! another, the GPU's own contract) the result is deterministic whatever the
//! schedule; racy kernels get some interleaving, never undefined behaviour.
//! Buffers are built from the [`HostBuffer`]s before the launch and copied back
//! after it.
//!
//! Shared memory belongs to one block, which a single worker runs, so it is a
//! plain `Vec<u64>` of lane bits per array, zeroed for each block.
//!
//! Every access checks its index against the length and reports the lane and
//! index that missed; the block executor turns that into an error naming the
//! kernel, instruction, array, block and thread.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use weft_kir::{HostBuffer, Type};

use crate::lanes::Lanes;

/// Why a memory access failed.
#[derive(Clone, PartialEq, Debug)]
pub(crate) enum MemFault {
    OutOfBounds {
        lane: usize,
        index: i64,
    },
    /// Indices must be `i32`, `u32` or `i64` (the verifier rejects others).
    IndexType(Type),
}

/// One element of a global buffer.
trait Cell: Sync {
    fn get(&self) -> u64;
    fn put(&self, bits: u64);
}

macro_rules! cell {
    ($atomic:ty, $int:ty) => {
        impl Cell for $atomic {
            #[inline(always)]
            fn get(&self) -> u64 {
                self.load(Relaxed) as u64
            }
            #[inline(always)]
            fn put(&self, bits: u64) {
                self.store(bits as $int, Relaxed)
            }
        }
    };
}

cell!(AtomicU8, u8);
cell!(AtomicU16, u16);
cell!(AtomicU32, u32);
cell!(AtomicU64, u64);

/// A buffer's elements, one atomic of the element width each.
enum Cells {
    W8(Box<[AtomicU8]>),
    W16(Box<[AtomicU16]>),
    W32(Box<[AtomicU32]>),
    W64(Box<[AtomicU64]>),
}

/// Runs `$body` with `$conv` bound to the reader of index lanes of type `$ty`.
macro_rules! with_index {
    ($ty:expr, $conv:ident => $body:expr) => {
        match $ty {
            Type::I32 => {
                let $conv = |x: u64| x as u32 as i32 as i64;
                $body
            }
            Type::U32 => {
                let $conv = |x: u64| x as u32 as i64;
                $body
            }
            Type::I64 => {
                let $conv = |x: u64| x as i64;
                $body
            }
            other => Err(MemFault::IndexType(other)),
        }
    };
}

/// Runs `$body` with `$cells` bound to the typed slice of `$cells_enum`.
macro_rules! with_cells {
    ($cells_enum:expr, $cells:ident => $body:expr) => {
        match $cells_enum {
            Cells::W8($cells) => $body,
            Cells::W16($cells) => $body,
            Cells::W32($cells) => $body,
            Cells::W64($cells) => $body,
        }
    };
}

/// `lane`'s element of `cells` at index `i`, or the fault naming both.
#[inline(always)]
fn element<T>(cells: &[T], lane: usize, i: i64) -> Result<&T, MemFault> {
    usize::try_from(i).ok().and_then(|i| cells.get(i)).ok_or(MemFault::OutOfBounds { lane, index: i })
}

/// A global buffer as the kernel sees it during a launch.
pub(crate) struct GlobalBuffer {
    elem: Type,
    cells: Cells,
}

impl GlobalBuffer {
    /// Copies `host` into fresh atomics.
    pub(crate) fn from_host(host: &HostBuffer) -> GlobalBuffer {
        let bytes = host.bytes();
        let cells = match host.elem().size_bytes() {
            1 => Cells::W8(bytes.iter().map(|&b| AtomicU8::new(b)).collect()),
            2 => Cells::W16(bytes.chunks_exact(2).map(|c| AtomicU16::new(u16::from_le_bytes([c[0], c[1]]))).collect()),
            4 => Cells::W32(
                bytes.chunks_exact(4).map(|c| AtomicU32::new(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            ),
            _ => Cells::W64(
                bytes
                    .chunks_exact(8)
                    .map(|c| AtomicU64::new(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])))
                    .collect(),
            ),
        };
        GlobalBuffer { elem: host.elem(), cells }
    }

    pub(crate) fn len(&self) -> u64 {
        with_cells!(&self.cells, c => c.len() as u64)
    }

    /// Copies the buffer's contents back into `host` (same type and length).
    pub(crate) fn write_back(&self, host: &mut HostBuffer) {
        let out = host.bytes_mut();
        match &self.cells {
            Cells::W8(c) => out.iter_mut().zip(c.iter()).for_each(|(o, c)| *o = c.load(Relaxed)),
            Cells::W16(c) => out
                .chunks_exact_mut(2)
                .zip(c.iter())
                .for_each(|(o, c)| o.copy_from_slice(&c.load(Relaxed).to_le_bytes())),
            Cells::W32(c) => out
                .chunks_exact_mut(4)
                .zip(c.iter())
                .for_each(|(o, c)| o.copy_from_slice(&c.load(Relaxed).to_le_bytes())),
            Cells::W64(c) => out
                .chunks_exact_mut(8)
                .zip(c.iter())
                .for_each(|(o, c)| o.copy_from_slice(&c.load(Relaxed).to_le_bytes())),
        }
    }

    /// `dst[l] = buf[index[l]]` for every active lane.
    pub(crate) fn load(&self, index_ty: Type, lanes: Lanes, index: &[u64], dst: &mut [u64]) -> Result<(), MemFault> {
        with_index!(index_ty, conv => with_cells!(&self.cells, cells => {
            lanes.try_for_each(|l| {
                dst[l] = element(cells, l, conv(index[l]))?.get();
                Ok(())
            })
        }))?;
        if self.elem == Type::Bool {
            // A byte other than 0/1 reads as C reads it: true when non-zero.
            lanes.for_each(|l| dst[l] = (dst[l] != 0) as u64);
        }
        Ok(())
    }

    /// `buf[index[l]] = value[l]` for every active lane, in lane order (so the
    /// highest lane wins when several write one element).
    pub(crate) fn store(&self, index_ty: Type, lanes: Lanes, index: &[u64], value: &[u64]) -> Result<(), MemFault> {
        with_index!(index_ty, conv => with_cells!(&self.cells, cells => {
            lanes.try_for_each(|l| {
                element(cells, l, conv(index[l]))?.put(value[l]);
                Ok(())
            })
        }))
    }
}

/// `dst[l] = array[index[l]]` for a shared array.
pub(crate) fn shared_load(
    array: &[u64],
    index_ty: Type,
    lanes: Lanes,
    index: &[u64],
    dst: &mut [u64],
) -> Result<(), MemFault> {
    with_index!(index_ty, conv => lanes.try_for_each(|l| {
        dst[l] = *element(array, l, conv(index[l]))?;
        Ok(())
    }))
}

/// `array[index[l]] = value[l]` for a shared array, in lane order.
pub(crate) fn shared_store(
    array: &mut [u64],
    index_ty: Type,
    lanes: Lanes,
    index: &[u64],
    value: &[u64],
) -> Result<(), MemFault> {
    with_index!(index_ty, conv => lanes.try_for_each(|l| {
        let i = conv(index[l]);
        let slot = usize::try_from(i).ok().and_then(|i| array.get_mut(i)).ok_or(MemFault::OutOfBounds { lane: l, index: i })?;
        *slot = value[l];
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_width() {
        for ty in Type::ALL {
            let host = HostBuffer::from_f64(ty, &[1.0, 0.0, 3.0]);
            let buf = GlobalBuffer::from_host(&host);
            assert_eq!(buf.len(), 3);
            let mut back = HostBuffer::zeros(ty, 3);
            buf.write_back(&mut back);
            assert_eq!(back, host, "{ty}");
        }
    }

    #[test]
    fn negative_and_past_end_indices_fault() {
        let buf = GlobalBuffer::from_host(&HostBuffer::from_f32(&[1.0, 2.0]));
        let mut dst = [0u64; 2];
        let idx = [1u64, (-1i32) as u32 as u64];
        assert_eq!(
            buf.load(Type::I32, Lanes::All(2), &idx, &mut dst),
            Err(MemFault::OutOfBounds { lane: 1, index: -1 })
        );
        assert_eq!(dst[0], 2.0f32.to_bits() as u64);
        assert_eq!(
            buf.store(Type::U32, Lanes::Some(&[0]), &[2, 0], &[0, 0]),
            Err(MemFault::OutOfBounds { lane: 0, index: 2 })
        );
    }
}
