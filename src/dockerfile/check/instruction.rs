//! The checks of the instructions inside a stage: `ENV`/`LABEL` forms,
//! `ARG` values, relative `WORKDIR`s, `CMD`/`ENTRYPOINT`/`HEALTHCHECK`,
//! `EXPOSE` ports, ignored `COPY` sources and secrets in names.

use indexmap::IndexMap;

use crate::dockerfile::parse::{Instruction, InstructionArgs};
use crate::lint::buildkit::{
    COPY_IGNORED_FILE, EXPOSE_INVALID_FORMAT, EXPOSE_PROTO_CASING, JSON_ARGS_RECOMMENDED,
    LEGACY_KEY_VALUE_FORMAT, MULTIPLE_INSTRUCTIONS_DISALLOWED, SECRETS_USED_IN_ARG_OR_ENV,
    WORKDIR_RELATIVE_PATH,
};
use crate::lint::{RuleSet, looks_secret};

use super::{Checker, StageState, Trackers, arg_pairs, go_quote, is_absolute, is_remote, keyword};

impl Checker<'_> {
    pub(super) fn instruction(
        &mut self,
        inst: &Instruction,
        state: &mut StageState,
        trackers: &mut Trackers,
        globals: &IndexMap<String, String>,
    ) {
        let rules = self.rules_for(inst);
        match (inst.name.as_str(), &inst.args) {
            ("env" | "label", InstructionArgs::KeyValues { pairs, legacy }) => {
                self.key_values(&rules, inst, state, pairs, *legacy);
            }
            ("arg", _) => self.arg(&rules, inst, state, globals),
            ("workdir", InstructionArgs::Shell(path)) => {
                if let Some(path) = self.expand_checked(&rules, inst, state, path)
                    && !state.workdir_set
                    && !is_absolute(&path, &state.os)
                {
                    self.add(
                        &rules,
                        &WORKDIR_RELATIVE_PATH,
                        format!("Relative workdir {} can have unexpected results if the base image changes", go_quote(&path)),
                        inst,
                    );
                }
                state.workdir_set = true;
            }
            ("user" | "stopsignal", InstructionArgs::Shell(word)) => {
                self.expand_checked(&rules, inst, state, word);
            }
            ("volume", InstructionArgs::Words(words) | InstructionArgs::Json(words)) => {
                for word in words {
                    self.expand_checked(&rules, inst, state, word);
                }
            }
            ("copy" | "add", InstructionArgs::Words(words) | InstructionArgs::Json(words)) => {
                self.copy(&rules, inst, state, words);
            }
            ("run", _) => {
                for (flag, value) in &inst.flags {
                    if flag != "mount" {
                        continue;
                    }
                    for field in value.as_deref().unwrap_or_default().split(',') {
                        if let Some((_, v)) = field.split_once('=') {
                            self.expand_checked(&rules, inst, state, v);
                        }
                    }
                }
            }
            ("cmd" | "entrypoint" | "healthcheck", _) => {
                self.last_one_wins(&rules, inst, state, trackers);
            }
            ("expose", InstructionArgs::Words(words)) => {
                for word in words {
                    let Ok(ports) = self
                        .lex
                        .process_words(word, &|n: &str| state.env.get(n).cloned())
                    else {
                        continue;
                    };
                    for port in ports {
                        self.port(&rules, inst, &port);
                    }
                }
            }
            ("shell", _) => state.shell_set = true,
            ("onbuild", _) => trackers.onbuild = true,
            _ => {}
        }
    }

    /// `ENV` and `LABEL`: the legacy `key value` form, undefined variables,
    /// and for `ENV` secrets in names and the stage's environment.
    pub(super) fn key_values(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &mut StageState,
        pairs: &[(String, String)],
        legacy: bool,
    ) {
        let name = keyword(inst).to_owned();
        if legacy {
            self.add(
                rules,
                &LEGACY_KEY_VALUE_FORMAT,
                format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
                inst,
            );
        }
        let mut values = Vec::new();
        for (key, value) in pairs {
            let key = self.expand_checked(rules, inst, state, key);
            let value = self.expand_checked(rules, inst, state, value);
            values.extend(key.zip(value));
        }
        if inst.name == "env" {
            for (key, value) in values {
                self.secret(rules, inst, "ENV", &key);
                state.env.shift_remove(&key);
                state.env.insert(key, value);
            }
        }
    }

    /// `ARG`: secrets in names, and each argument's value in the stage's
    /// environment (`--build-arg`, else its default, else the global one).
    pub(super) fn arg(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &mut StageState,
        globals: &IndexMap<String, String>,
    ) {
        for (key, default) in arg_pairs(inst) {
            self.secret(rules, inst, "ARG", &key);
            let value = match (self.options.args.get(&key), default) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(default)) => self.expand_checked(rules, inst, state, &default),
                (None, None) => globals.get(&key).cloned(),
            };
            if let Some(value) = value {
                state.env.shift_remove(&key);
                state.env.insert(key.clone(), value);
            }
            if !state.declared.contains(&key) {
                state.declared.push(key);
            }
        }
    }

    /// `CMD`, `ENTRYPOINT` and `HEALTHCHECK`: one per stage, and JSON
    /// arguments for the first two.
    pub(super) fn last_one_wins(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        trackers: &mut Trackers,
    ) {
        let name = keyword(inst).to_owned();
        let args = &inst.args;
        let previous = match inst.name.as_str() {
            "cmd" => &mut trackers.cmd,
            "entrypoint" => &mut trackers.entrypoint,
            _ => &mut trackers.healthcheck,
        };
        if let Some((line, column)) = previous.replace(self.at(inst)) {
            self.report.add_under(
                rules,
                &MULTIPLE_INSTRUCTIONS_DISALLOWED,
                format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                line,
                column,
            );
        }
        if inst.name != "healthcheck"
            && matches!(args, InstructionArgs::Shell(_))
            && !state.shell_set
        {
            self.add(
                rules,
                &JSON_ARGS_RECOMMENDED,
                format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
                inst,
            );
        }
    }

    /// `ExposeProtoCasing` and `ExposeInvalidFormat` for one `EXPOSE` port.
    pub(super) fn port(&mut self, rules: &RuleSet, inst: &Instruction, port: &str) {
        let parts: Vec<&str> = port.split(':').collect();
        let container = parts.last().copied().unwrap_or_default();
        if let Some((_, protocol)) = container.split_once('/')
            && protocol != protocol.to_lowercase()
        {
            self.add(
                rules,
                &EXPOSE_PROTO_CASING,
                format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase"),
                inst,
            );
        }
        if parts.len() > 1 {
            self.add(
                rules,
                &EXPOSE_INVALID_FORMAT,
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"),
                inst,
            );
        }
    }

    /// The checks of `COPY` and `ADD`: undefined variables in their flags
    /// and paths, and sources the `.dockerignore` excludes.
    pub(super) fn copy(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        words: &[String],
    ) {
        let mut from_context = true;
        for (flag, value) in &inst.flags {
            match flag.as_str() {
                "chown" | "chmod" | "checksum" => {
                    self.expand_checked(rules, inst, state, value.as_deref().unwrap_or_default());
                }
                "from" => from_context = inst.name == "add",
                _ => {}
            }
        }
        let Some((dest, sources)) = words.split_last() else {
            return;
        };
        for source in sources {
            if !inst.heredocs.is_empty() && crate::dockerfile::parse::heredoc_word(source).is_some()
            {
                continue;
            }
            let Some(path) = self.expand_checked(rules, inst, state, source) else {
                continue;
            };
            if from_context && !is_remote(&path) {
                self.ignored(rules, inst, &path);
            }
        }
        self.expand_checked(rules, inst, state, dest);
    }

    /// `CopyIgnoredFile` for one source path.
    pub(super) fn ignored(&mut self, rules: &RuleSet, inst: &Instruction, source: &str) {
        let Some(ignore) = self.options.ignore else {
            return;
        };
        if ignore.has_exceptions() {
            return;
        }
        let path = crate::context::ignore::clean(source);
        let excluded = if path == "." || path == "/" {
            ignore.ignores_everything()
        } else {
            ignore.excludes(path.trim_start_matches('/'))
        };
        if excluded {
            let verb = if inst.name == "add" { "Add" } else { "Copy" };
            self.add(
                rules,
                &COPY_IGNORED_FILE,
                format!(
                    "Attempting to {verb} file {} that is excluded by .dockerignore",
                    go_quote(&path)
                ),
                inst,
            );
        }
    }

    /// `SecretsUsedInArgOrEnv` for an `ARG` or `ENV` name.
    pub(super) fn secret(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        instruction: &str,
        key: &str,
    ) {
        if looks_secret(key) {
            self.add(
                rules,
                &SECRETS_USED_IN_ARG_OR_ENV,
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                    go_quote(key)
                ),
                inst,
            );
        }
    }
}
