//! `imgbuild convert`: a Dockerfile written as a manifest plans and builds
//! exactly what the Dockerfile does.

use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use crate::util::{arm64_busybox, can_run, imgbuild_in, repo};

/// A temporary directory holding `Dockerfile` with `text`.
fn dockerfile_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), text).expect("write Dockerfile");
    dir
}

/// `plan --json` of `file` in `dir`, without the `source` field (the file name).
fn plan_without_source(dir: &Path, file: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json", "-f", file];
    all.extend_from_slice(args);
    let out = imgbuild_in(dir, &all);
    assert_eq!(out.code, 0, "plan -f {file} {args:?}:\n{}", out.stderr);
    let mut plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    plan.as_object_mut().unwrap().remove("source");
    plan
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG GO_VERSION=1.23
FROM docker.io/library/golang:${GO_VERSION} AS build
ARG TARGETARCH
WORKDIR /src
# Modules are cached.
RUN --mount=type=cache,target=/go/pkg/mod,id=gomod,sharing=locked \
    --mount=type=secret,id=netrc,dst=/root/.netrc,required \
    go mod download
RUN <<EOF
set -eu
GOARCH=$TARGETARCH go build -o /out/app .
EOF

FROM scratch
COPY --from=build /out/app /app
ENV APP_MODE="release build"
EXPOSE 8080
ENTRYPOINT ["/app"]
"#;

#[test]
fn converted_manifest_plans_like_the_dockerfile() {
    let dir = dockerfile_dir(MULTI_STAGE);
    let out = imgbuild_in(dir.path(), &["convert"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("[stages.build]"), "{}", out.stdout);
    assert!(
        out.stdout.contains("# Modules are cached.\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("GO_VERSION = \"1.23\""),
        "ARGs stay arguments with their defaults: {}",
        out.stdout
    );
    std::fs::write(dir.path().join("imgbuild.toml"), &out.stdout).unwrap();
    for args in [
        &[][..],
        &["--build-arg", "GO_VERSION=1.24"],
        &["--target", "build", "--platform", "linux/amd64,linux/arm64"],
    ] {
        assert_eq!(
            plan_without_source(dir.path(), "Dockerfile", args),
            plan_without_source(dir.path(), "imgbuild.toml", args),
            "{args:?}"
        );
    }
}

#[test]
fn output_file_is_never_overwritten_without_force() {
    let dir = dockerfile_dir(MULTI_STAGE);
    let out = imgbuild_in(dir.path(), &["convert", "-o", "imgbuild.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let written = std::fs::read_to_string(dir.path().join("imgbuild.toml")).unwrap();
    assert!(written.contains("[stages.build]"));

    std::fs::write(dir.path().join("imgbuild.toml"), "# mine\n").unwrap();
    let again = imgbuild_in(dir.path(), &["convert", "-o", "imgbuild.toml"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("`imgbuild.toml` already exists") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("imgbuild.toml")).unwrap(),
        "# mine\n"
    );

    let forced = imgbuild_in(dir.path(), &["convert", "-o", "imgbuild.toml", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("imgbuild.toml")).unwrap(),
        written
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[test]
fn context_is_relative_to_the_output() {
    let dir = dockerfile_dir("FROM scratch\nCOPY . /\n");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = imgbuild_in(dir.path(), &["convert", "-o", "out/imgbuild.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(dir.path().join("out/imgbuild.toml")).unwrap();
    assert!(
        written.starts_with("[build]\ncontext = \"..\"\n"),
        "{written}"
    );
    let elsewhere = imgbuild_in(
        &dir.path().join("out"),
        &["convert", "../Dockerfile", "--context", "."],
    );
    assert_eq!(elsewhere.code, 0, "{}", elsewhere.stderr);
    assert!(
        !elsewhere.stdout.contains("context ="),
        "{}",
        elsewhere.stdout
    );
}

#[test]
fn dockerfile_specific_ignore_file_is_pointed_out() {
    let dir = dockerfile_dir("FROM scratch\nCOPY . /\n");
    std::fs::write(dir.path().join("Dockerfile.dockerignore"), "*.md\n").unwrap();
    let out = imgbuild_in(dir.path(), &["convert"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("Dockerfile.dockerignore") && out.stderr.contains(".dockerignore"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_dockerfiles_are_errors_at_their_line() {
    let dir = dockerfile_dir("FROM scratch\nCOPY --form=x a /b\n");
    let out = imgbuild_in(dir.path(), &["convert", "-o", "imgbuild.toml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown flag `--form` for `COPY`")
            && out.stderr.contains("Dockerfile:2:6"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("imgbuild.toml").exists(),
        "nothing written"
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    let refused = dockerfile_dir("FROM scratch\nSTOPSIGNAL KILL\n");
    let out = imgbuild_in(refused.path(), &["convert"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid stop signal `KILL`") && out.stderr.contains("Dockerfile:2:12"),
        "{}",
        out.stderr
    );

    let typed =
        dockerfile_dir("FROM scratch\nARG U=1\nRUN --mount=type=cache,target=/c,uid=$U true\n");
    let out = imgbuild_in(typed.path(), &["convert"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot convert a `--mount` whose type")
            && out.stderr.contains("Dockerfile:3:5"),
        "{}",
        out.stderr
    );

    let missing = imgbuild_in(dir.path(), &["convert", "Nope.Dockerfile"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("cannot read Dockerfile `Nope.Dockerfile`"),
        "{}",
        missing.stderr
    );
}

/// The example's converted twin is what `imgbuild convert` prints today,
/// and both plan the same for every target and two platforms.
#[test]
fn dockerfile_example_twin_is_current() {
    let example = repo().join("examples/dockerfile");
    let out = imgbuild_in(&example, &["convert"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let twin = std::fs::read_to_string(example.join("imgbuild.toml")).unwrap();
    assert!(
        out.stdout == twin,
        "examples/dockerfile/imgbuild.toml is out of date; regenerate it with `imgbuild convert -o imgbuild.toml --force` in examples/dockerfile"
    );
    for args in [
        &[][..],
        &["--target", "build", "--target", "runtime"],
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--arg",
            "APP_VERSION=2.0.0",
        ],
    ] {
        assert_eq!(
            plan_without_source(&example, "Dockerfile", args),
            plan_without_source(&example, "imgbuild.toml", args),
            "{args:?}"
        );
    }
}

/// Applies `file` in `dir` with `SOURCE_DATE_EPOCH` set and returns the
/// image digest and, per platform, the layer digests.
fn build(dir: &Path, file: &str, platforms: &str, secret: &Path) -> (String, Vec<Vec<String>>) {
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let output = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args([
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "-f",
            file,
        ])
        .args(["--target", "app", "--platform", platforms])
        .arg("--secret")
        .arg(format!("id=token,src={}", secret.display()))
        .arg("--output")
        .arg(format!("type=oci-layout,dest={}", layout.display()))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "apply -f {file} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |digest: &str| -> serde_json::Value {
        let blob = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let image = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let top = read(&image);
    let manifests: Vec<serde_json::Value> = match top["manifests"].as_array() {
        Some(platforms) => platforms
            .iter()
            .map(|m| read(m["digest"].as_str().unwrap()))
            .collect(),
        None => vec![top],
    };
    let layers = manifests
        .iter()
        .map(|m| {
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_no_secret_in_layers(&layout, &manifests);
    (image, layers)
}

const SECRET: &str = "s3cr3t-value-for-convert";

fn assert_no_secret_in_layers(layout: &Path, manifests: &[serde_json::Value]) {
    for manifest in manifests {
        for layer in manifest["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap();
            let file = std::fs::File::open(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap();
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(file)
                .read_to_end(&mut bytes)
                .unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the secret is in layer {digest}"
            );
        }
    }
}

/// Heredocs, cache, secret and bind mounts, ARGs and two platforms.
const E2E_DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG GREETING=hello
ARG TOOLS=fixtures

# A busybox base for the target platform, from the context.
FROM scratch AS base
ARG TOOLS
ARG TARGETARCH
ENV PATH=/bin
COPY ${TOOLS}/${TARGETARCH}/ /bin/
COPY <<'EOF' /etc/passwd
root:x:0:0:root:/root:/bin/sh
EOF

FROM base AS build
ARG GREETING=hi
WORKDIR /work
# None of these mounts ends up in a layer.
RUN --mount=type=cache,target=/cache,id=convert-e2e \
    --mount=type=secret,id=token,required \
    --mount=type=bind,source=data,target=/data <<EOF
set -e
mkdir -p /out
cat /data/input.txt > /out/input
echo "$GREETING from $(uname -m)" > /out/greeting
test -s /run/secrets/token && echo "secret seen" > /out/secret
echo run >> /cache/runs
EOF

FROM base AS app
COPY --from=build /out/ /srv/
COPY --chmod=0755 <<'EOF' /bin/hello
#!/bin/sh
cat /srv/greeting
EOF
CMD ["/bin/hello"]
"#;

fn install_busybox(dir: &Path, busybox: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(busybox, dir.join("busybox")).unwrap();
    for applet in ["sh", "echo", "mkdir", "cat", "uname", "test"] {
        std::os::unix::fs::symlink("busybox", dir.join(applet)).unwrap();
    }
}

#[test]
fn converted_manifest_builds_the_same_layers() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    install_busybox(
        &dir.path().join("fixtures/amd64"),
        Path::new("/bin/busybox"),
    );
    let mut platforms = "linux/amd64".to_owned();
    if let Some(arm64) = arm64_busybox() {
        install_busybox(&dir.path().join("fixtures/arm64"), &arm64);
        platforms.push_str(",linux/arm64");
    }
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/input.txt"), "from the context\n").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("token");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::write(dir.path().join("Dockerfile"), E2E_DOCKERFILE).unwrap();

    let out = imgbuild_in(dir.path(), &["convert", "-o", "imgbuild.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let manifest = std::fs::read_to_string(dir.path().join("imgbuild.toml")).unwrap();
    assert!(manifest.contains("TOOLS = \"fixtures\""), "{manifest}");

    let (dockerfile_image, from_dockerfile) = build(dir.path(), "Dockerfile", &platforms, &secret);
    let (manifest_image, from_manifest) = build(dir.path(), "imgbuild.toml", &platforms, &secret);
    let count = platforms.split(',').count();
    assert_eq!(from_dockerfile.len(), count, "{from_dockerfile:?}");
    for layers in &from_dockerfile {
        // busybox, passwd, /srv from build, hello
        assert_eq!(layers.len(), 4, "{layers:?}");
    }
    assert_eq!(from_dockerfile, from_manifest, "the same layers");
    assert_eq!(dockerfile_image, manifest_image, "the same image");
    if count == 2 {
        // The build ran once per platform: `uname -m` differs.
        assert_ne!(from_dockerfile[0][2], from_dockerfile[1][2]);
    }
}

/// The fenced block of `language` that starts after byte `from` in `markdown`.
fn fenced_block(markdown: &str, language: &str, from: usize) -> Option<(String, usize)> {
    let fence = format!("```{language}\n");
    let start = from + markdown[from..].find(&fence)? + fence.len();
    let end = start + markdown[start..].find("```")?;
    Some((markdown[start..end].to_owned(), end))
}

/// The book's conversion example is what `imgbuild convert` prints.
#[test]
fn book_conversion_example_is_current() {
    let page = std::fs::read_to_string(repo().join("book/src/convert.md")).unwrap();
    let (dockerfile, end) = fenced_block(&page, "dockerfile", 0).expect("a Dockerfile block");
    let (manifest, _) = fenced_block(&page, "toml", end).expect("a TOML block after it");
    let dir = dockerfile_dir(&dockerfile);
    let out = imgbuild_in(dir.path(), &["convert"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, manifest, "book/src/convert.md is out of date");
}

/// The names in `dir`, sorted: no temporary file may be left.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn make_node(path: &Path, kind: &str, major_minor: &[&str]) {
    let status = Command::new("mknod")
        .arg(path)
        .arg(kind)
        .args(major_minor)
        .status()
        .expect("mknod runs");
    assert!(status.success(), "mknod {} {kind}", path.display());
}

#[test]
fn force_writes_through_a_char_device_and_a_fifo() {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let dir = dockerfile_dir("FROM scratch\nCOPY a /a\n");
    let null = dir.path().join("null");
    make_node(&null, "c", &["1", "3"]);
    let rdev = std::fs::metadata(&null).unwrap().rdev();
    std::os::unix::fs::symlink("null", dir.path().join("null-link")).unwrap();
    for output in ["null", "null-link"] {
        let out = imgbuild_in(dir.path(), &["convert", "-o", output, "--force"]);
        assert_eq!(out.code, 0, "-o {output}: {}", out.stderr);
        let meta = std::fs::metadata(&null).unwrap();
        assert!(
            meta.file_type().is_char_device(),
            "-o {output} kept the device"
        );
        assert_eq!(meta.rdev(), rdev);
    }
    assert!(
        std::fs::symlink_metadata(dir.path().join("null-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let fifo = dir.path().join("fifo");
    make_node(&fifo, "p", &[]);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = imgbuild_in(dir.path(), &["convert", "-o", "fifo", "--force"]);
    if out.code != 0 {
        // Unblock the reader, which waits for a writer.
        let _ = rustix::fs::open(
            &fifo,
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        );
    }
    let read = reader.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        read.contains("[stages."),
        "the reader got the manifest: {read}"
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        names(dir.path()),
        ["Dockerfile", "fifo", "null", "null-link"]
    );
}

#[test]
fn force_refuses_directories_block_devices_and_sockets() {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = dockerfile_dir("FROM scratch\n");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("sub", dir.path().join("sub-link")).unwrap();
    make_node(&dir.path().join("disk"), "b", &["7", "0"]);
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    for (output, kind) in [
        ("sub", "a directory"),
        ("sub-link", "a symlink to `sub`"),
        ("disk", "a block device"),
        ("sock", "a socket"),
    ] {
        let out = imgbuild_in(dir.path(), &["convert", "-o", output, "--force"]);
        assert_eq!(out.code, 2, "-o {output}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "`{output}` is {kind}; `--force` replaces only a regular file"
            )),
            "{}",
            out.stderr
        );
    }
    assert!(dir.path().join("sub").is_dir());
    let disk = std::fs::symlink_metadata(dir.path().join("disk")).unwrap();
    assert!(disk.file_type().is_block_device());
    assert_eq!(
        names(dir.path()),
        ["Dockerfile", "disk", "sock", "sub", "sub-link"]
    );
}

#[test]
fn force_refuses_a_symlink_to_a_file() {
    let dir = dockerfile_dir("FROM scratch\n");
    std::fs::write(dir.path().join("real.toml"), "old").unwrap();
    std::os::unix::fs::symlink("real.toml", dir.path().join("imgbuild.toml")).unwrap();
    std::os::unix::fs::symlink("missing", dir.path().join("dangling.toml")).unwrap();
    for (output, target) in [("imgbuild.toml", "real.toml"), ("dangling.toml", "missing")] {
        let out = imgbuild_in(dir.path(), &["convert", "-o", output, "--force"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "`{output}` is a symlink to `{target}`; `--force` replaces only a regular file"
            )) && out.stderr.contains("remove the link first"),
            "{}",
            out.stderr
        );
        let meta = std::fs::symlink_metadata(dir.path().join(output)).unwrap();
        assert!(meta.file_type().is_symlink(), "the link stays");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("real.toml")).unwrap(),
        "old"
    );
    assert_eq!(
        names(dir.path()),
        ["Dockerfile", "dangling.toml", "imgbuild.toml", "real.toml"]
    );
}
