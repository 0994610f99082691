//! Shows the build's progress on standard error: a live view on a terminal
//! (`tty`), `BuildKit`-like numbered lines for logs (`plain`), one JSON object
//! per line for programs (`json`), or nothing (`quiet`).
//!
//! The scheduler reports [`Event`]s from several threads at once. Every event
//! is rendered under one lock, so the lines of stages that build at the same
//! time never mix. Standard output stays the command's result. Events carry
//! no secret values, and nothing here adds any.

mod json;
mod plain;
mod tty;

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ir::BuildGraph;
use crate::printer::Printer;
use crate::scheduler::{BuildError, BuiltImage, Event};

/// How `--progress` shows the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` when standard error is a terminal, else `plain`.
    Auto,
    /// One live line per running step, then one line per finished step.
    Tty,
    /// Numbered lines like `BuildKit`'s `--progress=plain`, for logs.
    Plain,
    /// One JSON object per line per event, for programs.
    Json,
    /// Nothing.
    Quiet,
}

/// What `--progress tty` says when standard error is not a terminal and it
/// shows `plain` instead.
pub const TTY_FALLBACK_NOTE: &str =
    "standard error is not a terminal: showing `--progress plain` instead of `tty`";

/// The renderer a mode comes down to on this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolved {
    Tty,
    Plain,
    Json,
    Quiet,
}

impl ProgressMode {
    /// The renderer to use: quiet when `printer` is; `auto` picks `tty` when
    /// `terminal` (standard error is an interactive terminal) and `plain`
    /// otherwise. `tty` without a terminal (a CI log, a pipe) falls back to
    /// `plain`, as `docker build` does, rather than fail the build.
    fn resolve(self, printer: Printer, terminal: Terminal) -> Resolved {
        if printer == Printer::Quiet {
            return Resolved::Quiet;
        }
        match self {
            ProgressMode::Auto if terminal == Terminal::Interactive => Resolved::Tty,
            ProgressMode::Tty if terminal != Terminal::None => Resolved::Tty,
            ProgressMode::Auto | ProgressMode::Tty | ProgressMode::Plain => Resolved::Plain,
            ProgressMode::Json => Resolved::Json,
            ProgressMode::Quiet => Resolved::Quiet,
        }
    }
}

/// What standard error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    /// A file or a pipe.
    None,
    /// A terminal that cannot move the cursor (`TERM=dumb`).
    Dumb,
    /// A terminal.
    Interactive,
}

impl Terminal {
    fn stderr() -> Self {
        if !io::stderr().is_terminal() {
            Terminal::None
        } else if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
            Terminal::Dumb
        } else {
            Terminal::Interactive
        }
    }
}

/// Tells the time since the build started; tests inject their own.
trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// The real clock.
struct Monotonic(Instant);

impl Clock for Monotonic {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The number of steps of each node, by node id (`stage@platform`).
type StepCounts = HashMap<String, usize>;

/// Renders a build's events and its summary.
pub struct Progress {
    clock: Box<dyn Clock>,
    steps: StepCounts,
    inner: Mutex<Inner>,
}

struct Inner {
    built: usize,
    cached: usize,
    ended: bool,
    renderer: Renderer,
}

enum Renderer {
    Quiet,
    Plain(plain::Plain),
    Json(json::Json),
    Tty(tty::Tty),
}

impl Progress {
    /// The display `mode` asks for, on standard error, for the nodes of
    /// `graph`; nothing when `printer` is quiet. When `tty` falls back to
    /// `plain`, says so first ([`TTY_FALLBACK_NOTE`]).
    pub fn new(mode: ProgressMode, printer: Printer, graph: &BuildGraph) -> Self {
        let stderr = || Box::new(io::stderr()) as Box<dyn Write + Send>;
        let resolved = mode.resolve(printer, Terminal::stderr());
        if mode == ProgressMode::Tty && resolved == Resolved::Plain {
            printer.message(TTY_FALLBACK_NOTE);
        }
        let renderer = match resolved {
            Resolved::Tty => Renderer::Tty(tty::Tty::stderr()),
            Resolved::Plain => Renderer::Plain(plain::Plain::new(stderr())),
            Resolved::Json => Renderer::Json(json::Json::new(stderr())),
            Resolved::Quiet => Renderer::Quiet,
        };
        let steps = graph
            .nodes()
            .map(|(_, node)| (node.id.clone(), node.steps.len()))
            .collect();
        Self::with(renderer, steps, Box::new(Monotonic(Instant::now())))
    }

