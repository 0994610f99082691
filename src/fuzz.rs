//! Entry points for fuzzing: each takes arbitrary bytes through one input
//! path of imgbuild, as far as it goes without the network or a runtime,
//! and must never panic, overflow its stack or hang. The `cargo fuzz`
//! targets in `fuzz/` call them, and so does the mutation test below, which
//! runs in `cargo test`.

use std::path::Path;

use crate::context::PatternMatcher;
use crate::diagnostic::Diagnostics;
use crate::error::Error;
use crate::plan::{self, Request};

/// Inputs larger than this are cut: the targets look for crashes, not for
/// how long a big file takes.
const MAX_INPUT: usize = 256 * 1024;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(MAX_INPUT)]).into_owned()
}

/// Renders `diagnostics` as the command line does, to reach the renderer.
fn render(diagnostics: Diagnostics) {
    let _ = crate::cli::render_error(&Error::Plan(plan::Error::Invalid(diagnostics)));
}

fn plan_project(project: &crate::ir::Project) {
    let request = Request {
        triggers: Some(std::sync::Arc::new(crate::dockerfile::Triggers)),
        ..Request::default()
    };
    match plan::plan(project, &request) {
        Ok(plan) => {
            let _ = serde_json::to_string(&plan);
        }
        Err(e) => {
            let _ = crate::cli::render_error(&Error::from(e));
        }
    }
}

/// A manifest: parsed, lowered and planned; errors rendered.
pub fn manifest(data: &[u8]) {
    match crate::manifest::parse("imgbuild.toml", &text(data), &crate::dockerfile::Triggers) {
        Ok(project) => plan_project(&project),
        Err(diagnostics) => render(diagnostics),
    }
}

/// A Dockerfile: parsed, lowered, planned, converted and checked; errors rendered.
pub fn dockerfile(data: &[u8]) {
    let text = text(data);
    match crate::dockerfile::parse_project("Dockerfile", &text) {
        Ok(project) => plan_project(&project),
        Err(diagnostics) => render(diagnostics),
    }
    if let Err(diagnostics) = crate::dockerfile::convert("Dockerfile", &text, ".") {
        render(diagnostics);
    }
    let args = indexmap::IndexMap::new();
    let options = crate::dockerfile::check::CheckOptions {
        args: &args,
        target: crate::ir::Platform::host(),
        host: crate::ir::Platform::host(),
        ignore: None,
        base_dir: Path::new("."),
    };
    if let Err(diagnostics) = crate::dockerfile::check_text("Dockerfile", &text, &options) {
        render(diagnostics);
    }
}

/// A shell word: the first line is the word, the others `NAME=value`
/// variables; expanded by the Dockerfile lexer and by the plan's templates.
pub fn shell_word(data: &[u8]) {
    let text = text(data);
    let mut lines = text.lines();
    let word = lines.next().unwrap_or_default();
    let vars: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for escape in ['\\', '`'] {
        let lex = crate::dockerfile::ShellLex::new(escape);
        let _ = lex.process_word(word, &get);
        let _ = lex.process_words(word, &get);
    }
    let _ = crate::ir::template::expand(word, &mut |name| get(name));
}

/// A `.dockerignore`: parsed, compiled and matched against paths made of
/// its own words (those no longer than `PATH_MAX`, as real paths are).
pub fn dockerignore(data: &[u8]) {
    let text = text(data);
    let patterns = crate::context::ignore::parse_dockerignore(&text);
    let Ok(matcher) = PatternMatcher::new(&patterns) else {
        return;
    };
    for path in text.split_whitespace().filter(|p| p.len() <= 4096).take(64) {
        let _ = matcher.excludes(path.as_bytes());
        let _ = matcher.may_include_under(path.as_bytes());
    }
    let _ = matcher.excludes(b"a/b/c".as_slice());
}

/// Layer bytes: extracted into a fresh directory without ownership or
/// device nodes, as an unprivileged build would.
pub fn layer(data: &[u8]) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("imgbuild-fuzz-{}-{n}", std::process::id()));
    let root = dir.join("rootfs");
    if std::fs::create_dir_all(&root).is_err() {
        return;
    }
    let options = crate::layer::ExtractOptions {
        preserve_ownership: false,
        ..crate::layer::ExtractOptions::default()
    };
    let _ = crate::layer::extract_layer(data, &root, &options);
    let escaped = wrote_outside(&dir, &root);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!escaped, "extraction wrote outside its root");
}

/// Whether `dir` has anything but `root` in it.
fn wrote_outside(dir: &Path, root: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|read| read.flatten().any(|e| e.path() != root))
}

#[cfg(test)]
mod tests;
