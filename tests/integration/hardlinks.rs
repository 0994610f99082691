//! Hard links in the layers of manifest builds, as `BuildKit` keeps them:
//! names of one inode under one copied path are one file and hard links to
//! it (the first name in byte order is the file), names given as separate
//! sources are separate files, and a RUN step's links stay links. The
//! Dockerfile side is in the differential cases `*hardlink*`.

use std::path::Path;
use std::process::Command;

use crate::util::{can_run, imgbuild_in};

/// Builds the manifest `manifest` in `project` into the OCI layout
/// `project/out`, with a store of its own.
fn build(project: &Path, manifest: &str) {
    std::fs::write(project.join("imgbuild.toml"), manifest).unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = imgbuild_in(
        project,
        &[
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "--output",
            "type=oci-layout,dest=out",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The layer digests of the only image of the layout `layout`.
fn layer_digests(layout: &Path) -> Vec<String> {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The entries of layer `digest` of `layout`, in stream order:
/// `path file SIZE`, `path link TARGET`, `path/ dir` or `path other`.
fn layer_entries(layout: &Path, digest: &str) -> Vec<String> {
    let file = std::fs::File::open(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let header = e.header();
            match header.entry_type() {
                tar::EntryType::Regular => format!("{path} file {}", header.size().unwrap()),
                tar::EntryType::Link => format!(
                    "{path} link {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ),
                tar::EntryType::Directory => format!("{path} dir"),
                _ => format!("{path} other"),
            }
        })
        .collect()
}

/// Runs `script` with `sh -eu` in `dir`.
fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .args(["-euc", script])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

const COPY_MANIFEST: &str = r#"[stages.a]
from = "scratch"
steps = [
  { copy = "ctx", to = "/c/" },
  { copy = ["ctx/a", "ctx/b"], to = "/e/" },
  { copy = "ctx/d", to = "/d/" },
]
[images.a]
stage = "a"
"#;

#[test]
fn manifest_copies_keep_hard_links_within_one_source() {
    let project = tempfile::tempdir().unwrap();
    sh(
        project.path(),
        "mkdir -p ctx/d && printf aaa > ctx/a && ln ctx/a ctx/b && ln ctx/a ctx/d/c && ln ctx/a ctx/d/x",
    );
    build(project.path(), COPY_MANIFEST);
    let layout = project.path().join("out");
    let layers = layer_digests(&layout);
    assert_eq!(layers.len(), 3);
    assert_eq!(
        layer_entries(&layout, &layers[0]),
        [
            "c/ dir",
            "c/a file 3",
            "c/b link c/a",
            "c/d/ dir",
            "c/d/c link c/a",
            "c/d/x link c/a",
        ]
    );
    // Two sources: two copies, never linked to each other.
    assert_eq!(
        layer_entries(&layout, &layers[1]),
        ["e/ dir", "e/a file 3", "e/b file 3"]
    );
    // One source reaching two names of the inode: linked, the first name
    // in byte order being the file.
    assert_eq!(
        layer_entries(&layout, &layers[2]),
        ["d/ dir", "d/c file 3", "d/x link d/c"]
    );
}

#[test]
fn which_name_is_the_file_does_not_depend_on_the_directory_order() {
    // The same tree, made in two orders: directories list their names in
    // different orders, and which name was made first differs too.
    let scripts = [
        "mkdir -p ctx/d && printf aaa > ctx/a && ln ctx/a ctx/b && ln ctx/a ctx/d/c && ln ctx/a ctx/d/x",
        "mkdir -p ctx/d && printf aaa > ctx/d/x && ln ctx/d/x ctx/d/c && ln ctx/d/x ctx/b && ln ctx/d/x ctx/a",
    ];
    let mut digests = Vec::new();
    for script in scripts {
        let project = tempfile::tempdir().unwrap();
        sh(project.path(), script);
        for n in 0..20 {
            sh(
                project.path(),
                &format!("printf {n} > ctx/f{}", (n * 7) % 20),
            );
        }
        sh(
            project.path(),
            "find ctx -exec touch -h -d @1000000000 {} +",
        );
        build(project.path(), COPY_MANIFEST);
        digests.push(layer_digests(&project.path().join("out")));
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn run_layers_keep_the_links_a_step_makes() {
    if !can_run() {
        return;
    }
    let project = tempfile::tempdir().unwrap();
    build(
        project.path(),
        &format!(
            r#"[stages.a]
from = "oci-layout:{}"
steps = [
  {{ run = "mkdir /d && echo x > /d/f" }},
  {{ run = "echo n > /d/n && ln /d/n /d/m && ln /d/f /d/h && ln /d/f /e" }},
]
[images.a]
stage = "a"
"#,
            crate::run::busybox().display()
        ),
    );
    let layout = project.path().join("out");
    let layers = layer_digests(&layout);
    let last = layer_entries(&layout, layers.last().unwrap());
    // New names linked to a new file; a link to a file of the layer below
    // brings that file into the layer (overlayfs copies it up), as
    // `BuildKit`'s differ writes it: the file, then links to it.
    for want in [
        "d/f file 2",
        "d/h link d/f",
        "d/m file 2",
        "d/n link d/m",
        "e link d/f",
    ] {
        assert!(last.iter().any(|e| e == want), "no `{want}` in {last:?}");
    }
    let position = |name: &str| last.iter().position(|e| e.starts_with(name)).unwrap();
    assert!(position("d/f ") < position("d/h "));
    assert!(position("d/f ") < position("e "));
}

#[test]
fn copies_from_an_image_keep_its_hard_links() {
    // Images are read through an overlay view of their layers.
    if !can_run() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    sh(
        base.path(),
        "mkdir -p ctx/d && printf aaa > ctx/a && ln ctx/a ctx/b && ln ctx/a ctx/d/c",
    );
    build(base.path(), COPY_MANIFEST);
    let project = tempfile::tempdir().unwrap();
    build(
        project.path(),
        &format!(
            r#"[stages.a]
from = "scratch"
steps = [
  {{ copy = "/c/", from = "oci-layout:{}", to = "/x/" }},
  {{ copy = ["/c/a", "/c/b"], from = "oci-layout:{0}", to = "/y/" }},
]
[images.a]
stage = "a"
"#,
            base.path().join("out").display()
        ),
    );
    let layout = project.path().join("out");
    let layers = layer_digests(&layout);
    assert_eq!(
        layer_entries(&layout, &layers[0]),
        [
            "x/ dir",
            "x/a file 3",
            "x/b link x/a",
            "x/d/ dir",
            "x/d/c link x/a"
        ]
    );
    assert_eq!(
        layer_entries(&layout, &layers[1]),
        ["y/ dir", "y/a file 3", "y/b file 3"]
    );
}
