# shellcheck shell=bash
# Sourced, not run: the one place that knows how to make apt see bookworm-backports.
# Used by scripts/setup.sh (--qemu10: QEMU 10) and scripts/fetch-linux-guest.sh (the 6.12 cloud
# kernel for the Linux baseline). The caller defines `as_root CMD...` and `say MESSAGE`.

backports_src=/etc/apt/sources.list.d/bookworm-backports.sources

# True when some apt source already names the suite (ours or one the admin wrote).
have_bookworm_backports() {
  grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/
}

# Adds the suite when missing. Returns 0 when it wrote a new source (the caller must then run
# apt-get update), 1 when the suite was already there, 2 when it could not write it (not root).
add_bookworm_backports() {
  have_bookworm_backports && return 1
  say "adding the bookworm-backports suite ($backports_src)"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | as_root tee "$backports_src" >/dev/null || return 2
}
