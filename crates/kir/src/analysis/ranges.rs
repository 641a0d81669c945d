//! Access ranges: the element indices every global and shared access can touch.
//!
//! This is the analysis behind DESIGN.md principle 5 (tenants cannot see each
//! other): the packer fuses kernels of different tenants only when every
//! global access is proven inside its own buffer.
//!
//! Each integer value gets an interval `[lo, hi]` (in `i128`, so arithmetic on
//! `i64` bounds cannot overflow) or is unknown:
//! - constants are exact; `block_id.a` is in `[0, grid[a]-1]`, `thread_id.a`
//!   in `[0, block[a]-1]`, dims are exact, `lane_id` is in `[0, 31]`;
//! - `add`, `sub`, `mul`, `min`, `max`, `neg`, `abs` are interval arithmetic;
//!   `div`/`rem` need a divisor interval that excludes zero; `shl`/`shr` need
//!   a constant shift; `and` with a non-negative side `m` is in `[0, m.hi]`;
//!   `select` is the union of its arms (or one arm when the condition is
//!   decided); integer casts keep the interval when it fits the target type;
//! - a result that does not fit its type is unknown, because KIR integer
//!   arithmetic wraps and a wrapped value can be anywhere;
//! - a `for` index is in `[start.lo, end.hi - 1]`, tightened to the last
//!   reachable multiple of the step when `start` is exact; a loop whose
//!   interval is empty never runs and everything inside it is unreachable;
//! - loads, scalar parameters, `var_get`, shuffles and floats are unknown
//!   (booleans are always in `[0, 1]`).
//!
//! Path sensitivity: inside `if cond`, the analysis assumes `cond` and refines
//! the values compared in it: `lt`/`le`/`gt`/`ge`/`eq`/`ne` on integers with
//! either side the refined value, through `and` (both hold) and `not`; the
//! `else` arm assumes `!cond`, which refines through `or` (neither holds) and
//! single comparisons. Every value used inside the arm is evaluated again
//! from the refined facts, including values defined before the `if`, so both
//! `let idx = r * K + c; if r < M && c < K { load a[idx] }` and the same with
//! `idx` computed inside the arm are proven. An arm whose assumption is
//! impossible is unreachable. The analysis is not relational: it does not
//! know that `i + 1 < n` bounds `i`.
//!
//! An access is proven when its interval lies in `[0, len - 1]` of its buffer
//! or shared array, or when it is unreachable. Intervals over-approximate, so
//! an access that is not proven may still be safe; it needs a guard.

use std::collections::{HashMap, HashSet};
use std::fmt;

use cranelift_entity::SecondaryMap;

use crate::analysis::walk::{events, Arm, Event};
use crate::entities::{Inst, Param, Region, Shared, Value};
use crate::inst::{BinaryOp, CmpOp, InstData, Special, UnaryOp};
use crate::kernel::{KernelDef, ParamKind, ValueDef};
use crate::types::{Scalar, Type};

/// A closed interval of integers, `lo <= hi`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Interval {
    pub lo: i128,
    pub hi: i128,
}

impl Interval {
    /// `[lo, hi]`, or `None` when it is empty.
    pub fn new(lo: i128, hi: i128) -> Option<Interval> {
        (lo <= hi).then_some(Interval { lo, hi })
    }

    /// The single value `v`.
    pub fn point(v: i128) -> Interval {
        Interval { lo: v, hi: v }
    }

    /// The constant this interval holds, when it holds one value.
    pub fn as_point(self) -> Option<i128> {
        (self.lo == self.hi).then_some(self.lo)
    }

    pub fn contains(self, other: Interval) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }

    pub fn intersect(self, other: Interval) -> Option<Interval> {
        Interval::new(self.lo.max(other.lo), self.hi.min(other.hi))
    }

    pub fn union(self, other: Interval) -> Interval {
        Interval { lo: self.lo.min(other.lo), hi: self.hi.max(other.hi) }
    }

    /// Every value of an integer or boolean type; `None` for floats.
    pub fn of_type(ty: Type) -> Option<Interval> {
        ty.int_range().map(|(lo, hi)| Interval { lo, hi })
    }

    /// The indices `0..len`, or `None` for an empty array.
    fn of_len(len: u64) -> Option<Interval> {
        Interval::new(0, len as i128 - 1)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.lo, self.hi)
    }
}

/// What an access's index can be.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum IndexRange {
    /// Every index the access can use lies in this interval.
    Within(Interval),
    /// The analysis could not bound the index.
    Unknown,
    /// The access can never execute (an empty loop or an impossible `if` arm).
    Unreachable,
}

impl IndexRange {
    fn proven_within(self, len: u64) -> bool {
        match self {
            IndexRange::Within(iv) => Interval::of_len(len).is_some_and(|all| all.contains(iv)),
            IndexRange::Unknown => false,
            IndexRange::Unreachable => true,
        }
    }
}

/// Whether an access reads or writes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum AccessKind {
    Load,
    Store,
}

impl AccessKind {
    pub fn name(self) -> &'static str {
        match self {
            AccessKind::Load => "load",
            AccessKind::Store => "store",
        }
    }
}

