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
//!
//! This module walks the instructions and reads their flags; one module per
//! family lowers them: `from` (`FROM`, `ARG`, `ONBUILD`), `run`, `copy`
//! (`COPY`, `ADD`) and `config` (`HEALTHCHECK` and the settings).

mod config;
mod copy;
mod from;
mod run;

use std::sync::Arc;

use indexmap::IndexMap;

use super::onbuild;
use super::parse::{Dockerfile, Instruction};
use super::word::{self, WordError};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, suggest};
use crate::ir::trigger::LoweredTrigger;
use crate::ir::{
    self, ArgScope, Group, Image, Located, Project, SourceMap, Span, Stage, StageConfig, Template,
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
}

/// Where an instruction's arguments start: after its keyword and flags.
fn after_flags(inst: &Instruction, flags: &Flags) -> usize {
    flags
        .iter()
        .map(|(_, _, span)| span.end)
        .max()
        .unwrap_or(inst.span.start + inst.name.len())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod heredoc_tests;
