//! OCI images: configs, manifests and indexes, written to the store.

pub mod base;
pub mod canonical;
pub mod config;
pub mod list;
pub mod source;

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    DescriptorBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, PlatformBuilder,
};
use serde_json::Value;

pub use config::{DEFAULT_CREATED, HistoryEntry, ImageConfig, RuntimeConfig};

use crate::ir::Platform;
use crate::store::{self, Digest, Store};

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's manifest list media type, accepted when reading.
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's manifest media type, accepted when reading.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation naming a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an image could not be read or written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImageError {
    /// A document is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// An image source failed.
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Source {
        /// What went wrong, naming the source.
        message: String,
        /// What to do.
        help: String,
    },
}

/// A layer of an image: its blob and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The uncompressed size the manifest declares for it, in the
    /// [`UNCOMPRESSED_SIZE_ANNOTATION`] annotation (eStargz and
    /// zstd:chunked layers carry it); not checked against the blob.
    pub uncompressed_size: Option<u64>,
}

/// The layer annotation that declares a layer's uncompressed size
/// (stargz-snapshotter's `estargz.StoreUncompressedSizeAnnotation`).
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";

/// Media types of uncompressed layers (OCI, docker).
pub const UNCOMPRESSED_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];

impl LayerRef {
    /// The most bytes the layer's uncompressed tar may have when extracted:
    /// the size the layer declares if it declares one no larger than `max`
    /// (an uncompressed blob's own size, else the annotation), else `max`.
    pub fn extraction_bound(&self, max: u64) -> crate::layer::MaxSize {
        let declared = if UNCOMPRESSED_MEDIA_TYPES.contains(&self.media_type.as_str()) {
            Some(self.size)
        } else {
            self.uncompressed_size
        };
        match declared {
            Some(bytes) if bytes <= max => crate::layer::MaxSize {
                bytes,
                declared: true,
            },
            _ => crate::layer::MaxSize {
                bytes: max,
                declared: false,
            },
        }
    }
}

/// A single-platform image: its config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config.
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// A descriptor of a blob in the store.
pub type Descriptor = store::Descriptor;

fn oci_platform(platform: &Platform) -> oci_spec::image::Platform {
    let mut builder = PlatformBuilder::default()
        .architecture(platform.architecture.as_str())
        .os(platform.os.as_str());
    if let Some(variant) = &platform.variant {
        builder = builder.variant(variant.clone());
    }
    builder.build().expect("platform always builds")
}

fn oci_descriptor(
    media_type: &str,
    digest: &Digest,
    size: u64,
    platform: Option<&Platform>,
    annotations: Option<&BTreeMap<String, String>>,
) -> oci_spec::image::Descriptor {
    let mut builder = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(
            digest
                .to_string()
                .parse::<oci_spec::image::Digest>()
                .expect("store digests are valid"),
        )
        .size(size);
    if let Some(platform) = platform {
        builder = builder.platform(oci_platform(platform));
    }
    if let Some(annotations) = annotations.filter(|a| !a.is_empty()) {
        builder = builder.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    builder.build().expect("descriptors always build")
}

/// Store descriptor for a blob.
pub fn descriptor(
    media_type: &str,
    digest: Digest,
    size: u64,
    platform: Option<&Platform>,
) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        annotations: BTreeMap::new(),
        platform: platform.map(|p| store::DescriptorPlatform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
        }),
    }
}

