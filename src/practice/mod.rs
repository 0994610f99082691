//! Best-practice rules: advice about how a build is written, over the IR,
//! so a manifest and an imported Dockerfile get the same findings, each at
//! the line that caused it.
//!
//! The rules read the project as written: templates are not expanded,
//! except a stage's `from` (and a `user`), which use `--arg` values and the
//! arguments' defaults; a rule that cannot know a value does not fire.
//! `run` commands are read as shell text, split into simple commands on
//! `&&`, `||`, `;`, `|` and newlines, past variable assignments and
//! wrappers such as `sudo` and `env`.
//!
//! "The final image" is what `imgbuild apply` builds without `--target`:
//! the images of the `default` group, else every image (for a Dockerfile,
//! its last stage). Its stage "carries" whatever the stages it starts from
//! (`from = "stage:NAME"`) put in it.
//!
//! Only `imgbuild lint` runs these rules; `plan` and `apply` print a
//! Dockerfile's `BuildKit` checks, as `docker build` does, and nothing more.
//!
//! The rules are here; what they know of package managers is in `packages`,
//! and how they read shell commands in `shell`.

mod packages;
mod shell;

use std::collections::HashSet;

use packages::{
    Manager, cache_mounted, cleanups, dependency_install, fills_cache, install,
    is_toolchain_package, removes_packages, toolchain_image,
};
use shell::simple_commands;

use indexmap::IndexMap;

use crate::ir::{Base, Mount, Project, Span, Stage, Step, Template, reference};
use crate::lint::{Finding, Report, Rule, RuleSet, looks_secret};

/// The book's page on these rules: one ``## `RULE` `` section per rule,
/// which `imgbuild lint --explain RULE` prints.
pub const DOCS: &str = include_str!("../../book/src/lint.md");

/// `UnpinnedBaseImage`.
pub const UNPINNED_BASE_IMAGE: Rule = Rule {
    name: "UnpinnedBaseImage",
    description: "Base images should name a version tag or a digest, not `latest`",
    url: None,
};
/// `SecretsUsedInArgOrEnv`, `BuildKit`'s rule of the same name for manifests.
pub const SECRETS_USED_IN_ARG_OR_ENV: Rule = Rule {
    name: "SecretsUsedInArgOrEnv",
    description: "Secrets should reach a build through `secret` mounts, not arguments or environment variables",
    url: None,
};
/// `CleanupInLaterStep`.
pub const CLEANUP_IN_LATER_STEP: Rule = Rule {
    name: "CleanupInLaterStep",
    description: "Package caches should be removed in the step that fills them",
    url: None,
};
/// `CopyAllBeforeInstall`.
pub const COPY_ALL_BEFORE_INSTALL: Rule = Rule {
    name: "CopyAllBeforeInstall",
    description: "Dependencies should be installed from their manifest files before the whole context is copied",
    url: None,
};
/// `ToolchainInFinalStage`.
pub const TOOLCHAIN_IN_FINAL_STAGE: Rule = Rule {
    name: "ToolchainInFinalStage",
    description: "The final image should not carry the compilers that built it",
    url: None,
};
/// `RootInFinalImage`.
pub const ROOT_IN_FINAL_IMAGE: Rule = Rule {
    name: "RootInFinalImage",
    description: "The final image should run as a user other than root",
    url: None,
};

/// Every best-practice rule.
pub const RULES: [Rule; 6] = [
    UNPINNED_BASE_IMAGE,
    SECRETS_USED_IN_ARG_OR_ENV,
    CLEANUP_IN_LATER_STEP,
    COPY_ALL_BEFORE_INSTALL,
    TOOLCHAIN_IN_FINAL_STAGE,
    ROOT_IN_FINAL_IMAGE,
];

/// The rules' names, as a manifest's `[lint] skip` and `# check=skip=` write them.
pub fn rule_names() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.name)
}

/// The language the project was written in; fixes are written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `imgbuild.toml`.
    Manifest,
    /// A Dockerfile, through the importer. `SecretsUsedInArgOrEnv` does not
    /// run: `BuildKit`'s check of the same name already reports it.
    Dockerfile,
}

/// What the rules need besides the project.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Which front end read the project.
    pub syntax: Syntax,
    /// `--arg` values, for `from` and `user` values with variables.
    pub args: &'a IndexMap<String, String>,
    /// Places with rules of their own: a Dockerfile instruction's span and
    /// the rules its `# check=skip=` comment skips.
    pub local: &'a [(Span, RuleSet)],
}

