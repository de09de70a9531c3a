//! `modelfile`: an Ollama Modelfile for one (model, quant).
//!
//! It reads the model's vocabulary (not its weights) for two things a hand-written Modelfile
//! most often gets wrong: the chat template family when the manifest says `auto`, and the stop
//! list, which always includes the model's own EOS/EOT token text. `template.json` records
//! what was chosen and why.

use serde::{Deserialize, Serialize};

use super::{Action, MODELFILE, RunCtx, TEMPLATE_JSON, to_params, write_json};
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
    pub template: Option<ModelfileTemplate>,
}

/// What a model's Modelfiles carry, resolved from the manifest: a `[templates]` entry, a
/// built-in family, or `auto`. Part of the action key as serialized here.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelfileTemplate {
    /// Template name as the manifest refers to it.
    pub name: String,
    /// Built-in family the template comes from, or `auto` (detected from the model at build
    /// time). `None` for a fully custom template.
    pub family: Option<String>,
    /// Go template text; `None` with family `auto` means "detect", otherwise "no TEMPLATE".
    pub template: Option<String>,
    /// System prompt.
    pub system: Option<String>,
    /// PARAMETERs in name order.
    pub parameters: Vec<(String, ParamValue)>,
    /// License text.
    pub license: Option<String>,
    /// MESSAGE lines as (role, content).
    pub messages: Vec<(String, String)>,
}

/// The key parameters of [`ModelfileAction`].
#[derive(Serialize)]
struct Params<'a> {
    gguf_file: &'a str,
    template: &'a Option<ModelfileTemplate>,
}

/// `template.json`: which template a Modelfile uses and why (read back by `tinylm status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateChoice {
    /// The template name from the manifest (`auto` when detected); `None` for a bare `FROM`.
    pub template: Option<String>,
    /// The built-in family used, if any (the detected one for `auto`).
    pub family: Option<String>,
    /// What detection saw, for `auto`.
    pub evidence: Vec<String>,
    /// Stop strings added from the vocabulary (EOS/EOT tokens).
    pub stops_added: Vec<String>,
}

impl TemplateChoice {
    /// One line: `template chatml, detected: …; stops added from the vocabulary: <|im_end|>`.
    pub fn describe(&self) -> String {
        let mut line = match (self.template.as_deref(), self.family.as_deref()) {
            (None, _) => "no template (bare FROM)".to_string(),
            (Some("auto"), Some(f)) => {
                format!("template {f}, detected: {}", self.evidence.join("; "))
            }
            (Some(n), _) => format!("template {n} (from the manifest)"),
        };
        if !self.stops_added.is_empty() {
            line.push_str(&format!(
                "; stops added from the vocabulary: {}",
                self.stops_added.join(", ")
            ));
        }
        line
    }
}

impl ModelfileAction {
    /// The action's kind.
    pub const KIND: &'static str = "modelfile";
}

impl Action for ModelfileAction {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn version(&self) -> u32 {
        2
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params {
            gguf_file: &self.gguf_file,
            template: &self.template,
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![MODELFILE.into(), TEMPLATE_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let gguf = &ctx.input("gguf")?.path;
        let vocab = Vocab::open_gguf(gguf)?;
        let mut mf = Modelfile::new(format!("./{}", self.gguf_file));
        let mut info = TemplateChoice::default();
        if let Some(t) = &self.template {
            info.template = Some(t.name.clone());
            info.family = t.family.clone();
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
                info.family = Some(b.name.clone());
                info.evidence = d.evidence.clone();
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
        info.stops_added = added;
        let text = mf.render()?;
        let path = ctx.output(MODELFILE);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        write_json(ctx, TEMPLATE_JSON, &info)
    }
}
