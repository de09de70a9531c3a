//! Parser cases mirror the behaviour pinned by Ollama's `parser/parser_test.go`; writer cases
//! check that everything we write parses back to the same value.

use super::*;

fn cmds(input: &str) -> Result<Vec<(String, String)>, ParseError> {
    parse_commands(input.as_bytes()).map(|v| v.into_iter().map(|c| (c.name, c.args)).collect())
}

fn c(name: &str, args: &str) -> (String, String) {
    (name.to_string(), args.to_string())
}

#[test]
fn parses_instructions_in_any_order() {
    let input = "\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\nTEMPLATE \"\"\"{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}\"\"\"    \n";
    assert_eq!(
        cmds(input).unwrap(),
        vec![
            c("model", "model1"),
            c("adapter", "adapter1"),
            c("license", "MIT"),
            c("param1", "value1"),
            c("param2", "value2"),
            c(
                "template",
                "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
            ),
        ]
    );
}

#[test]
fn trims_unquoted_and_keeps_quoted_spaces() {
    let input = "\nFROM \"     model 1\"\nADAPTER      adapter3\nLICENSE \"MIT       \"\nPARAMETER param1        value1\nTEMPLATE \"\"\"   {{ .Prompt }}   \"\"\"    \n";
    assert_eq!(
        cmds(input).unwrap(),
        vec![
            c("model", "     model 1"),
            c("adapter", "adapter3"),
            c("license", "MIT       "),
            c("param1", "value1"),
            c("template", "   {{ .Prompt }}   "),
        ]
    );
}

#[test]
fn from_values() {
    let cases = [
        ("FROM \"FOO  BAR  \"", vec![c("model", "FOO  BAR  ")]),
        ("FROM     FOOO BAR    ", vec![c("model", "FOOO BAR")]),
        (
            "FROM /what/is/the path ",
            vec![c("model", "/what/is/the path")],
        ),
        (
            "FROM llama3:7b-instruct-q4_K_M",
            vec![c("model", "llama3:7b-instruct-q4_K_M")],
        ),
        (
            "PARAMETER what the \nFROM lemons make lemonade ",
            vec![c("what", "the"), c("model", "lemons make lemonade")],
        ),
        ("FROM foo\tbar", vec![c("model", "foo\tbar")]),
        ("from ./x.gguf", vec![c("model", "./x.gguf")]),
    ];
    for (input, want) in cases {
        assert_eq!(cmds(input).unwrap(), want, "{input:?}");
    }
    assert_eq!(cmds(""), Err(ParseError::NoFrom));
    assert_eq!(cmds("PARAMETER param1 value1"), Err(ParseError::NoFrom));
    assert_eq!(ParseError::NoFrom.to_string(), "no FROM line");
}

#[test]
fn error_texts_and_lines() {
    let e = cmds("\nFROM foo\nBADCOMMAND param1 value1\n").unwrap_err();
    assert_eq!(
        e,
        ParseError::Line {
            line: 3,
            msg: INVALID_COMMAND
        }
    );
    assert_eq!(
        e.to_string(),
        "(line 3): command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\""
    );
    // A non-letter in the name.
    assert!(matches!(
        cmds("FROM: x"),
        Err(ParseError::Line { line: 1, .. })
    ));
    // A bare FROM followed by a newline: the newline is counted first.
    assert!(matches!(
        cmds("FROM\nx"),
        Err(ParseError::Line { line: 2, .. })
    ));
    let e = cmds("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n").unwrap_err();
    assert_eq!(
        e,
        ParseError::Line {
            line: 3,
            msg: INVALID_ROLE
        }
    );
    assert_eq!(
        e.to_string(),
        "(line 3): message role must be one of \"system\", \"user\", or \"assistant\""
    );
    // Missing values.
    let e = cmds("\nFROM foo\nPARAMETER param1\n").unwrap_err();
    assert_eq!(
        e,
        ParseError::UnexpectedEof {
            buffer: Some("param1".into())
        }
    );
    assert_eq!(e.to_string(), "unexpected EOF: param1");
    assert!(matches!(
        cmds("\nFROM foo\nMESSAGE system\n"),
        Err(ParseError::UnexpectedEof { .. })
    ));
    assert_eq!(
        cmds("\nFROM foo\nMESSAGE system"),
        Err(ParseError::UnexpectedEof { buffer: None })
    );
    assert_eq!(
        ParseError::UnexpectedEof { buffer: None }.to_string(),
        "unexpected EOF"
    );
    // Unterminated quotes.
    assert_eq!(
        cmds("\nFROM foo\nSYSTEM \"\"\"This is a multiline system.\"\"\n\t\t\t"),
        Err(ParseError::UnexpectedEof { buffer: None })
    );
    assert_eq!(
        cmds("\nFROM foo\nSYSTEM \"\n\t\t\t"),
        Err(ParseError::UnexpectedEof { buffer: None })
    );
    assert_eq!(
        cmds("FROM foo\nPARAMETER stop \"\"\""),
        Err(ParseError::UnexpectedEof { buffer: None })
    );
}

