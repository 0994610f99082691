//! The SPDX 2.3 JSON document of an image's packages. Deterministic: the
//! same image gives the same bytes (the creation time is the image's own,
//! the namespace is derived from the image and its packages).

use serde_json::{Value, json};

use super::Package;

/// The image an SBOM describes.
#[derive(Debug, Clone)]
pub struct Subject {
    /// How the user named it (a tag, a layout, a registry reference).
    pub name: String,
    /// Its manifest digest, when it has one.
    pub manifest: Option<String>,
    /// Its platform (`linux/amd64`).
    pub platform: String,
    /// Its config's creation time (RFC 3339).
    pub created: String,
}

/// The SPDX 2.3 document listing `packages` as contained in `subject`.
pub fn document(subject: &Subject, packages: &[Package]) -> Value {
    let namespace_seed = serde_json::to_vec(&(
        &subject.name,
        &subject.manifest,
        &subject.platform,
        packages,
    ))
    .expect("packages serialize");
    let namespace = blake3::hash(&namespace_seed).to_hex();
    let mut spdx_packages = vec![json!({
        "name": subject.name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": subject.manifest.clone().unwrap_or_else(|| "NOASSERTION".to_owned()),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("platform {}", subject.platform),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, package) in packages.iter().enumerate() {
        let id = format!(
            "SPDXRef-Package-{}-{}-{}",
            package.ecosystem.name(),
            spdx_id_part(&package.name),
            i + 1
        );
        let license = package
            .license
            .as_deref()
            .filter(|l| is_license_expression(l))
            .unwrap_or("NOASSERTION");
        spdx_packages.push(json!({
            "name": package.name,
            "SPDXID": id,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license,
            "sourceInfo": format!("read from {}", package.found_in),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": package.purl,
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} ({})", subject.name, subject.platform),
        "documentNamespace": format!("https://imgbuild.invalid/spdx/{namespace}"),
        "creationInfo": {
            "created": subject.created,
            "creators": [format!("Tool: imgbuild-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    })
}

/// `name` with what an SPDX id may not hold (anything but letters, digits,
/// `.` and `-`) replaced by `-`.
fn spdx_id_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Whether `text` reads as an SPDX license expression (ids joined by
/// `AND`/`OR`/`WITH`, parentheses): databases also hold free text such as
/// `GPL2 or later`, which must not be passed off as an expression.
fn is_license_expression(text: &str) -> bool {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let mut tokens = spaced.split_whitespace().peekable();
    let mut expect_id = true;
    let mut depth = 0i32;
    if tokens.peek().is_none() {
        return false;
    }
    for token in tokens {
        match token {
            "(" if expect_id => depth += 1,
            ")" if !expect_id => depth -= 1,
            "AND" | "OR" | "WITH" if !expect_id => expect_id = true,
            id if expect_id => {
                let id = id.strip_suffix('+').unwrap_or(id);
                if id.is_empty()
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                    || id.starts_with('-')
                {
                    return false;
                }
                expect_id = false;
            }
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    !expect_id && depth == 0
}

#[cfg(test)]
mod tests {
    use super::super::Ecosystem;
    use super::*;

    fn subject() -> Subject {
        Subject {
            name: "localhost/app:1".into(),
            manifest: Some("sha256:abc".into()),
            platform: "linux/amd64".into(),
            created: "1970-01-01T00:00:00Z".into(),
        }
    }

    fn package(name: &str, license: Option<&str>) -> Package {
        Package {
            ecosystem: Ecosystem::Apk,
            name: name.into(),
            version: "1.0-r0".into(),
            license: license.map(Into::into),
            purl: format!("pkg:apk/alpine/{name}@1.0-r0"),
            found_in: "/lib/apk/db/installed".into(),
        }
    }

    #[test]
    fn a_document_lists_each_package_with_its_purl() {
        let doc = document(
            &subject(),
            &[
                package("musl", Some("MIT")),
                package("my_lib", Some("GPL2 or later")),
            ],
        );
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 3);
        assert_eq!(packages[1]["name"], "musl");
        assert_eq!(packages[1]["licenseDeclared"], "MIT");
        assert_eq!(
            packages[1]["externalRefs"][0]["referenceLocator"],
            "pkg:apk/alpine/musl@1.0-r0"
        );
        assert_eq!(packages[2]["SPDXID"], "SPDXRef-Package-apk-my-lib-2");
        assert_eq!(packages[2]["licenseDeclared"], "NOASSERTION");
        assert_eq!(doc["relationships"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn the_same_image_gives_the_same_document() {
        let packages = [package("musl", None)];
        assert_eq!(
            document(&subject(), &packages),
            document(&subject(), &packages)
        );
        let other = document(&subject(), &[package("zlib", None)]);
        assert_ne!(
            document(&subject(), &packages)["documentNamespace"],
            other["documentNamespace"]
        );
    }

    #[test]
    fn license_expressions_are_told_from_free_text() {
        for (text, ok) in [
            ("MIT", true),
            ("GPL-2.0-or-later", true),
            ("MIT OR Apache-2.0", true),
            ("(MIT AND BSD-3-Clause) OR GPL-2.0+", true),
            ("GPL-2.0-only WITH Classpath-exception-2.0", true),
            ("GPL2 or later", false),
            ("MIT AND", false),
            ("(MIT", false),
            ("", false),
            ("see LICENSE", false),
        ] {
            assert_eq!(is_license_expression(text), ok, "{text}");
        }
    }
}
