//! `.dockerignore` patterns with the semantics of Go's `moby/patternmatcher`.
//!
//! The matcher is an independent Rust implementation; its behaviour is pinned
//! by a port of patternmatcher's own test tables (see the tests below).
//!
//! Deliberate differences from the Go code, all on inputs Go mishandles:
//! * A pattern that Go accepts at parse time but whose translated regular
//!   expression is invalid (e.g. `[Local-Only]`, a reversed range) is rejected
//!   by [`PatternMatcher::new`]; Go reports the same `bad pattern` error on the
//!   first match instead, which also fails a Docker build.
//! * Characters are matched by glob rules everywhere: Go copies characters
//!   inside `[...]` and after `\` into its regular expression unescaped, so
//!   `[*]`, `\d` or a lone `^` mean odd regex things there; here they mean the
//!   literal characters, as `filepath.Match` (which Go uses to validate) does.
//!
//! Paths are bytes and need not be UTF-8, as in Go: patterns without
//! wildcards compare bytes, and regular expressions see each byte that is
//! not part of valid UTF-8 as the rune U+FFFD (so `?` matches one such
//! byte), as Go's `regexp` does.

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use bstr::ByteSlice;
use regex::Regex;

use crate::util::path::{InRoot, open_in_root};
use crate::util::utf8::go_runes;

/// A bad pattern: names the pattern and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {message}; fix or remove this line")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

/// How a single compiled pattern is tested (mirrors patternmatcher's match types).
#[derive(Debug, Clone)]
enum Matcher {
    /// No wildcard at all: byte equality.
    Exact,
    /// `literal**`: the path starts with the literal part.
    Prefix(String),
    /// `**literal`: the path ends with the literal part (or equals it without `/`).
    Suffix(String),
    /// Anything else, through a regular expression anchored at both ends.
    Regex(Regex),
}

/// One compiled `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern without the `!`.
    cleaned: String,
    /// `!pattern`: re-includes what earlier patterns excluded.
    exception: bool,
    matcher: Matcher,
}

impl Pattern {
    fn matches(&self, path: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.cleaned.as_bytes(),
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_bytes())
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|rest| path == rest.as_bytes())
            }
            Matcher::Regex(re) => re.is_match(&go_runes(path)),
        }
    }

    /// Whether this pattern matches `path` or any of its parent directories
    /// (`parent` is Go's `filepath.Dir(path)`).
    fn matches_self_or_parent(&self, path: &[u8], parent: &[u8]) -> bool {
        if self.matches(path) {
            return true;
        }
        if parent == b"." {
            return false;
        }
        // Every prefix of `parent` that ends at a `/` or at its end, i.e.
        // strings.Join(dirs[:i+1], "/") for each i.
        parent
            .find_iter("/")
            .map(|i| &parent[..i])
            .chain(std::iter::once(parent))
            .any(|prefix| self.matches(prefix))
    }
}

/// A compiled list of `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    /// Exception patterns with a trailing `/**` or `/*` removed, for
    /// [`PatternMatcher::may_include_under`].
    exception_prefixes: Vec<String>,
    /// Some exception pattern has a wildcard before its trailing glob, so any
    /// excluded directory may contain re-included files.
    exception_wildcards: bool,
}

