//! Paths inside a root directory (a build context, a stage's filesystem):
//! the one secure join that every source path goes through.
//!
//! A symlink met on the way is followed as if the root were `/`, the way
//! `BuildKit` resolves sources (containerd's `fs.RootPath`): an absolute
//! target starts again at the root and `..` stops at the root, so no path
//! resolved here names anything outside it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution follows before it gives up, as Linux does.
pub const MAX_SYMLINKS: usize = 40;

/// A path that meets more than [`MAX_SYMLINKS`] symlinks (a loop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many levels of symbolic links in `{}`", .0.display())]
pub struct SymlinkLoop(pub PathBuf);

/// Resolves `rel` inside `root`, following every symlink on the way inside
/// the root, and the last component too when `follow_last`.
///
/// The result is relative to `root` and free of `.`, `..` and (but for the
/// last component when `follow_last` is false) symlinks: joined to `root` it
/// names the entry `rel` reaches, which may not exist. Components after a
/// missing one are taken as written.
pub fn resolve_in_root(root: &Path, rel: &Path, follow_last: bool) -> Result<PathBuf, SymlinkLoop> {
    // Pending components, the next one last.
    let mut pending: Vec<OsString> = components(rel.as_os_str()).rev().collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        resolved.push(part);
        if missing || (!follow_last && pending.is_empty()) {
            continue;
        }
        let at: PathBuf = root.join(resolved.iter().collect::<PathBuf>());
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(SymlinkLoop(rel.to_owned()));
                }
                let target = fs::read_link(&at).map_err(|_| SymlinkLoop(rel.to_owned()))?;
                resolved.pop();
                if target.as_os_str().as_bytes().starts_with(b"/") {
                    resolved.clear();
                }
                pending.extend(components(target.as_os_str()).rev());
            }
            Ok(_) => {}
            Err(_) => missing = true,
        }
    }
    Ok(resolved.into_iter().collect())
}

/// The `/`-separated components of `path`, without empty ones and `.`.
fn components(path: &OsStr) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_owned())
}

/// `path` with `.` and `..` applied lexically and no leading `/`; `None`
/// when a `..` would climb above the start.
pub fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("real/in")).unwrap();
        fs::write(dir.path().join("real/in/f"), "x").unwrap();
        dir
    }

    fn resolve(root: &Path, rel: &str) -> String {
        resolve_in_root(root, Path::new(rel), true)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn absolute_links_start_again_at_the_root() {
        let dir = root();
        symlink("/etc/shadow", dir.path().join("shadow")).unwrap();
        symlink("/etc", dir.path().join("etc-link")).unwrap();
        symlink("/real", dir.path().join("abs")).unwrap();
        assert_eq!(resolve(dir.path(), "shadow"), "etc/shadow");
        assert_eq!(resolve(dir.path(), "etc-link/passwd"), "etc/passwd");
        assert_eq!(resolve(dir.path(), "abs/in/f"), "real/in/f");
    }

    #[test]
    fn dot_dot_stops_at_the_root() {
        let dir = root();
        symlink("../../../../etc/hostname", dir.path().join("up")).unwrap();
        symlink("../../real", dir.path().join("real/in/back")).unwrap();
        assert_eq!(resolve(dir.path(), "up"), "etc/hostname");
        assert_eq!(resolve(dir.path(), "real/in/back/in/f"), "real/in/f");
        assert_eq!(resolve(dir.path(), "../../real/in"), "real/in");
    }

    #[test]
    fn the_last_link_is_kept_unless_followed() {
        let dir = root();
        symlink("/etc", dir.path().join("real/link")).unwrap();
        symlink("/real", dir.path().join("abs")).unwrap();
        let kept = resolve_in_root(dir.path(), Path::new("abs/link"), false).unwrap();
        assert_eq!(kept, Path::new("real/link"));
    }

    #[test]
    fn loops_are_refused() {
        let dir = root();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert!(resolve_in_root(dir.path(), Path::new("a/x"), true).is_err());
    }

    #[test]
    fn names_stay_bytes() {
        let dir = root();
        let name = OsStr::from_bytes(b"f-\xff");
        fs::write(dir.path().join(name), "x").unwrap();
        symlink(name, dir.path().join("l")).unwrap();
        let got = resolve_in_root(dir.path(), Path::new("l"), true).unwrap();
        assert_eq!(got.as_os_str().as_bytes(), b"f-\xff");
    }

    #[test]
    fn clean_relative_refuses_climbing_out() {
        assert_eq!(clean_relative(Path::new("/a/./b/../c")), Some("a/c".into()));
        assert_eq!(clean_relative(Path::new("a/../../b")), None);
    }
}