#[test]
fn messages() {
    assert_eq!(
        cmds("\nFROM foo\nMESSAGE system You are a file parser.\nMESSAGE user Hey there!\n")
            .unwrap(),
        vec![
            c("model", "foo"),
            c("message", "system: You are a file parser."),
            c("message", "user: Hey there!")
        ]
    );
    assert_eq!(
        cmds("\nFROM foo\nMESSAGE system \"\"\"\nYou are multiline.\n\"\"\"\n\t\t\t").unwrap(),
        vec![
            c("model", "foo"),
            c("message", "system: \nYou are multiline.\n")
        ]
    );
}

#[test]
fn quoting() {
    let cases = [
        (
            "SYSTEM \"\"\"\nThis is a\nmultiline system.\n\"\"\"\n\t\t\t",
            "\nThis is a\nmultiline system.\n",
        ),
        (
            "SYSTEM \"\"\"\nThis is a\nmultiline system.\"\"\"\n",
            "\nThis is a\nmultiline system.",
        ),
        (
            "SYSTEM \"\"\"This is a multiline system.\"\"\"\n",
            "This is a multiline system.",
        ),
        (
            "SYSTEM \"\"\"\nwith \"quotes\".\n\"\"\"\n",
            "\nwith \"quotes\".\n",
        ),
        ("SYSTEM \"\"\"\"\"\"\n", ""),
        ("SYSTEM \"\"\n", ""),
        ("SYSTEM \"'\"\n", "'"),
        (
            "SYSTEM \"\"\"''\"'\"\"'\"\"'\"'''''\"\"'\"\"'\"\"\"\n",
            "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'",
        ),
        ("SYSTEM \"a\nb\"\n", "a\nb"),
        ("SYSTEM # not a comment\n", "# not a comment"),
        ("SYSTEM a\r\n", "a"),
        ("SYSTEM \"\"\"a\r\nb\"\"\"\r\n", "a\r\nb"),
    ];
    for (body, want) in cases {
        let input = format!("FROM foo\n{body}");
        assert_eq!(
            cmds(&input).unwrap(),
            vec![c("model", "foo"), c("system", want)],
            "{body:?}"
        );
    }
}

#[test]
fn parameters_keep_text_verbatim() {
    let cases = [
        ("num_ctx 1", "num_ctx", "1"),
        ("stop ### User:", "stop", "### User:"),
        ("stop ### User: ", "stop", "### User:"),
        ("stop \"### User:\"", "stop", "### User:"),
        ("stop \"### User: \"", "stop", "### User: "),
        ("stop \"\"\"### User:\"\"\"", "stop", "### User:"),
        ("stop \"\"\"### User:\n\"\"\"", "stop", "### User:\n"),
        ("stop <|eot_id|>", "stop", "<|eot_id|>"),
        ("temperature 0.7 # hot", "temperature", "0.7 # hot"),
        ("TEMPERATURE 0", "TEMPERATURE", "0"),
    ];
    for (line, name, value) in cases {
        let input = format!("FROM foo\nPARAMETER {line}\n");
        assert_eq!(
            cmds(&input).unwrap(),
            vec![c("model", "foo"), c(name, value)],
            "{line:?}"
        );
    }
}

