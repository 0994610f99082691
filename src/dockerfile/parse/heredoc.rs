//! Heredocs: the `<<EOF` words of an instruction line and the bodies that
//! follow it.

use super::Heredoc;
use crate::dockerfile::shell::{LexOptions, ShellLex};

/// `BuildKit`'s `heredocsFromLine`: finds `<<WORD` words in an instruction.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = ShellLex::new('\\');
    let raw = LexOptions {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
    };
    let words = lex
        .process_with(line, &|_| None, raw)
        .map(|(_, w)| w)
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `BuildKit`'s `ParseHeredoc` on one word (`^(\d*)<<(-?)\s*([^<]*)$`).
pub(super) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let lex = ShellLex::new('\\');
    let opts = LexOptions {
        raw_quotes: false,
        raw_escapes: false,
        skip_unset_env: true,
    };
    let (_, words) = lex
        .process_with(rest, &|_| None, opts)
        .map_err(|e| e.message)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_opts = LexOptions {
        raw_quotes: true,
        ..opts
    };
    let (_, raw_words) = lex
        .process_with(rest, &|_| None, raw_opts)
        .map_err(|e| e.message)?;
    if raw_words.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let name = words.into_iter().next().unwrap_or_default();
    let expand = quotes(&name) == quotes(&raw_words[0]);
    Ok(Some(Heredoc {
        name,
        file_descriptor: fd,
        content: String::new(),
        expand,
        chomp,
    }))
}
