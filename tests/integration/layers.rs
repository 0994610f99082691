//! Hostile base layers (gzip bombs, wrong `diff_id`s) and sparse files:
//! what extraction into the store and into outputs refuses, and what it
//! keeps from taking disk space.

use std::io::Write as _;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use crate::util::{Output, have, imgbuild_in, layout_with_blob, run_tool, sha256_digest};

/// A tar of one regular file `name` holding `size` bytes of `byte`.
fn tar_of(name: &str, size: usize, byte: u8) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            name,
            std::io::Read::take(std::io::repeat(byte), size as u64),
        )
        .unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Bytes the files under `dir` take on disk.
fn allocated(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Entries of `dir` (none if it is missing), lock files left out.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_none_or(|e| e != "lock"))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A project whose one stage is based on `base` and writes a file, which
/// needs the base's layers extracted.
fn project_on(base: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("imgbuild.toml"),
        format!(
            "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [{{ file = \"x\", to = \"/x\" }}]\n[images.a]\nstage = \"a\"\n",
            base.display()
        ),
    )
    .unwrap();
    dir
}

fn apply(project: &Path, args: &[&str]) -> Output {
    let store = project.join(".store");
    let mut all = vec!["--store", store.to_str().unwrap(), "apply"];
    all.extend_from_slice(args);
    imgbuild_in(project, &all)
}

/// Asserts a refused build: exit 1, the message names the layer and says
/// `why`, and the store keeps no snapshot, no temp entry, and no more than
/// `max_store` bytes.
fn assert_refused(project: &Path, out: &Output, layer: &str, why: &str, max_store: u64) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(layer),
        "names the layer:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains(why), "says `{why}`:\n{}", out.stderr);
    let store = project.join(".store");
    assert!(entries(&store.join("snapshots")).is_empty());
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "{:?}",
        entries(&store.join("tmp"))
    );
    assert!(
        allocated(&store) <= max_store,
        "the store holds {} bytes",
        allocated(&store)
    );
}

