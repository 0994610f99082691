//! Outputs of `imgbuild apply --output`: an OCI layout directory, an OCI
//! archive, a docker archive (`docker load`), the final filesystem, or a
//! registry (`--push`).

mod archive;
mod compress;
mod push;

pub use compress::compressed;
pub use push::{Pushed, stored_image, targets as push_targets};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::image::canonical::to_canonical_json;
use crate::image::{self, REF_NAME};
use crate::layer;
use crate::registry::{RegistryError, RegistryOptions};
use crate::scheduler::BuiltImage;
use crate::store::{Digest, Store, StoreError};

/// Where and how to write a built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=oci-layout,dest=DIR`.
    OciLayout(PathBuf),
    /// `type=oci,dest=FILE`: the layout as a tar archive.
    OciArchive(PathBuf),
    /// `type=docker,dest=FILE`: loadable with `docker load`.
    DockerArchive(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem.
    Local(PathBuf),
    /// `type=registry[,name=REF]...`: push to the image's tags, or to the
    /// names given (`--push` is `type=registry`).
    Registry {
        /// Where to push; empty: every tag of each image.
        names: Vec<String>,
    },
}

/// Why an output could not be written or parsed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExportError {
    /// A malformed `--output` value.
    #[error("invalid `--output {spec}`: {why}")]
    Spec {
        /// The value.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// The output cannot hold what was built.
    #[error("{0}")]
    Unsupported(String),
    /// Writing failed.
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Extracting a layer failed.
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
    /// Extracting a layer into a `type=local` output failed.
    #[error("cannot extract layer {layer}: {reason}")]
    #[diagnostic(help("{}", crate::scheduler::extract_help(reason)))]
    Extract {
        /// The layer's blob digest.
        layer: String,
        /// Why (in the message, so not a `source`).
        reason: layer::LayerError,
    },
    /// Reading an image failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] image::ImageError),
    /// Pushing to a registry failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The types `--output` takes, for messages.
const TYPES: &str = "oci-layout, oci, docker, local or registry";

impl Output {
    /// Parses `type=TYPE,dest=PATH`, or `type=registry[,name=REF]...`.
    pub fn parse(spec: &str) -> Result<Self, ExportError> {
        let bad = |why: &str| ExportError::Spec {
            spec: spec.to_owned(),
            why: why.to_owned(),
        };
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => kind = Some(v),
                Some(("dest", v)) if !v.is_empty() => dest = Some(PathBuf::from(v)),
                Some(("name", v)) if !v.is_empty() => names.push(v.to_owned()),
                _ => {
                    return Err(bad(&format!(
                        "unknown field `{field}`; expected `type=...` and `dest=...` (or `name=...` for a registry)"
                    )));
                }
            }
        }
        if kind == Some("registry") {
            if dest.is_some() {
                return Err(bad(
                    "a registry output takes `name=REF`, not `dest=`; without `name`, each image goes to its tags",
                ));
            }
            for name in &names {
                crate::ir::reference::validate(name)
                    .map_err(|why| bad(&format!("invalid `name={name}`: {why}")))?;
            }
            return Ok(Output::Registry { names });
        }
        if !names.is_empty() {
            return Err(bad("only `type=registry` takes `name=`"));
        }
        let dest = dest.ok_or_else(|| bad("missing `dest=PATH`"))?;
        match kind {
            Some("oci-layout") => Ok(Output::OciLayout(dest)),
            Some("oci") => Ok(Output::OciArchive(dest)),
            Some("docker") => Ok(Output::DockerArchive(dest)),
            Some("local") => Ok(Output::Local(dest)),
            Some(other) => Err(bad(&format!("unknown type `{other}`; use {TYPES}"))),
            None => Err(bad(&format!("missing `type=`; use {TYPES}"))),
        }
    }
}

/// Writes `images` to `output`; OCI layouts, archives and registries get
/// their uncompressed layers compressed with `compression`; `registry`
/// says how to reach registries; `max_layer_size` bounds each layer a
/// `type=local` output extracts. Returns what was pushed (nothing for
/// outputs other than registries).
pub fn export(
    store: &Store,
    images: &[BuiltImage],
    output: &Output,
    compression: layer::CompressionOptions,
    registry: &RegistryOptions,
    max_layer_size: u64,
) -> Result<Vec<Pushed>, ExportError> {
    let compress = |images: &[BuiltImage]| -> Result<Vec<BuiltImage>, ExportError> {
        images
            .iter()
            .map(|image| compressed(store, image, compression))
            .collect()
    };
    match output {
        Output::OciLayout(dir) => write_layout(store, &compress(images)?, dir, false)?,
        Output::OciArchive(file) => {
            let staging = staging_dir(store)?;
            let result = compress(images)
                .and_then(|images| write_layout(store, &images, &staging, false))
                .and_then(|()| archive::tar_dir(&staging, file));
            let _ = fs::remove_dir_all(&staging);
            result?;
        }
        Output::DockerArchive(file) => {
            let staging = staging_dir(store)?;
            let result = write_layout(store, images, &staging, true)
                .and_then(|()| archive::tar_dir(&staging, file));
            let _ = fs::remove_dir_all(&staging);
            result?;
        }
        Output::Local(dir) => write_local(store, images, dir, max_layer_size)?,
        Output::Registry { names } => {
            // Every image has somewhere to go before anything is compressed or sent.
            for image in images {
                push::targets(&image.name, &image.tags, names, images.len())?;
            }
            return push::push(store, &compress(images)?, names, registry);
        }
    }
    Ok(Vec::new())
}

