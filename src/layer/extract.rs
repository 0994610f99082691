//! Safe extraction of layers onto a root directory, applying whiteouts.

mod meta;

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
use sha2::{Digest as _, Sha256};

use super::compress::{decompressing_reader, sha256_digest_string};
use super::{LayerError, OPAQUE_MARKER, WHITEOUT_PREFIX, xattr};
use crate::store::SparseWriter;
use meta::{Meta, read_meta, split_name};

/// Symlinks followed while resolving one path before giving up (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Free space is measured again after this many bytes were written.
const SPACE_CHECK_EVERY: u64 = 32 << 20;
/// Extraction keeps 1% of the filesystem free, at least this much...
const MIN_RESERVE: u64 = 4 << 20;
/// ... and at most this much.
const MAX_RESERVE: u64 = 256 << 20;

/// Options for extraction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtractOptions {
    /// Chown entries to the uid/gid of the layer and create device nodes
    /// (needs root); `false` leaves ownership as the current user and skips
    /// device nodes.
    pub preserve_ownership: bool,
    /// Write whiteouts the way overlayfs stores them (a `0:0` character
    /// device for `.wh.NAME`, the `trusted.overlay.opaque=y` xattr for an
    /// opaque directory) instead of applying them, so the result can be an
    /// overlay lowerdir. For extracting one layer into an empty directory.
    pub overlay_whiteouts: bool,
    /// The most bytes the uncompressed tar stream may have: reading stops
    /// with [`LayerError::TooLarge`] as soon as it has more (a gzip bomb
    /// expands no further). `None`: no bound.
    pub max_size: Option<MaxSize>,
    /// The `sha256:<hex>` digest the uncompressed tar stream must have (the
    /// image config's `diff_id`); checked at the end of the stream, a
    /// mismatch is [`LayerError::DiffIdMismatch`].
    pub diff_id: Option<String>,
    /// Bytes of free space extraction needs before it starts (e.g. the
    /// blob's size): less is [`LayerError::NoSpace`] before anything is
    /// written.
    pub space_needed: u64,
}

/// A bound on the uncompressed size of a layer, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSize {
    /// The most bytes allowed.
    pub bytes: u64,
    /// Whether the layer itself declares this size (an uncompressed blob's
    /// size, an `io.containers.estargz.uncompressed-size` annotation)
    /// rather than a configured limit.
    pub declared: bool,
}

/// Statistics of one extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extracted {
    /// Entries applied (files, dirs, links, devices, fifos); whiteouts not included.
    pub entries: usize,
    /// Whiteout and opaque markers applied.
    pub whiteouts: usize,
    /// Device nodes skipped because `preserve_ownership` was false.
    pub skipped_devices: usize,
}

