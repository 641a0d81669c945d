//! The host C++ compiler: emitted CUDA C + `weft_cpu.h` → a shared library.
//!
//! The translation unit is the header (committed beside this file, so the
//! host semantics are reviewed text, not generated) followed by the emitted
//! source, unchanged, under a `#line` directive so compiler messages and
//! sanitizer reports point at lines of the CUDA C. Libraries are cached on
//! disk by a hash of everything that decides their bytes — header, source,
//! flags and the compiler's own version line — in a `cpu/` folder of the
//! PTX cache's folder, written with the same atomic rename
//! ([`weft_codegen::compiler::write_atomic`]); identical sources compile
//! once, across processes.
//!
//! Flags: `-ffp-contract=off` (the emitted code relies on one rounding
//! per operation, as NVRTC's `_rn` intrinsics give), `-fno-strict-aliasing`,
//! `-fwrapv` (belt and braces: emitted integer arithmetic already wraps in
//! unsigned types).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use weft_codegen::compiler::{default_cache_dir, hex, write_atomic};
use weft_codegen::CudaSource;

/// The CUDA-on-CPU header every translation unit starts with.
pub const HEADER: &str = include_str!("weft_cpu.h");

/// Why host compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostCompileError {
    #[error("cannot run the host C++ compiler `{compiler}`: {source}; install g++ (or clang++) or name one in $CXX")]
    Missing {
        compiler: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the host C++ compiler rejected the emitted code of `{kernel}` (kept in {}):\n{log}", source_path.display())]
    Rejected { kernel: String, source_path: PathBuf, log: String },
    #[error("cannot write the host compiler's files in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a compilation produces.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Artifact {
    /// A shared library the executor loads (`weft_cpu_run_block`).
    Library,
    /// The checking mode's runner: an executable under AddressSanitizer and
    /// UndefinedBehaviorSanitizer, which must own their process.
    SanitizedRunner,
}

impl Artifact {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Artifact::Library => &["-O2", "-fPIC", "-shared"],
            Artifact::SanitizedRunner => &[
                "-O1",
                "-DWEFT_CPU_MAIN",
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
            ],
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Artifact::Library => "so",
            Artifact::SanitizedRunner => "run",
        }
    }
}

/// A host C++ compiler with a disk cache of shared libraries.
#[derive(Debug)]
pub struct HostCompiler {
    compiler: String,
    flags: Vec<String>,
    dir: PathBuf,
    version: OnceLock<Result<String, String>>,
}

impl HostCompiler {
    /// `$CXX` (else `g++`), caching in `dir` (else `cpu/` in the PTX cache's
    /// folder, else a folder under the system's temporary folder).
    pub fn new(dir: Option<PathBuf>) -> HostCompiler {
        let compiler = std::env::var("CXX").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "g++".to_string());
        let dir = dir
            .or_else(|| default_cache_dir().map(|d| d.join("cpu")))
            .unwrap_or_else(|| std::env::temp_dir().join("weft-cpu-cache"));
        let flags = ["-std=c++17", "-g", "-ffp-contract=off", "-fno-strict-aliasing", "-fwrapv", "-w"]
            .map(String::from)
            .to_vec();
        HostCompiler { compiler, flags, dir, version: OnceLock::new() }
    }

    /// Adds compiler flags (sanitizers, for the checking mode).
    pub fn with_flags(mut self, flags: impl IntoIterator<Item = String>) -> HostCompiler {
        self.flags.extend(flags);
        self
    }

    /// The folder libraries are cached in.
    pub fn cache_dir(&self) -> &Path {
        &self.dir
    }

    /// The compiler's first `--version` line: part of every cache key.
    fn version(&self) -> Result<String, HostCompileError> {
        let v = self.version.get_or_init(|| {
            Command::new(&self.compiler)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string())
                .map_err(|e| e.to_string())
        });
        v.clone().map_err(|e| HostCompileError::Missing {
            compiler: self.compiler.clone(),
            source: std::io::Error::other(e),
        })
    }

    /// The translation unit compiled for `source`.
    pub fn translation_unit(source: &CudaSource) -> String {
        format!("{HEADER}\n#line 1 \"{}.cu\"\n{}", source.name, source.code)
    }

    /// The `artifact` for `source` (compiled, or found in the cache).
    /// `kernel` names the kernel(s) in messages.
    pub fn compile(&self, source: &CudaSource, kernel: &str, artifact: Artifact) -> Result<PathBuf, HostCompileError> {
        let version = self.version()?;
        let unit = Self::translation_unit(source);
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).chain(artifact.flags().iter().copied()).collect();
        let mut h = Sha256::new();
        h.update(b"weft-cpu-v1\0");
        h.update(unit.as_bytes());
        for f in &flags {
            h.update(b"\x1f");
            h.update(f.as_bytes());
        }
        h.update(b"\0");
        h.update(version.as_bytes());
        let key = hex(&h.finalize());
        let lib = self.dir.join(format!("{key}.{}", artifact.extension()));
        if lib.is_file() {
            return Ok(lib);
        }
        let io = |source| HostCompileError::Io { dir: self.dir.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let src = self.dir.join(format!("{key}.cpp"));
        write_atomic(&src, &unit).map_err(io)?;
        // Compile beside the entry, then rename: a concurrent process sees
        // the finished library or none.
        // Unique per compilation: threads of one process may build the same key.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{key}.{}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            artifact.extension()
        ));
        let out = Command::new(&self.compiler)
            .args(&flags)
            .arg("-o")
            .arg(&tmp)
            .arg(&src)
            .output()
            .map_err(|source| HostCompileError::Missing { compiler: self.compiler.clone(), source })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            let mut log = String::from_utf8_lossy(&out.stderr).to_string();
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            return Err(HostCompileError::Rejected { kernel: kernel.to_string(), source_path: src, log });
        }
        std::fs::rename(&tmp, &lib).map_err(io)?;
        Ok(lib)
    }
}

/// Whether the host compiler [`HostCompiler::new`] picks runs; prints why a
/// test skips when it does not, and panics under `CI=true`, where it is
/// required.
pub fn require_host_compiler_or_skip(test: &str) -> bool {
    match HostCompiler::new(None).version() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: {e}, and CI=true requires it");
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}
