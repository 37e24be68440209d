#!/usr/bin/env bash
# Installs everything bedrud's development and tests need on a fresh Debian machine; safe to re-run.
#   system packages (as root, via apt-get): systemd (systemd-analyze), util-linux and iproute2
#   (private network namespaces), socat (a TLS terminator in front of LiveKit), python3-venv,
#   redis-server (the LiveKit cluster test), debootstrap, systemd-container (systemd-nspawn, to
#   boot the Debian root), lintian, rpm and rpmlint (the package tests), chromium (the web app's
#   browser tests), nodejs and npm (to build the web app)
#   the web app (web/, npm ci from its lock file, then built into web/dist: scripts/build-web.sh)
#   livekit-server at the pinned versions, built from its Go module (scripts/install-livekit.sh)
#   the LiveKit Egress worker (recording), built from the vendored source with GStreamer, and the
#   GStreamer plugins and ffmpeg it and its tests use (scripts/install-egress.sh)
#   Pebble, Let's Encrypt's test CA, for the ACME tests (scripts/install-pebble.sh)
#   versitygw, an S3-compatible server, for the S3 recording test (scripts/install-versitygw.sh)
#   a throwaway PostgreSQL on 127.0.0.1:55432 for the store tests (scripts/postgres.sh)
#   the Python livekit SDK in .tools/venv for real test participants (scripts/install-python.sh)
#   a clean Debian root in .tools/debian-root for the package tests, and the .debs that
#   bedrud-recording depends on, downloaded for its offline install test (scripts/debian-root.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_packages=()
command -v systemd-analyze >/dev/null || need_packages+=(systemd)
command -v unshare >/dev/null || need_packages+=(util-linux)
command -v ip >/dev/null || need_packages+=(iproute2)
command -v socat >/dev/null || need_packages+=(socat)
command -v redis-server >/dev/null || need_packages+=(redis-server)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages+=(python3-venv)
command -v debootstrap >/dev/null || need_packages+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_packages+=(systemd-container)
command -v lintian >/dev/null || need_packages+=(lintian)
command -v rpm >/dev/null || need_packages+=(rpm)
command -v rpmlint >/dev/null || need_packages+=(rpmlint)
command -v dpkg-shlibdeps >/dev/null || need_packages+=(dpkg-dev)
command -v strip >/dev/null || need_packages+=(binutils)
[ -x /usr/lib/chromium/chromium ] || need_packages+=(chromium)
command -v node >/dev/null || need_packages+=(nodejs)
command -v npm >/dev/null || need_packages+=(npm)

if [ "${#need_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  else
    echo "setup: missing packages: ${need_packages[*]}; install them with: sudo apt-get install ${need_packages[*]}" >&2
    exit 1
  fi
fi

scripts/build-web.sh
scripts/install-livekit.sh
scripts/install-egress.sh
scripts/install-pebble.sh
scripts/install-versitygw.sh
scripts/postgres.sh start >/dev/null
scripts/install-python.sh
scripts/debian-root.sh