    fn with(renderer: Renderer, steps: StepCounts, clock: Box<dyn Clock>) -> Self {
        Self {
            clock,
            steps,
            inner: Mutex::new(Inner {
                built: 0,
                cached: 0,
                ended: false,
                renderer,
            }),
        }
    }

    /// Shows one event of the build; the scheduler's report callback.
    pub fn event(&self, event: &Event<'_>) {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Event::StepDone { cached, .. } = event {
            if *cached {
                inner.cached += 1;
            } else {
                inner.built += 1;
            }
        }
        match &mut inner.renderer {
            Renderer::Quiet => {}
            Renderer::Plain(plain) => plain.event(event, now, &self.steps),
            Renderer::Json(json) => json.event(event, now, &self.steps),
            Renderer::Tty(tty) => tty.event(event, &self.steps),
        }
    }

    /// Ends the display of a build that produced `images`: the summary.
    pub fn finish(&self, images: &[BuiltImage]) {
        self.end(&Outcome::Built(images));
    }

    /// Ends the display of a build that failed with `error`: marks the steps
    /// it names as failed. The error itself is the caller's to print.
    pub fn fail(&self, error: &(dyn std::error::Error + 'static)) {
        let mut failures = Vec::new();
        if let Some(error) = error.downcast_ref::<BuildError>() {
            collect_failures(error, &mut failures);
        }
        self.end(&Outcome::Failed {
            error: error.to_string(),
            failures,
        });
    }

    fn end(&self, outcome: &Outcome<'_>) {
        let elapsed = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut inner.ended, true) {
            return;
        }
        let ending = Ending {
            built: inner.built,
            cached: inner.cached,
            elapsed,
            outcome,
        };
        match &mut inner.renderer {
            Renderer::Quiet => {}
            Renderer::Plain(plain) => plain.end(&ending),
            Renderer::Json(json) => json.end(&ending),
            Renderer::Tty(tty) => tty.end(&ending),
        }
    }
}

/// How a build ended.
struct Ending<'a> {
    /// Steps that ran.
    built: usize,
    /// Steps that came from the cache.
    cached: usize,
    /// Since the build started.
    elapsed: Duration,
    outcome: &'a Outcome<'a>,
}

enum Outcome<'a> {
    Built(&'a [BuiltImage]),
    Failed {
        /// The whole error, as one line.
        error: String,
        /// The steps and stages it names.
        failures: Vec<Failure<'a>>,
    },
}

/// A failed step, or a stage that failed before its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure<'a> {
    node: &'a str,
    step: Option<usize>,
    message: &'a str,
}

/// What became of a step that was still running when the build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate<'a> {
    /// It failed, with this message.
    Failed(&'a str),
    /// Another step's failure stopped the build.
    Canceled,
}

impl Outcome<'_> {
    /// What became of step `step` of `node`, running when the build ended.
    /// An error that names no step (the store failed) is the running
    /// steps' own: a failed stage stops only itself, so only failed stages
    /// have steps still running.
    fn fate(&self, node: &str, step: usize) -> Fate<'_> {
        match self {
            Outcome::Built(_) => Fate::Canceled,
            Outcome::Failed { error, failures } => {
                match failures
                    .iter()
                    .find(|f| f.node == node && f.step == Some(step))
                {
                    Some(failure) => Fate::Failed(failure.message),
                    None if failures.is_empty() => Fate::Failed(error),
                    None => Fate::Canceled,
                }
            }
        }
    }
}

fn collect_failures<'a>(error: &'a BuildError, out: &mut Vec<Failure<'a>>) {
    match error {
        BuildError::Step {
            node,
            step,
            message,
            ..
        } => out.push(Failure {
            node,
            step: Some(*step),
            message,
        }),
        BuildError::Base { node, message, .. } => out.push(Failure {
            node,
            step: None,
            message,
        }),
        BuildError::Several { errors } => {
            for error in errors {
                collect_failures(error, out);
            }
        }
        _ => {}
    }
}

impl Ending<'_> {
    /// The summary for people: counts and time, then each image's name,
    /// digest and tags.
    fn summary_lines(&self, images: &[BuiltImage]) -> Vec<String> {
        let steps = if self.built == 1 { "step" } else { "steps" };
        let mut lines = vec![format!(
            "{} {steps} built, {} cached in {}",
            self.built,
            self.cached,
            seconds(self.elapsed)
        )];
        for image in images {
            let mut line = format!("  {}  {}", image.name, image.descriptor.digest);
            for tag in &image.tags {
                line.push_str("  ");
                line.push_str(tag);
            }
            lines.push(line);
        }
        lines
    }
}

/// `1.2s`: a duration with one decimal, as `BuildKit` prints them.
fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Whole milliseconds, for JSON.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
