//! The `${VAR}` template grammar of the IR: manifest fields and Dockerfile
//! words (which the Dockerfile front end turns into templates) are expanded
//! with it while planning.
//!
//! The input is first parsed completely (so a malformed expression is reported even
//! inside a default that is never used) and then evaluated, calling `lookup` only for
//! the references that are actually reached. It agrees with the Dockerfile's shell
//! words (the front end's `dockerfile::shell`) on everything a Dockerfile word can become;
//! both match patterns with [`crate::ir::pattern`].

use crate::ir::pattern;

/// How deeply references may nest inside words (`${A:-${B:-...}}`).
pub const MAX_DEPTH: usize = 64;

/// The most bytes one expansion may give. Values can grow only through
/// other values (`ARG B=$A$A`, `ARG C=$B$B`, ...), which doubles at every
/// step; this stops such a chain long before it exhausts memory.
pub const MAX_EXPANDED: usize = 4 << 20;

/// Expands the variable references in `input`:
///
/// - `$NAME`, `${NAME}`;
/// - `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`,
///   `${NAME:?message}` and `${NAME?message}`;
/// - `${NAME#pattern}`, `${NAME##pattern}`, `${NAME%pattern}`,
///   `${NAME%%pattern}`, `${NAME/pattern/replacement}` and
///   `${NAME//pattern/replacement}` ([`crate::ir::pattern`]).
///
/// `lookup` returns a variable's value or None when it is unset; it is called once per
/// reference reached (callers use it to record which variables were read). Unset
/// variables expand to the empty string (as in Dockerfiles). Words may themselves contain
/// expansions, expanded only when used.
///
/// `\$` is a literal `$` and `\\` a literal `\`; in a word, `\{` and `\}` are literal braces
/// (other braces in a `-`, `+` or `?` word nest, a pattern's do not), and in a pattern or
/// replacement any other backslash is kept for the pattern to read. Any other backslash is
/// kept as is. A `$` not followed by a name or `{` is kept literally ("cost $5", a trailing
/// "$").
///
/// # Errors
/// Returns an [`ExpandError`] for a malformed expression anywhere in `input`, for a
/// `${NAME:?word}` / `${NAME?word}` whose variable is missing, and for an invalid pattern.
pub fn expand(
    input: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut parser = Parser {
        src: input,
        pos: 0,
        depth: 0,
    };
    let parts = parser.sequence(Context::Top)?;
    let mut out = String::with_capacity(input.len());
    evaluate(&parts, lookup, &mut out)?;
    Ok(out)
}

/// The template that expands to `text` itself: its `\\` and `$` escaped.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
const SYNTAX_HELP: &str = "write variables as `$NAME` or `${NAME}`, optionally with `:-default`, `:+alternative`, `:?message`, `#pattern`, `%pattern` or `/pattern/replacement`; write a literal `$` as `\\$`";

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
    kind: Kind<'a>,
    /// Whether the operator had a `:`, so that an empty value counts as missing.
    colon: bool,
    /// The parsed word (the pattern, for the pattern operators), evaluated only when used.
    word: Vec<Part<'a>>,
    /// Offset of the `$` starting the expression, for errors.
    offset: usize,
}

/// The supported operators.
#[derive(Debug)]
enum Kind<'a> {
    /// `-`: use the word when the variable is missing.
    Default,
    /// `+`: use the word when the variable is present.
    Alternative,
    /// `?`: fail with the word when the variable is missing.
    Required,
    /// `#` (`##` when `longest`): remove a match of the pattern at the start.
    TrimPrefix { longest: bool },
    /// `%` (`%%` when `longest`): remove a match of the pattern at the end.
    TrimSuffix { longest: bool },
    /// `/` (`//` when `all`): replace the first (every) match of the pattern.
    Replace {
        all: bool,
        replacement: Vec<Part<'a>>,
    },
}

