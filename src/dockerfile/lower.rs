//! Lowers a parsed Dockerfile to an [`ir::Project`], the same IR the TOML
//! front end builds, so planning and building are shared.
//!
//! Each `FROM` starts a stage (named by `AS`, else by its index). `RUN`,
//! `COPY`, `ADD`, `ENV`, `ARG`, `WORKDIR`, `USER`, `SHELL`, and the config
//! instructions whose values are expanded (`LABEL`, `EXPOSE`, `VOLUME`,
//! `STOPSIGNAL`, and `MAINTAINER` as a label) become steps, so each sees the
//! variables of its own position; `ENTRYPOINT`, `CMD`, `HEALTHCHECK` and
//! `ONBUILD` set the stage's image config. Variables stay templates for the
//! plan to expand, with `BuildKit`'s argument scoping ([`ArgScope::Declared`]);
//! quotes and escapes are removed here (see [`super::word`]). Every stage
//! becomes an image of the same name, and the group `default` holds the last
//! stage, so `--target STAGE` works.
//!
//! Errors are collected, not returned at the first one, and each names the
//! line and column of the offending instruction or flag.

use std::sync::Arc;

use indexmap::IndexMap;

use super::mount::{self, MountError};
use super::onbuild;
use super::parse::{Dockerfile, Heredoc, Instruction, InstructionArgs, heredoc_word};
use super::word::{self, HeredocText, WordError, has_variable};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, suggest};
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::trigger::LoweredTrigger;
use crate::ir::value::parse_duration;
use crate::ir::{
    self, ArgScope, Command, Copy, File, Group, Healthcheck, Image, Located, Network, Project, Run,
    SourceMap, Span, Stage, StageConfig, StagePlatform, Step, Template,
};
use crate::lint::RuleSet;

/// The instructions imgbuild reads, for suggestions.
const INSTRUCTIONS: [&str; 18] = [
    "from",
    "run",
    "copy",
    "add",
    "env",
    "arg",
    "workdir",
    "user",
    "shell",
    "label",
    "expose",
    "volume",
    "entrypoint",
    "cmd",
    "healthcheck",
    "stopsignal",
    "maintainer",
    "onbuild",
];

/// The flags each instruction takes.
const FLAGS: [(&str, &[&str]); 5] = [
    ("from", &["platform"]),
    ("run", &["mount", "network", "security"]),
    (
        "copy",
        &["from", "chown", "chmod", "link", "parents", "exclude"],
    ),
    (
        "add",
        &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "exclude",
            "keep-git-dir",
        ],
    ),
    (
        "healthcheck",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    ),
];

/// Where one instruction landed in the project: the stage it belongs to
/// (`None` before the first `FROM`) and the steps it added to that stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Index of the stage in [`Project::stages`].
    pub stage: Option<usize>,
    /// The steps the instruction added; empty for `FROM` and stage settings.
    pub steps: std::ops::Range<usize>,
}

/// Lowers `dockerfile`, parsed from `source`, or returns every error found.
pub fn lower(dockerfile: &Dockerfile, source: Arc<SourceFile>) -> Result<Project, Diagnostics> {
    lower_placed(dockerfile, source).map(|(project, _)| project)
}

