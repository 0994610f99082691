//! Shell wildcard patterns as `BuildKit`'s `shell/lex.go` matches them in
//! `${A#pattern}`, `${A%pattern}` and `${A/pattern/replacement}`: `*` is any
//! run of characters and `?` one character (neither matches a newline), and
//! `\*`, `\?` and `\\` are those characters literally. `\}` and `\/` only
//! protect the `${}` syntax, so they stand for `}` and `/`.
//!
//! Both variable expanders use it: the Dockerfile's shell words
//! ([`crate::dockerfile::shell`]) and the IR's templates
//! ([`crate::plan::expand`]), so the two agree on every pattern.

use std::collections::HashSet;

/// A pattern that cannot be compiled, e.g. `\x` (an escape of nothing special).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern ({pattern}) in substitution: {why}")]
pub struct PatternError {
    /// The pattern as written (after its variables were expanded).
    pub pattern: String,
    /// What is wrong with it, e.g. `invalid escape '\x'`.
    pub why: String,
}

impl PatternError {
    fn new(pattern: &str, why: String) -> Self {
        Self {
            pattern: pattern.to_owned(),
            why,
        }
    }
}

/// `value` with `pattern` replaced by `replacement`: its leftmost longest
/// match, or with `all` every match (Go's `ReplaceAllString`, so `$0` in
/// `replacement` is the match and `$$` a `$`).
///
/// # Errors
/// When `pattern` is not a valid pattern.
pub fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, PatternError> {
    let value: Vec<char> = value.chars().collect();
    let re = Pattern::compile(pattern, true, false).map_err(|e| PatternError::new(pattern, e))?;
    if all {
        Ok(re.replace_all(&value, replacement))
    } else if let Some((start, end)) = re.find_at(&value, 0) {
        let mut out: String = value[..start].iter().collect();
        out.push_str(replacement);
        out.extend(&value[end..]);
        Ok(out)
    } else {
        Ok(value.iter().collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// `*`: any run of characters except newline.
    Star,
    /// `?`: one character except newline.
    Any,
    Lit(char),
}

/// A shell wildcard pattern (`*`, `?`, `\` escapes; no brackets), matched
/// with the leftmost-first preference of Go's regexp.
struct Pattern {
    toks: Vec<Tok>,
    greedy: bool,
    anchored: bool,
}

impl Pattern {
    fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    // `\}` and `\/` only protect the ${} syntax; drop the backslash.
                    if matches!(chars.get(i), Some('}' | '/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&c @ ('*' | '?' | '\\')) => {
                            toks.push(Tok::Lit(c));
                            i += 1;
                        }
                        Some(&c) => return Err(format!("invalid escape '\\{c}'")),
                        None => return Err("invalid escape '\\'".to_string()),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Self {
            toks,
            greedy,
            anchored,
        })
    }

    fn match_from(
        &self,
        text: &[char],
        ti: usize,
        pos: usize,
        failed: &mut HashSet<(usize, usize)>,
    ) -> Option<usize> {
        if ti == self.toks.len() {
            return Some(pos);
        }
        if failed.contains(&(ti, pos)) {
            return None;
        }
        let found = match self.toks[ti] {
            Tok::Lit(c) => {
                if text.get(pos) == Some(&c) {
                    self.match_from(text, ti + 1, pos + 1, failed)
                } else {
                    None
                }
            }
            Tok::Any => match text.get(pos) {
                Some(&c) if c != '\n' => self.match_from(text, ti + 1, pos + 1, failed),
                _ => None,
            },
            Tok::Star => {
                let max = text[pos..].iter().take_while(|&&c| c != '\n').count();
                if self.greedy {
                    (0..=max)
                        .rev()
                        .find_map(|k| self.match_from(text, ti + 1, pos + k, failed))
                } else {
                    (0..=max).find_map(|k| self.match_from(text, ti + 1, pos + k, failed))
                }
            }
        };
        if found.is_none() {
            failed.insert((ti, pos));
        }
        found
    }

    /// Leftmost match starting at or after `from`, as `(start, end)` char indices.
    fn find_at(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        let mut failed = HashSet::new();
        if self.anchored {
            if from != 0 {
                return None;
            }
            return self.match_from(text, 0, 0, &mut failed).map(|end| (0, end));
        }
        (from..=text.len()).find_map(|start| {
            self.match_from(text, 0, start, &mut failed)
                .map(|end| (start, end))
        })
    }

    /// Go's `Regexp.ReplaceAllString`, including `$` expansion in `repl`.
    fn replace_all(&self, text: &[char], repl: &str) -> String {
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= text.len() {
            let Some((start, end)) = self.find_at(text, search) else {
                break;
            };
            out.extend(&text[last_end..start]);
            if end > last_end || start == 0 {
                expand_template(&mut out, repl, &text[start..end]);
            }
            last_end = end;
            search = if search + 1 > end { search + 1 } else { end };
        }
        if last_end <= text.len() {
            out.extend(&text[last_end..]);
        }
        out
    }
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`,
/// `$0`/`${0}` is the match, other valid references are empty, malformed
/// ones are kept literally.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        rest = &rest[idx + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let is_name = |c: char| c.is_alphanumeric() || c == '_';
        let (name, after) = if let Some(r) = rest.strip_prefix('{') {
            match r.find('}') {
                Some(close) if close > 0 && r[..close].chars().all(is_name) => {
                    (&r[..close], &r[close + 1..])
                }
                _ => {
                    out.push('$');
                    continue;
                }
            }
        } else {
            let len: usize = rest
                .chars()
                .take_while(|&c| is_name(c))
                .map(char::len_utf8)
                .sum();
            if len == 0 {
                out.push('$');
                continue;
            }
            (&rest[..len], &rest[len..])
        };
        rest = after;
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && name.parse::<u64>() == Ok(0)
        {
            out.extend(matched);
        }
    }
    out.push_str(rest);
}

/// `value` without the shortest (`longest`: the longest) match of `pattern`
/// at its start, or unchanged when it does not start with one.
///
/// # Errors
/// When `pattern` is not a valid pattern.
pub fn trim_prefix(pattern: &str, value: &str, longest: bool) -> Result<String, PatternError> {
    let re = Pattern::compile(pattern, longest, true).map_err(|e| PatternError::new(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match re.find_at(&chars, 0) {
        Some((_, end)) => chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern but keeps `\x` escapes in order (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec![' '; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let out_idx = last - i;
        if chars[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = chars[i + 1];
            i += 2;
        } else {
            out[out_idx] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `value` without the shortest (`longest`: the longest) match of `pattern`
/// at its end, or unchanged when it does not end with one.
///
/// # Errors
/// When `pattern` is not a valid pattern.
pub fn trim_suffix(pattern: &str, value: &str, longest: bool) -> Result<String, PatternError> {
    Pattern::compile(pattern, longest, true).map_err(|e| PatternError::new(pattern, e))?;
    // Shortest/longest rightmost match == leftmost match on reversed input.
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, longest)
        .map_err(|e| PatternError::new(pattern, e.why))?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_replaces() {
        let v = "a/b/c.tar.gz";
        assert_eq!(trim_prefix("*/", v, false).unwrap(), "b/c.tar.gz");
        assert_eq!(trim_prefix("*/", v, true).unwrap(), "c.tar.gz");
        assert_eq!(trim_suffix(".*", v, false).unwrap(), "a/b/c.tar");
        assert_eq!(trim_suffix(".*", v, true).unwrap(), "a/b/c");
        assert_eq!(trim_suffix("\\*", v, true).unwrap(), v);
        assert_eq!(replace("\\/", v, "_", false).unwrap(), "a_b/c.tar.gz");
        assert_eq!(replace("\\/", v, "_", true).unwrap(), "a_b_c.tar.gz");
        assert_eq!(replace("x", "xaxbx", "<$0>", true).unwrap(), "<x>a<x>b<x>");
        assert_eq!(replace("x", "xaxbx", "<$0>", false).unwrap(), "<$0>axbx");
        let e = trim_prefix("\\x", v, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid pattern (\\x) in substitution: invalid escape '\\x'"
        );
        assert!(trim_suffix("a\\x", v, false).is_err());
    }

    #[test]
    fn reversed_patterns() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }
}
