//! The evaluation harness: prediction error on held-out co-locations,
//! measured on the **simulator** (`weft-sim`). Every figure it reports is a
//! simulator figure, not a GPU result.
//!
//! 1. **Corpus.** Programs of the kinds tenants run: ResNet-18 lowered at
//!    small image sizes, small builder graphs (a conv net, an MLP head), and
//!    `weft-kernels` reference kernels (vector add, SGEMM, row sum, row
//!    softmax) as one-kernel programs.
//! 2. **Co-locations.** A random mix of 2–5 tenants, each a random window of
//!    a corpus program, planned into bundles by [`weft_pack::plan`] under a
//!    random policy (coalesce, constrain or auto; knob 0.5–1): every planned
//!    bundle is a co-location. The training stream and the held-out set
//!    come from different mixes (disjoint seeds).
//! 3. **Measurement.** Each bundle runs once on a [`SimGpu`] (with its
//!    hidden effects and noise); each kernel of the corpus is also profiled
//!    alone once, for the baselines' solo tables.
//! 4. **Training.** Each predictor observes the training stream in order
//!    (predict, then learn), as it would online.
//! 5. **Scoring.** On the held-out bundles, frozen: absolute percentage
//!    error of the predicted total, `|pred - meas| / meas`; median, p95 and
//!    mean per predictor ([`EvalReport`], printed as a table by `Display`).

use std::fmt;
use std::sync::Arc;

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use weft_graph::builder::GraphBuilder;
use weft_graph::{DType, Graph, GraphError};
use weft_kir::KernelDef;
use weft_kir::Target;
use weft_lower::{lower, BufferId, BufferInfo, BufferKind, LowerError, LowerOptions, Program, Step};
use weft_pack::{plan, Bundle, PackMode, Policy, ScheduleError, TenantId};
use weft_sim::{SimError, SimGpu, SimSpec};

use weft_predict::{
    Adaptive, AdaptiveConfig, BundleFeatures, DeviceModel, FeatureExtractor, Measured, ModelLevel, OperatorLevel,
    Predictor, RooflinePrior,
};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("evaluation corpus: building graph `{graph}`: {source}")]
    Graph { graph: String, source: GraphError },
    #[error("evaluation corpus: lowering `{graph}`: {source}")]
    Lower { graph: String, source: LowerError },
    #[error("evaluation: planning a co-location: {0}")]
    Schedule(#[from] ScheduleError),
    #[error("evaluation: {0}")]
    Sim(#[from] SimError),
    #[error("evaluation: {what} is empty (train {train}, test {test} bundles asked)")]
    Empty { what: &'static str, train: usize, test: usize },
}

/// What to evaluate on.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub seed: u64,
    /// Bundles in the training stream.
    pub train: usize,
    /// Held-out bundles scored.
    pub test: usize,
    /// Most steps of a tenant's program in one mix (keeps plans small).
    pub window: usize,
    pub limits: Target,
    /// The simulated device (its hidden effects are what is learned).
    pub spec: SimSpec,
    pub adaptive: AdaptiveConfig,
}

impl Default for EvalConfig {
    fn default() -> EvalConfig {
        EvalConfig {
            seed: 1,
            train: 1500,
            test: 400,
            window: 8,
            limits: Target::sm_90(),
            spec: SimSpec::h100_like(),
            adaptive: AdaptiveConfig::default(),
        }
    }
}

/// One predictor's held-out error, in percent.
#[derive(Clone, PartialEq, Debug)]
pub struct PredictorScore {
    pub name: String,
    pub median_ape: f64,
    pub p95_ape: f64,
    pub mean_ape: f64,
}

/// Held-out errors of every predictor (simulator figures).
#[derive(Clone, PartialEq, Debug)]
pub struct EvalReport {
    pub scores: Vec<PredictorScore>,
    pub train_bundles: usize,
    pub test_bundles: usize,
    /// Mean slots per held-out bundle.
    pub mean_width: f64,
    pub distinct_kernels: usize,
}

impl EvalReport {
    /// The score of the predictor whose name starts with `prefix`.
    pub fn score(&self, prefix: &str) -> Option<&PredictorScore> {
        self.scores.iter().find(|s| s.name.starts_with(prefix))
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "predictor error on {} held-out co-locations (SIMULATOR, not a GPU result; trained on {} bundles; \
             {:.2} slots per bundle; {} distinct kernels)",
            self.test_bundles, self.train_bundles, self.mean_width, self.distinct_kernels
        )?;
        writeln!(f, "{:<56} {:>10} {:>10} {:>10}", "predictor", "median %", "p95 %", "mean %")?;
        for s in &self.scores {
            writeln!(f, "{:<56} {:>10.2} {:>10.2} {:>10.2}", s.name, s.median_ape, s.p95_ape, s.mean_ape)?;
        }
        Ok(())
    }
}

