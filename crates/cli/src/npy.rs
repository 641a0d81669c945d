//! Reading and writing `.npy` files as host buffers.
//!
//! `weft run` takes inputs and writes outputs as NumPy arrays so models can be
//! compared with other runtimes directly. Element types map one to one:
//! `f8`↔f64, `f4`↔f32, `f2`↔f16, `i1`/`i2`/`i4`/`i8`↔i8/i16/i32/i64,
//! `u1`/`u2`/`u4`/`u8`↔u8/u16/u32/u64, `b1`↔bool; bf16 is written as `f4`
//! (NumPy has no bfloat16); other float inputs are accepted and rounded to
//! the input's type. 8-bit float files (`f1`, ml_dtypes' float8 types) are
//! refused by name. Fortran-order files are reordered; float files are refused
//! for integer and boolean inputs rather than truncated.

use std::io::BufWriter;
use std::path::Path;

use npyz::WriterBuilder;
use weft::kir::{HostBuffer, Scalar, Type};
use weft_graph::{DType, Shape, Tensor, TensorData};

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "{path}: unsupported .npy element type {dtype} (use float64, float32, float16, int8/16/32/64, uint8/16/32/64 \
         or bool; 8-bit floats are not supported)"
    )]
    DType { path: String, dtype: String },
    /// Floats given for an integer or boolean input: converting would
    /// silently truncate (1.7 → 1) or invent values (NaN → 0).
    #[error("{path}: holds {dtype} values but the input is {elem}; save it with the input's type (e.g. `a.astype(np.int64)`)")]
    Kind { path: String, dtype: String, elem: Type },
}

/// A loaded array: shape and contents converted to `elem`.
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: HostBuffer,
}

/// The elements of a file, in C (row-major) order, as the widest type of
/// their kind.
enum Elements {
    Float(Vec<f64>),
    Int(Vec<i128>),
    Bool(Vec<bool>),
}

/// A file's shape, NumPy element code (`f4`, `i8`, …) and elements.
struct Raw {
    shape: Vec<usize>,
    dtype: String,
    elements: Elements,
}

fn read_raw(path: &Path) -> Result<Raw, NpyError> {
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
    let fortran = file.order() == npyz::Order::Fortran;
    let dtype = file.dtype().descr().trim_matches('\'').trim_start_matches(['<', '|', '=']).to_string();
    let elements = match dtype.as_str() {
        "f4" => Elements::Float(file.into_vec::<f32>().map_err(io)?.into_iter().map(f64::from).collect()),
        "f8" => Elements::Float(file.into_vec::<f64>().map_err(io)?),
        "f2" => Elements::Float(file.into_vec::<half::f16>().map_err(io)?.into_iter().map(|h| h.to_f64()).collect()),
        "i1" => Elements::Int(file.into_vec::<i8>().map_err(io)?.into_iter().map(i128::from).collect()),
        "i2" => Elements::Int(file.into_vec::<i16>().map_err(io)?.into_iter().map(i128::from).collect()),
        "i4" => Elements::Int(file.into_vec::<i32>().map_err(io)?.into_iter().map(i128::from).collect()),
        "i8" => Elements::Int(file.into_vec::<i64>().map_err(io)?.into_iter().map(i128::from).collect()),
        "u1" => Elements::Int(file.into_vec::<u8>().map_err(io)?.into_iter().map(i128::from).collect()),
        "u2" => Elements::Int(file.into_vec::<u16>().map_err(io)?.into_iter().map(i128::from).collect()),
        "u4" => Elements::Int(file.into_vec::<u32>().map_err(io)?.into_iter().map(i128::from).collect()),
        "u8" => Elements::Int(file.into_vec::<u64>().map_err(io)?.into_iter().map(i128::from).collect()),
        "b1" => Elements::Bool(file.into_vec::<bool>().map_err(io)?),
        other => return Err(NpyError::DType { path: p, dtype: other.to_string() }),
    };
    // A Fortran-order file stores the first index fastest; everything in
    // weft is row-major.
    let elements = if fortran {
        match elements {
            Elements::Float(v) => Elements::Float(fortran_to_c(&v, &shape)),
            Elements::Int(v) => Elements::Int(fortran_to_c(&v, &shape)),
            Elements::Bool(v) => Elements::Bool(fortran_to_c(&v, &shape)),
        }
    } else {
        elements
    };
    Ok(Raw { shape, dtype, elements })
}

