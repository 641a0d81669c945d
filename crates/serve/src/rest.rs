//! The Open Inference Protocol over HTTP/REST, with the binary tensor
//! extension and the model repository extension.
//!
//! Bodies are read up to the configured limit (larger ones get 413 before
//! they are buffered); declared shapes are checked against the model before
//! any tensor is decoded; every failure answers `{"error": "..."}` with the
//! status of its [`ErrorKind`].

use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, InferError};
use crate::models::{InputTensor, LoadedModel, TensorInfo};
use crate::params::RequestParams;
use crate::tensor;
use crate::AppState;

/// The binary extension's header: the JSON part's length in bytes.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// How long a client refused by admission control should wait, seconds.
pub const RETRY_AFTER_S: u64 = 1;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_v))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_v))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_v))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(repository_load))
        .route("/v2/repository/models/{model}/unload", post(repository_unload))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "no such endpoint (see /v2)".into()) })
        .with_state(state)
}

fn error_response(status: StatusCode, message: String) -> Response {
    let mut r = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    }
    r
}

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        let status = match self.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string())
    }
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(s): State<AppState>) -> StatusCode {
    if s.draining.load(Ordering::Relaxed) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn server_metadata() -> Response {
    axum::Json(crate::server_metadata_json()).into_response()
}

fn tensor_json(t: &TensorInfo) -> Value {
    json!({ "name": t.name, "datatype": tensor::datatype_name(t.elem), "shape": t.shape })
}

fn metadata(m: &LoadedModel) -> Value {
    json!({
        "name": m.name,
        "versions": [m.version],
        "platform": "onnx",
        "inputs": m.inputs.iter().map(tensor_json).collect::<Vec<_>>(),
        "outputs": m.outputs.iter().map(tensor_json).collect::<Vec<_>>(),
    })
}

async fn model_metadata(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    match s.models.get(&model, None) {
        Ok(m) => axum::Json(metadata(&m)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_metadata_v(State(s): State<AppState>, Path((model, version)): Path<(String, String)>) -> Response {
    match s.models.get(&model, Some(&version)) {
        Ok(m) => axum::Json(metadata(&m)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_ready(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    match s.models.get(&model, None) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_ready_v(State(s): State<AppState>, Path((model, version)): Path<(String, String)>) -> Response {
    match s.models.get(&model, Some(&version)) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn repository_index(State(s): State<AppState>) -> Response {
    let models = s.models.clone();
    match tokio::task::spawn_blocking(move || models.index()).await {
        Ok(Ok(entries)) => axum::Json(
            entries
                .into_iter()
                .map(|e| {
                    let mut v = json!({ "name": e.name, "version": e.version, "state": e.state });
                    if !e.reason.is_empty() {
                        v["reason"] = json!(e.reason);
                    }
                    v
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn repository_load(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    if s.draining.load(Ordering::Relaxed) {
        return InferError::Draining.into_response();
    }
    let models = s.models.clone();
    match tokio::task::spawn_blocking(move || models.load(&model)).await {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn repository_unload(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    match s.models.unload(&model) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A tensor of the request's JSON header.
#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Deserialize)]
struct InferBody {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
}

fn bool_param(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, InferError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(InferError::Parameter { name: name.into(), problem: format!("is {v}: give true or false") }),
    }
}

/// Reads the body up to the server's limit, answering 413 (or 400 when the
/// connection ends before the declared length) as `{"error"}`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // axum reports the limit only in its message.
        let too_big = e.to_string().contains("length limit");
        if too_big {
            too_large(limit)
        } else {
            error_response(StatusCode::BAD_REQUEST, format!("reading the request body: {e}"))
        }
    })
}

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than the server's limit of {limit} bytes (--max-body-bytes)"),
    )
}

async fn infer(State(s): State<AppState>, Path(model): Path<String>, headers: HeaderMap, body: Body) -> Response {
    infer_any(s, model, None, headers, body).await
}

async fn infer_v(
    State(s): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_any(s, model, Some(version), headers, body).await
}

async fn infer_any(s: AppState, model: String, version: Option<String>, headers: HeaderMap, body: Body) -> Response {
    if s.draining.load(Ordering::Relaxed) {
        return InferError::Draining.into_response();
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.body_limit as u64) {
        return too_large(s.body_limit);
    }
    let body = match read_body(body, s.body_limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let models = s.models.clone();
    let task = tokio::task::spawn_blocking(move || {
        let result = infer_blocking(&models, &model, version.as_deref(), &headers, body);
        if let Err(e) = &result {
            models.record_failure(&model, e);
        }
        result
    });
    match task.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn infer_blocking(
    models: &crate::models::Models,
    model_name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, InferError> {
    let model = models.get(model_name, version)?;
    let header_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => {
            v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n <= body.len()).ok_or_else(
                || {
                    InferError::Malformed(format!(
                        "{HEADER_LENGTH} is {v:?}: give the JSON header's length in bytes, at most the body's {} bytes",
                        body.len()
                    ))
                },
            )?
        }
    };
    let request: InferBody = serde_json::from_slice(&body[..header_len])
        .map_err(|e| InferError::Malformed(format!("the JSON inference request: {e}")))?;
    // Scheduling parameters are checked before any tensor is decoded.
    let params = RequestParams::from_json(&request.parameters)?;
    let mut binary = &body[header_len..];
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let info = model.inputs.iter().find(|i| i.name == input.name).ok_or_else(|| InferError::UnknownInput {
            input: input.name.clone(),
            inputs: model.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        let len = tensor::check_declared(&input.name, &input.datatype, &input.shape, info.elem, &info.shape)?;
        let data = match (input.parameters.get("binary_data_size"), &input.data) {
            (Some(size), None) => {
                let size = size.as_u64().ok_or_else(|| InferError::Parameter {
                    name: "binary_data_size".into(),
                    problem: format!("input `{}`: is {size}: give a byte count", input.name),
                })?;
                if size > binary.len() as u64 {
                    return Err(InferError::DataSize {
                        input: input.name.clone(),
                        expected: size,
                        given: binary.len() as u64,
                    });
                }
                let (mine, rest) = binary.split_at(size as usize);
                binary = rest;
                tensor::from_raw(&input.name, info.elem, len, mine)?
            }
            (None, Some(data)) => tensor::from_json(&input.name, info.elem, len, data)?,
            (Some(_), Some(_)) => {
                return Err(InferError::Malformed(format!(
                    "input `{}` has both `data` and binary_data_size: give one",
                    input.name
                )))
            }
            (None, None) => {
                return Err(InferError::Malformed(format!(
                    "input `{}` has no `data` and no binary_data_size parameter",
                    input.name
                )))
            }
        };
        inputs.push(InputTensor { name: input.name.clone(), data });
    }
    if !binary.is_empty() {
        return Err(InferError::Malformed(format!(
            "{} bytes of binary data after the inputs' binary_data_size total",
            binary.len()
        )));
    }
    // Which outputs, and which of them in binary.
    let all_binary = bool_param(&request.parameters, "binary_data_output")?.unwrap_or(false);
    let wanted: Vec<(usize, bool)> = match &request.outputs {
        None => (0..model.outputs.len()).map(|i| (i, all_binary)).collect(),
        Some(outs) => outs
            .iter()
            .map(|o| {
                let i =
                    model.outputs.iter().position(|m| m.name == o.name).ok_or_else(|| InferError::UnknownOutput {
                        output: o.name.clone(),
                        outputs: model.outputs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                    })?;
                Ok((i, bool_param(&o.parameters, "binary_data")?.unwrap_or(all_binary)))
            })
            .collect::<Result<_, InferError>>()?,
    };
    let outcome = models.infer_with(model_name, version, inputs, params)?;
    let mut tail = Vec::new();
    let mut outputs = Vec::new();
    for (i, as_binary) in wanted {
        let info = &outcome.model.outputs[i];
        let data = &outcome.outputs[i];
        let mut o = json!({ "name": info.name, "datatype": tensor::datatype_name(info.elem), "shape": info.shape });
        if as_binary {
            o["parameters"] = json!({ "binary_data_size": data.bytes().len() });
            tail.extend_from_slice(data.bytes());
        } else {
            o["data"] = tensor::to_json(data);
        }
        outputs.push(o);
    }
    let mut response = json!({
        "model_name": outcome.model.name,
        "model_version": outcome.model.version,
        "outputs": outputs,
    });
    if let Some(id) = request.id {
        response["id"] = json!(id);
    }
    let header_bytes = serde_json::to_vec(&response).map_err(|e| InferError::Malformed(e.to_string()))?;
    if tail.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], header_bytes).into_response());
    }
    let header_len = header_bytes.len();
    let mut all = header_bytes;
    all.extend_from_slice(&tail);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(header_len)),
        ],
        all,
    )
        .into_response())
}

/// Shared with the metrics endpoint's router.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                let text = s.models.metrics().render(s.models.engine());
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
            }),
        )
        .with_state(state)
}
