//! Dockerfile importer: reads a Dockerfile into an owned AST with `BuildKit`'s
//! parser semantics ([`parse()`]), expands shell words the way `BuildKit`
//! does ([`shell::ShellLex`]), and lowers the AST to the same IR as the TOML
//! front end ([`load`]), with `BuildKit`'s argument scoping. `ONBUILD`
//! triggers are stored and, when a base has them, lowered for the plan
//! through [`Triggers`], the [`crate::ir::trigger::TriggerSyntax`] the
//! caller hands it. [`check`] runs `BuildKit`'s build checks;
//! [`convert`] writes a Dockerfile as a manifest.
//!
//! Conformance with `BuildKit` is tested against its own test data
//! (`../shared/conformance/buildkit`, or `$IMGBUILD_CONFORMANCE_DIR`);
//! the tests print a skip message when that data is absent.

pub mod check;
mod convert;
mod lower;
mod mount;
mod onbuild;
pub mod parse;
pub mod shell;
mod triggers;
mod word;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostics, SourceFile};
use crate::ir::Project;

pub use convert::convert;
pub use parse::{
    Directives, Dockerfile, Heredoc, Instruction, InstructionArgs, SyntaxDirective, parse,
    parse_for_build,
};
pub use shell::{ShellError, ShellLex};
pub use triggers::Triggers;

/// An error reading a Dockerfile, with its position and advice on fixing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}, column {column}: {message} ({help})")]
pub struct DockerfileError {
    /// 1-based line where the offending instruction starts.
    pub line: usize,
    /// 1-based column (1 when only the line is known).
    pub column: usize,
    /// What is wrong, in `BuildKit`'s words where it has them.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl DockerfileError {
    /// Creates an error at `line`/`column`.
    pub fn new(line: usize, column: usize, message: String, help: &str) -> Self {
        Self {
            line,
            column,
            message,
            help: help.to_string(),
        }
    }
}

/// Why a Dockerfile could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read Dockerfile `{}`", path.display())]
    #[diagnostic(help("pass the Dockerfile with `-f FILE`"))]
    Read {
        /// The Dockerfile path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a Dockerfile imgbuild can build.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and lowers the Dockerfile at `path`.
pub fn load(path: &Path) -> Result<Project, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_project(&path.display().to_string(), &text)?)
}

/// Parses and lowers Dockerfile `text`, naming it `name` in errors.
pub fn parse_project(name: &str, text: &str) -> Result<Project, Diagnostics> {
    let (source, dockerfile) = parse_source(name, text).map_err(|e| foreign(name, text, e))?;
    lower::lower(&dockerfile, source).map_err(|e| foreign(name, text, e))
}

/// The `# syntax=` directive of `text` when it names a frontend other than
/// the Dockerfile one imgbuild implements (which builds the file anyway).
pub fn foreign_syntax(text: &str) -> Option<SyntaxDirective> {
    parse::syntax_directive(text).filter(|d| !d.is_dockerfile())
}

/// `errors` of a file that does not parse as a Dockerfile, led by one at
/// its `# syntax=` directive when that names another frontend: the file
/// is most likely written for that frontend.
fn foreign(name: &str, text: &str, mut errors: Diagnostics) -> Diagnostics {
    let Some(directive) = foreign_syntax(text) else {
        return errors;
    };
    let source = SourceFile::new(name, text);
    let error = source
        .error(
            directive.span,
            format!(
                "`# syntax={}` names a frontend imgbuild does not implement, and the file is not standard Dockerfile syntax",
                directive.frontend
            ),
        )
        .with_label("this frontend")
        .with_help(
            "imgbuild builds Dockerfiles with its own frontend, which reads the syntax of docker/dockerfile only (the errors below); build this file with that frontend (`docker buildx build`), or write it in standard Dockerfile syntax",
        );
    errors.errors.insert(0, error);
    errors
}

/// Parses Dockerfile `text` for building, naming it `name` in errors.
fn parse_source(name: &str, text: &str) -> Result<(Arc<SourceFile>, Dockerfile), Diagnostics> {
    let source = Arc::new(SourceFile::new(name, text));
    let dockerfile = parse_for_build(text).map_err(|e| {
        let offset = offset_of(text, e.line, e.column);
        Diagnostics::from(source.error(offset..offset, e.message).with_help(e.help))
    })?;
    Ok((source, dockerfile))
}

/// Runs the build checks on the Dockerfile at `path`.
pub fn check_file(
    path: &Path,
    options: &check::CheckOptions<'_>,
) -> Result<Vec<crate::lint::Finding>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(check_text(&path.display().to_string(), &text, options)?)
}

/// Runs the build checks on Dockerfile `text`, naming it `name`.
pub fn check_text(
    name: &str,
    text: &str,
    options: &check::CheckOptions<'_>,
) -> Result<Vec<crate::lint::Finding>, Diagnostics> {
    let source = SourceFile::new(name, text);
    let at = |e: DockerfileError| {
        let offset = offset_of(text, e.line, e.column);
        Diagnostics::from(source.error(offset..offset, e.message).with_help(e.help))
    };
    let dockerfile = parse(text).map_err(|e| foreign(name, text, at(e)))?;
    check::check(&dockerfile, &source, options).map_err(at)
}

/// The byte offset of 1-based `line` and `column` in `text`.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

/// Locates `BuildKit`'s conformance data for tests: `$IMGBUILD_CONFORMANCE_DIR`,
/// then `../shared/conformance/buildkit` next to the crate. Prints a skip
/// message and returns `None` when neither exists.
#[cfg(test)]
pub(crate) fn conformance_dir() -> Option<std::path::PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("IMGBUILD_CONFORMANCE_DIR") {
        candidates.push(std::path::PathBuf::from(dir));
    }
    candidates.push(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/buildkit"),
    );
    let found = candidates.into_iter().find(|p| p.is_dir());
    if found.is_none() {
        println!(
            "skipped: BuildKit conformance data not found (set IMGBUILD_CONFORMANCE_DIR or provide ../shared/conformance/buildkit)"
        );
    }
    found
}
