#!/usr/bin/env bash
# A second, independent PostgreSQL server on this machine, for the sharded profile's tests and
# benchmarks (physical shards on two real servers).
#   scripts/pg-second.sh up      create (initdb) and start it; idempotent
#   scripts/pg-second.sh down    stop it (its data folder stays, so `up` is quick next time)
#   scripts/pg-second.sh status  print whether it runs
# Listens on 127.0.0.1:${PG_SECOND_PORT:-5434}, trust authentication, role postgres.
# Needs root (or the postgres user) and Debian's PostgreSQL server binaries.
set -euo pipefail

port=${PG_SECOND_PORT:-5434}
data=${PG_SECOND_DATA:-/var/lib/postgresql/duet-second}
log=${PG_SECOND_LOG:-/var/log/postgresql/duet-second.log}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg-second: no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
}

running() { as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }
answers() { psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtqc 'select 1' >/dev/null 2>&1; }

up() {
  if running && answers; then echo "pg-second: running on 127.0.0.1:$port"; return; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    chown postgres: "$data" "$(dirname "$data")" 2>/dev/null || true
    as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  cat >"$data/postgresql.auto.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
max_connections = 200
shared_buffers = 128MB
CONF
  chown postgres: "$data/postgresql.auto.conf"
  mkdir -p "$(dirname "$log")"; touch "$log"; chown postgres: "$log" 2>/dev/null || true
  running || as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
  for _ in $(seq 1 100); do
    if answers; then echo "pg-second: up on 127.0.0.1:$port"; return 0; fi
    sleep 0.1
  done
  echo "pg-second: did not start; see $log" >&2
  exit 1
}

down() {
  if running; then as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
  echo "pg-second: stopped"
}

status() {
  if running && answers; then
    echo "pg-second: running on 127.0.0.1:$port"
  else
    echo "pg-second: not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
