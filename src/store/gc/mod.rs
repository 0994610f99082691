//! Garbage collection: what the store holds and what nothing needs any more.
//!
//! One scan of the store (an [`Inventory`]) serves both `imgbuild du`
//! ([`Store::disk_usage`]) and `imgbuild prune` ([`Store::prune`]), so what
//! `du` calls reclaimable is exactly what `prune` removes.
//!
//! What keeps what:
//!
//! - every manifest in `index.json` (tagged or not) keeps the blobs it
//!   reaches through indexes, manifests and configs, and its configs'
//!   `diff_ids` keep their snapshots;
//! - every usable cache entry keeps its layer blob and that layer's snapshot;
//! - every usable compressed variant (`build-cache/variants/`, written by
//!   exports) keeps its compressed blob;
//! - nothing keeps a cache entry or variant but `prune` choosing not to
//!   remove it.
//!
//! Sizes are disk usage (allocated blocks, each hard-linked file once), as
//! `du` counts them, not apparent file lengths.

mod prune;
mod usage;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};
use std::time::SystemTime;

use serde_json::Value;

pub use prune::{EntryRemoval, PruneOptions, PruneReport, RemovedEntry};
pub use usage::{CacheItemKind, EntryUsage, Usage, UsageKind, UsageRow};

use super::digest::is_hex64;
use super::tmp::{self, SweepMode};
use super::{CacheEntry, CacheTable, Descriptor, Digest, Store, StoreError};

/// Something in the store that is measured and removed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Item {
    /// `blobs/sha256/HEX`.
    Blob(Digest),
    /// `snapshots/HEX/` (HEX = the `diff_id`'s hex).
    Snapshot(Digest),
    /// `build-cache/entries/KEY` or `build-cache/variants/KEY`.
    Entry(CacheItemKind, String),
    /// Everything in `build-cache/records/`.
    Records,
    /// Everything in `build-cache/inputs/`.
    Inputs,
    /// A cache mount `cache/NAME/` and its lock file `cache/NAME.lock`.
    Mount(String),
    /// A top-level entry of `tmp/`.
    Temp(String),
    /// Everything else: `index.json`, locks, `meta/`, directories themselves, strays.
    Other,
}

impl CacheItemKind {
    fn table(self) -> CacheTable {
        match self {
            CacheItemKind::Step => CacheTable::Entries,
            CacheItemKind::CompressedLayer => CacheTable::Variants,
        }
    }
}

/// A cache entry or compressed variant as found on disk.
#[derive(Debug, Clone)]
struct EntryFile {
    kind: CacheItemKind,
    key: String,
    /// The file's modification time: its last use (or when it was written).
    last_used: SystemTime,
    /// When readable: a step's image history line, a variant's media type.
    description: Option<String>,
    /// The blob the file names, and for a step's layer its `diff_id`.
    blob: Option<(Digest, Option<Digest>)>,
    /// Readable and its blob (if any) is in the store: a build or export can use it.
    usable: bool,
}

impl EntryFile {
    /// Reads `key` of `kind`'s table.
    fn read(
        store: &Store,
        kind: CacheItemKind,
        key: String,
        last_used: SystemTime,
    ) -> Result<EntryFile, StoreError> {
        let bytes = store.cache_read(kind.table(), &key)?;
        let (description, blob) = match kind {
            CacheItemKind::Step => {
                match bytes.and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok()) {
                    Some(entry) => (
                        Some(entry.created_by),
                        Some(entry.layer.map(|l| (l.digest, Some(l.diff_id)))),
                    ),
                    None => (None, None),
                }
            }
            // Written by `export::compress`: {"media_type", "digest", "size"}.
            CacheItemKind::CompressedLayer => {
                let doc = bytes.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                let digest = doc
                    .as_ref()
                    .and_then(|d| d.get("digest")?.as_str())
                    .and_then(|d| Digest::parse(d).ok());
                match digest {
                    Some(digest) => {
                        let media_type = doc
                            .as_ref()
                            .and_then(|d| d.get("media_type")?.as_str())
                            .unwrap_or_default();
                        (Some(media_type.to_owned()), Some(Some((digest, None))))
                    }
                    None => (None, None),
                }
            }
        };
        // `blob`: None = unreadable; Some(None) = readable, keeps no blob.
        let usable = blob
            .as_ref()
            .is_some_and(|b| b.as_ref().is_none_or(|(d, _)| store.has_blob(d)));
        Ok(EntryFile {
            kind,
            key,
            last_used,
            description,
            blob: blob.flatten(),
            usable,
        })
    }

    /// The blob (and `diff_id`, for a step's layer) this keeps, if it is usable.
    fn layer(&self) -> Option<(&Digest, Option<&Digest>)> {
        let (blob, diff_id) = self.blob.as_ref().filter(|_| self.usable)?;
        Some((blob, diff_id.as_ref()))
    }

    /// Its item, for sizes.
    fn item(&self) -> Item {
        Item::Entry(self.kind, self.key.clone())
    }
}

