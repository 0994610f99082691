//! `imgbuild inspect`: what an image holds, layer by layer, and the space it wastes.

use std::path::Path;

use clap::Args;
use serde_json::Value;

use super::RegistryArgs;
use crate::error::Error;
use crate::image::base::{BaseResolver, PullPolicy};
use crate::image::source::{self, ImageSource};
use crate::image::{self, DOCKER_LIST_MEDIA_TYPE, INDEX_MEDIA_TYPE};
use crate::inspect::{self, Report};
use crate::ir::Platform;
use crate::printer::Printer;
use crate::store::{Digest, Store};

/// Flags of `imgbuild inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// A tag in the store (`localhost/app:1`), `oci-layout:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, or a registry image:
    /// `docker://REF` (pulled into the store first, as a base image is).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Only this platform; default: every platform of a stored image, the
    /// build machine's of a layout or archive.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print the merged file tree: each path with the layer that last wrote it.
    #[arg(long, conflicts_with = "layer")]
    pub files: bool,
    /// Print what layer N (from 1) adds (A), modifies (M) and deletes (D).
    #[arg(long, value_name = "N")]
    pub layer: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when the image wastes more than SIZE (e.g. `10MiB`): for CI.
    #[arg(long, value_name = "SIZE")]
    pub fail_on_waste: Option<String>,
    /// How to reach a `docker://` image's registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Inspects and prints.
pub fn run(args: &InspectArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let limit = args
        .fail_on_waste
        .as_deref()
        .map(|text| {
            crate::ir::value::parse_size(text).ok_or_else(|| Error::Usage {
                message: format!("invalid `--fail-on-waste {text}`"),
                help: "write a size such as `0`, `512KiB`, `10MB` or `1g`".into(),
            })
        })
        .transpose()?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            Platform::parse(p).map_err(|e| Error::Usage {
                message: format!("invalid `--platform {p}`: {e}"),
                help: e.help(),
            })
        })
        .transpose()?;
    let store = super::open_store(store_dir)?;
    let reports = resolve(&store, &args.image, platform, &args.registry)?
        .into_iter()
        .map(|found| {
            inspect::inspect(&store, &found.image, found.manifest, found.platform).map_err(|e| {
                usage(
                    e.to_string(),
                    "the image is damaged; rebuild, re-import or pull it again",
                )
            })
        })
        .collect::<Result<Vec<Report>, Error>>()?;
    let mut out = String::new();
    if args.json {
        let docs: Vec<Value> = reports
            .iter()
            .map(|r| {
                let mut doc = serde_json::to_value(r).expect("a report serializes");
                doc["image"] = Value::String(args.image.clone());
                if args.files {
                    doc["files"] = serde_json::to_value(&r.files).expect("files serialize");
                }
                if let Some(n) = args.layer
                    && let Some(layer) = r.layers.get(n.saturating_sub(1))
                {
                    doc["changes"] =
                        serde_json::to_value(&layer.changes).expect("changes serialize");
                }
                doc
            })
            .collect();
        out = serde_json::to_string_pretty(&docs).expect("JSON serializes");
        out.push('\n');
    } else {
        for report in &reports {
            if args.files {
                out.push_str(&inspect::render_files(report));
            } else if let Some(n) = args.layer {
                out.push_str(
                    &inspect::render_layer(report, n).ok_or_else(|| Error::Usage {
                        message: format!(
                            "`--layer {n}`: the image has {} layers",
                            report.layers.len()
                        ),
                        help: "layers are numbered from 1, bottom first".into(),
                    })?,
                );
            } else {
                out.push_str(&inspect::render_text(&args.image, report));
            }
        }
    }
    printer.result(&out).map_err(Error::Output)?;
    if let Some(limit) = limit
        && let Some(worst) = reports.iter().find(|r| r.wasted_bytes > limit)
    {
        return Err(Error::CheckFailed {
            message: format!(
                "{} ({}) wastes {} bytes, more than `--fail-on-waste` allows ({limit})",
                args.image, worst.platform, worst.wasted_bytes
            ),
            help: "do the work and its cleanup in one step; the report lists which layers to merge"
                .into(),
        });
    }
    Ok(())
}

/// What names a registry image on `inspect`'s command line, as for skopeo:
/// a store tag and a registry reference are otherwise written alike.
const REGISTRY_PREFIX: &str = "docker://";

/// One platform's image that a command-line image name stands for.
pub(super) struct Found {
    /// Its platform.
    pub platform: Platform,
    /// The image.
    pub image: image::Image,
    /// Its manifest's digest, when it has one in the store.
    pub manifest: Option<Digest>,
}

