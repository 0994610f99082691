//! Where a step's entries land in the image being built: the layer being
//! assembled, its missing parent directories, `file` and `workdir` steps.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use bstr::{BString, ByteSlice};

use super::owner::{ModeSpec, Owner, resolve_owner};
use super::{CopyError, Target, host, layer_path};
use crate::layer::{Entry, EntryKind, FileSource};

/// Accumulates entries by path; parents are filled in at the end.
pub(super) struct Layer<'t> {
    target: Target<'t>,
    entries: BTreeMap<BString, Entry>,
    created_dir_owner: Option<Owner>,
}

impl<'t> Layer<'t> {
    /// An empty layer over `target`; directories it creates belong to
    /// `created_dir_owner`, else root.
    pub(super) fn new(target: Target<'t>, created_dir_owner: Option<Owner>) -> Self {
        Layer {
            target,
            entries: BTreeMap::new(),
            created_dir_owner,
        }
    }

    pub(super) fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.path.clone(), entry);
    }

    /// Adds every missing parent: existing directories keep their metadata,
    /// new ones are 0755, owned by `created_dir_owner` (the step's `chown`,
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
            let existing = self
                .target
                .root
                .and_then(|root| fs::symlink_metadata(root.join(host(&parent))).ok());
            let entry = match existing {
                Some(meta) if meta.file_type().is_symlink() => continue,
                Some(meta) => Entry {
                    path: parent.clone(),
                    kind: EntryKind::Dir,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mtime: meta.mtime(),
                    xattrs: Vec::new(),
                },
                None => {
                    let owner = self.created_dir_owner.unwrap_or(Owner { uid: 0, gid: 0 });
                    Entry {
                        path: parent.clone(),
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        uid: owner.uid,
                        gid: owner.gid,
                        mtime: self.target.mtime,
                        xattrs: Vec::new(),
                    }
                }
            };
            self.entries.insert(parent, entry);
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
