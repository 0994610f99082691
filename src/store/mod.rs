//! The content store: an OCI image layout plus extracted layer snapshots.
//!
//! ```text
//! ROOT/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! ROOT/index.json          OCI image index; tags are ref.name annotations
//! ROOT/blobs/sha256/HEX    content-addressed blobs
//! ROOT/snapshots/HEX/      extracted layers by diff_id, complete ones only
//! ROOT/tmp/                temp entries (see the `tmp` module for ownership)
//! ROOT/lock                flock target for builds (shared) and gc/verify (exclusive)
//! ROOT/index.lock          flock target serialising index.json updates
//! ROOT/meta/NAME           small metadata files for other modules
//! ROOT/build-cache/         the build cache index (see the `cache` module)
//! ROOT/cache/ID-HEX12/     a `cache` mount's directory (made by `exec::step`)
//! ROOT/cache/ID-HEX12.lock its flock target, for `sharing = locked|private`
//! ```
//!
//! `gc` measures all of it (`imgbuild du`) and removes what nothing needs
//! (`imgbuild prune`).
//!
//! Everything is written to `ROOT/tmp` first and renamed into place, so
//! readers never see partial content, and a killed process leaves at most
//! temp entries, which the next [`Store::open`] (or `verify --repair`) removes.

mod blob;
mod cache;
mod digest;
mod error;
mod fsutil;
mod gc;
mod history;
mod lock;
mod meta;
mod snapshot;
mod sparse;
mod tags;
mod tmp;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use blob::BlobWriter;
pub use cache::{CacheEntry, CacheTable, CachedLayer};
pub use digest::{Digest, Hasher};
pub use error::StoreError;
pub use gc::{
    CacheItemKind, EntryRemoval, EntryUsage, PruneOptions, PruneReport, RemovedEntry, Usage,
    UsageKind, UsageRow,
};
pub use history::{BuildRecord, BuiltRecord, KEPT_BUILDS, StepOutcome};
pub use lock::StoreLock;
pub use snapshot::SnapshotDraft;
pub use sparse::{SparseWriter, copy_sparse};
pub use tags::{
    Descriptor, DescriptorPlatform, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION,
};
pub use verify::VerifyReport;

use error::IoContext;
pub(crate) use fsutil::remove_tree;
pub(crate) use tmp::{Owner, SweepMode, sweep as sweep_temp};

/// A handle on a content store directory. Cheap to clone; clones share one
/// temp-file owner identity (see the `tmp` module).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    owner: Owner,
    /// Exclusive store locks held through this handle (and its clones).
    exclusive_held: Arc<AtomicUsize>,
    /// Other boots' directories of unsynced-snapshot markers (see `snapshot`).
    other_boots: std::sync::OnceLock<Vec<PathBuf>>,
}

impl Store {
    /// Default root: `$XDG_CACHE_HOME/imgbuild`, else `$HOME/.cache/imgbuild`,
    /// else `<temp dir>/imgbuild-<uid>`.
    pub fn default_root() -> PathBuf {
        let non_empty_abs = |v: Option<std::ffi::OsString>| {
            v.map(PathBuf::from)
                .filter(|p| p.is_absolute() && !p.as_os_str().is_empty())
        };
        if let Some(xdg) = non_empty_abs(std::env::var_os("XDG_CACHE_HOME")) {
            return xdg.join("imgbuild");
        }
        if let Some(home) = non_empty_abs(std::env::var_os("HOME")) {
            return home.join(".cache").join("imgbuild");
        }
        std::env::temp_dir().join(format!("imgbuild-{}", rustix::process::getuid().as_raw()))
    }

