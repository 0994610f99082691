//! Copy sources: which paths of the origin's root a source names, its
//! symlinks followed inside that root and its wildcards matched.

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use bstr::{BStr, BString, ByteSlice};

use super::walk::Include;
use super::{CopyError, Origin, bytes_of, glob, host, join};

/// Cleans a source path: no leading `/` or `./`, and a `..` past the root
/// stays at the root, as `BuildKit` cleans it (`COPY ../x /` copies the
/// context's `x`).
pub(super) fn clean_source(source: &str) -> String {
    crate::util::path::clean_clamped(Path::new(source))
        .into_os_string()
        .into_string()
        .expect("the components of a str are UTF-8")
}

/// Follows the symlinks in `rel` inside `root`, as if `root` were `/`, the
/// last component too when `follow_last`.
pub(super) fn resolve(
    root: &Path,
    rel: &[u8],
    follow_last: bool,
    source: &BStr,
) -> Result<BString, CopyError> {
    let resolved = crate::util::path::resolve_in_root(root, host(rel), follow_last)
        .map_err(|_| CopyError::SymlinkLoop(source.to_string()))?;
    Ok(bytes_of(resolved))
}

/// Whether `path` of `root` is a directory itself, not a symlink to one.
pub(super) fn is_real_dir(root: &Path, path: &[u8]) -> bool {
    fs::symlink_metadata(root.join(host(path))).is_ok_and(|m| m.is_dir())
}

/// Follows `at` (whose parents hold no symlink) inside the origin's root and
/// checks that what it reaches is there, not left out by the ignore file.
/// `shown` is the path as the step names it, for messages.
pub(super) fn follow(origin: &Origin<'_>, at: &[u8], shown: &BStr) -> Result<BString, CopyError> {
    let root = origin.root();
    let resolved = resolve(root, at, true, shown)?;
    let present = |p: &[u8]| {
        fs::symlink_metadata(root.join(host(p))).is_ok() && (p.is_empty() || !origin.ignored(p))
    };
    if present(at) && present(&resolved) {
        return Ok(resolved);
    }
    match fs::read_link(root.join(host(at))) {
        Ok(target) if present(at) => Err(CopyError::LinkTargetMissing {
            link: shown.to_string(),
            target: target.to_string_lossy().into_owned(),
            place: origin.place(),
        }),
        _ => Err(CopyError::NotFound {
            source_path: shown.to_string(),
            place: origin.place(),
        }),
    }
}

/// Expands one source into the root-relative paths it reaches, each with
/// the path as written (they differ when a source is a symlink, which is
/// followed but keeps its own name).
///
/// As in `BuildKit`, every symlink is followed inside the root, never out of
/// it: the components before the first wildcard resolve like a named
/// source; the rest are matched against what is really there, never
/// descending through a symlink; and each match is then followed inside the
/// root. The resolved paths hold no symlink.
///
/// A named source that is not there is an error; a wildcard that matches
/// nothing gives no paths, as `BuildKit`'s Dockerfile frontend allows
/// (`AllowEmptyWildcard`), but the directory before its first wildcard
/// must exist.
pub(super) fn expand_source(
    origin: &Origin<'_>,
    source: &str,
) -> Result<Vec<(BString, BString)>, CopyError> {
    let root = origin.root();
    let shown = source.as_bytes().as_bstr();
    let cleaned = clean_source(source);
    let parts: Vec<&str> = cleaned.split('/').filter(|p| !p.is_empty()).collect();
    let Some(first) = parts.iter().position(|p| glob::has_wildcards(p)) else {
        let at = resolve(root, cleaned.as_bytes(), false, shown)?;
        return Ok(vec![(follow(origin, &at, shown)?, cleaned.into())]);
    };
    let prefix = parts[..first].join("/");
    let base = resolve(root, prefix.as_bytes(), true, shown)?;
    // The part before the first wildcard must be there (`BuildKit` walks it);
    // what the wildcard then matches may be nothing at all.
    let base_there = fs::symlink_metadata(root.join(host(&base))).is_ok()
        && (base.is_empty() || !origin.ignored(&base));
    if !base_there {
        return Err(CopyError::NotFound {
            source_path: source.to_owned(),
            place: origin.place(),
        });
    }
    // Each candidate: its path in the root (parents free of symlinks) and as
    // written, both bytes: a wildcard may match names that are not UTF-8.
    let mut matches: Vec<(BString, BString)> = vec![(base, prefix.into())];
    for part in &parts[first..] {
        let mut next = Vec::new();
        for (dir, written) in &matches {
            if !is_real_dir(root, dir) {
                continue;
            }
            if !glob::has_wildcards(part) {
                let path = join(dir, part.as_bytes());
                if fs::symlink_metadata(root.join(host(&path))).is_ok() {
                    next.push((path, join(written, part.as_bytes())));
                }
                continue;
            }
            let Ok(read) = fs::read_dir(root.join(host(dir))) else {
                continue;
            };
            let mut names: Vec<Vec<u8>> = read
                .filter_map(|e| Some(e.ok()?.file_name().into_vec()))
                .collect();
            names.sort();
            for name in names {
                if glob::matches(part, &name)? {
                    next.push((join(dir, &name), join(written, &name)));
                }
            }
        }
        matches = next;
    }
    matches.retain(|(at, _)| !origin.ignored(at));
    matches
        .into_iter()
        .map(|(at, written)| Ok((follow(origin, &at, written.as_bstr())?, written)))
        .collect()
}

