//! Models with dynamic dimensions on an [`Engine`]: each request's input
//! shapes bind the model's symbolic dimensions.
//!
//! A [`DynamicModel`] keeps the parsed ONNX model and the caller's explicit
//! bindings (`shapes`, `dims` of [`ImportOptions`]). A request gives its
//! inputs with their shapes; [`weft_graph::onnx::bind_inputs`] — the one
//! binding import, `weft run` and `weft serve` use — resolves every input's
//! shape from them, naming the dimension where two inputs (or an input and
//! an explicit binding) disagree. The program for a binding is imported,
//! lowered and registered as a tenant the first time the binding is seen,
//! and reused for every later request with the same shapes. Where an
//! output's size depends on the data (`NonZero`), the request's values bind
//! it too: see [`DynamicModel`].
//!
//! ```
//! use std::time::Duration;
//! use weft::graph::onnx::{testing, ImportOptions, OnnxModel};
//! use weft::kir::HostBuffer;
//! use weft::{Backend, DynamicModel, Engine, EngineConfig, NamedInput};
//!
//! // y = relu(x) over x: [batch, 4].
//! let x = testing::f32_dynamic_input("x", &[testing::Dim::Param("batch"), testing::Dim::Value(4)]);
//! let relu = testing::node("Relu", "relu", &["x"], &["y"], vec![]);
//! let bytes = testing::model_bytes(18, vec![x], vec![], vec![relu], &["y"]);
//! let model = OnnxModel::parse(&bytes).unwrap();
//!
//! let engine = Engine::new(Backend::Interp, EngineConfig::default()).unwrap();
//! let relu = DynamicModel::new(model, ImportOptions::default(), Duration::from_secs(1), 1.0);
//! for batch in [1, 3, 3] {
//!     let x = HostBuffer::from_f32(&vec![-1.0; batch * 4]);
//!     let input = NamedInput { name: "x".into(), shape: vec![batch, 4], data: x };
//!     let out = relu.submit(&engine, vec![input]).unwrap().wait().unwrap();
//!     assert_eq!(out.outputs[0].len(), batch * 4);
//! }
//! assert_eq!(relu.compiles(), 2, "batch 3 compiled once");
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_graph::onnx::{import_data_dependent, ImportOptions, OnnxModel};
use weft_kir::HostBuffer;
use weft_lower::{LowerOptions, Program};

use crate::engine::{Engine, EngineError, Pending, Tenant};

/// One input of a request to a [`DynamicModel`]: its name, shape and data.
#[derive(Clone, Debug)]
pub struct NamedInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: HostBuffer,
}

/// What a program is compiled for: the bound shape of every input, in the
/// model's order, and each data-dependent size (by output name, sorted).
type Key = (Vec<Vec<usize>>, Vec<(String, usize)>);

/// Why binding a request's data-dependent sizes failed: import refused, or
/// the request counting a size did.
enum Staged {
    Import(weft_graph::ImportError),
    Engine(EngineError),
}

impl From<weft_graph::ImportError> for Staged {
    fn from(e: weft_graph::ImportError) -> Staged {
        Staged::Import(e)
    }
}

/// By input shapes, the data-dependent sizes their binding has met, in the
/// order import meets them: (the sized output, the tensor counted).
type Stages = HashMap<Vec<Vec<usize>>, Vec<(String, String)>>;

/// Each binding's tenant and program.
type Compiled = HashMap<Key, (Tenant, Arc<Program>)>;

/// A model whose dynamic dimensions each request's input shapes bind; one
/// program (and tenant) per distinct binding, compiled on first use.
///
/// Where the size of an output depends on the data (`NonZero` of a tensor
/// the model computes), a request first runs the part of the model that
/// computes that tensor — itself a `DynamicModel` on the same engine, one
/// per such tensor — counts its nonzero elements, and binds the count
/// ([`weft_graph::onnx::import_data_dependent`]); the counts are part of
/// the binding, so each distinct count compiles once.
pub struct DynamicModel {
    model: OnnxModel,
    options: ImportOptions,
    slo: Duration,
    weight: f64,
    compiled: Mutex<Compiled>,
    compiles: AtomicU64,
    stages: Mutex<Stages>,
    /// The model's prefix computing each counted tensor, by tensor name.
    prefixes: Mutex<HashMap<String, Arc<DynamicModel>>>,
    /// The most bindings compiled ([`DynamicModel::with_max_bindings`]).
    max_bindings: usize,
}

