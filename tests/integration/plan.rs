//! `imgbuild plan`: what gets resolved, and how.

use crate::util::{imgbuild, plan_json, plan_manifest};

const CROSS: &str = r#"
[args]
VERSION = "1.0"

[stages.tools]
from = "docker.io/library/golang:1.23"
platform = "build"
steps = [{ run = "go install example.com/gen@latest" }]

[stages.build]
from = "stage:tools"
steps = [
  { arg = "TARGETARCH" },
  { run = "GOARCH=$TARGETARCH go build -o /out/app" },
]

[stages.runtime]
from = "scratch"
steps = [{ copy = "/out/app", from = "build", to = "/app" }]

[images.app]
stage = "runtime"
platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
tags = ["example.com/app:${VERSION}"]
"#;

fn node_ids(plan: &serde_json::Value) -> Vec<String> {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A build-platform stage that never reads TARGET* runs once for every
/// target; one that does runs once per target.
#[test]
fn build_platform_stage_runs_once_unless_it_reads_the_target() {
    let plan = plan_json(CROSS, &[]);
    let host = imgbuild::ir::Platform::host().to_string();
    let ids = node_ids(&plan);
    let tools: Vec<&String> = ids.iter().filter(|id| id.starts_with("tools@")).collect();
    assert_eq!(tools, [&format!("tools@{host}")]);
    let builds = ids.iter().filter(|id| id.starts_with("build@")).count();
    assert_eq!(builds, 3, "{ids:?}");
    let runtimes = ids.iter().filter(|id| id.starts_with("runtime@")).count();
    assert_eq!(runtimes, 3);
    assert_eq!(plan["waves"].as_array().unwrap().len(), 3);
}

/// `run` commands reach the shell untouched; args arrive as environment.
#[test]
fn run_commands_are_not_expanded() {
    let plan = plan_json(
        r#"
[args]
N = "5"

[stages.a]
from = "busybox"
steps = [{ run = 'for i in $(seq 1 $N); do echo "$i ${N}"; done' }]

[images.a]
stage = "a"
"#,
        &[],
    );
    let node = &plan["nodes"][0];
    assert_eq!(
        node["steps"][0]["command"]["shell"],
        r#"for i in $(seq 1 $N); do echo "$i ${N}"; done"#
    );
    assert_eq!(node["args"]["N"], "5");
    assert_eq!(
        node["args"]["TARGETARCH"],
        node["platform"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
    );
}

/// Every other field is expanded, with env before args and `--arg` overriding defaults.
#[test]
fn fields_are_expanded_and_args_overridable() {
    let manifest = r#"
[args]
VERSION = "1.0"
BASE = "alpine:${VERSION}"
SUFFIX = ""

[stages.a]
from = "${BASE}"
env = { APP_HOME = "/opt/app-${VERSION}" }
workdir = "${APP_HOME}"
steps = [
  { copy = "app-${VERSION}${SUFFIX:+-}${SUFFIX}.tar", to = "./" },
  { workdir = "../${UNSET:-lib}" },
  { env = { PATH_EXTRA = "${APP_HOME}/bin" } },
]

[images.a]
stage = "a"
tags = ["example.com/a:${VERSION}"]
labels = { version = "${VERSION}" }
"#;
    let plan = plan_json(manifest, &["--arg", "VERSION=2.0", "--arg", "SUFFIX=rc1"]);
    let node = &plan["nodes"][0];
    assert_eq!(node["base"]["name"], "alpine:2.0");
    assert_eq!(node["steps"][0]["sources"][0], "app-2.0-rc1.tar");
    assert_eq!(node["steps"][0]["to"], "/opt/app-2.0/");
    assert_eq!(node["steps"][1]["path"], "/opt/lib");
    assert_eq!(node["steps"][2]["vars"]["PATH_EXTRA"], "/opt/app-2.0/bin");
    assert_eq!(node["config"]["workdir"], "/opt/lib");
    assert_eq!(plan["images"][0]["tags"][0], "example.com/a:2.0");
    assert_eq!(plan["images"][0]["labels"]["version"], "2.0");
}

/// A `default` group is built when no target is named; `--target` picks images or groups.
#[test]
fn targets_select_images_and_groups() {
    let manifest = r#"
[stages.a]
from = "scratch"

[images.one]
stage = "a"
[images.two]
stage = "a"
[images.three]
stage = "a"

[groups]
default = ["pair"]
pair = ["one", "two"]
"#;
    let names = |plan: &serde_json::Value| -> Vec<String> {
        plan["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&plan_json(manifest, &[])), ["one", "two"]);
    assert_eq!(
        names(&plan_json(manifest, &["--target", "three"])),
        ["three"]
    );
    assert_eq!(
        names(&plan_json(
            manifest,
            &["--target", "three", "--target", "pair"]
        )),
        ["three", "one", "two"]
    );
    // The three images share one stage node per platform.
    assert_eq!(
        plan_json(manifest, &["--target", "three", "--target", "pair"])["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `--platform` replaces every image's platforms, comma-separated or repeated.
#[test]
fn platform_flag_overrides_images() {
    let plan = plan_json(
        CROSS,
        &[
            "--platform",
            "linux/arm64,linux/s390x",
            "--platform",
            "aarch64",
        ],
    );
    let platforms: Vec<&str> = plan["images"][0]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/arm64", "linux/s390x"]);
}

/// Stages no requested image needs are not planned.
#[test]
fn unused_stages_are_not_planned() {
    let plan = plan_json(
        "[stages.used]\nfrom = \"scratch\"\n[stages.unused]\nfrom = \"scratch\"\n[images.a]\nstage = \"used\"\n",
        &[],
    );
    assert_eq!(node_ids(&plan).len(), 1);
    assert!(node_ids(&plan)[0].starts_with("used@"));
}

/// Bad command-line values are usage errors: exit code 2 and what to do.
#[test]
fn bad_flags_are_usage_errors() {
    let cases: [(&[&str], &str); 5] = [
        (&["--target", "ap"], "unknown target `ap`"),
        (
            &["--arg", "TARGETARCH=arm64"],
            "`--arg TARGETARCH` cannot be set",
        ),
        (&["--arg", "novalue"], "expected NAME=VALUE"),
        (&["--platform", "linux/amd65"], "did you mean `amd64`?"),
        (&["--frobnicate"], "unexpected argument '--frobnicate'"),
    ];
    for (args, message) in cases {
        let out = plan_manifest(CROSS, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{args:?}: expected {message:?} in {}",
            out.stderr
        );
    }
}

/// An `--arg` nothing declares is a warning, as in docker: the plan is
/// made, and a misspelt name gets a hint. `BuildKit`'s own arguments and
/// the proxies are consumed without a declaration.
#[test]
fn undeclared_args_are_a_warning() {
    let out = plan_manifest(
        CROSS,
        &[
            "--arg",
            "VERSON=1",
            "--arg",
            "EXTRA=x",
            "--arg",
            "BUILDKIT_INLINE_CACHE=1",
            "--arg",
            "SOURCE_DATE_EPOCH=0",
            "--arg",
            "HTTP_PROXY=http://proxy:3128",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stderr, @r"
    [Warning] One or more args [EXTRA VERSON] were not consumed
      help: `--arg VERSON`: did you mean `VERSION`?
    ");
    let quiet = plan_manifest(CROSS, &["-q", "--arg", "EXTRA=x"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");
}

/// A bare `from` that names no stage is an image, even one typo away from
/// a stage (`php` is not `app`); when the image cannot be loaded, the plan
/// suggests the stage.
#[test]
fn bare_from_near_a_stage_is_an_image() {
    let out = plan_manifest(
        "[stages.deps]\nfrom = \"scratch\"\n\n[stages.app]\nfrom = \"dpes\"\nsteps = [{ workdir = \"/w\" }]\n\n[images.app]\nstage = \"app\"\n",
        &["--pull=never"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("base image `dpes` cannot be loaded: docker.io/library/dpes:latest is not in the store")
            && out.stdout.contains("did you mean the stage `deps`? `dpes` names no stage, so it is the image `docker.io/library/dpes`"),
        "{}",
        out.stdout
    );
}

/// A missing manifest says how to name one.
#[test]
fn missing_manifest_is_a_usage_error() {
    let out = imgbuild(&["plan", "-f", "does/not/exist.toml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("cannot read manifest `does/not/exist.toml`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("-f FILE"), "{}", out.stderr);
}

/// A manifest without images has nothing to build.
#[test]
fn manifest_without_images_is_refused() {
    let out = plan_manifest("[stages.a]\nfrom = \"scratch\"\n", &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("defines no images"), "{}", out.stderr);
}

/// Proxy args need no declaration, as in Docker.
#[test]
fn proxy_args_are_accepted() {
    let plan = plan_json(CROSS, &["--arg", "HTTPS_PROXY=http://proxy:3128"]);
    assert_eq!(plan["nodes"][0]["args"]["HTTPS_PROXY"], "http://proxy:3128");
}

/// Every step of a JSON plan says whether it is cached; with an empty store, none is.
#[test]
fn json_plan_has_cache_field() {
    let plan = plan_json(CROSS, &[]);
    assert_eq!(plan["schema_version"], 1);
    for node in plan["nodes"].as_array().unwrap() {
        for step in node["steps"].as_array().unwrap() {
            assert_eq!(step["cache"]["status"], "build", "{step}");
            assert!(step["cache"]["reason"].is_string(), "{step}");
        }
    }
}

/// A node shared by all targets carries no target's values, whichever target
/// was resolved first.
#[test]
fn shared_build_platform_node_has_no_target_args() {
    for platforms in ["linux/amd64,linux/arm64", "linux/arm64,linux/amd64"] {
        let plan = plan_json(CROSS, &["--platform", platforms]);
        let tools = plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["stage"] == "tools")
            .unwrap();
        assert!(tools["args"].get("TARGETARCH").is_none(), "{tools}");
        assert!(tools["args"].get("BUILDARCH").is_some(), "{tools}");
    }
}

/// `arg_scope = "declared"` gives a manifest a Dockerfile's argument rules.
#[test]
fn declared_arg_scope_follows_dockerfile_rules() {
    let manifest = r#"
[build]
arg_scope = "declared"

[args]
VERSION = "1.36"

[stages.base]
from = "docker.io/library/busybox:${VERSION}"
steps = [
  { label = { before = "${VERSION:-unset}" } },
  { arg = "VERSION" },
  { label = { version = "$VERSION" } },
  { arg = "TARGETARCH", default = "riscv64" },
]

[stages.app]
from = "stage:base"
steps = [{ label = { inherited = "$VERSION-$TARGETARCH" } }]

[images.app]
stage = "app"
"#;
    let plan = plan_json(manifest, &[]);
    let nodes = plan["nodes"].as_array().unwrap();
    let base = &nodes[0];
    assert_eq!(base["base"]["name"], "docker.io/library/busybox:1.36");
    let labels = &nodes[1]["config"]["labels"];
    assert_eq!(labels["before"], "unset", "{labels}");
    assert_eq!(labels["version"], "1.36", "{labels}");
    assert_eq!(labels["inherited"], "1.36-riscv64", "{labels}");
    assert_eq!(nodes[1]["args"]["VERSION"], "1.36");
    // The default manifest rules are unchanged: every [args] entry everywhere.
    let everywhere = manifest.replace("arg_scope = \"declared\"", "");
    let everywhere = everywhere.replace(", default = \"riscv64\"", "");
    let plan = plan_json(&everywhere, &[]);
    let labels = &plan["nodes"][1]["config"]["labels"];
    assert_eq!(labels["before"], "1.36", "{labels}");
}

/// An `arg` step takes effect from its position: `run` steps before it do
/// not get it, expanded fields before it do not see it.
#[test]
fn arg_steps_take_effect_where_they_are() {
    let plan = plan_json(
        r#"
[stages.a]
from = "scratch"
steps = [
  { label = { before = "${MODE:-none}" } },
  { arg = "MODE", default = "fast" },
  { label = { after = "$MODE" } },
  { expose = ["80", "8000-8001/udp"] },
  { volume = ["/data"] },
  { stopsignal = "SIGINT" },
]

[images.a]
stage = "a"
"#,
        &[],
    );
    let node = &plan["nodes"][0];
    assert!(node["args"].get("MODE").is_none(), "{}", node["args"]);
    assert_eq!(node["config"]["labels"]["before"], "none");
    assert_eq!(node["config"]["labels"]["after"], "fast");
    assert_eq!(
        node["config"]["expose"],
        serde_json::json!(["80/tcp", "8000/udp", "8001/udp"])
    );
    assert_eq!(node["config"]["volumes"], serde_json::json!(["/data"]));
    assert_eq!(node["config"]["stopsignal"], "SIGINT");
    let kinds: Vec<&str> = node["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["label", "arg", "label", "expose", "volume", "stopsignal"]
    );
}

/// A manifest stage stores `onbuild` triggers, and a stage starting from it runs them.
#[test]
fn manifest_onbuild_triggers_are_stored_and_run() {
    let plan = plan_json(
        r#"
[stages.toolchain]
from = "scratch"
onbuild = ["LABEL from-trigger=yes", "ENV TRIGGERED=1"]

[stages.app]
from = "stage:toolchain"
steps = [{ label = { own = "yes" } }]

[images.app]
stage = "app"
"#,
        &[],
    );
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(
        nodes[0]["config"]["onbuild"],
        serde_json::json!(["LABEL from-trigger=yes", "ENV TRIGGERED=1"])
    );
    let app = &nodes[1];
    assert!(app["config"].get("onbuild").is_none(), "{}", app["config"]);
    assert_eq!(app["config"]["labels"]["from-trigger"], "yes");
    assert_eq!(app["config"]["env"]["TRIGGERED"], "1");
    let steps = app["steps"].as_array().unwrap();
    let flagged: Vec<bool> = steps.iter().map(|s| s.get("onbuild").is_some()).collect();
    assert_eq!(flagged, [true, true, false]);
    let text = plan_manifest(
        "[stages.t]\nfrom = \"scratch\"\nonbuild = [\"RUN make\"]\n[stages.a]\nfrom = \"stage:t\"\n[images.a]\nstage = \"a\"\n",
        &[],
    );
    assert!(
        text.stdout.contains("1. build   (onbuild) run make"),
        "{}",
        text.stdout
    );
}
