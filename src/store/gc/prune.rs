//! `imgbuild prune`: removes what nothing needs, then, with a size limit,
//! the least recently used cache entries.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{CacheItemKind, EntryFile, Inventory, Item};
use crate::store::error::IoContext;
use crate::store::fsutil::remove_tree;
use crate::store::tmp::{self, SweepMode};
use crate::store::{CacheTable, Digest, Store, StoreError};

/// What [`Store::prune`] removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Remove every cache entry and compressed variant (and the cache
    /// index's records and input memos), every snapshot, every cache mount
    /// and every blob no tag reaches, instead of only what nothing needs.
    pub all: bool,
    /// Then remove least recently used cache entries (and what only they
    /// kept), and if need be snapshots, until the store uses at most this
    /// many bytes of disk.
    pub keep_storage: Option<u64>,
}

/// Why a cache entry was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRemoval {
    /// It could not be used: unreadable, or its blob was gone.
    Unusable,
    /// `--all`.
    All,
    /// Least recently used, evicted to get under `--keep-storage`.
    Evicted,
}

/// A cache entry or compressed variant [`Store::prune`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedEntry {
    /// A step's result or a compressed layer.
    pub kind: CacheItemKind,
    /// Its key.
    pub key: String,
    /// When it was readable: a step's image history line, a variant's media type.
    pub description: Option<String>,
    /// Why it was removed.
    pub why: EntryRemoval,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache entries and compressed variants, in the order they were removed.
    pub entries: Vec<RemovedEntry>,
    /// Record and input-memo files of the cache index (only `--all` removes them).
    pub index_files: usize,
    /// Blobs.
    pub blobs: Vec<Digest>,
    /// Snapshots, by `diff_id`.
    pub snapshots: Vec<Digest>,
    /// Cache mount directories (names in `ROOT/cache`).
    pub cache_mounts: Vec<String>,
    /// Temp entries of dead processes, and files in `tmp/` that are not imgbuild's.
    pub temp: Vec<PathBuf>,
    /// Disk space freed, in bytes.
    pub reclaimed: u64,
    /// Disk space the store uses afterwards, in bytes.
    pub size: u64,
}

/// What one prune removes before any `keep_storage` eviction.
#[derive(Debug, Default)]
pub(super) struct Removals {
    /// Cache entries and variants, as indexes into [`Inventory::entries`].
    pub entries: BTreeSet<usize>,
    /// Every record and input memo.
    pub index_files: bool,
    /// Blob digests.
    pub blobs: BTreeSet<Digest>,
    /// Snapshot `diff_ids`.
    pub snapshots: BTreeSet<Digest>,
    /// Cache mount names.
    pub mounts: BTreeSet<String>,
    /// Top-level names in `tmp/`.
    pub temp: BTreeSet<String>,
}

impl Removals {
    /// What plain prune (`all = false`) or `prune --all` removes from `inventory`.
    pub(super) fn plan(inventory: &Inventory, all: bool) -> Removals {
        let entries: BTreeSet<usize> = inventory
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| all || !e.usable)
            .map(|(i, _)| i)
            .collect();
        let kept: Vec<&EntryFile> = inventory
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !entries.contains(i))
            .map(|(_, e)| e)
            .collect();
        let kept_blobs: BTreeSet<&Digest> =
            kept.iter().filter_map(|e| e.layer()).map(|l| l.0).collect();
        let blobs = inventory
            .blobs
            .iter()
            .filter(|d| !inventory.tagged.contains(*d) && !kept_blobs.contains(d))
            .cloned()
            .collect();
        let snapshots = if all {
            inventory.snapshots.clone()
        } else {
            let needed: BTreeSet<&Digest> = kept.iter().filter_map(|e| e.layer()?.1).collect();
            inventory
                .snapshots
                .iter()
                .filter(|d| !inventory.tagged_diff_ids.contains(*d) && !needed.contains(d))
                .cloned()
                .collect()
        };
        Removals {
            entries,
            index_files: all,
            blobs,
            snapshots,
            mounts: if all {
                inventory.mounts.clone()
            } else {
                BTreeSet::new()
            },
            temp: inventory
                .temp
                .iter()
                .filter(|(_, removable)| **removable)
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }
}

impl Store {
    /// Removes what nothing needs: cache entries and compressed variants
    /// that cannot be used (their blob is gone), blobs that neither
    /// `index.json` nor a cache entry or variant references, snapshots no remaining tagged image or cache entry needs,
    /// and leftovers in `tmp/`. `options.all` removes every cache entry,
    /// snapshot and cache mount and every blob no tag reaches (plus the cache
    /// index's records and input memos); `options.keep_storage` then evicts
    /// cache entries and variants, least recently used first, then
    /// snapshots, until the store is that small.
    /// Tagged images are never touched.
    ///
    /// A cache entry is removed before its blob and snapshots are moved out
    /// of place before they are deleted, so a killed prune never leaves
    /// anything a later build would trust half-removed.
    ///
    /// Needs the store to itself: unless this handle already holds
    /// [`Store::lock_exclusive`], it takes the exclusive lock without waiting,
    /// and fails with [`StoreError::Busy`] while a build holds the shared one.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, StoreError> {
        let _guard = if self.holds_exclusive() {
            None
        } else {
            Some(self.try_lock_exclusive()?.ok_or_else(|| StoreError::Busy {
                path: self.lock_path(),
            })?)
        };
        let inventory = super::Inventory::scan(self)?;
        let removals = Removals::plan(&inventory, options.all);
        let mut report = PruneReport::default();
        let why = if options.all {
            EntryRemoval::All
        } else {
            EntryRemoval::Unusable
        };

