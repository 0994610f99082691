use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::store::{CachedLayer, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn diff_id_of(content: &[u8]) -> Digest {
    Digest::of(&[b"tar of ", content].concat())
}

/// A layer blob of `len` bytes of `fill`, with its (made-up) `diff_id`.
fn layer(store: &Store, fill: u8, len: usize) -> CachedLayer {
    let content = vec![fill; len];
    let digest = store.write_blob(&content).unwrap();
    CachedLayer {
        media_type: LAYER.into(),
        digest,
        size: len as u64,
        diff_id: diff_id_of(&content),
    }
}

/// Writes a config and a manifest for `layers`; returns the manifest's descriptor.
fn manifest(store: &Store, layers: &[&CachedLayer]) -> Descriptor {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = store.write_blob(&config).unwrap();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let digest = store.write_blob(&manifest).unwrap();
    Descriptor::new(MANIFEST_MEDIA_TYPE, digest, manifest.len() as u64)
}

fn snapshot(store: &Store, diff_id: &Digest, len: usize) {
    store
        .create_snapshot::<StoreError>(diff_id, |dir| {
            fs::create_dir(dir.join("usr")).unwrap();
            fs::write(dir.join("usr/file"), vec![7u8; len]).unwrap();
            // Extracted layers may hold directories no one can write to.
            fs::set_permissions(dir.join("usr"), fs::Permissions::from_mode(0o555)).unwrap();
            Ok(())
        })
        .unwrap();
}

fn put_entry(store: &Store, key: &str, layer: Option<&CachedLayer>, used_secs_ago: u64) {
    store
        .put_cache_entry(
            key,
            &CacheEntry {
                layer: layer.cloned(),
                created_by: format!("step {}", &key[..2]),
            },
        )
        .unwrap();
    set_last_use(store, key, used_secs_ago);
}

/// A compressed variant of a layer (as `export::compress` writes them).
fn put_variant(store: &Store, key: &str, blob: &Digest, made_secs_ago: u64) {
    let variant = serde_json::json!({"media_type": GZIP, "digest": blob, "size": 1});
    store
        .cache_write(CacheTable::Variants, key, variant.to_string().as_bytes())
        .unwrap();
    touch(store, CacheTable::Variants, key, made_secs_ago);
}

fn set_last_use(store: &Store, key: &str, secs_ago: u64) {
    touch(store, CacheTable::Entries, key, secs_ago);
}

fn touch(store: &Store, table: CacheTable, key: &str, secs_ago: u64) {
    fs::File::options()
        .write(true)
        .open(store.cache_dir(table).join(key))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn blobs_on_disk(store: &Store) -> BTreeSet<Digest> {
    names_in(&store.root().join("blobs/sha256"), Some(false))
        .map(|n| Digest::from_hex(&n).unwrap())
        .collect()
}

fn row(usage: &Usage, kind: UsageKind) -> UsageRow {
    *usage.rows.iter().find(|r| r.kind == kind).unwrap()
}

fn assert_consistent(usage: &Usage) {
    assert_eq!(
        usage.rows.iter().map(|r| r.size).sum::<u64>(),
        usage.total,
        "rows add up to the total: {usage:#?}"
    );
    for r in &usage.rows {
        assert!(r.reclaimable <= r.reclaimable_all, "{r:?}");
        assert!(r.reclaimable_all <= r.size, "{r:?}");
    }
}

/// A store with a bit of everything.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    /// The tagged image's layers: `tagged[1]` is also cache entry 1's.
    tagged: Vec<CachedLayer>,
    tagged_blobs: BTreeSet<Digest>,
    /// Entry 2's own layer.
    cached: CachedLayer,
    /// The blob of the usable compressed variant.
    compressed: Digest,
    /// An old manifest, config and a base image layer no one needs.
    unused: BTreeSet<Digest>,
    unused_snapshot: Digest,
    mount: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tagged = vec![layer(&store, 1, 10_000), layer(&store, 2, 20_000)];
    let app = manifest(&store, &[&tagged[0], &tagged[1]]);
    store.set_tag("app:1", app.clone()).unwrap();
    let mut tagged_blobs = blobs_on_disk(&store);
    assert_eq!(tagged_blobs.len(), 4);
    // A second tag through an index: the index, and what it reaches, are kept too.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": app.digest, "size": app.size,
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let index_digest = store.write_blob(&index).unwrap();
    store
        .set_tag(
            "app:multi",
            Descriptor::new(INDEX_MEDIA_TYPE, index_digest.clone(), index.len() as u64),
        )
        .unwrap();
    tagged_blobs.insert(index_digest);
    for l in &tagged {
        snapshot(&store, &l.diff_id, 5_000);
    }

    let cached = layer(&store, 3, 30_000);
    snapshot(&store, &cached.diff_id, 6_000);
    put_entry(&store, &key(1), Some(&tagged[1]), 300);
    put_entry(&store, &key(2), Some(&cached), 200);
    put_entry(&store, &key(5), None, 100);
    // Broken: its blob is gone; unreadable.
    let gone = layer(&store, 4, 1000);
    put_entry(&store, &key(3), Some(&gone), 50);
    fs::remove_file(store.blob_path(&gone.digest)).unwrap();
    store
        .cache_write(CacheTable::Entries, &key(4), b"{not json")
        .unwrap();
    // A compressed copy of entry 2's layer, and one whose blob is gone.
    let compressed = store.write_blob(&[9u8; 10_000]).unwrap();
    put_variant(&store, &key(0x21), &compressed, 250);
    put_variant(&store, &key(0x22), &Digest::of(b"gone"), 40);
    store
        .cache_write(CacheTable::Records, &key(9), b"{}")
        .unwrap();
    store
        .cache_write(CacheTable::Inputs, &key(9), b"{}")
        .unwrap();

    let before = blobs_on_disk(&store);
    let base_layer = layer(&store, 5, 40_000);
    snapshot(&store, &base_layer.diff_id, 7_000);
    manifest(&store, &[&base_layer, &tagged[0]]);
    let unused: BTreeSet<Digest> = blobs_on_disk(&store).difference(&before).cloned().collect();
    assert_eq!(unused.len(), 3, "a layer, a config and a manifest");

    let mount = store.root().join("cache/go_mod-0123456789ab");
    fs::create_dir_all(mount.join("pkg")).unwrap();
    fs::write(mount.join("pkg/mod.zip"), vec![1u8; 9_000]).unwrap();
    fs::write(store.root().join("cache/go_mod-0123456789ab.lock"), b"").unwrap();
    fs::write(store.root().join("tmp/not-ours"), vec![1u8; 3_000]).unwrap();
    Fixture {
        _dir: dir,
        store,
        tagged,
        tagged_blobs,
        cached,
        compressed,
        unused,
        unused_snapshot: base_layer.diff_id,
        mount,
    }
}

#[test]
fn du_classifies_every_byte() {
    let f = fixture();
    let usage = f.store.disk_usage().unwrap();
    assert_consistent(&usage);
    let count = |kind| row(&usage, kind).count;
    assert_eq!(count(UsageKind::TaggedImages), Some(2));
    assert_eq!(
        count(UsageKind::BuildCache),
        Some(7),
        "entries and variants"
    );
    assert_eq!(count(UsageKind::UnusedBlobs), Some(3));
    assert_eq!(count(UsageKind::Snapshots), Some(4));
    assert_eq!(count(UsageKind::CacheMounts), Some(1));
    assert_eq!(count(UsageKind::Temp), Some(1));
    let tagged = row(&usage, UsageKind::TaggedImages);
    assert!(tagged.size >= 30_000, "{tagged:?}");
    assert_eq!((tagged.reclaimable, tagged.reclaimable_all), (0, 0));
    let unused = row(&usage, UsageKind::UnusedBlobs);
    assert!(unused.size >= 40_000);
    assert_eq!(unused.reclaimable, unused.size);
    let mounts = row(&usage, UsageKind::CacheMounts);
    assert!(mounts.size >= 9_000);
    assert_eq!(
        (mounts.reclaimable, mounts.reclaimable_all),
        (0, mounts.size)
    );
    let cache = row(&usage, UsageKind::BuildCache);
    assert!(cache.size >= 30_000, "entry 2's own blob is build cache");
    assert!(
        cache.reclaimable > 0 && cache.reclaimable < 30_000,
        "{cache:?}"
    );
    assert_eq!(cache.reclaimable_all, cache.size);

    // Least recently used first, with what each one holds.
    let keys: Vec<&str> = usage.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [key(1), key(0x21), key(2), key(5), key(3), key(0x22), key(4)]
    );
    let by_key = |k: &str| usage.entries.iter().find(|e| e.key == k).unwrap();
    assert!(by_key(&key(1)).shared, "its blob is tagged");
    assert!(!by_key(&key(2)).shared);
    assert!(by_key(&key(2)).size >= 36_000, "blob and snapshot");
    assert!(!by_key(&key(3)).usable && !by_key(&key(4)).usable);
    assert!(!by_key(&key(0x22)).usable);
    assert_eq!(by_key(&key(4)).description, None);
    assert_eq!(by_key(&key(2)).description.as_deref(), Some("step 02"));
    let variant = by_key(&key(0x21));
    assert_eq!(variant.kind, CacheItemKind::CompressedLayer);
    assert_eq!(variant.description.as_deref(), Some(GZIP));
    assert!(variant.usable && !variant.shared && variant.size >= 10_000);
}

