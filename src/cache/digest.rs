//! blake3 digests and file hashing.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use crate::{IoContext, Result};

/// A blake3 digest; shown and stored as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Digest of a byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Hex form.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..12])
    }
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Digest, String> {
        blake3::Hash::from_hex(s)
            .map(|h| Digest(*h.as_bytes()))
            .map_err(|e| format!("bad digest {s:?}: {e}"))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Files at least this large are hashed through a memory map on all cores.
const MMAP_THRESHOLD: u64 = 1 << 20;

/// Hashes a file's contents; big files use blake3's multi-threaded mmap path.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let len = std::fs::metadata(path).with_path(path)?.len();
    let mut hasher = blake3::Hasher::new();
    if len >= MMAP_THRESHOLD {
        hasher.update_mmap_rayon(path).with_path(path)?;
    } else {
        let mut f = std::fs::File::open(path).with_path(path)?;
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).with_path(path)?;
        hasher.update(&buf);
    }
    Ok(Digest(*hasher.finalize().as_bytes()))
}
