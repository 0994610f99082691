//! `imgbuild plan`: print what a build would do, and what the cache already has.

use std::path::Path;

use clap::Args;

use super::BuildArgs;
use super::session::Session;
use crate::error::{EXIT_OK, EXIT_WOULD_BUILD, Error};
use crate::plan::{self, CacheStatus, Plan};
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
    /// Exit 0 when every step is cached, 3 when some step would be built.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Plans and prints; returns the exit code.
pub fn run(args: &PlanArgs, store_dir: Option<&Path>, printer: Printer) -> Result<u8, Error> {
    let session = Session::prepare(&args.build, store_dir)?;
    let mut plan = Plan::new(&session.project, &session.graph);
    plan::predict(&mut plan, &session.graph, &session.cache_query());
    let text = if args.json {
        serde_json::to_string_pretty(&plan).expect("a plan always serializes")
    } else {
        plan::render_text(&plan)
    };
    printer.result(&text).map_err(Error::Output)?;
    let builds = plan
        .nodes
        .iter()
        .flat_map(|n| &n.steps)
        .any(|s| matches!(s.cache, Some(CacheStatus::Build { .. })));
    Ok(if args.detailed_exitcode && builds {
        EXIT_WOULD_BUILD
    } else {
        EXIT_OK
    })
}
