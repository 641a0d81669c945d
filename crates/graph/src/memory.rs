//! Memory budgets: the bytes a model may hold, checked before anything that
//! size is allocated.
//!
//! Import charges what it allocates itself (weights, folded and evaluated
//! constants, the constants it makes up) to a [`Budget`] and refuses a node
//! whose output alone would not fit next to them; lowering sums the buffers
//! an executor will hold for the program (`weft_lower::Program::memory`)
//! and refuses a program over the budget. Either refusal is a
//! [`MemoryError`] naming the largest tensors and the way out
//! (`--max-memory`).
//!
//! The budget is the caller's: a device's memory on a GPU, a safe fraction
//! of the host's ([`host_memory_budget`]) on the interpreter and the cpu
//! executor, or an explicit `--max-memory BYTES` ([`parse_bytes`]).

use std::fmt;

/// Bytes per element that folding and the reference evaluator hold while
/// computing a constant: an index or an `f64` working value (8 bytes) and
/// the result (up to 8 bytes).
pub const EVAL_BYTES_PER_ELEMENT: u64 = 16;

/// How many of the largest tensors a [`MemoryError`] names.
pub const LARGEST_SHOWN: usize = 5;

/// A model that does not fit its memory budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs {} in all, over the memory budget of {}; largest tensors: {}. Raise the budget with \
     `--max-memory BYTES` (K/M/G suffixes, e.g. --max-memory 64G), or bind smaller dynamic dimensions",
    format_bytes(*.needed),
    format_bytes(*.limit),
    list_largest(.largest)
)]
pub struct MemoryError {
    /// What did not fit: `node `pad` (Pad) output`, `program `model``.
    pub what: String,
    /// Bytes needed, counting what is already held.
    pub needed: u64,
    /// The budget in bytes.
    pub limit: u64,
    /// The largest tensors as `(name, bytes)`, largest first.
    pub largest: Vec<(String, u64)>,
}

fn list_largest(largest: &[(String, u64)]) -> String {
    let shown: Vec<String> = largest.iter().map(|(n, b)| format!("`{n}` {}", format_bytes(*b))).collect();
    shown.join(", ")
}

/// `1536` → `1.5 KiB`; exact bytes below 1 KiB.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Parses a byte count: `1000000`, `512K`, `64M`, `8G`, `1T` (binary
/// multiples; an optional `iB`/`B` after the suffix is accepted).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let stripped = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (digits, shift) = match stripped.chars().last() {
        Some('K') => (&stripped[..stripped.len() - 1], 10),
        Some('M') => (&stripped[..stripped.len() - 1], 20),
        Some('G') => (&stripped[..stripped.len() - 1], 30),
        Some('T') => (&stripped[..stripped.len() - 1], 40),
        _ => (stripped, 0),
    };
    let bad = || format!("`{text}`: expected a byte count such as 1000000, 512K, 64M or 8G");
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("`{text}`: the budget must be positive"));
    }
    Ok(bytes)
}

/// The share of the host's available memory a model may hold on the
/// interpreter and the cpu executor: three quarters, leaving room for the
/// process itself and the rest of the machine.
pub const HOST_FRACTION: f64 = 0.75;

/// The budget used when `/proc/meminfo` cannot be read: 8 GiB.
pub const FALLBACK_HOST_BUDGET: u64 = 8 << 30;

/// [`HOST_FRACTION`] of the host memory available now (`MemAvailable` of
/// `/proc/meminfo`, else `MemTotal`), or [`FALLBACK_HOST_BUDGET`] where the
/// system does not say.
pub fn host_memory_budget() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return FALLBACK_HOST_BUDGET;
    };
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    match field("MemAvailable:").or_else(|| field("MemTotal:")) {
        Some(bytes) if bytes > 0 => (bytes as f64 * HOST_FRACTION) as u64,
        _ => FALLBACK_HOST_BUDGET,
    }
}

/// Bytes of a tensor of `dims` with `elem_bytes`-byte elements, saturating.
pub fn tensor_bytes(dims: &[usize], elem_bytes: u64) -> u64 {
    dims.iter().fold(elem_bytes, |acc, &d| acc.saturating_mul(d as u64))
}

