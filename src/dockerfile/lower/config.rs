//! The image-config instructions: `HEALTHCHECK`, and the settings
//! (`ENV`, `WORKDIR`, `USER`, `SHELL`, `LABEL`, `EXPOSE`, `VOLUME`,
//! `STOPSIGNAL`, `MAINTAINER`, `ENTRYPOINT`, `CMD`) as steps or config.

use indexmap::IndexMap;

use super::{Flags, Lowerer};
use crate::dockerfile::parse::{Instruction, InstructionArgs};
use crate::dockerfile::word::has_variable;
use crate::ir::value::parse_duration;
use crate::ir::{Command, Healthcheck, Located, Step};

impl Lowerer {
    pub(super) fn healthcheck(&mut self, inst: &Instruction, flags: &Flags) {
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
    pub(super) fn setting(&mut self, inst: &Instruction) {
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
