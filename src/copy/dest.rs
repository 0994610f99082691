//! Where a step's entries land in the image being built: the layer being
//! assembled, its missing parent directories, `file` and `workdir` steps.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use bstr::{BString, ByteSlice};

use super::links::{Inode, Links};
use super::owner::{ModeSpec, Owner, resolve_owner};
use super::source::is_real_dir;
use super::{CopyError, Target, bytes_of, host, join, layer_path};
use crate::layer::{Entry, EntryKind, FileSource};

/// A step's destination: where `to` leads in the image being built.
///
/// As in `BuildKit` (fsutil's `Copy` resolves the destination with
/// containerd's `fs.RootPath`), every symlink on the way is followed inside
/// the image's root, the last component too: an absolute target starts
/// again at the root, `..` stops there, and a dangling link leads to the
/// path it names, which the step then creates.
#[derive(Debug, Clone)]
pub(super) struct Dest {
    /// Root-relative, free of symlinks (but for a loop, refused).
    pub(super) path: BString,
    /// `to` ends in `/` (or `/.`): the sources go inside it, by name.
    pub(super) slash: bool,
}

impl Dest {
    /// Resolves the absolute destination `to` in `target`.
    pub(super) fn resolve(to: &str, target: Target<'_>) -> Result<Self, CopyError> {
        let slash = to.ends_with('/') || to.ends_with("/.") || to == ".";
        let written = layer_path(to);
        let path = match target.root {
            Some(root) => {
                let resolved = crate::util::path::resolve_in_root(root, host(&written), true)
                    .map_err(|_| CopyError::SymlinkLoop(to.to_owned()))?;
                bytes_of(resolved)
            }
            None => written,
        };
        Ok(Dest { path, slash })
    }
}

/// Accumulates entries by path; hard links and parents are filled in at
/// the end.
pub(super) struct Layer<'t> {
    target: Target<'t>,
    entries: BTreeMap<BString, Entry>,
    links: Links,
    created_dir_owner: Option<Owner>,
    /// Permission bits of the directories the step creates: 0755, or the
    /// step's numeric `chmod` (`BuildKit` 0.21, dockerfile 1.15, on).
    created_dir_mode: u32,
}

/// The mode of directories a copy creates: a numeric `chmod`'s permission
/// bits (`BuildKit` gives them to the created parents since v0.21; special
/// bits do not survive its `mkdir`), else 0755.
pub(super) fn created_dir_mode(chmod: Option<&ModeSpec>) -> u32 {
    match chmod {
        Some(ModeSpec::Octal(mode)) => mode & 0o777,
        _ => 0o755,
    }
}

impl<'t> Layer<'t> {
    /// An empty layer over `target`; directories it creates belong to
    /// `created_dir_owner`, else root.
    pub(super) fn new(target: Target<'t>, created_dir_owner: Option<Owner>) -> Self {
        Layer {
            target,
            entries: BTreeMap::new(),
            links: Links::default(),
            created_dir_owner,
            created_dir_mode: 0o755,
        }
    }

    /// The same layer, creating directories with `mode`.
    pub(super) fn with_created_dir_mode(mut self, mode: u32) -> Self {
        self.created_dir_mode = mode;
        self
    }

    /// Whether the step put something at `path` already.
    pub(super) fn has(&self, path: &[u8]) -> bool {
        self.entries.contains_key(path.as_bstr())
    }

    /// The entry for directory `path` that the step needs: the image's own
    /// when it has one (None when that is a symlink, which the layer must
    /// not replace), else a new one as [`Layer::finish`] makes parents.
    pub(super) fn dir_entry(&self, path: &[u8]) -> Option<Entry> {
        let existing = self
            .target
            .root
            .and_then(|root| fs::symlink_metadata(root.join(host(path))).ok());
        match existing {
            Some(meta) if meta.file_type().is_symlink() => None,
            Some(meta) => Some(Entry {
                path: path.into(),
                kind: EntryKind::Dir,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                xattrs: Vec::new(),
            }),
            None => {
                let owner = self.created_dir_owner.unwrap_or(Owner { uid: 0, gid: 0 });
                Some(Entry {
                    path: path.into(),
                    kind: EntryKind::Dir,
                    mode: self.created_dir_mode,
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime: self.target.mtime,
                    xattrs: Vec::new(),
                })
            }
        }
    }

    /// Adds `entry`, replacing what the step put at its path before.
    pub(super) fn insert(&mut self, entry: Entry) {
        self.insert_named(entry, None);
    }

