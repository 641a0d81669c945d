//! Shared harness for the lowering tests: build a graph, lower it, check
//! every kernel (verifier, access ranges proven), run it on the interpreter
//! and compare with the reference evaluator.

#![allow(dead_code)]

use weft_graph::{evaluate, DType, Graph, Op, Shape, Tensor, TensorData, TensorId};
use weft_kir::analysis::{access_ranges, shared_ranges};
use weft_kir::HostBuffer;
use weft_lower::context::tensor_to_host;
use weft_lower::{lower, LowerOptions, Program};

/// Seeded test values, on the graph builder's generator.
pub struct Rng(weft_graph::builder::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(weft_graph::builder::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0.uniform(lo, hi)
    }

    pub fn f32(&mut self, dims: &[usize], lo: f64, hi: f64) -> Tensor {
        let n = dims.iter().product();
        Tensor::f32(dims.to_vec(), (0..n).map(|_| self.uniform(lo, hi) as f32).collect())
    }

    pub fn i64(&mut self, dims: &[usize], lo: i64, hi: i64) -> Tensor {
        let n = dims.iter().product();
        let span = (hi - lo) as u64;
        Tensor::i64(dims.to_vec(), (0..n).map(|_| lo + (self.next_u64() % span) as i64).collect())
    }

    pub fn bool(&mut self, dims: &[usize]) -> Tensor {
        let n = dims.iter().product();
        Tensor {
            dtype: DType::Bool,
            shape: Shape(dims.to_vec()),
            data: TensorData::Bool((0..n).map(|_| self.next_u64() & 1 == 1).collect()),
        }
    }
}

/// Adds one node and returns its first output.
pub fn node(g: &mut Graph, name: &str, op: Op, inputs: &[TensorId]) -> TensorId {
    g.add_node(name, op, inputs.iter().map(|&t| Some(t)).collect()).unwrap_or_else(|e| panic!("{e}"))[0]
}

/// Asserts every kernel of `p` verifies and every global and shared access
/// is proven in bounds.
pub fn assert_kernels_proven(p: &Program) {
    for step in &p.steps {
        let k = &step.kernel;
        if let Err(e) = weft_kir::verifier::verify(k) {
            panic!("kernel `{}` does not verify: {e}", k.name);
        }
        for a in access_ranges(k) {
            assert!(a.is_proven(), "kernel `{}`: {} of {} not proven: {:?}\n{}", k.name, a.kind.name(), a.buf, a, k);
        }
        for a in shared_ranges(k) {
            assert!(a.is_proven(), "kernel `{}`: shared access not proven: {:?}", k.name, a);
        }
    }
}

/// Relative L2 error of `got` against `want`.
pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Lowers `g` with `options`, checks its kernels, runs it on the interpreter
/// and compares every output with the reference evaluator: relative L2 ≤
/// `tol` for floats, exact for integers and booleans. Returns the program.
pub fn check_with(g: &Graph, inputs: &[Tensor], tol: f64, options: &LowerOptions) -> Program {
    let (program, got) = lower_and_run(g, inputs, options);
    let want = evaluate(g, inputs).unwrap_or_else(|e| panic!("reference failed: {e}"));
    assert_eq!(got.len(), want.len());
    for (k, (gb, w)) in got.iter().zip(&want).enumerate() {
        let (gv, wv) = (gb.to_f64_vec(), w.to_f64());
        assert_eq!(gv.len(), wv.len(), "output {k}: length");
        if w.dtype.is_float() {
            // NaN where the reference has NaN, and close elsewhere.
            let nan_at = |v: &[f64]| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>();
            assert_eq!(nan_at(&gv), nan_at(&wv), "output {k}: NaN positions differ");
            let (gv, wv): (Vec<f64>, Vec<f64>) = gv.iter().zip(&wv).filter(|(_, w)| !w.is_nan()).unzip();
            let err = rel_l2(&gv, &wv);
            assert!(
                err <= tol,
                "output {k}: relative L2 {err:e} > {tol:e}\n got {:?}\nwant {:?}",
                &gv[..gv.len().min(16)],
                &wv[..wv.len().min(16)]
            );
        } else {
            assert_eq!(gv, wv, "output {k} differs");
        }
    }
    program
}

/// Lowers `g` with `options`, checks its kernels and runs it on the
/// interpreter: the program and its outputs.
pub fn lower_and_run(g: &Graph, inputs: &[Tensor], options: &LowerOptions) -> (Program, Vec<HostBuffer>) {
    let program = lower(g, options).unwrap_or_else(|e| panic!("lowering failed: {e}"));
    assert_kernels_proven(&program);
    let hosts: Vec<HostBuffer> = inputs.iter().map(tensor_to_host).collect();
    let got = weft_pack::run_program(
        &mut weft_pack::InterpExecutor::default(),
        std::sync::Arc::new(program.clone()),
        &hosts,
        |_| {},
    )
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    (program, got)
}

/// [`check_with`] with default options and the f32 tolerance 1e-5.
pub fn check(g: &Graph, inputs: &[Tensor]) -> Program {
    check_with(g, inputs, 1e-5, &LowerOptions::default())
}
