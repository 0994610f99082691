//! Writes an [`ir::Project`](crate::ir::Project) as `imgbuild.toml` text.
//!
//! The output is for people to read and edit: `[build]` and `[args]` first,
//! then one `[stages.NAME]` table per stage with its settings and one step
//! per line as an inline table, then `[images.*]` and `[groups]`. Scripts
//! and file contents with several lines are multi-line literal strings
//! (`'''`), or escaped multi-line strings when a literal cannot hold them.
//! [`Comments`] go above the part of the manifest they describe.
//!
//! Every field of the IR is written: the IR types are destructured without
//! `..`, so a new field does not compile until it is written here. The one
//! field left out is derived again when the manifest is read: a `run`
//! step's interpreter comes from its script's `#!` line. The output is
//! deterministic: the same project and comments give the same bytes.
//!
//! This module writes the project, its stages and images; `steps` writes
//! the steps, and `text` the TOML strings, keys and comments.

mod steps;
mod text;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;

use indexmap::IndexMap;
use text::{comment_text, healthcheck_lines, toml_key, toml_string};

use crate::ir::{
    ArgScope, Command, Group, Healthcheck, Image, Located, Project, Span, Stage, StageConfig,
    StagePlatform, Template,
};

/// Lines longer than this are broken where the format allows.
const WIDTH: usize = 100;

/// Indentation of a step in `steps = [ ... ]`.
const STEP_INDENT: &str = "  ";

/// Indentation of a mount on its own line inside a step.
const MOUNT_INDENT: &str = "      ";

/// A part of the manifest a comment can be written above.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// A key of `[args]`.
    Arg(String),
    /// The `[stages.NAME]` table.
    Stage(String),
    /// A stage setting such as `cmd` or `labels`, by stage and key.
    Setting {
        /// The stage's name.
        stage: String,
        /// The setting's key in the stage table.
        key: &'static str,
    },
    /// A step, by stage and position from 0.
    Step {
        /// The stage's name.
        stage: String,
        /// The step's position in the stage, from 0.
        index: usize,
    },
    /// The `[images.NAME]` table.
    Image(String),
    /// A key of `[groups]`.
    Group(String),
}

/// Comment lines to write into a manifest, by what they describe.
///
/// A line is a comment as written (`# text`); an empty line separates two
/// paragraphs. Lines whose anchor does not appear in the manifest (a
/// setting a later instruction cleared, say) are written at the end of the
/// stage they belong to, or else of the file, so no comment is lost.
#[derive(Debug, Clone, Default)]
pub struct Comments {
    /// Lines at the top of the file.
    pub header: Vec<String>,
    /// Lines above a part of the manifest.
    pub above: IndexMap<Anchor, Vec<String>>,
    /// Lines at the end of the file.
    pub footer: Vec<String>,
}

impl Comments {
    /// Adds `lines` above `anchor`, after any already there.
    pub fn add(&mut self, anchor: Anchor, lines: impl IntoIterator<Item = String>) {
        let entry = self.above.entry(anchor).or_default();
        let lines: Vec<String> = lines.into_iter().collect();
        if !entry.is_empty() && !lines.is_empty() {
            entry.push(String::new());
        }
        entry.extend(lines);
    }
}

/// A written manifest and where its values came from.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// The manifest text.
    pub text: String,
    /// For each value written from a located IR value, its byte range in
    /// `text` and the span it had in the project's source, so an error about
    /// the manifest can point back at the source.
    pub origins: Vec<(Range<usize>, Span)>,
}

impl Emitted {
    /// The source span of the innermost value written at `offset` in the
    /// text, or of the nearest one before it.
    pub fn origin_of(&self, offset: usize) -> Option<Span> {
        let containing = self
            .origins
            .iter()
            .filter(|(range, _)| range.start <= offset && offset < range.end.max(range.start + 1))
            .min_by_key(|(range, _)| range.len());
        containing
            .or_else(|| {
                self.origins
                    .iter()
                    .filter(|(range, _)| range.start <= offset)
                    .max_by_key(|(range, _)| range.start)
            })
            .map(|(_, span)| span.clone())
    }
}

