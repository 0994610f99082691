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

use std::collections::HashSet;

use indexmap::IndexMap;

use crate::ir::{Base, Command, Mount, Project, Run, Span, Stage, Step, Template, reference};
use crate::lint::{Finding, Report, Rule, RuleSet, looks_secret};

/// The book's page on these rules: one ``## `RULE` `` section per rule,
/// which `imgbuild lint --explain RULE` prints.
pub const DOCS: &str = include_str!("../book/src/lint.md");

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

/// The language whose toolchain image `reference` is. The list is short on
/// purpose: images that hold only a compiler and its build tools, whose
/// programs run without them. Runtimes that build too (`node`, `python`,
/// `ruby`) are not on it, and neither are JRE tags of the JDK images.
fn toolchain_image(reference: &str) -> Option<&'static str> {
    if reference::is_local(reference) {
        return None;
    }
    let parts = Reference::split(reference);
    let tag = parts.tag.unwrap_or("latest");
    let language = match parts.name() {
        "golang" => "Go",
        "rust" => "Rust",
        "gcc" | "buildpack-deps" => "C",
        "maven" | "gradle" => "Java",
        "openjdk" | "eclipse-temurin" | "amazoncorretto" | "sapmachine" if !tag.contains("jre") => {
            "Java"
        }
        "sdk" if parts.repository.ends_with("dotnet/sdk") => ".NET",
        _ => return None,
    };
    Some(language)
}

/// Whether an installed package is a compiler or build tool.
fn is_toolchain_package(package: &str) -> bool {
    const TOOLS: [&str; 18] = [
        "build-essential",
        "build-base",
        "gcc",
        "g++",
        "gcc-c++",
        "clang",
        "make",
        "cmake",
        "autoconf",
        "automake",
        "libtool",
        "golang",
        "golang-go",
        "rustc",
        "cargo",
        "maven",
        "default-jdk",
        "Development Tools",
    ];
    let name = package.split(['=', ':']).next().unwrap_or(package);
    TOOLS.contains(&name)
        || (name.starts_with("openjdk-")
            && (name.ends_with("-jdk") || name.ends_with("-jdk-headless")))
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

/// A system package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    /// `apt-get`, `apt`, `aptitude`.
    Apt,
    /// `apk`.
    Apk,
    /// `yum`, `dnf`, `microdnf`, `tdnf`.
    Yum,
    /// `zypper`.
    Zypper,
}

impl Manager {
    fn of(program: &str) -> Option<Manager> {
        match program {
            "apt-get" | "apt" | "aptitude" => Some(Manager::Apt),
            "apk" => Some(Manager::Apk),
            "yum" | "dnf" | "microdnf" | "tdnf" => Some(Manager::Yum),
            "zypper" => Some(Manager::Zypper),
            _ => None,
        }
    }

    /// Options whose value is the next word.
    fn valued_options(self) -> &'static [&'static str] {
        match self {
            Manager::Apt => &["-o", "-c", "-t", "--option", "--config-file"],
            Manager::Apk => &["-t", "--virtual", "-X", "--repository", "-p", "--root"],
            Manager::Yum | Manager::Zypper => &[],
        }
    }

    /// The directories its cache and package lists are kept in.
    fn cache_dirs(self) -> &'static [&'static str] {
        match self {
            Manager::Apt => &["/var/lib/apt/lists", "/var/cache/apt"],
            Manager::Apk => &["/var/cache/apk", "/etc/apk/cache"],
            Manager::Yum => &["/var/cache/yum", "/var/cache/dnf"],
            Manager::Zypper => &["/var/cache/zypp"],
        }
    }

    /// How a step that installs with `program` cleans up after itself.
    fn same_step_cleanup(self, program: &str) -> String {
        match self {
            Manager::Apt => format!(
                "`{program} update && {program} install -y ... && rm -rf /var/lib/apt/lists/*`, or `cache` mounts on /var/cache/apt and /var/lib/apt"
            ),
            Manager::Apk => "`apk add --no-cache ...`".to_owned(),
            Manager::Yum => format!("`{program} install -y ... && {program} clean all`"),
            Manager::Zypper => "`zypper install -y ... && zypper clean --all`".to_owned(),
        }
    }
}

