//! End-to-end tests: they run the `imgbuild` binary as a user would.

#[macro_use]
mod util;

mod apply;
mod bad_manifests;
mod book;
mod buildx;
mod cache;
mod convert;
mod differential;
mod dockerfile;
mod examples;
mod git;
mod hardlinks;
mod history;
mod hostile_context;
mod image_config;
mod images;
mod inspect;
mod layers;
mod lint;
mod onbuild;
mod plan;
mod prune;
mod registry;
mod run;
mod sbom;
mod schema;
mod secrets;
#[path = "../support/registry.rs"]
mod test_registry;
