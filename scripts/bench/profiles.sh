#!/usr/bin/env bash
# Sends and history reads over HTTP against each storage profile, in one run, same machine.
# Usage: scripts/bench/profiles.sh [connections=16] [seconds=10] [profiles="sqlite postgres postgres-replica"]
# Needs wrk, curl, jq; PostgreSQL on 127.0.0.1:5432 for the postgres profiles and
# scripts/pg-replica.sh for the replica. Bounded in time; stops what it starts; drops its databases.
set -euo pipefail
connections=${1:-16}
seconds=${2:-10}
profiles=${3:-sqlite postgres postgres-replica}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/duet"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p duet)
dir=$(mktemp -d)
port=${DUET_BENCH_PORT:-18091}
base="http://127.0.0.1:$port"
db="duet_bench_$$"
server=""
cleanup() {
  [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

json() { curl -sf -XPOST "$base$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"; }
metric() { curl -sf "$base/metrics" | awk -v m="$1" '$1 == m {print $2}' | head -n1; }
wrk_summary() { awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%8.0f/s  p50 %8s  p99 %8s", rps, p50, p99}'; }

printf '%-17s %-40s %-40s %s\n' profile "send (new message each)" "history (newest 50)" "reads on replica"
for profile in $profiles; do
  env=(DUET__SERVER__PORT=$port DUET__AUTH__ATTEMPTS_PER_MINUTE=1000 DUET__TELEMETRY__LOG_LEVEL=warn)
  # One user sends everything: lift the per-user send limit where this build has one.
  grep -q '^\[limits\]' "$root/config/default.toml" &&
    env+=(DUET__LIMITS__SENDS_PER_SECOND=1000000 DUET__LIMITS__SEND_BURST=1000000)
  case $profile in
    sqlite) env+=(DUET__STORAGE__SQLITE__PATH="$dir/$profile.db") ;;
    postgres|postgres-replica)
      psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $db" -c "create database $db" >/dev/null 2>&1
      env+=(DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__URL="postgres://postgres@127.0.0.1:5432/$db")
      if [ "$profile" = postgres-replica ]; then
        "$root/scripts/pg-replica.sh" up >/dev/null
        for _ in $(seq 1 100); do
          psql -h 127.0.0.1 -p 5433 -U postgres -qAtc "select 1 from pg_database where datname = '$db'" | grep -q 1 && break
          sleep 0.1
        done
        env+=(DUET__STORAGE__POSTGRES__REPLICAS="postgres://postgres@127.0.0.1:5433/$db"
              DUET__STORAGE__POSTGRES__REPLICA_CHECK_INTERVAL_MS=100)
      fi ;;
    *) echo "unknown profile $profile" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$bin" serve >"$dir/$profile.log" 2>&1 &
  server=$!
  until curl -sf "$base/health/ready" >/dev/null; do sleep 0.02; done
  json /v1/accounts '{"handle":"bench_a","password":"benchmark-password"}' >/dev/null
  json /v1/accounts '{"handle":"bench_b","password":"benchmark-password"}' >/dev/null
  token_a=$(json /v1/sessions '{"handle":"bench_a","password":"benchmark-password"}' | jq -r .token)
  token_b=$(json /v1/sessions '{"handle":"bench_b","password":"benchmark-password"}' | jq -r .token)
  conversation=$(json /v1/conversations '{"peer_handle":"bench_b"}' "$token_a" | jq -r .id)

  send=$(DUET_TOKEN=$token_a DUET_CONVERSATION=$conversation \
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$root/scripts/bench/send.lua" "$base" | wrk_summary)
  sleep 0.5  # let delivery and replicas settle before reading
  replica_before=$(metric 'duet_db_reads_total{target="replica"}'); replica_before=${replica_before:-0}
  primary_before=$(metric 'duet_db_reads_total{target="primary"}'); primary_before=${primary_before:-0}
  history=$(DUET_TOKEN=$token_b DUET_CONVERSATION=$conversation \
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$root/scripts/bench/history.lua" "$base" | wrk_summary)
  replica_after=$(metric 'duet_db_reads_total{target="replica"}'); replica_after=${replica_after:-0}
  primary_after=$(metric 'duet_db_reads_total{target="primary"}'); primary_after=${primary_after:-0}
  share="n/a"
  if [ "$profile" = postgres-replica ]; then
    share=$(awk -v r=$((replica_after - replica_before)) -v p=$((primary_after - primary_before)) \
      'BEGIN { if (r + p > 0) printf "%.1f%% of %d DB reads", 100 * r / (r + p), r + p; else print "none" }')
  fi
  printf '%-17s %-40s %-40s %s\n' "$profile" "$send" "$history" "$share"
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
done
echo "(wrk -t2 -c$connections -d${seconds}s per cell; release build; sends by one user into one conversation, reads by its peer)"
