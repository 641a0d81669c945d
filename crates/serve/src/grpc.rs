//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService`,
//! generated at build time from proto/grpc_service.proto.
//!
//! Inputs come as `raw_input_contents` (one entry per input, in order) or
//! as typed `contents`; outputs always go back as `raw_output_contents`, as
//! Triton answers. Decoding, checks and inference are the REST path's
//! ([`crate::tensor`], [`crate::models::Models::infer`]).

use std::sync::atomic::Ordering;

use tonic::{Request, Response, Status};
use weft_kir::{HostBuffer, Scalar, Type};

use crate::error::{ErrorKind, InferError};
use crate::models::{InputTensor, LoadedModel, TensorInfo};
use crate::params::RequestParams;
use crate::proto::grpc_inference_service_server::GrpcInferenceService;
use crate::proto::*;
use crate::tensor;
use crate::AppState;

pub struct InferenceService {
    pub state: AppState,
}

impl From<InferError> for Status {
    fn from(e: InferError) -> Status {
        let message = e.to_string();
        match e.kind() {
            ErrorKind::BadRequest => Status::invalid_argument(message),
            ErrorKind::NotFound => Status::not_found(message),
            ErrorKind::QueueFull => Status::resource_exhausted(message),
            ErrorKind::Unavailable => Status::unavailable(message),
            ErrorKind::Internal => Status::internal(message),
        }
    }
}