#[test]
fn comments_bom_utf16_and_nonprintables() {
    assert_eq!(
        cmds("\n# comment\nFROM foo\n\t").unwrap(),
        vec![c("model", "foo")]
    );
    assert_eq!(
        cmds("  # indented comment\n  FROM foo").unwrap(),
        vec![c("model", "foo")]
    );
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(b"FROM foo");
    assert_eq!(parse_commands(&bom).unwrap()[0].args, "foo");
    let text = "FROM bob\nSYSTEM You are a utf16 file.\n";
    for be in [false, true] {
        let mut bytes: Vec<u8> = if be {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        let got = parse_commands(&bytes).unwrap();
        assert_eq!(got[1].args, "You are a utf16 file.");
    }
    // Zero-width and control characters vanish; multi-byte text stays.
    assert_eq!(
        cmds("FROM foo\nSYSTEM a\u{200b}b\u{7}c 日本語 😀\n").unwrap()[1].1,
        "abc 日本語 😀"
    );
}

#[test]
fn quote_rules() {
    assert_eq!(quote("./model.gguf").unwrap(), "./model.gguf");
    assert_eq!(quote("a \"quoted\" # word").unwrap(), "a \"quoted\" # word");
    assert_eq!(quote("a\"\"\"b").unwrap(), "a\"\"\"b");
    assert_eq!(quote("").unwrap(), "\"\"\"\"\"\"");
    assert_eq!(quote(" lead").unwrap(), "\"\"\" lead\"\"\"");
    assert_eq!(quote("trail\t").unwrap(), "\"\"\"trail\t\"\"\"");
    assert_eq!(quote("\"q\"").unwrap(), "\"\"\"\"q\"\"\"\"");
    assert_eq!(quote("a\nb").unwrap(), "\"\"\"a\nb\"\"\"");
    assert_eq!(quote("x\n\"\"\"\ny"), Err(QuoteError::TripleQuote));
    assert_eq!(quote("line\"\"\"\nmore"), Err(QuoteError::TripleQuote));
    assert_eq!(quote("\"\"\""), Err(QuoteError::TripleQuote));
    assert_eq!(
        quote("a\u{200b}b"),
        Err(QuoteError::NonPrintable {
            ch: '\u{200b}',
            at: 1
        })
    );
    let msg = quote("a\u{0}").unwrap_err().to_string();
    assert!(
        msg.contains("U+0000") && msg.contains("silently drops"),
        "{msg}"
    );
}

/// Every value `quote` accepts is read back verbatim by the parser, for every instruction.
#[test]
fn quote_round_trips_through_the_parser() {
    let pieces = [
        "",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\"",
        "\"\"",
        "#",
        "a",
        "b c",
        "{{ .Prompt }}",
        "<|im_end|>",
        "é",
        "\"\"\"",
        "x\"",
        "  \"",
        "'",
    ];
    let mut checked = 0;
    let mut refused = 0;
    // All strings of up to three pieces.
    let mut values = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for v in &values {
            for p in pieces {
                next.push(format!("{v}{p}"));
            }
        }
        values.extend(next);
    }
    values.sort();
    values.dedup();
    for v in &values {
        match quote(v) {
            Ok(q) => {
                for instr in ["SYSTEM", "PARAMETER stop", "MESSAGE user"] {
                    let text = format!("FROM x\n{instr} {q}\n");
                    let got = parse_commands(text.as_bytes())
                        .unwrap_or_else(|e| panic!("{v:?} → {text:?}: {e}"));
                    let want = if instr.starts_with("MESSAGE") {
                        format!("user: {v}")
                    } else {
                        v.clone()
                    };
                    assert_eq!(got.len(), 2, "{text:?}");
                    assert_eq!(got[1].args, want, "{text:?}");
                }
                checked += 1;
            }
            Err(_) => {
                assert!(v.contains("\"\"\""), "refused {v:?}");
                refused += 1;
            }
        }
    }
    assert!(checked > 3500 && refused > 500, "{checked} {refused}");
}

fn full() -> Modelfile {
    Modelfile {
        from: "./tiny-q8_0.gguf".into(),
        template: Some(
            "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Response }}"
                .into(),
        ),
        system: Some("You are \"helpful\".".into()),
        parameters: vec![
            ("num_ctx".into(), ParamValue::Int(2048)),
            (
                "stop".into(),
                ParamValue::List(vec!["<|im_end|>".into(), "<|im_start|>".into()]),
            ),
            ("temperature".into(), ParamValue::Float(0.7)),
            ("use_mmap".into(), ParamValue::Bool(true)),
        ],
        licenses: vec!["MIT\n\nCopyright".into(), "Apache-2.0".into()],
        messages: vec![
            ("user".into(), "Hi: there".into()),
            ("assistant".into(), " Hello!\n".into()),
        ],
    }
}

