//! Tests of the node runner.

use indexmap::IndexMap;

use super::*;
use crate::ir::{ArgScope, Platform, StageConfig};

fn node(base_onbuild: Option<Vec<String>>) -> Node {
    Node {
        id: "a@linux/amd64".into(),
        stage: "a".into(),
        platform: Platform::parse("linux/amd64").unwrap(),
        target: None,
        base: Base::Image("docker.io/library/base:1".into()),
        args: IndexMap::new(),
        arg_scope: ArgScope::Declared,
        start: StageConfig::default(),
        base_onbuild,
        onbuild_steps: 0,
        config: StageConfig::default(),
        steps: Vec::new(),
    }
}

fn image(onbuild: &[&str]) -> Image {
    let mut config = ImageConfig::scratch(Platform::parse("linux/amd64").unwrap(), DEFAULT_CREATED);
    config.runtime.onbuild = onbuild.iter().map(|t| (*t).to_owned()).collect();
    Image {
        config,
        layers: Vec::new(),
    }
}

#[test]
fn base_triggers_must_be_the_planned_ones() {
    let reference = "docker.io/library/base:1";
    check_onbuild(&node(None), reference, &image(&[])).unwrap();
    check_onbuild(
        &node(Some(vec!["RUN make".into()])),
        reference,
        &image(&["RUN make"]),
    )
    .unwrap();
    let unknown = check_onbuild(&node(None), reference, &image(&["RUN make"])).unwrap_err();
    assert!(
        unknown.to_string().contains(
            "has ONBUILD triggers (RUN make), which imgbuild could not read while planning"
        ),
        "{unknown}"
    );
    let changed =
        check_onbuild(&node(Some(Vec::new())), reference, &image(&["RUN make"])).unwrap_err();
    assert!(
        changed.to_string().contains("changed while building"),
        "{changed}"
    );
}
