//! One firing and one quiet case per check, mostly `BuildKit`'s own
//! (`frontend/dockerfile/dockerfile_check_test.go`).

use std::path::Path;

use indexmap::IndexMap;

use super::*;
use crate::dockerfile::parse;

fn lint_with(
    text: &str,
    args: &[(&str, &str)],
    ignore: Option<&[&str]>,
) -> Vec<(String, String, usize)> {
    let dockerfile = parse(text).expect("the test Dockerfile parses");
    let source = SourceFile::new("Dockerfile", text);
    let args: IndexMap<String, String> = args
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let ignore = ignore.map(|patterns| {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        PatternMatcher::new(&patterns).unwrap()
    });
    let options = CheckOptions {
        args: &args,
        target: Platform::parse("linux/amd64").unwrap(),
        host: Platform::parse("linux/amd64").unwrap(),
        ignore: ignore.as_ref(),
        base_dir: Path::new("."),
    };
    check(&dockerfile, &source, &options)
        .expect("the check directive is valid")
        .into_iter()
        .map(|f| (f.rule.to_owned(), f.message, f.location.line))
        .collect()
}

fn lint(text: &str) -> Vec<(String, String, usize)> {
    lint_with(text, &[], None)
}

/// The findings of `rule` in `text`, as `(message, line)`.
fn of(rule: &str, findings: &[(String, String, usize)]) -> Vec<(String, usize)> {
    findings
        .iter()
        .filter(|(r, _, _)| r == rule)
        .map(|(_, m, l)| (m.clone(), *l))
        .collect()
}

fn fires(rule: &str, text: &str, message: &str, line: usize) {
    let findings = lint(text);
    assert_eq!(
        of(rule, &findings),
        [(message.to_owned(), line)],
        "{findings:#?}"
    );
}

fn quiet(rule: &str, text: &str) {
    let findings = lint(text);
    assert!(of(rule, &findings).is_empty(), "{findings:#?}");
}

#[test]
fn stage_name_casing() {
    fires(
        "StageNameCasing",
        "FROM scratch AS BadStageName\n",
        "Stage name 'BadStageName' should be lowercase",
        1,
    );
    quiet("StageNameCasing", "FROM scratch AS good-name\n");
}

#[test]
fn from_as_casing() {
    fires(
        "FromAsCasing",
        "FROM scratch as base\nFROM base\n",
        "'as' and 'FROM' keywords' casing do not match",
        1,
    );
    fires(
        "FromAsCasing",
        "from scratch AS base\nfrom base\n",
        "'AS' and 'from' keywords' casing do not match",
        1,
    );
    quiet(
        "FromAsCasing",
        "FROM scratch AS base\nfrom scratch as other\n",
    );
}

#[test]
fn duplicate_stage_name() {
    fires(
        "DuplicateStageName",
        "FROM scratch AS b\nFROM scratch AS b\n",
        "Duplicate stage name \"b\", stage names should be unique",
        2,
    );
    quiet(
        "DuplicateStageName",
        "FROM scratch AS a\nFROM scratch AS b\n",
    );
}

#[test]
fn reserved_stage_name() {
    fires(
        "ReservedStageName",
        "FROM scratch AS scratch\n",
        "Stage name should not use the same name as reserved stage \"scratch\"",
        1,
    );
    quiet("ReservedStageName", "FROM scratch AS base\n");
}

#[test]
fn json_args_recommended() {
    fires(
        "JSONArgsRecommended",
        "FROM scratch\nCMD mycommand\n",
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
        2,
    );
    fires(
        "JSONArgsRecommended",
        "FROM scratch\nENTRYPOINT mycommand\n",
        "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
        2,
    );
    quiet("JSONArgsRecommended", "FROM scratch\nCMD [\"mycommand\"]\n");
    quiet(
        "JSONArgsRecommended",
        "FROM scratch AS base\nSHELL [\"/usr/bin/customshell\"]\n\nFROM base\nCMD mycommand\n",
    );
}

#[test]
fn maintainer_deprecated() {
    fires(
        "MaintainerDeprecated",
        "FROM scratch\nMAINTAINER me@example.org\n",
        "Maintainer instruction is deprecated in favor of using label",
        2,
    );
    quiet(
        "MaintainerDeprecated",
        "FROM scratch\nLABEL org.opencontainers.image.authors=\"me@example.org\"\n",
    );
}

