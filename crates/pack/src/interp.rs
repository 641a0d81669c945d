//! Bundles on the CPU interpreter.
//!
//! The interpreter runs a bundle through [`Interpreter::run_mapped`] with the
//! bundle's own [`SlotTable::logical_blocks`](crate::SlotTable::logical_blocks)
//! as the physical → (slot, logical block) mapping, so the one definition of
//! the mapping is what both executors run. Each slot runs the body its table
//! row names (what the compiled module runs on the GPU) on its own arguments.
//! Because every logical block executes exactly as in a solo run, a bundle's
//! outputs here are bit-identical to running each slot alone; that equality is
//! the packer's test oracle (DESIGN.md, principle 2; `tests/oracle.rs`).

use weft_interp::{InterpError, Interpreter, MappedSlot};
use weft_kir::ArgValue;

use crate::bundle::Bundle;
use crate::exec::BundleExecutor;

impl BundleExecutor for Interpreter {
    type Error = InterpError;

    fn name(&self) -> &str {
        "interp"
    }

    fn execute_bundle(&self, bundle: &Bundle, args: &mut [Vec<ArgValue>]) -> Result<(), InterpError> {
        let invalid = |reason: String| InterpError::InvalidMapping { reason };
        let entries = &bundle.table.entries;
        if args.len() != entries.len() {
            return Err(invalid(format!(
                "the bundle's slot table has {} slots but {} argument lists were given",
                entries.len(),
                args.len()
            )));
        }
        let mut slots = Vec::with_capacity(entries.len());
        for (s, (entry, slot_args)) in entries.iter().zip(args.iter_mut()).enumerate() {
            let Some(kernel) = bundle.bodies.get(entry.body as usize) else {
                return Err(invalid(format!(
                    "slot {s} names body {} but the bundle has {} bodies",
                    entry.body,
                    bundle.bodies.len()
                )));
            };
            // The table's grid is what the mapping enumerates; the kernel's is
            // what its blocks compute with. They must agree.
            if entry.grid != kernel.launch.grid {
                return Err(invalid(format!(
                    "slot {s}'s table row has grid {:?} but kernel `{}` has grid {:?}",
                    entry.grid, kernel.name, kernel.launch.grid
                )));
            }
            slots.push(MappedSlot::new(kernel, slot_args));
        }
        let table = &bundle.table;
        self.run_mapped(&mut slots, table.total_blocks(), |p| table.logical_blocks(p)).map(|_| ())
    }
}
