//! `FROM` and the instructions around it: a new stage with its base and
//! platform, global and stage `ARG`s, stage references, and `ONBUILD`.

use super::{Lowerer, after_flags};
use crate::dockerfile::onbuild;
use crate::dockerfile::parse::{Instruction, InstructionArgs};
use crate::dockerfile::word::has_variable;
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::{Located, Stage, StageConfig, StagePlatform, Template};

impl Lowerer {
    /// The name of the stage a `--from`/`FROM` value refers to, if it names
    /// an earlier stage by name or index.
    pub(super) fn earlier_stage(&self, value: &str) -> Option<String> {
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
    pub(super) fn source_ref(&self, value: String) -> String {
        match self.earlier_stage(&value) {
            Some(name) => format!("stage:{name}"),
            None => value,
        }
    }

    /// A literal `FROM` value as the IR writes it. Unlike `--from`, `BuildKit`
    /// looks a base up among the earlier stages' names exactly (they are
    /// lowercase), never by index: `FROM Build` and `FROM 0` name images,
    /// invalid or not there, so they are errors here, in `BuildKit`'s words.
    pub(super) fn base_ref(&mut self, from: &Template) -> Option<String> {
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

    pub(super) fn from(&mut self, inst: &Instruction) {
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
    pub(super) fn arg_words(
        &mut self,
        inst: &Instruction,
    ) -> Vec<(Located<String>, Option<Template>)> {
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

    pub(super) fn global_arg(&mut self, inst: &Instruction) {
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
    pub(super) fn onbuild(&mut self, inst: &Instruction) {
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
}
