//! `imgbuild prune`: remove build cache and whatever nothing needs.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;

use super::du::human_size;
use crate::error::Error;
use crate::printer::Printer;
use crate::store::{CacheItemKind, EntryRemoval, PruneOptions, PruneReport};

/// Flags of `imgbuild prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove every cache entry, snapshot and cache mount, and every blob
    /// no tag reaches: only tagged images stay.
    #[arg(short, long)]
    pub all: bool,
    /// Then remove least recently used cache entries (then snapshots) until
    /// the store uses at most SIZE of disk, e.g. `10GB` or `512MiB` (K, M and
    /// G are powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_keep_storage, conflicts_with = "all")]
    pub keep_storage: Option<u64>,
    /// Fail at once if a build is using the store, instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

fn parse_keep_storage(text: &str) -> Result<u64, String> {
    crate::ir::value::parse_size(text).ok_or_else(|| {
        format!(
            "`{text}` is not a size: write a whole number with an optional unit, e.g. `10GB`, `512MiB`, `100k`"
        )
    })
}

/// Takes the store to itself (waiting for running builds unless `--no-wait`),
/// prunes, and prints what was removed (each item too when `verbose`).
pub fn run(
    args: &PruneArgs,
    store_dir: Option<&Path>,
    verbose: bool,
    printer: Printer,
) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    // Without a lock held here, `prune` tries once and fails with a clear "in use".
    let _lock = if args.no_wait {
        None
    } else {
        match store.try_lock_exclusive().map_err(Error::Store)? {
            Some(lock) => Some(lock),
            None => {
                printer.message(
                    "a build is using the store; waiting for it to finish (`--no-wait` fails instead)",
                );
                Some(store.lock_exclusive().map_err(Error::Store)?)
            }
        }
    };
    let options = PruneOptions {
        all: args.all,
        keep_storage: args.keep_storage,
    };
    let report = store.prune(&options).map_err(Error::Store)?;
    printer
        .result(&render(&report, verbose))
        .map_err(Error::Output)?;
    if let Some(limit) = args.keep_storage
        && report.size > limit
    {
        printer.message(&format!(
            "the store still uses {}, more than --keep-storage {}: no cache entries or snapshots are left, \
             and tagged images and cache mounts are never evicted (`imgbuild prune --all` removes cache mounts)",
            human_size(report.size),
            human_size(limit)
        ));
    }
    Ok(())
}

/// What was removed: every item when `verbose`, then the counts and the space freed.
pub fn render(report: &PruneReport, verbose: bool) -> String {
    let mut out = String::new();
    if verbose {
        for entry in &report.entries {
            let why = match entry.why {
                EntryRemoval::Unusable => "unusable",
                EntryRemoval::All => "--all",
                EntryRemoval::Evicted => "least recently used",
            };
            let what = entry.description.as_deref().unwrap_or("(unreadable)");
            let first_line = what.lines().next().unwrap_or_default();
            let kind = match entry.kind {
                CacheItemKind::Step => "cache entry",
                CacheItemKind::CompressedLayer => "compressed layer",
            };
            let _ = writeln!(
                out,
                "removed {kind} {} ({why}): {first_line}",
                &entry.key[..12]
            );
        }
        for digest in &report.blobs {
            let _ = writeln!(out, "removed blob {digest}");
        }
        for diff_id in &report.snapshots {
            let _ = writeln!(out, "removed snapshot {diff_id}");
        }
        for name in &report.cache_mounts {
            let _ = writeln!(out, "removed cache mount {name}");
        }
        for path in &report.temp {
            let _ = writeln!(out, "removed temp file {}", path.display());
        }
    }
    let mut counts = vec![
        plural(report.entries.len(), "cache entry", "cache entries"),
        plural(report.blobs.len(), "blob", "blobs"),
        plural(report.snapshots.len(), "snapshot", "snapshots"),
        plural(report.cache_mounts.len(), "cache mount", "cache mounts"),
        plural(report.temp.len(), "temp file", "temp files"),
    ];
    if report.index_files > 0 {
        counts.push(plural(
            report.index_files,
            "cache index file",
            "cache index files",
        ));
    }
    let _ = writeln!(out, "removed {}", counts.join(", "));
    let _ = writeln!(
        out,
        "reclaimed {}; the store now uses {}",
        human_size(report.reclaimed),
        human_size(report.size)
    );
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
