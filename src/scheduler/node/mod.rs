//! Runs one node: loads its base, runs its steps, and applies its config.
//!
//! The steps other than `run` are in `steps`, `run` steps in `run_step`,
//! and writing a step's layer (with its snapshot) in `write`.

mod run_step;
mod steps;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{BuildError, BuildOptions, Built, Event, Phase, StepTimings, rfc3339};
use crate::context::PatternMatcher;
use crate::exec::rootfs::{View, read_only_view};
use crate::exec::{Executor, OciRuntime};
use crate::image::source::ImageSource;
use crate::image::{DEFAULT_CREATED, Image, ImageConfig};
use crate::ir::{Base, BuildGraph, Node, NodeId, Step};
use crate::layer::{self};
use crate::plan::cache::{
    self, CacheKey, ContextFiles, InputDigest, InputSpec, KeySettings, NodeKeys, StepRecord,
};
use crate::plan::state::apply_config;
use crate::plan::summary;
use crate::store::{CacheEntry, CachedLayer, Store};

/// `ROOT/meta/` file remembering which OCI runtime works (see
/// [`OciRuntime::detect_remembered`]).
const RUNTIME_PROBE: &str = "runtime-probe";

/// What the nodes a node reads have built, as its steps come to need it.
pub(super) trait Dependencies: Sync {
    /// What node `id` built, waiting while it is still building; the
    /// error [`BuildError::Stopped`] when it failed or the build is
    /// failing (the waiting node then ends without an error of its own).
    fn built(&self, id: NodeId) -> Result<Built, BuildError>;
}

/// Runs nodes against one store.
pub struct NodeRunner<'a> {
    store: &'a Store,
    ignore: &'a PatternMatcher,
    context: &'a ContextFiles,
    options: &'a BuildOptions,
    settings: KeySettings,
    created: String,
    executor: Mutex<Option<Arc<dyn Executor>>>,
}

/// One node being built: what its steps read besides the runner.
#[derive(Clone, Copy)]
struct NodeBuild<'b> {
    graph: &'b BuildGraph,
    node: &'b Node,
    /// What the nodes it reads built.
    deps: &'b dyn Dependencies,
    report: &'b (dyn Fn(Event<'_>) + Sync),
    /// The node's temporary directory.
    scratch: &'b Path,
}

/// Which step of a node is running.
#[derive(Clone, Copy)]
struct StepAt<'s> {
    /// Its summary, as progress shows it.
    text: &'s str,
    /// Its number in the node, from 1.
    number: usize,
}

/// A failure of step `at` of `node`.
fn step_error(node: &Node, at: StepAt<'_>, message: String, help: String) -> BuildError {
    BuildError::Step {
        node: node.id.clone(),
        step: at.number,
        summary: at.text.to_owned(),
        message,
        help,
    }
}

impl<'a> NodeRunner<'a> {
    /// A runner for one build.
    pub fn new(store: &'a Store, context: &'a ContextFiles, options: &'a BuildOptions) -> Self {
        Self {
            store,
            ignore: context.ignore(),
            context,
            options,
            settings: options.key_settings(),
            created: options
                .source_date_epoch
                .map_or_else(|| DEFAULT_CREATED.to_owned(), rfc3339),
            executor: Mutex::new(None),
        }
    }

    fn mtime(&self) -> i64 {
        self.options.source_date_epoch.unwrap_or(0)
    }

    /// Resolves (once per build) the image `reference` for the node's platform.
    /// When it cannot be loaded and looks like a misspelt stage of `graph`,
    /// the help says so first.
    fn base_image(
        &self,
        graph: &BuildGraph,
        node: &Node,
        reference: &str,
    ) -> Result<Image, BuildError> {
        let source = ImageSource::parse(reference, &self.options.manifest_dir);
        let base = self
            .options
            .bases
            .resolve(&source, &node.platform)
            .map_err(|e| {
                let (message, help) = match e {
                    crate::image::ImageError::Source { message, help } => (message, help),
                    other => (
                        format!("cannot load base image `{reference}`: {other}"),
                        "check the image source".into(),
                    ),
                };
                let help = match crate::ir::reference::stage_hint(reference, &graph.stage_names) {
                    Some(hint) => format!("{hint}; otherwise: {help}"),
                    None => help,
                };
                BuildError::Base {
                    node: node.id.clone(),
                    message,
                    help,
                }
            })?;
        Ok(base.image)
    }

