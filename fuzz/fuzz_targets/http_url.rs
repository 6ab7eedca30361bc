#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| autoheal_fuzz::http_url(data));
