//! `imgbuild images` and `imgbuild rmi`: what the store holds, and
//! removing tags so that `prune` can free their images.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Output, imgbuild_in};

/// Two images without `run` steps: one with two tags, one for two platforms.
const MANIFEST: &str = r#"[stages.app]
from = "scratch"
steps = [{ file = "app\n", to = "/app" }]

[stages.tool]
from = "scratch"
steps = [{ file = "tool\n", to = "/tool" }]

[images.app]
stage = "app"
platforms = ["linux/amd64"]
tags = ["localhost/app:1", "localhost/app:latest"]

[images.tool]
stage = "tool"
platforms = ["linux/amd64", "linux/arm64"]
tags = ["registry.example.com:5000/team/tool:2.0"]
"#;

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    /// A project with `MANIFEST`, built into its own store.
    fn built() -> Store {
        let store = Store {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(store.dir.path().join("imgbuild.toml"), MANIFEST).unwrap();
        store.ok(&["apply"]);
        store
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&self, args: &[&str]) -> Output {
        let store = self.path();
        let mut all = vec!["--store", store.to_str().unwrap()];
        all.extend_from_slice(args);
        imgbuild_in(self.dir.path(), &all)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.code, 0, "imgbuild {args:?}:\n{}", out.stderr);
        out
    }

    fn images(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["images", "--json"]);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn tags(&self) -> Vec<String> {
        self.images()
            .iter()
            .filter_map(|i| i["reference"].as_str().map(str::to_owned))
            .collect()
    }

    fn id_of(&self, tag: &str) -> String {
        let images = self.images();
        let image = images.iter().find(|i| i["reference"] == tag).unwrap();
        image["id"].as_str().unwrap().to_owned()
    }
}

#[test]
fn images_lists_tags_ids_sizes_and_platforms() {
    let store = Store::built();
    let out = store.ok(&["images"]);
    insta::assert_snapshot!(out.stdout);
    let book = std::fs::read_to_string(crate::util::repo().join("book/src/store.md")).unwrap();
    assert!(
        book.contains(&format!("$ imgbuild images\n{}```", out.stdout)),
        "book/src/store.md shows this table:\n{}",
        out.stdout
    );

    let images = store.images();
    assert_eq!(images.len(), 3);
    let tool = &images[2];
    assert_eq!(tool["repository"], "registry.example.com:5000/team/tool");
    assert_eq!(tool["tag"], "2.0");
    assert_eq!(
        tool["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(tool["created"], "1970-01-01T00:00:00Z");
    let platforms: Vec<&str> = tool["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert!(tool["platforms"][1]["present"].as_bool().unwrap());
    // The index, two manifests, two configs and two layers.
    assert!(tool["size"].as_u64().unwrap() > images[0]["size"].as_u64().unwrap());
    assert_eq!(images[0]["id"], images[1]["id"], "two tags, one image");

    // `-q`: each id once, as `rmi` takes them; `--no-trunc`: whole digests.
    let quiet = store.ok(&["-q", "images"]);
    let ids: Vec<&str> = quiet.stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{}", quiet.stdout);
    assert!(
        images[0]["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sha256:{}", ids[0]))
    );
    assert!(ids.iter().all(|id| id.len() == 12));
    let full = store.ok(&["-q", "images", "--no-trunc"]);
    assert_eq!(full.stdout.lines().next().unwrap(), images[0]["id"]);
}

#[test]
fn images_of_an_empty_store() {
    let store = Store {
        dir: tempfile::tempdir().unwrap(),
    };
    let out = store.ok(&["images"]);
    assert_eq!(
        out.stdout,
        "REPOSITORY   TAG   IMAGE ID   CREATED   SIZE   PLATFORMS\n"
    );
    assert!(
        out.stderr.contains("the store holds no images"),
        "{}",
        out.stderr
    );
    let json = store.ok(&["images", "--json"]);
    assert_eq!((json.stdout.as_str(), json.stderr.as_str()), ("[]\n", ""));
}

#[test]
fn rmi_untags_and_prune_then_frees_the_image() {
    let store = Store::built();
    let app = store.id_of("localhost/app:1");

    // An id with two tags, or a name the store does not have: nothing is removed.
    let out = store.run(&["rmi", &app["sha256:".len()..][..12]]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("has 2 tags: localhost/app:1, localhost/app:latest"),
        "{}",
        out.stderr
    );
    let out = store.run(&["rmi", "localhost/app:1", "localhost/nope:1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no image `localhost/nope:1` in the store"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was removed"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(store.tags().len(), 3);

    // One tag of two: the image stays, so nothing becomes prunable.
    let out = store.ok(&["rmi", "localhost/app:1"]);
    assert_eq!(out.stdout, "Untagged: localhost/app:1\n");
    assert!(!out.stderr.contains("prune"), "{}", out.stderr);

    // `--force` skips what is not there; the last tag goes.
    let out = store.ok(&["rmi", "--force", "localhost/nope:1", "localhost/app"]);
    insta::assert_snapshot!(format!("stdout:\n{}stderr:\n{}", out.stdout, out.stderr));
    assert_eq!(store.tags(), ["registry.example.com:5000/team/tool:2.0"]);

    // `prune` frees the image's manifest and config; its layer is build cache.
    let du: serde_json::Value = serde_json::from_str(&store.ok(&["du", "--json"]).stdout).unwrap();
    assert_eq!(du["kinds"]["unused_blobs"]["count"], 2, "{du}");
    store.ok(&["prune"]);
    let out = store.ok(&["inspect", "registry.example.com:5000/team/tool:2.0"]);
    assert!(
        out.stdout.contains("linux/arm64"),
        "the other image is intact:\n{}",
        out.stdout
    );

    // An id with several tags goes whole with `--force`; then `prune --all`
    // leaves nothing but the store's own files.
    let tool = store.id_of("registry.example.com:5000/team/tool:2.0");
    let out = store.ok(&["rmi", "-f", &tool]);
    assert_eq!(
        out.stdout,
        "Untagged: registry.example.com:5000/team/tool:2.0\n"
    );
    store.ok(&["prune", "--all"]);
    let du: serde_json::Value = serde_json::from_str(&store.ok(&["du", "--json"]).stdout).unwrap();
    assert_eq!(du["total"]["size"], du["kinds"]["other"]["size"], "{du}");
}

#[test]
fn rmi_waits_while_prune_has_the_store() {
    let store = Store::built();
    let handle = imgbuild::store::Store::open(store.path()).unwrap();
    let prune = handle.lock_exclusive().unwrap();
    let path = store.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(["--store", path.to_str().unwrap(), "rmi", "localhost/app:1"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = send.send(line);
    });
    let line = receive.recv_timeout(Duration::from_secs(60));
    let still_running = child.try_wait().unwrap().is_none();
    let tags_while_waiting = handle.tags().unwrap().len();
    drop(prune);
    let out = child.wait_with_output().unwrap();
    assert!(
        line.expect("rmi says it waits")
            .contains("waiting for it to finish")
    );
    assert!(still_running, "rmi waits while prune holds the store");
    assert_eq!(tags_while_waiting, 3, "nothing removed while waiting");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Untagged: localhost/app:1\n"
    );
}
