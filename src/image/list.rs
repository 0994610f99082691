//! The images the store holds, as `imgbuild images` lists them: every entry
//! of its `index.json`, with its platforms, creation time and size.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::{DOCKER_LIST_MEDIA_TYPE, INDEX_MEDIA_TYPE, read_json};
use crate::store::{Descriptor, Digest, Store};

/// One entry of the store's `index.json`: a tag, or an untagged image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredImage {
    /// The tag, as the store holds it (`localhost/app:1`,
    /// `docker.io/library/alpine:3.20`); `None` for an untagged entry.
    pub reference: Option<String>,
    /// The reference without its tag or digest.
    pub repository: Option<String>,
    /// The tag part of the reference; `None` when it has none (only a digest).
    pub tag: Option<String>,
    /// The digest of the manifest or index the entry names: the image's id.
    pub id: Digest,
    /// Its media type.
    pub media_type: String,
    /// The newest `created` of the image's configs in the store.
    pub created: Option<String>,
    /// Bytes of the image's blobs in the store (the index, manifests,
    /// configs and layers it reaches), each blob once, as their descriptors
    /// declare them.
    pub size: u64,
    /// Its platforms: one for a manifest, each entry of an index.
    pub platforms: Vec<StoredPlatform>,
}

/// A platform of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPlatform {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Whether its manifest and config are in the store: an index pulled
    /// from a registry lists platforms that were never pulled.
    pub present: bool,
}

impl StoredImage {
    /// The platforms whose manifests are in the store.
    pub fn present_platforms(&self) -> impl Iterator<Item = &StoredPlatform> {
        self.platforms.iter().filter(|p| p.present)
    }
}

/// Every entry of the store's `index.json`, tagged ones first by tag, then
/// untagged ones by digest. An entry whose documents are missing or
/// unreadable is listed with what could be read (`imgbuild store verify`
/// reports it).
pub fn list(store: &Store) -> Result<Vec<StoredImage>, super::ImageError> {
    let images = store.images()?;
    Ok(images.iter().map(|d| describe(store, d)).collect())
}

/// Splits a reference into repository and tag: `reg:5000/app:1@sha256:…`
/// is `reg:5000/app` and `1`.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => (&name[..slash + colon], Some(&name[slash + colon + 1..])),
        None => (name, None),
    }
}

fn describe(store: &Store, descriptor: &Descriptor) -> StoredImage {
    let reference = descriptor.ref_name().map(str::to_owned);
    let (repository, tag) = match reference.as_deref().map(split_reference) {
        Some((repository, tag)) => (Some(repository.to_owned()), tag.map(str::to_owned)),
        None => (None, None),
    };
    let mut image = StoredImage {
        reference,
        repository,
        tag,
        id: descriptor.digest.clone(),
        media_type: descriptor.media_type.clone(),
        created: None,
        size: 0,
        platforms: Vec::new(),
    };
    let mut counted = BTreeSet::new();
    let mut total = 0;
    let mut count = |digest: &Digest, size: u64| {
        if store.has_blob(digest) && counted.insert(digest.clone()) {
            total += size;
        }
    };
    count(&descriptor.digest, descriptor.size);
    let Some(doc) = read_json(store, &descriptor.digest).ok() else {
        image.size = total;
        return image;
    };
    let is_index = descriptor.media_type == INDEX_MEDIA_TYPE
        || descriptor.media_type == DOCKER_LIST_MEDIA_TYPE
        || doc.get("manifests").is_some();
    let manifests: Vec<(Option<String>, Digest, u64)> = if is_index {
        entries(&doc, "manifests")
            .filter_map(|m| {
                let (digest, size) = digest_and_size(m)?;
                Some((platform_of(m.get("platform")?), digest, size))
            })
            .collect()
    } else {
        vec![(None, descriptor.digest.clone(), descriptor.size)]
    };
    let mut created: Option<String> = None;
    for (platform, digest, size) in manifests {
        count(&digest, size);
        let manifest = read_json(store, &digest).ok();
        let config = manifest
            .as_ref()
            .and_then(|m| digest_and_size(m.get("config")?))
            .filter(|(config, _)| store.has_blob(config));
        let config_doc = config.as_ref().and_then(|(d, _)| read_json(store, d).ok());
        if let (Some(manifest), Some((config, config_size))) = (&manifest, &config) {
            count(config, *config_size);
            for layer in entries(manifest, "layers") {
                if let Some((layer, size)) = digest_and_size(layer) {
                    count(&layer, size);
                }
            }
        }
        if let Some(time) = config_doc.as_ref().and_then(|c| c.get("created")?.as_str())
            && created.as_deref().is_none_or(|c| c < time)
        {
            created = Some(time.to_owned());
        }
        let platform = platform
            .or_else(|| platform_of(config_doc.as_ref()?))
            .unwrap_or_else(|| "unknown".to_owned());
        image.platforms.push(StoredPlatform {
            platform,
            digest,
            present: config_doc.is_some(),
        });
    }
    image.created = created;
    image.size = total;
    image
}

/// The objects of the array `key` of `doc`.
fn entries<'a>(doc: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    doc.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// A descriptor's digest and size.
fn digest_and_size(descriptor: &Value) -> Option<(Digest, u64)> {
    let digest = Digest::parse(descriptor.get("digest")?.as_str()?).ok()?;
    Some((digest, descriptor.get("size")?.as_u64()?))
}

/// `os/arch[/variant]` of an index entry's `platform` or of a config.
fn platform_of(value: &Value) -> Option<String> {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let mut platform = format!("{}/{}", text("os")?, text("architecture")?);
    if let Some(variant) = text("variant") {
        platform.push('/');
        platform.push_str(variant);
    }
    Some(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("app"), ("app", None));
        assert_eq!(split_reference("app:1"), ("app", Some("1")));
        assert_eq!(
            split_reference("reg:5000/team/app:v1"),
            ("reg:5000/team/app", Some("v1"))
        );
        assert_eq!(
            split_reference("reg:5000/team/app"),
            ("reg:5000/team/app", None)
        );
        assert_eq!(
            split_reference("docker.io/library/alpine:3.20@sha256:abc"),
            ("docker.io/library/alpine", Some("3.20"))
        );
        assert_eq!(
            split_reference("docker.io/library/alpine@sha256:abc"),
            ("docker.io/library/alpine", None)
        );
    }
}
