//! Kernels and helpers shared by the codegen integration tests.
#![allow(dead_code)]

use weft_codegen::{Arch, Compiler};
use weft_kir::{
    Access, Axis, BinaryOp, CmpOp, KernelBuilder, KernelDef, LaunchShape, Scalar, ShuffleKind, Type, UnaryOp,
};

/// A compiler with no disk cache, or `None` (with the reason printed) where
/// NVRTC is missing. Under `CI=true` a missing NVRTC fails the test instead:
/// CI must prove every emitted kernel compiles.
pub fn compiler_or_skip(test: &str) -> Option<Compiler> {
    weft_codegen::compiler::require_nvrtc_or_skip(test, Arch::SM_90)
}

/// The reference vector add (`weft_kernels`) over `n` elements.
pub fn vector_add(n: u64) -> KernelDef {
    weft_kernels::vector_add(n as u32)
}

/// A block-wide sum: shared memory, a barrier, a loop with an accumulator
/// variable and warp shuffles.
pub fn block_sum() -> KernelDef {
    let mut b = KernelBuilder::new("block_sum", LaunchShape::linear(4, 64));
    let x = b.buffer("x", Type::F32, 256, Access::Read);
    let out = b.buffer("out", Type::F32, 4, Access::Write);
    let partial = b.shared_array(Type::F32, 2);
    let tid = b.thread_id(Axis::X);
    let gid = b.global_thread_id(Axis::X);
    let v = b.load(x, gid);
    let acc = b.var_init(v);
    for m in [16, 8, 4, 2, 1] {
        let cur = b.get(acc);
        let other = b.shuffle_xor(cur, m);
        let s = b.add(cur, other);
        b.set(acc, s);
    }
    let lane = b.lane_id();
    let zero = b.const_i32(0);
    let is_lane0 = b.eq(lane, zero);
    b.if_(is_lane0, |b| {
        let c32 = b.const_i32(32);
        let warp = b.div(tid, c32);
        let cur = b.get(acc);
        b.shared_store(partial, warp, cur);
    });
    b.barrier();
    let is_t0 = b.eq(tid, zero);
    b.if_(is_t0, |b| {
        let zf = b.const_f32(0.0);
        let total = b.var_init(zf);
        b.for_const(0, 2, 1, |b, w| {
            let p = b.shared_load(partial, w);
            let t = b.get(total);
            let s = b.add(t, p);
            b.set(total, s);
        });
        let bid = b.block_id(Axis::X);
        let t = b.get(total);
        b.store(out, bid, t);
    });
    b.finish()
}

/// One kernel per type that uses every instruction kind valid on it: every
/// unary, binary and comparison op, fma, select, casts to every type,
/// bitcasts to every type of its size, global and shared loads and stores,
/// variables, barriers, all shuffle kinds, loops and both forms of `if`.
pub fn every_instruction(t: Type) -> KernelDef {
    let mut b = KernelBuilder::new(format!("every_{}", t.name()), LaunchShape::new([2, 2, 1], [32, 2, 1]));
    let input = b.buffer("in", t, 64, Access::Read);
    let out = b.buffer("out", t, 64, Access::ReadWrite);
    let s = b.scalar_param("s", t);
    let casts: Vec<_> =
        Type::ALL.iter().map(|&to| b.buffer(&format!("cast_{}", to.name()), to, 64, Access::Write)).collect();
    let bitcasts: Vec<_> = Type::ALL
        .iter()
        .filter(|to| to.size_bytes() == t.size_bytes())
        .map(|&to| (to, b.buffer(&format!("bitcast_{}", to.name()), to, 64, Access::Write)))
        .collect();
    let flags = b.buffer("flags", Type::Bool, 64, Access::Write);
    let sh = b.shared_array(t, 64);
    let var = b.var(t);

    let tx = b.thread_id(Axis::X);
    let ty = b.thread_id(Axis::Y);
    let c32 = b.const_i32(32);
    let row = b.mul(ty, c32);
    let i = b.add(row, tx);
    for sp in [
        weft_kir::Special::BlockId(Axis::Y),
        weft_kir::Special::BlockId(Axis::Z),
        weft_kir::Special::BlockDim(Axis::X),
        weft_kir::Special::GridDim(Axis::Y),
        weft_kir::Special::LaneId,
    ] {
        b.special(sp);
    }
    let a = b.load(input, i);
    let p = b.param(s);
    let k = match t {
        Type::F32 => b.constant(Scalar::F32(-1.5)),
        Type::F16 | Type::BF16 => b.const_float(t, 0.3),
        Type::I32 => b.constant(Scalar::I32(i32::MIN)),
        Type::U32 => b.constant(Scalar::U32(u32::MAX)),
        Type::I64 => b.constant(Scalar::I64(i64::MIN)),
        Type::Bool => b.constant(Scalar::Bool(true)),
        Type::F64 => b.const_float(t, 0.3),
        Type::I8 => b.constant(Scalar::I8(i8::MIN)),
        Type::U8 => b.constant(Scalar::U8(u8::MAX)),
        Type::I16 => b.constant(Scalar::I16(i16::MIN)),
        Type::U16 => b.constant(Scalar::U16(u16::MAX)),
        Type::U64 => b.constant(Scalar::U64(u64::MAX)),
    };
    b.set(var, a);
    let mut acc = p;
    let unary: Vec<UnaryOp> = UnaryOp::ALL
        .into_iter()
        .filter(|op| match t {
            Type::Bool => *op == UnaryOp::Not,
            _ if t.is_float() => *op != UnaryOp::Not,
            _ => !op.is_float_math(),
        })
        .collect();
    for op in unary {
        acc = b.unary(op, acc);
    }
    let binary: Vec<BinaryOp> = BinaryOp::ALL
        .into_iter()
        .filter(|op| match t {
            Type::Bool => op.is_bitwise(),
            _ if t.is_float() => op.is_arith(),
            _ => true,
        })
        .collect();
    for op in binary {
        acc = b.binary(op, acc, k);
    }
    if t != Type::Bool {
        acc = b.fma(acc, a, k);
    }
    let mut cond = b.const_bool(false);
    for op in CmpOp::ALL {
        let c = b.cmp(op, acc, a);
        cond = b.or(cond, c);
    }
    b.store(flags, i, cond);
    acc = b.select(cond, acc, a);
    for (&to, &buf) in Type::ALL.iter().zip(&casts) {
        let c = b.cast(to, acc);
        b.store(buf, i, c);
    }
    for &(to, buf) in &bitcasts {
        let c = b.bitcast(to, acc);
        b.store(buf, i, c);
    }
    b.shared_store(sh, i, acc);
    b.barrier();
    let c63 = b.const_i32(63);
    let j = b.sub(c63, i);
    let from_shared = b.shared_load(sh, j);
    b.set(var, from_shared);
    for kind in ShuffleKind::ALL {
        let cur = b.get(var);
        let one = b.const_i32(1);
        let shuffled = b.shuffle(kind, cur, one, 16);
        b.set(var, shuffled);
    }
    let zero64 = b.const_i64(0);
    let four64 = b.const_i64(4);
    b.for_range(zero64, four64, 2, |b, _it| {
        let cur = b.get(var);
        b.if_else(
            cond,
            |b| {
                let x = b.load(out, i);
                b.set(var, x);
            },
            |b| b.set(var, cur),
        );
    });
    let last = b.get(var);
    b.if_(cond, |b| b.store(out, i, last));
    b.finish()
}
