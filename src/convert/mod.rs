//! Model conversions: tiny-lm checkpoint → Hugging Face folder, Hugging Face folder → GGUF.

pub mod hf;
pub mod hf_to_gguf;
pub mod tinylm_to_hf;
