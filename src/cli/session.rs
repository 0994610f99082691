//! What `plan` and `apply` share: the project resolved into a graph, the
//! context, the store and the settings every cache key depends on. Both go
//! through here so they compute the same keys.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::BuildArgs;
use crate::context::{self, PatternMatcher};
use crate::diagnostic::suggest;
use crate::error::Error;
use crate::image::base::BaseResolver;
use crate::ir::{BuildGraph, Project};
use crate::plan::cache::{ContextFiles, NoCache};
use crate::plan::{self, CacheQuery};
use crate::printer::Printer;
use crate::scheduler::key_settings;
use crate::store::{Store, StoreLock};

/// A loaded and resolved build, ready to plan or apply.
pub struct Session {
    /// The manifest or Dockerfile.
    pub project: Project,
    /// Its graph for the request.
    pub graph: BuildGraph,
    /// The directory relative paths are relative to.
    pub manifest_dir: PathBuf,
    /// The build context.
    pub context: ContextFiles,
    /// The store.
    pub store: Store,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// Stages that ignore the cache.
    pub no_cache: NoCache,
    /// The manifest's identity in the cache's records.
    pub scope: String,
    /// Resolves base images, each tag once for the plan and the build.
    pub bases: Arc<BaseResolver>,
    /// The shared store lock, held while the session lives: planning and
    /// resolving bases write blobs too, which `prune` must not remove.
    _lock: StoreLock,
}

impl Session {
    /// Loads, resolves and checks everything `build` names; a Dockerfile's
    /// build checks print their findings through `printer`.
    pub fn prepare(
        build: &BuildArgs,
        store_dir: Option<&Path>,
        printer: Printer,
    ) -> Result<Session, Error> {
        let source_date_epoch = source_date_epoch()?;
        let project = build.load()?;
        if build.is_dockerfile() {
            BuildArgs::warn_foreign_syntax(&project.source.name, &project.source.text, printer);
        }
        let mut request = build.request()?;
        let manifest_dir = build.file_dir();
        let context_dir = build.context_dir(&project);
        let ignore = load_ignore(&context_dir, build.dockerfile())?;
        build.run_checks(&request, &ignore, printer)?;
        let store = super::open_store(store_dir)?;
        if let Err(e) = store.recover_snapshots() {
            tracing::warn!("cannot remove the snapshots a reboot left unsynced: {e}");
        }
        let lock = store.lock_shared().map_err(Error::Store)?;
        let bases = Arc::new(BaseResolver::new(
            &store,
            build.pull,
            build.registry.options(),
        ));
        request.bases = Some(Arc::clone(&bases));
        let mut graph = plan::resolve_graph(&project, &request)?;
        apply_tags(build, &mut graph)?;
        warn_unconsumed(&project, &request, &graph, build.is_dockerfile(), printer);
        let no_cache = no_cache(build, &project)?;
        let context = ContextFiles::new(&context_dir, ignore, Some(&store));
        let scope = std::path::absolute(&build.file)
            .unwrap_or_else(|_| build.file.clone())
            .display()
            .to_string();
        Ok(Session {
            project,
            graph,
            manifest_dir,
            context,
            store,
            source_date_epoch,
            no_cache,
            scope,
            bases,
            _lock: lock,
        })
    }

    /// How `plan` asks the cache about this build.
    pub fn cache_query(&self) -> CacheQuery<'_> {
        CacheQuery {
            store: &self.store,
            context: &self.context,
            manifest_dir: &self.manifest_dir,
            settings: key_settings(self.source_date_epoch),
            scope: self.scope.clone(),
            no_cache: self.no_cache.clone(),
            bases: &self.bases,
        }
    }
}

