#!/usr/bin/env bash
# Builds the kernel image (same as `make`): target/x86_64-unknown-none/release/rust_multicore
exec make -C "$(dirname "$0")" all
