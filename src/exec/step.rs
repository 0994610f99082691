//! One `run` step: assemble the rootfs, mounts and process, run it, and
//! leave the changes in an upperdir for the caller to turn into a layer.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::private::PrivateDir;
use super::reaper::{self, Guard};
use super::rootfs::{Upper, mount_overlay};
use super::ssh_agent::AgentProxy;
use super::{Executor, MountKind, MountSpec, NetworkMode, RunSpec, standard_mount_points};
use crate::ir::{Command, Mount, Network, Platform, Run, Sharing};
use crate::store::Store;

/// The default `PATH` when the image sets none, as `BuildKit` uses.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where a `#!` script is mounted: inside `/dev`, a tmpfs, so nothing reaches the layer.
const SCRIPT_PATH: &str = "/dev/.imgbuild-script";

/// Where secret values come from (`--secret id=ID,src=FILE|env=VAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file's content.
    File(PathBuf),
    /// An environment variable of the imgbuild process.
    Env(String),
}

/// What a build may hand to its steps: secrets and SSH agents by id.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Secrets by id.
    pub secrets: HashMap<String, SecretSource>,
    /// SSH agent sockets by id (`--ssh default` forwards `$SSH_AUTH_SOCK`).
    pub ssh: HashMap<String, PathBuf>,
}

/// The state a step runs in.
#[derive(Debug, Clone)]
pub struct Process<'a> {
    /// Build arguments, given as environment variables.
    pub args: &'a IndexMap<String, String>,
    /// Environment, in order; wins over args.
    pub env: &'a [(String, String)],
    /// Working directory.
    pub workdir: &'a str,
    /// `name|uid[:group|gid]`, or None for root.
    pub user: Option<&'a str>,
    /// The shell for string commands.
    pub shell: &'a [String],
    /// The platform the stage runs on.
    pub platform: &'a Platform,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The command exited non-zero.
    #[error("the command exited with code {code}")]
    Failed {
        /// Its exit code.
        code: i32,
        /// Its last lines of output.
        tail: Vec<String>,
    },
    /// Something the step needs is missing or wrong.
    #[error("{message}")]
    Setup {
        /// What.
        message: String,
        /// What to do.
        help: String,
    },
    /// Running the step failed.
    #[error(transparent)]
    Exec(#[from] super::ExecError),
}

fn setup(message: impl Into<String>, help: impl Into<String>) -> StepError {
    StepError::Setup {
        message: message.into(),
        help: help.into(),
    }
}

fn io_setup(what: &str, path: &Path, e: &std::io::Error) -> StepError {
    setup(
        format!("cannot {what} `{}`: {e}", path.display()),
        "check the store directory and permissions",
    )
}

/// A finished step's changes: an upperdir inside a temp dir the caller
/// removes (the reaper removes it if this process is killed first).
#[derive(Debug)]
pub struct Changes {
    /// The temp directory holding everything of the step.
    pub temp: PathBuf,
    /// The upperdir: exactly what the step changed.
    pub upper: PathBuf,
    /// How long the command ran (the rest of `run_step` prepared it).
    pub ran: std::time::Duration,
    /// The temp directory's registration with the reaper.
    _watch: Guard,
}

/// The QEMU name of an architecture, as `binfmt_misc` registers it.
fn qemu_name(platform: &Platform) -> &str {
    match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "loong64" => "loongarch64",
        other => other,
    }
}