#[test]
fn plain_prune_removes_only_what_nothing_needs() {
    let f = fixture();
    let before = f.store.disk_usage().unwrap();
    let report = f.store.prune(&PruneOptions::default()).unwrap();

    let removed: Vec<(&str, EntryRemoval)> = report
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.why))
        .collect();
    assert_eq!(
        removed,
        [
            (key(3).as_str(), EntryRemoval::Unusable),
            (key(0x22).as_str(), EntryRemoval::Unusable),
            (key(4).as_str(), EntryRemoval::Unusable)
        ]
    );
    assert_eq!(
        report.blobs.iter().cloned().collect::<BTreeSet<_>>(),
        f.unused
    );
    assert_eq!(report.snapshots, std::slice::from_ref(&f.unused_snapshot));
    assert!(report.cache_mounts.is_empty());
    assert_eq!(report.index_files, 0);
    assert_eq!(report.temp, [f.store.root().join("tmp/not-ours")]);
    assert_eq!(report.reclaimed, before.reclaimable(), "du predicted it");
    assert_eq!(report.size, before.total - report.reclaimed);

    // Tagged images, usable entries, their blobs and snapshots, mounts and records stay.
    let expected: BTreeSet<Digest> = f
        .tagged_blobs
        .iter()
        .cloned()
        .chain([f.cached.digest.clone(), f.compressed.clone()])
        .collect();
    assert_eq!(blobs_on_disk(&f.store), expected);
    for l in f.tagged.iter().chain([&f.cached]) {
        assert!(f.store.snapshot(&l.diff_id).is_some());
    }
    for k in [key(1), key(2), key(5)] {
        assert!(f.store.cache_entry(&k).unwrap().is_some(), "{k}");
    }
    assert!(
        f.store
            .cache_read(CacheTable::Variants, &key(0x21))
            .unwrap()
            .is_some()
    );
    assert!(f.mount.join("pkg/mod.zip").is_file());
    assert!(
        f.store
            .cache_read(CacheTable::Records, &key(9))
            .unwrap()
            .is_some()
    );
    assert!(f.store.verify(false).unwrap().is_clean());

    let after = f.store.disk_usage().unwrap();
    assert_consistent(&after);
    assert_eq!(after.reclaimable(), 0);
    assert_eq!(after.total, report.size);
    assert_eq!(
        f.store.prune(&PruneOptions::default()).unwrap().reclaimed,
        0,
        "nothing left to prune"
    );
}

