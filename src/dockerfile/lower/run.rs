//! `RUN`: its command (a heredoc script as `BuildKit` makes it), network
//! and `--mount`s.

use super::{Flags, Lowerer};
use crate::diagnostic::suggest;
use crate::dockerfile::mount::{self, MountError};
use crate::dockerfile::parse::{Heredoc, Instruction, InstructionArgs, heredoc_word};
use crate::dockerfile::word::{self};
use crate::ir::{self, Command, Located, Network, Run, Span, Step, Template};

impl Lowerer {
    pub(super) fn run(&mut self, inst: &Instruction, flags: &Flags) {
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

    pub(super) fn mount(&mut self, value: &str, span: &Span) -> Option<ir::Mount<Template>> {
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
