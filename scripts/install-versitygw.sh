#!/usr/bin/env bash
# Installs versitygw, an S3-compatible server (Apache-2.0; its posix backend keeps objects as plain
# files), from its Go module at the version pinned in livekit-version.sh, for the S3 recording
# test (tests/recording.rs). A no-op when that version is already there.
#   .tools/versitygw-<version>/versitygw   the server
#   .tools/bin/versitygw                   a link to it, for $PATH
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=livekit-version.sh
. "$root/scripts/livekit-version.sh"
dest="$root/.tools/versitygw-$VERSITYGW_VERSION"

link() { mkdir -p "$root/.tools/bin" && ln -sfn "../versitygw-$VERSITYGW_VERSION/versitygw" "$root/.tools/bin/versitygw"; }
if [ -x "$dest/versitygw" ]; then link; exit 0; fi
if ! command -v go >/dev/null; then
  echo "install-versitygw: Go >= 1.24 is needed to build versitygw $VERSITYGW_VERSION (Debian: apt-get install golang-go, or https://go.dev/dl)" >&2
  exit 1
fi
echo "install-versitygw: building versitygw $VERSITYGW_VERSION from its Go module" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS="-trimpath -buildvcs=false" go install "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
mkdir -p "$tmp/out"
mv "$tmp/versitygw" "$tmp/out/"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/out" "$dest"
link
