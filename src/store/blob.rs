//! Content-addressed blobs under `ROOT/blobs/sha256`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::error::IoContext;
use super::{Digest, Hasher, SparseWriter, Store, StoreError, fsutil};

impl Store {
    /// `ROOT/blobs/sha256/HEX`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether the blob is present (its content is not checked).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Writes bytes as a blob atomically (temp file in ROOT/tmp, fsync, rename,
    /// fsync dir); idempotent. A present blob of the right size is kept as is.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let dest = self.blob_path(&digest);
        if present_with_size(&dest, bytes.len() as u64) {
            return Ok(digest);
        }
        fsutil::write_durably(&self.temp_path("blob"), &dest, bytes)?;
        Ok(digest)
    }

    /// A streaming blob writer that hashes as it goes; see [`BlobWriter`].
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let temp = self.temp_path("blob");
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .ctx("create temp file", &temp)?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(SparseWriter::new(file)),
            temp: Some(temp),
            hasher: Some(Hasher::new()),
            len: 0,
        })
    }

    /// A [`BlobWriter`] for a caller that hashes the very bytes it writes
    /// (the layer writer does, for the layer's `diff_id`), so they are not
    /// hashed twice: it must be committed with
    /// [`BlobWriter::commit_hashed_by_caller`].
    pub fn blob_writer_hashed_by_caller(&self) -> Result<BlobWriter, StoreError> {
        let mut writer = self.blob_writer()?;
        writer.hasher = None;
        Ok(writer)
    }

    /// Reads a whole blob and checks it against its digest (meant for small
    /// blobs: manifests, configs). A mismatch is [`StoreError::Corrupt`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut file = self.open_blob(digest)?;
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ctx("read", &path)?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::Corrupt {
                path,
                why: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for reading; its content is not checked.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::MissingBlob {
                digest: digest.clone(),
                path,
            }),
            Err(e) => Err(StoreError::io("open", path, e)),
        }
    }

    /// Imports a blob from a reader, verifying it matches `expected` (used when
    /// importing base images). Returns its size. On a mismatch or a read error
    /// nothing is left behind.
    pub fn import_blob(&self, mut reader: impl Read, expected: &Digest) -> Result<u64, StoreError> {
        let mut writer = self.blob_writer()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(StoreError::io(
                        "read the source of blob",
                        self.blob_path(expected),
                        e,
                    ));
                }
            };
            writer
                .write_all(&buf[..n])
                .ctx("write temp file", writer.temp_path())?;
        }
        writer.commit_expecting(expected).map(|(_, size)| size)
    }
}

