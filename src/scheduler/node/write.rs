//! Writing a step's layer into the store, with the snapshot the next
//! steps read, and what a full disk looks like.

use std::time::Instant;

use super::NodeRunner;
use crate::copy::{self, Target};
use crate::exec::rootfs::View;
use crate::image::{HistoryEntry, Image, LayerRef};
use crate::ir::{BuildGraph, Node};
use crate::layer::{self, Entry, EntryKind, WriteOptions};
use crate::scheduler::snapshot::Extraction;
use crate::scheduler::{BuildError, Phase, StepTimings};
use crate::store::Digest;

impl NodeRunner<'_> {
    pub(super) fn mkdir(
        &self,
        image: &mut Image,
        dir: &str,
        text: &str,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let root = self.rootfs(image)?;
        let target = Target {
            root: root.as_ref().map(View::path),
            mtime: self.mtime(),
        };
        // The stage's own workdir is made before any step, so for root.
        let entries =
            copy::mkdir_entries(dir, None, target).map_err(|e| BuildError::Environment {
                message: e.to_string(),
                help: "this is a bug in imgbuild".into(),
            })?;
        if let Some(entries) = entries {
            self.add_layer(image, &entries, text, true, timings)?;
        }
        Ok(())
    }

    /// Writes `entries` as a layer on `image`; with `snapshot`, also
    /// extracts it, as it is written, into its snapshot for the steps that
    /// read it next.
    pub(super) fn add_layer(
        &self,
        image: &mut Image,
        entries: &[Entry],
        text: &str,
        snapshot: bool,
        timings: &mut StepTimings,
    ) -> Result<(), BuildError> {
        let options = WriteOptions {
            // Stored uncompressed: compressing is for images leaving the machine.
            compression: crate::layer::CompressionOptions {
                compression: crate::layer::Compression::None,
                level: None,
            },
            source_date_epoch: self.options.source_date_epoch,
        };
        let write = |extraction: Option<&mut Extraction<'_>>| -> Result<_, BuildError> {
            let started = Instant::now();
            // The layer writer hashes the tar stream, which is the blob.
            let mut writer = self.store.blob_writer_hashed_by_caller()?;
            let written = {
                let _span = tracing::debug_span!("layer", entries = entries.len()).entered();
                match extraction {
                    Some(extraction) => {
                        layer::write_layer(entries, &options, extraction.writer(&mut writer))?
                    }
                    None => layer::write_layer(entries, &options, &mut writer)?,
                }
            };
            let committing = Instant::now();
            let (digest, size) =
                writer.commit_hashed_by_caller(&Digest::parse(&written.digest)?)?;
            let spent = (committing - started, committing.elapsed());
            tracing::debug!(
                size,
                layer_ms = spent.0.as_secs_f64() * 1e3,
                commit_ms = spent.1.as_secs_f64() * 1e3,
                "wrote a layer"
            );
            Ok((written, digest, size, spent))
        };
        // The writer is gone (with its temp file) before free space is measured.
        let (written, digest, size) = std::thread::scope(|scope| {
            let mut extraction = snapshot
                .then(|| Extraction::start(scope, self.store))
                .flatten();
            let written = write(extraction.as_mut());
            if let Ok((.., spent)) = &written {
                timings.add_duration(Phase::Layer, spent.0);
                timings.add_duration(Phase::Commit, spent.1);
            }
            if let Some(extraction) = extraction {
                // Waiting for the rest of the extraction readies the next rootfs.
                let started = Instant::now();
                match &written {
                    Ok((written, ..)) => match Digest::parse(&written.diff_id) {
                        Ok(diff_id) => extraction.finish(&diff_id),
                        Err(_) => extraction.abandon(),
                    },
                    Err(_) => extraction.abandon(),
                }
                timings.add(Phase::Rootfs, started);
            }
            written
        })
        .map_err(|e| self.out_of_space(e, entries, text))
        .map(|(written, digest, size, _)| (written, digest, size))?;
        debug_assert_eq!(digest.to_string(), written.digest);
        let diff_id = Digest::parse(&written.diff_id)?;
        image.layers.push(LayerRef {
            media_type: options.compression.compression.media_type().to_owned(),
            digest,
            size,
            diff_id: diff_id.clone(),
            uncompressed_size: None,
        });
        image.config.diff_ids.push(diff_id);
        image.config.history.push(HistoryEntry {
            created: self.created.clone(),
            created_by: format!("imgbuild: {text}"),
            empty_layer: false,
        });
        Ok(())
    }

    /// `error`, or when it comes from a full filesystem, an error that says
    /// so: which store, how much the layer of step `text` (of `entries`)
    /// needs, how much is free, and what to do. The blob being written is
    /// removed with its writer, so the store stays consistent.
    fn out_of_space(&self, error: BuildError, entries: &[Entry], text: &str) -> BuildError {
        if !crate::util::disk::is_out_of_space(&error) {
            return error;
        }
        let needed: u64 = entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::File { size, .. } => size.div_ceil(512) * 512 + 512,
                _ => 512,
            })
            .sum();
        let root = self.store.root();
        let free = crate::util::disk::free_space(root);
        BuildError::Environment {
            message: format!(
                "the store `{}` ran out of space writing the layer of `{text}`: the layer needs about {} and the store's filesystem has {} free",
                root.display(),
                crate::util::size::human_size(needed),
                crate::util::size::human_size(free),
            ),
            help: "free space on that filesystem (`imgbuild prune` removes what no image uses) or give `--store` a larger one, then build again: the store is left consistent and the steps already built stay cached".to_owned(),
        }
    }
}

/// Whether other nodes of `graph` build on `node` or read from it.
pub(super) fn has_dependents(graph: &BuildGraph, node: &Node) -> bool {
    let Some(id) = graph.find(&node.id) else {
        return true;
    };
    graph
        .nodes()
        .any(|(other, _)| graph.dependencies(other).iter().any(|(d, _)| *d == id))
}
