//! Walking copied directories (with the step's excludes and the context's
//! ignore file) and the paths a step reads, for its cache key.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bstr::BString;

use super::source::{ParentsSource, expand_parents, expand_source};
use super::{CopyError, CopySpec, Origin, bytes_of, entry_for, host, io, join};
use crate::context::{FileStat, PatternMatcher};
use crate::layer::Entry;

/// Entries under the directory `path` of `origin`, placed under `into`,
/// each with the (not followed) metadata of its source.
pub(super) fn walk_dir(
    origin: &Origin<'_>,
    path: &[u8],
    into: &[u8],
    exclude: &PatternMatcher,
) -> Result<Vec<(Entry, fs::Metadata)>, CopyError> {
    let mut entries = Vec::new();
    walk_under(origin, path, exclude, |rel, full, meta| {
        entries.push((
            entry_for(full, &join(into, rel), meta, false)?,
            meta.clone(),
        ));
        Ok(())
    })?;
    Ok(entries)
}

/// Calls `visit` with the path relative to `path`, the full path and the
/// (not followed) metadata of everything under the directory `path` of
/// `origin` that neither `exclude` nor the context's ignore file leaves out,
/// parents before children, names sorted.
///
/// As fsutil's copy does for `BuildKit`: patterns are matched against paths
/// relative to the copied directory (never the directory itself); an
/// excluded directory is skipped whole unless some pattern is an exception
/// (`!keep`), in which case it is walked and visited, with its own
/// metadata, only before something under it that is kept.
pub(super) fn walk_under(
    origin: &Origin<'_>,
    path: &[u8],
    exclude: &PatternMatcher,
    visit: impl FnMut(&[u8], &Path, &fs::Metadata) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    walk_filtered(origin, path, exclude, None, visit)
}

/// [`walk_under`], keeping only what `include` keeps (`parents`): a path is
/// kept when the pattern matches it or a directory above it; a directory
/// that is not kept is walked (unless nothing below it can match) and
/// visited, with its own metadata, only before something under it that is
/// kept, as fsutil creates parents lazily for `IncludePatterns`.
fn walk_filtered(
    origin: &Origin<'_>,
    path: &[u8],
    exclude: &PatternMatcher,
    include: Option<&Include>,
    mut visit: impl FnMut(&[u8], &Path, &fs::Metadata) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    if include.is_some_and(Include::keeps_nothing) {
        return Ok(());
    }
    let root = origin.root().join(host(path));
    let mut walker = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    // Left-out directories being walked for exceptions, outermost first:
    // depth, path relative to `path`, full path.
    let mut held: Vec<(usize, Vec<u8>, PathBuf)> = Vec::new();
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
        held.retain(|(depth, _, _)| *depth < item.depth());
        let excluded = !exclude.is_empty() && exclude.excludes(rel);
        let ignored = origin.ignored(&origin_rel);
        let left = include.is_some_and(|i| !i.keeps(rel));
        if excluded || ignored || left {
            if is_dir {
                let skip = (excluded && !exclude.has_exceptions())
                    || (ignored && origin.walk_ignored_dir(&origin_rel))
                    || (left && include.is_some_and(|i| !i.may_keep_under(rel)));
                if skip {
                    walker.skip_current_dir();
                } else {
                    held.push((item.depth(), rel.to_vec(), item.path().to_owned()));
                }
            }
            continue;
        }
        for (_, held_rel, full) in held.drain(..) {
            let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
            visit(&held_rel, &full, &meta)?;
        }
        let meta = fs::symlink_metadata(item.path()).map_err(io(item.path()))?;
        visit(rel, item.path(), &meta)?;
    }
    Ok(())
}

/// What a `parents` source keeps below each of its roots: the part of the
/// source after its `/./` (or all of it), as `BuildKit` gives fsutil's copy
/// an include pattern (moby/patternmatcher, so `**` works).
#[derive(Debug, Clone)]
pub(super) struct Include {
    /// The pattern, cleaned; empty when it is the root itself.
    pattern: String,
    matcher: PatternMatcher,
    /// The leading components of the pattern without any wildcard or
    /// escape: nothing outside them can match.
    literal: Vec<String>,
}

impl Include {
    /// The include pattern `pattern` (already cleaned, relative).
    pub(super) fn new(pattern: String) -> Result<Self, CopyError> {
        let matcher = PatternMatcher::new(std::slice::from_ref(&pattern))
            .map_err(|e| CopyError::Exclude(e.to_string()))?;
        let literal = pattern
            .split('/')
            .filter(|c| !c.is_empty())
            .take_while(|c| !c.contains(['*', '?', '[', ']', '^', '\\']))
            .map(str::to_owned)
            .collect();
        Ok(Include {
            pattern,
            matcher,
            literal,
        })
    }

    /// The pattern, cleaned.
    pub(super) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// An empty pattern keeps nothing: patternmatcher drops it, and fsutil
    /// then has an include matcher that matches no path.
    fn keeps_nothing(&self) -> bool {
        self.matcher.is_empty()
    }

    /// Whether `rel` (relative to the root) is kept: the pattern matches it
    /// or a directory above it.
    pub(super) fn keeps(&self, rel: &[u8]) -> bool {
        self.matcher.excludes(rel)
    }

    /// Whether something below the directory `rel` may be kept.
    fn may_keep_under(&self, rel: &[u8]) -> bool {
        rel.split(|&b| b == b'/')
            .zip(&self.literal)
            .all(|(have, want)| have == want.as_bytes())
    }
}

