//! The model repository: which models a directory holds and how each is
//! to be served.
//!
//! Two layouts, as Triton reads them: `DIR/<model>/<version>/model.onnx`
//! (numeric versions; the highest is served) and `DIR/<model>/model.onnx`
//! (version `1`). An optional `DIR/<model>/config.toml` ([`ModelConfig`])
//! sets the latency objective, weight, tenant instances, queue bound and
//! shape bindings. Scanning reads names and small config files only; the
//! ONNX files are opened when a model is loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the repository or one of its models could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("model repository {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model `{model}` is not in the repository {repository} (expected {repository}/{model}/model.onnx or {repository}/{model}/<version>/model.onnx)")]
    NotFound { model: String, repository: PathBuf },
    #[error("model `{model}`: {path}: {source}")]
    Config {
        model: String,
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("model `{model}`: config.toml: `{field}` {problem}")]
    Invalid { model: String, field: &'static str, problem: String },
    #[error("`{model}` is not a usable model name: use letters, digits, `-`, `_` and `.` (not starting with `.`)")]
    Name { model: String },
}

/// `DIR/<model>/config.toml`: how one model is served. Every field is
/// optional.
///
/// ```toml
/// slo_ms = 50.0          # latency objective per request (default: derived from its solo latency)
/// weight = 2.0           # share under contention, relative to other models (default 1)
/// instances = 2          # engine tenants serving this model, requests spread over them (default 1)
/// max_queue = 32         # requests queued or running for this model; more get 429 (default 64)
/// [shapes]               # full shapes of dynamic inputs
/// input = [1, 3, 224, 224]
/// [dims]                 # symbolic dimensions wherever they appear
/// batch = 1
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub slo_ms: Option<f64>,
    pub weight: Option<f64>,
    pub instances: Option<usize>,
    pub max_queue: Option<usize>,
    /// The priority class of requests that do not give `priority_class`.
    pub priority_class: Option<u8>,
    #[serde(default)]
    pub shapes: HashMap<String, Vec<usize>>,
    #[serde(default)]
    pub dims: HashMap<String, usize>,
}

/// The most tenant instances one model may ask for.
pub const MAX_INSTANCES: usize = 64;

impl ModelConfig {
    fn validate(&self, model: &str) -> Result<(), RepositoryError> {
        let invalid = |field, problem: String| RepositoryError::Invalid { model: model.to_string(), field, problem };
        if let Some(slo) = self.slo_ms {
            if !(slo.is_finite() && slo > 0.0) {
                return Err(invalid("slo_ms", format!("is {slo}: give a positive number of milliseconds")));
            }
        }
        if let Some(w) = self.weight {
            if !(w.is_finite() && w > 0.0) {
                return Err(invalid("weight", format!("is {w}: give a positive number (1 = equal share)")));
            }
        }
        if let Some(n) = self.instances {
            if n == 0 || n > MAX_INSTANCES {
                return Err(invalid("instances", format!("is {n}: give 1 to {MAX_INSTANCES}")));
            }
        }
        if self.max_queue == Some(0) {
            return Err(invalid("max_queue", "is 0: give at least 1".to_string()));
        }
        Ok(())
    }
}

/// One model of the repository: where its file is and how to serve it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    /// The version served (the highest numeric one; `1` without versions).
    pub version: String,
    /// Every version directory that holds a model.onnx, ascending.
    pub versions: Vec<String>,
    pub path: PathBuf,
    pub config: ModelConfig,
}

/// A model name that can be a directory name and a URL segment.
pub fn check_name(model: &str) -> Result<(), RepositoryError> {
    let ok = !model.is_empty()
        && !model.starts_with('.')
        && model.len() <= 200
        && model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RepositoryError::Name { model: model.to_string() })
    }
}

