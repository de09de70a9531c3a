//! GGUF quantization bit-identical to llama-quantize (reference path, no imatrix).
//!
//! - Block formats, one file per family: [`q4`] (Q4_0, Q4_1), [`q5`] (Q5_0, Q5_1), [`q8`]
//!   (Q8_0), [`q2k`], [`q3k`], [`q4k`], [`q5k`], [`q6k`]; shared K-quant helpers in
//!   [`k_helpers`], float conversions in [`float`] (whole runs, vectorized, in [`float_rows`]), row dispatch in [`block`].
//! - [`ftype`]: llama-quantize's file types; [`select`]: per-tensor type rules and tensor order.
//! - [`file`]: whole-file quantization with per-tensor error statistics.
//!
//! Layouts and algorithms: `docs/quantization.md`.

pub(crate) mod block;
pub(crate) mod error;
pub(crate) mod file;
pub(crate) mod float;
pub(crate) mod float_rows;
pub(crate) mod ftype;
pub(crate) mod k_helpers;
pub(crate) mod lanes;
pub(crate) mod q2k;
pub(crate) mod q3k;
pub(crate) mod q4;
pub(crate) mod q4k;
pub(crate) mod q5;
pub(crate) mod q5k;
pub(crate) mod q6k;
pub(crate) mod q8;
pub(crate) mod select;

pub use block::{Block, dequantize_row, is_supported, quantize_row, quantize_row_reference};
pub use error::QuantError;
pub use float_rows::convert_run;
pub use file::{QuantReport, QuantizeOptions, TensorReport, quantize_file};
pub use ftype::{FileType, ParseFileTypeError};

#[cfg(test)]
mod tests;
