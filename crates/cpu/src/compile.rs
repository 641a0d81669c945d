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
//! The header is compiled once per flag set into a precompiled header
//! (`g++ -x c++-header`, cached in `pch/` beside the libraries under a hash
//! of the header, the flags and the compiler's version); a translation unit
//! then starts with `#include "weft_cpu.h"`, which the compiler answers
//! from the precompiled header instead of parsing the header and the C++
//! library headers it includes again (docs/executors.md has the times).
//! A compiler that cannot use it parses the header beside it: the same
//! library, only slower.
//!
//! Fibers: `ucontext` where weft_cpu.h knows it works, else OS threads;
//! [`Fibers::Threads`] (or `WEFT_CPU_FIBERS=threads`) asks for threads
//! everywhere, so the portable form is tested on every host.
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
    #[error(
        "WEFT_CPU_FIBERS is `{value}`; it names how a block's threads run: `contexts` (ucontext fibers, the \
         default where available) or `threads` (one OS thread per GPU thread)"
    )]
    Fibers { value: String },
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

/// How the threads of a block run (see `weft_cpu.h`).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Fibers {
    /// `ucontext` fibers where the header knows they work (Linux on x86-64
    /// and aarch64 with glibc), OS threads elsewhere.
    Contexts,
    /// One OS thread per GPU thread, handed the block in the schedule's
    /// order: the portable form, on any host.
    Threads,
}

impl Fibers {
    /// `WEFT_CPU_FIBERS`: `contexts` (or unset, or empty) or `threads`.
    pub fn from_env() -> Result<Fibers, HostCompileError> {
        match std::env::var("WEFT_CPU_FIBERS").as_deref() {
            Err(_) | Ok("") | Ok("contexts") => Ok(Fibers::Contexts),
            Ok("threads") => Ok(Fibers::Threads),
            Ok(other) => Err(HostCompileError::Fibers { value: other.to_string() }),
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Fibers::Contexts => &[],
            Fibers::Threads => &["-DWEFT_CPU_THREADS=1", "-pthread"],
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
    /// From `WEFT_CPU_FIBERS` unless set with [`HostCompiler::with_fibers`];
    /// a bad value fails every compilation.
    fibers: Result<Fibers, String>,
    precompiled_prelude: bool,
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
        let fibers = Fibers::from_env().map_err(|e| match e {
            HostCompileError::Fibers { value } => value,
            other => other.to_string(),
        });
        HostCompiler { compiler, flags, dir, version: OnceLock::new(), fibers, precompiled_prelude: true }
    }

    /// Runs a block's threads as `fibers`, whatever `WEFT_CPU_FIBERS` says.
    pub fn with_fibers(mut self, fibers: Fibers) -> HostCompiler {
        self.fibers = Ok(fibers);
        self
    }

    /// Whether translation units use the precompiled header (the default);
    /// off, every unit parses the header itself (for measuring the gain).
    pub fn with_precompiled_prelude(mut self, on: bool) -> HostCompiler {
        self.precompiled_prelude = on;
        self
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

    /// The folder holding `weft_cpu.h` and its precompiled form for
    /// `flags` (compiled once, or found in the cache).
    fn prelude(&self, flags: &[&str], version: &str) -> Result<PathBuf, HostCompileError> {
        let mut h = Sha256::new();
        h.update(b"weft-cpu-pch-v1\0");
        h.update(HEADER.as_bytes());
        for f in flags {
            h.update(b"\x1f");
            h.update(f.as_bytes());
        }
        h.update(b"\0");
        h.update(version.as_bytes());
        let key = hex(&h.finalize());
        let root = self.dir.join("pch");
        let dir = root.join(&key);
        if dir.join("weft_cpu.h.gch").is_file() {
            return Ok(dir);
        }
        let io = |source| HostCompileError::Io { dir: root.clone(), source };
        // Built in a folder of its own, then renamed: a concurrent process
        // sees the finished pair or none.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = root.join(format!(".{key}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&tmp).map_err(io)?;
        let header = tmp.join("weft_cpu.h");
        std::fs::write(&header, HEADER).map_err(io)?;
        let out = Command::new(&self.compiler)
            .args(flags.iter().filter(|f| **f != "-shared"))
            .args(["-x", "c++-header", "-o"])
            .arg(tmp.join("weft_cpu.h.gch"))
            .arg(&header)
            .output()
            .map_err(|source| HostCompileError::Missing { compiler: self.compiler.clone(), source })?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            let mut log = String::from_utf8_lossy(&out.stderr).to_string();
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            return Err(HostCompileError::Rejected { kernel: "weft_cpu.h".into(), source_path: header, log });
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process finished first; its pair is the same.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("weft_cpu.h.gch").is_file() {
                return Err(io(std::io::Error::other(format!("cannot publish {}", dir.display()))));
            }
        }
        Ok(dir)
    }

    /// Every flag an `artifact` is compiled with.
    fn flags_for(&self, artifact: Artifact) -> Result<Vec<&str>, HostCompileError> {
        let fibers = self.fibers.clone().map_err(|value| HostCompileError::Fibers { value })?;
        Ok(self
            .flags
            .iter()
            .map(String::as_str)
            .chain(fibers.flags().iter().copied())
            .chain(artifact.flags().iter().copied())
            .collect())
    }

    /// The compiler's name and version, for reports.
    pub fn describe(&self) -> Result<String, HostCompileError> {
        Ok(format!("`{}`: {}", self.compiler, self.version()?))
    }

    /// Compiles the precompiled header `artifact`s use (or finds it in the
    /// cache); [`HostCompiler::compile`] does this itself when needed.
    pub fn precompile_prelude(&self, artifact: Artifact) -> Result<PathBuf, HostCompileError> {
        let version = self.version()?;
        self.prelude(&self.flags_for(artifact)?, &version)
    }

    /// The `artifact` for `source` (compiled, or found in the cache).
    /// `kernel` names the kernel(s) in messages.
    pub fn compile(&self, source: &CudaSource, kernel: &str, artifact: Artifact) -> Result<PathBuf, HostCompileError> {
        let version = self.version()?;
        let unit = Self::translation_unit(source);
        let flags = self.flags_for(artifact)?;
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
        let mut include = Vec::new();
        if self.precompiled_prelude {
            let prelude = self.prelude(&flags, &version)?;
            let unit = format!("#include \"weft_cpu.h\"\n#line 1 \"{}.cu\"\n{}", source.name, source.code);
            write_atomic(&src, &unit).map_err(io)?;
            include.push("-I".into());
            include.push(prelude.into_os_string());
        } else {
            write_atomic(&src, &unit).map_err(io)?;
        }
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
            .args(&include)
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
