#!/usr/bin/env bash
# Builds the Debian or RPM package of bedrud, with its livekit-server, into target/.
# Usage: scripts/package.sh deb|rpm [--revision N]
#   deb: target/packages/bedrud_<version>-<N>_amd64.deb      (cargo-deb)
#   rpm: target/packages/bedrud-<version>-<N>.x86_64.rpm     (cargo-generate-rpm)
# Both read the one set of metadata in Cargo.toml. --revision (default 1) makes a newer build of
# the same version, as the upgrade test installs over the first one.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=livekit-version.sh
. scripts/livekit-version.sh

# The packaging tools, pinned, installed into .tools/cargo (git-ignored).
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

kind=${1:-}
revision=1
if [ "${2:-}" = "--revision" ]; then revision=${3:?--revision needs a number}; fi
case "$kind" in
  deb | rpm) ;;
  *) echo "usage: scripts/package.sh deb|rpm [--revision N]" >&2; exit 2 ;;
esac

tools="$root/.tools"
export PATH="$tools/cargo/bin:$PATH"
install_tool() { # crate version
  if ! "$1" --version 2>/dev/null | grep -qF "$2"; then
    echo "package: installing $1 $2 into .tools/cargo" >&2
    cargo install --quiet --locked --root "$tools/cargo" "$1" --version "$2"
  fi
}

out="$root/target/package"
build_payload() {
  # The web app is embedded into the binary (build.rs).
  "$root/scripts/build-web.sh"
  cargo build --release --locked
  strip target/release/bedrud
  mkdir -p "$out/man" "$out/completions"

  # livekit-server, built now from its pinned Go module (no distribution ships it); PIE and
  # stripped, the hardening Debian expects of a packaged executable.
  local lk="$out/livekit-server"
  if ! [ -x "$lk" ] || [ "$("$lk" --version)" != "livekit-server version $LIVEKIT_VERSION" ]; then
    command -v go >/dev/null || { echo "package: Go >= 1.26 is needed to build livekit-server (https://go.dev/dl)" >&2; exit 1; }
    echo "package: building livekit-server $LIVEKIT_VERSION from its Go module" >&2
    local gobin
    gobin=$(mktemp -d)
    GOBIN="$gobin" go install -trimpath -buildvcs=false -buildmode=pie -ldflags="-s -w" \
      "github.com/livekit/livekit-server/cmd/server@v$LIVEKIT_VERSION"
    mv "$gobin/server" "$lk"
    rmdir "$gobin"
  fi

  rm -f "$out"/man/*
  target/release/bedrud generate-man "$out/man" >/dev/null
  gzip -9n "$out"/man/*.1
  target/release/bedrud completions bash >"$out/completions/bedrud.bash"
  target/release/bedrud completions zsh >"$out/completions/_bedrud"
  target/release/bedrud completions fish >"$out/completions/bedrud.fish"
}

case "$kind" in
  deb)
    install_tool cargo-deb "$CARGO_DEB_VERSION"
    build_payload
    built=$(cargo deb --no-build --locked --deb-revision "$revision")
    ;;
  rpm)
    install_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
    build_payload
    cargo generate-rpm --set-metadata "release = \"$revision\"" \
      ${BEDRUD_RPM_SIGNING_KEY:+--signing-key "$BEDRUD_RPM_SIGNING_KEY"}
    built=$(ls -t target/generate-rpm/bedrud-*"-$revision".*.rpm | head -1)
    ;;
esac
# cargo-deb empties target/debian on each run; keep every build side by side.
mkdir -p target/packages
cp "$built" target/packages/
echo "target/packages/$(basename "$built")"