/// Writes `project` as a manifest with `comments` in place.
pub fn emit(project: &Project, comments: &Comments) -> Emitted {
    let mut w = Writer {
        out: String::new(),
        origins: Vec::new(),
        comments,
        used: HashSet::new(),
    };
    w.project(project);
    Emitted {
        text: w.out,
        origins: w.origins,
    }
}

/// A position in the output, to undo a layout that turned out too wide.
struct Mark {
    len: usize,
    origins: usize,
}

struct Writer<'c> {
    out: String,
    origins: Vec<(Range<usize>, Span)>,
    comments: &'c Comments,
    used: HashSet<&'c Anchor>,
}

impl Writer<'_> {
    pub(super) fn push(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            origins: self.origins.len(),
        }
    }

    pub(super) fn rollback(&mut self, mark: &Mark) {
        self.out.truncate(mark.len);
        self.origins.truncate(mark.origins);
    }

    /// The width of the line being written, in characters.
    pub(super) fn column(&self) -> usize {
        let start = self.out.rfind('\n').map_or(0, |i| i + 1);
        self.out[start..].chars().count()
    }

    /// Whether everything written since `mark` stays on lines within [`WIDTH`].
    pub(super) fn fits_since(&self, mark: &Mark) -> bool {
        let line_start = self.out[..mark.len].rfind('\n').map_or(0, |i| i + 1);
        self.out[line_start..]
            .lines()
            .all(|line| line.chars().count() <= WIDTH)
    }

    pub(super) fn string(&mut self, text: &str) {
        let encoded = toml_string(text);
        self.push(&encoded);
    }

    /// Writes a located string and records where it came from.
    pub(super) fn template(&mut self, template: &Template) {
        let start = self.out.len();
        self.string(&template.value);
        self.origin(start, &template.span);
    }

    pub(super) fn origin(&mut self, start: usize, span: &Span) {
        let end = self.out.len();
        self.origins.push((start..end, span.clone()));
    }

    pub(super) fn key(&mut self, key: &str) {
        let key = toml_key(key);
        self.push(&key);
    }

    /// Writes the comment lines of `anchor`, each line indented by `indent`.
    pub(super) fn comments(&mut self, anchor: &Anchor, indent: &str) {
        let comments = self.comments;
        if let Some((anchor, lines)) = comments.above.get_key_value(anchor)
            && self.used.insert(anchor)
        {
            self.comment_lines(lines, indent);
        }
    }

    pub(super) fn comment_lines(&mut self, lines: &[String], indent: &str) {
        let mut blank = true;
        for (i, line) in lines.iter().enumerate() {
            let line = comment_text(line);
            if line.is_empty() {
                // A paragraph break: one blank line, never first or last.
                if !blank && i + 1 < lines.len() {
                    self.push("\n");
                    blank = true;
                }
                continue;
            }
            self.push(indent);
            self.push(&line);
            self.push("\n");
            blank = false;
        }
    }

    /// `[lint]`, from a Dockerfile's `# check=` directive: the rules it
    /// skips that are manifest rules (`BuildKit`'s checks run on
    /// Dockerfiles only), and `error`.
    pub(super) fn lint(&mut self, checks: &crate::lint::RuleSet) {
        let skip: Vec<String> = if checks.skip_all {
            vec![toml_string("all")]
        } else {
            checks
                .skip
                .iter()
                .filter(|name| crate::practice::rule_names().any(|rule| rule == *name))
                .map(|name| toml_string(name))
                .collect()
        };
        if skip.is_empty() && !checks.error {
            return;
        }
        self.push("[lint]\n");
        if !skip.is_empty() {
            self.push(&format!("skip = [{}]\n", skip.join(", ")));
        }
        if checks.error {
            self.push("error = true\n");
        }
        self.blank_line();
    }

    /// Ends a table: one blank line before the next.
    pub(super) fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.push("\n");
        }
    }

    pub(super) fn project(&mut self, project: &Project) {
        let Project {
            source: _,
            context,
            platforms,
            args,
            arg_scope,
            stages,
            images,
            groups,
            checks,
            source_map: _,
        } = project;
        let comments = self.comments;
        if !comments.header.is_empty() {
            self.comment_lines(&comments.header, "");
            self.blank_line();
        }
        let declared = *arg_scope == ArgScope::Declared;
        if context.value != "." || !platforms.is_empty() || declared {
            self.push("[build]\n");
            if context.value != "." {
                self.push("context = ");
                self.template(context);
                self.push("\n");
            }
            if !platforms.is_empty() {
                self.push("platforms = ");
                let texts: Vec<Located<String>> = platforms
                    .iter()
                    .map(|p| Located::new(p.value.to_string(), p.span.clone()))
                    .collect();
                self.array(&texts, "");
                self.push("\n");
            }
            if declared {
                self.push("arg_scope = \"declared\"\n");
            }
            self.blank_line();
        }
        if !args.is_empty() {
            self.push("[args]\n");
            for (name, default) in args {
                self.comments(&Anchor::Arg(name.clone()), "");
                self.key(name);
                match default {
                    Some(default) => {
                        self.push(" = ");
                        self.template(default);
                        self.push("\n");
                    }
                    None => self.push(" = {}\n"),
                }
            }
            self.blank_line();
        }
        self.lint(checks);
        for stage in stages.values() {
            self.stage(stage);
            self.blank_line();
        }
        for image in images.values() {
            self.image(image);
            self.blank_line();
        }
        if !groups.is_empty() {
            let first = groups.keys().next().expect("groups is not empty");
            self.comments(&Anchor::Group(first.clone()), "");
            self.push("[groups]\n");
            for (i, group) in groups.values().enumerate() {
                self.group(group, i > 0);
            }
            self.blank_line();
        }
        let unused: Vec<&Vec<String>> = comments
            .above
            .iter()
            .filter(|(anchor, _)| !self.used.contains(anchor))
            .map(|(_, lines)| lines)
            .collect();
        for lines in unused {
            self.comment_lines(lines, "");
        }
        self.comment_lines(&comments.footer, "");
        while self.out.ends_with("\n\n") {
            self.out.pop();
        }
    }

    pub(super) fn stage(&mut self, stage: &Stage) {
        let Stage {
            name,
            from,
            platform,
            config,
            steps,
        } = stage;
        let stage_name = &name.value;
        self.comments(&Anchor::Stage(stage_name.clone()), "");
        let start = self.out.len();
        let header = format!("stages.{}", toml_key(stage_name));
        let _ = writeln!(self.out, "[{header}]");
        self.origin(start, &name.span);
        self.push("from = ");
        self.template(from);
        self.push("\n");
        if let Some(platform) = platform {
            self.push("platform = ");
            let start = self.out.len();
            match &platform.value {
                StagePlatform::Build => self.string("build"),
                StagePlatform::Fixed(text) => self.string(text),
            }
            self.origin(start, &platform.span);
            self.push("\n");
        }
        let tables = self.config(stage_name, config);
        if !steps.is_empty() {
            self.push("steps = [\n");
            for (index, step) in steps.iter().enumerate() {
                self.comments(
                    &Anchor::Step {
                        stage: stage_name.clone(),
                        index,
                    },
                    STEP_INDENT,
                );
                self.push(STEP_INDENT);
                self.step(step);
                self.push(",\n");
            }
            self.push("]\n");
        }
        for (key, table) in tables {
            self.blank_line();
            self.comments(
                &Anchor::Setting {
                    stage: stage_name.clone(),
                    key,
                },
                "",
            );
            let _ = writeln!(self.out, "[{header}.{key}]");
            self.push(&table);
        }
        // Comments on settings the stage does not end up with (a `CMD` an
        // `ENTRYPOINT` cleared): keep them with the stage.
        let comments = self.comments;
        let leftover: Vec<&Anchor> = comments
            .above
            .keys()
            .filter(|a| matches!(a, Anchor::Setting { stage, .. } if stage == stage_name))
            .filter(|a| !self.used.contains(a))
            .collect();
        for anchor in leftover {
            self.comments(anchor, "");
        }
    }

    /// Writes the stage settings as keys; returns those too long for one
    /// line, as `(key, table body)`, to write as sub-tables after the steps.
    pub(super) fn config(
        &mut self,
        stage: &str,
        config: &StageConfig<Template>,
    ) -> Vec<(&'static str, String)> {
        let StageConfig {
            workdir,
            user,
            env,
            shell,
            entrypoint,
            cmd,
            labels,
            expose,
            volumes,
            healthcheck,
            stopsignal,
            author,
            onbuild,
        } = config;
        let mut tables = Vec::new();
        let setting = |key: &'static str| Anchor::Setting {
            stage: stage.to_owned(),
            key,
        };
        if let Some(workdir) = workdir {
            self.comments(&setting("workdir"), "");
            self.push("workdir = ");
            self.template(workdir);
            self.push("\n");
        }
        if let Some(user) = user {
            self.comments(&setting("user"), "");
            self.push("user = ");
            self.template(user);
            self.push("\n");
        }
        if !env.is_empty() {
            tables.extend(self.map_setting(&setting("env"), "env", env));
        }
        if let Some(shell) = shell {
            self.comments(&setting("shell"), "");
            self.push("shell = ");
            self.string_array(shell, "");
            self.push("\n");
        }
        if let Some(entrypoint) = entrypoint {
            self.comments(&setting("entrypoint"), "");
            self.push("entrypoint = ");
            self.command(entrypoint);
            self.push("\n");
        }
        if let Some(cmd) = cmd {
            self.comments(&setting("cmd"), "");
            self.push("cmd = ");
            self.command(cmd);
            self.push("\n");
        }
        if !labels.is_empty() {
            tables.extend(self.map_setting(&setting("labels"), "labels", labels));
        }
        if !expose.is_empty() {
            self.comments(&setting("expose"), "");
            self.push("expose = ");
            self.array(expose, "");
            self.push("\n");
        }
        if !volumes.is_empty() {
            self.comments(&setting("volumes"), "");
            self.push("volumes = ");
            self.array(volumes, "");
            self.push("\n");
        }
        if let Some(check) = healthcheck {
            let mark = self.mark();
            self.push("healthcheck = ");
            self.healthcheck(check, ", ");
            if self.fits_since(&mark) {
                self.rollback(&mark);
                self.comments(&setting("healthcheck"), "");
                self.push("healthcheck = ");
                self.healthcheck(check, ", ");
                self.push("\n");
            } else {
                self.rollback(&mark);
                let mut table = String::new();
                for line in healthcheck_lines(check) {
                    table.push_str(&line);
                    table.push('\n');
                }
                tables.push(("healthcheck", table));
            }
        }
        if let Some(signal) = stopsignal {
            self.comments(&setting("stopsignal"), "");
            self.push("stopsignal = ");
            self.template(signal);
            self.push("\n");
        }
        if let Some(author) = author {
            self.comments(&setting("author"), "");
            self.push("author = ");
            self.template(author);
            self.push("\n");
        }
        if !onbuild.is_empty() {
            self.comments(&setting("onbuild"), "");
            self.push("onbuild = ");
            self.string_array(onbuild, "");
            self.push("\n");
        }
        tables
    }

    /// Writes `key = { ... }` when it fits on a line; else returns the body
    /// of a `[stages.NAME.key]` sub-table, to write after the steps.
    pub(super) fn map_setting(
        &mut self,
        anchor: &Anchor,
        key: &'static str,
        map: &IndexMap<String, Template>,
    ) -> Option<(&'static str, String)> {
        let mark = self.mark();
        self.push(key);
        self.push(" = ");
        self.inline_map(map);
        if self.fits_since(&mark) {
            self.rollback(&mark);
            self.comments(anchor, "");
            self.push(key);
            self.push(" = ");
            self.inline_map(map);
            self.push("\n");
            return None;
        }
        self.rollback(&mark);
        let mut table = String::new();
        for (name, value) in map {
            let _ = writeln!(table, "{} = {}", toml_key(name), toml_string(&value.value));
        }
        Some((key, table))
    }

    pub(super) fn inline_map(&mut self, map: &IndexMap<String, Template>) {
        if map.is_empty() {
            self.push("{}");
            return;
        }
        self.push("{ ");
        for (i, (name, value)) in map.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.key(name);
            self.push(" = ");
            self.template(value);
        }
        self.push(" }");
    }

    /// Writes an array of located strings: on one line when it fits, else
    /// one element per line, indented one level more than `indent`.
    pub(super) fn array(&mut self, items: &[Template], indent: &str) {
        let mark = self.mark();
        self.push("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.template(item);
        }
        self.push("]");
        if self.fits_since(&mark) || items.len() < 2 {
            return;
        }
        self.rollback(&mark);
        self.push("[\n");
        for item in items {
            self.push(indent);
            self.push("  ");
            self.template(item);
            self.push(",\n");
        }
        self.push(indent);
        self.push("]");
    }

    pub(super) fn string_array(&mut self, items: &[String], indent: &str) {
        let items: Vec<Template> = items
            .iter()
            .map(|s| Located::new(s.clone(), 0..0))
            .collect();
        let start = self.origins.len();
        self.array(&items, indent);
        // These strings have no source position of their own.
        self.origins.truncate(start);
    }

    pub(super) fn command(&mut self, command: &Command) {
        match command {
            Command::Shell(text) => self.string(text),
            Command::Exec(argv) => self.string_array(argv, ""),
        }
    }

    /// Writes a health check as an inline table.
    pub(super) fn healthcheck(&mut self, check: &Healthcheck, separator: &str) {
        self.push("{ ");
        let lines = healthcheck_lines(check);
        self.push(&lines.join(separator));
        self.push(" }");
    }

    pub(super) fn image(&mut self, image: &Image) {
        let Image {
            name,
            stage,
            tags,
            platforms,
            labels,
            annotations,
        } = image;
        self.comments(&Anchor::Image(name.value.clone()), "");
        let start = self.out.len();
        let _ = writeln!(self.out, "[images.{}]", toml_key(&name.value));
        self.origin(start, &name.span);
        self.push("stage = ");
        self.template(stage);
        self.push("\n");
        if !tags.is_empty() {
            self.push("tags = ");
            self.array(tags, "");
            self.push("\n");
        }
        if !platforms.is_empty() {
            self.push("platforms = ");
            let texts: Vec<Template> = platforms
                .iter()
                .map(|p| Located::new(p.value.to_string(), p.span.clone()))
                .collect();
            self.array(&texts, "");
            self.push("\n");
        }
        if !labels.is_empty() {
            self.push("labels = ");
            self.inline_map(labels);
            self.push("\n");
        }
        if !annotations.is_empty() {
            self.push("annotations = ");
            self.inline_map(annotations);
            self.push("\n");
        }
    }

    pub(super) fn group(&mut self, group: &Group, comments: bool) {
        let Group { name, members } = group;
        if comments {
            self.comments(&Anchor::Group(name.value.clone()), "");
        }
        let start = self.out.len();
        self.key(&name.value);
        self.origin(start, &name.span);
        self.push(" = ");
        self.array(members, "");
        self.push("\n");
    }
}

#[cfg(test)]
mod tests;
