use std::path::Path;

use super::shell::split_shell;
use super::*;
use crate::lint::Severity;

/// The `(rule, line)` of each finding on manifest `text`.
fn manifest(text: &str) -> Vec<(&'static str, usize)> {
    manifest_with(text, &IndexMap::new())
}

fn manifest_with(text: &str, args: &IndexMap<String, String>) -> Vec<(&'static str, usize)> {
    let project = crate::manifest::parse("imgbuild.toml", text, &crate::dockerfile::Triggers)
        .expect("a valid manifest");
    let options = Options {
        syntax: Syntax::Manifest,
        args,
        local: &[],
    };
    lines(&check(&project, &options))
}

/// The `(rule, line)` of each finding on Dockerfile `text`.
fn dockerfile(text: &str) -> Vec<(&'static str, usize)> {
    let project = crate::dockerfile::parse_project("Dockerfile", text).expect("a valid Dockerfile");
    let parsed = crate::dockerfile::parse(text).unwrap();
    let args = IndexMap::new();
    let options = crate::dockerfile::check::CheckOptions {
        args: &args,
        target: crate::ir::Platform::host(),
        host: crate::ir::Platform::host(),
        ignore: None,
        base_dir: Path::new("."),
    };
    lines(&crate::dockerfile::check::practice(
        &project, &parsed, &options,
    ))
}

fn lines(findings: &[Finding]) -> Vec<(&'static str, usize)> {
    findings.iter().map(|f| (f.rule, f.location.line)).collect()
}

