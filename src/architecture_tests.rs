//! The module layering of `../DESIGN.md` ("Target layout"), as a test: every
//! production file under `src/` is read, its `crate::MODULE` paths (in `use`
//! declarations and in expressions) are its edges, and edges the layout
//! forbids fail the test with the file, the line and the edge.
//!
//! Test code is not production code: files that a `#[cfg(test)] mod NAME;`
//! brings in are skipped, and a file is read only up to its
//! `#[cfg(test)] mod tests`. Comment lines are skipped too, so a doc link to
//! a module above is not an edge.

use std::fmt;
use std::path::{Path, PathBuf};

/// The front ends: siblings, and nothing under them may import them.
const FRONT_ENDS: [&str; 2] = ["dockerfile", "manifest"];

/// The entry points above the library: nothing else imports them.
const ENTRY_POINTS: [&str; 2] = ["cli", "fuzz"];

/// Modules below the front ends and the command line. `error` is the
/// command line's error type, which wraps the front ends' errors.
const BELOW_FRONT_ENDS: [&str; 19] = [
    "ir",
    "lint",
    "practice",
    "plan",
    "scheduler",
    "store",
    "layer",
    "context",
    "exec",
    "copy",
    "image",
    "registry",
    "export",
    "inspect",
    "sbom",
    "progress",
    "diagnostic",
    "util",
    "printer",
];

/// What a module below the front ends must not import (`Error` is
/// `crate::Error`, the command line's error re-exported at the root).
const ABOVE: [&str; 6] = ["dockerfile", "manifest", "cli", "fuzz", "error", "Error"];

/// One `crate::` path in a production file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    /// The file, relative to the crate root (`src/plan/resolve.rs`).
    file: String,
    /// 1-based line of the path.
    line: usize,
    /// The module the file is (`["plan", "resolve"]`; empty for `lib.rs`).
    from: Vec<String>,
    /// The path after `crate::`, up to an item (`["ir", "trigger", "TriggerSyntax"]`).
    to: Vec<String>,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} -> {} (crate::{})",
            self.file,
            self.line,
            display_module(&self.from),
            self.to[0],
            self.to.join("::")
        )
    }
}

fn display_module(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

/// Why the layout forbids `edge`, if it does.
fn forbidden(edge: &Edge) -> Option<String> {
    let from = edge.from.iter().map(String::as_str).collect::<Vec<_>>();
    let to = edge.to.iter().map(String::as_str).collect::<Vec<_>>();
    let (Some(&source), Some(&target)) = (from.first(), to.first()) else {
        return None;
    };
    if source == target {
        return None;
    }
    if ENTRY_POINTS.contains(&target) && !ENTRY_POINTS.contains(&source) {
        return Some(format!(
            "only the entry points ({}) may import `{target}`",
            ENTRY_POINTS.join(", ")
        ));
    }
    if BELOW_FRONT_ENDS.contains(&source) && ABOVE.contains(&target) {
        return Some(format!(
            "`{source}` is below the front ends and the command line; it may not import `{target}`"
        ));
    }
    match source {
        // The IR: the bottom of the front ends, over the lint core only.
        "ir" if !["diagnostic", "util", "lint"].contains(&target) => Some(format!(
            "`ir` may import only `diagnostic`, `util` and the lint core, not `{target}`"
        )),
        // The lint core: rules as data, findings and reports.
        "lint" if !["ir", "diagnostic", "util"].contains(&target) => Some(format!(
            "the lint core may import only `ir`, `diagnostic` and `util`, not `{target}`"
        )),
        // The best-practice rules, over the IR.
        "practice" if !["ir", "lint", "diagnostic", "util"].contains(&target) => Some(format!(
            "`practice` may import only `ir`, `lint`, `diagnostic` and `util`, not `{target}`"
        )),
        "dockerfile" | "manifest" if FRONT_ENDS.contains(&target) => {
            let convert_emits = from.get(1) == Some(&"convert") && target == "manifest";
            (!convert_emits).then(|| {
                format!(
                    "the front ends are siblings: `{}` may not import `{target}` (only `dockerfile::convert` may use `manifest`, to emit)",
                    display_module(&edge.from)
                )
            })
        }
        "dockerfile" | "manifest" if ["plan", "scheduler"].contains(&target) => Some(format!(
            "a front end lowers to the IR; `{source}` may not import `{target}`"
        )),
        _ => None,
    }
}

/// The module a file under `src/` is: `plan/resolve.rs` is `plan::resolve`,
/// `lint/mod.rs` is `lint`, `lib.rs` the crate root.
fn module_of(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

/// The directory a file's child modules are in: `a/b.rs` -> `a/b`,
/// `a/mod.rs` and `lib.rs` -> their own directory.
fn children_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") => parent.to_owned(),
        _ => parent.join(file.file_stem().unwrap_or_default()),
    }
}

