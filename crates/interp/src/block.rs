//! Executing one thread block in SIMT lock-step.
//!
//! A block is run as the GPU's SIMT model describes it, for all of its threads
//! at once: each instruction executes once over the block's *active lanes*
//! (threads, by linear id `x + y*bx + z*bx*by`), and every value is a lane
//! array of `u64` bits. Divergence is a narrower lane set: an `if` runs its
//! `then` region for the active lanes whose condition holds and its `else`
//! region for the rest (an arm with no lanes is skipped); a `for` keeps
//! iterating while any lane is still in range, each iteration over the lanes
//! still in range (bounds are per-lane values and may differ).
//!
//! Lock-step makes the synchronisation primitives simple and exact: a barrier
//! is satisfied when every thread of the block is active at it (all earlier
//! writes are already done), and anything less is a divergent-barrier error,
//! since on the GPU it would hang or be undefined; a shuffle is a gather over
//! the value's lane array (see [`crate::warp`]).
//!
//! [`Launch`] holds what all blocks share (the kernel, global buffers, scalar
//! arguments, per-lane thread ids); [`BlockState`] holds one worker's scratch
//! (lane arrays, local variables, shared memory), reused block after block.

use std::time::Instant;

use cranelift_entity::EntityRef;
use weft_kir::{ArgValue, Inst, InstData, KernelDef, ParamKind, Region, Special, Type, Value};

use crate::error::{InterpError, MemorySpace};
use crate::lanes::Lanes;
use crate::memory::{shared_load, shared_store, GlobalBuffer, MemFault};
use crate::ops::{self, int_bits, int_value, OpFault};
use crate::warp::{self, ShuffleFault, WARP_SIZE};

/// What every block of one launch shares, read-only (global memory is
/// mutated through atomics).
pub(crate) struct Launch<'k> {
    pub(crate) kernel: &'k KernelDef,
    /// Global buffers by parameter index (`None` for scalar parameters).
    pub(crate) globals: Vec<Option<GlobalBuffer>>,
    /// Scalar arguments' lane bits by parameter index (0 for buffers).
    scalars: Vec<u64>,
    /// Threads per block.
    threads: usize,
    /// Per-lane `thread_id.{x,y,z}` and `lane_id`, as `i32` lane bits.
    thread_ids: [Vec<u64>; 3],
    lane_ids: Vec<u64>,
    /// When the run must stop ([`crate::Interpreter::set_deadline`]).
    pub(crate) deadline: Option<Instant>,
}

/// Loop iterations between two looks at the clock (each iteration runs a
/// whole region for every active lane, so the look is cheap beside it).
const DEADLINE_EVERY: u32 = 64;

impl<'k> Launch<'k> {
    /// Prepares a launch of `kernel` over `args` (already checked to match).
    pub(crate) fn new(kernel: &'k KernelDef, args: &[ArgValue]) -> Launch<'k> {
        let globals = args
            .iter()
            .map(|a| match a {
                ArgValue::Buffer(b) => Some(GlobalBuffer::from_host(b)),
                ArgValue::Scalar(_) => None,
            })
            .collect();
        let scalars = args
            .iter()
            .map(|a| match a {
                ArgValue::Scalar(s) => s.to_bits(),
                ArgValue::Buffer(_) => 0,
            })
            .collect();
        let [bx, by, _] = kernel.launch.block.map(|d| d as u64);
        let threads = kernel.launch.threads_per_block() as usize;
        let lanes = 0..threads as u64;
        let thread_ids = [
            lanes.clone().map(|l| l % bx).collect(),
            lanes.clone().map(|l| l / bx % by).collect(),
            lanes.clone().map(|l| l / (bx * by)).collect(),
        ];
        let lane_ids = lanes.map(|l| l % WARP_SIZE as u64).collect();
        Launch { kernel, globals, scalars, threads, thread_ids, lane_ids, deadline: None }
    }

    /// The 3-D block id of linear block `b` (x fastest).
    pub(crate) fn block_coords(&self, b: u64) -> [u32; 3] {
        let [gx, gy, _] = self.kernel.launch.grid.map(|d| d as u64);
        [(b % gx) as u32, (b / gx % gy) as u32, (b / (gx * gy)) as u32]
    }

    /// The 3-D thread id of lane `l`.
    fn thread_coords(&self, l: usize) -> [u32; 3] {
        self.thread_ids.each_ref().map(|ids| ids[l] as u32)
    }
}

/// One worker's per-block scratch, reused across the blocks it runs.
pub(crate) struct BlockState {
    /// Lane arrays by value index.
    values: Vec<Vec<u64>>,
    /// Local variables' lanes, which lanes have been written, and how many.
    vars: Vec<Vec<u64>>,
    var_written: Vec<Vec<bool>>,
    var_written_count: Vec<usize>,
    /// Shared arrays, as lane bits per element.
    shared: Vec<Vec<u64>>,
    /// Spare lane lists for `if`/`for` masks, to avoid allocating per branch.
    spare_lists: Vec<Vec<u32>>,
    /// Thread-instructions executed so far.
    pub(crate) thread_insts: u64,
    /// Loop iterations since the clock was last read.
    ticks: u32,
}

impl BlockState {
    pub(crate) fn new(launch: &Launch) -> BlockState {
        let k = launch.kernel;
        let n = launch.threads;
        BlockState {
            values: vec![vec![0; n]; k.values.len()],
            vars: vec![vec![0; n]; k.vars.len()],
            var_written: vec![vec![false; n]; k.vars.len()],
            var_written_count: vec![0; k.vars.len()],
            shared: k.shared.values().map(|s| vec![0; s.len as usize]).collect(),
            spare_lists: Vec::new(),
            thread_insts: 0,
            ticks: 0,
        }
    }

