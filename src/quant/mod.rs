//! GGUF quantization bit-identical to llama-quantize, with or without an importance matrix.
//!
//! - Block formats, one file per family: [`q4`] (Q4_0, Q4_1), [`q5`] (Q5_0, Q5_1), [`q8`]
//!   (Q8_0), [`q2k`], [`q3k`], [`q4k`], [`q5k`], [`q6k`], [`iq1`], [`iq2`], [`iq3`], [`iq4`]
//!   (the IQ types, lattices in [`iq_tables`]/[`iq_grid`], searches in [`iq_search`]) and
//!   [`tq`] (TQ1_0, TQ2_0); shared K-quant helpers in [`k_helpers`], float conversions in
//!   [`float`] (whole runs, vectorized, in [`float_rows`]), row dispatch in [`block`].
//! - [`imatrix`]: llama-imatrix's GGUF and legacy `.dat` importance matrices.
//! - [`ftype`]: llama-quantize's file types; [`select`]: per-tensor type rules and tensor order;
//!   [`recipe`]: per-tensor overrides (`--tensor-type`, `--pure`, …).
//! - [`file`]: whole-file quantization with per-tensor error statistics.
//!
//! Layouts and algorithms: `docs/quantization.md`.

pub(crate) mod block;
pub(crate) mod error;
pub(crate) mod file;
pub(crate) mod float;
pub(crate) mod float_rows;
pub(crate) mod ftype;
pub(crate) mod imatrix;
pub(crate) mod iq1;
pub(crate) mod iq2;
pub(crate) mod iq3;
pub(crate) mod iq4;
pub(crate) mod iq_grid;
pub(crate) mod iq_search;
pub(crate) mod iq_tables;
pub(crate) mod k_helpers;
pub(crate) mod lanes;
#[cfg(target_arch = "x86_64")]
mod lanes_iq;
pub(crate) mod q2k;
pub(crate) mod q3k;
pub(crate) mod q4;
pub(crate) mod q4k;
pub(crate) mod q5;
pub(crate) mod q5k;
pub(crate) mod q6k;
pub(crate) mod q8;
pub(crate) mod recipe;
pub(crate) mod select;
pub(crate) mod tq;
#[cfg(target_arch = "x86_64")]
mod weighted_x8;

pub use block::{Block, dequantize_row, is_supported, quantize_row, quantize_row_reference};
pub use error::QuantError;
pub use file::{QuantReport, QuantizeOptions, TensorReport, quantize_file};
pub use float_rows::convert_run;
pub use ftype::{FileType, ParseFileTypeError};
pub use imatrix::{Imatrix, ImatrixFormat};
pub use recipe::{
    CompiledRecipe, Recipe, RecipeError, TensorTypeRule, parse_ggml_type, parse_tensor_type,
};

#[cfg(test)]
mod tests;
