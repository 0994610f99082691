//! The build cache index: what each cache key produced, plus the records
//! `plan` needs to explain a rebuild.
//!
//! ```text
//! ROOT/build-cache/entries/HEX   CacheEntry (JSON) for cache key HEX
//! ROOT/build-cache/records/HEX   the last build of one step of one manifest (opaque here)
//! ROOT/build-cache/inputs/HEX    a memoised input digest (opaque here)
//! ROOT/build-cache/variants/HEX  the compressed copy of a layer (opaque here)
//! ```
//!
//! Files are written to `ROOT/tmp` and renamed into place, so a reader sees
//! a whole file or none. They are not fsynced: a file damaged by a crash
//! reads as absent, which costs a rebuild, never a wrong result. An entry's
//! modification time is its last use, for `prune --keep-storage`.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::IoContext;
use super::{Digest, Store, StoreError};

/// The tables of the cache index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTable {
    /// Cache key -> [`CacheEntry`].
    Entries,
    /// Step identity -> the step's last build, for rebuild reasons.
    Records,
    /// Input identity -> content digest, so unchanged stage inputs are not re-hashed.
    Inputs,
    /// Uncompressed layer and settings -> its compressed copy, made on export.
    Variants,
}

impl CacheTable {
    fn dir(self) -> &'static str {
        match self {
            CacheTable::Entries => "entries",
            CacheTable::Records => "records",
            CacheTable::Inputs => "inputs",
            CacheTable::Variants => "variants",
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The layer it added, if any.
    pub layer: Option<CachedLayer>,
    /// The image history line.
    pub created_by: String,
}

/// A layer in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: Digest,
}

fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// `ROOT/build-cache/TABLE`.
    pub fn cache_dir(&self, table: CacheTable) -> PathBuf {
        self.root().join("build-cache").join(table.dir())
    }

    fn cache_path(&self, table: CacheTable, key: &str) -> Result<PathBuf, StoreError> {
        if !is_key(key) {
            return Err(StoreError::InvalidMetaName(key.to_owned()));
        }
        Ok(self.cache_dir(table).join(key))
    }

    /// Reads `key` from `table`; `Ok(None)` when absent.
    pub fn cache_read(&self, table: CacheTable, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.cache_path(table, key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    /// Writes `key` in `table` (atomically replacing what was there).
    pub fn cache_write(
        &self,
        table: CacheTable,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let path = self.cache_path(table, key)?;
        let dir = self.cache_dir(table);
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let temp = self.temp_path("cache");
        fs::write(&temp, bytes).ctx("write", &temp)?;
        fs::rename(&temp, &path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            StoreError::io("rename into place", path.clone(), e)
        })
    }

    /// Removes `key` from `table`; absent is not an error.
    pub fn cache_remove(&self, table: CacheTable, key: &str) -> Result<(), StoreError> {
        let path = self.cache_path(table, key)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
            _ => Ok(()),
        }
    }

    /// Every key in `table` with its file's size and last use.
    pub fn cache_keys(
        &self,
        table: CacheTable,
    ) -> Result<Vec<(String, u64, SystemTime)>, StoreError> {
        let dir = self.cache_dir(table);
        let read = match fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read directory", dir, e)),
        };
        let mut keys = Vec::new();
        for item in read {
            let item = item.ctx("read directory", &dir)?;
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            if !is_key(&name) {
                continue;
            }
            let Ok(meta) = item.metadata() else { continue };
            keys.push((
                name,
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
        keys.sort();
        Ok(keys)
    }

    /// The entry for cache `key`, if present, readable and its layer blob
    /// still in the store.
    pub fn cache_entry(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        self.lookup(key, false)
    }

    /// Like [`Store::cache_entry`], and a hit marks the entry as used now.
    pub fn use_cache_entry(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        self.lookup(key, true)
    }

    fn lookup(&self, key: &str, touch: bool) -> Result<Option<CacheEntry>, StoreError> {
        let Some(bytes) = self.cache_read(CacheTable::Entries, key)? else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<CacheEntry>(&bytes) else {
            return Ok(None);
        };
        if let Some(layer) = &entry.layer
            && !self.has_blob(&layer.digest)
        {
            return Ok(None);
        }
        if touch
            && let Ok(file) = fs::File::options()
                .write(true)
                .open(self.cache_path(CacheTable::Entries, key)?)
        {
            // Last use, for LRU pruning; best effort.
            let _ = file.set_modified(SystemTime::now());
        }
        Ok(Some(entry))
    }

    /// Records what cache `key` produced.
    pub fn put_cache_entry(&self, key: &str, entry: &CacheEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).expect("a cache entry serializes");
        self.cache_write(CacheTable::Entries, key, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn entries_round_trip_and_need_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cache_entry(KEY).unwrap(), None);
        let digest = store.write_blob(b"layer").unwrap();
        let entry = CacheEntry {
            layer: Some(CachedLayer {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: digest.clone(),
                size: 5,
                diff_id: digest.clone(),
            }),
            created_by: "imgbuild: run true".into(),
        };
        store.put_cache_entry(KEY, &entry).unwrap();
        assert_eq!(store.cache_entry(KEY).unwrap(), Some(entry));
        assert_eq!(store.cache_keys(CacheTable::Entries).unwrap().len(), 1);
        fs::remove_file(store.blob_path(&digest)).unwrap();
        assert_eq!(store.cache_entry(KEY).unwrap(), None, "its layer is gone");
    }

    #[test]
    fn damaged_entries_read_as_absent_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .cache_write(CacheTable::Entries, KEY, b"{trunc")
            .unwrap();
        assert_eq!(store.cache_entry(KEY).unwrap(), None);
        assert!(store.cache_read(CacheTable::Records, "../x").is_err());
        store.cache_remove(CacheTable::Entries, KEY).unwrap();
        store.cache_remove(CacheTable::Entries, KEY).unwrap();
        assert!(store.cache_keys(CacheTable::Entries).unwrap().is_empty());
    }
}
