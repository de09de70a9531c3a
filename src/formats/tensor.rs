//! Dense tensors as the readers hand them out: a name, an element type, a shape and the bytes
//! (a slice of a memory-mapped file, or an owned buffer), grouped by the weight file that
//! holds them. The safetensors and torch readers produce these; the converters consume them.

use std::ops::Range;
use std::sync::Arc;

use super::DType;

/// A read-only mapping of a whole file, with the file itself: tensors are read through the
/// mapping, and copied whole with `copy_file_range` through the file.
#[derive(Debug)]
pub struct MappedFile {
    /// The mapping of the whole file, from offset 0.
    pub map: memmap2::Mmap,
    /// The open file.
    pub file: std::fs::File,
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// Bytes of one tensor: a slice of a memory-mapped file, or an owned buffer.
#[derive(Clone)]
pub enum TensorBytes {
    /// A range of a memory-mapped file (zero-copy).
    Mapped {
        /// The mapping, shared by every tensor of the file.
        map: Arc<MappedFile>,
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

    /// Maps the pages of `range` (bytes of this tensor) in one call, ahead of reading them
    /// sequentially, instead of one page fault every few pages. Only a hint.
    pub fn prefetch(&self, range: Range<usize>) {
        if let TensorBytes::Mapped { map, range: own } = self
            && let Some((off, len)) = page_span(own, &range, false)
        {
            #[cfg(target_os = "linux")]
            let _ = map
                .map
                .advise_range(memmap2::Advice::PopulateRead, off, len);
            #[cfg(not(target_os = "linux"))]
            let _ = map.map.advise_range(memmap2::Advice::WillNeed, off, len);
        }
    }

    /// Drops the pages lying wholly inside `range` (bytes of this tensor) from this process's
    /// memory once they have been read: they stay in the page cache, but no longer count in the
    /// process's resident set, so streaming a file through a mapping needs a window of memory,
    /// not the file's size. Reading them again later re-maps them from the file.
    pub fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        if let TensorBytes::Mapped { map, range: own } = self
            && let Some((off, len)) = page_span(own, &range, true)
        {
            // SAFETY: the mapping is a shared, read-only file mapping (`formats::map_file`):
            // MADV_DONTNEED only unmaps its pages; the next access faults the same file bytes
            // back in, so no reader ever sees different data.
            let _ = unsafe {
                map.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len)
            };
        }
    }
}

impl TensorBytes {
    /// The file and file offset holding `range` (bytes of this tensor), for copying file to
    /// file; `None` for owned bytes.
    pub fn file_range(&self, range: &Range<usize>) -> Option<(&std::fs::File, u64)> {
        match self {
            TensorBytes::Mapped { map, range: own } => {
                Some((&map.file, (own.start + range.start) as u64))
            }
            TensorBytes::Owned(_) => None,
        }
    }
}

/// Page size the page spans are rounded to; on larger-page systems the kernel call aligns
/// further (dropping a partly read page only costs a re-fault).
const PAGE: usize = 4096;

/// The mapping offset and length covering `range` of a tensor at `own` in its mapping: rounded
/// outwards to pages, or (`inner`, for dropping pages that have been read) without the pages
/// that bytes outside `range` may still need: the one holding the previous tensor's last bytes
/// (when `range` starts the tensor) and the one holding the next window's first bytes. Windows
/// read in order thus drop every page but one per tensor. `None` when empty.
fn page_span(own: &Range<usize>, range: &Range<usize>, inner: bool) -> Option<(usize, usize)> {
    let start = own.start + range.start.min(own.len());
    let end = own.start + range.end.min(own.len());
    let (start, end) = if inner {
        let first = if range.start == 0 {
            start.div_ceil(PAGE)
        } else {
            start / PAGE
        };
        (first * PAGE, end / PAGE * PAGE)
    } else {
        (start / PAGE * PAGE, end.div_ceil(PAGE) * PAGE)
    };
    if end > start {
        Some((start, end - start))
    } else {
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_spans_round_out_to_map_and_in_to_drop() {
        let own = 5000..30000;
        // Mapping rounds outwards.
        assert_eq!(page_span(&own, &(0..100), false), Some((4096, 4096)));
        // Dropping the tensor's first window keeps the page shared with the previous tensor
        // and the page the next window starts in.
        assert_eq!(page_span(&own, &(0..10000), true), Some((8192, 4096)));
        // A later window drops from the page it starts in.
        assert_eq!(page_span(&own, &(10000..25000), true), Some((12288, 16384)));
        // Windows smaller than a page drop nothing (and do not underflow).
        assert_eq!(page_span(&own, &(0..100), true), None);
        assert_eq!(page_span(&own, &(9000..9100), true), None);
    }
}
