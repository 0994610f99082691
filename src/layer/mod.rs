//! OCI image layers: writing deterministic layer tarballs, reading a directory
//! tree (an overlayfs upperdir or a staged copy) into layer entries, and
//! extracting layers safely onto a root directory.
//!
//! Layer format follows the OCI image-spec `layer.md`: a tar stream (optionally
//! gzip or zstd compressed) whose deletions are whiteout files `.wh.NAME` and
//! whose opaque directories carry a `.wh..wh..opq` marker.

#![forbid(unsafe_code)]

mod compress;
mod entry;
mod extract;
mod scan;
mod write;
mod xattr;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use bstr::BString;

pub use compress::compress_stream;
pub(crate) use compress::decompressing_reader;
pub use entry::{Entry, EntryKind, FileSource};
pub use extract::{ExtractOptions, Extracted, MaxSize, extract_layer};
pub use scan::{entries_from_dir, normalize_as_extracted};
pub use write::{WriteOptions, WrittenLayer, write_layer};

/// Prefix of a whiteout file name (`.wh.NAME` deletes `NAME`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the marker file that makes its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// A gzip-compressed tar stream.
    #[default]
    Gzip,
    /// A zstd-compressed tar stream.
    Zstd,
}

/// Compression plus level; default gzip level 6 (flate2 default) and zstd level 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionOptions {
    /// Which compression to apply.
    pub compression: Compression,
    /// Compression level: 0..=9 for gzip, 0..=22 for zstd (0 = zstd's default);
    /// `None` picks the default. Ignored for [`Compression::None`].
    pub level: Option<u32>,
}

/// Errors of layer writing, scanning and extraction. Every message names the
/// entry or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A filesystem operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The host path the operation was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A layer entry would write outside the extraction root, or is otherwise dangerous.
    #[error("refusing unsafe layer entry `{path}`: {reason}")]
    Unsafe {
        /// The entry path as written in the layer.
        path: BString,
        /// Why it is refused.
        reason: String,
    },
    /// An entry (or file of a scanned tree) that cannot be represented or applied.
    #[error("unsupported layer entry `{path}`: {what}")]
    Unsupported {
        /// The entry path (layer-relative).
        path: BString,
        /// What is not supported.
        what: String,
    },
    /// An entry given to [`write_layer`] that is malformed or inconsistent.
    #[error("invalid layer entry `{path}`: {reason}")]
    Invalid {
        /// The entry path.
        path: BString,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid options (e.g. a compression level out of range).
    #[error("invalid layer options: {0}")]
    Options(String),
    /// The tar stream being read is malformed (or its decompression failed).
    #[error("malformed layer tar stream: {0}")]
    Tar(#[source] io::Error),
    /// Writing the layer to its output failed.
    #[error("writing layer output: {0}")]
    Write(#[source] io::Error),
    /// The uncompressed layer is larger than its bound (a gzip bomb, or a
    /// layer larger than the configured maximum): extraction stopped there.
    #[error(
        "the layer expands to more than {} uncompressed, {}",
        human_size(*limit),
        if *declared { "the size it declares" } else { "the most one layer may have" }
    )]
    TooLarge {
        /// The bound in bytes.
        limit: u64,
        /// Whether the layer declared the bound itself (else it is the
        /// configured maximum).
        declared: bool,
    },
    /// The uncompressed layer is not the `diff_id` its image declares.
    #[error("the layer's content is {actual}, not the diff_id {expected} its image declares")]
    DiffIdMismatch {
        /// The `diff_id` of the image config.
        expected: String,
        /// The digest of the uncompressed stream.
        actual: String,
    },
    /// The filesystem being extracted to has too little free space left.
    #[error(
        "not enough free space on the filesystem of {}: the layer needs at least {} and {} was free, of which {} stays free",
        path.display(),
        human_size(*needed),
        human_size(*available),
        human_size(*reserve)
    )]
    NoSpace {
        /// The directory being extracted to.
        path: PathBuf,
        /// Bytes the extraction needs at least (when it ran out midway:
        /// what it had written, while it needed more).
        needed: u64,
        /// Bytes that were free when extraction started.
        available: u64,
        /// Bytes that extraction leaves free for everything else.
        reserve: u64,
    },
}

use crate::util::size::human_size;

impl LayerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LayerError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(path: impl AsRef<[u8]>, reason: impl Into<String>) -> Self {
        LayerError::Unsafe {
            path: path.as_ref().into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: impl AsRef<[u8]>, what: impl Into<String>) -> Self {
        LayerError::Unsupported {
            path: path.as_ref().into(),
            what: what.into(),
        }
    }

    pub(crate) fn invalid(path: impl AsRef<[u8]>, reason: impl Into<String>) -> Self {
        LayerError::Invalid {
            path: path.as_ref().into(),
            reason: reason.into(),
        }
    }
}

/// Whether `name` is one of the overlayfs xattr namespaces that never go into
/// (or come out of) a layer.
pub(crate) fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}
