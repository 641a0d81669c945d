//! Bundles on the CPU interpreter: the [`Executor`] that is weft's oracle.
//!
//! [`InterpExecutor`] holds its buffers in host memory under handles and
//! runs a bundle through [`Interpreter::run_mapped`] with the bundle's own
//! [`SlotTable::logical_blocks`](crate::SlotTable::logical_blocks) as the
//! physical → (slot, logical block) mapping, so the one definition of the
//! mapping is what both the interpreter and the GPU run. Each slot runs the
//! body its table row names (what the compiled module runs on the GPU) on
//! its own arguments. Because every logical block executes exactly as in a
//! solo run, a bundle's outputs here are bit-identical to running each slot
//! alone; that equality is the packer's test oracle (DESIGN.md, principle 2;
//! `tests/oracle.rs`).
//!
//! Every launch is checked and encoded by [`encode_launch`], as on the GPU,
//! and every byte given or returned is counted ([`Transfers`]), so tests can
//! assert what a request moves. Nothing is ever compiled, so every class is
//! prepared.
//!
//! The watchdog's bound ([`Executor::set_launch_limit`]) becomes the
//! interpreter's deadline ([`Interpreter::set_deadline`]): a launch that
//! passes it stops, writes nothing back, fails with [`ExecError::Hung`] and
//! leaves the executor faulted until [`Executor::recover`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weft_interp::{Interpreter, MappedSlot};
use weft_kir::{ArgValue, HostBuffer, ParamKind, Type};

use crate::bundle::Bundle;
use crate::exec::{BufferShape, ExecError, Executor, Handle, HandleMap, LaunchArg, Timing, Transfers};
use crate::launch::encode_launch;

const NAME: &str = "interp";

/// The interpreter as an [`Executor`]; see the module docs.
#[derive(Debug, Default)]
pub struct InterpExecutor {
    interp: Interpreter,
    buffers: HandleMap<HostBuffer>,
    transfers: Transfers,
    /// The watchdog's bound for each launch.
    limit: Option<Duration>,
    /// A launch was stopped by the watchdog; cleared by `recover`.
    hung: bool,
}

impl InterpExecutor {
    /// An executor over `interp`.
    pub fn new(interp: Interpreter) -> InterpExecutor {
        InterpExecutor {
            interp,
            buffers: HandleMap::default(),
            transfers: Transfers::default(),
            limit: None,
            hung: false,
        }
    }

    /// Buffers held now.
    pub fn live_buffers(&self) -> usize {
        self.buffers.len()
    }

    fn get(&self, h: Handle) -> Result<&HostBuffer, ExecError> {
        self.buffers.get(h).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: h })
    }
}

impl Executor for InterpExecutor {
    fn name(&self) -> &str {
        NAME
    }

    /// Drops every buffer, as a rebuilt device context would hold none
    /// (the interpreter faults only by the watchdog stopping a launch;
    /// fault injection makes it [`Executor::is_faulted`] through an
    /// [`crate::Interceptor`]).
    fn recover(&mut self) -> Result<(), ExecError> {
        self.buffers.clear();
        self.hung = false;
        Ok(())
    }

    fn is_faulted(&self) -> bool {
        self.hung
    }

