use super::explain::rebuild_reason;
use super::*;

fn record(
    parent: &str,
    definition: &str,
    args: &[(&str, &str)],
    files: &[(&str, &str)],
) -> StepRecord {
    StepRecord {
        key: String::new(),
        parent: Some(parent.to_owned()),
        settings: KeySettings {
            source_date_epoch: None,
        },
        platform: "linux/amd64".into(),
        definition: definition.to_owned(),
        args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        stage_args: IndexMap::new(),
        state: None,
        inputs: vec![InputDigest {
            label: "context".into(),
            digest: files.iter().map(|(p, d)| [*p, *d].concat()).collect(),
            files: files
                .iter()
                .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
                .collect(),
        }],
        uncacheable: None,
    }
    .seal()
}

#[test]
fn keys_cover_every_part() {
    let base = record("p", "d", &[("A", "1")], &[("a", "1")]);
    assert_eq!(base.key, record("p", "d", &[("A", "1")], &[("a", "1")]).key);
    for other in [
        record("q", "d", &[("A", "1")], &[("a", "1")]),
        record("p", "e", &[("A", "1")], &[("a", "1")]),
        record("p", "d", &[("A", "2")], &[("a", "1")]),
        record("p", "d", &[("A", "1")], &[("a", "2")]),
    ] {
        assert_ne!(base.key, other.key);
    }
    assert_eq!(base.cache_key().to_string(), base.key);
}

#[test]
fn reasons_name_what_changed() {
    let old = record(
        "p",
        "d",
        &[("VERSION", "1")],
        &[("src/main.rs", "1"), ("a", "1")],
    );
    let new = record(
        "p",
        "d",
        &[("VERSION", "2")],
        &[("src/main.rs", "1"), ("a", "1")],
    );
    assert_eq!(
        rebuild_reason(Some(&old), &new, "parent step rebuilds"),
        "arg VERSION changed from 1 to 2"
    );
    let new = record(
        "p",
        "d",
        &[("VERSION", "1")],
        &[("src/main.rs", "2"), ("a", "1")],
    );
    assert_eq!(rebuild_reason(Some(&old), &new, "-"), "src/main.rs changed");
    let new = record(
        "p2",
        "d",
        &[("VERSION", "1")],
        &[("src/main.rs", "1"), ("a", "1")],
    );
    assert_eq!(
        rebuild_reason(Some(&old), &new, "parent step rebuilds"),
        "parent step rebuilds"
    );
    assert_eq!(rebuild_reason(None, &new, "-"), "not built before");
    assert_eq!(
        rebuild_reason(Some(&old), &old, "-"),
        "its cached result is gone (pruned)"
    );
}

#[test]
fn uncacheable_steps_never_repeat_a_key() {
    let mut a = record("p", "d", &[], &[]);
    a.uncacheable = Some("why".into());
    let b = a.clone().seal();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let c = a.seal();
    assert_ne!(b.key, c.key);
}