/// A co-location with its features and simulator measurement.
#[derive(Clone, Debug)]
pub struct Sample {
    pub bundle: Bundle,
    pub features: BundleFeatures,
    pub measured: Measured,
}

/// The evaluation corpus: lowered ResNet-18s, small builder graphs and
/// reference kernels, as programs.
pub fn corpus(seed: u64) -> Result<Vec<Program>, EvalError> {
    let options = LowerOptions::default();
    let lowered = |graph: Result<Graph, GraphError>, name: &str| -> Result<Program, EvalError> {
        let graph = graph.map_err(|source| EvalError::Graph { graph: name.to_string(), source })?;
        lower(&graph, &options).map_err(|source| EvalError::Lower { graph: name.to_string(), source })
    };
    let mut programs = vec![
        lowered(weft_graph::models::resnet18(seed, 1, 32, 10), "resnet18 32x32")?,
        lowered(weft_graph::models::resnet18(seed + 1, 1, 16, 10), "resnet18 16x16")?,
        lowered(small_conv_net(seed + 2), "small conv net")?,
        lowered(mlp_head(seed + 3), "mlp head")?,
    ];
    let kernels = [
        weft_kernels::vector_add(1 << 16),
        weft_kernels::vector_add(1 << 20),
        weft_kernels::sgemm(128, 128, 128, Default::default()),
        weft_kernels::sgemm(256, 256, 512, Default::default()),
        weft_kernels::row_sum(512, 1024),
        weft_kernels::row_softmax(256, 512),
    ];
    programs.extend(kernels.into_iter().map(one_kernel_program));
    Ok(programs)
}

/// Conv → ReLU → max pool → conv/2 → ReLU → global pool → Gemm.
fn small_conv_net(seed: u64) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::with_seed("small_conv_net", seed);
    let x = b.input("input", DType::F32, &[1, 8, 32, 32]);
    let w1 = b.he_weight("w1", &[32, 8, 3, 3], 72);
    let mut h = b.conv2d(x, w1, None, 1, 1, 1)?;
    h = b.relu(h)?;
    h = b.max_pool(h, 2, 2, 0)?;
    let w2 = b.he_weight("w2", &[64, 32, 3, 3], 288);
    h = b.conv2d(h, w2, None, 2, 1, 1)?;
    h = b.relu(h)?;
    h = b.global_avg_pool(h)?;
    h = b.flatten(h, 1)?;
    let fc = b.random_constant("fc", &[10, 64], 0.1);
    h = b.gemm(h, fc, None, true)?;
    b.output(h);
    Ok(b.finish())
}

/// Two Gemm layers with a ReLU between, batch 16.
fn mlp_head(seed: u64) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::with_seed("mlp_head", seed);
    let x = b.input("input", DType::F32, &[16, 512]);
    let w1 = b.random_constant("w1", &[1024, 512], 0.05);
    let mut h = b.gemm(x, w1, None, true)?;
    h = b.relu(h)?;
    let w2 = b.random_constant("w2", &[256, 1024], 0.03);
    h = b.gemm(h, w2, None, true)?;
    b.output(h);
    Ok(b.finish())
}

/// A program of one kernel whose parameters are bound to buffers 0, 1, ….
fn one_kernel_program(kernel: KernelDef) -> Program {
    let mut program = Program { name: kernel.name.clone(), ..Program::default() };
    let mut args = Vec::new();
    for (_, param) in kernel.params.iter() {
        let (elem, len) = match param.kind {
            weft_kir::ParamKind::Buffer { elem, len, .. } => (elem, len as usize),
            weft_kir::ParamKind::Scalar { ty } => (ty, 1),
        };
        args.push(program.buffers.push(BufferInfo {
            name: param.name.clone(),
            elem,
            shape: vec![len],
            kind: BufferKind::Activation,
        }));
    }
    let args: Vec<BufferId> = args;
    program.steps.push(Step { kernel: Arc::new(kernel), args, nodes: vec![] });
    program
}

struct Draw(rand_xoshiro::SplitMix64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.0.next_u64() % n as u64) as usize
        }
    }
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// At least `n` co-locations (planned bundles) from random tenant mixes of
/// `programs`, drawn with `seed`.
pub fn colocations(
    programs: &[Program],
    n: usize,
    window: usize,
    limits: &Target,
    seed: u64,
) -> Result<Vec<Bundle>, EvalError> {
    let mut draw = Draw(rand_xoshiro::SplitMix64::seed_from_u64(seed));
    let mut out = Vec::with_capacity(n);
    if programs.is_empty() {
        return Ok(out);
    }
    while out.len() < n {
        let tenants = 2 + draw.below(4);
        let mut mix: Vec<Program> = Vec::with_capacity(tenants);
        for _ in 0..tenants {
            let p = &programs[draw.below(programs.len())];
            let len = p.steps.len();
            let start = draw.below(len);
            let end = (start + 1 + draw.below(window.max(1))).min(len);
            let mut w = p.clone();
            w.steps = p.steps[start..end].to_vec();
            mix.push(w);
        }
        let mode = [PackMode::Coalesce, PackMode::Constrain, PackMode::Auto][draw.below(3)];
        let policy = Policy::new(mode, 0.8 + 0.2 * draw.unit());
        let ids: Vec<(TenantId, &Program)> = mix.iter().enumerate().map(|(i, p)| (TenantId(i as u32), p)).collect();
        let planned = plan(&ids, limits, &policy)?;
        // Only co-locations: a bundle of one slot is a solo launch.
        out.extend(planned.bundles.into_iter().filter(|b| b.slots.len() >= 2).map(|b| b.bundle));
    }
    out.truncate(n);
    Ok(out)
}

