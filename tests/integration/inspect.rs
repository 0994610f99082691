//! `imgbuild inspect`: layers, files and wasted space of built images.

use serde_json::Value;

use crate::util::{Output, can_run, imgbuild_in};

/// Builds `manifest` in a fresh directory and store; returns the directory,
/// which holds the store in `.store`.
fn build(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imgbuild.toml"), manifest).unwrap();
    let out = imgbuild_in(dir.path(), &["--store", ".store", "apply"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    dir
}

fn inspect(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    let mut all = vec!["--store", ".store", "inspect"];
    all.extend_from_slice(args);
    imgbuild_in(dir.path(), &all)
}

/// A file of `n` bytes as a `file` step.
fn file_step(n: usize, to: &str) -> String {
    format!("  {{ file = \"{}\", to = \"{to}\" }},", "x".repeat(n))
}

/// The book's example: its manifest builds, and inspecting it prints what the book shows.
#[test]
fn overwritten_files_are_wasted_space() {
    let page = std::fs::read_to_string(crate::util::repo().join("book/src/inspect.md")).unwrap();
    let block = |fence: &str| -> String {
        let start = page.find(fence).expect("the page has the block") + fence.len();
        let end = start + page[start..].find("```").unwrap();
        page[start..end].to_owned()
    };
    let manifest = block("```toml\n");
    assert!(
        manifest.contains(&file_step(1000, "/f")),
        "the example keeps its sizes"
    );
    let dir = build(&manifest);
    let out = inspect(&dir, &["localhost/waste:1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
    assert_eq!(
        out.stdout,
        block("```text\n"),
        "book/src/inspect.md shows this output"
    );

    let out = inspect(&dir, &["localhost/waste:1", "--json"]);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let report = &report[0];
    assert_eq!(report["wasted_bytes"], 1010);
    assert_eq!(report["content_bytes"], 1317);
    assert_eq!(report["visible_bytes"], 307);
    assert_eq!(report["chains"][0]["added_in"], 1);
    assert_eq!(report["chains"][0]["undone_in"], 3);
    assert_eq!(report["chains"][0]["wasted_bytes"], 1000);

    let out = inspect(&dir, &["localhost/waste:1", "--fail-on-waste", "1010"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = inspect(&dir, &["localhost/waste:1", "--fail-on-waste", "1000"]);
    assert_eq!(out.code, 1);
    let error = "error: localhost/waste:1 (linux/amd64) wastes 1010 bytes, more than `--fail-on-waste` allows (1000)";
    assert!(out.stderr.contains(error), "{}", out.stderr);

    let out = inspect(&dir, &["localhost/waste:1", "--files"]);
    assert_eq!(out.stdout, "  3       300 B  /f\n  4         7 B  /g\n");
    let out = inspect(&dir, &["localhost/waste:1", "--layer", "3"]);
    assert!(out.stdout.contains("M       300 B  /f"), "{}", out.stdout);
    let out = inspect(&dir, &["localhost/waste:1", "--layer", "9"]);
    assert_eq!(out.code, 2);
    let out = inspect(&dir, &["localhost/nope:1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("localhost/waste:1"), "{}", out.stderr);
}

/// The seed's case: an install step, then a cleanup step; the removed bytes still ship.
#[test]
fn deleted_files_are_wasted_space_and_the_steps_to_chain_are_named() {
    if !can_run() {
        return;
    }
    let manifest = format!(
        "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [\n  {{ run = \"mkdir -p /var/lib/pkgs && head -c 300000 /dev/zero > /var/lib/pkgs/big && head -c 1234 /dev/zero > /var/lib/pkgs/small && head -c 99 /dev/zero > /kept\" }},\n  {{ run = \"rm -rf /var/lib/pkgs\" }},\n]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/apt:1\"]\n",
        crate::run::busybox().display()
    );
    let dir = build(&manifest);
    let out = inspect(&dir, &["localhost/apt:1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let report = &report[0];
    assert_eq!(report["wasted_bytes"], 301_234);
    let layers = report["layers"].as_array().unwrap();
    let n = layers.len();
    assert_eq!(layers[n - 1]["removed"], 3, "the dir and its two files");
    let chain = &report["chains"][0];
    assert_eq!(chain["added_in"], n - 1);
    assert_eq!(chain["undone_in"], n);
    assert_eq!(chain["wasted_bytes"], 301_234);
    assert_eq!(report["offenders"][0]["path"], "/var/lib/pkgs/big");
    let text = inspect(&dir, &["localhost/apt:1"]).stdout;
    assert!(
        text.contains(&format!(
            "layer {n} (`run rm -rf /var/lib/pkgs`) removes or replaces 294.2 KiB that layer {}",
            n - 1
        )),
        "{text}"
    );
    let out = inspect(&dir, &["localhost/apt:1", "--layer", &n.to_string()]);
    assert!(
        out.stdout.contains("D              /var/lib/pkgs/big"),
        "{}",
        out.stdout
    );
}

/// A directory removed and made again: the layer holds an opaque marker
/// (`.wh..wh..opq`), which hides everything lower layers put in it.
#[test]
fn an_opaque_directory_hides_what_lower_layers_put_in_it() {
    if !can_run() {
        return;
    }
    let manifest = format!(
        "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [\n  {{ run = \"mkdir -p /data/sub && head -c 5000 /dev/zero > /data/a && head -c 700 /dev/zero > /data/sub/b\" }},\n  {{ run = \"rm -rf /data && mkdir /data && head -c 10 /dev/zero > /data/c\" }},\n]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/opaque:1\"]\n",
        crate::run::busybox().display()
    );
    let dir = build(&manifest);
    let out = inspect(&dir, &["localhost/opaque:1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let report = &report[0];
    assert_eq!(report["wasted_bytes"], 5700);
    let n = report["layers"].as_array().unwrap().len();
    assert_eq!(report["chains"][0]["added_in"], n - 1);
    assert_eq!(report["chains"][0]["undone_in"], n);
    let files = inspect(&dir, &["localhost/opaque:1", "--files"]).stdout;
    assert!(files.contains("/data/c"), "{files}");
    assert!(!files.contains("/data/a"), "{files}");
    assert!(!files.contains("/data/sub/b"), "{files}");
}
