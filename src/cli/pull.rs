//! `imgbuild pull`: copy an image from a registry into the store.

use std::path::Path;

use clap::Args;

use super::RegistryArgs;
use crate::error::Error;
use crate::image::base::{BaseResolver, PullPolicy};
use crate::image::source::ImageSource;
use crate::ir::Platform;
use crate::printer::Printer;

/// Flags of `imgbuild pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The image: `[HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]`; Docker Hub
    /// names may be short (`alpine` is `docker.io/library/alpine:latest`).
    #[arg(value_name = "IMAGE")]
    pub reference: String,
    /// The platform to pull (repeatable, or comma-separated). Default: this machine's.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pulls the image for each platform, tags it in the store under its
/// normalised name, and prints the reference pinned to its digest.
pub fn run(args: &PullArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    crate::ir::reference::validate(&args.reference).map_err(|why| Error::Usage {
        message: format!("invalid image reference `{}`: {why}", args.reference),
        help:
            "write `[HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]`, e.g. `docker.io/library/alpine:3.20`"
                .into(),
    })?;
    let platforms = if args.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        args.platforms
            .iter()
            .map(|p| {
                Platform::parse(p).map_err(|e| Error::Usage {
                    message: format!("invalid `--platform {p}`: {e}"),
                    help: e.help(),
                })
            })
            .collect::<Result<_, _>>()?
    };
    let store = super::open_store(store_dir)?;
    let _lock = store.lock_shared().map_err(Error::Store)?;
    // `pull` always asks the registry what a tag is, as `docker pull` does.
    let resolver = BaseResolver::new(&store, PullPolicy::Always, args.registry.options());
    let source = ImageSource::Registry(args.reference.clone());
    let mut pinned = String::new();
    for platform in &platforms {
        let base = resolver.resolve(&source, platform)?;
        printer.message(&format!("{platform}: {}", base.manifest_digest));
        pinned = base.pinned.unwrap_or(base.name);
    }
    printer.result(&pinned).map_err(Error::Output)
}