/// The line after `lines[at]` that is not blank.
fn next_line<'a>(lines: &[&'a str], at: usize) -> Option<&'a str> {
    lines[at + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
}

/// The name of the module `line` declares in another file (`mod NAME;`).
fn declared_file_module(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("pub ").unwrap_or(line);
    let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
    let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
    Some(name.trim())
}

/// The text of `source` that is production code: up to the line before a
/// `#[cfg(test)]` followed by an inline `mod tests {` (not a `mod tests;`
/// declaration, which production code may follow), without comment lines
/// (kept as blank lines, so line numbers stay right).
fn production_text(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut text = String::with_capacity(source.len());
    for (at, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && next_line(&lines, at).is_some_and(|l| l.starts_with("mod tests {"))
        {
            break;
        }
        if !trimmed.starts_with("//") {
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads `a::b::c` from the start of `text`: the segments, and whether a
/// `::{` group follows them.
fn read_path(text: &str) -> (Vec<String>, Option<&str>) {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let rest_trimmed = rest.trim_start();
        if let Some(group) = rest_trimmed.strip_prefix('{') {
            return (segments, Some(group));
        }
        let end = rest_trimmed
            .find(|c: char| !is_ident(c))
            .unwrap_or(rest_trimmed.len());
        if end == 0 {
            return (segments, None);
        }
        segments.push(rest_trimmed[..end].to_owned());
        match rest_trimmed[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => return (segments, None),
        }
    }
}

/// The items of a `{...}` group that starts `group` (after its `{`), each
/// the text of one item, at the group's own level.
fn group_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// The paths that `text` (what follows `crate::`, or an item of a group)
/// names under `prefix`, nested groups flattened; `self` names the prefix.
fn paths(prefix: &[String], text: &str) -> Vec<Vec<String>> {
    let (segments, group) = read_path(text);
    let mut path = prefix.to_vec();
    path.extend(segments.into_iter().filter(|s| s != "self"));
    match group {
        Some(group) => group_items(group)
            .into_iter()
            .flat_map(|item| paths(&path, item))
            .collect(),
        None if path.is_empty() => Vec::new(),
        None => vec![path],
    }
}

/// Every `crate::` path in `text` (production code of the module `from`,
/// in `file`), one edge per path or per item of a `crate::{...}` group.
fn edges_in(file: &str, from: &[String], text: &str) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let line = text[..at].matches('\n').count() + 1;
        for to in paths(&[], &text[at + "crate::".len()..]) {
            edges.push(Edge {
                file: file.to_owned(),
                line,
                from: from.to_vec(),
                to,
            });
        }
    }
    edges
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The production files under `src` (relative to it), with their text:
/// every `.rs` file but those a `#[cfg(test)] mod NAME;` brings in, and
/// the files under them.
fn production_files(src: &Path) -> Vec<(PathBuf, String)> {
    let mut all = Vec::new();
    rust_files(src, &mut all);
    let texts: Vec<(PathBuf, String)> = all
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path.strip_prefix(src).expect("under src").to_owned(), text)
        })
        .collect();
    let mut test_only: Vec<PathBuf> = Vec::new();
    for (path, text) in &texts {
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if line.trim() != "#[cfg(test)]" {
                continue;
            }
            if let Some(name) = next_line(&lines, at).and_then(declared_file_module) {
                test_only.push(children_dir(path).join(name));
            }
        }
    }
    texts
        .into_iter()
        .filter(|(path, _)| {
            let module = path.with_extension("");
            let module = if module.ends_with("mod") {
                module.parent().unwrap_or(Path::new("")).to_owned()
            } else {
                module
            };
            path != Path::new("main.rs") && !test_only.iter().any(|t| module.starts_with(t))
        })
        .collect()
}

