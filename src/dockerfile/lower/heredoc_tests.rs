//! Heredocs through lowering, pinned to `BuildKit`'s `dispatchRun` and
//! `dispatchCopy` (frontend/dockerfile/docs/reference.md "Here-Documents").

use crate::dockerfile::parse_project;
use crate::ir::{Command, Run, Step, Template};

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
