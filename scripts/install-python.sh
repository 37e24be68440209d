#!/usr/bin/env bash
# Creates the Python venv for the test participant at .tools/venv (git-ignored) and installs
# tests/participant/requirements.txt into it. A no-op when the venv already holds exactly
# those requirements (their sha256 is kept in the venv). Usage: scripts/install-python.sh
#   .tools/venv/bin/python tests/participant/participant.py --url ws://... --token ...
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.tools/venv"
req="$root/tests/participant/requirements.txt"
stamp="$venv/.requirements.sha256"
python=${PYTHON:-python3}

want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

if ! command -v "$python" >/dev/null; then
  echo "install-python: $python not found; Python >= 3.9 is needed (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
# Debian's python3 ships without venv/ensurepip; probe before touching the old venv.
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "install-python: '$python -m venv' is unavailable (Debian: apt-get install python3-venv)" >&2
  exit 1
fi

echo "install-python: installing $(grep -v '^#' "$req" | xargs) into $venv" >&2
# Rebuilt from scratch so packages dropped from requirements.txt do not linger.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'from livekit import api, rtc' # the native library loads
echo "$want" > "$stamp"
