//! Compressing an image's layers on the way out.
//!
//! Builds keep layers uncompressed in the store, as docker's and buildah's
//! image stores do: nothing is spent on compression until an image leaves
//! the machine. An OCI layout, an OCI archive or a push gets a copy of the
//! image whose uncompressed layers are compressed (gzip by default), with
//! its own manifests and index. Each compressed layer is remembered by
//! `diff_id` and settings, so a layer is compressed once however often it is
//! exported. Layers that are already compressed (from base images) are kept.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ExportError;
use crate::image::canonical::to_canonical_json;
use crate::image::{self, Image, LayerRef};
use crate::layer::{self, Compression, CompressionOptions};
use crate::plan::cache::CacheKey;
use crate::scheduler::BuiltImage;
use crate::store::{CacheTable, Descriptor, Digest, Store};

/// A compressed copy of a layer, remembered in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Variant {
    media_type: String,
    digest: Digest,
    size: u64,
}

/// `image` with its uncompressed layers compressed with `options`; the
/// image itself when `options` says none.
pub fn compressed(
    store: &Store,
    image: &BuiltImage,
    options: CompressionOptions,
) -> Result<BuiltImage, ExportError> {
    if options.compression == Compression::None {
        return Ok(image.clone());
    }
    let mut platforms = Vec::new();
    for (platform, manifest, built) in &image.platforms {
        let layers: Vec<LayerRef> = built
            .layers
            .par_iter()
            .map(|l| compress_layer(store, l, options))
            .collect::<Result<_, _>>()?;
        let mut doc = image::read_json(store, &manifest.digest)?;
        if let Some(entries) = doc.get_mut("layers").and_then(Value::as_array_mut) {
            for (entry, layer) in entries.iter_mut().zip(&layers) {
                entry["mediaType"] = Value::String(layer.media_type.clone());
                entry["digest"] = Value::String(layer.digest.to_string());
                entry["size"] = Value::from(layer.size);
            }
        }
        let bytes = to_canonical_json(&doc);
        let digest = store.write_blob(&bytes)?;
        let mut descriptor = manifest.clone();
        descriptor.digest = digest;
        descriptor.size = bytes.len() as u64;
        platforms.push((
            platform.clone(),
            descriptor,
            Image {
                config: built.config.clone(),
                layers,
            },
        ));
    }
    let descriptor = if image.descriptor.digest == image.platforms[0].1.digest {
        platforms[0].1.clone()
    } else {
        let mut doc = image::read_json(store, &image.descriptor.digest)?;
        if let Some(entries) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
            for entry in entries {
                let old = entry
                    .get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some((_, new, _)) = image
                    .platforms
                    .iter()
                    .zip(&platforms)
                    .map(|((_, old_d, _), new)| (old_d, new))
                    .find(|(old_d, _)| old_d.digest.as_str() == old)
                    .map(|(_, new)| new)
                {
                    entry["digest"] = Value::String(new.digest.to_string());
                    entry["size"] = Value::from(new.size);
                }
            }
        }
        let bytes = to_canonical_json(&doc);
        let mut descriptor: Descriptor = image.descriptor.clone();
        descriptor.digest = store.write_blob(&bytes)?;
        descriptor.size = bytes.len() as u64;
        descriptor
    };
    Ok(BuiltImage {
        name: image.name.clone(),
        tags: image.tags.clone(),
        descriptor,
        platforms,
    })
}

/// `layer` compressed with `options`, once per store.
fn compress_layer(
    store: &Store,
    layer: &LayerRef,
    options: CompressionOptions,
) -> Result<LayerRef, ExportError> {
    if !image::UNCOMPRESSED_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
        return Ok(layer.clone());
    }
    let media_type = options.compression.media_type().to_owned();
    let memo = CacheKey::of(&[
        b"variant",
        layer.diff_id.as_str().as_bytes(),
        media_type.as_bytes(),
        format!("{:?}", options.level).as_bytes(),
    ])
    .to_string();
    if let Some(bytes) = store.cache_read(CacheTable::Variants, &memo)?
        && let Ok(variant) = serde_json::from_slice::<Variant>(&bytes)
        && store.has_blob(&variant.digest)
    {
        return Ok(LayerRef {
            media_type: variant.media_type,
            digest: variant.digest,
            size: variant.size,
            diff_id: layer.diff_id.clone(),
            uncompressed_size: None,
        });
    }
    let mut writer = store.blob_writer()?;
    layer::compress_stream(
        std::io::BufReader::with_capacity(1 << 20, store.open_blob(&layer.digest)?),
        &options,
        &mut writer,
    )?;
    let (digest, size) = writer.commit()?;
    let variant = Variant {
        media_type: media_type.clone(),
        digest: digest.clone(),
        size,
    };
    store.cache_write(
        CacheTable::Variants,
        &memo,
        &serde_json::to_vec(&variant).expect("a variant serializes"),
    )?;
    Ok(LayerRef {
        media_type,
        digest,
        size,
        diff_id: layer.diff_id.clone(),
        uncompressed_size: None,
    })
}