/// The edges of every production file of the crate.
fn crate_edges() -> Vec<Edge> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    production_files(&src)
        .iter()
        .flat_map(|(path, text)| {
            let file = Path::new("src").join(path).display().to_string();
            edges_in(&file, &module_of(path), &production_text(text))
        })
        .collect()
}

#[test]
fn no_module_imports_against_the_layout() {
    let edges = crate_edges();
    // A scan that finds nothing would pass; make sure it reads the crate.
    assert!(
        edges.iter().any(|e| e.from == ["cli"] && e.to[0] == "plan"),
        "the scan found no `cli -> plan` edge: is it reading src/?"
    );
    let violations: Vec<String> = edges
        .iter()
        .filter_map(|edge| forbidden(edge).map(|why| format!("{edge}: {why}")))
        .collect();
    assert!(
        violations.is_empty(),
        "{} import(s) against the layout of DESIGN.md (\"Target layout\"):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_scan_reads_groups_and_stops_at_tests() {
    let text = production_text(
        "use crate::{dockerfile, manifest::{self, emit}};\n// crate::cli in a comment\nfn f() { crate::plan::x(); }\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n",
    );
    let from = ["ir".to_owned()];
    let edges: Vec<String> = edges_in("src/ir/x.rs", &from, &text)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        edges,
        [
            "src/ir/x.rs:1: ir -> dockerfile (crate::dockerfile)",
            "src/ir/x.rs:1: ir -> manifest (crate::manifest)",
            "src/ir/x.rs:1: ir -> manifest (crate::manifest::emit)",
            "src/ir/x.rs:3: ir -> plan (crate::plan::x)",
        ]
    );
    let forbidden_edges = edges_in("src/ir/x.rs", &from, &text)
        .iter()
        .filter(|e| forbidden(e).is_some())
        .count();
    assert_eq!(forbidden_edges, 4);
}

#[test]
fn convert_alone_may_use_the_manifest_front_end() {
    let edge = |file: &str, from: &[&str], to: &str| Edge {
        file: file.to_owned(),
        line: 1,
        from: from.iter().map(|s| (*s).to_owned()).collect(),
        to: vec![to.to_owned()],
    };
    assert!(
        forbidden(&edge(
            "src/dockerfile/convert.rs",
            &["dockerfile", "convert"],
            "manifest"
        ))
        .is_none()
    );
    assert!(
        forbidden(&edge(
            "src/dockerfile/lower.rs",
            &["dockerfile", "lower"],
            "manifest"
        ))
        .is_some()
    );
    assert!(
        forbidden(&edge(
            "src/manifest/lower.rs",
            &["manifest", "lower"],
            "dockerfile"
        ))
        .is_some()
    );
    assert!(forbidden(&edge("src/plan/mod.rs", &["plan"], "dockerfile")).is_some());
    assert!(forbidden(&edge("src/cli/mod.rs", &["cli"], "dockerfile")).is_none());
    assert!(forbidden(&edge("src/store/mod.rs", &["store"], "cli")).is_some());
    assert!(forbidden(&edge("src/ir/mod.rs", &["ir"], "lint")).is_none());
    assert!(forbidden(&edge("src/ir/mod.rs", &["ir"], "practice")).is_some());
    assert!(forbidden(&edge("src/practice.rs", &["practice"], "image")).is_some());
}

