//! Predicts, for every step of a plan, whether the build will take it from
//! the cache, and if not, why it rebuilds.
//!
//! It walks the nodes in the order the scheduler builds them, with the same
//! [`NodeKeys`] walk, so a step it calls cached is one the build will not
//! run. A step that reads a stage which rebuilds cannot be predicted (its
//! key depends on the files the stage will produce): it is called a
//! rebuild, and the build may still find it cached when the stage's files
//! come out the same.

use std::collections::HashMap;
use std::path::Path;

use super::cache::{
    self, CacheKey, ContextFiles, InputDigest, InputSpec, KeySettings, NoCache, NodeKeys,
    StepRecord,
};
use super::state::apply_config;
use super::{CacheStatus, Plan, PlanNode};
use crate::image::base::{BaseResolver, ResolvedBase};
use crate::image::source::ImageSource;
use crate::image::{DEFAULT_CREATED, Image, ImageConfig};
use crate::ir::{Base, BuildGraph, Node, NodeId, Platform, reference};
use crate::store::Store;

/// Ends the reason of every step whose key depends on files a rebuilt stage
/// will produce.
pub const UNCERTAIN: &str = "cached after all if the files it reads come out the same";

/// What `plan` needs to ask the cache.
pub struct CacheQuery<'a> {
    /// The store holding the cache.
    pub store: &'a Store,
    /// The build context.
    pub context: &'a ContextFiles,
    /// The directory relative image paths are relative to.
    pub manifest_dir: &'a Path,
    /// Build settings.
    pub settings: KeySettings,
    /// Identifies the manifest in the cache's records.
    pub scope: String,
    /// Stages that ignore the cache.
    pub no_cache: NoCache,
    /// Resolves base images (registry images without their layers).
    pub bases: &'a BaseResolver,
}

/// A node as the plan predicts it.
struct Predicted {
    image: Image,
    /// Whether every layer is known (every step cached).
    complete: bool,
    key: Option<CacheKey>,
    /// Whether an unknown key may still turn out cached (it waits on a rebuilt stage's files).
    uncertain: bool,
}

/// Why a step's inputs cannot be digested now.
struct Unknown {
    why: String,
    /// The files will exist after a stage rebuilds (rather than: an error).
    uncertain: bool,
}

/// Fills in the cache state of every step of `plan`, made from `graph`.
pub fn predict(plan: &mut Plan, graph: &BuildGraph, query: &CacheQuery<'_>) {
    let mut predictor = Predictor {
        graph,
        query,
        predicted: HashMap::new(),
        bases: HashMap::new(),
    };
    for wave in graph.waves() {
        for id in wave {
            let node = graph.node(id);
            let Some(plan_node) = plan.nodes.iter_mut().find(|n| n.id == node.id) else {
                continue;
            };
            let predicted = predictor.node(node, plan_node);
            predictor.predicted.insert(id, predicted);
        }
    }
}

/// The base images resolved so far, by reference and platform.
type Bases = HashMap<(String, Platform), Result<ResolvedBase, String>>;

/// The prediction of a plan, node by node in build order.
struct Predictor<'g, 'q> {
    graph: &'g BuildGraph,
    query: &'g CacheQuery<'q>,
    /// The nodes predicted so far.
    predicted: HashMap<NodeId, Predicted>,
    bases: Bases,
}

/// Resolves base image `reference` for `platform`, once per pair.
fn resolve_base(
    bases: &mut Bases,
    graph: &BuildGraph,
    query: &CacheQuery<'_>,
    reference: &str,
    platform: &Platform,
) -> Result<ResolvedBase, String> {
    bases
        .entry((reference.to_owned(), platform.clone()))
        .or_insert_with(|| {
            let source = ImageSource::parse(reference, query.manifest_dir);
            query.bases.resolve_metadata(&source, platform).map_err(
                |e| match reference::stage_hint(reference, &graph.stage_names) {
                    Some(hint) => format!("{e}; {hint}"),
                    None => e.to_string(),
                },
            )
        })
        .clone()
}

