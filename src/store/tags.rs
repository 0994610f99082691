//! `oci-layout`, `index.json` and tags (`org.opencontainers.image.ref.name`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Digest, Store, StoreError, fsutil, lock};

/// The annotation holding a manifest's tag in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

const LAYOUT_JSON: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// An OCI content descriptor, as stored in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size in bytes of the referenced content.
    pub size: u64,
    /// Annotations; `set_tag` sets [`REF_NAME_ANNOTATION`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the referenced manifest, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

impl Descriptor {
    /// A descriptor with no annotations and no platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// The tag ([`REF_NAME_ANNOTATION`]), if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
    }
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default = "index_media_type")]
    media_type: String,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn index_media_type() -> String {
    INDEX_MEDIA_TYPE.to_owned()
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: index_media_type(),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

impl Store {
    fn index_path(&self) -> PathBuf {
        self.root().join("index.json")
    }

    /// Serialises `index.json` writers; separate from `ROOT/lock` so a build
    /// holding the shared store lock can still tag.
    fn lock_index(&self) -> Result<lock::StoreLock, StoreError> {
        lock::lock_file(&self.root().join("index.lock"), true, true)
            .map(|l| l.expect("blocking lock"))
    }

    /// Creates `oci-layout` and an empty `index.json` if missing, and checks
    /// existing ones.
    pub(super) fn init_layout(&self) -> Result<(), StoreError> {
        let layout_path = self.root().join("oci-layout");
        let index_path = self.index_path();
        let layout_ok = |bytes: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .is_ok_and(|v| v["imageLayoutVersion"] == "1.0.0")
        };
        if let Ok(bytes) = fs::read(&layout_path)
            && layout_ok(&bytes)
            && index_path.is_file()
        {
            self.read_index()?;
            return Ok(());
        }
        let _guard = self.lock_index()?;
        match fs::read(&layout_path) {
            Ok(bytes) if layout_ok(&bytes) => {}
            Ok(_) => {
                return Err(StoreError::BadLayout {
                    path: layout_path,
                    why: "not an OCI layout version 1.0.0 marker".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fsutil::write_durably(
                &self.temp_path("oci-layout"),
                &layout_path,
                LAYOUT_JSON.as_bytes(),
            )?,
            Err(e) => return Err(StoreError::io("read", layout_path, e)),
        }
        if index_path.is_file() {
            self.read_index()?;
        } else {
            self.write_index(&Index::default())?;
        }
        Ok(())
    }

    /// Reads `index.json`; a missing file is an empty index.
    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| StoreError::BadLayout {
            path: path.clone(),
            why: format!("not a valid OCI image index: {e}"),
        })?;
        if index.schema_version != 2 {
            return Err(StoreError::BadLayout {
                path,
                why: format!("schemaVersion is {}, expected 2", index.schema_version),
            });
        }
        Ok(index)
    }

    /// Writes `index.json` atomically, manifests sorted by tag (untagged last,
    /// by digest).
    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(index).expect("index serialises");
        bytes.push(b'\n');
        fsutil::write_durably(&self.temp_path("index"), &self.index_path(), &bytes)
    }

    /// Tags a manifest: adds `descriptor` to `index.json` with
    /// [`REF_NAME_ANNOTATION`] = `tag`, replacing an entry with the same tag.
    /// The blob must be in the store with the descriptor's size. Runs under
    /// `ROOT/index.lock` (exclusive); `index.json` is replaced atomically.
    pub fn set_tag(&self, tag: &str, mut descriptor: Descriptor) -> Result<(), StoreError> {
        check_tag(tag)?;
        let blob = self.blob_path(&descriptor.digest);
        match fs::metadata(&blob) {
            Ok(m) if m.is_file() && m.len() == descriptor.size => {}
            Ok(m) => {
                return Err(StoreError::InvalidDescriptor {
                    tag: tag.to_owned(),
                    why: format!(
                        "descriptor size is {} but blob {} has {} bytes",
                        descriptor.size,
                        descriptor.digest,
                        m.len()
                    ),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MissingBlob {
                    digest: descriptor.digest,
                    path: blob,
                });
            }
            Err(e) => return Err(StoreError::io("stat", blob, e)),
        }
        descriptor
            .annotations
            .insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        index.manifests.retain(|d| d.ref_name() != Some(tag));
        index.manifests.push(descriptor);
        sort_manifests(&mut index.manifests);
        self.write_index(&index)
    }

    /// Removes a tag; returns whether it existed. The manifest blob stays.
    pub fn remove_tag(&self, tag: &str) -> Result<bool, StoreError> {
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index.manifests.retain(|d| d.ref_name() != Some(tag));
        if index.manifests.len() == before {
            return Ok(false);
        }
        self.write_index(&index)?;
        Ok(true)
    }

    /// Removes the untagged entries of `index.json` that name `digest`
    /// (entries other tools wrote); returns whether there were any.
    pub fn remove_untagged(&self, digest: &Digest) -> Result<bool, StoreError> {
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|d| d.ref_name().is_some() || &d.digest != digest);
        if index.manifests.len() == before {
            return Ok(false);
        }
        self.write_index(&index)?;
        Ok(true)
    }

    /// Every image `index.json` lists, tagged (sorted by tag) or not: what
    /// the store holds, and the roots of what garbage collection keeps.
    pub fn images(&self) -> Result<Vec<Descriptor>, StoreError> {
        let mut images = self.read_index()?.manifests;
        sort_manifests(&mut images);
        Ok(images)
    }

    /// Every manifest `index.json` lists, tagged or not: the roots of what
    /// garbage collection keeps.
    pub(super) fn index_manifests(&self) -> Result<Vec<Descriptor>, StoreError> {
        Ok(self.read_index()?.manifests)
    }

    /// The descriptor tagged `tag`, if any.
    pub fn tag(&self, tag: &str) -> Result<Option<Descriptor>, StoreError> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .find(|d| d.ref_name() == Some(tag)))
    }

    /// All tags with their descriptors, sorted by tag.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut tags: Vec<_> = self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.ref_name()?.to_owned(), d)))
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tags)
    }
}

