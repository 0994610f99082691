//! Round trips: Dockerfile ─► IR ─► TOML ─► IR must give the same project and
//! the same resolved build graphs, for `BuildKit`'s parser test files, the
//! examples, and Dockerfiles written here to use every feature.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::*;
use crate::ir::args::PREDEFINED_ARGS;
use crate::ir::{BuildGraph, Step};
use crate::plan::{self, Request};

/// A build graph as comparable lines: every node with every field (the
/// start config too, which the Plan JSON leaves out), its dependencies by
/// node id and kind, and every image with its nodes. Errors compare by
/// message, since the two sources have different file names and spans.
fn graph_lines(result: Result<BuildGraph, plan::Error>) -> Result<Vec<String>, String> {
    let graph = result.map_err(|e| match e {
        plan::Error::Invalid(d) => d
            .errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        plan::Error::Usage { message, .. } => message,
    })?;
    let mut lines: Vec<String> = graph
        .nodes()
        .map(|(id, node)| {
            let dependencies: Vec<(String, crate::ir::EdgeKind)> = graph
                .dependencies(id)
                .into_iter()
                .map(|(d, kind)| (graph.node(d).id.clone(), kind))
                .collect();
            format!("{node:?} <- {dependencies:?}")
        })
        .collect();
    lines.sort();
    for image in &graph.images {
        let nodes: Vec<(String, String)> = image
            .nodes
            .iter()
            .map(|(platform, id)| (platform.to_string(), graph.node(*id).id.clone()))
            .collect();
        lines.push(format!("{image:?} {nodes:?}"));
    }
    Ok(lines)
}

/// The requests a round trip is checked with: every image, on the host and
/// on two platforms, with default arguments and with every declared
/// argument overridden.
fn requests(project: &Project) -> Vec<Request> {
    let targets: Vec<String> = project.images.keys().cloned().collect();
    let mut declared: IndexMap<String, String> = IndexMap::new();
    for name in project.args.keys() {
        declared.insert(name.clone(), "overridden".to_owned());
    }
    for stage in project.stages.values() {
        for step in &stage.steps {
            if let Step::Arg { name, .. } = step
                && !PREDEFINED_ARGS.contains(&name.as_str())
            {
                declared.insert(name.clone(), "overridden".to_owned());
            }
        }
    }
    let two = vec![
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64").unwrap(),
    ];
    let mut requests = Vec::new();
    for platforms in [Vec::new(), two] {
        for args in [IndexMap::new(), declared.clone()] {
            requests.push(Request {
                targets: targets.clone(),
                platforms: platforms.clone(),
                args,
                host: Platform::parse("linux/amd64").unwrap(),
                triggers: Some(std::sync::Arc::new(crate::dockerfile::Triggers)),
                ..Request::default()
            });
        }
    }
    requests
}

/// Converts `text` and checks the round trip; returns the manifest.
fn round_trip(name: &str, text: &str) -> String {
    let project = super::super::parse_project(name, text)
        .unwrap_or_else(|e| panic!("{name}: the Dockerfile does not lower: {e:?}"));
    let manifest =
        convert(name, text, ".").unwrap_or_else(|e| panic!("{name}: conversion failed: {e:?}"));
    assert_eq!(
        convert(name, text, ".").unwrap(),
        manifest,
        "{name}: conversion is deterministic"
    );
    let read = manifest::parse("imgbuild.toml", &manifest, &crate::dockerfile::Triggers)
        .unwrap_or_else(|e| panic!("{name}: the converted manifest is invalid: {e:?}\n{manifest}"));
    let json = |p: &Project| -> Vec<String> {
        definition(p)
            .into_iter()
            .map(|part| format!("{}: {}", part.what, part.json))
            .collect()
    };
    assert_eq!(
        json(&project),
        json(&read),
        "{name}: the project changed\n{manifest}"
    );
    for request in requests(&project) {
        let from_dockerfile = graph_lines(plan::resolve_graph(&project, &request));
        let from_manifest = graph_lines(plan::resolve_graph(&read, &request));
        assert_eq!(
            from_dockerfile, from_manifest,
            "{name}: the build graph changed for {request:?}\n{manifest}"
        );
    }
    manifest
}

