//! Runs one node: loads its base, runs its steps, and applies its config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::snapshot::{self, Extraction};
use super::{BuildError, BuildOptions, Built, Event, Phase, StepTimings, rfc3339};
use crate::context::PatternMatcher;
use crate::copy::{self, CopySpec, Origin, Target};
use crate::exec::rootfs::{View, read_only_view};
use crate::exec::step::{Process, StepError};
use crate::exec::{self, Executor, OciRuntime};
use crate::image::source::ImageSource;
use crate::image::{DEFAULT_CREATED, HistoryEntry, Image, ImageConfig, LayerRef};
use crate::ir::{Base, BuildGraph, Mount, Node, NodeId, Run, Step};
use crate::layer::{self, Entry, EntryKind, WriteOptions};
use crate::plan::cache::{
    self, CacheKey, ContextFiles, InputDigest, InputSpec, KeySettings, NodeKeys, StepRecord,
};
use crate::plan::state::{State, apply_config};
use crate::plan::summary;
use crate::store::{CacheEntry, CachedLayer, Digest, Store};

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
        let result = self.run_steps(graph, node, &mut image, base_key, results, &scratch, report);
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

    #[allow(clippy::too_many_arguments)]
    fn run_steps(
        &self,
        graph: &BuildGraph,
        node: &Node,
        image: &mut Image,
        base_key: Option<CacheKey>,
        results: &dyn Dependencies,
        scratch: &Path,
        report: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<Option<CacheKey>, BuildError> {
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
                graph,
                node,
                image,
                results,
                &keys.state,
                step,
                &text,
                i + 1,
                scratch,
                report,
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

    /// Runs one step that the cache does not have.
    #[allow(clippy::too_many_arguments)]
    fn run_step_uncached(
        &self,
        graph: &BuildGraph,
        node: &Node,
        image: &mut Image,
        results: &dyn Dependencies,
        state: &State,
        step: &Step<String>,
        text: &str,
        number: usize,
        scratch: &Path,
        report: &(dyn Fn(Event<'_>) + Sync),
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        if let Step::Run(run) = step {
            return self.run_step(
                graph, node, image, results, state, run, text, number, report, timings,
            );
        }
        let fail = |message: String, help: &str| BuildError::Step {
            node: node.id.clone(),
            step: number,
            summary: text.to_owned(),
            message,
            help: help.to_owned(),
        };
        // A linked copy does not look at what is below it.
        let linked = matches!(step, Step::Copy(c) | Step::Add(c) if c.link);
        let rootfs_started = Instant::now();
        let target_root = if linked { None } else { self.rootfs(image)? };
        timings.add(Phase::Rootfs, rootfs_started);
        // Views read by the step live until its layer is written.
        let mut from_view: Option<Option<View>> = None;
        let target = Target {
            root: target_root.as_ref().map(View::path),
            mtime: self.mtime(),
        };
        let entries: Option<Vec<Entry>> = match step {
            Step::Copy(c) | Step::Add(c) => {
                let spec = CopySpec {
                    add: matches!(step, Step::Add(_)),
                    sources: &c.sources,
                    to: &c.to,
                    chown: c.chown.as_deref(),
                    chmod: c.chmod.as_deref(),
                    parents: c.parents,
                    exclude: &c.exclude,
                    checksum: c.checksum.as_deref(),
                    keep_git_dir: c.keep_git_dir,
                };
                let from_name = match c.from.as_deref() {
                    None => String::new(),
                    Some(from) => {
                        let source = match from.strip_prefix("stage:") {
                            Some(stage) => {
                                results
                                    .built(graph.find(stage).expect("a copy source is a node"))?
                                    .image
                            }
                            None => self.base_image(graph, node, from)?,
                        };
                        let started = Instant::now();
                        from_view = Some(self.rootfs(&source)?);
                        timings.add(Phase::Rootfs, started);
                        from.trim_start_matches("stage:").to_owned()
                    }
                };
                let empty = scratch.join("empty");
                let origin = match &from_view {
                    None => Origin::Context {
                        root: &self.options.context,
                        ignore: self.ignore,
                    },
                    Some(root) => {
                        let root = match root {
                            Some(root) => root.path(),
                            None => {
                                std::fs::create_dir_all(&empty)
                                    .map_err(|e| fail(e.to_string(), "check the store"))?;
                                empty.as_path()
                            }
                        };
                        Origin::Rootfs {
                            root,
                            name: &from_name,
                        }
                    }
                };
                let collect = Instant::now();
                let entries = copy::copy_entries(&spec, &origin, target, scratch);
                timings.add(Phase::Run, collect);
                Some(entries.map_err(|e| {
                    let help = match &e {
                        copy::CopyError::NotFound { .. } => "check the path and the context's .dockerignore",
                        copy::CopyError::NotADirectory(_) => "end `to` with `/` and copy into a directory, or give the directory source its own destination",
                        copy::CopyError::LinkTargetMissing { .. } => "copy the file the link names into the context, or make the link point inside it",
                        copy::CopyError::Fetch { .. } => "check the URL and the network; or put the file in the context",
                        copy::CopyError::Checksum { .. } => "the file changed upstream, or the checksum is wrong: compare with `sha256sum`",
                        copy::CopyError::Git { .. } => "check the URL, the ref and the network (`git ls-remote URL` shows the refs); or put the files in the context",
                        copy::CopyError::RemoteInCopy { .. } => "use `ADD` to fetch it",
                        _ => "fix the step",
                    };
                    fail(e.to_string(), help)
                })?)
            }
            Step::File(f) => Some(timings.time(Phase::Run, || {
                copy::file_entries(
                    &f.to,
                    f.name.as_deref(),
                    &f.content,
                    f.chown.as_deref(),
                    f.chmod.as_deref(),
                    target,
                )
                .map_err(|e| fail(e.to_string(), "fix the step"))
            })?),
            Step::Workdir { path } => timings
                .time(Phase::Run, || {
                    copy::mkdir_entries(path, state.user.as_deref(), target)
                })
                .map_err(|e| {
                    fail(
                        e.to_string(),
                        "create the user in an earlier step, or use a numeric id",
                    )
                })?,
            Step::Env { .. }
            | Step::User { .. }
            | Step::Shell { .. }
            | Step::Arg { .. }
            | Step::Label { .. }
            | Step::Expose { .. }
            | Step::Volume { .. }
            | Step::Stopsignal { .. } => None,
            Step::Run(_) => unreachable!("handled above"),
        };
        // The layer's snapshot is read by the node's next step, or by the
        // nodes built on this one.
        let snapshot = number < node.steps.len() || has_dependents(graph, node);
        match entries {
            Some(entries) => self.add_layer(image, &entries, text, snapshot, timings)?,
            None => image.config.history.push(HistoryEntry {
                created: self.created.clone(),
                created_by: format!("imgbuild: {text}"),
                empty_layer: true,
            }),
        }
        Ok(())
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

    /// Runs a `run` step and adds its changes as a layer.
    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        graph: &BuildGraph,
        node: &Node,
        image: &mut Image,
        results: &dyn Dependencies,
        state: &State,
        run: &Run<String>,
        text: &str,
        step: usize,
        report: &(dyn Fn(Event<'_>) + Sync),
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let fail = |message: String, help: String| BuildError::Step {
            node: node.id.clone(),
            step,
            summary: text.to_owned(),
            message,
            help,
        };
        let to_build_error = |e: StepError| match e {
            StepError::Failed { code, tail } => fail(
                format!("the command exited with code {code}"),
                if tail.is_empty() {
                    "it printed nothing".to_owned()
                } else {
                    format!("its last output:\n{}", tail.join("\n"))
                },
            ),
            StepError::Setup { message, help } => fail(message, help),
            StepError::Exec(e) => fail(
                e.to_string(),
                "`imgbuild doctor` checks the container runtime".to_owned(),
            ),
        };
        exec::step::check_platform(&node.platform, &self.options.host).map_err(to_build_error)?;
        let executor = self.executor()?;
        let prepare = Instant::now();
        let lowers = self.snapshots(image)?;
        let mut views = Vec::new();
        let mut sources = HashMap::new();
        for mount in &run.mounts {
            if let Mount::Cache {
                from: Some(from), ..
            }
            | Mount::Bind {
                from: Some(from), ..
            } = mount
                && !sources.contains_key(from)
            {
                let source = match from.strip_prefix("stage:") {
                    Some(stage) => {
                        results
                            .built(graph.find(stage).expect("a mount source is a node"))?
                            .image
                    }
                    None => self.base_image(graph, node, from)?,
                };
                let path = match self.rootfs(&source)? {
                    Some(view) => {
                        let path = view.path().to_owned();
                        views.push(view);
                        path
                    }
                    None => {
                        let empty = self.store.temp_path("empty");
                        std::fs::create_dir_all(&empty)
                            .map_err(|e| fail(e.to_string(), "check the store".into()))?;
                        empty
                    }
                };
                sources.insert(from.clone(), path);
            }
        }
        let process = Process {
            args: &state.args,
            env: &state.env,
            workdir: &state.workdir,
            user: state.user.as_deref(),
            shell: &state.shell,
            platform: &node.platform,
        };
        let mut output = |line: &str| {
            report(Event::Output {
                node: &node.id,
                step,
                line,
            });
        };
        let context = self.context_view(run)?;
        timings.add(Phase::Rootfs, prepare);
        let execute = Instant::now();
        let changes = exec::step::run_step(
            self.store,
            executor.as_ref(),
            &self.options.grants,
            context
                .as_ref()
                .map_or(self.options.context.as_path(), ContextView::path),
            &lowers,
            run,
            &process,
            &sources,
            &mut output,
        )
        .map_err(to_build_error);
        let whole = execute.elapsed();
        let changes = changes?;
        // The command's own time; the rest of `run_step` set up its rootfs.
        timings.add_duration(Phase::Run, changes.ran);
        timings.add_duration(Phase::Rootfs, whole.saturating_sub(changes.ran));
        timings.time(Phase::Rootfs, || {
            drop(views);
            drop(context);
        });
        let scan = Instant::now();
        let entries = {
            let _span = tracing::debug_span!("diff").entered();
            layer::entries_from_dir(&changes.upper)
        };
        timings.add(Phase::Diff, scan);
        tracing::debug!(
            entries = entries.as_ref().map_or(0, Vec::len),
            ms = scan.elapsed().as_secs_f64() * 1e3,
            "scanned the upper dir"
        );
        let result = entries.map_err(BuildError::from).and_then(|entries| {
            self.add_layer(image, &entries, text, false, timings)?;
            // The upper dir holds exactly the layer: it becomes its snapshot.
            let adopting = Instant::now();
            let diff_id = &image.layers.last().expect("a layer was just added").diff_id;
            snapshot::adopt_upper(
                self.store,
                &changes.upper,
                &entries,
                diff_id,
                self.options.source_date_epoch,
            );
            timings.add(Phase::Layer, adopting);
            Ok(())
        });
        let _ = std::fs::remove_dir_all(&changes.temp);
        result
    }

    /// For a step that bind-mounts the context: a view of it without what
    /// `.dockerignore` leaves out (None when it leaves out nothing).
    fn context_view(&self, run: &Run<String>) -> Result<Option<ContextView>, BuildError> {
        let binds_context = run
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Bind { from: None, .. }));
        if !binds_context || self.ignore.is_empty() {
            return Ok(None);
        }
        let environment = |e: &dyn std::fmt::Display| BuildError::Environment {
            message: format!("cannot hide what .dockerignore leaves out of the context: {e}"),
            help: "imgbuild needs root and overlayfs; `imgbuild doctor` checks".into(),
        };
        let whiteouts = self.store.temp_path("ignored");
        let hidden =
            crate::context::hidden::write_whiteouts(&self.options.context, self.ignore, &whiteouts);
        let view = match hidden {
            Ok(0) => Ok(None),
            Ok(_) => read_only_view(
                &[self.options.context.clone(), whiteouts.clone()],
                &self.store.temp_path("context"),
            )
            .map_err(|e| environment(&e)),
            Err(e) => Err(environment(&e)),
        };
        match view {
            Ok(Some(view)) => Ok(Some(ContextView { view, whiteouts })),
            other => {
                let _ = std::fs::remove_dir_all(&whiteouts);
                other.map(|_| None)
            }
        }
    }

    fn mkdir(
        &self,
        image: &mut Image,
        dir: &str,
        text: &str,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let root = self.rootfs(image)?;
        let target = Target {
            root: root.as_ref().map(View::path),
            mtime: self.mtime(),
        };
        // The stage's own workdir is made before any step, so for root.
        let entries =
            copy::mkdir_entries(dir, None, target).map_err(|e| BuildError::Environment {
                message: e.to_string(),
                help: "this is a bug in imgbuild".into(),
            })?;
        if let Some(entries) = entries {
            self.add_layer(image, &entries, text, true, timings)?;
        }
        Ok(())
    }

    /// Writes `entries` as a layer on `image`; with `snapshot`, also
    /// extracts it, as it is written, into its snapshot for the steps that
    /// read it next.
    fn add_layer(
        &self,
        image: &mut Image,
        entries: &[Entry],
        text: &str,
        snapshot: bool,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let options = WriteOptions {
            // Stored uncompressed: compressing is for images leaving the machine.
            compression: crate::layer::CompressionOptions {
                compression: crate::layer::Compression::None,
                level: None,
            },
            source_date_epoch: self.options.source_date_epoch,
        };
        let write = |extraction: Option<&mut Extraction<'_>>| -> Result<_, BuildError> {
            let started = Instant::now();
            // The layer writer hashes the tar stream, which is the blob.
            let mut writer = self.store.blob_writer_hashed_by_caller()?;
            let written = {
                let _span = tracing::debug_span!("layer", entries = entries.len()).entered();
                match extraction {
                    Some(extraction) => {
                        layer::write_layer(entries, &options, extraction.writer(&mut writer))?
                    }
                    None => layer::write_layer(entries, &options, &mut writer)?,
                }
            };
            let committing = Instant::now();
            let (digest, size) =
                writer.commit_hashed_by_caller(&Digest::parse(&written.digest)?)?;
            let spent = (committing - started, committing.elapsed());
            tracing::debug!(
                size,
                layer_ms = spent.0.as_secs_f64() * 1e3,
                commit_ms = spent.1.as_secs_f64() * 1e3,
                "wrote a layer"
            );
            Ok((written, digest, size, spent))
        };
        // The writer is gone (with its temp file) before free space is measured.
        let (written, digest, size) = std::thread::scope(|scope| {
            let mut extraction = snapshot
                .then(|| Extraction::start(scope, self.store))
                .flatten();
            let written = write(extraction.as_mut());
            if let Ok((.., spent)) = &written {
                timings.add_duration(Phase::Layer, spent.0);
                timings.add_duration(Phase::Commit, spent.1);
            }
            if let Some(extraction) = extraction {
                // Waiting for the rest of the extraction readies the next rootfs.
                let started = Instant::now();
                match &written {
                    Ok((written, ..)) => match Digest::parse(&written.diff_id) {
                        Ok(diff_id) => extraction.finish(&diff_id),
                        Err(_) => extraction.abandon(),
                    },
                    Err(_) => extraction.abandon(),
                }
                timings.add(Phase::Rootfs, started);
            }
            written
        })
        .map_err(|e| self.out_of_space(e, entries, text))
        .map(|(written, digest, size, _)| (written, digest, size))?;
        debug_assert_eq!(digest.to_string(), written.digest);
        let diff_id = Digest::parse(&written.diff_id)?;
        image.layers.push(LayerRef {
            media_type: options.compression.compression.media_type().to_owned(),
            digest,
            size,
            diff_id: diff_id.clone(),
            uncompressed_size: None,
        });
        image.config.diff_ids.push(diff_id);
        image.config.history.push(HistoryEntry {
            created: self.created.clone(),
            created_by: format!("imgbuild: {text}"),
            empty_layer: false,
        });
        Ok(())
    }
}

impl NodeRunner<'_> {
    /// `error`, or when it comes from a full filesystem, an error that says
    /// so: which store, how much the layer of step `text` (of `entries`)
    /// needs, how much is free, and what to do. The blob being written is
    /// removed with its writer, so the store stays consistent.
    fn out_of_space(&self, error: BuildError, entries: &[Entry], text: &str) -> BuildError {
        if !is_out_of_space(&error) {
            return error;
        }
        let needed: u64 = entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::File { size, .. } => size.div_ceil(512) * 512 + 512,
                _ => 512,
            })
            .sum();
        let root = self.store.root();
        let free = rustix::fs::statvfs(root).map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize));
        BuildError::Environment {
            message: format!(
                "the store `{}` ran out of space writing the layer of `{text}`: the layer needs about {} and the store's filesystem has {} free",
                root.display(),
                crate::util::size::human_size(needed),
                crate::util::size::human_size(free),
            ),
            help: "free space on that filesystem (`imgbuild prune` removes what no image uses) or give `--store` a larger one, then build again: the store is left consistent and the steps already built stay cached".to_owned(),
        }
    }
}