/// Every model in `dir`, by name. Directories without a model file are
/// skipped; a model whose config cannot be read is an error naming it.
pub fn scan(dir: &Path) -> Result<Vec<ModelEntry>, RepositoryError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RepositoryError::Read { path, source }
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read(dir))? {
        let entry = entry.map_err(read(dir))?;
        if entry.file_type().map_err(read(&entry.path()))?.is_dir() {
            if let Some(name) = entry.file_name().to_str() {
                if check_name(name).is_ok() {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    let mut models = Vec::new();
    for name in names {
        match find(dir, &name) {
            Ok(m) => models.push(m),
            Err(RepositoryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(models)
}

/// The model `name` in `dir`.
pub fn find(dir: &Path, name: &str) -> Result<ModelEntry, RepositoryError> {
    check_name(name)?;
    let not_found = || RepositoryError::NotFound { model: name.to_string(), repository: dir.to_path_buf() };
    let model_dir = dir.join(name);
    if !model_dir.is_dir() {
        return Err(not_found());
    }
    let mut versions: Vec<u64> = Vec::new();
    let entries =
        std::fs::read_dir(&model_dir).map_err(|source| RepositoryError::Read { path: model_dir.clone(), source })?;
    for entry in entries.flatten() {
        let Some(v) = entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        if entry.path().join("model.onnx").is_file() {
            versions.push(v);
        }
    }
    versions.sort_unstable();
    let (version, path) = match versions.last() {
        Some(v) => (v.to_string(), model_dir.join(v.to_string()).join("model.onnx")),
        None if model_dir.join("model.onnx").is_file() => ("1".to_string(), model_dir.join("model.onnx")),
        None => return Err(not_found()),
    };
    let config_path = model_dir.join("config.toml");
    let config = if config_path.is_file() {
        let text = std::fs::read_to_string(&config_path)
            .map_err(|source| RepositoryError::Read { path: config_path.clone(), source })?;
        let config: ModelConfig = toml::from_str(&text).map_err(|source| RepositoryError::Config {
            model: name.to_string(),
            path: config_path.clone(),
            source: Box::new(source),
        })?;
        config.validate(name)?;
        config
    } else {
        ModelConfig::default()
    };
    let versions =
        if versions.is_empty() { vec![version.clone()] } else { versions.iter().map(u64::to_string).collect() };
    Ok(ModelEntry { name: name.to_string(), version, versions, path, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-serve-repo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn both_layouts_and_the_highest_version() {
        let dir = temp("layouts");
        std::fs::create_dir_all(dir.join("flat")).unwrap();
        std::fs::write(dir.join("flat/model.onnx"), b"x").unwrap();
        for v in ["1", "3", "12"] {
            std::fs::create_dir_all(dir.join("versioned").join(v)).unwrap();
            std::fs::write(dir.join("versioned").join(v).join("model.onnx"), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.join("versioned/20")).unwrap(); // no model file: not a version
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("versioned/config.toml"), "slo_ms = 20\ninstances = 2\n[dims]\nbatch = 1\n").unwrap();
        let models = scan(&dir).unwrap();
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["flat", "versioned"]);
        assert_eq!(models[0].version, "1");
        assert_eq!(models[1].version, "12");
        assert_eq!(models[1].versions, ["1", "3", "12"]);
        assert!(models[1].path.ends_with("versioned/12/model.onnx"));
        assert_eq!(models[1].config.slo_ms, Some(20.0));
        assert_eq!(models[1].config.instances, Some(2));
        assert_eq!(models[1].config.dims.get("batch"), Some(&1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let dir = temp("bad");
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::write(dir.join("m/model.onnx"), b"x").unwrap();
        std::fs::write(dir.join("m/config.toml"), "slo_ms = -1").unwrap();
        let e = find(&dir, "m").unwrap_err().to_string();
        assert!(e.contains("slo_ms") && e.contains("positive"), "{e}");
        std::fs::write(dir.join("m/config.toml"), "slo = 3").unwrap();
        let e = find(&dir, "m").unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("slo"), "{e}");
        std::fs::write(dir.join("m/config.toml"), "instances = 1000").unwrap();
        assert!(find(&dir, "m").unwrap_err().to_string().contains("instances"));
        assert!(matches!(find(&dir, "../m"), Err(RepositoryError::Name { .. })));
        assert!(matches!(find(&dir, "absent"), Err(RepositoryError::NotFound { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