/// The images `name` stands for (a store tag, a layout or archive, or a
/// `docker://` registry image), one per platform, or only `platform`'s.
pub(super) fn resolve(
    store: &Store,
    name: &str,
    platform: Option<Platform>,
    registry: &RegistryArgs,
) -> Result<Vec<Found>, Error> {
    match name.strip_prefix(REGISTRY_PREFIX) {
        Some(reference) => Ok(vec![pull(store, reference, platform, registry)?]),
        None => load(store, name, platform.as_ref()),
    }
}

/// Pulls a registry image for `platform` (default: this machine's) into
/// the store, as a base image is pulled.
fn pull(
    store: &Store,
    reference: &str,
    platform: Option<Platform>,
    registry: &RegistryArgs,
) -> Result<Found, Error> {
    let platform = platform.unwrap_or_else(Platform::host);
    let _lock = store.lock_shared().map_err(Error::Store)?;
    let resolver = BaseResolver::new(store, PullPolicy::Missing, registry.options());
    let base = resolver.resolve(&ImageSource::Registry(reference.to_owned()), &platform)?;
    Ok(Found {
        platform,
        image: base.image,
        manifest: Some(base.manifest_digest),
    })
}

fn usage(message: String, help: &str) -> Error {
    Error::Usage {
        message,
        help: help.to_owned(),
    }
}

/// Every platform's image of `image` in the store, a layout or an archive.
fn load(store: &Store, image: &str, platform: Option<&Platform>) -> Result<Vec<Found>, Error> {
    if crate::ir::reference::is_local(image) {
        let platform = platform.cloned().unwrap_or_else(Platform::host);
        let source = ImageSource::parse(image, Path::new("."));
        let (_, loaded) = source::import(store, &source, &platform).map_err(|e| {
            usage(
                format!("cannot read `{image}`: {e}"),
                "check the path and tag",
            )
        })?;
        return Ok(vec![Found {
            platform,
            image: loaded,
            manifest: None,
        }]);
    }
    let descriptor = store
        .tag(image)
        .map_err(Error::Store)?
        .ok_or_else(|| {
            let tags: Vec<String> = store
                .tags()
                .map(|t| t.into_iter().map(|(name, _)| name).collect())
                .unwrap_or_default();
            usage(
                format!("no image tagged `{image}` in the store"),
                &if tags.is_empty() {
                    "the store holds no images; build one with `imgbuild apply`, or name a layout (`oci-layout:DIR:TAG`) or a registry image (`docker://REF`)".to_owned()
                } else {
                    format!(
                        "tags in the store: {}; a registry image is `docker://REF`",
                        tags.join(", ")
                    )
                },
            )
        })?;
    let doc = image::read_json(store, &descriptor.digest)
        .map_err(|e| usage(e.to_string(), "run `imgbuild store verify`"))?;
    let media_type = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let manifests: Vec<(Platform, Digest)> = if media_type == INDEX_MEDIA_TYPE
        || media_type == DOCKER_LIST_MEDIA_TYPE
        || doc.get("manifests").is_some()
    {
        doc["manifests"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                let text = |k: &str| m.pointer(&format!("/platform/{k}")).and_then(Value::as_str);
                let name = format!(
                    "{}/{}{}",
                    text("os")?,
                    text("architecture")?,
                    text("variant").map(|v| format!("/{v}")).unwrap_or_default()
                );
                Some((
                    Platform::parse(&name).ok()?,
                    Digest::parse(m["digest"].as_str()?).ok()?,
                ))
            })
            .collect()
    } else {
        let loaded = image::read_image(store, &descriptor.digest)
            .map_err(|e| usage(e.to_string(), "run `imgbuild store verify`"))?;
        vec![(loaded.config.platform.clone(), descriptor.digest.clone())]
    };
    let mut found = Vec::new();
    for (p, digest) in manifests {
        if platform.is_some_and(|want| want != &p) {
            continue;
        }
        let loaded = image::read_image(store, &digest)
            .map_err(|e| usage(e.to_string(), "run `imgbuild store verify`"))?;
        found.push(Found {
            platform: p,
            image: loaded,
            manifest: Some(digest),
        });
    }
    if found.is_empty() {
        return Err(usage(
            format!("`{image}` has no manifest for the platform asked for"),
            "leave out `--platform`, or name one the image has",
        ));
    }
    Ok(found)
}
