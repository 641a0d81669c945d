//! Per-kernel resource usage from `ptxas -v`.
//!
//! NVRTC's PTX says nothing about registers or spills; those are decided by
//! ptxas when the driver (or we) assemble it for a real architecture. The
//! predictor and the packer's occupancy model need them, so where a ptxas
//! binary is installed we run `ptxas -arch=sm_XX -v` on the PTX and parse its
//! report. ptxas is optional: callers get `None` when it is absent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::compiler::Arch;
use crate::toolkit::CudaSearch;

/// What ptxas reports for one entry function.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ResourceReport {
    pub kernel: String,
    /// The real architecture assembled for (`sm_90`).
    pub arch: String,
    pub registers: u32,
    pub spill_stores_bytes: u64,
    pub spill_loads_bytes: u64,
    /// Static shared memory per block.
    pub shared_bytes: u64,
    /// Per-thread stack frame.
    pub stack_bytes: u64,
    /// Constant bank 0 (kernel parameters and compiler constants).
    pub constant_bytes: u64,
    /// Named barriers used, where ptxas reports them.
    pub barriers: Option<u32>,
}

/// Why running ptxas failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PtxasError {
    #[error("could not run ptxas at {path}: {source}")]
    Run {
        path: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("could not run ptxas at {path}: writing {input}: {source}")]
    Input {
        path: String,
        input: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("ptxas failed for kernel `{kernel}` (exit status {status}):\n{output}")]
    Failed { kernel: String, status: String, output: String },
    #[error("ptxas output has no report for kernel `{kernel}`:\n{output}")]
    NoReport { kernel: String, output: String },
}

/// Parses the `-v` output of ptxas into one report per entry function, in order.
pub fn parse_ptxas_output(text: &str) -> Vec<ResourceReport> {
    let mut reports: Vec<ResourceReport> = Vec::new();
    // Which report "Function properties" and "Used" lines belong to.
    let mut current: Option<usize> = None;
    for line in text.lines() {
        let line = line.trim();
        let info = line.strip_prefix("ptxas info").map(|s| s.trim_start().trim_start_matches(':').trim());
        if let Some(rest) = info.and_then(|i| i.strip_prefix("Compiling entry function")) {
            let mut quoted = rest.split('\'').skip(1).step_by(2);
            let kernel = quoted.next().unwrap_or_default().to_string();
            let arch = quoted.next().unwrap_or_default().to_string();
            reports.push(ResourceReport { kernel, arch, ..Default::default() });
            current = Some(reports.len() - 1);
        } else if let Some(name) = info.and_then(|i| i.strip_prefix("Function properties for")) {
            // Properties of device functions (not entries) are skipped.
            current = reports.iter().rposition(|r| r.kernel == name.trim());
        } else if let Some(used) = info.and_then(|i| i.strip_prefix("Used")) {
            let Some(r) = current.map(|i| &mut reports[i]) else { continue };
            for item in used.split(',') {
                let item = item.trim();
                let mut words = item.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else { continue };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "registers" => r.registers = n as u32,
                    "barriers" => r.barriers = Some(n as u32),
                    "bytes" => match words.next() {
                        Some("smem") => r.shared_bytes = n,
                        Some(c) if c.starts_with("cmem[0]") => r.constant_bytes = n,
                        _ => {}
                    },
                    _ => {}
                }
            }
            // ptxas writes "used 0 barriers" in lower case after the first item.
            if let Some(b) = used.split(',').find_map(|i| i.trim().strip_prefix("used ")) {
                if let Some(n) = b.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    r.barriers = Some(n);
                }
            }
        } else if line.contains("bytes stack frame") {
            let Some(r) = current.map(|i| &mut reports[i]) else { continue };
            for item in line.split(',') {
                let words: Vec<&str> = item.split_whitespace().collect();
                let Some(n) = words.first().and_then(|n| n.parse::<u64>().ok()) else { continue };
                match &words[1..] {
                    ["bytes", "stack", "frame"] => r.stack_bytes = n,
                    ["bytes", "spill", "stores"] => r.spill_stores_bytes = n,
                    ["bytes", "spill", "loads"] => r.spill_loads_bytes = n,
                    _ => {}
                }
            }
        }
    }
    reports
}

