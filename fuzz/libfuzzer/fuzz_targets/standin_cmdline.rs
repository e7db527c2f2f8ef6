#![no_main]
// The target's body and its properties: fuzz_targets::standin::standin_cmdline (fuzz/src/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::standin::standin_cmdline(data));
