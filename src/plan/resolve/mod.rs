//! Resolves a [`Project`] for one [`Request`] into a [`BuildGraph`]:
//! picks the images and platforms, expands every variable, and turns stage
//! references into stage × platform nodes.
//!
//! A stage that runs on a platform other than the target (`platform =
//! "build"` or a fixed platform) is resolved once for all targets unless it
//! reads a `TARGET*` argument, directly or through a stage it uses; then it
//! gets one node per target.
//!
//! * `scope`: the variables in scope and how templates expand with them.
//! * `node`: one stage × platform: base, platform, triggers, settings.
//! * `step`: each step, its mounts and its `copy --from`.
//! * `base`: what planning reads of a base image (triggers, environment).

mod base;
mod node;
mod scope;
mod step;

use base::BaseConfig;
use scope::Scope;

use std::collections::HashMap;

use indexmap::{IndexMap, IndexSet};

use super::{BUILDKIT_ARGS, Error, Request, TARGETSTAGE, Unconsumed};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::ir::args::{PREDEFINED_ARGS, PROXY_ARGS};
use crate::ir::{
    ArgScope, Base, BuildGraph, EdgeKind, Node, NodeId, Platform, Project, ResolvedImage, Stage,
    Step, Template, reference,
};

/// A variable's value and whether it was derived from the target platform.
#[derive(Debug, Clone)]
struct Value {
    text: String,
    reads_target: bool,
}

/// Resolves `project` for `request`.
pub fn resolve(project: &Project, request: &Request) -> Result<BuildGraph, Error> {
    if project.arg_scope == ArgScope::Everywhere {
        check_predefined_overrides(request)?;
    }
    let images = select_images(project, &request.targets)?;
    let mut resolver = Resolver {
        project,
        request,
        target_stage: target_stage(project, request),
        graph: BuildGraph::default(),
        memo: HashMap::new(),
        depends_on_target: HashMap::new(),
        stage_args: HashMap::new(),
        base_configs: HashMap::new(),
        visiting: Vec::new(),
    };
    resolver.graph.stage_names = project.stages.keys().cloned().collect();
    let mut tags_seen: HashMap<String, &str> = HashMap::new();
    for name in images {
        let image = resolver
            .image(name)
            .map_err(|e| Error::Invalid(Diagnostics::from(e)))?;
        for (tag, template) in image.tags.iter().zip(&project.images[name].tags) {
            if let Some(other) = tags_seen.insert(tag.clone(), name) {
                let error = project
                    .source
                    .error(
                        template.span.clone(),
                        format!("tag `{tag}` is also a tag of image `{other}`"),
                    )
                    .with_help("a tag names one image; give each image its own tags");
                return Err(Error::Invalid(error.into()));
            }
        }
        resolver.graph.images.push(image);
    }
    Ok(resolver.graph)
}

/// `TARGETSTAGE`, as `BuildKit` sets it: the target asked for, else the
/// name of the last stage, else `default` (the last stage has no name).
/// With several targets there is no one stage being built: `default`.
fn target_stage(project: &Project, request: &Request) -> String {
    match request.targets.as_slice() {
        [target] => target.clone(),
        [] => project
            .stages
            .keys()
            .last()
            .filter(|name| !name.bytes().all(|b| b.is_ascii_digit()))
            .cloned()
            .unwrap_or_else(|| "default".to_owned()),
        _ => "default".to_owned(),
    }
}

/// Refuses `--arg` for the arguments imgbuild sets itself (manifests).
fn check_predefined_overrides(request: &Request) -> Result<(), Error> {
    match request
        .args
        .keys()
        .find(|name| PREDEFINED_ARGS.contains(&name.as_str()))
    {
        Some(name) => Err(Error::Usage {
            message: format!("`--arg {name}` cannot be set"),
            help: "imgbuild sets the TARGET* and BUILD* arguments from the platforms; use `--platform`".into(),
        }),
        None => Ok(()),
    }
}

