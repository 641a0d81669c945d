//! Scalar types of KIR and their host representation.
//!
//! Every value, buffer element, shared-array element and local variable has one
//! of these types. Values are carried around as raw bits in a `u64` ([`Scalar`]
//! converts) so that executors can store lanes of any type in one array.

use std::fmt;

use half::{bf16, f16};

/// A KIR scalar type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Type {
    Bool,
    I32,
    U32,
    I64,
    F32,
    F16,
    BF16,
    I8,
    U8,
    I16,
    U16,
    U64,
    F64,
}

impl Type {
    /// Every type, in text-format order.
    pub const ALL: [Type; 13] = [
        Type::Bool,
        Type::I32,
        Type::U32,
        Type::I64,
        Type::F32,
        Type::F16,
        Type::BF16,
        Type::I8,
        Type::U8,
        Type::I16,
        Type::U16,
        Type::U64,
        Type::F64,
    ];

    /// Size of one element in global or shared memory, in bytes.
    pub fn size_bytes(self) -> u64 {
        match self {
            Type::Bool | Type::I8 | Type::U8 => 1,
            Type::F16 | Type::BF16 | Type::I16 | Type::U16 => 2,
            Type::I32 | Type::U32 | Type::F32 => 4,
            Type::I64 | Type::U64 | Type::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Type::F32 | Type::F16 | Type::BF16 | Type::F64)
    }

