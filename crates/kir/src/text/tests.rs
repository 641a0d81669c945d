//! Tests of the text format: every instruction and type round-trips, parsed
//! kernels equal built ones, malformed text fails at the right place, and a
//! property test over random builder kernels checks print → parse → print.

use half::{bf16, f16};
use proptest::prelude::*;

use super::{parse_kernel, parse_module, ParseError};
use crate::builder::KernelBuilder;
use crate::inst::{Access, Axis, BinaryOp, CmpOp, InstData, ShuffleKind, Special, UnaryOp};
use crate::kernel::{KernelDef, LaunchShape, Module, ValueDef};
use crate::types::{Scalar, Type};
use crate::Value;

/// Field-for-field equality, with constants compared by bits: `PartialEq`
/// on a kernel holding a NaN constant is false even against itself.
fn same_kernel(a: &KernelDef, b: &KernelDef) -> bool {
    let same_insts = a.insts.len() == b.insts.len()
        && a.insts.values().zip(b.insts.values()).all(|pair| match pair {
            (InstData::Const(x), InstData::Const(y)) => x.ty() == y.ty() && x.to_bits() == y.to_bits(),
            (x, y) => x == y,
        });
    same_insts
        && a.name == b.name
        && a.launch == b.launch
        && a.params == b.params
        && a.shared == b.shared
        && a.vars == b.vars
        && a.values == b.values
        && a.inst_result == b.inst_result
        && a.regions == b.regions
        && a.body == b.body
}

/// Prints, parses and prints again; the kernel must come back equal and the
/// text must be a fixed point.
fn assert_round_trip(k: &KernelDef) -> String {
    let text = k.to_string();
    let back = parse_kernel(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.to_string(), text);
    assert!(same_kernel(&back, k), "parsed kernel differs from the built one:\n{text}\n{back:?}\n{k:?}");
    text
}

/// A kernel that uses every instruction kind, every type and every special.
fn everything_kernel() -> KernelDef {
    let mut b = KernelBuilder::new("everything", LaunchShape::new([2, 3, 4], [32, 2, 1]));
    let x = b.buffer("x", Type::F32, 64, Access::Read);
    let out = b.buffer("out \"quoted\"\n", Type::F32, 64, Access::ReadWrite);
    let h = b.buffer("h", Type::F16, 8, Access::Write);
    let alpha = b.scalar_param("alpha", Type::BF16);
    let n = b.scalar_param("n", Type::I64);
    let s = b.shared_array(Type::F32, 128);
    let _s2 = b.shared_array(Type::Bool, 3);
    let acc = b.var(Type::F32);
    for a in Axis::ALL {
        b.special(Special::BlockId(a));
        b.special(Special::ThreadId(a));
        b.special(Special::BlockDim(a));
        b.special(Special::GridDim(a));
    }
    let lane = b.lane_id();
    let consts = [
        Scalar::Bool(true),
        Scalar::Bool(false),
        Scalar::I32(-7),
        Scalar::U32(u32::MAX),
        Scalar::I64(i64::MIN),
        Scalar::F32(0.1),
        Scalar::F32(-0.0),
        Scalar::F32(1e-45),
        Scalar::F32(f32::NEG_INFINITY),
        Scalar::F32(f32::from_bits(0xffc0_1234)),
        Scalar::F16(f16::from_f32(65504.0)),
        Scalar::F16(f16::from_bits(0x7e01)),
        Scalar::BF16(bf16::from_f32(-3.140625)),
        Scalar::BF16(bf16::INFINITY),
    ];
    for c in consts {
        b.constant(c);
    }
    let ap = b.param(alpha);
    let np = b.param(n);
    let i = b.global_thread_id(Axis::X);
    let xi = b.load(x, i);
    for op in UnaryOp::ALL {
        b.unary(op, xi);
    }
    for op in BinaryOp::ALL {
        b.binary(op, i, lane);
    }
    for op in CmpOp::ALL {
        b.cmp(op, xi, xi);
    }
    let c = b.lt(i, lane);
    let f = b.fma(xi, xi, xi);
    let sel = b.select(c, f, xi);
    for ty in Type::ALL {
        b.cast(ty, sel);
    }
    let _ = (ap, np);
    b.shared_store(s, i, xi);
    let sv = b.shared_load(s, i);
    b.set(acc, sv);
    b.barrier();
    for kind in ShuffleKind::ALL {
        b.shuffle(kind, sv, lane, 16);
    }
    let zero = b.const_i32(0);
    let four = b.const_i32(4);
    b.for_range(zero, four, 2, |b, j| {
        let cond = b.lt(j, i);
        b.if_else(
            cond,
            |b| {
                b.for_const(0, 3, 1, |b, k| {
                    let t = b.get(acc);
                    let kf = b.cast(Type::F32, k);
                    let u = b.add(t, kf);
                    b.set(acc, u);
                });
            },
            |b| {
                b.if_(cond, |b| b.barrier());
            },
        );
        b.if_(cond, |b| {
            let t = b.get(acc);
            b.store(out, j, t);
        });
    });
    let t = b.get(acc);
    let th = b.cast(Type::F16, t);
    b.store(h, zero, th);
    b.finish()
}