    fn set_launch_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
    }

    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError> {
        if (len as u64).checked_mul(elem.size_bytes()).is_none_or(|b| b > isize::MAX as u64) {
            return Err(ExecError::TooLarge { executor: NAME.into(), elem, len });
        }
        Ok(self.buffers.insert(HostBuffer::zeros(elem, len)))
    }

    fn free(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.buffers.remove(buf).map(|_| ()).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })
    }

    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        let held = self.get(buf)?;
        BufferShape { elem: held.elem(), len: held.len() }.check(NAME, buf, data)?;
        self.buffers.put_back(buf, data.clone());
        self.transfers.uploads += 1;
        self.transfers.upload_bytes += data.bytes().len() as u64;
        Ok(())
    }

    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError> {
        let data = self.get(buf)?.clone();
        self.transfers.downloads += 1;
        self.transfers.download_bytes += data.bytes().len() as u64;
        Ok(data)
    }

    fn zero(&mut self, buf: Handle) -> Result<(), ExecError> {
        let held = self.get(buf)?;
        let zeros = HostBuffer::zeros(held.elem(), held.len());
        self.buffers.put_back(buf, zeros);
        Ok(())
    }

    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError> {
        let buffers = &self.buffers;
        let encoded = encode_launch(
            NAME,
            bundle,
            args,
            |h| buffers.get(h).map(|b| BufferShape { elem: b.elem(), len: b.len() }),
            |h| h.0,
        )?;
        if bundle.slots.is_empty() {
            return Ok(Timing { total_us: 0.0, per_slot_us: None });
        }
        // The first use of a handle takes the buffer out of the table; later
        // uses (a weight read by two tenants' slots) read a copy.
        let mut first_use: HashMap<Handle, (usize, usize)> = HashMap::new();
        for (s, slot_args) in args.iter().enumerate() {
            for (p, a) in slot_args.iter().enumerate() {
                if let LaunchArg::Buffer(h) = a {
                    first_use.entry(*h).or_insert((s, p));
                }
            }
        }
        let mut values: Vec<Vec<ArgValue>> = Vec::with_capacity(args.len());
        for (s, slot_args) in args.iter().enumerate() {
            let mut slot_values = Vec::with_capacity(slot_args.len());
            for (p, a) in slot_args.iter().enumerate() {
                slot_values.push(match *a {
                    LaunchArg::Scalar(v) => ArgValue::Scalar(v),
                    LaunchArg::Buffer(h) if first_use.get(&h) == Some(&(s, p)) => {
                        ArgValue::Buffer(HostBuffer::zeros(Type::I32, 0))
                    }
                    LaunchArg::Buffer(h) => ArgValue::Buffer(self.get(h)?.clone()),
                });
            }
            values.push(slot_values);
        }
        for (&h, &(s, p)) in &first_use {
            let taken = self.buffers.remove(h).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: h })?;
            values[s][p] = ArgValue::Buffer(taken);
        }
        let began = Instant::now();
        self.interp.set_deadline(self.limit.and_then(|l| began.checked_add(l)));
        let result = {
            let mut slots = Vec::with_capacity(values.len());
            for ((entry, slot_values), s) in bundle.table.entries.iter().zip(values.iter_mut()).zip(0..) {
                let kernel = bundle.bodies.get(entry.body as usize).ok_or_else(|| ExecError::Bundle {
                    reason: format!("slot {s} names body {} but the bundle has {}", entry.body, bundle.bodies.len()),
                })?;
                slots.push(MappedSlot::new(kernel, slot_values));
            }
            let table = &bundle.table;
            self.interp.run_mapped(&mut slots, table.total_blocks(), |p| table.logical_blocks(p))
        };
        let elapsed_us = began.elapsed().as_secs_f64() * 1e6;
        // Put every taken buffer back (unchanged when the run failed), then
        // let writes land in parameter order: a later parameter bound to the
        // same buffer wins.
        for (&h, &(s, p)) in &first_use {
            if let ArgValue::Buffer(b) =
                std::mem::replace(&mut values[s][p], ArgValue::Scalar(weft_kir::Scalar::I32(0)))
            {
                self.buffers.put_back(h, b);
            }
        }
        if let Err(e) = result {
            if e.is_hung() {
                self.hung = true;
                return Err(ExecError::hung(NAME, self.limit.unwrap_or_default(), began.elapsed()));
            }
            return Err(ExecError::backend(NAME, e));
        }
        for ((slot, slot_args), slot_values) in bundle.slots.iter().zip(args).zip(values) {
            for (((_, param), a), v) in slot.kernel.params.iter().zip(slot_args).zip(slot_values) {
                if let (ParamKind::Buffer { access, .. }, LaunchArg::Buffer(h), ArgValue::Buffer(b)) =
                    (&param.kind, a, v)
                {
                    if access.can_write() {
                        self.buffers.put_back(*h, b);
                    }
                }
            }
        }
        self.transfers.launches += 1;
        self.transfers.launch_bytes += encoded.bytes();
        Ok(Timing { total_us: elapsed_us, per_slot_us: None })
    }

    fn transfers(&self) -> Transfers {
        self.transfers
    }
}