/// Extracts a layer (compression auto-detected from the first bytes) onto `root`, applying whiteouts (`.wh.NAME` removes NAME from what is already there; `.wh..wh..opq` empties the directory of what lower layers put there, keeping what this layer adds) and never writing outside `root`:
/// - an entry path with a `..` component or an absolute path that would escape is refused: `LayerError::Unsafe { path, reason }` with a message that names the entry;
/// - parent directories are resolved inside root (symlinks followed as if root were `/`, absolute targets re-rooted, `..` clamped at root); a symlink in a parent whose resolution leaves the root is refused as Unsafe; the final path component is never followed (an existing symlink there is replaced, not written through);
/// - hardlink targets must resolve inside root;
/// - device nodes are created only when `preserve_ownership` (root); modes, mtimes, xattrs applied; directories' mtimes set after their contents.
///
/// Precisely: any `..` component in an entry name or hardlink target is
/// refused, and a leading `/` is dropped (the name is taken relative to root).
/// While resolving parents, a `..` that comes from an absolute symlink target
/// stops at root (as `/..` does), while a `..` from a relative symlink target
/// that would climb above root is refused. Missing parents are created
/// (mode 0755). Whiteouts only hide what lower layers put there: paths this
/// layer adds (and their ancestors) survive. Overlayfs xattrs
/// (`trusted.overlay.*`, `user.overlay.*`) in a layer are refused as Unsafe.
/// A root entry (`./`) is skipped. `root` is created if missing.
///
/// # Errors
///
/// [`LayerError::Unsafe`] for entries that would escape `root` (nothing of
/// that entry is written; earlier entries stay extracted),
/// [`LayerError::Tar`] for a malformed or truncated stream,
/// [`LayerError::Unsupported`] for entry types it cannot create (GNU
/// sparse entries), [`LayerError::TooLarge`] past `max_size`,
/// [`LayerError::DiffIdMismatch`] when the stream is not `diff_id`,
/// [`LayerError::NoSpace`] when the filesystem of `root` runs short of
/// free space (1% of it, at least 4 MiB and at most 256 MiB, stay free)
/// and [`LayerError::Io`] for filesystem failures. What was extracted
/// before the error stays: extract into a temp directory that the caller
/// removes on failure.
///
/// Regular files are written sparse: aligned 4 KiB blocks of zeros become
/// holes, so a sparse file in a layer takes no more disk than it did where
/// it came from.
pub fn extract_layer(
    layer: impl Read,
    root: &Path,
    options: &ExtractOptions,
) -> Result<Extracted, LayerError> {
    fs::create_dir_all(root).map_err(|e| LayerError::io(root, e))?;
    let space = Space::measure(root, options.space_needed)?;
    let meter = Meter {
        inner: decompressing_reader(layer)?,
        count: 0,
        max: options.max_size,
        hasher: options.diff_id.as_ref().map(|_| Sha256::new()),
    };
    let mut archive = tar::Archive::new(meter);
    let mut extractor = Extractor {
        root,
        options: options.clone(),
        added: HashSet::new(),
        dirs: BTreeMap::new(),
        stats: Extracted::default(),
        space,
    };
    let applied = (|| {
        for entry in archive.entries().map_err(LayerError::Tar)? {
            let mut entry = entry.map_err(LayerError::Tar)?;
            extractor.apply(&mut entry)?;
        }
        Ok(())
    })();
    let mut meter = archive.into_inner();
    // An error reading past the bound is the bound's.
    meter.check()?;
    applied?;
    // What follows the end-of-archive blocks (padding) is in the diff_id too.
    io::copy(&mut meter, &mut io::sink())
        .map_err(LayerError::Tar)
        .and_then(|_| meter.check())?;
    if let (Some(expected), Some(hasher)) = (&options.diff_id, meter.hasher.take()) {
        let actual = sha256_digest_string(hasher);
        if actual != *expected {
            return Err(LayerError::DiffIdMismatch {
                expected: expected.clone(),
                actual,
            });
        }
    }
    extractor.finish_dirs()?;
    Ok(extractor.stats)
}

/// The uncompressed tar stream: counted against the bound, and hashed when
/// a `diff_id` is expected.
struct Meter<R> {
    inner: R,
    count: u64,
    max: Option<MaxSize>,
    hasher: Option<Sha256>,
}

impl<R> Meter<R> {
    /// [`LayerError::TooLarge`] once more than the bound was read.
    fn check(&self) -> Result<(), LayerError> {
        match self.max {
            Some(max) if self.count > max.bytes => Err(LayerError::TooLarge {
                limit: max.bytes,
                declared: max.declared,
            }),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(max) = self.max
            && self.count > max.bytes
        {
            return Err(io::Error::other("the layer is larger than allowed"));
        }
        // Never ask for more than one byte past the bound.
        let len = match self.max {
            Some(max) => buf
                .len()
                .min(usize::try_from(max.bytes - self.count + 1).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..len])?;
        self.count += n as u64;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        if let Some(max) = self.max
            && self.count > max.bytes
        {
            return Err(io::Error::other("the layer is larger than allowed"));
        }
        Ok(n)
    }
}

/// Free space on the filesystem being extracted to, measured now and then.
struct Space {
    /// A path on that filesystem.
    root: PathBuf,
    /// What must stay free.
    reserve: u64,
    /// Free bytes (for unprivileged users) at the last measurement.
    free: u64,
    /// Free bytes when extraction started.
    free_at_start: u64,
    /// Bytes written since the last measurement.
    since: u64,
    /// Bytes written in all.
    written: u64,
}

impl Space {
    /// Measures free space on `root`'s filesystem and refuses to start when
    /// `needed` bytes would not leave the reserve free.
    fn measure(root: &Path, needed: u64) -> Result<Space, LayerError> {
        let (free, total) = free_space(root)?;
        let reserve = (total / 100).clamp(MIN_RESERVE, MAX_RESERVE);
        let space = Space {
            root: root.to_owned(),
            reserve,
            free,
            free_at_start: free,
            since: 0,
            written: 0,
        };
        if needed.saturating_add(reserve) > free {
            return Err(space.no_space(needed));
        }
        Ok(space)
    }

    fn no_space(&self, needed: u64) -> LayerError {
        LayerError::NoSpace {
            path: self.root.clone(),
            needed,
            available: self.free_at_start,
            reserve: self.reserve,
        }
    }

