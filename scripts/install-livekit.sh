#!/usr/bin/env bash
# Installs the real livekit-server from its Go module, at pinned versions, into .tools/ (git-ignored).
# A no-op for versions already there. Usage: scripts/install-livekit.sh [VERSION ...]
#   .tools/livekit/<version>/livekit-server   one binary per version
#   .tools/bin/livekit-server                 the default (first) version, for $PATH
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=livekit-version.sh
. "$root/scripts/livekit-version.sh"
DEFAULT_VERSIONS=("$LIVEKIT_VERSION" "$LIVEKIT_OLD_VERSION")
tools="$root/.tools"
if [ "$#" -gt 0 ]; then versions=("$@"); else versions=("${DEFAULT_VERSIONS[@]}"); fi

installed() { # version -> 0 when the binary is there and reports that version
  local bin="$tools/livekit/$1/livekit-server"
  [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "livekit-server version $1" ]
}

for v in "${versions[@]}"; do
  if installed "$v"; then continue; fi
  if ! command -v go >/dev/null; then
    echo "install-livekit: Go >= 1.26 is needed to build livekit-server $v (Debian: apt-get install golang-go, or https://go.dev/dl)" >&2
    exit 1
  fi
  echo "install-livekit: building livekit-server $v from its Go module (a few minutes the first time)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS="-trimpath -buildvcs=false" go install "github.com/livekit/livekit-server/cmd/server@v$v"
  mkdir -p "$tools/livekit/$v"
  mv "$tmp/server" "$tools/livekit/$v/livekit-server"
  rm -rf "$tmp"
  trap - EXIT
  installed "$v" || { echo "install-livekit: the built binary does not report version $v" >&2; exit 1; }
done

mkdir -p "$tools/bin"
ln -sfn "../livekit/${versions[0]}/livekit-server" "$tools/bin/livekit-server"
