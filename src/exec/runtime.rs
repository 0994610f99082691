//! Finding an OCI runtime binary that works on this host.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use super::run::run_container;
use super::{ExecError, Executor, MountKind, MountSpec, NetworkMode, RunOutcome, RunSpec};

/// Runtimes tried by [`OciRuntime::detect`] without a preference, in order.
const CANDIDATES: &[&str] = &["crun", "runc", "youki"];
/// Searched after `$PATH` (which often lacks the sbin directories).
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Probe containers started by this process (tests check the cache with it).
pub(crate) static PROBE_SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Probe results per canonical binary path: version, or why it does not work.
type ProbeCache = Mutex<HashMap<PathBuf, Result<String, String>>>;

fn probe_cache() -> &'static ProbeCache {
    static CACHE: OnceLock<ProbeCache> = OnceLock::new();
    CACHE.get_or_init(ProbeCache::default)
}

/// An OCI runtime binary (runc, crun, youki).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    binary: PathBuf,
    name: String,
    version: String,
}

impl OciRuntime {
    /// Finds a working runtime: `preferred` (a path or a name from
    /// `--runtime`) if given, else the first of crun, runc, youki whose probe
    /// container runs (see [`probe`]; `scratch` holds the probe's bundle).
    pub fn detect(preferred: Option<&str>, scratch: &Path) -> Result<OciRuntime, ExecError> {
        let candidates: Vec<&str> = match preferred {
            Some(p) => vec![p],
            None => CANDIDATES.to_vec(),
        };
        let mut tried = Vec::new();
        for candidate in candidates {
            let Some(binary) = resolve(candidate) else {
                tried.push((candidate.to_owned(), "not found".to_owned()));
                continue;
            };
            match probe(&binary, scratch) {
                Ok(version) => {
                    tracing::debug!(runtime = %binary.display(), %version, "using OCI runtime");
                    return Ok(OciRuntime::from_probed(binary, version));
                }
                Err(e) => {
                    tracing::debug!(runtime = %binary.display(), error = %e, "OCI runtime rejected");
                    tried.push((format!("{candidate} ({})", binary.display()), e.to_string()));
                }
            }
        }
        Err(ExecError::NoRuntime { tried })
    }

    /// [`OciRuntime::detect`], remembered across processes: `remembered`
    /// is what an earlier call returned as its memory. When nothing that
    /// decided that detection has changed (the candidates' binaries, by
    /// path, size, mtime and inode, and the boot), its runtime is used
    /// without a probe container; otherwise detection runs again. Returns
    /// the runtime and, when it probed one, the memory to keep.
    pub fn detect_remembered(
        preferred: Option<&str>,
        scratch: &Path,
        remembered: Option<&[u8]>,
    ) -> (Result<OciRuntime, ExecError>, Option<Vec<u8>>) {
        let fingerprint = detection_fingerprint(preferred);
        let recalled = remembered
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| {
                let mut fields = text.split('\t');
                let (Some(print), Some(binary), Some(version)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    return None;
                };
                (print == fingerprint)
                    .then(|| (PathBuf::from(binary), version.trim_end().to_owned()))
            });
        if let Some((binary, version)) = recalled {
            tracing::debug!(runtime = %binary.display(), %version, "using the OCI runtime probed by an earlier build");
            return (Ok(OciRuntime::from_probed(binary, version)), None);
        }
        let detected = OciRuntime::detect(preferred, scratch);
        let memory = detected.as_ref().ok().and_then(|runtime| {
            let binary = runtime.binary.to_str()?;
            Some(format!("{fingerprint}\t{binary}\t{}\n", runtime.version).into_bytes())
        });
        (detected, memory)
    }

    /// A runtime known to work, e.g. from a persisted earlier [`probe`].
    pub fn from_probed(binary: PathBuf, version: String) -> OciRuntime {
        let name = binary.file_name().map_or_else(
            || binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        OciRuntime {
            binary,
            name,
            version,
        }
    }

    /// The runtime binary's path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The runtime's version, as reported by `--version`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl Executor for OciRuntime {
    fn run(&self, spec: &RunSpec, output: &mut dyn FnMut(&str)) -> Result<RunOutcome, ExecError> {
        run_container(&self.binary, spec, output)
    }

    fn describe(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.binary.display())
    }
}

