//! Snapshots of the layers a build writes, made while they are written
//! rather than extracted again from their blobs when a later step needs them.
//!
//! - A `run` step's upper directory holds exactly its layer: once the layer
//!   is written, the directory is made what extracting the layer would give
//!   ([`layer::normalize_as_extracted`]) and moved into place as its
//!   snapshot. Nothing is copied.
//! - Any other step's layer is extracted while it is written: the tar stream
//!   goes to the blob and, through a bounded channel, to an extraction on
//!   another thread. Same extraction code, same snapshot as a later
//!   extraction of the blob would make; the build does not wait for it
//!   twice.
//!
//! Either is an optimisation: when it fails, the snapshot is left to be
//! extracted from the blob when it is needed, as before.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::layer::{self, Entry, ExtractOptions, LayerError};
use crate::store::{Digest, SnapshotDraft, Store};

/// Chunks of tar stream in flight to the extraction (64 KiB each at most).
const CHANNEL_CHUNKS: usize = 64;

/// Moves a `run` step's `upper` directory, read as `entries` and written as
/// the layer `diff_id`, into place as that layer's snapshot.
pub(super) fn adopt_upper(
    store: &Store,
    upper: &Path,
    entries: &[Entry],
    diff_id: &Digest,
    source_date_epoch: Option<i64>,
) {
    if store.snapshot(diff_id).is_some() {
        return;
    }
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        // A fresh directory for the root, as extraction makes: the upper's
        // own root carries the command's changes to `/`, which no layer has.
        let draft = store.snapshot_draft(&diff_id.hex()[..12])?;
        for child in std::fs::read_dir(upper)? {
            let child = child?;
            std::fs::rename(child.path(), draft.path().join(child.file_name()))?;
        }
        layer::normalize_as_extracted(draft.path(), entries, source_date_epoch)?;
        draft.publish(diff_id)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::debug!(%diff_id, "the upper dir did not become a snapshot ({e}); it is extracted when needed");
    }
}

/// A layer's tar stream being extracted into a snapshot draft as it is
/// written: [`Extraction::writer`] tees the stream, [`Extraction::finish`]
/// publishes the snapshot.
pub(super) struct Extraction<'s> {
    sender: Option<SyncSender<Vec<u8>>>,
    worker: std::thread::ScopedJoinHandle<'s, Result<(), LayerError>>,
    draft: SnapshotDraft,
}

impl<'s> Extraction<'s> {
    /// Starts extracting, on a thread of `scope`, into a fresh draft of
    /// `store`; None when no draft can be made.
    pub(super) fn start<'env>(
        scope: &'s std::thread::Scope<'s, 'env>,
        store: &Store,
    ) -> Option<Extraction<'s>> {
        let draft = store.snapshot_draft("layer").ok()?;
        let (sender, receiver) = sync_channel(CHANNEL_CHUNKS);
        let root = draft.path().to_owned();
        let worker = scope.spawn(move || {
            let options = ExtractOptions {
                preserve_ownership: true,
                overlay_whiteouts: true,
                ..ExtractOptions::default()
            };
            layer::extract_layer(ChannelReader::new(receiver), &root, &options).map(|_| ())
        });
        Some(Extraction {
            sender: Some(sender),
            worker,
            draft,
        })
    }

    /// A writer that passes everything to `out` and a copy to the extraction.
    pub(super) fn writer<W: Write>(&mut self, out: W) -> Tee<'_, W> {
        Tee {
            out,
            sender: &mut self.sender,
        }
    }

    /// Ends the stream; publishes the snapshot of `diff_id` when the
    /// extraction succeeded, discards the draft otherwise.
    pub(super) fn finish(mut self, diff_id: &Digest) {
        drop(self.sender.take());
        let extracted = match self.worker.join() {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the extraction panicked".to_owned()),
        };
        let published = extracted.and_then(|()| {
            self.draft
                .publish(diff_id)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = published {
            tracing::debug!(%diff_id, "no snapshot while writing the layer ({e}); it is extracted when needed");
        }
    }

    /// Stops without a snapshot (the layer was not written).
    pub(super) fn abandon(mut self) {
        drop(self.sender.take());
        let _ = self.worker.join();
    }
}

/// Writes to `out` and sends a copy of each write to an extraction; once
/// the extraction stops reading (it failed), only to `out`.
pub(super) struct Tee<'e, W> {
    out: W,
    sender: &'e mut Option<SyncSender<Vec<u8>>>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(sender) = self.sender.as_ref()
            && sender.send(buf[..n].to_vec()).is_err()
        {
            *self.sender = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads what a [`Tee`] sends; the end of the stream is the sender's drop.
struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(receiver: Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            receiver,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_reader_gives_back_what_was_sent_in_any_chunks() {
        let (sender, receiver) = sync_channel(4);
        let writer = std::thread::spawn(move || {
            for chunk in [&b"ab"[..], b"", b"cdef", b"g"] {
                sender.send(chunk.to_vec()).unwrap();
            }
        });
        let mut read = Vec::new();
        let mut reader = ChannelReader::new(receiver);
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
        writer.join().unwrap();
        assert_eq!(read, b"abcdefg");
    }

    #[test]
    fn a_tee_keeps_writing_when_the_extraction_stops_reading() {
        let (sender, receiver) = sync_channel(1);
        drop(receiver);
        let mut sender = Some(sender);
        let mut out = Vec::new();
        let mut tee = Tee {
            out: &mut out,
            sender: &mut sender,
        };
        tee.write_all(b"layer bytes").unwrap();
        assert!(sender.is_none());
        assert_eq!(out, b"layer bytes");
    }
}
