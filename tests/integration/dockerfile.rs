//! Dockerfiles: `-f Dockerfile` is lowered to the same IR as a manifest.

use std::path::Path;
use std::process::Command;

use crate::util::{Output, can_run, imgbuild_in};

/// `--build-arg` values nothing consumes are a warning, for `plan` and
/// `apply` alike, in docker's words; the build goes on. CI's
/// `BUILDKIT_INLINE_CACHE=1` is `BuildKit`'s own and never reported.
#[test]
fn unconsumed_build_args_are_a_warning() {
    let dir = dockerfile_dir("FROM scratch\nARG USED\nLABEL used=$USED\n");
    let out = tempfile::tempdir().unwrap();
    let layout = format!("type=oci-layout,dest={}", out.path().join("l").display());
    let args = [
        "--build-arg",
        "USED=1",
        "--build-arg",
        "FOO=1",
        "--build-arg",
        "BAR=2",
        "--build-arg",
        "BUILDKIT_INLINE_CACHE=1",
    ];
    let mut plan = vec!["plan", "-f", "Dockerfile"];
    plan.extend(args);
    let mut apply = vec![
        "apply",
        "-f",
        "Dockerfile",
        "--progress",
        "plain",
        "--output",
        &layout,
    ];
    apply.extend(args);
    for command in [plan, apply] {
        let run = imgbuild_in(dir.path(), &command);
        assert_eq!(run.code, 0, "{command:?}: {}", run.stderr);
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("[Warning]"))
            .collect();
        assert_eq!(
            warnings,
            ["[Warning] One or more build-args [BAR FOO] were not consumed"],
            "{command:?}: {}",
            run.stderr
        );
    }
}

/// A temporary directory holding `Dockerfile` with `text`.
pub(crate) fn dockerfile_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), text).expect("write Dockerfile");
    dir
}

pub(crate) fn plan(text: &str, args: &[&str]) -> Output {
    let dir = dockerfile_dir(text);
    let mut all = vec!["plan", "-f", "Dockerfile"];
    all.extend_from_slice(args);
    imgbuild_in(dir.path(), &all)
}

fn plan_json(text: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = plan(text, &all);
    assert_eq!(out.code, 0, "plan failed:\n{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("plan --json prints JSON")
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG GO_VERSION=1.23
FROM docker.io/library/golang:${GO_VERSION} AS build
ARG TARGETARCH
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod,id=gomod,sharing=locked \
    --mount=type=secret,id=netrc,dst=/root/.netrc,required \
    go mod download
RUN <<EOF
set -eu
GOARCH=$TARGETARCH go build -o /out/app .
EOF
COPY --chmod=0755 <<'END' /usr/local/bin/hello
#!/bin/sh
echo "hello $USER"
END

FROM scratch
COPY --from=build /out/app /app
ENV APP_MODE="release build"
LABEL org.opencontainers.image.title="app"
EXPOSE 8080
ENTRYPOINT ["/app"]
"#;

fn node<'a>(plan: &'a serde_json::Value, stage: &str) -> &'a serde_json::Value {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["stage"] == stage)
        .unwrap_or_else(|| panic!("no node for stage {stage}: {plan:#}"))
}

