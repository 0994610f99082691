//! Checks of a [`Project`] that every front end needs: references to
//! stages, images and groups exist, and stages form no cycle.
//!
//! References that contain variables are checked again once resolved.

use std::collections::{HashMap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use super::{Base, Mount, Project, Step, Template};
use crate::diagnostic::{Diagnostic, suggest};

/// A reference from one stage to another, with where it was written.
struct StageRef<'a> {
    from: &'a str,
    to: String,
    at: &'a Template,
}

/// Every error in the project's references, in no particular order.
pub fn check(project: &Project) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let stage_names: Vec<&str> = project.stages.keys().map(String::as_str).collect();
    let is_stage = |name: &str| project.stages.contains_key(name);

    let mut references = Vec::new();
    for stage in project.stages.values() {
        for at in stage_references(stage) {
            if at.value.contains('$') {
                continue;
            }
            // A bare word that names no stage is an image, as in BuildKit.
            if let Base::Stage(to) = Base::parse(&at.value, is_stage) {
                references.push(StageRef {
                    from: &stage.name.value,
                    to,
                    at,
                });
            }
        }
    }
    for reference in &references {
        if !is_stage(&reference.to) {
            errors.push(unknown_stage(
                project,
                &reference.to,
                reference.at,
                &stage_names,
            ));
        }
    }
    errors.extend(cycles(project, &references));

    for image in project.images.values() {
        let stage = &image.stage;
        if !stage.value.contains('$') && !is_stage(&stage.value) {
            errors.push(unknown_stage(project, &stage.value, stage, &stage_names));
        }
        if project.groups.contains_key(&image.name.value) {
            errors.push(
                project
                    .source
                    .error(
                        image.name.span.clone(),
                        format!("`{}` is both an image and a group", image.name.value),
                    )
                    .with_help("`--target` names images and groups alike; rename one of them"),
            );
        }
    }
    let targets: Vec<&str> = project
        .images
        .keys()
        .chain(project.groups.keys())
        .map(String::as_str)
        .collect();
    for group in project.groups.values() {
        for member in &group.members {
            if !targets.contains(&member.value.as_str()) {
                errors.push(
                    project
                        .source
                        .error(
                            member.span.clone(),
                            format!("unknown image or group `{}`", member.value),
                        )
                        .with_help(suggest("image or group", &member.value, &targets)),
                );
            }
        }
    }
    errors
}

/// The stage-naming strings a stage holds: `from`, `copy.from`, mount `from`.
fn stage_references(stage: &super::Stage) -> Vec<&Template> {
    let mut found = vec![&stage.from];
    for step in &stage.steps {
        match step {
            Step::Copy(copy) | Step::Add(copy) => found.extend(copy.from.as_ref()),
            Step::Run(run) => {
                for mount in &run.mounts {
                    if let Mount::Cache { from, .. } | Mount::Bind { from, .. } = mount {
                        found.extend(from.as_ref());
                    }
                }
            }
            _ => {}
        }
    }
    found
}

fn unknown_stage(project: &Project, name: &str, at: &Template, stages: &[&str]) -> Diagnostic {
    project
        .source
        .error(at.span.clone(), format!("unknown stage `{name}`"))
        .with_help(suggest("stage", name, stages))
}

/// One error per cycle among stages, naming the stages in order.
fn cycles(project: &Project, references: &[StageRef<'_>]) -> Vec<Diagnostic> {
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    let mut spans: HashMap<(&str, &str), &Template> = HashMap::new();
    for r in references {
        if let Some((name, _)) = project.stages.get_key_value(&r.to) {
            graph.add_edge(r.from, name.as_str(), ());
            spans.entry((r.from, name.as_str())).or_insert(r.at);
        }
    }
    let order = |name: &str| project.stages.get_index_of(name).unwrap_or(usize::MAX);
    let mut errors = Vec::new();
    for component in tarjan_scc(&graph) {
        let start = *component
            .iter()
            .min_by_key(|n| order(n))
            .expect("components are never empty");
        if component.len() == 1 && !graph.contains_edge(start, start) {
            continue;
        }
        let path = shortest_cycle(&graph, start, &component, order);
        let closing = spans[&(path[path.len() - 2], start)];
        errors.push(
            project
                .source
                .error(closing.span.clone(), format!("stages form a cycle: {}", path.join(" -> ")))
                .with_label("this reference closes the cycle")
                .with_help("a stage cannot depend on itself, directly or through other stages; remove one of these references"),
        );
    }
    errors
}

/// The shortest path `start -> ... -> start` inside `component`, ties broken by source order.
fn shortest_cycle<'a>(
    graph: &DiGraphMap<&'a str, ()>,
    start: &'a str,
    component: &[&'a str],
    order: impl Fn(&str) -> usize,
) -> Vec<&'a str> {
    let mut previous: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<&str> = graph
            .neighbors(node)
            .filter(|n| component.contains(n))
            .collect();
        next.sort_by_key(|n| order(n));
        for n in next {
            if n == start {
                let mut path = vec![start, node];
                let mut at = node;
                while at != start {
                    at = previous[at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if !previous.contains_key(n) {
                previous.insert(n, node);
                queue.push_back(n);
            }
        }
    }
    vec![start, start]
}
