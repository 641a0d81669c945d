//! Active lanes and the loops that run an operation over them.
//!
//! The interpreter executes a block in SIMT lock-step: each instruction runs
//! once for all threads of the block, each value is a lane array of `u64`
//! bits (one slot per thread, `Scalar::to_bits` format). An instruction runs
//! over an active set of lanes, [`Lanes`]: either every thread of the block
//! (the common case, a tight loop over zipped slices that LLVM vectorises) or
//! an explicit sorted list of lane indices after divergence.
//!
//! The `map*` helpers take the per-lane operation as a closure, so callers
//! dispatch on the type once per instruction and the closure is
//! monomorphised into the loop: no per-lane `match`.

/// The lanes (threads of a block, by linear id) an instruction runs for.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Lanes<'a> {
    /// Lanes `0..n`: every thread of the block.
    All(usize),
    /// These lanes, ascending.
    Some(&'a [u32]),
}

impl Lanes<'_> {
    /// How many lanes are active.
    pub(crate) fn count(self) -> usize {
        match self {
            Lanes::All(n) => n,
            Lanes::Some(list) => list.len(),
        }
    }

    /// Calls `f` for each active lane in ascending order.
    #[inline(always)]
    pub(crate) fn for_each(self, mut f: impl FnMut(usize)) {
        match self {
            Lanes::All(n) => (0..n).for_each(f),
            Lanes::Some(list) => list.iter().for_each(|&l| f(l as usize)),
        }
    }

    /// Calls `f` for each active lane in ascending order, stopping at the
    /// first error.
    #[inline(always)]
    pub(crate) fn try_for_each<E>(self, mut f: impl FnMut(usize) -> Result<(), E>) -> Result<(), E> {
        match self {
            Lanes::All(n) => (0..n).try_for_each(f),
            Lanes::Some(list) => list.iter().try_for_each(|&l| f(l as usize)),
        }
    }
}

/// `dst[l] = f(a[l])` for every active lane.
#[inline(always)]
pub(crate) fn map1(lanes: Lanes, dst: &mut [u64], a: &[u64], f: impl Fn(u64) -> u64) {
    match lanes {
        Lanes::All(n) => {
            for (d, &x) in dst[..n].iter_mut().zip(&a[..n]) {
                *d = f(x);
            }
        }
        Lanes::Some(list) => {
            for &l in list {
                let l = l as usize;
                dst[l] = f(a[l]);
            }
        }
    }
}

/// `dst[l] = f(a[l], b[l])` for every active lane.
#[inline(always)]
pub(crate) fn map2(lanes: Lanes, dst: &mut [u64], a: &[u64], b: &[u64], f: impl Fn(u64, u64) -> u64) {
    match lanes {
        Lanes::All(n) => {
            for ((d, &x), &y) in dst[..n].iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *d = f(x, y);
            }
        }
        Lanes::Some(list) => {
            for &l in list {
                let l = l as usize;
                dst[l] = f(a[l], b[l]);
            }
        }
    }
}

/// `dst[l] = f(a[l], b[l], c[l])` for every active lane.
#[inline(always)]
pub(crate) fn map3(lanes: Lanes, dst: &mut [u64], a: &[u64], b: &[u64], c: &[u64], f: impl Fn(u64, u64, u64) -> u64) {
    match lanes {
        Lanes::All(n) => {
            for (((d, &x), &y), &z) in dst[..n].iter_mut().zip(&a[..n]).zip(&b[..n]).zip(&c[..n]) {
                *d = f(x, y, z);
            }
        }
        Lanes::Some(list) => {
            for &l in list {
                let l = l as usize;
                dst[l] = f(a[l], b[l], c[l]);
            }
        }
    }
}

/// `dst[l] = f(a[l], b[l])` where `f` may fail; returns the first failing lane.
#[inline(always)]
pub(crate) fn try_map2(
    lanes: Lanes,
    dst: &mut [u64],
    a: &[u64],
    b: &[u64],
    f: impl Fn(u64, u64) -> Option<u64>,
) -> Result<(), usize> {
    lanes.try_for_each(|l| {
        dst[l] = f(a[l], b[l]).ok_or(l)?;
        Ok(())
    })
}
