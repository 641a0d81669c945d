//! Programs on an executor: weights once, activations in arenas, requests
//! as uploads of inputs and downloads of outputs.
//!
//! This is the one place that handles a program's buffers; the serving loop,
//! the offline plan runner, `weft run` and the tests all go through it.
//!
//! - [`Weights`]: a program's weight buffers, uploaded once per executor and
//!   shared by every tenant registered with the same program.
//! - [`Arena`]: one tenant instance's inputs and activations, allocated once
//!   (zero-filled) and reused by every request. At the start of a request
//!   ([`Arena::begin`]) only the inputs are uploaded, and the buffers some
//!   step reads before any step writes them are zeroed where they live, so
//!   every request sees what a fresh run would ([`Resident::zeroed`]).
//! - [`Resident`]: a program with its weights on an executor, which binds a
//!   step's buffers to handles ([`Resident::launch_args`]) for any arena.
//!
//! Per request, therefore, only the inputs, the outputs (with the 4-byte
//! status word below, where the program has one), and each launch's slot
//! table and argument words cross between host and executor.
//!
//! A program whose kernels check data-dependent indices has a status word
//! ([`Program::status`]): [`Resident::begin`] zeroes it with the buffers read
//! before written, and [`Resident::outputs`], the one place outputs are read
//! back, reads it first. Nonzero means some kernel met an index outside
//! `[-d, d)`: the run returns [`RunError::IndexOutOfRange`] naming the node,
//! its indices input, the index and the valid range (found in the arena's
//! own index buffers through [`Program::index_checks`]), and no outputs.
//!
//! [`run_plan`] runs a whole offline [`Plan`] over several tenants' arenas
//! and checks that every slot is its tenant's next step, so a wrong plan is
//! an error rather than wrong numbers; [`run_program`] runs one program alone
//! (each step a one-slot bundle).

use std::collections::HashMap;
use std::sync::Arc;

use weft_kir::{HostBuffer, ParamKind, Target, Type};
use weft_lower::{BufferId, BufferKind, Program};

use crate::builder::BundleBuilder;
use crate::bundle::{Budget, Bundle, Slot, TenantId};
use crate::error::PackError;
use crate::exec::{ExecError, Executor, Handle, LaunchArg, Timing};
use crate::schedule::{plan, Plan, Policy, ScheduleError};

/// Why running a program or a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("program `{program}` takes {expected} inputs but {given} were given")]
    InputCount { program: String, expected: usize, given: usize },
    #[error(
        "program `{program}` input {index} (`{input}`) expects {expected_len} elements of {expected_ty} but was \
         given {given_len} of {given_ty}"
    )]
    InputMismatch {
        program: String,
        index: usize,
        input: String,
        expected_ty: Type,
        expected_len: usize,
        given_ty: Type,
        given_len: usize,
    },
    #[error("program `{program}` is malformed: {message}")]
    Malformed { program: String, message: String },
    /// A kernel met a data-dependent index outside its valid range; the
    /// run's outputs are withheld.
    #[error("program `{program}`: {source}")]
    IndexOutOfRange {
        program: String,
        #[source]
        source: Box<IndexError>,
    },
    /// A data-dependent output size (a `NonZero`'s count) differs from the
    /// one the program was built for: the program was imported for other
    /// inputs. The run's outputs are withheld.
    #[error(
        "program `{program}`: node `{node}` (NonZero): input `{input}` has {found} nonzero elements, but the \
         program was built for {expected}; import the model for these inputs (`weft::graph::onnx::import_data_dependent`)"
    )]
    CountMismatch { program: String, node: String, input: String, expected: usize, found: usize },
    /// Allocating, uploading or downloading a program's buffers failed.
    #[error("program `{program}`: {source}")]
    Buffers {
        program: String,
        #[source]
        source: Box<ExecError>,
    },
    /// A step of a program run alone failed.
    #[error("program `{program}` step {step} (kernel `{kernel}`, nodes {nodes}): {source}")]
    Step {
        program: String,
        step: usize,
        kernel: String,
        nodes: String,
        #[source]
        source: Box<RunError>,
    },
    #[error(transparent)]
    Pack(Box<PackError>),
    #[error("bundle {bundle} has a slot of tenant {}, which is not among the tenants being run", tenant.0)]
    UnknownTenant { bundle: usize, tenant: TenantId },
    #[error(
        "bundle {bundle} runs tenant {}'s kernel `{kernel}` out of order: the tenant's next step is {expected} \
         of {steps}",
        tenant.0
    )]
    OutOfOrder { bundle: usize, tenant: TenantId, kernel: String, expected: usize, steps: usize },
    /// A launch failed.
    #[error("bundle {bundle} ({slots}) failed on {executor}: {source}")]
    Launch {
        bundle: usize,
        slots: String,
        executor: String,
        #[source]
        source: Box<ExecError>,
    },
    #[error("tenant {} has run {ran} of its {steps} steps when the plan ends", tenant.0)]
    Unfinished { tenant: TenantId, ran: usize, steps: usize },
    #[error("{tenants} tenants were given but {inputs} input lists")]
    InputLists { tenants: usize, inputs: usize },
    #[error(transparent)]
    Schedule(Box<ScheduleError>),
}