/// Like [`lower`], and also says where each instruction landed, one
/// [`Placement`] per instruction, so `convert` can put comments in place.
pub fn lower_placed(
    dockerfile: &Dockerfile,
    source: Arc<SourceFile>,
) -> Result<(Project, Vec<Placement>), Diagnostics> {
    let mut lower = Lowerer {
        source: Arc::clone(&source),
        escape: dockerfile.directives.escape,
        errors: Vec::new(),
        args: IndexMap::new(),
        arg_spans: IndexMap::new(),
        stages: Vec::new(),
    };
    let mut placements = Vec::with_capacity(dockerfile.instructions.len());
    for inst in &dockerfile.instructions {
        let stages_before = lower.stages.len();
        let steps_before = lower.stages.last().map_or(0, |s| s.steps.len());
        lower.instruction(inst);
        let start = if lower.stages.len() == stages_before {
            steps_before
        } else {
            0
        };
        placements.push(Placement {
            stage: lower.stages.len().checked_sub(1),
            steps: start..lower.stages.last().map_or(0, |s| s.steps.len()),
        });
    }
    if lower.stages.is_empty() && lower.errors.is_empty() {
        lower.errors.push(
            source
                .error(0..0, "dockerfile contains no stages to build")
                .with_help("start a stage with `FROM IMAGE` (or `FROM scratch`)"),
        );
    }
    Diagnostics::check(lower.errors)?;
    let mut source_map = SourceMap {
        args: lower.arg_spans,
        ..SourceMap::default()
    };
    for (inst, placement) in dockerfile.instructions.iter().zip(&placements) {
        if let Some(stage) = placement.stage.and_then(|i| lower.stages.get(i)) {
            let spans = source_map
                .steps
                .entry(stage.name.value.clone())
                .or_default();
            spans.extend(placement.steps.clone().map(|_| inst.span.clone()));
        }
    }
    // An invalid `# check=` directive is the build checks' to report.
    let checks = dockerfile
        .directives
        .check
        .as_deref()
        .and_then(|value| RuleSet::parse(value).ok())
        .unwrap_or_default();
    let stages: IndexMap<String, Stage> = lower
        .stages
        .into_iter()
        .map(|s| (s.name.value.clone(), s))
        .collect();
    let mut images: IndexMap<String, Image> = IndexMap::new();
    for stage in stages.values() {
        images.insert(
            stage.name.value.clone(),
            Image {
                name: stage.name.clone(),
                stage: stage.name.clone(),
                tags: Vec::new(),
                platforms: Vec::new(),
                labels: IndexMap::new(),
                annotations: IndexMap::new(),
            },
        );
    }
    let mut groups = IndexMap::new();
    if let Some(last) = stages.values().last()
        && !images.contains_key("default")
    {
        groups.insert(
            "default".to_owned(),
            Group {
                name: Located::new("default".to_owned(), last.name.span.clone()),
                members: vec![last.name.clone()],
            },
        );
    }
    let project = Project {
        source,
        context: Located::new(".".to_owned(), 0..0),
        platforms: Vec::new(),
        args: lower.args,
        arg_scope: ArgScope::Declared,
        stages,
        images,
        groups,
        checks,
        source_map,
    };
    Diagnostics::check(ir::check(&project))?;
    Ok((project, placements))
}

/// Lowers the `ONBUILD` trigger `trigger` (one Dockerfile instruction, as an
/// image stores it) for a stage of a project whose stages are `stages`, in
/// order, so `--from=INDEX` and stage names resolve. Errors point into the
/// trigger's text, named `ONBUILD trigger`.
pub(super) fn lower_trigger(trigger: &str, stages: &[&str]) -> Result<LoweredTrigger, Diagnostics> {
    let source = Arc::new(SourceFile::new("ONBUILD trigger", trigger));
    let inst = onbuild::parse_trigger(trigger).map_err(|e| {
        Diagnostics::from(source.error(0..trigger.len(), e.message).with_help(e.help))
    })?;
    let placeholder = |name: &str| Stage {
        name: Located::new(name.to_owned(), 0..0),
        from: Located::new("scratch".to_owned(), 0..0),
        platform: None,
        config: StageConfig::default(),
        steps: Vec::new(),
    };
    let mut lower = Lowerer {
        source: Arc::clone(&source),
        escape: '\\',
        errors: Vec::new(),
        args: IndexMap::new(),
        arg_spans: IndexMap::new(),
        stages: stages.iter().map(|name| placeholder(name)).collect(),
    };
    lower.stages.push(placeholder(""));
    lower.instruction(&inst);
    Diagnostics::check(lower.errors)?;
    let stage = lower.stages.pop().expect("the trigger's stage");
    Ok(LoweredTrigger {
        steps: stage.steps,
        config: stage.config,
    })
}

struct Lowerer {
    source: Arc<SourceFile>,
    escape: char,
    errors: Vec<Diagnostic>,
    /// Global `ARG`s, declared before the first `FROM`.
    args: IndexMap<String, Option<Template>>,
    /// Where each global `ARG` name was written.
    arg_spans: IndexMap<String, Span>,
    stages: Vec<Stage>,
}

/// Flag values of one instruction, by name, each with the span of its `--flag`.
type Flags = Vec<(String, Option<String>, Span)>;

