//! The intermediate representation every front end produces.
//!
//! A [`Project`] is what a manifest or a Dockerfile says, checked for shape
//! but not yet resolved: its strings may still hold `${VARIABLES}`. Resolving
//! it for a set of targets, platforms and arguments (see [`crate::plan`])
//! gives a [`BuildGraph`] whose nodes are stage × platform and whose steps are
//! the same types instantiated with plain strings.
//!
//! Step, mount and copy types are generic over their string type `S`:
//! [`Template`] in a project, `String` once resolved.

pub mod args;
mod check;
mod graph;
pub mod pattern;
pub mod platform;
pub mod reference;
pub mod template;
pub mod trigger;
pub mod value;

use std::ops::Range;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;

pub use check::check;
pub use graph::{BuildGraph, Edge, EdgeKind, Node, NodeId, ResolvedImage};
pub use platform::{Platform, PlatformError};

use crate::diagnostic::SourceFile;
use crate::lint::RuleSet;

/// A byte range in the project's source file.
pub type Span = Range<usize>;

/// A value with the span of the source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Located<T> {
    /// Pairs `value` with `span`.
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A located value serializes as the value alone: the span says where it was
/// written, not what it is, so projects read from different files compare
/// equal when they say the same thing.
impl<T: Serialize> Serialize for Located<T> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.value.serialize(serializer)
    }
}

/// A string as written in the source: it may contain `${VARIABLES}`.
pub type Template = Located<String>;

/// A whole build definition from one manifest or Dockerfile.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file it was read from, for diagnostics.
    pub source: Arc<SourceFile>,
    /// The build context directory, relative to the source file's directory.
    pub context: Template,
    /// Platforms to build when neither the image nor `--platform` says.
    pub platforms: Vec<Located<Platform>>,
    /// Build arguments with their default values, overridable with `--arg`;
    /// `None` is an argument declared without a value (Dockerfile `ARG NAME`
    /// before the first `FROM`): unset unless `--arg` gives one.
    pub args: IndexMap<String, Option<Template>>,
    /// Which arguments a stage sees.
    pub arg_scope: ArgScope,
    /// Stages by name, in source order.
    pub stages: IndexMap<String, Stage>,
    /// Images by name, in source order.
    pub images: IndexMap<String, Image>,
    /// Groups of images by name.
    pub groups: IndexMap<String, Group>,
    /// Which lint rules run on the project and whether their findings are
    /// errors: a manifest's `[lint]` table, a Dockerfile's `# check=`
    /// directive.
    pub checks: RuleSet,
    /// Where the parts that carry no span of their own were written.
    pub source_map: SourceMap,
}

/// Where a project's steps and argument names were written, for messages
/// about them: steps and argument names hold no span of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// Each stage's steps, by stage name: one span per step, in order.
    pub steps: IndexMap<String, Vec<Span>>,
    /// Each project argument's name.
    pub args: IndexMap<String, Span>,
}

impl SourceMap {
    /// Where step `index` of stage `stage` was written, if known.
    pub fn step(&self, stage: &str, index: usize) -> Option<Span> {
        self.steps.get(stage)?.get(index).cloned()
    }

    /// Where project argument `name` was declared, if known.
    pub fn arg(&self, name: &str) -> Option<Span> {
        self.args.get(name).cloned()
    }
}

/// Which build arguments a stage sees, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgScope {
    /// The manifest's rules: every project argument, predefined argument and
    /// proxy argument is visible in every stage; an `arg` step's argument
    /// lasts to the end of its stage; an environment variable hides an
    /// argument of the same name.
    #[default]
    Everywhere,
    /// Dockerfile (`BuildKit`) rules: project and predefined arguments are
    /// visible only in `from` and `platform` until an `arg` step declares
    /// them in the stage; proxy arguments reach `run` steps without being
    /// expanded; a stage inherits the arguments of the stage it starts from;
    /// of an argument and an environment variable of the same name, the one
    /// set last wins.
    Declared,
}

