#!/usr/bin/env bash
# Runs bedrud from source with embedded LiveKit: no config file needed (development defaults:
# loopback only, state in ./bedrud-data). Extra arguments go to `bedrud serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-web.sh
# shellcheck source=livekit-version.sh
. scripts/livekit-version.sh
scripts/install-livekit.sh "$LIVEKIT_VERSION"
export PATH="$PWD/.tools/bin:$PATH"
exec cargo run --release --locked -- serve "$@"
