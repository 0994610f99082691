//! `imgbuild apply` without `run` steps: real OCI images, checked by tools
//! no one here wrote (skopeo, umoci, oci-image-tool).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::util::{Output, have, imgbuild_in, repo, run_tool};

/// A project directory with a manifest, files, and its own store.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imgbuild.toml"), manifest).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, path: &str, content: &str) -> &Self {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self
    }

    fn apply(&self, args: &[&str]) -> Output {
        self.run("apply", args)
    }

    /// Runs `imgbuild COMMAND ARGS` with the project's store.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let store = self.path().join(".store");
        let mut all = vec!["--store", store.to_str().unwrap(), command];
        all.extend_from_slice(args);
        imgbuild_in(self.path(), &all)
    }

    /// Applies and exports the filesystem of the only image to `rootfs/`.
    fn rootfs(&self, args: &[&str]) -> std::path::PathBuf {
        let mut all = vec!["--output", "type=local,dest=rootfs"];
        all.extend_from_slice(args);
        let out = self.apply(&all);
        assert_eq!(out.code, 0, "{}", out.stderr);
        self.path().join("rootfs")
    }
}

fn digest_of(out: &Output) -> String {
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn hello_example_is_a_valid_oci_image() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let store = dir.path().join("store");
    let out = imgbuild_in(
        &repo(),
        &[
            "--store",
            store.to_str().unwrap(),
            "apply",
            "-f",
            "examples/hello/imgbuild.toml",
            "--output",
            &format!("type=oci-layout,dest={}", layout.display()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("hello sha256:"), "{}", out.stdout);
    let layout = layout.to_str().unwrap();
    if have("skopeo") {
        let inspect: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &["inspect", &format!("oci:{layout}:latest")],
        ))
        .unwrap();
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "hello");
        let config: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &["inspect", "--config", &format!("oci:{layout}:latest")],
        ))
        .unwrap();
        assert_eq!(config["config"]["Cmd"][0], "/hello.txt");
    }
    if have("umoci") {
        let bundle = dir.path().join("bundle");
        run_tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{layout}:latest"),
                bundle.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
            "Hello from imgbuild!\n"
        );
    }
    if have("oci-image-tool") {
        run_tool(
            "oci-image-tool",
            &[
                "validate",
                "--type",
                "image",
                "--ref",
                "name=latest",
                layout,
            ],
        );
    }
}

#[test]
fn same_inputs_give_the_same_digest() {
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"src/\", to = \"/app/\" }]\n[images.a]\nstage = \"a\"\n",
    );
    project
        .file("src/main.txt", "one")
        .file("src/lib/x.txt", "two");
    let first = digest_of(&project.apply(&[]));
    let second = digest_of(&project.apply(&[]));
    assert_eq!(first, second);
    // Another store and SOURCE_DATE_EPOCH: the same bytes, even though files' mtimes differ.
    let other =
        Project::new(&std::fs::read_to_string(project.path().join("imgbuild.toml")).unwrap());
    other
        .file("src/main.txt", "one")
        .file("src/lib/x.txt", "two");
    let with_epoch = |p: &Project| {
        let store = p.path().join(".store");
        let out = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
            .args(["--store", store.to_str().unwrap(), "apply"])
            .current_dir(p.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let filetime_a = std::fs::File::open(project.path().join("src/main.txt")).unwrap();
    filetime_a
        .set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
        )
        .unwrap();
    assert_eq!(with_epoch(&project), with_epoch(&other));
}

