//! Paths inside a root directory (a build context, a stage's filesystem):
//! the one secure join that every source path goes through.
//!
//! A symlink met on the way is followed as if the root were `/`, the way
//! `BuildKit` resolves sources (containerd's `fs.RootPath`): an absolute
//! target starts again at the root and `..` stops at the root, so no path
//! resolved here names anything outside it. [`resolve_in_root`] resolves a
//! path to read later; [`open_in_root`] opens a file through directory
//! handles, so that a path changed meanwhile cannot lead out either.

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

/// `path` with `.` and `..` applied lexically and no leading `/`, a `..`
/// at the top staying there: what Go's `filepath.Join("/", path)` gives,
/// without the `/`. `BuildKit` cleans copy sources so: `../x` is `x` of the
/// context.
pub fn clean_clamped(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// What a path inside a root resolved to.
pub enum InRoot {
    /// A regular file, open for reading.
    File(std::fs::File),
    /// Something else: "a directory", "a FIFO", ….
    Other(&'static str),
    /// Nothing inside the root: a missing component, or too many links.
    Missing,
}

/// Opens `rel` under `root`, following symlinks only inside `root` (like
/// `openat2`'s `RESOLVE_IN_ROOT`, done by hand so it works on any kernel).
pub fn open_in_root(root: &Path, rel: &OsStr) -> std::io::Result<InRoot> {
    use rustix::fs::{FileType, Mode, OFlags, fstat, openat, readlinkat};
    use rustix::io::Errno;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt as _;

    let step = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root_fd = openat(
        rustix::fs::CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let components = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .rev()
            .map(<[u8]>::to_vec)
            .collect()
    };
    // The same rules as `resolve_in_root`, through directory handles.
    // The resolved path below the root, each component with its handle.
    let mut resolved: Vec<(Vec<u8>, OwnedFd)> = Vec::new();
    let mut pending = components(rel.as_bytes());
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == b".." {
            resolved.pop();
            continue;
        }
        let dir = resolved.last().map_or(&root_fd, |(_, fd)| fd);
        let fd = match openat(dir, part.as_slice(), step, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(InRoot::Missing),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(fstat(&fd)?.st_mode) == FileType::Symlink {
            links += 1;
            if links > MAX_SYMLINKS {
                return Ok(InRoot::Missing);
            }
            let target = readlinkat(&fd, "", Vec::new())?;
            let target = target.as_bytes();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            pending.extend(components(target));
            continue;
        }
        resolved.push((part, fd));
    }
    let Some((name, fd)) = resolved.pop() else {
        return Ok(InRoot::Other("a directory"));
    };
    let stat = fstat(&fd)?;
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a FIFO"),
        FileType::Socket => Some("a socket"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        _ => Some("not a regular file"),
    };
    if let Some(kind) = kind {
        return Ok(InRoot::Other(kind));
    }
    // Reopen for reading by name in its directory, refusing a link or
    // anything else that was swapped in since.
    let dir = resolved.last().map_or(&root_fd, |(_, fd)| fd);
    let file = match openat(
        dir,
        name.as_slice(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(file) => file,
        Err(Errno::NOENT | Errno::LOOP) => return Ok(InRoot::Missing),
        Err(e) => return Err(e.into()),
    };
    let again = fstat(&file)?;
    if (again.st_dev, again.st_ino) != (stat.st_dev, stat.st_ino) {
        return Ok(InRoot::Missing);
    }
    Ok(InRoot::File(std::fs::File::from(file)))
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