/// What a sequence of parts is, which decides where it ends and what its
/// escapes mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context<'a> {
    /// The whole input.
    Top,
    /// The word of `${name-word}` (etc.), whose `$` is at `offset`.
    Word { offset: usize, name: &'a str },
    /// A pattern or replacement of `${name#...}` (etc.); `slash` when it
    /// ends at an unescaped `/` (the pattern of `${name/pattern/...}`).
    Pattern {
        offset: usize,
        name: &'a str,
        slash: bool,
    },
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
    /// How many words enclose the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    /// Parses text up to the end of input (`Context::Top`) or up to the `}` (the
    /// `/` of a pattern before a replacement) ending the word of `context`.
    /// Braces inside a `Context::Word` nest.
    fn sequence(&mut self, context: Context<'a>) -> Result<Vec<Part<'a>>, ExpandError> {
        let bytes = self.src.as_bytes();
        let mut parts = Vec::new();
        let mut depth = 0usize;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return match context {
                    Context::Top => Ok(parts),
                    Context::Pattern {
                        offset,
                        name,
                        slash: true,
                    } => Err(error(
                        offset,
                        format!("`${{{name}/...` has no `/` after its pattern"),
                        format!("write `${{{name}/pattern/replacement}}`; {SYNTAX_HELP}"),
                    )),
                    Context::Word { offset, name } | Context::Pattern { offset, name, .. } => {
                        Err(unterminated(offset, name))
                    }
                };
            };
            let next = bytes.get(self.pos + 1).copied();
            match (b, context) {
                (b'\\', _) if matches!(next, Some(b'$')) => {
                    push_literal(&mut parts, "$");
                    self.pos += 2;
                }
                (b'\\', Context::Pattern { .. }) if next.is_some() => {
                    // Kept for the pattern to read (`\*`, `\}`, `\/`, ...).
                    let len = self.src[self.pos + 1..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    push_literal(&mut parts, &self.src[self.pos..self.pos + 1 + len]);
                    self.pos += 1 + len;
                }
                (b'\\', _) if matches!(next, Some(b'\\')) => {
                    push_literal(&mut parts, "\\");
                    self.pos += 2;
                }
                (b'\\', Context::Word { .. }) if matches!(next, Some(b'{' | b'}')) => {
                    push_literal(&mut parts, if next == Some(b'{') { "{" } else { "}" });
                    self.pos += 2;
                }
                (b'$', _) => match self.dollar()? {
                    Some(var) => parts.push(Part::Var(var)),
                    None => push_literal(&mut parts, "$"),
                },
                (b'{', Context::Word { .. }) => {
                    depth += 1;
                    push_literal(&mut parts, "{");
                    self.pos += 1;
                }
                (b'}', Context::Word { .. }) => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(parts);
                    }
                    depth -= 1;
                    push_literal(&mut parts, "}");
                }
                (b'}', Context::Pattern { slash: false, .. })
                | (b'/', Context::Pattern { slash: true, .. }) => {
                    self.pos += 1;
                    return Ok(parts);
                }
                _ => {
                    // A run of ordinary text; the first byte is always taken.
                    let start = self.pos;
                    self.pos += 1;
                    while let Some(&c) = bytes.get(self.pos) {
                        if matches!(c, b'\\' | b'$' | b'{' | b'}' | b'/') {
                            break;
                        }
                        self.pos += 1;
                    }
                    push_literal(&mut parts, &self.src[start..self.pos]);
                }
            }
        }
    }

    /// Parses a word of the expression whose `$` is at `offset`.
    fn word(&mut self, context: Context<'a>, offset: usize) -> Result<Vec<Part<'a>>, ExpandError> {
        if self.depth >= MAX_DEPTH {
            return Err(error(
                offset,
                format!("variable references nested more than {MAX_DEPTH} deep"),
                "nest fewer `${...}` inside one another; set an argument to the inner value instead".to_owned(),
            ));
        }
        self.depth += 1;
        let word = self.sequence(context);
        self.depth -= 1;
        word
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
        let doubled = |op: u8| bytes.get(name_end + 1) == Some(&op);

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
            (Some(op @ (b'#' | b'%')), true) => {
                let longest = doubled(op);
                let start = name_end + 1 + usize::from(longest);
                let kind = if op == b'#' {
                    Kind::TrimPrefix { longest }
                } else {
                    Kind::TrimSuffix { longest }
                };
                (kind, false, start)
            }
            (Some(b'/'), true) => {
                let all = doubled(b'/');
                self.pos = name_end + 1 + usize::from(all);
                let context = Context::Pattern {
                    offset,
                    name,
                    slash: true,
                };
                let word = self.word(context, offset)?;
                let context = Context::Pattern {
                    offset,
                    name,
                    slash: false,
                };
                let replacement = self.word(context, offset)?;
                return Ok(Var {
                    name,
                    modifier: Some(Modifier {
                        kind: Kind::Replace { all, replacement },
                        colon: false,
                        word,
                        offset,
                    }),
                });
            }
            (Some(b':'), true) => match bytes.get(name_end + 1) {
                Some(b'-') => (Kind::Default, true, name_end + 2),
                Some(b'+') => (Kind::Alternative, true, name_end + 2),
                Some(b'?') => (Kind::Required, true, name_end + 2),
                Some(&op @ (b'=' | b'#' | b'%' | b'/')) => {
                    return Err(unsupported(offset, name, &format!(":{}", char::from(op))));
                }
                _ => return Err(unsupported(offset, name, ":")),
            },
            (Some(op @ (b'^' | b',' | b'=' | b'@')), true) => {
                return Err(unsupported(offset, name, &char::from(op).to_string()));
            }
            (Some(_), _) => return Err(self.bad_name(offset, name_start)),
        };

        self.pos = word_start;
        let context = match kind {
            Kind::TrimPrefix { .. } | Kind::TrimSuffix { .. } => Context::Pattern {
                offset,
                name,
                slash: false,
            },
            _ => Context::Word { offset, name },
        };
        let word = self.word(context, offset)?;
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
            !matches!(
                b,
                b'}' | b':' | b'-' | b'+' | b'?' | b'$' | b'{' | b'#' | b'%' | b'/'
            )
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
            "add the missing `}}` (braces inside a default word must be balanced, or written `\\{{` and `\\}}`); {SYNTAX_HELP}"
        ),
    )
}

