//! The human-readable form of a [`Plan`], printed by `imgbuild plan`.

use std::fmt::Write as _;

use super::{CacheStatus, Plan, PlanNode};
use crate::ir::{Base, Command, Copy, Mount, Step};

/// One line describing `step`.
pub fn summary(step: &Step<String>) -> String {
    match step {
        Step::Run(run) => {
            let command = command_text(&run.command);
            let mut line = format!("run {command}");
            if let Some(interpreter) = &run.interpreter {
                let _ = write!(line, " (script for {interpreter})");
            }
            if run.network != crate::ir::Network::Default {
                let _ = write!(line, " [network={}]", serde_plain(&run.network));
            }
            line
        }
        Step::Copy(copy) => copy_summary("copy", copy),
        Step::Add(copy) => copy_summary("add", copy),
        Step::File(file) => {
            let mut line = format!("file {} ({} bytes)", file.to, file.content.len());
            push_owner(&mut line, file.chown.as_ref(), file.chmod.as_ref());
            line
        }
        Step::Env { vars } => format!(
            "env {}",
            vars.iter()
                .map(|(k, v)| format!("{k}={}", quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Step::Workdir { path } => format!("workdir {path}"),
        Step::User { user } => format!("user {user}"),
        Step::Shell { argv } => format!("shell {}", json(argv)),
        Step::Arg { name, default } => match default {
            Some(value) => format!("arg {name}={}", quote(value)),
            None => format!("arg {name} (unset)"),
        },
        Step::Label { labels } => format!(
            "label {}",
            labels
                .iter()
                .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Step::Expose { ports } => format!("expose {}", ports.join(" ")),
        Step::Volume { paths } => format!("volume {}", json(paths)),
        Step::Stopsignal { signal } => format!("stopsignal {signal}"),
    }
}

fn command_text(command: &Command) -> String {
    match command {
        Command::Exec(argv) => json(argv),
        Command::Shell(text) => {
            let lines: Vec<&str> = text.trim_end().lines().collect();
            match lines.as_slice() {
                [one] => (*one).to_owned(),
                [first, rest @ ..] => format!("{first} … (+{} lines)", rest.len()),
                [] => String::new(),
            }
        }
    }
}

fn copy_summary(verb: &str, copy: &Copy<String>) -> String {
    let mut line = format!("{verb} {} -> {}", copy.sources.join(" "), copy.to);
    if let Some(from) = &copy.from {
        let _ = write!(line, " from {from}");
    }
    push_owner(&mut line, copy.chown.as_ref(), copy.chmod.as_ref());
    for (flag, on) in [("link", copy.link), ("parents", copy.parents)] {
        if on {
            let _ = write!(line, " --{flag}");
        }
    }
    if !copy.exclude.is_empty() {
        let _ = write!(line, " exclude {}", copy.exclude.join(","));
    }
    if let Some(checksum) = &copy.checksum {
        let _ = write!(line, " checksum {checksum}");
    }
    line
}

fn push_owner(line: &mut String, chown: Option<&String>, chmod: Option<&String>) {
    if let Some(chown) = chown {
        let _ = write!(line, " chown {chown}");
    }
    if let Some(chmod) = chmod {
        let _ = write!(line, " chmod {chmod}");
    }
}

fn mount_summary(mount: &Mount<String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |key: &str, value: Option<&String>| {
        if let Some(v) = value {
            parts.push(format!("{key}={v}"));
        }
    };
    let kind = match mount {
        Mount::Cache {
            target,
            id,
            sharing,
            from,
            source,
            readonly,
            ..
        } => {
            push("target", Some(target));
            push("id", id.as_ref());
            push("sharing", Some(&serde_plain(sharing)));
            push("from", from.as_ref());
            push("source", source.as_ref());
            if *readonly {
                parts.push("readonly".into());
            }
            "cache"
        }
        Mount::Secret {
            id,
            target,
            env,
            required,
            ..
        } => {
            push("id", id.as_ref());
            push("target", target.as_ref());
            push("env", env.as_ref());
            if *required {
                parts.push("required".into());
            }
            "secret"
        }
        Mount::Bind {
            target,
            source,
            from,
            rw,
        } => {
            push("target", Some(target));
            push("source", source.as_ref());
            push("from", from.as_ref());
            if *rw {
                parts.push("rw".into());
            }
            "bind"
        }
        Mount::Tmpfs { target, size } => {
            push("target", Some(target));
            push("size", size.map(|s| s.to_string()).as_ref());
            "tmpfs"
        }
        Mount::Ssh {
            id,
            target,
            required,
            ..
        } => {
            push("id", id.as_ref());
            push("target", target.as_ref());
            if *required {
                parts.push("required".into());
            }
            "ssh"
        }
        Mount::Deferred { options } => {
            for option in options {
                match &option.value {
                    Some(value) => parts.push(format!("{}={value}", option.key)),
                    None => parts.push(option.key.clone()),
                }
            }
            "options"
        }
    };
    format!("mount {kind} {}", parts.join(" "))
}

fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn json(argv: &[String]) -> String {
    serde_json::to_string(argv).unwrap_or_default()
}

fn quote(value: &str) -> String {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("{value:?}")
    } else {
        value.to_owned()
    }
}

/// The plan as text: images first, then the nodes wave by wave.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let node_count = plan.nodes.len();
    let _ = writeln!(
        out,
        "Plan for {}: {} image{}, {} stage build{} in {} wave{}",
        plan.source,
        plan.images.len(),
        plural(plan.images.len()),
        node_count,
        plural(node_count),
        plan.waves.len(),
        plural(plan.waves.len()),
    );
    let statuses: Vec<&CacheStatus> = plan
        .nodes
        .iter()
        .flat_map(|n| &n.steps)
        .filter_map(|s| s.cache.as_ref())
        .collect();
    if !statuses.is_empty() {
        let cached = statuses
            .iter()
            .filter(|s| matches!(s, CacheStatus::Cached))
            .count();
        let _ = writeln!(
            out,
            "Cache: {cached} of {} step{} cached, {} to build",
            statuses.len(),
            plural(statuses.len()),
            statuses.len() - cached
        );
    }
    let _ = writeln!(out, "\nImages");
    for image in &plan.images {
        let platforms: Vec<String> = image
            .platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect();
        let _ = writeln!(
            out,
            "  {}  stage {}  platforms {}",
            image.image.name,
            image.image.stage,
            platforms.join(", ")
        );
        for tag in &image.image.tags {
            let _ = writeln!(out, "    tag {tag}");
        }
    }
    for (wave, ids) in plan.waves.iter().enumerate() {
        let concurrent = if ids.len() > 1 {
            format!(": {} stages run concurrently", ids.len())
        } else {
            String::new()
        };
        let _ = writeln!(out, "\nWave {}{concurrent}", wave + 1);
        for node in plan.nodes.iter().filter(|n| n.wave == wave) {
            render_node(&mut out, node);
        }
    }
    out
}

fn render_node(out: &mut String, node: &PlanNode) {
    let target = node
        .target_platform
        .as_ref()
        .map(|t| format!(" (for {t})"))
        .unwrap_or_default();
    let _ = writeln!(out, "  {} on {}{target}", node.stage, node.platform);
    let base = match &node.base {
        Base::Scratch => "scratch".to_owned(),
        Base::Stage(id) => format!("stage {id}"),
        Base::Image(image) => match &node.base_pinned {
            Some(pinned) => format!("{image} = {pinned}"),
            None => image.clone(),
        },
    };
    let _ = writeln!(out, "    from {base}");
    for step in &node.steps {
        let (status, reason) = match &step.cache {
            None => ("", None),
            Some(CacheStatus::Cached) => ("cached  ", None),
            Some(CacheStatus::Build { reason }) => ("build   ", Some(reason)),
        };
        let trigger = if step.onbuild { "(onbuild) " } else { "" };
        let _ = writeln!(
            out,
            "    {:>2}. {status}{trigger}{}",
            step.index, step.summary
        );
        let indent = " ".repeat(8 + status.len());
        if let Step::Run(run) = &step.step {
            for mount in &run.mounts {
                let _ = writeln!(out, "{indent}{}", mount_summary(mount));
            }
        }
        if let Some(reason) = reason {
            let _ = writeln!(out, "{indent}because {reason}");
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
