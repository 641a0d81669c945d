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

use std::borrow::Cow;

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

    /// Physical blocks the launch needs: up to the end of its last slot.
    pub fn blocks(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.first_block as u64 + r.num_blocks as u64)
    }

    /// The launch as consecutive launches of whole slots, each of at most
    /// `max_rows` table rows and `max_words` argument words, with block
    /// ranges and argument offsets counted from the chunk's first slot:
    /// what an executor whose table lives in fixed-size constant memory
    /// launches in turn (`weft_codegen::bundle`, "Where the table and words
    /// live"). The slots of one launch are independent, so running them in
    /// several launches changes only the timing. One chunk, the launch
    /// itself (borrowed), when it fits; an error when one slot alone needs
    /// more than `max_words` words.
    pub fn chunks(&self, max_rows: usize, max_words: usize) -> Result<Vec<Cow<'_, EncodedLaunch>>, ExecError> {
        let total_words = self.words.len() / 8;
        if self.rows.len() <= max_rows && total_words <= max_words {
            return Ok(vec![Cow::Borrowed(self)]);
        }
        if max_rows == 0 {
            return Err(ExecError::Bundle { reason: "a launch chunk must hold at least one slot".into() });
        }
        let words_of = |i: usize| {
            let end = self.rows.get(i + 1).map_or(total_words, |r| r.arg_offset as usize);
            end.saturating_sub(self.rows[i].arg_offset as usize)
        };
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < self.rows.len() {
            let (mut end, mut words) = (start, 0);
            while end < self.rows.len() && end - start < max_rows && words + words_of(end) <= max_words {
                words += words_of(end);
                end += 1;
            }
            if end == start {
                return Err(ExecError::Slot {
                    slot: start,
                    kernel: format!("body {}", self.rows[start].body),
                    reason: format!(
                        "its kernel has {} argument words, more than the {max_words} one launch carries",
                        words_of(start)
                    ),
                });
            }
            let (block_base, word_base) = (self.rows[start].first_block, self.rows[start].arg_offset);
            let rows: Vec<SlotRow> = self.rows[start..end]
                .iter()
                .map(|r| SlotRow {
                    first_block: r.first_block - block_base,
                    arg_offset: r.arg_offset - word_base,
                    ..*r
                })
                .collect();
            // Each field only shrank, so every row still fits the device's int.
            let table = rows.iter().filter_map(SlotRow::to_le_bytes).flatten().collect();
            let first = word_base as usize * 8;
            let words = self.words[first..first + words * 8].to_vec();
            chunks.push(Cow::Owned(EncodedLaunch { rows, table, words }));
            start = end;
        }
        Ok(chunks)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A launch of slots whose kernels take `words[i]` argument words, slot
    /// `i` owning blocks `[10 i, 10 i + 3)` and words numbered from 1000.
    fn launch(words: &[u32]) -> EncodedLaunch {
        let mut rows = Vec::new();
        let mut offset = 0;
        for (i, &w) in words.iter().enumerate() {
            let i = i as u32;
            rows.push(SlotRow {
                body: i % 2,
                first_block: 10 * i,
                num_blocks: 3,
                grid: [3, 1, 1],
                threads: 32,
                arg_offset: offset,
            });
            offset += w;
        }
        let table = rows.iter().flat_map(|r| r.to_le_bytes().unwrap()).collect();
        let words = (0..u64::from(offset)).flat_map(|w| (1000 + w).to_le_bytes()).collect();
        EncodedLaunch { rows, table, words }
    }

    fn word(bytes: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap())
    }

    #[test]
    fn a_launch_that_fits_is_one_chunk() {
        let l = launch(&[3, 1, 4]);
        assert_eq!(l.blocks(), 23);
        assert_eq!(l.chunks(3, 8).unwrap(), vec![Cow::Borrowed(&l)]);
    }

    #[test]
    fn chunks_hold_whole_slots_within_both_limits_counted_from_their_first_slot() {
        let l = launch(&[3, 1, 4, 1, 5]);
        let chunks = l.chunks(2, 6).unwrap();
        // Rows 0-1 (two rows, 4 words), 2-3 (5 words), 4 (5 words).
        let sizes: Vec<usize> = chunks.iter().map(|c| c.rows.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let mut slot = 0;
        for c in &chunks {
            assert!(c.rows.len() <= 2 && c.words.len() / 8 <= 6);
            let first = l.rows[slot];
            assert_eq!(c.table, c.rows.iter().flat_map(|r| r.to_le_bytes().unwrap()).collect::<Vec<u8>>());
            assert_eq!(c.blocks(), (c.rows.last().unwrap().first_block + 3) as u64);
            for r in &c.rows {
                let orig = l.rows[slot];
                assert_eq!(r.first_block + first.first_block, orig.first_block);
                assert_eq!(r.arg_offset + first.arg_offset, orig.arg_offset);
                assert_eq!(
                    (r.body, r.num_blocks, r.grid, r.threads),
                    (orig.body, orig.num_blocks, orig.grid, orig.threads)
                );
                // The row's first word is the slot's own.
                assert_eq!(word(&c.words, r.arg_offset as usize), 1000 + u64::from(orig.arg_offset));
                slot += 1;
            }
        }
        assert_eq!(slot, 5);
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.words.clone()).collect();
        assert_eq!(all, l.words);
    }

    #[test]
    fn a_slot_with_more_words_than_a_chunk_holds_is_refused() {
        let err = launch(&[2, 9, 1]).chunks(4, 8).unwrap_err();
        match err {
            ExecError::Slot { slot, reason, .. } => {
                assert_eq!(slot, 1);
                assert!(reason.contains("9 argument words"), "{reason}");
            }
            other => panic!("expected a slot error, got {other:?}"),
        }
        assert!(launch(&[1]).chunks(0, 0).is_err());
    }
}