/// The `--arg` names that nothing declares (not the project, not an `arg`
/// step of any stage, not a step from a base's `ONBUILD` triggers), sorted,
/// each with the declared name it is closest to. Proxy arguments and the
/// arguments `BuildKit` reads itself ([`BUILDKIT_ARGS`]) are consumed
/// without a declaration.
pub fn unconsumed_args(
    project: &Project,
    request: &Request,
    graph: &BuildGraph,
) -> Vec<Unconsumed> {
    let mut declared: Vec<&str> = project.args.keys().map(String::as_str).collect();
    let steps = project
        .stages
        .values()
        .flat_map(|stage| &stage.steps)
        .map(|step| match step {
            Step::Arg { name, .. } => Some(name.as_str()),
            _ => None,
        });
    let resolved = graph
        .nodes()
        .flat_map(|(_, node)| &node.steps)
        .map(|step| match step {
            Step::Arg { name, .. } => Some(name.as_str()),
            _ => None,
        });
    declared.extend(steps.chain(resolved).flatten());
    if project.arg_scope == ArgScope::Declared {
        // BuildKit's global scope has these without a declaration.
        declared.extend(PREDEFINED_ARGS);
        declared.push(TARGETSTAGE);
    }
    let mut unconsumed: Vec<Unconsumed> = request
        .args
        .keys()
        .filter(|name| {
            !declared.contains(&name.as_str())
                && !PROXY_ARGS.contains(&name.as_str())
                && !is_buildkit_arg(name)
        })
        .map(|name| Unconsumed {
            name: name.clone(),
            closest: crate::diagnostic::closest(name, declared.iter().copied()).map(str::to_owned),
        })
        .collect();
    unconsumed.sort_by(|a, b| a.name.cmp(&b.name));
    unconsumed
}

/// Whether `BuildKit` reads the build argument `name` itself.
fn is_buildkit_arg(name: &str) -> bool {
    BUILDKIT_ARGS.contains(&name) || name.starts_with("BUILDKIT_ATTEST_")
}

/// The image names a request builds, groups expanded, in order, without repeats.
fn select_images<'p>(project: &'p Project, targets: &[String]) -> Result<Vec<&'p str>, Error> {
    if project.images.is_empty() {
        return Err(Error::Usage {
            message: format!("`{}` defines no images", project.source.name),
            help: "add an `[images.NAME]` table with `stage = \"...\"` naming the stage to ship"
                .into(),
        });
    }
    let mut pending: Vec<String> = if targets.is_empty() {
        if project.groups.contains_key("default") {
            vec!["default".to_owned()]
        } else {
            project.images.keys().cloned().collect()
        }
    } else {
        targets.to_vec()
    };
    pending.reverse();
    let mut images = Vec::new();
    let mut expanded_groups = Vec::new();
    while let Some(target) = pending.pop() {
        if let Some((name, _)) = project.images.get_key_value(&target) {
            if !images.contains(&name.as_str()) {
                images.push(name.as_str());
            }
        } else if let Some(group) = project.groups.get(&target) {
            if !expanded_groups.contains(&target) {
                pending.extend(group.members.iter().rev().map(|m| m.value.clone()));
                expanded_groups.push(target);
            }
        } else {
            let names: Vec<&str> = project
                .images
                .keys()
                .chain(project.groups.keys())
                .map(String::as_str)
                .collect();
            return Err(Error::Usage {
                message: format!("unknown target `{target}`"),
                help: suggest("image or group", &target, &names),
            });
        }
    }
    Ok(images)
}

/// A resolved node and what resolving it found.
struct BuiltNode {
    node: Node,
    /// The nodes it needs, each with why.
    dependencies: Vec<(NodeId, EdgeKind)>,
    /// Whether it depends on the target platform.
    depends: bool,
    /// The arguments it ends with, for stages that start from it.
    args: StageArgs,
}

