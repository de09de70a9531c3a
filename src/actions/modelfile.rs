//! `modelfile`: an Ollama Modelfile for one (model, quant).

use serde_json::json;

use super::{Action, RunCtx};
use crate::manifest::TemplateSpec;
use crate::template::modelfile::Modelfile;
use crate::{Error, Result};

/// Writes `Modelfile` pointing at a GGUF in the same directory.
#[derive(Debug)]
pub struct ModelfileAction {
    /// File name of the GGUF, relative to the Modelfile (`FROM ./<gguf_file>`).
    pub gguf_file: String,
    /// Template, system prompt, parameters, license and messages; `None` for a bare `FROM`.
    pub template: Option<TemplateSpec>,
}

impl ModelfileAction {
    fn modelfile(&self) -> Modelfile {
        let mut mf = Modelfile::new(format!("./{}", self.gguf_file));
        if let Some(t) = &self.template {
            mf.template = t.template.clone();
            mf.system = t.system.clone();
            mf.parameters = t.parameters.clone();
            mf.licenses = t.license.iter().cloned().collect();
            mf.messages = t.messages.clone();
        }
        mf
    }
}

impl Action for ModelfileAction {
    fn kind(&self) -> &'static str {
        "modelfile"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        json!({ "gguf_file": self.gguf_file, "template": self.template })
    }

    fn outputs(&self) -> Vec<String> {
        vec!["Modelfile".into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let text = self.modelfile().render()?;
        let path = ctx.output("Modelfile");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}
