//! Dockerfile-style variable expansion for manifest fields.
//!
//! The input is first parsed completely (so a malformed expression is reported even
//! inside a default that is never used) and then evaluated, calling `lookup` only for
//! the references that are actually reached.

/// Expands `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`, `${NAME:?word}` and `${NAME?word}` in `input`.
/// `lookup` returns a variable's value or None when it is unset; it is called once per reference (callers use it to record which variables were read).
/// Unset variables expand to the empty string (as in Dockerfiles). `word` may itself contain expansions, expanded only when used.
/// `\$` is a literal `$`; any other backslash is kept as is. A `$` not followed by a name or `{` is kept literally (e.g. "cost $5" and a trailing "$").
///
/// # Errors
/// Returns an [`ExpandError`] for a malformed expression anywhere in `input`, or for a
/// `${NAME:?word}` / `${NAME?word}` whose variable is missing.
pub fn expand(
    input: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let parts = Parser { src: input, pos: 0 }.sequence(None)?;
    let mut out = String::with_capacity(input.len());
    evaluate(&parts, lookup, &mut out)?;
    Ok(out)
}

/// A malformed expression or a failed `${NAME:?message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// One sentence: what is wrong, naming the variable when there is one.
    pub message: String,
    /// Byte offset in `input` of the `$` that starts the bad expression.
    pub offset: usize,
    /// What to do about it.
    pub help: String,
}

/// Help shared by the syntax errors.
const SYNTAX_HELP: &str = "write variables as `$NAME` or `${NAME}`, optionally with `:-default`, `:+alternative` or `:?message`; write a literal `$` as `\\$`";

/// One piece of parsed input.
#[derive(Debug)]
enum Part<'a> {
    /// Text copied to the output (escapes already resolved).
    Literal(String),
    /// A variable reference.
    Var(Var<'a>),
}

/// `$NAME` or `${NAME...}`.
#[derive(Debug)]
struct Var<'a> {
    /// The variable name.
    name: &'a str,
    /// `None` for plain `$NAME` and `${NAME}`.
    modifier: Option<Modifier<'a>>,
}

/// The `:-word` (etc.) part of `${NAME:-word}`.
#[derive(Debug)]
struct Modifier<'a> {
    /// Which operator.
    kind: Kind,
    /// Whether the operator had a `:`, so that an empty value counts as missing.
    colon: bool,
    /// The parsed word, evaluated only when used.
    word: Vec<Part<'a>>,
    /// Offset of the `$` starting the expression, for `?` errors.
    offset: usize,
}

/// The supported operators.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `-`: use the word when the variable is missing.
    Default,
    /// `+`: use the word when the variable is present.
    Alternative,
    /// `?`: fail with the word when the variable is missing.
    Required,
}

/// Appends literal text, merging with a preceding literal.
fn push_literal(parts: &mut Vec<Part<'_>>, text: &str) {
    if let Some(Part::Literal(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(Part::Literal(text.to_owned()));
    }
}

/// `[A-Za-z_]`
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// `[A-Za-z0-9_]`
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A recursive-descent parser over the bytes of the input. All syntax characters are
/// ASCII, so every slice boundary it takes is a char boundary.
struct Parser<'a> {
    /// The whole input.
    src: &'a str,
    /// Current byte offset.
    pos: usize,
}