#[test]
fn every_instruction_and_type_round_trips() {
    let k = everything_kernel();
    let text = assert_round_trip(&k);
    for needle in [
        "kernel @everything grid(2, 3, 4) block(32, 2, 1) {",
        "p1 = buffer \"out \\\"quoted\\\"\\n\": f32[64] readwrite",
        "p3 = scalar \"alpha\": bf16",
        "s1 = shared bool[3]",
        "x0 = var f32",
        ": i32 = special grid_dim.z",
        ": i32 = special lane_id",
        ": f32 = const nan:0xffc01234",
        ": f16 = const nan:0x7e01",
        ": bf16 = const inf",
        ": i64 = const -9223372036854775808",
        ": f32 = shuffle.down ",
        "} else {",
        "store p2[v",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    for ty in Type::ALL {
        assert!(text.contains(&format!(": {ty} = cast ")), "no cast to {ty}");
    }
    for name in UnaryOp::ALL.map(|o| o.name()).into_iter().chain(BinaryOp::ALL.map(|o| o.name())) {
        assert!(text.contains(&format!(" = {name} v")), "no {name}");
    }
}

#[test]
fn vector_add_prints_as_documented() {
    let mut b = KernelBuilder::new("vector_add", LaunchShape::linear(4, 256));
    let x = b.buffer("x", Type::F32, 1000, Access::Read);
    let out = b.buffer("out", Type::F32, 1000, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let n = b.const_i32(1000);
    let ok = b.lt(i, n);
    b.if_(ok, |b| {
        let v = b.load(x, i);
        b.store(out, i, v);
    });
    let k = b.finish();
    let expected = "\
kernel @vector_add grid(4, 1, 1) block(256, 1, 1) {
  p0 = buffer \"x\": f32[1000] read
  p1 = buffer \"out\": f32[1000] write
  v0: i32 = special block_id.x
  v1: i32 = special block_dim.x
  v2: i32 = special thread_id.x
  v3: i32 = mul v0, v1
  v4: i32 = add v3, v2
  v5: i32 = const 1000
  v6: bool = lt v4, v5
  if v6 {
    v7: f32 = load p0[v4]
    store p1[v4], v7
  }
}
";
    assert_eq!(k.to_string(), expected);
    assert_round_trip(&k);
}

#[test]
fn modules_round_trip() {
    let mut m = Module::new();
    m.push(everything_kernel());
    m.push(KernelBuilder::new("empty kernel", LaunchShape::linear(1, 1)).finish());
    let text = m.to_string();
    assert!(text.contains("}\n\nkernel @\"empty kernel\" grid(1, 1, 1) block(1, 1, 1) {\n}\n"), "{text}");
    let back = parse_module(&text).unwrap();
    assert_eq!(back.kernels.len(), m.kernels.len());
    assert!(back.kernels.values().zip(m.kernels.values()).all(|(a, b)| same_kernel(a, b)));
    assert_eq!(back.to_string(), text);
    assert_eq!(parse_module("; nothing here\n\n").unwrap(), Module::new());
}

#[test]
fn ids_with_gaps_and_forward_uses_are_kept() {
    let src = "\
kernel @k grid(1, 1, 1) block(1, 1, 1) {
  v5: i32 = add v9, v9 ; used above its definition: the verifier's business
  v9: i32 = const 1
  for v2 in v9..v5 step 3 {
  }
}
";
    let k = parse_kernel(src).unwrap();
    assert_eq!(k.values.len(), 10);
    assert_eq!(k.values[Value::from_u32(0)].def, ValueDef::Undefined);
    assert!(matches!(k.values[Value::from_u32(5)].def, ValueDef::Result(_)));
    assert!(matches!(k.values[Value::from_u32(2)].def, ValueDef::LoopIndex(_)));
    assert_eq!(k.value_type(Value::from_u32(2)), Type::I32);
    assert_eq!(k.to_string(), src.replace(" ; used above its definition: the verifier's business", ""));
}

