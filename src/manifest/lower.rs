//! Checks a parsed manifest's shape and lowers it to an [`ir::Project`].
//!
//! Errors are collected, not returned at the first one, so a user fixing a
//! manifest sees everything wrong with it at once.

use std::sync::Arc;

use indexmap::IndexMap;
use toml::Spanned;

use super::schema::{self, Mode, OneOrMany, Scalar};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, suggest};
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::trigger::TriggerSyntax;
use crate::ir::value::{parse_duration, parse_octal, parse_size};
use crate::ir::{
    self, ArgScope, Command, Copy, File, Group, Healthcheck, Image, Located, Network, Platform,
    Project, Run, Sharing, SourceMap, Span, Stage, StageConfig, StagePlatform, Step, Template,
    reference,
};
use crate::lint::RuleSet;

/// The action keys of a step.
const ACTIONS: [&str; 13] = [
    "run",
    "copy",
    "add",
    "file",
    "env",
    "workdir",
    "user",
    "shell",
    "arg",
    "label",
    "expose",
    "volume",
    "stopsignal",
];

/// Step options and the actions they apply to.
const OPTIONS: [(&str, &[&str]); 14] = [
    ("default", &["arg"]),
    ("to", &["copy", "add", "file"]),
    ("from", &["copy"]),
    ("chown", &["copy", "add", "file"]),
    ("chmod", &["copy", "add", "file"]),
    ("link", &["copy", "add"]),
    ("parents", &["copy"]),
    ("exclude", &["copy", "add"]),
    ("checksum", &["add"]),
    ("keep_git_dir", &["add"]),
    ("mounts", &["run"]),
    ("network", &["run"]),
    ("expand", &["file"]),
    ("name", &["file"]),
];

/// Lowers `manifest`, read from `source`, or returns every error found.
pub fn lower(
    manifest: schema::Manifest,
    source: Arc<SourceFile>,
    triggers: &dyn TriggerSyntax,
) -> Result<Project, Diagnostics> {
    let mut lower = Lowerer {
        source: Arc::clone(&source),
        triggers,
        errors: Vec::new(),
        arg_scope: ArgScope::Everywhere,
        source_map: SourceMap::default(),
    };
    let build = manifest.build.unwrap_or(schema::Build {
        context: None,
        platforms: None,
        arg_scope: None,
    });
    if let Some(scope) = build.arg_scope {
        match scope.get_ref().as_str() {
            "everywhere" => {}
            "declared" => lower.arg_scope = ArgScope::Declared,
            other => lower.error(
                scope.span(),
                format!("unknown `arg_scope` `{other}`"),
                suggest("argument scope", other, &["everywhere", "declared"]),
            ),
        }
    }
    let context = build
        .context
        .map_or_else(|| Located::new(".".to_owned(), 0..0), located);
    let platforms = lower.platforms(build.platforms.unwrap_or_default());
    let args = lower.args(manifest.args);
    let stages = manifest
        .stages
        .into_iter()
        .map(|(name, stage)| {
            let stage = lower.stage(name, stage);
            (stage.name.value.clone(), stage)
        })
        .collect();
    let images = manifest
        .images
        .into_iter()
        .map(|(name, image)| {
            let image = lower.image(name, image);
            (image.name.value.clone(), image)
        })
        .collect();
    let groups = manifest
        .groups
        .into_iter()
        .map(|(name, members)| {
            lower.name("group", &name);
            let group = Group {
                name: located(name),
                members: members.into_iter().map(located).collect(),
            };
            (group.name.value.clone(), group)
        })
        .collect();
    let checks = lower.lint(manifest.lint);
    Diagnostics::check(lower.errors)?;
    Ok(Project {
        source,
        context,
        platforms,
        args,
        arg_scope: lower.arg_scope,
        stages,
        images,
        groups,
        checks,
        source_map: lower.source_map,
    })
}

fn located<T>(spanned: Spanned<T>) -> Located<T> {
    let span = spanned.span();
    Located::new(spanned.into_inner(), span)
}

fn scalar(spanned: Spanned<Scalar>) -> Template {
    let span = spanned.span();
    Located::new(spanned.into_inner().to_text(), span)
}

fn has_variable(text: &str) -> bool {
    text.contains('$')
}

