//! `copy`, `add` and `file` steps: which files land where, with which
//! owner and mode, as Docker's COPY and ADD decide it. The result is a list
//! of layer entries; [`crate::layer`] turns it into a layer.
//!
//! Rules (Docker's): a directory source copies its contents; wildcards
//! follow Go's `filepath.Match`; several sources, or a wildcard, need a
//! destination directory ending in `/`; a destination that ends in `/` or
//! is a directory in the image receives sources by name; a symlink named as
//! a source is followed, symlinks inside a copied directory are copied as
//! links; files from the context belong to root unless `chown` says
//! otherwise, files from a stage keep their owner; `add` unpacks local tar
//! archives (plain, gzip or zstd) into the destination.

mod fetch;
pub mod git;
pub mod glob;
mod links;
pub mod owner;
mod staged;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bstr::{BStr, BString, ByteSlice};

use crate::context::PatternMatcher;
use crate::layer::{self, Entry, EntryKind, FileSource};
use links::Inode;
use owner::{ModeSpec, Owner, resolve_owner};
use staged::Layer;

/// Why a copy could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source matched nothing.
    #[error("`{source_path}` not found in {place}")]
    NotFound {
        /// The source as written.
        source_path: String,
        /// "the build context" or "stage X".
        place: String,
    },
    /// Several sources need a directory destination.
    #[error("copying several files needs a destination directory ending in `/`, not `{0}`")]
    DestinationNotDirectory(String),
    /// A `chown` value could not be resolved.
    #[error("cannot resolve owner `{spec}`: {why}")]
    Owner {
        /// The value as written.
        spec: String,
        /// Why.
        why: String,
    },
    /// A `chmod` value is malformed.
    #[error("invalid mode `{0}`: write octal digits like 0755 or a symbolic mode like u+x,go-w")]
    Mode(String),
    /// A wildcard is malformed.
    #[error(transparent)]
    Pattern(#[from] glob::BadPattern),
    /// An exclude pattern is malformed.
    #[error("invalid exclude pattern: {0}")]
    Exclude(String),
    /// A source path leaves its root.
    #[error("source `{0}` points outside its root")]
    OutsideRoot(String),
    /// A source meets a loop of symlinks.
    #[error("source `{0}` meets too many levels of symbolic links")]
    SymlinkLoop(String),
    /// A source is a symlink to a path its root does not have.
    #[error(
        "`{link}` is a symlink to `{target}`, which is not in {place}: symlinks are followed inside it, never out of it"
    )]
    LinkTargetMissing {
        /// The symlink, as the step reaches it.
        link: String,
        /// Its target, as stored.
        target: String,
        /// "the build context" or "stage X".
        place: String,
    },
    /// A URL could not be fetched.
    #[error("cannot fetch `{url}`: {why}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// A fetched file is not what `checksum` says.
    #[error("`{url}` has checksum {actual}, but the step expects {expected}")]
    Checksum {
        /// The URL.
        url: String,
        /// The step's checksum.
        expected: String,
        /// What was downloaded.
        actual: String,
    },
    /// A Git repository could not be checked out, or its URL is malformed.
    #[error("cannot add the Git repository `{url}`: {why}")]
    Git {
        /// The URL as written.
        url: String,
        /// Why.
        why: String,
    },
    /// `copy` of a URL or Git repository, which only `add` fetches.
    #[error("source can't be a {what} for COPY: `{source_path}`")]
    RemoteInCopy {
        /// "URL" or "git ref", `BuildKit`'s words.
        what: &'static str,
        /// The source.
        source_path: String,
    },
    /// Reading a source failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Unpacking an archive failed.
    #[error("cannot unpack `{path}`: {source}")]
    Unpack {
        /// The archive, as written.
        path: String,
        /// Why.
        source: layer::LayerError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where sources are read from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// The build context, with its `.dockerignore`.
    Context {
        /// The context directory.
        root: &'a Path,
        /// The ignore patterns.
        ignore: &'a PatternMatcher,
    },
    /// The filesystem of a stage or image.
    Rootfs {
        /// Its root directory.
        root: &'a Path,
        /// Its name, for messages.
        name: &'a str,
    },
}

