//! `modelfile`: an Ollama Modelfile for one (model, quant).
//!
//! It reads the model's vocabulary (not its weights) for two things a hand-written Modelfile
//! most often gets wrong: the chat template family when the manifest says `auto`, and the stop
//! list, which always includes the model's own EOS/EOT token text. `template.json` records
//! what was chosen and why.

use serde_json::json;

use super::{Action, RunCtx};
use crate::manifest::TemplateSpec;
use crate::template::detect::detect;
use crate::template::families::builtin_names;
use crate::template::modelfile::Modelfile;
use crate::template::params::ParamValue;
use crate::template::vocab::Vocab;
use crate::{Error, Result};

/// Writes `Modelfile` (pointing at a GGUF in the same directory) and `template.json`.
#[derive(Debug)]
pub struct ModelfileAction {
    /// File name of the GGUF, relative to the Modelfile (`FROM ./<gguf_file>`).
    pub gguf_file: String,
    /// Template, system prompt, parameters, license and messages; `None` for a bare `FROM`.
    pub template: Option<TemplateSpec>,
}

impl Action for ModelfileAction {
    fn kind(&self) -> &'static str {
        "modelfile"
    }

    fn version(&self) -> u32 {
        2
    }

    fn params(&self) -> serde_json::Value {
        json!({ "gguf_file": self.gguf_file, "template": self.template })
    }

    fn outputs(&self) -> Vec<String> {
        vec!["Modelfile".into(), "template.json".into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let gguf = &ctx.input("gguf")?.path;
        let vocab = Vocab::open_gguf(gguf)?;
        let mut mf = Modelfile::new(format!("./{}", self.gguf_file));
        let mut info =
            json!({ "template": null, "family": null, "evidence": [], "stops_added": [] });
        if let Some(t) = &self.template {
            info["template"] = json!(t.name);
            info["family"] = json!(t.family);
            mf.template = t.template.clone();
            mf.system = t.system.clone();
            mf.parameters = t.parameters.clone();
            mf.licenses = t.license.iter().cloned().collect();
            mf.messages = t.messages.clone();
            if t.family.as_deref() == Some("auto") && t.template.is_none() {
                let d = detect(&vocab).map_err(|u| {
                    Error::Build(format!(
                        "cannot tell which chat template this model uses ({u}); name one in the manifest: \
                         template = \"<family>\" with one of {}, or a [templates] entry",
                        builtin_names().join(", ")
                    ))
                })?;
                let b = d.template().ok_or_else(|| {
                    Error::Build(format!(
                        "detected {} but tinylm has no template for it; name a template",
                        d.name()
                    ))
                })?;
                tracing::info!(
                    "{}: detected template {} ({})",
                    self.gguf_file,
                    b.name,
                    d.evidence.join("; ")
                );
                info["family"] = json!(b.name);
                info["evidence"] = json!(d.evidence);
                mf.template = Some(b.template.clone());
                if !mf.parameters.iter().any(|(n, _)| n == "stop") {
                    mf.parameters.extend(b.parameters());
                    mf.parameters.sort_by(|a, b| a.0.cmp(&b.0));
                }
            }
        }
        // A model that is not told to stop at its own end-of-turn token runs on forever.
        let mut added = Vec::new();
        for id in [vocab.eos_id, vocab.eot_id].into_iter().flatten() {
            let Some(text) = vocab.token(id) else {
                continue;
            };
            let text = text.to_string();
            match mf.parameters.iter_mut().find(|(n, _)| n == "stop") {
                Some((_, ParamValue::List(stops))) if !stops.contains(&text) => {
                    stops.push(text.clone())
                }
                Some(_) => continue,
                None => {
                    mf.parameters
                        .push(("stop".into(), ParamValue::List(vec![text.clone()])));
                    mf.parameters.sort_by(|a, b| a.0.cmp(&b.0));
                }
            }
            added.push(text);
        }
        info["stops_added"] = json!(added);
        let text = mf.render()?;
        let path = ctx.output("Modelfile");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        let mut s = serde_json::to_string_pretty(&info).map_err(|e| Error::Build(e.to_string()))?;
        s.push('\n');
        let path = ctx.output("template.json");
        std::fs::write(&path, s).map_err(|e| Error::io(&path, e))
    }
}
