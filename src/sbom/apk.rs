//! Alpine packages from apk's database, `/lib/apk/db/installed`: one
//! block per package, blank-line separated, single-letter `K:value` lines
//! (`P` name, `V` version, `A` architecture, `L` license, `o` origin).

use super::dpkg::encode;
use super::{Ecosystem, Package};

/// The packages of an apk database's `text`.
pub(super) fn parse(text: &str, found_in: &str, distro: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for block in text.split("\n\n") {
        let field = |key: char| {
            block.lines().find_map(|line| {
                let rest = line.strip_prefix(key)?;
                rest.strip_prefix(':')
            })
        };
        let (Some(name), Some(version)) = (field('P'), field('V')) else {
            continue;
        };
        let mut purl = format!("pkg:apk/{distro}/{}@{}", encode(name), encode(version));
        let mut qualifiers = Vec::new();
        if let Some(arch) = field('A') {
            qualifiers.push(format!("arch={}", encode(arch)));
        }
        if let Some(origin) = field('o').filter(|o| *o != name) {
            qualifiers.push(format!("upstream={}", encode(origin)));
        }
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        packages.push(Package {
            ecosystem: Ecosystem::Apk,
            name: name.to_owned(),
            version: version.to_owned(),
            license: field('L').map(str::to_owned),
            purl,
            found_in: found_in.to_owned(),
        });
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_packages_with_licenses_and_origins() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nL:MIT\no:musl\nm:Timo\n\n\
                    C:Q1def=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\n\n";
        let packages = parse(text, "/lib/apk/db/installed", "alpine");
        let got: Vec<(&str, &str, Option<&str>, &str)> = packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.license.as_deref(),
                    p.purl.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "musl",
                    "1.2.4-r2",
                    Some("MIT"),
                    "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"
                ),
                (
                    "libcrypto3",
                    "3.1.4-r5",
                    Some("Apache-2.0"),
                    "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&upstream=openssl"
                ),
            ]
        );
    }
}
