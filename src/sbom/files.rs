//! The package databases and lock files of an image, read from its layers
//! without unpacking them: each layer's tar stream, bottom first, with
//! whiteouts applied, keeping only the files a reader in [`super`] parses.

use std::collections::BTreeMap;
use std::io::Read;

use bstr::{BString, ByteSlice};

use crate::image::Image;
use crate::layer::{LayerError, decompressing_reader};
use crate::store::Store;

use super::SbomError;

/// A file larger than this is not read: no package database is this big,
/// and a hostile image must not make the reader hold gigabytes.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Whether the file at `path` (relative, no leading `/`) is one a reader
/// parses.
pub(super) fn wanted(path: &[u8]) -> bool {
    const EXACT: [&[u8]; 4] = [
        b"var/lib/dpkg/status",
        b"lib/apk/db/installed",
        b"etc/os-release",
        b"usr/lib/os-release",
    ];
    if EXACT.contains(&path) {
        return true;
    }
    if let Some(rest) = path.strip_prefix(b"var/lib/dpkg/status.d/") {
        // Distroless images keep one stanza file per package here; the
        // `.md5sums` lists next to them are not stanzas.
        return !rest.contains(&b'/') && !rest.ends_with(b".md5sums");
    }
    let name = path.rsplit_str("/").next().unwrap_or(path);
    if name == b"Cargo.lock" || name == b"package-lock.json" {
        return !path.contains_str("node_modules/");
    }
    name == b"METADATA"
        && path
            .rsplit_str("/")
            .nth(1)
            .is_some_and(|dir| dir.ends_with(b".dist-info"))
}

/// The wanted files visible in `image`, by path, with their content.
pub(super) fn collect(
    store: &Store,
    image: &Image,
) -> Result<BTreeMap<BString, Vec<u8>>, SbomError> {
    let mut files = BTreeMap::new();
    for layer in &image.layers {
        let fail = |source: LayerError| SbomError::Layer {
            digest: layer.digest.to_string(),
            source,
        };
        let blob = store.open_blob(&layer.digest)?;
        let reader =
            decompressing_reader(std::io::BufReader::with_capacity(1 << 20, blob)).map_err(fail)?;
        apply_layer(reader, &mut files).map_err(fail)?;
    }
    Ok(files)
}

/// Applies one layer's tar stream to `files`: its whiteouts remove lower
/// files, its wanted regular files (and hard links to them) replace them.
pub(super) fn apply_layer<R: Read>(
    reader: R,
    files: &mut BTreeMap<BString, Vec<u8>>,
) -> Result<(), LayerError> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(LayerError::Tar)? {
        let mut entry = entry.map_err(LayerError::Tar)?;
        let path = clean(&entry.path_bytes());
        if path.is_empty() {
            continue;
        }
        let (dir, name): (&[u8], &[u8]) = match path.rsplit_once_str("/") {
            Some((dir, name)) => (dir, name),
            None => (b"", &path),
        };
        if name == b".wh..wh..opq" {
            remove_under(files, dir);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let target = join(dir, hidden);
            files.remove(&target);
            remove_under(files, &target);
            continue;
        }
        let kind = entry.header().entry_type();
        // Whatever replaces a path replaces what was under it too.
        files.remove(&path);
        remove_under(files, &path);
        if !wanted(&path) {
            continue;
        }
        if kind == tar::EntryType::Link {
            let target = entry
                .link_name_bytes()
                .map(|t| clean(&t))
                .and_then(|t| files.get(&t).cloned());
            if let Some(content) = target {
                files.insert(path, content);
            }
            continue;
        }
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
            || entry.size() > MAX_FILE_BYTES
        {
            continue;
        }
        let mut content = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .by_ref()
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut content)
            .map_err(LayerError::Tar)?;
        files.insert(path, content);
    }
    Ok(())
}

/// `path` without `./` and `/` at its ends.
fn clean(raw: &[u8]) -> BString {
    let mut path = raw;
    while let Some(rest) = path.strip_prefix(b"./") {
        path = rest;
    }
    let path = path
        .trim_start_with(|c| c == '/')
        .trim_end_with(|c| c == '/');
    if path == b"." {
        BString::default()
    } else {
        BString::from(path)
    }
}

fn join(dir: &[u8], name: &[u8]) -> BString {
    if dir.is_empty() {
        BString::from(name)
    } else {
        let mut path = BString::from(dir);
        path.push(b'/');
        path.extend_from_slice(name);
        path
    }
}

/// Removes every file strictly under `dir` (everything, for the root).
fn remove_under(files: &mut BTreeMap<BString, Vec<u8>>, dir: &[u8]) {
    if dir.is_empty() {
        files.clear();
        return;
    }
    let mut prefix = BString::from(dir);
    prefix.push(b'/');
    files.retain(|path, _| !path.starts_with(&prefix));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn keeps_only_the_databases_and_lock_files() {
        for (path, want) in [
            ("var/lib/dpkg/status", true),
            ("var/lib/dpkg/status-old", false),
            ("var/lib/dpkg/status.d/libc6", true),
            ("var/lib/dpkg/status.d/libc6.md5sums", false),
            ("lib/apk/db/installed", true),
            ("app/Cargo.lock", true),
            ("app/package-lock.json", true),
            ("app/node_modules/x/package-lock.json", false),
            (
                "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
                true,
            ),
            ("usr/lib/METADATA", false),
            ("etc/passwd", false),
        ] {
            assert_eq!(wanted(path.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn a_later_layer_replaces_and_whiteouts_remove() {
        let mut files = BTreeMap::new();
        let lower = tar_of(&[
            ("var/lib/dpkg/status", b"old"),
            ("./app/Cargo.lock", b"lock"),
            ("lib/apk/db/installed", b"apk"),
            ("etc/passwd", b"root"),
        ]);
        apply_layer(&lower[..], &mut files).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        let upper = tar_of(&[
            ("var/lib/dpkg/status", b"new"),
            ("app/.wh.Cargo.lock", b""),
            ("lib/apk/.wh..wh..opq", b""),
        ]);
        apply_layer(&upper[..], &mut files).unwrap();
        assert_eq!(
            files.into_iter().collect::<Vec<_>>(),
            vec![(BString::from("var/lib/dpkg/status"), b"new".to_vec())]
        );
    }

    #[test]
    fn a_whiteout_of_a_directory_removes_what_is_under_it() {
        let mut files = BTreeMap::new();
        apply_layer(
            &tar_of(&[("var/lib/dpkg/status.d/a", b"x")])[..],
            &mut files,
        )
        .unwrap();
        apply_layer(
            &tar_of(&[("var/lib/dpkg/.wh.status.d", b"")])[..],
            &mut files,
        )
        .unwrap();
        assert!(files.is_empty());
    }
}