    /// Counts `n` more bytes written; measures again every
    /// [`SPACE_CHECK_EVERY`] bytes, and whenever the estimate gets near
    /// the reserve, and fails when free space fell below it.
    fn charge(&mut self, n: u64) -> Result<(), LayerError> {
        self.since += n;
        self.written += n;
        if self.since < SPACE_CHECK_EVERY && self.since + self.reserve < self.free {
            return Ok(());
        }
        self.free = free_space(&self.root)?.0;
        self.since = 0;
        if self.free < self.reserve {
            return Err(self.no_space(self.written));
        }
        Ok(())
    }

    /// The error for a write that failed: [`LayerError::NoSpace`] when the
    /// filesystem is full.
    fn write_error(&self, host: &Path, e: io::Error) -> LayerError {
        if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            self.no_space(self.written)
        } else {
            LayerError::io(host, e)
        }
    }
}

/// Free bytes (those unprivileged users may use) and total bytes of the
/// filesystem holding `path`.
fn free_space(path: &Path) -> Result<(u64, u64), LayerError> {
    let stat = rustix::fs::statvfs(path).map_err(|e| {
        LayerError::io(
            path,
            io::Error::new(
                io::Error::from(e).kind(),
                format!("measuring free space: {e}"),
            ),
        )
    })?;
    Ok((
        stat.f_bavail.saturating_mul(stat.f_frsize),
        stat.f_blocks.saturating_mul(stat.f_frsize),
    ))
}

struct Extractor<'a> {
    root: &'a Path,
    options: ExtractOptions,
    /// Root-relative resolved paths this layer created or touched, with all
    /// their ancestors: whiteouts and opaque markers never remove these.
    added: HashSet<PathBuf>,
    /// Directories whose mode and mtime are applied once everything is extracted.
    dirs: BTreeMap<PathBuf, (u32, Timespec)>,
    stats: Extracted,
    space: Space,
}

