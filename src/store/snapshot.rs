//! Extracted layer snapshots under `ROOT/snapshots/HEX` (HEX = the `diff_id` hex).
//!
//! A snapshot is derived data: its layer's blob, which is durable, can make
//! it again. So publishing one does not wait for the disk (a `syncfs` per
//! snapshot cost a large part of a rebuild, and more the busier the disk).
//! What a crash could leave instead is a snapshot whose directory survived
//! but whose file data did not. To catch that, a snapshot is published with
//! a marker, `ROOT/unsynced/HEX`, holding the id of the boot that wrote it:
//! - within that boot the page cache is the truth, so the snapshot is used;
//! - after a reboot, a snapshot still marked is not trusted: it is removed
//!   and extracted again from its blob;
//! - [`Store::settle_snapshots`] (at the start of each build) syncs the
//!   filesystem once when markers older than the kernel's write-back delay
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

    /// `ROOT/unsynced/HEX`: the marker of a snapshot not yet known durable.
    fn unsynced_marker(&self, diff_id: &Digest) -> PathBuf {
        self.root().join("unsynced").join(diff_id.hex())
    }

    /// Snapshot of a layer: its path if complete. Snapshots only appear by an
    /// atomic rename of a fully populated directory, so present means
    /// complete; one written before the last reboot and never synced is
    /// removed instead (see the module docs).
    pub fn snapshot(&self, diff_id: &Digest) -> Option<PathBuf> {
        let path = self.snapshot_path(diff_id);
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        match fs::read(self.unsynced_marker(diff_id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(path),
            Ok(boot) if boot_id().is_some_and(|id| boot == id.as_bytes()) => Some(path),
            _ => {
                // Written before a reboot, or its marker is unreadable.
                tracing::debug!(%diff_id, "a snapshot not synced before the last reboot is extracted again");
                self.discard_snapshot(diff_id).ok()?;
                None
            }
        }
    }

    /// Removes a snapshot and its marker (renamed out of place first, so
    /// it disappears at once).
    pub(crate) fn discard_snapshot(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let path = self.snapshot_path(diff_id);
        let temp = self.temp_path("discard-snapshot");
        match fs::rename(&path, &temp) {
            Ok(()) => fsutil::remove_tree(&temp).ctx("remove", &temp)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("move out of place", path, e)),
        }
        self.remove_unsynced_marker(diff_id)
    }

    /// Removes the marker of `diff_id`'s snapshot; a missing one is fine.
    pub(crate) fn remove_unsynced_marker(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let marker = self.unsynced_marker(diff_id);
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", marker, e))
            }
            _ => Ok(()),
        }
    }

    /// Creates a snapshot: `fill` populates a fresh temp dir under ROOT/tmp; on
    /// success the dir is published as ROOT/snapshots/HEX (see
    /// [`Store::publish_snapshot`]); on error (or panic) the temp dir is
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

    /// Syncs the store's filesystem once and removes the markers of
    /// snapshots published long enough ago (see the module docs); a
    /// marker from an earlier boot takes its snapshot with it. Costs one
    /// read of `ROOT/unsynced/`, which holds only recent snapshots.
    ///
    /// # Errors
    ///
    /// When the markers cannot be read or removed, or the sync fails.
    pub fn settle_snapshots(&self) -> Result<(), StoreError> {
        let dir = self.root().join("unsynced");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("read", dir, e)),
        };
        let now = SystemTime::now();
        let mut settled = Vec::new();
        for entry in entries {
            let entry = entry.ctx("read", &dir)?;
            let Some(diff_id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            let marker = entry.path();
            let current = fs::read(&marker)
                .is_ok_and(|boot| boot_id().is_some_and(|id| boot == id.as_bytes()));
            if !current {
                self.discard_snapshot(&diff_id)?;
                continue;
            }
            let old = fs::symlink_metadata(&marker)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= SETTLE_AFTER);
            if old {
                settled.push(diff_id);
            }
        }
        if settled.is_empty() {
            return Ok(());
        }
        let root = fs::File::open(self.root()).ctx("open", self.root())?;
        rustix::fs::syncfs(&root)
            .map_err(|e| StoreError::io("sync the filesystem of", self.root(), e.into()))?;
        for diff_id in &settled {
            self.remove_unsynced_marker(diff_id)?;
        }
        fsutil::fsync_dir(&dir)
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

    /// Publishes the filled directory as the snapshot of `diff_id`: writes
    /// its unsynced marker, then renames it to ROOT/snapshots/HEX. If
    /// another process published it first, this copy is removed and the
    /// existing one used.
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
        let marker = store.unsynced_marker(diff_id);
        let markers = marker.parent().expect("a marker has a parent");
        fs::create_dir_all(markers).ctx("create directory", markers)?;
        // Without a boot id there is no telling a reboot: sync this once.
        let Some(boot) = boot_id() else {
            let dir = fs::File::open(self.path()).ctx("open", self.path())?;
            rustix::fs::syncfs(&dir)
                .map_err(|e| StoreError::io("sync the filesystem of", self.path(), e.into()))?;
            return self.rename_into_place(&dest);
        };
        fs::write(&marker, boot).ctx("write", &marker)?;
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
        store.root().join("unsynced").join(id.hex())
    }

    fn age(path: &Path, secs: i64) {
        let then = rustix::fs::Timespec {
            tv_sec: i64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap()
                - secs,
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
        assert_eq!(
            fs::read_to_string(marker(&store, &id)).unwrap(),
            boot_id().unwrap()
        );
        assert!(store.snapshot(&id).is_some(), "trusted within this boot");
    }

    #[test]
    fn a_snapshot_unsynced_before_a_reboot_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = Digest::of(b"layer");
        let path = publish(&store, &id);
        fs::write(marker(&store, &id), b"another-boot").unwrap();
        assert_eq!(store.snapshot(&id), None);
        assert!(!path.exists(), "removed, to be extracted again");
        assert!(!marker(&store, &id).exists());
        // An empty marker (its data lost in the crash) is not trusted either.
        publish(&store, &id);
        fs::write(marker(&store, &id), b"").unwrap();
        assert_eq!(store.snapshot(&id), None);
    }

    #[test]
    fn settling_syncs_old_markers_away_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (old, recent, foreign) = (Digest::of(b"old"), Digest::of(b"new"), Digest::of(b"f"));
        for id in [&old, &recent, &foreign] {
            publish(&store, id);
        }
        age(&marker(&store, &old), 120);
        fs::write(marker(&store, &foreign), b"another-boot").unwrap();
        store.settle_snapshots().unwrap();
        assert!(!marker(&store, &old).exists(), "synced: no longer marked");
        assert!(store.snapshot(&old).is_some());
        assert!(
            marker(&store, &recent).exists(),
            "too recent to be written back"
        );
        assert!(store.snapshot(&recent).is_some());
        assert!(
            !store.snapshot_path(&foreign).exists(),
            "from before a reboot"
        );
        assert!(!marker(&store, &foreign).exists());
    }
}
