//! The store's error type.

use std::io;
use std::path::PathBuf;

use super::Digest;

/// What `imgbuild` tells the user to run when the store is damaged.
pub(crate) const REPAIR_HINT: &str = "run `imgbuild store verify --repair`";

/// An error from the content store. Messages name the path involved and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create" or "rename into place".
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Content does not hash to the digest it was expected to have.
    #[error(
        "content digest mismatch: expected {expected}, got {actual}; the source is damaged or not the content it claims to be"
    )]
    DigestMismatch {
        /// The digest the caller asked for.
        expected: Digest,
        /// The digest of the bytes actually received.
        actual: Digest,
    },
    /// A string is not a `sha256:<64 lowercase hex>` digest.
    #[error("invalid digest {0:?}: expected \"sha256:\" followed by 64 lowercase hex digits")]
    InvalidDigest(String),
    /// A blob the caller asked for is not in the store.
    #[error("blob {digest} is not in the store (expected at {})", path.display())]
    MissingBlob {
        /// The digest asked for.
        digest: Digest,
        /// Where it would be.
        path: PathBuf,
    },
    /// Something in the store is damaged.
    #[error("the store is damaged at {}: {why}; {REPAIR_HINT}", path.display())]
    Corrupt {
        /// The damaged file or directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// `index.json` or `oci-layout` cannot be read as what it should be.
    #[error("{} is not a valid OCI layout file: {why}; fix it or delete it (deleting index.json forgets all tags)", path.display())]
    BadLayout {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A tag is not a valid OCI `org.opencontainers.image.ref.name`.
    #[error(
        "invalid tag {0:?}: use letters, digits and `-._:@+/`, starting and ending with a letter or digit"
    )]
    InvalidTag(String),
    /// A descriptor given to `set_tag` does not match the blob it points to.
    #[error("cannot tag {tag:?}: {why}")]
    InvalidDescriptor {
        /// The tag being set.
        tag: String,
        /// What is wrong with the descriptor.
        why: String,
    },
    /// `verify --repair` needs the store to itself, but another process holds its lock.
    #[error("the store is in use (another process holds {}); retry when running builds have finished", path.display())]
    Busy {
        /// The store's lock file.
        path: PathBuf,
    },
    /// A metadata file name is not a plain file name.
    #[error("invalid metadata name {0:?}: use letters, digits and `-._`, not starting with `.`")]
    InvalidMetaName(String),
}

impl StoreError {
    /// Builds an [`StoreError::Io`] from an operation, a path and an error.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Adds path context to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`StoreError::Io`] naming `op` and `path`.
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}