#[test]
fn undefined_arg_in_from() {
    fires(
        "UndefinedArgInFrom",
        "FROM --platform=$BULIDPLATFORM scratch\n",
        "FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)",
        1,
    );
    fires(
        "UndefinedArgInFrom",
        "ARG tag=latest\nFROM busybox:${tag}${version} AS b\n",
        "FROM argument 'version' is not declared",
        2,
    );
    fires(
        "UndefinedArgInFrom",
        "ARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\n",
        "FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)",
        3,
    );
    for quiet_case in [
        "ARG base=scratch\nFROM $base\n",
        "FROM --platform=$BUILDPLATFORM scratch\n",
        "ARG DEBUG\nFROM scratch${DEBUG}\n",
        "ARG DEBUG\nFROM scra${DEBUG:-tch}\n",
    ] {
        quiet("UndefinedArgInFrom", quiet_case);
    }
}

#[test]
fn workdir_relative_path() {
    fires(
        "WorkdirRelativePath",
        "FROM scratch\nWORKDIR app/\n",
        "Relative workdir \"app/\" can have unexpected results if the base image changes",
        2,
    );
    quiet(
        "WorkdirRelativePath",
        "FROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n",
    );
}

/// `BuildKit` judges a path by the stage's OS: `C:\go` is absolute on
/// Windows (with a backtick as the escape character; the default escape makes it `C:go`), and
/// a stage keeps its parent's OS.
#[test]
fn workdir_relative_path_follows_the_stage_os() {
    let windows = "FROM --platform=windows/amd64 scratch AS windows\n";
    quiet(
        "WorkdirRelativePath",
        &format!("# escape=`\n{windows}WORKDIR C:\\go\n"),
    );
    quiet("WorkdirRelativePath", &format!("{windows}WORKDIR C:/go\n"));
    quiet(
        "WorkdirRelativePath",
        &format!("{windows}FROM windows\nWORKDIR C:/app\n"),
    );
    fires(
        "WorkdirRelativePath",
        &format!("{windows}WORKDIR C:\\go\n"),
        "Relative workdir \"C:go\" can have unexpected results if the base image changes",
        2,
    );
    fires(
        "WorkdirRelativePath",
        &format!("{windows}WORKDIR D:/go\n"),
        "Relative workdir \"D:/go\" can have unexpected results if the base image changes",
        2,
    );
    fires(
        "WorkdirRelativePath",
        "FROM scratch\nWORKDIR C:/go\n",
        "Relative workdir \"C:/go\" can have unexpected results if the base image changes",
        2,
    );
}

#[test]
fn windows_absolute_paths() {
    for path in ["C:\\go", "c:/go", "\\go", "/go", "C:\\"] {
        assert!(is_absolute(path, "windows"), "{path}");
    }
    for path in [
        "C:",
        "C:go",
        "D:\\go",
        "go",
        "\\\\server\\share",
        "//server/share",
    ] {
        assert!(!is_absolute(path, "windows"), "{path}");
    }
    assert!(!is_absolute("C:\\go", "linux"));
}

#[test]
fn undefined_var() {
    fires(
        "UndefinedVar",
        "FROM scratch\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n",
        "Usage of undefined variable '$foo'",
        2,
    );
    fires(
        "UndefinedVar",
        "FROM scratch\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nCOPY $DIR_ASSET .\n",
        "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)",
        4,
    );
    fires(
        "UndefinedVar",
        "FROM scratch\nENV PATH=$PAHT:/tmp/bin\n",
        "Usage of undefined variable '$PAHT' (did you mean $PATH?)",
        2,
    );
    for quiet_case in [
        "FROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n",
        "FROM scratch AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n",
        "FROM scratch\nRUN echo $PATH $undefined\n",
        // The base's environment is unknown: nothing can be said.
        "FROM docker.io/library/python:3\nARG VERSION=$PYTHON_VERSION\n",
    ] {
        quiet("UndefinedVar", quiet_case);
    }
}

