//! Dockerfile semantics through lowering and planning: `BuildKit`'s argument
//! scoping (reference.md "Scope", "Predefined ARGs", "Automatic platform
//! ARGs in the global scope"), config instructions expanded where they are
//! written, and `ONBUILD`.

use indexmap::IndexMap;

use crate::dockerfile::parse_project;
use crate::ir::{Base, Node, Platform, Step};
use crate::plan::{Request, resolve_graph};

fn request(args: &[(&str, &str)]) -> Request {
    Request {
        args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        host: Platform::parse("linux/amd64").unwrap(),
        triggers: Some(std::sync::Arc::new(crate::dockerfile::Triggers)),
        ..Request::default()
    }
}

/// Every node of the graph `text` plans to, by stage name.
fn plan_with(text: &str, args: &[(&str, &str)]) -> IndexMap<String, Node> {
    let project = parse_project("Dockerfile", text).unwrap_or_else(|e| panic!("{e:?}"));
    let mut request = request(args);
    request.targets = project.stages.keys().cloned().collect();
    let graph = resolve_graph(&project, &request).unwrap_or_else(|e| panic!("{e:?}"));
    graph
        .nodes()
        .map(|(_, node)| (node.stage.clone(), node.clone()))
        .collect()
}

fn plan(text: &str) -> IndexMap<String, Node> {
    plan_with(text, &[])
}

fn plan_error(text: &str, args: &[(&str, &str)]) -> String {
    let project = match parse_project("Dockerfile", text) {
        Ok(project) => project,
        Err(e) => {
            return format!(
                "{:?}",
                e.errors.iter().map(|d| &d.message).collect::<Vec<_>>()
            );
        }
    };
    match resolve_graph(&project, &request(args)) {
        Ok(_) => panic!("planning succeeded"),
        Err(e) => format!("{e:?}"),
    }
}

fn label<'n>(node: &'n Node, name: &str) -> &'n str {
    node.config
        .labels
        .get(name)
        .unwrap_or_else(|| panic!("no label {name}: {:?}", node.config.labels))
}

/// The value an `arg` step resolved to, `None` when unset.
fn arg_step<'n>(node: &'n Node, name: &str) -> Option<&'n str> {
    node.steps.iter().find_map(|s| match s {
        Step::Arg { name: n, default } if n == name => Some(default.as_deref()),
        _ => None,
    })?
}

#[test]
fn global_args_are_visible_in_from_only_until_redeclared() {
    let nodes = plan(
        "ARG TAG=1.36\nFROM docker.io/library/busybox:$TAG\nLABEL before=\"${TAG:-unset}\"\nARG TAG\nLABEL after=$TAG\n",
    );
    let node = &nodes["0"];
    assert_eq!(
        node.base,
        Base::Image("docker.io/library/busybox:1.36".into())
    );
    assert_eq!(label(node, "before"), "unset");
    assert_eq!(label(node, "after"), "1.36");
    assert_eq!(arg_step(node, "TAG"), Some("1.36"));
    assert!(
        !node.args.contains_key("TAG"),
        "not visible to run before the ARG: {:?}",
        node.args
    );
}

#[test]
fn a_stage_arg_without_value_or_global_is_unset_not_empty() {
    let nodes = plan(
        "FROM scratch\nARG NAME\nLABEL dash=\"${NAME-x}\" colon=\"${NAME:-y}\"\nARG EMPTY=\nLABEL empty=\"${EMPTY-x}\"\n",
    );
    let node = &nodes["0"];
    assert_eq!(arg_step(node, "NAME"), None);
    assert_eq!(label(node, "dash"), "x");
    assert_eq!(label(node, "colon"), "y");
    assert_eq!(label(node, "empty"), "");
}

#[test]
fn a_global_arg_without_value_is_unset_unless_given() {
    let text = "ARG V\nFROM scratch\nARG V\nLABEL v=\"${V-unset}\"\n";
    assert_eq!(label(&plan(text)["0"], "v"), "unset");
    assert_eq!(label(&plan_with(text, &[("V", "2")])["0"], "v"), "2");
}

