//! README.md front matter (the model card), as gguf-py's `Metadata.load_model_card` reads it.

use serde_json::{Map, Value as Json};

use super::error::{Result, file_err};
use crate::convert::hf::HfModel;

/// The front matter as a JSON object (empty when there is none).
pub type Card = Map<String, Json>;

/// Parses the YAML front matter of README.md: the first line must be `---`, the YAML runs to the
/// next `---` line. The reference's "Norway problem" hack (`- no` → `- "no"`) and tab → two
/// spaces replacement are applied first, as the reference does.
pub fn load(model: &HfModel) -> Result<Card> {
    let Some(bytes) = model.files.get("README.md") else {
        return Ok(Card::new());
    };
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    if lines.next() != Some("---") {
        return Ok(Card::new());
    }
    let mut yaml_lines = Vec::new();
    for line in lines {
        if line == "---" {
            break;
        }
        yaml_lines.push(line);
    }
    let mut yaml = yaml_lines.join("\n");
    yaml.push('\n');
    let yaml = yaml.replace("- no\n", "- \"no\"\n").replace('\t', "  ");
    if yaml.trim().is_empty() {
        return Ok(Card::new());
    }
    let value: Json = serde_yaml_ng::from_str(&yaml)
        .map_err(|e| file_err("README.md", format!("front matter is not valid YAML: {e}")))?;
    Ok(match value {
        Json::Object(m) => m,
        _ => Card::new(),
    })
}
