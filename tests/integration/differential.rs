//! The differential harness: small Dockerfiles, each built by imgbuild and
//! by docker's `BuildKit`, whose file trees must come out the same.
//!
//! A case is a directory under `tests/differential/` (its README says what
//! a case holds). The imgbuild side runs in every `cargo test` and compares
//! with the tree checked in as `expected.tree`; `IMGBUILD_BLESS=1` writes
//! the trees instead. The docker side (`scripts/differential`, or this
//! file's ignored test) builds the same cases with `docker build` and
//! compares docker's trees with the same files, so a checked-in tree is
//! `BuildKit`'s tree, not a record of what imgbuild happened to do.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{can_run, imgbuild_in, repo};

/// One case of `tests/differential/`.
struct Case {
    name: String,
    dir: PathBuf,
}

impl Case {
    fn all() -> Vec<Case> {
        let root = repo().join("tests/differential");
        let mut cases: Vec<Case> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("Dockerfile").is_file())
            .map(|dir| Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                dir,
            })
            .collect();
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        // `IMGBUILD_CASES=a,b` keeps the cases whose names contain `a` or `b`.
        if let Ok(filter) = std::env::var("IMGBUILD_CASES") {
            let words: Vec<&str> = filter.split(',').filter(|w| !w.is_empty()).collect();
            cases.retain(|c| words.iter().any(|w| c.name.contains(w)));
        }
        cases
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    /// `--build-arg` values, one `NAME=VALUE` a line.
    fn args(&self) -> Vec<String> {
        self.read("args")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Why docker's `BuildKit` here cannot build it, if it cannot.
    fn docker_skip(&self) -> Option<String> {
        self.read("docker-skip").map(|s| s.trim().to_owned())
    }

    /// Lays out the case in `work`: `work/context` (the case's `context/`,
    /// then its `setup.sh` run there) and `work/Dockerfile`, with `FROM
    /// busybox` pointing at `base`. Returns the Dockerfile's path.
    fn prepare(&self, work: &Path, base: &str) -> PathBuf {
        let context = work.join("context");
        std::fs::create_dir_all(&context).unwrap();
        if self.dir.join("context").is_dir() {
            let status = Command::new("cp")
                .arg("-a")
                .arg(self.dir.join("context/."))
                .arg(&context)
                .status()
                .unwrap();
            assert!(status.success(), "{}: cp failed", self.name);
        }
        if self.dir.join("setup.sh").is_file() {
            let out = Command::new("sh")
                .arg("-eu")
                .arg(self.dir.join("setup.sh"))
                .current_dir(&context)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: setup.sh failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let dockerfile = self.read("Dockerfile").unwrap();
        let path = work.join("Dockerfile");
        std::fs::write(&path, with_base(&dockerfile, base)).unwrap();
        path
    }
}

/// `dockerfile` with the image `busybox` of its `FROM` lines replaced by `base`.
fn with_base(dockerfile: &str, base: &str) -> String {
    let mut out = String::new();
    for line in dockerfile.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            let replaced: Vec<&str> = words
                .iter()
                .map(|w| if *w == "busybox" { base } else { w })
                .collect();
            out.push_str(&replaced.join(" "));
            out.push('\n');
        } else {
            out.push_str(line);
        }
    }
    out
}

/// What a build of a case gave: its tree, or the error it printed.
enum Outcome {
    Tree(String),
    Failed(String),
}

/// The tree under `root`, one line an entry, sorted by path: type, mode,
/// owner, and for files size and content hash, for symlinks the target,
/// for hard links the first path of the same inode. Names are bytes:
/// anything not printable ASCII is written `\xNN`.
fn render_tree(root: &Path) -> String {
    let mut out = String::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()))
    {
        let entry = entry.unwrap();
        let path = escape(entry.path().strip_prefix(root).unwrap());
        let meta = entry.path().symlink_metadata().unwrap();
        let owner = format!("{}:{}", meta.uid(), meta.gid());
        let mode = meta.mode() & 0o7777;
        let ty = meta.file_type();
        if ty.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            writeln!(out, "{path} -> {} {owner}", escape(&target)).unwrap();
        } else if ty.is_dir() {
            writeln!(out, "{path}/ {mode:04o} {owner}").unwrap();
        } else if ty.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = inodes.get(&key)
            {
                writeln!(out, "{path} hardlink {first}").unwrap();
                continue;
            }
            inodes.insert(key, path.clone());
            let bytes = std::fs::read(entry.path()).unwrap();
            let hash = blake3::hash(&bytes).to_hex();
            let text = std::str::from_utf8(&bytes)
                .ok()
                .filter(|t| t.len() <= 100 && t.chars().all(|c| !c.is_control() || c == '\n'));
            let content = text.map_or_else(|| hash[..16].to_owned(), |t| format!("{t:?}"));
            writeln!(out, "{path} {mode:04o} {owner} {} {content}", bytes.len()).unwrap();
        } else {
            writeln!(out, "{path} special {mode:04o} {owner} {:x}", meta.rdev()).unwrap();
        }
    }
    out
}

fn escape(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            write!(out, "\\x{b:02x}").unwrap();
        }
    }
    out
}

