//! `--progress json`: one JSON object per line per event, for programs.
//!
//! Every object has an `event` field naming its kind; the field names are
//! stable (the book's `apply` page lists them). Times are whole
//! milliseconds: `time_ms` since the build started, `elapsed_ms` how long a
//! step (or the whole build, in `summary`) took.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::{Ending, Fate, Outcome, StepCounts, millis};
use crate::scheduler::{Event, StepTimings};

/// The last line.
fn summary<'a>(ending: &Ending<'_>, images: Vec<Image<'a>>, error: Option<&'a str>) -> Line<'a> {
    Line::Summary {
        success: error.is_none(),
        built: ending.built,
        cached: ending.cached,
        elapsed_ms: millis(ending.elapsed),
        images,
        error,
    }
}

/// One line of JSON progress.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    /// A stage starts on one platform.
    NodeStarted {
        node: &'a str,
        /// How many steps it has.
        steps: usize,
        time_ms: u64,
    },
    /// A step is not in the cache and starts running.
    StepStarted {
        node: &'a str,
        step: usize,
        summary: &'a str,
        time_ms: u64,
    },
    /// A line a `run` step printed.
    Output {
        node: &'a str,
        step: usize,
        line: &'a str,
        time_ms: u64,
    },
    /// A step ran, or came from the cache.
    StepDone {
        node: &'a str,
        step: usize,
        summary: &'a str,
        cached: bool,
        elapsed_ms: u64,
        /// Where `elapsed_ms` went; absent when cached.
        #[serde(skip_serializing_if = "Option::is_none")]
        timings_ms: Option<TimingsMs>,
        time_ms: u64,
    },
    /// A step failed; `step` is null when the stage failed before its
    /// steps (its base image).
    StepFailed {
        node: &'a str,
        step: Option<usize>,
        error: &'a str,
        time_ms: u64,
    },
    /// Another step's failure stopped the build while this one ran.
    StepCanceled {
        node: &'a str,
        step: usize,
        time_ms: u64,
    },
    /// The last line.
    Summary {
        success: bool,
        built: usize,
        cached: usize,
        elapsed_ms: u64,
        images: Vec<Image<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    },
}

/// A step's phases in whole milliseconds (see [`StepTimings`]); `other`
/// is what is in none of them.
#[derive(Debug, Serialize)]
struct TimingsMs {
    rootfs: u64,
    run: u64,
    diff: u64,
    layer: u64,
    commit: u64,
    other: u64,
}

impl TimingsMs {
    fn new(t: &StepTimings, elapsed: Duration) -> Self {
        Self {
            rootfs: millis(t.rootfs),
            run: millis(t.run),
            diff: millis(t.diff),
            layer: millis(t.layer),
            commit: millis(t.commit),
            other: millis(t.other(elapsed)),
        }
    }
}

/// An image in the summary.
#[derive(Debug, Serialize)]
struct Image<'a> {
    name: &'a str,
    /// Its manifest's digest, or its index's with several platforms.
    digest: &'a str,
    tags: &'a [String],
    platforms: Vec<PlatformImage<'a>>,
}

/// One platform's manifest of an image.
#[derive(Debug, Serialize)]
struct PlatformImage<'a> {
    platform: String,
    digest: &'a str,
}

/// Writes JSON lines.
pub(super) struct Json {
    out: Box<dyn Write + Send>,
    /// The steps that started and are not done, in the order they started.
    running: Vec<(String, usize)>,
}

impl Json {
    /// Writes to `out`.
    pub(super) fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            running: Vec::new(),
        }
    }

    pub(super) fn event(&mut self, event: &Event<'_>, now: Duration, steps: &StepCounts) {
        let time_ms = millis(now);
        match *event {
            Event::StepStarted { node, step, .. } => self.running.push((node.to_owned(), step)),
            Event::StepDone { node, step, .. } => {
                self.running
                    .retain(|(n, s)| (n.as_str(), *s) != (node, step));
            }
            Event::NodeStarted { .. } | Event::Output { .. } => {}
        }
        let line = match *event {
            Event::NodeStarted { node } => Line::NodeStarted {
                node,
                steps: steps.get(node).copied().unwrap_or_default(),
                time_ms,
            },
            Event::StepStarted {
                node,
                step,
                summary,
            } => Line::StepStarted {
                node,
                step,
                summary,
                time_ms,
            },
            Event::Output { node, step, line } => Line::Output {
                node,
                step,
                line,
                time_ms,
            },
            Event::StepDone {
                node,
                step,
                summary,
                cached,
                elapsed,
                timings,
            } => Line::StepDone {
                node,
                step,
                summary,
                cached,
                elapsed_ms: millis(elapsed),
                timings_ms: timings.map(|t| TimingsMs::new(&t, elapsed)),
                time_ms,
            },
        };
        let text = render(&[line]);
        self.write(&text);
    }

    pub(super) fn end(&mut self, ending: &Ending<'_>) {
        match ending.outcome {
            Outcome::Built(built) => {
                let images = built
                    .iter()
                    .map(|image| Image {
                        name: &image.name,
                        digest: image.descriptor.digest.as_str(),
                        tags: &image.tags,
                        platforms: image
                            .platforms
                            .iter()
                            .map(|(platform, descriptor, _)| PlatformImage {
                                platform: platform.to_string(),
                                digest: descriptor.digest.as_str(),
                            })
                            .collect(),
                    })
                    .collect();
                let text = render(&[summary(ending, images, None)]);
                self.write(&text);
            }
            Outcome::Failed { error, failures } => {
                let time_ms = millis(ending.elapsed);
                let mut lines: Vec<Line<'_>> = failures
                    .iter()
                    .map(|failure| Line::StepFailed {
                        node: failure.node,
                        step: failure.step,
                        error: failure.message,
                        time_ms,
                    })
                    .collect();
                for (node, step) in &self.running {
                    let named = failures
                        .iter()
                        .any(|f| f.node == node && f.step == Some(*step));
                    match ending.outcome.fate(node, *step) {
                        _ if named => {}
                        Fate::Failed(error) => lines.push(Line::StepFailed {
                            node,
                            step: Some(*step),
                            error,
                            time_ms,
                        }),
                        Fate::Canceled => lines.push(Line::StepCanceled {
                            node,
                            step: *step,
                            time_ms,
                        }),
                    }
                }
                lines.push(summary(ending, Vec::new(), Some(error)));
                let text = render(&lines);
                self.write(&text);
            }
        }
    }

    /// Writes `text` at once, so no other thread's line comes between.
    fn write(&mut self, text: &[u8]) {
        // Progress is best effort: a closed stderr must not fail the build.
        let _ = self.out.write_all(text);
        let _ = self.out.flush();
    }
}

/// `lines` as JSON, one per line.
fn render(lines: &[Line<'_>]) -> Vec<u8> {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, line).expect("progress events serialize");
        text.push(b'\n');
    }
    text
}
