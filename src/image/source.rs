//! Where base images come from: registry references, and local sources
//! (`oci-layout:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and `docker-archive:FILE`,
//! what `docker save` writes). Importing a local source copies and verifies
//! every blob into the store; [`super::base`] pulls registry images.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Image, ImageConfig, ImageError, LayerRef, REF_NAME, read_image, select_platform};
use crate::ir::Platform;
use crate::store::{Digest, Store};

/// Where a base image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageSource {
    /// An OCI image layout directory, optionally a tag in it.
    OciLayout {
        /// The directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
    },
    /// An OCI image layout in a tar file.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The tag.
        tag: Option<String>,
    },
    /// A `docker save` tar file.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
    },
    /// A registry reference.
    Registry(String),
}

fn path_and_tag(rest: &str, base: &Path) -> (PathBuf, Option<String>) {
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (path, Some(tag.to_owned())),
        _ => (rest, None),
    };
    (base.join(path), tag)
}

impl ImageSource {
    /// Reads a base reference; relative paths are relative to `base`.
    pub fn parse(reference: &str, base: &Path) -> Self {
        if let Some(rest) = reference.strip_prefix("oci-layout:") {
            let (dir, tag) = path_and_tag(rest, base);
            ImageSource::OciLayout { dir, tag }
        } else if let Some(rest) = reference.strip_prefix("oci-archive:") {
            let (file, tag) = path_and_tag(rest, base);
            ImageSource::OciArchive { file, tag }
        } else if let Some(rest) = reference.strip_prefix("docker-archive:") {
            ImageSource::DockerArchive {
                file: base.join(rest),
            }
        } else {
            ImageSource::Registry(reference.to_owned())
        }
    }
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_tag = |f: &mut std::fmt::Formatter<'_>, tag: &Option<String>| match tag {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        };
        match self {
            ImageSource::OciLayout { dir, tag } => {
                write!(f, "oci-layout:{}", dir.display())?;
                with_tag(f, tag)
            }
            ImageSource::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}", file.display())?;
                with_tag(f, tag)
            }
            ImageSource::DockerArchive { file } => write!(f, "docker-archive:{}", file.display()),
            ImageSource::Registry(reference) => f.write_str(reference),
        }
    }
}

fn source_error(message: String, help: &str) -> ImageError {
    ImageError::Source {
        message,
        help: help.to_owned(),
    }
}

/// Imports the image a local `source` names for `platform` into `store`;
/// returns its manifest digest and the image. A docker archive has no
/// manifest: one is written, as for a built image.
pub(crate) fn import(
    store: &Store,
    source: &ImageSource,
    platform: &Platform,
) -> Result<(Digest, Image), ImageError> {
    match source {
        ImageSource::OciLayout { dir, tag } => import_layout(store, dir, tag.as_deref(), platform),
        ImageSource::OciArchive { file, tag } => {
            let unpacked = unpack_archive(store, file)?;
            let result = import_layout(store, &unpacked, tag.as_deref(), platform);
            let _ = fs::remove_dir_all(&unpacked);
            result
        }
        ImageSource::DockerArchive { file } => {
            let unpacked = unpack_archive(store, file)?;
            let result = import_docker(store, &unpacked, file, platform);
            let _ = fs::remove_dir_all(&unpacked);
            let image = result?;
            let manifest = super::write_image(store, &image, &BTreeMap::new())?;
            Ok((manifest.digest, image))
        }
        ImageSource::Registry(reference) => Err(ImageError::Invalid(format!(
            "`{reference}` is a registry image, not a local source; it is pulled, not imported"
        ))),
    }
}

fn unpack_archive(store: &Store, file: &Path) -> Result<PathBuf, ImageError> {
    let open = fs::File::open(file).map_err(|e| {
        source_error(
            format!("cannot open base image archive `{}`: {e}", file.display()),
            "check the path; relative paths are relative to the manifest",
        )
    })?;
    let dir = store.temp_path("import");
    fs::create_dir_all(&dir).map_err(|e| {
        source_error(
            format!("cannot create `{}`: {e}", dir.display()),
            "check the store's permissions",
        )
    })?;
    let mut archive = tar::Archive::new(open);
    archive.set_preserve_permissions(false);
    archive.unpack(&dir).map_err(|e| {
        let _ = fs::remove_dir_all(&dir);
        source_error(
            format!("`{}` is not a readable tar archive: {e}", file.display()),
            "oci-archive: and docker-archive: take tar files, such as those `skopeo copy` or `docker save` write",
        )
    })?;
    Ok(dir)
}

