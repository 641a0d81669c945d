//! Conformance cases: a reference kernel at one shape, seeded inputs, and the
//! `f64` reference outputs, checkable on any executor.
//!
//! The suite is written once here and instantiated per executor by the test
//! crates (the interpreter always; CUDA where a GPU is present), which pass
//! a [`Runner`]: the executor's run of one kernel (`weft_pack::run_kernel`,
//! a one-slot bundle through the executor interface).

use weft_kir::{ArgValue, HostBuffer, KernelDef, Type};

/// Runs one kernel on an executor, updating the buffers it writes.
pub type Runner<'a> =
    dyn FnMut(&KernelDef, &mut [ArgValue]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'a;

use crate::reference::{self, rel_l2};
use crate::rng::SplitMix64;
use crate::{row_softmax, row_sum, sgemm, vector_add, SgemmTiles};

/// One conformance case.
#[derive(Clone, Debug)]
pub struct Case {
    /// `kernel/shape`, e.g. `sgemm/65x33x17`.
    pub name: String,
    pub kernel: KernelDef,
    /// One argument per kernel parameter, inputs filled, outputs zeroed.
    pub args: Vec<ArgValue>,
    /// `(parameter index, expected values)` for each output buffer.
    pub expected: Vec<(usize, Vec<f64>)>,
    /// Largest acceptable relative L2 error of each output.
    pub tolerance: f64,
}

/// Why a case failed.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The executor itself failed.
    #[error("{case} on {executor}: {source}")]
    Execute {
        case: String,
        executor: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An output differs from the reference by more than the tolerance.
    #[error("{case} on {executor}: output `{param}` has relative L2 error {rel_l2:e}, above {tolerance:e}")]
    Mismatch { case: String, executor: String, param: String, rel_l2: f64, tolerance: f64 },
}

impl Case {
    /// Runs the case on executor `executor` through `run` and returns the
    /// outputs (parameter index, values).
    pub fn run(&self, executor: &str, run: &mut Runner<'_>) -> Result<Vec<(usize, Vec<f64>)>, CaseError> {
        let mut args = self.args.clone();
        run(&self.kernel, &mut args).map_err(|source| CaseError::Execute {
            case: self.name.clone(),
            executor: executor.to_string(),
            source,
        })?;
        Ok(self
            .expected
            .iter()
            .map(|(idx, _)| {
                let buf = args[*idx].as_buffer().expect("conformance outputs are buffers");
                (*idx, buf.to_f64_vec())
            })
            .collect())
    }

    /// Runs the case on `exec` and checks every output against the reference;
    /// returns the worst relative L2 error.
    pub fn check(&self, executor: &str, run: &mut Runner<'_>) -> Result<f64, CaseError> {
        let outputs = self.run(executor, run)?;
        let mut worst: f64 = 0.0;
        for ((idx, got), (_, want)) in outputs.iter().zip(&self.expected) {
            let err = rel_l2(got, want);
            if err.is_nan() || err > self.tolerance {
                let param = self.kernel.params.values().nth(*idx).map(|p| p.name.clone()).unwrap_or_default();
                return Err(CaseError::Mismatch {
                    case: self.name.clone(),
                    executor: executor.to_string(),
                    param,
                    rel_l2: err,
                    tolerance: self.tolerance,
                });
            }
            worst = worst.max(err);
        }
        Ok(worst)
    }
}

fn f32_buffer(values: &[f64]) -> ArgValue {
    ArgValue::Buffer(HostBuffer::from_f64(Type::F32, values))
}

fn zeros(n: usize) -> ArgValue {
    ArgValue::Buffer(HostBuffer::zeros(Type::F32, n))
}

/// Relative L2 error allowed for `f32` kernels against the `f64` reference.
pub const F32_TOLERANCE: f64 = 1e-5;

pub fn vector_add_case(n: u32, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let x = rng.f32_values(n as usize, -1.0, 1.0);
    let y = rng.f32_values(n as usize, -1.0, 1.0);
    Case {
        name: format!("vector_add/{n}"),
        kernel: vector_add(n),
        expected: vec![(2, reference::vector_add(&x, &y))],
        args: vec![f32_buffer(&x), f32_buffer(&y), zeros(n as usize)],
        tolerance: F32_TOLERANCE,
    }
}

pub fn sgemm_case(m: u32, n: u32, k: u32, tiles: SgemmTiles, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let a = rng.f32_values((m * k) as usize, -1.0, 1.0);
    let bm = rng.f32_values((k * n) as usize, -1.0, 1.0);
    Case {
        name: format!("sgemm/{m}x{n}x{k}"),
        kernel: sgemm(m, n, k, tiles),
        expected: vec![(2, reference::matmul(&a, &bm, m as usize, n as usize, k as usize))],
        args: vec![f32_buffer(&a), f32_buffer(&bm), zeros((m * n) as usize)],
        tolerance: F32_TOLERANCE,
    }
}

pub fn row_sum_case(rows: u32, cols: u32, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let x = rng.f32_values((rows * cols) as usize, -1.0, 1.0);
    Case {
        name: format!("row_sum/{rows}x{cols}"),
        kernel: row_sum(rows, cols),
        expected: vec![(1, reference::row_sum(&x, rows as usize, cols as usize))],
        args: vec![f32_buffer(&x), zeros(rows as usize)],
        tolerance: F32_TOLERANCE,
    }
}

pub fn row_softmax_case(rows: u32, cols: u32, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let x = rng.f32_values((rows * cols) as usize, -4.0, 4.0);
    Case {
        name: format!("row_softmax/{rows}x{cols}"),
        kernel: row_softmax(rows, cols),
        expected: vec![(1, reference::row_softmax(&x, rows as usize, cols as usize))],
        args: vec![f32_buffer(&x), zeros((rows * cols) as usize)],
        tolerance: F32_TOLERANCE,
    }
}

/// The conformance suite: every reference kernel at several shapes, ragged
/// edges (sizes that are not multiples of the block or tile) included.
pub fn conformance_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, n) in [1u32, 255, 256, 1000, 4097].into_iter().enumerate() {
        cases.push(vector_add_case(n, 10 + i as u64));
    }
    let tiles = SgemmTiles::default();
    for (i, (m, n, k)) in
        [(64, 64, 16), (128, 64, 64), (65, 33, 17), (1, 1, 1), (100, 130, 70), (7, 200, 33)].into_iter().enumerate()
    {
        cases.push(sgemm_case(m, n, k, tiles, 20 + i as u64));
    }
    let small = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
    cases.push(sgemm_case(45, 37, 29, small, 30));
    for (i, (rows, cols)) in [(1, 1), (3, 256), (5, 1000), (2, 4099)].into_iter().enumerate() {
        cases.push(row_sum_case(rows, cols, 40 + i as u64));
    }
    for (i, (rows, cols)) in [(1, 1), (4, 100), (3, 1024), (2, 3001)].into_iter().enumerate() {
        cases.push(row_softmax_case(rows, cols, 50 + i as u64));
    }
    cases
}
