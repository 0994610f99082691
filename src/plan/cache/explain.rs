//! Why a step rebuilds: what changed between its last record and its new
//! one (the parent step, the arguments, the state or the inputs).

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::{InputDigest, StateRecord, StepRecord};

/// Why a step whose key is `new` rebuilds, given its last build `old` and,
/// when its parent key changed, `parent` saying why.
pub fn rebuild_reason(old: Option<&StepRecord>, new: &StepRecord, parent: &str) -> String {
    if let Some(why) = &new.uncacheable {
        return format!("never cached: {why}");
    }
    let Some(old) = old else {
        return "not built before".to_owned();
    };
    if old.key == new.key {
        return "its cached result is gone (pruned)".to_owned();
    }
    if old.settings != new.settings {
        return format!(
            "SOURCE_DATE_EPOCH changed from {} to {}",
            show(old.settings.source_date_epoch),
            show(new.settings.source_date_epoch)
        );
    }
    if let Some(reason) = changed_args(&old.args, &new.args) {
        return reason;
    }
    if old.definition != new.definition {
        return changed_args(&old.stage_args, &new.stage_args)
            .unwrap_or_else(|| "the step changed".to_owned());
    }
    if old.state != new.state
        && let (Some(a), Some(b)) = (&old.state, &new.state)
    {
        return changed_state(a, b);
    }
    if let Some(reason) = changed_inputs(&old.inputs, &new.inputs) {
        return reason;
    }
    if old.parent != new.parent {
        return parent.to_owned();
    }
    "its inputs changed".to_owned()
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| v.to_string())
}

fn changed_args(old: &IndexMap<String, String>, new: &IndexMap<String, String>) -> Option<String> {
    let mut changes = Vec::new();
    for (name, value) in new {
        match old.get(name) {
            Some(before) if before != value => {
                changes.push(format!("arg {name} changed from {before} to {value}"));
            }
            None => changes.push(format!("arg {name} set to {value}")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        changes.push(format!("arg {name} removed"));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

fn changed_state(old: &StateRecord, new: &StateRecord) -> String {
    let old_env: BTreeMap<&str, &str> = old
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new_env: BTreeMap<&str, &str> = new
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut names: Vec<&str> = new_env
        .iter()
        .filter(|(k, v)| old_env.get(*k) != Some(v))
        .map(|(k, _)| *k)
        .chain(
            old_env
                .keys()
                .filter(|k| !new_env.contains_key(*k))
                .copied(),
        )
        .collect();
    names.dedup();
    if !names.is_empty() {
        return format!("env {} changed", names.join(", "));
    }
    if old.workdir != new.workdir {
        return format!("workdir changed from {} to {}", old.workdir, new.workdir);
    }
    if old.user != new.user {
        return "user changed".to_owned();
    }
    "shell changed".to_owned()
}

fn changed_inputs(old: &[InputDigest], new: &[InputDigest]) -> Option<String> {
    let files = |inputs: &[InputDigest]| -> BTreeMap<String, String> {
        inputs
            .iter()
            .flat_map(|i| {
                i.files.iter().map(move |(path, digest)| {
                    let place = if i.label == "context" {
                        path.clone()
                    } else {
                        format!("{path} in {}", i.label)
                    };
                    (place, digest.clone())
                })
            })
            .collect()
    };
    if old
        .iter()
        .map(|i| &i.digest)
        .eq(new.iter().map(|i| &i.digest))
    {
        return None;
    }
    let (before, after) = (files(old), files(new));
    let mut changes: Vec<String> = Vec::new();
    for (path, digest) in &after {
        match before.get(path) {
            Some(old) if old != digest => changes.push(format!("{path} changed")),
            None => changes.push(format!("{path} added")),
            Some(_) => {}
        }
    }
    changes.extend(
        before
            .keys()
            .filter(|p| !after.contains_key(*p))
            .map(|p| format!("{p} removed")),
    );
    Some(match changes.len() {
        0 => "its input files changed".to_owned(),
        1..=3 => changes.join(", "),
        n => format!("{} and {} more", changes[..3].join(", "), n - 3),
    })
}
