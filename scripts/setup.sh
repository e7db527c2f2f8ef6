#!/usr/bin/env bash
# Installs what building and booting rust_multicore needs and a fresh machine may lack:
# the x86_64-unknown-none Rust target and QEMU (Debian's qemu-system-x86, 7.2 on bookworm).
#   scripts/setup.sh           the default (QEMU from the distribution)
#   scripts/setup.sh --qemu10  QEMU 10.0 from bookworm-backports instead (its TCG has x2APIC)
set -euo pipefail

want_qemu10=0
case "${1:-}" in
  "") ;;
  --qemu10) want_qemu10=1 ;;
  *) echo "setup.sh: unknown option '$1' (valid: --qemu10)" >&2; exit 2 ;;
esac

say() { echo "setup: $*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

# Rust: the kernel target. RUSTUP_AUTO_INSTALL may be off, so add it explicitly.
if ! command -v rustup >/dev/null; then
  echo "setup: rustup is missing: install Rust from https://rustup.rs, then run this again" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
  say "adding the Rust target x86_64-unknown-none"
  rustup target add x86_64-unknown-none
fi
# The stand-in host's programs (standin/hello, ...) are musl static-pie executables.
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  say "adding the Rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ "$want_qemu10" = 1 ]; then
  # shellcheck source=scripts/apt-backports.sh
  . "$(dirname "$0")/apt-backports.sh"
  add_bookworm_backports || [ $? = 1 ]
  as_root apt-get update -qq
  say "installing QEMU 10 from bookworm-backports"
  apt_install -t bookworm-backports qemu-system-x86
elif ! command -v "${QEMU:-qemu-system-x86_64}" >/dev/null; then
  if command -v apt-get >/dev/null && as_root true; then
    say "installing QEMU (apt-get install qemu-system-x86)"
    as_root apt-get update -qq
    apt_install qemu-system-x86
  else
    echo "setup: QEMU is missing and cannot be installed from here: run 'sudo apt-get install qemu-system-x86' (Debian/Ubuntu) and try again" >&2
    exit 1
  fi
fi
# The C example of the library's C interface (capi/example) is compiled with musl-gcc.
if ! command -v musl-gcc >/dev/null; then
  if command -v apt-get >/dev/null && as_root true; then
    say "installing musl-tools (musl-gcc, for the C example)"
    as_root apt-get update -qq
    apt_install musl-tools
  else
    echo "setup: musl-gcc is missing and cannot be installed from here: run 'sudo apt-get install musl-tools' and try again" >&2
    exit 1
  fi
fi
say "ready: $(rustc --version), $("${QEMU:-qemu-system-x86_64}" --version | head -n 1)"