    /// Adds `entry`, a name of `inode` when it shares one with other files
    /// of the same copied path (see [`super::links`]).
    pub(super) fn insert_named(&mut self, entry: Entry, inode: Option<Inode>) {
        self.links.record(entry.path.as_bstr(), inode);
        self.entries.insert(entry.path.clone(), entry);
    }

    /// Whether `path` (resolved) is a directory, in this layer so far or
    /// else in the image below it; `None` when neither has it.
    pub(super) fn is_dir_at(&self, path: &[u8]) -> Option<bool> {
        if path.is_empty() {
            return Some(true);
        }
        if let Some(entry) = self.entries.get(path.as_bstr()) {
            return Some(matches!(entry.kind, EntryKind::Dir));
        }
        let below: BString = [path, b"/"].concat().into();
        if self
            .entries
            .range(below.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&below))
        {
            return Some(true);
        }
        let root = self.target.root?;
        fs::symlink_metadata(root.join(host(path)))
            .ok()
            .map(|m| m.is_dir())
    }

    /// Where a source that is not a directory, named `name`, lands: inside
    /// the destination when it ends in `/` or is a directory (in the image,
    /// or made by an earlier source of the step), else at it, replacing what
    /// is there. Sources are placed one by one, as `BuildKit` copies them, so
    /// several files to a path without `/` leave the last one there.
    pub(super) fn file_at(&self, dest: &Dest, name: &[u8]) -> BString {
        if dest.slash || self.is_dir_at(&dest.path) == Some(true) {
            join(&dest.path, name)
        } else {
            dest.path.clone()
        }
    }

    /// Where a directory source's contents land: the destination, which
    /// must not be a file (in the image, or written by an earlier source).
    pub(super) fn dir_at(&self, dest: &Dest, to: &str) -> Result<BString, CopyError> {
        if self.is_dir_at(&dest.path) == Some(false) {
            return Err(CopyError::NotADirectory(to.to_owned()));
        }
        Ok(dest.path.clone())
    }

    /// Links the names of each shared inode, then adds every missing parent:
    /// existing directories keep their metadata, new ones get
    /// `created_dir_mode` (0755 unless a numeric `chmod`) and belong to
    /// `created_dir_owner` (the step's `chown`, as `BuildKit` gives it to
    /// every directory a copy creates) or root.
    pub(super) fn finish(mut self) -> Vec<Entry> {
        std::mem::take(&mut self.links).apply(&mut self.entries);
        let mut parents: Vec<BString> = Vec::new();
        for path in self.entries.keys() {
            let mut at: &[u8] = path;
            while let Some((parent, _)) = at.rsplit_once_str("/") {
                if !self.entries.contains_key(parent.as_bstr()) {
                    parents.push(parent.into());
                }
                at = parent;
            }
        }
        parents.sort();
        parents.dedup();
        for parent in parents {
            if let Some(entry) = self.dir_entry(&parent) {
                self.entries.insert(parent, entry);
            }
        }
        self.entries.into_values().collect()
    }
}