/// Compares `outcome` with what `case` expects; returns the differences.
/// A case that must fail says so in `expected.error`, a phrase imgbuild's
/// error contains; `expected.docker-error`, if there, is docker's.
fn check(case: &Case, outcome: &Outcome, side: &str) -> Option<String> {
    if let Some(error) = case.read("expected.error") {
        let phrase = if side == "docker" {
            case.read("expected.docker-error")
        } else {
            Some(error)
        };
        let phrase = phrase.as_deref().map(str::trim);
        return match outcome {
            Outcome::Failed(stderr) if phrase.is_none_or(|p| stderr.contains(p)) => None,
            Outcome::Failed(stderr) => Some(format!(
                "{}: {side} failed without `{}`:\n{stderr}",
                case.name,
                phrase.unwrap_or_default()
            )),
            Outcome::Tree(tree) => Some(format!(
                "{}: {side} built, but it should fail:\n{tree}",
                case.name
            )),
        };
    }
    let expected = case.read("expected.tree").unwrap_or_default();
    match outcome {
        Outcome::Failed(stderr) => Some(format!("{}: {side} failed:\n{stderr}", case.name)),
        Outcome::Tree(tree) if *tree == expected => None,
        Outcome::Tree(tree) => Some(format!(
            "{}: {side} built a different tree\n{}",
            case.name,
            diff(&expected, tree)
        )),
    }
}

/// The lines only in `expected` (`-`) and only in `got` (`+`).
fn diff(expected: &str, got: &str) -> String {
    let mut out = String::new();
    for line in expected.lines().filter(|l| !got.lines().any(|g| g == *l)) {
        writeln!(out, "- {line}").unwrap();
    }
    for line in got.lines().filter(|l| !expected.lines().any(|e| e == *l)) {
        writeln!(out, "+ {line}").unwrap();
    }
    out
}

fn imgbuild_build(case: &Case, store: &Path) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let base = format!("oci-layout:{}", crate::run::busybox().display());
    let dockerfile = case.prepare(work.path(), &base);
    let dest = work.path().join("out");
    let mut args = vec![
        "--store".to_owned(),
        store.display().to_string(),
        "apply".to_owned(),
        "-f".to_owned(),
        dockerfile.display().to_string(),
        "--output".to_owned(),
        format!("type=local,dest={}", dest.display()),
    ];
    for arg in case.args() {
        args.extend(["--build-arg".to_owned(), arg]);
    }
    args.push(work.path().join("context").display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = imgbuild_in(work.path(), &args);
    if out.code != 0 {
        return Outcome::Failed(out.stderr);
    }
    Outcome::Tree(render_tree(&dest))
}

/// Every case, built by imgbuild, gives the tree (or the error) checked in.
#[test]
fn imgbuild_builds_what_buildkit_builds() {
    if !can_run() {
        return;
    }
    let bless = std::env::var("IMGBUILD_BLESS").is_ok_and(|v| v == "imgbuild");
    let store = tempfile::tempdir().unwrap();
    let cases = Case::all();
    assert!(
        cases.len() >= 20 || std::env::var_os("IMGBUILD_CASES").is_some(),
        "found only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = imgbuild_build(case, store.path());
        if bless
            && case.read("expected.error").is_none()
            && let Outcome::Tree(tree) = &outcome
        {
            std::fs::write(case.dir.join("expected.tree"), tree).unwrap();
            continue;
        }
        let differs = check(case, &outcome, "imgbuild");
        match (case.read("imgbuild-differs"), differs) {
            (None, Some(failure)) => failures.push(failure),
            (Some(_), None) => failures.push(format!(
                "{}: imgbuild now builds what BuildKit builds: remove its `imgbuild-differs`",
                case.name
            )),
            (Some(why), Some(_)) => eprintln!("{}: known to differ: {}", case.name, why.trim()),
            (None, None) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The docker side: `scripts/differential` runs it where dockerd runs.
#[test]
#[ignore = "needs a running dockerd with BuildKit; scripts/differential runs it"]
fn buildkit_builds_the_trees_checked_in() {
    let docker = "/usr/bin/docker";
    let up = Command::new(docker)
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        eprintln!("skipped: no docker daemon answers `{docker} info`");
        return;
    }
    let base = "imgbuild-differential/busybox:latest";
    let layout = crate::run::busybox();
    let loaded = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker-daemon:{base}"))
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "skopeo could not load the base into docker: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let bless_from_docker = std::env::var("IMGBUILD_BLESS").is_ok_and(|v| v == "docker");
    let mut failures = Vec::new();
    let mut built = 0;
    let cases = Case::all();
    for case in &cases {
        if let Some(why) = case.docker_skip() {
            eprintln!("{}: not built with docker: {why}", case.name);
            continue;
        }
        let work = tempfile::tempdir().unwrap();
        let dockerfile = case.prepare(work.path(), base);
        let tar = work.path().join("out.tar");
        let mut cmd = Command::new(docker);
        cmd.env("DOCKER_BUILDKIT", "1")
            .args(["build", "--network=host", "--no-cache", "-q", "-f"])
            .arg(&dockerfile)
            .arg("-o")
            .arg(format!("type=tar,dest={}", tar.display()));
        for arg in case.args() {
            cmd.arg("--build-arg").arg(arg);
        }
        let out = cmd.arg(work.path().join("context")).output().unwrap();
        let outcome = if out.status.success() {
            let dest = work.path().join("out");
            std::fs::create_dir(&dest).unwrap();
            let status = Command::new("tar")
                .args(["--numeric-owner", "-m", "-xpf"])
                .arg(&tar)
                .arg("-C")
                .arg(&dest)
                .status()
                .unwrap();
            assert!(status.success());
            Outcome::Tree(render_tree(&dest))
        } else {
            Outcome::Failed(String::from_utf8_lossy(&out.stderr).into_owned())
        };
        built += 1;
        if bless_from_docker
            && case.read("expected.error").is_none()
            && let Outcome::Tree(tree) = &outcome
        {
            std::fs::write(case.dir.join("expected.tree"), tree).unwrap();
            continue;
        }
        failures.extend(check(case, &outcome, "docker"));
    }
    eprintln!(
        "docker built {built} of {} cases; {} differ",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
