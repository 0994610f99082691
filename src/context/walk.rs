//! Lists the files of a build context, applying `.dockerignore` patterns.
//!
//! Behaviour follows buildkit's `fsutil` walker:
//! * An excluded directory is not descended into unless
//!   [`PatternMatcher::may_include_under`] says an exception may re-include
//!   something below it; such a directory is listed only if something under
//!   it is (parents are emitted before their first included child).
//! * An excluded directory that cannot be read is skipped silently.
//! * The ignore file and the Dockerfile get no special treatment: if the
//!   patterns exclude them they are not listed (buildkit reads both
//!   separately). To mimic the classic CLI, which always sends them, compile
//!   the patterns with [`crate::context::keep_build_files`] first.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bstr::BString;

use super::{ContextError, PatternMatcher};

/// The type of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device node.
    Other,
}

/// One file, directory or symlink of the context, relative path with `/` separators, never `.` or empty.
///
/// Paths and link targets are bytes: names that are not UTF-8 are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Path relative to the context root, `/`-separated.
    pub path: BString,
    /// File type.
    pub kind: EntryKind,
    /// Size in bytes for files, target length for symlinks, 0 otherwise.
    pub size: u64,
    /// Permission and special bits of `st_mode` (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device id.
    pub dev: u64,
    /// Link target for symlinks.
    pub link_target: Option<BString>,
}

impl ContextEntry {
    fn from_metadata(path: BString, abs: &Path, meta: &Metadata) -> Result<Self, ContextError> {
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        let link_target = if kind == EntryKind::Symlink {
            let target = fs::read_link(abs).map_err(|e| ContextError::io(abs, e))?;
            Some(target.into_os_string().into_vec().into())
        } else {
            None
        };
        Ok(ContextEntry {
            path,
            kind,
            size: match kind {
                EntryKind::File | EntryKind::Symlink => meta.len(),
                EntryKind::Dir | EntryKind::Other => 0,
            },
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_ns: timestamp_ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: timestamp_ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            link_target,
        })
    }
}

pub(crate) fn timestamp_ns(secs: i64, nsecs: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsecs)
}

