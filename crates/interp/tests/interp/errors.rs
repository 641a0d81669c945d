//! Errors, never panics: bounds, arguments, launch shapes, and which block's
//! error is reported when several fail.

use weft_interp::{InterpError, Interpreter, MemorySpace};
use weft_kir::{Access, ArgValue, Axis, KernelBuilder, KernelDef, LaunchShape, Scalar, Type};

use crate::common::{f32s, find_inst, i32s, out, run, zeros};

/// `out[i] = x[i + shift]` over 4 blocks of 64 threads, `n = 256`.
fn shifted_copy(shift: i32) -> KernelDef {
    let n = 256;
    let mut b = KernelBuilder::new("shifted_copy", LaunchShape::linear(4, 64));
    let x = b.buffer("x", Type::F32, n, Access::Read);
    let o = b.buffer("out", Type::F32, n, Access::Write);
    let i = b.global_thread_id(Axis::X);
    let s = b.const_i32(shift);
    let j = b.add(i, s);
    let v = b.load(x, j);
    b.store(o, i, v);
    b.finish()
}

#[test]
fn an_out_of_bounds_load_names_kernel_inst_buffer_index_block_and_thread() {
    let k = shifted_copy(3);
    let mut args = vec![f32s(&[1.0; 256]), zeros(Type::F32, 256)];
    let err = run(&k, &mut args).unwrap_err();
    let load = find_inst(&k, "load");
    match &err {
        InterpError::OutOfBounds { kernel, inst, space, array, index, len, block, thread, .. } => {
            assert_eq!(kernel, "shifted_copy");
            assert_eq!(*inst, load);
            assert_eq!(*space, MemorySpace::Global);
            assert_eq!(array, "x");
            assert_eq!((*index, *len), (256, 256));
            assert_eq!((*block, *thread), ([3, 0, 0], [61, 0, 0]));
        }
        other => panic!("expected an out-of-bounds error, got {other:?}"),
    }
    let msg = err.to_string();
    for part in ["shifted_copy", &format!("{load} `load`"), "index 256", "`x`", "length 256", "[3, 0, 0]", "[61, 0, 0]"]
    {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    assert_eq!(out(&args, 1).to_f32_vec(), vec![0.0; 256], "a failed run writes nothing back");
}

#[test]
fn a_negative_index_is_out_of_bounds() {
    let err = run(&shifted_copy(-1), &mut [f32s(&[1.0; 256]), zeros(Type::F32, 256)]).unwrap_err();
    assert!(matches!(err, InterpError::OutOfBounds { index: -1, block: [0, 0, 0], thread: [0, 0, 0], .. }), "{err:?}");
}

#[test]
fn an_out_of_bounds_store_is_an_error() {
    let mut b = KernelBuilder::new("bad_store", LaunchShape::linear(1, 32));
    let o = b.buffer("out", Type::I32, 16, Access::Write);
    let t = b.thread_id(Axis::X);
    b.store(o, t, t);
    let k = b.finish();
    let err = run(&k, &mut [zeros(Type::I32, 16)]).unwrap_err();
    let store = find_inst(&k, "store");
    assert!(matches!(err, InterpError::OutOfBounds { index: 16, len: 16, thread: [16, 0, 0], .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{store} `store`")) && msg.contains("`out`"), "{msg}");
}

#[test]
fn an_out_of_bounds_shared_access_is_an_error() {
    let mut b = KernelBuilder::new("bad_shared", LaunchShape::linear(1, 32));
    let s = b.shared_array(Type::F32, 31);
    let t = b.thread_id(Axis::X);
    let v = b.const_f32(1.0);
    b.shared_store(s, t, v);
    let k = b.finish();
    let err = run(&k, &mut []).unwrap_err();
    assert!(
        matches!(&err, InterpError::OutOfBounds { space: MemorySpace::Shared, index: 31, len: 31, array, .. } if array == "s0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("shared_store"), "{err}");
}

#[test]
fn the_lowest_failing_block_is_reported_whatever_the_thread_count() {
    // Blocks 3, 7 and 12 each index out of bounds in their thread 5.
    let mut b = KernelBuilder::new("many_fail", LaunchShape::linear(16, 32));
    let x = b.buffer("x", Type::I32, 16 * 32, Access::Read);
    let bad = b.buffer("bad", Type::I32, 16, Access::Read);
    let o = b.buffer("out", Type::I32, 16 * 32, Access::Write);
    let g = b.global_thread_id(Axis::X);
    let bid = b.block_id(Axis::X);
    let t = b.thread_id(Axis::X);
    let offset = b.load(bad, bid);
    let five = b.const_i32(5);
    let is5 = b.eq(t, five);
    let zero = b.const_i32(0);
    let off = b.select(is5, offset, zero);
    let j = b.add(g, off);
    let v = b.load(x, j);
    b.store(o, g, v);
    let k = b.finish();
    let mut bad_offsets = vec![0; 16];
    for blk in [3, 7, 12] {
        bad_offsets[blk] = 100_000;
    }
    for threads in [1, 2, 4, 8] {
        for _ in 0..3 {
            let mut args = vec![i32s(&[0; 512]), i32s(&bad_offsets), zeros(Type::I32, 512)];
            let err = Interpreter::new().threads(threads).run(&k, &mut args).unwrap_err();
            assert!(matches!(err, InterpError::OutOfBounds { block: [3, 0, 0], thread: [5, 0, 0], .. }), "{err:?}");
        }
    }
}

#[test]
fn argument_mismatches_are_errors() {
    let k = shifted_copy(0);
    let err = run(&k, &mut [f32s(&[1.0; 256])]).unwrap_err();
    assert!(matches!(err, InterpError::Args(_)), "{err:?}");
    let err = run(&k, &mut [f32s(&[1.0; 255]), zeros(Type::F32, 256)]).unwrap_err();
    assert!(matches!(err, InterpError::Args(_)) && err.to_string().contains("`x`"), "{err}");
    let err = run(&k, &mut [ArgValue::Scalar(Scalar::F32(1.0)), zeros(Type::F32, 256)]).unwrap_err();
    assert!(matches!(err, InterpError::Args(_)), "{err:?}");
}

#[test]
fn impossible_launch_shapes_are_errors() {
    for (grid, block) in [([1, 1, 1], [2048, 1, 1]), ([0, 1, 1], [32, 1, 1]), ([1, 1, 1], [32, 0, 1])] {
        let k = KernelBuilder::new("bad_launch", LaunchShape::new(grid, block)).finish();
        // The verifier knows the limits; the interpreter re-checks them too.
        let err = run(&k, &mut []).unwrap_err();
        assert!(matches!(err, InterpError::Verify(_)), "{err:?}");
    }
}

#[test]
fn run_updates_written_buffers() {
    let k = shifted_copy(0);
    let mut args = vec![f32s(&(0..256).map(|i| i as f32).collect::<Vec<_>>()), zeros(Type::F32, 256)];
    let interp = Interpreter::new();
    interp.run(&k, &mut args).unwrap();
    assert_eq!(out(&args, 1).to_f32_vec(), (0..256).map(|i| i as f32).collect::<Vec<_>>());
}