/// What a node starts from: the base's image and key, why the first step
/// would rebuild, and whether the base may rebuild.
struct Start {
    image: Image,
    key: Option<CacheKey>,
    parent_note: String,
    uncertain: bool,
}

impl Predictor<'_, '_> {
    /// The start of `node`: scratch, a predicted stage or a base image
    /// (whose pinned reference goes to `plan_node`).
    fn start(&mut self, node: &Node, plan_node: &mut PlanNode) -> Start {
        match &node.base {
            Base::Scratch => Start {
                image: scratch(&node.platform),
                key: Some(CacheKey::scratch(&node.platform.to_string())),
                parent_note: "the platform changed".to_owned(),
                uncertain: false,
            },
            Base::Stage(parent) => {
                let parent_id = self.graph.find(parent).expect("a stage base is a node");
                let p = &self.predicted[&parent_id];
                let name = &self.graph.node(parent_id).stage;
                let note = if p.key.is_none() && p.uncertain {
                    format!("stage `{name}` may rebuild: {UNCERTAIN}")
                } else if p.complete {
                    format!("stage `{name}` changed")
                } else {
                    format!("stage `{name}` rebuilds")
                };
                Start {
                    image: p.image.clone(),
                    key: p.key,
                    parent_note: note,
                    uncertain: p.uncertain,
                }
            }
            Base::Image(reference) => {
                match resolve_base(
                    &mut self.bases,
                    self.graph,
                    self.query,
                    reference,
                    &node.platform,
                ) {
                    Ok(base) => {
                        plan_node.base_pinned = base.pinned.filter(|_| !reference.contains('@'));
                        let image = base.image;
                        let key = CacheKey::image(&image);
                        Start {
                            image,
                            key: Some(key),
                            parent_note: format!("base image `{reference}` changed"),
                            uncertain: false,
                        }
                    }
                    Err(e) => Start {
                        image: scratch(&node.platform),
                        key: None,
                        parent_note: format!("base image `{reference}` cannot be loaded: {e}"),
                        uncertain: false,
                    },
                }
            }
        }
    }

    /// Predicts `node`, filling in the cache state of `plan_node`'s steps.
    fn node(&mut self, node: &Node, plan_node: &mut PlanNode) -> Predicted {
        let query = self.query;
        let Start {
            mut image,
            key: base_key,
            mut parent_note,
            mut uncertain,
        } = self.start(node, plan_node);
        let mut complete = base_key.is_some()
            && !matches!(&node.base, Base::Stage(p) if !self.predicted[&self.graph.find(p).expect("a node")].complete);
        let no_cache = query.no_cache.reason(&node.stage);
        let mut keys = NodeKeys::new(&query.settings, node, &image, base_key);
        let start = image.clone();
        if let Some(record) = keys.start_workdir(&start) {
            let id = cache::record_id(&query.scope, &node.id, 0);
            if let Err(reason) = lookup(
                query,
                &mut image,
                record.as_ref(),
                &id,
                &parent_note,
                no_cache.as_deref(),
            ) {
                complete = false;
                parent_note = reason;
            }
        }
        let (graph, bases, predicted) = (self.graph, &mut self.bases, &self.predicted);
        let mut import = |reference: &str, platform: &Platform| {
            resolve_base(bases, graph, query, reference, platform).map(|base| base.image)
        };
        for (i, step) in node.steps.iter().enumerate() {
            let inputs = step_inputs(query, graph, predicted, &mut import, step, &node.platform);
            let (inputs, unknown) = match inputs {
                Ok(inputs) => (Some(inputs), None),
                Err(unknown) => {
                    uncertain |= unknown.uncertain;
                    (None, Some(unknown.why))
                }
            };
            let record = keys.step(step, inputs);
            let id = cache::record_id(&query.scope, &node.id, i + 1);
            let status = match (&record, unknown) {
                (None, Some(why)) => Err(why),
                (None, None) => Err(parent_note.clone()),
                (Some(_), _) => lookup(
                    query,
                    &mut image,
                    record.as_ref(),
                    &id,
                    &parent_note,
                    no_cache.as_deref(),
                ),
            };
            plan_node.steps[i].cache = Some(match status {
                Ok(()) => CacheStatus::Cached,
                Err(reason) => {
                    complete = false;
                    parent_note = if record.is_none() && uncertain {
                        format!("an earlier step may rebuild: {UNCERTAIN}")
                    } else {
                        "parent step rebuilds".to_owned()
                    };
                    CacheStatus::Build { reason }
                }
            });
            if record.is_some() && plan_node.steps[i].cache == Some(CacheStatus::Cached) {
                // Cached under a new chain (a linked step): say why the chain moved.
                let why = if complete {
                    "parent step changed"
                } else {
                    "an earlier step rebuilds"
                };
                why.clone_into(&mut parent_note);
            }
        }
        apply_config(node, &mut image);
        Predicted {
            image,
            complete,
            key: keys.key(),
            uncertain,
        }
    }
}

