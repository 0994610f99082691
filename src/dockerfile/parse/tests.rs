use super::*;

fn case_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(dir)
        .expect("read conformance dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn buildkit_testfiles() {
    let Some(root) = super::super::conformance_dir() else {
        return;
    };
    let dirs = case_dirs(&root.join("parser/testfiles"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(dir.join("Dockerfile")).expect("read Dockerfile");
        let expected = std::fs::read_to_string(dir.join("result")).expect("read result");
        match parse(&text) {
            Err(e) => failures.push(format!("{name}: refused: {e}")),
            Ok(df) => {
                let got = df.dump();
                if got.trim_end() != expected.trim_end() {
                    failures.push(format!(
                        "{name}: dump differs\n--- expected\n{expected}--- got\n{got}"
                    ));
                }
            }
        }
    }
    println!(
        "parser testfiles: {} passed of {}",
        dirs.len() - failures.len(),
        dirs.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty());
}

#[test]
fn buildkit_testfiles_negative() {
    let Some(root) = super::super::conformance_dir() else {
        return;
    };
    let dirs = case_dirs(&root.join("parser/testfiles-negative"));
    let mut accepted = Vec::new();
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).expect("read Dockerfile");
        match parse(&text) {
            Ok(_) => accepted.push(dir.display().to_string()),
            Err(e) => println!("refused as expected: {}: {e}", dir.display()),
        }
    }
    println!(
        "parser testfiles-negative: {} refused of {}",
        dirs.len() - accepted.len(),
        dirs.len()
    );
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

#[test]
fn buildkit_line_numbers() {
    let Some(root) = super::super::conformance_dir() else {
        return;
    };
    let text = std::fs::read_to_string(root.join("parser/testfile-line/Dockerfile")).expect("read");
    let df = parse(&text).expect("parse");
    let lines: Vec<(usize, usize)> = df
        .instructions
        .iter()
        .map(|i| (i.line, i.end_line))
        .collect();
    // Expectations from BuildKit's TestParseIncludesLineNumbers.
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
    for inst in &df.instructions {
        let src = &text[inst.span.clone()];
        assert!(
            src.trim_start().to_lowercase().starts_with(&inst.name),
            "{src:?}"
        );
    }
}

#[test]
fn heredocs() {
    let text = "FROM busybox\nRUN <<EOF cat - <<-'END'\necho $A\nEOF\n\tliteral $B\n\tEND\nCOPY <<file.txt /dst\nhello\nfile.txt\n";
    let df = parse(text).expect("parse");
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!(
        (
            run.heredocs[0].name.as_str(),
            run.heredocs[0].expand,
            run.heredocs[0].chomp
        ),
        ("EOF", true, false)
    );
    assert_eq!(run.heredocs[0].content, "echo $A\n");
    assert_eq!(
        (
            run.heredocs[1].name.as_str(),
            run.heredocs[1].expand,
            run.heredocs[1].chomp
        ),
        ("END", false, true)
    );
    assert_eq!(run.heredocs[1].chomped_content(), "literal $B\n");
    assert_eq!((run.line, run.end_line), (2, 6));
    let copy = &df.instructions[2];
    assert_eq!(copy.heredocs[0].content, "hello\n");
    assert_eq!(
        copy.args,
        InstructionArgs::Words(vec!["<<file.txt".into(), "/dst".into()])
    );
    assert!(parse("FROM a\nRUN <<EOF\nno end\n").is_err());
}

/// `(name, fd, expand, chomp, content)` of each heredoc of instruction
/// `index` of `text`, which must also pass [`parse_for_build`].
fn docs(text: &str, index: usize) -> Vec<(String, u32, bool, bool, String)> {
    let df = parse_for_build(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    df.instructions[index]
        .heredocs
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                h.file_descriptor,
                h.expand,
                h.chomp,
                h.content.clone(),
            )
        })
        .collect()
}

fn doc(
    name: &str,
    fd: u32,
    expand: bool,
    chomp: bool,
    content: &str,
) -> (String, u32, bool, bool, String) {
    (name.to_owned(), fd, expand, chomp, content.to_owned())
}