#[test]
fn copy_rules_match_docker() {
    let project = Project::new(
        r#"
[stages.users]
from = "scratch"
steps = [
  { file = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", to = "/etc/passwd" },
  { file = "root:x:0:\nstaff:x:50:\napp:x:1001:\n", to = "/etc/group" },
]

[stages.built]
from = "scratch"
steps = [{ file = "artifact", to = "/out/bin/tool", chmod = "0755" }]

[stages.a]
from = "stage:users"
workdir = "/work"
steps = [
  { copy = "dir", to = "/contents/" },
  { copy = "*.txt", to = "/glob/" },
  { copy = "one.txt", to = "/renamed.txt" },
  { copy = "link.txt", to = "/linked/" },
  { copy = "one.txt", to = "relative/" },
  { copy = ["one.txt", "two.txt"], to = "/both/" },
  { copy = "one.txt", to = "/owned/", chown = "app" },
  { copy = "one.txt", to = "/owned-staff/", chown = "app:staff" },
  { copy = "one.txt", to = "/numeric/", chown = "7" },
  { copy = "one.txt", to = "/octal/", chmod = "0600" },
  { copy = "dir", to = "/symbolic/", chmod = "u=rwX,go=" },
  { copy = "/out/bin/tool", from = "built", to = "/usr/local/bin/" },
  { copy = "dir/sub/deep.txt", to = "/parents/", parents = true },
  { copy = "dir", to = "/excluded/", exclude = ["*.md"] },
  { add = "bundle.tar", to = "/unpacked/" },
  { copy = "bundle.tar", to = "/packed/" },
  { file = "inline\n", to = "/etc/motd" },
]

[images.a]
stage = "a"
"#,
    );
    project
        .file("one.txt", "1")
        .file("two.txt", "2")
        .file("dir/a.txt", "a")
        .file("dir/readme.md", "r")
        .file("dir/sub/deep.txt", "d")
        .file("ignored.txt", "secret")
        .file(".dockerignore", "ignored.txt\n");
    let mut tar =
        tar::Builder::new(std::fs::File::create(project.path().join("bundle.tar")).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "inside/file.txt", &b"packed"[..])
        .unwrap();
    tar.finish().unwrap();
    drop(tar);
    std::os::unix::fs::symlink("one.txt", project.path().join("link.txt")).unwrap();

    let root = project.rootfs(&[]);
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let meta =
        |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    // A directory source copies its contents, not itself.
    assert_eq!(read("contents/a.txt"), "a");
    assert_eq!(read("contents/sub/deep.txt"), "d");
    assert!(!root.join("contents/dir").exists());
    // Wildcards, and .dockerignore hides files from them.
    assert_eq!(read("glob/one.txt"), "1");
    assert_eq!(read("glob/two.txt"), "2");
    assert!(!root.join("glob/ignored.txt").exists());
    // A named symlink is followed, and keeps its own name.
    assert_eq!(read("linked/link.txt"), "1");
    assert!(!meta("linked/link.txt").file_type().is_symlink());
    // No trailing slash: the destination is the file's new name.
    assert_eq!(read("renamed.txt"), "1");
    // Relative destinations are relative to the workdir.
    assert_eq!(read("work/relative/one.txt"), "1");
    assert_eq!(read("both/two.txt"), "2");
    // Owners: names from the image's passwd and group, root by default.
    assert_eq!(
        (meta("owned/one.txt").uid(), meta("owned/one.txt").gid()),
        (1000, 1001)
    );
    assert_eq!(
        (
            meta("owned-staff/one.txt").uid(),
            meta("owned-staff/one.txt").gid()
        ),
        (1000, 50)
    );
    assert_eq!(
        (meta("numeric/one.txt").uid(), meta("numeric/one.txt").gid()),
        (7, 7)
    );
    assert_eq!(
        (meta("glob/one.txt").uid(), meta("glob/one.txt").gid()),
        (0, 0)
    );
    // Modes: octal and symbolic (X keeps directories searchable).
    assert_eq!(meta("octal/one.txt").mode() & 0o7777, 0o600);
    assert_eq!(meta("symbolic/a.txt").mode() & 0o7777, 0o600);
    assert_eq!(meta("symbolic/sub").mode() & 0o7777, 0o700);
    // From another stage, keeping its mode.
    assert_eq!(read("usr/local/bin/tool"), "artifact");
    assert_eq!(meta("usr/local/bin/tool").mode() & 0o7777, 0o755);
    // --parents keeps the source's directories.
    assert_eq!(read("parents/dir/sub/deep.txt"), "d");
    // --exclude leaves matches out.
    assert!(root.join("excluded/a.txt").exists());
    assert!(!root.join("excluded/readme.md").exists());
    // add unpacks a local tar; copy does not.
    assert_eq!(read("unpacked/inside/file.txt"), "packed");
    assert!(root.join("packed/bundle.tar").is_file());
    assert_eq!(read("etc/motd"), "inline\n");
    assert!(root.join("work").is_dir());
}

/// Files whose names differ only in bytes that are not UTF-8 stay two files
/// with their own names and contents, as in `BuildKit` (checked with docker
/// 20.10's `BuildKit`: `COPY . /c/`, `COPY f-* /g/`, `COPY f-?.txt /q/` and
/// `COPY dir /d/` give exactly this tree): through the walk of the context,
/// wildcards, directory copies, the layer tar and both exports.
#[test]
fn names_that_are_not_utf8_are_kept_byte_for_byte() {
    let project = Project::new(
        r#"
[stages.a]
from = "scratch"
steps = [
  { copy = ".", to = "/c/" },
  { copy = "f-*", to = "/g/" },
  { copy = "f-?.txt", to = "/q/" },
  { copy = "dir", to = "/d/" },
]
[images.a]
stage = "a"
tags = ["localhost/bytes:1"]
"#,
    );
    let at = |name: &[u8]| project.path().join(OsStr::from_bytes(name));
    std::fs::write(at(b"f-\xff.txt"), "ff").unwrap();
    std::fs::write(at(b"f-\xfe.txt"), "fe").unwrap();
    std::fs::create_dir(at(b"dir")).unwrap();
    std::fs::write(at(b"dir/d-\xff"), "in").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"d-\xff"), at(b"dir/link")).unwrap();
    std::fs::write(
        at(b".dockerignore"),
        ".dockerignore\nimgbuild.toml\n.store\nrootfs\nlayout\n",
    )
    .unwrap();
    let out = project.apply(&[
        "--output",
        "type=local,dest=rootfs",
        "--output",
        "type=oci-layout,dest=layout",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let check = |root: &Path| {
        let names = |dir: &str| -> Vec<Vec<u8>> {
            let mut names: Vec<Vec<u8>> = std::fs::read_dir(root.join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|e| e.unwrap().file_name().as_bytes().to_vec())
                .collect();
            names.sort();
            names
        };
        let read = |path: &[u8]| {
            std::fs::read_to_string(root.join(OsStr::from_bytes(path)))
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(path)))
        };
        let both = [b"f-\xfe.txt".to_vec(), b"f-\xff.txt".to_vec()];
        assert_eq!(names("c"), [&b"dir"[..], b"f-\xfe.txt", b"f-\xff.txt"]);
        assert_eq!(names("g"), both);
        assert_eq!(names("q"), both);
        for dir in [&b"c"[..], b"g", b"q"] {
            assert_eq!(read(&[dir, b"/f-\xff.txt"].concat()), "ff");
            assert_eq!(read(&[dir, b"/f-\xfe.txt"].concat()), "fe");
        }
        for dir in [&b"c/dir"[..], b"d"] {
            assert_eq!(read(&[dir, b"/d-\xff"].concat()), "in");
            let link = std::fs::read_link(root.join(OsStr::from_bytes(&[dir, b"/link"].concat())));
            assert_eq!(link.unwrap().as_os_str().as_bytes(), b"d-\xff");
        }
    };
    check(&project.path().join("rootfs"));
    // `inspect` tells the two apart too, writing the invalid bytes as `\xNN`.
    let inspected = project.run("inspect", &["--files", "oci-layout:layout:1"]);
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    for name in ["/g/f-\\xff.txt", "/g/f-\\xfe.txt", "/d/d-\\xff"] {
        assert!(
            inspected.stdout.contains(name),
            "{name}: {}",
            inspected.stdout
        );
    }
    if have("umoci") {
        let bundle = project.path().join("bundle");
        let layout = project.path().join("layout");
        run_tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:1", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        check(&bundle.join("rootfs"));
    }
}

