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
mod tests;
