//! Planning: resolve a project for a request and describe what a build does.
//!
//! [`plan`] resolves the targets, platforms and arguments of a [`Request`]
//! into an [`ir::BuildGraph`] and then into a [`Plan`]: the images, and every
//! stage × platform node with its steps expanded, grouped into waves of nodes
//! that can run concurrently. `imgbuild plan` prints it; `--json` prints it
//! as the document described in the book's "Plan JSON" chapter.

pub mod cache;
mod mount_target;
mod predict;
mod render;
mod resolve;
pub mod state;

use indexmap::IndexMap;
use serde::Serialize;

use crate::diagnostic::Diagnostics;
use crate::ir::{self, Base, EdgeKind, Platform, Project, StageConfig, Step};

pub use predict::{CacheQuery, predict};
pub use render::{render_text, summary};

/// The argument `BuildKit` (dockerfile 1.11) sets to the name of the stage
/// being built, in a Dockerfile's global scope.
pub const TARGETSTAGE: &str = "TARGETSTAGE";

/// The build arguments `BuildKit` reads itself (its frontend, exporters and
/// attestations, besides `BUILDKIT_ATTEST_*`): never reported as unconsumed.
pub const BUILDKIT_ARGS: [&str; 10] = [
    "BUILDKIT_BUILD_NAME",
    "BUILDKIT_CACHE_MOUNT_NS",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
    "BUILDKIT_DISABLE_FILEOP",
    "BUILDKIT_DOCKERFILE_CHECK",
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_SANDBOX_HOSTNAME",
    "BUILDKIT_SYNTAX",
    "SOURCE_DATE_EPOCH",
];

/// The version of the `--json` document; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What to build: the command line's view of a build.
#[derive(Debug, Clone)]
pub struct Request {
    /// Image or group names; empty means the `default` group, or every image.
    pub targets: Vec<String>,
    /// Platforms for every image; empty means each image's own.
    pub platforms: Vec<Platform>,
    /// `--arg` overrides.
    pub args: IndexMap<String, String>,
    /// The platform of the building machine.
    pub host: Platform,
    /// The directory relative paths of local base images start from (the
    /// manifest's or Dockerfile's).
    pub base_dir: std::path::PathBuf,
    /// Reads registry base images' configs while planning (their `ONBUILD`
    /// triggers); without it only local bases are read.
    pub bases: Option<std::sync::Arc<crate::image::base::BaseResolver>>,
    /// Reads the `ONBUILD` triggers of base images and the `--mount`s whose
    /// options hold variables: the Dockerfile front end's
    /// `Triggers`, which the CLI hands in. Without it a
    /// build that meets either fails to plan.
    pub triggers: Option<std::sync::Arc<dyn ir::trigger::TriggerSyntax>>,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            platforms: Vec::new(),
            args: IndexMap::new(),
            host: Platform::host(),
            base_dir: std::path::PathBuf::from("."),
            bases: None,
            triggers: None,
        }
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// A value in the manifest is wrong once variables are expanded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] Diagnostics),
    /// The request itself is wrong (an unknown target or argument).
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        help: String,
    },
}

/// An `--arg` that nothing in the project declares: `BuildKit` ignores it
/// and so does the build, with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconsumed {
    /// The argument's name.
    pub name: String,
    /// The declared argument it most likely misspells.
    pub closest: Option<String>,
}

/// The `--arg` values of `request` that nothing declares, sorted by name.
pub fn unconsumed_args(
    project: &Project,
    request: &Request,
    graph: &ir::BuildGraph,
) -> Vec<Unconsumed> {
    resolve::unconsumed_args(project, request, graph)
}

/// Plans the build of `request` from `project`.
pub fn plan(project: &Project, request: &Request) -> Result<Plan, Error> {
    let graph = resolve_graph(project, request)?;
    Ok(Plan::new(project, &graph))
}

/// Resolves `project` for `request` into the graph a build runs.
pub fn resolve_graph(project: &Project, request: &Request) -> Result<ir::BuildGraph, Error> {
    resolve::resolve(project, request)
}

/// Everything a build will do, in dependency order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The manifest or Dockerfile, as given.
    pub source: String,
    /// The build context directory, relative to the source's directory.
    pub context: String,
    /// The images to produce.
    pub images: Vec<PlanImage>,
    /// Every node, wave by wave.
    pub nodes: Vec<PlanNode>,
    /// Node ids per wave; the nodes of a wave can run concurrently.
    pub waves: Vec<Vec<String>>,
}