#[test]
fn multiple_instructions_disallowed() {
    let findings = lint(
        "FROM scratch\nENTRYPOINT [\"/a\"]\nCMD [\"/a\"]\nHEALTHCHECK CMD [\"/a\"]\nENTRYPOINT [\"/b\"]\nCMD [\"/b\"]\nHEALTHCHECK CMD [\"/b\"]\n",
    );
    let message = |name: &str| {
        format!(
            "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
        )
    };
    assert_eq!(
        of("MultipleInstructionsDisallowed", &findings),
        [
            (message("ENTRYPOINT"), 2),
            (message("CMD"), 3),
            (message("HEALTHCHECK"), 4)
        ]
    );
    quiet(
        "MultipleInstructionsDisallowed",
        "FROM scratch AS a\nCMD [\"/a\"]\n\nFROM a AS b\nCMD [\"/b\"]\n",
    );
}

#[test]
fn legacy_key_value_format() {
    let findings = lint("FROM scratch\nENV testkey value\nLABEL key value\n");
    assert_eq!(
        of("LegacyKeyValueFormat", &findings),
        [
            (
                "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format"
                    .to_owned(),
                2
            ),
            (
                "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format"
                    .to_owned(),
                3
            ),
        ]
    );
    quiet(
        "LegacyKeyValueFormat",
        "FROM scratch\nENV testkey=value\nLABEL key=value\n",
    );
}

#[test]
fn redundant_target_platform() {
    fires(
        "RedundantTargetPlatform",
        "FROM --platform=${TARGETPLATFORM} scratch\n",
        "Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior",
        1,
    );
    quiet(
        "RedundantTargetPlatform",
        "FROM --platform=$BUILDPLATFORM scratch\n",
    );
}

#[test]
fn secrets_used_in_arg_or_env() {
    let findings = lint(
        "FROM scratch\nARG SECRET_PASSPHRASE\nENV password=bar secret=baz\nENV git_key=\nENV PUBLIC_KEY=\nARG SECRET_PASSPHRASE_FILE\nARG AUTH_MODULE_VERSION\nENV sunflower=foo\n",
    );
    let message =
        |what: &str| format!("Do not use ARG or ENV instructions for sensitive data ({what})");
    assert_eq!(
        of("SecretsUsedInArgOrEnv", &findings),
        [
            (message("ARG \"SECRET_PASSPHRASE\""), 2),
            (message("ENV \"password\""), 3),
            (message("ENV \"secret\""), 3),
            (message("ENV \"git_key\""), 4),
        ]
    );
    quiet(
        "SecretsUsedInArgOrEnv",
        "FROM scratch\nARG public_token\nENV keyboard=us\n",
    );
}

#[test]
fn invalid_default_arg_in_from() {
    fires(
        "InvalidDefaultArgInFrom",
        "ARG VERSION\nFROM busybox:$VERSION\n",
        "Default value for ARG busybox:$VERSION results in empty or invalid base image name",
        2,
    );
    fires(
        "InvalidDefaultArgInFrom",
        "ARG IMAGE\nFROM $IMAGE\n",
        "Default value for ARG $IMAGE results in empty or invalid base image name",
        2,
    );
    for quiet_case in [
        "ARG TAG=latest\nFROM busybox:${TAG}\n",
        "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
        "ARG TAG\nFROM alpine:${TAG:-3.14}\n",
    ] {
        quiet("InvalidDefaultArgInFrom", quiet_case);
    }
}

#[test]
fn invalid_default_arg_ignores_build_args() {
    let findings = lint_with(
        "ARG VERSION\nFROM busybox:$VERSION\n",
        &[("VERSION", "1.36")],
        None,
    );
    assert_eq!(
        of("InvalidDefaultArgInFrom", &findings).len(),
        1,
        "{findings:#?}"
    );
}

#[test]
fn from_platform_flag_const_disallowed() {
    fires(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=linux/amd64 scratch AS build\n",
        "FROM --platform flag should not use constant value \"linux/amd64\"",
        1,
    );
    quiet(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=linux/amd64 scratch AS build_amd64\n",
    );
    quiet(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=$BUILDPLATFORM scratch AS build\n",
    );
}