/// Writes `image`'s config and manifest to the store; returns the manifest's descriptor.
pub fn write_image(
    store: &Store,
    image: &Image,
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor, ImageError> {
    let config_bytes = image.config.to_json();
    let config_digest = store.write_blob(&config_bytes)?;
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(oci_descriptor(
            CONFIG_MEDIA_TYPE,
            &config_digest,
            config_bytes.len() as u64,
            None,
            None,
        ))
        .layers(
            image
                .layers
                .iter()
                .map(|l| oci_descriptor(&l.media_type, &l.digest, l.size, None, None))
                .collect::<Vec<_>>(),
        );
    if !annotations.is_empty() {
        manifest = manifest.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let manifest = manifest.build().expect("manifests always build");
    let bytes = canonical::to_canonical_json(&manifest);
    let digest = store.write_blob(&bytes)?;
    Ok(descriptor(
        MANIFEST_MEDIA_TYPE,
        digest,
        bytes.len() as u64,
        Some(&image.config.platform),
    ))
}

/// Writes an index of `manifests` (each with its platform) to the store.
pub fn write_index(
    store: &Store,
    manifests: &[(Platform, Descriptor)],
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor, ImageError> {
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(
            manifests
                .iter()
                .map(|(platform, d)| {
                    oci_descriptor(&d.media_type, &d.digest, d.size, Some(platform), None)
                })
                .collect::<Vec<_>>(),
        );
    if !annotations.is_empty() {
        index = index.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let index = index.build().expect("indexes always build");
    let bytes = canonical::to_canonical_json(&index);
    let digest = store.write_blob(&bytes)?;
    Ok(descriptor(
        INDEX_MEDIA_TYPE,
        digest,
        bytes.len() as u64,
        None,
    ))
}

/// Reads a JSON blob from the store.
pub fn read_json(store: &Store, digest: &Digest) -> Result<Value, ImageError> {
    let bytes = store.read_blob(digest)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::Invalid(format!("blob {digest} is not JSON: {e}")))
}

/// Reads the image a manifest descriptor names.
pub fn read_image(store: &Store, manifest: &Digest) -> Result<Image, ImageError> {
    let doc = read_json(store, manifest)?;
    let config_digest = doc
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ImageError::Invalid(format!("manifest {manifest} has no config")))?;
    let config_digest = Digest::parse(config_digest)?;
    let config = ImageConfig::from_json(&store.read_blob(&config_digest)?)?;
    let layers: Vec<LayerRef> = doc
        .get("layers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .zip(&config.diff_ids)
        .map(|(layer, diff_id)| {
            Ok(LayerRef {
                media_type: layer
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                digest: Digest::parse(
                    layer
                        .get("digest")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )?,
                size: layer
                    .get("size")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
                diff_id: diff_id.clone(),
                uncompressed_size: layer
                    .get("annotations")
                    .and_then(|a| a.get(UNCOMPRESSED_SIZE_ANNOTATION))
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok()),
            })
        })
        .collect::<Result<_, ImageError>>()?;
    if layers.len() != config.diff_ids.len() {
        return Err(ImageError::Invalid(format!(
            "manifest {manifest} lists {} layers but its config has {} diff_ids",
            layers.len(),
            config.diff_ids.len()
        )));
    }
    Ok(Image { config, layers })
}

/// Picks the manifest for `platform` from an index or manifest in the store.
pub fn select_platform(
    store: &Store,
    digest: &Digest,
    platform: &Platform,
) -> Result<Digest, ImageError> {
    let doc = read_json(store, digest)?;
    pick_manifest(&doc, digest, platform)
}

/// The manifest for `platform` named by `doc`, the document with `digest`:
/// itself when it is a manifest, else the matching entry of the index.
pub fn pick_manifest(
    doc: &Value,
    digest: &Digest,
    platform: &Platform,
) -> Result<Digest, ImageError> {
    let media_type = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_index = media_type == INDEX_MEDIA_TYPE
        || media_type == DOCKER_LIST_MEDIA_TYPE
        || doc.get("manifests").is_some();
    if !is_index {
        return Ok(digest.clone());
    }
    let mut available = Vec::new();
    for entry in doc
        .get("manifests")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let text = |key: &str| {
            entry
                .pointer(&format!("/platform/{key}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(os), Some(arch)) = (text("os"), text("architecture")) else {
            continue;
        };
        let candidate = format!(
            "{os}/{arch}{}",
            text("variant").map(|v| format!("/{v}")).unwrap_or_default()
        );
        let Ok(candidate) = Platform::parse(&candidate) else {
            continue;
        };
        let entry_digest = Digest::parse(
            entry
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        if &candidate == platform {
            return Ok(entry_digest);
        }
        available.push(candidate.to_string());
    }
    Err(ImageError::Source {
        message: format!("the image index {digest} has no manifest for {platform}"),
        help: format!(
            "available platforms: {}",
            if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            }
        ),
    })
}