/// An index a kernel met outside its valid range `[-dim, dim)`
/// ([`RunError::IndexOutOfRange`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "node `{node}` ({op}): index {value} at position {position} of input `{input}` is out of range for axis {axis} \
     of size {dim}; valid indices are [-{dim}, {dim})"
)]
pub struct IndexError {
    /// The graph node whose kernel met the index, and its ONNX op.
    pub node: String,
    pub op: String,
    /// The graph tensor holding the indices.
    pub input: String,
    /// The index's position in that tensor (row-major), and its value.
    pub position: usize,
    pub value: i64,
    /// The data axis it indexes, and that axis's size.
    pub axis: usize,
    pub dim: usize,
}

impl From<PackError> for RunError {
    fn from(e: PackError) -> RunError {
        RunError::Pack(Box::new(e))
    }
}

impl From<ScheduleError> for RunError {
    fn from(e: ScheduleError) -> RunError {
        RunError::Schedule(Box::new(e))
    }
}

fn buffers_err(program: &Program) -> impl Fn(ExecError) -> RunError + '_ {
    move |source| RunError::Buffers { program: program.name.clone(), source: Box::new(source) }
}

fn malformed(program: &Program, message: String) -> RunError {
    RunError::Malformed { program: program.name.clone(), message }
}

/// A program's weights held by one executor.
#[derive(Debug)]
pub struct Weights {
    handles: HashMap<BufferId, Handle>,
    bytes: u64,
}

impl Weights {
    /// Uploads every weight buffer of `program` to `exec`.
    pub fn upload(exec: &mut dyn Executor, program: &Program) -> Result<Weights, RunError> {
        let mut weights = Weights { handles: HashMap::new(), bytes: 0 };
        let result = weights.fill(exec, program);
        if let Err(e) = result {
            weights.free(exec);
            return Err(e);
        }
        Ok(weights)
    }

