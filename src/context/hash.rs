//! Content hashes of context files, with a persistent stat cache.
//!
//! A cached hash is reused only when size, mtime, ctime, inode, device and
//! mode all still match and the file is not "racily clean": its mtime and
//! ctime must be older than the moment the hash was taken minus
//! [`RACY_WINDOW_NS`], otherwise a same-size rewrite within one timestamp
//! tick of the hashing could go unnoticed (git's racy-git problem). Racy
//! entries are re-read on the next run, which refreshes their timestamp.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bstr::BString;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::walk::timestamp_ns;
use super::{ContextEntry, ContextError, EntryKind};

/// A cached hash is trusted only for files whose mtime and ctime are at least
/// this much older than the moment they were hashed (covers coarse file
/// timestamps, down to FAT's 2 s).
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// Files at least this large are hashed with blake3's multithreaded
/// `update_rayon`, in chunks of this size.
const PARALLEL_CHUNK: usize = 4 << 20;

/// On-disk format version; other versions load as an empty cache.
const CACHE_VERSION: u32 = 1;

/// blake3 content digest of one file, 32 bytes, hex via Display.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::util::hex::write(f, &self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl ContentHash {
    /// Parses 64 lowercase or uppercase hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        crate::util::hex::decode32(s).map(ContentHash)
    }
}

/// What the cache remembers about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedStat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
    /// Wall-clock time just before the file was opened for hashing.
    hashed_at_ns: i128,
    hash: ContentHash,
}

impl CachedStat {
    fn hit(&self, e: &FileStat) -> Option<ContentHash> {
        let same = self.size == e.size
            && self.mtime_ns == e.mtime_ns
            && self.ctime_ns == e.ctime_ns
            && self.ino == e.ino
            && self.dev == e.dev
            && self.mode == e.mode;
        let settled = self.hashed_at_ns - RACY_WINDOW_NS;
        (same && e.mtime_ns < settled && e.ctime_ns < settled).then_some(self.hash)
    }
}

/// The stat fields a cached hash is checked against: a file whose fields
/// all match (and that is not racily clean) is not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device id.
    pub dev: u64,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl FileStat {
    /// The fields of `meta`.
    pub fn of(meta: &fs::Metadata) -> FileStat {
        let (size, mtime_ns, ctime_ns, ino, dev, mode) = stat_of(meta);
        FileStat {
            size,
            mtime_ns,
            ctime_ns,
            ino,
            dev,
            mode,
        }
    }

    fn of_entry(e: &ContextEntry) -> FileStat {
        FileStat {
            size: e.size,
            mtime_ns: e.mtime_ns,
            ctime_ns: e.ctime_ns,
            ino: e.ino,
            dev: e.dev,
            mode: e.mode,
        }
    }
}

/// Content hashes of a context's files, taken only when asked for: a build
/// hashes the files its steps read, not the whole context, and a file whose
/// stat matches the loaded [`StatCache`] is not read at all. Safe to share
/// between the threads of a build.
#[derive(Debug, Default)]
pub struct LazyHashes {
    loaded: StatCache,
    /// Files asked for this time, with what to cache for them.
    fresh: std::sync::Mutex<HashMap<BString, CachedStat>>,
    files_read: AtomicU64,
}

impl LazyHashes {
    /// Hashes checked against `loaded`.
    pub fn new(loaded: StatCache) -> LazyHashes {
        LazyHashes {
            loaded,
            ..LazyHashes::default()
        }
    }