#[test]
fn copy_ignored_file() {
    let text = "FROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n";
    let findings = lint_with(text, &[], Some(&["Dockerfile"]));
    assert_eq!(
        of("CopyIgnoredFile", &findings),
        [
            (
                "Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore"
                    .to_owned(),
                2
            ),
            (
                "Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore"
                    .to_owned(),
                3
            ),
        ]
    );
    let root = lint_with("FROM scratch\nCOPY . .\n", &[], Some(&["*"]));
    assert_eq!(
        of("CopyIgnoredFile", &root),
        [(
            "Attempting to Copy file \".\" that is excluded by .dockerignore".to_owned(),
            2
        )]
    );
    for (text, patterns) in [
        (
            "FROM scratch AS base\nCOPY Dockerfile /foobar\n\nFROM base\nCOPY --from=base /foobar /Dockerfile\n",
            &["foobar"][..],
        ),
        (
            "FROM scratch\nCOPY ./Dockerfile .\n",
            &["**", "!Dockerfile"][..],
        ),
        ("FROM scratch\nCOPY . .\n", &[".*"][..]),
    ] {
        let findings = lint_with(text, &[], Some(patterns));
        assert!(
            of("CopyIgnoredFile", &findings).is_empty(),
            "{text}: {findings:#?}"
        );
    }
}

#[test]
fn expose_proto_casing() {
    fires(
        "ExposeProtoCasing",
        "FROM scratch\nEXPOSE 80/TcP\n",
        "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
        2,
    );
    quiet("ExposeProtoCasing", "FROM scratch\nEXPOSE 80/tcp 53/udp\n");
}

#[test]
fn expose_invalid_format() {
    let findings = lint("FROM scratch\nEXPOSE 127.0.0.1:80:80\nEXPOSE 5000:5000\n");
    assert_eq!(
        of("ExposeInvalidFormat", &findings),
        [
            ("EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'".to_owned(), 2),
            ("EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'".to_owned(), 3),
        ]
    );
    quiet("ExposeInvalidFormat", "FROM scratch\nEXPOSE 80\n");
}

#[test]
fn consistent_instruction_casing() {
    fires(
        "ConsistentInstructionCasing",
        "FROM scratch\nCOPY a b\ncopy c d\nRUN x\n",
        "Command 'copy' should match the case of the command majority (uppercase)",
        3,
    );
    quiet("ConsistentInstructionCasing", "from scratch\ncopy a b\n");
}

#[test]
fn no_empty_continuation() {
    fires(
        "NoEmptyContinuation",
        "FROM scratch\nRUN echo a \\\n\n  b\n",
        "Empty continuation line",
        4,
    );
    quiet("NoEmptyContinuation", "FROM scratch\nRUN echo a \\\n  b\n");
}

#[test]
fn check_directive_skips_rules_and_makes_errors() {
    let text = "# check=skip=MaintainerDeprecated,StageNameCasing;error=true\nFROM scratch AS Base\nMAINTAINER me\nCMD run\n";
    let dockerfile = parse(text).unwrap();
    let source = SourceFile::new("Dockerfile", text);
    let args = IndexMap::new();
    let options = CheckOptions {
        args: &args,
        target: Platform::parse("linux/amd64").unwrap(),
        host: Platform::parse("linux/amd64").unwrap(),
        ignore: None,
        base_dir: Path::new("."),
    };
    let findings = check(&dockerfile, &source, &options).unwrap();
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, ["JSONArgsRecommended"]);
    assert!(crate::lint::has_errors(&findings));

    assert!(lint("# check=skip=all\nFROM scratch AS Base\nMAINTAINER me\n").is_empty());

    let bad = parse("# check=skip\nFROM scratch\n").unwrap();
    let source = SourceFile::new("Dockerfile", "# check=skip\nFROM scratch\n");
    let error = check(&bad, &source, &options).unwrap_err();
    assert_eq!(error.line, 1);
    assert!(error.message.contains("invalid check option"), "{error}");
}

#[test]
fn check_comment_above_an_instruction_skips_for_it_only() {
    let text = "FROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me\nMAINTAINER you\n# check=skip=all // only here\nCMD run\n";
    let findings = lint(text);
    assert_eq!(
        of("MaintainerDeprecated", &findings),
        [(
            "Maintainer instruction is deprecated in favor of using label".to_owned(),
            4
        )]
    );
    assert!(
        of("JSONArgsRecommended", &findings).is_empty(),
        "{findings:#?}"
    );
}
