//! GGUF quantization bit-identical to llama-quantize (reference path, no imatrix).
//!
//! - Block formats, one file per family: [`q4`] (Q4_0, Q4_1), [`q5`] (Q5_0, Q5_1), [`q8`]
//!   (Q8_0), [`q2k`], [`q3k`], [`q4k`], [`q5k`], [`q6k`]; shared K-quant helpers in
//!   [`k_helpers`], float conversions in [`float`], row dispatch in [`block`].
//! - [`ftype`]: llama-quantize's file types; [`select`]: per-tensor type rules and tensor order.
//! - [`file`]: whole-file quantization with per-tensor error statistics.
//!
//! Layouts and algorithms: `notes/llama-cpp.md` §4–5.

pub mod block;
pub mod error;
pub mod file;
pub mod float;
pub mod ftype;
pub mod imatrix;
pub mod iq1;
pub mod iq2;
pub mod iq3;
pub mod iq4;
pub mod iq_grid;
pub mod iq_search;
pub mod iq_tables;
pub mod k_helpers;
pub mod lanes;
#[cfg(target_arch = "x86_64")]
mod lanes_iq;
pub mod q2k;
pub mod q3k;
pub mod q4;
pub mod q4k;
pub mod q5;
pub mod q5k;
pub mod q6k;
pub mod q8;
pub mod recipe;
pub mod select;
pub mod tq;
#[cfg(target_arch = "x86_64")]
mod weighted_x8;

pub use block::{Block, dequantize_row, quantize_row};
pub use error::QuantError;
pub use file::{QuantReport, QuantizeOptions, TensorReport, quantize_file};
pub use ftype::{FileType, ParseFileTypeError};
pub use imatrix::{Imatrix, ImatrixFormat};
pub use recipe::{CompiledRecipe, Recipe, RecipeError, TensorTypeRule};

#[cfg(test)]
mod tests;