impl PatternMatcher {
    /// Compiles .dockerignore-style patterns: `#` comments and blank lines are the caller's job (see `parse_dockerignore`); each pattern is cleaned like Go's filepath.Clean, a leading `/` dropped, `!` marks an exception; `**` matches any number of directories; `?`, `*`, `[...]` and `\` escapes as Go's filepath.Match.
    ///
    /// Surrounding whitespace is trimmed (also after `!`) and empty patterns
    /// are skipped; a lone `!` is an error.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        let mut pm = PatternMatcher::default();
        for raw in patterns {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (exception, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            let err = |message: &str| PatternError {
                pattern: raw.clone(),
                message: message.to_owned(),
            };
            if body.is_empty() {
                return Err(err("illegal exclusion pattern: \"!\""));
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            validate_glob(&cleaned).map_err(err)?;
            let matcher = compile(&cleaned).map_err(|m| err(&m))?;
            if exception {
                let prefix = cleaned
                    .strip_suffix("/**")
                    .or_else(|| cleaned.strip_suffix("/*"))
                    .unwrap_or(&cleaned);
                if prefix.contains(['*', '[', ']', '?', '^', '\\']) {
                    pm.exception_wildcards = true;
                }
                pm.exception_prefixes.push(prefix.to_owned());
            }
            pm.patterns.push(Pattern {
                cleaned,
                exception,
                matcher,
            });
        }
        Ok(pm)
    }

    /// Whether `path` (slash-separated, relative to the context root) is excluded, with Docker's rule that a pattern matching a parent directory excludes the path too (`MatchesOrParentMatches`), last match wins, exceptions re-include.
    ///
    /// The context root itself (`""` or `"."`) is never excluded. `path` is
    /// bytes (`&str`, `&[u8]`, `BString`, ...): file names need not be UTF-8.
    pub fn excludes<P: AsRef<[u8]> + ?Sized>(&self, path: &P) -> bool {
        let path = path.as_ref();
        if self.patterns.is_empty() || path.is_empty() || path == b"." {
            return false;
        }
        let parent = go_dir(path);
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exclusion can only flip a non-excluded path and an exception
            // only an excluded one; skip the others (as Go does).
            if pattern.exception != excluded {
                continue;
            }
            if pattern.matches_self_or_parent(path, &parent) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether an excluded directory must still be walked because an exception pattern could re-include something under it (patternmatcher's `Exclusions()`/ buildkit's logic).
    ///
    /// Like buildkit's `fsutil`: never without exceptions; always when some
    /// exception has a wildcard (other than a trailing `/*` or `/**`);
    /// otherwise only when an exception names a path below `dir`.
    pub fn may_include_under<P: AsRef<[u8]> + ?Sized>(&self, dir: &P) -> bool {
        if self.exception_prefixes.is_empty() {
            return false;
        }
        if self.exception_wildcards {
            return true;
        }
        let dir = dir.as_ref().trim_end_with(|c| c == '/');
        self.exception_prefixes.iter().any(|p| {
            // strings.HasPrefix(p + "/", dir + "/") without allocating.
            p.as_bytes()
                .strip_prefix(dir)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
        })
    }

    /// Whether there are no patterns (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a pattern excludes every entry of the context root (`*`,
    /// `**` or `**/*`), so copying the root itself copies nothing.
    pub fn ignores_everything(&self) -> bool {
        self.patterns
            .iter()
            .any(|p| !p.exception && matches!(p.cleaned.as_str(), "*" | "**" | "**/*"))
    }

    /// Whether any pattern is an exception (`!pattern`); Go's `Exclusions()`.
    pub fn has_exceptions(&self) -> bool {
        !self.exception_prefixes.is_empty()
    }
}

/// Reads `.dockerignore` lines: strips comments (`#` at line start), blank lines, surrounding whitespace; keeps `!`.
///
/// Like moby's `ignorefile.ReadAll`: a UTF-8 BOM is dropped, a line is a
/// comment only if `#` is its very first byte, whitespace after `!` is
/// dropped, patterns are cleaned like `filepath.Clean` and lose a leading `/`.
pub fn parse_dockerignore(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (invert, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut pattern = String::new();
        if !body.is_empty() {
            pattern = clean(body);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        if invert {
            pattern.insert(0, '!');
        }
        out.push(pattern);
    }
    out
}

/// An ignore file of a build: `name` in directory `root` (the context, or the
/// Dockerfile's directory for `<Dockerfile>.dockerignore`). It is read only
/// from inside `root`: see [`read_ignore_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreFile {
    /// The directory the file is in; symlinks are followed only inside it.
    pub root: PathBuf,
    /// The file's name in `root`.
    pub name: OsString,
    /// `<Dockerfile>.dockerignore`, whose root is the Dockerfile's directory.
    pub beside_dockerfile: bool,
}

impl IgnoreFile {
    /// The file's path, for messages: `root/name` without `.` components.
    pub fn path(&self) -> PathBuf {
        self.shown_root().join(&self.name)
    }

    /// `root` without `.` components (empty for the current directory).
    fn shown_root(&self) -> PathBuf {
        self.root
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }
}

/// The ignore file for a context: `<dockerfile name>.dockerignore` next to the Dockerfile when given and present, else `<context>/.dockerignore`, else none.
///
/// "Present" means any directory entry of that name, even a directory or a
/// dangling symlink, so that [`read_ignore_file`] can refuse it instead of the
/// build silently going without it. `dockerfile` is used as a filesystem path
/// as given (resolve it against the context first if it is context-relative).
pub fn find_ignore_file(context: &Path, dockerfile: Option<&Path>) -> Option<IgnoreFile> {
    let present = |file: &IgnoreFile| file.path().symlink_metadata().is_ok();
    if let Some(df) = dockerfile
        && let Some(name) = df.file_name()
    {
        let mut ignore_name = name.to_os_string();
        ignore_name.push(".dockerignore");
        let candidate = IgnoreFile {
            root: df
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            name: ignore_name,
            beside_dockerfile: true,
        };
        if present(&candidate) {
            return Some(candidate);
        }
    }
    let candidate = IgnoreFile {
        root: context.to_path_buf(),
        name: OsString::from(".dockerignore"),
        beside_dockerfile: false,
    };
    present(&candidate).then_some(candidate)
}

/// Why an ignore file cannot be used. Messages name the file; none quotes
/// content from outside the file's root, since nothing there is read.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreFileError {
    /// The ignore file is a directory, device, FIFO or socket (or a symlink
    /// to one inside the root).
    #[error("`{}` is {kind}, not a file of ignore patterns", path.display())]
    NotAFile {
        /// The ignore file.
        path: PathBuf,
        /// What it is: "a directory", "a symlink to a FIFO", ….
        kind: String,
    },
    /// The ignore file is a symlink that leads to no file inside its root:
    /// it points outside (links are resolved as if the root were `/`), is
    /// dangling, or loops.
    #[error(
        "`{}` is a symlink to `{}`, which is not a file inside `{}`; the ignore file is read only from inside {}",
        path.display(),
        target.display(),
        root.display(),
        if *beside_dockerfile { "the Dockerfile's directory" } else { "the build context" }
    )]
    OutsideRoot {
        /// The ignore file.
        path: PathBuf,
        /// The link's target, as written.
        target: PathBuf,
        /// The directory it must stay in.
        root: PathBuf,
        /// Whether `root` is the Dockerfile's directory (else the context).
        beside_dockerfile: bool,
    },
    /// Reading the file failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The ignore file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A pattern in the file is invalid.
    #[error("`{}`: {source}", path.display())]
    Pattern {
        /// The ignore file.
        path: PathBuf,
        /// The bad pattern.
        #[source]
        source: PatternError,
    },
}

