//! The family detector over real chat templates (llama.cpp's models/templates and more, copied
//! into tests/fixtures/templates by scripts/golden/templates.py) with an expected-family table,
//! and over the special tokens of llama.cpp's real vocabularies (tests/fixtures/templates/vocab).

use std::path::PathBuf;

use tinylm::template::detect::{detect_jinja, detect_vocab};
use tinylm::template::families::Family;
use tinylm::template::vocab::Vocab;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

/// (fixture, expected built-in template or "unknown"). Unknowns are formats tinylm has no family
/// for (DeepSeek, Command-R, Granite, GLM, Kimi, gpt-oss, Gemma 4, …): they must not be forced
/// into a wrong family.
const TABLE: &[(&str, &str)] = &[
    ("extra/chatml-openhermes-2.5.jinja", "chatml"),
    ("extra/command-r-plus.jinja", "unknown"),
    ("extra/deepseek-coder-33b.jinja", "unknown"),
    ("extra/gemma-7b-it.jinja", "gemma"),
    ("extra/llama2-chat.jinja", "llama2"),
    ("extra/llama2-vigogne-2-70b-chat.jinja", "llama2"),
    ("extra/llama3-instruct.jinja", "llama3"),
    ("extra/mistral-7b-instruct-v0.2.jinja", "mistral"),
    ("extra/mistral-v3-large-2407.jinja", "mistral-tools"),
    ("extra/openchat-3.5.jinja", "unknown"),
    ("extra/phi-3-mini.jinja", "phi3"),
    ("extra/vicuna-13b.jinja", "unknown"),
    ("extra/zephyr-7b-beta.jinja", "zephyr"),
    ("llama.cpp/Apertus-8B-Instruct.jinja", "unknown"),
    ("llama.cpp/Apriel-1.6-15b-Thinker-fixed.jinja", "unknown"),
    (
        "llama.cpp/Bielik-11B-v3.0-Instruct.jinja",
        "chatml-thinking-tools",
    ),
    ("llama.cpp/ByteDance-Seed-OSS.jinja", "unknown"),
    ("llama.cpp/Cohere2MoE.jinja", "unknown"),
    (
        "llama.cpp/CohereForAI-c4ai-command-r-plus-tool_use.jinja",
        "unknown",
    ),
    (
        "llama.cpp/CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        "unknown",
    ),
    ("llama.cpp/GLM-4.6.jinja", "unknown"),
    ("llama.cpp/GLM-4.7-Flash.jinja", "unknown"),
    ("llama.cpp/GigaChat3-10B-A1.8B.jinja", "unknown"),
    ("llama.cpp/GigaChat3.1-10B-A1.8B.jinja", "unknown"),
    (
        "llama.cpp/HuggingFaceTB-SmolLM3-3B.jinja",
        "chatml-thinking",
    ),
    ("llama.cpp/Kimi-K2-Instruct.jinja", "unknown"),
    ("llama.cpp/Kimi-K2-Thinking.jinja", "unknown"),
    ("llama.cpp/Kimi-K3.jinja", "unknown"),
    ("llama.cpp/LFM2-8B-A1B.jinja", "chatml"),
    ("llama.cpp/LFM2.5-8B-A1B.jinja", "chatml-thinking"),
    ("llama.cpp/LFM2.5-Instruct.jinja", "chatml"),
    ("llama.cpp/MiMo-VL.jinja", "chatml-tools"),
    ("llama.cpp/MiniMax-M1.jinja", "unknown"),
    ("llama.cpp/MiniMax-M2.jinja", "unknown"),
    ("llama.cpp/MiniMax-M3.jinja", "unknown"),
    (
        "llama.cpp/Mistral-Small-3.2-24B-Instruct-2506.jinja",
        "mistral-tools",
    ),
    (
        "llama.cpp/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja",
        "chatml-thinking-tools",
    ),
    ("llama.cpp/NVIDIA-Nemotron-Nano-v2.jinja", "unknown"),
    (
        "llama.cpp/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
        "chatml-tools",
    ),
    (
        "llama.cpp/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
        "chatml-tools",
    ),
    ("llama.cpp/Qwen-QwQ-32B.jinja", "chatml-thinking-tools"),
    ("llama.cpp/Qwen-Qwen2.5-7B-Instruct.jinja", "chatml-tools"),
    ("llama.cpp/Qwen-Qwen3-0.6B.jinja", "chatml-thinking-tools"),
    ("llama.cpp/Qwen3-Coder.jinja", "chatml-tools"),
    ("llama.cpp/Qwen3.5-4B.jinja", "chatml-thinking-tools"),
    ("llama.cpp/Reka-Edge.jinja", "unknown"),
    ("llama.cpp/Spark2.5.jinja", "unknown"),
    ("llama.cpp/StepFun3.5-Flash.jinja", "chatml-thinking-tools"),
    (
        "llama.cpp/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
        "unknown",
    ),
    (
        "llama.cpp/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
        "unknown",
    ),
    ("llama.cpp/deepseek-ai-DeepSeek-V3.1.jinja", "unknown"),
    ("llama.cpp/deepseek-ai-DeepSeek-V3.2.jinja", "unknown"),
    (
        "llama.cpp/deepseek-ai-DeepSeek-V4-Flash-0731.jinja",
        "unknown",
    ),
    ("llama.cpp/deepseek-ai-DeepSeek-V4.jinja", "unknown"),
    (
        "llama.cpp/fireworks-ai-llama-3-firefunction-v2.jinja",
        "llama3",
    ),
    ("llama.cpp/google-gemma-2-2b-it.jinja", "gemma"),
    (
        "llama.cpp/google-gemma-4-31B-it-interleaved.jinja",
        "unknown",
    ),
    ("llama.cpp/google-gemma-4-31B-it.jinja", "unknown"),
    (
        "llama.cpp/ibm-granite-granite-3.3-2B-Instruct.jinja",
        "unknown",
    ),
    ("llama.cpp/ibm-granite-granite-4.0.jinja", "unknown"),
    ("llama.cpp/ibm-granite-granite-4.1.jinja", "unknown"),
    ("llama.cpp/inclusionai-ling-3.0-flash.jinja", "unknown"),
    ("llama.cpp/llama-cpp-deepseek-r1.jinja", "unknown"),
    ("llama.cpp/llama-cpp-rwkv-world.jinja", "unknown"),
    (
        "llama.cpp/meetkai-functionary-medium-v3.1.jinja",
        "llama3-tools",
    ),
    ("llama.cpp/meetkai-functionary-medium-v3.2.jinja", "llama3"),
    (
        "llama.cpp/meta-llama-Llama-3.1-8B-Instruct.jinja",
        "llama3-tools",
    ),
    (
        "llama.cpp/meta-llama-Llama-3.2-3B-Instruct.jinja",
        "llama3-tools",
    ),
    (
        "llama.cpp/meta-llama-Llama-3.3-70B-Instruct.jinja",
        "llama3-tools",
    ),
    ("llama.cpp/microsoft-Phi-3.5-mini-instruct.jinja", "phi3"),
    (
        "llama.cpp/mistralai-Ministral-3-14B-Reasoning-2512.jinja",
        "mistral-tools",
    ),
    (
        "llama.cpp/mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "mistral-tools",
    ),
    ("llama.cpp/moonshotai-Kimi-K2.jinja", "unknown"),
    ("llama.cpp/muse-glimmer.jinja", "unknown"),
    ("llama.cpp/openai-gpt-oss-120b.jinja", "unknown"),
    ("llama.cpp/openbmb-MiniCPM5-1B.jinja", "chatml-thinking"),
    ("llama.cpp/poolside-Laguna-S-2.1.jinja", "unknown"),
    ("llama.cpp/poolside-Laguna-XS-2.1.jinja", "unknown"),
    ("llama.cpp/poolside-Laguna-XS.2.jinja", "unknown"),
    ("llama.cpp/tencent-Hy3.jinja", "unknown"),
    ("llama.cpp/unsloth-Apriel-1.5.jinja", "unknown"),
    (
        "llama.cpp/unsloth-mistral-Devstral-Small-2507.jinja",
        "mistral-tools",
    ),
    ("llama.cpp/upstage-Solar-Open-100B.jinja", "unknown"),
];

