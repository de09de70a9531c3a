//! Minimal Modelfile writer; replaced by the full writer/parser of the template library.

use crate::manifest::ParamValue;

/// An Ollama Modelfile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Modelfile {
    /// `FROM` value.
    pub from: String,
    /// `TEMPLATE`.
    pub template: Option<String>,
    /// `SYSTEM`.
    pub system: Option<String>,
    /// `PARAMETER` lines.
    pub parameters: Vec<(String, ParamValue)>,
    /// `LICENSE` blocks.
    pub licenses: Vec<String>,
    /// `MESSAGE` lines.
    pub messages: Vec<(String, String)>,
}

impl Modelfile {
    /// A Modelfile with only `FROM`.
    pub fn new(from: String) -> Self {
        Modelfile {
            from,
            ..Default::default()
        }
    }

    /// Renders the Modelfile text.
    pub fn render(&self) -> Result<String, String> {
        let mut s = format!("FROM {}\n", self.from);
        if let Some(t) = &self.template {
            s += &format!("TEMPLATE {}\n", quote(t)?);
        }
        if let Some(t) = &self.system {
            s += &format!("SYSTEM {}\n", quote(t)?);
        }
        for (k, v) in &self.parameters {
            match v {
                ParamValue::List(items) => {
                    for i in items {
                        s += &format!("PARAMETER {k} {}\n", quote(i)?);
                    }
                }
                ParamValue::Bool(b) => s += &format!("PARAMETER {k} {b}\n"),
                ParamValue::Int(i) => s += &format!("PARAMETER {k} {i}\n"),
                ParamValue::Float(f) => s += &format!("PARAMETER {k} {f}\n"),
                ParamValue::Str(t) => s += &format!("PARAMETER {k} {}\n", quote(t)?),
            }
        }
        for l in &self.licenses {
            s += &format!("LICENSE {}\n", quote(l)?);
        }
        for (role, content) in &self.messages {
            s += &format!("MESSAGE {role} {}\n", quote(content)?);
        }
        Ok(s)
    }
}

fn quote(v: &str) -> Result<String, String> {
    if v.contains("\"\"\"") {
        return Err(format!(
            "value {v:?} contains \"\"\", which a Modelfile cannot represent"
        ));
    }
    Ok(format!("\"\"\"{v}\"\"\""))
}