/// Features and one simulator measurement of each bundle.
pub fn measure(
    bundles: Vec<Bundle>,
    sim: &mut SimGpu,
    extractor: &mut FeatureExtractor,
) -> Result<Vec<Sample>, EvalError> {
    bundles
        .into_iter()
        .map(|bundle| {
            let t = sim.run_bundle(&bundle)?;
            let features = extractor.bundle(&bundle, &weft_pack::ResourceTable::new());
            Ok(Sample { bundle, features, measured: t })
        })
        .collect()
}

/// Absolute percentage error of `predicted` against `measured`.
pub fn ape(predicted: f64, measured: f64) -> f64 {
    if measured > 0.0 && predicted.is_finite() {
        100.0 * (predicted - measured).abs() / measured
    } else {
        f64::INFINITY
    }
}

/// The `q`-quantile (nearest rank) of `values`: the project's one
/// percentile rule.
pub use weft_sched::quantile;

/// Scores `predictor` on `test` (frozen: no learning).
pub fn score(predictor: &dyn Predictor, test: &[Sample]) -> PredictorScore {
    let errors: Vec<f64> =
        test.iter().map(|s| ape(predictor.predict(&s.features).total_us, s.measured.total_us)).collect();
    let mean = if errors.is_empty() { f64::NAN } else { errors.iter().sum::<f64>() / errors.len() as f64 };
    PredictorScore {
        name: predictor.name().to_string(),
        median_ape: quantile(&errors, 0.5),
        p95_ape: quantile(&errors, 0.95),
        mean_ape: mean,
    }
}

/// Runs the whole evaluation (see the module docs).
pub fn evaluate(config: &EvalConfig) -> Result<EvalReport, EvalError> {
    let programs = corpus(config.seed)?;
    let device = DeviceModel::sm_90_with(config.limits);
    let mut extractor = FeatureExtractor::new(device);
    let mut sim = SimGpu::new(config.limits, config.spec.clone(), config.seed ^ 0x51u64);

    let train_bundles = colocations(&programs, config.train, config.window, &config.limits, config.seed * 2 + 1)?;
    let test_bundles = colocations(&programs, config.test, config.window, &config.limits, config.seed * 2 + 2)?;
    if train_bundles.is_empty() || test_bundles.is_empty() {
        return Err(EvalError::Empty { what: "the co-location set", train: config.train, test: config.test });
    }

    // Baselines profile every kernel alone once.
    let mut model_level = ModelLevel::new();
    let mut operator_level = OperatorLevel::new();
    let mut kernels: Vec<Arc<KernelDef>> = Vec::new();
    for b in train_bundles.iter().chain(&test_bundles) {
        for s in b.slots() {
            if !kernels.iter().any(|k| Arc::ptr_eq(k, &s.kernel)) {
                kernels.push(s.kernel.clone());
            }
        }
    }
    let mut bodies = std::collections::HashSet::new();
    for k in &kernels {
        let t = sim.run_kernel_solo(k)?;
        let f = extractor.solo(k, &weft_pack::ResourceTable::new());
        if let Some(s) = f.slots.first() {
            bodies.insert(s.body);
            model_level.record_solo(s.body, t.total_us);
            operator_level.record_solo(s.body, t.total_us);
        }
    }

    let train = measure(train_bundles, &mut sim, &mut extractor)?;
    let test = measure(test_bundles, &mut sim, &mut extractor)?;

    let mut predictors: Vec<Box<dyn Predictor>> = vec![
        Box::new(Adaptive::new(RooflinePrior::new(), config.adaptive)),
        Box::new(RooflinePrior::new()),
        Box::new(operator_level),
        Box::new(model_level),
    ];
    for s in &train {
        for p in predictors.iter_mut() {
            p.observe(&s.features, &s.measured);
        }
    }
    let scores = predictors.iter().map(|p| score(p.as_ref(), &test)).collect();
    let mean_width = test.iter().map(|s| s.bundle.slots().len()).sum::<usize>() as f64 / test.len() as f64;
    Ok(EvalReport {
        scores,
        train_bundles: train.len(),
        test_bundles: test.len(),
        mean_width,
        distinct_kernels: bodies.len(),
    })
}