fn read_json_file(path: &Path) -> Result<Value, ImageError> {
    let bytes = fs::read(path).map_err(|e| {
        source_error(
            format!("cannot read `{}`: {e}", path.display()),
            "is this an OCI image layout?",
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::Invalid(format!("`{}` is not JSON: {e}", path.display())))
}

/// Manifests and indexes with no declared size are read up to this many
/// bytes (as the registry client reads them).
const MAX_UNSIZED_DOCUMENT: u64 = 4 * 1024 * 1024;

/// Copies blob `digest` from the layout `layout` into the store, reading
/// no more than the `size` its descriptor declares (a document without
/// one: at most 4 MiB), so a blob path that is a FIFO or `/dev/zero`
/// cannot make the import read without end; a blob of another size is
/// refused before its digest is.
fn import_blob(
    store: &Store,
    layout: &Path,
    digest: &Digest,
    size: Option<u64>,
) -> Result<(), ImageError> {
    if store.has_blob(digest) {
        return Ok(());
    }
    let path = layout.join("blobs").join("sha256").join(digest.hex());
    let file = fs::File::open(&path).map_err(|e| {
        source_error(
            format!("blob {digest} is missing from `{}`: {e}", layout.display()),
            "the image layout is incomplete; export it again",
        )
    })?;
    let bound = size.unwrap_or(MAX_UNSIZED_DOCUMENT);
    let mut writer = store.blob_writer()?;
    let copied = std::io::copy(&mut std::io::Read::take(file, bound + 1), &mut writer)
        .map_err(|e| source_error(format!("cannot read blob {digest}: {e}"), "check the file"))?;
    let wrong_size = match size {
        Some(size) => copied != size,
        None => copied > bound,
    };
    if wrong_size {
        return Err(source_error(
            format!(
                "blob {digest} in `{}` is {}{copied} bytes, but its descriptor declares {}",
                layout.display(),
                if copied > bound { "more than " } else { "" },
                size.map_or_else(
                    || format!("none (the most allowed is {bound})"),
                    |s| s.to_string()
                ),
            ),
            "the image layout is damaged or not what it claims to be",
        ));
    }
    writer.commit_expecting(digest)?;
    Ok(())
}

/// The `size` of the descriptor of `digest` in the document `doc`: its
/// config, a layer or an index entry.
fn declared_size(doc: &Value, digest: &Digest) -> Option<u64> {
    let matches = |d: &&Value| d.get("digest").and_then(Value::as_str) == Some(digest.as_str());
    doc.get("config")
        .into_iter()
        .chain(["layers", "manifests"].iter().flat_map(|key| {
            doc.get(*key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        }))
        .find(matches)
        .and_then(|d| d.get("size"))
        .and_then(Value::as_u64)
}

fn import_layout(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<(Digest, Image), ImageError> {
    let index = read_json_file(&dir.join("index.json"))?;
    let top = tagged_manifest(&index, tag, &dir.display().to_string())?;
    import_blob(store, dir, &top, declared_size(&index, &top))?;
    let manifest = select_platform(store, &top, platform)?;
    if manifest != top {
        let top_doc = super::read_json(store, &top)?;
        import_blob(store, dir, &manifest, declared_size(&top_doc, &manifest))?;
    }
    let doc = super::read_json(store, &manifest)?;
    let config = Digest::parse(
        doc.pointer("/config/digest")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )?;
    import_blob(store, dir, &config, declared_size(&doc, &config))?;
    for layer in doc
        .get("layers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let digest = Digest::parse(
            layer
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        let size = layer.get("size").and_then(Value::as_u64).ok_or_else(|| {
            ImageError::Invalid(format!(
                "layer {digest} in `{}` has no size in its manifest",
                dir.display()
            ))
        })?;
        import_blob(store, dir, &digest, Some(size))?;
    }
    let image = read_image(store, &manifest)?;
    check_platform(&image.config, platform, &dir.display().to_string())?;
    Ok((manifest, image))
}

/// The digest of the manifest (or index) tagged `tag` in an OCI layout's
/// `index.json`; without a tag, its only entry.
fn tagged_manifest(index: &Value, tag: Option<&str>, name: &str) -> Result<Digest, ImageError> {
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ref_name = |m: &Value| {
        m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let chosen = match tag {
        Some(tag) => manifests.iter().find(|m| {
            ref_name(m).as_deref() == Some(tag)
                || m.pointer("/annotations/io.containerd.image.name")
                    .and_then(Value::as_str)
                    == Some(tag)
        }),
        None if manifests.len() == 1 => manifests.first(),
        None => None,
    };
    let Some(chosen) = chosen else {
        let tags: Vec<String> = manifests.iter().filter_map(ref_name).collect();
        return Err(source_error(
            match tag {
                Some(tag) => format!("no image tagged `{tag}` in `{name}`"),
                None => format!(
                    "`{name}` holds {} images; name one with `:TAG`",
                    manifests.len()
                ),
            },
            &format!(
                "tags in it: {}",
                if tags.is_empty() {
                    "none".to_owned()
                } else {
                    tags.join(", ")
                }
            ),
        ));
    };
    Digest::parse(
        chosen
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
    .map_err(ImageError::from)
}

/// Reads the config of the image `source` names for `platform` without
/// importing anything: what planning needs to know of a local base (its
/// `OnBuild` triggers). A registry source is read by
/// [`super::base::BaseResolver::resolve_metadata`] instead.
pub fn read_config(source: &ImageSource, platform: &Platform) -> Result<ImageConfig, ImageError> {
    match source {
        ImageSource::OciLayout { dir, tag } => {
            let files = Files::Dir(dir.clone());
            layout_config(&files, tag.as_deref(), platform, &dir.display().to_string())
        }
        ImageSource::OciArchive { file, tag } => {
            let files = Files::Tar(file.clone());
            layout_config(
                &files,
                tag.as_deref(),
                platform,
                &file.display().to_string(),
            )
        }
        ImageSource::DockerArchive { file } => {
            let files = Files::Tar(file.clone());
            let manifest = files.json("manifest.json")?;
            let config_path = manifest
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e.get("Config"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ImageError::Invalid(format!(
                        "`{}` has no image in manifest.json",
                        file.display()
                    ))
                })?;
            let config = ImageConfig::from_json(&files.read(config_path)?)?;
            check_platform(&config, platform, &file.display().to_string())?;
            Ok(config)
        }
        ImageSource::Registry(reference) => Err(source_error(
            format!("cannot read `{reference}` without pulling it"),
            "registry images are read through the base resolver",
        )),
    }
}

fn layout_config(
    files: &Files,
    tag: Option<&str>,
    platform: &Platform,
    name: &str,
) -> Result<ImageConfig, ImageError> {
    let top = tagged_manifest(&files.json("index.json")?, tag, name)?;
    let doc = files.json(&blob_path(&top))?;
    let manifest = super::pick_manifest(&doc, &top, platform)?;
    let doc = if manifest == top {
        doc
    } else {
        files.json(&blob_path(&manifest))?
    };
    let config = Digest::parse(
        doc.pointer("/config/digest")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )?;
    let config = ImageConfig::from_json(&files.read(&blob_path(&config))?)?;
    check_platform(&config, platform, name)?;
    Ok(config)
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The files of an image layout or archive, read one at a time.
enum Files {
    /// A directory.
    Dir(PathBuf),
    /// A tar file, scanned for each file asked for.
    Tar(PathBuf),
}

impl Files {
    fn read(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        match self {
            Files::Dir(dir) => {
                let full = dir.join(path);
                fs::read(&full).map_err(|e| {
                    source_error(
                        format!("cannot read `{}`: {e}", full.display()),
                        "is this an OCI image layout?",
                    )
                })
            }
            Files::Tar(file) => {
                let unreadable = |e: std::io::Error| {
                    source_error(
                        format!("`{}` is not a readable tar archive: {e}", file.display()),
                        "oci-archive: and docker-archive: take tar files, such as those `skopeo copy` or `docker save` write",
                    )
                };
                let open = fs::File::open(file).map_err(|e| {
                    source_error(
                        format!("cannot open base image archive `{}`: {e}", file.display()),
                        "check the path; relative paths are relative to the manifest",
                    )
                })?;
                let mut archive = tar::Archive::new(open);
                for entry in archive.entries_with_seek().map_err(unreadable)? {
                    let mut entry = entry.map_err(unreadable)?;
                    let name = entry.path().map_err(unreadable)?.into_owned();
                    if name.strip_prefix(".").unwrap_or(&name) == Path::new(path) {
                        let mut bytes = Vec::new();
                        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(unreadable)?;
                        return Ok(bytes);
                    }
                }
                Err(source_error(
                    format!("`{}` has no `{path}`", file.display()),
                    "the archive is incomplete; export it again",
                ))
            }
        }
    }

    fn json(&self, path: &str) -> Result<Value, ImageError> {
        let bytes = self.read(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Invalid(format!("`{path}` is not JSON: {e}")))
    }
}

/// Refuses an image whose config is for another platform than the stage's.
pub(crate) fn check_platform(
    config: &ImageConfig,
    platform: &Platform,
    name: &str,
) -> Result<(), ImageError> {
    if &config.platform == platform {
        Ok(())
    } else {
        Err(source_error(
            format!(
                "base image `{name}` is {} but the stage runs on {platform}",
                config.platform
            ),
            "use an image for the stage's platform, or set the stage's `platform`",
        ))
    }
}

fn import_docker(
    store: &Store,
    dir: &Path,
    file: &Path,
    platform: &Platform,
) -> Result<Image, ImageError> {
    let manifest = read_json_file(&dir.join("manifest.json"))?;
    let entry = manifest.as_array().and_then(|a| a.first()).ok_or_else(|| {
        ImageError::Invalid(format!("`{}` has an empty manifest.json", file.display()))
    })?;
    let config_path = entry
        .get("Config")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = ImageConfig::from_json(&fs::read(dir.join(config_path)).map_err(|e| {
        source_error(
            format!("cannot read `{config_path}` in `{}`: {e}", file.display()),
            "the docker archive is incomplete",
        )
    })?)?;
    check_platform(&config, platform, &file.display().to_string())?;
    let layer_paths: Vec<&str> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if layer_paths.len() != config.diff_ids.len() {
        return Err(ImageError::Invalid(format!(
            "`{}` lists {} layers but its config has {} diff_ids",
            file.display(),
            layer_paths.len(),
            config.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (path, diff_id) in layer_paths.iter().zip(&config.diff_ids) {
        let full = dir.join(path);
        let mut reader = fs::File::open(&full).map_err(|e| {
            source_error(
                format!("cannot read layer `{path}` in `{}`: {e}", file.display()),
                "the docker archive is incomplete",
            )
        })?;
        let mut head = [0u8; 8];
        let read = std::io::Read::read(&mut reader, &mut head).unwrap_or(0);
        let compression = crate::layer::Compression::detect(&head[..read]);
        let reader = fs::File::open(&full).map_err(|e| {
            source_error(
                format!("cannot read layer `{path}`: {e}"),
                "the docker archive is incomplete",
            )
        })?;
        let (digest, size) = if compression == crate::layer::Compression::None {
            // docker save writes layers uncompressed: the digest is the diff_id.
            (diff_id.clone(), store.import_blob(reader, diff_id)?)
        } else {
            let mut writer = store.blob_writer()?;
            std::io::copy(&mut std::io::BufReader::new(reader), &mut writer).map_err(|e| {
                source_error(
                    format!("cannot read layer `{path}`: {e}"),
                    "the docker archive is incomplete",
                )
            })?;
            writer.commit()?
        };
        layers.push(LayerRef {
            media_type: compression.media_type().to_owned(),
            digest,
            size,
            diff_id: diff_id.clone(),
            uncompressed_size: None,
        });
    }
    Ok(Image { config, layers })
}
