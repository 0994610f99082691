//! `add` of a Git repository: which sources are Git URLs, and checking one out.
//!
//! The rules are `BuildKit`'s (`dfgitutil.ParseGitRef`, dockerfile frontend
//! 1.x): a source is a Git repository when it is an `http(s)://` URL whose
//! path ends in `.git`, a `git://` or `ssh://` URL, or an SCP-style
//! `user@host:path`. Its fragment names the ref and a subdirectory,
//! `#REF:SUBDIR`; its query may say the same as `?ref=`, `?tag=`,
//! `?branch=`, `?subdir=`, and `?checksum=` (or `?commit=`),
//! `?keep-git-dir=`, `?submodules=`. `./x` and `../x` are always local paths,
//! and so is the deprecated `github.com/o/r` form.
//!
//! The checkout is written as `BuildKit` writes it, with two differences
//! made for reproducible images: modes are `0644`/`0755` whatever the umask,
//! and every file is dated the commit's time (`BuildKit`'s `?mtime=commit`),
//! not the checkout's.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::CopyError;

/// A Git source of an `add` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// The URL as written.
    pub written: String,
    /// What `git` is given: the URL without fragment and query.
    pub remote: String,
    /// A branch, tag, `refs/...` name or commit; none for the remote's HEAD.
    pub reference: Option<String>,
    /// The directory of the repository to copy, relative; empty for all.
    pub subdir: String,
    /// The commit the ref must resolve to (a full hash or a prefix of one).
    pub checksum: Option<String>,
    /// Whether to keep `.git`, when the URL says.
    pub keep_git_dir: Option<bool>,
    /// Whether to check out submodules (the default).
    pub submodules: bool,
}

/// `source` as a Git source, `None` when it is not one, or why the URL is
/// malformed (in `BuildKit`'s words).
pub fn parse(source: &str) -> Result<Option<GitSource>, String> {
    if source.starts_with("./") || source.starts_with("../") || source.starts_with("github.com/") {
        return Ok(None);
    }
    let (without_fragment, fragment) = match source.split_once('#') {
        Some((a, b)) => (a, b),
        None => (source, ""),
    };
    let (remote, query) = match without_fragment.split_once('?') {
        Some((a, b)) => (a, b),
        None => (without_fragment, ""),
    };
    if let Some((scheme, rest)) = scheme_of(remote) {
        let scheme = scheme.to_ascii_lowercase();
        if !["http", "https", "git", "ssh"].contains(&scheme.as_str()) {
            return Ok(None);
        }
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        // Case-sensitive, as `BuildKit` compares.
        #[allow(clippy::case_sensitive_file_extension_comparisons)]
        let named_git = path.ends_with(".git");
        if scheme.starts_with("http") && !named_git {
            return Ok(None);
        }
    } else if !is_scp_style(remote) {
        return Ok(None);
    }
    let (reference, subdir) = match fragment.split_once(':') {
        Some((r, s)) => (r, s),
        None => (fragment, ""),
    };
    let mut git = GitSource {
        written: source.to_owned(),
        remote: remote.to_owned(),
        reference: (!reference.is_empty()).then(|| reference.to_owned()),
        subdir: clean_subdir(subdir),
        checksum: None,
        keep_git_dir: None,
        submodules: true,
    };
    git.read_query(query)?;
    Ok(Some(git))
}