/// A package installation by a system package manager.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Install<'a> {
    manager: Manager,
    /// The program, as `apt-get`.
    program: &'a str,
    /// The packages, as written.
    packages: Vec<&'a str>,
    /// `apk add --no-cache`: nothing is left to clean up.
    no_cache: bool,
}

/// The package installation a simple command performs, if it is one.
fn install(words: &[String]) -> Option<Install<'_>> {
    let (program, args) = program(words)?;
    let manager = Manager::of(program)?;
    let operands = operands(args, manager.valued_options());
    let (subcommand, rest) = operands.split_first()?;
    let packages = match (manager, *subcommand) {
        (Manager::Apt | Manager::Yum, "install" | "reinstall")
        | (Manager::Apk, "add")
        | (Manager::Yum, "groupinstall")
        | (Manager::Zypper, "install" | "in") => rest.to_vec(),
        (Manager::Yum, "group") if rest.first() == Some(&"install") => rest[1..].to_vec(),
        _ => return None,
    };
    Some(Install {
        manager,
        program,
        packages,
        no_cache: manager == Manager::Apk && args.iter().any(|a| a == "--no-cache"),
    })
}

/// The package cache a simple command fills, with the command as a short
/// text: an install (`apt-get install`, `apk add` without `--no-cache`) or
/// an index update (`apt-get update`, `apk update`, `dnf makecache`).
fn fills_cache(words: &[String]) -> Option<(Manager, String)> {
    if let Some(install) = install(words) {
        return (!install.no_cache).then(|| {
            let verb = if install.manager == Manager::Apk {
                "add"
            } else {
                "install"
            };
            (install.manager, format!("{} {verb}", install.program))
        });
    }
    let (program, args) = program(words)?;
    let manager = Manager::of(program)?;
    let operands = operands(args, manager.valued_options());
    match (manager, operands.first().copied()?) {
        (Manager::Apt | Manager::Apk, "update")
        | (Manager::Yum, "makecache")
        | (Manager::Zypper, "refresh" | "ref") => {
            Some((manager, format!("{program} {}", operands[0])))
        }
        _ => None,
    }
}

/// The package caches a simple command removes, each with the command as
/// a short text.
fn cleanups(words: &[String]) -> Vec<(Manager, String)> {
    let Some((program, args)) = program(words) else {
        return Vec::new();
    };
    let text = || short(&words.join(" "));
    if program == "rm" {
        let mut managers: Vec<Manager> = Vec::new();
        for path in args.iter().filter(|a| !a.starts_with('-')) {
            let path = path.trim_end_matches(['*', '/']);
            for manager in [Manager::Apt, Manager::Apk, Manager::Yum, Manager::Zypper] {
                let cleans = manager.cache_dirs().iter().any(|dir| {
                    path.starts_with(dir) || (path.len() > "/var".len() && dir.starts_with(path))
                });
                if cleans && !managers.contains(&manager) {
                    managers.push(manager);
                }
            }
        }
        return managers.into_iter().map(|m| (m, text())).collect();
    }
    let Some(manager) = Manager::of(program) else {
        return Vec::new();
    };
    let operands = operands(args, manager.valued_options());
    let cleans = matches!(
        (manager, operands.as_slice()),
        (Manager::Apt, ["clean" | "autoclean", ..])
            | (Manager::Apk, ["cache", "clean" | "purge", ..])
            | (Manager::Yum, ["clean", ..])
            | (Manager::Zypper, ["clean" | "cc", ..])
    );
    if cleans {
        vec![(manager, text())]
    } else {
        Vec::new()
    }
}

/// Whether a simple command removes packages (`apt-get purge`, `apk del`).
fn removes_packages(words: &[String]) -> bool {
    let Some((program, args)) = program(words) else {
        return false;
    };
    let Some(manager) = Manager::of(program) else {
        return false;
    };
    let operands = operands(args, manager.valued_options());
    matches!(
        (manager, operands.first().copied()),
        (Manager::Apt, Some("remove" | "purge" | "autoremove"))
            | (Manager::Apk, Some("del"))
            | (
                Manager::Yum,
                Some("remove" | "erase" | "autoremove" | "groupremove")
            )
            | (Manager::Zypper, Some("remove" | "rm"))
    )
}

