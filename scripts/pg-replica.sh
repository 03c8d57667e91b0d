#!/usr/bin/env bash
# A real streaming read replica of the local PostgreSQL, for tests and benchmarks.
#   scripts/pg-replica.sh up      create (pg_basebackup, hot standby) and start it; idempotent
#   scripts/pg-replica.sh down    stop it (its data folder stays, so `up` is quick next time)
#   scripts/pg-replica.sh status  print whether it runs and what it has replayed
# Primary: 127.0.0.1:${PG_PRIMARY_PORT:-5432}; replica: 127.0.0.1:${PG_REPLICA_PORT:-5433}.
# Needs root (or the postgres user) on a machine whose PostgreSQL server runs locally.
set -euo pipefail

primary_port=${PG_PRIMARY_PORT:-5432}
replica_port=${PG_REPLICA_PORT:-5433}
data=${PG_REPLICA_DATA:-/var/lib/postgresql/duet-replica}
log=${PG_REPLICA_LOG:-/var/log/postgresql/duet-replica.log}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg-replica: no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
}

running() { as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

allow_replication() {
  # The primary must accept replication connections from loopback.
  local hba
  hba=$(psql -h 127.0.0.1 -p "$primary_port" -U postgres -Atc 'show hba_file')
  if ! grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$hba"; then
    echo "host replication all 127.0.0.1/32 trust" >>"$hba"
    psql -h 127.0.0.1 -p "$primary_port" -U postgres -qAtc 'select pg_reload_conf()' >/dev/null
  fi
}

streaming() { # the standby receives WAL from the primary (not stuck on recycled WAL)
  psql -h 127.0.0.1 -p "$replica_port" -U postgres -Atc \
    "select status from pg_stat_wal_receiver" 2>/dev/null | grep -q streaming
}

start() {
  if [ ! -f "$data/standby.signal" ]; then
    rm -rf "$data"
    mkdir -p "$(dirname "$data")"
    chown postgres: "$(dirname "$data")" 2>/dev/null || true
    as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
      -D "$data" -R -X stream --checkpoint=fast
  fi
  # Debian keeps the primary's configuration in /etc: give the copy its own, minimal one.
  cat >"$data/postgresql.conf" <<CONF
port = $replica_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
hot_standby = on
hot_standby_feedback = on
max_connections = 100
CONF
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
  : >"$data/pg_ident.conf"
  chown postgres: "$data/postgresql.conf" "$data/pg_hba.conf" "$data/pg_ident.conf"
  mkdir -p "$(dirname "$log")"; touch "$log"; chown postgres: "$log" 2>/dev/null || true
  as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
  for _ in $(seq 1 100); do
    streaming && return 0
    sleep 0.1
  done
  return 1
}

up() {
  if running && streaming; then echo "pg-replica: running on 127.0.0.1:$replica_port"; return; fi
  running && as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  allow_replication
  if start; then
    echo "pg-replica: streaming replica up on 127.0.0.1:$replica_port"
    return
  fi
  # Down too long: the primary recycled WAL the copy still needs. Take a fresh base backup.
  echo "pg-replica: the replica cannot catch up; rebuilding it from a fresh base backup"
  running && as_postgres "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
  rm -f "$data/standby.signal"
  if start; then
    echo "pg-replica: streaming replica up on 127.0.0.1:$replica_port"
    return
  fi
  echo "pg-replica: replica did not start streaming; see $log" >&2
  exit 1
}

down() {
  if running; then as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop; fi
  echo "pg-replica: stopped"
}

status() {
  if running; then
    psql -h 127.0.0.1 -p "$replica_port" -U postgres -Atc \
      "select 'replaying, lsn ' || pg_last_wal_replay_lsn() || ', paused: ' || pg_is_wal_replay_paused()"
  else
    echo "pg-replica: not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
