//! Hard links among the files one copy writes, kept as `BuildKit` keeps them.
//!
//! `BuildKit`'s copier (fsutil `copy`) remembers the inode of every file it
//! copies that has more than one name; a later file with the same inode is
//! made a hard link to the first one instead of a second copy. It starts
//! afresh for every path a step copies (each source, and each match of a
//! wildcard, is its own copy), so two names are linked in the layer only
//! when one copied path reaches both: the names under one copied directory,
//! or the files of one unpacked archive. Names copied by different sources,
//! or matched by one wildcard, stay separate files. A name a later source
//! of the same step replaces is no longer a name of that inode.
//!
//! Which name is the file and which are links does not depend on the order
//! a directory lists its entries: the first name in byte order is the file,
//! the later ones link to it, so the layer is the same on every machine and
//! the link always follows its target in the tar stream.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use bstr::{BStr, BString};

use crate::layer::{Entry, EntryKind};

/// One inode as one copied path reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Inode {
    /// Which copied path (source, or wildcard match) of the step reached it.
    copied: usize,
    dev: u64,
    ino: u64,
}

impl Inode {
    /// The inode of the file whose (not followed) metadata is `meta`, as the
    /// `copied`-th path of the step reaches it; `None` unless it is a regular
    /// file with more than one name.
    pub(crate) fn of(copied: usize, meta: &Metadata) -> Option<Self> {
        (meta.is_file() && meta.nlink() > 1).then(|| Inode {
            copied,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// The layer paths that are names of a shared inode.
#[derive(Debug, Default)]
pub(crate) struct Links {
    names: BTreeMap<BString, Inode>,
}

impl Links {
    /// Records what `path` now is: a name of `inode`, or (`None`) a file of
    /// its own, replacing whatever it was before.
    pub(crate) fn record(&mut self, path: &BStr, inode: Option<Inode>) {
        match inode {
            Some(inode) => {
                self.names.insert(path.to_owned(), inode);
            }
            None => {
                self.names.remove(path);
            }
        }
    }

    /// Makes every name of an inode after the first (in byte order) a hard
    /// link to the first.
    pub(crate) fn apply(self, entries: &mut BTreeMap<BString, Entry>) {
        let mut first: HashMap<Inode, BString> = HashMap::new();
        for (path, inode) in self.names {
            let Some(entry) = entries.get_mut(&path) else {
                continue;
            };
            if !matches!(entry.kind, EntryKind::File { .. }) {
                continue;
            }
            match first.entry(inode) {
                Slot::Occupied(target) => {
                    entry.kind = EntryKind::Hardlink {
                        target: target.get().clone(),
                    };
                }
                Slot::Vacant(slot) => {
                    slot.insert(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use bstr::ByteSlice;

    use super::*;
    use crate::layer::FileSource;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                source: FileSource::Bytes(Arc::from(&b"x"[..])),
                size: 1,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    fn entries(paths: &[&str]) -> BTreeMap<BString, Entry> {
        paths.iter().map(|p| (BString::from(*p), file(p))).collect()
    }

    fn inode(copied: usize, ino: u64) -> Inode {
        Inode {
            copied,
            dev: 1,
            ino,
        }
    }

    fn kinds(entries: &BTreeMap<BString, Entry>) -> Vec<String> {
        entries
            .values()
            .map(|e| match &e.kind {
                EntryKind::Hardlink { target } => format!("{} -> {target}", e.path),
                _ => e.path.to_string(),
            })
            .collect()
    }

    #[test]
    fn later_names_link_to_the_first_in_byte_order() {
        let mut all = entries(&["c/b", "c/a.x", "c/a/y", "c/z"]);
        let mut links = Links::default();
        // Recorded in an order that is not the byte order.
        for path in ["c/z", "c/a/y", "c/b", "c/a.x"] {
            links.record(path.as_bytes().as_bstr(), Some(inode(0, 7)));
        }
        links.apply(&mut all);
        // `.` sorts before `/`: `c/a.x` is the first name, as the writer orders them.
        assert_eq!(
            kinds(&all),
            ["c/a.x", "c/a/y -> c/a.x", "c/b -> c/a.x", "c/z -> c/a.x"]
        );
    }

    #[test]
    fn names_reached_by_different_copied_paths_stay_files() {
        let mut all = entries(&["a", "b", "c"]);
        let mut links = Links::default();
        links.record(b"a".as_bstr(), Some(inode(0, 7)));
        links.record(b"b".as_bstr(), Some(inode(1, 7)));
        links.record(b"c".as_bstr(), Some(inode(1, 8)));
        links.apply(&mut all);
        assert_eq!(kinds(&all), ["a", "b", "c"]);
    }

    #[test]
    fn a_replaced_name_is_no_longer_a_link() {
        let mut all = entries(&["a", "b", "c"]);
        let mut links = Links::default();
        for path in ["a", "b", "c"] {
            links.record(path.as_bytes().as_bstr(), Some(inode(0, 7)));
        }
        // A later source writes a file of its own at `a`.
        links.record(b"a".as_bstr(), None);
        links.apply(&mut all);
        assert_eq!(kinds(&all), ["a", "b", "c -> b"]);
    }

    /// The entries `copy sources to` writes from the context `root`.
    fn copy(root: &std::path::Path, sources: &[&str], to: &str) -> Vec<String> {
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let ignore = crate::context::PatternMatcher::new(&[]).unwrap();
        let spec = super::super::CopySpec {
            add: false,
            sources: &sources,
            to,
            chown: None,
            chmod: None,
            parents: false,
            exclude: &[],
            checksum: None,
            keep_git_dir: None,
        };
        let origin = super::super::Origin::Context {
            root,
            ignore: &ignore,
        };
        let target = super::super::Target {
            root: None,
            mtime: 0,
        };
        let scratch = root.join("scratch");
        let entries = super::super::copy_entries(&spec, &origin, target, &scratch).unwrap();
        let map = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        kinds(&map)
    }

    #[test]
    fn copies_link_the_names_one_copied_path_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("x/d")).unwrap();
        fs::create_dir(root.join("y")).unwrap();
        fs::write(root.join("x/a"), "x").unwrap();
        for name in ["x/b", "x/d/c", "other"] {
            fs::hard_link(root.join("x/a"), root.join(name)).unwrap();
        }
        fs::write(root.join("y/b"), "y").unwrap();
        assert_eq!(
            copy(root, &["x"], "/c/"),
            ["c", "c/a", "c/b -> c/a", "c/d", "c/d/c -> c/a"]
        );
        // `y/b` replaces `c/b`; `other` is its own copy.
        assert_eq!(
            copy(root, &["x", "y", "other"], "/c/"),
            ["c", "c/a", "c/b", "c/d", "c/d/c -> c/a", "c/other"]
        );
    }

    #[test]
    fn only_regular_files_with_other_names_have_an_inode() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "x").unwrap();
        fs::write(dir.path().join("single"), "x").unwrap();
        fs::hard_link(&a, dir.path().join("b")).unwrap();
        let meta = |name: &str| fs::symlink_metadata(dir.path().join(name)).unwrap();
        assert_eq!(Inode::of(3, &meta("a")), Inode::of(3, &meta("b")));
        assert!(Inode::of(3, &meta("a")).is_some());
        assert_ne!(Inode::of(3, &meta("a")), Inode::of(4, &meta("b")));
        assert_eq!(Inode::of(0, &meta("single")), None);
        assert_eq!(
            Inode::of(0, &fs::symlink_metadata(dir.path()).unwrap()),
            None
        );
    }
}