    /// The content hash of the regular file `path` (relative to the
    /// context), on disk at `abs`, whose stat was `stat` when it was selected.
    pub fn hash(&self, path: &[u8], abs: &Path, stat: &FileStat) -> io::Result<ContentHash> {
        if let Some(cached) = self.loaded.entries.get(path)
            && let Some(hash) = cached.hit(stat)
        {
            self.remember(path, cached.clone());
            return Ok(hash);
        }
        self.files_read.fetch_add(1, Ordering::Relaxed);
        match hash_file(abs, stat)? {
            Outcome::Read {
                hash,
                record: Some(record),
            } => {
                self.remember(path, record);
                Ok(hash)
            }
            Outcome::Read { hash, record: None } | Outcome::Cached(hash) => Ok(hash),
            Outcome::NotFile => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )),
        }
    }

    fn remember(&self, path: &[u8], record: CachedStat) {
        self.fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(BString::from(path), record);
    }

    /// How many files were read (not answered by the cache).
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// The cache to save when a file was read: what was loaded, with the
    /// files hashed now in place of theirs (files this build did not ask
    /// for keep their entries: another target may read them). `None` when
    /// nothing was read: the loaded cache still answers for everything.
    pub fn updated(&self) -> Option<StatCache> {
        if self.files_read() == 0 {
            return None;
        }
        let fresh = self
            .fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut entries = self.loaded.entries.clone();
        entries.extend(
            fresh
                .iter()
                .map(|(path, record)| (path.clone(), record.clone())),
        );
        Some(StatCache { entries })
    }
}

#[derive(Serialize, Deserialize)]
struct DiskCache {
    version: u32,
    entries: Vec<DiskEntry>,
}

#[derive(Serialize, Deserialize)]
struct DiskEntry {
    /// The path; lossy when it is not UTF-8, then `path_bytes` has it exactly.
    path: String,
    /// The exact path, only when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
    hashed_at_ns: i128,
    hash: String,
}

/// A persistent stat cache: path -> (size, `mtime_ns`, ino, dev, mode, hash). `load()` of a missing/corrupt file gives an empty cache; `save()` writes atomically (temp file in the same dir, fsync, rename).
///
/// Also keyed on ctime, and stores when each hash was taken (see the module
/// docs). [`hash_entries`] keeps exactly the files of its last call.
#[derive(Debug, Clone, Default)]
pub struct StatCache {
    entries: HashMap<BString, CachedStat>,
}

