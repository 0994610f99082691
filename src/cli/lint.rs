//! `imgbuild lint`: run the build checks and the best-practice rules, and
//! print what they find.

use clap::Args;

use super::BuildArgs;
use super::session::load_ignore;
use crate::error::Error;
use crate::lint::{Finding, practice};
use crate::printer::Printer;

/// Flags of `imgbuild lint`.
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// What to check: the file, and the arguments and platform to check it with.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Checks and prints. Exit code 0 with warnings only, 1 when the file makes
/// them errors (`# check=error=true`, `[lint] error = true`), 2 when it
/// cannot be read or built.
pub fn run(args: &LintArgs, printer: Printer) -> Result<(), Error> {
    let build = &args.build;
    if !build.targets.is_empty() {
        return Err(Error::Usage {
            message: "`lint` checks every stage; `--target` does not apply".into(),
            help: "remove `--target`".into(),
        });
    }
    let request = build.request()?;
    let Some(file) = build.dockerfile() else {
        let project = build.load()?;
        let options = practice::Options {
            syntax: practice::Syntax::Manifest,
            args: &request.args,
            local: &[],
        };
        let findings = practice::check(&project, &options);
        return print(&findings, printer);
    };
    // Checks run on the file as written, even one imgbuild cannot build.
    let text = std::fs::read_to_string(file).map_err(|source| {
        Error::Dockerfile(crate::dockerfile::Error::Read {
            path: file.to_owned(),
            source,
        })
    })?;
    let name = file.display().to_string();
    let dockerfile = crate::dockerfile::parse_project(&name, &text);
    let context = match (&build.context, &dockerfile) {
        (Some(dir), _) => dir.clone(),
        (None, Ok(project)) => build.context_dir(project),
        (None, Err(_)) => build.file_dir(),
    };
    let ignore = load_ignore(&context, Some(file))?;
    let base_dir = build.file_dir();
    let options = BuildArgs::check_options(&request, &ignore, &base_dir);
    let mut findings = crate::dockerfile::check_text(&name, &text, &options)
        .map_err(|e| Error::Dockerfile(e.into()))?;
    // The best-practice rules read the IR: only a file that lowers gets them.
    if let (Ok(project), Ok(parsed)) = (&dockerfile, crate::dockerfile::parse(&text)) {
        findings.extend(crate::dockerfile::check::practice(
            project, &parsed, &options,
        ));
        findings.sort_by_key(|f| (f.location.line, f.location.column));
    }
    if !findings.is_empty() {
        printer
            .result(&crate::lint::render(&findings))
            .map_err(Error::Output)?;
    }
    dockerfile.map_err(|e| Error::Dockerfile(e.into()))?;
    if crate::lint::has_errors(&findings) {
        return Err(Error::ChecksFailed);
    }
    Ok(())
}

/// Prints `findings`; fails when they are errors.
fn print(findings: &[Finding], printer: Printer) -> Result<(), Error> {
    if !findings.is_empty() {
        printer
            .result(&crate::lint::render(findings))
            .map_err(Error::Output)?;
    }
    if crate::lint::has_errors(findings) {
        return Err(Error::ChecksFailed);
    }
    Ok(())
}