impl Lowerer {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        let error = self.source.error(span, message).with_help(help);
        self.errors.push(error);
    }

    /// The span of the instruction's first line, for errors about all of it.
    fn line_span(&self, inst: &Instruction) -> Span {
        let text = &self.source.text[inst.span.clone()];
        let end = text
            .find('\n')
            .map_or(inst.span.end, |i| inst.span.start + i);
        inst.span.start..end
    }

    /// The span of `needle` in the instruction at or after `*from`, advancing
    /// `*from` past it; the first line when it cannot be found.
    fn locate(&self, inst: &Instruction, needle: &str, from: &mut usize) -> Span {
        let start = (*from).clamp(inst.span.start, inst.span.end);
        match self.source.text[start..inst.span.end].find(needle) {
            Some(i) if !needle.is_empty() => {
                let span = start + i..start + i + needle.len();
                *from = span.end;
                span
            }
            _ => self.line_span(inst),
        }
    }

    /// Where the body of each of `inst`'s heredocs is in the source, in order.
    fn heredoc_bodies(&self, inst: &Instruction) -> Vec<Span> {
        let text = &self.source.text[inst.span.clone()];
        let command_lines = (inst.end_line + 1).saturating_sub(inst.line + inst.heredoc_lines());
        let mut offset: usize = text
            .split_inclusive('\n')
            .take(command_lines)
            .map(str::len)
            .sum();
        let mut bodies = Vec::with_capacity(inst.heredocs.len());
        for heredoc in &inst.heredocs {
            let end = (offset + heredoc.content.len()).min(text.len());
            bodies.push(inst.span.start + offset..inst.span.start + end);
            let delimiter = text[end..].split_inclusive('\n').next().map_or(0, str::len);
            offset = end + delimiter;
        }
        bodies
    }

    /// Converts a word to a template, reporting an error at `span`.
    fn template(&mut self, raw: &str, span: Span, quotes: bool) -> Option<Template> {
        match word::template(raw, self.escape, quotes) {
            Ok(value) => Some(Located::new(value, span)),
            Err(WordError { message, help }) => {
                self.error(span, message, help);
                None
            }
        }
    }

    /// Converts the raw word `raw`, found in `inst` after `*cursor`.
    fn word(&mut self, inst: &Instruction, raw: &str, cursor: &mut usize) -> Option<Template> {
        let span = self.locate(inst, raw, cursor);
        self.template(raw, span, true)
    }

    /// Checks the instruction's flags against those it takes; `None` after an error.
    fn flags(&mut self, inst: &Instruction) -> Option<Flags> {
        let allowed: &[&str] = FLAGS
            .iter()
            .find(|(name, _)| *name == inst.name)
            .map_or(&[], |(_, flags)| flags);
        let mut cursor = inst.span.start;
        let mut flags = Vec::new();
        let mut ok = true;
        for (name, value) in &inst.flags {
            let written = match value {
                Some(v) => format!("--{name}={v}"),
                None => format!("--{name}"),
            };
            let span = self.locate(inst, &written, &mut cursor);
            if !allowed.contains(&name.as_str()) {
                ok = false;
                let keyword = inst.name.to_uppercase();
                let help = if allowed.is_empty() {
                    format!("`{keyword}` takes no flags; remove it")
                } else {
                    let names: Vec<String> = allowed.iter().map(|f| format!("--{f}")).collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    suggest("flag", &format!("--{name}"), &names)
                };
                self.error(
                    span,
                    format!("unknown flag `--{name}` for `{keyword}`"),
                    help,
                );
                continue;
            }
            flags.push((name.clone(), value.clone(), span));
        }
        ok.then_some(flags)
    }

    fn instruction(&mut self, inst: &Instruction) {
        let keyword = inst.name.to_uppercase();
        if inst.name == "from" {
            self.from(inst);
            return;
        }
        if !INSTRUCTIONS.contains(&inst.name.as_str()) {
            self.error(
                self.line_span(inst),
                format!("unknown instruction `{keyword}`"),
                suggest("instruction", &inst.name, &INSTRUCTIONS),
            );
            return;
        }
        if self.stages.is_empty() {
            if inst.name == "arg" {
                self.global_arg(inst);
            } else {
                self.error(
                    self.line_span(inst),
                    format!("`{keyword}` before the first `FROM`"),
                    "only `ARG` may come before `FROM`; start a stage with `FROM IMAGE` first",
                );
            }
            return;
        }
        let Some(flags) = self.flags(inst) else {
            return;
        };
        match inst.name.as_str() {
            "run" => self.run(inst, &flags),
            "copy" | "add" => self.copy(inst, &flags),
            "healthcheck" => self.healthcheck(inst, &flags),
            "onbuild" => self.onbuild(inst),
            _ => self.setting(inst),
        }
    }

    fn stage(&mut self) -> &mut Stage {
        self.stages.last_mut().expect("a stage has started")
    }

    /// The name of the stage a `--from`/`FROM` value refers to, if it names
    /// an earlier stage by name or index.
    fn earlier_stage(&self, value: &str) -> Option<String> {
        if let Ok(index) = value.parse::<usize>() {
            return self.stages.get(index).map(|s| s.name.value.clone());
        }
        let lower = value.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.value == lower)
            .map(|s| s.name.value.clone())
    }

    /// A `FROM`/`--from` value as the IR writes it: `stage:NAME` for an
    /// earlier stage, else the image reference.
    fn source_ref(&self, value: String) -> String {
        match self.earlier_stage(&value) {
            Some(name) => format!("stage:{name}"),
            None => value,
        }
    }

    /// A literal `FROM` value as the IR writes it. Unlike `--from`, `BuildKit`
    /// looks a base up among the earlier stages' names exactly (they are
    /// lowercase), never by index: `FROM Build` and `FROM 0` name images,
    /// invalid or not there, so they are errors here, in `BuildKit`'s words.
    fn base_ref(&mut self, from: &Template) -> Option<String> {
        let value = &from.value;
        let index = value.bytes().all(|b| b.is_ascii_digit());
        if let Some(stage) = self
            .stages
            .iter()
            .find(|s| !index && s.name.value == *value)
        {
            return Some(format!("stage:{}", stage.name.value));
        }
        match self.earlier_stage(value) {
            Some(stage) if index => {
                self.error(
                    from.span.clone(),
                    format!("`FROM {value}` names an image, not stage {stage}: stages are found by name only"),
                    format!("BuildKit reads `{value}` as the image `docker.io/library/{value}`; name the stage with `AS NAME` and write `FROM NAME`"),
                );
                None
            }
            Some(stage) => {
                self.error(
                    from.span.clone(),
                    format!("failed to parse stage name {value:?}: invalid reference format: repository name must be lowercase"),
                    format!("`FROM` finds a stage by its name exactly (stage names are lowercase); write `FROM {stage}`"),
                );
                None
            }
            None => Some(value.clone()),
        }
    }

    fn from(&mut self, inst: &Instruction) {
        let Some(flags) = self.flags(inst) else {
            return;
        };
        let words = match &inst.args {
            InstructionArgs::Words(w) => w.clone(),
            _ => Vec::new(),
        };
        let mut cursor = after_flags(inst, &flags);
        let (image, name) = match words.as_slice() {
            [image] => (image, None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image, Some(name)),
            _ => {
                self.error(
                    self.line_span(inst),
                    "`FROM` takes an image and an optional `AS NAME`",
                    "write `FROM IMAGE` or `FROM IMAGE AS NAME`",
                );
                return;
            }
        };
        let Some(mut from) = self.word(inst, image, &mut cursor) else {
            return;
        };
        if !has_variable(&from.value) {
            let Some(base) = self.base_ref(&from) else {
                return;
            };
            from.value = base;
        }
        let index = self.stages.len();
        let name = match name {
            Some(name) => {
                let span = self.locate(inst, name, &mut cursor);
                let lower = name.to_ascii_lowercase();
                let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                    && lower
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    self.error(
                        span,
                        format!("invalid stage name `{name}`"),
                        "stage names start with a letter and use only letters, digits, `-`, `_` and `.`",
                    );
                    return;
                }
                if lower == "scratch" || lower == "context" {
                    self.error(
                        span,
                        format!("`{lower}` is a reserved name"),
                        "`scratch` and `context` have a meaning in `FROM`; rename the stage",
                    );
                    return;
                }
                if self.stages.iter().any(|s| s.name.value == lower) {
                    self.error(
                        span,
                        format!("duplicate stage name `{lower}`"),
                        "each stage needs its own name; rename one",
                    );
                    return;
                }
                Located::new(lower, span)
            }
            None => Located::new(index.to_string(), self.line_span(inst)),
        };
        let mut platform = None;
        for (flag, value, span) in flags {
            debug_assert_eq!(flag, "platform");
            let value = value.unwrap_or_default();
            platform = match value.as_str() {
                "$BUILDPLATFORM" | "${BUILDPLATFORM}" => {
                    Some(Located::new(StagePlatform::Build, span))
                }
                "$TARGETPLATFORM" | "${TARGETPLATFORM}" => None,
                _ => {
                    let Some(t) = self.template(&value, span.clone(), true) else {
                        return;
                    };
                    Some(Located::new(StagePlatform::Fixed(t.value), span))
                }
            };
        }
        self.stages.push(Stage {
            name,
            from,
            platform,
            config: StageConfig::default(),
            steps: Vec::new(),
        });
    }

    /// Reads `ARG` words: `(name, default)` pairs with the name's span.
    fn arg_words(&mut self, inst: &Instruction) -> Vec<(Located<String>, Option<Template>)> {
        let InstructionArgs::Words(words) = &inst.args else {
            self.error(
                self.line_span(inst),
                "`ARG` needs a name",
                "write `ARG NAME` or `ARG NAME=default`",
            );
            return Vec::new();
        };
        let mut cursor = inst.span.start + 3;
        let mut out = Vec::new();
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n, Some(d)),
                None => (w.as_str(), None),
            };
            let span = self.locate(inst, name, &mut cursor);
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error(
                    span,
                    format!("invalid argument name `{name}`"),
                    "argument names are letters, digits and `_`, not starting with a digit",
                );
                continue;
            }
            let default = match default {
                Some(d) => {
                    let span = self.locate(inst, d, &mut cursor);
                    match self.template(d, span, true) {
                        Some(t) => Some(t),
                        None => continue,
                    }
                }
                None => None,
            };
            out.push((Located::new(name.to_owned(), span), default));
        }
        out
    }

    fn global_arg(&mut self, inst: &Instruction) {
        if !inst.flags.is_empty() {
            let _ = self.flags(inst);
            return;
        }
        for (name, default) in self.arg_words(inst) {
            // Without a value, a predefined argument keeps the platform's value.
            if default.is_none() && PREDEFINED_ARGS.contains(&name.value.as_str()) {
                continue;
            }
            self.arg_spans.insert(name.value.clone(), name.span);
            self.args.insert(name.value, default);
        }
    }

    /// `ONBUILD INSTRUCTION`: stored in the image config as Docker does.
    fn onbuild(&mut self, inst: &Instruction) {
        let InstructionArgs::Onbuild(inner) = &inst.args else {
            self.error(
                self.line_span(inst),
                "ONBUILD requires at least one argument",
                "write e.g. `ONBUILD RUN make` or `ONBUILD COPY . /app`",
            );
            return;
        };
        if let Err((message, help)) = onbuild::check_inner(inner) {
            self.error(self.line_span(inst), message, help);
            return;
        }
        let expression = onbuild::expression(inst);
        if let Err(e) = onbuild::parse_trigger(&expression) {
            self.error(self.line_span(inst), e.message, e.help);
            return;
        }
        self.stage().config.onbuild.push(expression);
    }

    fn run(&mut self, inst: &Instruction, flags: &Flags) {
        let mut mounts = Vec::new();
        let mut network = Network::Default;
        for (flag, value, span) in flags {
            let value = value.clone().unwrap_or_default();
            match flag.as_str() {
                // `sandbox` is BuildKit's default, which imgbuild always is.
                "security" if value == "sandbox" => {}
                "security" if value == "insecure" => {
                    self.error(
                        span.clone(),
                        "`RUN --security=insecure` (BuildKit's dockerfile frontend 1.20, labs since 1.1.2, with the `security.insecure` entitlement) is not supported by imgbuild",
                        "imgbuild runs every step unprivileged in its own namespaces; remove the flag (or write `--security=sandbox`), or run the privileged work outside the build",
                    );
                    return;
                }
                "security" => {
                    self.error(
                        span.clone(),
                        format!("security {value:?} is not valid"),
                        "write `--security=sandbox` (the default) or `--security=insecure`",
                    );
                    return;
                }
                "network" => {
                    network = match value.as_str() {
                        "default" => Network::Default,
                        "none" => Network::None,
                        "host" => Network::Host,
                        other => {
                            self.error(
                                span.clone(),
                                format!("unknown network `{other}`"),
                                suggest("network", other, &["default", "none", "host"]),
                            );
                            return;
                        }
                    };
                }
                _ => match self.mount(&value, span) {
                    Some(m) => mounts.push(m),
                    None => return,
                },
            }
        }
        let command = match &inst.args {
            InstructionArgs::Json(argv) => Command::Exec(argv.clone()),
            InstructionArgs::Shell(text) if inst.heredocs.is_empty() => {
                Command::Shell(text.clone())
            }
            InstructionArgs::Shell(text) => Command::Shell(heredoc_script(text, &inst.heredocs)),
            _ => {
                self.error(
                    self.line_span(inst),
                    "`RUN` needs a command",
                    "write `RUN COMMAND`, `RUN [\"EXECUTABLE\", \"ARG\"]` or `RUN <<EOF`",
                );
                return;
            }
        };
        let interpreter = match &command {
            Command::Shell(script) if script.trim_end().contains('\n') => script
                .lines()
                .next()
                .and_then(|first| first.strip_prefix("#!"))
                .map(|i| i.trim().to_owned()),
            _ => None,
        };
        self.stage().steps.push(Step::Run(Run {
            command,
            interpreter,
            mounts,
            network,
        }));
    }

    fn mount(&mut self, value: &str, span: &Span) -> Option<ir::Mount<Template>> {
        let escape = self.escape;
        let template = |raw: &str| {
            word::template(raw, escape, false).map_err(|e| MountError {
                message: e.message,
                help: e.help,
            })
        };
        let stage_ref = |v: &str| self.source_ref(v.to_owned());
        match mount::parse(value, &template, &stage_ref) {
            Ok(m) => Some(m.map(&mut |s| Located::new(s, span.clone()))),
            Err(MountError { message, help }) => {
                self.error(span.clone(), format!("invalid `--mount`: {message}"), help);
                None
            }
        }
    }

    fn copy(&mut self, inst: &Instruction, flags: &Flags) {
        let keyword = inst.name.to_uppercase();
        let words = match &inst.args {
            InstructionArgs::Json(w) | InstructionArgs::Words(w) => w.clone(),
            _ => Vec::new(),
        };
        let quotes = matches!(inst.args, InstructionArgs::Words(_));
        if words.len() < 2 {
            self.error(
                self.line_span(inst),
                format!("`{keyword}` needs a source and a destination"),
                format!("write `{keyword} SOURCE... DEST`"),
            );
            return;
        }
        let mut copy = Copy {
            sources: Vec::new(),
            to: Located::new(String::new(), 0..0),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            exclude: Vec::new(),
            checksum: None,
            keep_git_dir: None,
        };
        for (flag, value, span) in flags {
            let text = || value.clone().unwrap_or_default();
            let boolean = || match value.as_deref() {
                None | Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            };
            match flag.as_str() {
                "link" | "parents" | "keep-git-dir" => {
                    let Some(on) = boolean() else {
                        self.error(
                            span.clone(),
                            format!("invalid `--{flag}` value"),
                            format!("write `--{flag}`, `--{flag}=true` or `--{flag}=false`"),
                        );
                        return;
                    };
                    if flag == "link" {
                        copy.link = on;
                    } else if flag == "keep-git-dir" {
                        copy.keep_git_dir = Some(on);
                    } else {
                        copy.parents = on;
                    }
                }
                "from" => {
                    let Some(mut t) = self.template(&text(), span.clone(), true) else {
                        return;
                    };
                    // BuildKit reads `--from` before expanding anything.
                    if has_variable(&t.value) {
                        self.error(
                            span.clone(),
                            "variable expansion is not supported for --from",
                            "define a new stage with FROM using ARG from global scope as a workaround: `ARG SRC=build` before the first `FROM`, `FROM ${SRC} AS src`, then `COPY --from=src`",
                        );
                        return;
                    }
                    t.value = self.source_ref(t.value);
                    copy.from = Some(t);
                }
                "chown" => copy.chown = self.template(&text(), span.clone(), true),
                "chmod" => copy.chmod = self.template(&text(), span.clone(), true),
                "checksum" => copy.checksum = self.template(&text(), span.clone(), true),
                _ => {
                    let Some(t) = self.template(&text(), span.clone(), true) else {
                        return;
                    };
                    copy.exclude.push(t);
                }
            }
        }
        let mut cursor = after_flags(inst, flags);
        let mut files = Vec::new();
        let (dest, sources) = words.split_last().expect("two words or more");
        let mut located_sources = Vec::new();
        for raw in sources {
            let span = self.locate(inst, raw, &mut cursor);
            if let Some(heredoc) = quotes.then(|| heredoc_for(raw, &inst.heredocs)).flatten() {
                files.push((heredoc, span));
            } else {
                located_sources.push((raw, span));
            }
        }
        let dest_span = self.locate(inst, dest, &mut cursor);
        if quotes && heredoc_word(dest).is_some() {
            self.error(
                dest_span,
                format!("{keyword} cannot accept a heredoc as a destination"),
                format!("write the destination path last: `{keyword} <<EOF /path/to/file`"),
            );
            return;
        }
        let Some(to) = self.template(dest, dest_span, quotes) else {
            return;
        };
        for (raw, span) in located_sources {
            if let Some(t) = self.template(raw, span, quotes) {
                copy.sources.push(t);
            }
        }
        let into_dir = to.value.ends_with('/') || to.value == "." || sources.len() > 1;
        let bodies = self.heredoc_bodies(inst);
        for (heredoc, span) in files {
            let body = heredoc.chomped_content();
            let body_span = inst
                .heredocs
                .iter()
                .position(|h| std::ptr::eq(h, heredoc))
                .and_then(|i| bodies.get(i).cloned())
                .unwrap_or_else(|| span.clone());
            let (content, expand) = if heredoc.expand {
                match word::heredoc_text(&body) {
                    Ok(HeredocText::Literal(text)) => (text, false),
                    Ok(HeredocText::Template(template)) => (template, true),
                    Err(WordError { message, help }) => {
                        self.error(body_span, message, help);
                        continue;
                    }
                }
            } else {
                (body, false)
            };
            let path = if into_dir {
                format!("{}/{}", to.value.trim_end_matches('/'), heredoc.name)
            } else {
                to.value.clone()
            };
            self.stage().steps.push(Step::File(File {
                to: Located::new(path, to.span.clone()),
                name: (!into_dir).then(|| Located::new(heredoc.name.clone(), span.clone())),
                content: Located::new(content, body_span),
                expand,
                chown: copy.chown.clone(),
                chmod: copy.chmod.clone(),
            }));
        }
        if copy.sources.is_empty() {
            return;
        }
        copy.to = to;
        let step = if inst.name == "copy" {
            Step::Copy(copy)
        } else {
            Step::Add(copy)
        };
        self.stage().steps.push(step);
    }

    fn healthcheck(&mut self, inst: &Instruction, flags: &Flags) {
        let InstructionArgs::Healthcheck { kind, cmd } = &inst.args else {
            self.error(
                self.line_span(inst),
                "`HEALTHCHECK` needs `CMD` or `NONE`",
                "write `HEALTHCHECK [OPTIONS] CMD COMMAND` or `HEALTHCHECK NONE`",
            );
            return;
        };
        let mut check = Healthcheck {
            test: None,
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        };
        for (flag, value, span) in flags {
            let value = value.clone().unwrap_or_default();
            if flag == "retries" {
                match value.parse() {
                    Ok(n) => check.retries = Some(n),
                    Err(_) => {
                        self.error(
                            span.clone(),
                            format!("invalid `--retries={value}`"),
                            "write a non-negative integer, e.g. `--retries=3`",
                        );
                        return;
                    }
                }
                continue;
            }
            let Some(nanos) = parse_duration(&value) else {
                self.error(
                    span.clone(),
                    format!("invalid duration `--{flag}={value}`"),
                    "write a duration like `30s`, `1m30s`, `500ms` or `1h`",
                );
                return;
            };
            let field = match flag.as_str() {
                "interval" => &mut check.interval,
                "timeout" => &mut check.timeout,
                "start-period" => &mut check.start_period,
                _ => &mut check.start_interval,
            };
            *field = Some(nanos);
        }
        match kind.to_ascii_uppercase().as_str() {
            "NONE" => {}
            "CMD" => {
                check.test = Some(match cmd.as_ref() {
                    InstructionArgs::Json(argv) if !argv.is_empty() => Command::Exec(argv.clone()),
                    InstructionArgs::Shell(text) => Command::Shell(text.clone()),
                    _ => {
                        self.error(
                            self.line_span(inst),
                            "`HEALTHCHECK CMD` needs a command",
                            "write `HEALTHCHECK CMD COMMAND` or `HEALTHCHECK CMD [\"EXECUTABLE\", \"ARG\"]`",
                        );
                        return;
                    }
                });
            }
            other => {
                self.error(
                    self.line_span(inst),
                    format!("unknown health check type `{other}`"),
                    "write `HEALTHCHECK [OPTIONS] CMD COMMAND` or `HEALTHCHECK NONE`",
                );
                return;
            }
        }
        self.stage().config.healthcheck = Some(check);
    }

    /// The instructions without flags: `ENV`, `ARG`, `WORKDIR`, `USER`,
    /// `SHELL` (steps) and the image settings.
    fn setting(&mut self, inst: &Instruction) {
        let keyword = inst.name.to_uppercase();
        let mut cursor = inst.span.start + keyword.len();
        let missing = |this: &mut Self| {
            this.error(
                this.line_span(inst),
                format!("`{keyword}` needs an argument"),
                "see the Dockerfile reference for its form",
            );
        };
        match (inst.name.as_str(), &inst.args) {
            ("env", InstructionArgs::KeyValues { pairs, .. }) => {
                let mut vars = IndexMap::new();
                for (key, value) in pairs {
                    let Some(key) = self.word(inst, key, &mut cursor) else {
                        return;
                    };
                    let Some(value) = self.word(inst, value, &mut cursor) else {
                        return;
                    };
                    vars.insert(key.value, value);
                }
                self.stage().steps.push(Step::Env { vars });
            }
            ("label", InstructionArgs::KeyValues { pairs, .. }) => {
                let mut labels = IndexMap::new();
                for (key, value) in pairs {
                    let Some(key) = self.word(inst, key, &mut cursor) else {
                        return;
                    };
                    if has_variable(&key.value) {
                        self.error(
                            key.span,
                            "variables in `LABEL` keys (which BuildKit's dockerfile frontend expands, since 1.0) are not supported by imgbuild yet",
                            "write the key literally; the value may use variables",
                        );
                        return;
                    }
                    let Some(value) = self.word(inst, value, &mut cursor) else {
                        return;
                    };
                    labels.insert(key.value, value);
                }
                self.stage().steps.push(Step::Label { labels });
            }
            ("maintainer", InstructionArgs::Shell(text)) => {
                // BuildKit's `dispatchMaintainer`: the config's `author`,
                // taken literally (no variable expansion); the last one wins.
                let span = self.line_span(inst);
                let value = text.replace('$', "\\$");
                self.stage().config.author = Some(Located::new(value, span));
            }
            ("arg", _) => {
                for (name, default) in self.arg_words(inst) {
                    self.stage().steps.push(Step::Arg {
                        name: name.value,
                        default,
                    });
                }
            }
            ("workdir" | "user" | "stopsignal", InstructionArgs::Shell(text)) => {
                let Some(value) = self.word(inst, text, &mut cursor) else {
                    return;
                };
                let stage = self.stage();
                match inst.name.as_str() {
                    "workdir" => stage.steps.push(Step::Workdir { path: value }),
                    "user" => stage.steps.push(Step::User { user: value }),
                    _ => stage.steps.push(Step::Stopsignal { signal: value }),
                }
            }
            ("shell", InstructionArgs::Json(argv)) if !argv.is_empty() => {
                let argv = argv.clone();
                self.stage().steps.push(Step::Shell { argv });
            }
            ("shell", _) => self.error(
                self.line_span(inst),
                "`SHELL` must be a JSON array",
                "write e.g. `SHELL [\"/bin/bash\", \"-c\"]`",
            ),
            ("expose", InstructionArgs::Words(words)) => {
                let ports = words
                    .iter()
                    .filter_map(|w| self.word(inst, w, &mut cursor))
                    .collect();
                self.stage().steps.push(Step::Expose { ports });
            }
            ("volume", InstructionArgs::Words(words) | InstructionArgs::Json(words)) => {
                let quotes = matches!(inst.args, InstructionArgs::Words(_));
                let mut paths = Vec::new();
                for w in words {
                    let span = self.locate(inst, w, &mut cursor);
                    if let Some(volume) = self.template(w, span, quotes) {
                        paths.push(volume);
                    }
                }
                self.stage().steps.push(Step::Volume { paths });
            }
            ("entrypoint" | "cmd", args) => {
                let command = match args {
                    InstructionArgs::Json(argv) => Command::Exec(argv.clone()),
                    InstructionArgs::Shell(text) => Command::Shell(text.clone()),
                    _ => Command::Exec(Vec::new()),
                };
                let config = &mut self.stage().config;
                if inst.name == "entrypoint" {
                    config.entrypoint = Some(command);
                    config.cmd = None;
                } else {
                    config.cmd = Some(command);
                }
            }
            _ => missing(self),
        }
    }
}

