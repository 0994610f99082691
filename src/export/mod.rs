//! Outputs of `imgbuild apply --output`: an OCI layout directory, an OCI
//! archive, a docker archive (`docker load`), the final filesystem as a
//! directory or a tar archive, or a registry (`--push`). Archives go to a
//! file or, with `dest=-`, to standard output.

mod archive;
mod compress;
mod push;

pub use archive::is_stdout;
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
    /// `type=oci,dest=FILE`: the layout as a tar archive (`-`: standard output).
    OciArchive(PathBuf),
    /// `type=docker,dest=FILE`: loadable with `docker load` (`-`: standard output).
    DockerArchive(PathBuf),
    /// `type=docker` without `dest`, or `--load`: loaded into the local
    /// docker daemon (or podman) with its `load` command.
    Load(Loader),
    /// `type=local,dest=DIR`, or a bare `DIR`: the final filesystem.
    Local(PathBuf),
    /// `type=tar,dest=FILE`, or a bare `-`: the final filesystem as a tar
    /// archive (`-`: standard output).
    Tar(PathBuf),
    /// `type=registry[,name=REF]...`: push to the image's tags, or to the
    /// names given (`--push` is `type=registry`).
    Registry {
        /// Where to push; empty: every tag of each image.
        names: Vec<String>,
    },
}

/// What `--load` loads the images into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The docker daemon, through `docker load`.
    Docker,
    /// Podman's store, through `podman load`.
    Podman,
}