#[test]
fn build_args_override_stage_defaults_and_globals() {
    let text = "ARG G=global\nFROM scratch\nARG G\nARG D=default\nLABEL g=$G d=$D\n";
    let node = &plan(text)["0"];
    assert_eq!((label(node, "g"), label(node, "d")), ("global", "default"));
    let node = &plan_with(text, &[("G", "cli-g"), ("D", "cli-d")])["0"];
    assert_eq!((label(node, "g"), label(node, "d")), ("cli-g", "cli-d"));
}

#[test]
fn a_stage_default_wins_over_the_global_value() {
    // BuildKit: the global value only fills an ARG without a default.
    let node = &plan("ARG V=global\nFROM scratch\nARG V=stage\nLABEL v=$V\n")["0"];
    assert_eq!(label(node, "v"), "stage");
}

#[test]
fn global_defaults_see_earlier_globals_and_platform_args() {
    let node = &plan("ARG A=a\nARG B=$A-$TARGETARCH\nFROM scratch\nARG B\nLABEL b=$B\n")["0"];
    assert_eq!(label(node, "b"), "a-amd64");
}

#[test]
fn platform_args_need_declaring_inside_a_stage() {
    let node = &plan(
        "FROM scratch\nLABEL before=\"${TARGETARCH:-unset}\"\nARG TARGETARCH\nARG BUILDPLATFORM\nLABEL arch=$TARGETARCH build=$BUILDPLATFORM\n",
    )["0"];
    assert_eq!(label(node, "before"), "unset");
    assert_eq!(label(node, "arch"), "amd64");
    assert_eq!(label(node, "build"), "linux/amd64");
    assert!(!node.args.contains_key("TARGETARCH"), "{:?}", node.args);
}

#[test]
fn platform_args_are_global_in_from() {
    let nodes = plan(
        "FROM --platform=$BUILDPLATFORM docker.io/library/golang:1.23-$TARGETOS AS build\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build\n",
    );
    let node = &nodes["build"];
    assert_eq!(
        node.base,
        Base::Image("docker.io/library/golang:1.23-linux".into())
    );
    assert_eq!(node.platform.to_string(), "linux/amd64");
}

#[test]
fn a_predefined_arg_with_a_default_takes_the_default() {
    let node = &plan("FROM scratch\nARG TARGETARCH=riscv64\nLABEL arch=$TARGETARCH\n")["0"];
    assert_eq!(label(node, "arch"), "riscv64");
}

#[test]
fn proxy_args_reach_run_but_are_expanded_only_once_declared() {
    let text = "FROM scratch\nLABEL before=\"${HTTP_PROXY:-none}\"\nRUN true\nARG HTTP_PROXY\nLABEL after=$HTTP_PROXY\n";
    let node = &plan_with(text, &[("HTTP_PROXY", "http://proxy:3128")])["0"];
    assert_eq!(
        node.args.get("HTTP_PROXY").map(String::as_str),
        Some("http://proxy:3128")
    );
    assert_eq!(label(node, "before"), "none");
    assert_eq!(label(node, "after"), "http://proxy:3128");
}

#[test]
fn stages_inherit_the_args_of_their_base_stage_only() {
    let nodes = plan(
        "FROM scratch AS base\nARG V=1\n\nFROM base AS child\nLABEL v=\"${V:-unset}\"\n\nFROM scratch AS other\nLABEL v=\"${V:-unset}\"\n",
    );
    assert_eq!(label(&nodes["child"], "v"), "1");
    assert_eq!(nodes["child"].args.get("V").map(String::as_str), Some("1"));
    assert_eq!(label(&nodes["other"], "v"), "unset");
}

#[test]
fn of_arg_and_env_the_later_wins() {
    let node =
        &plan("FROM scratch\nENV A=env\nARG A=arg\nLABEL a=$A\nARG B=arg\nENV B=env\nLABEL b=$B\n")
            ["0"];
    assert_eq!(label(node, "a"), "arg");
    assert_eq!(label(node, "b"), "env");
    // Only ENV reaches the image.
    assert_eq!(node.config.env.get("A").map(String::as_str), Some("env"));
}