/// Checks that `platform` can run here: natively or through QEMU registered with flag F.
pub fn check_platform(platform: &Platform, host: &Platform) -> Result<(), StepError> {
    if platform.os != "linux" {
        return Err(setup(
            format!("cannot run `{platform}` programs on Linux"),
            "use a linux platform for stages with `run` steps",
        ));
    }
    // An amd64 kernel runs 386 programs natively.
    if platform.architecture == host.architecture
        || (platform.architecture == "386" && host.architecture == "amd64")
    {
        return Ok(());
    }
    let name = qemu_name(platform);
    let entry = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{name}"));
    let text = fs::read_to_string(&entry).unwrap_or_default();
    let fixed = text
        .lines()
        .any(|l| l.starts_with("flags:") && l.contains('F'));
    if text.starts_with("enabled") && fixed {
        Ok(())
    } else if text.starts_with("enabled") {
        Err(setup(
            format!(
                "qemu-{name} is registered for {platform}, but without the F flag, so containers cannot use it"
            ),
            "reinstall Debian's qemu-user-static, which registers its emulators with flag F",
        ))
    } else {
        Err(setup(
            format!(
                "this machine cannot run {platform} programs: no qemu-{name} emulator is registered with binfmt_misc"
            ),
            "install Debian's `qemu-user-static` and `binfmt-support` (and mount /proc/sys/fs/binfmt_misc), or build this stage on the build machine's platform with `platform = \"build\"`",
        ))
    }
}

