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
    let value: Json = crate::formats::guard::catch("the YAML parser failed on README.md", || {
        serde_saphyr::from_str_with_options(&yaml, pyyaml_like())
    })
    .map_err(|msg| file_err("README.md", msg))?
    .map_err(|e| file_err("README.md", format!("front matter is not valid YAML: {e}")))?;
    Ok(match value {
        Json::Object(m) => m,
        _ => Card::new(),
    })
}

/// Parser options that follow PyYAML's `safe_load`, which the reference uses: duplicate keys
/// keep the last value, and `.inf`/`.nan` in fields nobody reads (model-index metrics) must not
/// fail the conversion. YAML 1.1 booleans (`yes`/`on`) are already serde-saphyr's default.
fn pyyaml_like() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::PassThrough;
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Json {
        serde_saphyr::from_str_with_options(yaml, pyyaml_like()).unwrap()
    }

    // Expected values are what PyYAML 6 `yaml.safe_load` returns for the same text.
    #[test]
    fn scalars_follow_pyyaml() {
        let v = parse("flag: yes\nother: off\nu: 1_000\nv: 1.0\nh: 0x10\nd: 2024-01-01\n");
        assert_eq!(v["flag"], Json::Bool(true));
        assert_eq!(v["other"], Json::Bool(false));
        assert_eq!(v["u"], serde_json::json!(1000));
        assert_eq!(v["v"], serde_json::json!(1.0));
        assert_eq!(v["h"], serde_json::json!(16));
        assert_eq!(v["d"], serde_json::json!("2024-01-01"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let v = parse("license: mit\nlicense: apache-2.0\n");
        assert_eq!(v["license"], serde_json::json!("apache-2.0"));
    }

    #[test]
    fn non_finite_floats_do_not_fail_the_card() {
        let v = parse("license: mit\nmodel-index:\n- value: .inf\n- value: .nan\n");
        assert_eq!(v["license"], serde_json::json!("mit"));
    }
}
