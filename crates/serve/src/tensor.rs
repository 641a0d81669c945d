//! Tensors as the protocol carries them: datatype names, shapes checked
//! against the model before anything is allocated, and contents decoded
//! from JSON numbers or raw little-endian bytes into engine buffers.

use weft_kir::{HostBuffer, Scalar, Type};

use crate::error::InferError;

/// The protocol's name for a KIR element type.
pub fn datatype_name(ty: Type) -> &'static str {
    match ty {
        Type::Bool => "BOOL",
        Type::I32 => "INT32",
        Type::U32 => "UINT32",
        Type::I64 => "INT64",
        Type::F32 => "FP32",
        Type::F16 => "FP16",
        Type::BF16 => "BF16",
        Type::I8 => "INT8",
        Type::U8 => "UINT8",
        Type::I16 => "INT16",
        Type::U16 => "UINT16",
        Type::U64 => "UINT64",
        Type::F64 => "FP64",
    }
}

/// Checks a request tensor's declared datatype and shape against what the
/// model takes, and returns its element count. Runs before any of the
/// tensor's contents are decoded, so a huge declared shape costs nothing.
pub fn check_declared(
    input: &str,
    datatype: &str,
    shape: &[i64],
    expected_ty: Type,
    expected_shape: &[usize],
) -> Result<usize, InferError> {
    if datatype != datatype_name(expected_ty) {
        return Err(InferError::Datatype {
            input: input.to_string(),
            expected: datatype_name(expected_ty),
            given: datatype.to_string(),
        });
    }
    let matches = shape.len() == expected_shape.len()
        && shape.iter().zip(expected_shape).all(|(&s, &e)| u64::try_from(s).ok() == Some(e as u64));
    if !matches {
        return Err(InferError::Shape {
            input: input.to_string(),
            expected: expected_shape.to_vec(),
            given: shape.to_vec(),
        });
    }
    Ok(expected_shape.iter().product())
}

/// An input's contents from raw little-endian bytes.
pub fn from_raw(input: &str, ty: Type, len: usize, bytes: &[u8]) -> Result<HostBuffer, InferError> {
    let expected = len as u64 * ty.size_bytes();
    if bytes.len() as u64 != expected {
        return Err(InferError::DataSize { input: input.to_string(), expected, given: bytes.len() as u64 });
    }
    HostBuffer::from_bytes(ty, bytes.to_vec()).ok_or_else(|| InferError::DataSize {
        input: input.to_string(),
        expected,
        given: bytes.len() as u64,
    })
}

/// An input's contents from a JSON array (flat or nested in row-major
/// order), with exactly `len` elements of the datatype's range.
pub fn from_json(input: &str, ty: Type, len: usize, data: &serde_json::Value) -> Result<HostBuffer, InferError> {
    let mut buf = HostBuffer::zeros(ty, len);
    let mut n = 0usize;
    let mut stack = vec![data];
    // Depth-first in document order, without recursion (a deeply nested
    // array cannot exhaust the stack).
    let mut pending: Vec<std::slice::Iter<'_, serde_json::Value>> = Vec::new();
    let bad = |problem: String| InferError::Data { input: input.to_string(), problem };
    while let Some(v) = stack.pop().or_else(|| {
        while let Some(it) = pending.last_mut() {
            if let Some(v) = it.next() {
                return Some(v);
            }
            pending.pop();
        }
        None
    }) {
        match v {
            serde_json::Value::Array(items) => pending.push(items.iter()),
            scalar => {
                if n >= len {
                    return Err(bad(format!("more than the {len} elements its shape declares")));
                }
                let value = json_scalar(ty, scalar)
                    .ok_or_else(|| bad(format!("element {n} is {scalar}, not a {} value", datatype_name(ty))))?;
                buf.set(n, value);
                n += 1;
            }
        }
    }
    if n != len {
        return Err(bad(format!("{n} elements given, its shape declares {len}")));
    }
    Ok(buf)
}