impl Origin<'_> {
    fn root(&self) -> &Path {
        match self {
            Origin::Context { root, .. } | Origin::Rootfs { root, .. } => root,
        }
    }

    fn place(&self) -> String {
        match self {
            Origin::Context { .. } => "the build context".to_owned(),
            Origin::Rootfs { name, .. } => format!("`{name}`"),
        }
    }

    fn ignored(&self, path: &[u8]) -> bool {
        match self {
            Origin::Context { ignore, .. } => ignore.excludes(path),
            Origin::Rootfs { .. } => false,
        }
    }

    fn walk_ignored_dir(&self, path: &[u8]) -> bool {
        match self {
            Origin::Context { ignore, .. } => {
                ignore.excludes(path) && !ignore.may_include_under(path)
            }
            Origin::Rootfs { .. } => false,
        }
    }
}

/// A `copy` or `add` step, resolved.
#[derive(Debug, Clone)]
pub struct CopySpec<'a> {
    /// `true` for `add`.
    pub add: bool,
    /// Sources as written.
    pub sources: &'a [String],
    /// Absolute destination.
    pub to: &'a str,
    /// Owner override.
    pub chown: Option<&'a str>,
    /// Mode override.
    pub chmod: Option<&'a str>,
    /// Keep the sources' parent directories.
    pub parents: bool,
    /// Patterns to leave out.
    pub exclude: &'a [String],
    /// For `add` of a URL: the expected `sha256:` digest.
    pub checksum: Option<&'a str>,
    /// For `add` of a Git repository: keep `.git` (`--keep-git-dir`).
    pub keep_git_dir: Option<bool>,
}

/// The image being built: its root so far (None when it has no files).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The flattened filesystem of the stage so far.
    pub root: Option<&'a Path>,
    /// Modification time for directories the step creates.
    pub mtime: i64,
}

/// `path` without its leading `/`, as a layer path.
fn layer_path(path: &str) -> BString {
    path.trim_start_matches('/').trim_end_matches('/').into()
}

/// A root-relative path (bytes, as file names are) as a host path.
fn host(rel: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(rel))
}

/// A host path as bytes, exactly (names need not be UTF-8).
fn bytes_of(path: PathBuf) -> BString {
    path.into_os_string().into_vec().into()
}

fn join(dir: &[u8], name: &[u8]) -> BString {
    if dir.is_empty() {
        name.into()
    } else {
        [dir, b"/", name].concat().into()
    }
}

/// Cleans a source path: no leading `/` or `./`, no `..` past the root.
fn clean_source(source: &str) -> Result<String, CopyError> {
    let cleaned = crate::util::path::clean_relative(Path::new(source))
        .ok_or_else(|| CopyError::OutsideRoot(source.to_owned()))?;
    Ok(cleaned
        .into_os_string()
        .into_string()
        .expect("the components of a str are UTF-8"))
}

/// Follows the symlinks in `rel` inside `root`, as if `root` were `/`, the
/// last component too when `follow_last`.
fn resolve(
    root: &Path,
    rel: &[u8],
    follow_last: bool,
    source: &BStr,
) -> Result<BString, CopyError> {
    let resolved = crate::util::path::resolve_in_root(root, host(rel), follow_last)
        .map_err(|_| CopyError::SymlinkLoop(source.to_string()))?;
    Ok(bytes_of(resolved))
}

/// Whether `path` of `root` is a directory itself, not a symlink to one.
fn is_real_dir(root: &Path, path: &[u8]) -> bool {
    fs::symlink_metadata(root.join(host(path))).is_ok_and(|m| m.is_dir())
}

