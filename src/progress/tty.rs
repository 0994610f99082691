//! `--progress tty`: a live view for terminals.
//!
//! Every stage that is building has one spinner line at the bottom of the
//! terminal: its running step, how long the step has run, and the last line
//! the step printed, cut to the terminal's width:
//! `⠋ [app@linux/amd64] 2. run make  12.3s  | cc -c main.c`. A finished step
//! leaves a permanent line above them, with its time or `CACHED`. indicatif
//! draws every line under one lock, so stages that build at the same time
//! never garble each other's lines.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{Ending, Fate, Outcome, StepCounts, seconds};
use crate::scheduler::Event;

/// How often the spinners turn and the times count.
const TICK: Duration = Duration::from_millis(100);
/// Columns the spinner, the time and a little output need besides the step.
const RESERVED_COLUMNS: usize = 24;
/// The step's share of a wide terminal, in fifths: the rest is for its output.
const STEP_FIFTHS: usize = 3;

/// Draws spinner lines with indicatif.
pub(super) struct Tty {
    multi: MultiProgress,
    /// The terminal's width now.
    width: Box<dyn Fn() -> usize + Send>,
    style: ProgressStyle,
    /// The stages building, by node id.
    nodes: HashMap<String, Building>,
}

/// A stage that is building.
struct Building {
    bar: ProgressBar,
    /// The step running, and its summary; None between steps.
    step: Option<(usize, String)>,
}

impl Tty {
    /// Draws on standard error.
    pub(super) fn stderr() -> Self {
        let term = console::Term::stderr();
        Self::new(
            ProgressDrawTarget::stderr(),
            Box::new(move || usize::from(term.size().1)),
        )
    }

    /// Draws on `target`, which is `width()` columns wide.
    fn new(target: ProgressDrawTarget, width: Box<dyn Fn() -> usize + Send>) -> Self {
        let style = ProgressStyle::with_template("{spinner} {prefix}  {step_time}  {wide_msg}")
            .expect("the template is valid")
            .with_key("step_time", step_time);
        Self {
            multi: MultiProgress::with_draw_target(target),
            width,
            style,
            nodes: HashMap::new(),
        }
    }

    pub(super) fn event(&mut self, event: &Event<'_>, steps: &StepCounts) {
        match *event {
            Event::NodeStarted { node } => {
                // A stage without steps has nothing to show, and no event
                // would tell when it is done.
                if steps.get(node).is_some_and(|&n| n > 0) {
                    self.building(node);
                }
            }
            Event::StepStarted {
                node,
                step,
                summary,
            } => {
                let width = (self.width)();
                let budget = width
                    .saturating_sub(RESERVED_COLUMNS)
                    .min(width * STEP_FIFTHS / 5)
                    .max(16);
                let label = visible(&label(node, step, summary));
                let building = self.building(node);
                building
                    .bar
                    .set_prefix(console::truncate_str(&label, budget, "…").into_owned());
                building.bar.set_message("");
                building.bar.reset_elapsed();
                building.step = Some((step, summary.to_owned()));
            }
            Event::Output { node, line, .. } => {
                if let Some(building) = self.nodes.get(node) {
                    building.bar.set_message(format!("| {}", visible(line)));
                }
            }
            Event::StepDone {
                node,
                step,
                summary,
                cached,
                elapsed,
                ..
            } => {
                let result = if cached {
                    "CACHED".to_owned()
                } else {
                    seconds(elapsed)
                };
                self.println(&format!(
                    "{}  {result}",
                    visible(&label(node, step, summary))
                ));
                if steps.get(node).is_none_or(|&total| step >= total) {
                    if let Some(done) = self.nodes.remove(node) {
                        self.forget(&done);
                    }
                } else if let Some(building) = self.nodes.get_mut(node) {
                    between_steps(node, building);
                }
            }
        }
    }

    pub(super) fn end(&mut self, ending: &Ending<'_>) {
        match ending.outcome {
            Outcome::Built(images) => {
                self.clear();
                for line in ending.summary_lines(images) {
                    self.println(&line);
                }
            }
            Outcome::Failed { .. } => {
                let mut running: Vec<(&String, &(usize, String))> = self
                    .nodes
                    .iter()
                    .filter_map(|(node, building)| Some((node, building.step.as_ref()?)))
                    .collect();
                running.sort();
                let lines: Vec<String> = running
                    .into_iter()
                    .map(|(node, (step, summary))| {
                        let result = match ending.outcome.fate(node, *step) {
                            Fate::Failed(_) => "ERROR",
                            Fate::Canceled => "CANCELED",
                        };
                        format!("{}  {result}", visible(&label(node, *step, summary)))
                    })
                    .collect();
                for line in lines {
                    self.println(&line);
                }
                self.clear();
            }
        }
    }

    /// The line of `node`, made when it is not there yet.
    fn building(&mut self, node: &str) -> &mut Building {
        if !self.nodes.contains_key(node) {
            let bar = self
                .multi
                .add(ProgressBar::new_spinner().with_style(self.style.clone()));
            let mut building = Building { bar, step: None };
            between_steps(node, &mut building);
            building.bar.enable_steady_tick(TICK);
            self.nodes.insert(node.to_owned(), building);
        }
        self.nodes.get_mut(node).expect("just inserted")
    }

    /// A permanent line above the spinners.
    fn println(&self, line: &str) {
        // Progress is best effort: a closed stderr must not fail the build.
        let _ = self.multi.println(line);
    }

    /// Removes every spinner line.
    fn clear(&mut self) {
        let nodes: Vec<Building> = self.nodes.drain().map(|(_, b)| b).collect();
        for building in &nodes {
            self.forget(building);
        }
    }

    fn forget(&self, building: &Building) {
        building.bar.finish_and_clear();
        self.multi.remove(&building.bar);
    }
}

impl Drop for Tty {
    /// Leaves no spinner behind when the build stops early.
    fn drop(&mut self) {
        self.clear();
    }
}

/// Shows that `node` is between steps (loading its base, checking the cache).
fn between_steps(node: &str, building: &mut Building) {
    building.step = None;
    building.bar.set_prefix(format!("[{}] …", visible(node)));
    building.bar.set_message("");
    building.bar.reset_elapsed();
}

/// `[app@linux/amd64] 2. run make`.
fn label(node: &str, step: usize, summary: &str) -> String {
    format!("[{node}] {step}. {summary}")
}

/// The `{step_time}` of the template: `12.3s` since the step started.
fn step_time(state: &ProgressState, out: &mut dyn fmt::Write) {
    let _ = out.write_str(&seconds(state.elapsed()));
}

/// What a terminal would show of `line` on one row: the text after its last
/// carriage return, without escape sequences or control characters that
/// would move the cursor and garble the spinners.
fn visible(line: &str) -> String {
    let last = line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    console::strip_ansi_codes(last)
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
pub(super) fn in_memory(term: &indicatif::InMemoryTerm) -> Tty {
    use indicatif::TermLike as _;
    let width = usize::from(term.width());
    Tty::new(
        ProgressDrawTarget::term_like(Box::new(term.clone())),
        Box::new(move || width),
    )
}