#[test]
fn prune_all_keeps_only_tagged_images() {
    let f = fixture();
    let before = f.store.disk_usage().unwrap();
    let report = f
        .store
        .prune(&PruneOptions {
            all: true,
            keep_storage: None,
        })
        .unwrap();
    assert_eq!(report.entries.len(), 7);
    assert!(report.entries.iter().all(|e| e.why == EntryRemoval::All));
    assert_eq!(report.index_files, 2);
    assert_eq!(report.snapshots.len(), 4);
    assert_eq!(report.cache_mounts, ["go_mod-0123456789ab"]);
    assert_eq!(report.reclaimed, before.reclaimable_all());

    assert_eq!(blobs_on_disk(&f.store), f.tagged_blobs);
    assert!(f.store.cache_keys(CacheTable::Entries).unwrap().is_empty());
    assert!(f.store.cache_keys(CacheTable::Records).unwrap().is_empty());
    assert!(f.store.cache_keys(CacheTable::Inputs).unwrap().is_empty());
    assert!(!f.mount.exists());
    assert!(
        !f.store
            .root()
            .join("cache/go_mod-0123456789ab.lock")
            .exists()
    );
    assert_eq!(names_in(&f.store.root().join("snapshots"), None).count(), 0);
    assert_eq!(f.store.tags().unwrap().len(), 2);
    assert!(f.store.verify(false).unwrap().is_clean());

    let after = f.store.disk_usage().unwrap();
    assert_consistent(&after);
    assert_eq!(after.reclaimable_all(), 0);
    assert_eq!(after.total, report.size);
}

