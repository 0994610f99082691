//! Shell-word processing with the semantics of `BuildKit`'s `shell/lex.go`.
//!
//! This is what Dockerfile instructions such as `ENV`, `COPY` or `WORKDIR`
//! use to expand `$VAR` references and to strip quotes. It is *not* a shell:
//! there is no command substitution, globbing or arithmetic. Supported forms
//! are `$A`, `${A}`, `${A:-x}`, `${A-x}`, `${A:+x}`, `${A+x}`, `${A:?msg}`,
//! `${A?msg}`, `${A#pat}`, `${A##pat}`, `${A%pat}`, `${A%%pat}`,
//! `${A/pat/repl}` and `${A//pat/repl}`, single and double quotes, and the
//! escape character (`\` by default, `` ` `` with `# escape=` + backtick).
//!
//! Known divergences from Go, all on exotic input: letters and digits in
//! variable names follow Rust's `char::is_alphanumeric`/`is_numeric` rather
//! than Go's `unicode.IsLetter`/`IsDigit` (they differ only on a few
//! non-ASCII characters such as superscript digits).

use std::collections::HashSet;

use crate::ir::pattern;

/// An error from shell-word expansion, for example an unterminated quote or
/// `${A:?message}` with `A` unset. The message matches `BuildKit`'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    /// Human-readable description, e.g. `failed to process "${A": syntax error: missing '}'`.
    pub message: String,
}

impl ShellError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A shell-word lexer; `escape` is the Dockerfile escape character (`\` or `` ` ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    /// The escape character, `\` unless the Dockerfile has `# escape=` + backtick.
    pub escape: char,
}

impl Default for ShellLex {
    fn default() -> Self {
        Self { escape: '\\' }
    }
}

/// Internal switches of lex.go (`RawQuotes`, `RawEscapes`, `SkipUnsetEnv`),
/// used by the Dockerfile parser for heredoc detection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LexOptions {
    pub(crate) raw_quotes: bool,
    pub(crate) raw_escapes: bool,
    pub(crate) skip_unset_env: bool,
}

impl ShellLex {
    /// Creates a lexer with the given escape character.
    pub fn new(escape: char) -> Self {
        Self { escape }
    }

    /// Expands variables and removes quotes and escapes in `word`, keeping
    /// whitespace as is (`BuildKit`'s `ProcessWord`). `env` returns `None` for
    /// an unset variable and `Some("")` for a set but empty one.
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ShellError> {
        self.process_with(word, env, LexOptions::default())
            .map(|(w, _)| w)
    }

    /// Like [`ShellLex::process_word`], then splits the result into words on
    /// unquoted whitespace (`BuildKit`'s `ProcessWords`). Whitespace coming from
    /// an unquoted variable value also splits.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        self.process_with(word, env, LexOptions::default())
            .map(|(_, w)| w)
    }

    /// Expands `word` and returns the names of variables that were
    /// referenced but unset (useful for lint-style warnings).
    pub fn unmatched_vars(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        let mut lexer = Lexer::new(word, self.escape, env, LexOptions::default());
        lexer.process(word)?;
        let mut names: Vec<String> = lexer.unmatched.into_iter().collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn process_with(
        self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
        opts: LexOptions,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut lexer = Lexer::new(word, self.escape, env, opts);
        lexer.process(word)
    }
}

struct Lexer<'e> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'e dyn Fn(&str) -> Option<String>,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    /// Shared word buffer; like lex.go it is reset by nested expansions.
    words_buf: String,
    unmatched: HashSet<String>,
    /// How many `${...}` words enclose the one being read.
    depth: usize,
}

/// How deeply `${A:-${B:-...}}` may nest; the template grammar has the same
/// limit ([`crate::ir::template::MAX_DEPTH`]).
const MAX_DEPTH: usize = crate::ir::template::MAX_DEPTH;

struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(buf, ch);
        }
    }
    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }
    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
            self.in_word = false;
        }
        self.words
    }
}

fn go_quote(s: &str) -> String {
    // Close enough to Go's %q for error messages.
    format!("{s:?}")
}

