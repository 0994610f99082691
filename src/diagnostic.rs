//! Errors that point into a source file (a manifest or a Dockerfile).
//!
//! Every front end reports bad input as [`Diagnostic`]s: a message, the span
//! it is about, and what to do. The CLI renders them with miette, which shows
//! `file:line:column` and the source line.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A source file that diagnostics point into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user gave it, used in messages.
    pub name: String,
    /// The whole text of the file.
    pub text: Arc<str>,
}

impl SourceFile {
    /// Wraps `text` read from `name`.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// Starts a diagnostic about `span` in this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            source_code: NamedSource::new(self.name.clone(), Arc::clone(&self.text)),
            location: self.line_column(span.start),
            span: clamp(span, self.text.len()),
            label: "here".to_owned(),
            help: None,
        }
    }
}

fn clamp(span: Range<usize>, len: usize) -> SourceSpan {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    (start, end - start).into()
}

/// One error in a source file: what is wrong, where, and what to do.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Diagnostic {
    /// What is wrong, in one sentence.
    pub message: String,
    #[source_code]
    source_code: NamedSource<Arc<str>>,
    location: (usize, usize),
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    /// What to do about it.
    #[help]
    pub help: Option<String>,
}

impl Diagnostic {
    /// Adds the advice shown under the snippet.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Replaces the short text shown under the highlighted span.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The file name, 1-based line and column, as in `imgbuild.toml:3:7`.
    pub fn location(&self) -> String {
        format!(
            "{}:{}:{}",
            self.source_code.name(),
            self.location.0,
            self.location.1
        )
    }
}

/// All the errors found in one source file; never empty.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub struct Diagnostics {
    /// The errors, in the order of the file.
    #[related]
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "{}: {}", one.location(), one.message),
            many => write!(f, "{} errors", many.len()),
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(error: Diagnostic) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

impl Diagnostics {
    /// `Ok(())` when `errors` is empty, else the errors sorted by position.
    pub fn check(mut errors: Vec<Diagnostic>) -> Result<(), Self> {
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by_key(|e| (e.location, e.span.offset()));
        Err(Self { errors })
    }
}

/// The closest of `candidates` to `word`, if any is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(word.len().min(c.len()) / 3) && *d < word.len().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A help sentence suggesting the closest candidate, or listing them all.
pub fn suggest(what: &str, word: &str, candidates: &[&str]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for c in candidates {
        if !unique.contains(c) {
            unique.push(c);
        }
    }
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => format!("no {what} is defined"),
        None if candidates.len() > 12 => format!("no {what} has a similar name"),
        None => format!(
            "expected one of: {}",
            unique
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let file = SourceFile::new("f.toml", "ab\ncdé\nx");
        assert_eq!(file.line_column(0), (1, 1));
        assert_eq!(file.line_column(3), (2, 1));
        assert_eq!(file.line_column(8), (3, 1));
        assert_eq!(file.line_column(100), (3, 2));
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["tags", "stage", "platforms"];
        assert_eq!(closest("tag", keys), Some("tags"));
        assert_eq!(closest("platfroms", keys), Some("platforms"));
        assert_eq!(closest("zzz", keys), None);
    }
}
