//! `imgbuild lint` and the build checks `plan` and `apply` run on
//! Dockerfiles; the best-practice rules `lint` runs on manifests and
//! Dockerfiles alike.

use crate::dockerfile::{dockerfile_dir, plan};
use crate::util::{Output, imgbuild, imgbuild_in, manifest_dir};

/// A Dockerfile that fires most checks, with a `.dockerignore` for `CopyIgnoredFile`.
const MANY: &str = r"# check=skip=InvalidDefaultArgInFrom
ARG IMAGE VERSION=1.36
FROM --platform=linux/amd64 busybox:$IMAGE AS Builder
MAINTAINER someone@example.com
ENV SECRET_TOKEN notreally
WORKDIR app
CMD run
# check=skip=JSONArgsRecommended
CMD run --again

FROM --platform=$TARGETPLATFORM scratch as release
ARG API_KEY
COPY $UNDEFINED /
COPY ignored.txt /
EXPOSE 127.0.0.1:8080:80/TCP

FROM busybox:$VERSON AS last
";

fn lint(text: &str, args: &[&str]) -> Output {
    let dir = dockerfile_dir(text);
    std::fs::write(dir.path().join(".dockerignore"), "ignored.txt\n").unwrap();
    let mut all = vec!["lint", "-f", "Dockerfile"];
    all.extend_from_slice(args);
    imgbuild_in(dir.path(), &all)
}

