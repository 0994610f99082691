//! The resolved build graph: stage × platform nodes and their dependencies.

use indexmap::IndexMap;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use super::{ArgScope, Base, Platform, StageConfig, Step};

/// Index of a node in a [`BuildGraph`].
pub type NodeId = NodeIndex;

/// One stage resolved for one platform: every variable expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique id: `stage@os/arch`, plus `~target` when it differs per target.
    pub id: String,
    /// The stage's name.
    pub stage: String,
    /// The platform the stage runs on.
    pub platform: Platform,
    /// The target platform it was resolved for, when that is not `platform`
    /// and the stage depends on it (reads a `TARGET*` argument).
    pub target: Option<Platform>,
    /// What the stage starts from; a stage base names the node id.
    pub base: Base,
    /// Build arguments `run` steps see as environment variables before the
    /// first step; each `arg` step adds its own from its position on.
    pub args: IndexMap<String, String>,
    /// How arguments and environment variables combine (see [`ArgScope`]).
    pub arg_scope: ArgScope,
    /// Environment, workdir, user and shell as the first step sees them.
    pub start: StageConfig<String>,
    /// The base's `ONBUILD` triggers as planned: `None` when the base's
    /// config could not be read while planning, so the build must check
    /// that it has none.
    pub base_onbuild: Option<Vec<String>>,
    /// How many of the first steps come from the base's `ONBUILD` triggers.
    pub onbuild_steps: usize,
    /// The config the stage ends with, which becomes the image config.
    pub config: StageConfig<String>,
    /// The steps with variables expanded.
    pub steps: Vec<Step<String>>,
}

impl Node {
    /// The id of stage `stage` on `platform`, resolved for `target` when it matters.
    pub fn make_id(stage: &str, platform: &Platform, target: Option<&Platform>) -> String {
        match target {
            Some(target) => format!("{stage}@{platform}~{target}"),
            None => format!("{stage}@{platform}"),
        }
    }
}

/// Why one node depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The stage starts from the other (`from = "stage:NAME"`).
    From,
    /// A `copy` step reads from the other.
    Copy,
    /// A `run` step mounts the other.
    Mount,
}

/// An edge from a dependency to the node that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Why the dependency exists.
    pub kind: EdgeKind,
}

/// An image to produce, with the node that makes it on each platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedImage {
    /// The image's name in the manifest.
    pub name: String,
    /// The stage it ships.
    pub stage: String,
    /// Tags, expanded.
    pub tags: Vec<String>,
    /// One node per platform, in the order the platforms were given.
    #[serde(skip)]
    pub nodes: Vec<(Platform, NodeId)>,
    /// Labels, expanded.
    pub labels: IndexMap<String, String>,
    /// Annotations, expanded.
    pub annotations: IndexMap<String, String>,
}

/// The stage × platform DAG of one build request.
#[derive(Debug, Clone, Default)]
pub struct BuildGraph {
    graph: DiGraph<Node, Edge>,
    /// The requested images, in request order.
    pub images: Vec<ResolvedImage>,
    /// The names of every stage of the project, planned or not: for the
    /// hint when an image reference that fails to load looks like one.
    pub stage_names: Vec<String>,
}

impl BuildGraph {
    /// The node with `id`, if there is one.
    pub fn find(&self, id: &str) -> Option<NodeId> {
        self.graph.node_indices().find(|&n| self.graph[n].id == id)
    }

    /// Adds `node`, or returns the existing node with the same id.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        self.find(&node.id)
            .unwrap_or_else(|| self.graph.add_node(node))
    }

    /// Records that `dependent` needs `dependency`.
    pub fn add_dependency(&mut self, dependency: NodeId, dependent: NodeId, kind: EdgeKind) {
        let exists = self
            .graph
            .edges_connecting(dependency, dependent)
            .any(|e| e.weight().kind == kind);
        if !exists {
            self.graph.add_edge(dependency, dependent, Edge { kind });
        }
    }

    /// The node at `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    /// Every node, in insertion order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.graph.node_indices().map(|n| (n, &self.graph[n]))
    }

    /// The nodes `id` depends on, sorted by node id, each with why.
    pub fn dependencies(&self, id: NodeId) -> Vec<(NodeId, EdgeKind)> {
        let mut deps: Vec<(NodeId, EdgeKind)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| (e.source(), e.weight().kind))
            .collect();
        deps.sort_by(|a, b| (&self.graph[a.0].id, a.1).cmp(&(&self.graph[b.0].id, b.1)));
        deps
    }

    /// Groups nodes into waves: a node's wave is one more than its latest
    /// dependency's, so the nodes of one wave can all run at once. Within a
    /// wave nodes are sorted by id.
    pub fn waves(&self) -> Vec<Vec<NodeId>> {
        let order = petgraph::algo::toposort(&self.graph, None)
            .expect("the resolver never builds a cyclic graph");
        let mut wave = vec![0usize; self.graph.node_count()];
        for &n in &order {
            wave[n.index()] = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .map(|d| wave[d.index()] + 1)
                .max()
                .unwrap_or(0);
        }
        let count = wave.iter().max().map_or(0, |w| w + 1);
        let mut waves = vec![Vec::new(); count];
        for n in self.graph.node_indices() {
            waves[wave[n.index()]].push(n);
        }
        for w in &mut waves {
            w.sort_by(|a, b| self.graph[*a].id.cmp(&self.graph[*b].id));
        }
        waves
    }
}
