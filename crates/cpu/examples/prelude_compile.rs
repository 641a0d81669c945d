//! Per-kernel host compile time with and without the precompiled prelude.
//!
//! Every conformance case's module (the case's kernel as a one-body bundle
//! at its own block size) is compiled into a fresh, empty cache folder, once
//! with every translation unit parsing `weft_cpu.h` itself and once through
//! the precompiled header; both artifacts (the shared library, and the
//! checking mode's sanitized runner) are timed. The precompiled header's
//! own compilation (once per flag set) is reported apart.
//!
//! Each figure is wall time and, where `/proc/self/stat` tells it, the
//! compiler processes' CPU time (user + system), which a busy machine
//! distorts less.
//!
//! `cargo run -p weft-cpu --example prelude_compile`

use std::time::{Duration, Instant};

use weft_codegen::emit_bundle;
use weft_cpu::compile::Artifact;
use weft_cpu::HostCompiler;

/// CPU seconds used by finished child processes (Linux), if known.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which ends with the last ')'):
    // cutime and cstime are the 14th and 15th, in clock ticks (100 Hz).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sources: Vec<_> = weft_kernels::conformance_cases()
        .iter()
        .map(|c| emit_bundle(&[&c.kernel], c.kernel.launch.block.iter().product()))
        .collect::<Result<_, _>>()?;
    println!("{} kernels, {}", sources.len(), HostCompiler::new(None).describe()?);
    for artifact in [Artifact::Library, Artifact::SanitizedRunner] {
        for precompiled in [false, true] {
            let dir = std::env::temp_dir().join(format!("weft-prelude-compile-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let compiler = HostCompiler::new(Some(dir.clone())).with_precompiled_prelude(precompiled);
            let mut prelude = Duration::ZERO;
            if precompiled {
                // The first compile builds the precompiled header: time it apart.
                let t = Instant::now();
                compiler.precompile_prelude(artifact)?;
                prelude = t.elapsed();
            }
            let (t, cpu) = (Instant::now(), children_cpu());
            for (i, s) in sources.iter().enumerate() {
                compiler.compile(s, &format!("case {i}"), artifact)?;
            }
            let n = sources.len() as u32;
            let per = t.elapsed() / n;
            let cpu = match (cpu, children_cpu()) {
                (Some(a), Some(b)) => format!(", {} ms CPU", ((b - a) / n).as_millis()),
                _ => String::new(),
            };
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "{artifact:?}, {}: {} ms wall{cpu} per kernel{}",
                if precompiled { "precompiled prelude" } else { "prelude parsed per kernel" },
                per.as_millis(),
                if precompiled {
                    format!(" (the precompiled header itself: {} ms wall, once)", prelude.as_millis())
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}