#[test]
fn an_inherited_arg_that_hides_an_env_still_does_in_the_child() {
    let nodes =
        plan("FROM scratch AS base\nENV A=env\nARG A=arg\n\nFROM base AS child\nLABEL a=$A\n");
    assert_eq!(label(&nodes["child"], "a"), "arg");
    assert_eq!(
        nodes["child"].start.env.get("A").map(String::as_str),
        Some("arg")
    );
}

#[test]
fn config_instructions_see_the_variables_of_their_line() {
    let node = &plan(
        "FROM scratch\nARG PORT=80\nEXPOSE $PORT\nLABEL x=\"${LATE:-early}\"\nVOLUME /data/${LATE:-early}\nSTOPSIGNAL ${SIG:-SIGTERM}\nENV LATE=late PORT=90 SIG=SIGINT\n",
    )["0"];
    assert_eq!(node.config.expose, ["80/tcp"]);
    assert_eq!(label(node, "x"), "early");
    assert_eq!(node.config.volumes, ["/data/early"]);
    assert_eq!(node.config.stopsignal.as_deref(), Some("SIGTERM"));
}

#[test]
fn expose_reads_ports_as_buildkit_does() {
    let node =
        &plan("FROM scratch\nARG PORTS=\"80 8000-8001/UDP\"\nEXPOSE $PORTS 127.0.0.1:53:53/udp\n")
            ["0"];
    assert_eq!(
        node.config.expose,
        ["80/tcp", "8000/udp", "8001/udp", "53/udp"]
    );
    assert!(plan_error("FROM scratch\nEXPOSE http\n", &[]).contains("invalid port `http`"));
}

#[test]
fn maintainer_sets_the_author_not_a_label() {
    let node = &plan("FROM scratch\nMAINTAINER a@b\nLABEL maintainer=c@d\n")["0"];
    assert_eq!(label(node, "maintainer"), "c@d");
    assert_eq!(node.config.author.as_deref(), Some("a@b"));
    // Taken literally, the last one winning, as BuildKit's dispatchMaintainer.
    let node = &plan("FROM scratch\nMAINTAINER x\nMAINTAINER Jane <j@x> $HOME\n")["0"];
    assert_eq!(node.config.author.as_deref(), Some("Jane <j@x> $HOME"));
    assert!(node.config.labels.is_empty());
}

#[test]
fn onbuild_triggers_are_stored_as_written() {
    let node =
        &plan("FROM scratch\nONBUILD RUN echo $HOME\nonbuild COPY --from=build /out /app\n")["0"];
    assert_eq!(
        node.config.onbuild,
        ["RUN echo $HOME", "COPY --from=build /out /app"]
    );
    assert!(node.steps.is_empty());
}

#[test]
fn forbidden_onbuild_triggers_are_refused() {
    for (text, message) in [
        (
            "FROM scratch\nONBUILD ONBUILD RUN x\n",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM scratch\nONBUILD FROM alpine\n",
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM scratch\nONBUILD MAINTAINER me\n",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM scratch\nONBUILD\n",
            "ONBUILD requires at least one argument",
        ),
    ] {
        let error = plan_error(text, &[]);
        assert!(error.contains(message), "{text}: {error}");
    }
}

#[test]
fn a_stage_runs_the_triggers_of_its_base_stage_first() {
    let nodes = plan(
        "FROM scratch AS build\nCOPY <<'EOF' /out\nbuilt\nEOF\n\nFROM scratch AS toolchain\nENV TOOL=1\nONBUILD ARG TOOL_ARG=x\nONBUILD COPY --from=build /out /from-build\nONBUILD CMD [\"/run\"]\n\nFROM toolchain AS app\nLABEL a=\"$TOOL_ARG\"\n",
    );
    let app = &nodes["app"];
    assert_eq!(app.onbuild_steps, 2);
    assert!(
        matches!(&app.steps[0], Step::Arg { name, default } if name == "TOOL_ARG" && default.as_deref() == Some("x"))
    );
    assert!(
        matches!(&app.steps[1], Step::Copy(c) if c.from.as_deref() == Some("stage:build@linux/amd64"))
    );
    assert_eq!(label(app, "a"), "x");
    assert!(app.config.onbuild.is_empty(), "triggers are not passed on");
    assert!(matches!(&app.config.cmd, Some(crate::ir::Command::Exec(argv)) if argv == &["/run"]));
    assert_eq!(app.base_onbuild.as_ref().map(Vec::len), Some(3));
    assert_eq!(nodes["toolchain"].config.onbuild.len(), 3);
}

