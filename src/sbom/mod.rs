//! What software an image holds, as an SPDX 2.3 document: packages read
//! from the image's own databases (dpkg, apk) and from language lock files
//! copied into it (`Cargo.lock`, `package-lock.json`, Python `dist-info`).
//! No container runs: the files are read from the layers' tar streams
//! (see [`files`]), so an SBOM of any platform's image is as fast as
//! reading its layers.

mod apk;
mod dpkg;
mod files;
mod lockfiles;
mod spdx;

use serde::Serialize;

pub use spdx::{Subject, document};

use crate::image::Image;
use crate::layer::LayerError;
use crate::store::{Store, StoreError};

/// Why an image's packages could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A layer blob is missing or unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer is not a readable tar stream.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// What was wrong.
        source: LayerError,
    },
}

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// A Debian package (dpkg).
    Deb,
    /// An Alpine package (apk).
    Apk,
    /// A Rust crate pinned by a `Cargo.lock`.
    Cargo,
    /// An npm package pinned by a `package-lock.json`.
    Npm,
    /// An installed Python distribution.
    Python,
}

impl Ecosystem {
    /// The name used in output (`deb`, `apk`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Npm => "npm",
            Ecosystem::Python => "python",
        }
    }
}

/// One package found in an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Package {
    /// Which package manager it belongs to.
    pub ecosystem: Ecosystem,
    /// Its name.
    pub name: String,
    /// Its version, as the database writes it.
    pub version: String,
    /// The license the database declares, when it declares one.
    pub license: Option<String>,
    /// Its package URL (`pkg:deb/debian/libc6@2.36?arch=amd64`).
    pub purl: String,
    /// The file of the image it was read from (`/var/lib/dpkg/status`).
    pub found_in: String,
}

/// Every package of `image`, sorted, without duplicates.
pub fn packages(store: &Store, image: &Image) -> Result<Vec<Package>, SbomError> {
    let files = files::collect(store, image)?;
    let os_release = files
        .get(b"etc/os-release".as_slice())
        .or_else(|| files.get(b"usr/lib/os-release".as_slice()))
        .map(|content| String::from_utf8_lossy(content).into_owned());
    let distro = |default: &str| {
        os_release
            .as_deref()
            .and_then(os_release_id)
            .unwrap_or_else(|| default.to_owned())
    };
    let mut packages = Vec::new();
    for (path, content) in &files {
        let text = String::from_utf8_lossy(content);
        let found_in = format!("/{}", crate::util::utf8::escaped(path));
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let found = if path == "var/lib/dpkg/status" || path.starts_with(b"var/lib/dpkg/status.d/")
        {
            dpkg::parse(&text, &found_in, &distro("debian"))
        } else if path == "lib/apk/db/installed" {
            apk::parse(&text, &found_in, &distro("alpine"))
        } else if name == b"Cargo.lock" {
            lockfiles::cargo(&text, &found_in)
        } else if name == b"package-lock.json" {
            lockfiles::npm(&text, &found_in)
        } else if name == b"METADATA" {
            lockfiles::python(&text, &found_in)
        } else {
            Vec::new()
        };
        packages.extend(found);
    }
    packages.sort();
    packages.dedup_by(|a, b| a.purl == b.purl);
    Ok(packages)
}

/// The `ID` of an os-release file (`debian`, `alpine`), lowercased.
fn os_release_id(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("ID=")?.trim().trim_matches(['"', '\'']);
        let ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        ok.then(|| value.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_comes_from_os_release() {
        assert_eq!(
            os_release_id("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n").as_deref(),
            Some("alpine")
        );
        assert_eq!(os_release_id("ID=\"Debian\"\n").as_deref(), Some("debian"));
        assert_eq!(os_release_id("ID=a/b\n"), None);
    }
}
