//! Tests of the layer module (they run as root: mknod, chown, trusted.* xattrs).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{
    Compression, CompressionOptions, Entry, EntryKind, ExtractOptions, FileSource, LayerError,
    MaxSize, WriteOptions, entries_from_dir, extract_layer, write_layer,
};

fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::from("sha256:");
    for b in Sha256::digest(data) {
        write!(s, "{b:02x}").unwrap();
    }
    s
}

fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: Vec::new(),
    }
}

fn file(path: &str, contents: &[u8], mode: u32) -> Entry {
    entry(
        path,
        EntryKind::File {
            source: FileSource::Bytes(Arc::from(contents)),
            size: contents.len() as u64,
        },
        mode,
    )
}

fn dir(path: &str) -> Entry {
    entry(path, EntryKind::Dir, 0o755)
}

fn options(compression: Compression) -> WriteOptions {
    WriteOptions {
        compression: CompressionOptions {
            compression,
            level: None,
        },
        source_date_epoch: None,
    }
}

fn write_to_vec(entries: &[Entry], options: &WriteOptions) -> (Vec<u8>, super::WrittenLayer) {
    let mut out = Vec::new();
    let written = write_layer(entries, options, &mut out).expect("write_layer");
    (out, written)
}

fn decompress(data: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    match Compression::detect(data) {
        Compression::None => plain.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut plain)
                .unwrap();
        }
        Compression::Zstd => plain = zstd::decode_all(data).unwrap(),
    }
    plain
}

fn sample_entries() -> Vec<Entry> {
    let long = format!("{}/{}", "d".repeat(60), "f".repeat(60));
    let mut x = file("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o4755);
    x.xattrs = vec![
        ("user.z".into(), b"last".to_vec()),
        ("user.a".into(), vec![0, 1, 2, 255]),
    ];
    vec![
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644),
        dir("usr"),
        x,
        dir("etc"),
        dir("usr/bin"),
        entry(
            "usr/bin/sh",
            EntryKind::Symlink {
                target: "tool".into(),
            },
            0o777,
        ),
        entry(
            "usr/bin/tool2",
            EntryKind::Hardlink {
                target: "usr/bin/tool".into(),
            },
            0o4755,
        ),
        dir(&"d".repeat(60)),
        file(&long, b"long", 0o600),
        entry("gone", EntryKind::Whiteout, 0),
        entry("var", EntryKind::OpaqueDir, 0o755),
        entry("dev", EntryKind::Dir, 0o755),
        entry(
            "dev/null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        entry("dev/fifo", EntryKind::Fifo, 0o600),
    ]
}

#[test]
fn writing_is_deterministic_and_digests_match() {
    let entries = sample_entries();
    let mut reversed = entries.clone();
    reversed.reverse();
    let mut diff_ids = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let opts = options(compression);
        let (a, wa) = write_to_vec(&entries, &opts);
        let (b, wb) = write_to_vec(&reversed, &opts);
        assert_eq!(a, b, "{compression:?} output differs between calls");
        assert_eq!(wa, wb);
        assert_eq!(Compression::detect(&a), compression);
        assert_eq!(wa.digest, sha256_hex(&a));
        assert_eq!(wa.size, a.len() as u64);
        let plain = decompress(&a);
        assert_eq!(wa.diff_id, sha256_hex(&plain));
        assert_eq!(wa.uncompressed_size, plain.len() as u64);
        assert_eq!(plain.len() % 512, 0);
        if compression == Compression::None {
            assert_eq!(wa.digest, wa.diff_id);
        }
        diff_ids.push(wa.diff_id);
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]));
}

/// Layers of UTF-8 names keep the digests they had when paths were `String`:
/// byte order is the order `String` sorted in, and the headers are the same.
#[test]
fn digest_of_utf8_names_is_unchanged() {
    let mut entries = sample_entries();
    entries.push(file("etc/caf\u{e9}-\u{263a}", b"unicode", 0o644));
    let (_, written) = write_to_vec(&entries, &options(Compression::None));
    // Taken with the `String` writer (before names became bytes).
    assert_eq!(
        written.diff_id,
        "sha256:07d444d107a6a16f6c946088a8e03bdacaebdcbfd46fd602c2e3895c5ed84702"
    );
}

