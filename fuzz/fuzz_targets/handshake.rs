#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sg_fuzzing::handshake(data));
