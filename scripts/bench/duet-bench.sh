#!/usr/bin/env bash
# `duet-bench run` against a release server per storage profile, with the raw-insert baseline
# on the same database: closed loop, then open loop at a fixed rate. Per profile it also
# prints the server's start-up time to ready (fresh database, migrations included), and once
# the server binary's size; duet-bench's table gives the server's CPU and memory (RSS).
# Usage: scripts/bench/duet-bench.sh [connections=32] [duration=10s] [rate=1000]
#          [profiles="sqlite-full sqlite-normal postgres"] [reads-per-send=0]
# Profiles: sqlite-full, sqlite-normal, postgres, postgres-replica (reads may go to the
# streaming replica of scripts/pg-replica.sh, started here; the share of database reads the
# replica served is printed: give reads-per-send > 0 for reads to measure), sharded-N
# (N physical shards, alternately on 127.0.0.1:5432 and on scripts/pg-second.sh's server,
# started here; the rows per shard are printed after the run; the baseline uses the first).
# Extra server settings go in DUET_BENCH_ENV (space-separated KEY=VALUE), e.g.
#   DUET_BENCH_ENV="DUET__STORAGE__SQLITE__READ_CONNECTIONS=2" scripts/bench/duet-bench.sh
# Needs curl; PostgreSQL on 127.0.0.1:5432 (trust auth) for the postgres profiles.
# Bounded in time; stops the servers it starts; drops its database; JSON reports in $DUET_BENCH_OUT (default a temp dir).
set -euo pipefail
connections=${1:-32}
duration=${2:-10s}
rate=${3:-1000}
profiles=${4:-sqlite-full sqlite-normal postgres}
reads=${5:-0}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/duet"
bench="$root/target/release/duet-bench"
(cd "$root" && cargo build --release -p duet-bench -p duet)
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
  for pg_port in 5432 5434; do
    for name in $(psql -h 127.0.0.1 -p $pg_port -U postgres -qAtc "select datname from pg_database where starts_with(datname, '$db')" 2>/dev/null); do
      psql -h 127.0.0.1 -p $pg_port -U postgres -qAtc "drop database if exists $name with (force)" >/dev/null 2>&1 || true
    done
  done
  [ "$out" = "$dir" ] || rm -rf "$dir"
}
trap cleanup EXIT
# Database reads the server sent to TARGET (primary|replica) so far, from its /metrics page.
reads_on() { { curl -sf "$base/metrics" || true; } | awk -v t="target=\"$1\"" '/^duet_db_reads_total\{/ && index($0, t) {s += $NF} END {print s + 0}'; }

echo "commit: $(cd "$root" && git log -1 --oneline); $(nproc) cores"
echo "server binary: $(du -h "$bin" | cut -f1) ($bin)"
for profile in $profiles; do
  env=(DUET__SERVER__PORT=$port DUET__AUTH__ATTEMPTS_PER_MINUTE=100000 DUET__TELEMETRY__LOG_LEVEL=warn)
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
    postgres|postgres-replica)
      # A streaming replica (CI leaves scripts/pg-replica.sh's running) replays every write on
      # the same cores: measured, it nearly halved the raw one-transaction rate.
      replicas=$(psql -h 127.0.0.1 -U postgres -qAtc "select count(*) from pg_stat_replication" 2>/dev/null || echo 0)
      if [ "$profile" = postgres ] && [ "${replicas:-0}" != 0 ]; then
        echo "warning: $replicas streaming replica(s) replay this PostgreSQL on the same machine; figures will be lower (stop it: scripts/pg-replica.sh down)" >&2
      fi
      psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $db with (force)" -c "create database $db" >/dev/null
      database="postgres://postgres@127.0.0.1:5432/$db"
      env+=(DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__URL="$database")
      if [ "$profile" = postgres-replica ]; then
        "$root/scripts/pg-replica.sh" up >/dev/null
        for _ in $(seq 1 100); do
          psql -h 127.0.0.1 -p 5433 -U postgres -qAtc "select 1 from pg_database where datname = '$db'" 2>/dev/null | grep -q 1 && break
          sleep 0.1
        done
        env+=(DUET__STORAGE__POSTGRES__REPLICAS="postgres://postgres@127.0.0.1:5433/$db"
              DUET__STORAGE__POSTGRES__REPLICA_CHECK_INTERVAL_MS=100)
      fi
      baseline=(--database-url "$database") ;;
    sharded-*)
      count=${profile#sharded-}
      "$root/scripts/pg-second.sh" up >/dev/null
      urls=()
      for i in $(seq 0 $((count - 1))); do
        pg_port=$(( i % 2 == 0 ? 5432 : 5434 ))
        name="${db}_$i"
        psql -h 127.0.0.1 -p $pg_port -U postgres -qAtc "drop database if exists $name with (force)" -c "create database $name" >/dev/null
        urls+=("postgres://postgres@127.0.0.1:$pg_port/$name")
      done
      shards=$(IFS=,; echo "${urls[*]}")
      env+=(DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__SHARDS="$shards")
      baseline=(--database-url "${urls[0]}") ;;
    *) echo "unknown profile $profile" >&2; exit 2 ;;
  esac
  start=$(date +%s%N)
  env "${env[@]}" "$bin" serve >"$dir/$profile.log" 2>&1 &
  server=$!
  ready=false
  for _ in $(seq 1 1000); do curl -sf "$base/health/ready" >/dev/null && { ready=true; break; }; sleep 0.01; done
  if ! $ready; then echo "$profile: the server did not become ready:" >&2; cat "$dir/$profile.log" >&2; exit 1; fi
  echo; echo "=== $profile: start-up to ready $(( ($(date +%s%N) - start) / 1000000 )) ms (fresh database, migrations included)"
  if [ "$profile" = postgres-replica ]; then primary_before=$(reads_on primary); replica_before=$(reads_on replica); fi
  common=(--url "$base" --users 200 --conversations 100 --duration "$duration" --connections "$connections"
          --reads-per-send "$reads" --server-pid "$server" --quiet "${baseline[@]}" --baseline)
  echo; echo "=== $profile: closed loop, $connections connections ==="
  "$bench" run "${common[@]}" --json "$out/$profile-closed.json"
  echo; echo "=== $profile: open loop at $rate msg/s, at most $connections in flight ==="
  "$bench" run "${common[@]}" --rate "$rate" --json "$out/$profile-open.json"
  case $profile in
    sharded-*) echo; echo "=== $profile: rows per physical shard"; env "${env[@]}" "$bin" shards status ;;
  esac
  if [ "$profile" = postgres-replica ]; then
    primary=$(( $(reads_on primary) - primary_before )); replica=$(( $(reads_on replica) - replica_before ))
    awk -v r="$replica" -v p="$primary" 'BEGIN { if (r + p > 0) printf "database reads on the replica: %.1f%% of %d\n", 100 * r / (r + p), r + p; else print "database reads on the replica: none (reads-per-send is 0?)" }'
  fi
  stop_server
done
echo; echo "JSON reports in $out"
