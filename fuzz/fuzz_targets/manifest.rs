//! `cargo fuzz run manifest`: see `imgbuild::fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgbuild::fuzz::manifest(data));