/// Follows `at` (whose parents hold no symlink) inside the origin's root and
/// checks that what it reaches is there, not left out by the ignore file.
/// `shown` is the path as the step names it, for messages.
fn follow(origin: &Origin<'_>, at: &[u8], shown: &BStr) -> Result<BString, CopyError> {
    let root = origin.root();
    let resolved = resolve(root, at, true, shown)?;
    let present = |p: &[u8]| {
        fs::symlink_metadata(root.join(host(p))).is_ok() && (p.is_empty() || !origin.ignored(p))
    };
    if present(at) && present(&resolved) {
        return Ok(resolved);
    }
    match fs::read_link(root.join(host(at))) {
        Ok(target) if present(at) => Err(CopyError::LinkTargetMissing {
            link: shown.to_string(),
            target: target.to_string_lossy().into_owned(),
            place: origin.place(),
        }),
        _ => Err(CopyError::NotFound {
            source_path: shown.to_string(),
            place: origin.place(),
        }),
    }
}

/// Expands one source into the root-relative paths it reaches, each with
/// the path as written (they differ when a source is a symlink, which is
/// followed but keeps its own name).
///
/// As in `BuildKit`, every symlink is followed inside the root, never out of
/// it: the components before the first wildcard resolve like a named
/// source; the rest are matched against what is really there, never
/// descending through a symlink; and each match is then followed inside the
/// root. The resolved paths hold no symlink.
fn expand_source(origin: &Origin<'_>, source: &str) -> Result<Vec<(BString, BString)>, CopyError> {
    let root = origin.root();
    let shown = source.as_bytes().as_bstr();
    let cleaned = clean_source(source)?;
    let parts: Vec<&str> = cleaned.split('/').filter(|p| !p.is_empty()).collect();
    let Some(first) = parts.iter().position(|p| glob::has_wildcards(p)) else {
        let at = resolve(root, cleaned.as_bytes(), false, shown)?;
        return Ok(vec![(follow(origin, &at, shown)?, cleaned.into())]);
    };
    let prefix = parts[..first].join("/");
    let base = resolve(root, prefix.as_bytes(), true, shown)?;
    // Each candidate: its path in the root (parents free of symlinks) and as
    // written, both bytes: a wildcard may match names that are not UTF-8.
    let mut matches: Vec<(BString, BString)> = vec![(base, prefix.into())];
    for part in &parts[first..] {
        let mut next = Vec::new();
        for (dir, written) in &matches {
            if !is_real_dir(root, dir) {
                continue;
            }
            if !glob::has_wildcards(part) {
                let path = join(dir, part.as_bytes());
                if fs::symlink_metadata(root.join(host(&path))).is_ok() {
                    next.push((path, join(written, part.as_bytes())));
                }
                continue;
            }
            let Ok(read) = fs::read_dir(root.join(host(dir))) else {
                continue;
            };
            let mut names: Vec<Vec<u8>> = read
                .filter_map(|e| Some(e.ok()?.file_name().into_vec()))
                .collect();
            names.sort();
            for name in names {
                if glob::matches(part, &name)? {
                    next.push((join(dir, &name), join(written, &name)));
                }
            }
        }
        matches = next;
    }
    matches.retain(|(at, _)| !origin.ignored(at));
    if matches.is_empty() {
        return Err(CopyError::NotFound {
            source_path: source.to_owned(),
            place: origin.place(),
        });
    }
    matches
        .into_iter()
        .map(|(at, written)| Ok((follow(origin, &at, written.as_bstr())?, written)))
        .collect()
}

