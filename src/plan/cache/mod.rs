//! Cache keys: what a step's result depends on, and why a step rebuilds.
//!
//! `BuildKit`'s model (its `docs/dev/solver.md`): a step's key is blake3 over
//! a version, the build settings that shape every layer
//! (`SOURCE_DATE_EPOCH`), the platform, the step's definition after
//! expansion, what it sees of the stage's state (for `run`: environment,
//! workdir, user, shell and build arguments), its parent's key, and the
//! content digest of exactly the paths it reads from the context or from
//! another stage or image (mode, type, link target and content; uid and gid
//! too outside the context, whose owners `copy` resets; never mtime).
//! Secret values and cache-mount contents are never part of a key; secret
//! ids and targets are, as part of the definition. A `copy` with `link`
//! has no parent in its key: its layer does not depend on what is below it.
//!
//! The same [`NodeKeys`] walk serves `plan`, which predicts every key it
//! can, and the scheduler, which computes them as it builds, so the two
//! agree. Each step's last [`StepRecord`] is kept in the store, so a
//! rebuild can be explained by comparing records.

pub(crate) mod explain;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bstr::BString;
use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::state::State;
use crate::context::{LazyHashes, PatternMatcher, StatCache};
use crate::copy::{self, CopySpec, Origin, Selected, SelectedKind};
use crate::image::{Image, LayerRef};
use crate::ir::args::PROXY_ARGS;
use crate::ir::{Mount, Node, Step};
use crate::store::{CacheTable, Store};
use crate::util::utf8::escaped;

/// Bumped whenever what a key covers changes; old entries then miss.
pub const KEY_VERSION: u32 = 1;

/// Record files larger than this many input files keep only the digest.
const MAX_RECORDED_FILES: usize = 100_000;

/// A blake3 cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::util::hex::write(f, &self.0)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

impl CacheKey {
    /// blake3 over `parts`, each length-prefixed so boundaries count.
    pub fn of(parts: &[&[u8]]) -> CacheKey {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        CacheKey(*hasher.finalize().as_bytes())
    }

    /// The key of an empty `scratch` base on `platform`.
    pub fn scratch(platform: &str) -> CacheKey {
        CacheKey::of(&[b"scratch", platform.as_bytes()])
    }

    /// The key of a base image: its config and layer blobs.
    pub fn image(image: &Image) -> CacheKey {
        let mut parts: Vec<Vec<u8>> = vec![b"image".to_vec(), image.config.to_json()];
        parts.extend(
            image
                .layers
                .iter()
                .map(|l| l.digest.as_str().as_bytes().to_vec()),
        );
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        CacheKey::of(&refs)
    }

    /// The key the step after a `link` step chains on.
    fn after_link(parent: Option<CacheKey>, link: CacheKey) -> Option<CacheKey> {
        parent.map(|p| CacheKey::of(&[b"link", &p.0, &link.0]))
    }
}

/// Which stages ignore the cache (`--no-cache`, `--no-cache-filter`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NoCache {
    /// Use the cache everywhere.
    #[default]
    Nowhere,
    /// Rebuild every step.
    Everywhere,
    /// Rebuild the steps of these stages.
    Stages(Vec<String>),
}

impl NoCache {
    /// Whether steps of `stage` ignore the cache.
    pub fn applies(&self, stage: &str) -> bool {
        match self {
            NoCache::Nowhere => false,
            NoCache::Everywhere => true,
            NoCache::Stages(stages) => stages.iter().any(|s| s == stage),
        }
    }

    /// Why a step of `stage` rebuilds, if it ignores the cache.
    pub fn reason(&self, stage: &str) -> Option<String> {
        match self {
            NoCache::Nowhere => None,
            NoCache::Everywhere => Some("--no-cache".to_owned()),
            NoCache::Stages(_) => self
                .applies(stage)
                .then(|| format!("--no-cache-filter {stage}")),
        }
    }
}

/// Build settings that shape every layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySettings {
    /// `SOURCE_DATE_EPOCH`, which clamps file times.
    pub source_date_epoch: Option<i64>,
}

