//! Extracted layer snapshots under `ROOT/snapshots/HEX` (HEX = the `diff_id` hex).
//!
//! A snapshot is derived data: its layer's blob, which is durable, can make
//! it again. So publishing one does not wait for the disk (a `syncfs` per
//! snapshot cost a large part of a rebuild, and more the busier the disk).
//! What a crash could leave instead is a snapshot whose directory survived
//! but whose file data did not. To catch that, a snapshot is published with
//! a marker `ROOT/unsynced/BOOT/HEX`, BOOT being the id of the boot that
//! wrote it, made durable before the snapshot appears:
//! - within that boot the page cache is the truth, so the snapshot is used;
//! - a snapshot marked by another boot (the machine went down before its
//!   data was known to be on disk) is never used: the first build after the
//!   reboot that has the store to itself removes it
//!   ([`Store::recover_snapshots`]), and until then a build extracts its own
//!   private copy;
//! - [`Store::settle_snapshots`] (beside each build) syncs the filesystem
//!   once when this boot's markers older than the kernel's write-back delay
//!   are left, which is cheap by then, and removes those markers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::error::IoContext;
use super::{Digest, Store, StoreError, fsutil};

/// How old a marker must be before settling syncs for it: past the kernel's
/// default `dirty_expire_centisecs` (30 s), its data is written back already.
const SETTLE_AFTER: Duration = Duration::from_secs(60);

