//! TOML text: strings (basic, literal, multi-line), keys, durations,
//! healthcheck lines and comments, as the manifest writes them.

use std::fmt::Write as _;

use crate::ir::{Command, Healthcheck};

/// `text` as a TOML string: a literal string (`'...'`) when it holds quotes
/// or backslashes a literal can hold, a multi-line string when it has
/// newlines, else a basic string (`"..."`) with escapes.
pub fn toml_string(text: &str) -> String {
    if text.contains('\n') {
        return multi_line_string(text);
    }
    let literal_ok = !text.contains('\'') && text.chars().all(|c| c == '\t' || !is_control(c));
    if literal_ok && text.contains(['"', '\\']) {
        format!("'{text}'")
    } else {
        basic_string(text)
    }
}

/// `key` as a TOML key: bare when it can be, else quoted.
pub fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        basic_string(key)
    }
}

/// A TOML control character: not allowed raw in any string but tab and newline.
pub(super) fn is_control(c: char) -> bool {
    c.is_ascii_control()
}

pub(super) fn basic_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

pub(super) fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{8}' => out.push_str("\\b"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\u{c}' => out.push_str("\\f"),
        '\r' => out.push_str("\\r"),
        c if is_control(c) => {
            let _ = write!(out, "\\u{:04X}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Text with newlines: `'''` followed by a newline (which TOML drops) and
/// the text as is; or, when a literal cannot hold it (`'''` inside, a
/// trailing `'`, control characters), the same with `"""` and escapes.
pub(super) fn multi_line_string(text: &str) -> String {
    let literal_ok = !text.contains("'''")
        && !text.ends_with('\'')
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !is_control(c));
    if literal_ok {
        return format!("'''\n{text}'''");
    }
    let mut out = String::from("\"\"\"\n");
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    out.push_str("\"\"\"");
    out
}

/// A duration in nanoseconds as the manifest writes it, in the largest unit
/// that holds it exactly: `30s`, `1500ms`, `2h`.
pub(super) fn duration(nanos: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (unit, size) = UNITS
        .iter()
        .find(|(_, size)| nanos.is_multiple_of(*size))
        .expect("every duration is a whole number of nanoseconds");
    format!("{}{unit}", nanos / size)
}

/// The `key = value` pairs of a health check, in the manifest's words.
pub(super) fn healthcheck_lines(check: &Healthcheck) -> Vec<String> {
    let Healthcheck {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    } = check;
    let mut lines = Vec::new();
    match test {
        Some(Command::Shell(text)) => lines.push(format!("test = {}", toml_string(text))),
        Some(Command::Exec(argv)) => {
            let items: Vec<String> = argv.iter().map(|a| toml_string(a)).collect();
            lines.push(format!("test = [{}]", items.join(", ")));
        }
        None => lines.push("disable = true".to_owned()),
    }
    for (key, value) in [
        ("interval", interval),
        ("timeout", timeout),
        ("start_period", start_period),
        ("start_interval", start_interval),
    ] {
        if let Some(nanos) = value {
            lines.push(format!("{key} = \"{}\"", duration(*nanos)));
        }
    }
    if let Some(retries) = retries {
        lines.push(format!("retries = {retries}"));
    }
    lines
}

/// A comment line made safe for TOML: it starts with `#` and holds no
/// control characters but tabs. Empty stays empty (a paragraph break).
pub(super) fn comment_text(line: &str) -> String {
    let line = line.trim();
    if line.is_empty() {
        return String::new();
    }
    let clean: String = line
        .chars()
        .map(|c| if c != '\t' && is_control(c) { ' ' } else { c })
        .collect();
    if clean.starts_with('#') {
        clean
    } else {
        format!("# {clean}")
    }
}