/// An image in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanImage {
    /// The image's name and settings.
    #[serde(flatten)]
    pub image: ir::ResolvedImage,
    /// The node that builds it on each platform.
    pub platforms: Vec<PlanPlatform>,
}

/// One platform of an image.
#[derive(Debug, Clone, Serialize)]
pub struct PlanPlatform {
    /// The platform.
    pub platform: Platform,
    /// The id of the node whose result is the image on that platform.
    pub node: String,
}

/// A stage × platform node in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanNode {
    /// Unique id, `stage@os/arch` (plus `~target` when resolved per target).
    pub id: String,
    /// The stage.
    pub stage: String,
    /// The platform it runs on.
    pub platform: Platform,
    /// The target it was resolved for, when that differs from `platform`.
    pub target_platform: Option<Platform>,
    /// The wave it belongs to, from 0.
    pub wave: usize,
    /// What it starts from.
    pub base: Base,
    /// For a registry base named by tag: the reference pinned to the digest
    /// the tag resolves to now, what a manifest can write to pin it. Filled
    /// in by [`predict`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_pinned: Option<String>,
    /// The nodes it needs, each with why.
    pub depends_on: Vec<PlanDependency>,
    /// Build arguments that `run` steps see as environment variables.
    pub args: IndexMap<String, String>,
    /// The resulting image config.
    pub config: StageConfig<String>,
    /// The steps, variables expanded.
    pub steps: Vec<PlanStep>,
}

/// A dependency of a node.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDependency {
    /// The id of the node depended on.
    pub node: String,
    /// How it is used.
    pub kind: EdgeKind,
}

/// One step in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// Position in the stage, from 1.
    pub index: usize,
    /// A one-line description.
    pub summary: String,
    /// The step itself.
    #[serde(flatten)]
    pub step: Step<String>,
    /// Whether the step is one of the base's `ONBUILD` triggers.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub onbuild: bool,
    /// Cache state; `null` when the plan was made without a store.
    pub cache: Option<CacheStatus>,
}

/// Whether a step's result is already in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CacheStatus {
    /// The result is in the cache; the step will not run.
    Cached,
    /// The step will run.
    Build {
        /// Why, in words.
        reason: String,
    },
}

impl Plan {
    /// Describes `graph`, resolved from `project`.
    pub fn new(project: &Project, graph: &ir::BuildGraph) -> Self {
        let waves = graph.waves();
        let mut nodes = Vec::new();
        for (wave, ids) in waves.iter().enumerate() {
            for &id in ids {
                let node = graph.node(id);
                nodes.push(PlanNode {
                    id: node.id.clone(),
                    stage: node.stage.clone(),
                    platform: node.platform.clone(),
                    target_platform: node.target.clone(),
                    wave,
                    base: node.base.clone(),
                    base_pinned: None,
                    depends_on: graph
                        .dependencies(id)
                        .into_iter()
                        .map(|(d, kind)| PlanDependency {
                            node: graph.node(d).id.clone(),
                            kind,
                        })
                        .collect(),
                    args: node.args.clone(),
                    config: node.config.clone(),
                    steps: node
                        .steps
                        .iter()
                        .enumerate()
                        .map(|(i, step)| PlanStep {
                            index: i + 1,
                            summary: render::summary(step),
                            step: step.clone(),
                            onbuild: i < node.onbuild_steps,
                            cache: None,
                        })
                        .collect(),
                });
            }
        }
        let images = graph
            .images
            .iter()
            .map(|image| PlanImage {
                image: image.clone(),
                platforms: image
                    .nodes
                    .iter()
                    .map(|(platform, id)| PlanPlatform {
                        platform: platform.clone(),
                        node: graph.node(*id).id.clone(),
                    })
                    .collect(),
            })
            .collect();
        Plan {
            schema_version: SCHEMA_VERSION,
            source: project.source.name.clone(),
            context: project.context.value.clone(),
            images,
            waves: waves
                .iter()
                .map(|w| w.iter().map(|&id| graph.node(id).id.clone()).collect())
                .collect(),
            nodes,
        }
    }
}
