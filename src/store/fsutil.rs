//! Small filesystem helpers: durable writes, directory fsync, robust removal.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::StoreError;
use super::error::IoContext;

/// Fsyncs a directory so a rename or unlink inside it is durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx("fsync directory", dir)
}

/// Writes `bytes` to the new file `temp`, fsyncs it, renames it to `dest` and
/// fsyncs `dest`'s directory. The temp file is removed on failure.
pub(crate) fn write_durably(temp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
            .ctx("create temp file", temp)?;
        f.write_all(bytes).ctx("write temp file", temp)?;
        f.sync_all().ctx("fsync temp file", temp)?;
        drop(f);
        fs::rename(temp, dest).ctx("rename into place", dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(temp);
        return result;
    }
    if let Some(parent) = dest.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; a missing path is not an error.
///
/// Extracted layers may contain directories without write permission (which
/// would make their entries undeletable for a non-root user), so on
/// `PermissionDenied` the tree's directories are made owner-writable and the
/// removal is retried.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return ignore_not_found(fs::remove_file(path));
    }
    // A build killed during a `run` step leaves its overlay mounted here:
    // detach it first, so removal never walks into a mount.
    unmount_under(path);
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path)?;
            ignore_not_found(fs::remove_dir_all(path))
        }
        other => ignore_not_found(other),
    }
}

/// Detaches every mount at or below `path`, deepest first (best effort).
fn unmount_under(path: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let Some(prefix) = path.to_str() else { return };
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = rustix::mount::unmount(point.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(digits)) = (bytes[i], octal)
            && let Ok(code) =
                u8::try_from(digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0')))
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ignore_not_found(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Adds owner rwx to every directory under `dir` (not following symlinks).
fn make_dirs_writable(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_dirs_writable(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_handles_read_only_dirs_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("t");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join("a/b/f"), b"x").unwrap();
        fs::set_permissions(top.join("a/b"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        remove_tree(&top).unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        remove_tree(&f).unwrap();
        assert!(!f.exists());
    }
}

#[cfg(test)]
mod mountinfo_tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes_decode() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/tab\\011x"), "/tab\tx");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/odd\\9"), "/odd\\9");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }
}