/// Warns about `--arg` values nothing declares, as docker does (`BuildKit`
/// ignores them silently): one line naming them all, then a hint for each
/// that looks like a misspelt declared argument.
fn warn_unconsumed(
    project: &Project,
    request: &plan::Request,
    graph: &BuildGraph,
    dockerfile: bool,
    printer: Printer,
) {
    let unconsumed = plan::unconsumed_args(project, request, graph);
    if unconsumed.is_empty() {
        return;
    }
    let (noun, flag) = if dockerfile {
        ("build-args", "--build-arg")
    } else {
        ("args", "--arg")
    };
    let names: Vec<&str> = unconsumed.iter().map(|u| u.name.as_str()).collect();
    let mut text = format!(
        "[Warning] One or more {noun} [{}] were not consumed",
        names.join(" ")
    );
    for arg in &unconsumed {
        if let Some(near) = &arg.closest {
            let _ = write!(
                text,
                "\n  help: `{flag} {}`: did you mean `{near}`?",
                arg.name
            );
        }
    }
    printer.message(&text);
}

/// Gives the image a Dockerfile builds the `--tag`s, as `docker buildx
/// build -t` names the image of its one target: a tag without `:TAG` gets
/// `:latest`, as `BuildKit` writes it.
fn apply_tags(build: &BuildArgs, graph: &mut BuildGraph) -> Result<(), Error> {
    if build.tags.is_empty() {
        return Ok(());
    }
    let first = &build.tags[0];
    if !build.is_dockerfile() {
        return Err(Error::Usage {
            message: format!("`--tag {first}` tags the image of a Dockerfile build"),
            help: "a manifest's images take their tags from `[images.NAME] tags = [...]`".into(),
        });
    }
    let [image] = graph.images.as_mut_slice() else {
        return Err(Error::Usage {
            message: format!(
                "`--tag {first}` names one image, but this build makes {}",
                graph.images.len()
            ),
            help: "build one `--target` at a time to tag it".into(),
        });
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in &build.tags {
        let bad = |why: &str| Error::Usage {
            message: format!("invalid `--tag {tag}`: {why}"),
            help: "write `[registry/]repository[:tag]`, e.g. `-t localhost/app:1`".into(),
        };
        if tag.contains('@') {
            return Err(bad("a tag cannot hold a digest (`@sha256:…`)"));
        }
        crate::ir::reference::validate(tag).map_err(|why| bad(&why))?;
        let last = tag.rsplit('/').next().unwrap_or(tag);
        let tag = if last.contains(':') {
            tag.clone()
        } else {
            format!("{tag}:latest")
        };
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    image.tags = tags;
    Ok(())
}

fn source_date_epoch() -> Result<Option<i64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => {
            Ok(Some(text.parse::<i64>().map_err(|_| Error::Usage {
                message: format!("SOURCE_DATE_EPOCH=`{text}` is not a number of seconds"),
                help: "set it to a Unix timestamp, e.g. `$(git log -1 --format=%ct)`".into(),
            })?))
        }
        _ => Ok(None),
    }
}

fn no_cache(build: &BuildArgs, project: &Project) -> Result<NoCache, Error> {
    if build.no_cache {
        return Ok(NoCache::Everywhere);
    }
    if build.no_cache_filter.is_empty() {
        return Ok(NoCache::Nowhere);
    }
    for stage in &build.no_cache_filter {
        if !project.stages.contains_key(stage) {
            let names: Vec<&str> = project.stages.keys().map(String::as_str).collect();
            return Err(Error::Usage {
                message: format!("`--no-cache-filter {stage}`: there is no stage `{stage}`"),
                help: suggest("stage", stage, &names),
            });
        }
    }
    Ok(NoCache::Stages(build.no_cache_filter.clone()))
}

/// Reads the ignore file: for a Dockerfile, `<Dockerfile>.dockerignore` next
/// to it wins over `<context>/.dockerignore`. Only from inside the context (or
/// the Dockerfile's directory); anything but a file there is an error.
pub(super) fn load_ignore(
    context: &Path,
    dockerfile: Option<&Path>,
) -> Result<PatternMatcher, Error> {
    context::load_ignore(context, dockerfile).map_err(|e| Error::Usage {
        message: e.to_string(),
        help: e.help().into(),
    })
}
