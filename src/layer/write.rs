//! Writing entries as a deterministic (compressed) layer tarball.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use bstr::{BStr, BString, ByteSlice};

use super::compress::{Compressor, HashWriter};
use super::entry::{check_layer_path, split_parent};
use super::{
    CompressionOptions, Entry, EntryKind, FileSource, LayerError, OPAQUE_MARKER, WHITEOUT_PREFIX,
    is_overlay_xattr,
};

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal ustar field (uid, gid, device numbers).
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal ustar field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77_777_777_777;
const NAME_FIELD: usize = 100;
const COPY_BUFFER: usize = 64 * 1024;

/// Options of [`write_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// How to compress the tar stream.
    pub compression: CompressionOptions,
    /// When set, every mtime later than this (seconds) is clamped to it.
    pub source_date_epoch: Option<i64>,
}

/// Result of writing a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// `sha256:<hex>` of the bytes written to the output.
    pub digest: String,
    /// Number of bytes written to the output.
    pub size: u64,
    /// Number of bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
}

/// What one tar record carries.
enum RecordKind<'a> {
    File(&'a FileSource, u64),
    Dir,
    Symlink(&'a BStr),
    Hardlink(&'a BStr),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
    /// An empty regular file of mode 0: a whiteout or the opaque marker.
    Marker,
}

/// One tar record: an entry may produce one (most kinds) or two (opaque dirs).
struct Record<'a> {
    /// Tar name without the trailing `/` of directories; the sort key.
    name: BString,
    entry: &'a Entry,
    kind: RecordKind<'a>,
}

/// Writes `entries` as a deterministic tar, compressed, to `out`: entries sorted by path (byte order) with parents before children; uid/gid/mode/xattrs kept; uname/gname empty; mtimes clamped to `source_date_epoch` when set; PAX headers for long names/links and for xattrs (`SCHILY.xattr.`); hardlinks as tar links; whiteouts as empty regular files `.wh.NAME` mode 0, opaque dirs as `DIR/.wh..wh..opq`; two calls with the same entries give byte-identical output (no atime/ctime/ustar device numbers for non-devices, fixed header format; make gzip headers deterministic: no mtime, no file name, OS byte fixed). Computes both digests while streaming (never buffers the whole layer).
///
/// Sorting is by the tar name of each record (so a whiteout `a/b` sorts as
/// `a/.wh.b`); byte order puts every directory before its contents. Entries
/// are validated first: canonical paths, no duplicates, no user entry named
/// `.wh.*`, no whiteout of a path this layer also adds, hardlinks pointing at an
/// earlier non-directory entry, modes within `0o7777`, no overlayfs xattrs.
/// Whiteout and opaque-marker records carry the entry's uid/gid/mtime, mode 0
/// and no xattrs.
///
/// # Errors
///
/// [`LayerError::Invalid`] for entries failing the checks above or a file
/// whose size changed, [`LayerError::Options`] for a bad compression level,
/// [`LayerError::Io`] when a source file cannot be read and
/// [`LayerError::Write`] when `out` fails.
pub fn write_layer(
    entries: &[Entry],
    options: &WriteOptions,
    out: impl Write,
) -> Result<WrittenLayer, LayerError> {
    let records = plan(entries)?;

    // Uncompressed, the output is the tar stream: its digest is the diff_id.
    let plain = options.compression.compression == super::Compression::None;
    let out = if plain {
        HashWriter::counting(out)
    } else {
        HashWriter::new(out)
    };
    let compressor = Compressor::new(&options.compression, out)?;
    let mut tar = BufWriter::with_capacity(COPY_BUFFER, HashWriter::new(compressor));
    let mut scratch = vec![0u8; COPY_BUFFER];
    for record in &records {
        write_record(&mut tar, record, options.source_date_epoch, &mut scratch)?;
    }
    // End of archive: two zero blocks.
    tar.write_all(&[0u8; 2 * BLOCK])
        .map_err(LayerError::Write)?;
    let hashed_tar = tar
        .into_inner()
        .map_err(|e| LayerError::Write(e.into_error()))?;
    let (compressor, diff_id, uncompressed_size) = hashed_tar.into_parts();
    let hashed_out = compressor.finish().map_err(LayerError::Write)?;
    let (mut out, digest, size) = hashed_out.into_parts();
    let digest = if plain { diff_id.clone() } else { digest };
    out.flush().map_err(LayerError::Write)?;
    Ok(WrittenLayer {
        diff_id,
        digest,
        size,
        uncompressed_size,
    })
}

/// Validates the entries and turns them into sorted tar records.
fn plan(entries: &[Entry]) -> Result<Vec<Record<'_>>, LayerError> {
    let mut added = BTreeSet::new();
    for entry in entries {
        validate_entry(entry)?;
        if entry.kind != EntryKind::Whiteout {
            added.insert(entry.path.as_bstr());
        }
    }

    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let (parent, base) = split_parent(&entry.path);
        let kind = match &entry.kind {
            EntryKind::File { source, size } => RecordKind::File(source, *size),
            EntryKind::Dir => RecordKind::Dir,
            EntryKind::Symlink { target } => RecordKind::Symlink(target.as_bstr()),
            EntryKind::Hardlink { target } => RecordKind::Hardlink(target.as_bstr()),
            EntryKind::CharDevice { major, minor } => RecordKind::CharDevice(*major, *minor),
            EntryKind::BlockDevice { major, minor } => RecordKind::BlockDevice(*major, *minor),
            EntryKind::Fifo => RecordKind::Fifo,
            EntryKind::Whiteout => {
                if added.contains(entry.path.as_bstr()) {
                    return Err(LayerError::invalid(
                        &entry.path,
                        "a whiteout of a path the same layer also adds",
                    ));
                }
                records.push(Record {
                    name: join(parent, &[WHITEOUT_PREFIX.as_bytes(), base].concat()),
                    entry,
                    kind: RecordKind::Marker,
                });
                continue;
            }
            EntryKind::OpaqueDir => {
                records.push(Record {
                    name: join(&entry.path, OPAQUE_MARKER.as_bytes()),
                    entry,
                    kind: RecordKind::Marker,
                });
                RecordKind::Dir
            }
        };
        records.push(Record {
            name: entry.path.clone(),
            entry,
            kind,
        });
    }
    records.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));

    let mut position: HashMap<&BStr, usize> = HashMap::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        if position.insert(record.name.as_bstr(), i).is_some() {
            return Err(LayerError::invalid(
                &record.entry.path,
                format!("duplicate layer path `{}`", record.name),
            ));
        }
    }
    for (i, record) in records.iter().enumerate() {
        if let RecordKind::Hardlink(target) = record.kind {
            let Some(&t) = position.get(target) else {
                return Err(LayerError::invalid(
                    &record.entry.path,
                    format!("hardlink target `{target}` is not an entry of this layer"),
                ));
            };
            if t >= i {
                return Err(LayerError::invalid(
                    &record.entry.path,
                    format!("hardlink target `{target}` must sort before the link"),
                ));
            }
            match records[t].kind {
                RecordKind::Dir | RecordKind::Marker | RecordKind::Hardlink(_) => {
                    return Err(LayerError::invalid(
                        &record.entry.path,
                        format!(
                            "hardlink target `{target}` is a directory, whiteout or another hardlink"
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(records)
}

fn join(parent: &[u8], name: &[u8]) -> BString {
    if parent.is_empty() {
        name.into()
    } else {
        [parent, b"/", name].concat().into()
    }
}

fn validate_entry(entry: &Entry) -> Result<(), LayerError> {
    let path = &entry.path;
    check_layer_path(path).map_err(|reason| LayerError::invalid(path, reason))?;
    let (_, base) = split_parent(path);
    if base.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        return Err(LayerError::invalid(
            path,
            "names starting with `.wh.` are reserved for whiteouts",
        ));
    }
    if entry.mode & !0o7777 != 0 {
        return Err(LayerError::invalid(
            path,
            format!(
                "mode {:#o} has bits outside the permission bits 0o7777",
                entry.mode
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (name, _) in &entry.xattrs {
        if name.is_empty() || name.contains(['\0', '=']) {
            return Err(LayerError::invalid(
                path,
                format!("invalid xattr name {name:?}"),
            ));
        }
        if is_overlay_xattr(name) {
            return Err(LayerError::invalid(
                path,
                format!("overlayfs xattr `{name}` cannot be stored in a layer"),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(LayerError::invalid(
                path,
                format!("duplicate xattr `{name}`"),
            ));
        }
    }
    match &entry.kind {
        EntryKind::Symlink { target } if target.is_empty() || target.contains(&0) => {
            return Err(LayerError::invalid(
                path,
                "symlink target is empty or contains NUL",
            ));
        }
        EntryKind::Hardlink { target } => {
            check_layer_path(target).map_err(|reason| {
                LayerError::invalid(path, format!("hardlink target `{target}`: {reason}"))
            })?;
        }
        EntryKind::File {
            source: FileSource::Bytes(bytes),
            size,
        } if bytes.len() as u64 != *size => {
            return Err(LayerError::invalid(
                path,
                format!("size {size} but {} bytes of contents", bytes.len()),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Writes one record (with its PAX header when needed) and its data.
fn write_record(
    tar: &mut impl Write,
    record: &Record<'_>,
    source_date_epoch: Option<i64>,
    scratch: &mut [u8],
) -> Result<(), LayerError> {
    let entry = record.entry;
    let mut header = tar::Header::new_ustar();
    let mut pax = Vec::new();

    let mut name = record.name.clone();
    if matches!(record.kind, RecordKind::Dir) {
        name.push(b'/');
    }
    if name.len() > NAME_FIELD {
        pax_record(&mut pax, "path", name.as_bytes());
    }
    copy_truncated(&mut header.as_old_mut().name, name.as_bytes());

    let (entry_type, size, link) = match record.kind {
        RecordKind::File(_, size) => (tar::EntryType::Regular, size, None),
        RecordKind::Dir => (tar::EntryType::Directory, 0, None),
        RecordKind::Symlink(target) => (tar::EntryType::Symlink, 0, Some(target)),
        RecordKind::Hardlink(target) => (tar::EntryType::Link, 0, Some(target)),
        RecordKind::CharDevice(..) => (tar::EntryType::Char, 0, None),
        RecordKind::BlockDevice(..) => (tar::EntryType::Block, 0, None),
        RecordKind::Fifo => (tar::EntryType::Fifo, 0, None),
        RecordKind::Marker => (tar::EntryType::Regular, 0, None),
    };
    header.set_entry_type(entry_type);
    if let Some(link) = link {
        if link.len() > NAME_FIELD {
            pax_record(&mut pax, "linkpath", link.as_bytes());
        }
        copy_truncated(&mut header.as_old_mut().linkname, link.as_bytes());
    }

    let mode = if matches!(record.kind, RecordKind::Marker) {
        0
    } else {
        entry.mode
    };
    header.set_mode(mode);

    if size > MAX_OCTAL_12 {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    header.set_size(size);

    for (key, id) in [("uid", entry.uid), ("gid", entry.gid)] {
        if u64::from(id) > MAX_OCTAL_8 {
            pax_record(&mut pax, key, id.to_string().as_bytes());
        }
    }
    header.set_uid(u64::from(entry.uid));
    header.set_gid(u64::from(entry.gid));

    let mtime = source_date_epoch.map_or(entry.mtime, |epoch| entry.mtime.min(epoch));
    match u64::try_from(mtime) {
        Ok(m) if m <= MAX_OCTAL_12 => header.set_mtime(m),
        _ => {
            pax_record(&mut pax, "mtime", mtime.to_string().as_bytes());
            header.set_mtime(u64::try_from(mtime).unwrap_or(0));
        }
    }

    if let RecordKind::CharDevice(major, minor) | RecordKind::BlockDevice(major, minor) =
        record.kind
    {
        if u64::from(major) > MAX_OCTAL_8 || u64::from(minor) > MAX_OCTAL_8 {
            return Err(LayerError::invalid(
                &entry.path,
                format!("device number {major}:{minor} does not fit a tar header"),
            ));
        }
        header
            .set_device_major(major)
            .and_then(|()| header.set_device_minor(minor))
            .map_err(|e| LayerError::invalid(&entry.path, e.to_string()))?;
    }

    if !matches!(record.kind, RecordKind::Marker) {
        let mut xattrs: Vec<&(String, Vec<u8>)> = entry.xattrs.iter().collect();
        xattrs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (key, value) in xattrs {
            pax_record(&mut pax, &format!("SCHILY.xattr.{key}"), value);
        }
    }
    header.set_cksum();

    if !pax.is_empty() {
        write_pax_header(tar, &record.name, &pax)?;
    }
    tar.write_all(header.as_bytes())
        .map_err(LayerError::Write)?;

    if let RecordKind::File(source, size) = record.kind {
        write_contents(tar, &entry.path, source, size, scratch)?;
        pad(tar, size)?;
    }
    Ok(())
}

/// Writes a PAX extended header (`x`) with fixed metadata and a Go-style name.
fn write_pax_header(tar: &mut impl Write, name: &[u8], records: &[u8]) -> Result<(), LayerError> {
    let (parent, base) = split_parent(name);
    let pax_name = join(parent, &[b"PaxHeaders.0/", base].concat());
    let mut header = tar::Header::new_ustar();
    copy_truncated(&mut header.as_old_mut().name, pax_name.as_bytes());
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(records.len() as u64);
    header.set_cksum();
    tar.write_all(header.as_bytes())
        .and_then(|()| tar.write_all(records))
        .map_err(LayerError::Write)?;
    pad(tar, records.len() as u64)
}

/// Appends one `LEN key=value\n` PAX record; LEN counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    loop {
        let total = base + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn pad(tar: &mut impl Write, len: u64) -> Result<(), LayerError> {
    let rem = len % BLOCK as u64;
    if rem != 0 {
        let rem = usize::try_from(rem).expect("below the block size");
        tar.write_all(&[0u8; BLOCK][..BLOCK - rem])
            .map_err(LayerError::Write)?;
    }
    Ok(())
}

/// Streams exactly `size` bytes of file contents, failing if the source has a
/// different length (e.g. it changed since the entry was made).
fn write_contents(
    tar: &mut impl Write,
    layer_path: &[u8],
    source: &FileSource,
    size: u64,
    scratch: &mut [u8],
) -> Result<(), LayerError> {
    match source {
        FileSource::Bytes(bytes) => tar.write_all(bytes).map_err(LayerError::Write),
        FileSource::Path(path) => {
            // Never through a symlink: a source swapped for one after it was
            // chosen must not bring another file into the layer.
            let mut file = File::from(
                rustix::fs::open(
                    path,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| LayerError::io(path, e.into()))?,
            );
            let mut remaining = size;
            loop {
                let want = scratch
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                // Read one byte past the end to detect a file that grew.
                let want = if want == 0 { 1 } else { want };
                let n = match file.read(&mut scratch[..want]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(LayerError::io(path, e)),
                };
                if n == 0 && remaining == 0 {
                    return Ok(());
                }
                if n == 0 || remaining == 0 {
                    return Err(LayerError::invalid(
                        layer_path,
                        format!(
                            "{} changed size while being written (expected {size} bytes)",
                            path.display()
                        ),
                    ));
                }
                tar.write_all(&scratch[..n]).map_err(LayerError::Write)?;
                remaining -= n as u64;
            }
        }
    }
}
