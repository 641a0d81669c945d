//! KIR analyses: block uniformity, static cost, and access ranges.
//!
//! Each analysis is one file and one entry point, computed from a kernel
//! alone (no launch arguments: shapes are static). They feed the verifier
//! (uniformity keeps barriers legal), the packer (access ranges prove tenants
//! cannot reach each other's buffers) and the predictor (cost features).
//! Every analysis survives malformed kernels without panicking, so tools can
//! run them before or without verification; on such kernels the answers are
//! merely conservative.
//!
//! [`report`] prints all of them as one fact per line for `.kir` file tests.

pub mod cost;
pub mod ranges;
pub mod uniformity;
pub(crate) mod walk;

use std::fmt::Write as _;

pub use cost::{cost, KernelCost};
pub use ranges::{access_ranges, shared_ranges, AccessKind, AccessRange, IndexRange, Interval, SharedAccessRange};
pub use uniformity::{uniformity, Uniformity};

use crate::inst::InstData;
use crate::kernel::KernelDef;

/// A human-readable report of every analysis of `kernel`, one fact per line
/// (used by `.kir` file tests with `; test: analyze`). The order is fixed:
/// cost facts, then uniformity, then one line per global access and one per
/// shared access in text order, e.g.
///
/// ```text
/// flops: 2048
/// global_read_bytes: 8000
/// ...
/// i12 load p0[0, 999] in bounds
/// i15 store p2[0, 1023] OUT OF BOUNDS of 1000
/// i9 load p1[?] unproven
/// i20 shared_store s0[0, 255] in bounds
/// i30 load p0 unreachable
/// ```
pub fn report(kernel: &KernelDef) -> String {
    let mut out = String::new();
    let c = cost(kernel);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "threads: {}", c.threads);
    let _ = writeln!(out, "flops: {}", c.flops);
    let _ = writeln!(out, "global_read_bytes: {}", c.global_read_bytes);
    let _ = writeln!(out, "global_write_bytes: {}", c.global_write_bytes);
    let _ = writeln!(out, "shared_bytes: {}", c.shared_bytes);
    let _ = writeln!(out, "shared_read_bytes: {}", c.shared_read_bytes);
    let _ = writeln!(out, "shared_write_bytes: {}", c.shared_write_bytes);
    let _ = writeln!(out, "barriers_per_thread: {}", c.barriers_per_thread);
    let _ = writeln!(out, "thread_insts: {}", c.thread_insts);
    let trips = if c.unbounded_loops > 0 {
        format!("{} unbounded", c.unbounded_loops)
    } else if c.exact_trips {
        "exact".to_string()
    } else {
        "upper bound".to_string()
    };
    let _ = writeln!(out, "loop_trips: {trips}");

    let u = uniformity(kernel);
    let names = |items: Vec<String>| if items.is_empty() { "-".to_string() } else { items.join(" ") };
    let uniform = u.uniform_values(kernel).iter().map(|v| v.to_string()).collect();
    let _ = writeln!(out, "uniform: {}", names(uniform));
    let divergent = kernel
        .insts
        .iter()
        .filter(|(i, d)| matches!(d, InstData::If { .. } | InstData::For { .. }) && u.is_divergent_branch(*i))
        .map(|(i, _)| i.to_string())
        .collect();
    let _ = writeln!(out, "divergent_branches: {}", names(divergent));

    for a in access_ranges(kernel) {
        let target = a.buf.to_string();
        let _ = writeln!(out, "{}", access_line(a.inst, a.kind.name(), &target, a.index, a.len, a.is_proven()));
    }
    for a in shared_ranges(kernel) {
        let target = a.array.to_string();
        let mnemonic = match a.kind {
            AccessKind::Load => "shared_load",
            AccessKind::Store => "shared_store",
        };
        let _ = writeln!(out, "{}", access_line(a.inst, mnemonic, &target, a.index, a.len as u64, a.is_proven()));
    }
    out
}

fn access_line(
    inst: crate::entities::Inst,
    mnemonic: &str,
    target: &str,
    index: IndexRange,
    len: u64,
    proven: bool,
) -> String {
    match index {
        IndexRange::Unreachable => format!("{inst} {mnemonic} {target} unreachable"),
        IndexRange::Unknown => format!("{inst} {mnemonic} {target}[?] unproven"),
        IndexRange::Within(iv) if proven => format!("{inst} {mnemonic} {target}[{}, {}] in bounds", iv.lo, iv.hi),
        IndexRange::Within(iv) => format!("{inst} {mnemonic} {target}[{}, {}] OUT OF BOUNDS of {len}", iv.lo, iv.hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KernelBuilder;
    use crate::inst::{Access, Axis};
    use crate::kernel::LaunchShape;
    use crate::types::Type;

    #[test]
    fn report_lists_every_fact_in_order() {
        let mut b = KernelBuilder::new("k", LaunchShape::linear(4, 256));
        let x = b.buffer("x", Type::F32, 1000, Access::Read);
        let out = b.buffer("out", Type::F32, 1000, Access::Write);
        let n = b.scalar_param("n", Type::I32);
        let s = b.shared_array(Type::F32, 256);
        let i = b.global_thread_id(Axis::X); // v0..v4; v3 = block_id * block_dim is uniform
        let limit = b.const_i32(1000); // v5
        let ok = b.lt(i, limit); // v6
        b.if_(ok, |b| {
            let v = b.load(x, i); // v7
            b.store(out, i, v);
        });
        b.store(out, i, limit);
        let nv = b.param(n); // v8
        b.load(x, nv); // v9
        let tid = b.thread_id(Axis::X); // v10
        b.shared_store(s, tid, limit);
        let text = report(&b.finish());
        let expected = "\
threads: 1024
flops: 0
global_read_bytes: 8192
global_write_bytes: 8192
shared_bytes: 1024
shared_read_bytes: 0
shared_write_bytes: 4096
barriers_per_thread: 0
thread_insts: 15360
loop_trips: exact
uniform: v0 v1 v3 v5 v8 v9
divergent_branches: i7
i8 load p0[0, 999] in bounds
i9 store p1[0, 999] in bounds
i10 store p1[0, 1023] OUT OF BOUNDS of 1000
i12 load p0[?] unproven
i14 shared_store s0[0, 255] in bounds
";
        assert_eq!(text, expected);
    }
}
