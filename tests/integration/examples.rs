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

/// Plans every image of `file` (from the repository root) as JSON,
/// offline and on an empty store.
fn plan_json(file: &str) -> serde_json::Value {
    let store = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--store".to_owned(),
        store.path().to_str().unwrap().to_owned(),
        "plan".to_owned(),
        "--pull=never".to_owned(),
        "--json".to_owned(),
        "-f".to_owned(),
        file.to_owned(),
    ];
    if std::path::Path::new(file)
        .extension()
        .is_some_and(|e| e == "toml")
    {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        for image in manifest["images"].as_table().unwrap().keys() {
            args.extend(["--target".to_owned(), image.clone()]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = imgbuild(&args);
    assert_eq!(out.code, 0, "{file}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Every example ships the files its steps copy, and its README says
/// whether building it needs the network: it does when a stage starts from
/// a registry image.
#[test]
fn every_example_ships_its_sources_and_says_if_it_needs_the_network() {
    let mut files: Vec<String> = examples()
        .iter()
        .map(|name| format!("examples/{name}/imgbuild.toml"))
        .collect();
    files.push("examples/dockerfile/Dockerfile".to_owned());
    for file in files {
        let plan = plan_json(&file);
        let nodes = plan["nodes"].as_array().unwrap();
        for step in nodes.iter().flat_map(|n| n["steps"].as_array().unwrap()) {
            let reason = step["cache"]["reason"].as_str().unwrap_or_default();
            assert!(
                !reason.contains("sources cannot be read"),
                "{file}: a step copies what the example does not ship: {reason}"
            );
        }
        let registry = nodes.iter().any(|n| {
            n["base"]["type"] == "image"
                && !imgbuild::ir::reference::is_local(n["base"]["name"].as_str().unwrap())
        });
        let dir = std::path::Path::new(&file).parent().unwrap();
        let readme = std::fs::read_to_string(repo().join(dir).join("README.md"))
            .unwrap_or_else(|e| panic!("{}: README.md: {e}", dir.display()));
        assert_eq!(
            readme.contains("**Needs the network**"),
            registry,
            "{}/README.md says whether it needs the network",
            dir.display()
        );
    }
}

/// The examples that build offline and without root build here.
#[test]
fn offline_examples_build() {
    let store = tempfile::tempdir().unwrap();
    let store = store.path().to_str().unwrap();
    let out = imgbuild(&[
        "--store",
        store,
        "apply",
        "-f",
        "examples/hello/imgbuild.toml",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let images = imgbuild(&["--store", store, "images", "--json"]);
    let images: serde_json::Value = serde_json::from_str(&images.stdout).unwrap();
    assert_eq!(images[0]["reference"], "localhost/hello:latest");
    // `multistage` runs a container: `run::multistage_example_builds_and_runs`
    // builds it from busybox-static, as its README says.
}