/// The default [`DynamicModel::with_max_bindings`]: each binding holds a
/// program and a tenant's arena, and requests choose the bindings.
pub const DEFAULT_MAX_BINDINGS: usize = 64;

impl DynamicModel {
    /// A model served with latency objective `slo` and fairness `weight`
    /// for each binding; `options` carries explicit `shapes` and `dims`
    /// every binding must agree with.
    pub fn new(model: OnnxModel, options: ImportOptions, slo: Duration, weight: f64) -> DynamicModel {
        DynamicModel {
            model,
            options,
            slo,
            weight,
            compiled: Mutex::new(HashMap::new()),
            compiles: AtomicU64::new(0),
            stages: Mutex::new(HashMap::new()),
            prefixes: Mutex::new(HashMap::new()),
            max_bindings: DEFAULT_MAX_BINDINGS,
        }
    }

    /// Compiles at most `n` bindings (default [`DEFAULT_MAX_BINDINGS`]); a
    /// request that needs another is refused ([`EngineError::Bind`]) rather
    /// than letting clients' shapes, counts or branches grow the engine's
    /// programs without bound.
    pub fn with_max_bindings(mut self, n: usize) -> DynamicModel {
        self.max_bindings = n;
        self
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        self.model.name()
    }

    /// Bindings compiled so far (each imported, lowered and registered once).
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// The tenants registered so far, one per binding.
    pub fn tenants(&self) -> Vec<Tenant> {
        let compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        compiled.values().map(|(t, _)| *t).collect()
    }

