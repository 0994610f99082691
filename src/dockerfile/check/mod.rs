//! `BuildKit`'s build checks over a parsed Dockerfile, with its rule names,
//! messages and semantics (`frontend/dockerfile/linter` and the checks in
//! `dockerfile2llb`), reported as [`Finding`]s.
//!
//! The checks walk the file as `BuildKit` dispatches it: global arguments
//! first, then every stage in order, tracking the variables each
//! instruction sees (the base's environment, `ARG` and `ENV`), so
//! `UndefinedVar` and `UndefinedArgInFrom` know what is declared. The
//! `# check=` directive sets the file's [`RuleSet`]; a `# check=skip=...`
//! comment right above an instruction skips rules for that instruction only.
//!
//! One difference: imgbuild cannot read a registry image's config without
//! pulling it, so in a stage whose base's environment is unknown (a
//! registry image, or a base with `ONBUILD` triggers) `UndefinedVar` does
//! not run, rather than report every variable the base defines.
//!
//! This module walks the file; `stage` checks `FROM` and stages, and
//! `instruction` the instructions inside a stage.

mod instruction;
mod stage;

use std::cell::RefCell;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use indexmap::IndexMap;

use super::DockerfileError;
use super::parse::{Dockerfile, Instruction, InstructionArgs};
use super::shell::ShellLex;
use crate::context::PatternMatcher;
use crate::diagnostic::{SourceFile, closest};
use crate::ir::{Platform, Project, Span};
use crate::lint::buildkit::{
    FROM_AS_CASING, MAINTAINER_DEPRECATED, NO_EMPTY_CONTINUATION, STAGE_NAME_CASING, UNDEFINED_VAR,
};
use crate::lint::{Finding, Report, Rule, RuleSet};
use crate::practice;

/// What the checks need to know besides the file.
#[derive(Debug, Clone)]
pub struct CheckOptions<'a> {
    /// `--build-arg` values.
    pub args: &'a IndexMap<String, String>,
    /// The platform being built.
    pub target: Platform,
    /// The platform of the machine that builds.
    pub host: Platform,
    /// The context's `.dockerignore`, for `CopyIgnoredFile`.
    pub ignore: Option<&'a PatternMatcher>,
    /// Where relative paths of local base images start.
    pub base_dir: &'a Path,
}

/// Runs the build checks on `dockerfile`, parsed from `source`. Fails only
/// when the `# check=` directive cannot be read.
pub fn check(
    dockerfile: &Dockerfile,
    source: &SourceFile,
    options: &CheckOptions<'_>,
) -> Result<Vec<Finding>, DockerfileError> {
    let rules = match &dockerfile.directives.check {
        Some(value) => RuleSet::parse(value).map_err(|e| {
            let line = directive_line(&source.text, "check");
            DockerfileError::new(
                line,
                1,
                format!("failed to parse check options: {e}"),
                "write `# check=skip=RULE,RULE;error=true` (or `skip=all`)",
            )
        })?,
        None => RuleSet::default(),
    };
    let mut checker = Checker {
        source,
        options,
        lex: ShellLex::new(dockerfile.directives.escape),
        report: Report::new(source.name.clone(), rules),
        stages: Vec::new(),
        by_name: HashMap::new(),
    };
    checker.run(dockerfile);
    Ok(checker.report.into_findings())
}

/// Whether `path` is absolute on `os`, as `BuildKit`'s `system.IsAbs`
/// judges a `WORKDIR`, `COPY` or `ADD` path: on Windows a drive letter is
/// dropped (only `C:` is allowed; `C:` alone, `C:dir`, other drives and
/// UNC paths are not absolute) and `\` counts as `/`.
fn is_absolute(path: &str, os: &str) -> bool {
    if os != "windows" {
        return path.starts_with('/');
    }
    let slashed = |p: &str| p.replace('\\', "/");
    let bytes = path.as_bytes();
    if bytes.len() == 2 && bytes[1] == b':' {
        return false;
    }
    if slashed(path).starts_with("//") {
        return false;
    }
    match path.split_once(':') {
        None => slashed(path).starts_with('/'),
        Some((drive, rest)) => drive.eq_ignore_ascii_case("c") && slashed(rest).starts_with('/'),
    }
}

/// The 1-based line of the parser directive `name` near the top of `text`.
fn directive_line(text: &str, name: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix('#')
                .and_then(|rest| rest.trim_start().get(..name.len()))
                .is_some_and(|key| key.eq_ignore_ascii_case(name))
        })
        .map_or(1, |i| i + 1)
}