    /// Each layer of `image` extracted once into the store, bottom first,
    /// with whiteouts as overlayfs stores them. Each is checked while it
    /// is extracted: its uncompressed size against what it declares and
    /// `--max-layer-size`, its content against its `diff_id`, and the
    /// store's free space; a layer that fails leaves no snapshot.
    fn snapshots(&self, image: &Image) -> Result<Vec<PathBuf>, BuildError> {
        let store = self.store;
        image
            .layers
            .iter()
            .map(|layer| {
                if let Some(path) = store.snapshot(&layer.diff_id) {
                    return Ok(path);
                }
                let started = Instant::now();
                let _span = tracing::debug_span!("snapshot", diff_id = %layer.diff_id).entered();
                let snapshot =
                    store.create_snapshot(&layer.diff_id, |dir: &Path| -> Result<(), BuildError> {
                        let blob = store.open_blob(&layer.digest)?;
                        let options = layer::ExtractOptions {
                            preserve_ownership: true,
                            overlay_whiteouts: true,
                            max_size: Some(layer.extraction_bound(self.options.max_layer_size)),
                            diff_id: Some(layer.diff_id.to_string()),
                            space_needed: layer.size,
                        };
                        layer::extract_layer(blob, dir, &options).map_err(|reason| {
                            BuildError::Extract {
                                layer: layer.digest.to_string(),
                                reason,
                            }
                        })?;
                        Ok(())
                    });
                tracing::debug!(
                    size = layer.size,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "extracted a layer into a snapshot"
                );
                snapshot
            })
            .collect()
    }

    /// A read-only view of `image`'s filesystem; None if it has no layers.
    fn rootfs(&self, image: &Image) -> Result<Option<View>, BuildError> {
        let lowers = self.snapshots(image)?;
        let target = self.store.temp_path("view");
        read_only_view(&lowers, &target).map_err(|e| BuildError::Environment {
            message: format!("cannot mount a view of the image's layers: {e}"),
            help: "imgbuild needs root and overlayfs; `imgbuild doctor` checks".into(),
        })
    }

