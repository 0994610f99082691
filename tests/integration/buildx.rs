//! The flags `docker buildx build` users type, on a Dockerfile build:
//! `-t`, `--iidfile`, `--metadata-file`, and `-o`'s shorthands.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::dockerfile::dockerfile_dir;
use crate::test_registry::TestRegistry;
use crate::util::{Output, have, imgbuild_in, run_tool};

/// A Dockerfile on the busybox base that adds `/hello.txt`, with its own store.
fn project() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = dockerfile_dir(&format!(
        "FROM oci-layout:{}\nCOPY hello.txt /hello.txt\n",
        crate::run::busybox().display()
    ));
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    (dir, tempfile::tempdir().unwrap())
}

fn apply(dir: &Path, store: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "--store",
        store.to_str().unwrap(),
        "apply",
        "-f",
        "Dockerfile",
    ];
    all.extend_from_slice(args);
    imgbuild_in(dir, &all)
}

fn ok(out: Output) -> Output {
    assert_eq!(out.code, 0, "{}", out.stderr);
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `-t localhost/x:1 -o type=oci-layout,dest=L` names the entry as
/// `BuildKit`'s oci exporter does, so `umoci unpack --image L:1` finds it;
/// `--iidfile` holds the config digest and `--metadata-file` buildx's keys.
#[test]
fn tag_names_the_layout_entry_and_the_files_describe_the_image() {
    let (dir, store) = project();
    let out = ok(apply(
        dir.path(),
        store.path(),
        &[
            "-t",
            "localhost/x:1",
            "--tag",
            "localhost/x",
            "-o",
            "type=oci-layout,dest=L",
            "--iidfile",
            "iid",
            "--metadata-file",
            "md.json",
        ],
    ));
    assert!(
        out.stdout
            .trim_end()
            .ends_with(" localhost/x:1 localhost/x:latest"),
        "{}",
        out.stdout
    );
    let index = read_json(&dir.path().join("L/index.json"));
    let entries = index["manifests"].as_array().unwrap();
    let names: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            let a = &e["annotations"];
            (
                a["org.opencontainers.image.ref.name"].as_str().unwrap(),
                a["io.containerd.image.name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("1", "localhost/x:1"), ("latest", "localhost/x:latest")]
    );
    let manifest_digest = entries[0]["digest"].as_str().unwrap();
    let manifest = read_json(
        &dir.path()
            .join("L/blobs/sha256")
            .join(manifest_digest.trim_start_matches("sha256:")),
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();

    assert_eq!(
        std::fs::read_to_string(dir.path().join("iid")).unwrap(),
        config_digest
    );
    let md = read_json(&dir.path().join("md.json"));
    let keys: Vec<&str> = md.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "containerimage.config.digest",
            "containerimage.descriptor",
            "containerimage.digest",
            "image.name"
        ]
    );
    assert_eq!(md["containerimage.digest"], manifest_digest);
    assert_eq!(md["containerimage.config.digest"], config_digest);
    assert_eq!(md["containerimage.descriptor"]["digest"], manifest_digest);
    assert_eq!(md["containerimage.descriptor"]["size"], entries[0]["size"]);
    assert_eq!(md["image.name"], "localhost/x:1,localhost/x:latest");

    // The store has both tags.
    let images = ok(imgbuild_in(
        dir.path(),
        &["--store", store.path().to_str().unwrap(), "images"],
    ));
    for tag in ["1", "latest"] {
        assert!(
            images
                .stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["localhost/x", tag])),
            "{}",
            images.stdout
        );
    }

    if have("umoci") {
        let bundle = dir.path().join("bundle");
        run_tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:1", dir.path().join("L").display()),
                bundle.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
            "hello\n"
        );
        assert!(bundle.join("rootfs/bin/busybox").exists());
    }
}

