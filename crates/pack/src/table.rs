//! The slot table: how a bundle's physical blocks map to (slot, logical block).
//!
//! A bundle launches `total_blocks()` physical blocks in one 1-D grid. Slot
//! `s` owns the contiguous physical range `first_block .. first_block +
//! num_blocks` (coalescing: slots get disjoint ranges). Within its range a
//! physical block `p` runs logical blocks `p - first_block`, then that plus
//! `num_blocks`, and so on while below the slot's logical block count
//! (constraining: a budget smaller than the logical grid makes persistent
//! blocks that loop). With `num_blocks == logical_blocks` each physical block
//! runs exactly one logical block.
//!
//! This mapping is data, not code: the table travels to the device at launch
//! (with each slot's buffer addresses), so one compiled bundle module serves
//! any tenants, any block ranges and any budgets. [`SlotTable::logical_blocks`]
//! is the single definition of the mapping; the CUDA dispatcher emitted by the
//! code generator implements the same arithmetic, and the interpreter runs
//! bundles through this function.

use weft_kir::LaunchShape;

/// One slot's row of the table.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct SlotEntry {
    /// Index of the slot's kernel body among the bundle's distinct bodies.
    pub body: u32,
    /// First physical block of the slot's range.
    pub first_block: u32,
    /// Physical blocks the slot owns (its block budget).
    pub num_blocks: u32,
    /// The kernel's logical grid.
    pub grid: [u32; 3],
    /// Threads of one logical block of the slot's kernel.
    pub threads: u32,
}

impl SlotEntry {
    /// Logical blocks of the slot's kernel.
    pub fn logical_blocks(&self) -> u64 {
        self.grid.iter().map(|&d| d as u64).product()
    }

    /// Logical blocks the busiest physical block of the slot runs (the
    /// slot's length in "block rounds").
    pub fn rounds(&self) -> u64 {
        self.logical_blocks().div_ceil(self.num_blocks.max(1) as u64)
    }

    /// Splits a linear logical block id into `(x, y, z)`.
    pub fn logical_coords(&self, linear: u64) -> [u32; 3] {
        let [gx, gy, _] = self.grid;
        let x = linear % gx as u64;
        let y = (linear / gx as u64) % gy as u64;
        let z = linear / (gx as u64 * gy as u64);
        [x as u32, y as u32, z as u32]
    }
}

/// The slot table of one bundle, in physical-block order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SlotTable {
    pub entries: Vec<SlotEntry>,
}

impl SlotTable {
    /// Lays slots out back to back: `budgets[i]` physical blocks for a slot
    /// of kernel body `bodies[i]` with launch shape `shapes[i]`.
    pub fn layout(slots: &[(u32, LaunchShape, u32)]) -> SlotTable {
        let mut first = 0u32;
        let entries = slots
            .iter()
            .map(|&(body, shape, budget)| {
                let e = SlotEntry {
                    body,
                    first_block: first,
                    num_blocks: budget,
                    grid: shape.grid,
                    threads: shape.threads_per_block() as u32,
                };
                first += budget;
                e
            })
            .collect();
        SlotTable { entries }
    }

    /// Whether every slot runs each of its logical blocks on a physical
    /// block of its own (a coalesced launch: every `rounds()` is 1), so no
    /// physical block loops over logical blocks.
    pub fn single_pass(&self) -> bool {
        self.entries.iter().all(|e| e.rounds() <= 1)
    }

    /// Physical blocks of the launch.
    pub fn total_blocks(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.first_block + e.num_blocks)
    }

    /// The slot owning physical block `physical`, if any.
    pub fn slot_of(&self, physical: u32) -> Option<usize> {
        // Entries are sorted by first_block: binary search for the last entry starting at or before it.
        let idx = self.entries.partition_point(|e| e.first_block <= physical);
        let s = idx.checked_sub(1)?;
        let e = &self.entries[s];
        (physical < e.first_block + e.num_blocks).then_some(s)
    }

    /// The `(slot, linear logical block)` pairs physical block `physical`
    /// runs, in order.
    pub fn logical_blocks(&self, physical: u32) -> impl Iterator<Item = (usize, u64)> + '_ {
        let found = self.slot_of(physical).map(|s| (s, &self.entries[s]));
        found.into_iter().flat_map(move |(s, e)| {
            let start = (physical - e.first_block) as u64;
            (start..e.logical_blocks()).step_by(e.num_blocks.max(1) as usize).map(move |lb| (s, lb))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_logical_block_runs_exactly_once() {
        let table = SlotTable::layout(&[
            (0, LaunchShape::new([5, 3, 1], [64, 1, 1]), 15),
            (1, LaunchShape::new([7, 1, 2], [128, 1, 1]), 4),
            (0, LaunchShape::new([5, 3, 1], [64, 1, 1]), 1),
        ]);
        assert_eq!(table.total_blocks(), 20);
        let mut seen = vec![vec![0u32; 15], vec![0u32; 14], vec![0u32; 15]];
        for p in 0..table.total_blocks() {
            for (s, lb) in table.logical_blocks(p) {
                seen[s][lb as usize] += 1;
            }
        }
        assert!(seen.iter().flatten().all(|&n| n == 1), "{seen:?}");
        assert_eq!(table.slot_of(20), None);
        assert_eq!(table.entries[1].rounds(), 4);
        assert_eq!(table.entries[1].logical_coords(13), [6, 0, 1]);
    }
}