#[test]
fn buildkit_testfiles_round_trip() {
    let Some(root) = super::super::conformance_dir() else {
        return;
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("parser/testfiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.push(root.join("parser/testfile-line"));
    cases.sort();
    let mut converted = Vec::new();
    let mut refused = Vec::new();
    for dir in &cases {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        match super::super::parse_project(&case, &text) {
            Ok(_) => {
                round_trip(&case, &text);
                converted.push(case);
            }
            Err(e) => {
                let why = e.errors[0].message.clone();
                // What lowering refuses, convert refuses with the same error.
                let refusal = convert(&case, &text, ".").expect_err("convert refuses it too");
                assert_eq!(refusal.errors[0].message, why, "{case}");
                refused.push(format!("{case}: {why}"));
            }
        }
    }
    println!(
        "converted and round-tripped {} BuildKit test files: {}",
        converted.len(),
        converted.join(", ")
    );
    println!(
        "refused {} that the Dockerfile front end refuses:",
        refused.len()
    );
    for line in &refused {
        println!("  {line}");
    }
    assert!(
        converted.len() >= 20,
        "most of the test files lower; only {} did",
        converted.len()
    );
}

#[test]
fn buildkit_negative_testfiles_are_refused() {
    let Some(root) = super::super::conformance_dir() else {
        return;
    };
    for entry in std::fs::read_dir(root.join("parser/testfiles-negative")).unwrap() {
        let dir = entry.unwrap().path();
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(
            convert("Dockerfile", &text, ".").is_err(),
            "{} is converted",
            dir.display()
        );
    }
}

/// Every Dockerfile under `examples/`.
fn example_dockerfiles() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .map(walkdir::DirEntry::into_path)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "Dockerfile" || n.ends_with(".Dockerfile"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn example_dockerfiles_round_trip() {
    let files = example_dockerfiles();
    assert!(!files.is_empty(), "examples/dockerfile/Dockerfile exists");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        round_trip(&file.display().to_string(), &text);
    }
}

/// A Dockerfile that uses every instruction and flag the front end lowers,
/// with strings that need each kind of TOML quoting.
const EVERYTHING: &str = r#"# syntax=docker/dockerfile:1
# escape=\

# A file header: it stays at the top.

# The Go version.
ARG GO_VERSION=1.23
ARG EMPTY
# Predefined: not an argument of the manifest.
ARG TARGETPLATFORM

FROM scratch AS tools
COPY tools/ /bin/

# Build on the build machine.
FROM --platform=$BUILDPLATFORM docker.io/library/golang:${GO_VERSION} AS build
ARG TARGETARCH
ARG VERSION=dev MODE
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly" QUOTED='it''s' DOLLAR=\$HOME
USER 1000:1000
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Modules come from a cache.
RUN --mount=type=cache,target=/go/pkg/mod,id=gomod,sharing=locked,mode=0755,uid=1000,gid=1000 \
    --mount=type=secret,id=netrc,target=/root/.netrc,required,mode=0400 \
    --mount=type=secret,id=token,env=TOKEN \
    --mount=type=bind,from=tools,source=/bin,target=/tools,rw \
    --mount=type=tmpfs,target=/tmp,size=64m \
    --mount=type=ssh,id=git,required \
    --network=none \
    go mod download
RUN apt-get update \
    # a comment between continuation lines
    && apt-get install -y git
RUN ["echo", "exec form", "with \"quotes\""]
RUN <<EOF
#!/usr/bin/env bash
set -euo pipefail
echo 'single' "double" \
  'and a trailing quote'
EOF
COPY --chown=1000:1000 --chmod=0755 --link go.mod go.sum ./
COPY --parents --exclude=*.md --exclude=docs/ src/ ./
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /tmp/
COPY <<'END' /etc/app/config.toml
title = '''multi'''
path = "C:\dir"
END
COPY <<'ONE' <<'TWO' /etc/app/
first
ONE
second'
TWO
RUN --network=host echo host

# The image.
FROM docker.io/library/debian:bookworm-slim
COPY --from=build /src/app /app
LABEL org.opencontainers.image.title="app" description="an app with \"quotes\"" \
      maintainer.email=dev@example.com
MAINTAINER someone <someone@example.com>
EXPOSE 8080 53/udp
VOLUME ["/data", "/cache"]
VOLUME /logs
HEALTHCHECK --interval=30s --timeout=1500ms --start-period=1m --start-interval=5s --retries=3 \
    CMD curl -f http://localhost/ || exit 1
STOPSIGNAL SIGTERM
# Overridden by ENTRYPOINT below.
CMD ["serve"]
ENTRYPOINT ["/app"]
CMD ["--port", "8080"]

# A trailing note.
"#;

#[test]
fn every_feature_round_trips() {
    let manifest = round_trip("Dockerfile", EVERYTHING);
    insta::assert_snapshot!("everything", manifest);
}

#[test]
fn comments_land_above_what_their_instruction_became() {
    let manifest = round_trip(
        "Dockerfile",
        "# Header.\n\n# Above the arg.\nARG A=1\n# Above the stage.\nFROM scratch AS app\n# Above the env step.\nENV X=1\n# Above the label.\nLABEL a=b\nCOPY <<'EOF' <<'EOF2' /etc/\n# not a comment: file content\nEOF\nx\nEOF2\n# After the heredocs.\nWORKDIR /x\n# The end.\n",
    );
    let expected = r#"# Header.

[build]
arg_scope = "declared"

[args]
# Above the arg.
A = "1"

# Above the stage.
[stages.app]
from = "scratch"
steps = [
  # Above the env step.
  { env = { X = "1" } },
  # Above the label.
  { label = { a = "b" } },
  { file = '''
# not a comment: file content
''', to = "/etc/EOF" },
  { file = '''
x
''', to = "/etc/EOF2" },
  # After the heredocs.
  { workdir = "/x" },
]

# Every stage is an image, so `--target STAGE` builds it as with `docker build`;
# the `default` group builds the last stage.
[images.app]
stage = "app"

[groups]
default = ["app"]

# The end.
"#;
    assert_eq!(manifest, expected);
}

#[test]
fn long_settings_become_sub_tables() {
    let labels = (0..6).fold(String::new(), |mut labels, i| {
        let _ = write!(labels, " org.example.label-{i}=\"value number {i}\"");
        labels
    });
    let text = format!(
        "FROM scratch\n# Many labels.\nLABEL{labels}\nHEALTHCHECK --interval=30s --timeout=10s --start-period=1m --retries=3 CMD [\"/bin/check\", \"--all\", \"--verbose\"]\n"
    );
    let manifest = round_trip("Dockerfile", &text);
    // A LABEL is a step (it sees the variables of its line): one inline table.
    assert!(
        manifest.contains(
            "\n  # Many labels.\n  { label = { \"org.example.label-0\" = \"value number 0\", "
        ),
        "{manifest}"
    );
    assert!(
        manifest.contains("\n[stages.0.healthcheck]\ntest = [\"/bin/check\", \"--all\", \"--verbose\"]\ninterval = \"30s\"\n"),
        "{manifest}"
    );
}

#[test]
fn context_is_written_when_it_is_not_the_manifest_directory() {
    let manifest = convert("Dockerfile", "FROM scratch\nCOPY . /\n", "../app").unwrap();
    assert!(
        manifest.starts_with("[build]\ncontext = \"../app\"\n"),
        "{manifest}"
    );
    let read = manifest::parse("imgbuild.toml", &manifest, &crate::dockerfile::Triggers).unwrap();
    assert_eq!(read.context.value, "../app");
}

#[test]
fn check_directive_becomes_the_lint_table() {
    let text =
        "# check=skip=RootInFinalImage,JSONArgsRecommended;error=true\nFROM scratch\nCOPY a /a\n";
    let manifest = round_trip("Dockerfile", text);
    assert!(
        manifest.contains("[lint]\nskip = [\"RootInFinalImage\"]\nerror = true\n"),
        "{manifest}"
    );
    let read = manifest::parse("imgbuild.toml", &manifest, &crate::dockerfile::Triggers).unwrap();
    assert_eq!(read.checks.skip, ["RootInFinalImage"]);
    assert!(read.checks.error);
    let all = convert("Dockerfile", "# check=skip=all\nFROM scratch\n", ".").unwrap();
    assert!(all.contains("[lint]\nskip = [\"all\"]\n"), "{all}");
    let none = convert("Dockerfile", "FROM scratch\n", ".").unwrap();
    assert!(!none.contains("[lint]"), "{none}");
}

#[test]
fn values_a_manifest_refuses_are_reported_at_their_dockerfile_line() {
    let text = "FROM scratch\nCOPY a /a\nSTOPSIGNAL BOGUS\n";
    let error = convert("Dockerfile", text, ".").expect_err("refused");
    let error = &error.errors[0];
    assert!(
        error.message.contains("invalid stop signal `BOGUS`")
            && error.message.contains("which a manifest does not accept"),
        "{}",
        error.message
    );
    assert_eq!(error.location(), "Dockerfile:3:12");
    assert!(error.help.as_deref().unwrap().contains("SIGTERM"));
}

#[test]
fn dockerfile_errors_are_reported_as_for_plan() {
    let error = convert("Dockerfile", "FROM scratch\nONBUILD FROM alpine\n", ".")
        .expect_err("refused")
        .errors
        .remove(0);
    let planned = super::super::parse_project("Dockerfile", "FROM scratch\nONBUILD FROM alpine\n")
        .expect_err("refused")
        .errors
        .remove(0);
    assert_eq!(error.message, planned.message);
    assert_eq!(error.location(), planned.location());
}

#[test]
fn a_manifest_that_builds_something_else_is_refused_at_the_instruction() {
    let text = "FROM scratch\nWORKDIR /app\nCOPY --link a b\n";
    let (source, dockerfile) = super::super::parse_source("Dockerfile", text).unwrap();
    let (project, placements) = lower::lower_placed(&dockerfile, source).unwrap();
    let mut emitted = manifest::emit(&project, &Comments::default());
    assert!(check(&project, &emitted, &dockerfile, &placements).is_ok());
    emitted.text = emitted.text.replace(", link = true", "");
    let error = check(&project, &emitted, &dockerfile, &placements)
        .expect_err("the manifest copies without --link")
        .errors
        .remove(0);
    assert!(
        error.message.contains("step 2 of stage `0`"),
        "{}",
        error.message
    );
    assert_eq!(error.location(), "Dockerfile:3:1");
    assert!(error.help.unwrap().contains("bug in imgbuild"));
}

#[test]
fn argument_scope_and_onbuild_round_trip() {
    let text = r#"ARG VERSION
ARG BASE=scratch
FROM $BASE AS toolchain
LABEL before="${VERSION:-unset}"
ARG VERSION
ARG TARGETARCH=riscv64
ENV A=env
ARG A=arg
LABEL version="$VERSION" arch="$TARGETARCH" a="$A"
EXPOSE 8000-8001/udp
ONBUILD COPY . /src
ONBUILD RUN make

FROM toolchain AS app
STOPSIGNAL ${SIGNAL:-SIGTERM}
"#;
    let manifest = round_trip("Dockerfile", text);
    for expected in [
        "arg_scope = \"declared\"\n",
        "VERSION = {}\n",
        "onbuild = [\"COPY . /src\", \"RUN make\"]\n",
        "{ arg = \"TARGETARCH\", default = \"riscv64\" }",
        "{ expose = [\"8000-8001/udp\"] }",
    ] {
        assert!(manifest.contains(expected), "{expected}:\n{manifest}");
    }
}

#[test]
fn heredocs_round_trip() {
    let dockerfile = "FROM busybox AS build\nARG NAME=world\nENV GREETING=hello\nRUN python3 <<EOF\nprint(1)\nEOF\nRUN <<EOF 3<<IN1 awk -f -\nprog\nEOF\ndata\nIN1\nRUN <<-EOF\n\t#!/bin/sh\n\techo hi\n\tEOF\nCOPY --chmod=0640 <<A <<'B' /dst/\n$GREETING ${NAME} \\$x \\\\ '''\nA\n$GREETING '''\nB\n";
    let manifest = round_trip("Dockerfile", dockerfile);
    let steps = &manifest[manifest.find("steps = [").unwrap()..manifest.find("\n]\n").unwrap()];
    assert_eq!(
        steps,
        r#"steps = [
  { arg = "NAME", default = "world" },
  { env = { GREETING = "hello" } },
  { run = '''
python3 <<EOF
print(1)
EOF''' },
  { run = '''
<<EOF 3<<IN1 awk -f -
prog
EOF
data
IN1''' },
  { run = '''
#!/bin/sh
echo hi
''' },
  { file = """
$GREETING ${NAME} \\$x \\\\ '''
""", to = "/dst/A", chmod = "0640", expand = true },
  { file = """
$GREETING '''
""", to = "/dst/B", chmod = "0640" },"#
    );
}