/// A stage: a base and the steps that run on it.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The stage's name.
    pub name: Located<String>,
    /// What the stage starts from.
    pub from: Template,
    /// The platform the stage runs on; `None` means the target platform.
    pub platform: Option<Located<StagePlatform>>,
    /// Settings that hold from the first step on and end up in the image config.
    pub config: StageConfig<Template>,
    /// The steps, in order.
    pub steps: Vec<Step<Template>>,
}

/// Where a stage runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagePlatform {
    /// The native platform of the machine that builds (`platform = "build"`).
    Build,
    /// A platform string, possibly with variables.
    Fixed(String),
}

/// Stage settings that both affect later steps and land in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageConfig<S> {
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<S>,
    /// User (`name|uid[:group|gid]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<S>,
    /// Environment variables.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, S>,
    /// The shell for string-form commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Image entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Command>,
    /// Image default command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Command>,
    /// Image labels.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, S>,
    /// Exposed ports such as `80/tcp`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<S>,
    /// Volume paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<S>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Signal sent to stop the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopsignal: Option<S>,
    /// The image's `author` (a Dockerfile's `MAINTAINER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<S>,
    /// Dockerfile instructions stored as the image's `OnBuild` triggers,
    /// run by a later build that starts from the image. Never expanded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub onbuild: Vec<String>,
}

impl<S> Default for StageConfig<S> {
    fn default() -> Self {
        Self {
            workdir: None,
            user: None,
            env: IndexMap::new(),
            shell: None,
            entrypoint: None,
            cmd: None,
            labels: IndexMap::new(),
            expose: Vec::new(),
            volumes: Vec::new(),
            healthcheck: None,
            stopsignal: None,
            author: None,
            onbuild: Vec::new(),
        }
    }
}

/// A command: a string for the shell, or an argv run as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Run by the stage's shell (`/bin/sh -c` unless `shell` says otherwise).
    Shell(String),
    /// Run directly, without a shell.
    Exec(Vec<String>),
}

/// A container health check, kept in the image config as Docker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// The check command; `None` disables a check inherited from the base.
    pub test: Option<Command>,
    /// Time between checks, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Time a check may take, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Start-up time during which failures do not count, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    /// Time between checks during the start period, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    /// Consecutive failures before the container is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step<S> {
    /// Run a command in the stage's filesystem.
    Run(Run<S>),
    /// Copy files from the context, a stage or an image (`copy`).
    Copy(Copy<S>),
    /// Like copy, plus URLs and tar extraction (`add`).
    Add(Copy<S>),
    /// Write a file with inline content.
    File(File<S>),
    /// Set environment variables.
    Env {
        /// The variables, in order.
        vars: IndexMap<String, S>,
    },
    /// Change the working directory.
    Workdir {
        /// The new directory.
        path: S,
    },
    /// Change the user.
    User {
        /// `name|uid[:group|gid]`.
        user: S,
    },
    /// Change the shell for string-form commands.
    Shell {
        /// The shell's argv prefix, e.g. `["/bin/bash", "-c"]`.
        argv: Vec<String>,
    },
    /// Declare a build argument for the rest of the stage.
    Arg {
        /// The argument's name.
        name: String,
        /// Its default value; once resolved, the value it takes.
        #[serde(skip_serializing_if = "Option::is_none")]
        default: Option<S>,
    },
    /// Set image labels, expanded with the variables of this point.
    Label {
        /// The labels, in order.
        labels: IndexMap<String, S>,
    },
    /// Declare exposed ports, expanded with the variables of this point.
    Expose {
        /// Ports such as `80`, `53/udp`, `8000-8010`; once resolved, one
        /// `PORT/PROTOCOL` each.
        ports: Vec<S>,
    },
    /// Declare volumes, expanded with the variables of this point.
    Volume {
        /// Volume paths.
        paths: Vec<S>,
    },
    /// Set the stop signal, expanded with the variables of this point.
    Stopsignal {
        /// The signal, such as `SIGTERM` or `9`.
        signal: S,
    },
}

