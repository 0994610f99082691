//! Small metadata files under `ROOT/meta`, for other modules.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{Store, StoreError, fsutil};

impl Store {
    /// `ROOT/meta/NAME`. Does not check `name`; [`Store::write_meta`] does.
    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.root().join("meta").join(name)
    }

    /// Writes `ROOT/meta/NAME` atomically (temp file, fsync, rename, fsync dir).
    /// `name` must be letters, digits and `-._`, not starting with `.`.
    pub fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        fsutil::write_durably(&self.temp_path("meta"), &self.meta_path(name), bytes)
    }

    /// Reads `ROOT/meta/NAME`; `Ok(None)` if it does not exist.
    pub fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name)?;
        let path = self.meta_path(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidMetaName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrip_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.read_meta("stat-cache.json").unwrap(), None);
        store.write_meta("stat-cache.json", b"{}").unwrap();
        store.write_meta("stat-cache.json", b"{\"a\":1}").unwrap();
        assert_eq!(
            store.read_meta("stat-cache.json").unwrap().unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            fs::read(store.meta_path("stat-cache.json")).unwrap(),
            b"{\"a\":1}"
        );
        for bad in ["", ".hidden", "../x", "a/b", "..", "a\0b"] {
            assert!(
                matches!(
                    store.write_meta(bad, b""),
                    Err(StoreError::InvalidMetaName(_))
                ),
                "{bad:?}"
            );
        }
    }
}
