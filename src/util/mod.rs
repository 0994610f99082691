//! Small helpers shared by modules that know nothing of each other.

pub mod path;
pub mod size;
pub mod utf8;
