#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| autoheal_fuzz::cooldown_key(data));
