//! Importance matrices (imatrix) as llama.cpp writes them: the GGUF format of `llama-imatrix`
//! (`<name>.in_sum2` and `<name>.counts` tensors plus `imatrix.*` metadata) and the legacy `.dat`
//! format, loaded and normalised exactly as llama-quantize does (`common_imatrix_load` and
//! `load_imatrix` in tools/quantize/quantize.cpp).
//!
//! Normalisation, per tensor:
//! - GGUF: for each matrix `j` (one per expert; `counts` has one entry per matrix),
//!   `e = in_sum2 / (float)count_j`, or 1 where the count is 0 (an expert never routed to).
//! - `.dat`: the file stores `(sum / count) · ncall` with one `ncall` per tensor, so
//!   `e = value / (float)ncall` (unchanged when `ncall` is 0).

use std::collections::BTreeMap;
use std::path::Path;

use crate::formats::gguf::{Array, GgmlType, GgufFile, Value};
use crate::{Error, Result};

/// Which on-disk format an imatrix came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ImatrixFormat {
    /// llama-imatrix's GGUF (`imatrix.gguf`).
    Gguf,
    /// The legacy binary format (`imatrix.dat`).
    Dat,
}

/// A loaded importance matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Imatrix {
    /// What llama-quantize records as `quantize.imatrix.file`: the path as the user gave it.
    pub file: String,
    /// The on-disk format.
    pub format: ImatrixFormat,
    /// blake3 of the file's bytes.
    pub digest: String,
    /// `imatrix.datasets` (GGUF) or the trailing dataset name (`.dat`).
    pub datasets: Vec<String>,
    /// Chunks the matrix was computed on (`imatrix.chunk_count`, or the `.dat` trailer; 0 if
    /// absent). Signed like the reference's `int` (a u32 above 2³¹ reads as negative).
    pub chunk_count: i32,
    /// Tokens per chunk (`imatrix.chunk_size`; 0 for `.dat`).
    pub chunk_size: u32,
    /// Whether a GGUF imatrix has all three `imatrix.*` metadata keys (llama-quantize refuses
    /// one without them).
    pub has_metadata: bool,
    /// Normalised importances per tensor, by name.
    pub entries: BTreeMap<String, Vec<f32>>,
}

/// A malformed imatrix file.
fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(
        path,
        format!("not a usable importance matrix: {}", msg.into()),
    )
}

