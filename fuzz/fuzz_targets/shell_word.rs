//! `cargo fuzz run shell_word`: see `imgbuild::fuzz::shell_word`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgbuild::fuzz::shell_word(data));
