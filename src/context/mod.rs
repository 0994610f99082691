//! The build context: which files of the context directory are sent to the
//! build (`.dockerignore` handling), their metadata, and their content hashes.
//!
//! * [`ignore`]: `.dockerignore` parsing and Docker's pattern matcher.
//! * [`walk`](mod@walk): lists the context, applying the patterns.
//! * [`hash`]: blake3 content hashes with a persistent stat cache.
//!
//! Unix only (uses inode, device, uid and gid).

// The crate's `[lints]` allow these; repeat them so a command-line
// `-W clippy::pedantic` does not re-enable them.
#![allow(
    clippy::module_name_repetitions,
    clippy::missing_errors_doc,
    clippy::must_use_candidate,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

pub mod hash;
pub mod hidden;
pub mod ignore;
pub mod walk;

use std::path::{Path, PathBuf};

pub use hash::{ContentHash, FileStat, HashReport, LazyHashes, StatCache, hash_entries};
pub use ignore::{
    IgnoreFile, IgnoreFileError, PatternError, PatternMatcher, find_ignore_file, keep_build_files,
    parse_dockerignore, read_ignore_file,
};
pub use walk::{ContextEntry, EntryKind, walk};

/// Errors from reading a build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Reading or inspecting a file or directory failed.
    #[error(
        "cannot read {}: {source}; make it readable or exclude it in .dockerignore",
        path.display()
    )]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The context root is not a directory.
    #[error("build context {} is not a directory; pass a directory as the context", path.display())]
    NotADirectory {
        /// The context root given.
        path: PathBuf,
    },
    /// A `.dockerignore` pattern is invalid.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

impl ContextError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContextError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads and compiles the ignore file chosen by [`find_ignore_file`], only
/// from inside its root ([`read_ignore_file`]); an empty matcher when there is
/// none.
pub fn load_ignore(
    context: &Path,
    dockerfile: Option<&Path>,
) -> Result<PatternMatcher, IgnoreFileError> {
    let Some(file) = find_ignore_file(context, dockerfile) else {
        return Ok(PatternMatcher::default());
    };
    let text = read_ignore_file(&file)?;
    PatternMatcher::new(&parse_dockerignore(&text)).map_err(|source| IgnoreFileError::Pattern {
        path: file.path(),
        source,
    })
}
