//! Build contexts made by an attacker: nothing outside the context may reach
//! an image, whatever the sources of a `copy` or `add` look like.
//!
//! As in `BuildKit`, a symlink is followed inside the context (an absolute
//! target starts again at the context's root, `..` stops there) and never
//! out of it; symlinks inside a copied directory stay symlinks.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::{Output, imgbuild_in};

/// A file outside every context, holding a value no image may contain.
struct HostSecret {
    dir: tempfile::TempDir,
    value: String,
}

impl HostSecret {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let value = format!("host-secret-{}-{}", std::process::id(), rand_suffix());
        std::fs::write(dir.path().join("secret"), &value).unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::fs::write(dir.path().join("dir/secret"), &value).unwrap();
        std::fs::write(dir.path().join("dir/p.txt"), &value).unwrap();
        Self { dir, value }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret")
    }

    fn dir(&self) -> std::path::PathBuf {
        self.dir.path().join("dir")
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `../` enough times to climb from `depth` directories deep in the
/// context to `/`, then `target`.
fn climbing(depth: usize, target: &Path) -> String {
    format!("{}{}", "../".repeat(depth + 12), target.display())
}

/// A context that links out to `secret` in every way a source can reach.
fn hostile_context(secret: &HostSecret) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("plain.txt"), "plain").unwrap();
    symlink(secret.file(), root.join("shadowlink")).unwrap();
    symlink(climbing(0, &secret.file()), root.join("shadowup")).unwrap();
    symlink(secret.dir(), root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("nested/deeper")).unwrap();
    symlink(
        climbing(2, &secret.dir().join("p.txt")),
        root.join("nested/deeper/p.txt"),
    )
    .unwrap();
    symlink(secret.dir(), root.join("nested/linkdir")).unwrap();
    dir
}

fn apply(dir: &Path, store: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--store", store.to_str().unwrap(), "apply"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "type=local,dest=rootfs"]);
    imgbuild_in(dir, &all)
}

/// Whether `value` is in any file under `dir`.
fn found_under(dir: &Path, value: &str) -> Vec<String> {
    let mut hits = Vec::new();
    if !dir.exists() {
        return hits;
    }
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            if bytes.windows(value.len()).any(|w| w == value.as_bytes()) {
                hits.push(entry.path().display().to_string());
            }
        }
    }
    hits
}

/// Builds `step` (a Dockerfile instruction, or a manifest step table when
/// it starts with `{`) in a hostile context and checks that the build is
/// refused and nothing of the secret is in the store or the output.
fn refused(secret: &HostSecret, step: &str, message: &str) {
    let context = hostile_context(secret);
    let store = tempfile::tempdir().unwrap();
    let out = if step.starts_with('{') {
        std::fs::write(
            context.path().join("imgbuild.toml"),
            format!(
                "[stages.a]\nfrom = \"scratch\"\nsteps = [{step}]\n\n[images.a]\nstage = \"a\"\n"
            ),
        )
        .unwrap();
        apply(context.path(), store.path(), &[])
    } else {
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM scratch\n{step}\n"),
        )
        .unwrap();
        apply(context.path(), store.path(), &["-f", "Dockerfile"])
    };
    assert_eq!(out.code, 1, "`{step}` must fail:\n{}", out.stderr);
    assert!(
        out.stderr.contains(message),
        "`{step}`: no `{message}` in:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&secret.value), "{}", out.stderr);
    assert!(!out.stdout.contains(&secret.value), "{}", out.stdout);
    let hits = [
        found_under(store.path(), &secret.value),
        found_under(&context.path().join("rootfs"), &secret.value),
    ]
    .concat();
    assert!(hits.is_empty(), "`{step}` put the secret in {hits:?}");
}