impl IgnoreFileError {
    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            IgnoreFileError::NotAFile { .. } => {
                "the ignore file must be a regular file of patterns: rename or remove the directory (or device) there, and write the patterns to a regular file of that name"
            }
            IgnoreFileError::OutsideRoot { .. } => {
                "links are followed only inside that directory, as if it were `/`: replace the link with a copy of the file it points to"
            }
            IgnoreFileError::Io { .. } => "make the file readable UTF-8 text",
            IgnoreFileError::Pattern { .. } => "patterns follow Docker's .dockerignore syntax",
        }
    }
}

/// Reads an ignore file without reading a byte outside its root.
///
/// Symlinks are followed the way buildkit follows them in the context it was
/// sent: inside the root only, as if the root were `/` (an absolute target or
/// `..` never leaves it). The walk goes one component at a time through
/// directory handles and never lets the kernel follow a link, so a path that
/// changes meanwhile cannot lead out either. Anything but a regular file at
/// the end is refused: buildkit silently builds without such an ignore file,
/// which would send files the user meant to leave out.
pub fn read_ignore_file(file: &IgnoreFile) -> Result<String, IgnoreFileError> {
    use std::io::Read as _;
    let path = file.path();
    let io = |source: std::io::Error| IgnoreFileError::Io {
        path: path.clone(),
        source,
    };
    let link = match path.symlink_metadata() {
        Ok(meta) if meta.file_type().is_symlink() => Some(std::fs::read_link(&path).map_err(io)?),
        Ok(_) => None,
        Err(e) => return Err(io(e)),
    };
    match open_in_root(&file.root, &file.name).map_err(io)? {
        InRoot::File(mut f) => {
            let mut text = String::new();
            f.read_to_string(&mut text).map_err(io)?;
            Ok(text)
        }
        InRoot::Other(kind) => Err(IgnoreFileError::NotAFile {
            path: path.clone(),
            kind: if link.is_some() {
                format!("a symlink to {kind}")
            } else {
                kind.to_owned()
            },
        }),
        InRoot::Missing => match link {
            Some(target) => Err(IgnoreFileError::OutsideRoot {
                path: path.clone(),
                target,
                root: match file.shown_root() {
                    root if root.as_os_str().is_empty() => PathBuf::from("."),
                    root => root,
                },
                beside_dockerfile: file.beside_dockerfile,
            }),
            None => Err(io(std::io::ErrorKind::NotFound.into())),
        },
    }
}

