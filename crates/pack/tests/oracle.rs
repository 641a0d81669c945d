//! The packer's oracle: on the interpreter, a bundle's outputs are
//! bit-identical to running each slot alone (DESIGN.md, principle 2).
//!
//! Slots are drawn from the reference kernels (vector add, tiled SGEMM in two
//! block widths, shuffle/barrier row reductions and softmax) at random small
//! shapes, and from the layers of lowered models (a small conv net with two
//! tenants' weights, and ResNet-18 at 32×32), each fed the buffers it sees
//! when its program runs. Tenant mixes repeat kernels with different inputs
//! (different tenants of one model), and every slot gets a random budget:
//! `Full` (coalesced) or `Blocks(1..=logical)` (constrained, persistent
//! blocks looping over the logical grid). Each bundle runs once on the
//! interpreter; every argument buffer of every slot must equal, bit for bit,
//! that slot's solo [`Interpreter::run`] of the kernel as given (so guards the
//! builder inserted must not change in-bounds results either).

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use proptest::sample::Index;
use weft_graph::builder::{GraphBuilder, SplitMix64};
use weft_graph::dtype::DType;
use weft_graph::graph::Graph;
use weft_graph::models::resnet18;
use weft_graph::GraphError;
use weft_interp::Interpreter;
use weft_kernels::cases::{row_softmax_case, row_sum_case, sgemm_case, vector_add_case};
use weft_kernels::SgemmTiles;
use weft_kir::{ArgValue, HostBuffer, KernelDef, Type};
use weft_lower::{lower, BufferKind, LowerOptions, Program};
use weft_pack::{
    launch_host, run_program, Budget, BundleBuilder, ExecError, Executor, Intercepted, Interceptor, InterpExecutor,
    LaunchArg, Slot, TenantId, Timing,
};

/// 256-thread SGEMM tiles.
const WIDE: SgemmTiles = SgemmTiles { bm: 32, bn: 32, bk: 8, tm: 2, tn: 2 };
/// 64-thread SGEMM tiles: a slot narrower than the bundle's block.
const NARROW: SgemmTiles = SgemmTiles { bm: 16, bn: 16, bk: 8, tm: 2, tn: 2 };

// ---- lowered model layers ------------------------------------------------

/// One kernel of a lowered program and the arguments it is run with.
struct Layer {
    kernel: Arc<KernelDef>,
    args: Vec<ArgValue>,
    /// Which arguments are weights (kept as they are for every tenant).
    weight: Vec<bool>,
}

/// Records each launch's arguments (read back from the executor's buffers)
/// before running it.
struct Recorder {
    seen: Vec<Vec<ArgValue>>,
}

impl Interceptor for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn launch(
        &mut self,
        inner: &mut dyn Executor,
        bundle: &weft_pack::Bundle,
        args: &[Vec<LaunchArg>],
    ) -> Result<Timing, ExecError> {
        for slot_args in args {
            let mut values = Vec::with_capacity(slot_args.len());
            for a in slot_args {
                values.push(match *a {
                    LaunchArg::Buffer(h) => ArgValue::Buffer(inner.download(h)?),
                    LaunchArg::Scalar(s) => ArgValue::Scalar(s),
                });
            }
            self.seen.push(values);
        }
        inner.launch(bundle, args)
    }
}