// ---------------------------------------------------------------------------
// Size limits ("Done when" of the architecture issue): no production file
// over `MAX_FILE_LINES` lines, no function over `MAX_FN_LINES` lines.
//
// What is measured, and the limits of the scanner:
//
// * A file's size is its number of lines up to its inline
//   `#[cfg(test)] mod tests {` (blank and comment lines count, as in
//   `wc -l`). Files that a `#[cfg(test)] mod NAME;` brings in (`tests.rs`)
//   are not production files and are not measured.
// * A function's size is the lines from its `fn` keyword to its closing
//   brace, both included (signature, comments and blank lines count, so
//   this is stricter than clippy's `too_many_lines`). Every `fn NAME` item
//   with a body is measured, methods and nested functions too (a nested
//   function also counts in its parent); closures are not items and count
//   only in their function.
// * The scanner is lexical: it blanks comments, string literals (raw ones
//   too) and char literals, then matches braces. Braces produced by a macro
//   (`macro_rules!` bodies are read like code) or a `fn` spelled inside a
//   macro's input could fool it; the crate has neither today. `#[cfg(test)]`
//   items other than a trailing `mod tests` block are measured as production.

/// The most lines a production file may have.
const MAX_FILE_LINES: usize = 800;

/// The most lines a function may have, `fn` to closing brace.
const MAX_FN_LINES: usize = 120;

/// Production files and functions known to be over the limits, owned by
/// work in progress elsewhere. An entry is `(file, None)` for a file and
/// `(file, Some(function))` for a function. The list only shrinks: an entry
/// that is no longer over its limit fails the test, so remove it.
const KNOWN_OVER_LIMIT: &[(&str, Option<&str>)] = &[];

