//! `imgbuild du`: what the store holds and how much disk it uses.

pub use crate::util::size::human_size;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{Value, json};

use crate::error::Error;
use crate::printer::Printer;
use crate::store::{CacheItemKind, EntryUsage, Store, Usage};

/// Flags of `imgbuild du`.
#[derive(Debug, Clone, Args)]
pub struct DuArgs {
    /// Print JSON (every cache entry included).
    #[arg(long)]
    pub json: bool,
}

/// Measures the store and prints a table (and, when `verbose`, every cache entry).
pub fn run(
    args: &DuArgs,
    store_dir: Option<&Path>,
    verbose: bool,
    printer: Printer,
) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    let usage = store.disk_usage().map_err(Error::Store)?;
    if args.json {
        let text = serde_json::to_string_pretty(&to_json(&store, &usage))
            .expect("usage always serializes");
        return printer.result(&text).map_err(Error::Output);
    }
    let mut text = table(&usage);
    if verbose {
        text.push('\n');
        text.push_str(&entries_table(&usage.entries));
    }
    printer.result(&text).map_err(Error::Output)?;
    printer.message(
        "PRUNE: what `imgbuild prune` would free; PRUNE --all: what `imgbuild prune --all` would free.",
    );
    Ok(())
}

/// The summary table, one row per kind of content and a total.
pub fn table(usage: &Usage) -> String {
    let mut out = format!(
        "{:<14} {:>7} {:>11} {:>11} {:>12}\n",
        "KIND", "COUNT", "SIZE", "PRUNE", "PRUNE --all"
    );
    for row in &usage.rows {
        let count = row.count.map(|c| c.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<14} {:>7} {:>11} {:>11} {:>12}",
            row.kind.label(),
            count,
            human_size(row.size),
            human_size(row.reclaimable),
            human_size(row.reclaimable_all)
        );
    }
    let _ = writeln!(
        out,
        "{:<14} {:>7} {:>11} {:>11} {:>12}",
        "total",
        "",
        human_size(usage.total),
        human_size(usage.reclaimable()),
        human_size(usage.reclaimable_all())
    );
    out
}

/// Every cache entry and compressed layer, least recently used (next to be
/// evicted) first.
fn entries_table(entries: &[EntryUsage]) -> String {
    if entries.is_empty() {
        return "no cache entries\n".to_owned();
    }
    let mut out = format!(
        "{:<12}  {:>11}  {:<6}  {:<20}  CREATED BY (least recently used first)\n",
        "CACHE ENTRY", "SIZE", "SHARED", "LAST USED"
    );
    for entry in entries {
        let what = match (&entry.description, entry.kind) {
            (None, _) => "(unreadable; prune removes it)".to_owned(),
            (Some(text), CacheItemKind::Step) => shorten(text),
            (Some(media_type), CacheItemKind::CompressedLayer) => {
                format!("(compressed copy of a layer: {media_type})")
            }
        };
        let created_by = if entry.usable || entry.description.is_none() {
            what
        } else {
            format!("{what} (blob gone; prune removes it)")
        };
        let _ = writeln!(
            out,
            "{:<12}  {:>11}  {:<6}  {:<20}  {created_by}",
            &entry.key[..12],
            human_size(entry.size),
            if entry.shared { "yes" } else { "no" },
            timestamp(entry.last_used),
        );
    }
    out
}

fn to_json(store: &Store, usage: &Usage) -> Value {
    let kinds: serde_json::Map<String, Value> = usage
        .rows
        .iter()
        .map(|row| {
            (
                row.kind.key().to_owned(),
                json!({
                    "count": row.count,
                    "size": row.size,
                    "reclaimable": row.reclaimable,
                    "reclaimable_all": row.reclaimable_all,
                }),
            )
        })
        .collect();
    let entries: Vec<Value> = usage
        .entries
        .iter()
        .map(|e| {
            // A step says what made it; a compressed layer, its media type.
            let (kind, what, text) = match e.kind {
                CacheItemKind::Step => ("step", "created_by", &e.description),
                CacheItemKind::CompressedLayer => {
                    ("compressed_layer", "media_type", &e.description)
                }
            };
            let mut entry = json!({
                "kind": kind,
                "key": e.key,
                "size": e.size,
                "shared": e.shared,
                "usable": e.usable,
                "last_used": timestamp(e.last_used),
            });
            entry[what] = json!(text);
            entry
        })
        .collect();
    json!({
        "store": store.root(),
        "total": {
            "size": usage.total,
            "reclaimable": usage.reclaimable(),
            "reclaimable_all": usage.reclaimable_all(),
        },
        "kinds": kinds,
        "cache_entries": entries,
    })
}

/// RFC 3339 UTC, to the second.
fn timestamp(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    crate::scheduler::rfc3339(seconds)
}

/// The first line of `text`, at most 60 characters.
fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(60).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(10 << 30), "10.0 GiB");
        assert_eq!(human_size(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn long_history_lines_are_shortened() {
        assert_eq!(shorten("run make"), "run make");
        assert_eq!(shorten("run a\nb"), "run a…");
        let long = "x".repeat(100);
        assert_eq!(shorten(&long), format!("{}…", "x".repeat(60)));
    }
}