impl Store {
    /// `ROOT/snapshots/HEX`, whether or not it exists.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root().join("snapshots").join(diff_id.hex())
    }

    /// `ROOT/unsynced/`: one directory of markers per boot.
    fn unsynced_dir(&self) -> PathBuf {
        self.root().join("unsynced")
    }

    /// `ROOT/unsynced/BOOT`, this boot's markers; None without a boot id.
    fn this_boot_markers(&self) -> Option<PathBuf> {
        boot_id().map(|boot| self.unsynced_dir().join(boot))
    }

    /// The marker directories of other boots, read once per process (no
    /// new one can appear during this boot).
    fn other_boot_markers(&self) -> &[PathBuf] {
        self.inner.other_boots.get_or_init(|| {
            let Ok(entries) = fs::read_dir(self.unsynced_dir()) else {
                return Vec::new();
            };
            entries
                .filter_map(Result::ok)
                .filter(|e| boot_id().is_none_or(|boot| e.file_name() != boot))
                .map(|e| e.path())
                .collect()
        })
    }

    /// Whether another boot left `diff_id`'s snapshot marked as unsynced.
    fn marked_by_another_boot(&self, diff_id: &Digest) -> bool {
        self.other_boot_markers()
            .iter()
            .any(|dir| fs::symlink_metadata(dir.join(diff_id.hex())).is_ok())
    }

    /// Snapshot of a layer: its path if complete and trusted. Snapshots only
    /// appear by an atomic rename of a fully populated directory, so present
    /// means complete; one that another boot left unsynced is not trusted
    /// (see the module docs).
    pub fn snapshot(&self, diff_id: &Digest) -> Option<PathBuf> {
        let path = self.snapshot_path(diff_id);
        (fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && !self.marked_by_another_boot(diff_id))
        .then_some(path)
    }

    /// Removes the unsynced markers of `diff_id`'s snapshot (when it is
    /// removed); missing ones are fine.
    pub(crate) fn remove_unsynced_marker(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let mine = self.this_boot_markers();
        for dir in mine.iter().chain(self.other_boot_markers()) {
            let marker = dir.join(diff_id.hex());
            match fs::remove_file(&marker) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::io("remove", marker, e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Creates a snapshot: `fill` populates a fresh temp dir under ROOT/tmp; on
    /// success the dir is published as ROOT/snapshots/HEX (see
    /// [`SnapshotDraft::publish`]); on error (or panic) the temp dir is
    /// removed. An existing snapshot is returned without calling `fill`.
    ///
    /// Two processes creating the same snapshot at once both run `fill`; one
    /// result is kept.
    pub fn create_snapshot<E>(
        &self,
        diff_id: &Digest,
        fill: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, E>
    where
        E: From<StoreError>,
    {
        if let Some(existing) = self.snapshot(diff_id) {
            return Ok(existing);
        }
        let draft = self.snapshot_draft(&diff_id.hex()[..12])?;
        fill(draft.path())?;
        Ok(draft.publish(diff_id)?)
    }

    /// A fresh temp dir under ROOT/tmp (its name says `label`) to fill with
    /// a snapshot, whose `diff_id` need not be known yet; removed when
    /// dropped unless published.
    pub fn snapshot_draft(&self, label: &str) -> Result<SnapshotDraft, StoreError> {
        let path = self.temp_path(&format!("snap-{label}"));
        fs::create_dir(&path).ctx("create temp directory", &path)?;
        Ok(SnapshotDraft {
            store: self.clone(),
            path: Some(path),
        })
    }

    /// Syncs the store's filesystem once and removes this boot's markers of
    /// snapshots published long enough ago (see the module docs). Costs one
    /// read of this boot's marker directory, which holds only recent
    /// snapshots; never removes a snapshot, so it may run beside builds.
    ///
    /// # Errors
    ///
    /// When the markers cannot be read or removed, or the sync fails.
    pub fn settle_snapshots(&self) -> Result<(), StoreError> {
        let Some(dir) = self.this_boot_markers() else {
            return Ok(());
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("read", dir, e)),
        };
        let now = SystemTime::now();
        let mut settled = Vec::new();
        for entry in entries {
            let marker = entry.ctx("read", &dir)?.path();
            let old = fs::symlink_metadata(&marker)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= SETTLE_AFTER);
            if old {
                settled.push(marker);
            }
        }
        if settled.is_empty() {
            return Ok(());
        }
        let root = fs::File::open(self.root()).ctx("open", self.root())?;
        rustix::fs::syncfs(&root)
            .map_err(|e| StoreError::io("sync the filesystem of", self.root(), e.into()))?;
        for marker in &settled {
            match fs::remove_file(marker) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::io("remove", marker, e));
                }
                _ => {}
            }
        }
        fsutil::fsync_dir(&dir)
    }

    /// Removes every snapshot that another boot left unsynced, and those
    /// boots' markers. Only while no other process uses the store: it takes
    /// the exclusive lock if it is free, and otherwise leaves the work to a
    /// later build (meanwhile such snapshots are not used). Cheap when there
    /// is nothing to do: one read of `ROOT/unsynced/`.
    ///
    /// # Errors
    ///
    /// When the lock cannot be tried or a snapshot cannot be removed.
    pub fn recover_snapshots(&self) -> Result<(), StoreError> {
        if self.other_boot_markers().is_empty() {
            return Ok(());
        }
        let Some(_exclusive) = self.try_lock_exclusive()? else {
            return Ok(());
        };
        for dir in self.other_boot_markers() {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.ctx("read", dir)?;
                if let Some(diff_id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::from_hex(n).ok())
                {
                    tracing::debug!(%diff_id, "removing a snapshot not synced before the last reboot");
                    self.remove_dir_out_of_place(
                        &self.snapshot_path(&diff_id),
                        "discard-snapshot",
                    )?;
                }
                let _ = fs::remove_file(entry.path());
            }
            let _ = fs::remove_dir(dir);
        }
        Ok(())
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once.
fn boot_id() -> Option<&'static str> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.contains('/'))
        })
        .as_deref()
}

/// A directory under ROOT/tmp being filled to become a snapshot; removed
/// when dropped unless published.
#[derive(Debug)]
pub struct SnapshotDraft {
    store: Store,
    /// `Some` until published.
    path: Option<PathBuf>,
}

