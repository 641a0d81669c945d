//! ONNX `TensorProto` and element types to weft [`Tensor`]s and [`DType`]s.
//!
//! ONNX stores a tensor's elements either in a typed repeated field
//! (`float_data`, `int32_data` — which also carries 8/16-bit integers, bools
//! and the bit patterns of f16/bf16 —, `int64_data`, `uint64_data`,
//! `double_data`) or as little-endian `raw_data`. Both are read. Every
//! element type keeps its dtype; 8- and 16-bit integers are stored in `i32`,
//! `u32` in `i64`, f16/bf16 widened to `f32` (all exactly). Weights stored outside the file (external
//! data) are refused with a clear error rather than silently read as empty.

use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::TensorProto;
use protobuf::Enum;

use super::error::ImportError;
use crate::dtype::DType;
use crate::tensor::{Shape, Tensor, TensorData};

/// The weft dtype of an ONNX element type, or why there is none.
pub fn dtype_of(elem_type: i32) -> Result<DType, String> {
    match DataType::from_i32(elem_type) {
        Some(DataType::FLOAT) => Ok(DType::F32),
        Some(DataType::FLOAT16) => Ok(DType::F16),
        Some(DataType::BFLOAT16) => Ok(DType::BF16),
        Some(DataType::INT32) => Ok(DType::I32),
        Some(DataType::INT64) => Ok(DType::I64),
        Some(DataType::BOOL) => Ok(DType::Bool),
        Some(DataType::INT8) => Ok(DType::I8),
        Some(DataType::UINT8) => Ok(DType::U8),
        Some(DataType::INT16) => Ok(DType::I16),
        Some(DataType::UINT16) => Ok(DType::U16),
        Some(DataType::UINT32) => Ok(DType::U32),
        Some(DataType::UINT64) => Ok(DType::U64),
        Some(DataType::DOUBLE) => Ok(DType::F64),
        Some(other) => Err(format!(
            "element type {other:?} is not supported (weft runs f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, \
             u16, u8, bool)"
        )),
        None => Err(format!("unknown element type {elem_type}")),
    }
}

/// Checks that a tensor of `dims` stays within `limit` elements, counting a
/// zero dimension as one so that every partial product of the dims (which
/// shape arithmetic forms freely) is within the limit too.
pub(crate) fn check_elements(what: impl FnOnce() -> String, dims: &[usize], limit: usize) -> Result<(), ImportError> {
    let mut needed: u128 = 1;
    for &d in dims {
        needed = needed.saturating_mul(d.max(1) as u128);
    }
    if needed <= limit as u128 {
        return Ok(());
    }
    let shown: Vec<String> = dims.iter().map(usize::to_string).collect();
    let needed = if needed == u128::MAX { "more than 2^128".to_string() } else { needed.to_string() };
    Err(ImportError::LimitExceeded { what: what(), shape: format!("[{}]", shown.join("x")), needed, limit })
}

