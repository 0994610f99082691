//! Resolving the steps of a stage: each step with its variables expanded
//! and its paths made absolute, the config it changes updated, and the
//! stages its `copy --from` and mounts read added as dependencies.

use indexmap::IndexMap;

use super::node::Building;
use super::scope::Scope;
use super::{Resolver, Value, dest_path, join_path};
use crate::diagnostic::Diagnostic;
use crate::ir::template::literal;
use crate::ir::{
    ArgScope, Copy, EdgeKind, File, Mount, MountOption, NodeId, Platform, Run, Step, Template,
};

impl<'p> Resolver<'p> {
    /// Resolves one step of the stage `b` is building, for `target`.
    pub(super) fn step(
        &mut self,
        b: &mut Building<'p>,
        step: &Step<Template>,
        target: &Platform,
    ) -> Result<Step<String>, Diagnostic> {
        Ok(match step {
            Step::Run(run) => Step::Run(self.run(b, run, target)?),
            Step::Copy(copy) => Step::Copy(self.copy(
                &mut b.scope,
                copy,
                &b.workdir,
                target,
                &mut b.dependencies,
            )?),
            Step::Add(copy) => {
                Step::Add(self.copy(&mut b.scope, copy, &b.workdir, target, &mut b.dependencies)?)
            }
            Step::File(file) => Step::File(file_step(&mut b.scope, file, &b.workdir)?),
            Step::Env { vars } => Step::Env {
                vars: env_step(&mut b.scope, vars)?,
            },
            Step::Workdir { path } => {
                b.workdir = join_path(&b.workdir, &b.scope.expand(path)?);
                b.config.workdir = Some(b.workdir.clone());
                Step::Workdir {
                    path: b.workdir.clone(),
                }
            }
            Step::User { user } => {
                let user = b.scope.expand(user)?;
                b.config.user = Some(user.clone());
                Step::User { user }
            }
            Step::Shell { argv } => {
                b.config.shell = Some(argv.clone());
                Step::Shell { argv: argv.clone() }
            }
            Step::Arg { name, default } => self.arg_step(b, name, default.as_ref())?,
            Step::Label { labels } => {
                let mut resolved = IndexMap::new();
                for (name, value) in labels {
                    let text = b.scope.expand(value)?;
                    b.config.labels.insert(name.clone(), text.clone());
                    resolved.insert(name.clone(), text);
                }
                Step::Label { labels: resolved }
            }
            Step::Expose { ports } => Step::Expose {
                ports: self.expose_step(b, ports)?,
            },
            Step::Volume { paths } => Step::Volume {
                paths: self.volume_step(b, paths)?,
            },
            Step::Stopsignal { signal } => {
                let signal = b.scope.expand(signal)?;
                b.config.stopsignal = Some(signal.clone());
                Step::Stopsignal { signal }
            }
        })
    }

    /// A `run` step: its mounts resolved, each placed at the working
    /// directory when it has no target.
    fn run(
        &mut self,
        b: &mut Building<'p>,
        run: &Run<Template>,
        target: &Platform,
    ) -> Result<Run<String>, Diagnostic> {
        let mut mounts = Vec::with_capacity(run.mounts.len());
        for run_mount in &run.mounts {
            let mount = self.mount(&mut b.scope, run_mount, target, &mut b.dependencies)?;
            let mount = super::super::mount_target::at_workdir(mount, &b.workdir).map_err(
                |target| {
                    self.project
                        .source
                        .error(
                            super::super::mount_target::target_span(run_mount),
                            format!("invalid mount target {target:?}"),
                        )
                        .with_help(
                            "give the mount a `target` (without one it mounts at the working directory, which here is `/`)",
                        )
                },
            )?;
            mounts.push(mount);
        }
        Ok(Run {
            command: run.command.clone(),
            interpreter: run.interpreter.clone(),
            mounts,
            network: run.network,
        })
    }