impl<'e> Lexer<'e> {
    fn new(
        word: &str,
        escape: char,
        env: &'e dyn Fn(&str) -> Option<String>,
        opts: LexOptions,
    ) -> Self {
        Self {
            chars: word.chars().collect(),
            pos: 0,
            escape,
            env,
            raw_quotes: opts.raw_quotes,
            raw_escapes: opts.raw_escapes,
            skip_unset_env: opts.skip_unset_env,
            words_buf: String::new(),
            unmatched: HashSet::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = (self.env)(name);
        if value.is_none() {
            self.unmatched.insert(name.to_string());
        }
        value
    }

    fn process(&mut self, source: &str) -> Result<(String, Vec<String>), ShellError> {
        let raw = self.raw_escapes;
        self.process_stop_on(None, raw).map_err(|e| {
            ShellError::new(format!(
                "failed to process {}: {}",
                go_quote(source),
                e.message
            ))
        })
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        if self.depth > MAX_DEPTH {
            return Err(ShellError::new(format!(
                "variable references nested more than {MAX_DEPTH} deep"
            )));
        }
        self.words_buf.clear();
        let saved_raw = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        self.depth += 1;
        let out = self.stop_on_loop(stop);
        self.depth -= 1;
        self.raw_escapes = saved_raw;
        out
    }

    fn stop_on_loop(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words {
            words: Vec::new(),
            in_word: false,
        };
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                let mut buf = std::mem::take(&mut self.words_buf);
                let list = words.finish(&mut buf);
                self.words_buf = buf;
                return Ok((result, list));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' => Some(self.process_single_quote()?),
                '"' => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                let mut buf = std::mem::take(&mut self.words_buf);
                if ch == '$' {
                    words.add_string(&mut buf, &tmp);
                } else {
                    words.add_raw_string(&mut buf, &tmp);
                }
                self.words_buf = buf;
                continue;
            }
            let mut ch = self.next().unwrap_or_default();
            let mut buf = std::mem::take(&mut self.words_buf);
            if ch == self.escape {
                if self.raw_escapes {
                    words.add_raw_char(&mut buf, ch);
                    result.push(ch);
                }
                // The escape character escapes the next one, except at the end.
                let Some(next) = self.next() else {
                    self.words_buf = buf;
                    break;
                };
                ch = next;
                words.add_raw_char(&mut buf, ch);
            } else {
                words.add_char(&mut buf, ch);
            }
            self.words_buf = buf;
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(ShellError::new(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        let mut buf = std::mem::take(&mut self.words_buf);
        let list = words.finish(&mut buf);
        self.words_buf = buf;
        Ok((result, list))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        // Everything up to the next ' is literal; ' cannot be escaped.
        let mut result = String::new();
        let open = self.next().unwrap_or('\'');
        if self.raw_quotes {
            result.push(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        // Literal except `$` expansions; the escape character only escapes
        // `"`, `$` and itself, and is kept before anything else.
        let mut result = String::new();
        let open = self.next().unwrap_or('"');
        if self.raw_quotes {
            result.push(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                ch = n;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(ShellError::new("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(ShellError::new("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.process_name();
        let mut ch = self.next();
        let mut chs: String = ch.map(String::from).unwrap_or_default();
        match ch {
            Some('}') => {
                return Ok(match self.get_env(&name) {
                    Some(v) => v,
                    None if self.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            Some(':' | '+' | '-' | '?' | '#' | '%') => {}
            Some('/') => return self.process_replace(&name),
            _ => {
                return Err(ShellError::new(format!(
                    "unsupported modifier ({chs}) in substitution"
                )));
            }
        }
        let null_is_unset = ch == Some(':');
        if null_is_unset {
            ch = self.next();
            if let Some(c) = ch {
                chs.push(c);
            }
        }
        let raw_escapes = matches!(ch, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            return Err(ShellError::new(format!(
                "unsupported modifier ({chs}) in substitution"
            )));
        }
        let word = match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(ShellError::new("syntax error: missing '}'"));
                }
                return Err(e);
            }
        };
        let value = self.get_env(&name);
        if self.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let empty = value.as_deref().is_none_or(str::is_empty);
        match ch {
            Some('-') => {
                if value.is_none() || (null_is_unset && empty) {
                    Ok(word)
                } else {
                    Ok(value.unwrap_or_default())
                }
            }
            Some('+') => {
                if value.is_none() || (null_is_unset && empty) {
                    Ok(String::new())
                } else {
                    Ok(word)
                }
            }
            Some('?') => match value {
                None => {
                    let msg = if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    };
                    Err(ShellError::new(format!("{name}: {msg}")))
                }
                Some(v) if null_is_unset && v.is_empty() => {
                    let msg = if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    };
                    Err(ShellError::new(format!("{name}: {msg}")))
                }
                Some(v) => Ok(v),
            },
            Some(c @ ('%' | '#')) => {
                let mut pattern = word.as_str();
                let greedy = pattern.starts_with(c);
                if greedy {
                    pattern = &pattern[c.len_utf8()..];
                }
                let value = value.unwrap_or_default();
                let trimmed = if c == '%' {
                    pattern::trim_suffix(pattern, &value, greedy)
                } else {
                    pattern::trim_prefix(pattern, &value, greedy)
                };
                trimmed.map_err(|e| ShellError::new(e.to_string()))
            }
            _ => Err(ShellError::new(format!(
                "unsupported modifier ({chs}) in substitution"
            ))),
        }
    }

    fn process_replace(&mut self, name: &str) -> Result<String, ShellError> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(ShellError::new("syntax error: missing '/' in ${}"));
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(ShellError::new("syntax error: missing '}'"));
                }
                return Err(e);
            }
        };
        let value = self.get_env(name);
        if self.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        pattern::replace(
            &pattern,
            &value.unwrap_or_default(),
            &replacement,
            replace_all,
        )
        .map_err(|e| ShellError::new(e.to_string()))
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut result = String::from("<<");
        while let Some(ch) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            result.push(ch);
            self.next();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn word(input: &str, env: &HashMap<String, String>) -> Result<String, ShellError> {
        ShellLex::default().process_word(input, &|k| env.get(k).cloned())
    }

    #[test]
    fn env_var_table() {
        let Some(dir) = super::super::conformance_dir() else {
            return;
        };
        let text = std::fs::read_to_string(dir.join("shell/envVarTest")).expect("read envVarTest");
        let env = env_of(&[
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("NULL", ""),
        ]);
        let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.trim().split('|').collect();
            assert_eq!(parts.len(), 3, "line {}", n + 1);
            let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
            if platform == "W" {
                skipped += 1;
                continue;
            }
            let got = word(source, &env);
            let ok = match (&got, expected) {
                (Err(_), "error") => true,
                (Ok(w), e) => e != "error" && w == e,
                _ => false,
            };
            if ok {
                passed += 1;
            } else {
                failures.push(format!(
                    "line {}: {source:?} expected {expected:?}, got {got:?}",
                    n + 1
                ));
            }
        }
        println!(
            "envVarTest: {passed} passed, {skipped} skipped (Windows-only), {} failed",
            failures.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn words_table() {
        let Some(dir) = super::super::conformance_dir() else {
            return;
        };
        let text = std::fs::read_to_string(dir.join("shell/wordsTest")).expect("read wordsTest");
        let mut env: HashMap<String, String> = HashMap::new();
        let (mut passed, mut failures) = (0, Vec::new());
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                let rest = rest.trim_start_matches(' ');
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                env.insert(k.to_string(), v.to_string());
                continue;
            }
            let parts: Vec<&str> = line.split('|').collect();
            assert_eq!(parts.len(), 2, "line {}", n + 1);
            let input = parts[0].trim();
            let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
            let got = ShellLex::default()
                .process_words(input, &|k| env.get(k).cloned())
                .unwrap_or_else(|_| vec!["error".to_string()]);
            if got == expected {
                passed += 1;
            } else {
                failures.push(format!(
                    "line {}: {input:?} expected {expected:?}, got {got:?}",
                    n + 1
                ));
            }
        }
        println!(
            "wordsTest: {passed} passed, 0 skipped, {} failed",
            failures.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn pattern_modifiers() {
        let env = env_of(&[("A", "a/b/c.tar.gz"), ("B", "xaxbx"), ("E", "")]);
        let cases = [
            ("${A#*/}", "b/c.tar.gz"),
            ("${A##*/}", "c.tar.gz"),
            ("${A%.*}", "a/b/c.tar"),
            ("${A%%.*}", "a/b/c"),
            ("${A#x}", "a/b/c.tar.gz"),
            ("${A%\\*}", "a/b/c.tar.gz"),
            ("${A/\\//_}", "a_b/c.tar.gz"),
            ("${A//\\//_}", "a_b_c.tar.gz"),
            ("${B//x/-}", "-a-b-"),
            ("${B/x/-}", "-axbx"),
            ("${B//?/.}", "....."),
            ("${B/a*/Z}", "xZ"),
            ("${B//$/d}", "xaxbx"),
            ("${X-def}", "def"),
            ("${E-def}", ""),
            ("${E:-def}", "def"),
            ("${E+set}", "set"),
            ("${E:+set}", ""),
            ("${E?}", ""),
            ("${B#?a}", "xbx"),
        ];
        for (input, expected) in cases {
            assert_eq!(word(input, &env).as_deref(), Ok(expected), "{input}");
        }
        for bad in ["${A:#x}", "${A#\\x}", "${A/x", "${E:?oops}", "${X?}"] {
            assert!(word(bad, &env).is_err(), "{bad}");
        }
        let err = word("${X:?must be set}", &env).unwrap_err();
        assert!(err.message.contains("X: must be set"), "{err}");
    }

    #[test]
    fn backtick_escape_and_words() {
        let lex = ShellLex::new('`');
        let env = |_: &str| None;
        assert_eq!(lex.process_word(r"C:\path`$x", &env).unwrap(), r"C:\path$x");
        assert_eq!(lex.process_words("a` b c", &env).unwrap(), vec!["a b", "c"]);
        assert_eq!(lex.process_word(r#""a`"b""#, &env).unwrap(), "a\"b");
    }

    #[test]
    fn nesting_is_limited() {
        let env = env_of(&[]);
        let nested = |n: usize| format!("{}x{}", "${A:-".repeat(n), "}".repeat(n));
        assert_eq!(word(&nested(MAX_DEPTH - 1), &env).as_deref(), Ok("x"));
        let err = word(&nested(100_000), &env).unwrap_err();
        assert!(err.message.contains("nested more than"), "{err}");
    }
}
