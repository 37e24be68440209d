#!/usr/bin/env bash
# Makes the clean Debian root the package tests install into: .tools/debian-root (git-ignored),
# a debootstrap "minbase" of this host's Debian release plus what the package depends on and
# recommends (systemd, ca-certificates) and man-db (so that the test can open `man bedrud`). Downloading happens here, in
# set-up: the tests copy this root and run offline. A no-op when the root exists.
# Usage: scripts/debian-root.sh            (root; needs debootstrap)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="$PWD/.tools/debian-root"
[ -x "$target/usr/bin/systemd-sysusers" ] && [ -x "$target/usr/bin/man" ] &&
  [ -f "$target/etc/ssl/certs/ca-certificates.crt" ] && exit 0

command -v debootstrap >/dev/null || { echo "debian-root: needs debootstrap: apt-get install debootstrap" >&2; exit 1; }
# shellcheck source=/dev/null
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}

echo "debian-root: debootstrap $suite from $mirror into .tools/debian-root" >&2
tmp="$target.tmp"
# debootstrap mounts /proc (and /sys, devpts) inside the root it builds. An interrupted run would
# leave them mounted in the checkout, and a plain rm -rf would walk into the host's /proc: unmount
# whatever is mounted under the temp root, deepest first, and never cross into another file system.
cleanup() {
  [ -e "$tmp" ] || return 0
  awk -v t="$tmp" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
cleanup
debootstrap --variant=minbase --include=systemd,ca-certificates,man-db "$suite" "$tmp" "$mirror" >"$PWD/.tools/debootstrap.log" 2>&1 || {
  echo "debian-root: debootstrap failed; see .tools/debootstrap.log" >&2
  exit 1
}
# Nothing of the download cache is needed afterwards.
rm -rf "$tmp"/var/cache/apt/archives/*.deb
rm -rf --one-file-system "$target"
mv "$tmp" "$target"
