#!/usr/bin/env bash
# Runs every fuzz target (or those named) under libFuzzer for FUZZ_SECONDS each (default 60):
#   make fuzz                     # all targets, 60 s each
#   FUZZ_SECONDS=600 make fuzz FUZZ_TARGETS='topology acpi_madt'
# Needs the nightly toolchain and cargo-fuzz (installed from crates.io when missing). Each
# target starts from its committed seeds (fuzz/corpus/<target>) and grows a working corpus in
# target/fuzz/corpus/<target>; an input that fails is saved to target/fuzz/artifacts/<target>/
# and the run stops there. Fix the parser, then copy the input into fuzz/corpus/<target>/ so
# that `cargo test` replays it from then on.
#
# Built without a sanitizer (-s none): the parsers and the fake memory are safe Rust, so
# AddressSanitizer finds nothing bounds checks do not, at twice the cost per input; debug
# assertions and overflow checks are on (cargo fuzz's default).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
fuzz_dir=fuzz/libfuzzer

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")}
# Machine images hold whole table sets: let inputs grow well past libFuzzer's 4 KiB default.
max_len=65536
for target in $targets; do
    work=target/fuzz/corpus/$target
    artifacts=target/fuzz/artifacts/$target
    mkdir -p "$work" "$artifacts"
    echo "fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" -s none "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/"
done
