//! Prints the predictors' held-out error table, measured on the simulator
//! (weft-sim): simulator figures, never a GPU result.
//!
//! `cargo run --release -p weft-bench --example predictor_eval [train] [test] [seed]`

use weft_bench::predictor_eval::{evaluate, EvalConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let config = EvalConfig {
        train: arg(1, 1500) as usize,
        test: arg(2, 400) as usize,
        seed: arg(3, 1),
        ..EvalConfig::default()
    };
    match evaluate(&config) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("predictor_eval: {e}");
            std::process::exit(1);
        }
    }
}
