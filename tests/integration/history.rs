//! `imgbuild history`: every `apply` is recorded, with its steps' times.

use std::path::Path;

use serde_json::Value;

use crate::dockerfile::dockerfile_dir;
use crate::util::{Output, imgbuild_in};

fn history(dir: &Path, store: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--store", store.to_str().unwrap(), "history"];
    all.extend_from_slice(args);
    imgbuild_in(dir, &all)
}

/// Three builds (a cold one, a cached one, a failing one) are three rows,
/// newest first; `show` gives each step's outcome and time; build argument
/// values are never kept.
#[test]
fn every_build_is_recorded_with_its_steps() {
    let dir = dockerfile_dir(&format!(
        "FROM oci-layout:{}\nARG TOKEN\nCOPY hello.txt /hello.txt\nRUN test -e /hello.txt\n",
        crate::run::busybox().display()
    ));
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    let store = tempfile::tempdir().unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "-f",
            "Dockerfile",
            "--build-arg",
            "TOKEN=hunter2-never-kept",
        ];
        args.extend_from_slice(extra);
        imgbuild_in(dir.path(), &args)
    };
    let empty = history(dir.path(), store.path(), &["ls"]);
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stderr.contains("no builds yet"), "{}", empty.stderr);

    assert_eq!(apply(&[]).code, 0);
    assert_eq!(apply(&[]).code, 0);
    std::fs::remove_file(dir.path().join("hello.txt")).unwrap();
    assert_eq!(apply(&[]).code, 1, "the copy fails without its source");

    let ls = history(dir.path(), store.path(), &["ls"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    let rows: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(rows.len(), 4, "a header and three builds:\n{}", ls.stdout);
    assert!(rows[0].starts_with("BUILD ID"), "{}", ls.stdout);
    assert!(rows[1].contains("failed"), "newest first:\n{}", ls.stdout);
    assert!(rows[3].contains(" ok "), "{}", ls.stdout);

    let json = history(dir.path(), store.path(), &["ls", "--json"]);
    let builds: Value = serde_json::from_str(&json.stdout).unwrap();
    let builds = builds.as_array().unwrap();
    assert_eq!(builds.len(), 3);
    let status = |build: &Value, wanted: &str| {
        build["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == wanted)
            .count()
    };
    let (failed, cached, cold) = (&builds[0], &builds[1], &builds[2]);
    assert_eq!(status(cold, "built"), 3, "arg, copy and run:\n{cold}");
    assert_eq!(status(cached, "cached"), 3, "{cached}");
    assert_eq!(status(cached, "built"), 0, "{cached}");
    assert_eq!(failed["succeeded"], false);
    assert!(
        failed["error"].as_str().unwrap().contains("hello.txt"),
        "{failed}"
    );
    assert_eq!(cold["build_args"], serde_json::json!(["TOKEN"]));
    assert!(
        cold["images"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let id = cold["id"].as_str().unwrap();
    let show = history(dir.path(), store.path(), &["show", &id[..id.len() - 2]]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout
            .contains("args      TOKEN (values are not kept)"),
        "{}",
        show.stdout
    );
    let built_steps = show
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("built "))
        .count();
    assert_eq!(built_steps, 3, "{}", show.stdout);
    assert!(show.stdout.contains("] arg TOKEN\n"), "{}", show.stdout);
    assert!(
        show.stdout.contains("run test -e /hello.txt"),
        "{}",
        show.stdout
    );

    let unknown = history(dir.path(), store.path(), &["show", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no recorded build"),
        "{}",
        unknown.stderr
    );

    for entry in std::fs::read_dir(store.path().join("history")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("hunter2"),
            "a build argument's value was kept"
        );
    }
}