/// Whether `run` mounts a cache or tmpfs over one of `manager`'s cache
/// directories, so its files never reach the layer.
fn cache_mounted(run: &Run<Template>, manager: Manager) -> bool {
    run.mounts.iter().any(|mount| {
        let target = match mount {
            Mount::Cache { target, .. } | Mount::Tmpfs { target, .. } => &target.value,
            _ => return false,
        };
        let target = target.trim_end_matches('/');
        manager
            .cache_dirs()
            .iter()
            .any(|dir| dir.starts_with(target) || target.starts_with(dir))
    })
}

/// A step that installs a project's dependencies from its manifest files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DependencyInstall {
    /// The command, as `npm ci`.
    command: String,
    /// The files it reads, as `package.json`.
    files: Vec<String>,
}

impl DependencyInstall {
    fn new(command: &str, files: &[&str]) -> Self {
        Self {
            command: command.to_owned(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// `package.json and package-lock.json`.
    fn files_text(&self) -> String {
        match self.files.as_slice() {
            [one] => format!("`{one}`"),
            [init @ .., last] => format!(
                "{} and `{last}`",
                init.iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [] => String::new(),
        }
    }

    /// `"package.json", "package-lock.json"`.
    fn files_toml(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The dependency installation a simple command performs, if it is one:
/// a command that reads only the project's manifest and lock files. Build
/// commands (`cargo build`, `go build`, `mvn package`) are not: they need
/// the sources, and follow the whole copy in the layout this rule asks for.
fn dependency_install(words: &[String]) -> Option<DependencyInstall> {
    let (mut program, mut args) = program(words)?;
    if matches!(program, "python" | "python3") && args.first().is_some_and(|a| a == "-m") {
        let (module, rest) = args[1..].split_first()?;
        program = module.as_str();
        args = rest;
    }
    let ops = operands(args, &[]);
    let sub = ops.first().copied();
    let install = match (program, sub) {
        ("npm", Some("ci")) => {
            DependencyInstall::new("npm ci", &["package.json", "package-lock.json"])
        }
        ("npm", Some("install" | "i")) if ops.len() == 1 => {
            DependencyInstall::new("npm install", &["package.json", "package-lock.json"])
        }
        ("yarn", None | Some("install")) => {
            DependencyInstall::new("yarn install", &["package.json", "yarn.lock"])
        }
        ("pnpm", Some("install" | "i")) if ops.len() == 1 => {
            DependencyInstall::new("pnpm install", &["package.json", "pnpm-lock.yaml"])
        }
        ("pip" | "pip3", Some("install")) => {
            let file = requirement_file(args)?;
            DependencyInstall::new(&format!("{program} install -r {file}"), &[file])
        }
        ("uv", Some("pip")) if ops.get(1) == Some(&"install") => {
            let file = requirement_file(args)?;
            DependencyInstall::new(&format!("uv pip install -r {file}"), &[file])
        }
        ("uv", Some("sync")) => DependencyInstall::new("uv sync", &["pyproject.toml", "uv.lock"]),
        ("poetry", Some("install")) => {
            DependencyInstall::new("poetry install", &["pyproject.toml", "poetry.lock"])
        }
        ("pipenv", Some("install" | "sync")) => {
            DependencyInstall::new("pipenv install", &["Pipfile", "Pipfile.lock"])
        }
        ("cargo", Some("fetch")) => {
            DependencyInstall::new("cargo fetch", &["Cargo.toml", "Cargo.lock"])
        }
        ("go", Some("mod")) if ops.get(1) == Some(&"download") => {
            DependencyInstall::new("go mod download", &["go.mod", "go.sum"])
        }
        ("bundle" | "bundler", Some("install")) => {
            DependencyInstall::new("bundle install", &["Gemfile", "Gemfile.lock"])
        }
        ("composer", Some("install")) => {
            DependencyInstall::new("composer install", &["composer.json", "composer.lock"])
        }
        ("mvn" | "mvnw", _) => {
            let goal = ops.iter().find(|o| o.starts_with("dependency:"))?;
            DependencyInstall::new(&format!("mvn {goal}"), &["pom.xml"])
        }
        ("gradle" | "gradlew", _) if ops.contains(&"dependencies") => {
            DependencyInstall::new("gradle dependencies", &["build.gradle", "settings.gradle"])
        }
        ("dotnet", Some("restore")) => DependencyInstall::new("dotnet restore", &["*.csproj"]),
        _ => return None,
    };
    Some(install)
}

/// The file of `pip install -r FILE` (or `--requirement FILE`, `-rFILE`,
/// `--requirement=FILE`).
fn requirement_file(args: &[String]) -> Option<&str> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "-r" || word == "--requirement" {
            return words.next().map(String::as_str);
        }
        if let Some(file) = word
            .strip_prefix("--requirement=")
            .or_else(|| word.strip_prefix("-r").filter(|f| !f.is_empty()))
        {
            return Some(file);
        }
    }
    None
}

/// The simple commands of a `run` step, each as its words: a shell
/// command (or an argv of `sh -c SCRIPT`) split on `&&`, `||`, `;`, `|`,
/// `&`, parentheses and newlines, with quotes removed and comments
/// dropped; an argv as it is.
fn simple_commands(run: &Run<Template>) -> Vec<Vec<String>> {
    match &run.command {
        Command::Shell(script) => split_shell(script),
        Command::Exec(argv) => match argv.as_slice() {
            [shell, flag, script, ..]
                if flag == "-c" && matches!(basename(shell), "sh" | "bash" | "ash" | "dash") =>
            {
                split_shell(script)
            }
            _ => vec![argv.clone()],
        },
    }
}

/// Splits shell text into simple commands. Not a shell parser: enough to
/// find the programs a command runs and their arguments.
fn split_shell(text: &str) -> Vec<Vec<String>> {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
            },
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\n') | None => {}
                            Some(next) => word.push(next),
                        },
                        _ => word.push(c),
                    }
                }
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                end_command(&mut commands, &mut words);
            }
            ';' | '&' | '|' | '\n' | '(' | ')' | '`' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_command(&mut commands, &mut words);
            }
            c if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word),
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    end_command(&mut commands, &mut words);
    commands
}