impl<'a> Parser<'a> {
    /// Parses text up to the end of input (`open` is `None`) or up to the `}` closing the
    /// `${name` expression whose `$` is at `open`. Braces inside a word nest.
    fn sequence(&mut self, open: Option<(usize, &'a str)>) -> Result<Vec<Part<'a>>, ExpandError> {
        let bytes = self.src.as_bytes();
        let mut parts = Vec::new();
        let mut depth = 0usize;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return match open {
                    None => Ok(parts),
                    Some((offset, name)) => Err(unterminated(offset, name)),
                };
            };
            match b {
                b'\\' if bytes.get(self.pos + 1) == Some(&b'$') => {
                    push_literal(&mut parts, "$");
                    self.pos += 2;
                }
                b'$' => match self.dollar()? {
                    Some(var) => parts.push(Part::Var(var)),
                    None => push_literal(&mut parts, "$"),
                },
                b'{' if open.is_some() => {
                    depth += 1;
                    push_literal(&mut parts, "{");
                    self.pos += 1;
                }
                b'}' if open.is_some() => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(parts);
                    }
                    depth -= 1;
                    push_literal(&mut parts, "}");
                }
                _ => {
                    // A run of ordinary text; the first byte is always taken.
                    let start = self.pos;
                    self.pos += 1;
                    while let Some(&c) = bytes.get(self.pos) {
                        if matches!(c, b'\\' | b'$' | b'{' | b'}') {
                            break;
                        }
                        self.pos += 1;
                    }
                    push_literal(&mut parts, &self.src[start..self.pos]);
                }
            }
        }
    }

    /// At a `$`: parses `$NAME` or `${...}`, or returns `None` (having consumed the `$`)
    /// when the `$` is literal.
    fn dollar(&mut self) -> Result<Option<Var<'a>>, ExpandError> {
        let offset = self.pos;
        let bytes = self.src.as_bytes();
        match bytes.get(offset + 1) {
            Some(&c) if is_name_start(c) => {
                let end = self.scan(offset + 1, is_name_char);
                self.pos = end;
                Ok(Some(Var {
                    name: &self.src[offset + 1..end],
                    modifier: None,
                }))
            }
            Some(b'{') => self.braced(offset).map(Some),
            _ => {
                self.pos = offset + 1;
                Ok(None)
            }
        }
    }

    /// Parses `${...}` whose `$` is at `offset`.
    fn braced(&mut self, offset: usize) -> Result<Var<'a>, ExpandError> {
        let bytes = self.src.as_bytes();
        let name_start = offset + 2;
        let name_end = self.scan(name_start, is_name_char);
        let name = &self.src[name_start..name_end];
        let next = bytes.get(name_end).copied();
        let valid_name = bytes.get(name_start).copied().is_some_and(is_name_start);

        let (kind, colon, word_start) = match (next, valid_name) {
            (None, _) => return Err(unterminated(offset, name)),
            (Some(b'}'), _) if name.is_empty() => {
                return Err(error(
                    offset,
                    "`${}` does not name a variable".to_owned(),
                    format!(
                        "put a variable name between the braces, e.g. `${{NAME}}`; {SYNTAX_HELP}"
                    ),
                ));
            }
            (Some(b'}'), true) => {
                self.pos = name_end + 1;
                return Ok(Var {
                    name,
                    modifier: None,
                });
            }
            (Some(b'-'), true) => (Kind::Default, false, name_end + 1),
            (Some(b'+'), true) => (Kind::Alternative, false, name_end + 1),
            (Some(b'?'), true) => (Kind::Required, false, name_end + 1),
            (Some(b':'), true) => match bytes.get(name_end + 1) {
                Some(b'-') => (Kind::Default, true, name_end + 2),
                Some(b'+') => (Kind::Alternative, true, name_end + 2),
                Some(b'?') => (Kind::Required, true, name_end + 2),
                Some(b'=') => return Err(unsupported(offset, name, ":=")),
                _ => return Err(unsupported(offset, name, ":")),
            },
            (Some(op @ (b'/' | b'#' | b'%' | b'^' | b',' | b'=' | b'@')), true) => {
                return Err(unsupported(offset, name, &char::from(op).to_string()));
            }
            (Some(_), _) => return Err(self.bad_name(offset, name_start)),
        };

        self.pos = word_start;
        let word = self.sequence(Some((offset, name)))?;
        Ok(Var {
            name,
            modifier: Some(Modifier {
                kind,
                colon,
                word,
                offset,
            }),
        })
    }

    /// The end of the run of bytes from `start` that satisfy `keep`.
    fn scan(&self, start: usize, keep: impl Fn(u8) -> bool) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = start;
        while bytes.get(end).copied().is_some_and(&keep) {
            end += 1;
        }
        end
    }

    /// An invalid name in `${...}`; the name shown runs up to the next operator or `}`.
    fn bad_name(&self, offset: usize, name_start: usize) -> ExpandError {
        let end = self.scan(name_start, |b| {
            !matches!(b, b'}' | b':' | b'-' | b'+' | b'?' | b'$' | b'{')
        });
        let shown = &self.src[name_start..end];
        let message = if shown.is_empty() {
            "`${` is not followed by a variable name".to_owned()
        } else {
            format!("`{shown}` is not a valid variable name")
        };
        error(
            offset,
            message,
            format!(
                "variable names start with a letter or `_` and contain only letters, digits and `_`; {SYNTAX_HELP}"
            ),
        )
    }
}