fn staging_dir(store: &Store) -> Result<PathBuf, ExportError> {
    let dir = store.temp_path("export");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Every blob an image needs: its index or manifest, configs and layers.
fn blobs_of(store: &Store, image: &BuiltImage) -> Result<BTreeSet<Digest>, ExportError> {
    let mut blobs = BTreeSet::from([image.descriptor.digest.clone()]);
    for (_, manifest, _) in &image.platforms {
        blobs.insert(manifest.digest.clone());
        let doc = image::read_json(store, &manifest.digest)?;
        for d in doc
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(doc.get("config"))
        {
            if let Some(digest) = d.get("digest").and_then(Value::as_str) {
                blobs.insert(Digest::parse(digest)?);
            }
        }
    }
    Ok(blobs)
}

/// The tag part of a reference (`latest` of `example.com/app:latest`).
fn tag_part(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => tag,
        _ => "latest",
    }
}

/// Writes an OCI image layout (plus docker's `manifest.json` when `docker`).
fn write_layout(
    store: &Store,
    images: &[BuiltImage],
    dir: &Path,
    docker: bool,
) -> Result<(), ExportError> {
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(io(&blob_dir))?;
    let mut manifests = Vec::new();
    let mut docker_manifest = Vec::new();
    for image in images {
        for digest in blobs_of(store, image)? {
            let to = blob_dir.join(digest.hex());
            if !to.exists() {
                // Sparse, as the store keeps it: `fs::copy` would fill holes.
                crate::store::copy_sparse(&store.blob_path(&digest), &to).map_err(io(&to))?;
            }
        }
        let d = &image.descriptor;
        let entry = |annotations: BTreeMap<&str, &str>| {
            let mut v = json!({ "mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size });
            if !annotations.is_empty() {
                v["annotations"] = json!(annotations);
            }
            v
        };
        if image.tags.is_empty() {
            manifests.push(entry(BTreeMap::new()));
        }
        for tag in &image.tags {
            manifests.push(entry(BTreeMap::from([
                (REF_NAME, tag_part(tag)),
                ("io.containerd.image.name", tag.as_str()),
            ])));
        }
        if docker {
            let [(_, manifest, built)] = image.platforms.as_slice() else {
                return Err(ExportError::Unsupported(format!(
                    "image `{}` has {} platforms, and a docker archive holds one; pass one `--platform`, or use `type=oci`",
                    image.name,
                    image.platforms.len()
                )));
            };
            let doc = image::read_json(store, &manifest.digest)?;
            let config = doc
                .pointer("/config/digest")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            docker_manifest.push(json!({
                "Config": format!("blobs/sha256/{}", config.trim_start_matches("sha256:")),
                "RepoTags": image.tags,
                "Layers": built.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
            }));
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": image::INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    write_file(&dir.join("index.json"), &to_canonical_json(&index))?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    if docker {
        write_file(
            &dir.join("manifest.json"),
            &to_canonical_json(&docker_manifest),
        )?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs::write(path, bytes).map_err(io(path))
}

/// Extracts each image's filesystem into `dir` (one subdirectory per
/// platform when there are several), each layer checked as snapshots are
/// (size bound, `diff_id`, free space); sparse files stay sparse.
fn write_local(
    store: &Store,
    images: &[BuiltImage],
    dir: &Path,
    max_layer_size: u64,
) -> Result<(), ExportError> {
    let platforms: usize = images.iter().map(|i| i.platforms.len()).sum();
    for image in images {
        for (platform, _, built) in &image.platforms {
            let mut target = dir.to_owned();
            if images.len() > 1 {
                target.push(&image.name);
            }
            if platforms > images.len() {
                target.push(platform.to_string().replace('/', "_"));
            }
            fs::create_dir_all(&target).map_err(io(&target))?;
            for layer in &built.layers {
                let blob = store.open_blob(&layer.digest)?;
                layer::extract_layer(
                    blob,
                    &target,
                    &layer::ExtractOptions {
                        preserve_ownership: rustix::process::geteuid().is_root(),
                        overlay_whiteouts: false,
                        max_size: Some(layer.extraction_bound(max_layer_size)),
                        diff_id: Some(layer.diff_id.to_string()),
                        space_needed: layer.size,
                    },
                )
                .map_err(|reason| ExportError::Extract {
                    layer: layer.digest.to_string(),
                    reason,
                })?;
            }
        }
    }
    Ok(())
}
