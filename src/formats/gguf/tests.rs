use std::io::Write;
use std::sync::Arc;

use super::*;

fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("llama.block_count", Value::U32(2));
    w.add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(["a", "b", "ĠHello"])),
    );
    w.add_kv(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(vec![1, 1, 3])),
    );
    w.add_kv("tokenizer.ggml.add_bos_token", Value::Bool(true));
    w.add_tensor(TensorSpec {
        name: "token_embd.weight".into(),
        ne: vec![4, 3],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    w.add_tensor(TensorSpec {
        name: "blk.0.attn_q.weight".into(),
        ne: vec![32, 2],
        ggml_type: GgmlType::Q8_0,
    })
    .unwrap();
    w
}

fn write_to_vec(w: &GgufWriter) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(&mut out, |i, t, o| {
        let bytes: Vec<u8> = (0..t.nbytes())
            .map(|b| (b as u8).wrapping_add(i as u8))
            .collect();
        o.write_all(&bytes).map_err(|e| crate::Error::io("mem", e))
    })
    .unwrap();
    out
}

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    GgufFile::parse(std::path::Path::new("mem.gguf"), Arc::new(map))
}

#[test]
fn roundtrip_preserves_metadata_tensors_and_data() {
    let w = sample_writer();
    let bytes = write_to_vec(&w);
    assert_eq!(bytes.len() as u64, w.file_size());
    let f = parse(&bytes).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata, w.kvs().to_vec());
    assert_eq!(f.tensors.len(), 2);
    assert_eq!(f.data_offset, w.header_size());
    assert_eq!(f.data_offset % 32, 0);
    let q = &f.tensors[1];
    assert_eq!(
        (q.name.as_str(), q.ggml_type, q.nbytes),
        ("blk.0.attn_q.weight", GgmlType::Q8_0, 68)
    );
    // 48 bytes of f32 data padded to 64 → the second tensor starts at 64.
    assert_eq!(q.offset, 64);
    assert_eq!(
        f.tensor_data(q),
        (0..68u64)
            .map(|b| (b as u8).wrapping_add(1))
            .collect::<Vec<_>>()
    );
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_u64("llama.block_count").unwrap(), 2);
    assert!(f.get_u64("general.architecture").is_err());
}

#[test]
fn header_bytes_follow_the_spec() {
    let mut w = GgufWriter::new();
    w.add_kv("k", Value::U32(7));
    let bytes = write_to_vec(&w);
    let mut expect = Vec::new();
    expect.extend_from_slice(b"GGUF");
    expect.extend_from_slice(&3u32.to_le_bytes());
    expect.extend_from_slice(&0u64.to_le_bytes()); // tensors
    expect.extend_from_slice(&1u64.to_le_bytes()); // kvs
    expect.extend_from_slice(&1u64.to_le_bytes()); // key length
    expect.push(b'k');
    expect.extend_from_slice(&4u32.to_le_bytes()); // UINT32
    expect.extend_from_slice(&7u32.to_le_bytes());
    expect.resize(64, 0); // 37 bytes padded to 32-byte alignment
    assert_eq!(bytes, expect);
}

#[test]
fn add_kv_keeps_position_and_set_kv_last_moves_to_end() {
    let mut w = sample_writer();
    w.add_kv("general.architecture", Value::str("gpt2"));
    assert_eq!(
        w.kvs()[0],
        ("general.architecture".to_string(), Value::str("gpt2"))
    );
    w.set_kv_last("llama.block_count", Value::U32(3));
    assert_eq!(w.kvs().last().unwrap().0, "llama.block_count");
    assert_eq!(w.kvs().len(), 6);
}

