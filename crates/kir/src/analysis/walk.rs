//! A panic-free, non-recursive pre-order walk of a kernel's region tree.
//!
//! [`KernelDef::walk`] indexes the arenas directly and recurses, which is right
//! for verified kernels but would panic (or overflow the stack) on a malformed
//! one: a region id out of range, a region reachable from two instructions, a
//! region that contains its own owner. The verifier and every analysis must
//! survive such kernels, so they walk through this module instead: it skips
//! ids that do not exist, enters each region at most once, and keeps its own
//! stack on the heap.

use cranelift_entity::SecondaryMap;

use crate::entities::{Inst, Region};
use crate::inst::InstData;
use crate::kernel::KernelDef;

/// Which nested region of its owner a region is.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Arm {
    /// The body of a `for`.
    LoopBody,
    /// The `then` arm of an `if`.
    Then,
    /// The `else` arm of an `if`.
    Else,
}

/// One step of the walk, in text order.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Event {
    /// An instruction, visited before the regions nested in it.
    Inst(Inst),
    /// Entering `region`, nested in `owner` as `arm`.
    Enter { owner: Inst, region: Region, arm: Arm },
    /// Leaving the region entered by the matching `Enter`.
    Leave { owner: Inst, region: Region, arm: Arm },
}

/// The nested regions of `data` with their arm, in text order.
pub(crate) fn arms(data: &InstData) -> Vec<(Region, Arm)> {
    match *data {
        InstData::For { body, .. } => vec![(body, Arm::LoopBody)],
        InstData::If { then, else_, .. } => {
            std::iter::once((then, Arm::Then)).chain(else_.map(|r| (r, Arm::Else))).collect()
        }
        _ => vec![],
    }
}

/// Every event of the walk from the kernel's body. Instruction ids that do
/// not exist are skipped (the verifier reports them); a region is entered at
/// most once, so a malformed tree with shared or cyclic regions still ends.
pub(crate) fn events(k: &KernelDef) -> Vec<Event> {
    enum Work {
        Region(Region, usize),
        Emit(Event),
    }
    let mut out = Vec::new();
    let mut entered: SecondaryMap<Region, bool> = SecondaryMap::new();
    if !k.regions.is_valid(k.body) {
        return out;
    }
    entered[k.body] = true;
    let mut stack = vec![Work::Region(k.body, 0)];
    while let Some(work) = stack.pop() {
        let (region, pos) = match work {
            Work::Emit(e) => {
                out.push(e);
                continue;
            }
            Work::Region(region, pos) => (region, pos),
        };
        let Some(&inst) = k.regions.get(region).and_then(|insts| insts.get(pos)) else {
            continue;
        };
        // Resume this region after the instruction and its nested regions.
        stack.push(Work::Region(region, pos + 1));
        let Some(data) = k.insts.get(inst) else {
            continue;
        };
        out.push(Event::Inst(inst));
        // Pushed in reverse so that they pop in text order: enter, contents, leave.
        for (r, arm) in arms(data).into_iter().rev() {
            if !k.regions.is_valid(r) || entered[r] {
                continue;
            }
            entered[r] = true;
            stack.push(Work::Emit(Event::Leave { owner: inst, region: r, arm }));
            stack.push(Work::Region(r, 0));
            stack.push(Work::Emit(Event::Enter { owner: inst, region: r, arm }));
        }
    }
    out
}
