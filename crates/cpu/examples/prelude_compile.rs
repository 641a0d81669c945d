//! Per-kernel host compile time with and without the precompiled prelude.
//!
//! Every conformance case's module (the case's kernel as a one-body bundle
//! at its own block size) is compiled into a fresh, empty cache folder, once
//! with every translation unit parsing `weft_cpu.h` itself and once through
//! the precompiled header; both artifacts (the shared library, and the
//! checking mode's sanitized runner) are timed. The precompiled header's
//! own compilation (once per flag set) is reported apart.
//!
//! `cargo run --release -p weft-cpu --example prelude_compile`

use std::time::{Duration, Instant};

use weft_codegen::emit_bundle;
use weft_cpu::compile::Artifact;
use weft_cpu::HostCompiler;

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
            let t = Instant::now();
            for (i, s) in sources.iter().enumerate() {
                compiler.compile(s, &format!("case {i}"), artifact)?;
            }
            let per = t.elapsed() / sources.len() as u32;
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "{artifact:?}, {}: {per:.0?} per kernel{}",
                if precompiled { "precompiled prelude" } else { "prelude parsed per kernel" },
                if precompiled { format!(" (the precompiled header itself: {prelude:.0?}, once)") } else { String::new() }
            );
        }
    }
    Ok(())
}