/// The report for entry `kernel` in ptxas output `text`.
pub fn report_for(text: &str, kernel: &str) -> Result<ResourceReport, PtxasError> {
    parse_ptxas_output(text)
        .into_iter()
        .find(|r| r.kernel == kernel)
        .ok_or_else(|| PtxasError::NoReport { kernel: kernel.into(), output: text.to_string() })
}

/// A located ptxas executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ptxas {
    pub path: PathBuf,
}

impl Ptxas {
    /// Finds ptxas via `search` (`$WEFT_CUDA_HOME`, `$CUDA_HOME/bin`,
    /// `/usr/local/cuda/bin`, `.cuda/nvidia/cu13/bin`, then `PATH`).
    pub fn locate(search: &CudaSearch) -> Option<Ptxas> {
        search.find_ptxas().map(|path| Ptxas { path })
    }

    /// Assembles `ptx` for `arch` and returns the report for entry `kernel`.
    pub fn report(&self, ptx: &str, arch: Arch, kernel: &str) -> Result<ResourceReport, PtxasError> {
        let text = self.verbose_output(ptx, arch, kernel)?;
        report_for(&text, kernel)
    }

    /// Assembles `ptx` for `arch` with `-v` and returns ptxas's output text
    /// (what [`parse_ptxas_output`] reads; the compiler caches it on disk).
    pub fn verbose_output(&self, ptx: &str, arch: Arch, kernel: &str) -> Result<String, PtxasError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let stem = format!("weft-ptxas-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir();
        let input = dir.join(format!("{stem}.ptx"));
        let output = dir.join(format!("{stem}.cubin"));
        let path = || self.path.display().to_string();
        std::fs::write(&input, ptx).map_err(|e| PtxasError::Input {
            path: path(),
            input: input.display().to_string(),
            source: Arc::new(e),
        })?;
        let result = Command::new(&self.path)
            .arg(format!("-arch={}", arch.sm_name()))
            .arg("-v")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output();
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
        let out = result.map_err(|e| PtxasError::Run { path: path(), source: Arc::new(e) })?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(PtxasError::Failed { kernel: kernel.into(), status: out.status.to_string(), output: text });
        }
        Ok(text)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'reduce_sum' for 'sm_90'
ptxas info    : Function properties for reduce_sum
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 388 bytes cmem[0]
ptxas info    : Compile time = 1.234 ms
ptxas info    : Compiling entry function 'vector_add' for 'sm_90'
ptxas info    : Function properties for vector_add
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers, 380 bytes cmem[0]
";

    #[test]
    fn a_ptxas_that_cannot_start_keeps_the_io_error() {
        let ptxas = Ptxas { path: PathBuf::from("/nonexistent/weft/ptxas") };
        let err = ptxas.verbose_output("", Arch::SM_90, "k").unwrap_err();
        assert!(matches!(err, PtxasError::Run { .. }), "{err:?}");
        let source = std::error::Error::source(&err).expect("the io error is the source");
        // Shared (Arc) so the error stays Clone, as compile errors are.
        let io = source.downcast_ref::<Arc<std::io::Error>>().expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound, "{io}");
    }

    #[test]
    fn parses_captured_ptxas_output() {
        let r = parse_ptxas_output(CAPTURED);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            ResourceReport {
                kernel: "reduce_sum".into(),
                arch: "sm_90".into(),
                registers: 40,
                spill_stores_bytes: 4,
                spill_loads_bytes: 12,
                shared_bytes: 1024,
                stack_bytes: 8,
                constant_bytes: 388,
                barriers: Some(1),
            }
        );
        assert_eq!(r[1].kernel, "vector_add");
        assert_eq!(r[1].registers, 10);
        assert_eq!(r[1].shared_bytes, 0);
        assert_eq!(r[1].constant_bytes, 380);
        assert_eq!(r[1].barriers, Some(0));
    }

    #[test]
    fn ignores_unrelated_lines() {
        assert!(parse_ptxas_output("warning: nothing\n").is_empty());
    }
}