fn tensor_metadata(t: &TensorInfo) -> model_metadata_response::TensorMetadata {
    model_metadata_response::TensorMetadata {
        name: t.name.clone(),
        datatype: tensor::datatype_name(t.elem).to_string(),
        shape: t.shape.iter().map(|&d| d as i64).collect(),
    }
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// An input's typed `contents` as a buffer of exactly `len` elements.
fn from_contents(input: &str, ty: Type, len: usize, c: &InferTensorContents) -> Result<HostBuffer, InferError> {
    let values: Vec<Scalar> = match ty {
        Type::F32 => c.fp32_contents.iter().map(|&v| Scalar::from_f64(ty, v as f64)).collect(),
        Type::I32 => c.int_contents.iter().map(|&v| Scalar::from_f64(ty, v as f64)).collect(),
        Type::U32 => c.uint_contents.iter().map(|&v| Scalar::from_f64(ty, v as f64)).collect(),
        Type::I64 => c.int64_contents.iter().map(|&v| Scalar::from_bits(ty, v as u64)).collect(),
        Type::U64 => c.uint64_contents.iter().map(|&v| Scalar::U64(v)).collect(),
        Type::F64 => c.fp64_contents.iter().map(|&v| Scalar::F64(v)).collect(),
        // Narrow integers travel in the 32-bit fields; out-of-range values
        // are refused rather than wrapped.
        Type::I8 | Type::I16 | Type::U8 | Type::U16 => {
            let (lo, hi) = ty.int_range().unwrap_or((0, 0));
            let wide: Vec<i128> = if ty.is_signed_int() {
                c.int_contents.iter().map(|&v| v as i128).collect()
            } else {
                c.uint_contents.iter().map(|&v| v as i128).collect()
            };
            if let Some(v) = wide.iter().find(|v| !(lo..=hi).contains(*v)) {
                return Err(InferError::Data {
                    input: input.to_string(),
                    problem: format!("{v} is outside {}'s range {lo}..={hi}", tensor::datatype_name(ty)),
                });
            }
            wide.into_iter().filter_map(|v| Scalar::from_int(ty, v)).collect()
        }
        Type::Bool => c.bool_contents.iter().map(|&v| Scalar::from_f64(ty, if v { 1.0 } else { 0.0 })).collect(),
        Type::F16 | Type::BF16 => {
            return Err(InferError::Data {
                input: input.to_string(),
                problem: format!(
                    "{} has no typed contents field: send it in raw_input_contents",
                    tensor::datatype_name(ty)
                ),
            })
        }
    };
    if values.len() != len {
        return Err(InferError::Data {
            input: input.to_string(),
            problem: format!("{} elements given in contents, its shape declares {len}", values.len()),
        });
    }
    let mut buf = HostBuffer::zeros(ty, len);
    for (i, v) in values.into_iter().enumerate() {
        buf.set(i, v);
    }
    Ok(buf)
}

fn decode(model: &LoadedModel, r: &ModelInferRequest) -> Result<Vec<InputTensor>, InferError> {
    if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
        return Err(InferError::Malformed(format!(
            "{} raw_input_contents for {} inputs: give one per input, in order",
            r.raw_input_contents.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, input) in r.inputs.iter().enumerate() {
        let info = model.inputs.iter().find(|m| m.name == input.name).ok_or_else(|| InferError::UnknownInput {
            input: input.name.clone(),
            inputs: model.inputs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        let len = tensor::check_declared(&input.name, &input.datatype, &input.shape, info.elem, &info.shape)?;
        let data = match (r.raw_input_contents.get(i), &input.contents) {
            (Some(raw), _) => tensor::from_raw(&input.name, info.elem, len, raw)?,
            (None, Some(c)) => from_contents(&input.name, info.elem, len, c)?,
            (None, None) => {
                return Err(InferError::Malformed(format!("input `{}` has no contents", input.name)));
            }
        };
        inputs.push(InputTensor { name: input.name.clone(), data });
    }
    Ok(inputs)
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: !self.state.draining.load(Ordering::Relaxed) }))
    }

    async fn model_ready(&self, r: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready = self.state.models.get(&r.name, version(&r.version)).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: crate::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        let m = self.state.models.get(&r.name, version(&r.version))?;
        Ok(Response::new(ModelMetadataResponse {
            name: m.name.clone(),
            versions: vec![m.version.clone()],
            platform: "onnx".into(),
            inputs: m.inputs.iter().map(tensor_metadata).collect(),
            outputs: m.outputs.iter().map(tensor_metadata).collect(),
        }))
    }

    async fn model_infer(&self, r: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        if self.state.draining.load(Ordering::Relaxed) {
            return Err(InferError::Draining.into());
        }
        let models = self.state.models.clone();
        let r = r.into_inner();
        let task = tokio::task::spawn_blocking(move || {
            let name = r.model_name.clone();
            let result = infer_blocking(&models, r);
            if let Err(e) = &result {
                models.record_failure(&name, e);
            }
            result
        });
        match task.await {
            Ok(result) => Ok(Response::new(result?)),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

fn infer_blocking(models: &crate::models::Models, r: ModelInferRequest) -> Result<ModelInferResponse, InferError> {
    {
        let model = models.get(&r.model_name, version(&r.model_version))?;
        let params = RequestParams::from_grpc(&r.parameters)?;
        let inputs = decode(&model, &r)?;
        let wanted: Vec<usize> = if r.outputs.is_empty() {
            (0..model.outputs.len()).collect()
        } else {
            r.outputs
                .iter()
                .map(|o| {
                    model.outputs.iter().position(|m| m.name == o.name).ok_or_else(|| InferError::UnknownOutput {
                        output: o.name.clone(),
                        outputs: model.outputs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let outcome = models.infer_with(&r.model_name, version(&r.model_version), inputs, params)?;
        Ok(ModelInferResponse {
            model_name: outcome.model.name.clone(),
            model_version: outcome.model.version.clone(),
            id: r.id.clone(),
            parameters: Default::default(),
            outputs: wanted
                .iter()
                .map(|&i| {
                    let t = tensor_metadata(&outcome.model.outputs[i]);
                    model_infer_response::InferOutputTensor {
                        name: t.name,
                        datatype: t.datatype,
                        shape: t.shape,
                        parameters: Default::default(),
                        contents: None,
                    }
                })
                .collect(),
            raw_output_contents: wanted.iter().map(|&i| outcome.outputs[i].bytes().to_vec()).collect(),
        })
    }
}
