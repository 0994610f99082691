//! The build cache through the binary: what `plan` predicts, what `apply`
//! runs, and that the two agree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::Value;

use crate::util::{Output, can_run, imgbuild_in};

/// A project directory with its own store outside it.
struct Project {
    dir: tempfile::TempDir,
    store: tempfile::TempDir,
}

impl Project {
    fn new(manifest: &str) -> Self {
        let project = Self {
            dir: tempfile::tempdir().unwrap(),
            store: tempfile::tempdir().unwrap(),
        };
        project.manifest(manifest);
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn manifest(&self, text: &str) -> &Self {
        self.file("imgbuild.toml", text)
    }

    fn file(&self, path: &str, content: &str) -> &Self {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self
    }

    fn run(&self, command: &str, args: &[&str]) -> Output {
        let store = self.store.path().to_str().unwrap().to_owned();
        let mut all = vec!["--store", &store, command];
        all.extend_from_slice(args);
        imgbuild_in(self.path(), &all)
    }

    /// `plan --json`: node id -> each step's status (`cached` or the reason it builds).
    fn plan(&self, args: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run("plan", &all);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let plan: Value = serde_json::from_str(&out.stdout).unwrap();
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| {
                let steps = node["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| match s["cache"]["status"].as_str().unwrap() {
                        "cached" => "cached".to_owned(),
                        _ => s["cache"]["reason"].as_str().unwrap().to_owned(),
                    })
                    .collect();
                (node["stage"].as_str().unwrap().to_owned(), steps)
            })
            .collect()
    }

    /// `apply`: stage -> for each step whether it ran (`ran`) or came from the cache.
    fn apply(&self, args: &[&str]) -> (BTreeMap<String, Vec<&'static str>>, String) {
        let mut all = vec!["--progress", "json"];
        all.extend_from_slice(args);
        let out = self.run("apply", &all);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let mut steps: BTreeMap<String, BTreeMap<u64, &'static str>> = BTreeMap::new();
        for line in out.stderr.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["event"] != "step_done" {
                continue;
            }
            let stage = event["node"]
                .as_str()
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_owned();
            let state = if event["cached"] == true {
                "cached"
            } else {
                "ran"
            };
            steps
                .entry(stage)
                .or_default()
                .insert(event["step"].as_u64().unwrap(), state);
        }
        let digest = out.stdout.split_whitespace().nth(1).unwrap().to_owned();
        let steps = steps
            .into_iter()
            .map(|(stage, by_step)| (stage, by_step.into_values().collect()))
            .collect();
        (steps, digest)
    }
}

const TWO_SOURCES: &str = r#"
[stages.a]
from = "scratch"
steps = [
  { copy = "a.txt", to = "/a.txt" },
  { copy = "a.txt", to = "/a-${VERSION}.txt" },
]

[stages.b]
from = "scratch"
steps = [{ copy = ["src/"], to = "/src/" }]

[stages.final]
from = "scratch"
steps = [
  { copy = "/a.txt", from = "a", to = "/a.txt" },
  { copy = "/src/", from = "b", to = "/src/" },
]
cmd = ["/a.txt"]

[args]
VERSION = "1"

[images.final]
stage = "final"
tags = ["localhost/final:1"]
"#;

fn two_sources() -> Project {
    let project = Project::new(TWO_SOURCES);
    project
        .file("a.txt", "a\n")
        .file("src/main.rs", "fn main() {}\n")
        .file("src/lib.rs", "pub fn f() {}\n");
    project
}

#[test]
fn a_no_op_rebuild_runs_no_step() {
    // Copies from stages read them through overlay mounts.
    if !can_run() {
        return;
    }
    let project = two_sources();
    let (first, digest) = project.apply(&[]);
    assert!(first.values().flatten().all(|s| *s == "ran"), "{first:?}");
    let plan = project.plan(&[]);
    assert!(plan.values().flatten().all(|s| s == "cached"), "{plan:?}");
    let (second, again) = project.apply(&[]);
    assert!(
        second.values().flatten().all(|s| *s == "cached"),
        "{second:?}"
    );
    assert_eq!(digest, again, "a cached build gives the same image");
}

