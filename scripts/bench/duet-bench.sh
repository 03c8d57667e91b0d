#!/usr/bin/env bash
# `duet bench` against a release server per storage profile, with the raw-insert baseline on
# the same database: closed loop, then open loop at a fixed rate.
# Usage: scripts/bench/duet-bench.sh [connections=32] [duration=10s] [rate=1000] [profiles="sqlite-full sqlite-normal postgres"]
# Extra server settings go in DUET_BENCH_ENV (space-separated KEY=VALUE), e.g. group commit off:
#   DUET_BENCH_ENV="DUET__STORAGE__GROUP_COMMIT__ENABLED=false" scripts/bench/duet-bench.sh
# Needs curl; PostgreSQL on 127.0.0.1:5432 (trust auth) for the postgres profile.
# Bounded in time; stops the servers it starts; drops its database; JSON reports in $DUET_BENCH_OUT (default a temp dir).
set -euo pipefail
connections=${1:-32}
duration=${2:-10s}
rate=${3:-1000}
profiles=${4:-sqlite-full sqlite-normal postgres}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/duet"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p duet)
dir=$(mktemp -d)
out=${DUET_BENCH_OUT:-$dir}
port=${DUET_BENCH_PORT:-18092}
base="http://127.0.0.1:$port"
db="duet_bench_$$"
server=""
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi
}
cleanup() {
  stop_server
  psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $db" >/dev/null 2>&1 || true
  [ "$out" = "$dir" ] || rm -rf "$dir"
}
trap cleanup EXIT

echo "commit: $(cd "$root" && git log -1 --oneline)"
for profile in $profiles; do
  env=(DUET__SERVER__PORT=$port DUET__AUTH__ATTEMPTS_PER_MINUTE=100000 DUET__TELEMETRY__LOG_LEVEL=warn)
  # Extra server settings, e.g. DUET_BENCH_ENV="DUET__STORAGE__GROUP_COMMIT__ENABLED=false".
  read -r -a extra <<<"${DUET_BENCH_ENV:-}"
  env+=("${extra[@]}")
  # Lift the per-user send limit where this build has one (an unknown section is refused).
  if grep -q '^\[limits\]' "$root/config/default.toml"; then
    env+=(DUET__LIMITS__SENDS_PER_SECOND=1000000 DUET__LIMITS__SEND_BURST=1000000)
  fi
  case $profile in
    sqlite-full|sqlite-normal)
      sync=${profile#sqlite-}
      database="$dir/$profile.db"
      env+=(DUET__STORAGE__SQLITE__PATH="$database" DUET__STORAGE__SQLITE__SYNCHRONOUS=$sync)
      baseline=(--database-url "$database" --sqlite-synchronous "$sync") ;;
    postgres)
      # A streaming replica (CI leaves scripts/pg-replica.sh's running) replays every write on
      # the same cores: measured, it nearly halved the raw one-transaction rate.
      replicas=$(psql -h 127.0.0.1 -U postgres -qAtc "select count(*) from pg_stat_replication" 2>/dev/null || echo 0)
      if [ "${replicas:-0}" != 0 ]; then
        echo "warning: $replicas streaming replica(s) replay this PostgreSQL on the same machine; figures will be lower (stop it: scripts/pg-replica.sh down)" >&2
      fi
      psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $db" -c "create database $db" >/dev/null
      database="postgres://postgres@127.0.0.1:5432/$db"
      env+=(DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__URL="$database")
      baseline=(--database-url "$database") ;;
    *) echo "unknown profile $profile" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$bin" serve >"$dir/$profile.log" 2>&1 &
  server=$!
  for _ in $(seq 1 500); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.02; done
  common=(--url "$base" --users 200 --conversations 100 --duration "$duration" --connections "$connections"
          --server-pid "$server" --quiet "${baseline[@]}" --baseline)
  echo; echo "=== $profile: closed loop, $connections connections ==="
  "$bin" bench "${common[@]}" --json "$out/$profile-closed.json"
  echo; echo "=== $profile: open loop at $rate msg/s, at most $connections in flight ==="
  "$bin" bench "${common[@]}" --rate "$rate" --json "$out/$profile-open.json"
  stop_server
done
echo; echo "JSON reports in $out"
