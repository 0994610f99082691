//! The committed JSON Schema is the one `imgbuild schema` prints.

use crate::util::{imgbuild, repo};

#[test]
fn committed_schema_is_current() {
    let out = imgbuild(&["schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let committed = std::fs::read_to_string(repo().join("schemas/imgbuild.schema.json"))
        .expect("schemas/imgbuild.schema.json exists");
    assert!(
        committed == out.stdout,
        "schemas/imgbuild.schema.json is stale: run `cargo run -- schema > schemas/imgbuild.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    for key in ["build", "args", "stages", "images", "groups"] {
        assert!(schema["properties"].get(key).is_some(), "{key}");
    }
}