/// One global `load` or `store` and the indices it can touch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccessRange {
    pub inst: Inst,
    pub kind: AccessKind,
    pub buf: Param,
    /// The buffer's length in elements.
    pub len: u64,
    pub index: IndexRange,
}

impl AccessRange {
    /// True when every index the access can use is in `[0, len - 1]`.
    pub fn is_proven(&self) -> bool {
        self.index.proven_within(self.len)
    }
}

/// One `shared_load` or `shared_store` and the indices it can touch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SharedAccessRange {
    pub inst: Inst,
    pub kind: AccessKind,
    pub array: Shared,
    /// The array's length in elements.
    pub len: u32,
    pub index: IndexRange,
}

impl SharedAccessRange {
    /// True when every index the access can use is in `[0, len - 1]`.
    pub fn is_proven(&self) -> bool {
        self.index.proven_within(self.len as u64)
    }
}

/// Every global access of `kernel`, in text order.
pub fn access_ranges(kernel: &KernelDef) -> Vec<AccessRange> {
    analyze(kernel).global
}

/// Every shared-memory access of `kernel`, in text order.
pub fn shared_ranges(kernel: &KernelDef) -> Vec<SharedAccessRange> {
    analyze(kernel).shared
}

/// How many times a `for` body runs, as far as the bounds' intervals tell.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct TripCount {
    /// The most iterations any thread can run (`None`: the bounds are unknown).
    pub max: Option<u128>,
    /// True when both bounds are constants, so `max` is exact.
    pub exact: bool,
}

/// Everything one walk learns.
pub(crate) struct RangeFacts {
    pub global: Vec<AccessRange>,
    pub shared: Vec<SharedAccessRange>,
    pub trips: SecondaryMap<Inst, Option<TripCount>>,
    pub unreachable: SecondaryMap<Region, bool>,
}

/// Walks `kernel` once, evaluating every access index in its path context.
pub(crate) fn analyze(k: &KernelDef) -> RangeFacts {
    let mut engine = Engine { k, levels: vec![Level::default()] };
    let mut facts = RangeFacts {
        global: Vec::new(),
        shared: Vec::new(),
        trips: SecondaryMap::new(),
        unreachable: SecondaryMap::new(),
    };
    for e in events(k) {
        match e {
            Event::Inst(i) => {
                let Some(data) = k.insts.get(i) else { continue };
                match *data {
                    InstData::Load { buf, index } | InstData::Store { buf, index, .. } => {
                        let Some(ParamKind::Buffer { len, .. }) = k.params.get(buf).map(|p| &p.kind) else {
                            continue;
                        };
                        let kind =
                            if matches!(data, InstData::Load { .. }) { AccessKind::Load } else { AccessKind::Store };
                        let index = engine.index_range(index);
                        facts.global.push(AccessRange { inst: i, kind, buf, len: *len, index });
                    }
                    InstData::SharedLoad { array, index } | InstData::SharedStore { array, index, .. } => {
                        let Some(sd) = k.shared.get(array) else { continue };
                        let kind = if matches!(data, InstData::SharedLoad { .. }) {
                            AccessKind::Load
                        } else {
                            AccessKind::Store
                        };
                        let index = engine.index_range(index);
                        facts.shared.push(SharedAccessRange { inst: i, kind, array, len: sd.len, index });
                    }
                    InstData::For { start, end, step, .. } => {
                        facts.trips[i] = Some(engine.trip_count(start, end, step));
                    }
                    _ => {}
                }
            }
            Event::Enter { owner, region, arm } => {
                let parent_unreachable = engine.unreachable();
                engine.levels.push(Level { unreachable: parent_unreachable, ..Level::default() });
                match (arm, k.insts.get(owner)) {
                    (Arm::LoopBody, _) if facts.trips[owner].is_some_and(|t| t.max == Some(0)) => {
                        engine.set_unreachable()
                    }
                    (Arm::Then, Some(&InstData::If { cond, .. })) => engine.assume(cond, true),
                    (Arm::Else, Some(&InstData::If { cond, .. })) => engine.assume(cond, false),
                    _ => {}
                }
                facts.unreachable[region] = engine.unreachable();
            }
            Event::Leave { .. } => {
                // Events are balanced, but never pop the root level.
                if engine.levels.len() > 1 {
                    engine.levels.pop();
                }
            }
        }
    }
    facts
}

/// Facts that hold in one region: refined intervals assumed from enclosing
/// `if` conditions, and intervals computed under them.
#[derive(Default)]
struct Level {
    overrides: HashMap<Value, Interval>,
    cache: HashMap<Value, Option<Interval>>,
    unreachable: bool,
}

struct Engine<'k> {
    k: &'k KernelDef,
    /// Root first, innermost region last.
    levels: Vec<Level>,
}

/// Most values one evaluation may visit, so a pathological kernel cannot make
/// the analysis run for long; values beyond it are unknown.
const EVAL_BUDGET: usize = 1 << 16;

