//! `run` steps: the container on the node's snapshots, and its changes
//! as a layer whose snapshot is the container's own upper directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{NodeBuild, NodeRunner, StepAt, step_error};
use crate::exec;
use crate::exec::rootfs::{View, read_only_view};
use crate::exec::step::{Process, StepError};
use crate::image::Image;
use crate::ir::{Mount, Run};
use crate::layer;
use crate::plan::state::State;
use crate::scheduler::snapshot;
use crate::scheduler::{BuildError, Event, Phase, StepTimings};

impl NodeRunner<'_> {
    /// Runs a `run` step and adds its changes as a layer.
    pub(super) fn run_step(
        &self,
        build: &NodeBuild<'_>,
        image: &mut Image,
        state: &State,
        run: &Run<String>,
        at: StepAt<'_>,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let NodeBuild { node, report, .. } = *build;
        let StepAt { text, number: step } = at;
        let fail = |message: String, help: String| step_error(node, at, message, help);
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
        let (views, sources) = self.mount_sources(build, run, at)?;
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
        let inputs = exec::step::StepInputs {
            store: self.store,
            executor: executor.as_ref(),
            grants: &self.options.grants,
            context: context
                .as_ref()
                .map_or(self.options.context.as_path(), ContextView::path),
            lowers: &lowers,
            run,
            process: &process,
            sources: &sources,
        };
        let changes = exec::step::run(&inputs, &mut output).map_err(to_build_error);
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

    /// The roots of the stages and images that `run`'s mounts read
    /// (`from`), by source, and the views that hold them open.
    fn mount_sources(
        &self,
        build: &NodeBuild<'_>,
        run: &Run<String>,
        at: StepAt<'_>,
    ) -> Result<(Vec<View>, HashMap<String, PathBuf>), BuildError> {
        let NodeBuild {
            graph,
            node,
            deps: results,
            ..
        } = *build;
        let fail = |message: String, help: String| step_error(node, at, message, help);
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
        Ok((views, sources))
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
