//! Writing files that keep runs of zeros as holes.
//!
//! A layer keeps a sparse file as a plain tar entry full of zeros (as
//! `BuildKit` and docker write it: Go's `archive/tar` writes no sparse
//! entries, and every consumer reads plain entries). What must not happen is
//! those zeros taking disk space: [`SparseWriter`] skips every aligned block
//! of zeros instead of writing it, so the uncompressed layer blobs in the
//! store, extracted snapshots and `type=local` outputs are sparse files
//! again. The bytes read back are the same, so digests do not change.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Holes are made for zero runs of whole, aligned blocks of this size
/// (the page size, and the block size of ext4, xfs and btrfs).
const BLOCK: usize = 4096;
/// Bytes buffered before they are written out.
const BUFFER: usize = 256 * BLOCK;

/// A writer into a new, empty file that leaves holes where whole aligned
/// blocks of `BLOCK` bytes are zero. Call [`SparseWriter::finish`] at the
/// end: it writes the last bytes and sets the file's length (a file may end
/// in a hole).
#[derive(Debug)]
pub struct SparseWriter {
    file: File,
    /// Bytes not yet written; they start at offset `written`.
    buffer: Vec<u8>,
    /// File offset of `buffer[0]`; always a multiple of [`BLOCK`].
    written: u64,
    /// Bytes actually written to the file (not skipped as holes).
    data: u64,
}

impl SparseWriter {
    /// Writes into `file`, which must be empty and positioned at 0.
    pub fn new(file: File) -> Self {
        SparseWriter {
            file,
            buffer: Vec::with_capacity(BUFFER),
            written: 0,
            data: 0,
        }
    }

    /// Bytes accepted so far (the file's length once finished).
    pub fn len(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes written to the file so far, not counting holes: about what
    /// the file takes on disk (the buffered bytes are not included).
    pub fn data_written(&self) -> u64 {
        self.data
    }

    /// Writes the buffer's whole blocks (all of it with `all`), skipping
    /// zero blocks, and keeps the rest.
    fn flush_blocks(&mut self, all: bool) -> io::Result<()> {
        let end = if all {
            self.buffer.len()
        } else {
            self.buffer.len() / BLOCK * BLOCK
        };
        let mut start = 0;
        while start < end {
            // Skip zero blocks, then write the run of data blocks after them.
            while start < end && is_zero(&self.buffer[start..(start + BLOCK).min(end)]) {
                start += BLOCK;
            }
            let mut stop = start;
            while stop < end && !is_zero(&self.buffer[stop..(stop + BLOCK).min(end)]) {
                stop += BLOCK;
            }
            let stop = stop.min(end);
            if stop > start {
                self.file
                    .write_all_at(&self.buffer[start..stop], self.written + start as u64)?;
                self.data += (stop - start) as u64;
            }
            start = stop;
        }
        let end = end.min(self.buffer.len());
        self.buffer.drain(..end);
        self.written += end as u64;
        Ok(())
    }

    /// Writes what is buffered, sets the file's length and returns it.
    ///
    /// # Errors
    ///
    /// Fails when writing or truncating the file fails.
    pub fn finish(mut self) -> io::Result<File> {
        self.flush_blocks(true)?;
        self.file.set_len(self.written)?;
        Ok(self.file)
    }
}

impl Write for SparseWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BUFFER - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == BUFFER {
            self.flush_blocks(false)?;
        }
        Ok(n)
    }

    /// Writes the buffer's whole blocks; a partial last block stays
    /// buffered until more comes or [`SparseWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.flush_blocks(false)
    }
}

/// Copies the file `from` to the new file `to`, leaving holes for zero
/// blocks (where [`std::fs::copy`] writes them); returns the bytes copied.
///
/// # Errors
///
/// Fails when `to` exists or reading or writing fails.
pub fn copy_sparse(from: &std::path::Path, to: &std::path::Path) -> io::Result<u64> {
    let mut source = File::open(from)?;
    let target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut writer = SparseWriter::new(target);
    let copied = io::copy(&mut source, &mut writer)?;
    writer.finish()?;
    Ok(copied)
}

/// Whether every byte of `bytes` is zero (eight at a time, which the
/// compiler vectorises).
fn is_zero(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .fold(0, |acc, w| acc | w)
        == 0
        && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn write_in_pieces(path: &std::path::Path, content: &[u8], piece: usize) -> u64 {
        let file = File::create(path).unwrap();
        let mut writer = SparseWriter::new(file);
        for chunk in content.chunks(piece) {
            writer.write_all(chunk).unwrap();
        }
        assert_eq!(writer.len(), content.len() as u64);
        let data = writer.data_written();
        writer.finish().unwrap().sync_all().unwrap();
        data
    }

    #[test]
    fn zero_runs_become_holes_and_content_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // 8 MiB of zeros with a few data bytes at odd places, ending in zeros.
        let mut content = vec![0u8; 8 << 20];
        content[5] = 1;
        content[3 << 20] = 2;
        content[(3 << 20) + BLOCK] = 3;
        content[(8 << 20) - BLOCK - 1] = 4;
        for piece in [1, 511, 4096, 70_000, 1 << 20] {
            let data = write_in_pieces(&path, &content, piece);
            assert_eq!(std::fs::read(&path).unwrap(), content, "piece {piece}");
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.len(), content.len() as u64);
            assert_eq!(data, 4 * BLOCK as u64, "piece {piece}");
            assert!(meta.blocks() * 512 <= 64 * 1024, "{} blocks", meta.blocks());
        }
    }

    #[test]
    fn short_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for content in [&b""[..], b"x", &[0u8; 10], &[0u8; BLOCK + 3]] {
            write_in_pieces(&path, content, 3);
            assert_eq!(std::fs::read(&path).unwrap(), content);
        }
    }
}
