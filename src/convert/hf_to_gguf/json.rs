//! Reading a model folder's JSON side files the way the reference converter reads them.

use serde_json::{Map, Value as Json};

use super::error::{Result, file_err};
use crate::convert::hf::HfModel;

/// `name` parsed as a JSON object, `None` when the folder has no such file.
pub(crate) fn parse_json_file(model: &HfModel, name: &str) -> Result<Option<Map<String, Json>>> {
    let Some(bytes) = model.files.get(name) else {
        return Ok(None);
    };
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(file_err(name, "not a JSON object")),
        Err(e) => Err(file_err(name, format!("invalid JSON: {e}"))),
    }
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Json) -> bool {
    match v {
        Json::Bool(b) => *b,
        Json::Null => false,
        Json::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}