/// Whether `path` is a regular file of `size` bytes.
fn present_with_size(path: &std::path::Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Writes a blob in a stream: bytes go to a temp file in `ROOT/tmp` and are
/// hashed on the way; aligned blocks of zeros become holes (see
/// [`SparseWriter`]), so an uncompressed layer holding a sparse file stays
/// sparse on disk. [`BlobWriter::commit`] moves the file into place;
/// dropping the writer without committing removes the temp file.
#[derive(Debug)]
pub struct BlobWriter {
    /// Keeps the temp owner (and its lock) alive while writing.
    store: Store,
    file: Option<SparseWriter>,
    /// `Some` until committed or removed.
    temp: Option<PathBuf>,
    /// None when the caller hashes what it writes.
    hasher: Option<Hasher>,
    len: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.len
    }

    fn temp_path(&self) -> &std::path::Path {
        self.temp.as_deref().expect("temp path until committed")
    }

    /// Fsyncs the content, renames it into place and returns its digest and
    /// size. A blob already present with the same size is kept and the temp
    /// file removed.
    pub fn commit(self) -> Result<(Digest, u64), StoreError> {
        self.finish(None)
    }

    /// Like [`BlobWriter::commit`], but fails with
    /// [`StoreError::DigestMismatch`] (removing the temp file) if the content
    /// is not `expected`.
    pub fn commit_expecting(self, expected: &Digest) -> Result<(Digest, u64), StoreError> {
        self.finish(Some(expected))
    }

    /// Like [`BlobWriter::commit`] for a writer from
    /// [`Store::blob_writer_hashed_by_caller`]: `digest` is what the caller
    /// computed over every byte it wrote.
    pub fn commit_hashed_by_caller(self, digest: &Digest) -> Result<(Digest, u64), StoreError> {
        debug_assert!(
            self.hasher.is_none(),
            "a writer that hashes commits with `commit`"
        );
        self.finish(Some(digest))
    }

    fn finish(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let temp = self.temp_path().to_owned();
        let sparse = self.file.take().expect("file until committed");
        let file = sparse.finish().ctx("write temp file", &temp)?;
        let size = self.len;
        let digest = match self.hasher.take() {
            Some(hasher) => hasher.finish(),
            None => expected.expect("the caller's digest").clone(),
        };
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let dest = self.store.blob_path(&digest);
        if present_with_size(&dest, size) {
            return Ok((digest, size)); // Drop removes the temp file.
        }
        file.sync_all().ctx("fsync temp file", &temp)?;
        drop(file);
        fs::rename(&temp, &dest).ctx("rename into place", &dest)?;
        self.temp = None;
        fsutil::fsync_dir(dest.parent().expect("blob path has a parent"))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("file until committed");
        let n = file.write(buf)?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("file until committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// Entries of a directory, ignoring temp-owner lock files.
    fn entries(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .collect();
        v.sort();
        v
    }

    fn content() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn write_read_has_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello\n").unwrap();
        assert_eq!(d, Digest::of(b"hello\n"));
        assert!(store.has_blob(&d));
        assert_eq!(
            store.blob_path(&d),
            store.root().join("blobs/sha256").join(d.hex())
        );
        assert_eq!(store.read_blob(&d).unwrap(), b"hello\n");
        let mut s = String::new();
        store.open_blob(&d).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello\n");
        // Idempotent.
        assert_eq!(store.write_blob(b"hello\n").unwrap(), d);
        assert_eq!(entries(&store.root().join("blobs/sha256")).len(), 1);
        assert!(entries(&store.root().join("tmp")).is_empty());

        let missing = Digest::of(b"nope");
        assert!(!store.has_blob(&missing));
        assert!(matches!(
            store.read_blob(&missing),
            Err(StoreError::MissingBlob { .. })
        ));
        assert!(matches!(
            store.open_blob(&missing),
            Err(StoreError::MissingBlob { .. })
        ));
    }

    #[test]
    fn read_blob_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello\n").unwrap();
        fs::write(store.blob_path(&d), b"HELLO\n").unwrap();
        let err = store.read_blob(&d).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(
            err.to_string().contains("imgbuild store verify --repair"),
            "{err}"
        );
    }

    #[test]
    fn blob_writer_streams_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = content();
        let mut w = store.blob_writer().unwrap();
        for chunk in data.chunks(7777) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.size(), data.len() as u64);
        let (d, size) = w.commit().unwrap();
        assert_eq!(d, Digest::of(&data));
        assert_eq!(size, data.len() as u64);
        assert_eq!(store.read_blob(&d).unwrap(), data);
        // Again, expecting the right digest: fine, nothing left over.
        let mut w = store.blob_writer().unwrap();
        w.write_all(&data).unwrap();
        assert_eq!(w.commit_expecting(&d).unwrap(), (d, size));
        assert!(entries(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn blob_writer_dropped_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(&content()).unwrap();
        w.flush().unwrap();
        assert_eq!(entries(&store.root().join("tmp")).len(), 1);
        drop(w);
        assert!(entries(&store.root().join("tmp")).is_empty());
        assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("network down"))
        }
    }

    #[test]
    fn import_blob_checks_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = content();
        let d = Digest::of(&data);
        assert_eq!(store.import_blob(&data[..], &d).unwrap(), data.len() as u64);
        assert_eq!(store.read_blob(&d).unwrap(), data);

        let wrong = Digest::of(b"something else");
        let err = store.import_blob(&b"not it"[..], &wrong).unwrap_err();
        match err {
            StoreError::DigestMismatch { expected, actual } => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, Digest::of(b"not it"));
            }
            other => panic!("{other}"),
        }
        assert!(!store.has_blob(&wrong));
        assert!(!store.has_blob(&Digest::of(b"not it")));
        assert_eq!(entries(&store.root().join("blobs/sha256")).len(), 1);
        assert!(entries(&store.root().join("tmp")).is_empty());

        // A failing reader leaves nothing either.
        let err = store.import_blob(Failing, &wrong).unwrap_err();
        assert!(err.to_string().contains("network down"), "{err}");
        assert!(entries(&store.root().join("tmp")).is_empty());
    }

    const CHILD_ENV: &str = "STORE_TEST_CHILD_ROOT";

    /// Not a test on its own: the child half of `killed_writer_leaves_no_partial_blob`.
    #[test]
    fn killed_writer_child() {
        let Some(root) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let store = Store::open(PathBuf::from(root)).unwrap();
        let mut w = store.blob_writer().unwrap();
        let data = content();
        w.write_all(&data[..data.len() / 2]).unwrap();
        w.flush().unwrap();
        println!("CHILD-READY");
        io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
        std::process::abort();
    }

    /// Runs `killed_writer_child` in a child process and SIGKILLs it mid-write.
    fn run_killed_child(root: &std::path::Path) {
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("{module}::killed_writer_child"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut ready = false;
        for line in out.lines() {
            if line.unwrap().contains("CHILD-READY") {
                ready = true;
                break;
            }
        }
        assert!(ready, "child did not get to the middle of its write");
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn killed_writer_leaves_no_partial_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let root = store.root().to_owned();

        run_killed_child(&root);
        assert!(entries(&root.join("blobs/sha256")).is_empty());
        let report = store.verify(false).unwrap();
        assert!(!report.is_clean());
        assert!(
            report
                .temp_leftovers
                .iter()
                .any(|p| p.extension().is_none_or(|e| e != "lock")),
            "{report:?}"
        );
        assert_eq!(report.removed, 0);
        let repaired = store.verify(true).unwrap();
        assert_eq!(repaired.removed, report.temp_leftovers.len());
        assert!(store.verify(false).unwrap().is_clean());
        assert!(entries(&root.join("tmp")).is_empty());

        let data = content();
        let d = store.write_blob(&data).unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), data);

        // Opening the store also removes a dead writer's leftovers.
        run_killed_child(&root);
        assert_eq!(entries(&root.join("tmp")).len(), 1);
        let reopened = Store::open(&root).unwrap();
        assert!(entries(&root.join("tmp")).is_empty());
        assert!(reopened.verify(false).unwrap().is_clean());
        assert!(store.verify(false).unwrap().is_clean());
    }
}
