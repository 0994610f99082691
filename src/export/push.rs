//! `--push` and `--output type=registry`: each image goes to every one of
//! its tags (or to the names the output gives): blobs first, skipping those
//! the registry has, then the platforms' manifests, then the index.

use serde_json::Value;

use super::ExportError;
use crate::image::{self, INDEX_MEDIA_TYPE};
use crate::ir::Platform;
use crate::registry::{self, Registry, RegistryOptions};
use crate::scheduler::BuiltImage;
use crate::store::{Descriptor, Digest, Store};

/// One reference pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The reference, normalised (`docker.io/library/app:1`).
    pub reference: String,
    /// The digest of the manifest or index pushed.
    pub digest: Digest,
    /// Blobs (configs and layers) uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
}

impl Pushed {
    /// `NAME@sha256:…`: the reference pinned to what was pushed.
    pub fn pinned(&self) -> String {
        registry::pin(&self.reference, &self.digest)
    }
}

/// Where the image `name` with `tags` goes when `names` are given to a
/// registry output for a build of `images` images.
pub fn targets<'a>(
    name: &str,
    tags: &'a [String],
    names: &'a [String],
    images: usize,
) -> Result<&'a [String], ExportError> {
    if !names.is_empty() {
        if images > 1 {
            return Err(ExportError::Unsupported(format!(
                "`--output type=registry,name=...` names one image, but this build makes {images}; drop `name=` to push each image to its tags, or build one `--target`"
            )));
        }
        return Ok(names);
    }
    if tags.is_empty() {
        return Err(ExportError::Unsupported(format!(
            "image `{name}` has no tags to push to; give it `tags`, or name the destination with `--output type=registry,name=REF`"
        )));
    }
    Ok(tags)
}

/// The image a store tag's `descriptor` names, as a build would have
/// returned it (to compress its layers before a push); `name` names it in
/// messages.
pub fn stored_image(
    store: &Store,
    name: &str,
    descriptor: &Descriptor,
) -> Result<BuiltImage, ExportError> {
    let doc = image::read_json(store, &descriptor.digest)?;
    let is_index = descriptor.media_type == INDEX_MEDIA_TYPE
        || descriptor.media_type == image::DOCKER_LIST_MEDIA_TYPE
        || doc.get("manifests").is_some();
    let mut platforms = Vec::new();
    if is_index {
        for entry in doc
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
            let platform = entry
                .pointer("/platform/os")
                .and_then(Value::as_str)
                .zip(
                    entry
                        .pointer("/platform/architecture")
                        .and_then(Value::as_str),
                )
                .map(|(os, arch)| {
                    let variant = entry
                        .pointer("/platform/variant")
                        .and_then(Value::as_str)
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default();
                    format!("{os}/{arch}{variant}")
                })
                .and_then(|p| Platform::parse(&p).ok())
                .ok_or_else(|| {
                    ExportError::Unsupported(format!(
                        "an entry of `{name}`'s index has no platform imgbuild knows"
                    ))
                })?;
            let digest = Digest::parse(text("digest"))?;
            let size = entry
                .get("size")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            let built = image::read_image(store, &digest)?;
            platforms.push((
                platform,
                Descriptor::new(text("mediaType"), digest, size),
                built,
            ));
        }
    } else {
        let built = image::read_image(store, &descriptor.digest)?;
        platforms.push((built.config.platform.clone(), descriptor.clone(), built));
    }
    Ok(BuiltImage {
        name: name.to_owned(),
        tags: Vec::new(),
        descriptor: descriptor.clone(),
        platforms,
    })
}

/// Pushes every image to its targets (see [`targets`]); their layers are
/// compressed already.
pub fn push(
    store: &Store,
    images: &[BuiltImage],
    names: &[String],
    options: &RegistryOptions,
) -> Result<Vec<Pushed>, ExportError> {
    let registry = Registry::new(options.clone())?;
    let mut pushed = Vec::new();
    for image in images {
        for target in targets(&image.name, &image.tags, names, images.len())? {
            let report = registry.push(
                store,
                &image.descriptor.digest,
                &image.descriptor.media_type,
                target,
            )?;
            tracing::info!(
                "pushed {target}: {} blobs uploaded, {} skipped",
                report.blobs_uploaded,
                report.blobs_skipped
            );
            pushed.push(Pushed {
                reference: Registry::normalize(target)?,
                digest: report.digest,
                blobs_uploaded: report.blobs_uploaded,
                blobs_skipped: report.blobs_skipped,
            });
        }
    }
    Ok(pushed)
}