/// `path` inside `root`, following symlinks as if `root` were `/`, so a
/// symlink in the context or a stage cannot reach the host's files.
fn inside(root: &Path, path: &str) -> Result<PathBuf, StepError> {
    let resolved = crate::util::path::resolve_in_root(root, Path::new(path), true)
        .map_err(|e| setup(e.to_string(), "use a path inside the source"))?;
    Ok(root.join(resolved))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())?;
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to)?;
    }
    rustix::fs::chownat(
        rustix::fs::CWD,
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// A held cache lock, released on drop.
struct CacheLock(#[allow(dead_code)] fs::File);

/// Runs `run` on the layers `lowers` (bottom first). `sources` maps a mount's
/// `from` (as the plan wrote it) to the root of that stage or image.
#[allow(clippy::too_many_arguments)]
pub fn run_step(
    store: &Store,
    executor: &dyn Executor,
    grants: &Grants,
    context: &Path,
    lowers: &[PathBuf],
    run: &Run<String>,
    process: &Process<'_>,
    sources: &HashMap<String, PathBuf, impl std::hash::BuildHasher>,
    output: &mut dyn FnMut(&str),
) -> Result<Changes, StepError> {
    let temp = store.temp_path("run");
    let watch = reaper::watch_path(&temp).map_err(super::ExecError::from)?;
    let dirs: Vec<PathBuf> = ["upper", "work", "merged", "empty", "private"]
        .iter()
        .map(|d| temp.join(d))
        .collect();
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(|e| io_setup("create", dir, &e))?;
    }
    // Secret files, agent sockets and the bundle (whose config.json and
    // runtime state hold the environment, secrets included): in memory, 0700.
    let mut ran = std::time::Duration::ZERO;
    let result = PrivateDir::create()
        .map_err(StepError::from)
        .and_then(|secrets| {
            let result = run_in(
                store, executor, grants, context, lowers, run, process, sources, output, &temp,
                &dirs, &secrets, &mut ran,
            );
            // Removed as soon as the process has ended, whatever its outcome.
            drop(secrets);
            result
        });
    match result {
        Ok(()) => Ok(Changes {
            upper: dirs[0].clone(),
            ran,
            temp,
            _watch: watch,
        }),
        Err(e) => {
            let _ = fs::remove_dir_all(&temp);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_in(
    store: &Store,
    executor: &dyn Executor,
    grants: &Grants,
    context: &Path,
    lowers: &[PathBuf],
    run: &Run<String>,
    process: &Process<'_>,
    sources: &HashMap<String, PathBuf, impl std::hash::BuildHasher>,
    output: &mut dyn FnMut(&str),
    temp: &Path,
    dirs: &[PathBuf],
    secrets: &PrivateDir,
    ran: &mut std::time::Duration,
) -> Result<(), StepError> {
    let (upper, work, merged, empty, private) = (&dirs[0], &dirs[1], &dirs[2], &dirs[3], &dirs[4]);
    let bundle = secrets.create_dir("bundle")?;
    let lowers: Vec<PathBuf> = if lowers.is_empty() {
        vec![empty.clone()]
    } else {
        lowers.to_vec()
    };
    let mount = mount_overlay(&lowers, Some(Upper { upper, work }), merged).map_err(|e| {
        setup(
            format!("cannot mount the step's root filesystem (overlayfs): {e}"),
            "run imgbuild as root on a kernel with overlayfs; `imgbuild doctor` checks",
        )
    })?;

    let super::user::ExecUser {
        uid,
        gid,
        additional_gids,
    } = super::user::resolve(process.user.unwrap_or_default(), merged)
        .map_err(|e| setup(e.to_string(), e.help()))?;
    let workdir = inside(merged, process.workdir)?;
    fs::create_dir_all(&workdir).map_err(|e| io_setup("create the workdir", &workdir, &e))?;

    let mut env: Vec<(String, String)> = process
        .args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in process.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }

    let mut mounts = Vec::new();
    let mut locks = Vec::new();
    let mut overlays = Vec::new();
    let mut agents: Vec<AgentProxy> = Vec::new();
    for (n, m) in run.mounts.iter().enumerate() {
        match m {
            Mount::Cache {
                target,
                id,
                sharing,
                from,
                source,
                mode,
                uid: cuid,
                gid: cgid,
                readonly,
            } => {
                let id = id.clone().unwrap_or_else(|| target.clone());
                let key: String = id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let key = format!(
                    "{key}-{}",
                    &crate::store::Digest::of(id.as_bytes()).hex()[..12]
                );
                let caches = store.root().join("cache");
                fs::create_dir_all(&caches).map_err(|e| io_setup("create", &caches, &e))?;
                let mut dir = caches.join(&key);
                let lock_path = caches.join(format!("{key}.lock"));
                let lock_file = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| io_setup("open", &lock_path, &e))?;
                match sharing {
                    Sharing::Shared => {}
                    Sharing::Locked => {
                        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
                            .map_err(|e| io_setup("lock", &lock_path, &e.into()))?;
                        locks.push(CacheLock(lock_file));
                    }
                    Sharing::Private => {
                        if rustix::fs::flock(
                            &lock_file,
                            rustix::fs::FlockOperation::NonBlockingLockExclusive,
                        )
                        .is_ok()
                        {
                            locks.push(CacheLock(lock_file));
                        } else {
                            dir = private.join(format!("cache-{n}"));
                        }
                    }
                }
                if !dir.exists() {
                    let partial = temp.join(format!("cache-new-{n}"));
                    match (from, source) {
                        (Some(from), _) => {
                            let root = sources.get(from).ok_or_else(|| {
                                setup(
                                    format!("mount source `{from}` is not available"),
                                    "this is a bug in imgbuild",
                                )
                            })?;
                            let seed = inside(root, source.as_deref().unwrap_or("/"))?;
                            copy_tree(&seed, &partial)
                                .map_err(|e| io_setup("seed the cache from", &seed, &e))?;
                        }
                        (None, _) => fs::create_dir_all(&partial)
                            .map_err(|e| io_setup("create", &partial, &e))?,
                    }
                    fs::set_permissions(
                        &partial,
                        fs::Permissions::from_mode(mode.unwrap_or(0o755)),
                    )
                    .map_err(|e| io_setup("chmod", &partial, &e))?;
                    rustix::fs::chown(
                        &partial,
                        Some(rustix::fs::Uid::from_raw(cuid.unwrap_or(0))),
                        Some(rustix::fs::Gid::from_raw(cgid.unwrap_or(0))),
                    )
                    .map_err(|e| io_setup("chown", &partial, &e.into()))?;
                    // Never replace a cache another step created meanwhile (and may have mounted).
                    let placed = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &partial,
                        rustix::fs::CWD,
                        &dir,
                        rustix::fs::RenameFlags::NOREPLACE,
                    );
                    if placed.is_err() {
                        let _ = fs::remove_dir_all(&partial);
                    }
                }
                mounts.push(MountSpec {
                    destination: target.clone(),
                    kind: MountKind::Bind {
                        source: dir,
                        readonly: *readonly,
                    },
                });
            }
            Mount::Secret {
                id,
                target,
                env: as_env,
                required,
                mode,
                uid: suid,
                gid: sgid,
            } => {
                let id = id.clone().unwrap_or_default();
                let value = match grants.secrets.get(&id) {
                    Some(SecretSource::File(path)) => fs::read(path).map_err(|e| setup(format!("cannot read secret `{id}` from `{}`: {e}", path.display()), "check the `src=` path of `--secret`"))?,
                    Some(SecretSource::Env(var)) => std::env::var(var)
                        .map_err(|_| setup(format!("secret `{id}` comes from ${var}, which is not set"), format!("export {var}, or pass the secret with `--secret id={id},src=FILE`")))?
                        .into_bytes(),
                    None if *required => {
                        return Err(setup(
                            format!("secret {id}: not found (the mount is `required` and no secret `{id}` was given)"),
                            format!("pass it with `--secret id={id},src=FILE` or `--secret id={id},env=VAR`"),
                        ));
                    }
                    None => continue,
                };
                if let Some(var) = as_env {
                    env.retain(|(name, _)| name != var);
                    env.push((var.clone(), String::from_utf8_lossy(&value).into_owned()));
                }
                if let Some(target) = target {
                    // Created 0600 in the step's own directory, then given
                    // the mode and owner the step asks for (default 0400).
                    let file = secrets.write_file(&format!("secret-{n}"), &value)?;
                    fs::set_permissions(&file, fs::Permissions::from_mode(mode.unwrap_or(0o400)))
                        .map_err(|e| io_setup("chmod", &file, &e))?;
                    rustix::fs::chown(
                        &file,
                        Some(rustix::fs::Uid::from_raw(suid.unwrap_or(0))),
                        Some(rustix::fs::Gid::from_raw(sgid.unwrap_or(0))),
                    )
                    .map_err(|e| io_setup("chown", &file, &e.into()))?;
                    mounts.push(MountSpec {
                        destination: target.clone(),
                        kind: MountKind::Bind {
                            source: file,
                            readonly: true,
                        },
                    });
                }
            }
            Mount::Bind {
                target,
                source,
                from,
                rw,
            } => {
                let root = match from {
                    Some(from) => sources.get(from).cloned().ok_or_else(|| {
                        setup(
                            format!("mount source `{from}` is not available"),
                            "this is a bug in imgbuild",
                        )
                    })?,
                    // The runtime resolves relative sources against the bundle.
                    None => std::path::absolute(context)
                        .map_err(|e| io_setup("resolve", context, &e))?,
                };
                let mut path = inside(&root, source.as_deref().unwrap_or("/"))?;
                if !path.exists() {
                    return Err(setup(
                        format!(
                            "bind mount source `{}` does not exist",
                            source.as_deref().unwrap_or("/")
                        ),
                        "check `source` and `from`",
                    ));
                }
                if *rw && path.is_dir() {
                    // Writes go to a throwaway upperdir of an overlay on the source.
                    let base = private.join(format!("bind-{n}"));
                    let (upper, work, merged) =
                        (base.join("upper"), base.join("work"), base.join("merged"));
                    for dir in [&upper, &work, &merged] {
                        fs::create_dir_all(dir).map_err(|e| io_setup("create", dir, &e))?;
                    }
                    let overlay = mount_overlay(
                        std::slice::from_ref(&path),
                        Some(Upper {
                            upper: &upper,
                            work: &work,
                        }),
                        &merged,
                    )
                    .map_err(|e| {
                        setup(
                            format!("cannot mount a writable view of `{}`: {e}", path.display()),
                            "`imgbuild doctor` checks overlayfs",
                        )
                    })?;
                    path = merged;
                    overlays.push(overlay);
                } else if *rw {
                    let copy = private.join(format!("bind-{n}"));
                    copy_tree(&path, &copy).map_err(|e| io_setup("copy", &path, &e))?;
                    path = copy;
                }
                mounts.push(MountSpec {
                    destination: target.clone(),
                    kind: MountKind::Bind {
                        source: path,
                        readonly: !*rw,
                    },
                });
            }
            Mount::Tmpfs { target, size } => mounts.push(MountSpec {
                destination: target.clone(),
                kind: MountKind::Tmpfs {
                    size: *size,
                    mode: None,
                },
            }),
            Mount::Ssh {
                id,
                target,
                required,
                mode,
                uid: ssh_uid,
                gid: ssh_gid,
            } => {
                let id = id.clone().unwrap_or_else(|| "default".into());
                let Some(socket) = grants.ssh.get(&id) else {
                    if *required {
                        return Err(setup(
                            format!(
                                "no SSH key {id:?} forwarded from the client (the mount is `required`)"
                            ),
                            format!("pass `--ssh {id}` with an agent running ($SSH_AUTH_SOCK)"),
                        ));
                    }
                    continue;
                };
                let target = target
                    .clone()
                    .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
                env.retain(|(name, _)| name != "SSH_AUTH_SOCK");
                env.push(("SSH_AUTH_SOCK".into(), target.clone()));
                // In the step's private directory, like secret files: short
                // enough for a socket path, and per step.
                let path = secrets.path().join(format!("ssh-{n}"));
                let proxy = AgentProxy::start(
                    socket,
                    &path,
                    mode.unwrap_or(0o600),
                    ssh_uid.unwrap_or(0),
                    ssh_gid.unwrap_or(0),
                )
                .map_err(|e| {
                    setup(
                        format!(
                            "cannot forward SSH agent `{id}` through `{}`: {e}",
                            path.display()
                        ),
                        "check that the agent's socket (`--ssh`) is a socket this user can reach",
                    )
                })?;
                mounts.push(MountSpec {
                    destination: target,
                    kind: MountKind::Bind {
                        source: proxy.path().to_owned(),
                        readonly: false,
                    },
                });
                agents.push(proxy);
            }
            Mount::Deferred { .. } => {
                return Err(setup(
                    "a `--mount` was not resolved by the plan",
                    "this is a bug in imgbuild: the plan reads every deferred mount",
                ));
            }
        }
    }

    let args = match &run.command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(text) if run.interpreter.is_some() => {
            let script = temp.join("script");
            fs::write(&script, text).map_err(|e| io_setup("write", &script, &e))?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_setup("chmod", &script, &e))?;
            mounts.push(MountSpec {
                destination: SCRIPT_PATH.into(),
                kind: MountKind::Bind {
                    source: script,
                    readonly: true,
                },
            });
            vec![SCRIPT_PATH.to_owned()]
        }
        Command::Shell(text) => process
            .shell
            .iter()
            .cloned()
            .chain([text.clone()])
            .collect(),
    };

    // Mount points the runtime creates must not land in the layer.
    let stubs: Vec<String> = standard_mount_points()
        .iter()
        .map(|s| (*s).to_owned())
        .chain(mounts.iter().map(|m| m.destination.clone()))
        .filter(|d| fs::symlink_metadata(merged.join(d.trim_start_matches('/'))).is_err())
        .collect();

    let spec = RunSpec {
        bundle,
        rootfs: merged.clone(),
        args,
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: process.workdir.to_owned(),
        uid,
        gid,
        additional_gids,
        hostname: "imgbuild".into(),
        network: match run.network {
            Network::None => NetworkMode::None,
            Network::Default | Network::Host => NetworkMode::Host,
        },
        mounts,
    };
    let started = std::time::Instant::now();
    let outcome = executor.run(&spec, output);
    *ran = started.elapsed();
    drop(agents);
    drop(overlays);
    drop(mount);
    drop(locks);
    let outcome = outcome?;
    if outcome.exit_code != 0 {
        return Err(StepError::Failed {
            code: outcome.exit_code,
            tail: outcome.log_tail,
        });
    }
    strip_stubs(upper, &stubs);
    Ok(())
}

/// Removes empty files and directories that only exist as mount points,
/// and directories copied up only to hold them.
fn strip_stubs(upper: &Path, stubs: &[String]) {
    for stub in stubs {
        let mut path = upper.join(stub.trim_start_matches('/'));
        while let Ok(meta) = fs::symlink_metadata(&path) {
            let removable = if meta.is_dir() {
                fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none())
                    && fs::remove_dir(&path).is_ok()
            } else {
                meta.is_file() && meta.len() == 0 && fs::remove_file(&path).is_ok()
            };
            if !removable || !path.pop() || path == upper {
                break;
            }
        }
    }
}