/// Adds exceptions so the ignore file and the Dockerfile are always part of
/// the context, as the classic `docker build` CLI does
/// (`TrimBuildFilesFromExcludes`); `dockerfile` is relative to the context
/// with `/` separators, `None` when it comes from stdin. [`walk`](fn@crate::context::walk)
/// does not do this by itself (buildkit behaviour).
pub fn keep_build_files(
    mut patterns: Vec<String>,
    dockerfile: Option<&str>,
) -> Result<Vec<String>, PatternError> {
    let pm = PatternMatcher::new(&patterns)?;
    let keep_ignore = pm.excludes(".dockerignore");
    let keep_dockerfile = dockerfile.filter(|df| pm.excludes(&clean(df)));
    if keep_ignore {
        patterns.push("!.dockerignore".to_owned());
    }
    if let Some(df) = keep_dockerfile {
        patterns.push(format!("!{df}"));
    }
    Ok(patterns)
}

/// Lexical path cleaning with `/` separators, like Go's `path.Clean`.
pub(crate) fn clean(path: &str) -> String {
    String::from_utf8(clean_bytes(path.as_bytes())).expect("cleaning a str splits it at `/` only")
}

/// [`clean`] on bytes, which need not be UTF-8.
fn clean_bytes(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path.starts_with(b"/");
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split_str("/") {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(b"..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join(&b'/');
    match (rooted, joined.is_empty()) {
        (true, _) => [&b"/"[..], &joined].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on a slash path.
fn go_dir(path: &[u8]) -> Cow<'_, [u8]> {
    match path.rfind_byte(b'/') {
        None => Cow::Borrowed(b"."),
        Some(i) => {
            let head = &path[..i];
            if is_clean(head) {
                head.into()
            } else {
                clean_bytes(&path[..=i]).into()
            }
        }
    }
}

fn is_clean(p: &[u8]) -> bool {
    !p.is_empty()
        && !p.ends_with(b"/")
        && p.split_str("/")
            .enumerate()
            .all(|(i, c)| !matches!(c, b"." | b"..") && (i == 0 || !c.is_empty()))
}

/// Checks glob syntax exactly as Go's `filepath.Match(pattern, ".")` does (Go
/// validates the whole pattern): `[` must start a non-empty class whose items
/// are chars or ranges `a-b` (`-` and `]` only escaped), closed by `]`; `\`
/// must escape something.
fn validate_glob(pattern: &str) -> Result<(), &'static str> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => {
                return Err("syntax error in pattern: trailing backslash");
            }
            '[' => {
                parse_class(&mut chars).ok_or("syntax error in pattern: malformed [...] class")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A parsed `[...]` class: negated flag and inclusive ranges.
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

/// Parses a class body after its `[`, with Go's `filepath.Match` rules.
fn parse_class(chars: &mut std::str::Chars<'_>) -> Option<Class> {
    // A class item: a char other than `-`/`]`, or `\` + any char; it must be
    // followed by something (Go's getEsc).
    fn item(chars: &mut std::str::Chars<'_>) -> Option<char> {
        let c = match chars.next()? {
            '-' | ']' => return None,
            '\\' => chars.next()?,
            c => c,
        };
        if chars.as_str().is_empty() {
            return None;
        }
        Some(c)
    }
    let mut class = Class {
        negated: false,
        ranges: Vec::new(),
    };
    if chars.as_str().starts_with('^') {
        chars.next();
        class.negated = true;
    }
    loop {
        if !class.ranges.is_empty() && chars.as_str().starts_with(']') {
            chars.next();
            return Some(class);
        }
        let lo = item(chars)?;
        let mut hi = lo;
        if chars.as_str().starts_with('-') {
            chars.next();
            hi = item(chars)?;
        }
        class.ranges.push((lo, hi));
    }
}

fn push_escaped(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Translates a validated, cleaned pattern (patternmatcher's match types).
fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.as_str().starts_with('*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.as_str().starts_with('/') {
                    chars.next();
                }
                if chars.as_str().is_empty() {
                    // Trailing `**` accepts everything, like .gitignore.
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    // Any number of directories, including none.
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '\\' => {
                let escaped = chars.next().ok_or("trailing backslash")?;
                push_escaped(&mut re, escaped);
                kind = Kind::Regex;
            }
            '[' => {
                let class = parse_class(&mut chars).ok_or("malformed [...] class")?;
                re.push('[');
                if class.negated {
                    re.push('^');
                }
                for (lo, hi) in class.ranges {
                    push_escaped(&mut re, lo);
                    if hi != lo {
                        re.push('-');
                        push_escaped(&mut re, hi);
                    }
                }
                re.push(']');
                kind = Kind::Regex;
            }
            ']' => {
                re.push_str("\\]");
                kind = Kind::Regex;
            }
            c => push_escaped(&mut re, c),
        }
        first = false;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_owned()),
        Kind::Regex => {
            re.push('$');
            let regex = Regex::new(&re).map_err(|e| match e {
                regex::Error::Syntax(msg) => {
                    format!("cannot be translated to a regular expression: {msg}")
                }
                other => other.to_string(),
            })?;
            Matcher::Regex(regex)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(patterns: &[&str]) -> Result<PatternMatcher, PatternError> {
        PatternMatcher::new(&patterns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    /// patternmatcher's package-level `Matches`/`MatchesOrParentMatches`
    /// helper: cleans the path and never matches `.`.
    fn matches(file: &str, patterns: &[&str]) -> Result<bool, PatternError> {
        let m = pm(patterns)?;
        let file = clean(file);
        Ok(m.excludes(&file))
    }

    #[test]
    fn wildcard_matches() {
        assert!(matches("fileutils.go", &["*"]).unwrap());
    }

    #[test]
    fn pattern_matches() {
        assert!(matches("fileutils.go", &["*.go"]).unwrap());
    }

    #[test]
    fn exclusion_pattern_matches_pattern_before() {
        assert!(matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
    }

    #[test]
    fn pattern_matches_folder_exclusions() {
        assert!(!matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
    }

    #[test]
    fn exclusion_pattern_matches_pattern_after() {
        assert!(!matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
    }

    #[test]
    fn exclusion_pattern_matches_whole_directory() {
        assert!(!matches(".", &["*.go"]).unwrap());
        assert!(!matches(".", &["**"]).unwrap());
    }

    #[test]
    fn single_exclamation_error() {
        let err = matches("fileutils.go", &["!"]).unwrap_err();
        assert_eq!(err.pattern, "!");
        assert!(err.message.contains("illegal exclusion pattern"));
        assert!(pm(&["  ! "]).is_err());
    }

    #[test]
    fn matches_with_no_patterns() {
        assert!(!matches("/any/path/there", &[]).unwrap());
        assert!(pm(&[]).unwrap().is_empty());
    }

    #[test]
    fn matches_with_malformed_patterns() {
        let err = matches("/any/path/there", &["["]).unwrap_err();
        assert_eq!(err.pattern, "[");
        assert!(err.to_string().contains("\"[\""), "{err}");
    }

    /// `patternmatcher_test.go` `TestMatches`: single pattern, path, expected.
    const MATCHES: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true), // weird one
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        // Appended on non-Windows.
        ("a\\*b", "a*b", true),
    ];

    /// `patternmatcher_test.go` `TestMatches` multi-pattern cases.
    const MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];

    #[test]
    fn matches_or_parent_matches_table() {
        let mut failures = Vec::new();
        for &(pattern, text, want) in MATCHES {
            let m = pm(&[pattern]).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
            if m.excludes(text) != want {
                failures.push(format!("pattern={pattern:?} text={text:?} want={want}"));
            }
        }
        for &(patterns, text, want) in MULTI {
            let m = pm(patterns).unwrap();
            if m.excludes(text) != want {
                failures.push(format!("patterns={patterns:?} text={text:?} want={want}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn clean_patterns() {
        assert_eq!(pm(&["docs", "config"]).unwrap().patterns.len(), 2);
        assert_eq!(pm(&["docs", "config", ""]).unwrap().patterns.len(), 2);
    }

    #[test]
    fn clean_patterns_exception_flag() {
        assert!(pm(&["docs", "!docs/README.md"]).unwrap().has_exceptions());
        assert!(pm(&["docs", "  !docs/README.md"]).unwrap().has_exceptions());
        assert!(pm(&["docs", "!docs/README.md  "]).unwrap().has_exceptions());
        assert!(!pm(&["docs"]).unwrap().has_exceptions());
    }

    /// `patternmatcher_test.go` `matchTests` (Go's filepath.Match table), run
    /// through the package-level `Matches`; `Err(())` = `ErrBadPattern`.
    const MATCH_TESTS: &[(&str, &str, Result<bool, ()>)] = &[
        ("abc", "abc", Ok(true)),
        ("*", "abc", Ok(true)),
        ("*c", "abc", Ok(true)),
        ("a*", "a", Ok(true)),
        ("a*", "abc", Ok(true)),
        ("a*", "ab/c", Ok(true)),
        ("a*/b", "abc/b", Ok(true)),
        ("a*/b", "a/c/b", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
        ("ab[c]", "abc", Ok(true)),
        ("ab[b-d]", "abc", Ok(true)),
        ("ab[e-g]", "abc", Ok(false)),
        ("ab[^c]", "abc", Ok(false)),
        ("ab[^b-d]", "abc", Ok(false)),
        ("ab[^e-g]", "abc", Ok(true)),
        ("a\\*b", "a*b", Ok(true)),
        ("a\\*b", "ab", Ok(false)),
        ("a?b", "a☺b", Ok(true)),
        ("a[^a]b", "a☺b", Ok(true)),
        ("a???b", "a☺b", Ok(false)),
        ("a[^a][^a][^a]b", "a☺b", Ok(false)),
        ("[a-ζ]*", "α", Ok(true)),
        ("*[a-ζ]", "A", Ok(false)),
        ("a?b", "a/b", Ok(false)),
        ("a*b", "a/b", Ok(false)),
        ("[\\]a]", "]", Ok(true)),
        ("[\\-]", "-", Ok(true)),
        ("[x\\-]", "x", Ok(true)),
        ("[x\\-]", "-", Ok(true)),
        ("[x\\-]", "z", Ok(false)),
        ("[\\-x]", "x", Ok(true)),
        ("[\\-x]", "-", Ok(true)),
        ("[\\-x]", "a", Ok(false)),
        ("[]a]", "]", Err(())),
        ("[-]", "-", Err(())),
        ("[x-]", "x", Err(())),
        ("[x-]", "-", Err(())),
        ("[x-]", "z", Err(())),
        ("[-x]", "x", Err(())),
        ("[-x]", "-", Err(())),
        ("[-x]", "a", Err(())),
        ("\\", "a", Err(())),
        ("[a-b-c]", "a", Err(())),
        ("[", "a", Err(())),
        ("[^", "a", Err(())),
        ("[^bc", "a", Err(())),
        ("a[", "a", Err(())), // was nil but IMO its wrong
        ("a[", "ab", Err(())),
        ("*x", "xxx", Ok(true)),
    ];

    #[test]
    fn match_table() {
        let mut failures = Vec::new();
        for &(pattern, text, want) in MATCH_TESTS {
            let got = matches(text, &[pattern]).map_err(|_| ());
            if got != want {
                failures.push(format!(
                    "Match({pattern:?}, {text:?}) = {got:?}, want {want:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[derive(Debug, PartialEq)]
    enum Type {
        Exact,
        Prefix,
        Suffix,
        Regex(&'static str),
    }

    /// `patternmatcher_test.go` `compileTests` (the `/` separator column).
    const COMPILE_TESTS: &[(&str, Type)] = &[
        ("*", Type::Regex(r"^[^/]*$")),
        ("file*", Type::Regex(r"^file[^/]*$")),
        ("*file", Type::Regex(r"^[^/]*file$")),
        ("a*/b", Type::Regex(r"^a[^/]*/b$")),
        ("**", Type::Suffix),
        ("**/**", Type::Regex(r"^(.*/)?.*$")),
        ("dir/**", Type::Prefix),
        ("**/dir", Type::Suffix),
        ("**/dir2/*", Type::Regex(r"^(.*/)?dir2/[^/]*$")),
        ("**/dir2/**", Type::Regex(r"^(.*/)?dir2/.*$")),
        ("**file", Type::Suffix),
        ("**/file*txt", Type::Regex(r"^(.*/)?file[^/]*txt$")),
        ("**/**/*.txt", Type::Regex(r"^(.*/)?(.*/)?[^/]*\.txt$")),
        ("a[b-d]e", Type::Regex(r"^a[b-d]e$")),
        (".*", Type::Regex(r"^\.[^/]*$")),
        ("abc.def", Type::Exact),
        ("abc?def", Type::Regex(r"^abc[^/]def$")),
        ("**/foo/bar", Type::Suffix),
        ("a(b)c/def", Type::Exact),
        ("a.|)$(}+{bc", Type::Exact),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Type::Exact,
        ),
    ];

    #[test]
    fn compile_table() {
        for (pattern, want) in COMPILE_TESTS {
            let got = match compile(&clean(pattern)).unwrap() {
                Matcher::Exact => Type::Exact,
                Matcher::Prefix(_) => Type::Prefix,
                Matcher::Suffix(_) => Type::Suffix,
                Matcher::Regex(re) => {
                    let Type::Regex(want_re) = want else {
                        panic!("pattern {pattern:?}: got regex {re}, want {want:?}");
                    };
                    assert_eq!(re.as_str(), *want_re, "pattern {pattern:?}");
                    Type::Regex(want_re)
                }
            };
            assert_eq!(&got, want, "pattern {pattern:?}");
        }
    }

    /// Regression test for moby/moby#52203: Go accepts `[Local-Only]/` at
    /// parse time and fails (without panicking) on every match; we reject it
    /// up front.
    #[test]
    fn reversed_range_is_rejected_at_compile_time() {
        let err = pm(&["[Local-Only]/"]).unwrap_err();
        assert_eq!(err.pattern, "[Local-Only]/");
    }

    /// `ignorefile_test.go` `TestReadAll`.
    #[test]
    fn read_all() {
        assert!(parse_dockerignore("").is_empty());
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_dockerignore(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        // Lone `!` lines survive parsing but are rejected by the matcher.
        assert!(PatternMatcher::new(&parse_dockerignore(content)).is_err());
    }

    #[test]
    fn read_all_bom_crlf_and_indented_hash() {
        let text = "\u{feff}a\r\n  # not a comment\r\nb//c/./d/\r\n/\r\n";
        assert_eq!(
            parse_dockerignore(text),
            ["a", "# not a comment", "b/c/d", "/"]
        );
    }

    #[test]
    fn new_cleans_and_unroots() {
        let m = pm(&["/build/", "./x/../y", "! /keep//me"]).unwrap();
        let cleaned: Vec<_> = m.patterns.iter().map(|p| p.cleaned.as_str()).collect();
        assert_eq!(cleaned, ["build", "y", "keep/me"]);
        assert!(m.patterns[2].exception);
        assert!(m.excludes("build"));
        assert!(m.excludes("build/out.o"));
        assert!(!m.excludes("src/build"));
    }

    #[test]
    fn go_clean() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("a/./b/../c", "a/c"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
        for (input, want) in [
            ("a", "."),
            ("a/b/c", "a/b"),
            ("file/", "file"),
            ("/", "/"),
            ("/a", "/"),
        ] {
            assert_eq!(&*go_dir(input.as_bytes()), want.as_bytes(), "{input}");
        }
        assert_eq!(&*go_dir(b"a\xff/./b"), b"a\xff");
    }

    #[test]
    fn may_include_under_follows_buildkit() {
        let none = pm(&["docs"]).unwrap();
        assert!(!none.may_include_under("docs"));

        let prefix = pm(&["docs", "!docs/keep.md", "!a/b/**"]).unwrap();
        assert!(prefix.may_include_under("docs"));
        assert!(!prefix.may_include_under("doc"));
        assert!(!prefix.may_include_under("docs2"));
        assert!(!prefix.may_include_under("docs/keep.md/x"));
        assert!(prefix.may_include_under("a"));
        assert!(prefix.may_include_under("a/b"));
        assert!(!prefix.may_include_under("a/c"));

        let wild = pm(&["**", "!**/*.go"]).unwrap();
        assert!(wild.may_include_under("anything/at/all"));
    }

    /// fsutil `filter_test.go` `TestFilteredOpenInvert`.
    #[test]
    fn nested_exceptions() {
        let m = pm(&["foo", "!foo/bar", "foo/bar/baz", "!foo/bar/baz/x"]).unwrap();
        assert!(!m.excludes("foo/bar/baz/x"));
        assert!(m.excludes("foo/bar/baz/y"));
        assert!(!m.excludes("foo/bar"));
        assert!(m.excludes("foo"));
    }

    /// patternmatcher runs Go's regexp over Go strings: a byte that is not
    /// UTF-8 is the rune U+FFFD, one byte wide; patterns without wildcards
    /// compare bytes.
    #[test]
    fn paths_that_are_not_utf8() {
        let m = |patterns: &[&str], path: &[u8]| pm(patterns).unwrap().excludes(path);
        assert!(m(&["f-*"], b"f-\xff.txt"));
        assert!(m(&["f-?.txt"], b"f-\xff.txt"));
        assert!(!m(&["f-?.txt"], b"f-\xff\xfe.txt"));
        assert!(m(&["f-??.txt"], b"f-\xff\xfe.txt"));
        assert!(m(&["f-[^a].txt"], b"f-\xff.txt"));
        assert!(!m(&["f-[a-z].txt"], b"f-\xff.txt"));
        // U+FFFD in a regular expression matches an invalid byte (Go's
        // regexp compares the decoded rune), but not in an exact pattern.
        assert!(m(&["f-\u{fffd}*"], b"f-\xff.txt"));
        assert!(!m(&["f-\u{fffd}.txt"], b"f-\xff.txt"));
        // Parent directories, prefixes and suffixes are bytes too.
        assert!(!m(&["d\u{fffd}"], b"d\xff/x"));
        assert!(m(&["d?"], b"d\xff/x"));
        assert!(m(&["d*"], b"d\xff/x"));
        assert!(m(&["**/x"], b"d\xff/x"));
        assert!(!m(&["**/x"], b"d\xff/x\xff"));
        assert!(m(&["d**"], b"d\xff/x"));
        assert!(m(&["*", "!f-?"], b"f-\xfe.txt"));
        assert!(!m(&["*", "!f-?"], b"f-\xfe"));
        let keep = pm(&["*", "!dir?/keep"]).unwrap();
        assert!(keep.may_include_under(b"dir\xff"));
        assert!(!keep.excludes(b"dir\xfe/keep"));
        assert!(keep.excludes(b"dir\xfe/drop"));
    }

    #[test]
    fn keep_build_files_like_docker_cli() {
        let pats = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let kept = keep_build_files(pats(&["*", "!src"]), Some("Dockerfile")).unwrap();
        assert_eq!(kept, ["*", "!src", "!.dockerignore", "!Dockerfile"]);
        let m = PatternMatcher::new(&kept).unwrap();
        assert!(!m.excludes(".dockerignore") && !m.excludes("Dockerfile"));
        let untouched = keep_build_files(pats(&["*.md"]), None).unwrap();
        assert_eq!(untouched, ["*.md"]);
    }

    #[test]
    fn find_ignore_file_prefers_dockerfile_specific() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        let df = ctx.join("sub/App.Dockerfile");
        std::fs::create_dir_all(df.parent().unwrap()).unwrap();
        let path = |f: Option<IgnoreFile>| f.map(|f| f.path());
        assert_eq!(path(find_ignore_file(ctx, Some(&df))), None);
        std::fs::write(ctx.join(".dockerignore"), "x").unwrap();
        assert_eq!(
            path(find_ignore_file(ctx, Some(&df))),
            Some(ctx.join(".dockerignore"))
        );
        assert_eq!(
            path(find_ignore_file(ctx, None)),
            Some(ctx.join(".dockerignore"))
        );
        let specific = ctx.join("sub/App.Dockerfile.dockerignore");
        std::fs::write(&specific, "y").unwrap();
        let found = find_ignore_file(ctx, Some(&df)).unwrap();
        assert_eq!(found.root, ctx.join("sub"));
        assert!(found.beside_dockerfile);
        assert_eq!(found.path(), specific);
        // A directory or dangling link is found too, so reading can refuse it.
        std::fs::remove_file(&specific).unwrap();
        std::os::unix::fs::symlink("missing", &specific).unwrap();
        assert_eq!(path(find_ignore_file(ctx, Some(&df))), Some(specific));
    }

    #[test]
    fn ignore_file_links_resolve_inside_the_root_only() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "secret-outside\n").unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("d/e")).unwrap();
        std::fs::write(ctx.join("inner"), "inner-pattern\n").unwrap();
        let read = |target: &str| {
            let link = ctx.join(".dockerignore");
            let _ = std::fs::remove_file(&link);
            symlink(target, &link).unwrap();
            read_ignore_file(&find_ignore_file(&ctx, None).unwrap())
        };
        assert_eq!(read("inner").unwrap(), "inner-pattern\n");
        assert_eq!(read("d/e/../../inner").unwrap(), "inner-pattern\n");
        // `..` and absolute targets stay in the root, as in BuildKit.
        assert_eq!(read("../../inner").unwrap(), "inner-pattern\n");
        assert_eq!(read("/inner").unwrap(), "inner-pattern\n");
        for escape in [
            "../outside",
            outside.to_str().unwrap(),
            "missing",
            ".dockerignore",
        ] {
            let err = read(escape).unwrap_err();
            assert!(
                matches!(err, IgnoreFileError::OutsideRoot { .. }),
                "{escape}: {err}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        // A link through a directory link that points out.
        symlink(dir.path(), ctx.join("up")).unwrap();
        assert!(matches!(
            read("up/outside"),
            Err(IgnoreFileError::OutsideRoot { .. })
        ));
        let err = read("d").unwrap_err();
        assert!(
            err.to_string().contains("is a symlink to a directory"),
            "{err}"
        );
    }

    #[test]
    fn ignore_file_that_is_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".dockerignore")).unwrap();
        let err = read_ignore_file(&find_ignore_file(dir.path(), None).unwrap()).unwrap_err();
        assert!(
            matches!(&err, IgnoreFileError::NotAFile { kind, .. } if kind == "a directory"),
            "{err}"
        );
    }
}