impl<S> Step<S> {
    /// The same step with every string `f` maps; the strings of mounts and
    /// copies included.
    pub fn map<T>(self, f: &mut impl FnMut(S) -> T) -> Step<T> {
        match self {
            Step::Run(run) => Step::Run(Run {
                command: run.command,
                interpreter: run.interpreter,
                mounts: run.mounts.into_iter().map(|m| m.map(f)).collect(),
                network: run.network,
            }),
            Step::Copy(copy) => Step::Copy(copy.map(f)),
            Step::Add(copy) => Step::Add(copy.map(f)),
            Step::File(file) => Step::File(File {
                to: f(file.to),
                name: file.name.map(&mut *f),
                content: f(file.content),
                expand: file.expand,
                chown: file.chown.map(&mut *f),
                chmod: file.chmod.map(&mut *f),
            }),
            Step::Env { vars } => Step::Env {
                vars: vars.into_iter().map(|(k, v)| (k, f(v))).collect(),
            },
            Step::Workdir { path } => Step::Workdir { path: f(path) },
            Step::User { user } => Step::User { user: f(user) },
            Step::Shell { argv } => Step::Shell { argv },
            Step::Arg { name, default } => Step::Arg {
                name,
                default: default.map(f),
            },
            Step::Label { labels } => Step::Label {
                labels: labels.into_iter().map(|(k, v)| (k, f(v))).collect(),
            },
            Step::Expose { ports } => Step::Expose {
                ports: ports.into_iter().map(&mut *f).collect(),
            },
            Step::Volume { paths } => Step::Volume {
                paths: paths.into_iter().map(&mut *f).collect(),
            },
            Step::Stopsignal { signal } => Step::Stopsignal { signal: f(signal) },
        }
    }
}

/// A `run` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run<S> {
    /// What to run.
    pub command: Command,
    /// For a multi-line command: the interpreter of its `#!` line, if any.
    /// A multi-line command is written to a file and run as a script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Mounts present only while the command runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount<S>>,
    /// The network the command sees.
    pub network: Network,
}

impl<S> Run<S> {
    /// Whether the command is a script (a multi-line shell string).
    pub fn is_script(&self) -> bool {
        matches!(&self.command, Command::Shell(s) if s.trim_end().contains('\n'))
    }
}

/// Network access for a `run` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The default network (today: the host's).
    #[default]
    Default,
    /// Only a loopback interface.
    None,
    /// The host's network.
    Host,
}

/// A `copy` or `add` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy<S> {
    /// Source paths or patterns (or, for `add`, URLs).
    pub sources: Vec<S>,
    /// Destination; relative to the working directory, a directory if it ends with `/`.
    pub to: S,
    /// A stage or image to copy from instead of the build context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<S>,
    /// Owner of the copied files, `user[:group]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chown: Option<S>,
    /// Mode of the copied files, octal or symbolic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chmod: Option<S>,
    /// Make the layer independent of the files below it (`--link`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
    /// Keep the sources' parent directories (`--parents`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
    /// Patterns to leave out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<S>,
    /// For `add` of a URL: the expected `sha256:` digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<S>,
    /// For `add` of a Git repository: keep its `.git` directory
    /// (`--keep-git-dir`); none when not said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_git_dir: Option<bool>,
}

impl<S> Copy<S> {
    /// The same copy with every string `f` maps.
    pub fn map<T>(self, f: &mut impl FnMut(S) -> T) -> Copy<T> {
        Copy {
            sources: self.sources.into_iter().map(&mut *f).collect(),
            to: f(self.to),
            from: self.from.map(&mut *f),
            chown: self.chown.map(&mut *f),
            chmod: self.chmod.map(&mut *f),
            link: self.link,
            parents: self.parents,
            exclude: self.exclude.into_iter().map(&mut *f).collect(),
            checksum: self.checksum.map(&mut *f),
            keep_git_dir: self.keep_git_dir,
        }
    }
}

