//! Emitter output: expected lines, determinism, typed rejections, and golden
//! files (`tests/golden/*.cu`; rewrite them with `WEFT_BLESS=1` when a change
//! to the emitted code is intended).

mod common;

use common::{block_sum, every_instruction, vector_add};
use weft_codegen::{emit_cuda, emit_cuda_with, BlockMapping, CodeWriter, EmitError, EmitOptions};
use weft_kir::{Access, InstData, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};

fn assert_lines(code: &str, expected: &[&str]) {
    for line in expected {
        assert!(code.lines().any(|l| l.trim() == *line), "missing line `{line}` in:\n{code}");
    }
}

fn check_golden(name: &str, code: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.cu"));
    if std::env::var("WEFT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, code).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with WEFT_BLESS=1 to create it)", path.display()));
    assert_eq!(code, expected, "{name}.cu differs from the golden file (WEFT_BLESS=1 rewrites it)");
}

#[test]
fn vector_add_emits_expected_lines() {
    let src = emit_cuda(&vector_add(1000)).unwrap();
    assert_eq!(src.name, "vector_add");
    assert_lines(
        &src.code,
        &[
            "extern \"C\" __global__ void __launch_bounds__(256) vector_add(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ out)",
            "const int bid_x = (int)blockIdx.x;",
            "const int v1 = 256; // block_dim.x",
            "const int v5 = 1000;",
            "if (v6) {",
            "const float v9 = __fadd_rn(v7, v8);",
            "out[v4] = v9;",
        ],
    );
    check_golden("vector_add", &src.code);
}

#[test]
fn block_sum_emits_shared_barrier_shuffles_and_loops() {
    let src = emit_cuda(&block_sum()).unwrap();
    assert_lines(
        &src.code,
        &[
            "WEFT_SHARED_ARRAY(float, s0, 2);",
            "float x0;",
            "float x1;",
            "WEFT_SYNC_BLOCK();",
            "#define WEFT_SYNC_BLOCK() __syncthreads()",
            "const int lane_id = (tid_x) & 31;",
            "for (int v37 = v35; v37 < v36; v37 += 1) {",
        ],
    );
    assert!(src.code.contains("__shfl_xor_sync(0xffffffffu, v"), "{}", src.code);
    assert!(src.code.contains("weft_div_i32(v0, v30)"), "{}", src.code);
    check_golden("block_sum", &src.code);
}

#[test]
fn emission_is_deterministic() {
    for t in Type::ALL {
        let k = every_instruction(t);
        assert_eq!(emit_cuda(&k).unwrap(), emit_cuda(&k.clone()).unwrap());
    }
}

#[test]
fn constants_are_bit_exact() {
    let mut b = KernelBuilder::new("consts", LaunchShape::linear(1, 32));
    b.constant(Scalar::F32(0.1));
    b.constant(Scalar::F32(f32::from_bits(0xffc0_0001)));
    b.constant(Scalar::F16(half::f16::from_f32(1.0)));
    b.constant(Scalar::BF16(half::bf16::from_f32(-2.0)));
    b.constant(Scalar::I32(i32::MIN));
    b.constant(Scalar::I64(i64::MIN));
    b.constant(Scalar::U32(u32::MAX));
    let code = emit_cuda(&b.finish()).unwrap().code;
    assert_lines(
        &code,
        &[
            "const float v0 = __uint_as_float(0x3dcccccdu); // 0.1",
            "const float v1 = __uint_as_float(0xffc00001u); // nan:0xffc00001",
            "const weft_f16 v2 = (weft_f16)0x3c00u; // 1.0",
            "const weft_bf16 v3 = (weft_bf16)0xc000u; // -2.0",
            "const int v4 = (int)(-2147483647 - 1);",
            "const long long v5 = (long long)(-9223372036854775807ll - 1ll);",
            "const unsigned int v6 = 4294967295u;",
        ],
    );
}

#[test]
fn signed_arithmetic_wraps_and_casts_saturate() {
    let mut b = KernelBuilder::new("ints", LaunchShape::linear(1, 32));
    let a = b.const_i32(7);
    let f = b.const_f32(2.5);
    b.add(a, a);
    b.shl(a, a);
    b.neg(a);
    b.cast(Type::I32, f);
    b.cast(Type::U32, f);
    b.cast(Type::I64, f);
    b.cast(Type::F16, a);
    let code = emit_cuda(&b.finish()).unwrap().code;
    assert_lines(
        &code,
        &[
            "const int v2 = (int)((unsigned int)v0 + (unsigned int)v0);",
            "const int v3 = (int)((unsigned int)v0 << (v0 & 31));",
            "const int v4 = (int)(0u - (unsigned int)v0);",
            "const int v5 = __float2int_rz(v1);",
            "const unsigned int v6 = __float2uint_rz(v1);",
            "const long long v7 = __float2ll_rz(v1);",
            "const weft_f16 v8 = weft_f32_to_f16(weft_ll_to_f32_odd((long long)v0));",
        ],
    );
}

