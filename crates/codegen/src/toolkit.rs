//! Where the CUDA compiler pieces (libnvrtc, ptxas) live on this machine.
//!
//! weft needs no CUDA toolkit at build time; NVRTC is dlopened by cudarc at
//! run time and ptxas is run as a program. cudarc only looks where the dynamic
//! loader looks (`LD_LIBRARY_PATH`, ld.so.cache), which would make a plain
//! `cargo test` fail on machines where NVRTC came from PyPI. So this module
//! searches explicit roots, in order:
//!
//! 1. `$WEFT_CUDA_HOME` — a CUDA toolkit root (`lib64/`, `bin/`) or a
//!    `pip install --target` folder (`nvidia/cu13/lib`, `nvidia/cu13/bin`);
//! 2. `$CUDA_HOME`, then `$CUDA_PATH`;
//! 3. `/usr/local/cuda`;
//! 4. the workspace's `.cuda/` folder, filled by `scripts/setup-cuda`;
//!
//! and then, for [`CudaSearch::from_env`] only, the system (the loader's
//! default search for libnvrtc, `PATH` for ptxas). A search built from
//! explicit roots ([`CudaSearch::with_roots`]) never falls back to the system,
//! so tests can point it at an empty folder and see `NoNvrtc` even when
//! another test in the same process has already loaded NVRTC.

use std::path::{Path, PathBuf};

/// The workspace's project-local CUDA folder (git-ignored), located at compile time.
pub const WORKSPACE_CUDA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cuda");

/// File names of libnvrtc tried in each library folder, preferred first.
/// cudarc is built against CUDA 13, whose soname is `libnvrtc.so.13`.
const NVRTC_NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so"];

/// An ordered list of places to look for CUDA compiler pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaSearch {
    roots: Vec<PathBuf>,
    system: bool,
}

impl CudaSearch {
    /// The standard search: environment variables, `/usr/local/cuda`, the
    /// workspace `.cuda/`, then the system.
    pub fn from_env() -> CudaSearch {
        let mut roots = Vec::new();
        for var in ["WEFT_CUDA_HOME", "CUDA_HOME", "CUDA_PATH"] {
            if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                roots.push(PathBuf::from(v));
            }
        }
        roots.push(PathBuf::from("/usr/local/cuda"));
        let workspace = Path::new(WORKSPACE_CUDA_DIR);
        roots.push(workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf()));
        CudaSearch { roots, system: true }
    }

    /// Only these roots; no system fallback.
    pub fn with_roots(roots: impl IntoIterator<Item = PathBuf>) -> CudaSearch {
        CudaSearch { roots: roots.into_iter().collect(), system: false }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether the system's default locations are searched after the roots.
    pub fn uses_system(&self) -> bool {
        self.system
    }

    fn lib_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for r in &self.roots {
            for sub in ["lib64", "lib", "nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "targets/x86_64-linux/lib", ""] {
                dirs.push(if sub.is_empty() { r.clone() } else { r.join(sub) });
            }
        }
        dirs
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for r in &self.roots {
            for sub in ["bin", "nvidia/cu13/bin", "nvidia/cuda_nvcc/bin", ""] {
                dirs.push(if sub.is_empty() { r.clone() } else { r.join(sub) });
            }
        }
        if self.system {
            if let Some(path) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&path));
            }
        }
        dirs
    }

    /// Every path where libnvrtc is looked for, in order (for messages).
    pub fn nvrtc_candidates(&self) -> Vec<PathBuf> {
        self.lib_dirs().iter().flat_map(|d| NVRTC_NAMES.iter().map(move |n| d.join(n))).collect()
    }

    /// The first libnvrtc file that exists under the roots.
    pub fn find_nvrtc(&self) -> Option<PathBuf> {
        self.nvrtc_candidates().into_iter().find(|p| p.is_file())
    }

    /// The first `ptxas` executable under the roots (and on `PATH` for the
    /// standard search).
    pub fn find_ptxas(&self) -> Option<PathBuf> {
        self.bin_dirs().into_iter().map(|d| d.join("ptxas")).find(|p| is_executable(p))
    }
}

impl Default for CudaSearch {
    fn default() -> Self {
        CudaSearch::from_env()
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_roots_do_not_fall_back_to_the_system() {
        let empty = std::env::temp_dir().join(format!("weft-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let s = CudaSearch::with_roots([empty.clone()]);
        assert!(!s.uses_system());
        assert_eq!(s.find_nvrtc(), None);
        assert_eq!(s.find_ptxas(), None);
        assert!(s.nvrtc_candidates().iter().all(|p| p.starts_with(&empty)));
    }

    #[test]
    fn pip_layout_is_searched() {
        let s = CudaSearch::with_roots([PathBuf::from("/opt/x")]);
        assert!(s.nvrtc_candidates().contains(&PathBuf::from("/opt/x/nvidia/cu13/lib/libnvrtc.so.13")));
        assert!(s.nvrtc_candidates().contains(&PathBuf::from("/opt/x/lib64/libnvrtc.so.13")));
    }
}
