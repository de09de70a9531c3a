//! File formats, each in its own module: readers and writers, no conversion logic.
//!
//! - [`gguf`]: GGUF v3 reader and streaming writer.
//! - [`safetensors`]: validated zero-copy reading (mmap) and deterministic writing of one file.
//! - [`pytorch`]: torch zip checkpoints (`.ckpt`, `.pt`, `.bin`) through a restricted unpickler.
//! - [`tiktoken`]: pickled `tiktoken.core.Encoding` state.
//! - [`sentencepiece`]: SentencePiece `tokenizer.model` (`ModelProto`).
//! - [`tensor`]: the tensors the weight readers hand out ([`tensor::Tensor`], by weight file).

pub mod dtype;
mod error;
pub mod gguf;
pub mod guard;
pub mod pytorch;
pub mod safetensors;
pub mod sentencepiece;
pub mod tensor;
pub mod tiktoken;

pub use dtype::DType;
pub use error::FileError;

use std::path::Path;
use std::sync::Arc;

/// Memory-maps an input file read-only; tensor readers hand out slices of this mapping.
///
/// Pages are not pre-faulted (that would make the whole file resident): streaming readers map
/// windows with [`tensor::TensorBytes::prefetch`] and drop them with
/// [`tensor::TensorBytes::release`].
pub(crate) fn map_file(path: &Path) -> std::io::Result<Arc<tensor::MappedFile>> {
    let (map, file) = crate::fsutil::input::map(path, false)?;
    Ok(Arc::new(tensor::MappedFile { map, file }))
}
