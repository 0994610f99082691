use super::*;
use std::collections::HashMap;

/// Expands with `A=a`, `EMPTY=""`, `B=b`; returns the result and the names read.
fn run(input: &str) -> (Result<String, ExpandError>, Vec<String>) {
    let vars: HashMap<&str, &str> = [("A", "a"), ("EMPTY", ""), ("B", "b"), ("_x1", "x")].into();
    let mut read = Vec::new();
    let result = expand(input, &mut |name| {
        read.push(name.to_owned());
        vars.get(name).map(|v| (*v).to_owned())
    });
    (result, read)
}

fn ok(input: &str) -> String {
    run(input).0.unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn err(input: &str) -> ExpandError {
    run(input).0.expect_err(input)
}

#[test]
fn expansions_that_grow_past_the_limit_fail() {
    let big = "x".repeat(MAX_EXPANDED / 2 + 1);
    let result = expand("$A$A$A", &mut |_| Some(big.clone()));
    let e = result.expect_err("three halves are too many");
    assert!(e.message.contains("expands to more than 4 MiB"), "{e:?}");
    let two = expand("$A", &mut |_| Some(big.clone())).unwrap();
    assert_eq!(two.len(), big.len());
}

#[test]
fn plain_references() {
    assert_eq!(ok("x$A-y"), "xa-y");
    assert_eq!(ok("${A}bc"), "abc");
    assert_eq!(ok("$Abc"), "");
    assert_eq!(ok("$_x1.$A"), "x.a");
    assert_eq!(ok("[$UNSET][${UNSET}][$EMPTY]"), "[][][]");
    assert_eq!(ok("no variables here"), "no variables here");
    assert_eq!(ok("ünïcödé $A ✓"), "ünïcödé a ✓");
}

#[test]
fn default_forms() {
    assert_eq!(ok("${A:-d}"), "a");
    assert_eq!(ok("${EMPTY:-d}"), "d");
    assert_eq!(ok("${UNSET:-d}"), "d");
    assert_eq!(ok("${A-d}"), "a");
    assert_eq!(ok("${EMPTY-d}"), "");
    assert_eq!(ok("${UNSET-d}"), "d");
    assert_eq!(ok("${UNSET:-}"), "");
    assert_eq!(ok("${UNSET:-a b:c}"), "a b:c");
}

#[test]
fn alternative_forms() {
    assert_eq!(ok("${A:+w}"), "w");
    assert_eq!(ok("${EMPTY:+w}"), "");
    assert_eq!(ok("${UNSET:+w}"), "");
    assert_eq!(ok("${A+w}"), "w");
    assert_eq!(ok("${EMPTY+w}"), "w");
    assert_eq!(ok("${UNSET+w}"), "");
}

#[test]
fn required_forms() {
    assert_eq!(ok("${A:?need A}"), "a");
    assert_eq!(ok("${A?need A}"), "a");
    assert_eq!(ok("${EMPTY?need it}"), "");

    let e = err("x ${EMPTY:?must be set}");
    assert_eq!(e.message, "EMPTY: must be set");
    assert_eq!(e.offset, 2);
    assert!(e.help.contains("`EMPTY`"));

    let e = err("${UNSET:?}");
    assert_eq!(e.message, "UNSET: is not allowed to be unset");
    assert_eq!(e.offset, 0);
    assert_eq!(
        err("${EMPTY:?}").message,
        "EMPTY: is not allowed to be empty"
    );

    let e = err("${UNSET?}");
    assert_eq!(e.message, "UNSET: is not allowed to be unset");
    assert_eq!(e.to_string(), "UNSET: is not allowed to be unset");

    let e = err("${UNSET?$A is required}");
    assert_eq!(e.message, "UNSET: a is required");
}

#[test]
fn nesting() {
    assert_eq!(ok("${UNSET:-${B:-c}}"), "b");
    assert_eq!(ok("${UNSET:-${NOPE:-c}}"), "c");
    assert_eq!(ok("${A:+[${B}]}"), "[b]");
    assert_eq!(ok("${UNSET:-{x}}"), "{x}");
    assert_eq!(ok("${UNSET:-a{b{c}}d}"), "a{b{c}}d");
    assert_eq!(ok("{$A}"), "{a}");
    assert_eq!(ok("}{"), "}{");
    // The word is not evaluated when unused, so its `?` does not fire.
    assert_eq!(ok("${A:-${NOPE:?inner}}"), "a");
}

#[test]
fn escapes_and_literal_dollars() {
    assert_eq!(ok(r"\$A"), "$A");
    assert_eq!(ok(r"\${A}"), "${A}");
    assert_eq!(ok(r"C:\dir\$A"), r"C:\dir$A");
    assert_eq!(ok(r"a\nb\"), r"a\nb\");
    assert_eq!(ok("cost $5"), "cost $5");
    assert_eq!(ok("trailing $"), "trailing $");
    assert_eq!(ok("$$A"), "$a");
    assert_eq!(ok("$ $- $."), "$ $- $.");
    assert_eq!(ok(r"\\$A"), r"\a");
    assert_eq!(ok(r"\\\$A"), r"\$A");
    assert_eq!(ok(r"${UNSET:-\}}"), "}");
    assert_eq!(ok(r"${UNSET:-\{x}"), "{x");
    assert_eq!(ok(r"\{\}"), r"\{\}");
    assert_eq!(ok(r"${UNSET:-\$A}"), "$A");
}

#[test]
fn lookup_is_called_once_per_reference_reached() {
    let (result, read) = run("$A ${A} ${B:-$NOPE} ${UNSET:-${B}} ${A:+$B} ${UNSET:+$NEVER}");
    assert_eq!(result.unwrap(), "a a b b b ");
    assert_eq!(read, ["A", "A", "B", "UNSET", "B", "A", "B", "UNSET"]);
}

#[test]
fn unterminated_brace() {
    let e = err("ab ${A");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (3, "`${A` is never closed with `}`")
    );
    assert_eq!(err("x${").offset, 1);
    let e = err("${A:-{b}");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (0, "`${A` is never closed with `}`")
    );
    let e = err("${A:-${B:-c}");
    assert_eq!(e.offset, 0);
    let e = err("${A:-x${B:-c");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (6, "`${B` is never closed with `}`")
    );
    assert!(e.help.contains("missing `}`"));
}

