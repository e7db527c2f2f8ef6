#!/usr/bin/env bash
# Fetches the stock Debian cloud kernels that the Linux guest baseline boots
# (xtask/src/linux_guest/, `cargo xtask linux-baseline`):
#   bookworm            linux-image-cloud-amd64, 6.1
#   bookworm-backports  linux-image-cloud-amd64 from backports, 6.12 (parallel CPU bring-up)
#
#   scripts/fetch-linux-guest.sh [SUITE...]     (default: both suites)
#
# Each kernel is unpacked to target/linux-guest/SUITE/boot/ (vmlinuz-VERSION, config-VERSION:
# the runner reads CONFIG_HZ there); the modules are not kept, the guest boots without them.
# For each suite one line goes to stdout, for the runner to parse:
#   kernel SUITE VERSION PATH-OF-VMLINUZ
# Everything else goes to stderr. A suite whose vmlinuz is already there costs nothing: no apt
# call at all. apt-get update runs only when apt does not know the package yet or its index
# is stale (a download that fails), at most once per invocation.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out_dir=$root/target/linux-guest
meta=linux-image-cloud-amd64

say() { echo "fetch-linux-guest: $*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/linux-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

# shellcheck source=scripts/apt-backports.sh
. "$root/scripts/apt-backports.sh"

# What to do by hand, for the suite that could not be fetched.
by_hand() {
  local suite=$1 why=$2 release=""
  [ "$suite" = bookworm-backports ] && release=" -t bookworm-backports"
  cat >&2 <<EOF
fetch-linux-guest: cannot fetch the $suite cloud kernel: $why
  By hand: on a Debian 12 machine with the $suite suite in its apt sources, run
    apt-get update && apt-get download$release \$(apt-cache$release depends $meta | sed -n 's/.*Depends: //p')
  and unpack the .deb it leaves here:
    mkdir -p $out_dir/$suite && dpkg-deb -x linux-image-*.deb $out_dir/$suite
  (only boot/vmlinuz-* and boot/config-* are used). Then run this again.
EOF
  exit 1
}

updated=0
apt_update() {
  [ "$updated" = 1 ] && return 1
  updated=1
  say "apt-get update"
  as_root apt-get update -qq >&2 || return 1
}

# The newest version of the metapackage that SUITE offers, empty if apt does not know one.
# bookworm's kernels are updated through bookworm-security (and -updates), so those count as
# bookworm; madison lists the newest first.
meta_version() {
  local pattern=" $1/main "
  [ "$1" = bookworm ] && pattern=" bookworm(-security|-updates)?/main "
  { apt-cache madison "$meta" 2>/dev/null || true; } | awk -F'|' -v re="$pattern" \
    '$0 ~ re { gsub(/ /, "", $2); print $2; exit }'
}

fetch() {
  local suite=$1 dest=$out_dir/$1 existing
  existing=$(find "$dest/boot" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | head -n 1 || true)
  if [ -n "$existing" ]; then
    echo "kernel $suite ${existing##*/vmlinuz-} $existing"
    return
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    by_hand "$suite" "apt-get and dpkg-deb are needed (a Debian or Ubuntu machine)"
  fi

  if [ "$suite" = bookworm-backports ]; then
    local status=0
    add_bookworm_backports || status=$?
    case $status in
      0) updated=0; apt_update || by_hand "$suite" "apt-get update failed after adding the suite" ;;
      2) by_hand "$suite" "adding the bookworm-backports apt source needs root" ;;
    esac
  fi

  local version
  version=$(meta_version "$suite")
  if [ -z "$version" ]; then
    apt_update || true
    version=$(meta_version "$suite")
  fi
  [ -n "$version" ] || by_hand "$suite" "apt knows no $meta in $suite"

  # The metapackage only depends on the versioned image package, e.g.
  # "Depends: linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1)": that package holds the kernel.
  local depends pkg pkg_version
  depends=$(apt-cache show "$meta=$version" | sed -n 's/^Depends: //p' | head -n 1)
  pkg=$(echo "$depends" | tr ',' '\n' | grep -o 'linux-image-[^ ]*' | head -n 1)
  pkg_version=$(echo "$depends" | sed -n "s/.*$pkg (= \([^)]*\)).*/\1/p")
  [ -n "$pkg" ] || by_hand "$suite" "cannot read the image package from '$meta=$version: Depends: $depends'"
  local want=$pkg${pkg_version:+=$pkg_version}

  local tmp=$work/$suite
  mkdir -p "$tmp"
  say "downloading $want ($suite)"
  # As root, apt hands the download to its unprivileged _apt user, who cannot write to a
  # private temporary directory: download as root instead of printing a warning.
  local sandbox=()
  [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
  if ! (cd "$tmp" && apt-get "${sandbox[@]}" download -qq "$want" >&2); then
    # A stale index names a file the mirror no longer has.
    apt_update || by_hand "$suite" "apt-get download $want failed"
    (cd "$tmp" && apt-get "${sandbox[@]}" download -qq "$want" >&2) \
      || by_hand "$suite" "apt-get download $want failed"
  fi
  local deb
  deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)
  [ -n "$deb" ] || by_hand "$suite" "apt-get download left no .deb"
  say "unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
  dpkg-deb -x "$deb" "$tmp/root"
  mkdir -p "$dest/boot"
  cp "$tmp"/root/boot/vmlinuz-* "$tmp"/root/boot/config-* "$dest/boot/" \
    || by_hand "$suite" "$(basename "$deb") has no boot/vmlinuz-*"
  existing=$(find "$dest/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
  echo "kernel $suite ${existing##*/vmlinuz-} $existing"
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm bookworm-backports)
for suite in "${suites[@]}"; do
  case $suite in
    bookworm | bookworm-backports) fetch "$suite" ;;
    *) say "unknown suite '$suite' (valid: bookworm, bookworm-backports)"; exit 2 ;;
  esac
done