    fn reset(&mut self) {
        for w in &mut self.var_written {
            w.fill(false);
        }
        self.var_written_count.fill(0);
        for s in &mut self.shared {
            s.fill(0);
        }
    }

    fn take_list(&mut self) -> Vec<u32> {
        let mut list = self.spare_lists.pop().unwrap_or_default();
        list.clear();
        list
    }
}

/// Runs linear block `b` to completion.
pub(crate) fn run_block(launch: &Launch, state: &mut BlockState, b: u64) -> Result<(), InterpError> {
    state.reset();
    let mut exec = BlockExec { launch, st: state, block: launch.block_coords(b), n: launch.threads };
    exec.check_deadline()?;
    exec.region(launch.kernel.body, Lanes::All(launch.threads))
}

/// Lanes for a lane list: `All` when it covers the block, so the fast path runs.
fn lanes_of(list: &[u32], n: usize) -> Lanes<'_> {
    if list.len() == n {
        Lanes::All(n)
    } else {
        Lanes::Some(list)
    }
}

struct BlockExec<'a, 'k> {
    launch: &'a Launch<'k>,
    st: &'a mut BlockState,
    block: [u32; 3],
    n: usize,
}

impl BlockExec<'_, '_> {
    /// [`InterpError::Hung`] once the launch's deadline has passed.
    fn check_deadline(&self) -> Result<(), InterpError> {
        match self.launch.deadline {
            Some(d) if Instant::now() >= d => {
                Err(InterpError::Hung { kernel: self.launch.kernel.name.clone(), block: self.block })
            }
            _ => Ok(()),
        }
    }

    fn region(&mut self, region: Region, lanes: Lanes) -> Result<(), InterpError> {
        for &inst in &self.launch.kernel.regions[region] {
            self.inst(inst, lanes)?;
        }
        Ok(())
    }

    // ---- errors ---------------------------------------------------------

    fn kernel_name(&self) -> String {
        self.launch.kernel.name.clone()
    }

