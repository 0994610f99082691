//! Where a step's time went: its wall time split into phases, measured
//! with [`Instant`]s while it runs and reported with [`Event::StepDone`].
//!
//! [`Event::StepDone`]: super::Event::StepDone

use std::time::{Duration, Instant};

/// The phases of one step that ran (not one from the cache). Each is the
/// sum of the intervals the step spent in it; what is in no phase (cache
/// bookkeeping, removing the step's temporary files) is [`other`].
///
/// [`other`]: StepTimings::other
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTimings {
    /// Preparing the root filesystem: extracting the layers below into
    /// snapshots, mounting the overlay and the mounts' sources, and for a
    /// `run` step everything around the command (bundle, unmount).
    pub rootfs: Duration,
    /// Running the command (a `run` step), or collecting the entries a copy
    /// (or `file`, `workdir`) puts in its layer.
    pub run: Duration,
    /// Scanning the upper dir of a `run` step for what it changed.
    pub diff: Duration,
    /// Writing the layer: tar, digests, compression if any, into the
    /// store's temporary blob.
    pub layer: Duration,
    /// Committing to the store: the blob's fsync and rename, the cache entry.
    pub commit: Duration,
}

/// One phase of [`StepTimings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// [`StepTimings::rootfs`].
    Rootfs,
    /// [`StepTimings::run`].
    Run,
    /// [`StepTimings::diff`].
    Diff,
    /// [`StepTimings::layer`].
    Layer,
    /// [`StepTimings::commit`].
    Commit,
}

impl StepTimings {
    /// The phases in the order a step goes through them, with their names.
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("rootfs", self.rootfs),
            ("run", self.run),
            ("diff", self.diff),
            ("layer", self.layer),
            ("commit", self.commit),
        ]
    }

    /// The sum of the phases.
    pub fn total(&self) -> Duration {
        self.phases().iter().map(|(_, d)| *d).sum()
    }

    /// What of `elapsed` (the step's wall time) is in no phase.
    pub fn other(&self, elapsed: Duration) -> Duration {
        elapsed.saturating_sub(self.total())
    }

    /// Adds the time since `since` to `phase`.
    pub fn add(&mut self, phase: Phase, since: Instant) {
        *self.slot(phase) += since.elapsed();
    }

    /// Adds `duration` to `phase`.
    pub fn add_duration(&mut self, phase: Phase, duration: Duration) {
        *self.slot(phase) += duration;
    }

    /// Runs `f`, adding its time to `phase`.
    pub fn time<T>(&mut self, phase: Phase, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        self.add(phase, start);
        value
    }

    fn slot(&mut self, phase: Phase) -> &mut Duration {
        match phase {
            Phase::Rootfs => &mut self.rootfs,
            Phase::Run => &mut self.run,
            Phase::Diff => &mut self.diff,
            Phase::Layer => &mut self.layer,
            Phase::Commit => &mut self.commit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_other_is_the_rest() {
        let mut t = StepTimings::default();
        t.add_duration(Phase::Rootfs, Duration::from_millis(10));
        t.add_duration(Phase::Run, Duration::from_millis(20));
        t.add_duration(Phase::Run, Duration::from_millis(5));
        t.add_duration(Phase::Commit, Duration::from_millis(1));
        assert_eq!(t.run, Duration::from_millis(25));
        assert_eq!(t.total(), Duration::from_millis(36));
        assert_eq!(t.other(Duration::from_millis(40)), Duration::from_millis(4));
        assert_eq!(t.other(Duration::from_millis(30)), Duration::ZERO);
        let names: Vec<_> = t.phases().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["rootfs", "run", "diff", "layer", "commit"]);
    }
}
