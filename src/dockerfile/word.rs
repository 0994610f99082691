//! Turns a Dockerfile word into an IR template.
//!
//! Dockerfile words have quotes and escapes that `BuildKit` removes while it
//! expands variables (`shell/lex.go`, mirrored by [`super::shell`]). The IR's
//! templates are expanded later, at plan time, by [`crate::ir::template`].
//! This module reads a word with `BuildKit`'s rules and writes the template
//! that expands to what `BuildKit` would make of it: quotes and escapes are
//! resolved now, literal characters the template grammar would read as syntax
//! are escaped (`\$`, `\\`, and `\{`/`\}` inside a word), and every variable
//! reference, with its operator (`-`, `+`, `?`, `#`, `%`, `/`, with or without
//! `:` as `BuildKit` allows), is kept for the plan.
//!
//! Parameters no Dockerfile can set (`$1`, `$@`, `$$`, ... and names with
//! non-ASCII letters) are unset in `BuildKit`; they are resolved here.

use crate::ir::template::MAX_DEPTH;

/// Why a word cannot become a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordError {
    /// What is wrong, in `BuildKit`'s words (`failed to process "...": ...`).
    pub message: String,
    /// What to do.
    pub help: String,
}

/// Converts `word` to a template. With `quotes`, single and double quotes
/// and the `escape` character are interpreted as `BuildKit` does; without,
/// the word is taken literally apart from its variable references (JSON
/// forms, `--mount` values).
pub fn template(word: &str, escape: char, quotes: bool) -> Result<String, WordError> {
    let mut reader = Reader {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        quotes,
        escapes: quotes,
        depth: 0,
    };
    let tokens = reader.until(None, false).map_err(|why| WordError {
        message: format!("failed to process {word:?}: {why}"),
        help: help_for(&why),
    })?;
    let mut out = String::with_capacity(word.len());
    write(&tokens, Context::Top, &mut out);
    Ok(out)
}

/// What the body of a `COPY`/`ADD` heredoc with an unquoted delimiter
/// writes: text, or a template when it refers to variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeredocText {
    /// No variable references: the bytes to write.
    Literal(String),
    /// A template for the plan to expand (`\$` is a literal `$`).
    Template(String),
}

/// Converts the body of a `COPY`/`ADD` heredoc whose delimiter is unquoted.
/// `BuildKit` expands it with its shell lexer, quotes taken as plain
/// characters (`SkipProcessQuotes`) and `\` as the escape character
/// whatever `# escape=` says: `\X` is `X` (so `\$` is `$`, `\\` is `\`,
/// and a `\` ending a line joins it to the next), `$NAME` and `${NAME...}`
/// are variables, `$` before anything else is itself, and the shell's
/// special parameters (`$0`...`$9`, `$$`, `$@`, `$*`, `$#`, `$?`, `$-`,
/// `$!`) are never set, so they write nothing. No command substitution.
pub fn heredoc_text(body: &str) -> Result<HeredocText, WordError> {
    let mut reader = Reader {
        chars: body.chars().collect(),
        pos: 0,
        escape: '\\',
        quotes: false,
        escapes: true,
        depth: 0,
    };
    let tokens = reader.until(None, false).map_err(|why| WordError {
        message: format!("failed to process the heredoc: {why}"),
        help: help_for(&why),
    })?;
    if tokens.iter().any(|t| matches!(t, Token::Ref { .. })) {
        let mut template = String::with_capacity(body.len());
        write(&tokens, Context::Top, &mut template);
        return Ok(HeredocText::Template(template));
    }
    Ok(HeredocText::Literal(
        tokens
            .iter()
            .filter_map(|t| match t {
                Token::Lit(c) | Token::Raw(c) => Some(*c),
                Token::Ref { .. } => None,
            })
            .collect(),
    ))
}

/// Whether a template has a variable reference in it.
pub fn has_variable(template: &str) -> bool {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '$' => return true,
            _ => {}
        }
    }
    false
}