/// Whether other nodes of `graph` build on `node` or read from it.
fn has_dependents(graph: &BuildGraph, node: &Node) -> bool {
    let Some(id) = graph.find(&node.id) else {
        return true;
    };
    graph
        .nodes()
        .any(|(other, _)| graph.dependencies(other).iter().any(|(d, _)| *d == id))
}

/// Whether `error` comes from a full filesystem or quota (`ENOSPC`, `EDQUOT`).
fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let full = [
        rustix::io::Errno::NOSPC.raw_os_error(),
        rustix::io::Errno::DQUOT.raw_os_error(),
    ];
    let mut at = Some(error);
    while let Some(e) = at {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(|code| full.contains(&code))
        {
            return true;
        }
        at = e.source();
    }
    false
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

/// The context with what `.dockerignore` leaves out hidden; unmounted and
/// removed when dropped.
struct ContextView {
    view: View,
    whiteouts: PathBuf,
}

impl ContextView {
    fn path(&self) -> &Path {
        self.view.path()
    }
}

impl Drop for ContextView {
    fn drop(&mut self) {
        // Unmount first: the whiteouts are a layer of the mount.
        drop(std::mem::replace(
            &mut self.view,
            View::Single(PathBuf::new()),
        ));
        let _ = std::fs::remove_dir_all(&self.whiteouts);
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::ir::{ArgScope, Platform, StageConfig};

    fn node(base_onbuild: Option<Vec<String>>) -> Node {
        Node {
            id: "a@linux/amd64".into(),
            stage: "a".into(),
            platform: Platform::parse("linux/amd64").unwrap(),
            target: None,
            base: Base::Image("docker.io/library/base:1".into()),
            args: IndexMap::new(),
            arg_scope: ArgScope::Declared,
            start: StageConfig::default(),
            base_onbuild,
            onbuild_steps: 0,
            config: StageConfig::default(),
            steps: Vec::new(),
        }
    }

    fn image(onbuild: &[&str]) -> Image {
        let mut config =
            ImageConfig::scratch(Platform::parse("linux/amd64").unwrap(), DEFAULT_CREATED);
        config.runtime.onbuild = onbuild.iter().map(|t| (*t).to_owned()).collect();
        Image {
            config,
            layers: Vec::new(),
        }
    }

    #[test]
    fn base_triggers_must_be_the_planned_ones() {
        let reference = "docker.io/library/base:1";
        check_onbuild(&node(None), reference, &image(&[])).unwrap();
        check_onbuild(
            &node(Some(vec!["RUN make".into()])),
            reference,
            &image(&["RUN make"]),
        )
        .unwrap();
        let unknown = check_onbuild(&node(None), reference, &image(&["RUN make"])).unwrap_err();
        assert!(
            unknown.to_string().contains(
                "has ONBUILD triggers (RUN make), which imgbuild could not read while planning"
            ),
            "{unknown}"
        );
        let changed =
            check_onbuild(&node(Some(Vec::new())), reference, &image(&["RUN make"])).unwrap_err();
        assert!(
            changed.to_string().contains("changed while building"),
            "{changed}"
        );
    }
}