fn scratch(platform: &Platform) -> Image {
    Image {
        config: ImageConfig::scratch(platform.clone(), DEFAULT_CREATED),
        layers: Vec::new(),
    }
}

/// Looks a step up: `Ok` (and its layer added to `image`) when cached,
/// otherwise why it rebuilds.
fn lookup(
    query: &CacheQuery<'_>,
    image: &mut Image,
    record: Option<&StepRecord>,
    record_id: &str,
    parent_note: &str,
    no_cache: Option<&str>,
) -> Result<(), String> {
    let Some(record) = record else {
        return Err(parent_note.to_owned());
    };
    if let Some(why) = no_cache {
        return Err(why.to_owned());
    }
    match query.store.cache_entry(&record.key) {
        Ok(Some(entry)) => {
            cache::push_entry(image, &entry, DEFAULT_CREATED);
            Ok(())
        }
        _ => {
            let old = cache::last_record(query.store, record_id);
            Err(cache::explain::rebuild_reason(
                old.as_ref(),
                record,
                parent_note,
            ))
        }
    }
}

/// The digests of what `step` reads, or why they cannot be known yet.
fn step_inputs(
    query: &CacheQuery<'_>,
    graph: &BuildGraph,
    predicted: &HashMap<NodeId, Predicted>,
    import: &mut impl FnMut(&str, &Platform) -> Result<Image, String>,
    step: &crate::ir::Step<String>,
    platform: &Platform,
) -> Result<Vec<InputDigest>, Unknown> {
    let error = |why: String| Unknown {
        why,
        uncertain: false,
    };
    let uncertain = |why: String| Unknown {
        why: format!("{why}: {UNCERTAIN}"),
        uncertain: true,
    };
    let mut digests = Vec::new();
    for spec in InputSpec::of(step) {
        let digest = match spec.from.as_deref() {
            None => spec
                .digest_context(query.context)
                .map_err(|e| error(format!("its sources cannot be read: {e}")))?,
            Some(from) => match from.strip_prefix("stage:") {
                Some(stage) => {
                    let id = graph.find(stage).expect("a copy source is a node");
                    let name = &graph.node(id).stage;
                    let source = &predicted[&id];
                    if !source.complete {
                        return Err(uncertain(format!(
                            "it reads stage `{name}`, which rebuilds"
                        )));
                    }
                    spec.recall(query.store, &source.image.layers)
                        .ok_or_else(|| {
                            uncertain(format!(
                                "it reads stage `{name}`, whose files were not hashed yet"
                            ))
                        })?
                }
                None => {
                    let image = import(from, platform)
                        .map_err(|e| error(format!("image `{from}` cannot be loaded: {e}")))?;
                    spec.recall(query.store, &image.layers).ok_or_else(|| {
                        uncertain(format!(
                            "it reads image `{from}`, whose files were not hashed yet"
                        ))
                    })?
                }
            },
        };
        digests.push(digest);
    }
    let git = cache::git_inputs(step)
        .map_err(|e| error(format!("its Git source cannot be looked up: {e}")))?;
    digests.extend(git);
    Ok(digests)
}