/// Runs every rule the project's [`RuleSet`] enables on `project`.
pub fn check(project: &Project, options: &Options<'_>) -> Vec<Finding> {
    let mut linter = Linter {
        project,
        options,
        report: Report::new(project.source.name.clone(), project.checks.clone()),
        fired: HashSet::new(),
    };
    for stage in project.stages.values() {
        linter.unpinned_base(stage);
    }
    if options.syntax == Syntax::Manifest {
        linter.secrets();
    }
    for stage in project.stages.values() {
        linter.cleanup_in_later_step(stage);
        linter.copy_all_before_install(stage);
    }
    for stage in final_stages(&linter) {
        linter.toolchain(stage);
        linter.root(stage);
    }
    linter.report.into_findings()
}

struct Linter<'a> {
    project: &'a Project,
    options: &'a Options<'a>,
    report: Report,
    /// Findings already reported (rule, place, message), so a stage
    /// shared by several final images is reported once.
    fired: HashSet<(&'static str, usize, String)>,
}

impl<'a> Linter<'a> {
    /// Reports `message` for `rule` at `span`, with `help`.
    fn add(&mut self, rule: &Rule, span: &Span, message: String, help: String) {
        if !self.fired.insert((rule.name, span.start, message.clone())) {
            return;
        }
        let (line, column) = self.project.source.line_column(span.start);
        let mut rules = self.report.rules().clone();
        for (place, local) in self.options.local {
            if place.contains(&span.start) {
                rules = rules.merged(local);
            }
        }
        self.report
            .add_with_help(&rules, rule, message, help, line, column);
    }

    /// The 1-based line of `span`, for messages that name another place.
    fn line(&self, span: &Span) -> usize {
        self.project.source.line_column(span.start).0
    }

    /// `manifest` or `dockerfile`, whichever the project is written in.
    fn fix(&self, manifest: String, dockerfile: String) -> String {
        match self.options.syntax {
            Syntax::Manifest => manifest,
            Syntax::Dockerfile => dockerfile,
        }
    }

    /// Where step `index` of `stage` was written; its `from` if unknown.
    fn step_span(&self, stage: &Stage, index: usize) -> Span {
        self.project
            .source_map
            .step(&stage.name.value, index)
            .unwrap_or_else(|| stage.from.span.clone())
    }

    /// `template` with its variables expanded from `--arg` and the
    /// arguments' defaults; `None` when one of them has no known value.
    fn expand(&self, template: &Template) -> Option<String> {
        if !template.value.contains('$') {
            return Some(template.value.clone());
        }
        let mut known = true;
        let mut lookup = |name: &str| {
            let value = self.options.args.get(name).cloned().or_else(|| {
                self.project
                    .args
                    .get(name)
                    .and_then(Option::as_ref)
                    .map(|t| t.value.clone())
            });
            if value.as_ref().is_none_or(|v| v.contains('$')) {
                known = false;
            }
            value
        };
        let text = crate::ir::template::expand(&template.value, &mut lookup).ok()?;
        known.then_some(text)
    }

    /// What `stage` starts from; `None` when a variable hides it.
    fn base(&self, stage: &Stage) -> Option<Base> {
        let from = self.expand(&stage.from)?;
        Some(Base::parse(&from, |name| {
            self.project.stages.contains_key(name)
        }))
    }

    /// `stage` and the project's stages it starts from, base first, and
    /// what the first of them starts from (`None` when unknown).
    fn chain(&self, stage: &'a Stage) -> (Vec<&'a Stage>, Option<Base>) {
        let mut chain = vec![stage];
        let mut current = stage;
        let root = loop {
            match self.base(current) {
                Some(Base::Stage(name)) => match self.project.stages.get(&name) {
                    Some(parent) if !chain.iter().any(|s| s.name.value == name) => {
                        chain.push(parent);
                        current = parent;
                    }
                    _ => break None,
                },
                other => break other,
            }
        };
        chain.reverse();
        (chain, root)
    }