/// `source` with comments, string literals and char literals replaced by
/// spaces (newlines kept), so that the braces left are the code's.
fn blank_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if !after_ident && (c == 'r' || (c == 'b' && next == Some('r'))) && {
            let start = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = chars[start..].iter().take_while(|&&h| h == '#').count();
            chars.get(start + hashes) == Some(&'"')
        } {
            let start = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = chars[start..].iter().take_while(|&&h| h == '#').count();
            let body = start + hashes + 1;
            let mut end = body;
            while end < chars.len()
                && !(chars[end] == '"'
                    && chars[end + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes)
            {
                end += 1;
            }
            let end = (end + 1 + hashes).min(chars.len());
            for &skipped in &chars[i..end] {
                blank(&mut out, skipped);
            }
            i = end;
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for &skipped in chars.iter().skip(i).take(step) {
                    blank(&mut out, skipped);
                }
                i += step;
            }
            if i < chars.len() {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&q| q == '\'')
                    .map(|p| i + 2 + p)
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            match close {
                Some(close) => {
                    for &skipped in &chars[i..=close] {
                        blank(&mut out, skipped);
                    }
                    i = close + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The production lines of `source`: those before a `#[cfg(test)]` that a
/// `mod tests {` follows.
fn production_line_count(source: &str) -> usize {
    let lines: Vec<&str> = source.lines().collect();
    lines
        .iter()
        .enumerate()
        .position(|(at, line)| {
            line.trim() == "#[cfg(test)]"
                && next_line(&lines, at).is_some_and(|l| l.starts_with("mod tests {"))
        })
        .unwrap_or(lines.len())
}

/// The functions with a body in `code` (as [`blank_literals`] leaves it):
/// each one's name, 1-based first line and number of lines.
fn functions_in(code: &str) -> Vec<(String, usize, usize)> {
    let bytes = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut functions = Vec::new();
    for (at, _) in code.match_indices("fn") {
        let before_ok = at == 0 || !is_ident(char::from(bytes[at - 1]));
        let rest = &code[at + 2..];
        if !before_ok || !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let rest = rest.trim_start();
        let name_len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if name_len == 0 {
            continue; // `fn(..)`, a function pointer type.
        }
        let name = &rest[..name_len];
        // The body starts at the first `{` outside brackets; a `;` there
        // first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        let signature_start = code.len() - rest.len();
        for (offset, c) in code[signature_start..].char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    open = Some(signature_start + offset);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let mut braces = 0usize;
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => braces += 1,
                '}' => {
                    braces -= 1;
                    if braces == 0 {
                        let first = line_of(at);
                        let last = line_of(open + offset);
                        functions.push((name.to_owned(), first, last - first + 1));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    functions
}

/// Every production file or function over its limit, with its size, as
/// `(file, None or Some(function), line, lines)`.
fn over_limits() -> Vec<(String, Option<String>, usize, usize)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut over = Vec::new();
    for (path, text) in production_files(&src) {
        let file = Path::new("src").join(&path).display().to_string();
        let lines = production_line_count(&text);
        if lines > MAX_FILE_LINES {
            over.push((file.clone(), None, 1, lines));
        }
        let production: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
        for (name, line, size) in functions_in(&blank_literals(&production)) {
            if size > MAX_FN_LINES {
                over.push((file.clone(), Some(name), line, size));
            }
        }
    }
    over
}

#[test]
fn no_production_file_or_function_over_the_size_limits() {
    let over = over_limits();
    let known = |file: &str, function: Option<&str>| {
        KNOWN_OVER_LIMIT
            .iter()
            .any(|&(f, func)| f == file && func == function)
    };
    let violations: Vec<String> = over
        .iter()
        .filter(|(file, function, _, _)| !known(file, function.as_deref()))
        .map(|(file, function, line, size)| match function {
            None => format!("{file}: {size} lines (limit {MAX_FILE_LINES})"),
            Some(name) => format!("{file}:{line}: fn {name}: {size} lines (limit {MAX_FN_LINES})"),
        })
        .collect();
    assert!(
        violations.is_empty(),
        "{} production file(s) or function(s) over the size limits; split them by concept:\n{}",
        violations.len(),
        violations.join("\n")
    );
    let stale: Vec<String> = KNOWN_OVER_LIMIT
        .iter()
        .filter(|&&(file, function)| {
            !over
                .iter()
                .any(|(f, func, _, _)| f == file && func.as_deref() == function)
        })
        .map(|(file, function)| format!("{file} {}", function.unwrap_or("(file)")))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_OVER_LIMIT lists what is now within the limits; remove it:\n{}",
        stale.join("\n")
    );
}

/// Production files that still silence `clippy::too_many_arguments`; the
/// list only shrinks. A function with many inputs takes a struct of them.
const KNOWN_TOO_MANY_ARGUMENTS: &[&str] = &[];

#[test]
fn no_production_code_allows_too_many_arguments() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowing: Vec<String> = production_files(&src)
        .iter()
        .filter(|(_, text)| production_text(text).contains("clippy::too_many_arguments"))
        .map(|(path, _)| Path::new("src").join(path).display().to_string())
        .collect();
    let new: Vec<&String> = allowing
        .iter()
        .filter(|file| !KNOWN_TOO_MANY_ARGUMENTS.contains(&file.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "allow(clippy::too_many_arguments) in {new:?}: pass a struct of the inputs instead"
    );
    let stale: Vec<&&str> = KNOWN_TOO_MANY_ARGUMENTS
        .iter()
        .filter(|file| !allowing.iter().any(|f| f == *file))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_TOO_MANY_ARGUMENTS lists files that no longer allow it; remove {stale:?}"
    );
}

#[test]
fn the_size_scan_sees_through_literals_and_declarations() {
    let code = blank_literals(
        "fn a(x: [u8; 4]) -> &'static str {\n    let b = '{';\n    let s = \"}}{\";\n    let r = r#\"}\"#; // }\n    /* } */\n    \"\"\n}\ntrait T {\n    fn decl(&self);\n    fn with_body(&self) {\n        fn nested() {}\n        let f: fn(u8) = |_| {};\n    }\n}\n",
    );
    assert_eq!(
        functions_in(&code),
        [
            ("a".to_owned(), 1, 7),
            ("with_body".to_owned(), 10, 4),
            ("nested".to_owned(), 11, 1),
        ]
    );
    assert_eq!(
        production_line_count("fn a() {}\n\n#[cfg(test)]\nmod tests {\n    fn b() {}\n}\n"),
        2
    );
}
