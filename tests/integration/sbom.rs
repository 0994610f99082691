//! `imgbuild sbom`: the packages of a built image, as SPDX and as a table.

use serde_json::Value;

use crate::util::imgbuild_in;

/// The book's example builds, and `sbom` prints what the book shows.
#[test]
fn the_book_example_lists_the_installed_packages() {
    let page = std::fs::read_to_string(crate::util::repo().join("book/src/sbom.md")).unwrap();
    let block = |fence: &str| -> String {
        let start = page.find(fence).expect("the page has the block") + fence.len();
        let end = start + page[start..].find("```").unwrap();
        page[start..end].to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imgbuild.toml"), block("```toml\n")).unwrap();
    let sbom = |args: &[&str]| {
        let mut all = vec!["--store", ".store", "sbom"];
        all.extend_from_slice(args);
        imgbuild_in(dir.path(), &all)
    };
    let out = imgbuild_in(dir.path(), &["--store", ".store", "apply"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = sbom(&["localhost/sbom-demo:1", "--format", "table"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    if crate::util::host_is_amd64() {
        assert_eq!(
            out.stdout,
            block("```text\n"),
            "book/src/sbom.md shows this output"
        );
    }

    let out = sbom(&["localhost/sbom-demo:1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let purls: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.pointer("/externalRefs/0/referenceLocator")?.as_str())
        .collect();
    assert!(
        purls.contains(&"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:cargo/serde@1.0.200"), "{purls:?}");
    assert!(!purls.iter().any(|p| p.contains("old-tool")), "{purls:?}");
    assert!(
        doc["packages"][0]["versionInfo"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "the image package names its manifest digest: {doc}"
    );

    let again = sbom(&["localhost/sbom-demo:1"]);
    assert_eq!(
        again.stdout, out.stdout,
        "the same image gives the same document"
    );

    let out = sbom(&["localhost/nope:1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("localhost/sbom-demo:1"),
        "{}",
        out.stderr
    );
}
