//! Prints the CUDA C emitted for a small kernel (for people reading the emitter).
use weft_kir::{Access, Axis, KernelBuilder, LaunchShape, Type};

fn main() {
    let n = 1000;
    let mut b = KernelBuilder::new("scale_f16", LaunchShape::linear(4, 256));
    let x = b.buffer("x", Type::F16, n, Access::Read);
    let out = b.buffer("out", Type::F16, n, Access::Write);
    let scale = b.scalar_param("scale", Type::F16);
    let i = b.global_thread_id(Axis::X);
    let limit = b.const_i32(n as i32);
    let in_range = b.lt(i, limit);
    b.if_(in_range, |b| {
        let xi = b.load(x, i);
        let s = b.param(scale);
        let y = b.mul(xi, s);
        let e = b.exp(y);
        b.store(out, i, e);
    });
    match weft_codegen::emit_cuda(&b.finish()) {
        Ok(src) => print!("{}", src.code),
        Err(e) => eprintln!("{e}"),
    }
}
