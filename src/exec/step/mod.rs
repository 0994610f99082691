//! One `run` step: assemble the rootfs, mounts and process, run it, and
//! leave the changes in an upperdir for the caller to turn into a layer.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

mod mounts;

use super::private::PrivateDir;
use super::reaper::{self, Guard};
use super::rootfs::{Upper, mount_overlay};
use super::{Executor, NetworkMode, RunSpec, standard_mount_points};
use crate::ir::{Command, Network, Platform, Run};
use crate::store::Store;
use mounts::Prepared;

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

/// Everything a `run` step reads, borrowed for the step's duration.
pub struct StepInputs<'a, S> {
    /// The store: the step's temp directory and cache mounts live in it.
    pub store: &'a Store,
    /// Runs the container.
    pub executor: &'a dyn Executor,
    /// The secrets and SSH agents the build may hand to its steps.
    pub grants: &'a Grants,
    /// The build context, the default source of bind mounts.
    pub context: &'a Path,
    /// The layers of the root filesystem, bottom first.
    pub lowers: &'a [PathBuf],
    /// The step.
    pub run: &'a Run<String>,
    /// The state the step runs in.
    pub process: &'a Process<'a>,
    /// A mount's `from` (as the plan wrote it) to the root of that stage or image.
    pub sources: &'a HashMap<String, PathBuf, S>,
}

/// Runs the step `inputs` describes and returns its changes.
pub fn run<S: std::hash::BuildHasher>(
    inputs: &StepInputs<'_, S>,
    output: &mut dyn FnMut(&str),
) -> Result<Changes, StepError> {
    let temp = inputs.store.temp_path("run");
    let watch = reaper::watch_path(&temp).map_err(super::ExecError::from)?;
    let dirs = Dirs::create(&temp)?;
    // Secret files, agent sockets and the bundle (whose config.json and
    // runtime state hold the environment, secrets included): in memory, 0700.
    let mut ran = std::time::Duration::ZERO;
    let result = PrivateDir::create()
        .map_err(StepError::from)
        .and_then(|secrets| {
            let step = Workspace {
                inputs,
                dirs: &dirs,
                secrets: &secrets,
            };
            let result = step.run(output, &mut ran);
            // Removed as soon as the process has ended, whatever its outcome.
            drop(secrets);
            result
        });
    match result {
        Ok(()) => Ok(Changes {
            upper: dirs.upper,
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

/// The directories of one step, inside its temp directory.
struct Dirs {
    /// The temp directory itself.
    temp: PathBuf,
    /// The overlay's upperdir: what the step changes.
    upper: PathBuf,
    /// The overlay's workdir.
    work: PathBuf,
    /// The step's root filesystem.
    merged: PathBuf,
    /// The lower layer of a step on no layers.
    empty: PathBuf,
    /// Private caches and writable binds of this step only.
    private: PathBuf,
}

impl Dirs {
    fn create(temp: &Path) -> Result<Self, StepError> {
        let dirs = Self {
            temp: temp.to_owned(),
            upper: temp.join("upper"),
            work: temp.join("work"),
            merged: temp.join("merged"),
            empty: temp.join("empty"),
            private: temp.join("private"),
        };
        for dir in [
            &dirs.upper,
            &dirs.work,
            &dirs.merged,
            &dirs.empty,
            &dirs.private,
        ] {
            fs::create_dir_all(dir).map_err(|e| io_setup("create", dir, &e))?;
        }
        Ok(dirs)
    }
}

/// A step while it is set up and run: its inputs, its directories and its
/// private in-memory directory.
struct Workspace<'s, 'a, S> {
    inputs: &'s StepInputs<'a, S>,
    dirs: &'s Dirs,
    secrets: &'s PrivateDir,
}

/// The environment of `process`: build arguments, then the environment
/// (which wins), then the default `PATH` if neither set one.
fn environment(process: &Process<'_>) -> Vec<(String, String)> {
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
    env
}

impl<S: std::hash::BuildHasher> Workspace<'_, '_, S> {
    /// Mounts the root filesystem, sets up the mounts, runs the process and
    /// leaves its changes in the upperdir; `ran` is how long it ran.
    fn run(
        &self,
        output: &mut dyn FnMut(&str),
        ran: &mut std::time::Duration,
    ) -> Result<(), StepError> {
        let (inputs, dirs) = (self.inputs, self.dirs);
        let process = inputs.process;
        let bundle = self.secrets.create_dir("bundle")?;
        let lowers: Vec<PathBuf> = if inputs.lowers.is_empty() {
            vec![dirs.empty.clone()]
        } else {
            inputs.lowers.to_vec()
        };
        let upper = Upper {
            upper: &dirs.upper,
            work: &dirs.work,
        };
        let mount = mount_overlay(&lowers, Some(upper), &dirs.merged).map_err(|e| {
            setup(
                format!("cannot mount the step's root filesystem (overlayfs): {e}"),
                "run imgbuild as root on a kernel with overlayfs; `imgbuild doctor` checks",
            )
        })?;

        let super::user::ExecUser {
            uid,
            gid,
            additional_gids,
        } = super::user::resolve(process.user.unwrap_or_default(), &dirs.merged)
            .map_err(|e| setup(e.to_string(), e.help()))?;
        let workdir = inside(&dirs.merged, process.workdir)?;
        fs::create_dir_all(&workdir).map_err(|e| io_setup("create the workdir", &workdir, &e))?;

        let mut prepared = Prepared {
            env: environment(process),
            ..Prepared::default()
        };
        for (n, m) in inputs.run.mounts.iter().enumerate() {
            self.mount(n, m, &mut prepared)?;
        }
        let args = self.command(&mut prepared)?;

        // Mount points the runtime creates must not land in the layer.
        let stubs: Vec<String> = standard_mount_points()
            .iter()
            .map(|s| (*s).to_owned())
            .chain(prepared.specs.iter().map(|m| m.destination.clone()))
            .filter(|d| fs::symlink_metadata(dirs.merged.join(d.trim_start_matches('/'))).is_err())
            .collect();

        let Prepared {
            env,
            specs,
            locks,
            overlays,
            agents,
        } = prepared;
        let spec = RunSpec {
            bundle,
            rootfs: dirs.merged.clone(),
            args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: process.workdir.to_owned(),
            uid,
            gid,
            additional_gids,
            hostname: "imgbuild".into(),
            network: match inputs.run.network {
                Network::None => NetworkMode::None,
                Network::Default | Network::Host => NetworkMode::Host,
            },
            mounts: specs,
        };
        let started = std::time::Instant::now();
        let outcome = inputs.executor.run(&spec, output);
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
        strip_stubs(&dirs.upper, &stubs);
        Ok(())
    }

    /// The process's arguments; a `#!` script is written and mounted.
    fn command(&self, prepared: &mut Prepared) -> Result<Vec<String>, StepError> {
        let run = self.inputs.run;
        Ok(match &run.command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(text) if run.interpreter.is_some() => {
                let script = self.dirs.temp.join("script");
                fs::write(&script, text).map_err(|e| io_setup("write", &script, &e))?;
                fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
                    .map_err(|e| io_setup("chmod", &script, &e))?;
                prepared.bind(SCRIPT_PATH, script, true);
                vec![SCRIPT_PATH.to_owned()]
            }
            Command::Shell(text) => self
                .inputs
                .process
                .shell
                .iter()
                .cloned()
                .chain([text.clone()])
                .collect(),
        })
    }
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