/// Walks `root` (not following symlinks), skipping what `ignore` excludes (but descending into excluded dirs when `may_include_under` says so), sorted by path (byte order of the slash path, parents before children).
///
/// The ignore file and the Dockerfile get no special case: the classic CLI
/// always sends them, buildkit (and this function) applies the patterns to
/// them like to any file; use [`crate::context::keep_build_files`] for the
/// classic behaviour. `root` may be a symlink to a directory; it is not listed.
pub fn walk(root: &Path, ignore: &PatternMatcher) -> Result<Vec<ContextEntry>, ContextError> {
    let meta = fs::metadata(root).map_err(|e| ContextError::io(root, e))?;
    if !meta.is_dir() {
        return Err(ContextError::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut walker = Walker {
        ignore,
        out: Vec::new(),
        pending: Vec::new(),
    };
    walker.dir(root, b"", false)?;
    let mut out = walker.out;
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

struct Walker<'a> {
    ignore: &'a PatternMatcher,
    out: Vec<ContextEntry>,
    /// Excluded ancestor directories being walked for possible exceptions,
    /// not yet emitted (outermost first).
    pending: Vec<ContextEntry>,
}

impl Walker<'_> {
    fn emit(&mut self, entry: ContextEntry) {
        self.out.append(&mut self.pending);
        self.out.push(entry);
    }

    /// Lists directory `abs` (relative path `rel`, `""` for the root).
    fn dir(&mut self, abs: &Path, rel: &[u8], excluded: bool) -> Result<(), ContextError> {
        let read = match fs::read_dir(abs) {
            Ok(read) => read,
            Err(e) if excluded && e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
            Err(e) => return Err(ContextError::io(abs, e)),
        };
        for dirent in read {
            let dirent = dirent.map_err(|e| ContextError::io(abs, e))?;
            let child_abs: PathBuf = dirent.path();
            let name = dirent.file_name();
            let child_rel: BString = if rel.is_empty() {
                name.into_vec().into()
            } else {
                [rel, b"/", name.as_bytes()].concat().into()
            };
            let child_excluded = self.ignore.excludes(&child_rel);
            // Relative to the directory (fstatat), not a walk of the whole path.
            let meta = match dirent.metadata() {
                Ok(m) => m,
                // Gone since read_dir listed it: nothing to send.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContextError::io(&child_abs, e)),
            };
            let is_dir = meta.is_dir();
            let walk_in = !child_excluded || (is_dir && self.ignore.may_include_under(&child_rel));
            if !walk_in {
                continue;
            }
            let entry = ContextEntry::from_metadata(child_rel.clone(), &child_abs, &meta)?;
            if !is_dir {
                self.emit(entry);
                continue;
            }
            if child_excluded {
                let depth = self.pending.len();
                self.pending.push(entry);
                self.dir(&child_abs, &child_rel, true)?;
                // Still pending if nothing below it was included.
                self.pending.truncate(depth);
            } else {
                self.emit(entry);
                self.dir(&child_abs, &child_rel, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::parse_dockerignore;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            if let Some(stripped) = f.strip_suffix('/') {
                fs::create_dir_all(dir.path().join(stripped)).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, f.as_bytes()).unwrap();
            }
        }
        dir
    }

    fn listed(dir: &Path, ignore: &str) -> Vec<BString> {
        let pm = PatternMatcher::new(&parse_dockerignore(ignore)).unwrap();
        walk(dir, &pm)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn lists_everything_sorted_without_patterns() {
        let d = tree(&["b", "a/x", "a-b", "a/y/z", "empty/"]);
        assert_eq!(
            listed(d.path(), ""),
            ["a", "a-b", "a/x", "a/y", "a/y/z", "b", "empty"]
        );
    }

    #[test]
    fn markdown_except_readme() {
        let d = tree(&["README.md", "CHANGES.md", "main.rs", "docs/guide.md"]);
        // `*.md` has no `/`, so like Docker it only matches top-level files.
        assert_eq!(
            listed(d.path(), "*.md\n!README.md\n"),
            ["README.md", "docs", "docs/guide.md", "main.rs"]
        );
    }

    #[test]
    fn excluded_dir_skips_subtree() {
        let d = tree(&["node_modules/a/b/c.js", "node_modules/x.js", "index.js"]);
        assert_eq!(listed(d.path(), "node_modules"), ["index.js"]);
    }

    #[test]
    fn exception_reincludes_file_under_excluded_dir() {
        let d = tree(&[
            "docs/keep.md",
            "docs/drop.md",
            "docs/sub/x.md",
            "src/lib.rs",
        ]);
        assert_eq!(
            listed(d.path(), "docs\n!docs/keep.md\n"),
            ["docs", "docs/keep.md", "src", "src/lib.rs"]
        );
        // An excluded dir with no re-included child is not listed at all.
        assert_eq!(
            listed(d.path(), "docs\n!docs/missing.md\n"),
            ["src", "src/lib.rs"]
        );
    }

    #[test]
    fn wildcard_exception_under_excluded_dir() {
        let d = tree(&["a/b/keep.go", "a/b/x.txt", "c.txt"]);
        assert_eq!(
            listed(d.path(), "*\n!**/*.go\n"),
            ["a", "a/b", "a/b/keep.go"]
        );
    }

    #[test]
    fn trailing_slash_is_cleaned() {
        let d = tree(&["build/out.o", "build.rs", "src/build/x"]);
        assert_eq!(
            listed(d.path(), "build/\n"),
            ["build.rs", "src", "src/build", "src/build/x"]
        );
    }

    #[test]
    fn leading_slash_is_anchored() {
        let d = tree(&["tmp/a", "src/tmp/b"]);
        assert_eq!(listed(d.path(), "/tmp\n"), ["src", "src/tmp", "src/tmp/b"]);
    }

    #[test]
    fn double_star_log() {
        let d = tree(&["a.log", "x/b.log", "x/y/c.log", "x/y/keep.txt"]);
        assert_eq!(listed(d.path(), "**/*.log\n"), ["x", "x/y", "x/y/keep.txt"]);
    }

    /// fsutil `filter_test.go` `TestWalkerExclude`.
    #[test]
    fn fsutil_walker_exclude() {
        let d = tree(&["bar", "foo/bar2", "foo2"]);
        assert_eq!(
            listed(d.path(), "foo*\n!foo/bar2\n"),
            ["bar", "foo", "foo/bar2"]
        );
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = tree(&["real/file"]);
        std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
        let pm = PatternMatcher::default();
        let entries = walk(d.path(), &pm).unwrap();
        let link = entries.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);
        assert_eq!(link.link_target.as_ref().unwrap(), "real");
        assert!(!entries.iter().any(|e| e.path.starts_with(b"link/")));
        let file = entries.iter().find(|e| e.path == "real/file").unwrap();
        assert_eq!((file.kind, file.size), (EntryKind::File, 9));
    }

    #[test]
    fn ignore_file_is_not_special() {
        let d = tree(&[".dockerignore", "Dockerfile", "a"]);
        assert_eq!(listed(d.path(), "*\n"), Vec::<BString>::new());
        let pats = crate::context::keep_build_files(vec!["*".into()], Some("Dockerfile")).unwrap();
        let pm = PatternMatcher::new(&pats).unwrap();
        let got: Vec<_> = walk(d.path(), &pm)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(got, [".dockerignore", "Dockerfile"]);
    }

    #[test]
    fn root_must_be_a_directory() {
        let d = tree(&["f"]);
        let err = walk(&d.path().join("f"), &PatternMatcher::default()).unwrap_err();
        assert!(matches!(err, ContextError::NotADirectory { .. }), "{err}");
        let err = walk(&d.path().join("missing"), &PatternMatcher::default()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    fn is_root() -> bool {
        fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    /// fsutil `filter_test.go` `TestWalkerPermissionDenied`.
    #[test]
    fn unreadable_dirs() {
        use std::os::unix::fs::PermissionsExt;
        if is_root() {
            eprintln!("skipped: root ignores permissions");
            return;
        }
        let d = tree(&["foo/bar/baz/x"]);
        let bar = d.path().join("foo/bar");
        fs::set_permissions(&bar, fs::Permissions::from_mode(0o000)).unwrap();
        let pm = |s: &str| PatternMatcher::new(&parse_dockerignore(s)).unwrap();
        let result = walk(d.path(), &pm(""));
        let ok = walk(d.path(), &pm("**/bar")).map(|v| v.len());
        let ok2 = walk(d.path(), &pm("**/bar\n!foo/bar/baz")).map(|v| v.len());
        fs::set_permissions(&bar, fs::Permissions::from_mode(0o755)).unwrap();
        let err = result.unwrap_err();
        assert!(err.to_string().contains("foo/bar"), "{err}");
        assert_eq!(ok.unwrap(), 1);
        assert_eq!(ok2.unwrap(), 1);
    }

    #[test]
    fn non_utf8_names_are_kept_as_bytes() {
        let d = tree(&["ok"]);
        let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
        if fs::write(d.path().join(os(b"bad\xff")), b"x").is_err() {
            return; // filesystem refuses non-UTF-8 names
        }
        fs::write(d.path().join(os(b"bad\xfe")), b"y").unwrap();
        fs::create_dir(d.path().join(os(b"dir\xff"))).unwrap();
        fs::write(d.path().join(os(b"dir\xff/in")), b"z").unwrap();
        std::os::unix::fs::symlink(os(b"bad\xff"), d.path().join("link")).unwrap();
        let entries = walk(d.path(), &PatternMatcher::default()).unwrap();
        let paths: Vec<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
        assert_eq!(
            paths,
            [
                &b"bad\xfe"[..],
                b"bad\xff",
                b"dir\xff",
                b"dir\xff/in",
                b"link",
                b"ok"
            ]
        );
        assert_eq!(entries[4].link_target.as_ref().unwrap(), &b"bad\xff"[..]);
        // `?` matches one invalid byte, as in Go; a literal U+FFFD none.
        assert_eq!(listed(d.path(), "bad?\ndir?\n"), ["link", "ok"]);
        assert_eq!(listed(d.path(), "bad*\n!bad\u{fffd}\n").len(), 4);
    }

    #[test]
    fn metadata_fields() {
        use std::os::unix::fs::PermissionsExt;
        let d = tree(&["f"]);
        let p = d.path().join("f");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4751)).unwrap();
        let e = walk(d.path(), &PatternMatcher::default())
            .unwrap()
            .remove(0);
        let m = fs::symlink_metadata(&p).unwrap();
        assert_eq!(e.mode, 0o4751);
        assert_eq!(
            (e.ino, e.dev, e.uid, e.gid),
            (m.ino(), m.dev(), m.uid(), m.gid())
        );
        assert_eq!(e.mtime_ns, timestamp_ns(m.mtime(), m.mtime_nsec()));
    }
}
