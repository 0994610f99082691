//! A stage of the manifest: its `from`, platform and settings, and the
//! values its image settings are checked as (commands, healthchecks, ports,
//! signals, triggers).

use indexmap::IndexMap;
use toml::Spanned;

use super::{Lowerer, has_variable, located, scalar};
use crate::ir::{Command, Healthcheck, Located, Stage, StageConfig, StagePlatform, Template};
use crate::manifest::schema::{self, OneOrMany, Scalar};

impl Lowerer<'_> {
    pub(super) fn stage(&mut self, name: Spanned<String>, stage: schema::Stage) -> Stage {
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

    /// Checks an `onbuild` trigger: one Dockerfile instruction that may run
    /// in a later build.
    pub(super) fn trigger(&mut self, trigger: Spanned<String>) -> Option<String> {
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

    pub(super) fn env_table(
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

    pub(super) fn shell(&mut self, shell: Spanned<Vec<String>>) -> Option<Vec<String>> {
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

    pub(super) fn command(
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

    pub(super) fn healthcheck(
        &mut self,
        check: Spanned<schema::Healthcheck>,
    ) -> Option<Healthcheck> {
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

    /// Checks a port without variables; true when it is valid.
    pub(super) fn port(&mut self, port: &Template) -> bool {
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
    pub(super) fn signal(&mut self, signal: &Template) -> bool {
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
}