    /// Opens (creating if needed) a store; removes stale temp entries left by
    /// dead processes (see the `tmp` module for how liveness is decided).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let root = std::path::absolute(&root).ctx("resolve", &root)?;
        for dir in [
            root.clone(),
            root.join("blobs").join("sha256"),
            root.join("snapshots"),
            root.join("tmp"),
            root.join("meta"),
        ] {
            std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        }
        let tmp = root.join("tmp");
        let owner = Owner::acquire(&tmp)?;
        // Best effort: a failure here must not make the store unusable;
        // `verify --repair` reports and retries it.
        let _ = tmp::sweep(
            &tmp,
            Some(owner.id()),
            SweepMode {
                remove_dead: true,
                remove_foreign: false,
            },
        );
        let store = Store {
            inner: Arc::new(Inner {
                root,
                owner,
                exclusive_held: Arc::new(AtomicUsize::new(0)),
                other_boots: std::sync::OnceLock::new(),
            }),
        };
        store.init_layout()?;
        Ok(store)
    }

    /// The store's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// `ROOT/tmp`.
    fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// A fresh, unused path in `ROOT/tmp` (same filesystem as the store, so
    /// it can be renamed into place) for a temp file or directory the caller
    /// creates and removes. If this process dies first, the next
    /// [`Store::open`] or `verify --repair` removes it. `kind` (characters
    /// other than `[A-Za-z0-9_-]` become `_`) only helps humans reading `tmp/`.
    pub fn temp_path(&self, kind: &str) -> PathBuf {
        let kind: String = kind
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.inner
            .owner
            .temp_path(if kind.is_empty() { "tmp" } else { &kind })
    }

    /// Whether this handle (or a clone) currently holds an exclusive lock.
    fn holds_exclusive(&self) -> bool {
        self.inner.exclusive_held.load(Ordering::SeqCst) > 0
    }

    /// Takes the shared store lock, held for the life of a build; blocks.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        self.lock(false, true).map(|l| l.expect("blocking lock"))
    }

    /// Takes the exclusive store lock (gc, verify); blocks. Never call it
    /// while this process holds a shared guard: that deadlocks.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        self.lock(true, true).map(|l| l.expect("blocking lock"))
    }

    /// Like [`Store::lock_shared`], but `Ok(None)` instead of waiting.
    pub fn try_lock_shared(&self) -> Result<Option<StoreLock>, StoreError> {
        self.lock(false, false)
    }

    /// Like [`Store::lock_exclusive`], but `Ok(None)` instead of waiting.
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>, StoreError> {
        self.lock(true, false)
    }

    fn lock(&self, exclusive: bool, wait: bool) -> Result<Option<StoreLock>, StoreError> {
        let guard = lock::lock_file(&self.lock_path(), exclusive, wait)?;
        Ok(if exclusive {
            guard.map(|g| g.counted(&self.inner.exclusive_held))
        } else {
            guard
        })
    }

    /// `ROOT/lock`.
    fn lock_path(&self) -> PathBuf {
        self.inner.root.join("lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let root = store.root().to_owned();
        for p in ["blobs/sha256", "snapshots", "tmp", "meta"] {
            assert!(root.join(p).is_dir(), "{p}");
        }
        let layout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        assert!(root.join("index.json").is_file());
        drop(store);
        let again = Store::open(&root).unwrap();
        assert!(again.tags().unwrap().is_empty());
    }

    #[test]
    fn store_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = Store::open(dir.path()).unwrap();
        let shared = store.lock_shared().unwrap();
        assert!(other.try_lock_shared().unwrap().is_some());
        assert!(other.try_lock_exclusive().unwrap().is_none());
        drop(shared);
        let x = other.lock_exclusive().unwrap();
        assert!(store.try_lock_shared().unwrap().is_none());
        drop(x);
        assert!(store.try_lock_exclusive().unwrap().is_some());
    }

    #[test]
    fn clean_exit_leaves_empty_tmp_and_handles_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<BlobWriter>();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clone = store.clone();
        drop(store);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            1
        );
        drop(clone);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn temp_paths_are_fresh_and_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.temp_path("build/x.y");
        let b = store.temp_path("build/x.y");
        assert_ne!(a, b);
        assert_eq!(a.parent().unwrap(), store.root().join("tmp"));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(".build_x_y"), "{name}");
        assert_eq!(store.temp_path("").extension().unwrap(), "tmp");
    }

    #[test]
    fn default_root_is_absolute() {
        assert!(Store::default_root().is_absolute());
    }
}
