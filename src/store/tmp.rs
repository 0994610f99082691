//! Temp entries under `ROOT/tmp` and the cleanup of ones left by dead processes.
//! (`exec` keeps its private directories for secrets the same way, in memory.)
//!
//! Every open [`Store`](super::Store) is an *owner* with a unique id
//! `p<pid>-<nanos>-<n>`. It creates `tmp/<id>.lock` and holds an exclusive
//! `flock` on it for as long as the store (or any of its blob writers) lives;
//! its temp files and directories are named `tmp/<id>.<seq>.<kind>`.
//!
//! An owner is dead when its lock file can be locked by someone else (the
//! kernel drops a flock when its holder exits, however it exits) or is gone.
//! This is used instead of checking `/proc/<pid>` because it is immune to pid
//! reuse and to processes in other pid namespaces (containers) sharing one
//! store. A cleaner keeps the dead owner's lock while removing its entries and
//! unlinks the lock file last; a starting owner re-checks after locking that
//! its lock file is still the one at the path, so it cannot adopt a lock file
//! a cleaner has just unlinked.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use super::StoreError;
use super::error::IoContext;
use super::fsutil::remove_tree;

/// Distinguishes owners created by one process in the same nanosecond.
static OWNER_COUNTER: AtomicU64 = AtomicU64::new(0);

const LOCK_SUFFIX: &str = ".lock";

/// This process's (this store handle's) claim on a set of temp names.
#[derive(Debug)]
pub(crate) struct Owner {
    id: String,
    dir: PathBuf,
    seq: AtomicU64,
    /// Holds the flock; closing it releases the claim.
    _lock: File,
}

impl Owner {
    /// Creates and locks a fresh owner lock file in `dir`.
    pub(crate) fn acquire(dir: &Path) -> Result<Owner, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let n = OWNER_COUNTER.fetch_add(1, Ordering::Relaxed);
            let id = format!("p{}-{nanos}-{n}", std::process::id());
            let path = dir.join(format!("{id}{LOCK_SUFFIX}"));
            let file = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => continue,
                Err(e) => return Err(StoreError::io("create owner lock", &path, e)),
            };
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                // A cleaner grabbed it between create and lock; it will unlink it.
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && attempts < 100 => continue,
                Err(e) => return Err(StoreError::io("lock", &path, e.into())),
            }
            // Still the file at `path`? (A cleaner may have unlinked it before we locked.)
            let ours = file.metadata().ctx("stat", &path)?;
            match fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {}
                _ if attempts < 100 => continue,
                _ => {
                    return Err(StoreError::io(
                        "claim owner lock",
                        &path,
                        io::Error::other("lock file keeps disappearing"),
                    ));
                }
            }
            return Ok(Owner {
                id,
                dir: dir.to_owned(),
                seq: AtomicU64::new(0),
                _lock: file,
            });
        }
    }

    /// A fresh, unused temp path `tmp/<id>.<seq>.<kind>`; `kind` is for humans.
    pub(crate) fn temp_path(&self, kind: &str) -> PathBuf {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{}.{seq}.{kind}", self.id))
    }

    /// This owner's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Owner {
    /// Unlinks the lock file while still holding its lock, so a clean exit
    /// leaves nothing in `tmp/` (a cleaner that opened it meanwhile sees it locked).
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join(format!("{}{LOCK_SUFFIX}", self.id)));
    }
}

/// What to do with what [`sweep`] finds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SweepMode {
    /// Remove entries of dead owners.
    pub remove_dead: bool,
    /// Remove entries whose names are not in the owner format (not ours).
    pub remove_foreign: bool,
}

/// The result of [`sweep`].
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Leftover entries found (dead owners' entries and lock files, foreign names).
    pub leftovers: Vec<PathBuf>,
    /// How many of them were removed.
    pub removed: usize,
}

