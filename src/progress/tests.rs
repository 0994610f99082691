//! The renderers fed with event sequences; times come from a clock the
//! tests move.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::InMemoryTerm;

use super::*;
use crate::image::{Image, ImageConfig};
use crate::ir::Platform;
use crate::scheduler::StepTimings;
use crate::store::{Descriptor, Digest, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

/// A clock that moves only when told.
#[derive(Clone, Default)]
struct ManualClock(Arc<Mutex<Duration>>);

impl ManualClock {
    fn advance(&self, millis: u64) {
        *self.0.lock().unwrap() += Duration::from_millis(millis);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// Collects what a renderer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const BASE: &str = "base@linux/amd64";
const APP: &str = "app@linux/amd64";
/// A stage the step counts do not know.
const LONG: &str = "long@linux/amd64";

fn steps() -> StepCounts {
    [(BASE.to_owned(), 3), (APP.to_owned(), 1)].into()
}

fn plain() -> (Progress, ManualClock, Captured) {
    let clock = ManualClock::default();
    let out = Captured::default();
    let renderer = Renderer::Plain(plain::Plain::new(Box::new(out.clone())));
    (
        Progress::with(renderer, steps(), Box::new(clock.clone())),
        clock,
        out,
    )
}

fn json() -> (Progress, ManualClock, Captured) {
    let clock = ManualClock::default();
    let out = Captured::default();
    let renderer = Renderer::Json(json::Json::new(Box::new(out.clone())));
    (
        Progress::with(renderer, steps(), Box::new(clock.clone())),
        clock,
        out,
    )
}

fn tty(term: &InMemoryTerm) -> (Progress, ManualClock) {
    let clock = ManualClock::default();
    let renderer = Renderer::Tty(tty::in_memory(term));
    (
        Progress::with(renderer, steps(), Box::new(clock.clone())),
        clock,
    )
}

/// Two stages building at once: `base` has a cached step and a `run` step
/// whose output interleaves with `app`'s only step.
fn build_until_base_runs_step_3(progress: &Progress, clock: &ManualClock) {
    progress.event(&Event::NodeStarted { node: BASE });
    progress.event(&Event::NodeStarted { node: APP });
    clock.advance(40);
    progress.event(&Event::StepDone {
        node: BASE,
        step: 1,
        summary: "copy src/ -> /src/",
        cached: true,
        elapsed: Duration::ZERO,
        timings: None,
    });
    progress.event(&Event::StepStarted {
        node: BASE,
        step: 2,
        summary: "run make",
    });
    clock.advance(123);
    progress.event(&Event::Output {
        node: BASE,
        step: 2,
        line: "cc -c main.c",
    });
    progress.event(&Event::StepStarted {
        node: APP,
        step: 1,
        summary: "file /etc/app.conf (12 bytes)",
    });
    clock.advance(12_000);
    progress.event(&Event::Output {
        node: BASE,
        step: 2,
        line: "cc -o app main.o",
    });
    progress.event(&Event::StepDone {
        node: APP,
        step: 1,
        summary: "file /etc/app.conf (12 bytes)",
        cached: false,
        elapsed: Duration::from_millis(12_050),
        timings: None,
    });
    clock.advance(100_000);
    progress.event(&Event::Output {
        node: BASE,
        step: 2,
        line: "done",
    });
    progress.event(&Event::StepDone {
        node: BASE,
        step: 2,
        summary: "run make",
        cached: false,
        elapsed: Duration::from_millis(112_123),
        timings: Some(StepTimings {
            rootfs: Duration::from_millis(100),
            run: Duration::from_secs(110),
            diff: Duration::from_millis(1_310),
            layer: Duration::from_millis(450),
            commit: Duration::from_millis(60),
        }),
    });
    progress.event(&Event::StepStarted {
        node: BASE,
        step: 3,
        summary: "run make test",
    });
    clock.advance(500);
    progress.event(&Event::Output {
        node: BASE,
        step: 3,
        line: "ok 1 - parses",
    });
}

fn finish_base(progress: &Progress, clock: &ManualClock) {
    clock.advance(700);
    progress.event(&Event::StepDone {
        node: BASE,
        step: 3,
        summary: "run make test",
        cached: false,
        elapsed: Duration::from_millis(1_200),
        timings: None,
    });
}

fn images() -> Vec<BuiltImage> {
    let platform = Platform::parse("linux/amd64").unwrap();
    let manifest = Descriptor::new(MANIFEST_MEDIA_TYPE, Digest::of(b"manifest"), 420);
    let image = Image {
        config: ImageConfig::scratch(platform.clone(), "1970-01-01T00:00:00Z"),
        layers: Vec::new(),
    };
    vec![
        BuiltImage {
            name: "app".into(),
            tags: vec!["localhost/app:1".into(), "localhost/app:latest".into()],
            descriptor: Descriptor::new(INDEX_MEDIA_TYPE, Digest::of(b"index"), 300),
            platforms: vec![(platform, manifest.clone(), image.clone())],
        },
        BuiltImage {
            name: "base".into(),
            tags: Vec::new(),
            descriptor: manifest.clone(),
            platforms: Vec::new(),
        },
    ]
}

fn step_failure() -> BuildError {
    BuildError::Step {
        node: BASE.into(),
        step: 3,
        summary: "run make test".into(),
        message: "the command exited with code 2".into(),
        help: "its last output:\nnot ok 2".into(),
    }
}

#[test]
fn plain_numbers_steps_like_buildkit() {
    let (progress, clock, out) = plain();
    build_until_base_runs_step_3(&progress, &clock);
    finish_base(&progress, &clock);
    clock.advance(300);
    progress.finish(&images());
    insta::assert_snapshot!(out.text());
}

/// A failure of a stage other than the running ones.
fn other_stage_failure() -> BuildError {
    BuildError::Step {
        node: "other@linux/amd64".into(),
        step: 1,
        summary: "run false".into(),
        message: "the command exited with code 1".into(),
        help: String::new(),
    }
}

#[test]
fn plain_marks_the_failed_step() {
    let (progress, clock, out) = plain();
    build_until_base_runs_step_3(&progress, &clock);
    progress.fail(&step_failure());
    let text = out.text();
    assert!(
        text.ends_with("#4 [base@linux/amd64 3/3] run make test\n#4 0.500 ok 1 - parses\n#4 ERROR: the command exited with code 2\n"),
        "{text}"
    );
    assert!(
        !text.contains("cached in"),
        "no summary after a failure:\n{text}"
    );
}

#[test]
fn plain_cancels_steps_the_error_does_not_name() {
    let (progress, clock, out) = plain();
    build_until_base_runs_step_3(&progress, &clock);
    progress.fail(&other_stage_failure());
    assert!(out.text().ends_with("#4 CANCELED\n"), "{}", out.text());
}

#[test]
fn plain_blames_running_steps_for_errors_without_a_step() {
    let (progress, clock, out) = plain();
    build_until_base_runs_step_3(&progress, &clock);
    let error = BuildError::Store(crate::store::StoreError::Corrupt {
        path: "/store/blobs/sha256/00".into(),
        why: "truncated".into(),
    });
    progress.fail(&error);
    let text = out.text();
    let last = text.lines().last().unwrap();
    assert_eq!(last, format!("#4 ERROR: {error}"), "{text}");
}

#[test]
fn plain_offsets_follow_buildkit_precision() {
    assert_eq!(plain::offset(Duration::from_millis(5)), "0.005");
    assert_eq!(plain::offset(Duration::from_millis(12_345)), "12.35");
    assert_eq!(plain::offset(Duration::from_millis(123_456)), "123.5");
}

#[test]
fn json_has_one_object_per_event() {
    let (progress, clock, out) = json();
    build_until_base_runs_step_3(&progress, &clock);
    finish_base(&progress, &clock);
    progress.finish(&images());
    insta::assert_snapshot!(out.text());
    for line in out.text().lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(value["event"].is_string(), "{line}");
    }
}

#[test]
fn json_ends_a_failed_build_with_its_failures() {
    let (progress, clock, out) = json();
    build_until_base_runs_step_3(&progress, &clock);
    let error = BuildError::Several {
        errors: vec![
            step_failure(),
            BuildError::Base {
                node: "other@linux/amd64".into(),
                message: "no image `x` in `layout`".into(),
                help: String::new(),
            },
        ],
    };
    progress.fail(&error);
    let text = out.text();
    let last: Vec<&str> = text.lines().rev().take(3).collect();
    insta::assert_snapshot!(last.into_iter().rev().collect::<Vec<_>>().join("\n"));
}

#[test]
fn json_reports_running_steps_a_failure_stopped() {
    let (progress, clock, out) = json();
    build_until_base_runs_step_3(&progress, &clock);
    progress.fail(&other_stage_failure());
    let text = out.text();
    let last: Vec<&str> = text.lines().rev().take(3).collect();
    insta::assert_snapshot!(last.into_iter().rev().collect::<Vec<_>>().join("\n"));
}

#[test]
fn json_escapes_output_lines() {
    let (progress, _clock, out) = json();
    progress.event(&Event::Output {
        node: BASE,
        step: 2,
        line: "\u{1b}[31mred\u{1b}[0m \"quoted\"\ttab",
    });
    let value: serde_json::Value = serde_json::from_str(out.text().trim_end()).unwrap();
    assert_eq!(value["line"], "\u{1b}[31mred\u{1b}[0m \"quoted\"\ttab");
}

#[test]
fn tty_leaves_one_line_per_finished_step_and_a_summary() {
    let term = InMemoryTerm::new(30, 160);
    let (progress, clock) = tty(&term);
    build_until_base_runs_step_3(&progress, &clock);
    finish_base(&progress, &clock);
    progress.finish(&images());
    insta::assert_snapshot!(term.contents());
}

#[test]
fn tty_shows_running_steps_cut_to_the_width() {
    let term = InMemoryTerm::new(20, 60);
    let (progress, clock) = tty(&term);
    build_until_base_runs_step_3(&progress, &clock);
    progress.event(&Event::StepStarted {
        node: LONG,
        step: 1,
        summary: "run a very long command line that does not fit in sixty columns at all",
    });
    progress.event(&Event::Output {
        node: LONG,
        step: 1,
        line: "\u{1b}[2Kprogress 10%\rprogress 99%, with a long tail that must not wrap",
    });
    let contents = term.contents();
    let rows: Vec<&str> = contents.lines().collect();
    for row in &rows {
        assert!(
            console::measure_text_width(row) <= 60,
            "row too wide: {row:?}"
        );
    }
    let running = rows.last().expect("the spinner lines");
    assert!(
        running.contains("[long@linux/amd64] 1. run a very"),
        "{contents}"
    );
    assert!(running.contains('…'), "the summary is cut: {contents}");
    assert!(running.contains("| progress 99%"), "{contents}");
    assert!(!contents.contains("progress 10%"), "{contents}");
    let base = rows[rows.len() - 2];
    assert!(
        base.contains("[base@linux/amd64] 3. run make test"),
        "{contents}"
    );
    assert!(base.contains("| ok 1 - parses"), "{contents}");
    progress.fail(&step_failure());
    let after = term.contents();
    assert!(
        after.contains("[base@linux/amd64] 3. run make test  ERROR"),
        "{after}"
    );
    assert!(
        after.contains("CANCELED"),
        "the other step stopped:\n{after}"
    );
    assert!(!after.contains("| "), "the spinners are gone:\n{after}");
}

/// Eight stages of five steps each, building at once, each step printing
/// twenty lines.
fn build_concurrently(progress: &Progress) {
    let nodes: Vec<String> = (0..8).map(|i| format!("stage{i}@linux/amd64")).collect();
    std::thread::scope(|scope| {
        for node in &nodes {
            scope.spawn(move || {
                progress.event(&Event::NodeStarted { node });
                for step in 1..=5 {
                    progress.event(&Event::StepStarted {
                        node,
                        step,
                        summary: "run work",
                    });
                    for i in 0..20 {
                        progress.event(&Event::Output {
                            node,
                            step,
                            line: &format!("{node} line {i}"),
                        });
                    }
                    progress.event(&Event::StepDone {
                        node,
                        step,
                        summary: "run work",
                        cached: false,
                        elapsed: Duration::ZERO,
                        timings: None,
                    });
                }
            });
        }
    });
    progress.finish(&[]);
}

#[test]
fn concurrent_stages_do_not_mix_plain_lines() {
    let (progress, _clock, out) = plain();
    build_concurrently(&progress);
    let text = out.text();
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut outputs = 0;
    for line in text.lines().filter(|l| l.starts_with('#')) {
        let (number, rest) = line.split_once(' ').unwrap();
        if let Some(header) = rest.strip_prefix('[') {
            let node = header.split(' ').next().unwrap().to_owned();
            let previous = owner.insert(number.to_owned(), node.clone());
            assert!(previous.is_none_or(|p| p == node), "{number} renumbered");
        } else if let Some((_, output)) = rest.split_once(' ')
            && output.contains(" line ")
        {
            let node = output.split(' ').next().unwrap();
            assert_eq!(owner[number], node, "output under the wrong step: {line}");
            outputs += 1;
        }
    }
    assert_eq!(outputs, 8 * 5 * 20);
    assert!(
        text.ends_with("\n40 steps built, 0 cached in 0.0s\n"),
        "{text}"
    );
}

#[test]
fn concurrent_stages_do_not_garble_the_terminal() {
    let term = InMemoryTerm::new(60, 120);
    let (progress, _clock) = tty(&term);
    build_concurrently(&progress);
    let contents = term.contents();
    let mut rows: Vec<&str> = contents.lines().collect();
    assert_eq!(
        rows.pop(),
        Some("40 steps built, 0 cached in 0.0s"),
        "{contents}"
    );
    let mut expected: Vec<String> = (0..8)
        .flat_map(|i| {
            (1..=5).map(move |step| format!("[stage{i}@linux/amd64] {step}. run work  0.0s"))
        })
        .collect();
    expected.sort();
    rows.sort_unstable();
    assert_eq!(rows, expected, "one intact line per step:\n{contents}");
}

#[test]
fn quiet_prints_nothing_and_q_wins() {
    assert_eq!(
        ProgressMode::Json.resolve(Printer::Quiet, Terminal::Interactive),
        Resolved::Quiet
    );
    assert_eq!(
        ProgressMode::Quiet.resolve(Printer::Default, Terminal::Interactive),
        Resolved::Quiet
    );
}

#[test]
fn auto_picks_tty_only_on_a_real_terminal() {
    let auto = |terminal| ProgressMode::Auto.resolve(Printer::Default, terminal);
    assert_eq!(auto(Terminal::Interactive), Resolved::Tty);
    assert_eq!(auto(Terminal::Dumb), Resolved::Plain);
    assert_eq!(auto(Terminal::None), Resolved::Plain);
    // A CI log or a pipe: `tty` shows `plain` rather than fail the build.
    assert_eq!(
        ProgressMode::Tty.resolve(Printer::Default, Terminal::None),
        Resolved::Plain
    );
    assert_eq!(
        ProgressMode::Tty.resolve(Printer::Default, Terminal::Dumb),
        Resolved::Tty
    );
}

#[test]
fn summary_counts_steps() {
    let ending = |built, cached| Ending {
        built,
        cached,
        elapsed: Duration::from_millis(1_240),
        outcome: &Outcome::Built(&[]),
    };
    assert_eq!(
        ending(1, 0).summary_lines(&[]),
        ["1 step built, 0 cached in 1.2s"]
    );
    assert_eq!(
        ending(0, 3).summary_lines(&[]),
        ["0 steps built, 3 cached in 1.2s"]
    );
}
