//! Reading and writing `.npy` files as host buffers.
//!
//! `weft run` takes inputs and writes outputs as NumPy arrays so models can be
//! compared with other runtimes directly. Element types map one to one:
//! `f4`↔f32, `f2`↔f16, `i4`↔i32, `i8`↔i64, `b1`↔bool; bf16 is written as
//! `f4` (NumPy has no bfloat16); `f8` inputs are accepted and rounded to the
//! input's type.

use std::io::BufWriter;
use std::path::Path;

use npyz::WriterBuilder;
use weft::kir::{HostBuffer, Scalar, Type};

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: unsupported .npy element type {dtype} (use float32, float16, int32, int64 or bool)")]
    DType { path: String, dtype: String },
}

/// A loaded array: shape and contents converted to `elem`.
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: HostBuffer,
}

/// Reads `path` and converts its elements to `elem`.
pub fn read(path: &Path, elem: Type) -> Result<NpyArray, NpyError> {
    let p = path.display().to_string();
    let io = |source: std::io::Error| {
        // npyz reports a short file as "failed to fill whole buffer".
        let source = if source.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(source.kind(), "the file ends before the data its header describes (truncated?)")
        } else {
            source
        };
        NpyError::Io { path: p.clone(), source }
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let file = npyz::NpyFile::new(&bytes[..]).map_err(io)?;
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let descr = file.dtype().descr();
    let values: Vec<f64> = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => file.into_vec::<f32>().map_err(io)?.into_iter().map(f64::from).collect(),
        "f8" => file.into_vec::<f64>().map_err(io)?,
        "f2" => file.into_vec::<half::f16>().map_err(io)?.into_iter().map(|h| h.to_f64()).collect(),
        "i4" => file.into_vec::<i32>().map_err(io)?.into_iter().map(f64::from).collect(),
        "i8" => {
            // Integers go through `Scalar` to keep all 64 bits.
            let ints = file.into_vec::<i64>().map_err(io)?;
            let mut data = HostBuffer::zeros(elem, ints.len());
            for (i, v) in ints.into_iter().enumerate() {
                data.set(i, Scalar::I64(v));
            }
            return Ok(NpyArray { shape, data });
        }
        "b1" => file.into_vec::<bool>().map_err(io)?.into_iter().map(|b| b as u8 as f64).collect(),
        other => return Err(NpyError::DType { path: p, dtype: other.to_string() }),
    };
    Ok(NpyArray { shape, data: HostBuffer::from_f64(elem, &values) })
}

/// Writes `data` with `shape` to `path` in the matching NumPy type.
pub fn write(path: &Path, shape: &[usize], data: &HostBuffer) -> Result<(), NpyError> {
    let p = path.display().to_string();
    let io = |source| NpyError::Io { path: p.clone(), source };
    let file = std::fs::File::create(path).map_err(io)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let n = data.len();
    macro_rules! write_as {
        ($t:ty, $conv:expr) => {{
            let mut w = npyz::WriteOptions::<$t>::new()
                .default_dtype()
                .shape(&shape)
                .writer(BufWriter::new(file))
                .begin_nd()
                .map_err(io)?;
            w.extend((0..n).map(|i| $conv(data.get(i)))).map_err(io)?;
            w.finish().map_err(io)
        }};
    }
    match data.elem() {
        Type::F32 | Type::BF16 => write_as!(f32, |s: Scalar| s.to_f64() as f32),
        Type::F16 => write_as!(half::f16, |s: Scalar| half::f16::from_bits(s.to_bits() as u16)),
        Type::I32 | Type::U32 => write_as!(i32, |s: Scalar| s.as_i64().unwrap_or(0) as i32),
        Type::I64 => write_as!(i64, |s: Scalar| s.as_i64().unwrap_or(0)),
        Type::Bool => write_as!(bool, |s: Scalar| s.to_f64() != 0.0),
    }
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_npy() {
        let dir = std::env::temp_dir().join(format!("weft-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for ty in [Type::F32, Type::F16, Type::I32, Type::I64, Type::Bool] {
            let values: Vec<f64> =
                (0..6).map(|i| if ty == Type::Bool { (i % 2) as f64 } else { i as f64 - 2.5 }).collect();
            let buf = HostBuffer::from_f64(ty, &values);
            let path = dir.join(format!("{ty}.npy"));
            write(&path, &[2, 3], &buf).unwrap();
            let back = read(&path, ty).unwrap();
            assert_eq!(back.shape, vec![2, 3], "{ty}");
            assert_eq!(back.data, buf, "{ty}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_sanitized_for_file_names() {
        assert_eq!(sanitize("save_infer_model/scale_0.tmp_1"), "save_infer_model_scale_0.tmp_1");
        assert_eq!(sanitize("a b:c"), "a_b_c");
    }
}