/// Names and link targets that are not UTF-8 go into the tar byte for byte
/// (short names in the ustar header, long ones in a PAX `path` record, as
/// Go's archive/tar writes them) and come back out unchanged.
#[test]
fn names_that_are_not_utf8_are_kept_as_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let at = |path: &[u8], kind: EntryKind, mode: u32| Entry {
        path: path.into(),
        ..entry("x", kind, mode)
    };
    let bytes = |b: &[u8]| EntryKind::File {
        source: FileSource::Bytes(Arc::from(b)),
        size: b.len() as u64,
    };
    let long: Vec<u8> = [&b"d\xff/"[..], &[b'n'; 120], b"\xfe"].concat();
    let entries = vec![
        at(b"f-\xff.txt", bytes(b"ff"), 0o644),
        at(b"f-\xfe.txt", bytes(b"fe"), 0o644),
        at(b"d\xff", EntryKind::Dir, 0o755),
        at(&long, bytes(b"long"), 0o600),
        at(
            b"link",
            EntryKind::Symlink {
                target: b"f-\xff.txt".into(),
            },
            0o777,
        ),
        at(
            b"hard",
            EntryKind::Hardlink {
                target: b"f-\xfe.txt".into(),
            },
            0o644,
        ),
        at(b"gone-\xff", EntryKind::Whiteout, 0),
    ];
    let (layer, _) = write_to_vec(&entries, &options(Compression::None));

    let mut archive = tar::Archive::new(layer.as_slice());
    let mut seen: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let link = e.link_name_bytes().map(std::borrow::Cow::into_owned);
        seen.push((e.path_bytes().into_owned(), link));
    }
    let names: Vec<&[u8]> = seen.iter().map(|(n, _)| n.as_slice()).collect();
    let long_name: &[u8] = &long;
    assert_eq!(
        names,
        [
            &b".wh.gone-\xff"[..],
            b"d\xff/",
            long_name,
            b"f-\xfe.txt",
            b"f-\xff.txt",
            b"hard",
            b"link",
        ]
    );
    assert_eq!(seen[5].1.as_deref(), Some(&b"f-\xfe.txt"[..]));
    assert_eq!(seen[6].1.as_deref(), Some(&b"f-\xff.txt"[..]));

    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("dst");
    extract_layer(
        layer.as_slice(),
        &dst,
        &ExtractOptions {
            preserve_ownership: true,
            overlay_whiteouts: false,
            ..ExtractOptions::default()
        },
    )
    .unwrap();
    let host = |b: &[u8]| dst.join(OsStr::from_bytes(b));
    assert_eq!(fs::read(host(b"f-\xff.txt")).unwrap(), b"ff");
    assert_eq!(fs::read(host(b"f-\xfe.txt")).unwrap(), b"fe");
    assert_eq!(fs::read(host(&long)).unwrap(), b"long");
    assert_eq!(
        fs::read_link(host(b"link")).unwrap().as_os_str().as_bytes(),
        b"f-\xff.txt"
    );
    assert_eq!(
        fs::metadata(host(b"hard")).unwrap().ino(),
        fs::metadata(host(b"f-\xfe.txt")).unwrap().ino()
    );

    // Scanning the extracted tree (as a RUN step's upper dir is) keeps them.
    let scanned = entries_from_dir(&dst).unwrap();
    let paths: Vec<&[u8]> = scanned.iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(
        paths,
        [
            &b"d\xff"[..],
            &long,
            b"f-\xfe.txt",
            b"f-\xff.txt",
            b"hard",
            b"link"
        ]
    );
    assert!(matches!(
        &scanned[5].kind,
        EntryKind::Symlink { target } if target == &b"f-\xff.txt"[..]
    ));
}

