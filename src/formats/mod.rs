//! File formats, each in its own module: readers and writers, no conversion logic.
//!
//! - [`gguf`]: GGUF v3 reader and streaming writer.
//! - [`safetensors`]: single and sharded safetensors reading (mmap) and deterministic writing.
//! - [`pytorch`]: torch zip checkpoints (`.ckpt`, `.pt`, `.bin`) through a restricted unpickler.
//! - [`tiktoken`]: pickled `tiktoken.core.Encoding` state.

pub mod dtype;
pub mod gguf;
pub mod pytorch;
pub mod safetensors;
pub mod tiktoken;

pub use dtype::DType;
