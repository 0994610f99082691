//! Every complete manifest and Dockerfile in the book plans, so the book
//! cannot drift from the code.

use crate::util::{plan_manifest, repo};

/// The TOML code blocks of a Markdown file that define an image.
pub fn manifests(markdown: &str) -> Vec<String> {
    blocks(markdown, "```toml", "[images.")
}

/// The code blocks fenced with `fence` that contain `marker`.
fn blocks(markdown: &str, fence: &str, marker: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with(fence) => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                if block.contains(marker) {
                    blocks.push(block.clone());
                }
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn book_examples_plan() {
    let dir = repo().join("book/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("book/src exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, manifest) in manifests(&text).into_iter().enumerate() {
            let out = plan_manifest(&manifest, &[]);
            assert_eq!(
                out.code,
                0,
                "{} example {}:\n{manifest}\n{}",
                path.display(),
                i + 1,
                out.stderr
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "the book should show complete manifests; found {checked}"
    );
}

/// Every Dockerfile in the book plans; the build checks may print findings.
#[test]
fn book_dockerfiles_plan() {
    let dir = repo().join("book/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("book/src exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, dockerfile) in blocks(&text, "```dockerfile", "FROM ")
            .into_iter()
            .enumerate()
        {
            let out = crate::dockerfile::plan(&dockerfile, &[]);
            assert_eq!(
                out.code,
                0,
                "{} Dockerfile {}:\n{dockerfile}\n{}",
                path.display(),
                i + 1,
                out.stderr
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "the book should show Dockerfiles; found {checked}"
    );
}

/// The output of `command` that `page` shows, and the code block of
/// language `fence` just before it: the file the output is about.
fn shown_output(page: &str, command: &str, fence: &str, first: &str) -> (String, String) {
    let text = std::fs::read_to_string(repo().join("book/src").join(page)).unwrap();
    let console = format!("```console\n$ {command}\n");
    let at = text
        .find(&format!("{console}{first}"))
        .unwrap_or_else(|| panic!("{page} shows the output of `{command}`"));
    let shown_start = at + console.len();
    let shown_end = shown_start + text[shown_start..].find("```").unwrap();
    let before = &text[..at];
    let opening = format!("```{fence}\n");
    let fence_at = before
        .rfind(&opening)
        .unwrap_or_else(|| panic!("{page}: a {fence} block before the output"));
    let body_start = fence_at + opening.len();
    let body = &before[body_start..body_start + before[body_start..].find("```").unwrap()];
    (body.to_owned(), text[shown_start..shown_end].to_owned())
}

/// The `imgbuild lint` output the book shows is what lint prints for the
/// Dockerfile shown just before it.
#[test]
fn book_lint_output_is_current() {
    let (dockerfile, shown) = shown_output(
        "dockerfile.md",
        "imgbuild lint -f Dockerfile",
        "dockerfile",
        "Dockerfile:",
    );
    let dir = crate::dockerfile::dockerfile_dir(&dockerfile);
    let out = crate::util::imgbuild_in(dir.path(), &["lint", "-f", "Dockerfile"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, shown);

    let (manifest, shown) = shown_output("lint.md", "imgbuild lint", "toml", "imgbuild.toml:");
    let dir = crate::util::manifest_dir(&manifest);
    let out = crate::util::imgbuild_in(dir.path(), &["lint"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, shown);
}

/// Each rule's section of the lint page shows a manifest that fires that
/// rule and no other, then fixes that fire nothing; every rule has one.
#[test]
fn lint_rule_examples_fire_their_rule_and_fixes_do_not() {
    let text = std::fs::read_to_string(repo().join("book/src/lint.md")).unwrap();
    let mut documented = Vec::new();
    for section in text.split("\n## ").filter(|s| s.starts_with('`')) {
        let rule = section[1..].split('`').next().unwrap();
        let examples = manifests(section);
        assert!(examples.len() >= 2, "{rule}: an example and its fix");
        for (i, manifest) in examples.iter().enumerate() {
            let dir = crate::util::manifest_dir(manifest);
            let out = crate::util::imgbuild_in(dir.path(), &["lint"]);
            assert_eq!(out.code, 0, "{rule} example {}: {}", i + 1, out.stderr);
            let fired: Vec<&str> = out
                .stdout
                .lines()
                .filter(|l| l.starts_with("imgbuild.toml:"))
                .filter_map(|l| l.split(": ").nth(1))
                .collect();
            if i == 0 {
                assert!(
                    !fired.is_empty() && fired.iter().all(|r| *r == rule),
                    "{rule}'s example should fire it and nothing else:\n{manifest}\n{}",
                    out.stdout
                );
            } else {
                assert_eq!(
                    out.stdout, "no findings\n",
                    "{rule}'s fix {i} should fire nothing:\n{manifest}"
                );
            }
        }
        documented.push(rule.to_owned());
    }
    let rules: Vec<String> = imgbuild::practice::RULES
        .iter()
        .map(|r| r.name.to_owned())
        .collect();
    assert_eq!(
        documented, rules,
        "lint.md has one section per rule, in order"
    );
}

/// Each check's section of the checks page shows a Dockerfile that fires
/// that check, then a fix that does not; every check has one, in order.
#[test]
fn check_examples_fire_their_check_and_fixes_do_not() {
    let text = std::fs::read_to_string(repo().join("book/src/checks.md")).unwrap();
    let mut documented = Vec::new();
    for section in text.split("\n## ").filter(|s| s.starts_with('`')) {
        let rule = section[1..].split('`').next().unwrap();
        // Files imgbuild refuses are `text` blocks, so that they do not
        // have to plan; a `gitignore` block is the context's `.dockerignore`.
        let mut examples = blocks(section, "```dockerfile", "FROM ");
        examples.extend(blocks(section, "```text", "FROM "));
        examples.sort_by_key(|e| section.find(e.as_str()));
        let ignore = blocks(section, "```gitignore", "");
        assert!(examples.len() >= 2, "{rule}: an example and its fix");
        for (i, dockerfile) in examples.iter().enumerate() {
            let dir = crate::dockerfile::dockerfile_dir(dockerfile);
            if let Some(patterns) = ignore.first() {
                std::fs::write(dir.path().join(".dockerignore"), patterns).unwrap();
            }
            let out = crate::util::imgbuild_in(dir.path(), &["lint", "-f", "Dockerfile"]);
            assert!(
                !out.stderr.contains("panicked"),
                "{rule} example {}: {}",
                i + 1,
                out.stderr
            );
            let fired = out
                .stdout
                .lines()
                .any(|l| l.starts_with("Dockerfile:") && l.contains(&format!(": {rule}: ")));
            if i == 0 {
                assert!(
                    fired,
                    "{rule}'s example should fire it:\n{dockerfile}\n{}{}",
                    out.stdout, out.stderr
                );
            } else {
                assert_eq!(out.code, 0, "{rule}'s fix {i}: {}", out.stderr);
                assert!(
                    !fired,
                    "{rule}'s fix {i} should not fire it:\n{dockerfile}\n{}",
                    out.stdout
                );
            }
        }
        documented.push(rule.to_owned());
    }
    let rules: Vec<String> = imgbuild::lint::buildkit::RULES
        .iter()
        .map(|r| r.name.to_owned())
        .collect();
    assert_eq!(
        documented, rules,
        "checks.md has one section per check, in order"
    );
}