/// `scheme` and the rest of `scheme://rest`, when `url` starts so.
fn scheme_of(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    (!scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((scheme, rest))
}

/// Whether `remote` is `user@host:path` (`BuildKit`'s `gitSSHRegex`).
fn is_scp_style(remote: &str) -> bool {
    let Some((user, rest)) = remote.split_once('@') else {
        return false;
    };
    let Some((host, _path)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `subdir` as `path.Join("/", subdir)` without the leading `/`.
fn clean_subdir(subdir: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in subdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl GitSource {
    fn read_query(&mut self, query: &str) -> Result<(), String> {
        let mut seen: Vec<String> = Vec::new();
        let (mut tag, mut branch) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(pair), String::new()),
            };
            if seen.contains(&key) {
                return Err(format!("query {key:?} has multiple values"));
            }
            seen.push(key.clone());
            let flag = |name: &str| -> Result<bool, String> {
                if value.is_empty() {
                    return Ok(true);
                }
                parse_bool(&value).ok_or_else(|| format!("invalid {name} value: {value:?}"))
            };
            if value.is_empty()
                && !["submodules", "keep-git-dir", "fetch-by-commit"].contains(&key.as_str())
            {
                return Err(format!("query {key:?} has no value"));
            }
            match key.as_str() {
                "ref" => self.set_ref(value)?,
                "tag" => tag = Some(value),
                "branch" => branch = Some(value),
                "subdir" => {
                    let value = clean_subdir(&value);
                    if !self.subdir.is_empty() && self.subdir != value {
                        return Err(format!("subdir conflicts: {:?} vs {value:?}", self.subdir));
                    }
                    self.subdir = value;
                }
                "checksum" | "commit" => self.checksum = Some(value),
                "keep-git-dir" => self.keep_git_dir = Some(flag("keep-git-dir")?),
                "submodules" => self.submodules = flag("submodules")?,
                "fetch-by-commit" => {
                    flag("fetch-by-commit")?;
                }
                "mtime" if value == "checkout" || value == "commit" => {}
                "mtime" => {
                    return Err(format!(
                        "invalid mtime value: {value:?} (must be \"checkout\" or \"commit\")"
                    ));
                }
                _ => return Err(format!("unexpected query {key:?}")),
            }
        }
        if let Some(tag) = tag {
            if branch.is_some() {
                return Err("branch conflicts with tag".to_owned());
            }
            self.set_ref(prefixed("refs/tags/", tag))?;
        }
        if let Some(branch) = branch {
            self.set_ref(prefixed("refs/heads/", branch))?;
        }
        Ok(())
    }

    fn set_ref(&mut self, value: String) -> Result<(), String> {
        match &self.reference {
            Some(old) if *old != value => Err(format!("ref conflicts: {old:?} vs {value:?}")),
            _ => {
                self.reference = Some(value);
                Ok(())
            }
        }
    }

    /// Adds the step's `checksum` (`ADD --checksum`), which must agree with
    /// the URL's.
    pub fn set_checksum(&mut self, step: Option<&str>) -> Result<(), CopyError> {
        match (&self.checksum, step) {
            (Some(url), Some(step)) if url != step => {
                Err(self.fail(format!("checksum mismatch {step:?} != {url:?}")))
            }
            (_, Some(step)) => {
                self.checksum = Some(step.to_owned());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether the ref is a full commit hash, so no lookup is needed.
    fn pinned_commit(&self) -> Option<&str> {
        self.reference
            .as_deref()
            .filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    fn fail(&self, why: impl Into<String>) -> CopyError {
        CopyError::Git {
            url: self.written.clone(),
            why: why.into(),
        }
    }

    /// The commit the ref names now: the ref itself when it is a full hash,
    /// else what `git ls-remote` says (the network is needed).
    pub fn resolve(&self) -> Result<String, CopyError> {
        let commit = if let Some(commit) = self.pinned_commit() {
            commit.to_ascii_lowercase()
        } else {
            let wanted = self.reference.as_deref().unwrap_or("HEAD");
            let peeled = format!("{wanted}^{{}}");
            let out = git(None, &["ls-remote", "--", &self.remote, wanted, &peeled])
                .map_err(|why| self.fail(why))?;
            let names = [
                wanted.to_owned(),
                format!("refs/heads/{wanted}"),
                format!("refs/tags/{wanted}"),
            ];
            let mut found = None;
            for line in out.lines() {
                let Some((hash, name)) = line.split_once('\t') else {
                    continue;
                };
                // An annotated tag's commit is on its `^{}` line.
                if names.iter().any(|n| name == format!("{n}^{{}}")) {
                    found = Some(hash.to_owned());
                    break;
                }
                if found.is_none() && names.iter().any(|n| name == n) {
                    found = Some(hash.to_owned());
                }
            }
            match (found, self.reference.as_deref()) {
                (Some(hash), _) => hash,
                // A commit prefix: resolved once fetched.
                (None, Some(r)) if r.len() >= 7 && r.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    r.to_ascii_lowercase()
                }
                (None, _) => {
                    return Err(self.fail(format!(
                        "the repository has no ref `{wanted}`; name a branch, a tag or a commit"
                    )));
                }
            }
        };
        self.check(&commit)?;
        Ok(commit)
    }

    fn check(&self, commit: &str) -> Result<(), CopyError> {
        if let Some(expected) = &self.checksum
            && !(commit.starts_with(expected.as_str()) || expected.starts_with(commit))
        {
            return Err(CopyError::Checksum {
                url: self.written.clone(),
                expected: expected.clone(),
                actual: commit.to_owned(),
            });
        }
        Ok(())
    }

    /// Checks the repository out at `commit` (from [`GitSource::resolve`])
    /// into a new directory under `dir`; returns the directory to copy (the
    /// subdirectory, if one is named) and the commit's time.
    pub fn checkout(
        &self,
        commit: &str,
        keep_git_dir: bool,
        dir: &Path,
    ) -> Result<(PathBuf, i64), CopyError> {
        let fail = |why: String| self.fail(why);
        let work = dir.join(format!("git-{}", &commit[..commit.len().min(16)]));
        if work.exists() {
            fs::remove_dir_all(&work)
                .map_err(|e| fail(format!("cannot clear `{}`: {e}", work.display())))?;
        }
        fs::create_dir_all(&work)
            .map_err(|e| fail(format!("cannot create `{}`: {e}", work.display())))?;
        let at = Some(work.as_path());
        git(at, &["init", "--quiet"]).map_err(fail)?;
        git(at, &["remote", "add", "origin", &self.remote]).map_err(fail)?;
        let wanted = self.reference.as_deref().unwrap_or("HEAD");
        // A shallow fetch of the ref; a commit the server will not serve
        // alone is found in a full fetch.
        let shallow = git(at, &["fetch", "--quiet", "--depth=1", "origin", wanted]);
        if shallow.is_err() {
            git(at, &["fetch", "--quiet", "--tags", "origin"]).map_err(fail)?;
        }
        let target = if shallow.is_ok() {
            "FETCH_HEAD"
        } else {
            commit
        };
        let head = git(
            at,
            &["rev-parse", "--verify", &format!("{target}^{{commit}}")],
        )
        .map_err(fail)?
        .trim()
        .to_owned();
        if !head.starts_with(commit) {
            return Err(fail(format!(
                "`{wanted}` is commit {head} now, not {commit} as planned: the ref moved while building; build again"
            )));
        }
        self.check(&head)?;
        git(
            at,
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                &head,
            ],
        )
        .map_err(fail)?;
        if self.submodules && work.join(".gitmodules").exists() {
            git(
                at,
                &[
                    "submodule",
                    "update",
                    "--quiet",
                    "--init",
                    "--recursive",
                    "--depth=1",
                ],
            )
            .map_err(fail)?;
        }
        let time: i64 = git(at, &["log", "-1", "--format=%ct", &head])
            .map_err(fail)?
            .trim()
            .parse()
            .map_err(|e| fail(format!("cannot read the commit time: {e}")))?;
        if !keep_git_dir {
            fs::remove_dir_all(work.join(".git"))
                .map_err(|e| fail(format!("cannot remove `.git`: {e}")))?;
        }
        normalize_modes(&work).map_err(|e| fail(format!("cannot set modes: {e}")))?;
        let root = if self.subdir.is_empty() {
            work
        } else {
            let sub = work.join(&self.subdir);
            let real = fs::symlink_metadata(&sub);
            if !real.is_ok_and(|m| m.is_dir()) {
                return Err(fail(format!(
                    "the repository has no directory `{}` at {head}",
                    self.subdir
                )));
            }
            sub
        };
        Ok((root, time))
    }
}

fn prefixed(prefix: &str, name: String) -> String {
    if name.starts_with(prefix) {
        name
    } else {
        format!("{prefix}{name}")
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)),
            _ => None,
        };
        if let Some((h, l)) = escaped {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `git args` (in `dir`); its stdout, or why it failed.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let output = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "`git` is not installed; install it (`apt-get install git`) to add Git repositories"
                .to_owned()
        } else {
            format!("cannot run git: {e}")
        }
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`git {}` failed: {}", args[0], stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Sets every directory to 0755 and every file to 0644, or 0755 when Git
/// has it executable; symlinks stay as they are.
fn normalize_modes(root: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(std::io::Error::other)?;
        let meta = entry.path().symlink_metadata()?;
        let mode = if meta.is_dir() {
            0o755
        } else if meta.is_file() {
            if meta.permissions().mode() & 0o100 == 0 {
                0o644
            } else {
                0o755
            }
        } else {
            continue;
        };
        fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_source(s: &str) -> GitSource {
        parse(s)
            .unwrap()
            .unwrap_or_else(|| panic!("{s} is a git source"))
    }

    #[test]
    fn git_urls_are_told_from_files_and_downloads_as_buildkit_does() {
        for url in [
            "https://github.com/o/r.git",
            "https://github.com/o/r.git#main",
            "http://host/r.git?ref=v1",
            "git://host/r",
            "ssh://git@host/r",
            "git@github.com:o/r.git",
            "GIT://host/r",
        ] {
            assert!(parse(url).unwrap().is_some(), "{url}");
        }
        for not in [
            "https://example.com/file.tar.gz",
            "https://github.com/o/r",
            "./git@host:x",
            "../r.git",
            "github.com/o/r",
            "ftp://host/r.git",
            "file.txt",
            "dir/sub",
            "C:/x",
        ] {
            assert_eq!(parse(not).unwrap(), None, "{not}");
        }
    }

    #[test]
    fn fragments_and_queries_name_ref_and_subdir() {
        let g = git_source("https://h/o/r.git#v1.2:docs/../src/");
        assert_eq!(g.remote, "https://h/o/r.git");
        assert_eq!(g.reference.as_deref(), Some("v1.2"));
        assert_eq!(g.subdir, "src");
        let g =
            git_source("https://h/o/r.git?tag=v1&subdir=a/b&keep-git-dir=true&submodules=false");
        assert_eq!(g.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(g.subdir, "a/b");
        assert_eq!(g.keep_git_dir, Some(true));
        assert!(!g.submodules);
        let g = git_source("git@github.com:o/r.git?branch=dev&checksum=abc1234");
        assert_eq!(g.remote, "git@github.com:o/r.git");
        assert_eq!(g.reference.as_deref(), Some("refs/heads/dev"));
        assert_eq!(g.checksum.as_deref(), Some("abc1234"));
        assert_eq!(
            git_source("https://h/r.git?keep-git-dir").keep_git_dir,
            Some(true)
        );
    }

    #[test]
    fn malformed_queries_fail_in_buildkit_words() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err("https://h/r.git?ref="), "query \"ref\" has no value");
        assert_eq!(err("https://h/r.git?x=1"), "unexpected query \"x\"");
        assert_eq!(
            err("https://h/r.git?ref=b&ref=c"),
            "query \"ref\" has multiple values"
        );
        assert_eq!(
            err("https://h/r.git?ref=a&tag=b"),
            "ref conflicts: \"a\" vs \"refs/tags/b\""
        );
        assert_eq!(
            err("https://h/r.git?tag=a&branch=b"),
            "branch conflicts with tag"
        );
        assert_eq!(
            err("https://h/r.git?keep-git-dir=maybe"),
            "invalid keep-git-dir value: \"maybe\""
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
