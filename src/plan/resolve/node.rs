//! Resolving one stage for one target platform into a node: its base and
//! platform, the base's `ONBUILD` triggers, the stage-level settings, its
//! steps in order, then the image settings of the stage itself.

use indexmap::IndexMap;

use super::scope::Scope;
use super::{BuiltNode, Resolver, StageArgs, Value, join_path};
use crate::diagnostic::Diagnostic;
use crate::ir::{
    ArgScope, Base, EdgeKind, Node, NodeId, Platform, Stage, StageConfig, StagePlatform, Step,
    Template,
};

/// What a stage starts from, as resolving its `from` found it.
struct Start {
    base: Base,
    /// The parent stage's config, without its triggers; default for an image.
    config: StageConfig<String>,
    /// The triggers the stage runs first: its parent stage's, later its base
    /// image's (`None` when the image's config cannot be read now).
    base_onbuild: Option<Vec<String>>,
    /// The arguments the parent stage ends with ([`ArgScope::Declared`]).
    inherited: StageArgs,
    /// The parent stage's platform, and whether the parent depends on the target.
    parent_platform: Option<(Platform, bool)>,
}

/// A stage while its steps resolve: the variables in scope, the config and
/// working directory the steps change, and the nodes they need.
pub(super) struct Building<'p> {
    /// The variables in scope.
    pub(super) scope: Scope<'p>,
    /// The image config so far.
    pub(super) config: StageConfig<String>,
    /// The working directory so far.
    pub(super) workdir: String,
    /// The nodes the stage needs, each with why.
    pub(super) dependencies: Vec<(NodeId, EdgeKind)>,
    /// The global arguments, which `arg` steps may take their values from.
    pub(super) globals: IndexMap<String, Value>,
}

/// The environment of `scope` as plain text.
fn env_text(scope: &Scope<'_>) -> IndexMap<String, String> {
    scope
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.text.clone()))
        .collect()
}

impl<'p> Resolver<'p> {
    /// Resolves one stage for `target`: the node, what it depends on, and
    /// whether it depends on the target platform.
    pub(super) fn build_node(
        &mut self,
        stage: &'p Stage,
        target: &Platform,
    ) -> Result<BuiltNode, Diagnostic> {
        let project = self.project;
        let declared = project.arg_scope == ArgScope::Declared;
        // Dockerfile `FROM` and `--platform` see the global arguments only;
        // proxies are not among them unless declared.
        let globals = self.global_args(target, !declared)?;
        let mut scope = self.scope(globals.clone());
        let mut dependencies = Vec::new();

        let Start {
            base,
            mut config,
            mut base_onbuild,
            inherited,
            parent_platform,
        } = self.start(stage, target, &mut scope, &mut dependencies)?;
        let (platform, platform_from_target) = self.platform(
            stage,
            target,
            &globals,
            &mut scope,
            parent_platform.as_ref(),
        )?;
        scope.reads_target |= platform_from_target;
        if let Base::Image(image) = &base {
            let base_config = self.base_config(image, &platform);
            // The steps see the base's environment, as in `BuildKit`.
            for (name, value) in base_config.iter().flat_map(|c| &c.env) {
                let value = Value {
                    text: value.clone(),
                    reads_target: platform_from_target,
                };
                scope.env.insert(name.clone(), value);
            }
            base_onbuild = base_config.map(|c| c.onbuild);
        }
        if declared {
            // Inside the stage: only what it declares or inherits.
            scope.args = inherited.args;
            scope.shadowing = inherited.shadowing;
        }

        // The base's ONBUILD triggers run first, as if written after `from`.
        let trigger_steps = self.run_triggers(stage, base_onbuild.iter().flatten(), &mut config)?;
        let workdir = stage_settings(&mut scope, stage, &mut config)?;
        let start = start_config(&scope, &config);
        let mut start_args = scope.args.clone();
        if declared {
            // Proxies reach `run` steps without being declared.
            for (name, value) in self.proxy_args() {
                start_args.entry(name).or_insert(value);
            }
        }
        let onbuild_steps = trigger_steps.len();
        let mut building = Building {
            scope,
            config,
            workdir,
            dependencies,
            globals,
        };
        let mut steps = Vec::with_capacity(onbuild_steps + stage.steps.len());
        for step in trigger_steps.iter().chain(&stage.steps) {
            steps.push(self.step(&mut building, step, target)?);
        }
        let Building {
            mut scope,
            mut config,
            dependencies,
            ..
        } = building;
        self.image_settings(&mut scope, stage, &mut config)?;

        let depends = scope.reads_target;
        // A node that does not depend on the target is shared by every
        // target, so it must not carry the values of any one of them.
        let node_target = (depends && platform != *target).then(|| target.clone());
        let args = start_args
            .into_iter()
            .filter(|(_, v)| depends || !v.reads_target)
            .map(|(k, v)| (k, v.text))
            .collect();
        let node = Node {
            id: Node::make_id(&stage.name.value, &platform, node_target.as_ref()),
            stage: stage.name.value.clone(),
            platform,
            target: node_target,
            base,
            args,
            arg_scope: project.arg_scope,
            start,
            base_onbuild,
            onbuild_steps,
            config,
            steps,
        };
        Ok(BuiltNode {
            node,
            dependencies,
            depends,
            args: StageArgs {
                args: scope.args,
                shadowing: scope.shadowing,
            },
        })
    }