/// The variables one instruction sees, and what the stage has declared.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// Environment and arguments with values, in the order they were set.
    env: IndexMap<String, String>,
    /// Whether `env` holds everything the base defines.
    env_known: bool,
    /// Arguments declared in the stage (or the stages it starts from).
    declared: Vec<String>,
    /// A `WORKDIR` has been set in this file.
    workdir_set: bool,
    /// A shell is set for shell-form commands (`SHELL`, or the base's).
    shell_set: bool,
    /// The stage's operating system, which says what an absolute path is.
    os: String,
}

/// What one stage tracks of its own instructions: where the last `CMD`,
/// `ENTRYPOINT` and `HEALTHCHECK` were, and whether it has `ONBUILD`
/// triggers (which the stages starting from it run).
#[derive(Debug, Default)]
struct Trackers {
    cmd: Option<(usize, usize)>,
    entrypoint: Option<(usize, usize)>,
    healthcheck: Option<(usize, usize)>,
    onbuild: bool,
}

/// A word expanded the way `BuildKit` does, with the variables it used.
struct Expanded {
    text: String,
    matched: Vec<String>,
    unmatched: Vec<String>,
}

struct Checker<'a> {
    source: &'a SourceFile,
    options: &'a CheckOptions<'a>,
    lex: ShellLex,
    report: Report,
    /// Finished stages, in order.
    stages: Vec<StageState>,
    /// Stage indexes by lowercase name.
    by_name: HashMap<String, usize>,
}

impl Checker<'_> {
    /// Line and column of an instruction.
    pub(super) fn at(&self, inst: &Instruction) -> (usize, usize) {
        self.source.line_column(inst.span.start)
    }

    /// The file's rules, with those a `# check=` comment above `inst` skips.
    pub(super) fn rules_for(&self, inst: &Instruction) -> RuleSet {
        local_rules(&inst.comments).map_or_else(
            || self.report.rules().clone(),
            |local| self.report.rules().merged(&local),
        )
    }

    pub(super) fn add(
        &mut self,
        rules: &RuleSet,
        rule: &Rule,
        message: String,
        inst: &Instruction,
    ) {
        let (line, column) = self.at(inst);
        self.report.add_under(rules, rule, message, line, column);
    }

    pub(super) fn expand(&self, word: &str, env: &IndexMap<String, String>) -> Option<Expanded> {
        let matched = RefCell::new(Vec::new());
        let unmatched = RefCell::new(Vec::new());
        let lookup = |name: &str| {
            let value = env.get(name).cloned();
            let list = if value.is_some() {
                &matched
            } else {
                &unmatched
            };
            let mut list = list.borrow_mut();
            if !list.iter().any(|n: &String| n == name) {
                list.push(name.to_owned());
            }
            value
        };
        let text = self.lex.process_word(word, &lookup).ok()?;
        Some(Expanded {
            text,
            matched: matched.into_inner(),
            unmatched: unmatched.into_inner(),
        })
    }

    pub(super) fn run(&mut self, dockerfile: &Dockerfile) {
        for warning in &dockerfile.warnings {
            let line = warning
                .strip_prefix("line ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let rules = self.report.rules().clone();
            self.report.add_under(
                &rules,
                &NO_EMPTY_CONTINUATION,
                "Empty continuation line".to_owned(),
                line,
                1,
            );
        }
        let first_from = dockerfile
            .instructions
            .iter()
            .position(|i| i.name == "from")
            .unwrap_or(dockerfile.instructions.len());
        let (globals, staged) = dockerfile.instructions.split_at(first_from);
        for inst in staged {
            self.parse_time(inst);
        }
        self.stage_names(staged);
        self.casing(staged);

        // Global arguments: the predefined ones, then the file's.
        let predefined = self.predefined();
        let defaults = self.meta_args(globals, &predefined, false);
        let (global_env, declared_globals) = self.meta_args(globals, &predefined, true);
        self.default_bases(staged, &defaults.0);
        let mut from_keys: Vec<String> = global_env.keys().cloned().collect();
        for name in declared_globals {
            if !from_keys.contains(&name) {
                from_keys.push(name);
            }
        }

        let mut current: Option<(StageState, Trackers, String)> = None;
        for inst in staged {
            if inst.name == "from" {
                if let Some((state, trackers, name)) = current.take() {
                    self.finish_stage(state, &trackers, &name);
                }
                current = Some(self.from(inst, &global_env, &from_keys));
                continue;
            }
            if let Some((state, trackers, _)) = &mut current {
                self.instruction(inst, state, trackers, &global_env);
            }
        }
        if let Some((state, trackers, name)) = current.take() {
            self.finish_stage(state, &trackers, &name);
        }
    }

    pub(super) fn finish_stage(&mut self, mut state: StageState, trackers: &Trackers, name: &str) {
        // Stages starting from this one run its triggers, whose effect on
        // the variables is not followed here.
        state.env_known &= !trackers.onbuild;
        if !name.is_empty() {
            self.by_name.insert(name.to_owned(), self.stages.len());
        }
        self.stages.push(state);
    }

    /// Checks `BuildKit` runs while parsing: `MaintainerDeprecated`,
    /// `StageNameCasing`, `FromAsCasing`.
    pub(super) fn parse_time(&mut self, inst: &Instruction) {
        let rules = self.rules_for(inst);
        if inst.name == "maintainer" {
            self.add(
                &rules,
                &MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".to_owned(),
                inst,
            );
        }
        if inst.name != "from" {
            return;
        }
        let InstructionArgs::Words(words) = &inst.args else {
            return;
        };
        let [_, as_word, name] = words.as_slice() else {
            return;
        };
        if *name != name.to_lowercase() {
            self.add(
                &rules,
                &STAGE_NAME_CASING,
                format!("Stage name '{name}' should be lowercase"),
                inst,
            );
        }
        let from_word = keyword(inst);
        let consistent_from =
            from_word == from_word.to_lowercase() || from_word == from_word.to_uppercase();
        let matches = if from_word == from_word.to_lowercase() {
            *as_word == as_word.to_lowercase()
        } else {
            *as_word == as_word.to_uppercase()
        };
        if consistent_from && !matches {
            self.add(
                &rules,
                &FROM_AS_CASING,
                format!("'{as_word}' and '{from_word}' keywords' casing do not match"),
                inst,
            );
        }
    }

    /// `UndefinedVar` for the variables of a word that neither the stage's
    /// variables nor its declared arguments define.
    pub(super) fn undefined(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        unmatched: &[String],
    ) {
        if !state.env_known {
            return;
        }
        for name in unmatched {
            if state.declared.contains(name) {
                continue;
            }
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(near) = closest(name, state.env.keys().map(String::as_str)) {
                let _ = write!(message, " (did you mean ${near}?)");
            }
            self.add(rules, &UNDEFINED_VAR, message, inst);
        }
    }

    /// Expands `word` with the stage's variables, reporting undefined ones.
    pub(super) fn expand_checked(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        word: &str,
    ) -> Option<String> {
        let expanded = self.expand(word, &state.env)?;
        self.undefined(rules, inst, state, &expanded.unmatched);
        Some(expanded.text)
    }
}

