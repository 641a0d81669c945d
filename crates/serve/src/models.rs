//! The models being served: each is one lowered program registered as one
//! or more engine tenants. Loading imports, lowers and registers (the
//! engine compiles and uploads weights then, never per request); unloading
//! removes the tenants, and the engine frees their arenas and weights once
//! their admitted requests have finished.
//!
//! Inference is the one path both protocols call: [`Models::infer`] takes
//! decoded tensors, checks them against the model, submits them to one of
//! the model's tenants and waits for the engine's answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use weft::{Engine, Tenant};
use weft_kir::{HostBuffer, Type};
use weft_lower::Program;

use crate::error::InferError;
use crate::metrics::Metrics;
use crate::params::RequestParams;
use crate::repository::{self, ModelConfig, ModelEntry};

/// The default objective is this many times the model's solo latency.
pub const DEFAULT_SLO_FACTOR: f64 = 10.0;
/// The smallest default objective: one measurement of a fast model on a
/// busy host is noisy, and an objective a hiccup can miss would have
/// admission control refuse requests that were fine.
pub const MIN_DEFAULT_SLO: Duration = Duration::from_millis(100);
/// The default per-model bound on requests queued or running.
pub const DEFAULT_MAX_QUEUE: usize = 64;

/// A tensor of a model's signature.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub elem: Type,
    pub shape: Vec<usize>,
}

/// A model being served.
pub struct LoadedModel {
    pub name: String,
    pub version: String,
    pub program: Arc<Program>,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub tenants: Vec<Tenant>,
    pub slo: Duration,
    pub weight: f64,
    pub max_queue: usize,
    /// The class of requests that give none (`priority_class` in config.toml).
    pub priority_class: u8,
    next: AtomicUsize,
    in_flight: AtomicUsize,
}

impl LoadedModel {
    /// Requests of this model queued or running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A decoded request tensor.
pub struct InputTensor {
    pub name: String,
    pub data: HostBuffer,
}

/// One request's result, outputs in the model's order.
pub struct InferOutcome {
    pub model: Arc<LoadedModel>,
    pub outputs: Vec<HostBuffer>,
}

/// A repository model's state, for the repository index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    pub state: &'static str,
    pub reason: String,
}

/// Every model being served, over one engine.
pub struct Models {
    engine: Arc<Engine>,
    repository: PathBuf,
    loaded: RwLock<HashMap<String, Arc<LoadedModel>>>,
    /// Why a model last failed to load, for the index.
    failures: RwLock<HashMap<String, String>>,
    metrics: Arc<Metrics>,
}

impl Models {
    pub fn new(engine: Arc<Engine>, repository: PathBuf, metrics: Arc<Metrics>) -> Models {
        Models {
            engine,
            repository,
            loaded: RwLock::new(HashMap::new()),
            failures: RwLock::new(HashMap::new()),
            metrics,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The loaded model `name`, at `version` if given.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, InferError> {
        let model = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| InferError::UnknownModel { model: name.to_string() })?;
        match version {
            Some(v) if !v.is_empty() && v != model.version => Err(InferError::UnknownVersion {
                model: name.to_string(),
                version: v.to_string(),
                serving: model.version.clone(),
            }),
            _ => Ok(model),
        }
    }

    /// Every loaded model.
    pub fn loaded(&self) -> Vec<Arc<LoadedModel>> {
        let mut v: Vec<_> = self.loaded.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Loads every model of the repository. Blocks (compiles).
    pub fn load_all(&self) -> Result<(), InferError> {
        for entry in repository::scan(&self.repository)? {
            self.load_entry(entry)?;
        }
        Ok(())
    }

    /// (Re)loads the model `name` from the repository. Blocks (compiles).
    /// A model already loaded is replaced once the new one is ready.
    pub fn load(&self, name: &str) -> Result<Arc<LoadedModel>, InferError> {
        let entry = repository::find(&self.repository, name)?;
        self.load_entry(entry)
    }

    fn load_entry(&self, entry: ModelEntry) -> Result<Arc<LoadedModel>, InferError> {
        let name = entry.name.clone();
        let result = self.build(entry);
        let mut failures = self.failures.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(model) => {
                failures.remove(&name);
                drop(failures);
                self.metrics.record_placement(&model, &self.engine);
                let old = self.loaded.write().unwrap_or_else(|e| e.into_inner()).insert(name, model.clone());
                if let Some(old) = old {
                    self.remove_tenants(&old);
                }
                Ok(model)
            }
            Err(e) => {
                failures.insert(name, e.to_string());
                Err(e)
            }
        }
    }

    /// Unloads `name`: it takes no new requests; the engine finishes the
    /// admitted ones and then frees its tenants' memory.
    pub fn unload(&self, name: &str) -> Result<(), InferError> {
        let model = self
            .loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| InferError::UnknownModel { model: name.to_string() })?;
        self.remove_tenants(&model);
        Ok(())
    }

