//! Loading NVRTC without panicking, and the one raw compile call.
//!
//! cudarc dlopens `libnvrtc` by soname on first use and panics if it is not
//! there. weft instead (1) preloads the library by absolute path from a
//! [`CudaSearch`] with libloading and keeps it loaded for the life of the
//! process, so glibc satisfies cudarc's later dlopen of the same soname
//! without `LD_LIBRARY_PATH`; (2) asks cudarc's `is_culib_present()` before
//! any NVRTC call. libnvrtc itself dlopens `libnvrtc-builtins` at compile
//! time; that library is preloaded from the same folder for the same reason.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::compiler::CompileError;
use crate::toolkit::CudaSearch;

/// Libraries preloaded by absolute path; never unloaded (cudarc keeps
/// function pointers into them for the life of the process).
static PRELOADED: Mutex<Vec<(PathBuf, libloading::Library)>> = Mutex::new(Vec::new());

/// The NVRTC this process uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvrtcInfo {
    /// `(major, minor)` as reported by `nvrtcVersion`.
    pub version: (i32, i32),
    /// The file preloaded, or `None` when the system loader found it.
    pub library: Option<PathBuf>,
}

fn preload(path: &Path) -> Result<(), String> {
    let mut loaded = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    if loaded.iter().any(|(p, _)| p == path) {
        return Ok(());
    }
    // SAFETY: loading NVRTC runs its initialisers, which have no
    // preconditions; the handle is kept forever so no symbol dangles.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
    loaded.push((path.to_path_buf(), lib));
    Ok(())
}

/// Preloads libnvrtc-builtins beside `nvrtc` if present (best effort: an
/// NVRTC that finds it on its own still works without it).
fn preload_builtins(nvrtc: &Path) {
    let Some(dir) = nvrtc.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so") && !n.contains(".alt."))
        })
        .collect();
    names.sort();
    if let Some(p) = names.last() {
        let _ = preload(p);
    }
}

fn hint() -> String {
    "run the project's setup script (`scripts/setup-cuda`, which pip-installs NVRTC into the workspace's .cuda/ \
     folder) or set WEFT_CUDA_HOME to a CUDA toolkit root or a `pip install --target` folder containing \
     nvidia/cu13/lib/libnvrtc.so.13"
        .to_string()
}

/// Makes NVRTC loadable and returns its version, or `CompileError::NoNvrtc`.
pub fn load(search: &CudaSearch) -> Result<NvrtcInfo, CompileError> {
    let mut problems = Vec::new();
    let library = match search.find_nvrtc() {
        Some(path) => match preload(&path) {
            Ok(()) => {
                preload_builtins(&path);
                Some(path)
            }
            Err(e) => {
                problems.push(e);
                None
            }
        },
        None => None,
    };
    if library.is_none() && !search.uses_system() {
        return Err(no_nvrtc(search, problems));
    }
    // SAFETY: is_culib_present only attempts dlopen of candidate names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        problems.push("the dynamic loader found no libnvrtc (LD_LIBRARY_PATH, ld.so.cache)".to_string());
        return Err(no_nvrtc(search, problems));
    }
    Ok(NvrtcInfo { version: version_raw()?, library })
}

fn no_nvrtc(search: &CudaSearch, problems: Vec<String>) -> CompileError {
    let mut searched: Vec<String> = search.nvrtc_candidates().iter().map(|p| p.display().to_string()).collect();
    if search.uses_system() {
        searched.push("the system library path".to_string());
    }
    searched.extend(problems);
    CompileError::NoNvrtc { searched, hint: hint() }
}

fn version_raw() -> Result<(i32, i32), CompileError> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked by the caller); both pointers are valid.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CompileError::NvrtcApi { kernel: String::new(), message: format!("nvrtcVersion failed: {r:?}") });
    }
    Ok((major, minor))
}

/// The version of the NVRTC found by the standard search.
pub fn nvrtc_version() -> Result<(i32, i32), CompileError> {
    load(&CudaSearch::from_env()).map(|i| i.version)
}

/// Writes the source NVRTC refused (and its log, beside it as `.log`) to
/// `weft-nvrtc/` in the temp folder, named by the kernel and a hash of the
/// source, so an error message can name the file instead of holding the
/// whole source. `None` when the file cannot be written.
fn write_failed_source(kernel: &str, code: &str, log: &str) -> Option<std::path::PathBuf> {
    use sha2::{Digest, Sha256};
    let dir = std::env::temp_dir().join("weft-nvrtc");
    std::fs::create_dir_all(&dir).ok()?;
    let hash = Sha256::digest(code.as_bytes());
    let short: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let stem: String =
        kernel.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).take(64).collect();
    let path = dir.join(format!("{stem}-{short}.cu"));
    std::fs::write(&path, code).ok()?;
    let _ = std::fs::write(path.with_extension("log"), log);
    Some(path)
}

/// The stack NVRTC runs on (address space; pages are touched only as used).
const NVRTC_STACK_BYTES: usize = 256 << 20;

/// Compiles `code` to PTX text. NVRTC must already be loaded ([`load`]).
pub(crate) fn compile_raw(kernel: &str, code: &str, options: &[String]) -> Result<String, CompileError> {
    if code.contains('\0') {
        return Err(CompileError::NvrtcApi { kernel: kernel.into(), message: "source contains a NUL byte".into() });
    }
    let opts = cudarc::nvrtc::CompileOptions {
        options: options.to_vec(),
        name: Some(format!("{}.cu", kernel.replace('\0', "_"))),
        ..Default::default()
    };
    // NVRTC recurses over the source's structure: a long body (thousands
    // of statements) overflows the 2 MiB stack of a spawned thread, which
    // aborts the process. It runs on a thread with room to spare.
    let compiled = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("nvrtc".into())
            .stack_size(NVRTC_STACK_BYTES)
            .spawn_scoped(scope, || cudarc::nvrtc::compile_ptx_with_opts(code, opts))
            .map(|t| t.join())
    });
    let compiled = match compiled {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            let message = format!("could not start NVRTC's thread: {e}");
            return Err(CompileError::NvrtcApi { kernel: kernel.into(), message });
        }
    };
    match compiled {
        Ok(ptx) => Ok(ptx.to_src().trim_end_matches('\0').to_string()),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => {
            let log = log.to_string_lossy().into_owned();
            let source_path = write_failed_source(kernel, code, &log);
            Err(CompileError::Nvrtc { kernel: kernel.into(), log, source: code.into(), source_path })
        }
        Err(error) => Err(CompileError::NvrtcCall { kernel: kernel.into(), error }),
    }
}