impl Imatrix {
    /// Loads `path`, recording it as given in [`Imatrix::file`]. A file that starts like a
    /// GGUF is read as one; anything else as the legacy format.
    pub fn load(path: &Path) -> Result<Imatrix> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        let file = path.to_string_lossy().into_owned();
        let mut m = if bytes.starts_with(crate::formats::gguf::GGUF_MAGIC) {
            Self::load_gguf(path)?
        } else {
            Self::parse_dat(path, &bytes)?
        };
        m.file = file;
        m.digest = digest;
        Ok(m)
    }

    fn load_gguf(path: &Path) -> Result<Imatrix> {
        let g = GgufFile::open(path)?;
        if g.tensors.is_empty() {
            return Err(bad(path, "it has no tensors"));
        }
        let mut datasets = Vec::new();
        let ds = g.get("imatrix.datasets");
        if let Some(Value::Array(Array::String(v))) = ds {
            datasets = v
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
        }
        let u32_key = |key: &str| -> Result<Option<u32>> {
            match g.get(key) {
                None => Ok(None),
                Some(Value::U32(v)) => Ok(Some(*v)),
                Some(v) => Err(bad(path, format!("'{key}' should be a u32, found {v}"))),
            }
        };
        let chunk_count = u32_key("imatrix.chunk_count")?;
        let chunk_size = u32_key("imatrix.chunk_size")?;
        let has_metadata = ds.is_some() && chunk_count.is_some() && chunk_size.is_some();

        // Pair `<name>.in_sum2` with `<name>.counts`.
        let mut pairs: BTreeMap<String, (Option<usize>, Option<usize>)> = BTreeMap::new();
        for (i, t) in g.tensors.iter().enumerate() {
            if let Some(n) = t.name.strip_suffix(".in_sum2") {
                pairs.entry(n.to_string()).or_default().0 = Some(i);
            } else if let Some(n) = t.name.strip_suffix(".counts") {
                pairs.entry(n.to_string()).or_default().1 = Some(i);
            }
        }
        let mut entries = BTreeMap::new();
        for (name, (s, c)) in pairs {
            let (Some(s), Some(c)) = (s, c) else {
                return Err(bad(
                    path,
                    format!("'{name}' has sums but no counts, or counts but no sums"),
                ));
            };
            let (ts, tc) = (&g.tensors[s], &g.tensors[c]);
            if ts.ggml_type != GgmlType::F32 || tc.ggml_type != GgmlType::F32 {
                return Err(bad(
                    path,
                    format!("sums and counts of '{name}' must be F32"),
                ));
            }
            let sums = f32s(g.tensor_data(ts));
            let counts: Vec<i64> = f32s(g.tensor_data(tc)).iter().map(|&v| lround(v)).collect();
            if counts.is_empty() {
                return Err(bad(path, format!("'{name}' has no counts")));
            }
            entries.insert(name, normalise_gguf(&sums, &counts));
        }
        Ok(Imatrix {
            file: String::new(),
            format: ImatrixFormat::Gguf,
            digest: String::new(),
            datasets,
            chunk_count: chunk_count.unwrap_or(0) as i32,
            chunk_size: chunk_size.unwrap_or(0),
            has_metadata,
            entries,
        })
    }

    /// Parses the legacy format: `n_entries: i32`, then per entry `len: i32, name, ncall: i32,
    /// nval: i32, nval × f32`, then optionally `chunks: i32, len: i32, dataset`.
    fn parse_dat(path: &Path, b: &[u8]) -> Result<Imatrix> {
        let mut r = Reader { b, pos: 0 };
        let n_entries = r
            .i32()
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad(path, "no data (expected a GGUF or a legacy .dat imatrix)"))?;
        let mut entries = BTreeMap::new();
        for i in 0..n_entries {
            let entry = i + 1;
            let len = r
                .i32()
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(|| bad(path, format!("entry {entry}: bad name length")))?;
            let raw = r
                .bytes(len)
                .ok_or_else(|| bad(path, format!("entry {entry}: truncated name")))?;
            // The reference builds the name as a C string: it ends at the first NUL.
            let raw = raw.split(|&c| c == 0).next().unwrap_or_default();
            let name = String::from_utf8_lossy(raw).into_owned();
            let ncall = r
                .i32()
                .ok_or_else(|| bad(path, format!("entry {entry} ('{name}'): truncated")))?;
            let nval = r
                .i32()
                .filter(|&n| n >= 1)
                .ok_or_else(|| bad(path, format!("entry {entry} ('{name}'): no values")))?;
            let data = r
                .bytes(nval as usize * 4)
                .ok_or_else(|| bad(path, format!("entry {entry} ('{name}'): truncated values")))?;
            let sums = f32s(data);
            entries.insert(name, normalise_dat(&sums, i64::from(ncall)));
        }
        let mut chunk_count = 0;
        let mut datasets = Vec::new();
        if r.pos < b.len() {
            chunk_count = r.i32().unwrap_or(0);
            if let Some(len) = r.i32()
                && len > 0
                && let Some(d) = r.bytes(len as usize)
            {
                let d = d.split(|&c| c == 0).next().unwrap_or_default();
                datasets.push(String::from_utf8_lossy(d).into_owned());
            }
        }
        Ok(Imatrix {
            file: String::new(),
            format: ImatrixFormat::Dat,
            digest: String::new(),
            datasets,
            chunk_count,
            chunk_size: 0,
            has_metadata: true,
            entries,
        })
    }

    /// The entries llama-quantize keeps after `--exclude-weights` (drop names containing any
    /// pattern) and `--include-weights` (keep names containing any pattern).
    pub fn select<'a>(
        &'a self,
        include: &[String],
        exclude: &[String],
    ) -> BTreeMap<&'a str, &'a [f32]> {
        self.entries
            .iter()
            .filter(|(name, _)| !exclude.iter().any(|p| name.contains(p.as_str())))
            .filter(|(name, _)| {
                include.is_empty() || include.iter().any(|p| name.contains(p.as_str()))
            })
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect()
    }
}

/// GGUF normalisation: per matrix `j`, `sums / count_j` (1 where the count is 0).
fn normalise_gguf(sums: &[f32], counts: &[i64]) -> Vec<f32> {
    let n = counts.len();
    let ne0 = sums.len() / n;
    let mut e = vec![0f32; sums.len()];
    for (j, &c) in counts.iter().enumerate() {
        let count = c as f32;
        for i in 0..ne0 {
            e[j * ne0 + i] = if count > 0.0 {
                sums[j * ne0 + i] / count
            } else {
                1.0
            };
        }
    }
    e
}

