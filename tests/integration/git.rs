//! `ADD` of Git repositories, served by a `git daemon` on 127.0.0.1.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Output, have, imgbuild_in};

/// A `git daemon` serving the repositories under its base directory.
struct Daemon {
    child: Child,
    base: tempfile::TempDir,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2001-02-03T04:05:06Z")
        .env("GIT_COMMITTER_DATE", "2001-02-03T04:05:06Z")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Daemon {
    /// Starts a daemon serving `repo.git`: a commit with `README`, an
    /// executable `bin/run` and `docs/guide.md`, tagged `v1` (annotated),
    /// then a second commit on `main` that changes `README`.
    fn start() -> Option<Daemon> {
        if !have("git")
            || !Path::new("/usr/lib/git-core/git-daemon").exists() && !daemon_in_exec_path()
        {
            eprintln!("skipped: needs git with git-daemon (apt-get install git)");
            return None;
        }
        let base = tempfile::tempdir().unwrap();
        let work = base.path().join("work");
        std::fs::create_dir_all(work.join("bin")).unwrap();
        std::fs::create_dir_all(work.join("docs")).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(work.join("README"), "one\n").unwrap();
        std::fs::write(work.join("bin/run"), "#!/bin/sh\n").unwrap();
        Command::new("chmod")
            .args(["755"])
            .arg(work.join("bin/run"))
            .status()
            .unwrap();
        std::fs::write(work.join("docs/guide.md"), "guide\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "one"]);
        git(&work, &["tag", "-a", "v1", "-m", "v1"]);
        std::fs::write(work.join("README"), "two\n").unwrap();
        git(&work, &["commit", "--quiet", "-am", "two"]);
        git(
            base.path(),
            &["clone", "--quiet", "--bare", "work", "repo.git"],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.path().display()))
            .arg(base.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let daemon = Daemon { child, base, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(daemon)
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.port)
    }

    fn work(&self) -> PathBuf {
        self.base.path().join("work")
    }

    /// Commits a new `README` on `main` and pushes it to the served repository.
    fn push_change(&self, text: &str) {
        let work = self.work();
        std::fs::write(work.join("README"), text).unwrap();
        git(&work, &["commit", "--quiet", "-am", "change"]);
        let bare = self.base.path().join("repo.git");
        git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    }
}

fn daemon_in_exec_path() -> bool {
    let out = Command::new("git").arg("--exec-path").output();
    out.is_ok_and(|o| {
        Path::new(String::from_utf8_lossy(&o.stdout).trim())
            .join("git-daemon")
            .exists()
    })
}

/// Applies `dockerfile` in a fresh directory with `store`; the rootfs is
/// exported to `rootfs/`.
fn apply(store: &Path, dockerfile: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let out = imgbuild_in(
        dir.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "apply",
            "-f",
            "Dockerfile",
            "--output",
            "type=local,dest=rootfs",
        ],
    );
    (dir, out)
}

fn plan(store: &Path, dockerfile: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    imgbuild_in(
        dir.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "plan",
            "-f",
            "Dockerfile",
        ],
    )
}

