//! The TOML schema of `imgbuild.toml`, as serde and schemars types.
//!
//! Every struct is a plain struct with `deny_unknown_fields`, and values are
//! wrapped in [`Spanned`] so errors can point at the exact line. Untagged or
//! internally tagged enums would lose those spans, which is why a step is one
//! struct with an optional field per action.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A whole manifest: `imgbuild.toml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "imgbuild manifest",
    description = "A declarative container image build: stages, images and groups."
)]
pub struct Manifest {
    /// Settings for the whole build.
    #[serde(default)]
    pub build: Option<Build>,
    /// Build arguments and their defaults; override with `--arg NAME=VALUE`.
    /// `NAME = {}` declares one without a default: unset unless given.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ArgValue>")]
    pub args: IndexMap<Spanned<String>, Spanned<ArgValue>>,
    /// Stages by name: each starts from a base and runs steps.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Stage>")]
    pub stages: IndexMap<Spanned<String>, Stage>,
    /// Images by name: the stages to ship, with tags and platforms.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Image>")]
    pub images: IndexMap<Spanned<String>, Image>,
    /// Named lists of images built together; `default` is built when no target is named.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Vec<String>>")]
    pub groups: IndexMap<Spanned<String>, Vec<Spanned<String>>>,
    /// Settings of the rules `imgbuild lint` runs on this manifest.
    #[serde(default)]
    pub lint: Option<Lint>,
}

/// The `[build]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The build context directory, relative to the manifest. Default: `.`.
    #[schemars(with = "Option<String>")]
    pub context: Option<Spanned<String>>,
    /// Platforms to build when an image does not list its own, such as `linux/amd64`.
    /// Default: the platform of the machine that builds.
    #[schemars(with = "Option<Vec<String>>")]
    pub platforms: Option<Vec<Spanned<String>>>,
    /// Which arguments a stage sees. `everywhere` (default): every `[args]`
    /// entry and predefined argument, in every stage. `declared` (Dockerfile
    /// rules): only those an `arg` step declares in the stage or in the stage
    /// it starts from.
    #[schemars(with = "Option<ArgScope>")]
    pub arg_scope: Option<Spanned<String>>,
}

/// The values of `[build] arg_scope`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArgScope {
    /// Every argument is visible in every stage.
    Everywhere,
    /// A stage sees an argument once an `arg` step declares it, as in a Dockerfile.
    Declared,
}

/// The `[lint]` table: which rules `imgbuild lint` runs, and whether what
/// they find fails it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lint {
    /// Rules that do not run, such as `RootInFinalImage`; `all` turns every rule off.
    #[schemars(with = "Option<Vec<LintRule>>")]
    pub skip: Option<Vec<Spanned<String>>>,
    /// Make findings errors: `imgbuild lint` exits with 1 when a rule fires. Default: `false`.
    #[schemars(with = "Option<bool>")]
    pub error: Option<Spanned<bool>>,
}

/// The name of a rule of `imgbuild lint`, in the schema only: the names
/// come from [`crate::practice::RULES`].
pub struct LintRule;

impl JsonSchema for LintRule {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LintRule".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = crate::practice::rule_names().chain(["all"]).collect();
        schemars::json_schema!({
            "description": "A rule of `imgbuild lint`, or `all`.",
            "type": "string",
            "enum": names
        })
    }
}

/// An `[args]` entry: its default, or `{}` for none.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ArgValue {
    /// The default value.
    Default(Scalar),
    /// Declared without a default (Dockerfile `ARG NAME` before `FROM`).
    Unset(NoDefault),
}

/// The empty table `{}`: an argument without a default.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoDefault {}

/// A string, number or boolean; numbers and booleans are used as their text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as text.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A file mode: an octal integer (`0o755`) or a string (`"0755"`, `"u+x"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Mode {
    /// TOML integer, usually written in octal: `0o755`.
    Integer(i64),
    /// Octal digits or a symbolic mode.
    String(String),
}