    /// `UnpinnedBaseImage`: an image without a digest, and without a tag
    /// or with `latest`, that a stage starts from or a step reads from
    /// (`copy`/`add` and mounts with `from`).
    fn unpinned_base(&mut self, stage: &Stage) {
        if let Some(Base::Image(reference)) = self.base(stage) {
            self.unpinned(&reference, &stage.from.span, "base image", "from");
        }
        for step in &stage.steps {
            let froms: Vec<&Template> = match step {
                Step::Copy(copy) | Step::Add(copy) => copy.from.iter().collect(),
                Step::Run(run) => run
                    .mounts
                    .iter()
                    .filter_map(|mount| match mount {
                        Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_ref(),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for from in froms {
                let Some(text) = self.expand(from) else {
                    continue;
                };
                let base = Base::parse(&text, |name| self.project.stages.contains_key(name));
                if let Base::Image(reference) = base {
                    self.unpinned(&reference, &from.span, "image", "from");
                }
            }
        }
    }

    /// Reports `reference`, written at `span`, when it is not pinned.
    fn unpinned(&mut self, reference: &str, span: &Span, what: &str, key: &str) {
        if reference::is_local(reference) || reference.parse::<usize>().is_ok() {
            return;
        }
        let parts = Reference::split(reference);
        if parts.digest.is_some() || parts.tag.is_some_and(|t| t != "latest") {
            return;
        }
        let message = match parts.tag {
            None => format!(
                "{what} `{reference}` has no tag: it is `latest`, whatever that is on the day of the build"
            ),
            Some(_) => {
                format!("{what} `{reference}` is whatever `latest` is on the day of the build")
            }
        };
        let pinned = format!("{}:<version>@sha256:<digest>", parts.repository);
        let help = self.fix(
            format!("pin a version, and a digest for repeatable builds: `{key} = \"{pinned}\"`"),
            if what == "base image" {
                format!("pin a version, and a digest for repeatable builds: `FROM {pinned}`")
            } else {
                format!("pin a version, and a digest for repeatable builds: `--from={pinned}`")
            },
        );
        self.add(&UNPINNED_BASE_IMAGE, span, message, help);
    }

    /// `SecretsUsedInArgOrEnv` for a manifest: argument and environment
    /// variable names that look like secrets, as `BuildKit` decides.
    fn secrets(&mut self) {
        let project = self.project;
        let help = |name: &str| {
            let id = name.to_ascii_lowercase();
            format!(
                "pass it with `--secret id={id},env={name}` to a `run` step with the mount `{{ type = \"secret\", id = \"{id}\", env = \"{name}\" }}`"
            )
        };
        for (name, default) in &project.args {
            if looks_secret(name) {
                let span = project
                    .source_map
                    .arg(name)
                    .or_else(|| default.as_ref().map(|d| d.span.clone()))
                    .unwrap_or(0..0);
                let message = format!(
                    "argument `{name}` looks like a secret: argument values show in `plan` and in the image history"
                );
                self.add(&SECRETS_USED_IN_ARG_OR_ENV, &span, message, help(name));
            }
        }
        let env_message = |name: &str| {
            format!(
                "`env` `{name}` looks like a secret: the image config keeps it for anyone who pulls the image"
            )
        };
        for stage in project.stages.values() {
            for (name, value) in &stage.config.env {
                if looks_secret(name) {
                    self.add(
                        &SECRETS_USED_IN_ARG_OR_ENV,
                        &value.span,
                        env_message(name),
                        help(name),
                    );
                }
            }
            for (index, step) in stage.steps.iter().enumerate() {
                let span = self.step_span(stage, index);
                match step {
                    Step::Env { vars } => {
                        for name in vars.keys().filter(|n| looks_secret(n)) {
                            self.add(
                                &SECRETS_USED_IN_ARG_OR_ENV,
                                &span,
                                env_message(name),
                                help(name),
                            );
                        }
                    }
                    Step::Arg { name, .. } if looks_secret(name) => {
                        let message = format!(
                            "argument `{name}` looks like a secret: argument values show in `plan` and in the image history"
                        );
                        self.add(&SECRETS_USED_IN_ARG_OR_ENV, &span, message, help(name));
                    }
                    _ => {}
                }
            }
        }
    }

    /// `CleanupInLaterStep`: a step removes the package cache an earlier
    /// step of the same stage left in its layer.
    fn cleanup_in_later_step(&mut self, stage: &Stage) {
        // Commands that left a cache behind: manager, command, step.
        let mut pending: Vec<(Manager, String, usize)> = Vec::new();
        for (index, step) in stage.steps.iter().enumerate() {
            let Step::Run(run) = step else {
                continue;
            };
            let commands = simple_commands(run);
            let cleaned: Vec<(Manager, String)> =
                commands.iter().flat_map(|c| cleanups(c)).collect();
            for (manager, cleanup) in &cleaned {
                let Some(earlier) = pending.iter().position(|(m, _, _)| m == manager) else {
                    continue;
                };
                let (_, fill, at) = pending[earlier].clone();
                pending.retain(|(m, _, _)| m != manager);
                let fill_span = self.step_span(stage, at);
                let message = format!(
                    "`{cleanup}` cleans up after `{fill}` at line {}, but that step's layer already holds the files",
                    self.line(&fill_span)
                );
                let program = fill.split(' ').next().unwrap_or_default();
                let help = format!(
                    "update, install and clean up in one step: {}",
                    manager.same_step_cleanup(program)
                );
                let span = self.step_span(stage, index);
                self.add(&CLEANUP_IN_LATER_STEP, &span, message, help);
            }
            for (manager, fill) in commands.iter().filter_map(|c| fills_cache(c)) {
                let clean =
                    cleaned.iter().any(|(m, _)| *m == manager) || cache_mounted(run, manager);
                if !clean {
                    pending.push((manager, fill, index));
                }
            }
        }
    }

    /// `CopyAllBeforeInstall`: the whole context is copied before a step
    /// that installs dependencies, and nothing installed them before.
    fn copy_all_before_install(&mut self, stage: &Stage) {
        let mut whole_copy: Option<usize> = None;
        for (index, step) in stage.steps.iter().enumerate() {
            match step {
                Step::Copy(copy) | Step::Add(copy)
                    if whole_copy.is_none()
                        && copy.from.is_none()
                        && copy.sources.iter().any(|s| is_whole_context(&s.value)) =>
                {
                    whole_copy = Some(index);
                }
                Step::Run(run) => {
                    let Some(install) = simple_commands(run)
                        .iter()
                        .find_map(|c| dependency_install(c))
                    else {
                        continue;
                    };
                    let Some(copy) = whole_copy else {
                        // Dependencies are installed before any whole copy:
                        // the layout this rule asks for.
                        return;
                    };
                    let install_span = self.step_span(stage, index);
                    let message = format!(
                        "the whole context is copied before `{}` at line {}: any change to any file runs the install again",
                        install.command,
                        self.line(&install_span)
                    );
                    let help = self.fix(
                        format!(
                            "copy {} first (`{{ copy = [{}], to = \"./\" }}`), run `{}`, then copy the rest",
                            install.files_text(),
                            install.files_toml(),
                            install.command
                        ),
                        format!(
                            "`COPY {} ./` first, run `{}`, then copy the rest",
                            install.files.join(" "),
                            install.command
                        ),
                    );
                    let span = self.step_span(stage, copy);
                    self.add(&COPY_ALL_BEFORE_INSTALL, &span, message, help);
                    return;
                }
                _ => {}
            }
        }
    }

    /// `ToolchainInFinalStage`: the final image starts from a compiler
    /// image, or one of its stages installs compilers and keeps them.
    fn toolchain(&mut self, stage: &'a Stage) {
        let (chain, root) = self.chain(stage);
        let help = self.fix(
            "build in a stage of its own and copy only the result into the final stage, on a slim or `scratch` base: `{ copy = [\"/out/app\"], from = \"build\", to = \"/app\" }`".to_owned(),
            "build in a stage of its own and copy only the result into the final stage, on a slim or `scratch` base: `COPY --from=build /out/app /app`".to_owned(),
        );
        if let Some(Base::Image(reference)) = &root
            && let Some(toolchain) = toolchain_image(reference)
        {
            let message = format!(
                "the final image is built on `{reference}`, a {toolchain} toolchain, and ships it"
            );
            self.add(
                &TOOLCHAIN_IN_FINAL_STAGE,
                &chain[0].from.span,
                message,
                help.clone(),
            );
        }
        for stage in chain {
            for (index, step) in stage.steps.iter().enumerate() {
                let Step::Run(run) = step else {
                    continue;
                };
                let commands = simple_commands(run);
                if commands.iter().any(|c| removes_packages(c)) {
                    continue;
                }
                let tools: Vec<&str> = commands
                    .iter()
                    .filter_map(|c| install(c))
                    .flat_map(|i| i.packages)
                    .filter(|p| is_toolchain_package(p))
                    .collect();
                if tools.is_empty() {
                    continue;
                }
                let message = format!(
                    "the final image keeps the build tools this step installs: {}",
                    tools
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let span = self.step_span(stage, index);
                self.add(&TOOLCHAIN_IN_FINAL_STAGE, &span, message, help.clone());
            }
        }
    }

    /// `RootInFinalImage`: the last user the final image's stages set is
    /// root, or none is set and the base does not say it runs as another.
    fn root(&mut self, stage: &'a Stage) {
        let (chain, root) = self.chain(stage);
        let mut user: Option<&Template> = None;
        for stage in &chain {
            user = stage.config.user.as_ref().or(user);
            for step in &stage.steps {
                if let Step::User { user: set } = step {
                    user = Some(set);
                }
            }
        }
        let manifest_fix = format!(
            "add `user = \"65534\"` to stage `{}` (a uid needs no /etc/passwd), or a user the image creates",
            stage.name.value
        );
        let dockerfile_fix =
            "add `USER 65534` to the final stage (a uid needs no /etc/passwd), or a user the image creates"
                .to_owned();
        let help = self.fix(manifest_fix, dockerfile_fix);
        match user {
            Some(template) => {
                let Some(value) = self.expand(template) else {
                    return;
                };
                let name = value.split(':').next().unwrap_or_default();
                if name == "root" || name == "0" {
                    let message = format!("the final image runs as `{value}`");
                    self.add(&ROOT_IN_FINAL_IMAGE, &template.span, message, help);
                }
            }
            None => {
                let message = match root {
                    Some(Base::Scratch) => {
                        let runs = chain
                            .iter()
                            .any(|s| s.config.entrypoint.is_some() || s.config.cmd.is_some());
                        if !runs {
                            // Files only, nothing to run: no user to run as.
                            return;
                        }
                        "no stage of the final image sets a user: it runs as root".to_owned()
                    }
                    Some(Base::Image(reference)) => {
                        if says_non_root(&reference) {
                            return;
                        }
                        format!(
                            "no stage of the final image sets a user: it runs as the user `{reference}` sets, root in most images"
                        )
                    }
                    Some(Base::Stage(_)) | None => return,
                };
                self.add(&ROOT_IN_FINAL_IMAGE, &stage.from.span, message, help);
            }
        }
    }
}

/// The stages of the images `apply` builds without `--target`: the
/// `default` group's, else every image's.
fn final_stages<'a>(linter: &Linter<'a>) -> Vec<&'a Stage> {
    let project = linter.project;
    let mut pending: Vec<&str> = if project.groups.contains_key("default") {
        vec!["default"]
    } else {
        project.images.keys().map(String::as_str).rev().collect()
    };
    let mut seen_groups: Vec<&str> = Vec::new();
    let mut stages: Vec<&'a Stage> = Vec::new();
    while let Some(target) = pending.pop() {
        if let Some(image) = project.images.get(target) {
            let Some(name) = linter.expand(&image.stage) else {
                continue;
            };
            if let Some(stage) = project.stages.get(&name)
                && !stages.iter().any(|s| s.name.value == name)
            {
                stages.push(stage);
            }
        } else if let Some(group) = project.groups.get(target)
            && !seen_groups.contains(&target)
        {
            seen_groups.push(target);
            pending.extend(group.members.iter().rev().map(|m| m.value.as_str()));
        }
    }
    stages
}

/// An image reference's parts: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reference<'a> {
    /// Everything before the tag.
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    fn split(text: &'a str) -> Self {
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        match name[last_slash..].rfind(':') {
            Some(i) => Reference {
                repository: &name[..last_slash + i],
                tag: Some(&name[last_slash + i + 1..]),
                digest,
            },
            None => Reference {
                repository: name,
                tag: None,
                digest,
            },
        }
    }

    /// The last path component: `golang` in `docker.io/library/golang`.
    fn name(&self) -> &'a str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(self.repository)
    }
}

/// Whether a base image's name or tag says it runs as a user other than
/// root (`distroless/static:nonroot`, `nginx-unprivileged`): imgbuild does
/// not pull an image to lint, so it cannot read the base's `USER`.
fn says_non_root(reference: &str) -> bool {
    let lower = reference.to_ascii_lowercase();
    ["nonroot", "non-root", "unprivileged", "rootless"]
        .iter()
        .any(|m| lower.contains(m))
}

/// A context path that names the whole context: `.`, `./`, `*`.
fn is_whole_context(source: &str) -> bool {
    let mut path = source;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    matches!(path.trim_end_matches('/'), "" | "." | "*")
}

#[cfg(test)]
mod tests;
