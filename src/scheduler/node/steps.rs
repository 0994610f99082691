//! The steps other than `run`: `copy`, `add`, `file`, `workdir`, and the
//! config steps that add no layer.

use std::time::Instant;

use super::write::has_dependents;
use super::{NodeBuild, NodeRunner, StepAt, step_error};
use crate::copy::{self, CopySpec, Origin, Target};
use crate::exec::rootfs::View;
use crate::image::{HistoryEntry, Image};
use crate::ir::{Copy, Step};
use crate::layer::Entry;
use crate::plan::state::State;
use crate::scheduler::{BuildError, Phase, StepTimings};

impl NodeRunner<'_> {
    /// Runs one step that the cache does not have.
    pub(super) fn run_step_uncached(
        &self,
        build: &NodeBuild<'_>,
        image: &mut Image,
        state: &State,
        step: &Step<String>,
        at: StepAt<'_>,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let NodeBuild { graph, node, .. } = *build;
        let StepAt { text, number } = at;
        if let Step::Run(run) = step {
            return self.run_step(build, image, state, run, at, timings);
        }
        let fail = |message: String, help: &str| step_error(node, at, message, help.to_owned());
        // A linked copy does not look at what is below it.
        let linked = matches!(step, Step::Copy(c) | Step::Add(c) if c.link);
        let rootfs_started = Instant::now();
        let target_root = if linked { None } else { self.rootfs(image)? };
        timings.add(Phase::Rootfs, rootfs_started);
        // The view a copy reads lives until its layer is written.
        let mut _from_view: Option<View> = None;
        let target = Target {
            root: target_root.as_ref().map(View::path),
            mtime: self.mtime(),
        };
        let entries: Option<Vec<Entry>> = match step {
            Step::Copy(c) | Step::Add(c) => {
                let add = matches!(step, Step::Add(_));
                let (entries, view) = self.copy_step(build, c, add, target, at, timings)?;
                _from_view = view;
                Some(entries)
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

    /// The entries of a `copy` or `add` step, and the view of the stage or
    /// image it reads from (if it has one), which must live until the
    /// step's layer is written.
    pub(super) fn copy_step(
        &self,
        build: &NodeBuild<'_>,
        c: &Copy<String>,
        add: bool,
        target: Target<'_>,
        at: StepAt<'_>,
        timings: &mut StepTimings,
    ) -> Result<(Vec<Entry>, Option<View>), BuildError> {
        let NodeBuild {
            graph,
            node,
            deps: results,
            scratch,
            ..
        } = *build;
        let fail = |message: String, help: &str| step_error(node, at, message, help.to_owned());
        let mut from_view: Option<Option<View>> = None;
        let spec = CopySpec {
            add,
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
        let entries = entries.map_err(|e| {
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
        })?;
        Ok((entries, from_view.flatten()))
    }
}
