//! File formats, each in its own module: readers and writers, no conversion logic.
//!
//! - [`gguf`]: GGUF v3 reader and streaming writer.
//! - [`safetensors`]: validated zero-copy reading (mmap) and deterministic writing of one file.
//! - [`pytorch`]: torch zip checkpoints (`.ckpt`, `.pt`, `.bin`) through a restricted unpickler.
//! - [`tiktoken`]: pickled `tiktoken.core.Encoding` state.
//! - [`tensor`]: the tensors the weight readers hand out ([`tensor::Tensor`], by weight file).

pub mod dtype;
mod error;
pub mod gguf;
pub mod pytorch;
pub mod safetensors;
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
pub(crate) fn map_file(path: &Path) -> std::io::Result<Arc<memmap2::Mmap>> {
    let file = std::fs::File::open(path)?;
    let opts = memmap2::MmapOptions::new();
    // SAFETY: the mapping is read-only (shared with the page cache, never written); tinylm never writes its
    // inputs. Like every mmap-based model reader, we rely on the user not truncating the file
    // while tinylm runs; readers bounds-check every offset against the mapping's length.
    let map = unsafe { opts.map(&file)? };
    Ok(Arc::new(map))
}
