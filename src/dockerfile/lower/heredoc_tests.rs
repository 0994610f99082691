//! Heredocs through lowering, pinned to `BuildKit`'s `dispatchRun` and
//! `dispatchCopy` (frontend/dockerfile/docs/reference.md "Here-Documents").

use crate::dockerfile::parse_project;
use crate::ir::{Command, File, Platform, Run, Step, Template};
use crate::plan::{Request, resolve_graph};

/// The steps of the last stage of `text`.
fn steps(text: &str) -> Vec<Step<Template>> {
    let project = parse_project("Dockerfile", text).unwrap_or_else(|e| panic!("{e:?}"));
    project
        .stages
        .values()
        .last()
        .expect("a stage")
        .steps
        .clone()
}

/// The command and interpreter of the only `RUN` of `FROM scratch` + `run`.
fn run(run: &str) -> (String, Option<String>) {
    let steps = steps(&format!("FROM scratch\n{run}"));
    let [
        Step::Run(Run {
            command: Command::Shell(script),
            interpreter,
            ..
        }),
    ] = steps.as_slice()
    else {
        panic!("one shell run step: {steps:?}");
    };
    (script.clone(), interpreter.clone())
}

/// `(path, content, expand, chmod)` of each file step.
fn files(text: &str) -> Vec<(String, String, bool, Option<String>)> {
    steps(text)
        .into_iter()
        .filter_map(|step| match step {
            Step::File(File {
                to,
                content,
                expand,
                chmod,
                ..
            }) => Some((to.value, content.value, expand, chmod.map(|c| c.value))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_that_is_one_heredoc_runs_its_body() {
    assert_eq!(run("RUN <<EOF\necho a\nEOF\n").0, "echo a\n");
    assert_eq!(run("RUN <<'EOF'\necho $A\nEOF\n").0, "echo $A\n");
    assert_eq!(run("RUN <<-EOF\n\techo a\n\t\tb\n\tEOF\n").0, "echo a\nb\n");
    // `BuildKit`'s `MustParseHeredoc` takes a file descriptor prefix too.
    assert_eq!(run("RUN 3<<EOF\necho a\nEOF\n").0, "echo a\n");
    let (script, interpreter) = run("RUN <<EOF\n#!/bin/awk -f\nBEGIN { print 1 }\nEOF\n");
    assert_eq!(script, "#!/bin/awk -f\nBEGIN { print 1 }\n");
    assert_eq!(interpreter.as_deref(), Some("/bin/awk -f"));
}

#[test]
fn any_other_heredoc_run_goes_to_the_shell_whole() {
    assert_eq!(
        run("RUN python3 <<EOF\nprint(1)\nEOF\n").0,
        "python3 <<EOF\nprint(1)\nEOF"
    );
    assert_eq!(
        run("RUN cat <<EOF > /x\nhi\nEOF\n").0,
        "cat <<EOF > /x\nhi\nEOF"
    );
    assert_eq!(
        run("RUN bash -e <<'EOT'\necho $X\nEOT\n").0,
        "bash -e <<'EOT'\necho $X\nEOT"
    );
    assert_eq!(
        run("RUN <<EOF 3<<IN1 awk -f -\nprog\nEOF\ndata\nIN1\n").0,
        "<<EOF 3<<IN1 awk -f -\nprog\nEOF\ndata\nIN1"
    );
    assert_eq!(
        run("RUN cat <<A | tr a-z A-Z > x; cat <<B >> x\na\nA\nb\nB\n").0,
        "cat <<A | tr a-z A-Z > x; cat <<B >> x\na\nA\nb\nB"
    );
    // The shell strips the tabs of `<<-` itself: the body goes as written.
    let (script, interpreter) = run("RUN cat <<-EOF\n\tx\n\tEOF\n");
    assert_eq!(
        (script.as_str(), interpreter),
        ("cat <<-EOF\n\tx\nEOF", None)
    );
    assert_eq!(
        run("RUN --network=none <<EOF echo\nx\nEOF\n").0,
        "<<EOF echo\nx\nEOF"
    );
}

#[test]
fn copy_heredocs_become_files_named_by_their_delimiters() {
    let files = files(
        "FROM scratch\nCOPY <<A <<\"B\" /dst/\na\nA\nb\nB\nCOPY --chmod=0755 <<-EOF /bin/x\n\t#!/bin/sh\n\tEOF\nCOPY <<EOF .\nhere\nEOF\n",
    );
    let expected = [
        ("/dst/A", "a\n", false, None),
        ("/dst/B", "b\n", false, None),
        ("/bin/x", "#!/bin/sh\n", false, Some("0755")),
        ("./EOF", "here\n", false, None),
    ];
    let got: Vec<(&str, &str, bool, Option<&str>)> = files
        .iter()
        .map(|(p, c, e, m)| (p.as_str(), c.as_str(), *e, m.as_deref()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn unquoted_copy_heredocs_expand_like_buildkit() {
    let files = files(
        "FROM scratch\nARG A=1\nCOPY <<X <<'Y' <<Z /d/\n\"$A\" '${A:-b}' \\$A \\\\ $(c) $1$$\nX\n$A \\\nY\nno variables: \\t \\$ \\\\\nZ\n",
    );
    assert_eq!(
        files[0],
        (
            "/d/X".to_owned(),
            "\"$A\" '${A:-b}' \\$A \\\\ \\$(c) \n".to_owned(),
            true,
            None
        )
    );
    assert_eq!(
        files[1],
        ("/d/Y".to_owned(), "$A \\\n".to_owned(), false, None)
    );
    assert_eq!(
        files[2],
        (
            "/d/Z".to_owned(),
            "no variables: t $ \\\n".to_owned(),
            false,
            None
        )
    );
}

#[test]
fn a_heredoc_is_no_copy_destination() {
    let err = parse_project("Dockerfile", "FROM scratch\nCOPY a <<EOF\nx\nEOF\n").unwrap_err();
    assert!(
        err.errors[0]
            .message
            .contains("COPY cannot accept a heredoc as a destination"),
        "{err:?}"
    );
}

#[test]
fn the_plan_expands_heredoc_files_with_args_and_env() {
    let text = "FROM scratch\nARG WHO=world\nENV GREETING=hello\nCOPY <<EOF <<'RAW' /d/\n$GREETING \"${WHO}\" \\$WHO \\\\ $(id) ${UNSET:-x}[$UNSET]\nEOF\n$GREETING\nRAW\n";
    let project = parse_project("Dockerfile", text).unwrap_or_else(|e| panic!("{e:?}"));
    let request = Request {
        args: [("WHO".to_owned(), "there".to_owned())]
            .into_iter()
            .collect(),
        host: Platform::parse("linux/amd64").unwrap(),
        targets: project.stages.keys().cloned().collect(),
        triggers: Some(std::sync::Arc::new(crate::dockerfile::Triggers)),
        ..Request::default()
    };
    let graph = resolve_graph(&project, &request).unwrap_or_else(|e| panic!("{e:?}"));
    let (_, node) = graph.nodes().next().expect("a node");
    let contents: Vec<(&str, &str)> = node
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::File(file) => Some((file.to.as_str(), file.content.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        contents,
        [
            ("/d/EOF", "hello \"there\" $WHO \\ $(id) x[]\n"),
            ("/d/RAW", "$GREETING\n"),
        ]
    );
}