    /// Resolves the stage's `from`: a stage (resolved first, for `target`),
    /// an image or `scratch`.
    fn start(
        &mut self,
        stage: &'p Stage,
        target: &Platform,
        scope: &mut Scope<'p>,
        dependencies: &mut Vec<(NodeId, EdgeKind)>,
    ) -> Result<Start, Diagnostic> {
        let project = self.project;
        let declared = project.arg_scope == ArgScope::Declared;
        let from = scope.expand(&stage.from)?;
        let mut start = Start {
            base: Base::Scratch,
            config: StageConfig::default(),
            base_onbuild: Some(Vec::new()),
            inherited: StageArgs::default(),
            parent_platform: None,
        };
        start.base = match Base::parse(&from, |n| project.stages.contains_key(n)) {
            Base::Stage(name) => {
                if declared {
                    self.check_base_is_earlier(stage, &name)?;
                }
                let id = self.stage_node(&name, target, &stage.from)?;
                dependencies.push((id, EdgeKind::From));
                let parent = self.graph.node(id);
                let parent_depends = self.depends_on_target[&id];
                scope.reads_target |= parent_depends;
                start.config = parent.config.clone();
                // A stage runs its parent's triggers; they are not inherited.
                start.base_onbuild = Some(std::mem::take(&mut start.config.onbuild));
                scope.env = parent
                    .config
                    .env
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Value {
                                text: v.clone(),
                                reads_target: parent_depends,
                            },
                        )
                    })
                    .collect();
                if declared {
                    start.inherited = self.stage_args[&id].clone();
                    for value in start.inherited.args.values_mut() {
                        value.reads_target |= parent_depends;
                    }
                }
                start.parent_platform = Some((parent.platform.clone(), parent_depends));
                Base::Stage(parent.id.clone())
            }
            Base::Image(image) => {
                self.check_reference(&image, &stage.from)?;
                Base::Image(image)
            }
            Base::Scratch => Base::Scratch,
        };
        Ok(start)
    }

    /// The platform the stage runs on, and whether it is the target's: its
    /// own `platform`, else its parent stage's, else the target.
    fn platform(
        &self,
        stage: &Stage,
        target: &Platform,
        globals: &IndexMap<String, Value>,
        scope: &mut Scope<'p>,
        parent_platform: Option<&(Platform, bool)>,
    ) -> Result<(Platform, bool), Diagnostic> {
        let project = self.project;
        let (platform, platform_from_target) = match &stage.platform {
            Some(p) => match &p.value {
                StagePlatform::Build => (self.request.host.clone(), false),
                StagePlatform::Fixed(text) => {
                    let template = Template::new(text.clone(), p.span.clone());
                    let text = if project.arg_scope == ArgScope::Declared {
                        let mut global_scope = self.scope(globals.clone());
                        let text = global_scope.expand(&template)?;
                        scope.reads_target |= global_scope.reads_target;
                        text
                    } else {
                        scope.expand(&template)?
                    };
                    let platform = Platform::parse(&text).map_err(|e| {
                        project
                            .source
                            .error(p.span.clone(), format!("invalid platform `{text}`: {e}"))
                            .with_help(e.help())
                    })?;
                    (platform, false)
                }
            },
            None => parent_platform
                .cloned()
                .unwrap_or_else(|| (target.clone(), true)),
        };
        if let (Some(p), Some((parent, _))) = (&stage.platform, parent_platform)
            && *parent != platform
        {
            return Err(project
                .source
                .error(p.span.clone(), format!("stage `{}` runs on {platform} but starts from a stage that runs on {parent}", stage.name.value))
                .with_help("a stage continues its parent's filesystem, so both need one platform: give the parent the same `platform`, or remove this one"));
        }
        Ok((platform, platform_from_target))
    }

    /// Lowers the base's `ONBUILD` triggers: their steps, which run first,
    /// and the image settings they make, applied to `config`.
    fn run_triggers<'t>(
        &self,
        stage: &Stage,
        triggers: impl Iterator<Item = &'t String>,
        config: &mut StageConfig<String>,
    ) -> Result<Vec<Step<Template>>, Diagnostic> {
        let mut trigger_steps = Vec::new();
        for trigger in triggers {
            let lowered = self.trigger(stage, trigger)?;
            trigger_steps.extend(lowered.steps);
            let c = lowered.config;
            if c.entrypoint.is_some() {
                config.entrypoint = c.entrypoint;
                config.cmd = None;
            }
            if c.cmd.is_some() {
                config.cmd = c.cmd;
            }
            if c.healthcheck.is_some() {
                config.healthcheck = c.healthcheck;
            }
        }
        Ok(trigger_steps)
    }

    /// The image settings of the stage itself, expanded with everything
    /// the steps defined.
    fn image_settings(
        &self,
        scope: &mut Scope<'p>,
        stage: &Stage,
        config: &mut StageConfig<String>,
    ) -> Result<(), Diagnostic> {
        config.env = env_text(scope);
        if let Some(entrypoint) = &stage.config.entrypoint {
            config.entrypoint = Some(entrypoint.clone());
            config.cmd = None;
        }
        if let Some(cmd) = &stage.config.cmd {
            config.cmd = Some(cmd.clone());
        }
        for (name, value) in &stage.config.labels {
            config.labels.insert(name.clone(), scope.expand(value)?);
        }
        for port in &stage.config.expose {
            for port in self.exposed_ports(&scope.expand(port)?, port)? {
                if !config.expose.contains(&port) {
                    config.expose.push(port);
                }
            }
        }
        for volume in &stage.config.volumes {
            let volume = scope.expand(volume)?;
            if !config.volumes.contains(&volume) {
                config.volumes.push(volume);
            }
        }
        if let Some(check) = &stage.config.healthcheck {
            config.healthcheck = Some(check.clone());
        }
        if let Some(signal) = &stage.config.stopsignal {
            config.stopsignal = Some(scope.expand(signal)?);
        }
        if let Some(author) = &stage.config.author {
            config.author = Some(scope.expand(author)?);
        }
        config.onbuild.clone_from(&stage.config.onbuild);
        Ok(())
    }
}