impl Extractor<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let entry_type = entry.header().entry_type();
        if matches!(
            entry_type,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_name).into_owned();
        let mut components = split_name(&raw_name, &display)?;
        let Some(base) = components.pop() else {
            return Ok(()); // the root directory itself
        };

        if base == OPAQUE_MARKER.as_bytes() {
            let dir = self
                .resolve_dir(&components, &display, true)?
                .expect("created");
            self.mark_added(&dir);
            if self.options.overlay_whiteouts {
                let host = self.root.join(&dir);
                xattr::set(&host, "trusted.overlay.opaque", b"y")
                    .map_err(|e| LayerError::io(&host, e))?;
                self.stats.whiteouts += 1;
                return Ok(());
            }
            self.purge(&dir)?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if let Some(name) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if name.is_empty() || name == b"." || name == b".." {
                return Err(LayerError::unsafe_entry(
                    display,
                    "whiteout does not name a file",
                ));
            }
            if self.options.overlay_whiteouts {
                let parent = self
                    .resolve_dir(&components, &display, true)?
                    .expect("created");
                let host = self.root.join(parent.join(OsStr::from_bytes(name)));
                remove_existing(&host)?;
                rustix::fs::mknodat(
                    CWD,
                    &host,
                    rustix::fs::FileType::CharacterDevice,
                    Mode::from_raw_mode(0),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| LayerError::io(&host, e.into()))?;
            } else if let Some(parent) = self.resolve_dir(&components, &display, false)? {
                self.whiteout(&parent.join(OsStr::from_bytes(name)))?;
            }
            self.stats.whiteouts += 1;
            return Ok(());
        }

        let meta = read_meta(entry, &display)?;
        let parent = self
            .resolve_dir(&components, &display, true)?
            .expect("created");
        let rel = parent.join(OsStr::from_bytes(base));

        if self.create_node(entry, &rel, &meta, &display)? {
            self.mark_added(&rel);
            self.stats.entries += 1;
        }
        Ok(())
    }

    /// Creates the node of a non-whiteout entry at root-relative `rel` (whose
    /// parent is resolved); returns false when it was skipped (a device
    /// without `preserve_ownership`).
    fn create_node<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        meta: &Meta,
        display: &str,
    ) -> Result<bool, LayerError> {
        let host = self.root.join(rel);
        let entry_type = entry.header().entry_type();
        match entry_type {
            tar::EntryType::Directory => {
                self.make_dir(&host, meta)?;
                self.dirs.insert(rel.to_path_buf(), (meta.mode, meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&host)?;
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&host)
                    .map_err(|e| LayerError::io(&host, e))?;
                copy_data(entry, SparseWriter::new(file), &host, &mut self.space)?;
                self.finish_node(&host, meta, true)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::unsupported(display, "symlink without a target"))?;
                remove_existing(&host)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &host)
                    .map_err(|e| LayerError::io(&host, e))?;
                self.finish_node(&host, meta, false)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::unsupported(display, "hardlink without a target"))?;
                self.hardlink(&target, &host, display)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match entry_type {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if file_type != FileType::Fifo && !self.options.preserve_ownership {
                    self.stats.skipped_devices += 1;
                    return Ok(false);
                }
                let header = entry.header();
                let dev = if file_type == FileType::Fifo {
                    0
                } else {
                    let major = header.device_major().ok().flatten().unwrap_or(0);
                    let minor = header.device_minor().ok().flatten().unwrap_or(0);
                    rustix::fs::makedev(major, minor)
                };
                remove_existing(&host)?;
                rustix::fs::mknodat(CWD, &host, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| LayerError::io(&host, e.into()))?;
                self.finish_node(&host, meta, true)?;
            }
            other => {
                return Err(LayerError::unsupported(
                    display,
                    format!("tar entry type {other:?}"),
                ));
            }
        }
        Ok(true)
    }

    /// Resolves a directory path inside root, following symlinks with root as
    /// `/`. Missing components are created when `create`, else `None` is
    /// returned. The result is root-relative and made of real directories.
    fn resolve_dir(
        &mut self,
        components: &[&[u8]],
        display: &str,
        create: bool,
    ) -> Result<Option<PathBuf>, LayerError> {
        // Pending components, next one last; the flag marks components of an
        // absolute symlink target, whose `..` stops at root instead of failing.
        let mut pending: Vec<(Vec<u8>, bool)> = components
            .iter()
            .rev()
            .map(|c| (c.to_vec(), false))
            .collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some((component, from_absolute)) = pending.pop() {
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if resolved.pop().is_none() && !from_absolute {
                        return Err(LayerError::unsafe_entry(
                            display,
                            "a symlink in its parent directories points outside the root",
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let name = OsStr::from_bytes(&component);
            let rel: PathBuf = resolved
                .iter()
                .map(OsString::as_os_str)
                .chain([name])
                .collect();
            let host = self.root.join(&rel);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => resolved.push(name.to_owned()),
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(LayerError::unsafe_entry(
                            display,
                            "too many levels of symbolic links in its parent directories",
                        ));
                    }
                    let target = fs::read_link(&host).map_err(|e| LayerError::io(&host, e))?;
                    let target = target.as_os_str().as_bytes();
                    let absolute = target.starts_with(b"/");
                    if absolute {
                        resolved.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        pending.push((part.to_vec(), absolute));
                    }
                }
                Ok(_) => {
                    return Err(LayerError::io(
                        host,
                        io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("parent of layer entry `{display}` is not a directory"),
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    fs::create_dir(&host).map_err(|e| LayerError::io(&host, e))?;
                    set_mode(&host, 0o755)?;
                    self.mark_added(&rel);
                    resolved.push(name.to_owned());
                }
                Err(e) => return Err(LayerError::io(host, e)),
            }
        }
        Ok(Some(resolved.into_iter().collect()))
    }

    /// Records `rel` and its ancestors as part of this layer.
    fn mark_added(&mut self, rel: &Path) {
        for ancestor in rel.ancestors() {
            if ancestor.as_os_str().is_empty() || !self.added.insert(ancestor.to_path_buf()) {
                break;
            }
        }
    }

    /// Applies `.wh.NAME`: removes `rel` unless this layer added it, in which
    /// case only what lower layers left below it goes.
    fn whiteout(&mut self, rel: &Path) -> Result<(), LayerError> {
        if self.added.contains(rel) {
            let host = self.root.join(rel);
            if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                self.purge(rel)?;
            }
            Ok(())
        } else {
            remove_existing(&self.root.join(rel))
        }
    }

    /// Removes everything under directory `rel` that this layer did not add.
    fn purge(&self, rel: &Path) -> Result<(), LayerError> {
        let host = self.root.join(rel);
        let children = fs::read_dir(&host).map_err(|e| LayerError::io(&host, e))?;
        for child in children {
            let child = child.map_err(|e| LayerError::io(&host, e))?;
            let child_rel = rel.join(child.file_name());
            if self.added.contains(&child_rel) {
                let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    self.purge(&child_rel)?;
                }
            } else {
                remove_existing(&child.path())?;
            }
        }
        Ok(())
    }

    fn make_dir(&self, host: &Path, meta: &Meta) -> Result<(), LayerError> {
        let existing = fs::symlink_metadata(host);
        if !existing.as_ref().is_ok_and(fs::Metadata::is_dir) {
            remove_existing(host)?;
            fs::create_dir(host).map_err(|e| LayerError::io(host, e))?;
            set_mode(host, 0o700)?;
        }
        self.chown(host, meta)?;
        apply_xattrs(host, &meta.xattrs)
    }

    /// Ownership, mode, xattrs and mtime of a freshly created non-directory.
    fn finish_node(&self, host: &Path, meta: &Meta, chmod: bool) -> Result<(), LayerError> {
        // chown clears setuid/setgid, so the mode comes after it.
        self.chown(host, meta)?;
        if chmod {
            set_mode(host, meta.mode)?;
        }
        apply_xattrs(host, &meta.xattrs)?;
        set_mtime(host, meta.mtime)
    }

    fn chown(&self, host: &Path, meta: &Meta) -> Result<(), LayerError> {
        if self.options.preserve_ownership {
            std::os::unix::fs::lchown(host, Some(meta.uid), Some(meta.gid))
                .map_err(|e| LayerError::io(host, e))?;
        }
        Ok(())
    }

    fn hardlink(&mut self, target: &[u8], host: &Path, display: &str) -> Result<(), LayerError> {
        let target_display = String::from_utf8_lossy(target);
        let mut components = split_name(target, display).map_err(|_| {
            LayerError::unsafe_entry(
                display,
                format!("hardlink target `{target_display}` has a `..` component"),
            )
        })?;
        let Some(base) = components.pop() else {
            return Err(LayerError::unsafe_entry(
                display,
                "hardlink target is the root directory",
            ));
        };
        let missing = || {
            LayerError::io(
                host,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("hardlink target `{target_display}` of `{display}` does not exist"),
                ),
            )
        };
        let parent = self
            .resolve_dir(&components, display, false)?
            .ok_or_else(missing)?;
        let target_host = self.root.join(parent.join(OsStr::from_bytes(base)));
        match fs::symlink_metadata(&target_host) {
            Ok(m) if m.is_dir() => {
                return Err(LayerError::unsupported(
                    display,
                    format!("hardlink to directory `{target_display}`"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(LayerError::io(target_host, e)),
        }
        if target_host == host {
            return Ok(());
        }
        remove_existing(host)?;
        fs::hard_link(&target_host, host).map_err(|e| LayerError::io(host, e))
    }

    /// Applies the deferred modes and mtimes of directories.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        for (rel, (mode, mtime)) in &self.dirs {
            let host = self.root.join(rel);
            // Skip directories that a later entry replaced or whited out.
            if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                set_mode(&host, *mode)?;
                set_mtime(&host, *mtime)?;
            }
        }
        Ok(())
    }
}