    fn bind_err(&self) -> impl FnOnce(weft_graph::ImportError) -> EngineError + '_ {
        move |source| EngineError::Bind { model: self.name().to_string(), source: Box::new(source) }
    }

    /// The tenant (and its program) for inputs of these shapes, compiling
    /// and registering it on `engine` the first time the binding is seen. A
    /// model with data-dependent sizes needs the inputs' values as well:
    /// [`DynamicModel::submit`].
    pub fn tenant_for(
        &self,
        engine: &Engine,
        shapes: &[(String, Vec<usize>)],
    ) -> Result<(Tenant, Arc<Program>), EngineError> {
        let (options, shapes_key) = self.bind(shapes)?;
        self.compile(engine, options, shapes_key, None)
    }

    /// The import options of a request of these input shapes, and the
    /// inputs' bound shapes.
    fn bind(&self, shapes: &[(String, Vec<usize>)]) -> Result<(ImportOptions, Vec<Vec<usize>>), EngineError> {
        let mut options = self.options.clone();
        for (name, shape) in shapes {
            if options.input_shapes.insert(name.clone(), shape.clone()).is_some() {
                return Err(self.bind_err()(weft_graph::ImportError::Input {
                    input: name.clone(),
                    message: "is given twice in one request".into(),
                }));
            }
        }
        let bound = self.model.bind(&options).map_err(self.bind_err())?;
        Ok((options, bound.iter().map(|(_, _, s)| s.dims().to_vec()).collect()))
    }

    /// The program of the binding `options` (counts included) makes,
    /// compiled and registered the first time. `inputs`: the request's, to
    /// count the data-dependent sizes import meets unbound; without them
    /// such a size is refused ([`weft_graph::ImportError::DataDependent`]).
    fn compile(
        &self,
        engine: &Engine,
        mut options: ImportOptions,
        shapes_key: Vec<Vec<usize>>,
        inputs: Option<&[NamedInput]>,
    ) -> Result<(Tenant, Arc<Program>), EngineError> {
        let key = |options: &ImportOptions| -> Key {
            let mut counts: Vec<(String, usize)> = options.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
            counts.sort();
            (shapes_key.clone(), counts)
        };
        // Held while compiling, so a binding compiles once however many
        // requests ask for it at the same time.
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, p)) = compiled.get(&key(&options)) {
            return Ok((*t, p.clone()));
        }
        options.max_memory = Some(engine.memory_budget());
        let mut met = Vec::new();
        let graph = import_data_dependent(&self.model, &mut options, &mut |counted, _| {
            let Some(inputs) = inputs else {
                return Err(Staged::Import(weft_graph::ImportError::DataDependent {
                    node: counted.node.clone(),
                    op_type: counted.op_type.clone(),
                    input: counted.tensor.clone(),
                    output: counted.output.clone(),
                }));
            };
            let n =
                self.count(engine, &counted.tensor, || Ok(counted.prefix.clone()), inputs).map_err(Staged::Engine)?;
            met.push((counted.output.clone(), counted.tensor.clone()));
            Ok(n)
        })
        .map_err(|e| match e {
            Staged::Import(e) => self.bind_err()(e),
            Staged::Engine(e) => e,
        })?;
        if !met.is_empty() {
            let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
            let known = stages.entry(shapes_key.clone()).or_default();
            for stage in met {
                if !known.contains(&stage) {
                    known.push(stage);
                }
            }
        }
        let key = key(&options);
        if let Some((t, p)) = compiled.get(&key) {
            return Ok((*t, p.clone()));
        }
        if compiled.len() >= self.max_bindings {
            let mut bound: Vec<String> = key.0.iter().map(|s| format!("{s:?}")).collect();
            bound.extend(key.1.iter().map(|(o, n)| format!("{o}:{n}")));
            return Err(self.bind_err()(weft_graph::ImportError::Input {
                input: "(binding)".into(),
                message: format!(
                    "this request needs a new binding ({}), but the model has compiled its limit of {}; raise it \
                     with DynamicModel::with_max_bindings",
                    bound.join(", "),
                    self.max_bindings
                ),
            }));
        }
        let lower_options = LowerOptions { max_memory: Some(engine.memory_budget()), ..LowerOptions::default() };
        let mut program = weft_lower::lower(&graph, &lower_options)
            .map_err(|source| EngineError::Lower { model: self.name().to_string(), source: Box::new(source) })?;
        let bound = self.model.bind(&options).map_err(self.bind_err())?;
        let shown: Vec<String> = bound
            .iter()
            .map(|(n, _, s)| format!("{n}={}", s.dims().iter().map(usize::to_string).collect::<Vec<_>>().join("x")))
            .chain(key.1.iter().map(|(o, n)| format!("{o}:{n}")))
            .collect();
        program.name = format!("{} [{}]", self.name(), shown.join(", "));
        let program = Arc::new(program);
        let tenant = engine.register(program.clone(), self.slo, self.weight)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        compiled.insert(key, (tenant, program.clone()));
        Ok((tenant, program))
    }

    /// Submits one request: binds the model to the inputs' shapes (and, where
    /// output sizes depend on the data, to the counts the inputs give),
    /// compiling that binding if it is new, and submits the inputs, in the
    /// model's input order, to its tenant.
    pub fn submit(&self, engine: &Engine, inputs: Vec<NamedInput>) -> Result<Pending, EngineError> {
        let shapes: Vec<(String, Vec<usize>)> = inputs.iter().map(|i| (i.name.clone(), i.shape.clone())).collect();
        let (mut options, shapes_key) = self.bind(&shapes)?;
        let known = {
            let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
            stages.get(&shapes_key).cloned().unwrap_or_default()
        };
        for (output, tensor) in known {
            let n = self.count(engine, &tensor, || self.model.prefix(&tensor).map_err(self.bind_err()), &inputs)?;
            options.counts.insert(output, n);
        }
        let (tenant, program) = self.compile(engine, options, shapes_key, Some(&inputs))?;
        let mut by_name: HashMap<String, HostBuffer> = inputs.into_iter().map(|i| (i.name, i.data)).collect();
        let mut ordered = Vec::with_capacity(program.inputs.len());
        for binding in &program.inputs {
            let data = by_name.remove(&binding.name).ok_or_else(|| EngineError::InvalidRequest {
                tenant,
                message: format!("input `{}` (shape {:?}) is missing from the request", binding.name, binding.shape),
            })?;
            ordered.push(data);
        }
        engine.submit(tenant, ordered)
    }

    /// The nonzero elements of `tensor` on these inputs: a request to the
    /// model's prefix computing it (a `DynamicModel` of its own on `engine`,
    /// made from `prefix` on first use).
    fn count(
        &self,
        engine: &Engine,
        tensor: &str,
        prefix: impl FnOnce() -> Result<OnnxModel, EngineError>,
        inputs: &[NamedInput],
    ) -> Result<usize, EngineError> {
        let model = {
            let mut prefixes = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
            match prefixes.get(tensor) {
                Some(model) => model.clone(),
                None => {
                    let model = DynamicModel::new(prefix()?, self.options.clone(), self.slo, self.weight);
                    let model = Arc::new(model.with_max_bindings(self.max_bindings));
                    prefixes.insert(tensor.to_string(), model.clone());
                    model
                }
            }
        };
        let response = model.submit(engine, inputs.to_vec())?.wait().map_err(|source| EngineError::Count {
            model: self.name().to_string(),
            tensor: tensor.to_string(),
            source,
        })?;
        Ok(response.outputs.first().map_or(0, HostBuffer::count_nonzero))
    }
}
