//! The argument forms of instructions, as `BuildKit`'s parser reads them:
//! JSON arrays, name-value pairs, words, and builder flags (`--from=...`).

use super::dump::go_quote;
use super::{InstructionArgs, split_ws};

pub(super) enum JsonError {
    NotArray,
    NotStrings,
}

pub(super) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

pub(super) fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotArray);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::NotArray)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonError::NotStrings),
        })
        .collect()
}

pub(super) fn parse_maybe_json(rest: &str) -> Result<InstructionArgs, String> {
    if rest.is_empty() {
        return Ok(InstructionArgs::None);
    }
    match parse_json(rest) {
        Ok(v) => Ok(InstructionArgs::Json(v)),
        Err(JsonError::NotStrings) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotArray) => Ok(InstructionArgs::Shell(rest.to_string())),
    }
}

pub(super) fn parse_maybe_json_to_list(rest: &str) -> Result<InstructionArgs, String> {
    match parse_json(rest) {
        Ok(v) => Ok(InstructionArgs::Json(v)),
        Err(JsonError::NotStrings) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotArray) => Ok(whitespace_delimited(rest)),
    }
}

pub(super) fn whitespace_delimited(rest: &str) -> InstructionArgs {
    if rest.is_empty() {
        return InstructionArgs::None;
    }
    InstructionArgs::Words(split_ws(rest, None))
}

pub(super) fn parse_name_val(
    rest: &str,
    key: &str,
    escape: char,
) -> Result<InstructionArgs, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(InstructionArgs::None);
    }
    if !words[0].contains('=') {
        let parts = split_ws(rest, Some(2));
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(InstructionArgs::KeyValues {
            pairs: vec![(parts[0].clone(), parts[1].clone())],
            legacy: true,
        });
    }
    let mut pairs = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&word)
            ));
        };
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(InstructionArgs::KeyValues {
        pairs,
        legacy: false,
    })
}

/// `BuildKit`'s `parseWords`: splits on whitespace, keeping quotes and escapes.
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `BuildKit`'s `extractBuilderFlags`: leading `--flag[=value]` words; a bare
/// `--` ends the flags. Returns the remaining text and the raw flag words.
pub(super) fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let esc = u8::try_from(u32::from(escape)).unwrap_or(b'\\');
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word: Vec<u8> = Vec::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let take = |w: &mut Vec<u8>| String::from_utf8_lossy(&std::mem::take(w)).into_owned();
    while pos <= bytes.len() {
        let at_end = pos == bytes.len();
        let mut ch = bytes.get(pos).copied().unwrap_or(0);
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_ascii_whitespace() || ch == 0x0b {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == bytes.len() || bytes[pos + 1] != b'-' {
                return (line[pos..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                words.push(take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_ascii_whitespace() || ch == 0x0b {
                phase = Phase::Spaces;
                if word == b"--" {
                    return (line[pos..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == esc {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == esc {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        word.push(ch);
        pos += 1;
    }
    (String::new(), words)
}
