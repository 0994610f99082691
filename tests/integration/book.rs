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

/// The `imgbuild lint` output the book shows is what lint prints for the
/// Dockerfile shown just before it.
#[test]
fn book_lint_output_is_current() {
    let text = std::fs::read_to_string(repo().join("book/src/dockerfile.md")).unwrap();
    let console = "```console\n$ imgbuild lint -f Dockerfile\nDockerfile:";
    let at = text.find(console).expect("the book shows lint output");
    let shown_start = at + "```console\n$ imgbuild lint -f Dockerfile\n".len();
    let shown_end = shown_start + text[shown_start..].find("```").unwrap();
    let shown = &text[shown_start..shown_end];
    let before = &text[..at];
    let fence = before
        .rfind("```dockerfile\n")
        .expect("a Dockerfile before the output");
    let body_start = fence + "```dockerfile\n".len();
    let dockerfile = &before[body_start..body_start + before[body_start..].find("```").unwrap()];
    let dir = crate::dockerfile::dockerfile_dir(dockerfile);
    let out = crate::util::imgbuild_in(dir.path(), &["lint", "-f", "Dockerfile"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, shown);
}
