//! `--push` and `--output type=registry`: each image goes to every one of
//! its tags (or to the names the output gives): blobs first, skipping those
//! the registry has, then the platforms' manifests, then the index.

use super::ExportError;
use crate::registry::{self, Registry, RegistryOptions};
use crate::scheduler::BuiltImage;
use crate::store::{Digest, Store};

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

/// Pushes every image to its targets (see [`targets`]).
pub fn push(
    store: &Store,
    images: &[BuiltImage],
    names: &[String],
    options: &RegistryOptions,
) -> Result<Vec<Pushed>, ExportError> {
    // Every image has somewhere to go before anything is sent.
    for image in images {
        targets(&image.name, &image.tags, names, images.len())?;
    }
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
