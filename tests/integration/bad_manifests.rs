//! Every kind of bad manifest gets exit code 2 and an error that names the
//! file, line and column, says what is wrong and what to do.

bad_manifest!(
    unknown_stage_key_suggests_closest,
    "[stages.app]\nfrom = \"scratch\"\nwrokdir = \"/app\"\n",
    "unknown key `wrokdir`",
    3,
    1,
    "did you mean `workdir`?"
);

bad_manifest!(
    unknown_step_key_suggests_closest,
    "[stages.app]\nfrom = \"scratch\"\nsteps = [{ rn = \"true\" }]\n",
    "unknown key `rn`",
    3,
    12,
    "did you mean `run`?"
);

bad_manifest!(
    unknown_top_level_table,
    "[image.app]\nstage = \"app\"\n",
    "unknown key `image`",
    1,
    2,
    "did you mean `images`?"
);

bad_manifest!(
    stage_without_from,
    "[stages.app]\nworkdir = \"/app\"\n",
    "missing key `from`",
    1,
    1,
    "every stage needs `from`"
);

bad_manifest!(
    unknown_stage_reference,
    "[stages.build]\nfrom = \"scratch\"\n\n[stages.app]\nfrom = \"stage:biuld\"\n\n[images.app]\nstage = \"app\"\n",
    "unknown stage `biuld`",
    5,
    8,
    "did you mean `build`?"
);

bad_manifest!(
    cycle_is_named,
    "[stages.a]\nfrom = \"stage:c\"\n\n[stages.b]\nfrom = \"stage:a\"\n\n[stages.c]\nfrom = \"scratch\"\nsteps = [{ copy = \"x\", from = \"b\", to = \"/x\" }]\n",
    "stages form a cycle: a -> c -> b -> a",
    5,
    8,
    "cannot depend on itself"
);

bad_manifest!(
    self_reference_is_a_cycle,
    "[stages.a]\nfrom = \"stage:a\"\n",
    "stages form a cycle: a -> a",
    2,
    8
);

bad_manifest!(
    duplicate_stage_table,
    "[stages.a]\nfrom = \"scratch\"\n\n[stages.a]\nfrom = \"scratch\"\n",
    "duplicate key",
    4,
    9,
    "merge the two or rename one"
);

bad_manifest!(
    invalid_build_platform,
    "[build]\nplatforms = [\"linux/amd64\", \"linux/amd46\"]\n",
    "invalid platform `linux/amd46`",
    2,
    29,
    "did you mean `amd64`?"
);

bad_manifest!(
    invalid_stage_platform,
    "[stages.a]\nfrom = \"scratch\"\nplatform = \"linx/arm64\"\n",
    "invalid platform `linx/arm64`",
    3,
    12,
    "did you mean `linux`?"
);

bad_manifest!(
    unknown_mount_type,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", mounts = [{ type = \"cahce\", target = \"/c\" }] },\n]\n",
    "unknown mount type `cahce`",
    4,
    38,
    "did you mean `cache`?"
);

bad_manifest!(
    mount_option_of_another_type,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", mounts = [{ type = \"secret\", id = \"tok\", sharing = \"locked\" }] },\n]\n",
    "`sharing` is not an option of a `secret` mount",
    4,
    70,
    "a `secret` mount takes: `id`, `target`, `env`"
);

bad_manifest!(
    unknown_cache_sharing,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", mounts = [{ type = \"cache\", target = \"/c\", sharing = \"exclusive\" }] },\n]\n",
    "unknown sharing `exclusive`",
    4,
    72,
    "expected one of: `shared`, `private`, `locked`"
);

bad_manifest!(
    mount_without_target,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", mounts = [{ type = \"tmpfs\", size = \"64m\" }] },\n]\n",
    "`tmpfs` mount has no `target`",
    4,
    29,
    "add `target`"
);

bad_manifest!(
    secret_without_id_or_target,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", mounts = [{ type = \"secret\", required = true }] },\n]\n",
    "`secret` mount has neither `id` nor `target`",
    4,
    29,
    "--secret id=NAME,src=FILE"
);

bad_manifest!(
    two_actions_in_one_step,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", copy = \"x\", to = \"/x\" },\n]\n",
    "step has two actions, `run` and `copy`",
    4,
    26,
    "split it into two steps"
);

