//! Naive `f64` references for the reference kernels, and the error metric the
//! conformance suite uses.

/// `x + y`, elementwise.
pub fn vector_add(x: &[f64], y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(a, b)| a + b).collect()
}

/// `C = A·B` for row-major `A[m×k]`, `B[k×n]`.
pub fn matmul(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += aip * b[p * n + j];
            }
        }
    }
    c
}

/// Sum of each row of a row-major `[rows×cols]` matrix.
pub fn row_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows).map(|r| x[r * cols..(r + 1) * cols].iter().sum()).collect()
}

/// Numerically stable softmax of each row.
pub fn row_softmax(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        out.extend(exps.iter().map(|e| e / sum));
    }
    out
}

/// Relative L2 error `‖got − want‖₂ / ‖want‖₂` (absolute when `want` is all zeros).
pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "rel_l2 of slices of different lengths");
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}
