# shellcheck shell=bash
# Sourced, not run: the one place that knows how to make apt see bookworm-backports.
# Used by scripts/setup.sh (--qemu10: QEMU 10) and scripts/fetch-linux-guest.sh (the 6.12 cloud
# kernel for the Linux baseline). The caller defines `as_root CMD...` and `say MESSAGE`.

# apt's configuration directory. Only a test points it elsewhere (a fake sources tree).
apt_dir=${APT_BACKPORTS_ETC:-/etc/apt}
backports_src=$apt_dir/sources.list.d/bookworm-backports.sources
# Used only when no apt source names bookworm (said so when it happens).
fallback_mirror=http://deb.debian.org/debian

# The source files apt reads: one-line `.list` files and deb822 `.sources` files (anything else
# in sources.list.d, e.g. `foo.list.disabled`, apt ignores, and so do we).
apt_source_files() {
  local f
  for f in "$apt_dir/sources.list" "$apt_dir"/sources.list.d/*.list "$apt_dir"/sources.list.d/*.sources; do
    [ -f "$f" ] && printf '%s\n' "$f"
  done
  return 0
}

# True when some apt source already names the suite (ours or one the admin wrote); comment
# lines do not count.
have_bookworm_backports() {
  local files
  mapfile -t files < <(apt_source_files)
  [ ${#files[@]} -gt 0 ] && grep -qs '^[^#]*bookworm-backports' "${files[@]}"
}

# `URL FILE` for the first enabled binary (`deb`) source of the suite bookworm itself (not
# bookworm-security or -updates), nothing if there is none. Backports come from the same
# mirror, so a machine set up with a local or proxied mirror keeps using it.
bookworm_mirror() {
  local f found
  while IFS= read -r f; do
    case $f in
      *.sources)
        # deb822: paragraphs of `Field: value` lines, a value may continue on indented lines.
        found=$(awk -v file="$f" '
          function flush() {
            if (!found && types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ \
                && tolower(enabled) != "no" && uris != "") {
              split(uris, u, " ")
              print u[1], file
              found = 1
            }
            types = uris = suites = enabled = key = ""
          }
          function set(k, v) {
            gsub(/[ \t]+/, " ", v); sub(/^ /, "", v); sub(/ $/, "", v)
            if (k == "types") types = types " " v
            else if (k == "uris") uris = uris " " v
            else if (k == "suites") suites = suites " " v
            else if (k == "enabled") enabled = v
          }
          /^#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^[ \t]/ { if (key != "") set(key, $0); next }
          {
            colon = index($0, ":")
            if (colon == 0) next
            key = tolower(substr($0, 1, colon - 1))
            set(key, substr($0, colon + 1))
          }
          END { flush() }
        ' "$f")
        ;;
      *)
        # One-line: `deb [options] URI SUITE COMPONENT...`; the options may hold spaces.
        found=$(awk -v file="$f" '
          /^[ \t]*deb[ \t]/ {
            line = $0
            sub(/#.*/, "", line)
            sub(/^[ \t]*deb[ \t]+/, "", line)
            if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
            n = split(line, w, /[ \t]+/)
            if (n >= 2 && w[2] == "bookworm") { print w[1], file; exit }
          }
        ' "$f")
        ;;
    esac
    if [ -n "$found" ]; then
      printf '%s\n' "$found"
      return 0
    fi
  done < <(apt_source_files)
  return 0
}

# Adds the suite when missing. Returns 0 when it wrote a new source (the caller must then run
# apt-get update), 1 when the suite was already there, 2 when it could not write it (not root).
add_bookworm_backports() {
  have_bookworm_backports && return 1
  local found mirror
  found=$(bookworm_mirror)
  if [ -n "$found" ]; then
    mirror=${found%% *}
    say "adding the bookworm-backports suite ($backports_src), from the mirror of bookworm in ${found#* }: $mirror"
  else
    mirror=$fallback_mirror
    say "adding the bookworm-backports suite ($backports_src); no apt source names bookworm, so from $mirror"
  fi
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
    | as_root tee "$backports_src" >/dev/null || return 2
}