/// Where an instruction's arguments start: after its keyword and flags.
fn after_flags(inst: &Instruction, flags: &Flags) -> usize {
    flags
        .iter()
        .map(|(_, _, span)| span.end)
        .max()
        .unwrap_or(inst.span.start + inst.name.len())
}

/// The script a heredoc `RUN` runs, as `BuildKit`'s `dispatchRun` makes it.
/// When the whole command is one heredoc word (`RUN <<EOF`, `RUN <<-'EOT'`),
/// the first heredoc's body is the script (tabs stripped for `<<-`); a body
/// starting with `#!` then runs as a file, by its interpreter. Any other
/// command (`RUN python3 <<EOF`, `RUN <<A 3<<B awk -f -`, `RUN cat <<A | tr
/// ... > x`) goes to the shell whole: the command line, then each heredoc's
/// body as written and its delimiter line, so the shell reads the heredocs
/// (pipes, file descriptors, `<<-`, quoting) itself.
fn heredoc_script(line: &str, heredocs: &[Heredoc]) -> String {
    if let Some(first) = heredocs.first()
        && heredoc_word(line).is_some()
    {
        return first.chomped_content();
    }
    let mut script = line.to_owned();
    for heredoc in heredocs {
        script.push('\n');
        script.push_str(&heredoc.content);
        script.push_str(&heredoc.name);
    }
    script
}

/// The heredoc a `COPY`/`ADD` source word such as `<<EOF`, `<<-EOF` or
/// `<<"EOF"` introduces, as `BuildKit` looks it up: by the word's delimiter,
/// the last heredoc of that name winning.
fn heredoc_for<'h>(word: &str, heredocs: &'h [Heredoc]) -> Option<&'h Heredoc> {
    let name = heredoc_word(word)?.name;
    heredocs.iter().rev().find(|h| h.name == name)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod heredoc_tests;
