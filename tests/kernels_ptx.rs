//! The reference kernels' KIR text, emitted CUDA C and PTX are committed under
//! `kernels-ptx/`; this test fails when any of them drifts, so a change in the
//! builder, the emitter or the kernels is always a visible diff.
//!
//! `WEFT_BLESS=1 cargo test --test kernels_ptx` rewrites the files after an
//! intended change. PTX is compared only when NVRTC is the pinned 13.0 (other
//! versions emit different, equally valid PTX); KIR text and CUDA C always.

use std::path::PathBuf;

use weft::codegen::{emit_cuda, require_nvrtc_or_skip, Arch};
use weft::kernels::{row_softmax, row_sum, sgemm, vector_add, SgemmTiles};
use weft::kir::KernelDef;

/// The canonical shapes the committed files are emitted at.
fn reference_kernels() -> Vec<KernelDef> {
    vec![vector_add(4096), sgemm(256, 256, 256, SgemmTiles::default()), row_sum(64, 1000), row_softmax(64, 1000)]
}

fn dir() -> PathBuf {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    PathBuf::from(root).join("kernels-ptx")
}

fn bless() -> bool {
    std::env::var("WEFT_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `actual` with the committed file (or rewrites it when blessing);
/// returns a description of the drift.
fn check(name: &str, actual: &str) -> Option<String> {
    let path = dir().join(name);
    if bless() {
        std::fs::create_dir_all(dir()).expect("create kernels-ptx/");
        std::fs::write(&path, actual).expect("write blessed file");
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| expected.lines().count().min(actual.lines().count()) + 1, |i| i + 1);
            Some(format!("kernels-ptx/{name} drifted (first difference at line {line})"))
        }
        Err(e) => Some(format!("kernels-ptx/{name}: {e}")),
    }
}

fn report(drift: Vec<String>) {
    assert!(
        drift.is_empty(),
        "{}\nIf the change is intended, rerun with WEFT_BLESS=1 and commit kernels-ptx/.",
        drift.join("\n")
    );
}

#[test]
fn kir_text_and_cuda_c_match_the_committed_files() {
    let mut drift = Vec::new();
    for k in reference_kernels() {
        drift.extend(check(&format!("{}.kir", k.name), &k.to_string()));
        let src = emit_cuda(&k).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        drift.extend(check(&format!("{}.cu", k.name), &src.code));
    }
    report(drift);
}

#[test]
fn ptx_matches_the_committed_files() {
    let Some(compiler) = require_nvrtc_or_skip("ptx_matches_the_committed_files", Arch::SM_90) else {
        return;
    };
    let version = compiler.nvrtc().expect("checked by require_nvrtc_or_skip").version;
    let mut drift = Vec::new();
    for k in reference_kernels() {
        let src = emit_cuda(&k).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        let ptx = compiler.compile(&src).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        assert!(ptx.ptx.contains(&format!(".entry {}", src.name)), "{}: no entry point in PTX", k.name);
        if version == (13, 0) {
            drift.extend(check(&format!("{}.ptx", k.name), &ptx.ptx));
        } else {
            eprintln!(
                "{}: NVRTC {}.{} is not the pinned 13.0; PTX compiled but not compared",
                k.name, version.0, version.1
            );
        }
    }
    report(drift);
}

#[test]
fn every_committed_kernel_file_is_still_produced() {
    let names: Vec<String> = reference_kernels().iter().map(|k| k.name.clone()).collect();
    for entry in std::fs::read_dir(dir()).expect("kernels-ptx/ exists") {
        let file = entry.expect("readable entry").file_name().to_string_lossy().to_string();
        if file == "README.md" {
            continue;
        }
        let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s);
        assert!(names.iter().any(|n| n == stem), "kernels-ptx/{file} is no longer produced by any reference kernel");
    }
}