/// Walks what the `parents` source `parents` copies: for each of its roots
/// (in order), `visit(root, None, ..)` for the root itself, then, when it is
/// a directory, `visit(root, Some(rel), ..)` for everything under it that
/// its include pattern keeps and neither `exclude` nor the ignore file
/// leaves out (see [`walk_filtered`]).
///
/// A source without wildcards must copy something, as `BuildKit` requires
/// its path (`RequiredPaths`), else the copy fails.
pub(super) fn walk_parents(
    origin: &Origin<'_>,
    parents: &ParentsSource,
    exclude: &PatternMatcher,
    mut visit: impl FnMut(&[u8], Option<&[u8]>, &Path, &fs::Metadata) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let wanted = parents.include.pattern().as_bytes();
    let mut found = false;
    for root in &parents.roots {
        let full = origin.root().join(host(root));
        let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
        visit(root, None, &full, &meta)?;
        if !meta.is_dir() {
            continue;
        }
        walk_filtered(
            origin,
            root,
            exclude,
            Some(&parents.include),
            |rel, item, meta| {
                found |= !wanted.is_empty()
                    && rel.starts_with(wanted)
                    && (rel.len() == wanted.len() || rel[wanted.len()] == b'/');
                visit(root, Some(rel), item, meta)
            },
        )?;
    }
    match &parents.required {
        Some(path) if !found => Err(CopyError::RequiredNotFound {
            path: path.clone(),
            place: origin.place(),
        }),
        _ => Ok(()),
    }
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
    /// For a regular file with other names: the first selected path (byte
    /// order) that is the same file, unless that is this one. A copy links
    /// the names it reaches of one file, so this is part of what it reads.
    pub same_file_as: Option<BString>,
    /// Its stat when it was selected, for the context's stat cache.
    pub stat: FileStat,
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

/// Every path of `origin` that the sources of `spec` name, as
/// [`copy_entries`](super::copy_entries) reads them (wildcards, symlinks in
/// named sources, directories walked with the step's excludes and the
/// context's ignore file), sorted by path. URLs are left out: a download is
/// pinned by its checksum. The cache key of a step covers exactly these
/// paths.
pub fn selected_paths(
    spec: &CopySpec<'_>,
    origin: &Origin<'_>,
) -> Result<Vec<Selected>, CopyError> {
    let exclude =
        PatternMatcher::new(spec.exclude).map_err(|e| CopyError::Exclude(e.to_string()))?;
    let mut out: Vec<(Selected, Option<(u64, u64)>)> = Vec::new();
    let mut push = |path: BString, full: PathBuf, meta: &fs::Metadata| -> Result<(), CopyError> {
        let kind = if meta.file_type().is_symlink() {
            SelectedKind::Symlink(bytes_of(fs::read_link(&full).map_err(io(&full))?))
        } else if meta.is_dir() {
            SelectedKind::Dir
        } else {
            SelectedKind::File
        };
        let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        let selected = Selected {
            path,
            full,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            same_file_as: None,
            stat: FileStat::of(meta),
        };
        out.push((selected, inode));
        Ok(())
    };
    for source in spec.sources {
        if super::git_source(source, spec.add)?.is_some() || (spec.add && super::is_url(source)) {
            continue;
        }
        if spec.parents {
            let parents = expand_parents(origin, source)?;
            walk_parents(origin, &parents, &exclude, |root, rel, full, meta| {
                let path = rel.map_or_else(|| root.into(), |rel| join(root, rel));
                push(path, full.to_owned(), meta)
            })?;
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
    out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    out.dedup_by(|a, b| a.0.path == b.0.path);
    let mut first: HashMap<(u64, u64), BString> = HashMap::new();
    Ok(out
        .into_iter()
        .map(|(mut selected, inode)| {
            if let Some(inode) = inode {
                let name = first.entry(inode).or_insert_with(|| selected.path.clone());
                if *name != selected.path {
                    selected.same_file_as = Some(name.clone());
                }
            }
            selected
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(root: &Path, patterns: &[&str]) -> Vec<String> {
        let origin = Origin::Rootfs { root, name: "s" };
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        let exclude = PatternMatcher::new(&patterns).unwrap();
        let mut out = Vec::new();
        walk_under(&origin, b"app", &exclude, |rel, _, _| {
            out.push(String::from_utf8_lossy(rel).into_owned());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn excludes_are_relative_to_the_copied_directory_with_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        fs::create_dir_all(app.join("docs/deep")).unwrap();
        fs::create_dir_all(app.join("src")).unwrap();
        for f in ["README.md", "docs/keep.md", "docs/deep/x.md", "src/a.go"] {
            fs::write(app.join(f), "x").unwrap();
        }
        assert_eq!(
            walked(dir.path(), &["*.md", "src"]),
            ["docs", "docs/deep", "docs/deep/x.md", "docs/keep.md"]
        );
        // An excluded directory is walked for exceptions, and shows up
        // only above what they keep.
        assert_eq!(
            walked(dir.path(), &["docs", "!docs/keep.md"]),
            ["README.md", "docs", "docs/keep.md", "src", "src/a.go"]
        );
        assert_eq!(
            walked(dir.path(), &["docs", "src", "!**/x.md"]),
            ["README.md", "docs", "docs/deep", "docs/deep/x.md"]
        );
    }
}