#[test]
fn keep_storage_evicts_least_recently_used_first() {
    let f = fixture();
    f.store.prune(&PruneOptions::default()).unwrap();
    let usage = f.store.disk_usage().unwrap();
    let oldest = &usage.entries[0];
    assert_eq!(oldest.key, key(1));
    assert!(oldest.shared, "evicting it frees only its file");

    // Room for everything but the oldest entry's file: only it goes.
    let entry_file = f.store.cache_dir(CacheTable::Entries).join(key(1));
    let file_size = fs::metadata(&entry_file).unwrap().blocks() * 512;
    let limit = usage.total - file_size;
    let report = f
        .store
        .prune(&PruneOptions {
            all: false,
            keep_storage: Some(limit),
        })
        .unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.entries[0].key, key(1));
    assert_eq!(report.entries[0].why, EntryRemoval::Evicted);
    assert!(report.blobs.is_empty(), "entry 1's blob is tagged");
    assert!(report.size <= limit);
    assert!(f.store.has_blob(&f.tagged[1].digest));

    // Next, the compressed variant, with its blob.
    let usage = f.store.disk_usage().unwrap();
    let report = f
        .store
        .prune(&PruneOptions {
            all: false,
            keep_storage: Some(usage.total - 1),
        })
        .unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.entries[0].key, key(0x21));
    assert_eq!(report.entries[0].kind, CacheItemKind::CompressedLayer);
    assert_eq!(report.blobs, std::slice::from_ref(&f.compressed));
    assert!(report.snapshots.is_empty());

    // A use makes entry 5 the newest: entry 2 goes before it.
    set_last_use(&f.store, &key(5), 0);
    let usage = f.store.disk_usage().unwrap();
    let report = f
        .store
        .prune(&PruneOptions {
            all: false,
            keep_storage: Some(usage.total - 1),
        })
        .unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.entries[0].key, key(2));
    assert_eq!(
        report.blobs,
        std::slice::from_ref(&f.cached.digest),
        "only entry 2 had it"
    );
    assert_eq!(report.snapshots, std::slice::from_ref(&f.cached.diff_id));
    assert!(f.store.cache_entry(&key(5)).unwrap().is_some());

    // Zero: every entry goes, then the tagged layers' snapshots; tagged
    // images and cache mounts stay.
    let report = f
        .store
        .prune(&PruneOptions {
            all: false,
            keep_storage: Some(0),
        })
        .unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(
        report.snapshots.iter().collect::<BTreeSet<_>>(),
        f.tagged.iter().map(|l| &l.diff_id).collect()
    );
    assert_eq!(names_in(&f.store.root().join("snapshots"), None).count(), 0);
    assert!(report.size > 0);
    assert_eq!(blobs_on_disk(&f.store), f.tagged_blobs);
    assert!(f.mount.is_dir());
    let after = f.store.disk_usage().unwrap();
    assert_eq!(after.total, report.size);
    assert!(f.store.verify(false).unwrap().is_clean());
}

#[test]
fn a_running_build_blocks_prune() {
    let f = fixture();
    let build = Store::open(f.store.root()).unwrap();
    let shared = build.lock_shared().unwrap();
    assert!(matches!(
        f.store.prune(&PruneOptions::default()),
        Err(StoreError::Busy { .. })
    ));
    assert!(
        f.unused.iter().all(|d| f.store.has_blob(d)),
        "nothing removed"
    );
    drop(shared);
    // The caller may hold the exclusive lock already (to wait for it).
    let exclusive = f.store.lock_exclusive().unwrap();
    assert!(f.store.prune(&PruneOptions::default()).is_ok());
    drop(exclusive);
}

