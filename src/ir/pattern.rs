//! Shell wildcard patterns as `BuildKit`'s `shell/lex.go` matches them in
//! `${A#pattern}`, `${A%pattern}` and `${A/pattern/replacement}`: `*` is any
//! run of characters and `?` one character (neither matches a newline), and
//! `\*`, `\?` and `\\` are those characters literally. `\}` and `\/` only
//! protect the `${}` syntax, so they stand for `}` and `/`.
//!
//! Both variable expanders use it: the Dockerfile's shell words
//! (the front end's `dockerfile::shell`) and the IR's templates
//! ([`crate::ir::template`]), so the two agree on every pattern.

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
    let re = Pattern::compile(pattern, true, false).map_err(|e| PatternError::new(pattern, e))?;
    if all {
        Ok(re.replace_all(value, replacement))
    } else if let Some((start, end)) = re.find_at(value, 0) {
        let mut out = value[..start].to_owned();
        out.push_str(replacement);
        out.push_str(&value[end..]);
        Ok(out)
    } else {
        Ok(value.to_owned())
    }
}

/// A shell wildcard pattern (`*`, `?`, `\` escapes; no brackets), compiled
/// to a regular expression as `BuildKit` compiles it for Go's regexp: the
/// `regex` crate has the same leftmost-first semantics and runs in time
/// linear in the value, whatever the pattern (no backtracking, no
/// recursion).
struct Pattern {
    re: regex::Regex,
    anchored: bool,
}

impl Pattern {
    fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut re = String::with_capacity(pattern.len() * 2 + 2);
        if anchored {
            re.push_str("\\A");
        }
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                // Neither `*` nor `?` matches a newline, as Go's `.`.
                '*' => re.push_str(if greedy { "[^\\n]*" } else { "[^\\n]*?" }),
                '?' => re.push_str("[^\\n]"),
                '\\' => {
                    // `\}` and `\/` only protect the ${} syntax; drop the backslash.
                    if matches!(chars.get(i), Some('}' | '/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&c @ ('*' | '?' | '\\')) => {
                            re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                            i += 1;
                        }
                        Some(&c) => return Err(format!("invalid escape '\\{c}'")),
                        None => return Err("invalid escape '\\'".to_string()),
                    }
                }
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        let re = regex::RegexBuilder::new(&re)
            .size_limit(64 << 20)
            .build()
            .map_err(|_| "the pattern is too long".to_owned())?;
        Ok(Self { re, anchored })
    }

    /// Leftmost match starting at or after the byte `from`, as byte offsets.
    fn find_at(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        if self.anchored && from != 0 {
            return None;
        }
        self.re.find_at(text, from).map(|m| (m.start(), m.end()))
    }

    /// Go's `Regexp.ReplaceAllString`, including `$` expansion in `repl`.
    fn replace_all(&self, text: &str, repl: &str) -> String {
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= text.len() {
            let Some((start, end)) = self.find_at(text, search) else {
                break;
            };
            out.push_str(&text[last_end..start]);
            if end > last_end || start == 0 {
                expand_template(&mut out, repl, &text[start..end]);
            }
            last_end = end;
            search = if search >= end {
                // An empty match: go on after the next character.
                search + text[search..].chars().next().map_or(1, char::len_utf8)
            } else {
                end
            };
        }
        if last_end <= text.len() {
            out.push_str(&text[last_end..]);
        }
        out
    }
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`,
/// `$0`/`${0}` is the match, other valid references are empty, malformed
/// ones are kept literally.
fn expand_template(out: &mut String, template: &str, matched: &str) {
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
            out.push_str(matched);
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
    Ok(match re.find_at(value, 0) {
        Some((_, end)) => value[end..].to_owned(),
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
    fn long_values_and_patterns_take_linear_time() {
        // Once a backtracking matcher: quadratic and worse in the value.
        let value = "ab".repeat(50_000);
        assert_eq!(replace("*x*y", &value, "", true).unwrap(), value);
        assert_eq!(replace("a", &value, "", true).unwrap(), "b".repeat(50_000));
        assert_eq!(
            trim_suffix("*a*", &value, false).unwrap(),
            "ab".repeat(49_999)
        );
        let long = "x".repeat(100_000);
        assert_eq!(trim_prefix(&long, &long, false).unwrap(), "");
    }

    #[test]
    fn reversed_patterns() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }
}