fn steps(node: &serde_json::Value) -> Vec<serde_json::Value> {
    node["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.get("step").unwrap_or(s).clone())
        .collect()
}

#[test]
fn multi_stage_dockerfile_plans_like_a_manifest() {
    let plan = plan_json(MULTI_STAGE, &["--build-arg", "GO_VERSION=1.24"]);
    let text = plan.to_string();
    let build = node(&plan, "build");
    assert_eq!(
        build["base"]["name"], "docker.io/library/golang:1.24",
        "{build:#}"
    );
    let build_steps = steps(build);
    let run = build_steps
        .iter()
        .find(|s| s["kind"] == "run" && !s["mounts"].is_null())
        .unwrap_or_else(|| panic!("a run step with mounts: {build:#}"));
    assert_eq!(run["command"]["shell"], "go mod download");
    assert_eq!(run["mounts"][0]["type"], "cache");
    assert_eq!(run["mounts"][0]["target"], "/go/pkg/mod");
    assert_eq!(run["mounts"][0]["id"], "gomod");
    assert_eq!(run["mounts"][0]["sharing"], "locked");
    assert_eq!(run["mounts"][1]["type"], "secret");
    assert_eq!(run["mounts"][1]["target"], "/root/.netrc");
    assert_eq!(run["mounts"][1]["required"], true);
    assert!(
        text.contains(r"set -eu\nGOARCH=$TARGETARCH go build -o /out/app .\n"),
        "heredoc RUN becomes a script: {build:#}"
    );
    assert!(
        text.contains(r#"#!/bin/sh\necho \"hello $USER\"\n"#),
        "quoted COPY heredoc becomes a file step, unexpanded: {build:#}"
    );
    let app = node(&plan, "1");
    assert_eq!(app["base"]["type"], "scratch");
    let app_steps = steps(app);
    assert_eq!(app_steps[0]["kind"], "copy");
    assert!(
        app_steps[0]["from"]
            .as_str()
            .unwrap()
            .starts_with("stage:build@"),
        "{app:#}"
    );
    assert_eq!(app_steps[1]["vars"]["APP_MODE"], "release build");
    assert_eq!(app["config"]["entrypoint"]["exec"][0], "/app");
    assert_eq!(app["config"]["expose"][0], "8080/tcp");
    assert_eq!(
        app["config"]["labels"]["org.opencontainers.image.title"],
        "app"
    );
}

#[test]
fn target_selects_a_stage() {
    let plan = plan_json(MULTI_STAGE, &["--target", "build"]);
    let stages: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["build"]);
}

/// Asserts that planning `text` fails with exit code 2 and `message` at `Dockerfile:LINE:COLUMN`.
fn assert_bad(text: &str, message: &str, line: usize, column: usize) {
    let out = plan(text, &[]);
    assert_eq!(out.code, 2, "exit code; stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(message),
        "expected {message:?} in:\n{}",
        out.stderr
    );
    let location = format!("Dockerfile:{line}:{column}");
    assert!(
        out.stderr.contains(&location),
        "expected {location} in:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn unknown_flag() {
    assert_bad(
        "FROM scratch\nCOPY --form=x a /b\n",
        "unknown flag `--form` for `COPY`",
        2,
        6,
    );
}

#[test]
fn forbidden_onbuild_triggers_are_refused() {
    assert_bad(
        "FROM scratch\n\nONBUILD FROM alpine\n",
        "FROM isn't allowed as an ONBUILD trigger",
        3,
        1,
    );
    assert_bad(
        "FROM scratch\nONBUILD ONBUILD RUN make\n",
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        2,
        1,
    );
}

#[test]
fn security_is_refused() {
    assert_bad(
        "FROM scratch\nRUN --security=insecure make\n",
        "`RUN --security=insecure` (BuildKit's dockerfile frontend 1.20",
        2,
        5,
    );
    assert_bad(
        "FROM scratch\nRUN --security=root make\n",
        "security \"root\" is not valid",
        2,
        5,
    );
    // The default mode is accepted.
    let out = plan("FROM scratch\nRUN --security=sandbox make\n", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn malformed_mount_option() {
    assert_bad(
        "FROM scratch\nRUN --mount=type=cache,target=/c,mode=999 true\n",
        "invalid `--mount`: invalid `mode=999`",
        2,
        5,
    );
    assert_bad(
        "FROM scratch\nRUN --mount=type=cache,targte=/c true\n",
        "unknown mount option `targte`",
        2,
        5,
    );
}

#[test]
fn unsupported_expansion_is_refused() {
    assert_bad(
        "ARG V=1.2.3\nFROM scratch\nWORKDIR /app/${V:0:2}\n",
        "unsupported modifier (:0) in substitution",
        3,
        9,
    );
}

#[test]
fn unquoted_copy_heredoc_expands_args_and_env() {
    let plan = plan_json(
        "FROM scratch\nARG WHO=world\nENV GREETING=hello\nCOPY <<EOF /greeting\n$GREETING ${WHO} \\$WHO $(id)\nEOF\n",
        &["--build-arg", "WHO=there"],
    );
    let file = steps(node(&plan, "0"))
        .into_iter()
        .find(|s| s["kind"] == "file")
        .unwrap_or_else(|| panic!("a file step: {plan:#}"));
    assert_eq!(file["content"], "hello there $WHO $(id)\n", "{file:#}");
    // A literal backslash before a variable, and a pattern form.
    let plan = plan_json(
        "FROM scratch\nARG V=v1.2\nCOPY <<EOF /v\n\\\\$V ${V#v}\nEOF\n",
        &[],
    );
    let file = steps(node(&plan, "0"))
        .into_iter()
        .find(|s| s["kind"] == "file")
        .unwrap_or_else(|| panic!("a file step: {plan:#}"));
    assert_eq!(file["content"], "\\v1.2 1.2\n", "{file:#}");
}

#[test]
fn heredoc_errors_point_at_the_heredoc() {
    assert_bad(
        "FROM scratch\nRUN echo a && \\\n  cat <<END\nno end\n",
        "unterminated heredoc",
        3,
        7,
    );
    assert_bad(
        "FROM scratch\nCOPY a <<EOF\nx\nEOF\n",
        "COPY cannot accept a heredoc as a destination",
        2,
        8,
    );
    assert_bad(
        "FROM scratch\nARG X\nCOPY <<EOF /x\nvalue: ${X:?X must be set}\nEOF\n",
        "X must be set",
        4,
        8,
    );
}

/// Applies `file` in `dir` with `SOURCE_DATE_EPOCH` set; returns the layer digests.
fn layer_digests(dir: &Path, file: &str) -> Vec<String> {
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
        .args(["--target", "app", "--output"])
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
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let blob = |digest: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(&layout.join("index.json"));
    let manifest = read(&blob(&index["manifests"][0]["digest"]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

const BUSYBOX_DOCKERFILE: &str = r#"FROM scratch AS base
ENV PATH=/bin
COPY bin/ /bin/
COPY <<'EOF' /etc/passwd
root:x:0:0:root:/root:/bin/sh
EOF

FROM base AS app
WORKDIR /srv
RUN <<EOF
set -e
mkdir -p /out
echo "hello" > /out/greeting
EOF
"#;

const BUSYBOX_MANIFEST: &str = r#"[stages.base]
from = "scratch"
steps = [
  { env = { PATH = "/bin" } },
  { copy = "bin/", to = "/bin/" },
  { file = "root:x:0:0:root:/root:/bin/sh\n", to = "/etc/passwd" },
]

[stages.app]
from = "stage:base"
steps = [
  { workdir = "/srv" },
  { run = '''
set -e
mkdir -p /out
echo "hello" > /out/greeting
''' },
]

[images.app]
stage = "app"
"#;

#[test]
fn dockerfile_builds_the_same_layers_as_the_manifest() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "echo", "mkdir", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(dir.path().join("Dockerfile"), BUSYBOX_DOCKERFILE).unwrap();
    std::fs::write(dir.path().join("imgbuild.toml"), BUSYBOX_MANIFEST).unwrap();
    let from_dockerfile = layer_digests(dir.path(), "Dockerfile");
    let from_manifest = layer_digests(dir.path(), "imgbuild.toml");
    assert!(from_dockerfile.len() >= 3, "{from_dockerfile:?}");
    assert_eq!(from_dockerfile, from_manifest);
}

/// `RUN` sees an argument from its `ARG` line on, and of an `ARG` and an
/// `ENV` of the same name the later one, as in `BuildKit`.
#[test]
fn run_sees_args_from_their_line_on() {
    if !can_run() {
        return;
    }
    let dir = dockerfile_dir(&format!(
        r#"FROM oci-layout:{}
ENV A=env
RUN echo "before: ${{B-unset}} $A" > /before
ARG B=arg
ARG A=arg
RUN echo "after: $B $A" > /after
ENV B=env-again
RUN echo "last: $B $A" > /last
"#,
        crate::run::busybox().display()
    ));
    let store = tempfile::tempdir().unwrap();
    let out = imgbuild_in(
        dir.path(),
        &[
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "-f",
            "Dockerfile",
            "--output",
            "type=local,dest=rootfs",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = |name: &str| std::fs::read_to_string(dir.path().join("rootfs").join(name)).unwrap();
    assert_eq!(read("before"), "before: unset env\n");
    assert_eq!(read("after"), "after: arg arg\n");
    assert_eq!(read("last"), "last: env-again arg\n");
}

/// A context with `Dockerfile` copying `ignored.txt`, whose `.dockerignore`
/// (or `name`) is a symlink to `target`.
fn linked_ignore_context(name: &str, target: &Path) -> tempfile::TempDir {
    let dir = dockerfile_dir("FROM scratch\nCOPY ignored.txt /\n");
    std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
    std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    dir
}

#[test]
fn dockerignore_link_inside_the_context_is_followed() {
    let dir = linked_ignore_context(".dockerignore", Path::new("patterns"));
    std::fs::write(dir.path().join("patterns"), "ignored.txt\n").unwrap();
    let out = imgbuild_in(dir.path(), &["lint", "-f", "Dockerfile"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Attempting to Copy file \"ignored.txt\" that is excluded by .dockerignore"),
        "the linked patterns apply:\n{}",
        out.stdout
    );
}

#[test]
fn dockerignore_link_out_of_the_context_is_refused_unread() {
    let outside = tempfile::tempdir().unwrap();
    // An invalid pattern, which an error would quote if the file were read.
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "ignored.txt\n[host-secret-line\n").unwrap();
    for (name, target, root) in [
        (".dockerignore", secret.clone(), "build context"),
        (
            ".dockerignore",
            Path::new("..")
                .join(outside.path().file_name().unwrap())
                .join("secret"),
            "build context",
        ),
        (
            "Dockerfile.dockerignore",
            secret.clone(),
            "Dockerfile's directory",
        ),
    ] {
        let dir = linked_ignore_context(name, &target);
        for command in ["lint", "plan"] {
            let out = imgbuild_in(dir.path(), &[command, "-f", "Dockerfile"]);
            assert_eq!(
                out.code, 2,
                "{command} {name} -> {target:?}: {}",
                out.stderr
            );
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(!all.contains("host-secret"), "{all}");
            assert!(
                !all.contains("CopyIgnoredFile"),
                "not applied either: {all}"
            );
            assert!(
                all.contains(&format!("`{name}` is a symlink to `{}`", target.display()))
                    && all.contains(&format!("read only from inside the {root}"))
                    && all.contains("replace the link with a copy"),
                "{all}"
            );
            assert!(!all.contains("panicked"), "{all}");
        }
    }
}

#[test]
fn dockerignore_directory_is_refused() {
    for name in [".dockerignore", "Dockerfile.dockerignore"] {
        let dir = dockerfile_dir("FROM scratch\nCOPY . /\n");
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("patterns"), "*\n").unwrap();
        for command in ["lint", "plan"] {
            let out = imgbuild_in(dir.path(), &[command, "-f", "Dockerfile"]);
            assert_eq!(
                out.code, 2,
                "{command} with a {name} directory: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains(&format!(
                    "`{name}` is a directory, not a file of ignore patterns"
                )) && out.stderr.contains("write the patterns to a regular file"),
                "{}",
                out.stderr
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
}

/// `COPY --from=NAME` with no stage `NAME` reads the image `NAME`, even
/// when a stage has a similar name (`set` is not a typo of `test`):
/// `BuildKit` never guesses. Only when the image cannot be loaded either
/// does the error suggest the stage.
#[test]
fn copy_from_a_non_stage_name_is_an_image() {
    let store = tempfile::tempdir().unwrap();
    let store = store.path().to_str().unwrap();
    let dockerfile =
        "FROM scratch AS test\nCOPY Dockerfile /x\n\nFROM scratch\nCOPY --from=set /from-set /y\n";
    let dir = dockerfile_dir(dockerfile);
    let build = |dir: &Path, file: &str| {
        imgbuild_in(
            dir,
            &[
                "--store",
                store,
                "apply",
                "-f",
                file,
                "--pull=never",
                "--progress",
                "plain",
            ],
        )
    };

    // Nothing named `set` anywhere: the image cannot be loaded, and only
    // now does the stage `test` come up, as a hint.
    let planned = imgbuild_in(
        dir.path(),
        &["--store", store, "plan", "-f", "Dockerfile", "--pull=never"],
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        planned.stdout.contains("did you mean the stage `test`?"),
        "{}",
        planned.stdout
    );
    let failed = build(dir.path(), "Dockerfile");
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("docker.io/library/set:latest is not in the store")
            && failed
                .stderr
                .contains("help: did you mean the stage `test`? `set` names no stage"),
        "{}",
        failed.stderr
    );

    // An image tagged `set` in the store: the copy reads it.
    let image = tempfile::tempdir().unwrap();
    std::fs::write(image.path().join("from-set"), "image set\n").unwrap();
    std::fs::write(
        image.path().join("imgbuild.toml"),
        "[stages.s]\nfrom = \"scratch\"\nsteps = [{ copy = \"from-set\", to = \"/from-set\" }]\n\n[images.set]\nstage = \"s\"\ntags = [\"set\"]\n",
    )
    .unwrap();
    let tagged = build(image.path(), "imgbuild.toml");
    assert_eq!(tagged.code, 0, "{}", tagged.stderr);
    let out = tempfile::tempdir().unwrap();
    let local = format!("type=local,dest={}", out.path().display());
    let copied = imgbuild_in(
        dir.path(),
        &[
            "--store",
            store,
            "apply",
            "-f",
            "Dockerfile",
            "--pull=never",
            "--progress",
            "plain",
            "--output",
            &local,
        ],
    );
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    assert_eq!(
        std::fs::read_to_string(out.path().join("y")).unwrap(),
        "image set\n"
    );
}

/// A `# syntax=` naming docker/dockerfile (any tag, `-upstream` too) is
/// the frontend imgbuild implements: nothing to say. Any other frontend
/// gets a warning that imgbuild builds with its own; when the file does
/// not parse as a Dockerfile either, the error starts at the directive.
#[test]
fn syntax_directive_naming_another_frontend() {
    for syntax in [
        "docker/dockerfile:1",
        "docker/dockerfile:1.7-labs",
        "docker.io/docker/dockerfile-upstream:master",
        "docker/dockerfile@sha256:ac85f380a63b13dfcefa89046420e1781752bab202122f8f50032edf31be0021",
    ] {
        let out = plan(&format!("# syntax={syntax}\nFROM scratch\n"), &[]);
        assert_eq!(out.code, 0, "{syntax}: {}", out.stderr);
        assert!(!out.stderr.contains("syntax"), "{syntax}: {}", out.stderr);
    }

    let warned = plan(
        "# syntax=tonistiigi/dockerfile:runmount\nFROM scratch\n",
        &[],
    );
    assert_eq!(warned.code, 0, "{}", warned.stderr);
    insta::assert_snapshot!(warned.stderr, @"Dockerfile:1:1: warning: `# syntax=tonistiigi/dockerfile:runmount` names a frontend imgbuild does not implement; imgbuild builds the file with its own Dockerfile frontend (docker/dockerfile syntax) instead");

    let refused = plan(
        "#!/usr/bin/env buildctl\n# syntax = ghcr.io/example/frontend:v2\nFROM scratch\nBUNDLE ./app --into /opt\n",
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    insta::assert_snapshot!(refused.stderr);
}
