//! Helpers shared by the test modules.

use weft_interp::{ExecStats, InterpError, Interpreter};
use weft_kir::{ArgValue, HostBuffer, Inst, KernelDef, Scalar, Type};

/// Runs on four workers, so block parallelism is exercised everywhere.
pub fn run(kernel: &KernelDef, args: &mut [ArgValue]) -> Result<ExecStats, InterpError> {
    Interpreter::new().threads(4).run(kernel, args)
}

pub fn buffer(ty: Type, values: &[Scalar]) -> ArgValue {
    let mut b = HostBuffer::zeros(ty, values.len());
    for (i, &v) in values.iter().enumerate() {
        b.set(i, v);
    }
    ArgValue::Buffer(b)
}

pub fn zeros(ty: Type, len: usize) -> ArgValue {
    ArgValue::Buffer(HostBuffer::zeros(ty, len))
}

pub fn i32s(values: &[i32]) -> ArgValue {
    ArgValue::Buffer(HostBuffer::from_i32(values))
}

pub fn f32s(values: &[f32]) -> ArgValue {
    ArgValue::Buffer(HostBuffer::from_f32(values))
}

pub fn out(args: &[ArgValue], i: usize) -> &HostBuffer {
    args[i].as_buffer().expect("argument is a buffer")
}

pub fn out_i32(args: &[ArgValue], i: usize) -> Vec<i32> {
    let b = out(args, i);
    (0..b.len()).map(|j| b.get(j).as_i64().unwrap() as i32).collect()
}

/// The first instruction with mnemonic `m`.
pub fn find_inst(kernel: &KernelDef, m: &str) -> Inst {
    kernel.insts.iter().find(|(_, d)| d.mnemonic() == m).map(|(i, _)| i).expect("instruction present")
}
