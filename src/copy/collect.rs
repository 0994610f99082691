//! Collecting a step's layer entries: the entries a copy, `file` or
//! `workdir` step writes, and the parent directories they need, which keep
//! their metadata when the image has them and otherwise get `BuildKit`'s:
//! owned by the step's `chown` (or root), mode 0755 or the step's numeric
//! `chmod`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use bstr::{BString, ByteSlice};

use super::owner::{ModeSpec, Owner, resolve_owner};
use super::{CopyError, Target, host, layer_path};
use crate::layer::{Entry, EntryKind, FileSource};

/// Accumulates entries by path; parents are filled in at the end.
pub(super) struct Layer<'t> {
    pub(super) target: Target<'t>,
    pub(super) entries: BTreeMap<BString, Entry>,
    pub(super) created_dir_owner: Option<Owner>,
    /// Permission bits of the directories the step creates: 0755, or the
    /// step's numeric `chmod` (`BuildKit` 0.21, dockerfile 1.15, on).
    pub(super) created_dir_mode: u32,
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

impl Layer<'_> {
    pub(super) fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.path.clone(), entry);
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

    /// Adds every missing parent: existing directories keep their metadata,
    /// new ones get `created_dir_mode` (0755 unless a numeric `chmod`), owned by `created_dir_owner` (the step's `chown`,
    /// as `BuildKit` gives it to every directory a copy creates) or root.
    pub(super) fn finish(mut self) -> Vec<Entry> {
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

/// The entries of a `file` step: `content` at `to`.
pub fn file_entries(
    to: &str,
    content: &str,
    chown: Option<&str>,
    chmod: Option<&str>,
    target: Target<'_>,
) -> Result<Vec<Entry>, CopyError> {
    let chown = chown.map(|c| resolve_owner(c, target.root)).transpose()?;
    let owner = chown.unwrap_or(Owner { uid: 0, gid: 0 });
    let chmod = chmod.map(ModeSpec::parse).transpose()?;
    let mode = chmod.as_ref().map_or(0o644, |m| m.apply(0o644, false));
    let mut layer = Layer {
        target,
        entries: BTreeMap::new(),
        created_dir_owner: chown,
        created_dir_mode: created_dir_mode(chmod.as_ref()),
    };
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
    let mut layer = Layer {
        target,
        entries: BTreeMap::new(),
        created_dir_owner: Some(owner),
        created_dir_mode: 0o755,
    };
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
