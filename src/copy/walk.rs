//! Walking copied directories (with the step's excludes and the context's
//! ignore file) and the paths a step reads, for its cache key.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bstr::BString;

use super::source::expand_source;
use super::{CopyError, CopySpec, Origin, bytes_of, entry_for, host, io, join};
use crate::context::PatternMatcher;
use crate::layer::Entry;

/// Entries under the directory `path` of `origin`, placed under `into`.
pub(super) fn walk_dir(
    origin: &Origin<'_>,
    path: &[u8],
    into: &[u8],
    exclude: &PatternMatcher,
) -> Result<Vec<Entry>, CopyError> {
    let mut entries = Vec::new();
    walk_under(origin, path, exclude, |rel, full, meta| {
        entries.push(entry_for(full, &join(into, rel), meta, false)?);
        Ok(())
    })?;
    Ok(entries)
}

/// Calls `visit` with the path relative to `path`, the full path and the
/// (not followed) metadata of everything under the directory `path` of
/// `origin` that neither `exclude` nor the context's ignore file leaves out,
/// parents before children, names sorted.
pub(super) fn walk_under(
    origin: &Origin<'_>,
    path: &[u8],
    exclude: &PatternMatcher,
    mut visit: impl FnMut(&[u8], &Path, &fs::Metadata) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let root = origin.root().join(host(path));
    let mut walker = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walker.next() {
        let item = item.map_err(|e| CopyError::Io {
            path: e.path().unwrap_or(&root).to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed")),
        })?;
        let rel = item
            .path()
            .strip_prefix(&root)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .as_bytes();
        let origin_rel = join(path, rel);
        let is_dir = item.file_type().is_dir();
        if (!exclude.is_empty() && exclude.excludes(rel)) || origin.ignored(&origin_rel) {
            if is_dir && (exclude.excludes(rel) || origin.walk_ignored_dir(&origin_rel)) {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = fs::symlink_metadata(item.path()).map_err(io(item.path()))?;
        visit(rel, item.path(), &meta)?;
    }
    Ok(())
}

/// A file, directory or symlink that a `copy`, `add` or bind mount reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its path relative to the origin's root, symlinks in named sources
    /// resolved; bytes, as the file name is.
    pub path: BString,
    /// Its path on disk.
    pub full: PathBuf,
    /// What it is.
    pub kind: SelectedKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

/// The kind of a [`Selected`] path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectedKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link with its target (bytes, as stored).
    Symlink(BString),
}

/// Every path of `origin` that the sources of `spec` name, as [`copy_entries`]
/// reads them (wildcards, symlinks in named sources, directories walked with
/// the step's excludes and the context's ignore file), sorted by path. URLs
/// are left out: a download is pinned by its checksum. The cache key of a
/// step covers exactly these paths.
pub fn selected_paths(
    spec: &CopySpec<'_>,
    origin: &Origin<'_>,
) -> Result<Vec<Selected>, CopyError> {
    let exclude =
        PatternMatcher::new(spec.exclude).map_err(|e| CopyError::Exclude(e.to_string()))?;
    let mut out = Vec::new();
    let mut push = |path: BString, full: PathBuf, meta: &fs::Metadata| -> Result<(), CopyError> {
        let kind = if meta.file_type().is_symlink() {
            SelectedKind::Symlink(bytes_of(fs::read_link(&full).map_err(io(&full))?))
        } else if meta.is_dir() {
            SelectedKind::Dir
        } else {
            SelectedKind::File
        };
        out.push(Selected {
            path,
            full,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
        Ok(())
    };
    for source in spec.sources {
        if spec.add && (source.starts_with("http://") || source.starts_with("https://")) {
            continue;
        }
        for (path, _) in expand_source(origin, source)? {
            let full = origin.root().join(host(&path));
            // A named source is followed when it is a symlink, as copy does.
            let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
            let is_dir = meta.is_dir();
            push(path.clone(), full.clone(), &meta)?;
            if !is_dir {
                continue;
            }
            walk_under(origin, &path, &exclude, |rel, item, meta| {
                push(join(&path, rel), item.to_owned(), meta)
            })?;
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}
