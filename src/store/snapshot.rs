//! Extracted layer snapshots under `ROOT/snapshots/HEX` (HEX = the `diff_id` hex).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::IoContext;
use super::{Digest, Store, StoreError, fsutil};

impl Store {
    /// `ROOT/snapshots/HEX`, whether or not it exists.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root().join("snapshots").join(diff_id.hex())
    }

    /// Snapshot of a layer: its path if complete. Snapshots only appear by an
    /// atomic rename of a fully populated directory, so present means complete.
    pub fn snapshot(&self, diff_id: &Digest) -> Option<PathBuf> {
        let path = self.snapshot_path(diff_id);
        fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_dir())
            .then_some(path)
    }

    /// Creates a snapshot: `fill` populates a fresh temp dir under ROOT/tmp; on
    /// success the filesystem is synced and the dir renamed to
    /// ROOT/snapshots/HEX (if another process won the race, the temp dir is
    /// removed and the existing one used); on error (or panic) the temp dir is
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
        let temp = TempDir::create(self.temp_path(&format!("snap-{}", &diff_id.hex()[..12])))?;
        fill(temp.path())?;
        let dest = self.snapshot_path(diff_id);
        // One syncfs makes every file of the tree durable before the rename
        // publishes it (much cheaper than an fsync per file of a large layer).
        let dir = fs::File::open(temp.path()).ctx("open", temp.path())?;
        rustix::fs::syncfs(&dir)
            .map_err(|e| StoreError::io("sync the filesystem of", temp.path(), e.into()))?;
        drop(dir);
        match fs::rename(temp.path(), &dest) {
            Ok(()) => {
                temp.disarm();
                fsutil::fsync_dir(dest.parent().expect("snapshot path has a parent"))?;
                Ok(dest)
            }
            Err(e) if is_lost_race(&e) && self.snapshot(diff_id).is_some() => {
                drop(temp); // removes our copy
                Ok(dest)
            }
            Err(e) => Err(StoreError::io("rename into place", dest, e).into()),
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

/// A temp directory removed on drop unless disarmed.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn create(path: PathBuf) -> Result<TempDir, StoreError> {
        fs::create_dir(&path).ctx("create temp directory", &path)?;
        Ok(TempDir(Some(path)))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("armed")
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fsutil::remove_tree(&path);
        }
    }
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
}
