//! `imgbuild history`: the builds this store has seen, as `docker buildx
//! history ls` / `inspect` show them.

use std::fmt::Write as _;
use std::path::Path;

use clap::{Args, Subcommand};

use crate::error::Error;
use crate::printer::Printer;
use crate::store::{BuildRecord, KEPT_BUILDS};

/// Flags of `imgbuild history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// What to show; `ls` when none.
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
}

/// What `imgbuild history` shows.
#[derive(Debug, Clone, Subcommand)]
pub enum HistoryCommand {
    /// The recent builds, newest first: id, start, duration, outcome, and
    /// how many steps ran and came from the cache.
    Ls {
        /// Print JSON: every build's whole record.
        #[arg(long)]
        json: bool,
    },
    /// One build: its request, outcome, images and every step with its time.
    Show {
        /// The build's id (as `history ls` shows it), a unique prefix of
        /// it, or `latest`.
        id: String,
        /// Print JSON: the build's whole record.
        #[arg(long)]
        json: bool,
    },
}

/// Shows the history.
pub fn run(args: &HistoryArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    let mut builds = store.builds().map_err(Error::Store)?;
    builds.reverse();
    let text = match &args.command {
        None | Some(HistoryCommand::Ls { json: false }) => {
            if builds.is_empty() {
                printer.message("no builds yet: `imgbuild apply` records each one here");
                return Ok(());
            }
            table(&builds)
        }
        Some(HistoryCommand::Ls { json: true }) => {
            serde_json::to_string_pretty(&builds).expect("records serialize")
        }
        Some(HistoryCommand::Show { id, json }) => {
            let build = find(&builds, id)?;
            if *json {
                serde_json::to_string_pretty(build).expect("a record serializes")
            } else {
                show(build)
            }
        }
    };
    printer.result(&text).map_err(Error::Output)
}

/// The build `id` names: itself, a unique prefix, or `latest`.
fn find<'b>(builds: &'b [BuildRecord], id: &str) -> Result<&'b BuildRecord, Error> {
    if id == "latest" {
        return builds.first().ok_or_else(|| Error::Usage {
            message: "the store has recorded no build".into(),
            help: "`imgbuild apply` records each build".into(),
        });
    }
    let matching: Vec<&BuildRecord> = builds.iter().filter(|b| b.id.starts_with(id)).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Usage {
            message: format!("no recorded build has the id `{id}`"),
            help: format!("`imgbuild history ls` lists the ids of the last {KEPT_BUILDS} builds"),
        }),
        several => Err(Error::Usage {
            message: format!("`{id}` is the start of {} build ids", several.len()),
            help: "give more of the id".into(),
        }),
    }
}

/// Seconds with two decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:02}s", ms / 1000, ms % 1000 / 10)
}

/// `ls` as a table.
fn table(builds: &[BuildRecord]) -> String {
    let mut out = format!(
        "{:<24} {:<20} {:>9} {:<9} {:>5} {:>6}  {}\n",
        "BUILD ID", "STARTED", "DURATION", "STATUS", "BUILT", "CACHED", "FILE"
    );
    for build in builds {
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:>9} {:<9} {:>5} {:>6}  {}",
            build.id,
            build.started,
            seconds(build.duration_ms),
            if build.succeeded { "ok" } else { "failed" },
            build.count("built"),
            build.count("cached"),
            build.file
        );
    }
    out
}

