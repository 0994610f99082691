//! The in-memory description of layer entries.

use std::path::PathBuf;
use std::sync::Arc;

use bstr::{BString, ByteSlice};

/// One entry of a layer, in layer terms (path relative to the image root, `/`-separated, no leading `/`, never `..`).
///
/// Paths and link targets are bytes, as file names and tar headers are: a
/// name that is not UTF-8 is kept exactly, never replaced lossily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Layer path, e.g. `usr/bin/env`.
    pub path: BString,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777` mask); no file-type bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time in seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes, name and raw value.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The kind of a layer [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes read from `source`.
    File {
        /// Where the contents come from.
        source: FileSource,
        /// The exact size of the contents; writing fails if the source differs.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link (target stored verbatim).
    Symlink {
        /// The link target.
        target: BString,
    },
    /// A hard link to another entry of the same layer.
    Hardlink {
        /// Layer path of the first link (must sort before this entry).
        target: BString,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A deletion of `path` from lower layers; written as `.wh.NAME` in the parent dir.
    Whiteout,
    /// A directory hiding everything lower layers put in it; written as the
    /// dir entry plus `.wh..wh..opq` inside it.
    OpaqueDir,
}

/// Where the contents of a regular file come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file on the host, read when the layer is written.
    Path(PathBuf),
    /// In-memory contents.
    Bytes(Arc<[u8]>),
}

/// Checks that `path` is a canonical layer path: relative, `/`-separated, no
/// empty, `.` or `..` components, no NUL. Returns the reason when it is not.
pub(crate) fn check_layer_path(path: &[u8]) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with(b"/") {
        return Err("absolute path");
    }
    if path.contains(&0) {
        return Err("path contains a NUL byte");
    }
    for component in path.split_str("/") {
        match component {
            b"" => return Err("empty path component (`//` or trailing `/`)"),
            b"." => return Err("`.` path component"),
            b".." => return Err("`..` path component"),
            _ => {}
        }
    }
    Ok(())
}

/// Splits a layer path into (parent, base name); parent is empty at the root.
pub(crate) fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.rfind_byte(b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}