/// Lowers `graph`, runs it once on a seeded input and returns every step with
/// the buffers it saw.
fn layers(graph: &Graph, seed: u64) -> Vec<Layer> {
    let program: Program = lower(graph, &LowerOptions::default()).expect("the model lowers");
    let mut rng = SplitMix64::new(seed);
    let inputs: Vec<HostBuffer> = program
        .inputs
        .iter()
        .map(|b| {
            let info = &program.buffers[b.buffer];
            let values: Vec<f64> = (0..info.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
            HostBuffer::from_f64(info.elem, &values)
        })
        .collect();
    let mut recorder = Intercepted { inner: InterpExecutor::default(), hooks: Recorder { seen: Vec::new() } };
    let shared = Arc::new(program.clone());
    run_program(&mut recorder, shared, &inputs, |_| {}).expect("the model runs");
    let seen = recorder.hooks.seen;
    program
        .steps
        .iter()
        .zip(seen)
        .map(|(step, args)| Layer {
            kernel: step.kernel.clone(),
            weight: step.args.iter().map(|&b| program.buffers[b].kind == BufferKind::Weight).collect(),
            args,
        })
        .collect()
}

/// Conv 3×3 → ReLU → max pool → conv 3×3/2 → ReLU → global average pool →
/// flatten → Gemm → softmax, on a 1×3×12×12 input.
fn small_net(seed: u64) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::with_seed("small_net", seed);
    let x = b.input("input", DType::F32, &[1, 3, 12, 12]);
    let w1 = b.he_weight("w1", &[8, 3, 3, 3], 27);
    let bias1 = b.random_constant("b1", &[8], 0.1);
    let mut h = b.conv2d(x, w1, Some(bias1), 1, 1, 1)?;
    h = b.relu(h)?;
    h = b.max_pool(h, 2, 2, 0)?;
    let w2 = b.he_weight("w2", &[16, 8, 3, 3], 72);
    h = b.conv2d(h, w2, None, 2, 1, 1)?;
    h = b.relu(h)?;
    h = b.global_avg_pool(h)?;
    h = b.flatten(h, 1)?;
    let fc = b.random_constant("fc", &[10, 16], 0.25);
    h = b.gemm(h, fc, None, true)?;
    h = b.softmax(h, 1)?;
    b.output(h);
    Ok(b.finish())
}

/// The lowered models' layers: two tenants of the small net (different
/// weights, same kernels) and ResNet-18 at 32×32, built once per test binary.
fn models() -> &'static [Vec<Layer>] {
    static MODELS: OnceLock<Vec<Vec<Layer>>> = OnceLock::new();
    MODELS.get_or_init(|| {
        vec![
            layers(&small_net(1).expect("small net builds"), 11),
            layers(&small_net(2).expect("small net builds"), 12),
            layers(&resnet18(3, 1, 32, 10).expect("resnet18 builds"), 13),
        ]
    })
}

// ---- kernels and tenants ---------------------------------------------------

/// A kernel to put in slots.
#[derive(Clone, Debug)]
enum Kind {
    VectorAdd { n: u32 },
    Sgemm { m: u32, n: u32, k: u32, narrow: bool },
    RowSum { rows: u32, cols: u32 },
    RowSoftmax { rows: u32, cols: u32 },
    Layer { model: usize, step: Index },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u32..=700).prop_map(|n| Kind::VectorAdd { n }),
        (1u32..=48, 1u32..=48, 1u32..=24, any::<bool>()).prop_map(|(m, n, k, narrow)| Kind::Sgemm { m, n, k, narrow }),
        (1u32..=5, 1u32..=600).prop_map(|(rows, cols)| Kind::RowSum { rows, cols }),
        (1u32..=5, 1u32..=400).prop_map(|(rows, cols)| Kind::RowSoftmax { rows, cols }),
        (0usize..3, any::<Index>()).prop_map(|(model, step)| Kind::Layer { model, step }),
    ]
}

/// A slot as drawn: which of the case's kinds, the tenant's input seed, and
/// its budget (`None`: `Full`; `Some(i)`: `Blocks(1 + i mod logical)`).
type Draw = (Index, u64, Option<u32>);

/// A kind's kernel, built once per case so tenants of one kind share the `Arc`.
fn kernel_of(kind: &Kind) -> Arc<KernelDef> {
    Arc::new(match *kind {
        Kind::VectorAdd { n } => weft_kernels::vector_add(n),
        Kind::Sgemm { m, n, k, narrow } => weft_kernels::sgemm(m, n, k, if narrow { NARROW } else { WIDE }),
        Kind::RowSum { rows, cols } => weft_kernels::row_sum(rows, cols),
        Kind::RowSoftmax { rows, cols } => weft_kernels::row_softmax(rows, cols),
        Kind::Layer { model, step } => {
            let layers = &models()[model];
            return layers[step.index(layers.len())].kernel.clone();
        }
    })
}

