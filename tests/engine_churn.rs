//! The engine over many register/serve/remove cycles keeps nothing of the
//! tenants that left: no tenant, kernel, module or weight stays behind, and
//! the process's resident memory stops growing. Its own test binary, so no
//! other test's allocations move the figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::engine::{Backend, Engine, EngineConfig, EngineError};
use weft::graph::builder::GraphBuilder;
use weft::graph::DType;
use weft::lower::{lower, LowerOptions, Program};

/// A small model whose kernels differ with `width`, so every cycle brings
/// kernels the scheduler has not seen.
fn model(width: usize) -> Arc<Program> {
    let mut g = GraphBuilder::new("churn");
    let x = g.input("x", DType::F32, &[4, width]);
    let y = g.relu(x).unwrap();
    let z = g.softmax(y, -1).unwrap();
    g.output(z);
    Arc::new(lower(&g.finish(), &LowerOptions::default()).unwrap())
}

/// Resident set size of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm's resident field");
    pages * 4096
}

/// Waits until the engine's loop holds no tenant (removal finishes once a
/// tenant's requests have drained).
fn drained(engine: &Engine) -> weft::engine::EngineStats {
    let started = Instant::now();
    loop {
        let stats = engine.stats();
        if stats.tenants == 0 {
            return stats;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "a removed tenant never left: {stats:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_thousand_register_serve_remove_cycles_leave_nothing_behind() {
    let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
    let mut resident_at_100 = 0;
    for cycle in 0..1000usize {
        let program = model(64 + (cycle % 97) * 32);
        let t = engine.register(program.clone(), Duration::from_secs(60), 1.0).unwrap();
        let inputs = program.seeded_inputs(cycle as u64);
        let pending: Vec<_> = (0..2).map(|_| engine.submit(t, inputs.clone()).unwrap()).collect();
        for p in pending {
            let r = p.wait().unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            assert_eq!(r.outputs.len(), 1);
        }
        engine.remove(t).unwrap();
        let stats = drained(&engine);
        assert_eq!(
            (stats.prepared_kernels, stats.prepared_modules, stats.weight_bytes),
            (0, 0, 0),
            "cycle {cycle}: the removed tenant left state behind"
        );
        // Its id stays retired; the engine forgets everything else about it.
        assert!(matches!(engine.metrics(t), Err(EngineError::TenantRemoved(_))));
        assert!(matches!(engine.submit(t, inputs), Err(EngineError::TenantRemoved(_))));
        if cycle == 100 {
            resident_at_100 = resident_bytes();
        }
    }
    let grown = resident_bytes().saturating_sub(resident_at_100);
    // 900 more cycles, each with new kernels, programs, arenas and weights:
    // a leak of even 16 KiB a cycle would show.
    assert!(grown < 16 << 20, "resident memory grew by {} KiB over 900 cycles", grown >> 10);
}
