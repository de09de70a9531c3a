use super::*;

fn ok(src: &str) -> GoTemplate {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn err(src: &str) -> GoTemplateError {
    match parse(src) {
        Ok(t) => panic!("{src:?} parsed: {t:?}"),
        Err(e) => e,
    }
}

fn issues(src: &str) -> Vec<String> {
    check_fields(&ok(src)).into_iter().map(|i| i.msg).collect()
}

#[test]
fn text_and_trim_markers() {
    let t = ok("a  {{- .Prompt -}}  \n b");
    assert_eq!(
        t.root,
        vec![
            Node::Text("a".into()),
            Node::Action(Pipe {
                line: 1,
                decl: vec![],
                is_assign: false,
                cmds: vec![Cmd {
                    args: vec![Arg::Field(vec!["Prompt".into()])]
                }],
            }),
            Node::Text("b".into()),
        ]
    );
    // "{{-3}}" is the number -3, not a trim marker.
    let t = ok("x {{-3}}");
    assert_eq!(t.root[0], Node::Text("x ".into()));
    // Comments, with and without trim markers.
    let t = ok("a {{/* c */}} b {{- /* multi\nline */ -}} c");
    assert_eq!(
        t.root,
        vec![
            Node::Text("a ".into()),
            Node::Text(" b".into()),
            Node::Text("c".into())
        ]
    );
}

#[test]
fn control_structures() {
    ok("{{ if .System }}s{{ else if .Prompt }}p{{ else }}n{{ end }}");
    ok("{{ range $i, $m := .Messages }}{{ $i }}{{ $m.Role }}{{ break }}{{ else }}none{{ end }}");
    ok("{{ with .System }}{{ . }}{{ else with .Prompt }}{{ . }}{{ end }}");
    ok(
        "{{ define \"x\" }}{{ .Role }}{{ end }}{{ template \"x\" . }}{{ block \"y\" .System }}{{ . }}{{ end }}",
    );
    ok(
        "{{- $last := eq (len (slice $.Messages 0)) 1 }}{{ $last = false }}{{ if not $last }}{{ end }}",
    );
    ok("{{ .Prompt | printf \"%s\" | len }}");
    ok("{{ json .Tools }}{{ index .Messages 0 }}{{ (index .Messages 0).Role }}");
    ok("{{ if and .System\n  (ne .Prompt \"\") }}x{{ end }}");
    ok("{{ `raw {{ }}` }}{{ \"q\\\"\\n\\u00e9\" }}{{ 'a' }}{{ 1.5 }}{{ 0x1F }}{{ nil }}{{ true }}");
}

#[test]
fn errors_go_template_rejects() {
    for (src, needle) in [
        ("{{ if .System }}x", "without {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("x {{ else }}", "unexpected {{else}}"),
        ("{{ .Prompt ", "unclosed action"),
        ("{{ .Prompt }", "unrecognized character"),
        ("{{ foo .Prompt }}", "function \"foo\" not defined"),
        ("{{ $x }}", "undefined variable \"$x\""),
        ("{{ $x = 1 }}", "undefined variable \"$x\""),
        ("{{ break }}", "outside {{range}}"),
        ("{{ (len .Messages }}", "unclosed left paren"),
        ("{{ len .Messages) }}", "unexpected right paren"),
        ("{{ \"abc }}", "unterminated quoted string"),
        ("{{ /* c */ }}", "unrecognized character"),
        ("{{/* c */ x}}", "comment ends before closing delimiter"),
        ("{{ 1x }}", "bad number syntax"),
        ("{{ if }}{{ end }}", "missing value for if"),
        (
            "{{ range $a, $b, $c := .Messages }}{{ end }}",
            "too many declarations",
        ),
        ("{{ template x }}", "must be a string"),
        (
            "{{ range .Messages }}{{ else }}{{ else }}{{ end }}",
            "expected end",
        ),
        ("{{ \"a\" \"b\" }}", "can't give argument to non-function"),
    ] {
        let e = err(src);
        assert!(e.msg.contains(needle), "{src:?}: {e}");
    }
    assert_eq!(err("a\nb\n{{ end }}").line, 3);
}

#[test]
fn variable_scope_ends_with_the_block() {
    ok("{{ range $i, $_ := .Messages }}{{ $x := 1 }}{{ $x }}{{ end }}");
    let e = err("{{ range $i, $_ := .Messages }}{{ $x := 1 }}{{ end }}{{ $x }}");
    assert!(e.msg.contains("undefined variable \"$x\""), "{e}");
    let e = err("{{ if $y := .System }}{{ end }}{{ $y }}");
    assert!(e.msg.contains("$y"), "{e}");
}

#[test]
fn modes() {
    assert_eq!(ok("{{ .Prompt }}").mode(), Mode::Legacy);
    assert_eq!(ok("{{ range .Messages }}{{ end }}").mode(), Mode::Messages);
    assert_eq!(ok("{{ range $.messages }}{{ end }}").mode(), Mode::Messages);
    assert!(ok("{{ .Prompt }}").gets_response_appended());
    assert!(!ok("{{ .Prompt }}{{ .Response }}").gets_response_appended());
}

#[test]
fn fields_per_mode() {
    assert!(issues("{{ .System }}{{ .Prompt }}{{ .Response }}{{ .Think }}").is_empty());
    assert!(issues(
        "{{ .System }}{{ range .Messages }}{{ .Role }}{{ .Content }}{{ .Thinking }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ end }}{{ range .Tools }}{{ .Function.Name }}{{ .Function.Parameters.Properties }}{{ end }}"
    )
    .is_empty());
    let i = issues("{{ .Promt }}");
    assert!(
        i[0].contains(".Promt is not a field of the top level (legacy"),
        "{i:?}"
    );
    assert!(i[0].contains("available: .System, .Prompt"), "{i:?}");
    let i = issues("{{ range .Messages }}{{ .Content }}{{ end }}{{ .Prompt }}");
    assert!(
        i[0].contains("Messages mode, where .Prompt is not set"),
        "{i:?}"
    );
    let i = issues("{{ range .Messages }}{{ .Text }}{{ end }}");
    assert!(i[0].contains(".Text is not a field of a message"), "{i:?}");
    let i = issues("{{ .Tools }}");
    assert!(i[0].contains("only available in Messages mode"), "{i:?}");
    let i = issues(
        "{{ range $i, $m := .Messages }}{{ $m.Rol }}{{ (index $.Messages 0).Contents }}{{ end }}",
    );
    assert_eq!(i.len(), 2, "{i:?}");
    let i = issues("{{ range .Messages }}{{ .Role.Name }}{{ end }}");
    assert!(i[0].contains("has no fields"), "{i:?}");
    // `with` moves the dot.
    let i = issues(
        "{{ range .Messages }}{{ with .ToolCalls }}{{ range . }}{{ .Function.Nme }}{{ end }}{{ end }}{{ end }}",
    );
    assert!(
        i[0].contains(".Nme is not a field of a tool call's .Function"),
        "{i:?}"
    );
}

#[test]
fn builtin_families_parse_and_use_known_fields() {
    for name in crate::template::families::builtin_names() {
        let t = crate::template::families::builtin(&name).unwrap();
        let parsed = parse(&t.template).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = if name == "completion" {
            Mode::Legacy
        } else {
            Mode::Messages
        };
        assert_eq!(parsed.mode(), want, "{name}");
        assert_eq!(check_fields(&parsed), vec![], "{name}");
    }
}
