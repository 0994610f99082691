//! `BuildKit`'s AST dump (`(from "image")`), for conformance testing.

use std::fmt::Write as _;

use super::{Dockerfile, Instruction, InstructionArgs};

impl Dockerfile {
    /// `BuildKit`'s AST dump (`(from "image")`, one line per instruction),
    /// used for conformance testing.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for inst in &self.instructions {
            out.push('(');
            out.push_str(&inst.dump());
            out.push_str(")\n");
        }
        out
    }
}

pub(super) fn dump_args(s: &mut String, args: &InstructionArgs) {
    match args {
        InstructionArgs::None => {}
        InstructionArgs::Json(v) | InstructionArgs::Words(v) => {
            for w in v {
                s.push(' ');
                s.push_str(&go_quote(w));
            }
        }
        InstructionArgs::Shell(v) => {
            s.push(' ');
            s.push_str(&go_quote(v));
        }
        InstructionArgs::KeyValues { pairs, legacy } => {
            let sep = if *legacy { "" } else { "=" };
            for (k, v) in pairs {
                let _ = write!(s, " {} {} {}", go_quote(k), go_quote(v), go_quote(sep));
            }
        }
        InstructionArgs::Healthcheck { kind, cmd } => {
            s.push(' ');
            s.push_str(&go_quote(kind));
            dump_args(s, cmd);
        }
        InstructionArgs::Onbuild(inner) => {
            let _ = write!(s, " ({})", inner.dump());
        }
        InstructionArgs::Ignored => s.push_str(" \"\""),
    }
}

/// Go's `strconv.Quote`.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Instruction {
    /// `BuildKit`'s dump of this instruction without the outer parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.name.clone();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self
                .flags
                .iter()
                .map(|(n, v)| match v {
                    Some(v) => go_quote(&format!("--{n}={v}")),
                    None => go_quote(&format!("--{n}")),
                })
                .collect();
            let _ = write!(s, " [{}]", flags.join(" "));
        }
        dump_args(&mut s, &self.args);
        s
    }
}
