#!/usr/bin/env bash
# Installs what `make bench` needs beyond the build: matplotlib (from PyPI) for the PNG plots, in
# a virtual environment of its own under target/ so that the system Python stays untouched.
# Prints the Python to use. Idempotent: does nothing when the environment is there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/bench-venv"
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  if ! command -v python3 >/dev/null; then
    echo "bench-setup: python3 is missing: install it (apt-get install python3 python3-venv)" >&2
    exit 1
  fi
  echo "bench-setup: installing matplotlib into $venv" >&2
  python3 -m venv "$venv" >&2 || {
    echo "bench-setup: cannot create a virtual environment: apt-get install python3-venv" >&2
    exit 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check matplotlib >&2 || {
    echo "bench-setup: pip could not install matplotlib (PyPI unreachable?)" >&2
    exit 1
  }
fi
echo "$venv/bin/python"
