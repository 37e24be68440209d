#!/usr/bin/env bash
# Runs every check and test, after installing what they need (scripts/setup.sh).
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
# The test PostgreSQL is ours for this run only: stop it afterwards so that it cannot hold the
# port against the next checkout (CI clones afresh each time).
trap 'scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
BEDRUD_TEST_POSTGRES=$(scripts/postgres.sh url)
export BEDRUD_TEST_POSTGRES
cargo fmt --all -- --check
scripts/build-web.sh --lint
cargo clippy --all-targets --locked -- -D warnings
# --all-targets leaves out the `test = false` targets (run below through the namespace), and
# naming them beside --all-targets does not bring them back (cargo then checks none of them):
# they get a run of their own.
cargo clippy --test meeting --test cluster --test web --test packages --test egress --test recording_worker --test recording \
  --locked -- -D warnings
cargo test --lib --bins --tests --locked "$@"
# The packages, built as a release would build them (and a newer build for the upgrade test),
# and bedrud-recording (the egress worker scripts/setup.sh built).
for kind in deb rpm; do
  scripts/package.sh "$kind" >/dev/null
  scripts/package.sh "$kind" --revision 2 >/dev/null
  scripts/package.sh "$kind" --recording >/dev/null
done
# Meetings with real WebRTC participants (the Python SDK, and Chromium driving the web app), and
# the packages installed into clean roots, inside a private network namespace (see netns-run.sh).
scripts/netns-run.sh cargo test --offline --locked --test meeting --test cluster --test egress --test recording_worker --test recording --test web --test packages "$@"