fn end_word(words: &mut Vec<String>, word: &mut String, in_word: &mut bool) {
    if *in_word {
        words.push(std::mem::take(word));
        *in_word = false;
    }
}

fn end_command(commands: &mut Vec<Vec<String>>, words: &mut Vec<String>) {
    if !words.is_empty() {
        commands.push(std::mem::take(words));
    }
}

/// The program a simple command runs (its file name) and its arguments,
/// past variable assignments, shell keywords and wrappers (`sudo`, `env`).
fn program(words: &[String]) -> Option<(&str, &[String])> {
    const KEYWORDS: [&str; 11] = [
        "if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time",
    ];
    const WRAPPERS: [&str; 6] = ["sudo", "env", "command", "exec", "nice", "nohup"];
    let mut i = 0;
    while let Some(word) = words.get(i) {
        if is_assignment(word) || KEYWORDS.contains(&word.as_str()) {
            i += 1;
        } else if WRAPPERS.contains(&basename(word)) {
            i += 1;
            while words.get(i).is_some_and(|w| w.starts_with('-')) {
                i += 1;
            }
        } else {
            return Some((basename(word), &words[i + 1..]));
        }
    }
    None
}

/// `NAME=value`, a variable assignment before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The file name of a program path: `apt-get` of `/usr/bin/apt-get`.
fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The arguments that are not options, skipping the values of `valued`
/// options.
fn operands<'a>(args: &'a [String], valued: &[&str]) -> Vec<&'a str> {
    let mut operands = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if valued.contains(&word.as_str()) {
            words.next();
        } else if !word.starts_with('-') {
            operands.push(word.as_str());
        }
    }
    operands
}

/// `text`, cut to a length that fits in a message.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests;
