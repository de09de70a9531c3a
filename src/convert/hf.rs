//! A Hugging Face model folder as data: the contract between the exporters and the GGUF converter.
//!
//! `tinylm_to_hf` produces an [`HfModel`] in memory (and can write it to disk); `hf_to_gguf`
//! consumes an [`HfModel`] whether it came from disk or from an exporter. Going
//! checkpoint → GGUF directly therefore sees exactly the bytes that checkpoint → HF folder → GGUF
//! would see, which is what makes the two paths byte-identical.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use crate::formats::DType;

/// Bytes of one tensor: a slice of a memory-mapped file, or an owned buffer.
#[derive(Clone)]
pub enum TensorBytes {
    /// A range of a memory-mapped file (zero-copy).
    Mapped {
        /// The mapping, shared by every tensor of the file.
        map: Arc<memmap2::Mmap>,
        /// Byte range of this tensor inside the mapping.
        range: Range<usize>,
    },
    /// An owned buffer (e.g. produced by a transformation during export).
    Owned(Arc<[u8]>),
}

impl TensorBytes {
    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            TensorBytes::Mapped { map, range } => &map[range.clone()],
            TensorBytes::Owned(buf) => buf,
        }
    }
}

impl std::fmt::Debug for TensorBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TensorBytes({} bytes)", self.as_bytes().len())
    }
}

/// One named tensor of a weight file, row-major, little-endian.
#[derive(Debug, Clone)]
pub struct HfTensor {
    /// Name as stored in the weight file (e.g. `model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape in numpy/torch order (outermost first).
    pub shape: Vec<usize>,
    /// The data; its length is `shape.product() * dtype.size()`.
    pub data: TensorBytes,
}

/// One weight file (`model.safetensors`, `model-00001-of-00002.safetensors`, `pytorch_model.bin`).
#[derive(Debug, Clone)]
pub struct HfWeightFile {
    /// File name inside the folder.
    pub file_name: String,
    /// Tensors in the order the file stores them.
    pub tensors: Vec<HfTensor>,
}

impl HfWeightFile {
    /// Whether this is a torch pickle (`pytorch_model*.bin`) rather than safetensors. The
    /// reference converter iterates a pickle's tensors in stored order but a safetensors file's
    /// sorted by name, so the GGUF tensor order depends on it.
    pub fn is_pytorch_bin(&self) -> bool {
        self.file_name.ends_with(".bin")
    }
}

/// A Hugging Face model folder: small text/JSON files plus weight files.
#[derive(Debug, Clone, Default)]
pub struct HfModel {
    /// The folder's name; the GGUF converter derives `general.name` from it like the reference.
    pub dir_name: String,
    /// Small files by name: `config.json`, `tokenizer.json`, `tokenizer_config.json`,
    /// `special_tokens_map.json`, `generation_config.json`, `chat_template.jinja`, `README.md`, …
    pub files: BTreeMap<String, Vec<u8>>,
    /// Weight files, in the order the reference converter reads them (sorted file names).
    pub weights: Vec<HfWeightFile>,
}
