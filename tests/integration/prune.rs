//! `imgbuild du` and `imgbuild prune` on a store that real builds filled:
//! tagged images survive and stay valid, the cache survives plain prune,
//! and `--all` and `--keep-storage` remove what they say.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::util::{Output, have, imgbuild_in, repo, run_tool};

/// The book's example (book/src/store.md); no `run` step, so no runtime is needed.
const MANIFEST: &str = r#"[stages.site]
from = "scratch"
steps = [
  { file = "server { listen 8080; root /srv; }\n", to = "/etc/site.conf" },
  { copy = "index.html", to = "/srv/" },
]

[images.site]
stage = "site"
tags = ["localhost/site:latest"]
"#;

const TAG: &str = "localhost/site:latest";

/// A project directory with the example manifest and its own store.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imgbuild.toml"), MANIFEST).unwrap();
        Site { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut all = vec!["--store", store.to_str().unwrap()];
        all.extend_from_slice(args);
        imgbuild_in(self.dir.path(), &all)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.code, 0, "imgbuild {args:?}:\n{}", out.stderr);
        out
    }

    /// Builds with `index.html` holding `content`.
    fn build(&self, content: &str) {
        std::fs::write(self.dir.path().join("index.html"), content).unwrap();
        self.ok(&["apply"]);
    }

    /// The cache status of every step `plan` shows with `index.html` holding `content`.
    fn plan(&self, content: &str) -> Vec<String> {
        std::fs::write(self.dir.path().join("index.html"), content).unwrap();
        let plan: serde_json::Value =
            serde_json::from_str(&self.ok(&["plan", "--json"]).stdout).unwrap();
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["steps"].as_array().unwrap())
            .map(|s| s["cache"]["status"].as_str().unwrap().to_owned())
            .collect()
    }

    fn du(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["du", "--json"]).stdout).unwrap()
    }

    /// Checks the tagged image: `store verify`, and skopeo copying every blob out.
    fn assert_image_valid(&self) {
        let verify = self.ok(&["store", "verify"]);
        assert!(verify.stdout.contains("0 corrupt"), "{}", verify.stdout);
        if have("skopeo") {
            let source = format!("oci:{}:{TAG}", self.store().display());
            let inspect: serde_json::Value =
                serde_json::from_str(&run_tool("skopeo", &["inspect", &source])).unwrap();
            assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
            let copy = self.dir.path().join("copy");
            run_tool(
                "skopeo",
                &["copy", &source, &format!("dir:{}", copy.display())],
            );
        }
    }

    /// Sets a cache entry's last use to `secs_ago` seconds ago.
    fn set_last_use(&self, key: &str, secs_ago: u64) {
        std::fs::File::options()
            .write(true)
            .open(self.store().join("build-cache/entries").join(key))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    }
}

fn cached(n: usize) -> Vec<String> {
    vec!["cached".to_owned(); n]
}

