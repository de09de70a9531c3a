//! Action keys: blake3 over a canonical, versioned JSON encoding of what determines the outputs.

use serde_json::{Value, json};

use super::dirty::DirtyReason;
use crate::actions::{Action, ResolvedInput};
use crate::cache::Digest;

/// Version of the key encoding itself; bumping it invalidates every cache entry.
pub const KEY_SCHEMA: u32 = 1;

/// The key preimage: kind, implementation version, params and input digests (in input order).
pub fn preimage(action: &dyn Action, inputs: &[ResolvedInput]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|i| json!([i.name, i.digest.to_hex()]))
        .collect();
    json!({
        "schema": KEY_SCHEMA,
        "kind": action.kind(),
        "version": action.version(),
        "params": action.params(),
        "inputs": inputs,
    })
}

/// The key of a preimage: blake3 of its canonical encoding.
pub fn key_of(preimage: &Value) -> Digest {
    Digest::of(canonical(preimage).as_bytes())
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Differences between two preimages, for `status --explain`.
pub fn diff(old: &Value, new: &Value) -> Vec<DirtyReason> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<DirtyReason>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(&p, x, y, out),
                    (x, y) if x.is_some() || y.is_some() => out.push(DirtyReason::Changed {
                        field: p,
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                    _ => {}
                }
            }
        }
        // Inputs are [name, digest] pairs: report them by name.
        (Value::Array(a), Value::Array(b)) if path == "inputs" => {
            let named = |v: &Vec<Value>| -> Vec<(String, String)> {
                v.iter()
                    .filter_map(|p| {
                        Some((
                            p.get(0)?.as_str()?.to_string(),
                            p.get(1)?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            };
            let (a, b) = (named(a), named(b));
            for (name, d) in &b {
                match a.iter().find(|(n, _)| n == name) {
                    Some((_, od)) if od != d => out.push(DirtyReason::InputChanged {
                        input: name.clone(),
                        old: Some(od.clone()),
                        new: Some(d.clone()),
                    }),
                    None => out.push(DirtyReason::InputAdded {
                        input: name.clone(),
                    }),
                    _ => {}
                }
            }
            for (name, _) in &a {
                if !b.iter().any(|(n, _)| n == name) {
                    out.push(DirtyReason::InputRemoved {
                        input: name.clone(),
                    });
                }
            }
        }
        _ => out.push(DirtyReason::Changed {
            field: path.to_string(),
            old: Some(old.clone()),
            new: Some(new.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_recursively() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "s"}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        let b: Value =
            serde_json::from_str(r#"{"a":{"y":[1,{"c":3,"d":2}],"x":"s"},"b":1}"#).unwrap();
        assert_eq!(key_of(&a), key_of(&b));
    }

    #[test]
    fn diff_names_params_and_inputs() {
        let old = json!({"kind": "modelfile", "params": {"system": "a"}, "inputs": [["src", "0".repeat(64)]]});
        let new = json!({"kind": "modelfile", "params": {"system": "b"}, "inputs": [["src", "1".repeat(64)]]});
        let d: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("input `src` changed")));
        assert!(d.contains(&r#"params.system: "a" → "b""#.to_string()));
    }
}