#[test]
fn gzip_bomb_base_layers_are_refused() {
    // 64 MiB of one byte: gzip makes it about 64 KiB. Not zeros, which
    // extraction would store as holes: these take space when written.
    let tar = tar_of("bomb", 64 << 20, b'x');
    let blob = gzip(&tar);
    assert!(blob.len() < 1 << 20);
    let base = tempfile::tempdir().unwrap();
    let gzip_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    layout_with_blob(base.path(), &blob, gzip_type, &sha256_digest(&tar));
    let layer = sha256_digest(&blob);
    let bound = 12 << 20; // the limit, the blobs and some slack

    // The configured maximum, as a flag.
    let project = project_on(base.path());
    let out = apply(project.path(), &["--max-layer-size", "10MiB"]);
    assert_refused(project.path(), &out, &layer, "more than 10.0 MiB", bound);
    assert!(out.stderr.contains("--max-layer-size"), "{}", out.stderr);

    // ... and in the environment.
    let project = project_on(base.path());
    let store = project.path().join(".store");
    let output = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(["--store", store.to_str().unwrap(), "apply"])
        .current_dir(project.path())
        .env("IMGBUILD_MAX_LAYER_SIZE", "10m")
        .env("NO_COLOR", "1")
        .env_remove("IMGBUILD_PROGRESS")
        .output()
        .unwrap();
    let out = Output {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_refused(project.path(), &out, &layer, "more than 10.0 MiB", bound);

    // A blob that claims to be an uncompressed tar is held to its own size.
    let lying = tempfile::tempdir().unwrap();
    layout_with_blob(
        lying.path(),
        &blob,
        "application/vnd.oci.image.layer.v1.tar",
        &sha256_digest(&tar),
    );
    let project = project_on(lying.path());
    let out = apply(project.path(), &[]);
    assert_refused(project.path(), &out, &layer, "the size it declares", bound);

    // Within the limit, the same base builds.
    let project = project_on(base.path());
    let out = apply(project.path(), &["--max-layer-size", "65MiB"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn base_layer_with_a_wrong_diff_id_is_refused() {
    let tar = tar_of("file", 1000, b'a');
    let blob = gzip(&tar);
    let base = tempfile::tempdir().unwrap();
    let claimed = sha256_digest(b"some other layer");
    layout_with_blob(
        base.path(),
        &blob,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &claimed,
    );
    let project = project_on(base.path());
    let out = apply(project.path(), &[]);
    assert_refused(
        project.path(),
        &out,
        &sha256_digest(&blob),
        &format!("not the diff_id {claimed}"),
        1 << 20,
    );
}

#[test]
fn layout_blob_larger_than_its_descriptor_is_refused() {
    let tar = tar_of("file", 1000, b'a');
    let base = tempfile::tempdir().unwrap();
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    layout_with_blob(base.path(), &tar, layer_type, &sha256_digest(&tar));
    // Append to the blob: the descriptor's size no longer matches.
    let path = base
        .path()
        .join("blobs/sha256")
        .join(&sha256_digest(&tar)["sha256:".len()..]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0; 512])
        .unwrap();
    let project = project_on(base.path());
    let out = apply(project.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("but its descriptor declares {}", tar.len())),
        "{}",
        out.stderr
    );
}

#[test]
fn sparse_files_stay_sparse() {
    const SIZE: u64 = 256 << 20;
    const AT: u64 = 100_000_000;
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("imgbuild.toml"),
        "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { copy = \"big\", to = \"/big\" },\n  { file = \"x\", to = \"/x\" },\n]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/sparse:1\"]\n",
    )
    .unwrap();
    let big = std::fs::File::create(project.path().join("big")).unwrap();
    big.set_len(SIZE).unwrap();
    big.write_all_at(b"hello", AT).unwrap();
    drop(big);
    let small = 2 << 20;
    let check = |file: &Path| {
        let meta = std::fs::metadata(file).unwrap();
        assert_eq!(meta.len(), SIZE, "{}", file.display());
        assert!(
            meta.blocks() * 512 <= small,
            "{} takes {} bytes",
            file.display(),
            meta.blocks() * 512
        );
        let mut word = [0u8; 5];
        std::fs::File::open(file)
            .unwrap()
            .read_exact_at(&mut word, AT)
            .unwrap();
        assert_eq!(&word, b"hello");
    };

    let out = apply(
        project.path(),
        &[
            "--output",
            "type=local,dest=rootfs",
            "--output",
            "type=oci-layout,dest=layout",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let digest = out.stdout.split_whitespace().nth(1).unwrap().to_owned();
    check(&project.path().join("rootfs/big"));
    // The store: the uncompressed layer blob is 256 MiB long but sparse,
    // and so is the snapshot the second step extracted.
    let store = project.path().join(".store");
    let snapshots = entries(&store.join("snapshots"));
    assert!(!snapshots.is_empty());
    for snapshot in snapshots {
        let file = store.join("snapshots").join(snapshot).join("big");
        if file.exists() {
            check(&file);
        }
    }
    assert!(
        allocated(&store) <= 2 * small,
        "the store takes {} bytes",
        allocated(&store)
    );
    // The exported layout is gzip (small), and readable by umoci.
    let layout = project.path().join("layout");
    assert!(allocated(&layout) <= small, "{}", allocated(&layout));
    if have("umoci") {
        let bundle = project.path().join("bundle");
        run_tool(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:1", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        let unpacked = bundle.join("rootfs/big");
        assert_eq!(std::fs::metadata(&unpacked).unwrap().len(), SIZE);
    }
    // The same input gives the same image in another store.
    let again = tempfile::tempdir().unwrap();
    std::fs::copy(
        project.path().join("imgbuild.toml"),
        again.path().join("imgbuild.toml"),
    )
    .unwrap();
    std::fs::rename(project.path().join("big"), again.path().join("big")).unwrap();
    let out = apply(again.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.split_whitespace().nth(1).unwrap(), digest);
}

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        Some(SmallFs { dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_store_fails_clearly_stays_consistent_and_recovers() {
    let Some(small) = SmallFs::mount("6m") else {
        return;
    };
    let store = small.dir.path().join("store");
    let project = tempfile::tempdir().unwrap();
    let big = vec![7u8; 12 << 20];
    std::fs::write(project.path().join("big.bin"), &big).unwrap();
    std::fs::write(project.path().join("small.txt"), "small\n").unwrap();
    let manifest = |file: &str| {
        format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [{{ copy = \"small.txt\", to = \"/small.txt\" }}, {{ copy = \"{file}\", to = \"/data\" }}]\n[images.a]\nstage = \"a\"\n"
        )
    };
    let run = |args: &[&str]| {
        let mut all = vec!["--store", store.to_str().unwrap()];
        all.extend_from_slice(args);
        imgbuild_in(project.path(), &all)
    };
    std::fs::write(project.path().join("imgbuild.toml"), manifest("big.bin")).unwrap();
    let out = run(&["apply"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "the store `{}` ran out of space writing the layer of `copy big.bin -> /data`",
            store.display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the layer needs about 12.0 MiB"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("imgbuild prune"), "{}", out.stderr);
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "no temp file is left"
    );

    let verify = run(&["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

    // With the big file replaced, the next build succeeds, reusing the
    // step built before the failure.
    std::fs::write(project.path().join("imgbuild.toml"), manifest("small.txt")).unwrap();
    let out = run(&["apply", "--progress", "plain"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("CACHED"), "{}", out.stderr);
    let verify = run(&["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

/// An output on a full filesystem names what it was writing, how much the
/// images hold and how much is free; the store is left as it was.
#[test]
fn an_output_on_a_full_filesystem_says_so() {
    let Some(small) = SmallFs::mount("2m") else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    let store = project.path().join("store");
    std::fs::write(project.path().join("big.bin"), vec![3u8; 6 << 20]).unwrap();
    std::fs::write(
        project.path().join("imgbuild.toml"),
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"big.bin\", to = \"/big.bin\" }]\n[images.a]\nstage = \"a\"\n",
    )
    .unwrap();
    for (spec, written) in [
        (
            format!("type=oci-layout,dest={}/layout", small.dir.path().display()),
            "layout/blobs/sha256/",
        ),
        (
            format!("type=oci,dest={}/image.tar", small.dir.path().display()),
            "image.tar",
        ),
    ] {
        let out = imgbuild_in(
            project.path(),
            &[
                "--store",
                store.to_str().unwrap(),
                "apply",
                "--compression",
                "none",
                "--output",
                &spec,
            ],
        );
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("no space left writing `"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(written), "{}", out.stderr);
        assert!(
            out.stderr.contains("the images hold about 6.0 MiB"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("write the output elsewhere"),
            "{}",
            out.stderr
        );
        let verify = imgbuild_in(
            project.path(),
            &["--store", store.to_str().unwrap(), "store", "verify"],
        );
        assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    }
}