    fn mnemonic(&self, inst: Inst) -> &'static str {
        self.launch.kernel.insts[inst].mnemonic()
    }

    fn unsupported(&self, inst: Inst, what: impl Into<String>) -> InterpError {
        InterpError::Unsupported { kernel: self.kernel_name(), inst, mnemonic: self.mnemonic(inst), what: what.into() }
    }

    fn op_error(&self, inst: Inst, fault: OpFault) -> InterpError {
        match fault {
            OpFault::DivisionByZero { lane } => InterpError::DivisionByZero {
                kernel: self.kernel_name(),
                inst,
                mnemonic: self.mnemonic(inst),
                block: self.block,
                thread: self.launch.thread_coords(lane),
            },
            OpFault::Unsupported(what) => self.unsupported(inst, what),
        }
    }

    fn mem_error(&self, inst: Inst, space: MemorySpace, array: String, len: u64, fault: MemFault) -> InterpError {
        match fault {
            MemFault::OutOfBounds { lane, index } => InterpError::OutOfBounds {
                kernel: self.kernel_name(),
                inst,
                mnemonic: self.mnemonic(inst),
                space,
                array,
                index,
                len,
                block: self.block,
                thread: self.launch.thread_coords(lane),
            },
            MemFault::IndexType(ty) => self.unsupported(inst, format!("index must be an integer, not `{ty}`")),
        }
    }

    // ---- lane arrays ----------------------------------------------------

    fn ty(&self, v: Value) -> Type {
        self.launch.kernel.value_type(v)
    }

    fn result(&self, inst: Inst) -> Result<Value, InterpError> {
        self.launch.kernel.inst_result[inst]
            .ok_or_else(|| self.unsupported(inst, "the instruction has no result value"))
    }

    /// Runs `f` with the result's lane array (mutable) and every value's lane
    /// arrays (shared). The result is moved out for the call, which is sound
    /// because SSA never lets an instruction read its own result.
    fn compute<T>(
        &mut self,
        inst: Inst,
        f: impl FnOnce(&mut [u64], &[Vec<u64>], &mut BlockState) -> T,
    ) -> Result<T, InterpError> {
        let r = self.result(inst)?.index();
        let mut dst = std::mem::take(&mut self.st.values[r]);
        let values = std::mem::take(&mut self.st.values);
        // `values` is moved out so `f` may also touch the rest of the state.
        let out = f(&mut dst, &values, self.st);
        self.st.values = values;
        self.st.values[r] = dst;
        Ok(out)
    }

    // ---- instructions ---------------------------------------------------

    fn inst(&mut self, inst: Inst, lanes: Lanes) -> Result<(), InterpError> {
        let k = self.launch.kernel;
        self.st.thread_insts += lanes.count() as u64;
        match k.insts[inst] {
            InstData::Const(s) => {
                let bits = s.to_bits();
                self.compute(inst, |dst, _, _| fill(lanes, dst, bits))?;
            }
            InstData::Special(s) => self.special(inst, s, lanes)?,
            InstData::ScalarParam(p) => {
                if !matches!(k.params[p].kind, ParamKind::Scalar { .. }) {
                    return Err(self.unsupported(inst, format!("`{}` is a buffer, not a scalar", k.params[p].name)));
                }
                let bits = self.launch.scalars[p.index()];
                self.compute(inst, |dst, _, _| fill(lanes, dst, bits))?;
            }
            InstData::Unary { op, arg } => {
                let ty = self.ty(arg);
                self.compute(inst, |dst, v, _| ops::unary(op, ty, lanes, dst, &v[arg.index()]))?
                    .map_err(|f| self.op_error(inst, f))?;
            }
            InstData::Binary { op, lhs, rhs } => {
                let ty = self.ty(lhs);
                self.compute(inst, |dst, v, _| ops::binary(op, ty, lanes, dst, &v[lhs.index()], &v[rhs.index()]))?
                    .map_err(|f| self.op_error(inst, f))?;
            }
            InstData::Fma { a, b, c } => {
                let ty = self.ty(a);
                self.compute(inst, |dst, v, _| ops::fma(ty, lanes, dst, &v[a.index()], &v[b.index()], &v[c.index()]))?
                    .map_err(|f| self.op_error(inst, f))?;
            }
            InstData::Cmp { op, lhs, rhs } => {
                let ty = self.ty(lhs);
                self.compute(inst, |dst, v, _| ops::cmp(op, ty, lanes, dst, &v[lhs.index()], &v[rhs.index()]))?;
            }
            InstData::Select { cond, if_true, if_false } => {
                self.compute(inst, |dst, v, _| {
                    ops::select(lanes, dst, &v[cond.index()], &v[if_true.index()], &v[if_false.index()])
                })?;
            }
            InstData::Cast { to, arg } => {
                let from = self.ty(arg);
                self.compute(inst, |dst, v, _| ops::cast(from, to, lanes, dst, &v[arg.index()]))?;
            }
            InstData::Bitcast { to, arg } => {
                self.compute(inst, |dst, v, _| ops::bitcast(to, lanes, dst, &v[arg.index()]))?;
            }
            InstData::Load { buf, index } => {
                let launch = self.launch;
                let Some(global) = &launch.globals[buf.index()] else {
                    return Err(self.unsupported(inst, format!("`{}` is not a buffer", k.params[buf].name)));
                };
                let index_ty = self.ty(index);
                self.compute(inst, |dst, v, _| global.load(index_ty, lanes, &v[index.index()], dst))?.map_err(|f| {
                    self.mem_error(inst, MemorySpace::Global, k.params[buf].name.clone(), global.len(), f)
                })?;
            }
            InstData::Store { buf, index, value } => {
                let param = &k.params[buf];
                let writable = matches!(param.kind, ParamKind::Buffer { access, .. } if access.can_write());
                let (Some(global), true) = (&self.launch.globals[buf.index()], writable) else {
                    return Err(InterpError::NotWritable {
                        kernel: self.kernel_name(),
                        inst,
                        param: param.name.clone(),
                    });
                };
                let v = &self.st.values;
                global
                    .store(self.ty(index), lanes, &v[index.index()], &v[value.index()])
                    .map_err(|f| self.mem_error(inst, MemorySpace::Global, param.name.clone(), global.len(), f))?;
            }
            InstData::SharedLoad { array, index } => {
                let index_ty = self.ty(index);
                let len = k.shared[array].len as u64;
                self.compute(inst, |dst, v, st| {
                    shared_load(&st.shared[array.index()], index_ty, lanes, &v[index.index()], dst)
                })?
                .map_err(|f| self.mem_error(inst, MemorySpace::Shared, array.to_string(), len, f))?;
            }
            InstData::SharedStore { array, index, value } => {
                let index_ty = self.ty(index);
                let len = k.shared[array].len as u64;
                let st = &mut *self.st;
                shared_store(
                    &mut st.shared[array.index()],
                    index_ty,
                    lanes,
                    &st.values[index.index()],
                    &st.values[value.index()],
                )
                .map_err(|f| self.mem_error(inst, MemorySpace::Shared, array.to_string(), len, f))?;
            }
            InstData::VarGet(var) => {
                let x = var.index();
                if self.st.var_written_count[x] < self.n {
                    let written = &self.st.var_written[x];
                    let unset = match lanes {
                        Lanes::All(n) => (0..n).find(|&l| !written[l]),
                        Lanes::Some(list) => list.iter().map(|&l| l as usize).find(|&l| !written[l]),
                    };
                    if let Some(lane) = unset {
                        return Err(InterpError::UninitializedVar {
                            kernel: self.kernel_name(),
                            inst,
                            var: var.to_string(),
                            block: self.block,
                            thread: self.launch.thread_coords(lane),
                        });
                    }
                }
                self.compute(inst, |dst, _, st| copy(lanes, dst, &st.vars[x]))?;
            }
            InstData::VarSet { var, value } => {
                let x = var.index();
                let st = &mut *self.st;
                copy(lanes, &mut st.vars[x], &st.values[value.index()]);
                if st.var_written_count[x] < self.n {
                    let written = &mut st.var_written[x];
                    let mut newly = 0;
                    lanes.for_each(|l| {
                        newly += !written[l] as usize;
                        written[l] = true;
                    });
                    st.var_written_count[x] += newly;
                }
            }
            InstData::Barrier => {
                if lanes.count() != self.n {
                    return Err(InterpError::DivergentBarrier {
                        kernel: self.kernel_name(),
                        inst,
                        block: self.block,
                        arrived: lanes.count() as u64,
                        expected: self.n as u64,
                    });
                }
            }
            InstData::Shuffle { kind, value, operand, width } => {
                let operand_ty = self.ty(operand);
                let n = self.n;
                self.compute(inst, |dst, v, _| {
                    warp::shuffle(kind, width, n, lanes, &v[value.index()], operand_ty, &v[operand.index()], dst)
                })?
                .map_err(|f| match f {
                    ShuffleFault::Divergent { warp, active, expected } => InterpError::DivergentShuffle {
                        kernel: self.kernel_name(),
                        inst,
                        block: self.block,
                        warp,
                        active,
                        expected,
                    },
                    ShuffleFault::Invalid(what) => self.unsupported(inst, what),
                })?;
            }
            InstData::For { index, start, end, step, body } => {
                self.for_loop(inst, lanes, index, start, end, step, body)?
            }
            InstData::If { cond, then, else_ } => {
                let mut then_list = self.st.take_list();
                let mut else_list = self.st.take_list();
                let c = &self.st.values[cond.index()];
                lanes.for_each(|l| if c[l] & 1 != 0 { then_list.push(l as u32) } else { else_list.push(l as u32) });
                let mut result = Ok(());
                if !then_list.is_empty() {
                    result = self.region(then, lanes_of(&then_list, self.n));
                }
                if let (Ok(()), Some(else_)) = (&result, else_) {
                    if !else_list.is_empty() {
                        result = self.region(else_, lanes_of(&else_list, self.n));
                    }
                }
                self.st.spare_lists.push(then_list);
                self.st.spare_lists.push(else_list);
                result?;
            }
        }
        Ok(())
    }

    fn special(&mut self, inst: Inst, s: Special, lanes: Lanes) -> Result<(), InterpError> {
        let launch = self.launch;
        let shape = launch.kernel.launch;
        let uniform = |d: u32| d as i32 as u32 as u64;
        match s {
            Special::ThreadId(a) => self.compute(inst, |dst, _, _| copy(lanes, dst, &launch.thread_ids[a.index()])),
            Special::LaneId => self.compute(inst, |dst, _, _| copy(lanes, dst, &launch.lane_ids)),
            Special::BlockId(a) => {
                let bits = uniform(self.block[a.index()]);
                self.compute(inst, |dst, _, _| fill(lanes, dst, bits))
            }
            Special::BlockDim(a) => self.compute(inst, |dst, _, _| fill(lanes, dst, uniform(shape.block[a.index()]))),
            Special::GridDim(a) => self.compute(inst, |dst, _, _| fill(lanes, dst, uniform(shape.grid[a.index()]))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn for_loop(
        &mut self,
        inst: Inst,
        lanes: Lanes,
        index: Value,
        start: Value,
        end: Value,
        step: i64,
        body: Region,
    ) -> Result<(), InterpError> {
        let ty = self.ty(index);
        if !ty.is_int() {
            return Err(self.unsupported(inst, format!("loop index must be an integer, not `{ty}`")));
        }
        if step <= 0 {
            return Err(self.unsupported(inst, format!("loop step must be positive, not {step}")));
        }
        // Per-lane position and bound as sign-correct i64, so no type's
        // range can wrap the comparison.
        let mut cur = vec![0i64; self.n];
        let mut bound = vec![0i64; self.n];
        let mut active = self.st.take_list();
        {
            let (s, e) = (&self.st.values[start.index()], &self.st.values[end.index()]);
            let (sty, ety) = (self.ty(start), self.ty(end));
            lanes.for_each(|l| {
                cur[l] = int_value(sty, s[l]);
                bound[l] = int_value(ety, e[l]);
                if cur[l] < bound[l] {
                    active.push(l as u32);
                }
            });
        }
        let mut result = Ok(());
        while !active.is_empty() {
            self.st.ticks = self.st.ticks.wrapping_add(1);
            if self.st.ticks.is_multiple_of(DEADLINE_EVERY) {
                if let Err(e) = self.check_deadline() {
                    result = Err(e);
                    break;
                }
            }
            let iter_lanes = lanes_of(&active, self.n);
            let idx = &mut self.st.values[index.index()];
            iter_lanes.for_each(|l| idx[l] = int_bits(ty, cur[l]));
            result = self.region(body, iter_lanes);
            if result.is_err() {
                break;
            }
            active.retain(|&l| {
                let l = l as usize;
                match cur[l].checked_add(step) {
                    Some(next) => {
                        cur[l] = next;
                        next < bound[l]
                    }
                    None => false,
                }
            });
        }
        self.st.spare_lists.push(active);
        result
    }
}

/// `dst[l] = bits` for every active lane.
#[inline]
fn fill(lanes: Lanes, dst: &mut [u64], bits: u64) {
    match lanes {
        Lanes::All(n) => dst[..n].fill(bits),
        Lanes::Some(list) => list.iter().for_each(|&l| dst[l as usize] = bits),
    }
}

/// `dst[l] = src[l]` for every active lane.
#[inline]
fn copy(lanes: Lanes, dst: &mut [u64], src: &[u64]) {
    match lanes {
        Lanes::All(n) => dst[..n].copy_from_slice(&src[..n]),
        Lanes::Some(list) => list.iter().for_each(|&l| dst[l as usize] = src[l as usize]),
    }
}