/// Column-major elements of an array of `shape`, reordered row-major.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        out.push(v[index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        // Advance the row-major multi-index.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Reads `path` and converts its elements to `elem`. Floats are refused for
/// integer and boolean inputs (that would truncate); integers and booleans
/// convert to any type.
pub fn read(path: &Path, elem: Type) -> Result<NpyArray, NpyError> {
    let raw = read_raw(path)?;
    let mut data = HostBuffer::zeros(elem, raw.shape.iter().product());
    match raw.elements {
        Elements::Float(_) if !elem.is_float() => {
            return Err(NpyError::Kind { path: path.display().to_string(), dtype: raw.dtype, elem });
        }
        Elements::Float(v) => data = HostBuffer::from_f64(elem, &v),
        // Integers go through `Scalar` to keep all 64 bits (wrapping to
        // the input's width as C converts).
        Elements::Int(v) if !elem.is_float() => {
            for (i, x) in v.into_iter().enumerate() {
                if let Some(s) = Scalar::from_int(elem, x) {
                    data.set(i, s);
                }
            }
        }
        Elements::Int(v) => data = HostBuffer::from_f64(elem, &v.into_iter().map(|x| x as f64).collect::<Vec<_>>()),
        Elements::Bool(v) => {
            data = HostBuffer::from_f64(elem, &v.into_iter().map(|b| b as u8 as f64).collect::<Vec<_>>())
        }
    }
    Ok(NpyArray { shape: raw.shape, data })
}

/// Reads `path` as a model tensor of the file's own type (f32 for a float
/// file other than f64), for import to take shapes and attribute-like
/// values from; `Ok(None)` for types import has no tensor for (the run's
/// own read reports those).
pub fn read_tensor(path: &Path) -> Result<Option<Tensor>, NpyError> {
    let raw = match read_raw(path) {
        Ok(raw) => raw,
        Err(NpyError::DType { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let shape = Shape(raw.shape);
    Ok(Some(match raw.elements {
        Elements::Float(v) if raw.dtype == "f8" => Tensor { dtype: DType::F64, shape, data: TensorData::F64(v) },
        Elements::Float(v) => Tensor::f32(shape, v.into_iter().map(|x| x as f32).collect()),
        Elements::Int(v) => {
            let dtype = match raw.dtype.as_str() {
                "i1" => DType::I8,
                "i2" => DType::I16,
                "i4" => DType::I32,
                "u1" => DType::U8,
                "u2" => DType::U16,
                "u4" => DType::U32,
                "u8" => DType::U64,
                _ => DType::I64,
            };
            Tensor::from_ints(dtype, shape, &v)
        }
        Elements::Bool(v) => Tensor { dtype: DType::Bool, shape, data: TensorData::Bool(v) },
    }))
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
        Type::I32 => write_as!(i32, |s: Scalar| s.as_i64().unwrap_or(0) as i32),
        Type::I64 => write_as!(i64, |s: Scalar| s.as_i64().unwrap_or(0)),
        Type::I8 => write_as!(i8, |s: Scalar| s.as_i64().unwrap_or(0) as i8),
        Type::I16 => write_as!(i16, |s: Scalar| s.as_i64().unwrap_or(0) as i16),
        Type::U8 => write_as!(u8, |s: Scalar| s.to_bits() as u8),
        Type::U16 => write_as!(u16, |s: Scalar| s.to_bits() as u16),
        Type::U32 => write_as!(u32, |s: Scalar| s.to_bits() as u32),
        Type::U64 => write_as!(u64, |s: Scalar| s.to_bits()),
        Type::F64 => write_as!(f64, |s: Scalar| s.to_f64()),
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
        for ty in Type::ALL.into_iter().filter(|&t| t != Type::BF16) {
            let values: Vec<f64> =
                (0..6).map(|i| if ty == Type::Bool { (i % 2) as f64 } else { i as f64 - 2.5 }).collect();
            let buf = HostBuffer::from_f64(ty, &values);
            let path = dir.join(format!("{ty}.npy"));
            write(&path, &[2, 3], &buf).unwrap();
            let back = read(&path, ty).unwrap();
            assert_eq!(back.shape, vec![2, 3], "{ty}");
            assert_eq!(back.data, buf, "{ty}");
        }
        // Integers keep every bit of their width, through the file and back.
        let extremes = [
            Scalar::U64(u64::MAX),
            Scalar::U64((1 << 53) + 1),
            Scalar::I64(i64::MIN),
            Scalar::U32(u32::MAX),
            Scalar::I8(i8::MIN),
            Scalar::U16(u16::MAX),
        ];
        for s in extremes {
            let mut buf = HostBuffer::zeros(s.ty(), 1);
            buf.set(0, s);
            let path = dir.join(format!("extreme-{}.npy", s.ty()));
            write(&path, &[1], &buf).unwrap();
            assert_eq!(read(&path, s.ty()).unwrap().data.get(0), s, "{}", s.ty());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_sanitized_for_file_names() {
        assert_eq!(sanitize("save_infer_model/scale_0.tmp_1"), "save_infer_model_scale_0.tmp_1");
        assert_eq!(sanitize("a b:c"), "a_b_c");
    }
}
