//! What an image holds: per layer what it adds, changes and removes, the
//! merged file tree, and the space lower layers waste on files that later
//! layers delete or replace.
//!
//! Layers are read as tar streams (headers only; file data is skipped, but
//! compressed layers must still be decompressed), bottom first, while a
//! merged tree of every visible path is kept. A whiteout (`.wh.NAME`) or an
//! opaque marker (`.wh..wh..opq`) removes paths of lower layers; a file
//! written again hides the lower copy. Either way the lower bytes still ship
//! in the image: that is the wasted space.

mod render;

use std::collections::BTreeMap;

use bstr::{BString, ByteSlice};
use serde::Serialize;

pub use render::{render_files, render_layer, render_text};

use crate::image::{Image, LayerRef};
use crate::ir::Platform;
use crate::layer::{LayerError, decompressing_reader};
use crate::store::{Digest, Store, StoreError};
use crate::util::utf8::escaped;

/// Why an image could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A blob could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer is not a readable tar stream.
    #[error("layer {digest} cannot be read: {source}")]
    Layer {
        /// The layer blob.
        digest: Digest,
        /// What went wrong.
        #[source]
        source: LayerError,
    },
}

/// The analysis of one platform's image.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The platform.
    pub platform: Platform,
    /// The manifest's digest, when the image came from the store.
    pub manifest: Option<Digest>,
    /// A summary of the image config.
    pub config: ConfigSummary,
    /// Every layer, bottom first.
    pub layers: Vec<LayerReport>,
    /// Compressed bytes of all layers.
    pub compressed_bytes: u64,
    /// File bytes in all layers (uncompressed contents, not tar overhead).
    pub content_bytes: u64,
    /// File bytes of the merged filesystem.
    pub visible_bytes: u64,
    /// File bytes in layers that the merged filesystem does not show.
    pub wasted_bytes: u64,
    /// `visible / content`, from 0 to 1 (1 for an empty image).
    pub efficiency: f64,
    /// Paths whose lower copies waste the most, largest first (at most 20).
    pub offenders: Vec<Offender>,
    /// Pairs of layers where one undoes the other's files, largest first.
    pub chains: Vec<Chain>,
    /// The merged tree: every visible path and the layer that last wrote it.
    #[serde(skip)]
    pub files: Vec<TreeEntry>,
}