/// Applies the stage-level settings, which hold from the first step on
/// (environment, working directory, user, shell); returns the working
/// directory the steps start in.
fn stage_settings(
    scope: &mut Scope<'_>,
    stage: &Stage,
    config: &mut StageConfig<String>,
) -> Result<String, Diagnostic> {
    let mut workdir = config.workdir.clone().unwrap_or_else(|| "/".to_owned());
    for (name, value) in &stage.config.env {
        let text = scope.expand(value)?;
        let reads_target = scope.reads_target;
        scope.env.insert(name.clone(), Value { text, reads_target });
        scope.shadowing.shift_remove(name);
    }
    if let Some(dir) = &stage.config.workdir {
        workdir = join_path(&workdir, &scope.expand(dir)?);
        config.workdir = Some(workdir.clone());
    }
    if let Some(user) = &stage.config.user {
        config.user = Some(scope.expand(user)?);
    }
    if let Some(s) = &stage.config.shell {
        config.shell = Some(s.clone());
    }
    Ok(workdir)
}

/// The settings the first step runs with.
fn start_config(scope: &Scope<'_>, config: &StageConfig<String>) -> StageConfig<String> {
    let mut start_env = env_text(scope);
    // Dockerfile rules: an inherited argument set after an environment
    // variable of the same name is what `run` sees.
    for name in &scope.shadowing {
        start_env.insert(name.clone(), scope.args[name].text.clone());
    }
    StageConfig {
        workdir: config.workdir.clone(),
        user: config.user.clone(),
        env: start_env,
        shell: config.shell.clone(),
        ..StageConfig::default()
    }
}
