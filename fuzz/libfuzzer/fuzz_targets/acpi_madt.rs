#![no_main]
// The target's body and its properties: fuzz_targets::firmware::acpi_madt (fuzz/src/).
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::firmware::acpi_madt(data));
