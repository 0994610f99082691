//! A step of the manifest: exactly one action with only that action's
//! options, lowered to an IR step (`run`, `copy`/`add`/`file` with their
//! modes and owners, and the settings steps).

use indexmap::IndexMap;
use toml::Spanned;

use super::{Lowerer, has_variable, located, scalar};
use crate::diagnostic::suggest;
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::value::parse_octal;
use crate::ir::{ArgScope, Command, Copy, File, Located, Network, Run, Span, Step, Template};
use crate::manifest::schema::{self, Mode, Scalar};

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

impl Lowerer<'_> {
    /// Lowers one step: it has exactly one action, and only options of that
    /// action.
    pub(super) fn step(&mut self, step: Spanned<schema::Step>) -> Option<Step<Template>> {
        let span = step.span();
        let step = step.into_inner();
        let action = self.action(span.clone(), &step)?;
        if !self.options_apply(action, &step) {
            return None;
        }
        match action {
            "run" => self.run(step),
            "copy" | "add" | "file" => self.copy(action, span, step),
            "env" => self.env_step(step.env?),
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
            "arg" => self.arg_step(step.arg?, step.default),
            _ => unreachable!("every action is handled"),
        }
    }

    /// The one action of `step` (at `span`); an error if it has none or two.
    fn action(&mut self, span: Span, step: &schema::Step) -> Option<&'static str> {
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
        match actions.as_slice() {
            [] => {
                self.error(
                    span,
                    "step has no action",
                    format!(
                        "give the step one of: {}",
                        ACTIONS.map(|a| format!("`{a}`")).join(", ")
                    ),
                );
                None
            }
            [(action, _)] => Some(*action),
            [(first, _), (second, second_span), ..] => {
                self.error(
                    second_span.clone(),
                    format!("step has two actions, `{first}` and `{second}`"),
                    "a step does one thing: split it into two steps",
                );
                None
            }
        }
    }

    /// Whether every option `step` has applies to `action`; an error for
    /// each that does not.
    fn options_apply(&mut self, action: &str, step: &schema::Step) -> bool {
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
        !misplaced
    }

    /// An `env` step; the names must be non-empty and without `=`.
    fn env_step(&mut self, env: Spanned<IndexMap<String, Scalar>>) -> Option<Step<Template>> {
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

    /// An `arg` step. A predefined argument takes its value from the
    /// platform when arguments are in scope everywhere, so it has no default.
    fn arg_step(
        &mut self,
        name: Spanned<String>,
        default: Option<Spanned<Scalar>>,
    ) -> Option<Step<Template>> {
        if PREDEFINED_ARGS.contains(&name.get_ref().as_str())
            && self.arg_scope == ArgScope::Everywhere
        {
            if let Some(default) = &default {
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
            default: default.map(scalar),
        })
    }

    pub(super) fn run(&mut self, step: schema::Step) -> Option<Step<Template>> {
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

    pub(super) fn copy(
        &mut self,
        action: &str,
        span: Span,
        step: schema::Step,
    ) -> Option<Step<Template>> {
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
    pub(super) fn mode_text(&mut self, mode: Spanned<Mode>) -> Option<Template> {
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
    pub(super) fn mode_number(&mut self, mode: Option<Spanned<Mode>>) -> Result<Option<u32>, ()> {
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

    pub(super) fn id(&mut self, key: &str, value: Option<Spanned<i64>>) -> Result<Option<u32>, ()> {
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
}

/// Whether `text` is a symbolic mode such as `u+x,go-w` or `a=rX`.
pub(super) fn is_symbolic_mode(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|clause| {
            let who_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
            let (who, rest) = clause.split_at(who_end);
            who.chars().all(|c| "ugoa".contains(c))
                && !rest.is_empty()
                && rest.chars().all(|c| "+-=rwxXstugo".contains(c))
        })
}
