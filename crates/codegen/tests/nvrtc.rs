//! Emitted CUDA C compiles with NVRTC; NVRTC failures and absence are typed.
//!
//! These tests need libnvrtc (found through `CudaSearch::from_env`, which
//! includes the workspace's `.cuda/`). Without it they print why they skip,
//! except under `CI=true`, where they fail.

mod common;

use common::{block_sum, compiler_or_skip, every_instruction, vector_add};
use weft_codegen::{emit_cuda, Arch, CompileError, Compiler, CudaSearch, CudaSource};
use weft_kir::Type;

#[test]
fn every_instruction_and_type_compiles() {
    let Some(c) = compiler_or_skip("every_instruction_and_type_compiles") else { return };
    for t in Type::ALL {
        let src = emit_cuda(&every_instruction(t)).unwrap();
        let ptx = c.compile(&src).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert!(ptx.ptx.contains(&format!(".entry {}", src.name)), "{t}: no entry in PTX");
        assert!(ptx.ptx.contains(".target sm_90"), "{t}: wrong target");
    }
}

#[test]
fn sample_kernels_compile() {
    let Some(c) = compiler_or_skip("sample_kernels_compile") else { return };
    for k in [vector_add(1000), block_sum()] {
        let src = emit_cuda(&k).unwrap();
        let ptx = c.compile(&src).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        assert!(ptx.ptx.contains(".visible .entry"), "{}", ptx.ptx);
    }
}

#[test]
fn nvrtc_failure_carries_log_and_source() {
    let Some(c) = compiler_or_skip("nvrtc_failure_carries_log_and_source") else { return };
    let src = CudaSource {
        name: "broken".into(),
        code: "extern \"C\" __global__ void broken(float* out) { out[0] = undeclared_thing; }\n".into(),
    };
    match c.compile(&src) {
        Err(CompileError::Nvrtc { kernel, log, source, source_path }) => {
            assert_eq!(kernel, "broken");
            assert!(log.contains("undeclared_thing"), "log: {log}");
            assert_eq!(source, src.code);
            // The message names the file holding the source instead of
            // embedding it; the file holds exactly the source compiled.
            let path = source_path.clone().expect("the source is written to the temp folder");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), src.code);
            assert!(std::fs::read_to_string(path.with_extension("log")).unwrap().contains("undeclared_thing"));
            let msg = CompileError::Nvrtc { kernel, log, source, source_path }.to_string();
            assert!(msg.contains(&path.display().to_string()) && msg.contains("undeclared_thing"), "{msg}");
            // (NVRTC's log quotes the offending line; the source itself is
            // not appended.)
            assert!(!msg.contains("--- source ---"), "the source is not in the message: {msg}");
        }
        other => panic!("expected an NVRTC error, got {other:?}"),
    }
    assert_eq!(c.stats().nvrtc_invocations, 1);
}

#[test]
fn missing_nvrtc_is_a_typed_error_with_a_hint() {
    let empty = std::env::temp_dir().join(format!("weft-no-nvrtc-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let c = Compiler::new(Arch::SM_90).with_cache_dir(None).with_search(CudaSearch::with_roots([empty.clone()]));
    let err = c.compile(&emit_cuda(&vector_add(16)).unwrap()).unwrap_err();
    match &err {
        CompileError::NoNvrtc { searched, hint } => {
            assert!(searched.iter().any(|s| s.starts_with(empty.to_str().unwrap())), "{searched:?}");
            assert!(hint.contains("scripts/setup-cuda") && hint.contains("WEFT_CUDA_HOME"), "{hint}");
        }
        other => panic!("expected NoNvrtc, got {other:?}"),
    }
    assert!(err.to_string().contains("NVRTC"));
    assert_eq!(c.stats().nvrtc_invocations, 0);
}

#[test]
fn nvrtc_version_is_reported() {
    if compiler_or_skip("nvrtc_version_is_reported").is_none() {
        return;
    }
    let (major, _minor) = weft_codegen::nvrtc_version().unwrap();
    assert!(major >= 12, "NVRTC {major}");
}

/// Shuffles whose operand is not a constant both the hardware and KIR agree
/// on read a computed source lane (`weft_shfl_source`) with an `idx`
/// shuffle; constants in range stay plain shuffles. Both forms compile.
#[test]
fn guarded_and_plain_shuffles_compile() {
    use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, ShuffleKind};
    let mut b = KernelBuilder::new("shuffle_forms", LaunchShape::linear(1, 64));
    let out = b.buffer("out", Type::I32, 64 * 8, Access::Write);
    let op = b.scalar_param("op", Type::I32);
    let t = b.thread_id(Axis::X);
    let runtime = b.param(op);
    let three = b.const_i32(3);
    let mut row = 0;
    for kind in ShuffleKind::ALL {
        for operand in [runtime, three] {
            let v = b.shuffle(kind, t, operand, 8);
            let base = b.const_i32(row * 64);
            let at = b.add(base, t);
            b.store(out, at, v);
            row += 1;
        }
    }
    let src = emit_cuda(&b.finish()).unwrap();
    assert_eq!(src.code.matches("weft_shfl_source(").count(), 4 + 1, "one per runtime operand, plus its definition");
    assert!(src.code.contains("__shfl_up_sync(0xffffffffu, v") && src.code.contains("__shfl_xor_sync(0xffffffffu, v"));
    let Some(c) = compiler_or_skip("guarded_and_plain_shuffles_compile") else { return };
    let ptx = c.compile(&src).unwrap_or_else(|e| panic!("{e}"));
    assert!(ptx.ptx.contains("shfl.sync.idx"), "{}", ptx.ptx);
}

#[test]
fn an_nvrtc_error_names_the_source_file_and_shows_the_first_lines_of_its_log() {
    // A source of 5,000 parameters and a log of 100 errors: neither is
    // copied whole into the message.
    let params: Vec<String> = (0..5000).map(|i| format!("const float* __restrict__ in{i}")).collect();
    let source = format!("extern \"C\" __global__ void wide({}) {{}}\n", params.join(",\n"));
    let log: String = (0..100).map(|i| format!("wide.cu({i}): error: something {i}\n")).collect();
    let path = std::env::temp_dir().join("weft-nvrtc/wide-0011223344556677.cu");
    let e = CompileError::Nvrtc {
        kernel: "wide".into(),
        log: log.clone(),
        source: source.clone(),
        source_path: Some(path.clone()),
    };
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("5000 lines"), "{msg}");
    assert!(!msg.contains("in4999"), "the source is not in the message");
    assert!(msg.contains("something 0") && !msg.contains("something 99"), "{msg}");
    assert!(msg.contains("80 more lines"), "{msg}");
    assert!(msg.len() < 4096, "{} bytes", msg.len());
}
