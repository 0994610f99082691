//! Small helpers shared by modules that know nothing of each other.

pub mod disk;
pub mod hex;
pub mod path;
pub mod size;
pub mod utf8;
