//! Running a plan: many tenants' programs through one executor, bundle by
//! bundle.
//!
//! Each tenant's buffers live in a [`TenantState`], handled exactly as
//! [`Program::run`] handles them (weft_lower's `program.rs`): inputs are
//! checked against the program's input buffers and copied in once; weights
//! are read from the program's shared `Arc` (tenants of one model share
//! nothing else, and tenants with different weights are different
//! programs); an activation not yet written reads as zeros; after a kernel
//! runs, the buffers it may write replace the live ones. Because buffers are
//! handled identically and every slot of a bundle computes exactly what its
//! kernel computes alone (DESIGN.md, principle 2), a packed run's outputs
//! equal each tenant's single-tenant run bit for bit on the interpreter.
//!
//! [`run_plan`] also checks that the plan runs every tenant's steps in order,
//! so a wrong plan is an error rather than wrong numbers.

use std::collections::HashMap;
use std::sync::Arc;

use weft_kir::{check_args, ArgValue, HostBuffer, ParamKind, Target};
use weft_lower::{BufferId, BufferKind, Program};

use crate::bundle::{Bundle, TenantId};
use crate::exec::BundleExecutor;
use crate::schedule::{plan, Plan, Policy, ScheduleError};

/// Why a multi-tenant run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("tenant {}: {source}", tenant.0)]
    Program {
        tenant: TenantId,
        #[source]
        source: weft_lower::RunError,
    },
    #[error("bundle {bundle} has a slot of tenant {}, which is not among the tenants being run", tenant.0)]
    UnknownTenant { bundle: usize, tenant: TenantId },
    #[error(
        "bundle {bundle} runs tenant {}'s kernel `{kernel}` out of order: the tenant's next step is {expected} \
         of {steps}",
        tenant.0
    )]
    OutOfOrder { bundle: usize, tenant: TenantId, kernel: String, expected: usize, steps: usize },
    #[error("bundle {bundle} ({slots}) failed on {executor}: {message}")]
    Bundle { bundle: usize, slots: String, executor: String, message: String },
    #[error("tenant {} has run {ran} of its {steps} steps when the plan ends", tenant.0)]
    Unfinished { tenant: TenantId, ran: usize, steps: usize },
    #[error("{tenants} tenants were given but {inputs} input lists")]
    InputLists { tenants: usize, inputs: usize },
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// A tenant's program, borrowed (a run that owns its programs) or shared
/// (a long-lived server whose requests outlive any one borrow).
#[derive(Clone, Debug)]
pub enum ProgramRef<'p> {
    Borrowed(&'p Program),
    Shared(Arc<Program>),
}

impl std::ops::Deref for ProgramRef<'_> {
    type Target = Program;

    fn deref(&self) -> &Program {
        match self {
            ProgramRef::Borrowed(p) => p,
            ProgramRef::Shared(p) => p,
        }
    }
}

/// One tenant during a multi-tenant run: its program and live buffers.
#[derive(Clone, Debug)]
pub struct TenantState<'p> {
    pub tenant: TenantId,
    pub program: ProgramRef<'p>,
    /// Inputs and activations written so far (weights stay in the program).
    live: HashMap<BufferId, HostBuffer>,
    /// Index of the next step to run.
    next: usize,
}

impl<'p> TenantState<'p> {
    /// A tenant about to run `program` on `inputs` (one per graph input, in
    /// order; checked like [`Program::run`] checks them).
    pub fn new(tenant: TenantId, program: &'p Program, inputs: &[HostBuffer]) -> Result<TenantState<'p>, RunError> {
        TenantState::with_program(tenant, ProgramRef::Borrowed(program), inputs)
    }

    /// Like [`TenantState::new`] with a shared program, for states that must
    /// not borrow (a server's in-flight requests).
    pub fn shared(
        tenant: TenantId,
        program: Arc<Program>,
        inputs: &[HostBuffer],
    ) -> Result<TenantState<'static>, RunError> {
        TenantState::with_program(tenant, ProgramRef::Shared(program), inputs)
    }