#[test]
fn render_is_ordered_and_round_trips() {
    let mf = full();
    let text = mf.render().unwrap();
    assert_eq!(
        text,
        "FROM ./tiny-q8_0.gguf\n\
TEMPLATE \"\"\"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Response }}\"\"\"\n\
SYSTEM You are \"helpful\".\n\
PARAMETER num_ctx 2048\n\
PARAMETER stop <|im_end|>\n\
PARAMETER stop <|im_start|>\n\
PARAMETER temperature 0.7\n\
PARAMETER use_mmap true\n\
LICENSE \"\"\"MIT\n\nCopyright\"\"\"\n\
LICENSE Apache-2.0\n\
MESSAGE user Hi: there\n\
MESSAGE assistant \"\"\" Hello!\n\"\"\"\n"
    );
    assert_eq!(Modelfile::parse(text.as_bytes()).unwrap(), mf);
    assert_eq!(mf.render().unwrap(), text, "deterministic");
}

#[test]
fn render_refuses_what_ollama_would_misread() {
    let mut mf = full();
    mf.template = Some("a\n\"\"\"\nb".into());
    let e = mf.render().unwrap_err().to_string();
    assert!(e.contains("TEMPLATE") && e.contains("\"\"\""), "{e}");

    let mut mf = full();
    mf.parameters
        .push(("temprature".into(), ParamValue::Float(1.0)));
    let e = mf.render().unwrap_err().to_string();
    assert!(e.contains("did you mean `temperature`"), "{e}");

    let mut mf = full();
    mf.parameters
        .push(("num_ctx".into(), ParamValue::Float(1.0)));
    assert!(mf.render().is_err());

    let mut mf = full();
    mf.parameters.push(("seed".into(), ParamValue::Int(1)));
    mf.parameters.push(("seed".into(), ParamValue::Int(2)));
    assert!(mf.render().unwrap_err().to_string().contains("given twice"));

    let mut mf = full();
    mf.messages.push(("tool".into(), "x".into()));
    assert_eq!(mf.render(), Err(ModelfileError::Role("tool".into())));

    let mut mf = full();
    mf.system = Some("zero\u{200b}width".into());
    assert!(mf.render().unwrap_err().to_string().contains("U+200B"));

    assert_eq!(Modelfile::new("").render(), Err(ModelfileError::EmptyFrom));
    let mut mf = full();
    mf.parameters = vec![("stop".into(), ParamValue::List(vec![]))];
    assert!(mf.render().is_err());
}

#[test]
fn parse_types_parameters_like_ollama_create() {
    let text = "FROM x\nPARAMETER stop a\nPARAMETER num_ctx 10\nPARAMETER stop b\nPARAMETER num_ctx 20\nPARAMETER mirostat 1\n";
    let mf = Modelfile::parse(text.as_bytes()).unwrap();
    assert_eq!(
        mf.parameters,
        vec![
            (
                "stop".into(),
                ParamValue::List(vec!["a".into(), "b".into()])
            ),
            ("num_ctx".into(), ParamValue::Int(20)),
        ]
    );
    let e = Modelfile::parse(b"FROM x\nPARAMETER num_ctx 4096.0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_ctx") && e.contains("integer"), "{e}");
    let e = Modelfile::parse(b"FROM x\nPARAMETER TEMPERATURE 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown PARAMETER `TEMPERATURE`"), "{e}");
    assert!(matches!(
        Modelfile::parse(b"FROM x\nADAPTER y\n"),
        Err(ModelfileError::Unsupported(_))
    ));
    assert!(matches!(
        Modelfile::parse(b"FROM x\nFROM y\n"),
        Err(ModelfileError::Unsupported(_))
    ));
    // Last TEMPLATE/SYSTEM wins; LICENSE accumulates.
    let mf = Modelfile::parse(b"FROM x\nSYSTEM a\nSYSTEM b\nLICENSE l1\nLICENSE l2\n").unwrap();
    assert_eq!(mf.system.as_deref(), Some("b"));
    assert_eq!(mf.licenses, vec!["l1", "l2"]);
}