/// Converts an initializer or a `Constant`'s value.
pub fn tensor_from_proto(t: &TensorProto) -> Result<Tensor, ImportError> {
    let err = |message: String| ImportError::Tensor { tensor: t.name.clone(), message };
    if t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) || !t.external_data.is_empty() {
        let location = t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str()).unwrap_or("?");
        return Err(err(format!(
            "weights are stored in an external file (`{location}`); weft reads self-contained models only: \
             re-save with `onnx.save(model, path, save_as_external_data=False)`"
        )));
    }
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| err(format!("negative dimension {d}")))?);
    }
    // Dims that disagree with the data are refused below; first make sure
    // their product is a number at all.
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("dims {:?} have more elements than memory can hold", t.dims)))?;
    let shape = Shape(dims);
    let dtype = dtype_of(t.data_type).map_err(err)?;
    let kind = DataType::from_i32(t.data_type).unwrap_or(DataType::UNDEFINED);
    let raw = &t.raw_data;
    let has_raw = !raw.is_empty();
    // Elements of `width` bytes from raw_data, checked against the shape.
    let chunks = |width: usize| -> Result<std::slice::ChunksExact<'_, u8>, ImportError> {
        if n.checked_mul(width) != Some(raw.len()) {
            return Err(err(format!("raw_data has {} bytes, shape {shape} needs {n} elements of {width}", raw.len())));
        }
        Ok(raw.chunks_exact(width))
    };
    let data = match kind {
        DataType::FLOAT if has_raw => {
            TensorData::F32(chunks(4)?.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        DataType::FLOAT => TensorData::F32(t.float_data.clone()),
        DataType::DOUBLE if has_raw => TensorData::F64(
            chunks(8)?.map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        ),
        DataType::DOUBLE => TensorData::F64(t.double_data.clone()),
        DataType::UINT64 if has_raw => TensorData::U64(
            chunks(8)?.map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        ),
        DataType::UINT64 => TensorData::U64(t.uint64_data.clone()),
        DataType::FLOAT16 | DataType::BFLOAT16 => {
            let bits: Vec<u16> = if has_raw {
                chunks(2)?.map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
            } else {
                t.int32_data.iter().map(|&x| x as u16).collect()
            };
            let widen = |b: u16| {
                if kind == DataType::FLOAT16 {
                    half::f16::from_bits(b).to_f32()
                } else {
                    half::bf16::from_bits(b).to_f32()
                }
            };
            TensorData::F32(bits.into_iter().map(widen).collect())
        }
        DataType::INT64 if has_raw => TensorData::I64(
            chunks(8)?.map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        ),
        DataType::INT64 => TensorData::I64(t.int64_data.clone()),
        DataType::UINT32 if has_raw => {
            TensorData::I64(chunks(4)?.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect())
        }
        DataType::UINT32 => TensorData::I64(t.uint64_data.iter().map(|&x| x as u32 as i64).collect()),
        DataType::INT32 if has_raw => {
            TensorData::I32(chunks(4)?.map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        DataType::INT16 if has_raw => {
            TensorData::I32(chunks(2)?.map(|c| i16::from_le_bytes([c[0], c[1]]) as i32).collect())
        }
        DataType::UINT16 if has_raw => {
            TensorData::I32(chunks(2)?.map(|c| u16::from_le_bytes([c[0], c[1]]) as i32).collect())
        }
        DataType::INT8 if has_raw => TensorData::I32(chunks(1)?.map(|c| c[0] as i8 as i32).collect()),
        DataType::UINT8 if has_raw => TensorData::I32(chunks(1)?.map(|c| c[0] as i32).collect()),
        DataType::INT32 => TensorData::I32(t.int32_data.clone()),
        // Narrow integers are stored one per int32; keep each value in range.
        DataType::INT16 => TensorData::I32(t.int32_data.iter().map(|&x| x as i16 as i32).collect()),
        DataType::UINT16 => TensorData::I32(t.int32_data.iter().map(|&x| x as u16 as i32).collect()),
        DataType::INT8 => TensorData::I32(t.int32_data.iter().map(|&x| x as i8 as i32).collect()),
        DataType::UINT8 => TensorData::I32(t.int32_data.iter().map(|&x| x as u8 as i32).collect()),
        DataType::BOOL if has_raw => TensorData::Bool(chunks(1)?.map(|c| c[0] != 0).collect()),
        DataType::BOOL => TensorData::Bool(t.int32_data.iter().map(|&x| x != 0).collect()),
        other => return Err(err(format!("element type {other:?} is not supported"))),
    };
    if data.len() != n {
        return Err(err(format!("has {} elements, shape {shape} needs {n}", data.len())));
    }
    Ok(Tensor { dtype, shape, data })
}

/// The ONNX element type of a weft dtype (for `Cast`'s `to` and tests).
pub fn elem_type_of(dtype: DType) -> i32 {
    let t = match dtype {
        DType::F32 => DataType::FLOAT,
        DType::F16 => DataType::FLOAT16,
        DType::BF16 => DataType::BFLOAT16,
        DType::I32 => DataType::INT32,
        DType::I64 => DataType::INT64,
        DType::Bool => DataType::BOOL,
        DType::I8 => DataType::INT8,
        DType::U8 => DataType::UINT8,
        DType::I16 => DataType::INT16,
        DType::U16 => DataType::UINT16,
        DType::U32 => DataType::UINT32,
        DType::U64 => DataType::UINT64,
        DType::F64 => DataType::DOUBLE,
    };
    t.value()
}
