//! The few REAPI messages an action-cache entry needs, in protobuf wire format.
//!
//! Servers that validate `/ac/` bodies (bazel-remote) parse them as
//! `build.bazel.remote.execution.v2.ActionResult`. tinylm writes `output_files` (field 2) and
//! `exit_code` (field 4); each `OutputFile` has `path` (1), `digest` (2) and `is_executable` (4),
//! and a `Digest` is `hash` (1, lower-case sha256 hex) and `size_bytes` (2). Field numbers are
//! from `build/bazel/remote/execution/v2/remote_execution.proto` in bazelbuild/remote-apis.
//!
//! Hand-encoded rather than generated with prost: three messages and five fields do not justify
//! a code generator, a build script and a proc-macro crate. The decoder skips every field it does
//! not know, so results written by other clients parse too.

/// A REAPI `Digest`: sha256 hex and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Lower-case hex sha256 of the blob.
    pub hash: String,
    /// Size of the blob in bytes.
    pub size_bytes: u64,
}

/// A REAPI `OutputFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Path of the output, relative to the action's working directory.
    pub path: String,
    /// Content digest.
    pub digest: Digest,
    /// Whether the file is executable.
    pub is_executable: bool,
}

/// A REAPI `ActionResult` (the fields tinylm uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionResult {
    /// Output files.
    pub output_files: Vec<OutputFile>,
    /// Exit code of the action (always 0 for what tinylm records).
    pub exit_code: i32,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Digest {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.hash.is_empty() {
            put_bytes(&mut out, 1, self.hash.as_bytes());
        }
        if self.size_bytes != 0 {
            put_tag(&mut out, 2, VARINT);
            put_varint(&mut out, self.size_bytes);
        }
        out
    }

    fn decode(buf: &[u8]) -> Result<Digest, String> {
        let mut d = Digest {
            hash: String::new(),
            size_bytes: 0,
        };
        for field in Fields::new(buf) {
            match field? {
                (1, Value::Len(b)) => d.hash = utf8(b, "Digest.hash")?,
                (2, Value::Varint(v)) => d.size_bytes = v,
                _ => {}
            }
        }
        Ok(d)
    }
}

impl OutputFile {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, self.path.as_bytes());
        put_bytes(&mut out, 2, &self.digest.encode());
        if self.is_executable {
            put_tag(&mut out, 4, VARINT);
            put_varint(&mut out, 1);
        }
        out
    }

    fn decode(buf: &[u8]) -> Result<OutputFile, String> {
        let mut f = OutputFile {
            path: String::new(),
            digest: Digest {
                hash: String::new(),
                size_bytes: 0,
            },
            is_executable: false,
        };
        for field in Fields::new(buf) {
            match field? {
                (1, Value::Len(b)) => f.path = utf8(b, "OutputFile.path")?,
                (2, Value::Len(b)) => f.digest = Digest::decode(b)?,
                (4, Value::Varint(v)) => f.is_executable = v != 0,
                _ => {}
            }
        }
        Ok(f)
    }
}

impl ActionResult {
    /// Serializes to protobuf wire format (fields in number order, as protoc does).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in &self.output_files {
            put_bytes(&mut out, 2, &f.encode());
        }
        if self.exit_code != 0 {
            put_tag(&mut out, 4, VARINT);
            // int32 is sign-extended to 64 bits on the wire.
            put_varint(&mut out, i64::from(self.exit_code) as u64);
        }
        out
    }

    /// Parses protobuf wire format; unknown fields are skipped.
    pub fn decode(buf: &[u8]) -> Result<ActionResult, String> {
        let mut r = ActionResult::default();
        for field in Fields::new(buf) {
            match field? {
                (2, Value::Len(b)) => r.output_files.push(OutputFile::decode(b)?),
                (4, Value::Varint(v)) => r.exit_code = v as i64 as i32,
                _ => {}
            }
        }
        Ok(r)
    }

    /// The output file at `path`.
    pub fn file(&self, path: &str) -> Option<&OutputFile> {
        self.output_files.iter().find(|f| f.path == path)
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// Iterates over the (field number, value) pairs of one message.
struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, failed: false }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err("truncated varint".into());
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "length overflows".to_string())?;
        if n > self.buf.len() {
            return Err(format!(
                "field of {n} bytes but only {} left",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), String> {
        let tag = self.varint()?;
        let field = u32::try_from(tag >> 3).map_err(|_| "field number overflows".to_string())?;
        if field == 0 {
            return Err("field number 0".into());
        }
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                self.take(8)?;
                Value::Fixed
            }
            LEN => {
                let n = self.varint()?;
                Value::Len(self.take(n)?)
            }
            FIXED32 => {
                self.take(4)?;
                Value::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ActionResult {
        ActionResult {
            output_files: vec![
                OutputFile {
                    path: "model.gguf".into(),
                    digest: Digest {
                        hash: "ab".repeat(32),
                        size_bytes: 300,
                    },
                    is_executable: false,
                },
                OutputFile {
                    path: "run.sh".into(),
                    digest: Digest {
                        hash: "cd".repeat(32),
                        size_bytes: 0,
                    },
                    is_executable: true,
                },
            ],
            exit_code: 0,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(ActionResult::decode(&r.encode()).unwrap(), r);
        let neg = ActionResult {
            exit_code: -1,
            ..sample()
        };
        assert_eq!(ActionResult::decode(&neg.encode()).unwrap(), neg);
    }

    #[test]
    fn matches_the_protobuf_runtime() {
        // What the Python protobuf runtime (7.x) serializes for
        // `output_files { path: "a" digest { hash: "h" size_bytes: 300 } } exit_code: 3`.
        let expected: &[u8] = &[
            0x12, 0x0b, 0x0a, 0x01, b'a', 0x12, 0x06, 0x0a, 0x01, b'h', 0x10, 0xac, 0x02, 0x20,
            0x03,
        ];
        let r = ActionResult {
            output_files: vec![OutputFile {
                path: "a".into(),
                digest: Digest {
                    hash: "h".into(),
                    size_bytes: 300,
                },
                is_executable: false,
            }],
            exit_code: 3,
        };
        assert_eq!(r.encode(), expected);
    }

    #[test]
    fn skips_unknown_fields_and_rejects_garbage() {
        let mut buf = sample().encode();
        // execution_metadata (9, a message) and a fixed64 and fixed32 field from a newer writer.
        buf.extend_from_slice(&[0x4a, 0x02, 0x08, 0x01]);
        buf.extend_from_slice(&[0x59, 1, 2, 3, 4, 5, 6, 7, 8]);
        buf.extend_from_slice(&[0x65, 1, 2, 3, 4]);
        assert_eq!(ActionResult::decode(&buf).unwrap(), sample());
        assert!(ActionResult::decode(&[0x12, 0x40, 0x0a]).is_err());
        assert!(ActionResult::decode(&[0x13]).is_err(), "wire type 3");
        assert!(ActionResult::decode(b"{\"json\": true}").is_err());
    }
}
