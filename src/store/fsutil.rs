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
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path)?;
            ignore_not_found(fs::remove_dir_all(path))
        }
        other => ignore_not_found(other),
    }
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