/// Legacy normalisation: divide by the entry's `ncall` (kept as is when it is not positive).
fn normalise_dat(sums: &[f32], ncall: i64) -> Vec<f32> {
    if ncall > 0 {
        let n = ncall as f32;
        sums.iter().map(|&v| v / n).collect()
    } else {
        sums.to_vec()
    }
}

/// C's `lround`: half away from zero; NaN and out-of-range values give `LONG_MIN` on x86-64.
fn lround(v: f32) -> i64 {
    if v.is_nan() || v.abs() >= 9.223_372e18 {
        i64::MIN
    } else {
        v.round() as i64
    }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i32(&mut self) -> Option<i32> {
        self.bytes(4)
            .map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dat(entries: &[(&str, i32, &[f32])], trailer: Option<(i32, &str)>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((entries.len() as i32).to_le_bytes());
        for (name, ncall, v) in entries {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(ncall.to_le_bytes());
            b.extend((v.len() as i32).to_le_bytes());
            for x in *v {
                b.extend(x.to_le_bytes());
            }
        }
        if let Some((chunks, ds)) = trailer {
            b.extend(chunks.to_le_bytes());
            b.extend((ds.len() as i32).to_le_bytes());
            b.extend(ds.as_bytes());
        }
        b
    }

    #[test]
    fn legacy_values_are_divided_by_ncall() {
        let b = dat(
            &[
                ("blk.0.attn_q.weight", 4, &[4.0, 2.0, 1.0]),
                ("x", 0, &[3.0]),
            ],
            Some((7, "calib.txt")),
        );
        let m = Imatrix::parse_dat(Path::new("m.dat"), &b).unwrap();
        assert_eq!(m.entries["blk.0.attn_q.weight"], [1.0, 0.5, 0.25]);
        assert_eq!(m.entries["x"], [3.0]);
        assert_eq!(m.chunk_count, 7);
        assert_eq!(m.datasets, ["calib.txt"]);
        assert_eq!(m.format, ImatrixFormat::Dat);
        // The trailer is optional.
        let b = dat(&[("a", 1, &[1.0])], None);
        let m = Imatrix::parse_dat(Path::new("m.dat"), &b).unwrap();
        assert_eq!((m.chunk_count, m.datasets.len()), (0, 0));
    }

    #[test]
    fn malformed_legacy_files_are_explained() {
        for (b, want) in [
            (vec![0u8, 0, 0, 0], "no data"),
            (vec![1u8, 0], "no data"),
            (dat(&[("abc", 1, &[1.0])], None)[..10].to_vec(), "truncated"),
            (dat(&[("abc", 1, &[])], None), "no values"),
        ] {
            let e = Imatrix::parse_dat(Path::new("m.dat"), &b)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("m.dat"), "{e}");
        }
    }

    #[test]
    fn gguf_sums_are_normalised_per_expert() {
        // Two experts of 3 columns; the second was never routed to.
        let e = normalise_gguf(&[2.0, 4.0, 6.0, 9.0, 9.0, 9.0], &[2, 0]);
        assert_eq!(e, [1.0, 2.0, 3.0, 1.0, 1.0, 1.0]);
        assert_eq!(lround(2.5), 3);
        assert_eq!(lround(-2.5), -3);
    }

    #[test]
    fn include_and_exclude_filter_by_substring() {
        let mut m = Imatrix {
            file: "m".into(),
            format: ImatrixFormat::Gguf,
            digest: String::new(),
            datasets: vec![],
            chunk_count: 0,
            chunk_size: 0,
            has_metadata: true,
            entries: BTreeMap::new(),
        };
        for n in [
            "blk.0.attn_v.weight",
            "blk.0.ffn_up.weight",
            "blk.1.ffn_up.weight",
        ] {
            m.entries.insert(n.into(), vec![1.0]);
        }
        let names = |s: BTreeMap<&str, &[f32]>| s.keys().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(names(m.select(&[], &[])).len(), 3);
        assert_eq!(
            names(m.select(&[], &["attn_v".into(), "blk.1.".into()])),
            ["blk.0.ffn_up.weight"]
        );
        assert_eq!(
            names(m.select(&["ffn".into()], &[])),
            ["blk.0.ffn_up.weight", "blk.1.ffn_up.weight"]
        );
    }
}