fn is_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Lowerer<'t> {
    source: Arc<SourceFile>,
    /// Checks `onbuild` triggers, which are Dockerfile instructions.
    triggers: &'t dyn TriggerSyntax,
    errors: Vec<Diagnostic>,
    arg_scope: ArgScope,
    source_map: SourceMap,
}

impl Lowerer<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        let error = self.source.error(span, message).with_help(help);
        self.errors.push(error);
    }

    /// Checks a stage, image or group name.
    fn name(&mut self, what: &str, name: &Spanned<String>) {
        let text = name.get_ref();
        let valid = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            self.error(
                name.span(),
                format!("invalid {what} name `{text}`"),
                format!(
                    "{what} names start with a letter or digit and use only lowercase letters, digits, `-`, `_` and `.`"
                ),
            );
        } else if what == "stage" && (text == "scratch" || text == "context") {
            self.error(
                name.span(),
                format!("`{text}` is a reserved name"),
                "`scratch` and `context` have a meaning in `from`; rename the stage",
            );
        }
    }

    fn platforms(&mut self, platforms: Vec<Spanned<String>>) -> Vec<Located<Platform>> {
        platforms
            .into_iter()
            .filter_map(|p| self.platform(&p).map(|value| Located::new(value, p.span())))
            .collect()
    }

    fn platform(&mut self, text: &Spanned<String>) -> Option<Platform> {
        match Platform::parse(text.get_ref()) {
            Ok(platform) => Some(platform),
            Err(e) => {
                self.error(
                    text.span(),
                    format!("invalid platform `{}`: {e}", text.get_ref()),
                    e.help(),
                );
                None
            }
        }
    }

    fn args(
        &mut self,
        args: IndexMap<Spanned<String>, Spanned<schema::ArgValue>>,
    ) -> IndexMap<String, Option<Template>> {
        args.into_iter()
            .filter_map(|(name, value)| {
                let span = value.span();
                let default = match value.into_inner() {
                    schema::ArgValue::Default(scalar) => Some(Located::new(scalar.to_text(), span)),
                    schema::ArgValue::Unset(_) => None,
                };
                if !self.arg_name(&name) {
                    return None;
                }
                self.source_map
                    .args
                    .insert(name.get_ref().clone(), name.span());
                Some((name.into_inner(), default))
            })
            .collect()
    }

    /// Checks an argument name; true when it may be declared.
    fn arg_name(&mut self, name: &Spanned<String>) -> bool {
        if !is_arg_name(name.get_ref()) {
            self.error(
                name.span(),
                format!("invalid argument name `{}`", name.get_ref()),
                "argument names are letters, digits and `_`, not starting with a digit",
            );
            false
        } else if PREDEFINED_ARGS.contains(&name.get_ref().as_str()) {
            self.error(
                name.span(),
                format!("`{}` is predefined", name.get_ref()),
                "imgbuild sets the TARGET* and BUILD* arguments from the platforms; use it without declaring it",
            );
            false
        } else {
            true
        }
    }

    fn stage(&mut self, name: Spanned<String>, stage: schema::Stage) -> Stage {
        self.name("stage", &name);
        if stage.from.get_ref().trim().is_empty() {
            self.error(
                stage.from.span(),
                "`from` is empty",
                "write an image reference, `scratch`, or `stage:NAME`",
            );
        } else {
            self.reference(&stage.from, true);
        }
        let platform = stage.platform.map(|p| {
            let span = p.span();
            let value = if p.get_ref() == "build" {
                StagePlatform::Build
            } else if has_variable(p.get_ref()) {
                StagePlatform::Fixed(p.into_inner())
            } else {
                let normalized = self.platform(&p).map(|p| p.to_string());
                StagePlatform::Fixed(normalized.unwrap_or_else(|| p.into_inner()))
            };
            Located::new(value, span)
        });
        let mut config = StageConfig {
            workdir: stage.workdir.map(located),
            user: stage.user.map(located),
            env: self.env_table(stage.env),
            shell: stage.shell.and_then(|s| self.shell(s)),
            entrypoint: stage
                .entrypoint
                .and_then(|c| self.command("entrypoint", c, true)),
            cmd: stage.cmd.and_then(|c| self.command("cmd", c, true)),
            labels: stage
                .labels
                .into_iter()
                .map(|(k, v)| (k.into_inner(), scalar(v)))
                .collect(),
            expose: stage.expose.into_iter().map(scalar).collect(),
            volumes: stage.volumes.into_iter().map(located).collect(),
            healthcheck: stage.healthcheck.and_then(|h| self.healthcheck(h)),
            stopsignal: stage.stopsignal.map(located),
            author: stage.author.map(located),
            onbuild: stage
                .onbuild
                .into_iter()
                .filter_map(|t| self.trigger(t))
                .collect(),
        };
        for port in &config.expose {
            let _ = self.port(port);
        }
        if let Some(signal) = &config.stopsignal {
            let _ = self.signal(signal);
        }
        let mut spans = Vec::with_capacity(stage.steps.len());
        let steps = stage
            .steps
            .into_iter()
            .filter_map(|step| {
                let span = step.span();
                let step = self.step(step)?;
                spans.push(span);
                Some(step)
            })
            .collect();
        self.source_map.steps.insert(name.get_ref().clone(), spans);
        config.volumes.retain(|v| !v.value.is_empty());
        Stage {
            name: located(name),
            from: located(stage.from),
            platform,
            config,
            steps,
        }
    }

    /// Reads `[lint]`; every rule it skips must exist.
    fn lint(&mut self, lint: Option<schema::Lint>) -> RuleSet {
        let Some(lint) = lint else {
            return RuleSet::default();
        };
        let mut rules = RuleSet {
            error: lint.error.is_some_and(|e| *e.get_ref()),
            ..RuleSet::default()
        };
        let names: Vec<&str> = crate::practice::rule_names().collect();
        for name in lint.skip.unwrap_or_default() {
            match name.get_ref().as_str() {
                "all" => rules.skip_all = true,
                known if names.contains(&known) => {
                    if !rules.skip.iter().any(|r| r == known) {
                        rules.skip.push(known.to_owned());
                    }
                }
                other => {
                    let help = if crate::lint::buildkit::RULES.iter().any(|r| r.name == other) {
                        format!(
                            "`{other}` is one of BuildKit's Dockerfile checks, which do not run on manifests; remove it"
                        )
                    } else {
                        suggest("lint rule", other, &names)
                    };
                    self.error(name.span(), format!("unknown lint rule `{other}`"), help);
                }
            }
        }
        rules
    }

    /// Checks an `onbuild` trigger: one Dockerfile instruction that may run
    /// in a later build.
    fn trigger(&mut self, trigger: Spanned<String>) -> Option<String> {
        match self.triggers.check(trigger.get_ref()) {
            Ok(()) => Some(trigger.into_inner()),
            Err(e) => {
                self.error(
                    trigger.span(),
                    format!("invalid `onbuild` trigger: {}", e.message),
                    e.help,
                );
                None
            }
        }
    }

    /// Checks an image reference that has no variables in it.
    fn reference(&mut self, reference: &Spanned<String>, allow_special: bool) {
        let text = reference.get_ref();
        if has_variable(text)
            || reference::is_local(text)
            || (allow_special && (text == "scratch" || text.starts_with("stage:")))
            || !text.contains([':', '/', '@', '.'])
        {
            // A bare word is a stage name or a short image name: ir::check decides.
            return;
        }
        if let Err(why) = reference::validate(text) {
            self.error(
                reference.span(),
                format!("invalid image reference `{text}`: {why}"),
                "write `[registry/]repository[:tag][@sha256:digest]`, e.g. `docker.io/library/alpine:3.20`",
            );
        }
    }

    fn env_table(
        &mut self,
        env: IndexMap<Spanned<String>, Spanned<Scalar>>,
    ) -> IndexMap<String, Template> {
        env.into_iter()
            .filter_map(|(name, value)| {
                if name.get_ref().is_empty() || name.get_ref().contains('=') {
                    self.error(
                        name.span(),
                        format!("invalid environment variable name `{}`", name.get_ref()),
                        "names must be non-empty and must not contain `=`",
                    );
                    return None;
                }
                Some((name.into_inner(), scalar(value)))
            })
            .collect()
    }

    fn shell(&mut self, shell: Spanned<Vec<String>>) -> Option<Vec<String>> {
        if shell.get_ref().is_empty() || shell.get_ref()[0].is_empty() {
            self.error(
                shell.span(),
                "`shell` is empty",
                "give the shell's argv prefix, e.g. `[\"/bin/bash\", \"-c\"]`",
            );
            return None;
        }
        Some(shell.into_inner())
    }

    fn command(
        &mut self,
        key: &str,
        command: Spanned<OneOrMany>,
        allow_empty: bool,
    ) -> Option<Command> {
        let span = command.span();
        let command = match command.into_inner() {
            OneOrMany::One(s) => Command::Shell(s),
            OneOrMany::Many(v) => Command::Exec(v),
        };
        let empty = match &command {
            Command::Shell(s) => s.trim().is_empty(),
            Command::Exec(v) => v.is_empty() || v[0].is_empty(),
        };
        if empty && !allow_empty {
            self.error(
                span,
                format!("`{key}` is empty"),
                "give a command: a string for the shell, or an argv list like `[\"make\", \"all\"]`",
            );
            return None;
        }
        Some(command)
    }

    fn healthcheck(&mut self, check: Spanned<schema::Healthcheck>) -> Option<Healthcheck> {
        let span = check.span();
        let check = check.into_inner();
        let test = match (check.test, check.disable) {
            (Some(test), false) => {
                if let OneOrMany::Many(argv) = test.get_ref()
                    && argv
                        .first()
                        .is_some_and(|a| a == "CMD" || a == "CMD-SHELL" || a == "NONE")
                {
                    self.error(
                        test.span(),
                        format!("`test` starts with `{}`", argv[0]),
                        "write the command itself: an argv list runs directly (Docker's CMD), a string runs in the shell (CMD-SHELL), and `disable = true` is NONE",
                    );
                    return None;
                }
                Some(self.command("test", test, false)?)
            }
            (None, true) => None,
            (Some(test), true) => {
                self.error(
                    test.span(),
                    "a health check cannot have both `test` and `disable = true`",
                    "remove `test` to turn the inherited check off, or `disable` to set one",
                );
                return None;
            }
            (None, false) => {
                self.error(
                    span,
                    "a health check needs `test`",
                    "add `test`, an argv list or a shell string, or `disable = true`",
                );
                return None;
            }
        };
        let retries = check
            .retries
            .and_then(|r| match u32::try_from(*r.get_ref()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        r.span(),
                        "`retries` must be a non-negative integer",
                        "write e.g. `retries = 3`",
                    );
                    None
                }
            });
        Some(Healthcheck {
            test,
            interval: self.duration(check.interval),
            timeout: self.duration(check.timeout),
            start_period: self.duration(check.start_period),
            start_interval: self.duration(check.start_interval),
            retries,
        })
    }

    fn duration(&mut self, text: Option<Spanned<String>>) -> Option<u64> {
        let text = text?;
        match parse_duration(text.get_ref()) {
            Some(nanos) => Some(nanos),
            None => {
                self.error(
                    text.span(),
                    format!("invalid duration `{}`", text.get_ref()),
                    "write a duration like `30s`, `1m30s`, `500ms` or `1h`",
                );
                None
            }
        }
    }

    /// Checks a port without variables; true when it is valid.
    fn port(&mut self, port: &Template) -> bool {
        if has_variable(&port.value) {
            return true;
        }
        let (ports, protocol) = match port.value.split_once('/') {
            Some((p, proto)) => (p, Some(proto)),
            None => (port.value.as_str(), None),
        };
        let valid_number = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
        let valid_ports = match ports.split_once('-') {
            Some((a, b)) => valid_number(a) && valid_number(b),
            None => valid_number(ports),
        };
        let valid_protocol = protocol.is_none_or(|p| ["tcp", "udp", "sctp"].contains(&p));
        if !valid_ports || !valid_protocol {
            self.error(
                port.span.clone(),
                format!("invalid port `{}`", port.value),
                "write a port or range with an optional lowercase protocol: `80`, `8000-8010`, `53/udp`",
            );
        }
        valid_ports && valid_protocol
    }

    /// Checks a stop signal; true when it is valid.
    fn signal(&mut self, signal: &Template) -> bool {
        let text = &signal.value;
        let valid = has_variable(text)
            || text.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n))
            || (text.starts_with("SIG")
                && text.len() > 3
                && text[3..]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-'));
        if !valid {
            self.error(
                signal.span.clone(),
                format!("invalid stop signal `{text}`"),
                "write a signal name like `SIGTERM` or a number from 1 to 64",
            );
        }
        valid
    }

    fn step(&mut self, step: Spanned<schema::Step>) -> Option<Step<Template>> {
        let span = step.span();
        let step = step.into_inner();
        let actions: Vec<(&str, Span)> = ACTIONS
            .iter()
            .zip([
                step.run.as_ref().map(Spanned::span),
                step.copy.as_ref().map(Spanned::span),
                step.add.as_ref().map(Spanned::span),
                step.file.as_ref().map(Spanned::span),
                step.env.as_ref().map(Spanned::span),
                step.workdir.as_ref().map(Spanned::span),
                step.user.as_ref().map(Spanned::span),
                step.shell.as_ref().map(Spanned::span),
                step.arg.as_ref().map(Spanned::span),
                step.label.as_ref().map(Spanned::span),
                step.expose.as_ref().map(Spanned::span),
                step.volume.as_ref().map(Spanned::span),
                step.stopsignal.as_ref().map(Spanned::span),
            ])
            .filter_map(|(name, span)| Some((*name, span?)))
            .collect();
        let action = match actions.as_slice() {
            [] => {
                self.error(
                    span,
                    "step has no action",
                    format!(
                        "give the step one of: {}",
                        ACTIONS.map(|a| format!("`{a}`")).join(", ")
                    ),
                );
                return None;
            }
            [(action, _)] => *action,
            [(first, _), (second, second_span), ..] => {
                self.error(
                    second_span.clone(),
                    format!("step has two actions, `{first}` and `{second}`"),
                    "a step does one thing: split it into two steps",
                );
                return None;
            }
        };
        // One span per entry of `OPTIONS`, in its order (the length is checked).
        let spans: [Option<Span>; OPTIONS.len()] = [
            step.default.as_ref().map(Spanned::span),
            step.to.as_ref().map(Spanned::span),
            step.from.as_ref().map(Spanned::span),
            step.chown.as_ref().map(Spanned::span),
            step.chmod.as_ref().map(Spanned::span),
            step.link.as_ref().map(Spanned::span),
            step.parents.as_ref().map(Spanned::span),
            step.exclude.as_ref().map(Spanned::span),
            step.checksum.as_ref().map(Spanned::span),
            step.keep_git_dir.as_ref().map(Spanned::span),
            step.mounts.as_ref().map(Spanned::span),
            step.network.as_ref().map(Spanned::span),
            step.expand.as_ref().map(Spanned::span),
            step.name.as_ref().map(Spanned::span),
        ];
        let options = OPTIONS.iter().zip(spans);
        let mut misplaced = false;
        for ((option, applies_to), option_span) in options {
            if let Some(option_span) = option_span
                && !applies_to.contains(&action)
            {
                misplaced = true;
                self.error(
                    option_span,
                    format!("`{option}` does not apply to a `{action}` step"),
                    format!(
                        "`{option}` is an option of {} steps; remove it or move it there",
                        applies_to
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
            }
        }
        if misplaced {
            return None;
        }
        match action {
            "run" => self.run(step),
            "copy" | "add" | "file" => self.copy(action, span, step),
            "env" => {
                let env = step.env?;
                let vars_span = env.span();
                let vars: IndexMap<String, Template> = env
                    .into_inner()
                    .into_iter()
                    .map(|(k, v)| (k, Located::new(v.to_text(), vars_span.clone())))
                    .collect();
                if let Some(bad) = vars.keys().find(|k| k.is_empty() || k.contains('=')) {
                    self.error(
                        vars_span,
                        format!("invalid environment variable name `{bad}`"),
                        "names must be non-empty and must not contain `=`",
                    );
                    return None;
                }
                Some(Step::Env { vars })
            }
            "workdir" => Some(Step::Workdir {
                path: located(step.workdir?),
            }),
            "user" => Some(Step::User {
                user: located(step.user?),
            }),
            "shell" => Some(Step::Shell {
                argv: self.shell(step.shell?)?,
            }),
            "label" => {
                let labels = step.label?;
                let labels_span = labels.span();
                let labels = labels
                    .into_inner()
                    .into_iter()
                    .map(|(k, v)| (k, Located::new(v.to_text(), labels_span.clone())))
                    .collect();
                Some(Step::Label { labels })
            }
            "expose" => {
                let ports: Vec<Template> =
                    step.expose?.into_inner().into_iter().map(scalar).collect();
                let valid = ports.iter().all(|p| self.port(p));
                valid.then_some(Step::Expose { ports })
            }
            "volume" => {
                let paths: Vec<Template> = step
                    .volume?
                    .into_inner()
                    .into_iter()
                    .map(located)
                    .filter(|v| !v.value.is_empty())
                    .collect();
                Some(Step::Volume { paths })
            }
            "stopsignal" => {
                let signal = located(step.stopsignal?);
                self.signal(&signal).then_some(Step::Stopsignal { signal })
            }
            "arg" => {
                let name = step.arg?;
                if PREDEFINED_ARGS.contains(&name.get_ref().as_str())
                    && self.arg_scope == ArgScope::Everywhere
                {
                    if let Some(default) = &step.default {
                        self.error(
                            default.span(),
                            format!("`{}` takes its value from the platform", name.get_ref()),
                            "remove `default`; declaring a predefined argument only makes it visible",
                        );
                        return None;
                    }
                    return Some(Step::Arg {
                        name: name.into_inner(),
                        default: None,
                    });
                }
                let predefined = PREDEFINED_ARGS.contains(&name.get_ref().as_str());
                (predefined || self.arg_name(&name)).then(|| Step::Arg {
                    name: name.into_inner(),
                    default: step.default.map(scalar),
                })
            }
            _ => unreachable!("every action is handled"),
        }
    }

    fn run(&mut self, step: schema::Step) -> Option<Step<Template>> {
        let command = self.command("run", step.run?, false)?;
        let interpreter = match &command {
            Command::Shell(script) if script.trim_end().contains('\n') => script
                .lines()
                .next()
                .and_then(|first| first.strip_prefix("#!"))
                .map(|i| i.trim().to_owned()),
            _ => None,
        };
        let network = match step.network {
            None => Network::Default,
            Some(n) => match n.get_ref().as_str() {
                "default" => Network::Default,
                "none" => Network::None,
                "host" => Network::Host,
                other => {
                    self.error(
                        n.span(),
                        format!("unknown network `{other}`"),
                        suggest("network", other, &["default", "none", "host"]),
                    );
                    return None;
                }
            },
        };
        let mounts = step
            .mounts
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.mount(m))
            .collect::<Option<Vec<_>>>()?;
        Some(Step::Run(Run {
            command,
            interpreter,
            mounts,
            network,
        }))
    }

    fn copy(&mut self, action: &str, span: Span, step: schema::Step) -> Option<Step<Template>> {
        let Some(to) = step.to.map(located) else {
            self.error(
                span,
                format!("`{action}` step has no `to`"),
                "add the destination, e.g. `to = \"/app/\"` (a trailing `/` makes it a directory)",
            );
            return None;
        };
        if to.value.is_empty() {
            self.error(
                to.span,
                "`to` is empty",
                "give a destination path such as `/app/`",
            );
            return None;
        }
        let chown = step.chown.map(scalar);
        let chmod = step.chmod.and_then(|m| self.mode_text(m));
        if action == "file" {
            let content = step.file.map(located)?;
            return Some(Step::File(File {
                to,
                name: step.name.map(located),
                content,
                expand: step.expand.is_some_and(Spanned::into_inner),
                chown,
                chmod,
            }));
        }
        let sources = if action == "copy" {
            step.copy?
        } else {
            step.add?
        };
        let sources_span = sources.span();
        let sources: Vec<Template> = sources
            .into_inner()
            .into_vec()
            .into_iter()
            .map(|s| Located::new(s, sources_span.clone()))
            .collect();
        if sources.is_empty() || sources.iter().any(|s| s.value.is_empty()) {
            self.error(
                sources_span,
                format!("`{action}` needs at least one non-empty source"),
                "list paths relative to the build context (or to `from`), e.g. `[\"src/\", \"Cargo.toml\"]`",
            );
            return None;
        }
        if let Some(from) = &step.from {
            self.reference(from, true);
        }
        if let Some(checksum) = step
            .checksum
            .as_ref()
            .filter(|c| !has_variable(c.get_ref()))
        {
            let valid = checksum
                .get_ref()
                .strip_prefix("sha256:")
                .is_some_and(|hex| {
                    hex.len() == 64
                        && hex
                            .chars()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                });
            if !valid {
                self.error(
                    checksum.span(),
                    format!("invalid checksum `{}`", checksum.get_ref()),
                    "write `sha256:` followed by 64 lowercase hex digits",
                );
            }
        }
        let copy = Copy {
            sources,
            to,
            from: step.from.map(located),
            chown,
            chmod,
            link: step.link.is_some_and(Spanned::into_inner),
            parents: step.parents.is_some_and(Spanned::into_inner),
            exclude: step
                .exclude
                .map(|e| {
                    let span = e.span();
                    e.into_inner()
                        .into_vec()
                        .into_iter()
                        .map(|p| Located::new(p, span.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            checksum: step.checksum.map(located),
            keep_git_dir: step.keep_git_dir.map(Spanned::into_inner),
        };
        Some(if action == "copy" {
            Step::Copy(copy)
        } else {
            Step::Add(copy)
        })
    }

    /// A `chmod` value as text, checked when it has no variables.
    fn mode_text(&mut self, mode: Spanned<Mode>) -> Option<Template> {
        let span = mode.span();
        let text = match mode.into_inner() {
            Mode::Integer(n) => match u32::try_from(n).ok().filter(|n| *n <= 0o7777) {
                Some(n) => format!("{n:04o}"),
                None => {
                    self.error(
                        span,
                        format!("invalid mode {n}"),
                        "a mode is at most `0o7777`",
                    );
                    return None;
                }
            },
            Mode::String(s) => s,
        };
        if !has_variable(&text) && parse_octal(&text).is_none() && !is_symbolic_mode(&text) {
            self.error(
                span,
                format!("invalid mode `{text}`"),
                "write octal digits like `\"0755\"` (or `0o755`), or a symbolic mode like `\"u+x,go-w\"`",
            );
            return None;
        }
        Some(Located::new(text, span))
    }

    /// A mount's numeric mode.
    fn mode_number(&mut self, mode: Option<Spanned<Mode>>) -> Result<Option<u32>, ()> {
        let Some(mode) = mode else { return Ok(None) };
        let span = mode.span();
        let value = match mode.into_inner() {
            Mode::Integer(n) => u32::try_from(n).ok().filter(|n| *n <= 0o7777),
            Mode::String(s) => parse_octal(&s),
        };
        if value.is_none() {
            self.error(
                span,
                "invalid mount mode",
                "write an octal mode like `0o755` or `\"0755\"`",
            );
            return Err(());
        }
        Ok(value)
    }

    fn id(&mut self, key: &str, value: Option<Spanned<i64>>) -> Result<Option<u32>, ()> {
        let Some(value) = value else { return Ok(None) };
        match u32::try_from(*value.get_ref()) {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                self.error(
                    value.span(),
                    format!("invalid `{key}` {}", value.get_ref()),
                    format!("`{key}` is a number from 0 to 4294967295"),
                );
                Err(())
            }
        }
    }

    fn mount(&mut self, mount: Spanned<schema::Mount>) -> Option<ir::Mount<Template>> {
        let span = mount.span();
        let m = mount.into_inner();
        let kind = m.kind.get_ref().as_str();
        let Some(allowed) = ir::mount_options(kind) else {
            let types: Vec<&str> = ir::MOUNT_OPTIONS.iter().map(|(t, _)| *t).collect();
            self.error(
                m.kind.span(),
                format!("unknown mount type `{kind}`"),
                suggest("mount type", kind, &types),
            );
            return None;
        };
        let present = [
            ("target", m.target.as_ref().map(Spanned::span)),
            ("id", m.id.as_ref().map(Spanned::span)),
            ("sharing", m.sharing.as_ref().map(Spanned::span)),
            ("from", m.from.as_ref().map(Spanned::span)),
            ("source", m.source.as_ref().map(Spanned::span)),
            ("mode", m.mode.as_ref().map(Spanned::span)),
            ("uid", m.uid.as_ref().map(Spanned::span)),
            ("gid", m.gid.as_ref().map(Spanned::span)),
            ("readonly", m.readonly.as_ref().map(Spanned::span)),
            ("env", m.env.as_ref().map(Spanned::span)),
            ("required", m.required.as_ref().map(Spanned::span)),
            ("size", m.size.as_ref().map(Spanned::span)),
            ("rw", m.rw.as_ref().map(Spanned::span)),
        ];
        let mut ok = true;
        for (key, key_span) in present {
            if let Some(key_span) = key_span
                && !allowed.contains(&key)
            {
                ok = false;
                let (message, help) = ir::mount_option_error(kind, key);
                self.error(key_span, message, help);
            }
        }
        let target = m.target.map(located);
        if target.is_none() && ["cache", "bind", "tmpfs"].contains(&kind) {
            ok = false;
            self.error(
                span.clone(),
                format!("`{kind}` mount has no `target`"),
                "add `target`, the path where the mount appears, e.g. `target = \"/root/.cache\"`",
            );
        }
        if kind == "secret" && target.is_none() && m.id.is_none() {
            ok = false;
            self.error(
                span.clone(),
                "`secret` mount has neither `id` nor `target`",
                "add `id`, the name given with `--secret id=NAME,src=FILE`",
            );
        }
        let sharing = match m.sharing {
            None => Sharing::Shared,
            Some(s) => match s.get_ref().as_str() {
                "shared" => Sharing::Shared,
                "private" => Sharing::Private,
                "locked" => Sharing::Locked,
                other => {
                    ok = false;
                    self.error(
                        s.span(),
                        format!("unknown sharing `{other}`"),
                        suggest("sharing mode", other, &["shared", "private", "locked"]),
                    );
                    Sharing::Shared
                }
            },
        };
        if let Some(from) = &m.from {
            self.reference(from, true);
        }
        let size = m.size.and_then(|s| {
            let parsed = match s.get_ref() {
                Scalar::Integer(n) => u64::try_from(*n).ok(),
                Scalar::String(text) => parse_size(text),
                _ => None,
            };
            if parsed.is_none() {
                ok = false;
                self.error(
                    s.span(),
                    "invalid tmpfs size",
                    "write a number of bytes or a size like `64m` or `1g`",
                );
            }
            parsed
        });
        let mode = self.mode_number(m.mode).ok()?;
        let uid = self.id("uid", m.uid).ok()?;
        let gid = self.id("gid", m.gid).ok()?;
        if !ok {
            return None;
        }
        let flag = |b: Option<Spanned<bool>>| b.is_some_and(Spanned::into_inner);
        let id = m.id.map(located);
        let from = m.from.map(located);
        let source = m.source.map(located);
        Some(match kind {
            "cache" => ir::Mount::Cache {
                target: target?,
                id,
                sharing,
                from,
                source,
                mode,
                uid,
                gid,
                readonly: flag(m.readonly),
            },
            "secret" => ir::Mount::Secret {
                id,
                target,
                env: m.env.map(located),
                required: flag(m.required),
                mode,
                uid,
                gid,
            },
            "bind" => ir::Mount::Bind {
                target: target?,
                source,
                from,
                rw: flag(m.rw),
            },
            "tmpfs" => ir::Mount::Tmpfs {
                target: target?,
                size,
            },
            _ => ir::Mount::Ssh {
                id,
                target,
                required: flag(m.required),
                mode,
                uid,
                gid,
            },
        })
    }

    fn image(&mut self, name: Spanned<String>, image: schema::Image) -> Image {
        self.name("image", &name);
        let stage = image.stage;
        let stage_span = stage.span();
        let stage_name = stage.into_inner();
        let stage_name = stage_name
            .strip_prefix("stage:")
            .map(str::to_owned)
            .unwrap_or(stage_name);
        for tag in &image.tags {
            self.reference(tag, false);
            if !has_variable(tag.get_ref())
                && !tag.get_ref().contains(['/', ':', '.'])
                && let Err(why) = reference::validate(tag.get_ref())
            {
                self.error(
                    tag.span(),
                    format!("invalid tag `{}`: {why}", tag.get_ref()),
                    "write `[registry/]repository[:tag]`, e.g. `registry.example.com/app:1.0`",
                );
            }
        }
        let platforms = self.platforms(image.platforms.unwrap_or_default());
        let table = |t: IndexMap<Spanned<String>, Spanned<Scalar>>| {
            t.into_iter()
                .map(|(k, v)| (k.into_inner(), scalar(v)))
                .collect()
        };
        Image {
            name: located(name),
            stage: Located::new(stage_name, stage_span),
            tags: image.tags.into_iter().map(located).collect(),
            platforms,
            labels: table(image.labels),
            annotations: table(image.annotations),
        }
    }
}

/// Whether `text` is a symbolic mode such as `u+x,go-w` or `a=rX`.
fn is_symbolic_mode(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|clause| {
            let who_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
            let (who, rest) = clause.split_at(who_end);
            who.chars().all(|c| "ugoa".contains(c))
                && !rest.is_empty()
                && rest.chars().all(|c| "+-=rwxXstugo".contains(c))
        })
}

#[cfg(test)]
mod tests;