    /// An `arg` step: the value it takes (see [`Resolver::stage_arg`]) is
    /// in scope from here on.
    fn arg_step(
        &self,
        b: &mut Building<'p>,
        name: &str,
        default: Option<&Template>,
    ) -> Result<Step<String>, Diagnostic> {
        let value = self.stage_arg(&mut b.scope, name, default, &b.globals)?;
        let text = value.as_ref().map(|v| v.text.clone());
        if let Some(value) = value {
            b.scope.reads_target |= value.reads_target;
            b.scope.args.insert(name.to_owned(), value);
            if self.project.arg_scope == ArgScope::Declared {
                b.scope.shadowing.insert(name.to_owned());
            }
        }
        Ok(Step::Arg {
            name: name.to_owned(),
            default: text,
        })
    }

    /// An `expose` step's ports, each `PORT/proto`, also added to the config.
    fn expose_step(
        &self,
        b: &mut Building<'p>,
        ports: &[Template],
    ) -> Result<Vec<String>, Diagnostic> {
        let mut resolved = Vec::new();
        for port in ports {
            for spec in b.scope.expand(port)?.split_whitespace() {
                for port in self.exposed_ports(spec, port)? {
                    if !b.config.expose.contains(&port) {
                        b.config.expose.push(port.clone());
                    }
                    resolved.push(port);
                }
            }
        }
        Ok(resolved)
    }

    /// A `volume` step's paths, also added to the config; none may be empty.
    fn volume_step(
        &self,
        b: &mut Building<'p>,
        paths: &[Template],
    ) -> Result<Vec<String>, Diagnostic> {
        let mut resolved = Vec::new();
        for path in paths {
            let text = b.scope.expand(path)?;
            if text.is_empty() {
                return Err(self
                    .project
                    .source
                    .error(path.span.clone(), "a volume path is empty")
                    .with_help("give the volume's path inside the container, e.g. `/data`"));
            }
            if !b.config.volumes.contains(&text) {
                b.config.volumes.push(text.clone());
            }
            resolved.push(text);
        }
        Ok(resolved)
    }

    fn copy(
        &mut self,
        scope: &mut Scope<'p>,
        copy: &Copy<Template>,
        workdir: &str,
        target: &Platform,
        dependencies: &mut Vec<(NodeId, EdgeKind)>,
    ) -> Result<Copy<String>, Diagnostic> {
        let from = match &copy.from {
            Some(from) => {
                Some(self.source_ref(scope, from, target, EdgeKind::Copy, dependencies)?)
            }
            None => None,
        };
        Ok(Copy {
            sources: scope.expand_all(&copy.sources)?,
            to: dest_path(workdir, &scope.expand(&copy.to)?),
            from,
            chown: scope.expand_opt(copy.chown.as_ref())?,
            chmod: scope.expand_opt(copy.chmod.as_ref())?,
            link: copy.link,
            parents: copy.parents,
            exclude: scope.expand_all(&copy.exclude)?,
            checksum: scope.expand_opt(copy.checksum.as_ref())?,
            keep_git_dir: copy.keep_git_dir,
        })
    }

