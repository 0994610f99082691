//! Every example plans, and its plan is snapshot-tested. The plans use an
//! empty store and `--pull=never`, so what they say about registry base
//! images does not depend on the network or on what the machine pulled.

use crate::util::{host_is_amd64, imgbuild, repo};

fn examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| {
            repo()
                .join("examples")
                .join(name)
                .join("imgbuild.toml")
                .exists()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_example_plans() {
    let names = examples();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        let file = format!("examples/{name}/imgbuild.toml");
        let store = tempfile::tempdir().unwrap();
        let store = store.path().to_str().unwrap();
        let out = imgbuild(&["--store", store, "plan", "--pull=never", "-f", &file]);
        assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        assert!(
            out.stdout.starts_with(&format!("Plan for {file}")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn example_plans_match_snapshots() {
    if !host_is_amd64() {
        return;
    }
    for name in examples() {
        let file = format!("examples/{name}/imgbuild.toml");
        let store = tempfile::tempdir().unwrap();
        let store = store.path().to_str().unwrap();
        let json = imgbuild(&[
            "--store",
            store,
            "plan",
            "--pull=never",
            "--json",
            "-f",
            &file,
        ]);
        assert_eq!(json.code, 0, "{}", json.stderr);
        let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        insta::assert_json_snapshot!(format!("{name}.json"), value);
        let text = imgbuild(&["--store", store, "plan", "--pull=never", "-f", &file]);
        insta::assert_snapshot!(format!("{name}.txt"), text.stdout);
    }
}