impl Engine<'_> {
    fn unreachable(&self) -> bool {
        self.levels.last().is_some_and(|l| l.unreachable)
    }

    fn set_unreachable(&mut self) {
        if let Some(l) = self.levels.last_mut() {
            l.unreachable = true;
        }
    }

    fn index_range(&mut self, index: Value) -> IndexRange {
        if self.unreachable() {
            return IndexRange::Unreachable;
        }
        match self.eval(index) {
            Some(iv) => IndexRange::Within(iv),
            None => IndexRange::Unknown,
        }
    }

    fn trip_count(&mut self, start: Value, end: Value, step: i64) -> TripCount {
        let (s, e) = (self.eval(start), self.eval(end));
        match (s, e) {
            (Some(s), Some(e)) if step > 0 => {
                let span = (e.hi - s.lo).max(0);
                let step = step as i128;
                let max = (span + step - 1) / step;
                TripCount { max: Some(max as u128), exact: s.as_point().is_some() && e.as_point().is_some() }
            }
            _ => TripCount { max: None, exact: false },
        }
    }

    /// The interval of `v` in the current context, if one is known to the
    /// current level: `Some(None)` means "computed, unknown".
    fn lookup(&self, v: Value) -> Option<Option<Interval>> {
        for level in self.levels.iter().rev() {
            if let Some(&iv) = level.overrides.get(&v) {
                return Some(Some(iv));
            }
        }
        // Cached results stay valid in nested levels until a level that
        // assumed something new; past it they may be less precise.
        for level in self.levels.iter().rev() {
            if let Some(&r) = level.cache.get(&v) {
                return Some(r);
            }
            if !level.overrides.is_empty() {
                break;
            }
        }
        None
    }

    fn store(&mut self, v: Value, r: Option<Interval>) {
        if let Some(l) = self.levels.last_mut() {
            l.cache.insert(v, r);
        }
    }

    /// Adds an assumption to the innermost level; an empty interval makes it unreachable.
    fn refine(&mut self, v: Value, iv: Option<Interval>) {
        let Some(l) = self.levels.last_mut() else { return };
        match iv {
            Some(iv) => {
                l.overrides.insert(v, iv);
                // Cached results may depend on `v`'s old interval.
                l.cache.clear();
            }
            None => l.unreachable = true,
        }
    }

    /// The values `v`'s interval is computed from.
    fn deps(&self, v: Value) -> Vec<Value> {
        let Some(vd) = self.k.values.get(v) else { return vec![] };
        match vd.def {
            ValueDef::Result(i) => match self.k.insts.get(i) {
                Some(
                    d @ (InstData::Unary { .. }
                    | InstData::Binary { .. }
                    | InstData::Cmp { .. }
                    | InstData::Select { .. }
                    | InstData::Cast { .. }),
                ) => d.operands(),
                _ => vec![],
            },
            ValueDef::LoopIndex(i) => match self.k.insts.get(i) {
                Some(&InstData::For { start, end, .. }) => vec![start, end],
                _ => vec![],
            },
            ValueDef::Undefined => vec![],
        }
    }

    /// The interval of `root` in the current context. Iterative, so long
    /// chains of arithmetic cannot overflow the stack; a value that depends
    /// on itself (only in malformed kernels) is unknown.
    fn eval(&mut self, root: Value) -> Option<Interval> {
        if let Some(r) = self.lookup(root) {
            return r;
        }
        let mut stack = vec![root];
        let mut in_progress: HashSet<Value> = HashSet::from([root]);
        let mut budget = EVAL_BUDGET;
        while let Some(&v) = stack.last() {
            budget = budget.saturating_sub(1);
            let mut waiting = false;
            if budget > 0 {
                for d in self.deps(v) {
                    if self.lookup(d).is_none() && in_progress.insert(d) {
                        stack.push(d);
                        waiting = true;
                    }
                }
            }
            if waiting {
                continue;
            }
            stack.pop();
            let r = if budget > 0 { self.compute(v) } else { None };
            let r =
                r.or_else(|| self.k.values.get(v).filter(|d| d.ty == Type::Bool).map(|_| Interval { lo: 0, hi: 1 }));
            self.store(v, r);
        }
        self.lookup(root).flatten()
    }

    /// An operand's interval; only called once its dependencies are computed.
    fn get(&self, v: Value) -> Option<Interval> {
        self.lookup(v).flatten()
    }

    /// `v`'s interval from its definition, given its operands' intervals.
    fn compute(&self, v: Value) -> Option<Interval> {
        let k = self.k;
        let vd = k.values.get(v)?;
        let ty = vd.ty;
        let r = match vd.def {
            ValueDef::Undefined => None,
            ValueDef::LoopIndex(i) => match k.insts.get(i)? {
                &InstData::For { start, end, step, .. } => loop_index(self.get(start), self.get(end), step, ty),
                _ => None,
            },
            ValueDef::Result(i) => match *k.insts.get(i)? {
                InstData::Const(s) => const_interval(s),
                InstData::Special(s) => special_interval(k, s),
                InstData::Unary { op, arg } => unary(op, self.get(arg)?, ty),
                InstData::Binary { op, lhs, rhs } => binary(op, self.get(lhs), self.get(rhs), ty),
                InstData::Cmp { op, lhs, rhs } => {
                    let int = k.values.get(lhs).is_some_and(|d| !d.ty.is_float());
                    let decided = if int { decide(op, self.get(lhs)?, self.get(rhs)?) } else { None };
                    Some(decided.map_or(Interval { lo: 0, hi: 1 }, |b| Interval::point(b as i128)))
                }
                InstData::Select { cond, if_true, if_false } => match self.get(cond).and_then(Interval::as_point) {
                    Some(1) => self.get(if_true),
                    Some(0) => self.get(if_false),
                    _ => Some(self.get(if_true)?.union(self.get(if_false)?)),
                },
                InstData::Cast { to, arg } => {
                    let from = k.values.get(arg)?.ty;
                    if from.is_float() {
                        None
                    } else if to == Type::Bool {
                        let a = self.get(arg)?;
                        Some(if a.as_point() == Some(0) {
                            Interval::point(0)
                        } else if a.lo > 0 || a.hi < 0 {
                            Interval::point(1)
                        } else {
                            Interval { lo: 0, hi: 1 }
                        })
                    } else {
                        self.get(arg)
                    }
                }
                _ => None,
            },
        };
        // KIR integer arithmetic wraps: a result outside its type could be anything.
        r.filter(|iv| Interval::of_type(ty).is_some_and(|all| all.contains(*iv)))
    }

    /// Assumes `cond` is `holds` in the innermost level.
    fn assume(&mut self, cond: Value, holds: bool) {
        let mut work = vec![(cond, holds)];
        let mut seen = HashSet::new();
        while let Some((c, holds)) = work.pop() {
            if !seen.insert((c, holds)) {
                continue;
            }
            let Some(vd) = self.k.values.get(c) else { continue };
            if vd.ty != Type::Bool {
                continue;
            }
            let here = self.eval(c);
            let want = Interval::point(holds as i128);
            self.refine(c, here.and_then(|h| h.intersect(want)));
            let ValueDef::Result(i) = vd.def else { continue };
            match self.k.insts.get(i) {
                Some(&InstData::Binary { op: BinaryOp::And, lhs, rhs }) if holds => {
                    work.push((lhs, true));
                    work.push((rhs, true));
                }
                Some(&InstData::Binary { op: BinaryOp::Or, lhs, rhs }) if !holds => {
                    work.push((lhs, false));
                    work.push((rhs, false));
                }
                Some(&InstData::Unary { op: UnaryOp::Not, arg }) => work.push((arg, !holds)),
                Some(&InstData::Cmp { op, lhs, rhs }) => {
                    let op = if holds { op } else { negate(op) };
                    self.assume_cmp(op, lhs, rhs);
                }
                _ => {}
            }
        }
    }

    /// Narrows `lhs` and `rhs` so that `lhs op rhs` holds.
    fn assume_cmp(&mut self, op: CmpOp, lhs: Value, rhs: Value) {
        let (Some(lt), Some(rt)) = (self.k.values.get(lhs).map(|d| d.ty), self.k.values.get(rhs).map(|d| d.ty)) else {
            return;
        };
        // Floats have no intervals; mixed types are a verifier error.
        let (Some(lall), Some(rall)) = (Interval::of_type(lt), Interval::of_type(rt)) else { return };
        if lt != rt {
            return;
        }
        let a = self.eval(lhs).unwrap_or(lall);
        let b = self.eval(rhs).unwrap_or(rall);
        let (na, nb) = match op {
            CmpOp::Lt => (Interval::new(a.lo, a.hi.min(b.hi - 1)), Interval::new(b.lo.max(a.lo + 1), b.hi)),
            CmpOp::Le => (Interval::new(a.lo, a.hi.min(b.hi)), Interval::new(b.lo.max(a.lo), b.hi)),
            CmpOp::Gt => (Interval::new(a.lo.max(b.lo + 1), a.hi), Interval::new(b.lo, b.hi.min(a.hi - 1))),
            CmpOp::Ge => (Interval::new(a.lo.max(b.lo), a.hi), Interval::new(b.lo, b.hi.min(a.hi))),
            CmpOp::Eq => (a.intersect(b), a.intersect(b)),
            CmpOp::Ne => (exclude(a, b), exclude(b, a)),
        };
        // Only record what is new, so unknown values stay unknown when the
        // comparison says nothing about them.
        if na != Some(a) {
            self.refine(lhs, na);
        }
        if nb != Some(b) && lhs != rhs {
            self.refine(rhs, nb);
        }
    }
}

