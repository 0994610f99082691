//! Debian packages from dpkg's database: `/var/lib/dpkg/status` (one
//! stanza per package, blank-line separated, `Field: value` lines with
//! indented continuations) and distroless's `/var/lib/dpkg/status.d/*`
//! (the same stanzas, one file per package, without a `Status` field).

use std::fmt::Write as _;

use super::{Ecosystem, Package};

/// The installed packages of one status file's `text`.
pub(super) fn parse(text: &str, found_in: &str, distro: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Option<&str> {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (!line.starts_with([' ', '\t']) && key.eq_ignore_ascii_case(name))
                    .then(|| value.trim())
            })
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        // `deinstall ok config-files` and the like are not in the image's
        // software; a stanza without a status (status.d) is installed.
        if field("Status").is_some_and(|s| s.split_whitespace().nth(2) != Some("installed")) {
            continue;
        }
        let arch = field("Architecture").map(str::to_owned);
        let source = field("Source").map(|s| s.split_whitespace().next().unwrap_or(s).to_owned());
        let mut purl = format!("pkg:deb/{distro}/{}@{}", encode(name), encode(version));
        let mut qualifiers = Vec::new();
        if let Some(arch) = &arch {
            qualifiers.push(format!("arch={}", encode(arch)));
        }
        if let Some(source) = &source {
            qualifiers.push(format!("upstream={}", encode(source)));
        }
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        packages.push(Package {
            ecosystem: Ecosystem::Deb,
            name: name.to_owned(),
            version: version.to_owned(),
            license: None,
            purl,
            found_in: found_in.to_owned(),
        });
    }
    packages
}

/// `text` percent-encoded for a package URL component: everything but
/// unreserved characters (the purl spec also keeps `+` readable in versions
/// only when encoded, so it is encoded).
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-one
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: busybox
Status: install ok installed
Architecture: amd64
Version: 1:1.35.0-4+b3
";

    #[test]
    fn lists_installed_packages_with_versions_and_package_urls() {
        let packages = parse(STATUS, "/var/lib/dpkg/status", "debian");
        let got: Vec<(&str, &str, &str)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.purl.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "libc6",
                    "2.36-9+deb12u4",
                    "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc"
                ),
                (
                    "busybox",
                    "1:1.35.0-4+b3",
                    "pkg:deb/debian/busybox@1%3A1.35.0-4%2Bb3?arch=amd64"
                ),
            ]
        );
    }

    #[test]
    fn a_distroless_stanza_without_status_is_installed() {
        let packages = parse(
            "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
            "f",
            "debian",
        );
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].name, "tzdata");
    }

    #[test]
    fn a_continuation_line_is_not_a_field() {
        let packages = parse(
            "Package: a\nVersion: 1\nDescription: x\n Version: 2\n",
            "f",
            "debian",
        );
        assert_eq!(packages[0].version, "1");
    }
}