    pub fn is_int(self) -> bool {
        matches!(self, Type::I32 | Type::U32 | Type::I64 | Type::I8 | Type::U8 | Type::I16 | Type::U16 | Type::U64)
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, Type::I32 | Type::I64 | Type::I8 | Type::I16)
    }

    /// Whether values of the type can index buffers and bound loops (`i32`,
    /// `u32`, `i64`).
    pub fn is_index(self) -> bool {
        matches!(self, Type::I32 | Type::U32 | Type::I64)
    }

    /// The width of an integer type in bits (`bool` counts as 1).
    pub fn int_bits(self) -> Option<u32> {
        match self {
            Type::Bool => Some(1),
            Type::I8 | Type::U8 => Some(8),
            Type::I16 | Type::U16 => Some(16),
            Type::I32 | Type::U32 => Some(32),
            Type::I64 | Type::U64 => Some(64),
            _ => None,
        }
    }

    /// The smallest and largest value of an integer type (`bool`: 0 and 1).
    pub fn int_range(self) -> Option<(i128, i128)> {
        let bits = self.int_bits()?;
        Some(match self {
            Type::Bool => (0, 1),
            t if t.is_signed_int() => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
            _ => (0, (1i128 << bits) - 1),
        })
    }

    /// The name used by the text format (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::I32 => "i32",
            Type::U32 => "u32",
            Type::I64 => "i64",
            Type::F32 => "f32",
            Type::F16 => "f16",
            Type::BF16 => "bf16",
            Type::I8 => "i8",
            Type::U8 => "u8",
            Type::I16 => "i16",
            Type::U16 => "u16",
            Type::U64 => "u64",
            Type::F64 => "f64",
        }
    }

    pub fn from_name(name: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed scalar constant or runtime value.
#[derive(Copy, Clone, PartialEq, Debug)]
pub enum Scalar {
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F16(f16),
    BF16(bf16),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    U64(u64),
    F64(f64),
}

impl Scalar {
    pub fn ty(self) -> Type {
        match self {
            Scalar::Bool(_) => Type::Bool,
            Scalar::I32(_) => Type::I32,
            Scalar::U32(_) => Type::U32,
            Scalar::I64(_) => Type::I64,
            Scalar::F32(_) => Type::F32,
            Scalar::F16(_) => Type::F16,
            Scalar::BF16(_) => Type::BF16,
            Scalar::I8(_) => Type::I8,
            Scalar::U8(_) => Type::U8,
            Scalar::I16(_) => Type::I16,
            Scalar::U16(_) => Type::U16,
            Scalar::U64(_) => Type::U64,
            Scalar::F64(_) => Type::F64,
        }
    }

    /// The value's bits, zero-extended to 64 bits (the executors' lane format).
    pub fn to_bits(self) -> u64 {
        match self {
            Scalar::Bool(b) => b as u64,
            Scalar::I32(v) => v as u32 as u64,
            Scalar::U32(v) => v as u64,
            Scalar::I64(v) => v as u64,
            Scalar::F32(v) => v.to_bits() as u64,
            Scalar::F16(v) => v.to_bits() as u64,
            Scalar::BF16(v) => v.to_bits() as u64,
            Scalar::I8(v) => v as u8 as u64,
            Scalar::U8(v) => v as u64,
            Scalar::I16(v) => v as u16 as u64,
            Scalar::U16(v) => v as u64,
            Scalar::U64(v) => v,
            Scalar::F64(v) => v.to_bits(),
        }
    }

    /// Rebuilds a scalar of type `ty` from lane bits.
    pub fn from_bits(ty: Type, bits: u64) -> Scalar {
        match ty {
            Type::Bool => Scalar::Bool(bits & 1 != 0),
            Type::I32 => Scalar::I32(bits as u32 as i32),
            Type::U32 => Scalar::U32(bits as u32),
            Type::I64 => Scalar::I64(bits as i64),
            Type::F32 => Scalar::F32(f32::from_bits(bits as u32)),
            Type::F16 => Scalar::F16(f16::from_bits(bits as u16)),
            Type::BF16 => Scalar::BF16(bf16::from_bits(bits as u16)),
            Type::I8 => Scalar::I8(bits as u8 as i8),
            Type::U8 => Scalar::U8(bits as u8),
            Type::I16 => Scalar::I16(bits as u16 as i16),
            Type::U16 => Scalar::U16(bits as u16),
            Type::U64 => Scalar::U64(bits),
            Type::F64 => Scalar::F64(f64::from_bits(bits)),
        }
    }

    /// The value as `f64` (booleans as 0/1), for references and printing.
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::I32(v) => v as f64,
            Scalar::U32(v) => v as f64,
            Scalar::I64(v) => v as f64,
            Scalar::F32(v) => v as f64,
            Scalar::F16(v) => v.to_f64(),
            Scalar::BF16(v) => v.to_f64(),
            Scalar::I8(v) => v as f64,
            Scalar::U8(v) => v as f64,
            Scalar::I16(v) => v as f64,
            Scalar::U16(v) => v as f64,
            Scalar::U64(v) => v as f64,
            Scalar::F64(v) => v,
        }
    }

    /// Converts `v` to type `ty` with C cast semantics (floats truncate toward
    /// zero and saturate when converted to integers; NaN becomes 0).
    pub fn from_f64(ty: Type, v: f64) -> Scalar {
        match ty {
            Type::Bool => Scalar::Bool(v != 0.0),
            Type::I32 => Scalar::I32(v as i32),
            Type::U32 => Scalar::U32(v as u32),
            Type::I64 => Scalar::I64(v as i64),
            Type::F32 => Scalar::F32(v as f32),
            Type::F16 => Scalar::F16(f16::from_f64(v)),
            Type::BF16 => Scalar::BF16(bf16::from_f64(v)),
            Type::I8 => Scalar::I8(v as i8),
            Type::U8 => Scalar::U8(v as u8),
            Type::I16 => Scalar::I16(v as i16),
            Type::U16 => Scalar::U16(v as u16),
            Type::U64 => Scalar::U64(v as u64),
            Type::F64 => Scalar::F64(v),
        }
    }

    /// The value as an integer, for integer and boolean scalars (a `u64`
    /// above `i64::MAX` wraps; [`Scalar::as_i128`] keeps it).
    pub fn as_i64(self) -> Option<i64> {
        self.as_i128().map(|v| v as i64)
    }

    /// The exact value of an integer or boolean scalar.
    pub fn as_i128(self) -> Option<i128> {
        match self {
            Scalar::Bool(b) => Some(b as i128),
            Scalar::I32(v) => Some(v as i128),
            Scalar::U32(v) => Some(v as i128),
            Scalar::I64(v) => Some(v as i128),
            Scalar::I8(v) => Some(v as i128),
            Scalar::U8(v) => Some(v as i128),
            Scalar::I16(v) => Some(v as i128),
            Scalar::U16(v) => Some(v as i128),
            Scalar::U64(v) => Some(v as i128),
            _ => None,
        }
    }

    /// Integer `v` converted to integer type `ty` the way C converts
    /// (keeping the low bits); `None` for float types.
    pub fn from_int(ty: Type, v: i128) -> Option<Scalar> {
        match ty {
            Type::Bool => Some(Scalar::Bool(v != 0)),
            t if t.is_int() => Some(Scalar::from_bits(t, v as u64)),
            _ => None,
        }
    }
}

