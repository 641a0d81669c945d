//! What a bundle launch sends: the slot table and the argument words.
//!
//! One definition, used by every executor: [`encode_launch`] checks that a
//! bundle's slots, table, bodies and arguments agree (each buffer argument
//! of the exact type and length its parameter declares), and produces the
//! device slot table (one `WeftSlot` row per slot) and the argument words
//! (a buffer's address or a packed scalar per parameter, slot after slot),
//! exactly as the compiled dispatcher reads them (`weft_codegen::bundle`).
//! CUDA uploads these bytes; the interpreter checks the same things and
//! counts the same bytes, so host-side launch code is exercised everywhere.

use weft_codegen::bundle::{pack_scalar, SlotRow, SLOT_FIELDS};
use weft_kir::{check_arg_shapes, ArgError, ArgShape, KernelDef};

use crate::bundle::Bundle;
use crate::exec::{BufferShape, ExecError, Handle, LaunchArg};

/// A checked launch: its table rows and the bytes the device reads.
#[derive(Clone, PartialEq, Debug)]
pub struct EncodedLaunch {
    pub rows: Vec<SlotRow>,
    /// The rows as the device reads them.
    pub table: Vec<u8>,
    /// One little-endian 64-bit word per parameter, slot after slot.
    pub words: Vec<u8>,
}

impl EncodedLaunch {
    /// Bytes that cross to the device with the launch.
    pub fn bytes(&self) -> u64 {
        (self.table.len() + self.words.len()) as u64
    }
}

/// Bytes of one slot table row.
pub const SLOT_ROW_BYTES: usize = SLOT_FIELDS * 4;

/// Checks `bundle` against `args` and encodes its launch. `shape_of` gives
/// a handle's element type and length (`None`: unknown handle) and
/// `address` its device address word.
///
/// The dispatcher trusts only `body`, `first_block`, `num_blocks` and
/// `arg_offset`; grids and thread counts are compiled in from the bodies,
/// and are checked here to agree with the table.
pub fn encode_launch(
    executor: &str,
    bundle: &Bundle,
    args: &[Vec<LaunchArg>],
    shape_of: impl Fn(Handle) -> Option<BufferShape>,
    mut address: impl FnMut(Handle) -> u64,
) -> Result<EncodedLaunch, ExecError> {
    let n = bundle.slots.len();
    if bundle.table.entries.len() != n || args.len() != n {
        return Err(ExecError::Bundle {
            reason: format!(
                "{n} slots, {} slot table rows and {} argument lists; they must be equal",
                bundle.table.entries.len(),
                args.len()
            ),
        });
    }
    if bundle.class.bodies.len() != bundle.bodies.len() {
        return Err(ExecError::Bundle {
            reason: format!(
                "the launch class names {} bodies but the bundle holds {}",
                bundle.class.bodies.len(),
                bundle.bodies.len()
            ),
        });
    }
    let block_threads = bundle.class.block_threads;
    let mut rows = Vec::with_capacity(n);
    let mut table = Vec::with_capacity(n * SLOT_ROW_BYTES);
    let mut words = Vec::new();
    let mut next_free = 0u64;
    let mut arg_offset = 0u64;
    for (s, ((slot, entry), slot_args)) in bundle.slots.iter().zip(&bundle.table.entries).zip(args).enumerate() {
        let err = |reason: String| ExecError::Slot { slot: s, kernel: slot.kernel.name.clone(), reason };
        let body = bundle.bodies.get(entry.body as usize).ok_or_else(|| {
            err(format!("the table names body {} but the bundle has {}", entry.body, bundle.bodies.len()))
        })?;
        if !(std::sync::Arc::ptr_eq(body, &slot.kernel) || **body == *slot.kernel) {
            return Err(err(format!("the table names body {} (`{}`), not the slot's kernel", entry.body, body.name)));
        }
        let threads = body.launch.threads_per_block();
        if entry.grid != body.launch.grid || entry.threads as u64 != threads {
            return Err(err(format!(
                "the table says grid {:?} of {} threads, the kernel has grid {:?} of {threads}",
                entry.grid, entry.threads, body.launch.grid
            )));
        }
        if threads > block_threads as u64 {
            return Err(err(format!("{threads} threads per block exceed the bundle's {block_threads}")));
        }
        if entry.num_blocks == 0 {
            return Err(err("the slot has no physical blocks, so its kernel would never run".into()));
        }
        if (entry.first_block as u64) < next_free {
            return Err(err(format!(
                "its blocks start at {} but earlier slots use blocks up to {next_free}: table rows must be in \
                 block order and must not overlap",
                entry.first_block
            )));
        }
        next_free = entry.first_block as u64 + entry.num_blocks as u64;
        check_launch_args(executor, &slot.kernel, slot_args, &shape_of).map_err(|source| ExecError::Args {
            slot: s,
            kernel: slot.kernel.name.clone(),
            source: Box::new(source),
        })?;
        let row = SlotRow {
            body: entry.body,
            first_block: entry.first_block,
            num_blocks: entry.num_blocks,
            grid: entry.grid,
            threads: entry.threads,
            arg_offset: u32::try_from(arg_offset).unwrap_or(u32::MAX),
        };
        let bytes = row.to_le_bytes().filter(|_| next_free <= i32::MAX as u64);
        let Some(bytes) = bytes else {
            return Err(err(format!("a slot table field of {row:?} does not fit the device's int")));
        };
        table.extend_from_slice(&bytes);
        rows.push(row);
        for a in slot_args {
            let word = match *a {
                LaunchArg::Buffer(h) => address(h),
                LaunchArg::Scalar(s) => pack_scalar(s),
            };
            words.extend_from_slice(&word.to_le_bytes());
        }
        arg_offset += slot_args.len() as u64;
    }
    Ok(EncodedLaunch { rows, table, words })
}

/// Checks that `args` match `kernel`'s parameters in number, kind, type and
/// (for buffers) exact length: the one check ([`check_arg_shapes`]) on the
/// shapes of the handles.
pub fn check_launch_args(
    executor: &str,
    kernel: &KernelDef,
    args: &[LaunchArg],
    shape_of: &impl Fn(Handle) -> Option<BufferShape>,
) -> Result<(), ArgError> {
    check_arg_shapes(
        kernel,
        args.len(),
        args.iter().map(|a| match *a {
            LaunchArg::Buffer(h) => match shape_of(h) {
                Some(b) => ArgShape::Buffer { elem: b.elem, len: b.len as u64 },
                None => ArgShape::Unknown(format!("buffer {h}, which {executor} does not hold")),
            },
            LaunchArg::Scalar(s) => ArgShape::Scalar(s.ty()),
        }),
    )
}
