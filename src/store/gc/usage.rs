//! `imgbuild du`: what the store holds, how much disk it uses, and how much
//! `prune` and `prune --all` would free.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use super::prune::Removals;
use super::{Inventory, Item};
use crate::store::{Digest, Store, StoreError};

/// A kind of content in the store; each byte on disk is of exactly one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    /// Blobs reachable from `index.json`: the tagged images.
    TaggedImages,
    /// Cache entries, compressed variants, the cache index's other files,
    /// and the blobs only cache entries and variants reference.
    BuildCache,
    /// Blobs nothing references (old manifests and configs, imported base images).
    UnusedBlobs,
    /// Extracted layers.
    Snapshots,
    /// The directories of `cache` mounts.
    CacheMounts,
    /// Temp entries: of running builds, or leftovers.
    Temp,
    /// `index.json`, locks, metadata files and the directories themselves.
    Other,
}

impl UsageKind {
    /// Every kind, in the order `du` shows them.
    pub const ALL: [UsageKind; 7] = [
        UsageKind::TaggedImages,
        UsageKind::BuildCache,
        UsageKind::UnusedBlobs,
        UsageKind::Snapshots,
        UsageKind::CacheMounts,
        UsageKind::Temp,
        UsageKind::Other,
    ];

    /// The name `du` shows.
    pub fn label(self) -> &'static str {
        match self {
            UsageKind::TaggedImages => "tagged images",
            UsageKind::BuildCache => "build cache",
            UsageKind::UnusedBlobs => "unused blobs",
            UsageKind::Snapshots => "snapshots",
            UsageKind::CacheMounts => "cache mounts",
            UsageKind::Temp => "temp files",
            UsageKind::Other => "other",
        }
    }

    /// The name in `du --json`.
    pub fn key(self) -> &'static str {
        match self {
            UsageKind::TaggedImages => "tagged_images",
            UsageKind::BuildCache => "build_cache",
            UsageKind::UnusedBlobs => "unused_blobs",
            UsageKind::Snapshots => "snapshots",
            UsageKind::CacheMounts => "cache_mounts",
            UsageKind::Temp => "temp",
            UsageKind::Other => "other",
        }
    }
}

/// What a file of the build cache index that keeps a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheItemKind {
    /// A cache entry: what a step produced.
    Step,
    /// A compressed copy of an uncompressed layer, made by an export.
    CompressedLayer,
}

/// The disk usage of one kind of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow {
    /// The kind.
    pub kind: UsageKind,
    /// How many: tags, cache entries and variants, blobs, snapshots,
    /// mounts or temp entries; `None` for [`UsageKind::Other`].
    pub count: Option<usize>,
    /// Bytes of disk used.
    pub size: u64,
    /// Bytes `prune` would free.
    pub reclaimable: u64,
    /// Bytes `prune --all` would free.
    pub reclaimable_all: u64,
}

/// One cache entry or compressed variant, for `du --verbose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryUsage {
    /// A step's result or a compressed layer.
    pub kind: CacheItemKind,
    /// Its key (64 hex digits).
    pub key: String,
    /// Disk used by the file, its blob and (for a step's layer) that layer's snapshot.
    pub size: u64,
    /// Whether its blob is also a tagged image's or another entry's, so
    /// evicting it frees less than `size`.
    pub shared: bool,
    /// Whether a build or export can use it (readable, and its blob is present).
    pub usable: bool,
    /// When a build last used (or made) it; for a variant, when it was made.
    pub last_used: SystemTime,
    /// When readable: a step's image history line, a variant's media type.
    pub description: Option<String>,
}

/// What the store holds; see [`Store::disk_usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// One row per [`UsageKind`], in [`UsageKind::ALL`] order.
    pub rows: Vec<UsageRow>,
    /// Bytes of disk the whole store uses: the sum of the rows.
    pub total: u64,
    /// Every cache entry and variant, least recently used (next to be evicted) first.
    pub entries: Vec<EntryUsage>,
}

impl Usage {
    /// Bytes `prune` would free.
    pub fn reclaimable(&self) -> u64 {
        self.rows.iter().map(|r| r.reclaimable).sum()
    }

    /// Bytes `prune --all` would free.
    pub fn reclaimable_all(&self) -> u64 {
        self.rows.iter().map(|r| r.reclaimable_all).sum()
    }
}

impl Store {
    /// Measures the store. Takes no lock: while a build runs, the numbers
    /// are a moment's picture.
    pub fn disk_usage(&self) -> Result<Usage, StoreError> {
        let inventory = Inventory::scan(self)?;
        Ok(usage(&inventory))
    }
}

