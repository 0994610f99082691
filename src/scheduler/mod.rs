//! Runs a build graph: every node's steps, in dependency order, then the
//! images assembled from the nodes' results.
//!
//! A node starts as soon as the node it starts from is built, and a step
//! that reads another stage waits for that stage alone, not for a whole
//! wave: nodes run concurrently, at most `--jobs` at a time.
//! Every step's cache key is computed as it comes (see `plan::cache`); a
//! step whose key is in the cache is not run, its layer is reused.

mod node;
mod snapshot;
mod timings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::image::{self, Descriptor, Image, ImageError};
use crate::ir::{self, BuildGraph, NodeId, Platform};
use crate::layer::LayerError;
use crate::plan::cache::{CacheKey, ContextFiles, KeySettings, NoCache};
use crate::store::{Store, StoreError};

pub use timings::{Phase, StepTimings};

/// Why a build failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    /// A step of a stage failed.
    #[error("stage `{node}`, step {step} (`{summary}`): {message}")]
    #[diagnostic(help("{help}"))]
    Step {
        /// The node id.
        node: String,
        /// The step number, from 1.
        step: usize,
        /// The step's summary.
        summary: String,
        /// What went wrong.
        message: String,
        /// What to do.
        help: String,
    },
    /// The base image of a stage could not be loaded.
    #[error("stage `{node}`: {message}")]
    #[diagnostic(help("{help}"))]
    Base {
        /// The node id.
        node: String,
        /// What went wrong.
        message: String,
        /// What to do.
        help: String,
    },
    /// The machine lacks something builds need (a runtime, overlayfs).
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Environment {
        /// What is missing.
        message: String,
        /// What to do.
        help: String,
    },
    /// The node stopped because a node it waited for failed, or the build
    /// is failing; never reported (the failure that caused it is).
    #[error("the build stopped before this stage could go on")]
    Stopped,
    /// Several nodes failed (the ones running when the first failed).
    #[error("{} stages failed", errors.len())]
    Several {
        /// Each failure.
        #[related]
        errors: Vec<BuildError>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Writing a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Extracting a layer of an image into the store failed; nothing of it
    /// is left in the store.
    #[error("cannot extract layer {layer}: {reason}")]
    #[diagnostic(help("{}", extract_help(reason)))]
    Extract {
        /// The layer's blob digest.
        layer: String,
        /// Why (in the message, so not a `source`).
        reason: LayerError,
    },
}

