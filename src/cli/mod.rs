//! The command line: clap definitions, dispatch, and error rendering.
//!
//! Exit codes: 0 success, 1 build failed, 2 bad input or usage, 3 from
//! `plan --detailed-exitcode` when something would be built.

mod apply;
mod convert;
mod doctor;
mod du;
mod history;
mod images;
mod inspect;
mod lint;
mod metadata;
mod plan;
mod prune;
mod pull;
mod push;
mod rmi;
mod sbom;
pub mod schema;
mod session;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indexmap::IndexMap;
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::context::PatternMatcher;
use crate::error::{EXIT_BAD_INPUT, EXIT_OK, Error};
use crate::ir::Platform;
use crate::printer::Printer;

/// Builds OCI container images from a declarative TOML manifest.
#[derive(Debug, Parser)]
#[command(
    name = "imgbuild",
    version,
    after_help = "Exit codes: 0 success, 1 build failed, 2 bad input or usage, 3 `plan --detailed-exitcode`: something would be built."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print only results: no hints or progress on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The content store. Default: `$XDG_CACHE_HOME/imgbuild`.
    #[arg(long, global = true, value_name = "DIR", env = "IMGBUILD_STORE")]
    pub store: Option<PathBuf>,
    /// Log more (repeat for more detail); `IMGBUILD_LOG` takes a tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a build would do: images, stages per platform in dependency
    /// order, every step with its variables expanded.
    Plan(plan::PlanArgs),
    /// Build the images, keep them in the store, and write any `--output`.
    Apply(apply::ApplyArgs),
    /// Run the build checks (a Dockerfile's are `BuildKit`'s) and print what
    /// they find.
    Lint(lint::LintArgs),
    /// Pull an image from a registry into the store.
    Pull(pull::PullArgs),
    /// Push an image from the store to a registry.
    Push(push::PushArgs),
    /// Show what an image holds: layers, files, and space wasted on files
    /// that later layers delete or replace.
    Inspect(inspect::InspectArgs),
    /// List the software an image holds (dpkg and apk packages, Cargo, npm
    /// and Python lock files) as an SPDX 2.3 document, without running it.
    Sbom(sbom::SbomArgs),
    /// Write a Dockerfile as an `imgbuild.toml` manifest that builds the same images.
    Convert(convert::ConvertArgs),
    /// List the images in the store: each tag with its image id, creation
    /// time, size and platforms. With `-q`, only the image ids.
    Images(images::ImagesArgs),
    /// The builds this store has seen: `ls` lists them, `show ID` gives one
    /// build's steps with their times (`docker buildx history`).
    History(history::HistoryArgs),
    /// Remove tags from the store (`docker rmi`).
    ///
    /// An image whose last tag is gone is no longer kept: `imgbuild prune`
    /// then removes the blobs nothing else uses, and `prune --all` the
    /// layers the build cache holds. Refuses, removing nothing, when an
    /// image is not in the store.
    Rmi(rmi::RmiArgs),
    /// Show what the content store holds and how much disk it uses.
    ///
    /// One row per kind of content, with what `prune` and `prune --all` would
    /// free. With `-v`, also every build cache entry, least recently used
    /// (next to be evicted by `prune --keep-storage`) first.
    Du(du::DuArgs),
    /// Remove build cache and whatever no tagged image or cache entry needs.
    ///
    /// Removes cache entries whose blobs are gone, blobs nothing references,
    /// snapshots nothing needs and leftovers of killed builds. Tagged images,
    /// usable cache entries and cache mounts stay, unless `--all` (everything
    /// but tagged images) or `--keep-storage` (least recently used cache
    /// entries first) says otherwise; `imgbuild rmi` untags an image so that
    /// prune can remove it. Waits while a build uses the store.
    Prune(prune::PruneArgs),
    /// Inspect and repair the content store.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Check that this machine can run `run` steps: runtime, overlayfs, emulators.
    Doctor {
        /// Check this OCI runtime (a name or a path) instead of finding one.
        #[arg(long, value_name = "NAME|PATH")]
        runtime: Option<String>,
    },
    /// Print the JSON Schema of the manifest (draft-07).
    Schema,
}

