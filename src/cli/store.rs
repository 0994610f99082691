//! `imgbuild store`: inspect and repair the content store.

use std::fmt::Write as _;
use std::path::Path;

use clap::Subcommand;

use crate::error::Error;
use crate::printer::Printer;

/// Store subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Re-hash every blob and look for leftovers of interrupted builds.
    Verify {
        /// Remove corrupt blobs and leftovers.
        #[arg(long)]
        repair: bool,
    },
}

/// Runs a store subcommand.
pub fn run(
    command: &StoreCommand,
    store_dir: Option<&Path>,
    printer: Printer,
) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    match command {
        StoreCommand::Verify { repair } => {
            let report = store.verify(*repair).map_err(Error::Store)?;
            let mut text = format!(
                "{} blobs checked, {} corrupt, {} leftovers, {} strays, {} dangling tags",
                report.blobs_checked,
                report.corrupt_blobs.len(),
                report.temp_leftovers.len(),
                report.strays.len(),
                report.dangling_tags.len()
            );
            for digest in &report.corrupt_blobs {
                let _ = write!(text, "\ncorrupt blob {digest}");
            }
            for path in report.temp_leftovers.iter().chain(&report.strays) {
                let _ = write!(text, "\nleftover {}", path.display());
            }
            for tag in &report.dangling_tags {
                let _ = write!(text, "\ndangling tag {tag}");
            }
            if *repair {
                let _ = write!(text, ", {} removed", report.removed);
            }
            printer.result(&text).map_err(Error::Output)?;
            if report.is_clean() || *repair {
                Ok(())
            } else {
                Err(Error::StoreDirty)
            }
        }
    }
}
