//! The text forms of an inspection [`Report`].

use std::fmt::Write as _;

use super::{ChangeKind, Report};

/// Bytes in binary units, one decimal: `512 B`, `1.5 KiB`, `300.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The summary of one platform: config, layers, wasted space.
pub fn render_text(name: &str, report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{name} ({})", report.platform);
    if let Some(manifest) = &report.manifest {
        let _ = writeln!(out, "  manifest {manifest}");
    }
    let c = &report.config;
    let mut config = Vec::new();
    if let Some(user) = &c.user {
        config.push(format!("user {user}"));
    }
    if let Some(dir) = &c.workdir {
        config.push(format!("workdir {dir}"));
    }
    if let Some(entrypoint) = &c.entrypoint {
        config.push(format!("entrypoint {}", json(entrypoint)));
    }
    if let Some(cmd) = &c.cmd {
        config.push(format!("cmd {}", json(cmd)));
    }
    if !c.exposed_ports.is_empty() {
        config.push(format!("expose {}", c.exposed_ports.join(" ")));
    }
    config.push(format!("{} env", c.env.len()));
    config.push(format!("{} labels", c.labels.len()));
    let _ = writeln!(out, "  config: {}", config.join(", "));
    if c.user
        .as_deref()
        .is_none_or(|u| u.is_empty() || u == "root" || u == "0")
    {
        let _ = writeln!(out, "  runs as root");
    }
    let _ = writeln!(
        out,
        "\n  {:>3}  {:>10}  {:>10}  {:>6}  {:>6}  {:>6}  created by",
        "#", "blob", "files", "added", "chgd", "rmvd"
    );
    for layer in &report.layers {
        let _ = writeln!(
            out,
            "  {:>3}  {:>10}  {:>10}  {:>6}  {:>6}  {:>6}  {}",
            layer.index,
            human(layer.compressed_bytes),
            human(layer.content_bytes),
            layer.added,
            layer.modified,
            layer.removed,
            one_line(&layer.created_by)
        );
    }
    let _ = writeln!(
        out,
        "\n  {} layers: {} of blobs, {} of files, {} visible",
        report.layers.len(),
        human(report.compressed_bytes),
        human(report.content_bytes),
        human(report.visible_bytes)
    );
    let _ = writeln!(
        out,
        "  wasted: {} ({} bytes), efficiency {:.1}%",
        human(report.wasted_bytes),
        report.wasted_bytes,
        report.efficiency * 100.0
    );
    if !report.offenders.is_empty() {
        let _ = writeln!(out, "\n  {:>10}  {:<12}  path", "wasted", "layers");
        for o in report.offenders.iter().take(10) {
            let layers = format!("{} -> {}", list(&o.added_in), list(&o.undone_in));
            let _ = writeln!(
                out,
                "  {:>10}  {layers:<12}  {}",
                human(o.wasted_bytes),
                o.path
            );
        }
    }
    for chain in report.chains.iter().take(5) {
        let by = |i: usize| {
            report
                .layers
                .get(i - 1)
                .map(|l| one_line(&l.created_by))
                .unwrap_or_default()
        };
        let _ = writeln!(
            out,
            "\n  layer {} (`{}`) removes or replaces {} that layer {} (`{}`) added ({} path{}):\n  do both in one step (clean up in the step that creates the files) to save {}.",
            chain.undone_in,
            by(chain.undone_in),
            human(chain.wasted_bytes),
            chain.added_in,
            by(chain.added_in),
            chain.paths,
            if chain.paths == 1 { "" } else { "s" },
            human(chain.wasted_bytes)
        );
    }
    out
}

/// The merged tree: each visible path with the layer that last wrote it.
pub fn render_files(report: &Report) -> String {
    let mut out = String::new();
    for entry in &report.files {
        let _ = writeln!(
            out,
            "{:>3}  {:>10}  {}{}",
            entry.layer,
            if entry.kind == "file" {
                human(entry.bytes)
            } else {
                String::new()
            },
            entry.path,
            if entry.kind == "dir" { "/" } else { "" }
        );
    }
    out
}

/// One layer's changes: `A`, `M` or `D` and the path.
pub fn render_layer(report: &Report, index: usize) -> Option<String> {
    let layer = report.layers.get(index.checked_sub(1)?)?;
    let mut out = String::new();
    let _ = writeln!(out, "layer {index}: {}", one_line(&layer.created_by));
    for change in &layer.changes {
        let mark = match change.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'M',
            ChangeKind::Removed => 'D',
        };
        let _ = writeln!(
            out,
            "{mark}  {:>10}  {}",
            if change.kind == ChangeKind::Removed {
                String::new()
            } else {
                human(change.bytes)
            },
            change.path
        );
    }
    Some(out)
}

fn json(argv: &[String]) -> String {
    serde_json::to_string(argv).unwrap_or_default()
}

fn list(layers: &[usize]) -> String {
    layers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The first line of `text`, at most 70 characters.
fn one_line(text: &str) -> String {
    let text = text.strip_prefix("imgbuild: ").unwrap_or(text);
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 70 {
        format!("{}…", line.chars().take(69).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(300 << 20), "300.0 MiB");
    }
}
