//! Language packages from files copied into an image: `Cargo.lock`,
//! npm's `package-lock.json` (lockfile versions 1 to 3) and Python's
//! installed `*.dist-info/METADATA`. A file that does not parse lists
//! nothing: a lock file is the application's, not a contract with us.

use serde_json::Value;

use super::dpkg::encode;
use super::{Ecosystem, Package};

/// The crates a `Cargo.lock` pins.
pub(super) fn cargo(text: &str, found_in: &str) -> Vec<Package> {
    let Ok(lock) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(entries) = lock.get("package").and_then(toml::Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?;
            let version = entry.get("version")?.as_str()?;
            Some(Package {
                ecosystem: Ecosystem::Cargo,
                name: name.to_owned(),
                version: version.to_owned(),
                license: None,
                purl: format!("pkg:cargo/{}@{}", encode(name), encode(version)),
                found_in: found_in.to_owned(),
            })
        })
        .collect()
}

/// The packages a `package-lock.json` installs.
pub(super) fn npm(text: &str, found_in: &str) -> Vec<Package> {
    let Ok(lock) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut packages = Vec::new();
    let mut push = |name: &str, entry: &Value| {
        if let Some(version) = entry.get("version").and_then(Value::as_str) {
            let license = entry
                .get("license")
                .and_then(Value::as_str)
                .map(str::to_owned);
            packages.push(Package {
                ecosystem: Ecosystem::Npm,
                name: name.to_owned(),
                version: version.to_owned(),
                license,
                purl: npm_purl(name, version),
                found_in: found_in.to_owned(),
            });
        }
    };
    if let Some(entries) = lock.get("packages").and_then(Value::as_object) {
        // Lockfile v2/v3: keys are install paths; "" is the project itself.
        for (path, entry) in entries {
            if let Some((_, name)) = path.rsplit_once("node_modules/") {
                push(name, entry);
            }
        }
    } else if let Some(entries) = lock.get("dependencies").and_then(Value::as_object) {
        // Lockfile v1: a tree of `dependencies`.
        let mut stack: Vec<(&String, &Value)> = entries.iter().collect();
        while let Some((name, entry)) = stack.pop() {
            push(name, entry);
            if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
                stack.extend(nested.iter());
            }
        }
    }
    packages
}

fn npm_purl(name: &str, version: &str) -> String {
    match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((scope, name)) => format!(
            "pkg:npm/%40{}/{}@{}",
            encode(scope),
            encode(name),
            encode(version)
        ),
        None => format!("pkg:npm/{}@{}", encode(name), encode(version)),
    }
}

/// The distribution an installed Python package's `METADATA` names.
pub(super) fn python(text: &str, found_in: &str) -> Vec<Package> {
    // The header ends at the first blank line; the description follows.
    let header = text.split("\n\n").next().unwrap_or_default();
    let field = |key: &str| {
        header.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(key).then(|| v.trim())
        })
    };
    let (Some(name), Some(version)) = (field("Name"), field("Version")) else {
        return Vec::new();
    };
    // PEP 503 normalised name in the package URL.
    let normalised = name.to_ascii_lowercase().replace(['_', '.'], "-");
    vec![Package {
        ecosystem: Ecosystem::Python,
        name: name.to_owned(),
        version: version.to_owned(),
        license: field("License-Expression")
            .or_else(|| field("License"))
            .map(str::to_owned),
        purl: format!("pkg:pypi/{}@{}", encode(&normalised), encode(version)),
        found_in: found_in.to_owned(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(packages: &[Package]) -> Vec<(&str, &str, &str)> {
        let mut got: Vec<_> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.purl.as_str()))
            .collect();
        got.sort_unstable();
        got
    }

    #[test]
    fn a_cargo_lock_lists_its_crates() {
        let text = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n\
                    [[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        assert_eq!(
            names(&cargo(text, "/app/Cargo.lock")),
            [
                ("app", "0.1.0", "pkg:cargo/app@0.1.0"),
                ("serde", "1.0.200", "pkg:cargo/serde@1.0.200")
            ]
        );
        assert!(cargo("not toml [", "f").is_empty());
    }

    #[test]
    fn package_locks_of_each_version_list_their_packages() {
        let v3 = r#"{"lockfileVersion":3,"packages":{"":{"name":"app","version":"1.0.0"},
            "node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"},
            "node_modules/@types/node":{"version":"20.1.0"},
            "node_modules/a/node_modules/b":{"version":"2.0.0"}}}"#;
        assert_eq!(
            names(&npm(v3, "f")),
            [
                ("@types/node", "20.1.0", "pkg:npm/%40types/node@20.1.0"),
                ("b", "2.0.0", "pkg:npm/b@2.0.0"),
                ("left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0"),
            ]
        );
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0",
            "dependencies":{"b":{"version":"0.2.0"}}}}}"#;
        assert_eq!(
            names(&npm(v1, "f")),
            [
                ("a", "1.0.0", "pkg:npm/a@1.0.0"),
                ("b", "0.2.0", "pkg:npm/b@0.2.0")
            ]
        );
    }

    #[test]
    fn python_metadata_names_one_distribution() {
        let text = "Metadata-Version: 2.1\nName: Flask_Login\nVersion: 0.6.3\nLicense: MIT\n\nVersion: not-this\n";
        let packages = python(text, "f");
        assert_eq!(
            names(&packages),
            [("Flask_Login", "0.6.3", "pkg:pypi/flask-login@0.6.3")]
        );
        assert_eq!(packages[0].license.as_deref(), Some("MIT"));
    }
}
