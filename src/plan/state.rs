//! How a node's steps and settings change the image's runtime state: the
//! environment, working directory, user and shell each step sees, and the
//! config the finished stage hands on. Shared by the scheduler, which runs
//! steps, and the planner, which computes their cache keys.

use indexmap::IndexMap;

use crate::image::Image;
use crate::image::config::{ImageConfig, command_argv, healthcheck_json};
use crate::ir::{ArgScope, Node, StageConfig, Step};

/// The shell for string-form commands when none is set.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Environment, build arguments, workdir, user and shell as a step sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Environment variables in order.
    pub env: Vec<(String, String)>,
    /// Build arguments `run` steps get as environment variables, under `env`.
    pub args: IndexMap<String, String>,
    /// How arguments and environment variables combine.
    arg_scope: ArgScope,
    /// Working directory.
    pub workdir: String,
    /// User, if set.
    pub user: Option<String>,
    /// Shell for string commands.
    pub shell: Vec<String>,
}

impl State {
    /// The state before the first step of `node` on `image`.
    pub fn new(node: &Node, image: &Image) -> Self {
        let base = &image.config.runtime;
        let mut state = Self {
            env: base.env.clone(),
            args: node.args.clone(),
            arg_scope: node.arg_scope,
            workdir: node
                .start
                .workdir
                .clone()
                .or_else(|| base.working_dir.clone())
                .unwrap_or_else(|| "/".into()),
            user: node.start.user.clone().or_else(|| base.user.clone()),
            shell: node
                .start
                .shell
                .clone()
                .or_else(|| base.shell.clone())
                .unwrap_or_else(|| DEFAULT_SHELL.map(str::to_owned).to_vec()),
        };
        for (name, value) in &node.start.env {
            state.set_env(name, value);
        }
        state
    }

    fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.env.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Takes in the effect of a config step.
    pub fn apply(&mut self, step: &Step<String>) {
        match step {
            Step::Env { vars } => {
                for (name, value) in vars {
                    self.set_env(name, value);
                }
            }
            Step::Workdir { path } => path.clone_into(&mut self.workdir),
            Step::User { user } => self.user = Some(user.clone()),
            Step::Shell { argv } => argv.clone_into(&mut self.shell),
            Step::Arg {
                name,
                default: Some(value),
            } => {
                self.args.insert(name.clone(), value.clone());
                // Dockerfile rules: the argument hides an earlier variable.
                if self.arg_scope == ArgScope::Declared {
                    self.set_env(name, value);
                }
            }
            _ => {}
        }
    }
}

/// Applies the node's resolved config on top of what its base had.
pub fn apply_config(node: &Node, image: &mut Image) {
    apply_stage_config(&node.config, &mut image.config);
}

/// [`apply_config`] on the image's config.
fn apply_stage_config(c: &StageConfig<String>, image: &mut ImageConfig) {
    let r = &mut image.runtime;
    let shell: Vec<String> = c
        .shell
        .clone()
        .or_else(|| r.shell.clone())
        .unwrap_or_else(|| DEFAULT_SHELL.map(str::to_owned).to_vec());
    for (name, value) in &c.env {
        r.set_env(name, value);
    }
    if let Some(dir) = &c.workdir {
        r.working_dir = Some(dir.clone());
    }
    if let Some(user) = &c.user {
        r.user = Some(user.clone());
    }
    // As `BuildKit`: an `entrypoint` drops the base's `cmd` (even when it is
    // the base's own entrypoint again); the stage's `cmd` is applied after
    // it, and sets `ArgsEscaped`. An empty argv (`ENTRYPOINT []`) clears.
    if let Some(entrypoint) = &c.entrypoint {
        r.entrypoint = Some(command_argv(entrypoint, &shell)).filter(|a| !a.is_empty());
        r.cmd = None;
    }
    if let Some(cmd) = &c.cmd {
        r.cmd = Some(command_argv(cmd, &shell)).filter(|a| !a.is_empty());
        r.args_escaped = true;
    }
    if let Some(author) = &c.author {
        image.author = Some(author.clone());
    }
    r.labels
        .extend(c.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    r.exposed_ports.extend(c.expose.iter().cloned());
    r.volumes.extend(c.volumes.iter().cloned());
    if let Some(signal) = &c.stopsignal {
        r.stop_signal = Some(signal.clone());
    }
    if let Some(check) = &c.healthcheck {
        r.healthcheck = Some(healthcheck_json(check));
    }
    if let Some(s) = &c.shell {
        r.shell = Some(s.clone());
    }
    // A base's triggers ran in this stage; only the stage's own remain.
    r.onbuild.clone_from(&c.onbuild);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Command, Platform};

    /// The config after a stage with `config` on a base whose entrypoint
    /// is `/bin/echo` and whose cmd is `base`.
    fn after(config: &StageConfig<String>) -> ImageConfig {
        let mut image = ImageConfig::scratch(Platform::parse("linux/amd64").unwrap(), "");
        image.runtime.entrypoint = Some(vec!["/bin/echo".into()]);
        image.runtime.cmd = Some(vec!["base".into()]);
        apply_stage_config(config, &mut image);
        image
    }

    fn exec(argv: &[&str]) -> Command {
        Command::Exec(argv.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn entrypoint_drops_the_base_cmd_even_when_unchanged() {
        let image = after(&StageConfig {
            entrypoint: Some(exec(&["/bin/echo"])),
            ..StageConfig::default()
        });
        assert_eq!(image.runtime.entrypoint, Some(vec!["/bin/echo".into()]));
        assert_eq!(image.runtime.cmd, None);
        assert!(!image.runtime.args_escaped);
    }

    #[test]
    fn the_stage_cmd_survives_its_entrypoint_and_sets_args_escaped() {
        let image = after(&StageConfig {
            entrypoint: Some(exec(&["/bin/echo"])),
            cmd: Some(Command::Shell("hi".into())),
            ..StageConfig::default()
        });
        assert_eq!(
            image.runtime.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "hi".into()])
        );
        assert!(image.runtime.args_escaped);
    }

    #[test]
    fn empty_entrypoint_and_cmd_clear_them() {
        let image = after(&StageConfig {
            entrypoint: Some(exec(&[])),
            cmd: Some(exec(&[])),
            ..StageConfig::default()
        });
        assert_eq!(image.runtime.entrypoint, None);
        assert_eq!(image.runtime.cmd, None);
    }

    #[test]
    fn author_is_set_and_otherwise_inherited() {
        let image = after(&StageConfig {
            author: Some("Jane <j@x>".into()),
            ..StageConfig::default()
        });
        assert_eq!(image.author.as_deref(), Some("Jane <j@x>"));
        let mut child = image.clone();
        apply_stage_config(&StageConfig::default(), &mut child);
        assert_eq!(child.author.as_deref(), Some("Jane <j@x>"));
        assert_eq!(child.runtime.entrypoint, image.runtime.entrypoint);
    }
}