/// `a` without the single value of `b` when that value is one of `a`'s ends.
fn exclude(a: Interval, b: Interval) -> Option<Interval> {
    match b.as_point() {
        Some(p) if p == a.lo => Interval::new(a.lo + 1, a.hi),
        Some(p) if p == a.hi => Interval::new(a.lo, a.hi - 1),
        _ => Some(a),
    }
}

/// The comparison that holds exactly when `op` does not (integers only).
fn negate(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::Ne,
        CmpOp::Ne => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Ge,
        CmpOp::Le => CmpOp::Gt,
        CmpOp::Gt => CmpOp::Le,
        CmpOp::Ge => CmpOp::Lt,
    }
}

/// The comparison's outcome when the intervals decide it.
fn decide(op: CmpOp, a: Interval, b: Interval) -> Option<bool> {
    match op {
        CmpOp::Lt if a.hi < b.lo => Some(true),
        CmpOp::Lt if a.lo >= b.hi => Some(false),
        CmpOp::Le if a.hi <= b.lo => Some(true),
        CmpOp::Le if a.lo > b.hi => Some(false),
        CmpOp::Gt => decide(CmpOp::Lt, b, a),
        CmpOp::Ge => decide(CmpOp::Le, b, a),
        CmpOp::Eq if a.as_point().is_some() && a == b => Some(true),
        CmpOp::Eq if a.intersect(b).is_none() => Some(false),
        CmpOp::Ne => decide(CmpOp::Eq, a, b).map(|eq| !eq),
        _ => None,
    }
}

