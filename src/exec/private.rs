//! Private directories for what a `run` step must keep from everyone else:
//! its secret files, SSH agent sockets and the runtime bundle (whose
//! `config.json` and runtime state hold the secret environment variables).
//!
//! They live in memory, under `/dev/shm/imgbuild-secrets/` (`/run` when there
//! is no `/dev/shm`; `imgbuild-secrets-UID` for users other than root), a
//! directory of mode 0700. Each process is an owner there, as in the store's
//! `tmp/` (an flock on `<owner>.lock` says it is alive); each step gets a
//! directory `<owner>.<seq>.step` of mode 0700, created with that mode, and
//! files in it are created with mode 0600. A step's directory is removed when
//! the step ends, however it ends: by `PrivateDir`'s drop, by the reaper
//! (see the `reaper` module) when imgbuild is killed, and by [`sweep`], which
//! every command runs at startup, when both were killed.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::ExecError;
use super::reaper::{self, Guard};
use crate::store::{Owner, SweepMode, remove_tree, sweep_temp};

/// This process's owner in [`root`], created on first use.
static OWNER: Mutex<Option<(Owner, Guard)>> = Mutex::new(None);

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExecError + '_ {
    move |source| ExecError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory holding every process's private directories.
pub fn root() -> PathBuf {
    let base = ["/dev/shm", "/run"]
        .iter()
        .map(Path::new)
        .find(|d| d.is_dir())
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        base.join("imgbuild-secrets")
    } else {
        base.join(format!("imgbuild-secrets-{}", uid.as_raw()))
    }
}

/// Creates [`root`] with mode 0700, or checks that the existing one is a
/// directory of this user (in a world-writable `/dev/shm`, anyone could have
/// made it) and narrows its mode to 0700.
fn ensure_root(root: &Path) -> Result<(), ExecError> {
    match DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(root)(e)),
    }
    let meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(ExecError::Io {
            path: root.to_owned(),
            source: io::Error::other("exists but is not a directory of this user"),
        });
    }
    if meta.mode() & 0o7777 != 0o700 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_err(root))?;
    }
    Ok(())
}

/// A step's private directory (mode 0700), removed when dropped.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
    _watch: Guard,
}

impl PrivateDir {
    /// Creates a fresh private directory, registered with the reaper first.
    pub(crate) fn create() -> Result<PrivateDir, ExecError> {
        let path = {
            let mut owner = OWNER.lock().unwrap_or_else(PoisonError::into_inner);
            if owner.is_none() {
                let root = root();
                ensure_root(&root)?;
                let acquired = Owner::acquire(&root)?;
                // A killed process's lock file: empty, but removed too.
                let lock = root.join(format!("{}.lock", acquired.id()));
                let watch = reaper::watch_path(&lock)?;
                *owner = Some((acquired, watch));
            }
            owner.as_ref().expect("just set").0.temp_path("step")
        };
        let watch = reaper::watch_path(&path)?;
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err(&path))?;
        Ok(PrivateDir {
            path,
            _watch: watch,
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new directory `name` in it, mode 0700.
    pub(crate) fn create_dir(&self, name: &str) -> Result<PathBuf, ExecError> {
        let path = self.path.join(name);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err(&path))?;
        Ok(path)
    }

    /// A new file `name` in it holding `bytes`, mode 0600.
    pub(crate) fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ExecError> {
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(bytes).map_err(io_err(&path))?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.path) {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Removes the private directories of dead processes (best effort). Those
/// of live processes, which may share the machine, stay.
pub fn sweep() {
    let root = root();
    if !root.is_dir() {
        return;
    }
    let own = OWNER.lock().unwrap_or_else(PoisonError::into_inner);
    let mode = SweepMode {
        remove_dead: true,
        remove_foreign: false,
    };
    if let Err(e) = sweep_temp(&root, own.as_ref().map(|(o, _)| o.id()), mode) {
        tracing::debug!("cannot sweep {}: {e}", root.display());
    }
}

/// Gives up this process's owner in [`root`] (unlinking its lock file);
/// called when a command ends. A later private directory takes a new one.
pub fn finish() {
    let owner = OWNER.lock().unwrap_or_else(PoisonError::into_inner).take();
    drop(owner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_0700_files_0600_and_removed_on_drop() {
        let dir = PrivateDir::create().unwrap();
        let path = dir.path().to_owned();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&root()), 0o700);
        assert_eq!(mode(&path), 0o700);
        let file = dir.write_file("secret", b"value").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"value");
        assert!(dir.write_file("secret", b"again").is_err(), "never reused");
        let sub = dir.create_dir("bundle").unwrap();
        assert_eq!(mode(&sub), 0o700);
        // A sweep spares the directories of live processes, this one included.
        sweep();
        assert!(file.exists());
        drop(dir);
        assert!(!path.exists());
        // No other unit test makes private directories; leave no lock file.
        finish();
        let prefix = path.file_name().unwrap().to_string_lossy();
        let owner = prefix.split('.').next().unwrap();
        assert!(!root().join(format!("{owner}.lock")).exists());
    }

    #[test]
    fn the_root_must_belong_to_this_user() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("secrets");
        ensure_root(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_root(&root).unwrap();
        assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o700);
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ensure_root(&file).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert!(ensure_root(&link).is_err(), "a symlink is refused");
    }
}