impl fmt::Display for Scalar {
    /// Integers print in decimal. Finite floats print in Rust's shortest
    /// round-tripping decimal form (always with a `.` or exponent, so `1.0` not
    /// `1`); infinities as `inf`/`-inf`; NaNs as `nan:0x...` with their exact bits.
    /// Text therefore round-trips bit for bit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::I32(v) => write!(f, "{v}"),
            Scalar::U32(v) => write!(f, "{v}"),
            Scalar::I64(v) => write!(f, "{v}"),
            Scalar::I8(v) => write!(f, "{v}"),
            Scalar::U8(v) => write!(f, "{v}"),
            Scalar::I16(v) => write!(f, "{v}"),
            Scalar::U16(v) => write!(f, "{v}"),
            Scalar::U64(v) => write!(f, "{v}"),
            Scalar::F64(v) if v.is_finite() => write!(f, "{v:?}"),
            Scalar::F64(v) => fmt_float(f, v as f32, v.to_bits()),
            Scalar::F32(v) => fmt_float(f, v, v.to_bits() as u64),
            Scalar::F16(v) => fmt_float(f, v.to_f32(), v.to_bits() as u64),
            Scalar::BF16(v) => fmt_float(f, v.to_f32(), v.to_bits() as u64),
        }
    }
}

fn fmt_float(f: &mut fmt::Formatter<'_>, v: f32, bits: u64) -> fmt::Result {
    if v.is_nan() {
        write!(f, "nan:{bits:#x}")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        write!(f, "{v:?}")
    }
}

impl Scalar {
    /// Parses the text form written by `Display` as a value of type `ty`.
    pub fn parse(ty: Type, text: &str) -> Option<Scalar> {
        match ty {
            Type::Bool => match text {
                "true" => Some(Scalar::Bool(true)),
                "false" => Some(Scalar::Bool(false)),
                _ => None,
            },
            Type::I32 => text.parse().ok().map(Scalar::I32),
            Type::U32 => text.parse().ok().map(Scalar::U32),
            Type::I64 => text.parse().ok().map(Scalar::I64),
            Type::I8 => text.parse().ok().map(Scalar::I8),
            Type::U8 => text.parse().ok().map(Scalar::U8),
            Type::I16 => text.parse().ok().map(Scalar::I16),
            Type::U16 => text.parse().ok().map(Scalar::U16),
            Type::U64 => text.parse().ok().map(Scalar::U64),
            Type::F64 => {
                if let Some(hex) = text.strip_prefix("nan:0x") {
                    return u64::from_str_radix(hex, 16).ok().map(|b| Scalar::F64(f64::from_bits(b)));
                }
                match text {
                    "inf" => Some(Scalar::F64(f64::INFINITY)),
                    "-inf" => Some(Scalar::F64(f64::NEG_INFINITY)),
                    _ => text.parse().ok().map(Scalar::F64),
                }
            }
            Type::F32 | Type::F16 | Type::BF16 => {
                if let Some(hex) = text.strip_prefix("nan:0x") {
                    let bits = u64::from_str_radix(hex, 16).ok()?;
                    return Some(Scalar::from_bits(ty, bits));
                }
                let v: f32 = match text {
                    "inf" => f32::INFINITY,
                    "-inf" => f32::NEG_INFINITY,
                    _ => text.parse().ok()?,
                };
                Some(match ty {
                    Type::F32 => Scalar::F32(v),
                    Type::F16 => Scalar::F16(f16::from_f32(v)),
                    _ => Scalar::BF16(bf16::from_f32(v)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_text_round_trips_bit_for_bit() {
        let samples = [
            Scalar::F32(0.1),
            Scalar::F32(-3.5e-12),
            Scalar::F32(f32::INFINITY),
            Scalar::F32(f32::from_bits(0x7fc0_0001)),
            Scalar::F16(f16::from_f32(0.333)),
            Scalar::BF16(bf16::from_f32(-7.25)),
            Scalar::I64(-9_000_000_000),
            Scalar::U32(u32::MAX),
            Scalar::Bool(true),
            Scalar::I8(-128),
            Scalar::U8(255),
            Scalar::I16(-32768),
            Scalar::U16(65535),
            Scalar::U64(u64::MAX),
            Scalar::F64(0.1),
            Scalar::F64(f64::from_bits(0x7ff8_0000_0000_0001)),
            Scalar::F64(f64::NEG_INFINITY),
        ];
        for s in samples {
            let text = s.to_string();
            let back = Scalar::parse(s.ty(), &text).unwrap();
            assert_eq!(back.to_bits(), s.to_bits(), "{text}");
        }
    }

    #[test]
    fn bits_round_trip_for_every_type() {
        for ty in Type::ALL {
            let s = Scalar::from_f64(ty, 1.0);
            assert_eq!(Scalar::from_bits(ty, s.to_bits()), s);
            assert_eq!(Type::from_name(ty.name()), Some(ty));
        }
    }
}
