#!/usr/bin/env bash
# Installs Pebble, Let's Encrypt's test ACME server, from its Go module at a pinned version into
# .tools/pebble-<version>/ (git-ignored), for the ACME tests (tests/acme.rs). A no-op when that
# version is already there. Pebble's own CA and test certificates come from the module source.
#   .tools/pebble-<version>/pebble                the ACME server
#   .tools/pebble-<version>/pebble-challtestsrv   its DNS server: answers 127.0.0.1 for `.test` names
#   .tools/pebble-<version>/certs/                its HTTPS certificate, key and the minica CA
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEBBLE_VERSION=2.10.1
dest="$root/.tools/pebble-$PEBBLE_VERSION"

if [ -x "$dest/pebble" ] && [ -x "$dest/pebble-challtestsrv" ] && [ -f "$dest/certs/localhost/cert.pem" ]; then exit 0; fi
if ! command -v go >/dev/null; then
  echo "install-pebble: Go >= 1.24 is needed to build pebble $PEBBLE_VERSION (Debian: apt-get install golang-go, or https://go.dev/dl)" >&2
  exit 1
fi
echo "install-pebble: building pebble $PEBBLE_VERSION from its Go module" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
module="github.com/letsencrypt/pebble/v2"
GOBIN="$tmp/bin" GOFLAGS="-trimpath -buildvcs=false" go install "$module/cmd/pebble@v$PEBBLE_VERSION" \
  "$module/cmd/pebble-challtestsrv@v$PEBBLE_VERSION"
# The module cache holds the source the binary was built from, test certificates included.
src=$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "$module@v$PEBBLE_VERSION" 2>/dev/null || true)
[ -n "$src" ] || src="$(go env GOMODCACHE)/$module@v$PEBBLE_VERSION"
[ -f "$src/test/certs/localhost/cert.pem" ] || { echo "install-pebble: no test certificates in $src" >&2; exit 1; }
mkdir -p "$tmp/out/certs/localhost"
mv "$tmp/bin/pebble" "$tmp/bin/pebble-challtestsrv" "$tmp/out/"
cp "$src/test/certs/pebble.minica.pem" "$tmp/out/certs/"
cp "$src/test/certs/localhost/cert.pem" "$src/test/certs/localhost/key.pem" "$tmp/out/certs/localhost/"
chmod -R u+w "$tmp/out"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/out" "$dest"