/// `-o -` is `type=tar,dest=-`: the filesystem on stdout, the image line
/// on stderr; `-o DIR` is `type=local,dest=DIR`.
#[test]
fn dash_writes_the_filesystem_tar_to_stdout_and_a_bare_dir_is_local() {
    let (dir, store) = project();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(["--store", store.path().to_str().unwrap()])
        .args([
            "apply",
            "-f",
            "Dockerfile",
            "-o",
            "-",
            "--progress",
            "plain",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path == "bin/sh" {
            assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
        }
        names.push(path);
    }
    for name in ["hello.txt", "bin/busybox", "bin/sh"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(stderr.contains(" sha256:"), "the image line: {stderr}");

    ok(apply(dir.path(), store.path(), &["-o", "rootfs"]));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rootfs/hello.txt")).unwrap(),
        "hello\n"
    );
}

/// Bad values of the new flags are usage errors (exit 2) that name the
/// flag and say what to write instead; nothing is built.
#[test]
fn bad_tags_and_outputs_are_usage_errors() {
    let (dir, store) = project();
    let mut shown = String::new();
    for args in [
        &["-t", "localhost/Upper:1"][..],
        &["-t", "localhost/x@sha256:0000"],
        &["-o", "type=local,dest=-"],
        &["--load=nerdctl"],
        &["-o", "-", "-o", "type=oci,dest=-"],
        &["-o", "rootfs", "--iidfile", "iid"],
    ] {
        let out = apply(dir.path(), store.path(), args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        let _ = writeln!(
            shown,
            "$ apply {}\n{}",
            args.join(" "),
            out.stderr.trim_end()
        );
    }
    let manifest =
        crate::util::manifest_dir("[stages.a]\nfrom = \"scratch\"\n[images.a]\nstage = \"a\"\n");
    let out = imgbuild_in(manifest.path(), &["plan", "-t", "localhost/a:1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let _ = writeln!(
        shown,
        "$ plan -t localhost/a:1 (a manifest)\n{}",
        out.stderr.trim_end()
    );
    insta::assert_snapshot!(shown);
}

/// After `--push`, the metadata file holds the digest the registry has.
#[test]
fn metadata_after_push_names_the_pushed_digest() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let (dir, store) = project();
    let tag = format!("{host}/team/x:1");
    let out = ok(apply(
        dir.path(),
        store.path(),
        &[
            "-t",
            &tag,
            "--push",
            "--insecure-registry",
            &host,
            "--metadata-file",
            "md.json",
            "--iidfile",
            "iid",
        ],
    ));
    let prefix = format!("pushed {host}/team/x@");
    let pushed = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{prefix}` in:\n{}", out.stderr));
    let md = read_json(&dir.path().join("md.json"));
    assert_eq!(md["containerimage.digest"], pushed);
    assert_eq!(md["image.name"], tag);
    assert_eq!(
        md["containerimage.config.digest"].as_str().unwrap(),
        std::fs::read_to_string(dir.path().join("iid")).unwrap()
    );
}

/// `--load` (and `-o type=docker` without `dest`) loads the image into the
/// docker daemon, where `docker image inspect` finds it by its tag.
#[test]
fn load_puts_the_image_in_the_docker_daemon() {
    let daemon = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !daemon {
        eprintln!("skipped: no docker daemon answers `docker info`");
        return;
    }
    let (dir, store) = project();
    let name = format!("localhost/imgbuild-load-test:{}", std::process::id());
    for args in [&["--load"][..], &["-o", "type=docker"]] {
        let mut all = vec!["-t", name.as_str()];
        all.extend_from_slice(args);
        ok(apply(dir.path(), store.path(), &all));
        let inspect = run_tool(
            "docker",
            &["image", "inspect", "--format", "{{json .RepoTags}}", &name],
        );
        assert!(inspect.contains(&name), "{args:?}: {inspect}");
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", &name])
            .output();
    }
}

/// docker's spellings: a bare `--pull` (and `--pull=true|false`), and
/// `--platform local` for this machine's platform.
#[test]
fn bare_pull_and_local_platform_are_accepted() {
    let (dir, store) = project();
    for args in [
        &["--pull"][..],
        &["--pull=true"],
        &["--pull=false", "--platform", "local"],
    ] {
        let mut all = vec![
            "--store",
            store.path().to_str().unwrap(),
            "plan",
            "-f",
            "Dockerfile",
        ];
        all.extend_from_slice(args);
        let out = imgbuild_in(dir.path(), &all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
}