/// A `file` step: inline content written to a path (Dockerfile `COPY <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct File<S> {
    /// Destination path, relative to the working directory.
    pub to: S,
    /// The file's name when `to` turns out to be a directory in the image
    /// (a heredoc's delimiter, as `BuildKit` names it); without one, `to` is
    /// the file's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<S>,
    /// The file's content: written as is, or, with `expand`, a template.
    pub content: S,
    /// Whether `content` is a template expanded with the variables of this
    /// point (a Dockerfile heredoc with an unquoted delimiter, or `expand =
    /// true` in a manifest) rather than text written as is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expand: bool,
    /// Owner, `user[:group]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chown: Option<S>,
    /// Mode, octal or symbolic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chmod: Option<S>,
}

/// A mount present while a `run` step executes; never part of the layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount<S> {
    /// A persistent cache directory.
    Cache {
        /// Mount point.
        target: S,
        /// Cache identity; defaults to the target.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<S>,
        /// How concurrent builds share it.
        sharing: Sharing,
        /// A stage or image to seed the cache from.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<S>,
        /// Path in `from` to seed from.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<S>,
        /// Directory mode.
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// Directory owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Directory group.
        #[serde(skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        /// Mount read-only.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        readonly: bool,
    },
    /// A secret file or environment variable.
    Secret {
        /// Secret id given with `--secret id=...`; defaults to the target's file name.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<S>,
        /// File path; defaults to `/run/secrets/ID`.
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<S>,
        /// Expose the secret as this environment variable instead of (or as well as) a file.
        #[serde(skip_serializing_if = "Option::is_none")]
        env: Option<S>,
        /// Fail when the secret is not provided.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        required: bool,
        /// File mode.
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// File owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// File group.
        #[serde(skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
    /// Files from the context, a stage or an image, bound in place.
    Bind {
        /// Mount point.
        target: S,
        /// Path in the source; defaults to its root.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<S>,
        /// A stage or image; defaults to the build context.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<S>,
        /// Allow writes (they are discarded).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        rw: bool,
    },
    /// An in-memory filesystem.
    Tmpfs {
        /// Mount point.
        target: S,
        /// Size limit in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A forwarded SSH agent socket.
    Ssh {
        /// Agent id given with `--ssh`; defaults to `default`.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<S>,
        /// Socket path; defaults to `/run/buildkit/ssh_agent.N`.
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<S>,
        /// Fail when no agent is forwarded.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        required: bool,
        /// Socket mode.
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// Socket owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Socket group.
        #[serde(skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
    /// A Dockerfile `--mount` whose type or a typed option (`mode`, `uid`,
    /// `size`, `sharing`, ...) uses a variable, so which mount it is, is
    /// known only once the plan has expanded its options. Only in a
    /// project: the plan reads it into one of the other kinds, so a
    /// resolved graph never has one.
    Deferred {
        /// The options as written, in order; each value a template.
        options: Vec<MountOption<S>>,
    },
}

/// One `key[=value]` option of a [`Mount::Deferred`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountOption<S> {
    /// The option's name, lowercased, as written (`dst`, `ro`, ...).
    pub key: String,
    /// Its value; `None` for a bare flag such as `ro`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<S>,
}

impl<S> Mount<S> {
    /// The same mount with every string `f` maps.
    pub fn map<T>(self, f: &mut impl FnMut(S) -> T) -> Mount<T> {
        match self {
            Mount::Cache {
                target,
                id,
                sharing,
                from,
                source,
                mode,
                uid,
                gid,
                readonly,
            } => Mount::Cache {
                target: f(target),
                id: id.map(&mut *f),
                sharing,
                from: from.map(&mut *f),
                source: source.map(&mut *f),
                mode,
                uid,
                gid,
                readonly,
            },
            Mount::Secret {
                id,
                target,
                env,
                required,
                mode,
                uid,
                gid,
            } => Mount::Secret {
                id: id.map(&mut *f),
                target: target.map(&mut *f),
                env: env.map(&mut *f),
                required,
                mode,
                uid,
                gid,
            },
            Mount::Bind {
                target,
                source,
                from,
                rw,
            } => Mount::Bind {
                target: f(target),
                source: source.map(&mut *f),
                from: from.map(&mut *f),
                rw,
            },
            Mount::Tmpfs { target, size } => Mount::Tmpfs {
                target: f(target),
                size,
            },
            Mount::Ssh {
                id,
                target,
                required,
                mode,
                uid,
                gid,
            } => Mount::Ssh {
                id: id.map(&mut *f),
                target: target.map(&mut *f),
                required,
                mode,
                uid,
                gid,
            },
            Mount::Deferred { options } => Mount::Deferred {
                options: options
                    .into_iter()
                    .map(|o| MountOption {
                        key: o.key,
                        value: o.value.map(&mut *f),
                    })
                    .collect(),
            },
        }
    }
}

/// Mount types and the options each takes besides `type`, shared by every
/// front end so they accept and refuse the same things.
pub const MOUNT_OPTIONS: [(&str, &[&str]); 5] = [
    (
        "cache",
        &[
            "target", "id", "sharing", "from", "source", "mode", "uid", "gid", "readonly",
        ],
    ),
    (
        "secret",
        &["id", "target", "env", "required", "mode", "uid", "gid"],
    ),
    ("bind", &["target", "source", "from", "rw"]),
    ("tmpfs", &["target", "size"]),
    ("ssh", &["id", "target", "required", "mode", "uid", "gid"]),
];

/// The options a mount of type `kind` takes, or None for an unknown type.
pub fn mount_options(kind: &str) -> Option<&'static [&'static str]> {
    MOUNT_OPTIONS
        .iter()
        .find(|(t, _)| *t == kind)
        .map(|(_, keys)| *keys)
}

