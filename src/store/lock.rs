//! Store-wide advisory locks (`flock` on `ROOT/lock`).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use super::StoreError;
use super::error::IoContext;

/// A held lock on the store; released when dropped.
///
/// `flock` locks belong to an open file, not to a process: taking
/// [`Store::lock_exclusive`](super::Store::lock_exclusive) while the same
/// process holds a shared guard blocks forever. Take the exclusive lock only
/// from code that holds no shared one.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    exclusive: bool,
    /// Counts the exclusive guards a store handle holds (see `Store::verify`).
    count: Option<Arc<AtomicUsize>>,
}

impl StoreLock {
    /// Whether this is the exclusive lock.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Makes this guard count itself in `count` while it lives.
    pub(crate) fn counted(mut self, count: &Arc<AtomicUsize>) -> StoreLock {
        count.fetch_add(1, Ordering::SeqCst);
        self.count = Some(Arc::clone(count));
        self
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first is explicit.
        let _ = flock(&self.file, FlockOperation::Unlock);
        if let Some(count) = &self.count {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Locks `path` (created if missing). With `wait = false`, returns `Ok(None)`
/// if the lock is held incompatibly by someone else.
pub(crate) fn lock_file(
    path: &Path,
    exclusive: bool,
    wait: bool,
) -> Result<Option<StoreLock>, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open lock file", path)?;
    let op = match (exclusive, wait) {
        (true, true) => FlockOperation::LockExclusive,
        (true, false) => FlockOperation::NonBlockingLockExclusive,
        (false, true) => FlockOperation::LockShared,
        (false, false) => FlockOperation::NonBlockingLockShared,
    };
    loop {
        match flock(&file, op) {
            Ok(()) => {
                return Ok(Some(StoreLock {
                    file,
                    exclusive,
                    count: None,
                }));
            }
            Err(Errno::INTR) => {}
            Err(Errno::WOULDBLOCK) if !wait => return Ok(None),
            Err(e) => return Err(StoreError::io("lock", path, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_exclusive_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let s1 = lock_file(&path, false, true).unwrap().unwrap();
        let s2 = lock_file(&path, false, false).unwrap().unwrap();
        assert!(!s1.is_exclusive());
        assert!(lock_file(&path, true, false).unwrap().is_none());
        drop(s1);
        assert!(lock_file(&path, true, false).unwrap().is_none());
        drop(s2);
        let x = lock_file(&path, true, false).unwrap().unwrap();
        assert!(x.is_exclusive());
        assert!(lock_file(&path, false, false).unwrap().is_none());
        drop(x);
        assert!(lock_file(&path, false, false).unwrap().is_some());
    }
}
