//! GGUF v3: value and tensor types ([`types`]), a bounds-checked mmap reader ([`reader`]) and a
//! streaming writer ([`writer`]). Layout facts: `docs/gguf.md`.

pub mod describe;
pub mod reader;
pub mod token_type;
pub mod types;
pub mod writer;

pub use reader::{GgufError, GgufFile, TensorInfo, pad};
pub use types::{Array, GgmlType, Value, ValueType};
pub use writer::{GgufWriter, TensorSpec};

/// File magic.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// Alignment used when `general.alignment` is absent (and by every file tinylm writes).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Maximum tensor rank ggml supports.
pub const MAX_DIMS: usize = 4;
/// Tensor names must be shorter than this (ggml's `GGML_MAX_NAME`).
pub const MAX_NAME_LEN: usize = 64;

#[cfg(test)]
mod tests;