    fn mount(
        &mut self,
        scope: &mut Scope<'p>,
        mount: &Mount<Template>,
        target: &Platform,
        dependencies: &mut Vec<(NodeId, EdgeKind)>,
    ) -> Result<Mount<String>, Diagnostic> {
        if let Mount::Deferred { options } = mount {
            return self.deferred_mount(scope, options, target, dependencies);
        }
        let mut from = |scope: &mut Scope<'p>, from: Option<&Template>| match from {
            Some(from) => self
                .source_ref(scope, from, target, EdgeKind::Mount, dependencies)
                .map(Some),
            None => Ok(None),
        };
        Ok(match mount {
            Mount::Cache {
                target: to,
                id,
                sharing,
                from: source_from,
                source,
                mode,
                uid,
                gid,
                readonly,
            } => Mount::Cache {
                target: scope.expand(to)?,
                id: scope.expand_opt(id.as_ref())?,
                sharing: *sharing,
                from: from(scope, source_from.as_ref())?,
                source: scope.expand_opt(source.as_ref())?,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                readonly: *readonly,
            },
            Mount::Secret {
                id,
                target: to,
                env,
                required,
                mode,
                uid,
                gid,
            } => {
                let id = scope.expand_opt(id.as_ref())?;
                let to = scope.expand_opt(to.as_ref())?;
                let id = id.or_else(|| {
                    to.as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_owned)
                });
                Mount::Secret {
                    target: to.or_else(|| {
                        env.is_none()
                            .then(|| format!("/run/secrets/{}", id.as_deref().unwrap_or_default()))
                    }),
                    id,
                    env: scope.expand_opt(env.as_ref())?,
                    required: *required,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                }
            }
            Mount::Bind {
                target: to,
                source,
                from: source_from,
                rw,
            } => Mount::Bind {
                target: scope.expand(to)?,
                source: scope.expand_opt(source.as_ref())?,
                from: from(scope, source_from.as_ref())?,
                rw: *rw,
            },
            Mount::Tmpfs { target: to, size } => Mount::Tmpfs {
                target: scope.expand(to)?,
                size: *size,
            },
            Mount::Deferred { .. } => unreachable!("read above"),
            Mount::Ssh {
                id,
                target: to,
                required,
                mode,
                uid,
                gid,
            } => Mount::Ssh {
                id: Some(
                    scope
                        .expand_opt(id.as_ref())?
                        .unwrap_or_else(|| "default".to_owned()),
                ),
                target: scope.expand_opt(to.as_ref())?,
                required: *required,
                mode: *mode,
                uid: *uid,
                gid: *gid,
            },
        })
    }

    /// A Dockerfile `--mount` whose type or typed options use variables:
    /// its options expanded, then read as `BuildKit` reads a `--mount`.
    fn deferred_mount(
        &mut self,
        scope: &mut Scope<'p>,
        options: &[MountOption<Template>],
        target: &Platform,
        dependencies: &mut Vec<(NodeId, EdgeKind)>,
    ) -> Result<Mount<String>, Diagnostic> {
        let span = options
            .iter()
            .find_map(|o| o.value.as_ref())
            .map_or(0..0, |t| t.span.clone());
        let mut fields = Vec::with_capacity(options.len());
        for option in options {
            let value = option.value.as_ref().map(|t| scope.expand(t)).transpose()?;
            fields.push((option.key.clone(), value));
        }
        let mount = self.syntax(&span)?.mount(&fields).map_err(|e| {
            self.project
                .source
                .error(span.clone(), format!("invalid `--mount`: {}", e.message))
                .with_help(e.help)
        })?;
        let mount = mount.map(&mut |text| Template::new(literal(&text), span.clone()));
        self.mount(scope, &mount, target, dependencies)
    }
}

/// A `file` step: its destination absolute, its content expanded if it asks.
fn file_step(
    scope: &mut Scope<'_>,
    file: &File<Template>,
    workdir: &str,
) -> Result<File<String>, Diagnostic> {
    Ok(File {
        to: dest_path(workdir, &scope.expand(&file.to)?),
        name: file.name.as_ref().map(|n| n.value.clone()),
        content: if file.expand {
            scope.expand(&file.content)?
        } else {
            file.content.value.clone()
        },
        expand: false,
        chown: scope.expand_opt(file.chown.as_ref())?,
        chmod: scope.expand_opt(file.chmod.as_ref())?,
    })
}

/// An `env` step: each variable is in scope for the next, and hides an
/// argument of the same name.
fn env_step(
    scope: &mut Scope<'_>,
    vars: &IndexMap<String, Template>,
) -> Result<IndexMap<String, String>, Diagnostic> {
    let mut resolved = IndexMap::new();
    for (name, value) in vars {
        let text = scope.expand(value)?;
        let reads_target = scope.reads_target;
        scope.env.insert(
            name.clone(),
            Value {
                text: text.clone(),
                reads_target,
            },
        );
        scope.shadowing.shift_remove(name);
        resolved.insert(name.clone(), text);
    }
    Ok(resolved)
}
