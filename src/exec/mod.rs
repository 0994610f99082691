//! Running build steps (`RUN`) inside an OCI runtime (runc, crun, youki).
//!
//! The runtime binary does all namespace, mount and cgroup work; this
//! (threaded) process only writes a bundle and spawns
//! `RUNTIME --root STATE --log LOG --log-format json run --bundle BUNDLE ID`.
//!
//! - `runtime`: finding a runtime that works on this host ([`OciRuntime::detect`],
//!   [`probe`]); the probe result is cached per process.
//! - `bundle`: the bundle's `config.json` (`BuildKit`-like defaults).
//! - `run`: spawning the runtime and streaming the process's output.
//! - [`private`]: per-step directories of mode 0700, in memory, for secret
//!   files, SSH agent sockets and the bundle (whose `config.json` and runtime
//!   state hold secret environment variables).
//! - [`reaper`]: a watchdog process that kills the containers, detaches the
//!   mounts and removes the private directories of a build that was killed.
//!
//! # Mount points left in the root filesystem
//!
//! The runtime creates each missing mount point in the root filesystem before
//! mounting onto it; mount points that already exist are left untouched (an
//! overlay's upper directory stays empty for them). Missing ones are created
//! as empty directories (`/proc`, `/dev`, `/sys`, directory binds and tmpfs
//! destinations) or *empty files* with mode 0755 (`/etc/resolv.conf`,
//! `/etc/hosts`, file binds), together with missing parents such as `/etc`.
//! On an overlay root they appear in the upper directory and would end up in
//! the layer. After a run the caller should remove from the upper directory
//! each of [`standard_mount_points`] and each user mount destination that did
//! not exist in the lower layers and is still an empty file or directory,
//! then the parents that did not exist before and are now empty.

mod bundle;
pub mod private;
pub mod reaper;
pub mod rootfs;
mod run;
mod runtime;
mod ssh_agent;
pub mod step;
pub mod user;

use std::io;
use std::path::PathBuf;

pub use bundle::standard_mount_points;
pub use runtime::{OciRuntime, probe};

/// A mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What a [`MountSpec`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// Bind-mount a host path (a file or directory), read-only or not.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A tmpfs, optionally size-limited (bytes), with a mode.
    Tmpfs {
        /// Size limit in bytes.
        size: Option<u64>,
        /// Permission bits of the tmpfs root (e.g. `0o1777`).
        mode: Option<u32>,
    },
}

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Share the host's network namespace.
    Host,
    /// A new network namespace with only loopback (up).
    None,
}

/// Everything needed to run one process.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// An empty directory for `config.json` and runtime state, which hold
    /// `env`: mode 0700 (the caller creates and removes it, see [`private`]).
    pub bundle: PathBuf,
    /// The container's root, already assembled; read-write.
    pub rootfs: PathBuf,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: String,
    /// User id of the process.
    pub uid: u32,
    /// Group id of the process.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// The container's hostname.
    pub hostname: String,
    /// Network namespace choice.
    pub network: NetworkMode,
    /// User mounts, applied after the standard ones, in order.
    pub mounts: Vec<MountSpec>,
}

/// The process's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Exit code; 128+signal when killed by a signal.
    pub exit_code: i32,
    /// The last 20 lines of combined output.
    pub log_tail: Vec<String>,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Runs processes in containers.
pub trait Executor: Send + Sync {
    /// Runs `spec` to completion, calling `output` with each line as it
    /// arrives (both streams, read concurrently), and returns its outcome.
    /// A non-zero exit is an `Ok` outcome; errors are failures to run at all.
    fn run(
        &self,
        spec: &RunSpec,
        output: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, ExecError>;

    /// The runtime's name and version, for `imgbuild doctor`.
    fn describe(&self) -> String;
}

/// A failure to run a process at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No usable OCI runtime was found.
    #[error(
        "no working OCI runtime found ({}); install runc (Debian package `runc`) or pass --runtime",
        format_tried(.tried)
    )]
    NoRuntime {
        /// Each runtime tried and why it was rejected.
        tried: Vec<(String, String)>,
    },
    /// The runtime binary could not be started.
    #[error("cannot start {}", .binary.display())]
    Spawn {
        /// The runtime binary.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file operation failed.
    #[error("{}", .path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The run specification cannot be turned into a container configuration.
    #[error("invalid container configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The runtime failed before the process started.
    #[error("container runtime failed: {message}")]
    Runtime {
        /// The runtime's error output.
        message: String,
    },
    /// What would clean up after a killed build cannot be told.
    #[error(transparent)]
    Reaper(#[from] reaper::ReaperError),
    /// A private directory's owner could not be claimed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn format_tried(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "nothing tried".to_owned();
    }
    tried
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    /// The runc binary, or `None` (after a message) when tests should be skipped.
    pub(crate) fn runc_or_skip() -> Option<PathBuf> {
        let found = [
            "/usr/sbin/runc",
            "/usr/bin/runc",
            "/usr/local/sbin/runc",
            "/usr/local/bin/runc",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
        let root = rustix::process::geteuid().is_root();
        let busybox = Path::new("/bin/busybox").is_file();
        if found.is_some() && root && busybox {
            return found;
        }
        let why = format!(
            "needs root, runc and /bin/busybox (root: {root}, runc: {}, busybox: {busybox})",
            found.is_some()
        );
        assert!(
            std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
            "IMGBUILD_REQUIRE_TOOLS is set but test {why}"
        );
        eprintln!("skipping: test {why}");
        None
    }

    /// A root filesystem holding only a static busybox and some applet links.
    pub(crate) fn busybox_rootfs(dir: &Path) -> PathBuf {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "id", "ls", "ip", "hostname", "sleep", "touch", "mkdir", "uname",
            "seq", "grep", "true", "readlink", "test", "pwd", "env",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        rootfs
    }
}
