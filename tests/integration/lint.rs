//! `imgbuild lint` and the build checks `plan` and `apply` run on Dockerfiles.

use crate::dockerfile::{dockerfile_dir, plan};
use crate::util::{Output, imgbuild_in, manifest_dir};

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
fn lint_of_a_clean_file_prints_nothing() {
    let out = lint(
        "FROM scratch\nCOPY --chmod=0755 app /app\nENTRYPOINT [\"/app\"]\n",
        &[],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
}

#[test]
fn error_true_makes_findings_fail() {
    let text = "# check=error=true\nFROM scratch AS Build\nCMD run\n";
    let out = lint(text, &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("StageNameCasing"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("lint violation found for rules: JSONArgsRecommended, StageNameCasing"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("the build checks failed"),
        "{}",
        out.stderr
    );
    // With nothing found, error=true changes nothing.
    let out = lint("# check=error=true\nFROM scratch\nCMD [\"run\"]\n", &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn skip_all_turns_every_check_off() {
    let out = lint(
        "# check=skip=all\nFROM scratch AS Build\nMAINTAINER me\nCMD run\n",
        &[],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
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

    let out = lint("FROM scratch\n", &["--target", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("`--target` does not apply"),
        "{}",
        out.stderr
    );

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

#[test]
fn lint_of_a_manifest_checks_it_and_says_there_are_no_checks() {
    let dir = manifest_dir("[stages.a]\nfrom = \"scratch\"\n[images.a]\nstage = \"a\"\n");
    let out = imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no build checks apply to manifests yet"),
        "{}",
        out.stderr
    );
    let dir = manifest_dir("[stages.a]\nfrom = 3\n");
    assert_eq!(imgbuild_in(dir.path(), &["lint"]).code, 2);
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