/// A `parents` source: the roots its part before the first `/./` reaches
/// (the origin's root without one) and what to keep below each.
#[derive(Debug)]
pub(super) struct ParentsSource {
    /// The roots, resolved, in order.
    pub(super) roots: Vec<BString>,
    /// What is kept below each root.
    pub(super) include: Include,
    /// When neither part has a wildcard: the path that must be copied, as
    /// `BuildKit` names it (`/root/pattern`).
    pub(super) required: Option<String>,
}

/// Whether `text` has a wildcard, as `BuildKit`'s frontend tells
/// (`containsWildcards`): `*`, `?` or `[`, but not escaped by `\`.
fn contains_wildcards(text: &str) -> bool {
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'*' | b'?' | b'[' => return true,
            b'\\' => {
                bytes.next();
            }
            _ => {}
        }
    }
    false
}

/// `path` cleaned as Go's `path.Join("/", path)` cleans it, relative: no
/// empty, `.` or `..` components (`..` stops at the root).
fn clean_pattern(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Splits a `parents` source as `BuildKit`'s Dockerfile frontend does
/// (`dispatchCopy`): at its first `/./`, the part before is the copy root,
/// which may hold wildcards (each match is a root of its own, and a root
/// wildcard matching nothing copies nothing), the rest an include pattern
/// matched below each root; without `/./`, the root is the origin's root
/// and the whole source is the pattern. A root without wildcards must be
/// there; so must the path the source names when neither part has one.
pub(super) fn expand_parents(
    origin: &Origin<'_>,
    source: &str,
) -> Result<ParentsSource, CopyError> {
    let (root, pattern) = source.split_once("/./").unwrap_or(("", source));
    let pattern = clean_pattern(pattern);
    let required = (!contains_wildcards(root) && !contains_wildcards(&pattern)).then(|| {
        let root = clean_pattern(root);
        format!("/{}", clean_pattern(&format!("{root}/{pattern}")))
    });
    let roots = if clean_source(root).is_empty() {
        vec![BString::default()]
    } else {
        expand_source(origin, root)?
            .into_iter()
            .map(|(at, _)| at)
            .collect()
    };
    Ok(ParentsSource {
        roots,
        include: Include::new(pattern)?,
        required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(root: &Path, source: &str) -> Result<Vec<String>, CopyError> {
        let origin = Origin::Rootfs { root, name: "s" };
        Ok(expand_source(&origin, source)?
            .into_iter()
            .map(|(at, _)| at.to_string())
            .collect())
    }

    #[test]
    fn a_wildcard_may_match_nothing_but_a_name_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sub/a")).unwrap();
        fs::write(dir.path().join("x.txt"), "x").unwrap();
        assert_eq!(expand(dir.path(), "x*").unwrap(), ["x.txt"]);
        assert!(expand(dir.path(), "nomatch*").unwrap().is_empty());
        assert!(expand(dir.path(), "sub/*/none").unwrap().is_empty());
        assert!(matches!(
            expand(dir.path(), "missing.txt"),
            Err(CopyError::NotFound { .. })
        ));
        // The directory before the first wildcard must exist.
        assert!(matches!(
            expand(dir.path(), "nodir/*.txt"),
            Err(CopyError::NotFound { .. })
        ));
    }
}