/// What to do about a layer that cannot be extracted.
pub(crate) fn extract_help(error: &LayerError) -> &'static str {
    match error {
        LayerError::TooLarge {
            declared: false, ..
        } => {
            "if the image is trusted and the layer really is that large, raise the limit with `--max-layer-size` (or `IMGBUILD_MAX_LAYER_SIZE`)"
        }
        LayerError::TooLarge { declared: true, .. } | LayerError::DiffIdMismatch { .. } => {
            "the image is damaged or not what it claims to be; do not use it"
        }
        LayerError::NoSpace { .. } => {
            "free some space (`imgbuild prune` removes build cache), or use a store on a larger filesystem (`--store`)"
        }
        _ => "the image's layer is malformed or unsafe; check where the image comes from",
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// The directory relative paths in the manifest are relative to.
    pub manifest_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`: clamps file times and sets creation times.
    pub source_date_epoch: Option<i64>,
    /// The OCI runtime for `run` steps (`--runtime`); None finds one.
    pub runtime: Option<String>,
    /// Secrets and SSH agents the steps may use.
    pub grants: crate::exec::step::Grants,
    /// The build machine's platform.
    pub host: Platform,
    /// How many nodes may run at once (`--jobs`); None: no limit.
    pub jobs: Option<usize>,
    /// Stages that ignore the cache.
    pub no_cache: NoCache,
    /// Identifies the manifest in the cache's records of past builds.
    pub scope: String,
    /// Resolves base images, each tag once per build; shared with the plan.
    pub bases: std::sync::Arc<image::base::BaseResolver>,
    /// The most bytes one layer may have uncompressed when it is extracted
    /// (`--max-layer-size`).
    pub max_layer_size: u64,
}

impl BuildOptions {
    /// The settings every cache key includes.
    pub fn key_settings(&self) -> KeySettings {
        key_settings(self.source_date_epoch)
    }
}

/// The settings every cache key includes: `SOURCE_DATE_EPOCH`, which
/// clamps file times. (Layers are stored uncompressed; compression happens
/// on export, so it is in no key.)
pub fn key_settings(source_date_epoch: Option<i64>) -> KeySettings {
    KeySettings { source_date_epoch }
}

/// A built node: its image and its cache key.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image the node produced.
    pub image: Image,
    /// The key of its last step (what a stage based on it chains on).
    pub key: Option<CacheKey>,
}

/// What the build reports as it goes.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A node starts.
    NodeStarted {
        /// Its id.
        node: &'a str,
    },
    /// A step starts running (it was not in the cache).
    StepStarted {
        /// The node id.
        node: &'a str,
        /// Step number from 1.
        step: usize,
        /// Its summary.
        summary: &'a str,
    },
    /// A line of a `run` step's output.
    Output {
        /// The node id.
        node: &'a str,
        /// Step number from 1.
        step: usize,
        /// The line.
        line: &'a str,
    },
    /// A step is done: it ran, or its result came from the cache.
    StepDone {
        /// The node id.
        node: &'a str,
        /// Step number from 1.
        step: usize,
        /// Its summary.
        summary: &'a str,
        /// Whether the cache had it.
        cached: bool,
        /// How long it ran (zero when cached).
        elapsed: Duration,
        /// Where that time went (None when cached).
        timings: Option<StepTimings>,
    },
}

/// One built image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image's name in the manifest.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its manifest (one platform) or index (several).
    pub descriptor: Descriptor,
    /// Each platform's manifest descriptor and image.
    pub platforms: Vec<(Platform, Descriptor, Image)>,
}

/// Builds every image of `graph` into `store`.
pub fn build(
    store: &Store,
    graph: &BuildGraph,
    context: &ContextFiles,
    options: &BuildOptions,
    report: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Vec<BuiltImage>, BuildError> {
    // Snapshots written unsynced long enough ago are durable by now; the
    // one sync that confirms it runs beside the build, never in its way
    // (if the process ends first, the markers stay for the next build).
    let settling = store.clone();
    std::thread::spawn(move || {
        if let Err(e) = settling.settle_snapshots() {
            tracing::warn!("cannot settle the store's recent snapshots: {e}");
        }
    });
    let runner = node::NodeRunner::new(store, context, options);
    let results = Nodes::new(graph, &runner, report, options.jobs).run()?;
    let mut images = Vec::new();
    for resolved in &graph.images {
        let annotations: BTreeMap<String, String> =
            resolved.annotations.clone().into_iter().collect();
        let mut platforms = Vec::new();
        for (platform, id) in &resolved.nodes {
            let mut built = results[id].image.clone();
            built.config.runtime.labels.extend(resolved.labels.clone());
            let descriptor = image::write_image(store, &built, &annotations)?;
            platforms.push((platform.clone(), descriptor, built));
        }
        let descriptor = if let [(_, single, _)] = platforms.as_slice() {
            single.clone()
        } else {
            let manifests: Vec<(Platform, Descriptor)> = platforms
                .iter()
                .map(|(p, d, _)| (p.clone(), d.clone()))
                .collect();
            image::write_index(store, &manifests, &annotations)?
        };
        for tag in &resolved.tags {
            store.set_tag(tag, descriptor.clone())?;
        }
        images.push(BuiltImage {
            name: resolved.name.clone(),
            tags: resolved.tags.clone(),
            descriptor,
            platforms,
        });
    }
    Ok(images)
}

/// The nodes of one build as they run, step by step rather than stage by
/// stage: each node starts as soon as the node it starts from is built (at
/// once for an image or `scratch`), and a step that reads another stage
/// (`copy --from`, a mount's `from`) waits for that stage alone. So a final
/// stage copies its context files while an unrelated long stage still
/// runs. At most `jobs` nodes run at a time; a node waiting for another
/// gives its place up while it waits (so waiting never deadlocks a DAG).
/// A failure lets the running nodes finish and starts, or resumes, no
/// other.
struct Nodes<'a> {
    graph: &'a BuildGraph,
    runner: &'a node::NodeRunner<'a>,
    report: &'a (dyn Fn(Event<'_>) + Sync),
    /// How many nodes may run at once.
    places: usize,
    state: Mutex<NodesState>,
    /// Signalled whenever a node finishes or gives its place up.
    changed: Condvar,
}

#[derive(Default)]
struct NodesState {
    /// What each built node produced.
    built: HashMap<NodeId, Built>,
    /// Nodes that failed or stopped: what waits for them stops too.
    ended: HashSet<NodeId>,
    /// How many nodes hold a place.
    running: usize,
    failures: Vec<(NodeId, BuildError)>,
}

impl<'a> Nodes<'a> {
    fn new(
        graph: &'a BuildGraph,
        runner: &'a node::NodeRunner<'a>,
        report: &'a (dyn Fn(Event<'_>) + Sync),
        jobs: Option<usize>,
    ) -> Self {
        // No limit by default, as BuildKit: steps that wait on the network
        // or sleep would otherwise hold the places of those that compute.
        let places = jobs.filter(|&n| n > 0).unwrap_or(usize::MAX);
        Self {
            graph,
            runner,
            report,
            places,
            state: Mutex::new(NodesState::default()),
            changed: Condvar::new(),
        }
    }

    /// Runs every node, one thread each; returns what each produced, or the
    /// failures, in node order.
    fn run(self) -> Result<HashMap<NodeId, Built>, BuildError> {
        std::thread::scope(|scope| {
            let mut ids: Vec<NodeId> = self.graph.nodes().map(|(id, _)| id).collect();
            ids.sort_by(|a, b| self.graph.node(*a).id.cmp(&self.graph.node(*b).id));
            for id in ids {
                let nodes = &self;
                let spawned = std::thread::Builder::new()
                    .name("imgbuild-node".into())
                    .spawn_scoped(scope, move || nodes.run_node(id));
                if let Err(e) = spawned {
                    // What waits for the nodes not started stops.
                    self.lock().failures.push((
                        id,
                        BuildError::Environment {
                            message: format!("cannot start a build thread: {e}"),
                            help: "raise the limit on threads (`ulimit -u`)".into(),
                        },
                    ));
                    self.changed.notify_all();
                    break;
                }
            }
        });
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut failures = state.failures;
        failures.sort_by(|a, b| self.graph.node(a.0).id.cmp(&self.graph.node(b.0).id));
        let mut errors: Vec<BuildError> = failures.into_iter().map(|(_, e)| e).collect();
        match errors.len() {
            0 => Ok(state.built),
            1 => Err(errors.remove(0)),
            _ => Err(BuildError::Several { errors }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NodesState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'g>(&self, state: MutexGuard<'g, NodesState>) -> MutexGuard<'g, NodesState> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until node `id` is built (or has ended without a result, or
    /// the build is failing).
    fn wait_built<'g>(
        &self,
        mut state: MutexGuard<'g, NodesState>,
        id: NodeId,
    ) -> (MutexGuard<'g, NodesState>, Result<Built, BuildError>) {
        loop {
            if let Some(built) = state.built.get(&id) {
                let built = built.clone();
                return (state, Ok(built));
            }
            if state.ended.contains(&id) || !state.failures.is_empty() {
                return (state, Err(BuildError::Stopped));
            }
            state = self.wait(state);
        }
    }

    /// Takes a place among the running nodes, unless the build is failing.
    fn take_place<'g>(
        &self,
        mut state: MutexGuard<'g, NodesState>,
    ) -> (MutexGuard<'g, NodesState>, Result<(), BuildError>) {
        loop {
            if !state.failures.is_empty() {
                return (state, Err(BuildError::Stopped));
            }
            if state.running < self.places {
                state.running += 1;
                return (state, Ok(()));
            }
            state = self.wait(state);
        }
    }

    /// Runs node `id` once the node it starts from is built.
    fn run_node(&self, id: NodeId) {
        let node = self.graph.node(id);
        let mut state = self.lock();
        if let ir::Base::Stage(parent) = &node.base {
            let parent = self.graph.find(parent).expect("a stage base is a node");
            let (waited, result) = self.wait_built(state, parent);
            state = waited;
            if result.is_err() {
                state.ended.insert(id);
                drop(state);
                self.changed.notify_all();
                return;
            }
        }
        let (placed, place) = self.take_place(state);
        drop(placed);
        let result = place.and_then(|()| {
            let result = self.runner.run(self.graph, id, self, self.report);
            self.lock().running -= 1;
            result
        });
        let mut state = self.lock();
        match result {
            Ok(built) => {
                state.built.insert(id, built);
            }
            Err(BuildError::Stopped) => {
                state.ended.insert(id);
            }
            Err(e) => {
                state.ended.insert(id);
                state.failures.push((id, e));
            }
        }
        drop(state);
        self.changed.notify_all();
    }
}

impl node::Dependencies for Nodes<'_> {
    fn built(&self, id: NodeId) -> Result<Built, BuildError> {
        let mut state = self.lock();
        if let Some(built) = state.built.get(&id) {
            return Ok(built.clone());
        }
        // Give the place up while waiting, then take one again.
        state.running -= 1;
        self.changed.notify_all();
        let (state, result) = self.wait_built(state, id);
        let (mut state, place) = self.take_place(state);
        if place.is_err() {
            // Counted as running all the same: the node's end releases it.
            state.running += 1;
        }
        place?;
        result
    }
}

/// RFC 3339 UTC time of a Unix timestamp.
pub fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let seconds = epoch.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
