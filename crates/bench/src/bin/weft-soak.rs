//! `weft-soak`: the serving engine on the simulator under changing load,
//! tenant churn and injected sticky faults ([`weft_bench::soak`]); reports
//! every request's fate and exits 1 if any was lost or unaccounted for.
//!
//! ```sh
//! cargo run --release -p weft-bench --bin weft-soak -- --minutes 30 --out target/soak
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weft_bench::soak::{run, SoakArgs, SoakReport};

#[derive(Parser, Debug)]
#[command(name = "weft-soak", about = "Soak the serving engine on the simulator: load phases, churn, sticky faults")]
struct Cli {
    /// How long to soak.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Tenants registered at most at once.
    #[arg(long, default_value_t = 8)]
    max_tenants: usize,
    /// A sticky fault on about one launch in this many (0: none).
    #[arg(long, default_value_t = 2000)]
    fault_every: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write soak.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn line(r: &SoakReport) -> String {
    format!(
        "{:>7.0} s: {} submitted, {} completed ({} within SLO), {} rejected at submit, {} rejected, {} failed, \
         {} to removed tenants, {} lost; {} faults, {} recoveries; {} tenants registered, {} removed; {} MiB resident",
        r.elapsed_s,
        r.submitted,
        r.completed,
        r.met_slo,
        r.rejected_at_submit,
        r.rejected,
        r.failed,
        r.to_removed_tenant,
        r.lost,
        r.faults_injected,
        r.recoveries,
        r.registrations,
        r.removals,
        r.resident_end_bytes.max(r.resident_start_bytes) >> 20
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.minutes > 0.0 && cli.minutes.is_finite()) {
        eprintln!("weft-soak: --minutes {} must be a positive number", cli.minutes);
        return ExitCode::FAILURE;
    }
    let args = SoakArgs {
        duration: Duration::from_secs_f64(cli.minutes * 60.0),
        max_tenants: cli.max_tenants.max(1),
        fault_every: cli.fault_every,
        seed: cli.seed,
    };
    println!(
        "weft-soak: {:.1} min on the simulator, up to {} tenants, a sticky fault about every {} launches",
        cli.minutes, args.max_tenants, args.fault_every
    );
    let mut shown = 0.0;
    let report = match run(&args, &mut |r| {
        if r.elapsed_s - shown >= 10.0 {
            shown = r.elapsed_s;
            println!("{}", line(r));
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft-soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", line(&report));
    println!(
        "resident memory: {} MiB at the start, {} MiB at the end; {} launches",
        report.resident_start_bytes >> 20,
        report.resident_end_bytes >> 20,
        report.launches
    );
    if let Some(dir) = &cli.out {
        let json = serde_json::json!({"benchmark": "soak", "args": format!("{cli:?}"), "report": report.to_json()});
        if let Err(e) =
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(dir.join("soak.json"), json.to_string()))
        {
            eprintln!("weft-soak: writing {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    if report.lost > 0 || !report.accounted() {
        eprintln!("weft-soak: {} requests lost, accounted: {}", report.lost, report.accounted());
        return ExitCode::FAILURE;
    }
    println!("every request answered: none lost");
    ExitCode::SUCCESS
}
