//! The engine's public API under arbitrary use: any sequence of
//! registrations (with any objective and weight), submissions (to any
//! tenant, with any inputs), removals and queries returns typed errors,
//! never panics, and every accepted request is answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use weft::engine::{Backend, Engine, EngineConfig, EngineError, Pending, RequestError, Tenant};
use weft::graph::builder::GraphBuilder;
use weft::graph::DType;
use weft::kir::{HostBuffer, Type};
use weft::lower::{lower, LowerOptions, Program};

fn model() -> Arc<Program> {
    let mut g = GraphBuilder::new("misuse");
    let x = g.input("x", DType::F32, &[2, 32]);
    let y = g.relu(x).unwrap();
    g.output(y);
    Arc::new(lower(&g.finish(), &LowerOptions::default()).unwrap())
}

#[derive(Clone, Debug)]
enum Op {
    Register { slo: Duration, weight: f64 },
    Submit { tenant: u32, inputs: u8 },
    Remove { tenant: u32 },
    Metrics { tenant: u32 },
    Stats,
}

fn slo() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(60)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_nanos),
    ]
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(1.0),
        Just(f64::MAX),
        any::<f64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (slo(), weight()).prop_map(|(slo, weight)| Op::Register { slo, weight }),
        4 => (0u32..6, 0u8..4).prop_map(|(tenant, inputs)| Op::Submit { tenant, inputs }),
        1 => (0u32..6).prop_map(|tenant| Op::Remove { tenant }),
        1 => (0u32..6).prop_map(|tenant| Op::Metrics { tenant }),
        1 => Just(Op::Stats),
    ]
}

/// Inputs of kind `k`: the right ones, none, the wrong length, the wrong type.
fn inputs(program: &Program, k: u8) -> Vec<HostBuffer> {
    match k {
        0 => program.seeded_inputs(7),
        1 => Vec::new(),
        2 => vec![HostBuffer::zeros(Type::F32, 3)],
        _ => vec![HostBuffer::zeros(Type::I32, 64)],
    }
}

fn answered(p: Pending) -> Result<(), RequestError> {
    let started = Instant::now();
    loop {
        if let Some(answer) = p.try_wait() {
            return answer.map(|_| ());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "an accepted request was never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_use_of_the_api_gets_typed_answers(ops in proptest::collection::vec(op(), 1..24)) {
        let program = model();
        let engine = Engine::new(Backend::Interp, EngineConfig { max_queue: 4, ..EngineConfig::default() }).unwrap();
        let mut pending = Vec::new();
        let mut registered: Vec<Tenant> = Vec::new();
        for op in ops {
            match op {
                Op::Register { slo, weight } => match engine.register(program.clone(), slo, weight) {
                    Ok(t) => {
                        let secs = slo.as_secs_f64();
                        prop_assert!(secs > 0.0 && weight > 0.0 && weight.is_finite(), "accepted {slo:?} {weight}");
                        registered.push(t);
                    }
                    Err(e @ EngineError::Register { .. }) => {
                        prop_assert!(slo.is_zero() || !(weight > 0.0 && weight.is_finite()), "refused {slo:?} {weight}: {e}");
                        prop_assert!(e.to_string().contains("SLO") || e.to_string().contains("weight"), "{e}");
                    }
                    Err(e) => prop_assert!(false, "unexpected registration error {e}"),
                },
                Op::Submit { tenant, inputs: k } => match engine.submit(Tenant(tenant), inputs(&program, k)) {
                    Ok(p) => {
                        prop_assert_eq!(k, 0, "bad inputs were accepted");
                        pending.push(p);
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                },
                Op::Remove { tenant } => {
                    let known = registered.contains(&Tenant(tenant));
                    let result = engine.remove(Tenant(tenant));
                    prop_assert!(known || result.is_err(), "removed a tenant never registered");
                }
                Op::Metrics { tenant } => {
                    let _ = engine.metrics(Tenant(tenant));
                }
                Op::Stats => {
                    let _ = engine.stats();
                }
            }
        }
        for p in pending {
            match answered(p) {
                Ok(()) | Err(RequestError::Rejected(_)) => {}
                Err(e) => prop_assert!(false, "an accepted request failed: {e}"),
            }
        }
    }
}
