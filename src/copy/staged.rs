//! The entries a step writes, collected by path until the step is done.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use bstr::{BString, ByteSlice};

use super::links::{Inode, Links};
use super::owner::Owner;
use super::{Target, host};
use crate::layer::{Entry, EntryKind};

/// Accumulates entries by path; hard links and parents are filled in at
/// the end.
pub(super) struct Layer<'t> {
    target: Target<'t>,
    entries: BTreeMap<BString, Entry>,
    links: Links,
    created_dir_owner: Option<Owner>,
}

impl<'t> Layer<'t> {
    /// An empty layer on `target`; directories it creates belong to
    /// `created_dir_owner` (root when `None`).
    pub(super) fn new(target: Target<'t>, created_dir_owner: Option<Owner>) -> Self {
        Layer {
            target,
            entries: BTreeMap::new(),
            links: Links::default(),
            created_dir_owner,
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

    /// Links the names of each shared inode, then adds every missing parent:
    /// existing directories keep their metadata, new ones are 0755, owned by
    /// `created_dir_owner` (the step's `chown`, as `BuildKit` gives it to
    /// every directory a copy creates) or root.
    pub(super) fn finish(mut self) -> Vec<Entry> {
        self.links.apply(&mut self.entries);
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
