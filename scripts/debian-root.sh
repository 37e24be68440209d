#!/usr/bin/env bash
# Makes the clean Debian roots the package tests install into (git-ignored, under .tools/), each a
# debootstrap "minbase" of this host's Debian release:
#   .tools/debian-root      plus what the package depends on and recommends (systemd,
#                           ca-certificates) and man-db (so that the test can open `man bedrud`).
#                           The chroot tests copy it; the booted tests boot a copy with systemd-nspawn.
#   .tools/debian-root-rpm  the same plus Debian's rpm, for the booted .rpm test: rpm runs inside the
#                           booted container, so that the scriptlets talk to its running systemd.
#   .tools/recording-debs   not a root: the .debs that bedrud-recording's dependencies (its
#                           `depends` in Cargo.toml) add to .tools/debian-root, so that the test
#                           installs it offline through its dependencies alone.
# Downloading happens here, in set-up: the tests copy these roots and run offline. A no-op for a
# root that exists.
# Usage: scripts/debian-root.sh            (root; needs debootstrap)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tmp=""
# debootstrap mounts /proc (and /sys, devpts) inside the root it builds. An interrupted run would
# leave them mounted in the checkout, and a plain rm -rf would walk into the host's /proc: unmount
# whatever is mounted under the temp root, deepest first, and never cross into another file system.
cleanup() {
  [ -n "$tmp" ] && [ -e "$tmp" ] || return 0
  awk -v t="$tmp" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

# make_root NAME PACKAGES FILE...: debootstrap .tools/NAME with PACKAGES, unless every FILE (the
# proof that a previous run finished) is there.
make_root() {
  local name=$1 include=$2 target f
  shift 2
  target="$PWD/.tools/$name"
  for f in "$@"; do [ -e "$target/$f" ] || break; done
  [ -e "$target/$f" ] && return 0

  command -v debootstrap >/dev/null || { echo "debian-root: needs debootstrap: apt-get install debootstrap" >&2; exit 1; }
  local suite mirror log
  # shellcheck source=/dev/null
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  log="$PWD/.tools/debootstrap${name#debian-root}.log"
  echo "debian-root: debootstrap $suite from $mirror into .tools/$name" >&2
  tmp="$target.tmp"
  cleanup
  debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$log" 2>&1 || {
    echo "debian-root: debootstrap failed; see ${log#"$PWD/"}" >&2
    exit 1
  }
  # Nothing of the download cache is needed afterwards.
  rm -rf "$tmp"/var/cache/apt/archives/*.deb
  rm -rf --one-file-system "$target"
  mv "$tmp" "$target"
}

make_root debian-root systemd,ca-certificates,man-db \
  usr/bin/systemd-sysusers usr/bin/man etc/ssl/certs/ca-certificates.crt
make_root debian-root-rpm systemd,ca-certificates,rpm \
  usr/bin/systemd-sysusers usr/bin/rpm etc/ssl/certs/ca-certificates.crt

# recording_debs: download (not install) what bedrud-recording depends on, as apt in the clean root
# resolves it, into .tools/recording-debs. Keyed by the dependency list, so that editing it in
# Cargo.toml downloads again.
recording_debs() {
  local root="$PWD/.tools/debian-root" dest="$PWD/.tools/recording-debs" list
  list=$(python3 -c '
import sys, tomllib
deb = tomllib.load(open("Cargo.toml", "rb"))["package"]["metadata"]["deb"]
names = [d.split()[0] for d in deb["variants"]["recording"]["depends"]]
print(" ".join(n for n in names if n not in ("$auto", "bedrud")))')
  [ "$(cat "$dest/depends" 2>/dev/null)" = "$list" ] && return 0
  echo "debian-root: downloading bedrud-recording's dependencies into .tools/recording-debs" >&2
  local cache="$root/var/cache/apt/archives"
  rm -f "$cache"/*.deb
  # shellcheck disable=SC2086 # one word per package
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get install -qq --download-only --no-install-recommends -y $list >/dev/null
  rm -rf "$dest"
  mkdir -p "$dest"
  mv "$cache"/*.deb "$dest"/
  echo "$list" >"$dest/depends"
}
recording_debs