fn help_for(why: &str) -> String {
    if why.contains("quote") {
        "close the quote".to_owned()
    } else if why.contains("nested more than") {
        "nest fewer `${...}` inside one another; set an argument to the inner value instead"
            .to_owned()
    } else if why.starts_with("unsupported modifier") {
        "the operators are `-`, `+` and `?` (each also with a `:`), `#`, `##`, `%`, `%%`, `/` and `//`; compute other values in a `RUN` step or pass them with `--build-arg`".to_owned()
    } else {
        "write a reference as `$NAME` or `${NAME}`, optionally with an operator: `${NAME:-default}`, `${NAME#pattern}`, `${NAME/pattern/replacement}`, ...; write a literal `$` as `\\$`".to_owned()
    }
}

/// A piece of a word as read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A character that stands for itself.
    Lit(char),
    /// A character of an escape a pattern reads itself (`BuildKit` keeps the
    /// escape character of `\*` in patterns).
    Raw(char),
    /// A reference to a variable that may be set.
    Ref {
        name: String,
        /// Whether it was written `${NAME}`.
        braced: bool,
        op: Option<Operator>,
    },
}

/// The operator of `${NAME<op>word}` and its word(s).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operator {
    /// As the template writes it: `:-`, `-`, `##`, `/`, `//`, ...
    text: String,
    word: Vec<Token>,
    /// The replacement of `/` and `//`.
    replacement: Option<Vec<Token>>,
}

/// What the template grammar reads a written character as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Top,
    /// The word of `-`, `+` or `?`.
    Word,
    /// A pattern or replacement; `slash` before a replacement.
    Pattern {
        slash: bool,
    },
}

fn write(tokens: &[Token], context: Context, out: &mut String) {
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Lit(c) => {
                let escaped = match (context, c) {
                    (_, '$')
                    | (Context::Top | Context::Word, '\\')
                    | (Context::Word, '{' | '}')
                    | (Context::Pattern { .. }, '}') => true,
                    (Context::Pattern { slash }, '/') => slash,
                    _ => false,
                };
                if escaped {
                    out.push('\\');
                }
                out.push(*c);
            }
            Token::Raw(c) => out.push(*c),
            Token::Ref { name, braced, op } => {
                let next_continues = matches!(
                    tokens.get(i + 1),
                    Some(Token::Lit(c) | Token::Raw(c)) if c.is_ascii_alphanumeric() || *c == '_'
                );
                if op.is_none() && !braced && !next_continues {
                    out.push('$');
                    out.push_str(name);
                    continue;
                }
                out.push_str("${");
                out.push_str(name);
                if let Some(op) = op {
                    out.push_str(&op.text);
                    let pattern = op.text.starts_with(['#', '%', '/']);
                    let word_context = match (pattern, &op.replacement) {
                        (true, Some(_)) => Context::Pattern { slash: true },
                        (true, None) => Context::Pattern { slash: false },
                        (false, _) => Context::Word,
                    };
                    write(&op.word, word_context, out);
                    if let Some(replacement) = &op.replacement {
                        out.push('/');
                        write(replacement, Context::Pattern { slash: false }, out);
                    }
                }
                out.push('}');
            }
        }
    }
}

/// Reads a word as `BuildKit`'s `shell/lex.go` does, into tokens.
struct Reader {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    quotes: bool,
    /// Whether the escape character escapes (it does wherever quotes are
    /// read, and in heredoc bodies, where quotes are plain characters).
    escapes: bool,
    /// How many `${...}` words enclose the current position.
    depth: usize,
}

