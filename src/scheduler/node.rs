//! Runs one node: loads its base, runs its steps, and applies its config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{BuildError, BuildOptions, Event, rfc3339};
use crate::context::PatternMatcher;
use crate::copy::{self, CopySpec, Origin, Target};
use crate::exec::rootfs::{View, read_only_view};
use crate::exec::step::{Process, StepError};
use crate::exec::{self, Executor, OciRuntime, Stream};
use crate::image::base::BaseResolver;
use crate::image::config::{command_argv, healthcheck_json};
use crate::image::source::ImageSource;
use crate::image::{DEFAULT_CREATED, HistoryEntry, Image, ImageConfig, LayerRef};
use crate::ir::{Base, BuildGraph, Mount, Node, NodeId, Run, Step};
use crate::layer::{self, Entry, WriteOptions};
use crate::plan::summary;
use crate::store::{Digest, Store};

/// The shell for string-form commands when none is set.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Runs nodes against one store.
pub struct NodeRunner<'a> {
    store: &'a Store,
    ignore: &'a PatternMatcher,
    options: &'a BuildOptions,
    created: String,
    bases: BaseResolver,
    executor: Mutex<Option<Arc<dyn Executor>>>,
}

impl<'a> NodeRunner<'a> {
    /// A runner for one build.
    pub fn new(store: &'a Store, ignore: &'a PatternMatcher, options: &'a BuildOptions) -> Self {
        Self {
            store,
            ignore,
            options,
            created: options
                .source_date_epoch
                .map_or_else(|| DEFAULT_CREATED.to_owned(), rfc3339),
            bases: BaseResolver::new(store, options.pull, options.registry.clone()),
            executor: Mutex::new(None),
        }
    }

    fn mtime(&self) -> i64 {
        self.options.source_date_epoch.unwrap_or(0)
    }

    /// Resolves (once per build) the image `reference` for the node's platform.
    fn base_image(&self, node: &Node, reference: &str) -> Result<Image, BuildError> {
        let source = ImageSource::parse(reference, &self.options.manifest_dir);
        let base = self
            .bases
            .resolve(&source, &node.platform)
            .map_err(|e| match e {
                crate::image::ImageError::Source { message, help } => BuildError::Base {
                    node: node.id.clone(),
                    message,
                    help,
                },
                other => BuildError::Base {
                    node: node.id.clone(),
                    message: format!("cannot load base image `{reference}`: {other}"),
                    help: "check the image source".into(),
                },
            })?;
        Ok(base.image)
    }