#[test]
fn writer_rejects_what_llama_cpp_rejects() {
    let mut w = GgufWriter::new();
    let long = "x".repeat(64);
    assert!(
        w.add_tensor(TensorSpec {
            name: long,
            ne: vec![4],
            ggml_type: GgmlType::F32
        })
        .is_err()
    );
    assert!(
        w.add_tensor(TensorSpec {
            name: "a".into(),
            ne: vec![33],
            ggml_type: GgmlType::Q8_0
        })
        .is_err()
    );
    assert!(
        w.add_tensor(TensorSpec {
            name: "a".into(),
            ne: vec![1, 1, 1, 1, 1],
            ggml_type: GgmlType::F32
        })
        .is_err()
    );
    w.add_tensor(TensorSpec {
        name: "a".into(),
        ne: vec![4],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    assert!(
        w.add_tensor(TensorSpec {
            name: "a".into(),
            ne: vec![4],
            ggml_type: GgmlType::F32
        })
        .is_err()
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let w = sample_writer();
    let bytes = write_to_vec(&w);
    // The last tensor's trailing padding is optional (llama.cpp only checks data bounds).
    let data_end = w.header_size() + 64 + 68;
    assert!(parse(&bytes[..data_end as usize]).is_ok());
    for len in 0..data_end as usize {
        assert!(parse(&bytes[..len]).is_err(), "truncated at {len} parsed");
    }
}

#[test]
fn corrupt_headers_are_reported() {
    let good = write_to_vec(&sample_writer());
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(parse(&bad), Err(GgufError::BadMagic(_))));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(parse(&bad), Err(GgufError::Version(1))));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&0x0300_0000u32.to_le_bytes());
    assert!(matches!(parse(&bad), Err(GgufError::BigEndian)));
    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // n_kv lies
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("more than"), "{err}");
    // A string length that points far past the end of the file.
    let mut bad = good.clone();
    bad[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(parse(&bad), Err(GgufError::Truncated { .. })));
}

#[test]
fn byte_flips_never_panic() {
    let good = write_to_vec(&sample_writer());
    let header = sample_writer().header_size() as usize;
    for i in 0..header {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let _ = parse(&bad);
        }
    }
}

#[test]
fn type_geometry_matches_ggml() {
    for (t, bs, ts) in [
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q5_1, 32, 24),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q2K, 256, 84),
        (GgmlType::Q3K, 256, 110),
        (GgmlType::Q4K, 256, 144),
        (GgmlType::Q5K, 256, 176),
        (GgmlType::Q6K, 256, 210),
        (GgmlType::BF16, 1, 2),
    ] {
        assert_eq!((t.block_size(), t.type_size()), (bs, ts), "{t}");
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    assert_eq!(GgmlType::from_id(4), None);
    assert_eq!(GgmlType::Q4K.name(), "q4_K");
}

#[test]
fn ggml_n_dims_drops_trailing_ones() {
    let t = |ne: Vec<u64>| TensorInfo {
        name: "t".into(),
        ne,
        ggml_type: GgmlType::F32,
        offset: 0,
        nbytes: 0,
    };
    assert_eq!(t(vec![64, 1]).ggml_n_dims(), 1);
    assert_eq!(t(vec![64, 2, 1]).ggml_n_dims(), 2);
    assert_eq!(t(vec![1]).ggml_n_dims(), 1);
}

#[test]
fn header_bytes_and_offsets_match_the_streamed_file() {
    use super::{GgmlType, GgufWriter, TensorSpec, Value};
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    for (name, n) in [("a", 3u64), ("b", 40), ("c", 1)] {
        w.add_tensor(TensorSpec {
            name: name.into(),
            ne: vec![n],
            ggml_type: GgmlType::F32,
        })
        .unwrap();
    }
    let mut streamed = Vec::new();
    w.write(&mut streamed, |_, t, out| {
        out.write_all(&vec![7u8; t.nbytes() as usize])
            .map_err(|e| crate::Error::Build(e.to_string()))
    })
    .unwrap();
    let header = w.header_bytes();
    assert_eq!(header.len() as u64, w.header_size());
    assert_eq!(&streamed[..header.len()], &header[..]);
    let offs: Vec<u64> = w
        .data_offsets()
        .iter()
        .map(|o| header.len() as u64 + o)
        .collect();
    assert_eq!(offs[0], w.header_size());
    assert_eq!(offs[1], offs[0] + 32);
    assert_eq!(offs[2], offs[1] + 160);
    assert_eq!(streamed[offs[1] as usize], 7);
    assert_eq!(streamed.len() as u64, w.file_size());
}