/// The entries of a `copy` or `add` step.
pub fn copy_entries(
    spec: &CopySpec<'_>,
    origin: &Origin<'_>,
    target: Target<'_>,
    scratch: &Path,
) -> Result<Vec<Entry>, CopyError> {
    let owner = spec
        .chown
        .map(|c| resolve_owner(c, target.root))
        .transpose()?;
    let mode = spec.chmod.map(ModeSpec::parse).transpose()?;
    let exclude =
        PatternMatcher::new(spec.exclude).map_err(|e| CopyError::Exclude(e.to_string()))?;

    let mut matched = Vec::new();
    let mut downloads = Vec::new();
    let mut repositories = Vec::new();
    for source in spec.sources {
        if let Some(mut repository) = git_source(source, spec.add)? {
            repository.set_checksum(spec.checksum)?;
            let commit = repository.resolve()?;
            let keep = keep_git_dir(&repository, spec.keep_git_dir)?;
            repositories.push(repository.checkout(&commit, keep, &scratch.join("git"))?);
            continue;
        }
        if !spec.add && is_url(source) {
            return Err(CopyError::RemoteInCopy {
                what: "URL",
                source_path: source.clone(),
            });
        }
        if spec.add && is_url(source) {
            downloads.push(fetch::fetch(
                source,
                spec.checksum,
                &scratch.join("downloads"),
            )?);
            continue;
        }
        let wildcard = glob::has_wildcards(source);
        for (path, written) in expand_source(origin, source)? {
            matched.push((path, written, wildcard));
        }
    }
    let several = matched.len() + downloads.len() + repositories.len() > 1
        || matched.iter().any(|(_, _, w)| *w);
    let dest_is_dir = spec.to.ends_with('/')
        || target
            .root
            .and_then(|r| fs::metadata(r.join(host(&layer_path(spec.to)))).ok())
            .is_some_and(|m| m.is_dir());
    if several && !spec.to.ends_with('/') {
        return Err(CopyError::DestinationNotDirectory(spec.to.to_owned()));
    }
    let dest = layer_path(spec.to);
    let mut layer = Layer::new(target, owner);
    let adjust = |mut entry: Entry, from_context: bool| -> Entry {
        if let Some(owner) = owner {
            entry.uid = owner.uid;
            entry.gid = owner.gid;
        } else if from_context {
            entry.uid = 0;
            entry.gid = 0;
        }
        if let Some(mode) = &mode
            && !matches!(entry.kind, EntryKind::Symlink { .. })
        {
            entry.mode = mode.apply(entry.mode, matches!(entry.kind, EntryKind::Dir));
        }
        entry
    };
    let from_context = matches!(origin, Origin::Context { .. });
    // Each copied path is its own copy in `BuildKit`: hard links are kept
    // among the files it reaches, never across copied paths.
    for (copied, (path, written, _)) in matched.into_iter().enumerate() {
        let full = origin.root().join(host(&path));
        let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
        let name = written.rsplit_str("/").next().unwrap_or_default();
        let base = if spec.parents {
            join(
                &dest,
                written.rsplit_once_str("/").map_or(&b""[..], |(p, _)| p),
            )
        } else {
            dest.clone()
        };
        if meta.is_dir() {
            let into = if spec.parents {
                join(&dest, &written)
            } else {
                dest.clone()
            };
            if !into.is_empty() {
                layer.insert(adjust(entry_for(&full, &into, &meta, false)?, from_context));
            }
            for (entry, meta) in walk_dir(origin, &path, &into, &exclude)? {
                layer.insert_named(adjust(entry, from_context), Inode::of(copied, &meta));
            }
        } else if spec.add && is_archive(&full)? {
            let unpacked = tempdir_in(scratch)?;
            let file = fs::File::open(&full).map_err(io(&full))?;
            layer::extract_layer(
                file,
                &unpacked,
                &layer::ExtractOptions {
                    preserve_ownership: true,
                    overlay_whiteouts: false,
                    ..layer::ExtractOptions::default()
                },
            )
            .map_err(|source| CopyError::Unpack {
                path: path.to_string(),
                source,
            })?;
            let into = base.clone();
            for mut entry in
                layer::entries_from_dir(&unpacked).map_err(|source| CopyError::Unpack {
                    path: path.to_string(),
                    source,
                })?
            {
                // The archive's hard links are real links in `unpacked`:
                // they are linked again with the rest of this layer.
                let file = unpacked.join(host(&entry.path));
                let meta = fs::symlink_metadata(&file).map_err(io(&file))?;
                if let EntryKind::Hardlink { .. } = entry.kind {
                    entry.kind = EntryKind::File {
                        source: FileSource::Path(file),
                        size: meta.len(),
                    };
                }
                entry.path = join(&into, &entry.path);
                layer.insert_named(adjust(entry, false), Inode::of(copied, &meta));
            }
        } else {
            let at = if dest_is_dir || several {
                join(&base, name)
            } else {
                dest.clone()
            };
            layer.insert(adjust(entry_for(&full, &at, &meta, true)?, from_context));
        }
    }
    for (checkout, time) in repositories {
        // BuildKit copies the checkout's root into the destination.
        let origin = Origin::Rootfs {
            root: &checkout,
            name: "the Git repository",
        };
        for (mut entry, _) in walk_dir(&origin, b"", &dest, &exclude)? {
            // A fresh checkout's files each have one name.
            entry.mtime = time;
            layer.insert(adjust(entry, true));
        }
    }
    for (path, name) in downloads {
        // Docker gives downloaded files mode 0600; they are never unpacked.
        let meta = fs::metadata(&path).map_err(io(&path))?;
        let at = if dest_is_dir || several {
            join(&dest, name.as_bytes())
        } else {
            dest.clone()
        };
        let mut entry = entry_for(&path, &at, &meta, true)?;
        entry.mode = 0o600;
        entry.mtime = target.mtime;
        layer.insert(adjust(entry, true));
    }
    Ok(layer.finish())
}

