//! `copy`, `add` and `file` steps: which files land where, with which
//! owner and mode, as Docker's COPY and ADD decide it. The result is a list
//! of layer entries; [`crate::layer`] turns it into a layer.
//!
//! Rules (Docker's): a directory source copies its contents; wildcards
//! follow Go's `filepath.Match`; the destination is followed through the
//! image's symlinks inside its root; sources are placed one by one, and a
//! destination that ends in `/` or is a directory (in the image, or made by
//! an earlier source) receives them by name, else each lands at it; a symlink named as
//! a source is followed, symlinks inside a copied directory are copied as
//! links; files from the context belong to root unless `chown` says
//! otherwise, files from a stage keep their owner; `add` unpacks local tar
//! archives (plain, gzip or zstd) into the destination.

mod dest;
mod fetch;
pub mod git;
pub mod glob;
mod links;
pub mod owner;
mod source;
mod walk;

pub use dest::{file_entries, mkdir_entries};
pub use walk::{Selected, SelectedKind, selected_paths};

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bstr::{BString, ByteSlice};

use dest::{Dest, Layer};
use source::{ParentsSource, expand_parents, expand_source};
use walk::{walk_dir, walk_parents};

use crate::context::PatternMatcher;
use crate::layer::{self, Entry, EntryKind, FileSource};
use links::Inode;
use owner::{ModeSpec, Owner, resolve_owner};

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
    /// A `parents` source without wildcards copies nothing: the path it
    /// names is not there, or left out (`BuildKit`'s `RequiredPaths`).
    #[error("\"{path}\": not found in {place}")]
    RequiredNotFound {
        /// The path, as `BuildKit` names it: `/`, the root, the pattern.
        path: String,
        /// "the build context" or "stage X".
        place: String,
    },
    /// A directory's contents are copied to a path that is a file.
    #[error(
        "cannot copy to non-directory: `{0}` is a file (in the image, or written by an earlier source of the step), so a directory's contents cannot go there"
    )]
    NotADirectory(String),
    /// A `chown` value could not be resolved.
    #[error("cannot resolve owner `{spec}`: {why}")]
    Owner {
        /// The value as written.
        spec: String,
        /// Why.
        why: String,
    },
    /// A `chmod` value is malformed.
    #[error(
        "invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777, or a symbolic mode like u+x,go-w"
    )]
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

/// The sources of a copy, by how they are copied.
#[derive(Default)]
struct Sources {
    /// Paths the sources name, each with the name it is written under.
    matched: Vec<(BString, BString)>,
    /// `--parents` sources.
    parents: Vec<ParentsSource>,
    /// Downloaded URLs (`add`): the file and its name.
    downloads: Vec<(PathBuf, String)>,
    /// Checked-out Git repositories (`add`): the checkout and its commit time.
    repositories: Vec<(PathBuf, i64)>,
}

impl Sources {
    /// Reads the sources of `spec`: Git repositories are checked out and
    /// URLs downloaded into `scratch`, paths are matched in `origin`.
    fn gather(spec: &CopySpec<'_>, origin: &Origin<'_>, scratch: &Path) -> Result<Self, CopyError> {
        let mut sources = Self::default();
        for source in spec.sources {
            if let Some(mut repository) = git_source(source, spec.add)? {
                repository.set_checksum(spec.checksum)?;
                let commit = repository.resolve()?;
                let keep = keep_git_dir(&repository, spec.keep_git_dir)?;
                let checkout = repository.checkout(&commit, keep, &scratch.join("git"))?;
                sources.repositories.push(checkout);
                continue;
            }
            if !spec.add && is_url(source) {
                return Err(CopyError::RemoteInCopy {
                    what: "URL",
                    source_path: source.clone(),
                });
            }
            if spec.add && is_url(source) {
                let download = fetch::fetch(source, spec.checksum, &scratch.join("downloads"))?;
                sources.downloads.push(download);
                continue;
            }
            if spec.parents {
                sources.parents.push(expand_parents(origin, source)?);
            } else {
                sources.matched.extend(expand_source(origin, source)?);
            }
        }
        Ok(sources)
    }
}

/// The owner and mode a step gives what it copies.
struct Adjust {
    owner: Option<Owner>,
    mode: Option<ModeSpec>,
}

impl Adjust {
    /// `entry` with the step's owner (root for files from the context
    /// when it sets none) and mode.
    fn apply(&self, mut entry: Entry, from_context: bool) -> Entry {
        if let Some(owner) = self.owner {
            entry.uid = owner.uid;
            entry.gid = owner.gid;
        } else if from_context {
            entry.uid = 0;
            entry.gid = 0;
        }
        if let Some(mode) = &self.mode
            && !matches!(entry.kind, EntryKind::Symlink { .. })
        {
            entry.mode = mode.apply(entry.mode, matches!(entry.kind, EntryKind::Dir));
        }
        entry
    }
}

/// One `copy` or `add` step while its entries are collected.
struct Copying<'s, 't> {
    spec: &'s CopySpec<'s>,
    origin: &'s Origin<'s>,
    scratch: &'s Path,
    /// The destination.
    to: Dest,
    /// The entries so far.
    layer: Layer<'t>,
    adjust: Adjust,
    exclude: PatternMatcher,
    /// Whether the sources are the build context's.
    from_context: bool,
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
    let sources = Sources::gather(spec, origin, scratch)?;
    let to = Dest::resolve(spec.to, target)?;
    let layer =
        Layer::new(target, owner).with_created_dir_mode(dest::created_dir_mode(mode.as_ref()));
    let mut copying = Copying {
        spec,
        origin,
        scratch,
        to,
        layer,
        adjust: Adjust { owner, mode },
        exclude,
        from_context: matches!(origin, Origin::Context { .. }),
    };
    copying.matched(sources.matched)?;
    copying.parents(&sources.parents)?;
    copying.repositories(sources.repositories)?;
    copying.downloads(sources.downloads, target.mtime)?;
    Ok(copying.layer.finish())
}