/// A `[stages.NAME]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// What to start from: an image reference, `scratch`, or `stage:NAME`.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// Where to run: a platform such as `linux/arm64`, or `build` for the
    /// building machine's own platform. Default: the platform being built.
    #[schemars(with = "Option<String>")]
    pub platform: Option<Spanned<String>>,
    /// Working directory for the steps and the image.
    #[schemars(with = "Option<String>")]
    pub workdir: Option<Spanned<String>>,
    /// User for the steps and the image: `name|uid[:group|gid]`.
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// Environment for the steps and the image.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub env: IndexMap<Spanned<String>, Spanned<Scalar>>,
    /// Shell for string commands. Default: `["/bin/sh", "-c"]`.
    #[schemars(with = "Option<Vec<String>>")]
    pub shell: Option<Spanned<Vec<String>>>,
    /// Image entrypoint: an argv list, or a string run by the shell.
    #[schemars(with = "Option<OneOrMany>")]
    pub entrypoint: Option<Spanned<OneOrMany>>,
    /// Image default command: an argv list, or a string run by the shell.
    #[schemars(with = "Option<OneOrMany>")]
    pub cmd: Option<Spanned<OneOrMany>>,
    /// Image labels.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub labels: IndexMap<Spanned<String>, Spanned<Scalar>>,
    /// Exposed ports: `80`, `"8080/tcp"`, `"53/udp"`.
    #[serde(default)]
    #[schemars(with = "Vec<Scalar>")]
    pub expose: Vec<Spanned<Scalar>>,
    /// Volume mount points.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub volumes: Vec<Spanned<String>>,
    /// Container health check.
    #[schemars(with = "Option<Healthcheck>")]
    pub healthcheck: Option<Spanned<Healthcheck>>,
    /// Signal that stops the container, such as `SIGTERM`.
    #[schemars(with = "Option<String>")]
    pub stopsignal: Option<Spanned<String>>,
    /// The image's author, as a Dockerfile's `MAINTAINER` sets it: the
    /// config's `author` field (not a label).
    #[schemars(with = "Option<String>")]
    pub author: Option<Spanned<String>>,
    /// Dockerfile instructions stored in the image as `ONBUILD` triggers, run
    /// by a build that starts from the image: `["COPY . /app", "RUN make"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub onbuild: Vec<Spanned<String>>,
    /// The steps, in order.
    #[serde(default)]
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
}

/// A health check (Dockerfile `HEALTHCHECK`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The check: an argv list, or a string run by the shell.
    #[schemars(with = "Option<OneOrMany>")]
    pub test: Option<Spanned<OneOrMany>>,
    /// Turn off a check inherited from the base image.
    #[serde(default)]
    pub disable: bool,
    /// Time between checks, such as `30s` or `1m30s`.
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    /// Time a check may take.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Start-up time during which failures do not count.
    #[schemars(with = "Option<String>")]
    pub start_period: Option<Spanned<String>>,
    /// Time between checks during the start period.
    #[schemars(with = "Option<String>")]
    pub start_interval: Option<Spanned<String>>,
    /// Consecutive failures before the container is unhealthy.
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<i64>>,
}

/// A step: exactly one action key (`run`, `copy`, `add`, `file`, `env`,
/// `workdir`, `user`, `shell`, `arg`, `label`, `expose`, `volume`,
/// `stopsignal`) plus the options of that action.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Run a command: a string for the shell (several lines make a script; a
    /// `#!` first line picks its interpreter) or an argv list.
    #[schemars(with = "Option<OneOrMany>")]
    pub run: Option<Spanned<OneOrMany>>,
    /// Copy files: source paths or patterns, relative to the context or to `from`.
    #[schemars(with = "Option<OneOrMany>")]
    pub copy: Option<Spanned<OneOrMany>>,
    /// Like `copy`, and also fetches URLs and unpacks local tar archives.
    #[schemars(with = "Option<OneOrMany>")]
    pub add: Option<Spanned<OneOrMany>>,
    /// Write a file with this content (needs `to`).
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
    /// Set environment variables.
    #[schemars(with = "Option<IndexMap<String, Scalar>>")]
    pub env: Option<Spanned<IndexMap<String, Scalar>>>,
    /// Change the working directory.
    #[schemars(with = "Option<String>")]
    pub workdir: Option<Spanned<String>>,
    /// Change the user: `name|uid[:group|gid]`.
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// Change the shell for string commands.
    #[schemars(with = "Option<Vec<String>>")]
    pub shell: Option<Spanned<Vec<String>>>,
    /// Declare a build argument for the rest of the stage.
    #[schemars(with = "Option<String>")]
    pub arg: Option<Spanned<String>>,
    /// Set image labels, expanded with the variables of this point.
    #[schemars(with = "Option<IndexMap<String, Scalar>>")]
    pub label: Option<Spanned<IndexMap<String, Scalar>>>,
    /// Declare exposed ports, expanded with the variables of this point.
    #[schemars(with = "Option<Vec<Scalar>>")]
    pub expose: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// Declare volumes, expanded with the variables of this point.
    #[schemars(with = "Option<Vec<String>>")]
    pub volume: Option<Spanned<Vec<Spanned<String>>>>,
    /// Set the stop signal, expanded with the variables of this point.
    #[schemars(with = "Option<String>")]
    pub stopsignal: Option<Spanned<String>>,

    /// `arg`: the default value.
    #[schemars(with = "Option<Scalar>")]
    pub default: Option<Spanned<Scalar>>,
    /// `copy`, `add`, `file`: the destination; a directory when it ends with `/`.
    #[schemars(with = "Option<String>")]
    pub to: Option<Spanned<String>>,
    /// `copy`: a stage (`NAME` or `stage:NAME`) or an image to copy from.
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    /// `copy`, `add`, `file`: owner, `user[:group]`.
    #[schemars(with = "Option<Scalar>")]
    pub chown: Option<Spanned<Scalar>>,
    /// `copy`, `add`, `file`: mode, `0o755`, `"0755"` or symbolic `"u+x"`.
    #[schemars(with = "Option<Mode>")]
    pub chmod: Option<Spanned<Mode>>,
    /// `copy`, `add`: make the layer independent of what is below it.
    #[schemars(with = "Option<bool>")]
    pub link: Option<Spanned<bool>>,
    /// `copy`: keep the sources' parent directories.
    #[schemars(with = "Option<bool>")]
    pub parents: Option<Spanned<bool>>,
    /// `copy`, `add`: patterns to leave out.
    #[schemars(with = "Option<OneOrMany>")]
    pub exclude: Option<Spanned<OneOrMany>>,
    /// `add` of a URL: the expected digest, `sha256:...`.
    #[schemars(with = "Option<String>")]
    pub checksum: Option<Spanned<String>>,
    /// `add` of a Git repository: keep its `.git` directory.
    #[schemars(with = "Option<bool>")]
    pub keep_git_dir: Option<Spanned<bool>>,
    /// `file`: expand `$NAME` and `${NAME}` in the content with the
    /// variables of this point (`\$` is a literal `$`), as a Dockerfile
    /// `COPY <<EOF` heredoc with an unquoted delimiter does.
    #[schemars(with = "Option<bool>")]
    pub expand: Option<Spanned<bool>>,
    /// `file`: the file's name when `to` is a directory in the image (a
    /// Dockerfile `COPY <<EOF /dir` names it after the delimiter).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// `run`: mounts present only while the command runs.
    #[schemars(with = "Option<Vec<Mount>>")]
    pub mounts: Option<Spanned<Vec<Spanned<Mount>>>>,
    /// `run`: `default`, `none` (loopback only) or `host`.
    #[schemars(with = "Option<String>")]
    pub network: Option<Spanned<String>>,
}

