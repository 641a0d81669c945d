//! Warp shuffles over a block's lane arrays.
//!
//! A warp is 32 consecutive threads of the block by linear id (the last warp
//! may be partial). Because the block runs in lock-step, a shuffle is a
//! gather from the value's lane array: every lane reads its source lane's
//! bits, all before any result is written (the result is a fresh SSA value,
//! so there is nothing to overwrite).
//!
//! KIR shuffles are `__shfl_*_sync` over the full warp mask, so every existing
//! lane of a participating warp must be active; anything else is an error,
//! as it is undefined behaviour on the GPU.
//!
//! Semantics (segments of `width` lanes, `width` a power of two ≤ 32): `idx`
//! reads lane `operand mod width` of the segment; `up`/`down` read
//! `lane ∓ operand` and keep their own value when that leaves the segment;
//! `xor` reads `lane ^ operand`, keeping its own value when that leaves the
//! segment. A source past the block's last thread (a partial warp) also
//! yields the lane's own value.

use weft_kir::{ShuffleKind, Target, Type};

use crate::lanes::Lanes;
use crate::ops::int_value;

// KIR's warps are the warps of every target weft compiles for (the
// verifier checks shuffle widths against the target's warp size).
pub(crate) const WARP_SIZE: usize = Target::SM_90.warp_size as usize;

/// Why a shuffle could not run.
#[derive(Clone, PartialEq, Debug)]
pub(crate) enum ShuffleFault {
    /// Not every existing lane of warp `warp` was active.
    Divergent { warp: u32, active: u32, expected: u32 },
    /// The width is not a power of two in `1..=32`, or the operand is not an integer.
    Invalid(String),
}

/// Checks that every warp with an active lane has all its lanes active.
fn check_full_warps(lanes: Lanes, n: usize) -> Result<(), ShuffleFault> {
    let Lanes::Some(list) = lanes else { return Ok(()) };
    let mut i = 0;
    while i < list.len() {
        let warp = list[i] as usize / WARP_SIZE;
        let run = list[i..].iter().take_while(|&&l| l as usize / WARP_SIZE == warp).count();
        let expected = WARP_SIZE.min(n - warp * WARP_SIZE);
        if run != expected {
            return Err(ShuffleFault::Divergent { warp: warp as u32, active: run as u32, expected: expected as u32 });
        }
        i += run;
    }
    Ok(())
}

/// Runs one shuffle for the active lanes of a block of `n` threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn shuffle(
    kind: ShuffleKind,
    width: u32,
    n: usize,
    lanes: Lanes,
    value: &[u64],
    operand_ty: Type,
    operand: &[u64],
    dst: &mut [u64],
) -> Result<(), ShuffleFault> {
    if !(1..=WARP_SIZE as u32).contains(&width) || !width.is_power_of_two() {
        return Err(ShuffleFault::Invalid(format!("width {width} is not a power of two in 1..=32")));
    }
    if !operand_ty.is_int() {
        return Err(ShuffleFault::Invalid(format!("operand must be an integer, not `{operand_ty}`")));
    }
    check_full_warps(lanes, n)?;
    let w = width as i64;
    lanes.for_each(|l| {
        let warp_base = l - l % WARP_SIZE;
        let lane = (l % WARP_SIZE) as i64;
        let seg = lane & !(w - 1);
        let op = int_value(operand_ty, operand[l]);
        let src = match kind {
            ShuffleKind::Idx => Some(seg + op.rem_euclid(w)),
            ShuffleKind::Up => lane.checked_sub(op),
            ShuffleKind::Down => lane.checked_add(op),
            ShuffleKind::Xor => Some(lane ^ op),
        };
        let src =
            src.filter(|&s| s >= seg && s < seg + w).map(|s| warp_base + s as usize).filter(|&s| s < n).unwrap_or(l);
        dst[l] = value[src];
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: ShuffleKind, width: u32, n: usize, op: i32) -> Vec<u64> {
        let value: Vec<u64> = (0..n as u64).map(|l| 100 + l).collect();
        let operand = vec![op as u32 as u64; n];
        let mut dst = vec![0; n];
        shuffle(kind, width, n, Lanes::All(n), &value, Type::I32, &operand, &mut dst).unwrap();
        dst.iter().map(|v| v - 100).collect()
    }

    #[test]
    fn down_keeps_own_value_past_segment_end() {
        let got = run(ShuffleKind::Down, 8, 32, 3);
        assert_eq!(&got[..8], &[3, 4, 5, 6, 7, 5, 6, 7]);
    }

    #[test]
    fn xor_past_partial_warp_keeps_own_value() {
        // 40 threads: warp 1 has lanes 32..40 only.
        let got = run(ShuffleKind::Xor, 32, 40, 16);
        assert_eq!(got[0], 16);
        assert_eq!(got[33], 33);
    }

    #[test]
    fn idx_wraps_operand_into_segment() {
        let got = run(ShuffleKind::Idx, 4, 8, -1);
        assert_eq!(got, vec![3, 3, 3, 3, 7, 7, 7, 7]);
    }

    #[test]
    fn partial_warp_participation_is_divergent() {
        let list: Vec<u32> = (0..31).collect();
        let v = vec![0; 32];
        let mut dst = vec![0; 32];
        let err = shuffle(ShuffleKind::Up, 32, 32, Lanes::Some(&list), &v, Type::I32, &v, &mut dst).unwrap_err();
        assert_eq!(err, ShuffleFault::Divergent { warp: 0, active: 31, expected: 32 });
    }
}
