#!/usr/bin/env bash
# Boots the demo in QEMU with 4 CPUs (same as `make run`); extra arguments go to `cargo xtask run`.
cd "$(dirname "$0")" && bash scripts/setup.sh && exec cargo xtask run "$@"