#[test]
fn lint_prints_every_finding() {
    let out = lint(MANY, &[]);
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn lint_of_a_clean_file_says_so() {
    let out = lint(
        "FROM scratch\nCOPY --chmod=0755 app /app\nUSER 65534\nENTRYPOINT [\"/app\"]\n",
        &[],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no findings\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn error_true_makes_findings_fail() {
    let text = "# check=error=true\nFROM scratch AS Build\nCMD run\n";
    let out = lint(text, &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("StageNameCasing"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "lint violation found for rules: JSONArgsRecommended, RootInFinalImage, StageNameCasing"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("the build checks failed"),
        "{}",
        out.stderr
    );
    // With nothing found, error=true changes nothing.
    let out = lint(
        "# check=error=true\nFROM scratch\nUSER 1\nCMD [\"run\"]\n",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    // A best-practice rule alone fails it too.
    let out = lint("# check=error=true\nFROM scratch\nCMD [\"run\"]\n", &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("lint violation found for rules: RootInFinalImage"),
        "{}",
        out.stdout
    );
}

#[test]
fn skip_all_turns_every_check_off() {
    let out = lint(
        "# check=skip=all\nFROM scratch AS Build\nMAINTAINER me\nCMD run\n",
        &[],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "no findings\n"));
}

#[test]
fn bad_input_exits_2() {
    let out = lint("# check=skip\nFROM scratch\n", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid check option"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Dockerfile:1:1"), "{}", out.stderr);

    let out = lint("FROM scratch\nRUN <<EOF\nunterminated\n", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unterminated heredoc"),
        "{}",
        out.stderr
    );

    // A file imgbuild refuses to build: the findings first, then the error.
    let out = lint("FROM scratch AS a\nFROM scratch AS a\n", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.contains("DuplicateStageName"), "{}", out.stdout);
    assert!(
        out.stderr.contains("duplicate stage name"),
        "{}",
        out.stderr
    );
}

#[test]
fn build_args_and_platform_are_used() {
    let text = "ARG DIR\nFROM scratch\nARG DIR\nARG TARGETARCH\nWORKDIR $DIR$TARGETARCH\n";
    let out = lint(text, &["--platform", "linux/arm64"]);
    assert!(
        out.stdout.contains("Relative workdir \"arm64\""),
        "{}",
        out.stdout
    );
    let out = lint(text, &["--build-arg", "DIR=/srv/"]);
    assert!(
        !out.stdout.contains("WorkdirRelativePath"),
        "{}",
        out.stdout
    );
}

/// A manifest that fires every best-practice rule.
const PRACTICES: &str = r#"[args]
NPM_TOKEN = {}

[stages.app]
from = "node:latest"
workdir = "/app"
env = { API_KEY = "change-me" }
steps = [
  { run = "apt-get update && apt-get install -y build-essential" },
  { copy = ["."], to = "./" },
  { run = "npm ci" },
  { run = "rm -rf /var/lib/apt/lists/*" },
]
cmd = ["node", "server.js"]

[images.app]
stage = "app"
tags = ["example.com/app:1.0"]
"#;

/// The same build as a Dockerfile.
const PRACTICES_DOCKERFILE: &str = r#"FROM node:latest
ARG NPM_TOKEN
ENV API_KEY=change-me
WORKDIR /app
RUN apt-get update && apt-get install -y build-essential
COPY . ./
RUN npm ci
RUN rm -rf /var/lib/apt/lists/*
CMD ["node", "server.js"]
"#;

/// The `(rule, line)` of each finding `lint` printed.
fn findings(stdout: &str) -> Vec<(String, usize)> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(": "))
        .filter_map(|l| {
            let mut parts = l.splitn(5, ':');
            let _file = parts.next()?;
            let line = parts.next()?.parse().ok()?;
            let _column = parts.next()?;
            Some((parts.next()?.trim().to_owned(), line))
        })
        .collect()
}

#[test]
fn lint_of_a_manifest_runs_the_best_practice_rules() {
    let dir = manifest_dir(PRACTICES);
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 0, "warnings only: {}", out.stderr);
    insta::assert_snapshot!(out.stdout);
    let mut rules: Vec<String> = findings(&out.stdout).into_iter().map(|(r, _)| r).collect();
    rules.sort();
    rules.dedup();
    assert_eq!(
        rules,
        [
            "CleanupInLaterStep",
            "CopyAllBeforeInstall",
            "RootInFinalImage",
            "SecretsUsedInArgOrEnv",
            "ToolchainInFinalStage",
            "UnpinnedBaseImage",
        ]
    );
}

#[test]
fn a_dockerfile_gets_the_same_findings_at_its_lines() {
    let dir = manifest_dir(PRACTICES);
    let manifest = findings(&imgbuild_in(dir.path(), &["lint"]).stdout);
    let out = lint(PRACTICES_DOCKERFILE, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
    let found = findings(&out.stdout);
    let at = |rule: &str, line: usize| (rule.to_owned(), line);
    assert_eq!(
        found,
        [
            at("UnpinnedBaseImage", 1),
            at("RootInFinalImage", 1),
            at("SecretsUsedInArgOrEnv", 2),
            at("SecretsUsedInArgOrEnv", 3),
            at("ToolchainInFinalStage", 5),
            at("CopyAllBeforeInstall", 6),
            at("CleanupInLaterStep", 8),
        ]
    );
    let rules = |list: &[(String, usize)]| {
        let mut rules: Vec<String> = list.iter().map(|(r, _)| r.clone()).collect();
        rules.sort();
        rules
    };
    assert_eq!(rules(&found), rules(&manifest));
}

#[test]
fn a_manifest_can_skip_rules_and_make_findings_errors() {
    let skip_all_six = format!(
        "[lint]\nskip = [\"UnpinnedBaseImage\", \"SecretsUsedInArgOrEnv\", \"CleanupInLaterStep\", \"CopyAllBeforeInstall\", \"ToolchainInFinalStage\", \"RootInFinalImage\"]\n\n{PRACTICES}"
    );
    let dir = manifest_dir(&skip_all_six);
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no findings\n"),
        "{}",
        out.stderr
    );

    let errors = format!("[lint]\nskip = [\"SecretsUsedInArgOrEnv\"]\nerror = true\n\n{PRACTICES}");
    let dir = manifest_dir(&errors);
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.contains("SecretsUsedInArgOrEnv"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("5 checks failed (error=true): lint violation found for rules: CleanupInLaterStep, CopyAllBeforeInstall, RootInFinalImage, ToolchainInFinalStage, UnpinnedBaseImage"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("the build checks failed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[lint] skip"), "{}", out.stderr);

    // Nothing found: error = true changes nothing.
    let clean = "[lint]\nerror = true\n[stages.a]\nfrom = \"scratch\"\n[images.a]\nstage = \"a\"\n";
    let out = imgbuild_in(manifest_dir(clean).path(), &["lint"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no findings\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_manifest_or_lint_table_exits_2() {
    let dir =
        manifest_dir("[lint]\nskip = [\"RootInFinalImag\"]\n[stages.a]\nfrom = \"scratch\"\n");
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown lint rule `RootInFinalImag`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("imgbuild.toml:2:9"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `RootInFinalImage`?"),
        "{}",
        out.stderr
    );

    let dir = manifest_dir("[lint]\nerror = \"yes\"\n");
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("imgbuild.toml:2:9"), "{}", out.stderr);

    let dir = manifest_dir("[stages.a]\nfrom = 3\n");
    assert_eq!(imgbuild_in(dir.path(), &["lint"]).code, 2);
}

#[test]
fn plan_does_not_run_the_best_practice_rules() {
    // RootInFinalImage fires on this manifest under `lint` only.
    let text =
        "[stages.a]\nfrom = \"scratch\"\nentrypoint = [\"/app\"]\n[images.a]\nstage = \"a\"\n";
    let dir = manifest_dir(text);
    let lint = imgbuild_in(dir.path(), &["lint"]);
    assert!(lint.stdout.contains("RootInFinalImage"), "{}", lint.stdout);
    let plan = imgbuild_in(dir.path(), &["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(!plan.stderr.contains("RootInFinalImage"), "{}", plan.stderr);
    let plan = crate::dockerfile::plan("FROM scratch\nCMD [\"/app\"]\n", &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(!plan.stderr.contains("RootInFinalImage"), "{}", plan.stderr);
}

#[test]
fn plan_prints_findings_on_stderr_and_goes_on() {
    let out = plan("FROM scratch AS Build\nCMD run\n", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Plan for Dockerfile"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("Dockerfile:1:1: StageNameCasing: Stage name 'Build' should be lowercase"),
        "{}",
        out.stderr
    );
    let quiet = plan("FROM scratch AS Build\n", &["--quiet"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[test]
fn plan_and_apply_stop_when_findings_are_errors() {
    let text = "# check=error=true\nFROM scratch AS Build\n";
    let out = plan(text, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("StageNameCasing"), "{}", out.stderr);

    let dir = dockerfile_dir(text);
    let store = tempfile::tempdir().unwrap();
    let out = imgbuild_in(
        dir.path(),
        &[
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "-f",
            "Dockerfile",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("the build checks failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn lint_takes_only_the_flags_it_honours() {
    let help = imgbuild(&["lint", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    for flag in [
        "--target",
        "--no-cache",
        "--pull",
        "--insecure-registry",
        "--authfile",
    ] {
        assert!(!help.stdout.contains(flag), "{flag} in:\n{}", help.stdout);
    }
    for flag in [
        "--file",
        "--platform",
        "--build-arg",
        "--json",
        "--explain",
        "[CONTEXT]",
    ] {
        assert!(help.stdout.contains(flag), "{flag} in:\n{}", help.stdout);
    }
    for args in [
        &["--target", "a"][..],
        &["--no-cache"],
        &["--pull", "never"],
        &["--no-cache-filter", "a"],
    ] {
        let out = lint("FROM scratch\n", args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("unexpected argument '{}'", args[0])),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn lint_json_prints_the_findings_and_nothing_else() {
    let clean = lint("FROM scratch\nUSER 65534\n", &["--json"]);
    assert_eq!(
        (clean.code, clean.stdout.as_str()),
        (0, "[]\n"),
        "{}",
        clean.stderr
    );

    let text = lint(MANY, &[]);
    let out = lint(MANY, &["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("only JSON on stdout");
    let findings = json.as_array().unwrap();
    assert_eq!(findings.len(), self::findings(&text.stdout).len());
    let first = &findings[0];
    assert_eq!(first["rule"], "StageNameCasing");
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["location"]["file"], "Dockerfile");
    assert!(
        first["url"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.docker.com/")
    );
    // Best-practice rules have no published page: `url` is null.
    let out = lint("FROM scratch\nCMD [\"/app\"]\n", &["--json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("only JSON on stdout");
    assert_eq!(json[0]["rule"], "RootInFinalImage");
    assert!(json[0]["url"].is_null(), "{json}");
}

#[test]
fn best_practice_findings_point_at_lint_explain() {
    let dir = manifest_dir(PRACTICES);
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert!(
        out.stdout
            .contains("\n  see: imgbuild lint --explain RootInFinalImage\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("book/src"), "{}", out.stdout);
}

#[test]
fn explain_prints_every_rules_section() {
    let rules = imgbuild::lint::buildkit::RULES
        .iter()
        .chain(&imgbuild::practice::RULES);
    for rule in rules {
        let out = imgbuild(&["lint", "--explain", rule.name]);
        assert_eq!(out.code, 0, "{}: {}", rule.name, out.stderr);
        assert!(
            out.stdout.starts_with(&format!("## `{}`\n", rule.name)),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("Fix"), "{}", out.stdout);
        if let Some(url) = rule.url {
            assert!(out.stdout.contains(url), "{}", out.stdout);
        }
    }
    // Any case; a name both sets have shows both sections.
    let both = imgbuild(&["lint", "--explain", "secretsusedinargorenv"]);
    assert_eq!(both.code, 0, "{}", both.stderr);
    assert_eq!(
        both.stdout.matches("## `SecretsUsedInArgOrEnv`\n").count(),
        2
    );
    insta::assert_snapshot!(imgbuild(&["lint", "--explain", "ExposeProtoCasing"]).stdout);

    let unknown = imgbuild(&["lint", "--explain", "RootInFinalImag"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("`RootInFinalImag` is not a lint rule")
            && unknown.stderr.contains("did you mean `RootInFinalImage`?"),
        "{}",
        unknown.stderr
    );
    assert_eq!(unknown.stdout, "");
}

/// `WorkdirRelativePath` judges the path by the target's OS, as `BuildKit`
/// does: `C:\go` is absolute for a Windows target, not for Linux.
#[test]
fn workdir_relative_path_follows_the_target_os() {
    let text = "# escape=`\nFROM scratch\nWORKDIR C:\\go\n";
    let windows = lint(text, &["--platform", "windows/amd64"]);
    assert_eq!(windows.code, 0, "{}", windows.stderr);
    assert_eq!(windows.stdout, "no findings\n");
    let linux = lint(text, &["--platform", "linux/amd64"]);
    assert_eq!(linux.code, 0, "{}", linux.stderr);
    assert!(
        linux.stdout.starts_with(
            "Dockerfile:3:1: WorkdirRelativePath: Relative workdir \"C:\\\\go\" can have unexpected results if the base image changes\n"
        ),
        "{}",
        linux.stdout
    );
}