    /// Each layer of `image` extracted once into the store, bottom first,
    /// with whiteouts as overlayfs stores them.
    fn snapshots(&self, image: &Image) -> Result<Vec<PathBuf>, BuildError> {
        let store = self.store;
        image
            .layers
            .iter()
            .map(|layer| {
                if let Some(path) = store.snapshot(&layer.diff_id) {
                    return Ok(path);
                }
                store.create_snapshot(&layer.diff_id, |dir: &Path| -> Result<(), BuildError> {
                    let blob = store.open_blob(&layer.digest)?;
                    let options = layer::ExtractOptions {
                        preserve_ownership: true,
                        overlay_whiteouts: true,
                    };
                    layer::extract_layer(blob, dir, &options)?;
                    Ok(())
                })
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
        results: &HashMap<NodeId, Image>,
        report: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<Image, BuildError> {
        let node = graph.node(id);
        report(Event::NodeStarted { node: &node.id });
        let mut image = match &node.base {
            Base::Scratch => Image {
                config: ImageConfig::scratch(node.platform.clone(), &self.created),
                layers: Vec::new(),
            },
            Base::Stage(parent) => {
                results[&graph.find(parent).expect("a stage base is a node")].clone()
            }
            Base::Image(reference) => {
                let mut base = self.base_image(node, reference)?;
                base.config.created.clone_from(&self.created);
                base
            }
        };
        let scratch = self.store.temp_path("build");
        let result = self.run_steps(graph, node, &mut image, results, &scratch, report);
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
        apply_config(node, &mut image);
        Ok(image)
    }

    fn run_steps(
        &self,
        graph: &BuildGraph,
        node: &Node,
        image: &mut Image,
        results: &HashMap<NodeId, Image>,
        scratch: &Path,
        report: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<(), BuildError> {
        if let Some(dir) = &node.start.workdir
            && image.config.runtime.working_dir.as_deref() != Some(dir)
        {
            // The stage's own workdir exists before its first step, as WORKDIR makes it.
            self.mkdir(image, dir, &format!("workdir {dir}"))?;
        }
        let mut state = State::new(node, image);
        for (i, step) in node.steps.iter().enumerate() {
            let text = summary(step);
            state.apply(step);
            if let Step::Run(run) = step {
                self.run_step(
                    graph,
                    node,
                    image,
                    results,
                    &state,
                    run,
                    &text,
                    i + 1,
                    report,
                )?;
                report(Event::StepDone {
                    node: &node.id,
                    step: i + 1,
                    summary: &text,
                });
                continue;
            }
            let fail = |message: String, help: &str| BuildError::Step {
                node: node.id.clone(),
                step: i + 1,
                summary: text.clone(),
                message,
                help: help.to_owned(),
            };
            let target_root = self.rootfs(image)?;
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
                    };
                    let from_name = match c.from.as_deref() {
                        None => String::new(),
                        Some(from) => {
                            let source = match from.strip_prefix("stage:") {
                                Some(stage) => results
                                    [&graph.find(stage).expect("a copy source is a node")]
                                    .clone(),
                                None => self.base_image(node, from)?,
                            };
                            from_view = Some(self.rootfs(&source)?);
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
                    Some(copy::copy_entries(&spec, &origin, target, scratch).map_err(|e| {
                        let help = match &e {
                            copy::CopyError::NotFound { .. } => "check the path and the context's .dockerignore",
                            copy::CopyError::DestinationNotDirectory(_) => "end `to` with `/`",
                            copy::CopyError::Fetch { .. } => "check the URL and the network; or put the file in the context",
                            copy::CopyError::Checksum { .. } => "the file changed upstream, or the checksum is wrong: compare with `sha256sum`",
                            _ => "fix the step",
                        };
                        fail(e.to_string(), help)
                    })?)
                }
                Step::File(f) => Some(
                    copy::file_entries(
                        &f.to,
                        &f.content,
                        f.chown.as_deref(),
                        f.chmod.as_deref(),
                        target,
                    )
                    .map_err(|e| fail(e.to_string(), "fix the step"))?,
                ),
                Step::Workdir { path } => copy::mkdir_entries(path, target),
                Step::Env { .. } | Step::User { .. } | Step::Shell { .. } | Step::Arg { .. } => {
                    None
                }
                Step::Run(_) => unreachable!("handled above"),
            };
            match entries {
                Some(entries) => self.add_layer(image, &entries, &text)?,
                None => image.config.history.push(HistoryEntry {
                    created: self.created.clone(),
                    created_by: format!("imgbuild: {text}"),
                    empty_layer: true,
                }),
            }
            report(Event::StepDone {
                node: &node.id,
                step: i + 1,
                summary: &text,
            });
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
        let runtime = OciRuntime::detect(self.options.runtime.as_deref(), &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
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
        results: &HashMap<NodeId, Image>,
        state: &State,
        run: &Run<String>,
        text: &str,
        step: usize,
        report: &(dyn Fn(Event<'_>) + Sync),
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
                        results[&graph.find(stage).expect("a mount source is a node")].clone()
                    }
                    None => self.base_image(node, from)?,
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
            args: &node.args,
            env: &state.env,
            workdir: &state.workdir,
            user: state.user.as_deref(),
            shell: &state.shell,
            platform: &node.platform,
        };
        let mut output = |_: Stream, line: &str| {
            report(Event::Output {
                node: &node.id,
                line,
            });
        };
        let changes = exec::step::run_step(
            self.store,
            executor.as_ref(),
            &self.options.grants,
            &self.options.context,
            &lowers,
            run,
            &process,
            &sources,
            &mut output,
        )
        .map_err(to_build_error)?;
        drop(views);
        let result = layer::entries_from_dir(&changes.upper)
            .map_err(BuildError::from)
            .and_then(|entries| self.add_layer(image, &entries, text));
        let _ = std::fs::remove_dir_all(&changes.temp);
        result
    }

    fn mkdir(&self, image: &mut Image, dir: &str, text: &str) -> Result<(), BuildError> {
        let root = self.rootfs(image)?;
        let target = Target {
            root: root.as_ref().map(View::path),
            mtime: self.mtime(),
        };
        if let Some(entries) = copy::mkdir_entries(dir, target) {
            self.add_layer(image, &entries, text)?;
        }
        Ok(())
    }

    /// Writes `entries` as a layer on `image`.
    fn add_layer(
        &self,
        image: &mut Image,
        entries: &[Entry],
        text: &str,
    ) -> Result<(), BuildError> {
        let options = WriteOptions {
            compression: self.options.compression,
            source_date_epoch: self.options.source_date_epoch,
        };
        let mut writer = self.store.blob_writer()?;
        let written = layer::write_layer(entries, &options, &mut writer)?;
        let (digest, size) = writer.commit()?;
        debug_assert_eq!(digest.to_string(), written.digest);
        let diff_id = Digest::parse(&written.diff_id)?;
        image.layers.push(LayerRef {
            media_type: options.compression.compression.media_type().to_owned(),
            digest,
            size,
            diff_id: diff_id.clone(),
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

/// Environment, workdir, user and shell as a step sees them.
struct State {
    env: Vec<(String, String)>,
    workdir: String,
    user: Option<String>,
    shell: Vec<String>,
}

impl State {
    /// The state before the first step of `node` on `image`.
    fn new(node: &Node, image: &Image) -> Self {
        let base = &image.config.runtime;
        let mut state = Self {
            env: base.env.clone(),
            workdir: node
                .start
                .workdir
                .clone()
                .or_else(|| base.working_dir.clone())
                .unwrap_or_else(|| "/".into()),
            user: node.start.user.clone().or_else(|| base.user.clone()),
            shell: node
                .start
                .shell
                .clone()
                .or_else(|| base.shell.clone())
                .unwrap_or_else(|| DEFAULT_SHELL.map(str::to_owned).to_vec()),
        };
        for (name, value) in &node.start.env {
            state.set_env(name, value);
        }
        state
    }

    fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.env.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Takes in the effect of a config step.
    fn apply(&mut self, step: &Step<String>) {
        match step {
            Step::Env { vars } => {
                for (name, value) in vars {
                    self.set_env(name, value);
                }
            }
            Step::Workdir { path } => path.clone_into(&mut self.workdir),
            Step::User { user } => self.user = Some(user.clone()),
            Step::Shell { argv } => argv.clone_into(&mut self.shell),
            _ => {}
        }
    }
}

/// Applies the node's resolved config on top of what its base had.
fn apply_config(node: &Node, image: &mut Image) {
    let c = &node.config;
    let r = &mut image.config.runtime;
    let shell: Vec<String> = c
        .shell
        .clone()
        .or_else(|| r.shell.clone())
        .unwrap_or_else(|| DEFAULT_SHELL.map(str::to_owned).to_vec());
    for (name, value) in &c.env {
        r.set_env(name, value);
    }
    if let Some(dir) = &c.workdir {
        r.working_dir = Some(dir.clone());
    }
    if let Some(user) = &c.user {
        r.user = Some(user.clone());
    }
    if let Some(entrypoint) = &c.entrypoint {
        let argv = command_argv(entrypoint, &shell);
        if r.entrypoint.as_ref() != Some(&argv) {
            r.entrypoint = Some(argv);
            r.cmd = None;
        }
    }
    if let Some(cmd) = &c.cmd {
        r.cmd = Some(command_argv(cmd, &shell));
    }
    r.labels
        .extend(c.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    r.exposed_ports.extend(c.expose.iter().cloned());
    r.volumes.extend(c.volumes.iter().cloned());
    if let Some(signal) = &c.stopsignal {
        r.stop_signal = Some(signal.clone());
    }
    if let Some(check) = &c.healthcheck {
        r.healthcheck = Some(healthcheck_json(check));
    }
    if let Some(s) = &c.shell {
        r.shell = Some(s.clone());
    }
}