    fn with_program(
        tenant: TenantId,
        program: ProgramRef<'p>,
        inputs: &[HostBuffer],
    ) -> Result<TenantState<'p>, RunError> {
        let fail = |source| RunError::Program { tenant, source };
        if inputs.len() != program.inputs.len() {
            return Err(fail(weft_lower::RunError::InputCount {
                program: program.name.clone(),
                expected: program.inputs.len(),
                given: inputs.len(),
            }));
        }
        let mut live = HashMap::new();
        for (binding, given) in program.inputs.iter().zip(inputs) {
            let Some(info) = program.buffers.get(binding.buffer) else {
                return Err(fail(malformed(&program, format!("input `{}` has no buffer", binding.name))));
            };
            if given.elem() != info.elem || given.len() != info.len() {
                return Err(fail(weft_lower::RunError::InputMismatch {
                    input: binding.name.clone(),
                    expected_ty: info.elem,
                    expected_len: info.len(),
                    given_ty: given.elem(),
                    given_len: given.len(),
                }));
            }
            live.insert(binding.buffer, given.clone());
        }
        Ok(TenantState { tenant, program, live, next: 0 })
    }

    /// Steps run so far.
    pub fn steps_run(&self) -> usize {
        self.next
    }

    /// Whether every step has run.
    pub fn is_finished(&self) -> bool {
        self.next >= self.program.steps.len()
    }

    /// The graph outputs, in order (meaningful once finished).
    pub fn outputs(&self) -> Result<Vec<HostBuffer>, RunError> {
        self.program.outputs.iter().map(|o| self.buffer_value(o.buffer)).collect()
    }

    /// The current contents of `b`, as `Program::run` defines them.
    fn buffer_value(&self, b: BufferId) -> Result<HostBuffer, RunError> {
        if let Some(v) = self.live.get(&b) {
            return Ok(v.clone());
        }
        let program: &Program = &self.program;
        let info = program.buffers.get(b).ok_or_else(|| RunError::Program {
            tenant: self.tenant,
            source: malformed(program, format!("step refers to missing buffer {b}")),
        })?;
        match info.kind {
            BufferKind::Weight => program.weights.get(&b).cloned().ok_or_else(|| RunError::Program {
                tenant: self.tenant,
                source: malformed(program, format!("weight buffer {b} (`{}`) has no contents", info.name)),
            }),
            _ => Ok(HostBuffer::zeros(info.elem, info.len())),
        }
    }
}

fn malformed(program: &Program, message: String) -> weft_lower::RunError {
    weft_lower::RunError::Malformed { program: program.name.clone(), message }
}