/// The content digest of what a step reads from one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigest {
    /// Where from: `context`, `stage NAME` or an image reference.
    pub label: String,
    /// blake3 over every file's path and digest.
    pub digest: String,
    /// Each path read and its digest, to name what changed; a byte of a
    /// name that is not UTF-8 is written `\xNN` (the digest hashes the raw
    /// bytes).
    pub files: Vec<(String, String)>,
}

/// A `run` or `copy` step's view of the stage state, in its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Environment (for `run`).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: String,
    /// User (for `run`).
    pub user: Option<String>,
    /// Shell (for `run`).
    pub shell: Vec<String>,
}

/// Everything one step's key is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The key, hex.
    pub key: String,
    /// The parent's key, hex; none for `link` steps.
    pub parent: Option<String>,
    /// Build settings.
    pub settings: KeySettings,
    /// The platform the step runs on.
    pub platform: String,
    /// The step, expanded, as JSON.
    pub definition: String,
    /// Build arguments (`run` steps see them; proxy arguments excluded).
    pub args: IndexMap<String, String>,
    /// For other steps: the stage's arguments, not in the key (an argument
    /// reaches them only through the expanded definition), to name one that
    /// changed the definition.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub stage_args: IndexMap<String, String>,
    /// What the step sees of the stage state.
    pub state: Option<StateRecord>,
    /// What it reads.
    pub inputs: Vec<InputDigest>,
    /// Why it can never be cached, if so.
    pub uncacheable: Option<String>,
}