fn const_interval(s: Scalar) -> Option<Interval> {
    s.as_i64().map(|v| Interval::point(v as i128))
}

fn special_interval(k: &KernelDef, s: Special) -> Option<Interval> {
    let below = |n: u32| Interval::new(0, n as i128 - 1);
    match s {
        Special::BlockId(a) => below(k.launch.grid[a.index()]),
        Special::ThreadId(a) => below(k.launch.block[a.index()]),
        Special::BlockDim(a) => Some(Interval::point(k.launch.block[a.index()] as i128)),
        Special::GridDim(a) => Some(Interval::point(k.launch.grid[a.index()] as i128)),
        Special::LaneId => Some(Interval { lo: 0, hi: 31 }),
    }
}

/// A loop index's interval; an empty loop gives `None` (its body is unreachable anyway).
fn loop_index(start: Option<Interval>, end: Option<Interval>, step: i64, ty: Type) -> Option<Interval> {
    let all = Interval::of_type(ty)?;
    if start.is_none() && end.is_none() {
        return None;
    }
    let lo = start.map_or(all.lo, |s| s.lo);
    let mut hi = end.map_or(all.hi, |e| e.hi) - 1;
    // With an exact start the index only takes start + k*step, so the last
    // value is the largest such one below the end.
    if let (Some(s), true) = (start.and_then(Interval::as_point), step > 1) {
        if hi >= s {
            hi = s + (hi - s) / step as i128 * step as i128;
        }
    }
    Interval::new(lo, hi)
}

fn unary(op: UnaryOp, a: Interval, ty: Type) -> Option<Interval> {
    match op {
        UnaryOp::Neg if ty.is_int() => Interval::new(-a.hi, -a.lo),
        UnaryOp::Abs if ty.is_int() => Some(if a.lo >= 0 {
            a
        } else if a.hi <= 0 {
            Interval { lo: -a.hi, hi: -a.lo }
        } else {
            Interval { lo: 0, hi: a.hi.max(-a.lo) }
        }),
        UnaryOp::Not if ty == Type::Bool => Interval::new(1 - a.hi, 1 - a.lo),
        UnaryOp::Not if ty.is_signed_int() => Interval::new(-a.hi - 1, -a.lo - 1),
        UnaryOp::Not if ty.is_int() => {
            let max = ty.int_range()?.1;
            Interval::new(max - a.hi, max - a.lo)
        }
        _ => None,
    }
}

/// The interval of `lhs op rhs`; either side may be unknown.
fn binary(op: BinaryOp, a: Option<Interval>, b: Option<Interval>, ty: Type) -> Option<Interval> {
    if ty.is_float() {
        return None;
    }
    if ty == Type::Bool {
        return bool_binary(op, a?, b?);
    }
    // `x & m` with `m >= 0` keeps only bits of `m`, whatever `x` is.
    if op == BinaryOp::And {
        let mask = |m: Option<Interval>| m.filter(|m| m.lo >= 0).map(|m| m.hi);
        return match (mask(a), mask(b)) {
            (Some(x), Some(y)) => Interval::new(0, x.min(y)),
            (Some(x), None) | (None, Some(x)) => Interval::new(0, x),
            (None, None) => None,
        };
    }
    let (a, b) = (a?, b?);
    let corners = |f: fn(i128, i128) -> i128| {
        let c = [f(a.lo, b.lo), f(a.lo, b.hi), f(a.hi, b.lo), f(a.hi, b.hi)];
        Interval::new(*c.iter().min()?, *c.iter().max()?)
    };
    match op {
        BinaryOp::Add => Interval::new(a.lo + b.lo, a.hi + b.hi),
        BinaryOp::Sub => Interval::new(a.lo - b.hi, a.hi - b.lo),
        // Operands fit in 64 bits (results that do not fit their type are
        // dropped), so products of two fit in i128.
        BinaryOp::Mul => corners(|x, y| x * y),
        BinaryOp::Div if b.lo > 0 || b.hi < 0 => corners(|x, y| x / y),
        BinaryOp::Rem if b.lo > 0 || b.hi < 0 => {
            let max_abs = b.lo.abs().max(b.hi.abs()) - 1;
            let min_abs = b.lo.abs().min(b.hi.abs());
            if a.lo >= 0 && a.hi < min_abs {
                Some(a)
            } else if a.lo >= 0 {
                Interval::new(0, a.hi.min(max_abs))
            } else if a.hi <= 0 {
                Interval::new(a.lo.max(-max_abs), 0)
            } else {
                Interval::new(-max_abs, max_abs)
            }
        }
        BinaryOp::Min => Interval::new(a.lo.min(b.lo), a.hi.min(b.hi)),
        BinaryOp::Max => Interval::new(a.lo.max(b.lo), a.hi.max(b.hi)),
        BinaryOp::Or | BinaryOp::Xor if a.lo >= 0 && b.lo >= 0 => {
            // Both fit in the bits of the larger upper bound.
            let bits = 128 - a.hi.max(b.hi).leading_zeros();
            let lo = if op == BinaryOp::Or { a.lo.max(b.lo) } else { 0 };
            Interval::new(lo, (1i128 << bits) - 1)
        }
        BinaryOp::Shl | BinaryOp::Shr => {
            let width = (ty.size_bytes() * 8) as i128;
            // The shift amount is taken modulo the bit width.
            let k = b.as_point()?.rem_euclid(width) as u32;
            if op == BinaryOp::Shl {
                Interval::new(a.lo << k, a.hi << k)
            } else {
                // Arithmetic shift on signed types is floor division; unsigned
                // intervals are non-negative, where both shifts agree.
                Interval::new(a.lo >> k, a.hi >> k)
            }
        }
        _ => None,
    }
}