/// Builds an [`ExpandError`].
fn error(offset: usize, message: String, help: String) -> ExpandError {
    ExpandError {
        message,
        offset,
        help,
    }
}

/// `${` (with `name` so far) never closed.
fn unterminated(offset: usize, name: &str) -> ExpandError {
    error(
        offset,
        format!("`${{{name}` is never closed with `}}`"),
        format!(
            "add the missing `}}` (braces inside a default word must be balanced); {SYNTAX_HELP}"
        ),
    )
}

/// `${name<op>...}` with an operator we do not implement.
fn unsupported(offset: usize, name: &str, op: &str) -> ExpandError {
    let what = if op.ends_with('=') {
        "assignment"
    } else {
        "pattern"
    };
    error(
        offset,
        format!("unsupported operator `{op}` in `${{{name}{op}…}}`: {what} operators are not supported in manifest fields"),
        "only `${NAME:-default}`, `${NAME:+alternative}` and `${NAME:?message}` (each also without the `:`) are supported; \
         compute the value outside the manifest and pass it in as a variable"
            .to_owned(),
    )
}

/// Evaluates parsed parts into `out`, looking variables up as they are reached.
fn evaluate(
    parts: &[Part<'_>],
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), ExpandError> {
    for part in parts {
        let var = match part {
            Part::Literal(text) => {
                out.push_str(text);
                continue;
            }
            Part::Var(var) => var,
        };
        let value = lookup(var.name);
        let Some(modifier) = &var.modifier else {
            out.push_str(value.as_deref().unwrap_or(""));
            continue;
        };
        let present = if modifier.colon {
            value.as_deref().is_some_and(|v| !v.is_empty())
        } else {
            value.is_some()
        };
        match (modifier.kind, present) {
            (Kind::Default | Kind::Required, true) => out.push_str(value.as_deref().unwrap_or("")),
            (Kind::Default, false) | (Kind::Alternative, true) => {
                evaluate(&modifier.word, lookup, out)?;
            }
            (Kind::Alternative, false) => {}
            (Kind::Required, false) => {
                let mut message = String::new();
                evaluate(&modifier.word, lookup, &mut message)?;
                let name = var.name;
                let (missing, help) = if modifier.colon {
                    (
                        "is unset or empty",
                        format!("set `{name}` to a non-empty value"),
                    )
                } else {
                    ("is unset", format!("set `{name}`"))
                };
                if message.is_empty() {
                    message = format!("{name} {missing}");
                }
                return Err(error(modifier.offset, message, help));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Expands with `A=a`, `EMPTY=""`, `B=b`; returns the result and the names read.
    fn run(input: &str) -> (Result<String, ExpandError>, Vec<String>) {
        let vars: HashMap<&str, &str> =
            [("A", "a"), ("EMPTY", ""), ("B", "b"), ("_x1", "x")].into();
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

        let e = err("x ${EMPTY:?EMPTY must be set}");
        assert_eq!(e.message, "EMPTY must be set");
        assert_eq!(e.offset, 2);
        assert!(e.help.contains("`EMPTY`"));

        let e = err("${UNSET:?}");
        assert_eq!(e.message, "UNSET is unset or empty");
        assert_eq!(e.offset, 0);

        let e = err("${UNSET?}");
        assert_eq!(e.message, "UNSET is unset");
        assert_eq!(e.to_string(), "UNSET is unset");

        let e = err("${UNSET?$A is required}");
        assert_eq!(e.message, "a is required");
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
        assert_eq!(ok(r"${UNSET:-\}}"), r"\}");
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
            ("${A/x/y}", "/"),
            ("${A#x}", "#"),
            ("${A%%x}", "%"),
            ("${A:1:2}", ":"),
            ("${A^^}", "^"),
        ] {
            let e = err(input);
            assert_eq!(e.offset, 0, "{input}");
            assert!(
                e.message.contains(&format!("`{op}`")),
                "{input}: {}",
                e.message
            );
            assert!(
                e.message
                    .contains("pattern operators are not supported in manifest fields"),
                "{}",
                e.message
            );
        }
        let e = err("abc${A:=x}");
        assert_eq!(e.offset, 3);
        assert!(
            e.message.contains("`:=`")
                && e.message.contains("assignment operators are not supported")
        );
        assert_eq!(
            err("${A/x/y}").message,
            "unsupported operator `/` in `${A/…}`: pattern operators are not supported in manifest fields"
        );
    }
}