fn usage(inventory: &Inventory) -> Usage {
    let plain = Removals::plan(inventory, false);
    let all = Removals::plan(inventory, true);
    let size = |item: Item| inventory.size(&item);
    let blob_size = |blobs: &mut dyn Iterator<Item = &Digest>| -> u64 {
        blobs.map(|d| size(Item::Blob(d.clone()))).sum()
    };
    let snapshot_size = |ids: &BTreeSet<Digest>| -> u64 {
        ids.iter().map(|d| size(Item::Snapshot(d.clone()))).sum()
    };
    let entry_size = |indexes: &mut dyn Iterator<Item = usize>| -> u64 {
        indexes.map(|i| size(inventory.entries[i].item())).sum()
    };

    let cache_blobs: BTreeSet<&Digest> = inventory
        .entries
        .iter()
        .filter_map(|e| e.layer())
        .map(|l| l.0)
        .filter(|d| !inventory.tagged.contains(*d))
        .collect();
    let is_unused = |d: &Digest| !inventory.tagged.contains(d) && !cache_blobs.contains(d);
    let index_size = size(Item::Records) + size(Item::Inputs);

    let tagged_size = blob_size(
        &mut inventory
            .blobs
            .iter()
            .filter(|d| inventory.tagged.contains(*d)),
    );
    let cache_size = entry_size(&mut (0..inventory.entries.len()))
        + index_size
        + blob_size(&mut cache_blobs.iter().copied());
    let cache_reclaimable = |r: &Removals| {
        entry_size(&mut r.entries.iter().copied())
            + if r.index_files { index_size } else { 0 }
            + blob_size(&mut r.blobs.iter().filter(|d| cache_blobs.contains(d)))
    };
    let unused_reclaimable = |r: &Removals| blob_size(&mut r.blobs.iter().filter(|d| is_unused(d)));
    let mount_size = |names: &BTreeSet<String>| -> u64 {
        names.iter().map(|n| size(Item::Mount(n.clone()))).sum()
    };
    let temp_size = |names: &mut dyn Iterator<Item = &String>| -> u64 {
        names.map(|n| size(Item::Temp(n.clone()))).sum()
    };

    let mut rows = vec![
        UsageRow {
            kind: UsageKind::TaggedImages,
            count: Some(inventory.tags),
            size: tagged_size,
            reclaimable: 0,
            reclaimable_all: 0,
        },
        UsageRow {
            kind: UsageKind::BuildCache,
            count: Some(inventory.entries.len()),
            size: cache_size,
            reclaimable: cache_reclaimable(&plain),
            reclaimable_all: cache_reclaimable(&all),
        },
        UsageRow {
            kind: UsageKind::UnusedBlobs,
            count: Some(inventory.blobs.iter().filter(|d| is_unused(d)).count()),
            size: blob_size(&mut inventory.blobs.iter().filter(|d| is_unused(d))),
            reclaimable: unused_reclaimable(&plain),
            reclaimable_all: unused_reclaimable(&all),
        },
        UsageRow {
            kind: UsageKind::Snapshots,
            count: Some(inventory.snapshots.len()),
            size: snapshot_size(&inventory.snapshots),
            reclaimable: snapshot_size(&plain.snapshots),
            reclaimable_all: snapshot_size(&all.snapshots),
        },
        UsageRow {
            kind: UsageKind::CacheMounts,
            count: Some(inventory.mounts.len()),
            size: mount_size(&inventory.mounts),
            reclaimable: mount_size(&plain.mounts),
            reclaimable_all: mount_size(&all.mounts),
        },
        UsageRow {
            kind: UsageKind::Temp,
            count: Some(temp_count(inventory)),
            size: temp_size(&mut inventory.temp.keys()),
            reclaimable: temp_size(&mut plain.temp.iter()),
            reclaimable_all: temp_size(&mut all.temp.iter()),
        },
    ];
    let counted: u64 = rows.iter().map(|r| r.size).sum();
    rows.push(UsageRow {
        kind: UsageKind::Other,
        count: None,
        size: inventory.total.saturating_sub(counted),
        reclaimable: 0,
        reclaimable_all: 0,
    });

    let entries = entry_usages(inventory);
    Usage {
        rows,
        total: inventory.total,
        entries,
    }
}

/// Each cache entry's size, and whether its blob is shared (with a tagged
/// image or another entry), for `du -v`.
fn entry_usages(inventory: &Inventory) -> Vec<EntryUsage> {
    let mut users: HashMap<&Digest, usize> = HashMap::new();
    for (blob, _) in inventory.entries.iter().filter_map(|e| e.layer()) {
        *users.entry(blob).or_default() += 1;
    }
    inventory
        .entries
        .iter()
        .map(|e| {
            let shared = e.layer().is_some_and(|(blob, _)| {
                inventory.tagged.contains(blob) || users.get(blob).is_some_and(|n| *n > 1)
            });
            EntryUsage {
                kind: e.kind,
                key: e.key.clone(),
                size: inventory.entry_size(e),
                shared,
                usable: e.usable,
                last_used: e.last_used,
                description: e.description.clone(),
            }
        })
        .collect()
}

/// Temp entries, without the owner lock files (bookkeeping every open store
/// has, not content).
fn temp_count(inventory: &Inventory) -> usize {
    inventory
        .temp
        .keys()
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_none_or(|e| e != "lock")
        })
        .count()
}