#[test]
fn loop_index_takes_type_of_start_even_when_start_is_defined_later() {
    let src = "\
kernel @k grid(1, 1, 1) block(1, 1, 1) {
  for v0 in v1..v1 step 1 {
  }
  v1: u32 = const 3
}
";
    let k = parse_kernel(src).unwrap();
    assert_eq!(k.value_type(Value::from_u32(0)), Type::U32);
}

/// Parses `src` and returns the error's (line, column, message).
fn error_of(src: &str) -> (usize, usize, String) {
    match parse_kernel(src) {
        Ok(k) => panic!("parsed without error:\n{k}"),
        Err(ParseError { line, column, message }) => (line, column, message),
    }
}

fn assert_error(src: &str, line: usize, column: usize, fragment: &str) {
    let (l, c, m) = error_of(src);
    assert_eq!((l, c), (line, column), "{m}");
    assert!(m.contains(fragment), "`{m}` does not mention `{fragment}`");
}

const HEAD: &str = "kernel @k grid(1, 1, 1) block(32, 1, 1) {\n";

#[test]
fn malformed_text_reports_line_and_column() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("  v0: i32 = frob v1\n}\n", 2, 13, "unknown instruction `frob`"),
        ("  v0: i32 = neg v3\n}\n", 2, 17, "undefined value `v3`"),
        ("  v0: f32 = load p0[v1]\n}\n", 2, 18, "unknown parameter `p0`"),
        ("  v0: f32 = shared_load s2[v1]\n}\n", 2, 25, "unknown shared array `s2`"),
        ("  v0: f32 = var_get x0\n}\n", 2, 21, "unknown variable `x0`"),
        ("  v0: f33 = const 1.0\n}\n", 2, 7, "unknown type `f33`"),
        ("  v0: i32 = const 1.5\n}\n", 2, 19, "bad i32 constant `1.5`"),
        ("  v0: i32 = const 99999999999\n}\n", 2, 19, "bad i32 constant"),
        ("  v0: i32 = const 1\n  v0: i32 = const 2\n}\n", 3, 3, "duplicate definition of value `v0`"),
        ("  v0: i32 = const 1\n  for v0 in v0..v0 step 1 {\n  }\n}\n", 3, 7, "duplicate definition of value `v0`"),
        ("  v0: i32 = add v1\n}\n", 2, 19, "expected `,`, found end of line"),
        ("  v0: i32 = const 1\n  for v1 in v0..v0 step 1 {\n", 3, 27, "unterminated block"),
        // The kernel's `}` closes the loop; indentation shows the loop's is missing.
        ("  v0: bool = const true\n  if v0 {\n    barrier\n}\n", 3, 9, "the `}` at line 5, column 1"),
        ("  v0: bool = const true\n  if v0 {\n  } else {\n\n}\n", 4, 10, "unterminated block"),
        ("  v0: i32 = const 1\n", 1, 41, "unterminated block"),
        ("  p1 = scalar \"a\": f32\n}\n", 2, 3, "expected `p0` next"),
        ("  p0 = scalar \"a\": f32\n  p0 = scalar \"b\": f32\n}\n", 3, 3, "duplicate definition of parameter `p0`"),
        ("  barrier\n  x0 = var f32\n}\n", 3, 3, "after the first instruction"),
        ("  p0 = buffer \"a\": f32[-1] read\n}\n", 2, 24, "expected a buffer length"),
        ("  p0 = buffer \"a\": f32[4] readonly\n}\n", 2, 27, "unknown access `readonly`"),
        ("  p0 = buffer \"a: f32[4] read\n}\n", 2, 15, "unterminated string"),
        ("  s0 = shared f32[4294967296]\n}\n", 2, 19, "out of range"),
        ("  add v0, v1\n}\n", 2, 3, "produces a value"),
        ("  v0: i32 = barrier\n}\n", 2, 13, "produces no value"),
        ("  v0: i32 = special warp_id\n}\n", 2, 21, "unknown special register"),
        ("  v0: f32 = shuffle.sideways v1, v1, 32\n}\n", 2, 13, "unknown shuffle kind"),
        ("  v0: i32 = const 1\n  for v1 in v0..v0 step x {\n  }\n}\n", 3, 25, "bad loop step"),
        ("  v0: i32 = const 1 2\n}\n", 2, 21, "expected end of line, found `2`"),
        ("  v4294967295: i32 = const 1\n}\n", 2, 3, "too large"),
        ("  v01: i32 = const 1\n}\n", 2, 3, "expected a value"),
        ("  v0: i32 = const 1\n  if v0 {\n  } else\n}\n", 4, 9, "expected `{`"),
        ("}\n}\n", 3, 1, "end of input after the kernel"),
        ("  v0: bool = const true\n  if v0 {\n  }\n  else {\n  }\n}\n", 5, 3, "on the same line"),
    ];
    // Collect every mismatch so one run shows them all.
    let mut wrong = Vec::new();
    for &(body, line, column, fragment) in cases {
        let (l, c, m) = error_of(&format!("{HEAD}{body}"));
        if (l, c) != (line, column) || !m.contains(fragment) {
            wrong.push(format!("{body:?}: got {l}:{c} `{m}`, expected {line}:{column} `{fragment}`"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn malformed_headers_report_line_and_column() {
    assert_error("", 1, 1, "expected `kernel`");
    assert_error("kernal @k", 1, 1, "expected `kernel`");
    assert_error("kernel k grid(1, 1, 1)", 1, 8, "kernel name");
    assert_error("kernel @k grid(1, 1) block(1, 1, 1) {\n}\n", 1, 20, "expected `,`");
    assert_error("kernel @k grid(1, 1, 1) block(1, 1, 1) { barrier\n}\n", 1, 42, "expected end of line");
    assert_error("; c\n\nkernel @k grid(1, 1, 1) blok(1, 1, 1) {\n}\n", 3, 25, "expected `block`");
}

#[test]
fn display_of_parse_error() {
    let e = parse_kernel(&format!("{HEAD}  v0: i32 = nope\n}}\n")).unwrap_err();
    assert_eq!(e.to_string(), "line 2, column 13: unknown instruction `nope`");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = super::MAX_NESTING + 5;
    let mut src = format!("{HEAD}  v0: bool = const true\n");
    for _ in 0..depth {
        src.push_str("if v0 {\n");
    }
    for _ in 0..depth {
        src.push_str("}\n");
    }
    src.push_str("}\n");
    let (_, _, m) = error_of(&src);
    assert!(m.contains("nested more than"), "{m}");
}

#[test]
fn printing_malformed_kernels_does_not_panic() {
    let mut b = KernelBuilder::new("bad", LaunchShape::linear(1, 1));
    let c = b.const_i32(1);
    b.if_(c, |b| b.barrier());
    let mut k = b.finish();
    // A value-producing instruction with no result, and a region tree that
    // reaches the same region twice.
    let inst = k.regions[k.body][0];
    k.inst_result[inst] = None;
    let if_inst = k.regions[k.body][1];
    let body = k.body;
    let then = k.insts[if_inst].regions()[0];
    k.regions[then].push(if_inst);
    let text = k.to_string();
    assert!(text.contains("?: ? = const 1"), "{text}");
    assert!(text.contains("appears twice"), "{text}");
    let _ = body;
}

// ---- property test ---------------------------------------------------

/// One step of a random kernel program; operands are picked from pools of
/// values of the right type by index modulo the pool size, so the kernels are
/// well typed and loops/ifs nest properly.
#[derive(Clone, Debug)]
enum Step {
    ConstI32(i32),
    ConstF32(u32),
    ConstOther(u8, u64),
    Special(u8),
    Binary(u8, usize, usize),
    FloatUnary(u8, usize),
    FloatBinary(u8, usize, usize),
    Cmp(u8, usize, usize),
    Select(usize, usize, usize),
    Cast(u8, usize),
    Load(usize),
    Store(usize, usize),
    Shared(usize, usize),
    Var(usize),
    Shuffle(u8, usize, usize),
    Fma(usize, usize, usize),
    Barrier,
    OpenFor(usize, usize, u8),
    OpenIf(usize, bool),
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    let idx = 0usize..64;
    prop_oneof![
        any::<i32>().prop_map(Step::ConstI32),
        any::<u32>().prop_map(Step::ConstF32),
        (any::<u8>(), any::<u64>()).prop_map(|(t, b)| Step::ConstOther(t, b)),
        any::<u8>().prop_map(Step::Special),
        (any::<u8>(), idx.clone(), idx.clone()).prop_map(|(o, a, b)| Step::Binary(o, a, b)),
        (any::<u8>(), idx.clone()).prop_map(|(o, a)| Step::FloatUnary(o, a)),
        (any::<u8>(), idx.clone(), idx.clone()).prop_map(|(o, a, b)| Step::FloatBinary(o, a, b)),
        (any::<u8>(), idx.clone(), idx.clone()).prop_map(|(o, a, b)| Step::Cmp(o, a, b)),
        (idx.clone(), idx.clone(), idx.clone()).prop_map(|(a, b, c)| Step::Select(a, b, c)),
        (any::<u8>(), idx.clone()).prop_map(|(t, a)| Step::Cast(t, a)),
        idx.clone().prop_map(Step::Load),
        (idx.clone(), idx.clone()).prop_map(|(a, b)| Step::Store(a, b)),
        (idx.clone(), idx.clone()).prop_map(|(a, b)| Step::Shared(a, b)),
        idx.clone().prop_map(Step::Var),
        (any::<u8>(), idx.clone(), idx.clone()).prop_map(|(k, a, b)| Step::Shuffle(k, a, b)),
        (idx.clone(), idx.clone(), idx.clone()).prop_map(|(a, b, c)| Step::Fma(a, b, c)),
        Just(Step::Barrier),
        (idx.clone(), idx.clone(), 1u8..5).prop_map(|(a, b, s)| Step::OpenFor(a, b, s)),
        (idx.clone(), any::<bool>()).prop_map(|(c, e)| Step::OpenIf(c, e)),
        Just(Step::Close),
    ]
}

/// Values in scope, by type.
#[derive(Clone)]
struct Pools {
    ints: Vec<Value>,
    floats: Vec<Value>,
    bools: Vec<Value>,
}

fn pick(pool: &[Value], i: usize) -> Value {
    pool[i % pool.len()]
}

struct Program<'a> {
    steps: &'a [Step],
    /// Next step; a `Cell` so both arms of an `if_else` can advance it.
    at: std::cell::Cell<usize>,
    x: crate::Param,
    out: crate::Param,
    s: crate::Shared,
    acc: crate::Var,
}

/// Builds steps into the current region until a `Close` (or the end),
/// recursing for loops and ifs; `pools` is cloned per region so values never
/// escape their scope.
fn build(b: &mut KernelBuilder, prog: &Program<'_>, mut pools: Pools, depth: usize) {
    while let Some(step) = prog.steps.get(prog.at.get()).cloned() {
        prog.at.set(prog.at.get() + 1);
        match step {
            Step::ConstI32(v) => pools.ints.push(b.const_i32(v)),
            Step::ConstF32(bits) => pools.floats.push(b.const_f32(f32::from_bits(bits))),
            Step::ConstOther(t, bits) => {
                // Constants of every type, with arbitrary bits (NaN payloads,
                // subnormals), kept out of the typed pools.
                let ty = Type::ALL[t as usize % Type::ALL.len()];
                b.constant(Scalar::from_bits(ty, bits));
            }
            Step::Special(s) => {
                let a = Axis::ALL[s as usize % 3];
                let sp = [Special::BlockId(a), Special::ThreadId(a), Special::BlockDim(a), Special::GridDim(a)];
                let v = if s as usize % 5 == 4 { b.lane_id() } else { b.special(sp[s as usize % 4]) };
                pools.ints.push(v);
            }
            Step::Binary(o, l, r) => {
                let op = BinaryOp::ALL[o as usize % BinaryOp::ALL.len()];
                pools.ints.push(b.binary(op, pick(&pools.ints, l), pick(&pools.ints, r)));
            }
            Step::FloatUnary(o, a) => {
                let op = UnaryOp::ALL[o as usize % UnaryOp::ALL.len()];
                if op != UnaryOp::Not {
                    pools.floats.push(b.unary(op, pick(&pools.floats, a)));
                }
            }
            Step::FloatBinary(o, l, r) => {
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Min, BinaryOp::Max]
                    [o as usize % 6];
                pools.floats.push(b.binary(op, pick(&pools.floats, l), pick(&pools.floats, r)));
            }
            Step::Cmp(o, l, r) => {
                let op = CmpOp::ALL[o as usize % CmpOp::ALL.len()];
                let v = if o % 2 == 0 {
                    b.cmp(op, pick(&pools.ints, l), pick(&pools.ints, r))
                } else {
                    b.cmp(op, pick(&pools.floats, l), pick(&pools.floats, r))
                };
                pools.bools.push(v);
            }
            Step::Select(c, t, f) => {
                let v = b.select(pick(&pools.bools, c), pick(&pools.floats, t), pick(&pools.floats, f));
                pools.floats.push(v);
            }
            Step::Cast(t, a) => {
                let ty = Type::ALL[t as usize % Type::ALL.len()];
                let v = b.cast(ty, pick(&pools.floats, a));
                match ty {
                    Type::F32 => pools.floats.push(v),
                    Type::I32 => pools.ints.push(v),
                    // Round trip f16/bf16 back so the float pool stays f32.
                    Type::F16 | Type::BF16 => pools.floats.push(b.cast(Type::F32, v)),
                    _ => {}
                }
            }
            Step::Load(i) => pools.floats.push(b.load(prog.x, pick(&pools.ints, i))),
            Step::Store(i, v) => b.store(prog.out, pick(&pools.ints, i), pick(&pools.floats, v)),
            Step::Shared(i, v) => {
                b.shared_store(prog.s, pick(&pools.ints, i), pick(&pools.floats, v));
                pools.floats.push(b.shared_load(prog.s, pick(&pools.ints, v)));
            }
            Step::Var(v) => {
                let old = b.get(prog.acc);
                let new = b.add(old, pick(&pools.floats, v));
                b.set(prog.acc, new);
            }
            Step::Shuffle(k, v, o) => {
                let kind = ShuffleKind::ALL[k as usize % 4];
                let width = 1u32 << (k as u32 % 6);
                pools.floats.push(b.shuffle(kind, pick(&pools.floats, v), pick(&pools.ints, o), width));
            }
            Step::Fma(x, y, z) => {
                let v = b.fma(pick(&pools.floats, x), pick(&pools.floats, y), pick(&pools.floats, z));
                pools.floats.push(v);
            }
            Step::Barrier => b.barrier(),
            Step::OpenFor(s, e, step) if depth < 4 => {
                let (s, e) = (pick(&pools.ints, s), pick(&pools.ints, e));
                let inner = pools.clone();
                b.for_range(s, e, step as i64, |b, i| {
                    let mut inner = inner;
                    inner.ints.push(i);
                    build(b, prog, inner, depth + 1);
                });
            }
            Step::OpenIf(c, with_else) if depth < 4 => {
                let c = pick(&pools.bools, c);
                let (then_pools, else_pools) = (pools.clone(), pools.clone());
                if with_else {
                    // The else arm takes the steps after the then arm's Close.
                    b.if_else(c, |b| build(b, prog, then_pools, depth + 1), |b| build(b, prog, else_pools, depth + 1));
                } else {
                    b.if_(c, |b| build(b, prog, then_pools, depth + 1));
                }
            }
            Step::OpenFor(..) | Step::OpenIf(..) => {}
            Step::Close if depth > 0 => return,
            Step::Close => {}
        }
    }
}

fn random_kernel(steps: &[Step], grid: u32, threads: u32) -> KernelDef {
    let mut b = KernelBuilder::new("random", LaunchShape::new([grid, 1, 2], [threads, 1, 1]));
    let x = b.buffer("x", Type::F32, 256, Access::Read);
    let out = b.buffer("out", Type::F32, 256, Access::Write);
    let s = b.shared_array(Type::F32, 64);
    let acc = b.var(Type::F32);
    let pools =
        Pools { ints: vec![b.thread_id(Axis::X)], floats: vec![b.const_f32(1.0)], bools: vec![b.const_bool(true)] };
    let prog = Program { steps, at: std::cell::Cell::new(0), x, out, s, acc };
    build(&mut b, &prog, pools, 0);
    b.finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_kernels_round_trip(steps in prop::collection::vec(step(), 0..60), grid in 1u32..100, threads in 1u32..1025) {
        let k = random_kernel(&steps, grid, threads);
        let text = k.to_string();
        let back = parse_kernel(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back.to_string(), text);
        prop_assert!(same_kernel(&back, &k), "{:?}\n{:?}", back, k);
    }

    #[test]
    fn arbitrary_text_never_panics(src in "[a-z0-9 .,:;=@{}()\\[\\]\"\n-]{0,200}") {
        let _ = parse_module(&src);
    }

    #[test]
    fn mutated_kernels_never_panic(steps in prop::collection::vec(step(), 0..30), cut in any::<usize>(), insert in "[ -~\n]{0,4}") {
        // Damage valid text at a random char boundary: the parser must
        // return Ok or Err, never panic.
        let text = random_kernel(&steps, 1, 32).to_string();
        let mut at = cut % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = format!("{}{}{}", &text[..at], insert, &text[(at + 3).min(text.len())..]);
        let _ = parse_kernel(&damaged);
    }
}
