//! Errors that point into a source file (a manifest or a Dockerfile).
//!
//! Every front end reports bad input as [`Diagnostic`]s: a message, the span
//! it is about, and what to do. The CLI renders them with miette, which shows
//! `file:line:column` and the source line.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

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
        let location = self.line_column(span.start);
        let span = clamp(span, self.text.len());
        let (source_code, span) = Snippet::around(self, span, location);
        Diagnostic {
            message: message.into(),
            source_code,
            location,
            span,
            label: "here".to_owned(),
            help: None,
        }
    }
}

fn clamp(span: Range<usize>, len: usize) -> Range<usize> {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    start..end
}

/// The longest line a diagnostic shows whole; a longer one is cut to a
/// window around the span, so any input renders (a one-line file of
/// megabytes too).
const LONGEST_SHOWN_LINE: usize = 240;

/// The part of a source file a diagnostic shows: the whole file, or a
/// window of one long line, with the line and column it starts at.
#[derive(Debug, Clone)]
struct Snippet {
    name: String,
    text: Arc<str>,
    /// 0-based line of the file where `text` starts.
    first_line: usize,
    /// 0-based byte column of the file where `text` starts, on `first_line`.
    first_column: usize,
}

impl Snippet {
    /// What to show for `span` (at 1-based `location`) of `file`, and the
    /// span in it.
    fn around(
        file: &SourceFile,
        span: Range<usize>,
        location: (usize, usize),
    ) -> (Self, SourceSpan) {
        let text = &file.text;
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[span.start..]
            .find('\n')
            .map_or(text.len(), |i| span.start + i);
        if line_end - line_start <= LONGEST_SHOWN_LINE {
            let whole = Self {
                name: file.name.clone(),
                text: Arc::clone(text),
                first_line: 0,
                first_column: 0,
            };
            return (whole, (span.start, span.len()).into());
        }
        let floor = |mut at: usize| {
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let start = floor(
            span.start
                .saturating_sub(LONGEST_SHOWN_LINE / 3)
                .max(line_start),
        );
        let end = floor((start + LONGEST_SHOWN_LINE).min(line_end));
        let shown_end = span.end.min(end).max(span.start);
        let window = Self {
            name: file.name.clone(),
            text: text[start..end].into(),
            first_line: location.0 - 1,
            // In bytes, as miette counts columns for a whole file too.
            first_column: start - line_start,
        };
        (window, (span.start - start, shown_end - span.start).into())
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.text
                .as_ref()
                .read_span(span, context_lines_before, context_lines_after)?;
        let column = if inner.line() == 0 {
            inner.column() + self.first_column
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}

/// One error in a source file: what is wrong, where, and what to do.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Diagnostic {
    /// What is wrong, in one sentence.
    pub message: String,
    #[source_code]
    source_code: Snippet,
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
            self.source_code.name, self.location.0, self.location.1
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
    use std::fmt::Write as _;

    #[test]
    fn line_column_counts_from_one() {
        let file = SourceFile::new("f.toml", "ab\ncdé\nx");
        assert_eq!(file.line_column(0), (1, 1));
        assert_eq!(file.line_column(3), (2, 1));
        assert_eq!(file.line_column(8), (3, 1));
        assert_eq!(file.line_column(100), (3, 2));
    }

    fn render(diagnostic: &Diagnostic) -> String {
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .render_report(&mut out, diagnostic)
            .unwrap();
        out
    }

    #[test]
    fn a_span_in_a_very_long_line_renders_a_window_of_it() {
        let mut text = "first line\n".to_owned();
        for i in 0..5000 {
            write!(text, "{{ file = \"é{i}\" }}, ").unwrap();
        }
        let at = text.find("é4000").unwrap();
        text.push_str("\nlast");
        let file = SourceFile::new("long.toml", text.as_str());
        let diagnostic = file.error(at..at + 6, "bad step");
        let shown = render(&diagnostic);
        // miette's header counts bytes, location() characters.
        let bytes = at - 11 + 1;
        assert!(shown.contains(&format!("[long.toml:2:{bytes}]")), "{shown}");
        assert!(shown.contains("é4000"), "{shown}");
        assert!(shown.len() < 2000, "{shown}");
        let chars = text[11..at].chars().count() + 1;
        assert_eq!(diagnostic.location(), format!("long.toml:2:{chars}"));
    }

    #[test]
    fn spans_at_the_ends_of_long_lines_and_tabs_and_crlf_render() {
        let text = format!("{}\r\n\tb\r\n", "x".repeat(10_000));
        let file = SourceFile::new("f", text.as_str());
        for span in [
            0..1,
            9_999..10_000,
            10_000..10_001,
            10_002..10_004,
            0..text.len(),
        ] {
            let shown = render(&file.error(span.clone(), "bad"));
            assert!(shown.contains("bad"), "{span:?}: {shown}");
        }
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["tags", "stage", "platforms"];
        assert_eq!(closest("tag", keys), Some("tags"));
        assert_eq!(closest("platfroms", keys), Some("platforms"));
        assert_eq!(closest("zzz", keys), None);
    }
}
