//! Turns a Dockerfile word into an IR template.
//!
//! Dockerfile words have quotes and escapes that `BuildKit` removes while it
//! expands variables. The IR's templates are expanded later, at plan time, by
//! [`crate::plan::expand`], which knows `$NAME`, `${NAME}` and the `-`, `+`
//! and `?` operators, and reads `\$` as a literal `$`. This module removes
//! the quotes and escapes now, keeps variable references as they are, and
//! refuses the operators the plan cannot expand (`#`, `%`, `/`, substrings).

/// Why a word cannot become a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

/// Converts `word` to a template. With `quotes`, single and double quotes
/// and the `escape` character are interpreted as `BuildKit` does; without,
/// the word is taken literally apart from its variable references (JSON
/// forms, `--mount` values).
pub fn template(word: &str, escape: char, quotes: bool) -> Result<String, WordError> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some('\''), _) => push_literal(&mut out, c),
            (None, '\'' | '"') if quotes => quote = Some(c),
            (Some('"'), e) if quotes && e == escape => match chars.get(i + 1) {
                Some(&next @ ('"' | '$')) => {
                    push_literal(&mut out, next);
                    i += 1;
                }
                Some(&next) if next == escape => {
                    push_literal(&mut out, next);
                    i += 1;
                }
                _ => out.push(e),
            },
            (None, e) if quotes && e == escape => {
                if let Some(&next) = chars.get(i + 1) {
                    push_literal(&mut out, next);
                    i += 1;
                }
            }
            (_, '$') => i = variable(&chars, i, &mut out)?,
            _ => out.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err(WordError {
            message: format!("unterminated quote in `{word}`"),
            help: "close the quote".to_owned(),
        });
    }
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
    let chars: Vec<char> = body.chars().collect();
    let mut template = String::with_capacity(body.len());
    let mut literal = String::with_capacity(body.len());
    let mut variables = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            if let Some(&next) = chars.get(i + 1) {
                push_literal(&mut template, next);
                literal.push(next);
            }
            i += 2;
            continue;
        }
        if c != '$' {
            template.push(c);
            literal.push(c);
            i += 1;
            continue;
        }
        let name: Vec<char> = chars[i + 1..]
            .iter()
            .copied()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        match chars.get(i + 1) {
            // A number (`$1`, `$10`) or a name outside ASCII: never set.
            Some(d) if d.is_ascii_digit() => {
                i += 1 + name.iter().take_while(|c| c.is_ascii_digit()).count();
            }
            Some(_) if !name.is_empty() && !name.iter().all(char::is_ascii) => {
                i += 1 + name.len();
            }
            Some('{' | 'A'..='Z' | 'a'..='z' | '_') => {
                if template.ends_with('\\') {
                    return Err(WordError {
                        message: "imgbuild cannot expand a variable right after a `\\` in a heredoc yet".to_owned(),
                        help: "quote the delimiter (`<<'EOF'`) to write the text as is, or write the file with a `RUN` step".to_owned(),
                    });
                }
                variables = true;
                i = variable(&chars, i, &mut template)? + 1;
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!') => i += 2,
            _ => {
                push_literal(&mut template, '$');
                literal.push('$');
                i += 1;
            }
        }
    }
    Ok(if variables {
        HeredocText::Template(template)
    } else {
        HeredocText::Literal(literal)
    })
}

/// Whether a template has a variable reference in it.
pub fn has_variable(template: &str) -> bool {
    let bytes = template.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'$' && (i == 0 || bytes[i - 1] != b'\\'))
}

fn push_literal(out: &mut String, c: char) {
    if c == '$' {
        out.push('\\');
    }
    out.push(c);
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Copies the reference starting at `chars[start]` (a `$`) to `out`;
/// returns the index of its last character.
fn variable(chars: &[char], start: usize, out: &mut String) -> Result<usize, WordError> {
    match chars.get(start + 1) {
        Some('{') => {
            let mut depth = 0;
            let mut end = None;
            for (j, c) in chars.iter().enumerate().skip(start + 1) {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                return Err(WordError {
                    message: "missing `}` in a `${...}` reference".to_owned(),
                    help: "close the reference: `${NAME}`".to_owned(),
                });
            };
            let inner: String = chars[start + 2..end].iter().collect();
            let name_end = inner
                .char_indices()
                .find(|(_, c)| !is_name_char(*c))
                .map_or(inner.len(), |(i, _)| i);
            let rest = &inner[name_end..];
            let operator_ok = rest.is_empty()
                || [":-", ":+", ":?", "-", "+", "?"]
                    .iter()
                    .any(|op| rest.starts_with(op));
            if !operator_ok {
                let operator: String = rest.chars().take(2).collect();
                let operator = if operator.starts_with(['#', '%', '/']) {
                    operator
                        .trim_end_matches(|c: char| !"#%/".contains(c))
                        .to_owned()
                } else {
                    operator
                };
                return Err(WordError {
                    message: format!(
                        "`${{{inner}}}` uses `{operator}`, which imgbuild cannot expand yet"
                    ),
                    help: "imgbuild expands `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}` and `${NAME:?message}`; compute the value in a `RUN` step or pass it with `--build-arg`".to_owned(),
                });
            }
            out.extend(&chars[start..=end]);
            Ok(end)
        }
        Some(&c) if is_name_start(c) => {
            let end = chars[start + 1..]
                .iter()
                .position(|c| !is_name_char(*c))
                .map_or(chars.len(), |p| start + 1 + p);
            out.extend(&chars[start..end]);
            Ok(end - 1)
        }
        _ => {
            out.push('$');
            Ok(start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(t("cost $5"), "cost $5");
        assert_eq!(template("a\"b\"", '\\', false).unwrap(), "a\"b\"");
    }

    #[test]
    fn unsupported_operators_are_refused() {
        for word in ["${A%.*}", "${A#x}", "${A/a/b}", "${A:0:2}"] {
            let e = template(word, '\\', true).unwrap_err();
            assert!(e.message.contains("cannot expand yet"), "{word}: {e:?}");
        }
        assert!(template("'unterminated", '\\', true).is_err());
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
        assert_eq!(text("\\\\\\$ $A"), template("\\\\$ $A"));
        assert!(heredoc_text("\\\\$A").is_err());
        assert!(heredoc_text("${A%x}").is_err());
    }

    #[test]
    fn variables_are_detected() {
        assert!(has_variable("$A"));
        assert!(!has_variable("\\$A"));
        assert!(!has_variable("plain"));
    }
}