/// A tenant's inputs for `kind`, from its seed.
fn inputs_of(kind: &Kind, seed: u64) -> Vec<ArgValue> {
    match *kind {
        Kind::VectorAdd { n } => vector_add_case(n, seed).args,
        Kind::Sgemm { m, n, k, narrow } => sgemm_case(m, n, k, if narrow { NARROW } else { WIDE }, seed).args,
        Kind::RowSum { rows, cols } => row_sum_case(rows, cols, seed).args,
        Kind::RowSoftmax { rows, cols } => row_softmax_case(rows, cols, seed).args,
        Kind::Layer { model, step } => {
            let layers = &models()[model];
            let layer = &layers[step.index(layers.len())];
            // Another tenant of the same model: the same weights, its own
            // activations (the recorded ones, perturbed by its seed).
            let mut rng = SplitMix64::new(seed);
            layer
                .args
                .iter()
                .zip(&layer.weight)
                .map(|(arg, &weight)| match arg {
                    ArgValue::Buffer(b) if !weight && b.elem() == Type::F32 && !seed.is_multiple_of(4) => {
                        let values: Vec<f64> = b.to_f64_vec().iter().map(|v| v + rng.uniform(-0.5, 0.5)).collect();
                        ArgValue::Buffer(HostBuffer::from_f64(Type::F32, &values))
                    }
                    other => other.clone(),
                })
                .collect()
        }
    }
}

/// Runs `tenants` as one bundle and alone, and checks every buffer of every
/// slot is bit-identical.
fn bundle_equals_solo(tenants: &[(Arc<KernelDef>, Vec<ArgValue>, Budget)]) -> Result<(), TestCaseError> {
    let interp = Interpreter::new();
    let mut builder = BundleBuilder::new();
    for (t, (kernel, _, budget)) in tenants.iter().enumerate() {
        let args = (0..kernel.params.len() as u32).map(weft_lower::BufferId::from_u32).collect();
        builder.push(Slot { kernel: kernel.clone(), tenant: TenantId(t as u32), budget: *budget, args });
    }
    let bundle = builder.build().map_err(|e| TestCaseError::fail(format!("building the bundle: {e}")))?;
    let mut bundled: Vec<Vec<ArgValue>> = tenants.iter().map(|(_, args, _)| args.clone()).collect();
    launch_host(&mut InterpExecutor::default(), &bundle, &mut bundled)
        .map_err(|e| TestCaseError::fail(format!("bundle: {e}")))?;
    for (s, ((kernel, args, budget), got)) in tenants.iter().zip(&bundled).enumerate() {
        let mut solo = args.clone();
        interp.run(kernel, &mut solo).map_err(|e| TestCaseError::fail(format!("solo slot {s}: {e}")))?;
        for (p, (want, got)) in solo.iter().zip(got).enumerate() {
            prop_assert!(
                want == got,
                "slot {s} (kernel `{}`, budget {budget:?}): parameter {p} differs from the solo run",
                kernel.name
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bundles_equal_solo_runs_bit_for_bit(
        kinds in prop::collection::vec(kind(), 1..=3),
        draws in prop::collection::vec((any::<Index>(), any::<u64>(), prop::option::of(any::<u32>())), 1..=6),
    ) {
        let kernels: Vec<Arc<KernelDef>> = kinds.iter().map(kernel_of).collect();
        let tenants: Vec<(Arc<KernelDef>, Vec<ArgValue>, Budget)> = draws
            .iter()
            .map(|(which, seed, budget): &Draw| {
                let i = which.index(kinds.len());
                let logical = kernels[i].launch.num_blocks().min(u32::MAX as u64) as u32;
                let budget = budget.map_or(Budget::Full, |b| Budget::Blocks(1 + b % logical.max(1)));
                (kernels[i].clone(), inputs_of(&kinds[i], *seed), budget)
            })
            .collect();
        bundle_equals_solo(&tenants)?;
    }
}

/// Persistent slots (one block looping over the whole grid) of kernels with
/// shuffles and barriers, beside coalesced and narrower slots.
#[test]
fn persistent_shuffle_and_barrier_slots_equal_solo() {
    let kinds = [
        Kind::RowSum { rows: 7, cols: 1000 },
        Kind::RowSoftmax { rows: 5, cols: 777 },
        Kind::Sgemm { m: 70, n: 45, k: 33, narrow: false },
        Kind::Sgemm { m: 33, n: 20, k: 9, narrow: true },
        Kind::VectorAdd { n: 1500 },
    ];
    let mut tenants = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let kernel = kernel_of(kind);
        // Every kernel persistent on one block, then again coalesced with another tenant's inputs.
        tenants.push((kernel.clone(), inputs_of(kind, 100 + i as u64), Budget::Blocks(1)));
        tenants.push((kernel, inputs_of(kind, 200 + i as u64), Budget::Full));
    }
    let result = bundle_equals_solo(&tenants);
    assert!(result.is_ok(), "{result:?}");
}