#[test]
fn a_base_image_that_cannot_be_read_has_unknown_triggers() {
    let node = &plan("FROM docker.io/library/busybox:1.36\n")["0"];
    assert_eq!(node.base_onbuild, None);
    let node = &plan("FROM scratch\n")["0"];
    assert_eq!(node.base_onbuild, Some(Vec::new()));
}

fn run_mounts(node: &Node) -> Vec<&crate::ir::Mount<String>> {
    node.steps
        .iter()
        .filter_map(|step| match step {
            Step::Run(run) => Some(&run.mounts),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn mount_options_are_expanded_even_the_type() {
    use crate::ir::Mount;
    let text = "FROM scratch\nARG T=cache\nARG ID=c1\nARG DIR=/cache\nARG U=1000\nRUN --mount=type=$T,id=$ID,target=$DIR,uid=$U,mode=0700 true\n";
    let node = &plan(text)["0"];
    assert_eq!(
        run_mounts(node),
        [&Mount::Cache {
            target: "/cache".into(),
            id: Some("c1".into()),
            sharing: crate::ir::Sharing::Shared,
            from: None,
            source: None,
            mode: Some(0o700),
            uid: Some(1000),
            gid: None,
            readonly: false,
        }]
    );
    let node = &plan_with(
        "FROM scratch\nARG T=cache\nRUN --mount=type=$T,target=/t true\n",
        &[("T", "TMPFS")],
    )["0"];
    let error = plan_error(
        "FROM scratch\nARG T=tmpfs\nRUN --mount=type=$T,id=x,target=/t true\n",
        &[],
    );
    assert!(
        error.contains("`id` is not an option of a `tmpfs` mount"),
        "{error}"
    );
    assert!(
        matches!(run_mounts(node)[0], Mount::Tmpfs { .. }),
        "{node:?}"
    );
}

#[test]
fn mount_from_and_copy_from_refuse_variables_as_buildkit_does() {
    let error = plan_error(
        "FROM scratch AS src\nFROM scratch\nARG X=src\nRUN --mount=from=$X,target=/m true\n",
        &[],
    );
    assert!(
        error.contains("'from' doesn't support variable expansion, define alias stage instead"),
        "{error}"
    );
    let error = plan_error(
        "FROM scratch AS src\nFROM scratch\nARG X=src\nCOPY --from=${X} /f /f\n",
        &[],
    );
    assert!(
        error.contains("variable expansion is not supported for --from"),
        "{error}"
    );
}

#[test]
fn build_args_override_the_predefined_args_not_the_platform() {
    let text = "FROM scratch AS a\nARG TARGETOS\nARG TARGETPLATFORM\nLABEL os=$TARGETOS platform=$TARGETPLATFORM\n";
    let node = &plan_with(
        text,
        &[("TARGETOS", "plan9"), ("TARGETPLATFORM", "foo/bar")],
    )["a"];
    assert_eq!(label(node, "os"), "plan9");
    assert_eq!(label(node, "platform"), "foo/bar");
    assert_eq!(node.platform.to_string(), "linux/amd64");
    let base = &plan_with(
        "ARG TARGETARCH\nFROM docker.io/library/alpine:${TARGETARCH}\n",
        &[("TARGETARCH", "riscv64")],
    )["0"];
    assert_eq!(
        base.base,
        Base::Image("docker.io/library/alpine:riscv64".into())
    );
}

/// The graph of `text` for `targets`, by stage name.
fn plan_targets(text: &str, targets: &[&str]) -> IndexMap<String, Node> {
    let project = parse_project("Dockerfile", text).unwrap_or_else(|e| panic!("{e:?}"));
    let mut request = request(&[]);
    request.targets = targets.iter().map(|t| (*t).to_owned()).collect();
    let graph = resolve_graph(&project, &request).unwrap_or_else(|e| panic!("{e:?}"));
    graph
        .nodes()
        .map(|(_, node)| (node.stage.clone(), node.clone()))
        .collect()
}

#[test]
fn targetstage_names_the_stage_being_built() {
    let text = "FROM scratch AS base\nLABEL before=\"${TARGETSTAGE:-unset}\"\nARG TARGETSTAGE\nLABEL stage=$TARGETSTAGE\nFROM base AS foo\nFROM base AS final\n";
    let nodes = plan_targets(text, &[]);
    assert_eq!(label(&nodes["base"], "before"), "unset");
    assert_eq!(label(&nodes["base"], "stage"), "final");
    assert_eq!(label(&plan_targets(text, &["foo"])["base"], "stage"), "foo");
    let unnamed = "FROM scratch\nARG TARGETSTAGE\nLABEL stage=$TARGETSTAGE\n";
    assert_eq!(label(&plan_targets(unnamed, &[])["0"], "stage"), "default");
    let project = parse_project("Dockerfile", unnamed).unwrap();
    let mut request = request(&[("TARGETSTAGE", "mine")]);
    request.targets = vec!["0".to_owned()];
    let graph = resolve_graph(&project, &request).unwrap();
    let node = graph.nodes().next().unwrap().1;
    assert_eq!(label(node, "stage"), "mine");
}

#[test]
fn proxy_args_reach_run_under_both_spellings() {
    let node = &plan_with(
        "FROM scratch\nRUN true\n",
        &[
            ("https_proxy", "http://s:2"),
            ("NO_PROXY", "a"),
            ("no_proxy", "b"),
        ],
    )["0"];
    let arg = |name: &str| node.args.get(name).map(String::as_str);
    assert_eq!(arg("HTTPS_PROXY"), Some("http://s:2"));
    assert_eq!(arg("https_proxy"), Some("http://s:2"));
    assert_eq!(arg("NO_PROXY"), Some("b"));
    assert_eq!(arg("no_proxy"), Some("b"));
    assert_eq!(arg("HTTP_PROXY"), None);
    // Never in the image.
    assert!(
        node.config
            .env
            .keys()
            .all(|k| !k.ends_with("_PROXY") && !k.ends_with("_proxy"))
    );
}

#[test]
fn from_finds_earlier_stages_by_exact_name_only() {
    let nodes = plan("FROM scratch AS Build\nFROM build AS next\n");
    assert_eq!(nodes["next"].base, Base::Stage(nodes["build"].id.clone()));
    for (text, phrase) in [
        (
            "FROM scratch AS build\nFROM BUILD\n",
            "failed to parse stage name \\\"BUILD\\\": invalid reference format",
        ),
        ("FROM scratch\nFROM 0\n", "`FROM 0` names an image"),
        (
            "FROM later AS first\nFROM scratch AS later\n",
            "stage `first` starts from the stage `later`, which is defined after it",
        ),
        ("FROM me AS me\n", "stages form a cycle: me -> me"),
        (
            "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n",
            "cannot copy from stage \\\"b\\\", it needs to be defined before current stage \\\"a\\\"",
        ),
    ] {
        let error = match parse_project("Dockerfile", text) {
            Err(e) => format!("{:?}", e.errors),
            Ok(project) => {
                let mut request = request(&[]);
                request.targets = project.stages.keys().cloned().collect();
                format!("{:?}", resolve_graph(&project, &request).expect_err(text))
            }
        };
        assert!(error.contains(phrase), "{text}: {error}");
    }
}

#[test]
fn a_file_of_global_args_has_no_stages() {
    let error = crate::dockerfile::parse_project("Dockerfile", "ARG A=1\nARG B\n").unwrap_err();
    assert_eq!(
        error.errors[0].message,
        "dockerfile contains no stages to build"
    );
}
