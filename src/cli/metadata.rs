//! `apply --iidfile` and `apply --metadata-file`: what was built, in the
//! form `docker buildx build` writes it.
//!
//! buildx takes both from `BuildKit`'s exporter response: the image id is
//! `containerimage.config.digest` when the response has it (one platform)
//! and `containerimage.digest` (the index) otherwise; the metadata file is
//! the response's keys as JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::export::{self, ExportError, Output, Pushed};
use crate::layer::CompressionOptions;
use crate::registry::Registry;
use crate::scheduler::BuiltImage;
use crate::store::{Descriptor, DescriptorPlatform, Digest, Store};

/// One image as it left the build.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The image's name in the manifest or Dockerfile.
    pub name: String,
    /// The manifest or index, as the outputs hold it.
    pub descriptor: Descriptor,
    /// The config's digest, for a single-platform image.
    pub config: Option<Digest>,
    /// Its names, normalised (`docker.io/library/app:latest`).
    pub names: Vec<String>,
}

impl Exported {
    /// The image id buildx writes to `--iidfile`.
    pub fn id(&self) -> String {
        self.config
            .as_ref()
            .unwrap_or(&self.descriptor.digest)
            .to_string()
    }
}

/// Each of `images` as `outputs` hold it: after a push, the digest the
/// registry has; else, when an OCI layout or archive was written, the
/// compressed image it holds; else the store's (a docker archive holds
/// the store's uncompressed layers).
pub fn exported(
    store: &Store,
    images: &[BuiltImage],
    outputs: &[Output],
    compression: CompressionOptions,
    pushed: &[Pushed],
) -> Result<Vec<Exported>, ExportError> {
    let names: Vec<&String> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Registry { names } => Some(names),
            _ => None,
        })
        .flatten()
        .collect();
    let compressed_out = outputs.iter().any(|o| {
        matches!(
            o,
            Output::OciLayout(_) | Output::OciArchive(_) | Output::Registry { .. }
        )
    });
    let mut all = Vec::new();
    for image in images {
        let mut descriptor = if compressed_out {
            export::compressed(store, image, compression)?.descriptor
        } else {
            image.descriptor.clone()
        };
        let shown: Vec<String> = if names.is_empty() {
            image.tags.clone()
        } else {
            names.iter().map(|n| (*n).clone()).collect()
        };
        let normalized: Vec<String> = shown
            .iter()
            .map(|n| Registry::normalize(n).unwrap_or_else(|_| n.clone()))
            .collect();
        if let Some(push) = pushed.iter().find(|p| normalized.contains(&p.reference)) {
            descriptor.digest = push.digest.clone();
        }
        let config = match image.platforms.as_slice() {
            [(platform, manifest, _)] => {
                descriptor.platform = Some(DescriptorPlatform {
                    architecture: platform.architecture.clone(),
                    os: platform.os.clone(),
                    variant: platform.variant.clone(),
                });
                let doc = crate::image::read_json(store, &manifest.digest)?;
                doc.pointer("/config/digest")
                    .and_then(Value::as_str)
                    .map(Digest::parse)
                    .transpose()?
            }
            _ => None,
        };
        all.push(Exported {
            name: image.name.clone(),
            descriptor,
            config,
            names: normalized,
        });
    }
    Ok(all)
}

/// The keys buildx writes for one image.
fn keys(image: &Exported) -> BTreeMap<&'static str, Value> {
    let mut keys = BTreeMap::from([
        (
            "containerimage.digest",
            json!(image.descriptor.digest.to_string()),
        ),
        ("containerimage.descriptor", json!(image.descriptor)),
    ]);
    if let Some(config) = &image.config {
        keys.insert("containerimage.config.digest", json!(config.to_string()));
    }
    if !image.names.is_empty() {
        keys.insert("image.name", json!(image.names.join(",")));
    }
    keys
}

/// The `--metadata-file` document: one image's keys, as `docker buildx
/// build` writes them; for several images, each image's keys under its
/// name, as `docker buildx bake` writes each target's.
pub fn document(images: &[Exported]) -> Vec<u8> {
    let value = match images {
        [image] => json!(keys(image)),
        _ => json!(
            images
                .iter()
                .map(|i| (i.name.clone(), keys(i)))
                .collect::<BTreeMap<_, _>>()
        ),
    };
    let mut text = serde_json::to_string_pretty(&value).expect("metadata serializes");
    text.push('\n');
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(config: Option<&str>) -> Exported {
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        Exported {
            name: "app".into(),
            descriptor: Descriptor::new(crate::image::MANIFEST_MEDIA_TYPE, digest, 42),
            config: config.map(|c| Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap()),
            names: vec!["localhost/x:1".into()],
        }
    }

    #[test]
    fn the_id_is_the_config_digest_when_there_is_one() {
        assert_eq!(image(Some("b")).id(), format!("sha256:{}", "b".repeat(64)));
        assert_eq!(image(None).id(), format!("sha256:{}", "a".repeat(64)));
    }

    #[test]
    fn one_image_gives_buildx_keys_several_are_keyed_by_name() {
        let one: Value = serde_json::from_slice(&document(&[image(Some("b"))])).unwrap();
        let keys: Vec<&str> = one
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "containerimage.config.digest",
                "containerimage.descriptor",
                "containerimage.digest",
                "image.name"
            ]
        );
        assert_eq!(one["containerimage.descriptor"]["size"], 42);
        let mut other = image(None);
        other.name = "b".into();
        let two: Value = serde_json::from_slice(&document(&[image(None), other])).unwrap();
        assert!(two["app"]["containerimage.digest"].is_string());
        assert!(two["b"].get("containerimage.config.digest").is_none());
    }
}