fn json_scalar(ty: Type, v: &serde_json::Value) -> Option<Scalar> {
    match ty {
        Type::Bool => v.as_bool().map(|b| Scalar::from_f64(ty, if b { 1.0 } else { 0.0 })),
        Type::I32 => v.as_i64().filter(|x| i32::try_from(*x).is_ok()).map(|x| Scalar::from_f64(ty, x as f64)),
        Type::U32 => v.as_u64().filter(|x| u32::try_from(*x).is_ok()).map(|x| Scalar::from_f64(ty, x as f64)),
        Type::I64 => v.as_i64().map(|x| Scalar::from_bits(ty, x as u64)),
        Type::U64 => v.as_u64().map(Scalar::U64),
        Type::I8 | Type::U8 | Type::I16 | Type::U16 => {
            let (lo, hi) = ty.int_range()?;
            v.as_i64().filter(|&x| (lo..=hi).contains(&(x as i128))).and_then(|x| Scalar::from_int(ty, x as i128))
        }
        Type::F32 | Type::F16 | Type::BF16 | Type::F64 => v.as_f64().map(|x| Scalar::from_f64(ty, x)),
    }
}

/// An output's contents as JSON numbers (booleans for BOOL).
pub fn to_json(buf: &HostBuffer) -> serde_json::Value {
    let ty = buf.elem();
    let values = (0..buf.len()).map(|i| {
        let s = buf.get(i);
        match ty {
            Type::Bool => serde_json::Value::Bool(s.to_bits() != 0),
            Type::I64 => serde_json::Value::from(s.to_bits() as i64),
            Type::U64 => serde_json::Value::from(s.to_bits()),
            Type::I32 | Type::U32 | Type::I8 | Type::U8 | Type::I16 | Type::U16 => {
                serde_json::Value::from(s.as_i64().unwrap_or(0))
            }
            Type::F32 | Type::F16 | Type::BF16 | Type::F64 => serde_json::Number::from_f64(s.to_f64())
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        }
    });
    serde_json::Value::Array(values.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_json_decode_alike() {
        let flat = from_json("x", Type::F32, 4, &json!([1.0, 2.0, 3.0, 4.5])).unwrap();
        let nested = from_json("x", Type::F32, 4, &json!([[1.0, 2.0], [3.0, 4.5]])).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.5]);
        let ints = from_json("ids", Type::I64, 2, &json!([-5, 9_000_000_000i64])).unwrap();
        assert_eq!(to_json(&ints), json!([-5, 9_000_000_000i64]));
    }

    #[test]
    fn wrong_counts_and_values_name_the_input() {
        let e = from_json("x", Type::F32, 3, &json!([1.0, 2.0])).unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("2 elements given"), "{e}");
        let e = from_json("x", Type::F32, 1, &json!([1.0, 2.0])).unwrap_err().to_string();
        assert!(e.contains("more than the 1"), "{e}");
        let e = from_json("x", Type::I32, 1, &json!(["a"])).unwrap_err().to_string();
        assert!(e.contains("INT32"), "{e}");
        assert!(from_json("x", Type::I32, 1, &json!([1u64 << 40])).is_err());
        let e = from_raw("x", Type::F32, 2, &[0; 7]).unwrap_err().to_string();
        assert!(e.contains("8") && e.contains("7"), "{e}");
    }

    #[test]
    fn declared_shapes_are_checked_before_allocation() {
        let e = check_declared("x", "FP32", &[1 << 40, 1 << 40], Type::F32, &[1, 8]).unwrap_err();
        assert!(matches!(e, InferError::Shape { .. }));
        assert!(check_declared("x", "FP32", &[-1, 8], Type::F32, &[1, 8]).is_err());
        assert!(matches!(check_declared("x", "INT64", &[1, 8], Type::F32, &[1, 8]), Err(InferError::Datatype { .. })));
        assert_eq!(check_declared("x", "FP32", &[1, 8], Type::F32, &[1, 8]).unwrap(), 8);
    }
}
