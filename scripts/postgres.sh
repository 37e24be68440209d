#!/usr/bin/env bash
# Throwaway PostgreSQL server for the tests: the store tests run against SQLite and
# against this server. It listens on 127.0.0.1 only (no Unix socket), on port
# $BEDRUD_PG_PORT (default 55432), with trust auth and fsync off: never use it for real data.
# Data lives in .tools/pgdata (git-ignored; override with $BEDRUD_PG_DATA). Installs the Debian
# `postgresql` package if the server is missing (root only).
#
# Usage: scripts/postgres.sh start          start (idempotent); last stdout line is the URL
#        scripts/postgres.sh url            print postgres://bedrud@127.0.0.1:PORT/bedrud
#        scripts/postgres.sh stop           stop the server if running
#        scripts/postgres.sh create-db NAME create empty database NAME owned by bedrud, print its URL
#        scripts/postgres.sh drop-db NAME   drop database NAME (disconnecting its sessions)
# Progress goes to stderr, so `URL=$(scripts/postgres.sh start)` works.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.tools
PORT=${BEDRUD_PG_PORT:-55432}
DATA=${BEDRUD_PG_DATA:-$TOOLS/pgdata}

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
url() { echo "postgres://bedrud@127.0.0.1:$PORT/${1:-bedrud}"; }
is_root() { [ "$(id -u)" = 0 ]; }
# Server commands run as `postgres` when we are root (initdb refuses root), else as us.
# fd 9 (the lock) is closed so the server does not inherit and hold it.
as_pg() { if is_root; then (cd / && runuser -u postgres -- "$@" 9>&-); else "$@" 9>&-; fi; }
sql() { PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"; }
check_name() { [[ $1 =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "bad database name '$1' (use [a-z0-9_])"; }

find_bin() { # bin dir of the newest installed server (client-only versions lack initdb)
  BIN=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)
  BIN=${BIN%/initdb}
  [ -n "$BIN" ] && [ -x "$BIN/pg_ctl" ]
}

install_server() {
  is_root || die "PostgreSQL server not installed; install the Debian package 'postgresql' (sudo apt-get install postgresql)"
  log "installing PostgreSQL server (apt package postgresql)"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends postgresql)
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" >&2 || { apt-get -q -o DPkg::Lock::Timeout=300 update >&2 && "${apt[@]}" >&2; }
  find_bin || die "postgresql installed but no server binaries in /usr/lib/postgresql/*/bin"
}

# As root the server runs as `postgres`, which must be able to reach $DATA; if some parent
# directory of .tools is not traversable for it (e.g. a 0700 home), use /var/tmp instead.
pick_data() {
  if is_root && [ -z "${BEDRUD_PG_DATA:-}" ] && ! runuser -u postgres -- test -x "$TOOLS"; then
    DATA=/var/tmp/bedrud-pgdata-$PORT
    log "user postgres cannot reach $TOOLS; data dir is $DATA"
  fi
}

# PID of the live postmaster of $DATA, if any. The PID in a stale postmaster.pid (killed run)
# may be gone, reused by another program, or a zombie; none of those count.
server_pid() {
  local pid comm state
  pid=$(head -n1 "$DATA/postmaster.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
  read -r _ comm state _ 2>/dev/null <"/proc/$pid/stat" || return 1
  [ "$comm" = "(postgres)" ] && [ "$state" != Z ] && echo "$pid"
}

stop() {
  if server_pid >/dev/null; then
    log "stopping server in $DATA"
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
  fi
}

init_cluster() {
  local major=${BIN%/bin}; major=${major##*/}
  [ "$(cat "$DATA/PG_VERSION" 2>/dev/null)" = "$major" ] && return
  log "creating PostgreSQL $major cluster in $DATA"
  rm -rf "$DATA" && mkdir -p "$DATA" && chmod 700 "$DATA"   # also clears half-made/old clusters
  if is_root; then chown postgres:postgres "$DATA"; fi
  as_pg "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
}

start() {
  find_bin || install_server
  pick_data
  # A server of ours on another port (BEDRUD_PG_PORT changed) is restarted on the right one.
  if server_pid >/dev/null && [ "$(sed -n 4p "$DATA/postmaster.pid")" != "$PORT" ]; then stop; fi
  if ! server_pid >/dev/null; then
    init_cluster
    rm -f "$DATA/postmaster.pid"   # stale one from a killed run
    if is_root; then chown -R postgres:postgres "$DATA"; fi
    log "starting server on 127.0.0.1:$PORT"
    local opts="-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories="
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 -o "$opts" start >&2 \
      || { tail -n 20 "$DATA/server.log" >&2; die "server did not start (log: $DATA/server.log)"; }
  fi
  for _ in $(seq 60); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres && break; sleep 0.5; done
  [ "$(sql "select 1 from pg_roles where rolname = 'bedrud'")" = 1 ] || sql "create role bedrud login createdb"
  create_db bedrud >/dev/null
  url
}

create_db() {
  check_name "$1"
  [ "$(sql "select 1 from pg_database where datname = '$1'")" = 1 ] || sql "create database \"$1\" owner bedrud"
  url "$1"
}

cmd=${1:-}
case $cmd in
  url) url; exit ;;
  start | stop | create-db | drop-db) ;;
  *) die "usage: $0 start|url|stop|create-db NAME|drop-db NAME" ;;
esac
mkdir -p "$TOOLS"
exec 9>"$TOOLS/postgres.lock"
flock 9   # concurrent test processes may call this script at the same time
case $cmd in
  start) start ;;
  stop) if find_bin; then pick_data; stop; fi ;;
  create-db) [ $# = 2 ] || die "usage: $0 create-db NAME"; check_name "$2"; start >/dev/null; create_db "$2" ;;
  drop-db) [ $# = 2 ] || die "usage: $0 drop-db NAME"; check_name "$2"; [ "$2" != bedrud ] || die "refusing to drop bedrud"
    start >/dev/null; sql "drop database if exists \"$2\" with (force)" ;;
esac
