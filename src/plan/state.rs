//! How a node's steps and settings change the image's runtime state: the
//! environment, working directory, user and shell each step sees, and the
//! config the finished stage hands on. Shared by the scheduler, which runs
//! steps, and the planner, which computes their cache keys.

use crate::image::Image;
use crate::image::config::{command_argv, healthcheck_json};
use crate::ir::{Node, Step};

/// The shell for string-form commands when none is set.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Environment, workdir, user and shell as a step sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Environment variables in order.
    pub env: Vec<(String, String)>,
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
            _ => {}
        }
    }
}

/// Applies the node's resolved config on top of what its base had.
pub fn apply_config(node: &Node, image: &mut Image) {
    let c = &node.config;
    let r = &mut image.config.runtime;
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
    if let Some(entrypoint) = &c.entrypoint {
        let argv = command_argv(entrypoint, &shell);
        if r.entrypoint.as_ref() != Some(&argv) {
            r.entrypoint = Some(argv);
            r.cmd = None;
        }
    }
    if let Some(cmd) = &c.cmd {
        r.cmd = Some(command_argv(cmd, &shell));
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
}