/// Finds (and per `mode` removes) leftovers in the temp dir `dir`. Entries of
/// live owners, and of the owner `own`, are never touched.
pub(crate) fn sweep(dir: &Path, own: Option<&str>, mode: SweepMode) -> Result<Swept, StoreError> {
    let mut by_owner: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut foreign = Vec::new();
    for entry in fs::read_dir(dir).ctx("read", dir)? {
        let entry = entry.ctx("read", dir)?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            foreign.push(path);
            continue;
        };
        match owner_of(&name) {
            Some(owner) => {
                let list = by_owner.entry(owner.to_owned()).or_default();
                if !name.ends_with(LOCK_SUFFIX) {
                    list.push(path);
                }
            }
            None => foreign.push(path),
        }
    }

    let mut out = Swept::default();
    for (owner, entries) in by_owner {
        if Some(owner.as_str()) == own {
            continue;
        }
        let lock_path = dir.join(format!("{owner}{LOCK_SUFFIX}"));
        // Hold the dead owner's lock (if its file still exists) while removing.
        let held = match File::open(&lock_path) {
            Ok(f) => match flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Some(f),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => continue, // alive
                Err(e) => return Err(StoreError::io("lock", &lock_path, e.into())),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("open", &lock_path, e)),
        };
        for path in entries {
            if mode.remove_dead {
                remove_tree(&path).ctx("remove leftover", &path)?;
                out.removed += 1;
            }
            out.leftovers.push(path);
        }
        if held.is_some() {
            if mode.remove_dead {
                remove_tree(&lock_path).ctx("remove leftover", &lock_path)?;
                out.removed += 1;
            }
            out.leftovers.push(lock_path);
        }
    }
    for path in foreign {
        if mode.remove_foreign {
            remove_tree(&path).ctx("remove leftover", &path)?;
            out.removed += 1;
        }
        out.leftovers.push(path);
    }
    out.leftovers.sort();
    Ok(out)
}

/// The owner id of a temp entry or lock file name, if it has the owner format.
fn owner_of(name: &str) -> Option<&str> {
    let id = name.split('.').next()?;
    let rest = id.strip_prefix('p')?;
    let mut parts = rest.split('-');
    let ok = parts.next().is_some_and(is_digits)
        && parts.next().is_some_and(is_digits)
        && parts.next().is_some_and(is_digits)
        && parts.next().is_none();
    let tail = &name[id.len()..];
    let shape_ok = tail == LOCK_SUFFIX || tail.starts_with('.') && tail.len() > 1;
    (ok && shape_ok).then_some(id)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: SweepMode = SweepMode {
        remove_dead: false,
        remove_foreign: false,
    };
    const ALL: SweepMode = SweepMode {
        remove_dead: true,
        remove_foreign: true,
    };

    #[test]
    fn owner_names_parse() {
        assert_eq!(owner_of("p12-345-0.lock"), Some("p12-345-0"));
        assert_eq!(owner_of("p12-345-0.7.blob"), Some("p12-345-0"));
        assert_eq!(owner_of("p12-345-0.7.snap-abc"), Some("p12-345-0"));
        for bad in [
            "p12-345.lock",
            "x12-345-0.lock",
            "p12-345-0",
            "p12-345-0.",
            "p-1-2.lock",
            "foo",
        ] {
            assert_eq!(owner_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn live_owners_are_kept_dead_ones_swept() {
        let dir = tempfile::tempdir().unwrap();
        let live = Owner::acquire(dir.path()).unwrap();
        // A killed process: its lock file stays but nobody holds the lock.
        let dead_id = "p1-2-3";
        fs::write(dir.path().join(format!("{dead_id}.lock")), b"").unwrap();
        let live_tmp = live.temp_path("blob");
        fs::write(&live_tmp, b"x").unwrap();
        fs::write(dir.path().join(format!("{dead_id}.0.blob")), b"x").unwrap();
        fs::create_dir(dir.path().join(format!("{dead_id}.1.snap"))).unwrap();
        fs::write(dir.path().join("stray"), b"x").unwrap();

        let found = sweep(dir.path(), Some(live.id()), KEEP).unwrap();
        assert_eq!(found.removed, 0);
        assert_eq!(found.leftovers.len(), 4, "{:?}", found.leftovers);
        assert!(
            found
                .leftovers
                .contains(&dir.path().join(format!("{dead_id}.lock")))
        );

        let swept = sweep(dir.path(), Some(live.id()), ALL).unwrap();
        assert_eq!(swept.removed, 4);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        let mut want = vec![live_tmp, dir.path().join(format!("{}.lock", live.id()))];
        want.sort();
        assert_eq!(left, want);

        // Without `own`, a live owner is still recognised by its lock.
        assert!(sweep(dir.path(), None, ALL).unwrap().leftovers.is_empty());
    }
}