/// The arguments a stage ends with; with [`ArgScope::Declared`] a stage
/// that starts from it inherits them.
#[derive(Debug, Clone, Default)]
struct StageArgs {
    args: IndexMap<String, Value>,
    /// The names whose argument was set after the environment variable of
    /// the same name, so the argument is what expansion and `run` see.
    shadowing: IndexSet<String>,
}

struct Resolver<'p> {
    project: &'p Project,
    request: &'p Request,
    graph: BuildGraph,
    memo: HashMap<(String, Platform), NodeId>,
    depends_on_target: HashMap<NodeId, bool>,
    stage_args: HashMap<NodeId, StageArgs>,
    base_configs: HashMap<(String, Platform), Option<BaseConfig>>,
    /// The value of `TARGETSTAGE` (Dockerfiles only).
    target_stage: String,
    visiting: Vec<String>,
}

impl<'p> Resolver<'p> {
    /// The global arguments for `target`: the predefined ones, the proxy
    /// arguments given with `--arg` when `with_proxies`, then the project's.
    fn global_args(
        &self,
        target: &Platform,
        with_proxies: bool,
    ) -> Result<IndexMap<String, Value>, Diagnostic> {
        let host = &self.request.host;
        let mut args = IndexMap::new();
        for (prefix, platform, reads_target) in [("TARGET", target, true), ("BUILD", host, false)] {
            let parts = [
                ("PLATFORM", platform.to_string()),
                ("OS", platform.os.clone()),
                ("ARCH", platform.architecture.clone()),
                ("VARIANT", platform.variant.clone().unwrap_or_default()),
            ];
            for (suffix, text) in parts {
                args.insert(format!("{prefix}{suffix}"), Value { text, reads_target });
            }
        }
        if self.project.arg_scope == ArgScope::Declared {
            // BuildKit: `--build-arg` overrides the predefined values.
            args.insert(
                TARGETSTAGE.to_owned(),
                Value {
                    text: self.target_stage.clone(),
                    reads_target: false,
                },
            );
            for (name, value) in &mut args {
                if let Some(text) = self.request.args.get(name) {
                    *value = Value {
                        text: text.clone(),
                        reads_target: false,
                    };
                }
            }
        }
        if with_proxies {
            args.extend(self.proxy_args());
        }
        for (name, default) in &self.project.args {
            let value = match (self.request.args.get(name), default) {
                (Some(text), _) => Value {
                    text: text.clone(),
                    reads_target: false,
                },
                (None, Some(default)) => {
                    let mut scope = self.scope(args.clone());
                    let text = scope.expand(default)?;
                    Value {
                        text,
                        reads_target: scope.reads_target,
                    }
                }
                (None, None) => continue,
            };
            args.insert(name.clone(), value);
        }
        Ok(args)
    }