impl StatCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a cache file; missing, unreadable, corrupt or other-version
    /// files give an empty cache.
    pub fn load(path: &Path) -> StatCache {
        fs::read(path)
            .ok()
            .and_then(|bytes| Self::decode(&bytes))
            .unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<StatCache> {
        let disk: DiskCache = serde_json::from_slice(bytes).ok()?;
        if disk.version != CACHE_VERSION {
            return None;
        }
        let entries = disk
            .entries
            .into_iter()
            .map(|d| {
                let hash = ContentHash::from_hex(&d.hash)?;
                Some((
                    d.path_bytes.map_or_else(|| d.path.into(), BString::from),
                    CachedStat {
                        size: d.size,
                        mtime_ns: d.mtime_ns,
                        ctime_ns: d.ctime_ns,
                        ino: d.ino,
                        dev: d.dev,
                        mode: d.mode,
                        hashed_at_ns: d.hashed_at_ns,
                        hash,
                    },
                ))
            })
            .collect::<Option<HashMap<_, _>>>()?;
        Some(StatCache { entries })
    }

    /// Writes the cache atomically: a temp file in the same directory
    /// (created if needed), fsync, rename over `path`, fsync the directory.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut sorted: Vec<(&BString, &CachedStat)> = self.entries.iter().collect();
        sorted.sort_unstable_by_key(|(p, _)| *p);
        let entries: Vec<DiskEntry> = sorted
            .into_iter()
            .map(|(p, c)| DiskEntry {
                path: p.to_string(),
                path_bytes: std::str::from_utf8(p).is_err().then(|| p.to_vec()),
                size: c.size,
                mtime_ns: c.mtime_ns,
                ctime_ns: c.ctime_ns,
                ino: c.ino,
                dev: c.dev,
                mode: c.mode,
                hashed_at_ns: c.hashed_at_ns,
                hash: c.hash.to_string(),
            })
            .collect();
        let bytes = serde_json::to_vec(&DiskCache {
            version: CACHE_VERSION,
            entries,
        })
        .map_err(io::Error::other)?;

        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(path.file_name().unwrap_or_else(|| "statcache".as_ref()));
        tmp_name.push(format!(
            ".tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = dir.join(tmp_name);
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            // Make the rename durable; not all filesystems allow this.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Number of cached files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The result of [`hash_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashReport {
    /// One per entry, in entry order; `None` for non-files.
    pub hashes: Vec<Option<ContentHash>>,
    /// How many files were actually read (cache misses).
    pub files_read: usize,
}

enum Outcome {
    NotFile,
    Cached(ContentHash),
    /// Read from disk; `record` is `None` when the file changed while it
    /// was being hashed (then it is not cached).
    Read {
        hash: ContentHash,
        record: Option<CachedStat>,
    },
}

/// Hashes every `File` entry's content in parallel with rayon, reusing cached hashes whose stat fields all match (so an unchanged tree is hashed without reading files), updating the cache; returns hashes in entry order (None for non-files). Also count how many files were actually read (return it in a small struct) so tests can prove the cache works.
///
/// Afterwards the cache holds exactly the files of `entries`. A file whose
/// stat differs from its entry (changed since the walk) is hashed as it is
/// now but not cached.
pub fn hash_entries(
    root: &Path,
    entries: &[ContextEntry],
    cache: &mut StatCache,
) -> Result<HashReport, ContextError> {
    let outcomes: Vec<Outcome> = {
        let cache = &*cache;
        entries
            .par_iter()
            .map(|e| {
                if e.kind != EntryKind::File {
                    return Ok(Outcome::NotFile);
                }
                if let Some(hash) = cache
                    .entries
                    .get(&e.path)
                    .and_then(|c| c.hit(&FileStat::of_entry(e)))
                {
                    return Ok(Outcome::Cached(hash));
                }
                let abs = root.join(std::ffi::OsStr::from_bytes(&e.path));
                hash_file(&abs, &FileStat::of_entry(e)).map_err(|err| ContextError::io(abs, err))
            })
            .collect::<Result<_, _>>()?
    };

    let mut fresh = HashMap::with_capacity(entries.len());
    let mut hashes = Vec::with_capacity(entries.len());
    let mut files_read = 0;
    for (e, outcome) in entries.iter().zip(outcomes) {
        match outcome {
            Outcome::NotFile => hashes.push(None),
            Outcome::Cached(hash) => {
                if let Some((k, v)) = cache.entries.remove_entry(&e.path) {
                    fresh.insert(k, v);
                }
                hashes.push(Some(hash));
            }
            Outcome::Read { hash, record } => {
                files_read += 1;
                if let Some(record) = record {
                    fresh.insert(e.path.clone(), record);
                }
                hashes.push(Some(hash));
            }
        }
    }
    cache.entries = fresh;
    Ok(HashReport { hashes, files_read })
}

fn now_ns() -> i128 {
    // A clock before 1970 makes every entry racy, which is safe.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

fn stat_of(meta: &fs::Metadata) -> (u64, i128, i128, u64, u64, u32) {
    (
        meta.len(),
        timestamp_ns(meta.mtime(), meta.mtime_nsec()),
        timestamp_ns(meta.ctime(), meta.ctime_nsec()),
        meta.ino(),
        meta.dev(),
        meta.mode() & 0o7777,
    )
}

fn hash_file(abs: &Path, e: &FileStat) -> io::Result<Outcome> {
    let hashed_at_ns = now_ns();
    let mut file = File::open(abs)?;
    let before = file.metadata()?;
    if !before.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no longer a regular file",
        ));
    }
    let mut hasher = blake3::Hasher::new();
    if before.len() >= PARALLEL_CHUNK as u64 {
        let mut buf = vec![0u8; PARALLEL_CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
    } else {
        hasher.update_reader(&mut file)?;
    }
    let hash = ContentHash(*hasher.finalize().as_bytes());
    let after = stat_of(&file.metadata()?);
    let expected = (e.size, e.mtime_ns, e.ctime_ns, e.ino, e.dev, e.mode);
    let record = (stat_of(&before) == after && after == expected).then_some(CachedStat {
        size: e.size,
        mtime_ns: e.mtime_ns,
        ctime_ns: e.ctime_ns,
        ino: e.ino,
        dev: e.dev,
        mode: e.mode,
        hashed_at_ns,
        hash,
    });
    Ok(Outcome::Read { hash, record })
}

/// Reads until `buf` is full or EOF; returns the byte count.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{PatternMatcher, walk};
    use std::time::Duration;

    /// Backdates a file so it is not racily clean.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    fn make_tree(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            let p = dir.path().join(format!("d{}/f{i}.txt", i % 10));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, format!("file number {i}\n").repeat(i % 7 + 1)).unwrap();
            age(&p);
        }
        dir
    }

    /// Sleeps past the racy window of files whose ctime is "now" (ctime
    /// cannot be backdated).
    fn settle() {
        std::thread::sleep(Duration::from_nanos(
            u64::try_from(RACY_WINDOW_NS).unwrap() + 100_000_000,
        ));
    }

    fn entries(root: &Path) -> Vec<ContextEntry> {
        walk(root, &PatternMatcher::default()).unwrap()
    }

    #[test]
    fn stat_cache_round_trip_and_invalidation() {
        let dir = make_tree(200);
        let root = dir.path();
        let state = tempfile::tempdir().unwrap();
        let cache_path = state.path().join("cache-dir/stat.json");
        settle();

        let list = entries(root);
        let mut cache = StatCache::load(&cache_path);
        assert_eq!(cache.len(), 0);
        let cold = hash_entries(root, &list, &mut cache).unwrap();
        assert_eq!(cold.files_read, 200);
        assert_eq!(cache.len(), 200);
        assert_eq!(cold.hashes.len(), list.len());
        for (e, h) in list.iter().zip(&cold.hashes) {
            assert_eq!(h.is_some(), e.kind == EntryKind::File, "{}", e.path);
            if let Some(h) = h {
                let want = blake3::hash(
                    &fs::read(root.join(std::ffi::OsStr::from_bytes(&e.path))).unwrap(),
                );
                assert_eq!(h.0, *want.as_bytes());
            }
        }
        cache.save(&cache_path).unwrap();

        // Unchanged tree, fresh process: nothing is read.
        let mut cache = StatCache::load(&cache_path);
        assert_eq!(cache.len(), 200);
        let warm = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(warm.files_read, 0);
        assert_eq!(warm.hashes, cold.hashes);

        // Size change: exactly that file is re-read.
        let changed = root.join("d3/f13.txt");
        fs::write(&changed, "different length").unwrap();
        age(&changed);
        settle();
        let list = entries(root);
        let report = hash_entries(root, &list, &mut cache).unwrap();
        assert_eq!(report.files_read, 1);
        let idx = list.iter().position(|e| e.path == "d3/f13.txt").unwrap();
        assert_eq!(
            report.hashes[idx].unwrap().0,
            *blake3::hash(b"different length").as_bytes()
        );

        // Only the mtime changes (same content and size): re-read.
        let touched = root.join("d5/f25.txt");
        File::options()
            .write(true)
            .open(&touched)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        settle();
        let report = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(report.files_read, 1);
        let report = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(report.files_read, 0);
    }

    #[test]
    fn names_that_are_not_utf8_are_cached_by_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (name, body) in [(&b"f-\xff.txt"[..], "ff"), (b"f-\xfe.txt", "fe")] {
            let p = root.join(std::ffi::OsStr::from_bytes(name));
            fs::write(&p, body).unwrap();
            age(&p);
        }
        let state = tempfile::tempdir().unwrap();
        let cache_path = state.path().join("stat.json");
        settle();
        let list = entries(root);
        let mut cache = StatCache::new();
        let cold = hash_entries(root, &list, &mut cache).unwrap();
        assert_eq!((cold.files_read, cache.len()), (2, 2));
        assert_ne!(cold.hashes[0], cold.hashes[1]);
        cache.save(&cache_path).unwrap();

        let mut cache = StatCache::load(&cache_path);
        assert_eq!(cache.len(), 2);
        let warm = hash_entries(root, &list, &mut cache).unwrap();
        assert_eq!(warm.files_read, 0);
        assert_eq!(warm.hashes, cold.hashes);
    }

    #[test]
    fn racily_clean_files_are_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let f = root.join("f");
        fs::write(&f, "aaaa").unwrap();
        let mut cache = StatCache::new();
        let first = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(first.files_read, 1);
        // Just written: its timestamps are within the racy window of the
        // hashing, so the cached hash must not be trusted...
        let again = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(again.files_read, 1);
        // ...which is right: a same-size rewrite in the same tick keeps
        // size and (coarse) mtime, which we simulate by restoring them.
        let e = entries(root).remove(0);
        fs::write(&f, "bbbb").unwrap();
        let restore = UNIX_EPOCH + Duration::from_nanos(u64::try_from(e.mtime_ns).unwrap());
        File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(restore)
            .unwrap();
        let report = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(
            report.hashes[0].unwrap().0,
            *blake3::hash(b"bbbb").as_bytes()
        );
    }

    #[test]
    fn pruned_to_current_entries() {
        let dir = make_tree(20);
        settle();
        let root = dir.path();
        let mut cache = StatCache::new();
        hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(cache.len(), 20);
        fs::remove_dir_all(root.join("d0")).unwrap();
        let report = hash_entries(root, &entries(root), &mut cache).unwrap();
        assert_eq!(report.files_read, 0);
        assert_eq!(cache.len(), 18);
    }

    #[test]
    fn corrupt_or_missing_cache_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        assert!(StatCache::load(&p).is_empty());
        fs::write(&p, b"{not json").unwrap();
        assert!(StatCache::load(&p).is_empty());
        fs::write(&p, br#"{"version":999,"entries":[]}"#).unwrap();
        assert!(StatCache::load(&p).is_empty());
        fs::write(
            &p,
            br#"{"version":1,"entries":[{"path":"a","size":1,"mtime_ns":1,"ctime_ns":1,"ino":1,"dev":1,"mode":420,"hashed_at_ns":1,"hash":"zz"}]}"#,
        )
        .unwrap();
        assert!(StatCache::load(&p).is_empty());
        // save leaves no temp files behind
        StatCache::new().save(&p).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c.json"]);
    }

    #[test]
    fn large_file_uses_chunked_path() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..PARALLEL_CHUNK * 2 + 12345)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        fs::write(dir.path().join("big"), &data).unwrap();
        let mut cache = StatCache::new();
        let r = hash_entries(dir.path(), &entries(dir.path()), &mut cache).unwrap();
        assert_eq!(r.hashes[0].unwrap().0, *blake3::hash(&data).as_bytes());
    }

    #[test]
    fn unreadable_file_names_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        fs::write(&f, "x").unwrap();
        let list = entries(dir.path());
        // Deleting the file after the walk also fails, naming the path (and
        // works when running as root, unlike permission bits).
        fs::set_permissions(&f, fs::Permissions::from_mode(0o000)).unwrap();
        let is_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !is_root {
            let err = hash_entries(dir.path(), &list, &mut StatCache::new()).unwrap_err();
            assert!(err.to_string().contains("secret"), "{err}");
        }
        fs::remove_file(&f).unwrap();
        let err = hash_entries(dir.path(), &list, &mut StatCache::new()).unwrap_err();
        assert!(matches!(err, ContextError::Io { .. }));
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn hex_round_trip() {
        let h = ContentHash(*blake3::hash(b"x").as_bytes());
        assert_eq!(ContentHash::from_hex(&h.to_string()), Some(h));
        assert_eq!(h.to_string(), blake3::hash(b"x").to_hex().as_str());
        assert_eq!(ContentHash::from_hex("00"), None);
    }
}