/// `show` as text.
fn show(build: &BuildRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "build {}", build.id);
    let _ = writeln!(out, "started   {}", build.started);
    let _ = writeln!(out, "duration  {}", seconds(build.duration_ms));
    let _ = writeln!(out, "file      {}", build.file);
    let _ = writeln!(out, "context   {}", build.context);
    if !build.build_args.is_empty() {
        let _ = writeln!(
            out,
            "args      {} (values are not kept)",
            build.build_args.join(", ")
        );
    }
    match &build.error {
        None => {
            let _ = writeln!(out, "status    ok");
        }
        Some(error) => {
            let _ = writeln!(out, "status    failed: {error}");
        }
    }
    for image in &build.images {
        let _ = writeln!(
            out,
            "image     {} {} {}",
            image.name,
            image.digest,
            image.tags.join(" ")
        );
    }
    let _ = writeln!(out, "steps:");
    for step in &build.steps {
        let time = if step.status == "cached" {
            String::new()
        } else {
            format!(" {}", seconds(step.ms))
        };
        let _ = writeln!(
            out,
            "  {:<7}{time}  [{} {}] {}",
            step.status, step.node, step.step, step.summary
        );
    }
    out
}

/// Collects a build's step outcomes from its events, for its record.
#[derive(Debug, Default)]
pub struct StepLog(std::sync::Mutex<Vec<crate::store::StepOutcome>>);

impl StepLog {
    /// Notes what `event` says of a step.
    pub fn observe(&self, event: &crate::scheduler::Event<'_>) {
        use crate::scheduler::Event;
        let mut steps = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (node, step, summary, status, ms) = match event {
            Event::StepStarted {
                node,
                step,
                summary,
            } => (*node, *step, *summary, "failed", 0),
            Event::StepDone {
                node,
                step,
                summary,
                cached,
                elapsed,
                ..
            } => (
                *node,
                *step,
                *summary,
                if *cached { "cached" } else { "built" },
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            ),
            _ => return,
        };
        // A started step stays `failed` unless it is done.
        steps.retain(|s| !(s.node == node && s.step == step));
        steps.push(crate::store::StepOutcome {
            node: node.to_owned(),
            step,
            summary: without_arg_values(summary),
            status: status.to_owned(),
            ms,
        });
    }

    /// Records the build in the store's history (a failure to do so is
    /// only logged: the build's own outcome stands).
    pub fn record(
        self,
        store: &crate::store::Store,
        build: &super::BuildArgs,
        context: &Path,
        started: std::time::SystemTime,
        outcome: Result<&[crate::scheduler::BuiltImage], String>,
    ) {
        let since = started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(0);
        let stamp = crate::scheduler::rfc3339(secs);
        let compact: String = stamp.chars().filter(char::is_ascii_alphanumeric).collect();
        let record = BuildRecord {
            id: format!(
                "{compact}-{:03}-{}",
                since.subsec_millis(),
                std::process::id()
            ),
            started: stamp,
            duration_ms: u64::try_from(started.elapsed().unwrap_or_default().as_millis())
                .unwrap_or(u64::MAX),
            file: build.file.display().to_string(),
            context: context.display().to_string(),
            build_args: build.args.iter().map(|(name, _)| name.clone()).collect(),
            succeeded: outcome.is_ok(),
            error: outcome.as_ref().err().cloned(),
            images: outcome
                .unwrap_or_default()
                .iter()
                .map(|image| crate::store::BuiltRecord {
                    name: image.name.clone(),
                    digest: image.descriptor.digest.to_string(),
                    tags: image.tags.clone(),
                })
                .collect(),
            steps: self
                .0
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        if let Err(e) = store.record_build(&record) {
            tracing::warn!("cannot record the build in the store's history: {e}");
        }
    }
}

/// A step's summary without the values of the build arguments an `arg`
/// step declares (`arg TOKEN=x` is kept as `arg TOKEN`).
fn without_arg_values(summary: &str) -> String {
    match summary.strip_prefix("arg ") {
        Some(args) => {
            let names: Vec<&str> = args
                .split_whitespace()
                .map(|arg| arg.split_once('=').map_or(arg, |(name, _)| name))
                .collect();
            format!("arg {}", names.join(" "))
        }
        None => summary.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arg_values_are_left_out_of_summaries() {
        assert_eq!(super::without_arg_values("arg A=1 B C=x=y"), "arg A B C");
        assert_eq!(super::without_arg_values("run echo A=1"), "run echo A=1");
    }
}
