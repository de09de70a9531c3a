//! Dense tensors as the readers hand them out: a name, an element type, a shape and the bytes
//! (a slice of a memory-mapped file, or an owned buffer), grouped by the weight file that
//! holds them. The safetensors and torch readers produce these; the converters consume them.

use std::ops::Range;
use std::sync::Arc;

use super::DType;

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
pub struct Tensor {
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
pub struct WeightFile {
    /// File name inside the folder.
    pub file_name: String,
    /// Tensors in the order the file stores them.
    pub tensors: Vec<Tensor>,
}

impl WeightFile {
    /// Whether this is a torch pickle (`pytorch_model*.bin`) rather than safetensors. The
    /// reference converter iterates a pickle's tensors in stored order but a safetensors file's
    /// sorted by name, so the GGUF tensor order depends on it.
    pub fn is_pytorch_bin(&self) -> bool {
        self.file_name.ends_with(".bin")
    }
}
