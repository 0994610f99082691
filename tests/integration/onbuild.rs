//! `ONBUILD`: an image stores triggers, and a build from it runs them.

use std::path::Path;

use crate::util::{can_run, imgbuild_in};

/// Applies `Dockerfile` in `dir` with its own store, writing `layout/` and `rootfs/`.
fn apply(dir: &Path, extra: &[&str]) {
    let store = dir.join(".store");
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "apply",
        "-f",
        "Dockerfile",
        "--output",
        "type=oci-layout,dest=layout",
        "--output",
        "type=local,dest=rootfs",
    ];
    args.extend_from_slice(extra);
    let out = imgbuild_in(dir, &args);
    assert_eq!(out.code, 0, "apply failed:\n{}", out.stderr);
}

/// The config of the only image in the OCI layout `layout`.
fn config(layout: &Path) -> serde_json::Value {
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let blob = |digest: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(&layout.join("index.json"));
    let mut doc = read(&blob(&index["manifests"][0]["digest"]));
    if doc.get("manifests").is_some() {
        doc = read(&blob(&doc["manifests"][0]["digest"]));
    }
    read(&blob(&doc["config"]["digest"]))
}

fn project(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        std::fs::write(dir.path().join(path), content).unwrap();
    }
    dir
}

/// Image A stores triggers; image B, built from A's layout, runs them first.
#[test]
fn triggers_of_a_local_base_run_in_the_next_build() {
    let a = project(
        "FROM scratch\nCOPY <<'EOF' /etc/os\nbase\nEOF\nONBUILD COPY app.txt /app/\nONBUILD LABEL from-trigger=yes\n",
        &[],
    );
    apply(
        a.path(),
        &[
            "--output",
            "type=oci,dest=a.oci.tar",
            "--output",
            "type=docker,dest=a.docker.tar",
        ],
    );
    let a_config = config(&a.path().join("layout"));
    assert_eq!(
        a_config["config"]["OnBuild"],
        serde_json::json!(["COPY app.txt /app/", "LABEL from-trigger=yes"]),
        "{a_config}"
    );

    let b = project(
        &format!(
            "FROM oci-layout:{}\nCOPY own.txt /\n",
            a.path().join("layout").display()
        ),
        &[("app.txt", "from the trigger\n"), ("own.txt", "own\n")],
    );
    let out = imgbuild_in(b.path(), &["plan", "-f", "Dockerfile"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let steps: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .split_once(". build   ")
                .map(|(_, step)| step)
        })
        .collect();
    assert_eq!(
        steps,
        [
            "(onbuild) copy app.txt -> /app/",
            "(onbuild) label from-trigger=yes",
            "copy own.txt -> /"
        ],
        "{}",
        out.stdout
    );

    // Archives are read while planning too.
    for archive in ["oci-archive:a.oci.tar", "docker-archive:a.docker.tar"] {
        let from = archive.replace(':', &format!(":{}/", a.path().display()));
        std::fs::write(
            b.path().join("Archive.Dockerfile"),
            format!("FROM {from}\n"),
        )
        .unwrap();
        let out = imgbuild_in(b.path(), &["plan", "-f", "Archive.Dockerfile"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("1. build   (onbuild) copy app.txt"),
            "{archive}: {}",
            out.stdout
        );
    }

    apply(b.path(), &[]);
    let root = b.path().join("rootfs");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/os")).unwrap(),
        "base\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("app/app.txt")).unwrap(),
        "from the trigger\n"
    );
    let b_config = config(&b.path().join("layout"));
    assert_eq!(
        b_config["config"]["Labels"]["from-trigger"], "yes",
        "{b_config}"
    );
    assert!(
        b_config["config"].get("OnBuild").is_none(),
        "triggers are not inherited: {b_config}"
    );
}

/// A `RUN` trigger runs in the downstream build's container.
#[test]
fn run_triggers_run() {
    if !can_run() {
        return;
    }
    let busybox = crate::run::busybox();
    let a = project(
        &format!(
            "FROM oci-layout:{}\nONBUILD ARG GREETING=hello\nONBUILD RUN echo \"$GREETING from the trigger\" > /marker\n",
            busybox.display()
        ),
        &[],
    );
    apply(a.path(), &[]);
    let b = project(
        &format!(
            "FROM oci-layout:{}\nRUN cat /marker > /copy\n",
            a.path().join("layout").display()
        ),
        &[],
    );
    apply(b.path(), &["--build-arg", "GREETING=hi"]);
    let root = b.path().join("rootfs");
    assert_eq!(
        std::fs::read_to_string(root.join("copy")).unwrap(),
        "hi from the trigger\n"
    );
}

/// A base whose trigger does not parse is refused while planning.
#[test]
fn a_base_with_an_invalid_trigger_is_refused() {
    let base = project(
        "[stages.base]\nfrom = \"scratch\"\nonbuild = [\"RUN true\"]\n[images.base]\nstage = \"base\"\n",
        &[],
    );
    std::fs::rename(
        base.path().join("Dockerfile"),
        base.path().join("imgbuild.toml"),
    )
    .unwrap();
    let store = base.path().join(".store");
    let out = imgbuild_in(
        base.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "apply",
            "--output",
            "type=oci-layout,dest=layout",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Rewrite the stored trigger into one Docker refuses.
    let layout = base.path().join("layout");
    let mut config = config(&layout);
    config["config"]["OnBuild"] = serde_json::json!(["FROM alpine"]);
    replace_config(&layout, &config);

    let b = project(&format!("FROM oci-layout:{}\n", layout.display()), &[]);
    let out = imgbuild_in(b.path(), &["plan", "-f", "Dockerfile"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("has an ONBUILD trigger imgbuild cannot run, `FROM alpine`: FROM isn't allowed as an ONBUILD trigger"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Dockerfile:1:6"), "{}", out.stderr);
}

/// Writes `config` as the config of the only image in `layout`.
fn replace_config(layout: &Path, config: &serde_json::Value) {
    use sha2::Digest as _;
    let bytes = serde_json::to_vec(config).unwrap();
    let hex = |b: &[u8]| {
        sha2::Sha256::digest(b)
            .iter()
            .fold(String::new(), |mut out, x| {
                use std::fmt::Write as _;
                let _ = write!(out, "{x:02x}");
                out
            })
    };
    let blobs = layout.join("blobs/sha256");
    let config_hex = hex(&bytes);
    std::fs::write(blobs.join(&config_hex), &bytes).unwrap();
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let manifest_hex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(&manifest_hex)).unwrap()).unwrap();
    manifest["config"]["digest"] = format!("sha256:{config_hex}").into();
    manifest["config"]["size"] = bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let new_manifest_hex = hex(&manifest_bytes);
    std::fs::write(blobs.join(&new_manifest_hex), &manifest_bytes).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{new_manifest_hex}").into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}