/// Removes whatever is at `host` (never following a symlink); missing is fine.
fn remove_existing(host: &Path) -> Result<(), LayerError> {
    let result = match fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(host),
        Ok(_) => fs::remove_file(host),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| LayerError::io(host, e))
}

/// Copies an entry's data into a new file, leaving holes for zero blocks
/// and counting what takes disk space.
fn copy_data(
    reader: &mut impl Read,
    mut file: SparseWriter,
    host: &Path,
    space: &mut Space,
) -> Result<(), LayerError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut charged = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LayerError::Tar(e)),
        };
        file.write_all(&buf[..n])
            .map_err(|e| space.write_error(host, e))?;
        space.charge(file.data_written() - charged)?;
        charged = file.data_written();
    }
    // The last partial block (at most 4 KiB) is not worth counting.
    file.finish().map_err(|e| space.write_error(host, e))?;
    Ok(())
}

/// chmod; only ever called on paths known not to be symlinks.
fn set_mode(host: &Path, mode: u32) -> Result<(), LayerError> {
    fs::set_permissions(host, Permissions::from_mode(mode)).map_err(|e| LayerError::io(host, e))
}

fn set_mtime(host: &Path, mtime: Timespec) -> Result<(), LayerError> {
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rustix::fs::utimensat(CWD, host, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| LayerError::io(host, e.into()))
}

fn apply_xattrs(host: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<(), LayerError> {
    for (name, value) in xattrs {
        xattr::set(host, name, value).map_err(|e| {
            LayerError::io(
                host,
                io::Error::new(e.kind(), format!("setting xattr `{name}`: {e}")),
            )
        })?;
    }
    Ok(())
}