#[test]
fn a_corrupt_tagged_manifest_stops_prune() {
    let f = fixture();
    let app = f.store.tag("app:1").unwrap().unwrap();
    let path = f.store.blob_path(&app.digest);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b' ';
    fs::write(&path, bytes).unwrap();
    let err = f.store.prune(&PruneOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("verify --repair"), "{err}");
    assert!(
        f.unused.iter().all(|d| f.store.has_blob(d)),
        "nothing removed"
    );
    assert!(f.store.disk_usage().is_err());
}

#[test]
fn a_tagged_blob_that_is_not_json_references_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let odd = store.write_blob(b"not json").unwrap();
    store
        .set_tag("odd", Descriptor::new(MANIFEST_MEDIA_TYPE, odd.clone(), 8))
        .unwrap();
    let other = store.write_blob(b"other").unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.blobs, [other]);
    assert!(store.has_blob(&odd));
}

#[test]
fn items_are_classified_by_path() {
    let hex = "ab".repeat(32);
    let digest = Digest::from_hex(&hex).unwrap();
    let cases = [
        (
            format!("blobs/sha256/{hex}"),
            false,
            Item::Blob(digest.clone()),
        ),
        (format!("blobs/sha256/{hex}"), true, Item::Other),
        ("blobs/sha256/stray".to_owned(), false, Item::Other),
        (
            format!("snapshots/{hex}"),
            true,
            Item::Snapshot(digest.clone()),
        ),
        (
            format!("snapshots/{hex}/usr/bin"),
            false,
            Item::Snapshot(digest),
        ),
        (format!("snapshots/{hex}"), false, Item::Other),
        ("snapshots".to_owned(), true, Item::Other),
        (
            format!("build-cache/entries/{hex}"),
            false,
            Item::Entry(CacheItemKind::Step, hex.clone()),
        ),
        (
            format!("build-cache/variants/{hex}"),
            false,
            Item::Entry(CacheItemKind::CompressedLayer, hex.clone()),
        ),
        ("build-cache/entries".to_owned(), true, Item::Other),
        (format!("build-cache/records/{hex}"), false, Item::Records),
        (format!("build-cache/inputs/{hex}"), false, Item::Inputs),
        (format!("cache/entries/{hex}"), false, Item::Other),
        (
            "cache/go-0123456789ab".to_owned(),
            true,
            Item::Mount("go-0123456789ab".into()),
        ),
        (
            "cache/go-0123456789ab/x/y".to_owned(),
            false,
            Item::Mount("go-0123456789ab".into()),
        ),
        (
            "cache/go-0123456789ab.lock".to_owned(),
            false,
            Item::Mount("go-0123456789ab".into()),
        ),
        ("cache/go-0123456789ab".to_owned(), false, Item::Other),
        ("cache/unknown".to_owned(), true, Item::Other),
        (
            "tmp/p1-2-3.0.blob".to_owned(),
            false,
            Item::Temp("p1-2-3.0.blob".into()),
        ),
        (
            "tmp/p1-2-3.1.run/upper/f".to_owned(),
            false,
            Item::Temp("p1-2-3.1.run".into()),
        ),
        ("index.json".to_owned(), false, Item::Other),
        ("meta/stat-cache.json".to_owned(), false, Item::Other),
    ];
    for (path, is_dir, item) in cases {
        assert_eq!(classify(Path::new(&path), is_dir), item, "{path}");
    }
    for (name, ok) in [
        ("gomod-0123456789ab", true),
        ("_go_pkg_mod-0123456789ab", true),
        ("a.b-c-ffffffffffff", true),
        ("entries", false),
        ("records", false),
        ("-0123456789ab", false),
        ("go-0123456789a", false),
        ("go-0123456789AB", false),
    ] {
        assert_eq!(is_mount_name(name), ok, "{name}");
    }
}

#[test]
fn hard_links_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let diff_id = Digest::of(b"d");
    store
        .create_snapshot::<StoreError>(&diff_id, |p| {
            fs::write(p.join("a"), vec![0u8; 100_000]).unwrap();
            fs::hard_link(p.join("a"), p.join("b")).unwrap();
            Ok(())
        })
        .unwrap();
    let usage = store.disk_usage().unwrap();
    let snapshots = row(&usage, UsageKind::Snapshots);
    assert!(
        (100_000..150_000).contains(&snapshots.size),
        "{snapshots:?}"
    );
}