/// Runs every bundle of `plan` on `exec`, updating `tenants`' buffers.
/// Every slot must be its tenant's next step, and every tenant must be
/// finished when the plan ends.
pub fn run_plan<E: BundleExecutor>(plan: &Plan, tenants: &mut [TenantState<'_>], exec: &E) -> Result<(), RunError> {
    for (index, planned) in plan.bundles.iter().enumerate() {
        if planned.slots.len() != planned.bundle.slots.len() {
            return Err(RunError::Bundle {
                bundle: index,
                slots: format!("{} slots", planned.bundle.slots.len()),
                executor: exec.name().to_string(),
                message: format!("the plan describes {} slots", planned.slots.len()),
            });
        }
        let steps: Vec<(TenantId, usize)> = planned.slots.iter().map(|p| (p.tenant, p.step)).collect();
        run_bundle_steps(index, &planned.bundle, Some(&steps), tenants, exec)?;
    }
    for t in tenants.iter() {
        if !t.is_finished() {
            return Err(RunError::Unfinished { tenant: t.tenant, ran: t.next, steps: t.program.steps.len() });
        }
    }
    Ok(())
}

/// Runs one bundle whose every slot is its tenant's next step (a server
/// forming bundles as requests arrive), advancing those tenants by one step.
/// `index` names the bundle in errors.
pub fn run_bundle<E: BundleExecutor>(
    index: usize,
    bundle: &Bundle,
    tenants: &mut [TenantState<'_>],
    exec: &E,
) -> Result<(), RunError> {
    run_bundle_steps(index, bundle, None, tenants, exec)
}

fn run_bundle_steps<E: BundleExecutor>(
    index: usize,
    bundle: &Bundle,
    planned: Option<&[(TenantId, usize)]>,
    tenants: &mut [TenantState<'_>],
    exec: &E,
) -> Result<(), RunError> {
    // Which tenant state each slot belongs to, checked before anything runs.
    let mut owners = Vec::with_capacity(bundle.slots.len());
    for (i, slot) in bundle.slots.iter().enumerate() {
        let owner = tenants
            .iter()
            .position(|t| t.tenant == slot.tenant)
            .ok_or(RunError::UnknownTenant { bundle: index, tenant: slot.tenant })?;
        let state = &tenants[owner];
        // The builder may have replaced the kernel by a guarded copy, so
        // order is checked by step index and arguments, not by kernel.
        let planned_ok =
            planned.is_none_or(|p| p.get(i).is_some_and(|&(t, step)| t == slot.tenant && step == state.next));
        let in_order = planned_ok && state.program.steps.get(state.next).is_some_and(|s| s.args == slot.args);
        if !in_order || owners.contains(&owner) {
            return Err(RunError::OutOfOrder {
                bundle: index,
                tenant: slot.tenant,
                kernel: slot.kernel.name.clone(),
                expected: state.next,
                steps: state.program.steps.len(),
            });
        }
        owners.push(owner);
    }
    let describe = || {
        bundle.slots.iter().map(|s| format!("tenant {} `{}`", s.tenant.0, s.kernel.name)).collect::<Vec<_>>().join(", ")
    };
    let mut args: Vec<Vec<ArgValue>> = Vec::with_capacity(bundle.slots.len());
    for (slot, &owner) in bundle.slots.iter().zip(&owners) {
        let state = &tenants[owner];
        let values =
            slot.args.iter().map(|&b| state.buffer_value(b).map(ArgValue::Buffer)).collect::<Result<Vec<_>, _>>()?;
        check_args(&slot.kernel, &values).map_err(|e| RunError::Bundle {
            bundle: index,
            slots: describe(),
            executor: exec.name().to_string(),
            message: format!("tenant {} `{}`: {e}", slot.tenant.0, slot.kernel.name),
        })?;
        args.push(values);
    }
    exec.execute_bundle(bundle, &mut args).map_err(|e| RunError::Bundle {
        bundle: index,
        slots: describe(),
        executor: exec.name().to_string(),
        message: e.to_string(),
    })?;
    for ((slot, &owner), values) in bundle.slots.iter().zip(&owners).zip(args) {
        let state = &mut tenants[owner];
        // In parameter order, like Program::run: a later parameter bound
        // to the same buffer wins.
        for ((_, param), (arg, &b)) in slot.kernel.params.iter().zip(values.into_iter().zip(&slot.args)) {
            if let (ParamKind::Buffer { access, .. }, ArgValue::Buffer(buf)) = (&param.kind, arg) {
                if access.can_write() {
                    state.live.insert(b, buf);
                }
            }
        }
        state.next += 1;
    }
    Ok(())
}

/// The result of [`run_multi`]: the plan that ran and each tenant's outputs,
/// in the order tenants were given.
#[derive(Clone, Debug)]
pub struct MultiRun {
    pub plan: Plan,
    pub outputs: Vec<Vec<HostBuffer>>,
}

/// Schedules `programs` (tenant ids are their positions) under `policy` and
/// runs them on `exec` with `inputs[i]` for program `i`.
pub fn run_multi<E: BundleExecutor>(
    programs: &[&Program],
    inputs: &[Vec<HostBuffer>],
    limits: &Target,
    policy: &Policy,
    exec: &E,
) -> Result<MultiRun, RunError> {
    if programs.len() != inputs.len() {
        return Err(RunError::InputLists { tenants: programs.len(), inputs: inputs.len() });
    }
    let ids: Vec<(TenantId, &Program)> = programs.iter().enumerate().map(|(i, &p)| (TenantId(i as u32), p)).collect();
    let mut states =
        ids.iter().zip(inputs).map(|(&(t, p), x)| TenantState::new(t, p, x)).collect::<Result<Vec<_>, _>>()?;
    let plan = plan(&ids, limits, policy)?;
    run_plan(&plan, &mut states, exec)?;
    let outputs = states.iter().map(TenantState::outputs).collect::<Result<Vec<_>, _>>()?;
    Ok(MultiRun { plan, outputs })
}
