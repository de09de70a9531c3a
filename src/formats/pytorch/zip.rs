//! A minimal read-only zip central-directory parser over a byte slice (the mmap of a checkpoint).
//!
//! torch writes its archives with every entry *stored* (no compression) and aligned, so the only
//! thing we need from the zip format is "entry name → byte range of its data" to hand out
//! zero-copy slices of the mapping. A general zip crate is stream-oriented (Read + Seek) and
//! brings compression back-ends we would never use; this parser is ~200 lines, handles Zip64,
//! never allocates more than the central directory describes, and rejects anything that is not a
//! plain stored entry with a clear message.

use std::collections::BTreeMap;
use std::ops::Range;

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// No end-of-central-directory record: not a zip archive, or truncated at the end.
    #[error("no zip end-of-central-directory record (not a zip archive, or the file is truncated)")]
    NoEndRecord,
    /// A structure points outside the file.
    #[error("zip {what} at byte {offset} runs past the end of the file (truncated archive?)")]
    OutOfBounds {
        /// Which structure.
        what: &'static str,
        /// Where it starts.
        offset: u64,
    },
    /// A structure does not carry its signature.
    #[error("bad zip {what} signature at byte {offset} (corrupt archive)")]
    BadSignature {
        /// Which structure.
        what: &'static str,
        /// Where it was expected.
        offset: u64,
    },
    /// Multi-disk archives are not supported.
    #[error("multi-disk zip archives are not supported")]
    MultiDisk,
    /// The entry is compressed or encrypted.
    #[error(
        "zip entry {name:?} is {why}; torch checkpoints store entries uncompressed \
         (re-save the file with torch.save)"
    )]
    Unsupported {
        /// Entry name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two entries with the same name.
    #[error("zip entry {0:?} appears twice")]
    Duplicate(String),
    /// An entry name is not UTF-8.
    #[error("zip entry name is not valid UTF-8")]
    BadName,
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;

/// The entries of a zip archive: name → data range inside the archive bytes.
#[derive(Debug, Clone, Default)]
pub struct ZipIndex {
    entries: BTreeMap<String, Entry>,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Byte range of the entry's data inside the archive.
    pub range: Range<usize>,
    /// CRC-32 recorded in the central directory.
    pub crc32: u32,
}

impl ZipIndex {
    /// Parses the central directory of `data`.
    pub fn parse(data: &[u8]) -> Result<ZipIndex, ZipError> {
        let eocd = find_eocd(data)?;
        let r = Reader::new(data);
        let disk = r.u16(eocd + 4, "end record")?;
        let cd_disk = r.u16(eocd + 6, "end record")?;
        let mut count = u64::from(r.u16(eocd + 10, "end record")?);
        let mut cd_size = u64::from(r.u32(eocd + 12, "end record")?);
        let mut cd_offset = u64::from(r.u32(eocd + 16, "end record")?);
        if disk != 0 || cd_disk != 0 {
            return Err(ZipError::MultiDisk);
        }
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            (count, cd_size, cd_offset) = read_zip64_end(&r, eocd)?;
        }
        let cd_start = to_usize(cd_offset, "central directory")?;
        let cd_end = cd_start
            .checked_add(to_usize(cd_size, "central directory")?)
            .filter(|&e| e <= data.len())
            .ok_or(ZipError::OutOfBounds {
                what: "central directory",
                offset: cd_offset,
            })?;

        let mut entries = BTreeMap::new();
        let mut pos = cd_start;
        for _ in 0..count {
            if pos >= cd_end {
                return Err(ZipError::OutOfBounds {
                    what: "central directory entry",
                    offset: pos as u64,
                });
            }
            let (name, entry, next) = read_central_entry(&r, pos)?;
            if entries.insert(name.clone(), entry).is_some() {
                return Err(ZipError::Duplicate(name));
            }
            pos = next;
        }
        Ok(ZipIndex { entries })
    }

    /// The entry called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// All entry names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

fn to_usize(v: u64, what: &'static str) -> Result<usize, ZipError> {
    usize::try_from(v).map_err(|_| ZipError::OutOfBounds { what, offset: v })
}

/// Finds the end-of-central-directory record, scanning back over a possible archive comment.
fn find_eocd(data: &[u8]) -> Result<usize, ZipError> {
    if data.len() < EOCD_LEN {
        return Err(ZipError::NoEndRecord);
    }
    let last = data.len() - EOCD_LEN;
    let first = last.saturating_sub(0xFFFF);
    let r = Reader::new(data);
    (first..=last)
        .rev()
        .find(|&p| {
            r.u32(p, "").ok() == Some(EOCD_SIG)
                && r.u16(p + 20, "")
                    .is_ok_and(|comment| p + EOCD_LEN + usize::from(comment) <= data.len())
        })
        .ok_or(ZipError::NoEndRecord)
}

fn read_zip64_end(r: &Reader<'_>, eocd: usize) -> Result<(u64, u64, u64), ZipError> {
    let loc = eocd.checked_sub(20).ok_or(ZipError::OutOfBounds {
        what: "zip64 locator",
        offset: 0,
    })?;
    if r.u32(loc, "zip64 locator")? != ZIP64_LOCATOR_SIG {
        return Err(ZipError::BadSignature {
            what: "zip64 locator",
            offset: loc as u64,
        });
    }
    let rec64 = r.u64(loc + 8, "zip64 locator")?;
    let rec = to_usize(rec64, "zip64 end record")?;
    if r.u32(rec, "zip64 end record")? != ZIP64_EOCD_SIG {
        return Err(ZipError::BadSignature {
            what: "zip64 end record",
            offset: rec64,
        });
    }
    if r.u32(rec + 16, "zip64 end record")? != 0 || r.u32(rec + 20, "zip64 end record")? != 0 {
        return Err(ZipError::MultiDisk);
    }
    let count = r.u64(rec + 32, "zip64 end record")?;
    let size = r.u64(rec + 40, "zip64 end record")?;
    let offset = r.u64(rec + 48, "zip64 end record")?;
    Ok((count, size, offset))
}

/// Reads the central-directory entry at `pos`; returns it and the position of the next one.
fn read_central_entry(r: &Reader<'_>, pos: usize) -> Result<(String, Entry, usize), ZipError> {
    const WHAT: &str = "central directory entry";
    if r.u32(pos, WHAT)? != CENTRAL_SIG {
        return Err(ZipError::BadSignature {
            what: WHAT,
            offset: pos as u64,
        });
    }
    let flags = r.u16(pos + 8, WHAT)?;
    let method = r.u16(pos + 10, WHAT)?;
    let crc32 = r.u32(pos + 16, WHAT)?;
    let mut csize = u64::from(r.u32(pos + 20, WHAT)?);
    let mut usize_ = u64::from(r.u32(pos + 24, WHAT)?);
    let name_len = usize::from(r.u16(pos + 28, WHAT)?);
    let extra_len = usize::from(r.u16(pos + 30, WHAT)?);
    let comment_len = usize::from(r.u16(pos + 32, WHAT)?);
    let mut local = u64::from(r.u32(pos + 42, WHAT)?);
    let name_bytes = r.bytes(pos + 46, name_len, WHAT)?;
    let name = std::str::from_utf8(name_bytes)
        .map_err(|_| ZipError::BadName)?
        .to_owned();
    let extra = r.bytes(pos + 46 + name_len, extra_len, WHAT)?;
    let next = pos + 46 + name_len + extra_len + comment_len;
    r.bytes(pos, next - pos, WHAT)?;

    // Zip64 extended information: only the fields saturated in the fixed record are present.
    let mut ex = Reader::new(extra);
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = ex.u16(at, "extra field")?;
        let len = usize::from(ex.u16(at + 2, "extra field")?);
        if id == 0x0001 {
            let body = ex.bytes(at + 4, len, "zip64 extra field")?;
            ex = Reader::new(body);
            let mut f = 0;
            for field in [&mut usize_, &mut csize, &mut local] {
                if *field == 0xFFFF_FFFF {
                    *field = ex.u64(f, "zip64 extra field")?;
                    f += 8;
                }
            }
            break;
        }
        at += 4 + len;
    }

    if flags & 1 != 0 {
        return Err(ZipError::Unsupported {
            name,
            why: "encrypted".into(),
        });
    }
    if method != 0 || csize != usize_ {
        return Err(ZipError::Unsupported {
            name,
            why: format!("compressed (method {method})"),
        });
    }

    let local = to_usize(local, "local header")?;
    if r.u32(local, "local header")? != LOCAL_SIG {
        return Err(ZipError::BadSignature {
            what: "local header",
            offset: local as u64,
        });
    }
    let lname = usize::from(r.u16(local + 26, "local header")?);
    let lextra = usize::from(r.u16(local + 28, "local header")?);
    let start = local + 30 + lname + lextra;
    let len = to_usize(usize_, "entry data")?;
    r.bytes(start, len, "entry data")?;
    Ok((
        name,
        Entry {
            range: start..start + len,
            crc32,
        },
        next,
    ))
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn bytes(&self, at: usize, len: usize, what: &'static str) -> Result<&'a [u8], ZipError> {
        at.checked_add(len)
            .and_then(|end| self.data.get(at..end))
            .ok_or(ZipError::OutOfBounds {
                what,
                offset: at as u64,
            })
    }

    fn array<const N: usize>(&self, at: usize, what: &'static str) -> Result<[u8; N], ZipError> {
        let b = self.bytes(at, N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u16(&self, at: usize, what: &'static str) -> Result<u16, ZipError> {
        self.array(at, what).map(u16::from_le_bytes)
    }

    fn u32(&self, at: usize, what: &'static str) -> Result<u32, ZipError> {
        self.array(at, what).map(u32::from_le_bytes)
    }

    fn u64(&self, at: usize, what: &'static str) -> Result<u64, ZipError> {
        self.array(at, what).map(u64::from_le_bytes)
    }
}

/// CRC-32 (IEEE, as used by zip), for verifying the small pickle entries.
pub fn crc32(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    static TABLE: [u32; 256] = table();
    let mut c = !0u32;
    for &b in data {
        c = TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// Builds a stored zip archive the way torch does (without alignment padding), for tests.
#[cfg(test)]
pub(crate) fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stored_entries() {
        let z = make_zip(&[("a/data.pkl", b"hello"), ("a/data/0", b"\x01\x02")]);
        let idx = ZipIndex::parse(&z).unwrap();
        let e = idx.get("a/data.pkl").unwrap();
        assert_eq!(&z[e.range.clone()], b"hello");
        assert_eq!(e.crc32, crc32(b"hello"));
        assert_eq!(&z[idx.get("a/data/0").unwrap().range.clone()], b"\x01\x02");
        assert_eq!(idx.names().collect::<Vec<_>>(), ["a/data.pkl", "a/data/0"]);
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let z = make_zip(&[("a/data.pkl", b"hello world"), ("a/data/0", &[7u8; 40])]);
        for n in 0..z.len() {
            // Dropping the tail loses the end record; it must be reported, never panic.
            assert!(
                ZipIndex::parse(&z[..n]).is_err(),
                "prefix of {n} bytes parsed"
            );
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let z = make_zip(&[("a/data.pkl", b"hello world"), ("a/data/0", &[7u8; 40])]);
        for i in 0..z.len() {
            for v in [0u8, 0xFF, 0x80] {
                let mut c = z.clone();
                c[i] = v;
                let _ = ZipIndex::parse(&c);
            }
        }
    }

    #[test]
    fn rejects_compressed_entries() {
        let mut z = make_zip(&[("x", b"abc")]);
        // Central directory method field of the only entry: deflate.
        let cd = z.len() - EOCD_LEN - (46 + 1);
        z[cd + 10] = 8;
        let err = ZipIndex::parse(&z).unwrap_err();
        assert!(err.to_string().contains("compressed (method 8)"), "{err}");
    }
}