/// Whether `source` is an `http(s)://` URL.
fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// `source` as a Git repository, when it names one; only `add` takes one.
fn git_source(source: &str, add: bool) -> Result<Option<git::GitSource>, CopyError> {
    let parsed = git::parse(source).map_err(|why| CopyError::Git {
        url: source.to_owned(),
        why,
    })?;
    match parsed {
        Some(_) if !add => Err(CopyError::RemoteInCopy {
            what: "git ref",
            source_path: source.to_owned(),
        }),
        parsed => Ok(parsed),
    }
}

/// Whether to keep `.git`: the URL's `keep-git-dir` and the step's must agree.
fn keep_git_dir(repository: &git::GitSource, step: Option<bool>) -> Result<bool, CopyError> {
    match (repository.keep_git_dir, step) {
        (Some(a), Some(b)) if a != b => Err(CopyError::Git {
            url: repository.written.clone(),
            why: "inconsistent keep-git-dir configuration".to_owned(),
        }),
        (a, b) => Ok(a.or(b).unwrap_or(false)),
    }
}

/// A fresh directory under `scratch` for an unpacked archive; the caller removes `scratch` once the layer is written.
fn tempdir_in(scratch: &Path) -> Result<PathBuf, CopyError> {
    fs::create_dir_all(scratch).map_err(io(scratch))?;
    for n in 0.. {
        let dir = scratch.join(format!("add-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    unreachable!("some directory name is free")
}

/// Whether `path` is a tar archive, plain or compressed.
fn is_archive(path: &Path) -> Result<bool, CopyError> {
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(io(path))?;
    let plain: Vec<u8> = match layer::Compression::detect(&head) {
        layer::Compression::Gzip => {
            let mut out = Vec::new();
            let _ = flate2::read::GzDecoder::new(&head[..])
                .take(512)
                .read_to_end(&mut out);
            out
        }
        layer::Compression::Zstd => {
            let mut out = Vec::new();
            if let Ok(decoder) = zstd::stream::read::Decoder::new(&head[..]) {
                let _ = decoder.take(512).read_to_end(&mut out);
            }
            out
        }
        layer::Compression::None => head,
    };
    Ok(plain.len() >= 262 && &plain[257..262] == b"ustar")
}

/// One entry for the file, directory or symlink at `full`, placed at `at`.
fn entry_for(
    full: &Path,
    at: &[u8],
    meta: &fs::Metadata,
    follow: bool,
) -> Result<Entry, CopyError> {
    let lmeta = if follow {
        meta.clone()
    } else {
        fs::symlink_metadata(full).map_err(io(full))?
    };
    let kind = if lmeta.file_type().is_symlink() {
        EntryKind::Symlink {
            target: bytes_of(fs::read_link(full).map_err(io(full))?),
        }
    } else if lmeta.is_dir() {
        EntryKind::Dir
    } else if lmeta.is_file() {
        EntryKind::File {
            source: FileSource::Path(full.to_owned()),
            size: lmeta.len(),
        }
    } else {
        return Err(CopyError::Io {
            path: full.to_owned(),
            source: std::io::Error::other("only files, directories and symlinks can be copied"),
        });
    };
    Ok(Entry {
        path: at.into(),
        kind,
        mode: lmeta.permissions().mode() & 0o7777,
        uid: lmeta.uid(),
        gid: lmeta.gid(),
        mtime: lmeta.mtime(),
        xattrs: Vec::new(),
    })
}

/// Entries under the directory `path` of `origin`, placed under `into`,
/// each with the (not followed) metadata of its source.
fn walk_dir(
    origin: &Origin<'_>,
    path: &[u8],
    into: &[u8],
    exclude: &PatternMatcher,
) -> Result<Vec<(Entry, fs::Metadata)>, CopyError> {
    let mut entries = Vec::new();
    walk_under(origin, path, exclude, |rel, full, meta| {
        entries.push((
            entry_for(full, &join(into, rel), meta, false)?,
            meta.clone(),
        ));
        Ok(())
    })?;
    Ok(entries)
}

/// Calls `visit` with the path relative to `path`, the full path and the
/// (not followed) metadata of everything under the directory `path` of
/// `origin` that neither `exclude` nor the context's ignore file leaves out,
/// parents before children, names sorted.
fn walk_under(
    origin: &Origin<'_>,
    path: &[u8],
    exclude: &PatternMatcher,
    mut visit: impl FnMut(&[u8], &Path, &fs::Metadata) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let root = origin.root().join(host(path));
    let mut walker = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walker.next() {
        let item = item.map_err(|e| CopyError::Io {
            path: e.path().unwrap_or(&root).to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed")),
        })?;
        let rel = item
            .path()
            .strip_prefix(&root)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .as_bytes();
        let origin_rel = join(path, rel);
        let is_dir = item.file_type().is_dir();
        if (!exclude.is_empty() && exclude.excludes(rel)) || origin.ignored(&origin_rel) {
            if is_dir && (exclude.excludes(rel) || origin.walk_ignored_dir(&origin_rel)) {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = fs::symlink_metadata(item.path()).map_err(io(item.path()))?;
        visit(rel, item.path(), &meta)?;
    }
    Ok(())
}

/// The entries of a `file` step: `content` at `to`.
pub fn file_entries(
    to: &str,
    content: &str,
    chown: Option<&str>,
    chmod: Option<&str>,
    target: Target<'_>,
) -> Result<Vec<Entry>, CopyError> {
    let owner = chown
        .map(|c| resolve_owner(c, target.root))
        .transpose()?
        .unwrap_or(Owner { uid: 0, gid: 0 });
    let mode = chmod
        .map(ModeSpec::parse)
        .transpose()?
        .map_or(0o644, |m| m.apply(0o644, false));
    let mut layer = Layer::new(target, None);
    layer.insert(Entry {
        path: layer_path(to),
        kind: EntryKind::File {
            source: FileSource::Bytes(content.as_bytes().into()),
            size: content.len() as u64,
        },
        mode,
        uid: owner.uid,
        gid: owner.gid,
        mtime: target.mtime,
        xattrs: Vec::new(),
    });
    Ok(layer.finish())
}

/// The entries that create directory `path` when the image lacks it; None
/// if it exists. What it creates belongs to `user` (the stage's `USER`,
/// looked up in the image), as `BuildKit`'s `WORKDIR` makes it.
pub fn mkdir_entries(
    path: &str,
    user: Option<&str>,
    target: Target<'_>,
) -> Result<Option<Vec<Entry>>, CopyError> {
    let rel = layer_path(path);
    if rel.is_empty() || target.root.is_some_and(|r| r.join(host(&rel)).is_dir()) {
        return Ok(None);
    }
    let owner = user
        .map(|u| resolve_owner(u, target.root))
        .transpose()?
        .unwrap_or(Owner { uid: 0, gid: 0 });
    let mut layer = Layer::new(target, Some(owner));
    layer.insert(Entry {
        path: rel,
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: owner.uid,
        gid: owner.gid,
        mtime: target.mtime,
        xattrs: Vec::new(),
    });
    Ok(Some(layer.finish()))
}

/// A file, directory or symlink that a `copy`, `add` or bind mount reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its path relative to the origin's root, symlinks in named sources
    /// resolved; bytes, as the file name is.
    pub path: BString,
    /// Its path on disk.
    pub full: PathBuf,
    /// What it is.
    pub kind: SelectedKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// For a regular file with other names: the first selected path (byte
    /// order) that is the same file, unless that is this one. A copy links
    /// the names it reaches of one file, so this is part of what it reads.
    pub same_file_as: Option<BString>,
}

/// The kind of a [`Selected`] path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectedKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link with its target (bytes, as stored).
    Symlink(BString),
}

/// Every path of `origin` that the sources of `spec` name, as [`copy_entries`]
/// reads them (wildcards, symlinks in named sources, directories walked with
/// the step's excludes and the context's ignore file), sorted by path. URLs
/// are left out: a download is pinned by its checksum. The cache key of a
/// step covers exactly these paths.
pub fn selected_paths(
    spec: &CopySpec<'_>,
    origin: &Origin<'_>,
) -> Result<Vec<Selected>, CopyError> {
    let exclude =
        PatternMatcher::new(spec.exclude).map_err(|e| CopyError::Exclude(e.to_string()))?;
    let mut out: Vec<(Selected, Option<(u64, u64)>)> = Vec::new();
    let mut push = |path: BString, full: PathBuf, meta: &fs::Metadata| -> Result<(), CopyError> {
        let kind = if meta.file_type().is_symlink() {
            SelectedKind::Symlink(bytes_of(fs::read_link(&full).map_err(io(&full))?))
        } else if meta.is_dir() {
            SelectedKind::Dir
        } else {
            SelectedKind::File
        };
        let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        let selected = Selected {
            path,
            full,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            same_file_as: None,
        };
        out.push((selected, inode));
        Ok(())
    };
    for source in spec.sources {
        if git_source(source, spec.add)?.is_some() || (spec.add && is_url(source)) {
            continue;
        }
        for (path, _) in expand_source(origin, source)? {
            let full = origin.root().join(host(&path));
            // A named source is followed when it is a symlink, as copy does.
            let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
            let is_dir = meta.is_dir();
            push(path.clone(), full.clone(), &meta)?;
            if !is_dir {
                continue;
            }
            walk_under(origin, &path, &exclude, |rel, item, meta| {
                push(join(&path, rel), item.to_owned(), meta)
            })?;
        }
    }
    out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    out.dedup_by(|a, b| a.0.path == b.0.path);
    let mut first: HashMap<(u64, u64), BString> = HashMap::new();
    Ok(out
        .into_iter()
        .map(|(mut selected, inode)| {
            if let Some(inode) = inode {
                let name = first.entry(inode).or_insert_with(|| selected.path.clone());
                if *name != selected.path {
                    selected.same_file_as = Some(name.clone());
                }
            }
            selected
        })
        .collect())
}