impl StepRecord {
    fn seal(mut self) -> StepRecord {
        let material = serde_json::json!({
            "version": KEY_VERSION,
            "parent": self.parent,
            "settings": self.settings,
            "platform": self.platform,
            "definition": self.definition,
            "args": self.args,
            "state": self.state,
            "inputs": self.inputs.iter().map(|i| (&i.label, &i.digest)).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec(&material).expect("key material serializes");
        if self.uncacheable.is_some() {
            // Never equal to any other key, so never found in the cache.
            let nonce = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            bytes.extend_from_slice(nonce.as_bytes());
        }
        self.key = CacheKey::of(&[&bytes]).to_string();
        self
    }

    /// The key.
    pub fn cache_key(&self) -> CacheKey {
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(self.key.as_bytes().chunks_exact(2)) {
            let hex = std::str::from_utf8(pair).unwrap_or("00");
            *o = u8::from_str_radix(hex, 16).unwrap_or(0);
        }
        CacheKey(out)
    }
}

/// What a step reads from one place: a copy's sources or a bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputSpec {
    /// `stage:NODE`, an image reference, or none for the context.
    pub from: Option<String>,
    /// Sources as written.
    pub sources: Vec<String>,
    /// Patterns left out.
    pub exclude: Vec<String>,
    /// `add` semantics (URLs skipped).
    pub add: bool,
    /// `parents`: sources split at `/./` into roots and include patterns.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
}

impl InputSpec {
    /// The inputs of `step`.
    pub fn of(step: &Step<String>) -> Vec<InputSpec> {
        match step {
            Step::Copy(c) | Step::Add(c) => vec![InputSpec {
                from: c.from.clone(),
                sources: c.sources.clone(),
                exclude: c.exclude.clone(),
                add: matches!(step, Step::Add(_)),
                parents: c.parents,
            }],
            Step::Run(run) => run
                .mounts
                .iter()
                .filter_map(|m| match m {
                    Mount::Bind { source, from, .. } => Some(InputSpec {
                        from: from.clone(),
                        sources: vec![source.clone().unwrap_or_else(|| "/".into())],
                        exclude: Vec::new(),
                        add: false,
                        parents: false,
                    }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn copy_spec(&self) -> CopySpec<'_> {
        CopySpec {
            add: self.add,
            sources: &self.sources,
            to: "/",
            chown: None,
            chmod: None,
            parents: self.parents,
            exclude: &self.exclude,
            checksum: None,
            keep_git_dir: None,
        }
    }

    /// Digest of what this reads from the build context.
    pub fn digest_context(&self, context: &ContextFiles) -> Result<InputDigest, String> {
        let origin = Origin::Context {
            root: &context.root,
            ignore: &context.ignore,
        };
        let selected =
            copy::selected_paths(&self.copy_spec(), &origin).map_err(|e| e.to_string())?;
        digest_selected(&selected, "context", Some(context.hashes()))
    }

    /// Digest of what this reads from the filesystem at `root`.
    pub fn digest_rootfs(&self, root: &Path, label: &str) -> Result<InputDigest, String> {
        let origin = Origin::Rootfs { root, name: label };
        let selected =
            copy::selected_paths(&self.copy_spec(), &origin).map_err(|e| e.to_string())?;
        digest_selected(&selected, label, None)
    }

    /// Where the digest of this input read from an image with `layers` is memoised.
    pub fn memo_key(&self, layers: &[LayerRef]) -> String {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        // Without `parents`, the key of earlier versions, so their memos hold.
        let spec = if self.parents {
            serde_json::to_vec(&(&self.sources, &self.exclude, self.add, true))
        } else {
            serde_json::to_vec(&(&self.sources, &self.exclude, self.add))
        }
        .expect("an input spec serializes");
        CacheKey::of(&[b"input", diff_ids.join(",").as_bytes(), &spec]).to_string()
    }

    /// The memoised digest of this input read from an image with `layers`.
    pub fn recall(&self, store: &Store, layers: &[LayerRef]) -> Option<InputDigest> {
        let bytes = store
            .cache_read(CacheTable::Inputs, &self.memo_key(layers))
            .ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Memoises `digest` as this input read from an image with `layers`.
    pub fn remember(&self, store: &Store, layers: &[LayerRef], digest: &InputDigest) {
        let bytes = serde_json::to_vec(digest).expect("an input digest serializes");
        // Best effort: a lost memo only costs hashing again.
        let _ = store.cache_write(CacheTable::Inputs, &self.memo_key(layers), &bytes);
    }
}

/// The commits the Git repositories an `add` step reads are at now, one
/// input each: a moved branch or tag changes the key, as in `BuildKit`.
pub fn git_inputs(step: &Step<String>) -> Result<Vec<InputDigest>, String> {
    let Step::Add(add) = step else {
        return Ok(Vec::new());
    };
    let mut inputs = Vec::new();
    for source in &add.sources {
        let Some(repository) = copy::git::parse(source)? else {
            continue;
        };
        let commit = repository.resolve().map_err(|e| e.to_string())?;
        inputs.push(InputDigest {
            label: format!("git {}", repository.remote),
            digest: commit.clone(),
            files: vec![(source.clone(), commit)],
        });
    }
    Ok(inputs)
}

/// Why `step` can never be cached, if so: an `add` of a URL without a checksum.
pub fn uncacheable(step: &Step<String>) -> Option<String> {
    match step {
        Step::Add(c) if c.checksum.is_none() => c
            .sources
            .iter()
            .find(|s| {
                (s.starts_with("http://") || s.starts_with("https://"))
                    && !copy::git::parse(s).is_ok_and(|g| g.is_some())
            })
            .map(|url| format!("it downloads {url} without a `checksum` to pin it")),
        _ => None,
    }
}

/// Hashes `selected`, taking file hashes from `known` (the context's) where present.
fn digest_selected(
    selected: &[Selected],
    label: &str,
    known: Option<&LazyHashes>,
) -> Result<InputDigest, String> {
    let from_context = known.is_some();
    let files: Vec<(&BString, String)> = selected
        .par_iter()
        .map(|s| {
            let content = match &s.kind {
                SelectedKind::File => match known {
                    Some(hashes) => {
                        hashes
                            .hash(&s.path, &s.full, &s.stat)
                            .map_err(|e| format!("cannot read {}: {e}", s.full.display()))?
                            .0
                    }
                    None => hash_file(&s.full)?,
                },
                SelectedKind::Dir => [0; 32],
                SelectedKind::Symlink(target) => *blake3::hash(target).as_bytes(),
            };
            let kind: &[u8] = match s.kind {
                SelectedKind::File => b"f",
                SelectedKind::Dir => b"d",
                SelectedKind::Symlink(_) => b"l",
            };
            let owner = if from_context {
                String::new()
            } else {
                format!("{}:{}", s.uid, s.gid)
            };
            let mode = s.mode.to_le_bytes();
            let mut parts: Vec<&[u8]> = vec![kind, &mode, owner.as_bytes(), &content];
            // Another name of the same file: the copy writes a hard link.
            if let Some(first) = &s.same_file_as {
                parts.extend([&b"same file as"[..], first.as_slice()]);
            }
            let digest = CacheKey::of(&parts);
            Ok((&s.path, digest.to_string()))
        })
        .collect::<Result<_, String>>()?;
    // The raw bytes of each name: names differing only in bytes that are
    // not UTF-8 give different digests.
    let mut hasher = blake3::Hasher::new();
    for (path, digest) in &files {
        hasher.update(path);
        hasher.update(b"\0");
        hasher.update(digest.as_bytes());
    }
    let digest = hasher.finalize().to_hex().to_string();
    Ok(InputDigest {
        label: label.to_owned(),
        digest,
        files: if files.len() > MAX_RECORDED_FILES {
            Vec::new()
        } else {
            files
                .into_iter()
                .map(|(path, digest)| (escaped(path).into_owned(), digest))
                .collect()
        },
    })
}

fn hash_file(path: &Path) -> Result<[u8; 32], String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(*hasher.finalize().as_bytes())
}

/// The build context's file hashes, taken once per process on first use,
/// with a stat cache kept in the store so unchanged files are not re-read.
pub struct ContextFiles {
    root: PathBuf,
    ignore: PatternMatcher,
    stat_cache: Option<PathBuf>,
    hashes: OnceLock<LazyHashes>,
}

impl ContextFiles {
    /// The context at `root` with its ignore patterns; `store` keeps the stat cache.
    pub fn new(root: &Path, ignore: PatternMatcher, store: Option<&Store>) -> ContextFiles {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
        let stat_cache = store.map(|s| {
            let id = blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex();
            s.meta_path(&format!("stat-cache-{}.json", &id[..16]))
        });
        ContextFiles {
            root,
            ignore,
            stat_cache,
            hashes: OnceLock::new(),
        }
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore patterns.
    pub fn ignore(&self) -> &PatternMatcher {
        &self.ignore
    }

    /// The content hashes of the files steps read, loading the stat cache
    /// the first time: only selected files are ever looked at.
    fn hashes(&self) -> &LazyHashes {
        self.hashes.get_or_init(|| {
            LazyHashes::new(
                self.stat_cache
                    .as_deref()
                    .map(StatCache::load)
                    .unwrap_or_default(),
            )
        })
    }
}

impl Drop for ContextFiles {
    /// Saves the stat cache when a file had to be read.
    fn drop(&mut self) {
        if let (Some(path), Some(hashes)) = (&self.stat_cache, self.hashes.get())
            && let Some(cache) = hashes.updated()
        {
            // Best effort: a lost stat cache only costs reading files again.
            let _ = cache.save(path);
        }
    }
}

/// Walks one node's steps computing their keys, as `plan` and the scheduler both do.
pub struct NodeKeys<'a> {
    settings: &'a KeySettings,
    node: &'a Node,
    /// The state the next step sees.
    pub state: State,
    parent: Option<CacheKey>,
}

impl<'a> NodeKeys<'a> {
    /// Starts `node` on `base` (its image so far), whose key is `base_key`
    /// (none when it cannot be known yet).
    pub fn new(
        settings: &'a KeySettings,
        node: &'a Node,
        base: &Image,
        base_key: Option<CacheKey>,
    ) -> NodeKeys<'a> {
        NodeKeys {
            settings,
            node,
            state: State::new(node, base),
            parent: base_key,
        }
    }

    /// The key of the last step so far: the node's key once every step is walked.
    pub fn key(&self) -> Option<CacheKey> {
        self.parent
    }

    /// The record of the hidden first step that creates the stage's
    /// `workdir`, when `base` lacks it; advances past it.
    pub fn start_workdir(&mut self, base: &Image) -> Option<Option<StepRecord>> {
        let dir = self.node.start.workdir.as_ref()?;
        if base.config.runtime.working_dir.as_deref() == Some(dir) {
            return None;
        }
        let definition = serde_json::json!({ "start_workdir": dir }).to_string();
        Some(self.advance(definition, IndexMap::new(), None, Vec::new(), None, false))
    }

    /// The record of `step` reading `inputs` (none when some input is not
    /// known yet); advances past it.
    pub fn step(
        &mut self,
        step: &Step<String>,
        inputs: Option<Vec<InputDigest>>,
    ) -> Option<StepRecord> {
        self.state.apply(step);
        let Some(inputs) = inputs else {
            self.parent = None;
            return None;
        };
        let definition = serde_json::to_string(step).expect("a step serializes");
        let stage_args: IndexMap<String, String> = self
            .state
            .args
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (args, state) = match step {
            Step::Run(_) => (
                stage_args.clone(),
                Some(StateRecord {
                    env: self.state.env.clone(),
                    workdir: self.state.workdir.clone(),
                    user: self.state.user.clone(),
                    shell: self.state.shell.clone(),
                }),
            ),
            Step::Copy(_) | Step::Add(_) | Step::File(_) | Step::Workdir { .. } => (
                IndexMap::new(),
                Some(StateRecord {
                    env: Vec::new(),
                    workdir: self.state.workdir.clone(),
                    // WORKDIR creates its directory for the current user.
                    user: matches!(step, Step::Workdir { .. })
                        .then(|| self.state.user.clone())
                        .flatten(),
                    shell: Vec::new(),
                }),
            ),
            _ => (IndexMap::new(), None),
        };
        let link = matches!(step, Step::Copy(c) | Step::Add(c) if c.link);
        let stage_args = if args.is_empty() {
            stage_args
        } else {
            IndexMap::new()
        };
        let mut record = self.advance(definition, args, state, inputs, uncacheable(step), link)?;
        record.stage_args = stage_args;
        Some(record)
    }

    fn advance(
        &mut self,
        definition: String,
        args: IndexMap<String, String>,
        state: Option<StateRecord>,
        inputs: Vec<InputDigest>,
        uncacheable: Option<String>,
        link: bool,
    ) -> Option<StepRecord> {
        if !link && self.parent.is_none() {
            return None;
        }
        let record = StepRecord {
            key: String::new(),
            parent: if link {
                None
            } else {
                self.parent.map(|p| p.to_string())
            },
            settings: self.settings.clone(),
            platform: self.node.platform.to_string(),
            definition,
            args,
            stage_args: IndexMap::new(),
            state,
            inputs,
            uncacheable,
        }
        .seal();
        let key = record.cache_key();
        self.parent = if link {
            CacheKey::after_link(self.parent, key)
        } else {
            Some(key)
        };
        Some(record)
    }
}

/// Adds what a cached step produced to `image`: its layer, if any, and its
/// history line dated `created`.
pub fn push_entry(image: &mut Image, entry: &crate::store::CacheEntry, created: &str) {
    if let Some(layer) = &entry.layer {
        image.layers.push(LayerRef {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            diff_id: layer.diff_id.clone(),
            uncompressed_size: None,
        });
        image.config.diff_ids.push(layer.diff_id.clone());
    }
    image.config.history.push(crate::image::HistoryEntry {
        created: created.to_owned(),
        created_by: entry.created_by.clone(),
        empty_layer: entry.layer.is_none(),
    });
}

/// Where the last build of step `index` (0: the hidden workdir step) of
/// `node` from the manifest `scope` is recorded.
pub fn record_id(scope: &str, node: &str, index: usize) -> String {
    CacheKey::of(&[
        b"record",
        scope.as_bytes(),
        node.as_bytes(),
        &index.to_le_bytes(),
    ])
    .to_string()
}

/// The last recorded build of a step.
pub fn last_record(store: &Store, id: &str) -> Option<StepRecord> {
    let bytes = store.cache_read(CacheTable::Records, id).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Records `record` as the last build of a step, unless it already is.
pub fn save_record(store: &Store, id: &str, record: &StepRecord) {
    if last_record(store, id).is_some_and(|old| old == *record) {
        return;
    }
    let bytes = serde_json::to_vec(record).expect("a record serializes");
    // Best effort: a lost record only makes a later reason vaguer.
    let _ = store.cache_write(CacheTable::Records, id, &bytes);
}

#[cfg(test)]
mod tests;