/// Bytes of a constant's elements at its element type's size (what an
/// executor will hold for it).
pub fn held_bytes(t: &crate::tensor::Tensor) -> u64 {
    (t.data.len() as u64).saturating_mul(t.dtype.size_bytes() as u64)
}

/// Bytes held against a limit, with the largest holdings remembered for
/// the error message.
#[derive(Clone, Debug)]
pub struct Budget {
    limit: u64,
    held: u64,
    largest: Vec<(String, u64)>,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget { limit, held: 0, largest: Vec::new() }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged so far.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Bytes still free.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.held)
    }

    /// The error for `what` needing `bytes` more on top of what is held,
    /// or `Ok` when they fit. Nothing is charged.
    pub fn check(&self, what: impl FnOnce() -> String, name: &str, bytes: u64) -> Result<(), MemoryError> {
        let needed = self.held.saturating_add(bytes);
        if needed <= self.limit {
            return Ok(());
        }
        let mut largest = self.largest.clone();
        insert_largest(&mut largest, name.to_string(), bytes);
        Err(MemoryError { what: what(), needed, limit: self.limit, largest })
    }

    /// Charges `bytes` held for tensor `name`, refusing them (and charging
    /// nothing) when they do not fit.
    pub fn charge(&mut self, what: impl FnOnce() -> String, name: &str, bytes: u64) -> Result<(), MemoryError> {
        self.check(what, name, bytes)?;
        self.held += bytes;
        insert_largest(&mut self.largest, name.to_string(), bytes);
        Ok(())
    }
}

/// Keeps the [`LARGEST_SHOWN`] largest entries, largest first.
pub fn insert_largest(largest: &mut Vec<(String, u64)>, name: String, bytes: u64) {
    if largest.len() == LARGEST_SHOWN && largest.last().is_some_and(|(_, b)| *b >= bytes) {
        return;
    }
    let at = largest.partition_point(|(_, b)| *b >= bytes);
    largest.insert(at, (name, bytes));
    largest.truncate(LARGEST_SHOWN);
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", format_bytes(self.held), format_bytes(self.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("512K").unwrap(), 512 * 1024);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("8G").unwrap(), 8u64 << 30);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2u64 << 30);
        assert_eq!(parse_bytes("1T").unwrap(), 1u64 << 40);
        for bad in ["", "G", "1.5G", "-1", "0", "12Q", "99999999999999999999T"] {
            let e = parse_bytes(bad).unwrap_err();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    #[test]
    fn a_refused_charge_names_the_largest_tensors_and_holds_nothing() {
        let mut b = Budget::new(1000);
        b.charge(|| "w1".into(), "w1", 300).unwrap();
        b.charge(|| "w2".into(), "w2", 500).unwrap();
        let e = b.charge(|| "node `big`".into(), "big", 400).unwrap_err();
        assert_eq!(e.needed, 1200);
        assert_eq!(e.limit, 1000);
        let names: Vec<&str> = e.largest.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w2", "big", "w1"]);
        assert_eq!(b.held(), 800, "a refused charge holds nothing");
        let msg = e.to_string();
        assert!(msg.contains("node `big`") && msg.contains("--max-memory") && msg.contains("`w2` 500 B"), "{msg}");
    }

    #[test]
    fn the_host_budget_is_a_fraction_of_what_the_host_reports() {
        let budget = host_memory_budget();
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let total = text
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l["MemTotal:".len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024);
        match total {
            Some(total) => assert!(budget > 0 && budget < total, "budget {budget} of total {total}"),
            None => assert_eq!(budget, FALLBACK_HOST_BUDGET),
        }
    }

    #[test]
    fn tensor_bytes_saturate() {
        assert_eq!(tensor_bytes(&[2, 3], 4), 24);
        assert_eq!(tensor_bytes(&[], 8), 8);
        assert_eq!(tensor_bytes(&[usize::MAX, usize::MAX], 4), u64::MAX);
    }
}
