//! Reading a directory tree (overlayfs upperdir or staged copy) into entries.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bstr::{BStr, BString, ByteSlice};

use super::entry::split_parent;
use super::{Entry, EntryKind, FileSource, LayerError, WHITEOUT_PREFIX, is_overlay_xattr, xattr};

/// Xattr names and values.
type Xattrs = Vec<(String, Vec<u8>)>;

/// Overlayfs xattrs that carry semantics a layer cannot express.
const UNSUPPORTED_OVERLAY_XATTRS: &[&str] = &[
    "redirect",
    "metacopy",
    "whiteout",
    "xwhiteout",
    "xwhiteouts",
];

/// Reads a directory tree into entries (for a RUN step's upperdir or a staged COPY result). Converts overlayfs whiteouts: a char device 0:0 -> Whiteout, a directory with xattr `trusted.overlay.opaque=y` (or `user.overlay.opaque`) -> `OpaqueDir`; hardlinks (same dev+ino, nlink>1) become Hardlink entries pointing at the first path in sorted order. Skips xattrs under `trusted.overlay.*`/`user.overlay.*`. Anything it cannot convert (e.g. a socket, or an overlay redirect xattr `trusted.overlay.redirect`, or metacopy) is an error naming the path, never silently dropped.
///
/// The root itself is not an entry. Entries come back sorted by path (byte
/// order); regular files reference their host path ([`FileSource::Path`]).
/// Other overlay xattrs (`origin`, `impure`, `nlink`, ...) are bookkeeping and
/// are skipped; `whiteout`/`xwhiteout(s)` and opaque values other than `y`
/// are errors. Names that start with `.wh.` are errors; names that are not
/// UTF-8 are kept as they are, byte for byte.
///
/// # Errors
///
/// [`LayerError::Unsupported`] naming the path for anything that cannot be
/// represented in a layer, [`LayerError::Io`] when the tree cannot be read.
pub fn entries_from_dir(root: &Path) -> Result<Vec<Entry>, LayerError> {
    let mut found = Vec::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            LayerError::io(path, e.into())
        })?;
        let rel = item.path().strip_prefix(root).map_err(|_| {
            LayerError::io(
                item.path(),
                io::Error::other("walked outside the directory being read"),
            )
        })?;
        found.push(BString::from(rel.as_os_str().as_bytes()));
    }
    found.sort_unstable();

    let mut first_links: HashMap<(u64, u64), BString> = HashMap::new();
    let mut entries = Vec::with_capacity(found.len());
    for rel in found {
        let host = root.join(OsStr::from_bytes(&rel));
        let meta = fs::symlink_metadata(&host).map_err(|e| LayerError::io(&host, e))?;
        let (_, base) = split_parent(&rel);
        if base.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Err(LayerError::unsupported(
                rel,
                "a file name starting with `.wh.` cannot be stored in a layer",
            ));
        }
        let ft = meta.file_type();
        let (xattrs, opaque) = read_xattrs(&host, rel.as_bstr())?;
        let mut kind = kind_of(&meta, &host, rel.as_bstr(), opaque)?;
        if opaque && !ft.is_dir() {
            return Err(LayerError::unsupported(
                rel,
                "overlay opaque xattr on a non-directory",
            ));
        }

        if !ft.is_dir() && kind != EntryKind::Whiteout && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = first_links.get(&key) {
                kind = EntryKind::Hardlink {
                    target: first.clone(),
                };
            } else {
                first_links.insert(key, rel.clone());
            }
        }

        let (xattrs, mode) = if kind == EntryKind::Whiteout {
            (Vec::new(), 0)
        } else {
            (xattrs, meta.mode() & 0o7777)
        };
        entries.push(Entry {
            path: rel,
            kind,
            mode,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            xattrs,
        });
    }
    Ok(entries)
}

