//! imgbuild builds OCI container images from a declarative TOML manifest.
//!
//! Front ends ([`manifest`]) produce an [`ir::Project`]; [`plan`] resolves it
//! for a request into a build graph and a [`plan::Plan`]. `../DESIGN.md`
//! describes the whole architecture.

pub mod cli;
pub mod context;
pub mod copy;
pub mod diagnostic;
pub mod dockerfile;
pub mod error;
pub mod exec;
pub mod export;
#[doc(hidden)]
pub mod fuzz;
pub mod image;
pub mod inspect;
pub mod ir;
pub mod layer;
pub mod lint;
pub mod manifest;
pub mod plan;
pub mod practice;
pub mod printer;
pub mod progress;
pub mod registry;
pub mod sbom;
pub mod scheduler;
pub mod store;
pub mod util;

pub use error::Error;

#[cfg(test)]
mod architecture_tests;
