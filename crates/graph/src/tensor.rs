//! Static shapes and constant tensors (weights, folded constants, and the
//! reference evaluator's values).

use std::fmt;

use crate::dtype::DType;

/// A static shape: weft compiles per shape, so every dimension is known.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", dims.join("x"))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Shape {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Shape {
        Shape(v.to_vec())
    }
}

/// Element storage of a constant tensor. Narrow types share a wider
/// storage that holds every value exactly.
#[derive(Clone, PartialEq, Debug)]
pub enum TensorData {
    /// `f32`, and `f16`/`bf16` widened to `f32` (exactly).
    F32(Vec<f32>),
    /// `i32`, and `i8`/`u8`/`i16`/`u16`.
    I32(Vec<i32>),
    /// `i64`, and `u32`.
    I64(Vec<i64>),
    Bool(Vec<bool>),
    U64(Vec<u64>),
    F64(Vec<f64>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::U64(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A constant tensor: dtype, shape and data (`data.len() == shape.numel()`).
#[derive(Clone, PartialEq, Debug)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Shape,
    pub data: TensorData,
}

impl Tensor {
    pub fn f32(shape: impl Into<Shape>, data: Vec<f32>) -> Tensor {
        Tensor { dtype: DType::F32, shape: shape.into(), data: TensorData::F32(data) }
    }

    pub fn i64(shape: impl Into<Shape>, data: Vec<i64>) -> Tensor {
        Tensor { dtype: DType::I64, shape: shape.into(), data: TensorData::I64(data) }
    }

    /// Every element as `f64` (booleans as 0/1).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
            TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.clone(),
        }
    }

    /// Integer contents (for shape-like tensors), if the dtype is an integer type.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        match &self.data {
            TensorData::I64(v) => Some(v.clone()),
            TensorData::I32(v) => Some(v.iter().map(|&x| x as i64).collect()),
            TensorData::U64(v) => Some(v.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }

    /// Integer contents, exactly, if the dtype is an integer type.
    pub fn as_i128s(&self) -> Option<Vec<i128>> {
        match &self.data {
            TensorData::I64(v) => Some(v.iter().map(|&x| x as i128).collect()),
            TensorData::I32(v) => Some(v.iter().map(|&x| x as i128).collect()),
            TensorData::U64(v) => Some(v.iter().map(|&x| x as i128).collect()),
            _ => None,
        }
    }

    /// A tensor of integer `dtype` from exact integer values, each converted
    /// as C converts integers (keeping the low bits of the type's width).
    pub fn from_ints(dtype: DType, shape: impl Into<Shape>, values: &[i128]) -> Tensor {
        let data = match dtype {
            DType::I8 => TensorData::I32(values.iter().map(|&x| x as i8 as i32).collect()),
            DType::U8 => TensorData::I32(values.iter().map(|&x| x as u8 as i32).collect()),
            DType::I16 => TensorData::I32(values.iter().map(|&x| x as i16 as i32).collect()),
            DType::U16 => TensorData::I32(values.iter().map(|&x| x as u16 as i32).collect()),
            DType::I32 => TensorData::I32(values.iter().map(|&x| x as i32).collect()),
            DType::U32 => TensorData::I64(values.iter().map(|&x| x as u32 as i64).collect()),
            DType::I64 => TensorData::I64(values.iter().map(|&x| x as i64).collect()),
            DType::U64 => TensorData::U64(values.iter().map(|&x| x as u64).collect()),
            DType::Bool => TensorData::Bool(values.iter().map(|&x| x != 0).collect()),
            _ => return Tensor::from_f64(dtype, shape, &values.iter().map(|&x| x as f64).collect::<Vec<_>>()),
        };
        Tensor { dtype, shape: shape.into(), data }
    }
}

impl Tensor {
    pub fn i32(shape: impl Into<Shape>, data: Vec<i32>) -> Tensor {
        Tensor { dtype: DType::I32, shape: shape.into(), data: TensorData::I32(data) }
    }

    pub fn bool(shape: impl Into<Shape>, data: Vec<bool>) -> Tensor {
        Tensor { dtype: DType::Bool, shape: shape.into(), data: TensorData::Bool(data) }
    }

    /// A tensor of `dtype` from `f64` values, each rounded as the dtype stores
    /// it: to `f32`, to `f16`/`bf16` (then widened exactly), integers truncated
    /// toward zero (saturating), booleans as `x != 0`.
    pub fn from_f64(dtype: DType, shape: impl Into<Shape>, values: &[f64]) -> Tensor {
        let data = match dtype {
            DType::F32 => TensorData::F32(values.iter().map(|&x| x as f32).collect()),
            DType::F16 => TensorData::F32(values.iter().map(|&x| half::f16::from_f64(x).to_f32()).collect()),
            DType::BF16 => TensorData::F32(values.iter().map(|&x| half::bf16::from_f64(x).to_f32()).collect()),
            DType::I32 => TensorData::I32(values.iter().map(|&x| x as i32).collect()),
            DType::I64 => TensorData::I64(values.iter().map(|&x| x as i64).collect()),
            DType::Bool => TensorData::Bool(values.iter().map(|&x| x != 0.0).collect()),
            DType::I8 => TensorData::I32(values.iter().map(|&x| x as i8 as i32).collect()),
            DType::U8 => TensorData::I32(values.iter().map(|&x| x as u8 as i32).collect()),
            DType::I16 => TensorData::I32(values.iter().map(|&x| x as i16 as i32).collect()),
            DType::U16 => TensorData::I32(values.iter().map(|&x| x as u16 as i32).collect()),
            DType::U32 => TensorData::I64(values.iter().map(|&x| x as u32 as i64).collect()),
            DType::U64 => TensorData::U64(values.iter().map(|&x| x as u64).collect()),
            DType::F64 => TensorData::F64(values.to_vec()),
        };
        Tensor { dtype, shape: shape.into(), data }
    }

    /// Checks that the storage variant fits the dtype and the element count
    /// fits the shape; says what is wrong otherwise.
    pub fn validate(&self) -> Result<(), String> {
        let fits = matches!(
            (self.dtype, &self.data),
            (DType::F32 | DType::F16 | DType::BF16, TensorData::F32(_))
                | (DType::I32 | DType::I8 | DType::U8 | DType::I16 | DType::U16, TensorData::I32(_))
                | (DType::I64 | DType::U32, TensorData::I64(_))
                | (DType::Bool, TensorData::Bool(_))
                | (DType::U64, TensorData::U64(_))
                | (DType::F64, TensorData::F64(_))
        );
        if !fits {
            return Err(format!("dtype {} does not match its storage", self.dtype));
        }
        if let (Some((lo, hi)), Some(values)) = (self.dtype.int_range(), self.as_i128s()) {
            if let Some(v) = values.iter().find(|&&v| v < lo || v > hi) {
                return Err(format!("holds {v}, outside {}'s range {lo}..={hi}", self.dtype));
            }
        }
        if self.data.len() != self.shape.numel() {
            return Err(format!(
                "has {} elements but shape {} needs {}",
                self.data.len(),
                self.shape,
                self.shape.numel()
            ));
        }
        Ok(())
    }
}