#[test]
fn one_changed_file_rebuilds_only_what_reads_it() {
    // Copies from stages read them through overlay mounts.
    if !can_run() {
        return;
    }
    let project = two_sources();
    project.apply(&[]);
    project.file("src/main.rs", "fn main() { println!(); }\n");
    let plan = project.plan(&[]);
    assert_eq!(plan["a"], ["cached", "cached"]);
    assert_eq!(plan["b"], ["src/main.rs changed"]);
    assert_eq!(plan["final"][0], "cached");
    assert!(
        plan["final"][1].starts_with("it reads stage `b`, which rebuilds"),
        "{plan:?}"
    );
    let (ran, _) = project.apply(&[]);
    assert_eq!(ran["a"], ["cached", "cached"]);
    assert_eq!(ran["b"], ["ran"]);
    assert_eq!(ran["final"], ["cached", "ran"]);

    project.file("src/new.rs", "\n");
    std::fs::remove_file(project.path().join("src/lib.rs")).unwrap();
    assert_eq!(
        project.plan(&[])["b"],
        ["src/new.rs added, src/lib.rs removed"]
    );
}

#[test]
fn reasons_name_args_and_metadata_changes_rebuild_nothing() {
    // Copies from stages read them through overlay mounts.
    if !can_run() {
        return;
    }
    let project = two_sources();
    let (_, digest) = project.apply(&[]);
    let plan = project.plan(&["--arg", "VERSION=2"]);
    assert_eq!(plan["a"], ["cached", "arg VERSION changed from 1 to 2"]);

    // A new command changes the image config, not a layer.
    project.manifest(&TWO_SOURCES.replace(r#"cmd = ["/a.txt"]"#, r#"cmd = ["/src/"]"#));
    assert!(project.plan(&[]).values().flatten().all(|s| s == "cached"));
    let (ran, changed) = project.apply(&[]);
    assert!(ran.values().flatten().all(|s| *s == "cached"), "{ran:?}");
    assert_ne!(digest, changed);
}

#[test]
fn no_cache_flags_and_detailed_exitcode() {
    // Copies from stages read them through overlay mounts.
    if !can_run() {
        return;
    }
    let project = two_sources();
    assert_eq!(project.run("plan", &["--detailed-exitcode"]).code, 3);
    project.apply(&[]);
    assert_eq!(project.run("plan", &["--detailed-exitcode"]).code, 0);
    let plan = project.plan(&["--no-cache-filter", "b"]);
    assert_eq!(plan["a"], ["cached", "cached"]);
    assert_eq!(plan["b"], ["--no-cache-filter b"]);
    let (ran, _) = project.apply(&["--no-cache-filter", "b"]);
    assert_eq!(ran["b"], ["ran"]);
    // Stage b's files came out the same, so what reads them is cached.
    assert_eq!(ran["final"], ["cached", "cached"]);
    let (ran, _) = project.apply(&["--no-cache"]);
    assert!(ran.values().flatten().all(|s| *s == "ran"), "{ran:?}");
    let out = project.run("plan", &["--no-cache-filter", "nope"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("there is no stage `nope`"),
        "{}",
        out.stderr
    );
}

#[test]
fn linked_copies_do_not_depend_on_their_parent() {
    let manifest = |content: &str| {
        format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [\n  {{ file = \"{content}\", to = \"/first\" }},\n  {{ copy = \"a.txt\", to = \"/a.txt\", link = true }},\n  {{ copy = \"a.txt\", to = \"/b.txt\" }},\n]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/a:1\"]\n"
        )
    };
    let project = Project::new(&manifest("one"));
    project.file("a.txt", "a\n");
    project.apply(&[]);
    project.manifest(&manifest("two"));
    let plan = project.plan(&[]);
    assert_eq!(
        plan["a"],
        ["the step changed", "cached", "an earlier step rebuilds"]
    );
    let (ran, _) = project.apply(&[]);
    assert_eq!(ran["a"], ["ran", "cached", "ran"]);
}

/// A tiny deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Random edits to files, arguments and the manifest: after each, every step
/// `plan` calls cached is not run by `apply`, and every step it calls a
/// rebuild is run, unless it only reads a rebuilt stage whose files came
/// out the same.
#[test]
fn plan_and_apply_agree_on_random_edits() {
    if !can_run() {
        return;
    }
    let project = two_sources();
    let mut rng = Lcg(0x1b17_d00d);
    let mut version = 1;
    let mut cmd = 0;
    for round in 0..30 {
        match rng.below(6) {
            0 => {
                project.file("a.txt", &format!("a {}\n", rng.below(3)));
            }
            1 => {
                project.file(
                    "src/main.rs",
                    &format!("fn main() {{ {} }}\n", rng.below(3)),
                );
            }
            2 => {
                project.file(&format!("src/m{}.rs", rng.below(4)), "\n");
            }
            3 => version = 1 + rng.below(3),
            4 => {
                cmd += 1;
                project.manifest(
                    &TWO_SOURCES.replace(r#"cmd = ["/a.txt"]"#, &format!(r#"cmd = ["/{cmd}"]"#)),
                );
            }
            _ => {}
        }
        let arg = format!("VERSION={version}");
        let plan = project.plan(&["--arg", &arg]);
        let (ran, _) = project.apply(&["--arg", &arg]);
        for (stage, steps) in &plan {
            for (i, predicted) in steps.iter().enumerate() {
                let actual = ran[stage][i];
                let agrees = match predicted.as_str() {
                    "cached" => actual == "cached",
                    reason if reason.contains("cached after all") => true,
                    _ => actual == "ran",
                };
                assert!(
                    agrees,
                    "round {round}: {stage} step {}: plan said `{predicted}`, apply {actual}",
                    i + 1
                );
            }
        }
    }
}

/// The scenario of the book's cache chapter prints the reasons it shows.
#[test]
fn book_cache_chapter_example() {
    let chapter = std::fs::read_to_string(crate::util::repo().join("book/src/cache.md")).unwrap();
    let block = |fence: &str| -> String {
        let start = chapter.find(fence).expect("the chapter has the block") + fence.len();
        let end = start + chapter[start..].find("```").unwrap();
        chapter[start..end].to_owned()
    };
    let project = Project::new(&block("```toml\n"));
    project
        .file("src/main.rs", "fn main() {}\n")
        .file("VERSION", "1\n");
    project.apply(&[]);
    project.file("src/main.rs", "fn main() { println!(); }\n");
    let out = project.run("plan", &["--arg", "VERSION=2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = block("```text\n");
    for line in shown
        .lines()
        .filter(|l| !l.trim().is_empty() && l.trim() != "...")
    {
        assert!(
            out.stdout.contains(line),
            "`{line}` not in:\n{}",
            out.stdout
        );
    }
}

#[test]
fn names_that_differ_only_in_bytes_that_are_not_utf8_have_their_own_keys() {
    let project = Project::new(
        r#"
[stages.a]
from = "scratch"
steps = [{ copy = ["src/"], to = "/src/" }]
[images.a]
stage = "a"
tags = ["localhost/a:1"]
"#,
    );
    let at = |name: &[u8]| project.path().join(OsStr::from_bytes(name));
    std::fs::create_dir(at(b"src")).unwrap();
    std::fs::write(at(b"src/f-\xff.txt"), "same").unwrap();
    project.apply(&[]);
    assert_eq!(project.plan(&[])["a"], ["cached"]);
    // Same content, same lossy name (`f-\u{fffd}.txt`), other bytes.
    std::fs::rename(at(b"src/f-\xff.txt"), at(b"src/f-\xfe.txt")).unwrap();
    assert_eq!(
        project.plan(&[])["a"],
        ["src/f-\\xfe.txt added, src/f-\\xff.txt removed"]
    );
}

#[test]
fn linking_two_copied_files_rebuilds_the_copy() {
    // The layer holds a hard link where it held a second file: the step
    // reads which names are one file, so its key changes with it.
    let project = Project::new(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"d\", to = \"/d/\" }]\n[images.a]\nstage = \"a\"\n",
    );
    project.file("d/a", "x").file("d/b", "x");
    let (_, separate) = project.apply(&[]);
    std::fs::remove_file(project.path().join("d/b")).unwrap();
    std::fs::hard_link(project.path().join("d/a"), project.path().join("d/b")).unwrap();
    assert_eq!(project.plan(&[])["a"], ["d/b changed"]);
    let (ran, linked) = project.apply(&[]);
    assert_eq!(ran["a"], ["ran"]);
    assert_ne!(separate, linked);
    assert_eq!(project.plan(&[])["a"], ["cached"]);
}