/// One scan of the store: every item with its size, and what references what.
#[derive(Debug)]
struct Inventory {
    /// Disk usage of each item.
    sizes: HashMap<Item, u64>,
    /// Disk usage of the whole store.
    total: u64,
    /// How many tags `index.json` has.
    tags: usize,
    /// Blob files present.
    blobs: BTreeSet<Digest>,
    /// Blobs reachable from `index.json` (present or not).
    tagged: BTreeSet<Digest>,
    /// Layer `diff_ids` of the configs reachable from `index.json`.
    tagged_diff_ids: BTreeSet<Digest>,
    /// Cache entries and compressed variants, least recently used first.
    entries: Vec<EntryFile>,
    /// Snapshot directories present, by `diff_id`.
    snapshots: BTreeSet<Digest>,
    /// Cache mount names (`cache/NAME/`).
    mounts: BTreeSet<String>,
    /// Top-level `tmp/` names, with whether they are leftovers `prune` removes
    /// (of dead processes, or not imgbuild's).
    temp: BTreeMap<String, bool>,
}

impl Inventory {
    /// Scans `store`. Reading a tagged manifest that is corrupt is an error:
    /// without it, what it references cannot be known.
    fn scan(store: &Store) -> Result<Inventory, StoreError> {
        let root = store.root();
        let (sizes, total) = measure(root);

        let index = store.index_manifests()?;
        let tags = index.iter().filter(|d| d.ref_name().is_some()).count();
        let (tagged, tagged_diff_ids) = reachable(store, &index)?;

        let blobs = names_in(&root.join("blobs").join("sha256"), Some(false))
            .filter_map(|name| Digest::from_hex(&name).ok())
            .collect();
        let snapshots = names_in(&root.join("snapshots"), Some(true))
            .filter_map(|name| Digest::from_hex(&name).ok())
            .collect();
        let cache = root.join("cache");
        let mounts = names_in(&cache, Some(true))
            .chain(
                names_in(&cache, Some(false))
                    .filter_map(|name| name.strip_suffix(".lock").map(str::to_owned)),
            )
            .filter(|name| is_mount_name(name))
            .collect();

        let mut entries = Vec::new();
        for kind in [CacheItemKind::Step, CacheItemKind::CompressedLayer] {
            for (key, _, last_used) in store.cache_keys(kind.table())? {
                entries.push(EntryFile::read(store, kind, key, last_used)?);
            }
        }
        entries.sort_by(|a, b| (a.last_used, a.kind, &a.key).cmp(&(b.last_used, b.kind, &b.key)));

        let leftovers: HashSet<String> = tmp::sweep(
            &store.tmp_dir(),
            Some(store.inner.owner.id()),
            SweepMode {
                remove_dead: false,
                remove_foreign: false,
            },
        )?
        .leftovers
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
        let temp = names_in(&store.tmp_dir(), None)
            .map(|name| {
                let removable = leftovers.contains(&name);
                (name, removable)
            })
            .collect();

        Ok(Inventory {
            sizes,
            total,
            tags,
            blobs,
            tagged,
            tagged_diff_ids,
            entries,
            snapshots,
            mounts,
            temp,
        })
    }

    /// The disk usage of `item` (0 if it was not there when measured).
    fn size(&self, item: &Item) -> u64 {
        self.sizes.get(item).copied().unwrap_or(0)
    }

    /// The disk usage of an entry: its file, plus its blob and that
    /// layer's snapshot when present.
    fn entry_size(&self, entry: &EntryFile) -> u64 {
        let mut size = self.size(&entry.item());
        if let Some((blob, diff_id)) = &entry.blob {
            size += self.size(&Item::Blob(blob.clone()));
            if let Some(diff_id) = diff_id {
                size += self.size(&Item::Snapshot(diff_id.clone()));
            }
        }
        size
    }
}

/// UTF-8 names in `dir`: of directories (`Some(true)`), of anything else
/// (`Some(false)`), or all (`None`); none if `dir` is missing.
fn names_in(dir: &Path, dirs: Option<bool>) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(move |e| dirs.is_none_or(|d| e.file_type().is_ok_and(|t| t.is_dir() == d)))
        .filter_map(|e| e.file_name().into_string().ok())
}