/// The entry kind of the file at `host` (whose lstat is `meta`).
fn kind_of(
    meta: &fs::Metadata,
    host: &Path,
    rel: &BStr,
    opaque: bool,
) -> Result<EntryKind, LayerError> {
    let ft = meta.file_type();
    Ok(if ft.is_dir() {
        if opaque {
            EntryKind::OpaqueDir
        } else {
            EntryKind::Dir
        }
    } else if ft.is_file() {
        EntryKind::File {
            source: FileSource::Path(host.to_path_buf()),
            size: meta.len(),
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(host).map_err(|e| LayerError::io(host, e))?;
        EntryKind::Symlink {
            target: target.into_os_string().into_vec().into(),
        }
    } else if ft.is_char_device() {
        let (major, minor) = device_numbers(meta.rdev());
        if major == 0 && minor == 0 {
            EntryKind::Whiteout
        } else {
            EntryKind::CharDevice { major, minor }
        }
    } else if ft.is_block_device() {
        let (major, minor) = device_numbers(meta.rdev());
        EntryKind::BlockDevice { major, minor }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if ft.is_socket() {
        return Err(LayerError::unsupported(
            rel,
            "sockets cannot be stored in a layer",
        ));
    } else {
        return Err(LayerError::unsupported(rel, "unknown file type"));
    })
}

fn device_numbers(rdev: u64) -> (u32, u32) {
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

/// Makes the tree `root`, which [`entries_from_dir`] read as `entries`
/// and which was then written as a layer with `source_date_epoch`, what
/// extracting that layer (with overlay whiteouts) gives, so it can serve as
/// the layer's snapshot: every mtime (and atime) becomes the layer's
/// whole-second, clamped mtime, and overlayfs bookkeeping xattrs (`origin`,
/// `impure`, ...) are removed; the opaque marker stays, as extraction writes
/// it. Everything else a layer records (content, modes, owners, links,
/// xattrs) the tree already has.
///
/// # Errors
///
/// [`LayerError::Io`] naming the path that cannot be changed.
pub fn normalize_as_extracted(
    root: &Path,
    entries: &[Entry],
    source_date_epoch: Option<i64>,
) -> Result<(), LayerError> {
    use std::os::unix::ffi::OsStrExt as _;
    for entry in entries {
        let host = root.join(std::ffi::OsStr::from_bytes(&entry.path));
        for name in xattr::list(&host).map_err(|e| LayerError::io(&host, e))? {
            let overlay = std::str::from_utf8(&name).is_ok_and(is_overlay_xattr);
            if overlay && !name.ends_with(b".overlay.opaque") {
                xattr::remove(&host, &name).map_err(|e| LayerError::io(&host, e))?;
            }
        }
        let mtime = source_date_epoch.map_or(entry.mtime, |epoch| entry.mtime.min(epoch));
        let time = rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &host,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| LayerError::io(&host, e.into()))?;
    }
    Ok(())
}

/// Reads the xattrs of `host`, sorted by name, without overlayfs ones; also
/// reports whether the overlay opaque marker (`y`) is set.
fn read_xattrs(host: &Path, rel: &BStr) -> Result<(Xattrs, bool), LayerError> {
    let names = xattr::list(host).map_err(|e| LayerError::io(host, e))?;
    let mut xattrs = Vec::with_capacity(names.len());
    let mut opaque = false;
    for raw in names {
        let Ok(name) = String::from_utf8(raw) else {
            return Err(LayerError::unsupported(
                rel,
                "xattr name is not valid UTF-8",
            ));
        };
        let value = xattr::get(host, name.as_bytes()).map_err(|e| LayerError::io(host, e))?;
        if is_overlay_xattr(&name) {
            let key = name
                .strip_prefix("trusted.overlay.")
                .or_else(|| name.strip_prefix("user.overlay."))
                .unwrap_or_default();
            if key == "opaque" {
                if value == b"y" {
                    opaque = true;
                } else {
                    return Err(LayerError::unsupported(
                        rel,
                        format!(
                            "overlay xattr `{name}` = {:?} (only `y` is supported)",
                            String::from_utf8_lossy(&value)
                        ),
                    ));
                }
            } else if UNSUPPORTED_OVERLAY_XATTRS.contains(&key) {
                return Err(LayerError::unsupported(
                    rel,
                    format!("overlay xattr `{name}` cannot be represented in a layer"),
                ));
            }
            continue;
        }
        xattrs.push((name, value));
    }
    xattrs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok((xattrs, opaque))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn links(root: &Path) -> Vec<(String, String)> {
        entries_from_dir(root)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EntryKind::Hardlink { target } => Some((e.path.to_string(), target.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_first_name_in_byte_order_is_the_file_whatever_was_made_first() {
        let tmp = tempfile::tempdir().unwrap();
        // `a.x` sorts before `a/y` (`.` < `/`), though a walk reaches `a/`
        // first: the writer orders paths by bytes, so the link target must too.
        let orders: [&[&str]; 2] = [&["a/y", "a.x", "b", "c"], &["c", "b", "a.x", "a/y"]];
        let mut seen = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let root = tmp.path().join(n.to_string());
            fs::create_dir_all(root.join("a")).unwrap();
            fs::write(root.join(order[0]), "x").unwrap();
            for name in &order[1..] {
                fs::hard_link(root.join(order[0]), root.join(name)).unwrap();
            }
            seen.push(links(&root));
        }
        let want: Vec<(String, String)> = ["a/y", "b", "c"]
            .iter()
            .map(|p| ((*p).to_owned(), "a.x".to_owned()))
            .collect();
        assert_eq!(seen[0], want);
        assert_eq!(seen[1], want);
    }

    #[test]
    fn a_single_name_left_of_a_linked_file_is_a_file() {
        // The other name is in a lower layer (or was deleted): nlink > 1,
        // but nothing in this tree to link to.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("upper");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("f"), "x").unwrap();
        fs::hard_link(root.join("f"), tmp.path().join("outside")).unwrap();
        let entries = entries_from_dir(&root).unwrap();
        assert!(matches!(entries[0].kind, EntryKind::File { .. }));
    }
}
