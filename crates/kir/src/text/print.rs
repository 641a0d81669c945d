//! Writes kernels and modules in the KIR text format (see [`super`]).
//!
//! The printer never panics, even on kernels the verifier would reject: it is
//! what people read when something is wrong, so a dangling id prints as the
//! id, an unknown type as `?`, and a region reached twice (a cycle in a
//! malformed region tree) as a comment instead of recursing forever.

use std::fmt::{self, Write};

use crate::entities::{Inst, Region, Value};
use crate::inst::InstData;
use crate::kernel::{KernelDef, Module, ParamKind};

impl fmt::Display for KernelDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [gx, gy, gz] = self.launch.grid;
        let [bx, by, bz] = self.launch.block;
        writeln!(f, "kernel @{} grid({gx}, {gy}, {gz}) block({bx}, {by}, {bz}) {{", kernel_name(&self.name))?;
        for (p, data) in &self.params {
            match data.kind {
                ParamKind::Buffer { elem, len, access } => {
                    writeln!(f, "  {p} = buffer {}: {elem}[{len}] {access}", quote(&data.name))?
                }
                ParamKind::Scalar { ty } => writeln!(f, "  {p} = scalar {}: {ty}", quote(&data.name))?,
            }
        }
        for (s, data) in &self.shared {
            writeln!(f, "  {s} = shared {}[{}]", data.elem, data.len)?;
        }
        for (x, data) in &self.vars {
            writeln!(f, "  {x} = var {}", data.ty)?;
        }
        let mut printed = vec![false; self.regions.len()];
        write_region(f, self, self.body, 1, &mut printed)?;
        writeln!(f, "}}")
    }
}

impl fmt::Display for Module {
    /// Kernels in order, separated by blank lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.kernels.values().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

/// `name` if it is a plain identifier, otherwise a quoted string, so every
/// kernel name survives a round trip.
fn kernel_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote(name)
    }
}

/// A double-quoted string with `"`, `\` and control characters escaped the
/// way the lexer unescapes them.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_region(
    f: &mut fmt::Formatter<'_>,
    k: &KernelDef,
    region: Region,
    depth: usize,
    printed: &mut [bool],
) -> fmt::Result {
    let indent = "  ".repeat(depth);
    let Some(insts) = k.regions.get(region) else {
        return writeln!(f, "{indent}; error: missing region {region}");
    };
    if std::mem::replace(&mut printed[region.as_u32() as usize], true) {
        return writeln!(f, "{indent}; error: region {region} appears twice in the region tree");
    }
    for &inst in insts {
        write!(f, "{indent}")?;
        write_inst(f, k, inst, depth, printed)?;
    }
    Ok(())
}

/// The `vN: ty = ` prefix of a value-producing instruction.
fn write_result(f: &mut fmt::Formatter<'_>, k: &KernelDef, inst: Inst) -> fmt::Result {
    match k.inst_result.get(inst).copied().flatten() {
        Some(v) => write!(f, "{v}: {} = ", value_type(k, v)),
        None => write!(f, "?: ? = "),
    }
}

fn value_type(k: &KernelDef, v: Value) -> String {
    k.values.get(v).map_or_else(|| "?".to_string(), |d| d.ty.to_string())
}

fn write_inst(
    f: &mut fmt::Formatter<'_>,
    k: &KernelDef,
    inst: Inst,
    depth: usize,
    printed: &mut [bool],
) -> fmt::Result {
    let Some(data) = k.insts.get(inst) else {
        return writeln!(f, "; error: missing instruction {inst}");
    };
    let m = data.mnemonic();
    match *data {
        InstData::Const(s) => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {s}")
        }
        InstData::Special(s) => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {}", s.name())
        }
        InstData::ScalarParam(p) => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {p}")
        }
        InstData::Unary { arg, .. } | InstData::Cast { arg, .. } | InstData::Bitcast { arg, .. } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {arg}")
        }
        InstData::Binary { lhs, rhs, .. } | InstData::Cmp { lhs, rhs, .. } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {lhs}, {rhs}")
        }
        InstData::Fma { a, b, c } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {a}, {b}, {c}")
        }
        InstData::Select { cond, if_true, if_false } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {cond}, {if_true}, {if_false}")
        }
        InstData::Load { buf, index } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {buf}[{index}]")
        }
        InstData::SharedLoad { array, index } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {array}[{index}]")
        }
        InstData::VarGet(var) => {
            write_result(f, k, inst)?;
            writeln!(f, "{m} {var}")
        }
        InstData::Shuffle { kind, value, operand, width } => {
            write_result(f, k, inst)?;
            writeln!(f, "{m}.{} {value}, {operand}, {width}", kind.name())
        }
        InstData::Store { buf, index, value } => writeln!(f, "{m} {buf}[{index}], {value}"),
        InstData::SharedStore { array, index, value } => writeln!(f, "{m} {array}[{index}], {value}"),
        InstData::VarSet { var, value } => writeln!(f, "{m} {var}, {value}"),
        InstData::Barrier => writeln!(f, "{m}"),
        InstData::For { index, start, end, step, body } => {
            writeln!(f, "{m} {index} in {start}..{end} step {step} {{")?;
            write_region(f, k, body, depth + 1, printed)?;
            writeln!(f, "{}}}", "  ".repeat(depth))
        }
        InstData::If { cond, then, else_ } => {
            writeln!(f, "{m} {cond} {{")?;
            write_region(f, k, then, depth + 1, printed)?;
            if let Some(else_) = else_ {
                writeln!(f, "{}}} else {{", "  ".repeat(depth))?;
                write_region(f, k, else_, depth + 1, printed)?;
            }
            writeln!(f, "{}}}", "  ".repeat(depth))
        }
    }
}
