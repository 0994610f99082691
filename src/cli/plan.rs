//! `imgbuild plan`: print what a build would do.

use clap::Args;

use super::{BuildArgs, load_ignore};
use crate::error::Error;
use crate::plan;
use crate::printer::Printer;

/// Flags of `imgbuild plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// What to build.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Print the plan as JSON (schema in the book's "Plan JSON" chapter).
    #[arg(long)]
    pub json: bool,
}

/// Plans and prints.
pub fn run(args: &PlanArgs, printer: Printer) -> Result<(), Error> {
    let project = args.build.load()?;
    let request = args.build.request()?;
    let ignore = load_ignore(&args.build.context_dir(&project), args.build.dockerfile())?;
    args.build.run_checks(&request, &ignore, printer)?;
    let plan = plan::plan(&project, &request)?;
    let text = if args.json {
        serde_json::to_string_pretty(&plan).expect("a plan always serializes")
    } else {
        plan::render_text(&plan)
    };
    printer.result(&text).map_err(Error::Output)
}