/// Whether the template grammar has `name` as a variable name.
fn is_template_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads up to `stop` (consumed) or the end; `raw` keeps escapes for a
    /// pattern (`lex.go`'s `rawEscapes`).
    fn until(&mut self, stop: Option<char>, raw: bool) -> Result<Vec<Token>, String> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok(tokens);
            }
            match c {
                '$' => self.dollar(&mut tokens)?,
                '\'' if self.quotes => {
                    self.next();
                    loop {
                        match self.next() {
                            None => {
                                return Err("unexpected end of statement while looking for matching single-quote".to_owned());
                            }
                            Some('\'') => break,
                            Some(c) => tokens.push(Token::Lit(c)),
                        }
                    }
                }
                '"' if self.quotes => self.double_quoted(&mut tokens, raw)?,
                c if c == self.escape && self.escapes => {
                    self.next();
                    if raw {
                        tokens.push(self.raw_escape(c));
                    }
                    // The escape character escapes the next one, except at the end.
                    let Some(next) = self.next() else {
                        break;
                    };
                    tokens.push(if raw && self.escape == '\\' {
                        Token::Raw(next)
                    } else {
                        Token::Lit(next)
                    });
                }
                c => {
                    self.next();
                    tokens.push(Token::Lit(c));
                }
            }
        }
        match stop {
            Some(_) => Err("syntax error: missing '}'".to_owned()),
            None => Ok(tokens),
        }
    }

    /// The escape character itself, kept for a pattern: `\` pairs with the
    /// character after it; another escape character is an ordinary one.
    fn raw_escape(&self, c: char) -> Token {
        if self.escape == '\\' {
            Token::Raw(c)
        } else {
            Token::Lit(c)
        }
    }

    fn double_quoted(&mut self, tokens: &mut Vec<Token>, raw: bool) -> Result<(), String> {
        self.next();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.next();
                    return Ok(());
                }
                Some('$') => self.dollar(tokens)?,
                Some(c) if c == self.escape => {
                    self.next();
                    match self.peek() {
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            if raw {
                                tokens.push(self.raw_escape(c));
                            }
                            self.next();
                            tokens.push(if raw && self.escape == '\\' {
                                Token::Raw(n)
                            } else {
                                Token::Lit(n)
                            });
                        }
                        // Before anything else the escape character is kept.
                        _ => tokens.push(if raw {
                            self.raw_escape(c)
                        } else {
                            Token::Lit(c)
                        }),
                    }
                }
                Some(c) => {
                    self.next();
                    tokens.push(Token::Lit(c));
                }
            }
        }
    }

    /// A name as `lex.go` reads one: letters, digits and `_`, or one special
    /// parameter (`$@`, `$?`, ...), or a run of digits.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn dollar(&mut self, tokens: &mut Vec<Token>) -> Result<(), String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                tokens.push(Token::Lit('$'));
            } else if is_template_name(&name) {
                tokens.push(Token::Ref {
                    name,
                    braced: false,
                    op: None,
                });
            }
            return Ok(());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "variable references nested more than {MAX_DEPTH} deep"
            ));
        }
        self.depth += 1;
        let op = self.braced_rest();
        self.depth -= 1;
        let (name, op) = op?;
        if is_template_name(&name) {
            tokens.push(Token::Ref {
                name,
                braced: true,
                op,
            });
            return Ok(());
        }
        // Never set: what the operator gives for an unset variable.
        match op {
            Some(op) if op.text.ends_with('-') => tokens.extend(op.word),
            Some(op) if op.text.ends_with('?') => {
                let mut message = String::new();
                write(&op.word, Context::Top, &mut message);
                if message.is_empty() {
                    message.push_str("is not allowed to be unset");
                }
                return Err(format!("{name}: {message}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// After `${`: the name and the operator, up to and including the `}`.
    fn braced_rest(&mut self) -> Result<(String, Option<Operator>), String> {
        let name = self.name();
        let ch = self.next();
        let mut text: String = ch.map(String::from).unwrap_or_default();
        let unsupported = |text: &str| format!("unsupported modifier ({text}) in substitution");
        match ch {
            Some('}') => return Ok((name, None)),
            None => return Err("syntax error: missing '}'".to_owned()),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {}
            Some('/') => {
                if self.peek() == Some('/') {
                    self.next();
                    text.push('/');
                }
                let word = self.until(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() && e.contains("missing '}'") {
                        "syntax error: missing '/' in ${}".to_owned()
                    } else {
                        e
                    }
                })?;
                let replacement = self.until(Some('}'), true)?;
                return Ok((
                    name,
                    Some(Operator {
                        text,
                        word,
                        replacement: Some(replacement),
                    }),
                ));
            }
            _ => return Err(unsupported(&text)),
        }
        let mut op = ch;
        if op == Some(':') {
            op = self.next();
            if let Some(c) = op {
                text.push(c);
            }
        }
        let pattern = matches!(op, Some('#' | '%'));
        if text.len() > 1 && pattern {
            return Err(unsupported(&text));
        }
        if pattern && self.peek() == op {
            self.next();
            text.extend(op);
        }
        let word = self.until(Some('}'), pattern)?;
        if !matches!(op, Some('-' | '+' | '?' | '#' | '%')) {
            return Err(unsupported(&text));
        }
        Ok((
            name,
            Some(Operator {
                text,
                word,
                replacement: None,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::shell::ShellLex;
    use crate::ir::template::expand;
    use std::collections::HashMap;

    fn t(word: &str) -> String {
        template(word, '\\', true).unwrap()
    }

    #[test]
    fn quotes_and_escapes_are_removed_variables_kept() {
        assert_eq!(t("a\"b c\"d"), "ab cd");
        assert_eq!(t("'$HOME'"), "\\$HOME");
        assert_eq!(t("\"$HOME/x\""), "$HOME/x");
        assert_eq!(t("\\$A"), "\\$A");
        assert_eq!(t("${A:-x}y"), "${A:-x}y");
        assert_eq!(t("$A_B.c"), "$A_B.c");
        assert_eq!(t("$A'b'"), "${A}b");
        assert_eq!(t("cost $5"), "cost ");
        assert_eq!(t("\\\\$A"), "\\\\$A");
        assert_eq!(t("${A:-\\}}"), "${A:-\\}}");
        assert_eq!(t("${A:-{x}"), "${A:-\\{x}");
        assert_eq!(t("${A#\\*}"), "${A#\\*}");
        assert_eq!(t("${A##'}'}"), "${A##\\}}");
        assert_eq!(t("${A/\\//_}"), "${A/\\//_}");
        assert_eq!(t("${1:-x}${@}$$"), "x");
        assert_eq!(template("a\"b\"", '\\', false).unwrap(), "a\"b\"");
    }

    #[test]
    fn bad_words_are_refused_in_buildkit_words() {
        for (word, why) in [
            ("${A:0:2}", "unsupported modifier (:0) in substitution"),
            ("${A:#x}", "unsupported modifier (:#) in substitution"),
            ("${A", "missing '}'"),
            ("${A/x", "missing '/' in ${}"),
            ("${}", "bad substitution"),
            ("'unterminated", "matching single-quote"),
            ("${1:?must be set}", "1: must be set"),
        ] {
            let e = template(word, '\\', true).unwrap_err();
            assert!(e.message.contains(why), "{word}: {e:?}");
            assert!(e.message.starts_with("failed to process"), "{word}: {e:?}");
        }
        let nested = format!("{}x{}", "${A:-".repeat(100), "}".repeat(100));
        let e = template(&nested, '\\', true).unwrap_err();
        assert!(e.message.contains("nested more than"), "{e:?}");
    }

    #[test]
    fn heredoc_bodies_read_as_buildkit_expands_them() {
        let literal = |s: &str| HeredocText::Literal(s.to_owned());
        let template = |s: &str| HeredocText::Template(s.to_owned());
        let text = |s: &str| heredoc_text(s).unwrap();
        // testCopyHeredocSpecialSymbols: quotes stay, `\` escapes.
        assert_eq!(
            text("\"quotes in file\"\n"),
            literal("\"quotes in file\"\n")
        );
        assert_eq!(text("\\\n"), literal("\n"));
        assert_eq!(text("\\\\\n"), literal("\\\n"));
        assert_eq!(text("\\$\n"), literal("$\n"));
        assert_eq!(text("a\\tb \\'c\\'"), literal("atb 'c'"));
        // No command substitution; a `$` before anything else is itself.
        assert_eq!(text("$(id) `id` $ 5 $"), literal("$(id) `id` $ 5 $"));
        // Special parameters and numbered ones are never set.
        assert_eq!(text("[$1$$$@$*$#$?$-$!$0$12]"), literal("[]"));
        assert_eq!(text("$é!"), literal("!"));
        // Variables stay references; literal `$`s are escaped around them.
        assert_eq!(text("'$A' \"${B:-x}\"\n"), template("'$A' \"${B:-x}\"\n"));
        assert_eq!(text("\\$A $B $(c)"), template("\\$A $B \\$(c)"));
        assert_eq!(text("\\\\\\$ $A"), template("\\\\\\$ $A"));
        assert_eq!(text("\\\\$A"), template("\\\\$A"));
        assert_eq!(text("${A%x}"), template("${A%x}"));
    }

    #[test]
    fn variables_are_detected() {
        assert!(has_variable("$A"));
        assert!(!has_variable("\\$A"));
        assert!(has_variable("\\\\$A"));
        assert!(!has_variable("plain"));
    }

    /// The Dockerfile word, as a template expanded by the plan, gives what
    /// `BuildKit` (and [`ShellLex`]) give for it.
    fn agree(word: &str, env: &HashMap<String, String>) -> Result<Result<String, String>, String> {
        let shell = ShellLex::default()
            .process_word(word, &|k| env.get(k).cloned())
            .map_err(|e| e.message);
        let planned = template(word, '\\', true)
            .map_err(|e| e.message)
            .and_then(|t| {
                expand(&t, &mut |k| env.get(k).cloned())
                    .map_err(|e| format!("{t:?}: {}", e.message))
            });
        match (&shell, &planned) {
            (Ok(a), Ok(b)) if a == b => Ok(shell),
            (Err(_), Err(_)) => Ok(shell),
            _ => Err(format!(
                "{word:?}: shell gives {shell:?}, the plan {planned:?}"
            )),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_plan_expands_words_as_buildkit_does_env_var_table() {
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
        let mut failures = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.trim().split('|').collect();
            let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
            if platform == "W" {
                continue;
            }
            match agree(source, &env) {
                Ok(got) => {
                    let matches = match (&got, expected) {
                        (Err(_), "error") => true,
                        (Ok(w), e) => e != "error" && w == e,
                        _ => false,
                    };
                    if !matches {
                        failures.push(format!("{source:?}: expected {expected:?}, got {got:?}"));
                    }
                }
                Err(why) => failures.push(why),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_plan_expands_words_as_buildkit_does() {
        let env = env_of(&[
            ("A", "a/b/c.tar.gz"),
            ("B", "xaxbx"),
            ("E", ""),
            ("S", "foobarbaz"),
            ("G", "*"),
            ("BR", "}{"),
        ]);
        let words = [
            "${A#*/}",
            "${A##*/}",
            "${A%.*}",
            "${A%%.*}",
            "${A#x}",
            "${A%\\*}",
            "${A/\\//_}",
            "${A//\\//_}",
            "${B//x/-}",
            "${B/x/-}",
            "${B//?/.}",
            "${B/a*/Z}",
            "${B//$/d}",
            "${B//x/<$0>}",
            "${B//x/$$}",
            "${X-def}",
            "${E-def}",
            "${E:-def}",
            "${E+set}",
            "${E:+set}",
            "${E?}",
            "${X?}",
            "${E:?oops}",
            "${X:?must be set}",
            "${B#?a}",
            "${S#f*b}",
            "${S##f*b}",
            "${S%b*}",
            "${S%%b*}",
            "${S/ba/fo}",
            "${S//ba/fo}",
            "${S#$G}",
            "${S#\"$G\"}",
            "${S#'f'*}",
            "\"${S%%b*}\"-x",
            "${S:-'a b'}",
            "${X:-\"a}b\"}",
            "${X:-a\\}b}",
            "${X:-{a}}",
            "${X:-a{b{c}}d}",
            "${X:-\\$S}",
            "${X:-\\\\$S}",
            "\\\\$S",
            "a\\\\\\$S",
            "'\\'$S",
            "${BR}${BR:+{}}",
            "${S/x}/y}",
            "${S/\\}/y}",
            "${S#\\}}",
            "${S#\\q}",
            "${S:#x}",
            "${X:-${S#foo}}",
            "${S:+${X:-${S%baz}}}",
            "$S$X$1$@$$x",
            "${1:-${S}}",
            "${X-${1:+no}yes}",
            "he${XXX:-\\${PWD}z}xx",
        ];
        let failures: Vec<String> = words.iter().filter_map(|w| agree(w, &env).err()).collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
