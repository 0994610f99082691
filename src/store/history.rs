//! The build history: one JSON record per `apply` under
//! `ROOT/history/ID.json`, the newest [`KEPT_BUILDS`] kept.
//!
//! A record holds what a user asks of a past build (`imgbuild history`):
//! when it ran and how long, what it built or why it failed, and each
//! step's outcome and time. It never holds a build argument's value or a
//! secret: arguments are kept by name only.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use super::error::IoContext;
use super::{Store, StoreError};

/// How many builds the history keeps; older records are removed as new
/// ones are written.
pub const KEPT_BUILDS: usize = 100;

/// One build, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Sortable and unique: the start time (UTC) and the process id.
    pub id: String,
    /// When it started, RFC 3339 UTC.
    pub started: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The build file (Dockerfile or manifest) and the context.
    pub file: String,
    /// The context directory.
    pub context: String,
    /// The names of the build arguments given (never their values).
    pub build_args: Vec<String>,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// What it built.
    pub images: Vec<BuiltRecord>,
    /// Each step that was reached, in the order they ended.
    pub steps: Vec<StepOutcome>,
}

/// An image a build made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltRecord {
    /// Its name in the build.
    pub name: String,
    /// Its manifest or index digest in the store.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// The node (stage and platform).
    pub node: String,
    /// The step's number in it, from 1.
    pub step: usize,
    /// The step, as progress shows it.
    pub summary: String,
    /// `built`, `cached`, or `failed` (started, never done).
    pub status: String,
    /// How long it ran, in milliseconds (0 when cached).
    pub ms: u64,
}

impl BuildRecord {
    /// How many steps were `status`.
    #[must_use]
    pub fn count(&self, status: &str) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

impl Store {
    /// `ROOT/history`.
    fn history_dir(&self) -> std::path::PathBuf {
        self.root().join("history")
    }

    /// Writes `record` (atomically) and removes the records beyond the
    /// newest [`KEPT_BUILDS`].
    ///
    /// # Errors
    ///
    /// When the record cannot be written.
    pub fn record_build(&self, record: &BuildRecord) -> Result<(), StoreError> {
        let dir = self.history_dir();
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let bytes = serde_json::to_vec_pretty(record).expect("a build record serializes");
        let dest = dir.join(format!("{}.json", record.id));
        // Whole or absent, but not synced: a record is not worth a build's
        // wait for the disk, and a crash losing the last one is harmless.
        let temp = self.temp_path("history");
        fs::write(&temp, &bytes).ctx("write", &temp)?;
        if let Err(e) = fs::rename(&temp, &dest) {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::io("rename into place", dest, e));
        }
        let mut ids = self.build_ids()?;
        while ids.len() > KEPT_BUILDS {
            let oldest = ids.remove(0);
            let path = dir.join(format!("{oldest}.json"));
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::io("remove", path, e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The ids of the recorded builds, oldest first.
    fn build_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.history_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The recorded builds, oldest first; unreadable records are skipped.
    ///
    /// # Errors
    ///
    /// When the history directory cannot be read.
    pub fn builds(&self) -> Result<Vec<BuildRecord>, StoreError> {
        let dir = self.history_dir();
        Ok(self
            .build_ids()?
            .iter()
            .filter_map(|id| fs::read(dir.join(format!("{id}.json"))).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> BuildRecord {
        BuildRecord {
            id: id.to_owned(),
            started: "2026-12-03T17:00:00Z".into(),
            duration_ms: 1200,
            file: "Dockerfile".into(),
            context: ".".into(),
            build_args: vec!["VERSION".into()],
            succeeded: true,
            error: None,
            images: Vec::new(),
            steps: vec![StepOutcome {
                node: "app@linux/amd64".into(),
                step: 1,
                summary: "run make".into(),
                status: "built".into(),
                ms: 900,
            }],
        }
    }

    #[test]
    fn records_round_trip_oldest_first_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.builds().unwrap().is_empty());
        for i in 0..KEPT_BUILDS + 3 {
            store
                .record_build(&record(&format!("20261203-{i:06}")))
                .unwrap();
        }
        let builds = store.builds().unwrap();
        assert_eq!(builds.len(), KEPT_BUILDS);
        assert_eq!(builds[0].id, "20261203-000003", "the oldest went first");
        assert_eq!(
            builds.last().unwrap(),
            &record(&format!("20261203-{:06}", KEPT_BUILDS + 2))
        );
        assert_eq!(builds[0].count("built"), 1);
    }
}
