//! `imgbuild push`: copy an image from the store to a registry.

use std::path::Path;

use clap::Args;

use super::RegistryArgs;
use crate::error::Error;
use crate::export;
use crate::layer::CompressionOptions;
use crate::printer::Printer;
use crate::registry::{self, Registry};

/// Flags of `imgbuild push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The image in the store: a tag of an image `imgbuild apply` built, or
    /// one `imgbuild pull` pulled.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to push it: `[HOST[:PORT]/]NAME[:TAG]`. Default: `IMAGE`.
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pushes the image and prints the destination pinned to the pushed digest.
pub fn run(args: &PushArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let destination = args.destination.as_deref().unwrap_or(&args.image);
    crate::ir::reference::validate(destination).map_err(|why| Error::Usage {
        message: format!("invalid destination `{destination}`: {why}"),
        help: "write `[HOST[:PORT]/]NAME[:TAG]`, e.g. `registry.example.com/team/app:1.0`".into(),
    })?;
    let store = super::open_store(store_dir)?;
    let _lock = store.lock_shared().map_err(Error::Store)?;
    // Built images are tagged as written in the manifest, pulled ones normalised.
    let mut descriptor = store.tag(&args.image).map_err(Error::Store)?;
    if descriptor.is_none()
        && let Ok(normalized) = Registry::normalize(&args.image)
    {
        descriptor = store.tag(&normalized).map_err(Error::Store)?;
    }
    let Some(descriptor) = descriptor else {
        let tags: Vec<String> = store
            .tags()
            .map_err(Error::Store)?
            .into_iter()
            .map(|(tag, _)| tag)
            .collect();
        return Err(Error::Usage {
            message: format!("no image tagged `{}` in the store", args.image),
            help: if tags.is_empty() {
                "the store has no tagged images; build one with `imgbuild apply` or pull one with `imgbuild pull`".to_owned()
            } else {
                format!("tags in the store: {}", tags.join(", "))
            },
        });
    };
    // Built images keep their layers uncompressed in the store: push them
    // gzipped, as `apply --push` does. Images whose layers are compressed
    // already (pulled ones) go as they are, with their own digests.
    let image = export::stored_image(&store, &args.image, &descriptor).map_err(Error::Export)?;
    let gzipped =
        export::compressed(&store, &image, CompressionOptions::default()).map_err(Error::Export)?;
    let unchanged = image
        .platforms
        .iter()
        .zip(&gzipped.platforms)
        .all(|((_, _, a), (_, _, b))| a.layers == b.layers);
    let descriptor = if unchanged {
        descriptor
    } else {
        gzipped.descriptor
    };
    let client = Registry::new(args.registry.options())?;
    let report = client.push(
        &store,
        &descriptor.digest,
        &descriptor.media_type,
        destination,
    )?;
    printer.message(&format!(
        "{} blobs uploaded, {} already in the registry",
        report.blobs_uploaded, report.blobs_skipped
    ));
    let name = Registry::normalize(destination)?;
    printer
        .result(&registry::pin(&name, &report.digest))
        .map_err(Error::Output)
}