/// Only the findings of `rule`, by line.
fn of(rule: &Rule, findings: &[(&'static str, usize)]) -> Vec<usize> {
    findings
        .iter()
        .filter(|(r, _)| *r == rule.name)
        .map(|(_, line)| *line)
        .collect()
}

/// A manifest of one stage `app`, shipped as image `app`, running as a
/// user unless the stage says otherwise.
fn one_stage(from: &str, rest: &str) -> String {
    format!("[stages.app]\nfrom = \"{from}\"\n{rest}\n[images.app]\nstage = \"app\"\n")
}

#[test]
fn unpinned_bases_fire_without_tag_or_with_latest() {
    let rule = &UNPINNED_BASE_IMAGE;
    for from in [
        "debian",
        "debian:latest",
        "docker.io/library/debian:latest",
        "localhost:5000/app",
        "ghcr.io/org/app",
    ] {
        let found = manifest(&one_stage(from, "user = \"1\""));
        assert_eq!(of(rule, &found), [2], "{from}: {found:?}");
    }
}

#[test]
fn pinned_scratch_stage_and_local_bases_do_not_fire() {
    let rule = &UNPINNED_BASE_IMAGE;
    let digest = "sha256:".to_owned() + &"a".repeat(64);
    for from in [
        "debian:12".to_owned(),
        format!("debian@{digest}"),
        format!("debian:latest@{digest}"),
        "localhost:5000/app:1.0".to_owned(),
        "scratch".to_owned(),
        "oci-layout:./base:1".to_owned(),
        "oci-archive:base.tar".to_owned(),
    ] {
        let found = manifest(&one_stage(&from, "user = \"1\""));
        assert!(of(rule, &found).is_empty(), "{from}: {found:?}");
    }
    let stages = "[stages.base]\nfrom = \"alpine:3.20\"\n[stages.app]\nfrom = \"stage:base\"\n[stages.other]\nfrom = \"base\"\n[images.app]\nstage = \"app\"\n";
    assert!(of(rule, &manifest(stages)).is_empty());
}

#[test]
fn unpinned_images_that_steps_read_from_fire_too() {
    let rule = &UNPINNED_BASE_IMAGE;
    let text = r#"[stages.build]
from = "golang:1.23"
[stages.app]
from = "alpine:3.20"
user = "1"
steps = [
  { copy = ["/bin/tool"], from = "tools/linter", to = "/usr/bin/" },
  { copy = ["/out/app"], from = "build", to = "/app" },
  { copy = ["/etc/ssl/certs"], from = "debian:12", to = "/etc/ssl/" },
  { run = "true", mounts = [{ type = "bind", from = "busybox:latest", target = "/bb" }] },
  { run = "true", mounts = [{ type = "cache", target = "/c", from = "stage:build" }] },
]
[images.app]
stage = "app"
"#;
    assert_eq!(of(rule, &manifest(text)), [7, 10]);
    let dockerfile_text = "FROM alpine:3.20 AS base\nFROM alpine:3.20\nCOPY --from=base /a /a\nCOPY --from=0 /a /b\nCOPY --from=nginx /etc/nginx /etc/nginx\nUSER 1\n";
    assert_eq!(of(rule, &dockerfile(dockerfile_text)), [5]);
}

#[test]
fn unpinned_bases_behind_variables_use_known_values_only() {
    let rule = &UNPINNED_BASE_IMAGE;
    let with_default = format!("[args]\nBASE = \"alpine\"\n{}", one_stage("${BASE}", ""));
    assert_eq!(of(rule, &manifest(&with_default)), [4]);
    let pinned = IndexMap::from([("BASE".to_owned(), "alpine:3.20".to_owned())]);
    assert!(of(rule, &manifest_with(&with_default, &pinned)).is_empty());
    let unset = format!("[args]\nBASE = {{}}\n{}", one_stage("${BASE}", ""));
    assert!(of(rule, &manifest(&unset)).is_empty());
    let predefined = one_stage("alpine-$TARGETARCH", "");
    assert!(of(rule, &manifest(&predefined)).is_empty());
}

#[test]
fn secret_names_fire_in_args_and_env() {
    let rule = &SECRETS_USED_IN_ARG_OR_ENV;
    let text = r#"[args]
NPM_TOKEN = {}
DB_PASSWORD = "x"

[stages.app]
from = "alpine:3.20"
user = "1"
env = { API_KEY = "x" }
steps = [
  { arg = "SSH_KEY" },
  { env = { AWS_SECRET_ACCESS_KEY = "x", GITHUB_TOKEN = "y" } },
  { run = "true" },
]

[images.app]
stage = "app"
"#;
    assert_eq!(of(rule, &manifest(text)), [2, 3, 8, 10, 11, 11]);
}

#[test]
fn names_that_only_contain_a_secret_word_do_not_fire() {
    let rule = &SECRETS_USED_IN_ARG_OR_ENV;
    let text = r#"[args]
KEYBOARD_LAYOUT = "us"
MONKEY = "x"
PUBLIC_KEY = "x"
TOKEN_FILE = "/run/secrets/token"
KEYS = "a,b"

[stages.app]
from = "alpine:3.20"
user = "1"
env = { TOKENIZER = "x", GPG_KEY_VERSION = "2" }

[images.app]
stage = "app"
"#;
    assert!(of(rule, &manifest(text)).is_empty());
}

#[test]
fn dockerfiles_leave_secrets_to_buildkits_check() {
    let found = dockerfile("FROM alpine:3.20\nARG NPM_TOKEN\nENV API_KEY=x\nUSER 1\n");
    assert!(
        of(&SECRETS_USED_IN_ARG_OR_ENV, &found).is_empty(),
        "{found:?}"
    );
}

#[test]
fn cleanup_in_a_later_step_fires_at_the_cleanup() {
    let rule = &CLEANUP_IN_LATER_STEP;
    let apt = one_stage(
        "debian:12",
        r#"user = "1"
steps = [
  { run = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y curl" },
  { run = "echo done" },
  { run = "rm -rf /var/lib/apt/lists/*" },
]"#,
    );
    assert_eq!(of(rule, &manifest(&apt)), [7]);
    let apk = one_stage(
        "alpine:3.20",
        "user = \"1\"\nsteps = [\n  { run = \"apk add curl\" },\n  { run = \"rm -rf /var/cache/apk/*\" },\n]",
    );
    assert_eq!(of(rule, &manifest(&apk)), [6]);
    let dnf = one_stage(
        "fedora:40",
        "user = \"1\"\nsteps = [\n  { run = [\"dnf\", \"install\", \"-y\", \"gzip\"] },\n  { run = \"sudo dnf clean all\" },\n]",
    );
    assert_eq!(of(rule, &manifest(&dnf)), [6]);
    // The lists from an update in an earlier step stay in its layer.
    let update = one_stage(
        "debian:12",
        "user = \"1\"\nsteps = [\n  { run = \"apt-get update\" },\n  { run = \"apt-get install -y curl && rm -rf /var/lib/apt/lists/*\" },\n]",
    );
    assert_eq!(of(rule, &manifest(&update)), [6]);
}

#[test]
fn cleanup_in_the_same_step_or_a_cache_mount_does_not_fire() {
    let rule = &CLEANUP_IN_LATER_STEP;
    for steps in [
        // The same step cleans up; the next one cleans again.
        r#"{ run = """
apt-get update
apt-get install -y curl
rm -rf /var/lib/apt/lists/*
""" },
  { run = "rm -rf /var/lib/apt/lists/*" },"#,
        // apk without a cache.
        r#"{ run = "apk add --no-cache curl" },
  { run = "rm -rf /var/cache/apk/*" },"#,
        // Cache mounts keep the files out of the layer.
        r#"{ run = "apt-get update && apt-get install -y curl", mounts = [{ type = "cache", target = "/var/cache/apt" }, { type = "cache", target = "/var/lib/apt" }] },
  { run = "apt-get clean" },"#,
        // A cleanup with nothing to clean, and one of another manager.
        r#"{ run = "apt-get clean" },
  { run = "apk add curl" },
  { run = "rm -rf /var/lib/apt/lists/*" },"#,
    ] {
        let text = one_stage(
            "debian:12",
            &format!("user = \"1\"\nsteps = [\n  {steps}\n]"),
        );
        let found = manifest(&text);
        assert!(of(rule, &found).is_empty(), "{steps}: {found:?}");
    }
    // Another stage's cleanup does not count.
    let text = r#"[stages.base]
from = "debian:12"
steps = [{ run = "apt-get update && apt-get install -y curl" }]
[stages.app]
from = "stage:base"
user = "1"
steps = [{ run = "rm -rf /var/lib/apt/lists/*" }]
[images.app]
stage = "app"
"#;
    assert!(of(rule, &manifest(text)).is_empty());
}

#[test]
fn copying_everything_before_installing_dependencies_fires_at_the_copy() {
    let rule = &COPY_ALL_BEFORE_INSTALL;
    for (copy, install) in [
        ("{ copy = [\".\"], to = \"/app/\" }", "npm ci"),
        ("{ copy = [\"./\"], to = \"/app/\" }", "yarn"),
        (
            "{ add = [\".\"], to = \"/app/\" }",
            "python3 -m pip install -r requirements.txt",
        ),
        ("{ copy = [\"*\"], to = \"./\" }", "go mod download"),
        (
            "{ copy = [\".\"], to = \"./\" }",
            "cd /app && bundle install --jobs 4",
        ),
        (
            "{ copy = [\".\"], to = \"./\" }",
            "./mvnw -B dependency:go-offline",
        ),
        ("{ copy = [\".\"], to = \"./\" }", "cargo fetch --locked"),
    ] {
        let text = one_stage(
            "node:20",
            &format!(
                "user = \"1\"\nsteps = [\n  {copy},\n  {{ run = \"{}\" }},\n]",
                install.replace('"', "\\\"")
            ),
        );
        let found = manifest(&text);
        assert_eq!(of(rule, &found), [5], "{install}: {found:?}");
    }
}

#[test]
fn copying_manifests_first_or_building_after_the_copy_does_not_fire() {
    let rule = &COPY_ALL_BEFORE_INSTALL;
    for steps in [
        // The layout the rule asks for, with a second install after the copy.
        r#"{ copy = ["pyproject.toml", "poetry.lock"], to = "./" },
  { run = "poetry install --no-root" },
  { copy = ["."], to = "./" },
  { run = "poetry install" },"#,
        // Builds need the sources.
        r#"{ copy = ["."], to = "./" },
  { run = "cargo build --release && go build ./... && npm run build" },"#,
        // Adding one package is not installing the lock file's.
        r#"{ copy = ["."], to = "./" },
  { run = "npm install -g typescript" },"#,
        // Copies from a stage are not the context.
        r#"{ copy = ["."], from = "deps", to = "./" },
  { run = "npm ci" },"#,
        // pip without a requirements file.
        r#"{ copy = ["."], to = "./" },
  { run = "pip install ." },"#,
    ] {
        let text = format!(
            "[stages.deps]\nfrom = \"node:20\"\n{}",
            one_stage("node:20", &format!("user = \"1\"\nsteps = [\n  {steps}\n]"))
        );
        let found = manifest(&text);
        assert!(of(rule, &found).is_empty(), "{steps}: {found:?}");
    }
}

#[test]
fn toolchains_in_the_final_stage_fire() {
    let rule = &TOOLCHAIN_IN_FINAL_STAGE;
    let single = one_stage(
        "golang:1.23",
        "user = \"1\"\nsteps = [{ run = \"go build -o /app .\" }]",
    );
    assert_eq!(of(rule, &manifest(&single)), [2]);
    let installs = one_stage(
        "debian:12",
        "user = \"1\"\nsteps = [\n  { run = \"apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*\" },\n]",
    );
    assert_eq!(of(rule, &manifest(&installs)), [5]);
    // Inherited: the final stage starts from a stage on a JDK.
    let inherited = r#"[stages.jdk]
from = "eclipse-temurin:21"
[stages.app]
from = "stage:jdk"
user = "1"
[images.app]
stage = "app"
"#;
    assert_eq!(of(rule, &manifest(inherited)), [2]);
    let dotnet = one_stage("mcr.microsoft.com/dotnet/sdk:8.0", "user = \"1\"");
    assert_eq!(of(rule, &manifest(&dotnet)), [2]);
}

#[test]
fn runtimes_build_stages_and_removed_tools_do_not_fire() {
    let rule = &TOOLCHAIN_IN_FINAL_STAGE;
    let split = r#"[stages.build]
from = "golang:1.23"
steps = [{ run = "apt-get install -y gcc && go build -o /out/app ." }]
[stages.app]
from = "scratch"
user = "65534"
entrypoint = ["/app"]
steps = [{ copy = ["/out/app"], from = "build", to = "/app" }]
[images.app]
stage = "app"
"#;
    assert!(of(rule, &manifest(split)).is_empty());
    for from in [
        "node:20",
        "python:3.12",
        "eclipse-temurin:21-jre",
        "mcr.microsoft.com/dotnet/aspnet:8.0",
        "mygolang:1",
    ] {
        let found = manifest(&one_stage(from, "user = \"1\""));
        assert!(of(rule, &found).is_empty(), "{from}: {found:?}");
    }
    let virtual_deps = one_stage(
        "python:3.12-alpine",
        "user = \"1\"\nsteps = [{ run = \"apk add --no-cache --virtual .build-deps gcc musl-dev && pip install -r req.txt && apk del .build-deps\" }]",
    );
    assert!(of(rule, &manifest(&virtual_deps)).is_empty());
    // `make` the word is not `make` the package.
    let runs_make = one_stage(
        "debian:12",
        "user = \"1\"\nsteps = [{ run = \"make install\" }]",
    );
    assert!(of(rule, &manifest(&runs_make)).is_empty());
}

#[test]
fn root_in_the_final_image_fires() {
    let rule = &ROOT_IN_FINAL_IMAGE;
    assert_eq!(of(rule, &manifest(&one_stage("debian:12", ""))), [2]);
    assert_eq!(
        of(rule, &manifest(&one_stage("debian:12", "user = \"root\""))),
        [3]
    );
    let step = one_stage(
        "debian:12",
        "user = \"1000\"\nsteps = [\n  { user = \"0:0\" },\n  { run = \"apt-get install -y curl\" },\n]",
    );
    assert_eq!(of(rule, &manifest(&step)), [5]);
    // A static binary on scratch still runs as root.
    let scratch = one_stage("scratch", "entrypoint = [\"/app\"]");
    assert_eq!(of(rule, &manifest(&scratch)), [2]);
    let by_arg = format!(
        "[args]\nAS = \"root\"\n{}",
        one_stage("debian:12", "user = \"$AS\"")
    );
    assert_eq!(of(rule, &manifest(&by_arg)), [5]);
}

#[test]
fn a_user_set_anywhere_in_the_chain_or_a_non_root_base_does_not_fire() {
    let rule = &ROOT_IN_FINAL_IMAGE;
    assert!(of(rule, &manifest(&one_stage("debian:12", "user = \"65534\""))).is_empty());
    let inherited = r#"[stages.base]
from = "debian:12"
steps = [{ run = "useradd app" }, { user = "app" }]
[stages.app]
from = "stage:base"
[images.app]
stage = "app"
"#;
    assert!(of(rule, &manifest(inherited)).is_empty());
    // Only the final image counts: a build stage may run as root.
    let build_as_root = r#"[stages.build]
from = "debian:12"
user = "root"
[stages.app]
from = "debian:12"
user = "1"
[images.app]
stage = "app"
"#;
    assert!(of(rule, &manifest(build_as_root)).is_empty());
    for from in [
        "gcr.io/distroless/static-debian12:nonroot",
        "nginxinc/nginx-unprivileged:1.27",
    ] {
        assert!(
            of(rule, &manifest(&one_stage(from, ""))).is_empty(),
            "{from}"
        );
    }
    // Files only: nothing runs in it.
    assert!(of(rule, &manifest(&one_stage("scratch", ""))).is_empty());
    // A user no one can know.
    let unknown = format!(
        "[args]\nAS = {{}}\n{}",
        one_stage("debian:12", "user = \"$AS\"")
    );
    assert!(of(rule, &manifest(&unknown)).is_empty());
}

#[test]
fn final_images_are_the_default_group_else_every_image() {
    let rule = &ROOT_IN_FINAL_IMAGE;
    let text = r#"[stages.a]
from = "debian:12"
[stages.b]
from = "debian:12"
[images.a]
stage = "a"
[images.b]
stage = "b"
"#;
    assert_eq!(of(rule, &manifest(text)), [2, 4]);
    // Two images of one stage: one finding.
    let shared =
        "[stages.a]\nfrom = \"debian:12\"\n[images.a]\nstage = \"a\"\n[images.b]\nstage = \"a\"\n";
    assert_eq!(of(rule, &manifest(shared)), [2]);
    let grouped = format!("{text}[groups]\ndefault = [\"nested\"]\nnested = [\"b\"]\n");
    assert_eq!(of(rule, &manifest(&grouped)), [4]);
}

#[test]
fn dockerfiles_get_the_same_findings_at_their_lines() {
    let text = r#"FROM golang AS build
RUN apt-get update && apt-get install -y git
COPY . /src
RUN go mod download
RUN rm -rf /var/lib/apt/lists/*

FROM debian:latest
COPY --from=build /src/app /app
CMD ["/app"]
"#;
    assert_eq!(
        dockerfile(text),
        [
            ("UnpinnedBaseImage", 1),
            ("CopyAllBeforeInstall", 3),
            ("CleanupInLaterStep", 5),
            ("UnpinnedBaseImage", 7),
            ("RootInFinalImage", 7),
        ]
    );
    let text = "FROM golang:1.23\nUSER root\nRUN go build\n";
    assert_eq!(
        dockerfile(text),
        [("ToolchainInFinalStage", 1), ("RootInFinalImage", 2)]
    );
}

#[test]
fn dockerfile_check_comments_skip_rules() {
    let text = "# check=skip=UnpinnedBaseImage\nFROM debian\n# check=skip=RootInFinalImage\nUSER root\nFROM alpine AS other\n";
    // The last stage is the final image: `other`, which sets no user.
    assert_eq!(dockerfile(text), [("RootInFinalImage", 5)]);
    let text =
        "FROM debian\n# check=skip=UnpinnedBaseImage,RootInFinalImage\nFROM alpine\nUSER root\n";
    assert_eq!(
        dockerfile(text),
        [("UnpinnedBaseImage", 1), ("RootInFinalImage", 4)]
    );
}

#[test]
fn manifests_skip_rules_and_make_findings_errors() {
    let fires = one_stage("debian", "");
    let skipped = format!("[lint]\nskip = [\"RootInFinalImage\"]\n{fires}");
    assert_eq!(manifest(&skipped), [("UnpinnedBaseImage", 4)]);
    let all = format!("[lint]\nskip = [\"all\"]\n{fires}");
    assert!(manifest(&all).is_empty());

    let errors = format!("[lint]\nerror = true\n{fires}");
    let project =
        crate::manifest::parse("imgbuild.toml", &errors, &crate::dockerfile::Triggers).unwrap();
    let args = IndexMap::new();
    let options = Options {
        syntax: Syntax::Manifest,
        args: &args,
        local: &[],
    };
    let findings = check(&project, &options);
    assert_eq!(findings.len(), 2);
    assert!(findings.iter().all(|f| f.severity == Severity::Error));
}

#[test]
fn unknown_rule_names_are_errors_with_a_place() {
    let text = format!(
        "[lint]\nskip = [\"RootInFinalImag\", \"StageNameCasing\"]\n{}",
        one_stage("debian:12", "")
    );
    let errors =
        crate::manifest::parse("imgbuild.toml", &text, &crate::dockerfile::Triggers).unwrap_err();
    assert_eq!(errors.errors.len(), 2);
    assert_eq!(errors.errors[0].location(), "imgbuild.toml:2:9");
    assert_eq!(
        errors.errors[0].message,
        "unknown lint rule `RootInFinalImag`"
    );
    assert_eq!(
        errors.errors[0].help.as_deref(),
        Some("did you mean `RootInFinalImage`?")
    );
    assert!(
        errors.errors[1]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("BuildKit's Dockerfile checks")),
        "{:?}",
        errors.errors[1].help
    );
}

#[test]
fn shell_text_splits_into_simple_commands() {
    let words = |s: &[&str]| s.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        split_shell(
            "set -eux; apt-get update && \\\n  apt-get install -y 'a b' \"c\" # comment\nrm -rf x | tee"
        ),
        [
            words(&["set", "-eux"]),
            words(&["apt-get", "update"]),
            words(&["apt-get", "install", "-y", "a b", "c"]),
            words(&["rm", "-rf", "x"]),
            words(&["tee"]),
        ]
    );
    let cmd = words(&[
        "DEBIAN_FRONTEND=noninteractive",
        "sudo",
        "-E",
        "/usr/bin/apt-get",
        "-o",
        "Acquire::Retries=3",
        "install",
        "gcc",
    ]);
    let found = install(&cmd).unwrap();
    assert_eq!(
        (found.manager, found.program, found.packages),
        (Manager::Apt, "apt-get", vec!["gcc"])
    );
}

#[test]
fn references_split_at_the_tag_not_the_port() {
    let r = Reference::split("localhost:5000/org/app:1.0@sha256:abc");
    assert_eq!(
        (r.repository, r.tag, r.digest, r.name()),
        (
            "localhost:5000/org/app",
            Some("1.0"),
            Some("sha256:abc"),
            "app"
        )
    );
    let r = Reference::split("localhost:5000/app");
    assert_eq!((r.repository, r.tag), ("localhost:5000/app", None));
}
