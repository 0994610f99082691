//! Writing a stage's steps: one inline table per step, with a `run`
//! step's mounts and a copy's options.

use std::fmt::Write as _;

use super::{MOUNT_INDENT, STEP_INDENT, WIDTH, Writer};
use crate::ir::{Command, Copy, File, Mount, Network, Run, Sharing, Step, Template};

impl Writer<'_> {
    pub(super) fn step(&mut self, step: &Step<Template>) {
        match step {
            Step::Run(run) => self.run(run),
            Step::Copy(copy) => self.copy("copy", copy),
            Step::Add(copy) => self.copy("add", copy),
            Step::File(file) => self.file(file),
            Step::Env { vars } => {
                self.push("{ env = ");
                self.inline_map(vars);
                self.push(" }");
            }
            Step::Workdir { path } => {
                self.push("{ workdir = ");
                self.template(path);
                self.push(" }");
            }
            Step::User { user } => {
                self.push("{ user = ");
                self.template(user);
                self.push(" }");
            }
            Step::Shell { argv } => {
                self.push("{ shell = ");
                self.string_array(argv, STEP_INDENT);
                self.push(" }");
            }
            Step::Arg { name, default } => {
                self.push("{ arg = ");
                self.string(name);
                if let Some(default) = default {
                    self.push(", default = ");
                    self.template(default);
                }
                self.push(" }");
            }
            Step::Label { labels } => {
                self.push("{ label = ");
                self.inline_map(labels);
                self.push(" }");
            }
            Step::Expose { ports } => {
                self.push("{ expose = ");
                self.array(ports, STEP_INDENT);
                self.push(" }");
            }
            Step::Volume { paths } => {
                self.push("{ volume = ");
                self.array(paths, STEP_INDENT);
                self.push(" }");
            }
            Step::Stopsignal { signal } => {
                self.push("{ stopsignal = ");
                self.template(signal);
                self.push(" }");
            }
        }
    }

    pub(super) fn run(&mut self, run: &Run<Template>) {
        let Run {
            command,
            // Derived from the script's `#!` line when the manifest is read.
            interpreter: _,
            mounts,
            network,
        } = run;
        self.push("{ run = ");
        match command {
            Command::Shell(text) => self.string(text),
            Command::Exec(argv) => self.string_array(argv, STEP_INDENT),
        }
        match network {
            Network::Default => {}
            Network::None => self.push(", network = \"none\""),
            Network::Host => self.push(", network = \"host\""),
        }
        if mounts.is_empty() {
            self.push(" }");
            return;
        }
        let mark = self.mark();
        self.push(", mounts = [");
        for (i, mount) in mounts.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.mount(mount);
        }
        self.push("] }");
        // Room for the `,` that ends the step.
        if mounts.len() == 1 && self.column() < WIDTH && self.fits_since(&mark) {
            return;
        }
        self.rollback(&mark);
        self.push(", mounts = [\n");
        for mount in mounts {
            self.push(MOUNT_INDENT);
            self.mount(mount);
            self.push(",\n");
        }
        self.push(STEP_INDENT);
        self.push("] }");
    }

    pub(super) fn mount(&mut self, mount: &Mount<Template>) {
        self.push("{ type = ");
        match mount {
            Mount::Cache {
                target,
                id,
                sharing,
                from,
                source,
                mode,
                uid,
                gid,
                readonly,
            } => {
                self.push("\"cache\"");
                self.option("target", Some(target));
                self.option("id", id.as_ref());
                match sharing {
                    Sharing::Shared => {}
                    Sharing::Private => self.push(", sharing = \"private\""),
                    Sharing::Locked => self.push(", sharing = \"locked\""),
                }
                self.option("from", from.as_ref());
                self.option("source", source.as_ref());
                self.mode(*mode);
                self.number("uid", uid.map(u64::from));
                self.number("gid", gid.map(u64::from));
                self.flag("readonly", *readonly);
            }
            Mount::Secret {
                id,
                target,
                env,
                required,
                mode,
                uid,
                gid,
            } => {
                self.push("\"secret\"");
                self.option("id", id.as_ref());
                self.option("target", target.as_ref());
                self.option("env", env.as_ref());
                self.flag("required", *required);
                self.mode(*mode);
                self.number("uid", uid.map(u64::from));
                self.number("gid", gid.map(u64::from));
            }
            Mount::Bind {
                target,
                source,
                from,
                rw,
            } => {
                self.push("\"bind\"");
                self.option("target", Some(target));
                self.option("source", source.as_ref());
                self.option("from", from.as_ref());
                self.flag("rw", *rw);
            }
            Mount::Tmpfs { target, size } => {
                self.push("\"tmpfs\"");
                self.option("target", Some(target));
                self.number("size", *size);
            }
            Mount::Ssh {
                id,
                target,
                required,
                mode,
                uid,
                gid,
            } => {
                self.push("\"ssh\"");
                self.option("id", id.as_ref());
                self.option("target", target.as_ref());
                self.flag("required", *required);
                self.mode(*mode);
                self.number("uid", uid.map(u64::from));
                self.number("gid", gid.map(u64::from));
            }
            // A manifest mount's type and numbers are literal; `convert`
            // refuses these before emitting.
            Mount::Deferred { options } => {
                self.push("\"deferred\"");
                for option in options {
                    self.option(&option.key, option.value.as_ref());
                }
            }
        }
        self.push(" }");
    }

    /// Writes `, key = "value"` when there is a value.
    pub(super) fn option(&mut self, key: &str, value: Option<&Template>) {
        if let Some(value) = value {
            self.push(", ");
            self.push(key);
            self.push(" = ");
            self.template(value);
        }
    }

    /// Writes `, key = true` when `on`.
    pub(super) fn flag(&mut self, key: &str, on: bool) {
        if on {
            let _ = write!(self.out, ", {key} = true");
        }
    }

    /// Writes `, key = N`; a number too large for a TOML integer as a string.
    pub(super) fn number(&mut self, key: &str, value: Option<u64>) {
        match value {
            Some(n) if i64::try_from(n).is_ok() => {
                let _ = write!(self.out, ", {key} = {n}");
            }
            Some(n) => {
                let _ = write!(self.out, ", {key} = \"{n}\"");
            }
            None => {}
        }
    }

    pub(super) fn mode(&mut self, mode: Option<u32>) {
        if let Some(mode) = mode {
            let _ = write!(self.out, ", mode = 0o{mode:o}");
        }
    }

    pub(super) fn copy(&mut self, action: &str, copy: &Copy<Template>) {
        let Copy {
            sources,
            to,
            from,
            chown,
            chmod,
            link,
            parents,
            exclude,
            checksum,
            keep_git_dir,
        } = copy;
        self.push("{ ");
        self.push(action);
        self.push(" = ");
        match sources.as_slice() {
            [one] => self.template(one),
            many => self.array(many, STEP_INDENT),
        }
        self.option("from", from.as_ref());
        self.option("to", Some(to));
        self.option("chown", chown.as_ref());
        self.option("chmod", chmod.as_ref());
        self.flag("link", *link);
        self.flag("parents", *parents);
        if !exclude.is_empty() {
            self.push(", exclude = ");
            self.array(exclude, STEP_INDENT);
        }
        self.option("checksum", checksum.as_ref());
        if let Some(keep) = keep_git_dir {
            let _ = write!(self.out, ", keep_git_dir = {keep}");
        }
        self.push(" }");
    }

    pub(super) fn file(&mut self, file: &File<Template>) {
        let File {
            to,
            name,
            content,
            expand,
            chown,
            chmod,
        } = file;
        self.push("{ file = ");
        self.string(&content.value);
        self.option("to", Some(to));
        self.option("name", name.as_ref());
        self.option("chown", chown.as_ref());
        self.option("chmod", chmod.as_ref());
        if *expand {
            self.push(", expand = true");
        }
        self.push(" }");
    }
}
