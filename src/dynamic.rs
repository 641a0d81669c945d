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
//! and reused for every later request with the same shapes.
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

use weft_graph::onnx::{ImportOptions, OnnxModel};
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

/// Each binding's tenant and program, by the bound shape of every input.
type Compiled = HashMap<Vec<Vec<usize>>, (Tenant, Arc<Program>)>;

/// A model whose dynamic dimensions each request's input shapes bind; one
/// program (and tenant) per distinct binding, compiled on first use.
pub struct DynamicModel {
    model: OnnxModel,
    options: ImportOptions,
    slo: Duration,
    weight: f64,
    /// Tenants by the bound shapes of every input, in the model's order.
    compiled: Mutex<Compiled>,
    compiles: AtomicU64,
}

impl DynamicModel {
    /// A model served with latency objective `slo` and fairness `weight`
    /// for each binding; `options` carries explicit `shapes` and `dims`
    /// every binding must agree with.
    pub fn new(model: OnnxModel, options: ImportOptions, slo: Duration, weight: f64) -> DynamicModel {
        DynamicModel { model, options, slo, weight, compiled: Mutex::new(HashMap::new()), compiles: AtomicU64::new(0) }
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
    /// and registering it on `engine` the first time the binding is seen.
    pub fn tenant_for(
        &self,
        engine: &Engine,
        shapes: &[(String, Vec<usize>)],
    ) -> Result<(Tenant, Arc<Program>), EngineError> {
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
        let key: Vec<Vec<usize>> = bound.iter().map(|(_, _, s)| s.dims().to_vec()).collect();
        // Held while compiling, so a binding compiles once however many
        // requests ask for it at the same time.
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, p)) = compiled.get(&key) {
            return Ok((*t, p.clone()));
        }
        options.max_memory = Some(engine.memory_budget());
        let graph = self.model.import(&options).map_err(self.bind_err())?;
        let lower_options = LowerOptions { max_memory: Some(engine.memory_budget()), ..LowerOptions::default() };
        let mut program = weft_lower::lower(&graph, &lower_options)
            .map_err(|source| EngineError::Lower { model: self.name().to_string(), source: Box::new(source) })?;
        let shown: Vec<String> = bound
            .iter()
            .map(|(n, _, s)| format!("{n}={}", s.dims().iter().map(usize::to_string).collect::<Vec<_>>().join("x")))
            .collect();
        program.name = format!("{} [{}]", self.name(), shown.join(", "));
        let program = Arc::new(program);
        let tenant = engine.register(program.clone(), self.slo, self.weight)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        compiled.insert(key, (tenant, program.clone()));
        Ok((tenant, program))
    }

    /// Submits one request: binds the model to the inputs' shapes (compiling
    /// that binding if it is new) and submits the inputs, in the model's
    /// input order, to its tenant.
    pub fn submit(&self, engine: &Engine, inputs: Vec<NamedInput>) -> Result<Pending, EngineError> {
        let shapes: Vec<(String, Vec<usize>)> = inputs.iter().map(|i| (i.name.clone(), i.shape.clone())).collect();
        let (tenant, program) = self.tenant_for(engine, &shapes)?;
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
}