    fn fill(&mut self, exec: &mut dyn Executor, program: &Program) -> Result<(), RunError> {
        for (b, info) in program.buffers.iter() {
            if info.kind != BufferKind::Weight {
                continue;
            }
            let data = program
                .weights
                .get(&b)
                .ok_or_else(|| malformed(program, format!("weight buffer {b} (`{}`) has no contents", info.name)))?;
            if data.elem() != info.elem || data.len() != info.len() {
                return Err(malformed(
                    program,
                    format!(
                        "weight buffer {b} (`{}`) holds {} elements of {} but is declared {} of {}",
                        info.name,
                        data.len(),
                        data.elem(),
                        info.len(),
                        info.elem
                    ),
                ));
            }
            let h = exec.alloc(info.elem, info.len()).map_err(buffers_err(program))?;
            self.handles.insert(b, h);
            exec.upload(h, data).map_err(buffers_err(program))?;
            self.bytes += data.bytes().len() as u64;
        }
        Ok(())
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Releases every weight buffer (errors of individual frees are
    /// ignored: the handles are gone either way).
    pub fn free(&mut self, exec: &mut dyn Executor) {
        for (_, h) in self.handles.drain() {
            let _ = exec.free(h);
        }
    }
}

/// One tenant instance's inputs and activations held by one executor.
#[derive(Debug)]
pub struct Arena {
    handles: HashMap<BufferId, Handle>,
}

impl Arena {
    /// Allocates (zero-filled) every input and activation buffer of `program`.
    pub fn alloc(exec: &mut dyn Executor, program: &Program) -> Result<Arena, RunError> {
        let mut arena = Arena { handles: HashMap::new() };
        for (b, info) in program.buffers.iter() {
            if info.kind == BufferKind::Weight {
                continue;
            }
            match exec.alloc(info.elem, info.len()) {
                Ok(h) => {
                    arena.handles.insert(b, h);
                }
                Err(e) => {
                    arena.free(exec);
                    return Err(buffers_err(program)(e));
                }
            }
        }
        Ok(arena)
    }

    /// Releases every buffer of the arena.
    pub fn free(&mut self, exec: &mut dyn Executor) {
        for (_, h) in self.handles.drain() {
            let _ = exec.free(h);
        }
    }
}

/// Checks `inputs` against `program`'s inputs (count, type, length), before
/// anything is uploaded.
pub fn check_inputs(program: &Program, inputs: &[HostBuffer]) -> Result<(), RunError> {
    if inputs.len() != program.inputs.len() {
        return Err(RunError::InputCount {
            program: program.name.clone(),
            expected: program.inputs.len(),
            given: inputs.len(),
        });
    }
    for (index, (binding, given)) in program.inputs.iter().zip(inputs).enumerate() {
        let info = program
            .buffers
            .get(binding.buffer)
            .ok_or_else(|| malformed(program, format!("input `{}` has no buffer", binding.name)))?;
        if given.elem() != info.elem || given.len() != info.len() {
            return Err(RunError::InputMismatch {
                program: program.name.clone(),
                index,
                input: binding.name.clone(),
                expected_ty: info.elem,
                expected_len: info.len(),
                given_ty: given.elem(),
                given_len: given.len(),
            });
        }
    }
    Ok(())
}

/// A program whose weights are on an executor.
#[derive(Debug)]
pub struct Resident {
    pub program: Arc<Program>,
    pub weights: Arc<Weights>,
    /// Non-input buffers some step reads before any step writes them, and
    /// the status word: zeroed at the start of every request.
    zeroed: Vec<BufferId>,
}

impl Resident {
    /// `program` with `weights` (uploaded with [`Weights::upload`] for this
    /// program, possibly shared with other tenants of it).
    pub fn new(program: Arc<Program>, weights: Arc<Weights>) -> Resident {
        let mut zeroed = read_before_written(&program);
        if let Some(status) = program.status.filter(|s| !zeroed.contains(s)) {
            zeroed.push(status);
        }
        Resident { program, weights, zeroed }
    }

    /// Uploads `program`'s weights and wraps it.
    pub fn upload(exec: &mut dyn Executor, program: Arc<Program>) -> Result<Resident, RunError> {
        let weights = Arc::new(Weights::upload(exec, &program)?);
        Ok(Resident::new(program, weights))
    }

    /// The buffers zeroed per request (see [`Resident::new`]).
    pub fn zeroed(&self) -> &[BufferId] {
        &self.zeroed
    }

    /// Starts a request in `arena`: checks and uploads `inputs`, zeroes the
    /// buffers read before written.
    pub fn begin(&self, exec: &mut dyn Executor, arena: &Arena, inputs: &[HostBuffer]) -> Result<(), RunError> {
        let program = &*self.program;
        check_inputs(program, inputs)?;
        for (binding, given) in program.inputs.iter().zip(inputs) {
            let h = self.handle(arena, binding.buffer)?;
            exec.upload(h, given).map_err(buffers_err(program))?;
        }
        for &b in &self.zeroed {
            exec.zero(self.handle(arena, b)?).map_err(buffers_err(program))?;
        }
        Ok(())
    }

    /// The handle of buffer `b` for a request running in `arena`.
    pub fn handle(&self, arena: &Arena, b: BufferId) -> Result<Handle, RunError> {
        arena
            .handles
            .get(&b)
            .or_else(|| self.weights.handles.get(&b))
            .copied()
            .ok_or_else(|| malformed(&self.program, format!("a step refers to buffer {b}, which has no handle")))
    }

    /// The launch arguments of a slot binding `args` in `arena`.
    pub fn launch_args(&self, arena: &Arena, args: &[BufferId]) -> Result<Vec<LaunchArg>, RunError> {
        args.iter().map(|&b| self.handle(arena, b).map(LaunchArg::Buffer)).collect()
    }

    /// Downloads the graph outputs, in order, after checking the run's
    /// status word ([`Resident::check_status`]).
    pub fn outputs(&self, exec: &mut dyn Executor, arena: &Arena) -> Result<Vec<HostBuffer>, RunError> {
        self.check_status(exec, arena)?;
        let program = &*self.program;
        program
            .outputs
            .iter()
            .map(|o| exec.download(self.handle(arena, o.buffer)?).map_err(buffers_err(program)))
            .collect()
    }
}

impl Resident {
    /// Reads the status word of the run in `arena` (4 bytes; nothing for a
    /// program without one). Nonzero: finds the first index out of range
    /// among the program's checked index buffers and returns it as
    /// [`RunError::IndexOutOfRange`], else the first data-dependent count
    /// that does not hold ([`RunError::CountMismatch`]).
    pub fn check_status(&self, exec: &mut dyn Executor, arena: &Arena) -> Result<(), RunError> {
        let program = &*self.program;
        let Some(status) = program.status else { return Ok(()) };
        let word = exec.download(self.handle(arena, status)?).map_err(buffers_err(program))?;
        let code = if word.is_empty() { None } else { word.get(0).as_i64() };
        if code == Some(0) {
            return Ok(());
        }
        for check in &program.index_checks {
            let indices = exec.download(self.handle(arena, check.indices)?).map_err(buffers_err(program))?;
            if let Some(bad) = check.first_out_of_range(&indices) {
                return Err(RunError::IndexOutOfRange {
                    program: program.name.clone(),
                    source: Box::new(IndexError {
                        node: check.node.clone(),
                        op: check.op.clone(),
                        input: check.input.clone(),
                        position: bad.position,
                        value: bad.value,
                        axis: bad.axis,
                        dim: bad.dim,
                    }),
                });
            }
        }
        for check in &program.count_checks {
            let values = exec.download(self.handle(arena, check.values)?).map_err(buffers_err(program))?;
            if let Some(found) = check.found(&values) {
                return Err(RunError::CountMismatch {
                    program: program.name.clone(),
                    node: check.node.clone(),
                    input: check.input.clone(),
                    expected: check.count,
                    found,
                });
            }
        }
        Err(malformed(
            program,
            format!(
                "the run's status word is {code:?} but no checked index buffer holds an index out of range and \
                 every data-dependent count holds"
            ),
        ))
    }
}

/// Non-weight, non-input buffers that some step reads before any step
/// writes them, in first-read order.
fn read_before_written(program: &Program) -> Vec<BufferId> {
    let mut written: Vec<bool> = vec![false; program.buffers.len()];
    let mut out = Vec::new();
    for (b, info) in program.buffers.iter() {
        if info.kind != BufferKind::Activation {
            written[cranelift_entity::EntityRef::index(b)] = true;
        }
    }
    for step in &program.steps {
        for ((_, param), &b) in step.kernel.params.iter().zip(&step.args) {
            let ParamKind::Buffer { access, .. } = param.kind else { continue };
            if access.can_read()
                && !written.get(cranelift_entity::EntityRef::index(b)).copied().unwrap_or(true)
                && !out.contains(&b)
            {
                out.push(b);
            }
        }
        for ((_, param), &b) in step.kernel.params.iter().zip(&step.args) {
            if let ParamKind::Buffer { access, .. } = param.kind {
                if access.can_write() {
                    if let Some(w) = written.get_mut(cranelift_entity::EntityRef::index(b)) {
                        *w = true;
                    }
                }
            }
        }
    }
    out
}

/// The verified, isolated one-slot bundle of `program`'s step `index`.
pub fn solo_bundle(program: &Program, index: usize, tenant: TenantId) -> Result<Bundle, RunError> {
    let step = program
        .steps
        .get(index)
        .ok_or_else(|| malformed(program, format!("step {index} of {} does not exist", program.steps.len())))?;
    Ok(BundleBuilder::new()
        .slot(Slot { kernel: step.kernel.clone(), tenant, budget: Budget::Full, args: step.args.clone() })
        .build()?)
}

/// Runs `program` alone on `exec`: uploads its weights, allocates an arena,
/// runs every step as a one-slot bundle, downloads the outputs and frees
/// everything. `progress(step)` is called before each step.
pub fn run_program(
    exec: &mut dyn Executor,
    program: Arc<Program>,
    inputs: &[HostBuffer],
    mut progress: impl FnMut(usize),
) -> Result<Vec<HostBuffer>, RunError> {
    check_inputs(&program, inputs)?;
    let resident = Resident::upload(exec, program)?;
    let mut arena = match Arena::alloc(exec, &resident.program) {
        Ok(a) => a,
        Err(e) => {
            release(exec, resident);
            return Err(e);
        }
    };
    let result = (|| {
        resident.begin(exec, &arena, inputs)?;
        let program = &*resident.program;
        for (index, step) in program.steps.iter().enumerate() {
            progress(index);
            let fail = |source: RunError| RunError::Step {
                program: program.name.clone(),
                step: index,
                kernel: step.kernel.name.clone(),
                nodes: step.nodes.join(", "),
                source: Box::new(source),
            };
            let bundle = solo_bundle(program, index, TenantId(0)).map_err(fail)?;
            let args = vec![resident.launch_args(&arena, &step.args).map_err(fail)?];
            exec.launch(&bundle, &args).map_err(|source| {
                fail(RunError::Launch {
                    bundle: index,
                    slots: describe(&bundle),
                    executor: exec.name().into(),
                    source: Box::new(source),
                })
            })?;
        }
        resident.outputs(exec, &arena)
    })();
    arena.free(exec);
    release(exec, resident);
    result
}

fn release(exec: &mut dyn Executor, resident: Resident) {
    if let Ok(mut w) = Arc::try_unwrap(resident.weights) {
        w.free(exec);
    }
}

/// `tenant 0 `conv`, tenant 1 `gemm``: a bundle's slots for messages.
pub fn describe(bundle: &Bundle) -> String {
    bundle.slots.iter().map(|s| format!("tenant {} `{}`", s.tenant.0, s.kernel.name)).collect::<Vec<_>>().join(", ")
}

/// One tenant of an offline run: its resident program, its arena and the
/// index of its next step.
#[derive(Debug)]
pub struct TenantRun {
    pub tenant: TenantId,
    pub resident: Resident,
    pub arena: Arena,
    next: usize,
}

impl TenantRun {
    /// Allocates an arena for `resident` and starts a request with `inputs`.
    pub fn start(
        exec: &mut dyn Executor,
        tenant: TenantId,
        resident: Resident,
        inputs: &[HostBuffer],
    ) -> Result<TenantRun, RunError> {
        let arena = Arena::alloc(exec, &resident.program)?;
        let run = TenantRun { tenant, resident, arena, next: 0 };
        run.resident.begin(exec, &run.arena, inputs)?;
        Ok(run)
    }

    /// Steps run so far.
    pub fn steps_run(&self) -> usize {
        self.next
    }

    /// Whether every step has run.
    pub fn is_finished(&self) -> bool {
        self.next >= self.resident.program.steps.len()
    }
}

/// Runs every bundle of `plan` on `exec` over `tenants`' arenas. Every slot
/// must be its tenant's next step, and every tenant must be finished when
/// the plan ends. Returns each bundle's timing.
pub fn run_plan(plan: &Plan, tenants: &mut [TenantRun], exec: &mut dyn Executor) -> Result<Vec<Timing>, RunError> {
    let mut timings = Vec::with_capacity(plan.bundles.len());
    for (index, planned) in plan.bundles.iter().enumerate() {
        let bundle = &planned.bundle;
        if planned.slots.len() != bundle.slots.len() {
            return Err(RunError::Launch {
                bundle: index,
                slots: describe(bundle),
                executor: exec.name().to_string(),
                source: Box::new(ExecError::Bundle {
                    reason: format!("the plan describes {} slots", planned.slots.len()),
                }),
            });
        }
        let mut owners = Vec::with_capacity(bundle.slots.len());
        for (slot, p) in bundle.slots.iter().zip(&planned.slots) {
            let owner = tenants
                .iter()
                .position(|t| t.tenant == slot.tenant)
                .ok_or(RunError::UnknownTenant { bundle: index, tenant: slot.tenant })?;
            let t = &tenants[owner];
            let steps = &t.resident.program.steps;
            // The builder may have replaced the kernel by a guarded copy, so
            // order is checked by step index and arguments, not by kernel.
            let in_order =
                p.tenant == slot.tenant && p.step == t.next && steps.get(t.next).is_some_and(|s| s.args == slot.args);
            if !in_order || owners.contains(&owner) {
                return Err(RunError::OutOfOrder {
                    bundle: index,
                    tenant: slot.tenant,
                    kernel: slot.kernel.name.clone(),
                    expected: t.next,
                    steps: steps.len(),
                });
            }
            owners.push(owner);
        }
        let args = bundle
            .slots
            .iter()
            .zip(&owners)
            .map(|(slot, &o)| tenants[o].resident.launch_args(&tenants[o].arena, &slot.args))
            .collect::<Result<Vec<_>, _>>()?;
        let timing = exec.launch(bundle, &args).map_err(|source| RunError::Launch {
            bundle: index,
            slots: describe(bundle),
            executor: exec.name().to_string(),
            source: Box::new(source),
        })?;
        timings.push(timing);
        for &o in &owners {
            tenants[o].next += 1;
        }
    }
    for t in tenants.iter() {
        if !t.is_finished() {
            return Err(RunError::Unfinished { tenant: t.tenant, ran: t.next, steps: t.resident.program.steps.len() });
        }
    }
    Ok(timings)
}

/// The result of [`run_multi`]: the plan that ran and each tenant's outputs,
/// in the order tenants were given.
#[derive(Clone, Debug)]
pub struct MultiRun {
    pub plan: Plan,
    pub outputs: Vec<Vec<HostBuffer>>,
}

/// Schedules `programs` (tenant ids are their positions) under `policy` and
/// runs them on `exec` with `inputs[i]` for program `i`. Tenants given the
/// same `Arc<Program>` share its weights.
pub fn run_multi(
    programs: &[Arc<Program>],
    inputs: &[Vec<HostBuffer>],
    limits: &Target,
    policy: &Policy,
    exec: &mut dyn Executor,
) -> Result<MultiRun, RunError> {
    if programs.len() != inputs.len() {
        return Err(RunError::InputLists { tenants: programs.len(), inputs: inputs.len() });
    }
    for (p, x) in programs.iter().zip(inputs) {
        check_inputs(p, x)?;
    }
    let ids: Vec<(TenantId, &Program)> = programs.iter().enumerate().map(|(i, p)| (TenantId(i as u32), &**p)).collect();
    let plan = plan(&ids, limits, policy)?;
    let mut shared: Vec<(Arc<Program>, Arc<Weights>)> = Vec::new();
    let mut tenants: Vec<TenantRun> = Vec::with_capacity(programs.len());
    let result = (|| {
        for (i, (p, x)) in programs.iter().zip(inputs).enumerate() {
            let weights = match shared.iter().find(|(q, _)| Arc::ptr_eq(q, p)) {
                Some((_, w)) => w.clone(),
                None => {
                    let w = Arc::new(Weights::upload(exec, p)?);
                    shared.push((p.clone(), w.clone()));
                    w
                }
            };
            let resident = Resident::new(p.clone(), weights);
            tenants.push(TenantRun::start(exec, TenantId(i as u32), resident, x)?);
        }
        run_plan(&plan, &mut tenants, exec)?;
        tenants.iter().map(|t| t.resident.outputs(exec, &t.arena)).collect::<Result<Vec<_>, _>>()
    })();
    for mut t in tenants {
        t.arena.free(exec);
    }
    for (_, w) in shared {
        if let Ok(mut w) = Arc::try_unwrap(w) {
            w.free(exec);
        }
    }
    Ok(MultiRun { plan, outputs: result? })
}

/// Runs one kernel alone on `exec` as a verified one-slot bundle, with host
/// arguments ([`launch_host`]). The conformance suite runs every executor
/// through this.
pub fn run_kernel(
    exec: &mut dyn Executor,
    kernel: &Arc<weft_kir::KernelDef>,
    args: &mut [weft_kir::ArgValue],
) -> Result<Timing, RunError> {
    let fail = |exec: &dyn Executor, source| RunError::Launch {
        bundle: 0,
        slots: format!("`{}`", kernel.name),
        executor: exec.name().to_string(),
        source: Box::new(source),
    };
    weft_kir::check_args(kernel, args).map_err(|source| {
        fail(exec, ExecError::Args { slot: 0, kernel: kernel.name.clone(), source: Box::new(source) })
    })?;
    let ids: Vec<BufferId> = (0..args.len() as u32).map(BufferId::from_u32).collect();
    let bundle = BundleBuilder::new()
        .slot(Slot { kernel: kernel.clone(), tenant: TenantId(0), budget: Budget::Full, args: ids })
        .build()?;
    let mut slots = vec![args.to_vec()];
    let timing = launch_host(exec, &bundle, &mut slots).map_err(|e| fail(exec, e))?;
    if let Some(out) = slots.pop() {
        args.clone_from_slice(&out);
    }
    Ok(timing)
}

/// Launches `bundle` with host arguments (`args[i]` for slot `i`): uploads
/// every buffer argument to a buffer of its own, launches, downloads the
/// buffers each kernel may write back into `args`, and frees what it
/// allocated. For tests and one-off runs; a server keeps buffers resident
/// instead ([`Resident`]).
pub fn launch_host(
    exec: &mut dyn Executor,
    bundle: &Bundle,
    args: &mut [Vec<weft_kir::ArgValue>],
) -> Result<Timing, ExecError> {
    use weft_kir::ArgValue;
    let mut held: Vec<Handle> = Vec::new();
    let result = (|| {
        let mut launch_args = Vec::with_capacity(args.len());
        for slot_args in args.iter() {
            let mut la = Vec::with_capacity(slot_args.len());
            for a in slot_args {
                la.push(match a {
                    ArgValue::Scalar(s) => LaunchArg::Scalar(*s),
                    ArgValue::Buffer(b) => {
                        let h = exec.alloc(b.elem(), b.len())?;
                        held.push(h);
                        exec.upload(h, b)?;
                        LaunchArg::Buffer(h)
                    }
                });
            }
            launch_args.push(la);
        }
        let timing = exec.launch(bundle, &launch_args)?;
        for ((slot, slot_args), la) in bundle.slots.iter().zip(args.iter_mut()).zip(&launch_args) {
            for (((_, param), a), l) in slot.kernel.params.iter().zip(slot_args.iter_mut()).zip(la) {
                if let (ParamKind::Buffer { access, .. }, ArgValue::Buffer(host), LaunchArg::Buffer(h)) =
                    (&param.kind, a, l)
                {
                    if access.can_write() {
                        *host = exec.download(*h)?;
                    }
                }
            }
        }
        Ok(timing)
    })();
    for h in held {
        let _ = exec.free(h);
    }
    result
}