impl Copying<'_, '_> {
    /// Copies the matched paths: directories' contents, archives unpacked
    /// (`add`), files by name.
    fn matched(&mut self, matched: Vec<(BString, BString)>) -> Result<(), CopyError> {
        let (spec, origin) = (self.spec, self.origin);
        // Each copied path is its own copy in `BuildKit`: hard links are kept
        // among the files it reaches, never across copied paths.
        for (copied, (path, written)) in matched.into_iter().enumerate() {
            let full = origin.root().join(host(&path));
            let meta = fs::symlink_metadata(&full).map_err(io(&full))?;
            let name = written.rsplit_str("/").next().unwrap_or_default();
            if meta.is_dir() {
                let into = self.layer.dir_at(&self.to, spec.to)?;
                insert_dest_dir(&mut self.layer, &into);
                for (entry, meta) in walk_dir(origin, &path, &into, &self.exclude)? {
                    let entry = self.adjust.apply(entry, self.from_context);
                    self.layer.insert_named(entry, Inode::of(copied, &meta));
                }
            } else if spec.add && is_archive(&full)? {
                self.unpack(copied, &path, &full)?;
            } else {
                let at = self.layer.file_at(&self.to, name);
                let entry = entry_for(&full, &at, &meta, true)?;
                self.layer
                    .insert(self.adjust.apply(entry, self.from_context));
            }
        }
        Ok(())
    }

    /// Unpacks the archive `full` (the `copied`th path, `path`) into the
    /// destination.
    fn unpack(&mut self, copied: usize, path: &BString, full: &Path) -> Result<(), CopyError> {
        let unpacked = tempdir_in(self.scratch)?;
        let file = fs::File::open(full).map_err(io(full))?;
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
        let dest = self.to.path.clone();
        for mut entry in layer::entries_from_dir(&unpacked).map_err(|source| CopyError::Unpack {
            path: path.to_string(),
            source,
        })? {
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
            entry.path = join(&dest, &entry.path);
            let entry = self.adjust.apply(entry, false);
            self.layer.insert_named(entry, Inode::of(copied, &meta));
        }
        Ok(())
    }

    /// `parents`: each root is copied as a directory's contents, keeping
    /// what its pattern matches with the directories above it, as `BuildKit`
    /// copies with `IncludePatterns`; each root is its own copy.
    fn parents(&mut self, parents: &[ParentsSource]) -> Result<(), CopyError> {
        let mut copied = 0;
        let mut into = BString::default();
        let Copying {
            spec,
            origin,
            to,
            layer,
            adjust,
            exclude,
            from_context,
            ..
        } = self;
        for source in parents {
            walk_parents(origin, source, exclude, |root, rel, full, meta| {
                match rel {
                    None if meta.is_dir() => {
                        copied += 1;
                        into = layer.dir_at(to, spec.to)?;
                        insert_dest_dir(layer, &into);
                    }
                    None => {
                        // A root that is not a directory is copied whole, by name.
                        copied += 1;
                        let name = root.rsplit_str("/").next().unwrap_or_default();
                        let at = layer.file_at(to, name);
                        layer
                            .insert(adjust.apply(entry_for(full, &at, meta, true)?, *from_context));
                    }
                    Some(rel) => {
                        let entry = entry_for(full, &join(&into, rel), meta, false)?;
                        layer.insert_named(
                            adjust.apply(entry, *from_context),
                            Inode::of(copied, meta),
                        );
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Git checkouts: `BuildKit` copies the checkout's root into the
    /// destination, every entry with the commit's time.
    fn repositories(&mut self, repositories: Vec<(PathBuf, i64)>) -> Result<(), CopyError> {
        for (checkout, time) in repositories {
            let origin = Origin::Rootfs {
                root: &checkout,
                name: "the Git repository",
            };
            let into = self.layer.dir_at(&self.to, self.spec.to)?;
            for (mut entry, _) in walk_dir(&origin, b"", &into, &self.exclude)? {
                entry.mtime = time;
                self.layer.insert(self.adjust.apply(entry, true));
            }
        }
        Ok(())
    }

    /// Downloaded files: Docker gives them mode 0600, the time `mtime`,
    /// and never unpacks them.
    fn downloads(
        &mut self,
        downloads: Vec<(PathBuf, String)>,
        mtime: i64,
    ) -> Result<(), CopyError> {
        for (path, name) in downloads {
            let meta = fs::metadata(&path).map_err(io(&path))?;
            let at = self.layer.file_at(&self.to, name.as_bytes());
            let mut entry = entry_for(&path, &at, &meta, true)?;
            entry.mode = 0o600;
            entry.mtime = mtime;
            self.layer.insert(self.adjust.apply(entry, true));
        }
        Ok(())
    }
}

/// Gives the destination of a directory's contents its entry, unless the
/// step has one there: never the source directory's metadata (`BuildKit`
/// makes it with `mkdir -p`), the image's own, else a created directory.
fn insert_dest_dir(layer: &mut Layer<'_>, into: &[u8]) {
    if !into.is_empty()
        && !layer.has(into)
        && let Some(entry) = layer.dir_entry(into)
    {
        layer.insert(entry);
    }
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

#[cfg(test)]
mod tests;