/// A mount on a `run` step. `type` is one of `cache`, `secret`, `bind`,
/// `tmpfs`, `ssh`; the other keys depend on it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// `cache`, `secret`, `bind`, `tmpfs` or `ssh`.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Where the mount appears (required for cache, bind, tmpfs).
    #[schemars(with = "Option<String>")]
    pub target: Option<Spanned<String>>,
    /// cache: the cache's identity; secret, ssh: the id given on the command line.
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    /// cache: `shared` (default), `private` or `locked`.
    #[schemars(with = "Option<String>")]
    pub sharing: Option<Spanned<String>>,
    /// cache, bind: a stage or image to take the files from.
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    /// cache, bind: the path inside `from` (or the context).
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    /// cache, secret, ssh: file or directory mode.
    #[schemars(with = "Option<Mode>")]
    pub mode: Option<Spanned<Mode>>,
    /// cache, secret, ssh: owner uid.
    #[schemars(with = "Option<u32>")]
    pub uid: Option<Spanned<i64>>,
    /// cache, secret, ssh: owner gid.
    #[schemars(with = "Option<u32>")]
    pub gid: Option<Spanned<i64>>,
    /// cache: mount read-only.
    #[schemars(with = "Option<bool>")]
    pub readonly: Option<Spanned<bool>>,
    /// secret: expose the secret as this environment variable.
    #[schemars(with = "Option<String>")]
    pub env: Option<Spanned<String>>,
    /// secret, ssh: fail when it is not provided.
    #[schemars(with = "Option<bool>")]
    pub required: Option<Spanned<bool>>,
    /// tmpfs: size limit, bytes or `64m`, `1g`.
    #[schemars(with = "Option<Scalar>")]
    pub size: Option<Spanned<Scalar>>,
    /// bind: allow writes (they are discarded after the step).
    #[schemars(with = "Option<bool>")]
    pub rw: Option<Spanned<bool>>,
}

/// An `[images.NAME]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The stage whose result is the image.
    #[schemars(with = "String")]
    pub stage: Spanned<String>,
    /// Tags, such as `registry.example.com/app:1.0`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    /// Platforms to build. Default: `[build] platforms`.
    #[schemars(with = "Option<Vec<String>>")]
    pub platforms: Option<Vec<Spanned<String>>>,
    /// Labels added to the image config.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub labels: IndexMap<Spanned<String>, Spanned<Scalar>>,
    /// Annotations added to the image manifest and index.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub annotations: IndexMap<Spanned<String>, Spanned<Scalar>>,
}