        // Entries first: a later build must never find an entry without its blob.
        for &i in &removals.entries {
            self.remove_entry(&inventory, &inventory.entries[i], why, &mut report)?;
        }
        if removals.index_files {
            for table in [CacheTable::Records, CacheTable::Inputs] {
                for (key, _, _) in self.cache_keys(table)? {
                    self.cache_remove(table, &key)?;
                    report.index_files += 1;
                }
            }
            report.reclaimed += inventory.size(&Item::Records) + inventory.size(&Item::Inputs);
        }
        for digest in &removals.blobs {
            self.remove_blob(&inventory, digest, &mut report)?;
        }
        for diff_id in &removals.snapshots {
            self.remove_snapshot(&inventory, diff_id, &mut report)?;
        }
        for name in &removals.mounts {
            let dir = self.root().join("cache").join(name);
            self.remove_dir_out_of_place(&dir, "prune-mount")?;
            let lock = self.root().join("cache").join(format!("{name}.lock"));
            remove_file(&lock)?;
            report.reclaimed += inventory.size(&Item::Mount(name.clone()));
            report.cache_mounts.push(name.clone());
        }
        // Liveness is checked again here, under the lock: never a running process's files.
        let swept = tmp::sweep(
            &self.tmp_dir(),
            Some(self.inner.owner.id()),
            SweepMode {
                remove_dead: true,
                remove_foreign: true,
            },
        )?;
        for path in swept.leftovers {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                report.reclaimed += inventory.size(&Item::Temp(name.to_owned()));
            }
            report.temp.push(path);
        }

        if let Some(limit) = options.keep_storage {
            self.evict(&inventory, &removals, limit, &mut report)?;
        }
        report.size = inventory.total.saturating_sub(report.reclaimed);
        Ok(report)
    }

    /// Removes remaining cache entries, least recently used first, with the
    /// blobs and snapshots only they kept, until the store uses at most
    /// `limit`; then, if that was not enough, the remaining snapshots (of
    /// tagged images' layers: a build extracts them again when it needs them).
    fn evict(
        &self,
        inventory: &Inventory,
        removals: &Removals,
        limit: u64,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        let remaining: Vec<&EntryFile> = inventory
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !removals.entries.contains(i))
            .map(|(_, e)| e)
            .collect();
        let mut blob_refs: HashMap<&Digest, usize> = HashMap::new();
        let mut snapshot_refs: HashMap<&Digest, usize> = HashMap::new();
        for (blob, diff_id) in remaining.iter().filter_map(|e| e.layer()) {
            *blob_refs.entry(blob).or_default() += 1;
            if let Some(diff_id) = diff_id {
                *snapshot_refs.entry(diff_id).or_default() += 1;
            }
        }
        for entry in remaining {
            if inventory.total.saturating_sub(report.reclaimed) <= limit {
                break;
            }
            self.remove_entry(inventory, entry, EntryRemoval::Evicted, report)?;
            let Some((blob, diff_id)) = entry.layer() else {
                continue;
            };
            let refs = blob_refs.get_mut(blob).expect("counted above");
            *refs -= 1;
            if *refs == 0 && !inventory.tagged.contains(blob) {
                self.remove_blob(inventory, blob, report)?;
            }
            let Some(diff_id) = diff_id else { continue };
            let refs = snapshot_refs.get_mut(diff_id).expect("counted above");
            *refs -= 1;
            if *refs == 0
                && !inventory.tagged_diff_ids.contains(diff_id)
                && inventory.snapshots.contains(diff_id)
                && !removals.snapshots.contains(diff_id)
            {
                self.remove_snapshot(inventory, diff_id, report)?;
            }
        }
        let removed: BTreeSet<Digest> = report.snapshots.iter().cloned().collect();
        for diff_id in inventory.snapshots.difference(&removed) {
            if inventory.total.saturating_sub(report.reclaimed) <= limit {
                break;
            }
            self.remove_snapshot(inventory, diff_id, report)?;
        }
        Ok(())
    }

    fn remove_entry(
        &self,
        inventory: &Inventory,
        entry: &EntryFile,
        why: EntryRemoval,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        self.cache_remove(entry.kind.table(), &entry.key)?;
        report.reclaimed += inventory.size(&entry.item());
        report.entries.push(RemovedEntry {
            kind: entry.kind,
            key: entry.key.clone(),
            description: entry.description.clone(),
            why,
        });
        Ok(())
    }

    fn remove_blob(
        &self,
        inventory: &Inventory,
        digest: &Digest,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        remove_file(&self.blob_path(digest))?;
        report.reclaimed += inventory.size(&Item::Blob(digest.clone()));
        report.blobs.push(digest.clone());
        Ok(())
    }

    fn remove_snapshot(
        &self,
        inventory: &Inventory,
        diff_id: &Digest,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        self.remove_dir_out_of_place(&self.snapshot_path(diff_id), "prune-snapshot")?;
        self.remove_unsynced_marker(diff_id)?;
        report.reclaimed += inventory.size(&Item::Snapshot(diff_id.clone()));
        report.snapshots.push(diff_id.clone());
        Ok(())
    }

    /// Renames `dir` into `tmp/` and deletes it there: a snapshot is trusted
    /// as complete when present, so it must disappear at once. If this process
    /// dies while deleting, the rest is a temp leftover, removed later.
    pub(in crate::store) fn remove_dir_out_of_place(
        &self,
        dir: &Path,
        kind: &str,
    ) -> Result<(), StoreError> {
        let temp = self.temp_path(kind);
        match fs::rename(dir, &temp) {
            Ok(()) => remove_tree(&temp).ctx("remove", &temp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("move out of place", dir, e)),
        }
    }
}

/// Removes a file; a missing one is not an error.
fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
        _ => Ok(()),
    }
}
