//! Extended attributes of paths (never following a final symlink), via rustix.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// Lists the xattr names of `path` (raw bytes). A filesystem without xattr
/// support yields an empty list.
pub(crate) fn list(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        buf.resize(size, 0);
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break;
            }
            // The list grew between the two calls: ask again.
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(buf
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Reads the value of xattr `name` of `path`.
pub(crate) fn get(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let name = std::ffi::OsStr::from_bytes(name);
    let mut buf = Vec::new();
    loop {
        let size = rustix::fs::lgetxattr_query(path, name)?;
        buf.resize(size, 0);
        if size == 0 {
            return Ok(buf);
        }
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets xattr `name` of `path` to `value`.
pub(crate) fn set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())?;
    Ok(())
}

/// Removes xattr `name` of `path`.
pub(crate) fn remove(path: &Path, name: &[u8]) -> io::Result<()> {
    rustix::fs::lremovexattr(path, std::ffi::OsStr::from_bytes(name))?;
    Ok(())
}
