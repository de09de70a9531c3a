//! The built-in Go templates render conversations exactly like the real Jinja chat templates of
//! their families (reference renderings made by scripts/golden/templates.py with jinja2, as
//! transformers' apply_chat_template does, leading BOS removed).

use std::path::PathBuf;

use tinylm::template::families::builtin;
use tinylm::template::gotmpl::exec::{ChatMessage, ThinkOptions, render_chat};
use tinylm::template::gotmpl::parse;

fn conversation(name: &str) -> Vec<ChatMessage> {
    let sys = ChatMessage::new("system", "You are a helpful assistant");
    let multi = [
        ChatMessage::new("user", "Hello"),
        ChatMessage::new("assistant", "Hi there"),
        ChatMessage::new("user", "Who are you"),
    ];
    match name {
        "multi" => multi.to_vec(),
        "system" => vec![sys, ChatMessage::new("user", "Hello")],
        "system-multi" => std::iter::once(sys).chain(multi).collect(),
        other => panic!("unknown conversation {other}"),
    }
}

#[test]
fn builtin_families_match_reference_jinja_renderings() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/templates/render");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (family, conv) = stem.split_once('-').unwrap();
        let want = std::fs::read_to_string(&path).unwrap();
        let t = builtin(family).unwrap_or_else(|| panic!("no family {family}"));
        let parsed = parse(&t.template).unwrap();
        let got = render_chat(&parsed, &conversation(conv), ThinkOptions::default()).unwrap();
        assert_eq!(
            got, want,
            "{stem}: Go template output differs from the Jinja reference"
        );
        checked += 1;
    }
    assert_eq!(checked, 18);
}

#[test]
fn completion_is_raw_text_in_legacy_mode() {
    let t = parse(&builtin("completion").unwrap().template).unwrap();
    let got = render_chat(
        &t,
        &[ChatMessage::new("user", "Once upon a time")],
        ThinkOptions::default(),
    )
    .unwrap();
    assert_eq!(got, "Once upon a time");
}

#[test]
fn assistant_prefill_is_left_open() {
    let t = parse(&builtin("chatml").unwrap().template).unwrap();
    let conv = [
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Sure,"),
    ];
    let got = render_chat(&t, &conv, ThinkOptions::default()).unwrap();
    assert_eq!(
        got,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nSure,"
    );
}

#[test]
fn thinking_variant() {
    let t = parse(&builtin("chatml-thinking").unwrap().template).unwrap();
    let conv = [ChatMessage::new("user", "2+2?")];
    let off = ThinkOptions {
        think: false,
        is_set: true,
    };
    assert_eq!(
        render_chat(&t, &conv, off).unwrap(),
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    let on = ThinkOptions {
        think: true,
        is_set: true,
    };
    assert_eq!(
        render_chat(&t, &conv, on).unwrap(),
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    let mut a = ChatMessage::new("assistant", "4");
    a.thinking = "two plus two".into();
    let conv = [
        ChatMessage::new("user", "2+2?"),
        a,
        ChatMessage::new("user", "thanks"),
    ];
    let got = render_chat(&t, &conv, on).unwrap();
    assert!(
        got.contains("<|im_start|>assistant\n<think>\ntwo plus two\n</think>\n\n4<|im_end|>\n"),
        "{got}"
    );
}