#[test]
fn describe_lists_metadata_and_tensors() {
    use super::{GgmlType, GgufWriter, TensorSpec, Value};
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(super::Array::strings((0..20).map(|i| format!("t{i}")))),
    );
    w.add_tensor(TensorSpec {
        name: "a.weight".into(),
        ne: vec![4, 2],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    let mut bytes = Vec::new();
    w.write(&mut bytes, |_, spec, out| {
        out.write_all(&vec![0u8; spec.nbytes() as usize])
            .map_err(|e| crate::Error::Build(e.to_string()))
    })
    .unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &bytes).unwrap();
    let g = super::GgufFile::open(tmp.path()).unwrap();
    let j = g.describe_json();
    assert_eq!(j["params"], 8);
    assert_eq!(j["metadata"]["general.architecture"], "llama");
    assert_eq!(j["metadata"]["tokenizer.ggml.tokens"]["len"], 20);
    assert_eq!(
        j["metadata"]["tokenizer.ggml.tokens"]["head"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(j["tensors"][0]["ne"], serde_json::json!([4, 2]));
    let t = g.describe_text();
    assert!(
        t.contains("a.weight") && t.contains("general.architecture") && t.contains("8 parameters"),
        "{t}"
    );
}

/// Replaces the first occurrence of `from` in `bytes` by `to` (same length).
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    bytes[at..at + to.len()].copy_from_slice(to);
}

#[test]
fn duplicate_metadata_keys_are_rejected() {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("test.key.a", Value::U32(1));
    w.add_kv("test.key.b", Value::U32(2));
    let mut bytes = write_to_vec(&w);
    patch(&mut bytes, b"test.key.b", b"test.key.a");
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("duplicate metadata key 'test.key.a'"), "{err}");
}

#[test]
fn duplicate_tensor_names_are_rejected() {
    let mut w = GgufWriter::new();
    for name in ["blk.0.x", "blk.1.x", "blk.2.x"] {
        w.add_tensor(TensorSpec {
            name: name.into(),
            ne: vec![4],
            ggml_type: GgmlType::F32,
        })
        .unwrap();
    }
    let mut bytes = write_to_vec(&w);
    patch(&mut bytes, b"blk.2.x", b"blk.0.x");
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("duplicate tensor name 'blk.0.x'"), "{err}");
}

#[test]
fn errors_inside_an_entry_name_the_entry() {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("test.bad_type", Value::U32(7));
    let mut bytes = write_to_vec(&w);
    // The value type id follows the key; 99 is no GGUF type.
    let key_end = bytes
        .windows(13)
        .position(|w| w == b"test.bad_type")
        .unwrap()
        + 13;
    bytes[key_end..key_end + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("'test.bad_type'"), "{err}");
    // Truncated inside the second key's value: the message says which key.
    let err = parse(&bytes[..key_end + 2]).unwrap_err().to_string();
    assert!(err.contains("metadata key 'test.bad_type'"), "{err}");
}

#[test]
fn remove_kv_keeps_the_key_index_consistent() {
    let mut w = GgufWriter::new();
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        w.add_kv(*k, Value::U32(i as u32));
    }
    w.remove_kv("b");
    w.remove_kv("missing");
    // Overwrites must land on the right slot after the removal shifted positions.
    w.add_kv("d", Value::U32(40));
    w.add_kv("a", Value::U32(10));
    w.set_kv_last("c", Value::U32(30));
    w.add_kv("b", Value::U32(20));
    let kvs: Vec<(String, Value)> = w.kvs().to_vec();
    assert_eq!(
        kvs,
        vec![
            ("a".to_string(), Value::U32(10)),
            ("d".to_string(), Value::U32(40)),
            ("c".to_string(), Value::U32(30)),
            ("b".to_string(), Value::U32(20)),
        ]
    );
}

#[test]
fn wide_headers_parse() {
    // 20k tensors and keys: the duplicate checks are hash lookups (scripts/bench-gguf-header.sh
    // measures 300k); this checks the many-entry path stays correct.
    let mut w = GgufWriter::new();
    for i in 0..20_000u32 {
        w.add_kv(format!("bench.key.{i}"), Value::U32(i));
        w.add_tensor(TensorSpec {
            name: format!("t.{i}"),
            ne: vec![1],
            ggml_type: GgmlType::F32,
        })
        .unwrap();
    }
    let f = parse(&write_to_vec(&w)).unwrap();
    assert_eq!(f.tensors.len(), 20_000);
    assert_eq!(f.metadata.len(), 20_000);
    assert_eq!(f.tensors[19_999].name, "t.19999");
}
