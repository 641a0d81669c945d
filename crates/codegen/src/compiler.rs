//! CUDA C → PTX through NVRTC, behind a two-level cache.
//!
//! A [`Compiler`] targets one GPU architecture. It keys compiled PTX by a
//! SHA-256 of (source, architecture, options, NVRTC version), so identical
//! code never reaches NVRTC twice: first in memory, then on disk (see
//! [`default_cache_dir`]) so later processes skip NVRTC too. Disk entries
//! carry a checksum; a corrupt or truncated entry is recompiled and
//! rewritten, and writes are atomic (temp file + rename) so concurrent
//! processes never read half an entry. NVRTC invocations and cache hits are
//! counted per compiler ([`CompileStats`]) so tests can prove a hit did not
//! compile.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::emit::CudaSource;
use crate::nvrtc::{self, NvrtcInfo};
use crate::ptxas::{report_for, Ptxas, PtxasError, ResourceReport};
use crate::toolkit::CudaSearch;

/// A GPU architecture as a compute capability (`sm_90` is 9.0).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Arch {
    pub major: u32,
    pub minor: u32,
}

impl Arch {
    /// Hopper (H100/H200), the default target.
    pub const SM_90: Arch = Arch { major: 9, minor: 0 };

    pub fn new(major: u32, minor: u32) -> Arch {
        Arch { major, minor }
    }

    /// The virtual architecture NVRTC generates PTX for (`compute_90`).
    pub fn compute_name(self) -> String {
        format!("compute_{}{}", self.major, self.minor)
    }