/// (key, shared) of each step cache entry `du --json` lists.
fn entries(du: &serde_json::Value) -> Vec<(String, bool)> {
    du["cache_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step")
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["shared"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn kind(du: &serde_json::Value, name: &str, field: &str) -> u64 {
    du["kinds"][name][field].as_u64().unwrap()
}

/// Sizes depend on the filesystem: keep only whether each is zero.
fn normalize_sizes(text: &str) -> String {
    let size = regex::Regex::new(r" +(\d+(?:\.\d)? (?:B|KiB|MiB|GiB))").unwrap();
    size.replace_all(text, |c: &regex::Captures<'_>| {
        if &c[1] == "0 B" {
            " 0".to_owned()
        } else {
            " <size>".to_owned()
        }
    })
    .into_owned()
}

#[test]
fn the_book_shows_this_example() {
    let book = std::fs::read_to_string(repo().join("book/src/store.md")).unwrap();
    assert!(book.contains(MANIFEST), "book/src/store.md has the example");
}

#[test]
fn plain_prune_keeps_images_and_cache() {
    let site = Site::new();
    site.build("<h1>one</h1>\n");
    site.build("<h1>two</h1>\n");

    let before = site.du();
    assert_eq!(before["kinds"]["tagged_images"]["count"], 1);
    assert_eq!(before["kinds"]["build_cache"]["count"], 3);
    assert_eq!(
        before["kinds"]["unused_blobs"]["count"], 2,
        "the first build's manifest and config: {before:#}"
    );
    let table = site.ok(&["du"]).stdout;
    insta::assert_snapshot!("du_after_two_builds", normalize_sizes(&table));

    let out = site.ok(&["prune"]);
    assert!(
        out.stdout.starts_with(
            "removed 0 cache entries, 2 blobs, 0 snapshots, 0 cache mounts, 0 temp files\nreclaimed "
        ),
        "{}",
        out.stdout
    );
    let after = site.du();
    assert_eq!(
        after["total"]["size"].as_u64().unwrap(),
        before["total"]["size"].as_u64().unwrap()
            - before["total"]["reclaimable"].as_u64().unwrap(),
        "prune freed what du said it would"
    );
    assert_eq!(after["total"]["reclaimable"], 0);
    assert_eq!(after["kinds"]["build_cache"]["count"], 3);
    site.assert_image_valid();
    // Both versions are still fully cached.
    assert_eq!(site.plan("<h1>two</h1>\n"), cached(2));
    assert_eq!(site.plan("<h1>one</h1>\n"), cached(2));
}

#[test]
fn prune_all_leaves_only_tagged_images() {
    let site = Site::new();
    site.build("<h1>one</h1>\n");
    site.build("<h1>two</h1>\n");
    let before = site.du();
    let out = site.ok(&["-v", "prune", "--all"]);
    // The old copy layer, the old manifest and config; the snapshot a copy step read.
    let snapshots = kind(&before, "snapshots", "count");
    let summary = format!(
        "removed 3 cache entries, 3 blobs, {snapshots} snapshot{}, 0 cache mounts, 0 temp files, 2 cache index files\n",
        if snapshots == 1 { "" } else { "s" }
    );
    assert!(out.stdout.contains(&summary), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("removed cache entry ").count(),
        3,
        "-v lists each: {}",
        out.stdout
    );
    let after = site.du();
    assert_eq!(after["kinds"]["build_cache"]["count"], 0);
    assert_eq!(after["kinds"]["snapshots"]["count"], 0);
    assert_eq!(after["total"]["reclaimable_all"], 0);
    assert_eq!(
        after["total"]["size"].as_u64().unwrap(),
        before["total"]["size"].as_u64().unwrap()
            - before["total"]["reclaimable_all"].as_u64().unwrap()
    );
    assert_eq!(
        kind(&after, "tagged_images", "size"),
        kind(&before, "tagged_images", "size")
    );
    site.assert_image_valid();
    let statuses = site.plan("<h1>two</h1>\n");
    assert_eq!(statuses, vec!["build".to_owned(); 2]);
    // And a build after it works, from nothing.
    site.build("<h1>two</h1>\n");
    assert_eq!(site.plan("<h1>two</h1>\n"), cached(2));
}

#[test]
fn keep_storage_evicts_least_recently_used_entries_first() {
    let site = Site::new();
    site.build("<h1>one</h1>\n");
    site.build("<h1>two</h1>\n");
    site.ok(&["prune"]);
    let du = site.du();
    let list = entries(&du);
    // The first build's copy step is the only entry whose layer no tag has.
    let old_copy = list.iter().find(|(_, shared)| !shared).unwrap().0.clone();
    let others: Vec<String> = list
        .iter()
        .filter(|(k, _)| *k != old_copy)
        .map(|(k, _)| k.clone())
        .collect();
    // Oldest: one of the current build's entries, then the old copy, then the other.
    site.set_last_use(&others[0], 3000);
    site.set_last_use(&old_copy, 2000);
    site.set_last_use(&others[1], 1000);
    let verbose = site.ok(&["-v", "du"]).stdout;
    let order: Vec<&str> = verbose
        .lines()
        .skip_while(|l| !l.starts_with("CACHE ENTRY"))
        .skip(1)
        .map(|l| &l[..12])
        .collect();
    assert_eq!(
        order,
        [&others[0][..12], &old_copy[..12], &others[1][..12]],
        "{verbose}"
    );

    // Just over the limit: the least recently used entry goes, nothing else.
    let total = du["total"]["size"].as_u64().unwrap();
    let limit = (total - 1).to_string();
    let out = site.ok(&["-v", "prune", "--keep-storage", &limit]);
    assert!(
        out.stdout.starts_with(&format!(
            "removed cache entry {} (least recently used)",
            &others[0][..12]
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("removed 1 cache entry, 0 blobs"),
        "{}",
        out.stdout
    );
    let left: Vec<String> = entries(&site.du()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, [old_copy.clone(), others[1].clone()]);

    // Again: now the old copy goes, with its layer.
    let total = site.du()["total"]["size"].as_u64().unwrap();
    let out = site.ok(&["prune", "--keep-storage", &(total - 1).to_string()]);
    assert!(
        out.stdout.contains("removed 1 cache entry, 1 blob"),
        "{}",
        out.stdout
    );
    let left: Vec<String> = entries(&site.du()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, [others[1].clone()]);
    site.assert_image_valid();

    // A limit below what tagged images need: every entry goes, and prune says why it is still over.
    let out = site.ok(&["prune", "--keep-storage", "1k"]);
    assert!(
        out.stdout.contains("removed 1 cache entry"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("more than --keep-storage 1.0 KiB"),
        "{}",
        out.stderr
    );
    assert_eq!(site.du()["kinds"]["build_cache"]["count"], 0);
    site.assert_image_valid();
}

#[test]
fn du_lists_cache_entries_with_v() {
    let site = Site::new();
    site.build("<h1>one</h1>\n");
    let du = site.du();
    // Used 1000 s apart, the `file` step's entry last: the
    // entries' own times can tie (file times tick coarsely), and ties go
    // by key, which would make the order below chance.
    let mut steps: Vec<(String, String)> = du["cache_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step")
        .map(|e| {
            let created_by = e["created_by"].as_str().unwrap_or_default().to_owned();
            (created_by, e["key"].as_str().unwrap().to_owned())
        })
        .collect();
    steps.sort_by_key(|(created_by, _)| !created_by.contains("file /etc/site.conf"));
    for (n, (_, key)) in steps.iter().enumerate() {
        site.set_last_use(key, 1000 * (n as u64 + 1));
    }
    let out = site.ok(&["-v", "du"]).stdout;
    let hex = regex::Regex::new(r"(?m)^[0-9a-f]{12}").unwrap();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    let out = normalize_sizes(&out);
    let out = hex.replace_all(&out, "<key>");
    let out = time.replace_all(&out, "<time>");
    insta::assert_snapshot!("du_verbose_after_one_build", out);
    let json = site.du();
    let entry = &json["cache_entries"][0];
    assert_eq!(entry["usable"], true);
    assert!(entry["created_by"].as_str().is_some(), "{entry}");
    assert!(json["store"].as_str().unwrap().ends_with("/store"));
}

/// Keys of the compressed layers `du --json` lists, usable ones only.
fn variants(du: &serde_json::Value) -> Vec<String> {
    du["cache_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "compressed_layer" && e["usable"] == true)
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn exports_keep_their_compressed_layers_until_prune_all() {
    let site = Site::new();
    std::fs::write(site.dir.path().join("index.html"), "<h1>one</h1>\n").unwrap();
    site.ok(&["apply", "--output", "type=oci-layout,dest=out"]);
    let du = site.du();
    let compressed = variants(&du);
    assert_eq!(compressed.len(), 2, "one per layer: {du:#}");
    assert!(
        du["cache_entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "compressed_layer")
            .all(|e| e["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"),
        "{du:#}"
    );

    site.ok(&["prune"]);
    assert_eq!(variants(&site.du()), compressed, "plain prune keeps them");
    // The next export uses them: they are not written again.
    let written = || -> Vec<SystemTime> {
        compressed
            .iter()
            .map(|key| {
                let path = site.store().join("build-cache/variants").join(key);
                std::fs::metadata(path).unwrap().modified().unwrap()
            })
            .collect()
    };
    let before = written();
    site.ok(&["apply", "--output", "type=oci-layout,dest=out2"]);
    assert_eq!(written(), before);
    assert_eq!(variants(&site.du()), compressed);

    site.ok(&["prune", "--all"]);
    let du = site.du();
    assert!(variants(&du).is_empty());
    assert_eq!(du["kinds"]["build_cache"]["count"], 0);
    site.assert_image_valid();
    // Exports still work, compressing again.
    site.ok(&["apply", "--output", "type=oci-layout,dest=out3"]);
    if have("skopeo") {
        let layout = site.dir.path().join("out3");
        run_tool(
            "skopeo",
            &["inspect", &format!("oci:{}:latest", layout.display())],
        );
    }
}

#[test]
fn an_empty_store_is_nothing_to_prune() {
    let site = Site::new();
    let out = site.ok(&["prune"]);
    assert!(
        out.stdout.starts_with(
            "removed 0 cache entries, 0 blobs, 0 snapshots, 0 cache mounts, 0 temp files\nreclaimed 0 B"
        ),
        "{}",
        out.stdout
    );
    let du = site.du();
    assert_eq!(du["kinds"]["tagged_images"]["count"], 0);
    assert_eq!(du["total"]["reclaimable"], 0);
}

#[test]
fn bad_sizes_and_flag_combinations_are_usage_errors() {
    let site = Site::new();
    let out = site.run(&["prune", "--keep-storage", "10XB"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("`10XB` is not a size"),
        "{}",
        out.stderr
    );
    let out = site.run(&["prune", "--all", "--keep-storage", "1G"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// Holds the shared lock as a running build does.
fn hold_build_lock(store: &Path) -> imgbuild::store::StoreLock {
    let store = imgbuild::store::Store::open(store).unwrap();
    store.lock_shared().unwrap()
}

#[test]
fn prune_waits_for_running_builds_or_fails_with_no_wait() {
    let site = Site::new();
    site.build("<h1>one</h1>\n");
    site.build("<h1>two</h1>\n");
    let build = hold_build_lock(&site.store());

    let out = site.run(&["prune", "--no-wait"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("the store is in use"), "{}", out.stderr);
    assert_eq!(
        site.du()["kinds"]["unused_blobs"]["count"],
        2,
        "nothing removed"
    );

    let store = site.store();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(["--store", store.to_str().unwrap(), "prune"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first line on stderr says it waits; read it without hanging the test.
    let stderr = child.stderr.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = send.send(line);
    });
    let line = receive.recv_timeout(Duration::from_secs(60));
    let still_running = child.try_wait().unwrap().is_none();
    drop(build);
    let out = child.wait_with_output().unwrap();
    let line = line.expect("prune says it is waiting");
    assert!(line.contains("waiting for it to finish"), "{line}");
    assert!(still_running, "prune waits while a build holds the store");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 blobs"), "{stdout}");
}