#[test]
fn detector_table_over_real_templates() {
    let mut files: Vec<String> = ["llama.cpp", "extra"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(fixtures().join(d))
                .unwrap()
                .map(move |e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
        })
        .collect();
    files.sort();
    let listed: Vec<&str> = TABLE.iter().map(|r| r.0).collect();
    assert_eq!(files, listed, "every fixture has a row in the table");
    let mut counts = std::collections::BTreeMap::new();
    for (file, want) in TABLE {
        let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
        let got = match detect_jinja(&text) {
            Ok(d) => {
                assert!(!d.evidence.is_empty(), "{file}: no evidence");
                d.name()
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("Set an explicit template"), "{file}: {msg}");
                "unknown".to_string()
            }
        };
        assert_eq!(&got, want, "{file}");
        *counts
            .entry(want.split('-').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    println!("{counts:?}");
}

#[test]
fn evidence_names_the_markers() {
    let t = std::fs::read_to_string(fixtures().join("llama.cpp/Qwen-Qwen3-0.6B.jinja")).unwrap();
    let d = detect_jinja(&t).unwrap();
    let all = d.evidence.join("\n");
    assert!(
        all.contains("<|im_start|>") && all.contains("<think>") && all.contains("tool calls"),
        "{all}"
    );
    let t =
        std::fs::read_to_string(fixtures().join("extra/mistral-7b-instruct-v0.2.jinja")).unwrap();
    assert!(
        detect_jinja(&t)
            .unwrap()
            .evidence
            .join(" ")
            .contains("no <<SYS>>")
    );
    let e = detect_jinja("{{ messages[0].content }}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("none of the structural markers") && e.contains("chatml"),
        "{e}"
    );
}

fn vocab_fixture(name: &str) -> Vocab {
    let path = fixtures().join(format!("vocab/{name}.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let n = doc["n_tokens"].as_u64().unwrap() as usize;
    let mut tokens: Vec<String> = (0..n).map(|i| format!("tok{i}")).collect();
    let mut types = vec![1; n];
    for s in doc["special"].as_array().unwrap() {
        let id = s[0].as_u64().unwrap() as usize;
        tokens[id] = s[1].as_str().unwrap().to_string();
        types[id] = s[2].as_i64().unwrap() as i32;
    }
    Vocab::new(doc["model"].as_str().unwrap(), tokens, types)
}

#[test]
fn detector_over_real_vocabularies() {
    for (name, want) in [
        ("gpt-2", Some("completion")),
        ("llama-spm", Some("completion")),
        ("starcoder", Some("completion")),
        ("deepseek-llm", Some("completion")),
        ("llama-bpe", Some("llama3")),
        ("phi-3", Some("phi3")),
        ("qwen2", Some("chatml")),
        ("qwen35", Some("chatml")),
        ("command-r", None),
        ("gemma-4", None),
    ] {
        let v = vocab_fixture(name);
        match (detect_vocab(&v), want) {
            (Ok(d), Some(w)) => assert_eq!(d.name(), w, "{name}: {:?}", d.evidence),
            (Err(e), None) => assert!(e.to_string().contains("explicit template"), "{name}: {e}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let d = detect_vocab(&vocab_fixture("llama-bpe")).unwrap();
    assert_eq!(d.family, Family::Llama3);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("<|eot_id|> (id 128009)")),
        "{:?}",
        d.evidence
    );
}
