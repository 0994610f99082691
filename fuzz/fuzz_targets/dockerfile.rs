//! `cargo fuzz run dockerfile`: see `imgbuild::fuzz::dockerfile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgbuild::fuzz::dockerfile(data));
