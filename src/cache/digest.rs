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

/// Files at least this big are hashed in parallel, chunk by chunk.
const PARALLEL_THRESHOLD: u64 = 1 << 20;

/// Bytes read and hashed at a time: big enough for blake3's rayon split to use every core,
/// small enough that hashing a multi-GB file keeps memory flat. (Mapping the file instead
/// made a fresh-cache build's peak RSS the size of its sources: 962 MiB for a 959 MiB model.)
const CHUNK: usize = 16 << 20;

/// Hashes a file's contents; big files are read in [`CHUNK`]s, each hashed on all cores.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let len = std::fs::metadata(path).with_path(path)?.len();
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).with_path(path)?;
    if len >= PARALLEL_THRESHOLD {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut f, &mut buf).with_path(path)?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
    } else {
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).with_path(path)?;
        hasher.update(&buf);
    }
    Ok(Digest(*hasher.finalize().as_bytes()))
}

/// Fills `buf` as far as the file goes; returns the bytes read (less than `buf` only at the end).
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_hash_equals_one_shot_blake3_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            100,
            PARALLEL_THRESHOLD as usize,
            CHUNK,
            CHUNK + 5,
            2 * CHUNK + 1,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(
                hash_file(&p).unwrap().0,
                *blake3::hash(&bytes).as_bytes(),
                "len {len}"
            );
        }
    }
}
