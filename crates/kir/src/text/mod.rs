//! The KIR text format: printing ([`std::fmt::Display`] for [`crate::KernelDef`]
//! and [`crate::Module`]) and parsing ([`parse_kernel`], [`parse_module`]).
//!
//! Text is how people read kernels, how `.kir` file tests state inputs and
//! expectations, and how a failing kernel is shown in an error. Printing then
//! parsing gives back the same kernel: the same ids, the same instructions
//! in the same order, constants bit for bit. For a kernel made by
//! [`crate::KernelBuilder`] the parsed kernel is equal field for field.
//!
//! # Syntax
//!
//! ```text
//! ; A comment runs from `;` to the end of the line.
//! kernel @vector_add grid(4, 1, 1) block(256, 1, 1) {
//!   p0 = buffer "x": f32[1000] read        ; read | write | readwrite
//!   p1 = buffer "out": f32[1000] write
//!   p2 = scalar "alpha": f32
//!   s0 = shared f32[256]                   ; shared array of one block
//!   x0 = var f32                           ; per-thread local variable
//!   v0: i32 = special block_id.x           ; block_id|thread_id|block_dim|grid_dim .x|.y|.z, lane_id
//!   v1: i32 = const 256
//!   v2: i32 = mul v0, v1                   ; add sub mul div rem min max and or xor shl shr
//!   v3: f32 = load p0[v2]
//!   store p1[v2], v3
//!   v4: f32 = shared_load s0[v2]
//!   shared_store s0[v2], v4
//!   var_set x0, v3
//!   v5: f32 = var_get x0
//!   v6: f32 = param p2                     ; reads a scalar parameter
//!   v7: f32 = fma v3, v5, v6
//!   v8: bool = lt v2, v1                   ; eq ne lt le gt ge
//!   v9: f32 = select v8, v3, v5
//!   v10: f16 = cast v9                     ; the target type is the result type
//!   v14: i32 = bitcast v9                  ; the same bits, a type of the same size
//!   v11: f32 = shuffle.xor v3, v1, 32      ; idx up down xor; value, operand, width
//!   v12: f32 = exp v11                     ; neg not abs exp log sqrt rsqrt tanh erf floor ceil
//!   barrier
//!   for v13 in v0..v1 step 1 {             ; the index takes the type of the start value
//!   }
//!   if v8 {
//!   } else {                               ; optional
//!   }
//! }
//! ```
//!
//! - One statement per line. Declarations (`pN`, `sN`, `xN`) come before the
//!   first instruction, each kind numbered from 0 in order. Parameter names
//!   are double-quoted strings with `\"`, `\\`, `\n`, `\t`, `\r` and `\u{hex}`
//!   escapes; a kernel name is `@ident` or `@"any string"`.
//! - Every instruction that produces a value is written `vN: type = ...`, and
//!   the parser takes the written type as the value's type (the verifier
//!   checks it against the operands). Types: `bool i32 u32 i64 f32 f16 bf16`.
//! - Value ids are kept: `v7` in text is value 7; ids may have gaps, and a
//!   value may be used above its definition (the verifier reports that), but
//!   a value used and never defined, or defined twice, is a parse error.
//! - Constants are written as [`crate::Scalar`] displays them: decimal
//!   integers, `true`/`false`, floats in shortest round-trip form, `inf`,
//!   `-inf`, and `nan:0x...` with the exact bits.
//! - A module is kernels one after another; the printer separates them with
//!   a blank line.
//!
//! The parser checks only what a [`crate::KernelDef`] cannot represent: syntax,
//! unknown names, ids out of order or defined twice. Everything else (types,
//! scoping, access kinds, barrier placement) belongs to
//! [`crate::verifier`], so a `.kir` file can hold a wrong kernel on purpose.
//! Malformed text is always a [`ParseError`] with a 1-based line and column,
//! never a panic.

mod lexer;
mod parse;
mod print;

#[cfg(test)]
mod tests;

pub use parse::{parse_kernel, parse_module, MAX_NESTING, MAX_VALUE_ID};

/// Why text is not a valid kernel or module, and where: `line` and `column`
/// are 1-based, and columns count characters.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}