/// The entries of a `file` step: `content` at `to`, followed through the
/// image's symlinks inside its root. When `to` is a directory there (or
/// ends in `/`) and the step gives the file a `name`, the file goes inside
/// it under that name, as `BuildKit` copies a heredoc named by its delimiter.
pub fn file_entries(
    to: &str,
    name: Option<&str>,
    content: &str,
    chown: Option<&str>,
    chmod: Option<&str>,
    target: Target<'_>,
) -> Result<Vec<Entry>, CopyError> {
    let chown = chown.map(|c| resolve_owner(c, target.root)).transpose()?;
    let owner = chown.unwrap_or(Owner { uid: 0, gid: 0 });
    let chmod = chmod.map(ModeSpec::parse).transpose()?;
    let mode = chmod.as_ref().map_or(0o644, |m| m.apply(0o644, false));
    let to = Dest::resolve(to, target)?;
    let mut layer =
        Layer::new(target, chown).with_created_dir_mode(created_dir_mode(chmod.as_ref()));
    let path = match name {
        Some(name) => layer.file_at(&to, name.as_bytes()),
        None => to.path,
    };
    layer.insert(Entry {
        path,
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
    // As `BuildKit`'s mkdir, through the image's symlinks inside its root.
    let rel = Dest::resolve(path, target)?.path;
    if rel.is_empty() || target.root.is_some_and(|r| is_real_dir(r, &rel)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// An image root: `out/real/` (a directory), `out/file`, and links
    /// `out/link -> real`, `out/abs -> /out/real`, `out/esc -> ../../../out/real`,
    /// `out/dangling -> /out/new`.
    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("real")).unwrap();
        fs::write(out.join("file"), "x").unwrap();
        symlink("real", out.join("link")).unwrap();
        symlink("/out/real", out.join("abs")).unwrap();
        symlink("../../../out/real", out.join("esc")).unwrap();
        symlink("/out/new", out.join("dangling")).unwrap();
        dir
    }

    fn target(root: &std::path::Path) -> Target<'_> {
        Target {
            root: Some(root),
            mtime: 0,
        }
    }

    fn resolved(root: &std::path::Path, to: &str) -> String {
        Dest::resolve(to, target(root)).unwrap().path.to_string()
    }

    #[test]
    fn destinations_follow_image_links_inside_the_root() {
        let img = image();
        assert_eq!(resolved(img.path(), "/out/link/f"), "out/real/f");
        assert_eq!(resolved(img.path(), "/out/abs/f"), "out/real/f");
        assert_eq!(resolved(img.path(), "/out/esc/f"), "out/real/f");
        assert_eq!(resolved(img.path(), "/out/link/"), "out/real");
        // The last component is followed too, even when it dangles.
        assert_eq!(resolved(img.path(), "/out/dangling"), "out/new");
        assert_eq!(resolved(img.path(), "/"), "");
        // Without an image below (scratch, `link`), the path is as written.
        let none = Target {
            root: None,
            mtime: 0,
        };
        assert_eq!(
            Dest::resolve("/out/link/f", none).unwrap().path,
            "out/link/f"
        );
    }

    #[test]
    fn loops_in_the_destination_are_refused() {
        let img = image();
        symlink("b", img.path().join("a")).unwrap();
        symlink("a", img.path().join("b")).unwrap();
        assert!(matches!(
            Dest::resolve("/a/f", target(img.path())),
            Err(CopyError::SymlinkLoop(_))
        ));
    }

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                source: FileSource::Bytes(b"x".as_slice().into()),
                size: 1,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn sources_land_one_by_one() {
        let img = image();
        let mut layer = Layer::new(target(img.path()), None);
        let to = Dest::resolve("/dest", target(img.path())).unwrap();
        // A file to a missing path without `/` takes that path; the next
        // one replaces it, and a directory's contents cannot go there.
        assert_eq!(layer.file_at(&to, b"a.txt"), "dest");
        layer.insert(file("dest"));
        assert_eq!(layer.file_at(&to, b"b.txt"), "dest");
        assert!(matches!(
            layer.dir_at(&to, "/dest"),
            Err(CopyError::NotADirectory(_))
        ));
        // Once a directory's contents are there, files go inside it.
        let to = Dest::resolve("/made", target(img.path())).unwrap();
        assert_eq!(layer.dir_at(&to, "/made").unwrap(), "made");
        layer.insert(file("made/in.txt"));
        assert_eq!(layer.file_at(&to, b"a.txt"), "made/a.txt");
        // An existing directory, reached through a link, takes files by name.
        let to = Dest::resolve("/out/link", target(img.path())).unwrap();
        assert_eq!(layer.file_at(&to, b"a.txt"), "out/real/a.txt");
        // An existing file does not take a directory's contents.
        let to = Dest::resolve("/out/file", target(img.path())).unwrap();
        assert!(layer.dir_at(&to, "/out/file").is_err());
        assert_eq!(layer.file_at(&to, b"a.txt"), "out/file");
    }

    #[test]
    fn workdir_through_a_link_makes_the_directory_it_leads_to() {
        let img = image();
        assert!(
            mkdir_entries("/out/link", None, target(img.path()))
                .unwrap()
                .is_none()
        );
        let entries = mkdir_entries("/out/abs/w", None, target(img.path()))
            .unwrap()
            .unwrap();
        let paths: Vec<String> = entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(paths, ["out", "out/real", "out/real/w"]);
        let entries = mkdir_entries("/out/dangling", None, target(img.path()))
            .unwrap()
            .unwrap();
        assert!(entries.iter().any(|e| e.path == "out/new"));
    }

    #[test]
    fn a_named_file_goes_inside_a_directory_destination() {
        let img = image();
        let at = |to: &str, name: Option<&str>| {
            let entries = file_entries(to, name, "x", None, None, target(img.path())).unwrap();
            entries
                .into_iter()
                .find(|e| matches!(e.kind, EntryKind::File { .. }))
                .unwrap()
                .path
                .to_string()
        };
        assert_eq!(at("/out/real", Some("EOF")), "out/real/EOF");
        assert_eq!(at("/out/link", Some("EOF")), "out/real/EOF");
        assert_eq!(at("/out/new/", Some("EOF")), "out/new/EOF");
        assert_eq!(at("/out/file", Some("EOF")), "out/file");
        assert_eq!(at("/out/dangling", Some("EOF")), "out/new");
        assert_eq!(at("/out/real", None), "out/real");
    }
}