/// The flags that say what to build; shared by `plan` and `apply`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The manifest, or a Dockerfile: a file whose name does not end in `.toml`.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "imgbuild.toml"
    )]
    pub file: PathBuf,
    /// An image or group to build (repeatable); default: the `default` group,
    /// else every image. Long only, as in `docker buildx build`, where `-t`
    /// is `--tag`.
    #[arg(long = "target", value_name = "IMAGE|GROUP")]
    pub targets: Vec<String>,
    /// Tag the image a Dockerfile builds (repeatable), as `docker buildx
    /// build -t` does: `[registry/]repository[:tag]`, `:latest` when no
    /// tag is given. A manifest's images take theirs from `[images.NAME] tags`.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Build for this platform instead of each image's own (repeatable, or comma-separated).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// Override a build argument (repeatable).
    #[arg(
        long = "arg",
        visible_alias = "build-arg",
        value_name = "NAME=VALUE",
        value_parser = parse_key_value
    )]
    pub args: Vec<(String, String)>,
    /// The build context directory; default: the one the manifest names,
    /// or the Dockerfile's directory.
    #[arg(value_name = "CONTEXT")]
    pub context: Option<PathBuf>,
    /// Build every step again, ignoring the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Build the steps of this stage again, ignoring the cache (repeatable).
    #[arg(long, value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// When to ask registries what a base image's tag is: `missing` uses
    /// the store's copy of a tag when it has one, `always` asks the
    /// registry, `never` uses only the store.
    /// A bare `--pull` (docker's boolean) is `always`; `--pull=true` and
    /// `--pull=false` are `always` and `missing`.
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value = "missing",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "always"
    )]
    pub pull: crate::image::base::PullPolicy,
    /// How to reach registries.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl BuildArgs {
    /// Whether `--file` is a Dockerfile rather than a manifest.
    pub fn is_dockerfile(&self) -> bool {
        self.file.extension().is_none_or(|e| e != "toml")
    }

    /// Reads the manifest or Dockerfile into a project.
    pub fn load(&self) -> Result<crate::ir::Project, Error> {
        if self.is_dockerfile() {
            Ok(crate::dockerfile::load(&self.file)?)
        } else {
            Ok(crate::manifest::load(
                &self.file,
                &crate::dockerfile::Triggers,
            )?)
        }
    }

    /// The planning request these flags describe.
    pub fn request(&self) -> Result<crate::plan::Request, Error> {
        let platforms = self
            .platforms
            .iter()
            .map(|p| {
                // `local` is this machine's platform, as in buildx.
                if p == "local" {
                    return Ok(Platform::host());
                }
                Platform::parse(p).map_err(|e| Error::Usage {
                    message: format!("invalid `--platform {p}`: {e}"),
                    help: e.help(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let args: IndexMap<String, String> = self.args.iter().cloned().collect();
        Ok(crate::plan::Request {
            targets: self.targets.clone(),
            platforms,
            args,
            base_dir: self.file_dir(),
            triggers: Some(std::sync::Arc::new(crate::dockerfile::Triggers)),
            ..crate::plan::Request::default()
        })
    }

    /// The Dockerfile, when `--file` is one.
    pub fn dockerfile(&self) -> Option<&Path> {
        self.is_dockerfile().then_some(self.file.as_path())
    }

    /// The build context: the `CONTEXT` argument, else the one the project names.
    pub fn context_dir(&self, project: &crate::ir::Project) -> PathBuf {
        match &self.context {
            Some(dir) => dir.clone(),
            None => self.file_dir().join(&project.context.value),
        }
    }

    /// The options of the build checks for `request`.
    fn check_options<'a>(
        request: &'a crate::plan::Request,
        ignore: &'a PatternMatcher,
        base_dir: &'a Path,
    ) -> crate::dockerfile::check::CheckOptions<'a> {
        crate::dockerfile::check::CheckOptions {
            args: &request.args,
            target: request
                .platforms
                .first()
                .cloned()
                .unwrap_or_else(|| request.host.clone()),
            host: request.host.clone(),
            ignore: Some(ignore),
            base_dir,
        }
    }

    /// Runs the build checks of a Dockerfile and prints what they find to
    /// stderr; fails when the file makes its findings errors.
    pub fn run_checks(
        &self,
        request: &crate::plan::Request,
        ignore: &PatternMatcher,
        printer: Printer,
    ) -> Result<(), Error> {
        let Some(file) = self.dockerfile() else {
            return Ok(());
        };
        let base_dir = self.file_dir();
        let options = Self::check_options(request, ignore, &base_dir);
        let findings = crate::dockerfile::check_file(file, &options)?;
        if findings.is_empty() {
            return Ok(());
        }
        let text = crate::lint::render(&findings);
        if crate::lint::has_errors(&findings) {
            eprint!("{text}");
            return Err(Error::ChecksFailed);
        }
        printer.message(text.trim_end());
        Ok(())
    }

    /// Warns when the Dockerfile `text` (named `name`) has a `# syntax=`
    /// directive naming a frontend other than docker/dockerfile: imgbuild
    /// builds it with its own frontend instead, where `BuildKit` would run
    /// the one named.
    pub fn warn_foreign_syntax(name: &str, text: &str, printer: Printer) {
        if let Some(directive) = crate::dockerfile::foreign_syntax(text) {
            let (line, column) =
                crate::diagnostic::SourceFile::new(name, text).line_column(directive.span.start);
            printer.message(&format!(
                "{name}:{line}:{column}: warning: `# syntax={}` names a frontend imgbuild does not implement; imgbuild builds the file with its own Dockerfile frontend (docker/dockerfile syntax) instead",
                directive.frontend
            ));
        }
    }

    /// The directory of the manifest or Dockerfile: where relative paths in it start.
    pub fn file_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(std::path::Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// How to reach registries; shared by `plan`, `apply`, `pull` and `push`.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP, without TLS, to this registry (repeatable): for a
    /// local registry such as `localhost:5000`. Others use HTTPS, verified
    /// with the system's root certificates.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Read registry credentials from this file only (Docker's
    /// `config.json` format), instead of `~/.docker/config.json` and
    /// Podman's `auth.json`.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry options these flags describe.
    pub fn options(&self) -> crate::registry::RegistryOptions {
        crate::registry::RegistryOptions {
            insecure: self
                .insecure
                .iter()
                .map(|host| {
                    let host = host
                        .strip_prefix("http://")
                        .or_else(|| host.strip_prefix("https://"))
                        .unwrap_or(host);
                    host.trim_end_matches('/').to_owned()
                })
                .collect(),
            auth_file: self.authfile.clone(),
        }
    }
}

/// Opens the store `--store` names, or the default one.
fn open_store(store_dir: Option<&Path>) -> Result<crate::store::Store, Error> {
    crate::store::Store::open(
        store_dir.map_or_else(crate::store::Store::default_root, Path::to_path_buf),
    )
    .map_err(Error::Store)
}

/// Takes the store's shared lock, as a build does; while `prune` or
/// `store verify --repair` has the store to itself, says so and waits.
fn lock_shared_waiting(
    store: &crate::store::Store,
    printer: Printer,
) -> Result<crate::store::StoreLock, Error> {
    if let Some(lock) = store.try_lock_shared().map_err(Error::Store)? {
        return Ok(lock);
    }
    printer
        .message("`imgbuild prune` or `store verify` is using the store; waiting for it to finish");
    store.lock_shared().map_err(Error::Store)
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

/// Runs the command line and returns the exit code.
pub fn main() -> ExitCode {
    // The cleanup watchdog this binary spawns of itself (see `exec::reaper`).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == crate::exec::reaper::SUBCOMMAND)
    {
        return crate::exec::reaper::serve();
    }
    crate::exec::reaper::enable();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            });
        }
    };
    init_tracing(cli.verbose);
    // Secret files and bundles of builds that were killed together with their watchdog.
    crate::exec::private::sweep();
    let printer = if cli.quiet {
        Printer::Quiet
    } else {
        Printer::Default
    };
    let result = match &cli.command {
        Command::Plan(args) => plan::run(args, cli.store.as_deref(), printer),
        Command::Apply(args) => apply::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
        Command::Pull(args) => pull::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
        Command::Push(args) => push::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
        Command::Images(args) => images::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
        Command::History(args) => {
            history::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK)
        }
        Command::Rmi(args) => rmi::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
        Command::Du(args) => {
            du::run(args, cli.store.as_deref(), cli.verbose > 0, printer).map(|()| EXIT_OK)
        }
        Command::Prune(args) => {
            prune::run(args, cli.store.as_deref(), cli.verbose > 0, printer).map(|()| EXIT_OK)
        }
        Command::Lint(args) => lint::run(args, printer).map(|()| EXIT_OK),
        Command::Store(command) => {
            store::run(command, cli.store.as_deref(), printer).map(|()| EXIT_OK)
        }
        Command::Doctor { runtime } => {
            doctor::run(cli.store.as_deref(), runtime.as_deref(), printer).map(|()| EXIT_OK)
        }
        Command::Schema => schema::run(printer).map(|()| EXIT_OK),
        Command::Inspect(args) => {
            inspect::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK)
        }
        Command::Convert(args) => convert::run(args, printer).map(|()| EXIT_OK),
        Command::Sbom(args) => sbom::run(args, cli.store.as_deref(), printer).map(|()| EXIT_OK),
    };
    crate::exec::private::finish();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprint!("{}", render_error(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMGBUILD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Renders an error for the terminal: every diagnostic with its source line.
pub fn render_error(error: &Error) -> String {
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    "error:".clone_into(&mut theme.characters.error);
    // Wrap for a terminal; never in logs and pipes, where wrapped lines only hurt grep.
    let width = if color { 100 } else { 10_000 };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width);
    let mut out = String::new();
    match error.diagnostics() {
        Some(diagnostics) => {
            for diagnostic in &diagnostics.errors {
                let _ = handler.render_report(&mut out, diagnostic);
            }
            if diagnostics.errors.len() > 1 {
                let count = diagnostics.errors.len();
                out.push_str(&count.to_string());
                out.push_str(" errors; fix them and run again.\n");
            }
        }
        None => {
            let _ = handler.render_report(&mut out, error);
        }
    }
    out
}
