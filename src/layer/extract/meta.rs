//! What extraction reads of a tar entry: its name split into parent and
//! file name, and its metadata (owner, mode, times, extended attributes,
//! PAX records).

use std::io::{self, Read};

use rustix::fs::Timespec;

use crate::layer::{LayerError, is_overlay_xattr};

/// Metadata of one tar entry that is applied to what it creates.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(String, Vec<u8>)>,
}

/// Splits a tar name into its components, dropping a leading `/` and empty or
/// `.` components; a `..` component is refused.
pub(super) fn split_name<'n>(name: &'n [u8], display: &str) -> Result<Vec<&'n [u8]>, LayerError> {
    let mut components = Vec::new();
    for component in name.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                return Err(LayerError::unsafe_entry(
                    display,
                    "path has a `..` component",
                ));
            }
            c => components.push(c),
        }
    }
    Ok(components)
}

pub(super) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    display: &str,
) -> Result<Meta, LayerError> {
    let header = entry.header();
    let old = header.as_old();
    let mode = or_zero(&old.mode, header.mode().map(u64::from))? & 0o7777;
    let mode = u32::try_from(mode).expect("masked to 0o7777");
    let id = |field: &[u8], v: io::Result<u64>, what: &str| -> Result<u32, LayerError> {
        let v = or_zero(field, v)?;
        u32::try_from(v)
            .map_err(|_| LayerError::unsupported(display, format!("{what} {v} is too large")))
    };
    let uid = id(&old.uid, header.uid(), "uid")?;
    let gid = id(&old.gid, header.gid(), "gid")?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(or_zero(&old.mtime, header.mtime())?).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions().map_err(LayerError::Tar)? {
        for ext in extensions {
            let ext = ext.map_err(LayerError::Tar)?;
            let Ok(key) = ext.key() else {
                continue;
            };
            if key == "mtime" {
                if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                    mtime = t;
                }
            } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if is_overlay_xattr(name) {
                    return Err(LayerError::unsafe_entry(
                        display,
                        format!("overlayfs xattr `{name}` is not allowed in a layer"),
                    ));
                }
                xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// A numeric header field's value, where a blank field (all NUL or spaces,
/// as some writers leave it) counts as 0.
pub(super) fn or_zero(field: &[u8], parsed: io::Result<u64>) -> Result<u64, LayerError> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        Ok(0)
    } else {
        parsed.map_err(LayerError::Tar)
    }
}

/// Parses a PAX time (`-12`, `1700000000.5`) into a timespec.
pub(super) fn parse_pax_time(value: &str) -> Option<Timespec> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let seconds: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for _ in digits.len()..9 {
        nanos *= 10;
    }
    if seconds < 0 && nanos > 0 {
        // `-1.5` means 1.5 s before the epoch.
        return Some(Timespec {
            tv_sec: seconds - 1,
            tv_nsec: 1_000_000_000 - nanos,
        });
    }
    Some(Timespec {
        tv_sec: seconds,
        tv_nsec: nanos,
    })
}