    fn remove_tenants(&self, model: &LoadedModel) {
        self.metrics.forget_placement(model, &self.engine);
        for &t in &model.tenants {
            // An engine that has stopped has freed everything already.
            let _ = self.engine.remove(t);
        }
    }

    /// The repository's models and whether each is served.
    pub fn index(&self) -> Result<Vec<IndexEntry>, InferError> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let failures = self.failures.read().unwrap_or_else(|e| e.into_inner());
        Ok(repository::scan(&self.repository)?
            .into_iter()
            .map(|m| match (loaded.get(&m.name), failures.get(&m.name)) {
                (Some(l), _) => {
                    IndexEntry { name: m.name, version: l.version.clone(), state: "READY", reason: String::new() }
                }
                (None, Some(why)) => {
                    IndexEntry { name: m.name, version: m.version, state: "UNAVAILABLE", reason: why.clone() }
                }
                (None, None) => {
                    IndexEntry { name: m.name, version: m.version, state: "UNAVAILABLE", reason: "unloaded".into() }
                }
            })
            .collect())
    }

    fn build(&self, entry: ModelEntry) -> Result<Arc<LoadedModel>, InferError> {
        let load_err = |stage: &str, source: Box<dyn std::error::Error + Send + Sync + 'static>| InferError::Load {
            model: entry.name.clone(),
            stage: stage.to_string(),
            source,
        };
        let config: &ModelConfig = &entry.config;
        let options = weft_graph::onnx::ImportOptions {
            shapes: config.shapes.clone(),
            dims: config.dims.clone(),
            ..Default::default()
        };
        let graph = weft_graph::onnx::import_onnx_file(&entry.path, &options)
            .map_err(|e| load_err(&format!("importing {}", entry.path.display()), e.into()))?;
        let mut program = weft_lower::lower(&graph, &Default::default()).map_err(|e| load_err("lowering", e.into()))?;
        program.name = entry.name.clone();
        let program = Arc::new(program);
        let info = |b: &weft_lower::Binding| TensorInfo {
            name: b.name.clone(),
            elem: program.buffers[b.buffer].elem,
            shape: b.shape.clone(),
        };
        let inputs: Vec<TensorInfo> = program.inputs.iter().map(info).collect();
        let outputs: Vec<TensorInfo> = program.outputs.iter().map(info).collect();
        let weight = config.weight.unwrap_or(1.0);
        let slo = match config.slo_ms {
            Some(ms) => Duration::from_secs_f64(ms / 1e3),
            None => self.default_slo(&program, weight).map_err(|e| load_err("deriving its objective", e.into()))?,
        };
        let mut tenants = Vec::new();
        for _ in 0..config.instances.unwrap_or(1) {
            match self.engine.register(program.clone(), slo, weight) {
                Ok(t) => tenants.push(t),
                Err(e) => {
                    for t in tenants {
                        let _ = self.engine.remove(t);
                    }
                    return Err(load_err("registering its tenants", e.into()));
                }
            }
        }
        Ok(Arc::new(LoadedModel {
            name: entry.name,
            version: entry.version,
            program,
            inputs,
            outputs,
            tenants,
            slo,
            weight,
            max_queue: config.max_queue.unwrap_or(DEFAULT_MAX_QUEUE),
            priority_class: config.priority_class.unwrap_or(0),
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }))
    }

    /// The objective of a model without `slo_ms`: [`DEFAULT_SLO_FACTOR`]
    /// times its solo latency, the larger of the scheduler's prediction for
    /// the target device and one request measured on this engine (the
    /// prediction is for a GPU; the interpreter is far slower, and an
    /// objective it can never meet would have admission refuse everything).
    fn default_slo(&self, program: &Arc<Program>, weight: f64) -> Result<Duration, weft::EngineError> {
        let predicted_us = predicted_solo_us(program).unwrap_or(0.0);
        let probe = self.engine.register(program.clone(), Duration::from_secs(3600), weight)?;
        let inputs: Vec<HostBuffer> = program
            .inputs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let info = &program.buffers[b.buffer];
                weft_lower::random_buffer(info.elem, info.len(), i as u64)
            })
            .collect();
        let started = Instant::now();
        let measured = self.engine.submit(probe, inputs).map(|p| p.wait());
        let measured_us = started.elapsed().as_secs_f64() * 1e6;
        let _ = self.engine.remove(probe);
        let measured_us = match measured {
            Ok(Ok(r)) => r.latency.as_secs_f64() * 1e6,
            _ => measured_us,
        };
        let solo_us = predicted_us.max(measured_us);
        Ok(Duration::from_secs_f64(solo_us * DEFAULT_SLO_FACTOR / 1e6).max(MIN_DEFAULT_SLO))
    }

    /// Runs one request of `model` (version `version` if given): inputs by
    /// name, in any order.
    pub fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        inputs: Vec<InputTensor>,
    ) -> Result<InferOutcome, InferError> {
        self.infer_with(name, version, inputs, RequestParams::default())
    }

    /// [`Models::infer`] with the request's own deadline and priority class
    /// ([`crate::params`]), each overriding the model's.
    pub fn infer_with(
        &self,
        name: &str,
        version: Option<&str>,
        inputs: Vec<InputTensor>,
        params: RequestParams,
    ) -> Result<InferOutcome, InferError> {
        let model = self.get(name, version)?;
        let started = Instant::now();
        let result = self.run(&model, inputs, params);
        let elapsed = started.elapsed();
        if let Ok((_, engine_latency)) = &result {
            self.metrics.record_success(&model, elapsed, *engine_latency);
        }
        result.map(|(outputs, _)| InferOutcome { model, outputs })
    }

    /// Counts a failed request of a loaded model (the protocols call this
    /// for every failure, decoding included, so each is counted once).
    pub fn record_failure(&self, name: &str, error: &InferError) {
        if let Ok(model) = self.get(name, None) {
            self.metrics.record_failure(&model.name, &model.version, error.reason());
        }
    }

    fn run(
        &self,
        model: &Arc<LoadedModel>,
        inputs: Vec<InputTensor>,
        params: RequestParams,
    ) -> Result<(Vec<HostBuffer>, Duration), InferError> {
        let mut by_name: HashMap<String, HostBuffer> = HashMap::new();
        for t in inputs {
            if !model.inputs.iter().any(|i| i.name == t.name) {
                return Err(InferError::UnknownInput { input: t.name, inputs: names(&model.inputs) });
            }
            if by_name.contains_key(&t.name) {
                return Err(InferError::DuplicateInput { input: t.name });
            }
            by_name.insert(t.name, t.data);
        }
        let mut ordered = Vec::with_capacity(model.inputs.len());
        for info in &model.inputs {
            let data =
                by_name.remove(&info.name).ok_or_else(|| InferError::MissingInput { input: info.name.clone() })?;
            if data.elem() != info.elem || data.len() != info.shape.iter().product::<usize>() {
                return Err(InferError::Data {
                    input: info.name.clone(),
                    problem: format!(
                        "{} elements of {:?} given, the model takes {:?} of {:?}",
                        data.len(),
                        data.elem(),
                        info.shape,
                        info.elem
                    ),
                });
            }
            ordered.push(data);
        }
        // The model's own queue bound, over all its instances.
        let queued = model.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(&model.in_flight);
        if queued >= model.max_queue {
            return Err(InferError::QueueFull { model: model.name.clone(), limit: model.max_queue });
        }
        let tenant = model.tenants[model.next.fetch_add(1, Ordering::Relaxed) % model.tenants.len()];
        let options = weft::SubmitOptions {
            deadline: params.deadline,
            priority: params.priority_class.unwrap_or(model.priority_class),
        };
        let pending = self
            .engine
            .submit_with(tenant, ordered, options)
            .map_err(|source| InferError::Engine { model: model.name.clone(), source })?;
        let response = pending.wait().map_err(|source| InferError::Request { model: model.name.clone(), source })?;
        self.metrics.record_slo(model, response.met_slo);
        Ok((response.outputs, response.latency))
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn names(tensors: &[TensorInfo]) -> String {
    tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The scheduler's predicted solo latency of one request, µs, on the
/// device the engine plans for.
fn predicted_solo_us(program: &Arc<Program>) -> Option<f64> {
    let predictor = weft_predict::Adaptive::new(weft_predict::RooflinePrior::new(), Default::default());
    let mut scheduler = weft_sched::Scheduler::new(
        weft_sched::SchedulerConfig::slo_aware(1.0),
        weft_kir::Target::sm_90(),
        Box::new(predictor),
    );
    let id = weft::pack::TenantId(0);
    let spec =
        weft_sched::TenantSpec { id, name: program.name.clone(), program: program.clone(), slo_us: 1e12, weight: 1.0 };
    scheduler.add_tenant(spec).ok()?;
    scheduler.solo_latency_us(id).ok()
}
