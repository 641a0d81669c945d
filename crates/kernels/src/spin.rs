//! `spin`: a kernel whose running time its input decides, for watchdog
//! tests. Each of its 32 threads counts `acc += 1` from 0 to `n[0]` (an
//! `i64` read at run time) and stores the count in `x[t]`; with
//! `n[0] = i64::MAX` it never finishes in practice, with a small `n[0]` it
//! is an ordinary kernel.

use weft_kir::{Access, Axis, KernelBuilder, KernelDef, LaunchShape, Type};

/// The spinning kernel: params `n` (one `i64`, read) and `x` (32 `f32`, written).
pub fn spin() -> KernelDef {
    let mut b = KernelBuilder::new("spin", LaunchShape::linear(1, 32));
    let n = b.buffer("n", Type::I64, 1, Access::Read);
    let x = b.buffer("x", Type::F32, 32, Access::Write);
    let t = b.thread_id(Axis::X);
    let zero = b.const_i32(0);
    let end = b.load(n, zero);
    let start = b.const_i64(0);
    let f0 = b.const_f32(0.0);
    let acc = b.var_init(f0);
    b.for_range(start, end, 1, |b, _| {
        let v = b.get(acc);
        let one = b.const_f32(1.0);
        let v = b.add(v, one);
        b.set(acc, v);
    });
    let v = b.get(acc);
    b.store(x, t, v);
    b.finish()
}