/// What [`OciRuntime::detect`]'s outcome depends on, as one line: the
/// preference, each candidate's resolved binary (canonical path, size,
/// mtime, inode) and this boot's id.
fn detection_fingerprint(preferred: Option<&str>) -> String {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt;
    let candidates: Vec<&str> = preferred.map_or_else(|| CANDIDATES.to_vec(), |p| vec![p]);
    let mut print = format!("v1 preferred={}", preferred.unwrap_or("-"));
    for candidate in candidates {
        let identity = resolve(candidate)
            .and_then(|binary| fs::canonicalize(binary).ok())
            .and_then(|binary| {
                let meta = fs::metadata(&binary).ok()?;
                Some(format!(
                    "{}:{}:{}.{}:{}",
                    binary.display(),
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ino()
                ))
            })
            .unwrap_or_else(|| "absent".to_owned());
        let _ = write!(print, " {candidate}={identity}");
    }
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let _ = write!(print, " boot={}", boot.trim());
    print.replace(['\t', '\n'], " ")
}

/// `name` as an executable path: itself when it contains a `/`, else
/// searched in `$PATH` and the usual bin and sbin directories.
fn resolve(name: &str) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Checks that `binary` can run a container on this host and returns its
/// version: runs `--version`, then a probe container (a root of the host's
/// `/usr`, `/bin`, `/lib`, `/lib64` bound read-only, running `true`) in a
/// bundle under `scratch`. The result is cached per process and binary.
pub fn probe(binary: &Path, scratch: &Path) -> Result<String, ExecError> {
    let key = fs::canonicalize(binary).map_err(|source| ExecError::Io {
        path: binary.to_owned(),
        source,
    })?;
    let mut cache = probe_cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = cache
        .entry(key)
        .or_insert_with(|| uncached_probe(binary, scratch).map_err(|e| e.to_string()))
        .clone();
    result.map_err(|message| ExecError::Runtime { message })
}

fn uncached_probe(binary: &Path, scratch: &Path) -> Result<String, ExecError> {
    let version = version(binary)?;
    let dir = scratch.join(format!(
        "probe-{}-{}",
        std::process::id(),
        PROBE_SPAWNS.fetch_add(1, Ordering::Relaxed)
    ));
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ExecError::Io { path, source }
    };
    let bundle = dir.join("bundle");
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&bundle).map_err(io_err(&bundle))?;
    fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
    let mounts = ["/usr", "/bin", "/lib", "/lib64"]
        .into_iter()
        .filter(|d| Path::new(d).exists())
        .map(|d| MountSpec {
            destination: d.to_owned(),
            kind: MountKind::Bind {
                source: PathBuf::from(d),
                readonly: true,
            },
        })
        .collect();
    let truth = if Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "/usr/bin/true"
    };
    let spec = RunSpec {
        bundle,
        rootfs,
        args: vec![truth.to_owned()],
        env: vec!["PATH=/usr/bin:/bin".to_owned()],
        cwd: "/".to_owned(),
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        hostname: "imgbuild-probe".to_owned(),
        network: NetworkMode::None,
        mounts,
    };
    let outcome = run_container(binary, &spec, &mut |_| {});
    // The binds live in the container's mount namespace only; nothing is
    // mounted here in ours.
    let _ = fs::remove_dir_all(&dir);
    let outcome = outcome?;
    if outcome.exit_code == 0 {
        Ok(version)
    } else {
        Err(ExecError::Runtime {
            message: format!(
                "probe container exited with code {}: {}",
                outcome.exit_code,
                outcome.log_tail.join("\n")
            ),
        })
    }
}

