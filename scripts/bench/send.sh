#!/usr/bin/env bash
# Quick send-rate benchmark of a release build on a throwaway SQLite file.
# Usage: scripts/bench/send.sh [connections=16] [seconds=10] [synchronous=full]
# Needs wrk, curl and jq. Bounded in time; stops the server it started.
set -euo pipefail
connections=${1:-16}
seconds=${2:-10}
synchronous=${3:-full}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/duet"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p duet)
dir=$(mktemp -d)
port=${DUET_BENCH_PORT:-18090}
base="http://127.0.0.1:$port"
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT

# One user sends everything: lift the per-user send limit where this build has one.
limits=()
grep -q '^\[limits\]' "$root/config/default.toml" &&
  limits=(DUET__LIMITS__SENDS_PER_SECOND=1000000 DUET__LIMITS__SEND_BURST=1000000)
start=$(date +%s%N)
env "${limits[@]}" DUET__SERVER__PORT=$port DUET__STORAGE__SQLITE__PATH="$dir/duet.db" \
  DUET__STORAGE__SQLITE__SYNCHRONOUS=$synchronous DUET__AUTH__ATTEMPTS_PER_MINUTE=1000 \
  DUET__TELEMETRY__LOG_LEVEL=warn "$bin" serve >"$dir/server.log" 2>&1 &
server=$!
until curl -sf "$base/health/ready" >/dev/null; do sleep 0.01; done
echo "start-up to ready: $(( ($(date +%s%N) - start) / 1000000 )) ms (fresh database, migrations included)"
echo "binary size: $(du -h "$bin" | cut -f1)"

json() { curl -sf -XPOST "$base$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"; }
json /v1/accounts '{"handle":"bench_a","password":"benchmark-password"}' >/dev/null
json /v1/accounts '{"handle":"bench_b","password":"benchmark-password"}' >/dev/null
token=$(json /v1/sessions '{"handle":"bench_a","password":"benchmark-password"}' | jq -r .token)
conversation=$(json /v1/conversations '{"peer_handle":"bench_b"}' "$token" | jq -r .id)

echo "wrk: $connections connections, ${seconds}s, sqlite synchronous=$synchronous, one conversation"
DUET_TOKEN=$token DUET_CONVERSATION=$conversation \
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$root/scripts/bench/send.lua" "$base"
stored=$(curl -sf "$base/v1/conversations/$conversation" -H "authorization: Bearer $token" | jq .last_seq)
echo "messages stored: $stored"
echo "server RSS: $(ps -o rss= -p $server | awk '{printf "%.1f MiB", $1/1024}')"
