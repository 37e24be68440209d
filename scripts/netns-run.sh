#!/usr/bin/env bash
# Runs a command in a private network namespace with nothing in it but loopback and one veth pair
# (10.200.0.1/24 <-> 10.200.0.2/24) that leads nowhere. The test participants' WebRTC engine
# ignores the loopback interface and needs one other interface to gather candidates on; in here
# that interface is a test host of our own, so no media can go anywhere but this namespace.
# It also gets a private mount namespace, so that mounts a test makes (the package tests mount
# /proc into a Debian root) vanish with it, even if the test is killed.
# Usage: scripts/netns-run.sh COMMAND [ARGS...]   (root, or unprivileged user namespaces)
set -euo pipefail

if [ "${BEDRUD_NETNS:-}" = inside ]; then
  ip link set lo up
  ip link add bedrud0 type veth peer name bedrud1
  ip addr add 10.200.0.1/24 dev bedrud0
  ip addr add 10.200.0.2/24 dev bedrud1
  ip link set bedrud0 up
  ip link set bedrud1 up
  exec "$@"
fi

command -v unshare >/dev/null && command -v ip >/dev/null || {
  echo "netns-run: needs unshare (util-linux) and ip (iproute2): apt-get install util-linux iproute2" >&2
  exit 1
}
flags=(--net --mount)
[ "$(id -u)" -eq 0 ] || flags+=(--map-root-user)
export BEDRUD_NETNS=inside
exec unshare "${flags[@]}" -- "$0" "$@"
