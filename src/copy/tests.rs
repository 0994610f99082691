use super::*;

/// The tree of `BuildKit`'s `testCopyRelativeParents`, under `test/`.
fn relative_parents_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("test");
    for d in ["a/b/c/d/e", "a/b2/c/d/e", "a/b/c2/d/e", "a/b/c2/d/e2"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "a/b/c/d/foo",
        "a/b/c/d/e/bay",
        "a/b2/c/d/e/bar",
        "a/b/c2/d/e/baz",
        "a/b/c2/d/e2/baz",
    ] {
        fs::write(root.join(f), f).unwrap();
    }
    dir
}

fn spec<'a>(sources: &'a [String], to: &'a str, exclude: &'a [String]) -> CopySpec<'a> {
    CopySpec {
        add: false,
        sources,
        to,
        chown: None,
        chmod: None,
        parents: true,
        exclude,
        checksum: None,
        keep_git_dir: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The paths `copy --parents sources to` writes from the stage at
/// `root`, checking that the cache key reads exactly their sources.
fn copied(root: &Path, sources: &[&str], to: &str, exclude: &[&str]) -> Vec<String> {
    try_copied(root, sources, to, exclude).unwrap()
}

fn try_copied(
    root: &Path,
    sources: &[&str],
    to: &str,
    exclude: &[&str],
) -> Result<Vec<String>, CopyError> {
    let (sources, exclude) = (strings(sources), strings(exclude));
    let spec = spec(&sources, to, &exclude);
    let origin = Origin::Rootfs { root, name: "base" };
    let target = Target {
        root: None,
        mtime: 0,
    };
    let selected = selected_paths(&spec, &origin)?;
    let entries = copy_entries(&spec, &origin, target, &root.join("scratch"))?;
    // Every copied file was read for the key, and nothing else but the
    // roots and the directories above kept paths.
    let read: Vec<&BString> = selected.iter().map(|s| &s.path).collect();
    for entry in &entries {
        if !matches!(entry.kind, EntryKind::Dir) {
            let EntryKind::File {
                source: FileSource::Path(p),
                ..
            } = &entry.kind
            else {
                continue;
            };
            let rel = bytes_of(p.strip_prefix(root).unwrap().to_owned());
            assert!(read.contains(&&rel), "{rel} not in the key: {read:?}");
        }
    }
    let files = |it: &mut dyn Iterator<Item = bool>| it.filter(|f| *f).count();
    assert_eq!(
        files(
            &mut entries
                .iter()
                .map(|e| matches!(e.kind, EntryKind::File { .. }))
        ),
        files(&mut selected.iter().map(|s| s.kind == SelectedKind::File)),
    );
    Ok(entries.into_iter().map(|e| e.path.to_string()).collect())
}

#[test]
fn parents_keep_the_path_below_the_pivot() {
    let dir = relative_parents_tree();
    let root = dir.path();
    // middle: the root is before `/./`, the rest is kept.
    assert_eq!(
        copied(root, &["/test/a/b/./c/d"], "/out/", &[]),
        [
            "out",
            "out/c",
            "out/c/d",
            "out/c/d/e",
            "out/c/d/e/bay",
            "out/c/d/foo"
        ]
    );
    // end, start: no `/./` (a trailing `/.` is none), the whole path.
    for source in ["/test/a/b/c/d/.", "./test/a/b/c/d"] {
        let paths = copied(root, &[source], "/out/", &[]);
        assert!(
            paths.contains(&"out/test/a/b/c/d/foo".to_owned()),
            "{paths:?}"
        );
        assert!(!paths.iter().any(|p| p.contains("c2") || p.contains("b2")));
    }
    // double: only the first `/./` is the pivot.
    assert_eq!(
        copied(root, &["/test/a/./b/./c"], "/out/", &[]),
        [
            "out",
            "out/b",
            "out/b/c",
            "out/b/c/d",
            "out/b/c/d/e",
            "out/b/c/d/e/bay",
            "out/b/c/d/foo"
        ]
    );
}

#[test]
fn parents_wildcards_before_and_after_the_pivot() {
    let dir = relative_parents_tree();
    let root = dir.path();
    // wildcard: after the pivot, a pattern; directories only above matches.
    let paths = copied(root, &["/test/a/./*/c"], "/out/", &[]);
    assert!(paths.contains(&"out/b/c/d/e/bay".to_owned()));
    assert!(paths.contains(&"out/b2/c/d/e/bar".to_owned()));
    assert!(!paths.iter().any(|p| p.contains("c2")), "{paths:?}");
    // doublewildcard: each root match is a root; `**` in the pattern.
    assert_eq!(
        copied(root, &["/test/a/b*/./c/**/e"], "/out/", &[]),
        [
            "out",
            "out/c",
            "out/c/d",
            "out/c/d/e",
            "out/c/d/e/bar",
            "out/c/d/e/bay"
        ]
    );
    // doubleinputs
    assert_eq!(
        copied(
            root,
            &["/test/a/b/c*/./d/**/baz", "/test/a/b*/./c/**/bar"],
            "/out/",
            &[]
        ),
        [
            "out",
            "out/c",
            "out/c/d",
            "out/c/d/e",
            "out/c/d/e/bar",
            "out/d",
            "out/d/e",
            "out/d/e/baz",
            "out/d/e2",
            "out/d/e2/baz"
        ]
    );
}

#[test]
fn parents_missing_paths() {
    // `testCopyParentsMissingDirectory` has no `b2`.
    let dir = relative_parents_tree();
    let root = dir.path();
    fs::remove_dir_all(root.join("test/a/b2")).unwrap();
    // A path without wildcards must be there, in `BuildKit`'s words.
    let err = try_copied(root, &["/test/nonexistent-file"], "/out/", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"/test/nonexistent-file\": not found in `base`"
    );
    let err = try_copied(root, &["test/a/./nope/x"], "/out/", &[]).unwrap_err();
    assert!(
        matches!(err, CopyError::RequiredNotFound { ref path, .. } if path == "/test/a/nope/x")
    );
    // A root without wildcards must be there too.
    assert!(try_copied(root, &["test/nope/./x*"], "/out/", &[]).is_err());
    // A wildcard that matches nothing copies nothing, the destination
    // is made all the same (wildcard-nonexistent, wildcard-afterpivot).
    assert_eq!(copied(root, &["/test/a/b2*/c"], "/out/", &[]), ["out"]);
    assert_eq!(copied(root, &["/test/a/b/./c3*"], "/out/", &[]), ["out"]);
    // But a root wildcard that matches nothing has no copy at all.
    assert!(copied(root, &["/test/a/x*/./c"], "/out/", &[]).is_empty());
}

#[test]
fn parents_lazy_parents_keep_their_metadata_and_excludes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("foo1/foo2")).unwrap();
    fs::create_dir_all(root.join("other")).unwrap();
    fs::write(root.join("foo1/foo2/bar"), "testing").unwrap();
    fs::write(root.join("foo1/foo2/baz"), "testing2").unwrap();
    fs::write(root.join("other/bar"), "o").unwrap();
    fs::set_permissions(root.join("foo1"), fs::Permissions::from_mode(0o700)).unwrap();
    let (sources, exclude) = (strings(&["foo1/foo2/ba*", "*/bar"]), strings(&["**/baz"]));
    let spec = spec(&sources, "/test", &exclude);
    let origin = Origin::Rootfs { root, name: "s" };
    let target = Target {
        root: None,
        mtime: 0,
    };
    let entries = copy_entries(&spec, &origin, target, &root.join("scratch")).unwrap();
    let modes: Vec<(String, u32)> = entries
        .iter()
        .map(|e| (e.path.to_string(), e.mode))
        .collect();
    assert_eq!(
        modes,
        [
            ("test".to_owned(), 0o755),
            ("test/foo1".to_owned(), 0o700),
            ("test/foo1/foo2".to_owned(), 0o755),
            ("test/foo1/foo2/bar".to_owned(), 0o644),
            ("test/other".to_owned(), 0o755),
            ("test/other/bar".to_owned(), 0o644),
        ]
    );
}

#[test]
fn parents_patterns_and_pruning() {
    let include = walk::Include::new("a/b*/c".to_owned()).unwrap();
    assert!(include.keeps(b"a/bx/c"));
    assert!(include.keeps(b"a/bx/c/d"));
    assert!(!include.keeps(b"a/bx"));
    let empty = walk::Include::new(String::new()).unwrap();
    assert!(!empty.keeps(b"a"));
}