#[test]
fn heredocs_anywhere_in_the_command() {
    let after_command = "FROM busybox\nRUN python3 <<EOF\nprint(1)\nEOF\nRUN true\n";
    assert_eq!(
        docs(after_command, 1),
        [doc("EOF", 0, true, false, "print(1)\n")]
    );
    let df = parse_for_build(after_command).unwrap();
    assert_eq!(df.instructions.len(), 3);
    assert_eq!(
        (df.instructions[1].line, df.instructions[1].end_line),
        (2, 4)
    );
    assert_eq!(
        df.instructions[1].args,
        InstructionArgs::Shell("python3 <<EOF".into())
    );
    assert_eq!(
        docs("FROM a\nRUN cat <<EOF > /x\nhi\nEOF\n", 1),
        [doc("EOF", 0, true, false, "hi\n")]
    );
    assert_eq!(
        docs("FROM a\nRUN bash -e <<'EOT'\necho $X\nEOT\n", 1),
        [doc("EOT", 0, false, false, "echo $X\n")]
    );
    assert_eq!(
        docs(
            "FROM a\nRUN <<EOF 3<<IN1 awk -f -\nprog\nEOF\ndata\nIN1\n",
            1
        ),
        [
            doc("EOF", 0, true, false, "prog\n"),
            doc("IN1", 3, true, false, "data\n")
        ]
    );
    assert_eq!(
        docs(
            "FROM a\nRUN cat <<A | tr a-z A-Z > x; cat <<-\"B\" >> x\na\nA\n\tb\n\tB\n",
            1
        ),
        [
            doc("A", 0, true, false, "a\n"),
            doc("B", 0, false, true, "\tb\n")
        ]
    );
    assert_eq!(
        docs("FROM a\nCOPY --chmod=0755 <<A <<'B' /dst/\na\nA\nb\nB\n", 1),
        [
            doc("A", 0, true, false, "a\n"),
            doc("B", 0, false, false, "b\n")
        ]
    );
    // A continued command line, then the bodies.
    assert_eq!(
        docs("FROM a\nRUN cat <<A \\\n  > x\nbody\nA\n", 1),
        [doc("A", 0, true, false, "body\n")]
    );
    assert_eq!(
        docs("FROM a\nONBUILD RUN python3 <<EOF\nprint(1)\nEOF\n", 1),
        [doc("EOF", 0, true, false, "print(1)\n")]
    );
    // A body line that looks like an instruction is content.
    assert_eq!(
        docs("FROM a\nRUN sh <<EOF\nFROM b AS a\nEOF\n", 1),
        [doc("EOF", 0, true, false, "FROM b AS a\n")]
    );
}

#[test]
fn heredoc_words() {
    let word = |w: &str| heredoc_word(w).map(|h| (h.name, h.file_descriptor, h.expand, h.chomp));
    assert_eq!(word("<<EOF"), Some(("EOF".into(), 0, true, false)));
    assert_eq!(word("<<-'EOF'"), Some(("EOF".into(), 0, false, true)));
    assert_eq!(word("3<<\"IN\""), Some(("IN".into(), 3, false, false)));
    assert_eq!(word("<<E\"O\"F"), Some(("EOF".into(), 0, false, false)));
    assert_eq!(word("<<EOF cat"), None);
    assert_eq!(word("<<EOF 3<<IN"), None);
    assert_eq!(word("cat <<EOF"), None);
    assert_eq!(word("<<"), None);
}

#[test]
fn unterminated_heredocs_name_their_line_and_column() {
    let err = parse("FROM a\nRUN cat <<EOF > /x\nno end\n").unwrap_err();
    assert_eq!(
        (err.line, err.column, err.message.as_str()),
        (2, 9, "unterminated heredoc")
    );
    assert!(err.help.contains("`EOF`"), "{}", err.help);
    let err = parse("FROM a\nRUN cat <<A \\\n  <<-'B'\na\nA\nb\n").unwrap_err();
    assert_eq!((err.line, err.column), (3, 3));
    assert!(err.help.contains("`B`"), "{}", err.help);
}

#[test]
fn build_checks_after_heredocs_keep_their_positions() {
    let err =
        parse_for_build("FROM a AS x\nRUN cat <<EOF | sh\nFROM\nEOF\nFROM b AS x\n").unwrap_err();
    assert_eq!(
        (err.line, err.column, err.message.as_str()),
        (5, 11, "duplicate stage name 'x'")
    );
}

#[test]
fn flags_directives_and_errors() {
    let df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM --platform=linux/amd64 a AS b\nCOPY --link --from=b x `\n  y\n").expect("parse");
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.directives.escape, '`');
    let copy = &df.instructions[1];
    assert_eq!(
        copy.flags,
        vec![
            ("link".to_string(), None),
            ("from".to_string(), Some("b".to_string()))
        ]
    );
    assert_eq!(
        copy.args,
        InstructionArgs::Words(vec!["x".into(), "y".into()])
    );
    let err = parse("# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(err.line, 1);
    let err = parse("FROM a\n\nENV PATH\n").unwrap_err();
    assert_eq!(
        (err.line, err.message.as_str()),
        (3, "ENV must have two arguments")
    );
    assert!(parse_for_build("CMD [\"a\"]\n").is_err());
    assert!(parse_for_build("FROM a\nRUN b\n").is_ok());
}