#[test]
fn add_checks_out_a_repository_without_its_git_dir() {
    let Some(daemon) = Daemon::start() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let (dir, out) = apply(
        store.path(),
        &format!("FROM scratch\nADD {} /src\n", daemon.url()),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let root = dir.path().join("rootfs/src");
    assert_eq!(
        std::fs::read_to_string(root.join("README")).unwrap(),
        "two\n"
    );
    assert!(!root.join(".git").exists(), ".git is left out");
    let run = std::fs::metadata(root.join("bin/run")).unwrap();
    assert_eq!(run.mode() & 0o7777, 0o755);
    let readme = std::fs::metadata(root.join("README")).unwrap();
    assert_eq!(readme.mode() & 0o7777, 0o644);
    assert_eq!((readme.uid(), readme.gid()), (0, 0));
    // Dated the commit, so the image is the same whenever it is built.
    assert_eq!(readme.mtime(), 981_173_106);
}

#[test]
fn refs_and_subdirectories_in_fragment_and_query_forms() {
    let Some(daemon) = Daemon::start() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let url = daemon.url();
    let (dir, out) = apply(
        store.path(),
        &format!(
            "FROM scratch\nADD {url}#v1:docs /a/\nADD {url}?tag=v1&subdir=bin /b\nADD {url}#main /c\n"
        ),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let root = dir.path().join("rootfs");
    assert_eq!(
        std::fs::read_to_string(root.join("a/guide.md")).unwrap(),
        "guide\n"
    );
    assert!(!root.join("a/README").exists());
    assert!(root.join("b/run").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("c/README")).unwrap(),
        "two\n"
    );

    let (dir, out) = apply(
        store.path(),
        &format!("FROM scratch\nADD --keep-git-dir {url}#v1 /k\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let root = dir.path().join("rootfs/k");
    assert!(root.join(".git").is_dir(), "--keep-git-dir keeps .git");
    assert_eq!(
        std::fs::read_to_string(root.join("README")).unwrap(),
        "one\n"
    );
}

#[test]
fn a_moved_branch_rebuilds_and_a_pinned_commit_stays_cached() {
    let Some(daemon) = Daemon::start() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let first = git(&daemon.work(), &["rev-parse", "HEAD"]);
    let branch = format!("FROM scratch\nADD {}#main /src\n", daemon.url());
    let pinned = format!("FROM scratch\nADD {}#{first} /src\n", daemon.url());
    for dockerfile in [&branch, &pinned] {
        let (_dir, out) = apply(store.path(), dockerfile);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let again = plan(store.path(), dockerfile);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(
            again.stdout.contains("1 of 1 step cached"),
            "{}",
            again.stdout
        );
    }

    daemon.push_change("three\n");
    let moved = plan(store.path(), &branch);
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert!(
        moved.stdout.contains("0 of 1 step cached"),
        "{}",
        moved.stdout
    );
    let still = plan(store.path(), &pinned);
    assert!(
        still.stdout.contains("1 of 1 step cached"),
        "{}",
        still.stdout
    );
    let (dir, out) = apply(store.path(), &branch);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rootfs/src/README")).unwrap(),
        "three\n"
    );
}

#[test]
fn git_sources_fail_clearly() {
    let Some(daemon) = Daemon::start() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let url = daemon.url();
    let (_d, copy) = apply(store.path(), &format!("FROM scratch\nCOPY {url} /src\n"));
    assert_ne!(copy.code, 0);
    assert!(
        copy.stderr.contains("source can't be a git ref for COPY"),
        "{}",
        copy.stderr
    );

    let (_d, missing) = apply(
        store.path(),
        &format!("FROM scratch\nADD {url}#nope /src\n"),
    );
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("has no ref `nope`"),
        "{}",
        missing.stderr
    );

    let (_d, sub) = apply(
        store.path(),
        &format!("FROM scratch\nADD {url}#v1:absent /src\n"),
    );
    assert_ne!(sub.code, 0);
    assert!(
        sub.stderr.contains("no directory `absent`"),
        "{}",
        sub.stderr
    );

    let (_d, query) = apply(
        store.path(),
        &format!("FROM scratch\nADD {url}?bogus=1 /src\n"),
    );
    assert_ne!(query.code, 0);
    assert!(
        query.stderr.contains("unexpected query \"bogus\""),
        "{}",
        query.stderr
    );

    let (_d, down) = apply(
        store.path(),
        "FROM scratch\nADD git://127.0.0.1:1/none.git /src\n",
    );
    assert_ne!(down.code, 0);
    assert!(
        down.stderr.contains("`git ls-remote` failed"),
        "{}",
        down.stderr
    );

    let (_d, checksum) = apply(
        store.path(),
        &format!("FROM scratch\nADD --checksum=0000000 {url}#v1 /src\n"),
    );
    assert_ne!(checksum.code, 0);
    assert!(
        checksum.stderr.contains("but the step expects 0000000"),
        "{}",
        checksum.stderr
    );
}