impl SnapshotDraft {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("a draft until published")
    }

    /// Publishes the filled directory as the snapshot of `diff_id`: makes
    /// its marker durable, then renames it to ROOT/snapshots/HEX. If
    /// another process published it first, this copy is removed and the
    /// existing one used. If an untrusted snapshot (another boot's, see the
    /// module docs) is in the way, this copy stays where it is, private to
    /// this process (its temp files go when it ends), and that path is
    /// returned.
    ///
    /// # Errors
    ///
    /// When the marker cannot be written or the rename fails.
    pub fn publish(mut self, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let store = self.store.clone();
        let dest = store.snapshot_path(diff_id);
        if store.snapshot(diff_id).is_some() {
            return Ok(dest); // Drop removes this copy.
        }
        if store.marked_by_another_boot(diff_id) && fs::symlink_metadata(&dest).is_ok() {
            return Ok(self.path.take().expect("a draft until published"));
        }
        let Some(markers) = store.this_boot_markers() else {
            // Without a boot id there is no telling a reboot: sync this once.
            let dir = fs::File::open(self.path()).ctx("open", self.path())?;
            rustix::fs::syncfs(&dir)
                .map_err(|e| StoreError::io("sync the filesystem of", self.path(), e.into()))?;
            return self.rename_into_place(&dest);
        };
        fs::create_dir_all(&markers).ctx("create directory", &markers)?;
        let marker = markers.join(diff_id.hex());
        fs::write(&marker, b"").ctx("write", &marker)?;
        fsutil::fsync_dir(&markers)?;
        self.rename_into_place(&dest)
    }

    fn rename_into_place(&mut self, dest: &Path) -> Result<PathBuf, StoreError> {
        match fs::rename(self.path(), dest) {
            Ok(()) => {
                self.path = None;
                Ok(dest.to_owned())
            }
            Err(e) if is_lost_race(&e) && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) => {
                Ok(dest.to_owned()) // Drop removes this copy.
            }
            Err(e) => Err(StoreError::io("rename into place", dest, e)),
        }
    }
}

impl Drop for SnapshotDraft {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fsutil::remove_tree(&path);
        }
    }
}