bad_manifest!(
    step_without_action,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { to = \"/x\" },\n]\n",
    "step has no action",
    4,
    3,
    "give the step one of: `run`, `copy`"
);

bad_manifest!(
    option_of_another_action,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { copy = \"x\", to = \"/x\", network = \"none\" },\n]\n",
    "`network` does not apply to a `copy` step",
    4,
    38,
    "`network` is an option of `run` steps"
);

bad_manifest!(
    copy_without_destination,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"src/\"] },\n]\n",
    "`copy` step has no `to`",
    4,
    3,
    "add the destination"
);

bad_manifest!(
    unknown_network,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"make\", network = \"nnone\" },\n]\n",
    "unknown network `nnone`",
    4,
    29,
    "did you mean `none`?"
);

bad_manifest!(
    image_of_unknown_stage,
    "[stages.runtime]\nfrom = \"scratch\"\n\n[images.app]\nstage = \"runtme\"\n",
    "unknown stage `runtme`",
    5,
    9,
    "did you mean `runtime`?"
);

bad_manifest!(
    group_of_unknown_image,
    "[stages.a]\nfrom = \"scratch\"\n\n[images.api]\nstage = \"a\"\n\n[groups]\ndefault = [\"api\", \"wrker\"]\n",
    "unknown image or group `wrker`",
    8,
    19
);

bad_manifest!(
    image_and_group_share_a_name,
    "[stages.a]\nfrom = \"scratch\"\n\n[images.api]\nstage = \"a\"\n\n[groups]\napi = [\"api\"]\n",
    "`api` is both an image and a group",
    4,
    9,
    "rename one of them"
);

bad_manifest!(
    invalid_stage_name,
    "[stages.Build]\nfrom = \"scratch\"\n",
    "invalid stage name `Build`",
    1,
    9,
    "lowercase letters"
);

bad_manifest!(
    reserved_stage_name,
    "[stages.scratch]\nfrom = \"alpine\"\n",
    "`scratch` is a reserved name",
    1,
    9
);

bad_manifest!(
    unsupported_variable_operator,
    "[args]\nDIR = \"app\"\n\n[stages.a]\nfrom = \"scratch\"\nworkdir = \"/srv/${DIR^^}\"\n\n[images.a]\nstage = \"a\"\n",
    "unsupported operator `^`",
    6,
    17
);

bad_manifest!(
    required_variable_unset,
    "[args]\nVERSION = \"\"\n\n[stages.a]\nfrom = \"scratch\"\n\n[images.a]\nstage = \"a\"\ntags = [\"app:${VERSION:?set VERSION with --arg}\"]\n",
    "set VERSION with --arg",
    9,
    14
);

bad_manifest!(
    toml_syntax_error,
    "[stages.a]\nfrom = \"scratch\n",
    "invalid basic string",
    2,
    16,
    "fix the TOML syntax"
);

bad_manifest!(
    wrong_value_type,
    "[stages.a]\nfrom = 42\n",
    "invalid type: integer `42`, expected a string",
    2,
    8
);

bad_manifest!(
    invalid_chmod,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  { file = \"x\", to = \"/x\", chmod = \"0789\" },\n]\n",
    "invalid mode `0789`",
    4,
    36,
    "symbolic mode"
);

bad_manifest!(
    invalid_healthcheck_interval,
    "[stages.a]\nfrom = \"scratch\"\nhealthcheck = { test = \"true\", interval = \"30 seconds\" }\n",
    "invalid duration `30 seconds`",
    3,
    43,
    "`1m30s`"
);

bad_manifest!(
    invalid_exposed_port,
    "[stages.a]\nfrom = \"scratch\"\nexpose = [80, \"443/TCP\"]\n",
    "invalid port `443/TCP`",
    3,
    15,
    "`53/udp`"
);

bad_manifest!(
    invalid_image_reference,
    "[stages.a]\nfrom = \"docker.io/library/alpine:-3\"\n",
    "invalid image reference `docker.io/library/alpine:-3`",
    2,
    8,
    "[registry/]repository[:tag]"
);

bad_manifest!(
    tag_used_by_two_images,
    "[stages.a]\nfrom = \"scratch\"\n\n[images.one]\nstage = \"a\"\ntags = [\"app:1\"]\n\n[images.two]\nstage = \"a\"\ntags = [\"app:1\"]\n",
    "tag `app:1` is also a tag of image `one`",
    10,
    9
);

bad_manifest!(
    predefined_argument_declared,
    "[args]\nTARGETARCH = \"amd64\"\n",
    "`TARGETARCH` is predefined",
    2,
    1,
    "imgbuild sets the TARGET*"
);

bad_manifest!(
    empty_run_command,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [{ run = \"  \" }]\n",
    "`run` is empty",
    3,
    18
);

/// Several errors are all reported, in file order, with a count.
#[test]
fn every_error_is_reported() {
    let out = crate::util::plan_manifest(
        "[stages.a]\nfrom = \"scratch\"\nplatform = \"linux/nope\"\nsteps = [\n  { run = \"x\", network = \"lan\" },\n  { copy = \"y\" },\n]\n",
        &[],
    );
    assert_eq!(out.code, 2);
    let first = out
        .stderr
        .find("imgbuild.toml:3:12")
        .expect("platform error");
    let second = out
        .stderr
        .find("imgbuild.toml:5:26")
        .expect("network error");
    let third = out.stderr.find("imgbuild.toml:6:3").expect("copy error");
    assert!(first < second && second < third, "{}", out.stderr);
    assert!(out.stderr.contains("3 errors; fix them and run again."));
}

/// The rendered error shows the source line, so users need not open the file.
#[test]
fn error_shows_the_source_line() {
    let out = crate::util::plan_manifest(
        "[stages.app]\nfrom = \"scratch\"\nwrokdir = \"/app\"\n",
        &[],
    );
    insta::assert_snapshot!(out.stderr);
}

bad_manifest!(
    healthcheck_with_docker_prefix,
    "[stages.a]\nfrom = \"scratch\"\nhealthcheck = { test = [\"CMD\", \"true\"] }\n",
    "`test` starts with `CMD`",
    3,
    24,
    "an argv list runs directly"
);

bad_manifest!(
    fixed_platform_differs_from_parent,
    "[stages.base]\nfrom = \"scratch\"\n\n[stages.tools]\nfrom = \"stage:base\"\nplatform = \"linux/s390x\"\n\n[images.a]\nstage = \"tools\"\nplatforms = [\"linux/amd64\"]\n",
    "stage `tools` runs on linux/s390x but starts from a stage that runs on linux/amd64",
    6,
    12
);

bad_manifest!(
    base_image_that_expands_to_nothing,
    "[args]\nBASE = \"\"\n[stages.app]\nfrom = \"${BASE}\"\n[images.app]\nstage = \"app\"\n",
    "the base image `${BASE}` expands to nothing",
    4,
    8,
    "--arg NAME=VALUE"
);

bad_manifest!(
    unknown_arg_scope,
    "[build]\narg_scope = \"declard\"\n[stages.a]\nfrom = \"scratch\"\n",
    "unknown `arg_scope` `declard`",
    2,
    13,
    "did you mean `declared`?"
);

bad_manifest!(
    onbuild_trigger_that_is_not_an_instruction,
    "[stages.a]\nfrom = \"scratch\"\nonbuild = [\"RUN make\", \"FROM alpine\"]\n",
    "invalid `onbuild` trigger: FROM isn't allowed as an ONBUILD trigger",
    3,
    24,
    "a trigger runs inside the stage"
);

bad_manifest!(
    invalid_port_in_an_expose_step,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [{ expose = [80, \"http\"] }]\n",
    "invalid port `http`",
    3,
    26
);

bad_manifest!(
    predefined_arg_default_in_everywhere_scope,
    "[stages.a]\nfrom = \"scratch\"\nsteps = [{ arg = \"TARGETARCH\", default = \"x\" }]\n",
    "`TARGETARCH` takes its value from the platform",
    3,
    42
);

// A mutation fuzzer found miette panicking on a diagnostic in a very long
// line; the snippet is now a window of the line.
bad_manifest!(
    error_in_a_very_long_line_renders_a_window_of_it,
    &format!(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{}{{ bogus = 1 }}]\n",
        "{ file = \"x\", to = \"/a\" }, ".repeat(3000)
    ),
    "unknown key `bogus`",
    3,
    81012,
    "remove it"
);

#[test]
fn dockerignore_directory_or_outside_link_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "[host-secret-line\n").unwrap();
    let text = "[stages.app]\nfrom = \"scratch\"\nsteps = [{ copy = \".\", to = \"/\" }]\n\n[images.app]\nstage = \"app\"\n";
    let link = crate::util::manifest_dir(text);
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        link.path().join(".dockerignore"),
    )
    .unwrap();
    let directory = crate::util::manifest_dir(text);
    std::fs::create_dir(directory.path().join(".dockerignore")).unwrap();
    for (dir, message) in [
        (&link, "`.dockerignore` is a symlink to"),
        (&directory, "`.dockerignore` is a directory"),
    ] {
        let out = crate::util::imgbuild_in(dir.path(), &["plan"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(message), "{}", out.stderr);
        assert!(!out.stderr.contains("host-secret"), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}