/// The parts of an image config worth a glance.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    /// `User`.
    pub user: Option<String>,
    /// `WorkingDir`.
    pub workdir: Option<String>,
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env`, `NAME=VALUE`.
    pub env: Vec<String>,
    /// `ExposedPorts`.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// One layer's size and changes.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Position, from 1 (bottom).
    pub index: usize,
    /// The blob digest.
    pub digest: Digest,
    /// The blob size.
    pub compressed_bytes: u64,
    /// File bytes in it.
    pub content_bytes: u64,
    /// The history line of the step that made it.
    pub created_by: String,
    /// Paths it adds.
    pub added: usize,
    /// Paths of lower layers it writes again (directories that stay directories are not counted).
    pub modified: usize,
    /// Paths of lower layers it removes.
    pub removed: usize,
    /// Its changes, by path.
    #[serde(skip)]
    pub changes: Vec<Change>,
}

/// What a layer did to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The path, absolute.
    pub path: String,
    /// Added, modified or removed.
    pub kind: ChangeKind,
    /// File bytes written (0 for removals and non-files).
    pub bytes: u64,
}

/// The kind of a [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new path.
    Added,
    /// A path a lower layer had, written again.
    Modified,
    /// A path a lower layer had, removed.
    Removed,
}

/// A path of the merged tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeEntry {
    /// The path, absolute.
    pub path: String,
    /// The layer (from 1) that last wrote it.
    pub layer: usize,
    /// File bytes (0 for directories and links).
    pub bytes: u64,
    /// `file`, `dir`, `symlink`, `hardlink` or `other`.
    pub kind: &'static str,
}

/// A path whose lower copies waste space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offender {
    /// The path, absolute.
    pub path: String,
    /// Bytes its hidden or removed copies take.
    pub wasted_bytes: u64,
    /// The layers that wrote the hidden copies.
    pub added_in: Vec<usize>,
    /// The layers that hid or removed them.
    pub undone_in: Vec<usize>,
}

/// A layer that removes or replaces what a lower layer added: doing both in
/// one step would not ship those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// The layer that added the files.
    pub added_in: usize,
    /// The layer that removed or replaced them.
    pub undone_in: usize,
    /// Bytes reclaimed by doing both in one step.
    pub wasted_bytes: u64,
    /// How many paths.
    pub paths: usize,
}

/// A path visible after some layers.
#[derive(Debug, Clone)]
struct Node {
    layer: usize,
    bytes: u64,
    kind: &'static str,
}

/// What the walk over the layers has found so far.
#[derive(Default)]
struct Analysis {
    /// The paths visible after the layers walked, keyed by the paths'
    /// bytes: names that are not UTF-8 stay apart.
    tree: BTreeMap<BString, Node>,
    /// Paths whose bytes a later layer removed or replaced.
    offenders: BTreeMap<BString, Offender>,
    /// Bytes wasted per (adding layer, undoing layer).
    chains: BTreeMap<(usize, usize), Chain>,
    /// The bytes of every layer's content.
    content_bytes: u64,
}

impl Analysis {
    /// Counts `node`, at `path`, as undone by layer `index`.
    fn waste(&mut self, path: &[u8], node: &Node, index: usize) {
        if node.bytes == 0 || node.layer == index {
            return;
        }
        let offender = self
            .offenders
            .entry(path.into())
            .or_insert_with(|| Offender {
                path: format!("/{}", escaped(path)),
                wasted_bytes: 0,
                added_in: Vec::new(),
                undone_in: Vec::new(),
            });
        offender.wasted_bytes += node.bytes;
        push_unique(&mut offender.added_in, node.layer);
        push_unique(&mut offender.undone_in, index);
        let chain = self
            .chains
            .entry((node.layer, index))
            .or_insert_with(|| Chain {
                added_in: node.layer,
                undone_in: index,
                wasted_bytes: 0,
                paths: 0,
            });
        chain.wasted_bytes += node.bytes;
        chain.paths += 1;
    }

    /// Applies one entry of layer `index`, recording the change in `report`.
    fn apply(&mut self, entry: LayerEntry, index: usize, report: &mut LayerReport) {
        if let Some(removed) = self.whiteout(&entry, index) {
            for (path, node) in removed {
                self.waste(&path, &node, index);
                report.removed += 1;
                report.changes.push(Change {
                    path: escaped(&path).into_owned(),
                    kind: ChangeKind::Removed,
                    bytes: 0,
                });
            }
            return;
        }
        self.content_bytes += entry.bytes;
        report.content_bytes += entry.bytes;
        let node = Node {
            layer: index,
            bytes: entry.bytes,
            kind: entry.kind,
        };
        match self.tree.get(&entry.path) {
            Some(old) if old.kind == "dir" && entry.kind == "dir" => {
                self.tree.insert(entry.path, node);
            }
            Some(old) => {
                let old = old.clone();
                self.waste(&entry.path, &old, index);
                if old.kind == "dir" {
                    // A file or link replacing a directory removes what was in it.
                    for (path, node) in remove_under(&mut self.tree, &entry.path, index) {
                        self.waste(&path, &node, index);
                    }
                }
                if old.layer != index {
                    report.modified += 1;
                    report.changes.push(Change {
                        path: escaped(&entry.path).into_owned(),
                        kind: ChangeKind::Modified,
                        bytes: entry.bytes,
                    });
                }
                self.tree.insert(entry.path, node);
            }
            None => {
                report.added += 1;
                report.changes.push(Change {
                    path: escaped(&entry.path).into_owned(),
                    kind: ChangeKind::Added,
                    bytes: entry.bytes,
                });
                self.tree.insert(entry.path, node);
            }
        }
    }

    /// The paths a whiteout entry of layer `index` removes; `None` if the
    /// entry is not a whiteout.
    fn whiteout(&mut self, entry: &LayerEntry, index: usize) -> Option<Vec<(BString, Node)>> {
        let (dir, name): (&[u8], &[u8]) = match entry.path.rsplit_once_str("/") {
            Some((dir, name)) => (dir, name),
            None => (b"", &entry.path),
        };
        if name == b".wh..wh..opq" {
            // Everything lower layers put under `dir` goes.
            Some(remove_under(&mut self.tree, dir, index))
        } else if let Some(hidden) = name.strip_prefix(b".wh.") {
            let target = join(dir, hidden);
            let mut removed = remove_under(&mut self.tree, &target, index);
            if let Some(node) = self.tree.remove(&target) {
                removed.insert(0, (target.clone(), node));
            }
            Some(removed)
        } else {
            None
        }
    }
}

/// The parts of `image`'s config worth a glance.
fn config_summary(image: &Image) -> ConfigSummary {
    let runtime = &image.config.runtime;
    ConfigSummary {
        user: runtime.user.clone(),
        workdir: runtime.working_dir.clone(),
        entrypoint: runtime.entrypoint.clone(),
        cmd: runtime.cmd.clone(),
        env: runtime
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        exposed_ports: runtime.exposed_ports.iter().cloned().collect(),
        labels: runtime
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Analyses `image` (the manifest `manifest` for `platform`) from `store`.
pub fn inspect(
    store: &Store,
    image: &Image,
    manifest: Option<Digest>,
    platform: Platform,
) -> Result<Report, InspectError> {
    let mut analysis = Analysis::default();
    let mut layers = Vec::new();
    let history: Vec<&str> = image
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.as_str())
        .collect();
    for (i, layer) in image.layers.iter().enumerate() {
        let index = i + 1;
        let entries = read_layer(store, layer)?;
        let mut report = LayerReport {
            index,
            digest: layer.digest.clone(),
            compressed_bytes: layer.size,
            content_bytes: 0,
            created_by: history.get(i).copied().unwrap_or_default().to_owned(),
            added: 0,
            modified: 0,
            removed: 0,
            changes: Vec::new(),
        };
        for entry in entries {
            analysis.apply(entry, index, &mut report);
        }
        report.changes.sort_by(|a, b| a.path.cmp(&b.path));
        layers.push(report);
    }
    let Analysis {
        tree,
        offenders,
        chains,
        content_bytes,
    } = analysis;
    let visible_bytes: u64 = tree.values().map(|n| n.bytes).sum();
    let wasted_bytes = content_bytes - visible_bytes;
    let mut offenders: Vec<Offender> = offenders.into_values().collect();
    offenders.sort_by(|a, b| {
        b.wasted_bytes
            .cmp(&a.wasted_bytes)
            .then(a.path.cmp(&b.path))
    });
    offenders.truncate(20);
    let mut chains: Vec<Chain> = chains.into_values().collect();
    chains.sort_by_key(|c| std::cmp::Reverse(c.wasted_bytes));
    #[allow(clippy::cast_precision_loss)]
    let efficiency = if content_bytes == 0 {
        1.0
    } else {
        visible_bytes as f64 / content_bytes as f64
    };
    Ok(Report {
        platform,
        manifest,
        config: config_summary(image),
        compressed_bytes: image.layers.iter().map(|l| l.size).sum(),
        content_bytes,
        visible_bytes,
        wasted_bytes,
        efficiency,
        offenders,
        chains,
        files: tree
            .into_iter()
            .map(|(path, node)| TreeEntry {
                path: format!("/{}", escaped(&path)),
                layer: node.layer,
                bytes: node.bytes,
                kind: node.kind,
            })
            .collect(),
        layers: layers
            .into_iter()
            .map(|mut l| {
                for change in &mut l.changes {
                    change.path = format!("/{}", change.path);
                }
                l
            })
            .collect(),
    })
}

fn push_unique(list: &mut Vec<usize>, value: usize) {
    if !list.contains(&value) {
        list.push(value);
    }
}

fn join(dir: &[u8], name: &[u8]) -> BString {
    if dir.is_empty() {
        name.into()
    } else {
        [dir, b"/", name].concat().into()
    }
}

/// Removes every path strictly under `dir` written by a layer below `index`.
fn remove_under(
    tree: &mut BTreeMap<BString, Node>,
    dir: &[u8],
    index: usize,
) -> Vec<(BString, Node)> {
    let prefix: BString = if dir.is_empty() {
        BString::default()
    } else {
        [dir, b"/"].concat().into()
    };
    let doomed: Vec<BString> = tree
        .range(prefix.clone()..)
        .take_while(|(path, _)| path.starts_with(&prefix))
        .filter(|(_, node)| node.layer < index)
        .map(|(path, _)| path.clone())
        .collect();
    doomed
        .into_iter()
        .filter_map(|path| tree.remove(&path).map(|node| (path, node)))
        .collect()
}

/// One tar entry of a layer.
struct LayerEntry {
    /// The path's bytes, exactly as in the tar.
    path: BString,
    bytes: u64,
    kind: &'static str,
}

/// The entries of a layer blob, in order.
fn read_layer(store: &Store, layer: &LayerRef) -> Result<Vec<LayerEntry>, InspectError> {
    let fail = |source: LayerError| InspectError::Layer {
        digest: layer.digest.clone(),
        source,
    };
    let blob = store.open_blob(&layer.digest)?;
    let reader =
        decompressing_reader(std::io::BufReader::with_capacity(1 << 20, blob)).map_err(fail)?;
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    for entry in archive.entries().map_err(|e| fail(LayerError::Tar(e)))? {
        let entry = entry.map_err(|e| fail(LayerError::Tar(e)))?;
        let raw = entry.path_bytes();
        let mut path: &[u8] = &raw;
        while let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        }
        let path = BString::from(
            path.trim_start_with(|c| c == '/')
                .trim_end_with(|c| c == '/'),
        );
        if path.is_empty() || path == "." {
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            _ => "other",
        };
        let bytes = if kind == "file" { entry.size() } else { 0 };
        entries.push(LayerEntry { path, bytes, kind });
    }
    Ok(entries)
}