#[test]
fn empty_braces() {
    let e = err("a${}");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (1, "`${}` does not name a variable")
    );
}

#[test]
fn bad_names() {
    let e = err("x ${1A}");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (2, "`1A` is not a valid variable name")
    );
    let e = err("${A B}");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (0, "`A B` is not a valid variable name")
    );
    assert!(e.help.contains("start with a letter"));
    assert_eq!(
        err("${A.B:-x}").message,
        "`A.B` is not a valid variable name"
    );
    assert_eq!(
        err("${:-x}").message,
        "`${` is not followed by a variable name"
    );
    // Syntax errors are reported even where the word would not be used.
    assert_eq!(err("${A:-${1}}").offset, 5);
}

#[test]
fn unsupported_operators() {
    for (input, op) in [
        ("${A:1:2}", ":"),
        ("${A^^}", "^"),
        ("${A,}", ","),
        ("${A:#x}", ":#"),
    ] {
        let e = err(input);
        assert_eq!(e.offset, 0, "{input}");
        assert!(
            e.message.contains(&format!("unsupported operator `{op}`")),
            "{input}: {}",
            e.message
        );
    }
    let e = err("abc${A:=x}");
    assert_eq!(e.offset, 3);
    assert!(
        e.message.contains("`:=`") && e.message.contains("assignment operators are not supported")
    );
}

#[test]
fn pattern_operators() {
    let vars: HashMap<&str, &str> = [
        ("P", "a/b/c.tar.gz"),
        ("S", "foobarbaz"),
        ("GLOB", "*/"),
        ("EMPTY", ""),
    ]
    .into();
    let ok = |input: &str| {
        expand(input, &mut |n| vars.get(n).map(|v| (*v).to_owned()))
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
    };
    assert_eq!(ok("${P#*/}"), "b/c.tar.gz");
    assert_eq!(ok("${P##*/}"), "c.tar.gz");
    assert_eq!(ok("${P%.*}"), "a/b/c.tar");
    assert_eq!(ok("${P%%.*}"), "a/b/c");
    assert_eq!(ok("${P##$GLOB}"), "c.tar.gz");
    assert_eq!(ok("${S#f*b}"), "arbaz");
    assert_eq!(ok("${S##f*b}"), "az");
    assert_eq!(ok("${S%b*}"), "foobar");
    assert_eq!(ok("${S%%b*}"), "foo");
    assert_eq!(ok("${S/ba/fo}"), "fooforbaz");
    assert_eq!(ok("${S//ba/fo}"), "fooforfoz");
    assert_eq!(ok(r"${P//\//_}"), "a_b_c.tar.gz");
    assert_eq!(ok(r"${P%\*}"), "a/b/c.tar.gz");
    assert_eq!(ok("${S/x}y/z}"), "foobarbaz");
    assert_eq!(ok("${UNSET#x}[${UNSET/x/y}]"), "[]");
    assert_eq!(ok("${EMPTY%%*}"), "");
    // A pattern's braces do not nest: the first `}` ends it.
    assert_eq!(ok("${S#{}x"), "foobarbazx");
    let bad =
        |input: &str| expand(input, &mut |n| vars.get(n).map(|v| (*v).to_owned())).unwrap_err();
    assert_eq!(
        bad(r"x${S#\q}").message,
        r"invalid pattern (\q) in substitution: invalid escape '\q'"
    );
    assert_eq!(bad(r"x${S#\q}").offset, 1);
    assert!(
        bad("${S/ab")
            .message
            .contains("has no `/` after its pattern")
    );
    assert!(bad("${S#ab").message.contains("never closed"));
}

#[test]
fn literal_templates_expand_to_themselves() {
    for text in ["plain", "$A ${B} \\$C \\", "a\\\\b$", "${A:-x}"] {
        assert_eq!(ok(&literal(text)), text);
    }
}

#[test]
fn nesting_is_limited() {
    let nested = |n: usize| format!("{}x{}", "${A:-".repeat(n), "}".repeat(n));
    assert_eq!(ok(&nested(MAX_DEPTH)), "a");
    assert_eq!(
        run(&nested(MAX_DEPTH)).1.len(),
        1,
        "only the outer reference is read"
    );
    let e = err(&format!("ab{}", nested(100_000)));
    assert!(e.message.contains("nested more than 64 deep"), "{e}");
    assert_eq!(e.offset, 2 + 5 * MAX_DEPTH);
}
