//! `--progress plain`: numbered lines like `BuildKit`'s, for logs and CI.
//!
//! Every step gets a number when it starts (or comes from the cache) and a
//! header line, `#3 [app@linux/amd64 2/4] run make`. Its output follows as
//! `#3 0.512 line`, seconds since the step started, and its end as
//! `#3 DONE 1.2s`, `#3 CACHED` or `#3 ERROR: …`. When the lines of another
//! step come in between, the running one is left with `#3 ...` and its
//! header is printed again when it goes on. Blocks are separated by a blank
//! line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use super::{Ending, Fate, Outcome, StepCounts, seconds};
use crate::scheduler::{Event, StepTimings};

/// A step: its node id and number.
type StepId = (String, usize);

/// A step that started and is not done (a vertex, in `BuildKit`'s words).
struct Vertex {
    number: usize,
    header: String,
    /// When it started, since the build started.
    started: Duration,
}

/// Writes plain progress lines.
pub(super) struct Plain {
    out: Box<dyn Write + Send>,
    /// The last number given.
    last: usize,
    running: HashMap<StepId, Vertex>,
    /// The running step whose lines were written last.
    current: Option<StepId>,
    /// Whether anything was written, so the next block needs a blank line.
    started: bool,
}

impl Plain {
    /// Writes to `out`.
    pub(super) fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            last: 0,
            running: HashMap::new(),
            current: None,
            started: false,
        }
    }

    pub(super) fn event(&mut self, event: &Event<'_>, now: Duration, steps: &StepCounts) {
        let mut text = String::new();
        match *event {
            // A stage's first lines are its steps'.
            Event::NodeStarted { .. } => {}
            Event::StepStarted {
                node,
                step,
                summary,
            } => {
                let id = (node.to_owned(), step);
                let vertex = self.vertex(header(node, step, summary, steps), now);
                self.running.insert(id.clone(), vertex);
                self.switch(&mut text, &id);
            }
            Event::Output { node, step, line } => {
                let id = (node.to_owned(), step);
                if !self.running.contains_key(&id) {
                    let vertex = self.vertex(header(node, step, "", steps), now);
                    self.running.insert(id.clone(), vertex);
                }
                self.switch(&mut text, &id);
                let vertex = &self.running[&id];
                let at = now.saturating_sub(vertex.started);
                let _ = writeln!(text, "#{} {} {line}", vertex.number, offset(at));
            }
            Event::StepDone {
                node,
                step,
                summary,
                cached,
                elapsed,
                timings,
            } => {
                let id = (node.to_owned(), step);
                if !self.running.contains_key(&id) {
                    let vertex = self.vertex(header(node, step, summary, steps), now);
                    self.running.insert(id.clone(), vertex);
                }
                self.switch(&mut text, &id);
                let vertex = self.running.remove(&id).expect("the step was just added");
                self.current = None;
                if cached {
                    let _ = writeln!(text, "#{} CACHED", vertex.number);
                } else {
                    let _ = write!(text, "#{} DONE {}", vertex.number, seconds(elapsed));
                    if let Some(timings) = timings {
                        text.push_str(&breakdown(&timings, elapsed));
                    }
                    text.push('\n');
                }
            }
        }
        self.write(&text);
    }

    pub(super) fn end(&mut self, ending: &Ending<'_>) {
        let mut text = String::new();
        match ending.outcome {
            Outcome::Built(images) => {
                if self.started {
                    text.push('\n');
                }
                for line in ending.summary_lines(images) {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            Outcome::Failed { .. } => {
                // Steps still running failed, or were stopped by the failure.
                let mut ids: Vec<StepId> = self.running.keys().cloned().collect();
                ids.sort_by_key(|id| self.running[id].number);
                for id in ids {
                    self.switch(&mut text, &id);
                    let vertex = self.running.remove(&id).expect("a running step");
                    self.current = None;
                    match ending.outcome.fate(&id.0, id.1) {
                        Fate::Failed(message) => {
                            let _ = writeln!(text, "#{} ERROR: {message}", vertex.number);
                        }
                        Fate::Canceled => {
                            let _ = writeln!(text, "#{} CANCELED", vertex.number);
                        }
                    }
                }
            }
        }
        self.write(&text);
    }

    /// A new numbered step.
    fn vertex(&mut self, header: String, now: Duration) -> Vertex {
        self.last += 1;
        Vertex {
            number: self.last,
            header,
            started: now,
        }
    }

    /// Makes `id` the step whose lines are written, with its header when
    /// another step's lines came last.
    fn switch(&mut self, text: &mut String, id: &StepId) {
        if self.current.as_ref() == Some(id) {
            return;
        }
        if let Some(vertex) = self.current.take().and_then(|c| self.running.get(&c)) {
            let _ = writeln!(text, "#{} ...", vertex.number);
        }
        if self.started {
            text.push('\n');
        }
        let vertex = &self.running[id];
        let _ = writeln!(text, "#{} {}", vertex.number, vertex.header);
        self.current = Some(id.clone());
        self.started = true;
    }

    fn write(&mut self, text: &str) {
        if !text.is_empty() {
            // Progress is best effort: a closed stderr must not fail the build.
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
        }
    }
}

/// ` (rootfs 0.10s, run 0.80s, diff 0.31s, layer 0.15s, commit 0.06s,
/// other 0.01s)`: where a step's `elapsed` went, two decimals each.
fn breakdown(timings: &StepTimings, elapsed: Duration) -> String {
    let mut text = String::from(" (");
    for (name, duration) in timings
        .phases()
        .into_iter()
        .chain([("other", timings.other(elapsed))])
    {
        if text.len() > 2 {
            text.push_str(", ");
        }
        let _ = write!(text, "{name} {:.2}s", duration.as_secs_f64());
    }
    text.push(')');
    text
}

/// `[app@linux/amd64 2/4] run make`.
fn header(node: &str, step: usize, summary: &str, steps: &StepCounts) -> String {
    let mut header = match steps.get(node) {
        Some(total) => format!("[{node} {step}/{total}]"),
        None => format!("[{node} {step}]"),
    };
    if !summary.is_empty() {
        header.push(' ');
        header.push_str(summary);
    }
    header
}

/// Seconds since a step started, as `BuildKit` writes them before output
/// lines: three decimals below 10s, two below 100s, then one.
pub(super) fn offset(at: Duration) -> String {
    let secs = at.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.3}")
    } else if secs < 100.0 {
        format!("{secs:.2}")
    } else {
        format!("{secs:.1}")
    }
}
