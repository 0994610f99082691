//! `cargo fuzz run layer`: see `imgbuild::fuzz::layer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgbuild::fuzz::layer(data));
