//! The PTX cache (memory, disk, keys) and ptxas reports on real kernels.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{block_sum, compiler_or_skip, vector_add};
use weft_codegen::{emit_cuda, Arch, Compiler, CudaSearch};

fn temp_cache(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-cache-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn memory_miss_then_hit_compiles_once() {
    let Some(c) = compiler_or_skip("memory_miss_then_hit_compiles_once") else { return };
    let src = emit_cuda(&vector_add(100)).unwrap();
    let first = c.compile(&src).unwrap();
    let second = c.compile(&src).unwrap();
    assert_eq!(first, second);
    let s = c.stats();
    assert_eq!((s.nvrtc_invocations, s.memory_hits, s.disk_hits), (1, 1, 0));
}

#[test]
fn disk_hit_in_a_new_compiler_skips_nvrtc() {
    if compiler_or_skip("disk_hit_in_a_new_compiler_skips_nvrtc").is_none() {
        return;
    }
    let dir = temp_cache("disk");
    let src = emit_cuda(&block_sum()).unwrap();
    let a = Compiler::new(Arch::SM_90).with_cache_dir(Some(dir.clone()));
    let pa = a.compile(&src).unwrap();
    assert_eq!(a.stats().nvrtc_invocations, 1);
    assert!(dir.join(format!("{}.ptx", pa.key)).is_file());

    let b = Compiler::new(Arch::SM_90).with_cache_dir(Some(dir.clone()));
    let pb = b.compile(&src).unwrap();
    assert_eq!(pa.ptx, pb.ptx);
    let s = b.stats();
    assert_eq!((s.nvrtc_invocations, s.disk_hits), (0, 1));

    // A damaged entry is recompiled and rewritten.
    let entry = dir.join(format!("{}.ptx", pa.key));
    let text = std::fs::read_to_string(&entry).unwrap();
    std::fs::write(&entry, &text[..text.len() / 2]).unwrap();
    let c = Compiler::new(Arch::SM_90).with_cache_dir(Some(dir.clone()));
    assert_eq!(c.compile(&src).unwrap().ptx, pa.ptx);
    let s = c.stats();
    assert_eq!((s.nvrtc_invocations, s.disk_hits, s.disk_corrupt), (1, 0, 1));
    assert_eq!(std::fs::read_to_string(&entry).unwrap(), text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn different_arch_or_options_give_different_keys() {
    if compiler_or_skip("different_arch_or_options_give_different_keys").is_none() {
        return;
    }
    let src = emit_cuda(&vector_add(100)).unwrap();
    let k90 = Compiler::new(Arch::SM_90).with_cache_dir(None);
    let k80 = Compiler::new(Arch::new(8, 0)).with_cache_dir(None);
    let kopt = Compiler::new(Arch::SM_90).with_cache_dir(None).with_options(["-lineinfo".to_string()]);
    let keys = [k90.cache_key(&src).unwrap(), k80.cache_key(&src).unwrap(), kopt.cache_key(&src).unwrap()];
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_eq!(keys[0], k90.cache_key(&src.clone()).unwrap());
    let p80 = k80.compile(&src).unwrap();
    assert!(p80.ptx.contains(".target sm_80"));
}

#[test]
fn ptxas_reports_resources_of_a_real_kernel() {
    let Some(c) = compiler_or_skip("ptxas_reports_resources_of_a_real_kernel") else { return };
    if CudaSearch::from_env().find_ptxas().is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("ptxas is required when CI=true (scripts/setup-cuda installs it)");
        }
        eprintln!("skipping ptxas_reports_resources_of_a_real_kernel: no ptxas found");
        return;
    }
    let ptx = c.compile(&emit_cuda(&block_sum()).unwrap()).unwrap();
    assert_eq!(ptx.report(), None, "no report before ptxas ran");
    let r = c.resource_report(&ptx).unwrap().expect("ptxas was found");
    assert_eq!(ptx.report(), Some(&r), "the report is kept on the compiled PTX");
    // The memory cache hands out the same PTX, report included.
    let again = c.compile_measured(&emit_cuda(&block_sum()).unwrap()).unwrap();
    assert!(Arc::ptr_eq(&ptx, &again));
    assert_eq!(again.report(), Some(&r));
    assert_eq!(r.kernel, "block_sum");
    assert_eq!(r.arch, "sm_90");
    assert!(r.registers > 0 && r.registers <= 255, "{r:?}");
    assert_eq!(r.shared_bytes, 8, "{r:?}");
    assert_eq!(r.spill_stores_bytes, 0);
}

#[test]
fn no_ptxas_means_no_report() {
    let Some(c) = compiler_or_skip("no_ptxas_means_no_report") else { return };
    let ptx = c.compile(&emit_cuda(&vector_add(8)).unwrap()).unwrap();
    let empty = temp_cache("noptxas");
    std::fs::create_dir_all(&empty).unwrap();
    // NVRTC is already loaded in this process; this search only governs ptxas.
    let bare = Compiler::new(Arch::SM_90).with_cache_dir(None).with_search(CudaSearch::with_roots([empty.clone()]));
    assert_eq!(bare.resource_report(&ptx).unwrap(), None);
}
