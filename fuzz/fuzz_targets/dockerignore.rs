//! `cargo fuzz run dockerignore`: see `imgbuild::fuzz::dockerignore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgbuild::fuzz::dockerignore(data));