    /// Runs node `id` of `graph`, whose dependencies are in `results`.
    pub fn run(
        &self,
        graph: &BuildGraph,
        id: NodeId,
        results: &dyn Dependencies,
        report: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<Built, BuildError> {
        let node = graph.node(id);
        report(Event::NodeStarted { node: &node.id });
        let (mut image, base_key) = match &node.base {
            Base::Scratch => (
                Image {
                    config: ImageConfig::scratch(node.platform.clone(), &self.created),
                    layers: Vec::new(),
                },
                Some(CacheKey::scratch(&node.platform.to_string())),
            ),
            Base::Stage(parent) => {
                let built = results.built(graph.find(parent).expect("a stage base is a node"))?;
                (built.image, built.key)
            }
            Base::Image(reference) => {
                let mut base = self.base_image(graph, node, reference)?;
                check_onbuild(node, reference, &base)?;
                let key = CacheKey::image(&base);
                base.config.created.clone_from(&self.created);
                (base, Some(key))
            }
        };
        let scratch = self.store.temp_path("build");
        let build = NodeBuild {
            graph,
            node,
            deps: results,
            report,
            scratch: &scratch,
        };
        let result = self.run_steps(&build, &mut image, base_key);
        let _ = std::fs::remove_dir_all(&scratch);
        let key = result?;
        apply_config(node, &mut image);
        Ok(Built { image, key })
    }

    /// Takes a step's result from the cache when it is there (and the
    /// stage is not `--no-cache`); returns whether it was.
    fn use_cached(
        &self,
        node: &Node,
        image: &mut Image,
        record: Option<&StepRecord>,
        record_id: &str,
    ) -> Result<bool, BuildError> {
        let Some(record) = record else {
            return Ok(false);
        };
        if self.options.no_cache.applies(&node.stage) {
            return Ok(false);
        }
        let Some(entry) = self.store.use_cache_entry(&record.key)? else {
            return Ok(false);
        };
        cache::push_entry(image, &entry, &self.created);
        cache::save_record(self.store, record_id, record);
        Ok(true)
    }

    /// Stores what a step that just ran added to `image` (which had
    /// `layers_before` layers) under its key.
    fn store_result(
        &self,
        image: &Image,
        layers_before: usize,
        record: Option<&StepRecord>,
        record_id: &str,
    ) -> Result<(), BuildError> {
        let Some(record) = record else {
            return Ok(());
        };
        if record.uncacheable.is_none() {
            let layer = (image.layers.len() > layers_before)
                .then(|| image.layers.last())
                .flatten()
                .map(|l| CachedLayer {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    diff_id: l.diff_id.clone(),
                });
            let created_by = image
                .config
                .history
                .last()
                .map(|h| h.created_by.clone())
                .unwrap_or_default();
            self.store
                .put_cache_entry(&record.key, &CacheEntry { layer, created_by })?;
        }
        cache::save_record(self.store, record_id, record);
        Ok(())
    }

    /// The content digests of what `step` reads, or None when they cannot be
    /// taken (the step then runs uncached and reports the problem itself).
    fn inputs(
        &self,
        graph: &BuildGraph,
        node: &Node,
        step: &Step<String>,
        results: &dyn Dependencies,
    ) -> Option<Vec<InputDigest>> {
        let mut digests = Vec::new();
        for spec in InputSpec::of(step) {
            let digest = match spec.from.as_deref() {
                None => spec.digest_context(self.context).ok()?,
                Some(from) => {
                    let (source, label) = match from.strip_prefix("stage:") {
                        Some(stage) => {
                            let id = graph.find(stage)?;
                            (
                                results.built(id).ok()?.image,
                                format!("stage {}", graph.node(id).stage),
                            )
                        }
                        None => (self.base_image(graph, node, from).ok()?, from.to_owned()),
                    };
                    match spec.recall(self.store, &source.layers) {
                        Some(digest) => digest,
                        None => {
                            let digest = self.digest_image_input(&spec, &source, &label)?;
                            spec.remember(self.store, &source.layers, &digest);
                            digest
                        }
                    }
                }
            };
            digests.push(digest);
        }
        digests.extend(cache::git_inputs(step).ok()?);
        Some(digests)
    }

    /// Hashes what `spec` reads from `source`'s filesystem.
    fn digest_image_input(
        &self,
        spec: &InputSpec,
        source: &Image,
        label: &str,
    ) -> Option<InputDigest> {
        if let Some(view) = self.rootfs(source).ok()? {
            return spec.digest_rootfs(view.path(), label).ok();
        }
        let empty = self.store.temp_path("empty");
        std::fs::create_dir_all(&empty).ok()?;
        let digest = spec.digest_rootfs(&empty, label).ok();
        let _ = std::fs::remove_dir_all(&empty);
        digest
    }

    /// Runs the node's steps on `image` (its base, whose key is
    /// `base_key`), each from the cache when it is there; returns the key
    /// of the last.
    fn run_steps(
        &self,
        build: &NodeBuild<'_>,
        image: &mut Image,
        base_key: Option<CacheKey>,
    ) -> Result<Option<CacheKey>, BuildError> {
        let NodeBuild {
            graph,
            node,
            deps: results,
            report,
            ..
        } = *build;
        let scope = &self.options.scope;
        let mut keys = NodeKeys::new(&self.settings, node, image, base_key);
        if let Some(record) = keys.start_workdir(image) {
            // The stage's own workdir exists before its first step, as WORKDIR makes it.
            let dir = node.start.workdir.as_deref().expect("a start workdir");
            let record_id = cache::record_id(scope, &node.id, 0);
            if !self.use_cached(node, image, record.as_ref(), &record_id)? {
                let before = image.layers.len();
                self.mkdir(
                    image,
                    dir,
                    &format!("workdir {dir}"),
                    &mut StepTimings::default(),
                )?;
                self.store_result(image, before, record.as_ref(), &record_id)?;
            }
        }
        for (i, step) in node.steps.iter().enumerate() {
            let text = summary(step);
            let inputs = self.inputs(graph, node, step, results);
            let record = keys.step(step, inputs);
            let record_id = cache::record_id(scope, &node.id, i + 1);
            if self.use_cached(node, image, record.as_ref(), &record_id)? {
                report(Event::StepDone {
                    node: &node.id,
                    step: i + 1,
                    summary: &text,
                    cached: true,
                    elapsed: Duration::ZERO,
                    timings: None,
                });
                continue;
            }
            report(Event::StepStarted {
                node: &node.id,
                step: i + 1,
                summary: &text,
            });
            let started = Instant::now();
            let _span = tracing::debug_span!("step", node = %node.id, step = i + 1).entered();
            let mut timings = StepTimings::default();
            let before = image.layers.len();
            self.run_step_uncached(
                build,
                image,
                &keys.state,
                step,
                StepAt {
                    text: &text,
                    number: i + 1,
                },
                &mut timings,
            )?;
            timings.time(Phase::Commit, || {
                self.store_result(image, before, record.as_ref(), &record_id)
            })?;
            let elapsed = started.elapsed();
            tracing::debug!(
                rootfs_ms = timings.rootfs.as_secs_f64() * 1e3,
                run_ms = timings.run.as_secs_f64() * 1e3,
                diff_ms = timings.diff.as_secs_f64() * 1e3,
                layer_ms = timings.layer.as_secs_f64() * 1e3,
                commit_ms = timings.commit.as_secs_f64() * 1e3,
                other_ms = timings.other(elapsed).as_secs_f64() * 1e3,
                "step timings"
            );
            report(Event::StepDone {
                node: &node.id,
                step: i + 1,
                summary: &text,
                cached: false,
                elapsed,
                timings: Some(timings),
            });
        }
        Ok(keys.key())
    }

    /// The executor, found on first use.
    fn executor(&self) -> Result<Arc<dyn Executor>, BuildError> {
        // Held while probing, so concurrent nodes probe once.
        let mut slot = self.executor.lock().expect("not poisoned");
        if let Some(executor) = slot.as_ref() {
            return Ok(Arc::clone(executor));
        }
        let scratch = self.store.temp_path("probe");
        // An earlier build's probe holds while the runtimes and the boot are the same.
        let remembered = self.store.read_meta(RUNTIME_PROBE).ok().flatten();
        let (runtime, memory) = OciRuntime::detect_remembered(
            self.options.runtime.as_deref(),
            &scratch,
            remembered.as_deref(),
        );
        let _ = std::fs::remove_dir_all(&scratch);
        if let Some(memory) = memory
            && let Err(e) = self.store.write_meta(RUNTIME_PROBE, &memory)
        {
            tracing::debug!("cannot remember the runtime probe: {e}");
        }
        let executor: Arc<dyn Executor> = Arc::new(runtime.map_err(|e| BuildError::Environment {
            message: e.to_string(),
            help: "install runc (Debian: `apt-get install runc`) or pass `--runtime PATH`; `imgbuild doctor` checks".into(),
        })?);
        *slot = Some(Arc::clone(&executor));
        Ok(executor)
    }
}

/// Checks that the base image's `ONBUILD` triggers are the ones the plan
/// ran, since they can only be planned from a config read while planning.
fn check_onbuild(node: &Node, reference: &str, base: &Image) -> Result<(), BuildError> {
    let found = &base.config.runtime.onbuild;
    match &node.base_onbuild {
        Some(planned) if planned == found => Ok(()),
        None if found.is_empty() => Ok(()),
        planned => Err(BuildError::Base {
            node: node.id.clone(),
            message: if planned.is_none() {
                format!(
                    "base image `{reference}` has ONBUILD triggers ({}), which imgbuild could not read while planning",
                    found.join("; ")
                )
            } else {
                format!("base image `{reference}` changed while building: its ONBUILD triggers are not the ones planned")
            },
            help: "imgbuild runs a base's triggers as planned steps, so it must read the base's config when planning: use a local base (`oci-layout:`, `oci-archive:`, `docker-archive:`) that exists before the build starts".into(),
        }),
    }
}