fn bool_binary(op: BinaryOp, a: Interval, b: Interval) -> Option<Interval> {
    let both = |f: fn(i128, i128) -> i128| match (a.as_point(), b.as_point()) {
        (Some(x), Some(y)) => Interval::point(f(x, y)),
        _ => Interval { lo: 0, hi: 1 },
    };
    match op {
        BinaryOp::And if a.as_point() == Some(0) || b.as_point() == Some(0) => Some(Interval::point(0)),
        BinaryOp::Or if a.as_point() == Some(1) || b.as_point() == Some(1) => Some(Interval::point(1)),
        BinaryOp::And => Some(both(|x, y| x & y)),
        BinaryOp::Or => Some(both(|x, y| x | y)),
        BinaryOp::Xor => Some(both(|x, y| x ^ y)),
        _ => Some(Interval { lo: 0, hi: 1 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use crate::inst::{Access, Axis};
    use crate::kernel::LaunchShape;

    fn iv(lo: i128, hi: i128) -> IndexRange {
        IndexRange::Within(Interval { lo, hi })
    }

    /// The ragged vector add of the builder docs, optionally unguarded.
    fn vector_add(n: u64, blocks: u32, guarded: bool) -> KernelDef {
        let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(blocks, 256));
        let x = b.buffer("x", Type::F32, n, Access::Read);
        let out = b.buffer("out", Type::F32, n, Access::Write);
        let i = b.global_thread_id(Axis::X);
        let body = |b: &mut KernelBuilder| {
            let xi = b.load(x, i);
            b.store(out, i, xi);
        };
        if guarded {
            let limit = b.const_i32(n as i32);
            let in_range = b.lt(i, limit);
            b.if_(in_range, body);
        } else {
            body(&mut b);
        }
        b.finish()
    }

    #[test]
    fn ragged_vector_add_is_proven() {
        let k = vector_add(1000, 4, true);
        let ranges = access_ranges(&k);
        assert_eq!(ranges.len(), 2);
        for r in &ranges {
            assert_eq!(r.index, iv(0, 999));
            assert_eq!(r.len, 1000);
            assert!(r.is_proven(), "{r:?}");
        }
        assert_eq!(ranges[0].kind, AccessKind::Load);
        assert_eq!(ranges[1].kind, AccessKind::Store);
    }

    #[test]
    fn unguarded_access_past_the_end_is_flagged() {
        let ranges = access_ranges(&vector_add(1000, 4, false));
        assert_eq!(ranges[0].index, iv(0, 1023));
        assert!(!ranges[0].is_proven());
        // An exact fit needs no guard.
        let ranges = access_ranges(&vector_add(1024, 4, false));
        assert!(ranges.iter().all(AccessRange::is_proven));
    }

    #[test]
    fn else_arm_assumes_the_negation() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(4, 256));
        let x = b.buffer("x", Type::F32, 1000, Access::ReadWrite);
        let i = b.global_thread_id(Axis::X);
        let n = b.const_i32(1000);
        let past = b.ge(i, n);
        b.if_else(
            past,
            |b| {
                let v = b.load(x, i);
                b.store(x, i, v);
            },
            |b| {
                let v = b.load(x, i);
                b.store(x, i, v);
            },
        );
        let r = access_ranges(&b.finish());
        assert_eq!(r[0].index, iv(1000, 1023));
        assert!(!r[0].is_proven());
        assert_eq!(r[2].index, iv(0, 999));
        assert!(r[2].is_proven());
    }

    /// A tiled SGEMM-style kernel: C[M, N] = A[M, K] * B[K, N] with 16x16
    /// tiles, ragged in every dimension, guarded by conjunctions.
    fn tiled_sgemm(index_before_if: bool) -> KernelDef {
        const T: i32 = 16;
        let (m, n, kk) = (100, 70, 50);
        let grid = [(n as u32).div_ceil(16), (m as u32).div_ceil(16), 1];
        let mut b = KernelBuilder::new("sgemm", LaunchShape::new(grid, [16, 16, 1]));
        let a = b.buffer("a", Type::F32, (m * kk) as u64, Access::Read);
        let bb = b.buffer("b", Type::F32, (kk * n) as u64, Access::Read);
        let c = b.buffer("c", Type::F32, (m * n) as u64, Access::Write);
        let sa = b.shared_array(Type::F32, (T * T) as u32);
        let sb = b.shared_array(Type::F32, (T * T) as u32);
        let tx = b.thread_id(Axis::X);
        let ty = b.thread_id(Axis::Y);
        let bx = b.block_id(Axis::X);
        let by = b.block_id(Axis::Y);
        let tile = b.const_i32(T);
        let by_t = b.mul(by, tile);
        let row = b.add(by_t, ty);
        let bx_t = b.mul(bx, tile);
        let col = b.add(bx_t, tx);
        let mv = b.const_i32(m);
        let nv = b.const_i32(n);
        let kv = b.const_i32(kk);
        let zero_f = b.const_f32(0.0);
        let acc = b.var_init(zero_f);
        let ty_t = b.mul(ty, tile);
        let slot = b.add(ty_t, tx);
        let zero = b.const_i32(0);
        b.for_range(zero, kv, T as i64, |b, k0| {
            // A tile: row, k0 + tx.
            let ac = b.add(k0, tx);
            let a_idx_early = if index_before_if {
                let r_k = b.mul(row, kv);
                Some(b.add(r_k, ac))
            } else {
                None
            };
            let r_ok = b.lt(row, mv);
            let c_ok = b.lt(ac, kv);
            let both = b.and(r_ok, c_ok);
            b.if_else(
                both,
                |b| {
                    let idx = a_idx_early.unwrap_or_else(|| {
                        let r_k = b.mul(row, kv);
                        b.add(r_k, ac)
                    });
                    let v = b.load(a, idx);
                    b.shared_store(sa, slot, v);
                },
                |b| b.shared_store(sa, slot, zero_f),
            );
            // B tile: k0 + ty, col.
            let br = b.add(k0, ty);
            let r_ok = b.lt(br, kv);
            let c_ok = b.lt(col, nv);
            let both = b.and(r_ok, c_ok);
            b.if_else(
                both,
                |b| {
                    let r_n = b.mul(br, nv);
                    let idx = b.add(r_n, col);
                    let v = b.load(bb, idx);
                    b.shared_store(sb, slot, v);
                },
                |b| b.shared_store(sb, slot, zero_f),
            );
            b.barrier();
            b.for_const(0, T, 1, |b, j| {
                let ta = b.mul(ty, tile);
                let ia = b.add(ta, j);
                let av = b.shared_load(sa, ia);
                let jt = b.mul(j, tile);
                let ib = b.add(jt, tx);
                let bv = b.shared_load(sb, ib);
                let cur = b.get(acc);
                let next = b.fma(av, bv, cur);
                b.set(acc, next);
            });
            b.barrier();
        });
        let r_ok = b.lt(row, mv);
        let c_ok = b.lt(col, nv);
        let both = b.and(r_ok, c_ok);
        b.if_(both, |b| {
            let r_n = b.mul(row, nv);
            let idx = b.add(r_n, col);
            let v = b.get(acc);
            b.store(c, idx, v);
        });
        b.finish()
    }

    #[test]
    fn tiled_sgemm_loads_guarded_by_conjunctions_are_proven() {
        for early in [false, true] {
            let k = tiled_sgemm(early);
            assert_eq!(crate::verifier::verify(&k), Ok(()));
            let global = access_ranges(&k);
            assert_eq!(global.len(), 3);
            assert_eq!(global[0].index, iv(0, 99 * 50 + 49), "A, index computed before the if: {early}");
            assert_eq!(global[1].index, iv(0, 49 * 70 + 69), "B");
            assert_eq!(global[2].index, iv(0, 99 * 70 + 69), "C");
            assert!(global.iter().all(AccessRange::is_proven), "{global:?}");
            let shared = shared_ranges(&k);
            assert_eq!(shared.len(), 6);
            assert!(shared.iter().all(|s| s.index == iv(0, 255) && s.is_proven()), "{shared:?}");
        }
    }

    #[test]
    fn unguarded_tile_overhang_is_flagged() {
        // Without the `c < K` half of the guard the last tile reads past a row.
        let mut b = KernelBuilder::new("k", LaunchShape::new([1, 1, 1], [16, 1, 1]));
        let a = b.buffer("a", Type::F32, 50, Access::Read);
        let tx = b.thread_id(Axis::X);
        let zero = b.const_i32(0);
        let kv = b.const_i32(50);
        b.for_range(zero, kv, 16, |b, k0| {
            let c = b.add(k0, tx);
            b.load(a, c);
        });
        let r = access_ranges(&b.finish());
        // k0 is in {0, 16, 32, 48}: the step tightens the upper end to 48.
        assert_eq!(r[0].index, iv(0, 63));
        assert!(!r[0].is_proven());
    }

    #[test]
    fn unknown_indices_are_unproven() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let x = b.buffer("x", Type::F32, 10, Access::Read);
        let idx = b.buffer("idx", Type::I32, 10, Access::Read);
        let n = b.scalar_param("n", Type::I32);
        let nv = b.param(n);
        let zero = b.const_i32(0);
        let gathered = b.load(idx, zero);
        b.load(x, nv);
        b.load(x, gathered);
        let r = access_ranges(&b.finish());
        assert_eq!(r[1].index, IndexRange::Unknown);
        assert_eq!(r[2].index, IndexRange::Unknown);
        assert!(!r[1].is_proven());
    }

    #[test]
    fn guards_bound_unknown_values() {
        // `0 <= n && n < 10` bounds a scalar parameter on both sides.
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let x = b.buffer("x", Type::F32, 10, Access::Read);
        let n = b.scalar_param("n", Type::I32);
        let nv = b.param(n);
        let zero = b.const_i32(0);
        let ten = b.const_i32(10);
        let lo_ok = b.le(zero, nv);
        let hi_ok = b.gt(ten, nv);
        let both = b.and(lo_ok, hi_ok);
        b.if_(both, |b| {
            b.load(x, nv);
        });
        // Only the upper half: the lower end stays at i32::MIN.
        b.if_(hi_ok, |b| {
            b.load(x, nv);
        });
        let r = access_ranges(&b.finish());
        assert_eq!(r[0].index, iv(0, 9));
        assert!(r[0].is_proven());
        assert_eq!(r[1].index, iv(i32::MIN as i128, 9));
        assert!(!r[1].is_proven());
    }

    #[test]
    fn empty_loops_and_impossible_arms_are_unreachable() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let x = b.buffer("x", Type::F32, 4, Access::Read);
        let big = b.const_i32(100);
        b.for_const(5, 5, 1, |b, i| {
            b.load(x, i);
        });
        let tid = b.thread_id(Axis::X);
        let never = b.gt(tid, big);
        b.if_(never, |b| {
            b.load(x, tid);
        });
        let r = access_ranges(&b.finish());
        assert_eq!(r[0].index, IndexRange::Unreachable);
        assert_eq!(r[1].index, IndexRange::Unreachable);
        assert!(r.iter().all(AccessRange::is_proven));
    }

    #[test]
    fn integer_operations() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(2, 256));
        let x = b.buffer("x", Type::F32, 1 << 20, Access::Read);
        let tid = b.thread_id(Axis::X);
        let c32 = b.const_i32(32);
        let c5 = b.const_i32(5);
        let c31 = b.const_i32(31);
        let c7 = b.const_i32(-7);
        let ops = [
            b.div(tid, c32),
            b.rem(tid, c32),
            b.shr(tid, c5),
            b.shl(tid, c5),
            b.and(tid, c31),
            b.min(tid, c31),
            b.max(tid, c31),
            b.sub(tid, c7),
        ];
        let t = b.lt(tid, c32);
        let sel = b.select(t, c31, c5);
        let lane = b.lane_id();
        let neg = b.neg(tid);
        let abs = b.abs(neg);
        let wide = b.cast(Type::I64, tid);
        let small = b.cast(Type::U32, wide);
        for v in ops.into_iter().chain([sel, lane, abs, wide, small]) {
            b.load(x, v);
        }
        b.load(x, neg);
        let r = access_ranges(&b.finish());
        let got: Vec<IndexRange> = r.iter().map(|a| a.index).collect();
        assert_eq!(
            got,
            [
                iv(0, 7),
                iv(0, 31),
                iv(0, 7),
                iv(0, 255 * 32),
                iv(0, 31),
                iv(0, 31),
                iv(31, 255),
                iv(7, 262),
                iv(5, 31),
                iv(0, 31),
                iv(0, 255),
                iv(0, 255),
                iv(0, 255),
                iv(-255, 0),
            ]
        );
        assert!(!r[13].is_proven());
    }

    #[test]
    fn wrapping_arithmetic_is_unknown() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 256));
        let x = b.buffer("x", Type::F32, 16, Access::Read);
        let tid = b.thread_id(Axis::X);
        let big = b.const_i32(1 << 30);
        let wraps = b.mul(tid, big);
        b.load(x, wraps);
        // The same product in i64 does not wrap.
        let t64 = b.cast(Type::I64, tid);
        let big64 = b.const_i64(1 << 30);
        let fits = b.mul(t64, big64);
        b.load(x, fits);
        // Casting it back to i32 does not fit, so it is unknown too.
        let back = b.cast(Type::I32, fits);
        b.load(x, back);
        let r = access_ranges(&b.finish());
        assert_eq!(r[0].index, IndexRange::Unknown);
        assert_eq!(r[1].index, iv(0, 255 << 30));
        assert_eq!(r[2].index, IndexRange::Unknown);
    }

    #[test]
    fn comparisons_decided_by_intervals_pick_select_arms() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(1, 32));
        let x = b.buffer("x", Type::F32, 8, Access::Read);
        let tid = b.thread_id(Axis::X);
        let c100 = b.const_i32(100);
        let c3 = b.const_i32(3);
        let always = b.lt(tid, c100);
        let pick = b.select(always, c3, c100);
        b.load(x, pick);
        let r = access_ranges(&b.finish());
        assert_eq!(r[0].index, iv(3, 3));
    }
}