#[test]
fn param_names_are_sanitized_and_unique() {
    let mut b = KernelBuilder::new("my-kernel", LaunchShape::linear(1, 32));
    b.buffer("int", Type::F32, 4, Access::Read);
    b.buffer("v3", Type::F32, 4, Access::Read);
    b.buffer("a.b", Type::F32, 4, Access::Read);
    b.buffer("a_b", Type::F32, 4, Access::Read);
    b.scalar_param("0n", Type::I32);
    b.scalar_param("bid_x", Type::I32);
    let src = emit_cuda(&b.finish()).unwrap();
    assert_eq!(src.name, "my_kernel");
    assert!(
        src.code.contains(
            "my_kernel(const float* __restrict__ int_, const float* __restrict__ v3_, const float* __restrict__ a_b, \
             const float* __restrict__ a_b_2, int p_0n, int bid_x_)"
        ),
        "{}",
        src.code
    );
}

#[test]
fn block_mapping_hook_replaces_the_prologue() {
    struct Constrained;
    impl BlockMapping for Constrained {
        fn prologue(&self, _k: &KernelDef, w: &mut CodeWriter) {
            w.line("const int bid_x = (int)blockIdx.x + 100;");
            w.line("const int bid_y = 0;");
            w.line("const int bid_z = 0;");
            w.line("const int tid_x = (int)threadIdx.x;");
            w.line("const int tid_y = 0;");
            w.line("const int tid_z = 0;");
        }
    }
    let code = emit_cuda_with(&vector_add(64), &EmitOptions { block_mapping: &Constrained }).unwrap().code;
    assert!(code.contains("const int bid_x = (int)blockIdx.x + 100;"));
    assert!(!code.contains("(int)blockIdx.y"));
}

#[test]
fn unsupported_instructions_are_typed_errors_naming_kernel_and_instruction() {
    let mut b = KernelBuilder::new("bad_rem", LaunchShape::linear(1, 32));
    let f = b.const_f32(1.0);
    b.rem(f, f);
    match emit_cuda(&b.finish()) {
        Err(EmitError::Inst { kernel, inst, mnemonic, reason }) => {
            assert_eq!((kernel.as_str(), inst.as_str(), mnemonic), ("bad_rem", "i1", "rem"));
            assert!(reason.contains("f32"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let mut b = KernelBuilder::new("bad_store", LaunchShape::linear(1, 32));
    let x = b.buffer("x", Type::F32, 4, Access::Read);
    let i = b.const_i32(0);
    let v = b.const_f32(0.0);
    b.store(x, i, v);
    let err = emit_cuda(&b.finish()).unwrap_err();
    assert!(err.to_string().contains("bad_store") && err.to_string().contains("read-only"), "{err}");

    let mut b = KernelBuilder::new("bad_width", LaunchShape::linear(1, 32));
    let v = b.const_f32(0.0);
    let one = b.const_i32(1);
    b.shuffle(weft_kir::ShuffleKind::Down, v, one, 12);
    assert!(matches!(emit_cuda(&b.finish()), Err(EmitError::Inst { mnemonic: "shuffle", .. })));

    let mut k = KernelDef::new("zero_block", LaunchShape::linear(1, 0));
    k.insts.push(InstData::Barrier);
    assert!(matches!(emit_cuda(&k), Err(EmitError::Kernel { .. })));
}

/// A loop `for i in 0..end step step` over one `i32` buffer, `end` a
/// constant or a scalar parameter.
fn stepped_loop(end: Option<i32>, step: i64) -> KernelDef {
    let mut b = KernelBuilder::new("stepped", LaunchShape::linear(1, 32));
    let x = b.buffer("x", Type::F32, 4, Access::ReadWrite);
    let n = b.scalar_param("n", Type::I32);
    let end = match end {
        Some(e) => b.const_i32(e),
        None => b.param(n),
    };
    let start = b.const_i32(0);
    b.for_range(start, end, step, |b, _| {
        let zero = b.const_i32(0);
        let v = b.load(x, zero);
        b.store(x, zero, v);
    });
    b.finish()
}

#[test]
fn loops_that_could_step_past_the_types_maximum_land_on_their_end() {
    // A step of 1, or a constant end with room for the last step: the plain loop.
    for (end, step) in [(None, 1), (Some(1000), 64), (Some(i32::MAX - 63), 64)] {
        let code = emit_cuda(&stepped_loop(end, step)).unwrap().code;
        assert!(code.contains(&format!("+= {step}) {{")), "{end:?} step {step}:\n{code}");
        assert!(code.contains("WEFT_LOOP_TICK();"), "{code}");
    }
    // A runtime end, or a constant end too close to i32::MAX: `i += step`
    // could wrap, so the index steps only while it stays below the end.
    for (end, step) in [(None, 64), (Some(i32::MAX - 62), 64), (Some(i32::MAX - 5), 1 << 30)] {
        let code = emit_cuda(&stepped_loop(end, step)).unwrap().code;
        assert!(!code.contains(&format!("+= {step})")), "{end:?} step {step}:\n{code}");
        assert!(code.contains(&format!("> (unsigned int){step} ? (int)(")), "{end:?} step {step}:\n{code}");
    }
    // The CUDA spelling of the watchdog's hook is empty.
    let code = emit_cuda(&stepped_loop(None, 1)).unwrap().code;
    assert_lines(&code, &["#define WEFT_LOOP_TICK()"]);
}
