//! `imgbuild store verify`: re-hash blobs, check snapshots, find leftovers.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::digest::is_hex64;
use super::error::IoContext;
use super::fsutil::remove_tree;
use super::tmp::{self, SweepMode};
use super::{Digest, Hasher, Store, StoreError};

/// What [`Store::verify`] found (and, with `repair`, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Blobs whose content does not match their name.
    pub corrupt_blobs: Vec<Digest>,
    /// Snapshot directories checked.
    pub snapshots_checked: usize,
    /// Temp entries left by dead processes (and unrecognised names in `tmp/`).
    pub temp_leftovers: Vec<PathBuf>,
    /// Entries in `blobs/sha256/` or `snapshots/` that are not a blob file or a
    /// snapshot directory named by 64 hex digits.
    pub strays: Vec<PathBuf>,
    /// Tags whose manifest blob is missing (repair removes them).
    pub dangling_tags: Vec<String>,
    /// How many corrupt blobs, leftovers and strays were removed.
    pub removed: usize,
}

impl VerifyReport {
    /// Whether nothing wrong was found.
    pub fn is_clean(&self) -> bool {
        self.corrupt_blobs.is_empty()
            && self.temp_leftovers.is_empty()
            && self.strays.is_empty()
            && self.dangling_tags.is_empty()
    }
}

impl Store {
    /// Re-hashes every blob, checks snapshot dirs are complete (no leftovers),
    /// reports temp leftovers of dead processes; `repair = true` removes
    /// corrupt blobs, leftovers and strays. Temp entries of live processes are
    /// never touched.
    ///
    /// `repair` needs the store to itself: unless this handle already holds
    /// [`Store::lock_exclusive`], it takes the exclusive lock for the duration
    /// without waiting, and fails with [`StoreError::Busy`] if a build holds
    /// the shared one (so it never removes a running build's files). Without
    /// `repair` nothing is removed and no lock is taken.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, StoreError> {
        let _guard = if repair && !self.holds_exclusive() {
            Some(self.try_lock_exclusive()?.ok_or_else(|| StoreError::Busy {
                path: self.lock_path(),
            })?)
        } else {
            None
        };
        let mut report = VerifyReport::default();
        let remove = |path: &Path, report: &mut VerifyReport| -> Result<(), StoreError> {
            if repair {
                remove_tree(path).ctx("remove", path)?;
                report.removed += 1;
            }
            Ok(())
        };

        let blobs = self.root().join("blobs").join("sha256");
        for (path, name, is_file) in sorted_entries(&blobs)? {
            let Some(digest) = Digest::from_hex(&name).ok().filter(|_| is_file) else {
                remove(&path, &mut report)?;
                report.strays.push(path);
                continue;
            };
            report.blobs_checked += 1;
            if hash_file(&path)? != digest {
                remove(&path, &mut report)?;
                report.corrupt_blobs.push(digest);
            }
        }

        let snapshots = self.root().join("snapshots");
        for (path, name, _) in sorted_entries(&snapshots)? {
            let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if is_dir && is_hex64(&name) {
                report.snapshots_checked += 1;
            } else {
                remove(&path, &mut report)?;
                report.strays.push(path);
            }
        }

        let swept = tmp::sweep(
            &self.tmp_dir(),
            Some(self.inner.owner.id()),
            SweepMode {
                remove_dead: repair,
                remove_foreign: repair,
            },
        )?;
        report.temp_leftovers = swept.leftovers;
        report.removed += swept.removed;

        for (tag, descriptor) in self.tags()? {
            if !self.has_blob(&descriptor.digest) {
                if repair && self.remove_tag(&tag)? {
                    report.removed += 1;
                }
                report.dangling_tags.push(tag);
            }
        }
        Ok(report)
    }
}

/// `(path, file name, is regular file)` of a directory's entries, sorted.
/// Names that are not UTF-8 come back lossily converted (and so never match).
fn sorted_entries(dir: &Path) -> Result<Vec<(PathBuf, String, bool)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("read", dir)? {
        let entry = entry.ctx("read", dir)?;
        let is_file = entry.file_type().ctx("stat", &entry.path())?.is_file();
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((entry.path(), name, is_file));
    }
    out.sort();
    Ok(out)
}

fn hash_file(path: &Path) -> Result<Digest, StoreError> {
    let mut file = File::open(path).ctx("open", path)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::io("read", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Descriptor, MANIFEST_MEDIA_TYPE};
    use super::*;

    #[test]
    fn fresh_store_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write_blob(b"a").unwrap();
        let report = store.verify(false).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.blobs_checked, 1);
    }

    #[test]
    fn finds_and_repairs_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = Store::open(dir.path()).unwrap();
        let good = store.write_blob(b"good").unwrap();
        let bad = store.write_blob(b"{\"manifest\":1}").unwrap();
        store
            .set_tag("app", Descriptor::new(MANIFEST_MEDIA_TYPE, bad.clone(), 14))
            .unwrap();
        fs::write(store.blob_path(&bad), b"{\"manifest\":2}").unwrap();
        let blobs = store.root().join("blobs/sha256");
        fs::write(blobs.join("not-a-digest"), b"").unwrap();
        fs::create_dir(store.root().join("snapshots/half-done")).unwrap();
        fs::create_dir(store.root().join("snapshots").join(good.hex())).unwrap();
        fs::write(store.root().join("tmp/unknown-thing"), b"").unwrap();

        let report = store.verify(false).unwrap();
        assert_eq!(report.blobs_checked, 2);
        assert_eq!(report.corrupt_blobs, vec![bad.clone()]);
        assert_eq!(report.snapshots_checked, 1);
        assert_eq!(report.strays.len(), 2, "{report:?}");
        assert_eq!(
            report.temp_leftovers,
            vec![store.root().join("tmp/unknown-thing")]
        );
        assert!(report.dangling_tags.is_empty());
        assert_eq!(report.removed, 0);
        assert!(store.has_blob(&bad));

        // A running build (shared lock) blocks repair, not checking.
        let build = other.lock_shared().unwrap();
        assert!(matches!(store.verify(true), Err(StoreError::Busy { .. })));
        assert_eq!(store.verify(false).unwrap(), report);
        drop(build);
        // Repair works when the caller already holds the exclusive lock.
        let exclusive = store.lock_exclusive().unwrap();
        let repaired = store.verify(true).unwrap();
        drop(exclusive);
        assert_eq!(repaired.removed, 5);
        assert!(!store.has_blob(&bad));
        assert!(store.has_blob(&good));
        assert_eq!(repaired.dangling_tags, vec!["app".to_owned()]);

        let after = store.verify(false).unwrap();
        assert!(after.corrupt_blobs.is_empty() && after.strays.is_empty());
        assert!(after.temp_leftovers.is_empty());
        assert!(
            after.is_clean(),
            "repair removed the dangling tag: {after:?}"
        );
    }
}