/// Whether a rename failed because the destination directory already exists.
fn is_lost_race(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::DirectoryNotEmpty
        || e.kind() == io::ErrorKind::AlreadyExists
        || e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp_entries(store: &Store) -> Vec<PathBuf> {
        fs::read_dir(store.root().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .collect()
    }

    #[test]
    fn create_snapshot_success_error_and_existing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = Digest::of(b"layer");
        assert_eq!(store.snapshot(&id), None);

        // Error: the temp dir (even with a read-only subdir) is removed.
        let err = store
            .create_snapshot(&id, |p| {
                fs::create_dir(p.join("ro")).unwrap();
                fs::write(p.join("ro/f"), b"x").unwrap();
                fs::set_permissions(p.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
                Err(StoreError::Corrupt {
                    path: p.to_owned(),
                    why: "bad tar".into(),
                })
            })
            .unwrap_err();
        assert!(err.to_string().contains("bad tar"));
        assert_eq!(store.snapshot(&id), None);
        assert!(tmp_entries(&store).is_empty());

        // Success: renamed into place.
        let path = store
            .create_snapshot(&id, |p| {
                assert!(p.starts_with(store.root().join("tmp")));
                fs::write(p.join("file"), b"content").map_err(|e| StoreError::io("write", p, e))
            })
            .unwrap();
        assert_eq!(path, store.root().join("snapshots").join(id.hex()));
        assert_eq!(store.snapshot(&id), Some(path.clone()));
        assert_eq!(fs::read(path.join("file")).unwrap(), b"content");
        assert!(tmp_entries(&store).is_empty());

        // Existing: fill is not called.
        let again = store
            .create_snapshot::<StoreError>(&id, |_| panic!("fill called for an existing snapshot"))
            .unwrap();
        assert_eq!(again, path);
    }

    #[test]
    fn losing_the_race_uses_the_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = Digest::of(b"layer");
        let path = store
            .create_snapshot::<StoreError>(&id, |p| {
                // Another process finishes first.
                let winner = store.snapshot_path(&id);
                fs::create_dir(&winner).unwrap();
                fs::write(winner.join("who"), b"winner").unwrap();
                fs::write(p.join("who"), b"loser").unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(fs::read(path.join("who")).unwrap(), b"winner");
        assert!(tmp_entries(&store).is_empty());
    }

    #[test]
    fn panicking_fill_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = Digest::of(b"layer");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.create_snapshot::<StoreError>(&id, |_| panic!("boom"))
        }));
        assert!(result.is_err());
        assert!(tmp_entries(&store).is_empty());
        assert_eq!(store.snapshot(&id), None);
    }

    fn marker(store: &Store, id: &Digest) -> PathBuf {
        store.this_boot_markers().unwrap().join(id.hex())
    }

    fn age(path: &Path, secs: u64) {
        let then = SystemTime::now() - Duration::from_secs(secs);
        let secs = then
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let then = rustix::fs::Timespec {
            tv_sec: i64::try_from(secs).unwrap(),
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: then,
                last_modification: then,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }

    fn publish(store: &Store, id: &Digest) -> PathBuf {
        store
            .create_snapshot::<StoreError>(id, |p| {
                fs::write(p.join("f"), b"x").map_err(|e| StoreError::io("write", p, e))
            })
            .unwrap()
    }

    #[test]
    fn a_snapshot_is_published_with_a_marker_of_this_boot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = Digest::of(b"layer");
        publish(&store, &id);
        assert!(marker(&store, &id).exists());
        assert!(store.snapshot(&id).is_some(), "trusted within this boot");
    }

    /// A store as a machine that went down left it: `ids`' snapshots
    /// marked by another boot.
    fn left_by_another_boot(root: &Path, ids: &[&Digest]) {
        let store = Store::open(root).unwrap();
        for id in ids {
            publish(&store, id);
        }
        let mine = store.this_boot_markers().unwrap();
        fs::rename(&mine, store.unsynced_dir().join("another-boot")).unwrap();
    }

    #[test]
    fn a_snapshot_unsynced_before_a_reboot_is_not_used_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let id = Digest::of(b"layer");
        left_by_another_boot(dir.path(), &[&id]);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot(&id), None, "not trusted");
        // A build that needs it meanwhile gets a private copy of its own.
        let private = publish(&store, &id);
        assert!(
            private.starts_with(store.root().join("tmp")),
            "{}",
            private.display()
        );
        assert!(
            store.snapshot_path(&id).exists(),
            "the untrusted one is left alone"
        );
        // The next build with the store to itself removes it.
        store.recover_snapshots().unwrap();
        assert!(!store.snapshot_path(&id).exists());
        assert!(!store.unsynced_dir().join("another-boot").exists());
        let store = Store::open(dir.path()).unwrap();
        let again = publish(&store, &id);
        assert_eq!(again, store.snapshot_path(&id));
        assert!(store.snapshot(&id).is_some());
    }

    #[test]
    fn recovery_waits_for_a_store_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let id = Digest::of(b"layer");
        left_by_another_boot(dir.path(), &[&id]);
        let store = Store::open(dir.path()).unwrap();
        let other = Store::open(dir.path()).unwrap();
        let _building = other.lock_shared().unwrap();
        store.recover_snapshots().unwrap();
        assert!(
            store.snapshot_path(&id).exists(),
            "another build holds the store"
        );
        assert_eq!(store.snapshot(&id), None);
    }

    #[test]
    fn settling_syncs_old_markers_away_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (old, recent) = (Digest::of(b"old"), Digest::of(b"new"));
        for id in [&old, &recent] {
            publish(&store, id);
        }
        age(&marker(&store, &old), 120);
        store.settle_snapshots().unwrap();
        assert!(!marker(&store, &old).exists(), "synced: no longer marked");
        assert!(store.snapshot(&old).is_some());
        assert!(
            marker(&store, &recent).exists(),
            "too recent to be written back"
        );
        assert!(store.snapshot(&recent).is_some());
    }
}
