//! Human and JSON descriptions of a GGUF file, for `tinylm inspect`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::reader::GgufFile;
use super::types::{Array, Value};

/// Array elements shown before abbreviating.
const ARRAY_PREVIEW: usize = 8;

fn value_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::F32(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::String(b) => json!(String::from_utf8_lossy(b)),
        Value::Array(a) => {
            let head: Vec<Json> = match a {
                Array::String(v) => v
                    .iter()
                    .take(ARRAY_PREVIEW)
                    .map(|s| json!(String::from_utf8_lossy(s)))
                    .collect(),
                Array::U8(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::I8(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::U16(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::I16(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::U32(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::I32(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::F32(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::Bool(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::U64(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::I64(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
                Array::F64(v) => v.iter().take(ARRAY_PREVIEW).map(|x| json!(x)).collect(),
            };
            json!({"type": "array", "elem": a.elem_type().name(), "len": a.len(), "head": head})
        }
    }
}

impl GgufFile {
    /// Total number of tensor elements.
    pub fn param_count(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements()).sum()
    }

    /// A JSON description: header, metadata (long arrays abbreviated), tensors, type counts.
    pub fn describe_json(&self) -> Json {
        let mut metadata = serde_json::Map::new();
        let mut types = serde_json::Map::new();
        for (k, v) in &self.metadata {
            metadata.insert(k.clone(), value_json(v));
            types.insert(k.clone(), json!(v.value_type().name()));
        }
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &self.tensors {
            *by_type.entry(t.ggml_type.name()).or_default() += 1;
        }
        json!({
            "format": "gguf",
            "path": self.path.display().to_string(),
            "version": self.version,
            "alignment": self.alignment,
            "data_offset": self.data_offset,
            "metadata": metadata,
            "metadata_types": types,
            "tensor_count": self.tensors.len(),
            "params": self.param_count(),
            "tensor_types": by_type,
            "tensors": self.tensors.iter().map(|t| json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "ne": t.ne,
                "n_elements": t.n_elements(),
                "nbytes": t.nbytes,
                "offset": t.offset,
            })).collect::<Vec<_>>(),
        })
    }

    /// A text description for people.
    pub fn describe_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "GGUF v{}: {} metadata entries, {} tensors, {} parameters",
            self.version,
            self.metadata.len(),
            self.tensors.len(),
            self.param_count()
        );
        let _ = writeln!(s, "\nmetadata:");
        for (k, v) in &self.metadata {
            let shown = match v {
                Value::String(b) if b.len() > 80 => {
                    let text = String::from_utf8_lossy(b);
                    let cut: String = text.chars().take(77).collect();
                    format!("{cut:?}… ({} bytes)", b.len())
                }
                _ => v.to_string(),
            };
            let _ = writeln!(s, "  {k:<48} {:<4} {shown}", v.value_type().name());
        }
        let _ = writeln!(s, "\ntensors:");
        for t in &self.tensors {
            let ne: Vec<String> = t.ne.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "  {:<40} {:<6} [{}]",
                t.name,
                t.ggml_type.name(),
                ne.join(", ")
            );
        }
        s
    }
}