#[test]
fn wildcard_sources_never_follow_links_out_of_the_context() {
    let secret = HostSecret::new();
    let link = |name: &str| format!("`{name}` is a symlink to ");
    for (step, message) in [
        ("COPY shadow* /g/", link("shadowlink")),
        ("COPY shadowl?nk /g/", link("shadowlink")),
        ("COPY [s]hadowlink /g/", link("shadowlink")),
        ("COPY shadowu* /g/", link("shadowup")),
        ("ADD shadow* /g/", link("shadowlink")),
        ("COPY sub/* /g/", "`sub/*` not found".to_owned()),
        ("COPY nested/*/p.txt /g/", link("nested/deeper/p.txt")),
        ("COPY nested/linkd* /g/", link("nested/linkdir")),
        (r#"{ copy = "*link*", to = "/g/" }"#, link("shadowlink")),
        (
            r#"{ copy = "sub/*", to = "/g/" }"#,
            "`sub/*` not found".to_owned(),
        ),
        (r#"{ add = "shadow?p", to = "/g/" }"#, link("shadowup")),
    ] {
        refused(&secret, step, &message);
    }
}

#[test]
fn parents_sources_copy_the_links_they_match_as_links() {
    // `BuildKit` copies a `--parents` source as its root's contents with an
    // include pattern: what the pattern matches is walked, never followed,
    // so a matched symlink is copied as a link (the secret stays out).
    let secret = HostSecret::new();
    let context = hostile_context(&secret);
    let root = context.path();
    std::fs::write(
        root.join("Dockerfile"),
        "FROM scratch\nCOPY --parents nested/*/p.txt /g/\nCOPY --parents nested/./**/p.txt /h/\n",
    )
    .unwrap();
    std::fs::write(
        root.join("imgbuild.toml"),
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"nested/deeper/p.txt\", to = \"/g/\", parents = true }]\n\n[images.a]\nstage = \"a\"\n",
    )
    .unwrap();
    let target = climbing(2, &secret.dir().join("p.txt"));
    for (args, links) in [
        (
            &["-f", "Dockerfile"][..],
            &["g/nested/deeper/p.txt", "h/deeper/p.txt"][..],
        ),
        (&[][..], &["g/nested/deeper/p.txt"][..]),
    ] {
        let store = tempfile::tempdir().unwrap();
        let out = apply(root, store.path(), args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let rootfs = root.join("rootfs");
        for link in links {
            assert_eq!(
                std::fs::read_link(rootfs.join(link)).unwrap(),
                Path::new(&target)
            );
        }
        // The manifest's build has only its own step.
        assert_eq!(rootfs.join("h").exists(), links.len() == 2);
        assert!(found_under(store.path(), &secret.value).is_empty());
        assert!(found_under(&rootfs, &secret.value).is_empty());
        std::fs::remove_dir_all(&rootfs).unwrap();
    }
}

#[test]
fn named_sources_never_follow_links_out_of_the_context() {
    let secret = HostSecret::new();
    for (step, message) in [
        ("COPY shadowlink /g/", "`shadowlink` is a symlink to "),
        ("COPY shadowup /g/", "`shadowup` is a symlink to "),
        ("COPY sub/secret /g/", "`sub/secret` not found"),
        (
            "COPY nested/deeper/p.txt /g/",
            "`nested/deeper/p.txt` is a symlink to ",
        ),
        (
            r#"{ copy = "nested/linkdir", to = "/g/" }"#,
            "`nested/linkdir` is a symlink to ",
        ),
    ] {
        refused(&secret, step, message);
    }
}

#[test]
fn links_are_followed_inside_the_context_and_kept_inside_directories() {
    // What BuildKit builds from the same context: `COPY *link /g/` follows
    // each link inside the context; `COPY dir/ /c/` keeps links as links.
    let secret = HostSecret::new();
    let context = hostile_context(&secret);
    let root = context.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "the context's own").unwrap();
    std::fs::write(root.join("real.txt"), "real").unwrap();
    symlink("/real.txt", root.join("abslink")).unwrap();
    symlink("../../../real.txt", root.join("relink")).unwrap();
    symlink("/etc/passwd", root.join("pwlink")).unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/a"), "a").unwrap();
    symlink(secret.file(), root.join("dir/out")).unwrap();
    std::fs::write(
        root.join("Dockerfile"),
        "FROM scratch\nCOPY abslink relink /g/\nCOPY pw* /p/\nCOPY dir/ /c/\n",
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = apply(root, store.path(), &["-f", "Dockerfile"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rootfs = root.join("rootfs");
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(read("g/abslink"), "real");
    assert_eq!(read("g/relink"), "real");
    assert_eq!(read("p/pwlink"), "the context's own");
    assert_eq!(read("c/a"), "a");
    assert_eq!(
        std::fs::read_link(rootfs.join("c/out")).unwrap(),
        secret.file()
    );
    assert!(found_under(store.path(), &secret.value).is_empty());
    assert!(found_under(&rootfs, &secret.value).is_empty());
}

#[test]
fn the_book_shows_the_error_a_link_out_of_the_context_gives() {
    let page = std::fs::read_to_string(crate::util::repo().join("book/src/copying.md")).unwrap();
    let shown: Vec<&str> = page
        .lines()
        .skip_while(|l| !l.starts_with("error: stage `a@"))
        .take(2)
        .collect();
    assert_eq!(shown.len(), 2, "book/src/copying.md shows the error");
    let context = tempfile::tempdir().unwrap();
    symlink("/etc/shadow", context.path().join("shadowlink")).unwrap();
    std::fs::write(
        context.path().join("imgbuild.toml"),
        "[stages.a]\nfrom = \"scratch\"\nplatform = \"linux/amd64\"\nsteps = [{ copy = \"shadow*\", to = \"/g/\" }]\n\n[images.a]\nstage = \"a\"\n",
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = apply(context.path(), store.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for line in shown {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }
}
