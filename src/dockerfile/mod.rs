//! Dockerfile importer: reads a Dockerfile into an owned AST with `BuildKit`'s
//! parser semantics ([`parse()`]), and expands shell words the way `BuildKit`
//! does ([`shell::ShellLex`]).
//!
//! Conformance with `BuildKit` is tested against its own test data
//! (`../shared/conformance/buildkit`, or `$IMGBUILD_CONFORMANCE_DIR`);
//! the tests print a skip message when that data is absent.

pub mod parse;
pub mod shell;

pub use parse::{
    Directives, Dockerfile, Heredoc, Instruction, InstructionArgs, parse, parse_for_build,
};
pub use shell::{ShellError, ShellLex};

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