/// The version from `binary --version` (`runc version 1.1.5` → `1.1.5`).
fn version(binary: &Path) -> Result<String, ExecError> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ExecError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(ExecError::Runtime {
            message: format!(
                "`{} --version` failed ({}): {}",
                binary.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default().trim();
    let version = first
        .split_once(" version ")
        .map_or(first, |(_, v)| v.trim());
    if version.is_empty() {
        return Err(ExecError::Runtime {
            message: format!("`{} --version` printed nothing", binary.display()),
        });
    }
    Ok(version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::test_support::{busybox_rootfs, runc_or_skip};

    #[test]
    fn a_remembered_probe_holds_only_while_its_fingerprint_does() {
        let scratch = tempfile::tempdir().unwrap();
        let print = detection_fingerprint(None);
        // Same runtimes, same boot: the memory is used as it is, unprobed.
        let memory = format!("{print}\t/remembered/runc\t9.9\n");
        let (runtime, kept) =
            OciRuntime::detect_remembered(None, scratch.path(), Some(memory.as_bytes()));
        let runtime = runtime.unwrap();
        assert_eq!(runtime.binary(), Path::new("/remembered/runc"));
        assert_eq!(runtime.version(), "9.9");
        assert!(kept.is_none(), "nothing new to remember");
        // Another preference or binary: detected again.
        let stale = format!("{print} changed\t/remembered/runc\t9.9\n");
        let (runtime, kept) =
            OciRuntime::detect_remembered(None, scratch.path(), Some(stale.as_bytes()));
        if runc_or_skip().is_some() {
            let runtime = runtime.unwrap();
            assert_ne!(runtime.binary(), Path::new("/remembered/runc"));
            let kept = String::from_utf8(kept.unwrap()).unwrap();
            assert!(kept.starts_with(&format!("{print}\t")), "{kept}");
        }
        assert_ne!(detection_fingerprint(Some("/bin/true")), print);
    }

    #[test]
    fn detect_picks_runc_and_caches_the_probe() {
        let Some(runc) = runc_or_skip() else {
            return;
        };
        let scratch = tempfile::tempdir().unwrap();
        let first = OciRuntime::detect(None, scratch.path()).unwrap();
        assert!(
            resolve("crun").is_none(),
            "this test expects crun to be absent"
        );
        assert_eq!(first.binary(), runc);
        assert!(
            first.describe().starts_with("runc 1."),
            "{}",
            first.describe()
        );
        let spawned = PROBE_SPAWNS.load(Ordering::Relaxed);
        assert!(spawned >= 1);
        let second = OciRuntime::detect(None, scratch.path()).unwrap();
        let by_path = OciRuntime::detect(Some(runc.to_str().unwrap()), scratch.path()).unwrap();
        assert_eq!(PROBE_SPAWNS.load(Ordering::Relaxed), spawned);
        assert_eq!(first, second);
        assert_eq!(first, by_path);
        // The probe cleaned up after itself.
        assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_preferred_runtime_is_named() {
        let scratch = tempfile::tempdir().unwrap();
        let err = OciRuntime::detect(Some("crun"), scratch.path()).unwrap_err();
        let ExecError::NoRuntime { tried } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(tried, &[("crun".to_owned(), "not found".to_owned())]);
        let message = err.to_string();
        assert!(message.contains("crun: not found"), "{message}");
        assert!(message.contains("Debian package `runc`"), "{message}");
        assert!(message.contains("--runtime"), "{message}");
    }

    #[test]
    fn broken_runtime_is_rejected() {
        let scratch = tempfile::tempdir().unwrap();
        let err = OciRuntime::detect(Some("/bin/false"), scratch.path()).unwrap_err();
        assert!(matches!(err, ExecError::NoRuntime { .. }), "{err:?}");
        assert!(err.to_string().contains("/bin/false"), "{err}");
    }

    #[test]
    fn executor_runs_through_the_trait() {
        let Some(runc) = runc_or_skip() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let bundle = dir.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        let executor: Box<dyn Executor> =
            Box::new(OciRuntime::from_probed(runc, "test".to_owned()));
        let spec = RunSpec {
            bundle,
            rootfs,
            args: vec!["echo".into(), "hi".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: "h".into(),
            network: NetworkMode::None,
            mounts: Vec::new(),
        };
        let mut lines = Vec::new();
        let outcome = executor
            .run(&spec, &mut |l| lines.push(l.to_owned()))
            .unwrap();
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(lines, ["hi"]);
    }
}