fn sort_manifests(manifests: &mut [Descriptor]) {
    manifests.sort_by(|a, b| {
        let key = |d: &Descriptor| (d.ref_name().is_none(), d.ref_name().map(str::to_owned));
        key(a).cmp(&key(b)).then_with(|| a.digest.cmp(&b.digest))
    });
}

/// Checks the OCI `ref.name` grammar: components of alphanumerics joined by
/// one of `-._:@+` or `--`, separated by `/`.
fn check_tag(tag: &str) -> Result<(), StoreError> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return false;
        }
        let mut run = String::new();
        for &b in bytes {
            if b.is_ascii_alphanumeric() {
                if !(run.is_empty() || run.len() == 1 || run == "--") {
                    return false;
                }
                run.clear();
            } else if matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+') {
                run.push(char::from(b));
            } else {
                return false;
            }
        }
        true
    };
    if tag.len() <= 256 && tag.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(StoreError::InvalidTag(tag.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(store: &Store, n: u32) -> Descriptor {
        let bytes = format!("{{\"schemaVersion\":2,\"n\":{n}}}");
        let digest = store.write_blob(bytes.as_bytes()).unwrap();
        Descriptor::new(MANIFEST_MEDIA_TYPE, digest, bytes.len() as u64)
    }

    #[test]
    fn tag_grammar() {
        for ok in [
            "latest",
            "v1.2.3",
            "app:latest",
            "a--b",
            "reg:5000/team/app:v1",
            "a@b+c_d",
        ] {
            check_tag(ok).unwrap();
        }
        for bad in [
            "", "-a", "a-", "a..b", "a-_b", "a b", "a//b", "/a", "a/", "ä", "a---b",
        ] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_get_replace_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tag("app").unwrap(), None);
        let mut one = manifest(&store, 1);
        one.platform = Some(DescriptorPlatform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        });
        store.set_tag("app", one.clone()).unwrap();
        let got = store.tag("app").unwrap().unwrap();
        assert_eq!(got.digest, one.digest);
        assert_eq!(got.ref_name(), Some("app"));
        assert_eq!(got.platform, one.platform);

        let two = manifest(&store, 2);
        store.set_tag("app", two.clone()).unwrap();
        let tags = store.tags().unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].0, "app");
        assert_eq!(tags[0].1.digest, two.digest);

        assert!(store.remove_tag("app").unwrap());
        assert!(!store.remove_tag("app").unwrap());
        assert!(store.tags().unwrap().is_empty());
    }

    #[test]
    fn set_tag_checks_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let missing = Descriptor::new(MANIFEST_MEDIA_TYPE, Digest::of(b"x"), 1);
        assert!(matches!(
            store.set_tag("a", missing),
            Err(StoreError::MissingBlob { .. })
        ));
        let mut wrong_size = manifest(&store, 1);
        wrong_size.size += 1;
        assert!(matches!(
            store.set_tag("a", wrong_size),
            Err(StoreError::InvalidDescriptor { .. })
        ));
        assert!(matches!(
            store.set_tag("no spaces", manifest(&store, 1)),
            Err(StoreError::InvalidTag(_))
        ));
    }

    #[test]
    fn index_json_is_valid_oci_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let empty: serde_json::Value =
            serde_json::from_slice(&fs::read(store.root().join("index.json")).unwrap()).unwrap();
        assert_eq!(
            empty,
            serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []})
        );

        let (m1, m2, m3) = (
            manifest(&store, 1),
            manifest(&store, 2),
            manifest(&store, 3),
        );
        store.set_tag("zeta", m3.clone()).unwrap();
        store.set_tag("alpha", m1.clone()).unwrap();
        store.set_tag("mid", m2.clone()).unwrap();
        let first = fs::read(store.root().join("index.json")).unwrap();

        let dir2 = tempfile::tempdir().unwrap();
        let other = Store::open(dir2.path()).unwrap();
        for n in 1..=3 {
            manifest(&other, n);
        }
        other.set_tag("mid", m2.clone()).unwrap();
        other.set_tag("alpha", m1.clone()).unwrap();
        other.set_tag("zeta", m3.clone()).unwrap();
        let second = fs::read(other.root().join("index.json")).unwrap();
        assert_eq!(first, second);

        let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], INDEX_MEDIA_TYPE);
        let names: Vec<_> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        let m = &v["manifests"][0];
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["digest"], m1.digest.as_str());
        assert_eq!(m["size"], m1.size);
        // Field order is the struct's (OCI's), independent of serde_json features.
        let one = serde_json::to_string(&store.tag("alpha").unwrap().unwrap()).unwrap();
        assert_eq!(
            one,
            format!(
                "{{\"mediaType\":\"{MANIFEST_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{},\
                 \"annotations\":{{\"{REF_NAME_ANNOTATION}\":\"alpha\"}}}}",
                m1.digest, m1.size
            )
        );
    }

    #[test]
    fn concurrent_set_tag_keeps_every_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let descs: Vec<_> = (0..16).map(|n| manifest(&store, n)).collect();
        std::thread::scope(|s| {
            for (n, d) in descs.iter().enumerate() {
                // Separate handles, as separate processes would have.
                let store = Store::open(dir.path()).unwrap();
                s.spawn(move || store.set_tag(&format!("t{n:02}"), d.clone()).unwrap());
            }
        });
        let tags = store.tags().unwrap();
        assert_eq!(tags.len(), 16);
        for (n, (name, d)) in tags.iter().enumerate() {
            assert_eq!(name, &format!("t{n:02}"));
            assert_eq!(d.digest, descs[n].digest);
        }
    }

    #[test]
    fn foreign_untagged_entries_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = manifest(&store, 1);
        let foreign = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": m.digest, "size": m.size}]
        });
        fs::write(store.root().join("index.json"), foreign.to_string()).unwrap();
        store.set_tag("t", m.clone()).unwrap();
        let index = store.read_index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(index.manifests[0].ref_name(), Some("t"));
        assert_eq!(index.manifests[1].ref_name(), None);
        assert_eq!(index.media_type, INDEX_MEDIA_TYPE);
        assert_eq!(store.images().unwrap(), index.manifests);

        // Removing the untagged entry keeps the tag of the same manifest.
        assert!(store.remove_untagged(&m.digest).unwrap());
        assert!(!store.remove_untagged(&m.digest).unwrap());
        let left = store.images().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].ref_name(), Some("t"));
    }

    #[test]
    fn corrupt_index_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.root().join("index.json"), b"{nope").unwrap();
        let err = store.tags().unwrap_err();
        assert!(matches!(err, StoreError::BadLayout { .. }));
        assert!(err.to_string().contains("index.json"), "{err}");
    }
}