#[test]
fn gzip_header_is_fixed() {
    let (a, _) = write_to_vec(&sample_entries(), &options(Compression::Gzip));
    assert_eq!(&a[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(a[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
    assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime 0");
    assert_eq!(a[9], 255, "OS byte");
}

#[test]
fn tar_layout_and_mtime_clamp() {
    let mut late = file("late", b"x", 0o644);
    late.mtime = 2_000_000_000;
    let mut early = file("early", b"y", 0o644);
    early.mtime = 1_000;
    let mut entries = sample_entries();
    entries.extend([late, early]);
    let opts = WriteOptions {
        source_date_epoch: Some(1_500_000_000),
        ..options(Compression::None)
    };
    let (tar_bytes, _) = write_to_vec(&entries, &opts);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let h = e.header();
        assert!(h.as_ustar().is_some(), "ustar header for {name}");
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let mtime = h.mtime().unwrap();
        match name.as_str() {
            "late" => assert_eq!(mtime, 1_500_000_000),
            "early" => assert_eq!(mtime, 1_000),
            _ => assert!(mtime <= 1_500_000_000),
        }
        if !matches!(h.entry_type(), tar::EntryType::Char | tar::EntryType::Block) {
            assert_eq!(&h.as_ustar().unwrap().dev_major, &[0u8; 8]);
        }
        if name == ".wh.gone" || name == "var/.wh..wh..opq" {
            assert_eq!(h.mode().unwrap(), 0);
            assert_eq!(h.entry_type(), tar::EntryType::Regular);
            assert_eq!(h.size().unwrap(), 0);
        }
        if name == "usr/bin/tool" {
            let xattrs: Vec<(String, Vec<u8>)> = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_owned(), x.value_bytes().to_vec())
                })
                .collect();
            assert_eq!(
                xattrs,
                vec![
                    ("SCHILY.xattr.user.a".to_owned(), vec![0, 1, 2, 255]),
                    ("SCHILY.xattr.user.z".to_owned(), b"last".to_vec()),
                ]
            );
            assert_eq!(e.header().mode().unwrap(), 0o4755);
        }
        if name == "usr/bin/tool2" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Link);
            assert_eq!(&*e.link_name_bytes().unwrap(), b"usr/bin/tool");
        }
        names.push(name);
    }
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(names, sorted);
    assert!(names.contains(&format!("{}/", "d".repeat(60))));
    assert!(names.contains(&format!("{}/{}", "d".repeat(60), "f".repeat(60))));
    assert!(names.contains(&"var/".to_owned()));
    let var = names.iter().position(|n| n == "var/").unwrap();
    assert_eq!(names[var + 1], "var/.wh..wh..opq");
}

#[test]
fn write_rejects_inconsistent_entries() {
    let cases: Vec<Vec<Entry>> = vec![
        vec![file("../x", b"", 0o644)],
        vec![file("/x", b"", 0o644)],
        vec![file("a//b", b"", 0o644)],
        vec![file("a/.wh.b", b"", 0o644)],
        vec![file("x", b"", 0o100_644)],
        vec![file("x", b"", 0o644), dir("x")],
        vec![file("x", b"", 0o644), entry("x", EntryKind::Whiteout, 0)],
        vec![entry(
            "a",
            EntryKind::Hardlink { target: "b".into() },
            0o644,
        )],
        vec![
            file("b", b"", 0o644),
            entry("a", EntryKind::Hardlink { target: "b".into() }, 0o644),
        ],
        vec![entry(
            "x",
            EntryKind::File {
                source: FileSource::Bytes(Arc::from(&b"abc"[..])),
                size: 2,
            },
            0o644,
        )],
    ];
    for entries in cases {
        let err = write_layer(&entries, &options(Compression::None), Vec::new()).unwrap_err();
        assert!(
            matches!(err, LayerError::Invalid { .. }),
            "{entries:?}: {err}"
        );
    }
    let bad_level = WriteOptions {
        compression: CompressionOptions {
            compression: Compression::Gzip,
            level: Some(10),
        },
        source_date_epoch: None,
    };
    assert!(matches!(
        write_layer(&[], &bad_level, Vec::new()),
        Err(LayerError::Options(_))
    ));
}

#[test]
fn file_that_changed_size_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    fs::write(&path, b"12345").unwrap();
    for size in [4, 6] {
        let e = entry(
            "f",
            EntryKind::File {
                source: FileSource::Path(path.clone()),
                size,
            },
            0o644,
        );
        let err = write_layer(&[e], &options(Compression::None), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("changed size"), "{err}");
    }
}

#[test]
fn detect_compression() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"usr/\0\0\0"), Compression::None);
    assert_eq!(Compression::detect(&[]), Compression::None);
    assert_eq!(
        Compression::Gzip.media_type(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        Compression::Zstd.media_type(),
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        Compression::None.media_type(),
        "application/vnd.oci.image.layer.v1.tar"
    );
}

/// Entries of a tree with file sources replaced by their contents, so that
/// two trees can be compared.
fn comparable(root: &Path) -> Vec<Entry> {
    entries_from_dir(root)
        .unwrap()
        .into_iter()
        .map(|mut e| {
            if let EntryKind::File {
                source: FileSource::Path(p),
                size,
            } = &e.kind
            {
                e.kind = EntryKind::File {
                    source: FileSource::Bytes(Arc::from(fs::read(p).unwrap())),
                    size: *size,
                };
            }
            e
        })
        .collect()
}