impl Loader {
    /// The command that loads an archive.
    pub fn command(self) -> &'static str {
        match self {
            Loader::Docker => "docker",
            Loader::Podman => "podman",
        }
    }
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
    /// The filesystem written to is full.
    #[error(
        "no space left writing `{}`: the images hold about {needed} and that filesystem has {free} free",
        path.display()
    )]
    #[diagnostic(help(
        "free space on that filesystem or write the output elsewhere, then run the build again (it is cached); remove what this one left half-written"
    ))]
    NoSpace {
        /// What was being written.
        path: PathBuf,
        /// The size of the images' blobs, uncompressed.
        needed: String,
        /// The free space left.
        free: String,
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
const TYPES: &str = "oci-layout, oci, docker, local, tar or registry";

impl Output {
    /// Parses `type=TYPE,dest=PATH`, or `type=registry[,name=REF]...`; as
    /// in `docker buildx build`, a value of one field that does not start
    /// with `type=` is a directory for `type=local`, and `-` is
    /// `type=tar,dest=-`. `type=oci` and `type=tar` without `dest` write
    /// to standard output.
    pub fn parse(spec: &str) -> Result<Self, ExportError> {
        let bad = |why: &str| ExportError::Spec {
            spec: spec.to_owned(),
            why: why.to_owned(),
        };
        if !spec.contains(',') && !spec.starts_with("type=") {
            return Ok(if spec == "-" {
                Output::Tar(PathBuf::from("-"))
            } else {
                Output::Local(PathBuf::from(spec))
            });
        }
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
        let to_stdout = || dest.clone().unwrap_or_else(|| PathBuf::from("-"));
        let dir = || match &dest {
            Some(d) if is_stdout(d) => Err(bad(
                "a directory output cannot go to standard output; write `dest=DIR`, or use `type=tar` or `type=oci`, which are archives",
            )),
            Some(d) => Ok(d.clone()),
            None => Err(bad("missing `dest=DIR`")),
        };
        match kind {
            Some("oci-layout") => Ok(Output::OciLayout(dir()?)),
            Some("local") => Ok(Output::Local(dir()?)),
            Some("oci") => Ok(Output::OciArchive(to_stdout())),
            Some("tar") => Ok(Output::Tar(to_stdout())),
            Some("docker") => Ok(dest
                .clone()
                .map_or(Output::Load(Loader::Docker), Output::DockerArchive)),
            Some(other) => Err(bad(&format!("unknown type `{other}`; use {TYPES}"))),
            None => Err(bad(&format!("missing `type=`; use {TYPES}"))),
        }
    }

    /// The file this output writes to standard output, if it does.
    pub fn writes_stdout(&self) -> bool {
        match self {
            Output::OciArchive(p) | Output::DockerArchive(p) | Output::Tar(p) => is_stdout(p),
            Output::OciLayout(_) | Output::Local(_) | Output::Registry { .. } | Output::Load(_) => {
                false
            }
        }
    }

    /// Whether the output holds an image (rather than only its files).
    pub fn holds_image(&self) -> bool {
        !matches!(self, Output::Local(_) | Output::Tar(_))
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
    export_to(store, images, output, compression, registry, max_layer_size)
        .map_err(|e| out_of_space(e, images))
}

/// Loads the docker archive `file` with `loader`'s `load` command.
fn load(loader: Loader, file: &Path) -> Result<(), ExportError> {
    let command = loader.command();
    let out = std::process::Command::new(command)
        .args(["load", "-i"])
        .arg(file)
        .output()
        .map_err(|e| {
            ExportError::Unsupported(format!(
                "cannot run `{command} load` to load the images ({e}): install {command}, or write `--output type=docker,dest=FILE` and load that file"
            ))
        })?;
    if !out.status.success() {
        return Err(ExportError::Unsupported(format!(
            "`{command} load` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `error`, or when a full filesystem caused it, [`ExportError::NoSpace`]
/// naming what was being written and how much the images hold.
fn out_of_space(error: ExportError, images: &[BuiltImage]) -> ExportError {
    let path = match &error {
        ExportError::Io { path, .. } => path.clone(),
        _ => return error,
    };
    if !crate::util::disk::is_out_of_space(&error) {
        return error;
    }
    let needed: u64 = images
        .iter()
        .flat_map(|image| &image.platforms)
        .flat_map(|(_, _, built)| &built.layers)
        .map(|layer| layer.size)
        .sum();
    ExportError::NoSpace {
        free: crate::util::size::human_size(crate::util::disk::free_space(&path)),
        needed: crate::util::size::human_size(needed),
        path,
    }
}

fn export_to(
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
        Output::Load(loader) => {
            let staging = staging_dir(store)?;
            let archive = staging.join("images.tar");
            let layout = staging.join("layout");
            let result = write_layout(store, images, &layout, true)
                .and_then(|()| archive::tar_dir(&layout, &archive))
                .and_then(|()| load(*loader, &archive));
            let _ = fs::remove_dir_all(&staging);
            result?;
        }
        Output::Local(dir) => write_local(store, images, dir, max_layer_size)?,
        Output::Tar(file) => {
            let staging = staging_dir(store)?;
            let result = write_local(store, images, &staging, max_layer_size)
                .and_then(|()| archive::tar_tree(&staging, file));
            let _ = fs::remove_dir_all(&staging);
            result?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Output {
        Output::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn one_field_is_a_local_directory_and_a_dash_is_a_tar_on_stdout() {
        assert_eq!(parse("out"), Output::Local("out".into()));
        assert_eq!(parse("./a=b"), Output::Local("./a=b".into()));
        assert_eq!(parse("-"), Output::Tar("-".into()));
        assert!(parse("-").writes_stdout());
    }

    #[test]
    fn archives_without_dest_go_to_stdout() {
        assert_eq!(parse("type=tar"), Output::Tar("-".into()));
        assert_eq!(parse("type=oci"), Output::OciArchive("-".into()));
        assert_eq!(
            parse("type=docker,dest=-"),
            Output::DockerArchive("-".into())
        );
        assert_eq!(parse("type=tar,dest=fs.tar"), Output::Tar("fs.tar".into()));
        assert!(!parse("type=tar,dest=fs.tar").writes_stdout());
    }

    #[test]
    fn directories_need_a_dest_other_than_stdout() {
        for spec in ["type=local,dest=-", "type=oci-layout,dest=-", "type=local"] {
            assert!(Output::parse(spec).is_err(), "{spec}");
        }
    }

    #[test]
    fn docker_without_dest_loads_into_the_daemon() {
        assert_eq!(parse("type=docker"), Output::Load(Loader::Docker));
        assert!(!parse("type=docker").writes_stdout());
        assert!(parse("type=docker").holds_image());
    }
}
