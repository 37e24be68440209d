#!/usr/bin/env bash
# Builds the LiveKit Egress worker (the recorder) from its vendored source into .tools/ (git-ignored),
# keyed by version; a no-op when that version is already built.
# Usage: scripts/install-egress.sh [TARBALL]   ($EGRESS_VERSION from scripts/livekit-version.sh)
#   TARBALL   the egress source, default ../shared/vendor/livekit-egress-$EGRESS_VERSION.tar.gz
#             relative to the checkout (no registry serves it: see that folder's README)
#   .tools/egress-<version>/egress   the worker, with the room composite's web template built in
#   .tools/egress-<version>/version  what was built ($EGRESS_VERSION and the template's build):
#                                    the cache key; a different one rebuilds
#   .tools/bin/egress                a link to it, for $PATH
# As root it first installs, with apt-get, GStreamer's -dev packages (egress is cgo on GStreamer)
# and the plugins and programs recording uses at run time: see need_packages below.
# The template (the tarball's template-default/, a React app) is built with pnpm $PNPM_VERSION,
# run through npm from the npm registry, from its own pnpm-lock.yaml (--frozen-lockfile).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=livekit-version.sh
. "$root/scripts/livekit-version.sh"
tools="$root/.tools"
dest="$tools/egress-$EGRESS_VERSION"
tarball=${1:-"$root/../shared/vendor/livekit-egress-$EGRESS_VERSION.tar.gz"}
# The pnpm that builds the template: its lock file is pnpm's (lockfileVersion 9.0), and its
# pnpm-workspace.yaml uses `allowBuilds` (esbuild's install script), which pnpm 10 reads.
PNPM_VERSION=10.34.9
# What a build holds; bump the suffix when the build changes so that every checkout rebuilds once.
build_key="$EGRESS_VERSION+template-default/pnpm-$PNPM_VERSION"

# Build: GStreamer's headers (-bad for mpegts and webrtc). Run time: the plugin sets egress' pipelines use (opusenc, oggmux and
# mp4mux are in -base/-good, x264enc in -ugly, the RTP depayloaders in -good, and the web-page
# composite's ximagesrc and pulsesrc in -good too), libav for decoding, redis-server (egress and
# livekit-server meet through Redis), and ffmpeg (ffprobe/ffmpeg: the tests decode what was recorded).
# The room composite with video: egress starts Xvfb (xvfb) and Chromium (chromium, found on $PATH
# by chromedp) for each recording and plays the room into a PulseAudio null sink it loads with
# pactl (pulseaudio-utils); the PulseAudio daemon itself must already run (docs/recording.md).
need_packages=()
for p in libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
  gstreamer1.0-pulseaudio gstreamer1.0-x redis-server ffmpeg chromium xvfb pulseaudio pulseaudio-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need_packages+=("$p")
done
if [ "${#need_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "install-egress: installing ${need_packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  else
    echo "install-egress: missing packages: ${need_packages[*]}; install them with: sudo apt-get install ${need_packages[*]}" >&2
    exit 1
  fi
fi

installed() { [ -x "$dest/egress" ] && [ "$(cat "$dest/version" 2>/dev/null)" = "$build_key" ]; }

if ! installed; then
  if [ ! -f "$tarball" ]; then
    echo "install-egress: the egress $EGRESS_VERSION source is missing at $tarball; pass its path as the first argument (it is livekit/egress at tag v$EGRESS_VERSION, as a git archive with top folder egress-$EGRESS_VERSION/)" >&2
    exit 1
  fi
  if ! command -v go >/dev/null; then
    echo "install-egress: Go >= 1.26 is needed to build egress $EGRESS_VERSION (https://go.dev/dl)" >&2
    exit 1
  fi
  # Vite 7 (the template's bundler) needs Node.js 20.19 or newer, as the web app does.
  if ! command -v npm >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "install-egress: Node.js 20.19+ and npm are needed to build egress' web template (scripts/setup.sh installs them)" >&2
    exit 1
  fi
  echo "install-egress: building egress $EGRESS_VERSION from $tarball (several minutes the first time)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tarball" -C "$tmp"
  src="$tmp/egress-$EGRESS_VERSION"
  # cmd/server embeds templates/: the web page the Chrome-based room composite loads, served by
  # the worker on template_port. Built as upstream's build/template Dockerfile does (pnpm install,
  # pnpm build into build/), less the source maps, as upstream's egress Dockerfile drops them.
  echo "install-egress: building the room composite template with pnpm $PNPM_VERSION" >&2
  pnpm=(npm exec --yes --package="pnpm@$PNPM_VERSION" -- pnpm)
  (cd "$src/template-default" && nice -n 10 "${pnpm[@]}" install --frozen-lockfile --reporter=silent \
    && nice -n 10 "${pnpm[@]}" run --silent build --logLevel error)
  rm -rf "$src/cmd/server/templates"
  cp -a "$src/template-default/build" "$src/cmd/server/templates"
  find "$src/cmd/server/templates" -name '*.map' -delete
  (cd "$src" && CGO_ENABLED=1 GOFLAGS="-trimpath -buildvcs=false" nice -n 10 go build -o "$tmp/egress" ./cmd/server)
  mkdir -p "$dest"
  mv "$tmp/egress" "$dest/egress"
  echo "$build_key" >"$dest/version"
  rm -rf "$tmp"
  trap - EXIT
fi

mkdir -p "$tools/bin"
ln -sfn "../egress-$EGRESS_VERSION/egress" "$tools/bin/egress"
