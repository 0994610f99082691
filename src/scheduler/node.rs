//! Runs one node: loads its base, runs its steps, and applies its config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{BuildError, BuildOptions, Event, rfc3339};
use crate::context::PatternMatcher;
use crate::copy::{self, CopySpec, Origin, Target};
use crate::image::config::{command_argv, healthcheck_json};
use crate::image::source::{self, ImageSource};
use crate::image::{DEFAULT_CREATED, HistoryEntry, Image, ImageConfig, LayerRef};
use crate::ir::{Base, BuildGraph, Node, NodeId, Platform, Step};
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
    imported: HashMap<(String, Platform), Image>,
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
            imported: HashMap::new(),
        }
    }

    fn mtime(&self) -> i64 {
        self.options.source_date_epoch.unwrap_or(0)
    }

    /// Imports (once per build) the image `reference` for `platform`.
    fn base_image(&mut self, node: &Node, reference: &str) -> Result<Image, BuildError> {
        let key = (reference.to_owned(), node.platform.clone());
        if let Some(image) = self.imported.get(&key) {
            return Ok(image.clone());
        }
        let source = ImageSource::parse(reference, &self.options.manifest_dir);
        let image = source::import(self.store, &source, &node.platform).map_err(|e| match e {
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
        self.imported.insert(key, image.clone());
        Ok(image)
    }

    /// The flattened filesystem of `image`, extracted once into the store; None if it has no layers.
    fn rootfs(&self, image: &Image) -> Result<Option<PathBuf>, BuildError> {
        let Some(chain) = chain_id(&image.layers) else {
            return Ok(None);
        };
        if let Some(path) = self.store.snapshot(&chain) {
            return Ok(Some(path));
        }
        let store = self.store;
        let path = store.create_snapshot(&chain, |dir: &Path| -> Result<(), BuildError> {
            for layer in &image.layers {
                let blob = store.open_blob(&layer.digest)?;
                layer::extract_layer(
                    blob,
                    dir,
                    &layer::ExtractOptions {
                        preserve_ownership: true,
                    },
                )?;
            }
            Ok(())
        })?;
        Ok(Some(path))
    }

    /// Runs node `id` of `graph`, whose dependencies are in `results`.
    pub fn run(
        &mut self,
        graph: &BuildGraph,
        id: NodeId,
        results: &HashMap<NodeId, Image>,
        report: &mut dyn FnMut(Event<'_>),
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
        &mut self,
        graph: &BuildGraph,
        node: &Node,
        image: &mut Image,
        results: &HashMap<NodeId, Image>,
        scratch: &Path,
        report: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        if let Some(dir) = &node.config.workdir
            && image.config.runtime.working_dir.as_deref() != Some(dir)
            && !node.steps.iter().any(|s| matches!(s, Step::Workdir { .. }))
        {
            // The stage's own workdir exists before its first step, as WORKDIR makes it.
            self.mkdir(image, dir, &format!("workdir {dir}"))?;
        }
        for (i, step) in node.steps.iter().enumerate() {
            let text = summary(step);
            let fail = |message: String, help: &str| BuildError::Step {
                node: node.id.clone(),
                step: i + 1,
                summary: text.clone(),
                message,
                help: help.to_owned(),
            };
            let target_root = self.rootfs(image)?;
            let target = Target {
                root: target_root.as_deref(),
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
                    let (from_root, from_name) = match c.from.as_deref() {
                        None => (None, String::new()),
                        Some(from) => {
                            let source = match from.strip_prefix("stage:") {
                                Some(stage) => results
                                    [&graph.find(stage).expect("a copy source is a node")]
                                    .clone(),
                                None => self.base_image(node, from)?,
                            };
                            (
                                Some(self.rootfs(&source)?),
                                from.trim_start_matches("stage:").to_owned(),
                            )
                        }
                    };
                    let empty = scratch.join("empty");
                    let origin = match &from_root {
                        None => Origin::Context {
                            root: &self.options.context,
                            ignore: self.ignore,
                        },
                        Some(root) => {
                            let root = match root {
                                Some(root) => root.as_path(),
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
                Step::Run(_) => unreachable!("checked before the build"),
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

    fn mkdir(&self, image: &mut Image, dir: &str, text: &str) -> Result<(), BuildError> {
        let root = self.rootfs(image)?;
        let target = Target {
            root: root.as_deref(),
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

/// The OCI chain id of a stack of layers; None for no layers.
fn chain_id(layers: &[LayerRef]) -> Option<Digest> {
    let mut chain: Option<Digest> = None;
    for layer in layers {
        chain = Some(match chain {
            None => layer.diff_id.clone(),
            Some(parent) => Digest::of(format!("{parent} {}", layer.diff_id).as_bytes()),
        });
    }
    chain
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