/// `${name<op>...}` with an operator we do not implement.
fn unsupported(offset: usize, name: &str, op: &str) -> ExpandError {
    let what = if op.ends_with('=') {
        "assignment operators are"
    } else if op == ":" {
        "substrings are"
    } else if op.len() == 2 {
        "pattern operators do not take a `:` and are"
    } else {
        "case and quoting operators are"
    };
    error(
        offset,
        format!("unsupported operator `{op}` in `${{{name}{op}…}}`: {what} not supported"),
        "the operators are `-`, `+` and `?` (each also with a `:`), `#`, `##`, `%`, `%%`, `/` and `//`; \
         compute other values outside and pass them in as a variable"
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
        too_long(out)?;
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
        let text = |parts: &[Part<'_>], lookup: &mut dyn FnMut(&str) -> Option<String>| {
            let mut text = String::new();
            evaluate(parts, lookup, &mut text).map(|()| text)
        };
        let pattern_error = |e: pattern::PatternError| {
            error(
                modifier.offset,
                e.to_string(),
                "in a pattern `*` matches any characters and `?` one; write `\\*`, `\\?` and `\\\\` for the characters themselves".to_owned(),
            )
        };
        let value_text = value.as_deref().unwrap_or("");
        match (&modifier.kind, present) {
            (Kind::Default | Kind::Required, true) => out.push_str(value_text),
            (Kind::Default, false) | (Kind::Alternative, true) => {
                evaluate(&modifier.word, lookup, out)?;
            }
            (Kind::Alternative, false) => {}
            (Kind::Required, false) => {
                let message = text(&modifier.word, lookup)?;
                let name = var.name;
                let (missing, help) = if value.is_some() {
                    ("empty", format!("set `{name}` to a non-empty value"))
                } else {
                    ("unset", format!("set `{name}`"))
                };
                let message = if message.is_empty() {
                    format!("{name}: is not allowed to be {missing}")
                } else {
                    format!("{name}: {message}")
                };
                return Err(error(modifier.offset, message, help));
            }
            (Kind::TrimPrefix { longest }, _) => {
                let pattern = text(&modifier.word, lookup)?;
                let trimmed = pattern::trim_prefix(&pattern, value_text, *longest);
                out.push_str(&trimmed.map_err(pattern_error)?);
            }
            (Kind::TrimSuffix { longest }, _) => {
                let pattern = text(&modifier.word, lookup)?;
                let trimmed = pattern::trim_suffix(&pattern, value_text, *longest);
                out.push_str(&trimmed.map_err(pattern_error)?);
            }
            (Kind::Replace { all, replacement }, _) => {
                let pattern = text(&modifier.word, lookup)?;
                let replacement = text(replacement, lookup)?;
                let replaced = pattern::replace(&pattern, value_text, &replacement, *all);
                out.push_str(&replaced.map_err(pattern_error)?);
            }
        }
    }
    too_long(out)
}

/// Fails when `out` is past [`MAX_EXPANDED`].
fn too_long(out: &str) -> Result<(), ExpandError> {
    if out.len() <= MAX_EXPANDED {
        return Ok(());
    }
    Err(error(
        0,
        format!("expands to more than {} MiB", MAX_EXPANDED >> 20),
        "a value grows through others (`ARG B=$A$A`); make large values in a `RUN` step".to_owned(),
    ))
}

#[cfg(test)]
mod tests;