/// Runs the best-practice rules ([`crate::practice`]) on `project`,
/// lowered from `dockerfile`: under the file's `# check=` directive, and
/// under the `# check=skip=` comment above an instruction for what that
/// instruction wrote.
pub fn practice(
    project: &Project,
    dockerfile: &Dockerfile,
    options: &CheckOptions<'_>,
) -> Vec<Finding> {
    let local: Vec<(Span, RuleSet)> = dockerfile
        .instructions
        .iter()
        .filter_map(|inst| Some((inst.span.clone(), local_rules(&inst.comments)?)))
        .collect();
    practice::check(
        project,
        &practice::Options {
            syntax: practice::Syntax::Dockerfile,
            args: options.args,
            local: &local,
        },
    )
}

/// The rules a `check=` comment above an instruction skips, if it has one.
fn local_rules(comments: &[String]) -> Option<RuleSet> {
    for comment in comments {
        let Some((key, value)) = comment.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("check") {
            continue;
        }
        let value = value.trim();
        let value = value.split(' ').next().unwrap_or_default();
        return RuleSet::parse(value).ok();
    }
    None
}

/// The instruction's keyword as written (`FROM`, `from`, `From`).
fn keyword(inst: &Instruction) -> &str {
    let original = inst.original.trim_start();
    original
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
}

/// The lowercase stage name of a `FROM ... AS NAME`.
fn stage_name(inst: &Instruction) -> Option<String> {
    match &inst.args {
        InstructionArgs::Words(words) if words.len() == 3 => Some(words[2].to_lowercase()),
        _ => None,
    }
}

/// The image word of a `FROM`.
fn base_word(inst: &Instruction) -> Option<String> {
    match &inst.args {
        InstructionArgs::Words(words) => words.first().cloned(),
        _ => None,
    }
}

/// The `(name, default)` pairs of an `ARG`, as written.
fn arg_pairs(inst: &Instruction) -> Vec<(String, Option<String>)> {
    match &inst.args {
        InstructionArgs::Words(words) => words
            .iter()
            .map(|w| match w.split_once('=') {
                Some((name, default)) => (name.to_owned(), Some(default.to_owned())),
                None => (w.clone(), None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_remote(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://") || path.starts_with("git@")
}

/// Go's `%q` for the strings these messages quote.
fn go_quote(text: &str) -> String {
    format!("{text:?}")
}

#[cfg(test)]
mod tests;