    fn scope(&self, args: IndexMap<String, Value>) -> Scope<'p> {
        Scope {
            source: &self.project.source,
            args,
            env: IndexMap::new(),
            shadowing: IndexSet::new(),
            reads_target: false,
        }
    }

    /// Resolves image `name` on each of its platforms.
    fn image(&mut self, name: &str) -> Result<ResolvedImage, Diagnostic> {
        let image = &self.project.images[name];
        let platforms: Vec<Platform> = if !self.request.platforms.is_empty() {
            self.request.platforms.clone()
        } else if !image.platforms.is_empty() {
            image.platforms.iter().map(|p| p.value.clone()).collect()
        } else if !self.project.platforms.is_empty() {
            self.project
                .platforms
                .iter()
                .map(|p| p.value.clone())
                .collect()
        } else {
            vec![self.request.host.clone()]
        };
        let mut unique: Vec<Platform> = Vec::new();
        for p in platforms {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        let mut resolved = ResolvedImage {
            name: name.to_owned(),
            stage: String::new(),
            tags: Vec::new(),
            nodes: Vec::new(),
            labels: IndexMap::new(),
            annotations: IndexMap::new(),
        };
        for (i, platform) in unique.iter().enumerate() {
            let everywhere = self.project.arg_scope == ArgScope::Everywhere;
            let mut scope = self.scope(self.global_args(platform, everywhere)?);
            let stage = scope.expand(&image.stage)?;
            let tags = scope.expand_all(&image.tags)?;
            for tag in &tags {
                if let Err(why) = reference::validate(tag) {
                    let at = &image.tags[tags.iter().position(|t| t == tag).unwrap_or(0)];
                    return Err(self
                        .project
                        .source
                        .error(at.span.clone(), format!("invalid tag `{tag}`: {why}"))
                        .with_help("write `[registry/]repository[:tag]`, e.g. `registry.example.com/app:1.0`"));
                }
            }
            let mut table =
                |t: &IndexMap<String, Template>| -> Result<IndexMap<String, String>, Diagnostic> {
                    t.iter()
                        .map(|(k, v)| Ok((k.clone(), scope.expand(v)?)))
                        .collect()
                };
            let labels = table(&image.labels)?;
            let annotations = table(&image.annotations)?;
            if scope.reads_target && unique.len() > 1 {
                return Err(self
                    .project
                    .source
                    .error(image.name.span.clone(), format!("image `{name}` has tags, labels or annotations that depend on the target platform"))
                    .with_help("one image names all its platforms; move `TARGET*` variables into the stage, or build one image per platform"));
            }
            let node = self.stage_node(&stage, platform, &image.stage)?;
            resolved.nodes.push((platform.clone(), node));
            if i == 0 {
                resolved.stage = stage;
                resolved.tags = tags;
                resolved.labels = labels;
                resolved.annotations = annotations;
            }
        }
        Ok(resolved)
    }

    /// The node of stage `name` resolved for `target`; `at` is the reference, for errors.
    fn stage_node(
        &mut self,
        name: &str,
        target: &Platform,
        at: &Template,
    ) -> Result<NodeId, Diagnostic> {
        let key = (name.to_owned(), target.clone());
        if let Some(&id) = self.memo.get(&key) {
            return Ok(id);
        }
        let project = self.project;
        let Some(stage) = project.stages.get(name) else {
            let names: Vec<&str> = project.stages.keys().map(String::as_str).collect();
            return Err(project
                .source
                .error(at.span.clone(), format!("unknown stage `{name}`"))
                .with_help(suggest("stage", name, &names)));
        };
        if let Some(start) = self.visiting.iter().position(|s| s == name) {
            let mut cycle = self.visiting[start..].to_vec();
            cycle.push(name.to_owned());
            return Err(project
                .source
                .error(at.span.clone(), format!("stages form a cycle: {}", cycle.join(" -> ")))
                .with_help("a stage cannot depend on itself, directly or through other stages; remove one of these references"));
        }
        self.visiting.push(name.to_owned());
        let result = self.build_node(stage, target);
        self.visiting.pop();
        let built = result?;
        let id = self.graph.add_node(built.node);
        for (dependency, kind) in built.dependencies {
            self.graph.add_dependency(dependency, id, kind);
        }
        self.depends_on_target.insert(id, built.depends);
        self.stage_args.insert(id, built.args);
        self.memo.insert(key, id);
        Ok(id)
    }

    /// Dockerfile rules: a stage starts only from a stage written before it.
    /// `BuildKit` reads any other stage's name as an image to pull (and
    /// fails); imgbuild refuses it, saying which stage it is.
    fn check_base_is_earlier(&self, stage: &Stage, base: &str) -> Result<(), Diagnostic> {
        let stages = &self.project.stages;
        let (Some(at), Some(of)) = (
            stages.get_index_of(base),
            stages.get_index_of(&stage.name.value),
        ) else {
            return Ok(());
        };
        if at < of {
            return Ok(());
        }
        let what = if at == of {
            "itself".to_owned()
        } else {
            format!("the stage `{base}`, which is defined after it")
        };
        Err(self
            .project
            .source
            .error(
                stage.from.span.clone(),
                format!("stage `{}` starts from {what}", stage.name.value),
            )
            .with_help(format!(
                "a stage can start only from an earlier one; BuildKit reads `{base}` here as the image `docker.io/library/{base}:latest`. Move the stage `{base}` up, or write the image's full name"
            )))
    }

    /// Dockerfile rules (dockerfile 1.7): `COPY --from` and `--mount from`
    /// name a stage written before the current one, in `BuildKit`'s words.
    fn check_source_is_earlier(
        &self,
        source: &str,
        kind: EdgeKind,
        at: &Template,
    ) -> Result<(), Diagnostic> {
        let stages = &self.project.stages;
        let Some(current) = self.visiting.last() else {
            return Ok(());
        };
        let (Some(from), Some(of)) = (stages.get_index_of(source), stages.get_index_of(current))
        else {
            return Ok(());
        };
        // The stage itself is a cycle, reported as one.
        if from <= of {
            return Ok(());
        }
        let message = if kind == EdgeKind::Mount {
            format!(
                "cannot mount from stage {source:?}, stage needs to be defined before current command"
            )
        } else {
            format!(
                "cannot copy from stage {source:?}, it needs to be defined before current stage {current:?}"
            )
        };
        Err(self
            .project
            .source
            .error(at.span.clone(), message)
            .with_help(format!(
                "move the stage `{source}` above the stage `{current}`"
            )))
    }

    /// Resolves a `from` naming a stage or an image; records the edge.
    fn source_ref(
        &mut self,
        scope: &mut Scope<'p>,
        template: &Template,
        target: &Platform,
        kind: EdgeKind,
        dependencies: &mut Vec<(NodeId, EdgeKind)>,
    ) -> Result<String, Diagnostic> {
        let text = scope.expand(template)?;
        let project = self.project;
        match Base::parse(&text, |n| project.stages.contains_key(n)) {
            Base::Stage(name) => {
                if project.arg_scope == ArgScope::Declared {
                    self.check_source_is_earlier(&name, kind, template)?;
                }
                let id = self.stage_node(&name, target, template)?;
                dependencies.push((id, kind));
                scope.reads_target |= self.depends_on_target[&id];
                Ok(format!("stage:{}", self.graph.node(id).id))
            }
            Base::Image(image) => {
                self.check_reference(&image, template)?;
                Ok(image)
            }
            Base::Scratch => Err(project
                .source
                .error(
                    template.span.clone(),
                    "cannot read files from `scratch`: it is empty",
                )
                .with_help("name a stage or an image")),
        }
    }

    fn check_reference(&self, reference: &str, at: &Template) -> Result<(), Diagnostic> {
        if reference::is_local(reference) {
            return Ok(());
        }
        if reference.trim().is_empty() && at.value.contains('$') {
            return Err(self
                .project
                .source
                .error(
                    at.span.clone(),
                    format!("the base image `{}` expands to nothing", at.value),
                )
                .with_help("set the argument it uses: `--arg NAME=VALUE` (`--build-arg` for a Dockerfile), or give it a default"));
        }
        reference::validate(reference).map_err(|why| {
            self.project
                .source
                .error(at.span.clone(), format!("invalid image reference `{reference}`: {why}"))
                .with_help("write `[registry/]repository[:tag][@sha256:digest]`, e.g. `docker.io/library/alpine:3.20`")
        })
    }

    /// `spec` (`[ip:][host:]port[-port][/proto]`) as the `PORT/proto` entries
    /// Docker stores: one per port of a range, protocol lowercased, `tcp` by
    /// default. `at` is the template it came from, for errors.
    fn exposed_ports(&self, spec: &str, at: &Template) -> Result<Vec<String>, Diagnostic> {
        expose_ports(spec).map_err(|why| {
            self.project
                .source
                .error(at.span.clone(), format!("invalid port `{spec}`: {why}"))
                .with_help(
                    "write a port or range with an optional protocol: `80`, `8000-8010`, `53/udp`",
                )
        })
    }

    /// The proxy arguments given with `--arg`, each under both its names
    /// (`HTTP_PROXY` and `http_proxy`), as `BuildKit` passes them to `RUN`;
    /// of two spellings given, the lowercase one wins (`BuildKit` reads the
    /// names in sorted order).
    fn proxy_args(&self) -> IndexMap<String, Value> {
        let mut given: Vec<(&String, &String)> = self
            .request
            .args
            .iter()
            .filter(|(name, _)| PROXY_ARGS.contains(&name.as_str()))
            .collect();
        given.sort();
        let mut args = IndexMap::new();
        for (name, text) in given {
            for spelling in [name.to_ascii_uppercase(), name.to_ascii_lowercase()] {
                let value = Value {
                    text: text.clone(),
                    reads_target: false,
                };
                args.insert(spelling, value);
            }
        }
        args
    }

    /// The value of an `arg` step, unset when `None`.
    ///
    /// With [`ArgScope::Everywhere`]: `--arg`, else the global or predefined
    /// value, else its default. With [`ArgScope::Declared`], as `BuildKit`
    /// does: `--arg`, else its default, else the global or predefined value,
    /// else what the stage inherited.
    fn stage_arg(
        &self,
        scope: &mut Scope<'p>,
        name: &str,
        default: Option<&Template>,
        globals: &IndexMap<String, Value>,
    ) -> Result<Option<Value>, Diagnostic> {
        if let Some(text) = self.request.args.get(name) {
            return Ok(Some(Value {
                text: text.clone(),
                reads_target: false,
            }));
        }
        let global = || globals.get(name).cloned();
        let is_global = PREDEFINED_ARGS.contains(&name) || self.project.args.contains_key(name);
        match self.project.arg_scope {
            ArgScope::Everywhere if is_global => return Ok(global()),
            ArgScope::Declared if default.is_none() => {
                return Ok(global().or_else(|| scope.args.get(name).cloned()));
            }
            _ => {}
        }
        match default {
            Some(default) => {
                let before = scope.reads_target;
                scope.reads_target = false;
                let text = scope.expand(default)?;
                let reads_target = scope.reads_target;
                scope.reads_target |= before;
                Ok(Some(Value { text, reads_target }))
            }
            None => Ok(None),
        }
    }
}

/// `spec` (`[ip:][host:]port[-port][/proto]`) as the `PORT/proto` entries
/// Docker stores, as `BuildKit` reads `EXPOSE`: the container port, one
/// entry per port of a range, the protocol lowercased and `tcp` by default.
fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let (ports, protocol) = container.split_once('/').unwrap_or((container, ""));
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "" => "tcp".to_owned(),
        p @ ("tcp" | "udp" | "sctp") => p.to_owned(),
        other => return Err(format!("unknown protocol `{other}`")),
    };
    let number = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("`{text}` is not a port number from 0 to 65535"))
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let port = number(ports)?;
            (port, port)
        }
    };
    if last < first {
        return Err(format!("the range `{ports}` ends before it starts"));
    }
    Ok((first..=last).map(|p| format!("{p}/{protocol}")).collect())
}

/// `path` made absolute against `workdir` and cleaned of `.` and `..`.
pub(super) fn join_path(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{workdir}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A destination made absolute; it stays a directory (`/` at the end) if it was one.
fn dest_path(workdir: &str, to: &str) -> String {
    let joined = join_path(workdir, to);
    let is_dir = to.ends_with('/') || to == "." || to.ends_with("/.");
    if is_dir && joined != "/" {
        format!("{joined}/")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests;