/// Whether `name` (in `ROOT/cache`) is a cache mount directory: `exec::step`
/// names them `ID-HEX12` (the id made file-safe, then 12 hex digits of its
/// digest).
fn is_mount_name(name: &str) -> bool {
    let Some((id, hex)) = name.rsplit_once('-') else {
        return false;
    };
    !id.is_empty()
        && hex.len() == 12
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Which item a path (relative to the store root) belongs to.
fn classify(relative: &Path, is_dir: bool) -> Item {
    let parts: Vec<&str> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => name.to_str().unwrap_or("\0"),
            _ => "\0",
        })
        .collect();
    match parts.as_slice() {
        ["blobs", "sha256", hex] if !is_dir => {
            Digest::from_hex(hex).map_or(Item::Other, Item::Blob)
        }
        ["snapshots", hex, rest @ ..] if is_hex64(hex) && (is_dir || !rest.is_empty()) => {
            Digest::from_hex(hex).map_or(Item::Other, Item::Snapshot)
        }
        ["unsynced", _boot, hex] if is_hex64(hex) && !is_dir => {
            Digest::from_hex(hex).map_or(Item::Other, Item::Snapshot)
        }
        ["build-cache", "entries", key] if !is_dir => {
            Item::Entry(CacheItemKind::Step, (*key).to_owned())
        }
        ["build-cache", "variants", key] if !is_dir => {
            Item::Entry(CacheItemKind::CompressedLayer, (*key).to_owned())
        }
        ["build-cache", "records", _, ..] => Item::Records,
        ["build-cache", "inputs", _, ..] => Item::Inputs,
        ["cache", name, rest @ ..] => {
            let mount = if rest.is_empty() && !is_dir {
                name.strip_suffix(".lock").filter(|n| is_mount_name(n))
            } else {
                Some(*name).filter(|n| is_mount_name(n) && (is_dir || !rest.is_empty()))
            };
            mount.map_or(Item::Other, |m| Item::Mount(m.to_owned()))
        }
        ["tmp", name, ..] => Item::Temp((*name).to_owned()),
        _ => Item::Other,
    }
}

/// Disk usage of every item under `root`, and of all of it. Does not cross
/// into other filesystems (a running build's overlay mounts), and counts a
/// hard-linked file once. Unreadable parts are skipped (logged).
fn measure(root: &Path) -> (HashMap<Item, u64>, u64) {
    let mut sizes: HashMap<Item, u64> = HashMap::new();
    let mut total = 0;
    let mut seen = HashSet::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(true);
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot measure part of the store: {e}");
                continue;
            }
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_dir() && meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let size = meta.blocks() * 512;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        *sizes.entry(classify(relative, meta.is_dir())).or_default() += size;
        total += size;
    }
    (sizes, total)
}

/// The blobs reachable from `roots` (present or not), and the layer
/// `diff_ids` of the configs among them. JSON documents (by media type) are
/// followed through `manifests`, `config`, `layers`, `blobs` and `subject`.
fn reachable(
    store: &Store,
    roots: &[Descriptor],
) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>), StoreError> {
    let mut seen = BTreeSet::new();
    let mut diff_ids = BTreeSet::new();
    let mut stack: Vec<(String, Digest)> = roots
        .iter()
        .map(|d| (d.media_type.clone(), d.digest.clone()))
        .collect();
    while let Some((media_type, digest)) = stack.pop() {
        if !seen.insert(digest.clone()) || !media_type.ends_with("json") || !store.has_blob(&digest)
        {
            continue;
        }
        // A digest mismatch is an error (the store is damaged: repair it
        // first); content that is not JSON merely references nothing.
        let bytes = store.read_blob(&digest)?;
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::warn!("blob {digest} ({media_type}) is not JSON; it references nothing");
            continue;
        };
        let mut push = |descriptor: &Value| {
            let media_type = descriptor.get("mediaType").and_then(Value::as_str);
            let digest = descriptor
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok());
            if let Some(digest) = digest {
                stack.push((media_type.unwrap_or_default().to_owned(), digest));
            }
        };
        for list in ["manifests", "layers", "blobs"] {
            for descriptor in doc
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(descriptor);
            }
        }
        for single in ["config", "subject"] {
            if let Some(descriptor) = doc.get(single) {
                push(descriptor);
            }
        }
        for id in doc
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = id.as_str().and_then(|d| Digest::parse(d).ok()) {
                diff_ids.insert(id);
            }
        }
    }
    Ok((seen, diff_ids))
}
