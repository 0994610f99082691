use super::text::duration;
use super::*;

/// Parses `value = <encoded>` back with the toml crate.
fn decode(encoded: &str) -> String {
    let doc = format!("value = {encoded}\n");
    let table: toml::Table =
        toml::from_str(&doc).unwrap_or_else(|e| panic!("{doc:?} does not parse: {e}"));
    table["value"].as_str().unwrap().to_owned()
}

#[test]
fn strings_read_back_as_written() {
    // Every string of up to three characters from the ones TOML treats
    // specially, plus longer cases: each must decode to itself.
    let alphabet = [
        "a", "'", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{7f}", "\u{1b}", "é", "'''", "\"\"\"",
        " ", "$",
    ];
    let mut cases = vec![String::new()];
    for a in alphabet {
        cases.push(a.to_owned());
        for b in alphabet {
            cases.push(format!("{a}{b}"));
            for c in alphabet {
                cases.push(format!("{a}{b}{c}"));
            }
        }
    }
    cases.push("#!/bin/sh\necho \"hi\" 'there' \\\n  && ls\n".to_owned());
    cases.push("\nleading newline\n".to_owned());
    cases.push("line\r\nwith crlf\r\n".to_owned());
    for case in &cases {
        let encoded = toml_string(case);
        assert_eq!(&decode(&encoded), case, "encoded as {encoded}");
    }
}

#[test]
fn strings_pick_the_most_readable_form() {
    assert_eq!(toml_string("plain"), "\"plain\"");
    assert_eq!(toml_string("say \"hi\""), "'say \"hi\"'");
    assert_eq!(toml_string("C:\\dir"), "'C:\\dir'");
    assert_eq!(toml_string("it's \"x\""), "\"it's \\\"x\\\"\"");
    assert_eq!(toml_string("a\nb\n"), "'''\na\nb\n'''");
    assert_eq!(toml_string("a'''b\n"), "\"\"\"\na'''b\n\"\"\"");
    assert_eq!(toml_string("tab\there"), "\"tab\\there\"");
}

#[test]
fn keys_are_bare_when_they_can_be() {
    assert_eq!(toml_key("GO_VERSION"), "GO_VERSION");
    assert_eq!(toml_key("0"), "0");
    assert_eq!(toml_key("build.v2"), "\"build.v2\"");
    assert_eq!(
        toml_key("org.opencontainers.image.title"),
        "\"org.opencontainers.image.title\""
    );
    assert_eq!(toml_key(""), "\"\"");
}

#[test]
fn durations_use_the_largest_exact_unit() {
    for (nanos, text) in [
        (0, "0s"),
        (30_000_000_000, "30s"),
        (90_000_000_000, "90s"),
        (1_500_000_000, "1500ms"),
        (7_200_000_000_000, "2h"),
        (5, "5ns"),
    ] {
        assert_eq!(duration(nanos), text);
        assert_eq!(crate::ir::value::parse_duration(text), Some(nanos));
    }
}

#[test]
fn comments_are_made_safe() {
    assert_eq!(comment_text("  # hello  "), "# hello");
    assert_eq!(comment_text("#x\u{7}y"), "#x y");
    assert_eq!(comment_text("bare"), "# bare");
    assert_eq!(comment_text(""), "");
}
