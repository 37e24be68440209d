#!/usr/bin/env bash
# Builds the Debian or RPM package of bedrud, with its livekit-server, into target/.
# Usage: scripts/package.sh deb|rpm [--revision N] [--recording]
#   deb: target/packages/bedrud_<version>-<N>_amd64.deb      (cargo-deb)
#   rpm: target/packages/bedrud-<version>-<N>.x86_64.rpm     (cargo-generate-rpm)
# Both read the one set of metadata in Cargo.toml. --revision (default 1) makes a newer build of
# the same version, as the upgrade test installs over the first one. --recording builds the
# bedrud-recording package instead (the `recording` variant of the same metadata): the egress
# worker that scripts/install-egress.sh built into .tools/, and bedrud.service's drop-in for it.
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
variant=""
usage() { echo "usage: scripts/package.sh deb|rpm [--revision N] [--recording]" >&2; exit 2; }
case "$kind" in
  deb | rpm) shift ;;
  *) usage ;;
esac
while [ $# -gt 0 ]; do
  case "$1" in
    --revision) revision=${2:?--revision needs a number}; shift 2 ;;
    --recording) variant=recording; shift ;;
    *) usage ;;
  esac
done

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

# bedrud-recording's payload: the egress worker that scripts/install-egress.sh built (keyed by
# version in .tools/), stripped as livekit-server is, and egress' LICENSE and NOTICE from the
# source it was built from.
build_recording_payload() {
  local built="$tools/egress-$EGRESS_VERSION/egress"
  local tarball="$root/../shared/vendor/livekit-egress-$EGRESS_VERSION.tar.gz"
  if ! [ -x "$built" ] || [ "$("$built" --version 2>/dev/null)" != "egress version $EGRESS_VERSION" ]; then
    echo "package: egress $EGRESS_VERSION is not built; run scripts/install-egress.sh (scripts/setup.sh does)" >&2
    exit 1
  fi
  [ -f "$tarball" ] || { echo "package: the egress source is missing at $tarball (see scripts/install-egress.sh)" >&2; exit 1; }
  mkdir -p "$out"
  cp "$built" "$out/egress.tmp"
  strip "$out/egress.tmp"
  mv "$out/egress.tmp" "$out/egress"
  tar -xzf "$tarball" -O "egress-$EGRESS_VERSION/LICENSE" >"$out/egress-LICENSE"
  tar -xzf "$tarball" -O "egress-$EGRESS_VERSION/NOTICE" >"$out/egress-NOTICE"
}

name=bedrud
if [ -n "$variant" ]; then name=bedrud-$variant; fi
case "$kind" in
  deb)
    install_tool cargo-deb "$CARGO_DEB_VERSION"
    if [ -n "$variant" ]; then
      build_recording_payload
      built=$(cargo deb --no-build --locked --deb-revision "$revision" --variant "$variant")
    else
      build_payload
      built=$(cargo deb --no-build --locked --deb-revision "$revision")
    fi
    ;;
  rpm)
    install_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
    if [ -n "$variant" ]; then build_recording_payload; else build_payload; fi
    cargo generate-rpm ${variant:+--variant "$variant"} --set-metadata "release = \"$revision\"" \
      ${BEDRUD_RPM_SIGNING_KEY:+--signing-key "$BEDRUD_RPM_SIGNING_KEY"}
    built=$(ls -t target/generate-rpm/"$name"-[0-9]*"-$revision".*.rpm | head -1)
    ;;
esac
# cargo-deb empties target/debian on each run; keep every build side by side.
mkdir -p target/packages
cp "$built" target/packages/
echo "target/packages/$(basename "$built")"
