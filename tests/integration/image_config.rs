//! Image config fields a Dockerfile sets, as `BuildKit` writes them (checked
//! with `docker build` on `BuildKit` 0.8 and `docker image inspect`): the
//! `author` from `MAINTAINER`, `ArgsEscaped` with every `CMD`, `ENTRYPOINT`
//! dropping the base's `CMD`, and `[]` clearing either.

use std::path::Path;

use crate::util::imgbuild_in;

/// Builds stage `target` of `dockerfile` to an OCI layout; returns its config.
fn config_of(dockerfile: &str, target: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = imgbuild_in(
        dir.path(),
        &[
            "--store",
            store.path().to_str().unwrap(),
            "apply",
            "-f",
            "Dockerfile",
            "--target",
            target,
            "--output",
            "type=oci-layout,dest=out",
        ],
    );
    assert_eq!(out.code, 0, "{target}: {}", out.stderr);
    layout_config(&dir.path().join("out"))
}

fn layout_config(dir: &Path) -> serde_json::Value {
    let blob = |digest: &serde_json::Value| -> serde_json::Value {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = blob(&index["manifests"][0]["digest"]);
    blob(&manifest["config"]["digest"])
}

const STAGES: &str = r#"FROM scratch AS base
CMD ["base-cmd"]
FROM base AS entrypoint
ENTRYPOINT ["/bin/echo"]
FROM base AS maintainer
MAINTAINER Jane <j@x> $HOME
CMD echo hi
FROM base AS cleared
ENTRYPOINT []
CMD []
FROM scratch AS own
ENTRYPOINT ["/bin/echo"]
CMD ["x"]
FROM own AS same-entrypoint
ENTRYPOINT ["/bin/echo"]
FROM maintainer AS inherits
ENTRYPOINT echo shell
FROM scratch AS nothing
"#;

#[test]
fn config_fields_are_buildkits() {
    let null = serde_json::Value::Null;
    // (stage, Cmd, Entrypoint, ArgsEscaped, author) as BuildKit 0.8 wrote them.
    let expected = [
        (
            "base",
            serde_json::json!(["base-cmd"]),
            null.clone(),
            true,
            None,
        ),
        (
            "entrypoint",
            null.clone(),
            serde_json::json!(["/bin/echo"]),
            true,
            None,
        ),
        (
            "maintainer",
            serde_json::json!(["/bin/sh", "-c", "echo hi"]),
            null.clone(),
            true,
            Some("Jane <j@x> $HOME"),
        ),
        ("cleared", null.clone(), null.clone(), true, None),
        (
            "own",
            serde_json::json!(["x"]),
            serde_json::json!(["/bin/echo"]),
            true,
            None,
        ),
        (
            "same-entrypoint",
            null.clone(),
            serde_json::json!(["/bin/echo"]),
            true,
            None,
        ),
        (
            "inherits",
            null.clone(),
            serde_json::json!(["/bin/sh", "-c", "echo shell"]),
            true,
            Some("Jane <j@x> $HOME"),
        ),
        ("nothing", null.clone(), null.clone(), false, None),
    ];
    for (stage, cmd, entrypoint, escaped, author) in expected {
        let config = config_of(STAGES, stage);
        let c = &config["config"];
        assert_eq!(c["Cmd"], cmd, "{stage}: {config}");
        assert_eq!(c["Entrypoint"], entrypoint, "{stage}: {config}");
        assert_eq!(
            c.get("ArgsEscaped").is_some_and(|v| v == true),
            escaped,
            "{stage}: {config}"
        );
        assert_eq!(config["author"].as_str(), author, "{stage}: {config}");
        assert!(
            c["Labels"].get("maintainer").is_none(),
            "{stage}: MAINTAINER is no label: {config}"
        );
    }
}
