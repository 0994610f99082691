//! Checks a parsed manifest's shape and lowers it to an [`ir::Project`](crate::ir::Project).
//!
//! Errors are collected, not returned at the first one, so a user fixing a
//! manifest sees everything wrong with it at once.
//!
//! * `stage`: a stage's `from`, platform and settings.
//! * `step`: a step's one action and its options.
//! * `mount`: a `run` step's mounts.
//! * `image`: an image's stage, platforms, tags and settings.

mod image;
mod mount;
mod stage;
mod step;

use std::sync::Arc;

use indexmap::IndexMap;
use toml::Spanned;

use super::schema::{self, Scalar};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, suggest};
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::trigger::TriggerSyntax;
use crate::ir::value::parse_duration;
use crate::ir::{
    ArgScope, Group, Located, Platform, Project, SourceMap, Span, Template, reference,
};
use crate::lint::RuleSet;

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
}

#[cfg(test)]
mod tests;