/// The message and help for option `key` on a `kind` mount that does not take it.
pub fn mount_option_error(kind: &str, key: &str) -> (String, String) {
    let allowed = mount_options(kind).unwrap_or_default();
    (
        format!("`{key}` is not an option of a `{kind}` mount"),
        format!(
            "a `{kind}` mount takes: {}",
            allowed
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// How a cache mount is shared between concurrent steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Every step uses the same directory at once.
    #[default]
    Shared,
    /// A step that finds it in use gets a fresh copy.
    Private,
    /// Steps wait for each other.
    Locked,
}

/// An image to produce from a stage.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image's name in the manifest.
    pub name: Located<String>,
    /// The stage whose result becomes the image.
    pub stage: Template,
    /// Tags to apply, such as `registry.example.com/app:1.0`.
    pub tags: Vec<Template>,
    /// Platforms to build; empty means the project's default platforms.
    pub platforms: Vec<Located<Platform>>,
    /// Labels added to the image config.
    pub labels: IndexMap<String, Template>,
    /// Annotations added to the manifest and index.
    pub annotations: IndexMap<String, Template>,
}

/// A named list of images (and other groups), built together.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group's name.
    pub name: Located<String>,
    /// Image or group names.
    pub members: Vec<Located<String>>,
}

/// What a stage starts from, once its `from` is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Base {
    /// An empty filesystem.
    Scratch,
    /// Another stage's result.
    Stage(String),
    /// An image reference.
    Image(String),
}

impl Base {
    /// Reads a `from` value: `scratch`, `stage:NAME`, a stage's bare name, or an image reference.
    pub fn parse(from: &str, is_stage: impl Fn(&str) -> bool) -> Self {
        if from == "scratch" {
            Base::Scratch
        } else if let Some(name) = from.strip_prefix("stage:") {
            Base::Stage(name.to_owned())
        } else if is_stage(from) {
            Base::Stage(from.to_owned())
        } else {
            Base::Image(from.to_owned())
        }
    }
}