fn set_times(path: &Path, secs: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

#[test]
fn round_trip_through_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let long_dir = src.join("a".repeat(70)).join("b".repeat(70));
    fs::create_dir_all(&long_dir).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/config"), b"key = value\n").unwrap();
    fs::write(long_dir.join("deep-file"), b"deep contents").unwrap();
    let suid = src.join("suid");
    fs::write(&suid, b"\x7fELF pretend").unwrap();
    std::os::unix::fs::lchown(&suid, Some(1234), Some(5678)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(&suid, src.join("suid-link")).unwrap();
    std::os::unix::fs::symlink("etc/config", src.join("config-link")).unwrap();
    let long_target = format!("{}/{}/deep-file", "a".repeat(70), "b".repeat(70));
    std::os::unix::fs::symlink(&long_target, src.join("long-link")).unwrap();
    rustix::fs::lsetxattr(
        src.join("etc/config"),
        "user.test",
        b"hello",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::set_permissions(src.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
    for e in walk(&src) {
        set_times(&e, 1_600_000_000);
    }

    let entries = entries_from_dir(&src).unwrap();
    let link = entries.iter().find(|e| e.path == "suid-link").unwrap();
    assert_eq!(
        link.kind,
        EntryKind::Hardlink {
            target: "suid".into()
        }
    );

    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (layer, _) = write_to_vec(&entries, &options(compression));
        let dst = tmp.path().join(format!("dst-{compression:?}"));
        let stats = extract_layer(
            layer.as_slice(),
            &dst,
            &ExtractOptions {
                preserve_ownership: true,
                overlay_whiteouts: false,
                ..ExtractOptions::default()
            },
        )
        .unwrap();
        assert_eq!(stats.entries, entries.len());
        assert_eq!(stats.whiteouts, 0);

        assert_eq!(comparable(&src), comparable(&dst));
        let a = fs::metadata(dst.join("suid")).unwrap();
        let b = fs::metadata(dst.join("suid-link")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o4755);
        assert_eq!((a.uid(), a.gid()), (1234, 5678));
        assert_eq!(
            fs::read_link(dst.join("long-link")).unwrap(),
            PathBuf::from(&long_target)
        );
        assert_eq!(fs::read(dst.join(&long_target)).unwrap(), b"deep contents");
        assert_eq!(
            super::xattr::get(&dst.join("etc/config"), b"user.test").unwrap(),
            b"hello"
        );
        assert_eq!(
            fs::metadata(dst.join("etc")).unwrap().mode() & 0o7777,
            0o750
        );
        assert_eq!(
            fs::metadata(dst.join("etc")).unwrap().mtime(),
            1_600_000_000
        );
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    // Deepest first, so setting a child's time does not disturb its parent's.
    all.reverse();
    all
}

#[test]
fn whiteouts_from_overlay_upperdir_and_applied_on_extract() {
    let tmp = tempfile::tempdir().unwrap();
    // Lower layer.
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("opq/sub")).unwrap();
    fs::create_dir_all(lower.join("keep")).unwrap();
    fs::write(lower.join("file"), b"lower file").unwrap();
    fs::write(lower.join("other"), b"stays").unwrap();
    fs::write(lower.join("opq/old"), b"old").unwrap();
    fs::write(lower.join("opq/sub/old2"), b"old").unwrap();
    fs::write(lower.join("keep/x"), b"x").unwrap();

    // Upper dir as overlayfs leaves it.
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("opq/sub")).unwrap();
    fs::create_dir_all(upper.join("keep")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("file"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o000),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("keep/x"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o000),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("opq"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("keep"),
        "trusted.overlay.impure",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(upper.join("opq/new"), b"new").unwrap();
    fs::write(upper.join("opq/sub/new2"), b"new").unwrap();

    let entries = entries_from_dir(&upper).unwrap();
    let kind_of = |p: &str| entries.iter().find(|e| e.path == p).unwrap().kind.clone();
    assert_eq!(kind_of("file"), EntryKind::Whiteout);
    assert_eq!(kind_of("keep/x"), EntryKind::Whiteout);
    assert_eq!(kind_of("opq"), EntryKind::OpaqueDir);
    assert_eq!(kind_of("keep"), EntryKind::Dir);
    assert!(entries.iter().all(|e| e.xattrs.is_empty()));

    let root = tmp.path().join("root");
    let opts = ExtractOptions {
        preserve_ownership: true,
        overlay_whiteouts: false,
        ..ExtractOptions::default()
    };
    for (tree, expect_whiteouts) in [(&lower, 0), (&upper, 3)] {
        let (layer, _) = write_to_vec(
            &entries_from_dir(tree).unwrap(),
            &options(Compression::Gzip),
        );
        let stats = extract_layer(layer.as_slice(), &root, &opts).unwrap();
        assert_eq!(stats.whiteouts, expect_whiteouts);
    }
    assert!(!root.join("file").exists());
    assert!(!root.join("keep/x").exists());
    assert!(root.join("keep").is_dir());
    assert_eq!(fs::read(root.join("other")).unwrap(), b"stays");
    assert!(!root.join("opq/old").exists());
    assert!(!root.join("opq/sub/old2").exists());
    assert_eq!(fs::read(root.join("opq/new")).unwrap(), b"new");
    assert_eq!(fs::read(root.join("opq/sub/new2")).unwrap(), b"new");
}

#[test]
fn opaque_marker_after_new_entries_keeps_them() {
    // `-new` sorts before `.wh..wh..opq`, so the marker arrives after it.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let opts = ExtractOptions::default();
    let lower = vec![
        dir("d"),
        dir("d/-new"),
        file("d/-new/old", b"old", 0o644),
        file("d/old", b"old", 0o644),
    ];
    let upper = vec![
        entry("d", EntryKind::OpaqueDir, 0o755),
        dir("d/-new"),
        file("d/-new/fresh", b"fresh", 0o644),
        entry("d/-gone", EntryKind::Whiteout, 0),
    ];
    for layer in [lower, upper] {
        let (bytes, _) = write_to_vec(&layer, &options(Compression::Zstd));
        extract_layer(bytes.as_slice(), &root, &opts).unwrap();
    }
    assert_eq!(fs::read(root.join("d/-new/fresh")).unwrap(), b"fresh");
    assert!(!root.join("d/-new/old").exists());
    assert!(!root.join("d/old").exists());
}

#[test]
fn unconvertible_upperdir_contents_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(&upper).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(upper.join("sock")).unwrap();
    let err = entries_from_dir(&upper).unwrap_err();
    assert!(
        matches!(&err, LayerError::Unsupported { path, .. } if path == "sock"),
        "{err}"
    );
    fs::remove_file(upper.join("sock")).unwrap();

    fs::create_dir(upper.join("moved")).unwrap();
    rustix::fs::lsetxattr(
        upper.join("moved"),
        "trusted.overlay.redirect",
        b"/old",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = entries_from_dir(&upper).unwrap_err();
    assert!(
        matches!(&err, LayerError::Unsupported { path, .. } if path == "moved"),
        "{err}"
    );
    assert!(err.to_string().contains("moved"));
}

// ---- malicious layers ----

/// A raw tar member: name, type, link name, contents.
struct Raw<'a>(&'a str, tar::EntryType, &'a str, &'a [u8]);

/// Builds a tar with names written straight into the header (bypassing the
/// `tar` crate's path checks).
fn raw_tar(members: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for Raw(name, kind, link, data) in members {
        let mut header = tar::Header::new_ustar();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// base/a/b/{root,sentinel}; returns (base, root).
fn jail() -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("a/b/root");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(base.path().join("a/b/sentinel")).unwrap();
    fs::write(base.path().join("a/b/sentinel/target"), b"original").unwrap();
    (base, root)
}

/// Asserts nothing outside `root` was added or changed.
fn assert_outside_untouched(base: &Path) {
    let mut outside: Vec<String> = walkdir::WalkDir::new(base)
        .into_iter()
        .filter_entry(|e| !e.path().ends_with("a/b/root"))
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    outside.sort();
    assert_eq!(
        outside,
        ["", "a", "a/b", "a/b/sentinel", "a/b/sentinel/target"]
    );
    assert_eq!(
        fs::read(base.join("a/b/sentinel/target")).unwrap(),
        b"original"
    );
}

fn extract_raw(members: &[Raw<'_>], root: &Path) -> Result<super::Extracted, LayerError> {
    let layer = raw_tar(members);
    extract_layer(
        layer.as_slice(),
        root,
        &ExtractOptions {
            preserve_ownership: true,
            overlay_whiteouts: false,
            ..ExtractOptions::default()
        },
    )
}

fn assert_unsafe(result: Result<super::Extracted, LayerError>, name: &str) {
    match result {
        Err(err @ LayerError::Unsafe { .. }) => {
            let LayerError::Unsafe { path, .. } = &err else {
                unreachable!()
            };
            assert_eq!(path, name);
            assert!(err.to_string().contains(name), "{err}");
        }
        other => panic!("expected Unsafe for {name}, got {other:?}"),
    }
}

use tar::EntryType as T;

#[test]
fn refuses_dotdot_entry() {
    let (base, root) = jail();
    assert_unsafe(
        extract_raw(&[Raw("../escape", T::Regular, "", b"pwned")], &root),
        "../escape",
    );
    assert_unsafe(
        extract_raw(&[Raw("a/../../escape", T::Regular, "", b"pwned")], &root),
        "a/../../escape",
    );
    assert_unsafe(
        extract_raw(&[Raw("../sentinel/.wh.target", T::Regular, "", b"")], &root),
        "../sentinel/.wh.target",
    );
    assert_outside_untouched(base.path());
}

#[test]
fn refuses_symlink_parent_escaping_root() {
    let (base, root) = jail();
    assert_unsafe(
        extract_raw(
            &[
                Raw("evil", T::Symlink, "../../..", b""),
                Raw("evil/pwned", T::Regular, "", b"pwned"),
            ],
            &root,
        ),
        "evil/pwned",
    );
    // Chains of relative links and whiteouts through them are refused too.
    assert_unsafe(
        extract_raw(
            &[
                Raw("up", T::Symlink, "..", b""),
                Raw("x/y", T::Symlink, "../../up/sentinel", b""),
                Raw("x/y/target", T::Regular, "", b"pwned"),
            ],
            &root,
        ),
        "x/y/target",
    );
    assert_unsafe(
        extract_raw(&[Raw("x/y/.wh.target", T::Regular, "", b"")], &root),
        "x/y/.wh.target",
    );
    assert_outside_untouched(base.path());
}

#[test]
fn absolute_symlink_in_parent_is_rerooted() {
    let (base, root) = jail();
    let stats = extract_raw(
        &[
            Raw("evil", T::Symlink, "/", b""),
            Raw("evil/inside", T::Regular, "", b"inside"),
            Raw("deep", T::Symlink, "/../../../a/b/sentinel", b""),
            Raw("deep/target", T::Regular, "", b"rerooted"),
            Raw("/abs/file", T::Regular, "", b"abs"),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(stats.entries, 5);
    assert_eq!(fs::read(root.join("inside")).unwrap(), b"inside");
    assert_eq!(
        fs::read(root.join("a/b/sentinel/target")).unwrap(),
        b"rerooted"
    );
    assert_eq!(fs::read(root.join("abs/file")).unwrap(), b"abs");
    assert_outside_untouched(base.path());
}

#[test]
fn refuses_hardlink_outside_root() {
    let (base, root) = jail();
    assert_unsafe(
        extract_raw(&[Raw("passwd", T::Link, "../../etc/passwd", b"")], &root),
        "passwd",
    );
    // A hardlink through a symlinked parent that leaves the root.
    assert_unsafe(
        extract_raw(
            &[
                Raw("out", T::Symlink, "../sentinel", b""),
                Raw("stolen", T::Link, "out/target", b""),
            ],
            &root,
        ),
        "stolen",
    );
    assert_outside_untouched(base.path());
}

#[test]
fn final_symlink_is_replaced_not_followed() {
    let (base, root) = jail();
    let outside = base.path().join("a/b/sentinel/target");
    let outside = outside.to_str().unwrap();
    extract_raw(&[Raw("link", T::Symlink, outside, b"")], &root).unwrap();
    extract_raw(&[Raw("link", T::Regular, "", b"replaced")], &root).unwrap();
    let meta = fs::symlink_metadata(root.join("link")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(root.join("link")).unwrap(), b"replaced");

    // Same for a directory entry and a symlink to a directory outside.
    let sentinel_dir = base.path().join("a/b/sentinel");
    extract_raw(
        &[
            Raw("dirlink", T::Symlink, sentinel_dir.to_str().unwrap(), b""),
            Raw("dirlink/", T::Directory, "", b""),
        ],
        &root,
    )
    .unwrap();
    assert!(fs::symlink_metadata(root.join("dirlink")).unwrap().is_dir());
    assert_outside_untouched(base.path());
}

#[test]
fn refuses_overlay_xattrs_in_layers() {
    let mut e = file("x", b"", 0o644);
    e.xattrs = vec![("trusted.overlay.redirect".into(), b"/etc".to_vec())];
    assert!(write_layer(&[e], &options(Compression::None), Vec::new()).is_err());
}

/// Bytes a file takes on disk.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// A gzip layer holding one file of `size` bytes of `byte`: a few KiB
/// that expand a thousandfold.
fn bomb(size: usize, byte: u8) -> Vec<u8> {
    let content = vec![byte; size];
    write_to_vec(&[file("big", &content, 0o644)], &options(Compression::Gzip)).0
}

#[test]
fn extraction_stops_at_the_size_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = bomb(64 << 20, b'x');
    assert!(layer.len() < 1 << 20, "{}", layer.len());
    for declared in [false, true] {
        let root = tmp.path().join(format!("root-{declared}"));
        let err = extract_layer(
            layer.as_slice(),
            &root,
            &ExtractOptions {
                max_size: Some(MaxSize {
                    bytes: 10 << 20,
                    declared,
                }),
                ..ExtractOptions::default()
            },
        )
        .unwrap_err();
        let LayerError::TooLarge { limit, declared: d } = err else {
            panic!("{err}");
        };
        assert_eq!((limit, d), (10 << 20, declared));
        let message = err.to_string();
        assert!(message.contains("more than 10.0 MiB"), "{message}");
        // Stopped at the bound: no more than it was written.
        let written = fs::metadata(root.join("big")).map_or(0, |m| m.len());
        assert!(written <= 10 << 20, "{written} bytes written");
    }
    // A bound it fits in is fine.
    let root = tmp.path().join("fits");
    extract_layer(
        layer.as_slice(),
        &root,
        &ExtractOptions {
            max_size: Some(MaxSize {
                bytes: 65 << 20,
                declared: false,
            }),
            ..ExtractOptions::default()
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(root.join("big")).unwrap().len(), 64 << 20);
}

#[test]
fn extraction_checks_the_diff_id_including_trailing_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut layer, written) = write_to_vec(&sample_entries(), &options(Compression::None));
    assert_eq!(written.diff_id, sha256_hex(&layer));
    let with = |diff_id: &str| ExtractOptions {
        diff_id: Some(diff_id.to_owned()),
        ..ExtractOptions::default()
    };
    extract_layer(
        layer.as_slice(),
        &tmp.path().join("ok"),
        &with(&written.diff_id),
    )
    .unwrap();
    // Record padding after the end-of-archive blocks counts, as `tar` writes it.
    layer.extend_from_slice(&[0u8; 8192]);
    let err = extract_layer(
        layer.as_slice(),
        &tmp.path().join("padded"),
        &with(&written.diff_id),
    )
    .unwrap_err();
    let LayerError::DiffIdMismatch { expected, actual } = &err else {
        panic!("{err}");
    };
    assert_eq!(expected, &written.diff_id);
    assert_eq!(actual, &sha256_hex(&layer));
    extract_layer(
        layer.as_slice(),
        &tmp.path().join("ok2"),
        &with(&sha256_hex(&layer)),
    )
    .unwrap();
}

#[test]
fn extracted_files_keep_zero_runs_as_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut content = vec![0u8; 64 << 20];
    content[100_000..100_005].copy_from_slice(b"hello");
    content[(40 << 20) + 3] = 1;
    let layer = write_to_vec(
        &[file("sparse", &content, 0o644)],
        &options(Compression::None),
    )
    .0;
    let root = tmp.path().join("root");
    extract_layer(layer.as_slice(), &root, &ExtractOptions::default()).unwrap();
    let path = root.join("sparse");
    assert_eq!(fs::read(&path).unwrap(), content);
    assert!(
        allocated(&path) <= 1 << 20,
        "{} bytes allocated",
        allocated(&path)
    );
}

/// Mounts a tmpfs of `size` at `dir` (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn extraction_refuses_to_fill_the_filesystem() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs16) = Tmpfs::mount(&tmp.path().join("small"), "16m") else {
        eprintln!("skipped: cannot mount a tmpfs");
        return;
    };
    // Before anything is written: the layer needs more than there is.
    let err = extract_layer(
        &b""[..],
        &fs16.0.join("a"),
        &ExtractOptions {
            space_needed: 15 << 20,
            ..ExtractOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, LayerError::NoSpace { .. }), "{err}");
    assert!(!fs16.0.join("a").join("big").exists());
    // While writing: 32 MiB of data do not fit; it stops with the reserve free.
    let err = extract_layer(
        bomb(32 << 20, b'x').as_slice(),
        &fs16.0.join("b"),
        &ExtractOptions::default(),
    )
    .unwrap_err();
    let LayerError::NoSpace {
        available, reserve, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(*reserve, 4 << 20);
    assert!(*available <= 16 << 20);
    let message = err.to_string();
    assert!(message.contains("not enough free space"), "{message}");
    assert!(allocated(&fs16.0.join("b/big")) <= (12 << 20) + (1 << 20));
    // Zeros take no space: a 32 MiB sparse file fits in 16 MiB.
    fs::remove_dir_all(fs16.0.join("b")).unwrap();
    extract_layer(
        bomb(32 << 20, 0).as_slice(),
        &fs16.0.join("c"),
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::metadata(fs16.0.join("c/big")).unwrap().len(), 32 << 20);
}

/// Everything a later step can read of a tree (and overlayfs reads of a
/// lowerdir), path by path: type, mode, owner, mtime, device, xattrs
/// (overlay ones included) and content. Not atimes, which reading changes,
/// nor a whiteout's mtime, which overlayfs never shows.
fn full_view(root: &Path) -> Vec<String> {
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    all.sort();
    all.iter()
        .map(|path| {
            let meta = fs::symlink_metadata(path).unwrap();
            let mut xattrs: Vec<String> = super::xattr::list(path)
                .unwrap()
                .into_iter()
                .map(|name| {
                    let value = super::xattr::get(path, &name).unwrap();
                    format!("{}={value:?}", String::from_utf8_lossy(&name))
                })
                .collect();
            xattrs.sort();
            let content = if meta.is_file() {
                sha256_hex(&fs::read(path).unwrap())
            } else if meta.file_type().is_symlink() {
                fs::read_link(path).unwrap().display().to_string()
            } else {
                String::new()
            };
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            let mtime = if whiteout {
                String::new()
            } else {
                format!("{}.{}", meta.mtime(), meta.mtime_nsec())
            };
            format!(
                "{} mode={:o} owner={}:{} mtime={mtime} rdev={} nlink={} xattrs={xattrs:?} {content}",
                path.strip_prefix(root).unwrap().display(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.rdev(),
                meta.nlink(),
            )
        })
        .collect()
}

#[test]
fn an_upper_dir_normalized_is_what_extracting_its_layer_gives() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: trusted xattrs and whiteout devices need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("opq/sub")).unwrap();
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::write(upper.join("opq/sub/new"), b"new").unwrap();
    fs::write(upper.join("etc/config"), b"key = value\n").unwrap();
    fs::hard_link(upper.join("etc/config"), upper.join("etc/config-link")).unwrap();
    std::os::unix::fs::symlink("config", upper.join("etc/link")).unwrap();
    std::os::unix::fs::lchown(upper.join("etc/config"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(upper.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o000),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    let set = |path: &str, name: &str, value: &[u8]| {
        rustix::fs::lsetxattr(
            upper.join(path),
            name,
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    };
    set("opq", "trusted.overlay.opaque", b"y");
    set("etc", "trusted.overlay.impure", b"y");
    set("etc/config", "trusted.overlay.origin", b"\x00\xfb\x21");
    set("etc/config", "user.kept", b"value");
    // The command's own times: nanoseconds, some after SOURCE_DATE_EPOCH.
    for (i, path) in walk(&upper).iter().enumerate() {
        let secs = if i % 2 == 0 {
            1_800_000_000
        } else {
            1_500_000_000
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: secs + 7,
                    tv_nsec: 5,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: secs,
                    tv_nsec: 123_456_789,
                },
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    for epoch in [None, Some(1_700_000_000)] {
        let tree = tmp.path().join(format!("tree-{epoch:?}"));
        let copy = std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(&upper)
            .arg(&tree)
            .status()
            .unwrap();
        assert!(copy.success());
        let entries = entries_from_dir(&tree).unwrap();
        let options = WriteOptions {
            source_date_epoch: epoch,
            ..options(Compression::None)
        };
        let (layer, _) = write_to_vec(&entries, &options);
        let extracted = tmp.path().join(format!("extracted-{epoch:?}"));
        extract_layer(
            layer.as_slice(),
            &extracted,
            &ExtractOptions {
                preserve_ownership: true,
                overlay_whiteouts: true,
                ..ExtractOptions::default()
            },
        )
        .unwrap();
        super::normalize_as_extracted(&tree, &entries, epoch).unwrap();
        assert_eq!(full_view(&tree), full_view(&extracted), "epoch {epoch:?}");
    }
}