    /// The real architecture ptxas assembles for (`sm_90`).
    pub fn sm_name(self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl Default for Arch {
    fn default() -> Self {
        Arch::SM_90
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sm_name())
    }
}

/// Why compilation failed.
#[derive(Clone, Debug)]
pub enum CompileError {
    /// NVRTC could not be found or loaded.
    NoNvrtc { searched: Vec<String>, hint: String },
    /// NVRTC rejected the source; the log and the whole source are kept,
    /// and the source is written to `source_path` (the message names the
    /// file rather than holding the source: a kernel of thousands of
    /// arguments is megabytes of CUDA C).
    Nvrtc { kernel: String, log: String, source: String, source_path: Option<PathBuf> },
    /// An NVRTC API call failed other than by a compile error.
    NvrtcApi { kernel: String, message: String },
    /// cudarc's NVRTC wrapper failed other than by a compile error (creating
    /// the program, reading the PTX); its error is the source.
    NvrtcCall { kernel: String, error: cudarc::nvrtc::CompileError },
    /// ptxas ran and failed.
    Ptxas(PtxasError),
}

/// Lines of an NVRTC log a [`CompileError::Nvrtc`] message shows.
pub const LOG_LINES_SHOWN: usize = 20;

// Written by hand: thiserror would treat the `source` field (the CUDA C
// text) as the error's cause.
impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::NoNvrtc { searched, hint } => {
                write!(f, "NVRTC (libnvrtc) not found; searched: {}. To fix: {hint}", searched.join(", "))
            }
            CompileError::Nvrtc { kernel, log, source, source_path } => {
                let where_ = match source_path {
                    Some(p) => format!("source ({} lines) written to {}", source.lines().count(), p.display()),
                    None => {
                        format!("source ({} lines) could not be written to the temp folder", source.lines().count())
                    }
                };
                // The log too can be long: its first lines, the rest beside the source.
                let lines: Vec<&str> = log.lines().collect();
                let shown = lines[..lines.len().min(LOG_LINES_SHOWN)].join("\n");
                let more = if lines.len() > LOG_LINES_SHOWN {
                    format!("\n({} more lines of log beside the source, as .log)", lines.len() - LOG_LINES_SHOWN)
                } else {
                    String::new()
                };
                write!(f, "NVRTC failed to compile kernel `{kernel}`; {where_}:\n{shown}{more}")
            }
            CompileError::NvrtcApi { kernel, message } => write!(f, "NVRTC error for kernel `{kernel}`: {message}"),
            CompileError::NvrtcCall { kernel, error } => write!(f, "NVRTC error for kernel `{kernel}`: {error}"),
            CompileError::Ptxas(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CompileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CompileError::Ptxas(e) => Some(e),
            CompileError::NvrtcCall { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<PtxasError> for CompileError {
    fn from(e: PtxasError) -> Self {
        CompileError::Ptxas(e)
    }
}

/// PTX for one kernel, and what ptxas said about it once asked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CompiledPtx {
    /// The `extern "C"` entry point.
    pub name: String,
    pub ptx: String,
    pub arch: Arch,
    /// The cache key (hex SHA-256).
    pub key: String,
    /// Set by [`Compiler::resource_report`] (or [`Compiler::compile_measured`]);
    /// the compiler's memory cache hands out the same `Arc`, so every later
    /// holder sees it.
    report: OnceLock<ResourceReport>,
}

impl CompiledPtx {
    /// ptxas's report for this PTX, once the compiler has run (or read) it;
    /// `None` before that or where no ptxas is installed.
    pub fn report(&self) -> Option<&ResourceReport> {
        self.report.get()
    }
}

/// Counters of one [`Compiler`].
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct CompileStats {
    /// Calls into NVRTC (misses in both caches).
    pub nvrtc_invocations: u64,
    pub memory_hits: u64,
    pub disk_hits: u64,
    /// Disk entries found damaged and recompiled.
    pub disk_corrupt: u64,
    /// Disk writes that failed (the result is still returned).
    pub disk_write_errors: u64,
}

#[derive(Default)]
struct Counters {
    nvrtc_invocations: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_corrupt: AtomicU64,
    disk_write_errors: AtomicU64,
}

/// The on-disk cache folder: `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft/ptx`,
/// else `$HOME/.cache/weft/ptx`; `None` when none of them is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("WEFT_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("weft/ptx")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/weft/ptx")))
}

/// Compiles CUDA C to PTX for one architecture, with caching.
pub struct Compiler {
    arch: Arch,
    options: Vec<String>,
    search: CudaSearch,
    cache_dir: Option<PathBuf>,
    nvrtc: OnceLock<Result<NvrtcInfo, CompileError>>,
    memory: Mutex<HashMap<String, Arc<CompiledPtx>>>,
    /// ptxas reports by PTX cache key.
    reports: Mutex<HashMap<String, ResourceReport>>,
    counters: Counters,
}

impl fmt::Debug for Compiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiler")
            .field("arch", &self.arch)
            .field("options", &self.options)
            .field("cache_dir", &self.cache_dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Compiler {
    /// A compiler for `arch` with the standard NVRTC search and the default
    /// disk cache folder.
    pub fn new(arch: Arch) -> Compiler {
        Compiler {
            arch,
            options: vec!["--std=c++17".to_string()],
            search: CudaSearch::from_env(),
            cache_dir: default_cache_dir(),
            nvrtc: OnceLock::new(),
            memory: Mutex::new(HashMap::new()),
            reports: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// A compiler for a device of compute capability `major.minor`.
    pub fn for_compute_capability(major: u32, minor: u32) -> Compiler {
        Compiler::new(Arch::new(major, minor))
    }

    /// Searches only `search` for NVRTC and ptxas.
    pub fn with_search(mut self, search: CudaSearch) -> Compiler {
        self.search = search;
        self.nvrtc = OnceLock::new();
        self
    }

    /// Uses `dir` for the disk cache (`None` disables it).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Compiler {
        self.cache_dir = dir;
        self
    }

    /// Appends NVRTC options (after `--gpu-architecture` and `--std=c++17`).
    pub fn with_options(mut self, options: impl IntoIterator<Item = String>) -> Compiler {
        self.options.extend(options);
        self
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    pub fn search(&self) -> &CudaSearch {
        &self.search
    }

    /// Every option passed to NVRTC.
    pub fn nvrtc_options(&self) -> Vec<String> {
        let mut o = vec![format!("--gpu-architecture={}", self.arch.compute_name())];
        o.extend(self.options.iter().cloned());
        o
    }

    /// Loads NVRTC (once) and reports which one.
    pub fn nvrtc(&self) -> Result<&NvrtcInfo, CompileError> {
        self.nvrtc.get_or_init(|| nvrtc::load(&self.search)).as_ref().map_err(Clone::clone)
    }

    pub fn stats(&self) -> CompileStats {
        let c = &self.counters;
        CompileStats {
            nvrtc_invocations: c.nvrtc_invocations.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            disk_corrupt: c.disk_corrupt.load(Ordering::Relaxed),
            disk_write_errors: c.disk_write_errors.load(Ordering::Relaxed),
        }
    }

    /// The cache key of `source` under this compiler's settings.
    pub fn cache_key(&self, source: &CudaSource) -> Result<String, CompileError> {
        let (major, minor) = self.nvrtc()?.version;
        let mut h = Sha256::new();
        h.update(b"weft-ptx-v1\0");
        h.update(source.name.as_bytes());
        h.update(b"\0");
        h.update(source.code.as_bytes());
        h.update(b"\0");
        h.update(self.arch.compute_name().as_bytes());
        for o in self.nvrtc_options() {
            h.update(b"\x1f");
            h.update(o.as_bytes());
        }
        h.update(format!("\0nvrtc {major}.{minor}").as_bytes());
        Ok(hex(&h.finalize()))
    }

    /// Compiles `source` to PTX, from the cache when possible.
    pub fn compile(&self, source: &CudaSource) -> Result<Arc<CompiledPtx>, CompileError> {
        let key = self.cache_key(source)?;
        if let Some(hit) = self.memory.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        let ptx = match self.read_disk(&key) {
            Some(ptx) => {
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                ptx
            }
            None => {
                self.counters.nvrtc_invocations.fetch_add(1, Ordering::Relaxed);
                let ptx = nvrtc::compile_raw(&source.name, &source.code, &self.nvrtc_options())?;
                self.write_disk(&key, &ptx);
                ptx
            }
        };
        let compiled = Arc::new(CompiledPtx {
            name: source.name.clone(),
            ptx,
            arch: self.arch,
            key: key.clone(),
            report: OnceLock::new(),
        });
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Compiles `source` like [`Compiler::compile`] and runs ptxas on the
    /// result where ptxas is installed, so [`CompiledPtx::report`] holds its
    /// registers, shared memory and spills.
    pub fn compile_measured(&self, source: &CudaSource) -> Result<Arc<CompiledPtx>, CompileError> {
        let compiled = self.compile(source)?;
        self.resource_report(&compiled)?;
        Ok(compiled)
    }

    /// Runs ptxas on `compiled` for this compiler's real architecture;
    /// `Ok(None)` when no ptxas is installed. Reports are cached beside the
    /// PTX (in memory and as `<key>.ptxas` on disk), so a second compile of
    /// the same model runs neither NVRTC nor ptxas, and kept on `compiled`
    /// ([`CompiledPtx::report`]).
    pub fn resource_report(&self, compiled: &CompiledPtx) -> Result<Option<ResourceReport>, CompileError> {
        if let Some(hit) = compiled.report() {
            return Ok(Some(hit.clone()));
        }
        if let Some(hit) = self.reports.lock().unwrap_or_else(|e| e.into_inner()).get(&compiled.key) {
            let _ = compiled.report.set(hit.clone());
            return Ok(Some(hit.clone()));
        }
        let disk = self.cache_dir.as_ref().map(|d| d.join(format!("{}.ptxas", compiled.key)));
        let cached = disk.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        let report = match cached.as_deref().map(|text| report_for(text, &compiled.name)) {
            Some(Ok(report)) => report,
            // Missing or unreadable entry: run ptxas and (re)write it.
            _ => {
                let Some(ptxas) = Ptxas::locate(&self.search) else { return Ok(None) };
                let text = ptxas.verbose_output(&compiled.ptx, self.arch, &compiled.name)?;
                let report = report_for(&text, &compiled.name)?;
                if let Some(path) = &disk {
                    if write_atomic(path, &text).is_err() {
                        self.counters.disk_write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                report
            }
        };
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).insert(compiled.key.clone(), report.clone());
        let _ = compiled.report.set(report.clone());
        Ok(Some(report))
    }

    fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(format!("{key}.ptx")))
    }

    fn read_disk(&self, key: &str) -> Option<String> {
        let path = self.entry_path(key)?;
        let text = std::fs::read_to_string(&path).ok()?;
        match decode_entry(key, &text) {
            Some(ptx) => Some(ptx.to_string()),
            None => {
                self.counters.disk_corrupt.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn write_disk(&self, key: &str, ptx: &str) {
        let Some(path) = self.entry_path(key) else { return };
        if write_atomic(&path, encode_entry(key, ptx)).is_err() {
            self.counters.disk_write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lower-case hex of `bytes`: how cache keys (this one's and the host
/// compiler's in weft-cpu) are spelled.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const ENTRY_MAGIC: &str = "// weft-ptx-cache v1";

/// A disk entry: a header line with the key and the PTX's SHA-256, then the PTX.
fn encode_entry(key: &str, ptx: &str) -> String {
    format!("{ENTRY_MAGIC} {key} {}\n{ptx}", hex(&Sha256::digest(ptx.as_bytes())))
}

fn decode_entry<'a>(key: &str, text: &'a str) -> Option<&'a str> {
    let (header, ptx) = text.split_once('\n')?;
    let mut parts = header.strip_prefix(ENTRY_MAGIC)?.split_whitespace();
    let (k, sum) = (parts.next()?, parts.next()?);
    (k == key && sum == hex(&Sha256::digest(ptx.as_bytes()))).then_some(ptx)
}

/// Writes a cache entry so that concurrent readers see the old file, the new
/// one or none, never a torn one: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| std::io::Error::other("cache entry has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::write(&tmp, contents.as_ref()).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// For NVRTC tests: a compiler for `arch` with no disk cache, or `None`
/// after printing `skipping <test>: <reason>` when NVRTC cannot be loaded.
/// Under `CI=true` missing NVRTC panics instead: CI must compile every kernel.
#[cfg(any(test, feature = "testing"))]
pub fn require_nvrtc_or_skip(test: &str, arch: Arch) -> Option<Compiler> {
    let c = Compiler::new(arch).with_cache_dir(None);
    match c.nvrtc() {
        Ok(_) => Some(c),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: NVRTC is required when CI=true: {e}");
            }
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let e = encode_entry("abc", ".version 8.0\n.target sm_90\n");
        assert_eq!(decode_entry("abc", &e), Some(".version 8.0\n.target sm_90\n"));
        assert_eq!(decode_entry("abd", &e), None, "wrong key");
        assert_eq!(decode_entry("abc", &e[..e.len() - 3]), None, "truncated");
        assert_eq!(decode_entry("abc", "garbage"), None);
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::SM_90.compute_name(), "compute_90");
        assert_eq!(Arch::new(8, 6).sm_name(), "sm_86");
        assert_eq!(Compiler::new(Arch::new(8, 0)).nvrtc_options()[0], "--gpu-architecture=compute_80");
    }
}