#[test]
fn copy_errors_are_clear() {
    let cases = [
        (
            r#"{ copy = "missing.txt", to = "/x" }"#,
            "`missing.txt` not found in the build context",
        ),
        (
            r#"{ copy = "ignored.txt", to = "/x" }"#,
            "`ignored.txt` not found in the build context",
        ),
        (
            r#"{ copy = ["a.txt", "."], to = "/x" }"#,
            "cannot copy to non-directory: `/x` is a file",
        ),
        (
            r#"{ copy = "a.txt", to = "/x", chown = ":nobody" }"#,
            "cannot resolve owner `:nobody`",
        ),
    ];
    for (step, message) in cases {
        let project = Project::new(&format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [{step}]\n[images.a]\nstage = \"a\"\n"
        ));
        project
            .file("a.txt", "a")
            .file("ignored.txt", "i")
            .file(".dockerignore", "ignored.txt");
        let out = project.apply(&[]);
        assert_eq!(out.code, 1, "{step}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{step}: expected {message:?} in\n{}",
            out.stderr
        );
    }
}

#[test]
fn outputs_of_every_type() {
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ file = \"x\", to = \"/x\" }]\ncmd = [\"/x\"]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/out:1\"]\n",
    );
    let out = project.apply(&[
        "--output",
        "type=oci,dest=image.oci.tar",
        "--output",
        "type=docker,dest=image.docker.tar",
        "--output",
        "type=oci-layout,dest=layout",
        "--output",
        "type=local,dest=fs",
        "--compression",
        "zstd",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(project.path().join("fs/x")).unwrap(),
        "x"
    );
    let p = |name: &str| project.path().join(name).to_str().unwrap().to_owned();
    if have("skopeo") {
        run_tool(
            "skopeo",
            &["inspect", &format!("oci-archive:{}:1", p("image.oci.tar"))],
        );
        // Naming the tag proves manifest.json carries it, as `docker load` needs.
        let docker: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &[
                "inspect",
                &format!("docker-archive:{}:localhost/out:1", p("image.docker.tar")),
            ],
        ))
        .unwrap();
        assert_eq!(docker["Layers"].as_array().unwrap().len(), 1);
        let raw: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:1", p("layout"))],
        ))
        .unwrap();
        assert_eq!(
            raw["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
}

#[test]
fn local_base_images_of_every_kind() {
    let base = Project::new(
        "[stages.base]\nfrom = \"scratch\"\nsteps = [{ file = \"base\", to = \"/base.txt\" }]\nenv = { FROM_BASE = \"yes\" }\n[images.base]\nstage = \"base\"\ntags = [\"localhost/base:1\"]\n",
    );
    let out = base.apply(&[
        "--output",
        "type=oci-layout,dest=layout",
        "--output",
        "type=oci,dest=base.oci.tar",
        "--output",
        "type=docker,dest=base.docker.tar",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for from in [
        "oci-layout:{}/layout:1",
        "oci-archive:{}/base.oci.tar:1",
        "docker-archive:{}/base.docker.tar",
    ] {
        let from = from.replace("{}", base.path().to_str().unwrap());
        let project = Project::new(&format!(
            "[stages.a]\nfrom = \"{from}\"\nsteps = [{{ file = \"top\", to = \"/top.txt\" }}]\n[images.a]\nstage = \"a\"\n"
        ));
        let root = project.rootfs(&["--output", "type=oci-layout,dest=out"]);
        assert_eq!(
            std::fs::read_to_string(root.join("base.txt")).unwrap(),
            "base",
            "{from}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("top.txt")).unwrap(),
            "top",
            "{from}"
        );
        if have("skopeo") {
            let config: serde_json::Value = serde_json::from_str(&run_tool(
                "skopeo",
                &[
                    "inspect",
                    "--config",
                    &format!("oci:{}", project.path().join("out").display()),
                ],
            ))
            .unwrap();
            let env = config["config"]["Env"].as_array().unwrap();
            assert!(env.iter().any(|e| e == "FROM_BASE=yes"), "{from}: {env:?}");
            assert_eq!(
                config["rootfs"]["diff_ids"].as_array().unwrap().len(),
                2,
                "{from}"
            );
        }
    }
}

/// Writes an OCI layout whose one layer is `layer` (an uncompressed tar).
fn layout_with_layer(dir: &Path, layer: &[u8]) {
    let diff_id = crate::util::sha256_digest(layer);
    crate::util::layout_with_blob(
        dir,
        layer,
        "application/vnd.oci.image.layer.v1.tar",
        &diff_id,
    );
}

/// A raw tar entry, written without the tar crate's path checks.
fn raw_entry(tar: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

#[test]
fn malicious_base_layers_are_refused() {
    type Entries<'a> = Vec<(&'a str, tar::EntryType, &'a str)>;
    let cases: [(&str, Entries); 2] = [
        (
            "dot-dot",
            vec![("../escaped.txt", tar::EntryType::Regular, "")],
        ),
        (
            "symlink",
            vec![
                ("evil", tar::EntryType::Symlink, "../../../.."),
                ("evil/escaped.txt", tar::EntryType::Regular, ""),
            ],
        ),
    ];
    for (name, entries) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = Vec::new();
        for (path, kind, link) in &entries {
            raw_entry(
                &mut tar,
                path,
                *kind,
                link,
                if *kind == tar::EntryType::Regular {
                    b"pwned"
                } else {
                    b""
                },
            );
        }
        tar.extend_from_slice(&[0; 1024]);
        layout_with_layer(&dir.path().join("evil"), &tar);
        let project = Project::new(&format!(
            "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [{{ file = \"x\", to = \"/x\" }}]\n[images.a]\nstage = \"a\"\n",
            dir.path().join("evil").display()
        ));
        let out = project.apply(&[]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("escaped.txt"),
            "{name}: the error names the entry:\n{}",
            out.stderr
        );
        let leaked: Vec<_> = walk_names(dir.path())
            .into_iter()
            .chain(walk_names(project.path()))
            .filter(|p| p.ends_with("escaped.txt"))
            .collect();
        assert!(leaked.is_empty(), "{name}: wrote {leaked:?}");
        assert!(!Path::new("/escaped.txt").exists());
    }
}

fn walk_names(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .collect()
}

#[test]
fn killed_build_leaves_a_store_that_works() {
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"big\", to = \"/big\" }]\n[images.a]\nstage = \"a\"\n",
    );
    // Incompressible data so the write takes a while.
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(project.path().join("big"), &data).unwrap();
    let store = project.path().join(".store");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args([
            "--store",
            store.to_str().unwrap(),
            "apply",
            "--compression-level",
            "9",
        ])
        .current_dir(project.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while it writes the layer blob.
    let tmp = store.join("tmp");
    let started = std::time::Instant::now();
    let writing = || {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".blob")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
    };
    while !writing() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the build never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(writing(), "the killed build left its partial blob behind");
    let out = project.apply(&[]);
    assert_eq!(out.code, 0, "the next build succeeds: {}", out.stderr);
    let verify = imgbuild_in(
        project.path(),
        &["--store", store.to_str().unwrap(), "store", "verify"],
    );
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .contains(" 0 corrupt, 0 leftovers, 0 strays, 0 dangling tags"),
        "{}",
        verify.stdout
    );
}

#[test]
fn two_platforms_make_an_index() {
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ file = \"${TARGETARCH}\", to = \"/arch\" }]\n[images.a]\nstage = \"a\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\ntags = [\"localhost/multi:1\"]\n",
    );
    let out = project.apply(&[
        "--output",
        "type=oci-layout,dest=layout",
        "--output",
        "type=local,dest=fs",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(project.path().join("fs/linux_arm64/arch")).unwrap(),
        "${TARGETARCH}"
    );
    // A docker archive holds one platform: refused before anything builds.
    let refused = project.apply(&["--no-cache", "--output", "type=docker,dest=img.tar"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("has 2 platforms, and a docker archive"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("start"), "{}", refused.stderr);
    let layout = project.path().join("layout");
    if have("skopeo") {
        let raw: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:1", layout.display())],
        ))
        .unwrap();
        assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
        let platforms: Vec<&str> = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"]);
    }
    if have("oci-image-tool") {
        run_tool(
            "oci-image-tool",
            &[
                "validate",
                "--type",
                "image",
                "--ref",
                "name=1",
                layout.to_str().unwrap(),
            ],
        );
    }
}

/// Serves `body` at `/file.txt` on 127.0.0.1 for `requests` requests; other paths get 404.
fn serve(body: &'static [u8], requests: usize) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let found = request_line.starts_with("GET /file.txt ");
            let (status, body) = if found {
                ("200 OK", body)
            } else {
                ("404 Not Found", &b"missing"[..])
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    port
}

#[test]
fn add_fetches_urls_and_checks_checksums() {
    let body: &[u8] = b"downloaded\n";
    let sum = "sha256:0c5e0b6f7d5d6a1f29c9f1f3a4d4c5ee4d3a2b1c0f9e8d7c6b5a4f3e2d1c0b9a";
    let real = imgbuild::store::Digest::of(body).to_string();
    let port = serve(body, 4);
    let url = format!("http://127.0.0.1:{port}/file.txt");
    let manifest = |checksum: &str, url: &str| {
        format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [{{ add = \"{url}\", to = \"/dl/\"{checksum} }}]\n[images.a]\nstage = \"a\"\n"
        )
    };
    let ok = Project::new(&manifest(&format!(", checksum = \"{real}\""), &url));
    let root = ok.rootfs(&[]);
    assert_eq!(std::fs::read(root.join("dl/file.txt")).unwrap(), body);
    assert_eq!(
        std::fs::metadata(root.join("dl/file.txt")).unwrap().mode() & 0o777,
        0o600
    );

    let wrong = Project::new(&manifest(&format!(", checksum = \"{sum}\""), &url)).apply(&[]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains(&format!("has checksum {real}, but the step expects {sum}")),
        "{}",
        wrong.stderr
    );

    let missing =
        Project::new(&manifest("", &format!("http://127.0.0.1:{port}/nope.txt"))).apply(&[]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("cannot fetch `http://127.0.0.1:"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

/// A two-stage project without `run` steps, for the progress tests.
fn progress_project() -> Project {
    let project = Project::new(
        r#"
[stages.base]
from = "scratch"
steps = [
  { file = "one\n", to = "/one.txt" },
  { copy = "two.txt", to = "/two.txt" },
]

[stages.app]
from = "stage:base"
steps = [{ file = "three\n", to = "/three.txt" }]

[images.app]
stage = "app"
tags = ["localhost/progress:1"]
"#,
    );
    project.file("two.txt", "two\n");
    project
}

/// Every stderr line of `out` as JSON.
fn json_events(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn progress_json_reports_steps_and_the_cache() {
    let project = progress_project();
    let host = imgbuild::ir::Platform::host();
    let first = project.apply(&["--progress=json"]);
    let events = json_events(&first);
    let done: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step_done")
        .collect();
    let steps: Vec<(String, u64, bool)> = done
        .iter()
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_owned(),
                e["step"].as_u64().unwrap(),
                e["cached"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (format!("base@{host}"), 1, false),
            (format!("base@{host}"), 2, false),
            (format!("app@{host}"), 1, false),
        ],
        "{}",
        first.stderr
    );
    assert_eq!(done[0]["summary"], "file /one.txt (4 bytes)");
    assert!(done.iter().all(|e| e["elapsed_ms"].is_u64()));
    // Every step that ran says where its time went: each phase, and
    // together no more than the step's own time (values are never asserted).
    for event in &done {
        let timings = event["timings_ms"].as_object().expect("timings_ms");
        let phases = ["rootfs", "run", "diff", "layer", "commit", "other"];
        let names: Vec<&str> = timings.keys().map(String::as_str).collect();
        assert_eq!(names.len(), phases.len(), "{event}");
        let sum: u64 = phases
            .iter()
            .map(|p| timings[*p].as_u64().expect("whole milliseconds"))
            .sum();
        assert!(sum <= event["elapsed_ms"].as_u64().unwrap(), "{event}");
    }
    let started = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .count();
    assert_eq!(started, 3, "every step ran: {}", first.stderr);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "the summary comes last");
    assert_eq!(summary["success"], true);
    assert_eq!(summary["built"], 3);
    assert_eq!(summary["cached"], 0);
    let digest = digest_of(&first);
    assert_eq!(summary["images"][0]["name"], "app");
    assert_eq!(summary["images"][0]["digest"], digest.as_str());
    assert_eq!(summary["images"][0]["tags"][0], "localhost/progress:1");
    assert_eq!(
        first.stdout,
        format!("app {digest} localhost/progress:1\n"),
        "stdout stays the result"
    );

    let second = project.apply(&["--progress=json"]);
    let events = json_events(&second);
    let done: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step_done")
        .collect();
    assert_eq!(done.len(), 3, "{}", second.stderr);
    for event in &done {
        assert_eq!(event["cached"], true, "{event}");
        assert_eq!(event["elapsed_ms"], 0, "{event}");
        assert!(event.get("timings_ms").is_none(), "{event}");
    }
    assert!(!events.iter().any(|e| e["event"] == "step_started"));
    let summary = events.last().unwrap();
    assert_eq!(
        (&summary["built"], &summary["cached"]),
        (&0.into(), &3.into())
    );
    assert_eq!(second.stdout, first.stdout);
}

/// Plain progress without what changes from run to run: times, the
/// host's platform and digests.
fn mask_progress(text: &str, host: &str) -> String {
    let seconds = regex::Regex::new(r"\b\d+\.\d+s\b").unwrap();
    let digest = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
    let text = text.replace(host, "[host]");
    let text = seconds.replace_all(&text, "[t]");
    digest.replace_all(&text, "sha256:[digest]").into_owned()
}

#[test]
fn progress_plain_numbers_steps_and_marks_cached_ones() {
    let project = progress_project();
    let host = imgbuild::ir::Platform::host();
    let first = project.apply(&["--progress", "plain"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let header = format!("#1 [base@{host} 1/2] file /one.txt (4 bytes)\n#1 DONE ");
    assert!(first.stderr.starts_with(&header), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains(&format!("[app@{host} 1/1] file /three.txt (6 bytes)\n")),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("\n3 steps built, 0 cached in "),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains(&format!(
            "  app  {}  localhost/progress:1\n",
            digest_of(&first)
        )),
        "{}",
        first.stderr
    );
    insta::assert_snapshot!(mask_progress(&first.stderr, &host.to_string()));
    let second = project.apply(&["--progress", "plain"]);
    let header = format!("#1 [base@{host} 1/2] file /one.txt (4 bytes)\n#1 CACHED\n");
    assert!(second.stderr.starts_with(&header), "{}", second.stderr);
    assert_eq!(
        second.stderr.matches(" CACHED\n").count(),
        3,
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("\n0 steps built, 3 cached in "),
        "{}",
        second.stderr
    );
    // Not on a terminal, `auto` is `plain`.
    let auto = project.apply(&[]);
    assert!(auto.stderr.starts_with(&header), "{}", auto.stderr);
}

#[test]
fn progress_quiet_and_tty_without_a_terminal_falls_back_to_plain() {
    let project = progress_project();
    let store = project.path().join(".store");
    let quiet = imgbuild_in(
        project.path(),
        &[
            "-q",
            "--store",
            store.to_str().unwrap(),
            "apply",
            "--progress=json",
        ],
    );
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "", "-q silences every progress mode");
    assert!(quiet.stdout.starts_with("app sha256:"), "{}", quiet.stdout);
    let none = project.apply(&["--progress=quiet"]);
    assert_eq!((none.code, none.stderr.as_str()), (0, ""));
    // A CI log is not a terminal: `tty` says so and shows `plain`, as
    // `docker build` does, instead of failing the build.
    let tty = project.apply(&["--progress=tty"]);
    assert_eq!(tty.code, 0, "{}", tty.stderr);
    let (note, rest) = tty.stderr.split_once('\n').unwrap();
    assert_eq!(note, imgbuild::progress::TTY_FALLBACK_NOTE);
    assert!(rest.starts_with("#1 ["), "plain progress follows: {rest}");
    assert!(!rest.contains('\x1b'), "no cursor movement: {rest}");
    assert!(tty.stdout.starts_with("app sha256:"), "{}", tty.stdout);
}

/// The config of the only image of the OCI layout `dir`.
fn layout_config(dir: &Path) -> serde_json::Value {
    let blob = |digest: &serde_json::Value| -> serde_json::Value {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = blob(&index["manifests"][0]["digest"]);
    blob(&manifest["config"]["digest"])
}

#[test]
fn scratch_images_get_buildkits_path_and_workdir() {
    // What `docker build` (BuildKit) writes for `FROM scratch` + `COPY f /f`:
    // {"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"}
    let path =
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"f\", to = \"/f\" }]\n[images.a]\nstage = \"a\"\n",
    );
    project
        .file("f", "x")
        .file("Dockerfile", "FROM scratch\nCOPY f /f\n");
    for file in ["imgbuild.toml", "Dockerfile"] {
        let out = project.apply(&["-f", file, "--output", "type=oci-layout,dest=out"]);
        assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        let config = layout_config(&project.path().join("out"));
        assert_eq!(config["config"]["Env"], path, "{file}: {config}");
        assert_eq!(config["config"]["WorkingDir"], "/", "{file}: {config}");
        std::fs::remove_dir_all(project.path().join("out")).unwrap();
    }
    // A manifest overrides them like any base's.
    let own = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nenv = { PATH = \"/bin\", A = \"1\" }\nworkdir = \"/srv\"\n[images.a]\nstage = \"a\"\n",
    );
    let out = own.apply(&["--output", "type=oci-layout,dest=out"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = layout_config(&own.path().join("out"));
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["PATH=/bin", "A=1"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/srv");
}
